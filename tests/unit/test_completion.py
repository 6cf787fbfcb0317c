"""Shell completion, as the README and `agent-exporter --help` say to enable it: click's
`_AGENT_EXPORTER_COMPLETE=bash_source agent-exporter`, with the installed command (the venv's script,
which pip made from bin/agent-exporter) and with bin/agent-exporter run from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLED = Path(sys.executable).with_name("agent-exporter")
COMMANDS = {"installed": [str(INSTALLED)], "bin/": [sys.executable, str(REPO / "bin" / "agent-exporter")]}


def complete(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env})


@pytest.mark.parametrize("how", sorted(COMMANDS))
@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _agent_exporter_completion agent-exporter"),
    ("zsh", "#compdef agent-exporter"),
    ("fish", "complete --no-files --command agent-exporter")])
def test_the_completion_script_is_produced(how: str, shell: str, marker: str) -> None:
    done = complete(COMMANDS[how], _AGENT_EXPORTER_COMPLETE=f"{shell}_source")
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout
    assert done.stderr == ""


def test_bash_completes_commands_and_options_through_the_script() -> None:
    """The script sourced in a real bash, its function called as bash calls it on <Tab>."""
    assert os.access(INSTALLED, os.X_OK)
    script = f"""
        source <(_AGENT_EXPORTER_COMPLETE=bash_source {INSTALLED})
        for line in "agent-exporter s" "agent-exporter serve --inter" "agent-exporter install --sc"; do
            read -ra COMP_WORDS <<< "$line"
            COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
            COMPREPLY=()
            _agent_exporter_completion {INSTALLED}
            echo "${{COMPREPLY[*]}}"
        done
    """
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PATH": f"{INSTALLED.parent}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    # serve's deprecated --interval-seconds is not offered
    assert done.stdout.splitlines() == ["serve status", "--interval", "--scope"], done.stdout + done.stderr


def test_help_says_how_to_enable_it() -> None:
    done = complete([str(INSTALLED), "--help"])
    assert 'eval "$(_AGENT_EXPORTER_COMPLETE=bash_source agent-exporter)"' in done.stdout
