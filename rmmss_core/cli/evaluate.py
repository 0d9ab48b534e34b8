"""``rmmss eval``: evaluate checkpoints under every missing-sensor pattern (EMM, RMM, NM).

Writes ``<out>/eval.json`` (atomic), ``<out>/eval.md`` (per-subset mIoU rows x checkpoint columns,
mIoU^Avg, mIoU^E(p), RMM, NM, per-class IoU), ``<out>/emm_subsets.png`` (grouped bars comparing
the checkpoints) and ``<out>/overlays_<checkpoint>.png`` for ``--overlay-samples``.

Everything is checked before the first checkpoint is loaded (``--out`` writable, the dataset name,
the checkpoint files) and written only at the end: a failed evaluation leaves no folder behind.
A dataset folder without one sensor is an error unless ``--modalities`` names the sensors to use on
purpose; the report then says which were left out (subsets with them are scored without them).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("rmmss.eval")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", nargs="+", required=True, metavar="CKPT",
                        help="one or more rmmss checkpoints (.pt); compared side by side")
    parser.add_argument("--data", required=True, help="dataset root (DELIVER layout)")
    parser.add_argument("--dataset", default="deliver",
                        help="dataset name in rmmss_core.data: deliver (default), synthetic, muses")
    parser.add_argument("--modalities", default=None,
                        help="evaluate on these sensors only, e.g. RDE (default: all four; a missing folder "
                             "is an error). Subsets with a left-out sensor are scored without it; the report says so")
    parser.add_argument("--split", default="val", help="split to evaluate (default val)")
    parser.add_argument("--protocols", default="emm,rmm,nm",
                        help="comma list of emm, emm_told, rmm, nm (METHODS.md: RMM = 3 rates x 15 "
                             "combinations of affected modalities, NM = 3 levels)")
    parser.add_argument("--tell-missing", action="store_true",
                        help="EMM: also pass the availability mask to the model (default: the authors' "
                             "protocol, inputs of missing sensors zeroed and the model not told)")
    parser.add_argument("--authors-protocol", choices=("robustseg", "anyseg"), default=None,
                        help="evaluate an imported authors' model exactly as their own script does (their data "
                             "pipeline, subsets and mean; rmmss_core/eval/authors.py); implies --protocols emm")
    parser.add_argument("--out", required=True, help="output folder for eval.json, eval.md and PNGs")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N samples")
    parser.add_argument("--overlay-samples", default="", help="comma list of sample indices for overlays")
    parser.add_argument("--overlay-subsets", default="RDEL,RD,R",
                        help="EMM subsets whose predictions the overlays show (default RDEL,RD,R)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the RMM / NM corruptions")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--store-quality", nargs="*", default=None, metavar="MODEL",
                        help="store the measured EMM table (mIoU per sensor subset, the data, the date) into each "
                             "checkpoint, atomically, for the ROS node's expected quality (prefers emm_told); "
                             "MODEL files (e.g. the .onnx exported from the one --checkpoint) get it too "
                             "(an .onnx: <stem>.quality.json beside it)")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return dev


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{flag} must be a comma list of integers, got {text!r}") from None


def _names(paths: list[str]) -> list[str]:
    """Checkpoint display names: file stems, made unique with the parent folder or an index."""
    stems = [Path(p).stem for p in paths]
    out = []
    for i, p in enumerate(paths):
        name = stems[i]
        if stems.count(name) > 1:
            name = f"{Path(p).parent.name}/{name}"
        if name in out:
            name = f"{name}#{i}"
        out.append(name)
    return out


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader, Subset

    from rmmss_core.cli.checks import check_out_dir
    from rmmss_core.data import DATASETS, build_dataset
    from rmmss_core.eval.plots import plot_overlays, plot_subset_bars
    from rmmss_core.eval.protocols import Evaluator, build_conditions
    from rmmss_core.eval.report import build_report, write_report
    from rmmss_core.modalities import MODALITIES, parse_subset, subset_name
    from rmmss_core.models.checkpoint import load_model
    from rmmss_core.utils.io import CheckpointError

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_samples is not None and args.max_samples < 1:
        raise ValueError(f"--max-samples must be >= 1, got {args.max_samples}")
    if args.dataset not in DATASETS:
        raise ValueError(f"--dataset {args.dataset}: unknown dataset; valid: {', '.join(sorted(DATASETS))}")
    if not Path(args.data).is_dir():
        raise ValueError(f"--data {args.data}: {'is a file' if Path(args.data).exists() else 'does not exist'}")
    out = check_out_dir(args.out)
    for path in args.checkpoint:
        if Path(path).is_dir() or not Path(path).is_file():
            from rmmss_core.utils.io import load_checkpoint
            load_checkpoint(path)  # raises the CheckpointError that says what is wrong
    device = _device(args.device)
    if args.authors_protocol:  # AnySeg feeds only the present sensors: its (drop) model must be told
        from rmmss_core.eval.authors import PROTOCOLS
        args.protocols, args.tell_missing = "emm", args.authors_protocol == "anyseg"
        args.dataset = PROTOCOLS[args.authors_protocol].dataset
    if args.store_quality is not None:
        from rmmss_core.deploy.quality import check_store_request
        check_store_request(args.protocols, args.store_quality, args.checkpoint)
    conditions = build_conditions(args.protocols.split(","), tell_missing=args.tell_missing)
    overlay_samples = _int_list(args.overlay_samples, "--overlay-samples")
    overlay_subsets = [subset_name(parse_subset(s)) for s in args.overlay_subsets.split(",") if s.strip()]
    sensors: dict[str, Any] = {}
    if args.modalities:
        keep = [MODALITIES[i] for i in parse_subset(args.modalities)]
        sensors = {"modalities": tuple(keep)}

    results: dict[str, Any] = {}
    overlays: dict[str, Any] = {}
    class_names, palette = None, None
    for path, name in zip(args.checkpoint, _names(args.checkpoint), strict=True):
        try:
            model, spec = load_model(path, map_location=device)
        except CheckpointError as e:
            raise CheckpointError(f"--checkpoint: {e}") from None
        if class_names is None:
            class_names, palette = spec.class_names, spec.palette
        elif tuple(spec.class_names) != tuple(class_names):
            raise ValueError(f"checkpoint {path} predicts classes {spec.class_names[:3]}..., "
                             f"unlike the first checkpoint's {class_names[:3]}...; cannot compare")
        if args.authors_protocol:
            from rmmss_core.eval.authors import build_authors_dataset
            dataset = build_authors_dataset(args.authors_protocol, args.data, args.split, spec)
        else:
            dataset = build_dataset(args.dataset, root=args.data, split=args.split, spec=spec, **sensors)
        if args.max_samples is not None and args.max_samples < len(dataset):
            dataset = Subset(dataset, range(args.max_samples))
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers,
                            pin_memory=device.type == "cuda")
        log.info("%s: %d samples of %s/%s, %d conditions on %s", name, len(dataset), args.dataset,
                 args.split, len(conditions), device)
        evaluator = Evaluator(spec, conditions, device, args.seed, overlay_samples, overlay_subsets)
        # the sample count gives the progress bar its total and ETA
        ev = evaluator.run(model, loader, max_samples=len(dataset), progress=not args.no_progress, desc=name)
        results[name] = {"checkpoint": str(path), **ev.summary()}
        if args.authors_protocol:
            from rmmss_core.eval.authors import authors_summary
            results[name]["authors"] = authors_summary(args.authors_protocol, results[name]["emm"])
            log.info("%s: the authors' mean over their %d subsets %.2f", name,
                     len(results[name]["authors"]["subsets"]), results[name]["authors"]["mean"])
        if ev.overlays:
            overlays[name] = ev.overlays
        if "emm" in results[name]:
            full = results[name]["emm"]["subsets"]["RDEL"]
            log.info("%s: mIoU^Avg %.2f  RDEL %.2f (DELIVER, %d classes); RDEL %.2f over the %d classes present",
                     name, 100 * results[name]["emm"]["miou_avg"], 100 * full["miou"], len(full["iou"]),
                     100 * full["miou_present"], len(full["present"]))
        del model
    meta = {"data": str(args.data), "dataset": args.dataset, "split": args.split, "protocols": args.protocols,
            "seed": args.seed, "device": str(device), "max_samples": args.max_samples}
    if sensors:
        left_out = [m for m in MODALITIES if m not in sensors["modalities"]]
        meta["modalities"] = "".join(m[0].upper() for m in sensors["modalities"])
        meta["left_out"] = (f"{','.join(left_out)} (--modalities {args.modalities}): subsets with them are "
                            "scored without them") if left_out else "none"
    report = build_report(results, class_names or (), meta)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = write_report(report, out)
        if any("emm" in r or "emm_told" in r for r in results.values()):
            paths["bars"] = plot_subset_bars(report, out / "emm_subsets.png")
        for name, records in overlays.items():
            safe = name.replace("/", "_").replace("#", "_")
            paths[f"overlays {name}"] = plot_overlays(records, palette, out / f"overlays_{safe}.png", title=name,
                                                      class_names=class_names)
    except BaseException:
        if created:
            import shutil
            shutil.rmtree(out, ignore_errors=True)
        raise
    if args.store_quality is not None:
        from rmmss_core.deploy.quality import store_eval_tables
        for q in store_eval_tables(args.checkpoint, _names(args.checkpoint), results, meta, args.store_quality):
            log.info("stored the expected-quality table in %s", q)
    for p in paths.values():
        log.info("wrote %s", p)
    return 0
