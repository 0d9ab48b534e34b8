"""Per-sensor and output health, ROS-free (the node turns ``Status`` into diagnostic_msgs).

Sensor level from the latest processed frame set: OK when used, STALE when missing (no message in
slop before the deadline, or dead), ERROR when its message was malformed; plus counters.
Output status: rate, latency (stamp to publish), drops, and the modalities the last mask used;
ERROR while frame sets fail as a whole (an exception in preprocessing, inference or publishing,
within the last ``FAILURE_WINDOW_S``) or while the inference worker's watchdog reports a problem.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rmmss_core.modalities import MODALITIES

OK, WARN, ERROR, STALE = 0, 1, 2, 3
FAILURE_WINDOW_S = 5.0


@dataclass
class Status:
    name: str
    level: int
    message: str
    hardware_id: str = ""
    values: dict[str, str] = field(default_factory=dict)


class NodeDiagnostics:
    """Thread-safe record of what happened to each frame; ``statuses(...)`` summarises it."""

    def __init__(self, enabled: Iterable[str], topics: dict[str, str], node_name: str = "perception_node",
                 window: int = 100):
        self.enabled = tuple(enabled)
        self.topics = topics
        self.node_name = node_name
        self._lock = threading.Lock()
        self._state = {m: (STALE, "no frame processed yet") for m in MODALITIES}
        self._errors = dict.fromkeys(MODALITIES, 0)
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._publish_s: deque[float] = deque(maxlen=window)
        self._last_used: tuple[str, ...] = ()
        self._masks = 0
        self._last_error: dict[str, str] = {}
        self._failures = 0
        self._last_failure: tuple[float, str] | None = None  # (now_s, what)

    def record(self, missing: Iterable[str], used: Iterable[str], errors: dict[str, str],
               latency_ms: float | None, now_s: float) -> None:
        """One processed frame set: sync-missing sensors, modalities used, malformed-input errors,
        stamp-to-publish latency (None when nothing was published)."""
        missing, used = set(missing), set(used)
        with self._lock:
            for m in self.enabled:
                if m in errors:
                    self._state[m] = (ERROR, errors[m])
                    self._errors[m] += 1
                    self._last_error[m] = errors[m]
                elif m in used:
                    self._state[m] = (OK, "used")
                elif m in missing:
                    self._state[m] = (STALE, "missing: no message within slop before its deadline")
                else:
                    self._state[m] = (STALE, "present but not used")
            if latency_ms is not None:
                self._latency_ms.append(latency_ms)
                self._publish_s.append(now_s)
                self._masks += 1
                self._last_used = tuple(m for m in MODALITIES if m in used)

    def record_failure(self, error: str, now_s: float) -> None:
        """A frame set that failed as a whole (exception outside the per-sensor conversions)."""
        with self._lock:
            self._failures += 1
            self._last_failure = (now_s, error)

    def statuses(self, now_s: float, sync_stats: dict[str, Any], dead: dict[str, bool],
                 extra: dict[str, Any], worker_problem: str | None = None) -> list[Status]:
        """Statuses: one per sensor (all four; disabled ones OK 'disabled') and one for the output.
        ``worker_problem``: what the inference worker's watchdog reports (None = healthy)."""
        out = []
        with self._lock:
            for m in MODALITIES:
                name = f"{self.node_name}: {m}"
                if m not in self.enabled:
                    out.append(Status(name, OK, "disabled", self.topics.get(m, "")))
                    continue
                level, msg = self._state[m]
                if dead.get(m) and level != ERROR:
                    level, msg = STALE, "dead: silent for longer than its timeout"
                st = sync_stats.get(m)
                values = {"errors": str(self._errors[m]), "last_error": self._last_error.get(m, "")}
                if st is not None:
                    values.update(received=str(st.received), used=str(st.used), late=str(st.late),
                                  duplicate=str(st.duplicate), overflow=str(st.overflow),
                                  unmatched=str(st.unmatched))
                out.append(Status(name, level, msg, self.topics.get(m, ""), values))
            recent = [t for t in self._publish_s if now_s - t <= 5.0]
            rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            lat = sorted(self._latency_ms)
            values = {"rate_hz": f"{rate:.2f}", "masks": str(self._masks),
                      "latency_p50_ms": f"{lat[len(lat) // 2]:.1f}" if lat else "",
                      "latency_max_ms": f"{lat[-1]:.1f}" if lat else "",
                      "used_modalities": ",".join(self._last_used)}
            values.update({k: str(v) for k, v in extra.items()})
            values.update(failures=str(self._failures),
                          last_failure=self._last_failure[1] if self._last_failure else "")
            level, msg = (OK, "publishing") if recent else (WARN, "no mask published in the last 5 s")
            if self._last_failure is not None and now_s - self._last_failure[0] <= FAILURE_WINDOW_S:
                level, msg = ERROR, f"frame processing failed ({self._failures} in total): {self._last_failure[1]}"
            if worker_problem:
                level, msg = ERROR, worker_problem
            out.append(Status(f"{self.node_name}: output", level, msg, "", values))
        return out
