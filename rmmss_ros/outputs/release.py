"""Results leave in stamp order: consumers that synchronise by stamp or look up transforms assume
a topic's stamps never go backwards.

The synchronizer still processes a reference frame that arrives late, within
``sync.reorder_window_s`` (rmmss_ros sync docs), so results can come out of the worker in another
order than their stamps. :class:`StampOrderRelease` sits between the worker and the publishers:

- ``reorder`` (default): a result is released at once when it directly follows the last released
  one (its stamp is at most ``gap_factor`` x the usual stamp interval ahead: nothing seems to be
  missing in between); otherwise it is held, for at most ``window_s``, in case the older frame is
  still coming. An older frame set already inside the node (``in_flight``: queued for the worker or
  being inferred) will come out, so a newer result waits for it whatever the window, up to
  ``in_flight_wait_s`` (a stuck worker never stalls the output for longer; its watchdog reports it).
  Held results leave in stamp order as soon as the gap closes or their time is up.
  In a steady stream nothing is ever held; a camera that drops a frame costs the next result at
  most ``window_s`` of extra latency, and so does each frame for about 9 frames after the rate
  changes (the camera dies and rate ticks take over) until the median interval has followed. Where
  that latency matters more than order, use ``drop`` or a smaller ``sync.reorder_window_s``; the
  output diagnostics show ``held_for_order`` and ``max_hold_ms``. The usual interval is the median spacing of the last 17
  stamps offered (late ones included, sorted), so a stream that arrives in swapped pairs still
  shows its true frame interval; until 3 intervals are known every result is held (at most
  ``window_s``), so even the first frames leave in order.
- ``drop``: every result is released at once; one older than the last released is dropped.

In both, a result older than (or as old as) the last released one is dropped and counted
(``late_dropped``): publishing it would make the stamps go backwards. Thread-safe; times are
integer nanoseconds from the caller's clock (monotonic for the hold, header stamps for order).
"""
from __future__ import annotations

import bisect
import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

POLICIES = ("reorder", "drop")
_INTERVALS = 16


@dataclass(order=True)
class _Held:
    stamp_ns: int
    since_ns: int = field(compare=False)
    item: Any = field(compare=False)


class StampOrderRelease:
    """``push(stamp_ns, item, now_ns)`` / ``poll(now_ns)`` -> the items to publish now, in stamp order."""

    def __init__(self, policy: str = "reorder", window_s: float = 0.1, gap_factor: float = 1.5,
                 on_drop: Callable[[int, int], None] | None = None,
                 in_flight: Callable[[], Iterable[int]] | None = None, in_flight_wait_s: float = 1.0):
        if policy not in POLICIES:
            raise ValueError(f"sync.late_frames must be one of {POLICIES}, got {policy!r}")
        if window_s < 0:
            raise ValueError(f"the reorder window must be >= 0 s, got {window_s}")
        if gap_factor <= 1.0:
            raise ValueError(f"gap_factor must be > 1, got {gap_factor}")
        self.policy = policy
        self.window_ns = int(window_s * 1e9)
        self.gap_factor = gap_factor
        self.on_drop = on_drop  # (late stamp, last released stamp): called outside the lock
        self.in_flight = in_flight  # stamps of frame sets inside the node, not yet offered here
        self.in_flight_wait_ns = int(in_flight_wait_s * 1e9)
        self._lock = threading.Lock()
        self._held: list[_Held] = []
        self._last: int | None = None
        self._seen: deque[int] = deque(maxlen=_INTERVALS + 1)  # recent stamps offered, arrival order
        self.released = 0
        self.late_dropped = 0
        self.held_total = 0
        self.max_hold_ns = 0

    @property
    def last_released_ns(self) -> int | None:
        return self._last

    def interval_ns(self) -> int | None:
        """The usual stamp interval (median spacing of the recent stamps), None before 3 are known."""
        s = sorted(self._seen)
        gaps = [b - a for a, b in zip(s, s[1:], strict=False) if b > a]
        return int(statistics.median(gaps)) if len(gaps) >= 3 else None

    def push(self, stamp_ns: int, item: Any, now_ns: int) -> list[Any]:
        """Offer one result; returns what to publish now (possibly held ones too), oldest first."""
        dropped: tuple[int, int] | None = None
        with self._lock:
            self._seen.append(int(stamp_ns))
            if self._last is not None and stamp_ns <= self._last:
                self.late_dropped += 1
                dropped = (stamp_ns, self._last)
                out = self._release(now_ns)
            elif self.policy == "drop" or self.window_ns == 0:
                out = self._release(now_ns)  # (nothing is held in these modes)
                out.append(self._emit(stamp_ns, item, now_ns, now_ns))
            else:
                bisect.insort(self._held, _Held(stamp_ns, now_ns, item))
                out = self._release(now_ns)
        if dropped is not None and self.on_drop is not None:
            self.on_drop(*dropped)
        return out

    def poll(self, now_ns: int) -> list[Any]:
        """Release held results whose gap closed or whose time is up (call it from a timer)."""
        with self._lock:
            return self._release(now_ns)

    def next_deadline_ns(self) -> int | None:
        """When the oldest held result must leave at the latest (None when nothing is held)."""
        with self._lock:
            return None if not self._held else min(h.since_ns for h in self._held) + self.window_ns

    def pending(self) -> int:
        with self._lock:
            return len(self._held)

    def clear(self) -> int:
        """Forget held results (deactivate / shutdown); returns how many were discarded."""
        with self._lock:
            n = len(self._held)
            self._held.clear()
            return n

    # -- under the lock ---------------------------------------------------------------------
    def _follows(self, stamp_ns: int) -> bool:
        """Whether ``stamp_ns`` directly follows the last released stamp (no frame seems missing)."""
        interval = self.interval_ns()
        if interval is None:
            return False  # not known yet: wait (at most the window) in case an older one comes
        return self._last is None or stamp_ns - self._last <= self.gap_factor * interval

    def _release(self, now_ns: int) -> list[Any]:
        out = []
        coming: list[int] | None = None  # older stamps still inside the node (asked once per call)
        while self._held:
            h = self._held[0]
            held_ns = now_ns - h.since_ns
            if self.in_flight is not None and held_ns < self.in_flight_wait_ns:
                if coming is None:
                    coming = sorted(self.in_flight())
                last = -1 if self._last is None else self._last
                if any(last < s < h.stamp_ns for s in coming):
                    break  # an older set is queued or being inferred: it comes out first
            if not (self._follows(h.stamp_ns) or held_ns >= self.window_ns):
                # the oldest waits; a newer one cannot overtake it, but one held too long forces it out
                if not any(now_ns - x.since_ns >= self.window_ns for x in self._held):
                    break
            self._held.pop(0)
            out.append(self._emit(h.stamp_ns, h.item, h.since_ns, now_ns))
        return out

    def _emit(self, stamp_ns: int, item: Any, since_ns: int, now_ns: int) -> Any:
        self._last = stamp_ns
        self.released += 1
        hold = now_ns - since_ns
        if hold > 0:
            self.held_total += 1
            self.max_hold_ns = max(self.max_hold_ns, hold)
        return item
