"""Helpers for the `agent-exporter serve` tests: starting the server, certificates, bcrypt hashes.
The textfiles it serves come from devtools/textfiles.py (the writer's own renderer)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from procs import IN_CI, Processes, free_port, http_get, need, wait_until

from devtools.textfiles import serve_argv
from textfile_writer.server.eventloop import Server, ServerOptions, bind
from textfile_writer.server.filecache import TextfileCache
from textfile_writer.server.http11 import Request, Response
from textfile_writer.server.routes import App
from textfile_writer.server.webconfig import WebRuntime


def start_server(procs: Processes, textfile: Path, *args: str, name: str = "serve",
                 scheme: str = "http", env: dict[str, str] | None = None,
                 ready_path: str = "/health") -> tuple[str, int]:
    """Start `agent-exporter serve` on a free loopback port; returns (base URL, pid) once it answers."""
    port = free_port()
    argv = serve_argv("--web.listen-address", f"127.0.0.1:{port}", "--textfile-dir", str(textfile.parent),
                      "--textfile-name", textfile.name, *args)
    proc = procs.start(argv, name, env={**os.environ, **(env or {})})
    base = f"{scheme}://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {procs.log(name)}")
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    wait_until(up, 15, f"the server on port {port}")
    return base, proc.pid


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The real curl client, quiet but for errors, 10 s at most."""
    return subprocess.run([need("curl"), "-sS", "--max-time", "10", *args], capture_output=True, timeout=30,
                          check=False)


def status_of(*args: str) -> int:
    """The HTTP status curl got (0 when it got none)."""
    done = curl("-o", "/dev/null", "-w", "%{http_code}", *args)
    return int(done.stdout or b"0")


def make_certs(directory: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, with openssl."""
    openssl = need("openssl")
    d = directory
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=agent-exporter test CA", "-keyout", "ca.key", "-out", "ca.crt")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
            f"/CN={who}", "-keyout", f"{who}.key", "-out", f"{who}.csr")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{who}.ext", "-out", f"{who}.crt")
    return Certs(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


def bcrypt_hash(password: str, rounds: int = 10) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


__all__ = ["IN_CI", "Certs", "GatedApp", "bcrypt_hash", "closed_by_peer", "free_port", "http_get", "make_certs",
           "need", "running", "start_server", "wait_until"]


# --- the connection loop in-process (tests/unit/server) -------------------------------------------

@contextmanager
def running(app: App, options: ServerOptions | None = None, **kwargs: object) -> Iterator[tuple[Server, int]]:
    """A Server on a free loopback port, serving on a thread until the block ends (then stopped)."""
    sock = bind("127.0.0.1:0")
    port = sock.getsockname()[1]
    server = Server([sock], app, options or ServerOptions(read_timeout=1.0), **kwargs)  # type: ignore[arg-type]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server, port
    finally:
        server.stop()
        t.join(10)
        assert not t.is_alive(), "serve_forever did not return after stop()"


def closed_by_peer(s: socket.socket, timeout: float) -> bool:
    """True when the server closes (or resets) the connection within `timeout`; what it still sends
    before that is read and dropped."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class GatedApp(App):
    """slow() waits for a gate: requests pile up on the workers and in the queue."""

    def __init__(self, textfile: Path) -> None:
        super().__init__(TextfileCache(str(textfile)), 10, WebRuntime())
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)

    def slow(self, req: Request) -> Response:
        self.entered.release()
        self.gate.wait(10)
        return super().slow(req)
