// Two walcast instances on one slot ("a slot held by another consumer at start-up
// is retried the same way; that is how a standby instance waits its turn"). The standby
// serves /healthz 503 and streams nothing while the primary holds the slot; when the primary
// dies (kill -9) the standby takes the slot over by itself and its clients receive every
// transaction committed after the primary's last event, including those committed while
// neither instance streamed.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  DB, dtest, startAppCluster, startDaemon, token, IoClient, closeAllClients, killAllDaemons, waitUntil, lit, sleep,
} from './lib/daemon.mjs';

const SECRET = 'walcast-standby-secret-of-32-bytes-at-least';

let cluster;
let primary;
let standby;

async function task(id) {
  await cluster.psql(`BEGIN; SELECT walcast.set_context('u1', 'p1', 'acme');
INSERT INTO "Task" (id, "projectId", title) VALUES (${lit(id)}, 'p1', 'standby test'); COMMIT;`, { db: DB });
}

before(async () => {
  cluster = await startAppCluster({ setupSql: `INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'Apollo');` });
  primary = await startDaemon({ cluster, secret: SECRET, name: 'primary' });
  standby = await startDaemon({ cluster, secret: SECRET, name: 'standby', waitHealthy: false });
});

after(async () => {
  closeAllClients();
  await killAllDaemons();
  await cluster?.stop();
});

dtest('a standby waits for the slot, then takes over from a killed primary without a gap', async () => {
  const who = { sub: 'watcher', tenantId: 'acme' };
  await waitUntil(() => /replication slot "walcast" is in use by PID \d+/.test(standby.log()),
    { timeoutMs: 15_000, what: 'the standby finding the slot in use' });
  assert.equal(await standby.healthz(), 503, 'the standby is not healthy while the primary streams');
  assert.ok(standby.running);

  const onPrimary = await IoClient.connect(primary.url, token(SECRET, who), { label: 'on-primary' });
  const onStandby = await IoClient.connect(standby.url, token(SECRET, who), { label: 'on-standby' });
  assert.deepEqual(await onPrimary.join('p1'), { ok: true });
  assert.deepEqual(await onStandby.join('p1'), { ok: true }, 'project access works before the slot does');

  await task('sb-1');
  await onPrimary.waitEvent((e) => e.payload?.id === 'sb-1', { what: 'sb-1 from the primary' });
  await sleep(500);
  assert.equal(onStandby.named('task:').length, 0, 'the standby streamed while the primary held the slot');

  await primary.kill9();
  const gap = ['sb-2', 'sb-3', 'sb-4'];
  for (const id of gap) await task(id);  // nobody streams now

  await standby.waitHealthz(200, 45_000);  // backoff is capped at 30 s
  assert.match(standby.log(), /streaming from slot "walcast"/);
  await task('sb-5');
  await onStandby.waitEvent((e) => e.payload?.id === 'sb-5', { timeoutMs: 15_000, what: 'sb-5 from the standby' });

  // At least once: sb-1 may come again if the primary died before confirming it.
  const got = onStandby.named('task:').map((e) => e.payload.id).filter((id) => id !== 'sb-1');
  assert.deepEqual(got, [...gap, 'sb-5'], 'every transaction after the primary\'s last, once, in commit order');
  assert.equal(onStandby.disconnects.length, 0);
});
