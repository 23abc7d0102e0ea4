/**
 * The decoder's KV cache: per layer, K and V as act [nKV, capacity, hd] (post-RoPE keys; the token at absolute
 * position p lives at row p). It holds pass-1 K/V only (TroL keeps the first traversal pass's K/V).
 *
 * `scratch` is one extra K/V pair used by traversal pass 2, which attends to the cached past plus its own
 * chunk's pass-2 K/V: before pass 2 the past rows are copied from the layer's cache into the scratch, then pass 2
 * writes its chunk after them. Pass-2 K/V are discarded afterwards.
 */
import { createAct } from '../gpu/act-io.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Tensor } from '../gpu/tensor.ts';

export class KVCache {
  /** Tokens currently held (the next token's position). */
  length = 0;

  private constructor(
    readonly capacity: number,
    readonly nKV: number,
    readonly hd: number,
    readonly k: Tensor[],
    readonly v: Tensor[],
    readonly scratchK: Tensor,
    readonly scratchV: Tensor,
  ) {}

  static async create(ctx: GpuContext, layers: number, nKV: number, hd: number, capacity: number): Promise<KVCache> {
    const k: Tensor[] = [];
    const v: Tensor[] = [];
    const made: Tensor[] = [];
    try {
      for (let l = 0; l < layers; l++) {
        k.push(await createAct(ctx, `kv.k${l}`, [nKV, capacity, hd]));
        made.push(k[l]);
        v.push(await createAct(ctx, `kv.v${l}`, [nKV, capacity, hd]));
        made.push(v[l]);
      }
      const sk = await createAct(ctx, 'kv.scratch.k', [nKV, capacity, hd]);
      made.push(sk);
      const sv = await createAct(ctx, 'kv.scratch.v', [nKV, capacity, hd]);
      return new KVCache(capacity, nKV, hd, k, v, sk, sv);
    } catch (e) {
      for (const t of made) t.destroy();
      throw e;
    }
  }

  /** Copy rows [0, rows) of layer `l`'s cache into the scratch pair (for traversal pass 2). */
  copyPastToScratch(ctx: GpuContext, l: number, rows: number): void {
    if (rows === 0) return;
    const bytesPerEl = this.k[l].dtype === 'f16' ? 2 : 4;
    const rowBytes = this.hd * bytesPerEl;
    const headBytes = this.capacity * rowBytes;
    const size = rows * rowBytes;
    // copyBufferToBuffer needs 4-byte multiples; hd is a multiple of 4 so rows·hd·2 always is.
    for (let h = 0; h < this.nKV; h++) {
      ctx.copy(this.k[l].buffer, h * headBytes, this.scratchK.buffer, h * headBytes, size);
      ctx.copy(this.v[l].buffer, h * headBytes, this.scratchV.buffer, h * headBytes, size);
    }
  }

  /** Layer `l`'s cache rows [0, rows) as f32 [nKV, rows, hd] (for dumps and tests). */
  async readLayer(
    l: number,
    rows: number,
    read: (t: Tensor) => Promise<Float32Array>,
  ): Promise<{ k: Float32Array; v: Float32Array }> {
    const all = [await read(this.k[l]), await read(this.v[l])];
    const [k, v] = all.map((a) => {
      const out = new Float32Array(this.nKV * rows * this.hd);
      for (let h = 0; h < this.nKV; h++) {
        out.set(a.subarray(h * this.capacity * this.hd, (h * this.capacity + rows) * this.hd), h * rows * this.hd);
      }
      return out;
    });
    return { k, v };
  }

  destroy(): void {
    for (const t of [...this.k, ...this.v, this.scratchK, this.scratchV]) t.destroy();
  }
}
