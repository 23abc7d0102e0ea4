// Node ESM hook so that `import text from './x.wgsl?raw'` works outside Vite (CLI, bench), exactly as it
// does in Vite and Vitest: the module's default export is the file's text.
import { register } from 'node:module';

register('./raw-hooks.mjs', import.meta.url);
