/**
 * The pages as a user drives them (run by run-browser-tests.mjs after the in-page test pages):
 *  - the chat demo (index.html): the self-check finishes, "Load model" loads the built-in tiny model, a
 *    question typed and sent gets its answer streamed (equal to the golden text), a follow-up continues the
 *    conversation, an image question fills the traversal heatmap with image tokens, Stop cancels;
 *  - the `<trol-chat>` example page (src/ui/embed-example.html): the element loads its model by itself and
 *    answers, with `trol-token` events that add up to the `trol-done` text.
 * Each check reports through `line(ok, name, detail, ms)`, the runner's own output.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const TIMEOUT = 90_000;

async function goldenIndex(root) {
  return JSON.parse(await readFile(join(root, 'test/fixtures/tiny-trol/golden/index.json'), 'utf8'));
}

async function timed(line, name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    line(true, name, detail ?? '', Date.now() - t0);
  } catch (e) {
    line(false, name, e.message ?? String(e), Date.now() - t0);
    return false;
  }
  return true;
}

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

/** Wait until #status matches `re`, failing fast when the error box shows up. */
async function waitStatus(page, re, timeout = TIMEOUT) {
  await page.waitForFunction(
    ([src]) => {
      const err = document.getElementById('error');
      if (err && !err.hidden) return true;
      return new RegExp(src).test(document.getElementById('status')?.textContent ?? '');
    },
    [re.source],
    { timeout },
  );
  const err = await page.evaluate(() => {
    const e = document.getElementById('error');
    return e && !e.hidden ? e.textContent.replace(/\s+/g, ' ').trim() : null;
  });
  if (err) throw new Error(`the page shows an error: ${err}`);
  return page.locator('#status').textContent();
}

/** Send the question in the demo and wait for its answer; returns the answer text. */
async function askDemo(page, question) {
  const before = await page.locator('.turn.assistant.done').count();
  await page.fill('#question', question);
  await page.click('#send');
  await page.waitForFunction((n) => document.querySelectorAll('.turn.assistant.done').length > n, before, {
    timeout: TIMEOUT,
  });
  return page.locator('.turn.assistant.done .answer').nth(before).textContent();
}

export async function runUiChecks({ page, base, root, line }) {
  const g = await goldenIndex(root);
  const demo = new URL('index.html', base).href;

  const opened = await timed(line, 'chat page: opens, finds the adapter, passes the kernel self-check', async () => {
    await page.goto(demo, { waitUntil: 'load' });
    const s = await waitStatus(page, /^Ready|failed|not available|could not/);
    expect(s.startsWith('Ready'), `status: ${s}`);
    const rows = await page.locator('#selfcheck tbody tr').count();
    return `${s} (${rows} kernels)`;
  });
  if (!opened) return;

  const loaded = await timed(line, 'chat page: "Load model" loads the built-in tiny model', async () => {
    expect(await page.isChecked('input[name="source"][value="embedded"]'), 'the built-in model is not the default');
    expect((await page.inputValue('#weights')) === 'f32', 'the tiny model should default to f32 weights');
    expect(/random weights/.test(await page.locator('#model-form').textContent()), 'no tiny-model warning');
    await page.click('#load');
    const s = await waitStatus(page, /^Model loaded/);
    const info = (await page.locator('#model-info').textContent()).replace(/\s+/g, ' ');
    expect(/tiny random test model/.test(info), `model info: ${info}`);
    expect(/Source\s*http:\/\/127\.0\.0\.1:\d+\/models\/tiny-trol\//.test(info), `model info: ${info}`);
    return `${s} — ${info.slice(0, 120)}`;
  });
  if (!loaded) return;

  await timed(
    line,
    'chat page: a typed question gets the streamed answer (golden text), timings and heatmap',
    async () => {
      await page.click('.sampling summary');
      await page.fill('#max-new', String(g.max_new_tokens));
      // Count the answer's text changes while it streams: several updates means it streamed.
      await page.evaluate(() => {
        window.__updates = 0;
        new MutationObserver(() => window.__updates++).observe(document.getElementById('transcript'), {
          childList: true,
          subtree: true,
          characterData: true,
        });
      });
      const answer = await askDemo(page, g.txt.question);
      const updates = await page.evaluate(() => window.__updates);
      expect(
        answer === g.txt.generated_text,
        `answer ${JSON.stringify(answer)} ≠ golden ${JSON.stringify(g.txt.generated_text)}`,
      );
      expect(updates >= 10, `only ${updates} DOM updates while answering: not streamed?`);
      const timings = await page.locator('#timings').textContent();
      expect(/prefill [\d.]+ tok\/s/.test(timings) && /decode [\d.]+ tok\/s/.test(timings), `timings: ${timings}`);
      const layers = await page.locator('#heatmap-table tbody tr').count();
      const height = await page.evaluate(() => document.getElementById('heatmap').height);
      expect(layers === 2 && height > 40, `heatmap: ${layers} layer rows, canvas height ${height}`);
      const state = await page.locator('#conversation-state').textContent();
      expect(/follows up/.test(state), `conversation state: ${state}`);
      return `${updates} DOM updates; ${timings}`;
    },
  );

  await timed(line, 'chat page: a follow-up continues the conversation; "New conversation" resets it', async () => {
    const answer = await askDemo(page, 'And what about the wind?');
    const turns = await page.locator('.turn.assistant.done').count();
    expect(turns === 2, `${turns} answers in the transcript`);
    const tokens = await page.locator('#timings').textContent();
    expect(/prompt \d+ tokens/.test(tokens) && Number(/prompt (\d+)/.exec(tokens)[1]) < 40, `follow-up ${tokens}`);
    await page.click('#new-conversation');
    const left = await page.locator('.turn').count();
    const state = await page.locator('#conversation-state').textContent();
    expect(left === 0 && /new conversation/.test(state), `after reset: ${left} turns, state ${state}`);
    return `follow-up answer ${JSON.stringify(answer.slice(0, 30))}; ${tokens.split(' · ')[0]}`;
  });

  await timed(
    line,
    'chat page: an image question (file picker, preview) marks image tokens in the heatmap',
    async () => {
      await page.setInputFiles('#image-input', join(root, 'test/fixtures/tiny-trol/golden/image.png'));
      await page.waitForSelector('#image-preview:not([hidden])');
      const answer = await askDemo(page, g.img.question);
      expect(
        answer === g.img.generated_text,
        `answer ${JSON.stringify(answer)} ≠ golden ${JSON.stringify(g.img.generated_text)}`,
      );
      const imageMeans = await page.locator('#heatmap-table tbody tr td:nth-child(3)').allTextContents();
      expect(imageMeans.length === 2 && imageMeans.every((x) => /^0\.\d+$/.test(x)), `image-token means ${imageMeans}`);
      const timings = await page.locator('#timings').textContent();
      expect(/vision \d+ ms/.test(timings), `timings: ${timings}`);
      return `image-token mean gate per layer: ${imageMeans.join(', ')}`;
    },
  );

  await timed(
    line,
    'chat page: Stop cancels the answer (GenerationCancelledError), and the next question works',
    async () => {
      await page.click('#new-conversation');
      if (await page.locator('#image-clear').isVisible()) await page.click('#image-clear');
      await page.fill('#max-new', '400');
      const before = await page.locator('.turn.assistant.done').count();
      await page.fill('#question', g.txt.question);
      await page.click('#send');
      await page.waitForFunction(
        () => (document.querySelector('.turn.assistant .answer')?.textContent ?? '').length > 3,
        null,
        {
          timeout: TIMEOUT,
        },
      );
      await page.click('#stop');
      await page.waitForFunction((n) => document.querySelectorAll('.turn.assistant.done').length > n, before, {
        timeout: TIMEOUT,
      });
      const answer = await page.locator('.turn.assistant.done .answer').nth(before).textContent();
      const s = await page.locator('#status').textContent();
      expect(/\(stopped\)$/.test(answer) && /^Stopped/.test(s), `answer ${JSON.stringify(answer)}, status ${s}`);
      expect(await page.locator('#error').isHidden(), 'Stop showed an error box');
      await page.fill('#max-new', String(g.max_new_tokens));
      const next = await askDemo(page, g.txt.question);
      expect(next === g.txt.generated_text, `after Stop: ${JSON.stringify(next)}`);
      return `stopped after ${answer.length - ' (stopped)'.length} characters`;
    },
  );

  await timed(line, 'chat page: a local model folder (webkitdirectory picker) loads and answers', async () => {
    await page.setInputFiles('#model-folder', join(root, 'test/fixtures/tiny-trol'));
    expect(await page.isChecked('input[name="source"][value="folder"]'), 'picking a folder did not select that source');
    expect((await page.inputValue('#weights')) === 'q4', 'a picked folder should default to q4 weights');
    await page.selectOption('#weights', 'f32');
    await page.click('#load');
    const s = await waitStatus(page, /^Model loaded/);
    const info = (await page.locator('#model-info').textContent()).replace(/\s+/g, ' ');
    expect(/local files \(folder tiny-trol\)/.test(info), `model info: ${info}`);
    await page.click('#new-conversation');
    const answer = await askDemo(page, g.txt.question);
    expect(answer === g.txt.generated_text, `answer ${JSON.stringify(answer)}`);
    return `${s} — ${/Source[^N]*/.exec(info)?.[0]}`;
  });

  await timed(line, '<trol-chat> example page: the element loads its model and answers (events add up)', async () => {
    await page.goto(new URL('src/ui/embed-example.html', base).href, { waitUntil: 'load' });
    await page.evaluate(() => {
      const el = document.querySelector('trol-chat');
      window.__chat = { tokens: [], done: null, error: null, loaded: !!el.modelInfo };
      el.addEventListener('trol-load', () => (window.__chat.loaded = true));
      el.addEventListener('trol-token', (e) => window.__chat.tokens.push(e.detail.text));
      el.addEventListener('trol-done', (e) => (window.__chat.done = e.detail.text));
      el.addEventListener('trol-error', (e) => (window.__chat.error = `${e.detail.name}: ${e.detail.message}`));
    });
    await page.waitForFunction(() => window.__chat.loaded || window.__chat.error, null, { timeout: TIMEOUT });
    const status = await page.locator('trol-chat .status').textContent();
    expect(/gibberish/.test(status), `status: ${status}`);
    await page.fill('trol-chat textarea', g.txt.question);
    await page.locator('trol-chat button[type="submit"]').click();
    await page.waitForFunction(() => window.__chat.done !== null || window.__chat.error, null, { timeout: TIMEOUT });
    const chat = await page.evaluate(() => window.__chat);
    expect(!chat.error, chat.error);
    expect(
      chat.tokens.length > 1 && chat.tokens.join('') === chat.done,
      `tokens ${chat.tokens.length}, done ${JSON.stringify(chat.done)}`,
    );
    // 48 tokens here, 24 in the golden: compare the start (the golden's end may hold a partial UTF-8 sequence).
    expect(chat.done.startsWith(g.txt.generated_text.slice(0, 12)), `done ${JSON.stringify(chat.done)}`);
    const shown = await page.locator('trol-chat li.bot').first().textContent();
    expect(shown === chat.done, `shown ${JSON.stringify(shown)}`);
    return `${chat.tokens.length} trol-token events; ${status}`;
  });
}
