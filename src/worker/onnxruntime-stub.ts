/**
 * Stands in for `onnxruntime-web` in the browser bundle (see the alias in vite.config.ts).
 *
 * The engine uses `@huggingface/transformers` for its tokenizer only (src/tokenizer/convert.ts); it never
 * creates an ONNX session. Without this stub the bundle would carry ONNX Runtime Web: ~600 kB of script and a
 * 26 MB `.wasm` that the service worker would precache on the first visit. transformers.js reads
 * `InferenceSession`, `Tensor` and `env` when it loads; with `env` undefined it skips its ONNX set-up, and any
 * attempt to run an ONNX model fails loudly here.
 */
function unavailable(): never {
  throw new Error('ONNX Runtime is not bundled in trol-webgpu (transformers.js is used for tokenization only)');
}

export const InferenceSession = {
  create: unavailable,
};

export class Tensor {
  constructor() {
    unavailable();
  }
}

export const env = undefined;

export default { InferenceSession, Tensor, env };
