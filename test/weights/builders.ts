/**
 * Test-only writers for the formats the weight readers parse, written independently of src/weights:
 * a stored (method 0) zip writer with optional ZIP64 records, a pickle byte assembler, a state_dict pickle
 * emitter that mimics torch.save (protocol 2), and a safetensors writer.
 */

// ---------------------------------------------------------------------------------------------------------
// zip

export interface ZipInput {
  name: string;
  data: Uint8Array;
  /** Method written in the headers (the bytes are always stored raw); 8 fakes a deflated entry. */
  method?: number;
  /** Corrupt the recorded CRC. */
  badCrc?: boolean;
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

class Writer {
  private chunks: number[] = [];
  get length(): number {
    return this.chunks.length;
  }
  u8(v: number): this {
    this.chunks.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v).u8(v >>> 8);
  }
  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }
  u64(v: number): this {
    return this.u32(v % 2 ** 32).u32(Math.floor(v / 2 ** 32));
  }
  bytes(b: Uint8Array): this {
    for (const x of b) this.chunks.push(x);
    return this;
  }
  done(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

/** A zip with stored entries, like torch.save writes (64-byte aligned data via a padding extra field). */
export function writeZip(entries: ZipInput[], opts: { zip64?: boolean; comment?: string } = {}): Uint8Array {
  const w = new Writer();
  const enc = new TextEncoder();
  const central: { e: ZipInput; name: Uint8Array; offset: number; crc: number }[] = [];
  for (const e of entries) {
    const name = enc.encode(e.name);
    const offset = w.length;
    const crc = e.badCrc ? crc32(e.data) ^ 1 : crc32(e.data);
    // Pad so the data starts on a 64-byte boundary, as PyTorch does.
    const pad = (64 - ((offset + 30 + name.length + 4) % 64)) % 64;
    w.u32(0x04034b50)
      .u16(20)
      .u16(0)
      .u16(e.method ?? 0)
      .u16(0)
      .u16(0);
    w.u32(crc)
      .u32(e.data.length)
      .u32(e.data.length)
      .u16(name.length)
      .u16(4 + pad);
    w.bytes(name).u16(0x4654).u16(pad).bytes(new Uint8Array(pad));
    w.bytes(e.data);
    central.push({ e, name, offset, crc });
  }
  const cdStart = w.length;
  for (const { e, name, offset, crc } of central) {
    const z64 = opts.zip64;
    w.u32(0x02014b50)
      .u16(45)
      .u16(45)
      .u16(0)
      .u16(e.method ?? 0)
      .u16(0)
      .u16(0);
    w.u32(crc);
    w.u32(z64 ? 0xffffffff : e.data.length).u32(z64 ? 0xffffffff : e.data.length);
    w.u16(name.length)
      .u16(z64 ? 4 + 24 : 0)
      .u16(0)
      .u16(0)
      .u16(0)
      .u32(0);
    w.u32(z64 ? 0xffffffff : offset);
    w.bytes(name);
    if (z64) w.u16(0x0001).u16(24).u64(e.data.length).u64(e.data.length).u64(offset);
  }
  const cdSize = w.length - cdStart;
  if (opts.zip64) {
    const z64Start = w.length;
    w.u32(0x06064b50).u64(44).u16(45).u16(45).u32(0).u32(0);
    w.u64(entries.length).u64(entries.length).u64(cdSize).u64(cdStart);
    w.u32(0x07064b50).u32(0).u64(z64Start).u32(1);
  }
  const comment = enc.encode(opts.comment ?? '');
  w.u32(0x06054b50).u16(0).u16(0);
  w.u16(opts.zip64 ? 0xffff : entries.length).u16(opts.zip64 ? 0xffff : entries.length);
  w.u32(opts.zip64 ? 0xffffffff : cdSize).u32(opts.zip64 ? 0xffffffff : cdStart);
  w.u16(comment.length).bytes(comment);
  return w.done();
}

// ---------------------------------------------------------------------------------------------------------
// pickle

export type PickPart = number | string | Uint8Array | PickPart[];

/** Assembles pickle bytes: numbers are single bytes, strings are latin1 bytes. */
export function pk(...parts: PickPart[]): Uint8Array {
  const out: number[] = [];
  const add = (p: PickPart): void => {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') for (const ch of p) out.push(ch.charCodeAt(0));
    else if (p instanceof Uint8Array) out.push(...p);
    else p.forEach(add);
  };
  parts.forEach(add);
  return Uint8Array.from(out);
}

const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

export const op = {
  proto: (v: number) => [0x80, v],
  global: (module: string, name: string) => ['c', `${module}\n${name}\n`],
  /** BINUNICODE */
  str: (s: string) => {
    const b = new TextEncoder().encode(s);
    return ['X', le32(b.length), b];
  },
  /** BININT1 / BININT2 / BININT for non-negative ints. */
  int: (v: number): PickPart[] => (v < 256 ? ['K', v] : v < 65536 ? ['M', v & 0xff, v >>> 8] : ['J', le32(v)]),
  mark: '(',
  tuple: 't',
  tuple1: 0x85,
  tuple2: 0x86,
  emptyTuple: ')',
  emptyDict: '}',
  reduce: 'R',
  build: 'b',
  setitems: 'u',
  setitem: 's',
  binpersid: 'Q',
  newfalse: 0x89,
  stop: '.',
};

export interface PickleTensor {
  name: string;
  storageType: string; // 'HalfStorage' | 'FloatStorage' | …
  key: string;
  numel: number;
  offset: number;
  shape: number[];
  stride: number[];
}

const intTuple = (xs: number[]): PickPart[] => {
  if (xs.length === 0) return [op.emptyTuple];
  if (xs.length === 1) return [op.int(xs[0]), op.tuple1];
  if (xs.length === 2) return [op.int(xs[0]), op.int(xs[1]), op.tuple2];
  return [op.mark, ...xs.map(op.int), op.tuple];
};

/** A state_dict pickle as torch.save writes it (protocol 2; no memo use, which the format allows). */
export function statePickle(tensors: PickleTensor[]): Uint8Array {
  const body: PickPart[] = [op.proto(2), op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce, op.mark];
  for (const t of tensors) {
    body.push(op.str(t.name), op.global('torch._utils', '_rebuild_tensor_v2'), op.mark);
    body.push(op.mark, op.str('storage'), op.global('torch', t.storageType), op.str(t.key), op.str('cpu'));
    body.push(op.int(t.numel), op.tuple, op.binpersid);
    body.push(op.int(t.offset), intTuple(t.shape), intTuple(t.stride), op.newfalse);
    body.push(op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce, op.tuple, op.reduce);
  }
  body.push(op.setitems, op.stop);
  return pk(body);
}

/** A torch.save-style zip around a pickle and storages (`<folder>/data.pkl`, `<folder>/data/<key>`, …). */
export function torchZip(
  folder: string,
  pickle: Uint8Array,
  storages: Record<string, Uint8Array>,
  extra: { byteorder?: string; zip64?: boolean } = {},
): Uint8Array {
  const enc = new TextEncoder();
  const entries: ZipInput[] = [{ name: `${folder}/data.pkl`, data: pickle }];
  if (extra.byteorder) entries.push({ name: `${folder}/byteorder`, data: enc.encode(extra.byteorder) });
  for (const [k, v] of Object.entries(storages)) entries.push({ name: `${folder}/data/${k}`, data: v });
  entries.push({ name: `${folder}/version`, data: enc.encode('3\n') });
  return writeZip(entries, { zip64: extra.zip64 });
}

export function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// safetensors

export interface StInput {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Writes a safetensors file with tensors packed in order (header padded to 8 bytes with spaces). */
export function writeSafetensors(tensors: StInput[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  return assembleSafetensors(JSON.stringify(header), concat(tensors.map((t) => t.data)));
}

/** Header text + data section → file bytes, with the header length as given (or the real one). */
export function assembleSafetensors(headerJson: string, data: Uint8Array, headerLen?: bigint): Uint8Array {
  let h = new TextEncoder().encode(headerJson);
  const padded = Math.ceil(h.length / 8) * 8;
  if (padded !== h.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(h);
    h = p;
  }
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** Splits a safetensors file (parsed here, independently of the reader) into header JSON and data. */
export function splitSafetensors(bytes: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return { header, data: bytes.slice(8 + n) };
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const u16Bytes = (bits: number[]): Uint8Array => new Uint8Array(Uint16Array.from(bits).buffer);
export const f32Bytes = (vals: number[]): Uint8Array => new Uint8Array(Float32Array.from(vals).buffer);

/** Fast exact comparison of two typed arrays' bytes (vitest's deep equality is slow on big arrays). */
export function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
