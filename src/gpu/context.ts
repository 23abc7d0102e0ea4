/**
 * GpuContext: the one owner of the GPUDevice.
 *
 * Owns: the adapter and device, the limits and features it was created with, error routing (device loss and
 * uncaptured errors go to one place), the pipeline cache, the command encoder that ops record into, uniform
 * buffers, and per-kernel GPU timings. Nothing else in the engine holds a device: ops, weights and the model
 * receive this context.
 *
 * Recording model: ops call `dispatch()`, which appends a compute pass to the current encoder; `submit()`
 * sends everything recorded so far in one queue submission. `read()` submits first, then copies back.
 */
import {
  DeviceLostError,
  FeatureUnavailableError,
  GPUOutOfMemoryError,
  GPUValidationError,
  LimitExceededError,
  WebGPUUnavailableError,
} from '../errors.ts';
import { type AdapterChoice, acquireGPU } from './acquire.ts';
import { type PipelineKey, pipelineKeyString, preprocessShader } from './shaders.ts';

export type ActDType = 'f16' | 'f32';

export interface GpuContextOptions {
  /** Node only: which Vulkan adapter to pick. */
  adapter?: AdapterChoice;
  /** Use f32 activations even when `shader-f16` exists. */
  forceF32?: boolean;
  /** Record per-kernel GPU times with timestamp queries (when the adapter has them). */
  profile?: boolean;
  powerPreference?: GPUPowerPreference;
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True on CPU implementations (lavapipe/llvmpipe, SwiftShader). */
  software: boolean;
  features: string[];
  limits: Record<string, number>;
}

export interface Binding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

export interface DispatchSpec {
  label: string;
  key: PipelineKey;
  /** Storage bindings in @binding order 0..n-1 (group 0). Uniforms, if any, go at the next binding. */
  bindings: (GPUBuffer | Binding)[];
  uniforms?: ArrayBufferView;
  workgroups: readonly [number, number?, number?];
}

const WANTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];
const MAX_QUERIES = 4096;
const ARENA_BYTES = 64 * 1024;

function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  return /llvmpipe|lavapipe|swiftshader|software|\bcpu\b/.test(text);
}

export class GpuContext {
  readonly act: ActDType;
  readonly hasF16: boolean;
  readonly hasSubgroups: boolean;
  readonly hasTimestamps: boolean;
  readonly limits: GPUSupportedLimits;
  /** Set once the device is lost; every later call throws it. */
  lostError: DeviceLostError | null = null;
  /** Errors WebGPU raised outside any error scope, oldest first. */
  readonly uncapturedErrors: string[] = [];

  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly lostListeners = new Set<(e: DeviceLostError) => void>();
  private encoder: GPUCommandEncoder | null = null;
  /** Uniform arenas: recorded dispatches take 256-byte-aligned slices; an arena is reused only after the
   * submission that used it has completed. (Arenas are recycled, never destroyed in a completion callback:
   * Dawn's Node binding can crash when buffers are destroyed from there.) */
  private arena: { buffer: GPUBuffer; used: number } | null = null;
  private arenasInFlight: GPUBuffer[] = [];
  private freeArenas: GPUBuffer[] = [];
  private destroyedOnPurpose = false;
  private readonly profile: boolean;
  private querySet: GPUQuerySet | null = null;
  private queryLabels: string[] = [];
  /** Accumulated GPU time per kernel label (ms), filled when profiling. */
  readonly timings = new Map<string, { ms: number; count: number }>();

  private constructor(
    /** Held so the GPU instance outlives the device: Dawn's Node binding frees its event loop with it. */
    readonly gpu: GPU,
    readonly device: GPUDevice,
    readonly adapterSummary: AdapterSummary,
    options: GpuContextOptions,
  ) {
    this.limits = device.limits;
    this.hasF16 = device.features.has('shader-f16');
    this.hasSubgroups = device.features.has('subgroups');
    this.hasTimestamps = device.features.has('timestamp-query');
    this.act = this.hasF16 && !options.forceF32 ? 'f16' : 'f32';
    this.profile = !!options.profile && this.hasTimestamps;
    device.lost.then((info) => {
      if (this.destroyedOnPurpose) return;
      this.lostError = new DeviceLostError(`GPU device lost (${info.reason}): ${info.message}`, {
        reason: info.reason,
      });
      for (const l of this.lostListeners) l(this.lostError);
    });
    device.addEventListener('uncapturederror', (ev) => {
      const msg = (ev as GPUUncapturedErrorEvent).error.message;
      this.uncapturedErrors.push(msg);
      if (this.uncapturedErrors.length > 100) this.uncapturedErrors.shift();
    });
  }

  static async create(options: GpuContextOptions = {}): Promise<GpuContext> {
    const gpu = await acquireGPU(options.adapter);
    let adapter: GPUAdapter | null = null;
    try {
      adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    } catch (e) {
      throw new WebGPUUnavailableError(`requestAdapter() failed: ${(e as Error).message}`);
    }
    if (!adapter) throw new WebGPUUnavailableError('No WebGPU adapter is available (requestAdapter() returned null).');
    const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
    // Ask for every limit the adapter offers: the defaults (128 MiB bindings, 256 MiB buffers) are far too small.
    const requiredLimits: Record<string, number> = {};
    const adapterLimits = adapter.limits as unknown as Record<string, number>;
    for (const name of LIMIT_NAMES) {
      const v = adapterLimits[name];
      if (typeof v === 'number') requiredLimits[name] = v;
    }
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits, label: 'trol-device' });
    } catch (e) {
      throw new WebGPUUnavailableError(`requestDevice() failed: ${(e as Error).message}`);
    }
    const info = adapter.info;
    const limits: Record<string, number> = {};
    const deviceLimits = device.limits as unknown as Record<string, number>;
    for (const name of LIMIT_NAMES) limits[name] = deviceLimits[name];
    const summary: AdapterSummary = {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      software: isSoftwareAdapter(info),
      features: [...device.features].sort(),
      limits,
    };
    return new GpuContext(gpu, device, summary, options);
  }

  /** Register a listener for device loss (the worker forwards it to the page). Returns an unsubscribe. */
  onLost(listener: (e: DeviceLostError) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** Throws the DeviceLostError if the device is gone. Called before any GPU work. */
  check(): void {
    if (this.lostError) throw this.lostError;
  }

  requireFeature(feature: 'shader-f16' | 'subgroups' | 'timestamp-query', what: string): void {
    if (!this.device.features.has(feature)) {
      throw new FeatureUnavailableError(`${what} needs the WebGPU feature '${feature}', which this device lacks.`, {
        feature,
      });
    }
  }

  get maxBinding(): number {
    return this.limits.maxStorageBufferBindingSize;
  }

  // ---------------------------------------------------------------- buffers

  /** Allocate a labelled buffer; checks the size against the device limits first and traps out-of-memory. */
  async allocate(label: string, size: number, usage: GPUBufferUsageFlags): Promise<GPUBuffer> {
    this.check();
    const padded = Math.max(4, Math.ceil(size / 4) * 4);
    if (padded > this.limits.maxBufferSize) {
      throw new LimitExceededError(
        `Buffer '${label}' needs ${padded} bytes; this device allows at most ${this.limits.maxBufferSize} per buffer.`,
        { label, size: padded, maxBufferSize: this.limits.maxBufferSize },
      );
    }
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    const buffer = this.device.createBuffer({ label, size: padded, usage });
    const validation = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    if (oom) {
      buffer.destroy();
      throw new GPUOutOfMemoryError(`Out of GPU memory allocating '${label}' (${padded} bytes): ${oom.message}`, {
        label,
        size: padded,
      });
    }
    if (validation) {
      buffer.destroy();
      throw new GPUValidationError(`Allocating '${label}' failed: ${validation.message}`, { label });
    }
    return buffer;
  }

  /** A storage buffer (copyable both ways) holding `data`. */
  async upload(label: string, data: ArrayBufferView, extraUsage: GPUBufferUsageFlags = 0): Promise<GPUBuffer> {
    const buffer = await this.allocate(
      label,
      data.byteLength,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage,
    );
    this.write(buffer, data);
    return buffer;
  }

  /** Write `data` at `offset`; pads a length that is not a multiple of 4 (WebGPU's rule). */
  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    this.check();
    const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 === 0) {
      this.device.queue.writeBuffer(buffer, offset, bytes);
    } else {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      this.device.queue.writeBuffer(buffer, offset, padded);
    }
  }

  /** Submit pending work, then copy `size` bytes at `offset` of `buffer` back to the CPU. */
  async read(buffer: GPUBuffer, offset = 0, size = buffer.size - offset): Promise<ArrayBuffer> {
    this.check();
    const alignedSize = Math.ceil(size / 4) * 4;
    const staging = this.device.createBuffer({
      label: `readback(${buffer.label})`,
      size: alignedSize,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.takeEncoder();
    this.device.pushErrorScope('validation');
    enc.copyBufferToBuffer(buffer, offset, staging, 0, alignedSize);
    this.submitEncoder(enc);
    const invalid = await this.device.popErrorScope();
    if (invalid) {
      staging.destroy();
      throw new GPUValidationError(`Reading back '${buffer.label}' failed: ${invalid.message}`);
    }
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.check();
      throw new GPUValidationError(`Reading back '${buffer.label}' failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange().slice(0, size);
    staging.unmap();
    staging.destroy();
    return out;
  }

  // ---------------------------------------------------------------- pipelines

  /** The compute pipeline for `key`, compiled once per device inside a validation error scope. */
  pipeline(key: PipelineKey): Promise<GPUComputePipeline> {
    this.check();
    if (key.act === 'f16' && !this.hasF16) {
      throw new FeatureUnavailableError(`Kernel '${key.shader}:${key.entry}' in f16 needs 'shader-f16'.`, {
        feature: 'shader-f16',
      });
    }
    if (key.subgroups && !this.hasSubgroups) {
      throw new FeatureUnavailableError(`Kernel '${key.shader}:${key.entry}' needs 'subgroups'.`, {
        feature: 'subgroups',
      });
    }
    const id = pipelineKeyString(key);
    let p = this.pipelines.get(id);
    if (!p) {
      p = this.compile(key, id);
      this.pipelines.set(id, p);
      p.catch(() => this.pipelines.delete(id));
    }
    return p;
  }

  private async compile(key: PipelineKey, id: string): Promise<GPUComputePipeline> {
    const code = preprocessShader(key);
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ label: `${key.shader}.wgsl[${key.act}]`, code });
    let pipeline: GPUComputePipeline | null = null;
    let asyncError: unknown = null;
    try {
      pipeline = await this.device.createComputePipelineAsync({
        label: id,
        layout: 'auto',
        compute: { module, entryPoint: key.entry, constants: key.constants ?? {} },
      });
    } catch (e) {
      asyncError = e;
    }
    const err = await this.device.popErrorScope();
    if (err || asyncError || !pipeline) {
      const info = await module.getCompilationInfo?.().catch(() => null);
      const messages = info?.messages
        .filter((m) => m.type === 'error')
        .map((m) => `${m.lineNum}:${m.linePos} ${m.message}`)
        .join('\n');
      throw new GPUValidationError(
        `Pipeline ${id} failed: ${err?.message ?? (asyncError as Error)?.message ?? 'unknown'}${messages ? `\n${messages}` : ''}`,
        { key: id },
      );
    }
    return pipeline;
  }

  // ---------------------------------------------------------------- recording

  private takeEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'trol-encoder' });
    const enc = this.encoder;
    this.encoder = null;
    return enc;
  }

  private submitEncoder(enc: GPUCommandEncoder): void {
    let resolveBuffer: GPUBuffer | null = null;
    let labels: string[] = [];
    if (this.querySet && this.queryLabels.length > 0) {
      labels = this.queryLabels;
      const n = labels.length * 2;
      resolveBuffer = this.device.createBuffer({
        label: 'timestamp-resolve',
        size: n * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      enc.resolveQuerySet(this.querySet, 0, n, resolveBuffer, 0);
      this.queryLabels = [];
    }
    let timingRead: GPUBuffer | null = null;
    if (resolveBuffer) {
      timingRead = this.device.createBuffer({
        label: 'timestamp-read',
        size: resolveBuffer.size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      enc.copyBufferToBuffer(resolveBuffer, 0, timingRead, 0, resolveBuffer.size);
    }
    this.device.queue.submit([enc.finish()]);
    if (this.arena) {
      this.arenasInFlight.push(this.arena.buffer);
      this.arena = null;
    }
    const arenas = this.arenasInFlight;
    this.arenasInFlight = [];
    if (arenas.length > 0 || timingRead) {
      this.device.queue
        .onSubmittedWorkDone()
        .then(async () => {
          this.freeArenas.push(...arenas);
          if (timingRead && resolveBuffer) {
            await timingRead.mapAsync(GPUMapMode.READ);
            const t = new BigInt64Array(timingRead.getMappedRange());
            labels.forEach((label, i) => {
              const ms = Number(t[2 * i + 1] - t[2 * i]) / 1e6;
              const entry = this.timings.get(label) ?? { ms: 0, count: 0 };
              entry.ms += ms;
              entry.count += 1;
              this.timings.set(label, entry);
            });
            timingRead.unmap();
          }
        })
        .catch(() => {
          // The device was destroyed or lost before the timings came back: nothing to record.
        });
    }
  }

  /** Send everything recorded so far to the GPU. */
  submit(): void {
    this.check();
    if (this.encoder) this.submitEncoder(this.takeEncoder());
  }

  /** Submit and wait until the GPU has finished all of it. */
  async finish(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  /** Record one compute dispatch. The pipeline must already be compiled (`await ctx.pipeline(key)`). */
  async dispatch(spec: DispatchSpec): Promise<void> {
    const pipeline = await this.pipeline(spec.key);
    this.check();
    const [x, y = 1, z = 1] = spec.workgroups;
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxDim || y > maxDim || z > maxDim || x < 1 || y < 1 || z < 1) {
      throw new LimitExceededError(`Dispatch '${spec.label}' of ${x}×${y}×${z} workgroups exceeds ${maxDim}/dim.`);
    }
    const entries: GPUBindGroupEntry[] = spec.bindings.map((b, i) =>
      // A GPUBuffer has no `buffer` property; a Binding does.
      'buffer' in b
        ? { binding: i, resource: { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } }
        : { binding: i, resource: { buffer: b } },
    );
    if (spec.uniforms) {
      entries.push({ binding: entries.length, resource: this.uniformSlice(spec.uniforms) });
    }
    const bindGroup = this.device.createBindGroup({
      label: `${spec.label}.bind`,
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'trol-encoder' });
    const passDesc: GPUComputePassDescriptor = { label: spec.label };
    if (this.profile) {
      if (!this.querySet) {
        this.querySet = this.device.createQuerySet({ label: 'timings', type: 'timestamp', count: MAX_QUERIES });
      }
      if (this.queryLabels.length * 2 + 2 > MAX_QUERIES) this.submit();
      const i = this.queryLabels.length;
      this.queryLabels.push(spec.label);
      passDesc.timestampWrites = {
        querySet: this.querySet,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      };
    }
    const pass = this.encoder.beginComputePass(passDesc);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
  }

  private uniformSlice(data: ArrayBufferView): GPUBufferBinding {
    const align = Math.max(16, this.limits.minUniformBufferOffsetAlignment);
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    if (size > ARENA_BYTES) throw new LimitExceededError(`Uniform block of ${size} bytes is too large.`);
    if (this.arena && this.arena.used + size > ARENA_BYTES) {
      this.arenasInFlight.push(this.arena.buffer);
      this.arena = null;
    }
    if (!this.arena) {
      const buffer =
        this.freeArenas.pop() ??
        this.device.createBuffer({
          label: 'uniform-arena',
          size: ARENA_BYTES,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        });
      this.arena = { buffer, used: 0 };
    }
    const offset = this.arena.used;
    this.arena.used = Math.ceil((offset + size) / align) * align;
    const bytes = new Uint8Array(size);
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.device.queue.writeBuffer(this.arena.buffer, offset, bytes);
    return { buffer: this.arena.buffer, offset, size };
  }

  /** Copy within the GPU (recorded into the current encoder). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.check();
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'trol-encoder' });
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  /** Split `count` workgroups into a 2-D grid within the per-dimension limit. Kernels rebuild the linear id
   * as `wg.x + wg.y * num_workgroups.x` and skip ids ≥ count. */
  grid(count: number): [number, number] {
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension;
    if (count <= maxDim) return [Math.max(1, count), 1];
    const y = Math.ceil(count / maxDim);
    return [Math.ceil(count / y), y];
  }

  resetTimings(): void {
    this.timings.clear();
  }

  /** Destroy the device on purpose (does not count as a loss). */
  destroy(): void {
    this.destroyedOnPurpose = true;
    this.encoder = null;
    this.querySet?.destroy();
    this.device.destroy();
  }
}

/** Numeric limits we request at the adapter's maximum. */
const LIMIT_NAMES = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxUniformBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxBindGroups',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;
