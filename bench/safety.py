"""What keeps a run's outputs whole whatever happens to the process: stop requests (SIGINT, SIGTERM) that never
cut a training step in half, checkpoints written to a temporary name and renamed, a lock per run so that two
processes never train the same run into one results folder, and output folders checked before any training.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

from bench.errors import BenchError


# -- stop requests -----------------------------------------------------------------------------------------------
class StopRequests:
    """SIGINT (Ctrl-C) and SIGTERM (`timeout`, job schedulers) during training, and any ``extra_signals`` by name
    (SIGUSR2: Slurm's warning before a job's time limit, `bench.dispatch`).

    Inside a training step (`with stop.step():`) a request waits until the step is complete, so a checkpoint
    never holds half a step; elsewhere (evaluation, BN recomputation, scoring, writing the record) it interrupts
    at once (KeyboardInterrupt) and the interrupted work is redone on resume. A second request during a step
    interrupts at once too; then `abandoned` is set and no checkpoint must be written for that moment.
    """

    def __init__(self, extra_signals: tuple = ()):
        self.requested: str | None = None
        self.abandoned = False
        self._in_step = False
        self._previous = {}
        self._signals = (signal.SIGINT, signal.SIGTERM, *(getattr(signal, name) for name in extra_signals))

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self._signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False

    def request(self, why: str) -> None:
        """A stop asked for by the program itself (tests, the plan's deadline)."""
        self.requested = self.requested or why

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested is not None and self._in_step:  # a second request: stop now, half a step or not
            self.abandoned = True
            raise KeyboardInterrupt
        self.requested = self.requested or name
        if not self._in_step:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        """A block that a stop request never cuts in half: the request takes effect when the block ends."""
        self._in_step = True
        try:
            yield
        finally:
            self._in_step = False
        if self.requested is not None:
            raise KeyboardInterrupt

    def step(self):
        """One training step, as `deferred`."""
        return self.deferred()


def _pool_worker_start():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def forked_pool(workers: int):
    """A pool of ``workers`` forked processes that ends whatever signal handlers this process has installed.

    Its workers take SIGTERM's default action and ignore SIGINT (Ctrl-C is this process's to handle): a
    handler they inherited that does not exit (a notebook's, a job scheduler's) would otherwise leave the
    pool waiting for them for ever when it terminates them. On success the pool is closed and joined (the
    workers finish their loop, no signal needed); on an error or interruption it is terminated.
    """
    import multiprocessing as mp
    pool = mp.get_context("fork").Pool(workers, _pool_worker_start)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    pool.close()
    pool.join()


# -- atomic files ------------------------------------------------------------------------------------------------
def no_space(exc: OSError) -> bool:
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)


class NoSpace(BenchError):
    """A write failed for a full disk; ``what`` names what was being written."""

    def __init__(self, message: str, what: str):
        super().__init__(message)
        self.what = what


def write_error(path: Path, exc: OSError, what: str) -> BenchError:
    """One line for a failed write: "no space left on <folder>" for a full disk (NoSpace), else the system's
    reason."""
    if no_space(exc):
        return NoSpace(f"no space left on {Path(path).parent} while writing {what} {Path(path).name}", what)
    return BenchError(f"{path}: cannot write {what} ({exc.strerror or exc})")


def save_atomic(obj, path: Path, what: str = "the checkpoint") -> None:
    """torch.save to a temporary name in the same folder, then rename: the old file stays whole until the new
    one is complete, and a failure (a full disk) leaves no temporary file behind."""
    import torch  # here, not at the top: `bench eval` writes through this module and never needs torch
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(path, exc, what) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: Path, text: str, what: str = "the file", overwrite: bool = True) -> None:
    """Text to a temporary name in the same folder, then renamed into place (or linked, refusing to replace an
    existing file, where ``overwrite`` is False)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise BenchError(f"{path}: already exists; nothing was written") from None
    except OSError as exc:
        raise write_error(path, exc, what) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def check_writable(folder: Path, what: str) -> None:
    """Creates ``folder`` if needed and writes a probe file: a read-only or unwritable output folder is found
    before training, not after hours of it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if no_space(exc):
            raise BenchError(f"no space left on {folder} ({what})") from None
        raise BenchError(f"{folder}: {what} folder is not writable ({exc.strerror or exc})") from None


# -- one process per run -------------------------------------------------------------------------------------------
class RunLock:
    """`<results>/<suite>/<member>/.lock-<run tag>` holding the pid, host and start of the process training
    that run. A second process refuses with one line naming the first; a lock left by a process that died on
    this host is stale and taken over."""

    def __init__(self, folder: Path, tag: str):
        self.path = Path(folder) / f".lock-{tag}"
        self.held = False

    def acquire(self) -> "RunLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and self._alive(holder):
                    raise BenchError(
                        f"{self.path}: this run is being trained by pid {holder.get('pid')} on "
                        f"{holder.get('host')} since {holder.get('started')}; not started twice "
                        "(if that process is gone, delete the lock file)") from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise BenchError(f"{self.path}: could not take the run lock")

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # unreadable or half-written: treat as stale

    @staticmethod
    def _alive(holder: dict) -> bool:
        if holder.get("host") != socket.gethostname():
            return True  # another machine: cannot tell, so it is held
        try:
            os.kill(int(holder.get("pid")), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, TypeError, ValueError):
            return True
        return True

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
