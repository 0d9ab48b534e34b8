"""Deployment: ONNX export that serves any modality subset, inference backends, benchmarks.

``create_backend(kind, model_path, device="cpu", precision="fp32", **options) -> Backend``;
``backend.infer(inputs, available) -> uint8 B x H x W`` class ids (argmax on the device);
``backend.infer_with_confidence(inputs, available, min_confidence=0) -> (mask, confidence)`` adds the
winning class's softmax probability as uint8 (rmmss_core.deploy.confidence). ``quality``: the
expected-quality table kept with a model (``rmmss eval --store-quality``).
Kinds: torch, onnxruntime, tensorrt. ``export_checkpoint`` / ``export_model`` write the ONNX graph,
``read_onnx_metadata`` reads its spec back.
"""
from rmmss_core.deploy.backends import (
    BACKENDS,
    Backend,
    BackendUnavailableError,
    ModelFileError,
    create_backend,
)
from rmmss_core.deploy.export import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    OnnxModelInfo,
    export_checkpoint,
    export_model,
    read_onnx_metadata,
)

__all__ = ["BACKENDS", "INPUT_NAMES", "OUTPUT_NAMES", "Backend", "BackendUnavailableError",
           "ModelFileError", "OnnxModelInfo", "create_backend", "export_checkpoint", "export_model",
           "read_onnx_metadata"]
