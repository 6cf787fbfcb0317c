"""Hostile values against the rendered units (issue 10, group 1).

Every value that reaches a unit comes from the command line, the environment, the config file or
the file system (a symlink's target, a script's #! line). Whatever it holds, install either refuses
it with one line (UnitError, exit 2), or renders units in which systemd sees exactly the directives
the templates wrote, with the validated values, and which `systemd-analyze verify` accepts.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from procs import need

from textfile_writer.errors import UnitError
from textfile_writer.install import request, units
from textfile_writer.install.request import Request, own_command

OWN = own_command()  # a real executable: verify checks that ExecStart= names one

# ---------------------------------------------------------------------------------------------
# systemd's reading of a unit file


def directives(text: str) -> Iterator[tuple[str, str, str]]:
    """(section, key, value) as systemd reads them: a line ends at \\n, \\r or NUL, a line ending in
    a backslash continues on the next (a comment too), '#' and ';' start comments."""
    assert "\r" not in text and "\0" not in text, "a line break systemd sees and the template did not write"
    section = ""
    for line in text.split("\n"):
        assert not line.rstrip().endswith("\\"), f"a line that swallows the next one: {line!r}"
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            section = stripped
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"not a directive: {line!r}"
        yield section, key.strip(), value.strip()


def keys(text: str) -> list[tuple[str, str]]:
    return [(section, key) for section, key, _ in directives(text)]


def benign(scope: str) -> dict[str, str]:
    return request.render(Request(scope=scope, unit_dir="/etc/systemd/system", command=OWN,
                                  textfile_dir="/var/lib/prometheus/node-exporter", runtime_dir="/run/user/0",
                                  config_home="/root/.config", state_home="/root/.local/state"))


BENIGN = {scope: benign(scope) for scope in ("user", "system")}


def verify(scope: str, rendered: dict[str, str], exe: str) -> list[str]:
    """What `systemd-analyze verify` says about the rendered units, less the one complaint a test
    cannot avoid: that the executable (a hostile but valid path) does not exist here."""
    tool = need("systemd-analyze")
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp, "runtime")
        runtime.mkdir(mode=0o700)
        for name, text in rendered.items():
            Path(tmp, name).write_text(text)
        env = {**os.environ, "LC_ALL": "C", "SYSTEMD_LOG_COLOR": "0", "XDG_RUNTIME_DIR": str(runtime)}
        done = subprocess.run([tool, f"--{scope}", "verify", *(f"./{n}" for n in rendered)], cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
    missing = re.compile(rf"({re.escape(units.WRITER_SERVICE)}|{re.escape(units.SERVER_SERVICE)}): Command "
                         rf"{re.escape(exe)} is not executable: No such file or directory")
    said = [line for line in (done.stdout + done.stderr).splitlines() if not missing.fullmatch(line)]
    if not os.path.exists(exe):
        return said
    assert done.returncode == 0, done.stdout + done.stderr
    return said


def assert_refused_in_one_line(exc: UnitError) -> None:
    message = str(exc)
    assert message.isprintable() and len(message) < 400, repr(message)
    assert exc.exit_code == 2


def assert_units_hold_exactly(req: Request, rendered: dict[str, str]) -> None:
    """The directives are the templates' own; each value is the validated one, nothing more."""
    v = units.validate(request.params(req))
    for name, text in rendered.items():
        assert keys(text) == keys(BENIGN[req.scope][name]), name
        assert "%" not in text, f"{name}: a systemd specifier"
    # the validated values are the inputs, normalized and nothing else
    assert v.textfile_dir == "/" + os.path.normpath(req.textfile_dir).lstrip("/")
    assert v.command[1:] == req.command[1:]
    assert v.config == (None if req.config is None else "/" + os.path.normpath(req.config).lstrip("/"))
    host, port = v.listen_address.rsplit(":", 1)
    given_host, given_port = req.listen_address.rsplit(":", 1)
    assert ipaddress.ip_address(host.strip("[]")) == ipaddress.ip_address(given_host.strip("[]"))
    assert int(port) == int(given_port)
    assert abs(v.interval_seconds - req.interval_seconds) <= 0.0005

    interval = f"{v.interval_seconds:.3f}".rstrip("0").rstrip(".")  # exact: the millisecond kept
    textfile = os.path.join(v.textfile_dir, v.textfile_name)
    write = [*v.command, "write", "--scope", v.scope, "--textfile-dir", v.textfile_dir,
             "--textfile-name", v.textfile_name, *(["--config", v.config] if v.config else [])]
    serve = [*v.command, "serve", "--textfile-dir", v.textfile_dir, "--textfile-name", v.textfile_name,
             "--interval", interval,
             *(["--web.config.file", v.web_config] if v.web_config else [])]
    expected = {
        units.WRITER_SERVICE: {"ExecStart": " ".join(write), "ReadWritePaths": v.textfile_dir,
                               "Description": f"agent-exporter writer: {v.scope} agents' metrics into {textfile}"},
        units.SERVER_SERVICE: {"ExecStart": " ".join(serve),
                               "Description": f"agent-exporter server: {textfile} over HTTP (/metrics, /health)"},
        units.SERVER_SOCKET: {"ListenStream": v.listen_address,
                              "Description": f"agent-exporter server socket on {v.listen_address}"},
        units.WRITER_TIMER: {"OnBootSec": interval + "s", "OnUnitActiveSec": interval + "s",
                             "Description": f"agent-exporter writer every {interval}s"},
    }
    if req.scope == "system":
        expected[units.WRITER_SERVICE] |= {"User": v.user, "Group": v.group}
    for name, text in rendered.items():
        got = {key: value for _, key, value in directives(text)}
        for key, value in expected[name].items():
            assert got[key] == value, (name, key)
        # a word systemd would split or unquote differently would change the command
        if "ExecStart" in got:
            assert got["ExecStart"].split(" ") == (write if name == units.WRITER_SERVICE else serve)
        for key, value in got.items():
            if key not in expected[name] and key not in ("ProtectHome", "PrivateTmp"):
                assert value == dict((k, x) for _, k, x in directives(BENIGN[req.scope][name]))[key], (name, key)
        assert got.get("ProtectHome", "yes") in ("yes", "read-only") and got.get("PrivateTmp", "no") in ("yes", "no")


# ---------------------------------------------------------------------------------------------
# Hostile values

NASTY = ["%", "%n", "%H", "%%", "\n", "\r", "\0", "\\", "\\\n", '"', "'", " ", "\t", ";", "$", "${X}", "`",
         "\u2028", "\x85", "é", "\u202e", "=", "\nExecStartPost=/bin/touch /tmp/pwned\n", "[Service]", "#"]
SAFE_SEGMENT = st.text(alphabet="abcXYZ019._+:@,~=-", min_size=1, max_size=12)
NASTY_SEGMENT = st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=8),
                          st.builds(lambda s, n: s * n, SAFE_SEGMENT, st.integers(20, 400)))


@st.composite
def paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.one_of(SAFE_SEGMENT, SAFE_SEGMENT, NASTY_SEGMENT), min_size=1, max_size=6))
    lead = draw(st.sampled_from(["/", "/", "//", "", "./"]))
    return lead + "/".join(segments) + draw(st.sampled_from(["", "", "/", "\\", "%"]))


def names() -> st.SearchStrategy[str]:
    plain = st.builds(lambda s: s + ".prom", SAFE_SEGMENT.filter(lambda s: not s.startswith(".")))
    nasty = st.builds(lambda a, b: a + b + ".prom", SAFE_SEGMENT, NASTY_SEGMENT)
    return st.one_of(st.just("agents.prom"), plain, nasty, st.text(max_size=20))


def listen_addresses() -> st.SearchStrategy[str]:
    v4 = st.ip_addresses(v=4).map(str)
    v6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
    scoped = st.builds(lambda a, s: f"[{a}%{s}]", st.ip_addresses(v=6), st.one_of(st.sampled_from(NASTY), st.text()))
    hosts = st.one_of(v4, v6, v6, scoped, st.sampled_from(["localhost", "", "[]", "[::1", "::1"]), st.text(max_size=10))
    ports = st.one_of(st.integers(0, 70000).map(str), st.sampled_from(["09200", "", "+9", "١٢"]), st.text(max_size=4))
    return st.builds(lambda h, p: f"{h}:{p}", hosts, ports)


def accounts() -> st.SearchStrategy[str]:
    return st.one_of(st.just("agent-exporter"), st.from_regex(r"[a-z_][a-z0-9_-]{0,31}", fullmatch=True),
                     st.sampled_from(NASTY), st.text(max_size=40))


def maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), strategy)


FIELDS: dict[str, st.SearchStrategy[object]] = {
    "scope": st.one_of(st.sampled_from(["user", "system"]), st.text(max_size=8)),
    "command": st.one_of(st.builds(lambda p: (p,), paths()),
                         st.builds(lambda p, m: (p, "-m", m), paths(),
                                   st.one_of(st.just("textfile_writer"), NASTY_SEGMENT))),
    "textfile_dir": paths(),
    "textfile_name": names(),
    "interval_seconds": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0.5, 90000)),
    "listen_address": listen_addresses(),
    "config": maybe(paths()),
    "web_config": maybe(paths()),
    "group": accounts(),
    "user": accounts(),
    "runtime_dir": maybe(st.one_of(st.just("/run/user/1000"), paths())),
    "config_home": maybe(paths()),
    "state_home": maybe(paths()),
}


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """A plain request with a few fields made hostile (all of them at once would almost always be
    refused by the first check, and the rendering would seldom be exercised)."""
    scope = draw(st.sampled_from(["user", "system"]))
    req = Request(scope=scope, unit_dir="/etc/systemd/system", command=OWN,
                  textfile_dir="/var/lib/prometheus/node-exporter", config="/etc/agent-exporter/config.yml",
                  runtime_dir="/run/user/1000" if scope == "user" else None)
    hostile = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=4, unique=True))
    return req._replace(**{field: draw(FIELDS[field]) for field in hostile})


REVIEW_CASES = [  # what the review rendered into real units
    {"listen_address": "[fe80::1%eth0]:9200"},
    {"listen_address": "[::1%x\nExecStartPost=touch pwn\nListenStream=0.0.0.0:80\n#]:9200"},
    {"listen_address": "[::1%lo]:9200"},
    {"listen_address": "[fe80::1%a\\]:9200"},
    {"runtime_dir": "/run/user/0\nExecStartPost=/bin/touch /tmp/pwned"},
    {"config_home": "/root/x\n[Service]\nExecStartPost=touch pwned"},
    {"runtime_dir": "/tmp/%n"},
    {"interval_seconds": 12345.678912},
    {"textfile_dir": "/" + "d" * 300},
    {"textfile_dir": "/var/" + "d/" * 2100},
]


def _apply(change: dict[str, object]) -> Request:
    return Request(scope="user", unit_dir="/etc/systemd/system", command=OWN, textfile_dir="/var/lib/x",
                   runtime_dir="/run/user/0")._replace(**change)


def rendered_exactly(req: Request) -> dict[str, str] | None:
    """The units `req` renders, checked to hold exactly the template's directives with the validated
    values; None when it is refused instead (in one line, which is checked too)."""
    try:
        rendered = request.render(req)
    except UnitError as exc:
        event("refused: " + str(exc).partition(":")[0])
        assert_refused_in_one_line(exc)
        return None
    event("rendered")
    assert_units_hold_exactly(req, rendered)
    return rendered


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_hostile_requests_are_refused_in_one_line_or_render_exactly(req: Request) -> None:
    rendered_exactly(req)


# systemd's own reading: fewer examples, each runs systemd-analyze (about 50 ms)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
@example(_apply({"listen_address": "[::ffff:127.0.0.1]:09200", "interval_seconds": 2.0004}))
@example(_apply({"scope": "system", "user": "_" + "0" * 31, "group": "a" * 31}))  # 32 and 31 characters
@example(_apply({"scope": "system", "command": ("/usr/bin/python3", "-m", "textfile_writer"),
                 "config": "//etc/./a/../c,d:e@f~g=h+i.yml", "textfile_name": "a:b.prom"}))
def test_systemd_analyze_accepts_what_is_rendered(req: Request) -> None:
    rendered = rendered_exactly(req)
    if rendered is None:
        return
    exe = units.validate(request.params(req)).command[0]
    assert verify(req.scope, rendered, exe) == []


@pytest.mark.parametrize("change", REVIEW_CASES, ids=lambda c: repr(c)[:40])
def test_review_cases(change: dict[str, object]) -> None:
    req = _apply(change)
    try:
        rendered = request.render(req)
    except UnitError as exc:
        assert_refused_in_one_line(exc)
        assert "listen" in str(exc) or "--textfile-dir" in str(exc)
        return
    assert_units_hold_exactly(req, rendered)
    assert verify(req.scope, rendered, OWN[0]) == []


@pytest.mark.parametrize("note", ["# ends in a backslash \\", "# two\nExecStartPost=/bin/sh", "no hash",
                                  "# 100%n", "# \u2028"])
def test_notes_are_one_comment_line(note: str) -> None:
    p = units.UnitParams(scope="user", command=OWN, textfile_dir="/var/lib/x")
    for change in ({"protect_home_note": note}, {"private_tmp_note": note}):
        with pytest.raises(UnitError, match="must be one comment line") as caught:
            units.render(p._replace(**change))  # type: ignore[arg-type]
        assert_refused_in_one_line(caught.value)


def test_a_planted_symlink_target_stays_in_its_comment(tmp_path: Path) -> None:
    """The executable is a symlink whose target's name writes directives: that target is what
    ProtectHome=/PrivateTmp= must keep visible, so its name reaches a comment, escaped."""
    target = tmp_path / "x\nExecStartPost=touch pwned\n#\\"
    target.mkdir()
    (target / "agent-exporter").write_text("#!/bin/sh\n")
    (target / "agent-exporter").chmod(0o755)
    link = tmp_path / "agent-exporter"
    link.symlink_to(target / "agent-exporter")
    req = _apply({"command": (str(link),), "textfile_dir": "/var/lib/x"})
    rendered = request.render(req)
    assert_units_hold_exactly(req, rendered)
    note_line = next(line for line in rendered[units.WRITER_SERVICE].splitlines() if line.startswith("# no:"))
    assert ascii(str(target / "agent-exporter")) in note_line
    assert verify("user", rendered, str(link)) == []


def test_a_planted_interpreter_line_with_a_nul(tmp_path: Path) -> None:
    """A script's #! line is read by the kernel up to a NUL; so is it here (no ValueError)."""
    script = tmp_path / "agent-exporter"
    script.write_bytes(b"#!/usr/bin/python3\0\nExecStartPost=/bin/sh\n")
    script.chmod(0o755)
    assert request.interpreter_of(str(script)) == "/usr/bin/python3"
    req = _apply({"command": (str(script),)})
    assert_units_hold_exactly(req, request.render(req))


@pytest.mark.parametrize("address", ["[::1%x\nExecStartPost=touch pwn\n#]:9200", "[fe80::1%eth0]:9200"])
def test_install_dry_run_refuses_in_one_line(tmp_path: Path, address: str) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "textfile_writer", "install", "--scope", "user", "--dry-run",
                           "--textfile-dir", str(tmp_path / "out"), "--web.listen-address", address],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("agent-exporter: error: --web.listen-address: ")
