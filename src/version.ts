// The package version, read once from package.json so there is one source of truth.

import { packageJson } from './util/packageRoot';

export const version: string = packageJson().version;
