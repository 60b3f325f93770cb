"""A fast decoder for the one kind of PNG a label map is: 8 bits per pixel, one channel (greyscale, or palette
indices), not interlaced. Pillow decodes those too, and stays the reference: `decode_label_png` gives the
same array Pillow would (a test holds it to that on every filter type), or None for anything it does not
handle exactly (another format, a damaged chunk, an unusual stream), where the caller decodes with Pillow,
which also gives the error message. It inflates with zlib and unfilters rows in C (`bench.native`);
without the C code it always gives None. The zlib stream's Adler-32 is not recomputed (a tenth of the
time): every chunk's CRC-32 is checked, so the compressed bytes are those the encoder wrote, and the
inflated size must be exact.

Why: evaluation decodes every prediction on every run (233 per CamVid test scoring), and Pillow's decoding
with its image object is about twice the zlib inflate it needs.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from bench import native

SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY, PALETTE = 0, 3  # IHDR colour types with one sample per pixel


def _chunks(data: bytes):
    """(type, body start, body end) of each chunk after the signature, CRCs checked; None on any damage."""
    pos, out = len(SIGNATURE), []
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data):
            return None
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(data[pos + 4 : end]) != crc:
            return None
        out.append((kind, pos + 8, end))
        pos = end + 4
        if kind == b"IEND":
            return out if pos == len(data) else None
    return None


def decode_label_png(data: bytes) -> np.ndarray | None:
    """The H x W uint8 array of an 8-bit greyscale or palette PNG (the grey values, or the palette indices,
    as Pillow's ``np.array(Image.open(...))`` in mode L or P); None where this decoder does not apply or
    the file is not plainly well formed."""
    lib = native.load()
    if lib is None or not data.startswith(SIGNATURE):
        return None
    chunks = _chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or chunks[0][2] - chunks[0][1] != 13:
        return None
    w, h, depth, colour, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", data, chunks[0][1])
    if depth != 8 or colour not in (GREY, PALETTE) or (compression, filtering, interlace) != (0, 0, 0):
        return None
    if not 0 < w < 1 << 16 or not 0 < h < 1 << 16:
        return None
    kinds = [k for k, _, _ in chunks]
    if b"acTL" in kinds:  # an animated PNG: which frame Pillow shows first is its business
        return None
    idat = [i for i, k in enumerate(kinds) if k == b"IDAT"]
    if not idat or idat != list(range(idat[0], idat[-1] + 1)):  # IDAT chunks must be consecutive
        return None
    if colour == PALETTE and b"PLTE" not in kinds[: idat[0]]:
        return None
    stream = b"".join(data[a:b] for _, a, b in (chunks[i] for i in idat))
    if len(stream) < 6 or stream[0] & 0x0F != 8 or stream[1] & 0x20 or (stream[0] << 8 | stream[1]) % 31:
        return None  # not a zlib header of a deflate stream without a preset dictionary
    size = h * (w + 1)
    inflate = zlib.decompressobj(-15)  # the deflate data; its Adler-32 is not recomputed (see above)
    try:
        raw = inflate.decompress(stream[2:], size + 1)
    except zlib.error:
        return None
    if len(raw) != size or not inflate.eof or len(inflate.unused_data) != 4:
        return None
    out = np.empty((h, w), dtype=np.uint8)
    if lib.png_unfilter_1bpp(h, w, raw, out.ctypes.data):
        return None  # an unknown filter type: Pillow says so
    return out
