/**
 * Minimal, test-only readers for the reference model: safetensors (F16/F32/BF16), a `torch.save` zip holding a
 * plain state_dict of tensors (a tiny pickle subset, nothing executed), and config.json → RefConfig.
 * Independent of src/weights so the reference does not share bugs with the engine's readers.
 */
import { readFile } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import type { RefConfig, RefTensor } from './trol-ref.ts';

/** IEEE half → number (exact). */
export function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function decode(bytes: Uint8Array, dtype: string, count: number): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    if (dtype === 'F16') out[i] = f16ToNumber(dv.getUint16(2 * i, true));
    else if (dtype === 'BF16') out[i] = new Float32Array(new Uint32Array([dv.getUint16(2 * i, true) << 16]).buffer)[0];
    else if (dtype === 'F32') out[i] = dv.getFloat32(4 * i, true);
    else throw new Error(`unsupported dtype ${dtype}`);
  }
  return out;
}

const BYTES: Record<string, number> = { F16: 2, BF16: 2, F32: 4 };

/** All tensors of a safetensors file, widened to f64. */
export function parseSafetensors(buf: Uint8Array): Map<string, RefTensor> {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + n;
  const out = new Map<string, RefTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const count = info.shape.reduce((a, b) => a * b, 1);
    const [b0, b1] = info.data_offsets;
    const size = BYTES[info.dtype];
    if (!size || b1 - b0 !== count * size || base + b1 > buf.length) throw new Error(`bad safetensors entry ${name}`);
    out.set(name, { shape: info.shape, data: decode(buf.subarray(base + b0, base + b1), info.dtype, count) });
  }
  return out;
}

// ---- zip (stored or deflated entries) ----

function unzip(buf: Uint8Array): Map<string, Uint8Array> {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let eocd = -1;
  for (let i = buf.length - 22; i >= 0; i--) {
    if (dv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file');
  const count = dv.getUint16(eocd + 10, true);
  let p = dv.getUint32(eocd + 16, true);
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    if (dv.getUint32(p, true) !== 0x02014b50) throw new Error('bad zip central directory');
    const method = dv.getUint16(p + 10, true);
    const csize = dv.getUint32(p + 20, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    const local = dv.getUint32(p + 42, true);
    const name = new TextDecoder().decode(buf.subarray(p + 46, p + 46 + nameLen));
    const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    const raw = buf.subarray(start, start + csize);
    files.set(name, method === 0 ? raw : new Uint8Array(inflateRawSync(raw)));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return files;
}

// ---- pickle subset: OrderedDict of torch._utils._rebuild_tensor_v2 tensors ----

interface PGlobal {
  global: string;
}
interface PStorage {
  storage: string; // dtype storage class, e.g. torch.HalfStorage
  key: string;
}
const MARK = Symbol('mark');

const STORAGE_DTYPE: Record<string, string> = { 'torch.HalfStorage': 'F16', 'torch.FloatStorage': 'F32' };
STORAGE_DTYPE['torch.BFloat16Storage'] = 'BF16';

/** torch.save zip → Map<key, tensor>. Only the opcodes a plain state_dict uses are accepted. */
export function parseTorchStateDict(buf: Uint8Array): Map<string, RefTensor> {
  const files = unzip(buf);
  const pklName = [...files.keys()].find((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
  if (!pklName) throw new Error('no data.pkl in the zip');
  const root = pklName.slice(0, -'data.pkl'.length);
  const pkl = files.get(pklName)!;
  const dv = new DataView(pkl.buffer, pkl.byteOffset, pkl.byteLength);
  const td = new TextDecoder();
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw new Error('pickle: no mark');
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const readLine = (): string => {
    const e = pkl.indexOf(10, p);
    const s = td.decode(pkl.subarray(p, e));
    p = e + 1;
    return s;
  };
  const reduce = (fn: unknown, args: unknown[]): unknown => {
    const name = (fn as PGlobal).global;
    if (name === 'collections.OrderedDict') return new Map<string, unknown>();
    if (name === 'torch._utils._rebuild_tensor_v2') {
      const [st, offset, size, stride] = args as [PStorage, number, number[], number[]];
      const dtype = STORAGE_DTYPE[st.storage];
      if (!dtype) throw new Error(`pickle: storage ${st.storage}`);
      let expect = 1;
      for (let i = size.length - 1; i >= 0; i--) {
        if (size[i] !== 1 && stride[i] !== expect) throw new Error('pickle: non-contiguous tensor');
        expect *= size[i];
      }
      const count = size.reduce((a, b) => a * b, 1);
      const bytes = files.get(`${root}data/${st.key}`);
      if (!bytes) throw new Error(`pickle: missing storage ${st.key}`);
      const sz = BYTES[dtype];
      return { shape: size, data: decode(bytes.subarray(offset * sz, (offset + count) * sz), dtype, count) };
    }
    throw new Error(`pickle: refusing to call ${name}`);
  };
  for (;;) {
    const op = pkl[p++];
    switch (op) {
      case 0x80: // PROTO
        p++;
        break;
      case 0x95: // FRAME
        p += 8;
        break;
      case 0x63: {
        // GLOBAL
        const mod = readLine();
        stack.push({ global: `${mod}.${readLine()}` } satisfies PGlobal);
        break;
      }
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map<string, unknown>());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(pkl[p++]);
        break;
      case 0x4d: // BININT2
        stack.push(dv.getUint16(p, true));
        p += 2;
        break;
      case 0x4a: // BININT
        stack.push(dv.getInt32(p, true));
        p += 4;
        break;
      case 0x58: {
        // BINUNICODE
        const n = dv.getUint32(p, true);
        stack.push(td.decode(pkl.subarray(p + 4, p + 4 + n)));
        p += 4 + n;
        break;
      }
      case 0x8c: {
        // SHORT_BINUNICODE
        const n = pkl[p];
        stack.push(td.decode(pkl.subarray(p + 1, p + 1 + n)));
        p += 1 + n;
        break;
      }
      case 0x71: // BINPUT
        memo.set(pkl[p++], stack[stack.length - 1]);
        break;
      case 0x72: // LONG_BINPUT
        memo.set(dv.getUint32(p, true), stack[stack.length - 1]);
        p += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, stack[stack.length - 1]);
        break;
      case 0x68: // BINGET
        stack.push(memo.get(pkl[p++]));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memo.get(dv.getUint32(p, true)));
        p += 4;
        break;
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push(stack.splice(-1));
        break;
      case 0x86: // TUPLE2
        stack.push(stack.splice(-2));
        break;
      case 0x87: // TUPLE3
        stack.push(stack.splice(-3));
        break;
      case 0x51: {
        // BINPERSID: ('storage', storage_type, key, location, numel)
        const pid = stack.pop() as unknown[];
        if (pid[0] !== 'storage') throw new Error('pickle: unknown persistent id');
        stack.push({ storage: (pid[1] as PGlobal).global, key: pid[2] as string } satisfies PStorage);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = stack.pop() as unknown[];
        const fn = stack.pop();
        stack.push(reduce(fn, args));
        break;
      }
      case 0x62: // BUILD (state ignored: OrderedDict _metadata and the like)
        stack.pop();
        break;
      case 0x73: {
        // SETITEM
        const v = stack.pop();
        const k = stack.pop() as string;
        (stack[stack.length - 1] as Map<string, unknown>).set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const d = stack[stack.length - 1] as Map<string, unknown>;
        for (let i = 0; i < items.length; i += 2) d.set(items[i] as string, items[i + 1]);
        break;
      }
      case 0x2e: {
        // STOP
        const top = stack.pop();
        if (!(top instanceof Map)) throw new Error('pickle: top object is not a dict');
        return top as Map<string, RefTensor>;
      }
      default:
        throw new Error(`pickle: unsupported opcode 0x${op?.toString(16)} at ${p - 1}`);
    }
  }
}

/** config.json (InternLM2/TroL keys + the fixture's extension keys, README defaults when absent) → RefConfig. */
export function parseRefConfig(json: Record<string, unknown>): RefConfig {
  const num = (k: string, dflt?: number): number => {
    const v = json[k] ?? dflt;
    if (typeof v !== 'number') throw new Error(`config.json: ${k} missing`);
    return v;
  };
  const vj = (json.vision_config ?? {}) as Record<string, number>;
  const vision = {
    hiddenSize: vj.hidden_size ?? 1024,
    intermediateSize: vj.intermediate_size ?? 4096,
    numLayers: vj.num_hidden_layers ?? 24,
    numHeads: vj.num_attention_heads ?? 16,
    patchSize: vj.patch_size ?? 14,
    layerNormEps: vj.layer_norm_eps ?? 1e-5,
  };
  const hiddenSize = num('hidden_size');
  const numHeads = num('num_attention_heads');
  const imgSize = num('img_size', 490);
  const loraR = num('lora_r', 256);
  const loraAlpha = num('lora_alpha', 256);
  return {
    hiddenSize,
    numLayers: num('num_hidden_layers'),
    numHeads,
    numKVHeads: num('num_key_value_heads', numHeads),
    headDim: hiddenSize / numHeads,
    intermediateSize: num('intermediate_size'),
    vocabSize: num('vocab_size'),
    rmsNormEps: num('rms_norm_eps'),
    ropeTheta: num('rope_theta'),
    imgSize,
    loraR,
    loraAlpha,
    loraScale: loraAlpha / loraR,
    vision,
    imageTokens: (imgSize / vision.patchSize) ** 2,
  };
}

/** Read config.json, model.safetensors and trol_gating.pt of a checkpoint folder. */
export async function readRefFiles(dir: string): Promise<{ config: RefConfig; tensors: Map<string, RefTensor> }> {
  const config = parseRefConfig(JSON.parse(await readFile(`${dir}/config.json`, 'utf8')));
  const tensors = parseSafetensors(new Uint8Array(await readFile(`${dir}/model.safetensors`)));
  const gate = parseTorchStateDict(new Uint8Array(await readFile(`${dir}/trol_gating.pt`)));
  for (const [k, v] of gate) tensors.set(`trol_gating.${k}`, v);
  return { config, tensors };
}
