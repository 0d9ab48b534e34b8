"""``rmmss replay BAG --model M``: evaluate a bag offline through the node's pipeline.

Examples::

    rmmss replay rosbags/sample --model rosbags/student.pt --out runs/replay
    rmmss replay rosbags/sample --model rosbags/student.pt --drop lidar@3-8s,depth@flap=0.3/1s \\
        --out runs/replay --out-bag runs/replay/masks
    rmmss replay my.bag --model m.pt --param rgb.topic=/front/image --param event.format=cloud
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="bag folder or .mcap/.db3 file")
    parser.add_argument("--model", required=True, help="checkpoint (.pt) or ONNX file the node would serve")
    parser.add_argument("--backend", default="torch", help="torch, onnxruntime or tensorrt")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--drop", default="", help="failure schedule, e.g. lidar@10-20s,event@30-35s,"
                        "depth@flap=0.3/1s,rgb@5-6s:blank (see rmmss_ros.replay.schedule)")
    parser.add_argument("--seed", type=int, default=0, help="seed of flapping and corruptions")
    parser.add_argument("--params-file", default=None, help="node params YAML (config/perception.yaml form)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="node parameter override, e.g. lidar.timeout_s=0.1 (value parsed as YAML)")
    parser.add_argument("--label-topic", default="/labels/semantic", help="ground-truth mono8 label topic")
    parser.add_argument("--out", default="runs/replay", help="report folder (replay.md, replay.json, PNGs)")
    parser.add_argument("--out-bag", default=None, help="also write the masks to this bag (mcap)")
    parser.add_argument("--overlays", type=_count, default=6, help="overlay images in the report (0: none)")


def node_values(params_file: str | None, overrides: list[str], bag_custom: dict[str, str]) -> dict[str, Any]:
    """The node's parameter values: defaults, then the bag's LiDAR extrinsic, intensity units and event format,
    then the params file, then ``--param`` overrides (later wins). ValueError on unknown names."""
    from rmmss_ros.node import params as P

    values = P.defaults()
    if "rmmss.T_cam_lidar" in bag_custom:
        values["lidar.extrinsic"] = [float(x) for x in json.loads(bag_custom["rmmss.T_cam_lidar"])]
    if bag_custom.get("rmmss.events") in ("points", "frame"):
        values["event.format"] = "cloud" if bag_custom["rmmss.events"] == "points" else "image"
    if bag_custom.get("rmmss.lidar_intensity_units") in ("auto", "unit", "byte", "counts16"):
        values["lidar.intensity_units"] = bag_custom["rmmss.lidar_intensity_units"]
    if params_file:
        doc = yaml.safe_load(Path(params_file).read_text()) or {}
        node = next(iter(doc.values())) if len(doc) == 1 and "ros__parameters" in next(iter(doc.values())) else doc
        values.update(_flatten(node.get("ros__parameters", node)))
    for item in overrides:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"bad --param {item!r}: expected NAME=VALUE")
        values[name.strip()] = yaml.safe_load(raw)
    unknown = sorted(set(values) - set(P.BY_NAME))
    if unknown:
        raise ValueError(f"unknown node parameter(s) {unknown}; see rmmss_ros/node/params.py")
    return values


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def write_mask_bag(path: str | Path, result: Any, palette: Any, frame_id: str = "camera_optical_frame") -> int:
    """Masks (mono8, class ids) and colour masks (rgb8) of a replay, stamped like their frames."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from rmmss_ros.bag import messages as M

    path = Path(path)
    if path.exists():
        raise ValueError(f"output bag {path} already exists")
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    ts = M.typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        mask_c = w.add_connection("/rmmss/mask", M.IMAGE, typestore=ts)
        color_c = w.add_connection("/rmmss/mask_color", M.IMAGE, typestore=ts)
        for stamp in sorted(result.masks, key=lambda s: result.emit_ns[s]):
            mask = result.masks[stamp]
            w.write(mask_c, result.emit_ns[stamp], M.serialize(M.image_msg(mask, "mono8", stamp, frame_id)))
            w.write(color_c, result.emit_ns[stamp], M.serialize(M.image_msg(lut[mask], "rgb8", stamp, frame_id)))
    return len(result.masks)


def run(args: argparse.Namespace) -> int:
    from rmmss_core.cli.checks import check_out_dir
    from rmmss_core.deploy import create_backend
    from rmmss_ros.bag.reader import open_bag
    from rmmss_ros.outputs.node_outputs import confidence_problem
    from rmmss_ros.pipeline.pipeline import Pipeline, PipelineParams
    from rmmss_ros.replay.replay import Replayer
    from rmmss_ros.replay.schedule import Schedule
    check_out_dir(args.out)  # before the replay, not after it
    if args.out_bag:
        if Path(args.out_bag).exists():
            raise ValueError(f"--out-bag {args.out_bag} already exists; choose a new name")
        check_out_dir(Path(args.out_bag).parent, "--out-bag folder")
    bag = open_bag(args.bag)
    schedule = Schedule.parse(args.drop, seed=args.seed)
    values = node_values(args.params_file, args.param, bag.custom)
    backend = create_backend(args.backend, args.model, device=args.device, precision=args.precision)
    problem = confidence_problem(values, backend, args.model)
    if problem:
        backend.close()
        raise ValueError(problem)
    pipeline = Pipeline(backend, PipelineParams.from_values(values))
    result = Replayer(pipeline, values, label_topic=args.label_topic, max_overlays=args.overlays).run(bag, schedule)
    meta = {"bag": str(args.bag), "model": str(args.model), "backend": args.backend, "schedule": str(schedule),
            "reference": values["reference"], "event.format": values["event.format"]}
    paths = result.stats.write(args.out, "replay", meta)
    s = result.stats.summary()
    print(f"replay {args.bag}: mIoU {_pct(s['miou'])} over {s['frames']['emitted']} frames "
          f"(expected {s['frames']['expected']}), latency p50 {_ms(s['latency_ms']['p50'])}")
    for name, v in s["per_pattern"].items():
        print(f"  {name:5s} {v['frames']:5d} frames  mIoU {_pct(v['miou'])}")
    for note in s["notes"]:
        print(f"  note: {note}")
    if args.out_bag:
        n = write_mask_bag(args.out_bag, result, backend.spec.palette)
        print(f"wrote {n} masks to {args.out_bag}")
    print(f"report: {paths['md']}")
    backend.close()
    return 0


def _count(text: str) -> int:
    """A whole number >= 0 (argparse type: a negative count used to pass as 'none' without a word)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {n}")
    return n


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"
