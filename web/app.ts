// walcast demo page: the demo project's board as the database has it, kept live from
// Socket.IO events, with an event log and a connection indicator. No framework. tsc compiles
// this file to app.js at build time (web/tsconfig.json); `walcast demo` serves it with
// /socket.io.min.js (socket.io-client from npm, a classic script that sets window.io),
// /demo-config.js (token, ids, user names), /generated/socket-events.js (what `walcast codegen
// typescript` writes for examples/walcast.toml: event names, payload types, the typed socket)
// and GET /api/board.
//
// How the board stays exact: /api/board reads the tasks and walcast.snapshot() in one
// transaction; join-project with {snapshot} then sends, before its answer, the room's events of
// every transaction that read did not see, and holds back live events of those it saw. When
// that chain breaks (the join answers recovered:false because walcast's buffer no longer
// reaches back to the read, walcast:resync, a reconnect that is not recovered, a bulk event
// without rows) the page leaves the room if it may be in it, reads the board again and joins
// with the new token. Leaving first matters: socket.io delivers in order, so once the leave is
// answered no event of the old membership can land on the new board.
//
// Test hook (tests only): ?pauseAfterRead=MS waits MS milliseconds (at most 60000) between
// reading the board and joining, with body[data-sync="paused"] meanwhile, so a test can commit
// rows that the read did not see and that only the join's backlog brings.
//
// What tests read on <body>: data-connection (the indicator), data-sync (the Phase below),
// data-joined (live in the project's room), data-board-reads, data-snapshot-joins (joins
// answered recovered:true) and data-backlog (project events the last join brought before its
// answer).

import type { io as socketIo } from 'socket.io-client';

import { SOCKET_EVENTS } from './generated/socket-events.js';
import type {
  JoinProjectAck,
  LeaveProjectAck,
  ServerToClientEvents,
  TaskData,
  TaskEvent,
  WalcastModelEvent,
  WalcastResync,
  WalcastSocket,
} from './generated/socket-events.js';

// What /demo-config.js sets.
interface DemoConfig {
  token: string;
  userId?: string;
  tenantId?: string;
  projectId: string;
  projectName?: string;
  users?: Record<string, string>;
}

declare global {
  interface Window {
    io?: typeof socketIo;
    WALCAST_DEMO?: DemoConfig;
    walcastDemo?: unknown;
  }
}

// GET /api/board: the rows have the columns of a task event's data, with the same JSON types.
interface Board {
  tasks: TaskData[];
  snapshot: string;
}

// A task as the board shows it.
interface Task {
  id: string;
  projectId: string | null;
  title: string | null;
  status: string | null;
  assigneeId: string | null;
  position: unknown;
  estimate: unknown;
  createdAt: string | null;
}

type ModelEventName = Exclude<keyof ServerToClientEvents, typeof SOCKET_EVENTS.WALCAST_RESYNC>;

// Where the page is between reading the board and being live in the project's room.
type Phase = 'leaving' | 'reading' | 'paused' | 'waiting' | 'joining' | 'live' | 'retrying' | 'refused';

const STATUS_LABEL: Record<string, string> = { todo: 'To do', doing: 'Doing', done: 'Done' };
const LOG_LIMIT = 200;          // log entries kept in the DOM
const SEEN_LIMIT = 5000;        // eventIds remembered for de-duplication (delivery is at least once)
const ACK_TIMEOUT_MS = 10000;   // join-project and leave-project answers
const RETRY_MIN_MS = 500;       // first retry of a failed read or join; doubles up to RETRY_MAX_MS
const RETRY_MAX_MS = 15000;
const MAX_PAUSE_MS = 60000;
const BURST_EVENTS = 30;        // more events than this in a second: no animations until it calms
// Models whose room is the project, the owner (when not in a project) or the tenant.
const PROJECT_MODELS = new Set(['task', 'comment', 'timeEntry']);
const PROJECT_OR_USER_MODELS = new Set(['file', 'note']);
const USER_MODELS = new Set(['notification']);
const TENANT_MODELS = new Set(['project', 'noteCategory', 'invitation', 'membership']);
const TASK_EVENTS: ReadonlySet<string> =
  new Set([SOCKET_EVENTS.TASK_CREATED, SOCKET_EVENTS.TASK_UPDATED, SOCKET_EVENTS.TASK_DELETED]);
const MODEL_EVENTS: ModelEventName[] = Object.values(SOCKET_EVENTS).filter(
  (name): name is ModelEventName =>
    name !== SOCKET_EVENTS.WALCAST_RESYNC && name !== SOCKET_EVENTS.JOIN_PROJECT && name !== SOCKET_EVENTS.LEAVE_PROJECT);

function $<E extends Element = HTMLElement>(selector: string, root: ParentNode = document): E {
  const node = root.querySelector<E>(selector);
  if (!node) throw new Error(`${selector} is missing from the page`);
  return node;
}

function el(tag: string, className?: string, text?: unknown): HTMLElement {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

const text = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

// ---------------------------------------------------------------------------------------
// Status and banner

function setStatus(state: string, label?: string): void {
  document.body.dataset.connection = state;
  $('#status-text').textContent = label ?? state;
  document.title = state === 'connected' ? 'walcast demo' : `walcast demo (${label ?? state})`;
}

function showBanner(message: string, kind?: string): void {
  const b = $('#banner');
  b.textContent = message;
  b.className = `banner ${kind ?? ''}`;
  b.hidden = false;
}

function hideBanner(): void { $('#banner').hidden = true; }

// ---------------------------------------------------------------------------------------
// Configuration

const cfg = window.WALCAST_DEMO;
const io = window.io;
if (!cfg || typeof cfg !== 'object') {
  showBanner('No demo configuration (/demo-config.js). Start the page with `walcast demo`.', 'error');
  setStatus('error', 'no config');
} else if (typeof io !== 'function') {
  showBanner('socket.io-client did not load (/socket.io.min.js).', 'error');
  setStatus('error', 'no client');
} else {
  start(cfg, io);
}

function start(cfg: DemoConfig, io: typeof socketIo): void {
  const users = cfg.users ?? {};
  const projectId = cfg.projectId;
  const userIndex = new Map(Object.keys(users).map((id, i) => [id, i]));
  const params = new URLSearchParams(location.search);
  const pauseAfterRead = Math.min(Math.max(Number(params.get('pauseAfterRead')) || 0, 0), MAX_PAUSE_MS);

  const userName = (id: unknown): string | null =>
    id === null || id === undefined || id === '' ? null : (users[String(id)] ?? String(id));

  $('#project-name').textContent = cfg.projectName || projectId || '—';
  $('#project-meta').textContent = [projectId && `project:${projectId}`, cfg.tenantId && `tenant:${cfg.tenantId}`]
    .filter(Boolean).join(' · ');
  if (cfg.userId) $('#viewer').append(avatar(cfg.userId), el('span', 'viewer-name', `Signed in as ${userName(cfg.userId)}`));

  // -------------------------------------------------------------------------------------
  // Board

  const tasks = new Map<string, Task>();
  const cards = new Map<string, HTMLElement>();   // id -> its card on the board
  const shownAs = new WeakMap<Element, Task>();    // card -> the task it shows
  const board = $('#board');

  function positionKey(v: unknown): number {
    if (v === null || v === undefined || v === '') return Infinity;
    const n = Number(v);
    return Number.isFinite(n) ? n : Infinity;
  }

  function compareTasks(a: Task, b: Task): number {
    const pa = positionKey(a.position), pb = positionKey(b.position);
    if (pa !== pb) return pa < pb ? -1 : 1;
    const ca = a.createdAt ?? '', cb = b.createdAt ?? '';
    if (ca !== cb) return ca < cb ? -1 : 1;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  }

  function formatEstimate(v: unknown): string | null {
    if (v === null || v === undefined || v === '') return null;
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    return `${Number.isInteger(n) ? n : n.toFixed(2).replace(/0+$/, '').replace(/\.$/, '')} h`;
  }

  // Users of the config get well-spread hues in their listed order; anyone else a hashed one.
  function hue(id: string): number {
    const index = userIndex.get(id);
    if (index !== undefined) return Math.round((210 + index * 137.5) % 360);
    let h = 2166136261;
    for (const ch of id) h = Math.imul(h ^ (ch.codePointAt(0) ?? 0), 16777619) >>> 0;
    return h % 360;
  }

  function initials(name: string): string {
    const parts = name.trim().split(/\s+/).filter(Boolean);
    const first = parts[0];
    const last = parts[parts.length - 1];
    if (!first || !last) return '?';
    const letters = parts.length === 1 ? (Array.from(first)[0] ?? '?') : `${first[0]}${last[0]}`;
    return letters.toUpperCase();
  }

  function avatar(id: unknown): HTMLElement {
    const name = userName(id);
    const a = el('span', 'avatar', name ? initials(name) : '–');
    if (name) {
      a.style.setProperty('--h', String(hue(String(id))));
      a.title = name;
    } else {
      a.classList.add('avatar-none');
    }
    a.setAttribute('aria-hidden', 'true');
    return a;
  }

  function renderCard(task: Task): HTMLElement {
    const li = el('li', 'card');
    li.dataset.taskId = task.id;
    li.append(el('div', 'card-title', task.title || '(untitled)'));
    const meta = el('div', 'card-meta');
    const who = el('span', 'assignee');
    const name = userName(task.assigneeId);
    who.append(avatar(task.assigneeId), el('span', name ? 'assignee-name' : 'assignee-name muted', name || 'Unassigned'));
    meta.append(who);
    const est = formatEstimate(task.estimate);
    if (est) {
      const e = el('span', 'estimate', est);
      e.title = 'Estimate';
      meta.append(e);
    }
    li.append(meta);
    return li;
  }


  function updateCounts(): void {
    for (const column of board.querySelectorAll<HTMLElement>('.column')) {
      const n = column.querySelectorAll('.card[data-task-id]').length;
      $('.count', column).textContent = String(n);
      column.classList.toggle('empty', n === 0);
    }
  }

  // Counts once for a burst of events (a transaction of thousands must not recount each time).
  let countsPending = false;
  function updateCountsSoon(): void {
    if (countsPending) return;
    countsPending = true;
    setTimeout(() => { countsPending = false; updateCounts(); }, 50);
  }

  // A transaction of thousands of rows arrives as thousands of events: animating each card and
  // log entry would have the browser repaint them all for seconds. Calm: under BURST_EVENTS in
  // the last second.
  let burstStart = 0;
  let burstEvents = 0;
  function noteEvent(): void {
    const now = performance.now();
    if (now - burstStart > 1000) {
      burstStart = now;
      burstEvents = 0;
    }
    burstEvents += 1;
  }
  const calm = () => burstEvents <= BURST_EVENTS;

  // Puts the card of `task` in its column at its place by position, replacing any old card.
  // Cards are new elements, so a flash class starts its animation without a forced layout.
  function placeCard(task: Task, kind: 'created' | 'updated'): void {
    const old = cards.get(task.id);
    const oldStatus = old?.closest<HTMLElement>('.column')?.dataset.status ?? null;
    old?.remove();
    cards.delete(task.id);
    updateCountsSoon();
    const column = board.querySelector<HTMLElement>(`.column[data-status="${CSS.escape(task.status ?? '')}"]`);
    if (!column) return;   // a status this board has no column for
    const list = $('.cards', column);
    const card = renderCard(task);
    cards.set(task.id, card);
    shownAs.set(card, task);
    // Binary search: the column is in board order (cards fading out keep their place).
    const children = list.children;
    let lo = 0, hi = children.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const other = children[mid];
      const t = other ? shownAs.get(other) : undefined;
      if (t && compareTasks(task, t) < 0) hi = mid;
      else lo = mid + 1;
    }
    list.insertBefore(card, children[lo] ?? null);
    if (calm()) card.classList.add(`flash-${kind === 'updated' && oldStatus && oldStatus !== task.status ? 'moved' : kind}`);
  }

  function removeCard(id: string): void {
    const card = cards.get(id);
    if (!card) return;
    cards.delete(id);
    updateCountsSoon();
    if (!calm()) {
      card.remove();
      return;
    }
    // Gone for selectors at once; faded out for the eye.
    delete card.dataset.taskId;
    card.classList.add('leaving');
    setTimeout(() => card.remove(), 260);
  }

  // `data` over `base`: a column the data carries replaces the old value, others stay.
  function mergeTask(base: Task | undefined, id: string, data: TaskData): Task {
    const has = (column: keyof TaskData) => Object.prototype.hasOwnProperty.call(data, column);
    return {
      id,
      projectId: has('projectId') ? text(data.projectId) : base?.projectId ?? null,
      title: has('title') ? text(data.title) : base?.title ?? null,
      status: has('status') ? text(data.status) : base?.status ?? null,
      assigneeId: has('assigneeId') ? text(data.assigneeId) : base?.assigneeId ?? null,
      position: has('position') ? data.position : base?.position ?? null,
      estimate: has('estimate') ? data.estimate : base?.estimate ?? null,
      createdAt: has('createdAt') ? text(data.createdAt) : base?.createdAt ?? null,
    };
  }

  // The board as read: every card replaced, no animation.
  function showBoard(rows: TaskData[]): void {
    tasks.clear();
    cards.clear();
    for (const card of Array.from(board.querySelectorAll('.card'))) card.remove();
    for (const row of rows) {
      const id = text(row.id);
      if (id !== null) tasks.set(id, mergeTask(undefined, id, row));
    }
    // Column by column in board order, each appended at once.
    const lists = new Map<string, DocumentFragment>();
    for (const column of board.querySelectorAll<HTMLElement>('.column')) lists.set(column.dataset.status ?? '', document.createDocumentFragment());
    for (const task of Array.from(tasks.values()).sort(compareTasks)) {
      const list = lists.get(task.status ?? '');
      if (!list) continue;   // a status this board has no column for
      const card = renderCard(task);
      cards.set(task.id, card);
      shownAs.set(card, task);
      list.append(card);
    }
    for (const column of board.querySelectorAll<HTMLElement>('.column')) {
      const list = lists.get(column.dataset.status ?? '');
      if (list) $('.cards', column).append(list);
    }
    updateCounts();
    board.dataset.ready = 'true';
  }

  function applyTask(event: TaskEvent): void {
    if (event.bulk) return;
    const id = event.id !== null && event.id !== undefined && typeof event.id !== 'object' ? String(event.id) : text(event.data.id);
    if (id === null) return;
    if (event.operation === 'deleted') {
      tasks.delete(id);
      removeCard(id);
      return;
    }
    const merged = mergeTask(tasks.get(id), id, event.data);
    if ((merged.projectId ?? event.projectId) !== projectId) {   // moved to another project, or never ours
      if (tasks.delete(id)) removeCard(id);
      return;
    }
    const existed = tasks.has(id);
    tasks.set(id, merged);
    placeCard(merged, existed ? 'updated' : 'created');
  }

  // -------------------------------------------------------------------------------------
  // Event log

  const logList = $('#log-list');
  const logStats = $('#log-stats');
  let received = 0;
  let lastLsn: string | null = null;
  const seen = new Set<string>();
  const seenOrder: string[] = [];

  // The columns of an event's data by name, whatever its model (for the log).
  const fields = (p: WalcastModelEvent): Readonly<Record<string, unknown>> =>
    (p.bulk ? {} : Object.fromEntries(Object.entries(p.data)));

  function roomOf(p: WalcastModelEvent): string | null {
    const d = fields(p);
    const project = p.projectId ?? text(d.projectId);
    const tenant = p.tenantId ?? text(d.tenantId);
    const user = text(d.userId);
    if (PROJECT_MODELS.has(p.model)) return project ? `project:${project}` : null;
    if (PROJECT_OR_USER_MODELS.has(p.model)) return project ? `project:${project}` : user ? `user:${user}` : null;
    if (USER_MODELS.has(p.model)) return user ? `user:${user}` : null;
    if (TENANT_MODELS.has(p.model)) return tenant ? `tenant:${tenant}` : null;
    return project ? `project:${project}` : tenant ? `tenant:${tenant}` : null;
  }

  function truncate(s: unknown, n: number): string {
    const str = String(s);
    return str.length > n ? `${str.slice(0, n - 1)}…` : str;
  }

  function taskTitle(id: unknown): string | null {
    const t = id !== undefined && id !== null ? tasks.get(String(id)) : undefined;
    return t && t.title ? `“${truncate(t.title, 40)}”` : null;
  }

  function summary(p: WalcastModelEvent): string | null {
    if (p.bulk) return `${p.count} changes in one transaction (coalesced)`;
    const d = fields(p);
    switch (p.model) {
      case 'task': {
        const title = d.title ? `“${truncate(d.title, 48)}”` : `task ${String(p.id)}`;
        if (p.operation === 'updated' && d.status) {
          const before = tasks.get(String(p.id));
          const status = String(d.status);
          const to = STATUS_LABEL[status] ?? status;
          if (before && before.status && before.status !== status) {
            return `${title} · ${STATUS_LABEL[before.status] ?? before.status} → ${to}`;
          }
          return `${title} · ${to}`;
        }
        return title;
      }
      case 'comment': {
        if (!d.body) return null;
        const on = taskTitle(d.taskId);
        return `“${truncate(d.body, 60)}”${on ? ` on ${on}` : ''}`;
      }
      case 'timeEntry': {
        if (d.minutes === undefined) return null;
        const who = d.userId !== p.actorUserId ? userName(d.userId) : null;
        const on = taskTitle(d.taskId);
        return `${String(d.minutes)} min logged${who ? ` for ${who}` : ''}${on ? ` on ${on}` : ''}`;
      }
      case 'notification': return d.message ? truncate(d.message, 70) : text(d.kind);
      case 'note': return d.title ? `“${truncate(d.title, 60)}”${d.projectId ? '' : ' (personal)'}` : null;
      case 'file': return d.name ? truncate(d.name, 60) : null;
      case 'project': case 'noteCategory': return d.name ? truncate(d.name, 60) : null;
      case 'invitation': return d.email ? truncate(d.email, 60) : null;
      case 'membership': return d.userId ? `${userName(d.userId)}${d.role ? ` · ${String(d.role)}` : ''}` : null;
      default: return null;
    }
  }

  function timeOf(iso: string | null | undefined): Date {
    if (!iso) return new Date();
    const d = new Date(iso.replace(/(\.\d{3})\d+/, '$1'));
    return Number.isNaN(d.getTime()) ? new Date() : d;
  }

  const pad = (n: number) => String(n).padStart(2, '0');
  const clock = (d: Date) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

  function addLogEntry(node: HTMLElement): void {
    logList.prepend(node);
    while (logList.children.length > LOG_LIMIT) logList.lastElementChild?.remove();
  }

  function logEvent(name: string, p: WalcastModelEvent): void {
    const li = el('li', 'entry');
    if (!calm()) li.style.animation = 'none';
    li.dataset.event = name;
    li.dataset.op = p.operation;
    li.dataset.eventId = p.eventId;
    if (!p.bulk && p.id !== undefined && p.id !== null && typeof p.id !== 'object') li.dataset.id = String(p.id);

    const head = el('div', 'entry-head');
    head.append(el('span', `event op-${p.operation}`, name));
    const room = roomOf(p);
    if (room) head.append(el('span', 'room', room));
    const when = timeOf(p.committedAt);
    const time = el('time', 'time', clock(when)) as HTMLTimeElement;
    if (p.committedAt) time.dateTime = when.toISOString();
    time.title = p.committedAt ? `committed ${p.committedAt}${p.lsn ? ` · lsn ${p.lsn}` : ''} · xid ${p.xid}` : '';
    head.append(time);
    li.append(head);

    const body = el('div', 'entry-body');
    const actor = userName(p.actorUserId);
    if (actor) {
      const a = el('span', 'actor');
      a.append(avatar(p.actorUserId), el('span', 'actor-name', actor));
      body.append(a);
    }
    const said = summary(p);
    if (said) body.append(el('span', 'summary', said));
    li.append(body);
    addLogEntry(li);
  }

  function logSystem(message: string, kind?: string): void {
    const li = el('li', `entry system ${kind ?? ''}`);
    const head = el('div', 'entry-head');
    head.append(el('span', 'system-text', message), el('time', 'time', clock(new Date())));
    li.append(head);
    addLogEntry(li);
  }

  function firstTime(eventId: string): boolean {
    if (seen.has(eventId)) return false;
    seen.add(eventId);
    seenOrder.push(eventId);
    if (seenOrder.length > SEEN_LIMIT) seen.delete(seenOrder.shift() ?? '');
    return true;
  }

  // Every model event: de-duplicated, counted and logged. False for a duplicate.
  function receive(name: string, event: WalcastModelEvent): boolean {
    if (!firstTime(event.eventId)) return false;
    noteEvent();
    received += 1;
    if (phase === 'joining' && roomOf(event) === `project:${projectId}`) backlog += 1;
    lastLsn = event.lsn;
    logStats.textContent = `${received} received · lsn ${lastLsn}`;
    logEvent(name, event);
    return true;
  }

  // -------------------------------------------------------------------------------------
  // Reading the board and joining the project with its snapshot

  // Default options: long-polling first, then the upgrade to WebSocket.
  const socket: WalcastSocket = io(location.origin, { auth: { token: cfg.token } });

  let phase: Phase = 'reading';
  let generation = 0;          // the sync in charge; an older one stops at its next step
  let mayBeInRoom = false;     // this session may be in project:<id> (a join was sent on it)
  let backlog = 0;             // project events received between the join and its answer
  let boardReads = 0;
  let snapshotJoins = 0;
  let everConnected = false;

  function setPhase(next: Phase): void {
    phase = next;
    document.body.dataset.sync = next;
    if (next === 'live' && socket.connected) document.body.dataset.joined = projectId;
    else delete document.body.dataset.joined;
    if (socket.connected) setStatus('connected', next === 'live' ? 'connected' : 'syncing');
  }

  function untilConnected(): Promise<void> {
    if (socket.connected) return Promise.resolve();
    return new Promise((resolve) => socket.once('connect', () => resolve()));
  }

  async function readBoard(): Promise<Board> {
    const response = await fetch('/api/board', { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`/api/board answered ${response.status}`);
    const body = (await response.json()) as Partial<Board>;
    if (!Array.isArray(body.tasks) || typeof body.snapshot !== 'string') throw new Error('/api/board answered no board');
    return { tasks: body.tasks, snapshot: body.snapshot };
  }

  function join(snapshot: string): Promise<JoinProjectAck> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('join-project was not answered')), ACK_TIMEOUT_MS);
      const onAnswer = (ack: JoinProjectAck): void => {
        clearTimeout(timer);
        resolve(ack);
      };
      socket.emit(SOCKET_EVENTS.JOIN_PROJECT, projectId, { snapshot }, onAnswer);
    });
  }

  function leave(): Promise<LeaveProjectAck> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('leave-project was not answered')), ACK_TIMEOUT_MS);
      const onAnswer = (ack: LeaveProjectAck): void => {
        clearTimeout(timer);
        resolve(ack);
      };
      socket.emit(SOCKET_EVENTS.LEAVE_PROJECT, projectId, onAnswer);
    });
  }

  // Starts over: (leave,) read, (pause,) join with the read's snapshot. A newer call takes over.
  function sync(reason: string): void {
    const gen = ++generation;
    void runSync(gen, reason);
  }

  async function runSync(gen: number, reason: string): Promise<void> {
    const stale = () => gen !== generation;
    let failures = 0;
    for (;;) {
      if (failures > 0) {
        setPhase('retrying');
        await sleep(Math.min(RETRY_MIN_MS * 2 ** (failures - 1), RETRY_MAX_MS));
        if (stale()) return;
      }
      try {
        if (mayBeInRoom) {
          setPhase('leaving');
          await untilConnected();
          if (stale()) return;
          await leave();
          if (stale()) return;
          mayBeInRoom = false;
        }
        setPhase('reading');
        const read = await readBoard();
        if (stale()) return;
        boardReads += 1;
        document.body.dataset.boardReads = String(boardReads);
        // A new board: ids seen before it may come again in the join's backlog, and must apply.
        seen.clear();
        seenOrder.length = 0;
        showBoard(read.tasks);
        logSystem(`Board read (${reason}): ${read.tasks.length} tasks`);
        if (pauseAfterRead > 0) {
          setPhase('paused');
          await sleep(pauseAfterRead);
          if (stale()) return;
        }
        setPhase('waiting');
        await untilConnected();
        if (stale()) return;
        setPhase('joining');
        backlog = 0;
        mayBeInRoom = true;
        const ack = await join(read.snapshot);
        if (stale()) return;
        if (!ack.ok) {
          if (ack.error === 'busy') throw new Error('walcast is busy');
          mayBeInRoom = false;
          setPhase('refused');
          logSystem(`join-project ${projectId}: ${ack.error}`, 'error');
          showBanner(`The server refused to join project ${projectId}: ${ack.error}.`, 'error');
          return;
        }
        if (ack.recovered !== true) {
          // Joined, but walcast no longer holds every event since the read: read again.
          throw new Error('the read is older than walcast\'s buffer');
        }
        snapshotJoins += 1;
        document.body.dataset.snapshotJoins = String(snapshotJoins);
        document.body.dataset.backlog = String(backlog);
        hideBanner();
        setPhase('live');
        logSystem(`Joined project:${projectId} from the board's snapshot` +
          (backlog ? ` (${backlog} event${backlog === 1 ? '' : 's'} since the read)` : ''));
        return;
      } catch (err) {
        if (stale()) return;
        failures += 1;
        logSystem(`${errorText(err)}: reading the board again`, 'warn');
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Events

  for (const name of MODEL_EVENTS) {
    if (TASK_EVENTS.has(name)) continue;
    socket.on(name, (event: WalcastModelEvent) => { receive(name, event); });
  }
  const onTaskEvent = (event: TaskEvent): void => {
    if (!receive(`task:${event.operation}`, event)) return;
    if (event.bulk) {
      // No rows: only a new read shows what the transaction did.
      sync('bulk change');
      return;
    }
    applyTask(event);
  };
  socket.on(SOCKET_EVENTS.TASK_CREATED, onTaskEvent);
  socket.on(SOCKET_EVENTS.TASK_UPDATED, onTaskEvent);
  socket.on(SOCKET_EVENTS.TASK_DELETED, onTaskEvent);

  socket.on(SOCKET_EVENTS.WALCAST_RESYNC, (resync: WalcastResync) => {
    // walcast closes the connection next; the reconnect is a new session. The sync started
    // here finds that out (its leave is not answered) or goes through if the session stays.
    logSystem(`walcast lost events (${resync.reason}, after ${resync.lostAfter}): reading the board again`, 'warn');
    sync('walcast:resync');
  });

  socket.on('connect', () => {
    setStatus('connected', phase === 'live' ? 'connected' : 'syncing');
    // socket.recovered is undefined, not false, when walcast runs with recovery off.
    const recovered = socket.recovered === true;
    if (!everConnected) logSystem(`Connected as ${userName(cfg.userId) ?? 'unknown user'}`);
    else if (recovered) logSystem('Reconnected: the session resumed with every event it missed');
    else logSystem('Reconnected as a new session: reading the board again', 'warn');
    everConnected = true;
    if (recovered) {
      setPhase(phase);
      return;
    }
    // A new session is in no room. A sync that has not sent its join yet joins here by
    // itself; one that was joined, joining or leaving starts over.
    mayBeInRoom = false;
    if (phase === 'live' || phase === 'joining' || phase === 'leaving' || phase === 'refused') sync('reconnect');
  });

  socket.on('disconnect', (reason) => {
    delete document.body.dataset.joined;
    logSystem(`Disconnected (${reason})`, 'warn');
    if (reason === 'io client disconnect') {
      setStatus('offline', 'offline');
      return;
    }
    setStatus('reconnecting', 'reconnecting');
    if (reason === 'io server disconnect') {
      // The client does not reconnect by itself after a server-side disconnect.
      setTimeout(() => { if (!socket.connected) socket.connect(); }, 2000);
    }
  });

  socket.on('connect_error', (err) => {
    if (socket.active) {
      setStatus('reconnecting', 'reconnecting');
    } else {
      // Refused by the server (e.g. a bad token): socket.io-client stops retrying.
      setStatus('error', err.message);
      showBanner(`Connection refused by walcast: ${err.message}.`, 'error');
      logSystem(`Connection refused: ${err.message}`, 'error');
    }
  });

  socket.io.on('reconnect_attempt', (attempt) => {
    setStatus('reconnecting', attempt > 1 ? `reconnecting (${attempt})` : 'reconnecting');
  });

  sync('page load');

  // For tests and the console.
  window.walcastDemo = { socket, tasks, sync };
}
