"""Synthetic per-seed benchmark results (the shape ``train/benchmark.run_seed`` writes) for the
report tests: every figure set by hand, so each verdict is known in advance."""
from __future__ import annotations

from rmmss_core.modalities import SUBSET_NAMES

K = 25
PRESENT = list(range(17))           # 17 of DELIVER's 25 classes in the split, as the synthetic world


def summary(full: float, missing: float, told_missing: float | None = None) -> dict:
    """An ``EvalRun.summary()`` whose all-sensor mIoU is ``full`` and every missing subset's
    ``missing`` (``told_missing`` for EMM told; the same by default). IoU: the present classes all
    at the subset's present-class mIoU, the absent ones None; DELIVER mIoU = present sum / 25."""
    def subset(m):
        per = m * K / len(PRESENT)                       # present-class mIoU giving DELIVER mIoU m
        return {"miou": m, "miou_nanmean": per, "miou_present": per, "present": PRESENT, "pixel_acc": 0.5,
                "pixels": 1000, "iou": [per if i in PRESENT else None for i in range(K)]}

    def proto(miss, told):
        subs = {n: subset(full if n == "RDEL" else miss) for n in SUBSET_NAMES}
        avg = sum(s["miou"] for s in subs.values()) / 15
        return {"subsets": subs, "told": told, "miou_avg": avg, "miou_avg_nanmean": avg,
                "miou_e": {"0.2": avg, "0.1": avg, "0.05": avg}}
    told = missing if told_missing is None else told_missing
    return {"samples": 60, "emm": proto(missing, False), "emm_told": proto(told, True)}


def per_seed(table: dict[str, list[tuple[float, float]]]) -> list[dict]:
    """``{run: [(full, missing) per seed]}`` -> the list ``write_robustness_report`` takes."""
    seeds = len(next(iter(table.values())))
    out = []
    for s in range(seeds):
        results = {run: {"summary": summary(*vals[s]), "params": 1_000_000, "latency_ms": 5.0,
                         "checkpoint": f"/x/{run}/best.pt"} for run, vals in table.items()}
        out.append({"seed": s, "results": results, "trained": {r: {"seconds": 60.0} for r in table},
                    "timings": {"train_s": 60.0, "eval_s": 6.0}})
    return out
