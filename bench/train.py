"""Training one member of a suite for one seed, top to bottom as nanoGPT's train.py: data -> model -> optimiser ->
loop (step, maybe evaluate, maybe checkpoint, deadline) -> record.

- Data are decoded once and held as uint8 tensors on the training device; each epoch is a fresh shuffle read in
  order as Caffe's data layer does (`bench.data`).
- Loss and update: class-weighted cross-entropy ignoring void, normalised by the non-void pixels, and SGD with
  the authors' parameter groups (`bench.step`, `bench.build`).
- Before each evaluation, BN population statistics are recomputed over the training set, or the running
  averages kept (`bench.inference`); validation at the recipe's cadence, test scores at fixed budgets, selection
  of the best validation G (or the last point), and the paper's stopping rule (`bench.stopping`).
- No host synchronisation per step: the loss of every step is kept on the device and read (and checked finite)
  every `sync_every` steps and at evaluation points.
- Checkpoints outside results/ every `checkpoint_minutes`, on Ctrl-C / SIGTERM and at the deadline; a stop
  request never cuts a step in half, and an interrupted evaluation is redone on resume, so a resumed run ends
  with exactly the record of an uninterrupted one (`bench.safety`, `bench.checkpoint`).
"""
from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench import distributed as dist_utils
from bench import safety, stopping
from bench.build import build_model, freeze_encoder_, make_optimizer, train_mode
from bench.checkpoint import (TrainState, checkpoint_path, load_checkpoint, remove_checkpoint, run_tag,
                              save_checkpoint, stop_if_diverged)
from bench.config import Recipe, Suite
from bench.data import Normaliser, TrainBatches, class_weight_labels, data_for
from bench.errors import BenchError
from bench.inference import full_scores, predict, quick_scores, recompute_bn_statistics
from bench.progress import STEPS_WITHOUT_ETA, duration
from bench.records import now_iso
from bench.safety import NoSpace, RunLock, StopRequests
from bench.step import autocast, make_train_step, to_layout, training_module
from bench.step_variants import chosen_variant, describe as describe_variant
from bench.stopping import Schedule


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out, not what it computes: none of these changes a number of the record (a run
    recorded at the deadline says so: its stop reason is "deadline", and it never counts as converged)."""
    checkpoint_minutes: float = 10.0  # a checkpoint at least this often (and on signal and at the deadline)
    sync_every: int = 50  # steps between reads of the loss from the device (finite check, progress bar)
    record_at_deadline: bool = False  # at the deadline, also record the run as it stands (stop reason "deadline")
    stop_signals: tuple = ()  # signals besides SIGINT and SIGTERM that stop training with a checkpoint ("SIGUSR2")
    tensorboard: str | None = None  # where live curves go (bench.curves; `bench run`: runs/tensorboard); None: none


class TimeBudgetReached(BenchError):
    """Training stopped at the wall-clock budget (--max-minutes) after writing a checkpoint."""


class RunInterrupted(BenchError):
    """Training stopped by a signal (Ctrl-C, SIGTERM: a scheduler pre-empting or requeueing the job), with a
    checkpoint where one could be written; --resume continues it. ``signal``: the signal's name."""

    def __init__(self, message: str, signal: str | None = None):
        super().__init__(message)
        self.signal = signal

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal ended (130 for Ctrl-C, 143 for
        SIGTERM), so a caller or scheduler tells an interrupted run from bad input (2); 2 where no signal stopped it."""
        sig = signal_named(self.signal)
        return 128 + int(sig) if sig is not None else 2


def signal_named(name: str | None):
    """The signal a stop request names ("SIGTERM"), or None for the program's own requests ("stop_after")."""
    import signal as signals
    sig = getattr(signals, name or "", None)
    return sig if isinstance(sig, signals.Signals) else None


def train_member(suite: Suite, member: str, recipe: Recipe, *, profile: str, seed: int, variant: str | None,
                 dataset, data_cache: dict, results: Path, checkpoints: Path, resume: bool, device,
                 encoder_weights_override: str | None = None, log=print, progress=None, stop_after: int | None = None,
                 deadline: float | None = None, options: RunOptions = RunOptions(),
                 overrides: dict | None = None) -> Path | None:
    """Trains one member for one seed; returns the published record folder (None on ranks other than 0).
    ``overrides``: the command line's recipe values (--set), recorded beside the resolved recipe."""
    with deterministic_algorithms(recipe.deterministic):
        run = MemberTraining(suite, member, recipe, profile=profile, seed=seed, variant=variant, dataset=dataset,
                             results=results, checkpoints=checkpoints, device=device, log=log, options=options,
                             overrides=overrides)
        run.prepare(data_cache, progress, encoder_weights_override, resume)
        state, stop = run.state, run.stop
        with run.lock(), stop, run.progress_bar(progress) as bar, run.interruptions(), run.curves:
            run.redo_interrupted_evaluation()
            while (reason := run.due_stop()) is None:
                it = state.iteration
                with stop.step():  # a stop request waits for the step to complete
                    x, y = run.batches(it, run.rank, run.world)
                    state.losses[it] = run.step(x, y, it)
                    state.images_trained += recipe.batch_size
                    state.iteration = it + 1
                    if stop_after is not None and stop_after <= it + 1 < run.sched.total:
                        stop.request("stop_after")  # the tests' interruption
                if run.losses_due(it + 1):
                    run.read_losses(it + 1, bar)
                    run.maybe_evaluate(it + 1)
                    run.maybe_checkpoint(it + 1)
                if deadline is not None and time.time() > deadline and it + 1 < run.sched.total:
                    reason = run.at_deadline(it + 1)
                    break
            out = run.finish(reason)
    dist_utils.barrier()
    return out


@contextlib.contextmanager
def deterministic_algorithms(on: bool):
    """torch's deterministic-algorithms setting as the recipe asks, put back as it was afterwards, so it never
    leaks into what the process does next; cuDNN's autotuner off where determinism is asked for."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if on:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = not on
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


class MemberTraining:
    """One member's training for one seed: its identity, its parts (data, model, optimiser, step, schedule,
    checkpoint) and its state, with the named pieces of `train_member`'s loop."""

    def __init__(self, suite: Suite, member: str, recipe: Recipe, *, profile, seed, variant, dataset, results,
                 checkpoints, device, log, options, overrides):
        self.suite, self.member, self.recipe = suite, member, recipe
        self.profile, self.seed, self.variant, self.dataset = profile, seed, variant, dataset
        self.results, self.checkpoints, self.device, self.options = Path(results), Path(checkpoints), device, options
        self.overrides, self.started, self.run_log, self.outer_log = overrides, time.time(), [], log
        self.rank, self.world = dist_utils.world()[:2] if dist_utils.active() else (0, 1)
        self.ckpt = checkpoint_path(self.checkpoints, suite.name, member, profile, variant, seed)
        self.stop = StopRequests(options.stop_signals)

    def log(self, message: str) -> None:
        """Every line about this run also goes into its record's log.txt."""
        self.run_log.append(f"{now_iso()} {message}")
        self.outer_log(message)

    # -- data, model, optimiser ----------------------------------------------------------------------------------
    def prepare(self, data_cache: dict, progress, encoder_weights_override, resume: bool) -> None:
        from bench.models import model_macs
        recipe, dataset, device = self.recipe, self.dataset, self.device
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        n_train = len(dataset.samples("train")[:recipe.train_subset or None])
        self.sched = Schedule.of(recipe, n_train, f"{self.suite.path}, {self.member}")  # before allocating
        self.data = data_for(recipe, dataset, device, data_cache, progress)
        # the step's variant (bench.step_variants: a layout, compiled or not, a CUDA graph), not the suite's
        self.stepper, source = chosen_variant(device, self.member, recipe.batch_size, tuple(recipe.image_size),
                                              [self.results / "benchmarks", Path("results") / "benchmarks"])
        self.step_variant = describe_variant(self.stepper, source, recipe)
        if device.type == "cuda":
            self.log(f"  {self.member}: step variant {self.stepper.name} ({source})")
        self.model, self.weights_sha = build_model(self.member, recipe, dataset, device, encoder_weights_override,
                                                   self.log, self.stepper)
        self.frozen = freeze_encoder_(self.model, recipe)  # before DDP and the optimiser see the parameters
        self.macs_per_image = model_macs(self.member, tuple(recipe.image_size), dataset.num_classes)
        train_model = training_module(self.model)
        if self.world > 1:
            dist_utils.convert_sync_batch_norm(self.model)
            train_model = torch.nn.parallel.DistributedDataParallel(
                train_model, device_ids=[device.index] if device.type == "cuda" else None)
        if recipe.compile or self.stepper.compile_mode:
            train_model = torch.compile(train_model, mode=self.stepper.compile_mode or "default")
        self.optimizer = make_optimizer(self.model, recipe, device)
        weights = dataset.class_weights(recipe.class_weighting, class_weight_labels(recipe, self.data["train"]))
        self.class_weights = torch.tensor(weights, dtype=torch.float32, device=device)
        self.step = make_train_step(self.model, train_model, self.optimizer, self.class_weights, recipe, device,
                                    dataset.void_label, self.world, self.stepper)
        self.precision = autocast(device, recipe)[1]
        self.batches = TrainBatches(self.data["train"], recipe, self.seed, dataset.void_label, device)
        self.state = self.resumed_state(resume)

    def resumed_state(self, resume: bool) -> TrainState:
        """A fresh state, or the checkpoint's where --resume continues an interrupted run."""
        state = TrainState.new(self.sched.total, self.device)
        if self.ckpt.exists():
            if not resume:
                raise BenchError(f"{self.ckpt}: a checkpoint of this run exists; pass --resume to continue it "
                                 "(or delete the file to start again)")
            state = load_checkpoint(self.ckpt, self.recipe, self.model, self.optimizer, self.device, self.sched.total)
            self.run_log[:0] = state.log  # the lines before the interruption first
            self.log(f"  resumed {self.member} from iteration {state.iteration} ({self.ckpt})")
        state.log = self.run_log
        self.last_read, self.last_checkpoint, self.segment_start = state.iteration, time.time(), None
        self.eval_seconds: list[float] = []
        self.curves = self.live_curves(state)
        return state

    def live_curves(self, state: TrainState):
        """The run's TensorBoard writer (`bench.curves`, rank 0, where the options ask for one): a resumed run
        continues in the folder its checkpoint names."""
        from bench.curves import LiveCurves, run_folder
        from bench.step import peak_flops
        self.peak = peak_flops(self.device, self.precision)
        if self.rank != 0 or not self.options.tensorboard:
            return LiveCurves(None)
        resumed = state.iteration > 0 and state.tensorboard_dir is not None
        if not resumed:
            state.tensorboard_dir = str(run_folder(self.options.tensorboard, self.suite.name, self.member,
                                                   run_tag(self.profile, self.variant, self.seed)))
            state.curves_step = state.iteration
        curves = LiveCurves(Path(state.tensorboard_dir), resumed_at=state.curves_step if resumed else 0)
        if resumed and state.curves_step < state.iteration:  # losses the interrupted process never wrote
            curves.training(state.iteration, state.losses[state.curves_step:state.iteration].float().cpu().numpy(),
                            self.optimizer.param_groups[0]["lr"], state.train_seconds, state.images_trained,
                            6 * self.macs_per_image, self.peak)
            state.curves_step = state.iteration
        return curves

    def lock(self):
        """Rank 0 records: it holds the run's lock."""
        if self.rank != 0:
            return contextlib.nullcontext()
        return RunLock(self.results / self.suite.name / self.member, run_tag(self.profile, self.variant, self.seed))

    @contextlib.contextmanager
    def progress_bar(self, progress):
        # the bar's own ETA counts steps only; the postfix's (`remaining_seconds`) counts evaluation too
        bar = progress(total=self.sched.total, initial=self.state.iteration, desc=self.member,
                       bar_format=STEPS_WITHOUT_ETA) if progress else None
        try:
            yield bar
        finally:
            if bar:
                bar.close()

    # -- the loop's pieces -------------------------------------------------------------------------------------------
    def redo_interrupted_evaluation(self) -> None:
        """An evaluation cut by an interruption is redone before training on; then the clock starts."""
        state = self.state
        if self.sched.evaluates_at(state.iteration) and state.evaluated < state.iteration:
            self.evaluate(state.iteration)
        train_mode(self.model, self.recipe)
        self.segment_start = time.perf_counter()

    def due_stop(self) -> str | None:
        """Why the run stops now, or None: its length reached (the cap), or its stopping rule met at an evaluation
        point once that evaluation is committed (rank 0 decides; `bench.stopping`). A function of the state only,
        so a run resumed after the evaluation stops where the uninterrupted one did."""
        it, recipe = self.state.iteration, self.recipe
        if it >= self.sched.total:
            return stopping.end_reason(recipe)
        if recipe.stopping == "schedule" or it not in self.sched.eval_points:  # the same on every rank
            return None
        reason = None
        if self.rank == 0 and self.state.evaluated >= it:  # the loop evaluates an evaluation point before it asks
            reason = stopping.stop_reason(recipe, self.state.val, self.state.losses[:it].cpu().numpy(), it)
        code = dist_utils.from_rank0(stopping.REASONS.index(reason) if reason else -1, self.device)
        return stopping.REASONS[code] if code >= 0 else None

    def losses_due(self, done: int) -> bool:
        """Whether the losses are read now: at an evaluation, every `sync_every` steps and at the end."""
        return (self.sched.evaluates_at(done) or done - self.last_read >= self.options.sync_every
                or done == self.sched.total)

    def read_losses(self, done: int, bar) -> None:
        """The losses since the last read, checked finite: the one host synchronisation of these steps."""
        unread = self.state.losses[self.last_read:done]
        stop_if_diverged(unread, self.last_read, self.ckpt, self.member, self.explain_divergence)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.stop_clock()
        self.curves.training(done, unread.float().cpu().numpy(), self.optimizer.param_groups[0]["lr"],
                             self.state.train_seconds, self.state.images_trained, 6 * self.macs_per_image, self.peak)
        self.state.curves_step = done
        if bar:
            left = self.remaining_seconds()
            bar.set_postfix(loss=f"{float(unread[-1]):.3f}", ep=done // self.sched.iterations_per_epoch,
                            ETA=duration(left) + " with evaluation" if left is not None else "after the first evaluation")
            bar.update(done - self.last_read)
        self.last_read = done

    def explain_divergence(self, index: int) -> str:
        """Where the run went non-finite: how the loss rose before update ``index`` (0-based) and the first layer
        whose output is non-finite in a forward pass of that update's batch with the weights as they are now."""
        from bench.nonfinite import describe_forward, describe_growth
        x, _ = self.batches(index, self.rank, self.world)
        norm = Normaliser(self.recipe.input_normalisation, self.device)
        autocast_ctx, _ = autocast(self.device, self.recipe)

        def forward():
            with autocast_ctx:
                self.model(to_layout(norm(x), self.recipe, self.device))
        growth = describe_growth(self.state.losses[:index].cpu(), index)
        return "; ".join(part for part in (growth, describe_forward(self.model, forward)) if part)

    def stop_clock(self) -> None:
        """The training time since the clock last started, added to the state; the clock starts again."""
        now = time.perf_counter()
        self.state.train_seconds += now - self.segment_start
        self.segment_start = now

    def maybe_evaluate(self, done: int) -> None:
        if self.sched.evaluates_at(done):
            started = time.perf_counter()
            self.evaluate(done)
            self.eval_seconds.append(time.perf_counter() - started)
        self.segment_start = time.perf_counter()

    def remaining_seconds(self) -> float | None:
        """The time left, evaluation included: the steps left at this run's rate, the evaluations left at the mean
        of those done, and the closing scoring (test at the selected iteration and the train split: the validation
        time scaled by their size); None before the first evaluation has been timed."""
        state, sched = self.state, self.sched
        if not self.eval_seconds or state.iteration == 0:
            return None
        per_step = state.train_seconds / state.iteration
        per_eval = sum(self.eval_seconds) / len(self.eval_seconds)
        evals_left = sum(1 for p in sched.eval_points if p > state.iteration)
        sizes = {k: len(v) for k, v in self.data.items() if hasattr(v, "__len__")}
        closing = per_eval * (sizes.get("test", 0) + sizes.get("train", 0)) / max(sizes.get("val", 1), 1)
        return (sched.total - state.iteration) * per_step + evals_left * per_eval + closing

    def maybe_checkpoint(self, done: int) -> None:
        if time.time() - self.last_checkpoint >= 60 * self.options.checkpoint_minutes and done < self.sched.total:
            self.save_checkpoint()
            self.last_checkpoint = time.time()
        self.segment_start = time.perf_counter()

    def save_checkpoint(self) -> None:
        if self.rank == 0:
            save_checkpoint(self.ckpt, self.state, self.model, self.optimizer, self.recipe, self.device,
                            self.sched.total, time.time() - self.started)

    def at_deadline(self, done: int) -> str:
        """The deadline: a checkpoint, then "deadline" (recorded as it stands) or TimeBudgetReached."""
        self.stop_clock()
        self.save_checkpoint()
        if self.options.record_at_deadline and self.state.best is not None:
            self.log(f"  {self.member}: deadline at iteration {done}; recording the run as it stands (stop reason "
                     f"\"deadline\"; checkpoint kept in {self.ckpt})")
            return "deadline"
        raise TimeBudgetReached(f"time budget reached at iteration {done} of {self.sched.total} of {self.member}; "
                                f"checkpoint saved to {self.ckpt}; run the same command (with --resume for a suite) "
                                "to continue")

    def evaluate(self, it: int) -> None:
        """Every evaluation due at iteration ``it``, committed to the state only when all of it is done, so an
        interrupted evaluation leaves the state as before it and is redone on resume."""
        if self.rank != 0:  # rank 0 evaluates; the others meet it again in the next step's gradient all-reduce
            return
        recipe, state = self.recipe, self.state
        if recipe.bn_statistics == "recompute":
            with dist_utils.local_batch_norm():
                recompute_bn_statistics(self.model, self.data["train"], recipe, self.device)
        epoch = it / self.sched.iterations_per_epoch
        line, point, budget = f"  {self.member} it {it} ep {epoch:.1f}", None, None
        if it in self.sched.eval_points:
            point = self.validation_point(it, epoch)
            line += " | val " + " ".join(f"{k} {point[k]:.2f}" for k in point if k not in ("iteration", "epoch"))
        if it in self.sched.budgets:
            budget = self.test_at_budget(it, epoch)
            line += f" | test@budget G {budget['G']:.2f} mIoU {budget['mIoU']:.2f} BF {budget['BF']:.2f}"
        best = None
        if point is not None and (state.best is None or recipe.selection == "last" or point["G"] > state.best["G"]):
            best = {"iteration": it, "epoch": epoch, "G": point["G"],
                    "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
        with self.stop.deferred():  # the commit is never cut in half by a signal
            if point is not None:
                state.val.append(point)
                safety.interruption_point("commit", it)
            if best is not None:
                state.best = best
            if budget is not None:
                state.budgets.append(budget)
            state.evaluated = it
        if point is not None:
            self.curves.validation(it, point, self.val_pred, self.data["val"], self.dataset)
        self.log(line)
        train_mode(self.model, recipe)

    def validation_point(self, it: int, epoch: float) -> dict:
        val = self.data["val"]
        pred = self.val_pred = predict(self.model, val, self.recipe, self.device)
        safety.interruption_point("validation", it)
        scores = quick_scores(pred, val, self.dataset.num_classes, self.dataset.void_label)
        if self.recipe.bf_on_val:
            scores["BF"] = full_scores(pred, val, self.dataset)["BF"]
        return {"iteration": it, "epoch": epoch, **scores}

    def test_at_budget(self, it: int, epoch: float) -> dict:
        test = self.data["test"]
        pred = predict(self.model, test, self.recipe, self.device)
        safety.interruption_point("test-at-budget", it)
        res = full_scores(pred, test, self.dataset)
        return {"iteration": it, "epoch": epoch, **{k: res[k] for k in ("G", "C", "mIoU", "BF")}}

    # -- the end -----------------------------------------------------------------------------------------------------
    def finish(self, reason: str) -> Path | None:
        """The record of the selected point (rank 0), with the selected weights kept (`bench.weights`: a
        post-processed member starts from them, `bench predict` runs them), and the checkpoint removed (kept by a
        run recorded at its deadline)."""
        from bench.training_record import record_trained_member
        if reason != "deadline":
            self.log(f"  {self.member}: stopped at iteration {self.state.iteration:,}: {reason} "
                     f"({stopping.describe_rule(self.recipe, self.sched.total)})")
        if self.rank != 0:  # rank 0 records; every rank meets at the barrier after the loop
            return None
        out = record_trained_member(self, reason)
        safety.interruption_point("recorded", self.state.iteration)
        if reason != "deadline":  # a run recorded at the deadline keeps its checkpoint: --resume continues it
            remove_checkpoint(self.ckpt)
        return out

    @contextlib.contextmanager
    def interruptions(self):
        """A signal: a checkpoint and RunInterrupted; a full disk while recording: the training kept."""
        stop = self.stop
        try:
            yield
        except KeyboardInterrupt:
            if stop.abandoned:
                raise RunInterrupted(f"stopped at once by a second signal during a step of {self.member}; no "
                                     f"checkpoint was written for this moment (the last one, if any, is {self.ckpt}; "
                                     "--resume continues from it)", stop.requested) from None
            self.save_checkpoint()
            by = f" by {stop.requested}" if signal_named(stop.requested) else ""  # a signal, not a test's stop
            raise RunInterrupted(f"interrupted at iteration {self.state.iteration} of {self.member}{by}; checkpoint "
                                 f"saved to {self.ckpt}; run the same command with --resume to continue",
                                 stop.requested) from None
        except NoSpace as exc:
            if exc.what == "the checkpoint":
                raise
            try:  # the record could not be written: keep the training
                self.save_checkpoint()
            except BenchError as again:
                raise BenchError(f"{exc}; nothing was recorded, and the checkpoint could not be written either "
                                 f"({again})") from None
            raise BenchError(f"{exc}; nothing was recorded; the training is kept in {self.ckpt} (free some space "
                             "and run the same command with --resume)") from None
