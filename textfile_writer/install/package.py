"""The Debian package's side of install (packaging/): the units it ships, rendered at build time for
the package's paths, and what its maintainer scripts ask of agent-exporter with the installer's own
code: the postinst (`install --package`) creates the writer's user and group and gives it the
textfile directory, exactly as `install --system` decides and does it; the prerm on removal
(`uninstall --package`) removes the textfile and reverts the directory. The units are dpkg's files,
enabled and started by deb-systemd-helper and deb-systemd-invoke in the scripts themselves.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..defaults import TEXTFILE_DIR
from ..proc import run
from .commands import TIMEOUT, Commands, Say
from .installer import Installer
from .plan import make_package_plan
from .request import Request, render
from .uninstaller import Uninstaller

if TYPE_CHECKING:  # the alias exists for the type checker only (proc.py)
    from ..proc import Runner

UNIT_DIR = "/lib/systemd/system"
EXECUTABLE = "/usr/bin/agent-exporter"
CONFIG = "/etc/agent-exporter/agents.yml"
PYTHON_DIR = "/usr/lib/python3/dist-packages"
# What the postinst changed, for the prerm: root's, beside the writer's StateDirectory= (not in it:
# systemd hands that directory and everything in it to the writer's user).
MANIFEST = "/var/lib/agent-exporter.install.json"


def request(textfile_dir: str = TEXTFILE_DIR) -> Request:
    return Request(scope="system", unit_dir=UNIT_DIR, command=(EXECUTABLE,), textfile_dir=textfile_dir,
                   config=CONFIG, package_dir=os.path.join(PYTHON_DIR, "textfile_writer", "install"),
                   packaged=True)


def package_units() -> dict[str, str]:
    """{file name: text} of the system units the package ships in UNIT_DIR."""
    return render(request())


def setup(runner: Runner = run, say: Say = print, req: Request | None = None, manifest: str = MANIFEST) -> bool:
    """The postinst's part: True when something changed."""
    cmd = Commands("system", runner, TIMEOUT)
    plan = make_package_plan(req or request(), cmd, manifest)
    Installer(plan, cmd, say).run()
    return bool(plan.changes)


def undo(runner: Runner = run, say: Say = print, manifest: str = MANIFEST) -> bool:
    """The prerm's part on removal: True when there was something to undo."""
    return Uninstaller("system", UNIT_DIR, runner, say).run_package(manifest)
