"""gpu.json -> gpu.md: what ran, on what, every figure, and plainly what was skipped and why."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

DASH = "—"
SECTIONS = OrderedDict([
    ("tests", "1. GPU-marked tests"),
    ("latency", "2. Inference latency: B0 student, 4 sensors, with references"),
    ("node", "3. The node's pipeline on the device"),
    ("train", "4. Teacher training step"),
    ("robustness", "5. Robustness benchmark, GPU preset scaled to the time left"),
])


def _f(x: Any, fmt: str = "{:.2f}") -> str:
    return DASH if x is None else fmt.format(x)


def _status(r: dict[str, Any]) -> str:
    s = r["status"]
    return f"{s}: {r['reason']}" if r["reason"] and s in ("skipped", "failed", "not yet run") else s


def _figures_shown(r: dict[str, Any]) -> bool:
    return r["status"] == "ok"


def render(doc: dict[str, Any]) -> str:
    m, v = doc["machine"], doc["versions"]
    smoke_cpu = doc["smoke"] and not doc["device"].startswith("cuda")
    lines = ["## GPU check (`make gpu-check` / `rmmss gpu-check`)", ""]
    if smoke_cpu:
        lines += ["**This document comes from the CPU smoke run (`rmmss gpu-check --device cpu --smoke`). "
                  "No figure here was measured on a GPU: every GPU row reads \"not yet run\", and rows whose "
                  "code path ran on the CPU with a tiny stand-in read \"smoke\" and show no figure.** "
                  "Run `make gpu-check` on a CUDA machine (below) to fill them.", ""]
    lines += [f"Command: `{doc['command']}`. Device: `{doc['device']}`"
              f"{' (' + m.get('gpu', '') + ', ' + str(m.get('gpu_memory_gb', '')) + ' GB, ' + str(m.get('gpu_count', '')) + ' GPU(s))' if m.get('gpu') and doc['device'].startswith('cuda') else ''}. "
              f"Host: {m['cpu']}, {m['cores']} cores. Wall clock {doc['wall_s']:.0f} s of a {doc['budget_s']:.0f} s budget "
              f"(per step: {', '.join(f'{k} {s:.0f} s' for k, s in doc.get('step_s', {}).items())}).", "",
              "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None) + "; not installed: "
              + (", ".join(k for k, val in v.items() if val is None) or "none") + ".", ""]
    c = doc["summary"]["counts"]
    lines += [f"Rows: {c['ok']} measured, {c['smoke']} smoke-checked on CPU, {c['not yet run']} not yet run, "
              f"{c['skipped']} skipped, {c['failed']} failed.", ""]
    lines += _not_run(doc["rows"])
    for step, title in SECTIONS.items():
        rows = [r for r in doc["rows"] if r["step"] == step]
        lines += [f"### {title}", ""]
        lines += {"tests": _tests, "latency": _latency, "node": _node, "train": _train,
                  "robustness": _robustness}[step](rows, doc)
        lines.append("")
    lines += [BRINGING.strip(), ""]
    return "\n".join(lines)


def _not_run(rows: list[dict[str, Any]]) -> list[str]:
    """Skipped / not-run / failed rows grouped by step and reason (the plain list the issue asks for)."""
    groups: OrderedDict[tuple[str, str, str], int] = OrderedDict()
    for r in rows:
        if r["status"] in ("skipped", "not yet run", "failed"):
            key = (r["step"], r["status"], r["reason"])
            groups[key] = groups.get(key, 0) + 1
    if not groups:
        return ["Nothing was skipped.", ""]
    out = ["What did not run, and why:", ""]
    out += [f"- {step}: {n} row(s) **{status}**: {reason}" for (step, status, reason), n in groups.items()]
    return out + [""]


def _tests(rows, doc) -> list[str]:
    out = ["| test | status | time (s) |", "| --- | --- | ---: |"]
    out += [f"| `{r['name']}` | {_status(r)} | {_f(r['figures'].get('time_s'), '{:.1f}')} |" for r in rows]
    return out


def _latency(rows, doc) -> list[str]:
    out = ["Timed: inputs resident on the device; one call = forward + upsample + argmax, then a device "
           "synchronisation; p50/p90 over up to 100 calls after warm-up. `b0_1_sensor` = the same network "
           "built for the camera alone; `hf_segformer_b0_batch4` = Hugging Face SegformerForSemanticSegmentation "
           "(SegformerConfig() = MiT-B0, random weights) with the 4 sensors as a batch of 4.", "",
           "| network | size | precision | mode | status | p50 (ms) | p90 (ms) | first call (s) | peak (MB) |",
           "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        f = r["figures"]
        if "net" not in f and r["status"] != "ok":
            parts = r["name"].split(" ")
            f = {"net": parts[0], "size": parts[1] if len(parts) > 1 else "", "precision": parts[2] if len(parts) > 2 else "",
                 "mode": parts[3] if len(parts) > 3 else ""}
        size = "x".join(str(s) for s in f["size"]) if isinstance(f.get("size"), list) else f.get("size", "")
        show = _figures_shown(r)
        out.append(f"| {f.get('net', r['name'])} | {size} | {f.get('precision', '')} | {f.get('mode', '')} | {_status(r)} | "
                   f"{_f(f.get('p50_ms') if show else None)} | {_f(f.get('p90_ms') if show else None)} | "
                   f"{_f(f.get('setup_s') if show else None, '{:.1f}')} | {_f(f.get('peak_mem_mb') if show else None, '{:.0f}')} |")
    s = doc["summary"].get("latency") or {}
    out.append("")
    if s:
        out.append(f"Best at 1024x1024, 4 sensors: **{s['best']}**, p50 {s['best_p50_ms']:.2f} ms "
                   f"(target <= {s['target_p50_ms']:.0f} ms: {'met' if s['meets_target'] else 'NOT met'}); "
                   + "; ".join(f"ratio to {k[9:]}: {val:.2f}x" for k, val in s.items() if k.startswith("ratio_to_"))
                   + ".")
    else:
        out.append("Target (B0, 4 sensors, 1024x1024, best precision, p50 <= 4 ms) and the ratio to the Hugging "
                   "Face reference: not yet measured (no GPU row ran).")
    return out


def _node(rows, doc) -> list[str]:
    out = ["Plain-array messages (sensor_msgs fields, `bytes` data; no rclpy/rosbags needed): 640x480 bgr8 camera, "
           "16UC1 depth, rgb8 event frame, 65,536-point x/y/z/intensity cloud; network input 384x512.", "",
           "| measure | status | p50 (ms) | p90 (ms) | other |", "| --- | --- | ---: | ---: | --- |"]
    for r in rows:
        f = r["figures"] if _figures_shown(r) else {}
        other = ""
        if "max_diff_levels" in f:
            other = f"max diff {f['max_diff_levels']:.3f} levels (target <= 1), identical share >= {f['min_share_identical']:.4f}"
        elif "bytes_per_frame_set" in f:
            other = f"{f['bytes_per_frame_set'] / 2**20:.2f} MB uploaded per frame set, {f.get('model')} {f.get('precision')}"
        out.append(f"| {r['name']} | {_status(r)} | {_f(f.get('p50_ms'))} | {_f(f.get('p90_ms'))} | {other} |")
    return out


def _train(rows, doc) -> list[str]:
    out = ["The trainer's step of the teacher recipe (config/train/teacher.yaml: mean fusion, OHEM CE, AdamW, "
           "gradient clipping) on random inputs and labels.", "",
           "| run | status | step p50 (ms) | step p90 (ms) | images/s | peak (GB) | params (M) |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        f = r["figures"] if _figures_shown(r) else {}
        out.append(f"| {r['name']} | {_status(r)} | {_f(f.get('p50_ms'), '{:.1f}')} | {_f(f.get('p90_ms'), '{:.1f}')} | "
                   f"{_f(f.get('images_per_s'), '{:.1f}')} | {_f(f.get('peak_mem_gb'))} | {_f(f.get('params_m'))} |")
    return out


def _robustness(rows, doc) -> list[str]:
    out = ["| run | status | notes |", "| --- | --- | --- |"]
    for r in rows:
        f = r["figures"]
        note = ""
        if r["status"] == "ok":
            t = f["timings_s"]
            note = (f"{f['iters_per_recipe']} steps per recipe (probe {_f(f['probe_step_ms'], '{:.0f}')} ms/step); data: {f['data']}, "
                    f"{f['data_frames']} frames at {f['data_size']}; train {t['train_s']:.0f} s, eval {t['eval_s']:.0f} s; "
                    f"report: {f['report']}")
        out.append(f"| {r['name']} | {_status(r)} | {note} |")
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        out += ["", "| method | all sensors | mIoU^Avg (15) | missing (14) | RMM | NM |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for k, h in ok[0]["figures"]["headline"].items():
            out.append(f"| {k} | {100 * h['full']:.2f} | {100 * h['avg15']:.2f} | {100 * h['missing14']:.2f} | "
                       f"{100 * h.get('rmm', float('nan')):.2f} | {100 * h.get('nm', float('nan')):.2f} |")
    return out


BRINGING = """
### Running it on a CUDA machine (no network, <= 60 MB brought along)

The GPU machine has Python 3.12, torch (CUDA), triton, onnx, onnxruntime (CPU provider), OpenCV,
timm (hence torchvision and Pillow), tqdm and PyYAML, maybe transformers; it has no rclpy, rosbags or
Open3D and no network. Nothing the check imports needs those three: messages are plain objects with
`bytes` data, the bag tools are not used, and the robustness data are brought as PNGs.

Bring three things (about 45 MB in all, under the 60 MB a run may carry):

1. The code: the git checkout's tracked files (~15 MB, 11 MB of it the sample bag) or, smaller,
   `git archive --format=tar HEAD -- rmmss_core rmmss_ros rmmss_cli config test Makefile setup.cfg > rmmss.tar`
   (~1.2 MB; the check needs `rmmss_core`, `rmmss_ros`, `rmmss_cli`, `config`, `test` and `setup.cfg`).
2. Wheels of what the check imports and the machine lacks, all pure Python (5.9 MB), fetched
   on a networked machine into the ignored folder `gpu-wheels/`:

       pip download --python-version 3.12 --only-binary=:all: --no-deps -d gpu-wheels \\
           pytest==7.4.4 iniconfig==2.3.1 pluggy==1.7.0 packaging==26.3 tensorboard==2.21.0 absl-py==2.5.1

   pytest runs step 1; tensorboard's SummaryWriter (with absl-py, plus protobuf and numpy, which
   onnx brings) is what the trainer logs to (the NCCL test and step 5). matplotlib (~12 MB with
   its compiled dependencies) is optional: without it step 5 writes no plots and says so.
   transformers is optional too (the Hugging Face rows say when it is missing); if wanted:
   `pip download --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 -d
   gpu-wheels transformers==5.23.0` (~15 MB with tokenizers and safetensors).
3. The robustness data, made where Open3D is installed (`make install` here):
   `rmmss gpu-check --pack-data gpu-check-data/robustness-data.tar` (100 seeded frames at 320x256
   over 10 scenes x 5 conditions, encoded PNGs only, ~23 MB; `--pack-frames N` to change, rounded up
   to whole scene x condition groups: 120 gives 150 frames, 34 MB).

On the GPU machine, from the checkout:

    # installs only what is missing (present packages are left as they are)
    python -m pip install --no-index --no-deps --find-links gpu-wheels pytest iniconfig pluggy packaging tensorboard absl-py
    # where pip may not install (externally managed Python): unpack the wheels and put them on the path
    #   for w in gpu-wheels/*.whl; do python -m zipfile -e "$w" gpu-site; done; export PYTHONPATH=$PWD/gpu-site
    make gpu-check GPU_CHECK_ARGS="--data gpu-check-data/robustness-data.tar"
    # the same without make:
    python -m rmmss_cli gpu-check --data gpu-check-data/robustness-data.tar

It finishes within `--budget-s` (default 540 s) and writes `docs/bench/gpu.md` and `docs/bench/gpu.json`;
commit those two files. `make gpu-check` uses `.venv/bin/python` when present, else `python3`, and
never installs anything. On a CPU machine the same command runs as a smoke test:
`rmmss gpu-check --device cpu --smoke` (about a minute; `test/test_gpu_check.py` runs it in `make test`).
"""
