"""``make bench`` section "node": the perception node's own costs, measured in-process.

- per-frame overhead without inference (decode, encode/projection, preprocess) at 640 x 480 with a
  64k-point cloud, as a ratio to simply deserialising the same CDR messages (rclpy), with its
  per-stage breakdown, the memory-write floor (allocating and writing the four float32 inputs) and
  the same frame set at a smaller network input (256 x 320, letterbox);
- synchronizer cost per message;
- output rate with one of four sensors dead, as a share of the reference rate (message_filters'
  approximate policy emits nothing then: it needs every input);
- latency stamp -> mask with the tiny CPU model (sync + pipeline + inference, no DDS hop);
- input conversions (camera encodings, LiDAR units, event packets and window): rmmss_ros.bench.inputs.
- our synchroniser side by side with message_filters' ApproximateTimeSynchronizer on one stream
  (camera/depth 30 Hz, events 60 Hz, LiDAR 10 Hz; rmmss_ros.bench.sync).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from rmmss_core.bench.report import BenchReport, machine_info, time_callable
from rmmss_ros.bench.gpu_node import INPUT, N_POINTS, H, W  # the GPU check's frame set: one definition
from rmmss_ros.sync.synchronizer import NS, SensorConfig, Synchronizer


def _messages():
    """The GPU check's frame set (rmmss_ros.bench.gpu_node.messages) as rclpy messages."""
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

    from rmmss_ros.bench.gpu_node import messages
    return messages(0, Image, PointCloud2, PointField, CameraInfo)


def _tiny_backend(tmp: Path, size: tuple[int, int]):
    from rmmss_core.deploy import create_backend
    from rmmss_core.models import create_model, save_model_checkpoint
    from rmmss_core.spec import PreprocessSpec

    path = tmp / "tiny.pt"
    save_model_checkpoint(path, create_model("anymodal", size="tiny", num_classes=25), PreprocessSpec(input_size=size))
    return create_backend("torch", path)


def _interleaved(fns, iters: int, warmup: int = 3, cpu: list[list[float]] | None = None) -> list[list[float]]:
    """Time each of ``fns`` in turn, ``iters`` rounds: per function the list of wall ms (same
    rounds); ``cpu``, when given, receives per function the process CPU ms (all threads)."""
    for _ in range(warmup):
        for f in fns:
            f()
    out: list[list[float]] = [[] for _ in fns]
    if cpu is not None:
        cpu[:] = [[] for _ in fns]
    for _ in range(iters):
        for k, f in enumerate(fns):
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            out[k].append((time.perf_counter() - t0) * 1e3)
            if cpu is not None:
                cpu[k].append((time.process_time() - c0) * 1e3)
    return out


def _numpy_path(fn):
    """``fn`` with the compiled kernels off (the numpy references)."""
    from rmmss_core import kernels

    def run():
        with kernels.disabled():
            return fn()
    return run


def _variants(msgs, info):
    """The same frame set as a spinning LiDAR publishes it (points in azimuth order, not random),
    and the CameraInfo of a distorted (plumb_bob) camera."""
    import copy

    from sensor_msgs.msg import PointCloud2, PointField

    from rmmss_ros.conversions import fill_cloud, read_points
    pts = read_points(msgs["lidar"]).copy()
    pts = pts[np.argsort(np.arctan2(pts["y"], pts["x"]), kind="stable")]
    scan = dict(msgs, lidar=fill_cloud(PointCloud2(), pts, PointField))
    dist = copy.deepcopy(info)
    dist.d = [-0.28, 0.07, 0.001, -0.0005, 0.0]
    return scan, dist


def _float_path(pipe, msgs, info):
    """The composition before issue #14's CPU work: every modality encoded to a float32 image
    (float64 depth, dense LiDAR image), then per-modality float preprocessing (its LiDAR
    projection already has this change's speed-ups)."""
    from rmmss_core.encodings import encode_depth, encode_rgb, project_lidar
    from rmmss_core.preprocess import preprocess
    from rmmss_ros.conversions import cloud_to_xyzi, encode_event_image, to_depth_m, to_rgb8

    spec, cam = pipe.spec, pipe.camera(info)
    enc = {"rgb": encode_rgb(to_rgb8(msgs["rgb"])),
           "depth": encode_depth(to_depth_m(msgs["depth"]), spec.depth, True),
           "event": encode_event_image(msgs["event"]),
           "lidar": project_lidar(cloud_to_xyzi(msgs["lidar"]), pipe.T_cam_lidar, cam, spec.lidar, True,
                                  intensity_units=pipe.lidar_units(msgs["lidar"]))}
    return preprocess(enc, spec)


def _stages(pipe, msgs, info, iters: int) -> dict[str, float]:
    """p50 ms of each stage of ``Pipeline.prepare`` alone (decode + encode per modality, LiDAR
    decode separately, preprocess of the four encoded inputs)."""
    from rmmss_core.modalities import MODALITIES
    from rmmss_core.preprocess import Codes, preprocess
    from rmmss_ros.conversions import cloud_to_xyzi, event_image_codes, to_rgb8

    cam = pipe.camera(info)
    spec = pipe.spec
    fns = {"camera_decode_bgr8_to_rgb_codes": lambda: Codes.dense(to_rgb8(msgs["rgb"])),
           "depth_decode_and_encode_16UC1": lambda: pipe.encode_depth(msgs["depth"], cam),
           "event_frame_decode": lambda: Codes.dense(event_image_codes(msgs["event"])),
           "lidar_decode_cloud_to_xyzi": lambda: cloud_to_xyzi(msgs["lidar"]),
           "lidar_decode_and_project_64k": lambda: pipe.encode_lidar(msgs["lidar"], cam, codes=True)}
    out = {k: time_callable(f, iters=iters)["p50_ms"] for k, f in fns.items()}
    encoded = {m: fns[k]() for m, k in zip(MODALITIES, ("camera_decode_bgr8_to_rgb_codes",
                                                        "depth_decode_and_encode_16UC1", "event_frame_decode",
                                                        "lidar_decode_and_project_64k"), strict=True)}
    # the projection alone on a 360-degree 64k scan (what a spinning LiDAR publishes; the bench
    # cloud above only spans the front), with and without the float32 view pre-cull, interleaved
    from rmmss_core.encodings.lidar import lidar_returns
    rng = np.random.default_rng(1)
    az, r = rng.uniform(-np.pi, np.pi, N_POINTS), rng.uniform(1, 80, N_POINTS)
    scan = np.stack([r * np.cos(az), r * np.sin(az), rng.uniform(-2, 5, N_POINTS),
                     rng.uniform(0, 255, N_POINTS)], axis=1).astype(np.float32)
    t_kernel, t_cull, t_all = _interleaved(
        [lambda: lidar_returns(scan, pipe.T_cam_lidar, cam, spec.lidar, "byte"),
         _numpy_path(lambda: lidar_returns(scan, pipe.T_cam_lidar, cam, spec.lidar, "byte")),
         _numpy_path(lambda: lidar_returns(scan, pipe.T_cam_lidar, cam, spec.lidar, "byte", precull=False))], iters)
    out["lidar_project_64k_360_degree_scan_compiled_kernel"] = float(np.median(t_kernel))
    out["lidar_project_64k_360_degree_scan_numpy_reference_with_the_float32_pre_cull"] = float(np.median(t_cull))
    out["lidar_project_64k_360_degree_scan_numpy_reference_without_the_pre_cull"] = float(np.median(t_all))
    out["preprocess_4_inputs_fit_normalise"] = time_callable(
        lambda: preprocess(encoded, spec, out=torch.empty(4, 3, *spec.input_size)), iters=iters)["p50_ms"]
    return out


def _dead_sensor_share(seconds: float) -> float:
    """Simulated 10 Hz camera + depth + events, LiDAR dead: sets emitted / camera frames."""
    clock = SimpleNamespace(t=100 * NS)
    sync = Synchronizer([SensorConfig(m, 0.02, 0.0, 0.2) for m in ("rgb", "depth", "event", "lidar")],
                        lambda: clock.t, reference="rgb")
    frames = sets = 0
    for k in range(int(seconds * 100)):  # 10 ms steps
        if k % 10 == 0:
            frames += 1
            for m in ("depth", "event", "rgb"):
                sets += len(sync.add(m, clock.t, m))
        sets += len(sync.poll())
        clock.t += 10_000_000
    return sets / frames


def run(quick: bool) -> BenchReport:
    from rclpy.serialization import deserialize_message, serialize_message

    from rmmss_core.spec import PreprocessSpec
    from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams

    msgs, info = _messages()
    iters = 5 if quick else 30
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Pipeline(_tiny_backend(Path(tmp), (H, W)))
        fs = SimpleNamespace(stamp_ns=10 * NS, messages=msgs, missing=())
        raw = {m: (serialize_message(msg), type(msg)) for m, msg in msgs.items()}
        # interleaved, so load swings on the shared machine hit all alike
        pipe1 = Pipeline(pipe.backend, PipelineParams(preprocess_threads=1))
        scan_msgs, dist_info = _variants(msgs, info)
        fs_scan = SimpleNamespace(stamp_ns=10 * NS, messages=scan_msgs, missing=())
        cpu: list[list[float]] = []
        t_deser, t_prep, t_prep1, t_np, t_float = _interleaved(
            [lambda: [deserialize_message(b, t) for b, t in raw.values()], lambda: pipe.prepare(fs, info),
             lambda: pipe1.prepare(fs, info), _numpy_path(lambda: pipe1.prepare(fs, info)),
             lambda: _float_path(pipe, msgs, info)], iters * 2, cpu=cpu)
        c_deser, c_prep, c_prep1, c_np = (float(np.median(c)) for c in cpu[:4])
        deser, prep, prep1, prep_np, flt = ({"p50_ms": float(np.median(t))} for t in (t_deser, t_prep, t_prep1, t_np,
                                                                                        t_float))
        pair_ratio = float(np.median(np.asarray(t_prep) / np.asarray(t_deser)))
        t_deser2, t_scan, t_dist, t_dist_np = _interleaved(
            [lambda: [deserialize_message(b, t) for b, t in raw.values()], lambda: pipe.prepare(fs_scan, info),
             lambda: pipe.prepare(fs, dist_info), _numpy_path(lambda: pipe1.prepare(fs, dist_info))], iters)
        deser2, scan, dist, dist_np = (float(np.median(t)) for t in (t_deser2, t_scan, t_dist, t_dist_np))
        stages = _stages(pipe, msgs, info, iters)
        floor = time_callable(lambda: torch.empty(4, 3, H, W).fill_(1.0), iters=iters)
        pipe_small = Pipeline(SimpleNamespace(spec=PreprocessSpec(input_size=(256, 320), resize_policy="letterbox")))
        prep_small = time_callable(lambda: pipe_small.prepare(fs, info), iters=iters)
        pipe_mid = Pipeline(SimpleNamespace(spec=PreprocessSpec(input_size=INPUT, resize_policy="letterbox")))
        prep_mid = time_callable(lambda: pipe_mid.prepare(fs, info), iters=iters)
        full = time_callable(lambda: pipe.process(fs, info), iters=iters)

        n = 4000 if quick else 40000
        clock = SimpleNamespace(t=100 * NS)
        sync = Synchronizer([SensorConfig(m, 0.02, 0.0, 0.2) for m in ("rgb", "depth", "event", "lidar")],
                            lambda: clock.t, reference="rgb")
        t0 = time.perf_counter()
        for k in range(n // 4):
            clock.t += 25_000_000
            for m in ("depth", "event", "lidar", "rgb"):
                sync.add(m, clock.t, k)
        sync_us = (time.perf_counter() - t0) / n * 1e6
        share = _dead_sensor_share(5.0 if quick else 60.0)

        # latency stamp -> mask in process: sync emission + pipeline with the tiny model at 640 x 480
        lat = []
        for _ in range(iters):
            start = time.perf_counter()
            clock.t += 100_000_000
            s = sync.add("depth", clock.t, msgs["depth"]) + sync.add("event", clock.t, msgs["event"])
            s += sync.add("lidar", clock.t, msgs["lidar"]) + sync.add("rgb", clock.t, msgs["rgb"])
            pipe.process(s[-1], info)
            lat.append((time.perf_counter() - start) * 1e3)
    lat.sort()
    from rmmss_ros.bench import inputs as bench_inputs

    conv_records, conv_md = bench_inputs.run(quick, iters)
    ev_records, ev_md = bench_inputs.event_window(quick, iters)
    from rmmss_ros.bench import compressed as bench_compressed
    comp_records, comp_md = bench_compressed.run(quick, iters)
    from rmmss_ros.bench.sync import compare

    ours, mf, mf_source = compare(10.0 if quick else 60.0)
    ratio = prep["p50_ms"] / deser["p50_ms"]
    mi = machine_info()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    records = [
        {"metric": "deserialise_4_msgs_ms_p50", "value": deser["p50_ms"]},
        {"metric": "node_overhead_no_inference_ms_p50", "value": prep["p50_ms"]},
        {"metric": "overhead_ratio_vs_deserialise", "value": ratio},
        {"metric": "overhead_ratio_vs_deserialise_median_of_pairs", "value": pair_ratio},
        {"metric": "deserialise_cpu_ms_p50", "value": c_deser},
        {"metric": "node_overhead_cpu_ms_p50", "value": c_prep},
        {"metric": "node_overhead_one_thread_ms_p50", "value": prep1["p50_ms"], "cpu_ms": c_prep1},
        {"metric": "node_overhead_numpy_references_ms_p50", "value": prep_np["p50_ms"], "cpu_ms": c_np},
        {"metric": "node_overhead_scan_ordered_cloud_ms_p50", "value": scan, "deserialise_ms": deser2},
        {"metric": "node_overhead_plumb_bob_camera_ms_p50", "value": dist, "deserialise_ms": deser2,
         "numpy_reference_ms": dist_np},
        {"metric": f"node_overhead_input_{INPUT[0]}x{INPUT[1]}_letterbox_ms_p50", "value": prep_mid["p50_ms"]},
        {"metric": "float_path_before_14_ms_p50", "value": flt["p50_ms"]},
        {"metric": "write_floor_4_inputs_ms_p50", "value": floor["p50_ms"]},
        {"metric": "node_overhead_input_256x320_letterbox_ms_p50", "value": prep_small["p50_ms"]},
        *({"metric": f"stage_{k}_ms_p50", "value": v} for k, v in stages.items()),
        {"metric": "load_average_1min", "value": load},
        {"metric": "pipeline_with_tiny_model_ms_p50", "value": full["p50_ms"]},
        {"metric": "sync_us_per_message", "value": sync_us},
        {"metric": "output_share_one_of_four_dead", "value": share, "message_filters": 0.0},
        {"metric": "latency_stamp_to_mask_tiny_cpu_ms_p50", "value": lat[len(lat) // 2]},
        *[{"metric": f"sync_30_30_60_10hz_{k}", "value": v, "message_filters": mf[k],
           "message_filters_source": mf_source} for k, v in ours.items()],
    ]
    def mfv(k: str, fmt: str) -> str:
        return "n/a (not message_filters' code)" if mf[k] is None else format(mf[k], fmt)
    us = " us" if mf["cpu_us_per_message"] is not None else ""
    source = ("ROS 2 Jazzy Python, installed" if mf_source == "message_filters" else
              "not installed here, so its policy through our re-implementation, "
              "rmmss_ros.bench.sync.ApproximatePolicy, read from ros2/message_filters@03ccc026d2d0; CPU not comparable")
    cmp_rows = [
        "", "Synchroniser on one stream (camera 30 Hz, depth 30 Hz, events 60 Hz, LiDAR 10 Hz, +-2 ms jitter, "
        "3-15 ms transport delay, slop 50 ms, queue 10; the LiDAR dies halfway), ours vs message_filters' "
        f"ApproximateTimeSynchronizer ({source}):", "",
        "| measure | rmmss Synchronizer | message_filters ApproximateTimeSynchronizer |", "| --- | --- | --- |",
        f"| CPU per message | {ours['cpu_us_per_message']:.1f} us | {mfv('cpu_us_per_message', '.1f')}{us} |",
        f"| sets per camera frame | {ours['sets_per_camera_frame']:.2f} | {mfv('sets_per_camera_frame', '.2f')} |",
        f"| share of sets with the LiDAR | {ours['share_of_sets_with_lidar']:.1%} | "
        f"{mfv('share_of_sets_with_lidar', '.1%')} |",
        f"| sets per camera frame after the LiDAR dies | {ours['sets_per_camera_frame_lidar_dead']:.2f} | "
        f"{mfv('sets_per_camera_frame_lidar_dead', '.2f')} |",
    ]
    md = "\n".join([
        f"Machine: {mi['cpu']}, {mi['cores']} cores, torch threads {mi['torch_threads']}, GPU {mi['gpu']}. "
        f"Inputs 640 x 480 (bgr8 camera, 16UC1 depth, rgb8 event frame) and a {N_POINTS}-point cloud; "
        f"{'quick' if quick else 'full'} run, {iters} timed iterations ({2 * iters} interleaved rounds of "
        "deserialise / overhead / one thread / numpy / float path). Model input at the camera resolution "
        "(480 x 640) unless said. Overhead = `Pipeline.prepare` with its defaults: the compiled kernels "
        "(rmmss_core.kernels) and the LiDAR branch on a side thread (`preprocess.threads: 2`); wall time "
        "unless said; CPU time counts every thread of the process.",
        "",
        "| measure | value |", "| --- | --- |",
        f"| deserialise the 4 CDR messages (rclpy), p50 | {deser['p50_ms']:.2f} ms |",
        f"| node overhead without inference (decode, encode, LiDAR projection, preprocess), p50 | "
        f"{prep['p50_ms']:.2f} ms |",
        f"| overhead / deserialise | {ratio:.1f}x |",
        f"| overhead / deserialise, median over interleaved rounds | {pair_ratio:.1f}x |",
        f"| CPU time (all threads), deserialise / overhead, p50 | {c_deser:.2f} ms / {c_prep:.2f} ms "
        f"({c_prep / c_deser:.1f}x) |",
        f"| the same on one thread (`preprocess.threads: 1`), p50 | {prep1['p50_ms']:.2f} ms "
        f"({prep1['p50_ms'] / deser['p50_ms']:.1f}x), CPU {c_prep1:.2f} ms |",
        f"| the same with the numpy references (`RMMSS_KERNELS=0`, one thread: the path before the compiled "
        f"kernels), p50 | {prep_np['p50_ms']:.2f} ms ({prep_np['p50_ms'] / deser['p50_ms']:.1f}x), CPU {c_np:.2f} ms |",
        f"| the cloud in azimuth order (as a spinning LiDAR publishes it; the rows above use a random order), "
        f"p50 | {scan:.2f} ms ({scan / deser2:.1f}x deserialise {deser2:.2f} ms, same rounds) |",
        f"| a plumb_bob-distorted camera (OpenCV's distortion arithmetic in the kernel), p50 | {dist:.2f} ms "
        f"({dist / deser2:.1f}x); numpy reference (`cv2.projectPoints`, which from Python also computes the "
        f"Jacobian), one thread: {dist_np:.2f} ms |",
        f"| node overhead, same frame set, network input {INPUT[0]} x {INPUT[1]} (letterbox), p50 | "
        f"{prep_mid['p50_ms']:.2f} ms ({prep_mid['p50_ms'] / deser['p50_ms']:.1f}x) |",
        f"| the same inputs through the float encoders (the composition before issue #14: float32 images, "
        f"float64 depth, dense LiDAR image, float preprocessing), p50 | {flt['p50_ms']:.2f} ms "
        f"({flt['p50_ms'] / deser['p50_ms']:.1f}x deserialise; this path {flt['p50_ms'] / prep['p50_ms']:.1f}x faster) |",
        f"| floor: allocate and write the four 3 x 480 x 640 float32 inputs, p50 | {floor['p50_ms']:.2f} ms "
        f"({floor['p50_ms'] / deser['p50_ms']:.1f}x deserialise) |",
        f"| node overhead, same frame set, network input 256 x 320 (letterbox), p50 | {prep_small['p50_ms']:.2f} ms "
        f"({prep_small['p50_ms'] / deser['p50_ms']:.1f}x) |",
        f"| synchronizer, per message | {sync_us:.1f} us |",
        f"| output rate, LiDAR dead, share of the reference rate | {share:.1%} (message_filters: 0%) |",
        f"| latency stamp -> mask, tiny model, CPU, in process (no DDS hop), p50 | {lat[len(lat) // 2]:.1f} ms |",
        "",
        *cmp_rows,
        f"Load average (1 min) when the run ended: {load:.1f} on {mi['cores']} cores (shared machine: compare "
        "ratios within one run, not absolute times across runs).",
        "",
        "Per-stage breakdown of the overhead at 640 x 480 (each stage timed alone, p50):",
        "",
        "| stage | ms |", "| --- | --- |",
        *(f"| {k.replace('_', ' ')} | {v:.2f} |" for k, v in stages.items()),
        "",
        "B0 at 1024 x 1024 on a GPU: not measured here (no GPU and no rclpy on the GPU machine).",
        "",
        "### Input conversions (issue #12) next to deserialising the same message",
        "",
        conv_md,
        "",
        "### Event packets: decode, buffer, 30 ms window",
        "",
        ev_md,
        "",
        "### Compressed camera and compressedDepth next to the raw path (issue #22)",
        "",
        comp_md,
    ])
    records += [{"metric": "conversion", **r} for r in conv_records]
    records += [{"metric": "event_window", **r} for r in ev_records]
    records += [{"metric": "compressed_input", **r} for r in comp_records]
    return BenchReport("node", "ROS node overhead, synchronizer and latency", md, records,
                       command="make bench (rmmss_ros.bench.node.run)")
