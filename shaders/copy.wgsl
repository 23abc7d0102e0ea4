// copy.wgsl — a plain streaming copy, used to measure the adapter's achievable memory bandwidth
// (bench: copy_gbps) and by ops that need a device-side copy of a strided range.
//
// Thread mapping: one invocation copies one vec4<u32> (16 bytes). The grid is 2-D (see GpuContext.grid):
// linear workgroup id = wg.x + wg.y * num_workgroups.x; invocations past n4 do nothing.

override WG: u32 = 256;

@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;        // [n4]
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;  // [n4]
struct Params { n4: u32, }
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn copy_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i < params.n4) {
    dst[i] = src[i];
  }
}

// cast_to_f32 — widen an activation tensor (act = f16 or f32) to f32, e.g. logits before sampling.
// Thread mapping: one invocation per element; 2-D grid as above.
@group(0) @binding(0) var<storage, read> cast_src: array<act>;        // [n]
@group(0) @binding(1) var<storage, read_write> cast_dst: array<f32>;  // [n]
struct CastParams { n: u32, }
@group(0) @binding(2) var<uniform> cast_params: CastParams;

@compute @workgroup_size(WG)
fn cast_to_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i < cast_params.n) {
    cast_dst[i] = f32(cast_src[i]);
  }
}

// fma_peak — arithmetic peak probe for the benchmark (GFLOP/s ratios): each invocation runs FMA_ITERS
// iterations of 4 independent vec4 fused multiply-adds in registers (32 flops per iteration), then writes one
// value so the work cannot be removed. Thread mapping: one invocation per output element, 2-D grid.
override FMA_ITERS: u32 = 1024;
@group(0) @binding(0) var<storage, read_write> fma_out: array<f32>;    // [n]
struct FmaParams { n: u32, seed: f32, }
@group(0) @binding(1) var<uniform> fma_params: FmaParams;

@compute @workgroup_size(WG)
fn fma_peak(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= fma_params.n) { return; }
  let s = fma_params.seed + f32(i) * 1e-7;
  var a = vec4<f32>(s, s + 1.0, s + 2.0, s + 3.0);
  var b = a * 0.5;
  var c = a * 0.25;
  var d = a * 0.125;
  let m = vec4<f32>(0.9999);
  let k = vec4<f32>(1e-4);
  for (var it = 0u; it < FMA_ITERS; it++) {
    a = fma(a, m, k);
    b = fma(b, m, k);
    c = fma(c, m, k);
    d = fma(d, m, k);
  }
  let r = a + b + c + d;
  fma_out[i] = r.x + r.y + r.z + r.w;
}
