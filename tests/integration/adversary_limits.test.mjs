// Fair shares and protocol abuse, against the real daemon and PostgreSQL: one user's
// connections, access checks and resumable sessions are capped so that other users are
// served (limits.max_connections_per_user, max_access_checks_per_user,
// max_detached_per_user); a join refused for load says "busy", one refused by the database
// says "forbidden"; a second Socket.IO CONNECT, also one sent while a resume is being
// checked, is a protocol error and never accepts a session twice.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  dtest, startAppCluster, token, IoClient, RawClient, closeAllClients, killAllDaemons, waitUntil, sleep, dropSlot,
  within,
} from './lib/daemon.mjs';
import { metricOr0, startDaemonWith } from './lib/adversary.mjs';

const SECRET = 'walcast-adversary-limits-secret-32-bytes';
const HOG_PROJECTS = 400;
// project_access_sql that takes 200 ms per check.
const SLOW_ACCESS_SQL = 'SELECT 1 FROM "Project" WHERE id = $1 AND "tenantId" = $2 AND pg_sleep(0.2) IS NOT NULL';

let cluster;

before(async () => {
  cluster = await startAppCluster({ setupSql: `
INSERT INTO "Project" (id, "tenantId", name) SELECT 'pa' || g, 'acme', 'acme ' || g FROM generate_series(1, ${HOG_PROJECTS}) g;
INSERT INTO "Project" (id, "tenantId", name) VALUES ('pb', 'beta', 'Beta'), ('pz', 'zeta', 'Zeta'), ('pr', 'acme', 'Resume');` });
});

after(async () => {
  closeAllClients();
  await killAllDaemons();
  await cluster?.stop();
});

const auth = (sub, tenantId = 'acme') => ({ token: token(SECRET, { sub, tenantId }) });

// A raw client past CONNECT; returns it with the CONNECT reply ({sid, pid}).
async function rawConnected(daemon, label, sub, tenantId) {
  const c = await RawClient.open(daemon.wsUrl, { label });
  const answer = await c.connect(auth(sub, tenantId));
  assert.match(answer, /^40\{"sid":/, `${label}: CONNECT accepted (${answer})`);
  c.reply = JSON.parse(answer.slice(2));
  return c;
}

async function stop(daemon, slot) {
  closeAllClients();
  const r = await daemon.terminate();
  assert.equal(r.code, 0);
  await dropSlot(cluster, slot);
}

dtest('limits.max_connections_per_user = 5: the 6th CONNECT gets "too many connections"; another user connects', async (t) => {
  const slot = 'walcast_per_user';
  const daemon = await startDaemonWith({ cluster, secret: SECRET, slot, name: 'per-user',
    sections: { limits: { max_connections_per_user: 5 } } });
  const mine = [];
  for (let i = 0; i < 5; i++) mine.push(await IoClient.connect(daemon.url, auth('many').token, { label: `many-${i}` }));

  const extra = await RawClient.open(daemon.wsUrl, { label: 'many-raw' });
  assert.equal(await extra.connect(auth('many')), '44{"message":"too many connections"}');
  const viaIo = await IoClient.attempt(daemon.url, auth('many'), { label: 'many-io', timeoutMs: 5000 });
  viaIo.client.close();
  assert.equal(viaIo.ok, false);
  assert.equal(viaIo.error, 'too many connections');

  // Another user is unaffected, and so are the five.
  const other = await IoClient.connect(daemon.url, auth('someone-else').token, { label: 'other' });
  assert.deepEqual(await other.join('pa1'), { ok: true });
  for (const c of mine) assert.equal(c.socket.connected, true);

  // A connection that leaves makes room for one more.
  mine.pop().close();
  const again = await waitUntil(async () => {
    const r = await IoClient.attempt(daemon.url, auth('many'), { label: 'many-again', timeoutMs: 3000 });
    if (!r.ok) r.client.close();
    return r.ok ? r.client : null;
  }, { timeoutMs: 10_000, what: 'a 5th connection after one left' });
  assert.equal(again.socket.connected, true);
  const refusals = await daemon.metric('walcast_user_connection_refusals_total');
  t.diagnostic(`walcast_user_connection_refusals_total ${refusals}`);
  assert.ok(refusals >= 2, `walcast_user_connection_refusals_total ${refusals}`);
  await stop(daemon, slot);
});

dtest('access checks: one user flooding join-project gets "busy" for its excess; another tenant\'s join is answered ok within seconds; a foreign project is "forbidden"', async (t) => {
  const slot = 'walcast_access';
  const daemon = await startDaemonWith({ cluster, secret: SECRET, slot, name: 'access',
    sections: { auth: { project_access_sql: SLOW_ACCESS_SQL }, limits: { max_access_checks_per_user: 4 } } });
  const other = await IoClient.connect(daemon.url, auth('bee', 'beta').token, { label: 'bee' });

  // The hog: 10 connections, 16 joins each (a client's own cap on checks in flight), all at once.
  const CONNECTIONS = 10;
  const PER_CONNECTION = 16;
  const hogs = [];
  for (let i = 0; i < CONNECTIONS; i++) hogs.push(await rawConnected(daemon, `hog-${i}`, 'hog'));
  const busyBefore = await metricOr0(daemon, 'walcast_project_joins_busy_total');
  let n = 0;
  const sentAt = Date.now();
  for (const h of hogs) {
    for (let j = 0; j < PER_CONNECTION; j++) h.send(`42${h.nextAck++}${JSON.stringify(['join-project', `pa${++n}`])}`);
  }
  // Meanwhile a user of another tenant joins its project.
  const otherStart = Date.now();
  const otherAnswer = await other.join('pb', 20_000);
  const otherMs = Date.now() - otherStart;

  const acks = (h) => h.texts().filter((x) => /^43\d+\[/.test(x)).map((x) => JSON.parse(x.replace(/^43\d+/, ''))[0]);
  await waitUntil(() => hogs.every((h) => acks(h).length >= PER_CONNECTION),
    { timeoutMs: 60_000, what: `answers to all ${n} hog joins` });
  const answers = hogs.flatMap(acks);
  const count = (pred) => answers.filter(pred).length;
  const ok = count((a) => a?.ok === true);
  const busy = count((a) => a?.ok === false && a.error === 'busy');
  const forbidden = count((a) => a?.ok === false && a.error === 'forbidden');
  t.diagnostic(`hog: ${n} joins, all answered ${Date.now() - sentAt} ms after the first was sent: ${ok} ok, ${busy} busy, ${forbidden} forbidden, ` +
    `${answers.length - ok - busy - forbidden} other; bee's join answered ${JSON.stringify(otherAnswer)} in ${otherMs} ms`);

  assert.deepEqual(otherAnswer, { ok: true }, 'the other tenant\'s join');
  assert.ok(otherMs <= 3000, `the other tenant's join took ${otherMs} ms behind the hog's queue`);
  assert.equal(forbidden, 0, 'a join refused for load must say "busy", never "forbidden"');
  assert.equal(ok + busy, n, `every hog answer is ok or busy: ${JSON.stringify(answers.filter((a) => a?.ok !== true && a?.error !== 'busy'))}`);
  assert.ok(ok >= 1, 'the hog\'s first joins are checked and allowed');
  assert.ok(busy >= n - 4 * 4, `${busy} busy of ${n}: more than a few of the hog's checks were queued`);
  assert.ok(await metricOr0(daemon, 'walcast_project_joins_busy_total') - busyBefore >= busy, 'busy answers counted');

  // Busy is not forbidden: once the queue drains, the same user joins a project it refused as busy.
  const h = hogs[0];
  const retried = await h.emitWithAck('join-project', `pa${HOG_PROJECTS}`, { timeoutMs: 10_000 });
  assert.deepEqual(retried, [{ ok: true }]);
  // A project of another tenant is forbidden, for either user.
  assert.deepEqual(await other.join('pz'), { ok: false, error: 'forbidden' });
  assert.deepEqual(await h.emitWithAck('join-project', 'pb', { timeoutMs: 10_000 }), [{ ok: false, error: 'forbidden' }]);
  assert.deepEqual(await other.join('pa1'), { ok: false, error: 'forbidden' });
  await stop(daemon, slot);
});

dtest('limits.max_detached_per_user = 2: of 5 dropped sessions only the 2 newest resume; the others are counted as evicted', async (t) => {
  const slot = 'walcast_detached';
  const daemon = await startDaemonWith({ cluster, secret: SECRET, slot, name: 'detached',
    sections: { limits: { max_detached_per_user: 2 } } });
  const evictedBefore = await daemon.metric('walcast_detached_evicted_total');
  const sessions = [];
  for (let i = 0; i < 5; i++) sessions.push(await rawConnected(daemon, `drop-${i}`, 'dropper'));
  assert.ok(sessions.every((s) => s.reply.pid), 'every CONNECT reply carries a pid');
  // Dropped one at a time (no close frame, no Socket.IO DISCONNECT: resumable), oldest first.
  for (let i = 0; i < 5; i++) {
    sessions[i].close();
    await waitUntil(async () => await daemon.metric('walcast_clients') === 4 - i, { what: `drop ${i} seen by the daemon` });
  }
  await waitUntil(async () => await daemon.metric('walcast_detached_sessions') === 2,
    { what: 'two detached sessions kept' });
  const evicted = await daemon.metric('walcast_detached_evicted_total') - evictedBefore;

  const resumed = [];
  for (let i = 0; i < 5; i++) {
    const c = await RawClient.open(daemon.wsUrl, { label: `resume-${i}` });
    const answer = await c.connect({ ...auth('dropper'), pid: sessions[i].reply.pid });
    assert.match(answer, /^40\{"sid":/, `resume ${i}: ${answer}`);
    const reply = JSON.parse(answer.slice(2));
    // socket.io-client's `recovered`: the reply carries the pid it presented (and the old sid).
    resumed.push(reply.pid === sessions[i].reply.pid && reply.sid === sessions[i].reply.sid);
  }
  t.diagnostic(`resumed (oldest first): ${JSON.stringify(resumed)}; walcast_detached_evicted_total +${evicted}`);
  assert.deepEqual(resumed, [false, false, false, true, true]);
  assert.equal(evicted, 3);
  await stop(daemon, slot);
});

dtest('a second CONNECT is a protocol error (1002), also while a resume is being checked; the session is accepted once', async (t) => {
  const slot = 'walcast_second_connect';
  const daemon = await startDaemonWith({ cluster, secret: SECRET, slot, name: 'second-connect',
    sections: { auth: { project_access_sql: SLOW_ACCESS_SQL.replace('0.2', '1') } } });

  // Twice on a fresh connection.
  const errorsBefore = await daemon.metric('walcast_protocol_errors_total');
  const twice = await RawClient.open(daemon.wsUrl, { label: 'twice' });
  await twice.openPacket();
  twice.send(`40${JSON.stringify(auth('twice'))}`);
  twice.send(`40${JSON.stringify(auth('twice'))}`);
  const closed = await within(twice.closed, 10_000);
  assert.ok(closed, `not closed; frames ${JSON.stringify(twice.texts())}`);
  assert.equal(closed.code, 1002, `close code (reason "${closed.reason}")`);
  assert.equal(twice.texts().filter((x) => x.startsWith('40')).length, 1, 'one CONNECT reply');
  assert.equal(await daemon.metric('walcast_protocol_errors_total') - errorsBefore, 1);

  // A session in project pr (its access check takes 1 s), dropped.
  const first = await rawConnected(daemon, 'resumable', 'resumer');
  assert.deepEqual(await first.emitWithAck('join-project', 'pr'), [{ ok: true }]);
  first.close();
  await waitUntil(async () => await daemon.metric('walcast_detached_sessions') === 1, { what: 'the session detached' });

  // Its pid presented, then a second CONNECT while pr is being checked again.
  const recoveriesBefore = await daemon.metric('walcast_recoveries_total');
  const resume = { ...auth('resumer'), pid: first.reply.pid };
  const racer = await RawClient.open(daemon.wsUrl, { label: 'racer' });
  await racer.openPacket();
  racer.send(`40${JSON.stringify(resume)}`);
  racer.send(`40${JSON.stringify(resume)}`);
  const racerClosed = await within(racer.closed, 10_000);
  await sleep(1500);  // the access check the first CONNECT started is answered meanwhile
  t.diagnostic(`racer: closed ${racerClosed?.code} "${racerClosed?.reason}", frames ${JSON.stringify(racer.texts())}`);
  assert.ok(racerClosed, 'the racer was not closed');
  assert.equal(racerClosed.code, 1002, `close code (reason "${racerClosed.reason}")`);
  assert.deepEqual(racer.texts().filter((x) => x.startsWith('40') || x.startsWith('44')), [],
    'no CONNECT reply on a connection closed for a protocol error');
  assert.equal(await daemon.metric('walcast_protocol_errors_total') - errorsBefore, 2);
  assert.equal(await daemon.metric('walcast_recoveries_total'), recoveriesBefore, 'no resume completed');

  // The session is still resumable, once.
  const later = await RawClient.open(daemon.wsUrl, { label: 'later' });
  const answer = await later.connect(resume);
  assert.equal(answer, `40${JSON.stringify({ sid: first.reply.sid, pid: first.reply.pid })}`, 'resumed with its sid and pid');
  assert.equal(await daemon.metric('walcast_recoveries_total') - recoveriesBefore, 1);
  assert.equal(await daemon.metric('walcast_clients'), 1);
  await stop(daemon, slot);
});

dtest('a session in more project rooms than max_access_checks_per_user still resumes (its rooms are checked again within the cap)', async (t) => {
  const slot = 'walcast_resume_many_rooms';
  const CAP = 4;
  const ROOMS = 10;
  const daemon = await startDaemonWith({ cluster, secret: SECRET, slot, name: 'resume-rooms',
    sections: { limits: { max_access_checks_per_user: CAP } } });
  const first = await rawConnected(daemon, 'many-rooms', 'roomy');
  for (let i = 1; i <= ROOMS; i++) {
    assert.deepEqual(await first.emitWithAck('join-project', `pa${i}`), [{ ok: true }], `join pa${i}`);
  }
  first.close();
  await waitUntil(async () => await daemon.metric('walcast_detached_sessions') === 1, { what: 'the session detached' });
  await cluster.psql(Array.from({ length: ROOMS }, (_, i) => `BEGIN; SELECT walcast.set_context('w', 'pa${i + 1}', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES ('away-${i + 1}', 'pa${i + 1}', 'x'); COMMIT;`).join('\n'), { db: 'app' });
  await waitUntil(async () => await daemon.metric('walcast_events_total') >= ROOMS, { what: 'the events published' });

  const again = await RawClient.open(daemon.wsUrl, { label: 'many-rooms-again' });
  const answer = await again.connect({ ...auth('roomy'), pid: first.reply.pid });
  await waitUntil(() => again.events().length >= ROOMS, { timeoutMs: 5000 }).catch(() => {});
  const got = again.events().map((e) => e.payload.id).sort();
  t.diagnostic(`resume of a session in ${ROOMS} rooms with max_access_checks_per_user = ${CAP}: ${answer}; ` +
    `${got.length} missed events replayed`);
  assert.equal(answer, `40${JSON.stringify({ sid: first.reply.sid, pid: first.reply.pid })}`, 'resumed with its sid and pid');
  assert.deepEqual(got, Array.from({ length: ROOMS }, (_, i) => `away-${i + 1}`).sort(), 'the missed events of every room');
  await stop(daemon, slot);
});

dtest('a resume waits its turn while the same user\'s other connection keeps the access-check queue full, then resumes', async (t) => {
  const slot = 'walcast_resume_busy';
  const CAP = 4;
  const ROOMS = 6;
  const daemon = await startDaemonWith({ cluster, secret: SECRET, slot, name: 'resume-busy',
    sections: { auth: { project_access_sql: SLOW_ACCESS_SQL }, limits: { max_access_checks_per_user: CAP } } });
  const first = await rawConnected(daemon, 'busy-rooms', 'busy-user');
  for (let i = 1; i <= ROOMS; i++) {
    assert.deepEqual(await first.emitWithAck('join-project', `pa${i}`), [{ ok: true }], `join pa${i}`);
  }
  first.close();
  await waitUntil(async () => await daemon.metric('walcast_detached_sessions') === 1, { what: 'the session detached' });

  // The same user's other tab fills its queue (4 checks of 200 ms, 12 more answered busy)...
  const tab = await rawConnected(daemon, 'other-tab', 'busy-user');
  for (let j = 0; j < 16; j++) tab.send(`42${tab.nextAck++}${JSON.stringify(['join-project', `pa${100 + j}`])}`);
  await waitUntil(() => tab.texts().filter((x) => x.includes('"busy"')).length >= 16 - CAP,
    { what: 'the other tab\'s excess joins answered busy' });
  // ...and the dropped session comes back meanwhile.
  const start = Date.now();
  const again = await RawClient.open(daemon.wsUrl, { label: 'busy-rooms-again' });
  const answer = await again.connect({ ...auth('busy-user'), pid: first.reply.pid });
  const ms = Date.now() - start;
  t.diagnostic(`resume of ${ROOMS} rooms behind a full queue (cap ${CAP}, 200 ms checks): ${answer} after ${ms} ms`);
  assert.equal(answer, `40${JSON.stringify({ sid: first.reply.sid, pid: first.reply.pid })}`, 'resumed with its sid and pid');
  assert.ok(ms < 10_000, `the resume took ${ms} ms`);
  await stop(daemon, slot);
});

dtest('a user at max_connections_per_user whose reconnect arrives before its old connection is seen closed still resumes', async (t) => {
  const slot = 'walcast_cap_resume';
  const daemon = await startDaemonWith({ cluster, secret: SECRET, slot, name: 'cap-resume',
    sections: { limits: { max_connections_per_user: 2 } } });
  const a = await rawConnected(daemon, 'cap-a', 'capped');
  const b = await rawConnected(daemon, 'cap-b', 'capped');
  assert.deepEqual(await a.emitWithAck('join-project', 'pa1'), [{ ok: true }]);
  // The client saw its connection die (a ping timeout on its side, a dead NAT entry) and
  // reconnects with its pid; the daemon has not noticed yet, so `a` still counts.
  const again = await RawClient.open(daemon.wsUrl, { label: 'cap-a-again' });
  const answer = await again.connect({ ...auth('capped'), pid: a.reply.pid });
  t.diagnostic(`resume at the cap: ${answer}; old connection ${JSON.stringify(await within(a.closed, 5000))}`);
  assert.equal(answer, `40${JSON.stringify({ sid: a.reply.sid, pid: a.reply.pid })}`, 'resumed, replacing the old connection');
  assert.ok(a.isClosed, 'the old connection was closed');
  assert.equal(b.isClosed, false);
  // Still two: a third is refused.
  const c = await RawClient.open(daemon.wsUrl, { label: 'cap-c' });
  assert.equal(await c.connect(auth('capped')), '44{"message":"too many connections"}');
  await stop(daemon, slot);
});
