/*
 * Each worker's cache of authorizer answers (authorizer.h). API Gateway
 * caches an authorizer's answer by its identity-source values for the
 * authorizer's TTL, denials included, and evaluates a cached policy
 * against each request's method ARN; so does this. Set-associative like
 * the authn filter's token cache: the set comes from a keyed hash of the
 * runtime and the values, equality is a full comparison, and a full set
 * drops a random way. The table is sized for the largest cache_entries of
 * the authorizers the worker has used, so it is bounded by the config.
 *
 * Time is given by the caller (the worker's loop time), so tests set it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filters/authorizer/authorizer.h"

/* Keyed by this static's address among the workers' filter states. */
const gh_filter_type_t gh_azr_cache_type = {.name = "authorizer-cache"};

void *gh_azr_cache_create(void)
{
    uint64_t seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)&seed;
    return gh_azr_cache_new(seed);
}

void gh_azr_cache_destroy(void *p)
{
    gh_azr_cache_free(p);
}

gh_azr_cache_t *gh_azr_cache_new(uint64_t seed)
{
    gh_azr_cache_t *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->seed = seed;
        c->rng = seed | 1;
    }
    return c;
}

static void entry_clear(gh_azr_centry_t *e)
{
    free(e->key);
    free(e->lines);
    free(e->principal);
    free(e->claims);
    gh_authz_result_dispose(&e->result);
    memset(e, 0, sizeof(*e));
}

void gh_azr_cache_free(gh_azr_cache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nsets * GH_AZR_WAYS; i++)
        entry_clear(&c->v[i]);
    free(c->v);
    free(c);
}

int gh_azr_cache_fit(gh_azr_cache_t *c, uint32_t entries)
{
    if (entries <= c->fit && c->v != NULL)
        return 0;
    size_t sets = 1;
    while (sets * GH_AZR_WAYS < entries)
        sets *= 2;
    if (c->v != NULL && c->nsets >= sets) {
        c->fit = entries > c->fit ? entries : c->fit;
        return 0;
    }
    gh_azr_centry_t *v = calloc(sets * GH_AZR_WAYS, sizeof(*v));
    if (v == NULL)
        return -1;
    /* Growing drops what was cached: it happens once per size, and the
     * answers are asked again. */
    for (size_t i = 0; i < c->nsets * GH_AZR_WAYS; i++)
        entry_clear(&c->v[i]);
    free(c->v);
    c->v = v;
    c->nsets = sets;
    c->fit = entries;
    return 0;
}

size_t gh_azr_key_len(const gh_authz_str_t *v, size_t nv)
{
    size_t n = 0;
    for (size_t i = 0; i < nv; i++)
        n += 8 + v[i].n;
    return n;
}

void gh_azr_cache_key(const gh_authz_str_t *v, size_t nv, char *k)
{
    for (size_t i = 0; i < nv; i++) {
        uint64_t l = v[i].n;
        memcpy(k, &l, 8);
        memcpy(k + 8, v[i].p, v[i].n);
        k += 8 + v[i].n;
    }
}

void gh_azr_cache_expire(gh_azr_centry_t *e)
{
    entry_clear(e);
}

static char *dup_n(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

gh_azr_centry_t *gh_azr_cache_put(gh_azr_cache_t *c, uint64_t h, uint64_t rt_id,
                                  const gh_authz_str_t *v, size_t nv, uint64_t expires_ms,
                                  gh_authz_result_t *result, const gh_azr_prepared_t *p)
{
    if (c == NULL || c->v == NULL)
        return NULL;
    gh_azr_centry_t *set = gh_azr_cache_set(c, h), *e = NULL;
    for (int i = 0; i < GH_AZR_WAYS && e == NULL; i++)
        if (set[i].key != NULL && set[i].hash == h && set[i].rt_id == rt_id &&
            gh_azr_key_is(&set[i], v, nv))
            e = &set[i];
    for (int i = 0; i < GH_AZR_WAYS && e == NULL; i++)
        if (set[i].key == NULL)
            e = &set[i];
    if (e == NULL) {
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 7;
        c->rng ^= c->rng << 17;
        e = &set[c->rng % GH_AZR_WAYS];
    }
    entry_clear(e);
    size_t n = gh_azr_key_len(v, nv);
    gh_azr_centry_t ne = {.hash = h, .rt_id = rt_id, .expires_ms = expires_ms, .key_len = n};
    ne.key = malloc(n ? n : 1);
    if (ne.key != NULL)
        gh_azr_cache_key(v, nv, ne.key);
    int bad = ne.key == NULL;
    if (p->lines_len > 0 && (ne.lines = dup_n(p->lines, p->lines_len)) == NULL)
        bad = 1;
    ne.lines_len = p->lines_len;
    ne.principal_len = p->principal != NULL ? strlen(p->principal) : 0;
    if (p->principal != NULL && (ne.principal = dup_n(p->principal, ne.principal_len)) == NULL)
        bad = 1;
    if (p->claims != NULL && (ne.claims = dup_n(p->claims, p->claims_len)) == NULL)
        bad = 1;
    ne.claims_len = p->claims_len;
    if (bad) {
        entry_clear(&ne);
        return NULL;
    }
    if (result != NULL) {
        ne.result = *result;
        memset(result, 0, sizeof(*result));
    }
    *e = ne;
    return e;
}

size_t gh_azr_cache_count(const gh_azr_cache_t *c)
{
    size_t n = 0;
    for (size_t i = 0; c != NULL && i < c->nsets * GH_AZR_WAYS; i++)
        n += c->v[i].key != NULL;
    return n;
}
