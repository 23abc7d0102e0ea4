#!/usr/bin/env node
// The installed `trol` command: registers the `?raw` WGSL loader and the TypeScript loader, then runs the CLI.
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

register('../scripts/raw-hooks.mjs', import.meta.url);
const { register: registerTsx } = await import('tsx/esm/api');
registerTsx();
await import(pathToFileURL(new URL('../src/cli/run.ts', import.meta.url).pathname).href);
