// embedding.wgsl — token embedding gather: out[t, :] = table[ids[t], :], dequantised to act.
//
// The table is a Matrix (src/gpu/tensor.ts) of n rows × D, in f32, f16 (pairs in u32) or q4 (int4 nibbles in
// u32 + f16 group scales), possibly split into row-block parts. One dispatch per part: it writes the tokens
// whose id lies in [row_start, row_start + row_count) and leaves the others alone; the part flagged
// `zero_oob` (the last one) also writes zeros for ids ≥ n, so no id ever reads out of bounds.
//
// Thread mapping: one invocation per output element e = t·D + j (2-D grid, linear workgroup id
// wg.x + wg.y * nwg.x, e = wid·WG + li); invocations with e ≥ T·D do nothing.
// Several module-scope variables share a binding number; no entry point uses more than one of them.

override WG: u32 = 256;

struct Params {
  t: u32,           // tokens T
  d: u32,           // row length D (= Matrix.k)
  row_start: u32,   // first table row held by this part
  row_count: u32,   // rows held by this part
  n: u32,           // rows of the whole table
  words: u32,       // f16: u32 words per row (ceil(D/2)); q4: qweight words per row (kp/8)
  scale_words: u32, // q4: scale words per row
  zero_oob: u32,    // 1: write zeros for ids ≥ n
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;              // [T]
@group(0) @binding(1) var<storage, read> table_f32: array<f32>;        // [row_count, D]
@group(0) @binding(1) var<storage, read> table_u32: array<u32>;        // f16: [row_count, words]; q4: [row_count, words]
@group(0) @binding(2) var<storage, read_write> out: array<act>;        // [T, D]   (embed_f32, embed_f16)
@group(0) @binding(3) var<uniform> params: Params;                     //          (embed_f32, embed_f16)
@group(0) @binding(2) var<storage, read> scales: array<u32>;           // q4: [row_count, scale_words] f16 pairs
@group(0) @binding(3) var<storage, read_write> out_q4: array<act>;     // [T, D]   (embed_q4)
@group(0) @binding(4) var<uniform> params_q4: Params;                  //          (embed_q4)

// What this part does for element e: 0 = nothing, 1 = write the table value, 2 = write zero.
struct Job { action: u32, row: u32, col: u32, }

fn job(p: Params, e: u32) -> Job {
  if (e >= p.t * p.d) {
    return Job(0u, 0u, 0u);
  }
  let t = e / p.d;
  let col = e - t * p.d;
  let id = ids[t];
  if (id >= p.row_start && id - p.row_start < p.row_count) {
    return Job(1u, id - p.row_start, col);
  }
  if (id >= p.n && p.zero_oob != 0u) {
    return Job(2u, 0u, col);
  }
  return Job(0u, 0u, 0u);
}

fn half_of(word: u32, hi: bool) -> f32 {
  let v = unpack2x16float(word);
  return select(v.x, v.y, hi);
}

@compute @workgroup_size(WG)
fn embed_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
  let e = (wg.x + wg.y * nwg.x) * WG + li;
  let j = job(params, e);
  if (j.action == 1u) {
    out[e] = act(table_f32[j.row * params.d + j.col]);
  } else if (j.action == 2u) {
    out[e] = act(0.0);
  }
}

@compute @workgroup_size(WG)
fn embed_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
  let e = (wg.x + wg.y * nwg.x) * WG + li;
  let j = job(params, e);
  if (j.action == 1u) {
    let word = table_u32[j.row * params.words + j.col / 2u];
    out[e] = act(half_of(word, (j.col & 1u) == 1u));
  } else if (j.action == 2u) {
    out[e] = act(0.0);
  }
}

@compute @workgroup_size(WG)
fn embed_q4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
  let e = (wg.x + wg.y * nwg.x) * WG + li;
  let j = job(params_q4, e);
  if (j.action == 1u) {
    let word = table_u32[j.row * params_q4.words + j.col / 8u];
    let q = f32((word >> ((j.col & 7u) * 4u)) & 0xfu) - 8.0;
    let g = j.col / 32u;
    let scale = half_of(scales[j.row * params_q4.scale_words + g / 2u], (g & 1u) == 1u);
    out_q4[e] = act(q * scale);
  } else if (j.action == 2u) {
    out_q4[e] = act(0.0);
  }
}
