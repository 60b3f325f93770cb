"""The Python API: every name `bench` exports resolves, and `import bench` stays cheap (no torch)."""
import subprocess
import sys

import bench


def test_every_exported_name_resolves_to_the_function_it_names():
    for name in bench.__all__:
        obj = getattr(bench, name)
        assert getattr(obj, "__name__", name) == name, name
    assert bench.score_label_maps.__module__ == "bench.evaluate" and bench.create_model.__module__.startswith("bench.architectures")


def test_import_bench_does_not_load_torch():
    code = "import sys, bench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unknown_name_is_an_attribute_error():
    try:
        bench.no_such_function
    except AttributeError as exc:
        assert "no_such_function" in str(exc)
    else:
        raise AssertionError("bench.no_such_function resolved")


def test_every_cli_option_is_described_and_every_command_shows_an_example():
    import click
    from click.testing import CliRunner

    from bench.cli import main

    def commands(cmd, path=()):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from commands(sub, (*path, name))
        else:
            yield path, cmd

    for path, cmd in commands(main):
        undescribed = [p.opts[0] for p in cmd.params if isinstance(p, click.Option) and not p.help]
        assert not undescribed, f"bench {' '.join(path)}: {undescribed} without help"
        text = CliRunner().invoke(main, [*path, "--help"]).output
        assert "Example: bench " + path[0] in text, f"bench {' '.join(path)} --help shows no example"


def test_run_suite_returns_the_records_with_their_folders(fake_root, tmp_path):
    lines = []
    records = bench.run_suite("camvid-decoder-variants", profile="smoke", members=["segnet-basic"],
                              variants=["median-frequency"], data_root=fake_root, results=tmp_path / "results",
                              checkpoints=tmp_path / "ckpt", log=lines.append,
                              overrides={"image_size": [64, 96], "max_iters": 2, "batch_size": 2, "eval_every_iters": 1})
    (record,) = records
    assert isinstance(record, bench.RunRecord) and record["member"] == "segnet-basic"
    assert dict(record) == bench.load_record(record.folder / "run.json")
    assert (record.folder / "predictions").is_dir() and any(str(record.folder) in line for line in lines)


def test_plain_progress_prints_rate_and_eta_lines_without_a_terminal():
    import io

    from bench.progress import PlainProgress, progress_bar
    out = io.StringIO()
    bar = progress_bar(total=10, desc="segnet", file=out)  # not a terminal: plain lines
    assert isinstance(bar, PlainProgress)
    bar.every = 0.0
    bar.update(5)
    bar.set_postfix(loss="0.532")
    bar.update(5)
    first, last = out.getvalue().splitlines()
    assert first.startswith("segnet: 5/10 it (50 %), ") and "ETA" in first
    assert last.startswith("segnet: 10/10 it (100 %), ") and "done in" in last and last.endswith("loss 0.532")
    quiet = io.StringIO()
    for _ in progress_bar(range(3), desc="short", file=quiet):  # short work prints nothing
        pass
    assert quiet.getvalue() == ""


def test_the_eta_of_a_run_counts_its_evaluations_and_closing_scoring():
    """Found by trying: "ETA 38 s" on a run that took 1 min 54 s, its time spent evaluating. Hand-worked: 10 of 20
    steps at 1 s each (10 s left), two of four evaluations left at their 5 s mean (10 s), and the closing scoring of
    test (20 images) and train (30) at the validation's 5 s per 10 images (25 s): 45 s."""
    from types import SimpleNamespace

    from bench.stopping import Schedule
    from bench.train import MemberTraining
    run = SimpleNamespace(state=SimpleNamespace(iteration=10, train_seconds=10.0), eval_seconds=[4.0, 6.0],
                          sched=Schedule(20, 10, [5, 10, 15, 20], []),
                          data={"train": range(30), "val": range(10), "test": range(20)})
    assert MemberTraining.remaining_seconds(run) == 45.0
    run.eval_seconds = []
    assert MemberTraining.remaining_seconds(run) is None  # no evaluation timed yet: no guess


def test_a_bar_whose_caller_gives_the_eta_prints_only_that_one():
    import io

    from bench.progress import STEPS_WITHOUT_ETA, progress_bar
    out = io.StringIO()
    bar = progress_bar(total=10, desc="segnet", file=out, bar_format=STEPS_WITHOUT_ETA)
    bar.every = 0.0
    bar.set_postfix(ETA="1 min 20 s with evaluation")
    bar.update(5)
    line = out.getvalue().splitlines()[0]
    assert line.count("ETA") == 1 and line.endswith("ETA 1 min 20 s with evaluation")


def test_a_smoke_run_records_outside_the_committed_results_and_says_how_to_see_it(fake_root, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from bench.cli import main
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--profile", "smoke", "--members",
                                  "segnet-basic", "--variants", "median-frequency", "--data-root", str(fake_root),
                                  "--set", "max_iters=1", "--set", "image_size=[32,48]"])
    assert r.exit_code == 0, r.output
    assert list((tmp_path / "runs" / "smoke" / "results").rglob("run.json")) and not (tmp_path / "results").exists()
    hint = r.output.strip().splitlines()[-1]
    assert hint == ("see the result: bench report --results runs/smoke/results --out runs/smoke/reports "
                    f"--data-root {fake_root}, then open "
                    "runs/smoke/reports/index.html (or read runs/smoke/reports/README.md)")
    r = CliRunner().invoke(main, ["report", "--results", "runs/smoke/results", "--out", "runs/smoke/reports"])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "runs" / "smoke" / "reports" / "camvid-decoder-variants" / "README.md").read_text()
    assert "Smoke records" in page and "[s0](" in page  # the run just made, shown with the smoke banner
    assert "runs/smoke/results/" in (tmp_path / "runs" / "smoke" / "reports" / "README.md").read_text()


def test_profile_memory_summary_names_how_memory_was_measured():
    from bench.profile import memory_summary
    gpu = {"train_memory": {"batch": 4, "device_used_MB": 6803.4, "allocator_peak_MB": 6100.0},
           "inference_memory": {"batch": 1, "device_used_MB": 1052.2, "allocator_peak_MB": 800.0}}
    cpu = {"train_memory": {"batch": 4, "process_peak_rss_growth_MB": 900.6},
           "inference_memory": {"batch": 1, "process_peak_rss_growth_MB": 120.2}}
    assert memory_summary(gpu) == ("memory: training (batch 4) 6803 MB on the device (allocator peak 6100 MB), "
                                   "inference (batch 1) 1052 MB on the device (allocator peak 800 MB)")
    assert memory_summary(cpu) == "memory: training (batch 4) +901 MB process RSS, inference (batch 1) +120 MB process RSS"
