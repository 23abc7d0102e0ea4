/**
 * The `trol` command (Node + Dawn through the `webgpu` package; the same engine code as the browser).
 *
 *   trol generate --model DIR --question TEXT [--image FILE] [--max-new-tokens N] [--temperature T] [--top-k K]
 *                 [--top-p P] [--repetition-penalty R] [--seed S] [--weights f32|f16|q4] [--f32]
 *                 [--gate per-layer|last] [--json] [--dump DIR]
 *   trol tokenize --model DIR (--text TEXT | --stdin-json) [--json]
 *   trol detokenize --model DIR --ids 1,2,3
 *   trol info [--json]
 *   trol verify --model DIR --golden DIR [--weights f32|f16|q4] [--f32]
 *
 * Errors: one line on stderr, `error: <ErrorName>: <message>`; exit 2 for bad input, 1 otherwise.
 * This interface is a contract other tools rely on: keep it stable.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createEngine, type GenerateRequest, type RgbImage, type TrolEngine } from '../engine.ts';
import { ArgumentError, InputError, TrolError } from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import { decodeImageNode } from '../image/decode-node.ts';
import type { GateMode, WeightMode } from '../model/weights.ts';
import { TrolTokenizer } from '../tokenizer/tokenizer.ts';
import { openGoldens, verifyGoldens } from '../verify/golden.ts';
import { dirFiles } from '../weights/byte-source.ts';
import { parseArgs } from './args.ts';
import { writeDump } from './dump.ts';

const out = (s: string) => process.stdout.write(s);

async function loadImage(path: string): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    throw new ArgumentError(`Cannot read image '${path}': ${(e as Error).message}`);
  }
  return decodeImageNode(bytes);
}

function weightMode(v: string | undefined, dflt: WeightMode): WeightMode {
  const m = v ?? dflt;
  if (m !== 'f32' && m !== 'f16' && m !== 'q4')
    throw new ArgumentError(`--weights must be f32, f16 or q4 (got '${m}')`);
  return m;
}

function gateMode(v: string | undefined): GateMode {
  const m = v ?? 'per-layer';
  if (m !== 'per-layer' && m !== 'last') throw new ArgumentError(`--gate must be per-layer or last (got '${m}')`);
  return m;
}

async function openEngine(a: ReturnType<typeof parseArgs>, dfltWeights: WeightMode): Promise<TrolEngine> {
  const dir = a.string('model', true)!;
  return createEngine(dirFiles(dir), {
    weights: weightMode(a.string('weights'), dfltWeights),
    forceF32: a.flag('f32'),
    gateMode: gateMode(a.string('gate')),
  });
}

async function cmdGenerate(argv: string[]): Promise<void> {
  const a = parseArgs(argv, {
    strings: [
      'model',
      'question',
      'image',
      'max-new-tokens',
      'temperature',
      'top-k',
      'top-p',
      'seed',
      'weights',
      'gate',
      'dump',
      'repetition-penalty',
      'context-length',
    ],
    flags: ['json', 'f32'],
  });
  const question = a.string('question', true)!;
  const image = a.string('image') ? await loadImage(a.string('image')!) : null;
  const engine = await openEngine(a, 'q4');
  try {
    const dump = a.string('dump');
    const req: GenerateRequest = {
      question,
      image,
      maxNewTokens: a.int('max-new-tokens') ?? 256,
      temperature: a.number('temperature') ?? 0,
      topK: a.int('top-k') ?? 0,
      topP: a.number('top-p') ?? 1,
      repetitionPenalty: a.number('repetition-penalty') ?? 1,
      seed: a.int('seed') ?? 0,
      keepLogits: !!dump,
      debug: dump ? {} : undefined,
    };
    const json = a.flag('json');
    const it = engine.generate(req);
    let r = await it.next();
    while (!r.done) {
      if (!json) out(r.value.text);
      r = await it.next();
    }
    const res = r.value;
    if (dump) await writeDump(dump, engine, res, req.debug!);
    if (json) {
      out(
        `${JSON.stringify({
          prompt_ids: res.promptIds,
          generated_ids: res.generatedIds,
          text: res.text,
          stop_reason: res.stopReason,
          timings: res.timings,
          adapter: engine.ctx.adapterSummary,
        })}\n`,
      );
    } else {
      out('\n');
    }
  } finally {
    engine.destroy();
  }
}

async function readTokenizer(dir: string): Promise<TrolTokenizer> {
  const files = dirFiles(dir);
  const model = await files.get('tokenizer.model');
  if (!model) throw new ArgumentError(`${dir} has no tokenizer.model`);
  const addedSrc = await files.get('added_tokens.json');
  const added = addedSrc
    ? JSON.parse(new TextDecoder().decode(await addedSrc.read(0, await addedSrc.size())))
    : undefined;
  return TrolTokenizer.fromModelBytes(await model.read(0, await model.size()), added);
}

async function cmdTokenize(argv: string[]): Promise<void> {
  const a = parseArgs(argv, { strings: ['model', 'text'], flags: ['stdin-json', 'json'] });
  const tok = await readTokenizer(a.string('model', true)!);
  const encode = (text: string) => {
    const ids = tok.encode(text);
    return { ids, pieces: ids.map((id) => tok.pieceOf(id)) };
  };
  if (a.flag('stdin-json')) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    let texts: unknown;
    try {
      texts = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      throw new ArgumentError(`--stdin-json: stdin is not JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) {
      throw new ArgumentError('--stdin-json expects a JSON array of strings');
    }
    out(`${JSON.stringify(texts.map(encode))}\n`);
    return;
  }
  const text = a.string('text');
  if (text === undefined) throw new ArgumentError('tokenize needs --text TEXT or --stdin-json');
  const r = encode(text);
  out(a.flag('json') ? `${JSON.stringify(r)}\n` : `${r.ids.join(' ')}\n`);
}

async function cmdDetokenize(argv: string[]): Promise<void> {
  const a = parseArgs(argv, { strings: ['model', 'ids'], flags: ['json'] });
  const tok = await readTokenizer(a.string('model', true)!);
  const raw = a.string('ids', true)!;
  const ids = raw
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => {
      const n = Number(s.trim());
      if (!Number.isInteger(n) || n < 0 || n > tok.vocabSize) throw new ArgumentError(`--ids: bad token id '${s}'`);
      return n;
    });
  const text = tok.decode(ids);
  out(a.flag('json') ? `${JSON.stringify({ text })}\n` : `${text}\n`);
}

async function cmdInfo(argv: string[]): Promise<void> {
  const a = parseArgs(argv, { strings: [], flags: ['json', 'f32'] });
  const ctx = await GpuContext.create({ forceF32: a.flag('f32') });
  try {
    const s = ctx.adapterSummary;
    if (a.flag('json')) {
      out(`${JSON.stringify({ adapter: s, activations: ctx.act })}\n`);
    } else {
      out(
        `adapter: ${s.vendor} / ${s.architecture} / ${s.device} (${s.description})${s.software ? ' [software]' : ''}\n`,
      );
      out(`features: ${s.features.join(', ')}\n`);
      out(`activations: ${ctx.act}\n`);
      for (const [k, v] of Object.entries(s.limits)) out(`limit ${k}: ${v}\n`);
    }
  } finally {
    ctx.destroy();
  }
}

async function cmdVerify(argv: string[]): Promise<number> {
  const a = parseArgs(argv, { strings: ['model', 'golden', 'weights', 'gate'], flags: ['f32', 'json'] });
  const goldenDir = a.string('golden', true)!;
  const golden = await openGoldens(dirFiles(goldenDir));
  const image = await loadImage(join(goldenDir, 'image.png'));
  const checks = [];
  for (const gate of ['per-layer', 'last'] as const) {
    const engine = await createEngine(dirFiles(a.string('model', true)!), {
      weights: weightMode(a.string('weights'), 'f32'),
      forceF32: a.flag('f32'),
      gateMode: gate,
    });
    try {
      if (gate === 'per-layer')
        out(
          `adapter: ${engine.ctx.adapterSummary.description}; activations ${engine.ctx.act}; weights ${engine.weights.mode}\n`,
        );
      checks.push(
        ...(await verifyGoldens(engine, golden, image, {
          gateLast: gate === 'last',
          cases: gate === 'last' ? ['img'] : ['img', 'txt'],
          log: (c) =>
            out(
              `${c.informational ? 'info' : c.pass ? 'PASS' : 'FAIL'}  ${c.name.padEnd(36)} max|Δ| ${c.maxAbs.toExponential(3)}  tol ${c.tol.toExponential(2)}${c.pass ? '' : `  worst index ${c.worst}`}\n`,
            ),
        })),
      );
    } finally {
      engine.destroy();
    }
  }
  const gated = checks.filter((c) => !c.informational);
  const failed = gated.filter((c) => !c.pass).length;
  out(
    `${gated.length - failed} passed, ${failed} failed${checks.length > gated.length ? ` (${checks.length - gated.length} informational)` : ''}\n`,
  );
  return failed === 0 ? 0 : 1;
}

const USAGE = `usage: trol <generate|tokenize|detokenize|info|verify> [options]
  generate   --model DIR --question TEXT [--image FILE] [--max-new-tokens N] [--temperature T] [--top-k K]
             [--top-p P] [--repetition-penalty R] [--seed S] [--weights f32|f16|q4] [--f32]
             [--gate per-layer|last] [--json] [--dump DIR]
  tokenize   --model DIR (--text TEXT | --stdin-json) [--json]
  detokenize --model DIR --ids 1,2,3
  info       [--json]
  verify     --model DIR --golden DIR [--weights f32|f16|q4] [--f32]
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'generate':
        await cmdGenerate(rest);
        return 0;
      case 'tokenize':
        await cmdTokenize(rest);
        return 0;
      case 'detokenize':
        await cmdDetokenize(rest);
        return 0;
      case 'info':
        await cmdInfo(rest);
        return 0;
      case 'verify':
        return await cmdVerify(rest);
      case undefined:
      case '--help':
      case 'help':
        out(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        throw new ArgumentError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    const err = e as Error;
    const name = err instanceof TrolError ? err.name : err?.name || 'Error';
    process.stderr.write(`error: ${name}: ${(err?.message ?? String(e)).split('\n')[0]}\n`);
    return err instanceof InputError ? 2 : 1;
  }
}
