// Tokens and operator endpoints, against the real daemon: an `exp` anywhere up to the end of
// year 9999 is honoured (the connection stays up), one past it is refused; [auth] audience
// and issuer are enforced; `walcast run` refuses a JWT secret under 32 bytes; with
// [server] admin_listen, /healthz and /metrics are served only on the admin address, which
// takes no WebSocket.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  dtest, startAppCluster, signJwt, claimsFor, IoClient, RawClient, closeAllClients, killAllDaemons, waitUntil, sleep,
  dropSlot, within, freePort,
} from './lib/daemon.mjs';
import { httpGet, startDaemonWith } from './lib/adversary.mjs';

const SECRET = 'walcast-adversary-auth-secret-of-32+bytes';
const UNAUTHORIZED = '44{"message":"unauthorized"}';

let cluster;

before(async () => {
  cluster = await startAppCluster({ setupSql: `INSERT INTO "Project" (id, "tenantId", name) VALUES ('pt', 'acme', 'Tokens');` });
});

after(async () => {
  closeAllClients();
  await killAllDaemons();
  await cluster?.stop();
});

const tokenWith = (secret, sub, extra = {}) => signJwt({ ...claimsFor({ sub, tenantId: 'acme' }), ...extra }, secret);

async function connectAnswer(daemon, label, tok) {
  const c = await RawClient.open(daemon.wsUrl, { label });
  const answer = await c.connect({ token: tok });
  c.close();
  return answer;
}

async function stop(daemon, slot) {
  closeAllClients();
  const r = await daemon.terminate();
  assert.equal(r.code, 0);
  await dropSlot(cluster, slot);
}

dtest('exp in year 3000 and at the end of year 9999 connect and stay connected; past year 9999 is refused', async (t) => {
  const slot = 'walcast_exp';
  const daemon = await startDaemonWith({ cluster, secret: SECRET, slot, name: 'exp' });
  const far = {
    'year 3000': 32503680000,             // 3000-01-01T00:00:00Z
    'end of year 9999': 253402300799,     // 9999-12-31T23:59:59Z
  };
  const clients = {};
  for (const [name, exp] of Object.entries(far)) {
    clients[name] = await IoClient.connect(daemon.url, tokenWith(SECRET, `far-${exp}`, { exp }), { label: name });
    assert.deepEqual(await clients[name].join('pt'), { ok: true }, `${name}: join`);
  }
  await sleep(3000);  // a deadline that overflowed would have closed them (4001) by now
  for (const [name, c] of Object.entries(clients)) {
    assert.equal(c.socket.connected, true, `${name}: still connected`);
    assert.deepEqual(c.disconnects, [], `${name}: disconnects`);
  }
  assert.equal(await daemon.metric('walcast_token_expiry_closes_total'), 0);

  const past = 253402300800;  // 10000-01-01T00:00:00Z
  assert.equal(await connectAnswer(daemon, 'year 10000', tokenWith(SECRET, 'too-far', { exp: past })), UNAUTHORIZED);
  const viaIo = await IoClient.attempt(daemon.url, { token: tokenWith(SECRET, 'too-far', { exp: past }) }, { label: 'io 10000' });
  viaIo.client.close();
  assert.equal(viaIo.error, 'unauthorized');
  t.diagnostic(`connected for 3 s with exp ${Object.values(far).join(' and ')}; exp ${past} refused`);
  await stop(daemon, slot);
});

dtest('[auth] audience and issuer: tokens without them or with wrong ones are refused; right ones (aud as string or array) are accepted', async (t) => {
  const slot = 'walcast_aud';
  // Exactly 32 bytes: the shortest secret walcast accepts.
  const secret32 = 'abcdefghijklmnopqrstuvwxyz012345';
  assert.equal(Buffer.byteLength(secret32), 32);
  const AUD = 'walcast-adversary';
  const ISS = 'https://issuer.walcast.test';
  const daemon = await startDaemonWith({ cluster, secret: secret32, slot, name: 'aud',
    sections: { auth: { audience: AUD, issuer: ISS } } });
  const cases = [
    ['no aud', { iss: ISS }, false],
    ['no iss', { aud: AUD }, false],
    ['neither', {}, false],
    ['wrong aud', { aud: 'someone-else', iss: ISS }, false],
    ['aud with another case', { aud: AUD.toUpperCase(), iss: ISS }, false],
    ['aud array without it', { aud: ['a', 'b'], iss: ISS }, false],
    ['aud empty array', { aud: [], iss: ISS }, false],
    ['aud not a string', { aud: 7, iss: ISS }, false],
    ['wrong iss', { aud: AUD, iss: 'https://evil.test' }, false],
    ['iss not a string', { aud: AUD, iss: ['https://issuer.walcast.test'] }, false],
    ['right aud and iss', { aud: AUD, iss: ISS }, true],
    ['aud array with it', { aud: ['another-api', AUD], iss: ISS }, true],
  ];
  const outcomes = {};
  for (const [name, extra, accepted] of cases) {
    const answer = await connectAnswer(daemon, name, tokenWith(secret32, `aud-${name.replace(/\W+/g, '-')}`, extra));
    outcomes[name] = answer.startsWith('40{') ? 'accepted' : answer;
    if (accepted) assert.match(answer, /^40\{"sid":/, `${name}: accepted`);
    else assert.equal(answer, UNAUTHORIZED, `${name}: refused`);
  }
  // And with socket.io-client.
  const ok = await IoClient.connect(daemon.url, tokenWith(secret32, 'aud-io', { aud: [AUD], iss: ISS }), { label: 'aud-io' });
  assert.deepEqual(await ok.join('pt'), { ok: true });
  t.diagnostic(JSON.stringify(outcomes));
  await stop(daemon, slot);
});

dtest('walcast run refuses a JWT secret of 3 or 31 bytes (exit 2, naming the 32-byte minimum)', async (t) => {
  for (const short of ['abc', 'a'.repeat(31)]) {
    // A good secret in the file; WALCAST_JWT_SECRET overrides it with the short one.
    const d = await startDaemonWith({ cluster, secret: SECRET, slot: 'walcast_short_secret', name: `secret-${short.length}`,
      waitHealthy: false, env: { WALCAST_JWT_SECRET: short } });
    const exit = await within(d.exited, 15_000);
    if (!exit) await d.kill9();
    const log = d.log();
    t.diagnostic(`${short.length}-byte secret: exit ${JSON.stringify(exit)}: ${log.split('\n').filter((l) => /secret/i.test(l)).join(' | ')}`);
    assert.ok(exit, `${short.length}-byte secret: walcast run still running after 15 s`);
    assert.equal(exit.code, 2, `${short.length}-byte secret: exit code`);
    assert.match(log, /secret/i);
    assert.match(log, /\b32\b/, 'the message names the 32-byte minimum');
    assert.match(log, new RegExp(`\\b${short.length} bytes\\b`), 'the message says how long the secret is');
  }
});

dtest('[server] admin_listen: /metrics and /healthz answer 404 on the public port and 200 on the admin port, which refuses WebSockets', async (t) => {
  const slot = 'walcast_admin';
  const adminPort = await freePort();
  const daemon = await startDaemonWith({ cluster, secret: SECRET, slot, name: 'admin', waitHealthy: false,
    sections: { server: { admin_listen: `127.0.0.1:${adminPort}` } } });
  await waitUntil(async () => {
    if (!daemon.running) throw new Error(`walcast exited: ${JSON.stringify(daemon.exitInfo)}\n${daemon.tail(20)}`);
    return (await httpGet(adminPort, '/healthz')).status === 200;
  }, { timeoutMs: 30_000, what: 'GET /healthz 200 on the admin port' });

  const results = {};
  for (const path of ['/metrics', '/healthz']) {
    const pub = await httpGet(daemon.port, path);
    const adm = await httpGet(adminPort, path);
    results[path] = { public: pub.status, admin: adm.status };
    assert.equal(pub.status, 404, `${path} on the public port`);
    assert.doesNotMatch(pub.body, /walcast_/, `${path} on the public port leaks metrics`);
    assert.equal(adm.status, 200, `${path} on the admin port`);
  }
  const metrics = (await httpGet(adminPort, '/metrics')).body;
  assert.match(metrics, /^walcast_clients \d+$/m, 'Prometheus text on the admin port');
  assert.match(metrics, /^walcast_streaming 1$/m);

  // The admin port takes no WebSocket; the public one serves Socket.IO as usual.
  const refused = await RawClient.open(`ws://127.0.0.1:${adminPort}/socket.io/?EIO=4&transport=websocket`, { label: 'ws-on-admin' })
    .then((c) => { c.close(); return null; }, (e) => e);
  results.websocketOnAdmin = refused?.status ?? 'accepted';
  assert.ok(refused, 'a WebSocket upgrade on the admin port was accepted');
  assert.ok(refused.status >= 400, `upgrade on the admin port: ${refused.message}`);
  const c = await IoClient.connect(daemon.url, tokenWith(SECRET, 'public'), { label: 'public' });
  assert.deepEqual(await c.join('pt'), { ok: true });
  t.diagnostic(JSON.stringify(results));
  await stop(daemon, slot);
});
