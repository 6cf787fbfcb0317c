"""deploy/deploy_agent_monitoring.sh and the prometheus.yml editor it uses: syntax, shellcheck, a dry
run that changes nothing, a real run on a copy of Debian's default configuration (comments kept,
backup made, promtool-checked), idempotence, and refusal of files it cannot edit safely.

Reloading a real Prometheus is in tests/integration/test_deploy_prometheus_reload.py."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from deploy_fixtures import ALERTS_YML, CONFIG_EDITOR, DEBIAN_DEFAULT, DEPLOY_SCRIPT
from procs import free_port, need


@pytest.fixture(scope="module")
def editor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prometheus_config", CONFIG_EDITOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(DEPLOY_SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def prom_dir(tmp_path: Path) -> Path:
    d = tmp_path / "etc-prometheus"
    d.mkdir()
    (d / "prometheus.yml").write_text(DEBIAN_DEFAULT)
    return d


def nothing_listens() -> str:
    return f"http://127.0.0.1:{free_port()}"


# ---------------------------------------------------------------------------------------------
# The script


def test_bash_syntax() -> None:
    done = subprocess.run(["bash", "-n", str(DEPLOY_SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert DEPLOY_SCRIPT.read_text().splitlines()[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in DEPLOY_SCRIPT.read_text()
    assert os.access(DEPLOY_SCRIPT, os.X_OK)


def test_shellcheck_clean() -> None:
    done = subprocess.run([need("shellcheck"), "--severity=style", str(DEPLOY_SCRIPT)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_help_lists_the_steps_and_options() -> None:
    done = script("--help")
    assert done.returncode == 0, done.stderr
    for word in ("--dry-run", "--user", "--system", "--python", "--prometheus-config", "--prometheus-url",
                 "--skip-install", "--skip-prometheus", "--listen-address", "promtool", "agent-exporter install"):
        assert word in done.stdout, word


def test_unknown_option_is_refused() -> None:
    done = script("--bogus")
    assert done.returncode == 1
    assert "unknown option --bogus" in done.stderr


def test_dry_run_changes_nothing_and_explains_every_step(tmp_path: Path, prom_dir: Path) -> None:
    before = snapshot(prom_dir)
    venv = Path("/opt") / f"agent-exporter-dry-run-{os.getpid()}"  # where system units can read (not /tmp)
    done = script("--dry-run", "--system", "--venv", str(venv), "--prometheus-config", str(prom_dir / "prometheus.yml"),
                  "--prometheus-url", nothing_listens())
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for n in range(1, 6):
        assert f"==> {n}/5 " in out, n
    # Debian's own interpreter, whatever python3 comes first on PATH
    assert f"Python for {venv}: /usr/bin/python3 (3." in out
    assert f"$ /usr/bin/python3 -m venv {venv}" in out
    assert f"$ {venv}/bin/pip install" in out
    assert f"$ {venv}/bin/agent-exporter install --scope system --now --web.listen-address 127.0.0.1:9200" in out
    assert "+  - job_name: agent-monitoring" in out and "+  - prometheus-alerts.yml" in out  # the diff
    assert "/-/reload" in out
    assert out.rstrip().endswith("Dry run done: nothing was changed.")
    assert snapshot(prom_dir) == before
    assert not venv.exists()
    assert not list(tmp_path.glob("**/.prometheus.yml.agent-exporter.*"))


def test_dry_run_asks_agent_exporter_install_and_stops_where_it_would(prom_dir: Path, tmp_path: Path) -> None:
    """With an environment that has agent-exporter, the dry run asks `agent-exporter install --dry-run`,
    which refuses where the install would: here no user manager answers, so the dry run stops with
    its reason. (What it prints where a manager runs: tests/integration/install/test_install_systemd.py.)"""
    venv = Path(sys.executable).parent.parent
    no_manager = tmp_path / "no-manager"
    no_manager.mkdir()
    env = {"XDG_RUNTIME_DIR": str(no_manager), "DBUS_SESSION_BUS_ADDRESS": f"unix:path={no_manager}/bus"}
    done = script("--dry-run", "--user", "--venv", str(venv), "--skip-prometheus", env=env)
    assert done.returncode != 0, done.stdout
    assert "agent-exporter install --dry-run" in done.stdout
    assert "agent-exporter: error: systemd is not reachable in user scope" in done.stderr, done.stderr


# The interpreter: one the system units can run, or a stop at once with the reason (issue 14)

# a version manager's shim: finds the interpreter in the caller's environment
SHIM = '#!/usr/bin/env bash\nexec /usr/bin/python3 "$@"\n'


@pytest.fixture
def shim_first(tmp_path: Path) -> dict[str, str]:
    """PATH with a version manager's shim for python3 before /usr/bin."""
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").write_text(SHIM)
    (shims / "python3").chmod(0o755)
    return {"PATH": f"{shims}:{os.environ['PATH']}"}


@contextlib.contextmanager
def interpreter_in(parent: str, mode: int = 0o755) -> Iterator[Path]:
    """A real copy of Debian's python3.11 in a new directory under `parent`, removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="agent-exporter-py-", dir=parent))
    try:
        where.chmod(mode)
        shutil.copy2(os.path.realpath("/usr/bin/python3"), where / "python3.11")
        yield where / "python3.11"
    finally:
        shutil.rmtree(where)


def system_dry_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return script("--dry-run", "--system", "--skip-prometheus", *args, env=env)


def assert_stopped_at_once(done: subprocess.CompletedProcess[str], reason: str) -> None:
    assert done.returncode == 1, done.stdout
    assert done.stderr.splitlines() == [f"deploy_agent_monitoring.sh: error: {reason}"], done.stderr
    assert "==> 1/5" not in done.stdout  # before any step


def test_a_shim_first_on_path_is_passed_over(shim_first: dict[str, str]) -> None:
    venv = f"/opt/agent-exporter-dry-run-{os.getpid()}"
    for scope in ("--system", "--user"):
        done = script("--dry-run", scope, "--skip-prometheus", "--venv", venv, env=shim_first)
        assert f"$ /usr/bin/python3 -m venv {venv}" in done.stdout, done.stdout + done.stderr


def test_a_shim_given_is_refused(shim_first: dict[str, str]) -> None:
    shim = shim_first["PATH"].split(":")[0] + "/python3"
    done = system_dry_run("--python", shim, "--venv", "/opt/agent-exporter-x", env=shim_first)
    assert_stopped_at_once(done, f"--python: {shim} is a script, not an interpreter: a version manager's shim "
                                 "runs only in your shell")


def test_an_interpreter_under_tmp_or_a_home_or_a_closed_directory_is_refused_for_system_units() -> None:
    venv = ["--venv", "/opt/agent-exporter-x"]
    with interpreter_in(tempfile.gettempdir()) as python:
        assert_stopped_at_once(system_dry_run("--python", str(python), *venv),
                               f"--python: {python} is in a temporary directory: the system units see a private "
                               "one (PrivateTmp=)")
        user = script("--dry-run", "--user", "--skip-prometheus", "--python", str(python), *venv)
        assert f"$ {python} -m venv /opt/agent-exporter-x" in user.stdout, user.stderr  # user units run as you
    with interpreter_in(os.path.expanduser("~")) as python:
        assert_stopped_at_once(system_dry_run("--python", str(python), *venv),
                               f"--python: {python} is in a home directory: the system units cannot read it "
                               "(ProtectHome=)")
    with interpreter_in("/opt", mode=0o700) as python:
        assert_stopped_at_once(system_dry_run("--python", str(python), *venv),
                               f"--python: {python} is in {python.parent}, closed to other users (drwx------): the "
                               "system units run as users of their own")


def test_an_existing_environment_made_from_a_home_interpreter_is_refused() -> None:
    with interpreter_in(os.path.expanduser("~")) as python, interpreter_in("/opt") as elsewhere:
        venv = elsewhere.parent / "venv"
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(python)  # what `python -m venv` makes
        assert_stopped_at_once(system_dry_run("--venv", str(venv)),
                               f"{venv} exists, made from an interpreter the system units cannot use: {venv}/bin/"
                               f"python ({python}) is in a home directory: the system units cannot read it "
                               "(ProtectHome=) (remove it, or choose another --venv)")


def test_a_system_environment_under_tmp_is_refused(tmp_path: Path) -> None:
    assert_stopped_at_once(system_dry_run("--venv", str(tmp_path / "venv")),
                           f"--venv: {tmp_path / 'venv'} is in a temporary directory: the system units see a private "
                           "one (PrivateTmp=) (the default: /opt/agent-exporter)")


def test_real_run_edits_a_copy_of_debians_config_then_is_idempotent(prom_dir: Path) -> None:
    config = prom_dir / "prometheus.yml"
    url = nothing_listens()
    done = script("--skip-install", "--prometheus-config", str(config), "--prometheus-url", url,
                  "--listen-address", "127.0.0.1:9250", "--wait", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    new = config.read_text()
    # every line of the original is still there, in order (comments included)
    lines = iter(new.splitlines())
    assert all(any(line == n for n in lines) for line in DEBIAN_DEFAULT.splitlines())
    doc = yaml.safe_load(new)
    assert doc["rule_files"] == ["prometheus-alerts.yml"]
    job = doc["scrape_configs"][-1]
    assert job == {"job_name": "agent-monitoring", "scrape_interval": "10s", "scrape_timeout": "5s",
                   "static_configs": [{"targets": ["127.0.0.1:9250"]}]}
    (backup,) = prom_dir.glob("prometheus.yml.bak.*")
    assert backup.read_text() == DEBIAN_DEFAULT
    assert (prom_dir / "prometheus-alerts.yml").read_bytes() == ALERTS_YML.read_bytes()
    checked = subprocess.run([need("promtool"), "check", "config", str(config)], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "does not answer" in done.stderr  # nothing to reload: said, not fatal
    # the duplicate warning: Debian's node job scrapes node_exporter, which serves agents.prom too
    assert "job 'node' scrapes node_exporter" in done.stderr

    after = snapshot(prom_dir)
    again = script("--skip-install", "--prometheus-config", str(config), "--prometheus-url", url, "--wait", "1")
    assert again.returncode == 0, again.stderr
    assert "Already up to date." in again.stdout and "Already there" in again.stdout
    assert "Nothing changed: no reload needed." in again.stdout
    assert snapshot(prom_dir) == after


def test_changed_rules_are_replaced_with_a_backup(prom_dir: Path) -> None:
    (prom_dir / "prometheus-alerts.yml").write_text("groups: []\n")
    done = script("--skip-install", "--prometheus-config", str(prom_dir / "prometheus.yml"),
                  "--prometheus-url", nothing_listens(), "--wait", "1")
    assert done.returncode == 0, done.stderr
    (backup,) = prom_dir.glob("prometheus-alerts.yml.bak.*")
    assert backup.read_text() == "groups: []\n"
    assert (prom_dir / "prometheus-alerts.yml").read_bytes() == ALERTS_YML.read_bytes()


@pytest.mark.parametrize("text,why", [
    ("scrape_configs: [{job_name: x, static_configs: [{targets: ['a:1']}]}]\n", "flow style"),
    ("scrape_configs:\n  - job_name: x\n   bad: indentation\n", "not valid YAML"),
    ("- just\n- a list\n", "not a Prometheus configuration"),
])
def test_a_config_it_cannot_edit_safely_is_left_alone(prom_dir: Path, text: str, why: str) -> None:
    config = prom_dir / "prometheus.yml"
    config.write_text(text)
    done = script("--skip-install", "--prometheus-config", str(config), "--prometheus-url", nothing_listens())
    assert done.returncode != 0
    assert why in done.stderr and "Add by hand" in done.stderr
    assert f"{config} was left as it was" in done.stderr
    assert config.read_text() == text
    assert not list(prom_dir.glob("*.bak.*")) and not list(prom_dir.glob(".prometheus.yml.*"))


def test_a_config_promtool_rejects_is_not_installed(prom_dir: Path) -> None:
    config = prom_dir / "prometheus.yml"
    bad = DEBIAN_DEFAULT.replace("scrape_timeout: 5s", "scrape_timeout: 50s")  # longer than the interval
    config.write_text(bad)
    done = script("--skip-install", "--prometheus-config", str(config), "--prometheus-url", nothing_listens())
    assert done.returncode != 0
    assert "scrape timeout greater than scrape interval" in done.stdout + done.stderr
    assert config.read_text() == bad
    assert not list(prom_dir.glob("prometheus.yml.bak.*")) and not list(prom_dir.glob(".prometheus.yml.*"))


def test_missing_prometheus_config_stops_before_any_change(tmp_path: Path) -> None:
    done = script("--user", "--prometheus-config", str(tmp_path / "nope.yml"), "--venv", str(tmp_path / "venv"))
    assert done.returncode == 1
    assert "does not exist" in done.stderr
    assert not (tmp_path / "venv").exists()


# ---------------------------------------------------------------------------------------------
# The editor


def test_editor_adds_to_zero_indented_lists(editor: ModuleType) -> None:
    text = ("global:\n  scrape_interval: 15s\nrule_files:\n- other.yml\nscrape_configs:\n- job_name: a\n"
            "  static_configs:\n  - targets: ['a:1']\n# trailing comment\n")
    new = editor.add(text, "agent-monitoring", "127.0.0.1:9200", "prometheus-alerts.yml")
    doc = yaml.safe_load(new)
    assert doc["rule_files"] == ["other.yml", "prometheus-alerts.yml"]
    assert [j["job_name"] for j in doc["scrape_configs"]] == ["a", "agent-monitoring"]
    assert "\n- job_name: agent-monitoring\n" in new  # the file's own indentation
    assert new.rstrip().endswith("# trailing comment")


def test_editor_creates_missing_lists(editor: ModuleType) -> None:
    new = editor.add("global:\n  scrape_interval: 15s\n", "agent-monitoring", "127.0.0.1:9200", "r.yml")
    doc = yaml.safe_load(new)
    assert doc["rule_files"] == ["r.yml"] and doc["scrape_configs"][0]["job_name"] == "agent-monitoring"
    new = editor.add("rule_files: []\nscrape_configs: []\n", "agent-monitoring", "127.0.0.1:9200", "r.yml")
    doc = yaml.safe_load(new)
    assert doc["rule_files"] == ["r.yml"] and len(doc["scrape_configs"]) == 1


def test_editor_adds_only_what_is_missing(editor: ModuleType) -> None:
    has_job = "scrape_configs:\n  - job_name: agent-monitoring\n    static_configs: [{targets: ['h:9200']}]\n"
    new = editor.add(has_job, "agent-monitoring", "127.0.0.1:9200", "r.yml")
    doc = yaml.safe_load(new)
    assert doc["rule_files"] == ["r.yml"] and len(doc["scrape_configs"]) == 1
    assert editor.add(new, "agent-monitoring", "127.0.0.1:9200", "r.yml") is None


def test_editor_warns_about_node_exporter_duplicates_only_without_the_drop(editor: ModuleType) -> None:
    from devtools.stack import PROMETHEUS_YML

    assert editor.duplicate_warning(DEBIAN_DEFAULT) is not None
    assert editor.duplicate_warning(PROMETHEUS_YML.read_text()) is None
