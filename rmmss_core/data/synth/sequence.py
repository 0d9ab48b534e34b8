"""Render one sequence (one scene, one ego path) under every condition and write it.

Seeding: everything random in sequence ``i`` comes from ``SeedSequence([seed, i, ...])``, so a
dataset does not depend on how many worker processes generated it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rmmss_core.data.layout import FrameKey, raw_path
from rmmss_core.data.synth.conditions import depth_sensor, get_condition
from rmmss_core.data.synth.config import CONDITION_ORDER, SequencePlan, SynthConfig
from rmmss_core.data.synth.event_sim import Events, EventSimulator
from rmmss_core.data.synth.lidar_sim import lidar_points, scan
from rmmss_core.data.synth.raycast import Caster
from rmmss_core.data.synth.render import log_intensity, render_geometry, shade, to_rgb
from rmmss_core.data.synth.scene import Scene, build_scene
from rmmss_core.data.synth.writer import write_frame
from rmmss_core.encodings import CameraModel
from rmmss_core.utils.io import atomic_write_json


def rng_for(cfg: SynthConfig, seq: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, seq, *stream]))


def sequence_scene(cfg: SynthConfig, seq: int) -> Scene:
    """The scene of sequence ``seq`` (depends only on the seed and the index)."""
    return build_scene(rng_for(cfg, seq, 0), (cfg.frames_per_sequence + 1) / cfg.fps)


def frame_stamps(cfg: SynthConfig) -> np.ndarray:
    """Frame times in seconds: ``(k + 1) / fps``; events of frame k cover ``(t_{k-1}, t_k]``."""
    return (np.arange(cfg.frames_per_sequence) + 1) / cfg.fps


def camera_model(cfg: SynthConfig) -> CameraModel:
    return CameraModel(cfg.width, cfg.height, cfg.rig.camera.K)


def calib(cfg: SynthConfig, scene: Scene, condition: str) -> dict:
    """Per-sequence calibration and timing (``calib.json``)."""
    rig = cfg.rig
    stamps = frame_stamps(cfg)
    return {
        "camera": camera_model(cfg).to_dict(), "T_cam_lidar": rig.T_cam_lidar.tolist(),
        "T_ego_cam": rig.T_ego_cam.tolist(), "T_ego_lidar": rig.T_ego_lidar.tolist(),
        "lidar": rig.lidar.to_dict(), "fps": cfg.fps, "condition": condition,
        "frames": [f"{k:06d}" for k in range(len(stamps))], "stamps": stamps.tolist(),
        "T_world_ego": [scene.ego.pose(float(t)).tolist() for t in stamps],
        "event": {"threshold": cfg.event_threshold, "mismatch": cfg.event_mismatch,
                  "substeps": cfg.event_substeps, "t_unit": "s", "polarity": "+1/-1"},
        "scene": scene.info,
    }


def generate_sequence(cfg: SynthConfig, plan: SequencePlan, root: Path, nthreads: int = 0) -> dict:
    """Render and write all frames of one sequence under ``cfg.conditions``; returns timings (s)."""
    t0 = time.perf_counter()
    timings = {"scene": 0.0, "camera": 0.0, "lidar": 0.0, "events": 0.0, "shade": 0.0, "write": 0.0}
    scene = sequence_scene(cfg, plan.index)
    caster = Caster(scene.static, nthreads)
    rig, spec, cam = cfg.rig, cfg.spec, camera_model(cfg)
    T_cam_lidar = rig.T_cam_lidar
    conds = [get_condition(c) for c in cfg.conditions]
    cids = [CONDITION_ORDER.index(c) for c in cfg.conditions]
    timings["scene"] += time.perf_counter() - t0

    def render(t: float):
        s = time.perf_counter()
        world = caster.world(scene.dynamic_at(t))
        g = render_geometry(world, rig, scene.ego.pose(t), scene.sun_dir)
        timings["camera"] += time.perf_counter() - s
        return world, g

    stamps = frame_stamps(cfg)
    dt = 1.0 / cfg.fps
    _, g0 = render(0.0)
    sims = [EventSimulator(log_intensity(shade(g0, c), c), 0.0, rng_for(cfg, plan.index, 2, cid),
                           cfg.event_threshold, cfg.event_mismatch, c.event_noise_hz)
            for c, cid in zip(conds, cids, strict=True)]
    for name in cfg.conditions:
        key = FrameKey(name, plan.split, plan.name, "000000")
        atomic_write_json(raw_path(root, key, "calib"), calib(cfg, scene, name))
    for k, t_k in enumerate(stamps):
        subs = [float(t_k - dt + dt * (j + 1) / cfg.event_substeps) for j in range(cfg.event_substeps)]
        subs[-1] = float(t_k)
        renders = [render(t) for t in subs]
        world, g = renders[-1]
        s = time.perf_counter()
        lscan = scan(world, rig, scene.ego.pose(float(t_k)))
        timings["lidar"] += time.perf_counter() - s
        for ci, (name, c, cid) in enumerate(zip(cfg.conditions, conds, cids, strict=True)):
            rng = rng_for(cfg, plan.index, 1, cid, k)
            s = time.perf_counter()
            rads = [shade(gj, c) for _, gj in renders]
            timings["shade"] += time.perf_counter() - s
            s = time.perf_counter()
            events = Events.concat([sims[ci].step(log_intensity(r, c), t) for r, t in zip(rads, subs, strict=True)])
            timings["events"] += time.perf_counter() - s
            s = time.perf_counter()
            rgb = to_rgb(rads[-1], c, rng)
            depth = depth_sensor(g.depth, c, rng)
            pts = lidar_points(lscan, rig, c, rng)
            timings["lidar"] += time.perf_counter() - s
            s = time.perf_counter()
            write_frame(root, FrameKey(name, plan.split, plan.name, f"{k:06d}"), spec, cam, T_cam_lidar,
                        float(t_k), rgb, depth, events, pts, g.cls)
            timings["write"] += time.perf_counter() - s
    timings["total"] = time.perf_counter() - t0
    return {"sequence": plan.name, "split": plan.split, "frames": len(stamps) * len(conds),
            "scene": scene.info, "timings_s": timings}
