"""A control-socket client run as another user (stdlib only: the system python3 runs it under setpriv).

    control_client.py SOCKET flood N      N connections, a ping on each; prints a tally; holds them until stdin ends
    control_client.py SOCKET chatty       one connection, a ping every 0.1 s; prints "chatting" once answered
    control_client.py SOCKET trickle      one byte every 0.2 s without a newline; prints seconds until cut off
    control_client.py SOCKET idle         connects, sends nothing; prints seconds until cut off
    control_client.py SOCKET raw          each stdin line (hex of bytes) on one connection; prints each reply or
                                         "closed" (then goes on on a new connection)
"""

import contextlib
import json
import signal
import socket
import sys
import time

LIMIT = 120.0  # no client runs longer than this, whatever the agent does


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)  # blocking: waits for room in the listen backlog (a non-blocking one fails with EAGAIN)
    sock.settimeout(5)
    return sock


def read_line(sock):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data.decode()


def flood(path, count):
    held, served, refused, closed, reasons = [], 0, 0, 0, set()
    for _ in range(count):
        try:
            held.append(connect(path))
        except OSError as error:
            reasons.add(f"connect: {error}")
    for sock in held:
        with contextlib.suppress(OSError):  # refused and closed already: its error line may still be waiting
            sock.sendall(b'{"op": "ping"}\n')
        try:
            line = read_line(sock)
        except OSError:
            line = None
        if line is None:
            closed += 1
            continue
        reply = json.loads(line)
        if reply.get("ok"):
            served += 1
        else:
            refused += 1
            reasons.add(reply.get("error"))
    print(json.dumps({"connected": len(held), "served": served, "refused": refused, "closed": closed,
                      "reasons": sorted(reasons)}), flush=True)
    sys.stdin.read()  # hold every connection until the test lets go


def chatty(path):
    sock = connect(path)
    started = time.monotonic()
    said = False
    while time.monotonic() - started < LIMIT:
        try:
            sock.sendall(b'{"op": "ping"}\n')
            line = read_line(sock)
        except OSError:
            line = None
        if line is None:
            print("cut off", flush=True)
            return
        if not said:
            print("chatting", flush=True)
            said = True
        time.sleep(0.1)  # the point of this client: it never stops talking
    print("gave up", flush=True)


def slow(path, trickle):
    sock = connect(path)
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < LIMIT:
        try:
            if trickle:
                sock.sendall(b"{")
            if sock.recv(65536) == b"":
                break
        except TimeoutError:
            continue
        except OSError:
            break
    print(f"{time.monotonic() - started:.2f}", flush=True)


def raw(path, lines):
    sock = connect(path)
    for line in lines:
        for attempt in range(2):  # a connection the agent closed after its last reply: once more on a new one
            try:
                sock.sendall(bytes.fromhex(line) + b"\n")
                reply = read_line(sock)
            except OSError:
                reply = None
            if reply is not None or attempt:
                break
            sock = connect(path)
        print("closed" if reply is None else reply.strip(), flush=True)
        if reply is None:
            sock = connect(path)


if __name__ == "__main__":
    signal.alarm(int(LIMIT) + 30)  # whatever blocks, this client ends
    path, mode, *rest = sys.argv[1:]
    if mode == "flood":
        flood(path, int(rest[0]))
    elif mode == "chatty":
        chatty(path)
    elif mode in ("trickle", "idle"):
        slow(path, mode == "trickle")
    elif mode == "raw":
        raw(path, sys.stdin.read().splitlines())
