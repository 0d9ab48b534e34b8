"""``rmmss synth``: generate the synthetic multi-sensor street dataset in DELIVER's layout.

Example: ``rmmss synth --out data/synth --frames 1000 --size 320x240 --workers 2``
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rmmss_core.cli.sizes import HELP as SIZE_HELP
from rmmss_core.cli.sizes import parse_size
from rmmss_core.data.layout import FrameKey
from rmmss_core.data.synth.config import SynthConfig, plan_sequences
from rmmss_core.data.synth.generate import generate
from rmmss_core.data.synth.rig import LidarModel


def parse_splits(text: str) -> tuple[tuple[str, float], ...]:
    """``"train=0.7,val=0.15,test=0.15"`` -> (("train", 0.7), ...)."""
    out = []
    for part in text.split(","):
        name, _, frac = part.partition("=")
        try:
            out.append((name.strip(), float(frac)))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--splits must look like train=0.7,val=0.15,test=0.15; bad part {part!r}") from None
    return tuple(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = SynthConfig()
    p.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("--frames", type=int, default=d.frames,
                   help="total frames over all sequences and conditions, a multiple of sequences x conditions "
                        "(default %(default)s)")
    p.add_argument("--size", type=parse_size, default=(d.height, d.width),
                   help=f"image size, {SIZE_HELP} (default {d.width}x{d.height})")
    p.add_argument("--sequences", type=int, default=d.sequences,
                   help="sequences = scenes; each rendered under every condition (default %(default)s)")
    p.add_argument("--conditions", default=",".join(d.conditions), help="comma-separated subset of "
                   "sun,cloud,fog,night,rain (default: all)")
    p.add_argument("--splits", type=parse_splits, default=d.splits,
                   help="sequence fractions per split (default train=0.7,val=0.15,test=0.15)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--fps", type=float, default=d.fps, help="frame rate along a sequence (Hz)")
    p.add_argument("--hfov", type=float, default=d.hfov_deg, help="camera horizontal FOV (deg)")
    p.add_argument("--lidar-beams", type=int, default=d.lidar.beams)
    p.add_argument("--lidar-azimuth-steps", type=int, default=d.lidar.azimuth_steps)
    p.add_argument("--lidar-range", type=float, default=d.lidar.max_range, help="metres")
    p.add_argument("--lidar-elevation", default=f"{d.lidar.min_elev_deg},{d.lidar.max_elev_deg}",
                   help="min,max beam elevation in degrees")
    p.add_argument("--event-threshold", type=float, default=d.event_threshold,
                   help="contrast threshold in log intensity")
    p.add_argument("--event-substeps", type=int, default=d.event_substeps,
                   help="renders per frame interval for the event camera")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.add_argument("--preview", default=None,
                   help="also write a PNG montage of one frame per condition to this path")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_frames(frames: int, sequences: int, conditions: int) -> None:
    """Every sequence is rendered under every condition with the same length, so the dataset has
    a multiple of ``sequences x conditions`` frames; any other ``--frames`` is refused (it would
    silently write a different number) with the nearest counts that work."""
    per = sequences * conditions
    if frames < 1 or sequences < 1 or frames % per == 0:
        return
    lo, hi = frames // per * per, (frames // per + 1) * per
    fits = [f"--frames {n}" for n in (lo, hi) if n > 0]
    divisors = [s for s in range(min(sequences, frames // conditions), 0, -1) if frames % (s * conditions) == 0]
    if divisors:
        fits.append(f"--sequences {divisors[0]}")
    raise ValueError(f"--frames {frames}: every one of the {sequences} sequences is rendered under each of the "
                     f"{conditions} conditions, so the frame count is a multiple of {per}; {frames} would write "
                     f"{hi}. Use {' or '.join(fits)}")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    try:
        lo, hi = (float(v) for v in args.lidar_elevation.split(","))
    except ValueError:
        raise ValueError(f"--lidar-elevation must be MIN,MAX degrees, got {args.lidar_elevation!r}") from None
    lidar = LidarModel(beams=args.lidar_beams, azimuth_steps=args.lidar_azimuth_steps,
                       min_elev_deg=lo, max_elev_deg=hi, max_range=args.lidar_range)
    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    check_frames(args.frames, args.sequences, len(conditions))
    return SynthConfig(frames=args.frames, width=args.size[1], height=args.size[0],
                       sequences=args.sequences, conditions=conditions, splits=tuple(args.splits),
                       seed=args.seed, fps=args.fps, hfov_deg=args.hfov, lidar=lidar,
                       event_substeps=args.event_substeps, event_threshold=args.event_threshold)


def run(args: argparse.Namespace) -> int:
    from rmmss_core.cli.checks import check_out_dir, check_out_file
    cfg = config_from_args(args)
    check_out_dir(args.out)  # before rendering anything
    if args.preview:
        check_out_file(args.preview, "--preview")
    empty = sorted({sp for sp, f in cfg.splits if f > 0} - {pl.split for pl in plan_sequences(cfg)})
    if empty:  # each sequence goes to one split: too few sequences leave some without frames
        print(f"rmmss synth: warning: --sequences {cfg.sequences}: split(s) {', '.join(empty)} get no frames "
              f"(each sequence belongs to one split; `rmmss train` validates on val); use --sequences "
              f">= {sum(1 for _, f in cfg.splits if f > 0)} or --splits without them", file=sys.stderr)
    info = generate(cfg, args.out, workers=args.workers, overwrite=args.overwrite,
                    progress=not args.no_progress)
    if args.preview:
        from rmmss_core.data.synth.preview import write_montage

        first = plan_sequences(cfg)[0]
        frame = f"{cfg.frames_per_sequence // 2:06d}"
        write_montage(Path(args.out), [FrameKey(c, first.split, first.name, frame)
                                       for c in cfg.conditions], args.preview,
                      scale=min(1.0, 320 / cfg.width), colors=192)
    print(json.dumps({"out": str(args.out), "frames": info["total_frames"],
                      "frames_per_split": info["frames_per_split"],
                      "wall_s": info["provenance"]["wall_s"]}))
    return 0
