// `cmake --install` lays out a packaging-ready tree: binary, systemd unit and sysusers entry,
// example config, SQL and docs in the GNUInstallDirs places.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('cmake --install with DESTDIR', () => {
  const dest = mkdtempSync(join(tmpdir(), 'walcast-install-'));
  try {
    // The build's configured prefix (CMAKE_INSTALL_PREFIX, /usr/local by default), under DESTDIR.
    const r = spawnSync('cmake', ['--install', process.env.WALCAST_BUILD_DIR],
      { encoding: 'utf8', env: { ...process.env, DESTDIR: dest } });
    assert.equal(r.status, 0, r.stderr);
    const bin = join(dest, 'usr/local/bin/walcast');
    assert.ok(statSync(bin).mode & 0o111, 'the binary is executable');
    for (const f of ['usr/local/lib/systemd/system/walcast.service', 'usr/local/lib/sysusers.d/walcast.conf',
      'usr/local/share/walcast/examples/walcast.toml', 'usr/local/share/walcast/sql/walcast.sql',
      'usr/local/share/doc/walcast/README.md'])
      assert.ok(existsSync(join(dest, f)), `missing ${f}`);
    const unit = readFileSync(join(dest, 'usr/local/lib/systemd/system/walcast.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/walcast run --config \/usr\/local\/etc\/walcast\/walcast\.toml$/m);
    assert.match(unit, /^StateDirectory=walcast$/m);
    assert.match(readFileSync(join(dest, 'usr/local/lib/sysusers.d/walcast.conf'), 'utf8'), /^u walcast /m);
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
});
