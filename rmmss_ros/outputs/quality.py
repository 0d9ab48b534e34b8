"""Expected quality of the sensor subset in use, from the model's measured table.

``rmmss eval --store-quality`` keeps the mIoU of every sensor subset with the model
(rmmss_core.deploy.quality). With every mask the node states how good masks are expected to be
with the sensors it just used, and the drop from all of its sensors::

    RDL: 0.51 expected, -0.07 vs all

"all" is the node's enabled sensors (``RDEL`` when all four are on). A model without a table says
``unknown`` instead of guessing. ``floor`` (``output.quality_floor``, 0 = off) flags a subset whose
expected mIoU is below it; the node WARNs in its diagnostics.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rmmss_core.deploy.quality import QualityTable, load_quality
from rmmss_core.modalities import MODALITIES

UNKNOWN = "unknown"


def subset_letters(modalities: Iterable[str]) -> str:
    """``("rgb", "lidar")`` -> ``"RL"`` (MODALITIES order); ValueError for an unknown name."""
    names = set(modalities)
    bad = sorted(names - set(MODALITIES))
    if bad:
        raise ValueError(f"unknown modalities {bad}; valid: {MODALITIES}")
    return "".join(m[0].upper() for m in MODALITIES if m in names)


@dataclass(frozen=True)
class Expected:
    """The expected quality of one subset: ``miou`` and ``drop`` (vs all) are None when unknown."""

    subset: str
    miou: float | None
    drop: float | None
    below_floor: bool
    text: str

    def as_dict(self) -> dict[str, object]:
        """The JSON fields of ``~/used_modalities``."""
        return {"subset": self.subset, "expected_miou": self.miou, "vs_all": self.drop,
                "below_floor": self.below_floor, "text": self.text}


class ExpectedQuality:
    """``ExpectedQuality(table, all_modalities, floor).of(used)`` -> :class:`Expected`.

    ``table`` None = the model has none (every answer is ``unknown``); ``all_modalities``: the
    node's enabled sensors (the reference of "vs all"); ``floor`` in [0, 1] (0 = off).
    """

    def __init__(self, table: QualityTable | None, all_modalities: Iterable[str] = MODALITIES, floor: float = 0.0):
        if not 0.0 <= float(floor) <= 1.0:
            raise ValueError(f"output.quality_floor must be an mIoU fraction in [0, 1] (0 = off), got {floor!r}")
        self.table = table
        self.floor = float(floor)
        self.all_modalities = tuple(all_modalities)
        self.all = subset_letters(self.all_modalities)
        if not self.all:
            raise ValueError("no enabled modality to compare with")
        self._cache: dict[str, Expected] = {}

    @classmethod
    def from_model(cls, model_path: str | Path, all_modalities: Iterable[str] = MODALITIES,
                   floor: float = 0.0) -> ExpectedQuality:
        """Read the table stored with ``model_path`` (None when it has none; errors name the file)."""
        return cls(load_quality(model_path), all_modalities, floor)

    @property
    def known(self) -> bool:
        return self.table is not None

    def describe_table(self) -> str:
        """One line on where the numbers come from (for logs and diagnostics)."""
        t = self.table
        if t is None:
            return ("expected quality unknown: the model holds no measured table "
                    "(rmmss eval --store-quality --protocols emm_told)")
        data = t.data
        where = "/".join(str(data[k]) for k in ("dataset", "split") if data.get(k))
        samples = f", {data['samples']} samples" if data.get("samples") else ""
        return (f"expected quality measured {t.measured or 'at an unknown date'} on {where or 'unknown data'}"
                f"{samples} ({t.protocol}){'; ' + t.note if t.note else ''}")

    def of(self, used: Iterable[str]) -> Expected:
        """The expected quality with the modalities ``used`` (names, e.g. ``("rgb", "lidar")``)."""
        subset = subset_letters(used)
        hit = self._cache.get(subset)
        if hit is not None:
            return hit
        if not subset:
            out = Expected("none", None, None, False, "none: no sensor used")
        elif self.table is None:
            out = Expected(subset, None, None, False, f"{subset}: {UNKNOWN}")
        else:
            miou = self.table.get(subset)
            drop = miou - self.table.get(self.all)
            below = self.floor > 0 and miou < self.floor
            text = f"{subset}: {miou:.2f} expected, {drop:+.2f} vs all"
            if below:
                text += f", below the floor {self.floor:.2f}"
            out = Expected(subset, miou, drop, below, text)
        self._cache[subset] = out
        return out


def quality_warning(expected: Expected | None) -> str | None:
    """The diagnostics WARN text when the subset in use is below the floor, else None."""
    if expected is None or not expected.below_floor:
        return None
    return f"expected quality below the floor (output.quality_floor): {expected.text}"
