// Helpers for the Engine.IO transport tests: a daemon with [server] heartbeat and payload
// settings, raw HTTP requests (node:http, one connection each, so a test decides what is
// concurrent and can cut a request's socket), and a raw long-polling session.
// Node ESM; only 127.0.0.1 is contacted.

import { request as httpRequest } from 'node:http';
import net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DB, freePort, startDaemon, work, writeConfig } from './daemon.mjs';

export const EIO_PATH = '/socket.io/';
export const RS = '\x1e';

// A TOML value for a [server] key.
const tomlValue = (v) => (Array.isArray(v) ? `[${v.map((x) => JSON.stringify(x)).join(', ')}]`
  : typeof v === 'string' ? JSON.stringify(v) : String(v));

// Starts `walcast run` with the [server] keys of `server` (ping_interval_ms, ping_timeout_ms,
// max_payload, connect_timeout_ms, transports, cors_origins) and, when `recovery` is false,
// connection-state recovery off ([recovery] window_seconds = 0).
export async function startEioDaemon({ cluster, secret, name = 'eio', slot = name, server = {}, recovery = true,
  append = '' }) {
  const port = await freePort();
  const secretFile = join(work(), `${name}-jwt.key`);
  writeFileSync(secretFile, secret);
  const file = writeConfig({ dsn: cluster.dsn(DB), slot, port, secretFile, name });
  const lines = Object.entries(server).map(([k, v]) => `${k} = ${tomlValue(v)}`).join('\n');
  let text = readFileSync(file, 'utf8').replace(/^listen = .*$/m, (l) => (lines ? `${l}\n${lines}` : l));
  if (!recovery) text += '\n[recovery]\nwindow_seconds = 0\n';
  if (append) text += `\n${append}\n`;
  writeFileSync(file, text);
  return startDaemon({ cluster, secret, name, slot, port, configFile: file });
}

// One HTTP request on its own connection. Resolves {status, body, headers} (body as text;
// `raw` as a Buffer), or {status: 0, error} when the connection failed or was reset.
// `onRequest(req)` sees the ClientRequest (to destroy it). Never rejects.
export function http(port, method, path, { body, headers = {}, timeoutMs = 15_000, onRequest } = {}) {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v) => { if (!settled) { settled = true; resolve(v); } };
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const h = { Connection: 'close', ...headers };
    if (data) {
      h['Content-Length'] = String(data.length);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'text/plain;charset=UTF-8';
    }
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: h, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        done({ status: res.statusCode, headers: res.headers, raw, body: raw.toString('utf8'), at: Date.now() });
      });
      res.on('error', (e) => done({ status: 0, error: e.message, at: Date.now() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => done({ status: 0, error: e.message, at: Date.now() }));
    onRequest?.(req);
    if (data) req.write(data);
    req.end();
  });
}

export const eioQuery = (extra = '') => `${EIO_PATH}?EIO=4&transport=polling${extra}`;

// A raw Engine.IO long-polling session, request by request.
export class PollingSession {
  constructor(port, { headers = {} } = {}) {
    this.port = port;
    this.headers = headers;
    this.sid = null;
    this.open = null;
  }

  get path() { return eioQuery(`&sid=${encodeURIComponent(this.sid)}`); }

  // The handshake GET; returns the response (its open packet parsed into this.open).
  async handshake() {
    const r = await http(this.port, 'GET', eioQuery(), { headers: this.headers });
    if (r.status !== 200 || !r.body.startsWith('0')) throw new Error(`handshake: ${r.status} ${r.body ?? r.error}`);
    const [open, ...rest] = r.body.split(RS);
    this.open = JSON.parse(open.slice(1));
    this.sid = this.open.sid;
    r.packets = rest;
    return r;
  }

  get(opts = {}) { return http(this.port, 'GET', this.path, { headers: this.headers, ...opts }); }

  post(body, opts = {}) {
    return http(this.port, 'POST', this.path, { headers: this.headers, ...opts, body });
  }

  // Socket.IO CONNECT on "/" with `auth`, by POST.
  connect(auth) { return this.post(`40${JSON.stringify(auth)}`); }

  // Polls (answering pings) until a packet matching `pred` arrives; returns it. Throws on a
  // non-200 answer or when `timeoutMs` passes. Packets seen are appended to `seen`.
  async pollFor(pred, { timeoutMs = 10_000, seen = [] } = {}) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await this.get({ timeoutMs: Math.max(100, deadline - Date.now()) });
      if (r.status !== 200) throw new Error(`poll answered ${r.status} ${r.body ?? r.error}`);
      const packets = r.body.split(RS);
      seen.push(...packets);
      if (packets.includes('2')) await this.post('3');
      const hit = packets.find(pred);
      if (hit !== undefined) return hit;
    }
    throw new Error(`no matching packet within ${timeoutMs} ms; seen ${JSON.stringify(seen).slice(0, 500)}`);
  }
}

// {code, message} of a refusal body, or null when it is not one.
export function engineError(r) {
  try {
    const v = JSON.parse(r.body);
    return typeof v.code === 'number' ? v : null;
  } catch {
    return null;
  }
}

// A TCP proxy to 127.0.0.1:targetPort that a test can cut, as a network blip would: cut()
// destroys every connection through it, and those that arrive in the next `forMs` (a
// connection the client opened just before the cut may not be accepted yet: without the
// window it would slip through and the client would never see the cut).
export function startProxy(targetPort) {
  const sockets = new Set();
  let blockedUntil = 0;
  const server = net.createServer((client) => {
    if (Date.now() < blockedUntil) {
      client.destroy();
      return;
    }
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
    url: `http://127.0.0.1:${server.address().port}`,
    cut({ forMs = 300 } = {}) {
      blockedUntil = Date.now() + forMs;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close() {
      for (const s of sockets) s.destroy();
      sockets.clear();
      server.close();
    },
  })));
}
