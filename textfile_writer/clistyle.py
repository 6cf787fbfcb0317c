"""One style for the click commands of all three programs: help that says each option's default in
words and ends in `[env: NAME]`, deprecated spellings that keep working (hidden from --help, with a
one-line warning), and click's usage errors worded as one line. `write`'s fast path never imports it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .console import PROG, warn

F = TypeVar("F", bound=Callable[..., Any])

SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# Where a value came from, by precedence: the command line over the environment over nothing.
_RANK = {ParameterSource.COMMANDLINE: 2, ParameterSource.ENVIRONMENT: 1}


class StyledOption(click.Option):
    """The help as written, then `[env: NAME]`; none of click's `[env var: …; default: …; x>=1]`."""

    def __init__(self, *args: Any, env: str | None = None, **attrs: Any) -> None:
        super().__init__(*args, **attrs)
        self.env = env

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        # click's own record for the left column (`--interval SECONDS`; click 8.1, Debian 12's, has no
        # get_help_spec), this style's text for the right
        record = None if self.hidden else super().get_help_record(ctx)
        if record is None:
            return None
        return record[0], f"{self.help or ''}" + (f" [env: {self.env}]" if self.env else "")


def option(*decls: str, env: str | None = None, read_env: bool = True, **attrs: Any) -> Callable[[F], F]:
    """click.option in the house style; `env` is its AGENT_EXPORTER_* variable, which click reads
    unless `read_env` is false (options.resolve reads the writer's own)."""
    return click.option(*decls, cls=StyledOption, env=env, envvar=env if read_env else None, show_envvar=False,
                        show_default=False, **attrs)


def deprecated_option(*decls: str, env: str | None = None, **attrs: Any) -> Callable[[F], F]:
    """An old spelling that still works: hidden from --help; `deprecated` reads it and warns."""
    return option(*decls, env=env, hidden=True, **attrs)


def deprecated(ctx: click.Context, old: str, *new: str) -> Any:
    """The value of the deprecated option `old` when it is to be used instead of the options `new`:
    it was given with a higher precedence than any of them (the command line over the environment).
    Given at all, it is warned about in one line that names the spelling to use."""
    value, given = ctx.params.get(old), _RANK.get(ctx.get_parameter_source(old), 0)  # type: ignore[arg-type]
    if value is None or not given:
        return None
    options = {p.name: p for p in ctx.command.params if isinstance(p, StyledOption)}
    if given == _RANK[ParameterSource.COMMANDLINE]:
        spelled, instead = options[old].opts[0], [options[n].opts[0] for n in new]
    else:
        spelled, instead = str(options[old].env), [str(options[n].env) for n in new]
    warn(f"{spelled} is deprecated: use {' and '.join(instead)}")
    ranks = [_RANK.get(ctx.get_parameter_source(n), 0) for n in new]  # type: ignore[arg-type]
    return value if given > max(ranks) else None


def usage_message(exc: click.ClickException, command: str = PROG) -> str:
    """A click error as the one line after `agent-exporter: error:`: a bad value names the option or
    the environment variable it came from, then where to read more: the help of the error's command,
    else of `command` (click's parser errors carry no command)."""
    message = exc.format_message()
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) \
            and isinstance(exc.param, click.Option) and exc.param.name:
        source = exc.ctx.get_parameter_source(exc.param.name) if exc.ctx is not None else None
        where = exc.param.envvar if source is ParameterSource.ENVIRONMENT else exc.param.opts[0]
        message = f"{where}: {exc.message.rstrip('.')}"
    if isinstance(exc, click.UsageError):
        where = exc.ctx.command_path if exc.ctx is not None else command
        message = f"{message.rstrip('.')} (see '{where} --help')"
    return message
