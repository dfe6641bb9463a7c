// Engine.IO v4 as socket.io clients meet it: the long-polling transport request by
// request (handshake, refusals and their codes, heartbeat over a held GET, close, overlapping
// GETs, oversized and malformed POSTs), the upgrade to WebSocket (probe, noop to the pending
// poll, packets queued on polling moved to the WebSocket, polling refused afterwards, a
// second WebSocket for the sid closed, a probe that never completes closed after 10 s),
// CORS for polling, and the Socket.IO checks on top (unknown namespace, malformed packet,
// no CONNECT in time). Raw HTTP (node:http) and raw WebSocket (ws) clients.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';

import {
  dtest, startAppCluster, token, RawClient, closeAllClients, killAllDaemons, sleep, within, waitUntil,
} from './lib/daemon.mjs';
import { PollingSession, RS, eioQuery, engineError, http, startEioDaemon } from './lib/eio.mjs';

const SECRET = 'walcast-engineio-secret-of-32-bytes-long';
const ALLOWED_ORIGIN = 'http://app.example.test';
const OTHER_ORIGIN = 'http://evil.example.test';

// The official protocol suite's timing: a session must be gone 500 ms after its handshake.
const HB = { ping_interval_ms: 300, ping_timeout_ms: 200, max_payload: 1000000, connect_timeout_ms: 1000 };
// Slow heartbeats, for tests about everything else.
const PROTO = { ping_interval_ms: 2000, ping_timeout_ms: 5000, max_payload: 100000, connect_timeout_ms: 4000 };

let cluster;
let hb;     // daemon with HB settings
let proto;  // daemon with PROTO settings

const auth = (sub = 'ann') => ({ token: token(SECRET, { sub, tenantId: 'acme' }) });

before(async () => {
  cluster = await startAppCluster({ setupSql: `INSERT INTO "Project" (id, "tenantId", name) VALUES ('p1', 'acme', 'One');` });
  const cors_origins = [ALLOWED_ORIGIN];
  [hb, proto] = await Promise.all([
    startEioDaemon({ cluster, secret: SECRET, name: 'eio_hb', server: { ...HB, cors_origins }, recovery: false }),
    startEioDaemon({ cluster, secret: SECRET, name: 'eio_proto', server: { ...PROTO, cors_origins }, recovery: false }),
  ]);
});

after(async () => {
  closeAllClients();
  await killAllDaemons();
  await cluster?.stop();
});

const wsUrl = (d, query = 'EIO=4&transport=websocket') => `ws://127.0.0.1:${d.port}/socket.io/?${query}`;

// ---- handshake and refusals ------------------------------------------------------------

dtest('polling handshake: the open packet, its keys in order, upgrades ["websocket"]', async () => {
  const r = await http(hb.port, 'GET', eioQuery('&t=abc123'));
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/plain; charset=UTF-8');
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.equal(r.headers['access-control-allow-origin'], undefined, 'no CORS headers without an Origin');
  assert.ok(r.body.startsWith('0{'), r.body);
  const open = JSON.parse(r.body.slice(1));
  assert.deepEqual(Object.keys(open), ['sid', 'upgrades', 'pingInterval', 'pingTimeout', 'maxPayload']);
  assert.equal(typeof open.sid, 'string');
  assert.ok(open.sid.length >= 16, open.sid);
  assert.deepEqual(open.upgrades, ['websocket']);
  assert.equal(open.pingInterval, 300);
  assert.equal(open.pingTimeout, 200);
  assert.equal(open.maxPayload, 1000000);
});

dtest('WebSocket handshake: upgrades []', async () => {
  const c = await RawClient.open(wsUrl(hb));
  const open = await c.openPacket();
  assert.deepEqual(Object.keys(open), ['sid', 'upgrades', 'pingInterval', 'pingTimeout', 'maxPayload']);
  assert.deepEqual(open.upgrades, []);
  c.close();
});

dtest('refusals: status and {code, message} as the reference server answers them', async () => {
  const cases = [
    ['GET', `/socket.io/?transport=polling`, 400, 5],
    ['GET', `/socket.io/?EIO=abc&transport=polling`, 400, 5],
    ['GET', `/socket.io/?EIO=3&transport=polling`, 400, 5],
    ['GET', `/socket.io/?EIO=4`, 400, 0],
    ['GET', `/socket.io/?EIO=4&transport=abc`, 400, 0],
    ['POST', eioQuery(), 400, 2],
    ['PUT', eioQuery(), 400, 2],
    ['GET', `/socket.io/?EIO=4&transport=websocket`, 400, 3],
    ['GET', eioQuery('&sid=nosuchsession'), 400, 1],
    ['POST', eioQuery('&sid=nosuchsession'), 400, 1],
  ];
  for (const [method, path, status, code] of cases) {
    const r = await http(hb.port, method, path, method === 'POST' ? { body: '3' } : {});
    assert.equal(r.status, status, `${method} ${path}: ${r.body}`);
    assert.equal(r.headers['content-type'], 'application/json', `${method} ${path}`);
    assert.equal(engineError(r)?.code, code, `${method} ${path}: ${r.body}`);
  }
  // A method other than GET/POST on a live session: 500, and the session goes on.
  const s = new PollingSession(hb.port);
  await s.handshake();
  const put = await http(hb.port, 'PUT', s.path);
  assert.equal(put.status, 500);
  assert.equal((await s.post('6')).status, 200, 'the session survived the PUT');
});

// ---- heartbeat -------------------------------------------------------------------------

dtest('heartbeat over polling: the held GET answers exactly "2" at the ping; a POSTed "3" keeps the session', async () => {
  const s = new PollingSession(hb.port);
  await s.handshake();
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const r = await s.get();
    const held = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.body, '2', `round ${i}`);
    assert.ok(held >= 150, `round ${i}: the GET was held until the ping (${held} ms)`);
    const p = await s.post('3');
    assert.equal(p.status, 200);
    assert.equal(p.body, 'ok');
    assert.equal(p.headers['content-type'], 'text/html');
  }
});

dtest('heartbeat over polling: no pong within ping_timeout closes the session (later GET -> 400 code 1)', async () => {
  const before = await hb.metric('walcast_ping_timeouts_total');
  const s = new PollingSession(hb.port);
  await s.handshake();
  const r = await s.get();
  assert.equal(r.body, '2');
  const pingAt = Date.now();
  await sleep(200 + 100);
  const late = await s.get();
  assert.equal(late.status, 400, `${Date.now() - pingAt} ms after the ping: ${late.status} ${late.body}`);
  assert.equal(engineError(late)?.code, 1);
  assert.ok(await hb.metric('walcast_ping_timeouts_total') > before);
});

dtest('a polling client that never polls after the handshake is gone at ping interval + timeout', async () => {
  const s = new PollingSession(hb.port);
  const t0 = Date.now();
  await s.handshake();
  await sleep(150);
  assert.equal((await s.post('6')).status, 200, 'alive before the ping');
  await sleep(Math.max(0, t0 + 300 + 200 + 100 - Date.now()));
  const r = await s.get();
  assert.equal(r.status, 400, `${Date.now() - t0} ms after the handshake`);
  assert.equal(engineError(r)?.code, 1);
});

dtest('a held GET whose connection closes ends the session at once (the heartbeat is far off)', async () => {
  const s = new PollingSession(proto.port);
  await s.handshake();
  let req;
  const gone = s.get({ onRequest: (r) => { req = r; } });
  await sleep(100);
  req.destroy();
  assert.equal((await gone).status, 0);
  await sleep(200);  // the ping is 2 s away
  const r = await s.get();
  assert.equal(r.status, 400, 'the session ended when its poll went away');
  assert.equal(engineError(r)?.code, 1);
});

dtest('heartbeat over WebSocket: no pong -> closed', async () => {
  const c = await RawClient.open(wsUrl(hb));
  c.autoPong = false;
  await c.openPacket();
  const closed = await within(c.closed, 2000);
  assert.ok(closed, 'closed within 2 s');
  assert.ok(c.texts().includes('2'), 'a ping came first');
});

dtest('no Socket.IO CONNECT within connect_timeout_ms: a polling session is closed', async () => {
  const before = await hb.metric('walcast_connect_timeouts_total');
  const s = new PollingSession(hb.port);
  const t0 = Date.now();
  await s.handshake();
  let closedAt = null;
  while (!closedAt && Date.now() - t0 < 5000) {
    const r = await s.get();
    if (r.status !== 200) { closedAt = Date.now(); break; }
    const packets = r.body.split(RS);
    if (packets.includes('1')) closedAt = Date.now();
    else if (packets.includes('2')) await s.post('3');
  }
  assert.ok(closedAt, 'closed');
  const after = closedAt - t0;
  assert.ok(after >= 900 && after < 2000, `closed ${after} ms after the handshake`);
  assert.ok(await hb.metric('walcast_connect_timeouts_total') > before);
});

// ---- closing and misbehaving clients ---------------------------------------------------

dtest('POST "1" closes the session: the waiting GET answers "6", then the sid is unknown', async () => {
  const s = new PollingSession(proto.port);
  await s.handshake();
  const get = s.get();
  await sleep(50);
  const post = await s.post('1');
  assert.equal(post.status, 200);
  const r = await get;
  assert.equal(r.status, 200);
  assert.equal(r.body, '6');
  const after = await s.get();
  assert.equal(after.status, 400);
  assert.equal(engineError(after)?.code, 1);
});

dtest('two GETs at once: the first answers "1", the second an empty 400, then the sid is unknown', async () => {
  const s = new PollingSession(proto.port);
  await s.handshake();
  assert.match((await s.connect(auth())).body, /^ok$/);
  assert.match((await s.get()).body, /^40\{"sid":/);
  const first = s.get();
  await sleep(50);
  const second = await s.get();
  assert.equal(second.status, 400);
  assert.equal(second.body, '');
  const r = await first;
  assert.equal(r.status, 200);
  assert.equal(r.body, '1');
  const after = await s.get();
  assert.equal(after.status, 400);
  assert.equal(engineError(after)?.code, 1);
});

dtest('after CONNECT each GET returns only when there is something to say', async () => {
  const s = new PollingSession(proto.port);
  await s.handshake();
  await s.connect(auth());
  assert.match((await s.get()).body, /^40\{"sid":/);
  const t0 = Date.now();
  const held = await within(s.get({ timeoutMs: 600 }), 500);
  assert.equal(held, null, `a GET with nothing to take is held (answered after ${Date.now() - t0} ms)`);
  // The held GET ended by its own timeout, which the server did not see: the next GET is the
  // second one waiting on the sid, a protocol error.
  await sleep(200);
  const next = await s.get();
  assert.equal(next.status, 400, next.body);
});

dtest('a POST over max_payload answers 413 and ends the session', async () => {
  const s = new PollingSession(proto.port);
  await s.handshake();
  const get = s.get();
  await sleep(50);
  const big = await s.post(`4${'x'.repeat(PROTO.max_payload + 10)}`);
  assert.ok(big.status === 413 || big.status === 0, `status ${big.status} ${big.error ?? ''}`);
  const r = await get;
  assert.equal(r.status, 200);
  assert.equal(r.body, '1', 'the waiting GET learns the session closed');
  const after = await s.get();
  assert.equal(after.status, 400);
});

for (const [what, body] of [
  ['an unknown packet type', 'abc'],
  ['an empty packet', `3${RS}${RS}3`],
  ['a binary packet', 'bAQIDBA=='],
  ['bytes that are not UTF-8', Buffer.from([0x34, 0x32, 0xff, 0xfe, 0x5b, 0x5d])],
]) {
  dtest(`a POST with ${what} answers 400 and ends the session`, async () => {
    const s = new PollingSession(proto.port);
    await s.handshake();
    const get = s.get();
    await sleep(50);
    const r = await s.post(body);
    assert.equal(r.status, 400, `${r.status} ${r.body}`);
    const waiting = await get;
    assert.equal(waiting.body, '1');
    assert.equal((await s.get()).status, 400);
  });
}

dtest('a malformed Socket.IO packet closes the session', async () => {
  for (const packet of ['4abc', '42{}', '42abc["x"]']) {
    const s = new PollingSession(proto.port);
    await s.handshake();
    const get = s.get();
    await sleep(50);
    await s.post(packet);
    const r = await get;
    assert.equal(r.body, '1', `${packet}: the waiting GET gets the close packet`);
    assert.equal((await s.get()).status, 400, packet);
  }
});

dtest('CONNECT to an unknown namespace answers 44 for it, and "/" still connects', async () => {
  const s = new PollingSession(proto.port);
  await s.handshake();
  await s.post('40/random,');
  assert.equal((await s.get()).body, '44/random,{"message":"Invalid namespace"}');
  await s.post('40/other');
  assert.equal((await s.get()).body, '44/other,{"message":"Invalid namespace"}');
  await s.connect(auth());
  assert.match((await s.get()).body, /^40\{"sid":"[^"]+"\}$/);
  await s.post('421["join-project","p1"]');
  assert.equal((await s.pollFor((p) => p.startsWith('431'))), '431[{"ok":true}]');
});

// ---- upgrade ---------------------------------------------------------------------------

// A polling session past CONNECT whose reply is still queued on polling (nobody polled).
async function connectedButUnread(d) {
  const s = new PollingSession(d.port);
  await s.handshake();
  assert.equal((await s.connect(auth())).status, 200);
  return s;
}

dtest('upgrade: 2probe/3probe, a GET after 3probe answers "6", "5" completes it, then polling -> 400 code 3', async () => {
  const s = await connectedButUnread(proto);
  assert.match((await s.get()).body, /^40\{"sid":/);
  const probe = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  probe.autoPong = false;
  probe.send('2probe');
  await probe.waitFrame((t) => t === '3probe');
  // The client's poll turns over with a noop, so it can pause polling and send "5".
  const t0 = Date.now();
  const poll = await s.get();
  assert.equal(poll.status, 200);
  assert.equal(poll.body, '6');
  assert.ok(Date.now() - t0 < 1000, 'the poll during the upgrade is not held for long');
  probe.send('5');
  assert.deepEqual(await probe.emitWithAck('join-project', 'p1'), [{ ok: true }]);
  for (const method of ['GET', 'POST']) {
    const r = await http(proto.port, method, s.path, method === 'POST' ? { body: '3' } : {});
    assert.equal(r.status, 400, `${method} after the upgrade`);
    assert.equal(engineError(r)?.code, 3, `${method}: ${r.body}`);
  }
  assert.ok(!probe.isClosed);
  probe.close();
});

dtest('upgrade: packets queued on polling and not taken go to the WebSocket after "5", first', async () => {
  const s = await connectedButUnread(proto);
  await sleep(50);  // the CONNECT reply is queued for polling; nobody polls
  const probe = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  probe.send('2probe');
  await probe.waitFrame((t) => t === '3probe');
  probe.send('5');
  const connect = await probe.waitFrame((t) => t.startsWith('40'));
  assert.match(connect.text, /^40\{"sid":/);
  assert.deepEqual(probe.texts().slice(0, 2), ['3probe', connect.text]);
  assert.deepEqual(await probe.emitWithAck('join-project', 'p1'), [{ ok: true }]);
  probe.close();
});

dtest('upgrade: a GET held when 2probe arrives answers "6"', async () => {
  const s = await connectedButUnread(proto);
  assert.match((await s.get()).body, /^40/);
  const held = s.get();
  await sleep(50);
  const probe = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  probe.send('2probe');
  assert.equal((await held).body, '6');
  probe.send('5');
  assert.deepEqual(await probe.emitWithAck('join-project', 'p1'), [{ ok: true }]);
  probe.close();
});

dtest('while upgrading, polls are turned over with a noop about every 100 ms, not at once; 2probe again gets 3probe', async () => {
  const s = await connectedButUnread(proto);
  assert.match((await s.get()).body, /^40/);
  const probe = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  probe.send('2probe');
  await probe.waitFrame((t) => t === '3probe');
  // A client that does not pause: one GET after the other for a second.
  const t0 = Date.now();
  let answers = 0;
  while (Date.now() - t0 < 1000) {
    const r = await s.get();
    assert.equal(r.status, 200);
    assert.equal(r.body, '6');
    answers++;
  }
  assert.ok(answers >= 5 && answers <= 15, `${answers} polls answered in a second`);
  probe.send('2probe');
  await waitUntil(() => probe.texts().filter((t) => t === '3probe').length === 2, { what: 'the second 3probe' });
  probe.send('5');
  assert.deepEqual(await probe.emitWithAck('join-project', 'p1'), [{ ok: true }]);
  probe.close();
});

dtest('a second WebSocket for an upgraded sid is accepted and closed at once; the first goes on', async () => {
  const s = await connectedButUnread(proto);
  const ws1 = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  ws1.send('2probe');
  ws1.send('5');
  await ws1.waitFrame((t) => t.startsWith('40'));
  // A refusal at the HTTP level ('unexpected-response') would be an error event on the
  // socket, which clients that only listen for 'close' do not handle.
  const ws2 = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  assert.ok(await within(ws2.closed, 2000), 'the second WebSocket is closed');
  assert.ok(!ws2.texts().some((t) => t.startsWith('0') || t === '3probe'), `it got nothing: ${ws2.texts()}`);
  assert.deepEqual(await ws1.emitWithAck('join-project', 'p1'), [{ ok: true }]);
  ws1.close();
});

dtest('a second WebSocket while the first is probing is closed; the upgrade completes on the first', async () => {
  const s = await connectedButUnread(proto);
  const ws1 = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  ws1.send('2probe');
  await ws1.waitFrame((t) => t === '3probe');
  const ws2 = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  assert.ok(await within(ws2.closed, 2000), 'the second WebSocket is closed');
  ws1.send('5');
  await ws1.waitFrame((t) => t.startsWith('40'));
  ws1.close();
});

dtest('a WebSocket with an unknown sid is refused with 400', async () => {
  await assert.rejects(RawClient.open(wsUrl(proto, 'EIO=4&transport=websocket&sid=nosuchsession')),
    (e) => e.status === 400);
});

dtest('a probe that sends anything but 2probe/5 is closed; the session stays on polling', async () => {
  const s = await connectedButUnread(proto);
  const probe = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  probe.send('4hello');
  assert.ok(await within(probe.closed, 2000), 'the probe is closed');
  assert.match((await s.get()).body, /^40\{"sid":/);
  await s.post('421["join-project","p1"]');
  assert.equal(await s.pollFor((p) => p.startsWith('431')), '431[{"ok":true}]');
});

dtest('after an upgrade the WebSocket takes messages up to max_payload', async () => {
  const s = await connectedButUnread(proto);
  const ws = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  ws.send('2probe');
  ws.send('5');
  await ws.waitFrame((t) => t.startsWith('40'));
  // 80 KB: over the pre-CONNECT cap of a WebSocket (64 KiB), under max_payload (100 KB).
  const ack = await ws.emitWithAck('some-event', 'x'.repeat(80_000));
  assert.deepEqual(ack, [{ ok: false, error: 'unknown event' }]);
  assert.ok(!ws.isClosed, `closed ${JSON.stringify(ws.closeInfo)}`);
  ws.close();
});

dtest('upgrade timeout: a probe without "5" within 10 s is closed; the session stays on polling', { timeout: 30_000 }, async () => {
  const s = await connectedButUnread(proto);
  assert.match((await s.get()).body, /^40/);
  const probe = await RawClient.open(wsUrl(proto, `EIO=4&transport=websocket&sid=${s.sid}`));
  probe.send('2probe');
  await probe.waitFrame((t) => t === '3probe');
  const t0 = Date.now();
  // The client keeps polling (and answering pings) while the probe hangs.
  let stop = false;
  const pump = (async () => {
    while (!stop) {
      const r = await s.get({ timeoutMs: 20_000 });
      if (r.status !== 200) throw new Error(`poll during the upgrade: ${r.status} ${r.body}`);
      if (r.body.split(RS).includes('2')) await s.post('3');
      if (r.body === '6') await sleep(50);
    }
  })();
  const closed = await within(probe.closed, 15_000);
  const at = Date.now() - t0;
  stop = true;
  assert.ok(closed, 'the probe was closed');
  assert.ok(at >= 9000 && at < 12_500, `closed ${at} ms after 3probe`);
  await pump;
  await s.post('421["join-project","p1"]');
  assert.equal(await s.pollFor((p) => p.startsWith('431')), '431[{"ok":true}]');
});

// ---- CORS ------------------------------------------------------------------------------

dtest('CORS: an allowed origin is reflected with credentials; others get 403; same-origin needs nothing', async () => {
  const allowed = await http(proto.port, 'GET', eioQuery(), { headers: { Origin: ALLOWED_ORIGIN } });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
  assert.equal(allowed.headers['access-control-allow-credentials'], 'true');
  assert.match(allowed.headers.vary ?? '', /Origin/);
  const sid = JSON.parse(allowed.body.slice(1)).sid;
  const post = await http(proto.port, 'POST', eioQuery(`&sid=${sid}`), { body: '6', headers: { Origin: ALLOWED_ORIGIN } });
  assert.equal(post.status, 200);
  assert.equal(post.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
  const refused = await http(proto.port, 'GET', eioQuery('&sid=nosuchsession'), { headers: { Origin: ALLOWED_ORIGIN } });
  assert.equal(refused.status, 400);
  assert.equal(refused.headers['access-control-allow-origin'], ALLOWED_ORIGIN, 'refusals carry CORS headers too');

  const other = await http(proto.port, 'GET', eioQuery(), { headers: { Origin: OTHER_ORIGIN } });
  assert.equal(other.status, 403);
  assert.equal(engineError(other)?.code, 4);
  assert.equal(other.headers['access-control-allow-origin'], undefined);

  const same = await http(proto.port, 'GET', eioQuery(), { headers: { Origin: `http://127.0.0.1:${proto.port}` } });
  assert.equal(same.status, 200);
  assert.equal(same.headers['access-control-allow-origin'], undefined);
});

dtest('CORS preflight: 204 for an allowed origin, with the requested headers; 403 otherwise', async () => {
  const pre = await http(proto.port, 'OPTIONS', eioQuery(), {
    headers: { Origin: ALLOWED_ORIGIN, 'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type,x-requested-with' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.body, '');
  assert.equal(pre.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
  assert.equal(pre.headers['access-control-allow-credentials'], 'true');
  assert.match(pre.headers['access-control-allow-methods'] ?? '', /POST/);
  assert.match(pre.headers['access-control-allow-methods'] ?? '', /GET/);
  const allowHeaders = (pre.headers['access-control-allow-headers'] ?? '').toLowerCase();
  assert.match(allowHeaders, /content-type/);
  assert.match(allowHeaders, /x-requested-with/);
  const no = await http(proto.port, 'OPTIONS', eioQuery(), {
    headers: { Origin: OTHER_ORIGIN, 'Access-Control-Request-Method': 'POST' },
  });
  assert.equal(no.status, 403);
  assert.equal(no.headers['access-control-allow-origin'], undefined);
});

// The daemon must still be healthy after all of the above.
dtest('the daemons are still serving', async () => {
  assert.equal(await hb.healthz(), 200);
  assert.equal(await proto.healthz(), 200);
  await waitUntil(async () => (await proto.metric('walcast_clients')) === 0, { what: 'no client left', timeoutMs: 15_000 });
});
