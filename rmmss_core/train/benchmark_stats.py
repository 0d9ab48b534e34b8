"""Shared by the benchmark's report, sanity check and learning curves: run labels, mean ± std
over seeds, the two-standard-error comparison, and writing a figure."""
from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rmmss_core.utils.io import atomic_write_bytes

LABELS = {"teacher": "Teacher (all sensors)", "teacher_lidar": "LiDAR-only teacher", "dropout": "Dropout baseline",
          "anyseg": "AnySeg", "rmmss-hpdm": "RMMSS stage 1 (HPDM)", "rmmss-fsm": "RMMSS-FSM",
          "m3l": "M3L", "u2mkd": "U2MKD", "compress": "Compressed RMMSS-FSM",
          "dropout_semi": "Dropout baseline, 10% labels", "m3l_semi": "M3L, 10% labels"}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 with one value) of the values that are not NaN
    (a class's IoU is NaN in a seed whose model neither predicts nor meets it); NaN, NaN if none."""
    vals = [float(v) for v in values if not math.isnan(float(v))]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def compare(agg: Mapping[str, Any], a: str, b: str, key: str, margin: float = 0.0) -> tuple[str, float, float]:
    """Whether mean(a) - mean(b) + margin > 0 beyond noise over the seeds.

    noise = 2 standard errors of the difference, ``2 sqrt(sd_a^2 / n_a + sd_b^2 / n_b)``:
    ``holds`` when the difference exceeds it, ``does not hold`` when it is below minus it, else
    ``within noise``. Returns (verdict, difference in points, noise in points).
    """
    fa, fb = agg[a][key], agg[b][key]
    d = 100 * (fa["mean"] - fb["mean"]) + 100 * margin
    noise = 200 * math.sqrt(fa["std"] ** 2 / fa["n"] + fb["std"] ** 2 / fb["n"])
    if fa["n"] < 2:
        return ("holds" if d > 0 else "does not hold") + " (one seed: no noise estimate)", d, noise
    verdict = "holds" if d > noise else "does not hold" if d < -noise else "within noise"
    return verdict, d, noise


def save_png(fig, path: Path) -> str:
    import io

    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path.name


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict:
    """``base`` with ``extra`` merged in, nested mappings merged key by key (copies, never aliases)."""
    out = copy.deepcopy(dict(base))
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out
