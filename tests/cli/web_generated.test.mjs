// The demo page compiles against web/generated/, which is `walcast codegen typescript` output
// for examples/walcast.toml, committed. It must be what the current binary writes for the
// current config, byte for byte: a change to either without running
// `walcast codegen typescript --config examples/walcast.toml --out DIR` (from the repo root) and
// copying the files the page uses into web/generated/ fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = process.env.WALCAST_BIN;
const src = process.env.WALCAST_SOURCE_DIR;

test('web/generated/ is what walcast codegen typescript writes for examples/walcast.toml', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'walcast-web-generated-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  // The files name the config as given: the same relative path as the committed ones.
  const r = spawnSync(bin, ['codegen', 'typescript', '--config', 'examples/walcast.toml', '--out', out],
    { cwd: src, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);

  const committed = readdirSync(join(src, 'web', 'generated')).sort();
  assert.ok(committed.includes('socket-events.ts'), `web/generated/ holds socket-events.ts (it has ${committed.join(', ')})`);
  const written = new Set(readdirSync(out));
  for (const name of committed) {
    assert.ok(written.has(name), `web/generated/${name} is not a file walcast codegen typescript writes`);
    const fresh = readFileSync(join(out, name));
    const kept = readFileSync(join(src, 'web', 'generated', name));
    assert.ok(kept.equals(fresh),
      `web/generated/${name} is out of date with examples/walcast.toml: run ` +
      `\`build/walcast codegen typescript --config examples/walcast.toml --out /tmp/gen\` from the repo root ` +
      `and copy ${name} into web/generated/`);
  }
});
