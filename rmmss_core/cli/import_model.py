"""``rmmss import``: an authors' released trained model -> an ordinary rmmss checkpoint.

    rmmss import robustseg weights/RobustSeg.pth --out robustseg.pt
    rmmss import robustseg weights/Teacher.pth --out deliver_teacher.pt
    rmmss import anyseg anyseg_muses.pth --out anyseg_muses.pt
    rmmss import --list                      # families, published files, reported numbers

The file is read with ``torch.load(weights_only=True)``; ``--trust-pickle`` reads a file that
holds more than tensors (it can run code: only for a file you trust). It must match the family's
key/shape manifest exactly; any problem is one line, exit 1, and nothing is written. The result
works with every other command (perception_node, replay, eval, export, bench, info). See
rmmss_core/importers and README "Using the authors' trained models".
"""
from __future__ import annotations

import argparse

from rmmss_core.cli.sizes import HELP as SIZE_HELP
from rmmss_core.cli.sizes import format_size, parse_size
from rmmss_core.importers import FAMILIES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("family", nargs="?", choices=sorted(FAMILIES), help="the authors' model family")
    p.add_argument("file", nargs="?", help="the authors' released weight file (.pth)")
    p.add_argument("--out", help="the rmmss checkpoint to write (.pt)")
    p.add_argument("--missing", choices=("zero", "drop"), default=None,
                   help="how a missing sensor is represented: zero = normalised input zeroed and fused (RobustSeg's "
                        "EMM), drop = left out of the mean (AnySeg's val_mm.py); default: the family's own")
    p.add_argument("--variant", default=None,
                   help="which released model the file is (robustseg: teacher, robustseg, robustseg_zero_padding); "
                        "default: from the file name. Sets the checkpoint's recipe (teacher / rmmss-hpdm)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load a file holding Python objects beyond tensors (torch.load weights_only=False): this "
                        "can run code from the file; only for files you trust")
    p.add_argument("--input-size", type=parse_size, default=None,
                   help=f"serve at this size instead of the authors' (robustseg 256x256, anyseg 1024x1024), {SIZE_HELP}; "
                        "their reported numbers are for their size")
    p.add_argument("--camera-size", type=parse_size, default=None,
                   help=f"robustseg: size the input by the authors' own rule for a camera of this size, {SIZE_HELP} "
                        "(short side 256, each side rounded up to a multiple of 32: 640x480 -> 352x256)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--list", action="store_true", help="list the families and where their files are published")


def _list() -> int:
    from rmmss_core.importers import get_family
    for name in FAMILIES:
        fam = get_family(name)
        print(f"{name}: {fam.title}\n  network: {fam.code}\n  missing sensors: {fam.missing_note}")
        for pub in fam.published:
            print(f"  {pub.name} [{pub.variant}] {pub.where}\n    {pub.reported}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    if not (args.family and args.file and args.out):
        raise ValueError("give FAMILY FILE --out MODEL.pt (or --list)")
    from pathlib import Path

    from rmmss_core.cli.checks import check_out_file
    from rmmss_core.importers import import_file
    out = Path(args.out)
    if args.camera_size and args.input_size:
        raise ValueError("give --input-size or --camera-size, not both")
    if args.camera_size:
        if args.family != "robustseg":
            raise ValueError(f"--camera-size: {args.family}'s own pipeline resizes every camera to a fixed size; "
                             "use --input-size to serve at another one")
        from rmmss_core.eval.authors import short_side_size
        args.input_size = short_side_size(*args.camera_size)
    from rmmss_core.deploy.quality import CHECKPOINT_SUFFIXES
    if out.suffix.lower() not in CHECKPOINT_SUFFIXES:  # e.g. model.onnx: the node would read it as ONNX
        raise ValueError(f"--out {out}: the import writes an rmmss checkpoint, name it "
                         f"{' / '.join(CHECKPOINT_SUFFIXES)} (then `rmmss export --checkpoint {out.with_suffix('.pt')}` "
                         "for ONNX)")
    if out.exists() and not args.force:
        raise ValueError(f"--out {out} exists; add --force to overwrite it")
    check_out_file(out)
    res = import_file(args.family, args.file, out, missing=args.missing, variant=args.variant,
                      trust_pickle=args.trust_pickle,
                      input_size=args.input_size)
    imp = res.about["imported"]
    print(f"imported {args.file} ({res.family}, variant {res.variant or 'unknown'}) -> {res.out}: "
          f"{len(res.about['modalities'])} sensors {','.join(res.about['modalities'])}, "
          f"{res.about['num_classes']} classes ({res.about['class_set']}), recipe {res.about['recipe']}, "
          f"missing sensors: {imp['missing']}, input {format_size(imp['input_size'])} (WxH)")
    for caveat in imp["caveats"]:
        print(f"  note: {caveat}")
    return 0
