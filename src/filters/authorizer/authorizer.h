/*
 * The authorizer runtime (src/filters/authorizer/): calling a custom
 * authorizer (providers.authorizers, docs/authorizers.md) for a request,
 * for the authn filter (a route's `authn` names it) and the policies
 * filter (a CUSTOM policy delegates to it). Not a filter type of its own:
 * both filters call it and keep their pending call in their stream
 * context.
 *
 *   runtime.c  one snapshot's authorizers: their clusters, the AWS
 *              credentials of Lambda targets (loaded on the main thread),
 *              metric ids, /ready lines
 *   cache.c    each worker's bounded cache of answers, keyed by authorizer
 *              and identity-source values, with a TTL (time given by the
 *              caller, so the unit tests inject it)
 *   shared.c   the same for an authorizer with cache_scope process: one
 *              table per authorizer of the snapshot, read and filled by
 *              every worker
 *   call.c     one request: identity sources, the event or the ext_authz
 *              request, the callout (HTTP or Lambda Invoke with SigV4),
 *              the answer read into an outcome
 *   apply.c    an outcome to the stream: identity and headers upstream, or
 *              the refusal (401, 403, 500/503, the envoy service's answer)
 *
 * Threads: the set is made and freed on the main thread (fini may run on a
 * worker: it frees memory only); everything else runs on the stream's
 * worker.
 */
#ifndef GATEHOUSE_FILTERS_AUTHORIZER_H
#define GATEHOUSE_FILTERS_AUTHORIZER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <gatehouse/callout.h>
#include <gatehouse/ct.h>
#include <gatehouse/config.h>
#include <gatehouse/filter.h>

#include "authorizer/authz.h"

struct gh_aws_creds_s;
struct gh_azr_shared_s;

/* ---- runtime.c ---- */

/* Why a request ended the way it did (metric reason labels). */
typedef enum {
    GH_AZR_ALLOWED = 0,
    GH_AZR_ALLOWED_CACHED,
    GH_AZR_DENIED,        /* 403: a policy that denies, isAuthorized false */
    GH_AZR_DENIED_CACHED, /* the same from the cache */
    GH_AZR_UNAUTHORIZED,  /* 401: the function said "Unauthorized" */
    GH_AZR_MISSING,       /* 401: an identity source is missing: not called */
    GH_AZR_TOKEN_INVALID, /* 401: token_validation refused the token: not called */
    GH_AZR_BAD_REQUEST,   /* 400 (not UTF-8) or 414 (method ARN too long): not called */
    GH_AZR_ERROR,         /* the call failed or its answer was malformed: on_error */
    GH_AZR_ENVOY_DENIED,  /* envoy: the service's non-2xx answer, passed to the client */
    GH_AZR_REASON_COUNT
} gh_azr_reason_t;

/* One authorizer of a snapshot. */
typedef struct {
    uint64_t id; /* unique in the process: cache entries are per runtime */
    const gh_authorizer_conf_t *conf;
    const gh_cluster_t *cluster;  /* http.cluster or lambda.endpoint (the snapshot's) */
    struct gh_aws_creds_s *creds; /* Lambda targets: NULL when they could not be loaded */
    char *creds_error;            /* why not (for /ready and the log) */
    char *target;                 /* Lambda: the Invoke API's path and query; http: http.path */
    size_t target_len;
    char *host; /* Lambda: the Host sent and signed */
    size_t host_len;
    char region[64]; /* Lambda: the signing region */
    uint32_t decision_ids[GH_AZR_REASON_COUNT];
    uint32_t call_ids[GH_CALLOUT_OUTCOMES]; /* calls by outcome */
    uint32_t bad_answer_id;                 /* calls whose answer was malformed */
    /* cache_scope process (and a ttl): the process's cache of this
     * authorizer's answers (shared.c), owned by the set; NULL: each
     * worker's cache (cache.c), or none. */
    struct gh_azr_shared_s *shared;
} gh_azr_t;

typedef struct gh_azr_set_s {
    const gh_config_t *cfg;
    gh_azr_t *v; /* cfg->num_authorizers, by gh_authorizer_conf_t.index */
    size_t n;
} gh_azr_set_t;

/* Main thread. NULL when out of memory; a Lambda target whose credentials
 * do not load is still made (its calls fail: on_error), and logged. */
gh_azr_set_t *gh_azr_set_new(const gh_config_t *cfg);
void gh_azr_set_free(gh_azr_set_t *set);
/* /ready lines: each Lambda authorizer without credentials. */
size_t gh_azr_set_ready(const gh_azr_set_t *set, int detailed, char *out, size_t cap);

/* ---- cache.c ---- */

/* What an allowing answer does to a request, worked out once per answer
 * (call.c's prepare): the header lines it sets upstream ("name:
 * value\r\n"..., checked), the principal, the context as a JSON object
 * text. Each may be NULL. */
typedef struct {
    const char *lines;
    size_t lines_len;
    const char *principal;
    const char *claims;
    size_t claims_len;
} gh_azr_prepared_t;

/* A cached answer: an aws result (immutable, evaluated per method ARN)
 * or an envoy allow, with what it does to a request (owned copies). */
typedef struct {
    uint64_t hash, rt_id;
    uint64_t expires_ms;
    char *key; /* owned: the identity-source values, length-prefixed */
    size_t key_len;
    gh_authz_result_t result; /* owned (aws formats) */
    char *lines;              /* owned: the prepared header lines */
    size_t lines_len;
    char *principal; /* owned, or NULL */
    size_t principal_len;
    char *claims; /* owned, or NULL */
    size_t claims_len;
} gh_azr_centry_t;

typedef struct {
    gh_azr_centry_t *v; /* nsets * GH_AZR_WAYS */
    size_t nsets;
    uint32_t fit; /* the largest cache_entries the table was sized for */
    uint64_t seed, rng;
    /* The worker's counter of the last decision counted from the cache
     * (metric chunks never move): most requests count the same one. */
    uint32_t memo_id;
    uint64_t *memo;
} gh_azr_cache_t;

#define GH_AZR_WAYS 4

gh_azr_cache_t *gh_azr_cache_new(uint64_t seed);
void gh_azr_cache_free(gh_azr_cache_t *c);
/* Grows the table to hold at least entries (never shrinks). -1: no memory. */
int gh_azr_cache_fit(gh_azr_cache_t *c, uint32_t entries);

/* The worker's cache is its filter state (gh_stream_worker_state) under
 * this key, made by gh_azr_cache_create with a seed of its own. */
extern const gh_filter_type_t gh_azr_cache_type;
void *gh_azr_cache_create(void);
void gh_azr_cache_destroy(void *p);

/* The cache of the stream's worker, sized for a's cache_entries; NULL when
 * out of memory. Inline: a warm cache is the usual request. */
static inline __attribute__((always_inline)) gh_azr_cache_t *gh_azr_worker_cache(gh_stream_t *s,
                                                                                 const gh_azr_t *a)
{
    gh_azr_cache_t *c =
        gh_stream_worker_state(s, &gh_azr_cache_type, gh_azr_cache_create, gh_azr_cache_destroy);
    if (c == NULL || ((c->v == NULL || a->conf->cache_entries > c->fit) &&
                      gh_azr_cache_fit(c, a->conf->cache_entries) != 0))
        return NULL;
    return c;
}
/* The key of identity-source values v[0..nv): each value's length (8
 * bytes) then its bytes, so that values cannot run into each other ("a,b"
 * + "c" is not "a" + "b,c"). The hash and the look-up read the values in
 * place; gh_azr_cache_key writes the key (put) into k[gh_azr_key_len]. */
size_t gh_azr_key_len(const gh_authz_str_t *v, size_t nv);
void gh_azr_cache_key(const gh_authz_str_t *v, size_t nv, char *k);

/* Each value's length, first eight and last sixteen bytes, keyed by the
 * worker's seed: values a client chooses land in sets it cannot predict,
 * and equality is a full comparison (values that share those bytes only
 * share a set's four ways). Inline with the look-up: a warm cache is the
 * usual request. */
static inline uint64_t gh_azr_cache_hash(const gh_azr_cache_t *c, uint64_t rt_id,
                                         const gh_authz_str_t *v, size_t nv)
{
    uint64_t h = c->seed ^ (rt_id * 0x9E3779B97F4A7C15ULL);
    for (size_t i = 0; i < nv; i++) {
        const char *p = v[i].p;
        size_t n = v[i].n;
        uint64_t a = 0, b = 0;
        if (n >= 16) {
            uint64_t d;
            memcpy(&a, p, 8);
            memcpy(&b, p + n - 16, 8);
            memcpy(&d, p + n - 8, 8);
            a ^= d * 0xc4ceb9fe1a85ec53ULL;
        } else {
            /* Byte by byte (the words memcpy would fill, little endian):
             * a memcpy of a variable length into a local would put it in
             * memory and a stack canary in every caller. */
            for (size_t j = 0; j < n; j++) {
                if (j < 8)
                    a |= (uint64_t)(unsigned char)p[j] << (8 * j);
                else
                    b |= (uint64_t)(unsigned char)p[j] << (8 * (j - 8));
            }
        }
        h = (h ^ n ^ a) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        h = (h ^ b) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 29;
    }
    return h;
}

static inline gh_azr_centry_t *gh_azr_cache_set(const gh_azr_cache_t *c, uint64_t h)
{
    return &c->v[(h & (c->nsets - 1)) * GH_AZR_WAYS];
}

/* Whether e's key is values v (the form gh_azr_cache_key writes). The
 * values (tokens, mostly) in constant time: a prober who matched the hash
 * must not learn from the time how much of a cached one he has right. */
static inline int gh_azr_key_is(const gh_azr_centry_t *e, const gh_authz_str_t *v, size_t nv)
{
    const char *k = e->key, *end = e->key + e->key_len;
    for (size_t i = 0; i < nv; i++) {
        uint64_t l;
        if ((size_t)(end - k) < 8 + v[i].n)
            return 0;
        memcpy(&l, k, 8);
        if (l != v[i].n || !gh_ct_equal(k + 8, v[i].p, v[i].n))
            return 0;
        k += 8 + v[i].n;
    }
    return k == end;
}

void gh_azr_cache_expire(gh_azr_centry_t *e);

/* The live entry of values v under runtime rt_id at now_ms, or NULL (an
 * expired one is dropped). */
static inline gh_azr_centry_t *gh_azr_cache_get(gh_azr_cache_t *c, uint64_t h, uint64_t rt_id,
                                                const gh_authz_str_t *v, size_t nv, uint64_t now_ms)
{
    if (c == NULL || c->v == NULL)
        return NULL;
    gh_azr_centry_t *set = gh_azr_cache_set(c, h);
    for (int i = 0; i < GH_AZR_WAYS; i++) {
        gh_azr_centry_t *e = &set[i];
        if (e->key == NULL || e->hash != h || e->rt_id != rt_id || !gh_azr_key_is(e, v, nv))
            continue;
        if (now_ms >= e->expires_ms) {
            gh_azr_cache_expire(e);
            return NULL;
        }
        return e;
    }
    return NULL;
}
/* Stores an entry for values v, taking result (moved: *result is zeroed;
 * NULL for envoy) and copying what p points to. Returns the entry, or
 * NULL (out of memory: nothing cached, result still the caller's). */
gh_azr_centry_t *gh_azr_cache_put(gh_azr_cache_t *c, uint64_t h, uint64_t rt_id,
                                  const gh_authz_str_t *v, size_t nv, uint64_t expires_ms,
                                  gh_authz_result_t *result, const gh_azr_prepared_t *p);
size_t gh_azr_cache_count(const gh_azr_cache_t *c);

/* ---- shared.c ----
 *
 * Ownership: the set (gh_azr_set_t, one per snapshot runtime) owns each
 * table and frees it with the snapshot; a table owns one reference to
 * each entry in it; a worker's hold (gh_azr_hold_t) owns one reference
 * to the entry its last outcome was decided from; an entry owns its
 * result and its strings, and is freed by its last reference, on
 * whichever thread drops it. An entry is immutable once in a table: a
 * worker reads it without the lock while another evicts it. */

typedef struct gh_azr_shared_s gh_azr_shared_t;

typedef struct {
    uint32_t refs; /* atomic */
    uint64_t hash;
    uint64_t expires_ms;      /* on the workers' loop clock (uv_now: monotonic, shared) */
    gh_authz_result_t result; /* aws formats (moved in); zeroed for envoy */
    gh_azr_prepared_t p;      /* what an allow does: pointers into data */
    size_t key_len;           /* the key (gh_azr_cache_key's form) at data */
    char data[];              /* the key, the lines, the principal, the claims */
} gh_azr_sentry_t;

/* Main thread. A table of exactly entries slots (4-way sets); NULL when
 * out of memory. */
gh_azr_shared_t *gh_azr_shared_new(uint32_t entries);
/* Any thread, once no worker uses the table (the snapshot's end). */
void gh_azr_shared_free(gh_azr_shared_t *t);
/* A keyed hash of every byte of values v (a client cannot aim values at
 * one set, nor make two values share a hash). */
uint64_t gh_azr_shared_hash(const gh_azr_shared_t *t, const gh_authz_str_t *v, size_t nv);
/* The live entry of values v at now_ms with a new reference (the
 * caller's), or NULL (an expired one is dropped). */
gh_azr_sentry_t *gh_azr_shared_get(gh_azr_shared_t *t, uint64_t h, const gh_authz_str_t *v,
                                   size_t nv, uint64_t now_ms);
/* Stores an entry for values v, taking result (moved: *result is zeroed;
 * NULL for envoy) and copying what p points to; it replaces the entry of
 * the same values, else takes an empty or expired slot of the set, else
 * evicts one at random. Returns the entry with a new reference (the
 * caller's), or NULL (out of memory: nothing cached, result still the
 * caller's). */
gh_azr_sentry_t *gh_azr_shared_put(gh_azr_shared_t *t, uint64_t h, const gh_authz_str_t *v,
                                   size_t nv, uint64_t now_ms, uint64_t expires_ms,
                                   gh_authz_result_t *result, const gh_azr_prepared_t *p);
void gh_azr_sentry_unref(gh_azr_sentry_t *e);
/* Entries in the table (tests). */
size_t gh_azr_shared_count(gh_azr_shared_t *t);

/* A worker's hold on the entry its last outcome came from: an outcome
 * points into the entry (gh_azr_outcome_t's pointers are borrowed until
 * it is applied, which happens before the worker decides again), so the
 * worker keeps a reference until its next hold. NULL when out of memory. */
typedef struct gh_azr_hold_s gh_azr_hold_t;
gh_azr_hold_t *gh_azr_hold_of(gh_stream_t *s);
/* Takes e's reference (the caller's) and drops the one held before. */
void gh_azr_hold_set(gh_azr_hold_t *h, gh_azr_sentry_t *e);

/* ---- call.c ---- */

typedef enum {
    GH_AZR_OUT_ALLOW = 0,
    GH_AZR_OUT_DENY,    /* 403 */
    GH_AZR_OUT_UNAUTH,  /* 401 */
    GH_AZR_OUT_MISSING, /* 401, not called */
    GH_AZR_OUT_BAD,     /* 400 or 414 (status), not called */
    GH_AZR_OUT_ERROR,   /* on_error decides */
    GH_AZR_OUT_ENVOY,   /* envoy deny: status, headers, body as the service sent */
} gh_azr_out_kind_t;

/* What an authorizer decided for one request. Pointers are borrowed:
 * valid during the callback (or the synchronous return) only. */
typedef struct {
    int kind;                      /* gh_azr_out_kind_t */
    int reason;                    /* gh_azr_reason_t */
    int status;                    /* BAD, ENVOY */
    const char *why;               /* a short static reason for the log and the detail */
    gh_azr_prepared_t allow;       /* ALLOW: what it does to the request (borrowed) */
    const char *usage_key;         /* ALLOW by an IAM policy: its usageIdentifierKey, or NULL */
    gh_azr_cache_t *cache;         /* the worker's cache when decided from it, or NULL */
    const gh_h1_header_t *headers; /* ENVOY: the service's answer */
    size_t num_headers;
    const char *body;
    size_t body_len;
} gh_azr_outcome_t;

typedef struct gh_azr_call_s gh_azr_call_t;

/* Runs on the worker with the stream taken back (never NULL: cancel stops
 * it first) and the outcome, which the callee applies before returning. */
typedef void (*gh_azr_done_cb)(void *arg, gh_stream_t *s, const gh_azr_outcome_t *o);

/* Asks authorizer a about the request on s. Returns 0 with *out filled
 * (decided without a call: cache, missing source, invalid token), or 1
 * when a call is in flight: the stream is paused, *call (the stream's
 * arena) is to be cancelled in on_cancel, and cb runs later. */
int gh_azr_check(gh_stream_t *s, const gh_azr_t *a, gh_azr_done_cb cb, void *arg,
                 gh_azr_call_t **call, gh_azr_outcome_t *out);
/* The same without a call: 1 with *out when it decided (a missing
 * source, an invalid token, a cached answer), 0 when only a call can
 * (then gh_azr_check makes it). */
int gh_azr_decided(gh_stream_t *s, const gh_azr_t *a, gh_azr_outcome_t *out);
/* Whether every identity source of a is in the request (authn `any`:
 * an authorizer is tried when its sources are there). */
int gh_azr_sources_present(gh_stream_t *s, const gh_azr_t *a);
/* From on_cancel: the callback never runs. NULL: nothing. */
void gh_azr_cancel(gh_azr_call_t *c);

/* ---- apply.c ---- */

/* The context of r as a JSON object text in the stream's arena, or NULL
 * (out of memory). */
const char *gh_azr_context_json(gh_stream_t *s, const gh_authz_result_t *r, size_t *len);

/* An ALLOW outcome: the identity (principal, context as claims) unless
 * keep_identity, and the configured headers upstream (client copies
 * dropped first). Returns 0, or -2 when out of memory. (An answer whose
 * values cannot be header values is an ERROR outcome already.) */
int gh_azr_apply(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o, int keep_identity);
/* Answers any other outcome (and an ERROR with on_error allow: returns 0
 * without answering, the request goes on without an identity). Returns 1
 * when it answered. policy: the CUSTOM policy's name for a 403, or NULL. */
int gh_azr_refuse(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o, const char *policy);
/* The drops of a's headers (client copies) onto the stream, before any
 * decision. -1: out of memory. */
int gh_azr_drop_headers(gh_stream_t *s, const gh_azr_t *a);

/* Whether a's answers can be taken by gh_azr_apply_cached: cached (a
 * ttl) in the worker's cache (not cache_scope process), its one identity
 * source the Authorization field, no token_validation, not envoy (whose
 * key is the request asked about). */
int gh_azr_is_bearer_cached(const gh_azr_t *a);
/* The usual request of a route whose one authorizer a is
 * gh_azr_is_bearer_cached: a non-empty Authorization whose simple allow
 * (isAuthorized true) is in the worker's cache. Then it does what
 * gh_azr_check's outcome and gh_azr_apply would: the drops l (the route's
 * client copies of the fields it sets) and the entry's header lines, the
 * identity, the decision counted and noted. Returns 1 then, 0 when the
 * general way must decide (the stream untouched: no Authorization, not
 * cached, a denial, an IAM policy to evaluate), -2 when an edit could not
 * be made (out of memory: the request must not go on). */
int gh_azr_apply_cached(gh_stream_t *s, const gh_azr_t *a, const gh_drop_list_t *l);

#endif
