"""Event inputs: an event-frame Image (already encoded like the training PNGs), raw events in a
PointCloud2 with fields x, y, t, polarity, or an ``event_camera_msgs/EventPacket`` (mono / evt3,
rmmss_ros.conversions.event_packet); raw events are accumulated with the shared encoder.

Raw-event convention: ``t`` is relative to the cloud's ``header.stamp``: seconds when the field is
floating point, nanoseconds when it is an integer; ``polarity`` (or ``p``) > 0 is positive.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rmmss_core.encodings import accumulate_events, from_uint8
from rmmss_core.spec import EventEncoding
from rmmss_ros.conversions.common import ConversionError, stamp_to_ns
from rmmss_ros.conversions.event_packet import Events, Evt3Decoder, decode_event_packet
from rmmss_ros.conversions.image import image_to_numpy, to_rgb8
from rmmss_ros.conversions.pointcloud import read_points


def events_from_cloud(msg: Any, what: str = "event") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Event cloud -> (x int64, y int64, t float64 seconds relative to header.stamp, p bool) of
    length N (N may be 0: no events in the packet). Raises ConversionError on bad fields or NaNs."""
    pts = read_points(msg, allow_empty=True, what=what)
    names = pts.dtype.names
    pol = "polarity" if "polarity" in names else "p"
    missing = [n for n in ("x", "y", "t", pol) if n not in names]
    if missing:
        raise ConversionError(f"{what}: event cloud lacks fields {missing}; has {list(names)} "
                              "(expected x, y, t, polarity)")
    t = pts["t"]
    t = t.astype(np.float64) if t.dtype.kind == "f" else t.astype(np.float64) * 1e-9
    x, y = pts["x"], pts["y"]
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ConversionError(f"{what}: event cloud has NaN or Inf in x, y or t")
    return x.astype(np.int64), y.astype(np.int64), t, pts[pol] > 0


def is_event_packet(msg: Any) -> bool:
    """True for an EventPacket-like message (``events`` bytes and an ``encoding``)."""
    return hasattr(msg, "events") and hasattr(msg, "encoding") and not hasattr(msg, "fields")


def decode_event_message(msg: Any, evt3: Evt3Decoder | None = None, what: str = "event") -> Events:
    """An event PointCloud2 or EventPacket -> Events with absolute ROS times (int64 ns)."""
    if is_event_packet(msg):
        return decode_event_packet(msg, evt3, what)
    x, y, t, p = events_from_cloud(msg, what)
    t_ns = stamp_to_ns(msg.header.stamp) + np.rint(t * 1e9).astype(np.int64)
    return Events(x, y, t_ns, p)


def event_sensor_size(msg: Any) -> tuple[int, int] | None:
    """(height, width) of the event sensor when the message says it (EventPacket), else None."""
    if is_event_packet(msg) and int(msg.width) > 0 and int(msg.height) > 0:
        return int(msg.height), int(msg.width)
    return None


def encode_event_cloud(msg: Any, frame_stamp_ns: int, height: int, width: int, enc: EventEncoding,
                       quantize: bool = True, what: str = "event") -> np.ndarray:
    """Accumulate an event cloud over ``enc.window_s`` before ``frame_stamp_ns`` into the event
    image ``H x W x 3`` float32 [0, 1] (the shared encoder, as in training)."""
    x, y, t, p = events_from_cloud(msg, what)
    t_rel = t + (stamp_to_ns(msg.header.stamp) - frame_stamp_ns) * 1e-9  # seconds relative to the frame
    return accumulate_events(x, y, t_rel, p, 0.0, height, width, enc, quantize)


def encode_event_image(msg: Any, what: str = "event") -> np.ndarray:
    """Event-frame Image (rgb8/bgr8/mono8..., the encoded event image as the dataset stores it)
    -> ``H x W x 3`` float32 [0, 1]."""
    return from_uint8(np.ascontiguousarray(event_image_codes(msg, what)))


def event_image_codes(msg: Any, what: str = "event") -> np.ndarray:
    """Event-frame Image -> its ``H x W x 3`` uint8 RGB codes (``encode_event_image`` is these
    / 255); a view of the message where the encoding allows. 16-bit and float frames raise."""
    if str(msg.encoding) in ("32FC1", "16UC1", "mono16"):
        a = image_to_numpy(msg, what)
        raise ConversionError(f"{what}: event frame must be 8-bit (rgb8, bgr8, mono8), got {msg.encoding!r} "
                              f"{a.shape}")
    return to_rgb8(msg, what)
