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

#include "filters/authorizer/authorizer.h"

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
    size_t sets = 1;
    while (sets * GH_AZR_WAYS < entries)
        sets *= 2;
    if (c->v != NULL && c->nsets >= sets)
        return 0;
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
    return 0;
}

/* FNV-1a over the values, then a finalizer, all keyed by the worker's
 * seed: values a client chooses land in sets it cannot predict. */
uint64_t gh_azr_cache_hash(const gh_azr_cache_t *c, uint64_t rt_id, const char *k, size_t n)
{
    uint64_t h = (c->seed ^ 0xcbf29ce484222325ULL) ^ (rt_id * 0x9E3779B97F4A7C15ULL);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static gh_azr_centry_t *set_of(gh_azr_cache_t *c, uint64_t h)
{
    return &c->v[(h & (c->nsets - 1)) * GH_AZR_WAYS];
}

gh_azr_centry_t *gh_azr_cache_get(gh_azr_cache_t *c, uint64_t h, uint64_t rt_id, const char *k,
                                  size_t n, uint64_t now_ms)
{
    if (c == NULL || c->v == NULL)
        return NULL;
    gh_azr_centry_t *set = set_of(c, h);
    for (int i = 0; i < GH_AZR_WAYS; i++) {
        gh_azr_centry_t *e = &set[i];
        if (e->key == NULL || e->hash != h || e->rt_id != rt_id || e->key_len != n ||
            memcmp(e->key, k, n) != 0)
            continue;
        if (now_ms >= e->expires_ms) {
            entry_clear(e);
            return NULL;
        }
        return e;
    }
    return NULL;
}

int gh_azr_cache_put(gh_azr_cache_t *c, uint64_t h, uint64_t rt_id, const char *k, size_t n,
                     uint64_t expires_ms, gh_authz_result_t *result, const char *lines,
                     size_t lines_len)
{
    if (c == NULL || c->v == NULL)
        return -1;
    gh_azr_centry_t *set = set_of(c, h), *e = NULL;
    for (int i = 0; i < GH_AZR_WAYS && e == NULL; i++)
        if (set[i].key != NULL && set[i].hash == h && set[i].rt_id == rt_id &&
            set[i].key_len == n && memcmp(set[i].key, k, n) == 0)
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
    char *key = malloc(n ? n : 1), *l = NULL;
    if (key == NULL || (lines_len > 0 && (l = malloc(lines_len)) == NULL)) {
        free(key);
        return -1;
    }
    memcpy(key, k, n);
    if (lines_len > 0)
        memcpy(l, lines, lines_len);
    e->key = key;
    e->key_len = n;
    e->hash = h;
    e->rt_id = rt_id;
    e->expires_ms = expires_ms;
    e->lines = l;
    e->lines_len = lines_len;
    if (result != NULL) {
        e->result = *result;
        memset(result, 0, sizeof(*result));
    }
    return 0;
}

size_t gh_azr_cache_count(const gh_azr_cache_t *c)
{
    size_t n = 0;
    for (size_t i = 0; c != NULL && i < c->nsets * GH_AZR_WAYS; i++)
        n += c->v[i].key != NULL;
    return n;
}
