// walcast run, durability and lifecycle ("Durability", "/healthz", "/metrics",
// "Lifecycle"): kill -9 while transactions commit, write while it is down, restart with
// --record: the old process's deliveries plus the new process's record cover every committed
// transaction, and confirmed_flush_lsn never passed an undispatched transaction. SIGTERM:
// exit 0, clients closed with 1001 ("transport close"), a last status update. pg_ctl restart
// -m fast under load: the daemon reconnects by itself and a client connected throughout gets
// every event. PostgreSQL down: /healthz 503, up again: 200. /metrics counts. A slot made
// with another plugin is refused.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  DB, dtest, startAppCluster, startDaemon, token, IoClient, RawClient, Capture, closeAllClients, killAllDaemons,
  waitUntil, startWriter, lsnToBigInt, lit, sleep, work, parseCapture, dropSlot, PsqlSession, within,
} from './lib/daemon.mjs';

// Recovery off: the slot is then confirmed right after dispatch, which these tests watch
// (with the default window the confirmation trails dispatch by 120 s; recovery.test.mjs
// covers that mode).
const noWindow = '[recovery]\nwindow_seconds = 0';
const SECRET = 'walcast-durability-secret-32-bytes-long';
const SLOT = 'walcast';

let cluster;
let capture;

const ctxSql = (actor, project, tenant) =>
  `SELECT walcast.set_context(${lit(actor)}, ${lit(project)}, ${lit(tenant)});`;
const taskTxn = (id) => `BEGIN; ${ctxSql('writer', 'pdur', 'acme')}
INSERT INTO "Task" (id, "projectId", title) VALUES ('${id}', 'pdur', 'durable ${id}');
COMMIT;`;

async function committedIds(prefix) {
  const out = await cluster.psql(`SELECT id FROM "Task" WHERE id LIKE ${lit(`${prefix}%`)} ORDER BY id;`, { db: DB });
  return out.split('\n').map((l) => l.trim()).filter(Boolean);
}

const CONFIRMED_SQL = `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = ${lit(SLOT)};`;

async function slotConfirmed(session) {
  const v = session ? await session.scalar(CONFIRMED_SQL) : await cluster.scalar(CONFIRMED_SQL);
  return v ? lsnToBigInt(v) : null;
}

const idsOf = (client) => new Set(client.events.filter((e) => e.name === 'task:created').map((e) => e.payload.id));

// The capture transaction that inserted Task `id`.
function txnOfTask(id) {
  const t = capture.txnOf('Task', id);
  assert.ok(t, `capture has no transaction for Task ${id}`);
  return t;
}

// Every received task:created event carries the eventId/lsn/xid of its transaction.
function checkEventIds(client) {
  for (const e of client.events.filter((x) => x.name === 'task:created')) {
    const t = txnOfTask(e.payload.id);
    assert.equal(e.payload.eventId, `${t.end}:0`, `${client.label}: eventId of ${e.payload.id}`);
    assert.equal(e.payload.lsn, t.end);
    assert.equal(e.payload.xid, t.xid);
  }
}

before(async () => {
  cluster = await startAppCluster({ setupSql: `
INSERT INTO "Project" (id, "tenantId", name) VALUES ('pdur', 'acme', 'Durable');` });
  capture = await new Capture(cluster, { slot: 'audit' }).create();
});

after(async () => {
  closeAllClients();
  await killAllDaemons();
  await cluster?.stop();
});

dtest('kill -9 while committing, write while down, restart with --record: nothing missing; confirmed_flush_lsn never ahead of dispatch', async (t) => {
  const d1 = await startDaemon({ cluster, secret: SECRET, name: 'dur1', configAppend: noWindow });
  const c = await IoClient.connect(d1.url, token(SECRET, { sub: 'c1', tenantId: 'acme' }), { label: 'old-process client' });
  assert.deepEqual(await c.join('pdur'), { ok: true });

  // Sample the slot's confirmed_flush_lsn all along.
  const samples = [];
  let sampling = true;
  const sampler = (async () => {
    let session = new PsqlSession(cluster, { db: 'postgres' });
    while (sampling) {
      try {
        if (session.dead) session = new PsqlSession(cluster, { db: 'postgres' });
        const v = await slotConfirmed(session);
        if (v !== null) samples.push({ at: Date.now(), lsn: v });
      } catch { /* keep sampling */ }
      await sleep(10);
    }
    await session.close();
  })();

  const writer = startWriter(cluster, { sqlFor: (s) => taskTxn(`d-${String(s).padStart(6, '0')}`), batch: 5 });
  try {
    await waitUntil(() => c.events.length >= 150, { timeoutMs: 30_000, what: '150 events before the kill' });
    // Kill right after the daemon moved the slot forward while transactions keep committing
    // (status updates come at least every 10 s).
    await waitUntil(() => samples.length > 1 && samples[samples.length - 1].lsn > samples[0].lsn,
      { timeoutMs: 20_000, intervalMs: 5, what: 'the daemon to confirm progress (confirmed_flush_lsn to advance)' });
    const killed = await d1.kill9();
    assert.equal(killed.signal, 'SIGKILL');
    const killedAt = Date.now();
    const receivedAtKill = c.events.length;
    await sleep(1500);   // the writer keeps committing while the daemon is down
    const x = await slotConfirmed();   // final: nobody confirms for the dead process any more
    sampling = false;
    await sampler;
    const writtenWhileDown = writer.seq;

    // Restart with --record.
    const record = join(work(), 'dur2.record.jsonl');
    const d2 = await startDaemon({ cluster, secret: SECRET, name: 'dur2', args: ['--record', record], configAppend: noWindow });
    await sleep(800);   // the writer goes on while the new process catches up
    const c2 = await IoClient.connect(d2.url, token(SECRET, { sub: 'c2', tenantId: 'acme' }), { label: 'new-process client' });
    assert.deepEqual(await c2.join('pdur'), { ok: true });
    const joinedAt = Date.now();
    await sleep(800);
    const w = await writer.stop();
    assert.ok(w.lastSeq > writtenWhileDown, 'transactions committed after the restart too');
    await cluster.psql(taskTxn('d-final'), { db: DB });
    await c2.waitEvent((e) => e.payload?.id === 'd-final', { timeoutMs: 30_000, what: 'd-final from the new process' });

    // Lifecycle: SIGTERM with a Socket.IO client and a raw client connected.
    const r = await RawClient.open(d2.wsUrl, { label: 'raw at SIGTERM' });
    assert.match(await r.connect({ token: token(SECRET, { sub: 'r', tenantId: 'acme' }) }), /^40\{/);
    const exit = await d2.terminate({ timeoutMs: 15_000 });
    assert.equal(exit.code, 0, `exit code after SIGTERM (signal ${exit.signal})`);
    assert.equal(exit.signal, null);
    await r.closed;
    assert.equal(r.closeInfo.code, 1001, 'raw client closed with 1001 (going away)');
    await waitUntil(() => c2.disconnects.length > 0, { timeoutMs: 5000, what: 'socket.io client disconnect' });
    assert.equal(c2.disconnects[0].reason, 'transport close', 'socket.io-client sees "transport close" (it will reconnect)');
    const finalTxn = (await capture.read(), txnOfTask('d-final'));
    const confirmedAfterExit = await slotConfirmed();
    assert.ok(confirmedAfterExit >= lsnToBigInt(finalTxn.end),
      `a last status update confirmed everything dispatched: confirmed_flush_lsn ${confirmedAfterExit.toString(16)} < ` +
      `${finalTxn.end} (end of d-final)`);

    // Coverage: old deliveries + new record = every committed transaction.
    assert.ok(existsSync(record), '--record file exists');
    const recText = readFileSync(record, 'utf8');
    const recLines = recText.split('\n').filter((l) => l.trim() !== '');
    for (const [i, l] of recLines.entries()) {
      assert.doesNotThrow(() => JSON.parse(l), `--record line ${i + 1} is raw wal2json JSON: ${l.slice(0, 120)}`);
    }
    const rec = parseCapture(recText);
    const recIds = new Set();
    for (const t of rec.txns) for (const ch of t.changes) if (ch.table === 'Task' && ch.action === 'I') recIds.add(ch.row.id);
    const oldIds = idsOf(c);
    const committed = await committedIds('d-');
    assert.ok(committed.length > 200, `${committed.length} transactions committed`);
    const missing = committed.filter((id) => !oldIds.has(id) && !recIds.has(id));
    t.diagnostic(`committed ${committed.length}; delivered by the killed process ${oldIds.size}; in the new ` +
      `process's record ${recIds.size}; confirmed_flush_lsn at the kill ${x.toString(16)}; ${samples.length} samples`);
    assert.deepEqual(missing, [], `committed transactions neither delivered by the old process nor in the new ` +
      `process's --record (old delivered ${oldIds.size}, record has ${recIds.size}, committed ${committed.length}; ` +
      `confirmed_flush_lsn at the kill ${x.toString(16)})`);

    // confirmed_flush_lsn never passed a transaction the old process had not dispatched.
    const notDispatched = capture.parsed.txns
      .filter((t) => lsnToBigInt(t.end) <= x)
      .flatMap((t) => t.changes.filter((ch) => ch.table === 'Task' && ch.action === 'I' && ch.row.id.startsWith('d-'))
        .map((ch) => `${ch.row.id}@${t.end}`))
      .filter((s) => !oldIds.has(s.split('@')[0]));
    assert.deepEqual(notDispatched, [], `transactions at or below confirmed_flush_lsn ${x.toString(16)} that the ` +
      `killed process never delivered (it received ${receivedAtKill} events before the kill at ${killedAt})`);
    for (let i = 1; i < samples.length; i++) {
      assert.ok(samples[i].lsn >= samples[i - 1].lsn,
        `confirmed_flush_lsn went backwards: ${samples[i - 1].lsn.toString(16)} -> ${samples[i].lsn.toString(16)}`);
    }
    assert.ok(samples.length > 20, 'enough samples');

    assert.ok(rec.txns.length > 0, 'the record has whole transactions (B ... C)');

    // The new process's client got every transaction that started after it joined.
    const created = (await cluster.psql(`SELECT id, (extract(epoch from "createdAt") * 1000)::bigint FROM "Task"
      WHERE id LIKE 'd-%' ORDER BY id;`, { db: DB })).trim().split('\n').map((l) => l.split('|'));
    const newIds = idsOf(c2);
    const lateMissing = created.filter(([id, ms]) => Number(ms) > joinedAt && !newIds.has(id)).map(([id]) => id);
    assert.deepEqual(lateMissing, [], 'transactions committed after the new client joined, not delivered to it');
    checkEventIds(c);
    checkEventIds(c2);
  } finally {
    sampling = false;
    await sampler;
    await writer.stop();
  }
});

dtest('pg_ctl restart -m fast under load, then PostgreSQL down and up: reconnects by itself, /healthz, /metrics', async () => {
  const d = await startDaemon({ cluster, secret: SECRET, name: 'dur3', configAppend: noWindow });
  try {
    const c = await IoClient.connect(d.url, token(SECRET, { sub: 'c3', tenantId: 'acme' }), { label: 'connected throughout' });
    assert.deepEqual(await c.join('pdur'), { ok: true });
    assert.equal(await d.metric('walcast_streaming'), 1);

    // Restart under load.
    const writer = startWriter(cluster, { sqlFor: (s) => taskTxn(`r-${String(s).padStart(6, '0')}`), batch: 5 });
    let restartAt;
    let backAt;
    try {
      await waitUntil(() => c.events.length >= 100, { timeoutMs: 30_000, what: '100 events before the restart' });
      restartAt = Date.now();
      await cluster.restartServer({ mode: 'fast' });
      backAt = Date.now();
      await sleep(2500);
    } finally {
      await writer.stop();
    }
    await d.waitHealthz(200, 45_000);
    await cluster.psql(taskTxn('r-final'), { db: DB });
    await c.waitEvent((e) => e.payload?.id === 'r-final', { timeoutMs: 45_000, what: 'r-final after the restart' });
    const rows = (await cluster.psql(`SELECT id, (extract(epoch from "createdAt") * 1000)::bigint FROM "Task"
      WHERE id LIKE 'r-%' ORDER BY id;`, { db: DB })).trim().split('\n').map((l) => l.split('|'));
    const got = idsOf(c);
    const afterRestart = rows.filter(([, ms]) => Number(ms) >= restartAt);
    assert.ok(afterRestart.length > 20, `${afterRestart.length} transactions committed after the server came back`);
    assert.deepEqual(afterRestart.filter(([id]) => !got.has(id)).map(([id]) => id), [],
      `committed after the server came back (restart ${restartAt}..${backAt}) but not delivered`);
    assert.deepEqual(rows.filter(([id]) => !got.has(id)).map(([id]) => id), [],
      'committed (before or after the restart) but never delivered to a client connected throughout');
    assert.equal(c.disconnects.length, 0, 'the client stayed connected');
    await capture.read();
    checkEventIds(c);

    // Down: 503 and walcast_streaming 0 while /metrics still answers; up: 200 again.
    const reconnectsBefore = await d.metric('walcast_replication_reconnects_total').catch(() => null);
    await cluster.stopServer({ mode: 'fast' });
    await d.waitHealthz(503, 15_000);
    assert.equal(await d.metric('walcast_streaming'), 0);
    await sleep(2000);
    assert.equal(await d.healthz(), 503, '/healthz stays 503 while PostgreSQL is down');
    assert.ok(d.running, 'the daemon keeps running while PostgreSQL is down');
    await cluster.startServer();
    await d.waitHealthz(200, 45_000);
    assert.equal(await d.metric('walcast_streaming'), 1);
    if (reconnectsBefore !== null) {
      assert.ok(await d.metric('walcast_replication_reconnects_total') > reconnectsBefore, 'reconnects counted');
    }
    await cluster.psql(taskTxn('r-after-start'), { db: DB });
    await c.waitEvent((e) => e.payload?.id === 'r-after-start', { timeoutMs: 20_000, what: 'r-after-start' });
    // The project-access connection came back too.
    // (Checked at the end, so the /metrics checks below run either way.)
    const n = await IoClient.connect(d.url, token(SECRET, { sub: 'late', tenantId: 'acme' }), { label: 'late joiner' });
    const lateJoin = await n.join('pdur');

    // /metrics counts what happened.
    const distinct = new Set(c.events.map((e) => e.payload.eventId));
    const m = await d.metrics();
    const num = (k) => {
      assert.ok(m.has(k), `/metrics has ${k}`);
      return Number(m.get(k));
    };
    assert.equal(num('walcast_clients'), 2, 'walcast_clients with two clients connected');
    assert.ok(num('walcast_events_total') >= distinct.size, `walcast_events_total ${num('walcast_events_total')} >= ${distinct.size} delivered`);
    assert.ok(num('walcast_transactions_total') >= distinct.size, 'walcast_transactions_total');
    for (const r of ['no_context', 'suppressed', 'not_routed', 'room_unresolved', 'truncate']) {
      num(`walcast_dropped_changes_total{reason="${r}"}`);
    }
    for (const k of ['walcast_lag_bytes', 'walcast_slow_consumer_closes_total', 'walcast_auth_failures_total',
      'walcast_oversized_frame_closes_total', 'walcast_protocol_errors_total', 'walcast_connect_timeouts_total']) {
      assert.ok(num(k) >= 0, k);
    }
    n.close();
    await waitUntil(async () => (await d.metric('walcast_clients')) === 1, { timeoutMs: 5000, what: 'walcast_clients back to 1' });

    // Once idle, the slot is confirmed up to the last transaction, and the gauge agrees.
    await capture.read();
    const last = txnOfTask('r-after-start');
    await waitUntil(async () => (await slotConfirmed()) >= lsnToBigInt(last.end),
      { timeoutMs: 15_000, what: `confirmed_flush_lsn to reach ${last.end} (status update within 10 s)` });
    const slotNow = await slotConfirmed();
    const gauge = BigInt((await d.metrics()).get('walcast_confirmed_lsn'));
    assert.ok(gauge >= slotNow, `walcast_confirmed_lsn ${gauge.toString(16)} >= slot's ${slotNow.toString(16)}`);
    assert.deepEqual(lateJoin, { ok: true },
      'the first join-project (query access) after PostgreSQL restarted, for a project of the token\'s tenant');
  } finally {
    const r = await d.terminate();
    assert.equal(r.code, 0, 'exit code after SIGTERM');
  }
});

dtest('SIGINT also exits 0', async () => {
  const d = await startDaemon({ cluster, secret: SECRET, name: 'dur4' });
  const r = await d.terminate({ signal: 'SIGINT' });
  assert.equal(r.code, 0);
});

dtest('a slot that exists with another plugin is refused with a clear message and a non-zero exit', async () => {
  await cluster.createSlot('wrong_plugin', { db: DB, plugin: 'test_decoding' });
  const d = await startDaemon({ cluster, secret: SECRET, name: 'wrong-plugin', args: ['--slot', 'wrong_plugin'], waitHealthy: false });
  const exit = await within(d.exited, 30_000);
  if (!exit) {
    await d.kill9();
    assert.fail('the daemon kept running on a test_decoding slot for 30 s');
  }
  assert.notEqual(exit.code, 0, 'non-zero exit');
  assert.match(d.log(), /test_decoding/, 'the message names the slot\'s plugin');
  assert.equal(await d.healthz(), 0, 'nothing listens any more');
  await dropSlot(cluster, 'wrong_plugin');
});
