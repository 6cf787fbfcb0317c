"""The `agent-exporter` command.

`write` is what the timer runs every 10 seconds on every host, so it takes a fast path that
imports neither click nor PyYAML (see options.py and configfile.py); every other command, and any
`write` invocation the fast parser does not recognise, goes through click in cli.py.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

PROG = "agent-exporter"


def warn(message: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {message}\n")


def error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")


def run_write(values: Mapping[str, str | bool | None]) -> int:
    """`agent-exporter write`: the exit code; one line on stderr when it fails."""
    from .errors import AgentExporterError
    from .options import resolve
    from .writer import write

    try:
        settings = resolve(values)

        def note(message: str) -> None:
            if settings.verbose:
                sys.stderr.write(f"{PROG}: {message}\n")

        result = write(settings, note=note)
    except AgentExporterError as exc:
        error(str(exc))
        return exc.exit_code
    for problem in result.problems:
        warn(problem)
    if settings.verbose:
        snap = result.snapshot
        sys.stderr.write(f"{PROG}: wrote {settings.config.textfile_path}: {len(snap.agents)} agents, "
                         f"{snap.running} running, {len(result.problems)} problems, "
                         f"{snap.duration_seconds * 1000:.1f} ms\n")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["write"]:
        from .options import parse_fast

        values = parse_fast(args[1:])
        if values is not None:
            sys.exit(run_write(values))
    from .cli import cli

    cli.main(args=args, prog_name=PROG)


if __name__ == "__main__":
    main()
