// matmul.wgsl — out[M, N] = x[M, K] · Wᵀ (W: [N, K], PyTorch Linear layout), used by src/ops/linear.ts.
//
// One dispatch covers one row block ("part") of W: weight rows 0..p.n of the part are output columns
// p.n0..p.n0+p.n of `out`. Epilogue for every output: r = acc·scale (+ bias[col]) (+ out[row, col]).
// Optional gather (x row = in_rows[i]) and scatter (out row = out_rows[i]) for the i-th processed row.
// Weight formats: f32 (u32 words, bitcast), f16 (u32 words of two halves), q4 (vec4<u32> = one 32-element
// group of nibbles + one f16 scale per group, see src/gpu/tensor.ts). x beyond K is treated as zero and never
// read: every x index is clamped to the row and masked.
//
// Three kernel families, each with a q4 and a dense (f32/f16, chosen by the FMT override) entry point:
//
//  reg_*   (CPU adapters; GEMV and GEMM). Barrier-free register blocking. One invocation owns NR = 4
//          consecutive weight rows and MR (1, 2 or 4) x rows, loops over all of K and keeps the MR×4 sums in
//          registers. On CPU drivers invocations are SIMD lanes, so neighbouring lanes own neighbouring rows;
//          x reads are the same address in every lane. `*_xv` entries read x as vec4 (K % 4 == 0).
//          Workgroup w (linear id) → m block w / p.wg_n, weight rows ((w % p.wg_n)·WG + li)·4 .. +4.
//  coop_*  (GPUs, GEMV for M ≤ 4). A team of TEAM threads per weight row, WG/TEAM rows per workgroup; thread t
//          of a team takes q4 groups (or dense words) t, t+TEAM, … so a team reads its row in contiguous
//          TEAM-wide strips; partial sums meet in workgroup memory after one barrier.
//          Workgroup w → m block w / p.wg_n, weight row (w % p.wg_n)·(WG/TEAM) + li / TEAM.
//  tiled_* (GPUs, GEMM). 64×64 output tile per 256-thread workgroup (16×16 threads, 4×4 outputs each), K in
//          steps of 32 (one q4 group): an x tile and a dequantized W tile are staged in workgroup memory.
//          Workgroup w → rows (w / p.wg_n)·64 .., weight rows (w % p.wg_n)·64 ..; thread (ty, tx) = (li/16, li%16)
//          owns rows ty·4..+4 and weight rows tx·4..+4 of the tile.
//
// Workgroups form a 2-D grid (GpuContext.grid); the linear id is wg.x + wg.y·nwg.x and ids ≥ p.wg_count exit.

override WG: u32 = 64;      // invocations per workgroup (reg_*, coop_*)
override MR: u32 = 1;       // x rows per invocation or team: 1, 2 or 4 (reg_*, coop_*)
override TEAM: u32 = 32;    // threads per weight row (coop_*), a power of two dividing WG
override FMT: u32 = 0;      // dense weight format: 0 = f32, 1 = f16 (*_dense)

const NR = 4u;              // weight rows per invocation (reg_*)
const F_BIAS = 1u;
const F_ACCUM = 2u;
const F_GATHER = 4u;
const F_SCATTER = 8u;

struct Params {
  m: u32,         // rows to process (Mi)
  n: u32,         // weight rows in this part = output columns written by this dispatch
  k: u32,         // reduction length K (x row length)
  n0: u32,        // first output column of this part
  ldo: u32,       // out row length (N of the whole matrix)
  x_rows: u32,    // rows in x (gather indices beyond it are skipped)
  out_rows: u32,  // rows in out (scatter indices beyond it are skipped)
  flags: u32,     // F_BIAS | F_ACCUM | F_GATHER | F_SCATTER
  scale: f32,     // multiplies the product before bias / accumulation
  wpr: u32,       // u32 words per weight row: f32 k, f16 ceil(k/2), q4 kp/8
  spr: u32,       // q4: u32 scale words per row
  wg_n: u32,      // workgroups along N per m block
  wg_count: u32,  // workgroups in the dispatch
}

@group(0) @binding(0) var<storage, read> x: array<act>;                // [x_rows, K]
@group(0) @binding(0) var<storage, read> xv: array<act4>;              // [x_rows, K/4] (*_xv, K % 4 == 0)
@group(0) @binding(1) var<storage, read> w_q4: array<vec4<u32>>;       // q4: [n, kp/32] (4 words = 1 group)
@group(0) @binding(1) var<storage, read> w_u32: array<u32>;            // f32/f16: [n, wpr]
@group(0) @binding(2) var<storage, read> scales: array<u32>;           // q4: [n, spr] f16 pairs; else unused
@group(0) @binding(3) var<storage, read> bias: array<f32>;             // [N] (read when F_BIAS)
@group(0) @binding(4) var<storage, read> in_rows: array<u32>;          // [Mi] (read when F_GATHER)
@group(0) @binding(5) var<storage, read> out_rows: array<u32>;         // [Mi] (read when F_SCATTER)
@group(0) @binding(6) var<storage, read_write> out: array<act>;        // [out_rows, ldo]
@group(0) @binding(7) var<uniform> p: Params;

// ---------------------------------------------------------------- shared helpers

/** Offset of the x row that processed row `m` reads (clamped so that it is always a valid row). */
fn x_base(m: u32) -> u32 {
  let mm = min(m, p.m - 1u);
  var r = mm;
  if ((p.flags & F_GATHER) != 0u) {
    r = min(in_rows[mm], p.x_rows - 1u);
  }
  return r * p.k;
}

/** x[base + k] as f32, or 0 past K when `tail` (the index is clamped, so nothing outside x is read). */
fn xval(base: u32, k: u32, tail: bool) -> f32 {
  if (tail) {
    return select(0.0, f32(x[base + min(k, p.k - 1u)]), k < p.k);
  }
  return f32(x[base + k]);
}

fn x4(base: u32, k: u32, tail: bool) -> vec4<f32> {
  return vec4<f32>(xval(base, k, tail), xval(base, k + 1u, tail), xval(base, k + 2u, tail), xval(base, k + 3u, tail));
}

/** Write one result: processed row m (< p.m), weight row c of this part (< p.n). */
fn emit(m: u32, c: u32, v: f32) {
  if (m >= p.m || c >= p.n) {
    return;
  }
  if ((p.flags & F_GATHER) != 0u && in_rows[m] >= p.x_rows) {
    return;
  }
  var orow = m;
  if ((p.flags & F_SCATTER) != 0u) {
    orow = out_rows[m];
  }
  if (orow >= p.out_rows) {
    return;
  }
  let col = p.n0 + c;
  var r = v * p.scale;
  if ((p.flags & F_BIAS) != 0u) {
    r += bias[col];
  }
  let idx = orow * p.ldo + col;
  if ((p.flags & F_ACCUM) != 0u) {
    r += f32(out[idx]);
  }
  out[idx] = act(r);
}

/** The f16 scale of q4 group g of weight row `row`. */
fn q4_scale(row: u32, g: u32) -> f32 {
  return unpack2x16float(scales[row * p.spr + (g >> 1u)])[g & 1u];
}

/** Σ nibble_e · x_e over the 8 nibbles of `word` (element e in bits 4e..4e+3), without the −8 offset. */
fn dot8(word: u32, xa: vec4<f32>, xb: vec4<f32>) -> f32 {
  let a = vec4<f32>((vec4<u32>(word) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u));
  let b = vec4<f32>((vec4<u32>(word) >> vec4<u32>(16u, 20u, 24u, 28u)) & vec4<u32>(15u));
  return dot(a, xa) + dot(b, xb);
}

/** Dense weights k..k+3 of weight row `row` (f32 or f16 by FMT), zero past K when `tail`. */
fn dense4(row: u32, k: u32, tail: bool) -> vec4<f32> {
  let base = row * p.wpr;
  if (FMT == 0u) {
    if (tail) {
      let last = p.k - 1u;
      let v = vec4<f32>(bitcast<f32>(w_u32[base + min(k, last)]), bitcast<f32>(w_u32[base + min(k + 1u, last)]),
                        bitcast<f32>(w_u32[base + min(k + 2u, last)]), bitcast<f32>(w_u32[base + min(k + 3u, last)]));
      return select(vec4<f32>(0.0), v, vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.k));
    }
    return vec4<f32>(bitcast<f32>(w_u32[base + k]), bitcast<f32>(w_u32[base + k + 1u]),
                     bitcast<f32>(w_u32[base + k + 2u]), bitcast<f32>(w_u32[base + k + 3u]));
  }
  // f16: k is even, so elements k, k+1 are word k/2 and k+2, k+3 are word k/2+1.
  let wi = base + (k >> 1u);
  if (tail) {
    let last = base + p.wpr - 1u;
    let v = vec4<f32>(unpack2x16float(w_u32[min(wi, last)]), unpack2x16float(w_u32[min(wi + 1u, last)]));
    return select(vec4<f32>(0.0), v, vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.k));
  }
  return vec4<f32>(unpack2x16float(w_u32[wi]), unpack2x16float(w_u32[wi + 1u]));
}

// ---------------------------------------------------------------- reg_*: register blocking (CPU adapters)
// Each step function exists twice: `_s` reads x through the scalar binding (any K), `_v` through the vec4
// binding (K % 4 == 0, every row then starts on a vec4). CPU drivers issue one load per vector either way, so
// the vec4 path does a quarter of the x loads; an entry point may only touch one of the two bindings.

/** x[base + k .. +4] through the vec4 binding; base and k are multiples of 4 and so is K. */
fn xv4(base: u32, k: u32, tail: bool) -> vec4<f32> {
  if (tail) {
    return select(vec4<f32>(0.0), vec4<f32>(xv[(base + min(k, p.k - 4u)) >> 2u]), k < p.k);
  }
  return vec4<f32>(xv[(base + k) >> 2u]);
}

/** The 4 weight rows' words and scales of q4 group g. */
struct Q4Group {
  q: array<vec4<u32>, 4>,
  s: vec4<f32>,
}

fn q4_group(rows: vec4<u32>, g: u32) -> Q4Group {
  let gpr = p.wpr >> 2u;
  var w: Q4Group;
  w.q = array<vec4<u32>, 4>(w_q4[rows.x * gpr + g], w_q4[rows.y * gpr + g], w_q4[rows.z * gpr + g],
                            w_q4[rows.w * gpr + g]);
  w.s = vec4<f32>(q4_scale(rows.x, g), q4_scale(rows.y, g), q4_scale(rows.z, g), q4_scale(rows.w, g));
  return w;
}

/** Contribution of one x row's 32 values (xg) in group w to the 4 outputs. */
fn q4_dot(w: Q4Group, xg: array<vec4<f32>, 8>) -> vec4<f32> {
  var d = vec4<f32>(0.0);
  var xs = 0.0;
  for (var t = 0u; t < 4u; t++) {
    let xa = xg[2u * t];
    let xb = xg[2u * t + 1u];
    xs += dot(xa + xb, vec4<f32>(1.0));
    d += vec4<f32>(dot8(w.q[0][t], xa, xb), dot8(w.q[1][t], xa, xb), dot8(w.q[2][t], xa, xb), dot8(w.q[3][t], xa, xb));
  }
  // Σ (nibble − 8)·x = Σ nibble·x − 8·Σ x (padding nibbles are 8 and their x is 0).
  return (d - 8.0 * xs) * w.s;
}

fn reg_q4_step_s(acc: ptr<function, array<vec4<f32>, 4>>, rows: vec4<u32>, base: array<u32, 4>, g: u32,
                 tail: bool) {
  let w = q4_group(rows, g);
  for (var i = 0u; i < MR; i++) {
    var xg: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) {
      xg[j] = x4(base[i], g * 32u + 4u * j, tail);
    }
    (*acc)[i] += q4_dot(w, xg);
  }
}

fn reg_q4_step_v(acc: ptr<function, array<vec4<f32>, 4>>, rows: vec4<u32>, base: array<u32, 4>, g: u32,
                 tail: bool) {
  let w = q4_group(rows, g);
  for (var i = 0u; i < MR; i++) {
    var xg: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) {
      xg[j] = xv4(base[i], g * 32u + 4u * j, tail);
    }
    (*acc)[i] += q4_dot(w, xg);
  }
}

/** Dense weights k..k+7 of the 4 rows: [2j] and [2j+1] belong to row j. */
fn dense_chunk(rows: vec4<u32>, k: u32, tail: bool) -> array<vec4<f32>, 8> {
  return array<vec4<f32>, 8>(dense4(rows.x, k, tail), dense4(rows.x, k + 4u, tail), dense4(rows.y, k, tail),
                             dense4(rows.y, k + 4u, tail), dense4(rows.z, k, tail), dense4(rows.z, k + 4u, tail),
                             dense4(rows.w, k, tail), dense4(rows.w, k + 4u, tail));
}

fn dense_dot(w: array<vec4<f32>, 8>, xa: vec4<f32>, xb: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(dot(w[0], xa) + dot(w[1], xb), dot(w[2], xa) + dot(w[3], xb), dot(w[4], xa) + dot(w[5], xb),
                   dot(w[6], xa) + dot(w[7], xb));
}

fn reg_dense_step_s(acc: ptr<function, array<vec4<f32>, 4>>, rows: vec4<u32>, base: array<u32, 4>, k: u32,
                    tail: bool) {
  let w = dense_chunk(rows, k, tail);
  for (var i = 0u; i < MR; i++) {
    (*acc)[i] += dense_dot(w, x4(base[i], k, tail), x4(base[i], k + 4u, tail));
  }
}

fn reg_dense_step_v(acc: ptr<function, array<vec4<f32>, 4>>, rows: vec4<u32>, base: array<u32, 4>, k: u32,
                    tail: bool) {
  let w = dense_chunk(rows, k, tail);
  for (var i = 0u; i < MR; i++) {
    (*acc)[i] += dense_dot(w, xv4(base[i], k, tail), xv4(base[i], k + 4u, tail));
  }
}

struct RegTile {
  ok: bool,
  m0: u32,             // first processed row
  c0: u32,             // first weight row (of the part)
  rows: vec4<u32>,     // the 4 weight rows, clamped to the part
  base: array<u32, 4>, // x row offsets of the MR rows
}

fn reg_tile(wid: u32, li: u32) -> RegTile {
  var t: RegTile;
  t.ok = false;
  if (wid >= p.wg_count) {
    return t;
  }
  t.m0 = (wid / p.wg_n) * MR;
  t.c0 = ((wid % p.wg_n) * WG + li) * NR;
  if (t.c0 >= p.n) {
    return t;
  }
  t.ok = true;
  t.rows = min(vec4<u32>(t.c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u));
  for (var i = 0u; i < MR; i++) {
    t.base[i] = x_base(t.m0 + i);
  }
  return t;
}

fn reg_emit(t: RegTile, acc: array<vec4<f32>, 4>) {
  for (var i = 0u; i < MR; i++) {
    for (var j = 0u; j < NR; j++) {
      emit(t.m0 + i, t.c0 + j, acc[i][j]);
    }
  }
}

@compute @workgroup_size(WG)
fn reg_q4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
  let t = reg_tile(wg.x + wg.y * nwg.x, li);
  if (!t.ok) {
    return;
  }
  var acc: array<vec4<f32>, 4>;
  let full = p.k / 32u;
  for (var g = 0u; g < full; g++) {
    reg_q4_step_s(&acc, t.rows, t.base, g, false);
  }
  if (full * 32u < p.k) {
    reg_q4_step_s(&acc, t.rows, t.base, full, true);
  }
  reg_emit(t, acc);
}

@compute @workgroup_size(WG)
fn reg_q4_xv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
  let t = reg_tile(wg.x + wg.y * nwg.x, li);
  if (!t.ok) {
    return;
  }
  var acc: array<vec4<f32>, 4>;
  let full = p.k / 32u;
  for (var g = 0u; g < full; g++) {
    reg_q4_step_v(&acc, t.rows, t.base, g, false);
  }
  if (full * 32u < p.k) {
    reg_q4_step_v(&acc, t.rows, t.base, full, true);
  }
  reg_emit(t, acc);
}

@compute @workgroup_size(WG)
fn reg_dense(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
  _ = &scales; // bound for a uniform layout; dense weights have no scales
  let t = reg_tile(wg.x + wg.y * nwg.x, li);
  if (!t.ok) {
    return;
  }
  var acc: array<vec4<f32>, 4>;
  let full = p.k / 8u;
  for (var c = 0u; c < full; c++) {
    reg_dense_step_s(&acc, t.rows, t.base, c * 8u, false);
  }
  if (full * 8u < p.k) {
    reg_dense_step_s(&acc, t.rows, t.base, full * 8u, true);
  }
  reg_emit(t, acc);
}

@compute @workgroup_size(WG)
fn reg_dense_xv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
  _ = &scales;
  let t = reg_tile(wg.x + wg.y * nwg.x, li);
  if (!t.ok) {
    return;
  }
  var acc: array<vec4<f32>, 4>;
  let full = p.k / 8u;
  for (var c = 0u; c < full; c++) {
    reg_dense_step_v(&acc, t.rows, t.base, c * 8u, false);
  }
  if (full * 8u < p.k) {
    reg_dense_step_v(&acc, t.rows, t.base, full * 8u, true);
  }
  reg_emit(t, acc);
}

// ---------------------------------------------------------------- coop_*: team per weight row (GPU GEMV)

var<workgroup> partial: array<vec4<f32>, WG>; // [WG] one partial per thread, component i = x row i

struct CoopTile {
  m0: u32,
  c: u32,        // weight row of this team (may be ≥ p.n: then it computes row p.n−1 and writes nothing)
  row: u32,      // c clamped to the part
  t: u32,        // thread index within the team
  base: array<u32, 4>,
}

fn coop_tile(wid: u32, li: u32) -> CoopTile {
  var t: CoopTile;
  t.m0 = (wid / p.wg_n) * MR;
  t.c = (wid % p.wg_n) * (WG / TEAM) + li / TEAM;
  t.row = min(t.c, p.n - 1u);
  t.t = li % TEAM;
  for (var i = 0u; i < MR; i++) {
    t.base[i] = x_base(t.m0 + i);
  }
  return t;
}

/** Sum the team's partials (one barrier) and write the MR results. */
fn coop_finish(t: CoopTile, li: u32, acc: vec4<f32>) {
  partial[li] = acc;
  workgroupBarrier();
  if (t.t < MR) {
    let first = li - t.t;
    var s = 0.0;
    for (var u = 0u; u < TEAM; u++) {
      s += partial[first + u][t.t];
    }
    emit(t.m0 + t.t, t.c, s);
  }
}

@compute @workgroup_size(WG)
fn coop_q4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
  let wid = wg.x + wg.y * nwg.x;
  if (wid >= p.wg_count) {
    return; // uniform: the whole workgroup leaves before any barrier
  }
  let t = coop_tile(wid, li);
  var acc = vec4<f32>(0.0);
  let groups = p.wpr >> 2u;
  let full = p.k / 32u;
  for (var g = t.t; g < groups; g += TEAM) {
    let tail = g >= full;
    let q = w_q4[t.row * groups + g];
    let s = q4_scale(t.row, g);
    for (var i = 0u; i < MR; i++) {
      var d = 0.0;
      var xs = 0.0;
      for (var j = 0u; j < 4u; j++) {
        let k = g * 32u + j * 8u;
        let xa = x4(t.base[i], k, tail);
        let xb = x4(t.base[i], k + 4u, tail);
        xs += dot(xa + xb, vec4<f32>(1.0));
        d += dot8(q[j], xa, xb);
      }
      acc[i] += (d - 8.0 * xs) * s;
    }
  }
  coop_finish(t, li, acc);
}

@compute @workgroup_size(WG)
fn coop_dense(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
  _ = &scales;
  let wid = wg.x + wg.y * nwg.x;
  if (wid >= p.wg_count) {
    return;
  }
  let t = coop_tile(wid, li);
  var acc = vec4<f32>(0.0);
  let base = t.row * p.wpr;
  for (var u = t.t; u < p.wpr; u += TEAM) {
    let word = w_u32[base + u];
    if (FMT == 0u) {
      let wv = bitcast<f32>(word);
      for (var i = 0u; i < MR; i++) {
        acc[i] += wv * xval(t.base[i], u, false);
      }
    } else {
      let wv = unpack2x16float(word);
      let k = 2u * u;
      for (var i = 0u; i < MR; i++) {
        // The second half of the last word is padding when K is odd: its x is masked to 0.
        acc[i] += wv.x * xval(t.base[i], k, false) + wv.y * xval(t.base[i], k + 1u, true);
      }
    }
  }
  coop_finish(t, li, acc);
}

// ---------------------------------------------------------------- tiled_*: shared-memory GEMM (GPU prefill)

const TB = 64u;   // tile rows (x) and tile columns (weight rows)
const TK = 32u;   // tile depth = one q4 group

var<workgroup> xs_tile: array<vec4<f32>, 512>; // [TK][TB/4]: x tile, k-major, 4 rows per vec4
var<workgroup> ws_tile: array<vec4<f32>, 512>; // [TK][TB/4]: W tile, k-major, 4 weight rows per vec4

struct TiledTile {
  m0: u32,
  c0: u32,
  lr: u32,       // loader: tile row (0..63) this thread stages
  lk: u32,       // loader: first of its 8 k positions (0, 8, 16, 24)
  xbase: u32,    // loader: x row offset of tile row lr
  wrow: u32,     // loader: weight row of tile row lr, clamped to the part
}

fn tiled_tile(wid: u32, li: u32) -> TiledTile {
  var t: TiledTile;
  t.m0 = (wid / p.wg_n) * TB;
  t.c0 = (wid % p.wg_n) * TB;
  t.lr = li / 4u;
  t.lk = (li % 4u) * 8u;
  t.xbase = x_base(t.m0 + t.lr);
  t.wrow = min(t.c0 + t.lr, p.n - 1u);
  return t;
}

fn stage_x(t: TiledTile, k0: u32) {
  for (var e = 0u; e < 8u; e++) {
    xs_tile[(t.lk + e) * 16u + t.lr / 4u][t.lr % 4u] = xval(t.xbase, k0 + t.lk + e, true);
  }
}

fn stage_w(t: TiledTile, e: u32, v: f32) {
  ws_tile[(t.lk + e) * 16u + t.lr / 4u][t.lr % 4u] = v;
}

/** Multiply the staged tiles into the thread's 4×4 outputs, then write them once K is done. */
fn tiled_mac(acc: ptr<function, array<vec4<f32>, 4>>, li: u32) {
  let tx = li % 16u;
  let ty = li / 16u;
  for (var kk = 0u; kk < TK; kk++) {
    let a = xs_tile[kk * 16u + ty];
    let b = ws_tile[kk * 16u + tx];
    (*acc)[0] += a.x * b;
    (*acc)[1] += a.y * b;
    (*acc)[2] += a.z * b;
    (*acc)[3] += a.w * b;
  }
}

fn tiled_emit(t: TiledTile, li: u32, acc: array<vec4<f32>, 4>) {
  let tx = li % 16u;
  let ty = li / 16u;
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      emit(t.m0 + ty * 4u + i, t.c0 + tx * 4u + j, acc[i][j]);
    }
  }
}

@compute @workgroup_size(256)
fn tiled_q4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
  let wid = wg.x + wg.y * nwg.x;
  if (wid >= p.wg_count) {
    return;
  }
  let t = tiled_tile(wid, li);
  var acc: array<vec4<f32>, 4>;
  let groups = p.wpr >> 2u;
  for (var g = 0u; g < groups; g++) {
    stage_x(t, g * TK);
    let word = w_q4[t.wrow * groups + g][t.lk / 8u];
    let s = q4_scale(t.wrow, g);
    for (var e = 0u; e < 8u; e++) {
      stage_w(t, e, (f32((word >> (4u * e)) & 15u) - 8.0) * s);
    }
    workgroupBarrier();
    tiled_mac(&acc, li);
    workgroupBarrier();
  }
  tiled_emit(t, li, acc);
}

@compute @workgroup_size(256)
fn tiled_dense(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
  _ = &scales;
  let wid = wg.x + wg.y * nwg.x;
  if (wid >= p.wg_count) {
    return;
  }
  let t = tiled_tile(wid, li);
  var acc: array<vec4<f32>, 4>;
  let tiles = (p.k + TK - 1u) / TK;
  for (var kt = 0u; kt < tiles; kt++) {
    let k0 = kt * TK;
    stage_x(t, k0);
    let a = dense4(t.wrow, k0 + t.lk, true);
    let b = dense4(t.wrow, k0 + t.lk + 4u, true);
    for (var e = 0u; e < 4u; e++) {
      stage_w(t, e, a[e]);
      stage_w(t, e + 4u, b[e]);
    }
    workgroupBarrier();
    tiled_mac(&acc, li);
    workgroupBarrier();
  }
  tiled_emit(t, li, acc);
}
