/** A small, strict `--name value` / `--flag` parser: unknown options and missing values are ArgumentErrors. */
import { ArgumentError } from '../errors.ts';

export interface ArgSpec {
  strings: string[];
  flags: string[];
}

export function parseArgs(argv: string[], spec: ArgSpec) {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new ArgumentError(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq > 0 ? eq : undefined);
    if (spec.flags.includes(name)) {
      flags.add(name);
    } else if (spec.strings.includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new ArgumentError(`--${name} needs a value`);
      values.set(name, v);
    } else {
      throw new ArgumentError(`unknown option --${name}`);
    }
  }
  const number = (name: string): number | undefined => {
    const v = values.get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new ArgumentError(`--${name} must be a number (got '${v}')`);
    return n;
  };
  return {
    string(name: string, required = false): string | undefined {
      const v = values.get(name);
      if (required && v === undefined) throw new ArgumentError(`--${name} is required`);
      return v;
    },
    flag: (name: string) => flags.has(name),
    number,
    int(name: string): number | undefined {
      const n = number(name);
      if (n !== undefined && !Number.isInteger(n)) throw new ArgumentError(`--${name} must be a whole number`);
      return n;
    },
  };
}
