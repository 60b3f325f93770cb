"""The installed project takes no top-level name but `bench`: `architectures/` and `datasets/` are installed as
`bench.architectures` and `bench.datasets`, so a package named `datasets` (Hugging Face's, in most ML environments)
keeps its name beside ours, whichever folder the user works from."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import make_fake_camvid

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, cwd: Path, extra_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(extra_path)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_another_datasets_package_keeps_its_name_and_bench_still_works_from_any_folder(tmp_path):
    site = tmp_path / "site"  # stands for an environment where another library installed `datasets`
    (site / "datasets").mkdir(parents=True)
    (site / "datasets" / "__init__.py").write_text("OWNER = 'another library'\n")
    root = make_fake_camvid(tmp_path / "data")
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    r = _python(f"""
        import importlib.util
        import datasets
        assert datasets.OWNER == "another library", datasets.__file__
        assert importlib.util.find_spec("architectures") is None  # nothing of ours under a top-level name
        import bench
        from bench import datasets as ours
        assert ours is not datasets and ours.__name__ == "bench.datasets"
        ds = bench.get_dataset("camvid", {str(root)!r})
        print(len(ds.samples("test")), "test images;", "models:", len(bench.list_models()))
        """, cwd=elsewhere, extra_path=site)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "test images; models: 15" in r.stdout
    assert not (REPO / "datasets" / "__init__.py").read_text().count("OWNER")  # the repo's folder untouched


def test_the_repo_imports_nothing_by_its_old_top_level_names():
    old = [f"{p.relative_to(REPO)}:{i}" for d in ("bench", "architectures", "datasets", "tests", "tools")
           for p in (REPO / d).rglob("*.py") if p.name != "test_packaging.py"
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if line.lstrip().startswith(("import architectures", "import datasets", "from architectures",
                                        "from datasets"))]
    assert not old, old


def test_report_check_and_models_never_import_torch(tmp_path):
    """Reading records, the catalogue and the published tables needs no deep-learning framework: `bench report`,
    `bench check` and `bench models` run without importing torch (`bench models` in well under 3 s)."""
    r = _python(f"""
        import sys, time
        from click.testing import CliRunner
        from bench.cli import main
        t0 = time.perf_counter()
        models = CliRunner().invoke(main, ["models"])
        seconds = time.perf_counter() - t0
        assert models.exit_code == 0 and "segnet-basic" in models.output, models.output
        report = CliRunner().invoke(main, ["report", "--results", r"{REPO / 'results'}", "--out", r"{tmp_path / 'r'}"])
        assert report.exit_code == 0, report.output
        check = CliRunner().invoke(main, ["check", "--results", r"{REPO / 'results'}", "--no-rescore"])
        assert check.exit_code in (0, 1) and "bench check:" in check.output, check.output
        print("torch" in sys.modules, round(seconds, 2))
        """, tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    imported, seconds = r.stdout.split()[-2:]
    assert imported == "False"
    assert float(seconds) < 3
