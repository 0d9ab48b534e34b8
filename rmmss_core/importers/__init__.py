"""Importers of the authors' released trained models into rmmss checkpoints.

    rmmss import robustseg weights/RobustSeg.pth --out robustseg.pt
    rmmss import anyseg anyseg_muses.pth --out anyseg.pt

``FAMILIES`` maps a family name to the module defining its ``FAMILY`` (rmmss_core.importers.base
.Family): the manifest of the authors' state_dict, the key mapping into rmmss's own model family,
the model options and the PreprocessSpec of the authors' data pipeline. ``import_file`` reads the
file (weights_only unless trusted), checks it against the manifest, rebuilds the network in
rmmss's family, and writes an ordinary rmmss checkpoint atomically; on any refusal nothing is
written.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmmss_core.importers.base import Family, ImportRefused, check_manifest, read_state_dict

FAMILIES: dict[str, str] = {
    "robustseg": "rmmss_core.importers.robustseg",
    "anyseg": "rmmss_core.importers.anyseg",
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ImportRefused(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[name]).FAMILY


@dataclass(frozen=True)
class ImportResult:
    out: Path
    family: str
    variant: str | None
    missing: str
    about: dict[str, Any]


def import_file(family: str, path: str | os.PathLike, out: str | os.PathLike, *, missing: str | None = None,
                variant: str | None = None, trust_pickle: bool = False,
                input_size: tuple[int, int] | None = None) -> ImportResult:
    """Import the authors' ``path`` of ``family`` into the rmmss checkpoint ``out``.

    missing: "zero" / "drop" (default: the family's own evaluation convention). variant: which
    released model this is (default: from the file name, e.g. ``Teacher.pth``); it sets
    ``about.recipe``. input_size: serve at this (height, width) instead of the authors' size (the
    network takes any size; their numbers are for theirs). Raises ImportRefused (one line) and
    writes nothing on any problem.
    """
    from rmmss_core.models import create_model
    from rmmss_core.models.checkpoint import checkpoint_dict, load_state_strict
    from rmmss_core.utils.io import atomic_torch_save

    fam = get_family(family)
    src, out = Path(path), Path(out)
    if out.resolve() == src.resolve():
        raise ImportRefused(f"--out {out} is the file being imported: choose another name")
    missing = missing or fam.default_missing
    if missing not in ("zero", "drop"):
        raise ImportRefused(f"missing must be 'zero' or 'drop', got {missing!r}")
    variant = variant or fam.variant_of(src) or (next(iter(fam.variants)) if len(fam.variants) == 1 else None)
    if variant is not None and variant not in fam.variants:
        raise ImportRefused(f"unknown {family} variant {variant!r}; known: {', '.join(fam.variants)}")
    state = read_state_dict(src, trust_pickle)
    check_manifest(state, fam.manifest(), f"a {fam.title} state_dict ({fam.code})")
    model = create_model("anymodal", **fam.options(missing))
    load_state_strict(model, fam.to_rmmss(state), f"{src} mapped into rmmss")
    model.eval()
    spec = fam.spec()
    if input_size is not None and tuple(input_size) != spec.input_size:
        spec = dataclasses.replace(spec, input_size=tuple(input_size))
    ckpt = checkpoint_dict(model, spec)
    about = dict(ckpt["about"])
    about.update({
        "recipe": fam.variants.get(variant) if variant else None,
        "imported": {"family": fam.name, "variant": variant, "file": src.name,
                     "code": fam.code, "dataset": fam.dataset,
                     "authors_modalities": list(fam.authors_modalities),
                     "missing": missing, "missing_convention": fam.missing_note if missing == fam.default_missing
                     else f"--missing {missing} (not the family's own convention: {fam.missing_note})",
                     "sha256": _sha256(src),
                     "unused_keys": sorted(k for k in state if not fam.to_rmmss({k: state[k]})),
                     "authors_input_size": list(fam.spec().input_size), "input_size": list(spec.input_size),
                     "caveats": list(fam.caveats)},
    })
    ckpt["about"] = about
    atomic_torch_save(ckpt, out)
    return ImportResult(out, fam.name, variant, missing, about)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["FAMILIES", "Family", "ImportRefused", "ImportResult", "get_family", "import_file"]
