/** Process entry for the `trol` command. */
import { main } from './main.ts';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`error: Error: ${(e as Error)?.message ?? e}\n`);
    process.exitCode = 1;
  },
);
