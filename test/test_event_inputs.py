"""Event streams as real drivers send them (issue #12): many small packets (PointCloud2 x, y, t,
polarity or event_camera_msgs/EventPacket mono / evt3), a separate event camera with its own
CameraInfo and extrinsic, and the MUSES SDK's calibration keys."""
from __future__ import annotations

import json
from types import SimpleNamespace as NS

import h5py
import numpy as np
import pytest

from rmmss_core.data.muses import MusesDataset, muses_spec
from rmmss_core.spec import EventEncoding, PreprocessSpec
from rmmss_ros.conversions import Evt3Decoder, decode_event_packet
from rmmss_ros.conversions.event_packet import encode_evt3, encode_mono
from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams
from rmmss_ros.sync.event_buffer import EventBuffer

STAMP = 100 * 10**9  # frame stamp (ns)


def hdr(ns: int) -> NS:
    return NS(stamp=NS(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="event")


def event_cloud(x, y, t_rel_ns, p, stamp_ns: int) -> NS:
    """PointCloud2 of events: x, y uint16, t uint32 ns relative to header.stamp, polarity uint8."""
    dt = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<u4"), ("polarity", "u1")])
    a = np.zeros(len(x), dt)
    a["x"], a["y"], a["t"], a["polarity"] = x, y, t_rel_ns, p
    fields = [NS(name=n, offset=dt.fields[n][1], datatype={"x": 4, "y": 4, "t": 6, "polarity": 2}[n], count=1)
              for n in dt.names]
    return NS(header=hdr(stamp_ns), height=1, width=len(a), fields=fields, is_bigendian=False,
              point_step=dt.itemsize, row_step=dt.itemsize * len(a), data=a.tobytes(), is_dense=True)


def packet(x, y, t_rel_ns, p, stamp_ns: int, encoding="mono", w=64, h=48, seq=0) -> NS:
    if encoding == "mono":
        data = encode_mono(x, y, t_rel_ns, p)
    else:
        data = encode_evt3(x, y, (np.asarray(t_rel_ns) // 1000) + stamp_ns // 1000, p)
    return NS(header=hdr(stamp_ns), height=h, width=w, seq=seq, time_base=0, encoding=encoding,
              is_bigendian=False, events=data)


def one_ms_stream(make, rng, t_from_ms=-45, t_to_ms=5, per_packet=20, w=64, h=48):
    """1 ms packets from t_from to t_to (ms, relative to the frame): (messages, all events)."""
    msgs, evs = [], []
    for k, t0 in enumerate(range(t_from_ms, t_to_ms)):
        stamp = STAMP + t0 * 10**6
        x, y = rng.integers(0, w, per_packet), rng.integers(0, h, per_packet)
        dt = np.sort(rng.integers(0, 10**6, per_packet))
        p = rng.integers(0, 2, per_packet)
        msgs.append(make(x, y, dt, p, stamp, seq=k) if make is packet else make(x, y, dt, p, stamp))
        evs.append((x, y, stamp + dt, p))
    x, y, t, p = (np.concatenate(a) for a in zip(*evs, strict=True))
    return msgs, x, y, t, p


def _pipe(fmt, spec=None, **kw):
    spec = spec or PreprocessSpec(input_size=(48, 64), event=EventEncoding(window_s=0.03, count_scale=255.0),
                                  quantize_8bit=False)
    return Pipeline(NS(spec=spec, infer=None), PipelineParams(event_format=fmt, **kw))


def _frame(msg):
    return NS(stamp_ns=STAMP, messages={"event": msg}, missing=())


@pytest.mark.parametrize("make,fmt", [(event_cloud, "cloud"), (packet, "packet")])
def test_every_event_of_the_window_is_accumulated_across_1ms_packets(make, fmt):
    """Failure 4: only the matched packet was used (35% of a 30 ms window with 10 ms packets, 1/30
    with 1 ms packets). Now 100% of the events in (stamp - 30 ms, stamp] reach the event image."""
    rng = np.random.default_rng(0)
    msgs, x, y, t, p = one_ms_stream(make, rng)
    pipe = _pipe(fmt)
    for m in msgs:  # what the node's subscription does for every packet
        assert pipe.add_event_message(m) is None
    matched = min(msgs, key=lambda m: abs(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec - STAMP))
    prep = pipe.prepare(_frame(matched), NS(width=64, height=48, k=[40.0, 0, 31.5, 0, 40.0, 23.5, 0, 0, 1],
                                            d=[0.0] * 5, p=[0.0] * 12, distortion_model="plumb_bob"))
    assert not prep.errors and "event" in prep.used
    inw = (t > STAMP - 30 * 10**6) & (t <= STAMP)
    want = np.zeros((48, 64, 2))
    np.add.at(want, (y[inw], x[inw], (p[inw] == 0).astype(int)), 1)
    img = prep.inputs["event"][0].numpy()  # normalisation is identity for events: counts / 255
    np.testing.assert_allclose(img[:2].transpose(1, 2, 0) * 255, want, atol=1e-3)
    assert want.sum() == inw.sum() and inw.sum() > 0.5 * len(t)  # 100% of the window's events
    assert len(pipe.event_buffer.window(STAMP, 0.03)) == inw.sum()


def test_buffer_bounds_memory_and_skips_duplicates():
    from rmmss_ros.conversions import Events

    buf, small = EventBuffer(horizon_s=0.05), EventBuffer(horizon_s=1.0, max_events=100)
    for k in range(100):  # 1 ms packets of 10 events
        t = np.arange(10, dtype=np.int64) * 10**5 + k * 10**6
        for b in (buf, small):
            b.add(Events(np.zeros(10, np.int64), np.zeros(10, np.int64), t, np.ones(10, bool)))
    assert 500 <= len(buf) <= 520  # 50 ms horizon: 51 packets kept, the older ones dropped
    assert len(buf.window(99_950_000, 0.01)) == 100 and buf.dropped == 0  # (89.95, 99.95] ms
    assert len(small) <= 100 and small.dropped == 900  # over the count bound: dropped and counted
    assert not buf.seen(("a", 1)) and buf.seen(("a", 1))


def test_evt3_decoding_vectors_rollover_and_state_across_packets():
    words = [0x8000 | 1, 0x6000 | 5, 7, 0x3000 | (1 << 11) | 100, 0x4000 | 0b101000000001, 0x5000 | 0b10000001,
             0x2000 | 30, 0xE000 | 0x19, 0x9000]
    ev = decode_event_packet(NS(header=hdr(STAMP), width=640, height=480, encoding="evt3", is_bigendian=False,
                                events=np.asarray(words, "<u2").tobytes()))
    np.testing.assert_array_equal(ev.x, [100, 109, 111, 112, 119, 30])
    np.testing.assert_array_equal(ev.y, [7] * 6)
    np.testing.assert_array_equal(ev.p, [True] * 5 + [False])
    assert (ev.t_ns == STAMP).all()
    # random stream split into packets mid-state (y, time carried over), time crossing a TIME_HIGH
    rng = np.random.default_rng(1)
    n = 3000
    x, y, p = rng.integers(0, 640, n), rng.integers(0, 480, n), rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 40000, n)) + 16_770_000  # us, rolls over the 24-bit time
    raw = encode_evt3(x, y, t, p)
    dec, got = Evt3Decoder(), []
    cuts = [0, 1000, 2502, len(raw) // 2 * 2 - 200, len(raw)]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        msg = NS(header=hdr(STAMP), width=640, height=480, encoding="evt3", is_bigendian=False, events=raw[a:b])
        got.append(dec.decode(np.frombuffer(raw[a:b], np.uint8), 640, 480))
    gx, gy, gt, gp = (np.concatenate([g[i] for g in got]) for i in range(4))
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    np.testing.assert_array_equal(gp, p.astype(bool))
    np.testing.assert_array_equal(gt - gt[0], t - t[0])  # monotonic across the 2^24 us rollover
    assert msg.encoding == "evt3"
    with pytest.raises(ValueError, match="unsupported event packet encoding 'trigger'"):
        decode_event_packet(NS(header=hdr(0), width=4, height=4, encoding="trigger", is_bigendian=False, events=b""))


def test_mono_packet_times_follow_the_header_stamp():
    msg = packet([1, 2], [3, 4], [0, 999_999], [1, 0], STAMP)
    ev = decode_event_packet(msg)
    np.testing.assert_array_equal(ev.t_ns, [STAMP, STAMP + 999_999])
    np.testing.assert_array_equal(ev.p, [True, False])
    bad = packet([1], [1], [0], [1], STAMP)
    bad.events = bad.events[:5]
    with pytest.raises(ValueError, match="not a multiple of 8"):
        decode_event_packet(bad)


def _info(w, h, fx, cx=None, cy=None):
    cx = (w - 1) / 2 if cx is None else cx
    cy = (h - 1) / 2 if cy is None else cy
    k = [fx, 0, cx, 0, fx, cy, 0, 0, 1]
    return NS(width=w, height=h, k=k, d=[0.0] * 5, p=[fx, 0, cx, 0, 0, fx, cy, 0, 0, 0, 1, 0],
              distortion_model="plumb_bob")


def _burst(cx, cy, w, h, fmt="packet"):
    x = np.full(50, cx)
    y = np.full(50, cy)
    return packet(x, y, np.arange(50) * 1000, np.ones(50, int), STAMP - 5 * 10**6, w=w, h=h)


def test_separate_event_camera_is_mapped_through_its_calibration():
    """Failure 4: events of a separate 640 x 480 sensor landed in the top-left of a 1280 x 720
    image. With the event camera's CameraInfo + extrinsic they land where its rays go; without,
    the sensor is scaled onto the camera (same field of view assumed, with a warning)."""
    spec = PreprocessSpec(input_size=(72, 128), quantize_8bit=False)
    rgb_info = _info(1280, 720, 900.0)
    # event camera: narrower lens, rotated 2 degrees about y (yaw) relative to the RGB camera
    a = np.radians(2.0)
    T = np.eye(4)
    T[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    pipe = _pipe("packet", spec, T_cam_event=tuple(T.ravel()))
    pipe.set_event_camera_info(_info(640, 480, 500.0))
    msg = _burst(320, 240, 640, 480)  # the event camera's principal point (pixel centre 319.5 -> 320)
    enc = pipe.encode_events(msg, STAMP, (720, 1280), pipe.camera(rgb_info))
    hit = np.argwhere(enc.any(axis=2))
    assert len(hit) == 1
    r, c = hit[0]
    u = 639.5 + 900.0 * np.tan(a) + 900.0 * 0.5 / 500.0  # rotated principal ray (+0.5 px offset scaled)
    assert abs(c - u) <= 1.0 and abs(r - 360) <= 1.0
    # uncalibrated: scaled onto the camera, not the top-left corner, and said so
    plain = _pipe("packet", spec)
    enc = plain.encode_events(_burst(320, 240, 640, 480), STAMP, (720, 1280), None)
    r, c = np.argwhere(enc.any(axis=2))[0]
    assert (r, c) == (360, 641)  # pixel centres scaled: floor(240.5 * 1.5), floor(320.5 * 2)
    assert any("no event-camera calibration" in w for w in plain._pending_warnings)


# ---------------------------------------------------------------- MUSES SDK calibration
MUSES_K = [[1000.0, 0, 960], [0, 1000.0, 540], [0, 0, 1]]
T_LIDAR = [[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]


def write_muses_sdk(root, event_xy=(320, 240), with_event_calib=True):
    from rmmss_core.data.image_io import write_png

    d = ("train", "clear", "day")
    name = "REC0001_frame_000001"
    write_png(root.joinpath("frame_camera", *d, f"{name}_frame_camera.png"), np.full((54, 96, 3), 90, np.uint8))
    write_png(root.joinpath("gt_semantic", *d, f"{name}_gt_labelTrainIds.png"), np.zeros((54, 96), np.uint8))
    p = root.joinpath("lidar", *d, f"{name}_lidar.bin")
    p.parent.mkdir(parents=True, exist_ok=True)
    np.array([[12.0, 0, 0, 200.0, 1, 0.1]], np.float64).tofile(p)
    p = root.joinpath("event_camera", *d, f"{name}_event_camera.h5")
    p.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(p, "w") as f:
        g = f.create_group("events")
        g["x"] = np.full(20, event_xy[0], np.uint16)
        g["y"] = np.full(20, event_xy[1], np.uint16)
        g["t"] = np.arange(20, dtype=np.uint32) * 1000
        g["p"] = np.ones(20, np.uint8)
    calib = {"intrinsics": {"rgb": {"K": MUSES_K}}, "extrinsics": {"lidar2rgb": T_LIDAR}}
    if with_event_calib:  # an event camera with its own K (640 x 480 sensor), aligned with the RGB one
        calib["intrinsics"]["event"] = {"K": [[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]}
        calib["extrinsics"]["event2rgb"] = np.eye(4).tolist()
    (root / "calib.json").write_text(json.dumps(calib))


def test_muses_sdk_calibration_keys_and_events_through_their_calibration(tmp_path):
    """Failure 6: the SDK's keys raised "calib.json lacks intrinsics.frame_camera.K"; with only
    that renamed, the event calibration was ignored (a burst at the event camera's principal
    point gave 0 event pixels at the frame centre)."""
    write_muses_sdk(tmp_path)
    ds = MusesDataset(tmp_path, "train", spec=muses_spec(input_size=(54, 96)), resize_to_input=False)
    enc, _ = ds.load_encoded(0)
    hit = np.argwhere(enc["event"].any(axis=2))
    assert len(hit) == 1 and tuple(hit[0]) == (27, 48)  # the frame centre (1920 x 1080 / 20)
    # LiDAR through extrinsics.lidar2rgb, intensity on the 0..255 scale (200 / 255)
    lh = np.argwhere(enc["lidar"].any(axis=2))
    assert len(lh) == 1 and enc["lidar"][tuple(lh[0])][1] == pytest.approx(200 / 255, abs=1 / 255)


def test_event_packets_alone_size_the_event_image():
    """Without a camera image or CameraInfo, an EventPacket's own sensor size sizes the image."""
    pipe = _pipe("packet")
    msg = packet([5, 6], [7, 8], [0, 1000], [1, 0], STAMP - 10**6)
    prep = pipe.prepare(_frame(msg), None)
    assert prep.used == ("event",) and prep.out_size == (48, 64) and not prep.errors
