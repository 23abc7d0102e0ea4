// sampling.wgsl — reductions over one row of f32 logits [V]: argmax, top-k, repetition penalty.
//
// Ordering. Each logit becomes a u32 key whose unsigned order is the float order (order_key); NaN maps to
// key 0, below −inf, so a NaN is never preferred over a number; −0 and +0 get the same key. Candidates are
// (key, index) pairs, vec2<u32>; a beats b when a.key > b.key, or the keys tie and a.index < b.index (ties
// → lower index first). Padding is (0, 0xffffffff): it loses to everything, NaN included.
//
// argmax (two passes):
//   argmax_partial — workgroup w scans elements [w·WG·PER, (w+1)·WG·PER) (invocation li reads w·WG·PER + j·WG + li,
//                    j < PER: coalesced), keeps its best, tree-reduces the workgroup's best into cand_out[w].
//   argmax_final   — one workgroup strides over the n partials, tree-reduces, writes the index to out_u32[0].
// top-k (k ≤ 256 ≤ CHUNK):
//   topk_logits    — workgroup w loads logits [w·CHUNK, (w+1)·CHUNK) into workgroup memory (padding past V),
//                    bitonic-sorts them best-first (CHUNK/2 compare-exchanges per step, WG invocations each
//                    taking every WG-th pair), writes its k best to cand_out[w·k, (w+1)·k).
//   topk_merge     — the same over candidate pairs: n candidates → ⌈n/CHUNK⌉·k. Repeated until n ≤ CHUNK.
//   topk_final     — one workgroup sorts the last ≤ CHUNK candidates, writes values and indices [k].
//   topk_logits_final — the same straight from logits when V ≤ CHUNK.
// repetition penalty (HF semantics, duplicates applied once):
//   penalty_gather  — tmp[i] = f(logits[ids[i]]) for i < n (reads only), f(x) = x > 0 ? x/penalty : x·penalty;
//   penalty_scatter — logits[ids[i]] = tmp[i] (a second dispatch, so every read saw the original logit;
//                     duplicate ids write the same value). Ids ≥ V are skipped.
// Grids of independent workgroups are 2-D (GpuContext.grid): wid = wg.x + wg.y * nwg.x; ids past the count
// return at once (uniform branches).
// Several module-scope variables share a binding number; no entry point uses more than one of them.

override WG: u32 = 256;
override PER: u32 = 16;       // argmax_partial: elements per invocation
override CHUNK: u32 = 1024;   // top-k: elements sorted per workgroup (power of two, ≥ 2·WG, ≥ k)

struct Params {
  n: u32,        // elements in: V for logits passes, candidate count for merge/final, ids for penalty
  k: u32,        // top-k
  v: u32,        // penalty: vocabulary size V
  penalty: f32,  // penalty
}

@group(0) @binding(0) var<storage, read> src_f32: array<f32>;             // [V] logits, or [n] tmp (scatter)
@group(0) @binding(0) var<storage, read> cand_in: array<vec2<u32>>;       // [n] (key, index)
@group(0) @binding(1) var<storage, read_write> cand_out: array<vec2<u32>>; // [⌈n/chunk⌉·k] or [partials]
@group(0) @binding(1) var<storage, read_write> out_u32: array<u32>;       // [1]   argmax index
@group(0) @binding(1) var<storage, read_write> out_values: array<f32>;    // [k]
@group(0) @binding(1) var<storage, read> ids: array<u32>;                 // [n]   penalty ids
@group(0) @binding(2) var<uniform> params2: Params;                       // two-storage-binding entries
@group(0) @binding(2) var<storage, read_write> out_indices: array<u32>;   // [k]
@group(0) @binding(2) var<storage, read_write> dst_f32: array<f32>;       // [n] tmp (gather) or [V] logits (scatter)
@group(0) @binding(3) var<uniform> params3: Params;                       // three-storage-binding entries

const PAD_INDEX: u32 = 0xffffffffu;

fn order_key(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) {
    return 0u;  // NaN
  }
  if ((b & 0x7fffffffu) == 0u) {
    return 0x80000000u;  // ±0
  }
  if ((b & 0x80000000u) != 0u) {
    return ~b;
  }
  return b | 0x80000000u;
}

fn key_value(k: u32) -> f32 {
  if (k == 0u) {
    return bitcast<f32>(0x7fc00000u | k);  // NaN (built at run time: a constant NaN is a shader error)
  }
  if ((k & 0x80000000u) != 0u) {
    return bitcast<f32>(k & 0x7fffffffu);
  }
  return bitcast<f32>(~k);
}

fn better(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.x > b.x || (a.x == b.x && a.y < b.y);
}

fn workgroup_id_linear(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.x + wg.y * nwg.x;
}

// ---------------------------------------------------------------- argmax

var<workgroup> red: array<vec2<u32>, WG>;

// Best pair over the workgroup; every invocation gets it. Call from uniform control flow.
fn workgroup_best(li: u32, v: vec2<u32>) -> vec2<u32> {
  red[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (li < s && better(red[li + s], red[li])) {
      red[li] = red[li + s];
    }
    workgroupBarrier();
  }
  let best = red[0];
  workgroupBarrier();
  return best;
}

@compute @workgroup_size(WG)
fn argmax_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
  let w = workgroup_id_linear(wg, nwg);
  let n = params2.n;
  if (w >= (n + WG * PER - 1u) / (WG * PER)) {
    return;
  }
  let base = w * WG * PER;
  var best = vec2<u32>(0u, PAD_INDEX);
  for (var j = 0u; j < PER; j++) {
    let i = base + j * WG + li;
    if (i < n) {
      let c = vec2<u32>(order_key(src_f32[i]), i);
      if (better(c, best)) {
        best = c;
      }
    }
  }
  let r = workgroup_best(li, best);
  if (li == 0u) {
    cand_out[w] = r;
  }
}

@compute @workgroup_size(WG)
fn argmax_final(@builtin(local_invocation_index) li: u32) {
  var best = vec2<u32>(0u, PAD_INDEX);
  for (var i = li; i < params2.n; i += WG) {
    let c = cand_in[i];
    if (better(c, best)) {
      best = c;
    }
  }
  let r = workgroup_best(li, best);
  if (li == 0u) {
    out_u32[0] = select(r.y, 0u, r.y == PAD_INDEX);
  }
}

// ---------------------------------------------------------------- top-k

var<workgroup> chunk: array<vec2<u32>, CHUNK>;

// Sort `chunk` best-first (bitonic network). Call from uniform control flow, after the loads.
fn sort_chunk(li: u32) {
  workgroupBarrier();
  for (var size = 2u; size <= CHUNK; size = size * 2u) {
    for (var stride = size / 2u; stride > 0u; stride = stride / 2u) {
      for (var p = li; p < CHUNK / 2u; p += WG) {
        // Pair p → elements i < j = i + stride (insert a zero bit at log2(stride) into p).
        let i = 2u * p - (p & (stride - 1u));
        let j = i + stride;
        let a = chunk[i];
        let b = chunk[j];
        // Blocks with (i & size) == 0 end best-first, the others worst-first; the last block is all of them.
        let swap = select(better(a, b), better(b, a), (i & size) == 0u);
        if (swap) {
          chunk[i] = b;
          chunk[j] = a;
        }
      }
      workgroupBarrier();
    }
  }
}

fn load_logits(li: u32, base: u32, n: u32) {
  for (var e = li; e < CHUNK; e += WG) {
    let g = base + e;
    if (g < n) {
      chunk[e] = vec2<u32>(order_key(src_f32[g]), g);
    } else {
      chunk[e] = vec2<u32>(0u, PAD_INDEX);
    }
  }
}

fn load_candidates(li: u32, base: u32, n: u32) {
  for (var e = li; e < CHUNK; e += WG) {
    let g = base + e;
    if (g < n) {
      chunk[e] = cand_in[g];
    } else {
      chunk[e] = vec2<u32>(0u, PAD_INDEX);
    }
  }
}

fn store_candidates(li: u32, w: u32, k: u32) {
  for (var r = li; r < k; r += WG) {
    cand_out[w * k + r] = chunk[r];
  }
}

fn store_final(li: u32, k: u32) {
  for (var r = li; r < k; r += WG) {
    out_values[r] = key_value(chunk[r].x);
    out_indices[r] = chunk[r].y;
  }
}

@compute @workgroup_size(WG)
fn topk_logits(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
  let w = workgroup_id_linear(wg, nwg);
  if (w >= (params2.n + CHUNK - 1u) / CHUNK) {
    return;
  }
  load_logits(li, w * CHUNK, params2.n);
  sort_chunk(li);
  store_candidates(li, w, params2.k);
}

@compute @workgroup_size(WG)
fn topk_merge(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
  let w = workgroup_id_linear(wg, nwg);
  if (w >= (params2.n + CHUNK - 1u) / CHUNK) {
    return;
  }
  load_candidates(li, w * CHUNK, params2.n);
  sort_chunk(li);
  store_candidates(li, w, params2.k);
}

@compute @workgroup_size(WG)
fn topk_final(@builtin(local_invocation_index) li: u32) {
  load_candidates(li, 0u, params3.n);
  sort_chunk(li);
  store_final(li, params3.k);
}

@compute @workgroup_size(WG)
fn topk_logits_final(@builtin(local_invocation_index) li: u32) {
  load_logits(li, 0u, params3.n);
  sort_chunk(li);
  store_final(li, params3.k);
}

// ---------------------------------------------------------------- repetition penalty

@compute @workgroup_size(WG)
fn penalty_gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
  let i = workgroup_id_linear(wg, nwg) * WG + li;
  if (i < params3.n) {
    let id = ids[i];
    if (id < params3.v) {
      let x = src_f32[id];
      dst_f32[i] = select(x * params3.penalty, x / params3.penalty, x > 0.0);
    }
  }
}

@compute @workgroup_size(WG)
fn penalty_scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
  let i = workgroup_id_linear(wg, nwg) * WG + li;
  if (i < params3.n) {
    let id = ids[i];
    if (id < params3.v) {
      dst_f32[id] = src_f32[i];
    }
  }
}
