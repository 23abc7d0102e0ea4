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
