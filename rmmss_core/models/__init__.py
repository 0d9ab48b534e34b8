"""Models: MiT encoders, fusions, missing-modality representations, the any-modal segmentor,
a plain registry and checkpoints.

Every model module that registers a builder (``@register_model``) is imported here, once, so that
``create_model`` / ``load_model`` know every built-in model: ``segmentor`` ("anymodal") and ``fsm``
("rmmss_fsm", the RMMSS feature-selection student).

    from rmmss_core.models import create_model, load_model, save_model_checkpoint
    model = create_model("anymodal", size="b0", fusion="mean", missing="drop", num_classes=25)
    out = model(inputs, available, return_features=True)   # SegOutput(logits, features)
"""
from rmmss_core.models import fsm  # noqa: F401  (registers "rmmss_fsm")
from rmmss_core.models.checkpoint import load_model, save_model_checkpoint
from rmmss_core.models.config import FUSIONS, MISSING, MIT_SIZES, MiTConfig, SegmentorConfig
from rmmss_core.models.registry import build_model, create_model, list_models, model_spec, register_model
from rmmss_core.models.segmentor import AnyModalSegmentor, LogitsOnly, SegFeatures, SegOutput, build_segmentor

__all__ = ["FUSIONS", "MISSING", "MIT_SIZES", "AnyModalSegmentor", "LogitsOnly", "MiTConfig", "SegFeatures",
           "SegOutput", "SegmentorConfig", "build_model", "build_segmentor", "create_model", "list_models",
           "load_model", "model_spec", "register_model", "save_model_checkpoint"]
