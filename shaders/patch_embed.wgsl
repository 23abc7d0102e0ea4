// patch_embed.wgsl — CLIP patch embedding as a GEMM: im2col, then (after the linear) class token + positions.
//
// im2col: pixels [C, S, S] (f32) → patches [P, C·p·p] (act), P = G², G = S/p. Patch row r = py·G + px
// (top→bottom, left→right); column c·p·p + ky·p + kx holds pixels[c, py·p + ky, px·p + kx], the order of a
// PyTorch conv weight [D, C, p, p] flattened to [D, C·p·p], so patches · Wᵀ is the convolution.
//
// vision_embed: out [P+1, D] (act): out[0] = cls + pos[0]; out[1 + i] = patch_emb[i] + pos[1 + i].
//
// Thread mapping (both): one invocation per output element e (2-D grid, linear workgroup id
// wg.x + wg.y * nwg.x, e = wid·WG + li); invocations with e ≥ the element count do nothing.
// Several module-scope variables share a binding number; no entry point uses more than one of them.

override WG: u32 = 256;

struct Im2colParams { c: u32, s: u32, p: u32, g: u32, }
struct EmbedParams { p: u32, d: u32, }

@group(0) @binding(0) var<storage, read> pixels: array<f32>;                // [C, S, S]        (im2col)
@group(0) @binding(1) var<storage, read_write> patches: array<act>;         // [P, C·p·p]       (im2col)
@group(0) @binding(2) var<uniform> im2col_params: Im2colParams;             //                  (im2col)
@group(0) @binding(0) var<storage, read> patch_emb: array<act>;             // [P, D]           (vision_embed)
@group(0) @binding(1) var<storage, read> cls: array<f32>;                   // [D]              (vision_embed)
@group(0) @binding(2) var<storage, read> pos: array<f32>;                   // [P+1, D]         (vision_embed)
@group(0) @binding(3) var<storage, read_write> out: array<act>;             // [P+1, D]         (vision_embed)
@group(0) @binding(4) var<uniform> embed_params: EmbedParams;               //                  (vision_embed)

@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
  let q = im2col_params;
  let cols = q.c * q.p * q.p;
  let e = (wg.x + wg.y * nwg.x) * WG + li;
  if (e >= q.g * q.g * cols) {
    return;
  }
  let r = e / cols;
  let col = e - r * cols;
  let py = r / q.g;
  let px = r - py * q.g;
  let c = col / (q.p * q.p);
  let k = col - c * q.p * q.p;
  let ky = k / q.p;
  let kx = k - ky * q.p;
  patches[e] = act(pixels[(c * q.s + py * q.p + ky) * q.s + px * q.p + kx]);
}

@compute @workgroup_size(WG)
fn vision_embed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
  let q = embed_params;
  let e = (wg.x + wg.y * nwg.x) * WG + li;
  if (e >= (q.p + 1u) * q.d) {
    return;
  }
  var v: f32;
  if (e < q.d) {
    v = cls[e];
  } else {
    v = f32(patch_emb[e - q.d]);
  }
  out[e] = act(v + pos[e]);
}
