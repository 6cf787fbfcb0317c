"""`agent-exporter uninstall`: stop and disable the units, then revert what the manifest records and
nothing else; exits non-zero when it had to leave something in place."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..defaults import STATE_FILES, lock_name, temp_prefix
from ..errors import AgentExporterError, InstallError
from ..proc import run
from ..textfile import RunLock
from . import units
from .commands import TIMEOUT, Commands, Say
from .manifest import MANIFEST, Manifest, read_installed, sha256

if TYPE_CHECKING:  # the alias exists for the type checker only (proc.py)
    from ..proc import Runner


class Uninstaller:
    def __init__(self, scope: str, unit_dir: str, runner: Runner = run, say: Say = print,
                 timeout: float = TIMEOUT) -> None:
        self.scope = scope
        self.unit_dir = os.path.abspath(unit_dir)
        self.cmd = Commands(scope, runner, timeout)
        self.say = say
        self.problems: list[str] = []

    def run(self) -> bool:
        path = os.path.join(self.unit_dir, MANIFEST)
        manifest = Manifest.load(path)
        if manifest is None:
            ours = [n for n in units.UNIT_NAMES if os.path.exists(os.path.join(self.unit_dir, n))]
            if ours:
                raise InstallError(f"{', '.join(ours)} in {self.unit_dir} were not installed by agent-exporter "
                                   f"install (no {MANIFEST}); remove them by hand")
            self.say(f"nothing to uninstall: no agent-exporter install in {self.unit_dir}")
            return False
        if manifest.scope != self.scope:
            raise InstallError(f"{path} records a {manifest.scope}-scope install; use --{manifest.scope}")
        if self.scope == "system" and os.geteuid() != 0:
            raise InstallError("uninstall --scope system needs root")
        self.cmd.systemd_version("uninstall needs it to stop and disable the units")
        self.say(f"agent-exporter uninstall: {self.scope} scope, units in {self.unit_dir}")
        self.stop_and_disable(manifest)
        self.remove_state(manifest.state_dir)
        for textfile in manifest.textfiles:
            self.remove_textfile(textfile)
        self.remove_units(manifest)
        self.revert_dirs(manifest)
        # The user before its group: groupdel refuses to remove a user's primary group. userdel
        # itself removes the group named like the user where login.defs has USERGROUPS_ENAB yes
        # (Debian's default) and nobody else is in it.
        if manifest.user_created:
            self.delete(["userdel", "--", manifest.user_created], f"user {manifest.user_created}")
        group = manifest.group_created
        if group and self.cmd.getent("group", group) is not None:
            self.delete(["groupdel", "--", group], f"group {group}")
        elif group:
            self.say(f"  removed group {group} (userdel did, with its user)")
        self.report()
        return True

    def run_package(self, manifest_path: str) -> bool:
        """The Debian package's prerm on removal (package.py): the textfile, which would go stale, and
        the textfile directory's group and mode as the postinst recorded them. The units are the
        package's (dpkg removes them); the user, the group and the state stay until purge."""
        manifest = Manifest.load(manifest_path)
        if manifest is None:
            self.say(f"nothing to uninstall: no {manifest_path}")
            return False
        if os.geteuid() != 0:
            raise InstallError("uninstall --package needs root")
        self.say(f"agent-exporter uninstall --package: what {manifest_path} records")
        # A run the prerm's stop interrupted leaves the writer failed; its unit files go next, and
        # systemd would list it as failed and not-found until reset.
        self.cmd.systemctl("reset-failed", "--", *units.UNIT_NAMES)
        for textfile in manifest.textfiles:
            self.remove_textfile(textfile)
        self.revert_dirs(manifest)
        _unlink(manifest_path)
        self.report()
        return True

    def revert_dirs(self, manifest: Manifest) -> None:
        for change in reversed(manifest.dir_changes):
            self.revert_dir(change)
        for d in sorted(set(manifest.dirs_created), key=len, reverse=True):  # children first
            self.remove_dir(d)

    def report(self) -> None:
        for problem in self.problems:
            self.say(f"  left in place: {problem}")
        if self.problems:
            raise InstallError(f"uninstall left {len(self.problems)} thing(s) in place (listed above); "
                               "remove them by hand")

    def delete(self, argv: list[str], what: str) -> None:
        done = self.cmd.run(argv)
        if done.returncode == 0:
            self.say(f"  removed {what}")
        else:
            self.problems.append(f"{argv[0]} {argv[-1]}: {done.reason()}")

    def stop_and_disable(self, manifest: Manifest) -> None:
        """The units the manifest lists: an `install --no-server` has no socket to disable (systemctl
        would fail on its missing file)."""
        enabled = [u for u in units.ENABLED if u in manifest.units]
        services = [u for u in (units.WRITER_SERVICE, units.SERVER_SERVICE) if u in manifest.units]
        if enabled:
            done = self.cmd.systemctl("disable", "--now", "--", *enabled)
            if done.returncode != 0:
                self.problems.append(f"systemctl disable --now: {done.reason()}")
            else:
                self.say(f"  stopped and disabled {', '.join(enabled)}")
        if services:
            done = self.cmd.systemctl("stop", "--", *services)
            if done.returncode != 0:
                self.problems.append(f"systemctl stop: {done.reason()}")

    def remove_state(self, state_dir: str | None) -> None:
        """The writer's CPU counters and config cache, in the unit's StateDirectory=."""
        if self.scope == "system":
            # systemd (252) refuses to clean a failed unit ("Unit is not inactive or has pending job")
            # until its failure is reset.
            self.cmd.systemctl("reset-failed", "--", units.WRITER_SERVICE)
            done = self.cmd.systemctl("clean", "--what=state", "--", units.WRITER_SERVICE)
            if done.returncode == 0:
                self.say("  removed the writer's state (systemctl clean --what=state)")
            else:
                self.problems.append(f"systemctl clean --what=state: {done.reason()}")
            return
        # A user's StateDirectory= ($XDG_CONFIG_HOME/agent-exporter before systemd 254,
        # $XDG_STATE_HOME/agent-exporter since) may hold other files of the user's (a config.yml):
        # only the writer's own files go, and the directory if that leaves it empty.
        if not state_dir:
            return
        removed = [n for n in STATE_FILES if _unlink(os.path.join(state_dir, n))]
        if removed:
            self.say(f"  removed {', '.join(os.path.join(state_dir, n) for n in removed)}")
            self.remove_dir(state_dir, quiet_if_busy=True)

    def remove_textfile(self, textfile: str) -> None:
        directory, name = os.path.split(textfile)
        try:
            # Wait for a run that may still be writing (disable --now does not wait for a oneshot).
            with RunLock(os.path.join(directory, lock_name(name)), 10.0):
                entries = os.listdir(directory)
        except (AgentExporterError, OSError):
            entries = os.listdir(directory) if os.path.isdir(directory) else []
        prefix = temp_prefix(name)
        ours = [e for e in entries if e == name or e == lock_name(name) or e.startswith(prefix)]
        removed = [e for e in sorted(ours) if _unlink(os.path.join(directory, e))]
        if removed:
            self.say(f"  removed {', '.join(os.path.join(directory, e) for e in removed)}")

    def revert_dir(self, change: Mapping[str, int | str]) -> None:
        path = str(change["path"])
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        if (st.st_gid, stat.S_IMODE(st.st_mode)) != (change["new_gid"], change["new_mode"]):
            self.problems.append(f"{path}: its group or mode changed since install; not reverted")
            return
        os.chown(path, -1, int(change["gid"]))
        os.chmod(path, int(change["mode"]))
        self.say(f"  textfile directory {path}: group and mode back to gid {change['gid']}, {int(change['mode']):04o}")

    def remove_dir(self, path: str, quiet_if_busy: bool = False) -> None:
        """A directory install created; one that now holds files of others is theirs and stays."""
        try:
            os.rmdir(path)
            self.say(f"  removed {path}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                self.problems.append(f"{path}: {exc.strerror}")
            elif not quiet_if_busy:
                self.say(f"  kept {path}: it holds files that agent-exporter did not write")

    def remove_units(self, manifest: Manifest) -> None:
        for name, digest in manifest.units.items():
            path = os.path.join(self.unit_dir, name)
            text = read_installed(path)
            if text is None:
                continue
            edited = sha256(text) != digest
            os.unlink(path)
            self.say(f"  removed {path}" + (" (it had been edited since install)" if edited else ""))
        _unlink(os.path.join(self.unit_dir, MANIFEST))
        self.cmd.systemctl("daemon-reload")
        # A unit that failed stays listed (as failed, not-found) until reset.
        self.cmd.systemctl("reset-failed", "--", *(n for n in units.UNIT_NAMES if n in manifest.units))
        self.say(f"  systemctl --{self.scope} daemon-reload")


def uninstall(scope: str, unit_dir: str, runner: Runner = run, say: Say = print) -> bool:
    """Remove what install recorded; True when there was something to remove."""
    return Uninstaller(scope, unit_dir, runner, say).run()


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
