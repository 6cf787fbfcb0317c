"""The manifest install leaves beside the units (`agent-exporter.install.json`): what it changed, so
that uninstall reverts exactly that."""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

from ..errors import InstallError
from ..files import read_regular

MANIFEST = "agent-exporter.install.json"
MANIFEST_FORMAT = 1
MAX_BYTES = 1 << 20  # a unit or the manifest is a few KiB


class Manifest(NamedTuple):
    scope: str
    units: dict[str, str]  # file name -> sha256 of what we wrote
    group_created: str | None = None
    user_created: str | None = None
    dirs_created: tuple[str, ...] = ()
    dir_changes: tuple[dict[str, int | str], ...] = ()  # path, gid, mode before; new_gid, new_mode after
    textfiles: tuple[str, ...] = ()
    state_dir: str | None = None  # user scope: the writer's StateDirectory=

    def to_json(self) -> str:
        data: dict[str, Any] = {"format": MANIFEST_FORMAT, **self._asdict()}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: str) -> Manifest | None:
        text = read_installed(path)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InstallError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise InstallError(f"{path} is not a manifest this version of agent-exporter understands")
        try:
            return cls(scope=str(data["scope"]), units=dict(data["units"]),
                       group_created=data.get("group_created"),
                       user_created=data.get("user_created"),
                       dirs_created=tuple(data.get("dirs_created", ())),
                       dir_changes=tuple(data.get("dir_changes", ())),
                       textfiles=tuple(data.get("textfiles", ())),
                       state_dir=data.get("state_dir"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InstallError(f"{path} is damaged ({exc}); remove the units by hand") from None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_installed(path: str) -> str | None:
    """A file install wrote (a unit, the manifest): its text, or None when it is not there. Read as
    any file we read (files.py): no FIFO, device or symbolic link in its place, at most MAX_BYTES."""
    try:
        return read_regular(path, MAX_BYTES, follow=False).decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
