"""Sanity before claims: the two orderings all four papers agree on, checked before any claim of
the robustness benchmark is read as evidence.

1. **Any-modal training above the full-modality teacher on the 14 missing-sensor subsets**: the
   any-modal dropout baseline (the plain any-modal recipe every paper starts from) must beat the
   teacher, trained with all sensors only, on the mean over the 14 subsets with a sensor missing,
   under the authors' EMM (missing inputs zeroed, model not told) and told alike.
2. **The teacher at or above the others with all sensors**: no other model may beat the
   full-modality teacher when every sensor is there.

Each comparison uses ``benchmark_report.compare``: two standard errors of the difference over
the seeds. If either ordering fails beyond that noise the regime is **too weak** (the models are
not trained enough for the comparison to mean anything) and the report says so instead of
presenting the claims as evidence; if ordering 1 is only within noise the claims are
**unconfirmed**; with ordering 1 beyond noise and ordering 2 not failing it is **sound**.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rmmss_core.train.benchmark_stats import compare

ANYMODAL = "dropout"
TEACHER = "teacher"
STATUSES = ("sound", "unconfirmed", "too weak", "unchecked")


@dataclass(frozen=True)
class Check:
    """One comparison: ``a`` above ``b`` on ``key``; verdict as ``compare`` gives it."""

    ordering: int
    a: str
    b: str
    key: str
    verdict: str
    difference: float
    noise: float

    @property
    def fails(self) -> bool:
        return self.verdict == "does not hold"

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"


@dataclass(frozen=True)
class Sanity:
    status: str
    checks: list[Check] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [c.__dict__ | {"fails": c.fails} for c in self.checks]}


def check_sanity(agg: Mapping[str, Mapping[str, Any]], labels: Mapping[str, str] | None = None) -> Sanity:
    """The two orderings on the aggregate (``benchmark_report.aggregate``) -> ``Sanity``;
    ``labels`` names the runs in the text."""
    def _label(run: str) -> str:
        return (labels or {}).get(run, run)

    if TEACHER not in agg or ANYMODAL not in agg:
        return Sanity("unchecked", [], [f"- The sanity orderings need the runs `{TEACHER}` and `{ANYMODAL}`; "
                                        "this preset leaves one out, so the claims below are **unchecked**."])
    checks: list[Check] = []
    for key in ("missing14", "missing14_told"):
        if key in agg[ANYMODAL] and key in agg[TEACHER]:
            checks.append(Check(1, ANYMODAL, TEACHER, key, *compare(agg, ANYMODAL, TEACHER, key)))
    for other in agg:
        if other != TEACHER and "full" in agg[other]:
            # "teacher at or above": it fails only when the other run is above beyond noise
            verdict, d, noise = compare(agg, other, TEACHER, "full")
            checks.append(Check(2, other, TEACHER, "full", verdict, d, noise))
    first = [c for c in checks if c.ordering == 1]
    second = [c for c in checks if c.ordering == 2]
    if any(c.fails for c in first) or any(c.holds for c in second):
        status = "too weak"
    elif first and all(c.holds for c in first):
        status = "sound"
    else:
        status = "unconfirmed"
    names = {"missing14": "authors' EMM", "missing14_told": "told"}
    lines = []
    for c in first:
        lines.append(f"- (1) Any-modal training above the full-modality teacher on the 14 missing-sensor subsets "
                     f"({names[c.key]}): {_label(c.a)} vs {_label(c.b)}: **{c.verdict}** "
                     f"(difference {c.difference:+.2f}, noise ±{c.noise:.2f}).")
    if second:
        above = [c for c in second if c.holds]
        if above:
            lines.append("- (2) The teacher at or above every other model with all sensors: **does not hold**: "
                         + "; ".join(f"{_label(c.a)} above it by {c.difference:+.2f} (noise ±{c.noise:.2f})"
                                     for c in above) + ".")
        else:
            closest = max(second, key=lambda c: c.difference)
            lines.append(f"- (2) The teacher at or above every other model with all sensors: **holds** (no model "
                         f"above it beyond noise; closest: {_label(closest.a)}, difference {closest.difference:+.2f}, "
                         f"noise ±{closest.noise:.2f}).")
    lines.append("")
    lines.append({
        "sound": "Both orderings hold beyond noise: the regime can tell the methods apart, and the claims below "
                 "are evidence.",
        "unconfirmed": "Ordering (1) is within noise: the regime is not shown to tell the methods apart, so the "
                       "claims below are **unconfirmed** (read them as indications only).",
        "too weak": "**The regime is too weak**: an ordering all four papers agree on fails beyond noise, so the "
                    "models are not trained enough for this comparison to mean anything. The claims below are "
                    "listed for the record only and are **not evidence** either way.",
    }[status])
    return Sanity(status, checks, lines)


SUFFIX = {"sound": "", "unconfirmed": " (unconfirmed: sanity orderings within noise)",
          "too weak": " (not evidence: the regime is too weak)", "unchecked": " (unchecked: no sanity orderings)"}


def qualify(claims: list[str], sanity: Sanity) -> list[str]:
    """The claim lines with the sanity status beside each one."""
    suffix = SUFFIX[sanity.status]
    return [c + suffix if c.startswith("- ") else c for c in claims]
