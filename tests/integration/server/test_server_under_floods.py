"""`agent-exporter serve` as a real process under the hostile review's floods, with real clients:
slowhttptest's slow readers, idle and reconnecting connections, stalled TLS ClientHellos, wrong
passwords by the hundred, and SIGHUP with configurations that must be refused.

Each flood runs in a process of its own (devtools.floods or slowhttptest), stopped by PID. Scrape
times are measured and reported; the bound asserted is the issue's 1 s with room for a loaded
2-CPU machine (p50 under 1 s, none over 3 s).
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import Processes, wait_until
from server_fixtures import Certs, bcrypt_hash, make_certs, need, start_server

from devtools.stack import REPO
from devtools.textfiles import Agent, render, write_textfile

pytestmark = pytest.mark.integration



def kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def curl_time(*args: str) -> tuple[int, float]:
    """(HTTP status, seconds) of one request by curl, from a fresh connection."""
    done = subprocess.run([need("curl"), "-sS", "--max-time", "15", "-o", "/dev/null", "-w",
                           "%{http_code} %{time_total}", *args], capture_output=True, timeout=30, check=False)
    code, _, total = done.stdout.decode().partition(" ")
    return int(code or 0), float(total or 99)


def scrapes(n: int, *args: str) -> list[float]:
    times = []
    for _ in range(n):
        status, seconds = curl_time(*args)
        assert status == 200, f"a scrape got {status} after {seconds:.2f}s"
        times.append(seconds)
        time.sleep(0.1)
    return times


def assert_fast(times: list[float], what: str, typical: float = 1.0, worst: float = 3.0) -> None:
    """Half the scrapes within `typical` and none beyond `worst`: a busy 2-CPU machine (the suite runs
    beside a CPU hog too) stretches a single one, while a server that makes scrapes wait for a
    timeout fails the median."""
    p50 = statistics.median(times)
    print(f"\n{what}: scrape p50 {p50:.3f}s max {max(times):.3f}s over {len(times)}")
    assert p50 < typical and max(times) < worst, (what, times)


def flood(procs: Processes, name: str, mode: str, port: int, count: int, *args: str) -> None:
    procs.start([sys.executable, "-m", "devtools.floods", mode, "127.0.0.1", str(port), str(count), *args],
                name, cwd=REPO)


def flood_stats(procs: Processes, name: str) -> dict[str, int]:
    lines = re.findall(r"open=(\d+) opened=(\d+) answers=(\d+)", procs.log(name))
    if not lines:
        return {"open": 0, "opened": 0, "answers": 0}
    return dict(zip(("open", "opened", "answers"), map(int, lines[-1]), strict=True))


def test_slow_readers_do_not_multiply_memory(tmp_path: Path, procs: Processes) -> None:
    """slowhttptest -X: 1000 connections ask for a 2.2 MB /metrics and read it a few bytes at a
    time. Each used to hold its own copy of the body (RSS 30 MB -> 2.2 GB); now they share one."""
    slowhttptest = need("slowhttptest")
    path = tmp_path / "big" / "agents.prom"
    path.parent.mkdir()
    write_textfile(path, render([Agent(f"agent-{i:05d}") for i in range(2300)]))
    size = path.stat().st_size
    assert 2_000_000 < size < 2_600_000
    base, pid = start_server(procs, path, "--web.max-connections", "1000")
    assert curl_time(f"{base}/metrics")[0] == 200  # the file is cached before the flood
    rss_before = kb(pid, "VmRSS")
    fds_before = open_fds(pid)
    procs.start([slowhttptest, "-X", "-c", "1000", "-r", "250", "-l", "20", "-w", "512", "-y", "1024",
                 "-n", "5", "-z", "32", "-k", "3", "-p", "5", "-u", f"{base}/metrics"], "slowhttptest")
    peak_rss = peak_conns = 0
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        peak_rss = max(peak_rss, kb(pid, "VmRSS"))
        peak_conns = max(peak_conns, open_fds(pid) - fds_before)
        time.sleep(0.2)
    during = scrapes(5, f"{base}/metrics")
    hwm = kb(pid, "VmHWM")
    growth_mb = (max(peak_rss, hwm) - rss_before) / 1024
    print(f"\nslow readers: {peak_conns} connections at peak, body {size / 1e6:.2f} MB, RSS before "
          f"{rss_before / 1024:.1f} MB, peak {peak_rss / 1024:.1f} MB, VmHWM {hwm / 1024:.1f} MB")
    assert peak_conns >= 500, "the flood never held enough connections to measure anything"
    # one copy per connection would be peak_conns x size (over 1 GB); shared, it stays flat
    assert growth_mb < 100, (growth_mb, peak_conns)
    assert_fast(during, "slow readers")


def test_a_scrape_gets_in_while_idle_connections_fill_the_table(textfile: Path, procs: Processes) -> None:
    """1000 idle connections held (each reopened as soon as the server closes it): a scrape used
    to wait for the read timeout in the kernel's backlog; now the oldest idle one makes room."""
    base, pid = start_server(procs, textfile, "--web.max-connections", "1000")
    port = int(base.rsplit(":", 1)[1])
    flood(procs, "idle", "idle", port, 1000)
    wait_until(lambda: open_fds(pid) >= 1000, 20, "1000 idle connections on the server")
    times = scrapes(10, f"{base}/metrics")
    assert_fast(times, "1000 idle connections")
    assert flood_stats(procs, "idle")["open"] >= 990


def test_a_scrape_gets_in_through_a_reconnect_flood(textfile: Path, procs: Processes) -> None:
    """A client that reconnects whenever closed, from more connections than the server holds:
    every eviction makes it reconnect at once, so the churn runs as fast as the loop accepts."""
    base, _pid = start_server(procs, textfile, "--web.max-connections", "500")
    port = int(base.rsplit(":", 1)[1])
    flood(procs, "reconnect", "idle", port, 700)
    wait_until(lambda: flood_stats(procs, "reconnect")["opened"] >= 2000, 30, "the flood to churn")
    before = flood_stats(procs, "reconnect")["opened"]
    t = time.monotonic()
    times = scrapes(10, f"{base}/metrics")
    rate = (flood_stats(procs, "reconnect")["opened"] - before) / (time.monotonic() - t)
    print(f"\nreconnect flood: about {rate:.0f} new connections/s during the scrapes")
    assert rate > 50, "the flood did not keep reconnecting"
    assert_fast(times, "reconnect flood")


def test_a_tls_scrape_gets_in_past_stalled_client_hellos(textfile: Path, tmp_path: Path,
                                                         procs: Processes) -> None:
    certs: Certs = make_certs(tmp_path / "certs")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n")
    base, pid = start_server(procs, textfile, "--web.config.file", str(web), "--web.max-connections", "1000",
                             scheme="https")
    port = int(base.rsplit(":", 1)[1])
    flood(procs, "hellos", "tls-hello", port, 1500)
    wait_until(lambda: open_fds(pid) >= 1000, 20, "1000 stalled handshakes on the server")
    times = scrapes(10, "--cacert", str(certs.ca), f"{base}/metrics")
    assert_fast(times, "1500 stalled TLS ClientHellos")


def test_wrong_passwords_by_the_hundred_do_not_lock_out_a_first_login(textfile: Path, tmp_path: Path,
                                                                      procs: Processes) -> None:
    """128 connections from 127.0.0.1 send wrong passwords (a new one each time, so each costs a
    bcrypt) as fast as they are answered; first-time logins from 127.0.0.2 used to get 503 (the
    flood had filled the workers' queue). Now the flood is bounded to its address's share."""
    users = {f"user{i}": bcrypt_hash(f"pw{i}", 10) for i in range(5)}
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n" + "".join(f"  {u}: '{h}'\n" for u, h in users.items()))
    base, _pid = start_server(procs, textfile, "--web.config.file", str(web), ready_path="/")
    port = int(base.rsplit(":", 1)[1])
    flood(procs, "bad-auth", "bad-auth", port, 128, "--user", "user0")
    wait_until(lambda: flood_stats(procs, "bad-auth")["answers"] >= 100, 30, "the wrong passwords to flow")
    times = []
    for i in range(5):  # each user logs in for the first time: a real bcrypt check, no memo
        status, seconds = curl_time("--interface", "127.0.0.2", "-u", f"user{i}:pw{i}", f"{base}/metrics")
        assert status == 200, f"first login of user{i} got {status}"
        times.append(seconds)
    assert flood_stats(procs, "bad-auth")["open"] >= 64
    # Each login is a bcrypt check that waits its turn beside the flood's, on 2 CPUs that a CPU hog
    # may share (p50 0.28 s idle, 1.1 s beside stress-ng): what must not happen is a 503 (checked
    # above) or a wait for the flood to end, which runs as long as the test.
    assert_fast(times, "first logins during 128 wrong-password clients", typical=5.0, worst=10.0)


def test_sighup_refusals_keep_the_old_config_and_the_server(textfile: Path, tmp_path: Path,
                                                            procs: Processes) -> None:
    """A cost-14 hash (0.9 s per check) and a 100,000-deep nesting (RecursionError in the parser)
    on SIGHUP: each is one log line, the old configuration keeps serving, the server lives."""
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt_hash('s3cret', 4)}'\n")
    base, pid = start_server(procs, textfile, "--web.config.file", str(web), ready_path="/")
    assert curl_time("-u", "prometheus:s3cret", f"{base}/metrics")[0] == 200
    bad = [f"basic_auth_users:\n  prometheus: '{bcrypt_hash('x', 4).replace('$04$', '$14$')}'\n",
           "basic_auth_users: " + "[" * 100_000 + "]" * 100_000 + "\n"]
    for n, text in enumerate(bad, start=1):
        web.write_text(text)
        os.kill(pid, signal.SIGHUP)
        wait_until(lambda n=n: procs.log("serve").count("not reloaded") == n, 20, f"refusal {n} in the log")
        assert curl_time("-u", "prometheus:s3cret", f"{base}/metrics")[0] == 200
        assert curl_time(f"{base}/metrics")[0] == 401
    refusals = [line for line in procs.log("serve").splitlines() if "not reloaded" in line]
    print("\n" + "\n".join(refusals))
    assert "bcrypt cost 14 is above 12" in refusals[0]
    assert all(len(line) < 400 for line in refusals)
    assert "Traceback" not in procs.log("serve")
