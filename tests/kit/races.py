"""Starting work in several threads at the same instant, to show that what the database
decides for one of them holds when they race (a quota, a used signature)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["at_once"]

T = TypeVar("T")


def at_once(n: int, fn: Callable[[int], T]) -> list[T]:
    """``fn(0)`` … ``fn(n - 1)`` from ``n`` threads released together; their results."""
    start = threading.Barrier(n)
    out: list[T] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        start.wait()
        got = fn(i)
        with lock:
            out.append(got)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out
