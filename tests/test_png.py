"""The fast label-PNG decoder (`bench.png`) against Pillow, the reference: the same array on every file it
accepts, and None (so the caller decodes with Pillow) on everything else."""
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
from bench.png import decode_label_png
from bench.datasets.camvid import read_label_png

needs_native = pytest.mark.skipif(native.load() is None, reason=f"no C code here: {native.unavailable_reason()}")


def test_the_c_code_builds_wherever_a_compiler_exists():
    """A C file that fails to compile would silently send every caller to its slow fallback."""
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


@needs_native
@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("colour", [0, 3])
def test_every_filter_type_decodes_as_pillow_does(kind, colour):
    rng = np.random.default_rng(kind * 10 + colour)
    for h, w in ((23, 67), (9, 8), (1, 1), (1, 17), (16, 1)):
        arr = label_like(rng, h, w)
        data = encode_png(arr, [kind] * h, colour)
        got = decode_label_png(data)
        assert got is not None and got.dtype == np.uint8
        np.testing.assert_array_equal(got, pillow(data))
        np.testing.assert_array_equal(got, arr)


@needs_native
def test_mixed_filters_split_streams_and_ancillary_chunks_decode_as_pillow_does():
    rng = np.random.default_rng(7)
    for trial in range(30):
        h, w = rng.integers(1, 40), rng.integers(1, 90)
        arr = label_like(rng, h, w, noise=rng.choice([0.0, 0.01, 0.3]))
        extra = chunk(b"tEXt", b"Comment\x00made in a test") if trial % 3 == 0 else b""
        data = encode_png(arr, rng.integers(0, 5, size=h).tolist(), int(rng.choice([0, 3])),
                          idat_pieces=int(rng.integers(1, 4)), extra=extra)
        np.testing.assert_array_equal(decode_label_png(data), pillow(data))


@needs_native
def test_files_written_by_pillow_decode_as_pillow_does(camvid_test_labels):
    """Pillow's own encoder (its adaptive filters, palette and greyscale) on real CamVid annotations."""
    _, _, labels = camvid_test_labels
    for i, label in enumerate(labels[:12]):
        im = Image.fromarray(label)
        if i % 2:
            im = im.convert("P")
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=bool(i % 3 == 0), compress_level=[1, 6, 9][i % 3])
        data = buf.getvalue()
        np.testing.assert_array_equal(decode_label_png(data), pillow(data))


def test_what_it_does_not_handle_is_left_to_pillow():
    """None for another format, other bit depths and colour types, interlacing, damage or an odd stream."""
    rng = np.random.default_rng(3)
    arr = label_like(rng, 12, 20)
    good = encode_png(arr, [4] * 12)
    bad_crc = bytearray(good)
    bad_crc[-20] ^= 0xFF  # inside the IDAT data
    rgb = io.BytesIO()
    Image.fromarray(np.stack([arr] * 3, axis=-1)).save(rgb, format="PNG")
    cases = {
        "not a PNG": b"GIF89a" + good[6:],
        "damaged chunk": bytes(bad_crc),
        "truncated": good[:-30],
        "no IEND": good[:-12],
        "data after IEND": good + b"junk",
        "RGB": rgb.getvalue(),
        "16-bit": encode_png(arr, [0] * 12, depth=16),
        "animated": encode_png(arr, [0] * 12, extra=chunk(b"acTL", struct.pack(">II", 1, 0))),
        "interlaced": encode_png(arr, [0] * 12, interlace=1),
        "palette without PLTE": encode_png(arr, [0] * 12, colour=3).replace(chunk(b"PLTE", bytes(range(256)) * 3),
                                                                            b""),
    }
    raw = b"".join(filter_row(arr[y], arr[y - 1] if y else None, 0) for y in range(12))
    raw = raw[: 5 * 21] + bytes([5]) + raw[5 * 21 + 1 :]  # row 5's filter byte
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 12, 8, 0, 0, 0, 0))
    cases["unknown filter type"] = (b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(raw))
                                    + chunk(b"IEND", b""))
    for what, data in cases.items():
        assert decode_label_png(data) is None, what


def test_read_label_png_gives_pillows_answer_where_the_fast_path_declines(tmp_path):
    """Files the fast path declines still decode (through Pillow) or fail with one line naming the file."""
    rng = np.random.default_rng(5)
    arr = label_like(rng, 12, 20, k=11, noise=0.0)
    path = tmp_path / "pred.png"
    packed = b"".join(b"\x00" + bytes((arr[y, 0::2] << 4) | arr[y, 1::2]) for y in range(12))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 12, 4, 3, 0, 0, 0))
                     + chunk(b"PLTE", bytes(range(16)) * 3) + chunk(b"IDAT", zlib.compress(packed))
                     + chunk(b"IEND", b""))  # 4-bit palette indices: declined here, Pillow decodes them
    assert decode_label_png(path.read_bytes()) is None
    np.testing.assert_array_equal(read_label_png(path, (12, 20), 11), arr)
    raw = b"".join(filter_row(arr[y], arr[y - 1] if y else None, 0) for y in range(12))
    raw = raw[:21] + bytes([7]) + raw[22:]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 12, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with pytest.raises(BenchError, match=r"pred\.png: label map cannot be decoded"):
        read_label_png(path, (12, 20), 11)
    path.write_bytes(encode_png(arr, [2] * 12)[:-40])
    with pytest.raises(BenchError, match=r"pred\.png: label map cannot be decoded"):
        read_label_png(path, (12, 20), 11)
