"""Nothing lost, nothing silently wrong (issue 12): a run interrupted at any moment and resumed ends with exactly
the record of an uninterrupted one; unwritable folders, full disks, concurrent runs, corrupt inputs and
impossible settings each end in one line, a non-zero exit and nothing half-written."""
import errno
import json
import os
import signal
import socket

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import bench.safety as safety
from bench.safety import RunLock
import bench.step as step
from bench.checkpoint import TrainingDiverged
from bench.train import RunOptions
from bench.cli import main
from bench.errors import BenchError
from bench.runner import train_suite

TINY = {"image_size": [64, 96], "max_iters": 4, "batch_size": 2, "eval_every_iters": 2, "budgets_iters": [2, 4],
        "deterministic": True}


def tiny(fake_root, base, **kw):
    args = dict(profile="smoke", members=["segnet-basic"], variants=["natural-frequency"], data_root=fake_root,
                results=base / "results", checkpoints=base / "ckpt", overrides=dict(TINY), log=lambda m: None)
    overrides = kw.pop("overrides", None)
    if overrides:
        args["overrides"] = {**TINY, **overrides}
    args.update(kw)
    return train_suite("camvid-decoder-variants", **args)


def same_record(a, b):
    ra, rb = (json.loads((f / "run.json").read_text()) for f in (a, b))
    assert ra["curves"]["loss"] == rb["curves"]["loss"]
    assert ra["curves"]["val"] == rb["curves"]["val"]
    assert ra["budgets"] == rb["budgets"]
    assert ra["selected"] == rb["selected"]
    assert ra["timing"]["images_trained"] == rb["timing"]["images_trained"]
    for k in ("G", "C", "mIoU", "BF", "confusion_matrix", "per_class"):
        assert ra["test"][k] == rb["test"][k], k
    assert ra["train"] == rb["train"]
    assert (a / "loss.npy").read_bytes() == (b / "loss.npy").read_bytes()
    for f in (a / "predictions").iterdir():
        assert f.read_bytes() == (b / "predictions" / f.name).read_bytes()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from tests.conftest import make_fake_camvid
    base = tmp_path_factory.mktemp("uninterrupted")
    root = make_fake_camvid(base / "data")
    out = {}
    for name, extra in (("two-evals", {}), ("one-eval", {"eval_every_iters": 4})):
        (out[name],) = tiny(root, base / name, overrides=extra)
    return root, out


def send_sigterm_at(monkeypatch, moment, iteration=None, times=1):
    sent = []

    def probe(m, it):
        if m == moment and (iteration is None or it == iteration) and len(sent) < times:
            sent.append((m, it))
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(safety, "interruption_point", probe)
    return sent


@pytest.mark.parametrize("moment,iteration,schedule", [
    ("step", 1, "two-evals"),            # in the middle of a step: it completes first
    ("bn-recompute", 0, "two-evals"),    # during the BN recomputation before the evaluation at iteration 2
    ("validation", 2, "two-evals"),      # during the validation scoring
    ("test-at-budget", 2, "two-evals"),  # during a test-at-budget scoring
    ("commit", 2, "two-evals"),          # while an evaluation's results go into the state (deferred)
    ("validation", 4, "one-eval"),       # the only evaluation of the run (smoke: eval_every = max_iters)
    ("final-test", None, "two-evals"),   # while scoring the selected point on test
    ("record", None, "two-evals"),       # while writing the record
])
def test_resumed_after_a_signal_at_any_moment_equals_uninterrupted(uninterrupted, tmp_path, monkeypatch, moment,
                                                                   iteration, schedule):
    root, baseline = uninterrupted
    extra = {"eval_every_iters": 4} if schedule == "one-eval" else {}
    sent = send_sigterm_at(monkeypatch, moment, iteration)
    with pytest.raises(BenchError, match=r"interrupted at iteration \d .*--resume"):
        tiny(root, tmp_path, overrides=extra)
    assert sent, f"the moment {moment} was never reached"
    assert list((tmp_path / "ckpt").rglob("*.pt"))
    assert not list((tmp_path / "results").rglob("run.json"))
    assert not [p for p in (tmp_path / "results").rglob("*") if p.name.startswith(".tmp-")]  # nothing half-written
    assert not list((tmp_path / "results").rglob(".lock-*"))
    monkeypatch.setattr(safety, "interruption_point", lambda m, it: None)
    (resumed,) = tiny(root, tmp_path, overrides=extra, resume=True)
    same_record(baseline[schedule], resumed)
    assert not list((tmp_path / "ckpt").rglob("*.pt"))


def test_a_signal_mid_step_is_deferred_until_the_step_is_complete(uninterrupted, tmp_path, monkeypatch):
    root, _ = uninterrupted
    send_sigterm_at(monkeypatch, "step", 0)
    with pytest.raises(BenchError, match="interrupted at iteration 1 "):
        tiny(root, tmp_path)
    (ckpt,) = (tmp_path / "ckpt").rglob("*.pt")
    saved = torch.load(ckpt, weights_only=False)
    assert saved["state"]["iteration"] == 1 and len(saved["state"]["losses"]) == 1
    assert saved["optimizer"]["state"]  # the step's optimizer update is in the checkpoint with its iteration


def test_a_signal_after_the_record_leaves_nothing_that_blocks(uninterrupted, tmp_path, monkeypatch):
    root, baseline = uninterrupted
    send_sigterm_at(monkeypatch, "recorded")
    with pytest.raises(BenchError, match="interrupted"):
        tiny(root, tmp_path)
    (rec,) = (tmp_path / "results").rglob("run.json")  # the record was complete: it stays
    monkeypatch.setattr(safety, "interruption_point", lambda m, it: None)
    (again,) = tiny(root, tmp_path, resume=True)  # recorded: skipped, and the stale checkpoint removed
    assert again == rec.parent and not list((tmp_path / "ckpt").rglob("*.pt"))


def test_unwritable_output_folders_are_found_before_training(fake_root, tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        bad_results, bad_ckpt = blocker / "results", blocker / "ckpt"  # a path through a file: never writable
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        bad_results, bad_ckpt = ro / "results", ro / "ckpt"
    for args, name in ((["--results", str(bad_results)], "results"), (["--checkpoints", str(bad_ckpt)], "checkpoints")):
        r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--profile", "smoke", "--members",
                                      "segnet-basic", "--data-root", str(fake_root), *args])
        assert r.exit_code == 2 and f"{name} folder is not writable" in r.output, r.output
        assert "Traceback" not in r.output


def test_what_a_killed_process_left_is_removed_by_the_next_run_and_bench_runs(fake_root, tmp_path):
    """Found by trying: SIGKILL left `.pt.tmp-<pid>` files (up to 354 MB) and `.tmp-<run>` folders that nothing
    removed. A temporary whose process is gone is removed by the next `bench run` and by `bench runs`, which say
    how much space came back; one whose process lives is left alone."""
    import socket
    import subprocess
    import sys
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{socket.gethostname()}-{int(gone.stdout)}"
    ck = tmp_path / "ck" / "camvid-decoder-variants" / "segnet-basic"
    ck.mkdir(parents=True)
    (ck / f".smoke-natural-frequency-seed0.pt.tmp-{dead}").write_bytes(bytes(3_000_000))
    left = tmp_path / "results" / "camvid-decoder-variants" / "segnet-basic" / f".tmp-smoke-seed0-20261203T0-{dead}"
    (left / "predictions").mkdir(parents=True)
    (left / "predictions" / "a.png").write_bytes(bytes(1_000_000))
    alive = ck / f".other.pt.tmp-{socket.gethostname()}-{os.getpid()}"  # being written by this process
    alive.write_bytes(b"x")
    lines = []
    (folder,) = train_suite("camvid-decoder-variants", profile="smoke", members=["segnet-basic"],
                            variants=["natural-frequency"], data_root=fake_root, results=tmp_path / "results",
                            checkpoints=tmp_path / "ck", log=lines.append)
    assert any("removed 2 temporary file(s) or folder(s) left by processes that are gone (4.0 MB freed)" in line
               for line in lines), lines
    assert alive.exists() and not left.exists() and not list(ck.glob(f"*{dead}"))
    (left / "predictions").mkdir(parents=True)
    r = CliRunner().invoke(main, ["runs", "--results", str(tmp_path / "results")])
    assert r.exit_code == 0 and "removed 1 temporary file(s) or folder(s)" in r.output and not left.exists()


def test_a_full_results_disk_is_found_before_training_and_leaves_no_lock(fake_root, tmp_path):
    """Found by trying: the writability probe wrote 0 bytes, so a full results disk passed it, and the run lock then
    failed with an OSError traceback and left an empty lock file."""
    results = tmp_path / "results"
    results.mkdir()
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    os.symlink("/dev/full", results / f".write-probe-{os.getpid()}")  # the probe lands on a full device
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--profile", "smoke", "--members",
                                  "segnet-basic", "--variants", "natural-frequency", "--data-root", str(fake_root),
                                  "--results", str(results), "--checkpoints", str(tmp_path / "ck")])
    assert r.exit_code == 2 and f"no space left on {results} (results)" in r.output, r.output
    assert "Traceback" not in r.output and not list(results.rglob(".lock-*"))


def _fill_disk_at(path):
    """The temporary file `save_atomic` writes ``path`` through, on a full device (/dev/full: every write fails
    with ENOSPC, as on a full disk)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    path.parent.mkdir(parents=True, exist_ok=True)
    from bench.safety import temporary_path
    os.symlink("/dev/full", temporary_path(path))


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(fake_root, tmp_path):
    """Found by trying: a disk that filled during torch.save gave a RuntimeError traceback and no checkpoint."""
    from bench.safety import NoSpace, save_atomic
    ckpt = tmp_path / "ckpt" / "run.pt"
    save_atomic({"iteration": 1}, ckpt)
    _fill_disk_at(ckpt)
    with pytest.raises(NoSpace, match=f"no space left on {tmp_path / 'ckpt'} while writing the checkpoint run.pt"):
        save_atomic({"iteration": 2, "weights": torch.zeros(1000)}, ckpt)
    assert torch.load(ckpt)["iteration"] == 1  # the previous checkpoint, whole
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    # through `bench run`: one line, a non-zero exit, no traceback
    _fill_disk_at(tmp_path / "ck" / "camvid-decoder-variants" / "segnet-basic" / "smoke-natural-frequency-seed0.pt")
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--profile", "smoke", "--members",
                                  "segnet-basic", "--variants", "natural-frequency", "--data-root", str(fake_root),
                                  "--results", str(tmp_path / "results"), "--checkpoints", str(tmp_path / "ck"),
                                  "--max-minutes", "0.0001"])
    assert r.exit_code != 0 and "no space left on" in r.output and "Traceback" not in r.output, r.output
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_a_full_disk_while_recording_keeps_the_training(fake_root, tmp_path, monkeypatch):
    real = np.save

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "save", full)
    with pytest.raises(BenchError, match="no space left on .*nothing was recorded; the training is kept in"):
        tiny(fake_root, tmp_path)
    monkeypatch.setattr(np, "save", real)
    assert not list((tmp_path / "results").rglob("run.json"))
    assert not [p for p in (tmp_path / "results").rglob("*") if p.name.startswith(".tmp-")]
    (folder,) = tiny(fake_root, tmp_path, resume=True)
    assert (folder / "run.json").is_file()


def _take_lock(folder, start, out):
    """One of many processes taking the same run lock at the same moment: holds it a while, or refuses."""
    import time
    from bench.safety import RunLock
    start.wait()
    try:
        with RunLock(folder, "tag"):
            out.put("held")
            time.sleep(3.0)
    except BenchError as exc:
        out.put(f"refused: {exc}")


def test_of_many_processes_taking_one_run_lock_at_once_exactly_one_holds_it(tmp_path):
    """Found by trying: a lock file created empty and filled afterwards let three of 24 concurrent takers hold it,
    each taking the others' empty file for a stale one."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    (tmp_path / ".lock-tag").write_text("")  # an empty lock file left behind, as the race found it
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_take_lock, args=(tmp_path, start, out)) for _ in range(24)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results.count("held") == 1, results
    refusals = [r for r in results if r != "held"]
    assert all(r.startswith("refused: ") and "being trained by" in r and "\n" not in r for r in refusals), refusals
    assert not (tmp_path / ".lock-tag").exists()  # released by its holder


def test_the_same_run_twice_at_once_refuses_naming_the_first(fake_root, tmp_path):
    lock_dir = tmp_path / "results" / "camvid-decoder-variants" / "segnet-basic"
    lock_dir.mkdir(parents=True)
    lock = lock_dir / ".lock-smoke-natural-frequency-seed0"
    with RunLock(lock_dir, "smoke-natural-frequency-seed0"):  # held, as by another training process
        r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--profile", "smoke", "--members",
                                      "segnet-basic", "--variants", "natural-frequency", "--data-root",
                                      str(fake_root), "--results", str(tmp_path / "results"), "--checkpoints",
                                      str(tmp_path / "ck")])
    assert r.exit_code == 2 and f"being trained by pid {os.getpid()}" in r.output, r.output
    assert not list((tmp_path / "results").rglob("run.json"))
    # a lock whose process is gone is stale: taken over
    dead = 2 ** 22 + 12345
    lock.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": "long ago"}))
    (folder,) = tiny(fake_root, tmp_path)
    assert (folder / "run.json").is_file() and not lock.exists()


@pytest.mark.parametrize("change,message", [
    (lambda t: t.replace('name = "camvid-decoder-variants"', "name = 5", 1), "name must be a string, got 5"),
    (lambda t: t.replace('variants = ["median-frequency", "natural-frequency"]', "variants = 5", 1),
     "variants must be a list of variant names, got 5"),
    (lambda t: t.replace("[variant.natural-frequency]", "[variant.natural-frequency-old]", 1)
     + "\n[variant]\nnatural-frequency = 3\n", "[variant.natural-frequency] must be a table of recipe values, got 3"),
], ids=["name", "variants", "variant-table"])
def test_a_malformed_suite_file_is_refused_before_anything_is_made(fake_root, tmp_path, change, message):
    """Found by trying: `variants = 5`, a variant table holding 3 or `name = 5` gave tracebacks (the last after 30 s
    of work, leaving empty folders)."""
    from bench.config import SUITES_DIR
    text = (SUITES_DIR / "camvid-decoder-variants.toml").read_text()
    suite = tmp_path / "bad.toml"
    suite.write_text(change(text))
    assert suite.read_text() != text
    r = CliRunner().invoke(main, ["run", "--suite", str(suite), "--profile", "smoke", "--data-root", str(fake_root),
                                  "--results", str(tmp_path / "r"), "--checkpoints", str(tmp_path / "ck")])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() and not (tmp_path / "ck").exists()


@pytest.mark.parametrize("args", [["run", "--suite", "camvid-decoder-variants", "--executor", "local",
                                   "--time-limit", "nan"],
                                  ["run", "--suite", "camvid-decoder-variants", "--executor", "local",
                                   "--time-limit", "-5"],
                                  ["run", "--suite", "camvid-decoder-variants", "--executor", "local",
                                   "--max-parallel", "0"],
                                  ["eval", "--predictions", "p", "--workers", "0"]])
def test_numeric_options_have_ranges_and_refuse_non_finite_values(tmp_path, args):
    r = CliRunner().invoke(main, args + ["--data-root", str(tmp_path)])
    assert r.exit_code == 2 and "Invalid value" in r.output and "Traceback" not in r.output, r.output


@pytest.mark.parametrize("after", [0.5, 1.2])
def test_sigterm_while_the_command_is_still_importing_ends_in_one_line(fake_root, tmp_path, after):
    """Found by trying: SIGTERM while torch was still being imported gave chained tracebacks and exit status 1. The
    handler is installed first; the command ends with one line and exit status 143 (128 + SIGTERM)."""
    import subprocess
    import sys
    import time
    code = "from bench.entry import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", "--suite", "camvid-decoder-variants", "--profile",
                             "smoke", "--data-root", str(fake_root), "--results", str(tmp_path / "r"),
                             "--checkpoints", str(tmp_path / "ck")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(after)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, (proc.returncode, err[-2000:], out[-2000:])
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "SIGTERM" in err, err


def test_a_sigterm_the_caller_had_blocked_still_stops_the_command(fake_root, tmp_path):
    """Found by CI (exit status 0, nothing on stderr): a SIGTERM sent to the command went unseen and the run
    ended normally. A signal mask is inherited through exec: a caller with SIGTERM blocked (here, on purpose)
    hands it on, and the command unblocks it, so a pending or later SIGTERM still stops it."""
    import subprocess
    import sys
    code = ("import os, signal\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
            "os.kill(os.getpid(), signal.SIGTERM)  # pending: blocked, as a caller's mask would keep it\n"
            "from bench.entry import main; main()\n")
    r = subprocess.run([sys.executable, "-c", code, "run", "--suite", "camvid-decoder-variants", "--profile", "smoke",
                        "--data-root", str(fake_root), "--results", str(tmp_path / "r"), "--checkpoints",
                        str(tmp_path / "ck")], capture_output=True, text=True, timeout=240)
    assert r.returncode == 143 and "SIGTERM" in r.stderr, (r.returncode, r.stderr[-2000:])
    assert not (tmp_path / "r").exists()


def test_a_run_sigterm_stopped_with_a_checkpoint_exits_143(fake_root, tmp_path):
    """A scheduler tells an interrupted run from bad input by its exit status: a run stopped by SIGTERM in a
    training step checkpoints, says so in one line and exits 143 (128 + SIGTERM), as a shell reports it."""
    import subprocess
    import sys
    code = ("import os, signal\n"
            "from bench import safety\n"
            "def probe(moment, it):\n"
            "    if moment == 'step' and it == 0:\n"
            "        os.kill(os.getpid(), signal.SIGTERM)\n"
            "safety.interruption_point = probe\n"
            "from bench.entry import main; main()\n")
    r = subprocess.run([sys.executable, "-c", code, "run", "--suite", "camvid-decoder-variants", "--profile", "smoke",
                        "--members", "segnet-basic", "--data-root", str(fake_root), "--results", str(tmp_path / "r"),
                        "--checkpoints", str(tmp_path / "ck")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 143, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "interrupted at iteration 1 of segnet-basic by SIGTERM; checkpoint saved" in r.stderr
    assert list((tmp_path / "ck").rglob("*.pt")) and not list((tmp_path / "r").rglob("run.json"))


def test_the_exit_status_of_an_interrupted_run_names_its_signal():
    from bench.train import RunInterrupted
    assert RunInterrupted("m", "SIGINT").exit_status == 130
    assert RunInterrupted("m", "SIGTERM").exit_status == 143
    assert RunInterrupted("m", "SIGUSR2").exit_status == 128 + int(signal.SIGUSR2)
    assert RunInterrupted("m", "stop_after").exit_status == 2  # the program's own request: no signal
    assert RunInterrupted("m").exit_status == 2


@pytest.mark.parametrize("setting,message", [
    ("lr=nan", "lr must be a finite number"),
    ("lr=inf", "lr must be a finite number"),
    ("momentum=nan", "momentum must be a finite number"),
    ("max_iters=1000000000000", "beyond any run"),
    ("budgets_iters=[99999999999]", "beyond any run"),
])
def test_impossible_settings_are_refused(fake_root, tmp_path, setting, message):
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-controlled", "--profile", "smoke", "--data-root",
                                  str(fake_root), "--results", str(tmp_path / "r"), "--set", setting])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_too_many_evaluations_refused_before_allocating(fake_root, tmp_path):
    with pytest.raises(BenchError, match="evaluations"):
        tiny(fake_root, tmp_path, overrides={"max_iters": 9_000_000, "eval_every_iters": 1})
    assert not list(tmp_path.rglob("*.pt"))


def nan_loss(monkeypatch, at: int, onwards: bool = False):
    """The training loss becomes nan at the ``at``-th step (and every later one with ``onwards``); returns the
    real loss function."""
    real = step.seg_loss_sum
    calls = []

    def poisoned(logits, labels, w, void):
        loss, valid = real(logits, labels, w, void)
        calls.append(1)
        hit = len(calls) >= at if onwards else len(calls) == at
        return (loss * float("nan") if hit else loss), valid
    monkeypatch.setattr(step, "seg_loss_sum", poisoned)
    return real


def test_a_diverged_run_moves_its_checkpoint_aside(fake_root, tmp_path, monkeypatch):
    real = nan_loss(monkeypatch, at=3)
    every_step = RunOptions(checkpoint_minutes=0, sync_every=1)  # a checkpoint after iterations 1 and 2
    with pytest.raises(BenchError, match=r"training loss became nan at iteration 3 \(.*\); not recorded; its "
                                         r"checkpoint was moved to .*diverged-it3.pt so the next run starts afresh") as e:
        tiny(fake_root, tmp_path, options=every_step)
    # where (issue 48): the poisoned loss jumped at once, and its nan update reached every weight
    assert "became non-finite at once" in str(e.value)
    assert "first non-finite layer output in a forward pass of that batch: encoder.stages.0.0 (Conv2d)" in str(e.value)
    names = sorted(p.name for p in (tmp_path / "ckpt").rglob("*.pt"))
    assert names == ["smoke-natural-frequency-seed0.diverged-it3.pt"]
    monkeypatch.setattr(step, "seg_loss_sum", real)
    (folder,) = tiny(fake_root, tmp_path)  # not blocked by "a checkpoint of this run exists"
    assert (folder / "run.json").is_file()


def test_an_interruption_after_an_unread_divergence_writes_no_checkpoint(fake_root, tmp_path, monkeypatch):
    """Found on the CPU: a run stopped between loss reads saved a checkpoint of a model whose loss was nan."""
    nan_loss(monkeypatch, at=2, onwards=True)
    never_read = RunOptions(sync_every=1000)  # the interruption comes before any read of the losses
    no_evaluation_before = {"max_iters": 6, "eval_every_iters": 6, "budgets_iters": [6]}
    with pytest.raises(TrainingDiverged, match="training loss became nan at iteration 2; not recorded"):
        tiny(fake_root, tmp_path, stop_after=3, overrides=no_evaluation_before, options=never_read)
    assert not list((tmp_path / "ckpt").rglob("*.pt"))


@pytest.mark.parametrize("args,message", [
    (["--device", "tpu"], "not a device"),
    (["--device", "meta"], "only cpu and cuda"),
    (["--device", "nonsense"], "not a device"),
    (["--max-minutes", "-1"], "must be a positive number"),
    (["--checkpoint-minutes", "nan"], "must be a number >= 0"),
])
def test_bad_run_options(fake_root, tmp_path, args, message):
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-controlled", "--profile", "smoke", "--data-root",
                                  str(fake_root), "--results", str(tmp_path / "r"), *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_a_truncated_checkpoint_is_one_line(fake_root, tmp_path):
    with pytest.raises(BenchError, match="interrupted"):
        tiny(fake_root, tmp_path, stop_after=2)
    (ck,) = (tmp_path / "ckpt").rglob("*.pt")
    ck.write_bytes(ck.read_bytes()[:1000])
    args = ["run", "--suite", "camvid-decoder-variants", "--profile", "smoke", "--members", "segnet-basic",
            "--variants", "natural-frequency", "--data-root", str(fake_root), "--results", str(tmp_path / "results"),
            "--checkpoints", str(tmp_path / "ckpt"), "--resume"]
    for k, v in TINY.items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "checkpoint cannot be read" in r.output and str(ck) in r.output, r.output


def test_non_tensor_weights_and_bad_suite_types_are_one_line(fake_root, tmp_path):
    w = tmp_path / "w.pth"
    torch.save({"features.0.weight": [1, 2, 3]}, w)
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-controlled", "--profile", "smoke", "--members", "segnet",
                                  "--data-root", str(fake_root), "--results", str(tmp_path / "r"),
                                  "--checkpoints", str(tmp_path / "c"), "--encoder-weights", str(w)])
    assert r.exit_code == 2 and "not tensors" in r.output and "Traceback" not in r.output, r.output
    for body, message in (("recipe = 5\n", "[recipe] must be a table"),
                          ("[recipe]\nmax_iters = 2\neval_every_iters = 1\n[profiles]\nfull = 3\n",
                           "[profiles.full] must be a table"),
                          ("profiles = 3\n[recipe]\nmax_iters = 2\neval_every_iters = 1\n", "profiles must be a table")):
        suite = tmp_path / "s.toml"
        suite.write_text('name = "x"\ndataset = "camvid"\nmembers = ["segnet"]\n' + body)
        r = CliRunner().invoke(main, ["run", "--suite", str(suite), "--profile", "smoke", "--data-root", str(fake_root)])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, (body, r.output)


# -- reports, gates and listings on damaged records -------------------------------------------------------------
@pytest.fixture
def one_record(uninterrupted, tmp_path):
    import shutil
    root, baseline = uninterrupted
    results = tmp_path / "results"
    dest = results / "camvid-decoder-variants" / "segnet-basic" / baseline["two-evals"].name
    shutil.copytree(baseline["two-evals"], dest)
    from bench.seal import seal_records
    seal_records(results, [dest])  # as `bench run` seals what it records
    return root, results, dest


def _damaged_copies(results, good):
    import shutil
    no_test = good.parent / (good.name + "-notest")
    shutil.copytree(good, no_test)
    rec = json.loads((no_test / "run.json").read_text())
    del rec["test"]
    (no_test / "run.json").write_text(json.dumps(rec))
    no_cm = good.parent / (good.name + "-nocm")
    shutil.copytree(good, no_cm)
    rec = json.loads((no_cm / "run.json").read_text())
    del rec["test"]["confusion_matrix"]
    (no_cm / "run.json").write_text(json.dumps(rec))
    prof = results / "profile" / "cpu-broken"
    prof.mkdir(parents=True)
    (prof / "profile.json").write_text('{"models": [')
    return no_test, no_cm, prof / "profile.json"


def test_runs_and_check_name_records_missing_fields(one_record):
    root, results, good = one_record
    no_test, no_cm, prof = _damaged_copies(results, good)
    r = CliRunner().invoke(main, ["runs", "--results", str(results)])
    assert r.exit_code == 0 and "Traceback" not in r.output + r.stderr
    assert f"{no_test / 'run.json'}: run record lacks test" in r.stderr
    assert f"{no_cm / 'run.json'}: run record lacks test.confusion_matrix" in r.stderr
    assert len([line for line in r.stdout.splitlines() if "segnet-basic" in line]) == 1  # the good one, listed
    r = CliRunner().invoke(main, ["check", "--results", str(results), "--data-root", str(root)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    fails = [line for line in r.output.splitlines() if line.startswith("fail")]
    assert any("lacks test" in line for line in fails) and any(str(prof) in line for line in fails)


def test_check_on_a_missing_results_folder_fails(tmp_path):
    r = CliRunner().invoke(main, ["check", "--results", str(tmp_path / "typo")])
    assert r.exit_code == 2 and "results folder not found" in r.output


def test_report_skips_unusable_files_naming_them(one_record, tmp_path):
    root, results, good = one_record
    no_test, _, prof = _damaged_copies(results, good)
    victim = sorted((good / "predictions").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:40])  # a truncated prediction PNG
    out = tmp_path / "reports"
    r = CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(out),
                                                  "--data-root", str(root)])
    assert r.exit_code == 0, r.output + r.stderr
    assert "Traceback" not in r.stderr
    for name in (str(no_test / "run.json"), str(prof), str(victim)):
        assert name in r.stderr, name
    md = (out / "camvid-decoder-variants" / "README.md").read_text()
    assert "Skipped:" in md and str(victim) in md
    assert "Skipped (unusable files)" in (out / "README.md").read_text()


def test_report_failure_leaves_the_previous_report_whole(one_record, tmp_path, monkeypatch):
    import bench.report as report
    import bench.report.render as render
    root, results, _ = one_record
    out = tmp_path / "reports"
    (out / "camvid-decoder-variants").mkdir(parents=True)
    (out / "camvid-decoder-variants" / "README.md").write_text("the previous report")

    def broken(*a, **k):
        raise RuntimeError("renderer failed half-way")
    monkeypatch.setattr(render, "figure_per_class", broken)
    with pytest.raises(RuntimeError):
        report.render_reports(results, out, root)
    assert (out / "camvid-decoder-variants" / "README.md").read_text() == "the previous report"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".reports")) == []
    monkeypatch.undo()
    report.render_reports(results, out, root)
    assert "Table 1" in (out / "camvid-decoder-variants" / "README.md").read_text()


def test_data_verify_with_an_empty_or_shortened_checksum_list_fails(fake_root):
    manifest = fake_root / "CamVid.sha256"
    lines = manifest.read_text().splitlines()
    manifest.write_text("")
    r = CliRunner().invoke(main, ["data", "verify", "camvid", "--data-root", str(fake_root)])
    assert r.exit_code == 2 and "holds no checksums" in r.output
    manifest.write_text("\n".join(lines[:-3]) + "\n")
    r = CliRunner().invoke(main, ["data", "verify", "camvid", "--data-root", str(fake_root)])
    assert r.exit_code == 2 and "does not cover 3 of the dataset's" in r.output
    manifest.write_text("\n".join(lines) + "\n")
    r = CliRunner().invoke(main, ["data", "verify", "camvid", "--data-root", str(fake_root)])
    assert r.exit_code == 0 and f"{len(lines)} files match" in r.output


def test_eval_on_all_void_ground_truth_says_undefined(fake_root, tmp_path):
    from PIL import Image
    cam = fake_root / "CamVid"
    preds = tmp_path / "preds"
    preds.mkdir()
    for p in (cam / "testannot").iterdir():
        Image.fromarray(np.full((360, 480), 11, np.uint8)).save(p)
        Image.fromarray(np.zeros((360, 480), np.uint8)).save(preds / p.name)
    r = CliRunner().invoke(main, ["eval", "--data-root", str(fake_root), "--predictions", str(preds),
                                  "--out", str(tmp_path / "s.json")])
    assert r.exit_code == 2 and "undefined" in r.output and "0.00" not in r.output
    assert not (tmp_path / "s.json").exists()


def test_divergence_is_located_at_the_first_layer_whose_output_is_non_finite():
    """Issue 48: the one-line error names the layer and how the loss rose, not only the iteration."""
    from bench.nonfinite import describe_forward, describe_growth
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    x = torch.ones(2, 3, 4, 4)
    assert describe_forward(model, lambda: model(x)) == ("a forward pass of that batch stays finite; "
                                                          "every parameter finite")
    with torch.no_grad():
        model[2].weight[0, 0] = float("inf")
    assert describe_forward(model, lambda: model(x)) == (
        "first non-finite layer output in a forward pass of that batch: 2 (Conv2d); 1 of 6 parameter tensors "
        "non-finite, the first 2.weight")
    losses = torch.tensor([3.0, 1.5, 1.4, 3.3, 17.5, 2206.0, float("nan")])
    assert describe_growth(losses[:6], 6) == "the loss rose from 1.4 at iteration 3 to 2.21e+03 at iteration 6 (3 updates)"
    assert describe_growth(losses[:1], 1) == "the loss was 3 at iteration 1 and became non-finite at once"
    assert describe_growth(losses[:0], 0) == ""
