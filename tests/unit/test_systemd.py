"""systemd.py: the argv of every call and the parsers, on output captured from systemd 252."""

from __future__ import annotations

import pytest
from captured import Replay, fleet_replay, fleet_units, ok, text

from textfile_writer import systemd
from textfile_writer.errors import SystemdError
from textfile_writer.proc import Completed


def test_show_output_parses_into_one_block_per_unit_in_order() -> None:
    blocks = systemd.parse_show(text("show_fleet.txt"))
    assert [b["Id"] for b in blocks] == fleet_units()
    running = blocks[0]
    assert running["ActiveState"] == "active"
    assert running["ControlGroup"].endswith("/app.slice/agent-running.service")
    assert {b["LoadState"] for b in blocks} == {"loaded", "not-found"}
    assert blocks[5]["Id"] == "agent-we\\x20ird.service"  # escapes kept verbatim


def test_unknown_values() -> None:
    props = {"A": "[not set]", "B": "infinity", "C": str(2**64 - 1), "D": "180224", "E": "", "F": "-1",
             "G": "garbage"}
    assert [systemd.uint(props, k) for k in "ABCDEFGH"] == [None, None, None, 180224, None, None, None, None]


def test_unit_file_listing() -> None:
    assert systemd.parse_first_column(text("list_unit_files.txt")) == [
        "agent-crashloop.service", "agent-failed.service", "agent-memory.service", "agent-running.service",
        "agent-stopped.service", "agent-we\\x20ird.service"]


def test_query_asks_three_times_with_names_after_double_dash() -> None:
    replay = fleet_replay()
    units = fleet_units()
    mine, found = systemd.query("user", ["agent-absent.service"], ["agent-*.service"], replay, 5)
    units_call, files_call, show_call = replay.calls
    assert units_call[:5] == ("systemctl", "--user", "--no-pager", "list-units", "--all")
    assert files_call[:4] == ("systemctl", "--user", "--no-pager", "list-unit-files")
    for call in (units_call, files_call):
        assert call[call.index("--") + 1:] == ("agent-*.service",)
    # exactly the call the capture recorded: the explicit unit, then every unit found, exact names only
    assert list(show_call) == text("show_query.argv").splitlines()
    assert "agent-*.service" not in show_call
    assert [b["Id"] for b in mine] == ["agent-absent.service"]
    assert [u for u, _ in found] == sorted(u for u in units if u != "agent-absent.service")


def shown(replay: Replay) -> tuple[str, ...]:
    """The unit names query() passed to its `show` call (the replay answers show whatever is asked)."""
    (show_call,) = [c for c in replay.calls if c[3] == "show"]
    return show_call[show_call.index("--") + 1:]


def test_stopped_unit_is_found_through_its_file_only() -> None:
    # a stopped unit nothing refers to is not loaded: the captured list-units does not show it
    assert "agent-stopped.service" not in text("list_units.txt")
    replay = fleet_replay()
    _, found = systemd.query("user", ["agent-absent.service"], ["agent-*.service"], replay, 5)
    assert "agent-stopped.service" in shown(replay)
    assert dict(found)["agent-stopped.service"]["ActiveState"] == "inactive"
    # the same list-units with list-unit-files finding nothing (as captured): it is never asked about
    nomatch = Completed((), int(text("list_unit_files_nomatch.rc")), text("list_unit_files_nomatch.txt"), "")
    replay = Replay({"list-units": ok(text("list_units.txt")), "list-unit-files": nomatch,
                     "show": ok(text("show_query.txt"))})
    systemd.query("user", ["agent-absent.service"], ["agent-*.service"], replay, 5)
    assert "agent-stopped.service" not in shown(replay)
    assert "agent-running.service" in shown(replay)  # loaded units are still found through list-units


def test_quoted_names_are_unquoted() -> None:
    weird = next(b for b in systemd.parse_show(text("show_query.txt")) if "ird" in b["Id"])
    assert weird["Names"].startswith('"')  # systemctl quotes a name that needs escaping
    assert systemd.split_names(weird["Names"]) == [weird["Id"]]
    assert systemd.split_names("a.service b.service") == ["a.service", "b.service"]
    assert systemd.split_names("") == []


def test_blocks_are_matched_by_id_not_position() -> None:
    blocks = systemd.parse_show(text("show_fleet.txt"))
    # a pattern repeats units that are also named, in another order: each unit is kept once
    shuffled = [blocks[3], blocks[0], blocks[3], blocks[6], blocks[0]]
    mine, found = systemd.match_blocks(["agent-absent.service", "agent-running.service"], shuffled)
    assert [b["Id"] for b in mine] == ["agent-absent.service", "agent-running.service"]
    assert [u for u, _ in found] == ["agent-crashloop.service"]


def test_explicit_alias_is_matched_by_names() -> None:
    block = {**systemd.parse_show(text("show_fleet.txt"))[0], "Names": "agent-running.service agent-alias.service"}
    mine, found = systemd.match_blocks(["agent-alias.service"], [block])
    assert mine == [block] and found == []


def test_missing_answer_is_an_error() -> None:
    with pytest.raises(SystemdError, match=r"no answer for agent-x\.service"):
        systemd.match_blocks(["agent-x.service"], [])


def test_no_manager_is_a_clean_error() -> None:
    rc = int(text("show_no_bus.rc"))
    replay = Replay({"show": Completed((), rc, "", text("show_no_bus.txt"))})
    with pytest.raises(SystemdError) as info:
        systemd.query("user", ["agent-a.service"], [], replay, 5)
    assert str(info.value) == "systemctl show failed: Failed to connect to bus: No such file or directory"


def test_no_matching_unit_file_is_not_an_error() -> None:
    # systemd 252 answers a list-unit-files that matches nothing with exit 1 and no output at all
    nomatch = Completed((), int(text("list_unit_files_nomatch.rc")), text("list_unit_files_nomatch.txt"), "")
    assert (nomatch.returncode, nomatch.stdout) == (1, "")
    replay = Replay({"list-units": ok(""), "list-unit-files": nomatch, "show": ok("")})
    assert systemd.query("user", [], ["nothing-*.service"], replay, 5) == ([], [])
    assert [c[3] for c in replay.calls] == ["list-units", "list-unit-files"]  # nothing to show


def test_nothing_configured_asks_nothing() -> None:
    replay = Replay({})
    assert systemd.query("system", [], [], replay, 5) == ([], [])
    assert replay.calls == []
