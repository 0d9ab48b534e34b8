"""Issue #14: ``Pipeline.prepare`` with the LiDAR branch on its side thread (``preprocess.threads``
2, the default) gives the same inputs as one thread, keeps a malformed cloud's error to the LiDAR
(named, the images still used), says so when a cloud has no finite point even when it is read as a
view of the message buffer, and stays correct with several pipelines preparing at once (the kernels'
scratch buffers are per thread)."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sensor_msgs.msg import PointCloud2, PointField
from test_pipeline import frame, info

from rmmss_core.spec import PreprocessSpec
from rmmss_ros.conversions import fill_cloud
from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams

SPEC = PreprocessSpec(input_size=(48, 64))


def _pipe(threads: int) -> Pipeline:
    return Pipeline(SimpleNamespace(spec=SPEC), PipelineParams(preprocess_threads=threads))


def _equal(a, b) -> bool:
    return all(torch.equal(a.inputs[m], b.inputs[m]) for m in a.inputs) and np.array_equal(a.available, b.available)


def test_side_thread_gives_the_one_thread_inputs():
    fs = frame(np.random.default_rng(0))
    one, two = _pipe(1).prepare(fs, info()), _pipe(2).prepare(fs, info())
    assert two.used == ("rgb", "depth", "event", "lidar") and not two.errors
    assert "lidar_ms" in two.timings and _equal(one, two)
    assert (two.inputs["lidar"] != two.inputs["lidar"][0, :, :1, :1]).any()  # returns landed


@pytest.mark.parametrize("threads", [1, 2])
def test_a_malformed_cloud_costs_only_the_lidar(threads):
    fs = frame(np.random.default_rng(1))
    bad = np.zeros(50, [("y", "<f4"), ("z", "<f4")])
    fs.messages["lidar"] = fill_cloud(PointCloud2(), bad, PointField)
    p = _pipe(threads).prepare(fs, info())
    assert p.used == ("rgb", "depth", "event") and set(p.errors) == {"lidar"}
    assert p.errors["lidar"] == "lidar: cloud lacks fields ['x']; has ['y', 'z']"
    assert torch.count_nonzero(p.inputs["lidar"]) == 0 and not p.available[0, 3]


@pytest.mark.parametrize("threads", [1, 2])
def test_a_cloud_without_a_finite_point_is_named(threads):
    fs = frame(np.random.default_rng(2))
    pts = np.full(300, np.nan, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    fs.messages["lidar"] = fill_cloud(PointCloud2(), pts, PointField)  # the x, y, z, intensity view layout
    p = _pipe(threads).prepare(fs, info())
    assert p.errors == {"lidar": "lidar: none of the 300 points has finite x, y, z"}
    assert p.used == ("rgb", "depth", "event")


def test_pipelines_preparing_at_once_on_several_threads_stay_exact():
    frames = [frame(np.random.default_rng(10 + k)) for k in range(3)]
    want = [_pipe(1).prepare(f, info()) for f in frames]
    bad: list[str] = []

    def worker(k: int) -> None:
        pipe = _pipe(2)
        for r in range(15):
            i = (k + r) % len(frames)
            if not _equal(pipe.prepare(frames[i], info()), want[i]):
                bad.append(f"thread {k} round {r}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not bad


def test_a_dropped_pipeline_ends_its_side_thread_and_is_freed():
    """Each Pipeline with preprocess.threads 2 used to keep its thread, its model and its last input
    batch alive for ever (61 pipelines: 62 threads, +1 GB). Found by a new-user run."""
    import gc
    import time
    import weakref

    fs = frame(np.random.default_rng(3))
    before = threading.active_count()
    refs = []
    for _ in range(8):
        p = _pipe(2)
        p.prepare(fs, info())
        refs.append(weakref.ref(p))
        del p
    gc.collect()
    assert all(r() is None for r in refs)
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_close_ends_the_side_thread_and_prepare_still_works_after():
    fs = frame(np.random.default_rng(4))
    p = _pipe(2)
    first = p.prepare(fs, info())
    p.close()
    assert _equal(p.prepare(fs, info()), first)


def test_a_one_pixel_wide_image_cropped_to_nothing_is_an_error_not_a_lost_frame():
    """A 1 x 480 camera image with resize_policy crop raised out of prepare (the whole frame lost).
    Found by a new-user run. Now each modality on the camera's grid says why, the others are used."""
    from sensor_msgs.msg import Image

    from rmmss_ros.conversions import fill_image
    fs = frame(np.random.default_rng(5), with_=("rgb", "event", "lidar"))
    fs.messages["rgb"] = fill_image(Image(), np.zeros((480, 1, 3), np.uint8), "rgb8")
    pipe = Pipeline(SimpleNamespace(spec=PreprocessSpec(input_size=(32, 64), resize_policy="crop")))
    tall = info()  # the calibration of this 1 x 480 camera: the LiDAR is projected onto its grid too
    tall.width, tall.height, tall.k = 1, 480, [40.0, 0, 0.5, 0, 40.0, 240.0, 0, 0, 1]
    p = pipe.prepare(fs, tall)
    crop = "a 1 x 480 image has no pixels left for the 64 x 32 input under resize_policy 'crop'"
    assert p.errors == {"rgb": f"rgb: {crop}", "lidar": f"lidar: {crop}"}
    assert p.used == ("event",) and torch.count_nonzero(p.inputs["rgb"]) == 0
    # with a CameraInfo of another size the frame is not lost either: the calibration is refused for
    # it (never projected with), and the LiDAR says it has none
    p = pipe.prepare(fs, info())
    assert p.errors["rgb"] == f"rgb: {crop}" and p.used == ("event",)
    assert "does not match the camera image 1x480" in p.errors["camera_info"]
    assert "no valid CameraInfo" in p.errors["lidar"]


@pytest.mark.parametrize("field", ["T_cam_lidar", "T_cam_event"])
def test_non_finite_extrinsics_are_refused(field):
    T = [1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, float("nan"), 0, 0, 0, 1]
    with pytest.raises(ValueError, match=f"{field} has non-finite values"):
        Pipeline(SimpleNamespace(spec=SPEC), PipelineParams(**{field: tuple(T)}))
