"""The writer's network in its unit: none without HTTP probes; with them exactly what they need.

Without `probe:` in the config the writer runs with PrivateNetwork=yes, AF_UNIX only and (system
scope) IPAddressDeny=any, byte for byte as before probes existed. With probes it gets the host's
network, only the address families its probes use and, in system scope, IPAddressAllow= exactly
their addresses behind IPAddressDeny=any; systemd's own tools check the result.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from procs import need

from textfile_writer.errors import UnitError
from textfile_writer.install import units
from textfile_writer.install.request import build_request, own_command
from textfile_writer.install.request import render as render_request
from textfile_writer.install.units import UnitParams, render

EXE = "/opt/agent-exporter/bin/agent-exporter"
NETWORK_KEYS = ("PrivateNetwork", "RestrictAddressFamilies", "IPAddressDeny", "IPAddressAllow")
# systemd-analyze security --offline (systemd 252) rates the writer 0.4 without probes; the host's
# network (0.5), Internet sockets (0.3) and an allow list (0.1, 0.2 with addresses beyond loopback)
# are what probes cost, and the limit allows exactly that much on top of the 1.0 kept without them.
MAX_EXPOSURE_WITH_PROBES = 1.2


def params(scope: str = "system", **kw: object) -> UnitParams:
    base: dict[str, object] = {"scope": scope, "command": (EXE,), "textfile_dir": "/var/lib/prometheus/node-exporter",
                               "config": "/etc/agent-exporter/config.yml"}
    base.update(kw)
    return UnitParams(**base)  # type: ignore[arg-type]


def network(text: str) -> list[str]:
    """The writer's network directives, in order, and the comment line just before PrivateNetwork=."""
    lines = text.splitlines()
    out = [line for line in lines if line.partition("=")[0] in NETWORK_KEYS]
    before = lines[lines.index(next(line for line in lines if line.startswith("PrivateNetwork="))) - 1]
    return [before, *out] if before.startswith("# no:") else out


def writer(scope: str = "system", **kw: object) -> str:
    return render(params(scope, **kw))[units.WRITER_SERVICE]


def test_without_probes_nothing_changes() -> None:
    assert network(writer()) == ["PrivateNetwork=yes", "RestrictAddressFamilies=AF_UNIX", "IPAddressDeny=any"]
    assert network(writer("user")) == ["PrivateNetwork=yes", "RestrictAddressFamilies=AF_UNIX"]
    assert writer(probe_addresses=()) == writer()


def test_loopback_probes_in_system_scope() -> None:
    assert network(writer(probe_addresses=("127.0.0.1",))) == [
        "# no: the config's HTTP probes connect to 127.0.0.1 (IPAddressAllow= below, nothing else)",
        "PrivateNetwork=no",
        "RestrictAddressFamilies=AF_UNIX AF_INET",
        "IPAddressDeny=any",
        "IPAddressAllow=127.0.0.1",
    ]


def test_every_probe_address_once_and_only_the_families_used() -> None:
    text = writer(probe_addresses=("::1", "127.0.0.1", "10.0.0.5", "0:0:0:0:0:0:0:1", "127.0.0.1"))
    assert network(text)[1:] == [
        "PrivateNetwork=no",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "IPAddressDeny=any",
        "IPAddressAllow=10.0.0.5 127.0.0.1 ::1",
    ]
    assert network(writer(probe_addresses=("::1",)))[2:] == [
        "RestrictAddressFamilies=AF_UNIX AF_INET6", "IPAddressDeny=any", "IPAddressAllow=::1"]


def test_user_scope_opens_the_network_and_says_it_cannot_filter() -> None:
    assert network(writer("user", probe_addresses=("127.0.0.1",))) == [
        "# no: the config's HTTP probes connect to 127.0.0.1 (a user manager cannot restrict the addresses: "
        "IPAddressAllow= needs the system manager)",
        "PrivateNetwork=no",
        "RestrictAddressFamilies=AF_UNIX AF_INET",
    ]


def test_only_the_writer_changes() -> None:
    plain, probing = render(params()), render(params(probe_addresses=("127.0.0.1",)))
    assert {name for name in units.UNIT_NAMES if plain[name] != probing[name]} == {units.WRITER_SERVICE}


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1/8", "1.2.3.4 5.6.7.8", "::1\nUser=root", ""])
def test_an_address_that_is_not_an_ip_literal_is_refused(address: str) -> None:
    with pytest.raises(UnitError, match=r"^--config: a probe's address must be an IP address"):
        writer(probe_addresses=(address,))


def test_install_reads_the_probes_from_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("agents:\n"
                   "  - unit: agent-a\n    probe: {url: 'http://localhost:8080/health'}\n"
                   "  - unit: agent-b\n    probe: {url: 'http://[::1]:9/'}\n"
                   "  - unit: agent-c\n    probe: {url: 'http://127.0.0.1:7/'}\n"
                   "  - pattern: 'agent-*'\n")
    req = build_request("system", {}, config=str(cfg), textfile_dir="/var/lib/prometheus/node-exporter",
                        command=(EXE,))
    assert req.probe_addresses == ("127.0.0.1", "::1")
    assert network(render_request(req)[units.WRITER_SERVICE])[-1] == "IPAddressAllow=127.0.0.1 ::1"
    cfg.write_text("agents:\n  - unit: agent-a\n")
    req = build_request("system", {}, config=str(cfg), textfile_dir="/var/lib/prometheus/node-exporter",
                        command=(EXE,))
    assert req.probe_addresses == ()
    assert build_request("system", {}, textfile_dir="/x", command=(EXE,)).probe_addresses == ()


# ---------------------------------------------------------------------------------------------
# systemd's own verdict on the unit with probes


def analyze(tmp_path: Path, scope: str, *args: str, addresses: tuple[str, ...],
            protect_home: str = "yes") -> subprocess.CompletedProcess[str]:
    tool = need("systemd-analyze")
    directory = tmp_path / f"{scope}-{protect_home}-{len(addresses)}"
    directory.mkdir(exist_ok=True)
    p = params(scope, command=own_command(), protect_home=protect_home,  # verify wants a real executable
               protect_home_note="# note" if protect_home != "yes" else "", probe_addresses=addresses)
    for name, text in render(p).items():
        (directory / name).write_text(text)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "LC_ALL": "C", "SYSTEMD_LOG_COLOR": "0", "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run([tool, f"--{scope}", *args], capture_output=True, text=True, env=env, cwd=directory,
                          timeout=120, check=False)


@pytest.mark.parametrize("scope", ["system", "user"])
def test_verify_is_clean_with_probes(tmp_path: Path, scope: str) -> None:
    done = analyze(tmp_path, scope, "verify", *(f"./{n}" for n in units.UNIT_NAMES),
                   addresses=("127.0.0.1", "::1"))
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


@pytest.mark.parametrize(("addresses", "allow_list"), [
    (("127.0.0.1",), "Service defines IP address allow list with only localhost entries"),
    (("127.0.0.1", "::1"), "Service defines IP address allow list with only localhost entries"),
    (("10.0.0.5",), "Service defines IP address allow list with non-localhost entries"),
])
@pytest.mark.parametrize("protect_home", ["yes", "read-only"])
def test_exposure_with_probes(tmp_path: Path, addresses: tuple[str, ...], allow_list: str, protect_home: str) -> None:
    done = analyze(tmp_path, "system", "security", "--offline=true", f"./{units.WRITER_SERVICE}",
                   addresses=addresses, protect_home=protect_home)
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE_WITH_PROBES, done.stdout
    # What the probes opened, and nothing else of the network
    exposed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("✗") or line.startswith("- ")}
    assert {"PrivateNetwork=", "RestrictAddressFamilies=~AF_(INET|INET6)", "IPAddressDeny="} <= exposed
    assert allow_list in done.stdout
    assert "RestrictAddressFamilies=~AF_PACKET" not in exposed and "RestrictAddressFamilies=~AF_NETLINK" not in exposed
