"""``rmmss bag write DATASET OUT`` and ``rmmss bag info BAG``.

Examples::

    rmmss bag write data/synth rosbags/sample --frames 150 --events points --depth 16UC1
    rmmss bag write data/synth out.bag --storage sqlite3 --rate lidar=5 --jitter lidar=0.004
    rmmss bag info rosbags/sample
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from rmmss_ros.bag.writer import DEFAULT_TOPICS, BagWriteOptions, with_timing

SENSORS = ("rgb", "depth", "event", "lidar")



def _jpeg_quality(text: str) -> int:
    """argparse type: image_transport's jpeg_quality range, 1..100."""
    try:
        q = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= q <= 100:
        raise argparse.ArgumentTypeError(f"{q} is outside 1..100 (compressed_image_transport's jpeg_quality)")
    return q


def _depth_max(text: str) -> float:
    """argparse type: compressedDepth's depth_max in metres, > 0 (every farther pixel is dropped)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"{v} m: must be > 0 (depth at or beyond it is dropped, so {v} drops "
                                         "every pixel)")
    return v

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    w = sub.add_parser("write", help="write a dataset sequence (with raw/ sensor data) to a rosbag2")
    w.add_argument("dataset", help="dataset root in the DELIVER layout with raw/ (from `rmmss synth`)")
    w.add_argument("out", help="output bag folder")
    w.add_argument("--sequence", default=None, help="condition/split/sequence (default: the first)")
    w.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    w.add_argument("--depth", choices=("32FC1", "16UC1"), default="32FC1",
                   help="depth image encoding: 32FC1 metres (NaN invalid) or 16UC1 millimetres (0 invalid)")
    w.add_argument("--events", choices=("points", "frame"), default="points",
                   help="raw events as PointCloud2 (x, y, t, polarity) or the event-frame Image")
    w.add_argument("--frames", type=int, default=None, help="write at most this many frames")
    w.add_argument("--rate", action="append", default=[], metavar="SENSOR=HZ",
                   help=f"a sensor's own rate ({', '.join(SENSORS)}); default: every frame")
    w.add_argument("--jitter", action="append", default=[], metavar="SENSOR=S",
                   help="std of a sensor's header-stamp jitter in seconds")
    w.add_argument("--topic", action="append", default=[], metavar="KEY=TOPIC",
                   help=f"topic names, keys {', '.join(DEFAULT_TOPICS)}")
    w.add_argument("--seed", type=int, default=0, help="seed of the timing jitter")
    w.add_argument("--compress", action="store_true", help="zstd-compressed mcap chunks")
    w.add_argument("--lidar-crop", action="store_true",
                   help="keep only LiDAR points inside the camera view (the model input is unchanged)")
    w.add_argument("--transport", choices=("raw", "compressed"), default="raw",
                   help="compressed: the camera as image_transport's compressed jpeg on <topic>/compressed, "
                        "depth as compressedDepth png on <topic>/compressedDepth (what robots record)")
    w.add_argument("--jpeg-quality", type=_jpeg_quality, default=95, help="jpeg quality of --transport compressed")
    w.add_argument("--depth-max", type=_depth_max, default=10.0,
                   help="compressedDepth's depth_max in metres (the plugin's default 10): farther depth is dropped; "
                        "65.535 keeps every 16UC1 value")
    w.add_argument("--tf", action="store_true",
                   help="write the LiDAR extrinsic as a /tf_static chain (base_link -> lidar, base_link -> "
                        "camera_link -> camera_optical_frame) instead of the bag's custom data")
    w.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    c = sub.add_parser("compress", help="rewrite a bag's raw images as image_transport's compressed / "
                                        "compressedDepth topics (what robots record)")
    c.add_argument("bag", help="input bag")
    c.add_argument("out", help="output bag folder (new)")
    c.add_argument("--jpeg", action="append", default=None, metavar="TOPIC",
                   help="Image topic sent as jpeg on TOPIC/compressed (default /camera/image_raw)")
    c.add_argument("--png", action="append", default=None, metavar="TOPIC",
                   help="Image topic sent as lossless png on TOPIC/compressed (default /events)")
    c.add_argument("--depth", action="append", default=None, metavar="TOPIC",
                   help="depth Image topic sent as compressedDepth png (default /depth/image_raw)")
    c.add_argument("--jpeg-quality", type=_jpeg_quality, default=95, help="1..100")
    c.add_argument("--depth-max", type=_depth_max, default=10.0, help="compressedDepth's depth_max (m)")
    c.add_argument("--tf", action="store_true", help="move the custom LiDAR extrinsic onto /tf_static")
    i = sub.add_parser("info", help="topics, types, counts and duration (like `ros2 bag info`)")
    i.add_argument("bag", help="bag folder or .mcap/.db3 file")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"bad {what} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def options_from_args(args: argparse.Namespace) -> BagWriteOptions:
    """BagWriteOptions from the parsed ``write`` arguments."""
    topics = dict(DEFAULT_TOPICS)
    for key, topic in _pairs(args.topic, "--topic").items():
        if key not in topics:
            raise ValueError(f"unknown topic key {key!r}; use one of {sorted(topics)}")
        topics[key] = topic
    opts = BagWriteOptions(storage=args.storage, depth_encoding=args.depth, events=args.events,
                           topics=topics, seed=args.seed, max_frames=args.frames,
                           compress=args.compress, lidar_crop=args.lidar_crop,
                           transport=args.transport, jpeg_quality=args.jpeg_quality, tf=args.tf,
                           depth_max=args.depth_max)
    for flag, field_name, items in (("--rate", "rate_hz", args.rate), ("--jitter", "jitter_s", args.jitter)):
        for sensor, value in _pairs(items, flag).items():
            if sensor not in SENSORS:
                raise ValueError(f"unknown sensor {sensor!r} in {flag}; use one of {SENSORS}")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"{flag} {sensor}={value}: not a number") from None
            opts = with_timing(opts, sensor, **{field_name: number})
    return replace(opts)


def compressed_summary(bag) -> list[str]:
    """For each CompressedImage topic: the first message's ``format`` and what it decodes to (or
    why it does not), as the node and ``rmmss replay`` will decode it."""
    from rmmss_ros.bag import messages as M
    from rmmss_ros.conversions.common import ConversionError
    from rmmss_ros.conversions.compressed import decode_compressed

    topics = sorted(t for t, ty in bag.topics.items() if ty == M.COMPRESSED_IMAGE)
    lines = []
    for topic in topics:
        first = next(bag.messages([topic]), None)
        if first is None:
            continue
        try:
            msg = M.deserialize(first.raw, first.msgtype)
            img = decode_compressed(msg, topic, "compressedDepth" if topic.endswith("/compressedDepth") else None)
            what = f"decodes to {img.width} x {img.height} {img.encoding}"
        except (ValueError, ConversionError) as e:
            msg, what = None, f"does not decode: {e}"
        fmt = repr(str(msg.format)) if msg is not None else "?"
        lines.append(f"  Compressed: {topic} | format {fmt} | {what}")
    return lines


def run(args: argparse.Namespace) -> int:
    from rmmss_ros.bag.reader import open_bag

    if args.action == "compress":
        from rmmss_ros.bag.transcode import CompressOptions, compress_bag
        d = CompressOptions()
        opts = CompressOptions(jpeg=tuple(args.jpeg or d.jpeg), png=tuple(args.png or d.png),
                               depth=tuple(args.depth or d.depth), jpeg_quality=args.jpeg_quality,
                               depth_max=args.depth_max, tf=args.tf,
                               named=tuple((args.jpeg or []) + (args.png or []) + (args.depth or [])))
        out = compress_bag(args.bag, args.out, opts)
        bag = open_bag(out)
        print(bag.describe())
        for line in compressed_summary(bag):
            print(line)
        return 0
    if args.action == "info":
        bag = open_bag(args.bag)
        print(bag.describe())
        for line in compressed_summary(bag):
            print(line)
        return 0
    from rmmss_ros.bag.sequence import open_sequence
    from rmmss_ros.bag.writer import write_bag

    seq = open_sequence(args.dataset, args.sequence)
    summary = write_bag(seq, args.out, options_from_args(args), overwrite=args.overwrite)
    print(f"wrote {summary.path} ({sum(summary.counts.values())} messages, {summary.duration_s:.2f} s) "
          f"from {seq.root}/{seq.key}")
    print(open_bag(summary.path).describe())
    return 0
