"""Label maps (`bench.labelmap`): decoded by imagecodecs where they are 8-bit greyscale and by Pillow otherwise,
always to the array Pillow, the reference, gives; written as 8-bit PNGs; bad files refused with one line."""
from __future__ import annotations

import io
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bench import native
from bench.errors import BenchError
from bench.labelmap import ground_truth_at, read_label_png, resize_label, write_label_map


def test_the_c_code_is_built_at_install_wherever_a_compiler_exists():
    """The install compiles bench/_native/matching.c; a C file that failed to build would silently send every
    caller to its slow path."""
    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("no C compiler here")
    assert native.load() is not None, native.unavailable_reason()


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filter_row(row, up, kind):
    """One row filtered as the PNG specification says (one byte per pixel; written straight from it)."""
    out = []
    for x, v in enumerate(row):
        a = int(row[x - 1]) if x else 0
        b = int(up[x]) if up is not None else 0
        c = int(up[x - 1]) if up is not None and x else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((int(v) - pred) % 256)
    return bytes([kind] + out)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(arr, filters, colour=0, idat_pieces=1, extra=b"", depth=8, interlace=0):
    """An 8-bit greyscale (colour 0) or palette (colour 3) PNG of ``arr`` with row y filtered by filters[y]."""
    h, w = arr.shape
    raw = b"".join(filter_row(arr[y], arr[y - 1] if y else None, filters[y]) for y in range(h))
    stream = zlib.compress(raw, 6)
    cut = np.linspace(0, len(stream), idat_pieces + 1).astype(int)
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace))
    if colour == 3:
        body += chunk(b"PLTE", bytes(range(256)) * 3)
    body += extra
    body += b"".join(chunk(b"IDAT", stream[cut[i] : cut[i + 1]]) for i in range(idat_pieces))
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


def pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode in ("L", "P")
        return np.array(im)


def label_like(rng, h, w, k=12, noise=0.03):
    """Regions of one value with ragged edges and noise: every filter meets runs and changes."""
    coarse = rng.integers(0, k, size=(-(-h // 7), -(-w // 11)))
    out = np.repeat(np.repeat(coarse, 7, axis=0), 11, axis=1)[:h, :w]
    hit = rng.random((h, w)) < noise
    out[hit] = rng.integers(0, 256, size=int(hit.sum()))
    return out.astype(np.uint8)




def read(tmp_path, data: bytes, name="map.png", **kw) -> np.ndarray:
    path = tmp_path / name
    path.write_bytes(data)
    return read_label_png(path, max_label=255, **kw)


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("colour", [0, 3])
def test_every_filter_type_decodes_as_pillow_does(tmp_path, kind, colour):
    rng = np.random.default_rng(kind * 10 + colour)
    for h, w in ((23, 67), (9, 8), (1, 1), (1, 17), (16, 1)):
        arr = label_like(rng, h, w)
        data = encode_png(arr, [kind] * h, colour)
        got = read(tmp_path, data)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, pillow(data))
        np.testing.assert_array_equal(got, arr)


def test_mixed_filters_split_streams_and_ancillary_chunks_decode_as_pillow_does(tmp_path):
    rng = np.random.default_rng(7)
    for trial in range(30):
        h, w = rng.integers(1, 40), rng.integers(1, 90)
        arr = label_like(rng, h, w, noise=rng.choice([0.0, 0.01, 0.3]))
        extra = chunk(b"tEXt", b"Comment\x00made in a test") if trial % 3 == 0 else b""
        data = encode_png(arr, rng.integers(0, 5, size=h).tolist(), int(rng.choice([0, 3])),
                          idat_pieces=int(rng.integers(1, 4)), extra=extra)
        np.testing.assert_array_equal(read(tmp_path, data), pillow(data))


def test_files_written_by_pillow_decode_as_pillow_does(tmp_path, camvid_test_labels):
    """Pillow's own encoder (its adaptive filters, palette and greyscale) on real CamVid annotations."""
    _, _, labels = camvid_test_labels
    for i, label in enumerate(labels[:12]):
        im = Image.fromarray(label)
        if i % 2:
            im = im.convert("P")
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=bool(i % 3 == 0), compress_level=[1, 6, 9][i % 3])
        np.testing.assert_array_equal(read(tmp_path, buf.getvalue()), label)


def test_a_written_label_map_reads_back_exactly(tmp_path):
    arr = label_like(np.random.default_rng(1), 37, 53, k=12, noise=0.0)
    write_label_map(tmp_path / "p.png", arr)
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png", (37, 53), 11), arr)
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "L"
    with pytest.raises(ValueError, match="H x W uint8"):
        write_label_map(tmp_path / "q.png", arr.astype(np.int32))


def test_other_kinds_of_png_are_decoded_by_pillow(tmp_path):
    """4-bit palette indices: not the usual label map, still the right indices (through Pillow)."""
    arr = label_like(np.random.default_rng(5), 12, 20, k=11, noise=0.0)
    packed = b"".join(b"\x00" + bytes((arr[y, 0::2] << 4) | arr[y, 1::2]) for y in range(12))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 12, 4, 3, 0, 0, 0))
            + chunk(b"PLTE", bytes(range(16)) * 3) + chunk(b"IDAT", zlib.compress(packed)) + chunk(b"IEND", b""))
    np.testing.assert_array_equal(read(tmp_path, data), arr)


def test_bad_files_fail_with_one_line_naming_the_file(tmp_path):
    rng = np.random.default_rng(3)
    arr = label_like(rng, 12, 20, k=11, noise=0.0)
    good = encode_png(arr, [4] * 12)
    raw = b"".join(filter_row(arr[y], arr[y - 1] if y else None, 0) for y in range(12))
    raw = raw[:21] + bytes([7]) + raw[22:]  # row 1's filter byte: no such filter
    rgb = io.BytesIO()
    Image.fromarray(np.stack([arr] * 3, axis=-1)).save(rgb, format="PNG")
    cases = {
        "unknown filter": (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 12, 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""), "cannot be decoded"),
        "truncated": (good[:-40], "cannot be decoded"),
        "not a PNG": (b"JUNK00" + good[6:], "cannot be decoded"),
        "RGB": (rgb.getvalue(), "must be an 8-bit single-channel PNG, found mode RGB"),
    }
    for what, (data, message) in cases.items():
        (tmp_path / "pred.png").write_bytes(data)
        with pytest.raises(BenchError, match=rf"pred\.png: label map ({message})") as exc:
            read_label_png(tmp_path / "pred.png", (12, 20), 11)
        assert "\n" not in str(exc.value), what
    write_label_map(tmp_path / "pred.png", arr)
    with pytest.raises(BenchError, match=r"pred\.png: label map is 12x20, expected 12x21"):
        read_label_png(tmp_path / "pred.png", (12, 21), 11)
    write_label_map(tmp_path / "pred.png", np.full((12, 20), 12, np.uint8))
    with pytest.raises(BenchError, match=r"pred\.png: label map has label value 12, above 11"):
        read_label_png(tmp_path / "pred.png", (12, 20), 11)
    with pytest.raises(BenchError, match=r"missing\.png: label map file is missing"):
        read_label_png(tmp_path / "missing.png")


def test_ground_truth_at_the_recorded_size_or_as_it_is():
    gt = [np.arange(12, dtype=np.uint8).reshape(3, 4), np.zeros((6, 8), np.uint8)]
    same = ground_truth_at(gt, (3, 4), at_original_size=True)
    assert [g.shape for g in same] == [(3, 4), (6, 8)]
    resized = ground_truth_at(gt, (6, 8), at_original_size=False)
    assert [g.shape for g in resized] == [(6, 8), (6, 8)]
    np.testing.assert_array_equal(resized[0], resize_label(gt[0], (6, 8)))
    np.testing.assert_array_equal(resized[0][::2, ::2], gt[0])
