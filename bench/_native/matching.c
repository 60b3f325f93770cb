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
 * Both use one matcher, kuhn_match (the proof of exactness is at the function). A maximum matching's
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
                    for (int i = top - 1; i >= 0; i--) {  /* flip the path */
                        int a = stack[i];
                        match_left[a] = via[a];
                        match_right[via[a]] = a;
                    }
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

/* BSDS seg2bmap of every class mask at once: bit n of bits[p] is set when pixel p differs from its E, S
 * or SE neighbour in the mask label == n, i.e. when the labels differ and one of them is n. Written into
 * the interior of a (h + 2 pad) x (w + 2 pad) plane whose border stays zero. */
/* the classes a pixel labelled a carries for its neighbour labelled b: both, where they differ */
static inline uint64_t differ(unsigned a, unsigned b)
{
    return (((uint64_t)1 << a) | ((uint64_t)1 << b)) & -(uint64_t)(a != b);
}

static void class_boundary_bits(int h, int w, const unsigned char *lab, uint64_t keep, int pad, uint64_t *bits)
{
    int wp = w + 2 * pad;
    for (int y = 0; y < h; y++) {
        const unsigned char *row = lab + (long)y * w;
        uint64_t *out = bits + (long)(y + pad) * wp + pad;
        if (y + 1 == h) {  /* last row: east neighbours only */
            for (int x = 0; x + 1 < w; x++) out[x] = differ(row[x], row[x + 1]) & keep;
            out[w - 1] = 0;
            continue;
        }
        const unsigned char *below = row + w;
        for (int x = 0; x + 1 < w; x++) {
            if (x % 8 == 0 && x + 9 <= w) {  /* most pixels lie inside a region: skip 8 at once where all agree */
                uint64_t a8, e8, s8, se8;
                memcpy(&a8, row + x, 8); memcpy(&e8, row + x + 1, 8);
                memcpy(&s8, below + x, 8); memcpy(&se8, below + x + 1, 8);
                if (((a8 ^ e8) | (a8 ^ s8) | (a8 ^ se8)) == 0) {
                    memset(out + x, 0, 8 * sizeof(uint64_t));
                    x += 7;
                    continue;
                }
            }
            unsigned a = row[x];
            out[x] = (differ(a, row[x + 1]) | differ(a, below[x]) | differ(a, below[x + 1])) & keep;
        }
        out[w - 1] = differ(row[w - 1], below[w - 1]) & keep;  /* last column: south only */
    }
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
 * (int) are the caller's work planes of (h + 2 pad) x (w + 2 pad), zero on their border: kept between
 * calls, so no page is faulted in per image. Returns 0; -1 when out of memory; -2 when the offsets are
 * not a disk within pad. When `seconds` is not NULL, the time spent is added to seconds[0] (boundaries),
 * seconds[1] (candidate pixels: node ids, the near planes, the left nodes) and seconds[2] (matching; for
 * the distance rule, the disk searches). */
int bf_counts(int h, int w, const unsigned char *pred, const unsigned char *gt, int num_classes, int n_off,
              const int *off_dy, const int *off_dx, int pad, int rule, uint64_t *pb, uint64_t *gb, uint64_t *near,
              int *gbase, long long *out, double *seconds)
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
    class_boundary_bits(h, w, pred, keep, pad, pb);
    class_boundary_bits(h, w, gt, keep, pad, gb);
    if (seconds) { t1 = now(); seconds[0] += t1 - t0; t0 = t1; }

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
    return status;
}
