/**
 * safetensors reader (single file or sharded), reading only by byte range.
 *
 * File layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section. The JSON maps
 * tensor name → { dtype, shape, data_offsets: [begin, end] } (offsets relative to the data section), plus an
 * optional `__metadata__` of string → string. Everything in the header is validated before any tensor byte
 * is trusted: N within the file and ≤ 100 MB, JSON object, known dtype, integer shape, end − begin =
 * numel × dtype size, no overlaps, and the file long enough for the largest `end` (else: truncated).
 * Every failure is a `WeightsFormatError` whose message starts with the file's name.
 *
 * Dtypes: F16, BF16 and F32 are read (`tensors`). Other standard safetensors dtypes (I64, U8, F64, …) are
 * validated and listed in `unsupported` (a checkpoint may carry e.g. an I64 `position_ids` buffer); reading
 * one is a `WeightsFormatError` naming the tensor and dtype. An unknown dtype string fails at open.
 *
 * Sharded checkpoints: `model.safetensors.index.json` with `weight_map` (name → shard file); every shard is
 * opened and validated; a name listed in `weight_map` but absent from its shard, or a name present in two
 * shards, is an error. If both `model.safetensors` and the index exist, the single file wins.
 */
import { WeightsFormatError } from '../errors.ts';
import { f16BitsToF32, f32ToF16Bits } from '../util/f16.ts';
import type { ByteSource, ModelFiles } from './byte-source.ts';

export type StDType = 'F16' | 'BF16' | 'F32';

export interface TensorInfo {
  name: string;
  dtype: StDType;
  shape: number[];
  source: ByteSource;
  /** Absolute byte offsets in `source` (header included), `end` exclusive. */
  begin: number;
  end: number;
}

/** A validated tensor whose dtype this engine does not convert (kept so callers can see it exists). */
export interface UnsupportedTensorInfo extends Omit<TensorInfo, 'dtype'> {
  dtype: string;
}

/** A row range over the first dimension. */
export interface RowRange {
  start: number;
  count: number;
}

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
export const MAX_HEADER_BYTES = 100_000_000;

/** Element sizes of every dtype the safetensors format defines. */
const DTYPE_BYTES: Record<string, number> = {
  F16: 2,
  BF16: 2,
  F32: 4,
  F64: 8,
  I8: 1,
  I16: 2,
  I32: 4,
  I64: 8,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};
const SUPPORTED = new Set<string>(['F16', 'BF16', 'F32']);

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(file: string, msg: string, details: Record<string, unknown> = {}): WeightsFormatError {
  return new WeightsFormatError(`${file}: ${msg}`, { file, ...details });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export interface ParsedFile {
  tensors: TensorInfo[];
  unsupported: UnsupportedTensorInfo[];
  metadata: Record<string, string>;
}

/** Reads and validates one safetensors file's header. */
export async function parseSafetensorsHeader(source: ByteSource): Promise<ParsedFile> {
  const file = source.name;
  const size = await source.size();
  if (size < 8) throw fail(file, `too short for a safetensors file (${size} bytes)`);
  const lenBytes = await source.read(0, 8);
  const n64 = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw fail(file, `header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not safetensors)`);
  }
  const n = Number(n64);
  if (8 + n > size) throw fail(file, `header length ${n} runs past the end of the file (${size} bytes); truncated?`);
  if (n < 2) throw fail(file, `header of ${n} bytes cannot hold a JSON object`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await source.read(8, n)));
  } catch (e) {
    throw fail(file, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) throw fail(file, 'header JSON is not an object');

  const dataStart = 8 + n;
  const metadata: Record<string, string> = {};
  const entries: (UnsupportedTensorInfo & { rel: [number, number] })[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(raw)) throw fail(file, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw fail(file, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const where = { tensor: name };
    if (!isObject(raw)) throw fail(file, `entry for tensor "${name}" is not an object`, where);
    const { dtype, shape, data_offsets: offs } = raw;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      throw fail(file, `tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`, { ...where, dtype });
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw fail(file, `tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`, where);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount) || offs[0] > offs[1]) {
      throw fail(file, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offs)}`, where);
    }
    let numel = 1;
    for (const d of shape as number[]) numel *= d;
    if (!Number.isSafeInteger(numel * DTYPE_BYTES[dtype])) throw fail(file, `tensor "${name}" is too large`, where);
    const [b, e] = offs as [number, number];
    if (e - b !== numel * DTYPE_BYTES[dtype]) {
      throw fail(
        file,
        `tensor "${name}" (${dtype} [${shape}]) needs ${numel * DTYPE_BYTES[dtype]} bytes but data_offsets span ${e - b}`,
        where,
      );
    }
    entries.push({
      name,
      dtype,
      shape: shape as number[],
      source,
      begin: dataStart + b,
      end: dataStart + e,
      rel: [b, e],
    });
  }

  const maxEnd = entries.reduce((m, t) => Math.max(m, t.rel[1]), 0);
  if (dataStart + maxEnd > size) {
    throw fail(
      file,
      `truncated: the header describes ${maxEnd} data bytes after a ${dataStart}-byte header, but the file has ${size} bytes`,
      { size, expected: dataStart + maxEnd },
    );
  }
  const sorted = entries.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) {
      throw fail(file, `tensors "${sorted[i - 1].name}" and "${sorted[i].name}" overlap`, {
        tensor: sorted[i].name,
      });
    }
  }

  const tensors: TensorInfo[] = [];
  const unsupported: UnsupportedTensorInfo[] = [];
  for (const { rel: _rel, ...t } of entries) {
    if (SUPPORTED.has(t.dtype)) tensors.push(t as TensorInfo);
    else unsupported.push(t);
  }
  return { tensors, unsupported, metadata };
}

// ---------------------------------------------------------------------------------------------------------
// Conversions (host little-endian views when aligned; DataView otherwise).

let f16Table: Float32Array | null = null;
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32(i);
  }
  return f16Table;
}

function asU16(raw: Uint8Array): Uint16Array {
  if (LITTLE_ENDIAN_HOST && raw.byteOffset % 2 === 0)
    return new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Uint16Array(raw.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint16(2 * i, true);
  return out;
}

function asF32(raw: Uint8Array): Float32Array {
  if (LITTLE_ENDIAN_HOST && raw.byteOffset % 4 === 0)
    return new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(raw.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

/** Converts little-endian raw bytes of `dtype` to f32 values. */
export function rawToF32(raw: Uint8Array, dtype: StDType): Float32Array {
  if (dtype === 'F32') return asF32(raw);
  const bits = asU16(raw);
  const out = new Float32Array(bits.length);
  if (dtype === 'F16') {
    const t = f16ToF32Table();
    for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  } else {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  }
  return out;
}

/** Converts little-endian raw bytes of `dtype` to f16 bits (round to nearest even; beyond ±65504 → ±inf). */
export function rawToF16Bits(raw: Uint8Array, dtype: StDType): Uint16Array {
  if (dtype === 'F16') return asU16(raw);
  const vals = rawToF32(raw, dtype);
  const out = new Uint16Array(vals.length);
  for (let i = 0; i < vals.length; i++) out[i] = f32ToF16Bits(vals[i]);
  return out;
}

// ---------------------------------------------------------------------------------------------------------

export class SafetensorsIndex {
  /** Names of the files read (one, or the index file then its shards), for messages. */
  readonly files: string[];

  constructor(
    public tensors: Map<string, TensorInfo>,
    public metadata: Record<string, string>,
    readonly unsupported: Map<string, UnsupportedTensorInfo> = new Map(),
    files: string[] = [],
  ) {
    this.files = files;
  }

  static async open(files: ModelFiles): Promise<SafetensorsIndex> {
    const single = await files.get(SINGLE_FILE);
    if (single) {
      const p = await parseSafetensorsHeader(single);
      return new SafetensorsIndex(
        new Map(p.tensors.map((t) => [t.name, t])),
        p.metadata,
        new Map(p.unsupported.map((t) => [t.name, t])),
        [single.name],
      );
    }
    const index = await files.get(INDEX_FILE);
    if (!index) {
      throw new WeightsFormatError(`neither ${SINGLE_FILE} nor ${INDEX_FILE} was found among the model files`, {
        file: SINGLE_FILE,
      });
    }
    return SafetensorsIndex.openSharded(files, index);
  }

  private static async openSharded(files: ModelFiles, index: ByteSource): Promise<SafetensorsIndex> {
    const file = index.name;
    const size = await index.size();
    if (size > MAX_HEADER_BYTES) throw fail(file, `index file too large (${size} bytes)`);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await index.read(0, size)));
    } catch (e) {
      throw fail(file, `not valid UTF-8 JSON (${(e as Error).message})`);
    }
    if (!isObject(json) || !isObject(json.weight_map)) throw fail(file, 'missing "weight_map" object');
    const weightMap = json.weight_map;
    const metadata: Record<string, string> = {};
    if (json.metadata !== undefined) {
      if (!isObject(json.metadata)) throw fail(file, '"metadata" is not an object');
      for (const [k, v] of Object.entries(json.metadata)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
    const shardNames = new Set<string>();
    for (const [name, shard] of Object.entries(weightMap)) {
      if (typeof shard !== 'string' || shard === '' || /[/\\]|^\.\.?$/.test(shard)) {
        throw fail(file, `weight_map entry "${name}" names an invalid shard ${JSON.stringify(shard)}`, {
          tensor: name,
        });
      }
      shardNames.add(shard);
    }
    const tensors = new Map<string, TensorInfo>();
    const unsupported = new Map<string, UnsupportedTensorInfo>();
    const shardTensors = new Map<string, Set<string>>();
    const opened = [file];
    for (const shard of shardNames) {
      const src = await files.get(shard);
      if (!src) throw fail(file, `shard ${shard} listed in weight_map was not found`, { shard });
      opened.push(src.name);
      const p = await parseSafetensorsHeader(src);
      const names = new Set<string>();
      for (const t of [...p.tensors, ...p.unsupported]) {
        if (tensors.has(t.name) || unsupported.has(t.name)) {
          throw fail(file, `tensor "${t.name}" appears in more than one shard (again in ${shard})`, {
            tensor: t.name,
          });
        }
        names.add(t.name);
        if (SUPPORTED.has(t.dtype)) tensors.set(t.name, t as TensorInfo);
        else unsupported.set(t.name, t);
      }
      shardTensors.set(shard, names);
      for (const [k, v] of Object.entries(p.metadata)) metadata[k] ??= v;
    }
    for (const [name, shard] of Object.entries(weightMap) as [string, string][]) {
      if (!shardTensors.get(shard)!.has(name)) {
        throw fail(file, `tensor "${name}" is listed in weight_map for ${shard} but that shard does not contain it`, {
          tensor: name,
          shard,
        });
      }
    }
    return new SafetensorsIndex(tensors, metadata, unsupported, opened);
  }

  private get label(): string {
    return this.files[0] ?? SINGLE_FILE;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** The tensor's info; a `WeightsFormatError` if it is absent or has a dtype this engine does not read. */
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (t) return t;
    const u = this.unsupported.get(name);
    if (u) {
      throw fail(u.source.name, `tensor "${name}" has dtype ${u.dtype}; only F16, BF16 and F32 are read`, {
        tensor: name,
        dtype: u.dtype,
      });
    }
    throw fail(this.label, `no tensor named "${name}"`, { tensor: name });
  }

  private byteRange(t: TensorInfo, rows?: RowRange): [number, number] {
    if (!rows) return [t.begin, t.end];
    const r0 = t.shape[0];
    if (t.shape.length === 0 || !isCount(rows.start) || !isCount(rows.count) || rows.start + rows.count > r0) {
      throw fail(t.source.name, `row range ${rows.start}+${rows.count} outside tensor "${t.name}" [${t.shape}]`, {
        tensor: t.name,
      });
    }
    const rowBytes = r0 === 0 ? 0 : (t.end - t.begin) / r0;
    return [t.begin + rows.start * rowBytes, t.begin + (rows.start + rows.count) * rowBytes];
  }

  /** The tensor's bytes as stored (little-endian), optionally only rows [start, start+count) of dim 0. */
  async readRaw(name: string, rows?: RowRange): Promise<Uint8Array> {
    const t = this.info(name);
    const [b, e] = this.byteRange(t, rows);
    return t.source.read(b, e - b);
  }

  /** Values as f32 (F16 and BF16 widen exactly). */
  async readF32(name: string, rows?: RowRange): Promise<Float32Array> {
    return rawToF32(await this.readRaw(name, rows), this.info(name).dtype);
  }

  /** IEEE half bits: exact for F16; F32/BF16 rounded to nearest even (values beyond f16 range → ±inf). */
  async readF16Bits(name: string, rows?: RowRange): Promise<Uint16Array> {
    return rawToF16Bits(await this.readRaw(name, rows), this.info(name).dtype);
  }
}
