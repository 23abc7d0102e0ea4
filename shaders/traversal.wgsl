// traversal.wgsl — the TroL gate, fused. Per token t of h1, h2 [T, D]:
//   z = dot(h1[t], w) + b,   s = 0.5·tanh(z) + 0.5,   y[t] = (1 − s)·h1[t] + s·h2[t],   gate[t] = s.
//
// Thread mapping: one workgroup per token t = wg.x + wg.y * nwg.x (2-D grid; workgroups past T return at
// once, a uniform branch). Its WG invocations stride over the row (elements li, li + WG, …) for the dot
// product, reduce it in workgroup memory (tree; WG a power of two), then each writes the y elements it owns.
// All math in f32.
//
// In place: `gate_mix_inplace` binds the written tensor once (read_write) as `io` and the other input as
// `other`; INTO_H2 = false means io is h1 (y aliases h1), true means io is h2. Every element of h1 is read
// for the dot before the barrier in the reduction, and each y element depends only on the same element of
// h1 and h2 read by the same invocation, so overwriting in place is safe.
// Several module-scope variables share a binding number; no entry point uses more than one of them.

override WG: u32 = 256;
override INTO_H2: bool = false;

struct Params { t: u32, d: u32, b: f32, }

@group(0) @binding(0) var<storage, read> h1: array<act>;              // [T, D]  (gate_mix)
@group(0) @binding(0) var<storage, read_write> io: array<act>;        // [T, D]  (inplace: y and h1 or h2)
@group(0) @binding(1) var<storage, read> h2_or_other: array<act>;     // [T, D]  h2, or the input io is not
@group(0) @binding(2) var<storage, read> w: array<f32>;               // [D]
@group(0) @binding(3) var<storage, read_write> y: array<act>;         // [T, D]  (gate_mix)
@group(0) @binding(4) var<storage, read_write> gate: array<f32>;      // [T]     (gate_mix)
@group(0) @binding(5) var<uniform> params: Params;                    //         (gate_mix)
@group(0) @binding(3) var<storage, read_write> gate_ip: array<f32>;   // [T]     (inplace)
@group(0) @binding(4) var<uniform> params_ip: Params;                 //         (inplace)

var<workgroup> red: array<f32, WG>;

// Sum of `v` over the workgroup; every invocation gets the total. Call from uniform control flow.
fn workgroup_sum(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (li < s) {
      red[li] = red[li] + red[li + s];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

// s = 0.5·tanh(z) + 0.5. The clamp keeps tanh finite on drivers that compute it from exp(2z)
// (inf/inf = NaN); tanh(±15) is ±1 to f32 precision anyway.
fn gate_score(z: f32) -> f32 {
  return 0.5 * tanh(clamp(z, -15.0, 15.0)) + 0.5;
}

@compute @workgroup_size(WG)
fn gate_mix(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
  let t = wg.x + wg.y * nwg.x;
  if (t >= params.t) {
    return;
  }
  let d = params.d;
  let base = t * d;
  var acc = 0.0;
  for (var i = li; i < d; i += WG) {
    acc += f32(h1[base + i]) * w[i];
  }
  let s = gate_score(workgroup_sum(li, acc) + params.b);
  for (var i = li; i < d; i += WG) {
    let a = f32(h1[base + i]);
    let c = f32(h2_or_other[base + i]);
    y[base + i] = act((1.0 - s) * a + s * c);
  }
  if (li == 0u) {
    gate[t] = s;
  }
}

@compute @workgroup_size(WG)
fn gate_mix_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
  let t = wg.x + wg.y * nwg.x;
  if (t >= params_ip.t) {
    return;
  }
  let d = params_ip.d;
  let base = t * d;
  var acc = 0.0;
  for (var i = li; i < d; i += WG) {
    var a: f32;
    if (INTO_H2) {
      a = f32(h2_or_other[base + i]);
    } else {
      a = f32(io[base + i]);
    }
    acc += a * w[i];
  }
  let s = gate_score(workgroup_sum(li, acc) + params_ip.b);
  for (var i = li; i < d; i += WG) {
    let mine = f32(io[base + i]);
    let other = f32(h2_or_other[base + i]);
    let a = select(mine, other, INTO_H2);
    let c = select(other, mine, INTO_H2);
    io[base + i] = act((1.0 - s) * a + s * c);
  }
  if (li == 0u) {
    gate_ip[t] = s;
  }
}
