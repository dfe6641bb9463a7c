#!/usr/bin/python3
"""A python-socketio client of walcast, for the integration tests: connects with the
client's default transports and auth={"token": ...}, joins a project (join-project with an
ack), and prints what happens as JSON lines on stdout:

  {"type": "connected", "transport": "websocket", "sid": "..."}
  {"type": "joined", "project": "p1", "ack": {"ok": true}}
  {"type": "event", "name": "task:created", "args": [payload, offset]}
  {"type": "disconnected"}

It runs until stdin closes (or a line "quit" arrives), then disconnects.
Usage: walcast_client.py URL TOKEN PROJECT [TRANSPORT ...]
"""
import json
import sys
import threading

import socketio


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    url, token, project = sys.argv[1:4]
    transports = sys.argv[4:] or None  # None: the client's default (polling, then upgrade)
    sio = socketio.Client(reconnection=False)
    connected = threading.Event()

    @sio.event
    def connect():
        emit({"type": "connected", "transport": sio.transport(), "sid": sio.get_sid()})
        connected.set()

    @sio.event
    def connect_error(data):
        emit({"type": "connect_error", "data": data})

    @sio.event
    def disconnect():
        emit({"type": "disconnected"})

    @sio.on("*")
    def any_event(name, *args):
        emit({"type": "event", "name": name, "args": list(args)})

    sio.connect(url, auth={"token": token}, transports=transports, wait_timeout=10)
    connected.wait(10)
    ack = sio.call("join-project", project, timeout=10)
    emit({"type": "joined", "project": project, "ack": ack, "transport": sio.transport()})
    for line in sys.stdin:
        if line.strip() == "transport":
            emit({"type": "transport", "transport": sio.transport()})
        elif line.strip() == "quit":
            break
    sio.disconnect()


if __name__ == "__main__":
    main()
