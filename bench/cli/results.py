"""`bench profile`, `bench report` and `bench check`: costs measured, reports rendered, results gated."""
from __future__ import annotations

import json
import sys

import click

from bench.cli.common import DATA_ROOT_HELP, clean_errors, main, record_selection
from bench.errors import BenchError
from bench.progress import log_line, progress_bar


# -- profile ------------------------------------------------------------------------------------------
def _size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BenchError(f"--size {text!r}: expected HxW, e.g. 360x480") from None
    if min(h, w) < 32:
        raise BenchError(f"--size {text!r}: each side must be >= 32")
    return h, w


@main.command("profile")
@click.option("--models", default=None, help="comma-separated model names (default: every registered model)")
@click.option("--device", default=None, help="cuda or cpu (default: cuda where present)")
@click.option("--dtype", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="precision of the measured passes (the paper: fp32 in Caffe)")
@click.option("--size", default="360x480", show_default=True, help="input HxW")
@click.option("--runs", default=10, show_default=True, type=click.IntRange(1, 10000), help="timed repetitions per pass")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(0, 10000),
              help="untimed repetitions first")
@click.option("--train-batch", default=4, show_default=True, type=click.IntRange(1, 1024),
              help="batch of the measured training step (the paper: 4)")
@click.option("--infer-batch", default=1, show_default=True, type=click.IntRange(1, 1024),
              help="batch of the measured inference (the paper: 1)")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="folder of run records (results/<suite>/<member>/<run>/run.json)")
@clean_errors
def profile_cmd(models, device, dtype, size, runs, warmup, train_batch, infer_batch, results):
    """Time forward and backward passes and measure training/inference memory and model size per model.

    Example: bench profile --models segnet,deeplab-largefov --device cuda --dtype fp32
    """
    from bench import architectures
    from bench.profile import run_profile
    names = [m.strip() for m in models.split(",") if m.strip()] if models else architectures.list_models()
    path = run_profile(names, device=device, dtype=dtype, size=_size(size), runs=runs, warmup=warmup,
                       results=results, log=log_line, train_batch=train_batch, infer_batch=infer_batch,
                       progress=progress_bar)
    click.echo(f"wrote {path}")


# -- report -------------------------------------------------------------------------------------------
@main.command("report")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="folder of run records (results/<suite>/<member>/<run>/run.json)")
@click.option("--out", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="folder the reports are written to (replaced whole when rendering succeeds)")
@click.option("--data-root", help=DATA_ROOT_HELP + " (for the qualitative figure)")
@record_selection
@clean_errors
def report_cmd(results, out, data_root, profile, commit, since, runs):
    """Render the paper's tables and figures from recorded runs, ours beside the published numbers.

    Of several records of the same seed and recipe only the latest is shown (the report names the others).

    Example: bench report --profile full --commit 2833e02
    """
    from bench.report import render_reports
    problems: list = []
    kept: list = []
    written = render_reports(results, out, data_root, problems=problems, profile=profile, commit=commit,
                             since=since, runs=runs, kept=kept)
    for line in problems:
        click.echo(f"skipped {line}", err=True)
    if kept:
        click.echo(f"kept {len(kept)} figure(s) it could not redraw without the dataset ({', '.join(map(str, kept))}); "
                   "give --data-root to draw them again", err=True)
    for p in written:
        click.echo(f"wrote {p}/README.md, {p}/index.html")
    if not written:
        click.echo(f"no training records under {results}; wrote {out}/README.md")


# -- check ----------------------------------------------------------------------------------------------
@main.command("check")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="folder of run records (results/<suite>/<member>/<run>/run.json)")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="a table to read, or JSON for scripts")
@click.option("--verbose", is_flag=True, help="every outcome in full, each re-scored record and superseded run too")
@click.option("--no-rescore", is_flag=True,
              help="judge the records as recorded, without re-scoring their predictions (no dataset needed); said in "
                   "the first lines. Without it, a record that cannot be re-scored is an error")
@click.option("--reinfer", is_flag=True, help="also re-test every record whose weights are present (committed beside "
              "run.json or kept under --checkpoints) from those weights: bench eval --run RECORD --reinfer for each")
@click.option("--reinfer-images", type=click.IntRange(1, None), default=None,
              help="with --reinfer: the first N test images of each record (default: all)")
@click.option("--checkpoints", default="checkpoints", show_default=True, type=click.Path(file_okay=False),
              help="with --reinfer: where weights that are not committed are kept")
@clean_errors
def check_cmd(results, data_root, fmt, verbose, no_rescore, reinfer, reinfer_images, checkpoints):
    """Regression gate: recorded results against the published numbers, and predictions re-scored.

    Example: bench check --data-root ../shared/datasets

    Example: bench check --reinfer --reinfer-images 60
    """
    from bench.check import format_check, run_check
    report = run_check(results, data_root, rescore_predictions=not no_rescore,
                       reinfer={"images": reinfer_images, "checkpoints": checkpoints} if reinfer else None)
    if fmt == "json":
        click.echo(json.dumps(report, indent=1, ensure_ascii=False))
    else:
        click.echo("\n".join(format_check(report, verbose=verbose)))
    if report["failed"]:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
