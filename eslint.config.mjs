// npm run lint: the TypeScript sources, type-aware (promises left floating are the bugs a
// block store cannot afford), and the tests' and scripts' JavaScript for plain mistakes.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'native/index.js', 'native/index.d.ts', 'node_modules/', '.cache/', 'target/', 'npm/'] },
  {
    files: ['src/**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
  },
);
