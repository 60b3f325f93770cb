/* PNG row unfiltering for 8-bit single-channel images (greyscale or palette indices: one byte per pixel),
 * the part of PNG decoding that numpy cannot vectorise; bench/png.py inflates the data and checks the
 * chunks. Filters as the PNG specification (ISO/IEC 15948, section 9.2) defines them, with bpp = 1:
 * each row is a filter type byte followed by w bytes; a is the pixel to the left, b the pixel above,
 * c the pixel above-left (0 outside the image), and arithmetic is modulo 256. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the Paeth predictor: a where pa <= pb and pa <= pc, else b where pb <= pc, else c (p = a + b - c,
 * pa = |p - a| = |b - c|, pb = |p - b| = |a - c|, pc = |p - c| = |a + b - 2c|), without branches: the
 * left neighbour a is the previous result, so this is the row's critical path */
static inline int paeth(int a, int b, int c)
{
    int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    int m = pb <= pc ? pb : pc, t = pb <= pc ? b : c;
    return pa <= m ? a : t;
}

static inline uint64_t load8(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* eight byte-wise sums modulo 256 at once */
static inline uint64_t add_bytes(uint64_t x, uint64_t y)
{
    const uint64_t high = 0x8080808080808080ULL;
    return ((x & ~high) + (y & ~high)) ^ ((x ^ y) & high);
}

#define BYTES(v) ((uint64_t)(v) * 0x0101010101010101ULL)

/* raw: h rows of 1 + w bytes; out: h rows of w bytes. Returns 0, or 1 + y for the first row y whose
 * filter type is not 0..4.
 *
 * Label maps are mostly runs of one value, so the sequential filters (Sub, Average, Paeth: each pixel
 * needs its left neighbour's result) take eight pixels at once where the result is plainly a run: a zero
 * filtered block whose predictor is the left neighbour a throughout (Sub always; Average where the row
 * above is a there, or a = 0 on the first row; Paeth where the row above is constant from the pixel
 * before the block, so b = c and pa = 0) is eight copies of a. Up adds eight bytes at once. */
int png_unfilter_1bpp(int h, int w, const unsigned char *restrict raw, unsigned char *restrict out)
{
    for (int y = 0; y < h; y++) {
        const unsigned char *restrict src = raw + (long)y * (w + 1) + 1;
        unsigned char *restrict dst = out + (long)y * w;
        const unsigned char *restrict up = y ? dst - w : NULL;
        int filter = raw[(long)y * (w + 1)], x = 1, a;
        if (filter == 0 || (filter == 2 && !up)) {
            memcpy(dst, src, w);
            continue;
        }
        if (filter == 2) {
            for (x = 0; x + 8 <= w; x += 8) {
                uint64_t v = add_bytes(load8(src + x), load8(up + x));
                memcpy(dst + x, &v, 8);
            }
            for (; x < w; x++) dst[x] = (unsigned char)(src[x] + up[x]);
            continue;
        }
        if (filter < 1 || filter > 4) return 1 + y;
        if (!up && filter == 4) filter = 1;  /* b = c = 0: the Paeth predictor is a, as Sub's */
        /* the first pixel: a = c = 0 */
        if (filter == 1) dst[0] = src[0];
        else if (filter == 3) dst[0] = (unsigned char)(src[0] + (up ? up[0] >> 1 : 0));
        else dst[0] = (unsigned char)(src[0] + up[0]);  /* Paeth with a = c = 0 predicts b */
        a = dst[0];
        while (x < w) {
            if (x + 8 <= w && load8(src + x) == 0) {
                int run = filter == 1
                          || (filter == 3 && (up ? load8(up + x) == BYTES(a) : a == 0))
                          || (filter == 4 && load8(up + x - 1) == BYTES(up[x - 1]) && up[x + 7] == up[x - 1]);
                if (run) {
                    memset(dst + x, a, 8);
                    x += 8;
                    continue;
                }
            }
            int b = up ? up[x] : 0;
            if (filter == 1) a = (src[x] + a) & 255;
            else if (filter == 3) a = (src[x] + ((a + b) >> 1)) & 255;
            else a = (src[x] + paeth(a, b, up[x - 1])) & 255;
            dst[x++] = (unsigned char)a;
        }
    }
    return 0;
}
