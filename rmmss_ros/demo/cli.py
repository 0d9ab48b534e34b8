"""``rmmss demo`` (``make demo``): the perception node live over DDS on the sample bag, with a
scheduled sensor failure, watched the way a robotics engineer watches a robot.

1. starts ``perception_node`` (a separate process) with the sample student,
2. plays the sample bag with its original timing (:class:`rmmss_ros.play.player.Player`), dropping
   sensors on schedule, once the node has subscribed,
3. listens to the node's masks and the bag's label topic and prints once a second: output rate,
   latency (camera message in -> mask out), sensors present, running mIoU,
4. ends with a summary and a report (mIoU per availability pattern, overlays, timeline) in a folder
   it names. Exit 0 only if masks were produced throughout (first mask within ``--max-first``, no gap
   longer than ``--max-gap``).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository (rmmss_ros/demo/cli.py)
SAMPLE_BAG = ROOT / "rosbags" / "sample"
SAMPLE_MODEL = ROOT / "rosbags" / "student.pt"
DEFAULT_DROP = "lidar@2-5s,event@6-8.5s"  # inside the 10 s sample bag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bag", default=str(SAMPLE_BAG), help="bag to play (default: the committed sample)")
    parser.add_argument("--model", default=str(SAMPLE_MODEL), help="model the node serves (default: sample student)")
    parser.add_argument("--drop", default=DEFAULT_DROP, help="sensor-failure schedule (rmmss replay --drop grammar)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed")
    parser.add_argument("--out", default=None, help="report folder (default runs/demo-<time>)")
    parser.add_argument("--max-gap", type=float, default=1.0,
                        help="longest allowed time between two masks, and after the last one (s)")
    parser.add_argument("--max-first", type=float, default=3.0,
                        help="longest allowed wait for the first mask after playback starts (s)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for the node")
    parser.add_argument("--transport", choices=("raw", "compressed"), default="raw",
                        help="compressed: play the bag as a robot records it (jpeg camera, compressedDepth, the "
                             "LiDAR extrinsic on /tf_static; `rmmss bag compress`); the node picks the topics itself")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra node parameter (ROS syntax), e.g. lidar.timeout_s:=0.1")


class Monitor:
    """Collects the node's outputs: masks (mono8), used modalities, labels and camera arrival times."""

    def __init__(self, stats: Any, start_ns: int):
        self.stats, self.start_ns = stats, start_ns
        self.lock = threading.Lock()
        self.labels: dict[int, np.ndarray] = {}
        self.camera_in: dict[int, float] = {}
        self.images: dict[int, np.ndarray | None] = {}
        self.used: dict[int, list[str]] = {}
        self.pending: list[tuple[int, np.ndarray, float]] = []
        self.mask_times: list[float] = []
        self.window: list[tuple[float, float | None]] = []  # (arrival, latency) since the last print

    def on_camera(self, msg: Any) -> None:
        rgb = None
        if msg.encoding == "rgb8":  # kept briefly for the report's overlay images
            rgb = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3]
            rgb = rgb.reshape(msg.height, msg.width, 3).copy()
        with self.lock:
            self.camera_in[_stamp(msg)] = time.monotonic()
            self.images[_stamp(msg)] = rgb
            while len(self.images) > 50:
                self.images.pop(next(iter(self.images)))

    def on_camera_compressed(self, msg: Any) -> None:
        from rmmss_ros.conversions import to_rgb8
        from rmmss_ros.conversions.compressed import decode_compressed
        img = decode_compressed(msg, "camera")
        self.on_camera(SimpleNamespace(header=msg.header, encoding="rgb8", height=img.height, width=img.width,
                                       step=img.width * 3, data=np.ascontiguousarray(to_rgb8(img)).tobytes()))

    def on_label(self, msg: Any) -> None:
        lab = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width].copy()
        with self.lock:
            self.labels[_stamp(msg)] = lab
            self._drain()

    def on_used(self, msg: Any) -> None:
        d = json.loads(msg.data)
        with self.lock:
            self.used[d["stamp"]["sec"] * 1_000_000_000 + d["stamp"]["nanosec"]] = d["used"]
            self._drain()

    def on_mask(self, msg: Any) -> None:
        now = time.monotonic()
        mask = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width].copy()
        with self.lock:
            stamp = _stamp(msg)
            cam = self.camera_in.get(stamp)
            latency = None if cam is None else now - cam
            self.mask_times.append(now)
            self.window.append((now, latency))
            self.pending.append((stamp, mask, latency))
            self._drain()

    def _drain(self, force: bool = False) -> None:
        """Score masks once their label and used-modalities record are in (or when forced)."""
        from rmmss_core.modalities import MODALITIES
        keep = []
        for stamp, mask, latency in self.pending:
            label = self.labels.get(stamp)
            if label is None and self.labels:
                near = min(self.labels, key=lambda k: abs(k - stamp))
                label = self.labels[near] if abs(near - stamp) < 50_000_000 else None
            if (label is None or stamp not in self.used) and not force:
                keep.append((stamp, mask, latency))
                continue
            used = self.used.get(stamp, [])
            if label is not None and label.shape != mask.shape:
                label = None
            rgb = self.images.get(stamp)
            if rgb is not None and rgb.shape[:2] != mask.shape:
                rgb = None
            self.stats.add((stamp - self.start_ns) / 1e9, [m in used for m in MODALITIES], mask, label, latency, rgb)
        self.pending = keep

    def tick(self) -> dict[str, Any]:
        """Numbers for the once-a-second line (and resets the window)."""
        with self.lock:
            win, self.window = self.window, []
            last_used = self.used[max(self.used)] if self.used else []
            lat = [v for _, v in win if v is not None]
            return {"rate": len(win), "lat_ms": 1e3 * float(np.median(lat)) if lat else None,
                    "used": last_used, "miou": self.stats.running_miou(), "masks": len(self.mask_times)}


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _sensors(used: list[str]) -> str:
    from rmmss_core.modalities import LETTERS, MODALITIES
    return " ".join(letter if m in used else "." for letter, m in zip(LETTERS, MODALITIES, strict=True))


def _node_command(args: argparse.Namespace, bag: Any) -> list[str]:
    from rmmss_ros.replay.cli import node_values
    values = node_values(None, [], bag.custom)
    params = {"model_path": str(Path(args.model).resolve()), "event.format": values["event.format"],
              "lidar.extrinsic": "[" + ",".join(repr(float(x)) for x in values["lidar.extrinsic"]) + "]"}
    cmd = [sys.executable, "-m", "rmmss_ros.node.main", "--ros-args"]
    for name, value in params.items():
        cmd += ["-p", f"{name}:={value}"]
    for item in args.param:
        cmd += ["-p", item]
    return cmd


def check_params(items: list[str]) -> None:
    """Each ``--param`` in ROS syntax, naming a node parameter with a valid value; ValueError naming
    the item otherwise, before the node starts (it used to fail inside the node, its reason only in
    perception_node.log; ``NAME=VALUE``, replay's syntax, was passed on and refused by rcl)."""
    import yaml

    from rmmss_ros.node import params as P
    for item in items:
        name, sep, raw = item.partition(":=")
        if not sep:
            hint = f"; did you mean {item.replace('=', ':=', 1)}?" if "=" in item else ""
            raise ValueError(f"--param {item}: expected NAME:=VALUE (ROS syntax){hint}")
        name = name.strip()
        if name not in P.BY_NAME:
            raise ValueError(f"--param {item}: unknown node parameter {name!r}; see rmmss_ros/node/params.py")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ValueError(f"--param {item}: value is not valid YAML ({e.problem})") from None
        reason = P.check_value(P.BY_NAME[name], value)
        if reason:
            raise ValueError(f"--param {item}: {reason}")


def run(args: argparse.Namespace) -> int:
    check_params(args.param)
    for path, what in ((args.bag, "bag"), (args.model, "model")):
        if not Path(path).exists():
            raise FileNotFoundError(f"demo {what} {path} does not exist; see rosbags/README.md to make it")
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from rmmss_core.spec import PreprocessSpec
    from rmmss_core.utils.io import load_checkpoint
    from rmmss_ros.bag.reader import open_bag
    from rmmss_ros.play.player import Player, PlayOptions
    from rmmss_ros.replay.report import ReplayStats
    from rmmss_ros.replay.schedule import Schedule

    bag = open_bag(args.bag)
    spec = PreprocessSpec.from_dict(load_checkpoint(args.model)["spec"])
    schedule = Schedule.parse(args.drop)
    out = Path(args.out or ROOT / "runs" / time.strftime("demo-%Y%m%d-%H%M%S"))
    if args.transport == "compressed":  # the bag as a robot records it (#22)
        from rmmss_ros.bag.transcode import CompressOptions, compress_bag
        out.mkdir(parents=True, exist_ok=True)
        try:  # /tf_static needs tf2_msgs (the ROS 2 underlay); without it the extrinsic stays a parameter
            import tf2_msgs.msg  # noqa: F401
            tf = True
        except ImportError:
            tf = False
        bag = open_bag(compress_bag(args.bag, out / "compressed_bag", CompressOptions(depth_max=65.535, tf=tf)))
        print(f"[demo] playing {bag.path} (compressed camera and depth"
              + (", extrinsic on /tf_static)" if tf else "; no tf2_msgs: the extrinsic stays a parameter)"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    print(f"[demo] bag {args.bag}: {(bag.end_ns - bag.start_ns) / 1e9:.1f} s, {sum(bag.counts.values())} messages")
    print(f"[demo] model {args.model}; failure schedule: {schedule}; ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}")
    log_path = out / "perception_node.log"
    out.mkdir(parents=True, exist_ok=True)
    node_log = open(log_path, "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(_node_command(args, bag), env=env, stdout=node_log, stderr=subprocess.STDOUT,
                            cwd=ROOT, start_new_session=True)
    stats = ReplayStats(spec.num_classes, spec.palette, spec.ignore_index)
    mon = Monitor(stats, bag.start_ns)
    rclpy.init(args=[])
    stop = threading.Event()
    try:
        node = rclpy.create_node("rmmss_demo")
        from rclpy.qos import qos_profile_sensor_data as qos
        node.create_subscription(Image, "/perception_node/mask", mon.on_mask, 10)
        node.create_subscription(String, "/perception_node/used_modalities", mon.on_used, 10)
        node.create_subscription(Image, "/labels/semantic", mon.on_label, qos)
        node.create_subscription(Image, "/camera/image_raw", mon.on_camera, qos)
        from sensor_msgs.msg import CompressedImage
        node.create_subscription(CompressedImage, "/camera/image_raw/compressed", mon.on_camera_compressed, qos)
        spin = threading.Thread(target=_spin, args=(rclpy, node, stop), daemon=True)
        spin.start()
        wait = tuple(t for t in ("/camera/image_raw", "/depth/image_raw", "/events", "/lidar/points",
                                 "/camera/image_raw/compressed", "/depth/image_raw/compressedDepth", "/events/compressed")
                     if t in bag.topics)
        player = Player(node, bag, PlayOptions(rate=args.rate, schedule=schedule, wait_topics=wait,
                                               wait_timeout_s=args.startup_timeout))
        print(f"[demo] starting perception_node (log: {log_path}) ...")
        t_start = time.monotonic()
        while node.count_publishers("/perception_node/mask") == 0:  # our mask subscription is matched
            if proc.poll() is not None:
                raise RuntimeError(f"perception_node exited with {proc.returncode} at start-up; see {log_path}")
            if time.monotonic() - t_start > args.startup_timeout:
                raise RuntimeError(f"perception_node did not come up in {args.startup_timeout:.0f} s; see {log_path}")
            time.sleep(0.1)
        play = threading.Thread(target=player.run, args=(stop,), daemon=True)
        t_play = time.monotonic()
        play.start()
        while play.is_alive() and not player.stats.published:
            if proc.poll() is not None:
                raise RuntimeError(f"perception_node exited with {proc.returncode} at start-up; see {log_path}")
            time.sleep(0.1)
        print(f"[demo] node up after {time.monotonic() - t_start:.1f} s; playing at {args.rate:g}x")
        print(f"[demo] {'bag t':>6} | {'rate':>7} | {'latency':>8} | sensors R D E L | {'masks':>5} | running mIoU")
        t0, next_print = time.monotonic(), time.monotonic() + 1.0
        while play.is_alive():
            play.join(timeout=max(0.0, next_print - time.monotonic()))
            if time.monotonic() >= next_print:
                next_print += 1.0
                _print_line(mon.tick(), (time.monotonic() - t0) * args.rate, schedule)
            if proc.poll() is not None:
                raise RuntimeError(f"perception_node died (exit {proc.returncode}); see {log_path}")
        play_end = time.monotonic()  # gaps are judged up to the last published frame, not the wait below
        time.sleep(1.0)  # the last masks
        with mon.lock:
            mon._drain(force=True)
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        node_log.close()
        rclpy.try_shutdown()
    return _finish(args, bag, player, mon, stats, out, t_play, play_end, schedule)


def _spin(rclpy: Any, node: Any, stop: threading.Event) -> None:
    while not stop.is_set() and rclpy.ok():
        try:
            rclpy.spin_once(node, timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - shutdown races end the spinner
            return


def _print_line(t: dict[str, Any], bag_t: float, schedule: Any) -> None:
    lat = "-" if t["lat_ms"] is None else f"{t['lat_ms']:.0f} ms"
    miou = "-" if t["miou"] != t["miou"] else f"{100 * t['miou']:.1f}%"
    down = [s for s in ("rgb", "depth", "event", "lidar") if schedule.dropped(s, bag_t)]
    note = f"  (scheduled failure: {', '.join(down)})" if down else ""
    print(f"[demo] {bag_t:5.1f}s | {t['rate']:4d} Hz | {lat:>8} | {_sensors(t['used']):15s} | "
          f"{t['masks']:5d} | {miou}{note}", flush=True)


def _finish(args, bag, player, mon, stats, out: Path, t0: float, t_end: float, schedule) -> int:
    # the first mask waits for DDS discovery and the first inference: judged on its own limit
    first = (mon.mask_times[0] - t0) if mon.mask_times else float("inf")
    gaps = np.diff([*mon.mask_times, t_end])
    worst = float(gaps.max()) if len(gaps) else float("inf")
    stats.expected = bag.counts.get("/camera/image_raw", 0) or bag.counts.get("/camera/image_raw/compressed", 0)
    meta = {"bag": str(args.bag), "model": str(args.model), "schedule": str(schedule), "mode": "live over DDS",
            "longest_gap_s": round(worst, 3), "first_mask_s": round(first, 3)}
    paths = stats.write(out, "demo", meta)
    s = stats.summary()
    ok = bool(mon.mask_times) and worst <= args.max_gap and first <= args.max_first
    print("[demo] ---------------- summary ----------------")
    print(f"[demo] masks {s['frames']['emitted']} for {s['frames']['expected']} camera frames; "
          f"first mask {first:.2f} s after playback started (limit {args.max_first:g} s); "
          f"longest gap between masks {worst:.2f} s (limit {args.max_gap:g} s)")
    lat = s["latency_ms"]
    if lat["p50"] is not None:
        print(f"[demo] latency camera-in -> mask-out: p50 {lat['p50']:.0f} ms, p90 {lat['p90']:.0f} ms, max {lat['max']:.0f} ms")
    overall = "-" if s["miou"] is None else f"{100 * s['miou']:.1f}%"
    print(f"[demo] mIoU {overall} overall; per availability pattern:")
    for name, v in s["per_pattern"].items():
        miou = "-" if v["miou"] is None else f"{100 * v['miou']:.1f}%"
        print(f"[demo]   {name:5s} {v['frames']:4d} frames  mIoU {miou}")
    print(f"[demo] player: {player.stats.summary().splitlines()[0]}")
    print(f"[demo] report: {paths['md']} (overlays, timeline, per-pattern chart in {out})")
    print(f"[demo] {'OK: masks were produced throughout' if ok else 'FAILED: masks were not produced throughout'}")
    return 0 if ok else 1
