"""The synthetic world: dataset layout + reader, PNGs = encoders(raw), labels vs geometry, events,
conditions, reproducibility. Tiny sizes (64x48, 2 frames per sequence)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from rmmss_core.classes import DELIVER
from rmmss_core.data.deliver import DeliverDataset
from rmmss_core.data.layout import FrameKey, frame_path, raw_path
from rmmss_core.data.synth.conditions import CONDITIONS, depth_sensor
from rmmss_core.data.synth.config import SynthConfig, plan_sequences
from rmmss_core.data.synth.generate import generate
from rmmss_core.data.synth.lidar_sim import lidar_points, scan
from rmmss_core.data.synth.raycast import Caster
from rmmss_core.data.synth.render import log_intensity, render_geometry, shade, to_rgb
from rmmss_core.data.synth.scene import build_scene
from rmmss_core.data.synth.sequence import sequence_scene
from rmmss_core.data.synth.writer import read_events
from rmmss_core.encodings import CameraModel, accumulate_events, encode_depth, project_lidar
from rmmss_core.spec import PreprocessSpec

CLS = {n: i for i, n in enumerate(DELIVER.classes)}
CFG = SynthConfig(frames=30, width=64, height=48, sequences=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    info = generate(CFG, root, workers=1, progress=False)
    return root, info


def _png(path):
    with Image.open(path) as im:
        return np.asarray(im)


def test_layout_info_and_deliver_reader(dataset):
    root, info = dataset
    assert info["total_frames"] == 30 and CFG.frames_per_sequence == 2
    on_disk = json.loads((root / "rmmss_dataset.json").read_text())
    assert on_disk["depth_folder"] == "depth" and on_disk["settings"]["seed"] == 0
    assert set(on_disk["frames_per_split"]) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        ds = DeliverDataset(root, split=split)
        assert len(ds) == 10  # one sequence x 5 conditions x 2 frames
        s = ds[0]
        assert s["available"].all()
        for m in ("rgb", "depth", "event", "lidar"):
            assert s[m].shape[0] == 3 and s[m].abs().sum() > 0, m
        lab = s["label"]
        assert lab.dtype.is_floating_point is False and lab.min() >= 0 and lab.max() < 25
    key = FrameKey("fog", "train", "synth_000", "000001")
    for kind in ("points", "events", "depth", "calib"):
        assert raw_path(root, key, kind).is_file(), kind
    calib = json.loads(raw_path(root, key, "calib").read_text())
    assert calib["frames"] == ["000000", "000001"] and np.allclose(calib["stamps"], [0.1, 0.2])


@pytest.mark.parametrize("condition", ["sun", "night", "fog"])
def test_pngs_are_the_shared_encoders_of_the_raw_files(dataset, condition):
    root, _ = dataset
    key = FrameKey(condition, "val", "synth_001", "000001")
    calib = json.loads(raw_path(root, key, "calib").read_text())
    cam = CameraModel.from_dict(calib["camera"])
    spec = PreprocessSpec.from_dict(json.loads((root / "rmmss_dataset.json").read_text())["spec"])
    pts = np.load(raw_path(root, key, "points"))
    ev = read_events(raw_path(root, key, "events"))
    depth = np.load(raw_path(root, key, "depth"))
    assert pts.dtype == np.float32 and pts.shape[1] == 4 and depth.dtype == np.float32
    assert ev.x.dtype == np.uint16 and ev.t.dtype == np.float64 and set(np.unique(ev.p)) <= {-1, 1}
    t = calib["stamps"][1]
    assert np.all((ev.t > calib["stamps"][0]) & (ev.t <= t))
    expect = {"lidar": project_lidar(pts, np.array(calib["T_cam_lidar"]), cam, spec.lidar),
              "event": accumulate_events(ev.x, ev.y, ev.t, ev.p, t, 48, 64, spec.event),
              "depth": encode_depth(depth, spec.depth)}
    for m, e in expect.items():
        got = _png(frame_path(root, key, m, "depth")).astype(np.float32) / 255
        np.testing.assert_array_equal(got, e, err_msg=m)
    label = _png(frame_path(root, key, "semantic"))[..., 0]
    assert label.min() >= 1 and label.max() <= 25
    assert np.all(np.isnan(depth[label == CLS["Sky"] + 1]))  # sky: the depth camera gets nothing


def _geometry(seed=3, size=(96, 72), t=0.5):
    cfg = replace(CFG, width=size[0], height=size[1], seed=seed)
    scene = sequence_scene(cfg, 0)
    world = Caster(scene.static).world(scene.dynamic_at(t))
    pose = scene.ego.pose(t)
    return cfg, scene, world, pose, render_geometry(world, cfg.rig, pose, scene.sun_dir)


def test_labels_match_hit_geometry():
    cfg, scene, _, T_we, g = _geometry()
    assert np.array_equal(g.cls == CLS["Sky"], ~np.isfinite(g.depth))
    # back-project every pixel into the world
    dirs = cfg.rig.camera.ray_dirs().reshape(-1, 3)
    T = T_we @ cfg.rig.T_ego_cam
    p = (dirs * np.where(np.isfinite(g.depth), g.depth, 0).reshape(-1, 1)) @ T[:3, :3].T + T[:3, 3]
    cls = g.cls.ravel()
    road = cls == CLS["Road"]
    assert road.sum() > 0.1 * cls.size
    assert np.all(np.abs(p[road, 2]) < 1e-3)
    assert np.all(np.abs(p[cls == CLS["RoadLine"], 2] - 0.01) < 2e-3)
    assert np.all(p[cls == CLS["SideWalk"], 2] > 0.0) and np.all(p[cls == CLS["SideWalk"], 2] < 0.16)
    assert np.all(p[cls == CLS["Building"], 2] > -0.03)
    on_main_road = (np.abs(p[:, 2]) < 1e-3) & (np.abs(p[:, 1]) < scene.road_half_width) & np.isfinite(
        g.depth.ravel())
    assert np.all(np.isin(cls[on_main_road], [CLS["Road"]]))
    markings = (np.abs(p[:, 2] - 0.01) < 1e-3) & (np.abs(p[:, 1]) < scene.road_half_width - 0.01)
    assert np.all(cls[markings] == CLS["RoadLine"])


def test_events_fire_at_moving_edges_not_in_static_areas():
    cfg, scene, world, T_we, g = _geometry(seed=5, size=(80, 60))
    from rmmss_core.data.synth.event_sim import EventSimulator
    from rmmss_core.data.synth.scene import Ego
    scene.ego = Ego(speed=0.0, lane_y=-1.75, amp=0.0, period=5.0, phase=0.0, x0=0.0)
    caster = Caster(scene.static)
    cond = CONDITIONS["cloud"]
    masks, logs = [], []
    for t in (0.5, 0.55):
        gt = render_geometry(caster.world(scene.dynamic_at(t)), cfg.rig, scene.ego.pose(t), scene.sun_dir)
        logs.append(log_intensity(shade(gt, cond), cond))
        masks.append(gt.depth)
    sim = EventSimulator(logs[0], 0.5, np.random.default_rng(0), noise_hz=0.0)
    ev = sim.step(logs[1], 0.55)
    changed = masks[0] != masks[1]  # pixels where the hit geometry moved (vehicles, pedestrians)
    assert changed.any(), "scene has no visible mover"
    near = changed.copy()
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        near |= np.roll(changed, (dy, dx), (0, 1))
    assert len(ev) > 0
    assert near[ev.y, ev.x].all(), "events fired where nothing moved"
    moving = (np.abs(logs[1] - logs[0]) > 0.4) & changed
    hit = np.zeros_like(changed)
    hit[ev.y, ev.x] = True
    assert hit[moving].mean() > 0.9


def test_ego_motion_makes_events_and_background_noise_follows_condition(dataset):
    root, _ = dataset
    counts = {c: len(read_events(raw_path(root, FrameKey(c, "train", "synth_000", "000001"), "events")))
              for c in ("sun", "night")}
    assert counts["sun"] > 100  # ego moves and turns: edges everywhere
    ev = read_events(raw_path(root, FrameKey("night", "train", "synth_000", "000001"), "events"))
    assert (ev.p == 1).any() and (ev.p == -1).any()


def test_conditions_change_the_camera_as_described():
    cfg, scene, world, T_we, g = _geometry(seed=2, size=(160, 120))
    imgs = {c: to_rgb(shade(g, CONDITIONS[c]), CONDITIONS[c], np.random.default_rng(0)).astype(float)
            for c in CONDITIONS}
    lum = {c: im.mean(-1) for c, im in imgs.items()}
    # night: dark and noisy (two noise draws differ much more than by day)
    assert lum["night"].mean() < 0.4 * lum["cloud"].mean()
    night2 = to_rgb(shade(g, CONDITIONS["night"]), CONDITIONS["night"], np.random.default_rng(1))
    sun2 = to_rgb(shade(g, CONDITIONS["sun"]), CONDITIONS["sun"], np.random.default_rng(1))
    assert np.std(night2 - imgs["night"]) > 3 * np.std(sun2 - imgs["sun"])
    # fog: contrast falls with distance (compare far vs near against cloud)
    far = np.isfinite(g.dist) & (g.dist > 40)
    near = np.isfinite(g.dist) & (g.dist < 10)
    assert far.sum() > 20 and near.sum() > 20
    assert lum["fog"][far].std() < 0.5 * lum["cloud"][far].std()
    assert lum["fog"][near].std() > 0.5 * lum["cloud"][near].std()
    # rain: streaks brighten thin sets of pixels compared to the same rain without streaks
    rain, dry = CONDITIONS["rain"], replace(CONDITIONS["rain"], rain_streaks=0)
    diff = imgs["rain"] - to_rgb(shade(g, dry), dry, np.random.default_rng(0)).astype(float)
    streak = diff.mean(-1) > 15
    assert 0.005 < streak.mean() < 0.3
    # sun: hard shadows exist (sunlit surfaces facing the sun with zero sun term)
    assert (g.sun > 0).any() and rain.sun == 0


def test_depth_and_lidar_under_weather():
    cfg, scene, world, T_we, g = _geometry(seed=4, size=(64, 48))
    rng = np.random.default_rng(0)
    d_sun = depth_sensor(g.depth, CONDITIONS["sun"], rng)
    d_fog = depth_sensor(g.depth, CONDITIONS["fog"], rng)
    assert np.isnan(d_sun).sum() < np.isnan(d_fog).sum()
    assert np.nanmax(d_fog) <= CONDITIONS["fog"].depth_max_range * 1.2
    s = scan(world, cfg.rig, T_we)
    pts = {c: lidar_points(s, cfg.rig, CONDITIONS[c], np.random.default_rng(0)) for c in CONDITIONS}
    r = {c: np.linalg.norm(p[:, :3], axis=1) for c, p in pts.items()}
    assert pts["sun"].shape[0] > 0.5 * cfg.lidar.beams * cfg.lidar.azimuth_steps
    assert np.all(r["sun"] <= cfg.lidar.max_range + 0.2)
    assert (r["fog"] > 30).sum() < 0.5 * (r["sun"] > 30).sum()  # fog eats far returns
    assert (r["fog"] < 8).sum() > (r["sun"] < 8).sum()  # and adds backscatter
    assert len(pts["rain"]) < len(pts["cloud"])
    ground = s.cls == CLS["Road"]
    z_ground = (s.dirs[ground] * s.range[ground, None])[:, 2]
    assert np.allclose(z_ground, -cfg.rig.lidar_xyz[2], atol=0.02)  # road seen 1.95 m below
    # lane markings are a camera-only cue: same LiDAR reflectivity as asphalt
    assert np.unique(world.mesh.reflect[np.isin(world.mesh.cls, [CLS["Road"], CLS["RoadLine"]])]).size == 1


def test_scene_is_seeded_and_plan_splits():
    a, b = build_scene(np.random.default_rng(7), 3.0), build_scene(np.random.default_rng(7), 3.0)
    assert np.array_equal(a.static.vertices, b.static.vertices)
    c = build_scene(np.random.default_rng(8), 3.0)
    assert a.static.vertices.shape != c.static.vertices.shape or not np.array_equal(
        a.static.vertices, c.static.vertices)
    plans = plan_sequences(SynthConfig(sequences=20))
    assert [sum(p.split == s for p in plans) for s in ("train", "val", "test")] == [14, 3, 3]
    with pytest.raises(ValueError, match="conditions"):
        SynthConfig(conditions=("sun", "snow"))
    with pytest.raises(ValueError, match="splits"):
        SynthConfig(splits=(("train", 0.5), ("holdout", 0.5)))


def test_cli_is_reproducible_across_worker_counts(tmp_path):
    from rmmss_cli import main
    common = ["synth", "--frames", "2", "--size", "48x40", "--sequences", "2", "--conditions", "rain",
              "--seed", "11", "--no-progress", "--lidar-beams", "8", "--lidar-azimuth-steps", "256"]
    assert main(common + ["--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    assert main(common + ["--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
                   and p.name != "rmmss_dataset.json")
    assert len(files) == 2 * 8 + 2  # 2 frames x (5 PNG + 3 raw) + 2 calib
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert main(common + ["--out", str(tmp_path / "a")]) == 1  # not empty: refused
