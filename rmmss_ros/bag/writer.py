"""Write a raw sequence to a rosbag2 (mcap or sqlite3) with realistic topics, rates and jitter.

Each sensor has its own rate, a fixed stamp offset, header-stamp jitter (the acquisition time the
driver reports) and a transport latency (bag receive time = stamp + latency), so a bag exercises
the synchronizer like a robot does. Labels are written as ``mono8`` (class id, 255 = ignore) with
the camera's stamp. With the default timing every sensor runs at the sequence's frame rate, so a
replay evaluates exactly the frames ``rmmss eval`` reads from files.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from rmmss_ros.bag import messages as M
from rmmss_ros.bag.sequence import RawSequence
from rmmss_ros.conversions.compressed import encode_compressed, encode_compressed_depth

log = logging.getLogger(__name__)

DEFAULT_TOPICS: dict[str, str] = {
    "rgb": "/camera/image_raw", "camera_info": "/camera/camera_info", "depth": "/depth/image_raw",
    "event": "/events", "event_points": "/events", "lidar": "/lidar/points",
    "label": "/labels/semantic",
}
FRAME_IDS: dict[str, str] = {"rgb": "camera_optical_frame", "depth": "camera_optical_frame",
                             "event": "camera_optical_frame", "lidar": "lidar", "label": "camera_optical_frame"}
BAG_EPOCH_NS = 1_700_000_000 * 1_000_000_000  # bag clock = this + sequence stamp


@dataclass(frozen=True)
class SensorTiming:
    """When a sensor's messages are stamped and received.

    rate_hz: None = every frame of the sequence; else the sensor keeps one frame per period.
    offset_s: constant stamp offset from the frame time. jitter_s: std of the header stamp noise
    (clipped to 3 sigma). latency_s / latency_jitter_s: receive time = stamp + latency + |noise|.
    """

    rate_hz: float | None = None
    offset_s: float = 0.0
    jitter_s: float = 0.0
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0


def default_timings() -> dict[str, SensorTiming]:
    """Typical timing: the camera is the hardware-triggered reference (exact stamps, transport
    latency only); depth a little later, events and LiDAR with stamp jitter."""
    return {
        "rgb": SensorTiming(latency_s=0.008, latency_jitter_s=0.002),  # the reference: triggered
        "depth": SensorTiming(offset_s=0.002, jitter_s=0.001, latency_s=0.012, latency_jitter_s=0.003),
        "event": SensorTiming(offset_s=0.001, jitter_s=0.0005, latency_s=0.004, latency_jitter_s=0.001),
        "lidar": SensorTiming(offset_s=-0.004, jitter_s=0.002, latency_s=0.020, latency_jitter_s=0.005),
        "label": SensorTiming(latency_s=0.009),
    }


@dataclass(frozen=True)
class BagWriteOptions:
    """What goes into the bag. ``events``: "points" (raw PointCloud2 x, y, t, polarity) or
    "frame" (the encoded event image as rgb8). ``depth_encoding``: "32FC1" (m) or "16UC1" (mm)."""

    storage: str = "mcap"
    depth_encoding: str = "32FC1"
    events: str = "points"
    topics: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    timings: Mapping[str, SensorTiming] = field(default_factory=default_timings)
    seed: int = 0
    max_frames: int | None = None
    epoch_ns: int = BAG_EPOCH_NS
    compress: bool = False  # mcap chunks compressed with zstd (what rosbag2's zstd presets do)
    lidar_crop: bool = False  # keep only LiDAR points that land in the camera image (a front LiDAR)
    # "compressed": the camera as image_transport's compressed (jpeg, <topic>/compressed), depth as
    # compressedDepth (png, <topic>/compressedDepth), the event frame as compressed png; no raw topics
    transport: str = "raw"
    jpeg_quality: int = 95
    depth_max: float = 10.0  # compressedDepth's depth_max (the plugin's default): farther depth is dropped
    # the LiDAR extrinsic on /tf_static (a robot's URDF chain: base_link -> lidar,
    # base_link -> camera_link -> camera_optical_frame) instead of the bag's custom data
    tf: bool = False

    def __post_init__(self):
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {self.storage!r}")
        if self.depth_encoding not in ("32FC1", "16UC1"):
            raise ValueError(f"depth encoding must be 32FC1 or 16UC1, got {self.depth_encoding!r}")
        if self.events not in ("points", "frame"):
            raise ValueError(f"events must be 'points' or 'frame', got {self.events!r}")
        if self.compress and self.storage != "mcap":
            raise ValueError("compression is available for mcap bags only")
        if self.transport not in ("raw", "compressed"):
            raise ValueError(f"transport must be 'raw' or 'compressed', got {self.transport!r}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"jpeg quality must be in 1..100, got {self.jpeg_quality}")


@dataclass
class BagSummary:
    """What was written: message counts per topic, duration, the bag path."""

    path: Path
    counts: dict[str, int]
    start_ns: int
    end_ns: int

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


SENSOR_QOS = Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE,
                 QosTime(0, 0), QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)


def _keep(stamps_s: np.ndarray, rate_hz: float | None) -> np.ndarray:
    """Indices of the frames a sensor at ``rate_hz`` publishes (first frame of each period)."""
    if rate_hz is None:
        return np.arange(len(stamps_s))
    if rate_hz <= 0:
        raise ValueError(f"sensor rate must be > 0 Hz, got {rate_hz}")
    ticks = np.floor((stamps_s - stamps_s[0]) * rate_hz + 1e-9).astype(np.int64)
    return np.flatnonzero(np.r_[True, ticks[1:] != ticks[:-1]])


def plan_messages(seq: RawSequence, opts: BagWriteOptions) -> list[tuple[int, int, str, int]]:
    """The schedule: ``(receive_ns, stamp_ns, sensor, frame index)`` sorted by receive time.

    Deterministic in ``opts.seed``; stamps stay strictly increasing per sensor.
    """
    rng = np.random.default_rng(opts.seed)
    n = len(seq.frames) if opts.max_frames is None else min(opts.max_frames, len(seq.frames))
    t0 = seq.stamps_s[0]
    stamps = np.asarray(seq.stamps_s[:n], dtype=np.float64) - t0
    plan = []
    rgb_stamps: dict[int, int] = {}
    for sensor in ("rgb", "depth", "event", "lidar", "label"):
        timing = opts.timings.get(sensor, SensorTiming())
        # labels belong to the camera image: same frames, same stamp, own latency
        idx = np.array(sorted(rgb_stamps)) if sensor == "label" else _keep(stamps, timing.rate_hz)
        noise = np.clip(rng.normal(0.0, 1.0, len(idx)), -3, 3) * timing.jitter_s
        lat = timing.latency_s + np.abs(rng.normal(0.0, 1.0, len(idx))) * timing.latency_jitter_s
        last = -1
        for k, i in enumerate(idx):
            stamp = opts.epoch_ns + round((stamps[i] + timing.offset_s + noise[k]) * 1e9)
            stamp = max(stamp, last + 1)
            if sensor == "rgb":
                rgb_stamps[int(i)] = stamp
            elif sensor == "label":
                stamp = rgb_stamps[int(i)]
            last = stamp
            plan.append((stamp + round(lat[k] * 1e9), stamp, sensor, int(i)))
    plan.sort()
    return plan


def _in_camera(points: np.ndarray, seq: RawSequence) -> np.ndarray:
    """Mask of the LiDAR points that project into the camera image: cropping to these leaves the
    projected LiDAR image (and so the model input) unchanged."""
    from rmmss_core.encodings import CameraModel
    from rmmss_core.encodings.lidar import transform_points

    camera = CameraModel.from_dict({k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                    for k, v in seq.camera.items()})
    xyz = points[:, :3].astype(np.float64)
    ok = np.isfinite(xyz).all(axis=1)
    valid = np.zeros(len(points), dtype=bool)
    valid[ok] = camera.project(transform_points(xyz[ok], seq.T_cam_lidar))[1]
    return valid


def _depth_image(depth_m: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "32FC1":
        return depth_m.astype(np.float32)
    mm = np.where(np.isfinite(depth_m) & (depth_m > 0), np.round(depth_m * 1000.0), 0.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)  # REP 118: 0 = invalid


def build_messages(seq: RawSequence, opts: BagWriteOptions, sensor: str, i: int,
                   stamp_ns: int) -> list[tuple[str, Any]]:
    """``(topic key, message)`` pairs for sensor ``sensor`` at frame ``i`` stamped ``stamp_ns``."""
    fid = FRAME_IDS[sensor]
    frame = seq.frames[i]
    if sensor == "rgb":
        if opts.transport == "compressed":
            fmt, data = encode_compressed(seq.rgb(frame), "rgb8", "jpeg", jpeg_quality=opts.jpeg_quality)
            cam = ("rgb_compressed", M.compressed_image_msg(fmt, data, stamp_ns, fid))
        else:
            cam = ("rgb", M.image_msg(seq.rgb(frame), "rgb8", stamp_ns, fid))
        return [cam, ("camera_info", M.camera_info_msg(seq.camera, stamp_ns, fid))]
    if sensor == "depth":
        depth = _depth_image(seq.depth(frame), opts.depth_encoding)
        if opts.transport == "compressed":
            fmt, data = encode_compressed_depth(depth, opts.depth_encoding, depth_max=opts.depth_max)
            return [("depth_compressed", M.compressed_image_msg(fmt, data, stamp_ns, fid))]
        return [("depth", M.image_msg(depth, opts.depth_encoding, stamp_ns, fid))]
    if sensor == "label":
        return [("label", M.image_msg(seq.label(frame), "mono8", stamp_ns, fid))]
    if sensor == "lidar":
        p = seq.points(frame)
        if opts.lidar_crop:
            p = p[_in_camera(p, seq)]
        cols = {"x": p[:, 0], "y": p[:, 1], "z": p[:, 2], "intensity": p[:, 3]}
        return [("lidar", M.pointcloud2_msg(cols, stamp_ns, fid))]
    if opts.events == "frame":
        if opts.transport == "compressed":  # png: the event frame's codes survive exactly
            fmt, data = encode_compressed(seq.event_frame(frame), "rgb8", "png")
            return [("event_compressed", M.compressed_image_msg(fmt, data, stamp_ns, fid))]
        return [("event", M.image_msg(seq.event_frame(frame), "rgb8", stamp_ns, fid))]
    ev = seq.events(frame)
    # t: seconds relative to this message's header stamp (rmmss_ros.conversions.events), computed
    # from the frame's own time so the events keep their exact place relative to the camera frame
    frame_ns = opts.epoch_ns + round((seq.stamps_s[i] - seq.stamps_s[0]) * 1e9)
    t = (np.asarray(ev["t"], dtype=np.float64) - seq.stamps_s[i]) + (frame_ns - stamp_ns) * 1e-9
    cols = {"x": ev["x"].astype(np.uint16), "y": ev["y"].astype(np.uint16), "t": t,
            "polarity": (np.asarray(ev["p"]) > 0).astype(np.uint8)}
    return [("event_points", M.pointcloud2_msg(cols, stamp_ns, fid))]


TYPES: dict[str, str] = {"rgb": M.IMAGE, "camera_info": M.CAMERA_INFO, "depth": M.IMAGE,
                         "event": M.IMAGE, "event_points": M.POINTCLOUD2, "lidar": M.POINTCLOUD2,
                         "label": M.IMAGE, "rgb_compressed": M.COMPRESSED_IMAGE,
                         "depth_compressed": M.COMPRESSED_IMAGE, "event_compressed": M.COMPRESSED_IMAGE,
                         "tf_static": M.TF_MESSAGE}
# image_transport's topic of each compressed stream: the raw topic + /compressed or /compressedDepth
COMPRESSED_KEYS = {"rgb": ("rgb_compressed", "/compressed"), "depth": ("depth_compressed", "/compressedDepth"),
                   "event": ("event_compressed", "/compressed")}
TF_STATIC_QOS = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                    QosTime(0, 0), QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)


def tf_static_links(T_cam_lidar: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
    """The URDF-like chain a robot publishes for the bag's sensors: base_link -> lidar and
    base_link -> camera_link -> camera_optical_frame (camera_link 0.2 m ahead of the base, 0.3 m
    up; the optical frame turned x right, y down, z forward), ``T_cam_lidar`` honoured exactly
    up to rounding."""
    T_base_camlink = np.eye(4)
    T_base_camlink[:3, 3] = (0.2, 0.0, 0.3)
    T_camlink_opt = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    T_base_lidar = T_base_camlink @ T_camlink_opt @ np.asarray(T_cam_lidar, np.float64).reshape(4, 4)
    return [("base_link", FRAME_IDS["lidar"], T_base_lidar), ("base_link", "camera_link", T_base_camlink),
            ("camera_link", FRAME_IDS["rgb"], T_camlink_opt)]


def topic_of(opts: BagWriteOptions, key: str) -> str:
    """The bag topic of a stream key (compressed streams: image_transport's names)."""
    for base, (ckey, suffix) in COMPRESSED_KEYS.items():
        if key == ckey:
            return opts.topics[base] + suffix
    if key == "tf_static":
        return "/tf_static"
    return opts.topics[key]


def write_bag(seq: RawSequence, out: str | Path, opts: BagWriteOptions | None = None, *,
              overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> BagSummary:
    """Write ``seq`` to the rosbag2 folder ``out``. Written under a temporary name and renamed at
    the end, so an interrupted run never leaves a half bag at ``out``."""
    opts = opts or BagWriteOptions()
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise ValueError(f"bag {out} already exists (use --overwrite)")
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan = plan_messages(seq, opts)
    plugin = StoragePlugin.MCAP if opts.storage == "mcap" else StoragePlugin.SQLITE3
    ts = M.typestore()
    counts: dict[str, int] = {}
    try:
        writer = Writer(tmp, version=9, storage_plugin=plugin)
        if opts.compress:
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        with writer:
            keys = ["rgb", "camera_info", "depth", "event_points" if opts.events == "points" else "event",
                    "lidar", "label"]
            if opts.transport == "compressed":
                keys = [COMPRESSED_KEYS[k][0] if k in COMPRESSED_KEYS else k for k in keys]
            for key, value in custom_data(seq, opts).items():
                writer.set_custom_data(key, value)
            conns = {k: writer.add_connection(topic_of(opts, k), TYPES[k], typestore=ts,
                                              offered_qos_profiles=[SENSOR_QOS]) for k in keys}
            if opts.tf and plan:  # latched once at the start, as robot_state_publisher does
                conn = writer.add_connection("/tf_static", M.TF_MESSAGE, typestore=ts,
                                             offered_qos_profiles=[TF_STATIC_QOS])
                writer.write(conn, plan[0][0] - 1, M.serialize(M.tf_message(tf_static_links(seq.T_cam_lidar),
                                                                           plan[0][1])))
                counts["/tf_static"] = 1
            for n, (recv_ns, stamp_ns, sensor, i) in enumerate(plan):
                for key, msg in build_messages(seq, opts, sensor, i, stamp_ns):
                    writer.write(conns[key], recv_ns, M.serialize(msg))
                    counts[topic_of(opts, key)] = counts.get(topic_of(opts, key), 0) + 1
                if progress is not None:
                    progress(n + 1, len(plan))
        _rename_storage(tmp, out.name)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary = BagSummary(out, counts, plan[0][0] if plan else 0, plan[-1][0] if plan else 0)
    log.info("wrote %s: %d messages, %.1f s", out, sum(counts.values()), summary.duration_s)
    return summary


def custom_data(seq: RawSequence, opts: BagWriteOptions) -> dict[str, str]:
    """What a replay needs beyond the messages (``custom_data`` of metadata.yaml, strings):
    the LiDAR extrinsic (no tf2 here), where the data came from, and how it was written."""
    extrinsic = {} if opts.tf else {
        "rmmss.T_cam_lidar": json.dumps(np.asarray(seq.T_cam_lidar, dtype=float).reshape(-1).tolist())}
    return {**extrinsic,
            "rmmss.source": f"{seq.root.name}/{seq.key}", "rmmss.transport": opts.transport,
            "rmmss.events": opts.events, "rmmss.depth_encoding": opts.depth_encoding,
            "rmmss.timing": json.dumps({k: vars(v) for k, v in opts.timings.items()}, sort_keys=True),
            "rmmss.seed": str(opts.seed),
            # the synthetic LiDAR's intensity is already in [0, 1] (rmmss_core.data.synth.lidar_sim)
            "rmmss.lidar_intensity_units": "unit"}


def _rename_storage(tmp: Path, name: str) -> None:
    """rosbags names the storage file after the folder; rename it (and metadata) for ``name``."""
    meta = tmp / "metadata.yaml"
    text = meta.read_text()
    for f in tmp.iterdir():
        if f.name.startswith(tmp.name):
            new = f.with_name(name + f.name[len(tmp.name):])
            f.rename(new)
            text = text.replace(f.name, new.name)
    meta.write_text(text)


def with_timing(opts: BagWriteOptions, sensor: str, **changes: Any) -> BagWriteOptions:
    """A copy of ``opts`` with one sensor's timing changed (e.g. ``rate_hz=5``)."""
    timings = dict(opts.timings)
    timings[sensor] = replace(timings.get(sensor, SensorTiming()), **changes)
    return replace(opts, timings=timings)
