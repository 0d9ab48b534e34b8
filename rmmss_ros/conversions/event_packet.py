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

* ``libcaer`` (iniVation DVXplorer / DAVIS through ros-event-camera/libcaer_driver
  @1838b76:src/message_converter.cpp:33-55 ``convert_polarity_packet``: libcaer's polarity events
  copied as they are): 8 bytes per event, little-endian uint32 ``data`` (bit 0 libcaer's valid
  mark, bit 1 polarity, bits 2-16 y, bits 17-31 x) and int32 ``timestamp`` (the low 31 bits of
  the sensor time in us). Decoded as event_camera_codecs does
  (@5770887:include/event_camera_codecs/libcaer_decoder.h, ``loopOverTime``): ``t = time_base +
  ts x 1000`` ns, plus 2^31 us each time ``ts`` goes back within the packet (rollover); the
  valid mark is not read (the codec decodes every event in the packet).
* ``libcaer_cmp`` (the driver's default, @1838b76:src/message_converter.cpp:58-146
  ``convert_polarity_packet_compressed``): 16-bit words, code = bits 12-15
  (@bb38335:include/event_camera_codecs/libcaer_cmp_types.h): TIME_HIGH (0: bits 12-23 of the
  time since the message's first event, us), TIME_LOW (1: bits 0-11), ADDR_X (2: x, 11 bits),
  ADDR_Y (3: y 11 bits + polarity bit 11: one event at the current x), VECT_BASE_Y (4: base y +
  polarity), VECT_8 (5: 8 valid bits, event i at base y + i; base y advances by 8). Decoded as
  the codec does (@25da77b:include/event_camera_codecs/libcaer_cmp_decoder.h ``doDecode``): the
  time restarts at 0 in every message, ``t = time_base + (high | low) x 1000`` ns; the current x,
  polarity and base y carry over between messages. Codes the driver never writes (VECT_12 = 6
  and 7-15) make the packet malformed (the codec's ``summarize`` refuses them too).
  The driver's encoder collapses duplicate events (same x, y, time, polarity) into one bit, and
  a single event after a flush whose y shares the previous event's upper 13 bits is written with
  that previous event's y (``flush_state`` writes ``AddrY(currentY)``): the codec decodes what
  the packet holds, and so do we.
* Time of libcaer / libcaer_cmp events: ``time_base`` is the driver's ROS base time plus the
  sensor's elapsed time, so the decoded times are ROS times (the codecs'
  ``hasSensorTimeSinceEpoch``). Until the driver has set its base time (``time_reset_delay``,
  2 s after start-up) they are not: when the first decoded event is more than 1 s from
  ``header.stamp`` the packet's times are anchored at ``header.stamp`` as for evt3.

Decoded events: ``x``, ``y`` int64, ``t_ns`` int64 ROS time, ``p`` bool (True = ON), time-ordered
as in the packet. Events outside ``width`` x ``height`` are dropped, as the codecs do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rmmss_ros.conversions.common import ConversionError, as_bytes_view, stamp_to_ns

EVENT_PACKET = "event_camera_msgs/msg/EventPacket"
EVENT_ENCODINGS = ("mono", "evt3", "libcaer", "libcaer_cmp")
ANCHOR_TOLERANCE_NS = 1_000_000_000  # libcaer times further than this from header.stamp are re-anchored
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


def _in_word_order(xs: list, ys: list, ts: list, ps: list, order: list) -> tuple[np.ndarray, ...]:
    """Concatenate the single-event and vector-event parts (lists of (N_i,) arrays) and sort them
    by ``order`` (word index * bits per word + bit), the order the sensor emitted them in.
    Returns ``x, y, t, polarity`` (polarity as bool)."""
    x, y, t, p, o = (np.concatenate(a) for a in (xs, ys, ts, ps, order))
    srt = np.argsort(o, kind="stable")
    return x[srt], y[srt], t[srt], p[srt].astype(bool)


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
        x, yy, t, p = _in_word_order(xs, ys, ts, ps, order)
        keep = (x < width) & (yy < height)
        # carry the state to the next packet
        if n:
            self.time_high, self.time_low, self.y = int(high[-1]), int(low[-1]), int(y[-1])
            self.base_x = int(base[-1] + (cum_excl[-1] + width_w[-1] - base_cum[-1]))
            self.polarity = int(pol_v[-1])
            self.valid_time = bool(valid[-1])
            self._seen_high = self._seen_high or bool(is_th.any())
        return x[keep], yy[keep], t[keep], p[keep]


def decode_libcaer(data: np.ndarray, time_base: int, width: int, height: int,
                   big: bool = False) -> tuple[np.ndarray, ...]:
    """``libcaer`` bytes -> (x, y, t_ns codec time, p) int64/bool arrays (see the module doc)."""
    if data.size % 8:
        raise ConversionError(f"event packet: libcaer data has {data.size} bytes, not a multiple of 8")
    e = "<" if not big else ">"
    rec = np.frombuffer(data.tobytes() if not data.flags.c_contiguous else data,
                        dtype=np.dtype([("d", e + "u4"), ("t", e + "i4")]))
    ts = rec["t"].astype(np.int64)
    if ts.size and ts.min() < 0:
        raise ConversionError(f"event packet: libcaer event {int(np.flatnonzero(ts < 0)[0])} has a negative "
                              f"timestamp {int(ts.min())} (corrupt data or not libcaer)")
    d = rec["d"].astype(np.int64)
    x = (d >> 17) & 0x7FFF
    y = (d >> 2) & 0x7FFF
    p = ((d >> 1) & 1).astype(bool)
    rolls = np.cumsum(np.concatenate([[0], (ts[1:] < ts[:-1]).astype(np.int64)])) if ts.size else ts
    t = int(time_base) + (ts + (rolls << 31)) * 1000
    keep = (x < width) & (y < height)
    return x[keep], y[keep], t[keep], p[keep]


class LibcaerCmpDecoder:
    """``libcaer_cmp`` decoder (one per event camera): the current x, polarity and base y carry
    over between messages as in the codec; the time restarts in every message."""

    def __init__(self):
        self.x = 0
        self.polarity = 0
        self.base_y = 0

    def decode(self, data: np.ndarray, time_base: int, width: int, height: int,
               big: bool = False) -> tuple[np.ndarray, ...]:
        """libcaer_cmp bytes -> (x, y, t_ns codec time, p) int64/bool arrays."""
        if data.size % 2:
            raise ConversionError(f"event packet: libcaer_cmp data has {data.size} bytes, not a multiple of 2")
        w = np.frombuffer(data.tobytes(), dtype=">u2" if big else "<u2").astype(np.int64)
        n = w.size
        code, val = w >> 12, w & 0xFFF
        bad = code > 5
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ConversionError(f"event packet: libcaer_cmp word {i} has code {int(code[i])}, which the "
                                  "libcaer driver never writes (corrupt data or not libcaer_cmp)")
        high = _ffill(code == 0, val << 12, 0)
        low = _ffill(code == 1, val, 0)
        t = int(time_base) + (high | low) * 1000
        ex = _ffill(code == 2, val & 0x7FF, self.x)
        is_vb, is_v8 = code == 4, code == 5
        pol_v = _ffill(is_vb, (val >> 11) & 1, self.polarity)
        n8 = np.cumsum(is_v8) - is_v8  # VECT_8 words before this one
        base = _ffill(is_vb, val & 0x7FF, self.base_y)
        base_n8 = _ffill(is_vb, n8, 0)
        # single events (ADDR_Y)
        ai = np.flatnonzero(code == 3)
        xs, ys, ts, ps, order = [ex[ai]], [val[ai] & 0x7FF], [t[ai]], [(val[ai] >> 11) & 1], [ai * 8]
        vi = np.flatnonzero(is_v8)
        if vi.size:
            bits = (val[vi, None] >> np.arange(8)) & 1
            r, c = np.nonzero(bits)
            wi = vi[r]
            xs.append(ex[wi])
            ys.append(base[wi] + 8 * (n8[wi] - base_n8[wi]) + c)
            ts.append(t[wi])
            ps.append(pol_v[wi])
            order.append(wi * 8 + c)
        x, y, tt, p = _in_word_order(xs, ys, ts, ps, order)
        if n:
            self.x = int(ex[-1])
            self.polarity = int(pol_v[-1])
            self.base_y = int(base[-1] + 8 * (n8[-1] + int(is_v8[-1]) - base_n8[-1]))
        keep = (x < width) & (y < height)
        return x[keep], y[keep], tt[keep], p[keep]


class EventStreamState:
    """Per-camera decoder state of the stateful encodings (evt3, libcaer_cmp)."""

    def __init__(self):
        self.evt3 = Evt3Decoder()
        self.libcaer_cmp = LibcaerCmpDecoder()


def _anchored(t_ns: np.ndarray, stamp_ns: int) -> np.ndarray:
    """Codec times, or (more than 1 s from ``header.stamp``: the driver's base time not set yet)
    the same times shifted so that the first event is at ``header.stamp``."""
    if t_ns.size and abs(int(t_ns[0]) - stamp_ns) > ANCHOR_TOLERANCE_NS:
        return t_ns - t_ns[0] + stamp_ns
    return t_ns


def decode_event_packet(msg: Any, state: EventStreamState | Evt3Decoder | None = None,
                        what: str = "event") -> Events:
    """EventPacket -> Events in ROS time (see the module doc). ``state``: the camera's decoder state
    (an :class:`EventStreamState`; an :class:`Evt3Decoder` serves evt3 alone; None: a fresh state,
    the packet decoded on its own). Raises ConversionError for other encodings or malformed data."""
    enc = str(msg.encoding)
    w, h = int(msg.width), int(msg.height)
    if w <= 0 or h <= 0:
        raise ConversionError(f"{what}: event packet has no sensor size ({w} x {h})")
    data = as_bytes_view(msg.events, what)
    stamp = stamp_to_ns(msg.header.stamp)
    big = bool(msg.is_bigendian)
    try:
        if enc == "mono":
            return decode_mono(data, stamp, w, h, big)
        if enc == "evt3":
            dec = state if isinstance(state, Evt3Decoder) else state.evt3 if state is not None else Evt3Decoder()
            x, y, t_us, p = dec.decode(data, w, h, big)
            if x.size == 0:
                return Events.empty()
            t_ns = (t_us - t_us[0]) * 1000 + stamp
            return Events(x, y, t_ns, p)
        if enc == "libcaer":
            x, y, t_ns, p = decode_libcaer(data, int(msg.time_base), w, h, big)
            return Events(x, y, _anchored(t_ns, stamp), p)
        if enc == "libcaer_cmp":
            cmp = state.libcaer_cmp if isinstance(state, EventStreamState) else LibcaerCmpDecoder()
            x, y, t_ns, p = cmp.decode(data, int(msg.time_base), w, h, big)
            return Events(x, y, _anchored(t_ns, stamp), p)
    except ConversionError as e:
        text = str(e)
        raise ConversionError(text if text.startswith(f"{what}:") else f"{what}: {text}") from None
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


def encode_libcaer(x: np.ndarray, y: np.ndarray, t_us: np.ndarray, p: np.ndarray,
                   ros_base_ns: int = 0) -> tuple[bytes, int]:
    """Time-ordered events of one libcaer polarity packet (``t_us``: the 64-bit sensor time in us)
    -> (``events`` bytes, ``time_base``) as libcaer_driver's ``convert_polarity_packet`` builds
    them: libcaer's 8-byte events (valid mark set) and ``time_base`` = ``ros_base_ns`` + the
    high (overflow) bits of the first event's time x 1000. For tests, bags and benchmarks."""
    t = np.asarray(t_us, np.int64)
    if t.size == 0:
        return b"", 0
    data = (np.asarray(x, np.int64) << 17) | (np.asarray(y, np.int64) << 2) \
        | (np.asarray(p, np.int64).astype(bool).astype(np.int64) << 1) | 1
    rec = np.empty(t.size, dtype=[("d", "<u4"), ("t", "<i4")])
    rec["d"] = data.astype(np.uint32)
    rec["t"] = (t & ((1 << 31) - 1)).astype(np.int32)
    high = int(t[0]) & ~((1 << 31) - 1)
    return rec.tobytes(), high * 1000 + int(ros_base_ns)


def _cmp_flush(out: list[int], mask: int, y: int, y_high: int, pol: int) -> int:
    """libcaer_driver's flush_state: one ADDR_Y for a single bit (with the current y), else
    VECT_BASE_Y + VECT_8. Returns the cleared mask."""
    if mask:
        if bin(mask).count("1") == 1:
            out.append((3 << 12) | ((pol & 1) << 11) | (y & 0x7FF))
        else:
            out.append((4 << 12) | ((pol & 1) << 11) | (y_high & 0x7FF))
            out.append((5 << 12) | mask)
    return 0


def encode_libcaer_cmp(packets: list[tuple[np.ndarray, ...]], ros_base_ns: int = 0) -> tuple[bytes, int]:
    """libcaer polarity packets (each ``(x, y, t_us, p)``, time-ordered) appended into one
    EventPacket -> (``events`` bytes, ``time_base``) token by token as libcaer_driver's
    ``convert_polarity_packet_compressed`` writes them (its quirks included: see the module doc).
    For tests, bags and benchmarks."""
    out: list[int] = []
    time_base = 0
    t0 = None
    y_high_mask = 0xFFF8
    for px, py, pt, pp in packets:
        pt = [int(v) for v in pt]
        if not pt:
            continue
        if not out and t0 is None:
            time_base = pt[0] * 1000 + int(ros_base_ns)
            t0 = pt[0]
        dt0 = pt[0] - t0
        t_high, t_low = dt0 & 0xFFF000, dt0 & 0xFFF
        cur_x = int(px[0])
        out.append((2 << 12) | (cur_x & 0x7FF))
        cur_y = 0xFFFF
        cur_y_high = cur_y & y_high_mask
        mask = 0
        cur_pol = 2

        for xi, yi, ti, pi in zip(px, py, pt, pp, strict=True):
            xi, yi, pi = int(xi), int(yi), int(bool(pi))
            dt = ti - t0
            if (dt & 0xFFF000) != t_high:
                t_high = dt & 0xFFF000
                mask = _cmp_flush(out, mask, cur_y, cur_y_high, cur_pol)
                out.append((0 << 12) | ((t_high >> 12) & 0xFFF))
            if (dt & 0xFFF) != t_low:
                t_low = dt & 0xFFF
                mask = _cmp_flush(out, mask, cur_y, cur_y_high, cur_pol)
                out.append((1 << 12) | t_low)
            if xi != cur_x:
                mask = _cmp_flush(out, mask, cur_y, cur_y_high, cur_pol)
                cur_x = xi
                out.append((2 << 12) | (cur_x & 0x7FF))
            if pi != cur_pol:
                mask = _cmp_flush(out, mask, cur_y, cur_y_high, cur_pol)
                cur_pol = pi
            if (yi & y_high_mask) != cur_y_high:
                mask = _cmp_flush(out, mask, cur_y, cur_y_high, cur_pol)
                cur_y_high = yi & y_high_mask
                cur_y = yi
            mask |= 1 << (yi & 7)
        mask = _cmp_flush(out, mask, cur_y, cur_y_high, cur_pol)
    return np.asarray(out, dtype="<u2").tobytes(), time_base
