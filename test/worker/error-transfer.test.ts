import * as Comlink from 'comlink';
import { afterAll, describe, expect, it } from 'vitest';
import { ERROR_CLASSES, type ErrorName, InputError, ShapeError, TrolError } from '../../src/errors.ts';
import {
  deserializeError,
  installErrorTransfer,
  type SerializedError,
  serializeError,
} from '../../src/worker/error-transfer.ts';

/** What actually happens on the wire: serialize, structured-clone (postMessage), deserialize. */
function roundTrip(thrown: unknown): TrolError {
  return deserializeError(structuredClone(serializeError(thrown)));
}

describe('error transfer: serialize / deserialize', () => {
  for (const name of Object.keys(ERROR_CLASSES) as ErrorName[]) {
    it(`rebuilds ${name} as the same class with its facts`, () => {
      const Cls = ERROR_CLASSES[name];
      const original = new Cls(`${name} happened`, { tensor: 'x', shape: [2, 3], limit: 128 });
      const back = roundTrip(original);
      expect(back).toBeInstanceOf(Cls);
      expect(back).toBeInstanceOf(TrolError);
      expect(back).toBeInstanceOf(Error);
      expect(back.constructor).toBe(Cls);
      expect(back.name).toBe(name);
      expect(back.message).toBe(`${name} happened`);
      expect(back.kind).toBe(original.kind);
      expect(back.details).toEqual({ tensor: 'x', shape: [2, 3], limit: 128 });
      expect(back.stack).toContain(original.stack!.split('\n')[1].trim());
    });
  }

  it('keeps the class hierarchy (a ShapeError is an InputError of kind input)', () => {
    const back = roundTrip(new ShapeError('bad'));
    expect(back).toBeInstanceOf(InputError);
    expect(back.kind).toBe('input');
  });

  it('finds the class from the constructor, not from a (minified) name', () => {
    const e = new ShapeError('minified');
    Object.defineProperty(e, 'name', { value: 'e' });
    const s = serializeError(e);
    expect(s).toMatchObject({ name: 'ShapeError', known: true });
    const back = roundTrip(e);
    expect(back).toBeInstanceOf(ShapeError);
    expect(back.name).toBe('ShapeError');
  });

  it('turns a foreign Error into a TrolError that names the original', () => {
    const back = roundTrip(new TypeError('x is not a function'));
    expect(back.constructor).toBe(TrolError);
    expect(back.name).toBe('TrolError');
    expect(back.kind).toBe('runtime');
    expect(back.message).toBe('x is not a function');
    expect(back.details.originalName).toBe('TypeError');
    expect(back.stack).toContain('TypeError');
  });

  it('turns an Error-like object (GPUError, DOMException shape) into a TrolError', () => {
    const back = roundTrip({ name: 'OperationError', message: 'mapAsync failed' });
    expect(back.constructor).toBe(TrolError);
    expect(back.message).toBe('mapAsync failed');
    expect(back.details.originalName).toBe('OperationError');
  });

  it('turns a thrown non-error value into a TrolError', () => {
    const back = roundTrip('plain string');
    expect(back.constructor).toBe(TrolError);
    expect(back.message).toBe('plain string');
    expect(back.details.originalName).toBe('string');
  });

  it('keeps name and kind of a TrolError subclass missing from ERROR_CLASSES', () => {
    class NotRegisteredError extends InputError {}
    const back = roundTrip(new NotRegisteredError('odd', { a: 1 }));
    expect(back.constructor).toBe(TrolError);
    expect(back.kind).toBe('input');
    expect(back.details).toEqual({ a: 1, originalName: 'NotRegisteredError' });
  });

  it('survives details that cannot be structured-cloned', () => {
    const e = new ShapeError('with a function', { fn: () => 1, n: 3 } as Record<string, unknown>);
    const s = serializeError(e);
    expect(() => structuredClone(s)).not.toThrow();
    expect(roundTrip(e).details).toEqual({ n: 3 });
  });

  it('carries the cause chain, typed', () => {
    const inner = new ShapeError('inner');
    const outer = new TrolError('outer');
    Object.defineProperty(outer, 'cause', { value: inner });
    const back = roundTrip(outer);
    expect(back.cause).toBeInstanceOf(ShapeError);
    expect((back.cause as Error).message).toBe('inner');
  });

  it('serialized records are plain data', () => {
    const s: SerializedError = structuredClone(serializeError(new ShapeError('m', { k: [1] })));
    expect(s).toMatchObject({ name: 'ShapeError', known: true, message: 'm', kind: 'input', details: { k: [1] } });
  });
});

describe('error transfer: through comlink over a MessageChannel', () => {
  installErrorTransfer();
  installErrorTransfer(); // idempotent
  const { port1, port2 } = new MessageChannel();
  const api = {
    async shape(): Promise<void> {
      throw new ShapeError('got [2, 3], need [2, 4]', { got: [2, 3] });
    },
    async asyncType(): Promise<void> {
      throw new TypeError('undefined is not a function');
    },
    ok: (x: number) => x + 1,
  };
  Comlink.expose(api, port1);
  const remote = Comlink.wrap<typeof api>(port2);
  afterAll(() => {
    remote[Comlink.releaseProxy]();
    port1.close();
    port2.close();
  });

  it('a ShapeError thrown by the exposed side arrives as a ShapeError', async () => {
    const err = await remote.shape().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ShapeError);
    expect((err as ShapeError).name).toBe('ShapeError');
    expect((err as ShapeError).message).toBe('got [2, 3], need [2, 4]');
    expect((err as ShapeError).details).toEqual({ got: [2, 3] });
  });

  it('a foreign error arrives as a TrolError naming the original', async () => {
    const err = await remote.asyncType().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TrolError);
    expect((err as TrolError).details.originalName).toBe('TypeError');
  });

  it('ordinary calls are unaffected', async () => {
    expect(await remote.ok(41)).toBe(42);
  });
});
