"""``make bench`` models section: params, MACs and forward latency per MiT size, input size and
number of modalities (mean fusion, ``drop``; 150 classes so single-modality rows compare with the
published SegFormer figures), a fusion comparison, and a GPU section when CUDA is available.

Latency: ``model(inputs, available)`` under ``torch.inference_mode``; CPU fp32 with the process's
thread count; GPU fp32 eager, bf16/fp16 autocast + channels_last, and torch.compile (CUDA graphs).
"""
from __future__ import annotations

import copy
import logging
import time

import torch

from rmmss_core.bench.report import BenchReport, time_callable
from rmmss_core.modalities import MODALITIES, subset_mask
from rmmss_core.models import create_model
from rmmss_core.models.complexity import PUBLISHED, model_complexity, published_check

log = logging.getLogger("rmmss.bench.models")
CLASSES = 150
CPU_BUDGET_S = 360.0   # CPU latency measurements stop after this (full run < ~10 min)


def _build(size: str, k: int, fusion: str = "mean", missing: str = "drop") -> torch.nn.Module:
    return create_model("anymodal", size=size, fusion=fusion, missing=missing, modalities=MODALITIES[:k],
                        num_classes=CLASSES).eval()


def _inputs(k: int, h: int, w: int, device: str = "cpu", channels_last: bool = False):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = {m: torch.randn(1, 3, h, w, device=device).contiguous(memory_format=fmt) for m in MODALITIES}
    return x, subset_mask(range(k), 1, device=device)


def _cpu_rows(quick: bool) -> list[dict]:
    """Params/MACs for every configuration; CPU latency smallest first until the time budget is spent
    (a B2 4-sensor 1024x1024 forward is ~1 TMAC: minutes on 2 shared cores)."""
    sizes = ["b0"] if quick else ["b0", "b1", "b2"]
    res = [(512, 512)] if quick else [(512, 512), (1024, 1024)]
    ks = [1, 4] if quick else [1, 2, 3, 4]
    budget_s = 60.0 if quick else CPU_BUDGET_S
    rows = []
    for size in sizes:
        for k in ks:
            model = _build(size, k)
            for h, w in res:
                c = model_complexity(model, h, w)
                check = published_check(size, c.macs) if (k == 1 and (h, w) == (512, 512)) else None
                rows.append({"device": "cpu", "size": size, "modalities": k, "input": f"{h}x{w}",
                             "params_m": c.params / 1e6, "gmacs": c.macs / 1e9, "gmacs_torch": c.macs_torch / 1e9,
                             "published_gmacs": PUBLISHED[size][1] if check else None,
                             "published_err": check[0] if check else None, "p50_ms": None})
    spent = 0.0
    for row in sorted(rows, key=lambda r: r["gmacs"]):
        if spent > budget_s:
            break
        model = _build(row["size"], row["modalities"])
        h, w = (int(v) for v in row["input"].split("x"))
        x, av = _inputs(row["modalities"], h, w)
        t0 = time.perf_counter()
        with torch.inference_mode():
            row.update(time_callable(lambda m=model, x=x, av=av: m(x, av), warmup=1,
                                     iters=3 if row["gmacs"] < 20 else 2))
        spent += time.perf_counter() - t0
        log.info("cpu %s k=%d %s: %.2f GMACs, p50 %.0f ms", row["size"], row["modalities"], row["input"],
                 row["gmacs"], row["p50_ms"])
    return rows


def _fusion_rows(quick: bool) -> list[dict]:
    rows = []
    h = w = 256 if quick else 512
    for fusion, missing in (("mean", "drop"), ("linear", "token"), ("hub", "drop"), ("impute", "drop")):
        model = _build("b0", 4, fusion, missing)
        c = model_complexity(model, h, w)
        x, av = _inputs(4, h, w)
        with torch.inference_mode():
            t = time_callable(lambda m=model, x=x, av=av: m(x, av), warmup=1, iters=2)
        rows.append({"device": "cpu", "size": "b0", "fusion": fusion, "missing": missing, "modalities": 4,
                     "input": f"{h}x{w}", "params_m": c.params / 1e6, "gmacs": c.macs / 1e9, **t})
    return rows


def _gpu_rows(quick: bool) -> list[dict]:
    """fp32 eager; bf16 (fp16 where bf16 is unsupported) autocast + channels_last; and that under
    torch.compile(mode="reduce-overhead") (CUDA graphs) for 1 and 4 sensors at 512x512."""
    rows = []
    sizes = ["b0"] if quick else ["b0", "b1", "b2"]
    ks = [1, 4] if quick else [1, 2, 3, 4]
    res = [(512, 512)] if quick else [(512, 512), (1024, 1024)]
    half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    tag = str(half).removeprefix("torch.")
    for size in sizes:
        for k in ks:
            fp32 = _build(size, k).cuda()
            cl = copy.deepcopy(fp32).to(memory_format=torch.channels_last)
            for h, w in res:
                variants = [("fp32", fp32, torch.float32, False), (f"{tag}+channels_last", cl, half, True)]
                if k in (1, 4) and (h, w) == (512, 512):
                    variants.append((f"{tag}+channels_last+compile(cudagraphs)",
                                     torch.compile(cl, mode="reduce-overhead"), half, True))
                for name, model, dtype, channels_last in variants:
                    x, av = _inputs(k, h, w, "cuda", channels_last)

                    def fn(m=model, x=x, av=av, dtype=dtype):
                        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                            return m(x, av).logits
                    with torch.inference_mode():
                        t = time_callable(fn, warmup=5 if "compile" in name else 3, iters=20 if quick else 50,
                                          sync_cuda=True)
                    rows.append({"device": torch.cuda.get_device_name(0), "size": size, "modalities": k,
                                 "input": f"{h}x{w}", "variant": name, **t})
                    log.info("gpu %s k=%d %dx%d %s: p50 %.2f ms", size, k, h, w, name, t["p50_ms"])
            del fp32, cl
            torch.cuda.empty_cache()
    return rows


def _imported_model(tmp: str) -> torch.nn.Module:
    """The RobustSeg B0 network as ``rmmss import robustseg`` makes it, from a random-weight file in
    the authors' layout (their key names and shapes: rmmss_core.importers.segformer_mm.manifest)."""
    from rmmss_core.importers import get_family, import_file
    from rmmss_core.models import load_model
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.zeros(shape, dtype=torch.long) if k.endswith("num_batches_tracked") else
                 torch.ones(shape) if k.endswith("running_var") else 0.02 * torch.randn(shape, generator=gen))
             for k, shape in get_family("robustseg").manifest().items()}
    torch.save(state, f"{tmp}/RobustSeg.pth")
    import_file("robustseg", f"{tmp}/RobustSeg.pth", f"{tmp}/robustseg.pt")
    return load_model(f"{tmp}/robustseg.pt")[0].eval()


def imported_rows(quick: bool) -> list[dict]:
    """The imported RobustSeg B0 (decoder 768 wide, 25 classes, zero-filled missing sensors) beside
    rmmss's own B0 (decoder 256, 25 classes, ``drop``), same input sizes, 4 sensors, in one run; and
    both with the LiDAR missing (same cost: every sensor slot is still encoded)."""
    import tempfile
    rows = []
    sizes = [(256, 256)] if quick else [(256, 256), (512, 512)]
    with tempfile.TemporaryDirectory() as tmp:
        models = {"imported RobustSeg B0 (rmmss import robustseg)": _imported_model(tmp),
                  "rmmss B0 (anymodal, mean, drop)": create_model("anymodal", size="b0", fusion="mean",
                                                                  missing="drop", num_classes=25).eval()}
        for h, w in sizes:
            for name, model in models.items():
                c = model_complexity(model, h, w)
                for subset in ("RDEL", "RDE"):
                    x = {m: torch.randn(1, 3, h, w) for m in MODALITIES}
                    av = subset_mask(subset, 1)
                    with torch.inference_mode():
                        t = time_callable(lambda m=model, x=x, av=av: m(x, av), warmup=1, iters=3)
                    rows.append({"device": "cpu", "model": name, "input": f"{h}x{w}", "sensors": subset,
                                 "decoder": model.decoder.dim, "params_m": c.params / 1e6,
                                 "gmacs": c.macs / 1e9, **t})
                    log.info("cpu %s %dx%d %s: p50 %.0f ms", name, h, w, subset, t["p50_ms"])
    return rows


IMPORTED_COLS = [("model", "model", ""), ("input", "input", ""), ("sensors", "sensors", ""),
                 ("decoder", "decoder width", "d"), ("params_m", "params (M)", ".2f"), ("gmacs", "GMACs", ".2f"),
                 ("p50_ms", "CPU p50 (ms)", ".0f"), ("runs", "runs", "d")]
IMPORTED_NOTE = ("The authors' released RobustSeg network (`rmmss import robustseg`: MiT-B0, per-stage mean, "
                 "SegFormer head 768 wide) beside rmmss's own B0 (head 256) at the same input size, timed in "
                 "the same run: CPU fp32, batch 1, p50 of 3 runs after 1 warm-up on a shared machine. The "
                 "768-wide head's 1x1 fusion conv at 1/4 resolution is most of the difference. `RDE`: the "
                 "LiDAR missing (zero-filled for the imported model, dropped for ours; both still encode "
                 "every sensor slot, so the cost does not change).\n\n")


def _table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = ""
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append("" if v is None else format(v, fmt))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def run(quick: bool) -> BenchReport:
    cpu = _cpu_rows(quick)
    fusion = _fusion_rows(quick)
    imported = imported_rows(quick)
    gpu = _gpu_rows(quick) if torch.cuda.is_available() else []
    md = ("MACs per image in SegFormer's published convention (mmcv get_flops + attention; "
          "`rmmss_core/models/complexity.py`); `published` is SegFormer's figure (ADE20K head, 150 classes), "
          "checked within 3 %. Mean fusion, `drop`; a k-modality model encodes k images with one shared "
          f"encoder. CPU: fp32, {torch.get_num_threads()} thread(s), batch 1, p50 of few runs on a shared "
          "machine (ratios mean more than absolute times).\n\n")
    md += _table(cpu, [("size", "size", ""), ("modalities", "sensors", "d"), ("input", "input", ""),
                       ("params_m", "params (M)", ".2f"), ("gmacs", "GMACs", ".2f"),
                       ("published_gmacs", "published", ".1f"), ("published_err", "vs published", "+.2%"),
                       ("p50_ms", "CPU p50 (ms)", ".0f"), ("runs", "runs", "d")])
    md += ("\nEmpty CPU latency: not timed, over the CPU time budget of the run (smallest configurations are "
           "timed first).\n")
    md += "\n### Fusions (B0, 4 sensors, CPU fp32)\n\n"
    md += _table(fusion, [("fusion", "fusion", ""), ("missing", "missing", ""), ("input", "input", ""),
                          ("params_m", "params (M)", ".2f"), ("gmacs", "GMACs", ".2f"),
                          ("p50_ms", "CPU p50 (ms)", ".0f")])
    md += "\n### The authors' imported B0 beside rmmss's B0 (CPU fp32)\n\n" + IMPORTED_NOTE
    md += _table(imported, IMPORTED_COLS)
    if gpu:
        md += f"\n### GPU ({gpu[0]['device']}, batch 1)\n\n"
        md += _table(gpu, [("size", "size", ""), ("modalities", "sensors", "d"), ("input", "input", ""),
                           ("variant", "variant", ""), ("p50_ms", "p50 (ms)", ".2f"), ("p90_ms", "p90 (ms)", ".2f")])
    else:
        md += "\nNo CUDA device on this machine: GPU section skipped.\n"
    records = [{"section": "cpu", **r} for r in cpu] + [{"section": "fusion", **r} for r in fusion] + \
              [{"section": "imported", **r} for r in imported] + \
              [{"section": "gpu", **r} for r in gpu]
    return BenchReport(name="models", title="Models: params, MACs, latency", markdown=md, records=records,
                       command="python -m rmmss_core.bench --only models --out docs/bench")


def main() -> int:
    """``python -m rmmss_core.bench.models --imported-only --out docs/bench``: only the imported-model
    comparison (the rest of the section is ``python -m rmmss_core.bench --only models``)."""
    import argparse
    from pathlib import Path

    from rmmss_core.bench import machine_info
    from rmmss_core.utils.io import atomic_write_json, atomic_write_text
    p = argparse.ArgumentParser(prog="python -m rmmss_core.bench.models")
    p.add_argument("--imported-only", action="store_true", required=True)
    p.add_argument("--out", default="docs/bench")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    t0 = time.perf_counter()
    rows = imported_rows(args.quick)
    m = machine_info()
    cmd = "python -m rmmss_core.bench.models --imported-only --out docs/bench" + (" --quick" if args.quick else "")
    md = (f"## The authors' imported B0 beside rmmss's B0\n\nCommand: `OMP_NUM_THREADS={torch.get_num_threads()} "
          f"{cmd}` (also part of `make bench`, section models). Machine: {m['cpu']}, {m['cores']} cores, torch "
          f"{m['torch']}. Run took {time.perf_counter() - t0:.0f} s.\n\n" + IMPORTED_NOTE + _table(rows, IMPORTED_COLS))
    out = Path(args.out)
    atomic_write_text(out / "imported.md", md)
    atomic_write_json(out / "imported.json", {"name": "imported", "machine": m, "command": cmd, "records": rows})
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
