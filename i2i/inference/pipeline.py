"""Threads joined by bounded queues, so decoding, inference and encoding overlap.

The main thread runs inference; a :class:`Prefetcher` reads ahead in a background thread and a
:class:`Consumer` (or a :class:`BoundedPool`) writes behind it. Every queue is bounded, so memory
stays flat however long the input is, and an error in any thread stops the others and is raised
in the main thread. :func:`run_parts` runs independent parts (one per device) side by side.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

__all__ = ["Prefetcher", "Consumer", "BoundedPool", "ordered_map", "run_parts", "PartStopped"]

T = TypeVar("T")
R = TypeVar("R")
_POLL = 0.1  # seconds between checks of the stop flag while a queue is full or empty


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int, window: int) -> Iterator[R]:
    """``map(fn, items)`` computed by ``workers`` threads, at most ``window`` results ahead, in order.

    An exception raised by ``fn`` is re-raised when its result's turn comes.
    """
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="i2i-read") as pool:
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


class Prefetcher(Generic[T]):
    """Iterates ``iterable`` in a background thread, holding at most ``maxsize`` items ahead.

    Use as an iterator; an exception raised by the source is re-raised by ``next()``. ``close()``
    (or leaving the ``with`` block) stops the thread, also when the consumer gives up early.
    """

    _ITEM, _END, _ERROR = range(3)

    def __init__(self, iterable: Iterable[T], maxsize: int, *, name: str = "i2i-prefetch") -> None:
        self._queue: queue.Queue = queue.Queue(max(1, maxsize))
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._run, args=(iterable,), name=name, daemon=True)
        self._thread.start()

    def _put(self, message: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterable: Iterable[T]) -> None:
        iterator = iter(iterable)
        try:
            for item in iterator:
                if not self._put((self._ITEM, item)):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put((self._ERROR, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - nothing useful to do while shutting down
                    pass

    def __iter__(self) -> "Prefetcher[T]":
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == self._ITEM:
            return value
        self._finished = True
        if kind == self._END:
            raise StopIteration
        raise value

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def __enter__(self) -> "Prefetcher[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Consumer(Generic[T]):
    """Calls ``fn(item)`` for every item put, in order, in one background thread.

    At most ``maxsize`` items wait. When ``fn`` raises, later items are dropped, and the error is
    raised by the next :meth:`put` or by :meth:`close`.
    """

    _END = object()

    def __init__(self, fn: Callable[[T], Any], maxsize: int, *, name: str = "i2i-write") -> None:
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(max(1, maxsize))
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if self.error is None:
                try:
                    self._fn(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the producer
                    self.error = exc

    def put(self, item: T) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every queued item, then raise the worker's error if there was one."""
        self._queue.put(self._END)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop without processing the queued items and without raising."""
        if self.error is None:
            self.error = RuntimeError("aborted")
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(self._END)
        self._thread.join()


class BoundedPool:
    """A thread pool whose ``submit`` blocks while ``max_pending`` tasks are queued or running."""

    def __init__(self, workers: int, max_pending: int, *, name: str = "i2i-write") -> None:
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(max(1, max_pending))

    def submit(self, fn: Callable[..., R], *args: Any) -> Future:
        self._slots.acquire()
        try:
            future = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def close(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class PartStopped(Exception):
    """Raised by a part that stopped early because another part failed (see :func:`run_parts`)."""


def run_parts(count: int, work: Callable[[int, threading.Event], R], *, name: str = "i2i-part") -> list[R]:
    """``[work(0, stop), ..., work(count - 1, stop)]``, each part in its own thread (inline for one).

    The first error sets ``stop`` (parts check it and end early, raising :class:`PartStopped`),
    every thread is joined, and that error is raised here. Ctrl-C in the caller sets ``stop`` too
    and waits for the parts to clean up.
    """
    stop = threading.Event()
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            results[k] = work(k, stop)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the caller
            stop.set()
            errors.append(exc)

    if count == 1:
        run(0)
    else:
        threads = [threading.Thread(target=run, args=(k,), name=f"{name}{k}", daemon=True) for k in range(count)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:  # Ctrl-C: let every part stop and clean up
            stop.set()
            for thread in threads:
                thread.join()
            raise
    if errors:
        first = [e for e in errors if not isinstance(e, PartStopped)]
        raise (first or errors)[0]
    return results
