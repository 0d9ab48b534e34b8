"""What every importer shares: a family description, reading the authors' file safely, the
key/shape manifest check, and writing an ordinary rmmss checkpoint atomically.

Reading: ``torch.load(weights_only=True)`` (rmmss_core.utils.io.load_checkpoint). A file that needs
more (Python objects beyond tensors and containers) is refused naming the problem; ``trust_pickle``
(the CLI's ``--trust-pickle``) loads it with ``weights_only=False``, which runs whatever code the
file holds: only for files the user trusts. The refusals (one line each, nothing written): a
missing, empty, truncated or damaged file, an ONNX model, an rmmss checkpoint (already
imported), a file that is not a flat ``name -> tensor`` mapping, and a state_dict whose keys or
shapes differ from the family's manifest (naming the missing, extra and mis-shaped keys), or
whose weights hold NaN or infinite values.
"""
from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rmmss_core.models.checkpoint import state_mismatch
from rmmss_core.spec import PreprocessSpec
from rmmss_core.utils.io import CheckpointError, load_checkpoint

RMMSS_FORMAT = "rmmss-checkpoint-v1"
# wrappers some training scripts put around a state_dict (the authors save a bare one)
WRAPPERS = ("state_dict", "model", "model_state_dict")


class ImportRefused(ValueError):
    """The file is not one this family can import; the message is one line naming why."""


@dataclass(frozen=True)
class Published:
    """One released file: its name, where it is published, its variant and what the authors report."""

    name: str
    where: str
    variant: str
    reported: str


@dataclass(frozen=True)
class Family:
    """An authors' model family: how its files map into rmmss.

    manifest(num_classes) -> ``{key: shape}`` of their state_dict; ``to_rmmss(state)`` -> the rmmss
    model's state_dict; ``options(missing)`` -> ``create_model`` options; ``spec()`` -> the
    PreprocessSpec reproducing their data pipeline; ``recipe(variant)`` -> rmmss's recipe name the
    file plays the role of (``about.recipe``), or None.
    """

    name: str
    title: str
    code: str                                   # repo@commit:path of the network they evaluate
    dataset: str
    num_classes: int
    modalities: tuple[str, ...]                 # rmmss names, in the authors' order
    authors_modalities: tuple[str, ...]         # their names, same order
    default_missing: str
    missing_note: str
    manifest: Callable[[], dict[str, tuple[int, ...]]]
    to_rmmss: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]
    options: Callable[[str], dict[str, Any]]
    spec: Callable[[], PreprocessSpec]
    variants: dict[str, str] = field(default_factory=dict)      # variant -> rmmss recipe
    published: tuple[Published, ...] = ()
    caveats: tuple[str, ...] = ()

    def variant_of(self, path: str | os.PathLike) -> str | None:
        """The variant a released file name names (``Teacher.pth`` -> ``teacher``), else None."""
        stem = Path(path).name
        for p in self.published:
            if p.name == stem:
                return p.variant
        return None


def read_state_dict(path: str | os.PathLike, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The authors' file -> a flat ``name -> tensor`` dict (CPU). Raises ImportRefused (one line)."""
    path = Path(path)
    try:
        if trust_pickle:
            if not path.is_file():
                raise CheckpointError(f"checkpoint {path} does not exist")
            obj = torch.load(path, map_location="cpu", weights_only=False)  # noqa: S614 - user said trusted
        else:
            with warnings.catch_warnings():   # torch's pickle-protocol notice: the refusal says it all
                warnings.simplefilter("ignore", UserWarning)
                obj = load_checkpoint(path, "cpu")
    except CheckpointError as e:
        text = str(e)
        if "beyond plain tensors" in text or "objects rmmss does not load" in text:
            found = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(e.__cause__ or ""))))
            if found:
                text += f" (it needs {', '.join(found)})"
            text += "; if you trust this file (it can run code when loaded), add --trust-pickle"
        raise ImportRefused(text) from e
    except Exception as e:  # noqa: BLE001 - trusted pickles can fail in any way: name the file
        raise ImportRefused(f"{path}: cannot be read even with --trust-pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, Mapping):
        raise ImportRefused(f"{path} holds a {type(obj).__name__}, not a state_dict")
    if obj.get("format") == RMMSS_FORMAT:
        raise ImportRefused(f"{path} is already an rmmss checkpoint (use it as it is; `rmmss info --checkpoint {path}`)")
    for key in WRAPPERS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(torch.is_tensor(v) for v in inner.values()):
            obj = inner
            break
    bad = [k for k, v in obj.items() if not torch.is_tensor(v)]
    if bad or not obj:
        raise ImportRefused(f"{path} is not a state_dict (name -> tensor): "
                            + (f"entries {sorted(map(str, bad))[:4]} are not tensors" if bad else "it is empty"))
    keys = list(obj)
    if all(str(k).startswith("module.") for k in keys):     # saved from a DistributedDataParallel wrapper
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    return {str(k): v.detach().cpu() for k, v in obj.items()}


def check_manifest(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]],
                   what: str) -> None:
    """Refuse (one line) a state_dict whose keys or shapes differ from ``expected``, or whose
    weights are not floating point."""
    mismatch = state_mismatch(state, expected)
    if mismatch:
        raise ImportRefused(f"not {what} ({len(expected)} keys): {mismatch}")
    ints = [k for k, v in state.items() if not (v.is_floating_point() or k.endswith("num_batches_tracked"))]
    if ints:
        raise ImportRefused(f"not {what}: {len(ints)} weights are not floating point (e.g. {ints[:3]})")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # a diverged run or a damaged file: every mask would be NaN's argmax, silently
        raise ImportRefused(f"{what} with NaN or infinite values in {len(bad)} weight(s) (e.g. {bad[:3]}): "
                            "a diverged training run or a damaged file")
