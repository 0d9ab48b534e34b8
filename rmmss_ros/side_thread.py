"""A persistent daemon thread for the one branch of ``Pipeline.prepare`` that runs beside the
calling thread (the LiDAR: decode, project, encode and normalise, all GIL-free numba / numpy work)
while the caller decodes and normalises the images. Jobs run one at a time, in order; a job's
exception is delivered through its Future, never raised on the thread. Daemon: it never holds up
interpreter exit or the node's SIGINT / SIGTERM shutdown.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class SideThread:
    """``submit(fn) -> Future`` runs ``fn()`` on one daemon thread (started on first use)."""

    def __init__(self, name: str = "rmmss-prepare-side"):
        self.name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], Any]) -> Future:
        fut: Future = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._jobs.put((fn, fut))
        return fut

    def _run(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - delivered to the waiting caller
                fut.set_exception(e)


def run_now(fn: Callable[[], Any]) -> Future:
    """``fn()`` on the calling thread, as a completed Future (the one-thread mode)."""
    fut: Future = Future()
    try:
        fut.set_result(fn())
    except BaseException as e:  # noqa: BLE001 - delivered like SideThread's
        fut.set_exception(e)
    return fut
