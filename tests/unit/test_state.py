"""state.py: CPU % from the previous run's counters, and never a made-up figure."""

from __future__ import annotations

import marshal
import zlib
from pathlib import Path

from textfile_writer import state
from textfile_writer.defaults import STATE_FILE
from textfile_writer.state import Counter, State

BOOT = "4a1f8a7e-0000-4000-8000-000000000001"
SEC = 1_000_000_000


class _AnyReason:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY_REASON = _AnyReason()


def prev(cpu_ns: int, enter: int | None = 100, taken: int = 50 * SEC) -> State:
    return State(BOOT, "user", taken, {"a.service": Counter(cpu_ns, enter)})


def cpu_percent(previous: State | None, unit: str, now: Counter, now_ns: int, cpus: int) -> float | None:
    """As collect.py asks: the previous run's counter of the unit and the time since that run."""
    if previous is None:
        return None
    return state.cpu_percent(previous.counters.get(unit), now, now_ns - previous.taken_ns, cpus)


def test_figure_is_cpu_time_over_elapsed_time() -> None:
    # 0.5 s of CPU over 10 s -> 5 % of one core
    assert cpu_percent(prev(1 * SEC), "a.service", Counter(1 * SEC + SEC // 2, 100), 60 * SEC, 2) == 5.0


def test_two_busy_cores_give_200_percent() -> None:
    assert cpu_percent(prev(0), "a.service", Counter(20 * SEC, 100), 60 * SEC, 2) == 200.0


def test_first_run_has_no_figure() -> None:
    assert cpu_percent(None, "a.service", Counter(5, 100), 60 * SEC, 2) is None


def test_unknown_unit_has_no_figure() -> None:
    assert cpu_percent(prev(0), "b.service", Counter(5, 100), 60 * SEC, 2) is None


def test_restarted_unit_has_no_figure() -> None:
    # a new ActiveEnterTimestampMonotonic means a new cgroup: its counter started again
    assert cpu_percent(prev(10), "a.service", Counter(50, 999), 60 * SEC, 2) is None


def test_counter_going_backwards_has_no_figure() -> None:
    assert cpu_percent(prev(10 * SEC), "a.service", Counter(SEC, 100), 60 * SEC, 2) is None


def test_clock_not_advancing_has_no_figure() -> None:
    assert cpu_percent(prev(0, taken=60 * SEC), "a.service", Counter(SEC, 100), 60 * SEC, 2) is None


def test_more_than_the_host_can_do_has_no_figure() -> None:
    # 30 s of CPU in 10 s on a 2-CPU host is impossible
    assert cpu_percent(prev(0), "a.service", Counter(30 * SEC, 100), 60 * SEC, 2) is None


def test_state_round_trip(tmp_path: Path) -> None:
    s = State(BOOT, "user", 123, {"a.service": Counter(5, 7), "b\\x2d.service": Counter(9, None)})
    path = tmp_path / STATE_FILE
    path.write_bytes(s.dumps())
    assert state.load(str(path), BOOT, "user") == (s, None)


def test_missing_state_is_a_first_run(tmp_path: Path) -> None:
    loaded, why = state.load(str(tmp_path / "nope.json"), BOOT, "user")
    assert loaded is None
    assert why is not None and "first run" in why


def _load_text(tmp_path: Path, text: str | bytes, boot: str = BOOT, scope: str = "user") -> tuple[object, str | None]:
    path = tmp_path / STATE_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return state.load(str(path), boot, scope)


def test_the_second_format_is_still_read(tmp_path: Path) -> None:
    """The text format before 0.2 (an upgrade keeps every counter)."""
    text = (f"agent-exporter-state/2\nboot_id {BOOT}\nscope user\ntaken_ns 123\n"
            "unit 5 7 3 2 abc 1 0 1.5 abc@9 1.25,2.0 a.service\nunit 9 - - - - - - - - - b.service\n")
    assert _load_text(tmp_path, text) == (State(BOOT, "user", 123, {
        "a.service": Counter(5, 7, starts=3, n_restarts=2, invocation="abc", oom_kills=1, oom_raw=0,
                             oom_time=1.5, oom_mark="abc@9", recent=(1.25, 2.0)),
        "b.service": Counter(9, None)}), None)


def test_a_payload_that_is_not_the_writers_is_not_used(tmp_path: Path) -> None:
    """The third format's checksum is what proves it: a payload with the wrong one, a flipped byte,
    a cut file or the right checksum around something else are each a reason, never a number."""
    good = State(BOOT, "user", 123, {"a.service": Counter(5, 7, 3, 2, "abc", 1, 0, 1.5, "abc@9", (1.0,))}).dumps()
    payload = marshal.dumps((BOOT, "user", 123, {"a.service": (5, 7)}))
    for data in (good[:-3], good[:-20] + bytes([good[-20] ^ 1]) + good[-19:],
                 marshal.dumps(("agent-exporter-state/3", zlib.crc32(payload) ^ 1, payload)),
                 marshal.dumps(("agent-exporter-state/3", zlib.crc32(b"x"), "x")),
                 marshal.dumps(("agent-exporter-state/4", zlib.crc32(payload), payload))):
        loaded, why = _load_text(tmp_path, data)
        assert loaded is None and why, data
    assert _load_text(tmp_path, good)[0] is not None


def test_the_first_format_is_still_read(tmp_path: Path) -> None:
    """An upgrade keeps the CPU counters; the writer's own counters start then."""
    text = f"agent-exporter-state/1\nboot_id {BOOT}\nscope user\ntaken_ns 123\nunit 5 7 a.service\nunit 9 - b.service\n"
    assert _load_text(tmp_path, text) == (State(BOOT, "user", 123, {"a.service": Counter(5, 7),
                                                                    "b.service": Counter(9, None)}), None)


def test_every_field_round_trips(tmp_path: Path) -> None:
    s = State(BOOT, "system", 1, {"x\\x2dy.service": Counter(None, None, 0, None, "", None, None, None, "", ()),
                                  "z.service": Counter(1, 2, 10, 4, "f00d", 2, 7, 1.7e9 + 0.125, "f00d@123",
                                                       (1.7e9, 1.7e9 + 10.5))})
    assert _load_text(tmp_path, s.dumps(), scope="system") == (s, None)


def test_another_boot_keeps_only_the_writers_own_counters(tmp_path: Path) -> None:
    s = State(BOOT, "user", 1, {"a.service": Counter(5, 7, 3, 2, "abc", 1, 0, 1.5, "abc@9", (1.0,))})
    loaded, why = _load_text(tmp_path, s.dumps(), boot="another-boot")
    assert why is not None and "another boot" in why
    assert loaded is not None and loaded.counters == {"a.service": Counter(None, None, 3, oom_kills=1, oom_time=1.5)}
    assert cpu_percent(loaded, "a.service", Counter(50, 7), 10 * SEC, 2) is None


def test_corrupt_state_is_ignored(tmp_path: Path) -> None:
    head = f"agent-exporter-state/1\nboot_id {BOOT}\nscope user\n"
    head2 = head.replace("state/1", "state/2")
    for text in ("", "{not state", "\x00\x01binary", head, head + "taken_ns x\n",
                 head + "taken_ns 1\nunit 1\n", head + "taken_ns 1\nunit x 2 a.service\n",
                 head + "taken_ns 1\nunit 1 y a.service\n", head2 + "taken_ns 1\nunit 1 2 a.service\n",
                 head2 + "taken_ns 1\nunit 5 7 x 2 abc 1 0 1.5 abc@9 - a.service\n",
                 head2 + "taken_ns 1\nunit 5 7 3 2 abc 1 0 1.5 abc@9 1,zz a.service\n"):
        loaded, why = _load_text(tmp_path, text)
        assert loaded is None, text
        assert why


def test_foreign_state_is_ignored(tmp_path: Path) -> None:
    good = State(BOOT, "user", 1, {}).dumps()
    assert _load_text(tmp_path, good, boot="another-boot") == (State(BOOT, "user", 1, {}), ANY_REASON)
    assert _load_text(tmp_path, good, scope="system")[0] is None
    assert _load_text(tmp_path, good.replace(b"state/3", b"state/9"))[0] is None
    assert _load_text(tmp_path, good)[0] == State(BOOT, "user", 1, {})


def test_boot_id_read_from_proc_root(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/random").mkdir(parents=True)
    (tmp_path / "sys/kernel/random/boot_id").write_text(BOOT + "\n")
    assert state.boot_id(str(tmp_path)) == BOOT
    assert state.boot_id(str(tmp_path / "missing")) == ""
