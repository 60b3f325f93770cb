"""What keeps a run's outputs whole whatever happens to the process: stop requests (SIGINT, SIGTERM) that never
cut a training step in half, checkpoints written to a temporary name and renamed, a lock per run so that two
processes never train the same run into one results folder, and output folders checked before any training.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

from bench.errors import BenchError


# -- stop requests -----------------------------------------------------------------------------------------------
def interruption_point(moment: str, iteration: int) -> None:
    """A named moment of a run where a stop request may arrive (the fault tests send signals from here, by
    replacing this function): step, bn-recompute, validation, test-at-budget, commit (of an evaluation's results
    to the state), final-test, record, recorded."""


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
    """A `ForkedPool` of ``workers`` forked processes that ends whatever happens and whatever signal handlers
    this process has installed.

    Its workers take SIGTERM's default action and ignore SIGINT (Ctrl-C is this process's to handle). On success
    the pool is shut down and waited for. On an error or interruption its workers are killed (their results are
    not wanted) and the pool, a `concurrent.futures.ProcessPoolExecutor`, notices them gone and ends. Found by
    CI: `multiprocessing.Pool`'s terminate waited for ever on a queue lock that a worker it killed in the middle
    of sending a result still held.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    executor = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_pool_worker_start)
    try:
        yield ForkedPool(executor)
    except BaseException:
        for p in list((executor._processes or {}).values()):
            with contextlib.suppress(OSError, ValueError):  # one that has already ended
                p.kill()
        executor.shutdown(wait=True)  # its manager thread sees the workers gone, fails what was left and joins them
        raise
    executor.shutdown(wait=True)


class ForkedPool:
    """`map` over a process pool, whose results come in order as they are ready. Nothing is cancelled in this
    process: Python 3.11's executor, killed after a future was cancelled, fails in its own thread with
    InvalidStateError and leaves its workers unjoined (its `map` cancels what is left when a result raises)."""

    def __init__(self, executor):
        self._executor = executor

    def map(self, fn, items, chunksize: int = 1):
        items = list(items)
        futures = [self._executor.submit(_apply_each, fn, items[i:i + chunksize])
                   for i in range(0, len(items), chunksize)]
        for future in futures:
            yield from future.result()


def _apply_each(fn, items) -> list:
    return [fn(item) for item in items]


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


# -- temporaries ---------------------------------------------------------------------------------------------------
def owner_tag() -> str:
    """`<host>-<pid>`: the end of every temporary name this process writes, so that a later process can tell one
    whose writer is gone (killed with SIGKILL, say) from one still being written."""
    return f"{socket.gethostname()}-{os.getpid()}"


def temporary_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: `.<name>.tmp-<host>-<pid>` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{owner_tag()}")


def stale_temporaries(*folders: Path) -> list[Path]:
    """Temporary files and folders under ``folders`` written by a process of this host that is gone."""
    import re
    pattern = re.compile(rf"^\..*tmp-.*{re.escape(socket.gethostname())}-(\d+)$")
    out = []
    for folder in folders:
        if not Path(folder).is_dir():
            continue
        for p in Path(folder).rglob(".*tmp-*"):
            m = pattern.match(p.name)
            if m and not _process_alive(int(m.group(1))) and not any(p.is_relative_to(q) for q in out):
                out.append(p)
    return out


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(*folders: Path) -> tuple[int, int]:
    """Removes what `stale_temporaries` finds; (how many, bytes freed)."""
    count, freed = 0, 0
    for p in stale_temporaries(*folders):
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                freed += sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
                shutil.rmtree(p)
            else:
                freed += p.lstat().st_size if not p.is_symlink() else 0
                p.unlink()
            count += 1
    return count, freed


def describe_removed(count: int, freed: int) -> str:
    return (f"removed {count} temporary file(s) or folder(s) left by processes that are gone "
            f"({freed / 1e6:,.1f} MB freed)")


def save_atomic(obj, path: Path, what: str = "the checkpoint") -> None:
    """torch.save to a temporary name in the same folder, then rename: the old file stays whole until the new
    one is complete, and a failure (a full disk: "no space left on <folder>") leaves no temporary file behind.
    Serialised in memory first: torch's own file writer reports a full disk as a RuntimeError without errno."""
    import torch  # here, not at the top: `bench eval` writes through this module and never needs torch
    path = Path(path)
    tmp = temporary_path(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(buf.getbuffer())
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
    tmp = temporary_path(path)
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


PROBE_BYTES = 1 << 20  # what the probe writes and syncs: a full disk refuses it (an empty file it would not)


def check_writable(folder: Path, what: str) -> None:
    """Creates ``folder`` if needed and writes (and syncs) a probe file of PROBE_BYTES: a read-only, unwritable or
    full output folder is found before training, not after hours of it."""
    folder = Path(folder)
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with open(probe, "wb") as f:
                f.write(bytes(PROBE_BYTES))
                f.flush()
                os.fsync(f.fileno())
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
    except OSError as exc:
        if no_space(exc):
            raise BenchError(f"no space left on {folder} ({what})") from None
        raise BenchError(f"{folder}: {what} folder is not writable ({exc.strerror or exc})") from None


# -- one process per run -------------------------------------------------------------------------------------------
class RunLocked(BenchError):
    """The run is being trained by another process (its run lock is held): a plan goes on to its next run."""


class RunLock:
    """`<results>/<suite>/<member>/.lock-<run tag>`: an OS lock (flock) on that file, held by the process training the
    run, which writes its pid, host and start into it. A second process refuses with one line naming the first; the
    OS releases the lock of a process that dies however it dies, so a lock file left behind is simply taken over.
    Taking the lock is one system call on one file: of any number of processes trying at once, exactly one holds
    it (flock is honoured across the hosts of an NFS share by its lock manager)."""

    def __init__(self, folder: Path, tag: str):
        self.path = Path(folder) / f".lock-{tag}"
        self.held = False
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLocked(f"{self.path}: this run is being trained by {self._describe(self._holder())}; not "
                                "started twice") from None
            if not self._same_file(fd):  # the file we locked was released and removed meanwhile: take the new one
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(me).encode())
            except OSError as exc:  # a full disk: the lock goes with its file, nothing is left behind
                with contextlib.suppress(OSError):
                    self.path.unlink()
                os.close(fd)
                raise write_error(self.path, exc, "the run lock") from None
            self._fd, self.held = fd, True
            return self
        raise BenchError(f"{self.path}: could not take the run lock")

    def _same_file(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # the holder has not written its details yet

    @staticmethod
    def _describe(holder: dict | None) -> str:
        if not holder:
            return "another process (it has just started)"
        return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # before the lock goes: a process waiting on this file sees it gone and retries
            os.close(self._fd)
            self._fd, self.held = None, False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
