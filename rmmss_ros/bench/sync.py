"""``make bench`` node section, synchroniser comparison: ours side by side with message_filters'
``ApproximateTimeSynchronizer`` (ROS 2 Jazzy, Python; from /opt/ros/jazzy where installed, else
its policy through our re-implementation :class:`ApproximatePolicy`, sets only) on one simulated
stream: camera 30 Hz, depth 30 Hz, events 60 Hz, LiDAR 10 Hz, stamps jittered by
+-2 ms, transport delays 3-15 ms, slop 50 ms, queue 10. Measured: CPU per message (process time,
polls included for ours), sets per camera frame, share of sets with the LiDAR, and sets per camera
frame after the LiDAR dies (second half of the run).

message_filters' policy (ros2/message_filters@jazzy:src/message_filters/__init__.py,
ApproximateTimeSynchronizer.add): a set is emitted only when every input has a message within slop
of the new one, and the emitted messages are removed, so each LiDAR scan is used once and a dead
input stops all output.
"""
from __future__ import annotations

import glob
import itertools
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from rmmss_ros.sync.synchronizer import NS, SensorConfig, Synchronizer

RATES = {"rgb": 30.0, "depth": 30.0, "event": 60.0, "lidar": 10.0}
SLOP_S, QUEUE = 0.05, 10
ROOT = Path(__file__).resolve().parents[2]


def import_message_filters():
    """message_filters from this Python, else from the project's ROS 2 underlay or /opt/ros/jazzy
    (pure Python; appended to sys.path for the import only, then removed again, so the rest of the
    process does not see the underlay's other packages, e.g. an event_camera_msgs whose C type
    support is not on the library path). None if none has it."""
    try:
        import message_filters
        return message_filters
    except ImportError:
        pass
    for pattern in (str(ROOT / ".ros2-underlay/venv/lib/python*/site-packages"),
                    "/opt/ros/jazzy/lib/python3*/site-packages"):
        for site in glob.glob(pattern):
            if Path(site, "message_filters", "__init__.py").is_file():
                sys.path.append(site)
                try:
                    import message_filters
                    return message_filters
                except ImportError:
                    pass
                finally:
                    sys.path.remove(site)
    return None


class ApproximatePolicy:
    """Our re-implementation of message_filters' Python ApproximateTimeSynchronizer (ROS 2 Jazzy;
    read at ros2/message_filters@03ccc026d2d0:src/message_filters/__init__.py,
    ``ApproximateTimeSynchronizer.add``), the reference where message_filters is not installed
    (this environment: ../shared/ros2-jazzy builds message packages only). ``test/test_sync.py``
    checks that our Synchronizer forms the same sets on complete streams. The policy: each input keeps a dict stamp -> msg bounded to
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


def stream(seconds: float, lidar_dies_at: float | None, seed: int = 0) -> list[tuple[int, str, int]]:
    """(arrival_ns, sensor, stamp_ns) sorted by arrival."""
    rng = random.Random(seed)
    t0 = 100 * NS
    ev = []
    for name, hz in RATES.items():
        for k in range(int(seconds * hz)):
            s = t0 + int(k * NS / hz + rng.uniform(-2, 2) * 1e6)
            if name == "lidar" and lidar_dies_at is not None and s - t0 >= lidar_dies_at * NS:
                break
            ev.append((s + int(rng.uniform(3, 15) * 1e6), name, s))
    return sorted(ev)


def run_ours(events, window) -> dict:
    clock = SimpleNamespace(t=events[0][0])
    sync = Synchronizer([SensorConfig(m, SLOP_S, 0.0, 0.25) for m in RATES], lambda: clock.t, reference="rgb",
                        queue_size=QUEUE)
    sets = []
    next_poll = events[0][0]
    c0 = time.process_time()
    for arrival, name, stamp in events:
        while next_poll <= arrival:  # the node polls every 10 ms
            clock.t = next_poll
            sets += sync.poll()
            next_poll += 10_000_000
        clock.t = arrival
        sets += sync.add(name, stamp, name)
    clock.t += NS
    sets += sync.poll()
    cpu_us = (time.process_time() - c0) / len(events) * 1e6
    return _summary(cpu_us, [(fs.stamp_ns, set(fs.messages)) for fs in sets], events, window)


def run_message_filters(mf, events, window) -> dict:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    filters = {m: mf.SimpleFilter() for m in RATES}
    sync = mf.ApproximateTimeSynchronizer(list(filters.values()), QUEUE, SLOP_S)
    sets = []
    names = list(RATES)
    sync.registerCallback(lambda *msgs: sets.append(
        (msgs[0].header.stamp.sec * NS + msgs[0].header.stamp.nanosec, {names[i] for i in range(len(msgs))})))
    msgs = [SimpleNamespace(header=Header(stamp=Time(sec=s // NS, nanosec=s % NS))) for _, _, s in events]
    c0 = time.process_time()
    for (_, name, _), msg in zip(events, msgs, strict=True):
        filters[name].signalMessage(msg)
    cpu_us = (time.process_time() - c0) / len(events) * 1e6
    return _summary(cpu_us, sets, events, window)


def run_reference(events, window) -> dict:
    """message_filters' policy through :class:`ApproximatePolicy` on the same stream. Its CPU time
    is not message_filters' (other code), so it is not reported."""
    names = list(RATES)
    policy = ApproximatePolicy(len(names), QUEUE, int(SLOP_S * NS))
    for _, name, stamp in events:
        policy.add(names.index(name), stamp, stamp)
    return _summary(None, [(msgs[0], set(names)) for msgs in policy.out], events, window)


def _summary(cpu_us, sets, events, window) -> dict:
    """sets: (reference stamp, present sensors); window: (t_split_ns) first half healthy."""
    split = window
    cams_before = sum(1 for _, n, s in events if n == "rgb" and s < split)
    cams_after = sum(1 for _, n, s in events if n == "rgb" and s >= split)
    before = [p for s, p in sets if s < split]
    after = [s for s, _ in sets if s >= split]
    return {"cpu_us_per_message": cpu_us,
            "sets_per_camera_frame": len(before) / max(1, cams_before),
            "share_of_sets_with_lidar": sum("lidar" in p for p in before) / max(1, len(before)),
            "sets_per_camera_frame_lidar_dead": len(after) / max(1, cams_after)}


def compare(seconds: float = 20.0) -> tuple[dict, dict, str]:
    """(ours, message_filters' sets, where those come from) on the same stream; the LiDAR dies
    halfway. Source ``"message_filters"`` (installed: measured, CPU included) or ``"reference"``
    (not installed: :class:`ApproximatePolicy`, sets only)."""
    events = stream(seconds, lidar_dies_at=seconds / 2)
    split = 100 * NS + int(seconds / 2 * NS)
    ours = run_ours(events, split)
    mf = import_message_filters()
    if mf is not None:
        return ours, run_message_filters(mf, events, split), "message_filters"
    return ours, run_reference(events, split), "reference"


if __name__ == "__main__":
    print(compare(10.0))
