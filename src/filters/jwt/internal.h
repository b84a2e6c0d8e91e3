/*
 * The authn filter's parts (src/filters/jwt/): runtime.c (per-snapshot
 * provider runtimes and the type's config, readiness and service hooks),
 * cache.c (each worker's verifier and cache of verified tokens),
 * location.c (where a token is found, and how it is stripped), filter.c
 * (the per-request decision and the type's table). Internal to the folder.
 */
#ifndef GATEHOUSE_FILTERS_JWT_INTERNAL_H
#define GATEHOUSE_FILTERS_JWT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <gatehouse/ct.h>
#include <gatehouse/filter.h>
#include <gatehouse/jwt.h>
#include <gatehouse/issuer_keys.h>
#include <gatehouse/keyring.h>
#include <gatehouse/metrics.h>

#include "filters/authorizer/authorizer.h"
#include "filters/jwt/jwt.h"

/* ---- runtime.c ---- */

typedef struct gh_jwt_runtime_s gh_jwt_runtime_t;

/* apikey.c: why a key passed or not (metrics labels, replies). */
enum {
    GH_AK_OK = 0,
    GH_AK_MISSING,
    GH_AK_MULTIPLE,
    GH_AK_MALFORMED,
    GH_AK_UNKNOWN,
    GH_AK_REVOKED,
    GH_AK_DISABLED,
    GH_AK_EXPIRED,
    GH_AK_REPLACED,
    GH_AK_STORE_UNAVAILABLE,
    GH_AK_BUSY,
    GH_AK_OUT_OF_MEMORY,
    GH_AK_PLAN_UNKNOWN, /* the key names a plan and the config has no plans */
    GH_AK_REASON_COUNT
};

/* The snapshot's API-key part: its store and each provider's decision
 * counters (indexed by provider index, then reason). */
typedef struct gh_store_s gh_store_t;
typedef struct {
    gh_store_t *store; /* a reference; NULL when it could not be opened */
    uint64_t id;       /* unique per snapshot: cache entries are per store */
    uint32_t (*ids)[GH_AK_REASON_COUNT];
} gh_jwtf_ak_runtime_t;

typedef struct gh_jwtf_ak_pending_s gh_jwtf_ak_pending_t;

/* The filter's instance on a route: its authn with the runtimes of its
 * providers (borrowed from the snapshot's runtime). */
typedef struct {
    const gh_authn_conf_t *authn;
    gh_jwt_runtime_t **rt; /* authn->num_providers entries */
    int drops;             /* some provider sets headers (claims_to_headers, payload_header) */
    /* The usual route: one provider, its token only in "Authorization:
     * Bearer", forwarded, nothing to drop or exempt; a cached token then
     * takes filter.c's short path. */
    int bearer_only;
    /* The usual API-key route: one provider reading one field, no token
     * provider, not `all`, nothing exempt (apikey.c's short path). */
    int key_only;
    /* The route's authn is one authorizer and nothing else: not `all` or
     * `optional`, nothing exempt (authz.c's gh_jwtf_az_one). */
    int az_only;
    /* az_only, and the authorizer's answers are cached in the worker's
     * cache by the Authorization field alone (gh_azr_is_bearer_cached): a
     * cached allow takes gh_azr_apply_cached (filter.c's
     * on_request_headers). */
    int az_fast;
    /* The largest envoy.max_request_body of the route's authorizers (0:
     * none sends the body): the body is read whole first (413 past it, as
     * Envoy's ext_authz without allow_partial_message), so that the
     * service sees it (filter.c's on_request_headers). */
    size_t az_body;
    gh_jwtf_ak_runtime_t *ak; /* the snapshot's API-key part (borrowed) */
    /* The config has no plans: a key naming one is refused here (with
     * plans, the rate_limits filter refuses a plan it does not have). */
    int no_plans;
    /* The names this route's providers set (claims_to_headers,
     * payload_header, consumer headers), dropped from every request; and
     * for key_only, the consumer header with the key's own field unless
     * it is forwarded (apikey.c's short path). Made at bind, NULL when
     * empty. */
    gh_drop_list_t *set_drops, *ak_fast_drops;
    /* For key_only with a field name of 8 to 16 bytes: its first and last
     * eight bytes, and 0x20 in each letter's byte, so that (word | mask)
     * == word of the name compares eight bytes ignoring ASCII case
     * (apikey.c's short path; other spellings go gh_field_name_same). */
    int ak_name_words;
    uint64_t ak_name_w[2], ak_name_m[2];
    /* The route's authorizers (authn->num_authorizers, borrowed from the
     * snapshot's set). */
    const gh_azr_t **az;
} gh_authn_filter_conf_t;

/* The filter's stream context is the pending work of the moment: an API
 * key lookup (apikey.c) or an authorizer call (authz.c), told apart by
 * their first member. */
enum { GH_JWTF_CTX_AK = 0, GH_JWTF_CTX_AZ = 1 };

struct gh_jwt_runtime_s {
    uint64_t id; /* unique per runtime, for cache entries */
    const gh_jwt_provider_conf_t *conf;
    gh_keyring_t *keyring;  /* NULL for issuer: self */
    gh_issuer_keys_t *self; /* issuer: self: the process's key watcher (borrowed), else NULL */
    gh_jwt_claims_policy_t policy;
    gh_jwt_claim_req_t *reqs;
    uint32_t decision_ids[GH_JWT_REASON_COUNT];
    char *scope_needed; /* for insufficient_scope: the required scope values, or NULL */
};

gh_jwt_runtime_t *gh_jwtf_runtime_new(const gh_jwt_provider_conf_t *p);
void gh_jwtf_runtime_free(gh_jwt_runtime_t *rt);
void gh_jwtf_count(gh_stream_t *s, const gh_jwt_runtime_t *rt, gh_jwt_reason_t r);
int gh_jwtf_parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                  gh_route_t *route, void **conf);
void gh_jwtf_free_conf(void *conf);
void gh_jwtf_fini(void *p);
int gh_jwtf_init(const gh_config_t *cfg, void **out);
size_t gh_jwtf_ready(const void *p, int detailed, char *out, size_t cap);
void *gh_jwtf_bind(void *p, const gh_config_t *cfg, const gh_route_t *route, const void *conf,
                   const char *listener);
void gh_jwtf_unbind(void *p);
int gh_jwtf_service_start(uv_loop_t *main_loop);
void gh_jwtf_service_stop(void);
void gh_jwtf_service_free(void);

/* ---- cache.c ---- */

#define WAYS 4

typedef struct {
    uint64_t hash;
    uint64_t rt_id;
    uint64_t gen;
    int64_t expires; /* unix seconds; INT64_MAX without exp */
    char *token;     /* owned */
    size_t token_len;
    char *hdrs; /* owned: header lines to add */
    size_t hdrs_len;
    /* owned: the identity as NUL-terminated strings back to back, copied
     * into a stream in one piece; an offset of -1 is an absent string */
    char *ident;
    size_t ident_len;
    int iss_off, sub_off, scopes_off;
} entry_t;

/* A looked-up API key in a worker's cache (apikey.c). */
typedef struct {
    uint64_t hash;
    uint64_t store_id;
    /* When the store answered (the worker's loop time): each provider
     * trusts the answer for its own cache_ttl (negative_cache_ttl), so
     * that one whose bound on a revocation is shorter never serves an
     * entry another provider cached for longer. */
    uint64_t at_ms;
    char *key; /* owned: the key as presented */
    size_t key_len;
    int found; /* 0: the store has no such key (negative entry) */
    int enabled;
    /* Uses not yet counted in the store (a reference held while there are
     * any): counted in batches, see flush_uses. */
    gh_store_t *store;
    uint32_t uses;
    int64_t revoked_at, expires_at, grace_until;
    int64_t valid_until; /* expiry or end of grace, the earlier; 1 when not found, revoked or
                            disabled; 0: none */
    char id[13];
    /* owned: consumer, plan, scopes as NUL-terminated strings back to
     * back; an offset of -1 is an absent string (consumer is at 0) */
    char *ident;
    size_t ident_len, consumer_len;
    int plan_off, scopes_off;
    /* owned: "consumer-header: consumer\r\n" of the provider hdr_for */
    char *hdr;
    size_t hdr_len;
    const gh_apikey_provider_conf_t *hdr_for;
} akentry_t;

typedef struct {
    gh_jwt_verifier_t *verifier;
    akentry_t *ak; /* ak_nsets * WAYS */
    size_t ak_nsets;
    /* Every second, the cached keys' uses go to the store (apikey.c):
     * those of the entries listed in ak_dirty (an entry may be listed
     * twice or cleared since: counting zero uses is nothing). */
    akentry_t **ak_dirty;
    size_t num_ak_dirty;
    uv_timer_t ak_timer;
    int ak_timer_on;
    /* The worker's loop once it looked a key up: when the worker ends
     * (this state is freed on the main thread after the loop was run out),
     * gh_store_loop_end(loop) releases the store's connections on it. */
    uv_loop_t *loop;
    /* Failed lookups: when the last was logged, and how many since. */
    uint64_t ak_fail_logged_ms, ak_fail_quiet;
    unsigned worker_id;
    entry_t *entries; /* nsets * WAYS */
    size_t nsets;
    uint64_t seed, rng;
    /* The worker's counter of accepted tokens for the runtime last counted
     * (ok_rt_id 0: none yet), so that a cached token is counted without
     * looking the counter up. */
    uint64_t ok_rt_id;
    gh_decision_stats_t *ok_stats;
    /* The same for API keys: the snapshot's key runtime and the provider
     * (a snapshot's providers share the runtime's id; each has its own
     * counter). */
    uint64_t ak_ok_id;
    const gh_apikey_provider_conf_t *ak_ok_p;
    gh_decision_stats_t *ak_ok_stats;
} wstate_t;

/* Picks the cache set from the length and the last 16 bytes (the end of
 * the signature), with a per-worker seed. Only a set: equality is a full
 * comparison of the token, so a collision costs a miss, never a wrong
 * answer. Only verified tokens are cached, and two of those that end alike
 * would need the signer to have made them so; a collision only shares one
 * of the four ways of a set. */
static inline uint64_t gh_jwtf_hash(const wstate_t *w, const char *t, size_t n)
{
    uint64_t h = w->seed ^ (n * 0x9E3779B97F4A7C15ULL), v;
    if (n >= 16) {
        /* Every cacheable token: two words, no loop. */
        memcpy(&v, t + n - 16, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        memcpy(&v, t + n - 8, 8);
        h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
        return h ^ (h >> 29);
    }
    /* Short ones byte by byte (the words memcpy would fill, little
     * endian): a memcpy of a variable length into v would put v in memory
     * and a stack canary in every caller. */
    uint64_t u = 0;
    v = 0;
    for (size_t i = 0; i < n; i++) {
        if (i < 8)
            v |= (uint64_t)(unsigned char)t[i] << (8 * i);
        else
            u |= (uint64_t)(unsigned char)t[i] << (8 * (i - 8));
    }
    h = (h ^ v) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
    h = (h ^ u) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

/* The entry of token t verified by rt_id, or NULL; h is gh_jwtf_hash's.
 * The hash is compared first: it differs for nearly every other token.
 * The token itself in constant time: a cached token is someone's
 * credential, and a prober who made one end alike (the hash) must not
 * learn from the time how much of the rest he has right. */
static inline entry_t *gh_jwtf_cache_get(wstate_t *w, uint64_t h, uint64_t rt_id, const char *t,
                                         size_t n)
{
    if (w->entries == NULL)
        return NULL;
    entry_t *set = &w->entries[(h & (w->nsets - 1)) * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (set[i].hash == h && set[i].token != NULL && set[i].rt_id == rt_id &&
            set[i].token_len == n && gh_ct_equal(set[i].token, t, n))
            return &set[i];
    return NULL;
}

void gh_jwtf_entry_clear(entry_t *e);
void *gh_jwtf_wstate_new(void);
void gh_jwtf_wstate_free(void *p);
uint64_t gh_jwtf_token_hash(const wstate_t *w, const char *t, size_t n);
int gh_jwtf_cache_fit(wstate_t *w, uint32_t entries);
/* The entry of token t (n bytes, hash h) made by runtime rt_id, or NULL.
 * A token that two providers verified has an entry for each: looked up by
 * token alone, the first would hide the other's (a miss, a fresh
 * verification and one more copy of the token in its set, every time). */
entry_t *gh_jwtf_cache_find(wstate_t *w, uint64_t h, uint64_t rt_id, const char *t, size_t n);
/* The same, hashing t itself; *hash gets the hash, for gh_jwtf_cache_slot. */
entry_t *gh_jwtf_cache_lookup(wstate_t *w, uint64_t rt_id, const char *t, size_t n, uint64_t *hash);
/* A cleared entry for token t verified by rt_id: the stale one it had
 * (expired, or of an older key set), else a free way, else a random one. */
entry_t *gh_jwtf_cache_slot(wstate_t *w, uint64_t h, uint64_t rt_id, const char *t, size_t n);
int gh_jwtf_build_entry(const gh_jwt_runtime_t *rt, const gh_jwt_t *t, entry_t *e);

/* ---- apikey.c ---- */

int gh_jwtf_ak_init(const gh_config_t *cfg, gh_jwtf_ak_runtime_t *ak);
void gh_jwtf_ak_fini(gh_jwtf_ak_runtime_t *ak);
size_t gh_jwtf_ak_ready(const gh_jwtf_ak_runtime_t *ak, const gh_config_t *cfg, char *line,
                        size_t cap);
const char *gh_jwtf_ak_reason_name(int r);
int gh_jwtf_ak_reason_status(int r);
void gh_jwtf_ak_refuse(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k, int r,
                       const char *why);
int gh_jwtf_ak_find(gh_stream_t *s, const gh_apikey_provider_conf_t *p, const char **key,
                    size_t *len);
int gh_jwtf_ak_check(gh_stream_t *s, const gh_authn_filter_conf_t *fc, wstate_t *w, size_t k,
                     gh_jwtf_ak_pending_t **pending);
void gh_jwtf_ak_cancel(gh_jwtf_ak_pending_t *pd);
/* The provider a resumed decision goes on from: the one whose lookup
 * paused the stream (0 for a NULL pd, a decision not resumed). */
size_t gh_jwtf_ak_resume_at(const gh_jwtf_ak_pending_t *pd);
/* usageIdentifierKey: the key kv (borrowed) that authorizer az's answer
 * names, looked up as an apikeys provider's key (the worker's cache with
 * az's usage_key_cache_ttl, else the store). A valid key sets the
 * identity's consumer, plan and key id (what the rate_limits filter keys
 * by). Returns GH_AK_OK (applied), another reason (not answered), or -1:
 * the stream paused for the store, and cb runs later with the reason (the
 * key applied when GH_AK_OK). */
typedef void (*gh_jwtf_ak_usage_cb)(void *arg, gh_stream_t *s, int reason);
int gh_jwtf_ak_usage(gh_stream_t *s, const gh_authn_filter_conf_t *fc,
                     const gh_authorizer_conf_t *az, const char *kv, size_t kn,
                     gh_jwtf_ak_usage_cb cb, void *arg);
int gh_jwtf_ak_fast(gh_stream_t *s, const gh_authn_filter_conf_t *fc, gh_filter_status_t *st);
void gh_jwtf_ak_cache_free(wstate_t *w);

/* ---- authz.c ---- */

typedef struct gh_jwtf_az_pending_s gh_jwtf_az_pending_t;

/* `all`: authorizers k.. of the route, each must allow (the request's
 * keys and tokens passed before). */
gh_filter_status_t gh_jwtf_az_all(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k);
/* any/optional without a key or a token: the first authorizer whose
 * identity sources are all there decides; none: optional passes, else 401. */
/* The route's one authorizer, nothing else (fc->az_only): asked
 * straight, its missing sources a 401 as on an any route. */
gh_filter_status_t gh_jwtf_az_one(gh_stream_t *s, const gh_authn_filter_conf_t *fc);
gh_filter_status_t gh_jwtf_az_any(gh_stream_t *s, const gh_authn_filter_conf_t *fc);
void gh_jwtf_az_cancel(gh_jwtf_az_pending_t *pd);

/* ---- filter.c ---- */

/* The worker's state of the filter (NULL: out of memory). */
wstate_t *gh_jwtf_worker(gh_stream_t *s);
/* The route's decision; pd is the stream's pending lookup (NULL on the
 * first run), whose answer it now finds. */
gh_filter_status_t gh_jwtf_decide(gh_stream_t *s, const gh_authn_filter_conf_t *fc,
                                  gh_jwtf_ak_pending_t *pd);

/* ---- location.c ---- */

typedef struct {
    const char *p;
    size_t n;
    const gh_token_from_t *from;
} found_t;

/* forward_token: false. The upstream gets the request without the token,
 * wherever it was: the token locations to empty, gathered over the route's
 * providers (a provider's every location, and on an `any` route the other
 * providers' locations that held the same token), then removed in one go:
 * headers dropped, Cookie rebuilt once, the target rebuilt once. Two
 * rebuilds, each from the original request, would lose the first edit (or
 * add Cookie twice). */
typedef struct {
    const gh_token_from_t **v; /* borrowed from the config */
    size_t n, cap;
    int cookies, queries; /* how many of each kind */
} strip_t;

int gh_jwtf_same_token(const char *a, size_t an, const char *b, size_t bn);
int gh_jwtf_find_at(gh_stream_t *s, const gh_h1_header_t *hs, size_t nh,
                    const gh_token_from_t *from, found_t *cand);
int gh_jwtf_find_token(gh_stream_t *s, const gh_jwt_provider_conf_t *p, found_t *out);
int gh_jwtf_strip_init(gh_stream_t *s, const gh_authn_conf_t *a, strip_t *st);
void gh_jwtf_strip_add(strip_t *st, const gh_token_from_t *from);
void gh_jwtf_strip_add_provider(strip_t *st, const gh_jwt_provider_conf_t *p);
int gh_jwtf_strip_apply(gh_stream_t *s, const strip_t *st);

/* The provider's keys, wherever they come from (runtime.c): a keyring's,
 * or for issuer: self the issuer's published keys, whose generation also
 * moves with every revocation (so a revoked token leaves the verified-token
 * cache at once). */
uint64_t gh_jwtf_self_generation(const gh_jwt_runtime_t *rt);
gh_jwks_t *gh_jwtf_self_keys(const gh_jwt_runtime_t *rt);

static inline uint64_t gh_jwtf_keys_generation(const gh_jwt_runtime_t *rt)
{
    return rt->keyring != NULL ? gh_keyring_generation(rt->keyring) : gh_jwtf_self_generation(rt);
}

static inline gh_jwks_t *gh_jwtf_keys_get(const gh_jwt_runtime_t *rt)
{
    return rt->keyring != NULL ? gh_keyring_get(rt->keyring) : gh_jwtf_self_keys(rt);
}

#endif
