// walcast demo page: a kanban board of the demo project kept live from Socket.IO events,
// an event log and a connection indicator. No framework, no build step: the daemon serves
// this file, /socket.io.min.js (socket.io-client, bundled from npm) and /demo-config.js
// (written by `walcast demo`: token, ids, user names, the initial board).
'use strict';

(function () {
  const STATUSES = ['todo', 'doing', 'done'];
  const STATUS_LABEL = { todo: 'To do', doing: 'Doing', done: 'Done' };
  const LOG_LIMIT = 200;          // log entries kept in the DOM
  const SEEN_LIMIT = 5000;        // eventIds remembered for de-duplication (delivery is at least once)
  // Models whose room is the project, the owner (when not in a project) or the tenant.
  const PROJECT_MODELS = new Set(['task', 'comment', 'timeEntry']);
  const PROJECT_OR_USER_MODELS = new Set(['file', 'note']);
  const USER_MODELS = new Set(['notification']);
  const TENANT_MODELS = new Set(['project', 'noteCategory', 'invitation', 'membership']);

  const $ = (sel, root) => (root || document).querySelector(sel);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // ---------------------------------------------------------------------------------------
  // Configuration

  const cfg = window.WALCAST_DEMO;
  if (!cfg || typeof cfg !== 'object') {
    showBanner('No demo configuration (/demo-config.js). Start the page with `walcast demo`.', 'error');
    setStatus('error', 'no config');
    return;
  }
  const users = cfg.users || {};
  const projectId = cfg.projectId;
  const userIndex = new Map(Object.keys(users).map((id, i) => [id, i]));

  const userName = (id) => (id === null || id === undefined || id === '') ? null : (users[id] || String(id));

  $('#project-name').textContent = cfg.projectName || projectId || '—';
  $('#project-meta').textContent = [projectId && `project:${projectId}`, cfg.tenantId && `tenant:${cfg.tenantId}`]
    .filter(Boolean).join(' · ');
  if (cfg.userId) {
    const viewer = $('#viewer');
    viewer.append(avatar(cfg.userId), el('span', 'viewer-name', `Signed in as ${userName(cfg.userId)}`));
  }

  // ---------------------------------------------------------------------------------------
  // Board state

  const tasks = new Map();   // id -> task fields
  const board = $('#board');

  function positionKey(v) {
    if (v === null || v === undefined || v === '') return Infinity;
    const n = Number(v);
    return Number.isFinite(n) ? n : Infinity;
  }

  function compareTasks(a, b) {
    const pa = positionKey(a.position), pb = positionKey(b.position);
    if (pa !== pb) return pa < pb ? -1 : 1;
    const ca = a.createdAt || '', cb = b.createdAt || '';
    if (ca !== cb) return ca < cb ? -1 : 1;
    return String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0;
  }

  function formatEstimate(v) {
    if (v === null || v === undefined || v === '') return null;
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    return `${Number.isInteger(n) ? n : n.toFixed(2).replace(/0+$/, '').replace(/\.$/, '')} h`;
  }

  // Users of the config get well-spread hues in their listed order; anyone else a hashed one.
  function hue(id) {
    if (userIndex.has(id)) return Math.round((210 + userIndex.get(id) * 137.5) % 360);
    let h = 2166136261;
    for (const ch of String(id)) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
    return h % 360;
  }

  function initials(name) {
    const parts = String(name).trim().split(/\s+/).filter(Boolean);
    if (parts.length === 0) return '?';
    const letters = parts.length === 1 ? Array.from(parts[0])[0] : parts[0][0] + parts[parts.length - 1][0];
    return letters.toUpperCase();
  }

  function avatar(id) {
    const name = userName(id);
    const a = el('span', 'avatar', name ? initials(name) : '–');
    if (name) {
      a.style.setProperty('--h', hue(id));
      a.title = name;
    } else {
      a.classList.add('avatar-none');
    }
    a.setAttribute('aria-hidden', 'true');
    return a;
  }

  function renderCard(task) {
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

  function cardElement(id) {
    for (const node of board.querySelectorAll('.card[data-task-id]')) {
      if (node.dataset.taskId === String(id)) return node;
    }
    return null;
  }

  function flash(node, kind) {
    node.classList.remove('flash-created', 'flash-updated', 'flash-moved');
    void node.offsetWidth; // restart the animation
    node.classList.add(`flash-${kind}`);
  }

  // Puts the card of `task` in its column at its place by position, replacing any old card.
  function placeCard(task, kind) {
    const old = cardElement(task.id);
    const oldStatus = old ? old.closest('.column').dataset.status : null;
    if (old) old.remove();
    const column = board.querySelector(`.column[data-status="${task.status}"]`);
    if (!column) { updateCounts(); return; }   // a status this board has no column for
    const list = $('.cards', column);
    const card = renderCard(task);
    let before = null;
    for (const other of list.children) {
      const t = tasks.get(other.dataset.taskId);
      if (t && compareTasks(task, t) < 0) { before = other; break; }
    }
    list.insertBefore(card, before);
    if (kind) flash(card, kind === 'updated' && oldStatus && oldStatus !== task.status ? 'moved' : kind);
    updateCounts();
  }

  function removeCard(id) {
    const card = cardElement(id);
    if (!card) return;
    // Gone for selectors at once; faded out for the eye.
    delete card.dataset.taskId;
    card.classList.add('leaving');
    setTimeout(() => card.remove(), 260);
    updateCounts();
  }

  function updateCounts() {
    for (const column of board.querySelectorAll('.column')) {
      const n = column.querySelectorAll('.card[data-task-id]').length;
      $('.count', column).textContent = n;
      column.classList.toggle('empty', n === 0);
    }
  }

  function applyTask(operation, payload) {
    const data = payload.data || {};
    const id = String(payload.id !== undefined && typeof payload.id !== 'object' ? payload.id : data.id);
    if (!id || id === 'undefined') return;
    if (operation === 'deleted') {
      tasks.delete(id);
      removeCard(id);
      return;
    }
    const merged = Object.assign({}, tasks.get(id) || {}, data, { id });
    const inProject = (merged.projectId ?? payload.projectId) === projectId;
    if (!inProject) {             // moved to another project, or never ours
      if (tasks.delete(id)) removeCard(id);
      return;
    }
    const existed = tasks.has(id);
    tasks.set(id, merged);
    placeCard(merged, existed ? 'updated' : 'created');
  }

  for (const t of Array.isArray(cfg.tasks) ? cfg.tasks : []) {
    if (!t || t.id === undefined) continue;
    const task = Object.assign({ projectId }, t, { id: String(t.id) });
    tasks.set(task.id, task);
  }
  for (const task of Array.from(tasks.values()).sort(compareTasks)) placeCard(task, null);
  board.dataset.ready = 'true';

  // ---------------------------------------------------------------------------------------
  // Event log

  const logList = $('#log-list');
  const logStats = $('#log-stats');
  let received = 0;
  let lastLsn = null;
  const seen = new Set();
  const seenOrder = [];

  function roomOf(p) {
    const d = p.data || {};
    const model = p.model;
    const project = p.projectId ?? d.projectId;
    const tenant = p.tenantId ?? d.tenantId;
    if (PROJECT_MODELS.has(model)) return project ? `project:${project}` : null;
    if (PROJECT_OR_USER_MODELS.has(model)) return project ? `project:${project}` : d.userId ? `user:${d.userId}` : null;
    if (USER_MODELS.has(model)) return d.userId ? `user:${d.userId}` : null;
    if (TENANT_MODELS.has(model)) return tenant ? `tenant:${tenant}` : null;
    return project ? `project:${project}` : tenant ? `tenant:${tenant}` : null;
  }

  function truncate(s, n) {
    s = String(s);
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  function taskTitle(id) {
    const t = id !== undefined && id !== null ? tasks.get(String(id)) : null;
    return t && t.title ? `“${truncate(t.title, 40)}”` : null;
  }

  function summary(p) {
    const d = p.data || {};
    if (p.bulk) return `${p.count} changes in one transaction (coalesced)`;
    switch (p.model) {
      case 'task': {
        const title = d.title ? `“${truncate(d.title, 48)}”` : `task ${p.id}`;
        if (p.operation === 'updated' && d.status) {
          const before = tasks.get(String(p.id));
          const to = STATUS_LABEL[d.status] || d.status;
          if (before && before.status && before.status !== d.status) {
            return `${title} · ${STATUS_LABEL[before.status] || before.status} → ${to}`;
          }
          return `${title} · ${to}`;
        }
        return title;
      }
      case 'comment': return d.body ? `“${truncate(d.body, 60)}”` + (taskTitle(d.taskId) ? ` on ${taskTitle(d.taskId)}` : '') : null;
      case 'timeEntry': {
        const who = d.userId !== p.actorUserId ? userName(d.userId) : null;
        return d.minutes !== undefined ? `${d.minutes} min logged${who ? ` for ${who}` : ''}` +
          (taskTitle(d.taskId) ? ` on ${taskTitle(d.taskId)}` : '') : null;
      }
      case 'notification': return d.message ? truncate(d.message, 70) : d.kind || null;
      case 'note': return d.title ? `“${truncate(d.title, 60)}”${d.projectId ? '' : ' (personal)'}` : null;
      case 'file': return d.name ? truncate(d.name, 60) : null;
      case 'project': case 'noteCategory': return d.name ? truncate(d.name, 60) : null;
      case 'invitation': return d.email ? truncate(d.email, 60) : null;
      case 'membership': return d.userId ? `${userName(d.userId)}${d.role ? ` · ${d.role}` : ''}` : null;
      default: return null;
    }
  }

  function timeOf(iso) {
    if (!iso) return new Date();
    const d = new Date(String(iso).replace(/(\.\d{3})\d+/, '$1'));
    return Number.isNaN(d.getTime()) ? new Date() : d;
  }

  const pad = (n) => String(n).padStart(2, '0');
  const clock = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

  function addLogEntry(node) {
    logList.prepend(node);
    while (logList.children.length > LOG_LIMIT) logList.lastElementChild.remove();
  }

  function logEvent(event, payload) {
    const p = payload && typeof payload === 'object' ? payload : {};
    const li = el('li', 'entry');
    const op = p.operation || String(event).split(':')[1] || '';
    li.dataset.event = event;
    li.dataset.op = op;
    if (p.eventId) li.dataset.eventId = p.eventId;
    if (p.id !== undefined && p.id !== null && typeof p.id !== 'object') li.dataset.id = String(p.id);

    const head = el('div', 'entry-head');
    head.append(el('span', `event op-${op}`, event));
    const room = roomOf(p);
    if (room) head.append(el('span', 'room', room));
    const when = timeOf(p.committedAt);
    const time = el('time', 'time', clock(when));
    if (p.committedAt) time.dateTime = when.toISOString();
    time.title = p.committedAt ? `committed ${p.committedAt}${p.lsn ? ` · lsn ${p.lsn}` : ''}${p.xid !== undefined ? ` · xid ${p.xid}` : ''}` : '';
    head.append(time);
    li.append(head);

    const body = el('div', 'entry-body');
    const actor = userName(p.actorUserId);
    if (actor) {
      const a = el('span', 'actor');
      a.append(avatar(p.actorUserId), el('span', 'actor-name', actor));
      body.append(a);
    }
    const text = summary(p);
    if (text) body.append(el('span', 'summary', text));
    li.append(body);
    addLogEntry(li);
  }

  function logSystem(text, kind) {
    const li = el('li', `entry system ${kind || ''}`);
    const head = el('div', 'entry-head');
    head.append(el('span', 'system-text', text), el('time', 'time', clock(new Date())));
    li.append(head);
    addLogEntry(li);
  }

  function updateStats() {
    logStats.textContent = `${received} received${lastLsn ? ` · lsn ${lastLsn}` : ''}`;
  }

  function firstTime(eventId) {
    if (!eventId) return true;
    if (seen.has(eventId)) return false;
    seen.add(eventId);
    seenOrder.push(eventId);
    if (seenOrder.length > SEEN_LIMIT) seen.delete(seenOrder.shift());
    return true;
  }

  // ---------------------------------------------------------------------------------------
  // Connection

  function setStatus(state, text) {
    document.body.dataset.connection = state;
    $('#status-text').textContent = text || state;
    document.title = state === 'connected' ? 'walcast demo' : `walcast demo (${text || state})`;
  }

  function showBanner(text, kind) {
    const b = $('#banner');
    b.textContent = text;
    b.className = `banner ${kind || ''}`;
    b.hidden = false;
  }

  function hideBanner() { $('#banner').hidden = true; }

  if (typeof window.io !== 'function') {
    showBanner('socket.io-client did not load (/socket.io.min.js).', 'error');
    setStatus('error', 'no client');
    return;
  }

  // Default options: long-polling first, then the upgrade to WebSocket.
  const socket = window.io(location.origin, { auth: { token: cfg.token } });
  let everConnected = false;

  socket.on('connect', () => {
    setStatus('connected', 'connected');
    hideBanner();
    if (everConnected && !socket.recovered) {
      logSystem('Reconnected: changes made while offline are not on the board; reload to catch up.', 'warn');
    } else if (!everConnected) {
      logSystem(`Connected as ${userName(cfg.userId) || 'unknown user'}`);
    }
    everConnected = true;
    delete document.body.dataset.joined;
    socket.timeout(10000).emit('join-project', projectId, (err, ack) => {
      if (err) {
        logSystem(`join-project ${projectId}: no answer`, 'error');
        return;
      }
      if (ack && ack.ok) {
        document.body.dataset.joined = projectId;
        logSystem(`Joined project:${projectId}`);
      } else {
        const why = (ack && ack.error) || 'refused';
        logSystem(`join-project ${projectId}: ${why}`, 'error');
        showBanner(`The server refused to join project ${projectId}: ${why}.`, 'error');
      }
    });
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
    const message = (err && err.message) || 'error';
    if (socket.active) {
      setStatus('reconnecting', 'reconnecting');
    } else {
      // Refused by the server (e.g. a bad token): socket.io-client stops retrying.
      setStatus('error', message);
      showBanner(`Connection refused by walcast: ${message}.`, 'error');
      logSystem(`Connection refused: ${message}`, 'error');
    }
  });

  socket.io.on('reconnect_attempt', (attempt) => {
    setStatus('reconnecting', attempt > 1 ? `reconnecting (${attempt})` : 'reconnecting');
  });

  socket.onAny((event, payload) => {
    if (payload && typeof payload === 'object' && !firstTime(payload.eventId)) return;
    received += 1;
    if (payload && payload.lsn) lastLsn = payload.lsn;
    updateStats();
    logEvent(event, payload);
    if (payload && payload.model === 'task' && !payload.bulk) {
      applyTask(payload.operation || String(event).split(':')[1], payload);
    } else if (payload && payload.model === 'task' && payload.bulk) {
      showBanner(`A transaction changed ${payload.count} tasks at once; reload to see them all.`, 'warn');
    }
  });

  // For tests and the console.
  window.walcastDemo = { socket, tasks };
})();
