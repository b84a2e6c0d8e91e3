/*
 * The process's cache of one authorizer's answers (authorizer.h), for
 * cache_scope process: every worker reads and fills the same table, so an
 * answer one worker fetched decides the next request with the same
 * identity values on any worker. The semantics are the per-worker cache's
 * (cache.c): the same key, the TTL, denials cached, an IAM answer kept
 * whole and evaluated per method ARN by the caller.
 *
 * The table: exactly cache_entries slots in sets of 4 (the last set may
 * be smaller), each slot a pointer to an immutable, refcounted entry. A
 * set is found by a keyed hash of every byte of the values (a client
 * cannot aim its values at one set, nor find two that share a hash), and
 * a full set evicts: the same values' entry, else an empty or expired
 * slot, else one at random. The table never grows.
 *
 * Locking: the sets are spread over 64 shards, each behind a spinlock
 * held for a look-up (compare hashes and lengths, take a reference) or an
 * insert (swap a pointer): a few dozen instructions, never a call, a JSON
 * parse, a malloc, a free or a comparison of a whole key (an envoy key
 * holds a request's headers and body). The key is compared after the
 * lock is released, on the reference taken; entries are built before the
 * lock and the evicted one is released after it. A holder that was
 * preempted is waited for with sched_yield after a short spin (as the
 * rate limiters' table, src/core/limtable.c).
 *
 * Two workers that miss the same values at once both call the authorizer
 * and both store the answer (the last one stays): requests are not queued
 * behind another worker's call.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "filters/authorizer/authorizer.h"

#define SHARDS 64

typedef struct {
    int lock;
    uint64_t rng; /* xorshift, under the lock: which way a full set evicts */
} __attribute__((aligned(64))) shard_t;

struct gh_azr_shared_s {
    shard_t shards[SHARDS];
    uint64_t k[4]; /* the hash's secret */
    gh_azr_sentry_t **slot;
    uint32_t n, nsets;
};

static inline void lock(shard_t *sh)
{
    unsigned spins = 0;
    while (__atomic_exchange_n(&sh->lock, 1, __ATOMIC_ACQUIRE) != 0)
        while (__atomic_load_n(&sh->lock, __ATOMIC_RELAXED) != 0) {
            if (++spins > 100)
                sched_yield();
#if defined(__x86_64__) || defined(__i386__)
            else
                __builtin_ia32_pause();
#endif
        }
}

static inline void unlock(shard_t *sh)
{
    __atomic_store_n(&sh->lock, 0, __ATOMIC_RELEASE);
}

gh_azr_shared_t *gh_azr_shared_new(uint32_t entries)
{
    if (entries == 0)
        entries = 1;
    gh_azr_shared_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->n = entries;
    t->nsets = (entries + 3) / 4;
    /* Zeroed pages are mapped as they are first written: a large idle
     * table costs little resident memory. */
    t->slot = calloc(entries, sizeof(*t->slot));
    uint64_t r[SHARDS];
    if (t->slot == NULL || getrandom(t->k, sizeof(t->k), 0) != (ssize_t)sizeof(t->k) ||
        getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        free(t->slot);
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < SHARDS; i++)
        t->shards[i].rng = r[i] | 1;
    return t;
}

void gh_azr_shared_free(gh_azr_shared_t *t)
{
    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->n; i++)
        gh_azr_sentry_unref(t->slot[i]);
    free(t->slot);
    free(t);
}

void gh_azr_sentry_unref(gh_azr_sentry_t *e)
{
    if (e == NULL || __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    gh_authz_result_dispose(&e->result);
    free(e);
}

/* ---- the hash ----
 *
 * Every byte, each value's length first (so that "a,b" + "c" is not "a"
 * + "b,c"), mixed by folded multiplies with a secret drawn when the table
 * is made (the construction of src/core/limtable.c's key hash). The
 * per-worker cache's hash reads a value's ends only and settles equality
 * by comparing inside the set; this one decides, under the lock, which
 * entry is taken to be compared, so it reads everything. */

static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t gh_azr_shared_hash(const gh_azr_shared_t *t, const gh_authz_str_t *v, size_t nv)
{
    uint64_t h = fold_mul(t->k[0] ^ nv, t->k[1]);
    for (size_t i = 0; i < nv; i++) {
        const unsigned char *p = (const unsigned char *)v[i].p;
        size_t n = v[i].n, j = 0;
        h = fold_mul(h ^ n ^ t->k[1], t->k[3]);
        for (; j + 8 <= n; j += 8) {
            uint64_t w;
            memcpy(&w, p + j, 8);
            h = fold_mul(h ^ w ^ t->k[2], t->k[3]);
        }
        if (j < n) {
            uint64_t w = 0;
            memcpy(&w, p + j, n - j);
            h = fold_mul(h ^ w ^ t->k[0], t->k[3]);
        }
    }
    return fold_mul(h ^ t->k[2], t->k[1]);
}

/* ---- look-up and insert ---- */

/* The set of hash h: its first slot and its number of ways. */
static inline gh_azr_sentry_t **set_of(const gh_azr_shared_t *t, uint64_t h, uint32_t *set,
                                       uint32_t *ways)
{
    *set = (uint32_t)(((h >> 32) * (uint64_t)t->nsets) >> 32);
    uint32_t first = *set * 4;
    *ways = t->n - first < 4 ? t->n - first : 4;
    return &t->slot[first];
}

/* Whether key k (gh_azr_cache_key's form) is values v. */
static int key_is(const char *k, size_t kl, const gh_authz_str_t *v, size_t nv)
{
    const char *end = k + kl;
    for (size_t i = 0; i < nv; i++) {
        uint64_t l;
        if ((size_t)(end - k) < 8 + v[i].n)
            return 0;
        memcpy(&l, k, 8);
        if (l != v[i].n || (v[i].n > 0 && memcmp(k + 8, v[i].p, v[i].n) != 0))
            return 0;
        k += 8 + v[i].n;
    }
    return k == end;
}

gh_azr_sentry_t *gh_azr_shared_get(gh_azr_shared_t *t, uint64_t h, const gh_authz_str_t *v,
                                   size_t nv, uint64_t now_ms)
{
    uint32_t si, ways;
    gh_azr_sentry_t **set = set_of(t, h, &si, &ways), *e = NULL, *gone = NULL;
    size_t kl = gh_azr_key_len(v, nv);
    shard_t *sh = &t->shards[si % SHARDS];
    lock(sh);
    for (uint32_t i = 0; i < ways; i++) {
        gh_azr_sentry_t *x = set[i];
        if (x == NULL || x->hash != h || x->key_len != kl)
            continue;
        if (now_ms >= x->expires_ms) {
            gone = x; /* the table's reference, dropped below */
            set[i] = NULL;
        } else {
            /* The table's reference keeps it above zero meanwhile. */
            __atomic_add_fetch(&x->refs, 1, __ATOMIC_RELAXED);
            e = x;
        }
        break; /* put keeps one entry per (hash, length) in a set */
    }
    unlock(sh);
    gh_azr_sentry_unref(gone);
    if (e != NULL && !key_is(e->data, e->key_len, v, nv)) {
        gh_azr_sentry_unref(e); /* another key with this keyed hash */
        return NULL;
    }
    return e;
}

static char *copy_in(char **w, const char *p, size_t n, int nul)
{
    char *d = *w;
    if (n > 0)
        memcpy(d, p, n);
    if (nul)
        d[n] = '\0';
    *w += n + (nul ? 1 : 0);
    return d;
}

gh_azr_sentry_t *gh_azr_shared_put(gh_azr_shared_t *t, uint64_t h, const gh_authz_str_t *v,
                                   size_t nv, uint64_t now_ms, uint64_t expires_ms,
                                   gh_authz_result_t *result, const gh_azr_prepared_t *p)
{
    size_t kl = gh_azr_key_len(v, nv);
    size_t pl = p->principal != NULL ? strlen(p->principal) : 0;
    size_t size = sizeof(gh_azr_sentry_t) + kl + p->lines_len + pl + 1 + p->claims_len + 1;
    gh_azr_sentry_t *e = malloc(size);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->refs = 2; /* the table's and the caller's */
    e->hash = h;
    e->expires_ms = expires_ms;
    e->key_len = kl;
    gh_azr_cache_key(v, nv, e->data);
    char *w = e->data + kl;
    e->p.lines = copy_in(&w, p->lines, p->lines_len, 0);
    e->p.lines_len = p->lines_len;
    if (p->principal != NULL)
        e->p.principal = copy_in(&w, p->principal, pl, 1);
    if (p->claims != NULL) {
        e->p.claims = copy_in(&w, p->claims, p->claims_len, 1);
        e->p.claims_len = p->claims_len;
    }
    if (result != NULL) {
        e->result = *result;
        memset(result, 0, sizeof(*result));
    }

    uint32_t si, ways;
    gh_azr_sentry_t **set = set_of(t, h, &si, &ways), *old;
    shard_t *sh = &t->shards[si % SHARDS];
    lock(sh);
    uint32_t at = ways;
    for (uint32_t i = 0; i < ways && at == ways; i++)
        if (set[i] != NULL && set[i]->hash == h && set[i]->key_len == kl)
            at = i;
    for (uint32_t i = 0; i < ways && at == ways; i++)
        if (set[i] == NULL || now_ms >= set[i]->expires_ms)
            at = i;
    if (at == ways) {
        sh->rng ^= sh->rng << 13;
        sh->rng ^= sh->rng >> 7;
        sh->rng ^= sh->rng << 17;
        at = (uint32_t)(sh->rng % ways);
    }
    old = set[at];
    set[at] = e;
    unlock(sh);
    gh_azr_sentry_unref(old);
    return e;
}

size_t gh_azr_shared_count(gh_azr_shared_t *t)
{
    size_t c = 0;
    for (uint32_t s = 0; s < t->nsets; s++) {
        shard_t *sh = &t->shards[s % SHARDS];
        lock(sh);
        for (uint32_t i = s * 4; i < t->n && i < s * 4 + 4; i++)
            c += t->slot[i] != NULL;
        unlock(sh);
    }
    return c;
}

/* ---- a worker's hold ---- */

struct gh_azr_hold_s {
    gh_azr_sentry_t *e;
};

/* Keyed by this static's address among the workers' filter states. */
static const gh_filter_type_t hold_key = {.name = "authorizer-shared-hold"};

static void *hold_create(void)
{
    return calloc(1, sizeof(gh_azr_hold_t));
}

static void hold_destroy(void *p)
{
    gh_azr_hold_t *h = p;
    if (h != NULL)
        gh_azr_sentry_unref(h->e);
    free(h);
}

gh_azr_hold_t *gh_azr_hold_of(gh_stream_t *s)
{
    return gh_stream_worker_state(s, &hold_key, hold_create, hold_destroy);
}

void gh_azr_hold_set(gh_azr_hold_t *h, gh_azr_sentry_t *e)
{
    gh_azr_sentry_t *old = h->e;
    h->e = e;
    gh_azr_sentry_unref(old);
}
