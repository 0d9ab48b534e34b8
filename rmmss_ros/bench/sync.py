"""``make bench`` node section, synchroniser comparison: ours side by side with message_filters'
``ApproximateTimeSynchronizer`` (ROS 2 Jazzy, Python; from the ROS 2 underlay or /opt/ros/jazzy)
on one simulated stream: camera 30 Hz, depth 30 Hz, events 60 Hz, LiDAR 10 Hz, stamps jittered by
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


def compare(seconds: float = 20.0) -> tuple[dict, dict | None]:
    """(ours, message_filters or None when it is not installed) on the same stream; the LiDAR
    dies halfway."""
    events = stream(seconds, lidar_dies_at=seconds / 2)
    split = 100 * NS + int(seconds / 2 * NS)
    ours = run_ours(events, split)
    mf = import_message_filters()
    return ours, (run_message_filters(mf, events, split) if mf is not None else None)


if __name__ == "__main__":
    print(compare(10.0))
