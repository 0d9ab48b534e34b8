"""``rmmss train RECIPE``: train one recipe on a dataset.

    rmmss train teacher --data data/synth --out runs/teacher
    rmmss train rmmss-hpdm --data data/synth --out runs/hpdm --teacher runs/teacher/best.pt
    rmmss train rmmss-fsm --data data/synth --out runs/fsm --teacher runs/teacher/best.pt \\
        --robust runs/hpdm/best.pt iters=2000 optim.lr=1e-4
    torchrun --nproc_per_node 4 -m rmmss_core.cli train teacher --data DIR --out runs/t

The config is ``config/train/<recipe>.yaml`` unless ``--config`` names another; ``key=value``
flags overlay it; the resolved config is written to ``OUT/config.yaml``. ``--resume`` continues
from ``OUT/last.pt`` exactly where an interrupted run stopped; a folder that already holds a run is
refused unless ``--resume`` or ``--overwrite``. ``--teacher``/``--robust`` are checked against what
the recipe needs (``rmmss_core/train/requirements.py``). The run's log is ``OUT/train.log``.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "train"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rmmss_core.train.recipes import RECIPES
    p.add_argument("recipe", choices=list(RECIPES), help="what to train")
    p.add_argument("--config", default=None, help="YAML config (default: config/train/<recipe>.yaml)")
    p.add_argument("--data", default=None, help="dataset root (data.root)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, config.yaml, TensorBoard")
    p.add_argument("--teacher", default=None,
                   help="checkpoint of the frozen teacher (anyseg, rmmss-hpdm, rmmss-fsm: a teacher run; "
                        "u2mkd: the LiDAR-only teacher; compress: an rmmss-fsm run)")
    p.add_argument("--robust", default=None, help="checkpoint of the frozen robust model (rmmss-fsm: an "
                   "rmmss-hpdm run)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in OUT (without it, or --resume, an existing run is refused)")
    p.add_argument("overrides", nargs="*", default=[], help="config overrides key.sub=value")
    # overrides may come after the options (``rmmss train teacher --out R iters=10``)
    p.parse_args = p.parse_intermixed_args  # type: ignore[method-assign]


def check_overrides(overrides: list[str]) -> None:
    """Each ``key=value`` flag on its own against TrainConfig's defaults: a typo or a bad value is
    reported against the flag (with the closest valid key), not against the YAML file."""
    import dataclasses
    import difflib
    import typing

    from rmmss_core.train.config import TrainConfig
    from rmmss_core.utils.config import ConfigError, load_config
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or not key:
            raise ValueError(f"override {item!r} must look like key.sub=value (e.g. iters=100)")
        node: type | None = TrainConfig
        for depth, part in enumerate(key.split(".")):
            if node is None:  # inside a free-form mapping (model.options)
                break
            fields = {f.name: f for f in dataclasses.fields(node)}
            if part not in fields:
                where = ".".join(key.split(".")[:depth]) or "the config"
                close = difflib.get_close_matches(part, fields, n=1)
                raise ValueError(f"override {item!r}: {where} has no key {part!r}"
                                 + (f"; did you mean {'.'.join([*key.split('.')[:depth], close[0]])}?"
                                    if close else f"; valid: {sorted(fields)}"))
            hint = typing.get_type_hints(node).get(part)
            node = hint if dataclasses.is_dataclass(hint) else None
        try:
            load_config(TrainConfig, None, [item])
        except ConfigError as e:
            text = str(e).removeprefix("config.").removeprefix("config: ")
            raise ValueError(f"override {item!r}: {text}") from None


def resolve_config(args: argparse.Namespace):
    from rmmss_core.train.config import TrainConfig
    from rmmss_core.utils.config import load_config
    path = args.config
    if path is None:
        default = CONFIG_DIR / f"{args.recipe.replace('-', '_')}.yaml"
        path = default if default.is_file() else None
    elif not Path(path).is_file():
        raise ValueError(f"--config {path}: {'is a folder' if Path(path).is_dir() else 'does not exist'}")
    check_overrides(list(args.overrides))
    overrides = list(args.overrides) + [f"recipe={args.recipe}"]
    for key, value in (("data.root", args.data), ("teacher", args.teacher), ("robust", args.robust)):
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_config(TrainConfig, path, overrides)


def run(args: argparse.Namespace) -> int:
    from rmmss_core.train.distributed import cleanup_distributed
    from rmmss_core.train.run import train_recipe
    cfg = resolve_config(args)
    try:
        result = train_recipe(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    finally:
        cleanup_distributed()
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(json.dumps({"recipe": cfg.recipe, "out": str(result.out), "step": result.step,
                          "interrupted": result.interrupted, "last": str(result.last),
                          "best": str(result.best) if result.best else None, "metrics": result.metrics,
                          "seconds": round(result.seconds, 1)}))
    return 130 if result.interrupted else 0
