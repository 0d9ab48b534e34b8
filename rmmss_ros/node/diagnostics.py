"""Per-sensor, camera_info and output health, ROS-free (the node turns ``Status`` into diagnostic_msgs).

Each ``statuses()`` call summarises the whole period since the previous one, never just the last
frame: per sensor the sets in which it was used, missing or malformed, the worst level seen, the
last error, and the synchroniser's view (dead, out of sync with its measured offset, late/implausible
counters). Levels: ERROR when any of its messages was malformed in the period, WARN when it is out
of sync or present but unusable for a reason outside it (no CameraInfo yet: the sensor's reason is
kept there), STALE when it was missing from every set (or dead), OK otherwise. ``camera_info`` has
its own status with its own reasons, never a sensor's: ``received`` (every CameraInfo that arrived)
= ``accepted`` + ``rejected`` (refused on arrival: size not matching the camera image, or over
``camera_info.max_pixels``), ``valid`` (the node has one it projects with: OK; WARN when the newest
was rejected but an earlier one stays in use), ``unusable_sets`` (frame sets in which the one in
use could not be used: ERROR until a new one is accepted), ``last_error``. Output status: rate, latency (header stamp to publish,
or receipt to publish when the stamps come from another clock), drops, the modalities the last
mask used; ERROR while frame sets fail as a whole (within ``FAILURE_WINDOW_S``) or while the
inference worker's watchdog reports a problem.
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
_SEVERITY = {OK: 0, STALE: 1, WARN: 2, ERROR: 3}  # for "worst level": ERROR > WARN > STALE > OK


@dataclass
class Status:
    name: str
    level: int
    message: str
    hardware_id: str = ""
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class _Period:
    used: int = 0
    missing: int = 0
    errors: int = 0
    blocked: int = 0  # present but unusable for a reason outside the sensor (no CameraInfo)
    sets: int = 0


def is_camera_info_problem(error: str) -> bool:
    """True for per-sensor errors caused by a missing/invalid CameraInfo, not by the sensor."""
    return "CameraInfo" in error or error.startswith("camera_info")


class NodeDiagnostics:
    """Thread-safe record of what happened to each frame; ``statuses(...)`` summarises the period."""

    def __init__(self, enabled: Iterable[str], topics: dict[str, str], node_name: str = "perception_node",
                 window: int = 100, camera_info_topic: str = ""):
        self.enabled = tuple(enabled)
        self.topics = topics
        self.node_name = node_name
        self.camera_info_topic = camera_info_topic
        self._lock = threading.Lock()
        self._period = {m: _Period() for m in MODALITIES}
        self._errors = dict.fromkeys(MODALITIES, 0)
        self._used = dict.fromkeys(MODALITIES, 0)
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._publish_s: deque[float] = deque(maxlen=window)
        self._last_used: tuple[str, ...] = ()
        self._masks = 0
        self._last_error: dict[str, str] = {}
        self._blocked: dict[str, str] = {}  # why a sensor was present but unusable (no CameraInfo)
        self._failures = 0
        self._last_failure: tuple[float, str] | None = None  # (now_s, what)
        # received = accepted + rejected (every CameraInfo that arrived); valid: the node has one it
        # projects with; last_error: why the last one was refused / the one in use was unusable
        self._ci = {"received": 0, "accepted": 0, "rejected": 0, "valid": False, "size": "", "since": "",
                    "last_error": "", "unusable_sets": 0}
        self._ci_last_rejected = False  # the newest CameraInfo was refused (an older one may be in use)

    def record(self, missing: Iterable[str], used: Iterable[str], errors: dict[str, str],
               latency_ms: float | None, now_s: float, camera_info_given: bool = False) -> None:
        """One processed frame set: sync-missing sensors, modalities used, per-input errors (a
        'camera_info' key: the CameraInfo in use was unusable; sensor errors caused by a missing
        CameraInfo block that sensor, WARN), and the latency to publish (None when nothing was
        published). ``camera_info_given``: the accepted CameraInfo was handed to the pipeline for
        this set; without a 'camera_info' error it is usable (valid) again."""
        missing, used = set(missing), set(used)
        with self._lock:
            if "camera_info" in errors:
                self._camera_info_unusable(errors["camera_info"])
            elif camera_info_given and self._ci["accepted"]:
                self._ci["valid"] = True
            for m in self.enabled:
                p = self._period[m]
                p.sets += 1
                err = errors.get(m)
                if err is not None and is_camera_info_problem(err):
                    p.blocked += 1  # the sensor's own status (WARN); camera_info keeps its own reason
                    self._blocked[m] = err
                elif err is not None:
                    p.errors += 1
                    self._errors[m] += 1
                    self._last_error[m] = err
                elif m in used:
                    p.used += 1
                    self._used[m] += 1
                elif m in missing:
                    p.missing += 1
            if latency_ms is not None:
                self._latency_ms.append(latency_ms)
                self._publish_s.append(now_s)
                self._masks += 1
                self._last_used = tuple(m for m in MODALITIES if m in used)

    def camera_info_received(self, width: int, height: int, since: str = "") -> None:
        """A CameraInfo arrived and was accepted: the node projects with it from now on (``since``:
        when it arrived, for the status text)."""
        with self._lock:
            ci = self._ci
            ci.update(received=ci["received"] + 1, accepted=ci["accepted"] + 1, valid=True,
                      size=f"{width}x{height}", since=since)
            self._ci_last_rejected = False

    def camera_info_rejected(self, why: str) -> None:
        """A CameraInfo arrived and was refused (``why``); an earlier accepted one stays in use."""
        with self._lock:
            ci = self._ci
            ci.update(received=ci["received"] + 1, rejected=ci["rejected"] + 1, last_error=why)
            self._ci_last_rejected = True

    def camera_info_unusable(self, why: str) -> None:
        """The CameraInfo in use could not be used for a frame set (it no longer matches the camera
        image, or its calibration is invalid): no valid CameraInfo until a new one is accepted."""
        with self._lock:
            self._camera_info_unusable(why)

    def _camera_info_unusable(self, why: str) -> None:
        self._ci.update(valid=False, last_error=why, unusable_sets=self._ci["unusable_sets"] + 1)

    def record_failure(self, error: str, now_s: float) -> None:
        """A frame set that failed as a whole (exception outside the per-sensor conversions)."""
        with self._lock:
            self._failures += 1
            self._last_failure = (now_s, error)

    def _sensor(self, m: str, st: Any, dead: bool) -> tuple[int, str]:
        p = self._period[m]
        oos = getattr(st, "out_of_sync", "") if st is not None else ""
        period = f"last period: used {p.used}/{p.sets}, missing {p.missing}, malformed {p.errors}"
        if p.errors:
            return ERROR, f"{p.errors} malformed message(s) ({period}); last: {self._last_error.get(m, '')}"
        if oos:
            return WARN, f"{oos} ({period})"
        if p.blocked:
            why = self._blocked.get(m, "")
            why = why[len(m) + 2:] if why.startswith(f"{m}: ") else why
            return WARN, f"present but not usable: waiting for a valid CameraInfo ({period}); last: {why}"
        if dead:
            return STALE, f"dead: silent for longer than its timeout ({period})"
        if p.sets and not p.used:
            return STALE, f"missing: no message within slop before its deadline ({period})"
        if not p.sets:
            return (OK, "alive, no frame set processed in the last period") if st is not None and st.received \
                else (STALE, "no message received yet")
        return OK, f"used ({period})"

    def statuses(self, now_s: float, sync_stats: dict[str, Any], dead: dict[str, bool],
                 extra: dict[str, Any], worker_problem: str | None = None) -> list[Status]:
        """Statuses: one per sensor (all four; disabled ones OK 'disabled'), one for camera_info and
        one for the output; starts a new period. ``worker_problem``: the inference worker's
        watchdog report (None = healthy)."""
        out = []
        with self._lock:
            for m in MODALITIES:
                name = f"{self.node_name}: {m}"
                if m not in self.enabled:
                    out.append(Status(name, OK, "disabled", self.topics.get(m, "")))
                    continue
                st = sync_stats.get(m)
                level, msg = self._sensor(m, st, bool(dead.get(m)))
                p = self._period[m]
                values = {"period_sets": str(p.sets), "period_used": str(p.used), "period_missing": str(p.missing),
                          "period_malformed": str(p.errors), "worst_level": str(level),
                          "errors": str(self._errors[m]), "last_error": self._last_error.get(m, "")}
                if st is not None:
                    values.update(received=str(st.received), used=str(st.used),
                                  used_messages=str(getattr(st, "used_messages", 0)), late=str(st.late),
                                  duplicate=str(st.duplicate), overflow=str(st.overflow),
                                  expired_unused=str(getattr(st, "expired_unused", 0)), implausible=str(getattr(st, "implausible", 0)),
                                  jumps=str(getattr(st, "jumps", 0)), missed=str(getattr(st, "missed", 0)),
                                  out_of_sync=getattr(st, "out_of_sync", ""),
                                  offset_ms="" if getattr(st, "offset_ms", None) is None else f"{st.offset_ms:.1f}")
                out.append(Status(name, level, msg, self.topics.get(m, ""), values))
                self._period[m] = _Period()
            ci = self._ci
            since = f" from {ci['since']}" if ci["since"] else ""
            if ci["valid"] and self._ci_last_rejected:
                level, msg = WARN, (f"last message rejected ({ci['last_error']}); still using {ci['size']}{since} "
                                    f"({ci['accepted']} accepted, {ci['rejected']} rejected)")
            elif ci["valid"]:
                level, msg = OK, f"valid CameraInfo {ci['size']}{since}"
            elif ci["accepted"] and not self._ci_last_rejected:
                level, msg = ERROR, f"CameraInfo {ci['size']}{since} not usable: {ci['last_error']}"
            elif ci["rejected"]:
                level, msg = ERROR, f"CameraInfo rejected: {ci['last_error']}"
            else:
                level, msg = WARN, "no CameraInfo received yet (needed to project LiDAR and size event clouds)"
            out.append(Status(f"{self.node_name}: camera_info", level, msg, self.camera_info_topic,
                              {k: str(v) for k, v in ci.items()}))
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
