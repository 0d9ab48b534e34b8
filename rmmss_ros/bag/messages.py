"""Build ROS 2 sensor messages as rosbags typestore objects (no rclpy) and serialise them to CDR.

Every builder takes numpy arrays in the conventions of ``docs/ARCHITECTURE.md`` and returns a
typestore dataclass (``sensor_msgs/msg/Image``, ``CameraInfo``, ``PointCloud2``, and the
registered ``event_camera_msgs/msg/EventPacket``) whose CDR bytes
are exactly what an rclpy publisher of the same type puts on the wire.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
EVENT_PACKET = "event_camera_msgs/msg/EventPacket"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

_TYPESTORE: Typestore | None = None

# PointField datatype constants (sensor_msgs/msg/PointField) and their numpy dtypes.
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("i1"), 2: np.dtype("u1"), 3: np.dtype("i2"), 4: np.dtype("u2"),
    5: np.dtype("i4"), 6: np.dtype("u4"), 7: np.dtype("f4"), 8: np.dtype("f8"),
}
_DTYPE_TO_POINTFIELD = {v: k for k, v in POINTFIELD_DTYPES.items()}

# Image encodings this module writes: name -> (numpy dtype, channels).
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype("u1"), 3), "bgr8": (np.dtype("u1"), 3), "mono8": (np.dtype("u1"), 1),
    "16UC1": (np.dtype("<u2"), 1), "32FC1": (np.dtype("<f4"), 1), "mono16": (np.dtype("<u2"), 1),
}


def typestore() -> Typestore:
    """The ROS 2 Jazzy typestore, built once."""
    global _TYPESTORE
    if _TYPESTORE is None:
        ts = get_typestore(Stores.ROS2_JAZZY)
        # event_camera_msgs is not a core package: register its public definition
        # (ros-event-camera/event_camera_msgs@e5ae21b:msg_ros2/EventPacket.msg)
        from rosbags.typesys import get_types_from_msg

        from rmmss_ros.conversions.event_packet import EVENT_PACKET_MSG
        ts.register(get_types_from_msg(EVENT_PACKET_MSG, EVENT_PACKET))
        _TYPESTORE = ts
    return _TYPESTORE


def header(stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/msg/Header`` for a stamp in integer nanoseconds."""
    ts = typestore()
    if stamp_ns < 0:
        raise ValueError(f"header stamp must be >= 0 ns, got {stamp_ns}")
    time = ts.types["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000),
                                                   nanosec=int(stamp_ns % 1_000_000_000))
    return ts.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def stamp_to_ns(hdr: Any) -> int:
    """Nanoseconds of a message header's stamp (typestore or rclpy message)."""
    return int(hdr.stamp.sec) * 1_000_000_000 + int(hdr.stamp.nanosec)


def image_msg(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/msg/Image`` from ``H x W`` or ``H x W x C``; little-endian, no row padding."""
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}; use one of {sorted(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ValueError(f"encoding {encoding} needs H x W x {channels}, got shape {np.shape(array)}")
    if arr.dtype.kind != dtype.kind or arr.dtype.itemsize != dtype.itemsize:
        raise ValueError(f"encoding {encoding} needs dtype {dtype}, got {arr.dtype}")
    arr = np.ascontiguousarray(arr.astype(dtype, copy=False))
    height, width = arr.shape[:2]
    return typestore().types[IMAGE](
        header=header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=width * channels * dtype.itemsize,
        data=np.frombuffer(arr.tobytes(), dtype=np.uint8))


def camera_info_msg(camera: dict[str, Any], stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/msg/CameraInfo`` from a camera dict: ``width``, ``height``, ``K`` (3x3),
    optional ``D`` (plumb_bob, 5) and ``P`` (3x4; defaults to ``[K | 0]``)."""
    ts = typestore()
    k = np.asarray(camera["K"], dtype=np.float64).reshape(3, 3)
    d = np.asarray(camera.get("D", [0.0] * 5), dtype=np.float64).reshape(-1)
    p = camera.get("P")
    p = np.hstack([k, np.zeros((3, 1))]) if p is None else np.asarray(p, dtype=np.float64).reshape(3, 4)
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                        do_rectify=False)
    return ts.types[CAMERA_INFO](
        header=header(stamp_ns, frame_id), height=int(camera["height"]), width=int(camera["width"]),
        distortion_model=str(camera.get("distortion_model", "plumb_bob")), d=d, k=k.reshape(-1),
        r=np.eye(3).reshape(-1), p=p.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def pointcloud2_msg(columns: dict[str, np.ndarray], stamp_ns: int, frame_id: str) -> Any:
    """Unorganized ``sensor_msgs/msg/PointCloud2`` (height 1) from named 1-D columns of equal
    length; each column's dtype picks its PointField datatype (packed, little-endian)."""
    ts = typestore()
    names = list(columns)
    if not names:
        raise ValueError("a point cloud needs at least one field")
    arrays = [np.asarray(columns[n]).reshape(-1) for n in names]
    n_points = len(arrays[0])
    if any(len(a) != n_points for a in arrays):
        raise ValueError(f"point cloud fields {names} have different lengths {[len(a) for a in arrays]}")
    fields, offset, dtype_fields = [], 0, []
    for name, arr in zip(names, arrays, strict=True):
        key = np.dtype(f"{arr.dtype.kind}{arr.dtype.itemsize}")
        dt = key.newbyteorder("<")
        if key not in _DTYPE_TO_POINTFIELD:
            raise ValueError(f"point field {name!r} has unsupported dtype {arr.dtype}")
        fields.append(ts.types["sensor_msgs/msg/PointField"](
            name=name, offset=offset, datatype=_DTYPE_TO_POINTFIELD[key], count=1))
        dtype_fields.append((name, dt))
        offset += dt.itemsize
    record = np.empty(n_points, dtype=np.dtype(dtype_fields))
    for name, arr in zip(names, arrays, strict=True):
        record[name] = arr
    finite = all(np.isfinite(a).all() for a in arrays if a.dtype.kind == "f")
    return ts.types[POINTCLOUD2](
        header=header(stamp_ns, frame_id), height=1, width=n_points, fields=fields,
        is_bigendian=False, point_step=offset, row_step=offset * n_points,
        data=np.frombuffer(record.tobytes(), dtype=np.uint8), is_dense=bool(finite))


def event_packet_msg(events: bytes, encoding: str, width: int, height: int, stamp_ns: int, frame_id: str,
                     seq: int = 0, time_base: int = 0) -> Any:
    """``event_camera_msgs/msg/EventPacket`` (``mono`` or ``evt3`` bytes, little-endian)."""
    return typestore().types[EVENT_PACKET](
        header=header(stamp_ns, frame_id), height=int(height), width=int(width), seq=int(seq),
        time_base=int(time_base), encoding=str(encoding), is_bigendian=False,
        events=np.frombuffer(bytes(events), dtype=np.uint8))


def compressed_image_msg(fmt: str, data: bytes, stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/msg/CompressedImage`` (``format`` and ``data`` as image_transport's plugins
    write them: rmmss_ros.conversions.compressed.encode_compressed / encode_compressed_depth)."""
    return typestore().types[COMPRESSED_IMAGE](header=header(stamp_ns, frame_id), format=str(fmt),
                                               data=np.frombuffer(bytes(data), dtype=np.uint8))


def tf_message(links: list[tuple[str, str, np.ndarray]], stamp_ns: int) -> Any:
    """``tf2_msgs/msg/TFMessage`` of ``(parent, child, T_parent_child 4 x 4)`` links, all at
    ``stamp_ns`` (a robot_state_publisher's /tf_static message)."""
    import cv2

    T = typestore().types
    out = []
    for parent, child, M4 in links:
        M4 = np.asarray(M4, np.float64).reshape(4, 4)
        rvec = cv2.Rodrigues(np.ascontiguousarray(M4[:3, :3]))[0].reshape(3)  # axis x angle
        angle = float(np.linalg.norm(rvec))
        axis = rvec / angle if angle > 0 else np.zeros(3)
        q = np.concatenate([np.sin(angle / 2) * axis, [np.cos(angle / 2)]])
        t = M4[:3, 3]
        out.append(T["geometry_msgs/msg/TransformStamped"](
            header=header(stamp_ns, parent), child_frame_id=child,
            transform=T["geometry_msgs/msg/Transform"](
                translation=T["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2])),
                rotation=T["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                                           w=float(q[3])))))
    return T[TF_MESSAGE](transforms=out)


def serialize(msg: Any) -> bytes:
    """CDR bytes of a typestore message (its ``__msgtype__`` names the type)."""
    return bytes(typestore().serialize_cdr(msg, msg.__msgtype__))


def deserialize(raw: bytes | memoryview, msgtype: str) -> Any:
    """A typestore message from CDR bytes; ValueError naming the type when they do not parse."""
    ts = typestore()
    if msgtype not in ts.types:
        raise ValueError(f"unknown message type {msgtype!r} (not in the ROS 2 Jazzy typestore)")
    try:
        return ts.deserialize_cdr(raw, msgtype)
    except Exception as e:  # noqa: BLE001 - any decoding error means corrupt bytes
        raise ValueError(f"corrupt {msgtype} message ({len(raw)} bytes): {e}") from e
