"""Event camera simulation from log-brightness changes between renders (ESIM-style).

Each pixel keeps a reference log intensity; while the log intensity, linearly interpolated between
two renders, moves by a contrast threshold from the reference, the pixel fires an event (+1 for an
increase, -1 for a decrease) at the interpolated crossing time and the reference moves by one
threshold. Thresholds vary per pixel (mismatch); background-activity noise events fire at random.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Events:
    """Raw events, sorted by time: x, y uint16 pixel; t float64 seconds; p int8 (+1 / -1)."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    p: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        if not parts:
            return Events(np.zeros(0, np.uint16), np.zeros(0, np.uint16), np.zeros(0), np.zeros(0, np.int8))
        ev = Events(*(np.concatenate([getattr(e, k) for e in parts]) for k in ("x", "y", "t", "p")))
        order = np.argsort(ev.t, kind="stable")
        return Events(ev.x[order], ev.y[order], ev.t[order], ev.p[order])


class EventSimulator:
    """Stateful per-pixel simulator for one ``H x W`` event camera along a sequence."""

    def __init__(self, log_i: np.ndarray, t: float, rng: np.random.Generator,
                 threshold: float = 0.25, mismatch: float = 0.03, noise_hz: float = 0.05,
                 max_per_step: int = 16) -> None:
        """``log_i`` H x W: log intensity at time ``t`` (s) that initialises the reference."""
        self.H, self.W = log_i.shape
        self.ref = log_i.astype(np.float64).copy()
        self.last = self.ref.copy()
        self.t = float(t)
        self.rng = rng
        shape = log_i.shape
        self.c_pos = np.clip(rng.normal(threshold, mismatch, shape), 0.05, None)
        self.c_neg = np.clip(rng.normal(threshold, mismatch, shape), 0.05, None)
        self.noise_hz = noise_hz
        self.max_per_step = max_per_step

    def step(self, log_i: np.ndarray, t: float) -> Events:
        """Events between the previous render and this one (``log_i`` H x W at time ``t`` > last)."""
        if log_i.shape != (self.H, self.W):
            raise ValueError(f"log intensity must be {self.H} x {self.W}, got {log_i.shape}")
        if t <= self.t:
            raise ValueError(f"event renders must move forward in time: {t} <= {self.t}")
        l0, l1 = self.last.ravel(), log_i.astype(np.float64).ravel()
        ref, dt = self.ref.ravel(), t - self.t
        parts = []
        for sign, c in ((1, self.c_pos.ravel()), (-1, self.c_neg.ravel())):
            n = np.floor(sign * (l1 - ref) / c).astype(np.int64)
            n = np.clip(n, 0, self.max_per_step)
            idx = np.flatnonzero(n)
            if idx.size == 0:
                continue
            cnt = n[idx]
            pix = np.repeat(idx, cnt)
            k = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt) + 1
            level = ref[pix] + sign * k * c[pix]
            slope = l1[pix] - l0[pix]
            frac = np.clip((level - l0[pix]) / np.where(slope == 0, 1, slope), 1e-6, 1)
            parts.append(Events((pix % self.W).astype(np.uint16), (pix // self.W).astype(np.uint16),
                                self.t + frac * dt, np.full(pix.size, sign, np.int8)))
            ref[idx] += sign * cnt * c[idx]
        parts.append(self._noise(self.t, t))
        self.ref = ref.reshape(self.H, self.W)
        self.last = l1.reshape(self.H, self.W)
        self.t = float(t)
        return Events.concat(parts)

    def _noise(self, t0: float, t1: float) -> Events:
        n = self.rng.poisson(self.noise_hz * (t1 - t0) * self.H * self.W)
        return Events(self.rng.integers(0, self.W, n).astype(np.uint16),
                      self.rng.integers(0, self.H, n).astype(np.uint16),
                      self.rng.uniform(t0, t1, n), np.where(self.rng.random(n) < 0.5, 1, -1).astype(np.int8))
