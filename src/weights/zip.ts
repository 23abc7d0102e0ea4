/**
 * A minimal zip reader for PyTorch checkpoints (`torch.save` writes an uncompressed zip: method 0, STORE).
 * It reads only by byte range: the end-of-central-directory record from the tail, the central directory,
 * then one local header per entry actually read. ZIP64 records are understood (torch writes them for files
 * over 4 GiB). Compressed or encrypted entries are a `WeightsFormatError`, as is anything inconsistent.
 * Entry CRC-32s are checked on every `readEntry`.
 */
import { WeightsFormatError } from '../errors.ts';
import type { ByteSource } from './byte-source.ts';

export interface ZipEntry {
  name: string;
  /** 0 = stored; anything else is rejected when the entry is read. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local file header. */
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CDIR_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const MAX_COMMENT = 0xffff;

function u64(dv: DataView, at: number, file: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new WeightsFormatError(`${file}: zip offset too large`, { file });
  return Number(v);
}

let crcTable: Uint32Array | null = null;
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export class ZipReader {
  private constructor(
    readonly source: ByteSource,
    readonly entries: Map<string, ZipEntry>,
  ) {}

  static async open(source: ByteSource): Promise<ZipReader> {
    const file = source.name;
    const bad = (msg: string): WeightsFormatError => new WeightsFormatError(`${file}: ${msg}`, { file });
    const size = await source.size();
    if (size < 22) throw bad(`not a zip file or truncated (${size} bytes, no end-of-central-directory record)`);
    const tailLen = Math.min(size, 22 + MAX_COMMENT + 20);
    const tailStart = size - tailLen;
    const tail = await source.read(tailStart, tailLen);
    const tdv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tdv.getUint32(i, true) === EOCD_SIG && i + 22 + tdv.getUint16(i + 20, true) === tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw bad('not a zip file or truncated (no end-of-central-directory record)');
    if (tdv.getUint16(eocd + 4, true) !== 0 || tdv.getUint16(eocd + 6, true) !== 0) {
      throw bad('multi-disk zip archives are not supported');
    }
    let count = tdv.getUint16(eocd + 10, true);
    let cdSize = tdv.getUint32(eocd + 12, true);
    let cdOffset = tdv.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      // ZIP64: the locator sits right before the EOCD record.
      const loc = eocd - 20;
      if (loc < 0 || tdv.getUint32(loc, true) !== ZIP64_LOCATOR_SIG) throw bad('ZIP64 locator missing');
      const z64Offset = u64(tdv, loc + 8, file);
      if (z64Offset + 56 > size) throw bad('ZIP64 end-of-central-directory record out of range');
      const z = await source.read(z64Offset, 56);
      const zdv = new DataView(z.buffer, z.byteOffset, z.byteLength);
      if (zdv.getUint32(0, true) !== ZIP64_EOCD_SIG) throw bad('bad ZIP64 end-of-central-directory record');
      count = u64(zdv, 32, file);
      cdSize = u64(zdv, 40, file);
      cdOffset = u64(zdv, 48, file);
    }
    if (cdOffset + cdSize > size) throw bad('central directory out of range (truncated file?)');
    const cd = await source.read(cdOffset, cdSize);
    const dv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    const dec = new TextDecoder('utf-8', { fatal: false });
    const entries = new Map<string, ZipEntry>();
    let p = 0;
    for (let n = 0; n < count; n++) {
      if (p + 46 > cdSize || dv.getUint32(p, true) !== CDIR_SIG) throw bad(`corrupt central directory (entry ${n})`);
      const flags = dv.getUint16(p + 8, true);
      const method = dv.getUint16(p + 10, true);
      const crc = dv.getUint32(p + 16, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let usize = dv.getUint32(p + 24, true);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      let localHeaderOffset = dv.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw bad(`corrupt central directory (entry ${n})`);
      const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // ZIP64 extra field: the 0xffffffff fields, in order usize, csize, offset.
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = dv.getUint16(e, true);
        const len = dv.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          const take = (): number => {
            if (q + 8 > e + 4 + len) throw bad(`corrupt ZIP64 extra field for ${name}`);
            const v = u64(dv, q, file);
            q += 8;
            return v;
          };
          if (usize === 0xffffffff) usize = take();
          if (compressedSize === 0xffffffff) compressedSize = take();
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
        }
        e += 4 + len;
      }
      if (entries.has(name)) throw bad(`duplicate zip entry ${name}`);
      if (localHeaderOffset + 30 + compressedSize > size)
        throw bad(`entry ${name} runs past the end (truncated file?)`);
      entries.set(name, { name, method, flags, crc32: crc, compressedSize, size: usize, localHeaderOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return new ZipReader(source, entries);
  }

  /** The byte offset of an entry's data inside the source (after its local header). */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const file = this.source.name;
    if (entry.flags & 1) throw new WeightsFormatError(`${file}: entry ${entry.name} is encrypted`, { file });
    if (entry.method !== 0) {
      throw new WeightsFormatError(
        `${file}: entry ${entry.name} is compressed (zip method ${entry.method}); only stored (method 0) entries are supported, as torch.save writes them`,
        { file, entry: entry.name, method: entry.method },
      );
    }
    if (entry.compressedSize !== entry.size) {
      throw new WeightsFormatError(`${file}: stored entry ${entry.name} has different sizes`, { file });
    }
    const h = await this.source.read(entry.localHeaderOffset, 30);
    const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    if (dv.getUint32(0, true) !== LOCAL_SIG) {
      throw new WeightsFormatError(`${file}: bad local header for ${entry.name}`, { file, entry: entry.name });
    }
    const start = entry.localHeaderOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
    const total = await this.source.size();
    if (start + entry.size > total) {
      throw new WeightsFormatError(`${file}: entry ${entry.name} runs past the end of the file (truncated?)`, {
        file,
        entry: entry.name,
      });
    }
    return start;
  }

  /** Reads and CRC-checks a whole entry. */
  async readEntry(entry: ZipEntry): Promise<Uint8Array> {
    const start = await this.dataOffset(entry);
    const data = await this.source.read(start, entry.size);
    if (crc32(data) !== entry.crc32) {
      throw new WeightsFormatError(`${this.source.name}: CRC mismatch in entry ${entry.name} (corrupt file)`, {
        file: this.source.name,
        entry: entry.name,
      });
    }
    return data;
  }
}
