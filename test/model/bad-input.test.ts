/**
 * Bad model folders give a typed error naming the file and the problem, before any engine exists, and leave
 * the GPU context usable (nothing half-loaded survives).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TrolEngine } from '../../src/engine.ts';
import {
  ConfigError,
  TokenizerError,
  type TrolError,
  UnsafePickleError,
  WeightsFormatError,
} from '../../src/errors.ts';
import { type ByteSource, bytesSource, mapFiles } from '../../src/weights/byte-source.ts';
import { createTestContext } from '../helpers/gpu.ts';
import { op, pk, torchZip } from '../weights/builders.ts';

const MODEL = 'test/fixtures/tiny-trol';

function folder(edit: (files: Map<string, Uint8Array>) => void) {
  const files = new Map<string, Uint8Array>();
  for (const f of readdirSync(MODEL)) {
    if (f !== 'golden') files.set(f, new Uint8Array(readFileSync(`${MODEL}/${f}`)));
  }
  edit(files);
  return mapFiles(new Map<string, ByteSource>([...files].map(([n, b]) => [n, bytesSource(n, b)])));
}

const json = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
const config = () => JSON.parse(readFileSync(`${MODEL}/config.json`, 'utf8'));

describe('bad model folders', async () => {
  const ctx = await createTestContext({ forceF32: true });
  const cases: [string, (f: Map<string, Uint8Array>) => void, new (...a: never[]) => TrolError, RegExp][] = [
    [
      'truncated safetensors',
      (f) => f.set('model.safetensors', f.get('model.safetensors')!.slice(0, 5000)),
      WeightsFormatError,
      /model\.safetensors/,
    ],
    [
      'safetensors header length past the end',
      (f) => {
        const b = f.get('model.safetensors')!.slice();
        new DataView(b.buffer).setUint32(0, 0x7fffffff, true);
        f.set('model.safetensors', b);
      },
      WeightsFormatError,
      /model\.safetensors/,
    ],
    [
      'config without hidden_size',
      (f) => {
        const c = config();
        delete c.hidden_size;
        f.set('config.json', json(c));
      },
      ConfigError,
      /hidden_size/,
    ],
    [
      'config with impossible heads',
      (f) => f.set('config.json', json({ ...config(), num_attention_heads: 5 })),
      ConfigError,
      /config\.json/,
    ],
    [
      'config that does not match the weights',
      (f) => f.set('config.json', json({ ...config(), intermediate_size: 128 })),
      WeightsFormatError,
      /feed_forward/,
    ],
    ['missing config.json', (f) => f.delete('config.json'), ConfigError, /config\.json/],
    [
      'corrupt tokenizer.model',
      (f) => f.set('tokenizer.model', f.get('tokenizer.model')!.slice(0, 100)),
      TokenizerError,
      /tokenizer/i,
    ],
    ['missing trol_gating.pt', (f) => f.delete('trol_gating.pt'), ConfigError, /trol_gating\.pt/],
    [
      'a pickle that calls os.system',
      (f) => {
        const evil = pk(op.proto(2), op.global('os', 'system'), op.str('echo pwned'), op.tuple1, op.reduce, op.stop);
        f.set('trol_gating.pt', torchZip('trol_gating', evil, {}));
      },
      UnsafePickleError,
      /os\.system/,
    ],
  ];
  for (const [name, edit, type, message] of cases) {
    it(`${name} → ${type.name}`, async () => {
      const err = await TrolEngine.create(folder(edit), { weights: 'f32', context: ctx }).then(
        () => null,
        (e) => e,
      );
      expect(err, name).toBeInstanceOf(type);
      expect(err.message).toMatch(message);
    });
  }
  it('the context still loads a good model afterwards, with progress ending at its total', async () => {
    const ticks: { loaded: number; total: number }[] = [];
    const engine = await TrolEngine.create(
      folder(() => {}),
      {
        weights: 'f32',
        context: ctx,
        onProgress: (p) => ticks.push(p),
      },
    );
    // Progress counts exactly the tensors uploaded: it ends at its total.
    expect(ticks.at(-1)).toEqual(expect.objectContaining({ loaded: ticks[0].total, total: ticks[0].total }));
    const r = await engine.complete({ question: 'Hi', maxNewTokens: 2, temperature: 0 });
    expect(r.generatedIds).toHaveLength(2);
    engine.destroy();
  });
});
