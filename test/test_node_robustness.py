"""The node must never stop publishing (ROS-free): a 16UC1 depth corrupted with the demo's noise goes
through the pipeline; an unexpected exception while converting one sensor costs only that sensor;
the inference worker survives any frame, counts and reports failures, and its watchdog restarts it;
/diagnostics turns failures into ERROR. (The synchronizer part of the live bug, a reference stamped
on another epoch than the clock, is covered in test_sync.py.)"""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from rmmss_ros.bag import messages as M
from rmmss_ros.node.diagnostics import ERROR, OK, STALE, WARN, NodeDiagnostics
from rmmss_ros.pipeline.pipeline import Pipeline
from rmmss_ros.pipeline.worker import LatestQueue, Worker
from rmmss_ros.replay.schedule import Schedule

H, W = 48, 64


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from rmmss_core.deploy import create_backend
    from rmmss_core.models import create_model, save_model_checkpoint
    from rmmss_core.spec import PreprocessSpec

    path = tmp_path_factory.mktemp("m") / "tiny.pt"
    save_model_checkpoint(path, create_model("anymodal", size="tiny", fusion="mean", missing="drop", num_classes=25),
                          PreprocessSpec(input_size=(32, 48)))
    return create_backend("torch", path)


def _frame(rng, stamp_ns=5 * 10**9):
    mm = np.where(rng.random((H, W)) < 0.1, 0, rng.integers(500, 20000, (H, W))).astype(np.uint16)
    msgs = {"rgb": M.image_msg(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "rgb8", stamp_ns, "cam"),
            "depth": M.image_msg(mm, "16UC1", stamp_ns, "cam")}
    return SimpleNamespace(stamp_ns=stamp_ns, messages=msgs, missing=("event", "lidar"))


def _info():
    return SimpleNamespace(width=W, height=H, distortion_model="plumb_bob", d=[0.0] * 5, p=[0.0] * 12,
                           k=[40.0, 0, W / 2, 0, 40.0, H / 2, 0, 0, 1])


def test_noisy_16uc1_depth_as_the_player_sends_it_is_used(backend):
    fs = _frame(np.random.default_rng(0))
    sched = Schedule.parse("depth@8-11s:noise=0.3")
    noisy = sched.apply("depth", 9.0, fs.messages["depth"])
    noisy = M.deserialize(M.serialize(noisy), M.IMAGE)  # what goes over DDS
    assert noisy.encoding == "16UC1" and len(noisy.data) == noisy.step * noisy.height
    fs.messages["depth"] = noisy
    r = Pipeline(backend).process(fs, _info())
    assert r.errors == {} and r.used_modalities == ("rgb", "depth") and r.mask.shape == (H, W)


def test_unexpected_exception_in_one_conversion_costs_only_that_sensor(backend, monkeypatch):
    import rmmss_ros.pipeline.pipeline as P

    def boom(*a, **k):
        raise FloatingPointError("overflow in encoder")

    monkeypatch.setattr(P, "encode_depth", boom)  # the float encoder (HHA, unquantised specs)
    monkeypatch.setattr(P, "depth_codes", boom)   # the 8-bit codes path of quantised metric depth
    r = Pipeline(backend).process(_frame(np.random.default_rng(1)), _info())
    assert r.used_modalities == ("rgb",) and r.mask.shape == (H, W)
    assert r.errors == {"depth": "depth: FloatingPointError: overflow in encoder"}

    def bad_camera(*a, **k):
        raise ZeroDivisionError("fx = 0")

    monkeypatch.setattr(P, "camera_from_info", bad_camera)
    r = Pipeline(backend).process(_frame(np.random.default_rng(2)), _info())
    assert "ZeroDivisionError" in r.errors["camera_info"] and r.mask is not None


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.005)
    return cond()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the SystemExit below
def test_worker_survives_any_frame_counts_failures_and_is_restarted_by_its_watchdog():
    q = LatestQueue()
    done, errors = [], []

    def handle(item):
        if item == "exit":
            raise SystemExit("handler called sys.exit")  # kills a plain thread
        if item % 3 == 0:
            raise RuntimeError(f"inference failed on {item}")
        done.append(item)

    def on_error(item, exc):
        errors.append((item, str(exc)))
        if item == 6:
            raise ValueError("the reporter fails too")

    w = Worker(q, handle, on_error, poll_s=0.01).start()
    for k in range(1, 10):
        q.put(k)
        assert _wait(lambda k=k: len(done) + len(errors) == k)
    assert done == [1, 2, 4, 5, 7, 8] and [e[0] for e in errors] == [3, 6, 9]
    assert w.failures == 3 and w.processed == 6 and w.last_error == "RuntimeError: inference failed on 9"
    assert w.alive and w.watchdog() is None
    # even a BaseException that ends the thread is noticed and repaired by the watchdog
    q.put("exit")
    assert _wait(lambda: not w.alive)
    problem = w.watchdog()
    assert problem and "stopped" in problem and "SystemExit" in problem and w.restarts == 1 and w.alive
    q.put(10)
    assert _wait(lambda: done[-1] == 10)
    # a frame that takes too long is reported, not restarted
    gate = threading.Event()
    w.handle = lambda item: gate.wait(5.0)
    q.put(11)
    assert _wait(lambda: w.busy_since is not None)
    assert "busy" in w.watchdog(now_s=time.monotonic() + 60, stuck_s=10.0)
    gate.set()
    w.stop()
    assert not w.alive and w.watchdog() is None  # stopped on purpose: nothing to report


def test_diagnostics_report_failures_and_the_watchdog_as_error():
    d = NodeDiagnostics(("rgb", "depth"), {"rgb": "/cam", "depth": "/depth"})
    d.record((), ("rgb", "depth"), {}, 20.0, 100.0)
    out = {s.name.split(": ")[1]: s for s in d.statuses(100.5, {}, {}, {})}
    assert out["output"].level == OK and out["output"].values["failures"] == "0"
    d.record((), ("rgb",), {"depth": "depth: FloatingPointError: x"}, 20.0, 100.6)
    d.record_failure("RuntimeError: inference failed", 101.0)
    out = {s.name.split(": ")[1]: s for s in d.statuses(102.0, {}, {}, {})}
    assert out["depth"].level == ERROR and out["rgb"].level == OK
    assert out["output"].level == ERROR and "inference failed" in out["output"].message
    assert out["output"].values["failures"] == "1"
    later = {s.name.split(": ")[1]: s for s in d.statuses(101.0 + 5.5, {}, {}, {})}
    assert later["output"].level == WARN  # failure aged out; no mask for 5 s either
    d.record((), ("rgb", "depth"), {}, 20.0, 107.0)
    ok = {s.name.split(": ")[1]: s for s in d.statuses(107.1, {}, {}, {})}
    assert ok["output"].level == OK and ok["depth"].level == OK and ok["event"].level == OK  # disabled
    dead = {s.name.split(": ")[1]: s for s in d.statuses(107.1, {}, {}, {}, "inference worker had stopped")}
    assert dead["output"].level == ERROR and dead["output"].message == "inference worker had stopped"
    assert STALE not in (ok["rgb"].level, ok["depth"].level)
