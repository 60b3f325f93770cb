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
