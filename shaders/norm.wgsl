// norm.wgsl — RMSNorm (InternLM2) and LayerNorm (CLIP) over the last dimension of x [rows, D].
//
// Thread mapping: one workgroup per row. Linear workgroup id row = wg.x + wg.y * nwg.x (2-D grid, see
// GpuContext.grid); workgroups past `rows` return at once (a uniform branch). The WG invocations of a row
// stride over it (elements li, li + WG, …), reduce their partial sums in workgroup memory (tree, WG a power
// of two), then each invocation writes the elements it read. Statistics and products are f32.
//
//   rms_norm:   y = x · 1/sqrt(mean(x²) + eps) · w
//   layer_norm: y = (x − mean) · 1/sqrt(var + eps) · w + b    (two-pass: mean first, then Σ(x − mean)²,
//               both over x − x[row, 0] so a large common offset does not cost precision)
// Several module-scope variables share a binding number; no entry point uses more than one of them.

override WG: u32 = 256;

struct Params { rows: u32, d: u32, eps: f32, }

@group(0) @binding(0) var<storage, read> x: array<act>;            // [rows, D]
@group(0) @binding(1) var<storage, read> weight: array<f32>;       // [D]
@group(0) @binding(2) var<storage, read_write> rms_y: array<act>;  // [rows, D]   (rms_norm)
@group(0) @binding(3) var<uniform> rms_params: Params;             //             (rms_norm)
@group(0) @binding(2) var<storage, read> bias: array<f32>;         // [D]         (layer_norm)
@group(0) @binding(3) var<storage, read_write> ln_y: array<act>;   // [rows, D]   (layer_norm)
@group(0) @binding(4) var<uniform> ln_params: Params;              //             (layer_norm)

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

@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= rms_params.rows) {
    return;
  }
  let d = rms_params.d;
  let base = row * d;
  var ss = 0.0;
  for (var i = li; i < d; i += WG) {
    let v = f32(x[base + i]);
    ss += v * v;
  }
  let total = workgroup_sum(li, ss);
  let r = 1.0 / sqrt(total / f32(d) + rms_params.eps);
  for (var i = li; i < d; i += WG) {
    rms_y[base + i] = act(f32(x[base + i]) * r * weight[i]);
  }
}

@compute @workgroup_size(WG)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= ln_params.rows) {
    return;
  }
  let d = ln_params.d;
  let base = row * d;
  // Sums are shifted by the row's first element k: when |mean| ≫ spread, x − k is exact and small, so
  // the mean (k + m) does not lose the spread to f32 rounding of large partial sums.
  let k = f32(x[base]);
  var s = 0.0;
  for (var i = li; i < d; i += WG) {
    s += f32(x[base + i]) - k;
  }
  let m = workgroup_sum(li, s) / f32(d);
  var ss = 0.0;
  for (var i = li; i < d; i += WG) {
    let c = (f32(x[base + i]) - k) - m;
    ss += c * c;
  }
  let r = 1.0 / sqrt(workgroup_sum(li, ss) / f32(d) + ln_params.eps);
  for (var i = li; i < d; i += WG) {
    ln_y[base + i] = act(((f32(x[base + i]) - k) - m) * r * weight[i] + bias[i]);
  }
}
