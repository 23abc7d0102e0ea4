/**
 * The `trol` command as other tools use it: a real process per call (`npm run -s trol -- …` runs the same
 * entry), checking stdout/stderr/exit code contracts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const MODEL = 'test/fixtures/tiny-trol';
const GOLDEN = `${MODEL}/golden`;

function trol(args: string[], input?: string) {
  const env = { ...process.env };
  const r = spawnSync(
    process.execPath,
    ['--import', './scripts/register-raw.mjs', '--import', 'tsx', 'src/cli/run.ts', ...args],
    { encoding: 'utf8', input, env, timeout: 240_000 },
  );
  return {
    code: r.status,
    stdout: r.stdout,
    stderr: r.stderr
      .split('\n')
      .filter((l) => !/^Warning: |XDG_RUNTIME_DIR/.test(l))
      .join('\n'),
  };
}

function golden(name: string): Float32Array | Int32Array | Uint8Array {
  const index = JSON.parse(readFileSync(`${GOLDEN}/index.json`, 'utf8'));
  const e = index.files.find((f: { name: string }) => f.name === name);
  const buf = readFileSync(join(GOLDEN, e.file));
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  return e.dtype === 'int32' ? new Int32Array(ab) : e.dtype === 'uint8' ? new Uint8Array(ab) : new Float32Array(ab);
}

describe('trol CLI', () => {
  it('generate --json on the image prompt gives the golden ids (f32)', () => {
    const r = trol([
      'generate',
      '--model',
      MODEL,
      '--question',
      'What shapes and colours do you see in this picture?',
      '--image',
      `${GOLDEN}/image.png`,
      '--max-new-tokens',
      '24',
      '--weights',
      'f32',
      '--f32',
      '--json',
    ]);
    expect(r.stderr.trim()).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j).sort()).toEqual(['adapter', 'generated_ids', 'prompt_ids', 'stop_reason', 'text', 'timings']);
    expect(j.prompt_ids).toEqual(Array.from(golden('img_prompt_ids')));
    expect(j.generated_ids).toEqual(Array.from(golden('img_gen_ids')));
    expect(j.stop_reason).toBe('length');
    expect(j.adapter.software).toBe(true);
  });

  it('generate --dump writes every golden intermediate with the same dtype, shape and layout', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trol-dump-'));
    const r = trol([
      'generate',
      '--model',
      MODEL,
      '--question',
      'Write a short poem about the sea and the sky.',
      '--max-new-tokens',
      '24',
      '--weights',
      'f32',
      '--f32',
      '--dump',
      dir,
    ]);
    expect(r.code).toBe(0);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
    const goldIndex = JSON.parse(readFileSync(`${GOLDEN}/index.json`, 'utf8'));
    const names = index.files.map((f: { name: string }) => f.name);
    for (const n of [
      'prompt_ids',
      'embeds',
      'layer0_h1',
      'layer0_h2',
      'layer0_gate',
      'layer0_y',
      'layer0_k',
      'layer0_v',
      'gates',
      'layers_y',
      'prefill_logits_last',
      'gen_ids',
      'gen_logits',
    ]) {
      expect(names).toContain(n);
      const mine = index.files.find((f: { name: string }) => f.name === n);
      const g = goldIndex.files.find((f: { name: string }) => f.name === `txt_${n}`);
      expect([mine.dtype, mine.shape]).toEqual([g.dtype, g.shape]);
      const a = readFileSync(join(dir, mine.file));
      const b = readFileSync(join(GOLDEN, g.file));
      expect(a.byteLength).toBe(b.byteLength);
      if (g.dtype === 'int32') {
        expect(a.equals(b)).toBe(true);
      } else {
        const fa = new Float32Array(a.buffer, a.byteOffset, a.byteLength / 4);
        const fb = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
        let maxG = 1;
        let maxD = 0;
        for (let i = 0; i < fb.length; i++) {
          maxG = Math.max(maxG, Math.abs(fb[i]));
          maxD = Math.max(maxD, Math.abs(fa[i] - fb[i]));
        }
        expect(maxD, n).toBeLessThanOrEqual(1e-3 * maxG);
      }
    }
  });

  it('tokenize --stdin-json and detokenize', () => {
    const cases = JSON.parse(readFileSync(`${GOLDEN}/tokenizer_cases.json`, 'utf8')).slice(0, 6);
    const r = trol(
      ['tokenize', '--model', MODEL, '--stdin-json'],
      JSON.stringify(cases.map((c: { text: string }) => c.text)),
    );
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.map((o: { ids: number[] }) => o.ids)).toEqual(cases.map((c: { ids: number[] }) => c.ids));
    expect(out.map((o: { pieces: string[] }) => o.pieces)).toEqual(cases.map((c: { pieces: string[] }) => c.pieces));
    const d = trol(['detokenize', '--model', MODEL, '--ids', cases[0].ids.join(',')]);
    expect(d.code).toBe(0);
    expect(d.stdout).toBe(`${cases[0].decoded}\n`);
  });

  it('info --json reports the adapter, features and limits', () => {
    const r = trol(['info', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(Array.isArray(j.adapter.features)).toBe(true);
  });

  it('verify passes on the fixture and exits 0', () => {
    const r = trol(['verify', '--model', MODEL, '--golden', GOLDEN, '--f32']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\d+ passed, 0 failed$/m);
    expect(r.stdout).not.toMatch(/^FAIL/m);
  });

  it('bad input: one line on stderr, typed, exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['generate', '--question', 'hi'], /^error: ArgumentError: --model is required$/],
      [['generate', '--model', MODEL, '--question', 'hi', '--temperature', 'hot'], /^error: ArgumentError: /],
      [
        ['generate', '--model', MODEL, '--question', 'hi', '--image', `${GOLDEN}/index.json`],
        /^error: ImageDecodeError: /,
      ],
      [['generate', '--model', 'test/fixtures/no-such-model', '--question', 'hi'], /^error: ConfigError: /],
      [['generate', '--model', MODEL, '--question', 'hi', '--weights', 'int3'], /^error: ArgumentError: /],
      [['frobnicate'], /^error: ArgumentError: unknown command/],
    ];
    for (const [args, pattern] of cases) {
      const r = trol(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(pattern);
      expect(r.stdout).toBe('');
    }
  });
});
