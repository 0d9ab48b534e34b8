"""Which topic and message type carry a sensor image (``<sensor>.transport``), without ROS.

image_transport names the transports' topics after the base topic: ``<topic>`` (raw
sensor_msgs/Image), ``<topic>/compressed`` and ``<topic>/compressedDepth``
(sensor_msgs/CompressedImage). ``raw`` subscribes ``<topic>``; ``compressed`` subscribes
``<topic>/compressedDepth`` for depth and ``<topic>/compressed`` otherwise (a topic that already
ends in one of them is taken as it is); ``auto`` takes what the publishers (live: the ROS graph;
replay: the bag's topics) offer: ``<topic>`` when it is offered, else its compressedDepth
(depth) / compressed topic, else ``raw`` until something is offered. The choice comes with a
sentence for the log.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
TRANSPORT_SETTINGS = ("raw", "compressed", "auto")
SUFFIXES = ("/compressed", "/compressedDepth")


@dataclass(frozen=True)
class Resolved:
    """``topic`` to subscribe, ``transport`` (raw | compressed | compressedDepth), the message type
    (``sensor_msgs/msg/Image`` or ``.../CompressedImage``), and why (one sentence)."""

    topic: str
    transport: str
    msgtype: str
    reason: str


def _base(topic: str) -> tuple[str, str | None]:
    for suffix in SUFFIXES:
        if topic.endswith(suffix):
            return topic[: -len(suffix)], suffix[1:]
    return topic, None


def resolve_transport(sensor: str, topic: str, setting: str,
                      offered: Mapping[str, Sequence[str]] | None = None) -> Resolved:
    """The topic / transport for ``sensor`` (``rgb``, ``depth``, ``event``) given its ``topic``
    parameter, its ``transport`` setting and ``offered`` {topic: [types]} (None: unknown yet)."""
    if setting not in TRANSPORT_SETTINGS:
        raise ValueError(f"{sensor}.transport must be one of {TRANSPORT_SETTINGS}, got {setting!r}")
    base, named = _base(topic)
    comp = "compressedDepth" if sensor == "depth" else "compressed"
    if named is not None:  # the topic names its transport: take it as it is
        return Resolved(topic, named, COMPRESSED_IMAGE, f"{sensor}: {topic} names the {named} transport")
    if setting == "raw":
        return Resolved(topic, "raw", IMAGE, f"{sensor}: {topic} (transport raw)")
    if setting == "compressed":
        return Resolved(f"{base}/{comp}", comp, COMPRESSED_IMAGE, f"{sensor}: {base}/{comp} ({sensor}.transport compressed)")
    offered = offered or {}
    if topic in offered and any(t != COMPRESSED_IMAGE for t in offered[topic]):
        return Resolved(topic, "raw", IMAGE, f"{sensor}: {topic} is published (transport raw)")
    order = ("compressedDepth", "compressed") if sensor == "depth" else ("compressed", "compressedDepth")
    for tr in order:
        t = f"{base}/{tr}"
        if COMPRESSED_IMAGE in offered.get(t, ()):
            return Resolved(t, tr, COMPRESSED_IMAGE,
                            f"{sensor}: {topic} is not offered but {t} is: using the {tr} transport "
                            f"({sensor}.transport auto)")
    return Resolved(topic, "raw", IMAGE, f"{sensor}: nothing is published on {topic} or its compressed "
                                         f"topics yet; subscribing {topic} (transport raw) until one appears")


def transport_mismatch(sensor: str, topic: str, setting: str,
                       offered: Mapping[str, Sequence[str]] | None) -> str | None:
    """With an explicit ``<sensor>.transport`` (raw / compressed) whose topic nothing offers while
    the other transport's topic is offered (a raw camera with ``compressed``, or the reverse): the
    sentence naming the parameter to set, else None (auto, a topic that names its transport,
    nothing offered at all, or the chosen topic offered)."""
    if setting == "auto" or not offered:
        return None
    chosen = resolve_transport(sensor, topic, setting, offered)
    if chosen.topic in offered:
        return None
    other = resolve_transport(sensor, topic, "auto", offered)
    if other.topic == chosen.topic or other.topic not in offered:
        return None
    return (f"{sensor}: nothing is published on {chosen.topic} ({sensor}.transport {setting}), but {other.topic} "
            f"({other.transport}) is: set {sensor}.transport to auto or {'raw' if other.transport == 'raw' else 'compressed'}")


EVENT_PACKET = "event_camera_msgs/msg/EventPacket"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
_EVENT_FORMAT_OF = {IMAGE: "image", COMPRESSED_IMAGE: "image", POINT_CLOUD2: "cloud", EVENT_PACKET: "packet"}


def type_mismatch(sensor: str, topic: str, subscribed: str, offered: Sequence[str]) -> str | None:
    """The sentence naming the parameter to set when ``topic`` is published with types that do not
    include the one the node subscribes (``subscribed``, e.g. an event camera's EventPacket while
    ``event.format`` is image: nothing would ever arrive), else None (nothing offered, or it
    matches)."""
    offered = [t for t in offered if t]
    if not offered or subscribed in offered:
        return None
    have = " / ".join(sorted(set(offered)))
    text = f"{sensor}: {topic} is published as {have} but the node subscribes {subscribed}, so nothing arrives"
    fmt = next((_EVENT_FORMAT_OF[t] for t in offered if t in _EVENT_FORMAT_OF), None)
    if sensor == "event" and fmt is not None:
        return f"{text}: set event.format {fmt}"
    return f"{text}: set {sensor}.topic to a {subscribed} topic"
