"""Synthetic world generation speed: per stage at 320x240 and 640x480, and end to end with one
worker against two workers in the same process (``make bench``)."""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from rmmss_core.bench.report import BenchReport, time_callable
from rmmss_core.data.layout import FrameKey
from rmmss_core.data.synth.conditions import CONDITIONS
from rmmss_core.data.synth.config import SynthConfig
from rmmss_core.data.synth.event_sim import EventSimulator
from rmmss_core.data.synth.generate import generate
from rmmss_core.data.synth.lidar_sim import lidar_points, scan
from rmmss_core.data.synth.raycast import Caster
from rmmss_core.data.synth.render import log_intensity, render_geometry, shade, to_rgb
from rmmss_core.data.synth.sequence import camera_model, sequence_scene
from rmmss_core.data.synth.writer import write_frame


def _stages(width: int, height: int, iters: int) -> list[dict]:
    """Milliseconds per call of every stage for one camera frame (one thread)."""
    cfg = SynthConfig(width=width, height=height, frames=100, sequences=1)
    rig, t = cfg.rig, 0.5
    scene = sequence_scene(cfg, 0)
    caster = Caster(scene.static, nthreads=1)
    world = caster.world(scene.dynamic_at(t))
    pose = scene.ego.pose(t)
    g = render_geometry(world, rig, pose, scene.sun_dir)
    g2 = render_geometry(caster.world(scene.dynamic_at(t + 0.025)), rig, scene.ego.pose(t + 0.025),
                         scene.sun_dir)
    sun = CONDITIONS["sun"]
    lscan = scan(world, rig, pose)
    l1, l2 = log_intensity(shade(g, sun), sun), log_intensity(shade(g2, sun), sun)
    rng = np.random.default_rng(0)
    tmp = tempfile.TemporaryDirectory()

    def scene_build():
        Caster(sequence_scene(cfg, 0).static, nthreads=1)

    def camera():
        render_geometry(caster.world(scene.dynamic_at(t)), rig, pose, scene.sun_dir)

    def shade_rgb():
        to_rgb(shade(g, sun), sun, rng)

    def lidar():
        lidar_points(scan(caster.world(scene.dynamic_at(t)), rig, pose), rig, sun, rng)

    def events():
        EventSimulator(l1, 0.0, np.random.default_rng(0)).step(l2, 0.025)

    sim = EventSimulator(l1, 0.0, np.random.default_rng(0))
    ev = sim.step(l2, 0.025)
    pts = lidar_points(lscan, rig, sun, rng)
    cam, spec = camera_model(cfg), cfg.spec

    def write():
        write_frame(tmp.name, FrameKey("sun", "train", "b", "000000"), spec, cam, rig.T_cam_lidar,
                    0.025, to_rgb(shade(g, sun), sun, rng), g.depth, ev, pts, g.cls)

    rows = []
    for name, fn, what in (("scene build + BVH", scene_build, "per sequence"),
                           ("camera ray-cast + texture + shadows", camera, "per render"),
                           ("shade + RGB effects (sun)", shade_rgb, "per render and condition"),
                           ("LiDAR scan + sensor model", lidar, "per frame"),
                           ("events (1 render step)", events, "per render and condition"),
                           ("encode + write 5 PNG + 3 raw", write, "per written frame")):
        r = time_callable(fn, warmup=1, iters=iters if name != "scene build + BVH" else max(2, iters // 3))
        rows.append({"size": f"{width}x{height}", "stage": name, "unit": what, **r,
                     "per_s": 1000.0 / r["p50_ms"]})
    tmp.cleanup()
    return rows


def _end_to_end(width: int, height: int, frames: int, sequences: int) -> list[dict]:
    rows = []
    cfg = SynthConfig(frames=frames, width=width, height=height, sequences=sequences, seed=1)
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            info = generate(cfg, out, workers=workers, progress=False)
            wall = time.perf_counter() - t0
        rows.append({"size": f"{width}x{height}", "workers": workers, "frames": info["total_frames"],
                     "sequences": sequences, "conditions": len(cfg.conditions), "wall_s": wall,
                     "frames_per_s": info["total_frames"] / wall})
    return rows


def run(quick: bool) -> BenchReport:
    sizes = [(320, 240)] if quick else [(320, 240), (640, 480)]
    load0 = os.getloadavg()[0]
    stages = [r for w, h in sizes for r in _stages(w, h, 3 if quick else 10)]
    e2e = _end_to_end(160, 120, 20, 2) if quick else _end_to_end(320, 240, 200, 4)
    md = ["Stages on one thread (Open3D `nthreads=1`), milliseconds per call (p50) and calls per "
          "second. A written frame needs per sequence frame: `event_substeps` (4) camera renders "
          "and 1 LiDAR scan shared by all conditions, then per condition 4 shadings + event steps "
          "and one write.", "",
          "| size | stage | unit | p50 ms | p90 ms | per s |", "| --- | --- | --- | ---: | ---: | ---: |"]
    md += [f"| {r['size']} | {r['stage']} | {r['unit']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
           f"{r['per_s']:.1f} |" for r in stages]
    md += ["", "End to end (`generate`, all 5 conditions, spawned worker processes, start-up "
           "included), one worker against two in the same process:", "",
           "| size | workers | sequences | frames | wall s | frames/s | speed-up |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    base = e2e[0]["frames_per_s"]
    md += [f"| {r['size']} | {r['workers']} | {r['sequences']} | {r['frames']} | {r['wall_s']:.1f} | "
           f"{r['frames_per_s']:.2f} | {r['frames_per_s'] / base:.2f}x |" for r in e2e]
    best = max(r["frames_per_s"] for r in e2e)
    md += ["", f"At the best rate measured here, 1,000 frames at {e2e[0]['size']} take about "
           f"{1000 / best / 60:.1f} min on this machine. Load average (1 min) at start / end: "
           f"{load0:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: on a shared machine "
           "the ratios mean more than the absolute times."]
    records = [{"kind": "stage", **r} for r in stages] + [{"kind": "end_to_end", **r} for r in e2e]
    return BenchReport(name="synth", title="Synthetic world generation speed", markdown="\n".join(md),
                       records=records, command="make bench (python -m rmmss_core.bench --only synth)")
