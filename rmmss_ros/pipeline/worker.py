"""The inference worker: a drop-oldest hand-off (:class:`LatestQueue`) and the thread that runs
every frame set through a handler and that no exception can stop (:class:`Worker`). The node feeds
it from its bounded :class:`~rmmss_ros.node.frame_queue.FrameSetQueue` (same interface)."""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any


class LatestQueue:
    """Drop-oldest queue of one item between the executor and the inference worker."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._has = False
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``, replacing (dropping) any waiting one. Returns True if one was dropped."""
        with self._cond:
            dropped = self._has
            self.dropped += dropped
            self._item, self._has = item, True
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> Any | None:
        """The waiting item, or None after ``timeout`` s or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._has or self._closed, timeout)
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Worker:
    """Runs ``handle(item)`` for every item of a :class:`LatestQueue` on a daemon thread.

    An exception from one item never ends the thread: it is counted in ``failures``, kept in
    ``last_error`` and passed to ``on_error(item, exc)`` (itself guarded), and the worker goes on
    with the next item. ``heartbeat`` (time.monotonic) is refreshed at least every ``poll_s`` while
    idle and after every item; :meth:`watchdog` reports a stopped or stuck thread and restarts a
    stopped one, so a supervisor (the node's diagnostics timer) can keep it alive and say so.
    """

    def __init__(self, queue: LatestQueue, handle: Callable[[Any], None],
                 on_error: Callable[[Any, BaseException], None] | None = None, name: str = "rmmss-inference",
                 poll_s: float = 0.1):
        self.queue, self.handle, self.on_error = queue, handle, on_error
        self.name, self.poll_s = name, poll_s
        self.processed = 0
        self.failures = 0
        self.restarts = 0
        self.last_error = ""
        self.busy_since: float | None = None  # monotonic start of the item in progress
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Worker:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                item = self.queue.get(timeout=self.poll_s)
                if item is None:
                    continue
                self.busy_since = time.monotonic()
                try:
                    self.handle(item)
                    self.processed += 1
                except Exception as e:  # noqa: BLE001 - the worker must survive any frame
                    self.failures += 1
                    self.last_error = f"{type(e).__name__}: {e}"
                    if self.on_error is not None:
                        try:
                            self.on_error(item, e)
                        except Exception:  # noqa: BLE001 - a failing reporter must not stop it either
                            traceback.print_exc()
                finally:
                    self.busy_since = None
        except BaseException as e:  # noqa: BLE001 - e.g. SystemExit from a handler: record why it ended
            self.last_error = f"worker stopped: {type(e).__name__}: {e}"
            raise

    def watchdog(self, now_s: float | None = None, stuck_s: float = 10.0) -> str | None:
        """None while healthy; else what is wrong. A stopped thread (not asked to stop) is restarted
        and counted in ``restarts``; an item running for longer than ``stuck_s`` is reported."""
        now_s = time.monotonic() if now_s is None else now_s
        if self._stop.is_set():
            return None
        if not self.alive:
            why = self.last_error or "no error recorded"
            self.restarts += 1
            self.start()
            return f"inference worker had stopped ({why}); restarted ({self.restarts} restart(s))"
        busy = self.busy_since
        if busy is not None and now_s - busy > stuck_s:
            return f"inference worker busy with one frame set for {now_s - busy:.1f} s"
        return None

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
