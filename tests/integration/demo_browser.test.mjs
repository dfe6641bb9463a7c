// The demo as a newcomer sees it: `walcast demo` brings up its throwaway PostgreSQL, the
// daemon and the live page; headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core from tests/integration/browser/) opens the page.
//
// The board shows the database as it is: /api/board answers the project's tasks and a
// snapshot token; the page is loaded RELOADS times while the simulated team writes, half of
// them pausing a while between the page's read and its join (?pauseAfterRead) so that the
// team's writes fall in between; on the last load the test itself inserts, updates and deletes
// rows with psql in that gap, which only the snapshot join's backlog can bring, and they must
// be on the board the moment the join is answered. After every load the team is paused
// (SIGUSR1, resumed with SIGUSR2) and the board in the DOM must equal
// SELECT id, title, status FROM "Task" WHERE "projectId" = 'p1' exactly. The daemon's
// walcast_snapshot_joins_total counts a snapshot join per load. A reconnect as a new session
// (socket.disconnect() and connect()) makes the page read and join again, and the board is
// compared once more.
//
// Then, as before: a Task row inserted with the psql command the demo prints appears in the
// board's To do column within 2 s of its commit; a screenshot goes to the test output
// directory; Ctrl-C (SIGINT) stops the demo with status 0 and removes its data directory.
//
// Run by ctest with WALCAST_BIN and WALCAST_SOURCE_DIR; from the repo root:
//   npm ci --prefix tests/integration/browser
//   WALCAST_BIN=build/walcast node --test tests/integration/demo_browser.test.mjs
// Optional: WALCAST_TEST_OUTPUT (a directory, or a .png path) for the screenshot (default
// build/test-output/demo.png), CHROMIUM_PATH (default /usr/bin/chromium).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = process.env.WALCAST_SOURCE_DIR ?? resolve(HERE, '..', '..');
const WALCAST_BIN = process.env.WALCAST_BIN ?? join(SOURCE_DIR, 'build', 'walcast');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = (() => {
  const out = process.env.WALCAST_TEST_OUTPUT;
  if (!out) return join(SOURCE_DIR, 'build', 'test-output', 'demo.png');
  return out.endsWith('.png') ? resolve(out) : join(resolve(out), 'demo.png');
})();
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const TASK_ID = 'browser-test-1';
const TASK_TITLE = 'Inserted by the test';
const MAX_LATENCY_MS = 2000;
const PROJECT = 'p1';
const RELOADS = 6;             // page loads, each checked against the database
const GAP_PAUSE_MS = 4000;     // the last load's pause between read and join, for the psql writes
const SETTLE_MS = 15000;       // after the team pauses, how long the board may take to catch up

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A timeout that does not keep the process alive once everything else is done.
const timeoutAfter = (ms) => new Promise((r) => setTimeout(r, ms).unref()).then(() => null);

function loadPlaywright() {
  const require = createRequire(join(HERE, 'browser', 'package.json'));
  try {
    return require('playwright-core');
  } catch (err) {
    throw new Error('playwright-core is not installed: run `npm ci --prefix tests/integration/browser` ' +
      `(${err.message})`);
  }
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

// Splits a printed shell command into words ('...' and "..." quoting only).
function shellWords(line) {
  return (line.match(/'[^']*'|"(?:[^"\\]|\\.)*"|\S+/g) ?? [])
    .map((w) => (w.startsWith("'") ? w.slice(1, -1) : w.startsWith('"') ? w.slice(1, -1).replace(/\\(.)/g, '$1') : w));
}

// `walcast demo` as a child process whose stdout lines are parsed as they arrive.
class Demo {
  constructor(bin, args) {
    this.out = '';
    this.err = '';
    this.url = null;
    this.psql = null;
    this.dataDir = null;
    this.teamPauses = 0;   // "the simulated team paused" lines so far
    this.teamResumes = 0;  // "the simulated team writes again" lines so far
    this.exit = null;   // {code, signal} once it exited
    this.waiters = [];
    this.child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      this.out += chunk;
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        this.line(partial.slice(0, nl).replace(/\r$/, ''));
        partial = partial.slice(nl + 1);
      }
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk) => { this.err += chunk; });
    this.exited = new Promise((res) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        res(this.exit);
      });
      this.child.once('error', (error) => {
        this.err += `\nspawn error: ${error.message}`;
        this.exit = { code: null, signal: null, error };
        this.notify();
        res(this.exit);
      });
    });
  }

  line(text) {
    let m;
    if ((m = /^walcast demo: open (\S+)/.exec(text))) this.url = m[1];
    else if ((m = /^walcast demo: database: (.+)$/.exec(text))) this.psql = m[1].trim();
    else if ((m = /^walcast demo: data directory (.+)$/.exec(text))) this.dataDir = m[1].trim();
    else if (/^walcast demo: the simulated team paused/.test(text)) this.teamPauses += 1;
    else if (/^walcast demo: the simulated team writes again/.test(text)) this.teamResumes += 1;
    this.notify();
  }

  notify() { for (const w of this.waiters.splice(0)) w(); }

  output() {
    const tail = (s) => (s.length > 4000 ? `…${s.slice(-4000)}` : s);
    return `--- walcast demo stdout ---\n${tail(this.out)}\n--- stderr ---\n${tail(this.err)}`;
  }

  // Resolves once predicate() holds; rejects if the demo exits first or on timeout.
  async until(what, predicate, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (predicate()) return;
      if (this.exit) throw new Error(`walcast demo exited (${JSON.stringify(this.exit)}) before ${what}\n${this.output()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.output()}`);
      await Promise.race([new Promise((r) => this.waiters.push(r)), timeoutAfter(Math.min(left, 250))]);
    }
  }

  // SIGUSR1: the simulated team stops between two transactions and says so.
  async pauseTeam() {
    const before = this.teamPauses;
    this.child.kill('SIGUSR1');
    await this.until('the simulated team to pause', () => this.teamPauses > before, 15000);
  }

  async resumeTeam() {
    const before = this.teamResumes;
    this.child.kill('SIGUSR2');
    await this.until('the simulated team to write again', () => this.teamResumes > before, 15000);
  }

  async stop(signal, timeoutMs) {
    if (this.exit) return this.exit;
    this.child.kill(signal);
    return Promise.race([this.exited, timeoutAfter(timeoutMs)]);
  }
}

async function waitForHttp(demo, url, timeoutMs) {
  let last = 'no answer';
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (demo.exit) break;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err.cause?.code ?? err.message;
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer 200 (${last})\n${demo.output()}`);
}

// Runs SQL through the demo's printed psql command; resolves with psql's output (unaligned,
// tuples only with `bare`).
function runPsql(commandLine, sql, { bare = false } = {}) {
  const [program, ...rest] = shellWords(commandLine);
  assert.ok(program, `unusable psql command: ${commandLine}`);
  return new Promise((res, reject) => {
    const child = spawn(program, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...(bare ? ['-A', '-t'] : []), ...rest], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? res(out)
      : reject(new Error(`psql exited ${code}: ${out}\ncommand: ${program} ${rest.join(' ')}`))));
    child.stdin.end(sql);
  });
}

// If the demo had to be killed, its PostgreSQL may be left running: stop that postmaster
// (its pid is in the data directory) and remove the directory.
function cleanUpAfterKill(dataDir) {
  if (!dataDir || !existsSync(dataDir)) return;
  for (const pidFile of [join(dataDir, 'data', 'postmaster.pid'), join(dataDir, 'postmaster.pid')]) {
    try {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (Number.isInteger(pid) && pid > 1) process.kill(pid, 'SIGQUIT');
    } catch { /* not there or already gone */ }
  }
  try { rmSync(dataDir, { recursive: true, force: true }); } catch { /* best effort */ }
}

// {id, title, status} sorted by id, the same comparison for both sides.
const byId = (rows) => rows.map(({ id, title, status }) => ({ id: String(id), title, status }))
  .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

// The project's tasks as the database has them.
async function databaseBoard(psql) {
  const out = await runPsql(psql, `SELECT coalesce(json_agg(json_build_object('id', id, 'title', title, 'status', status)), '[]') ` +
    `FROM "Task" WHERE "projectId" = '${PROJECT}';`, { bare: true });
  return byId(JSON.parse(out));
}

// The cards on the page (a card being faded out has lost its data-task-id already).
async function pageBoard(page) {
  return byId(await page.evaluate(() => Array.from(document.querySelectorAll('#board .card[data-task-id]')).map((card) => ({
    id: card.dataset.taskId,
    title: card.querySelector('.card-title')?.textContent ?? null,
    status: card.closest('.column')?.dataset.status ?? null,
  }))));
}

// What the page says about itself, for failure messages.
async function pageState(page) {
  return page.evaluate(() => ({
    body: { ...document.body.dataset },
    banner: document.getElementById('banner')?.hidden ? null : document.getElementById('banner')?.textContent,
    log: Array.from(document.querySelectorAll('#log-list .entry')).slice(0, 8).map((e) => e.textContent.trim().replace(/\s+/g, ' ')),
  })).catch((err) => ({ error: err.message }));
}

// Loads the page and waits until it is live in the project's room.
async function load(page, url, { onPaused } = {}) {
  await page.goto(url, { waitUntil: 'load' });
  try {
    if (onPaused) {
      await page.waitForSelector('body[data-sync="paused"]', { timeout: 15000 });
      await onPaused();
    }
    await page.waitForSelector('#board[data-ready="true"] .column[data-status="todo"]', { timeout: 15000 });
    await page.waitForSelector('body[data-connection="connected"][data-joined]', { timeout: 15000 + GAP_PAUSE_MS });
  } catch (err) {
    throw new Error(`${url}: the page never got live in project:${PROJECT}: ${err.message}\n` +
      `page state: ${JSON.stringify(await pageState(page))}\n${demo.output()}`);
  }
}

// With nothing writing: waits for the page to catch up, then its board must be the database's.
async function assertBoardIsDatabase(page, what) {
  const expected = await databaseBoard(demo.psql);
  const deadline = Date.now() + SETTLE_MS;
  let shown = await pageBoard(page);
  while (JSON.stringify(shown) !== JSON.stringify(expected) && Date.now() < deadline) {
    await sleep(100);
    shown = await pageBoard(page);
  }
  assert.deepEqual(shown, expected, `${what}: the board differs from SELECT id, title, status FROM "Task" ` +
    `WHERE "projectId" = '${PROJECT}' (${SETTLE_MS} ms after the writes stopped)\n` +
    `page state: ${JSON.stringify(await pageState(page))}`);
  return expected.length;
}

async function metric(url, name) {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

let demo = null;
let context = null;
let profileDir = null;

after(async () => {
  if (context) await context.close().catch(() => {});
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  if (demo && !demo.exit) {
    const gone = (await demo.stop('SIGINT', 20000)) ?? (await demo.stop('SIGKILL', 5000));
    if (!gone || gone.signal === 'SIGKILL') cleanUpAfterKill(demo.dataDir);
  }
});

test('walcast demo: the board is the database across reloads and snapshot joins, a psql insert shows up live, Ctrl-C cleans up', { timeout: 300000 }, async (t) => {
  assert.ok(existsSync(WALCAST_BIN), `walcast binary not found at ${WALCAST_BIN} (set WALCAST_BIN)`);
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install chromium (or set CHROMIUM_PATH)`);
  const { chromium } = loadPlaywright();

  const port = await freePort();
  demo = new Demo(WALCAST_BIN, ['demo', '--port', String(port)]);
  await demo.until('the page URL and the psql command on stdout', () => demo.url && demo.psql, 120000);
  assert.match(demo.url, new RegExp(`^http://127\\.0\\.0\\.1:${port}/`), `demo URL on the requested port:\n${demo.output()}`);
  await waitForHttp(demo, demo.url, 60000);

  profileDir = mkdtempSync(join(tmpdir(), 'walcast-chromium-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
  });
  const page = context.pages()[0] ?? await context.newPage();
  const pageErrors = [];
  const consoleErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });

  const sql = (statements) => runPsql(demo.psql, ['BEGIN;', "SELECT walcast.set_context('u1', 'p1', 'acme');",
    ...statements, 'COMMIT;', ''].join('\n'));

  // /api/board: the project's tasks and a snapshot token, read together.
  await demo.pauseTeam();
  {
    const res = await fetch(new URL('/api/board', demo.url));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const answer = await res.json();
    assert.match(answer.snapshot, /^v1:\d+:\d+:[\d,]*:[0-9A-F]+\/[0-9A-F]+$/, 'a snapshot token');
    assert.deepEqual(byId(answer.tasks), await databaseBoard(demo.psql), '/api/board answers the project\'s tasks');
    for (const task of answer.tasks) {
      assert.deepEqual(Object.keys(task).sort(),
        ['assigneeId', 'createdAt', 'estimate', 'id', 'position', 'projectId', 'status', 'title']);
    }
  }
  // Rows the psql writes of the last load change: here before any read.
  await sql([
    `INSERT INTO "Task" (id, "projectId", title, status, position) VALUES ('gap-update', 'p1', 'To be renamed', 'todo', 900), ` +
      `('gap-delete', 'p1', 'To be deleted', 'doing', 901);`,
  ]);

  // Loads with the team writing; each is then compared with the database with the team paused.
  const joinsBefore = await metric(demo.url, 'walcast_snapshot_joins_total');
  for (let i = 1; i <= RELOADS; i += 1) {
    await demo.resumeTeam();
    const last = i === RELOADS;
    const pause = last ? GAP_PAUSE_MS : i % 2 === 0 ? 1000 + Math.floor(Math.random() * 1500) : 0;
    const url = pause ? `${demo.url}?pauseAfterRead=${pause}` : demo.url;
    if (!last) {
      await load(page, url);
    } else {
      // Between the page's read and its join: only the join's backlog can bring these.
      await load(page, url, {
        onPaused: async () => {
          await sql(["INSERT INTO \"Task\" (id, \"projectId\", title, status, position) VALUES ('gap-insert', 'p1', 'Inserted in the gap', 'doing', 902);"]);
          await sql(["UPDATE \"Task\" SET title = 'Renamed in the gap', status = 'done' WHERE id = 'gap-update';"]);
          await sql(["DELETE FROM \"Task\" WHERE id = 'gap-delete';"]);
          assert.equal(await page.evaluate(() => document.body.dataset.sync), 'paused', `the writes took longer than the pause (${GAP_PAUSE_MS} ms)`);
        },
      });
      // The join's answer came after its backlog: the board has them now, not eventually.
      const shown = Object.fromEntries((await pageBoard(page)).filter((c) => c.id.startsWith('gap-')).map((c) => [c.id, c]));
      assert.deepEqual(shown, {
        'gap-insert': { id: 'gap-insert', title: 'Inserted in the gap', status: 'doing' },
        'gap-update': { id: 'gap-update', title: 'Renamed in the gap', status: 'done' },
      }, `the writes between the read and the join are on the board when the join is answered\n` +
        `page state: ${JSON.stringify(await pageState(page))}`);
      const backlog = Number(await page.evaluate(() => document.body.dataset.backlog));
      assert.ok(backlog >= 3, `the join brought the 3 writes made after the read (backlog ${backlog})`);
      for (const [event, id] of [['task:created', 'gap-insert'], ['task:updated', 'gap-update'], ['task:deleted', 'gap-delete']]) {
        assert.equal(await page.locator(`#log-list .entry[data-event="${event}"][data-id="${id}"]`).count(), 1,
          `the event log lists ${event} for ${id} once`);
      }
    }
    // The team writes on for a moment while the page is live.
    await sleep(300 + Math.floor(Math.random() * 1200));
    await demo.pauseTeam();
    const n = await assertBoardIsDatabase(page, `load ${i}${pause ? ` (pauseAfterRead=${pause})` : ''}`);
    const joins = await page.evaluate(() => document.body.dataset.snapshotJoins);
    t.diagnostic(`load ${i}: pauseAfterRead=${pause}, ${n} tasks, the board equals the database ` +
      `(backlog of the join: ${await page.evaluate(() => document.body.dataset.backlog)}, snapshot joins on the page: ${joins})`);
    assert.ok(Number(joins) >= 1, 'the page joined with the snapshot of its read');
  }
  const joins = (await metric(demo.url, 'walcast_snapshot_joins_total')) - joinsBefore;
  assert.ok(joins >= RELOADS, `walcast_snapshot_joins_total grew by ${joins}, at least one per load (${RELOADS})`);
  assert.equal(await metric(demo.url, 'walcast_snapshot_misses_total'), 0, 'no snapshot join had to reload');

  // A reconnect that is not recovered (a new session, in no room) while the team writes: the
  // page reads the board again and joins with the new snapshot.
  await demo.resumeTeam();
  const reads = Number(await page.evaluate(() => document.body.dataset.boardReads));
  await page.evaluate(() => { const { socket } = window.walcastDemo; socket.disconnect(); socket.connect(); });
  try {
    await page.waitForFunction((n) => Number(document.body.dataset.boardReads) > n && document.body.dataset.joined,
      reads, { timeout: 15000 });
  } catch (err) {
    throw new Error(`no new read and join after a reconnect as a new session: ${err.message}\n` +
      `page state: ${JSON.stringify(await pageState(page))}`);
  }
  await sleep(500);
  await demo.pauseTeam();
  await assertBoardIsDatabase(page, 'after a reconnect as a new session');
  await demo.resumeTeam();

  const initialCards = await page.locator('.card[data-task-id]').count();
  assert.ok(initialCards > 0, 'the board shows the tasks from /api/board');
  assert.equal(await page.locator(`[data-task-id="${TASK_ID}"]`).count(), 0, 'the test task is not on the board yet');

  // Note the moment the card enters the To do column, in the page (same clock as the commit).
  await page.evaluate(({ id }) => {
    window.__walcastTestShownAt = null;
    const find = () => document.querySelector(`.column[data-status="todo"] [data-task-id="${id}"]`);
    const observer = new MutationObserver(() => {
      if (!window.__walcastTestShownAt && find()) { window.__walcastTestShownAt = Date.now(); observer.disconnect(); }
    });
    observer.observe(document.getElementById('board'), { childList: true, subtree: true, attributes: true });
  }, { id: TASK_ID });

  const beforeCommit = Date.now();
  const shown = page.waitForSelector(`.column[data-status="todo"] .card[data-task-id="${TASK_ID}"]`,
    { timeout: MAX_LATENCY_MS + 8000 }).then(() => null, (err) => err);
  await runPsql(demo.psql, [
    'BEGIN;',
    "SELECT walcast.set_context('u1', 'p1', 'acme');",
    `INSERT INTO "Task" (id, "projectId", title, status) VALUES ('${TASK_ID}', 'p1', '${TASK_TITLE}', 'todo');`,
    'COMMIT;',
    '',
  ].join('\n'));
  const afterCommit = Date.now();
  const waitError = await shown;

  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT });
  t.diagnostic(`screenshot: ${SCREENSHOT}`);

  assert.equal(waitError, null,
    `card ${TASK_ID} never appeared in the To do column (${waitError?.message})\n` +
    `page errors: ${JSON.stringify(pageErrors)}\n${demo.output()}`);
  const shownAt = await page.evaluate(() => window.__walcastTestShownAt);
  const committedAtIso = await page.locator(`#log-list .entry[data-event="task:created"][data-id="${TASK_ID}"] time`)
    .first().getAttribute('datetime', { timeout: 2000 }).catch(() => null);
  const committedAt = committedAtIso ? Date.parse(committedAtIso) : NaN;
  // The commit happened between beforeCommit and afterCommit; committedAt (from the event) is
  // its exact time when the daemon reports it.
  const commitTime = Number.isFinite(committedAt) && committedAt >= beforeCommit - 1000 && committedAt <= afterCommit + 1000
    ? committedAt : beforeCommit;
  const latency = (shownAt ?? Date.now()) - commitTime;
  t.diagnostic(`card shown ${latency} ms after the commit (psql took ${afterCommit - beforeCommit} ms; ` +
    `committedAt ${committedAtIso ?? 'not in the log'})`);
  assert.ok(latency <= MAX_LATENCY_MS, `card appeared ${latency} ms after the commit (limit ${MAX_LATENCY_MS} ms)`);

  const card = page.locator(`.column[data-status="todo"] .card[data-task-id="${TASK_ID}"]`);
  assert.equal(await card.locator('.card-title').textContent(), TASK_TITLE);
  assert.ok(committedAtIso, 'the event log lists task:created for the inserted task');
  assert.deepEqual(pageErrors, [], 'no JavaScript errors on the page');

  await context.close();
  context = null;

  // Ctrl-C: exit status 0 and the temp dir (cluster, page files) gone.
  assert.ok(demo.dataDir, `the demo printed its data directory:\n${demo.output()}`);
  const exit = await demo.stop('SIGINT', 30000);
  assert.ok(exit, `walcast demo did not exit within 30 s of SIGINT\n${demo.output()}`);
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null },
    `walcast demo exits 0 on SIGINT\n${demo.output()}`);
  assert.equal(existsSync(demo.dataDir), false, `data directory ${demo.dataDir} removed on exit`);
});
