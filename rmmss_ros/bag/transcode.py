"""``rmmss bag compress IN OUT``: a bag with raw images rewritten as robots record them, image
transport's ``compressed`` (jpeg, ``<topic>/compressed``) and ``compressedDepth`` (png,
``<topic>/compressedDepth``) topics in place of the raw ones, every other message as it was, and
optionally the LiDAR extrinsic of the bag's custom data moved onto ``/tf_static``. Used to test
that a compressed recording replays like its raw twin (the codecs: rmmss_ros.conversions.compressed).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from rmmss_ros.bag import messages as M
from rmmss_ros.bag.reader import open_bag
from rmmss_ros.bag.writer import _rename_storage
from rmmss_ros.conversions.compressed import encode_compressed, encode_compressed_depth
from rmmss_ros.conversions.image import image_to_numpy


@dataclass(frozen=True)
class CompressOptions:
    """``jpeg``: Image topics sent as jpeg (camera); ``png``: as lossless png (event frames);
    ``depth``: as compressedDepth png (``depth_max`` m: farther depth is dropped, as the plugin
    does). ``tf``: the custom ``rmmss.T_cam_lidar`` as a /tf_static chain (camera frame <- lidar).
    ``named``: the topics the user asked for (``--jpeg`` / ``--png`` / ``--depth``): each must be in
    the bag (the defaults are skipped when absent)."""

    jpeg: tuple[str, ...] = ("/camera/image_raw",)
    png: tuple[str, ...] = ("/events",)
    depth: tuple[str, ...] = ("/depth/image_raw",)
    jpeg_quality: int = 95
    depth_max: float = 10.0
    tf: bool = False
    frames: dict[str, str] = field(default_factory=lambda: {"camera": "camera_optical_frame", "lidar": "lidar"})
    named: tuple[str, ...] = ()


def _compressed(msg, kind: str, opts: CompressOptions) -> tuple[str, bytes]:
    a = image_to_numpy(msg, "image")
    enc = str(msg.encoding)
    if kind == "depth":
        return encode_compressed_depth(np.ascontiguousarray(a), enc, depth_max=opts.depth_max)
    return encode_compressed(np.ascontiguousarray(a), enc, kind, jpeg_quality=opts.jpeg_quality)


def compress_bag(src: str | Path, out: str | Path, opts: CompressOptions = CompressOptions()) -> Path:
    """Rewrite ``src`` into the new bag folder ``out`` (mcap); returns ``out``."""
    bag = open_bag(src)
    out = Path(out)
    if out.exists():
        raise ValueError(f"bag {out} already exists")
    kinds = {**{t: "jpeg" for t in opts.jpeg}, **{t: "png" for t in opts.png}, **{t: "depth" for t in opts.depth}}
    for t in kinds:
        if t in bag.topics and bag.topics[t] != M.IMAGE:
            raise ValueError(f"bag {src}: {t} is {bag.topics[t]}, not an Image topic to compress")
    missing = [t for t in opts.named if t not in bag.topics]
    if missing:
        raise ValueError(f"bag {src}: {', '.join(missing)} not in the bag, nothing to compress there "
                         f"(Image topics: {sorted(t for t, ty in bag.topics.items() if ty == M.IMAGE)})")
    if opts.tf and "rmmss.T_cam_lidar" not in bag.custom:
        raise ValueError(f"bag {src}: --tf needs the LiDAR extrinsic rmmss.T_cam_lidar in the bag's custom data "
                         "(metadata.yaml), and it has none")
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    ts = M.typestore()
    custom = dict(bag.custom)
    try:
        with Writer(tmp, version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conns = {}
            for topic, msgtype in bag.topics.items():
                if topic in kinds:
                    suffix = "/compressedDepth" if kinds[topic] == "depth" else "/compressed"
                    conns[topic] = w.add_connection(topic + suffix, M.COMPRESSED_IMAGE, typestore=ts)
                else:
                    conns[topic] = w.add_connection(topic, msgtype, typestore=ts)
            if opts.tf and "rmmss.T_cam_lidar" in custom:
                T = np.asarray(json.loads(custom.pop("rmmss.T_cam_lidar")), np.float64).reshape(4, 4)
                c = w.add_connection("/tf_static", M.TF_MESSAGE, typestore=ts)
                w.write(c, bag.start_ns - 1, M.serialize(M.tf_message(  # T_cam_lidar: camera <- lidar
                    [(opts.frames["camera"], opts.frames["lidar"], T)], bag.start_ns)))
            for key, value in custom.items():
                w.set_custom_data(key, value)
            for m in bag.messages():
                raw = m.raw
                if m.topic in kinds:
                    msg = M.deserialize(m.raw, m.msgtype)
                    try:
                        fmt, data = _compressed(msg, kinds[m.topic], opts)
                    except ValueError as e:  # incl. ConversionError
                        raise ValueError(f"bag {src}: {m.topic}: {e}") from None
                    raw = M.serialize(M.compressed_image_msg(fmt, data, M.stamp_to_ns(msg.header),
                                                             msg.header.frame_id))
                w.write(conns[m.topic], m.log_ns, raw)
        _rename_storage(tmp, out.name)
        shutil.move(str(tmp), str(out))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
