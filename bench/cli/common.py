"""What every command shares: the `bench` group, one line and exit 2 for bad input, SIGTERM as Ctrl-C, JSON never
written over an existing file."""
from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import click

from bench.errors import BenchError

from bench.records import SMOKE_RESULTS  # noqa: E402 (where smoke records go; re-exported for the commands)


def reports_for(results) -> str:
    """The report folder that goes with a results folder: reports/ for results/, else <parent>/reports for
    .../results, else <results>-reports."""
    path = Path(results)
    if path.as_posix().rstrip("/") == "results":
        return "reports"
    return (path.parent / "reports").as_posix() if path.name == "results" else f"{path.as_posix()}-reports"


def report_hint(results, data_root=None) -> str:
    """The one line after a run that says how to see its result, with the data root the run read (the report's
    qualitative figure needs the images)."""
    from bench.datasets.registry import DEFAULT_DATA_ROOT, resolve_data_root
    out = reports_for(results)
    cmd = "bench report" if out == "reports" else f"bench report --results {results} --out {out}"
    root = resolve_data_root(data_root)
    if root != DEFAULT_DATA_ROOT:
        cmd += f" --data-root {root}"
    return f"see the result: {cmd}, then open {out}/index.html (or read {out}/README.md)"


DATA_ROOT_HELP = "folder holding the datasets (default: $BENCH_DATA_ROOT, else ~/.cache/segnet-bench/datasets)"


_SIGNALLED: dict = {"SIGTERM": False}  # set by `sigterm_as_interrupt` when SIGTERM, not Ctrl-C, interrupted


def clean_errors(fn):
    """Bad input ends in one line on stderr and exit status 2, never a traceback; Ctrl-C or SIGTERM ends in one
    line and exit status 130 (143 for SIGTERM), whether training checkpointed and says so itself or the
    interruption came elsewhere, also in the middle of an import where it surfaced as another exception."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(getattr(exc, "exit_status", 2))  # a run a signal interrupted: 128 + its number
        except KeyboardInterrupt:
            _interrupted()
        except Exception as exc:
            if _SIGNALLED["SIGTERM"] or _caused_by_interrupt(exc):
                _interrupted()
            raise
    return wrapper


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _interrupted():
    by_sigterm = _SIGNALLED["SIGTERM"]
    click.echo(f"error: {'terminated (SIGTERM)' if by_sigterm else 'interrupted'}; nothing half-written was left "
               "(run again to continue)", err=True)
    sys.exit(143 if by_sigterm else 130)


def sigterm_as_interrupt(fn):
    """SIGTERM (`timeout`, job schedulers) during the command acts as Ctrl-C: training checkpoints and says so.
    The previous handler comes back when the command returns, so a process that calls the command (a test, a
    notebook) keeps its own, and its later worker processes do not inherit this one."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import signal
        import threading
        if threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)

        def _term(signum, frame):
            _SIGNALLED["SIGTERM"] = True
            raise KeyboardInterrupt
        _SIGNALLED["SIGTERM"] = False
        previous = signal.signal(signal.SIGTERM, _term)
        try:
            return fn(*args, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return wrapper


def write_json_new(path: Path, obj) -> None:
    """Writes JSON atomically; refuses to replace an existing file."""
    from bench.safety import write_text_atomic
    path = Path(path)
    if path.exists():
        raise BenchError(f"{path}: already exists; nothing was written (choose another --out)")
    write_text_atomic(path, json.dumps(obj, indent=1) + "\n", what="the scores", overwrite=False)


@click.group()
@click.version_option(package_name="segnet-bench")
def main():
    """SegNet benchmark harness: the paper's controlled comparison, measured one way."""


def _load_plugins(ctx, param, values):
    """--plugin's callback: each file or module imported before the command runs (its models registered), and
    added to $BENCH_PLUGINS for the processes the command starts; one line and exit 2 where one cannot be."""
    if not values:
        return
    from bench.architectures.registry import add_plugin
    for spec in values:
        try:
            add_plugin(spec)
        except BenchError as exc:
            click.echo(f"error: {exc} (--plugin)", err=True)
            ctx.exit(2)


PLUGIN_OPTION_HELP = ("a Python file or module that registers models (`bench.register_model`); repeatable, also "
                      "$BENCH_PLUGINS; installed packages are found through the entry-point group segnet_bench.models")


def with_plugin_option(group: click.Group) -> None:
    """Adds --plugin to every command of ``group`` and of its subgroups."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            with_plugin_option(command)
        elif not any(p.name == "plugin" for p in command.params):
            command.params.insert(0, click.Option(["--plugin"], multiple=True, is_eager=True, expose_value=False,
                                                  callback=_load_plugins, help=PLUGIN_OPTION_HELP))


def record_selection(f):
    """--profile, --commit, --since, --runs: which records `bench runs` and `bench report` take."""
    for opt in reversed([
        click.option("--profile", type=click.Choice(["full", "paper", "smoke"]), default=None,
                     help="only records of this profile"),
        click.option("--commit", default=None, help="only records made at a git commit starting with this"),
        click.option("--since", default=None, help="only records finished at or after this UTC date or time, "
                                                   "e.g. 2026-11-26 or 2026-11-26T21:00"),
        click.option("--runs", default=None, help="only these runs: comma-separated run ids or run folders"),
    ]):
        f = opt(f)
    return f


class FiniteFloat(click.FloatRange):
    """A number in a range, never NaN or infinite (click's FloatRange lets NaN through: it compares false)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


POSITIVE_MINUTES = FiniteFloat(min=0, min_open=True)  # a duration in minutes: more than zero
