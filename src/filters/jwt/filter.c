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

#include <gatehouse/filter.h>
#include <gatehouse/jwt.h>
#include <gatehouse/keyring.h>
#include <gatehouse/metrics.h>
#include <gatehouse/pairs.h>

#include "filters/jwt/jwt.h"

/* ---- runtime ---- */

typedef struct gh_jwt_runtime_s gh_jwt_runtime_t;

/* The filter's instance on a route: its authn with the runtimes of its
 * providers (borrowed from the snapshot's runtime). */
typedef struct {
    const gh_authn_conf_t *authn;
    gh_jwt_runtime_t **rt; /* authn->num_providers entries */
} gh_authn_filter_conf_t;

static void gh_jwt_runtime_free(gh_jwt_runtime_t *rt);

struct gh_jwt_runtime_s {
    uint64_t id; /* unique per runtime, for cache entries */
    const gh_jwt_provider_conf_t *conf;
    gh_keyring_t *keyring;
    gh_jwt_claims_policy_t policy;
    gh_jwt_claim_req_t *reqs;
    uint32_t decision_ids[GH_JWT_REASON_COUNT];
    char *scope_needed; /* for insufficient_scope: the required scope values, or NULL */
};

static uint64_t next_runtime_id; /* atomic */

static gh_jwt_runtime_t *gh_jwt_runtime_new(const gh_jwt_provider_conf_t *p)
{
    gh_jwt_runtime_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return NULL;
    rt->id = __atomic_add_fetch(&next_runtime_id, 1, __ATOMIC_RELAXED);
    rt->conf = p;
    rt->keyring = gh_keyring_acquire(p);
    rt->reqs = calloc(p->num_required_claims + 1, sizeof(*rt->reqs));
    if (rt->keyring == NULL || rt->reqs == NULL) {
        gh_jwt_runtime_free(rt);
        return NULL;
    }
    size_t scope_len = 0;
    for (size_t i = 0; i < p->num_required_claims; i++) {
        const gh_claim_req_t *r = &p->required_claims[i];
        rt->reqs[i].path = r->claim;
        rt->reqs[i].op = r->op == GH_CLAIM_EXACT    ? GH_JWT_CLAIM_EXACT
                         : r->op == GH_CLAIM_ONE_OF ? GH_JWT_CLAIM_ONE_OF
                                                    : GH_JWT_CLAIM_CONTAINS;
        rt->reqs[i].values = (const char *const *)r->values;
        rt->reqs[i].nvalues = r->num_values;
        if (strcmp(r->claim, "scope") == 0 || strcmp(r->claim, "scp") == 0)
            for (size_t j = 0; j < r->num_values; j++)
                scope_len += strlen(r->values[j]) + 1;
    }
    if (scope_len > 0 && (rt->scope_needed = calloc(1, scope_len + 1)) != NULL) {
        for (size_t i = 0; i < p->num_required_claims; i++) {
            const gh_claim_req_t *r = &p->required_claims[i];
            if (strcmp(r->claim, "scope") != 0 && strcmp(r->claim, "scp") != 0)
                continue;
            for (size_t j = 0; j < r->num_values; j++) {
                if (rt->scope_needed[0])
                    strcat(rt->scope_needed, " ");
                strcat(rt->scope_needed, r->values[j]);
            }
        }
    }
    rt->policy.issuer = p->issuer;
    rt->policy.audiences = (const char *const *)p->audiences;
    rt->policy.naudiences = p->num_audiences;
    rt->policy.skew = (int64_t)p->clock_skew_s;
    rt->policy.exp_optional = p->exp_optional;
    rt->policy.typ = p->typ;
    rt->policy.required = rt->reqs;
    rt->policy.nrequired = p->num_required_claims;
    rt->policy.max_age = (int64_t)p->max_token_age_s;
    for (size_t i = 0; i < GH_JWT_REASON_COUNT; i++)
        rt->decision_ids[i] = gh_metrics_decision_id(p->name, i == GH_JWT_OK ? "allow" : "deny",
                                                     gh_jwt_reason_text((gh_jwt_reason_t)i));
    return rt;
}

static void gh_jwt_runtime_free(gh_jwt_runtime_t *rt)
{
    if (rt == NULL)
        return;
    gh_keyring_release(rt->keyring);
    free(rt->reqs);
    free(rt->scope_needed);
    free(rt);
}

static void count(gh_stream_t *s, const gh_jwt_runtime_t *rt, gh_jwt_reason_t r)
{
    gh_decision_stats_t *d = gh_metrics_decision(gh_stream_metrics(s), rt->decision_ids[r]);
    if (d != NULL)
        GH_STAT_INC(d->count);
}

/* ---- per-worker state: verifier and cache ---- */

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

typedef struct {
    gh_jwt_verifier_t *verifier;
    entry_t *entries; /* nsets * WAYS */
    size_t nsets;
    uint64_t seed, rng;
} wstate_t;

static void entry_clear(entry_t *e)
{
    free(e->token);
    free(e->hdrs);
    free(e->ident);
    memset(e, 0, sizeof(*e));
}

static void *wstate_new(void)
{
    wstate_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->verifier = gh_jwt_verifier_new();
    w->seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)w;
    w->rng = w->seed | 1;
    return w;
}

static void wstate_free(void *p)
{
    wstate_t *w = p;
    for (size_t i = 0; i < w->nsets * WAYS; i++)
        entry_clear(&w->entries[i]);
    free(w->entries);
    gh_jwt_verifier_free(w->verifier);
    free(w);
}

/* Picks the cache set from the length and the last 16 bytes (the end of
 * the signature), with a per-worker seed. Only a set: equality is a full
 * comparison of the token, so a collision costs a miss, never a wrong
 * answer. Only verified tokens are cached, and two of those that end alike
 * would need the signer to have made them so; a collision only shares one
 * of the four ways of a set. */
static uint64_t token_hash(const wstate_t *w, const char *t, size_t n)
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
    v = 0;
    memcpy(&v, t, n > 8 ? 8 : n);
    h = (h ^ v) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
    v = 0;
    if (n > 8)
        memcpy(&v, t + 8, n - 8);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

static int cache_fit(wstate_t *w, uint32_t entries)
{
    size_t sets = 1;
    while (sets * WAYS < entries)
        sets *= 2;
    if (w->entries != NULL && w->nsets >= sets)
        return 0;
    entry_t *e = calloc(sets * WAYS, sizeof(*e));
    if (e == NULL)
        return -1;
    for (size_t i = 0; i < w->nsets * WAYS; i++)
        entry_clear(&w->entries[i]);
    free(w->entries);
    w->entries = e;
    w->nsets = sets;
    return 0;
}

static entry_t *cache_find(wstate_t *w, uint64_t h, const char *t, size_t n)
{
    if (w->entries == NULL)
        return NULL;
    entry_t *set = &w->entries[(h & (w->nsets - 1)) * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (set[i].token != NULL && set[i].hash == h && set[i].token_len == n &&
            memcmp(set[i].token, t, n) == 0)
            return &set[i];
    return NULL;
}

static entry_t *cache_slot(wstate_t *w, uint64_t h)
{
    entry_t *set = &w->entries[(h & (w->nsets - 1)) * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (set[i].token == NULL)
            return &set[i];
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    entry_t *e = &set[w->rng % WAYS];
    entry_clear(e);
    return e;
}

/* ---- token location ---- */

typedef struct {
    const char *p;
    size_t n;
    const gh_token_from_t *from;
} found_t;

static int same_token(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (a == b || memcmp(a, b, an) == 0);
}

/* A cookie's name as servers read it: without the spaces or tabs around
 * it (RFC 6265 section 5.2 trims them), so "token =x" is the cookie
 * "token". */
static int cookie_name_is(const gh_pair_t *pr, const char *name, size_t n)
{
    const char *p = pr->name;
    size_t l = pr->name_len;
    while (l > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        l--;
    }
    while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
        l--;
    /* Then as a query name is read (gatehouse/pairs.h): nginx's
     * $cookie_NAME ignores case and PHP percent-decodes cookie names, so an
     * upstream could read "Session=" or "%73ession=" as "session". */
    gh_pair_t trimmed = *pr;
    trimmed.name = p;
    trimmed.name_len = l;
    return gh_pair_name_decoded_is(&trimmed, name, n);
}

/* The cookie name's pairs in one Cookie field: each is added to *copies;
 * the last one's value goes to *out. */
static void find_in_cookie(const char *v, size_t vn, const char *name, size_t nn, found_t *out,
                           unsigned *copies)
{
    gh_pairs_t it;
    gh_pair_t pr;
    gh_pairs_init(&it, v, vn, ';');
    while (gh_pairs_next(&it, &pr)) {
        if (cookie_name_is(&pr, name, nn)) {
            out->p = pr.value;
            out->n = pr.value_len;
            (*copies)++;
        }
    }
}

/* v starts with prefix, ASCII case ignored (v holds at least n bytes). The
 * usual spelling ("Bearer ") is one memcmp. */
static int prefix_is(const char *v, const char *prefix, size_t n)
{
    return n == 0 || memcmp(v, prefix, n) == 0 || strncasecmp(v, prefix, n) == 0;
}

/* Adds a token found at one place to what a location holds so far:
 * -1 when it differs from one found before. */
static int take(found_t *cand, const char *v, size_t n)
{
    if (cand->p != NULL && !same_token(cand->p, cand->n, v, n))
        return -1;
    cand->p = v;
    cand->n = n;
    return 0;
}

/* A header location: what follows the prefix (and spaces) in every field
 * of that name. The auth-scheme is case-insensitive (RFC 9110 11.1);
 * another scheme (Basic) is simply not a bearer token. */
static int find_in_headers(const gh_h1_header_t *hs, size_t nh, const gh_token_from_t *from,
                           found_t *cand)
{
    for (size_t j = 0; j < nh; j++) {
        const gh_h1_header_t *h = &hs[j];
        if (h->name_len != from->name_len || !gh_h1_name_is(h, from->name, from->name_len) ||
            h->value_len < from->prefix_len || !prefix_is(h->value, from->prefix, from->prefix_len))
            continue;
        const char *v = h->value + from->prefix_len;
        size_t n = h->value_len - from->prefix_len;
        while (n > 0 && *v == ' ') {
            v++;
            n--;
        }
        if (n > 0 && take(cand, v, n) < 0)
            return -1;
    }
    return 0;
}

/* A cookie location: the pair of that name in the Cookie fields. A name
 * that appears twice (in one field or two, with or without a value, equal
 * or not) is refused: servers disagree on which one counts, so the upstream
 * could read one gatehouse did not check. */
static int find_in_cookies(const gh_h1_header_t *hs, size_t nh, const gh_token_from_t *from,
                           found_t *cand)
{
    found_t c = {NULL, 0, from};
    unsigned copies = 0;
    for (size_t j = 0; j < nh; j++)
        if (GH_H1_NAME_IS(&hs[j], "cookie"))
            find_in_cookie(hs[j].value, hs[j].value_len, from->name, from->name_len, &c, &copies);
    if (copies > 1)
        return -1;
    if (c.p != NULL && c.n > 0 && take(cand, c.p, c.n) < 0)
        return -1;
    return 0;
}

/* A query location: the parameter of that name, percent-decoded. As for
 * cookies, a name given twice is refused (frameworks take the first, the
 * last, or a list). */
static int find_in_query(gh_stream_t *s, const gh_token_from_t *from, found_t *cand)
{
    const char *method, *path, *query;
    size_t method_len, path_len, query_len;
    gh_stream_request_line(s, &method, &method_len, &path, &path_len, &query, &query_len);
    gh_pairs_t it;
    gh_pair_t pr;
    found_t c = {NULL, 0, NULL};
    unsigned copies = 0;
    gh_pairs_init(&it, query, query_len, '&');
    while (gh_pairs_next(&it, &pr)) {
        if (gh_pair_name_decoded_is(&pr, from->name, from->name_len)) {
            c.p = pr.value;
            c.n = pr.value_len;
            copies++;
        }
    }
    if (copies > 1)
        return -1;
    if (c.p != NULL && c.n > 0 && take(cand, c.p, c.n) < 0)
        return -1;
    return 0;
}

/* The token one location holds, into *cand (p NULL: none). -1 when it
 * holds two different ones or a name twice. */
static int find_at(gh_stream_t *s, const gh_h1_header_t *hs, size_t nh, const gh_token_from_t *from,
                   found_t *cand)
{
    return from->kind == GH_TOKEN_FROM_QUERY    ? find_in_query(s, from, cand)
           : from->kind == GH_TOKEN_FROM_COOKIE ? find_in_cookies(hs, nh, from, cand)
                                                : find_in_headers(hs, nh, from, cand);
}

/* The token a provider's locations hold. Returns 0 none, 1 one, -1 two
 * different ones. */
static int find_token(gh_stream_t *s, const gh_jwt_provider_conf_t *p, found_t *out)
{
    found_t f = {NULL, 0, NULL};
    size_t nh;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
    for (size_t i = 0; i < p->num_from; i++) {
        const gh_token_from_t *from = &p->from[i];
        found_t cand = {NULL, 0, from};
        if (find_at(s, hs, nh, from, &cand) < 0)
            return -1;
        if (cand.p == NULL)
            continue;
        if (f.p != NULL && !same_token(f.p, f.n, cand.p, cand.n))
            return -1;
        if (f.p == NULL)
            f = cand;
    }
    *out = f;
    return f.p != NULL;
}

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
        count(s, rt, r);
    const char *code = status == 401
                           ? (r == GH_JWT_MISSING_TOKEN ? "unauthorized" : "invalid_token")
                       : status == 403 ? "insufficient_scope"
                                       : "service_unavailable";
    gh_stream_reply_error_with(s, status, code, desc, hdr[0] ? hdr : NULL);
}

/* ---- verification ---- */

/* Appends str (NUL-terminated, may be NULL) to the identity block at *o;
 * returns its offset, or -1 for NULL. buf NULL: only counts. */
static int ident_put(char *buf, size_t *o, const char *str, size_t n)
{
    if (str == NULL)
        return -1;
    int off = (int)*o;
    if (buf != NULL) {
        memcpy(buf + *o, str, n);
        buf[*o + n] = '\0';
    }
    *o += n + 1;
    return off;
}

/* The identity part of an entry: iss, sub and the scopes joined by spaces. */
static int build_ident(const gh_jwt_t *t, entry_t *e)
{
    size_t iss_n = 0, sub_n = 0;
    const char *iss = gh_jwt_claim_string(t, "iss", &iss_n);
    const char *sub = gh_jwt_claim_string(t, "sub", &sub_n);
    gh_jwt_slice_t sc[64];
    size_t ns = gh_jwt_scopes(t, sc, 64), scopes_n = 0;
    if (ns > 64)
        ns = 64;
    for (size_t i = 0; i < ns; i++)
        scopes_n += sc[i].len + (i > 0);
    size_t cap = 0;
    ident_put(NULL, &cap, iss, iss_n);
    ident_put(NULL, &cap, sub, sub_n);
    cap += ns > 0 ? scopes_n + 1 : 0;
    if (cap == 0)
        return 0;
    if ((e->ident = malloc(cap)) == NULL)
        return -1;
    size_t o = 0;
    e->iss_off = ident_put(e->ident, &o, iss, iss_n);
    e->sub_off = ident_put(e->ident, &o, sub, sub_n);
    if (ns > 0) {
        e->scopes_off = (int)o;
        for (size_t i = 0; i < ns; i++) {
            if (i > 0)
                e->ident[o++] = ' ';
            memcpy(e->ident + o, sc[i].p, sc[i].len);
            o += sc[i].len;
        }
        e->ident[o++] = '\0';
    }
    e->ident_len = o;
    return 0;
}

/* Builds the header lines and identity for a verified token into e (the
 * cache entry, or a stack one when the cache is off). Returns 0 or -1. */
static int build_entry(const gh_jwt_runtime_t *rt, const gh_jwt_t *t, entry_t *e)
{
    const gh_jwt_provider_conf_t *p = rt->conf;
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    char val[4096];
    if (buf == NULL)
        return -1;
    for (size_t i = 0; i <= p->num_claims_to_headers; i++) {
        const char *name;
        const char *v;
        int vn;
        size_t b64n;
        if (i < p->num_claims_to_headers) {
            /* A top-level string claim is read without a jansson tree. */
            vn = gh_jwt_claim_render_path(t, p->claims_to_headers[i].claim, val, sizeof(val));
            if (vn == -ENOMEM) {
                free(buf);
                return -1;
            }
            if (vn < 0)
                continue; /* absent, too long, or a value that would split a header */
            name = p->claims_to_headers[i].header;
            v = val;
        } else {
            if (p->payload_header == NULL)
                break;
            name = p->payload_header;
            v = gh_jwt_payload_b64(t, &b64n);
            vn = (int)b64n;
        }
        size_t need = len + strlen(name) + (size_t)vn + 4;
        if (need > cap) {
            while (cap < need)
                cap *= 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
        }
        len += (size_t)sprintf(buf + len, "%s: ", name);
        memcpy(buf + len, v, (size_t)vn);
        len += (size_t)vn;
        buf[len++] = '\r';
        buf[len++] = '\n';
    }
    e->hdrs = buf;
    e->hdrs_len = len;
    e->iss_off = e->sub_off = e->scopes_off = -1;
    if (build_ident(t, e) < 0)
        return -1;
    /* gh_jwt_check_claims passed, so exp and iat, when there, are numbers
     * in [0, GH_JWT_MAX_DATE]: the conversions below are defined. */
    double exp, iat;
    int64_t skew = (int64_t)p->clock_skew_s;
    e->expires = gh_jwt_claim_number(t, "exp", &exp) == 0 ? (int64_t)exp + skew : INT64_MAX;
    if (p->max_token_age_s > 0 && gh_jwt_claim_number(t, "iat", &iat) == 0) {
        int64_t old = (int64_t)iat + (int64_t)p->max_token_age_s + skew + 1;
        if (old < e->expires)
            e->expires = old;
    }
    return 0;
}

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

static int strip_init(gh_stream_t *s, const gh_authn_conf_t *a, strip_t *st)
{
    size_t cap = 0;
    for (size_t i = 0; i < a->num_providers; i++)
        cap += a->providers[i]->num_from;
    memset(st, 0, sizeof(*st));
    st->cap = cap;
    st->v = cap > 0 ? gh_stream_alloc(s, cap * sizeof(*st->v)) : NULL;
    return cap > 0 && st->v == NULL ? -1 : 0;
}

static void strip_add(strip_t *st, const gh_token_from_t *from)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->v[i] == from)
            return;
    if (st->n == st->cap)
        return; /* cannot happen: cap counts every location of the route */
    st->v[st->n++] = from;
    st->cookies += from->kind == GH_TOKEN_FROM_COOKIE;
    st->queries += from->kind == GH_TOKEN_FROM_QUERY;
}

static void strip_add_provider(strip_t *st, const gh_jwt_provider_conf_t *p)
{
    for (size_t i = 0; i < p->num_from; i++)
        strip_add(st, &p->from[i]);
}

static int strip_has(const strip_t *st, gh_token_from_kind_t kind, const gh_pair_t *pr)
{
    for (size_t i = 0; i < st->n; i++) {
        const gh_token_from_t *f = st->v[i];
        if (f->kind != kind)
            continue;
        if (kind == GH_TOKEN_FROM_COOKIE ? cookie_name_is(pr, f->name, f->name_len)
                                         : gh_pair_name_decoded_is(pr, f->name, f->name_len))
            return 1;
    }
    return 0;
}

/* Every Cookie field becomes one, without the stripped pairs. */
static int strip_cookies(gh_stream_t *s, const strip_t *st)
{
    size_t nh;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
    size_t cap = 1;
    for (size_t i = 0; i < nh; i++)
        if (GH_H1_NAME_IS(&hs[i], "cookie"))
            cap += 2 * hs[i].value_len + 2; /* "a;b" may become "a; b" */
    char *out = gh_stream_alloc(s, cap);
    size_t o = 0;
    if (out == NULL)
        return -1;
    for (size_t i = 0; i < nh; i++) {
        const gh_h1_header_t *h = &hs[i];
        if (!GH_H1_NAME_IS(h, "cookie"))
            continue;
        gh_pairs_t it;
        gh_pair_t pr;
        gh_pairs_init(&it, h->value, h->value_len, ';');
        while (gh_pairs_next(&it, &pr)) {
            if (strip_has(st, GH_TOKEN_FROM_COOKIE, &pr))
                continue;
            if (o > 0) {
                out[o++] = ';';
                out[o++] = ' ';
            }
            memcpy(out + o, pr.raw, pr.raw_len);
            o += pr.raw_len;
        }
    }
    if (gh_stream_drop_header(s, "cookie", 6) < 0)
        return -1;
    return o > 0 ? gh_stream_add_header(s, "cookie", 6, out, o) : 0;
}

/* The target: the path, then every parameter but the stripped ones. */
static int strip_query(gh_stream_t *s, const strip_t *st)
{
    const char *method, *path, *query;
    size_t method_len, path_len, query_len;
    gh_stream_request_line(s, &method, &method_len, &path, &path_len, &query, &query_len);
    size_t cap = path_len + query_len + 2;
    char *t = gh_stream_alloc(s, cap);
    if (t == NULL)
        return -1;
    memcpy(t, path, path_len);
    size_t o = path_len;
    gh_pairs_t it;
    gh_pair_t pr;
    int first = 1;
    gh_pairs_init(&it, query, query_len, '&');
    while (gh_pairs_next(&it, &pr)) {
        if (strip_has(st, GH_TOKEN_FROM_QUERY, &pr))
            continue;
        t[o++] = first ? '?' : '&';
        first = 0;
        memcpy(t + o, pr.raw, pr.raw_len);
        o += pr.raw_len;
    }
    gh_stream_set_target(s, t, o);
    return 0;
}

static int strip_apply(gh_stream_t *s, const strip_t *st)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->v[i]->kind == GH_TOKEN_FROM_HEADER &&
            gh_stream_drop_header(s, st->v[i]->name, st->v[i]->name_len) < 0)
            return -1;
    if (st->cookies > 0 && strip_cookies(s, st) < 0)
        return -1;
    if (st->queries > 0 && strip_query(s, st) < 0)
        return -1;
    return 0;
}

/* Applies a verified result to the stream. Returns 0, or -1 when a header
 * edit or a copy failed (out of memory): the request must not go on. */
static int apply(gh_stream_t *s, const gh_jwt_runtime_t *rt, const entry_t *e)
{
    gh_identity_t *id = gh_stream_identity(s);
    if (e->hdrs_len > 0 && gh_stream_add_header_lines(s, e->hdrs, e->hdrs_len) < 0)
        return -1;
    if (id->provider == NULL) {
        id->provider = rt->conf->name;
        /* The entry may be evicted while the stream lives: copy. */
        char *b = e->ident_len > 0 ? gh_stream_alloc(s, e->ident_len) : NULL;
        if (e->ident_len > 0 && b == NULL)
            return -1;
        if (b != NULL) {
            memcpy(b, e->ident, e->ident_len);
            id->issuer = e->iss_off >= 0 ? b + e->iss_off : NULL;
            id->subject = e->sub_off >= 0 ? b + e->sub_off : NULL;
            id->scopes = e->scopes_off >= 0 ? b + e->scopes_off : NULL;
        }
    }
    count(s, rt, GH_JWT_OK);
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
static int verify_one(gh_stream_t *s, wstate_t *w, gh_jwt_runtime_t *rt, const found_t *f,
                      int must_match_issuer, deferred_t *d)
{
    const gh_jwt_provider_conf_t *p = rt->conf;
    uint64_t h = token_hash(w, f->p, f->n);
    time_t now = time(NULL);
    uint64_t gen = gh_keyring_generation(rt->keyring);
    entry_t *e = cache_find(w, h, f->p, f->n);
    if (e != NULL && e->rt_id == rt->id && e->gen == gen && gen != 0 && now < e->expires)
        return apply(s, rt, e) < 0 ? apply_failed(s) : 0;

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
    gh_jwks_t *keys = gh_keyring_get(rt->keyring);
    if (keys == NULL) {
        snprintf(detail, sizeof(detail),
                 "provider '%s' has no keys yet (see /ready and the log for why)", p->name);
        gh_jwt_dispose(&t);
        refuse(s, rt, GH_JWT_KEYS_UNAVAILABLE, detail);
        return 503;
    }
    rc = gh_jwt_verifier_verify(w->verifier, &t, keys, &reason);
    gen = gh_jwks_generation(keys);
    gh_jwks_unref(keys);
    if (rc == -ENOKEY)
        gh_keyring_request_refresh(rt->keyring);
    if (rc == 0)
        rc = gh_jwt_check_claims(&t, &rt->policy, (int64_t)now, &reason, detail, sizeof(detail));
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
    int cached = p->cache_entries > 0 && cache_fit(w, p->cache_entries) == 0;
    e = cached ? cache_slot(w, h) : &tmp;
    if (build_entry(rt, &t, e) < 0) {
        entry_clear(e);
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
    int ar = apply(s, rt, e);
    if (!cached || e->token == NULL)
        entry_clear(e);
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
static int strip_all(gh_stream_t *s, const gh_authn_conf_t *a)
{
    strip_t st;
    if (strip_init(s, a, &st) < 0)
        return -1;
    for (size_t i = 0; i < a->num_providers; i++)
        if (!a->providers[i]->forward_token)
            strip_add_provider(&st, a->providers[i]);
    return st.n > 0 ? strip_apply(s, &st) : 0;
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
    if (strip_init(s, a, &st) < 0)
        return -1;
    strip_add_provider(&st, a->providers[taken]);
    size_t nh;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
    for (size_t i = 0; i < a->num_providers; i++) {
        const gh_jwt_provider_conf_t *p = a->providers[i];
        for (size_t j = 0; i != taken && j < p->num_from; j++) {
            found_t cand = {NULL, 0, &p->from[j]};
            if (find_at(s, hs, nh, &p->from[j], &cand) == 0 && cand.p != NULL &&
                same_token(cand.p, cand.n, tok->p, tok->n))
                strip_add(&st, &p->from[j]);
        }
    }
    return strip_apply(s, &st);
}

/* Token locations of this many providers are remembered between the two
 * passes of any/optional; more are looked up again. */
#define SEEN_MAX 8

static gh_filter_status_t on_request_headers(gh_stream_t *s, const void *conf, void *ctx)
{
    const gh_authn_filter_conf_t *fc = conf;
    const gh_authn_conf_t *a = fc->authn;
    (void)ctx;
    /* Headers this route's providers set are dropped whatever happens next,
     * so a client can never pass them off as gatehouse's. */
    int dropped = 0;
    size_t unloaded = 0;
    for (size_t i = 0; i < a->num_providers; i++) {
        const gh_jwt_provider_conf_t *p = a->providers[i];
        for (size_t j = 0; j < p->num_claims_to_headers; j++)
            dropped |= gh_stream_drop_header_static(s, p->claims_to_headers[j].header,
                                                    strlen(p->claims_to_headers[j].header));
        if (p->payload_header != NULL)
            dropped |=
                gh_stream_drop_header_static(s, p->payload_header, strlen(p->payload_header));
        unloaded += gh_keyring_generation(fc->rt[i]->keyring) == 0;
    }
    if (dropped < 0) {
        apply_failed(s);
        return GH_FILTER_REPLIED;
    }
    if (a->num_exempt > 0 && exempt(s, a))
        return GH_FILTER_CONTINUE;
    /* Until a provider's keys first load its routes answer 503, token or
     * not: the caller did nothing wrong (for any/optional, while none of
     * the route's providers has keys; for all, while any lacks them). */
    if (unloaded > 0 && (a->all || unloaded == a->num_providers)) {
        char detail[256];
        size_t i = 0;
        while (i + 1 < a->num_providers && gh_keyring_generation(fc->rt[i]->keyring) != 0)
            i++;
        snprintf(detail, sizeof(detail),
                 "provider '%s' has no keys yet (see /ready and the log for why)",
                 a->providers[i]->name);
        refuse(s, fc->rt[i], GH_JWT_KEYS_UNAVAILABLE, detail);
        return GH_FILTER_REPLIED;
    }
    wstate_t *w = gh_stream_worker_state(s, &gh_authn_filter, wstate_new, wstate_free);
    if (w == NULL || w->verifier == NULL) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }

    if (a->all) {
        /* Every provider needs its own valid token (a user token and a
         * service token, say, in different places). */
        for (size_t i = 0; i < a->num_providers; i++) {
            found_t f;
            int n = find_token(s, a->providers[i], &f);
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
        /* Stripped only now: a location two providers share still held
         * the token when the second one looked. */
        if (strip_all(s, a) < 0) {
            apply_failed(s);
            return GH_FILTER_REPLIED;
        }
        return GH_FILTER_CONTINUE;
    }

    /* any / optional: one token; its issuer picks the provider (RFC 8725
     * section 3.8), tried in config order among providers that share it. */
    found_t tok = {NULL, 0, NULL};
    found_t seen[SEEN_MAX]; /* where each of the first providers found it */
    deferred_t held;
    held.status = 0;
    held.rank = 0;
    for (size_t i = 0; i < a->num_providers; i++) {
        found_t f;
        int n = find_token(s, a->providers[i], &f);
        if (i < SEEN_MAX)
            seen[i] = n == 1 ? f : (found_t){NULL, 0, NULL};
        if (n == 0)
            continue;
        if (n < 0 || (tok.p != NULL && !same_token(tok.p, tok.n, f.p, f.n))) {
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
        else if (find_token(s, a->providers[i], &mine) != 1)
            continue;
        if (mine.p == NULL || !same_token(mine.p, mine.n, tok.p, tok.n))
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

/* ---- the type's table: config, runtime, readiness ---- */

/* The snapshot's runtime: one entry per provider of the config. */
typedef struct {
    const gh_config_t *cfg;
    gh_jwt_runtime_t **rt; /* cfg->num_jwt_providers */
} runtimes_t;

static int parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                 gh_route_t *route, void **conf)
{
    int rc = gh_config_parse_authn(doc, node, cfg, route);
    if (rc != 0) {
        gh_config_free_authn(route->authn);
        route->authn = NULL;
        return rc;
    }
    *conf = route->authn;
    return 0;
}

static void free_conf(void *conf)
{
    gh_config_free_authn(conf);
}

static void fini(void *p)
{
    runtimes_t *r = p;
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->cfg->num_jwt_providers; i++)
        gh_jwt_runtime_free(r->rt[i]);
    free(r->rt);
    free(r);
}

/* Every provider gets its runtime, whether a route uses it or not: /ready
 * waits for every provider's keys, as before the registry. */
static int init(const gh_config_t *cfg, void **out)
{
    *out = NULL;
    if (cfg->num_jwt_providers == 0)
        return 0;
    runtimes_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    r->cfg = cfg;
    r->rt = calloc(cfg->num_jwt_providers, sizeof(*r->rt));
    if (r->rt == NULL) {
        free(r);
        return -1;
    }
    for (size_t i = 0; i < cfg->num_jwt_providers; i++)
        if ((r->rt[i] = gh_jwt_runtime_new(&cfg->jwt_providers[i])) == NULL) {
            fini(r);
            return -1;
        }
    *out = r;
    return 0;
}

/* Required keys: every provider must have loaded once. Each one that has
 * not is a line of its own, so an operator sees them all at once. */
/* Appends line to out[0..cap) after *o, "\n"-separated, if it fits. */
static void put_line(char *out, size_t cap, size_t *o, const char *line)
{
    size_t len = strlen(line);
    if (*o + 1 + len >= cap)
        return;
    if (*o > 0)
        out[(*o)++] = '\n';
    memcpy(out + *o, line, len + 1);
    *o += len;
}

/* Lines listed before the rest are only counted. */
#define READY_LINES_MAX 32

static size_t ready(const void *p, int detailed, char *out, size_t cap)
{
    const runtimes_t *r = p;
    size_t listed = 0, more = 0, o = 0;
    for (size_t i = 0; r != NULL && i < r->cfg->num_jwt_providers; i++) {
        const char *why;
        if (gh_keyring_ready(r->rt[i]->keyring, &why))
            continue;
        if (listed == READY_LINES_MAX) {
            more++;
            continue;
        }
        char one[512];
        /* why may name a file, a URL or quote a JWKS host's answer. */
        snprintf(one, sizeof(one), "jwt provider '%s': %s", r->cfg->jwt_providers[i].name,
                 detailed ? why : "keys not loaded (details need the admin token)");
        for (char *c = one; *c != '\0'; c++)
            if (*c == '\n')
                *c = ' ';
        put_line(out, cap, &o, one);
        listed++;
    }
    if (more > 0) {
        char one[80];
        snprintf(one, sizeof(one), "and %zu more jwt providers without keys", more);
        put_line(out, cap, &o, one);
        listed++;
    }
    return listed;
}

static void *authn_bind(void *p, const gh_config_t *cfg, const gh_route_t *route, const void *conf,
                        const char *listener)
{
    runtimes_t *r = p;
    const gh_authn_conf_t *a = conf;
    (void)cfg;
    (void)route;
    (void)listener;
    gh_authn_filter_conf_t *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return NULL;
    fc->authn = a;
    fc->rt = calloc(a->num_providers + 1, sizeof(*fc->rt));
    if (fc->rt == NULL) {
        free(fc);
        return NULL;
    }
    for (size_t i = 0; i < a->num_providers; i++)
        fc->rt[i] = r->rt[a->providers[i]->index];
    return fc;
}

static void authn_unbind(void *p)
{
    gh_authn_filter_conf_t *fc = p;
    if (fc != NULL)
        free(fc->rt);
    free(fc);
}

static int service_start(uv_loop_t *main_loop)
{
    gh_keyring_init(main_loop);
    return 0;
}

static void service_stop(void)
{
    gh_keyring_shutdown();
}

static void service_free(void)
{
    gh_keyring_free_all();
}

const gh_filter_type_t gh_authn_filter = {
    .name = "authn",
    .phase = GH_PHASE_AUTHN,
    .parse = parse,
    .free_conf = free_conf,
    .init = init,
    .fini = fini,
    .ready = ready,
    .bind = authn_bind,
    .unbind = authn_unbind,
    .service_start = service_start,
    .service_stop = service_stop,
    .service_free = service_free,
    .metrics = gh_keyring_metrics,
    .on_request_headers = on_request_headers,
};
