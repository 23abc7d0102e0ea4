/**
 * Typed errors across the Worker boundary.
 *
 * Comlink's built-in 'throw' handler flattens every error to a plain `Error` with a name string, so the page
 * could only branch on text (the failure users report from other engines). This module replaces that handler
 * with one that keeps the type: a `TrolError` subclass thrown in the worker is sent as
 * `{ name, message, kind, details, stack, cause }` and rebuilt on the other side as the same class from
 * `ERROR_CLASSES`, so `e instanceof ShapeError` holds on the page. Anything else (a TypeError, a DOMException,
 * a thrown string) arrives as a plain `TrolError` whose `details.originalName` says what it was.
 *
 * Both sides must call `installErrorTransfer()` (importing this module does it), before the first call.
 * The class name is found from the error's constructor, not from `error.name`, so it survives minification.
 */
import * as Comlink from 'comlink';
import { ERROR_CLASSES, type ErrorKind, type ErrorName, TrolError } from '../errors.ts';

/** What crosses the boundary for one error (structured-clone safe). */
export interface SerializedError {
  /** The `ERROR_CLASSES` key, or the original name for errors that are not ours. */
  name: string;
  /** True when `name` is a key of `ERROR_CLASSES` (the class can be rebuilt exactly). */
  known: boolean;
  message: string;
  kind: ErrorKind;
  details: Record<string, unknown>;
  stack?: string;
  cause?: SerializedError;
}

/** The wire format of a thrown value: comlink's own shape, with our error record in place of its flat one. */
interface ThrownWire {
  isError: boolean;
  value: SerializedError | unknown;
  trol?: true;
}

const MAX_CAUSE_DEPTH = 4;

/** The ERROR_CLASSES key of `e`'s exact class, or null (walks the class itself, not `e.name`). */
function classNameOf(e: TrolError): ErrorName | null {
  const ctor = Object.getPrototypeOf(e)?.constructor;
  for (const [name, cls] of Object.entries(ERROR_CLASSES)) {
    if (cls === ctor) return name as ErrorName;
  }
  return null;
}

/** Keep `details` structured-clone safe: clone it, or fall back to a JSON round trip, or drop it. */
function cloneSafe(details: Record<string, unknown>): Record<string, unknown> {
  try {
    return structuredClone(details);
  } catch {
    try {
      return JSON.parse(JSON.stringify(details, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
    } catch {
      return { unserializableDetails: true };
    }
  }
}

/** Turn any thrown value into the record that crosses the boundary. */
export function serializeError(thrown: unknown, depth = 0): SerializedError {
  if (thrown instanceof TrolError) {
    const exact = classNameOf(thrown);
    const out: SerializedError = {
      // A subclass missing from ERROR_CLASSES keeps its name and kind but is rebuilt as a TrolError.
      name: exact ?? thrown.name,
      known: exact !== null,
      message: thrown.message,
      kind: thrown.kind,
      details: cloneSafe(thrown.details),
      stack: thrown.stack,
    };
    if (thrown.cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serializeError(thrown.cause, depth + 1);
    return out;
  }
  if (thrown instanceof Error || (typeof thrown === 'object' && thrown !== null && 'message' in thrown)) {
    const e = thrown as Error;
    const name = typeof e.name === 'string' && e.name ? e.name : 'Error';
    const out: SerializedError = {
      name,
      known: false,
      message: String(e.message),
      kind: 'runtime',
      details: { originalName: name },
      stack: typeof e.stack === 'string' ? e.stack : undefined,
    };
    if (e.cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serializeError(e.cause, depth + 1);
    return out;
  }
  return {
    name: typeof thrown,
    known: false,
    message: String(thrown),
    kind: 'runtime',
    details: { originalName: typeof thrown },
  };
}

/** Rebuild the error: the same `TrolError` subclass when `known`, else a `TrolError` carrying the facts. */
export function deserializeError(s: SerializedError): TrolError {
  let err: TrolError;
  if (s.known && Object.hasOwn(ERROR_CLASSES, s.name)) {
    const Cls = ERROR_CLASSES[s.name as ErrorName];
    err = new Cls(s.message, s.details);
  } else {
    const details = Object.hasOwn(s.details, 'originalName') ? s.details : { ...s.details, originalName: s.name };
    err = new TrolError(s.message, details);
  }
  // The class name, whatever a minifier did to `constructor.name`.
  Object.defineProperty(err, 'name', { value: s.known ? s.name : 'TrolError', configurable: true, writable: true });
  if (err.kind !== s.kind) Object.defineProperty(err, 'kind', { value: s.kind, configurable: true });
  if (s.stack !== undefined) {
    Object.defineProperty(err, 'stack', {
      value: `${s.stack}\n    (rethrown across the worker boundary)`,
      configurable: true,
      writable: true,
    });
  }
  if (s.cause) Object.defineProperty(err, 'cause', { value: deserializeError(s.cause), configurable: true });
  return err;
}

function isSerializedError(v: unknown): v is SerializedError {
  return typeof v === 'object' && v !== null && 'message' in v && 'name' in v && 'kind' in v && 'details' in v;
}

const INSTALLED = Symbol.for('trol.errorTransfer');

type ThrowHandler = Comlink.TransferHandler<{ value: unknown }, ThrownWire>;

/**
 * Replace comlink's 'throw' transfer handler (idempotent). Comlink's own `canHandle` is kept: it recognises
 * the internal wrapper around a thrown value by a private symbol we cannot name.
 */
export function installErrorTransfer(): void {
  const current = Comlink.transferHandlers.get('throw') as (ThrowHandler & { [INSTALLED]?: true }) | undefined;
  if (!current) throw new Error('comlink has no built-in "throw" transfer handler to replace');
  if (current[INSTALLED]) return;
  const handler: ThrowHandler & { [INSTALLED]: true } = {
    [INSTALLED]: true,
    canHandle: current.canHandle,
    serialize({ value }) {
      // Every thrown value, Error or not, becomes a typed record: the page always receives a TrolError.
      return [{ isError: true, trol: true, value: serializeError(value) }, []];
    },
    deserialize(wire) {
      if (wire.trol && isSerializedError(wire.value)) throw deserializeError(wire.value);
      // A peer that still uses comlink's default handler (e.g. a third-party worker).
      if (wire.isError && typeof wire.value === 'object' && wire.value !== null) {
        const v = wire.value as { name?: string; message?: string; stack?: string };
        throw deserializeError(serializeError(Object.assign(new Error(v.message ?? ''), v)));
      }
      throw deserializeError(serializeError(wire.value));
    },
  };
  Comlink.transferHandlers.set('throw', handler as unknown as Comlink.TransferHandler<unknown, unknown>);
}

installErrorTransfer();
