// Gapless reconnect: socket.io-client's connection-state recovery against the real
// daemon, through a TCP proxy this test owns and cuts, and across daemon restarts (SIGTERM
// and kill -9). Every client must end with every event of its rooms exactly once, in
// commit order, with socket.recovered === true after each reconnect.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, mkdirSync, openSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRequire } from 'node:module';
import { startCluster, freePort } from './lib/pg.mjs';

const require = createRequire(import.meta.url);
const { io } = require('socket.io-client');

const bin = process.env.WALCAST_BIN;
const src = process.env.WALCAST_SOURCE_DIR;
const SECRET = 'recovery-test-secret-of-32-bytes-long';
const work = mkdtempSync(join(tmpdir(), 'walcast-rec-'));
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  if (!process.env.WALCAST_KEEP_LOGS) rmSync(work, { recursive: true, force: true });
});

function b64url(x) {
  return Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
}
function token(claims, ttl = 3600) {
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url({ exp: Math.floor(Date.now() / 1000) + ttl, ...claims });
  return `${head}.${body}.${createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url')}`;
}

// A TCP proxy between clients and the daemon; cut() drops every connection through it.
function proxy(targetPort) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  })));
}

let cluster;
async function db() {
  if (cluster) return cluster;
  cluster = await startCluster();
  cleanups.push(() => cluster.stop());
  await cluster.createDatabase('app');
  await cluster.psql(readFileSync(join(src, 'tests/fixtures/app-schema.sql'), 'utf8'), { db: 'app' });
  await cluster.psql(readFileSync(join(src, 'sql/walcast.sql'), 'utf8'), { db: 'app' });
  await cluster.psql(`SELECT walcast.track('"Task"'); SELECT walcast.track('"Notification"');
    INSERT INTO "Project" VALUES ('p1', 'acme', 'One'), ('p2', 'acme', 'Two'), ('px', 'evil', 'Evil');`, { db: 'app' });
  return cluster;
}

class Daemon {
  constructor(name, { windowSeconds = 120, maxBytes = 64 << 20, slot = name } = {}) {
    this.name = name;
    this.stateDir = join(work, `${name}-state`);
    mkdirSync(this.stateDir, { recursive: true });
    this.windowSeconds = windowSeconds;
    this.maxBytes = maxBytes;
    this.slot = slot;
    this.log = join(work, `${name}.log`);
  }
  async start() {
    if (!this.port) this.port = await freePort();
    const c = await db();
    const config = readFileSync(join(src, 'examples/walcast.toml'), 'utf8')
      .replace(/^dsn = .*$/m, `dsn = "${c.dsn('app')}"`)
      .replace(/^slot = .*$/m, `slot = "${this.slot}"`)
      .replace(/^listen = .*$/m, `listen = "127.0.0.1:${this.port}"`)
      + `\n[recovery]\nwindow_seconds = ${this.windowSeconds}\nmax_bytes = ${this.maxBytes}\nstate_dir = "${this.stateDir}"\n`;
    const path = join(work, `${this.name}.toml`);
    writeFileSync(path, config);
    const fd = openSync(this.log, 'a');
    this.proc = spawn(bin, ['run', '--config', path], { env: { ...process.env, WALCAST_JWT_SECRET: SECRET }, stdio: ['ignore', fd, fd] });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    cleanups.push(async () => { this.proc.kill('SIGKILL'); });
    const deadline = Date.now() + 20000;
    for (;;) {
      try {
        const r = await fetch(`http://127.0.0.1:${this.port}/healthz`);
        if (r.status === 200) return;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`daemon did not become healthy:\n${readFileSync(this.log, 'utf8')}`);
      await sleep(100);
    }
  }
  async stop(signal) {
    this.proc.kill(signal);
    return this.exited;
  }
  rss() {
    const status = readFileSync(`/proc/${this.proc.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) * 1024;
  }
  metrics() {
    return fetch(`http://127.0.0.1:${this.port}/metrics`).then((r) => r.text());
  }
}

// A client that records each event's offset and every connect's `recovered`.
function client(port, claims, projects = []) {
  const socket = io(`http://127.0.0.1:${port}`, {
    transports: ['websocket'],
    auth: (cb) => cb({ token: claims.token ?? token(claims) }),
    reconnectionDelay: 100,
    reconnectionDelayMax: 300,
    timeout: 5000,
  });
  const c = { socket, events: [], connects: [], errors: [] };
  socket.onAny((name, payload, offset) => c.events.push({ name, payload, offset }));
  socket.on('connect', () => {
    c.connects.push(socket.recovered);
    if (!socket.recovered) for (const p of projects) socket.emit('join-project', p, () => {});
  });
  socket.on('connect_error', (e) => c.errors.push(e.message));
  cleanups.push(async () => socket.disconnect());
  c.ready = new Promise((resolve) => socket.once('connect', () => setTimeout(resolve, 200)));
  return c;
}

// `writers` psql processes, each committing `each` Task inserts in project `project`.
async function write(tag, { writers = 4, each = 60, project = 'p1', pause = 0.02 } = {}) {
  const c = await db();
  const jobs = [];
  for (let w = 0; w < writers; w++) {
    let sql = '';
    for (let i = 0; i < each; i++)
      sql += `BEGIN; SELECT walcast.set_context('writer${w}', '${project}', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('${tag}-${w}-${i}', '${project}', 'x'); COMMIT; SELECT pg_sleep(${pause});\n`;
    jobs.push(c.psql(sql, { db: 'app' }));
  }
  await Promise.all(jobs);
  return writers * each;
}

async function until(what, cond, ms = 30000, detail = () => '') {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} ${detail()}`);
    await sleep(50);
  }
}

function offsetKey(o) {
  const [lsn, idx] = o.split(':');
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n | BigInt(`0x${lo}`)) * 1000000n + BigInt(idx);
}

// Exactly once, in commit order, and every event carries its eventId as offset.
function assertExactlyOnceInOrder(c, tag, expected) {
  const mine = c.events.filter((e) => e.name === 'task:created' && String(e.payload.id).startsWith(`${tag}-`));
  const ids = mine.map((e) => e.payload.id);
  assert.equal(new Set(ids).size, ids.length, `duplicates: ${ids.length - new Set(ids).size}`);
  assert.equal(ids.length, expected, `missing ${expected - ids.length} of ${expected}`);
  for (const e of mine) assert.equal(e.offset, e.payload.eventId, 'the offset is the eventId');
  for (let i = 1; i < mine.length; i++)
    assert.ok(offsetKey(mine[i - 1].offset) < offsetKey(mine[i].offset), `out of commit order at ${i}`);
}

test('blip: 10 cuts while 4 writers commit; every event once, in order, recovered each time', async () => {
  const d = new Daemon('blip');
  await d.start();
  const p = await proxy(d.port);
  cleanups.push(async () => p.close());
  const a = client(p.port, { sub: 'ua', tenantId: 'acme' }, ['p1']);
  const b = client(p.port, { sub: 'ub', tenantId: 'acme' }, ['p1']);
  await Promise.all([a.ready, b.ready]);

  const writing = write('blip', { each: 75 });
  for (let i = 0; i < 10; i++) {
    await sleep(250);
    p.cut();
  }
  const total = await writing;
  for (const c of [a, b]) {
    await until('all events', () => c.events.filter((e) => String(e.payload?.id).startsWith('blip-')).length >= total, 30000,
      () => `got ${c.events.filter((e) => String(e.payload?.id).startsWith('blip-')).length} of ${total}; connects ${c.connects}; errors ${c.errors}`);
    await sleep(300);
    assertExactlyOnceInOrder(c, 'blip', total);
    assert.ok(c.connects.length >= 11, `reconnected ${c.connects.length - 1} times`);
    assert.equal(c.connects[0], false);
    assert.deepEqual(c.connects.slice(1), c.connects.slice(1).map(() => true), `recovered flags: ${c.connects}`);
  }
  const m = await d.metrics();
  assert.match(m, /walcast_recoveries_total (\d+)/);
  assert.ok(Number(/walcast_recoveries_total (\d+)/.exec(m)[1]) >= 20);
  assert.ok(Number(/walcast_recovery_buffer_events (\d+)/.exec(m)[1]) >= total);
  await d.stop('SIGTERM');
});

for (const signal of ['SIGTERM', 'SIGKILL']) {
  test(`restart with ${signal}: recovering clients miss nothing and get nothing twice, rooms back`, async () => {
    const d = new Daemon(`restart_${signal.toLowerCase()}`);
    await d.start();
    const a = client(d.port, { sub: 'ra', tenantId: 'acme' }, ['p1']);
    await a.ready;
    const tag = `rs${signal}`;
    const writing = write(tag, { each: 60, pause: 0.03 });
    await sleep(1200);
    const result = await d.stop(signal);
    if (signal === 'SIGTERM') assert.equal(result.code, 0);
    await sleep(500);  // writes go on while it is down
    await d.start();
    const total = await writing;
    await until('all events', () => a.events.filter((e) => String(e.payload?.id).startsWith(`${tag}-`)).length >= total, 40000);
    await sleep(500);
    assertExactlyOnceInOrder(a, tag, total);
    assert.deepEqual(a.connects.slice(1), a.connects.slice(1).map(() => true), `recovered flags: ${a.connects}`);
    // Rooms back: project:p1 events written after the restart arrive without a new join.
    assert.ok(a.connects.length >= 2);
    await d.stop('SIGTERM');
  });
}

test('security: a revoked project makes the reconnect a fresh session, expired token refused, foreign pid gets a fresh session', async () => {
  const d = new Daemon('security');
  await d.start();
  const p = await proxy(d.port);
  cleanups.push(async () => p.close());
  const c = await db();

  // Revoked during the outage: p2 moves to another tenant while the client is cut off. The
  // reconnect cannot get every missed event of its rooms back, so it is not a resume: the
  // client learns recovered === false, joins again (p2 is refused) and refetches.
  const a = client(p.port, { sub: 'sa', tenantId: 'acme' }, ['p1', 'p2']);
  await a.ready;
  await sleep(300);
  p.close();  // nothing gets through now: the client keeps retrying
  await c.psql(`UPDATE "Project" SET "tenantId" = 'other' WHERE id = 'p2';`, { db: 'app' });
  await write('revoked', { writers: 1, each: 3, project: 'p2', pause: 0 });
  await write('kept', { writers: 1, each: 3, project: 'p1', pause: 0 });
  const q = await proxy(d.port);
  cleanups.push(async () => q.close());
  a.socket.io.uri = `http://127.0.0.1:${q.port}`;
  a.socket.io.opts.port = String(q.port);
  a.socket.io.engine?.close();
  await until('reconnect', () => a.connects.length >= 2, 20000);
  assert.equal(a.connects[1], false, `a resume despite a revoked room: ${readFileSync(d.log, 'utf8')}`);
  await sleep(500);
  assert.equal(a.events.filter((e) => String(e.payload?.id).startsWith('revoked-')).length, 0, 'events of a revoked project');
  assert.equal(a.events.filter((e) => String(e.payload?.id).startsWith('kept-')).length, 0,
    'a fresh session replays nothing (the client refetches)');
  assert.match(readFileSync(d.log, 'utf8'), /fresh session instead of resume: a project room did not pass its access check again/);
  await write('after1', { writers: 1, each: 2, project: 'p1', pause: 0 });
  await write('after', { writers: 1, each: 2, project: 'p2', pause: 0 });
  await sleep(500);
  assert.equal(a.events.filter((e) => String(e.payload?.id).startsWith('after1-')).length, 2, 'p1 joined again');
  assert.equal(a.events.filter((e) => String(e.payload?.id).startsWith('after-')).length, 0, 'p2 joined after revocation');
  await c.psql(`UPDATE "Project" SET "tenantId" = 'acme' WHERE id = 'p2';`, { db: 'app' });

  // A foreign pid: evil presents acme's pid and offset; it gets a fresh session, no replay.
  const pid = a.socket._pid;
  assert.ok(pid, 'the CONNECT reply carried a pid');
  const evil = client(d.port, { token: null, sub: 'ev', tenantId: 'evil' });
  await evil.ready;
  evil.socket.disconnect();
  evil.socket._pid = pid;
  evil.socket._lastOffset = '0/0:0';
  evil.socket.connect();
  await until('evil reconnect', () => evil.connects.length >= 2);
  assert.equal(evil.connects[1], false, 'a foreign pid never resumes');
  await sleep(300);
  assert.ok(!evil.events.some((e) => e.payload?.tenantId === 'acme'), 'evil received an acme event');

  // An expired token on reconnect is refused.
  const short = client(q.port, { token: token({ sub: 'sx', tenantId: 'acme' }, 2) });
  await short.ready;
  await sleep(2500);
  short.socket.io.engine.close();
  await until('refusal', () => short.errors.includes('unauthorized'), 10000);
  await d.stop('SIGTERM');
});

test('bounds: away longer than the window is a fresh session; RSS stays within the buffer bytes', async () => {
  const d = new Daemon('bounds', { windowSeconds: 2, maxBytes: 4 << 20 });
  await d.start();
  const p = await proxy(d.port);
  cleanups.push(async () => p.close());
  const a = client(p.port, { sub: 'ba', tenantId: 'acme' }, ['p1']);
  await a.ready;
  await write('pre', { writers: 1, each: 2, pause: 0 });
  await sleep(300);
  const srv = p;
  srv.close();
  await sleep(3500);  // longer than the 2 s window
  const q = await proxy(d.port);
  cleanups.push(async () => q.close());
  a.socket.io.uri = `http://127.0.0.1:${q.port}`;
  a.socket.io.engine?.close();
  await until('reconnect', () => a.connects.length >= 2, 20000);
  assert.equal(a.connects[1], false, 'recovered after the window');

  // A burst five times the byte budget, as 40 transactions of 250 rows of ~2 KB: RSS
  // grows by about the budget plus a fixed overhead, not by the burst.
  const before = d.rss();
  const eventsTotal = async () => Number(/walcast_events_total (\d+)/.exec(await d.metrics())[1]);
  const eventsBefore = await eventsTotal();
  const c = await db();
  let burst = '';
  for (let t = 0; t < 40; t++)
    burst += `BEGIN; SELECT walcast.set_context('burst', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title) SELECT 'burst-${t}-' || g, 'p1', repeat('y', 2000) FROM generate_series(1, 250) g; COMMIT;\n`;
  await c.psql(burst, { db: 'app' });
  for (const deadline = Date.now() + 30000; (await eventsTotal()) - eventsBefore < 10000;) {
    assert.ok(Date.now() < deadline, 'the burst was not published within 30 s');
    await sleep(200);
  }
  const m = await d.metrics();
  const bytes = Number(/walcast_recovery_buffer_bytes (\d+)/.exec(m)[1]);
  assert.ok(bytes <= 4 << 20, `buffer holds ${bytes} bytes, budget 4 MiB`);
  assert.ok(Number(/walcast_recovery_buffer_evicted_total (\d+)/.exec(m)[1]) > 0, 'the byte budget evicted');
  const grown = d.rss() - before;
  assert.ok(grown < (4 << 20) + (16 << 20), `RSS grew by ${grown} bytes for a ~20 MB burst with a 4 MiB buffer`);
  await d.stop('SIGTERM');
});
