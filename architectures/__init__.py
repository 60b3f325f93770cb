"""The paper's architectures, one file per family, behind one registry.

    from bench.architectures import create_model, list_models
    model = create_model("segnet", num_classes=11, encoder_weights="imagenet")
"""
from bench.architectures.registry import create_model, list_models, model_meta, model_revision, register_model
from bench.architectures import segnet as _segnet  # noqa: F401  (registration order = listing order)
from bench.architectures import fcn as _fcn  # noqa: F401
from bench.architectures import deeplab_largefov as _deeplab  # noqa: F401
from bench.architectures import deconvnet as _deconvnet  # noqa: F401
from bench.architectures import smp_models as _smp  # noqa: F401

__all__ = ["create_model", "list_models", "model_meta", "model_revision", "register_model"]
