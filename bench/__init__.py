"""The SegNet benchmark harness as a Python API (the `bench` command is a thin layer over it).

    import bench
    records = bench.run_suite("camvid-decoder-variants", profile="smoke", members=["segnet-basic"])
    record = records[0]                   # run.json as a dict; record.folder holds it and its predictions
    record = bench.load_record("results/camvid-controlled/segnet/<run>/run.json")
    scores = bench.evaluate_predictions(bench.get_dataset("camvid"), "test", "my_predictions/")
    scores = bench.score_label_maps(pred_arrays, gt_arrays)        # G, C, mIoU, BF of arrays in memory
    bench.render_reports("results", "reports")
    outcome = bench.run_check("results")
    model = bench.create_model("segnet", num_classes=11)
    model = bench.load_model(record)      # a recorded run's selected weights, in evaluation mode
    bench.predict(record, ["photos/"], "predicted/")              # label maps, overlays, a contact sheet
    retest = bench.reinfer(record)        # its test split again from its weights, against its predictions

    @bench.register_model("my-net")       # a model of your own (docs/models.md), then bench.run_suite(...,
    def my_net(num_classes=11, encoder_weights=None): ...   # add_members=["my-net"])

Names are imported on first use, so `import bench` stays cheap (the CLI starts without loading torch).
"""
from __future__ import annotations

import importlib
import warnings

from bench.compat import torch_pair_problem as _torch_pair_problem

if _torch_pair_problem():  # at import, in one line (the CLI stops on it; `bench.compat`)
    warnings.warn(_torch_pair_problem(), RuntimeWarning, stacklevel=2)

_EXPORTS = {
    "run_suite": "bench.runner",
    "train_suite": "bench.runner",
    "RunRecord": "bench.records",
    "run_plan": "bench.plan",
    "load_record": "bench.records",
    "load_records": "bench.records",
    "select_records": "bench.records",
    "evaluate_predictions": "bench.evaluate",
    "score_label_maps": "bench.evaluate",
    "boundary_f1": "bench.boundary",
    "confusion_matrix": "bench.metrics",
    "segmentation_scores": "bench.metrics",
    "render_reports": "bench.report",
    "run_check": "bench.check",
    "profile_model": "bench.profile",
    "create_model": "bench.architectures",
    "list_models": "bench.architectures",
    "register_model": "bench.architectures",
    "load_plugin": "bench.architectures",
    "get_dataset": "bench.datasets",
    "load_model": "bench.weights",
    "predict": "bench.prediction",
    "reinfer": "bench.reinfer",
    "BenchError": "bench.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
