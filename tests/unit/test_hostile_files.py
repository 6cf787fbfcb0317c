"""Special files and hostile bytes where the programs read, through the real command line.

A FIFO, a device, a symbolic link or a huge, deep or tagged YAML document in the place of every
file `write` and `serve` open: each run ends at once (a hang fails the test at its timeout, a runaway
read at its memory limit) with one bounded error line, the documented exit code, and the last good
textfile byte for byte as it was. No systemd manager is reachable here, so a run that gets past
its files ends with the one-line systemctl error (exit 1): proof it was not stopped by them.
"""

from __future__ import annotations

import os
import resource
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import EXE, OLD, assert_one_line_error, assert_untouched
from procs import IN_CI

from textfile_writer.defaults import CONFIG_CACHE_FILE, STATE_FILE, TEMP_SUFFIX, temp_prefix

HUNG_AFTER = 20.0  # seconds: every case here ends in well under one on this shared machine
MEMORY_LIMIT = 1 << 30  # a child reading /dev/zero stops here instead of taking the machine's memory
NO_SYSTEMD = "systemctl list-units failed: Failed to connect to bus"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "no-manager"
    runtime.mkdir(exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "AGENT_EXPORTER_STATE_DIR": str(tmp_path / "state")}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    try:
        return subprocess.run([*EXE, *args], capture_output=True, text=True, env=env, timeout=HUNG_AFTER,
                              check=False, preexec_fn=_limit_memory, errors="replace")
    except subprocess.TimeoutExpired:
        pytest.fail(f"agent-exporter {' '.join(args)} hung for {HUNG_AFTER:g}s")


def config(tmp_path: Path, textdir: Path, body: str = "") -> Path:
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"scope: user\ntextfile_dir: {textdir}\n{body}")
    return cfg


# --- the configuration file -----------------------------------------------------------------------

@pytest.mark.parametrize(("make", "kind"), [
    (lambda p: os.mkfifo(p), "a FIFO"),
    (lambda p: p.symlink_to("/dev/zero"), "a character device"),
    (lambda p: p.mkdir(), "a directory"),
])
def test_a_config_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, textdir: Path, make: object,
                                                                kind: str) -> None:
    cfg = tmp_path / "c.yml"
    make(cfg)  # type: ignore[operator]
    done = run(["write", "--config", str(cfg), "--textfile-dir", str(textdir)], tmp_path)
    assert_one_line_error(done, 2, f"{cfg}: cannot read the file: not a regular file ({kind})")
    assert_untouched(textdir)


def test_a_config_larger_than_the_limit_is_refused(tmp_path: Path, textdir: Path) -> None:
    cfg = config(tmp_path, textdir, "# padding\n" * 200_000)  # 2 MB of valid YAML
    done = run(["write", "--config", str(cfg)], tmp_path)
    assert_one_line_error(done, 2, "cannot read the file: larger than the limit of 1048576 bytes")
    assert_untouched(textdir)


def test_a_huge_bad_value_is_quoted_short(tmp_path: Path, textdir: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"textfile_dir: {textdir}\nscope: '{'x' * 900_000}'\n")
    done = run(["check", "--config", str(cfg)], tmp_path)
    line = assert_one_line_error(done, 2, f"{cfg}:2: scope: must be 'user' or 'system', got 'xxx",
                                 "(900000 characters)")
    assert len(line) < 300


@pytest.mark.parametrize(("body", "message"), [
    ("agents: " + "[" * 5000 + "]" * 5000 + "\n", "c.yml:3: nested more than 32 levels deep"),
    ("agents:\n  - unit: &u agent-a\n  - unit: *u\n", "c.yml:5: YAML aliases (*name) are not supported"),
    ("interval_seconds: " + "1" * 5000 + "\n", "c.yml:3: interval_seconds: not a valid value: Exceeds the limit"),
    ("interval_seconds: 2001-13-45\n", "c.yml:3: interval_seconds: not a valid value: month must be in 1..12"),
    ("agents:\n  - unit: a\n    type: !!binary A\n", "c.yml:5: agents[0].type: not a valid value: failed to decode"),
    ("disk_path: !!python/name:os.system x\n", "c.yml:3: disk_path: not a valid value: could not determine a"),
    ("disk_path: \"/\\0x\"\n", "c.yml:3: disk_path: must not contain a NUL byte"),
    ("textfile_name: \"a\\0.prom\"\n", "c.yml:3: textfile_name: must be a plain file name (no '/' or NUL"),
])
def test_hostile_yaml_is_one_line_and_exit_2(tmp_path: Path, textdir: Path, body: str, message: str) -> None:
    cfg = config(tmp_path, textdir, body)
    assert_one_line_error(run(["write", "--config", str(cfg)], tmp_path), 2, message)
    assert_untouched(textdir)


def test_a_nul_in_a_config_path_is_one_line_and_exit_2(tmp_path: Path, textdir: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"scope: user\ntextfile_dir: \"{textdir}\\0x\"\n")
    assert_one_line_error(run(["write", "--config", str(cfg)], tmp_path), 2,
                          f"{cfg}:2: textfile_dir: must not contain a NUL byte")
    assert_untouched(textdir)


# --- the writer's own files: state, config cache, lock, temporary files ---------------------------

def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir(exist_ok=True)
    return d


# (A link to /dev/zero as the cache was already refused: it is not a file of ours, mode 0600.)
@pytest.mark.parametrize(("name", "kind"), [(STATE_FILE, "FIFO"), (STATE_FILE, "symlink to /dev/zero"),
                                            (CONFIG_CACHE_FILE, "FIFO")])
def test_a_special_file_as_state_or_config_cache_is_passed_over(tmp_path: Path, textdir: Path, name: str,
                                                                kind: str) -> None:
    planted = state_dir(tmp_path) / name
    if kind == "FIFO":
        os.mkfifo(planted)
    else:
        planted.symlink_to("/dev/zero")
    cfg = config(tmp_path, textdir)
    assert_one_line_error(run(["write", "--config", str(cfg)], tmp_path), 1, NO_SYSTEMD)
    assert_untouched(textdir)


def test_a_config_cache_claiming_2_gib_is_ignored(tmp_path: Path, textdir: Path) -> None:
    cfg = config(tmp_path, textdir)
    cache = state_dir(tmp_path) / CONFIG_CACHE_FILE
    # a marshal tuple whose first item is a bytes object of 2**31 - 1 bytes, by its header
    planted = b")\x02s" + struct.pack("<I", 2**31 - 1) + b"x" * 64
    cache.write_bytes(planted)
    cache.chmod(0o600)
    assert_one_line_error(run(["write", "--config", str(cfg)], tmp_path), 1, NO_SYSTEMD)
    assert_untouched(textdir)
    # passed over (the run got as far as systemd), and left as it was: a failed run writes nothing
    assert cache.read_bytes() == planted


def test_a_fifo_as_the_lock_is_replaced(tmp_path: Path, textdir: Path) -> None:
    lock = textdir / ".agents.prom.lock"
    os.mkfifo(lock)
    done = run(["write", "--scope", "user", "--textfile-dir", str(textdir)], tmp_path)
    assert_one_line_error(done, 1, NO_SYSTEMD)
    assert_untouched(textdir)
    # replaced by a lock file of the run's own (no hang on the FIFO), which the failed run then took
    # away with it: nothing of the run is left
    assert not os.path.lexists(lock)


def test_a_planted_symlinked_lock_leads_nowhere(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("needs root: the finding is a root writer following the link")
        pytest.skip("needs root")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # a textfile directory anybody may write
    (shared / "agents.prom").write_bytes(OLD)
    outside = tmp_path / "outside"
    outside.mkdir()
    (shared / ".agents.prom.lock").symlink_to(outside / "created-by-root")
    done = run(["write", "--scope", "user", "--textfile-dir", str(shared)], tmp_path)
    assert_one_line_error(done, 1, NO_SYSTEMD)
    assert list(outside.iterdir()) == []
    assert not (shared / ".agents.prom.lock").is_symlink()
    assert_untouched(shared)


KILLED_WRITING_STATE = (
    "import resource, signal, sys\n"
    "from textfile_writer.textfile import atomic_write\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
    f"atomic_write(sys.argv[1], {STATE_FILE!r}, b'unit 1 - x\\n' * 8192)\n"
)


def test_killed_runs_leave_no_pile_of_state_temporaries(tmp_path: Path, textdir: Path) -> None:
    states = state_dir(tmp_path)
    for _ in range(40):  # each killed as the writer would be, mid-write of its CPU counters
        child = subprocess.run([sys.executable, "-c", KILLED_WRITING_STATE, str(states)], check=False,
                               capture_output=True, text=True, timeout=30)
        assert child.returncode == -signal.SIGXFSZ, child.stderr
    left = [n for n in os.listdir(states) if n.startswith(temp_prefix(STATE_FILE)) and n.endswith(TEMP_SUFFIX)]
    assert len(left) == 40
    assert_one_line_error(run(["write", "--scope", "user", "--textfile-dir", str(textdir)], tmp_path), 1,
                          NO_SYSTEMD)
    assert os.listdir(states) == []


# --- the server's web configuration ---------------------------------------------------------------

def serve(tmp_path: Path, web: Path) -> subprocess.CompletedProcess[str]:
    # the web configuration is read before any socket is bound
    return run(["serve", "--web.config.file", str(web), "--textfile-dir", str(tmp_path), "--textfile-name", "x.prom"],
               tmp_path)


@pytest.mark.parametrize(("make", "kind"), [
    (lambda p: os.mkfifo(p), "a FIFO"),
    (lambda p: p.symlink_to("/dev/zero"), "a character device"),
])
def test_a_web_config_that_is_not_a_regular_file_is_refused(tmp_path: Path, make: object, kind: str) -> None:
    web = tmp_path / "web.yml"
    make(web)  # type: ignore[operator]
    assert_one_line_error(serve(tmp_path, web), 2, f"{web}: cannot read the file: not a regular file ({kind})")


@pytest.mark.parametrize(("body", "message"), [
    ("basic_auth_users:\n  u: " + "[" * 3000 + "]" * 3000 + "\n", "web.yml:2: nested more than 32 levels deep"),
    ("basic_auth_users:\n  a: &h [x]\n  b: *h\n", "web.yml:3: YAML aliases (*name) are not supported"),
    ("tls_server_config:\n  cert_file: \"c\\0rt\"\n  key_file: k\n",
     "web.yml:2: tls_server_config.cert_file: must not contain a NUL byte"),
])
def test_hostile_web_yaml_is_one_line_and_exit_2(tmp_path: Path, body: str, message: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(body)
    assert_one_line_error(serve(tmp_path, web), 2, message)


def test_a_fifo_as_the_tls_certificate_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "server.crt")
    (tmp_path / "server.key").write_text("not read: the certificate is refused first\n")
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    assert_one_line_error(serve(tmp_path, web), 2, "tls_server_config.cert_file: cannot load",
                          "not a regular file (a FIFO)")


# --- every error line: one line, bounded ------------------------------------------------------------

def test_line_breaks_in_a_message_are_escaped(tmp_path: Path, textdir: Path) -> None:
    cfg = tmp_path / "a\nb\u2028c\x85d.yml"  # a file name may hold any of them
    line = assert_one_line_error(run(["write", "--config", str(cfg)], tmp_path), 2,
                                 "a\\x0ab\\u2028c\\x85d.yml: cannot read the file: No such file")
    assert "\r" not in line
    assert_untouched(textdir)


def test_a_long_value_is_cut_in_the_message(tmp_path: Path, textdir: Path) -> None:
    done = run(["write", "--scope", "u" * 100_000, "--textfile-dir", str(textdir)], tmp_path)
    assert_one_line_error(done, 2, "--scope: must be 'user' or 'system', got 'uuu", "characters in all)")
    assert_untouched(textdir)
