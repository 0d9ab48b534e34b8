"""EventPacket ``libcaer`` / ``libcaer_cmp`` (iniVation cameras through libcaer_driver): packets built
token by token as the driver builds them, decoded against a literal port of event_camera_codecs'
decoders (the codec's own event counts and values), and equal to their evt3 twins.

References (read, not copied): ros-event-camera/libcaer_driver @1838b76:src/message_converter.cpp
(convert_polarity_packet, convert_polarity_packet_compressed, flush_state) and @06580fd:src/driver.cpp
(polarityPacketCallback: header, time_base, encoding); ros-event-camera/event_camera_codecs
@5770887:include/event_camera_codecs/libcaer_decoder.h (loopOverTime), @25da77b:.../libcaer_cmp_decoder.h
(doDecode), @bb38335:.../libcaer_cmp_types.h (token layout).
"""
from __future__ import annotations

import struct
from types import SimpleNamespace

import numpy as np
import pytest

from rmmss_ros.conversions import ConversionError
from rmmss_ros.conversions.event_packet import (
    EventStreamState,
    decode_event_packet,
    encode_evt3,
    encode_libcaer,
    encode_libcaer_cmp,
)

W, H = 640, 480  # DVXplorer
ROS_BASE = 1_700_000_000_000_000_000


def packet(encoding: str, data: bytes, time_base: int, stamp_ns: int, w=W, h=H, seq=0):
    return SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                               frame_id="camera"),
        height=h, width=w, seq=seq, time_base=time_base, encoding=encoding, is_bigendian=False, events=data)


# ------------------------------------------------------------------ the codecs, ported literally
def ref_libcaer(data: bytes, time_base: int):
    out = []
    ts_high, last = time_base, 0
    for off in range(0, len(data), 8):
        d, ts = struct.unpack_from("<Ii", data, off)
        if ts < last:
            ts_high += (1 << 31) * 1000
        out.append(((d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, ts_high + ts * 1000, (d >> 1) & 1))
        last = ts
    return out


class RefCmp:
    """event_camera_codecs libcaer_cmp Decoder::doDecode, member state kept between messages."""

    def __init__(self, w, h):
        self.w, self.h, self.ex, self.pol, self.base_y = w, h, 0, 0, 0

    def decode(self, data: bytes, time_base: int):
        out = []
        t_low = t_high = 0
        for (word,) in struct.iter_unpack("<H", data):
            code, rest = word >> 12, word & 0xFFF
            t = (t_high | t_low) * 1000 + time_base
            if code == 3:  # ADDR_Y
                y, p = rest & 0x7FF, (rest >> 11) & 1
                if self.ex < self.w and y < self.h:
                    out.append((self.ex, y, t, p))
            elif code == 2:
                self.ex = rest & 0x7FF
            elif code == 1:
                t_low = rest
            elif code == 0:
                t_high = rest << 12
            elif code == 4:
                self.pol, self.base_y = (rest >> 11) & 1, rest & 0x7FF
            elif code == 5:
                for i in range(8):
                    if rest & (1 << i):
                        ey = self.base_y + i
                        if self.ex < self.w and ey < self.h:
                            out.append((self.ex, ey, t, self.pol))
                self.base_y += 8
        return out


def as_tuples(ev):
    return list(zip(ev.x.tolist(), ev.y.tolist(), ev.t_ns.tolist(), ev.p.astype(int).tolist(), strict=True))


def dvxplorer_stream(n_packets=5, per_packet=400, seed=0, t0_us=5_000_000):
    """Realistic libcaer polarity packets: time-ordered, several events per microsecond (row
    readout: one x, neighbouring y), both polarities, duplicates and edge pixels."""
    rng = np.random.default_rng(seed)
    packets, t = [], t0_us
    for _ in range(n_packets):
        xs, ys, ts, ps = [], [], [], []
        while len(xs) < per_packet:
            t += int(rng.integers(0, 40))
            x = int(rng.integers(0, W))
            y0 = int(rng.integers(0, H))
            for _ in range(int(rng.integers(1, 6))):
                xs.append(x)
                ys.append(min(H - 1, y0 + int(rng.integers(0, 10))))
                ts.append(t)
                ps.append(int(rng.integers(0, 2)))
        packets.append(tuple(np.asarray(a, np.int64) for a in (xs, ys, ts, ps)))
    return packets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_libcaer_cmp_equals_the_codec_on_driver_built_messages(seed):
    state, ref = EventStreamState(), RefCmp(W, H)
    total = 0
    for m in range(3):  # three messages, each from several libcaer packets, state carried over
        pk = dvxplorer_stream(n_packets=4, seed=seed * 10 + m, t0_us=1_000_000 + m * 100_000)
        data, tb = encode_libcaer_cmp(pk, ROS_BASE)
        msg = packet("libcaer_cmp", data, tb, ROS_BASE + int(pk[0][2][0]) * 1000, seq=m)
        ev = decode_event_packet(msg, state)
        want = ref.decode(data, tb)
        assert len(ev) == len(want) > 0  # the codec's decoded count
        assert as_tuples(ev) == want
        total += len(ev)
    assert total > 3000


def test_libcaer_equals_the_codec_with_a_rollover_inside_the_packet():
    n = 300
    t = (1 << 31) - 150 + np.arange(n, dtype=np.int64)  # crosses the 31-bit sensor time rollover
    rng = np.random.default_rng(3)
    x, y, p = rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n)
    data, tb = encode_libcaer(x, y, t, p, ROS_BASE)
    msg = packet("libcaer", data, tb, ROS_BASE + int(t[0]) * 1000)
    ev = decode_event_packet(msg)
    assert as_tuples(ev) == ref_libcaer(data, tb)
    np.testing.assert_array_equal(ev.t_ns, ROS_BASE + t * 1000)  # continuous through the rollover
    np.testing.assert_array_equal(ev.x, x)


def twin_events(seed=0, n_groups=600, t0_us=2_000_000):
    """Events the driver's compressed encoding keeps exactly: sorted by (t, x, polarity, y), no
    duplicates, and consecutive groups in different 8-row bands (see the module doc's quirk)."""
    rng = np.random.default_rng(seed)
    xs, ys, ts, ps = [], [], [], []
    t, band = t0_us, -1
    for _ in range(n_groups):
        t += int(rng.integers(0, 3))
        nb = int(rng.integers(0, H // 8))
        while nb == band:
            nb = int(rng.integers(0, H // 8))
        band = nb
        rows = sorted(rng.choice(8, size=int(rng.integers(1, 5)), replace=False).tolist())
        x, p = int(rng.integers(0, W)), int(rng.integers(0, 2))
        for r in rows:
            xs.append(x)
            ys.append(8 * nb + r)
            ts.append(t)
            ps.append(p)
    return tuple(np.asarray(a, np.int64) for a in (xs, ys, ts, ps))


def test_libcaer_and_libcaer_cmp_decode_to_the_same_events_as_their_evt3_twin():
    x, y, t, p = twin_events()
    stamp = ROS_BASE + int(t[0]) * 1000
    evt3 = decode_event_packet(packet("evt3", encode_evt3(x, y, t, p), 0, stamp))
    raw_data, raw_tb = encode_libcaer(x, y, t, p, ROS_BASE)
    raw = decode_event_packet(packet("libcaer", raw_data, raw_tb, stamp))
    half = len(x) // 2  # two libcaer packets appended into one message
    cmp_data, cmp_tb = encode_libcaer_cmp([(x[:half], y[:half], t[:half], p[:half]),
                                          (x[half:], y[half:], t[half:], p[half:])], ROS_BASE)
    cmp = decode_event_packet(packet("libcaer_cmp", cmp_data, cmp_tb, stamp), EventStreamState())
    assert len(evt3) == len(x) > 1000
    for ev in (raw, cmp):
        for f in ("x", "y", "t_ns", "p"):
            np.testing.assert_array_equal(getattr(ev, f), getattr(evt3, f), err_msg=f)
    assert len(cmp_data) < len(raw_data) / 2  # the point of the compressed encoding


def test_driver_quirks_decode_as_the_codec_does():
    # duplicates collapse into one bit; a single event after a flush in the same 8-row band is
    # written with the previous event's y (libcaer_driver flush_state): the codec decodes that
    x, y = np.array([5, 5, 5, 5]), np.array([10, 10, 12, 12])
    t, p = np.array([100, 100, 101, 101]), np.array([1, 1, 1, 1])
    data, tb = encode_libcaer_cmp([(x, y, t, p)], ROS_BASE)
    ev = decode_event_packet(packet("libcaer_cmp", data, tb, ROS_BASE + 100_000), EventStreamState())
    assert as_tuples(ev) == RefCmp(W, H).decode(data, tb)
    assert ev.y.tolist() == [10, 10]


def test_libcaer_times_before_the_driver_set_its_base_time_are_anchored_at_the_stamp():
    x, y, t, p = twin_events(n_groups=50)
    data, tb = encode_libcaer(x, y, t, p, ros_base_ns=0)  # rosBaseTime_ not set yet: sensor time only
    stamp = ROS_BASE
    ev = decode_event_packet(packet("libcaer", data, tb, stamp))
    assert int(ev.t_ns[0]) == stamp
    np.testing.assert_array_equal(ev.t_ns - stamp, (t - t[0]) * 1000)


def test_events_outside_the_sensor_are_dropped():
    x, y, t, p = np.array([1, 700, 3]), np.array([2, 3, 500]), np.array([10, 11, 12]), np.array([0, 1, 1])
    data, tb = encode_libcaer(x, y, t, p, ROS_BASE)
    ev = decode_event_packet(packet("libcaer", data, tb, ROS_BASE))
    assert ev.x.tolist() == [1]


@pytest.mark.parametrize("encoding,data,match", [
    ("libcaer", b"\x00" * 12, "not a multiple of 8"),
    ("libcaer", struct.pack("<Ii", 1 << 17, -5), "negative timestamp"),
    ("libcaer_cmp", b"\x00" * 3, "not a multiple of 2"),
    ("libcaer_cmp", struct.pack("<HH", 0x2005, 0x6001), "code 6"),
    ("libcaer_cmp", struct.pack("<H", 0xF000), "code 15"),
])
def test_undecodable_libcaer_packets_are_errors(encoding, data, match):
    with pytest.raises(ConversionError, match=match):
        decode_event_packet(packet(encoding, data, ROS_BASE, ROS_BASE), EventStreamState())
