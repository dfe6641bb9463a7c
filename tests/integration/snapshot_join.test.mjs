// Load, then subscribe, without a gap. A writer commits inserts, updates and deletes
// continuously; readers, at random moments, read the project's tasks and walcast.snapshot()
// in one REPEATABLE READ transaction, connect, join the project with the token and apply
// the events. After the writer stops, every reader's board equals the table, no reader got
// an event twice, and every event a reader got was of a transaction its snapshot did not see.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import {
  DB, dtest, startAppCluster, startDaemon, token, killAllDaemons, waitUntil, sleep, startWriter, PsqlSession,
} from './lib/daemon.mjs';

const require = createRequire(import.meta.url);
const { io } = require('socket.io-client');

const SECRET = 'walcast-snapshot-join-secret-32-bytes';
const ITERATIONS = Number(process.env.WALCAST_SNAPSHOT_ITERATIONS ?? 200);
const PARALLEL = 8;
let cluster;
let daemon;
const sockets = [];

before(async () => {
  cluster = await startAppCluster({ setupSql: `
INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'One');
ALTER TABLE "Task" REPLICA IDENTITY FULL;  -- deletes carry projectId, so they reach project:p1
INSERT INTO "Task" (id, "projectId", title) SELECT 'seed-' || g, 'p1', 'seed' FROM generate_series(1, 20) g;` });
  // Token access answers a join on the next turn of the loop (a query takes a round trip to
  // the database), so joins can reach walcast while it is still behind their snapshot.
  daemon = await startDaemon({ cluster, secret: SECRET, name: 'snapshot',
    configSet: { project_access: 'token', max_send_buffer_bytes: 8 << 20 } });
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await killAllDaemons();
  await cluster?.stop();
});

// One transaction of the writer: an insert, an update or a delete in p1; every 25th a
// burst of 3,000 rows, which walcast reads over several turns of its loop, so that joins
// also reach it between the lines of a transaction their snapshot saw.
function writerSql(seq) {
  const ctx = `SELECT walcast.set_context('writer', 'p1', 'acme');`;
  const pick = `(SELECT id FROM "Task" WHERE "projectId" = 'p1' ORDER BY random() LIMIT 1)`;
  if (seq % 25 === 0) {
    return `BEGIN; ${ctx} INSERT INTO "Task" (id, "projectId", title)
      SELECT 'b-${seq}-' || g, 'p1', 'burst' FROM generate_series(1, 3000) g; COMMIT;`;
  }
  switch (seq % 3) {
    case 0: return `BEGIN; ${ctx} INSERT INTO "Task" (id, "projectId", title) VALUES ('w-${seq}', 'p1', 't${seq}'); COMMIT;`;
    case 1: return `BEGIN; ${ctx} UPDATE "Task" SET title = 'u${seq}' WHERE id = ${pick}; COMMIT;`;
    default: return `BEGIN; ${ctx} DELETE FROM "Task" WHERE id = ${pick}; COMMIT;`;
  }
}

// A JavaScript copy of PostgreSQL's rule, for the check (32-bit WAL xids against 64-bit
// snapshot xids: both are far below 2^32 in a fresh test cluster).
function parseToken(t) {
  const [, xmin, xmax, xip, lsn] = t.split(':');
  return { xmin: BigInt(xmin), xmax: BigInt(xmax), xip: new Set(xip ? xip.split(',').map(BigInt) : []), lsn };
}
function sees(snap, xid) {
  const x = BigInt(xid);
  if (x < snap.xmin) return true;
  if (x >= snap.xmax) return false;
  return !snap.xip.has(x);
}

async function readBoard(session) {
  const out = await session.query(`BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT coalesce(json_agg(json_build_object('id', id, 'title', title) ORDER BY id), '[]') FROM "Task" WHERE "projectId" = 'p1';
SELECT walcast.snapshot();
COMMIT;`);
  const [rows, tok] = out.split('\n').map((l) => l.trim()).filter(Boolean);
  return { board: new Map(JSON.parse(rows).map((r) => [r.id, r.title])), token: tok };
}

// A reader: read, wait a random moment, connect, join with the token, apply events. Every
// other reader is connected before it reads (an app re-reading after a reconnect), so that
// its join can reach walcast before walcast has published what the read saw.
async function reader(session, n) {
  const connectFirst = n % 2 === 0;
  const socket = io(daemon.url, {
    transports: ['websocket'], reconnection: false, forceNew: true, autoConnect: false,
    auth: { token: token(SECRET, { sub: `reader-${n}`, tenantId: 'acme', projects: ['p1'] }) },
  });
  sockets.push(socket);
  const connected = () => new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
    socket.connect();
  });
  if (connectFirst) await connected();
  const { board, token: snapToken } = await readBoard(session);
  const r = { n, board, snap: parseToken(snapToken), seen: new Set(), dups: [], seenBySnapshot: [], ack: null };
  socket.onAny((name, payload) => {
    if (!name.startsWith('task:')) return;
    if (r.seen.has(payload.eventId)) r.dups.push(payload.eventId);
    r.seen.add(payload.eventId);
    if (sees(r.snap, payload.xid)) r.seenBySnapshot.push(payload.eventId);
    if (payload.operation === 'deleted') r.board.delete(payload.data.id);
    else r.board.set(payload.data.id, payload.data.title);
  });
  if (!connectFirst) {
    await sleep(Math.random() * 60);
    await connected();
  }
  r.ack = await socket.timeout(10_000).emitWithAck('join-project', 'p1', { snapshot: snapToken });
  return r;
}

dtest(`${ITERATIONS} readers at random moments: read with walcast.snapshot(), join with the token, end equal to the table`, async (t) => {
  const writer = startWriter(cluster, { sqlFor: writerSql, batch: 1, pauseMs: 2 });
  // walcast is paused now and then (SIGSTOP for 20-40 ms), so that some readers read and
  // join while it is behind what their snapshot saw: their joins must hold those events back.
  let pausing = true;
  const pauser = (async () => {
    while (pausing) {
      await sleep(100 + Math.random() * 100);
      process.kill(daemon.pid, 'SIGSTOP');
      await sleep(20 + Math.random() * 20);
      process.kill(daemon.pid, 'SIGCONT');
    }
  })();
  const sessions = Array.from({ length: PARALLEL }, () => new PsqlSession(cluster));
  const readers = [];
  let next = 0;
  await Promise.all(sessions.map(async (session) => {
    while (next < ITERATIONS) {
      const n = next++;
      readers.push(await reader(session, n));
      await sleep(Math.random() * 30);
    }
  }));
  pausing = false;
  await pauser;
  const w = await writer.stop();
  await Promise.all(sessions.map((s) => s.close()));

  // Quiescence: a last transaction every reader must receive.
  await cluster.psql(`BEGIN; SELECT walcast.set_context('writer', 'p1', 'acme');
    INSERT INTO "Task" (id, "projectId", title) VALUES ('final', 'p1', 'final'); COMMIT;`, { db: DB });
  await waitUntil(() => readers.every((r) => r.board.has('final')), { timeoutMs: 60_000, what: 'every reader at the end' });
  const table = new Map(JSON.parse((await cluster.psql(`SELECT coalesce(json_agg(json_build_object('id', id, 'title', title)), '[]')
    FROM "Task" WHERE "projectId" = 'p1';`, { db: DB })).trim()).map((r) => [r.id, r.title]));

  let replayed = 0;
  for (const r of readers) {
    assert.deepEqual(r.ack, { ok: true, recovered: true }, `reader ${r.n}: join ack`);
    assert.deepEqual(r.dups, [], `reader ${r.n}: events twice`);
    assert.deepEqual(r.seenBySnapshot, [], `reader ${r.n}: events of transactions its snapshot saw`);
    assert.deepEqual([...r.board.entries()].sort(), [...table.entries()].sort(), `reader ${r.n}: board differs from the table`);
    replayed += r.seen.size;
  }
  const joins = await daemon.metric('walcast_snapshot_joins_total');
  const fromBuffer = await daemon.metric('walcast_snapshot_replayed_total');
  const filtered = await daemon.metric('walcast_snapshot_filtered_total');
  t.diagnostic(`${readers.length} readers, ${w.lastSeq} writer transactions; ${joins} snapshot joins; ` +
    `${fromBuffer} events sent from the buffer to cover the gap between read and join; ${filtered} live events ` +
    `held back because the reader's snapshot had them; ${replayed} events applied in all`);
  assert.equal(joins, ITERATIONS);
  assert.ok(fromBuffer > 0, 'some readers joined after transactions their read did not see');
  assert.ok(filtered > 0, 'some readers joined before walcast had published what their read saw');
});

dtest('a snapshot older than the recovery buffer is answered recovered:false; a bad token is refused', async () => {
  // Push the snapshot's xmin behind the buffer's horizon: a second daemon with a tiny buffer.
  const small = await startDaemon({ cluster, secret: SECRET, name: 'snapshot-small', slot: 'snapshot_small',
    configSet: { project_access: 'token' }, configAppend: '[recovery]\nmax_bytes = 4096' });
  const session = new PsqlSession(cluster);
  const { token: old } = await readBoard(session);
  for (let i = 0; i < 40; i++) {
    await cluster.psql(`BEGIN; SELECT walcast.set_context('writer', 'p1', 'acme');
      INSERT INTO "Task" (id, "projectId", title) VALUES ('old-${i}', 'p1', repeat('x', 500)); COMMIT;`, { db: DB });
  }
  await waitUntil(async () => (await small.metric('walcast_recovery_buffer_evicted_total')) > 0, { what: 'eviction' });
  const socket = io(small.url, { transports: ['websocket'], reconnection: false, forceNew: true,
    auth: { token: token(SECRET, { sub: 'late', tenantId: 'acme', projects: ['p1', 'p2'] }) } });
  sockets.push(socket);
  await new Promise((resolve) => socket.once('connect', resolve));
  assert.deepEqual(await socket.timeout(10_000).emitWithAck('join-project', 'p1', { snapshot: old }),
    { ok: true, recovered: false });
  assert.deepEqual(await socket.timeout(10_000).emitWithAck('join-project', 'p2', { snapshot: 'v1:1:x::0/0' }),
    { ok: false, error: 'invalid snapshot' });
  assert.equal(await small.metric('walcast_snapshot_misses_total'), 1);
  await session.close();
  await small.terminate();
});

dtest('a join with a snapshot while walcast reads a backlog ahead of delivery: what the snapshot did not see, each once', async (t) => {
  const BEFORE = 20_000, AFTER = 40_000;  // filler in p2 around three events of p1
  await cluster.psql(`INSERT INTO "Project" (id, "tenantId", name) VALUES ('p2', 'acme', 'Two') ON CONFLICT DO NOTHING;`, { db: DB });
  const d = await startDaemon({ cluster, secret: SECRET, name: 'snapshot-backlog', slot: 'snapshot_backlog',
    configSet: { project_access: 'token' } });
  const socket = io(d.url, { transports: ['websocket'], reconnection: false, forceNew: true,
    auth: { token: token(SECRET, { sub: 'backlog-reader', tenantId: 'acme', projects: ['p1'] }) } });
  sockets.push(socket);
  await new Promise((resolve) => socket.once('connect', resolve));
  const got = [];
  socket.onAny((name, payload) => { if (name.startsWith('task:')) got.push(payload.data.id); });
  const session = new PsqlSession(cluster);
  const { token: snap } = await readBoard(session);  // sees none of what follows
  await session.close();
  const base = await d.metric('walcast_events_total');

  // A backlog: walcast is stopped while the transactions are written, so its walsender fills
  // the socket and waits; p1's three come after the first 20,000 and are sent only once
  // walcast reads again, at least 600 ms after their commit.
  process.kill(d.pid, 'SIGSTOP');
  try {
    await cluster.psql(`SET synchronous_commit = off;
DO $$ BEGIN
  FOR i IN 1..${BEFORE + 3 + AFTER} LOOP
    PERFORM walcast.set_context('writer', CASE WHEN i BETWEEN ${BEFORE + 1} AND ${BEFORE + 3} THEN 'p1' ELSE 'p2' END, 'acme');
    INSERT INTO "Task" (id, "projectId", title)
      VALUES ('bl-' || i, CASE WHEN i BETWEEN ${BEFORE + 1} AND ${BEFORE + 3} THEN 'p1' ELSE 'p2' END, 'backlog');
    COMMIT;
  END LOOP;
END $$;`, { db: DB });
    await sleep(600);
  } finally {
    process.kill(d.pid, 'SIGCONT');
  }

  // The join reaches walcast while it reads the backlog ahead, with p1's events in its buffer:
  // the client's catch-up starts before them, so the join must not send them too.
  await waitUntil(async () => await d.metric('walcast_reading_ahead') === 1 &&
    await d.metric('walcast_events_total') >= base + BEFORE + 3, { timeoutMs: 60_000, intervalMs: 2, what: 'the backlog being read' });
  const ack = await socket.timeout(10_000).emitWithAck('join-project', 'p1', { snapshot: snap });
  const stillAhead = await d.metric('walcast_reading_ahead');
  await waitUntil(async () => await d.metric('walcast_reading_ahead') === 0 &&
    await d.metric('walcast_events_total') >= base + BEFORE + 3 + AFTER, { timeoutMs: 60_000, what: 'the backlog read' });
  await sleep(500);  // anything sent twice would arrive now
  const p1 = [1, 2, 3].map((k) => `bl-${BEFORE + k}`);
  t.diagnostic(`joined while reading ahead: ${stillAhead === 1}; events: ${JSON.stringify(got)}; ` +
    `read aheads ${await d.metric('walcast_read_aheads_total')}`);
  assert.deepEqual(ack, { ok: true, recovered: true });
  assert.equal(stillAhead, 1, 'the join was answered while the backlog was read ahead');
  assert.deepEqual(got, p1, 'the events the snapshot did not see, each once, in commit order');
  socket.disconnect();
  await d.terminate();
});
