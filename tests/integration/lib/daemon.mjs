// Helpers for the live-daemon integration tests: a test database with the reference
// schema, a config for it, the `walcast run` process (log file, /healthz, /metrics, RSS,
// kill -9, SIGTERM), HS256 tokens minted with node:crypto (and forged ones), socket.io-client
// and raw `ws` clients, background writers and an independent wal2json capture to derive the
// expected events from. Node ESM; needs `npm ci --prefix tests/integration`.
//
// Everything started here is stopped when the process exits, also on failure: daemons are
// killed (SIGKILL), clients closed, temp dirs removed (kept, with their daemon logs, when a
// test failed or WALCAST_KEEP_LOGS is set). Only 127.0.0.1 is ever contacted.

import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { createHmac, generateKeyPairSync, sign as rsaSign } from 'node:crypto';
import {
  closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync,
} from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort, lit, lsnToBigInt, startCluster } from './pg.mjs';
import { micros, parseCapture } from './capture.mjs';

async function importOrExplain(name) {
  try {
    return await import(name);
  } catch (e) {
    throw new Error(`cannot load the npm package "${name}" (${e.message}); install the test ` +
      'dependencies first: npm ci --prefix tests/integration');
  }
}
const { io } = await importOrExplain('socket.io-client');
const { default: WebSocket } = await importOrExplain('ws');

export const SOURCE_DIR = process.env.WALCAST_SOURCE_DIR
  ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const WALCAST_BIN = process.env.WALCAST_BIN ?? join(SOURCE_DIR, 'build', 'walcast');
export const DB = 'app';

// The tables examples/walcast.toml routes.
export const ROUTED_TABLES = ['Task', 'Comment', 'TimeEntry', 'File', 'Note', 'Notification',
  'NoteCategory', 'Project', 'Invitation', 'Membership'];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The value of `promise`, or null once `ms` passed; the timer is cleared either way, so it
// never holds the process open after the tests.
export async function within(promise, ms) {
  let timer;
  const timeout = new Promise((r) => { timer = setTimeout(r, Math.max(0, ms), null); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------
// Work directory, failure tracking, cleanup.

let workDir = null;
let failed = false;
const liveDaemons = new Set();
const liveClients = new Set();

export function work() {
  if (!workDir) {
    let root = tmpdir();
    if (root.length > 60) root = '/tmp';
    workDir = mkdtempSync(join(root, 'walcast-it-'));
  }
  return workDir;
}

process.on('exit', () => {
  for (const d of liveDaemons) {
    try { process.kill(d.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  if (!workDir) return;
  if (failed || process.env.WALCAST_KEEP_LOGS) {
    process.stderr.write(`walcast integration: daemon logs and records kept in ${workDir}\n`);
  } else {
    rmSync(workDir, { recursive: true, force: true });
  }
});

// Last lines of every daemon log of this process, for failure messages.
export function daemonLogs(lines = 60) {
  let out = '';
  for (const d of allDaemons) out += `\n--- ${d.name} (pid ${d.pid}) log ${d.logFile}, last ${lines} lines ---\n${d.tail(lines)}`;
  return out;
}

// node:test `test` whose failures carry the daemon logs (and keep the work dir).
export function dtest(name, opts, fn) {
  if (typeof opts === 'function') { fn = opts; opts = {}; }
  return test(name, opts, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      try {
        if (e && typeof e === 'object') e.message = `${e.message}${daemonLogs()}`;
      } catch { /* read-only message */ }
      throw e;
    }
  });
}

export function markFailed() {
  failed = true;
}

// Polls fn (sync or async) until it returns a truthy value; that value is returned.
export async function waitUntil(fn, { timeoutMs = 10_000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
    } catch (e) {
      last = undefined;
      if (Date.now() >= deadline) throw new Error(`waiting for ${what}: ${e.message}`);
    }
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------
// The database.

// A cluster with database "app": the reference schema, sql/walcast.sql, every routed table
// tracked, and an unrouted, untracked table "Widget". `setupSql` runs after that.
export async function startAppCluster({ setupSql = '', settings } = {}) {
  const cluster = await startCluster({ settings });
  await cluster.createDatabase(DB);
  await cluster.psql(readFileSync(join(SOURCE_DIR, 'tests', 'fixtures', 'app-schema.sql'), 'utf8'), { db: DB });
  await cluster.psql(readFileSync(join(SOURCE_DIR, 'sql', 'walcast.sql'), 'utf8'), { db: DB });
  await cluster.psql(`
CREATE TABLE "Widget" (id text PRIMARY KEY, name text NOT NULL);
${ROUTED_TABLES.map((t) => `SELECT walcast.track(${lit(`"${t}"`)});`).join('\n')}
${setupSql}`, { db: DB });
  return cluster;
}

// A long-lived psql session (no process start per statement, which costs ~100 ms here).
// query(sql) resolves to psql's unaligned, tuples-only output; rejects if the session dies
// (then `dead` is true and a new session is needed) or on timeout.
export class PsqlSession {
  constructor(cluster, { db = DB } = {}) {
    const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', cluster.host, '-p', String(cluster.port),
      '-U', cluster.superuser, '-d', db];
    this.child = spawn(cluster.bin('psql'), args, { env: cluster.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.buf = '';
    this.lines = [];
    this.err = '';
    this.dead = false;
    this.next = 0;
    this.waiters = new Map();
    this.child.stdin.on('error', () => {});
    this.child.stdout.on('data', (d) => {
      this.buf += d.toString('utf8');
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const m = /^@@psql-done (\d+)$/.exec(line);
        if (m && this.waiters.has(m[1])) {
          const out = this.lines.join('\n');
          this.lines = [];
          this.waiters.get(m[1]).resolve(out);
          this.waiters.delete(m[1]);
        } else {
          this.lines.push(line);
        }
      }
    });
    this.child.stderr.on('data', (d) => { this.err = (this.err + d.toString('utf8')).slice(-2000); });
    this.child.on('close', (code) => {
      this.dead = true;
      for (const w of this.waiters.values()) w.reject(new Error(`psql session ended (exit ${code}): ${this.err.trim()}`));
      this.waiters.clear();
    });
    this.child.on('error', (e) => { this.dead = true; this.err += String(e); });
  }

  query(sql, { timeoutMs = 30_000 } = {}) {
    if (this.dead) return Promise.reject(new Error(`psql session is dead: ${this.err.trim()}`));
    const k = String(this.next++);
    let timer;
    const done = new Promise((resolvePromise, reject) => {
      this.waiters.set(k, { resolve: resolvePromise, reject });
      timer = setTimeout(() => {
        this.waiters.delete(k);
        this.kill();
        reject(new Error(`psql session: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    this.child.stdin.write(`${sql}\n\\echo @@psql-done ${k}\n`);
    return done.finally(() => clearTimeout(timer));
  }

  async scalar(sql, opts) {
    return (await this.query(sql, opts)).split('\n')[0].trim();
  }

  kill() {
    try { this.child.kill('SIGKILL'); } catch { /* gone */ }
  }

  async close() {
    if (this.dead) return;
    const closed = new Promise((r) => this.child.once('close', r));
    this.child.stdin.end();
    await within(closed, 5000);
    if (!this.dead) this.kill();
  }
}

// Background writer: feeds batches of transactions (sqlFor(seq) gives one transaction's SQL)
// to a psql session until stop(), one batch at a time. If the session dies (server restart,
// error), the error is recorded and a new session starts; what committed is read back from
// the database by the tests.
export function startWriter(cluster, { sqlFor, batch = 10, pauseMs = 0, db = DB, startSeq = 1 } = {}) {
  let stopped = false;
  let seq = startSeq;
  const errors = [];
  let batches = 0;
  let session = null;
  const loop = (async () => {
    while (!stopped) {
      if (!session || session.dead) session = new PsqlSession(cluster, { db });
      const parts = [];
      for (let i = 0; i < batch; i++) parts.push(sqlFor(seq++));
      try {
        await session.query(parts.join('\n'));
      } catch (e) {
        errors.push(e.message.split('\n')[0]);
        session.kill();
        session = null;
        await sleep(100);
      }
      batches++;
      if (pauseMs) await sleep(pauseMs);
    }
  })();
  return {
    get seq() { return seq; },
    get batches() { return batches; },
    errors,
    async stop() {
      stopped = true;
      await loop;
      await session?.close();
      session = null;
      return { lastSeq: seq - 1, batches, errors };
    },
  };
}

// ---------------------------------------------------------------------------------------
// An independent view of the stream: a second slot read with pg_recvlogical.

// "2026-11-26 04:35:40.477297+00" or "2026-11-26T04:35:40.477297Z" -> µs since the epoch.
export class Capture {
  constructor(cluster, { slot = 'audit', db = DB } = {}) {
    this.cluster = cluster;
    this.slot = slot;
    this.db = db;
    this.file = join(cluster.dir, `${slot}.jsonl`);
  }

  // Creates the slot: everything committed from now on will be in the capture.
  async create() {
    await this.cluster.createSlot(this.slot, { db: this.db });
    return this;
  }

  // Reads the slot up to the current WAL position (appending to the file) and parses it all.
  async read() {
    await this.cluster.recordSlot({ slot: this.slot, file: this.file, db: this.db });
    this.parsed = parseCapture(existsSync(this.file) ? readFileSync(this.file, 'utf8') : '');
    return this.parsed;
  }

  // Every {txn, change} of `table` whose row id is `id` (action I/U/D optional), in stream order.
  findAll(table, id, action) {
    const out = [];
    for (const txn of this.parsed.txns) {
      for (const change of txn.changes) {
        if (change.table === table && change.row && change.row.id === id && (!action || change.action === action)) {
          out.push({ txn, change });
        }
      }
    }
    return out;
  }

  find(table, id, action) {
    return this.findAll(table, id, action)[0] ?? null;
  }

  // The transaction that wrote row `id` of `table`.
  txnOf(table, id) {
    return this.find(table, id)?.txn ?? null;
  }
}

// ---------------------------------------------------------------------------------------
// Config and daemon.

// examples/walcast.toml with the test's database, slot, listener and secret file.
// `set` overrides more top-level keys by name (e.g. {project_access: 'token'}).
// `append` is TOML added at the end (a whole section, e.g. "[recovery]\nwindow_seconds = 0").
export function writeConfig({ dsn, slot, port, secretFile, set = {}, name = 'walcast', append = '' }) {
  let text = readFileSync(join(SOURCE_DIR, 'examples', 'walcast.toml'), 'utf8');
  const values = { dsn, slot, listen: `127.0.0.1:${port}`, jwt_secret_file: secretFile, ...set };
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const re = new RegExp(`^${key}\\s*=.*$`, 'm');
    if (!re.test(text)) throw new Error(`examples/walcast.toml has no key ${key}`);
    const toml = typeof value === 'string' ? JSON.stringify(value) : String(value);
    text = text.replace(re, `${key} = ${toml}`);
  }
  if (append) text += `\n${append}\n`;
  const file = join(work(), `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}.toml`);
  writeFileSync(file, text);
  return file;
}

function httpGet(port, path, timeoutMs = 3000) {
  return new Promise((resolvePromise) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET', agent: false,
      headers: { Connection: 'close' }, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolvePromise({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'),
        headers: res.headers }));
      res.on('error', (e) => resolvePromise({ status: 0, body: '', error: e.message }));
      res.on('close', () => resolvePromise({ status: 0, body: '', error: 'connection closed before the end' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolvePromise({ status: 0, body: '', error: e.message }));
    req.end();
  });
}

// Prometheus text -> Map of `name{labels}` (as printed) -> value text.
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    m.set(line.slice(0, sp), line.slice(sp + 1));
  }
  return m;
}

const allDaemons = [];

export class Daemon {
  // `wrapper`: a command that runs walcast (e.g. ['prlimit', '--nofile=256', '--']); it must
  // exec it, so the pid stays walcast's.
  constructor({ name, configFile, port, args, env, logFile, wrapper = [] }) {
    this.name = name;
    this.wrapper = wrapper;
    this.configFile = configFile;
    this.port = port;
    this.args = args;
    this.env = env;
    this.logFile = logFile;
    this.exitInfo = null;
  }

  get url() { return `http://127.0.0.1:${this.port}`; }
  get wsUrl() { return `ws://127.0.0.1:${this.port}/socket.io/?EIO=4&transport=websocket`; }

  spawn() {
    if (!existsSync(WALCAST_BIN)) throw new Error(`walcast binary not found at ${WALCAST_BIN} (set WALCAST_BIN)`);
    const fd = openSync(this.logFile, 'a');
    const argv = ['run', '--config', this.configFile, ...this.args];
    writeFileSync(this.logFile, `# ${WALCAST_BIN} ${argv.join(' ')}\n`, { flag: 'a' });
    const command = [...this.wrapper, WALCAST_BIN, ...argv];
    this.child = spawn(command[0], command.slice(1), { env: this.env, stdio: ['ignore', fd, fd] });
    // A daemon left running must not keep this process alive (the exit hook kills it).
    this.child.unref();
    closeSync(fd);
    this.pid = this.child.pid;
    this.startedAt = Date.now();
    liveDaemons.add(this);
    allDaemons.push(this);
    this.exited = new Promise((resolvePromise) => {
      this.child.on('exit', (code, signal) => {
        liveDaemons.delete(this);
        this.exitInfo = { code, signal, at: Date.now() };
        resolvePromise(this.exitInfo);
      });
      this.child.on('error', (e) => {
        liveDaemons.delete(this);
        this.exitInfo = { code: -1, signal: null, error: e.message, at: Date.now() };
        resolvePromise(this.exitInfo);
      });
    });
    return this;
  }

  get running() { return this.exitInfo === null; }

  log() {
    try { return readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }

  tail(lines = 60) {
    return this.log().split('\n').slice(-lines - 1).join('\n');
  }

  async healthz() {
    return (await httpGet(this.port, '/healthz')).status;
  }

  // Waits for GET /healthz to answer `status`; fails early if the daemon exits.
  async waitHealthz(status = 200, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    let last = null;
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new Error(`${this.name} exited (code ${this.exitInfo.code}, signal ${this.exitInfo.signal}) ` +
          `while waiting for /healthz ${status}; last /healthz ${last}`);
      }
      last = await this.healthz();
      if (last === status) return Date.now();
      await sleep(100);
    }
    throw new Error(`${this.name}: /healthz did not answer ${status} within ${timeoutMs} ms (last: ${last})`);
  }

  async metricsText() {
    const r = await httpGet(this.port, '/metrics');
    if (r.status !== 200) throw new Error(`GET /metrics answered ${r.status} ${r.error ?? ''}`);
    return r.body;
  }

  async metrics() {
    return parseMetrics(await this.metricsText());
  }

  // One metric as a Number; `labels` like '{reason="no_context"}'. Throws if absent.
  async metric(name, labels = '') {
    const m = await this.metrics();
    const key = `${name}${labels}`;
    if (!m.has(key)) throw new Error(`/metrics has no ${key}`);
    return Number(m.get(key));
  }

  // {rssKiB, hwmKiB} from /proc/<pid>/status.
  memory() {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const field = (f) => Number((new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(status) ?? [])[1]);
    return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
  }

  async kill9() {
    if (this.running) this.child.kill('SIGKILL');
    // The child is unref'd: a timer keeps the event loop alive until its exit is seen.
    let timer;
    const r = await Promise.race([this.exited, new Promise((res) => { timer = setTimeout(res, 10_000, null); })]);
    clearTimeout(timer);
    if (!r) throw new Error(`${this.name} (pid ${this.pid}) did not exit 10 s after SIGKILL`);
    return r;
  }

  // Sends `signal` and waits for the exit; kills -9 and throws if it takes longer than timeoutMs.
  async terminate({ signal = 'SIGTERM', timeoutMs = 15_000 } = {}) {
    if (!this.running) return this.exitInfo;
    const sentAt = Date.now();
    this.child.kill(signal);
    let t;
    const timer = new Promise((res) => { t = setTimeout(res, timeoutMs, null); });
    const r = await Promise.race([this.exited, timer]);
    clearTimeout(t);
    if (!r) {
      await this.kill9();
      throw new Error(`${this.name} did not exit within ${timeoutMs} ms of ${signal}; killed -9`);
    }
    return { ...r, ms: r.at - sentAt };
  }
}

// Starts `walcast run` on the cluster's database "app". Returns the Daemon once /healthz is
// 200 (unless waitHealthy is false). `args` are extra command-line flags.
export async function startDaemon({
  cluster, slot = 'walcast', secret, configSet = {}, configAppend = '', args = [], env = {}, waitHealthy = true,
  name = 'walcast', port, configFile, secretInEnv = true, timeoutMs = 30_000, wrapper,
}) {
  const listenPort = port ?? await freePort();
  let file = configFile;
  if (!file) {
    const secretFile = join(work(), `${name}-jwt.key`);
    writeFileSync(secretFile, secret);
    file = writeConfig({ dsn: cluster.dsn(DB), slot, port: listenPort, secretFile, set: configSet, name, append: configAppend });
  }
  const cleanEnv = { ...process.env };
  for (const k of Object.keys(cleanEnv)) if (k.startsWith('PG') || k.startsWith('WALCAST_')) delete cleanEnv[k];
  if (secretInEnv && secret !== undefined) cleanEnv.WALCAST_JWT_SECRET = secret;
  const d = new Daemon({
    name, configFile: file, port: listenPort, args, env: { ...cleanEnv, ...env }, wrapper,
    logFile: join(work(), `${name}-${allDaemons.length + 1}.log`),
  }).spawn();
  if (waitHealthy) {
    try {
      await d.waitHealthz(200, timeoutMs);
    } catch (e) {
      await d.kill9();
      e.message += `\n--- ${d.name} log ---\n${d.tail(80)}`;
      throw e;
    }
  }
  return d;
}

// Kills (-9) every daemon this process started that is still running; for after() hooks.
export async function killAllDaemons() {
  await Promise.all([...liveDaemons].map((d) => d.kill9()));
}

// ---------------------------------------------------------------------------------------
// JWTs (HS256 with node:crypto) and forged ones.

const b64url = (text) => Buffer.from(text).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);

export function signJwt(claims, secret, header = { alg: 'HS256', typ: 'JWT' }) {
  const h = b64url(JSON.stringify(header));
  const p = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

export function claimsFor({ sub, tenantId, projects, expIn = 3600, extra = {} }) {
  const c = { sub, tenantId, iat: nowS(), exp: nowS() + expIn, ...extra };
  if (projects) c.projects = projects;
  return c;
}

export function token(secret, who) {
  return signJwt(claimsFor(who), secret);
}

let rsaKey = null;

// Tokens that must all be refused with "unauthorized". name -> token (undefined = no token).
export function badTokens(secret, who = { sub: 'mallory', tenantId: 'acme' }) {
  const claims = claimsFor(who);
  const h = (obj) => b64url(JSON.stringify(obj));
  rsaKey ??= generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsHeader = h({ alg: 'RS256', typ: 'JWT' });
  const rsPayload = h(claims);
  const rsaSigned = `${rsHeader}.${rsPayload}.${rsaSign('sha256', Buffer.from(`${rsHeader}.${rsPayload}`), rsaKey.privateKey).toString('base64url')}`;
  const good = signJwt(claims, secret);
  const [gh, gp, gs] = good.split('.');
  return {
    'missing token': undefined,
    'empty token': '',
    'malformed: not a JWT': 'not-a-jwt',
    'malformed: three garbage parts': 'abc.def.ghi',
    'malformed: payload not JSON': `${gh}.${b64url('{"sub":')}.${createHmac('sha256', secret).update(`${gh}.${b64url('{"sub":')}`).digest('base64url')}`,
    'malformed: two parts': `${gh}.${gp}`,
    'malformed: token not a string': 12345,
    'wrong signature': signJwt(claims, `${secret}-but-not-quite`),
    'signature of another payload': `${gh}.${h({ ...claims, sub: 'admin' })}.${gs}`,
    'alg none, no signature': `${h({ alg: 'none', typ: 'JWT' })}.${gp}.`,
    'alg none, valid HMAC signature': signJwt(claims, secret, { alg: 'none', typ: 'JWT' }),
    'RS256-labelled, HMAC-signed with the secret': signJwt(claims, secret, { alg: 'RS256', typ: 'JWT' }),
    'RS256, signed with an RSA key': rsaSigned,
    'HS512-labelled': signJwt(claims, secret, { alg: 'HS512', typ: 'JWT' }),
    expired: signJwt({ ...claims, iat: nowS() - 7200, exp: nowS() - 120 }, secret),
    'no exp': signJwt(Object.fromEntries(Object.entries(claims).filter(([k]) => k !== 'exp')), secret),
    'nbf in the future': signJwt({ ...claims, nbf: nowS() + 3600 }, secret),
  };
}

// ---------------------------------------------------------------------------------------
// socket.io-client.

export class IoClient {
  constructor(socket, label) {
    this.socket = socket;
    this.label = label;
    this.events = [];            // {name, payload, offset, argc, at}
    this.disconnects = [];       // {reason, at}
    liveClients.add(this);
    socket.onAny((name, ...args) => {
      // With connection-state recovery on (the default) each event's last argument is its
      // offset, which is its eventId.
      this.events.push({ name, payload: args[0], offset: args[1], argc: args.length, at: Date.now() });
    });
    socket.on('disconnect', (reason) => this.disconnects.push({ reason, at: Date.now() }));
  }

  // Connects; resolves {ok: true, client} or {ok: false, error} (the connect_error message,
  // or 'timeout'). Reconnection is off: a test sees every disconnect.
  static attempt(url, auth, { label = 'client', timeoutMs = 10_000 } = {}) {
    const socket = io(url, {
      transports: ['websocket'], forceNew: true, reconnection: false, timeout: timeoutMs,
      ...(auth === null ? {} : { auth }),
    });
    const client = new IoClient(socket, label);
    return new Promise((resolvePromise) => {
      const timer = setTimeout(() => { client.close(); resolvePromise({ ok: false, error: 'timeout', client }); },
        timeoutMs + 1000);
      socket.once('connect', () => { clearTimeout(timer); resolvePromise({ ok: true, client }); });
      socket.once('connect_error', (err) => {
        clearTimeout(timer);
        resolvePromise({ ok: false, error: err?.message, data: err?.data, client });
      });
    });
  }

  static async connect(url, tok, opts = {}) {
    const r = await IoClient.attempt(url, { token: tok }, opts);
    if (!r.ok) throw new Error(`${opts.label ?? 'client'}: connect failed: ${r.error}`);
    return r.client;
  }

  async ack(event, arg, timeoutMs = 10_000) {
    return this.socket.timeout(timeoutMs).emitWithAck(event, arg);
  }

  join(project, timeoutMs) { return this.ack('join-project', project, timeoutMs); }
  leave(project, timeoutMs) { return this.ack('leave-project', project, timeoutMs); }

  named(prefix) { return this.events.filter((e) => e.name.startsWith(prefix)); }

  async waitEvent(pred, { timeoutMs = 15_000, what = 'an event' } = {}) {
    return waitUntil(() => this.events.find(pred), { timeoutMs, what: `${this.label}: ${what}` });
  }

  close() {
    liveClients.delete(this);
    this.socket.removeAllListeners?.();
    this.socket.close();
  }
}

// ---------------------------------------------------------------------------------------
// Raw WebSocket (ws) clients for hostile tests: frame by frame, no Socket.IO client logic.

export class RawClient {
  constructor(ws, label) {
    this.ws = ws;
    this.label = label;
    this.frames = [];            // {text, binary, at}
    this.closeInfo = null;       // {code, reason, at}
    this.nextAck = 1;
    this.autoPong = true;
    liveClients.add(this);
    this.closed = new Promise((resolvePromise) => {
      ws.on('close', (code, reason) => {
        liveClients.delete(this);
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        resolvePromise(this.closeInfo);
      });
    });
    ws.on('error', (e) => { this.error = e.message; });
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? null : data.toString('utf8');
      this.frames.push({ text, binary: isBinary, size: data.length, at: Date.now() });
      if (this.autoPong && text === '2') ws.send('3');
    });
  }

  // Opens a WebSocket. Rejects with {status} on an HTTP answer other than 101.
  static open(url, { label = 'raw', timeoutMs = 10_000 } = {}) {
    return new Promise((resolvePromise, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs, maxPayload: 256 << 20 });
      const client = new RawClient(ws, label);
      ws.once('open', () => { client.openedAt = Date.now(); resolvePromise(client); });
      ws.once('unexpected-response', (req, res) => {
        const e = new Error(`${label}: HTTP ${res.statusCode} instead of 101`);
        e.status = res.statusCode;
        res.resume();
        req.destroy();
        liveClients.delete(client);
        reject(e);
      });
      ws.once('error', (e) => reject(e));
    });
  }

  get isClosed() { return this.closeInfo !== null; }

  send(text) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  sendBinary(buf) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(buf, { binary: true });
  }

  texts() { return this.frames.filter((f) => !f.binary).map((f) => f.text); }

  async waitFrame(pred, { timeoutMs = 10_000, what = 'a frame' } = {}) {
    return waitUntil(() => this.frames.find((f) => f.text !== null && pred(f.text)),
      { timeoutMs, what: `${this.label}: ${what}` });
  }

  // The Engine.IO open packet, parsed.
  async openPacket() {
    const f = await this.waitFrame((t) => t.startsWith('0'), { what: 'the Engine.IO open packet' });
    return JSON.parse(f.text.slice(1));
  }

  // Socket.IO CONNECT with auth; resolves the server's answer frame ('40...' or '44...').
  async connect(auth) {
    await this.openPacket();
    this.send(auth === undefined ? '40' : `40${JSON.stringify(auth)}`);
    const f = await this.waitFrame((t) => t.startsWith('40') || t.startsWith('44'),
      { what: 'the CONNECT answer' });
    return f.text;
  }

  // Emits with an ack id; resolves the ack's argument array.
  async emitWithAck(name, arg, { timeoutMs = 10_000 } = {}) {
    const id = this.nextAck++;
    this.send(`42${id}${JSON.stringify([name, arg])}`);
    const f = await this.waitFrame((t) => t.startsWith(`43${id}[`), { timeoutMs, what: `ack ${id}` });
    return JSON.parse(f.text.slice(`43${id}`.length));
  }

  // Server events (42[...]) as {name, payload, text}.
  events() {
    return this.texts().filter((t) => t.startsWith('42[')).map((t) => {
      const arr = JSON.parse(t.slice(2));
      return { name: arr[0], payload: arr[1], text: t };
    });
  }

  pause() { this.ws._socket.pause(); }
  resume() { this.ws._socket.resume(); }

  close() {
    liveClients.delete(this);
    try { this.ws.terminate(); } catch { /* closed */ }
  }
}

export function closeAllClients() {
  for (const c of [...liveClients]) {
    try { c.close(); } catch { /* already closed */ }
  }
}

// ---------------------------------------------------------------------------------------
// Expected events (model, operation, id, rooms, payload) from the capture.

export function eventIdKey(eventId) {
  const m = /^([0-9A-F]+\/[0-9A-F]+):(\d+)$/.exec(String(eventId));
  if (!m) throw new Error(`not an eventId: ${JSON.stringify(eventId)}`);
  return [lsnToBigInt(m[1]), BigInt(m[2])];
}

export function compareEventIds(a, b) {
  const [la, ia] = eventIdKey(a);
  const [lb, ib] = eventIdKey(b);
  if (la !== lb) return la < lb ? -1 : 1;
  if (ia !== ib) return ia < ib ? -1 : 1;
  return 0;
}

export { lit, lsnToBigInt, freePort, micros, parseCapture };

// Drops a slot once no walsender holds it any more (a stopped daemon's walsender may linger).
export async function dropSlot(cluster, slot, { timeoutMs = 15_000 } = {}) {
  await waitUntil(async () => (await cluster.scalar(
    `SELECT count(*) FROM pg_replication_slots WHERE slot_name = ${lit(slot)} AND active;`)) === '0',
  { timeoutMs, what: `slot ${slot} to be released` });
  await cluster.dropSlot(slot, { db: DB });
}
