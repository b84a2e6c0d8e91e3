/*
 * Metrics registry, shards and the Prometheus text rendering.
 * See include/gatehouse/metrics.h for the threading rules.
 */
#include <gatehouse/metrics.h>
#include <gatehouse/callout.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 64
#define MAX_CHUNKS (GH_METRICS_MAX_IDS / CHUNK)
#define MAX_SHARDS 1024

enum {
    K_SERIES = 0,
    K_ROUTE,
    K_LISTENER,
    K_CLUSTER,
    K_ENDPOINT,
    K_DECISION,
    K_FILTER,
    K_POLICY,
    K_COUNT
};

static const size_t elem_size[K_COUNT] = {
    sizeof(gh_series_stats_t),  sizeof(gh_route_stats_t),    sizeof(gh_listener_stats_t),
    sizeof(gh_cluster_stats_t), sizeof(gh_endpoint_stats_t), sizeof(gh_decision_stats_t),
    sizeof(gh_counter_stats_t), sizeof(gh_counter_stats_t),
};

struct gh_metrics_shard_s {
    void *chunks[K_COUNT][MAX_CHUNKS]; /* published with release stores */
};

/* Label sets, main thread only. labels[i] holds up to NL names. */
#define NL 4
typedef struct {
    char *l[NL];
} labels_t;

static struct {
    labels_t *labels[K_COUNT];
    uint32_t count[K_COUNT]; /* read by the renderer, same thread */
    uint32_t cap[K_COUNT];
    /* Open-addressing index over labels[kind]: id + 1, 0 = empty. Finding a
     * label set by scanning them all made a snapshot of 39,000 routes take
     * minutes to build (each new id compared with every earlier one). */
    uint32_t *index[K_COUNT];
    uint32_t index_cap[K_COUNT];
    gh_metrics_shard_t *shards[MAX_SHARDS];
    unsigned num_shards;                             /* atomic */
    uint64_t reloads_ok, reloads_failed, generation; /* atomic */
    gh_metrics_extra_fn extra[8];
    void *extra_arg[8];
} reg;

/* Histogram bounds in microseconds: 1ms .. 10s. */
static const uint64_t bounds_us[GH_HIST_BUCKETS] = {
    1000,   2500,   5000,    10000,   25000,   50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const bounds_text[GH_HIST_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",  "0.5",    "1",     "2.5",  "5",     "10",
};

static uint64_t labels_hash(const char *const v[NL])
{
    uint64_t h = 1469598103934665603ULL;
    for (int k = 0; k < NL; k++) {
        /* A NULL label hashes apart from an empty one. */
        h ^= v[k] == NULL ? 0x100u : 0x200u;
        h *= 1099511628211ULL;
        for (const char *p = v[k]; p != NULL && *p != '\0'; p++) {
            h ^= (unsigned char)*p;
            h *= 1099511628211ULL;
        }
    }
    return h ^ (h >> 29);
}

static int labels_equal(const labels_t *t, const char *const v[NL])
{
    for (int k = 0; k < NL; k++)
        if (!((v[k] == NULL && t->l[k] == NULL) ||
              (v[k] != NULL && t->l[k] != NULL && strcmp(v[k], t->l[k]) == 0)))
            return 0;
    return 1;
}

/* The slot of v in kind's index: its id + 1, or 0 where it would go. */
static uint32_t *index_slot(int kind, const char *const v[NL])
{
    uint32_t mask = reg.index_cap[kind] - 1;
    uint32_t j = (uint32_t)labels_hash(v) & mask;
    while (reg.index[kind][j] != 0 && !labels_equal(&reg.labels[kind][reg.index[kind][j] - 1], v))
        j = (j + 1) & mask;
    return &reg.index[kind][j];
}

static int index_grow(int kind)
{
    uint32_t cap = reg.index_cap[kind] ? reg.index_cap[kind] * 2 : 128;
    uint32_t *t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return -1;
    free(reg.index[kind]);
    reg.index[kind] = t;
    reg.index_cap[kind] = cap;
    for (uint32_t i = 0; i < reg.count[kind]; i++) {
        const labels_t *l = &reg.labels[kind][i];
        const char *v[NL] = {l->l[0], l->l[1], l->l[2], l->l[3]};
        *index_slot(kind, v) = i + 1;
    }
    return 0;
}

static uint32_t intern4(int kind, const char *a, const char *b, const char *c, const char *d)
{
    const char *v[NL] = {a, b, c, d};
    if (2 * (reg.count[kind] + 1) > reg.index_cap[kind] && index_grow(kind) != 0)
        return UINT32_MAX;
    uint32_t *slot = index_slot(kind, v);
    if (*slot != 0)
        return *slot - 1;
    if (reg.count[kind] >= GH_METRICS_MAX_IDS)
        return UINT32_MAX;
    if (reg.count[kind] == reg.cap[kind]) {
        uint32_t cap = reg.cap[kind] ? reg.cap[kind] * 2 : 64;
        labels_t *n = realloc(reg.labels[kind], cap * sizeof(*n));
        if (n == NULL)
            return UINT32_MAX;
        reg.labels[kind] = n;
        reg.cap[kind] = cap;
    }
    labels_t *t = &reg.labels[kind][reg.count[kind]];
    for (int k = 0; k < NL; k++) {
        t->l[k] = v[k] ? strdup(v[k]) : NULL;
        if (v[k] && t->l[k] == NULL) {
            for (int j = 0; j < k; j++)
                free(t->l[j]);
            return UINT32_MAX;
        }
    }
    *slot = reg.count[kind] + 1;
    return reg.count[kind]++;
}

static uint32_t intern(int kind, const char *a, const char *b, const char *c)
{
    return intern4(kind, a, b, c, NULL);
}

uint32_t gh_metrics_series_id(const char *listener, const char *route, const char *cluster)
{
    return intern(K_SERIES, listener, route, cluster);
}

uint32_t gh_metrics_route_id(const char *listener, const char *route)
{
    return intern(K_ROUTE, listener, route, NULL);
}

uint32_t gh_metrics_listener_id(const char *listener)
{
    return intern(K_LISTENER, listener, NULL, NULL);
}

uint32_t gh_metrics_cluster_id(const char *cluster)
{
    return intern(K_CLUSTER, cluster, NULL, NULL);
}

uint32_t gh_metrics_endpoint_id(const char *cluster, const char *address)
{
    return intern(K_ENDPOINT, cluster, address, NULL);
}

uint32_t gh_metrics_decision_id(const char *provider, const char *decision, const char *reason)
{
    return intern(K_DECISION, provider, decision, reason);
}

uint32_t gh_metrics_filter_id(const char *filter, const char *route, const char *event)
{
    return intern(K_FILTER, filter, route, event);
}

uint32_t gh_metrics_policy_id(const char *policy, const char *action, const char *decision,
                              const char *dry_run)
{
    return intern4(K_POLICY, policy, action, decision, dry_run);
}

gh_metrics_shard_t *gh_metrics_shard_new(void)
{
    unsigned n = __atomic_load_n(&reg.num_shards, __ATOMIC_ACQUIRE);
    if (n >= MAX_SHARDS)
        return NULL;
    gh_metrics_shard_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    reg.shards[n] = s;
    __atomic_store_n(&reg.num_shards, n + 1, __ATOMIC_RELEASE);
    return s;
}

static void *get(gh_metrics_shard_t *s, int kind, uint32_t id)
{
    if (s == NULL || id >= GH_METRICS_MAX_IDS)
        return NULL;
    char *chunk = s->chunks[kind][id / CHUNK];
    if (chunk == NULL) {
        chunk = calloc(CHUNK, elem_size[kind]);
        if (chunk == NULL)
            return NULL;
        __atomic_store_n(&s->chunks[kind][id / CHUNK], chunk, __ATOMIC_RELEASE);
    }
    return chunk + (id % CHUNK) * elem_size[kind];
}

gh_series_stats_t *gh_metrics_series(gh_metrics_shard_t *s, uint32_t id)
{
    return get(s, K_SERIES, id);
}

gh_route_stats_t *gh_metrics_route(gh_metrics_shard_t *s, uint32_t id)
{
    return get(s, K_ROUTE, id);
}

gh_listener_stats_t *gh_metrics_listener(gh_metrics_shard_t *s, uint32_t id)
{
    return get(s, K_LISTENER, id);
}

gh_cluster_stats_t *gh_metrics_cluster(gh_metrics_shard_t *s, uint32_t id)
{
    return get(s, K_CLUSTER, id);
}

gh_endpoint_stats_t *gh_metrics_endpoint(gh_metrics_shard_t *s, uint32_t id)
{
    return get(s, K_ENDPOINT, id);
}

gh_decision_stats_t *gh_metrics_decision(gh_metrics_shard_t *s, uint32_t id)
{
    return get(s, K_DECISION, id);
}

gh_counter_stats_t *gh_metrics_filter(gh_metrics_shard_t *s, uint32_t id)
{
    return get(s, K_FILTER, id);
}

gh_counter_stats_t *gh_metrics_policy(gh_metrics_shard_t *s, uint32_t id)
{
    return get(s, K_POLICY, id);
}

void gh_hist_observe(gh_hist_t *h, uint64_t us)
{
    size_t i = 0;
    while (i < GH_HIST_BUCKETS && us > bounds_us[i])
        i++;
    GH_STAT_INC(h->buckets[i]);
    GH_STAT_ADD(h->sum_us, us);
    GH_STAT_INC(h->count);
}

void gh_stats_reload(int ok)
{
    __atomic_add_fetch(ok ? &reg.reloads_ok : &reg.reloads_failed, 1, __ATOMIC_RELAXED);
}

void gh_stats_set_generation(uint64_t generation)
{
    __atomic_store_n(&reg.generation, generation, __ATOMIC_RELAXED);
}

uint64_t gh_stats_generation(void)
{
    return __atomic_load_n(&reg.generation, __ATOMIC_RELAXED);
}

void gh_metrics_set_extra(gh_metrics_extra_fn fn, void *arg)
{
    int free_slot = -1;
    for (int i = 0; i < 8; i++) {
        if (reg.extra[i] == fn) {
            reg.extra_arg[i] = arg;
            if (arg == NULL)
                reg.extra[i] = NULL;
            return;
        }
        if (reg.extra[i] == NULL && free_slot < 0)
            free_slot = i;
    }
    if (arg != NULL && free_slot >= 0) {
        reg.extra[free_slot] = fn;
        reg.extra_arg[free_slot] = arg;
    }
}

/* ---- rendering ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        if (o->oom)
            return;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *nb = realloc(o->buf, cap);
        if (nb == NULL) {
            o->oom = 1;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
}

/* Label values come from the config (names are printable ASCII without
 * spaces), but escape as the exposition format requires anyway. */
static const char *esc(const char *s, char *tmp, size_t cap)
{
    size_t n = 0;
    for (; s != NULL && *s && n + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            tmp[n++] = '\\';
            tmp[n++] = *s;
        } else if (*s == '\n') {
            tmp[n++] = '\\';
            tmp[n++] = 'n';
        } else {
            tmp[n++] = *s;
        }
    }
    tmp[n] = '\0';
    return tmp;
}

static const void *peek(const gh_metrics_shard_t *s, int kind, uint32_t id)
{
    const char *chunk = __atomic_load_n(&s->chunks[kind][id / CHUNK], __ATOMIC_ACQUIRE);
    return chunk ? chunk + (id % CHUNK) * elem_size[kind] : NULL;
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static void sum_hist(gh_hist_t *dst, const gh_hist_t *src)
{
    for (int b = 0; b <= GH_HIST_BUCKETS; b++)
        dst->buckets[b] += LOAD(src->buckets[b]);
    dst->sum_us += LOAD(src->sum_us);
    dst->count += LOAD(src->count);
}

static void put_hist(out_t *o, const char *name, const char *labels, const gh_hist_t *h)
{
    uint64_t cum = 0;
    for (int b = 0; b < GH_HIST_BUCKETS; b++) {
        cum += h->buckets[b];
        put(o, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, bounds_text[b],
            (unsigned long long)cum);
    }
    cum += h->buckets[GH_HIST_BUCKETS];
    put(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
    put(o, "%s_sum{%s} %.6f\n", name, labels, (double)h->sum_us / 1e6);
    put(o, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

static const char *const code_names[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

static void render_series(out_t *o, unsigned ns)
{
    char a[512], b[512], c[512];
    put(o, "# HELP gatehouse_requests_total Requests by listener, route, cluster and status "
           "class.\n# TYPE gatehouse_requests_total counter\n");
    for (uint32_t id = 0; id < reg.count[K_SERIES]; id++) {
        gh_series_stats_t sum;
        memset(&sum, 0, sizeof(sum));
        int any = 0;
        for (unsigned i = 0; i < ns; i++) {
            const gh_series_stats_t *st = peek(reg.shards[i], K_SERIES, id);
            if (st == NULL)
                continue;
            any = 1;
            for (int k = 0; k < 5; k++)
                sum.codes[k] += LOAD(st->codes[k]);
        }
        if (!any)
            continue;
        labels_t *l = &reg.labels[K_SERIES][id];
        for (int k = 0; k < 5; k++) {
            if (sum.codes[k] == 0)
                continue;
            put(o,
                "gatehouse_requests_total{listener=\"%s\",route=\"%s\",cluster=\"%s\","
                "code=\"%s\"} %llu\n",
                esc(l->l[0], a, sizeof(a)), esc(l->l[1], b, sizeof(b)), esc(l->l[2], c, sizeof(c)),
                code_names[k], (unsigned long long)sum.codes[k]);
        }
    }
}

static void render_routes(out_t *o, unsigned ns)
{
    char a[512], b[512], lab[1100];
    gh_route_stats_t *sums = calloc(reg.count[K_ROUTE] + 1, sizeof(*sums));
    char *seen = calloc(reg.count[K_ROUTE] + 1, 1);
    if (sums == NULL || seen == NULL) {
        free(sums);
        free(seen);
        o->oom = 1;
        return;
    }
    for (uint32_t id = 0; id < reg.count[K_ROUTE]; id++) {
        for (unsigned i = 0; i < ns; i++) {
            const gh_route_stats_t *st = peek(reg.shards[i], K_ROUTE, id);
            if (st == NULL)
                continue;
            seen[id] = 1;
            sum_hist(&sums[id].duration, &st->duration);
            sums[id].bytes_in += LOAD(st->bytes_in);
            sums[id].bytes_out += LOAD(st->bytes_out);
        }
    }
    put(o, "# HELP gatehouse_request_duration_seconds Time from a complete request head to the "
           "end of the response.\n# TYPE gatehouse_request_duration_seconds histogram\n");
    for (uint32_t id = 0; id < reg.count[K_ROUTE]; id++) {
        if (!seen[id])
            continue;
        labels_t *l = &reg.labels[K_ROUTE][id];
        snprintf(lab, sizeof(lab), "listener=\"%s\",route=\"%s\"", esc(l->l[0], a, sizeof(a)),
                 esc(l->l[1], b, sizeof(b)));
        put_hist(o, "gatehouse_request_duration_seconds", lab, &sums[id].duration);
    }
    static const char *const names[2] = {"gatehouse_request_bytes_total",
                                         "gatehouse_response_bytes_total"};
    static const char *const helps[2] = {"Request bytes received (head and body).",
                                         "Response bytes sent (head and body)."};
    for (int k = 0; k < 2; k++) {
        put(o, "# HELP %s %s\n# TYPE %s counter\n", names[k], helps[k], names[k]);
        for (uint32_t id = 0; id < reg.count[K_ROUTE]; id++) {
            if (!seen[id])
                continue;
            labels_t *l = &reg.labels[K_ROUTE][id];
            put(o, "%s{listener=\"%s\",route=\"%s\"} %llu\n", names[k], esc(l->l[0], a, sizeof(a)),
                esc(l->l[1], b, sizeof(b)),
                (unsigned long long)(k == 0 ? sums[id].bytes_in : sums[id].bytes_out));
        }
    }
    free(sums);
    free(seen);
}

/* A counter family of n (3 or 4) labels over kind k (gh_decision_stats_t
 * and gh_counter_stats_t are both one count). */
static void render_count(out_t *o, unsigned ns, int k, const char *name, const char *help,
                         const char *const *label, int n)
{
    char e[NL][512];
    put(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (uint32_t id = 0; id < reg.count[k]; id++) {
        uint64_t v = 0;
        int any = 0;
        for (unsigned i = 0; i < ns; i++) {
            const gh_counter_stats_t *st = peek(reg.shards[i], k, id);
            if (st == NULL)
                continue;
            any = 1;
            v += LOAD(st->count);
        }
        if (!any || v == 0)
            continue;
        labels_t *l = &reg.labels[k][id];
        for (int j = 0; j < n; j++)
            esc(l->l[j], e[j], sizeof(e[j]));
        if (n == 3)
            put(o, "%s{%s=\"%s\",%s=\"%s\",%s=\"%s\"} %llu\n", name, label[0], e[0], label[1], e[1],
                label[2], e[2], (unsigned long long)v);
        else
            put(o, "%s{%s=\"%s\",%s=\"%s\",%s=\"%s\",%s=\"%s\"} %llu\n", name, label[0], e[0],
                label[1], e[1], label[2], e[2], label[3], e[3], (unsigned long long)v);
    }
}

static void render_decisions(out_t *o, unsigned ns)
{
    static const char *const labels[3] = {"provider", "decision", "reason"};
    render_count(o, ns, K_DECISION, "gatehouse_auth_decisions_total",
                 "Authentication decisions by provider, decision and reason.", labels, 3);
}

static void render_filter_events(out_t *o, unsigned ns)
{
    static const char *const labels[3] = {"filter", "route", "event"};
    render_count(o, ns, K_FILTER, "gatehouse_filter_events_total",
                 "Events of filters (fault injection's delays and aborts, ...) by filter, route "
                 "and event.",
                 labels, 3);
}

static void render_policy_decisions(out_t *o, unsigned ns)
{
    static const char *const labels[4] = {"policy", "action", "decision", "dry_run"};
    render_count(o, ns, K_POLICY, "gatehouse_policy_decisions_total",
                 "Authorization policy decisions by policy, its action, the decision and whether "
                 "the policy is a dry run.",
                 labels, 4);
}

/* One listener family: a counter or gauge of gh_listener_stats_t at
 * offset off, summed over the shards, a line per listener seen. */
static void render_listener_family(out_t *o, unsigned ns, const char *name, const char *type,
                                   const char *help, size_t off)
{
    char a[512];
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (uint32_t id = 0; id < reg.count[K_LISTENER]; id++) {
        uint64_t v = 0;
        int any = 0;
        for (unsigned i = 0; i < ns; i++) {
            const gh_listener_stats_t *st = peek(reg.shards[i], K_LISTENER, id);
            if (st == NULL)
                continue;
            any = 1;
            v += __atomic_load_n((const uint64_t *)((const char *)st + off), __ATOMIC_RELAXED);
        }
        if (any)
            put(o, "%s{listener=\"%s\"} %llu\n", name,
                esc(reg.labels[K_LISTENER][id].l[0], a, sizeof(a)), (unsigned long long)v);
    }
}

static void render_listeners(out_t *o, unsigned ns)
{
    render_listener_family(o, ns, "gatehouse_downstream_connections_active", "gauge",
                           "Open client connections.", offsetof(gh_listener_stats_t, conns_active));
    render_listener_family(o, ns, "gatehouse_downstream_connections_total", "counter",
                           "Client connections accepted.",
                           offsetof(gh_listener_stats_t, conns_total));
    /* Connection limits (proxy/conn.c). */
    render_listener_family(o, ns, "gatehouse_downstream_accept_pauses_total", "counter",
                           "Times a worker stopped accepting on the listener at max_connections.",
                           offsetof(gh_listener_stats_t, accept_pauses));
    render_listener_family(o, ns, "gatehouse_downstream_connections_refused_total", "counter",
                           "Client connections accepted and closed at once: over "
                           "max_connections_per_address, or no memory or descriptor for them.",
                           offsetof(gh_listener_stats_t, conns_refused));
}

/* Requests that waited for an upstream connection in vain (proxy/upstream.c). */
static void render_pending(out_t *o, const gh_cluster_stats_t *sums, const char *seen)
{
    char a[512];
    put(o, "# HELP gatehouse_upstream_pending_requests Requests waiting for a connection to "
           "an endpoint of the cluster.\n"
           "# TYPE gatehouse_upstream_pending_requests gauge\n");
    for (uint32_t id = 0; id < reg.count[K_CLUSTER]; id++)
        if (seen[id])
            put(o, "gatehouse_upstream_pending_requests{cluster=\"%s\"} %llu\n",
                esc(reg.labels[K_CLUSTER][id].l[0], a, sizeof(a)),
                (unsigned long long)sums[id].pending);
    put(o, "# HELP gatehouse_upstream_pending_failures_total Requests answered 503 because "
           "every connection to the endpoint was busy: the queue was full (overflow), or none "
           "became free in time (timeout).\n"
           "# TYPE gatehouse_upstream_pending_failures_total counter\n");
    for (uint32_t id = 0; id < reg.count[K_CLUSTER]; id++) {
        if (!seen[id])
            continue;
        const char *name = esc(reg.labels[K_CLUSTER][id].l[0], a, sizeof(a));
        put(o,
            "gatehouse_upstream_pending_failures_total{cluster=\"%s\",reason=\"overflow\"} %llu\n",
            name, (unsigned long long)sums[id].pending_overflows);
        put(o,
            "gatehouse_upstream_pending_failures_total{cluster=\"%s\",reason=\"timeout\"} %llu\n",
            name, (unsigned long long)sums[id].pending_timeouts);
    }
}

/* Filters' calls to clusters (gatehouse/callout.h), for the clusters
 * that had any: every outcome then, zeros too, so rates can be taken. */
static void render_callouts(out_t *o, const gh_cluster_stats_t *sums, const char *seen)
{
    char a[512];
    put(o, "# HELP gatehouse_callouts_total Calls filters made to the cluster (authorizers), "
           "by outcome.\n"
           "# TYPE gatehouse_callouts_total counter\n");
    for (uint32_t id = 0; id < reg.count[K_CLUSTER]; id++) {
        uint64_t any = 0;
        for (int k = 0; seen[id] && k < GH_CALLOUT_OUTCOMES; k++)
            any |= sums[id].callouts[k];
        if (any == 0)
            continue;
        const char *name = esc(reg.labels[K_CLUSTER][id].l[0], a, sizeof(a));
        for (int k = 0; k < GH_CALLOUT_OUTCOMES; k++)
            put(o, "gatehouse_callouts_total{cluster=\"%s\",outcome=\"%s\"} %llu\n", name,
                gh_callout_error_name(-k), (unsigned long long)sums[id].callouts[k]);
    }
}

static void render_clusters(out_t *o, unsigned ns)
{
    char a[512], lab[600];
    static const char *const names[6] = {
        "gatehouse_upstream_connections_active",     "gatehouse_upstream_connections_total",
        "gatehouse_upstream_connect_failures_total", "gatehouse_upstream_timeouts_total",
        "gatehouse_upstream_resets_total",           "gatehouse_upstream_pool_hits_total",
    };
    static const char *const helps[6] = {
        "Open upstream connections.",
        "Upstream connections opened.",
        "Upstream connects that failed or timed out.",
        "Upstream responses that did not come in time (504).",
        "Upstream connections that broke mid-exchange.",
        "Requests sent on a pooled keep-alive connection.",
    };
    gh_cluster_stats_t *sums = calloc(reg.count[K_CLUSTER] + 1, sizeof(*sums));
    char *seen = calloc(reg.count[K_CLUSTER] + 1, 1);
    if (sums == NULL || seen == NULL) {
        free(sums);
        free(seen);
        o->oom = 1;
        return;
    }
    for (uint32_t id = 0; id < reg.count[K_CLUSTER]; id++) {
        for (unsigned i = 0; i < ns; i++) {
            const gh_cluster_stats_t *st = peek(reg.shards[i], K_CLUSTER, id);
            if (st == NULL)
                continue;
            seen[id] = 1;
            sum_hist(&sums[id].duration, &st->duration);
            sums[id].conns_active += LOAD(st->conns_active);
            sums[id].conns_total += LOAD(st->conns_total);
            sums[id].connect_failures += LOAD(st->connect_failures);
            sums[id].timeouts += LOAD(st->timeouts);
            sums[id].resets += LOAD(st->resets);
            sums[id].pool_hits += LOAD(st->pool_hits);
            sums[id].pending_overflows += LOAD(st->pending_overflows);
            sums[id].pending_timeouts += LOAD(st->pending_timeouts);
            sums[id].pending += LOAD(st->pending);
            for (int k = 0; k < GH_CALLOUT_OUTCOMES; k++)
                sums[id].callouts[k] += LOAD(st->callouts[k]);
        }
    }
    for (int k = 0; k < 6; k++) {
        put(o, "# HELP %s %s\n# TYPE %s %s\n", names[k], helps[k], names[k],
            k == 0 ? "gauge" : "counter");
        for (uint32_t id = 0; id < reg.count[K_CLUSTER]; id++) {
            if (!seen[id])
                continue;
            const gh_cluster_stats_t *c = &sums[id];
            uint64_t v[6] = {c->conns_active, c->conns_total, c->connect_failures,
                             c->timeouts,     c->resets,      c->pool_hits};
            put(o, "%s{cluster=\"%s\"} %llu\n", names[k],
                esc(reg.labels[K_CLUSTER][id].l[0], a, sizeof(a)), (unsigned long long)v[k]);
        }
    }
    render_pending(o, sums, seen);
    render_callouts(o, sums, seen);
    put(o, "# HELP gatehouse_upstream_request_duration_seconds Time from sending a request "
           "upstream to the end of its response.\n"
           "# TYPE gatehouse_upstream_request_duration_seconds histogram\n");
    for (uint32_t id = 0; id < reg.count[K_CLUSTER]; id++) {
        if (!seen[id])
            continue;
        snprintf(lab, sizeof(lab), "cluster=\"%s\"",
                 esc(reg.labels[K_CLUSTER][id].l[0], a, sizeof(a)));
        put_hist(o, "gatehouse_upstream_request_duration_seconds", lab, &sums[id].duration);
    }
    free(sums);
    free(seen);
}

void gh_metrics_endpoint_read(uint32_t id, uint64_t *active_requests, uint64_t *idle_conns)
{
    unsigned ns = __atomic_load_n(&reg.num_shards, __ATOMIC_ACQUIRE);
    *active_requests = *idle_conns = 0;
    for (unsigned i = 0; id != UINT32_MAX && i < ns; i++) {
        const gh_endpoint_stats_t *st = peek(reg.shards[i], K_ENDPOINT, id);
        if (st == NULL)
            continue;
        *active_requests += LOAD(st->active_requests);
        *idle_conns += LOAD(st->idle_conns);
    }
}

char *gh_metrics_render(size_t *len)
{
    out_t o = {malloc(16384), 0, 16384, 0};
    if (o.buf == NULL)
        return NULL;
    unsigned ns = __atomic_load_n(&reg.num_shards, __ATOMIC_ACQUIRE);
    put(&o,
        "# HELP gatehouse_build_info Version of the running binary.\n"
        "# TYPE gatehouse_build_info gauge\ngatehouse_build_info{version=\"%s\"} 1\n",
        GH_VERSION);
    put(&o,
        "# HELP gatehouse_config_generation Generation of the serving configuration.\n"
        "# TYPE gatehouse_config_generation gauge\ngatehouse_config_generation %llu\n",
        (unsigned long long)gh_stats_generation());
    put(&o,
        "# HELP gatehouse_config_reloads_total Configuration reloads by result.\n"
        "# TYPE gatehouse_config_reloads_total counter\n"
        "gatehouse_config_reloads_total{result=\"ok\"} %llu\n"
        "gatehouse_config_reloads_total{result=\"failed\"} %llu\n",
        (unsigned long long)__atomic_load_n(&reg.reloads_ok, __ATOMIC_RELAXED),
        (unsigned long long)__atomic_load_n(&reg.reloads_failed, __ATOMIC_RELAXED));
    render_series(&o, ns);
    render_routes(&o, ns);
    render_listeners(&o, ns);
    render_clusters(&o, ns);
    render_decisions(&o, ns);
    render_filter_events(&o, ns);
    render_policy_decisions(&o, ns);
    for (int x = 0; x < 8; x++) {
        if (reg.extra[x] == NULL || o.oom)
            continue;
        for (;;) {
            size_t n = reg.extra[x](o.buf + o.len, o.cap - o.len, reg.extra_arg[x]);
            if (n < o.cap - o.len) {
                o.len += n;
                break;
            }
            char *nb = realloc(o.buf, o.cap * 2);
            if (nb == NULL) {
                o.oom = 1;
                break;
            }
            o.buf = nb;
            o.cap *= 2;
        }
    }
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}

void gh_metrics_shutdown(void)
{
    unsigned ns = __atomic_load_n(&reg.num_shards, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < ns; i++) {
        for (int k = 0; k < K_COUNT; k++)
            for (size_t c = 0; c < MAX_CHUNKS; c++)
                free(reg.shards[i]->chunks[k][c]);
        free(reg.shards[i]);
        reg.shards[i] = NULL;
    }
    reg.num_shards = 0;
    for (int k = 0; k < K_COUNT; k++) {
        for (uint32_t i = 0; i < reg.count[k]; i++)
            for (int j = 0; j < NL; j++)
                free(reg.labels[k][i].l[j]);
        free(reg.labels[k]);
        reg.labels[k] = NULL;
        reg.count[k] = reg.cap[k] = 0;
        free(reg.index[k]);
        reg.index[k] = NULL;
        reg.index_cap[k] = 0;
    }
}
