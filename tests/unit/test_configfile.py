"""configfile.py: the validated cache that keeps PyYAML off the writer's hot path."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path

from textfile_writer.configfile import load_config
from textfile_writer.defaults import CONFIG_CACHE_FILE as CACHE_NAME

TEXT = "scope: user\ntextfile_dir: /tmp\nagents:\n  - unit: agent-a\n    type: primary\n"


def load_in_a_fresh_process(cfg: Path, cache: Path, printed: str) -> str:
    """What `print(<printed>)` says after load_config in a new interpreter (`c` is the config)."""
    code = ("import sys\nfrom textfile_writer.configfile import load_config\n"
            f"c = load_config({str(cfg)!r}, 'user', {str(cache)!r})\nprint({printed})\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_second_load_comes_from_cache_without_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(TEXT)
    cache = tmp_path / "state"
    cache.mkdir()
    first = load_config(str(cfg), "user", str(cache))
    assert (cache / CACHE_NAME).exists()
    out = load_in_a_fresh_process(cfg, cache, "c.agents[0].unit, 'yaml' in sys.modules, 'json' in sys.modules")
    assert out.split() == [str(first.agents[0].unit), "False", "False"]


def test_changed_file_is_parsed_again(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(TEXT)
    load_config(str(cfg), "user", str(tmp_path))
    cfg.write_text(TEXT.replace("agent-a", "agent-b"))
    os.utime(cfg, ns=(1, 1))  # even with an old mtime: ctime and size still change
    assert load_config(str(cfg), "user", str(tmp_path)).agents[0].unit == "agent-b.service"


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(TEXT)
    for garbage in (b"{garbage", b"", marshal.dumps([1, 2, 3]), marshal.dumps(("key", {"scope": 1}))):
        (tmp_path / CACHE_NAME).write_bytes(garbage)
        assert load_config(str(cfg), "user", str(tmp_path)).agents[0].unit == "agent-a.service"
    _key, data = marshal.loads((tmp_path / CACHE_NAME).read_bytes())
    assert data["agents"][0]["unit"] == "agent-a.service"


def test_default_scope_is_part_of_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("agents: []\n")
    assert load_config(str(cfg), "user", str(tmp_path)).scope == "user"
    assert load_config(str(cfg), "system", str(tmp_path)).scope == "system"


def test_cache_writable_by_others_is_not_trusted(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(TEXT)
    load_config(str(cfg), "user", str(tmp_path))
    cache = tmp_path / CACHE_NAME
    key, data = marshal.loads(cache.read_bytes())
    data["agents"][0]["unit"] = "agent-evil.service"
    cache.write_bytes(marshal.dumps((key, data)))
    os.chmod(cache, 0o600)
    assert load_config(str(cfg), "user", str(tmp_path)).agents[0].unit == "agent-evil.service"  # ours: used
    os.chmod(cache, 0o666)
    assert load_config(str(cfg), "user", str(tmp_path)).agents[0].unit == "agent-a.service"  # not trusted


EXTRAS = """agents:
  - unit: agent-a
    expect: oneshot
    labels: {team: payments, tier: 1}
    probe: {url: "http://127.0.0.1:8080/health", timeout: 500ms, expect_status: 204}
  - pattern: "agent-*"
    probe: {url: "http://[::1]:9/"}
"""


def test_expect_labels_and_probe_come_back_from_the_cache(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(EXTRAS)
    first = load_config(str(cfg), "user", str(tmp_path))
    assert first.agents[0].labels == (("team", "payments"), ("tier", "1")) and len(first.probes) == 2
    out = load_in_a_fresh_process(cfg, tmp_path, "repr(c.agents), 'yaml' in sys.modules")
    assert out.strip() == f"{first.agents!r} False"
