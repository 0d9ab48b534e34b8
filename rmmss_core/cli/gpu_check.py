"""``rmmss gpu-check [--device cuda] [--data DATA.tar] [--budget-s 540]``: every CUDA line of rmmss
measured in one command, written to docs/bench/gpu.md + gpu.json (see rmmss_core.gpu_check).

    rmmss gpu-check --data gpu-check-data/robustness-data.tar      # on a CUDA machine, < 10 min
    rmmss gpu-check --device cpu --smoke --out /tmp/gc             # the code paths on a CPU, ~1 min
    rmmss gpu-check --pack-data gpu-check-data/robustness-data.tar # make the data to bring (Open3D)
"""
from __future__ import annotations

import argparse
import shlex
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rmmss_core.gpu_check.runner import STEPS
    p.add_argument("--device", default="auto", help="cuda, cuda:N, cpu (with --smoke) or auto (cuda when present)")
    p.add_argument("--smoke", action="store_true", help="tiny stand-ins and few iterations: the code paths only")
    p.add_argument("--out", default="docs/bench", help="folder for gpu.md and gpu.json")
    p.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget of the whole check (s)")
    p.add_argument("--compile-share-s", type=float, default=180.0, help="at most this long for torch.compile rows")
    p.add_argument("--data", default=None, help="robustness data: a --pack-data archive or a dataset folder")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma list of {list(STEPS)}")
    p.add_argument("--pack-data", default=None, metavar="FILE.tar",
                   help="only write the robustness data archive to bring along (needs Open3D), then exit")
    p.add_argument("--pack-frames", type=int, default=100, help="frames in the --pack-data archive")


def run(args: argparse.Namespace, contributed: dict[str, str] | None = None) -> int:
    """``contributed``: steps another package owns (see ``rmmss_core.gpu_check.runner.run_check``)."""
    if args.pack_data:
        from rmmss_core.gpu_check.robustness import pack_data
        out = pack_data(args.pack_data, frames=args.pack_frames)
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB)")
        return 0
    from rmmss_core.gpu_check.runner import run_check
    command = "rmmss gpu-check " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 \
        else "rmmss gpu-check"
    if "gpu-check" not in sys.argv[1:2]:
        command = "rmmss gpu-check" + (" --device " + args.device if args.device != "auto" else "") + \
            (" --smoke" if args.smoke else "")
    doc = run_check(args.device, args.smoke, args.out, args.budget_s, args.data,
                    tuple(s.strip() for s in args.steps.split(",") if s.strip()), args.compile_share_s, command,
                    contributed=contributed)
    c = doc["summary"]["counts"]
    print(f"gpu-check: {c['ok']} measured, {c['smoke']} smoke, {c['not yet run']} not yet run, "
          f"{c['skipped']} skipped, {c['failed']} failed -> {args.out}/gpu.md")
    return 1 if c["failed"] else 0
