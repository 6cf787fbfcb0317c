"""The configuration: YAML text in, a validated Config out, or a ConfigError naming file, line and key.

No file access here: configfile.py reads the file (and keeps the validated copy the writer's hot
path reads instead). PyYAML is imported only when text is actually parsed (yamlnodes.py); the
default scope is the effective user's (defaults.default_scope).
"""

from __future__ import annotations

import os

from .defaults import (
    INTERVAL_SECONDS,
    MAX_INTERVAL_SECONDS,
    SCOPES,
    TEXTFILE_DIR,
    TEXTFILE_NAME,
    default_scope,
    textfile_name_problem,
)
from .errors import shown
from .files import path_problem
from .records import NamedTuple
from .unitfiles import NAME_CHARS

TYPE_CHECKING = False  # typing itself costs the write path an import of `re`
if TYPE_CHECKING:
    from typing import Any

    from .yamlnodes import Nodes

DEFAULT_DISK_PATH = "/"
DEFAULT_PATTERN = "agent-*.service"
DEFAULT_TYPE = "primary"
BUILTIN_SOURCE = "<built-in default>"

# systemd's rule for unit names (unit_name_is_valid): unitfiles.NAME_CHARS, at most 255 of them; a
# pattern may also hold glob characters. Plain sets: `re` is not imported on the writer's hot path.
_GLOB_CHARS = NAME_CHARS | frozenset("*?[]!")
_UNIT_SUFFIX = ".service"
_MAX_UNIT_NAME = 255

_TOP_KEYS = ("scope", "textfile_dir", "textfile_name", "interval_seconds", "disk_path", "agents", "users")
_AGENT_KEYS = ("unit", "pattern", "type", "name", "expect", "labels", "probe")
_PROBE_KEYS = ("url", "timeout", "expect_status")
_USER_KEYS = ("user", "agents")
# What a user name may hold: useradd's default rule (NAME_REGEX) and systemd's strict one, both
# within letters, digits, '_', '-' and '.', not starting with '-' or '.'; at most 32 characters.
_USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_MAX_USER_NAME = 32

EXPECTATIONS = ("running", "oneshot", "timer", "stopped")
"""What an agent is expected to be doing (`expect:`); without the key it is derived from systemd."""

Labels = tuple[tuple[str, str], ...]


class Probe(NamedTuple):
    """An agent's HTTP health probe (`probe:`), validated by probespec.py: a GET of `path` from
    `address`:`port` (an IP literal; `localhost` is 127.0.0.1) with `Host: host`, that succeeds when
    the answer's status is expect_status within timeout_seconds."""

    url: str
    host: str
    address: str
    port: int
    path: str
    timeout_seconds: float
    expect_status: int


class AgentSpec(NamedTuple):
    """One entry of `agents:`: an explicit unit (optionally named) or a glob pattern, with what is
    expected of it (None: derived from systemd), the extra labels of its agent_info (sorted by name)
    and its HTTP probe."""

    type: str
    unit: str | None = None
    pattern: str | None = None
    name: str | None = None
    expect: str | None = None
    labels: Labels = ()
    probe: Probe | None = None


DEFAULT_AGENTS = (AgentSpec(type=DEFAULT_TYPE, pattern=DEFAULT_PATTERN),)


class UserSpec(NamedTuple):
    """One entry of `users:` (docs/multi-user.md): a user whose own systemd manager is asked, with
    that user's agents (the entry's `agents:`, else the file's top-level ones)."""

    name: str
    agents: tuple[AgentSpec, ...]


class Config(NamedTuple):
    scope: str
    textfile_dir: str = TEXTFILE_DIR
    textfile_name: str = TEXTFILE_NAME
    interval_seconds: float = INTERVAL_SECONDS
    disk_path: str = DEFAULT_DISK_PATH
    agents: tuple[AgentSpec, ...] = DEFAULT_AGENTS
    source: str = BUILTIN_SOURCE
    users: tuple[UserSpec, ...] = ()  # several users' managers in one run; () asks the scope's one

    @property
    def textfile_path(self) -> str:
        return os.path.join(self.textfile_dir, self.textfile_name)

    @property
    def explicit(self) -> tuple[AgentSpec, ...]:
        """The entries that name a unit, in the file's order (they win over patterns)."""
        return tuple(a for a in self.agents if a.unit is not None)

    @property
    def patterns(self) -> tuple[AgentSpec, ...]:
        return tuple(a for a in self.agents if a.pattern is not None)

    def to_dict(self) -> dict[str, Any]:
        """Built-in types only (the marshal cache); an entry without expect, labels or probe has no
        key for them, nor a configuration without users, so one without them caches exactly as
        before they existed."""
        data = {
            "scope": self.scope, "textfile_dir": self.textfile_dir,
            "textfile_name": self.textfile_name, "interval_seconds": self.interval_seconds,
            "disk_path": self.disk_path, "source": self.source, "agents": _agents_dict(self.agents),
        }
        if self.users:
            data["users"] = [[u.name, _agents_dict(u.agents)] for u in self.users]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Rebuild a Config that to_dict produced (trusted input: the cache we wrote ourselves)."""
        return cls(
            scope=str(data["scope"]), textfile_dir=str(data["textfile_dir"]),
            textfile_name=str(data["textfile_name"]),
            interval_seconds=float(data["interval_seconds"]), disk_path=str(data["disk_path"]),
            source=str(data["source"]),
            agents=_agents_from(data["agents"]),
            users=tuple(UserSpec(str(name), _agents_from(agents)) for name, agents in data.get("users", ())),
        )

    @property
    def probes(self) -> tuple[Probe, ...]:
        """Every configured probe, in the file's order (install opens the writer's sandbox to them)."""
        return tuple(a.probe for a in self.agents if a.probe is not None)


def _agents_dict(agents: tuple[AgentSpec, ...]) -> list[dict[str, Any]]:
    return [{k: v for k, v in (("unit", a.unit), ("pattern", a.pattern), ("type", a.type), ("name", a.name),
                               ("expect", a.expect), ("labels", a.labels or None),
                               ("probe", None if a.probe is None else tuple(a.probe)))
             if v is not None}
            for a in agents]


def _agents_from(data: list[dict[str, Any]]) -> tuple[AgentSpec, ...]:
    # positional, AgentSpec's order (type, unit, pattern, name, expect, labels, probe): a writer
    # with 1000 explicit agents rebuilds 1000 of these every run
    return tuple(AgentSpec(str(a["type"]), a.get("unit"), a.get("pattern"), a.get("name"), a.get("expect"),
                           tuple((str(k), str(v)) for k, v in a["labels"]) if "labels" in a else (),
                           Probe(*a["probe"]) if "probe" in a else None)
                 for a in data)


def builtin_config(scope: str | None = None) -> Config:
    return Config(scope=scope or default_scope())


_OTHER_UNIT_TYPES = (".socket", ".target", ".timer", ".mount", ".automount", ".path", ".slice",
                     ".scope", ".device", ".swap")


def normalize_unit(name: str) -> str:
    """`agent-x` -> `agent-x.service`; a name with a unit type suffix is kept as is."""
    return name if name.endswith((_UNIT_SUFFIX, *_OTHER_UNIT_TYPES)) else name + _UNIT_SUFFIX


def unit_name_problem(name: str, glob: bool = False) -> str | None:
    """Why `name` is not a valid service unit name (or pattern), or None when it is."""
    if not name:
        return "must not be empty"
    if len(name) > _MAX_UNIT_NAME:
        return f"is longer than systemd's limit of {_MAX_UNIT_NAME} characters"
    if not (_GLOB_CHARS if glob else NAME_CHARS).issuperset(name):
        allowed = "letters, digits, ':', '_', '.', '\\', '@', '-'" + (" and * ? [ ] !" if glob else "")
        return f"{shown(name)} has characters systemd does not allow in unit names (only {allowed})"
    if not name.endswith(_UNIT_SUFFIX):
        return f"{shown(name)} is not a .service unit (agents are services)"
    if name.startswith(".") or name.startswith("-"):
        return f"{shown(name)} must not start with '.' or '-'"
    return None


def parse_config(text: str, source: str, scope: str | None = None) -> Config:
    """Parse and validate YAML text. `scope` is the default when the file sets none."""
    from .yamlnodes import Nodes, compose

    return _Validator(Nodes(source)).config(compose(text, source), scope)


class _Validator:
    """Builds the Config from the node tree, every error naming file, line and key."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self.source = nodes.source

    def path(self, node: Any, key: str) -> str:
        value = self.nodes.string(node, key)
        problem = path_problem(value)
        if problem:
            raise self.nodes.fail(node, key, problem)
        if not os.path.isabs(value):
            raise self.nodes.fail(node, key, f"must be an absolute path, got {shown(value)}")
        return os.path.normpath(value)

    def config(self, root: Any, scope: str | None) -> Config:
        nodes = self.nodes
        if root is None:  # an empty file: every default
            return Config(scope=scope or default_scope(), source=self.source)
        top = nodes.mapping(root, None, _TOP_KEYS)
        kwargs: dict[str, Any] = {"source": self.source, "scope": scope or default_scope()}
        if "scope" in top:
            value = nodes.string(top["scope"], "scope")
            if value not in SCOPES:
                raise nodes.fail(top["scope"], "scope", f"must be 'user' or 'system', got {shown(value)}")
            kwargs["scope"] = value
        for key in ("textfile_dir", "disk_path"):
            if key in top:
                kwargs[key] = self.path(top[key], key)
        if "textfile_name" in top:
            kwargs["textfile_name"] = self.textfile_name(top["textfile_name"])
        if "interval_seconds" in top:
            kwargs["interval_seconds"] = self.interval(top["interval_seconds"])
        if "agents" in top:
            kwargs["agents"] = self.agents(top["agents"])
        if "users" in top:
            if "scope" in top and kwargs["scope"] != "user":
                raise nodes.fail(top["scope"], "scope", "must be 'user' (or left out) with 'users': each user's "
                                 "own manager is asked")
            kwargs["scope"] = "user"
            kwargs["users"] = self.users(top["users"], kwargs.get("agents", DEFAULT_AGENTS))
        return Config(**kwargs)

    def users(self, node: Any, agents: tuple[AgentSpec, ...]) -> tuple[UserSpec, ...]:
        """`users:` -> one UserSpec per entry: a user name alone (the top-level agents), or
        {user: NAME, agents: [...]} (that user's own)."""
        from .yamlnodes import is_scalar, is_sequence

        nodes = self.nodes
        if not is_sequence(node) or not node.value:
            raise nodes.fail(node, "users", "must be a non-empty list of user names or {user: NAME, agents: [...]}")
        specs: list[UserSpec] = []
        seen: dict[str, str] = {}
        for i, item in enumerate(node.value):
            key = f"users[{i}]"
            own = agents
            if is_scalar(item):
                name_node = item
            else:
                fields = nodes.mapping(item, key, _USER_KEYS)
                if "user" not in fields:
                    raise nodes.fail(item, key, "needs a 'user' (a user name)")
                name_node = fields["user"]
                if "agents" in fields:
                    own = self.agents(fields["agents"], f"{key}.agents")
                key = f"{key}.user"
            name = nodes.string(name_node, key)
            problem = user_name_problem(name)
            if problem:
                raise nodes.fail(name_node, key, problem)
            if name in seen:
                raise nodes.fail(name_node, key, f"user {name} is already listed at {seen[name]}")
            seen[name] = key
            specs.append(UserSpec(name, own))
        return tuple(specs)

    def textfile_name(self, node: Any) -> str:
        value = self.nodes.string(node, "textfile_name")
        problem = textfile_name_problem(value)
        if problem:
            raise self.nodes.fail(node, "textfile_name", problem)
        return value

    def interval(self, node: Any) -> float:
        value = self.nodes.scalar(node, "interval_seconds")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_INTERVAL_SECONDS:
            raise self.nodes.fail(node, "interval_seconds", "must be a number of seconds above 0 and at most "
                                  f"{MAX_INTERVAL_SECONDS:g}, got {shown(value)}")
        return float(value)

    def agents(self, node: Any, where: str = "agents") -> tuple[AgentSpec, ...]:
        from .yamlnodes import is_sequence

        nodes = self.nodes
        if not is_sequence(node):
            raise nodes.fail(node, where, "must be a list of entries with 'unit' or 'pattern'")
        specs: list[AgentSpec] = []
        units: dict[str, str] = {}
        names: dict[str, str] = {}
        for i, item in enumerate(node.value):
            key = f"{where}[{i}]"
            fields = nodes.mapping(item, key, _AGENT_KEYS)
            if ("unit" in fields) == ("pattern" in fields):
                raise nodes.fail(item, key, "needs exactly one of 'unit' or 'pattern'")
            type_ = nodes.string(fields["type"], f"{key}.type") if "type" in fields else DEFAULT_TYPE
            expect, labels, probe = self.extras(fields, key)
            if "unit" in fields:
                unit_node = fields["unit"]
                unit = normalize_unit(nodes.string(unit_node, f"{key}.unit"))
                problem = unit_name_problem(unit)
                if problem:
                    raise nodes.fail(unit_node, f"{key}.unit", problem)
                if unit in units:
                    raise nodes.fail(unit_node, f"{key}.unit", f"{unit} is already listed at {units[unit]}")
                units[unit] = key
                name = nodes.string(fields["name"], f"{key}.name") if "name" in fields else None
                label = name if name is not None else default_agent_name(unit)
                if label in names:
                    raise nodes.fail(fields.get("name", unit_node), f"{key}.name",
                                     f"agent name {shown(label)} is already used by {names[label]}")
                names[label] = key
                specs.append(AgentSpec(type=type_, unit=unit, name=name, expect=expect, labels=labels,
                                       probe=probe))
            else:
                if "name" in fields:
                    raise nodes.fail(fields["name"], f"{key}.name",
                                     "only an explicit 'unit' can be named; a pattern's agents are "
                                     "named after their units")
                pnode = fields["pattern"]
                pattern = normalize_unit(nodes.string(pnode, f"{key}.pattern"))
                problem = unit_name_problem(pattern, glob=True)
                if problem:
                    raise nodes.fail(pnode, f"{key}.pattern", problem)
                specs.append(AgentSpec(type=type_, pattern=pattern, expect=expect, labels=labels, probe=probe))
        return tuple(specs)

    def extras(self, fields: dict[str, Any], key: str) -> tuple[str | None, Labels, Probe | None]:
        """An entry's `expect`, `labels` and `probe` (each optional, for a unit or a pattern alike)."""
        expect = None
        if "expect" in fields:
            expect = self.nodes.string(fields["expect"], f"{key}.expect")
            if expect not in EXPECTATIONS:
                raise self.nodes.fail(fields["expect"], f"{key}.expect",
                                      f"must be one of {', '.join(EXPECTATIONS)}, got {shown(expect)}")
        labels = self.labels(fields["labels"], f"{key}.labels") if "labels" in fields else ()
        probe = self.probe(fields["probe"], f"{key}.probe") if "probe" in fields else None
        return expect, labels, probe

    def labels(self, node: Any, key: str) -> Labels:
        """`{name: value}` -> ((name, value), ...) sorted by name. A number, boolean or date is
        taken as the file writes it (`tier: 1` is "1"); null, lists and maps are refused."""
        from . import infolabels

        nodes = self.nodes
        entries = nodes.entries(node, key)
        if len(entries) > infolabels.MAX_LABELS:
            raise nodes.fail(node, key, f"has {len(entries)} labels; at most {infolabels.MAX_LABELS} are allowed")
        out: list[tuple[str, str]] = []
        for name, (knode, vnode) in entries.items():
            problem = infolabels.name_problem(name)
            if problem:
                raise nodes.fail(knode, key, problem)
            value = nodes.scalar_text(vnode, f"{key}.{name}")
            problem = infolabels.value_problem(value)
            if problem:
                raise nodes.fail(vnode, f"{key}.{name}", problem)
            out.append((name, value))
        return tuple(sorted(out))

    def probe(self, node: Any, key: str) -> Probe:
        from . import probespec

        nodes = self.nodes
        fields = nodes.mapping(node, key, _PROBE_KEYS)
        if "url" not in fields:
            raise nodes.fail(node, key, "needs a url, e.g. {url: \"http://127.0.0.1:8080/health\"}")
        url = nodes.string(fields["url"], f"{key}.url")
        timeout, status = probespec.DEFAULT_TIMEOUT_SECONDS, probespec.DEFAULT_EXPECT_STATUS
        try:
            target = probespec.parse_url(url)
        except ValueError as exc:
            raise nodes.fail(fields["url"], f"{key}.url", str(exc)) from None
        for name in ("timeout", "expect_status"):
            if name in fields:
                value = nodes.scalar(fields[name], f"{key}.{name}")
                try:
                    if name == "timeout":
                        timeout = probespec.parse_timeout(value)
                    else:
                        status = probespec.parse_status(value)
                except ValueError as exc:
                    raise nodes.fail(fields[name], f"{key}.{name}", str(exc)) from None
        return Probe(url=url, host=target.host, address=target.address, port=target.port, path=target.path,
                     timeout_seconds=timeout, expect_status=status)


def user_name_problem(name: str) -> str | None:
    """Why `name` cannot be a user's name in `users:`, or None when it can."""
    if len(name) > _MAX_USER_NAME:
        return f"{shown(name)} is longer than {_MAX_USER_NAME} characters"
    if not _USER_CHARS.issuperset(name) or name[0] in "-." or name.isdigit():
        return (f"{shown(name)} is not a user name (letters, digits, '_', '-' and '.', not starting with '-' or "
                "'.', not a number)")
    return None


def default_agent_name(unit: str) -> str:
    return unit[: -len(_UNIT_SUFFIX)] if unit.endswith(_UNIT_SUFFIX) else unit
