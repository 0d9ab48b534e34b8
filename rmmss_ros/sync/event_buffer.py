"""Per-sensor event buffer (ROS-free): every event of the model's window, across packets.

Event cameras publish many small packets (1-10 ms); the synchronizer matches one message per
frame, which holds only a fraction of the events in ``EventEncoding.window_s``. The node (and bag
replay) hands every decoded packet to :class:`EventBuffer`; a frame then takes all buffered
events with ROS time ``t_end - window < t <= t_end`` (``t_end`` = the frame stamp), whichever
packets carried them. Memory is bounded by a time horizon and an event count.
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np

from rmmss_ros.conversions.event_packet import Events


class EventBuffer:
    """Chunks of decoded events (each time-sorted), oldest first.

    ``horizon_s``: chunks whose newest event is older than the newest event seen minus this are
    dropped. ``max_events``: older chunks are dropped beyond this many events (``dropped``
    counts the events lost that way). Thread-safe (the node adds from the executor and reads
    from the inference worker).
    """

    def __init__(self, horizon_s: float = 1.0, max_events: int = 20_000_000, recent_keys: int = 256):
        if horizon_s <= 0 or max_events <= 0:
            raise ValueError(f"event buffer horizon ({horizon_s} s) and size ({max_events}) must be > 0")
        self.horizon_ns = int(horizon_s * 1e9)
        self.max_events = int(max_events)
        self._chunks: deque[Events] = deque()
        self._keys: deque = deque(maxlen=recent_keys)
        self._n = 0
        self._newest = None
        self.dropped = 0
        self.added = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._n

    def seen(self, key: object) -> bool:
        """True if a message with this identity key was added already (and remember it if not)."""
        with self._lock:
            if key in self._keys:
                return True
            self._keys.append(key)
            return False

    def add(self, ev: Events) -> None:
        """Add one packet's events (any order; sorted by time here if needed)."""
        if len(ev) == 0:
            return
        if np.any(np.diff(ev.t_ns) < 0):
            o = np.argsort(ev.t_ns, kind="stable")
            ev = Events(ev.x[o], ev.y[o], ev.t_ns[o], ev.p[o])
        with self._lock:
            self._chunks.append(ev)
            self._n += len(ev)
            self.added += len(ev)
            newest = int(ev.t_ns[-1])
            self._newest = newest if self._newest is None else max(self._newest, newest)
            cutoff = self._newest - self.horizon_ns
            while self._chunks and (int(self._chunks[0].t_ns[-1]) < cutoff or self._n > self.max_events):
                old = self._chunks.popleft()
                self._n -= len(old)
                if int(old.t_ns[-1]) >= cutoff:
                    self.dropped += len(old)

    def window(self, t_end_ns: int, window_s: float) -> Events:
        """All buffered events with ``t_end - window_s < t <= t_end`` (ns), time-ordered per chunk."""
        t0 = int(t_end_ns) - int(round(window_s * 1e9))
        parts = []
        with self._lock:
            chunks = list(self._chunks)
        for c in chunks:
            if int(c.t_ns[-1]) <= t0 or int(c.t_ns[0]) > t_end_ns:
                continue
            lo = int(np.searchsorted(c.t_ns, t0, side="right"))
            hi = int(np.searchsorted(c.t_ns, t_end_ns, side="right"))
            if hi > lo:
                parts.append(Events(c.x[lo:hi], c.y[lo:hi], c.t_ns[lo:hi], c.p[lo:hi]))
        if not parts:
            return Events.empty()
        if len(parts) == 1:
            return parts[0]
        return Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "y", "t_ns", "p")))

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._keys.clear()
            self._n, self._newest = 0, None
