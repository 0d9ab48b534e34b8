"""``rmmss export --checkpoint X.pt --out X.onnx [--opset 18] [--dynamic-batch] [--fp16]``

One ONNX graph serving every modality subset (inputs rgb, depth, event, lidar, available; outputs
mask, logits, confidence; the preprocessing spec in the metadata). ``--verify`` compares ONNX Runtime
with PyTorch on all 15 subsets and fails when the masks disagree on more than 0.1 % of pixels or
the confidence differs from PyTorch's softmax maximum by more than one uint8 level.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rmmss_core.cli.sizes import HELP as SIZE_HELP
from rmmss_core.cli.sizes import format_size, parse_size
from rmmss_core.deploy.export import DEFAULT_OPSET, export_model, load_for_export, read_onnx_metadata

log = logging.getLogger("rmmss.export")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="rmmss .pt checkpoint")
    p.add_argument("--out", type=Path, default=None, help="ONNX file (default: checkpoint with .onnx)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, >= 17 (default {DEFAULT_OPSET}; 17 uses the TorchScript exporter)")
    p.add_argument("--dynamic-batch", action="store_true", help="dynamic batch dimension (default static)")
    p.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    p.add_argument("--input-size", type=parse_size, default=None,
                   help=f"input size of the graph, {SIZE_HELP} (default: the checkpoint spec's input size)")
    p.add_argument("--fp16", action="store_true",
                   help="fp16 graph (LayerNorm and softmax kept in fp32) for TensorRT fp16 engines")
    p.add_argument("--verify", action="store_true",
                   help="compare ONNX Runtime with PyTorch on all 15 modality subsets")


def run(args: argparse.Namespace) -> int:
    from rmmss_core.cli.checks import check_out_file
    from rmmss_core.utils.io import load_checkpoint
    out = args.out or args.checkpoint.with_suffix(".onnx")
    if args.checkpoint.suffix.lower() == ".onnx" or not args.checkpoint.is_file():
        load_checkpoint(args.checkpoint)  # the CheckpointError that says what is wrong, before any work
    check_out_file(out)
    from rmmss_core.deploy.quality import quality_from_checkpoint
    ckpt = load_checkpoint(args.checkpoint)
    model, spec, info = load_for_export(args.checkpoint, ckpt)
    quality = quality_from_checkpoint(ckpt, f"checkpoint {args.checkpoint}")  # carried into the metadata
    export_model(model, spec, out, model_info=info, opset=args.opset, batch=args.batch,
                 input_size=args.input_size, dynamic_batch=args.dynamic_batch, fp16=args.fp16,
                 quality=quality.to_dict() if quality else None)
    meta = read_onnx_metadata(out)
    print(f"wrote {out}: {info.get('name', '?')}, {meta.precision}, opset {meta.opset}, "
          f"batch {meta.batch or 'dynamic'}, {format_size(meta.input_size)} (WxH), {spec.num_classes} classes; "
          "ONNX checker passed")
    if args.verify:
        from rmmss_core.deploy.verify import compare_with_torch

        rows = compare_with_torch(model, out)
        worst = min(r["argmax_agreement"] for r in rows)
        worst_conf = max(r["confidence_max_diff"] or 0 for r in rows)
        print("subset  max|dlogit|  argmax agreement  max|dconfidence| (levels of 1/255)")
        for r in rows:
            print(f"{r['subset']:<6}  {r['max_abs_diff']:.2e}    {r['argmax_agreement']:.5f}           "
                  f"{r['confidence_max_diff']}")
        if worst < 0.999:
            log.error("ONNX Runtime and PyTorch masks disagree on %.3f %% of pixels", 100 * (1 - worst))
            return 1
        if worst_conf > 1:
            log.error("ONNX Runtime's confidence differs from PyTorch's softmax maximum by %d/255", worst_conf)
            return 1
    return 0
