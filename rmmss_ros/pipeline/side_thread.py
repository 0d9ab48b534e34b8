"""A persistent daemon thread for the one branch of ``Pipeline.prepare`` that runs beside the
calling thread (the LiDAR: decode, project, encode and normalise, all GIL-free numba / numpy work)
while the caller decodes and normalises the images. Jobs run one at a time, in order; a job's
exception is delivered through its Future, never raised on the thread. Daemon: it never holds up
interpreter exit or the node's SIGINT / SIGTERM shutdown. Idle, it holds no reference to its last
job; :meth:`SideThread.close` (called when its Pipeline is closed or garbage collected) ends it.
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
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._run, args=(self._jobs,), name=self.name, daemon=True)
                self._thread.start()
            self._jobs.put((fn, fut))
        return fut

    def close(self) -> None:
        """Let the thread end once the jobs already submitted are done (its per-thread buffers go
        with it). A later :meth:`submit` starts a new thread with a queue of its own."""
        with self._lock:
            if self._thread is not None:
                self._jobs.put(None)
                self._thread = None

    @staticmethod
    def _run(jobs: queue.SimpleQueue) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, fut = job
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as e:  # noqa: BLE001 - delivered to the waiting caller
                    fut.set_exception(e)
            del job, fn, fut  # while idle, hold nothing of the last job (its Pipeline, its input batch)


def run_now(fn: Callable[[], Any]) -> Future:
    """``fn()`` on the calling thread, as a completed Future (the one-thread mode)."""
    fut: Future = Future()
    try:
        fut.set_result(fn())
    except BaseException as e:  # noqa: BLE001 - delivered like SideThread's
        fut.set_exception(e)
    return fut
