"""A model of one's own in the paper's comparison (issue 49): plugins (a file or module named by --plugin or
$BENCH_PLUGINS, an installed package's entry point, `bench.register_model` in a notebook), a member added to a suite
(--add-member), the contract's defaults, and the first hour's errors."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "models.md"
TINY = {"image_size": [64, 96], "max_iters": 2, "batch_size": 2, "eval_every_iters": 1}


def _bench(args, cwd, env=None, timeout=600):
    """The `bench` command as a user runs it, in a process of its own (a plugin registers into that process only)."""
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _example():
    """docs/models.md's example: the model file and the three commands, as written."""
    text = DOCS.read_text()
    code = re.search(r"<!-- example: tiny_net.py .*?-->\n```python\n(.*?)```", text, re.S).group(1)
    block = text.split(code, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.strip().splitlines()]
    assert [c[:2] for c in commands] == [["bench", "run"], ["bench", "profile"], ["bench", "report"]]
    return code, [c[1:] for c in commands]


@pytest.mark.camvid
@pytest.mark.slow
def test_the_docs_example_runs_as_written(camvid_root, tmp_path):
    code, commands = _example()
    (tmp_path / "tiny_net.py").write_text(code)
    env = {"BENCH_DATA_ROOT": str(camvid_root)}
    for args in commands:
        r = _bench(args, tmp_path, env)
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "results").exists()  # a smoke run never writes into results/
    runs = sorted((tmp_path / "runs/smoke/results/camvid-decoder-variants").glob("*/*/run.json"))
    assert {p.parents[1].name for p in runs} == {"segnet-basic", "tiny-net"} and len(runs) == 4
    page = (tmp_path / "runs/smoke/reports/camvid-decoder-variants/README.md").read_text()
    assert "Rendered by `bench report` from `runs/smoke/results/camvid-decoder-variants/`" in page
    beyond = page.split("### Beyond the paper")[1].split("###")[0]
    rows = [line.split(" | ") for line in beyond.splitlines() if line.startswith("| TinyNet |")]
    assert len(rows) == 2  # both balancings
    for row in rows:
        params, gmacs, forward_ms = float(row[3]), float(row[4]), row[9]
        assert params == 0.012 and gmacs > 0 and float(forward_ms) > 0  # 12,299 parameters: 0.012M
    table1 = page.split("### Beyond the paper")[0]
    assert "TinyNet" not in table1  # never among the paper's rows
    index = (tmp_path / "runs/smoke/reports/README.md").read_text()
    assert "TinyNet [natural-frequency] (beyond the paper)" in index


def test_an_installed_packages_entry_point_registers_its_models(tmp_path):
    site = tmp_path / "site"
    (site / "entry_models").mkdir(parents=True)
    (site / "entry_models" / "__init__.py").write_text(
        "import bench\nfrom torch import nn\n\n\n@bench.register_model('entry-net', paper_name='EntryNet')\n"
        "def entry_net(num_classes=11, encoder_weights=None):\n    return nn.Conv2d(3, num_classes, 1)\n")
    dist = site / "entry_models-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: entry-models\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[segnet_bench.models]\nentry = entry_models\n")
    r = _bench(["models", "--pattern", "entry-*"], tmp_path, {"PYTHONPATH": str(site)})
    assert r.returncode == 0, r.stderr
    assert re.search(r"^entry-net\s+44\s+44\s", r.stdout, re.M), r.stdout  # counted from the build: 3x11+11


def test_bench_plugins_and_a_name_of_ours_refused_in_one_line(tmp_path):
    (tmp_path / "clash.py").write_text("import bench\n\n\n@bench.register_model('segnet')\n"
                                       "def mine(num_classes=11, encoder_weights=None):\n    pass\n")
    r = _bench(["models"], tmp_path, {"BENCH_PLUGINS": str(tmp_path / "clash.py")})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "model 'segnet'" in r.stderr and "one of the harness's own models" in r.stderr
    r = _bench(["models", "--plugin", "no_such_file.py"], tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == "error: plugin no_such_file.py: no such file (--plugin)"
    (tmp_path / "broken.py").write_text("import no_such_module\n")
    r = _bench(["run", "--plugin", "broken.py", "--suite", "camvid-decoder-variants"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: plugin broken.py: cannot be imported (ModuleNotFoundError: No module named "
                                "'no_such_module') (--plugin)")


@pytest.fixture
def notebook_model():
    """A model registered in this process as a notebook would, removed again afterwards."""
    import bench
    from torch import nn
    from bench.architectures import registry

    @bench.register_model("notebook-net", paper_name="NotebookNet")
    def notebook_net(num_classes=11, encoder_weights=None):
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, num_classes, 1))
    yield "notebook-net"
    registry._MODELS.pop("notebook-net", None)
    registry._META.pop("notebook-net", None)


def test_a_notebooks_model_trains_beside_the_suite_into_the_smoke_folder(notebook_model, fake_root, tmp_path,
                                                                          monkeypatch):
    import bench

    monkeypatch.chdir(tmp_path)
    records = bench.run_suite("camvid-decoder-variants", profile="smoke", members=["segnet-basic"],
                              add_members=[notebook_model], variants=["natural-frequency"], data_root=fake_root,
                              overrides=dict(TINY), log=lambda m: None, progress=None)
    assert [r["member"] for r in records] == ["segnet-basic", "notebook-net"]
    assert not (tmp_path / "results").exists()  # the API writes smoke records where the CLI does
    assert all(Path(r.folder).resolve().is_relative_to(tmp_path / "runs" / "smoke" / "results") for r in records)
    mine = records[1]
    assert mine["model"]["params"] > 0 and mine["model"]["revision"] == 1  # the contract's defaults
    assert mine["model"]["initialisation"]["weights_source"] == "the module's own initialisation"
    only = bench.run_suite("camvid-decoder-variants", profile="smoke", members=[notebook_model], seeds=(1,),
                           variants=["natural-frequency"], data_root=fake_root, overrides=dict(TINY),
                           log=lambda m: None, progress=None)  # named among members: added, alone
    assert [r["member"] for r in only] == ["notebook-net"]


def test_a_name_registered_twice_by_different_code_is_refused():
    import bench
    from bench.architectures import registry
    from bench.errors import BenchError

    @bench.register_model("twice-net")
    def first(num_classes=11, encoder_weights=None):
        return None
    try:
        with pytest.raises(BenchError, match=r"model 'twice-net' is registered twice: by .*first .* and by .*second"):
            @bench.register_model("twice-net")
            def second(num_classes=11, encoder_weights=None):
                return None
        with pytest.raises(BenchError, match="returned NoneType, not a torch.nn.Module"):
            bench.create_model("twice-net")
    finally:
        registry._MODELS.pop("twice-net", None)
        registry._META.pop("twice-net", None)


@pytest.mark.parametrize("args,message", [
    (["--suite", "camvid-decoder-variant"], "unknown suite 'camvid-decoder-variant' (did you mean "
                                            "'camvid-decoder-variants'?)"),
    (["--suite", "camvid-decoder-variants", "--members", "segnet-basik"], "unknown member 'segnet-basik' of suite "
                                                                          "camvid-decoder-variants (did you mean "
                                                                          "'segnet-basic'?)"),
    (["--suite", "camvid-decoder-variants", "--variants", "natural"], "(did you mean 'natural-frequency'?)"),
    (["--suite", "camvid-decoder-variants", "--set", "max_iter=3"], "error: --set max_iter=3: unknown recipe key "
                                                                     "'max_iter' (did you mean 'max_iters'?)"),
    (["--suite", "camvid-decoder-variants", "--set", "max_iters=-3"], "error: --set max_iters=-3: max_iters must be "
                                                                       "positive"),
    (["--suite", "camvid-decoder-variants", "--add-member", "segnet-basik"], "--add-member segnet-basik: not a "
                                                                             "registered model (did you mean "
                                                                             "'segnet-basic'?)"),
])
def test_a_misspelt_name_gets_the_close_one_and_the_option_is_blamed(args, message, tmp_path):
    from click.testing import CliRunner
    from bench.cli import main
    r = CliRunner().invoke(main, ["run", *args, "--profile", "smoke", "--results", str(tmp_path / "r")])
    assert r.exit_code == 2 and message in r.output, r.output
    assert ".toml" not in r.output.split("error:", 1)[1].split(";")[0]  # not blamed on the suite's file


def test_a_torch_and_torchvision_that_do_not_belong_together_give_one_line(monkeypatch, capsys):
    from bench import compat, entry
    assert compat.torch_pair_problem({"torch": "2.14.1+cu130", "torchvision": "0.29.1+cu130"}) is None
    assert compat.torch_pair_problem({"torch": "2.9.1", "torchvision": "0.24.1"}) is None
    line = compat.torch_pair_problem({"torch": "2.13.0+cpu", "torchvision": "0.28.0+cu130"})
    assert line == ("torchvision 0.28.0+cu130 does not match torch 2.13.0+cpu (a cu130 build beside a cpu one) and "
                    "fails when used; install the two together: pip install torch==2.13.0 torchvision==0.28.* "
                    "--index-url https://download.pytorch.org/whl/cpu")
    assert "torch 2.14.1 goes with torchvision 0.29" in compat.torch_pair_problem(
        {"torch": "2.14.1", "torchvision": "0.28.0"})
    monkeypatch.setattr(compat, "torch_pair_problem", lambda: line)
    monkeypatch.setattr(sys, "argv", ["bench", "models"])
    with pytest.raises(SystemExit) as exit_:
        entry.main()
    assert exit_.value.code == 2 and capsys.readouterr().err == f"error: {line}\n"
