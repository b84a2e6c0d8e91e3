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

#include <gatehouse/callout.h>
#include <gatehouse/config.h>
#include <gatehouse/filter.h>

#include "authorizer/authz.h"

struct gh_aws_creds_s;

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
void gh_azr_count(gh_stream_t *s, const gh_azr_t *a, gh_azr_reason_t r);

/* ---- cache.c ---- */

/* A cached answer: an aws result (immutable, evaluated per method ARN)
 * or an envoy allow (the header lines it sets upstream). */
typedef struct {
    uint64_t hash, rt_id;
    uint64_t expires_ms;
    char *key; /* owned: the identity-source values, length-prefixed */
    size_t key_len;
    gh_authz_result_t result; /* owned (aws formats) */
    char *lines;              /* owned (envoy): "name: value\r\n"... */
    size_t lines_len;
} gh_azr_centry_t;

typedef struct {
    gh_azr_centry_t *v; /* nsets * GH_AZR_WAYS */
    size_t nsets;
    uint64_t seed, rng;
} gh_azr_cache_t;

#define GH_AZR_WAYS 4

gh_azr_cache_t *gh_azr_cache_new(uint64_t seed);
void gh_azr_cache_free(gh_azr_cache_t *c);
/* Grows the table to hold at least entries (never shrinks). -1: no memory. */
int gh_azr_cache_fit(gh_azr_cache_t *c, uint32_t entries);
uint64_t gh_azr_cache_hash(const gh_azr_cache_t *c, uint64_t rt_id, const char *k, size_t n);
/* The live entry of key k under runtime rt_id at now_ms, or NULL. */
gh_azr_centry_t *gh_azr_cache_get(gh_azr_cache_t *c, uint64_t h, uint64_t rt_id, const char *k,
                                  size_t n, uint64_t now_ms);
/* Stores an entry, taking result (moved: *result is zeroed) or lines
 * (copied). Returns 0, or -1 (out of memory: nothing cached, result
 * still the caller's). */
int gh_azr_cache_put(gh_azr_cache_t *c, uint64_t h, uint64_t rt_id, const char *k, size_t n,
                     uint64_t expires_ms, gh_authz_result_t *result, const char *lines,
                     size_t lines_len);
size_t gh_azr_cache_count(const gh_azr_cache_t *c);

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
    int kind;                        /* gh_azr_out_kind_t */
    int reason;                      /* gh_azr_reason_t */
    int status;                      /* BAD, ENVOY */
    const char *why;                 /* a short static reason for the log and the detail */
    const gh_authz_result_t *result; /* ALLOW (aws) */
    const char *lines;               /* ALLOW (envoy): header lines to add upstream */
    size_t lines_len;
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
/* Whether every identity source of a is in the request (authn `any`:
 * an authorizer is tried when its sources are there). */
int gh_azr_sources_present(gh_stream_t *s, const gh_azr_t *a);
/* From on_cancel: the callback never runs. NULL: nothing. */
void gh_azr_cancel(gh_azr_call_t *c);

/* ---- apply.c ---- */

/* An ALLOW outcome: the identity (principal, context as claims) unless
 * keep_identity, and the configured headers upstream (client copies
 * dropped first). Returns 0, or -1 when a value is not a header value
 * (the answer is malformed: the caller treats it as GH_AZR_OUT_ERROR) or
 * out of memory (-2). */
int gh_azr_apply(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o, int keep_identity);
/* Answers any other outcome (and an ERROR with on_error allow: returns 0
 * without answering, the request goes on without an identity). Returns 1
 * when it answered. policy: the CUSTOM policy's name for a 403, or NULL. */
int gh_azr_refuse(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o, const char *policy);
/* The drops of a's headers (client copies) onto the stream, before any
 * decision. -1: out of memory. */
int gh_azr_drop_headers(gh_stream_t *s, const gh_azr_t *a);

#endif
