"""The paper's architectures, one file per family, behind one registry (`registry.py`) and one catalogue of what
each model is (`models.toml`).

    from bench.architectures import create_model, list_models
    model = create_model("segnet", num_classes=11, encoder_weights="imagenet")

Importing this package imports no model and no torch: the builders are imported when a model is first built.
"""
from bench.architectures.registry import (create_model, list_models, load_plugin, load_plugins, model_facts,
                                          model_meta, model_revision, paper_names, postprocessed_members,
                                          register_model)

__all__ = ["create_model", "list_models", "load_plugin", "load_plugins", "model_facts", "model_meta",
           "model_revision", "paper_names", "postprocessed_members", "register_model"]
