"""``rmmss play BAG``: publish a bag over DDS at its recorded timing (``ros2 bag play`` stand-in).

Examples::

    rmmss play rosbags/sample
    rmmss play rosbags/sample --rate 2 --loop --remap /lidar/points:=/velodyne_points
    rmmss play rosbags/sample --drop lidar@3-8s,depth@flap=0.3/1s --clock
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="bag folder or .mcap/.db3 file")
    parser.add_argument("--rate", type=float, default=1.0, help="time scale (2 = twice as fast)")
    parser.add_argument("--loop", action="store_true", help="play again from the start until Ctrl-C")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="rename a topic")
    parser.add_argument("--topics", nargs="+", default=None, help="play only these topics")
    parser.add_argument("--drop", default="", help="failure schedule, e.g. lidar@10-20s,event@flap=0.3/1s")
    parser.add_argument("--seed", type=int, default=0, help="seed of flapping and corruptions")
    parser.add_argument("--sensor-topic", action="append", default=[], metavar="SENSOR=TOPIC",
                        help="which bag topic a schedule sensor is (default: the `rmmss bag write` topics)")
    parser.add_argument("--clock", action="store_true", help="also publish /clock (for use_sim_time)")
    parser.add_argument("--best-effort", action="store_true", help="BEST_EFFORT publishers (default RELIABLE)")
    parser.add_argument("--wait-for", nargs="+", default=[], metavar="TOPIC",
                        help="start only once these (published) topics have a subscriber")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before the first message")


def parse_remap(items: list[str]) -> dict[str, str]:
    """``["/a:=/b"]`` -> ``{"/a": "/b"}``; ValueError on a bad item."""
    out = {}
    for item in items:
        src, sep, dst = item.partition(":=")
        if not sep or not src.startswith("/") or not dst.startswith("/"):
            raise ValueError(f"bad remap {item!r}: expected /from:=/to")
        out[src] = dst
    return out


def options_from_args(args: argparse.Namespace):
    """PlayOptions from the parsed arguments."""
    from rmmss_ros.play.player import DEFAULT_SENSOR_TOPICS, PlayOptions
    from rmmss_ros.replay.schedule import Schedule, _sensor

    sensor_topics = dict(DEFAULT_SENSOR_TOPICS)
    for item in args.sensor_topic:
        sensor, sep, topic = item.partition("=")
        if not sep:
            raise ValueError(f"bad --sensor-topic {item!r}: expected SENSOR=TOPIC")
        sensor_topics[_sensor(sensor, item)] = (topic,)
    return PlayOptions(rate=args.rate, loop=args.loop, remap=parse_remap(args.remap),
                       topics=tuple(args.topics) if args.topics else None,
                       schedule=Schedule.parse(args.drop, seed=args.seed), sensor_topics=sensor_topics,
                       clock=args.clock, reliable=not args.best_effort, start_delay_s=args.delay,
                       wait_topics=tuple(args.wait_for))


def run(args: argparse.Namespace) -> int:
    from rmmss_core import early_stop

    # a stop while rclpy / the bag reader load exits 0 at once (`rmmss` arms this before importing
    # this module; armed again here for callers of run()): EarlyStop, caught by rmmss_core.cli.main
    early_stop.install()
    import rclpy

    from rmmss_ros.bag.reader import open_bag
    from rmmss_ros.play.player import Player

    opts = options_from_args(args)
    bag = open_bag(args.bag)
    print(bag.describe())
    print(f"schedule: {opts.schedule}")
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()
    # Ctrl-C / SIGTERM end playback cleanly (exit 0): our handlers stop the loop; rclpy's own
    # handlers are off, as they would invalidate the context under a publish in progress.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    early_stop.disarm()
    # our argv is not ROS arguments (a remap here would apply twice)
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node("rmmss_player")
        player = Player(node, bag, opts)
        try:
            stats = player.run(stop)
        except KeyboardInterrupt:
            stats = player.stats
        print(stats.summary())
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return 0
