"""What each recipe needs as ``--teacher`` / ``--robust``, checked before a run starts.

Checkpoints say what they are (``about`` in ``rmmss_core.models.checkpoint``: recipe, modalities,
classes). ``check_sources(cfg)`` reads the checkpoints a config names and refuses the wrong kind
with one line naming the flag, the file, what it is and what the recipe needs:

| recipe | --teacher | --robust |
| --- | --- | --- |
| teacher, dropout, m3l | refused | refused |
| anyseg, rmmss-hpdm | a ``teacher`` covering the student's sensors | refused |
| rmmss-fsm | a ``teacher`` covering the student's sensors | an ``rmmss-hpdm`` student |
| u2mkd | the LiDAR-only ``teacher`` (``model.options.modalities=[lidar]``) | refused |
| compress | an ``rmmss-fsm`` student | refused |

A checkpoint from before rmmss recorded its recipe cannot be checked: a warning says so and the
run goes on. ``check_settings(cfg, sources)`` refuses settings that contradict each other or the
sources (the whole run in warm-up; ``model.options`` that rmmss-fsm would ignore).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rmmss_core.modalities import MODALITIES

log = logging.getLogger("rmmss.train")

ROLES = ("teacher", "robust")


@dataclass(frozen=True)
class Need:
    """A source checkpoint a recipe needs: made by one of ``recipes``; ``modalities`` exactly these
    sensors (None: at least the student's sensors; () : anything)."""

    recipes: tuple[str, ...]
    what: str
    modalities: tuple[str, ...] | None = ()


_FULL_TEACHER = Need(("teacher",), "the full-modality teacher (recipe teacher)", None)
REQUIREMENTS: dict[str, dict[str, Need]] = {
    "teacher": {},
    "dropout": {},
    "m3l": {},
    "anyseg": {"teacher": _FULL_TEACHER},
    "rmmss-hpdm": {"teacher": _FULL_TEACHER},
    "rmmss-fsm": {"teacher": _FULL_TEACHER,
                  "robust": Need(("rmmss-hpdm",), "the RMMSS stage-1 robust model (recipe rmmss-hpdm)")},
    "u2mkd": {"teacher": Need(("teacher",), "the LiDAR-only teacher (recipe teacher with "
                              "model.options.modalities=[lidar])", ("lidar",))},
    "compress": {"teacher": Need(("rmmss-fsm",), "an RMMSS-FSM student (recipe rmmss-fsm)")},
}

# recipes whose network is built from the sources, not from model.options
MODEL_FROM_SOURCES = ("rmmss-fsm",)


def _letters(modalities: Any) -> str:
    return "".join(m[0].upper() for m in MODALITIES if m in (modalities or ()))


def read_source(path: str, flag: str) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (``flag`` names it in errors: ``--teacher``)."""
    from rmmss_core.utils.io import CheckpointError, load_checkpoint
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointError(f"{flag}: {e}") from None


def check_sources(cfg: Any) -> dict[str, dict[str, Any]]:
    """Check ``cfg.teacher`` / ``cfg.robust`` against ``REQUIREMENTS[cfg.recipe]``.

    Returns ``{role: checkpoint dict}`` of the sources given. Raises ValueError for a flag the recipe
    does not use, a missing one, or a checkpoint of the wrong recipe or sensors; CheckpointError for
    an unreadable file.
    """
    from rmmss_core.models.checkpoint import describe_checkpoint
    if cfg.recipe not in REQUIREMENTS:
        raise ValueError(f"unknown recipe {cfg.recipe!r}; valid: {list(REQUIREMENTS)}")
    needs = REQUIREMENTS[cfg.recipe]
    student = tuple(cfg.model.options.get("modalities") or MODALITIES)
    sources: dict[str, dict[str, Any]] = {}
    for role in ROLES:
        path, flag = str(getattr(cfg, role) or ""), f"--{role}"
        need = needs.get(role)
        if need is None:
            if path:
                users = [r for r, n in REQUIREMENTS.items() if role in n]
                raise ValueError(f"{flag} {path}: recipe {cfg.recipe} takes no {role} checkpoint "
                                 f"(only {', '.join(users)} do); drop {flag}")
            continue
        if not path:
            raise ValueError(f"recipe {cfg.recipe} needs {flag} PATH: {need.what}")
        ckpt = read_source(path, flag)
        sources[role] = ckpt
        about = describe_checkpoint(ckpt)
        recipe = about.get("recipe")
        if recipe is None:
            log.warning("%s %s: cannot check its kind (saved without recipe metadata, by an older rmmss "
                        "or outside training); make sure it is %s", flag, path, need.what)
            continue
        if recipe not in need.recipes:
            swapped = any(o != role and o in needs and recipe in needs[o].recipes for o in ROLES)
            hint = "; are --teacher and --robust swapped?" if swapped else ""
            raise ValueError(f"{flag} {path} is a {recipe} checkpoint, but {cfg.recipe} needs {need.what}{hint}")
        have = tuple(about.get("modalities") or MODALITIES)
        if need.modalities and set(have) != set(need.modalities):
            raise ValueError(f"{flag} {path} is a {recipe} on {_letters(have)}, but {cfg.recipe} needs "
                             f"{need.what}")
        if need.modalities is None and not set(student) <= set(have):
            raise ValueError(f"{flag} {path} is a {recipe} on {_letters(have)} only, but {cfg.recipe} needs "
                             f"{need.what} on every sensor the student has ({_letters(student)})")
    return sources


def check_settings(cfg: Any, sources: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Refuse settings that contradict each other: warm-up as long as the run; for recipes that
    build their network from the sources (rmmss-fsm), ``model.options`` that differ from them."""
    if cfg.optim.warmup_iters >= cfg.iters:
        raise ValueError(f"optim.warmup_iters={cfg.optim.warmup_iters} is not below iters={cfg.iters}: the "
                         "whole run would be warm-up; lower optim.warmup_iters (e.g. "
                         f"optim.warmup_iters={max(cfg.iters // 10, 0)})")
    if cfg.recipe in MODEL_FROM_SOURCES and cfg.model.options:
        for role, ckpt in (sources or {}).items():
            their = (ckpt.get("model") or {}).get("config") or {}
            for key, value in cfg.model.options.items():
                theirs = their.get(key, "<no such option>")
                if isinstance(theirs, list) and isinstance(value, (list, tuple)):
                    theirs, value = tuple(theirs), tuple(value)
                if theirs != value:
                    raise ValueError(f"model.options.{key}={value!r} does not apply: {cfg.recipe} takes its "
                                     f"networks from --teacher and --robust, and --{role} "
                                     f"{getattr(cfg, role)} has {key}={theirs!r}; drop model.options.{key}")

