#!/usr/bin/env node
// Entry point of the `larder` CLI. In a checkout (src/ present) the TypeScript sources run directly
// through tsx, so `npm ci && npm start` needs no build step; a built package (dist/, no src/) runs the
// compiled JavaScript.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
