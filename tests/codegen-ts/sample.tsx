// A project board written the way the app uses its useSocket hook, against the files
// `walcast codegen typescript` writes for examples/walcast.toml (copied next to them by
// tests/cli/codegen.test.mjs and type-checked with tsc --strict). It must compile whether
// the column types are known (--dsn) or unknown, so it converts ids with String().
import { useEffect, useState } from 'react';

import { SOCKET_EVENTS } from './socket-events';
import type { TaskData, TaskEvent, WalcastSocket } from './socket-events';
import { useSocket } from './use-socket';

async function fetchToken(): Promise<string> {
  const response = await fetch('/api/realtime-token');
  const body = (await response.json()) as { token: string };
  return body.token;
}

async function fetchTasks(projectId: string): Promise<TaskData[]> {
  const response = await fetch(`/api/projects/${encodeURIComponent(projectId)}/tasks`);
  return (await response.json()) as TaskData[];
}

type Board = ReadonlyMap<string, TaskData>;

function applyTaskEvent(board: Board, event: TaskEvent): Board {
  if (event.bulk) return board;  // no data: the caller refetches
  const next = new Map(board);
  const key = String(event.id);
  if (event.operation === 'deleted') next.delete(key);
  else next.set(key, { ...next.get(key), ...event.data });
  return next;
}

export function ProjectBoard({ projectId, realtimeUrl }: { projectId: string; realtimeUrl?: string }) {
  const [board, setBoard] = useState<Board>(new Map());
  const [joinError, setJoinError] = useState<string | null>(null);

  const refetch = () => {
    void fetchTasks(projectId).then((tasks) => setBoard(new Map(tasks.map((t) => [String(t.id), t]))));
  };
  const onTaskEvent = (event: TaskEvent) => {
    if (event.bulk) refetch();
    else setBoard((current) => applyTaskEvent(current, event));
  };

  const { socket, connected, joinProjectRoom, leaveProjectRoom } = useSocket({
    url: realtimeUrl,
    enabled: true,
    getToken: fetchToken,
    onTaskCreated: onTaskEvent,
    onTaskUpdated: (event) => {
      if (!event.bulk && event.actorUserId === 'me') return;  // our own edit, already shown
      onTaskEvent(event);
    },
    onTaskDeleted: (event) => {
      if (event.bulk) return refetch();
      const key: string = String(event.id);
      setBoard((current) => {
        const next = new Map(current);
        next.delete(key);
        return next;
      });
    },
    onResync: (resync) => {
      if (resync !== null) console.warn(`walcast lost events after ${resync.lostAfter}: ${resync.reason}`);
      refetch();
    },
  });

  useEffect(() => {
    refetch();
    void joinProjectRoom(projectId).then((answer) => {
      if (answer.ok) setJoinError(null);
      else setJoinError(answer.error);
    });
    return () => leaveProjectRoom(projectId);
    // refetch reads only projectId
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [projectId, joinProjectRoom, leaveProjectRoom]);

  useEffect(() => {
    if (socket !== null) watchRaw(socket, projectId);
  }, [socket, projectId]);

  return (
    <section>
      <h2>{connected ? 'live' : 'offline'}</h2>
      {joinError !== null && <p role="alert">{joinError}</p>}
      <ul>
        {[...board.entries()].map(([key, task]) => (
          <li key={key}>{String(task.title)}</li>
        ))}
      </ul>
    </section>
  );
}

// The typed socket as an app may also use it directly.
function watchRaw(socket: WalcastSocket, projectId: string): void {
  socket.emit(SOCKET_EVENTS.JOIN_PROJECT, projectId, (answer) => {
    if (!answer.ok && answer.error === 'forbidden') console.warn('no access to', projectId);
  });
  socket.emit('join-project', projectId, { snapshot: 'token' }, (answer) => {
    if (answer.ok && answer.recovered === false) console.info('snapshot too old: refetch');
  });
  socket.emit(SOCKET_EVENTS.LEAVE_PROJECT, projectId);
  socket.on(SOCKET_EVENTS.TASK_CREATED, (event) => {
    const count: number = event.bulk ? event.count : 1;
    console.info(event.model, event.operation, count, event.eventId, event.lsn, event.xid, event.committedAt);
  });
  socket.on(SOCKET_EVENTS.WALCAST_RESYNC, (resync) => console.warn(resync.reason, resync.detail));

  // @ts-expect-error: no such event in the config
  socket.on('task:archived', () => undefined);
  // @ts-expect-error: join-project takes a string project id
  socket.emit('join-project', 42, () => undefined);
  socket.emit('join-project', projectId, (answer) => {
    // @ts-expect-error: not one of walcast's answers
    if (!answer.ok && answer.error === 'nope') return;
  });
}
