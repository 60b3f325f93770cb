/* Exact maximum bipartite matching for the BF boundary score, and the whole per-image BF count.
 *
 * Left nodes are predicted boundary pixels (one per pixel and class), right nodes ground-truth
 * boundary pixels; an edge joins a left and a right node of the same class whose pixels lie within
 * the tolerance disk. A maximum one-to-one matching is BSDS correspondPixels' rule.
 *
 * Two entry points, both built on demand by bench/matching.py (SciPy's max-flow is the fallback and
 * the test oracle):
 *
 * - max_matching(): the graph as a dense n_left x n_off table `hits` (hits[u * n_off + j] is the right
 *   node at the j-th offset of the disk from u, nearest first, or -1); writes match_left /
 *   match_right (-1 = unmatched) and returns the matching size (-1 when out of memory).
 * - bf_counts(): from the two label maps straight to the per-class counts BF needs (boundary pixels
 *   of prediction and ground truth, matched pixels of each). No per-class pass over the image and no
 *   edge list up front: a pixel's boundary is a bit set of classes, and the graph stays implicit (the
 *   right neighbours of a left node are read off the ground-truth bit sets in the disk's rows when a
 *   search asks for them; a row segment with no ground-truth boundary of the class is skipped with one
 *   read). Predicted pixels with no ground-truth boundary of their class in the disk's bounding box
 *   never enter the matching.
 *
 * bf_counts' one-to-one rule runs on bit planes (match_on_planes, kuhn_match_planes: one bit per pixel
 * and class, a disk row read with one or two word operations, each right node examined once per search)
 * where a disk row fits a word and the planes fit the caller's work plane: CamVid, SUN RGB-D and any
 * image up to a few thousand pixels wide with up to ~30 classes. Otherwise (very large tolerances, many
 * classes on small images) it runs on the implicit graph below.
 *
 * All use one search, kuhn_match (the proof of exactness is at the function). A maximum matching's
 * size per class is unique (the classes are disconnected), so the counts are exact whichever maximum
 * matching is found.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static inline int popcount64(uint64_t x)  /* portable: no -mpopcnt needed in the shared build */
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}

/* A bipartite graph whose adjacency lists are adj[start[u] .. start[u] + deg[u]). Either all given
 * (max_matching), or implicit and built per node on first need (bf_counts: start[u] = -1 until then).
 *
 * Implicit: left node u is pixel left_pix[u] of class left_class[u] in planes of row length wp; its
 * neighbours are the pixels of the disk around it (row dy = -pad .. pad holds dx = lo[dy] .. hi[dy])
 * whose ground-truth bit set gb has the class; right node ids are gbase[pixel] + the number of lower
 * classes in the pixel's bit set. near[q]: the classes of gb in the row segment q - pad .. q + pad, so a
 * disk row without the class costs one read. free_bits: the classes of each pixel whose right node is
 * still free (a right node never becomes free again), so a lookahead reads one word per pixel. */
typedef struct {
    long *start;
    int *deg;
    int *adj;
    long n_adj, cap;
    int pad;
    long wp;
    const int *lo, *hi;
    const uint64_t *gb, *near;
    uint64_t *free_bits;
    const int *gbase;
    const long *left_pix;
    const unsigned char *left_class;
} Graph;

static inline int right_id(const Graph *g, long q, uint64_t bit)
{
    return g->gbase[q] + popcount64(g->gb[q] & (bit - 1));
}

/* The depth-first descent tries a node's neighbours latest pixel first (bottom row first, right to
 * left): towards the part of the image no search has reached yet, where the free pixels are. */
static int build_adjacency(Graph *g, int u)
{
    long need = g->n_adj + (long)(2 * g->pad + 1) * (2 * g->pad + 1);
    if (need > g->cap) {
        long c = g->cap > 0 ? g->cap : 1 << 16;
        while (c < need) c *= 2;
        int *p = realloc(g->adj, sizeof(int) * c);
        if (!p) return -1;
        g->adj = p;
        g->cap = c;
    }
    long p = g->left_pix[u];
    uint64_t bit = (uint64_t)1 << g->left_class[u];
    g->start[u] = g->n_adj;
    for (int dy = g->pad; dy >= -g->pad; dy--) {
        long row = p + dy * g->wp;
        if (!(g->near[row] & bit)) continue;
        for (int dx = g->hi[dy + g->pad]; dx >= g->lo[dy + g->pad]; dx--) {
            if (g->gb[row + dx] & bit) g->adj[g->n_adj++] = right_id(g, row + dx, bit);
        }
    }
    g->deg[u] = (int)(g->n_adj - g->start[u]);
    return 0;
}

/* The first free right neighbour of implicit node u, earliest pixel first (top row first, left to right),
 * which leaves the later pixels, where the next searches start, free (the greedy that is optimal on a
 * line); marks it taken in free_bits. -1 when none. */
static int take_free_neighbour(Graph *g, int u)
{
    long p = g->left_pix[u];
    uint64_t bit = (uint64_t)1 << g->left_class[u];
    for (int dy = -g->pad; dy <= g->pad; dy++) {
        long row = p + dy * g->wp;
        if (!(g->near[row] & bit)) continue;
        for (int dx = g->lo[dy + g->pad]; dx <= g->hi[dy + g->pad]; dx++) {
            if (g->free_bits[row + dx] & bit) {
                g->free_bits[row + dx] &= ~bit;
                return right_id(g, row + dx, bit);
            }
        }
    }
    return -1;
}

/* Augments along the search stack: every stacked left node takes the right node it continued through. */
static void flip_path(const int *stack, int top, const int *via, int *match_left, int *match_right)
{
    for (int i = top - 1; i >= 0; i--) {
        int a = stack[i];
        match_left[a] = via[a];
        match_right[via[a]] = a;
    }
}

/* Kuhn's augmenting paths: one depth-first search per left node in index order (raster order for
 * bf_counts, so a search mostly meets the nodes just before it), each node first looking for a free
 * right neighbour (lookahead) before descending. A node's lookahead fails once at most (a matched right
 * node stays matched), and on implicit graphs reads free_bits and stops at the first free neighbour, so
 * most nodes never have their adjacency built.
 *
 * A search that fails retires every left node it visited for good. Proof: let D be the retired nodes;
 * invariant: every right neighbour of D is matched to a node of D. A failed search from r visited S and
 * examined every neighbour of S: all were matched (no free one was found) to nodes of S or of D (it does
 * not descend into D), so D + S keeps the invariant. An alternating path that reaches a neighbour of D
 * continues to its partner in D and from there only to neighbours of D, so it never ends at a free right
 * node: no augmenting path passes through D, and no later augmentation changes D's partners. Skipping D
 * therefore loses no augmenting path; each left node is a root once; when every free left node has failed
 * there is no augmenting path, and the matching is maximum (Berge). Failed searches cost O(E) in all. */
static int kuhn_match(Graph *g, int n_left, int n_right, int *match_left, int *match_right)
{
    int size = 0;
    for (int u = 0; u < n_left; u++) match_left[u] = -1;
    for (int v = 0; v < n_right; v++) match_right[v] = -1;
    if (n_left == 0 || n_right == 0) return 0;
    int *mark = calloc(n_left, sizeof(int));  /* the search that visited a node; -1: retired */
    int *iter = malloc(sizeof(int) * n_left);
    int *via = malloc(sizeof(int) * n_left);   /* the right node a stacked node continues through */
    int *stack = malloc(sizeof(int) * n_left);
    int *visited = malloc(sizeof(int) * n_left);
    unsigned char *saturated = calloc(n_left, 1);  /* every right neighbour matched: no lookahead needed */
    int status = -1;
    if (!mark || !iter || !via || !stack || !visited || !saturated) goto done;
    int stamp = 0;
    for (int root = 0; root < n_left; root++) {
        int top = 0, n_visited = 0, augmented = 0;
        stamp++;
        mark[root] = stamp;
        iter[root] = -1;  /* -1: lookahead not done yet */
        stack[top++] = root;
        visited[n_visited++] = root;
        while (top > 0) {
            int x = stack[top - 1];
            if (iter[x] < 0) {  /* lookahead: a free right neighbour ends the search */
                int free_v = -1;
                if (saturated[x]) {
                    /* its lookahead failed before, and a matched right node stays matched */
                } else if (!g->free_bits) {
                    const int *row = g->adj + g->start[x];
                    for (int j = 0; j < g->deg[x]; j++) if (match_right[row[j]] < 0) { free_v = row[j]; break; }
                } else {
                    free_v = take_free_neighbour(g, x);
                }
                if (free_v >= 0) {
                    via[x] = free_v;
                    flip_path(stack, top, via, match_left, match_right);
                    size++;
                    augmented = 1;
                    break;
                }
                saturated[x] = 1;
                if (g->start[x] < 0 && build_adjacency(g, x) < 0) goto done;
                iter[x] = 0;
            }
            const int *row = g->adj + g->start[x];
            int w = -1;
            for (; iter[x] < g->deg[x]; iter[x]++) {
                w = match_right[row[iter[x]]];
                if (mark[w] >= 0 && mark[w] != stamp) break;
            }
            if (iter[x] >= g->deg[x]) { top--; if (top > 0) iter[stack[top - 1]]++; continue; }
            via[x] = row[iter[x]];
            mark[w] = stamp;
            iter[w] = -1;
            stack[top++] = w;
            visited[n_visited++] = w;
        }
        if (!augmented) for (int i = 0; i < n_visited; i++) mark[visited[i]] = -1;
    }
    status = size;
done:
    free(mark); free(iter); free(via); free(stack); free(visited); free(saturated);
    return status;
}

/* The same search on bit planes, for bf_counts when a disk row fits a word (2 pad + 1 <= 64). Plane n of
 * `free` holds the ground-truth boundary of class n as bit rows (bit x of row y: pixel (y, x) of the
 * padded image) whose bits clear as right nodes are taken; plane n of `unseen` starts as the same
 * boundary, and its bits clear as the current search examines right nodes (for good in a failed search;
 * set again after an augmenting one). A disk row of a node is one or two word reads, so a lookahead costs
 * 2 pad + 1 reads, and the depth-first descent walks a node's neighbours straight off `unseen` (bottom
 * row first, right to left, as build_adjacency): the disks of neighbouring nodes overlap, and a right
 * node is examined once per search, the seen ones costing nothing.
 *
 * A greedy pass gives every left node, in raster order, its earliest free neighbour where one is left;
 * the searches then start from the left nodes it left unmatched (on CamVid this cuts the right nodes the
 * augmenting searches examine by a quarter on smooth predictions, by two thirds on noisy ones). Kuhn's
 * method is exact from any starting matching: a left node with no augmenting path never gains one
 * through later augmentations.
 *
 * Exactness, with kuhn_match's proof: a left node is visited only through its partner (the root has
 * none), so "partner examined" is "visited"; the right nodes a failed search examined are all matched
 * to nodes it visited or retired, so they are exactly the neighbours of the retired set D, whose
 * partners never change: leaving them seen for good skips D and nothing else. */
typedef struct {
    int pad, ww;  /* disk radius; words per bit row */
    long wp, plane;  /* row length of the padded image; words per class plane */
    const int *lo, *hi;
    uint64_t *free, *unseen;
    const uint64_t *gb;
    const int *gbase;
    const int *left_y, *left_x;  /* padded coordinates */
    const unsigned char *left_class;
    const uint64_t *mask;  /* mask[dy + pad]: the disk's row dy in a window of bits 0 .. 2 pad (bit j: dx = j - pad) */
} Planes;

/* the 2 pad + 1 bits of a bit row from bit b0 = x - pad on (lowest first), as window() prepared them */
typedef struct { long word; int shift, two; } Window;

static inline Window window(long b0, int width)
{
    Window w = {b0 >> 6, (int)(b0 & 63), 0};
    w.two = w.shift && w.shift + width > 64;
    return w;
}

static inline uint64_t window_bits(const uint64_t *row, Window w)
{
    uint64_t v = row[w.word] >> w.shift;
    return w.two ? v | row[w.word + 1] << (64 - w.shift) : v;
}

static inline int plane_right_id(const Planes *g, long q, int n)
{
    uint64_t lower = g->gb[q] & (((uint64_t)1 << n) - 1);
    return g->gbase[q] + (lower ? ((lower & (lower - 1)) ? popcount64(lower) : 1) : 0);
}

/* take the first free right neighbour of u, earliest pixel first (top row first, left to right: as
 * take_free_neighbour); -1 when none */
static int planes_take_free(const Planes *g, int u)
{
    int n = g->left_class[u], y = g->left_y[u], x = g->left_x[u];
    Window win = window(x - g->pad, 2 * g->pad + 1);
    uint64_t *row = g->free + n * g->plane + (long)(y - g->pad) * g->ww;
    for (int r = 0; r <= 2 * g->pad; r++, row += g->ww) {
        uint64_t v = window_bits(row, win) & g->mask[r];
        if (v) {
            long b = x - g->pad + __builtin_ctzll(v);
            row[b >> 6] &= ~((uint64_t)1 << (b & 63));
            return plane_right_id(g, (long)(y - g->pad + r) * g->wp + b, n);
        }
    }
    return -1;
}

/* the next unseen neighbour of u in the descent order, marked seen (its bit index into `unseen` appended to
 * `examined`), or -1; the state is the row (dy) and the bits of it not yet tried */
static inline int planes_next(const Planes *g, int u, int *it_dy, uint64_t *it_bits, long *examined, int *n_examined)
{
    int n = g->left_class[u], y = g->left_y[u], x = g->left_x[u];
    int dy = it_dy[u];
    uint64_t bits = it_bits[u];
    Window win = window(x - g->pad, 2 * g->pad + 1);
    const uint64_t *plane = g->unseen + n * g->plane + (long)y * g->ww;
    for (;;) {
        while (!bits) {
            if (--dy < -g->pad) { it_dy[u] = dy; it_bits[u] = 0; return -1; }
            bits = window_bits(plane + (long)dy * g->ww, win) & g->mask[dy + g->pad];
        }
        int j = 63 - __builtin_clzll(bits);
        bits &= ~((uint64_t)1 << j);
        long b = x - g->pad + j;
        long word = n * g->plane + (long)(y + dy) * g->ww + (b >> 6);
        uint64_t bit = (uint64_t)1 << (b & 63);
        if (!(g->unseen[word] & bit)) continue;  /* seen by a descendant since the row was read */
        g->unseen[word] &= ~bit;
        examined[(*n_examined)++] = word * 64 + (b & 63);
        it_dy[u] = dy;
        it_bits[u] = bits;
        return plane_right_id(g, (long)(y + dy) * g->wp + b, n);
    }
}

static int kuhn_match_planes(const Planes *g, int n_left, int n_right, int *match_left, int *match_right)
{
    int size = 0;
    for (int u = 0; u < n_left; u++) match_left[u] = -1;
    for (int v = 0; v < n_right; v++) match_right[v] = -1;
    if (n_left == 0 || n_right == 0) return 0;
    int *it_dy = malloc(sizeof(int) * n_left);  /* pending: lookahead not done yet in this search */
    uint64_t *it_bits = malloc(sizeof(uint64_t) * n_left);
    int *via = malloc(sizeof(int) * n_left);
    int *stack = malloc(sizeof(int) * n_left);
    long *examined = malloc(sizeof(long) * n_right);
    unsigned char *saturated = calloc(n_left, 1);
    int status = -1;
    if (!it_dy || !it_bits || !via || !stack || !examined || !saturated) goto done;
    const int pending = g->pad + 2, start = g->pad + 1;
    for (int root = 0; root < n_left; root++) {  /* a greedy pass first: far fewer and shorter augmenting paths */
        int v = planes_take_free(g, root);
        if (v >= 0) { match_left[root] = v; match_right[v] = root; size++; }
    }
    for (int root = 0; root < n_left; root++) {
        if (match_left[root] >= 0) continue;
        int top = 0, n_examined = 0, augmented = 0;
        it_dy[root] = pending;
        stack[top++] = root;
        while (top > 0) {
            int x = stack[top - 1];
            if (it_dy[x] == pending) {
                int free_v = saturated[x] ? -1 : planes_take_free(g, x);
                if (free_v >= 0) {
                    via[x] = free_v;
                    flip_path(stack, top, via, match_left, match_right);
                    size++;
                    augmented = 1;
                    break;
                }
                saturated[x] = 1;
                it_dy[x] = start;
                it_bits[x] = 0;
            }
            int v = planes_next(g, x, it_dy, it_bits, examined, &n_examined);
            if (v < 0) { top--; continue; }
            int w = match_right[v];  /* a saturated node's neighbours are all matched */
            via[x] = v;
            it_dy[w] = pending;
            stack[top++] = w;
        }
        if (augmented) for (int i = 0; i < n_examined; i++) g->unseen[examined[i] >> 6] |= (uint64_t)1 << (examined[i] & 63);
    }
    status = size;
done:
    free(it_dy); free(it_bits); free(via); free(stack); free(examined); free(saturated);
    return status;
}

/* dst = src with every set bit spread at least `pad` places both ways (pad < 64): a superset of the
 * row's dilation by pad, which is all a filter needs */
static void spread_row(uint64_t *dst, const uint64_t *src, int ww, int pad)
{
    memcpy(dst, src, sizeof(uint64_t) * ww);
    for (int done = 0, s = 1; done < pad; done += s, s = done + 1 < 64 - done ? done + 1 : 63 - done) {
        uint64_t carry = 0;  /* dst[i - 1] before this step */
        for (int i = 0; i < ww; i++) {
            uint64_t d = dst[i], next = i + 1 < ww ? dst[i + 1] : 0;
            dst[i] = d | d << s | carry >> (64 - s) | d >> s | next << (64 - s);
            carry = d;
        }
    }
}

/* bf_counts' one-to-one rule on bit planes (kuhn_match_planes), from the boundary bit sets pb and gb and
 * their rows' nonzero pixels nz_pred and nz_gt. `planes` holds 3 K class planes of (h + 2 pad) bit rows of
 * ww words: the ground-truth boundary (which becomes the free pixels), a dilated copy (which becomes the
 * unseen pixels) and scratch. A predicted (pixel, class) is a left node when the dilated plane has the
 * pixel: the bounding box of its disk holds a ground-truth pixel of the class. Adds to out as bf_counts;
 * returns 0, or -1 when out of memory. */
static int match_on_planes(int h, int w, int k, int pad, const int *lo, const int *hi, long wp, int ww,
                           const uint64_t *pb, const uint64_t *gb, const uint64_t *nz_pred, const uint64_t *nz_gt,
                           uint64_t *planes, int *gbase, long long *out,
                           double *seconds, double t0)
{
    long plane = (long)(h + 2 * pad) * ww;
    int hp = h + 2 * pad;
    uint64_t mask[2 * pad + 1];  /* the disk's rows as windows of 2 pad + 1 bits (2 pad + 1 <= 63 here) */
    for (int r = 0; r <= 2 * pad; r++)
        mask[r] = hi[r] < lo[r] ? 0 : ((((uint64_t)1 << (hi[r] - lo[r] + 1)) - 1) << (lo[r] + pad));
    memset(planes, 0, sizeof(uint64_t) * k * plane);
    unsigned char *has = calloc((size_t)k * hp, 1);  /* has[n * hp + r]: row r of plane n has a pixel */
    if (!has) return -1;
    int n_right = 0, nw = (w + 63) / 64;
    for (int y = 0; y < h; y++)
        for (int i = 0; i < nw; i++)
            for (uint64_t z = nz_gt[(long)y * nw + i]; z; z &= z - 1) {
                long x = pad + 64 * i + __builtin_ctzll(z), p = (y + pad) * wp + x;
                uint64_t b = gb[p];
                gbase[p] = n_right;
                long at = (y + pad) * ww + (x >> 6);
                for (uint64_t t = b; t; t &= t - 1) {
                    int n = __builtin_ctzll(t);
                    out[k + n]++;
                    n_right++;
                    planes[n * plane + at] |= (uint64_t)1 << (x & 63);
                    has[n * hp + y + pad] = 1;
                }
            }
    /* near (in the unseen planes' place until the matching starts): the ground-truth planes dilated by at
     * least the disk's bounding box, so one bit says whether a predicted pixel can have a neighbour. Only
     * the rows with a pixel are spread and gathered (a class's boundary crosses few rows of the image):
     * the spread rows of the others are never read. */
    uint64_t *near = planes + k * plane, *spread = planes + 2 * k * plane;
    for (long r = 0; r < (long)k * hp; r++) if (has[r]) spread_row(spread + r * ww, planes + r * ww, ww, pad);
    for (int n = 0; n < k; n++) {
        for (int y = 0; y < h; y++) {
            uint64_t *dst = near + n * plane + (long)(y + pad) * ww;
            const uint64_t *src = spread + n * plane + (long)y * ww;  /* rows y + pad - pad .. y + pad + pad */
            const unsigned char *src_has = has + (long)n * hp + y;
            memset(dst, 0, sizeof(uint64_t) * ww);
            for (int dy = 0; dy <= 2 * pad; dy++)
                if (src_has[dy]) for (int i = 0; i < ww; i++) dst[i] |= src[(long)dy * ww + i];
        }
    }
    long cap = 1 << 14;
    int n_left = 0;
    int *left_y = malloc(sizeof(int) * cap), *left_x = malloc(sizeof(int) * cap);
    unsigned char *left_class = malloc(cap);
    int *match_left = NULL, *match_right = NULL;
    int status = -1;
    if (!left_y || !left_x || !left_class) goto done;
    for (int y = 0; y < h; y++)
        for (int i = 0; i < nw; i++)
            for (uint64_t z = nz_pred[(long)y * nw + i]; z; z &= z - 1) {
                int x = pad + 64 * i + __builtin_ctzll(z);
                uint64_t b = pb[(y + pad) * wp + x];
                for (uint64_t t = b; t; t &= t - 1) {
                    int n = __builtin_ctzll(t);
                    out[n]++;
                    if (!((near[n * plane + (long)(y + pad) * ww + (x >> 6)] >> (x & 63)) & 1)) continue;
                    if (n_left == cap) {
                        cap *= 2;
                        int *ny = realloc(left_y, sizeof(int) * cap);
                        if (ny) left_y = ny;
                        int *nx = realloc(left_x, sizeof(int) * cap);
                        if (nx) left_x = nx;
                        unsigned char *nc = realloc(left_class, cap);
                        if (nc) left_class = nc;
                        if (!ny || !nx || !nc) goto done;
                    }
                    left_y[n_left] = y + pad;
                    left_x[n_left] = x;
                    left_class[n_left] = (unsigned char)n;
                    n_left++;
                }
            }
    memcpy(planes + k * plane, planes, sizeof(uint64_t) * k * plane);  /* free, unseen: both start as the boundary */
    match_left = malloc(sizeof(int) * (n_left > 0 ? n_left : 1));
    match_right = malloc(sizeof(int) * (n_right > 0 ? n_right : 1));
    if (!match_left || !match_right) goto done;
    if (seconds) { double t1 = now(); seconds[1] += t1 - t0; t0 = t1; }
    Planes g = {.pad = pad, .ww = ww, .wp = wp, .plane = plane, .lo = lo, .hi = hi, .free = planes,
                .unseen = planes + k * plane, .gb = gb, .gbase = gbase,
                .left_y = left_y, .left_x = left_x, .left_class = left_class, .mask = mask};
    if (kuhn_match_planes(&g, n_left, n_right, match_left, match_right) < 0) goto done;
    if (seconds) seconds[2] += now() - t0;
    for (int u = 0; u < n_left; u++) {
        if (match_left[u] >= 0) { out[2 * k + left_class[u]]++; out[3 * k + left_class[u]]++; }
    }
    status = 0;
done:
    free(has); free(left_y); free(left_x); free(left_class); free(match_left); free(match_right);
    return status;
}

int max_matching(int n_left, int n_right, int n_off, const int *hits, int *match_left, int *match_right)
{
    long n_edges = 0;
    for (long i = 0; i < (long)n_left * n_off; i++) n_edges += hits[i] >= 0;
    long *start = malloc(sizeof(long) * (n_left > 0 ? n_left : 1));
    int *deg = malloc(sizeof(int) * (n_left > 0 ? n_left : 1));
    int *adj = malloc(sizeof(int) * (n_edges > 0 ? n_edges : 1));
    if (!start || !deg || !adj) { free(start); free(deg); free(adj); return -1; }
    long e = 0;
    for (int u = 0; u < n_left; u++) {
        start[u] = e;
        const int *row = hits + (long)u * n_off;
        for (int j = 0; j < n_off; j++) if (row[j] >= 0) adj[e++] = row[j];
        deg[u] = (int)(e - start[u]);
    }
    Graph g = {.start = start, .deg = deg, .adj = adj, .n_adj = e, .cap = n_edges};
    int size = kuhn_match(&g, n_left, n_right, match_left, match_right);
    free(start); free(deg); free(g.adj);
    return size;
}

/* the classes a pixel labelled a carries for its neighbour labelled b: both, where they differ */
static inline uint64_t differ(unsigned a, unsigned b)
{
    return (((uint64_t)1 << a) | ((uint64_t)1 << b)) & -(uint64_t)(a != b);
}

/* BSDS seg2bmap of every class mask at once: bit n of bits[p] is set when pixel p differs from its E, S
 * or SE neighbour in the mask label == n, i.e. when the labels differ and one of them is n. Written into
 * the interior of a (h + 2 pad) x (w + 2 pad) plane that is all zero on entry: only the boundary pixels
 * are written (and marked in nz), so clear_marked() makes it all zero again. */
static void class_boundary_bits(int h, int w, const unsigned char *lab, uint64_t keep, int pad, uint64_t *bits,
                                uint64_t *nz)
{
    int wp = w + 2 * pad, nw = (w + 63) / 64;
    memset(nz, 0, sizeof(uint64_t) * h * nw);
    for (int y = 0; y < h; y++) {
        const unsigned char *row = lab + (long)y * w;
        uint64_t *out = bits + (long)(y + pad) * wp + pad, *nz_row = nz + (long)y * nw, v;
        if (y + 1 == h) {  /* last row: east neighbours only */
            for (int x = 0; x + 1 < w; x++)
                if ((v = differ(row[x], row[x + 1]) & keep)) {
                    out[x] = v;
                    nz_row[x >> 6] |= (uint64_t)1 << (x & 63);
                }
            continue;
        }
        const unsigned char *below = row + w;
        int x = 0;
        for (; x + 9 <= w; x += 8) {  /* eight pixels at once: only those that differ from a neighbour */
            uint64_t a8, e8, s8, se8;
            memcpy(&a8, row + x, 8); memcpy(&e8, row + x + 1, 8);
            memcpy(&s8, below + x, 8); memcpy(&se8, below + x + 1, 8);
            uint64_t d = (a8 ^ e8) | (a8 ^ s8) | (a8 ^ se8);  /* most pixels lie inside a region: 0 */
            const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
            for (uint64_t m = (((d & low7) + low7) | d) & ~low7; m; m &= m - 1) {  /* the bytes of d that are not 0 */
                int xx = x + (__builtin_ctzll(m) >> 3);
                unsigned a = row[xx];
                if ((v = (differ(a, row[xx + 1]) | differ(a, below[xx]) | differ(a, below[xx + 1])) & keep)) {
                    out[xx] = v;
                    nz_row[xx >> 6] |= (uint64_t)1 << (xx & 63);
                }
            }
        }
        for (; x + 1 < w; x++) {
            unsigned a = row[x];
            if ((v = (differ(a, row[x + 1]) | differ(a, below[x]) | differ(a, below[x + 1])) & keep)) {
                out[x] = v;
                nz_row[x >> 6] |= (uint64_t)1 << (x & 63);
            }
        }
        if ((v = differ(row[w - 1], below[w - 1]) & keep)) {  /* last column: south only */
            out[w - 1] = v;
            nz_row[(w - 1) >> 6] |= (uint64_t)1 << ((w - 1) & 63);
        }
    }
}

/* zeroes the interior pixels of a plane that nz marks (after class_boundary_bits: the plane is all zero) */
static void clear_marked(uint64_t *bits, const uint64_t *nz, int h, int w, int pad)
{
    long wp = w + 2 * pad;
    int nw = (w + 63) / 64;
    for (int y = 0; y < h; y++)
        for (int i = 0; i < nw; i++)
            for (uint64_t z = nz[(long)y * nw + i]; z; z &= z - 1)
                bits[(y + pad) * wp + pad + 64 * i + __builtin_ctzll(z)] = 0;
}

/* does the disk around pixel p hold a pixel of `other` with this class bit? */
static int any_within(const uint64_t *other, long p, long wp, int pad, const int *lo, const int *hi, uint64_t bit)
{
    for (int dy = -pad; dy <= pad; dy++) {
        const uint64_t *row = other + p + dy * wp;
        for (int dx = lo[dy + pad]; dx <= hi[dy + pad]; dx++) if (row[dx] & bit) return 1;
    }
    return 0;
}

/* Per-class BF counts of one image. out[0..K) predicted boundary pixels, out[K..2K) ground-truth
 * boundary pixels, out[2K..3K) matched predicted pixels, out[3K..4K) matched ground-truth pixels.
 * rule 0: maximum one-to-one matching; rule 1: a pixel is matched when any pixel of the other map's
 * boundary of its class lies within the disk. Labels must be < 64; classes 0..num_classes-1 are scored.
 * The offsets must form a disk (each row one run of dx) within pad. pb, gb, near (uint64) and gbase
 * (int) are the caller's work planes of (h + 2 pad) x (w + 2 pad), kept between calls, so no page is
 * faulted in per image; pb and gb must be all zero, and are left so (only the pixels written are cleared,
 * not whole planes); near holds near_words words (at least a plane; the bit
 * planes of the one-to-one rule need 3 K (h + 2 pad) ceil((w + 2 pad) / 64)). Returns 0; -1 when out of memory; -2 when the offsets are
 * not a disk within pad. When `seconds` is not NULL, the time spent is added to seconds[0] (boundaries),
 * seconds[1] (candidate pixels: node ids, the near planes, the left nodes) and seconds[2] (matching; for
 * the distance rule, the disk searches). */
int bf_counts(int h, int w, const unsigned char *pred, const unsigned char *gt, int num_classes, int n_off,
              const int *off_dy, const int *off_dx, int pad, int rule, uint64_t *pb, uint64_t *gb, uint64_t *near,
              long near_words, int *gbase, long long *out, double *seconds)
{
    int k = num_classes;
    uint64_t keep = k >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1);
    long wp = w + 2 * pad;
    memset(out, 0, sizeof(long long) * 4 * k);
    if (h <= 0 || w <= 0) return 0;

    /* the disk as row runs: row dy holds dx = lo .. hi (lo > hi: empty) */
    int lo[2 * pad + 1], hi[2 * pad + 1];
    for (int i = 0; i <= 2 * pad; i++) { lo[i] = pad + 1; hi[i] = -pad - 1; }
    for (int j = 0; j < n_off; j++) {
        int dy = off_dy[j], dx = off_dx[j];
        if (dy < -pad || dy > pad || dx < -pad || dx > pad) return -2;
        if (dx < lo[dy + pad]) lo[dy + pad] = dx;
        if (dx > hi[dy + pad]) hi[dy + pad] = dx;
    }
    long runs = 0;
    for (int i = 0; i <= 2 * pad; i++) if (hi[i] >= lo[i]) runs += hi[i] - lo[i] + 1;
    if (runs != n_off) return -2;  /* a row with a gap, or a repeated offset */

    double t0 = seconds ? now() : 0, t1 = 0;
    int nw = (w + 63) / 64;  /* nz_pred, nz_gt: bit x of row y set where the pixel has a boundary class */
    uint64_t *nz_pred = malloc(sizeof(uint64_t) * 2 * h * nw), *nz_gt = nz_pred + (long)h * nw;
    if (!nz_pred) return -1;
    class_boundary_bits(h, w, pred, keep, pad, pb, nz_pred);
    class_boundary_bits(h, w, gt, keep, pad, gb, nz_gt);
    if (seconds) { t1 = now(); seconds[0] += t1 - t0; t0 = t1; }

    int ww = (int)((wp + 63) / 64);
    if (rule == 0 && 2 * pad + 1 <= 64 && 3L * k * (h + 2 * pad) * ww <= near_words) {  /* the planes fit in near */
        int status = match_on_planes(h, w, k, pad, lo, hi, wp, ww, pb, gb, nz_pred, nz_gt, near, gbase, out,
                                     seconds, t0);
        clear_marked(pb, nz_pred, h, w, pad);
        clear_marked(gb, nz_gt, h, w, pad);
        free(nz_pred);
        return status;
    }

    /* right node ids: (pixel, class) in raster order, classes ascending within a pixel; gbase[p] is the
     * id of pixel p's first node (set where gb[p] has a class). near[p]: OR of gb over p - pad .. p + pad,
     * scattered from the ground-truth boundary pixels (the interior is cleared first; the border stays 0). */
    for (int y = 0; y < h; y++) memset(near + (y + pad) * wp + pad, 0, sizeof(uint64_t) * w);
    int n_right = 0;
    for (int y = 0; y < h; y++) {
        long p0 = (y + pad) * wp + pad;
        for (long p = p0; p < p0 + w; p++) {
            uint64_t b = gb[p];
            if (!b) continue;
            gbase[p] = n_right;
            for (uint64_t t = b; t; t &= t - 1) { out[k + __builtin_ctzll(t)]++; n_right++; }
            long a = p - pad < p0 ? p0 : p - pad, z = p + pad >= p0 + w ? p0 + w - 1 : p + pad;
            for (long q = a; q <= z; q++) near[q] |= b;
        }
    }

    long left_cap = 1 << 14;
    long *left_pix = malloc(sizeof(long) * left_cap);
    unsigned char *left_class = malloc(left_cap);
    int *match_left = NULL, *match_right = NULL, *deg = NULL;
    long *start = NULL;
    Graph g = {0};
    int status = -1;
    if (!left_pix || !left_class) goto done;

    if (rule == 1) {  /* distance rule: a pixel is matched when the other boundary has its class in the disk */
        if (seconds) { t1 = now(); seconds[1] += t1 - t0; t0 = t1; }
        for (int y = 0; y < h; y++) {
            long p0 = (y + pad) * wp + pad;
            for (long p = p0; p < p0 + w; p++) {
                for (uint64_t t = pb[p]; t; t &= t - 1) {
                    int n = __builtin_ctzll(t);
                    out[n]++;
                    out[2 * k + n] += any_within(gb, p, wp, pad, lo, hi, (uint64_t)1 << n);
                }
                for (uint64_t t = gb[p]; t; t &= t - 1) {
                    int n = __builtin_ctzll(t);
                    out[3 * k + n] += any_within(pb, p, wp, pad, lo, hi, (uint64_t)1 << n);
                }
            }
        }
        if (seconds) seconds[2] += now() - t0;
        status = 0;
        goto done;
    }

    /* left nodes: predicted boundary (pixel, class) with a ground-truth pixel of the class in the disk's
     * bounding box, in raster order */
    int n_left = 0;
    for (int y = 0; y < h; y++) {
        long p0 = (y + pad) * wp + pad;
        for (long p = p0; p < p0 + w; p++) {
            uint64_t b = pb[p];
            if (!b) continue;
            uint64_t around = 0;
            for (int dy = -pad; dy <= pad; dy++) around |= near[p + dy * wp];
            for (uint64_t t = b; t; t &= t - 1) {
                int n = __builtin_ctzll(t);
                out[n]++;
                if (!((around >> n) & 1)) continue;
                if (n_left == left_cap) {
                    long c = left_cap * 2;
                    long *lp = realloc(left_pix, sizeof(long) * c);
                    if (!lp) goto done;
                    left_pix = lp;
                    unsigned char *lc = realloc(left_class, c);
                    if (!lc) goto done;
                    left_class = lc;
                    left_cap = c;
                }
                left_pix[n_left] = p;
                left_class[n_left] = (unsigned char)n;
                n_left++;
            }
        }
    }
    match_left = malloc(sizeof(int) * (n_left > 0 ? n_left : 1));
    match_right = malloc(sizeof(int) * (n_right > 0 ? n_right : 1));
    start = malloc(sizeof(long) * (n_left > 0 ? n_left : 1));
    deg = malloc(sizeof(int) * (n_left > 0 ? n_left : 1));
    if (!match_left || !match_right || !start || !deg) goto done;
    for (int u = 0; u < n_left; u++) start[u] = -1;
    if (seconds) { t1 = now(); seconds[1] += t1 - t0; t0 = t1; }
    /* pb is done with: it becomes free_bits (its border is zero, as gb's) */
    memcpy(pb, gb, sizeof(uint64_t) * (h + 2 * pad) * wp);
    g = (Graph){.start = start, .deg = deg, .pad = pad, .wp = wp, .lo = lo, .hi = hi, .gb = gb,
                .near = near, .free_bits = pb, .gbase = gbase, .left_pix = left_pix, .left_class = left_class};
    if (kuhn_match(&g, n_left, n_right, match_left, match_right) < 0) goto done;
    if (seconds) seconds[2] += now() - t0;
    for (int u = 0; u < n_left; u++) {
        if (match_left[u] >= 0) { out[2 * k + left_class[u]]++; out[3 * k + left_class[u]]++; }
    }
    status = 0;
done:
    free(left_pix); free(left_class); free(match_left); free(match_right); free(start); free(deg); free(g.adj);
    clear_marked(pb, nz_pred, h, w, pad);  /* pb may hold a copy of gb (free_bits): clear both markings */
    clear_marked(pb, nz_gt, h, w, pad);
    clear_marked(gb, nz_gt, h, w, pad);
    free(nz_pred);
    return status;
}

/* The joint histogram of two 8-bit label maps, from which bench/metrics.py folds the confusion matrix
 * (numpy's bincount of the same is several times slower): counts[a * cols + b] += the number of pixels i
 * with first[i] == a and second[i] == b. Every first[i] must be < rows and every second[i] < cols.
 * Returns 0, -1 when out of memory. Blocks of eight equal pairs (the inside of regions) count at once, a
 * run of such blocks in a register; elsewhere four partial tables break the store-to-load chains. */
int pair_counts_u8(long n, const unsigned char *first, const unsigned char *second, int rows, int cols,
                   long long *counts)
{
    long size = (long)rows * cols;
    uint32_t small[4 * 1024], *part = size <= 1024 ? small : malloc(sizeof(uint32_t) * 4 * size);
    if (!part) return -1;
    memset(part, 0, sizeof(uint32_t) * 4 * size);
    long i = 0;
    while (i < n) {
        long end = n - i > 0x3fffffffL ? i + 0x3fffffffL : n;  /* a partial count stays below 2^32 */
        uint64_t run_a = 0, run_b = 0;  /* the eight equal pairs of the current run of such blocks */
        long run_at = 0, run = 0;
        for (; i + 8 <= end; i += 8) {
            uint64_t a8, b8;
            memcpy(&a8, first + i, 8);
            memcpy(&b8, second + i, 8);
            if (run && a8 == run_a && b8 == run_b) { run += 8; continue; }
            if (run) { part[run_at] += run; run = 0; }
            if (a8 == first[i] * 0x0101010101010101ULL && b8 == second[i] * 0x0101010101010101ULL) {
                run_a = a8; run_b = b8; run_at = first[i] * cols + second[i]; run = 8;
                continue;
            }
            for (int j = 0; j < 8; j += 4) {
                part[first[i + j] * cols + second[i + j]]++;
                part[size + first[i + j + 1] * cols + second[i + j + 1]]++;
                part[2 * size + first[i + j + 2] * cols + second[i + j + 2]]++;
                part[3 * size + first[i + j + 3] * cols + second[i + j + 3]]++;
            }
        }
        if (run) part[run_at] += run;
        for (; i < end; i++) part[first[i] * cols + second[i]]++;
        for (long j = 0; j < size; j++) {
            counts[j] += (long long)part[j] + part[size + j] + part[2 * size + j] + part[3 * size + j];
            part[j] = part[size + j] = part[2 * size + j] = part[3 * size + j] = 0;
        }
    }
    if (part != small) free(part);
    return 0;
}
