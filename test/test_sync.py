"""Synchronizer unit tests (no ROS): completeness, deadlines, dead sensors, late/duplicate/out-of-order
messages, time jumps, flapping, bounded memory, rate mode, and agreement with message_filters'
ApproximateTimeSynchronizer policy on complete streams."""
from __future__ import annotations

import random

import pytest

from rmmss_ros.bench.sync import ApproximatePolicy
from rmmss_ros.sync.synchronizer import NS, SensorConfig, Synchronizer

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


def test_late_messages_counted_kept_while_useful_and_reference_reordering_window():
    clock = FakeClock()
    sync = make(clock)  # reorder window 100 ms (default)
    t = clock.t
    sync.add("rgb", t, "cam")
    clock.advance(150)
    (fs,) = sync.poll()
    assert set(fs.missing) == {"depth", "event", "lidar"}
    assert sync.add("depth", t + 1 * MS, "late-d") == []
    assert sync.add("lidar", t - 5 * MS, "late-l") == []
    assert sync.stats["depth"].late == 1 and sync.stats["lidar"].late == 1  # missed their set
    assert sync.buffered()["depth"] == 1  # kept: may still serve a reordered or later reference
    # a reference 10 ms older than the emitted set is inside the reordering window: processed
    out = sync.add("rgb", t - 10 * MS, "reordered-cam")
    clock.advance(150)
    out += sync.poll()
    assert [(f.stamp_ns, f.messages.get("depth")) for f in out] == [(t - 10 * MS, "late-d")]
    assert sync.stats["rgb"].late == 0
    sync.add("rgb", t - 200 * MS, "too-old-cam")  # beyond the window: late
    assert sync.stats["rgb"].late == 1 and sync.pending == 0
    # far too old for anything to come: dropped
    sync.add("depth", t - 500 * MS, "stale-d")
    assert sync.stats["depth"].late == 2 and sync.buffered()["depth"] == 1

    clock = FakeClock()
    sync = make(clock, reorder_window_s=0.0)  # no reordering: an older reference is late
    t = clock.t
    sync.add("rgb", t, "cam")
    clock.advance(150)
    sync.poll()
    sync.add("rgb", t - 10 * MS, "late-cam")
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
    assert sync.stats["lidar"].late == 0  # l2 came after c2, but c2 had a LiDAR scan: not late


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
    # bag loop: stamps restart 10 s earlier (the clock keeps running). Each sensor's first message
    # on the new time line is held back until its second one confirms it; then both are used.
    sets = []
    for k in range(5):
        sets += feed_frame(sync, clock, t0 - 10 * NS + k * 100 * MS)
        clock.advance(100)
    assert [fs.stamp_ns for fs in sets] == [t0 - 10 * NS + k * 100 * MS for k in range(5)]
    assert all(fs.complete for fs in sets)
    assert sync.time_jumps == 1 and all(sync.stats[n].jumps == 1 for n in NAMES)
    assert all(sync.stats[n].implausible == 0 for n in NAMES)
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


# ------------------------------------------------------------ sensors at their own rates (issue 11)
def _simulate(sync, clock, events, poll_ms=10, tail_ms=600):
    """Feed (arrival_ns, name, stamp_ns) in arrival order, polling every ``poll_ms`` like the node.
    Returns [(emission_ns, FrameSet)]."""
    out = []
    events = sorted(events, key=lambda e: e[0])
    t, i, end = events[0][0], 0, events[-1][0] + tail_ms * MS
    while t <= end:
        while i < len(events) and events[i][0] <= t:
            arrival, name, stamp = events[i]
            clock.t = arrival
            out += [(arrival, fs) for fs in sync.add(name, stamp, (name, stamp))]
            i += 1
        clock.t = t
        out += [(t, fs) for fs in sync.poll()]
        t += poll_ms * MS
    return out


def _periodic(name, hz, seconds, t0=100 * NS, phase_ms=0.0, delay_ms=5.0, stamp=None):
    """(arrival, name, stamp) of a periodic sensor; ``stamp(k, s)`` may rewrite stamp k."""
    ev = []
    for k in range(int(seconds * hz)):
        s = t0 + int((k / hz) * NS + phase_ms * MS)
        ev.append((s + int(delay_ms * MS), name, stamp(k, s) if stamp else s))
    return ev


def _rates(seconds=4.0, lidar_phase_ms=7.0, **stamp_fns):
    return [*_periodic("rgb", 30, seconds, delay_ms=8, stamp=stamp_fns.get("rgb")),
            *_periodic("depth", 30, seconds, phase_ms=2, delay_ms=6, stamp=stamp_fns.get("depth")),
            *_periodic("event", 30, seconds, phase_ms=-3, delay_ms=3, stamp=stamp_fns.get("event")),
            *_periodic("lidar", 10, seconds + 0.1, phase_ms=lidar_phase_ms, delay_ms=12, stamp=stamp_fns.get("lidar"))]


def _default_sync(clock, **kw):
    return Synchronizer([SensorConfig(n, slop_s=0.05, timeout_s=0.25, reuse=kw.pop(f"{n}_reuse", True))
                         for n in NAMES], clock, reference="rgb", **kw)


def test_slow_lidar_serves_every_camera_frame_within_its_slop():
    """Issue 11 #1: 30 Hz camera/depth/events + 10 Hz LiDAR, slop 50 ms: every camera stamp lies
    within 50 ms of a scan, so every set must carry the LiDAR (old code: 33%, each scan used once)."""
    clock = FakeClock(100 * NS)
    sync = _default_sync(clock)
    out = _simulate(sync, clock, _rates())
    sets = [fs for _, fs in out]
    assert len(sets) == 120 and len({fs.stamp_ns for fs in sets}) == 120
    assert all(fs.complete for fs in sets)
    assert sync.stats["lidar"].used == 120 and sync.stats["lidar"].received == 41
    # policy per sensor: reuse=False is message_filters' rule, one set per scan
    clock = FakeClock(100 * NS)
    sync = _default_sync(clock, lidar_reuse=False)
    sets = [fs for _, fs in _simulate(sync, clock, _rates())]
    assert len(sets) == 120 and sum("lidar" in fs.messages for fs in sets) == 41


def test_camera_frames_out_of_order_within_the_window_are_processed():
    """Issue 11 #2: camera frames swapped in pairs (33 ms out of order) -> every frame emitted once
    (old code: 50% dropped as late)."""
    clock = FakeClock(100 * NS)
    sync = _default_sync(clock)
    ev = [e for e in _rates() if e[1] != "rgb"]
    cams = _periodic("rgb", 30, 4.0, delay_ms=8)
    for k in range(0, len(cams) - 1, 2):  # frame k arrives after frame k+1
        (_, n0, s0), (a1, n1, s1) = cams[k], cams[k + 1]
        ev += [(a1 + 1 * MS, n0, s0), (a1, n1, s1)]
    sets = [fs for _, fs in _simulate(sync, clock, ev)]
    assert sorted(fs.stamp_ns for fs in sets) == sorted(s for _, _, s in cams)
    assert sum(fs.complete for fs in sets) >= 0.95 * len(cams) and sync.stats["rgb"].late == 0


@pytest.mark.parametrize("victim", NAMES)
def test_implausible_stamps_rejected_counted_and_cost_no_frame_of_the_others(victim):
    """Issue 11 #3: one message with stamp 0, -100 s or +1e6 s every third frame of one sensor:
    rejected and counted; every other sensor's frames are still used (old code: resets, 75% lost)."""
    bad = [0, -100 * NS, 1_000_000 * NS]
    fuzz = {victim: lambda k, s: bad[(k // 3) % 3] if k % 3 == 1 else s}
    clock = FakeClock(100 * NS)
    sync = _default_sync(clock)
    ev = _rates(**fuzz)
    sets = [fs for _, fs in _simulate(sync, clock, ev)]
    n_bad = sum(1 for _, n, s in ev if n == victim and s in bad)
    assert sync.stats[victim].implausible == n_bad and sync.time_jumps == 0
    good_cams = 120 - (n_bad if victim == "rgb" else 0)
    assert len(sets) == good_cams
    for other in NAMES:
        if other != victim:
            assert all(other in fs.messages for fs in sets), other
    if victim in ("depth", "event"):  # the good two of every three are used
        assert sum(victim in fs.messages for fs in sets) >= 120 - n_bad


def test_out_of_sync_sensor_detected_with_offset_and_stops_adding_wait():
    """Issue 11 #4: depth stamps 1000 s off: flagged within a few frames with its measured offset;
    afterwards sets are emitted without waiting for it (old code: every frame waited ~250 ms)."""
    clock = FakeClock(1000 * NS)
    sync = _default_sync(clock)
    ev = [(a, n, s - 1000 * NS if n == "depth" else s) for a, n, s in _rates()]
    ev = [(a + 900 * NS, n, s + 900 * NS) for a, n, s in ev]
    out = _simulate(sync, clock, ev)
    st = sync.stats["depth"]
    assert "out of sync" in st.out_of_sync and abs(st.offset_ms + 1_000_000) < 50
    assert f"measured offset {st.offset_ms:+.1f} ms" in st.out_of_sync
    arrivals = {s: a for a, n, s in ev if n == "rgb"}
    waits = [(t - arrivals[fs.stamp_ns]) / MS for t, fs in out]
    assert len(out) == 120 and max(waits[10:]) < 60  # no more waiting for depth (LiDAR: < 50 ms)
    assert all(fs.missing == ("depth",) for _, fs in out)


def test_flapping_sensor_flagged_and_recovers_when_steady():
    """Issue 11 #4: events on/off every 0.2-0.5 s: flagged as flapping; afterwards most frames no
    longer wait for it; once steady for recover_s it is waited for again."""
    rng = random.Random(3)
    on, t_switch, windows = True, 0.0, []
    while t_switch < 6.0:
        d = rng.uniform(0.2, 0.5)
        windows.append((t_switch, t_switch + d, on))
        t_switch, on = t_switch + d, not on

    def alive(s):
        x = (s - 100 * NS) / NS
        return x >= 6.0 or any(a <= x < b and o for a, b, o in windows)

    clock = FakeClock(100 * NS)
    sync = _default_sync(clock)
    ev = [e for e in _rates(seconds=10.0) if e[1] != "event" or alive(e[2])]
    out = _simulate(sync, clock, ev)
    arrivals = {s: a for a, n, s in ev if n == "rgb"}
    waits = [(t - arrivals[fs.stamp_ns]) / MS for t, fs in out]
    flapping = [w for (t, fs), w in zip(out, waits, strict=True) if fs.stamp_ns < 106 * NS]
    assert sum(w > 60 for w in flapping[60:]) <= 0.1 * len(flapping[60:])
    assert sync.stats["event"].missed > 0
    assert sync.out_of_sync("event") == ""  # steady since 6 s: recovered
    late = [fs for _, fs in out if fs.stamp_ns > 109 * NS]
    assert late and all(fs.complete for fs in late)


def test_flag_reported_while_flapping():
    clock = FakeClock(100 * NS)
    sync = _default_sync(clock)
    ev = [e for e in _rates(seconds=3.0) if e[1] != "event" or int((e[2] - 100 * NS) / (0.3 * NS)) % 2 == 0]
    _simulate(sync, clock, ev)
    assert "flapping" in sync.out_of_sync("event")
    assert sync.out_of_sync("lidar") == "" and sync.out_of_sync("depth") == ""


def test_a_single_outage_is_not_out_of_sync():
    clock = FakeClock(100 * NS)
    sync = _default_sync(clock)
    ev = [e for e in _rates(seconds=4.0) if not (e[1] == "lidar" and 101 * NS < e[2] < 102 * NS)]
    _simulate(sync, clock, ev)
    assert all(sync.out_of_sync(n) == "" for n in NAMES)


# ---------------------------------------------------------------- planted bugs (issue 15)
def test_fast_reference_emitting_a_set_keeps_what_the_next_set_needs():
    """Camera period under twice the slop: slop 20 ms, depth at +1 and +15 ms, camera at 0 and
    +33 ms: the second set must be complete (pruning must not drop depth +15 on the first emit)."""
    for reuse in (True, False):
        clock = FakeClock()
        sync = Synchronizer([SensorConfig("rgb", 0.02, timeout_s=0.1), SensorConfig("depth", 0.02, timeout_s=0.1,
                                                                                 reuse=reuse)],
                            clock, reference="rgb")
        t = clock.t
        sync.add("depth", t + 1 * MS, "d1")
        sync.add("depth", t + 15 * MS, "d2")
        (a,) = sync.add("rgb", t, "c1")
        clock.advance(33)
        (b,) = sync.add("rgb", t + 33 * MS, "c2")
        assert a.messages["depth"] == "d1" and b.complete and b.messages["depth"] == "d2"


def test_repeated_reference_stamp_is_published_once():
    clock = FakeClock()
    sync = make(clock, names=("rgb", "depth"))
    t = clock.t
    sync.add("depth", t, "d")
    (fs,) = sync.add("rgb", t, "c")
    clock.advance(40)
    assert sync.add("rgb", t, "c-again") == [] and sync.poll() == []
    clock.advance(200)
    assert sync.poll() == [] and sync.stats["rgb"].duplicate == 1 and sync.sets_emitted == 1


def test_message_exactly_one_slop_away_is_matched():
    for d in (20, -20):
        clock = FakeClock()
        sync = make(clock, names=("rgb", "depth"), slop=0.02)
        t = clock.t
        sync.add("depth", t + d * MS, "edge")
        (fs,) = sync.add("rgb", t, "c")
        assert fs.complete and fs.messages["depth"] == "edge"
    clock = FakeClock()
    sync = make(clock, names=("rgb", "depth"), slop=0.02)
    sync.add("depth", clock.t + 20 * MS + 1, "beyond")
    assert sync.add("rgb", clock.t, "c") == []


def test_expired_counts_only_messages_that_never_served_a_set():
    """Issue 11 follow-up #4: the old ``unmatched`` counter counted every buffered message pruned
    once too old, used or not: a healthy 10 Hz LiDAR read received=41 used=120 unmatched~40.
    ``expired_unused`` counts only those that never served any frame set; ``used_messages``
    counts the distinct messages used."""
    clock = FakeClock(100 * NS)
    sync = _default_sync(clock)
    _simulate(sync, clock, _rates())
    lidar = sync.stats["lidar"]
    assert lidar.used == 120 and lidar.received == 41
    assert lidar.expired_unused == 0 and not hasattr(lidar, "unmatched")
    assert 39 <= lidar.used_messages <= 41  # the last scans may still be buffered
    # a sensor whose messages all miss the camera stamps by more than slop: every pruned one counts
    clock = FakeClock(100 * NS)
    sync = Synchronizer([SensorConfig("rgb"), SensorConfig("lidar", slop_s=0.01, timeout_s=0.25)], clock,
                        reference="rgb")
    for _ in range(20):
        sync.add("lidar", clock.t + 50 * MS, "scan")  # 50 ms off every camera stamp (100 ms apart)
        sync.add("rgb", clock.t, "cam")
        clock.advance(100)
        sync.poll()
    st = sync.stats["lidar"]
    assert st.used == 0 and st.used_messages == 0
    assert st.expired_unused >= 15 and st.expired_unused + len(sync._buffers["lidar"].times) == 20


@pytest.mark.parametrize(("late_by_ms", "partner_ms"), [(99, -119), (100, -120)],
                         ids=["almost-the-window", "exactly-the-window"])
def test_pruning_keeps_what_a_reference_late_by_the_whole_window_still_needs(late_by_ms, partner_ms):
    """After a set is emitted at t, a reference may still come down to ``t - reorder_window`` (inclusive)
    and match a message up to ``slop`` older than itself: emitting must not drop that message. The
    mutation audit's surviving mutant cut at ``floor`` instead of ``floor - slop``; exactly at the
    window's end is the off-by-one edge (the slop is inclusive)."""
    clock = FakeClock()
    sync = make(clock, names=("rgb", "depth"), slop=0.02, reorder_window_s=0.1)
    t = clock.t
    sync.add("depth", t + partner_ms * MS, "old-depth")
    sync.add("depth", t, "depth@t")
    (first,) = sync.add("rgb", t, "cam@t")
    assert first.messages["depth"] == "depth@t"
    assert sync.buffered()["depth"] == 2
    (late,) = sync.add("rgb", t - late_by_ms * MS, "late-cam")
    assert late.messages == {"rgb": "late-cam", "depth": "old-depth"} and late.missing == ()
    assert sync.stats["rgb"].late == 0
