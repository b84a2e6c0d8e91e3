/*
 * The rate_limits filter: each request takes one unit from each limit of
 * its route (`rate_limits:`) and, when its identity has a usage plan,
 * from the plan's throttle, the plan's throttle for this route and the
 * plan's quota, all keyed by the consumer. The first limit that refuses
 * answers 429 with Retry-After and the RateLimit fields; what the
 * request took from the limits before it is given back, so a refused
 * request counts in none.
 *
 * Counters: a process-wide gh_limit_table_t (gatehouse/limiter.h), made
 * when the first snapshot with limits is built and kept for the process's
 * life, so counts go on across reloads. A limit's id comes from what it
 * is (listener, route, name, key, parameters): a reload that leaves a
 * limit as it was keeps its counts; one that changes it starts afresh.
 *
 * Fleet limits (`mode: fleet`, a route's or a plan's) go to a backend
 * after the local ones passed, in one batch, with the stream paused
 * (ratelimit.h); the backend each instance uses is the one its snapshot
 * opened for its config's store.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <gatehouse/cidr.h>
#include <gatehouse/config.h>
#include <gatehouse/fields.h>
#include <gatehouse/jwt.h>
#include <gatehouse/log.h>
#include <gatehouse/metrics.h>

#include "filters/ratelimit/internal.h"

/* Counters of the process: room for this many keys (docs/rate-limits.md). */
#define TABLE_KEYS (128 * 1024)
/* Claim values longer than this are not keys (the request is "missing"). */
#define MAX_CLAIM_KEY 4096
/* The most limits one request meets: the route's and a plan's three. */
#define MAX_TAKEN (RL_MAX_LIMITS + 3)

static gh_limit_table_t *table;

gh_limit_table_t *gh_ratelimit_table(void)
{
    return table;
}

/* ---- what the RateLimit fields show of a limit ---- */

/* A limit's pieces of the fields, made once (bind, init): the RateLimit
 * item's start ("\"NAME\";r=") and, when the limit's q and w never
 * change (all but monthly quotas), its whole RateLimit-Policy item. */
typedef struct {
    char *item; /* "\"NAME\";r=" */
    size_t item_len;
    char *policy; /* "\"NAME\";q=Q;w=W", or NULL: made per request */
    size_t policy_len;
} rl_show_t;

static void show_dispose(rl_show_t *sh)
{
    free(sh->item);
    free(sh->policy);
}

/* The pieces are copied 32 bytes a step (from storage padded to that),
 * into a buffer with that much room past the end: no memcpy call per
 * piece. */
#define CHUNK 32

static char *padded_dup(const char *s, size_t n)
{
    char *p = calloc(1, (n + CHUNK - 1) / CHUNK * CHUNK + CHUNK);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static inline char *put_chunks(char *p, const char *s, size_t n)
{
    size_t i = 0;
    do {
        memcpy(p + i, s + i, CHUNK);
        i += CHUNK;
    } while (i < n);
    return p + n;
}

static int show_init(rl_show_t *sh, const char *name, const gh_limit_spec_t *spec)
{
    char buf[RL_MAX_NAME * 2 + 64];
    int n = snprintf(buf, sizeof(buf), "\"%s\";r=", name);
    if (n < 0 || (size_t)n >= sizeof(buf) || (sh->item = padded_dup(buf, (size_t)n)) == NULL)
        return -1;
    sh->item_len = (size_t)n;
    uint64_t q, w;
    if (spec->algo == GH_LIMIT_BUCKET) {
        /* The whole bucket, and the time it takes to fill from empty. */
        q = spec->rate.burst;
        w = gh_bucket_window_s(&spec->rate);
    } else if (spec->quota.period != GH_PERIOD_MONTH) {
        q = spec->quota.limit;
        w = spec->quota.period == GH_PERIOD_DAY ? 86400 : 7 * 86400;
    } else {
        return 0; /* 28 to 31 days: per request */
    }
    n = snprintf(buf, sizeof(buf), "\"%s\";q=%llu;w=%llu", name, (unsigned long long)q,
                 (unsigned long long)w);
    if (n < 0 || (size_t)n >= sizeof(buf) || (sh->policy = padded_dup(buf, (size_t)n)) == NULL)
        return -1;
    sh->policy_len = (size_t)n;
    return 0;
}

/* ---- per snapshot: plans ---- */

typedef struct {
    const gh_plan_t *p;
    gh_limit_spec_t throttle, quota;
    char *name[3];       /* "gold.throttle", "gold.quota", "gold.route": policy names */
    char *note[3];       /* "limit=" + name */
    char *error_note[3]; /* note + ",error": a fleet plan's store failed */
    rl_show_t show[2];   /* the plan's throttle and quota */
} rl_plan_t;

enum { PL_THROTTLE = 0, PL_QUOTA, PL_ROUTE };

typedef struct {
    rl_plan_t *plans;
    size_t num_plans;
    uint32_t *index; /* open addressing over plan names: plan index + 1 */
    uint32_t mask;
    /* With fleet limits: the backend and what it opened for this config. */
    const gh_ratelimit_fleet_t *fleet;
    void *fleet_backend;
} rl_rt_t;

static uint64_t name_hash(const char *s)
{
    return gh_limit_id(s, strlen(s));
}

/* A limit's description for its id: what it limits and how. */
static uint64_t spec_id(const char *what, const char *a, const char *b, const char *c,
                        const gh_limit_spec_t *spec, const char *key)
{
    char buf[1024];
    int n;
    if (spec->algo == GH_LIMIT_BUCKET)
        n = snprintf(buf, sizeof(buf), "%s|%s|%s|%s|%s|bucket|%llu|%llu|%llu", what, a, b, c, key,
                     (unsigned long long)spec->rate.requests, (unsigned long long)spec->rate.per_ms,
                     (unsigned long long)spec->rate.burst);
    else
        n = snprintf(buf, sizeof(buf), "%s|%s|%s|%s|%s|window|%llu|%d|%llu", what, a, b, c, key,
                     (unsigned long long)spec->quota.limit, (int)spec->quota.period,
                     (unsigned long long)spec->quota.offset_s);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1;
    return gh_limit_id(buf, (size_t)n);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s != NULL) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

static void rt_fini(void *p)
{
    rl_rt_t *rt = p;
    if (rt == NULL)
        return;
    for (size_t i = 0; i < rt->num_plans; i++)
        for (int k = 0; k < 3; k++) {
            free(rt->plans[i].name[k]);
            free(rt->plans[i].note[k]);
            free(rt->plans[i].error_note[k]);
            if (k < 2)
                show_dispose(&rt->plans[i].show[k]);
        }
    free(rt->plans);
    free(rt->index);
    if (rt->fleet != NULL && rt->fleet->close != NULL && rt->fleet_backend != NULL)
        rt->fleet->close(rt->fleet_backend);
    free(rt);
}

static int uses_limits(const gh_config_t *cfg)
{
    if (cfg->num_plans > 0)
        return 1;
    for (size_t l = 0; l < cfg->num_listeners; l++)
        for (size_t r = 0; r < cfg->listeners[l].num_routes; r++) {
            const gh_route_t *route = &cfg->listeners[l].routes[r];
            for (size_t f = 0; f < route->num_filters; f++)
                if (route->filters[f].type == &gh_ratelimit_filter)
                    return 1;
        }
    return 0;
}

static int uses_fleet(const gh_config_t *cfg)
{
    for (size_t i = 0; i < cfg->num_plans; i++)
        if (cfg->plans[i].fleet)
            return 1;
    for (size_t l = 0; l < cfg->num_listeners; l++)
        for (size_t r = 0; r < cfg->listeners[l].num_routes; r++) {
            const gh_route_t *route = &cfg->listeners[l].routes[r];
            for (size_t f = 0; f < route->num_filters; f++) {
                const rl_conf_t *c = route->filters[f].conf;
                if (route->filters[f].type != &gh_ratelimit_filter || c == NULL)
                    continue;
                for (size_t i = 0; i < c->num_limits; i++)
                    if (c->limits[i].fleet)
                        return 1;
            }
        }
    return 0;
}

static int rt_init(const gh_config_t *cfg, void **out)
{
    static const char *const suffix[3] = {".throttle", ".quota", ".route"};
    *out = NULL;
    if (!uses_limits(cfg))
        return 0;
    /* Main thread: the first snapshot with limits makes the table, which
     * then lives as long as the process (service_free). */
    if (table == NULL && (table = gh_limit_table_new(TABLE_KEYS)) == NULL)
        return -1;
    int fleet = uses_fleet(cfg);
    if (cfg->num_plans == 0 && !fleet)
        return 0;
    rl_rt_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return -1;
    if (fleet) {
        /* The backend of this snapshot, for its store: a reload that
         * changes the store opens another, and requests of the snapshot
         * before go on with the one they had. */
        rt->fleet = rl_fleet();
        rt->fleet_backend = rt->fleet->backend;
        if (rt->fleet->open != NULL) {
            char err[256] = "";
            if ((rt->fleet_backend = rt->fleet->open(cfg, err, sizeof(err))) == NULL) {
                GH_LOG(GH_LOG_ERROR, "rate_limits", "fleet limits (%s): %s", rt->fleet->name,
                       err[0] != '\0' ? err : "out of memory");
                goto fail;
            }
        }
    }
    if (cfg->num_plans == 0) {
        *out = rt;
        return 0;
    }
    size_t slots = 2;
    while (slots < cfg->num_plans * 2)
        slots <<= 1;
    rt->mask = (uint32_t)(slots - 1);
    if ((rt->plans = calloc(cfg->num_plans, sizeof(*rt->plans))) == NULL ||
        (rt->index = calloc(slots, sizeof(*rt->index))) == NULL)
        goto fail;
    rt->num_plans = cfg->num_plans;
    for (size_t i = 0; i < cfg->num_plans; i++) {
        rl_plan_t *pl = &rt->plans[i];
        pl->p = &cfg->plans[i];
        pl->throttle.algo = GH_LIMIT_BUCKET;
        pl->throttle.rate = pl->p->throttle;
        pl->throttle.id = spec_id("plan", pl->p->name, "throttle", "", &pl->throttle, "consumer");
        pl->quota.algo = GH_LIMIT_WINDOW;
        pl->quota.quota = pl->p->quota;
        pl->quota.id = spec_id("plan", pl->p->name, "quota", "", &pl->quota, "consumer");
        for (int k = 0; k < 3; k++)
            if ((pl->name[k] = join(pl->p->name, suffix[k])) == NULL ||
                (pl->note[k] = join("limit=", pl->name[k])) == NULL ||
                (pl->error_note[k] = join(pl->note[k], ",error")) == NULL)
                goto fail;
        /* Only what the plan has: an absent throttle's rate is all zeros. */
        if ((pl->p->has_throttle &&
             show_init(&pl->show[PL_THROTTLE], pl->name[PL_THROTTLE], &pl->throttle) < 0) ||
            (pl->p->has_quota &&
             show_init(&pl->show[PL_QUOTA], pl->name[PL_QUOTA], &pl->quota) < 0))
            goto fail;
        uint32_t h = (uint32_t)name_hash(pl->p->name) & rt->mask;
        while (rt->index[h] != 0)
            h = (h + 1) & rt->mask;
        rt->index[h] = (uint32_t)i + 1;
    }
    *out = rt;
    return 0;
fail:
    rt_fini(rt);
    return -1;
}

static const rl_plan_t *plan_find(const rl_rt_t *rt, const char *name)
{
    if (rt == NULL || rt->num_plans == 0)
        return NULL;
    for (uint32_t h = (uint32_t)name_hash(name) & rt->mask; rt->index[h] != 0;
         h = (h + 1) & rt->mask) {
        const rl_plan_t *pl = &rt->plans[rt->index[h] - 1];
        if (strcmp(pl->p->name, name) == 0)
            return pl;
    }
    return NULL;
}

static void service_free(void)
{
    gh_limit_table_free(table);
    table = NULL;
}

static size_t metrics(char *buf, size_t cap, void *arg)
{
    (void)arg;
    if (table == NULL)
        return 0;
    gh_limit_table_stats_t st;
    gh_limit_table_stats(table, &st);
    int n =
        snprintf(buf, cap,
                 "# HELP gatehouse_rate_limit_keys Counters held by the rate limit table.\n"
                 "# TYPE gatehouse_rate_limit_keys gauge\n"
                 "gatehouse_rate_limit_keys %llu\n"
                 "# HELP gatehouse_rate_limit_capacity Counters the rate limit table can hold.\n"
                 "# TYPE gatehouse_rate_limit_capacity gauge\n"
                 "gatehouse_rate_limit_capacity %llu\n"
                 "# HELP gatehouse_rate_limit_evictions_total Counters dropped for new keys, "
                 "by their state: at rest (nothing lost) or counting (a count forgotten).\n"
                 "# TYPE gatehouse_rate_limit_evictions_total counter\n"
                 "gatehouse_rate_limit_evictions_total{state=\"rest\"} %llu\n"
                 "gatehouse_rate_limit_evictions_total{state=\"counting\"} %llu\n",
                 (unsigned long long)st.keys, (unsigned long long)st.capacity,
                 (unsigned long long)st.evicted_rest, (unsigned long long)st.evicted_counting);
    size_t used = n < 0 ? 0 : (size_t)n;
    const gh_ratelimit_fleet_t *f = rl_fleet();
    if (f->metrics != NULL)
        used += f->metrics(used < cap ? buf + used : NULL, used < cap ? cap - used : 0);
    return used;
}

/* ---- per route: the instance ---- */

/* What the filter does with a fleet limit's answer: its names, fields,
 * counters and on_error. */
typedef struct {
    const char *note;       /* "limit=NAME" */
    const char *error_note; /* "limit=NAME,error": a fleet store error */
    const rl_show_t *show;  /* in the RateLimit fields, or NULL */
    uint32_t limited_id, error_id;
    int fail_open;
} rl_meta_t;

typedef struct {
    const rl_limit_conf_t *c;
    gh_limit_spec_t spec;
    char *note;       /* "limit=NAME" */
    char *error_note; /* "limit=NAME,error": a fleet store error */
    rl_show_t show;
    const rl_show_t *shown; /* &show, or NULL with headers: false */
    int fleet;              /* decided by the fleet backend */
    uint32_t limited_id, missing_id, error_id;
    rl_meta_t meta; /* fleet limits */
} rl_limit_t;

/* A plan that names this route in its `routes:`. */
typedef struct {
    const rl_plan_t *pl;
    int has_throttle;
    gh_limit_spec_t spec; /* the plan's throttle on this route, per consumer */
    rl_show_t show;
} rl_plan_route_t;

typedef struct {
    const rl_rt_t *rt;
    rl_limit_t *limits;
    size_t num_limits;
    int wall;  /* a route limit is a calendar window: the wall clock is read */
    int fleet; /* a route limit is decided by the fleet backend */
    rl_plan_route_t *plan_routes;
    size_t num_plan_routes;
    /* "\r\nRateLimit-Policy: ...\r\n" for a request that met exactly the
     * route's limits (none skipped, no plan), when all are shown and fixed;
     * else NULL. Padded for put_chunks. */
    char *policy_line;
    size_t policy_line_len;
    size_t fields_room;   /* add_fields' room for exactly the route's limits with policy_line */
    uint32_t plan_ids[3]; /* limited by the plan's throttle, quota, route throttle */
    uint32_t plan_error_ids[3]; /* their fleet store errors */
    uint32_t forbidden_id, unknown_id, repeated_id;
    /* The snapshot's fleet backend (rl_rt_t), when it has fleet limits. */
    const gh_ratelimit_fleet_t *fl;
    void *fl_backend;
} rl_inst_t;

static void inst_free(void *p)
{
    rl_inst_t *in = p;
    if (in == NULL)
        return;
    for (size_t i = 0; i < in->num_limits; i++) {
        free(in->limits[i].note);
        free(in->limits[i].error_note);
        show_dispose(&in->limits[i].show);
    }
    free(in->limits);
    for (size_t i = 0; i < in->num_plan_routes; i++)
        show_dispose(&in->plan_routes[i].show);
    free(in->plan_routes);
    free(in->policy_line);
    free(in);
}

static size_t fields_room(const rl_show_t *const *shows, size_t n, size_t line_len, int with_line);

static int policy_line(rl_inst_t *in)
{
    size_t len = 22 + 2; /* "\r\nRateLimit-Policy: " and "\r\n" */
    for (size_t i = 0; i < in->num_limits; i++) {
        if (in->limits[i].shown == NULL || in->limits[i].show.policy == NULL)
            return 0; /* made per request */
        len += in->limits[i].show.policy_len + 2;
    }
    char *line = malloc(len), *p = line;
    if (line == NULL)
        return -1;
    memcpy(p, "\r\nRateLimit-Policy: ", 20);
    p += 20;
    for (size_t i = 0; i < in->num_limits; i++) {
        if (i > 0) {
            memcpy(p, ", ", 2);
            p += 2;
        }
        memcpy(p, in->limits[i].show.policy, in->limits[i].show.policy_len);
        p += in->limits[i].show.policy_len;
    }
    memcpy(p, "\r\n", 2);
    p += 2;
    in->policy_line = padded_dup(line, (size_t)(p - line));
    in->policy_line_len = (size_t)(p - line);
    free(line);
    if (in->policy_line == NULL)
        return -1;
    const rl_show_t *shows[MAX_TAKEN];
    size_t n = 0;
    for (size_t i = 0; i < in->num_limits && n < MAX_TAKEN; i++)
        shows[n++] = in->limits[i].shown;
    in->fields_room = n == in->num_limits ? fields_room(shows, n, in->policy_line_len, 1) : 0;
    return 0;
}

static const char *key_desc(const rl_limit_conf_t *c, char *buf, size_t cap)
{
    static const char *const kinds[] = {"address", "consumer", "route", "header:", "claim:"};
    snprintf(buf, cap, "%s%s", kinds[c->key], c->arg != NULL ? c->arg : "");
    return buf;
}

static void *inst_bind(void *rtp, const gh_config_t *cfg, const gh_route_t *route,
                       const void *confp, const char *listener)
{
    const rl_conf_t *conf = confp;
    const rl_rt_t *rt = rtp;
    rl_inst_t *in = calloc(1, sizeof(*in));
    char desc[512], ev[128];
    if (in == NULL)
        return NULL;
    in->rt = rt;
    if (conf->num_limits > 0 &&
        (in->limits = calloc(conf->num_limits, sizeof(*in->limits))) == NULL)
        goto fail;
    for (size_t i = 0; i < conf->num_limits; i++) {
        rl_limit_t *l = &in->limits[in->num_limits++];
        l->c = &conf->limits[i];
        l->spec.algo = l->c->algo;
        l->spec.rate = l->c->rate;
        l->spec.quota = l->c->quota;
        l->spec.id = spec_id(l->c->fleet ? "route-fleet" : "route", listener, route->name,
                             l->c->name, &l->spec, key_desc(l->c, desc, sizeof(desc)));
        if ((l->note = join("limit=", l->c->name)) == NULL ||
            (l->error_note = join(l->note, ",error")) == NULL ||
            show_init(&l->show, l->c->name, &l->spec) < 0)
            goto fail;
        l->shown = l->c->headers ? &l->show : NULL;
        l->fleet = l->c->fleet;
        snprintf(ev, sizeof(ev), "limited:%s", l->c->name);
        l->limited_id = gh_metrics_filter_id("rate_limits", route->name, ev);
        snprintf(ev, sizeof(ev), "missing:%s", l->c->name);
        l->missing_id = gh_metrics_filter_id("rate_limits", route->name, ev);
        snprintf(ev, sizeof(ev), "error:%s", l->c->name);
        l->error_id = gh_metrics_filter_id("rate_limits", route->name, ev);
        l->meta = (rl_meta_t){.note = l->note,
                              .error_note = l->error_note,
                              .show = l->shown,
                              .limited_id = l->limited_id,
                              .error_id = l->error_id,
                              .fail_open = l->c->fail_open};
        in->wall |= l->c->algo == GH_LIMIT_WINDOW;
        in->fleet |= l->c->fleet;
    }
    in->repeated_id = gh_metrics_filter_id("rate_limits", route->name, "repeated_key");
    if (in->num_limits > 0 && policy_line(in) < 0)
        goto fail;
    if (rt != NULL) {
        in->fl = rt->fleet;
        in->fl_backend = rt->fleet_backend;
    }
    if (rt != NULL && rt->num_plans > 0) {
        in->plan_error_ids[PL_THROTTLE] =
            gh_metrics_filter_id("rate_limits", route->name, "error:plan.throttle");
        in->plan_error_ids[PL_QUOTA] =
            gh_metrics_filter_id("rate_limits", route->name, "error:plan.quota");
        in->plan_error_ids[PL_ROUTE] =
            gh_metrics_filter_id("rate_limits", route->name, "error:plan.route");
        in->plan_ids[PL_THROTTLE] =
            gh_metrics_filter_id("rate_limits", route->name, "limited:plan.throttle");
        in->plan_ids[PL_QUOTA] =
            gh_metrics_filter_id("rate_limits", route->name, "limited:plan.quota");
        in->plan_ids[PL_ROUTE] =
            gh_metrics_filter_id("rate_limits", route->name, "limited:plan.route");
        in->forbidden_id = gh_metrics_filter_id("rate_limits", route->name, "forbidden:plan.route");
        in->unknown_id = gh_metrics_filter_id("rate_limits", route->name, "forbidden:plan.unknown");
        size_t n = 0;
        for (size_t i = 0; i < cfg->num_plans; i++)
            for (size_t j = 0; j < cfg->plans[i].num_routes; j++)
                n += strcmp(cfg->plans[i].routes[j].route, route->name) == 0;
        if (n > 0 && (in->plan_routes = calloc(n, sizeof(*in->plan_routes))) == NULL)
            goto fail;
        for (size_t i = 0; i < cfg->num_plans; i++)
            for (size_t j = 0; j < cfg->plans[i].num_routes; j++) {
                const gh_plan_route_t *pr = &cfg->plans[i].routes[j];
                if (strcmp(pr->route, route->name) != 0)
                    continue;
                rl_plan_route_t *x = &in->plan_routes[in->num_plan_routes++];
                x->pl = &rt->plans[i];
                x->has_throttle = pr->has_throttle;
                x->spec.algo = GH_LIMIT_BUCKET;
                x->spec.rate = pr->throttle;
                x->spec.id = spec_id("plan-route", cfg->plans[i].name, listener, route->name,
                                     &x->spec, "consumer");
                if (x->has_throttle && show_init(&x->show, x->pl->name[PL_ROUTE], &x->spec) < 0)
                    goto fail;
            }
    }
    return in;
fail:
    inst_free(in);
    return NULL;
}

/* ---- per request ---- */

/* One limit the request met. */
typedef struct {
    const gh_limit_spec_t *spec;
    const char *key;
    size_t key_len;
    const rl_show_t *show; /* in the RateLimit fields, or NULL: not shown */
    gh_limit_result_t res;
} taken_t;

/* A request's decision in progress (on the stack: nothing of it outlives
 * the callback on the local path). */
typedef struct {
    taken_t taken[MAX_TAKEN]; /* limits taken (given back if a later one refuses) */
    size_t num_taken;
    gh_limit_now_t now;
} run_t;

static void now_wall(gh_limit_now_t *now)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    now->wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void refund_all(const run_t *ctx)
{
    for (size_t i = ctx->num_taken; i-- > 0;)
        gh_limit_table_refund(table, ctx->taken[i].spec, ctx->taken[i].key, ctx->taken[i].key_len,
                              &ctx->now);
}

static const char digits2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";

static const uint64_t pow10[20] = {1ULL,
                                   10ULL,
                                   100ULL,
                                   1000ULL,
                                   10000ULL,
                                   100000ULL,
                                   1000000ULL,
                                   10000000ULL,
                                   100000000ULL,
                                   1000000000ULL,
                                   10000000000ULL,
                                   100000000000ULL,
                                   1000000000000ULL,
                                   10000000000000ULL,
                                   100000000000000ULL,
                                   1000000000000000ULL,
                                   10000000000000000ULL,
                                   100000000000000000ULL,
                                   1000000000000000000ULL,
                                   10000000000000000000ULL};

/* v in decimal, written in place from its last digit, two digits a step
 * (these run on every limited response). The number of digits comes from
 * the bit length: log10(2) ~ 1233/4096, then one comparison. */
static inline char *put_u64_slow(char *p, uint64_t v)
{
    unsigned bits = 64 - (unsigned)__builtin_clzll(v | 1);
    unsigned n = (bits * 1233) >> 12;
    n += v >= pow10[n];
    if (n == 0)
        n = 1;
    char *q = p + n;
    if (v <= UINT32_MAX) {
        uint32_t w = (uint32_t)v;
        while (w >= 100) {
            uint32_t r = w % 100;
            w /= 100;
            q -= 2;
            q[0] = digits2[2 * r];
            q[1] = digits2[2 * r + 1];
        }
        v = w;
    } else {
        while (v >= 100) {
            unsigned r = (unsigned)(v % 100);
            v /= 100;
            q -= 2;
            q[0] = digits2[2 * r];
            q[1] = digits2[2 * r + 1];
        }
    }
    if (v >= 10) {
        q[-2] = digits2[2 * v];
        q[-1] = digits2[2 * v + 1];
    } else {
        q[-1] = (char)('0' + v);
    }
    return p + n;
}

static inline char *put2(char *p, unsigned v)
{
    p[0] = digits2[2 * v];
    p[1] = digits2[2 * v + 1];
    return p + 2;
}

/* Numbers below 100,000 (remaining units and seconds, mostly) without a
 * loop or a digit count; larger ones by put_u64_slow. */
static inline char *put_u64(char *p, uint64_t v)
{
    if (v < 10) {
        *p = (char)('0' + v);
        return p + 1;
    }
    if (v < 100)
        return put2(p, (unsigned)v);
    if (v < 100000) {
        unsigned w = (unsigned)v, lo = w % 100, hi = w / 100;
        if (hi < 10)
            *p++ = (char)('0' + hi);
        else if (hi < 100)
            p = put2(p, hi);
        else {
            *p++ = (char)('0' + hi / 100);
            p = put2(p, hi % 100);
        }
        return put2(p, lo);
    }
    return put_u64_slow(p, v);
}

static char *put_mem(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put_mem((p), (lit), sizeof(lit) - 1)

/* The RateLimit and RateLimit-Policy fields of draft-ietf-httpapi-
 * ratelimit-headers-11 (sections 3 and 4), for the limits in t[0..n) that
 * have a name: Structured Field lists of
 *   RateLimit: "name";r=REMAINING;t=SECONDS
 *   RateLimit-Policy: "name";q=QUOTA;w=WINDOW
 * Names use an alphabet that needs no escaping in an sf-string (conf.c),
 * so the lines go out without the per-byte checks of
 * gh_stream_add_response_header. */
/* At most, per item shown: ", " or "RateLimit: ", its name piece, two
 * numbers of at most 20 digits and ";t="; its policy item (", ", the piece
 * or the name piece with "q=", ";w=" and two numbers), or the route's whole
 * line once; the other field name and the line ends; CHUNK of room for the
 * last copy. Counted from the pieces' own lengths (a plan's names are
 * longer than a route limit's). One route limit fits the stream's first
 * 256 bytes of fields. */
static size_t fields_room(const rl_show_t *const *shows, size_t n, size_t line_len, int with_line)
{
    size_t max = 24 + 4 + CHUNK + (with_line ? line_len : 0);
    for (size_t i = 0; i < n; i++) {
        const rl_show_t *sh = shows[i];
        if (sh == NULL)
            continue;
        max += 11 + sh->item_len + 20 + 3 + 20;
        if (!with_line)
            max += 2 + (sh->policy != NULL ? sh->policy_len : sh->item_len + 2 + 20 + 3 + 20);
    }
    return max;
}

/* room: fields_room's answer when known (the route's own limits), else 0. */
static void add_fields(gh_stream_t *s, const taken_t *t, size_t n, const char *line,
                       size_t line_len, size_t room)
{
    if (room == 0) {
        const rl_show_t *shows[MAX_TAKEN];
        for (size_t i = 0; i < n; i++)
            shows[i] = t[i].show;
        room = fields_room(shows, n, line_len, line != NULL);
    }
    char *buf = gh_stream_response_lines_reserve(s, room), *p = buf;
    size_t shown = 0;
    /* Out of memory: the fields are left out; they are advice to the
     * client, not part of the decision. */
    if (buf == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const rl_show_t *sh = t[i].show;
        if (sh == NULL)
            continue;
        p = shown++ == 0 ? PUT_LIT(p, "RateLimit: ") : PUT_LIT(p, ", ");
        p = put_chunks(p, sh->item, sh->item_len);
        p = put_u64(p, t[i].res.remaining);
        p = PUT_LIT(p, ";t=");
        p = put_u64(p, t[i].res.reset_s);
    }
    if (shown == 0)
        return;
    if (line != NULL) {
        p = put_chunks(p, line, line_len);
        gh_stream_response_lines_commit(s, (size_t)(p - buf));
        return;
    }
    p = PUT_LIT(p, "\r\nRateLimit-Policy: ");
    shown = 0;
    for (size_t i = 0; i < n; i++) {
        const rl_show_t *sh = t[i].show;
        if (sh == NULL)
            continue;
        if (shown++ > 0)
            p = PUT_LIT(p, ", ");
        if (sh->policy != NULL) {
            p = put_chunks(p, sh->policy, sh->policy_len);
            continue;
        }
        p = put_chunks(p, sh->item, sh->item_len - 2); /* "\"NAME\";" */
        p = PUT_LIT(p, "q=");
        p = put_u64(p, t[i].res.limit);
        p = PUT_LIT(p, ";w=");
        p = put_u64(p, t[i].res.window_s);
    }
    p = PUT_LIT(p, "\r\n");
    gh_stream_response_lines_commit(s, (size_t)(p - buf));
}

__attribute__((cold, noinline)) static void refuse(gh_stream_t *s, run_t *ctx, const taken_t *t,
                                                   const char *note, uint32_t metric)
{
    char extra[64], detail[160];
    refund_all(ctx);
    ctx->num_taken = 0;
    if (t->show != NULL)
        add_fields(s, t, 1, NULL, 0, 0);
    snprintf(extra, sizeof(extra), "retry-after: %llu\r\n", (unsigned long long)t->res.retry_s);
    snprintf(detail, sizeof(detail), "rate limit '%s' exceeded; retry after %llu s",
             note + 6 /* after "limit=" */, (unsigned long long)t->res.retry_s);
    gh_stream_count(s, metric);
    gh_stream_log_note(s, note);
    gh_stream_reply_error_with(s, 429, "rate_limited", detail, extra);
}

/* The address key of an IPv6 client: its /64, since one subscriber
 * commonly holds a whole /64 and could otherwise take a fresh bucket with
 * every address of it (the listener's max_connections_per_address counts
 * the same way). The key is binary, a 0x06 byte and the 8 bytes of the
 * prefix, so no IPv4 address text equals it; an IPv4-mapped address is
 * keyed by its IPv4 text, as the same client over IPv4. */
__attribute__((noinline)) static int v6_key(gh_stream_t *s, const char *a, const char **key,
                                            size_t *len)
{
    uint8_t ip[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    *key = a;
    *len = strlen(a);
    if (gh_ip_parse(a, *len, ip) < 0)
        return 1; /* not an address: its text */
    char *k = gh_stream_alloc(s, 16);
    if (k == NULL)
        return 0; /* the stream is marked: answered 503, not forwarded */
    if (memcmp(ip, mapped, sizeof(mapped)) == 0) {
        int n = snprintf(k, 16, "%u.%u.%u.%u", ip[12], ip[13], ip[14], ip[15]);
        *len = (size_t)n;
    } else {
        k[0] = 0x06;
        memcpy(k + 1, ip, 8);
        *len = 9;
    }
    *key = k;
    return 1;
}

/* The key of limit l for this request: 1 with *key, *len; 0 when the
 * request has none; -1 when it has several (a repeated header). */
static int key_of(gh_stream_t *s, const rl_limit_conf_t *c, json_t **claims, const char **key,
                  size_t *len)
{
    switch (c->key) {
    case RL_KEY_ADDRESS: {
        const char *a = gh_stream_client_address(s);
        /* IPv6 text has a ':' in its first five characters; IPv4 has
         * none, and at least seven characters. */
        if (a[0] == ':' || a[1] == ':' || a[2] == ':' || a[3] == ':' || a[4] == ':')
            return v6_key(s, a, key, len);
        *key = a;
        *len = strlen(a);
        return 1;
    }
    case RL_KEY_ROUTE:
        *key = "";
        *len = 0;
        return 1;
    case RL_KEY_CONSUMER: {
        const char *cons = gh_stream_identity(s)->consumer;
        if (cons == NULL || cons[0] == '\0')
            return 0;
        *key = cons;
        *len = strlen(cons);
        return 1;
    }
    case RL_KEY_HEADER: {
        size_t n, found = 0;
        const gh_h1_header_t *h = gh_stream_headers(s, &n);
        for (size_t i = 0; i < n; i++)
            if (gh_field_name_same(h[i].name, h[i].name_len, c->arg, c->arg_len)) {
                /* Two fields: which one the upstream reads is not ours to
                 * know, and a decoy first field would put one caller's
                 * requests in another's bucket. Names are compared as
                 * CGI-style upstreams read them ('_' as '-'), so
                 * "X_Tenant" is such a second field. */
                if (found++)
                    return -1;
                *key = h[i].value;
                *len = h[i].value_len;
            }
        return found == 1 && *len > 0;
    }
    case RL_KEY_CLAIM: {
        if (*claims == NULL) {
            size_t clen;
            const char *text = gh_stream_claims(s, &clen);
            if (text == NULL)
                return 0;
            if ((*claims = json_loadb(text, clen, JSON_REJECT_DUPLICATES, NULL)) == NULL)
                return 0;
        }
        json_t *v = gh_jwt_json_path(*claims, c->arg, c->arg_len);
        if (v == NULL)
            return 0;
        char *buf = gh_stream_alloc(s, MAX_CLAIM_KEY);
        if (buf == NULL)
            return 0; /* the stream is marked: answered 503, not forwarded */
        int n = gh_jwt_claim_render(v, buf, MAX_CLAIM_KEY);
        if (n <= 0)
            return 0;
        *key = buf;
        *len = (size_t)n;
        return 1;
    }
    }
    return 0;
}

/* ---- fleet limits (ratelimit.h) ---- */

/* A request's fleet batch, with what the decision needs once the backend
 * answers: the local limits taken (to give back if a fleet limit
 * refuses). malloc'd, not in the stream: the backend may answer after the
 * stream ended, and done frees it then. */
typedef struct {
    gh_ratelimit_batch_t b;
    gh_stream_handle_t *h;
    run_t run;
    /* meta and spec point into the snapshot: read only while the stream
     * (which holds it) lives. */
    rl_meta_t meta[GH_RATELIMIT_FLEET_MAX];
    gh_ratelimit_item_t items[GH_RATELIMIT_FLEET_MAX];
} rl_call_t;

static gh_filter_status_t run_plan(gh_stream_t *s, const rl_inst_t *in, run_t *ctx,
                                   rl_call_t **call);

/* Adds a fleet limit to the request's batch (made on its first). 0, or -1
 * when out of memory (the stream is answered 503) or over the batch's
 * size (the config check keeps a route within it). */
static int fleet_add(gh_stream_t *s, run_t *ctx, rl_call_t **callp, const gh_limit_spec_t *spec,
                     const char *key, size_t key_len, const rl_meta_t *meta)
{
    rl_call_t *call = *callp;
    if (call == NULL && (call = *callp = calloc(1, sizeof(*call))) == NULL) {
        refund_all(ctx);
        ctx->num_taken = 0;
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return -1;
    }
    if (call->b.num_items == GH_RATELIMIT_FLEET_MAX) {
        refund_all(ctx);
        ctx->num_taken = 0;
        gh_stream_reply_error(s, 503, "service_unavailable", "too many fleet limits");
        return -1;
    }
    gh_ratelimit_item_t *it = &call->items[call->b.num_items];
    it->spec = spec;
    it->key = key;
    it->key_len = key_len;
    call->meta[call->b.num_items++] = *meta;
    return 0;
}

/* The fleet limits' answer (status as done's), with the local limits in
 * call->run taken already: continue, or the refusal that was sent. */
static gh_filter_status_t fleet_decide(gh_stream_t *s, rl_call_t *call, int status)
{
    run_t *ctx = &call->run;
    if (status < 0) {
        /* The store failed: every limit counts it; the first that fails
         * closed answers 503, and one that fails open passes, unshown. */
        const rl_meta_t *closed = NULL;
        for (size_t i = 0; i < call->b.num_items; i++) {
            const rl_meta_t *m = &call->meta[i];
            gh_stream_count(s, m->error_id);
            if (!m->fail_open && closed == NULL)
                closed = m;
        }
        if (closed == NULL) {
            gh_stream_log_note(s, call->meta[0].error_note);
            add_fields(s, ctx->taken, ctx->num_taken, NULL, 0, 0);
            return GH_FILTER_CONTINUE;
        }
        gh_stream_log_note(s, closed->error_note);
        refund_all(ctx);
        ctx->num_taken = 0;
        gh_stream_reply_error(s, 503, "service_unavailable", "the rate limit store is unavailable");
        return GH_FILTER_REPLIED;
    }
    for (size_t i = 0; i < call->b.num_items; i++) {
        const rl_meta_t *m = &call->meta[i];
        gh_ratelimit_item_t *it = &call->items[i];
        taken_t *t = &ctx->taken[ctx->num_taken];
        t->spec = it->spec;
        t->key = it->key;
        t->key_len = it->key_len;
        t->show = m->show;
        t->res = it->res;
        if (!it->res.allowed) {
            /* The backend took nothing when one item refused: only the
             * local limits give their units back. */
            refuse(s, ctx, t, m->note, m->limited_id);
            return GH_FILTER_REPLIED;
        }
        ctx->num_taken++;
    }
    add_fields(s, ctx->taken, ctx->num_taken, NULL, 0, 0);
    return GH_FILTER_CONTINUE;
}

static void fleet_done(gh_ratelimit_batch_t *b, int status)
{
    rl_call_t *call = (rl_call_t *)((char *)b - offsetof(rl_call_t, b));
    gh_stream_t *s = gh_stream_handle_take(call->h);
    if (s != NULL && fleet_decide(s, call, status) == GH_FILTER_CONTINUE) {
        free(call);
        gh_stream_continue(s);
        return;
    }
    free(call); /* the client left meanwhile, or the request was answered */
}

/* Hands the fleet limits in call->items to the backend and pauses the
 * stream until it answers. */
__attribute__((noinline)) static gh_filter_status_t run_fleet(gh_stream_t *s, const rl_inst_t *in,
                                                              rl_call_t *call)
{
    const gh_ratelimit_fleet_t *f = in->fl;
    int rc = -ENOTSUP;
    call->b.items = call->items;
    call->b.now = call->run.now;
    call->b.loop = gh_stream_loop(s);
    call->b.done = fleet_done;
    if (f != NULL) {
        /* The backend's per-worker state (its Redis client), made on this
         * worker's first fleet request. */
        if (f->worker_new != NULL &&
            (call->b.worker = gh_stream_worker_state(s, &gh_ratelimit_filter, f->worker_new,
                                                     f->worker_free)) == NULL)
            rc = -ENOMEM;
        else
            rc = f->take(in->fl_backend, &call->b);
    }
    /* The backend never answers inside take: a take that fails is the
     * store's error, decided here without pausing. */
    if (rc < 0) {
        gh_filter_status_t st = fleet_decide(s, call, rc);
        free(call);
        return st;
    }
    if ((call->h = gh_stream_pause(s)) == NULL) {
        /* done will find no stream and free the call. */
        refund_all(&call->run);
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    return GH_FILTER_PAUSE;
}

static gh_filter_status_t on_request_headers(gh_stream_t *s, const void *conf, void *vctx)
{
    const rl_inst_t *in = conf;
    run_t run, *ctx = &run;
    json_t *claims = NULL;
    gh_filter_status_t st = GH_FILTER_CONTINUE;
    rl_call_t *call = NULL;
    (void)vctx;
    ctx->num_taken = 0;
    ctx->now.mono_ms = gh_stream_now_ms(s);
    if (in->wall)
        now_wall(&ctx->now);
    for (size_t i = 0; i < in->num_limits; i++) {
        const rl_limit_t *l = &in->limits[i];
        taken_t *t = &ctx->taken[ctx->num_taken];
        int k = key_of(s, l->c, &claims, &t->key, &t->key_len);
        if (__builtin_expect(k < 0, 0)) {
            refund_all(ctx);
            ctx->num_taken = 0;
            gh_stream_count(s, in->repeated_id);
            gh_stream_log_note(s, l->note);
            gh_stream_reply_error(s, 400, "bad_request",
                                  "a header that keys a rate limit is repeated");
            st = GH_FILTER_REPLIED;
            break;
        }
        if (__builtin_expect(k == 0, 0)) {
            gh_stream_count(s, l->missing_id);
            if (l->c->missing == RL_MISSING_SKIP)
                continue;
            if (l->c->missing == RL_MISSING_DENY) {
                refund_all(ctx);
                ctx->num_taken = 0;
                gh_stream_log_note(s, l->note);
                gh_stream_reply_error(s, 400, "bad_request",
                                      "the request lacks the key of a rate limit");
                st = GH_FILTER_REPLIED;
                break;
            }
            t->key = "";
            t->key_len = 0;
        }
        if (__builtin_expect(l->fleet, 0)) {
            /* Decided after the local limits passed, in one batch. */
            if (fleet_add(s, ctx, &call, &l->spec, t->key, t->key_len, &l->meta) < 0) {
                st = GH_FILTER_REPLIED;
                break;
            }
            continue;
        }
        t->spec = &l->spec;
        t->show = l->shown;
        if (__builtin_expect(
                !gh_limit_table_take(table, &l->spec, t->key, t->key_len, &ctx->now, &t->res), 0)) {
            refuse(s, ctx, t, l->note, l->limited_id);
            st = GH_FILTER_REPLIED;
            break;
        }
        ctx->num_taken++;
    }
    if (claims != NULL)
        json_decref(claims);
    /* The route's precomputed RateLimit-Policy line is right only when the
     * limits taken are the route's, every one: a plan's limits are taken
     * after them, and one of the route's may have been skipped. */
    size_t route_taken = ctx->num_taken;
    if (st == GH_FILTER_CONTINUE && in->rt != NULL && in->rt->num_plans > 0 &&
        gh_stream_identity(s)->plan != NULL)
        st = run_plan(s, in, ctx, &call);
    if (call != NULL) {
        if (st != GH_FILTER_CONTINUE) {
            free(call);
            return st;
        }
        call->run = *ctx;
        return run_fleet(s, in, call);
    }
    if (st != GH_FILTER_CONTINUE)
        return st;
    if (route_taken == in->num_limits && ctx->num_taken == route_taken)
        add_fields(s, ctx->taken, ctx->num_taken, in->policy_line, in->policy_line_len,
                   in->fields_room);
    else
        add_fields(s, ctx->taken, ctx->num_taken, NULL, 0, 0);
    return GH_FILTER_CONTINUE;
}

static int take_one(gh_stream_t *s, run_t *ctx, const gh_limit_spec_t *spec, const rl_show_t *show,
                    const char *note, uint32_t metric, const char *key, size_t len)
{
    taken_t *t = &ctx->taken[ctx->num_taken];
    t->spec = spec;
    t->key = key;
    t->key_len = len;
    t->show = show;
    if (!gh_limit_table_take(table, spec, key, len, &ctx->now, &t->res)) {
        refuse(s, ctx, t, note, metric);
        return 0;
    }
    ctx->num_taken++;
    return 1;
}

/* One of the plan's limits (k: PL_*): taken here, or added to the fleet
 * batch for a plan with mode: fleet. 1 to go on, 0 when answered. */
static int plan_take(gh_stream_t *s, const rl_inst_t *in, run_t *ctx, rl_call_t **call,
                     const rl_plan_t *pl, int k, const gh_limit_spec_t *spec, const rl_show_t *show,
                     const char *cons, size_t len)
{
    if (pl->p->fleet) {
        rl_meta_t m = {.note = pl->note[k],
                       .error_note = pl->error_note[k],
                       .show = show,
                       .limited_id = in->plan_ids[k],
                       .error_id = in->plan_error_ids[k],
                       .fail_open = pl->p->fail_open};
        return fleet_add(s, ctx, call, spec, cons, len, &m) == 0;
    }
    if (k == PL_QUOTA && !in->wall)
        now_wall(&ctx->now);
    return take_one(s, ctx, spec, show, pl->note[k], in->plan_ids[k], cons, len);
}

/* The identity's usage plan: AWS API Gateway's semantics, per consumer
 * (docs/rate-limits.md: a consumer's keys share its counts). */
static gh_filter_status_t run_plan(gh_stream_t *s, const rl_inst_t *in, run_t *ctx,
                                   rl_call_t **call)
{
    const gh_identity_t *id = gh_stream_identity(s);
    const rl_plan_t *pl = plan_find(in->rt, id->plan);
    if (pl == NULL || id->consumer == NULL || id->consumer[0] == '\0') {
        /* A key whose plan the config does not have (renamed, removed):
         * refused, not served without limits. */
        refund_all(ctx);
        ctx->num_taken = 0;
        gh_stream_count(s, in->unknown_id);
        gh_stream_log_note(s, "limit=plan.unknown");
        gh_stream_reply_error(s, 403, "forbidden", "the API key's usage plan is not configured");
        return GH_FILTER_REPLIED;
    }
    const rl_plan_route_t *pr = NULL;
    for (size_t i = 0; i < in->num_plan_routes && pr == NULL; i++)
        if (in->plan_routes[i].pl == pl)
            pr = &in->plan_routes[i];
    if (pl->p->restrict_routes && pr == NULL) {
        refund_all(ctx);
        ctx->num_taken = 0;
        gh_stream_count(s, in->forbidden_id);
        gh_stream_log_note(s, "limit=plan.route");
        gh_stream_reply_error(s, 403, "forbidden",
                              "the API key's usage plan does not include this route");
        return GH_FILTER_REPLIED;
    }
    const char *cons = id->consumer;
    size_t len = strlen(cons);
    if (pl->p->has_throttle && !plan_take(s, in, ctx, call, pl, PL_THROTTLE, &pl->throttle,
                                          &pl->show[PL_THROTTLE], cons, len))
        return GH_FILTER_REPLIED;
    if (pr != NULL && pr->has_throttle &&
        !plan_take(s, in, ctx, call, pl, PL_ROUTE, &pr->spec, &pr->show, cons, len))
        return GH_FILTER_REPLIED;
    if (pl->p->has_quota &&
        !plan_take(s, in, ctx, call, pl, PL_QUOTA, &pl->quota, &pl->show[PL_QUOTA], cons, len))
        return GH_FILTER_REPLIED;
    return GH_FILTER_CONTINUE;
}

const gh_filter_type_t gh_ratelimit_filter = {
    .name = "rate_limits",
    .phase = GH_PHASE_LIMITS,
    .ctx_size = 0,
    .parse = rl_parse,
    .check = rl_check,
    .free_conf = rl_free_conf,
    .implied = rl_implied,
    .init = rt_init,
    .fini = rt_fini,
    .bind = inst_bind,
    .unbind = inst_free,
    .service_free = service_free,
    .metrics = metrics,
    .on_request_headers = on_request_headers,
};
