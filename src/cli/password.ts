// The encryption password when no --password or --passwordFile gave it: asked on the terminal
// without echo; a daemon's serving process receives it from its parent, on stdin or with the word
// to go (daemonPrestart.ts).

import { UserError } from '../errors';

export const PASSWORD_ON_STDIN_ENV = 'S3BACKER_PASSWORD_ON_STDIN';

export function askPassword(prompt: string): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) {
    return Promise.reject(new UserError('--encrypt needs --password, --passwordFile, or a terminal to ask the password on'));
  }
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt);
    let typed = '';
    input.setRawMode(true);
    input.resume();
    input.setEncoding('utf8');
    const done = (err?: Error): void => {
      input.setRawMode(false);
      input.pause();
      input.removeListener('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new UserError('interrupted'));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    input.on('data', onData);
  });
}

/** In a daemon's serving process: the first line its parent wrote on stdin. */
export function readPasswordFromStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => (text += d));
    process.stdin.on('end', () => resolve(text.split('\n')[0] ?? ''));
    process.stdin.on('error', reject);
  });
}
