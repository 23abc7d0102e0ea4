import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UnsafePickleError, WeightsFormatError } from '../../src/errors.ts';
import { parseConfig } from '../../src/model/config.ts';
import { checkTensors, expectedGateTensors } from '../../src/model/weight-names.ts';
import { bytesSource, dirFiles } from '../../src/weights/byte-source.ts';
import { readTorchStateDict } from '../../src/weights/torch-pickle.ts';
import { ZipReader } from '../../src/weights/zip.ts';
import {
  f32Bytes,
  hexBytes,
  op,
  type PickleTensor,
  pk,
  statePickle,
  torchZip,
  u16Bytes,
  writeZip,
} from './builders.ts';
import { BF16_OFFSET_P4, SHARED_GATE_P2 } from './cpython-pickles.ts';

const FIXTURE = join(import.meta.dirname, '../fixtures/tiny-trol');
const gateBytes = new Uint8Array(readFileSync(join(FIXTURE, 'trol_gating.pt')));

const read = (bytes: Uint8Array, name = 'test.pt') => readTorchStateDict(bytesSource(name, bytes));

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e) => e,
  );
}

// numpy over the fixture's raw storages: first values and float64 sums.
const GATE_REFS: Record<string, { shape: number[]; first: number[]; sum: number }> = {
  '0.weight': {
    shape: [1, 64],
    first: [0.250732421875, 0.01178741455078125, -0.07958984375, 0.0655517578125],
    sum: 0.393998384475708,
  },
  '0.bias': { shape: [1], first: [0.5927734375], sum: 0.5927734375 },
  '1.weight': {
    shape: [1, 64],
    first: [0.12890625, -0.2257080078125, -0.10791015625, 0.123046875],
    sum: 0.9234695434570312,
  },
  '1.bias': { shape: [1], first: [-0.07025146484375], sum: -0.07025146484375 },
};

/** A one-tensor state_dict zip (F16 storage of `numel` elements, values 0..numel-1). */
function oneTensor(t: Partial<PickleTensor> & { shape: number[]; stride: number[] }, storageNumel = 6): Uint8Array {
  const full: PickleTensor = { name: 'w', storageType: 'HalfStorage', key: '0', numel: storageNumel, offset: 0, ...t };
  const F16_INTS = [0x0000, 0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600, 0x4700]; // 0..7
  const bits = F16_INTS.slice(0, storageNumel);
  return torchZip('archive', statePickle([full]), { '0': u16Bytes(bits) });
}

describe('torch pickle: the fixture trol_gating.pt', () => {
  it('loads the four float16 tensors with numpy-identical values', async () => {
    const sd = await readTorchStateDict((await dirFiles(FIXTURE).get('trol_gating.pt'))!);
    expect([...sd.keys()]).toEqual(['0.weight', '0.bias', '1.weight', '1.bias']);
    for (const [name, ref] of Object.entries(GATE_REFS)) {
      const t = sd.get(name)!;
      expect(t.name).toBe(name);
      expect(t.dtype).toBe('F16');
      expect(t.shape).toEqual(ref.shape);
      expect(Array.from(t.data.subarray(0, ref.first.length))).toEqual(ref.first);
      expect(t.data.reduce((a, b) => a + b, 0)).toBeCloseTo(ref.sum, 12);
    }
    const cfg = parseConfig(JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')));
    checkTensors(sd, expectedGateTensors(cfg), 'trol_gating.pt');
  });

  it('does not depend on the top-level folder name', async () => {
    const zip = await ZipReader.open(bytesSource('g.pt', gateBytes));
    const entries = [];
    for (const e of zip.entries.values()) {
      entries.push({ name: e.name.replace(/^trol_gating\//, 'some other-name/'), data: await zip.readEntry(e) });
    }
    expect(entries.map((e) => e.name)).toContain('some other-name/data.pkl');
    const renamed = await read(writeZip(entries), 'renamed.pt');
    const orig = await read(gateBytes);
    expect([...renamed.keys()]).toEqual([...orig.keys()]);
    for (const [k, t] of orig) expect(renamed.get(k)!.data).toEqual(t.data);
  });
});

describe('torch pickle: what CPython pickle writes', () => {
  it('a shared ModuleList state_dict with _metadata (protocol 2, shared storages, F32 + F16)', async () => {
    const zip = torchZip('gate', hexBytes(SHARED_GATE_P2), {
      '0': f32Bytes([0.5, -1.25, 3, 1e-3]),
      '1': u16Bytes([0xbc00]),
    });
    const sd = await read(zip);
    expect([...sd.keys()]).toEqual(['0.weight', '0.bias', '1.weight', '1.bias']);
    for (const i of [0, 1]) {
      const w = sd.get(`${i}.weight`)!;
      expect(w.dtype).toBe('F32');
      expect(w.shape).toEqual([1, 4]);
      expect(Array.from(w.data)).toEqual([0.5, -1.25, 3, Math.fround(1e-3)]);
      expect(w.storageKey).toBe('0');
      const b = sd.get(`${i}.bias`)!;
      expect([b.dtype, b.shape, Array.from(b.data), b.storageKey]).toEqual(['F16', [1], [-1], '1']);
    }
  });

  it('protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL), BF16, storage offsets and _rebuild_parameter', async () => {
    // bf16 storage of 10: value i*0.5 - 1 → bits of f32 (exact in bf16).
    const vals = Array.from({ length: 10 }, (_, i) => i * 0.5 - 1);
    const bits = vals.map((v) => new Uint32Array(Float32Array.from([v]).buffer)[0] >>> 16);
    const sd = await read(torchZip('x', hexBytes(BF16_OFFSET_P4), { st: u16Bytes(bits) }));
    const a = sd.get('a')!;
    expect([a.dtype, a.shape]).toEqual(['BF16', [2, 3]]);
    expect(Array.from(a.data)).toEqual(vals.slice(2, 8));
    expect(Array.from(sd.get('p')!.data)).toEqual(vals.slice(8, 10));
  });
});

describe('torch pickle: layouts', () => {
  it('honours the storage offset and accepts any stride on size-1 dims', async () => {
    const sd = await read(oneTensor({ offset: 2, shape: [1, 2, 1], stride: [99, 1, 7] }));
    expect(Array.from(sd.get('w')!.data)).toEqual([2, 3]);
  });

  it('refuses non-contiguous tensors and tensors beyond their storage', async () => {
    const t = await rejection(read(oneTensor({ shape: [2, 3], stride: [1, 2] }), 'nc.pt'));
    expect(t).toBeInstanceOf(WeightsFormatError);
    expect(t.message).toMatch(/nc\.pt: tensor "w" is not contiguous/);
    const o = await rejection(read(oneTensor({ offset: 1, shape: [2, 3], stride: [3, 1] }), 'over.pt'));
    expect(o).toBeInstanceOf(WeightsFormatError);
    expect(o.message).toMatch(/exceeds its storage/);
  });

  it('reads big-endian storages when byteorder says so', async () => {
    const be = new Uint8Array(8);
    new DataView(be.buffer).setFloat32(0, 1.5, false);
    new DataView(be.buffer).setFloat32(4, -2, false);
    const t: PickleTensor = {
      name: 'w',
      storageType: 'FloatStorage',
      key: '0',
      numel: 2,
      offset: 0,
      shape: [2],
      stride: [1],
    };
    const sd = await read(torchZip('b', statePickle([t]), { '0': be }, { byteorder: 'big' }));
    expect(Array.from(sd.get('w')!.data)).toEqual([1.5, -2]);
    const le = await read(torchZip('b', statePickle([t]), { '0': f32Bytes([1.5, -2]) }, { byteorder: 'little' }));
    expect(Array.from(le.get('w')!.data)).toEqual([1.5, -2]);
  });

  it('reads ZIP64 archives', async () => {
    const sd = await read(
      torchZip(
        'z',
        hexBytes(SHARED_GATE_P2),
        { '0': f32Bytes([1, 2, 3, 4]), '1': u16Bytes([0x3c00]) },
        { zip64: true },
      ),
    );
    expect(Array.from(sd.get('1.weight')!.data)).toEqual([1, 2, 3, 4]);
  });

  it('refuses dtypes it does not convert, naming them', async () => {
    const t: PickleTensor = {
      name: 'ids',
      storageType: 'LongStorage',
      key: '0',
      numel: 1,
      offset: 0,
      shape: [1],
      stride: [1],
    };
    const e = await rejection(read(torchZip('a', statePickle([t]), { '0': new Uint8Array(8) }), 'long.pt'));
    expect(e).toBeInstanceOf(WeightsFormatError);
    expect(e.message).toMatch(/long\.pt: tensor "ids" has dtype I64/);
  });
});

describe('torch pickle: unsafe pickles are refused without running anything', () => {
  const cases: [string, Uint8Array, string][] = [
    [
      'os.system via GLOBAL + REDUCE',
      pk(op.proto(2), op.global('os', 'system'), op.str('echo pwned'), op.tuple1, op.reduce, op.stop),
      'os.system',
    ],
    [
      'posix.system',
      pk(op.proto(2), op.global('posix', 'system'), op.str('id'), op.tuple1, op.reduce, op.stop),
      'posix.system',
    ],
    [
      'builtins.eval',
      pk(op.proto(2), op.global('builtins', 'eval'), op.str('1+1'), op.tuple1, op.reduce, op.stop),
      'builtins.eval',
    ],
    [
      'subprocess.check_output via STACK_GLOBAL (protocol 4)',
      pk(
        op.proto(4),
        0x8c,
        10,
        'subprocess',
        0x8c,
        12,
        'check_output',
        0x93,
        op.str('ls'),
        op.tuple1,
        op.reduce,
        op.stop,
      ),
      'subprocess.check_output',
    ],
    ['builtins.getattr', pk(op.proto(2), op.global('builtins', 'getattr'), op.stop), 'builtins.getattr'],
    ['torch.load', pk(op.proto(2), op.global('torch', 'load'), op.stop), 'torch.load'],
    [
      'torch._utils._rebuild_tensor_v3',
      pk(op.proto(2), op.global('torch._utils', '_rebuild_tensor_v3'), op.stop),
      'torch._utils._rebuild_tensor_v3',
    ],
  ];
  for (const [label, pickle, global] of cases) {
    it(label, async () => {
      const e = await rejection(read(torchZip('evil', pickle, {}), 'evil.pt'));
      expect(e).toBeInstanceOf(UnsafePickleError);
      expect(e.message).toContain(global);
      expect(e.message).toContain('evil.pt');
      expect((e as UnsafePickleError).details.global).toBe(global);
    });
  }

  it('a hostile call hidden inside an otherwise valid state_dict', async () => {
    const good = statePickle([
      { name: 'w', storageType: 'HalfStorage', key: '0', numel: 1, offset: 0, shape: [1], stride: [1] },
    ]);
    // Replace the backward_hooks OrderedDict() with os.system('x').
    const text = Array.from(good, (b) => String.fromCharCode(b)).join('');
    const hooks = 'ccollections\nOrderedDict\n)R';
    const i = text.lastIndexOf(hooks);
    const evil = pk(
      text.slice(0, i),
      op.global('os', 'system'),
      op.str('x'),
      op.tuple1,
      op.reduce,
      text.slice(i + hooks.length),
    );
    const e = await rejection(read(torchZip('a', evil, { '0': u16Bytes([0]) })));
    expect(e).toBeInstanceOf(UnsafePickleError);
    expect(e.message).toContain('os.system');
  });

  it('object-building and unknown opcodes', async () => {
    const ops: [Uint8Array, RegExp][] = [
      [pk(op.proto(2), 'i', 'os\nsystem\n', op.stop), /INST/],
      [pk(op.proto(2), op.global('collections', 'OrderedDict'), op.emptyTuple, 0x81, op.stop), /NEWOBJ/],
      [pk(op.proto(2), op.mark, 'o', op.stop), /OBJ/],
      [pk(op.proto(2), 0x82, 1, op.stop), /EXT1/],
      [pk(op.proto(2), 'P', 'x\n', op.stop), /PERSID/],
      [pk(op.proto(2), 0xff, op.stop), /unknown opcode 0xff/],
    ];
    for (const [p, re] of ops) {
      const e = await rejection(read(torchZip('a', p, {})));
      expect(e, String(re)).toBeInstanceOf(UnsafePickleError);
      expect(e.message).toMatch(re);
    }
  });

  it('calling a storage class, BUILD on a non-dict and foreign persistent ids are refused', async () => {
    const callStorage = pk(op.proto(2), op.global('torch', 'HalfStorage'), op.emptyTuple, op.reduce, op.stop);
    expect(await rejection(read(torchZip('a', callStorage, {})))).toBeInstanceOf(UnsafePickleError);
    const build = pk(op.proto(2), op.emptyTuple, op.emptyDict, op.build, op.stop);
    expect(await rejection(read(torchZip('a', build, {})))).toBeInstanceOf(UnsafePickleError);
    const pid = pk(op.proto(2), op.str('module'), op.str('os'), op.tuple2, op.binpersid, op.stop);
    expect(await rejection(read(torchZip('a', pid, {})))).toBeInstanceOf(UnsafePickleError);
  });
});

describe('torch pickle: broken files are a WeightsFormatError naming the file', () => {
  it('truncated zip', async () => {
    for (const cut of [gateBytes.length - 10, gateBytes.length >> 1, 100, 10]) {
      const e = await rejection(read(gateBytes.slice(0, cut), 'cut.pt'));
      expect(e, `cut at ${cut}`).toBeInstanceOf(WeightsFormatError);
      expect(e.message).toContain('cut.pt');
    }
  });

  it('truncated pickle, missing storage, CRC mismatch, compressed entry', async () => {
    const good = statePickle([
      { name: 'w', storageType: 'HalfStorage', key: '0', numel: 1, offset: 0, shape: [1], stride: [1] },
    ]);
    const cut = await rejection(read(torchZip('a', good.slice(0, good.length - 3), { '0': u16Bytes([0]) }), 'p.pt'));
    expect(cut).toBeInstanceOf(WeightsFormatError);
    expect(cut.message).toMatch(/p\.pt: bad pickle/);
    const missing = await rejection(read(torchZip('a', good, {}), 'm.pt'));
    expect(missing).toBeInstanceOf(WeightsFormatError);
    expect(missing.message).toMatch(/m\.pt: storage record data\/0 is missing/);
    const short = await rejection(read(torchZip('a', good, { '0': new Uint8Array(1) }), 's.pt'));
    expect(short.message).toMatch(/holds 1 bytes, expected 2/);
    const crc = await rejection(
      read(
        writeZip([
          { name: 'a/data.pkl', data: good },
          { name: 'a/data/0', data: u16Bytes([0]), badCrc: true },
        ]),
        'c.pt',
      ),
    );
    expect(crc).toBeInstanceOf(WeightsFormatError);
    expect(crc.message).toMatch(/c\.pt: CRC mismatch in entry a\/data\/0/);
    const deflated = await rejection(read(writeZip([{ name: 'a/data.pkl', data: good, method: 8 }]), 'd.pt'));
    expect(deflated).toBeInstanceOf(WeightsFormatError);
    expect(deflated.message).toMatch(/d\.pt: entry a\/data\.pkl is compressed \(zip method 8\)/);
  });

  it('not a torch zip: no data.pkl, two data.pkl, legacy format, top level not a dict', async () => {
    const e1 = await rejection(read(writeZip([{ name: 'a/version', data: pk('3\n') }]), 'n.pt'));
    expect(e1.message).toMatch(/n\.pt: expected exactly one <folder>\/data\.pkl/);
    const e2 = await rejection(
      read(
        writeZip([
          { name: 'a/data.pkl', data: pk(op.stop) },
          { name: 'b/data.pkl', data: pk(op.stop) },
        ]),
      ),
    );
    expect(e2.message).toMatch(/found 2/);
    const legacy = pk(0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, op.stop);
    const e3 = await rejection(read(legacy, 'old.pt'));
    expect(e3).toBeInstanceOf(WeightsFormatError);
    expect(e3.message).toMatch(/old\.pt: legacy/);
    const e4 = await rejection(read(torchZip('a', pk(op.proto(2), op.str('hi'), op.stop), {}), 'l.pt'));
    expect(e4).toBeInstanceOf(WeightsFormatError);
    expect(e4.message).toMatch(/expected a state_dict/);
    const e5 = await rejection(read(new TextEncoder().encode('hello, not a zip at all'), 'txt.pt'));
    expect(e5).toBeInstanceOf(WeightsFormatError);
  });
});
