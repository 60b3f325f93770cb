"""Progress for long work, wherever it runs: a tqdm bar on a terminal, a notebook widget in Jupyter (tqdm.auto),
and without either (a batch job's log, a pipe) a plain line with the rate and the ETA every few seconds
(`$BENCH_PROGRESS_SECONDS`, default 30), so logs stay readable. Log lines go through `log_line`, which
prints above a live bar instead of through it.

    from bench.progress import log_line, progress_bar
    for x in progress_bar(items, desc="scoring"): ...
"""
from __future__ import annotations

import os
import sys
import time


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is no terminal, yet a widget shows)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # an IPython without a shell, or a config that cannot be read
        return False


def _mode(stream=None) -> str:
    stream = stream or sys.stderr
    if in_notebook():
        return "notebook"
    try:
        return "terminal" if stream.isatty() else "plain"
    except (AttributeError, ValueError):  # a closed or replaced stream
        return "plain"


def duration(seconds: float) -> str:
    """A duration as a person reads it: 38 s, 1 min 54 s, 2 h 05 min."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# tqdm's bar without its ETA, for work whose ETA counts more than its steps (the caller's, in the postfix)
STEPS_WITHOUT_ETA = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]"


class PlainProgress:
    """tqdm's interface (update, set_postfix, close, iteration, context manager) as plain lines: the count,
    the rate and the ETA at most every ``every`` seconds, and, for work that took that long, once more when
    it is complete."""

    def __init__(self, iterable=None, total=None, initial=0, desc="", unit="it", every=None, file=None,
                 bar_format=None, **_):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = self.start_n = initial
        self.desc, self.unit = desc, unit
        self.every = float(os.environ.get("BENCH_PROGRESS_SECONDS", 30)) if every is None else every
        self.file = file or sys.stderr
        self.postfix = ""
        self.t0 = self.last = time.monotonic()
        self.closed = False
        self.own_eta = bar_format is None or "{remaining}" in bar_format

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{self.desc}: {count} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f} %)"
        parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 0.01 else "starting")
        if self.total and rate > 0 and self.n < self.total and self.own_eta:
            parts.append(f"ETA {duration((self.total - self.n) / rate)}")
        elif self.total and self.n >= self.total:
            parts.append(f"done in {duration(elapsed)}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _emit(self):
        print(self.line(), file=self.file, flush=True)
        self.last = time.monotonic()

    def update(self, n=1):
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self._emit()
        elif self.total and self.n >= self.total and now - self.t0 >= self.every:
            self._emit()  # the closing line of work long enough to have printed before; short work stays quiet

    def set_postfix(self, ordered_dict=None, refresh=True, **kw):
        items = {**(ordered_dict or {}), **kw}
        self.postfix = " ".join(f"{k} {v}" for k, v in items.items())

    def set_description(self, desc=None, refresh=True):
        self.desc = desc or ""

    def close(self):
        self.closed = True

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)

    def __len__(self):
        return self.total or 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress_bar(iterable=None, **kw):
    """A progress bar over ``iterable`` (or ``total=``), tqdm's keywords: see the module docstring."""
    mode = _mode(kw.get("file"))
    if mode == "plain":
        return PlainProgress(iterable, **kw)
    if mode == "notebook":
        from tqdm.auto import tqdm
        return tqdm(iterable, **kw)
    from tqdm import tqdm
    return tqdm(iterable, leave=kw.pop("leave", False), dynamic_ncols=True, **kw)


def log_line(message: str) -> None:
    """Prints a log line on stdout without breaking a live progress bar (tqdm clears and redraws it)."""
    if _mode() == "terminal":
        from tqdm import tqdm
        tqdm.write(message, file=sys.stdout)
    else:
        print(message, flush=True)
