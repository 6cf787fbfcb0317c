"""deploy_agent_monitoring.sh's steps 1 and 2 for real, in a user manager of the test's own, with a
version manager's shim first on PATH (issue 14: the script built its environment with whatever
python3 came first): the environment is made from Debian's interpreter, the units it installs run
from it, and uninstall removes them. (The Prometheus steps: test_deploy_prometheus_reload.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from deploy_fixtures import DEPLOY_SCRIPT
from procs import free_port, http_get

from devtools.harness import UserManager
from textfile_writer.install import units

pytestmark = pytest.mark.integration

SHIM = '#!/usr/bin/env bash\nexec /usr/bin/python3 "$@"\n'  # what a version manager puts first on PATH


def test_the_script_builds_from_an_interpreter_the_units_run(manager: UserManager, tmp_path: Path) -> None:
    work = tmp_path
    (work / "shims").mkdir()
    (work / "shims" / "python3").write_text(SHIM)
    (work / "shims" / "python3").chmod(0o755)
    venv, textfile_dir, port = work / "venv", work / "textfile", free_port()
    config = work / "config.yml"
    config.write_text(f"scope: user\ntextfile_dir: {textfile_dir}\ninterval_seconds: 2\n")
    config.chmod(0o644)
    env = {"PATH": f"{work / 'shims'}:{os.environ['PATH']}"}
    done = manager.run(["bash", str(DEPLOY_SCRIPT), "--user", "--skip-prometheus", "--venv", str(venv),
                        "--listen-address", f"127.0.0.1:{port}", "--wait", "60", "--", "--config", str(config)],
                       check=False, timeout=600, env=env)
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"Python for {venv}: /usr/bin/python3 (3." in done.stdout
        assert f"$ /usr/bin/python3 -m venv {venv}" in done.stdout
        assert os.path.realpath(venv / "bin" / "python") == os.path.realpath("/usr/bin/python3")
        assert "The server answers and the writer's file is fresh." in done.stdout, done.stdout + done.stderr
        writer = manager.show(units.WRITER_SERVICE, "ExecStart", "Result")
        assert f"path={venv}/bin/agent-exporter" in writer["ExecStart"] and writer["Result"] == "success"
        status, _body = http_get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert status == 200
    finally:
        if (venv / "bin" / "agent-exporter").exists():
            gone = manager.run([str(venv / "bin" / "agent-exporter"), "uninstall", "--scope", "user"], check=False)
            assert gone.returncode == 0, gone.stderr
