"""Hostile clients for the server's tests, run as a process of their own (stopped by PID):

    python -m devtools.floods MODE HOST PORT COUNT [--source ADDR] [--user NAME]

Each mode keeps COUNT connections open and opens a new one whenever one is closed, as a
reconnecting attacker does, with one selector loop (no thread per connection):

- `idle`: connect and send nothing;
- `tls-hello`: send the first bytes of a TLS ClientHello and stall (a handshake that never ends);
- `bad-auth`: send `GET /metrics` with Basic credentials for USER and a fresh wrong password,
  read the answer, and send again on the same connection (so each request costs the server a
  bcrypt check, never a remembered failure).

Once a second it prints one line: `open=N opened=TOTAL answers=TOTAL` (sockets open now,
connections established so far, answers read), so a test can check the flood was real.
"""

from __future__ import annotations

import argparse
import base64
import os
import selectors
import socket
import sys
import time

# A TLS 1.x record header announcing a 512-byte handshake message, and the start of a ClientHello.
_TLS_HELLO_START = bytes.fromhex("160301020001") + b"\x00\x01\xfc\x03\x03" + os.urandom(16)


def _request(user: str, counter: int) -> bytes:
    token = base64.b64encode(f"{user}:wrong-{os.getpid()}-{counter}".encode()).decode()
    return (f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n\r\n").encode()


def run(mode: str, host: str, port: int, count: int, source: str | None, user: str) -> None:
    sel = selectors.DefaultSelector()
    opened = answers = sent = 0
    open_socks: set[socket.socket] = set()

    def open_one() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            s.bind((source, 0))
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return
        open_socks.add(s)
        sel.register(s, selectors.EVENT_WRITE, "connecting")

    def drop(s: socket.socket) -> None:
        sel.unregister(s)
        open_socks.discard(s)
        s.close()

    next_report = time.monotonic() + 1
    while True:
        while len(open_socks) < count:
            open_one()
        for key, _events in sel.select(timeout=0.2):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            if key.data == "connecting":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    drop(s)
                    continue
                opened += 1  # connected
                try:
                    if mode == "tls-hello":
                        s.send(_TLS_HELLO_START)
                    elif mode == "bad-auth":
                        sent += 1
                        s.send(_request(user, sent))
                except OSError:
                    drop(s)
                    continue
                sel.modify(s, selectors.EVENT_READ, "open")
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                drop(s)
                continue
            if mode == "bad-auth" and data.startswith(b"HTTP/1.1 "):
                answers += 1
                sent += 1
                try:
                    s.send(_request(user, sent))
                except OSError:
                    drop(s)
        if time.monotonic() >= next_report:
            next_report += 1
            print(f"open={len(open_socks)} opened={opened} answers={answers}", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m devtools.floods")
    p.add_argument("mode", choices=("idle", "tls-hello", "bad-auth"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--source", default=None, help="local address to connect from")
    p.add_argument("--user", default="prometheus")
    args = p.parse_args(argv)
    try:
        run(args.mode, args.host, args.port, args.count, args.source, args.user)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
