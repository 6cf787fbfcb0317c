"""The workers' queue: bounded in total and per client address, served round-robin across addresses.

Slow work (a bcrypt check above all, also reading a changed file or rendering the page) waits here
for a worker. One FIFO for everyone let 128 clients sending wrong passwords fill it, so a valid
first login got 503; here each address may hold at most `per_key` jobs, queued or running, and the
workers take one job per address in turn, so a flood from one address is refused (503) while
others still get a worker after at most one job of each other address.
"""

from __future__ import annotations

import collections
import socket
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


def address_key(family: int, address: object) -> str:
    """Whom a connection counts against: its IPv4 address, or its IPv6 /64 (one host's or one
    customer's usual allocation, so an attacker cannot take a fresh address per connection); one
    key for every Unix-socket peer."""
    if family == socket.AF_INET6 and isinstance(address, tuple):
        packed = socket.inet_pton(socket.AF_INET6, str(address[0]).partition("%")[0])
        if packed[:12] == b"\0" * 10 + b"\xff\xff":  # IPv4-mapped: a dual-stack socket's IPv4 client
            return socket.inet_ntop(socket.AF_INET, packed[12:])
        return socket.inet_ntop(socket.AF_INET6, packed[:8] + b"\0" * 8) + "/64"
    if family == socket.AF_INET and isinstance(address, tuple):
        return str(address[0])
    return "local"


class FairQueue(Generic[T]):
    """Thread-safe. put() never blocks (False: no room, answer 503); get() blocks until a job or
    close(); done(key) when a job taken by get() has finished."""

    def __init__(self, capacity: int, per_key: int) -> None:
        self._capacity = capacity
        self._per_key = per_key
        self._waiting: collections.OrderedDict[str, collections.deque[T]] = collections.OrderedDict()
        self._held: dict[str, int] = {}  # per key: queued + running
        self._size = 0  # queued
        self._closed = False
        self._cond = threading.Condition(threading.Lock())

    def put(self, key: str, job: T) -> bool:
        with self._cond:
            held = self._held.get(key, 0)
            if self._closed or self._size >= self._capacity or held >= self._per_key:
                return False
            self._held[key] = held + 1
            self._waiting.setdefault(key, collections.deque()).append(job)
            self._size += 1
            self._cond.notify()
            return True

    def get(self) -> tuple[str, T] | None:
        """The next job, round-robin across keys; None once closed (the server is stopping and
        its connections are closed: what is still queued has nobody to answer)."""
        with self._cond:
            while not self._size or self._closed:
                if self._closed:
                    return None
                self._cond.wait()
            key, jobs = next(iter(self._waiting.items()))
            job = jobs.popleft()
            if jobs:
                self._waiting.move_to_end(key)  # this key has had its turn
            else:
                del self._waiting[key]
            self._size -= 1
            return key, job

    def done(self, key: str) -> None:
        with self._cond:
            held = self._held.get(key, 0) - 1
            if held > 0:
                self._held[key] = held
            else:
                self._held.pop(key, None)

    def close(self) -> None:
        """Wake every get(): they return None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
