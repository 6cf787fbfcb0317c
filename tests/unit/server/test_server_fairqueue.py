"""The workers' queue: bounded per client address, served round-robin, so one address cannot starve another."""

from __future__ import annotations

import socket
import threading

from textfile_writer.server.fairqueue import FairQueue, address_key


def test_one_address_is_bounded_and_the_others_take_turns() -> None:
    q: FairQueue[str] = FairQueue(capacity=64, per_key=4)
    flood = [q.put("10.0.0.1", f"bad{i}") for i in range(128)]
    assert flood.count(True) == 4  # the rest of the flood is refused, not queued
    assert q.put("10.0.0.2", "good")  # another address still gets in
    assert q.get() == ("10.0.0.1", "bad0")
    assert q.get() == ("10.0.0.2", "good")  # its turn comes after one job of the flood, not four
    taken = [q.get() for _ in range(3)]
    assert taken == [("10.0.0.1", "bad1"), ("10.0.0.1", "bad2"), ("10.0.0.1", "bad3")]
    # queued or running both count: room comes back only when a job is done
    assert not q.put("10.0.0.1", "again")
    q.done("10.0.0.1")
    assert q.put("10.0.0.1", "again")


def test_total_capacity_and_close() -> None:
    q: FairQueue[int] = FairQueue(capacity=3, per_key=10)
    assert [q.put(f"k{i}", i) for i in range(4)] == [True, True, True, False]
    q.close()
    assert q.get() is None  # stopping: queued jobs belong to closed connections
    assert not q.put("k9", 9)


def test_close_wakes_a_waiting_worker() -> None:
    q: FairQueue[int] = FairQueue(capacity=3, per_key=1)
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(q.get()))
    t.start()
    q.close()
    t.join(5)
    assert not t.is_alive() and out == [None]


def test_address_key() -> None:
    assert address_key(socket.AF_INET, ("192.0.2.7", 4242)) == "192.0.2.7"
    # IPv6 counts per /64: an attacker cannot take a fresh key per connection from its own prefix
    a = address_key(socket.AF_INET6, ("2001:db8:1:2:aaaa::1", 1, 0, 0))
    b = address_key(socket.AF_INET6, ("2001:db8:1:2:bbbb::9", 1, 0, 0))
    assert a == b == "2001:db8:1:2::/64"
    assert address_key(socket.AF_INET6, ("2001:db8:1:3::1", 1, 0, 0)) != a
    # a dual-stack listener's IPv4 client is the IPv4 address
    assert address_key(socket.AF_INET6, ("::ffff:192.0.2.7", 1, 0, 0)) == "192.0.2.7"
    assert address_key(socket.AF_INET6, ("fe80::1%lo", 1, 0, 1)) == "fe80::/64"
    assert address_key(socket.AF_UNIX, "") == "local"
