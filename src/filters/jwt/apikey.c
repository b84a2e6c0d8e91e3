/*
 * API keys in the authn filter (docs/api-keys.md): where a route's apikeys
 * providers find a key, each worker's cache of looked-up keys, the
 * asynchronous lookup in the store on a miss, and the identity a valid key
 * gives (consumer, plan, scopes).
 *
 * The cache holds the presented key itself, compared in constant time
 * (a timing difference would tell a prober how much of a cached key it has
 * right), with what the store said about it: the record, or "no such key"
 * (negative caching). An entry is trusted for the cache_ttl
 * (negative_cache_ttl for unknown keys) of the provider that reads it,
 * whichever provider's lookup made it: that is how late a revocation,
 * made by any gatehouse sharing the store, takes effect on its routes. A key's own
 * expiry and rotation grace are judged at every request from the record.
 *
 * A miss pauses the stream; the lookup's answer fills the cache (or, with
 * cache_entries 0, the stream's own context) and the decision runs again,
 * now without a miss. A stream that ends while its lookup is in flight
 * cancels it (on_cancel): the store then never calls back into it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <gatehouse/fields.h>
#include <gatehouse/log.h>
#include <gatehouse/metrics.h>
#include <gatehouse/pairs.h>
#include <gatehouse/store.h>

#include "filters/jwt/internal.h"

/* ---- per snapshot ---- */

static uint64_t next_store_id = 1;

int gh_jwtf_ak_init(const gh_config_t *cfg, gh_jwtf_ak_runtime_t *ak)
{
    memset(ak, 0, sizeof(*ak));
    /* An aws-v1 authorizer's usageIdentifierKey is looked up in the store
     * too (gh_jwtf_ak_usage). */
    int usage = 0;
    for (size_t i = 0; i < cfg->num_authorizers; i++)
        usage |= cfg->authorizers[i].format == GH_AUTHORIZER_AWS_V1_TOKEN ||
                 cfg->authorizers[i].format == GH_AUTHORIZER_AWS_V1_REQUEST;
    if (cfg->num_apikey_providers == 0 && !usage)
        return 0;
    /* The process's current store (gatehouse/store.h), which the server
     * selected for cfg before building this snapshot; the admin API uses
     * the same object. */
    gh_store_error_t err = {{0}};
    ak->store = gh_store_current_get(&err);
    if (ak->store == NULL)
        GH_LOG(GH_LOG_ERROR, "apikeys", "cannot open the store: %s", err.msg);
    ak->id = next_store_id++;
    if (cfg->num_apikey_providers == 0)
        return 0;
    ak->ids = calloc(cfg->num_apikey_providers, sizeof(*ak->ids));
    if (ak->ids == NULL)
        return -1;
    for (size_t i = 0; i < cfg->num_apikey_providers; i++)
        for (int r = 0; r < GH_AK_REASON_COUNT; r++)
            ak->ids[i][r] =
                gh_metrics_decision_id(cfg->apikey_providers[i].name,
                                       r == GH_AK_OK ? "allow" : "deny", gh_jwtf_ak_reason_name(r));
    return 0;
}

void gh_jwtf_ak_fini(gh_jwtf_ak_runtime_t *ak)
{
    if (ak->store != NULL)
        gh_store_unref(ak->store);
    free(ak->ids);
    memset(ak, 0, sizeof(*ak));
}

size_t gh_jwtf_ak_ready(const gh_jwtf_ak_runtime_t *ak, const gh_config_t *cfg, char *line,
                        size_t cap)
{
    if (cfg->num_apikey_providers == 0 || ak->store != NULL)
        return 0;
    snprintf(line, cap, "apikeys: the store cannot be opened (see the log)");
    return 1;
}

/* ---- reasons ---- */

static const struct {
    const char *name; /* metrics label */
    int status;
    const char *text; /* the JSON detail */
} reasons[GH_AK_REASON_COUNT] = {
    [GH_AK_OK] = {"ok", 200, "ok"},
    [GH_AK_MISSING] = {"missing_key", 401, "no API key in the request"},
    [GH_AK_MULTIPLE] = {"multiple_keys", 401, "more than one API key in the request"},
    [GH_AK_MALFORMED] = {"malformed_key", 401, "malformed API key"},
    [GH_AK_UNKNOWN] = {"unknown_key", 401, "unknown API key"},
    [GH_AK_REVOKED] = {"revoked_key", 401, "revoked API key"},
    [GH_AK_DISABLED] = {"disabled_key", 401, "disabled API key"},
    [GH_AK_EXPIRED] = {"expired_key", 401, "expired API key"},
    [GH_AK_REPLACED] = {"replaced_key", 401, "API key replaced by rotation (its grace is over)"},
    [GH_AK_STORE_UNAVAILABLE] = {"store_unavailable", 503, "the key store is unavailable"},
    [GH_AK_BUSY] = {"store_busy", 503, "too many key lookups in flight"},
    [GH_AK_OUT_OF_MEMORY] = {"out_of_memory", 503, "out of memory"},
    [GH_AK_PLAN_UNKNOWN] = {"plan_unknown", 403, "the API key's usage plan is not configured"},
};

const char *gh_jwtf_ak_reason_name(int r)
{
    return reasons[r].name;
}

int gh_jwtf_ak_reason_status(int r)
{
    return reasons[r].status;
}

static void count(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k, int r)
{
    const gh_apikey_provider_conf_t *p = fc->authn->apikeys[k];
    if (fc->ak == NULL || fc->ak->ids == NULL)
        return;
    gh_decision_stats_t *d = gh_metrics_decision(gh_stream_metrics(s), fc->ak->ids[p->index][r]);
    if (d != NULL)
        GH_STAT_INC(d->count);
}

void gh_jwtf_ak_refuse(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k, int r,
                       const char *why)
{
    const gh_apikey_provider_conf_t *p = fc->authn->apikeys[k];
    char hdr[256], detail[256];
    count(s, fc, k, r);
    snprintf(detail, sizeof(detail), "%s%s%s", reasons[r].text, why ? ": " : "", why ? why : "");
    if (reasons[r].status == 401) {
        snprintf(hdr, sizeof(hdr), "www-authenticate: ApiKey realm=\"%s\"\r\n", p->realm);
        gh_stream_reply_error_with(
            s, 401, r == GH_AK_MISSING ? "missing_api_key" : "invalid_api_key", detail, hdr);
        return;
    }
    if (r == GH_AK_PLAN_UNKNOWN) {
        /* As the rate_limits filter answers a plan it does not have. */
        gh_stream_log_note(s, "limit=plan.unknown");
        gh_stream_reply_error(s, 403, "forbidden", reasons[r].text);
        return;
    }
    gh_stream_reply_error(s, reasons[r].status, "service_unavailable", detail);
}

/* ---- where the key is ---- */

/* The key provider p finds in the request: 1 and *key, 0 none, -1 two
 * (two fields, a parameter twice, or different keys in the field and the
 * parameter). An empty field or parameter is no key. Field names are
 * compared as CGI-style upstreams (WSGI, PHP, Rack) read them, '_' as
 * '-': "x_api_key" beside "x-api-key" is a second key, which such an
 * upstream could read instead of the one checked here (forward_key). */
int gh_jwtf_ak_find(gh_stream_t *s, const gh_apikey_provider_conf_t *p, const char **key,
                    size_t *len)
{
    const char *v = NULL;
    size_t n = 0;
    unsigned copies = 0;
    if (p->header != NULL) {
        size_t nh;
        const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
        size_t hl = p->from[0].name_len;
        for (size_t i = 0; i < nh; i++) {
            if (!gh_field_name_same(hs[i].name, hs[i].name_len, p->header, hl))
                continue;
            copies++;
            v = hs[i].value;
            n = hs[i].value_len;
        }
    }
    if (p->query != NULL) {
        const char *method, *path, *query;
        size_t method_len, path_len, query_len;
        gh_stream_request_line(s, &method, &method_len, &path, &path_len, &query, &query_len);
        gh_pairs_t it;
        gh_pair_t pr;
        unsigned qcopies = 0;
        const char *qv = NULL;
        size_t qn = 0;
        gh_pairs_init(&it, query, query_len, '&');
        while (gh_pairs_next(&it, &pr))
            if (gh_pair_name_decoded_is(&pr, p->query, strlen(p->query))) {
                qcopies++;
                qv = pr.value;
                qn = pr.value_len;
            }
        if (qcopies > 1)
            return -1;
        if (qcopies == 1) {
            if (v != NULL && (n != qn || memcmp(v, qv, n) != 0))
                return -1;
            if (v == NULL) {
                v = qv;
                n = qn;
            }
        }
    }
    if (copies > 1)
        return -1;
    if (v == NULL || n == 0)
        return 0;
    *key = v;
    *len = n;
    return 1;
}

/* ---- each worker's cache ---- */

/* The set of a key: gh_jwtf_hash (the length and the last 16 bytes, with
 * the worker's secret seed). Keys a client makes up to share a set only
 * share its four ways; equality is a full comparison. */
#define key_hash gh_jwtf_hash

/* 1 when a[0..n) equals b[0..n), in time that depends on n only. Sixteen
 * bytes at a time where SSE2 is there (a key is 71 bytes: five steps). */
static int same_secret(const char *a, const char *b, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    if (n >= 16) {
        __m128i d16 = _mm_setzero_si128();
        for (; i + 16 <= n; i += 16)
            d16 = _mm_or_si128(d16, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(a + i)),
                                                  _mm_loadu_si128((const __m128i *)(b + i))));
        if (i < n) /* the tail as the last sixteen bytes, overlapping */
            d16 = _mm_or_si128(d16, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(a + n - 16)),
                                                  _mm_loadu_si128((const __m128i *)(b + n - 16))));
        /* Every byte compared before the one test of the sum. */
        __asm__ volatile("" : "+x"(d16));
        return _mm_movemask_epi8(_mm_cmpeq_epi8(d16, _mm_setzero_si128())) == 0xffff;
    }
#endif
    uint64_t d = 0, x, y;
    for (; i + 8 <= n; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        d |= x ^ y;
    }
    if (i < n && n >= 8) {
        /* The tail as the last eight bytes (overlapping). */
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        d |= x ^ y;
        i = n;
    }
    for (; i < n; i++)
        d |= (uint64_t)((unsigned char)a[i] ^ (unsigned char)b[i]);
    /* Keep the compiler from turning the loop into an early exit. */
    __asm__ volatile("" : "+r"(d));
    return d == 0;
}

/* The entry's uses not yet in the store go there now. */
static void flush_uses(akentry_t *e, unsigned shard)
{
    if (e->uses > 0 && e->store != NULL)
        gh_store_usage_add(e->store, NULL, shard, e->id, (int64_t)time(NULL), e->uses);
    e->uses = 0;
}

static void ak_entry_clear_in(akentry_t *e, unsigned shard)
{
    flush_uses(e, shard);
    if (e->store != NULL)
        gh_store_unref(e->store);
    free(e->key);
    free(e->ident);
    free(e->hdr);
    memset(e, 0, sizeof(*e));
}

#define ak_entry_clear(e) ak_entry_clear_in((e), 0)

void gh_jwtf_ak_cache_free(wstate_t *w)
{
    for (size_t i = 0; i < w->ak_nsets * WAYS; i++)
        ak_entry_clear_in(&w->ak[i], w->worker_id);
    free(w->ak);
    free(w->ak_dirty);
    w->ak_dirty = NULL;
    w->num_ak_dirty = 0;
    w->ak = NULL;
    w->ak_nsets = 0;
}

static int ak_cache_fit(wstate_t *w, uint32_t entries)
{
    size_t sets = 1;
    while (sets * WAYS < entries)
        sets *= 2;
    if (w->ak != NULL && w->ak_nsets >= sets)
        return 0;
    akentry_t *e = calloc(sets * WAYS, sizeof(*e));
    if (e == NULL)
        return -1;
    akentry_t **dirty = calloc(2 * sets * WAYS, sizeof(*dirty));
    if (dirty == NULL) {
        free(e);
        return -1;
    }
    gh_jwtf_ak_cache_free(w);
    w->ak = e;
    w->ak_nsets = sets;
    w->ak_dirty = dirty;
    return 0;
}

static akentry_t *ak_cache_get(wstate_t *w, uint64_t h, uint64_t store_id, const char *k, size_t n)
{
    if (w->ak == NULL)
        return NULL;
    akentry_t *set = &w->ak[(h & (w->ak_nsets - 1)) * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (set[i].hash == h && set[i].key != NULL && set[i].store_id == store_id &&
            set[i].key_len == n && same_secret(set[i].key, k, n))
            return &set[i];
    return NULL;
}

static akentry_t *ak_cache_slot(wstate_t *w, uint64_t h, uint64_t store_id, const char *k, size_t n)
{
    akentry_t *e = ak_cache_get(w, h, store_id, k, n);
    if (e != NULL) {
        ak_entry_clear(e);
        return e;
    }
    akentry_t *set = &w->ak[(h & (w->ak_nsets - 1)) * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (set[i].key == NULL)
            return &set[i];
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    e = &set[w->rng % WAYS];
    ak_entry_clear(e);
    return e;
}

/* Fills e (cleared) from a lookup's answer. -1: out of memory. */
static int ak_entry_fill(akentry_t *e, int status, const gh_apikey_t *k, gh_store_t *store,
                         const gh_apikey_provider_conf_t *p)
{
    e->found = status == 0;
    e->store = e->found && store != NULL ? gh_store_ref(store) : NULL;
    if (!e->found) {
        e->valid_until = 1; /* never valid: the short path leaves it to ak_entry_reason */
        return 0;
    }
    size_t cn = strlen(k->consumer), pn = k->plan ? strlen(k->plan) : 0,
           sn = k->scopes ? strlen(k->scopes) : 0;
    e->ident_len = cn + 1 + pn + 1 + sn + 1;
    e->ident = malloc(e->ident_len);
    if (e->ident == NULL)
        return -1;
    memcpy(e->ident, k->consumer, cn + 1);
    e->consumer_len = cn;
    if (p != NULL && p->consumer_header != NULL) {
        /* The field the provider that asked sets, ready to add. */
        size_t hn = p->consumer_header_len;
        e->hdr = malloc(hn + 2 + cn + 2);
        if (e->hdr == NULL)
            return -1;
        memcpy(e->hdr, p->consumer_header, hn);
        memcpy(e->hdr + hn, ": ", 2);
        memcpy(e->hdr + hn + 2, k->consumer, cn);
        memcpy(e->hdr + hn + 2 + cn, "\r\n", 2);
        e->hdr_len = hn + 2 + cn + 2;
        e->hdr_for = p;
    }
    e->plan_off = -1;
    if (k->plan != NULL) {
        e->plan_off = (int)(cn + 1);
        memcpy(e->ident + cn + 1, k->plan, pn + 1);
    }
    e->scopes_off = -1;
    if (sn > 0) {
        e->scopes_off = (int)(cn + 1 + pn + 1);
        memcpy(e->ident + e->scopes_off, k->scopes, sn + 1);
    }
    memcpy(e->id, k->id, sizeof(e->id));
    e->enabled = k->enabled;
    e->revoked_at = k->revoked_at;
    e->expires_at = k->expires_at;
    e->grace_until = k->grace_until;
    /* The first time it stops being valid (0: never), for one comparison
     * on the short path. */
    e->valid_until = 0;
    const int64_t ends[2] = {k->expires_at, k->grace_until};
    for (int i = 0; i < 2; i++)
        if (ends[i] != 0 && (e->valid_until == 0 || ends[i] < e->valid_until))
            e->valid_until = ends[i];
    if (k->revoked_at != 0 || !k->enabled)
        e->valid_until = 1; /* revoked or disabled: over whatever the clock says */
    return 0;
}

/* Whether provider p may still trust the cached answer e at now_ms: for
 * its own cache_ttl (negative_cache_ttl for an unknown key), whichever
 * provider's lookup made the entry. */
static inline int ak_entry_fresh(const akentry_t *e, const gh_apikey_provider_conf_t *p,
                                 uint64_t now_ms)
{
    uint64_t ttl = e->found ? p->cache_ttl_ms : p->negative_ttl_ms;
    return now_ms < e->at_ms + ttl;
}

/* What the cached answer says at now (unix seconds). */
static int ak_entry_reason(const akentry_t *e, int64_t now)
{
    if (!e->found)
        return GH_AK_UNKNOWN;
    /* Revoked whatever this host's clock says (gh_apikey_state): the host
     * that revoked it may run ahead of this one. */
    if (e->revoked_at != 0)
        return GH_AK_REVOKED;
    if (!e->enabled)
        return GH_AK_DISABLED;
    if (e->expires_at != 0 && e->expires_at <= now)
        return GH_AK_EXPIRED;
    if (e->grace_until != 0 && e->grace_until <= now)
        return GH_AK_REPLACED;
    return GH_AK_OK;
}

static void on_ak_timer(uv_timer_t *t)
{
    wstate_t *w = t->data;
    for (size_t i = 0; i < w->num_ak_dirty; i++)
        flush_uses(w->ak_dirty[i], w->worker_id);
    w->num_ak_dirty = 0;
}

/* The worker's counting timer, started with its first lookup. It does not
 * keep the loop alive; the worker's end closes it with every handle, and
 * the cache's last counts go to the store when the state is freed. */
static void ak_timer_start(gh_stream_t *s, wstate_t *w)
{
    /* The loop the lookups run on, for gh_store_loop_end when the worker's
     * state goes (set before the first lookup, whatever the timer does). */
    w->loop = gh_stream_loop(s);
    if (w->ak_timer_on)
        return;
    w->worker_id = gh_stream_worker_id(s);
    if (uv_timer_init(gh_stream_loop(s), &w->ak_timer) != 0)
        return;
    w->ak_timer.data = w;
    uv_timer_start(&w->ak_timer, on_ak_timer, 1000, 1000);
    uv_unref((uv_handle_t *)&w->ak_timer);
    w->ak_timer_on = 1;
}

/* ---- the lookup ---- */

/* A stream's pending lookup, in its arena (the filter's context). */
struct gh_jwtf_ak_pending_s {
    int tag; /* GH_JWTF_CTX_AK */
    gh_stream_handle_t *handle;
    gh_store_req_t *req;
    const gh_authn_filter_conf_t *fc;
    uint64_t store_id;
    size_t k;        /* the provider that asked */
    akentry_t local; /* the answer when the cache holds none */
    int have_local;
    /* A usageIdentifierKey lookup (gh_jwtf_ak_usage): the authorizer that
     * named the key, the key (the stream's arena), and who goes on. */
    const gh_authorizer_conf_t *usage_az;
    const char *usage_key;
    size_t usage_key_len;
    gh_jwtf_ak_usage_cb usage_cb;
    void *usage_arg;
};

static void usage_lookup_done(gh_jwtf_ak_pending_t *pd, gh_stream_t *s, int status,
                              const gh_apikey_t *key);

static const char *lookup_error(int status)
{
    switch (status) {
    case -ENOTCONN:
        return "no connection to the store (Redis down or unreachable)";
    case -ETIMEDOUT:
        return "no answer from the store within its timeout";
    case -ECONNRESET:
        return "the connection to the store broke";
    default:
        return strerror(-status);
    }
}

/* A store that is down fails every lookup: logged once per worker every
 * 10 s, with how many failed meanwhile, not once per request. */
static void lookup_failed_log(gh_stream_t *s, const gh_apikey_provider_conf_t *p, int status)
{
    wstate_t *w = gh_jwtf_worker(s);
    uint64_t now = gh_stream_now_ms(s);
    if (w != NULL && w->ak_fail_logged_ms != 0 && now - w->ak_fail_logged_ms < 10000) {
        w->ak_fail_quiet++;
        return;
    }
    if (w != NULL && w->ak_fail_quiet > 0)
        GH_LOG(GH_LOG_WARN, "apikeys",
               "provider '%s': store lookup failed: %s (and %llu more "
               "since the last report)",
               p->name, lookup_error(status), (unsigned long long)w->ak_fail_quiet);
    else
        GH_LOG(GH_LOG_WARN, "apikeys", "provider '%s': store lookup failed: %s", p->name,
               lookup_error(status));
    if (w != NULL) {
        w->ak_fail_logged_ms = now;
        w->ak_fail_quiet = 0;
    }
}

/* Caches the store's answer for key kv on the stream's worker, when ttl
 * and the table allow (for p, or for an authorizer's usage key when p is
 * NULL); a failure is only a later look-up's cost. */
static void cache_answer(gh_stream_t *s, const gh_jwtf_ak_pending_t *pd, const char *kv, size_t kn,
                         int status, const gh_apikey_t *key, const gh_apikey_provider_conf_t *p,
                         uint64_t ttl, uint32_t entries)
{
    wstate_t *w = gh_jwtf_worker(s);
    if (w == NULL || ttl == 0 || entries == 0 || ak_cache_fit(w, entries) != 0)
        return;
    uint64_t h = key_hash(w, kv, kn);
    akentry_t *e = ak_cache_slot(w, h, pd->store_id, kv, kn);
    e->key = malloc(kn);
    if (e->key != NULL) {
        memcpy(e->key, kv, kn);
        e->key_len = kn;
        e->hash = h;
        e->store_id = pd->store_id;
        e->at_ms = gh_stream_now_ms(s);
    }
    if (e->key == NULL || ak_entry_fill(e, status, key, pd->fc->ak->store, p) < 0)
        ak_entry_clear(e);
}

static void lookup_done(void *arg, int status, const gh_apikey_t *key)
{
    gh_jwtf_ak_pending_t *pd = arg;
    pd->req = NULL;
    gh_stream_t *s = gh_stream_handle_take(pd->handle);
    pd->handle = NULL;
    if (s == NULL)
        return; /* cannot happen: on_cancel cancels the request */
    if (pd->usage_cb != NULL) {
        usage_lookup_done(pd, s, status, key);
        return;
    }
    const gh_authn_filter_conf_t *fc = pd->fc;
    const gh_apikey_provider_conf_t *p = fc->authn->apikeys[pd->k];
    if (status != 0 && status != -ENOENT) {
        lookup_failed_log(s, p, status);
        gh_jwtf_ak_refuse(s, fc, pd->k, GH_AK_STORE_UNAVAILABLE, NULL);
        return;
    }
    const char *kv;
    size_t kn;
    if (gh_jwtf_ak_find(s, p, &kv, &kn) != 1) {
        gh_jwtf_ak_refuse(s, fc, pd->k, GH_AK_OUT_OF_MEMORY, NULL);
        return;
    }
    /* The answer decides this request from the stream's context, and
     * later ones from the cache. */
    memset(&pd->local, 0, sizeof(pd->local));
    if (ak_entry_fill(&pd->local, status, key, NULL, NULL) < 0) {
        ak_entry_clear(&pd->local);
        gh_jwtf_ak_refuse(s, fc, pd->k, GH_AK_OUT_OF_MEMORY, NULL);
        return;
    }
    pd->have_local = 1;
    cache_answer(s, pd, kv, kn, status, key, p, status == 0 ? p->cache_ttl_ms : p->negative_ttl_ms,
                 p->cache_entries);
    gh_filter_status_t st = gh_jwtf_decide(s, fc, pd);
    if (pd->have_local) {
        ak_entry_clear(&pd->local);
        pd->have_local = 0;
    }
    if (st == GH_FILTER_CONTINUE)
        gh_stream_continue(s);
}

void gh_jwtf_ak_cancel(gh_jwtf_ak_pending_t *pd)
{
    if (pd == NULL)
        return;
    if (pd->req != NULL)
        gh_store_req_cancel(pd->req);
    pd->req = NULL;
    /* The handle's take returns NULL now; the filter owns it: free it. */
    if (pd->handle != NULL)
        gh_stream_handle_take(pd->handle);
    pd->handle = NULL;
}

size_t gh_jwtf_ak_resume_at(const gh_jwtf_ak_pending_t *pd)
{
    return pd != NULL ? pd->k : 0;
}

/* Applies a valid key's identity and edits. -1: out of memory. */
static inline int ak_apply(gh_stream_t *s, wstate_t *w, const gh_apikey_provider_conf_t *p,
                           akentry_t *e, gh_store_t *store, uint64_t now)
{
    gh_identity_t *id = gh_stream_identity(s);
    char *b = gh_stream_alloc(s, e->ident_len + sizeof(e->id));
    if (b == NULL)
        return -1;
    memcpy(b, e->ident, e->ident_len);
    memcpy(b + e->ident_len, e->id, sizeof(e->id));
    id->consumer = b;
    id->plan = e->plan_off >= 0 ? b + e->plan_off : NULL;
    id->key_id = b + e->ident_len;
    if (p == NULL)
        goto count; /* a usageIdentifierKey: the authorizer's identity otherwise */
    if (id->provider == NULL) {
        id->provider = p->name;
        id->scopes = e->scopes_off >= 0 ? b + e->scopes_off : NULL;
    }
    if (p->consumer_header != NULL &&
        (e->hdr_for == p ? gh_stream_add_header_lines(s, e->hdr, e->hdr_len)
                         : gh_stream_add_header(s, p->consumer_header, p->consumer_header_len, b,
                                                e->consumer_len)) < 0)
        return -1;
count:
    /* A cached key's uses are counted in its entry and reach the store
     * every 64 uses, when the entry goes, and every second (the worker's
     * timer); an answer that is not cached counts at once. */
    if (e->store != NULL) {
        if (e->uses++ == 0 && w->num_ak_dirty < 2 * w->ak_nsets * WAYS)
            w->ak_dirty[w->num_ak_dirty++] = e;
        if (e->uses >= 64)
            flush_uses(e, gh_stream_worker_id(s));
    } else if (store != NULL) {
        gh_store_usage_add(store, NULL, gh_stream_worker_id(s), e->id, (int64_t)now, 1);
    }
    return 0;
}

/* Decides provider k of the route for this request. Returns GH_AK_OK
 * (applied), another reason (not answered: the caller picks the answer),
 * or -1 when the stream paused for a lookup (resumed later through
 * gh_jwtf_decide) or was answered (503). */
int gh_jwtf_ak_check(gh_stream_t *s, const gh_authn_filter_conf_t *fc, wstate_t *w, size_t k,
                     gh_jwtf_ak_pending_t **pending)
{
    const gh_apikey_provider_conf_t *p = fc->authn->apikeys[k];
    const char *kv;
    size_t kn;
    int n = gh_jwtf_ak_find(s, p, &kv, &kn);
    if (n <= 0)
        return n < 0 ? GH_AK_MULTIPLE : GH_AK_MISSING;
    gh_jwtf_ak_runtime_t *ak = fc->ak;
    if (ak == NULL || ak->store == NULL)
        return GH_AK_STORE_UNAVAILABLE;
    time_t now = time(NULL);
    akentry_t *e = NULL;
    const char *why;
    gh_jwtf_ak_pending_t *pd = *pending;
    if (pd != NULL && pd->have_local && pd->k == k)
        e = &pd->local;
    if (e == NULL && w->ak != NULL) {
        akentry_t *c = ak_cache_get(w, key_hash(w, kv, kn), ak->id, kv, kn);
        if (c != NULL && ak_entry_fresh(c, p, gh_stream_now_ms(s)))
            e = c;
    }
    if (e != NULL) {
        int r = ak_entry_reason(e, (int64_t)now);
        if (r == GH_AK_OK && fc->no_plans && e->plan_off >= 0)
            r = GH_AK_PLAN_UNKNOWN;
        if (r == GH_AK_OK && ak_apply(s, w, p, e, ak->store, (uint64_t)now) < 0)
            return GH_AK_OUT_OF_MEMORY;
        if (r == GH_AK_OK)
            count(s, fc, k, GH_AK_OK);
        return r;
    }
    /* A miss: ask the store, and decide again when it answers. The key's
     * form is checked here only: a cached key passed this check. */
    gh_apikey_presented_t pk;
    if (gh_apikey_present(kv, kn, &pk, &why) != 0)
        return GH_AK_MALFORMED;
    ak_timer_start(s, w);
    if (pd == NULL) {
        pd = gh_stream_alloc(s, sizeof(*pd));
        if (pd == NULL)
            return GH_AK_OUT_OF_MEMORY;
        memset(pd, 0, sizeof(*pd));
        *pending = pd;
        gh_stream_set_ctx(s, pd);
    }
    pd->fc = fc;
    pd->k = k;
    pd->store_id = ak->id;
    pd->handle = gh_stream_pause(s);
    if (pd->handle == NULL)
        return GH_AK_OUT_OF_MEMORY;
    int rc = gh_store_key_lookup(ak->store, gh_stream_loop(s), &pk, lookup_done, pd, &pd->req);
    if (rc != 0) {
        gh_stream_handle_take(pd->handle);
        pd->handle = NULL;
        pd->req = NULL;
        return rc == -EAGAIN ? GH_AK_BUSY : GH_AK_OUT_OF_MEMORY;
    }
    return -1;
}

/* gh_field_name_same(name, n, p->header, n), with the usual spellings
 * (any ASCII case) first, eight bytes at a time where the route has the
 * name's words (internal.h). */
static inline int key_field_is(const gh_authn_filter_conf_t *fc, const gh_apikey_provider_conf_t *p,
                               const char *name, size_t n)
{
    if (fc->ak_name_words) {
        uint64_t a, b;
        memcpy(&a, name, 8);
        memcpy(&b, name + n - 8, 8);
        if ((a | fc->ak_name_m[0]) == fc->ak_name_w[0] &&
            (b | fc->ak_name_m[1]) == fc->ak_name_w[1])
            return 1;
    }
    return gh_field_name_same(name, n, p->header, n);
}

/* The usual API-key route (fc->key_only: one provider reading one field,
 * no token provider, not `all`, nothing exempt) and a key in the cache
 * that is valid now: what gh_jwtf_decide would do for it, without the
 * general machinery. Returns 1 when taken (*st says how it ended), 0 to
 * go the general way, which decides everything else. */
int gh_jwtf_ak_fast(gh_stream_t *s, const gh_authn_filter_conf_t *fc, gh_filter_status_t *st)
{
    const gh_apikey_provider_conf_t *p = fc->authn->apikeys[0];
    /* gh_jwtf_ak_find for one field: exactly one, not empty, its names
     * compared as there ('_' as '-': "x_api_key" beside "x-api-key" is a
     * second key, refused the general way). */
    size_t nh, hl = p->from[0].name_len;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh), *kh = NULL;
    for (size_t i = 0; i < nh; i++) {
        if (hs[i].name_len != hl || !key_field_is(fc, p, hs[i].name, hl))
            continue;
        if (kh != NULL)
            return 0;
        kh = &hs[i];
    }
    if (kh == NULL || kh->value_len == 0)
        return 0;
    const char *kv = kh->value;
    size_t kn = kh->value_len;
    wstate_t *w = gh_jwtf_worker(s);
    gh_jwtf_ak_runtime_t *ak = fc->ak;
    if (w == NULL || w->ak == NULL || ak->store == NULL)
        return 0;
    akentry_t *e = ak_cache_get(w, key_hash(w, kv, kn), ak->id, kv, kn);
    if (e == NULL || !ak_entry_fresh(e, p, gh_stream_now_ms(s)))
        return 0;
    time_t now = time(NULL);
    if ((e->valid_until != 0 && (int64_t)now >= e->valid_until) ||
        (fc->no_plans && e->plan_off >= 0))
        return 0;
    *st = GH_FILTER_REPLIED;
    if (gh_stream_drop_list(s, fc->ak_fast_drops) < 0 ||
        ak_apply(s, w, p, e, ak->store, (uint64_t)now) < 0) {
        gh_jwtf_ak_refuse(s, fc, 0, GH_AK_OUT_OF_MEMORY, NULL);
        return 1;
    }
    if (w->ak_ok_id != ak->id || w->ak_ok_p != p) {
        w->ak_ok_stats = gh_metrics_decision(gh_stream_metrics(s), ak->ids[p->index][GH_AK_OK]);
        w->ak_ok_id = ak->id;
        w->ak_ok_p = p;
    }
    if (w->ak_ok_stats != NULL)
        GH_STAT_INC(w->ak_ok_stats->count);
    *st = GH_FILTER_CONTINUE;
    return 1;
}

/* ---- usageIdentifierKey (authz.c) ---- */

/* What the store's answer e says of the key at now, applied when valid. */
static int usage_decide(gh_stream_t *s, const gh_authn_filter_conf_t *fc, wstate_t *w, akentry_t *e,
                        int64_t now)
{
    int r = ak_entry_reason(e, now);
    if (r == GH_AK_OK && fc->no_plans && e->plan_off >= 0)
        r = GH_AK_PLAN_UNKNOWN;
    if (r == GH_AK_OK && ak_apply(s, w, NULL, e, fc->ak->store, (uint64_t)now) < 0)
        r = GH_AK_OUT_OF_MEMORY;
    return r;
}

static void usage_lookup_done(gh_jwtf_ak_pending_t *pd, gh_stream_t *s, int status,
                              const gh_apikey_t *key)
{
    const gh_authorizer_conf_t *az = pd->usage_az;
    int r;
    if (status != 0 && status != -ENOENT) {
        GH_LOG(GH_LOG_WARN, "authorizers", "authorizer '%s': usage key lookup failed: %s", az->name,
               lookup_error(status));
        r = GH_AK_STORE_UNAVAILABLE;
    } else {
        cache_answer(s, pd, pd->usage_key, pd->usage_key_len, status, key, NULL,
                     status == 0 ? az->usage_ttl_ms : az->usage_negative_ttl_ms, az->cache_entries);
        wstate_t *w = gh_jwtf_worker(s);
        akentry_t local;
        memset(&local, 0, sizeof(local));
        if (w == NULL || ak_entry_fill(&local, status, key, NULL, NULL) < 0)
            r = GH_AK_OUT_OF_MEMORY;
        else
            r = usage_decide(s, pd->fc, w, &local, (int64_t)time(NULL));
        ak_entry_clear(&local);
    }
    gh_stream_set_ctx(s, NULL);
    pd->usage_cb(pd->usage_arg, s, r);
}

int gh_jwtf_ak_usage(gh_stream_t *s, const gh_authn_filter_conf_t *fc,
                     const gh_authorizer_conf_t *az, const char *kv, size_t kn,
                     gh_jwtf_ak_usage_cb cb, void *arg)
{
    gh_jwtf_ak_runtime_t *ak = fc->ak;
    wstate_t *w = gh_jwtf_worker(s);
    if (ak == NULL || ak->store == NULL)
        return GH_AK_STORE_UNAVAILABLE;
    if (w == NULL)
        return GH_AK_OUT_OF_MEMORY;
    if (w->ak != NULL) {
        akentry_t *c = ak_cache_get(w, key_hash(w, kv, kn), ak->id, kv, kn);
        if (c != NULL && gh_stream_now_ms(s) <
                             c->at_ms + (c->found ? az->usage_ttl_ms : az->usage_negative_ttl_ms))
            return usage_decide(s, fc, w, c, (int64_t)time(NULL));
    }
    /* A key that cannot be one is unknown without asking (API Gateway:
     * an invalid usage identifier key is a 403). */
    gh_apikey_presented_t pk;
    const char *why;
    if (gh_apikey_present(kv, kn, &pk, &why) != 0)
        return GH_AK_UNKNOWN;
    ak_timer_start(s, w);
    gh_jwtf_ak_pending_t *pd = gh_stream_alloc(s, sizeof(*pd));
    char *k = gh_stream_alloc(s, kn);
    if (pd == NULL || k == NULL)
        return GH_AK_OUT_OF_MEMORY;
    memset(pd, 0, sizeof(*pd));
    memcpy(k, kv, kn);
    /* gh_apikey_present's view points into kv: read it again from the
     * copy, which outlives the call. */
    if (gh_apikey_present(k, kn, &pk, &why) != 0)
        return GH_AK_UNKNOWN;
    pd->tag = GH_JWTF_CTX_AK;
    pd->fc = fc;
    pd->store_id = ak->id;
    pd->usage_az = az;
    pd->usage_key = k;
    pd->usage_key_len = kn;
    pd->usage_cb = cb;
    pd->usage_arg = arg;
    pd->handle = gh_stream_pause(s);
    if (pd->handle == NULL)
        return GH_AK_OUT_OF_MEMORY;
    gh_stream_set_ctx(s, pd);
    int rc = gh_store_key_lookup(ak->store, gh_stream_loop(s), &pk, lookup_done, pd, &pd->req);
    if (rc != 0) {
        gh_stream_set_ctx(s, NULL);
        gh_stream_handle_take(pd->handle);
        pd->handle = NULL;
        pd->req = NULL;
        return rc == -EAGAIN ? GH_AK_BUSY : GH_AK_OUT_OF_MEMORY;
    }
    return -1;
}
