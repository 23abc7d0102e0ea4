// attention.wgsl — causal GQA attention over the KV cache (prefill and decode) and the vision tower's
// bidirectional multi-head attention. Softmax and all arithmetic in f32; `act` is only the storage type.
//
// Layouts (indices below are in vec4 units; hd = 4·n4):
//   q, out: [T, nQ·hd] token-major, query head j at columns j·hd.
//   k, v:   key row s of kv head h starts at h·k_head4 + s·k_row4:
//             KV cache [nKV, cap, hd]   → k_head4 = cap·n4, k_row4 = n4;
//             token-major [T, nH·hd]    → k_head4 = n4,     k_row4 = nH·n4.
//   Query head j uses kv head j / g (g = nQ / nKV). With CAUSAL, query t (absolute position past + t) sees keys
//   0..past+t; otherwise all T keys. q is pre-multiplied by scale·log2(e), so the softmax uses exp2.
//
// attn_rows (prefill, bidirectional) — flash-style, one invocation per query row (t, j):
//   a workgroup holds WG / g consecutive tokens × the g query heads of one kv head, so all of its rows
//   read the same keys. K/V tiles of bk keys are staged through workgroup memory; each row keeps q and its
//   output accumulator in registers (≤ 32 vec4 each, hd ≤ 128) and runs an online softmax over the tiles.
//   Workgroup id = kv head + nKV · token block.
// attn_decode_split / attn_decode_direct (T = 1) — flash-decoding: the context is cut into chunks of nc keys;
//   one workgroup per (kv head h, chunk c) scores the chunk for the g query heads of h (keys strided over
//   the invocations), reduces the per-head max in workgroup memory, then computes Σ p·V with one invocation
//   per (head, vec4 column). `direct` (one chunk) writes the normalised output; `split` writes the partial
//   (m, l, acc) to `part`, and attn_decode_combine merges the chunks, one workgroup per query head and one
//   invocation per vec4 column. Workgroup id = kv head + nKV · chunk.
// All grids are 2-D (GpuContext.grid): workgroup id = wg.x + wg.y·num_workgroups.x; ids ≥ n_blocks return.
//
// Two ways to build each entry point, chosen by DYN:
//   DYN = false (GPUs): G, HD4, BK, C are the shape; loops have constant bounds, so q and the accumulator
//     stay in registers. One pipeline per shape.
//   DYN = true (CPU drivers: lavapipe, SwiftShader): the shape comes from the uniform block and G, HD4, BK, C
//     are only the capacities of the workgroup arrays, so one pipeline serves every shape. CPU drivers fully
//     unroll constant-bound loops, which made each shape's pipeline take 5–25 s to compile.

override WG: u32 = 64;        // invocations per workgroup (a power of two for the decode reductions)
override G: u32 = 1;          // query heads per kv head (≤ MAX_G)               | DYN: capacity
override HD4: u32 = 4;        // head_dim / 4 (≤ MAX_HD4)                        | DYN: capacity
override BK: u32 = 16;        // attn_rows: keys per staged tile (≤ MAX_BK)      | DYN: capacity, with HD4
override C: u32 = 256;        // decode: keys per chunk                          | DYN: capacity
override CAUSAL: bool = true; // attn_rows: causal mask (else bidirectional)
override DYN: bool = false;   // shape from the uniform block (see above)

const MAX_HD4: u32 = 32u;
const MAX_BK: u32 = 32u;
const MAX_G: u32 = 8u;
const NEG: f32 = -1e30;       // "minus infinity" that keeps exp2(NEG − m) = 0 without inf − inf

struct Params {
  T: u32,          // query rows
  past: u32,       // absolute position of query row 0 (causal)
  nQ: u32,         // query heads
  nKV: u32,        // kv heads
  k_head4: u32,    // vec4 stride between kv heads in k/v
  k_row4: u32,     // vec4 stride between key rows in k/v
  n_blocks: u32,   // workgroups doing work
  n_chunks: u32,   // decode: chunks
  ctx_len: u32,    // decode: keys attended (past + 1)
  qscale: f32,     // scale · log2(e)
  hd4: u32,        // head_dim / 4                (= HD4 unless DYN)
  bk: u32,         // attn_rows: keys per tile    (= BK unless DYN)
  chunk: u32,      // decode: keys per chunk      (= C unless DYN)
}

@group(0) @binding(0) var<storage, read> q: array<act4>;               // [T, nQ·hd]
@group(0) @binding(1) var<storage, read> k: array<act4>;               // [nKV, cap, hd] or [T, nH·hd]
@group(0) @binding(2) var<storage, read> v: array<act4>;               // same layout as k
@group(0) @binding(3) var<storage, read_write> out: array<act4>;       // [T, nQ·hd]
@group(0) @binding(4) var<uniform> params: Params;
// attn_decode_split writes partial results instead of `out`:
@group(0) @binding(3) var<storage, read_write> part: array<vec4<f32>>; // [nQ, n_chunks, 1 + hd/4]: (m, l, 0, 0), acc
// attn_decode_combine reads them back:
@group(0) @binding(0) var<storage, read> part_in: array<vec4<f32>>;    // [nQ, n_chunks, 1 + hd/4]
@group(0) @binding(1) var<storage, read_write> out_c: array<act4>;     // [1, nQ·hd]
@group(0) @binding(2) var<uniform> params_c: Params;

/// The shape: override constants, or the uniform block when DYN.
struct Shape {
  g: u32,    // query heads per kv head
  n4: u32,   // head_dim / 4
  bk: u32,   // keys per tile (attn_rows)
  nc: u32,   // keys per chunk (decode)
}

fn shape() -> Shape {
  if (DYN) {
    return Shape(params.nQ / params.nKV, params.hd4, params.bk, params.chunk);
  }
  return Shape(G, HD4, BK, C);
}

// ---------------------------------------------------------------------------------------- attn_rows

var<workgroup> k_tile: array<vec4<f32>, BK * HD4>;   // [bk, hd]
var<workgroup> v_tile: array<vec4<f32>, BK * HD4>;   // [bk, hd]

@compute @workgroup_size(WG)
fn attn_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
  let blk = wg.x + wg.y * nwg.x;
  if (blk >= params.n_blocks) {
    return;
  }
  let sh = shape();
  let n4 = sh.n4;
  let bk = sh.bk;
  let bt = WG / sh.g;                                // tokens per workgroup
  let h = blk % params.nKV;
  let t0 = (blk / params.nKV) * bt;
  let t = t0 + li / sh.g;
  let j = h * sh.g + li % sh.g;
  let live = li < bt * sh.g && t < params.T;
  let t_last = min(params.T, t0 + bt) - 1u;
  // Keys the workgroup needs (uniform), and the last key this row may see.
  let n_keys = select(params.T, params.past + t_last + 1u, CAUSAL);
  let last = select(params.T - 1u, params.past + t, CAUSAL);

  let row = (t * params.nQ + j) * n4;
  var qr: array<vec4<f32>, MAX_HD4>;
  var acc: array<vec4<f32>, MAX_HD4>;
  for (var i = 0u; i < n4; i++) {
    qr[i] = vec4<f32>(0.0);
    acc[i] = vec4<f32>(0.0);
  }
  if (live) {
    for (var i = 0u; i < n4; i++) {
      qr[i] = vec4<f32>(q[row + i]) * params.qscale;
    }
  }
  var m = NEG;
  var l = 0.0;
  let kv_base = h * params.k_head4;
  for (var s0 = 0u; s0 < n_keys; s0 += bk) {
    for (var e = li; e < bk * n4; e += WG) {
      let s = s0 + e / n4;
      var kx = vec4<f32>(0.0);
      var vx = vec4<f32>(0.0);
      if (s < n_keys) {
        let o = kv_base + s * params.k_row4 + e % n4;
        kx = vec4<f32>(k[o]);
        vx = vec4<f32>(v[o]);
      }
      k_tile[e] = kx;
      v_tile[e] = vx;
    }
    workgroupBarrier();
    if (live && s0 <= last) {
      var sc: array<f32, MAX_BK>;
      var mb = NEG;
      for (var kk = 0u; kk < bk; kk++) {
        var d = 0.0;
        for (var i = 0u; i < n4; i++) {
          d += dot(qr[i], k_tile[kk * n4 + i]);
        }
        let x = select(NEG, d, s0 + kk <= last);
        sc[kk] = x;
        mb = max(mb, x);
      }
      let mn = max(m, mb);
      let corr = exp2(m - mn);
      l *= corr;
      for (var i = 0u; i < n4; i++) {
        acc[i] *= corr;
      }
      for (var kk = 0u; kk < bk; kk++) {
        let p = exp2(sc[kk] - mn);
        l += p;
        for (var i = 0u; i < n4; i++) {
          acc[i] += p * v_tile[kk * n4 + i];
        }
      }
      m = mn;
    }
    workgroupBarrier();
  }
  if (live) {
    let inv = 1.0 / l;
    for (var i = 0u; i < n4; i++) {
      out[row + i] = act4(acc[i] * inv);
    }
  }
}

// ---------------------------------------------------------------------------------------- decode

var<workgroup> dq: array<vec4<f32>, G * HD4>;   // [g, hd]: the scaled queries of kv head h
var<workgroup> sc_w: array<f32, G * C>;         // [g, nc]: scores, then exp2(score − chunk max)
var<workgroup> red: array<f32, G * WG>;         // [g, WG]: max reduction; red[i·WG] = chunk max of head i

/// Fills dq, sc_w (unnormalised probabilities) and red[i·WG] (per-head max) for chunk c of kv head h.
/// Returns the number of keys in the chunk. Called in uniform control flow (it has barriers).
fn decode_probs(sh: Shape, h: u32, c: u32, li: u32) -> u32 {
  let g = sh.g;
  let n4 = sh.n4;
  let nc = sh.nc;
  let s0 = c * nc;
  let n = min(nc, params.ctx_len - s0);
  for (var e = li; e < g * n4; e += WG) {
    dq[e] = vec4<f32>(q[h * g * n4 + e]) * params.qscale;   // T = 1: heads h·g.. are contiguous
  }
  workgroupBarrier();
  var mloc: array<f32, MAX_G>;
  for (var i = 0u; i < g; i++) {
    mloc[i] = NEG;
  }
  for (var sl = li; sl < nc; sl += WG) {
    var d: array<f32, MAX_G>;
    for (var i = 0u; i < g; i++) {
      d[i] = NEG;
    }
    if (sl < n) {
      for (var i = 0u; i < g; i++) {
        d[i] = 0.0;
      }
      let o = h * params.k_head4 + (s0 + sl) * params.k_row4;
      for (var x = 0u; x < n4; x++) {
        let kx = vec4<f32>(k[o + x]);
        for (var i = 0u; i < g; i++) {
          d[i] += dot(dq[i * n4 + x], kx);
        }
      }
    }
    for (var i = 0u; i < g; i++) {
      sc_w[i * nc + sl] = d[i];
      mloc[i] = max(mloc[i], d[i]);
    }
  }
  for (var i = 0u; i < g; i++) {
    red[i * WG + li] = mloc[i];
  }
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    if (li < stride) {
      for (var i = 0u; i < g; i++) {
        red[i * WG + li] = max(red[i * WG + li], red[i * WG + li + stride]);
      }
    }
    workgroupBarrier();
  }
  for (var sl = li; sl < nc; sl += WG) {
    for (var i = 0u; i < g; i++) {
      sc_w[i * nc + sl] = exp2(sc_w[i * nc + sl] - red[i * WG]);
    }
  }
  workgroupBarrier();
  return n;
}

/// (Σ_s p[i][s]·v[s] for vec4 column x, Σ_s p[i][s]) over the n keys of chunk c of kv head h.
struct PV {
  acc: vec4<f32>,
  l: f32,
}

fn decode_pv(sh: Shape, h: u32, c: u32, n: u32, i: u32, x: u32) -> PV {
  var r = PV(vec4<f32>(0.0), 0.0);
  let o = h * params.k_head4 + c * sh.nc * params.k_row4 + x;
  for (var sl = 0u; sl < n; sl++) {
    let p = sc_w[i * sh.nc + sl];
    r.l += p;
    r.acc += p * vec4<f32>(v[o + sl * params.k_row4]);
  }
  return r;
}

@compute @workgroup_size(WG)
fn attn_decode_split(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
  let blk = wg.x + wg.y * nwg.x;
  if (blk >= params.n_blocks) {
    return;
  }
  let sh = shape();
  let h = blk % params.nKV;
  let c = blk / params.nKV;
  let n = decode_probs(sh, h, c, li);
  for (var e = li; e < sh.g * sh.n4; e += WG) {
    let i = e / sh.n4;
    let x = e % sh.n4;
    let r = decode_pv(sh, h, c, n, i, x);
    let base = ((h * sh.g + i) * params.n_chunks + c) * (sh.n4 + 1u);
    part[base + 1u + x] = r.acc;
    if (x == 0u) {
      part[base] = vec4<f32>(red[i * WG], r.l, 0.0, 0.0);
    }
  }
}

@compute @workgroup_size(WG)
fn attn_decode_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
  let blk = wg.x + wg.y * nwg.x;
  if (blk >= params.n_blocks) {
    return;
  }
  let sh = shape();
  let h = blk % params.nKV;
  let n = decode_probs(sh, h, 0u, li);
  for (var e = li; e < sh.g * sh.n4; e += WG) {
    let i = e / sh.n4;
    let x = e % sh.n4;
    let r = decode_pv(sh, h, 0u, n, i, x);
    out[(h * sh.g + i) * sh.n4 + x] = act4(r.acc / r.l);
  }
}

@compute @workgroup_size(WG)
fn attn_decode_combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
  let j = wg.x + wg.y * nwg.x;    // query head
  let n4 = select(HD4, params_c.hd4, DYN);
  if (j >= params_c.nQ || li >= n4) {
    return;
  }
  let stride = n4 + 1u;
  let base = j * params_c.n_chunks * stride;
  var mx = NEG;
  for (var c = 0u; c < params_c.n_chunks; c++) {
    mx = max(mx, part_in[base + c * stride].x);
  }
  var l = 0.0;
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < params_c.n_chunks; c++) {
    let ml = part_in[base + c * stride];
    let w = exp2(ml.x - mx);
    l += w * ml.y;
    acc += w * part_in[base + c * stride + 1u + li];
  }
  out_c[j * n4 + li] = act4(acc / l);
}
