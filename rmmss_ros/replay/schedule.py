"""Sensor-failure schedules: drops, random flapping and corruptions on bag time.

Grammar (comma-separated rules; times in seconds since the bag's first message)::

    lidar@10-20s            LiDAR silent from 10 s to 20 s
    event@30s-              events silent from 30 s to the end
    depth@flap=0.3/1s       every 1 s window, depth is silent with probability 0.3 (seeded)
    lidar@5-25s:flap=0.5/0.5s
    rgb@12-14s:blank        corruptions keep the sensor present but damage its data:
    depth@0-8s:noise=0.05     blank (black image / empty cloud), noise=SIGMA (relative for
    lidar@8-9s:sparse=0.9     images and depth, metres for points), sparse=FRACTION removed,
    rgb@3-4s:freeze           freeze (the last good message repeated with a new stamp)

Sensors: rgb, depth, event, lidar (or R, D, E, L). ``apply`` works on typestore or rclpy-like
messages (Image / PointCloud2) so replay and the live player share one implementation.
"""
from __future__ import annotations

import copy
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rmmss_core.modalities import LETTERS, MODALITIES

ACTIONS = ("drop", "flap", "blank", "noise", "sparse", "freeze")
_RULE = re.compile(r"^(?P<sensor>\w+)@(?:(?P<a>[\d.]+)s?-(?P<b>[\d.]+)?s?)?(?::?(?P<action>[a-z]+)"
                   r"(?:=(?P<value>[\d.]+)(?:/(?P<period>[\d.]+)s?)?)?)?$")


@dataclass(frozen=True)
class Rule:
    """One rule: ``sensor`` affected from ``start_s`` to ``end_s`` (None = end) by ``action``."""

    sensor: str
    start_s: float = 0.0
    end_s: float | None = None
    action: str = "drop"
    value: float = 1.0
    period_s: float = 1.0

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s and (self.end_s is None or t_s < self.end_s)

    def __str__(self) -> str:
        span = f"{self.start_s:g}-{'' if self.end_s is None else f'{self.end_s:g}'}s"
        extra = {"drop": "", "flap": f":flap={self.value:g}/{self.period_s:g}s",
                 "freeze": ":freeze", "blank": ":blank"}.get(self.action, f":{self.action}={self.value:g}")
        return f"{self.sensor}@{span}{extra}"


def _sensor(name: str, text: str) -> str:
    low = name.lower()
    if low in MODALITIES:
        return low
    if name.upper() in LETTERS and len(name) == 1:
        return MODALITIES[LETTERS.index(name.upper())]
    aliases = {"camera": "rgb", "image": "rgb", "events": "event", "points": "lidar"}
    if low in aliases:
        return aliases[low]
    raise ValueError(f"unknown sensor {name!r} in schedule {text!r}; use one of {MODALITIES}")


@dataclass
class Schedule:
    """Parsed rules plus the state corruptions need (the last good message per sensor)."""

    rules: tuple[Rule, ...] = ()
    seed: int = 0
    _last: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, text: str | None, seed: int = 0) -> Schedule:
        """Rules from the ``--drop`` grammar above; ValueError naming the bad rule."""
        rules = []
        for item in (t.strip() for t in (text or "").split(",")):
            if not item:
                continue
            m = _RULE.match(item.replace(" ", ""))
            if not m:
                raise ValueError(f"bad schedule rule {item!r}: expected SENSOR@A-Bs[:ACTION[=V[/Ps]]], "
                                 "e.g. lidar@10-20s or depth@flap=0.3/1s")
            sensor = _sensor(m["sensor"], item)
            action = m["action"] or "drop"
            if action not in ACTIONS:
                raise ValueError(f"unknown action {action!r} in {item!r}; use one of {ACTIONS}")
            start = float(m["a"]) if m["a"] else 0.0
            end = float(m["b"]) if m["b"] else None
            if end is not None and end <= start:
                raise ValueError(f"rule {item!r}: end {end} s is not after start {start} s")
            value = float(m["value"]) if m["value"] else (0.5 if action == "flap" else 1.0)
            if action in ("flap", "sparse") and not 0.0 <= value <= 1.0:
                raise ValueError(f"rule {item!r}: {action} needs a fraction in [0, 1], got {value}")
            period = float(m["period"]) if m["period"] else 1.0
            if period <= 0:
                raise ValueError(f"rule {item!r}: flap period must be > 0 s")
            rules.append(Rule(sensor, start, end, action, value, period))
        return cls(tuple(rules), seed)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.rules) or "none"

    def unreached(self, duration_s: float) -> list[str]:
        """One note per rule that starts at or after ``duration_s`` (the bag's length): it never
        applies, so the run shows no failure although one was asked for (a time in ms or frames?)."""
        return [f"--drop rule {r} starts after the bag ends ({duration_s:.1f} s): it never applies "
                "(times are seconds since the bag's first message)"
                for r in self.rules if r.start_s >= duration_s]

    def dropped(self, sensor: str, t_s: float) -> bool:
        """Whether ``sensor`` is silent at ``t_s`` (drop rules and flap windows)."""
        for r in self.rules:
            if r.sensor != sensor or not r.active(t_s):
                continue
            if r.action == "drop":
                return True
            if r.action == "flap":
                window = int((t_s - r.start_s) // r.period_s)
                u = np.random.default_rng([self.seed, zlib.crc32(sensor.encode()), window]).random()
                if u < r.value:
                    return True
        return False

    def available(self, t_s: float) -> tuple[bool, ...]:
        """The scheduled availability pattern ``(R, D, E, L)`` at ``t_s``."""
        return tuple(not self.dropped(s, t_s) for s in MODALITIES)

    def apply(self, sensor: str, t_s: float, msg: Any) -> Any | None:
        """The message as the failing sensor delivers it: None if dropped, else (a corrupted
        copy of) ``msg``. Deterministic in the seed, the sensor and the message stamp."""
        if self.dropped(sensor, t_s):
            return None
        active = [r for r in self.rules if r.sensor == sensor and r.active(t_s)
                  and r.action not in ("drop", "flap")]
        if not active:
            self._last[sensor] = msg
            return msg
        out = copy.copy(msg)
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        rng = np.random.default_rng([self.seed, zlib.crc32(sensor.encode()), stamp % 2**32])
        for r in active:
            out = _corrupt(out, r, rng, self._last.get(sensor))
        return out


def _corrupt(msg: Any, rule: Rule, rng: np.random.Generator, last: Any) -> Any:
    """One corruption on a copy of an Image, CompressedImage or PointCloud2 message."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding") and rule.action != "freeze":
        return _corrupt_compressed(msg, rule, rng)
    is_cloud = hasattr(msg, "point_step")
    if rule.action == "freeze":
        if last is None:
            return msg
        frozen = copy.copy(last)
        frozen.header = msg.header
        return frozen
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if is_cloud:
        step = int(msg.point_step)
        rows = data.reshape(-1, step)
        if rule.action == "blank":
            rows = rows[:0]
        elif rule.action == "sparse":
            rows = rows[rng.random(len(rows)) >= rule.value]
        elif rule.action == "noise":
            rows = rows.copy()
            for f in msg.fields:
                if f.name in ("x", "y", "z") and f.datatype == 7:
                    col = rows[:, f.offset:f.offset + 4].copy().view("<f4")
                    col += rng.normal(0.0, rule.value, col.shape).astype(np.float32)
                    rows[:, f.offset:f.offset + 4] = col.view(np.uint8)
        msg.width, msg.height = len(rows), 1
        msg.row_step = step * len(rows)
        msg.data = np.ascontiguousarray(rows).reshape(-1)
        return msg
    enc = str(msg.encoding)
    if rule.action == "blank":
        msg.data = np.zeros_like(data)
    elif rule.action in ("noise", "sparse"):
        kind = {"32FC1": "<f4", "16UC1": "<u2", "mono16": "<u2"}.get(enc, "u1")
        values = data.copy().view(kind).astype(np.float64)
        if rule.action == "sparse":
            values[rng.random(values.shape) < rule.value] = np.nan if kind == "<f4" else 0
        elif kind == "u1":
            values = values + rng.normal(0.0, rule.value * 255.0, values.shape)
        else:
            values = values * (1.0 + rng.normal(0.0, rule.value, values.shape))
        if kind == "<f4":
            out = values.astype("<f4")
        else:
            info = np.iinfo(np.dtype(kind))
            out = np.clip(np.round(np.nan_to_num(values)), info.min, info.max).astype(kind)
        msg.data = np.frombuffer(out.tobytes(), dtype=np.uint8)
    return msg


def _corrupt_compressed(msg: Any, rule: Rule, rng: np.random.Generator) -> Any:
    """A CompressedImage corrupted as its decoded image would be, then compressed again the way it
    came (jpeg quality 95, png, or compressedDepth with depth_max covering the image)."""
    from types import SimpleNamespace

    from rmmss_ros.conversions.compressed import (
        decode_compressed,
        encode_compressed,
        encode_compressed_depth,
        is_compressed_depth_format,
    )

    fmt = str(msg.format)
    img = decode_compressed(msg, "image")
    a = np.ascontiguousarray(img.data)
    plain = SimpleNamespace(encoding=img.encoding, data=np.frombuffer(a.tobytes(), np.uint8))
    plain = _corrupt(plain, rule, rng, None)
    out = np.frombuffer(bytes(plain.data), dtype=a.dtype).reshape(a.shape)
    if is_compressed_depth_format(fmt):
        dmax = 65.535 if out.dtype == np.uint16 else max(10.0, float(np.nanmax(out)) + 1.0 if np.isfinite(out).any() else 10.0)
        new_fmt, data = encode_compressed_depth(out, img.encoding, "rvl" if "rvl" in fmt else "png", depth_max=dmax)
    else:
        new_fmt, data = encode_compressed(out, img.encoding, "png" if "png" in fmt else "jpeg", jpeg_quality=95)
    msg.format, msg.data = new_fmt, np.frombuffer(data, dtype=np.uint8)
    return msg
