"""`bench data`, `bench eval` and `bench models`: datasets, scoring predictions, the registered models."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from bench.cli.common import DATA_ROOT_HELP, clean_errors, main, write_json_new
from bench.progress import log_line, progress_bar
from bench.errors import BenchError


# -- data ---------------------------------------------------------------------------------------------
@main.group()
def data():
    """Check, download or prepare datasets."""


@data.command("verify")
@click.argument("dataset", default="camvid")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--no-checksums", is_flag=True, help="skip the SHA-256 comparison")
@clean_errors
def data_verify(dataset, data_root, no_checksums):
    """Check that DATASET's files are present, decode, and match their SHA-256 list.

    Example: bench data verify camvid --data-root ../shared/datasets
    """
    from bench import datasets
    ds = datasets.get_dataset(dataset, data_root)
    summary = ds.verify(checksums=not no_checksums, progress=progress_bar)
    counts = ", ".join(f"{k} {v}" for k, v in summary["images"].items())
    click.echo(f"{dataset}: OK at {summary['root']} ({counts}); sha256: {summary['sha256']}")


@data.command("download")
@click.argument("dataset", default="camvid")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--url", help="archive address (default: the authors' archive)")
@click.option("--manifest", type=click.Path(dir_okay=False), help="SHA-256 list to verify against")
@clean_errors
def data_download(dataset, data_root, url, manifest):
    """Download DATASET from its authors' archive and verify every file.

    Example: bench data download camvid
    """
    from bench import datasets
    from bench.datasets.download import download_dataset
    ds = datasets.get_dataset(dataset, data_root)
    summary = download_dataset(ds, url=url, manifest=manifest, progress=sys.stderr.isatty())
    if summary.get("next"):
        click.echo(f"{dataset}: archives {'already present' if summary['already_present'] else 'downloaded'} at "
                   f"{summary['root']}; next: {summary['next']}")
    elif summary["already_present"]:
        click.echo(f"{dataset}: already present at {summary['root']}; {summary['files_verified']} files verified")
    else:
        click.echo(f"{dataset}: downloaded to {summary['root']}; {summary['files_verified']} files verified")


@data.command("prepare")
@click.argument("dataset", default="sunrgbd")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--archives", type=click.Path(file_okay=False), help="folder holding the official archives (default: "
              "<data root>/SUNRGBD-archives, where `bench data download` puts them)")
@clean_errors
def data_prepare(dataset, data_root, archives):
    """Convert DATASET's official archives once into the harness's layout (images, label PNGs, list files).

    Example: bench data prepare sunrgbd --archives ~/Downloads
    """
    from bench import datasets
    ds = datasets.get_dataset(dataset, data_root)
    if not hasattr(ds, "prepare"):
        raise BenchError(f"{dataset}: nothing to prepare (its download is already in the layout the loader reads)")
    ds.prepare(archives, progress=progress_bar, log=click.echo)


# -- eval ---------------------------------------------------------------------------------------------
def format_scores(result: dict) -> str:
    lines = [f"{'G':>8} {'C':>8} {'mIoU':>8} {'BF':>8}",
             " ".join(f"{result[k]:8.2f}" if result[k] is not None else f"{'-':>8}" for k in ("G", "C", "mIoU", "BF")),
             "", f"{'class':<12} {'acc':>7} {'IoU':>7} {'BF':>7}"]
    for name, v in result["per_class"].items():
        cells = [f"{v[k]:7.2f}" if v[k] is not None else f"{'-':>7}" for k in ("accuracy", "iou", "bf")]
        lines.append(f"{name:<12} " + " ".join(cells))
    return "\n".join(lines)


@main.command("eval")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--dataset", default="camvid", show_default=True, help="registered dataset the predictions are for")
@click.option("--split", default="test", show_default=True, help="split whose images the files are named after")
@click.option("--predictions", type=click.Path(), help="folder of 8-bit PNG label maps named like the split's images")
@click.option("--run", "run_record", type=click.Path(), help="with --reinfer: a record folder (or its run.json)")
@click.option("--reinfer", is_flag=True, help="re-test --run from its kept weights: run them over its test split and "
              "compare with its committed predictions (pixels that agree, each score's Δ; bench.reinfer)")
@click.option("--images", type=click.IntRange(1, None), default=None, help="with --reinfer: the first N test images only")
@click.option("--device", default="cpu", show_default=True, help="with --reinfer: where the model runs")
@click.option("--precision", type=click.Choice(["bf16", "fp32"]), default=None,
              help="with --reinfer: instead of the record's own precision")
@click.option("--checkpoints", default="checkpoints", show_default=True, type=click.Path(file_okay=False),
              help="with --reinfer: where weights that are not committed are kept")
@click.option("--out", type=click.Path(dir_okay=False), help="write the scores as JSON here (must not exist)")
@click.option("--absent", type=click.Choice(["zero", "skip"]), default="zero", show_default=True,
              help="C and mIoU: a class absent from the ground truth scores 0 (authors' script) or is skipped")
@click.option("--bf-matching", type=click.Choice(["one-to-one", "distance"]), default="one-to-one", show_default=True,
              help="BF: maximum one-to-one matching of boundary pixels (computeBFmeasure.m) or any pixel within the "
                   "radius (MATLAB bfscore)")
@click.option("--bf-class-rule", type=click.Choice(["gt-or-pred", "gt"]), default="gt-or-pred", show_default=True,
              help="BF: a class counts in an image when it has a boundary in the ground truth or the prediction "
                   "(the script) or in the ground truth only (the paper's text)")
@click.option("--workers", type=click.IntRange(1, 1024), default=None, help="processes for BF (default: all cores)")
@clean_errors
def eval_cmd(data_root, dataset, split, predictions, run_record, reinfer, images, device, precision, checkpoints, out,
             absent, bf_matching, bf_class_rule, workers):
    """Score a folder of predicted label maps with G, C, mIoU and BF (the authors' conventions), or re-test a
    record from its own weights (--run RECORD --reinfer).

    Example: bench eval --predictions my_model/test_predictions --out scores.json

    Example: bench eval --run results/camvid-decoder-variants/fcn-basic/<run> --reinfer
    """
    if reinfer or run_record:
        if not (reinfer and run_record) or predictions:
            raise BenchError("--reinfer takes --run RECORD (and no --predictions): bench eval --run RECORD --reinfer")
        return _reinfer(run_record, data_root, images, device, precision, checkpoints, out)
    if not predictions:
        raise BenchError("give --predictions FOLDER (or --run RECORD --reinfer)")
    # scoring does no linear algebra: OpenBLAS's idle threads (started with numpy) would only take CPU time
    # from the scoring workers
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from bench import datasets
    from bench.evaluate import evaluate_predictions
    if out and Path(out).exists():
        raise BenchError(f"{out}: already exists; nothing was written (choose another --out)")
    ds = datasets.get_dataset(dataset, data_root)
    from bench import native
    if native.load() is None:  # once per command: BF takes its slower path
        click.echo(f"note: the C code is not available ({native.unavailable_reason()}); BF's matching uses SciPy's "
                   "max-flow and the confusion matrix NumPy (same scores, slower)", err=True)
    result = evaluate_predictions(ds, split, predictions, progress=progress_bar, absent=absent,
                                  matching=bf_matching, class_rule=bf_class_rule, workers=workers)
    click.echo(f"{dataset} {split}: {result['num_images']} images from {predictions}")
    click.echo(format_scores(result))
    if out:
        write_json_new(Path(out), result)
        click.echo(f"wrote {out}")


def _reinfer(run_record, data_root, images, device, precision, checkpoints, out):
    from bench.reinfer import describe, reinfer
    if out and Path(out).exists():
        raise BenchError(f"{out}: already exists; nothing was written (choose another --out)")
    result = reinfer(run_record, checkpoints=checkpoints, data_root=data_root, device=device, images=images,
                     precision=precision, log=log_line, progress=progress_bar)
    click.echo(describe(result))
    click.echo(f"{'':8} {'G':>8} {'C':>8} {'mIoU':>8} {'BF':>8}")
    for label, scores in (("recorded", result["committed_scores"]), ("again", result["scores"]),
                          ("Δ", result["delta"])):
        click.echo(f"{label:8} " + " ".join(f"{scores[k]:8.2f}" for k in ("G", "C", "mIoU", "BF")))
    if out:
        write_json_new(Path(out), result)
        click.echo(f"wrote {out}")
    if not result["within_tolerance"]:
        sys.exit(1)


# -- predict ------------------------------------------------------------------------------------------
@main.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--run", "run_record", required=True, type=click.Path(),
              help="a record folder (or its run.json) whose weights are kept, or a .safetensors file of them")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for labels/, overlays/ and sheet.png")
@click.option("--device", default="cpu", show_default=True, help="where the model runs (cpu, cuda)")
@click.option("--checkpoints", default="checkpoints", show_default=True, type=click.Path(file_okay=False),
              help="where weights that are not committed are kept")
@click.option("--no-sheet", is_flag=True, help="no contact sheet")
@clean_errors
def predict_cmd(images, run_record, out, device, checkpoints, no_sheet):
    """Run a recorded model on images or folders of images of any size.

    Writes 8-bit label maps, colour overlays in the dataset's palette with a legend, and one contact sheet. An
    image that cannot be read is named in one line and the others are still done (exit status 2 then).

    Example: bench predict --run results/camvid-decoder-variants/fcn-basic/<run> photos/ --out predicted/
    """
    from bench.prediction import predict
    result = predict(run_record, images, out, device=device, checkpoints=checkpoints, sheet=not no_sheet,
                     progress=progress_bar, log=log_line)
    click.echo(f"wrote {len(result['written'])} label map(s) and overlay(s) to {out}"
               + ("" if no_sheet or not result["written"] else f", and {out}/sheet.png"))
    for line in result["problems"]:
        click.echo(f"error: {line}", err=True)
    if result["problems"]:
        sys.exit(2)


# -- models -------------------------------------------------------------------------------------------
@main.command("models")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="a table to read, or JSON for scripts")
@click.option("--pattern", default="*", show_default=True, help="fnmatch pattern of model names")
@clean_errors
def models_cmd(fmt, pattern):
    """List the registered models: parameters, GMACs at 360x480, output size, Table 1 storage multiplier (from the
    catalogue, architectures/models.toml, whose counts the tests hold to a real build).

    Example: bench models --pattern "segnet*"
    """
    from bench import architectures
    from bench.models import describe_model
    rows = [describe_model(n) for n in architectures.list_models(pattern)]
    if not rows:
        raise BenchError(f"no model matches {pattern!r}; known models: {', '.join(architectures.list_models())}")
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    def count(v, fmt):
        return "–" if v is None else format(v, fmt)
    click.echo(f"{'model':<40} {'params':>12} {'trainable':>12} {'GMACs':>8} {'output':>12} {'T1 storage':>10}  paper")
    for r in rows:
        out = "x".join(str(v) for v in r["output_shape"])
        store = r["table1_storage_multiplier"] or ""
        click.echo(f"{r['name']:<40} {count(r['params'], ','):>12} {count(r['trainable_params'], ','):>12} "
                   f"{count(r['gmacs'], '.2f'):>8} {out:>12} {store:>10}  {r['paper_name']}")
