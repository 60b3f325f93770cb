"""The jobs CI must show working end to end: both smoke suites on the real CamVid, `bench profile` for every
registered model on the CPU at a reduced size (256x256: DeconvNet's valid 7x7 fc6 needs pool5 larger than 7x7
for batch norm at batch 1), the training-speed benchmark, and README's commands."""
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench import architectures
from bench.cli import main
from tests.conftest import vgg16_weights_file

ROOT = Path(__file__).resolve().parents[1]


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    assert test_cmd in (ROOT / ".ci" / "run").read_text()
    main_cmd = next(b.strip() for b in blocks if "bench run --suite camvid-controlled" in b)
    assert main_cmd.startswith("python3 -m venv .venv")


def test_readme_and_docs_links_resolve_and_the_screenshots_are_linked():
    """The README is short and points to docs/ pages and the report's screenshots; every relative link resolves."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme) < 6000
    for shot in ("docs/screenshots/index.png", "docs/screenshots/camvid-controlled.png"):
        assert f"]({shot})" in readme and (ROOT / shot).stat().st_size > 10_000
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) >= 8
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http:", "https:")):
                assert (page.parent / target).exists(), f"{page.name}: {target} does not resolve"
    cpu_tip = readme.index("download.pytorch.org/whl/cpu")
    assert cpu_tip < readme.index("bench run --suite camvid-controlled")  # the CPU-only tip before the command


@pytest.fixture(scope="module")
def smoke_results(camvid_root, tmp_path_factory):
    """Both smoke suites run in-process on the real CamVid (what CI shows working end to end)."""
    base = tmp_path_factory.mktemp("smoke")
    results = base / "results"
    weights = str(vgg16_weights_file())  # as CI finds them; skipped with the reason elsewhere (no download)
    for suite in ("camvid-controlled", "camvid-decoder-variants"):
        r = CliRunner().invoke(main, ["run", "--suite", suite, "--profile", "smoke", "--data-root", str(camvid_root),
                                      "--results", str(results), "--checkpoints", str(base / "ckpt"),
                                      "--encoder-weights", weights])
        assert r.exit_code == 0, r.output[-2000:]
    return results


@pytest.mark.camvid
@pytest.mark.slow
def test_both_smoke_suites_run_every_member(smoke_results):
    r = CliRunner().invoke(main, ["runs", "--results", str(smoke_results), "--format", "json"])
    rows = json.loads(r.output)
    controlled = {x["member"] for x in rows if x["suite"] == "camvid-controlled"}
    assert controlled == {"segnet", "fcn", "fcn-learnt-deconv", "deeplab-largefov", "deeplab-largefov-densecrf",
                          "deconvnet"}  # the dense CRF over the smoke DeepLab run, on the real CamVid
    variants = {(x["member"], x["variant"]) for x in rows if x["suite"] == "camvid-decoder-variants"}
    assert len(variants) == 16


@pytest.mark.camvid
@pytest.mark.slow
def test_local_executor_gives_the_in_process_records(smoke_results, camvid_root, tmp_path):
    """Issue 18's check: each run a separate process through submitit, the same records as in-process."""
    from tests.test_dispatch import records_content
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--members", "segnet-basic,fcn-basic",
                                  "--profile", "smoke", "--executor", "local", "--max-parallel", "2",
                                  "--data-root", str(camvid_root), "--results", str(tmp_path / "results"),
                                  "--checkpoints", str(tmp_path / "ckpt"), "--jobs", str(tmp_path / "jobs")])
    assert r.exit_code == 0, r.output[-2000:]
    assert "4 of 4 run(s) recorded" in r.stdout
    ours = records_content(tmp_path / "results")
    in_process = records_content(smoke_results)
    assert len(ours) == 4 and all(ours[k] == in_process[k] for k in ours)
    shown = CliRunner().invoke(main, ["runs", "--results", str(tmp_path / "results"), "--jobs", str(tmp_path / "jobs")])
    assert shown.exit_code == 0 and shown.stdout.count(" recorded ") == 4 and "_log.out" in shown.stdout


@pytest.mark.slow
def test_profile_every_registered_model_on_cpu(tmp_path):
    r = CliRunner().invoke(main, ["profile", "--device", "cpu", "--size", "256x256", "--runs", "1", "--warmup", "0",
                                  "--train-batch", "1", "--results", str(tmp_path)])
    assert r.exit_code == 0, r.output[-2000:]
    (path,) = (tmp_path / "profile").glob("*/profile.json")
    rec = json.loads(path.read_text())
    assert [m["model"] for m in rec["models"]] == architectures.list_models()
    assert all(m["forward"]["median_ms"] > 0 and m["backward"]["median_ms"] >= 0 for m in rec["models"])


def test_training_speed_benchmark_runs(tmp_path, capsys):
    from bench.benchmarks import train_speed
    train_speed.main(["--models", "segnet-basic,deeplab-largefov", "--batch", "2", "--steps", "1", "--warmup", "1",
                      "--size", "64x96", "--device", "cpu", "--out", str(tmp_path / "speed.json")])
    out = json.loads((tmp_path / "speed.json").read_text())
    assert [r["mode"] for r in out["results"]] == ["plain", "runner"] * 2
    runner = out["results"][1]
    assert runner["speedup_over_plain"] > 0 and 0 < runner["mfu_of_measured_peak"]
    assert runner["forward_backward_ms"] > 0 and runner["optimiser_ms"] > 0 and out["measured_peak_flops"]["fp32"] > 0
    assert "img/s" in capsys.readouterr().out  # the figures are printed


def test_loop_overhead_benchmark_runs(tmp_path, capsys):
    from bench.benchmarks import loop_overhead
    loop_overhead.main(["--steps", "3", "--out", str(tmp_path / "loop.json")])
    out = json.loads((tmp_path / "loop.json").read_text())
    assert out["runner_steps_per_second"] > 0 and out["bare_steps_per_second"] > 0
    printed = capsys.readouterr().out
    assert "runner loop" in printed and "bare loop" in printed
