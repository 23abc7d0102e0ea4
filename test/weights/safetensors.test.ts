import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeightsFormatError } from '../../src/errors.ts';
import { readConfig } from '../../src/model/config.ts';
import { checkTensors, expectedTensors } from '../../src/model/weight-names.ts';
import { blobSource, bytesSource, dirFiles, mapFiles } from '../../src/weights/byte-source.ts';
import { SafetensorsIndex } from '../../src/weights/safetensors.ts';
import {
  assembleSafetensors,
  f32Bytes,
  type StInput,
  sameBytes,
  splitSafetensors,
  u16Bytes,
  writeSafetensors,
} from './builders.ts';

const FIXTURE = join(import.meta.dirname, '../fixtures/tiny-trol');
const fixtureBytes = new Uint8Array(readFileSync(join(FIXTURE, 'model.safetensors')));

/** An index over one in-memory file called `name`. */
const openBytes = (bytes: Uint8Array, name = 'test.safetensors') =>
  SafetensorsIndex.open(mapFiles(new Map([['model.safetensors', bytesSource(name, bytes)]])));

/** Re-serialises the fixture after editing its header (parsed here, not by the reader). */
function editFixture(edit: (h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void) {
  const { header, data } = splitSafetensors(fixtureBytes);
  edit(header as Parameters<typeof edit>[0]);
  return assembleSafetensors(JSON.stringify(header), data);
}

async function expectFormatError(p: Promise<unknown>, file: string, what: RegExp): Promise<WeightsFormatError> {
  const err = await p.then(
    () => null,
    (e) => e,
  );
  expect(err, `expected a WeightsFormatError matching ${what}`).toBeInstanceOf(WeightsFormatError);
  expect(err.message).toContain(file);
  expect(err.message).toMatch(what);
  expect(err.kind).toBe('input');
  return err;
}

// Independent reference values: numpy over the raw f16 bytes (float64 sums).
const PY_REFS: Record<string, { first: number[]; last: number; sum: number; absSum: number }> = {
  'model.norm.weight': {
    first: [1.0751953125, 1.0419921875, 1.1455078125],
    last: 1.2255859375,
    sum: 64.22998046875,
    absSum: 64.22998046875,
  },
  'model.tok_embeddings.weight': {
    first: [-0.2154541015625, -0.73486328125, -1.001953125],
    last: 0.1904296875,
    sum: 54.03645074367523,
    absSum: 22888.12044632435,
  },
  'output.weight': {
    first: [-0.086181640625, -0.260498046875, -0.52197265625],
    last: -0.286376953125,
    sum: -54.22302198410034,
    absSum: 12243.05430829525,
  },
  'vit.vision_tower.vision_model.embeddings.patch_embedding.weight': {
    first: [0.03656005859375, -0.03399658203125, 0.034423828125],
    last: 0.01708984375,
    sum: -6.471375465393066,
    absSum: 623.8467701673508,
  },
  'model.layers.1.feed_forward.w2.lora_B.weight': {
    first: [-0.2393798828125, -0.01491546630859375, 0.08135986328125],
    last: 0.28271484375,
    sum: -1.9446992874145508,
    absSum: 73.87819004058838,
  },
};

describe('safetensors: the tiny-trol fixture', () => {
  it('has every tensor of trol-model.md §3.2 (scaled to the config) with the right shape', async () => {
    const files = dirFiles(FIXTURE);
    const cfg = await readConfig(files);
    const st = await SafetensorsIndex.open(files);
    const expected = expectedTensors(cfg);
    for (const e of expected) {
      const t = st.tensors.get(e.name);
      expect(t, e.name).toBeDefined();
      expect(t!.shape, e.name).toEqual(e.shape);
      expect(t!.dtype).toBe('F16');
    }
    const check = checkTensors(st.tensors, expected, 'model.safetensors');
    expect(check.extra).toEqual([]);
    expect(st.tensors.size).toBe(80);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect(st.unsupported.size).toBe(0);
  });

  it('reads values that match numpy', async () => {
    const st = await SafetensorsIndex.open(dirFiles(FIXTURE));
    for (const [name, ref] of Object.entries(PY_REFS)) {
      const v = await st.readF32(name);
      expect(Array.from(v.subarray(0, 3)), name).toEqual(ref.first);
      expect(v[v.length - 1]).toBe(ref.last);
      let sum = 0;
      let abs = 0;
      for (const x of v) {
        sum += x;
        abs += Math.abs(x);
      }
      expect(Math.abs(sum - ref.sum), `${name} sum`).toBeLessThan(1e-9 * ref.absSum);
      expect(Math.abs(abs - ref.absSum), `${name} abs sum`).toBeLessThan(1e-9 * ref.absSum);
    }
  });

  it('readF16Bits is exact for F16, and row ranges slice dim 0', async () => {
    const st = await SafetensorsIndex.open(dirFiles(FIXTURE));
    const name = 'model.tok_embeddings.weight';
    const raw = await st.readRaw(name);
    const bits = await st.readF16Bits(name);
    expect(sameBytes(bits, raw)).toBe(true);
    const rows = await st.readF16Bits(name, { start: 640, count: 1 }); // the <image> row
    expect(sameBytes(rows, bits.subarray(640 * 64, 641 * 64))).toBe(true);
    const f = await st.readF32(name, { start: 3, count: 5 });
    expect(sameBytes(f, (await st.readF32(name)).subarray(3 * 64, 8 * 64))).toBe(true);
    await expectFormatError(st.readRaw(name, { start: 640, count: 2 }), 'model.safetensors', /row range/);
    await expectFormatError(st.readF32('model.nope'), 'model.safetensors', /no tensor named "model.nope"/);
  });

  it('bytesSource and blobSource give identical indexes and bytes', async () => {
    const a = await openBytes(fixtureBytes);
    const b = await SafetensorsIndex.open(
      mapFiles(new Map([['model.safetensors', blobSource('blob.safetensors', new Blob([fixtureBytes]))]])),
    );
    const c = await SafetensorsIndex.open(dirFiles(FIXTURE));
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    for (const [name, t] of a.tensors) {
      const tb = b.tensors.get(name)!;
      expect([tb.begin, tb.end, tb.shape, tb.dtype]).toEqual([t.begin, t.end, t.shape, t.dtype]);
      const raw = await a.readRaw(name);
      expect(sameBytes(await b.readRaw(name), raw), name).toBe(true);
      expect(sameBytes(await c.readRaw(name), raw), name).toBe(true);
    }
  });
});

describe('safetensors: corrupt files are a WeightsFormatError naming the file', () => {
  it('truncated file', async () => {
    await expectFormatError(
      openBytes(fixtureBytes.slice(0, fixtureBytes.length - 100), 'cut.safetensors'),
      'cut.safetensors',
      /truncated/,
    );
    await expectFormatError(
      openBytes(fixtureBytes.slice(0, 5000), 'cut.safetensors'),
      'cut.safetensors',
      /past the end/,
    );
    await expectFormatError(openBytes(fixtureBytes.slice(0, 5), 'tiny.safetensors'), 'tiny.safetensors', /too short/);
  });

  it('header length too big', async () => {
    const b = fixtureBytes.slice();
    new DataView(b.buffer).setBigUint64(0, 1n << 40n, true);
    await expectFormatError(openBytes(b, 'big.safetensors'), 'big.safetensors', /exceeds the 100000000-byte limit/);
    new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true);
    await expectFormatError(openBytes(b, 'big.safetensors'), 'big.safetensors', /past the end of the file/);
  });

  it('overlapping offsets', async () => {
    const b = editFixture((h) => {
      const a = h['model.norm.weight'].data_offsets;
      h['vision_proj.0.bias'].data_offsets = [a[0] + 2, a[1] + 2]; // same size (64 f16), shifted into its neighbour
    });
    const err = await expectFormatError(openBytes(b, 'ovl.safetensors'), 'ovl.safetensors', /overlap/);
    expect(err.message).toContain('model.norm.weight');
  });

  it('wrong byte length, bad shape, bad offsets', async () => {
    const wrongLen = editFixture((h) => {
      h['model.norm.weight'].shape = [63];
    });
    await expectFormatError(
      openBytes(wrongLen, 'len.safetensors'),
      'len.safetensors',
      /"model.norm.weight" .*needs 126 bytes/,
    );
    for (const shape of [[-64], [64.5], ['64'], 64]) {
      const b = editFixture((h) => {
        (h['model.norm.weight'] as { shape: unknown }).shape = shape;
      });
      await expectFormatError(openBytes(b, 'shape.safetensors'), 'shape.safetensors', /invalid shape/);
    }
    for (const offs of [[10, 4], [0], [0, -2], [0.5, 128.5]]) {
      const b = editFixture((h) => {
        h['model.norm.weight'].data_offsets = offs;
      });
      await expectFormatError(openBytes(b, 'offs.safetensors'), 'offs.safetensors', /invalid data_offsets/);
    }
    const past = editFixture((h) => {
      const n = h['output.weight'].data_offsets;
      h['output.weight'].data_offsets = [n[0] + 1_000_000, n[1] + 1_000_000];
    });
    await expectFormatError(openBytes(past, 'past.safetensors'), 'past.safetensors', /truncated/);
  });

  it('bad dtype; known-but-unsupported dtypes load and fail on read', async () => {
    const bad = editFixture((h) => {
      h['model.norm.weight'].dtype = 'Q4_K';
    });
    const err = await expectFormatError(
      openBytes(bad, 'dt.safetensors'),
      'dt.safetensors',
      /"model.norm.weight" has unknown dtype "Q4_K"/,
    );
    expect(err.details.tensor).toBe('model.norm.weight');
    const i64 = editFixture((h) => {
      h['model.norm.weight'].dtype = 'I64';
      h['model.norm.weight'].shape = [16];
    });
    const st = await openBytes(i64, 'i64.safetensors');
    expect(st.tensors.has('model.norm.weight')).toBe(false);
    expect(st.unsupported.get('model.norm.weight')?.dtype).toBe('I64');
    await expectFormatError(st.readF32('model.norm.weight'), 'i64.safetensors', /"model.norm.weight" has dtype I64/);
  });

  it('bad JSON, non-object JSON, bad metadata', async () => {
    const { data } = splitSafetensors(fixtureBytes);
    await expectFormatError(
      openBytes(assembleSafetensors('{"a": [1, 2', data), 'j.safetensors'),
      'j.safetensors',
      /not valid UTF-8 JSON/,
    );
    await expectFormatError(
      openBytes(assembleSafetensors('[1, 2, 3]', data), 'j.safetensors'),
      'j.safetensors',
      /not an object/,
    );
    const badUtf8 = assembleSafetensors('{"x": 1}', data);
    badUtf8[10] = 0xff;
    await expectFormatError(openBytes(badUtf8, 'u.safetensors'), 'u.safetensors', /not valid UTF-8 JSON/);
    const meta = editFixture((h) => {
      (h as Record<string, unknown>).__metadata__ = { format: 3 };
    });
    await expectFormatError(openBytes(meta, 'm.safetensors'), 'm.safetensors', /__metadata__.format is not a string/);
    const entry = editFixture((h) => {
      (h as Record<string, unknown>)['model.norm.weight'] = [1, 2];
    });
    await expectFormatError(openBytes(entry, 'e.safetensors'), 'e.safetensors', /entry for tensor "model.norm.weight"/);
  });

  it('no weights at all', async () => {
    await expectFormatError(SafetensorsIndex.open(mapFiles(new Map())), 'model.safetensors', /neither/);
  });
});

describe('safetensors: sharded checkpoints', () => {
  let dir: string;
  let whole: SafetensorsIndex;
  let shardA: StInput[];
  let shardB: StInput[];
  const indexJson = (map: Record<string, string>) =>
    JSON.stringify({ metadata: { total_size: 454144 }, weight_map: map });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trol-shards-'));
    whole = await openBytes(fixtureBytes);
    const all: StInput[] = [];
    for (const [name, t] of whole.tensors)
      all.push({ name, dtype: t.dtype, shape: t.shape, data: await whole.readRaw(name) });
    shardA = all.filter((_, i) => i % 2 === 0);
    shardB = all.filter((_, i) => i % 2 === 1);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeShards(sub: string, map: Record<string, string>, a = shardA, b = shardB): Promise<string> {
    const d = join(dir, sub);
    await import('node:fs/promises').then((fs) => fs.mkdir(d));
    await writeFile(join(d, 'model-00001-of-00002.safetensors'), writeSafetensors(a, { format: 'pt' }));
    await writeFile(join(d, 'model-00002-of-00002.safetensors'), writeSafetensors(b, { format: 'pt' }));
    await writeFile(join(d, 'model.safetensors.index.json'), indexJson(map));
    return d;
  }
  const mapOf = (a: StInput[], b: StInput[]) => ({
    ...Object.fromEntries(a.map((t) => [t.name, 'model-00001-of-00002.safetensors'])),
    ...Object.fromEntries(b.map((t) => [t.name, 'model-00002-of-00002.safetensors'])),
  });

  it('a 2-shard copy reads identically', async () => {
    const d = await writeShards('ok', mapOf(shardA, shardB));
    const st = await SafetensorsIndex.open(dirFiles(d));
    expect(st.tensors.size).toBe(whole.tensors.size);
    expect(st.metadata.total_size).toBe('454144');
    expect(st.metadata.format).toBe('pt');
    for (const [name, t] of whole.tensors) {
      expect(st.tensors.get(name)!.shape).toEqual(t.shape);
      expect(sameBytes(await st.readRaw(name), await whole.readRaw(name)), name).toBe(true);
    }
    expect(st.tensors.get(shardB[0].name)!.source.name).toContain('model-00002-of-00002.safetensors');
  });

  it('a weight_map entry missing from its shard is an error', async () => {
    const map = mapOf(shardA, shardB);
    map[shardA[0].name] = 'model-00002-of-00002.safetensors';
    const d = await writeShards('wrong', map);
    await expectFormatError(
      SafetensorsIndex.open(dirFiles(d)),
      'model.safetensors.index.json',
      new RegExp(`"${shardA[0].name}" is listed`),
    );
  });

  it('a missing shard, a tensor in two shards, a bad shard name and a bad index are errors', async () => {
    const missing = await writeShards('missing', {
      ...mapOf(shardA, shardB),
      extra: 'model-00003-of-00003.safetensors',
    });
    await expectFormatError(
      SafetensorsIndex.open(dirFiles(missing)),
      'index.json',
      /model-00003-of-00003.safetensors .*not found/,
    );
    const dup = await writeShards('dup', mapOf(shardA, shardB), shardA, [...shardB, shardA[1]]);
    await expectFormatError(SafetensorsIndex.open(dirFiles(dup)), 'index.json', /more than one shard/);
    const evil = await writeShards('evil', { ...mapOf(shardA, shardB), x: '../ok/model-00001-of-00002.safetensors' });
    await expectFormatError(SafetensorsIndex.open(dirFiles(evil)), 'index.json', /invalid shard/);
    const files = mapFiles(
      new Map([
        ['model.safetensors.index.json', bytesSource('idx.json', new TextEncoder().encode('{"weight_map": 3}'))],
      ]),
    );
    await expectFormatError(SafetensorsIndex.open(files), 'idx.json', /weight_map/);
  });
});

describe('safetensors: BF16 and F32 conversions', () => {
  // F32 values and their f16 bits (worked out by hand: round to nearest even, overflow → inf, tiny → 0).
  const f32Vals = [1, -2.5, 65504, 70000, 1e-8, 2 ** -24, 0.1, 65520, -0];
  const f32ToF16 = [0x3c00, 0xc100, 0x7bff, 0x7c00, 0x0000, 0x0001, 0x2e66, 0x7c00, 0x8000];
  // BF16 bits, their exact f32 values, and f16 bits.
  const bf16 = [0x3f80, 0xc020, 0x4049, 0x7f80, 0x0001, 0x3dcd];
  const bf16Vals = [1, -2.5, 3.140625, Number.POSITIVE_INFINITY, 2 ** -133, 0.10009765625];
  const bf16ToF16 = [0x3c00, 0xc100, 0x4248, 0x7c00, 0x0000, 0x2e68];
  // F16 specials.
  const f16 = [0x7c00, 0x0001, 0xfbff, 0x3555];
  const f16Vals = [Number.POSITIVE_INFINITY, 2 ** -24, -65504, 0.333251953125];

  const file = writeSafetensors([
    { name: 'f32', dtype: 'F32', shape: [3, 3], data: f32Bytes(f32Vals) },
    { name: 'bf16', dtype: 'BF16', shape: [6], data: u16Bytes(bf16) },
    { name: 'f16', dtype: 'F16', shape: [2, 2], data: u16Bytes(f16) },
    { name: 'empty', dtype: 'F32', shape: [0, 5], data: new Uint8Array(0) },
    { name: 'scalar', dtype: 'F32', shape: [], data: f32Bytes([7]) },
  ]);

  it('reads F32, BF16 and F16 as f32 exactly', async () => {
    const st = await openBytes(file, 'conv.safetensors');
    expect(Array.from(await st.readF32('f32'))).toEqual(f32Vals.map((v) => Math.fround(v)));
    expect(Array.from(await st.readF32('bf16'))).toEqual(bf16Vals);
    expect(Array.from(await st.readF32('f16'))).toEqual(f16Vals);
    expect(Array.from(await st.readF32('scalar'))).toEqual([7]);
    expect((await st.readF32('empty')).length).toBe(0);
    expect(Array.from(await st.readF32('f32', { start: 1, count: 1 }))).toEqual(
      [70000, 1e-8, 2 ** -24].map(Math.fround),
    );
  });

  it('rounds F32 and BF16 to f16 bits', async () => {
    const st = await openBytes(file, 'conv.safetensors');
    expect(Array.from(await st.readF16Bits('f32'))).toEqual(f32ToF16);
    expect(Array.from(await st.readF16Bits('bf16'))).toEqual(bf16ToF16);
    expect(Array.from(await st.readF16Bits('f16'))).toEqual(f16);
  });
});
