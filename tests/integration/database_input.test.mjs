// Hostile input from the database side: nothing any role can write into the WAL stops the
// stream or grows walcast without bound; a bad input costs its own transaction's events and
// the stream goes on. And a state directory that lost recovery.json never makes walcast send
// already-sent events as new.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

import {
  DB, dtest, startAppCluster, startDaemon, token, killAllDaemons, waitUntil, lit, sleep, work, freePort,
} from './lib/daemon.mjs';

const require = createRequire(import.meta.url);
const { io } = require('socket.io-client');

const SECRET = 'walcast-database-input-secret-32-bytes';
let cluster;
const sockets = [];

before(async () => {
  cluster = await startAppCluster({ setupSql: `
INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'One');
CREATE ROLE mallory LOGIN;  -- no table rights at all` });
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await killAllDaemons();
  await cluster?.stop();
});

function client(url, sub, { reconnection = true } = {}) {
  const socket = io(url, {
    transports: ['websocket'], reconnection, reconnectionDelay: 100, reconnectionDelayMax: 500,
    auth: (cb) => cb({ token: token(SECRET, { sub, tenantId: 'acme' }) }),
  });
  sockets.push(socket);
  const c = { socket, events: [], at: new Map(), connects: [], joined: 0 };
  socket.onAny((name, payload) => {
    if (!name.startsWith('task:')) return;
    c.events.push(payload.id);
    c.at.set(payload.id, Date.now());
  });
  socket.on('connect', () => {
    c.connects.push(socket.recovered);
    if (!socket.recovered) socket.emit('join-project', 'p1', (ack) => { if (ack?.ok) c.joined++; });
  });
  return c;
}

async function insert(id, title = "'ok'") {
  await cluster.psql(`BEGIN; SELECT walcast.set_context('writer', 'p1', 'acme');
    INSERT INTO "Task" (id, "projectId", title) VALUES (${lit(id)}, 'p1', ${title}); COMMIT;`, { db: DB });
}

dtest('poison pill from a LOGIN-only role: its transaction fails closed, the next one is delivered, a restart does not crash', async (t) => {
  const port = await freePort();
  const d = await startDaemon({ cluster, secret: SECRET, slot: 'poison', name: 'poison', port });
  const c = client(d.url, 'u-poison');
  await waitUntil(() => c.joined === 1, { what: 'join' });

  // The exact input that crash-looped walcast: a context of 200,000 '[' in a transactional
  // message, from a role with no rights but LOGIN.
  await cluster.psql(`SELECT pg_logical_emit_message(true, 'walcast', repeat('[', 200000));`,
    { db: DB, user: 'mallory' });
  // And the same inside a transaction that also writes a task: that transaction emits nothing.
  await cluster.psql(`BEGIN; SELECT pg_logical_emit_message(true, 'walcast', repeat('[', 200000));
    SELECT walcast.set_context('writer', 'p1', 'acme');
    INSERT INTO "Task" (id, "projectId", title) VALUES ('poisoned', 'p1', 'x'); COMMIT;`, { db: DB });
  const committed = Date.now();
  await insert('after-poison');
  await waitUntil(() => c.events.includes('after-poison'), { timeoutMs: 10_000, what: 'the transaction after the pill' });
  const resumeMs = c.at.get('after-poison') - committed;
  t.diagnostic(`stream resumed ${resumeMs} ms after the poison pill (next transaction's commit to the client)`);
  assert.ok(d.running, 'walcast is running');
  assert.ok(!c.events.includes('poisoned'), 'the poisoned transaction emitted nothing (fail closed)');
  assert.ok(await d.metric('walcast_malformed_contexts_total') >= 2);
  assert.equal(await d.metric('walcast_failed_transactions_total'), 2);
  assert.match(d.log(), /malformed emit context at \S+ in transaction xid \d+: context is 200000 bytes, over the 4096-byte limit/);
  assert.match(d.log(), /transaction xid \d+ \(commit \S+, end \S+\) emitted nothing: context is 200000 bytes/);

  // A restart re-reads nothing that crashes it: still streaming, still delivering.
  assert.equal((await d.terminate()).code, 0);
  const again = await startDaemon({ cluster, secret: SECRET, slot: 'poison', name: 'poison', port });
  await waitUntil(() => c.joined === 2, { timeoutMs: 20_000, what: 'the client to join again after the restart' });
  await insert('after-restart');
  await waitUntil(() => c.events.includes('after-restart'), { timeoutMs: 20_000, what: 'an event after the restart' });
  assert.ok(again.running);
  assert.equal(await again.healthz(), 200);
  await again.terminate();
});

dtest('a wal2json line over [limits] max_line_bytes is skipped unread: bounded memory, its transaction fails closed', async (t) => {
  const d = await startDaemon({
    cluster, secret: SECRET, slot: 'oversized', name: 'oversized', configSet: { max_line_bytes: 1048576 },
  });
  const c = client(d.url, 'u-big');
  await waitUntil(() => c.joined === 1, { what: 'join' });
  await insert('small-before');
  await waitUntil(() => c.events.includes('small-before'), { what: 'an event before' });
  const baseline = d.memory().rssKiB;

  // 60 MB lines: a row with a huge title, and a message from the LOGIN-only role.
  await insert('huge-row', `repeat('x', 60000000)`);
  await cluster.psql(`SELECT pg_logical_emit_message(true, 'walcast', repeat('y', 60000000));`, { db: DB, user: 'mallory' });
  await insert('small-after');
  await waitUntil(() => c.events.includes('small-after'), { timeoutMs: 60_000, what: 'the event after the huge lines' });
  const peak = d.memory().hwmKiB;
  t.diagnostic(`RSS ${baseline} KiB before, peak ${peak} KiB after two 60 MB lines (limit 1 MiB)`);
  assert.ok(!c.events.includes('huge-row'), 'the transaction of the oversized line emitted nothing');
  assert.equal(await d.metric('walcast_oversized_lines_total'), 2);
  assert.ok(await d.metric('walcast_failed_transactions_total') >= 1);
  assert.ok(peak - baseline < 16 * 1024, `peak RSS grew by ${peak - baseline} KiB for 60 MB lines`);
  assert.match(d.log(), /a wal2json line of \d+ bytes at \S+, over limits\.max_line_bytes \(1048576\): skipped unread; transaction xid \d+ fails closed/);
  await d.terminate();
});

dtest('recovery.json missing or corrupt after a crash: no session resumes and nothing already sent is sent again', async () => {
  const dir = mkdtempSync(join(work(), 'lost-state-'));
  const port = await freePort();
  const opts = {
    cluster, secret: SECRET, slot: 'lost_state', name: 'lost-state', port, configAppend: `[recovery]\nstate_dir = "${dir}"`,
  };
  for (const damage of ['missing', 'corrupt']) {
    const d = await startDaemon(opts);
    const old = client(d.url, `u-old-${damage}`);
    await waitUntil(() => old.joined >= 1, { what: 'join' });
    for (let i = 1; i <= 5; i++) await insert(`${damage}-sent-${i}`);
    await waitUntil(() => old.events.includes(`${damage}-sent-5`), { what: 'the events before the crash' });
    await sleep(1500);  // recovery.json written (once a second)
    await d.kill9();
    const file = join(dir, 'recovery.json');
    assert.ok(existsSync(file));
    if (damage === 'missing') rmSync(file);
    else writeFileSync(file, '{"version":2,"dispatched":"0/1","sessions":[{"pid":');  // a torn write

    const again = await startDaemon(opts);
    const fresh = client(again.url, `u-fresh-${damage}`);
    await waitUntil(() => fresh.joined >= 1 && old.joined >= 2, { timeoutMs: 20_000, what: 'both clients joined' });
    await insert(`${damage}-new`);
    await waitUntil(() => fresh.events.includes(`${damage}-new`) && old.events.includes(`${damage}-new`),
      { timeoutMs: 20_000, what: 'the new event at both clients' });
    await sleep(500);
    // The events of the held-back window were sent before the crash: never again as new.
    assert.deepEqual(fresh.events.filter((id) => id.startsWith(`${damage}-sent-`)), [], 'old events sent as new');
    assert.equal(old.events.filter((id) => id.startsWith(`${damage}-sent-`)).length, 5, 'no event twice');
    assert.equal(old.connects.at(-1), false, 'the old client is a fresh session (recovered === false)');
    const expected = damage === 'missing'
      ? /recovery\.json is missing; no session resumes, and what was committed before this start is not sent again/
      : /recovery\.json is unreadable \(.*\); set aside as .*recovery\.json\.corrupt-\d+/;
    assert.match(again.log(), expected);
    if (damage === 'corrupt') assert.ok(readdirSync(dir).some((f) => f.startsWith('recovery.json.corrupt-')));
    old.socket.disconnect();
    fresh.socket.disconnect();
    await again.terminate();
  }
});
