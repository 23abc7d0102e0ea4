/**
 * Reader for PyTorch `torch.save` checkpoints holding a plain state_dict (used for `trol_gating.pt`).
 *
 * File layout (zip, STORE): `<folder>/data.pkl` (the pickle), `<folder>/data/<key>` (one raw little-endian
 * storage per key), `<folder>/version`, optionally `<folder>/byteorder`. The folder name is whatever the file
 * was called when saved, so it is found from the single `…/data.pkl` entry, never assumed.
 *
 * The pickle is run by a small *interpreter*, not by anything that executes code: it knows the protocol 2–5
 * opcodes torch.save emits and builds inert values. Globals are resolved against an allow-list only:
 *   - `collections.OrderedDict`                       → an empty dict (BUILD may attach attributes such as
 *                                                       `_metadata`, which are kept and ignored)
 *   - `torch._utils._rebuild_tensor_v2`, `_rebuild_tensor` → a tensor view (storage, offset, shape, stride)
 *   - `torch._utils._rebuild_parameter`               → its tensor argument, unchanged. Allowed because a
 *                                                       state_dict saved from `module.parameters()`-style code
 *                                                       wraps tensors in it; it carries no behaviour here.
 *   - `torch.{Half,BFloat16,Float}Storage`            → dtype markers for persistent ids; the other torch
 *                                                       `*Storage` names (Double, Long, …) are also accepted as
 *                                                       markers, but a tensor using them is a WeightsFormatError.
 * Any other global (`os.system`, `builtins.eval`, …) is an `UnsafePickleError` naming `module.name`, raised
 * when the GLOBAL opcode is met, before anything else. Opcodes that build arbitrary objects (INST, OBJ,
 * NEWOBJ, EXT*, PERSID) and unknown opcodes are `UnsafePickleError` too. Calling a storage marker, or BUILD on
 * anything but a dict, is refused. Nothing is ever executed or fetched.
 *
 * Tensors must be contiguous (row-major strides; size-1 dims may have any stride); storage offset is
 * honoured; storages shared by several tensors are read once.
 */
import { UnsafePickleError, WeightsFormatError } from '../errors.ts';
import { bf16BitsToF32, f16BitsToF32 } from '../util/f16.ts';
import type { ByteSource } from './byte-source.ts';
import { ZipReader } from './zip.ts';

export interface PtTensor {
  name: string;
  dtype: 'F16' | 'BF16' | 'F32';
  shape: number[];
  data: Float32Array;
  /** The storage record the tensor views; tensors sharing one were the same parameter when saved. */
  storageKey?: string;
}

// ---------------------------------------------------------------------------------------------------------
// Inert values the interpreter builds.

class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
class PyList {
  constructor(readonly items: PyValue[]) {}
}
type DictKey = string | number | boolean | null;
class PyDict {
  readonly map = new Map<DictKey, PyValue>();
  /** Attributes set by BUILD (e.g. a state_dict's `_metadata`); kept, never interpreted. */
  attrs: PyValue = null;
}
class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get full(): string {
    return `${this.module}.${this.name}`;
  }
}
interface StorageRef {
  kind: 'storage';
  storageType: string; // e.g. 'HalfStorage'
  key: string;
  location: string;
  numel: number;
}
interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}
type PyValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | PyTuple
  | PyList
  | PyDict
  | PyGlobal
  | StorageRef
  | TensorRef;

const isRef = (v: PyValue, kind: 'storage' | 'tensor'): boolean =>
  typeof v === 'object' && v !== null && 'kind' in v && v.kind === kind;

// ---------------------------------------------------------------------------------------------------------
// The allow-list.

const STORAGE_DTYPES: Record<string, { dtype: string; bytes: number }> = {
  HalfStorage: { dtype: 'F16', bytes: 2 },
  BFloat16Storage: { dtype: 'BF16', bytes: 2 },
  FloatStorage: { dtype: 'F32', bytes: 4 },
  // Known markers whose tensors this reader does not convert:
  DoubleStorage: { dtype: 'F64', bytes: 8 },
  LongStorage: { dtype: 'I64', bytes: 8 },
  IntStorage: { dtype: 'I32', bytes: 4 },
  ShortStorage: { dtype: 'I16', bytes: 2 },
  CharStorage: { dtype: 'I8', bytes: 1 },
  ByteStorage: { dtype: 'U8', bytes: 1 },
  BoolStorage: { dtype: 'BOOL', bytes: 1 },
};

const ALLOWED_CALLABLES = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
]);

function isAllowedGlobal(module: string, name: string): boolean {
  if (ALLOWED_CALLABLES.has(`${module}.${name}`)) return true;
  return module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name);
}

// ---------------------------------------------------------------------------------------------------------
// Opcodes.

const OPCODE_NAMES: Record<number, string> = {
  40: 'MARK',
  46: 'STOP',
  48: 'POP',
  49: 'POP_MARK',
  50: 'DUP',
  70: 'FLOAT',
  73: 'INT',
  74: 'BININT',
  75: 'BININT1',
  76: 'LONG',
  77: 'BININT2',
  78: 'NONE',
  80: 'PERSID',
  81: 'BINPERSID',
  82: 'REDUCE',
  83: 'STRING',
  84: 'BINSTRING',
  85: 'SHORT_BINSTRING',
  86: 'UNICODE',
  88: 'BINUNICODE',
  97: 'APPEND',
  98: 'BUILD',
  99: 'GLOBAL',
  100: 'DICT',
  125: 'EMPTY_DICT',
  101: 'APPENDS',
  103: 'GET',
  104: 'BINGET',
  105: 'INST',
  106: 'LONG_BINGET',
  108: 'LIST',
  93: 'EMPTY_LIST',
  111: 'OBJ',
  112: 'PUT',
  113: 'BINPUT',
  114: 'LONG_BINPUT',
  115: 'SETITEM',
  116: 'TUPLE',
  41: 'EMPTY_TUPLE',
  117: 'SETITEMS',
  71: 'BINFLOAT',
  128: 'PROTO',
  129: 'NEWOBJ',
  130: 'EXT1',
  131: 'EXT2',
  132: 'EXT4',
  133: 'TUPLE1',
  134: 'TUPLE2',
  135: 'TUPLE3',
  136: 'NEWTRUE',
  137: 'NEWFALSE',
  138: 'LONG1',
  139: 'LONG4',
  66: 'BINBYTES',
  67: 'SHORT_BINBYTES',
  140: 'SHORT_BINUNICODE',
  141: 'BINUNICODE8',
  142: 'BINBYTES8',
  143: 'EMPTY_SET',
  144: 'ADDITEMS',
  145: 'FROZENSET',
  146: 'NEWOBJ_EX',
  147: 'STACK_GLOBAL',
  148: 'MEMOIZE',
  149: 'FRAME',
  150: 'BYTEARRAY8',
  151: 'NEXT_BUFFER',
  152: 'READONLY_BUFFER',
};

/** Runs a pickle and returns its (inert) result; `file` only names the source in errors. */
function unpickle(bytes: Uint8Array, file: string): PyValue {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;

  const fmt = (msg: string): WeightsFormatError =>
    new WeightsFormatError(`${file}: bad pickle: ${msg} (at byte ${pos})`, { file, pos });
  const need = (n: number): void => {
    if (n < 0 || pos + n > bytes.length) throw fmt('truncated');
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++];
  };
  const u16 = (): number => {
    need(2);
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fmt('length too large');
    return Number(v);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw fmt('truncated');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const str = (n: number): string => {
    try {
      return utf8.decode(take(n));
    } catch (e) {
      if (e instanceof WeightsFormatError) throw e;
      throw fmt('invalid UTF-8 string');
    }
  };
  // Items below the innermost MARK are out of reach until it is popped, as in Python's unpickler.
  const floor = (): number => (marks.length > 0 ? marks[marks.length - 1] : 0);
  const pop = (): PyValue => {
    if (stack.length <= floor()) throw fmt('stack underflow');
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length <= floor()) throw fmt('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) throw fmt('no MARK');
    return stack.splice(m);
  };
  const push = (v: PyValue): void => {
    stack.push(v);
  };
  const memoGet = (i: number): PyValue => {
    if (!memo.has(i)) throw fmt(`memo key ${i} missing`);
    return memo.get(i)!;
  };
  const dictKey = (k: PyValue): DictKey => {
    if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'boolean') return k;
    throw fmt('unsupported dict key type');
  };
  const setItem = (d: PyValue, k: PyValue, v: PyValue): void => {
    if (!(d instanceof PyDict)) throw fmt('SETITEM(S) on a non-dict');
    d.map.set(dictKey(k), v);
  };
  const toInt = (v: bigint): number => {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw fmt('integer too large');
    return Number(v);
  };
  const longLE = (b: Uint8Array): number => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return toInt(v);
  };
  const global = (module: string, name: string): PyGlobal => {
    if (!isAllowedGlobal(module, name)) {
      throw new UnsafePickleError(
        `${file}: pickle refers to ${module}.${name}, which is not allowed in a state_dict of tensors; nothing was executed`,
        { file, global: `${module}.${name}` },
      );
    }
    return new PyGlobal(module, name);
  };
  const refuse = (op: number): UnsafePickleError => {
    const name = OPCODE_NAMES[op] ?? `unknown opcode 0x${op.toString(16).padStart(2, '0')}`;
    return new UnsafePickleError(`${file}: pickle opcode ${name} is not supported in a state_dict of tensors`, {
      file,
      opcode: name,
      pos: pos - 1,
    });
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) throw fmt('unsupported pickle protocol');
        break;
      case 0x95: // FRAME: a length prefix only; the opcodes follow inline
        u64();
        break;
      case 0x2e: {
        // STOP
        if (marks.length > 0) throw fmt('MARK left open at STOP');
        if (stack.length !== 1) throw fmt(`stack holds ${stack.length} items at STOP`);
        return pop();
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP (of a MARK right after it: drop the mark, as Python does)
        if (marks.length > 0 && stack.length === floor()) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        need(4);
        push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        push(longLE(take(u8())));
        break;
      case 0x8b: // LONG4
        push(longLE(take(u32())));
        break;
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        push(str(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(str(u8()));
        break;
      case 0x8d: // BINUNICODE8
        push(str(u64()));
        break;
      case 0x42: // BINBYTES
        push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        push(take(u64()).slice());
        break;
      case 0x7d: // EMPTY_DICT
        push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        push(new PyList([]));
        break;
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b, c]));
        break;
      }
      case 0x6c: // LIST
        push(new PyList(popMark()));
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2) throw fmt('odd item count for DICT');
        const d = new PyDict();
        for (let i = 0; i < items.length; i += 2) d.map.set(dictKey(items[i]), items[i + 1]);
        push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) throw fmt('odd item count for SETITEMS');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!(l instanceof PyList)) throw fmt('APPEND to a non-list');
        l.items.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!(l instanceof PyList)) throw fmt('APPENDS to a non-list');
        for (const it of items) l.items.push(it);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(memoGet(u32()));
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fmt('STACK_GLOBAL needs two strings');
        push(global(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!(fn instanceof PyGlobal)) throw fmt('REDUCE of a non-callable');
        if (!(args instanceof PyTuple)) throw fmt('REDUCE arguments are not a tuple');
        push(call(fn, args.items));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyDict)) {
          throw new UnsafePickleError(`${file}: pickle BUILD on something other than a dict is not supported`, {
            file,
            opcode: 'BUILD',
          });
        }
        obj.attrs = state;
        break;
      }
      case 0x51: {
        // BINPERSID
        push(persistentLoad(pop()));
        break;
      }
      default:
        throw refuse(op);
    }
  }

  function call(fn: PyGlobal, args: PyValue[]): PyValue {
    switch (fn.full) {
      case 'collections.OrderedDict': {
        const d = new PyDict();
        if (args.length === 0) return d;
        throw fmt('OrderedDict called with arguments');
      }
      case 'torch._utils._rebuild_tensor_v2':
        if (args.length < 6 || args.length > 7) throw fmt('_rebuild_tensor_v2 expects 6 or 7 arguments');
        return rebuildTensor(args);
      case 'torch._utils._rebuild_tensor':
        if (args.length !== 4) throw fmt('_rebuild_tensor expects 4 arguments');
        return rebuildTensor(args);
      case 'torch._utils._rebuild_parameter':
        if (args.length !== 3 || !isRef(args[0], 'tensor')) throw fmt('_rebuild_parameter expects a tensor');
        return args[0];
      default:
        throw new UnsafePickleError(`${file}: pickle calls ${fn.full}, which is not callable here`, {
          file,
          global: fn.full,
        });
    }
  }

  function intTuple(v: PyValue, what: string): number[] {
    if (!(v instanceof PyTuple) && !(v instanceof PyList)) throw fmt(`${what} is not a tuple`);
    return v.items.map((x) => {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw fmt(`${what} holds a non-integer`);
      return x;
    });
  }

  function rebuildTensor(args: PyValue[]): TensorRef {
    const [storage, offset, size, stride] = args;
    if (!isRef(storage, 'storage')) throw fmt('tensor without a storage');
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw fmt('bad storage offset');
    return {
      kind: 'tensor',
      storage: storage as StorageRef,
      offset,
      shape: intTuple(size, 'tensor size'),
      stride: intTuple(stride, 'tensor stride'),
    };
  }

  function persistentLoad(pid: PyValue): StorageRef {
    if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage' || pid.items.length !== 5) {
      throw new UnsafePickleError(`${file}: unsupported persistent id (only ('storage', …) records are allowed)`, {
        file,
      });
    }
    const [, type, key, location, numel] = pid.items;
    if (!(type instanceof PyGlobal) || type.module !== 'torch' || !Object.hasOwn(STORAGE_DTYPES, type.name)) {
      throw fmt('persistent id without a storage type');
    }
    if (typeof key !== 'string' || typeof location !== 'string') throw fmt('bad persistent id');
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw fmt('bad storage size');
    return { kind: 'storage', storageType: type.name, key, location, numel };
  }
}

// ---------------------------------------------------------------------------------------------------------

const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

function convert(raw: Uint8Array, dtype: 'F16' | 'BF16' | 'F32', bigEndian: boolean): Float32Array {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = !bigEndian;
  if (dtype === 'F32') {
    const out = new Float32Array(raw.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, le);
    return out;
  }
  const out = new Float32Array(raw.byteLength / 2);
  const f = dtype === 'F16' ? f16BitsToF32 : bf16BitsToF32;
  for (let i = 0; i < out.length; i++) out[i] = f(dv.getUint16(i * 2, le));
  return out;
}

/**
 * Reads a `torch.save`d state_dict (a dict or OrderedDict of name → tensor) into f32 arrays, in file order.
 */
export async function readTorchStateDict(source: ByteSource): Promise<Map<string, PtTensor>> {
  const file = source.name;
  const size = await source.size();
  if (size >= LEGACY_MAGIC.length) {
    const head = await source.read(0, LEGACY_MAGIC.length);
    if (LEGACY_MAGIC.every((b, i) => head[i] === b)) {
      throw new WeightsFormatError(
        `${file}: legacy (pre-1.6, non-zip) torch.save format is not supported; re-save with a current PyTorch`,
        { file },
      );
    }
  }
  const zip = await ZipReader.open(source);
  const pkls = [...zip.entries.keys()].filter((n) => /^(?:[^/]+\/)?data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    throw new WeightsFormatError(
      `${file}: expected exactly one <folder>/data.pkl in the PyTorch zip, found ${pkls.length}`,
      { file },
    );
  }
  const prefix = pkls[0].slice(0, pkls[0].length - 'data.pkl'.length);
  let bigEndian = false;
  const bo = zip.entries.get(`${prefix}byteorder`);
  if (bo) {
    const text = new TextDecoder().decode(await zip.readEntry(bo)).trim();
    if (text !== 'little' && text !== 'big') throw new WeightsFormatError(`${file}: unknown byteorder "${text}"`);
    bigEndian = text === 'big';
  }

  const root = unpickle(await zip.readEntry(zip.entries.get(pkls[0])!), file);
  if (!(root instanceof PyDict)) {
    throw new WeightsFormatError(`${file}: expected a state_dict (a dict of tensors) at the top of the pickle`, {
      file,
    });
  }

  const storages = new Map<string, Promise<Uint8Array>>();
  const readStorage = (ref: StorageRef, bytes: number): Promise<Uint8Array> => {
    let p = storages.get(ref.key);
    if (!p) {
      const entry = zip.entries.get(`${prefix}data/${ref.key}`);
      if (!entry) {
        throw new WeightsFormatError(`${file}: storage record data/${ref.key} is missing`, { file, key: ref.key });
      }
      if (entry.size < ref.numel * bytes) {
        throw new WeightsFormatError(
          `${file}: storage data/${ref.key} holds ${entry.size} bytes, expected ${ref.numel * bytes}`,
          { file, key: ref.key },
        );
      }
      p = zip.readEntry(entry);
      storages.set(ref.key, p);
    }
    return p;
  };

  const out = new Map<string, PtTensor>();
  for (const [key, value] of root.map) {
    const name = String(key);
    if (!isRef(value, 'tensor')) {
      throw new WeightsFormatError(`${file}: entry "${name}" is not a tensor`, { file, tensor: name });
    }
    const t = value as TensorRef;
    const st = STORAGE_DTYPES[t.storage.storageType];
    if (st.dtype !== 'F16' && st.dtype !== 'BF16' && st.dtype !== 'F32') {
      throw new WeightsFormatError(`${file}: tensor "${name}" has dtype ${st.dtype}; only F16, BF16 and F32 are read`, {
        file,
        tensor: name,
        dtype: st.dtype,
      });
    }
    if (t.shape.length !== t.stride.length) {
      throw new WeightsFormatError(`${file}: tensor "${name}" has mismatched size and stride`, { file, tensor: name });
    }
    if (!isContiguous(t.shape, t.stride)) {
      throw new WeightsFormatError(
        `${file}: tensor "${name}" is not contiguous (size [${t.shape}], stride [${t.stride}]); save tensor.contiguous()`,
        { file, tensor: name },
      );
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel > 0 && t.offset + numel > t.storage.numel) {
      throw new WeightsFormatError(
        `${file}: tensor "${name}" (offset ${t.offset}, ${numel} elements) exceeds its storage of ${t.storage.numel}`,
        { file, tensor: name },
      );
    }
    const raw = await readStorage(t.storage, st.bytes);
    const bytes = raw.subarray(t.offset * st.bytes, (t.offset + numel) * st.bytes);
    out.set(name, {
      name,
      dtype: st.dtype,
      shape: t.shape,
      data: convert(bytes, st.dtype, bigEndian),
      storageKey: t.storage.key,
    });
  }
  return out;
}
