/*
 * The process-wide table of limit counters (gatehouse/limiter.h).
 *
 * GH_LIMIT_SHARDS shards, each a mutex, a fixed array of entries and a
 * chained hash index over them. A key's entry is found by a keyed SipHash
 * of (limit id, key): keyed with 128 random bits drawn when the table is
 * made, so a client choosing header values cannot aim them all at one
 * chain (hash flooding). The lock is held for the lookup and the
 * decision, a few dozen instructions; with 64 shards two workers rarely
 * meet on one.
 *
 * Memory: one calloc for all entries and one for the index, made once;
 * large zeroed allocations are mapped by the kernel as pages are first
 * written, so an idle table costs little resident memory. Nothing is
 * allocated per decision.
 */
#include <gatehouse/limiter.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/sha.h>

#define KEY_DIGEST 0x80 /* klen flag: key[] holds the SHA-256 of a long key */

typedef struct {
    uint64_t hash;
    uint64_t id;
    uint64_t s0, s1;  /* bucket: tat; window: window number, count */
    uint64_t rest_ms; /* monotonic ms from which the state is at rest */
    uint32_t next;    /* index + 1 of the next entry of the chain; 0 ends it */
    uint8_t used;     /* CLOCK's bit: looked up since the hand last passed */
    uint8_t klen;     /* key bytes (| KEY_DIGEST) */
    char key[GH_LIMIT_KEY_INLINE];
} entry_t;

typedef struct {
    pthread_mutex_t lock;
    uint32_t cap, used, hand, mask;
    uint32_t *heads; /* mask + 1 chains: index + 1 of the first entry */
    entry_t *entries;
    uint64_t evicted_rest, evicted_counting;
} __attribute__((aligned(64))) shard_t;

struct gh_limit_table_s {
    shard_t shards[GH_LIMIT_SHARDS];
    uint64_t k0, k1;
    entry_t *entries; /* all shards' */
    uint32_t *heads;
};

/* ---- SipHash (Aumasson and Bernstein), c compression and d finalization
 * rounds: 1-3 for the table, as CPython and Rust's HashMap use it; the unit
 * test checks 2-4 against the paper's vectors. ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t siphash(int c, int d, uint64_t k0, uint64_t k1, const void *src, size_t len)
{
    const unsigned char *p = src;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)len << 56;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        for (int r = 0; r < c; r++)
            SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    for (int r = 0; r < c; r++)
        SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    for (int r = 0; r < d; r++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the table ---- */

gh_limit_table_t *gh_limit_table_new(size_t max_keys)
{
    size_t per = (max_keys + GH_LIMIT_SHARDS - 1) / GH_LIMIT_SHARDS;
    if (per < 1)
        per = 1;
    if (per > (1u << 24))
        per = 1u << 24;
    size_t chains = 1;
    while (chains < per)
        chains <<= 1;
    gh_limit_table_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->entries = calloc(per * GH_LIMIT_SHARDS, sizeof(entry_t));
    t->heads = calloc(chains * GH_LIMIT_SHARDS, sizeof(uint32_t));
    uint64_t k[2];
    if (t->entries == NULL || t->heads == NULL || getrandom(k, sizeof(k), 0) != sizeof(k)) {
        free(t->entries);
        free(t->heads);
        free(t);
        return NULL;
    }
    t->k0 = k[0];
    t->k1 = k[1];
    for (size_t i = 0; i < GH_LIMIT_SHARDS; i++) {
        shard_t *sh = &t->shards[i];
        pthread_mutex_init(&sh->lock, NULL);
        sh->cap = (uint32_t)per;
        sh->mask = (uint32_t)(chains - 1);
        sh->entries = t->entries + i * per;
        sh->heads = t->heads + i * chains;
    }
    return t;
}

void gh_limit_table_free(gh_limit_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < GH_LIMIT_SHARDS; i++)
        pthread_mutex_destroy(&t->shards[i].lock);
    free(t->entries);
    free(t->heads);
    free(t);
}

/* The key as the table keeps it: itself, or the digest of a long one. */
typedef struct {
    const char *p;
    uint8_t len; /* | KEY_DIGEST */
    unsigned char digest[SHA256_DIGEST_LENGTH];
} tkey_t;

static void key_make(tkey_t *k, const char *key, size_t len)
{
    if (len <= GH_LIMIT_KEY_INLINE) {
        k->p = key;
        k->len = (uint8_t)len;
        return;
    }
    SHA256((const unsigned char *)key, len, k->digest);
    k->p = (const char *)k->digest;
    k->len = SHA256_DIGEST_LENGTH | KEY_DIGEST;
}

static uint64_t key_hash(const gh_limit_table_t *t, uint64_t id, const tkey_t *k)
{
    return siphash(1, 3, t->k0 ^ id, t->k1, k->p, k->len & ~KEY_DIGEST);
}

static shard_t *shard_of(gh_limit_table_t *t, uint64_t h)
{
    return &t->shards[h >> 58];
}

static entry_t *find(shard_t *sh, uint64_t h, uint64_t id, const tkey_t *k)
{
    for (uint32_t i = sh->heads[h & sh->mask]; i != 0;) {
        entry_t *e = &sh->entries[i - 1];
        if (e->hash == h && e->id == id && e->klen == k->len &&
            memcmp(e->key, k->p, k->len & ~KEY_DIGEST) == 0)
            return e;
        i = e->next;
    }
    return NULL;
}

static void unlink_entry(shard_t *sh, entry_t *e)
{
    uint32_t self = (uint32_t)(e - sh->entries) + 1;
    for (uint32_t *pi = &sh->heads[e->hash & sh->mask]; *pi != 0; pi = &sh->entries[*pi - 1].next)
        if (*pi == self) {
            *pi = e->next;
            return;
        }
}

/* How far past a counting candidate the sweep looks for an entry at rest
 * before it forgets a count: a bound, so that a shard full of counting
 * keys (an attack with fresh keys) costs a new key a few dozen steps. */
#define LOOKAHEAD 32

/* The entry a new key takes when the shard is full (the CLOCK sweep of
 * gh_limit_table_new's comment). Two passes at most: the first clears
 * every used bit it meets. */
static entry_t *evict(shard_t *sh, uint64_t now_ms)
{
    for (;;) {
        entry_t *e = &sh->entries[sh->hand];
        sh->hand = sh->hand + 1 == sh->cap ? 0 : sh->hand + 1;
        if (now_ms < e->rest_ms && e->used) {
            e->used = 0;
            continue;
        }
        if (now_ms < e->rest_ms) {
            /* Counting and unused: an entry at rest a little further on
             * goes first, if there is one. */
            uint32_t i = sh->hand;
            for (uint32_t k = 0; k < LOOKAHEAD && k + 1 < sh->cap; k++) {
                if (now_ms >= sh->entries[i].rest_ms) {
                    e = &sh->entries[i];
                    break;
                }
                i = i + 1 == sh->cap ? 0 : i + 1;
            }
        }
        if (now_ms >= e->rest_ms)
            sh->evicted_rest++;
        else
            sh->evicted_counting++;
        unlink_entry(sh, e);
        return e;
    }
}

static entry_t *add(shard_t *sh, uint64_t h, uint64_t id, const tkey_t *k,
                    const gh_limit_spec_t *spec, const gh_limit_now_t *now)
{
    entry_t *e = sh->used < sh->cap ? &sh->entries[sh->used++] : evict(sh, now->mono_ms);
    e->hash = h;
    e->id = id;
    e->klen = k->len;
    memcpy(e->key, k->p, k->len & ~KEY_DIGEST);
    if (spec->algo == GH_LIMIT_BUCKET) {
        e->s0 = gh_bucket_init(&spec->rate, now->mono_ms);
    } else {
        e->s0 = (uint64_t)INT64_MIN;
        e->s1 = 0;
    }
    e->rest_ms = 0;
    uint32_t *head = &sh->heads[h & sh->mask];
    e->next = *head;
    *head = (uint32_t)(e - sh->entries) + 1;
    return e;
}

int gh_limit_table_take(gh_limit_table_t *t, const gh_limit_spec_t *spec, const char *key,
                        size_t len, const gh_limit_now_t *now, gh_limit_result_t *res)
{
    tkey_t k;
    key_make(&k, key, len);
    uint64_t h = key_hash(t, spec->id, &k);
    shard_t *sh = shard_of(t, h);
    pthread_mutex_lock(&sh->lock);
    entry_t *e = find(sh, h, spec->id, &k);
    if (e == NULL)
        e = add(sh, h, spec->id, &k, spec, now);
    e->used = 1;
    if (spec->algo == GH_LIMIT_BUCKET) {
        gh_bucket_take(&e->s0, &spec->rate, now->mono_ms, res);
        e->rest_ms = gh_bucket_rest_ms(e->s0, &spec->rate, now->mono_ms);
    } else {
        int64_t win = (int64_t)e->s0;
        gh_quota_take(&win, &e->s1, &spec->quota, now->wall_ms, res);
        e->s0 = (uint64_t)win;
        /* At rest once its window ended: the wall clock's distance to the
         * end, on the monotonic clock. */
        e->rest_ms = now->mono_ms + res->reset_s * 1000;
    }
    pthread_mutex_unlock(&sh->lock);
    return res->allowed;
}

void gh_limit_table_refund(gh_limit_table_t *t, const gh_limit_spec_t *spec, const char *key,
                           size_t len, const gh_limit_now_t *now)
{
    tkey_t k;
    key_make(&k, key, len);
    uint64_t h = key_hash(t, spec->id, &k);
    shard_t *sh = shard_of(t, h);
    pthread_mutex_lock(&sh->lock);
    entry_t *e = find(sh, h, spec->id, &k);
    if (e != NULL && spec->algo == GH_LIMIT_BUCKET) {
        gh_bucket_refund(&e->s0, &spec->rate);
    } else if (e != NULL) {
        int64_t win = (int64_t)e->s0;
        gh_quota_refund(&win, &e->s1, &spec->quota, now->wall_ms);
    }
    pthread_mutex_unlock(&sh->lock);
}

void gh_limit_table_stats(gh_limit_table_t *t, gh_limit_table_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < GH_LIMIT_SHARDS; i++) {
        shard_t *sh = &t->shards[i];
        pthread_mutex_lock(&sh->lock);
        out->keys += sh->used;
        out->capacity += sh->cap;
        out->evicted_rest += sh->evicted_rest;
        out->evicted_counting += sh->evicted_counting;
        pthread_mutex_unlock(&sh->lock);
    }
}
