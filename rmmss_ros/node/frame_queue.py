"""Bounded hand-off of frame sets from the executor to the inference worker (ROS-free).

The synchroniser emits sets in bursts (a camera frame waits for the LiDAR scan after it; when the
scan arrives two or three sets become ready at once), so a drop-oldest queue of one loses most of
the sets that carry the slow sensor. :class:`FrameSetQueue` holds up to ``maxsize`` sets; when full
it drops the oldest set among those carrying the fewest modalities, so a set with the slow sensor
is kept over an older or poorer one. Same interface as ``rmmss_ros.pipeline.worker.LatestQueue``
(``put``/``get``/``close``/``dropped``), so ``pipeline.worker.Worker`` consumes it unchanged.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any


class FrameSetQueue:
    """FIFO of at most ``maxsize`` items; items with ``.messages`` (FrameSet) are ranked by the
    number of present modalities when one must be dropped (others: drop-oldest)."""

    def __init__(self, maxsize: int = 4):
        if maxsize < 1:
            raise ValueError(f"FrameSetQueue maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._cond = threading.Condition()
        self._items: deque[Any] = deque()
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Append ``item``; if the queue was full, drop one (see class doc). True if one was dropped."""
        with self._cond:
            self._items.append(item)
            dropped = len(self._items) > self.maxsize
            if dropped:
                richness = [len(getattr(x, "messages", ())) for x in self._items]
                del self._items[richness.index(min(richness))]  # the oldest of the poorest
                self.dropped += 1
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> Any | None:
        """The oldest waiting item, or None after ``timeout`` s or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closed, timeout)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        return len(self._items)

    def stamps(self) -> list[int]:
        """``stamp_ns`` of the waiting items (the node's stamp-order release waits for older ones)."""
        with self._cond:
            return [x.stamp_ns for x in self._items if hasattr(x, "stamp_ns")]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
