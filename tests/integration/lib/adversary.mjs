// Helpers for the adversary_*.test.mjs files: a config with keys examples/walcast.toml does
// not carry, a TCP proxy the test can block, cut and throttle, plain HTTP GETs on any port,
// and percentiles. Node ESM; only 127.0.0.1 is contacted.

import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';

import { DB, SOURCE_DIR, freePort, startDaemon, work } from './daemon.mjs';

const tomlValue = (v) => (typeof v === 'string' || Array.isArray(v) ? JSON.stringify(v) : String(v));

// examples/walcast.toml with `sections` ({server: {admin_listen: '127.0.0.1:1'}, limits: {..}})
// set: a key already in the file is replaced, a new key goes right under its section's
// header, a section the file lacks is appended.
export function writeConfigWith({ dsn, port, secretFile, sections = {}, name = 'adversary' }) {
  let text = readFileSync(join(SOURCE_DIR, 'examples', 'walcast.toml'), 'utf8');
  const all = {
    ...sections,
    postgres: { dsn, ...sections.postgres },
    server: { listen: `127.0.0.1:${port}`, ...sections.server },
    auth: { jwt_secret_file: secretFile, ...sections.auth },
  };
  for (const [section, keys] of Object.entries(all)) {
    const header = new RegExp(`^\\[${section}\\]\\s*$`, 'm');
    const added = [];
    for (const [key, value] of Object.entries(keys)) {
      if (value === undefined) continue;
      const line = `${key} = ${tomlValue(value)}`;
      const existing = new RegExp(`^${key}\\s*=.*$`, 'm');
      if (header.test(text) && existing.test(text)) text = text.replace(existing, () => line);
      else added.push(line);
    }
    if (added.length === 0) continue;
    if (header.test(text)) text = text.replace(header, (h) => `${h}\n${added.join('\n')}`);
    else text += `\n[${section}]\n${added.join('\n')}\n`;
  }
  const file = join(work(), `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}.toml`);
  writeFileSync(file, text);
  return file;
}

// startDaemon with a config from writeConfigWith. `slot` names the replication slot (one per
// daemon on a cluster).
export async function startDaemonWith({ cluster, secret, sections = {}, slot = 'walcast', name = 'adversary', ...rest }) {
  const port = await freePort();
  const secretFile = join(work(), `${name}-jwt.key`);
  writeFileSync(secretFile, secret ?? '');
  const configFile = writeConfigWith({
    dsn: cluster.dsn(DB), port, secretFile, name,
    sections: { ...sections, postgres: { slot, ...sections.postgres } },
  });
  return startDaemon({ cluster, secret, configFile, port, name, ...rest });
}

// GET http://127.0.0.1:port/path -> {status, body} (status 0 and `error` when no answer).
export function httpGet(port, path, { headers = {}, timeoutMs = 3000 } = {}) {
  return new Promise((resolvePromise) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET', agent: false,
      headers: { Connection: 'close', ...headers }, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolvePromise({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => resolvePromise({ status: 0, body: '', error: e.message }));
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolvePromise({ status: res.statusCode, body: '', upgraded: true });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolvePromise({ status: 0, body: '', error: e.message }));
    req.end();
  });
}

// The q-quantile (0..1) of numbers, nearest rank.
export function percentile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

// A TCP proxy in front of the daemon. block() refuses new connections (accepted and closed at
// once) until unblock(); cut() drops every connection through it; throttle(bytesPerSecond)
// forwards daemon -> client at most that fast, reading the daemon's side only as fast as it
// forwards, so to the daemon the client reads slowly (null: full speed).
export function startProxy(targetPort) {
  const pairs = new Set();
  let blocked = false;
  let rate = null;
  let allowance = 0;
  let forwarded = 0;
  const server = net.createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.on('end', () => client.end());
    // daemon -> client by hand, so it can be throttled: read only what may be forwarded.
    upstream.on('readable', () => pump(pair));
  });
  function pump(pair) {
    const { client, upstream } = pair;
    if (client.destroyed) return;
    for (;;) {
      if (client.writableLength > 256 * 1024) {
        client.once('drain', () => pump(pair));
        return;
      }
      let chunk;
      if (rate === null) {
        chunk = upstream.read();
      } else {
        const n = Math.min(Math.floor(allowance), upstream.readableLength);
        if (n <= 0) return;  // the ticker calls again
        chunk = upstream.read(n);
        if (chunk) allowance -= chunk.length;
      }
      if (!chunk) return;
      forwarded += chunk.length;
      client.write(chunk);
    }
  }
  // Refills the allowance every 20 ms (at most one second's worth banked).
  const ticker = setInterval(() => {
    if (rate === null) return;
    allowance = Math.min(rate, allowance + rate / 50);
    for (const pair of pairs) pump(pair);
  }, 20);
  ticker.unref();
  return new Promise((resolvePromise) => server.listen(0, '127.0.0.1', () => resolvePromise({
    port: server.address().port,
    get forwarded() { return forwarded; },
    get connections() { return pairs.size; },
    block() { blocked = true; },
    unblock() { blocked = false; },
    cut() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    throttle(bytesPerSecond) {
      rate = bytesPerSecond;
      allowance = 0;
      if (rate === null) for (const pair of pairs) pump(pair);
    },
    close() {
      clearInterval(ticker);
      this.cut();
      server.close();
    },
  })));
}

// A daemon metric as a Number, or 0 when this daemon does not export it (an older binary).
export async function metricOr0(daemon, name) {
  const m = await daemon.metrics();
  return m.has(name) ? Number(m.get(name)) : 0;
}
