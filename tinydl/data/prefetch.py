"""Background prefetch: run an iterator in a daemon thread, a bounded number of items ahead of the consumer.

The worker thread pulls items from the source iterator and puts them in a queue of at most ``depth`` items, so
producing item ``k + 1`` (reading, augmenting, converting a batch) overlaps the consumer's work on item ``k``. An
exception raised in the worker is handed through the queue and re-raised in the consumer's thread with the
worker's traceback. ``close()`` (called when the consumer stops early) tells the worker to stop and joins it.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")

_POLL_SECONDS = 0.05
_JOIN_SECONDS = 10.0


class _Done:
    """Queue marker: the source is exhausted."""


class _Failed:
    """Queue marker: the source raised ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher(Generic[Item]):
    """An iterator over ``source`` whose items are produced ``depth`` ahead by a daemon thread."""

    def __init__(self, source: Iterator[Item], depth: int, name: str = "tinydl-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"Prefetcher: depth must be >= 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._work, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        """Put ``item`` in the queue, waiting for room; False when asked to stop meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, source: Iterator[Item]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(_Done())
        except BaseException as error:  # handed to the consumer, who re-raises it
            self._put(_Failed(error))
        finally:
            close_source = getattr(source, "close", None)
            if close_source is not None:
                close_source()

    def __iter__(self) -> "Prefetcher[Item]":
        return self

    def __next__(self) -> Item:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, _Done):
            self.close()
            raise StopIteration
        if isinstance(item, _Failed):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stop the worker (it finishes the item in hand first), drop queued items and join the thread."""
        self._finished = True
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(_JOIN_SECONDS)

    @property
    def alive(self) -> bool:
        """Whether the worker thread is still running."""
        return self._thread.is_alive()
