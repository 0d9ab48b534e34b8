"""Part of ``make bench`` section "node": what each input conversion of issue #12 costs, next to
rclpy's deserialisation of the very same message (the cost every subscriber pays anyway).

- camera encodings at 640 x 480 -> RGB uint8 (OpenCV for YUV / Bayer);
- LiDAR: a 64k-point Velodyne-layout cloud -> x, y, z, intensity in [0, 1] (units by datatype);
- events: 1 ms EventPacket (mono / evt3) and PointCloud2 packets of 1000 events (1 Mev/s)
  decoded into the per-sensor buffer, and a 30 ms window accumulated at 640 x 480; the share of
  the window's events that reach the image with the buffer vs the old matched-packet-only rule.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from rmmss_core.bench.report import time_callable

H, W = 480, 640


def _image_msgs(rng) -> dict[str, object]:
    from sensor_msgs.msg import Image

    def msg(enc: str, data: np.ndarray, step: int, h: int = H) -> Image:
        m = Image()
        m.height, m.width, m.encoding, m.is_bigendian, m.step = h, W, enc, 0, step
        m.data = data.tobytes()
        return m

    u8 = lambda *s: rng.integers(0, 256, s, dtype=np.uint8)  # noqa: E731
    u16 = lambda *s: rng.integers(0, 65536, s, dtype=np.uint16)  # noqa: E731
    return {
        "rgb8": msg("rgb8", u8(H, W, 3), W * 3), "bgr8": msg("bgr8", u8(H, W, 3), W * 3),
        "mono8": msg("mono8", u8(H, W), W), "mono16": msg("mono16", u16(H, W), W * 2),
        "rgb16": msg("rgb16", u16(H, W, 3), W * 6),
        "yuv422_yuy2": msg("yuv422_yuy2", u8(H, W, 2), W * 2), "yuv422": msg("yuv422", u8(H, W, 2), W * 2),
        "nv21": msg("nv21", u8(H * 3 // 2, W), W), "nv24": msg("nv24", u8(H * 3, W), W),
        "bayer_rggb8": msg("bayer_rggb8", u8(H, W), W), "bayer_rggb16": msg("bayer_rggb16", u16(H, W), W * 2),
    }


def _velodyne_cloud(rng, n: int):
    from sensor_msgs.msg import PointCloud2, PointField

    from rmmss_ros.conversions import fill_cloud

    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2"),
                   ("time", "<f4")])
    pts = np.zeros(n, dt)
    pts["x"], pts["y"], pts["z"] = rng.uniform(-60, 60, n), rng.uniform(-60, 60, n), rng.uniform(-2, 5, n)
    pts["intensity"], pts["ring"] = rng.uniform(0, 255, n), rng.integers(0, 64, n)
    return fill_cloud(PointCloud2(), pts, PointField)


def run(quick: bool, iters: int) -> tuple[list[dict], str]:
    from rclpy.serialization import deserialize_message, serialize_message

    from rmmss_core.encodings import encode_rgb
    from rmmss_ros.conversions import cloud_to_xyzi, to_rgb8

    rng = np.random.default_rng(0)
    records, lines = [], ["| input | conversion | p50 ms | deserialise (rclpy) p50 ms | ratio |", "|---|---|---|---|---|"]

    def row(name: str, what: str, msg, fn) -> None:
        raw, cls = serialize_message(msg), type(msg)
        de = time_callable(lambda: deserialize_message(raw, cls), iters=iters)
        co = time_callable(fn, iters=iters)
        records.append({"input": name, "conversion": what, "p50_ms": co["p50_ms"], "deserialise_p50_ms": de["p50_ms"]})
        lines.append(f"| {name} | {what} | {co['p50_ms']:.2f} | {de['p50_ms']:.2f} | "
                     f"{co['p50_ms'] / max(de['p50_ms'], 1e-9):.1f}x |")

    for enc, m in _image_msgs(rng).items():
        row(f"{enc} 640 x 480", "to_rgb8 + encode_rgb (float32 / 255)", m, lambda m=m: encode_rgb(to_rgb8(m)))
    cloud = _velodyne_cloud(rng, 65536)
    row("PointCloud2 64k points (Velodyne layout)", "cloud_to_xyzi + intensity units", cloud,
        lambda: cloud_to_xyzi(cloud, units="auto"))
    return records, "\n".join(lines)


def event_window(quick: bool, iters: int) -> tuple[list[dict], str]:
    """1 ms packets of 1000 events, 45 ms of them, window 30 ms: decode + buffer + accumulate."""
    from rmmss_core.encodings import accumulate_events
    from rmmss_core.spec import EventEncoding
    from rmmss_ros.conversions import Evt3Decoder, decode_event_message
    from rmmss_ros.conversions.event_packet import encode_evt3, encode_mono
    from rmmss_ros.sync.event_buffer import EventBuffer

    rng = np.random.default_rng(1)
    stamp = 100 * 10**9
    per, n_pk = 1000, 45
    pk_mono, pk_evt3, all_t = [], [], []
    for k in range(n_pk):
        s = stamp - (40 - k) * 10**6
        x, y = rng.integers(0, W, per), rng.integers(0, H, per)
        dt = np.sort(rng.integers(0, 10**6, per))
        p = rng.integers(0, 2, per)
        hdr = SimpleNamespace(stamp=SimpleNamespace(sec=s // 10**9, nanosec=s % 10**9))
        pk_mono.append(SimpleNamespace(header=hdr, height=H, width=W, seq=k, time_base=0, encoding="mono",
                                       is_bigendian=False, events=encode_mono(x, y, dt, p)))
        pk_evt3.append(SimpleNamespace(header=hdr, height=H, width=W, seq=k, time_base=0, encoding="evt3",
                                       is_bigendian=False, events=encode_evt3(x, y, (s + dt) // 1000, p)))
        all_t.append(s + dt)
    t = np.concatenate(all_t)
    in_window = int(((t > stamp - 30 * 10**6) & (t <= stamp)).sum())
    enc = EventEncoding(window_s=0.03)
    records, lines = [], ["| events | per 1 ms packet p50 ms | window of 30 ms: buffer + accumulate p50 ms |",
                          "|---|---|---|"]
    for name, pks in (("mono", pk_mono), ("evt3", pk_evt3)):
        dec = time_callable(lambda pks=pks: decode_event_message(pks[0], Evt3Decoder()), iters=iters)
        buf = EventBuffer()
        d = Evt3Decoder()
        for m in pks:
            buf.add(decode_event_message(m, d))

        def window(buf=buf) -> np.ndarray:
            ev = buf.window(stamp, 0.03)
            return accumulate_events(ev.x, ev.y, (ev.t_ns - stamp) * 1e-9, ev.p, 0.0, H, W, enc)

        acc = time_callable(window, iters=iters)
        got = len(buf.window(stamp, 0.03))
        records.append({"encoding": name, "packet_decode_p50_ms": dec["p50_ms"], "window_p50_ms": acc["p50_ms"],
                        "accumulated_share": got / in_window})
        lines.append(f"| EventPacket {name}, 1000 events | {dec['p50_ms']:.3f} | {acc['p50_ms']:.2f} |")
    old_share = per / in_window  # the old rule: the one matched packet's events
    share = records[0]["accumulated_share"]
    md = ("\n".join(lines) + f"\n\nShare of the {in_window:,} events in the 30 ms window that reach the event image: "
          f"**{share:.0%}** with the per-sensor buffer (rmmss_ros.sync.event_buffer), {old_share:.1%} with the old "
          "matched-packet-only rule.")
    return records, md
