/*
 * Load balancing: which cluster of a weighted split, and which endpoint of
 * a cluster. Per worker, no shared state: round robin cursors and the
 * in-flight counts used by least_request are the worker's own, which is
 * what share-nothing workers can know without locks.
 */
#include "proxy/proxy.h"

/* xorshift64*: fast, and quality is ample for spreading load. */
uint64_t gh_rand(gh_worker_t *w)
{
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

size_t gh_lb_pick_target(gh_worker_t *w, const gh_route_t *r)
{
    if (r->num_targets == 1)
        return 0;
    uint64_t x = gh_rand(w) % r->total_weight;
    for (size_t i = 0; i < r->num_targets; i++) {
        if (x < r->targets[i].weight)
            return i;
        x -= r->targets[i].weight;
    }
    return r->num_targets - 1;
}

static size_t weighted_random(gh_worker_t *w, const gh_cluster_t *c)
{
    uint64_t x = gh_rand(w) % c->total_weight;
    for (size_t i = 0; i < c->num_endpoints; i++) {
        if (x < c->endpoints[i].weight)
            return i;
        x -= c->endpoints[i].weight;
    }
    return c->num_endpoints - 1;
}

/* A weighted random endpoint other than not (there are two or more). */
static size_t weighted_random_other(gh_worker_t *w, const gh_cluster_t *c, size_t not )
{
    uint64_t x = gh_rand(w) % (c->total_weight - c->endpoints[not ].weight);
    for (size_t i = 0; i < c->num_endpoints; i++) {
        if (i == not )
            continue;
        if (x < c->endpoints[i].weight)
            return i;
        x -= c->endpoints[i].weight;
    }
    return not == 0 ? 1 : 0;
}

size_t gh_lb_pick_endpoint(gh_wsnap_t *ws, const gh_cluster_t *c)
{
    gh_worker_t *w = ws->worker;
    if (c->num_endpoints == 1)
        return 0;
    switch (c->lb) {
    case GH_LB_ROUND_ROBIN: {
        /* Weighted round robin over a virtual ring of total_weight slots:
         * each endpoint owns weight consecutive slots. */
        uint32_t slot = ws->rr_next[c->index]++ % c->total_weight;
        for (size_t i = 0; i < c->num_endpoints; i++) {
            if (slot < c->endpoints[i].weight)
                return i;
            slot -= c->endpoints[i].weight;
        }
        return 0;
    }
    case GH_LB_LEAST_REQUEST: {
        /* Power of two choices (Mitzenmacher): two distinct weighted random
         * picks, the one with fewer requests in flight per unit of weight
         * wins. Distinct, or with two endpoints a quarter of the picks
         * would compare the busy one with itself and send it more. */
        size_t a = weighted_random(w, c), b = weighted_random_other(w, c, a);
        uint64_t la = (uint64_t)ws->pools[c->index][a].active * c->endpoints[b].weight;
        uint64_t lb = (uint64_t)ws->pools[c->index][b].active * c->endpoints[a].weight;
        return lb < la ? b : a;
    }
    case GH_LB_RANDOM:
        return weighted_random(w, c);
    }
    return 0;
}
