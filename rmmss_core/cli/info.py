"""``rmmss info``: parameters and MACs of a model (by size/fusion) or of a checkpoint.

    rmmss info --model b0 --fusion mean --modalities 4 --size 512x512
    rmmss info --checkpoint runs/teacher/best.pt --size 1024x1024

MACs follow SegFormer's published convention (mmcv get_flops + attention), per image; see
rmmss_core/models/complexity.py. With ``--classes 150`` and one modality, B0/B1/B2 reproduce the
published 8.4/15.9/62.4 GMACs at 512x512.
"""
from __future__ import annotations

import argparse

from rmmss_core.cli.sizes import HELP as SIZE_HELP
from rmmss_core.cli.sizes import format_size, parse_size
from rmmss_core.modalities import MODALITIES, parse_subset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="a rmmss checkpoint (overrides the model options)")
    p.add_argument("--model", default="b0", help="MiT size: tiny, b0, b1, b2")
    p.add_argument("--fusion", default="mean", help="mean, linear, hub, impute")
    p.add_argument("--missing", default="drop", help="drop, zero, token")
    p.add_argument("--modalities", default="4", help="number of sensors (first k of R,D,E,L) or letters, e.g. RD")
    p.add_argument("--classes", type=int, default=25, help="number of classes (150 = ADE20K, as published)")
    p.add_argument("--size", default="512x512", help=f"input size, {SIZE_HELP}")


def _modalities(text: str) -> tuple[str, ...]:
    if text.isdigit():
        k = int(text)
        if not 1 <= k <= len(MODALITIES):
            raise ValueError(f"--modalities must be 1..{len(MODALITIES)} or letters, got {text}")
        return MODALITIES[:k]
    return tuple(MODALITIES[i] for i in parse_subset(text))


def _print_outputs(ckpt: dict, where: str) -> None:
    """What a consumer of the node's masks needs: class ids and names (as in ~/label_info) and the
    stored expected quality per sensor subset (rmmss eval --store-quality), if any."""
    from rmmss_core.deploy.quality import quality_from_checkpoint
    from rmmss_core.spec import PreprocessSpec

    spec = PreprocessSpec.from_dict(ckpt["spec"])
    print("classes    " + ", ".join(f"{i} {n}" for i, n in enumerate(spec.class_names))
          + f", {spec.ignore_index} unlabeled")
    table = quality_from_checkpoint(ckpt, f"checkpoint {where}")
    if table is None:
        print("quality    no expected-quality table (rmmss eval --store-quality --protocols emm_told)")
        return
    data = "/".join(str(table.data[k]) for k in ("dataset", "split") if table.data.get(k))
    print(f"quality    mIoU per sensor subset ({table.protocol}, {data or 'unknown data'}, {table.measured}): "
          + ", ".join(f"{s} {v:.3f}" for s, v in table.miou.items()))


def run(args: argparse.Namespace) -> int:
    from rmmss_core.models import create_model, load_model
    from rmmss_core.models.complexity import PUBLISHED, model_complexity, published_check
    from rmmss_core.models.registry import model_spec

    try:
        h, w = parse_size(args.size)
    except argparse.ArgumentTypeError as e:
        raise ValueError(f"--size: {e}") from None
    about: dict = {}
    if args.checkpoint:
        from rmmss_core.models.checkpoint import describe_checkpoint
        from rmmss_core.utils.io import load_checkpoint
        ckpt = load_checkpoint(args.checkpoint)
        about = describe_checkpoint(ckpt)
        model, _ = load_model(ckpt)
    else:
        model = create_model("anymodal", size=args.model, fusion=args.fusion, missing=args.missing,
                             modalities=_modalities(args.modalities), num_classes=args.classes)
    c = model_complexity(model, h, w)
    spec = model_spec(model)
    cfg = spec["config"]
    if args.checkpoint:
        print(f"checkpoint {args.checkpoint}: recipe {about.get('recipe') or 'unknown (no recipe recorded)'}, "
              f"sensors {','.join(about.get('modalities') or [])}, {about.get('num_classes')} classes "
              f"({about.get('class_set')})"
              + (f", trained on {','.join(about['data_modalities'])} only" if about.get("data_modalities") else ""))
        if isinstance(about.get("imported"), dict):  # rmmss import: whose released model this is
            imp = about["imported"]
            print(f"imported   {imp.get('file')} ({imp.get('family')}, {imp.get('dataset')}; {imp.get('code')}); "
                  f"missing sensors: {imp.get('missing')}")
        _print_outputs(ckpt, args.checkpoint)
    for role, part in [(r, cfg[r]) for r in ("teacher", "robust") if isinstance(cfg.get(r), dict)] or [("model", spec)]:
        pc = part.get("config", {})
        print(f"{role:<10} {part.get('name', '')} {pc.get('size', '')} fusion={pc.get('fusion', '')} "
              f"missing={pc.get('missing', '')} modalities={','.join(pc.get('modalities', []))} "
              f"classes={pc.get('num_classes', '')}")
    if spec["name"] == "rmmss_fsm":
        print(f"selection  FSM select={cfg.get('select', '')} over teacher + robust (train/fsm.py)")
    print(f"params     {c.params / 1e6:.3f} M")
    print(f"GMACs      {c.macs / 1e9:.3f} at {format_size((h, w))} (WxH; SegFormer/mmcv convention, per image)")
    print(f"GMACs      {c.macs_torch / 1e9:.3f} (torch FlopCounterMode / 2: matmuls and convs only)")
    size = cfg.get("size")
    if size in PUBLISHED and (h, w) == (512, 512) and c.num_modalities == 1 and cfg.get("num_classes") == 150:
        err, ok = published_check(size, c.macs)
        print(f"published  {PUBLISHED[size][1]} GMACs (SegFormer-{size.upper()}): {err:+.2%} "
              f"{'OK' if ok else 'OFF by more than 3%'}")
    return 0
