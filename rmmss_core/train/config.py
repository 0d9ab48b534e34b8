"""Typed training configs: frozen dataclasses overlaid by ``config/train/<recipe>.yaml`` and flags.

    cfg = load_config(TrainConfig, "config/train/teacher.yaml", ["optim.lr=1e-4", "iters=200"])

The resolved config is written as ``config.yaml`` next to every run's outputs and stored inside
every checkpoint, so a run can always be read back exactly as it was trained.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ModelConfig:
    """A model from the models registry: ``create_model(name, **options)``."""

    name: str = "anymodal"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW (no decay on norms and biases), linear warm-up then poly decay, gradient clipping."""

    lr: float = 6e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_iters: int = 100
    warmup_ratio: float = 0.1
    poly_power: float = 0.9
    min_lr_ratio: float = 0.0
    clip_grad: float = 1.0  # max global grad norm; 0 disables clipping

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.warmup_iters < 0 or not 0.0 <= self.warmup_ratio <= 1.0:
            raise ValueError(f"bad warm-up: iters {self.warmup_iters}, ratio {self.warmup_ratio}")


@dataclass(frozen=True)
class DataConfig:
    """Where the frames come from and how they are batched."""

    dataset: str = "deliver"
    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    input_size: tuple[int, int] = (256, 320)  # (height, width) of the network input
    class_set: str = "deliver"
    batch_size: int = 8  # per process
    num_workers: int = 2
    augment: bool = True
    labeled_fraction: float = 1.0  # semi-supervised recipes: the rest is used without labels
    val_frames: int = 0  # 0 = the whole validation split
    # sensors read from the dataset; () = all four (a missing folder is an error). A subset trains and
    # validates with the others absent, and result.json / the checkpoints record it.
    modalities: tuple[str, ...] = ()

    def __post_init__(self):
        from rmmss_core.modalities import MODALITIES
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad:
            raise ValueError(f"data.modalities: unknown {bad}; valid: {list(MODALITIES)}")
        if not 0.0 < self.labeled_fraction <= 1.0:
            raise ValueError(f"data.labeled_fraction must be in (0, 1], got {self.labeled_fraction}")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights, named as in the papers (docs METHODS.md)."""

    ohem_thresh: float = 0.7
    ohem_min_kept_frac: float = 1.0 / 16
    mad: float = 50.0  # AnySeg
    umd: float = 5.0
    cmd: float = 10.0
    logit_kd: float = 50.0  # RMMSS HPDM
    proto: float = 100.0
    ifv: float = 12.0
    ifv_temperature: float = 2.0
    kd_temperature: float = 1.0
    pseudo: float = 1.0  # M3L
    ema_decay: float = 0.99
    m3l_mask: str = "anymodal"  # "one": one modality or none (the paper's 2-sensor rule); "anymodal"
    m3l_views: Literal["both", "masked"] = "both"  # M3L: labelled frames clean + masked (code)
    m3l_sup: Literal["prob_ohem", "ohem"] = "prob_ohem"  # M3L: ProbOhemCrossEntropy2d (code)
    m3l_min_kept: float = 0.08  # M3L prob-OHEM: min kept = int(0.08 * H * W) * batch (code)
    impute: float = 1.0  # U2MKD
    uni_kd: float = 1.0  # U2MKD's LiDAR-teacher logit KD
    feature_kd: float = 1.0
    fsm_kd: float = 1.0  # RMMSS-FSM: KD of the selected logits to the full-modality teacher
    # Readings (docs/METHODS-OURS.md): the authors' choice is the default, ours a named option.
    dropout_per: Literal["batch", "sample"] = "batch"  # any-modal dropout: one subset per batch (code)
    kl_reduction: Literal["element", "pixel"] = "element"  # L_mad / HPDM logit KD: KLDivLoss 'mean'
    umd_axis: Literal["height", "channel"] = "height"  # L_umd softmax axis (code: dim 1 of C x H x W)
    umd_stages: Literal["sum", "mean"] = "sum"  # L_umd: sum over stages and pairs / B (code)
    cmd_per_channel: bool = True  # L_cmd: per-channel cosine averaged over channels (code)
    cmd_stages: Literal["sum", "mean"] = "sum"  # L_cmd: per-stage MSEs summed (code)
    proto_scope: Literal["image", "batch"] = "image"  # L_proto prototypes per image (code) or pooled
    proto_absent: Literal["zero", "drop"] = "zero"  # absent classes: zero rows in the softmax (code)
    proto_stages: Literal["sum", "mean"] = "sum"  # L_proto: sum over stages x slots / B (code)
    proto_pairing: Literal["same", "random"] = "same"  # L_proto: teacher's same modality (PCUMD.py)
    ifv_softmax: Literal["row", "flat"] = "row"  # L_ifv: softmax along each row, rows summed (code)
    ifv_stages: Literal["sum", "mean"] = "sum"  # L_ifv: stages summed (code)
    u2mkd_feature: Literal["lidar", "fused"] = "lidar"  # U2MKD feature KD: LiDAR branch + adapter (code)


@dataclass(frozen=True)
class FSMConfig:
    """The feature selection module (rmmss_core/models/fsm.py).

    variant: ``"authors"`` (RobustSeg/UMMSS mmkd/FSM.py: per-source spatial score, arg-max over
    sources, the winner's original features) or ``"ours"`` (our former reading: channel-wise
    scores told the availability mask, plus a logit-level selection). ``select`` applies to ``ours``.
    """

    variant: Literal["authors", "ours"] = "authors"
    select: Literal["max", "softmax"] = "max"
    hidden: int = 64  # reserved (unused)


@dataclass(frozen=True)
class TrainConfig:
    """One training run of one recipe."""

    recipe: str = "teacher"
    seed: int = 0
    iters: int = 1000
    device: str = "auto"  # auto | cpu | cuda | cuda:N (with torchrun: the local rank's GPU)
    amp: Literal["none", "bf16", "fp16"] = "bf16"  # autocast on GPU only; CPU runs in fp32
    log_every: int = 20
    val_every: int = 0  # 0: validate only at the end
    ckpt_every: int = 100
    best_metric: str = "miou_avg"  # higher is better; a key of the validation metrics
    val_subsets: tuple[str, ...] = ()  # () = all 15 subsets
    images_every: int = 0  # TensorBoard sample images at validation (0: off)
    curve_every: int = 0  # keep the output model every N steps in <out>/curve/ (learning curves; 0: off)
    progress: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    fsm: FSMConfig = field(default_factory=FSMConfig)
    teacher: str = ""  # checkpoint of the frozen teacher (anyseg, rmmss-hpdm, rmmss-fsm, u2mkd, compress)
    robust: str = ""  # checkpoint of the frozen robust model (rmmss-fsm, compress)
    init: str = ""  # optional: initialise the trained model's weights from this checkpoint

    def __post_init__(self):
        if self.iters < 1:
            raise ValueError(f"iters must be >= 1, got {self.iters}")
        if self.ckpt_every < 1 or self.log_every < 1:
            raise ValueError("ckpt_every and log_every must be >= 1")
        if self.curve_every < 0:
            raise ValueError(f"curve_every must be >= 0 (0: off), got {self.curve_every}")
