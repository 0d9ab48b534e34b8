"""``event_camera_msgs/msg/EventPacket`` decoding without ROS (duck-typed messages, numpy).

Message (ros-event-camera/event_camera_msgs@e5ae21b:msg_ros2/EventPacket.msg): ``header``,
``height``, ``width``, ``seq``, ``time_base``, ``encoding``, ``is_bigendian``, ``events``
(uint8[]). Two encodings are decoded, following the public format docs
(ros-event-camera/event_camera_msgs README "Encoding schemes", and
ros-event-camera/event_camera_codecs@0b7fcb4:include/event_camera_codecs/mono_decoder.h,
@035ea5d:include/event_camera_codecs/evt3_decoder.h, @07eb559:.../evt3_types.h):

* ``mono``: one 64-bit word per event: bit 63 polarity (1 = ON), bits 48-62 y, 32-47 x, 0-31 dt
  in ns. ROS time of an event = ``header.stamp + dt`` (the README's "best estimate ROS time").
* ``evt3`` (Prophesee EVT 3.0): 16-bit words, code = bits 12-15: ADDR_Y (0: y 11 bits),
  ADDR_X (2: x 11 bits, polarity bit 11: one event), VECT_BASE_X (3: base x, polarity),
  VECT_12 (4) / VECT_8 (5): a validity mask of 12 / 8 events at base x.., base x advances by
  12 / 8), TIME_LOW (6: low 12 bits of the us time), TIME_HIGH (8: high 12 bits, with rollover
  of the 24-bit time), EXT_TRIGGER (10), OTHERS (14), CONTINUED (7, 15) and padding (9) carry no
  CD event. The decoder state (time, y, base x, polarity) carries over from packet to packet, as
  in the codecs; events before the first TIME_HIGH + TIME_LOW pair are skipped. Sensor time is in
  microseconds; the EventPacket's ``time_base`` is undefined for evt3, so ROS time of an event is
  ``header.stamp + (t_sensor - t_sensor of the packet's first event)`` (the driver stamps the
  packet with the host time of its first event).

Decoded events: ``x``, ``y`` int64, ``t_ns`` int64 ROS time, ``p`` bool (True = ON), time-ordered
as in the packet. Events outside ``width`` x ``height`` are dropped, as the codecs do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rmmss_ros.conversions.common import ConversionError, as_bytes_view, stamp_to_ns

EVENT_PACKET = "event_camera_msgs/msg/EventPacket"
EVENT_ENCODINGS = ("mono", "evt3")
# the public message definition (registered with rosbags for bags, see rmmss_ros.bag.messages)
EVENT_PACKET_MSG = """std_msgs/Header header
uint32 height
uint32 width
uint64 seq
uint64 time_base
string encoding
bool is_bigendian
uint8[] events
"""


@dataclass
class Events:
    """Decoded events, length N: pixel ``x``, ``y`` (int64), ``t_ns`` ROS time (int64), ``p``."""

    x: np.ndarray
    y: np.ndarray
    t_ns: np.ndarray
    p: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def empty(cls) -> Events:
        z = np.zeros(0, np.int64)
        return cls(z, z.copy(), z.copy(), np.zeros(0, bool))


def decode_mono(data: np.ndarray, stamp_ns: int, width: int, height: int, big: bool = False) -> Events:
    """``mono`` bytes -> Events (t = stamp + dt)."""
    if data.size % 8:
        raise ConversionError(f"event packet: mono data has {data.size} bytes, not a multiple of 8")
    w = np.frombuffer(data.tobytes() if not data.flags.c_contiguous else data, dtype=">u8" if big else "<u8")
    x = ((w >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.int64)
    y = ((w >> np.uint64(48)) & np.uint64(0x7FFF)).astype(np.int64)
    t = (w & np.uint64(0xFFFFFFFF)).astype(np.int64) + np.int64(stamp_ns)
    p = (w >> np.uint64(63)).astype(bool)
    keep = (x < width) & (y < height)
    return Events(x[keep], y[keep], t[keep], p[keep]) if not keep.all() else Events(x, y, t, p)


def _ffill(mask: np.ndarray, values: np.ndarray, init: int) -> np.ndarray:
    """Per word: the value at the last position <= i where ``mask`` holds, else ``init``."""
    n = mask.size
    last = np.where(mask, np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    out = np.where(last >= 0, values[np.maximum(last, 0)], init)
    return out.astype(np.int64)


class Evt3Decoder:
    """Stateful EVT 3.0 decoder (one per event camera): see the module doc."""

    ROLLOVER_MIN_DISTANCE = 10  # a TIME_HIGH that goes back by less is jitter, not a rollover

    def __init__(self):
        self.time_high = 0  # (rollovers << 24) | (high << 12)
        self.time_low = 0
        self.y = 0
        self.base_x = 0
        self.polarity = 0
        self.valid_time = False
        self._seen_high = False

    def decode(self, data: np.ndarray, width: int, height: int, big: bool = False) -> tuple[np.ndarray, ...]:
        """evt3 bytes -> (x, y, t_us sensor time, p) int64/bool arrays."""
        if data.size % 2:
            raise ConversionError(f"event packet: evt3 data has {data.size} bytes, not a multiple of 2")
        w = np.frombuffer(data.tobytes(), dtype=">u2" if big else "<u2").astype(np.int64)
        n = w.size
        code, val = w >> 12, w & 0xFFF
        bad = ~np.isin(code, (0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15))
        if bad.any():
            raise ConversionError(f"event packet: evt3 word {int(np.flatnonzero(bad)[0])} has unknown code "
                                  f"{int(code[bad][0])} (corrupt data or not evt3)")
        # TIME_HIGH with rollover (24-bit sensor time in us)
        is_th = code == 8
        th = val[is_th]
        prev = np.concatenate([[(self.time_high >> 12) & 0xFFF], th[:-1]])
        roll = np.cumsum((th < prev) & (prev - th > self.ROLLOVER_MIN_DISTANCE))
        high_vals = ((self.time_high >> 24) + roll) << 24 | (th << 12)
        high_full = np.zeros(n, np.int64)
        high_full[is_th] = high_vals
        high = _ffill(is_th, high_full, self.time_high)
        is_tl = code == 6
        low = _ffill(is_tl, val, self.time_low)
        # time is valid from the first TIME_LOW after a TIME_HIGH (codecs' findValidTime)
        if self.valid_time:
            valid = np.ones(n, bool)
        else:
            seen_high = np.logical_or.accumulate(is_th) | self._seen_high
            valid = np.logical_or.accumulate(is_tl & seen_high)
        y = _ffill(code == 0, val & 0x7FF, self.y)
        # vectors: base x from the last VECT_BASE_X, advanced by the widths of the vectors since
        is_vb = code == 3
        width_w = np.where(code == 4, 12, np.where(code == 5, 8, 0))
        cum_excl = np.cumsum(width_w) - width_w
        base = _ffill(is_vb, val & 0x7FF, self.base_x)
        base_cum = _ffill(is_vb, cum_excl, 0)
        pol_v = _ffill(is_vb, (val >> 11) & 1, self.polarity)
        t_us = high | low
        # single events
        ax = np.flatnonzero((code == 2) & valid)
        xs, ys, ts, ps, order = [val[ax] & 0x7FF], [y[ax]], [t_us[ax]], [(val[ax] >> 11) & 1], [ax * 16]
        # vector events
        vi = np.flatnonzero((width_w > 0) & valid)
        if vi.size:
            bits = (val[vi, None] >> np.arange(12)) & 1
            bits[:, 8:] *= (width_w[vi, None] == 12)
            r, c = np.nonzero(bits)
            wi = vi[r]
            xs.append(base[wi] + (cum_excl[wi] - base_cum[wi]) + c)
            ys.append(y[wi])
            ts.append(t_us[wi])
            ps.append(pol_v[wi])
            order.append(wi * 16 + c)
        x, yy, t, p, o = (np.concatenate(a) for a in (xs, ys, ts, ps, order))
        srt = np.argsort(o, kind="stable")
        x, yy, t, p = x[srt], yy[srt], t[srt], p[srt].astype(bool)
        keep = (x < width) & (yy < height)
        # carry the state to the next packet
        if n:
            self.time_high, self.time_low, self.y = int(high[-1]), int(low[-1]), int(y[-1])
            self.base_x = int(base[-1] + (cum_excl[-1] + width_w[-1] - base_cum[-1]))
            self.polarity = int(pol_v[-1])
            self.valid_time = bool(valid[-1])
            self._seen_high = self._seen_high or bool(is_th.any())
        return x[keep], yy[keep], t[keep], p[keep]


def decode_event_packet(msg: Any, evt3: Evt3Decoder | None = None, what: str = "event") -> Events:
    """EventPacket -> Events in ROS time (see the module doc). ``evt3``: the camera's decoder
    state (a fresh one if None: a packet is then decoded on its own). Raises ConversionError for
    other encodings or malformed data."""
    enc = str(msg.encoding)
    w, h = int(msg.width), int(msg.height)
    if w <= 0 or h <= 0:
        raise ConversionError(f"{what}: event packet has no sensor size ({w} x {h})")
    data = as_bytes_view(msg.events, what)
    stamp = stamp_to_ns(msg.header.stamp)
    big = bool(msg.is_bigendian)
    if enc == "mono":
        return decode_mono(data, stamp, w, h, big)
    if enc == "evt3":
        dec = evt3 or Evt3Decoder()
        x, y, t_us, p = dec.decode(data, w, h, big)
        if x.size == 0:
            return Events.empty()
        t_ns = (t_us - t_us[0]) * 1000 + stamp
        return Events(x, y, t_ns, p)
    raise ConversionError(f"{what}: unsupported event packet encoding {enc!r}; supported: {list(EVENT_ENCODINGS)}")


def encode_mono(x: np.ndarray, y: np.ndarray, dt_ns: np.ndarray, p: np.ndarray) -> bytes:
    """Events -> ``mono`` bytes (little-endian; for tests, bags and benchmarks)."""
    w = (np.asarray(dt_ns, np.uint64) & np.uint64(0xFFFFFFFF)) | (np.asarray(x, np.uint64) << np.uint64(32)) \
        | (np.asarray(y, np.uint64) << np.uint64(48)) | (np.asarray(p, np.uint64) << np.uint64(63))
    return w.astype("<u8").tobytes()


def encode_evt3(x: np.ndarray, y: np.ndarray, t_us: np.ndarray, p: np.ndarray) -> bytes:
    """Time-ordered events -> evt3 words (TIME_HIGH / TIME_LOW when the time changes, ADDR_Y when
    y changes, one ADDR_X per event; little-endian). For tests, bags and benchmarks."""
    words: list[int] = []
    last_high = last_low = last_y = None
    for xi, yi, ti, pi in zip(np.asarray(x), np.asarray(y), np.asarray(t_us), np.asarray(p), strict=True):
        ti = int(ti) & 0xFFFFFF
        if ti >> 12 != last_high:
            words.append(0x8000 | (ti >> 12))
            last_high = ti >> 12
            last_low = None
        if ti & 0xFFF != last_low:
            words.append(0x6000 | (ti & 0xFFF))
            last_low = ti & 0xFFF
        if int(yi) != last_y:
            words.append(int(yi) & 0x7FF)
            last_y = int(yi)
        words.append(0x2000 | (int(bool(pi)) << 11) | (int(xi) & 0x7FF))
    return np.asarray(words, dtype="<u2").tobytes()
