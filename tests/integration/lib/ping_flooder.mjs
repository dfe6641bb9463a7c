// A separate process that floods walcast with empty WebSocket ping control frames, for
// adversary_load.test.mjs. Run as `node ping_flooder.mjs '<json>'` with
// {url, tokens: [..one per connection..], connections, durationMs}. Connection i is one of
// four kinds: (i % 4) 0: never sends CONNECT and reads, 1: never sends CONNECT and never
// reads, 2: CONNECTs then floods and reads, 3: CONNECTs then floods and never reads (its TCP
// socket is paused). A connection that ends before the deadline is opened again, so the
// pressure lasts the whole duration. Prints one JSON line of counts on stdout at the end.
// Only 127.0.0.1 is contacted. Its own process, so its busy loop does not delay the test's
// measuring client.

import WebSocket from 'ws';

const cfg = JSON.parse(process.argv[2]);
const deadline = Date.now() + cfg.durationMs;
// Empty ping frames are written straight to the TCP socket, many per write (ws.ping() makes
// one write per frame, far slower than the daemon reads): FIN + opcode 9, masked, length 0,
// a 4-byte masking key. Written only while the kernel took the previous block: the flood is
// as fast as the daemon reads, and this process's memory stays flat.
const PING_FRAME = Buffer.from([0x89, 0x80, 0x5a, 0x5a, 0x5a, 0x5a]);
const PINGS_PER_WRITE = 10_000;
const PING_BLOCK = Buffer.concat(Array.from({ length: PINGS_PER_WRITE }, () => PING_FRAME));
const MAX_UNSENT = 64 * 1024;
const REOPEN_DELAY_MS = 20;

const stats = { opens: 0, upgradesRefused: 0, connectAccepted: 0, connectRefused: 0, pings: 0, closes: {}, errors: 0 };

function open(i) {
  if (Date.now() >= deadline) return;
  const kinds = cfg.kinds ?? [0, 1, 2, 3];
  const kind = kinds[i % kinds.length];
  const ws = new WebSocket(cfg.url, { perMessageDeflate: false, handshakeTimeout: 5000 });
  let flooding = false;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    setTimeout(() => open(i), REOPEN_DELAY_MS);
  };
  const flood = () => {
    if (ended || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() >= deadline) {
      ws.terminate();
      return;
    }
    const socket = ws._socket;
    if (socket && !socket.destroyed && socket.writableLength < MAX_UNSENT) {
      socket.write(PING_BLOCK);
      stats.pings += PINGS_PER_WRITE;
    }
    setImmediate(flood);
  };
  const startFlood = () => {
    if (flooding) return;
    flooding = true;
    if (kind === 1 || kind === 3) ws._socket.pause();
    flood();
  };
  ws.on('open', () => {
    stats.opens++;
    if (kind < 2) startFlood();
  });
  ws.on('message', (data) => {
    const text = data.toString('utf8');
    if (kind >= 2 && !flooding) {
      if (text.startsWith('0{')) ws.send(`40${JSON.stringify({ token: cfg.tokens[i] })}`);
      else if (text.startsWith('40')) { stats.connectAccepted++; startFlood(); } else if (text.startsWith('44')) { stats.connectRefused++; startFlood(); }
    }
  });
  ws.on('unexpected-response', (req, res) => {
    stats.upgradesRefused++;
    res.resume();
    req.destroy();
    end();
  });
  ws.on('error', () => { stats.errors++; end(); });
  ws.on('close', (code) => {
    stats.closes[code] = (stats.closes[code] ?? 0) + 1;
    end();
  });
}

for (let i = 0; i < cfg.connections; i++) open(i);

const finish = setInterval(() => {
  if (Date.now() < deadline) return;
  clearInterval(finish);
  process.stdout.write(`${JSON.stringify(stats)}\n`, () => process.exit(0));
}, 100);
