"""Missing-aware multi-sensor synchronizer (ROS-free; time from an injected clock).

Why not message_filters: its approximate policy emits a set only when every input has a message
within ``slop``, so one dead sensor stops all output, and it uses each message once, so a 10 Hz
LiDAR reaches one camera frame in three (docs/ROS.md). Here a *frame set* is built per reference
stamp (the reference sensor's header stamp, or ticks of a fixed output rate) and emitted

- as soon as every enabled sensor has a message whose corrected stamp ``stamp + offset_s`` lies
  within its ``slop_s`` of the reference stamp, boundary included (reason ``complete``), or
- when every sensor still lacking a match has passed its deadline ``reference + timeout_s``
  (``deadline``), or is *dead* (silent, by arrival time, for longer than its ``timeout_s``), or is
  *out of sync* (below), so neither adds any waiting, or
- when a later frame set is ready first (``superseded``) or too many sets are pending (``overflow``).

Matching policy, per sensor (``SensorConfig.reuse``): ``True`` (default) the message nearest to
the reference within slop is used and stays available, so one 10 Hz LiDAR scan serves every 30 Hz
camera frame within its slop; ``False``: each message is used by one set only (message_filters'
rule). Sensors without a match are listed in ``FrameSet.missing``.

Robustness, without ever resetting the other sensors:

- *out-of-order references*: a reference stamp older than the newest emitted set, by at most
  ``reorder_window_s``, is still processed (its matches are kept that long); older ones, and a
  repeat of an already emitted or pending stamp, are dropped and counted (``late``, ``duplicate``).
- *implausible stamps*: a stamp <= 0, or one more than ``jump_threshold_s`` off the sensor's own
  time line (its last stamp advanced by the time since), is held back; if the sensor's next message
  agrees with it the time line really moved (bag loop, sim restart: ``jumps``, both messages are
  used, and for the reference the pending sets move with it), otherwise it is dropped and counted
  (``implausible``). The clock itself jumping back resets everything (``time_jumps``).
- *out of sync*: a live sensor whose messages keep missing the reference (``out_of_sync_misses``
  sets in a row while it kept publishing: a clock offset) or that keeps going silent right after
  being used (``flapping_episodes`` times within ``flapping_window_s``) is flagged with the reason
  and its measured offset; while flagged it adds no waiting (used only when a match is already
  there) until it has matched continuously for ``recover_s``.

Rate ticks (and fallback ticks while the reference is dead) are placed on the sensors' stamp time
line: the clock's time when stamps follow the clock (within ``skew_tolerance_s``), else the clock
shifted by the last observed ``stamp - arrival``. Memory is bounded: ``queue_size`` messages per
sensor, ``max_pending`` open sets and a fixed history of emitted stamps, whatever the input rate.
All times are integer nanoseconds. Thread-safe (one lock; no callbacks run under it).
"""
from __future__ import annotations

import bisect
import statistics
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rmmss_core.modalities import MODALITIES

NS = 1_000_000_000
_HISTORY = 128  # emitted reference stamps remembered (duplicates, late arrivals)


@dataclass(frozen=True)
class SensorConfig:
    """One synchronised input. ``offset_s`` is added to its stamps to bring them onto the
    reference's time line; ``slop_s`` is the largest accepted |corrected stamp - reference|
    (inclusive); ``reuse``: a message may serve several reference stamps (see module doc)."""

    name: str
    slop_s: float = 0.05
    offset_s: float = 0.0
    timeout_s: float = 0.25
    reuse: bool = True

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
    opened_ns: int = 0  # clock time the set was opened (reference receipt, or the tick)

    @property
    def present(self) -> tuple[str, ...]:
        return tuple(self.messages)

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass
class SensorStats:
    """Counters of one sensor since start. ``received``: messages that arrived; ``used``: frame
    sets it was part of (with ``reuse`` one 10 Hz scan serves several 30 Hz camera frames, so this
    can exceed ``received``); ``used_messages``: distinct messages that served at least one set;
    ``expired_unused``: buffered messages dropped once too old for any set still to come without
    ever having served one (messages used before they expire are not counted); ``late``: arrived
    after a set it belonged to was emitted without it, or too old for any set still to come;
    ``overflow``: buffered messages evicted by ``queue_size``; ``missed``: sets emitted without it while it
    was alive; ``out_of_sync``: '' or why it is flagged; ``offset_ms``: measured median offset of
    its (corrected) stamps against the reference's, transport delays cancelled (None: unknown)."""

    received: int = 0
    used: int = 0
    used_messages: int = 0
    late: int = 0
    duplicate: int = 0
    overflow: int = 0
    expired_unused: int = 0
    implausible: int = 0
    jumps: int = 0
    missed: int = 0
    out_of_sync: str = ""
    offset_ms: float | None = None
    last_arrival_ns: int | None = None
    last_stamp_ns: int | None = None


@dataclass
class _Pending:
    ref_ns: int
    base_ns: int  # deadline base on the clock: the reference stamp, or arrival if stamps are off-clock
    ref_name: str | None
    ref_msg: Any = None
    ref_stamp_ns: int = 0
    added_ns: int = 0  # clock time the set was opened
    alive: frozenset = frozenset()  # sensors alive when it was opened


@dataclass
class _Buffer:
    times: list[int] = field(default_factory=list)  # corrected stamps, sorted
    items: list[tuple[int, Any]] = field(default_factory=list)  # (raw stamp, message)
    used: list[bool] = field(default_factory=list)  # whether that message served a frame set yet


@dataclass
class _Track:
    """Per-sensor time line and sync health (internal)."""

    last_stamp: int | None = None
    last_arrival: int | None = None
    suspect: tuple[int, Any, int] | None = None  # (stamp, msg, arrival) held back
    offsets: deque = field(default_factory=lambda: deque(maxlen=15))  # corrected stamp - arrival
    gaps: deque = field(default_factory=lambda: deque(maxlen=16))  # inter-arrival times
    miss_run: int = 0
    last_hit: bool = True
    episodes: deque = field(default_factory=lambda: deque(maxlen=16))  # clock times of silent misses
    streak_start: int | None = None  # while flagged: start of the current run of matching arrivals


class Synchronizer:
    """Collects messages per reference stamp; ``add``/``poll`` return the frame sets now ready.

    sensors: the enabled inputs. reference: name of the reference sensor, or None to emit at
    ``rate_hz`` ticks of the clock. fallback_rate_hz: while the reference sensor is dead, tick at
    this rate instead (None: no output while the reference is dead). clock: () -> ns (ROS time,
    sim time or a test's fake). Call ``poll`` periodically (e.g. every 10 ms) so deadlines fire.
    """

    def __init__(self, sensors: Sequence[SensorConfig], clock: Callable[[], int],
                 reference: str | None = None, rate_hz: float | None = None,
                 fallback_rate_hz: float | None = None, queue_size: int = 10, max_pending: int = 8,
                 skew_tolerance_s: float = 1.0, jump_threshold_s: float = 1.0,
                 reorder_window_s: float = 0.1, out_of_sync_misses: int = 5,
                 flapping_episodes: int = 3, flapping_window_s: float = 10.0, recover_s: float = 2.0):
        names = [s.name for s in sensors]
        if not sensors or len(set(names)) != len(names):
            raise ValueError(f"sync needs at least one sensor and unique names, got {names}")
        if reference is None and not (rate_hz and rate_hz > 0):
            raise ValueError("sync needs a reference sensor or a rate_hz > 0")
        if reference is not None and reference not in names:
            raise ValueError(f"reference sensor {reference!r} is not among the enabled sensors {names}")
        if queue_size < 1 or max_pending < 1:
            raise ValueError(f"queue_size and max_pending must be >= 1, got {queue_size}, {max_pending}")
        if reorder_window_s < 0:
            raise ValueError(f"reorder_window_s must be >= 0, got {reorder_window_s}")
        self.sensors = {s.name: s for s in sensors}
        self.reference = reference
        rate = rate_hz if reference is None else fallback_rate_hz
        self._period_ns = int(NS / rate) if rate and rate > 0 else None
        self.clock = clock
        self.queue_size, self.max_pending = queue_size, max_pending
        self._skew_ns = int(skew_tolerance_s * NS)
        self._jump_ns = int(jump_threshold_s * NS)
        self._reorder_ns = int(reorder_window_s * NS)
        self._oos_misses, self._flap_n = out_of_sync_misses, flapping_episodes
        self._flap_ns, self._recover_ns = int(flapping_window_s * NS), int(recover_s * NS)
        self._slop = {s.name: int(s.slop_s * NS) for s in sensors}
        self._off = {s.name: int(s.offset_s * NS) for s in sensors}
        self._disabled: set[str] = set()  # switched off while running (configure(enabled=False))
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
            self.stats[name].received += 1
            if name in self._disabled:
                return self._service(now)
            for stamp, m in self._screen(name, int(stamp_ns), msg, now):
                self._accept(name, stamp, m, now)
            return self._service(now)

    def configure(self, name: str, *, slop_s: float | None = None, offset_s: float | None = None,
                  timeout_s: float | None = None, enabled: bool | None = None) -> None:
        """Change one sensor's settings while running (the node's ``ros2 param set``), applied from
        the next frame set (the sensor's out-of-sync judgement restarts). A disabled sensor is
        neither waited for nor used (its messages are counted and dropped). ValueError for an unknown sensor, a bad value, or disabling the
        reference."""
        if name not in self.sensors:
            raise ValueError(f"sensor {name!r} was not enabled at start-up (enabled: {list(self.sensors)}); "
                             "restart the node to add it")
        if enabled is False and name == self.reference:
            raise ValueError(f"{name} is the reference sensor; it cannot be disabled while running")
        changes = {k: float(v) for k, v in (("slop_s", slop_s), ("offset_s", offset_s), ("timeout_s", timeout_s))
                   if v is not None}
        with self._lock:
            cfg = replace(self.sensors[name], **changes)  # validated by SensorConfig
            self.sensors[name] = cfg
            self._slop[name], self._off[name] = int(cfg.slop_s * NS), int(cfg.offset_s * NS)
            if enabled is not None:
                (self._disabled.discard if enabled else self._disabled.add)(name)
            # new settings, new judgement: the sync health measured under the old ones is dropped
            tr = self._tracks[name]
            self.stats[name].out_of_sync = ""
            tr.miss_run, tr.last_hit, tr.streak_start = 0, True, None
            tr.episodes.clear()
            tr.offsets.clear()

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

    def out_of_sync(self, name: str) -> str:
        """'' or why ``name`` is flagged out of sync (with its measured offset)."""
        return self.stats[name].out_of_sync

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
        self._tracks = {n: _Track() for n in self.sensors}
        self._pending: list[_Pending] = []
        self._emitted: list[int] = []  # recent emitted reference stamps, sorted (bounded)
        self._emitted_missing: dict[int, frozenset] = {}
        self._newest: int | None = None  # newest emitted reference stamp
        self._next_tick: int | None = None
        self._stamp_offset: dict[str, int] = {}  # per sensor: last (corrected) stamp - arrival on the clock
        for st in self.stats.values():
            st.last_arrival_ns = st.last_stamp_ns = None
            st.out_of_sync = ""

    def _reset_output(self, stamp: int) -> None:
        """The reference's time line moved to ``stamp``: forget pending/emitted sets and buffered
        messages of the others that lie on the old time line (farther than the jump threshold)."""
        self.time_jumps += 1
        self._pending, self._emitted, self._emitted_missing = [], [], {}
        self._newest, self._next_tick = None, None
        for buf in self._buffers.values():
            keep = [i for i, t in enumerate(buf.times) if abs(t - stamp) <= self._jump_ns]
            if len(keep) != len(buf.times):
                buf.times = [buf.times[i] for i in keep]
                buf.items = [buf.items[i] for i in keep]
                buf.used = [buf.used[i] for i in keep]

    def _now(self) -> int:
        now = self.clock()
        if now < self._last_now - self._jump_ns:  # clock went backwards: sim time or bag restart
            self.time_jumps += 1
            self._reset(now)
        self._last_now = now
        return now

    def _screen(self, name: str, stamp: int, msg: Any, now: int) -> list[tuple[int, Any]]:
        """The messages to take in now: none for an implausible or held-back stamp, two when a
        held-back stamp is confirmed by this one (the sensor's time line moved)."""
        st, tr = self.stats[name], self._tracks[name]
        if stamp <= 0:  # unset header (0) or negative: never a sensor's time
            st.implausible += 1
            return []
        if tr.last_stamp is None or abs(stamp - (tr.last_stamp + now - tr.last_arrival)) <= self._jump_ns:
            if tr.suspect is not None:
                st.implausible += 1
                tr.suspect = None
            return [(stamp, msg)]
        if tr.suspect is not None:
            s0, m0, a0 = tr.suspect
            tr.suspect = None
            if abs(stamp - (s0 + now - a0)) <= self._jump_ns:  # two agree: the time line moved
                st.jumps += 1
                self._buffers[name] = _Buffer()
                tr.offsets.clear()
                if name == self.reference:
                    self._reset_output(s0)
                return [(s0, m0), (stamp, msg)]
            st.implausible += 1
        tr.suspect = (stamp, msg, now)
        return []

    def _accept(self, name: str, stamp: int, msg: Any, now: int) -> None:
        st, tr = self.stats[name], self._tracks[name]
        if tr.last_arrival is not None:
            tr.gaps.append(now - tr.last_arrival)
        st.last_arrival_ns, st.last_stamp_ns = now, stamp
        tr.last_stamp, tr.last_arrival = stamp, now
        off = stamp + self._off[name] - now
        self._stamp_offset[name] = off
        tr.offsets.append(off)
        if name == self.reference:
            self._add_reference(stamp, msg, now)
        else:
            self._add_sensor(name, stamp, msg, now)

    def _floor(self) -> int | None:
        """Oldest reference stamp that may still come (reordering window), None before any set."""
        return None if self._newest is None else self._newest - self._reorder_ns

    def _add_reference(self, stamp: int, msg: Any, now: int) -> None:
        st = self.stats[self.reference]
        if self._newest is not None and stamp < self._newest - self._jump_ns:
            self._reset_output(stamp)  # the output's time line moved (e.g. ticks on another epoch)
        if stamp in self._emitted_missing or any(p.ref_ns == stamp for p in self._pending):
            st.duplicate += 1
            return
        floor = self._floor()
        if floor is not None and stamp < floor:
            st.late += 1
            return
        base = stamp if abs(now - stamp) <= self._skew_ns else now
        alive = frozenset(n for n in self.sensors if n != self.reference and not self.is_dead(n, now))
        bisect.insort(self._pending, _Pending(stamp, base, self.reference, msg, stamp, now, alive),
                      key=lambda q: q.ref_ns)

    def _add_sensor(self, name: str, stamp: int, msg: Any, now: int) -> None:
        st, buf = self.stats[name], self._buffers[name]
        t = stamp + self._off[name]
        slop = self._slop[name]
        lo = bisect.bisect_left(self._emitted, t - slop)
        hi = bisect.bisect_right(self._emitted, t + slop)
        missed = any(name in self._emitted_missing[r] for r in self._emitted[lo:hi])
        if st.out_of_sync:
            self._recovery(name, t, now, lo < hi or any(abs(t - p.ref_ns) <= slop for p in self._pending))
        floor = self._floor()
        # too old for any set to come; far older stamps (another time line: a bag loop the
        # reference has not followed yet) are kept, bounded by queue_size
        too_old = floor is not None and t + slop < floor and t >= self._newest - self._jump_ns
        if missed or too_old:
            st.late += 1  # arrived after its set was emitted, or too old for any set to come
            if too_old:
                return
        i = bisect.bisect_left(buf.times, t)
        if i < len(buf.times) and buf.times[i] == t:
            st.duplicate += 1
            return
        buf.times.insert(i, t)
        buf.items.insert(i, (stamp, msg))
        buf.used.insert(i, False)
        while len(buf.times) > self.queue_size:
            del buf.times[0], buf.items[0], buf.used[0]
            st.overflow += 1

    def _recovery(self, name: str, t: int, now: int, matches: bool) -> None:
        """While ``name`` is out of sync: track the run of arrivals that match a reference and
        arrive without unusual gaps; clear the flag once the run lasts ``recover_s``."""
        tr = self._tracks[name]
        newest_ref = max([*(p.ref_ns for p in self._pending), self._newest or 0])
        gap_ok = len(tr.gaps) < 4 or tr.gaps[-1] <= 3 * statistics.median(tr.gaps)
        undecided = t > newest_ref  # its reference may not have arrived yet
        if not gap_ok or not (matches or undecided):
            tr.streak_start = None
        elif tr.streak_start is None:
            tr.streak_start = now
        elif now - tr.streak_start >= self._recover_ns:
            self.stats[name].out_of_sync = ""
            tr.streak_start, tr.miss_run, tr.last_hit = None, 0, True
            tr.episodes.clear()

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
        alive = frozenset(n for n in self.sensors if not self.is_dead(n, now))
        while now >= self._next_tick:
            t = self._next_tick
            self._next_tick += self._period_ns
            if self._newest is not None and t + shift <= self._newest:
                continue
            bisect.insort(self._pending, _Pending(t + shift, t, None, added_ns=now, alive=alive),
                          key=lambda q: q.ref_ns)

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
        return best if abs(times[best] - p.ref_ns) <= self._slop[name] else None

    def _ready(self, p: _Pending, now: int) -> bool:
        for name, cfg in self.sensors.items():
            if (name == p.ref_name or name in self._disabled or self.stats[name].out_of_sync
                    or self._match(name, p) is not None or self.is_dead(name, now)):
                continue
            if now < p.base_ns + cfg.timeout_s * NS:
                return False
        return True

    def _service(self, now: int) -> list[FrameSet]:
        out: list[FrameSet] = []
        while len(self._pending) > self.max_pending:
            self.pending_overflow += 1
            out.append(self._emit(self._pending.pop(0), "overflow", now))
        ready = [self._ready(p, now) for p in self._pending]
        if True in ready:  # emit up to the last ready set; earlier unready ones are superseded
            k = len(ready) - 1 - ready[::-1].index(True)
            for j in range(k + 1):
                out.append(self._emit(self._pending.pop(0), None if ready[j] else "superseded", now))
        return out

    def _emit(self, p: _Pending, reason: str | None, now: int) -> FrameSet:
        messages: dict[str, Any] = {}
        stamps: dict[str, int] = {}
        missing: list[str] = []
        newest = p.ref_ns if self._newest is None else max(self._newest, p.ref_ns)
        floor = newest - self._reorder_ns
        for name, cfg in self.sensors.items():
            buf = self._buffers[name]
            if name == p.ref_name:
                messages[name], stamps[name] = p.ref_msg, p.ref_stamp_ns
            else:
                j = None if name in self._disabled else self._match(name, p)
                if j is None:
                    missing.append(name)
                else:
                    stamps[name], messages[name] = buf.items[j]
                    if not buf.used[j]:
                        self.stats[name].used_messages += 1
                        buf.used[j] = True
                    if not cfg.reuse:
                        del buf.times[j], buf.items[j], buf.used[j]
                if name not in self._disabled:
                    self._health(name, p, j is not None, now)
            if name in messages:
                self.stats[name].used += 1
            # drop what can no longer match any reference still to come (those are >= floor);
            # only the messages that never served a set count as expired
            cut = bisect.bisect_left(buf.times, floor - self._slop[name])
            if cut:
                self.stats[name].expired_unused += cut - sum(buf.used[:cut])
                del buf.times[:cut], buf.items[:cut], buf.used[:cut]
        self._newest = newest
        bisect.insort(self._emitted, p.ref_ns)
        self._emitted_missing[p.ref_ns] = frozenset(missing)
        while len(self._emitted) > _HISTORY:
            del self._emitted_missing[self._emitted.pop(0)]
        self.sets_emitted += 1
        self.sets_complete += not missing
        reason = reason or ("complete" if not missing else "deadline")
        return FrameSet(p.ref_ns, messages, stamps, tuple(missing), reason, p.ref_name, p.added_ns)

    def _health(self, name: str, p: _Pending, matched: bool, now: int) -> None:
        """Out-of-sync detection from one emitted set (see module doc)."""
        st, tr = self.stats[name], self._tracks[name]
        if self.sets_emitted % 8 == 0 or st.offset_ms is None:  # medians are not free: refresh now and then
            st.offset_ms = self._offset_ms(name)
        if matched:
            tr.miss_run, tr.last_hit = 0, True
            return
        if name not in p.alive or st.out_of_sync:
            return
        st.missed += 1
        if (st.last_arrival_ns or 0) > p.added_ns:  # kept publishing, yet nothing within slop
            tr.miss_run += 1
        elif tr.last_hit:  # went silent right after being used: one on/off episode
            tr.episodes.append(now)
        tr.last_hit = False
        while tr.episodes and now - tr.episodes[0] > self._flap_ns:
            tr.episodes.popleft()
        st.offset_ms = self._offset_ms(name)
        off = f"{st.offset_ms:+.1f} ms" if st.offset_ms is not None else "unknown"
        if tr.miss_run >= self._oos_misses:
            st.out_of_sync = (f"out of sync: {tr.miss_run} sets in a row without a message within "
                              f"{self.sensors[name].slop_s * 1e3:.0f} ms while publishing; measured offset {off}")
        elif len(tr.episodes) >= self._flap_n:
            st.out_of_sync = (f"out of sync: flapping, went silent {len(tr.episodes)} times in "
                              f"{self._flap_ns / NS:.0f} s; measured offset {off}")
        if st.out_of_sync:
            tr.streak_start = None

    def _offset_ms(self, name: str) -> float | None:
        """Median (corrected stamp - arrival) of ``name`` minus the reference's (or minus 0 in rate
        mode): how far its stamps sit from the reference's time line, transport delay cancelled."""
        offs = self._tracks[name].offsets
        if not offs:
            return None
        ref = 0
        if self.reference is not None and self.reference != name:
            r = self._tracks[self.reference].offsets
            if not r:
                return None
            ref = statistics.median(r)
        return (statistics.median(offs) - ref) / 1e6


def make_synchronizer(values: Mapping[str, Any], clock: Callable[[], int]) -> Synchronizer:
    """The node's synchronizer from its flat parameter values (names as in rmmss_ros.node.params:
    ``<sensor>.enabled/slop_s/offset_s/timeout_s/reuse``, ``reference``, ``rate_hz``,
    ``fallback_on_dead_reference``, ``sync.queue_size``, ``sync.reorder_window_s``) and a clock
    ``() -> ns``. Used by the node and by offline replay, so both synchronise identically.
    ValueError for an inconsistent set."""
    sensors = [SensorConfig(m, float(values[f"{m}.slop_s"]), float(values[f"{m}.offset_s"]),
                            float(values[f"{m}.timeout_s"]), bool(values.get(f"{m}.reuse", True)))
               for m in MODALITIES if values[f"{m}.enabled"]]
    ref = values["reference"]
    rate = float(values["rate_hz"])
    return Synchronizer(sensors, clock, reference=None if ref == "rate" else ref, rate_hz=rate,
                        fallback_rate_hz=rate if values["fallback_on_dead_reference"] else None,
                        queue_size=int(values["sync.queue_size"]),
                        reorder_window_s=float(values.get("sync.reorder_window_s", 0.1)))
