"""The bcrypt cost a web configuration may ask for is capped: above it, one line and no server.

A cost-31 hash used to be accepted, and the server hashed its dummy password at that cost before
serving (days); cost 14 took ~0.9 s per check. The cap is MAX_BCRYPT_COST (12: ~0.2 s per check).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from devtools.textfiles import serve_argv
from textfile_writer.errors import ConfigError
from textfile_writer.server.webconfig import parse_web_config

SALT = "a" * 53  # syntactically a bcrypt hash; never checked here


@pytest.mark.parametrize("cost", [13, 14, 16, 31])
def test_a_hash_above_the_cap_is_refused_with_one_line(cost: int) -> None:
    text = f"basic_auth_users:\n  prometheus: $2b${cost:02d}${SALT}\n"
    with pytest.raises(ConfigError) as info:
        parse_web_config(text, "web.yml", "/etc")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("web.yml:2: basic_auth_users.prometheus: ")
    assert f"bcrypt cost {cost} is above 12" in message


def test_the_cap_itself_is_accepted() -> None:
    from textfile_writer.server.webconfig import MAX_BCRYPT_COST

    assert MAX_BCRYPT_COST == 12
    text = f"basic_auth_users:\n  prometheus: $2b$12${SALT}\n"
    assert parse_web_config(text, "web.yml", "/etc").users == {"prometheus": f"$2b$12${SALT}"}


def test_serve_refuses_a_cost_31_hash_at_once(tmp_path: Path) -> None:
    """The real command: exit 2, one line naming the file, the line and the key; it used to never
    finish starting (a dummy hash at cost 31 before the first accept)."""
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: $2b$31${SALT}\n")
    t = time.monotonic()
    try:
        done = subprocess.run(serve_argv("--web.listen-address", "127.0.0.1:0", "--web.config.file", str(web),
                                         "--textfile-dir", str(tmp_path)),
                              capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("serve still starting after 60 s with a cost-31 hash")
    assert time.monotonic() - t < 30
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and f"{web}:2: basic_auth_users.prometheus: bcrypt cost 31" in lines[0], lines
