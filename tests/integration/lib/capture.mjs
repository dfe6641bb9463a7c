// wal2json format-version 2 captures (pg_recvlogical output, `walcast run --record`) as the
// tests read them: no sockets, no processes, nothing but parsing.

// "2026-11-26 04:35:40.477297+00" / "2026-11-26T04:35:40.477297Z" -> microseconds since epoch.
export function micros(ts) {
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(?:\+00(?::?00)?|Z)$/.exec(String(ts));
  if (!m) throw new Error(`not a UTC timestamp: ${JSON.stringify(ts)}`);
  return BigInt(Date.parse(`${m[1]}T${m[2]}Z`)) * 1000n + BigInt((m[3] ?? '').padEnd(6, '0'));
}

// wal2json v2 lines -> committed transactions in commit order. Each change carries `row`
// (new row; the old row, from identity, for a DELETE; null for TRUNCATE) as {column: value}.
// `abandoned` counts transactions a later B cut short and `open` says the text ends inside
// one: both happen in the --record file of a killed daemon, neither in a clean capture.
export function parseCapture(text) {
  const txns = [];
  const nonTransactional = [];
  let cur = null;
  let abandoned = 0;
  for (const [n, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let rec;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new Error(`capture line ${n + 1} is not JSON (${e.message}): ${line.slice(0, 200)}`);
    }
    switch (rec.action) {
      case 'B':
        if (cur) abandoned++;
        cur = { xid: rec.xid, begin: rec.lsn, changes: [], messages: [] };
        break;
      case 'C':
        if (!cur || cur.xid !== rec.xid) throw new Error(`capture line ${n + 1}: C without its B`);
        cur.end = rec.nextlsn;
        cur.commitLsn = rec.lsn;
        cur.timestamp = rec.timestamp;
        txns.push(cur);
        cur = null;
        break;
      case 'M':
        if (!rec.transactional) nonTransactional.push(rec);
        else if (cur) cur.messages.push({ ...rec, index: cur.changes.length });
        break;
      default: {
        if (!cur) throw new Error(`capture line ${n + 1}: change outside a transaction`);
        const cols = rec.action === 'D' ? rec.identity : rec.columns;
        const row = cols ? Object.fromEntries(cols.map((c) => [c.name, c.value])) : null;
        cur.changes.push({ action: rec.action, schema: rec.schema, table: rec.table, row, line: n + 1 });
      }
    }
  }
  return { txns, nonTransactional, abandoned, open: cur !== null };
}
