/** The slice of pngjs 7's API that decode-node.ts uses (pngjs ships no type declarations). */
declare module 'pngjs' {
  export interface PNGReadOptions {
    /** Keep 16-bit samples as read (a Uint16Array) instead of rescaling them to 8 bits. */
    skipRescale?: boolean;
    checkCRC?: boolean;
  }
  export interface PNGSyncResult {
    width: number;
    height: number;
    depth: number;
    colorType: number;
    /** RGBA samples, palette resolved; Uint16Array for 16-bit input with skipRescale. */
    data: Uint8Array | Uint16Array;
  }
  export const PNG: {
    sync: { read(buffer: Uint8Array, options?: PNGReadOptions): PNGSyncResult };
  };
  const pngjs: { PNG: typeof PNG };
  export default pngjs;
}
