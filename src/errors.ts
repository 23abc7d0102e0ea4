/**
 * Every error the engine throws on purpose is a `TrolError` subclass with a stable `name`, so callers (and the
 * worker boundary, see `src/worker/error-transfer.ts`) can branch on the type rather than on message text.
 * `kind` says whose fault it is: `input` (bad weights, config, image, prompt, arguments: CLI exit code 2),
 * `runtime` (device lost, out of memory, unsupported adapter: exit code 1) or `cancelled`.
 */
export type ErrorKind = 'input' | 'runtime' | 'cancelled';

export class TrolError extends Error {
  readonly kind: ErrorKind = 'runtime';
  /** Extra machine-readable facts (file, tensor name, limits); must be structured-clone safe. */
  readonly details: Record<string, unknown>;
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.details = details;
  }
}

// ---- GPU / runtime ----
/** No WebGPU implementation, or no adapter could be had. */
export class WebGPUUnavailableError extends TrolError {}
/** The GPUDevice was lost (driver reset, tab backgrounded, destroyed elsewhere). The engine must be re-created. */
export class DeviceLostError extends TrolError {}
/** A kernel needs a feature (e.g. `shader-f16`) the device does not have. */
export class FeatureUnavailableError extends TrolError {}
/** A buffer or dispatch beyond the device's limits. */
export class LimitExceededError extends TrolError {}
/** A GPU allocation failed (out-of-memory error scope). */
export class GPUOutOfMemoryError extends TrolError {}
/** A WebGPU validation or internal error: a bug in the engine, not the caller's input. */
export class GPUValidationError extends TrolError {}

// ---- caller input ----
export class InputError extends TrolError {
  override readonly kind: ErrorKind = 'input';
}
/** Tensor shapes or dtypes that do not fit an op. */
export class ShapeError extends InputError {}
/** A wrong or unsupported argument (flag value, option). */
export class ArgumentError extends InputError {}
/** config.json missing a key, or with impossible values. */
export class ConfigError extends InputError {}
/** A weight file that is truncated, inconsistent, or does not match the config. */
export class WeightsFormatError extends InputError {}
/** A pickle that asks for anything beyond a plain state_dict of tensors. Nothing in it is ever executed. */
export class UnsafePickleError extends InputError {}
/** A corrupt or unsupported tokenizer.model. */
export class TokenizerError extends InputError {}
/** An unreadable, empty or unsupported image. */
export class ImageDecodeError extends InputError {}
/** A prompt (plus requested new tokens) longer than the context the engine was created with. */
export class ContextOverflowError extends InputError {}
/** Storage (Cache API / OPFS) is full. */
export class StorageQuotaError extends TrolError {}

// ---- control flow ----
/** A generation stopped by its AbortSignal. The engine stays ready for the next request. */
export class GenerationCancelledError extends TrolError {
  override readonly kind: ErrorKind = 'cancelled';
}

/** Every concrete error class by name, so the worker boundary can rebuild the right type. */
export const ERROR_CLASSES = {
  TrolError,
  WebGPUUnavailableError,
  DeviceLostError,
  FeatureUnavailableError,
  LimitExceededError,
  GPUOutOfMemoryError,
  GPUValidationError,
  InputError,
  ShapeError,
  ArgumentError,
  ConfigError,
  WeightsFormatError,
  UnsafePickleError,
  TokenizerError,
  ImageDecodeError,
  ContextOverflowError,
  StorageQuotaError,
  GenerationCancelledError,
} as const;
export type ErrorName = keyof typeof ERROR_CLASSES;
