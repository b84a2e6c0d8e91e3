/*
 * The JWT authentication filter: finds the bearer token(s), verifies them
 * against the route's providers, and hands the verified identity to the
 * filters after it and the upstream (claims as headers).
 *
 * Refusals follow RFC 6750 section 3: 401 with WWW-Authenticate: Bearer
 * (error="invalid_token" and a description when a token was there), 403
 * with error="insufficient_scope" when a valid token lacks a required
 * claim, and 503 when a provider's keys have not loaded yet (the caller did
 * nothing wrong). The token itself never reaches a log or a metric.
 *
 * Each worker keeps a bounded cache of verified tokens: the full token
 * (compared byte for byte, so a hash collision cannot pass a forged token),
 * the provider runtime and key set generation it was verified under, its
 * expiry, and the header lines to add. A key set refresh changes the
 * generation and so retires every entry made under the old keys.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gatehouse/metrics.h>
#include <gatehouse/pairs.h>

#include <gatehouse/revoked.h>

#include "filters/jwt/internal.h"

/* ---- refusals ---- */

/* Answers a refusal for r: its status and text come from the reason table
 * (gh_jwt_reason_status, gh_jwt_reason_text). */
static void refuse(gh_stream_t *s, const gh_jwt_runtime_t *rt, gh_jwt_reason_t r,
                   const char *detail)
{
    const char *realm = rt ? rt->conf->realm : "gatehouse";
    int status = gh_jwt_reason_status(r);
    char hdr[1024], desc[512];
    snprintf(desc, sizeof(desc), "%s%s%s", gh_jwt_reason_text(r), detail && detail[0] ? ": " : "",
             detail ? detail : "");
    /* error_description is a quoted-string of visible ASCII without '"'
     * and '\\' (RFC 6750 section 3). */
    for (char *c = desc; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '\'';
    if (r == GH_JWT_MISSING_TOKEN)
        snprintf(hdr, sizeof(hdr), "www-authenticate: Bearer realm=\"%s\"\r\n", realm);
    else if (status == 401)
        snprintf(hdr, sizeof(hdr),
                 "www-authenticate: Bearer realm=\"%s\", error=\"invalid_token\", "
                 "error_description=\"%s\"\r\n",
                 realm, desc);
    else if (status == 403)
        snprintf(hdr, sizeof(hdr),
                 "www-authenticate: Bearer realm=\"%s\", error=\"insufficient_scope\", "
                 "error_description=\"%s\"%s%s%s\r\n",
                 realm, desc, rt && rt->scope_needed ? ", scope=\"" : "",
                 rt && rt->scope_needed ? rt->scope_needed : "",
                 rt && rt->scope_needed ? "\"" : "");
    else
        hdr[0] = '\0';
    if (rt != NULL)
        gh_jwtf_count(s, rt, r);
    const char *code = status == 401
                           ? (r == GH_JWT_MISSING_TOKEN ? "unauthorized" : "invalid_token")
                       : status == 403 ? "insufficient_scope"
                                       : "service_unavailable";
    gh_stream_reply_error_with(s, status, code, desc, hdr[0] ? hdr : NULL);
}

/* Counts an accepted token, as gh_jwtf_count(s, rt, GH_JWT_OK) does, with
 * the counter remembered per worker. */
static inline void count_ok(gh_stream_t *s, wstate_t *w, const gh_jwt_runtime_t *rt)
{
    if (w->ok_rt_id != rt->id) {
        w->ok_stats = gh_metrics_decision(gh_stream_metrics(s), rt->decision_ids[GH_JWT_OK]);
        w->ok_rt_id = rt->id;
    }
    if (w->ok_stats != NULL)
        GH_STAT_INC(w->ok_stats->count);
}

/* Applies a verified result to the stream. Returns 0, or -1 when a header
 * edit or a copy failed (out of memory): the request must not go on. */
static inline __attribute__((always_inline)) int
apply(gh_stream_t *s, wstate_t *w, const gh_jwt_runtime_t *rt, const entry_t *e, const found_t *f)
{
    gh_identity_t *id = gh_stream_identity(s);
    if (e->hdrs_len > 0 && gh_stream_add_header_lines(s, e->hdrs, e->hdrs_len) < 0)
        return -1;
    /* The first token verified gives the principal and the claims. With
     * `all`, an API key checked before it (keys are checked first) gave
     * the provider and the scopes, but the token's iss, sub and claims are
     * still what policies and limits read: without them a DENY on a
     * principal or a claim would be stepped around by adding a key. */
    if (id->token == NULL) {
        int first = id->provider == NULL;
        if (first)
            id->provider = rt->conf->name;
        id->token = f->p;
        id->token_len = f->n;
        /* The entry may be evicted while the stream lives: copy. */
        char *b = e->ident_len > 0 ? gh_stream_alloc(s, e->ident_len) : NULL;
        if (e->ident_len > 0 && b == NULL)
            return -1;
        if (b != NULL) {
            memcpy(b, e->ident, e->ident_len);
            id->issuer = e->iss_off >= 0 ? b + e->iss_off : NULL;
            id->subject = e->sub_off >= 0 ? b + e->sub_off : NULL;
            if (first)
                id->scopes = e->scopes_off >= 0 ? b + e->scopes_off : NULL;
        }
    }
    count_ok(s, w, rt);
    return 0;
}

/* A verified token whose edits could not be made: 503, never forwarded
 * half-edited. Returns the status answered. */
static int apply_failed(gh_stream_t *s)
{
    gh_stream_reply_error(s, 503, "service_unavailable", "cannot edit the request's fields");
    return 503;
}

/* A refusal held back while another same-issuer provider may still take
 * the token. */
typedef struct {
    int status; /* 0: none */
    int rank;   /* higher is more telling */
    gh_jwt_reason_t reason;
    char detail[256];
    gh_jwt_runtime_t *rt;
} deferred_t;

/* Verifies tok for rt. Returns 0 (applied), or an HTTP status already
 * answered (401, 403, 503), or -1 when the token's issuer is not rt's or
 * when a claims refusal went to *d (given when a later provider shares the
 * issuer) instead of being answered. */
static int verify_fresh(gh_stream_t *s, wstate_t *w, gh_jwt_runtime_t *rt, const found_t *f,
                        int must_match_issuer, deferred_t *d, uint64_t h, time_t now);

/* issuer: self: the token's jti was revoked (RFC 7009) and is not expired. */
static int revoked(const gh_jwt_t *t, time_t now)
{
    size_t len = 0;
    const char *jti = gh_jwt_claim_string(t, "jti", &len);
    return jti != NULL && gh_revoked_has(jti, len, (int64_t)now);
}

static int verify_one(gh_stream_t *s, wstate_t *w, gh_jwt_runtime_t *rt, const found_t *f,
                      int must_match_issuer, deferred_t *d)
{
    uint64_t h;
    time_t now = time(NULL);
    uint64_t gen = gh_jwtf_keys_generation(rt);
    entry_t *e = gh_jwtf_cache_lookup(w, rt->id, f->p, f->n, &h);
    if (e != NULL && e->gen == gen && gen != 0 && now < e->expires)
        return apply(s, w, rt, e, f) < 0 ? apply_failed(s) : 0;
    return verify_fresh(s, w, rt, f, must_match_issuer, d, h, now);
}

/* verify_one for a token not in the cache (kept out of line: the cached
 * path is the common one, and this one's frame is large). */
__attribute__((noinline)) static int verify_fresh(gh_stream_t *s, wstate_t *w, gh_jwt_runtime_t *rt,
                                                  const found_t *f, int must_match_issuer,
                                                  deferred_t *d, uint64_t h, time_t now)
{
    const gh_jwt_provider_conf_t *p = rt->conf;
    uint64_t gen;
    gh_jwt_reason_t reason = GH_JWT_MALFORMED_TOKEN;
    char detail[256] = "";
    gh_jwt_t t;
    int rc = gh_jwt_verifier_parse(w->verifier, f->p, f->n, &t, &reason);
    if (rc < 0) {
        if (rc == -ENOMEM)
            reason = GH_JWT_OUT_OF_MEMORY;
        refuse(s, rt, reason, NULL);
        return gh_jwt_reason_status(reason);
    }
    const char *iss = gh_jwt_claim_string(&t, "iss", NULL);
    if (must_match_issuer && (iss == NULL || strcmp(iss, p->issuer) != 0)) {
        gh_jwt_dispose(&t);
        return -1;
    }
    if (!(p->algorithms & (1u << (t.alg - 1)))) {
        const char *name = gh_jwt_alg_name(t.alg);
        gh_jwt_dispose(&t);
        refuse(s, rt, GH_JWT_ALG_NOT_ALLOWED, name);
        return 401;
    }
    /* For issuer: self the generation moves with revocations too: taken
     * before the revocation check, so one made meanwhile empties the entry. */
    uint64_t self_gen = rt->self != NULL ? gh_jwtf_self_generation(rt) : 0;
    gh_jwks_t *keys = gh_jwtf_keys_get(rt);
    if (keys == NULL) {
        snprintf(detail, sizeof(detail),
                 "provider '%s' has no keys yet (see /ready and the log for why)", p->name);
        gh_jwt_dispose(&t);
        refuse(s, rt, GH_JWT_KEYS_UNAVAILABLE, detail);
        return 503;
    }
    rc = gh_jwt_verifier_verify(w->verifier, &t, keys, &reason);
    gen = rt->self != NULL ? self_gen : gh_jwks_generation(keys);
    gh_jwks_unref(keys);
    if (rc == -ENOKEY && rt->keyring != NULL)
        gh_keyring_request_refresh(rt->keyring);
    if (rc == 0)
        rc = gh_jwt_check_claims(&t, &rt->policy, (int64_t)now, &reason, detail, sizeof(detail));
    if (rc == 0 && rt->self != NULL && revoked(&t, now)) {
        reason = GH_JWT_REVOKED;
        rc = -1;
    }
    if (rc < 0) {
        gh_jwt_dispose(&t);
        /* Another provider with the same issuer may still take the token
         * (different audiences or claims): hold the refusal back. The one
         * that says the most wins: a missing claim from the provider whose
         * audience matched beats another provider's "wrong audience". */
        if (rc == -ENOMEM)
            reason = GH_JWT_OUT_OF_MEMORY;
        if (d != NULL && (reason == GH_JWT_INSUFFICIENT_CLAIMS || reason == GH_JWT_WRONG_AUDIENCE ||
                          reason == GH_JWT_WRONG_TYP)) {
            int rank = reason == GH_JWT_INSUFFICIENT_CLAIMS ? 3
                       : reason == GH_JWT_WRONG_TYP         ? 2
                                                            : 1;
            if (rank > d->rank) {
                d->status = gh_jwt_reason_status(reason);
                d->rank = rank;
                d->reason = reason;
                snprintf(d->detail, sizeof(d->detail), "%s", detail);
                d->rt = rt;
            }
            return -1;
        }
        refuse(s, rt, reason, detail);
        return gh_jwt_reason_status(reason);
    }
    entry_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    int cached = p->cache_entries > 0 && gh_jwtf_cache_fit(w, p->cache_entries) == 0;
    entry_t *e = cached ? gh_jwtf_cache_slot(w, h, rt->id, f->p, f->n) : &tmp;
    if (gh_jwtf_build_entry(rt, &t, e) < 0) {
        gh_jwtf_entry_clear(e);
        gh_jwt_dispose(&t);
        refuse(s, rt, GH_JWT_OUT_OF_MEMORY, NULL);
        return 503;
    }
    gh_jwt_dispose(&t);
    if (cached) {
        e->token = malloc(f->n);
        if (e->token != NULL) {
            memcpy(e->token, f->p, f->n);
            e->token_len = f->n;
            e->hash = h;
            e->rt_id = rt->id;
            e->gen = gen;
        }
    }
    int ar = apply(s, w, rt, e, f);
    if (!cached || e->token == NULL)
        gh_jwtf_entry_clear(e);
    return ar < 0 ? apply_failed(s) : 0;
}

static int exempt(gh_stream_t *s, const gh_authn_conf_t *a)
{
    const char *method, *path, *query;
    size_t method_len, path_len, query_len;
    gh_stream_request_line(s, &method, &method_len, &path, &path_len, &query, &query_len);
    for (size_t i = 0; i < a->num_exempt; i++)
        if (gh_stream_match(s, &a->exempt[i], path, path_len))
            return 1;
    return 0;
}

/* An `all` route: every location of each provider with forward_token:
 * false (a location shared with a provider that forwards is stripped too:
 * one provider asking for it is enough). */
static int strip_keys(gh_stream_t *s, const gh_authn_conf_t *a, int with_tokens);

/* Every location of the providers that do not forward their credential,
 * API keys included: one edit of the target for all of them. */
static int strip_all(gh_stream_t *s, const gh_authn_conf_t *a)
{
    return strip_keys(s, a, 1);
}

/* An `any`/`optional` route whose provider `taken` accepted tok: when it
 * has forward_token: false, every location of its own, and every location
 * of the route's other providers that holds tok (the same token found
 * there counted as this one, so it goes too). */
static int strip_any(gh_stream_t *s, const gh_authn_conf_t *a, size_t taken, const found_t *tok)
{
    if (a->providers[taken]->forward_token)
        return 0;
    strip_t st;
    if (gh_jwtf_strip_init(s, a, &st) < 0)
        return -1;
    gh_jwtf_strip_add_provider(&st, a->providers[taken]);
    size_t nh;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
    for (size_t i = 0; i < a->num_providers; i++) {
        const gh_jwt_provider_conf_t *p = a->providers[i];
        for (size_t j = 0; i != taken && j < p->num_from; j++) {
            found_t cand = {NULL, 0, &p->from[j]};
            if (gh_jwtf_find_at(s, hs, nh, &p->from[j], &cand) == 0 && cand.p != NULL &&
                gh_jwtf_same_token(cand.p, cand.n, tok->p, tok->n))
                gh_jwtf_strip_add(&st, &p->from[j]);
        }
    }
    return gh_jwtf_strip_apply(s, &st);
}

/* An any/optional route with one provider: the general case below with its
 * two passes over the providers folded into one. */
static gh_filter_status_t one_provider(gh_stream_t *s, const gh_authn_filter_conf_t *fc,
                                       wstate_t *w)
{
    const gh_authn_conf_t *a = fc->authn;
    found_t f;
    int n = gh_jwtf_find_token(s, a->providers[0], &f);
    if (n < 0) {
        refuse(s, fc->rt[0], GH_JWT_MULTIPLE_TOKENS, NULL);
        return GH_FILTER_REPLIED;
    }
    if (n == 0) {
        if (a->optional)
            return GH_FILTER_CONTINUE;
        refuse(s, fc->rt[0], GH_JWT_MISSING_TOKEN, NULL);
        return GH_FILTER_REPLIED;
    }
    /* No other provider can take the token: a claims refusal is answered
     * at once rather than held back (verify_one's d), as it would be. */
    int r = verify_one(s, w, fc->rt[0], &f, 1, NULL);
    if (r == 0) {
        if (!a->providers[0]->forward_token && strip_any(s, a, 0, &f) < 0) {
            apply_failed(s);
            return GH_FILTER_REPLIED;
        }
        return GH_FILTER_CONTINUE;
    }
    if (r < 0)
        refuse(s, fc->rt[0], GH_JWT_UNKNOWN_ISSUER, NULL);
    return GH_FILTER_REPLIED;
}

/* Token locations of this many providers are remembered between the two
 * passes of any/optional; more are looked up again. */
#define SEEN_MAX 8

/* Until a provider's keys first load its routes answer 503, token or not:
 * the caller did nothing wrong (for any/optional, while none of the
 * route's providers has keys; for all, while any lacks them). */
__attribute__((noinline)) static gh_filter_status_t
keys_unavailable(gh_stream_t *s, const gh_authn_filter_conf_t *fc)
{
    const gh_authn_conf_t *a = fc->authn;
    char detail[256];
    size_t i = 0;
    while (i + 1 < a->num_providers && gh_jwtf_keys_generation(fc->rt[i]) != 0)
        i++;
    snprintf(detail, sizeof(detail),
             "provider '%s' has no keys yet (see /ready and the log for why)",
             a->providers[i]->name);
    refuse(s, fc->rt[i], GH_JWT_KEYS_UNAVAILABLE, detail);
    return GH_FILTER_REPLIED;
}

/* An `all` route: every provider needs its own valid token (a user token
 * and a service token, say, in different places). */
__attribute__((noinline)) static gh_filter_status_t
all_providers(gh_stream_t *s, const gh_authn_filter_conf_t *fc, wstate_t *w)
{
    const gh_authn_conf_t *a = fc->authn;
    for (size_t i = 0; i < a->num_providers; i++) {
        found_t f;
        int n = gh_jwtf_find_token(s, a->providers[i], &f);
        if (n <= 0) {
            refuse(s, fc->rt[i], n < 0 ? GH_JWT_MULTIPLE_TOKENS : GH_JWT_MISSING_TOKEN, NULL);
            return GH_FILTER_REPLIED;
        }
        int r = verify_one(s, w, fc->rt[i], &f, 0, NULL);
        if (r != 0) {
            if (r < 0)
                refuse(s, fc->rt[i], GH_JWT_WRONG_ISSUER, NULL);
            return GH_FILTER_REPLIED;
        }
    }
    /* Stripped only now: a location two providers share still held the
     * token when the second one looked. */
    if (strip_all(s, a) < 0) {
        apply_failed(s);
        return GH_FILTER_REPLIED;
    }
    return GH_FILTER_CONTINUE;
}

/* An any/optional route with several providers: one token; its issuer
 * picks the provider (RFC 8725 section 3.8), tried in config order among
 * providers that share it. */
__attribute__((noinline)) static gh_filter_status_t
any_provider(gh_stream_t *s, const gh_authn_filter_conf_t *fc, wstate_t *w)
{
    const gh_authn_conf_t *a = fc->authn;
    found_t tok = {NULL, 0, NULL};
    found_t seen[SEEN_MAX]; /* where each of the first providers found it */
    deferred_t held;
    held.status = 0;
    held.rank = 0;
    for (size_t i = 0; i < a->num_providers; i++) {
        found_t f;
        int n = gh_jwtf_find_token(s, a->providers[i], &f);
        if (i < SEEN_MAX)
            seen[i] = n == 1 ? f : (found_t){NULL, 0, NULL};
        if (n == 0)
            continue;
        if (n < 0 || (tok.p != NULL && !gh_jwtf_same_token(tok.p, tok.n, f.p, f.n))) {
            refuse(s, fc->rt[0], GH_JWT_MULTIPLE_TOKENS, NULL);
            return GH_FILTER_REPLIED;
        }
        if (tok.p == NULL)
            tok = f;
    }
    if (tok.p == NULL) {
        if (a->optional)
            return GH_FILTER_CONTINUE;
        refuse(s, fc->rt[0], GH_JWT_MISSING_TOKEN, NULL);
        return GH_FILTER_REPLIED;
    }
    for (size_t i = 0; i < a->num_providers; i++) {
        /* A provider only takes a token from its own locations. */
        found_t mine;
        if (i < SEEN_MAX)
            mine = seen[i];
        else if (gh_jwtf_find_token(s, a->providers[i], &mine) != 1)
            continue;
        if (mine.p == NULL || !gh_jwtf_same_token(mine.p, mine.n, tok.p, tok.n))
            continue;
        int r = verify_one(s, w, fc->rt[i], &mine, 1, &held);
        if (r == 0 && strip_any(s, a, i, &tok) < 0) {
            apply_failed(s);
            return GH_FILTER_REPLIED;
        }
        if (r == 0)
            return GH_FILTER_CONTINUE;
        if (r > 0)
            return GH_FILTER_REPLIED;
    }
    if (held.status != 0)
        refuse(s, held.rt, held.reason, held.detail);
    else
        refuse(s, fc->rt[0], GH_JWT_UNKNOWN_ISSUER, NULL);
    return GH_FILTER_REPLIED;
}

/* The usual request on the usual route (fc->bearer_only): "Authorization:
 * Bearer <token>" spelled the common way, and the token in the cache with
 * the current keys. Returns the filter's status when it was taken here
 * (REPLIED: the stream answered 503, it could not be edited), -1 to go the
 * general way, which decides everything this path does not look at (other
 * spellings, a key set not loaded, a token not cached) and reaches the
 * same result for the rest: a singleton Authorization holds at most one
 * token, and the one provider's cached entry is what verify_one would
 * apply. */
static inline int bearer_cached(gh_stream_t *s, const gh_authn_filter_conf_t *fc)
{
    const gh_h1_header_t *h = gh_stream_authorization(s);
    if (h == NULL || h->value_len <= 7 || memcmp(h->value, "Bearer ", 7) != 0 ||
        h->value[7] == ' ' || h->value[7] == '\t')
        return -1;
    wstate_t *w =
        gh_stream_worker_state(s, &gh_authn_filter, gh_jwtf_wstate_new, gh_jwtf_wstate_free);
    if (w == NULL)
        return -1;
    gh_jwt_runtime_t *rt = fc->rt[0];
    found_t f = {h->value + 7, h->value_len - 7, &rt->conf->from[0]};
    entry_t *e = gh_jwtf_cache_get(w, gh_jwtf_hash(w, f.p, f.n), rt->id, f.p, f.n);
    if (e == NULL)
        return -1;
    uint64_t gen = gh_jwtf_keys_generation(rt);
    if (e->gen != gen || gen == 0 || time(NULL) >= e->expires)
        return -1;
    if (apply(s, w, rt, e, &f) < 0) {
        apply_failed(s);
        return GH_FILTER_REPLIED;
    }
    return GH_FILTER_CONTINUE;
}

wstate_t *gh_jwtf_worker(gh_stream_t *s)
{
    return gh_stream_worker_state(s, &gh_authn_filter, gh_jwtf_wstate_new, gh_jwtf_wstate_free);
}

/* API keys removed before forwarding (forward_key: false), in one edit of
 * the target with the JWT locations of strip_all when both go. */
static int strip_keys(gh_stream_t *s, const gh_authn_conf_t *a, int with_tokens)
{
    if (!with_tokens) {
        /* Keys only in fields (the usual case): dropping the fields is all. */
        int fields_only = 1, r = 0;
        for (size_t i = 0; i < a->num_apikeys; i++)
            fields_only &= a->apikeys[i]->query == NULL;
        for (size_t i = 0; fields_only && i < a->num_apikeys; i++)
            if (!a->apikeys[i]->forward_key)
                r |= gh_stream_drop_header_static(s, a->apikeys[i]->header,
                                                  a->apikeys[i]->from[0].name_len);
        if (fields_only)
            return r;
    }
    strip_t st;
    if (gh_jwtf_strip_init(s, a, &st) < 0)
        return -1;
    for (size_t i = 0; i < a->num_apikeys; i++)
        if (!a->apikeys[i]->forward_key)
            for (size_t j = 0; j < a->apikeys[i]->num_from; j++)
                gh_jwtf_strip_add(&st, &a->apikeys[i]->from[j]);
    for (size_t i = 0; with_tokens && i < a->num_providers; i++)
        if (!a->providers[i]->forward_token)
            gh_jwtf_strip_add_provider(&st, a->providers[i]);
    return st.n > 0 ? gh_jwtf_strip_apply(s, &st) : 0;
}

/* An any/optional route that a valid key decided: the keys that are not
 * forwarded, and every token the JWT providers' locations hold. Those
 * tokens were never verified (the key decided), so none goes upstream: an
 * upstream that reads the token (forward_token: true) takes what
 * gatehouse forwards as checked, and a forged token beside one's own valid
 * key would pass as a verified identity. */
static int strip_key_decided(gh_stream_t *s, const gh_authn_conf_t *a)
{
    if (a->num_providers == 0)
        return strip_keys(s, a, 0);
    strip_t st;
    if (gh_jwtf_strip_init(s, a, &st) < 0)
        return -1;
    for (size_t i = 0; i < a->num_apikeys; i++)
        if (!a->apikeys[i]->forward_key)
            for (size_t j = 0; j < a->apikeys[i]->num_from; j++)
                gh_jwtf_strip_add(&st, &a->apikeys[i]->from[j]);
    size_t nh;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
    for (size_t i = 0; i < a->num_providers; i++) {
        const gh_jwt_provider_conf_t *p = a->providers[i];
        for (size_t j = 0; j < p->num_from; j++) {
            found_t cand = {NULL, 0, &p->from[j]};
            /* Two tokens there (-1) are no more verified than one. */
            if (gh_jwtf_find_at(s, hs, nh, &p->from[j], &cand) != 0 || cand.p != NULL)
                gh_jwtf_strip_add(&st, &p->from[j]);
        }
    }
    return st.n > 0 ? gh_jwtf_strip_apply(s, &st) : 0;
}

/* The route's API-key providers. Returns 1 with *st when they decided the
 * request (accepted on an any/optional route, refused, paused for a
 * lookup), 0 when the JWT providers decide next: on an `all` route after
 * every key passed, or on an any/optional route without a key. A key that
 * is there decides on an any/optional route: valid passes, invalid is
 * refused, whatever token comes with it (docs/api-keys.md). */
static int apikeys(gh_stream_t *s, const gh_authn_filter_conf_t *fc, wstate_t *w,
                   gh_jwtf_ak_pending_t *pd, gh_filter_status_t *st)
{
    const gh_authn_conf_t *a = fc->authn;
    *st = GH_FILTER_REPLIED;
    /* Resumed after a lookup: the providers before the one that paused
     * were decided already (on `all`, accepted and applied: their edits
     * and counts are not made twice, and without a cache their keys are
     * not looked up again, which would pause this provider's turn forever;
     * on any/optional, without a key). */
    for (size_t k = gh_jwtf_ak_resume_at(pd); k < a->num_apikeys; k++) {
        int r = gh_jwtf_ak_check(s, fc, w, k, &pd);
        if (r < 0) {
            *st = GH_FILTER_PAUSE;
            return 1;
        }
        if (r == GH_AK_MISSING && !a->all)
            continue;
        if (r != GH_AK_OK) {
            gh_jwtf_ak_refuse(s, fc, k, r, NULL);
            return 1;
        }
        if (a->all)
            continue;
        if (strip_key_decided(s, a) < 0) {
            apply_failed(s);
            return 1;
        }
        *st = GH_FILTER_CONTINUE;
        return 1;
    }
    if (a->num_providers > 0 || a->num_authorizers > 0)
        return 0; /* all: keys passed, tokens and authorizers next (strip_all takes keys and
                     tokens); any: tokens or authorizers decide */
    if (a->all) {
        if (strip_keys(s, a, 0) < 0) {
            apply_failed(s);
            return 1;
        }
        *st = GH_FILTER_CONTINUE;
        return 1;
    }
    if (a->optional) {
        *st = GH_FILTER_CONTINUE;
        return 1;
    }
    gh_jwtf_ak_refuse(s, fc, 0, GH_AK_MISSING, NULL);
    return 1;
}

/* Whether some JWT provider of the route finds a token (or two). */
static int token_present(gh_stream_t *s, const gh_authn_conf_t *a)
{
    for (size_t i = 0; i < a->num_providers; i++) {
        found_t f;
        if (gh_jwtf_find_token(s, a->providers[i], &f) != 0)
            return 1;
    }
    return 0;
}

/* A route that names authorizers, once its keys were decided (on `all`,
 * every key passed; on any/optional, none was there). `all`: the tokens,
 * then every authorizer. any/optional: a token decides when there is one
 * (the JWT providers' own rules), else an authorizer whose identity
 * sources are there. */
__attribute__((noinline)) static gh_filter_status_t
with_authorizers(gh_stream_t *s, const gh_authn_filter_conf_t *fc, wstate_t *w, size_t unloaded)
{
    const gh_authn_conf_t *a = fc->authn;
    if (a->all) {
        if (a->num_providers > 0) {
            if (unloaded > 0)
                return keys_unavailable(s, fc);
            gh_filter_status_t st = all_providers(s, fc, w);
            if (st != GH_FILTER_CONTINUE)
                return st;
        } else if (a->num_apikeys > 0 && strip_keys(s, a, 0) < 0) {
            apply_failed(s);
            return GH_FILTER_REPLIED;
        }
        return gh_jwtf_az_all(s, fc, 0);
    }
    if (a->num_providers > 0 && token_present(s, a)) {
        if (unloaded == a->num_providers)
            return keys_unavailable(s, fc);
        return a->num_providers == 1 ? one_provider(s, fc, w) : any_provider(s, fc, w);
    }
    return gh_jwtf_az_any(s, fc);
}

gh_filter_status_t gh_jwtf_decide(gh_stream_t *s, const gh_authn_filter_conf_t *fc,
                                  gh_jwtf_ak_pending_t *pd)
{
    const gh_authn_conf_t *a = fc->authn;
    if (pd == NULL) {
        /* Headers this route's providers set are dropped whatever happens
         * next, so a client can never pass them off as gatehouse's. */
        if (gh_stream_drop_list(s, fc->set_drops) < 0) {
            apply_failed(s);
            return GH_FILTER_REPLIED;
        }
        if (a->num_exempt > 0 && exempt(s, a))
            return GH_FILTER_CONTINUE;
    }
    size_t unloaded = 0;
    for (size_t i = 0; i < a->num_providers; i++)
        unloaded += gh_jwtf_keys_generation(fc->rt[i]) == 0;
    wstate_t *w = gh_jwtf_worker(s);
    if (w == NULL || w->verifier == NULL) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    gh_filter_status_t st;
    if (a->num_apikeys > 0 && apikeys(s, fc, w, pd, &st))
        return st;
    if (a->num_authorizers > 0)
        return with_authorizers(s, fc, w, unloaded);
    if (unloaded > 0 && (a->all || unloaded == a->num_providers))
        return keys_unavailable(s, fc);
    if (a->all)
        return all_providers(s, fc, w);
    if (a->num_providers == 1)
        return one_provider(s, fc, w);
    return any_provider(s, fc, w);
}

/* Every route but bearer_only's, and an az_fast request not cached. */
__attribute__((noinline)) static gh_filter_status_t other_route(gh_stream_t *s,
                                                                const gh_authn_filter_conf_t *fc)
{
    gh_filter_status_t st;
    if (fc->key_only && gh_jwtf_ak_fast(s, fc, &st))
        return st;
    if (fc->az_only)
        return gh_jwtf_az_one(s, fc);
    if (fc->az_body > 0) {
        gh_stream_buffer_body(s, fc->az_body);
        return GH_FILTER_BUFFER;
    }
    return gh_jwtf_decide(s, fc, NULL);
}

/* The two usual requests first, in a frame of their own (nothing whose
 * address is taken): a cached bearer token, a cached authorizer answer. */
static gh_filter_status_t on_request_headers(gh_stream_t *s, const void *conf, void *ctx)
{
    const gh_authn_filter_conf_t *fc = conf;
    (void)ctx;
    if (fc->bearer_only) {
        /* No key, no authorizer, no body to buffer: the general way is
         * gh_jwtf_decide. */
        int st = bearer_cached(s, fc);
        return st >= 0 ? (gh_filter_status_t)st : gh_jwtf_decide(s, fc, NULL);
    }
    if (fc->az_fast) {
        int r = gh_azr_apply_cached(s, fc->az[0], fc->set_drops);
        if (r > 0)
            return GH_FILTER_CONTINUE;
        if (r < 0) {
            apply_failed(s);
            return GH_FILTER_REPLIED;
        }
    }
    return other_route(s, fc);
}

/* The body an envoy authorizer sends is whole (az_body): decide now. */
static gh_filter_status_t on_request_buffered(gh_stream_t *s, const void *conf, void *ctx,
                                              const char *body, size_t len)
{
    (void)ctx;
    (void)body;
    (void)len;
    return gh_jwtf_decide(s, conf, NULL);
}

static void on_cancel(gh_stream_t *s, const void *conf, void *ctx)
{
    (void)s;
    (void)conf;
    if (ctx != NULL && *(const int *)ctx == GH_JWTF_CTX_AZ)
        gh_jwtf_az_cancel(ctx);
    else
        gh_jwtf_ak_cancel(ctx);
}

const gh_filter_type_t gh_authn_filter = {
    .name = "authn",
    .phase = GH_PHASE_AUTHN,
    .parse = gh_jwtf_parse,
    .free_conf = gh_jwtf_free_conf,
    .init = gh_jwtf_init,
    .fini = gh_jwtf_fini,
    .ready = gh_jwtf_ready,
    .bind = gh_jwtf_bind,
    .unbind = gh_jwtf_unbind,
    .service_start = gh_jwtf_service_start,
    .service_stop = gh_jwtf_service_stop,
    .service_free = gh_jwtf_service_free,
    .metrics = gh_keyring_metrics,
    .on_request_headers = on_request_headers,
    .on_request_buffered = on_request_buffered,
    .on_cancel = on_cancel,
};
