/* Maximum bipartite matching for the BF boundary score (augmenting paths with lookahead).
 *
 * Left nodes are predicted boundary pixels, right nodes ground-truth boundary pixels. The graph is
 * given as a dense n_left x n_off table `hits`: hits[u * n_off + j] is the right node at the j-th
 * offset of the tolerance disk from u (offsets nearest first), or -1. The result is written into
 * match_left / match_right (-1 = unmatched); the return value is the matching size, -1 when out of
 * memory.
 *
 * Algorithm: a greedy start that takes offsets in order of distance over all left nodes (so exact
 * coincidences are matched first), then Kuhn's augmenting-path search from every free left node,
 * depth first with a lookahead (a node first looks for a free right neighbour before descending).
 * Visit marks survive failed searches until the next augmentation (a node reached by a failed search
 * cannot reach a free right node while the matching is unchanged), so failures cost O(E) in all.
 * One pass over the free left nodes gives a maximum matching (a left node without an augmenting path
 * never gets one later).
 * Built on demand by bench/matching.py; SciPy's max-flow is the fallback and the test oracle.
 */
#include <stdlib.h>

int max_matching(int n_left, int n_right, int n_off, const int *hits, int *match_left, int *match_right)
{
    int size = 0;
    for (int u = 0; u < n_left; u++) match_left[u] = -1;
    for (int v = 0; v < n_right; v++) match_right[v] = -1;
    for (int j = 0; j < n_off; j++) {
        for (int u = 0; u < n_left; u++) {
            if (match_left[u] >= 0) continue;
            int v = hits[(long)u * n_off + j];
            if (v >= 0 && match_right[v] < 0) { match_left[u] = v; match_right[v] = u; size++; }
        }
    }
    int n = n_left > 0 ? n_left : 1;
    int *mark = calloc(n, sizeof(int));
    int *iter = malloc(sizeof(int) * n);
    int *stack = malloc(sizeof(int) * n);
    long *start = malloc(sizeof(long) * (n + 1));
    long n_edges = 0;
    for (long i = 0; i < (long)n_left * n_off; i++) n_edges += hits[i] >= 0;
    int *adj = malloc(sizeof(int) * (n_edges > 0 ? n_edges : 1));
    if (!mark || !iter || !stack || !start || !adj) {
        free(mark); free(iter); free(stack); free(start); free(adj); return -1;
    }
    /* compact adjacency (nearest first), so the searches read only real edges */
    long e = 0;
    for (int u = 0; u < n_left; u++) {
        start[u] = e;
        const int *row = hits + (long)u * n_off;
        for (int j = 0; j < n_off; j++) if (row[j] >= 0) adj[e++] = row[j];
    }
    start[n_left] = e;
    int stamp = 1;
    for (int root = 0; root < n_left; root++) {
        if (match_left[root] >= 0) continue;
        int top = 0, augmented = 0;
        mark[root] = stamp;
        iter[root] = -1; /* -1: lookahead not done yet */
        stack[top++] = root;
        while (top > 0 && !augmented) {
            int x = stack[top - 1];
            const int *row = adj + start[x];
            int deg = (int)(start[x + 1] - start[x]);
            if (iter[x] < 0) { /* lookahead: a free right neighbour ends the search */
                int free_j = -1;
                for (int j = 0; j < deg; j++) {
                    if (match_right[row[j]] < 0) { free_j = j; break; }
                }
                if (free_j >= 0) {
                    iter[x] = free_j;
                    for (int i = top - 1; i >= 0; i--) {
                        int a = stack[i];
                        int b = adj[start[a] + iter[a]];
                        match_left[a] = b;
                        match_right[b] = a;
                    }
                    size++;
                    augmented = 1;
                    break;
                }
                iter[x] = 0;
            }
            while (iter[x] < deg && mark[match_right[row[iter[x]]]] == stamp) iter[x]++;
            if (iter[x] >= deg) { top--; if (top > 0) iter[stack[top - 1]]++; continue; }
            int w = match_right[row[iter[x]]];
            mark[w] = stamp;
            iter[w] = -1;
            stack[top++] = w;
        }
        if (augmented) stamp++;
    }
    free(mark); free(iter); free(stack); free(start); free(adj);
    return size;
}
