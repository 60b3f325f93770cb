"""Provenance of records made on a copy of the tree without .git (the lent GPU machine): the source manifest."""
import shutil
import subprocess

import pytest

from bench.records import SOURCE_MANIFEST, commit_info, git_blob_id, write_source_manifest

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "bench" / "a.py").write_text("x = 1\n")
    (repo / "results" / "r.json").write_text("{}")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    return repo


def test_blob_id_is_gits(checkout):
    assert git_blob_id(checkout / "bench" / "a.py") == _git(checkout, "hash-object", "bench/a.py")


def test_copy_without_git_names_the_commit_and_detects_changed_code(checkout):
    head = _git(checkout, "rev-parse", "HEAD")
    write_source_manifest(checkout)
    shutil.rmtree(checkout / ".git")                       # what travels to the device: the files, no .git
    info = commit_info(checkout)
    assert (info["commit"], info["dirty"]) == (head, False)
    (checkout / "results" / "r.json").write_text('{"new": 1}')   # records being added do not count
    assert commit_info(checkout)["dirty"] is False
    (checkout / "bench" / "a.py").write_text("x = 2\n")
    assert commit_info(checkout)["dirty"] is True
    (checkout / "bench" / "a.py").write_text("x = 1\n")
    (checkout / SOURCE_MANIFEST).unlink()
    assert commit_info(checkout)["commit"] is None          # no git, no manifest: no commit claimed


def test_manifest_of_a_dirty_tree_stays_dirty(checkout):
    (checkout / "bench" / "a.py").write_text("x = 3\n")
    write_source_manifest(checkout)
    shutil.rmtree(checkout / ".git")
    (checkout / "bench" / "a.py").write_text("x = 1\n")
    assert commit_info(checkout)["dirty"] is True


def test_named_manifest_wins_over_an_unrelated_git(checkout, tmp_path, monkeypatch):
    head = _git(checkout, "rev-parse", "HEAD")
    manifest = write_source_manifest(checkout)
    (checkout / "bench" / "b.py").write_text("y = 1\n")             # the device's .git is at another commit
    _git(checkout, "add", ".")
    _git(checkout, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "other")
    assert commit_info(checkout)["commit"] != head
    monkeypatch.setenv("BENCH_SOURCE_MANIFEST", str(manifest))
    assert (commit_info(checkout)["commit"], commit_info(checkout)["dirty"]) == (head, False)
    monkeypatch.setenv("BENCH_SOURCE_MANIFEST", str(tmp_path / "missing.json"))
    with pytest.raises(Exception, match="missing.json"):
        commit_info(checkout)
