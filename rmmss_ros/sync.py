"""Missing-aware multi-sensor synchronizer (ROS-free; time from an injected clock).

Why not message_filters: its approximate policy emits a set only when every input has a message
within ``slop``, so one dead sensor stops all output (docs/ROS.md). Here a *frame set* is built per
reference stamp (the reference sensor's header stamp, or ticks of a fixed output rate) and emitted

- as soon as every enabled sensor has a message whose corrected stamp ``stamp + offset_s`` lies
  within its ``slop_s`` of the reference stamp (reason ``complete``), or
- when every sensor still lacking a match has passed its deadline ``reference + timeout_s``
  (``deadline``), or is *dead*: silent (by arrival time on the clock) for longer than its
  ``timeout_s``, so a dead sensor adds no waiting at all, or
- when a later frame set is ready first (``superseded``) or too many sets are pending (``overflow``).

Sensors without a match are listed in ``FrameSet.missing``. Messages that arrive after the frame set
they belong to was emitted (stamp <= last emitted reference + slop, and no open set within slop) are
*late*: dropped and counted. Duplicate stamps are dropped and
counted; out-of-order stamps are sorted; a sensor's stamps (or the clock) jumping backwards by more
than ``jump_threshold_s`` (bag loops, sim-time restarts) resets the state and is counted; so does a
reference stamp more than ``jump_threshold_s`` behind the last emitted set (the output's time line
moved: whatever stamped the earlier sets, the reference always recovers). Rate ticks (and fallback
ticks while the reference is dead) are placed on the sensors' stamp time line: the clock's time when
stamps follow the clock (within ``skew_tolerance_s``), else the clock shifted by the last observed
``stamp - arrival`` (bags played live without sim time, sensors with their own epoch), so ticks can
match the other sensors and never shadow the reference's later stamps. Memory is
bounded: ``queue_size`` messages per sensor and ``max_pending`` open frame sets, whatever the input
rate. All times are integer nanoseconds. Thread-safe (one lock; no callbacks run under it).
"""
from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rmmss_core.modalities import MODALITIES

NS = 1_000_000_000


@dataclass(frozen=True)
class SensorConfig:
    """One synchronised input. ``offset_s`` is added to its stamps to bring them onto the
    reference's time line; ``slop_s`` is the largest accepted |corrected stamp - reference|."""

    name: str
    slop_s: float = 0.05
    offset_s: float = 0.0
    timeout_s: float = 0.25

    def __post_init__(self):
        if self.slop_s < 0:
            raise ValueError(f"sensor {self.name!r}: slop_s must be >= 0, got {self.slop_s}")
        if self.timeout_s <= 0:
            raise ValueError(f"sensor {self.name!r}: timeout_s must be > 0, got {self.timeout_s}")


@dataclass
class FrameSet:
    """A synchronised set. ``messages``/``stamps_ns`` hold the present sensors only."""

    stamp_ns: int
    messages: dict[str, Any]
    stamps_ns: dict[str, int]
    missing: tuple[str, ...]
    reason: str
    reference: str | None = None  # the reference sensor's name, None for rate ticks

    @property
    def present(self) -> tuple[str, ...]:
        return tuple(self.messages)

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass
class SensorStats:
    received: int = 0
    used: int = 0
    late: int = 0
    duplicate: int = 0
    overflow: int = 0
    unmatched: int = 0
    last_arrival_ns: int | None = None
    last_stamp_ns: int | None = None


@dataclass
class _Pending:
    ref_ns: int
    base_ns: int  # deadline base on the clock: the reference stamp, or arrival if stamps are off-clock
    ref_name: str | None
    ref_msg: Any = None
    ref_stamp_ns: int = 0


@dataclass
class _Buffer:
    times: list[int] = field(default_factory=list)  # corrected stamps, sorted
    items: list[tuple[int, Any]] = field(default_factory=list)  # (raw stamp, message)


class Synchronizer:
    """Collects messages per reference stamp; ``add``/``poll`` return the frame sets now ready.

    sensors: the enabled inputs. reference: name of the reference sensor, or None to emit at
    ``rate_hz`` ticks of the clock. fallback_rate_hz: while the reference sensor is dead, tick at
    this rate instead (None: no output while the reference is dead). clock: () -> ns (ROS time,
    sim time or a test's fake). Call ``poll`` periodically (e.g. every 10 ms) so deadlines fire.
    """

    def __init__(self, sensors: Sequence[SensorConfig], clock: Callable[[], int],
                 reference: str | None = None, rate_hz: float | None = None,
                 fallback_rate_hz: float | None = None, queue_size: int = 10, max_pending: int = 4,
                 skew_tolerance_s: float = 1.0, jump_threshold_s: float = 1.0):
        names = [s.name for s in sensors]
        if not sensors or len(set(names)) != len(names):
            raise ValueError(f"sync needs at least one sensor and unique names, got {names}")
        if reference is None and not (rate_hz and rate_hz > 0):
            raise ValueError("sync needs a reference sensor or a rate_hz > 0")
        if reference is not None and reference not in names:
            raise ValueError(f"reference sensor {reference!r} is not among the enabled sensors {names}")
        if queue_size < 1 or max_pending < 1:
            raise ValueError(f"queue_size and max_pending must be >= 1, got {queue_size}, {max_pending}")
        self.sensors = {s.name: s for s in sensors}
        self.reference = reference
        rate = rate_hz if reference is None else fallback_rate_hz
        self._period_ns = int(NS / rate) if rate and rate > 0 else None
        self.clock = clock
        self.queue_size, self.max_pending = queue_size, max_pending
        self._skew_ns = int(skew_tolerance_s * NS)
        self._jump_ns = int(jump_threshold_s * NS)
        self._lock = threading.Lock()
        self.stats = {n: SensorStats() for n in names}
        self.sets_emitted = 0
        self.sets_complete = 0
        self.time_jumps = 0
        self.pending_overflow = 0
        self._reset(clock())

    # ----------------------------------------------------------------------------------- public
    def add(self, name: str, stamp_ns: int, msg: Any) -> list[FrameSet]:
        """Feed one message (header stamp in ns). Returns the frame sets that became ready."""
        if name not in self.sensors:
            raise KeyError(f"unknown sensor {name!r}; enabled: {list(self.sensors)}")
        with self._lock:
            now = self._now()
            st = self.stats[name]
            if st.last_stamp_ns is not None and stamp_ns < st.last_stamp_ns - self._jump_ns:
                self.time_jumps += 1  # this sensor's time line went backwards: bag loop, sim restart
                self._reset(now)
            if (name == self.reference and self._last_emitted is not None
                    and stamp_ns < self._last_emitted - self._jump_ns):
                self.time_jumps += 1  # the output's time line moved (e.g. ticks on another epoch)
                self._reset(now)
            st.received += 1
            st.last_arrival_ns, st.last_stamp_ns = now, stamp_ns
            self._stamp_offset[name] = stamp_ns + int(self.sensors[name].offset_s * NS) - now
            if name == self.reference:
                self._add_reference(stamp_ns, msg, now)
            else:
                self._add_sensor(name, stamp_ns, msg)
            return self._service(now)

    def poll(self) -> list[FrameSet]:
        """Fire deadlines and rate ticks; returns the frame sets that became ready."""
        with self._lock:
            now = self._now()
            self._tick(now)
            return self._service(now)

    def is_dead(self, name: str, now: int | None = None) -> bool:
        """True if ``name`` has been silent (arrival time) for longer than its timeout."""
        now = self.clock() if now is None else now
        last = self.stats[name].last_arrival_ns
        last = self._start_ns if last is None or last < self._start_ns else last
        return now - last > self.sensors[name].timeout_s * NS

    def buffered(self) -> dict[str, int]:
        """Messages held per sensor (bounded by queue_size)."""
        return {n: len(b.times) for n, b in self._buffers.items()}

    @property
    def pending(self) -> int:
        return len(self._pending)

    # --------------------------------------------------------------------------------- internals
    def _reset(self, now: int) -> None:
        self._start_ns = now
        self._last_now = now
        self._buffers = {n: _Buffer() for n in self.sensors}
        self._pending: list[_Pending] = []
        self._last_emitted: int | None = None
        self._next_tick: int | None = None
        self._stamp_offset: dict[str, int] = {}  # per sensor: last (corrected) stamp - arrival on the clock
        for st in self.stats.values():
            st.last_arrival_ns = st.last_stamp_ns = None

    def _now(self) -> int:
        now = self.clock()
        if now < self._last_now - self._jump_ns:  # clock went backwards: sim time or bag restart
            self.time_jumps += 1
            self._reset(now)
        self._last_now = now
        return now

    def _add_reference(self, stamp: int, msg: Any, now: int) -> None:
        st = self.stats[self.reference]
        if self._last_emitted is not None and stamp <= self._last_emitted:
            st.late += 1
            return
        refs = [p.ref_ns for p in self._pending]
        if stamp in refs:
            st.duplicate += 1
            return
        base = stamp if abs(now - stamp) <= self._skew_ns else now
        i = bisect.bisect(refs, stamp)
        self._pending.insert(i, _Pending(stamp, base, self.reference, msg, stamp))

    def _add_sensor(self, name: str, stamp: int, msg: Any) -> None:
        st, buf = self.stats[name], self._buffers[name]
        t = stamp + int(self.sensors[name].offset_s * NS)
        slop = int(self.sensors[name].slop_s * NS)
        if (self._last_emitted is not None and t <= self._last_emitted + slop
                and not any(abs(t - p.ref_ns) <= slop for p in self._pending)):
            st.late += 1  # its frame set has been emitted already
            return
        i = bisect.bisect_left(buf.times, t)
        if i < len(buf.times) and buf.times[i] == t:
            st.duplicate += 1
            return
        buf.times.insert(i, t)
        buf.items.insert(i, (stamp, msg))
        while len(buf.times) > self.queue_size:
            del buf.times[0], buf.items[0]
            st.overflow += 1

    def _tick(self, now: int) -> None:
        """Rate mode, or fallback while the reference is dead: open one frame set per period."""
        if self._period_ns is None:
            return
        if self.reference is not None and not self.is_dead(self.reference, now):
            self._next_tick = None
            return
        if self._next_tick is None or now - self._next_tick > 4 * self._period_ns:
            self._next_tick = now  # (re)start, skipping ticks missed during a stall
        shift = self._tick_shift()
        while now >= self._next_tick:
            t = self._next_tick
            self._next_tick += self._period_ns
            if self._last_emitted is not None and t + shift <= self._last_emitted:
                continue
            bisect.insort(self._pending, _Pending(t + shift, t, None), key=lambda q: q.ref_ns)

    def _tick_shift(self) -> int:
        """Clock -> stamp time line for ticks: 0 while stamps follow the clock, else the last
        observed ``stamp - arrival`` (the reference's if known, else the latest sensor's)."""
        offs = self._stamp_offset
        if not offs:
            return 0
        if self.reference in offs:
            off = offs[self.reference]
        else:
            off = offs[max(offs, key=lambda n: self.stats[n].last_arrival_ns or 0)]
        return off if abs(off) > self._skew_ns else 0

    def _match(self, name: str, p: _Pending) -> int | None:
        """Index of the buffered message of ``name`` nearest to p's reference, within slop."""
        times = self._buffers[name].times
        if not times:
            return None
        i = bisect.bisect_left(times, p.ref_ns)
        best = min((j for j in (i - 1, i) if 0 <= j < len(times)), key=lambda j: abs(times[j] - p.ref_ns))
        return best if abs(times[best] - p.ref_ns) <= self.sensors[name].slop_s * NS else None

    def _ready(self, p: _Pending, now: int) -> bool:
        for name, cfg in self.sensors.items():
            if name == p.ref_name or self._match(name, p) is not None or self.is_dead(name, now):
                continue
            if now < p.base_ns + cfg.timeout_s * NS:
                return False
        return True

    def _service(self, now: int) -> list[FrameSet]:
        out: list[FrameSet] = []
        while len(self._pending) > self.max_pending:
            self.pending_overflow += 1
            out.append(self._emit(self._pending.pop(0), "overflow"))
        ready = [self._ready(p, now) for p in self._pending]
        if True in ready:  # emit up to the last ready set; earlier unready ones are superseded
            k = len(ready) - 1 - ready[::-1].index(True)
            for j in range(k + 1):
                out.append(self._emit(self._pending.pop(0), None if ready[j] else "superseded"))
        return out

    def _emit(self, p: _Pending, reason: str | None) -> FrameSet:
        messages: dict[str, Any] = {}
        stamps: dict[str, int] = {}
        missing: list[str] = []
        for name, cfg in self.sensors.items():
            buf = self._buffers[name]
            if name == p.ref_name:
                messages[name], stamps[name] = p.ref_msg, p.ref_stamp_ns
            else:
                j = self._match(name, p)
                if j is None:
                    missing.append(name)
                else:
                    stamps[name], messages[name] = buf.items[j]
                    del buf.times[j], buf.items[j]
            if name in messages:
                self.stats[name].used += 1
            # drop what can no longer match any later reference (those are > p.ref_ns)
            cut = bisect.bisect_left(buf.times, p.ref_ns - int(cfg.slop_s * NS))
            if cut:
                self.stats[name].unmatched += cut
                del buf.times[:cut], buf.items[:cut]
        self._last_emitted = p.ref_ns
        self.sets_emitted += 1
        self.sets_complete += not missing
        reason = reason or ("complete" if not missing else "deadline")
        return FrameSet(p.ref_ns, messages, stamps, tuple(missing), reason, p.ref_name)


def make_synchronizer(values: Mapping[str, Any], clock: Callable[[], int]) -> Synchronizer:
    """The node's synchronizer from its flat parameter values (names as in rmmss_ros.params:
    ``<sensor>.enabled/slop_s/offset_s/timeout_s``, ``reference``, ``rate_hz``,
    ``fallback_on_dead_reference``, ``sync.queue_size``) and a clock ``() -> ns``. Used by the node
    and by offline replay, so both synchronise identically. ValueError for an inconsistent set."""
    sensors = [SensorConfig(m, float(values[f"{m}.slop_s"]), float(values[f"{m}.offset_s"]),
                            float(values[f"{m}.timeout_s"]))
               for m in MODALITIES if values[f"{m}.enabled"]]
    ref = values["reference"]
    rate = float(values["rate_hz"])
    return Synchronizer(sensors, clock, reference=None if ref == "rate" else ref, rate_hz=rate,
                        fallback_rate_hz=rate if values["fallback_on_dead_reference"] else None,
                        queue_size=int(values["sync.queue_size"]))
