/* Each worker's verifier and bounded cache of verified tokens, and the
 * entries made from a verified token. See filter.c's header for the cache's
 * rules and internal.h for the parts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gatehouse/metrics.h>
#include <gatehouse/pairs.h>
#include <gatehouse/store.h>

#include "filters/jwt/internal.h"

/* ---- per-worker state: verifier and cache ---- */

void gh_jwtf_entry_clear(entry_t *e)
{
    free(e->token);
    free(e->hdrs);
    free(e->ident);
    memset(e, 0, sizeof(*e));
}

void *gh_jwtf_wstate_new(void)
{
    wstate_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->verifier = gh_jwt_verifier_new();
    w->seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)w;
    w->rng = w->seed | 1;
    return w;
}

void gh_jwtf_wstate_free(void *p)
{
    wstate_t *w = p;
    for (size_t i = 0; i < w->nsets * WAYS; i++)
        gh_jwtf_entry_clear(&w->entries[i]);
    free(w->entries);
    gh_jwtf_ak_cache_free(w);
    if (w->loop != NULL)
        gh_store_loop_end(w->loop);
    gh_jwt_verifier_free(w->verifier);
    free(w);
}

uint64_t gh_jwtf_token_hash(const wstate_t *w, const char *t, size_t n)
{
    return gh_jwtf_hash(w, t, n);
}

int gh_jwtf_cache_fit(wstate_t *w, uint32_t entries)
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
        gh_jwtf_entry_clear(&w->entries[i]);
    free(w->entries);
    w->entries = e;
    w->nsets = sets;
    return 0;
}

entry_t *gh_jwtf_cache_find(wstate_t *w, uint64_t h, uint64_t rt_id, const char *t, size_t n)
{
    return gh_jwtf_cache_get(w, h, rt_id, t, n);
}

entry_t *gh_jwtf_cache_lookup(wstate_t *w, uint64_t rt_id, const char *t, size_t n, uint64_t *hash)
{
    uint64_t h = gh_jwtf_hash(w, t, n);
    *hash = h;
    return gh_jwtf_cache_get(w, h, rt_id, t, n);
}

entry_t *gh_jwtf_cache_slot(wstate_t *w, uint64_t h, uint64_t rt_id, const char *t, size_t n)
{
    entry_t *e = gh_jwtf_cache_find(w, h, rt_id, t, n);
    if (e != NULL) {
        gh_jwtf_entry_clear(e);
        return e;
    }
    entry_t *set = &w->entries[(h & (w->nsets - 1)) * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (set[i].token == NULL)
            return &set[i];
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    e = &set[w->rng % WAYS];
    gh_jwtf_entry_clear(e);
    return e;
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
int gh_jwtf_build_entry(const gh_jwt_runtime_t *rt, const gh_jwt_t *t, entry_t *e)
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
