"""Publish a bag live over DDS with its original timing: the stand-in for ``ros2 bag play``.

Messages go out as raw CDR bytes (``Publisher.publish(bytes)``), untouched, at their recorded
receive times scaled by ``rate``; the header stamps stay as recorded (like ``ros2 bag play``).
A :class:`~rmmss_ros.replay.schedule.Schedule` drops or corrupts sensors on bag time; corrupted
messages are decoded, damaged and re-encoded with the rosbags typestore.
"""
from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmmss_ros.bag import messages as M
from rmmss_ros.bag.reader import BagReader, open_bag
from rmmss_ros.bag.writer import DEFAULT_TOPICS
from rmmss_ros.replay.schedule import Schedule

log = logging.getLogger(__name__)

DEFAULT_SENSOR_TOPICS: dict[str, tuple[str, ...]] = {  # raw topics and image_transport's compressed ones
    "rgb": (DEFAULT_TOPICS["rgb"], DEFAULT_TOPICS["rgb"] + "/compressed"),
    "depth": (DEFAULT_TOPICS["depth"], DEFAULT_TOPICS["depth"] + "/compressedDepth"),
    "event": (DEFAULT_TOPICS["event"], DEFAULT_TOPICS["event"] + "/compressed"), "lidar": (DEFAULT_TOPICS["lidar"],),
}
# /tf_static is latched (robot_state_publisher): TRANSIENT_LOCAL, so late subscribers get it too
LATCHED_TOPICS = ("/tf_static",)


def message_class(msgtype: str) -> type:
    """The rclpy message class of ``pkg/msg/Name``; ValueError if the package is not installed."""
    pkg, _, name = msgtype.partition("/msg/")
    if not pkg or not name:
        raise ValueError(f"bad message type name {msgtype!r}: expected pkg/msg/Name")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"message type {msgtype} is not installed for rclpy ({e})") from e


@dataclass
class PlayStats:
    """What was played: per output topic counts, per sensor drops and corruptions, lateness."""

    published: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    corrupted: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    loops: int = 0
    max_late_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"published {sum(self.published.values())} messages on {len(self.published)} topics"
                 f" ({self.loops} loop(s)), worst lateness {self.max_late_s * 1e3:.1f} ms"]
        lines += [f"  {t}: {n}" for t, n in sorted(self.published.items())]
        if self.dropped:
            lines.append("  dropped by schedule: " + ", ".join(f"{s} {n}" for s, n in sorted(self.dropped.items())))
        if self.corrupted:
            lines.append("  corrupted: " + ", ".join(f"{s} {n}" for s, n in sorted(self.corrupted.items())))
        lines += [f"  skipped {t}: {why}" for t, why in sorted(self.skipped_topics.items())]
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass
class PlayOptions:
    """rate: time scale (2 = twice as fast); loop: replay forever (until stop); remap: bag topic
    -> published topic; topics: only these bag topics (None = all); sensor_topics: which bag
    topics the schedule's sensors are; clock: also publish /clock; reliable: RELIABLE QoS
    (connects to BEST_EFFORT and RELIABLE subscribers alike)."""

    rate: float = 1.0
    loop: bool = False
    remap: Mapping[str, str] = field(default_factory=dict)
    topics: tuple[str, ...] | None = None
    schedule: Schedule = field(default_factory=Schedule)
    sensor_topics: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_SENSOR_TOPICS))
    clock: bool = False
    reliable: bool = True
    depth: int = 10
    start_delay_s: float = 0.0
    wait_topics: tuple[str, ...] = ()
    wait_timeout_s: float = 30.0
    max_loops: int | None = None

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError(f"play rate must be > 0, got {self.rate}")


class Player:
    """Plays one bag on an rclpy node. ``run(stop)`` blocks until the end (or ``stop`` is set)."""

    def __init__(self, node: Any, bag: str | Path | BagReader, opts: PlayOptions | None = None,
                 on_message: Callable[[str, float], None] | None = None):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        self.node, self.opts, self.on_message = node, opts or PlayOptions(), on_message
        self.bag = bag if isinstance(bag, BagReader) else open_bag(bag)
        self.stats = PlayStats(problems=list(self.bag.problems))
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.opts.depth,
                         reliability=ReliabilityPolicy.RELIABLE if self.opts.reliable else ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.VOLATILE)
        self.sensor_of = {t: s for s, ts in self.opts.sensor_topics.items() for t in ts}
        self.publishers: dict[str, Any] = {}
        wanted = self.bag.topics if self.opts.topics is None else {
            t: self.bag.topics[t] for t in self.opts.topics if t in self.bag.topics}
        for t in set(self.opts.topics or ()) - set(self.bag.topics):
            self.stats.skipped_topics[t] = "not in the bag"
        for topic, msgtype in wanted.items():
            try:
                cls = message_class(msgtype)
            except ValueError as e:
                self.stats.skipped_topics[topic] = str(e)
                log.warning("bag %s: skipping topic %s: %s", self.bag.path, topic, e)
                continue
            q = qos if topic not in LATCHED_TOPICS else QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.publishers[topic] = node.create_publisher(cls, self.opts.remap.get(topic, topic), q)
        if not self.publishers:
            raise ValueError(f"bag {self.bag.path}: no topic can be published ({self.stats.skipped_topics})")
        self.clock_pub = None
        if self.opts.clock:
            from rosgraph_msgs.msg import Clock
            self.clock_pub = node.create_publisher(Clock, "/clock", 10)

    def run(self, stop: threading.Event | None = None) -> PlayStats:
        """Publish at the recorded times; returns the stats (also at ``self.stats``)."""
        stop = stop or threading.Event()
        if not self.wait_for_subscribers(stop) or stop.wait(self.opts.start_delay_s):
            return self.stats
        duration_ns = self.bag.end_ns - self.bag.start_ns
        for text in self.opts.schedule.unreached(duration_ns / 1e9):  # said aloud, as replay does
            log.warning("%s", text)
            self.stats.problems.append(text)
        wall0 = time.monotonic()
        offset_s = 0.0  # bag seconds played in earlier loops
        while not stop.is_set():
            for msg in self.bag.messages(self.publishers):
                t_bag = (msg.log_ns - self.bag.start_ns) / 1e9
                target = wall0 + (offset_s + t_bag) / self.opts.rate
                if stop.wait(max(0.0, target - time.monotonic())):
                    break
                self.stats.max_late_s = max(self.stats.max_late_s, time.monotonic() - target)
                self._publish(msg.topic, msg.msgtype, msg.raw, t_bag)
                if self.clock_pub is not None:
                    self._publish_clock(msg.log_ns)
            self.stats.loops += 1
            for p in self.bag.problems:
                if p not in self.stats.problems:
                    self.stats.problems.append(p)
            if not self.opts.loop or (self.opts.max_loops and self.stats.loops >= self.opts.max_loops):
                break
            offset_s += duration_ns / 1e9 + 0.1
        return self.stats

    def wait_for_subscribers(self, stop: threading.Event) -> bool:
        """Block until every (published-name) topic of ``opts.wait_topics`` has a matched
        subscriber; False if stopped, ValueError after ``wait_timeout_s``."""
        by_name = {self.opts.remap.get(t, t): p for t, p in self.publishers.items()}
        unknown = [t for t in self.opts.wait_topics if t not in by_name]
        if unknown:
            raise ValueError(f"cannot wait for {unknown}: not published from bag {self.bag.path}")
        deadline = time.monotonic() + self.opts.wait_timeout_s
        while True:
            waiting = [t for t in self.opts.wait_topics if by_name[t].get_subscription_count() == 0]
            if not waiting:
                return True
            if time.monotonic() > deadline:
                raise ValueError(f"no subscriber on {waiting} after {self.opts.wait_timeout_s:.0f} s")
            if stop.wait(0.05):
                return False

    def _publish(self, topic: str, msgtype: str, raw: bytes, t_bag: float) -> None:
        sensor = self.sensor_of.get(topic)
        if sensor is not None and self.opts.schedule.rules:
            if self.opts.schedule.dropped(sensor, t_bag):
                self.stats.dropped[sensor] = self.stats.dropped.get(sensor, 0) + 1
                return
            if any(r.sensor == sensor and r.active(t_bag) for r in self.opts.schedule.rules):
                msg = self.opts.schedule.apply(sensor, t_bag, M.deserialize(raw, msgtype))
                raw = M.serialize(msg)
                self.stats.corrupted[sensor] = self.stats.corrupted.get(sensor, 0) + 1
            elif any(r.sensor == sensor and r.action == "freeze" for r in self.opts.schedule.rules):
                self.opts.schedule.apply(sensor, t_bag, M.deserialize(raw, msgtype))  # last good one
        self.publishers[topic].publish(raw)
        name = self.opts.remap.get(topic, topic)
        self.stats.published[name] = self.stats.published.get(name, 0) + 1
        if self.on_message is not None:
            self.on_message(name, t_bag)

    def _publish_clock(self, log_ns: int) -> None:
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        self.clock_pub.publish(Clock(clock=Time(sec=log_ns // 1_000_000_000, nanosec=log_ns % 1_000_000_000)))

