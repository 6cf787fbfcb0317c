"""Reading YAML for validation: the node tree (which keeps line numbers) and a walker whose every
error is a ConfigError naming file, line and key (`web.yml:4: tls_server_config.min_version: ...`).

Shared by the writer's configuration (config.py) and the server's web configuration
(server/webconfig.py). Imported only when a file is actually parsed: PyYAML costs more to import
than a whole writer run, whose hot path reads a cached, already validated configuration.

Hostile documents are refused while the tree is composed, before anything walks it: neither file
needs an alias (`*name`), whose repetition is how a small file becomes a huge value (an alias bomb),
and neither nests deeper than a few levels, while PyYAML composes recursively (deep nesting would
end in a RecursionError). Values quoted in messages are cut (errors.shown).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from .errors import ConfigError, shown

# Both files nest four levels at most (http_server_config.headers.<name>); this leaves room for
# everything YAML allows a user to write there and stays far below Python's recursion limit.
MAX_DEPTH = 32


class _Refused(yaml.MarkedYAMLError):
    """A document this reader will not compose (an alias, too deep)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and bounds the nesting depth while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(problem="YAML aliases (*name) are not supported in this file", problem_mark=mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def compose(text: str, source: str) -> Any:
    """The root node of `text` (None for an empty document), or a ConfigError with the line."""
    try:
        return yaml.compose(text, Loader=_Loader)
    except _Refused as exc:
        raise ConfigError(source, _line(exc), None, str(exc.problem)) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(source, _line(exc), None, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, None, f"not valid YAML: {exc}") from None


def _line(exc: yaml.MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else None


def is_sequence(node: Any) -> bool:
    return isinstance(node, yaml.SequenceNode)


def is_scalar(node: Any) -> bool:
    return isinstance(node, yaml.ScalarNode)


class Nodes:
    """Walks one file's node tree. Keys are dotted paths (`agents[0].unit`); "" or None is the top."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._loader = yaml.SafeLoader("")

    def fail(self, node: Any, key: str | None, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return ConfigError(self.source, line, key, message)

    def entries(self, node: Any, key: str | None, null_is_empty: bool = False) -> dict[str, tuple[Any, Any]]:
        """A mapping's {key: (key node, value node)}; with null_is_empty, `key:` alone means {}."""
        if null_is_empty and isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, "must be a mapping of key: value")
        out: dict[str, tuple[Any, Any]] = {}
        for knode, vnode in node.value:
            name = knode.value if isinstance(knode, yaml.ScalarNode) else None
            if not isinstance(name, str):
                raise self.fail(knode, key, "keys must be plain strings")
            if name in out:
                raise self.fail(knode, _join(key, name), "is given twice")
            out[name] = (knode, vnode)
        return out

    def check_keys(self, entries: Mapping[str, tuple[Any, Any]], allowed: tuple[str, ...], key: str | None) -> None:
        for name, (knode, _vnode) in entries.items():
            if name not in allowed:
                raise self.fail(knode, _join(key, name), f"unknown key (expected one of: {', '.join(allowed)})")

    def mapping(self, node: Any, key: str | None, allowed: tuple[str, ...]) -> dict[str, Any]:
        """A mapping with only `allowed` keys: {key: value node}."""
        found = self.entries(node, key)
        self.check_keys(found, allowed, key)
        return {name: vnode for name, (_knode, vnode) in found.items()}

    def value(self, node: Any, key: str) -> Any:
        """The Python value of a node, nested ones included."""
        return self._construct(node, key, deep=True)

    def scalar(self, node: Any, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, "must be a single value")
        return self._construct(node, key, deep=False)

    def _construct(self, node: Any, key: str, deep: bool) -> Any:
        # A tag can ask for what cannot be built: !!binary with bad base64, a 13th month, an int
        # of more digits than Python converts, a python/* tag the safe loader refuses.
        try:
            return self._loader.construct_object(node, deep=deep)
        except yaml.MarkedYAMLError as exc:
            raise self.fail(node, key, f"not a valid value: {exc.problem or exc}") from None
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
            raise self.fail(node, key, f"not a valid value: {exc}") from None

    def text(self, node: Any, key: str) -> str:
        """A string, possibly empty."""
        value = self.scalar(node, key)
        if not isinstance(value, str):
            raise self.fail(node, key, f"must be a string, got {shown(value)}")
        return value

    def string(self, node: Any, key: str) -> str:
        """A non-empty string."""
        value = self.scalar(node, key)
        if not isinstance(value, str) or value == "":
            raise self.fail(node, key, f"must be a non-empty string, got {shown(value)}")
        return value

    def scalar_text(self, node: Any, key: str) -> str:
        """A single value as text: a string as it is, a number, boolean or date as the file writes it
        (`1.50` stays "1.50", `yes` stays "yes", not 1.5 or True); null and !!binary are refused."""
        value = self.scalar(node, key)
        if isinstance(value, str):
            return value
        if value is None or isinstance(value, bytes):
            raise self.fail(node, key, f"must be a string or a number, got {'null' if value is None else 'binary'}")
        return str(node.value)

    def boolean(self, node: Any, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            raise self.fail(node, key, f"must be true or false, got {shown(value)}")
        return value


def _join(key: str | None, name: str) -> str:
    return f"{key}.{name}" if key else name
