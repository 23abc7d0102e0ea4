// rope.wgsl — the fused InternLM2 `wqkv` output split into q / k / v, with rotary position embedding
// (RoPE) applied to q and k, writing q (token-major) and the layer's KV cache.
//
// Layout of one qkv row: grouped per kv head h, slots [q(h,0), …, q(h,G−1), k(h), v(h)], each hd wide, so
// head-slot c = h·(G+2) + slot starts at column c·hd; query head j = h·G + slot.
//
// RoPE (rotate_half, non-interleaved halves), for pair index i < hd/2 at absolute position pos:
//   y[i]        = x[i]·cos(a) − x[i+hd/2]·sin(a)
//   y[i + hd/2] = x[i+hd/2]·cos(a) + x[i]·sin(a),      a = pos·θ^(−2i/hd).
// The angle is computed in turns, reduced to [−½, ½) before cos/sin, from a frequency f = θ^(−2i/hd)/2π the
// host computes in f64 and splits as f = hi + mid + lo, where hi and mid carry 8 significant bits each: for
// pos < 2^16, pos·hi and pos·mid are exact in f32, so their fractional parts carry no rounding, and
// pos·lo < 2^-16·pos·f is tiny. The angle error is then ~1e-6 rad at any supported position (a plain f32
// pos·inv_freq is off by up to ~2.4e-4 rad at pos 4095). cos/sin are evaluated here from the angle in turns
// (quarter-turn reduction + polynomials), not with the builtins, whose error WebGPU bounds only by 2^-11.
//
// Thread mapping: one invocation per (token t, head-slot c, pair index i); it reads columns i and i + hd/2
// of slot c and writes both outputs. Linear id = ((t·nC) + c)·(hd/2) + i with nC = nQ + 2·nKV; the grid is
// 2-D (GpuContext.grid): workgroup id = wg.x + wg.y·num_workgroups.x, ids ≥ count do nothing.

override WG: u32 = 64;

@group(0) @binding(0) var<storage, read> qkv: array<act>;             // [T, (nQ + 2·nKV)·hd]
@group(0) @binding(1) var<storage, read_write> q: array<act>;         // [T, nQ·hd]
@group(0) @binding(2) var<storage, read_write> k_cache: array<act>;   // [nKV, cap, hd]
@group(0) @binding(3) var<storage, read_write> v_cache: array<act>;   // [nKV, cap, hd]

struct Params {
  T: u32,
  nQ: u32,
  nKV: u32,
  hd: u32,
  cap: u32,
  pos0: u32,
  count: u32,      // T · nC · hd/2 invocations
  qkv_stride: u32, // elements per qkv row = nC · hd
  // Frequency in turns per position of pair i, split as (hi, mid, lo, 0).
  freq: array<vec4<f32>, 64>,  // [hd/2] (hd ≤ 128)
}
@group(0) @binding(4) var<uniform> params: Params;

/// (cos a, sin a) for pair index i at position pos.
fn rope_cos_sin(pos: u32, i: u32) -> vec2<f32> {
  let f = params.freq[i];
  let p = f32(pos);                                // exact (pos < 2^16)
  let exact = fract(p * f.x) + fract(p * f.y);     // both products exact: ≤ 16 + 8 significant bits
  return cos_sin_turns(fract(exact + p * f.z));
}

/// (cos 2πt, sin 2πt) for t in [0, 1), to ~1e-7 on every device. The builtin cos/sin only promise an
/// absolute error of 2^-11 (SwiftShader's are off by ~1.5e-4), so this reduces to a quarter turn exactly
/// and evaluates Taylor polynomials on |x| ≤ π/4 (truncation error < 3e-8).
fn cos_sin_turns(t: f32) -> vec2<f32> {
  let qf = round(4.0 * t);                       // quadrant 0..4
  let x = (t - 0.25 * qf) * 6.283185307179586;   // t − qf/4 is exact; |x| ≤ π/4
  let x2 = x * x;
  let s = x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0)))));
  let c = 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (-1.0 / 3628800.0)))));
  switch (u32(qf) & 3u) {
    case 1u: { return vec2<f32>(-s, c); }
    case 2u: { return vec2<f32>(-c, -s); }
    case 3u: { return vec2<f32>(s, -c); }
    default: { return vec2<f32>(c, s); }
  }
}

@compute @workgroup_size(WG)
fn qkv_rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
  let id = (wg.x + wg.y * nwg.x) * WG + li;
  if (id >= params.count) {
    return;
  }
  let hd = params.hd;
  let half = hd / 2u;
  let g = params.nQ / params.nKV;
  let nC = params.nQ + 2u * params.nKV;
  let i = id % half;
  let c = (id / half) % nC;
  let t = id / (half * nC);
  let h = c / (g + 2u);
  let slot = c % (g + 2u);
  let pos = params.pos0 + t;
  let src = t * params.qkv_stride + c * hd + i;
  let cache_row = (h * params.cap + pos) * hd + i;   // [nKV, cap, hd]

  if (slot == g + 1u) {
    // v: a plain copy into the cache.
    v_cache[cache_row] = qkv[src];
    v_cache[cache_row + half] = qkv[src + half];
    return;
  }
  let x1 = f32(qkv[src]);
  let x2 = f32(qkv[src + half]);
  let cs = rope_cos_sin(pos, i);
  let y1 = x1 * cs.x - x2 * cs.y;
  let y2 = x2 * cs.x + x1 * cs.y;
  if (slot == g) {
    k_cache[cache_row] = act(y1);
    k_cache[cache_row + half] = act(y2);
  } else {
    let dst = t * params.nQ * hd + (h * g + slot) * hd + i;   // query head h·G + slot
    q[dst] = act(y1);
    q[dst + half] = act(y2);
  }
}
