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
    if gpu:
        md += f"\n### GPU ({gpu[0]['device']}, batch 1)\n\n"
        md += _table(gpu, [("size", "size", ""), ("modalities", "sensors", "d"), ("input", "input", ""),
                           ("variant", "variant", ""), ("p50_ms", "p50 (ms)", ".2f"), ("p90_ms", "p90 (ms)", ".2f")])
    else:
        md += "\nNo CUDA device on this machine: GPU section skipped.\n"
    records = [{"section": "cpu", **r} for r in cpu] + [{"section": "fusion", **r} for r in fusion] + \
              [{"section": "gpu", **r} for r in gpu]
    return BenchReport(name="models", title="Models: params, MACs, latency", markdown=md, records=records,
                       command="python -m rmmss_core.bench --only models --out docs/bench")
