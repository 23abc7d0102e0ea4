// elementwise.wgsl — pointwise activations and binary ops on activation tensors (any shape, n elements).
//
// Thread mapping: one invocation per element. The grid is 2-D (GpuContext.grid): linear workgroup id
// wid = wg.x + wg.y * nwg.x, element i = wid * WG + li; invocations with i ≥ n do nothing.
//
// The operation is chosen by the `OP` override (pipeline constant), so each op is its own pipeline:
//   unary  OP: 0 = gelu (exact erf), 1 = quick_gelu x·σ(1.702x), 2 = silu x·σ(x)
//   binary OP: 0 = add a+b,          1 = swiglu silu(a)·b
// In-place variants bind the written tensor once as read_write (WebGPU rejects a buffer bound both read-only
// and writable in one dispatch):
//   unary_inplace:   io = f(io)
//   binary_inplace:  io = g(io, other), or g(other, io) when SWAP (so `out` may alias either operand)
//   binary_self:     io = g(io, io)      (a, b and out all one tensor)
// Several module-scope variables share a binding number; no entry point uses more than one of them.

override WG: u32 = 256;
override OP: u32 = 0u;
override SWAP: bool = false;

struct Params { n: u32, }

@group(0) @binding(0) var<storage, read> in0: array<act>;        // [n]  x (unary) or a (binary)
@group(0) @binding(0) var<storage, read_write> io: array<act>;   // [n]  the in-place tensor
@group(0) @binding(1) var<storage, read> in1: array<act>;        // [n]  b (binary) or the other operand (in-place)
@group(0) @binding(1) var<storage, read_write> out1: array<act>; // [n]  y (unary)
@group(0) @binding(2) var<storage, read_write> out2: array<act>; // [n]  out (binary)
@group(0) @binding(1) var<uniform> params1: Params;              // unary_inplace, binary_self
@group(0) @binding(2) var<uniform> params2: Params;              // unary, binary_inplace
@group(0) @binding(3) var<uniform> params3: Params;              // binary

// ---------------------------------------------------------------- math (f32)

// σ(z) = 1/(1+e^{−z}); the clamp keeps exp finite on drivers whose exp overflows to NaN.
fn sigmoid(z: f32) -> f32 {
  return 1.0 / (1.0 + exp(-clamp(z, -80.0, 80.0)));
}

// erfc(z) for z ≥ 0: Chebyshev fit from Numerical Recipes (erfcc), fractional error < 1.2e-7 for every z ≥ 0,
// so both erf(z) = 1 − erfc(z) and the small tail erfc(z) keep full f32 precision.
fn erfc_pos(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
          t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * exp(-z * z + p);
}

// GELU(x) = 0.5·x·(1 + erf(x/√2)). For x < 0 this is 0.5·x·erfc(|x|/√2), computed directly (no cancellation).
fn gelu(x: f32) -> f32 {
  let c = erfc_pos(abs(x) * 0.70710678118654752);
  if (x >= 0.0) {
    return 0.5 * x * (2.0 - c);
  }
  return 0.5 * x * c;
}

fn unary_op(x: f32) -> f32 {
  if (OP == 0u) {
    return gelu(x);
  } else if (OP == 1u) {
    return x * sigmoid(1.702 * x);
  }
  return x * sigmoid(x);
}

fn binary_op(a: f32, b: f32) -> f32 {
  if (OP == 0u) {
    return a + b;
  }
  return a * sigmoid(a) * b;
}

fn element(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
  return (wg.x + wg.y * nwg.x) * WG + li;
}

// ---------------------------------------------------------------- entry points

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
  let i = element(wg, nwg, li);
  if (i < params2.n) {
    out1[i] = act(unary_op(f32(in0[i])));
  }
}

@compute @workgroup_size(WG)
fn unary_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
  let i = element(wg, nwg, li);
  if (i < params1.n) {
    io[i] = act(unary_op(f32(io[i])));
  }
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
  let i = element(wg, nwg, li);
  if (i < params3.n) {
    out2[i] = act(binary_op(f32(in0[i]), f32(in1[i])));
  }
}

@compute @workgroup_size(WG)
fn binary_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
  let i = element(wg, nwg, li);
  if (i < params2.n) {
    let mine = f32(io[i]);
    let other = f32(in1[i]);
    if (SWAP) {
      io[i] = act(binary_op(other, mine));
    } else {
      io[i] = act(binary_op(mine, other));
    }
  }
}

@compute @workgroup_size(WG)
fn binary_self(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
  let i = element(wg, nwg, li);
  if (i < params1.n) {
    let v = f32(io[i]);
    io[i] = act(binary_op(v, v));
  }
}
