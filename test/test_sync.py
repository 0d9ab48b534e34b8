"""Synchronizer unit tests (no ROS): completeness, deadlines, dead sensors, late/duplicate/out-of-order
messages, time jumps, flapping, bounded memory, rate mode, and agreement with message_filters'
ApproximateTimeSynchronizer policy on complete streams."""
from __future__ import annotations

import itertools
import random

import pytest

from rmmss_ros.sync import NS, SensorConfig, Synchronizer

MS = 1_000_000
NAMES = ("rgb", "depth", "event", "lidar")


class FakeClock:
    def __init__(self, t_ns: int = 100 * NS):
        self.t = t_ns

    def __call__(self) -> int:
        return self.t

    def advance(self, ms: float) -> None:
        self.t += int(ms * MS)


def make(clock, names=NAMES, slop=0.02, timeout=0.1, **kw):
    sensors = [SensorConfig(n, slop_s=slop, timeout_s=timeout, offset_s=kw.pop(f"{n}_offset", 0.0))
               for n in names]
    kw.setdefault("reference", names[0])
    return Synchronizer(sensors, clock, **kw)


def feed_frame(sync, clock, stamp, names=NAMES, skip=()):
    """All sensors (but ``skip``) publish a message stamped ``stamp``; reference last."""
    out = []
    for n in [*names[1:], names[0]]:
        if n not in skip:
            out += sync.add(n, stamp, f"{n}@{stamp}")
    return out


def test_complete_set_emitted_at_once_with_stamps():
    clock = FakeClock()
    sync = make(clock)
    t = clock.t
    assert sync.add("rgb", t, "cam") == []  # others alive (start grace) -> wait
    sync.add("depth", t + 5 * MS, "d")
    sync.add("event", t - 3 * MS, "e")
    out = sync.add("lidar", t + 19 * MS, "l")
    assert len(out) == 1
    fs = out[0]
    assert fs.complete and fs.reason == "complete" and fs.stamp_ns == t
    assert fs.messages == {"rgb": "cam", "depth": "d", "event": "e", "lidar": "l"}
    assert fs.stamps_ns["lidar"] == t + 19 * MS


def test_outside_slop_not_matched_and_deadline_marks_missing():
    clock = FakeClock()
    sync = make(clock)
    t = clock.t
    sync.add("depth", t, "d")
    sync.add("event", t, "e")
    sync.add("lidar", t + 25 * MS, "far")  # outside 20 ms slop
    assert sync.add("rgb", t, "cam") == []
    clock.advance(99)
    assert sync.poll() == []  # lidar is alive, deadline t + 100 ms not reached
    clock.advance(2)
    (fs,) = sync.poll()
    assert fs.missing == ("lidar",) and fs.reason == "deadline"
    assert set(fs.present) == {"rgb", "depth", "event"}


def test_dead_sensor_adds_no_waiting():
    clock = FakeClock()
    sync = make(clock)
    for _k in range(3):  # lidar publishes early on, then dies
        feed_frame(sync, clock, clock.t)
        clock.advance(50)
    for _k in range(3):  # lidar silent: these first sets may still wait for the deadline
        feed_frame(sync, clock, clock.t, skip=("lidar",))
        clock.advance(50)
        sync.poll()
    assert sync.is_dead("lidar") and not sync.is_dead("rgb")
    for _k in range(5):
        out = feed_frame(sync, clock, clock.t, skip=("lidar",))
        assert len(out) == 1 and out[0].missing == ("lidar",)  # emitted without any poll or wait
        clock.advance(50)


def test_late_messages_dropped_and_counted():
    clock = FakeClock()
    sync = make(clock)
    t = clock.t
    sync.add("rgb", t, "cam")
    clock.advance(150)
    (fs,) = sync.poll()
    assert set(fs.missing) == {"depth", "event", "lidar"}
    assert sync.add("depth", t + 1 * MS, "late-d") == []
    assert sync.add("lidar", t - 5 * MS, "late-l") == []
    assert sync.stats["depth"].late == 1 and sync.stats["lidar"].late == 1
    assert sync.buffered()["depth"] == 0
    sync.add("rgb", t - 10 * MS, "late-cam")  # reference older than an emitted set
    assert sync.stats["rgb"].late == 1 and sync.pending == 0


def test_out_of_order_and_duplicate_stamps():
    clock = FakeClock()
    sync = make(clock, names=("rgb", "lidar"))
    t = clock.t
    sync.add("lidar", t + 1 * MS, "l1")
    sync.add("lidar", t + 1 * MS, "l1-dup")
    assert sync.stats["lidar"].duplicate == 1
    assert sync.add("rgb", t + 40 * MS, "c2") == []  # newer reference first, no lidar for it yet
    sync.add("rgb", t + 40 * MS, "c2-dup")
    assert sync.stats["rgb"].duplicate == 1
    out = sync.add("rgb", t, "c1")  # older reference arrives late but before its set was emitted
    out += sync.add("lidar", t + 45 * MS, "l3")
    out += sync.add("lidar", t + 38 * MS, "l2")  # out of order: nearer to c2 than l3
    assert [(f.stamp_ns, f.messages["rgb"], f.messages["lidar"]) for f in out] == [
        (t, "c1", "l1"), (t + 40 * MS, "c2", "l3")]  # c2 completes as soon as l3 arrives
    assert sync.stats["lidar"].late == 1  # l2 came after c2 was emitted


def test_offset_corrects_sensor_stamps():
    clock = FakeClock()
    sync = make(clock, names=("rgb", "depth"), depth_offset=0.1)  # depth stamps run 100 ms behind
    t = clock.t
    sync.add("depth", t - 100 * MS, "d")
    (fs,) = sync.add("rgb", t, "cam")
    assert fs.complete and fs.stamps_ns["depth"] == t - 100 * MS


def test_time_jump_backwards_resets_and_keeps_going():
    clock = FakeClock()
    sync = make(clock)
    t0 = clock.t
    for k in range(5):
        assert len(feed_frame(sync, clock, t0 + k * 100 * MS)) == 1
        clock.advance(100)
    # bag loop: stamps restart 10 s earlier (the clock keeps running)
    for k in range(5):
        out = feed_frame(sync, clock, t0 - 10 * NS + k * 100 * MS)
        assert len(out) == 1 and out[0].complete
        clock.advance(100)
    assert sync.time_jumps == 1
    # sim time restart: the clock itself jumps backwards
    clock.t -= 30 * NS
    assert sync.poll() == []
    out = feed_frame(sync, clock, clock.t)
    assert sync.time_jumps == 2 and len(out) == 1 and out[0].complete


def test_flapping_sensor_used_when_alive_missing_at_once_when_dead():
    clock = FakeClock()
    sync = make(clock, timeout=0.1)
    alive = True
    used = []
    for k in range(60):
        if k % 15 == 0 and k:
            alive = not alive
        out = feed_frame(sync, clock, clock.t, skip=() if alive else ("event",))
        out += sync.poll()
        clock.advance(50)
        out += sync.poll()
        for fs in out:
            used.append("event" in fs.messages)
    assert len(used) == 60  # one set per reference frame, always
    # the first frames after death may wait for the deadline, but every set is emitted;
    # whenever the sensor is alive it is used
    assert used[:15] == [True] * 15 and used[30:45] == [True] * 15
    assert used[17:30] == [False] * 13 and used[47:] == [False] * 13


def test_memory_bounded_under_any_rate():
    clock = FakeClock()
    sync = make(clock, queue_size=8, max_pending=3)
    for k in range(20000):  # a firehose sensor without any reference
        sync.add("lidar", clock.t + k * MS, k)
    assert sync.buffered()["lidar"] == 8 and sync.stats["lidar"].overflow == 20000 - 8
    emitted = 0
    for k in range(5000):  # reference firehose while depth is alive but never matches
        sync.add("depth", clock.t + 10 * NS + k * 10 * MS, "d")
        emitted += len(sync.add("rgb", clock.t + 20 * NS + k * 7 * MS, k))
        assert sync.pending <= 3 and max(sync.buffered().values()) <= 8
    assert emitted > 4900 and sync.pending_overflow > 0


def test_rate_mode_and_fallback_when_reference_dead():
    clock = FakeClock()
    sync = make(clock, names=("rgb", "depth"), reference=None, rate_hz=10.0)
    sets = []
    for k in range(100):  # 1 s, depth at 100 Hz
        sets += sync.add("depth", clock.t, k)
        sets += sync.poll()
        clock.advance(10)
    assert 9 <= len(sets) <= 11
    assert all(fs.reference is None and "depth" in fs.messages for fs in sets)
    assert all("rgb" in fs.missing for fs in sets)

    clock = FakeClock()
    sync = make(clock, names=("rgb", "depth"), fallback_rate_hz=10.0)
    sets = []
    for k in range(200):  # camera at 10 Hz for 1 s, then dead for 1 s; depth at 100 Hz throughout
        if k < 100 and k % 10 == 0:
            sets += sync.add("rgb", clock.t, k)
        sets += sync.add("depth", clock.t, k)
        sets += sync.poll()
        clock.advance(10)
    with_cam = [fs for fs in sets if "rgb" in fs.messages]
    ticks = [fs for fs in sets if fs.reference is None]
    assert len(with_cam) == 10 and 7 <= len(ticks) <= 10
    assert all("depth" in fs.messages for fs in sets)


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="slop_s"):
        SensorConfig("rgb", slop_s=-1)
    with pytest.raises(ValueError, match="reference sensor 'camera'"):
        Synchronizer([SensorConfig("rgb")], FakeClock(), reference="camera")
    with pytest.raises(ValueError, match="rate_hz"):
        Synchronizer([SensorConfig("rgb")], FakeClock(), reference=None)


# ------------------------------------------------------------------ message_filters comparison
class ApproximatePolicy:
    """Re-implementation of message_filters' Python ApproximateTimeSynchronizer (ROS 2 Jazzy),
    written from its documented algorithm: each input keeps a dict stamp -> msg bounded to
    queue_size (oldest evicted). When a message arrives, for every *other* input the stamps within
    ``slop`` of the new stamp are listed, nearest first; if an input has none, nothing happens.
    Otherwise the candidate combinations are tried in itertools.product order and the first whose
    spread (max - min, including the new stamp) is below ``slop`` is emitted and its messages are
    removed from the queues (older unmatched ones stay until evicted)."""

    def __init__(self, n: int, queue_size: int, slop_ns: int):
        self.queues: list[dict[int, object]] = [{} for _ in range(n)]
        self.queue_size, self.slop = queue_size, slop_ns
        self.out: list[list[object]] = []

    def add(self, i: int, stamp: int, msg: object) -> None:
        q = self.queues[i]
        q[stamp] = msg
        while len(q) > self.queue_size:
            del q[min(q)]
        candidates = []
        for j, other in enumerate(self.queues):
            if j == i:
                continue
            near = sorted((abs(s - stamp), s) for s in other if abs(s - stamp) <= self.slop)
            if not near:
                return
            candidates.append([s for _, s in near])
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(i, stamp)
            if max(stamps) - min(stamps) < self.slop and all(s in qq for qq, s in zip(self.queues, stamps, strict=True)):
                self.out.append([qq[s] for qq, s in zip(self.queues, stamps, strict=True)])
                for qq, s in zip(self.queues, stamps, strict=True):
                    del qq[s]
                return


def _streams(seed: int, rates_hz: dict[str, float], jitter_ms: float, seconds: float):
    """Messages (arrival_ns, name, stamp_ns) of jittered periodic streams, arriving with random
    transport delay (so arrival order differs from stamp order across sensors)."""
    rng = random.Random(seed)
    t0 = 100 * NS
    events = []
    for name, hz in rates_hz.items():
        for k in range(int(seconds * hz)):
            stamp = t0 + int(k * NS / hz + rng.uniform(-jitter_ms, jitter_ms) * MS)
            events.append((stamp + int(rng.uniform(1, 15) * MS), name, stamp))
    return sorted(events)


@pytest.mark.parametrize("seed,rates,slop_ms,n_sets", [
    (0, {"rgb": 10, "depth": 10, "event": 10, "lidar": 10}, 30, 40),
    (1, {"rgb": 10, "depth": 10, "event": 10, "lidar": 10}, 30, 40),
    (2, {"rgb": 10, "depth": 20, "event": 10, "lidar": 20}, 16, 40),
    (3, {"rgb": 15, "depth": 30, "event": 15, "lidar": 10}, 12, 20),  # all four meet every 0.2 s
])
def test_same_sets_as_message_filters_on_complete_streams(seed, rates, slop_ms, n_sets):
    events = _streams(seed, rates, jitter_ms=4, seconds=4)
    clock = FakeClock(events[0][0])
    ours = make(clock, slop=slop_ms / 1000, timeout=0.2)
    mf = ApproximatePolicy(4, queue_size=10, slop_ns=slop_ms * MS)
    got = []
    for arrival, name, stamp in events:
        clock.t = arrival
        got += ours.add(name, stamp, (name, stamp))
        got += ours.poll()
        mf.add(NAMES.index(name), stamp, (name, stamp))
    clock.advance(500)
    got += ours.poll()
    ours_sets = [[fs.messages[n] for n in NAMES] for fs in got if fs.complete]
    if len(set(rates.values())) == 1:
        assert all(fs.complete for fs in got) and len(got) == 4 * rates["rgb"]
    assert len(mf.out) == n_sets
    assert ours_sets == mf.out


BAG_EPOCH = 1_700_000_000 * NS  # what `rmmss bag write` stamps; a live node's clock is years later


def _play_off_clock(sync, clock, seconds, names=("rgb", "depth"), skip=(), t_bag=BAG_EPOCH):
    """Sensors at 10 Hz stamped on the bag's epoch (not the clock's), arriving 8 ms after their
    stamp's slot; polled every 10 ms like the node. Returns (sets, next bag stamp)."""
    sets = []
    for k in range(int(seconds * 100)):
        if k % 10 == 0:
            for n in names[::-1]:
                if n not in skip:
                    sets += sync.add(n, t_bag, f"{n}@{t_bag}")
            t_bag += 100 * MS
        sets += sync.poll()
        clock.advance(10)
    return sets, t_bag


def test_reference_on_another_epoch_recovers_after_fallback_ticks():
    """Regression (rmmss demo on a bag, live): the node starts, the camera is silent for longer than
    its timeout, fallback ticks are emitted on the clock's time line; then the bag's camera frames
    arrive stamped years earlier. They used to be dropped as 'late' forever: no mask ever again."""
    clock = FakeClock(1_795_000_000 * NS)
    sync = make(clock, names=("rgb", "depth"), timeout=0.25, slop=0.05, fallback_rate_hz=10.0)
    idle, _ = _play_off_clock(sync, clock, 1.0, skip=("rgb", "depth"))
    assert idle and all(not fs.messages for fs in idle)  # ticks while nothing is connected
    sets, _ = _play_off_clock(sync, clock, 2.0)
    with_cam = [fs for fs in sets if "rgb" in fs.messages]
    # the reset on the first camera frame drops what was buffered before it, then all are complete
    assert len(with_cam) == 20 and all(fs.complete for fs in with_cam[1:])
    assert sync.stats["rgb"].late == 0 and sync.time_jumps == 1
    assert all(abs(fs.stamp_ns - BAG_EPOCH) < 10 * NS for fs in sets)  # output on the bag's time line


def test_fallback_ticks_follow_off_clock_stamps_and_reference_comes_back():
    """While an off-clock reference is dead, fallback ticks sit on the sensors' stamp time line, so
    the live sensors are used (not all 'late'); when the reference resumes it is used again."""
    clock = FakeClock(1_795_000_000 * NS)
    sync = make(clock, names=("rgb", "depth"), timeout=0.25, slop=0.05, fallback_rate_hz=10.0)
    before, t_bag = _play_off_clock(sync, clock, 1.0)
    outage, t_bag = _play_off_clock(sync, clock, 1.0, skip=("rgb",), t_bag=t_bag)
    after, _ = _play_off_clock(sync, clock, 1.0, t_bag=t_bag)
    assert len(before) == 10 and all(fs.complete for fs in before)
    ticks = [fs for fs in outage if fs.reference is None]
    assert len(ticks) >= 6 and all("depth" in fs.messages for fs in ticks)
    assert sum("rgb" in fs.messages for fs in after) >= 9
    assert sync.stats["depth"].late <= 1 and sync.time_jumps == 0
