/*
 * The process-wide table of limit counters (gatehouse/limiter.h).
 *
 * GH_LIMIT_SHARDS shards, each a lock, a fixed array of entries and a
 * chained hash index over them. A key's entry is found by a keyed hash of
 * (limit id, key), whose secret is drawn when the table is made, so a
 * client choosing header values cannot aim them all at one chain (hash
 * flooding). The lock is held for the lookup and the
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
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/sha.h>

#include "core/gcra.h"

#define KEY_DIGEST 0x80 /* klen flag: key[] holds the SHA-256 of a long key */

typedef struct {
    uint64_t hash;
    uint64_t id;
    /* bucket: tat and the rate's requests (the scale of tat's clock);
     * window: window number and count */
    uint64_t s0, s1;
    uint64_t rest_ms; /* window: monotonic ms from which the state is at rest */
    uint32_t next;    /* index + 1 of the next entry of the chain; 0 ends it */
    uint8_t used;     /* CLOCK's bit: looked up since the hand last passed */
    uint8_t klen;     /* key bytes (| KEY_DIGEST) */
    uint8_t window;   /* a window's state, not a bucket's */
    char key[GH_LIMIT_KEY_INLINE];
} entry_t;

typedef struct {
    int lock; /* a spinlock: see lock() */
    uint32_t cap, used, hand, mask;
    uint32_t *heads; /* mask + 1 chains: index + 1 of the first entry */
    entry_t *entries;
    uint64_t evicted_rest, evicted_counting;
} __attribute__((aligned(64))) shard_t;

struct gh_limit_table_s {
    shard_t shards[GH_LIMIT_SHARDS];
    uint64_t k[4];    /* the hash's secret */
    entry_t *entries; /* all shards' */
    uint32_t *heads;
};

/* ---- the key hash ----
 *
 * A keyed hash of (limit id, key) picks the shard and the chain. Keyed
 * with 256 random bits drawn when the table is made, so that a client
 * choosing header values cannot aim them at one chain: it cannot compute
 * where a value lands. Each 8-byte word is mixed by a "folded multiply"
 * (the 128-bit product's halves xored) of the word xored with a secret,
 * by another secret: the construction of wyhash and of Go's runtime map
 * hash, about 5 instructions a word where SipHash-1-3 took 128 for a short
 * key, which was a fifth of the whole filter's cost. A collision set, if
 * one were found, costs a chain walk bounded by the shard's size. */

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t key_hash_bytes(const uint64_t k[4], uint64_t id, const unsigned char *p, size_t len)
{
    uint64_t h = fold_mul(id ^ k[0], k[1] ^ len);
    size_t i = 0;
    for (; i + 8 < len; i += 8)
        h = fold_mul(h ^ load_le64(p + i) ^ k[2], k[3]);
    /* The last 1 to 8 bytes: an 8-byte load that may overlap the word
     * before (the length is mixed in, so no two keys read alike), or the
     * bytes one by one in a key shorter than a word. */
    uint64_t w = 0;
    if (len >= 8)
        w = load_le64(p + len - 8);
    else
        for (size_t j = 0; j < len; j++)
            w |= (uint64_t)p[j] << (8 * j);
    return fold_mul(h ^ w ^ k[2], k[3]);
}

/* ---- the table ---- */

/* A shard's lock is held for a lookup and one decision, tens of
 * instructions, by at most one thread per worker: a spinlock costs a
 * fraction of a mutex's lock and unlock on every request. A holder that
 * was preempted is waited for with sched_yield after a short spin. */
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
    if (t->entries == NULL || t->heads == NULL ||
        getrandom(t->k, sizeof(t->k), 0) != (ssize_t)sizeof(t->k)) {
        free(t->entries);
        free(t->heads);
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < GH_LIMIT_SHARDS; i++) {
        shard_t *sh = &t->shards[i];
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
    free(t->entries);
    free(t->heads);
    free(t);
}

/* The key as the table keeps it: itself, or the digest of a long one,
 * passed as (p, len | KEY_DIGEST) by value: a key taken by address would
 * cost every decision a stack guard. */
static uint64_t key_hash(const gh_limit_table_t *t, uint64_t id, const char *kp, uint8_t klen)
{
    return key_hash_bytes(t->k, id, (const unsigned char *)kp, klen & ~KEY_DIGEST);
}

static shard_t *shard_of(gh_limit_table_t *t, uint64_t h)
{
    return &t->shards[h >> 58];
}

/* Whether the entry holds key k (same length): two 8-byte words, which
 * may overlap, cover keys of 8 to 16 bytes (an IPv4 address, most
 * consumer names) without a call. */
static inline int key_same(const entry_t *e, const char *kp, uint8_t klen)
{
    size_t n = klen & ~KEY_DIGEST;
    const unsigned char *a = (const unsigned char *)e->key, *b = (const unsigned char *)kp;
    if (n >= 8 && n <= 16)
        return load_le64(a) == load_le64(b) && load_le64(a + n - 8) == load_le64(b + n - 8);
    return memcmp(a, b, n) == 0;
}

static inline entry_t *find(shard_t *sh, uint64_t h, uint64_t id, const char *kp, uint8_t klen)
{
    for (uint32_t i = sh->heads[h & sh->mask]; i != 0;) {
        entry_t *e = &sh->entries[i - 1];
        if (e->hash == h && e->id == id && e->klen == klen && key_same(e, kp, klen))
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

/* Whether dropping e changes no decision: a bucket full again (no debt
 * left: tat at or before now on its scaled clock), a window that ended. */
static inline int at_rest(const entry_t *e, uint64_t now_ms)
{
    if (e->window)
        return now_ms >= e->rest_ms;
    return (int64_t)(e->s0 - now_ms * e->s1) <= 0;
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
        int rest = at_rest(e, now_ms);
        if (!rest && e->used) {
            e->used = 0;
            continue;
        }
        if (!rest) {
            /* Counting and unused: an entry at rest a little further on
             * goes first, if there is one. */
            uint32_t i = sh->hand;
            for (uint32_t k = 0; k < LOOKAHEAD && k + 1 < sh->cap; k++) {
                if (at_rest(&sh->entries[i], now_ms)) {
                    e = &sh->entries[i];
                    rest = 1;
                    break;
                }
                i = i + 1 == sh->cap ? 0 : i + 1;
            }
        }
        if (rest)
            sh->evicted_rest++;
        else
            sh->evicted_counting++;
        unlink_entry(sh, e);
        return e;
    }
}

static entry_t *add(shard_t *sh, uint64_t h, uint64_t id, const char *kp, uint8_t klen,
                    const gh_limit_spec_t *spec, const gh_limit_now_t *now)
{
    entry_t *e = sh->used < sh->cap ? &sh->entries[sh->used++] : evict(sh, now->mono_ms);
    e->hash = h;
    e->id = id;
    e->klen = klen;
    memcpy(e->key, kp, klen & ~KEY_DIGEST);
    e->window = spec->algo == GH_LIMIT_WINDOW;
    if (!e->window) {
        e->s0 = gh_bucket_init(&spec->rate, now->mono_ms);
        e->s1 = spec->rate.requests;
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

__attribute__((always_inline)) static inline int take(gh_limit_table_t *t,
                                                      const gh_limit_spec_t *spec, const char *kp,
                                                      uint8_t klen, const gh_limit_now_t *now,
                                                      gh_limit_result_t *res)
{
    uint64_t h = key_hash(t, spec->id, kp, klen);
    shard_t *sh = shard_of(t, h);
    lock(sh);
    entry_t *e = find(sh, h, spec->id, kp, klen);
    if (e == NULL)
        e = add(sh, h, spec->id, kp, klen, spec, now);
    e->used = 1;
    if (spec->algo == GH_LIMIT_BUCKET) {
        gcra_take(&e->s0, &spec->rate, now->mono_ms, res);
    } else {
        int64_t win = (int64_t)e->s0;
        gh_quota_take(&win, &e->s1, &spec->quota, now->wall_ms, res);
        e->s0 = (uint64_t)win;
        /* At rest once its window ended: the wall clock's distance to the
         * end, on the monotonic clock. */
        e->rest_ms = now->mono_ms + res->reset_s * 1000;
    }
    unlock(sh);
    return res->allowed;
}

static void refund(gh_limit_table_t *t, const gh_limit_spec_t *spec, const char *kp, uint8_t klen,
                   const gh_limit_now_t *now)
{
    uint64_t h = key_hash(t, spec->id, kp, klen);
    shard_t *sh = shard_of(t, h);
    lock(sh);
    entry_t *e = find(sh, h, spec->id, kp, klen);
    if (e != NULL && spec->algo == GH_LIMIT_BUCKET) {
        gh_bucket_refund(&e->s0, &spec->rate);
    } else if (e != NULL) {
        int64_t win = (int64_t)e->s0;
        gh_quota_refund(&win, &e->s1, &spec->quota, now->wall_ms);
        e->s0 = (uint64_t)win;
    }
    unlock(sh);
}

/* Keys past GH_LIMIT_KEY_INLINE bytes are kept as their SHA-256, made
 * here, out of the common path (its buffer would cost every take a stack
 * guard). */
__attribute__((noinline)) static int take_long(gh_limit_table_t *t, const gh_limit_spec_t *spec,
                                               const char *key, size_t len,
                                               const gh_limit_now_t *now, gh_limit_result_t *res,
                                               int give_back)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, d);
    const uint8_t klen = SHA256_DIGEST_LENGTH | KEY_DIGEST;
    if (give_back) {
        refund(t, spec, (const char *)d, klen, now);
        return 0;
    }
    return take(t, spec, (const char *)d, klen, now, res);
}

int gh_limit_table_take(gh_limit_table_t *t, const gh_limit_spec_t *spec, const char *key,
                        size_t len, const gh_limit_now_t *now, gh_limit_result_t *res)
{
    if (len > GH_LIMIT_KEY_INLINE)
        return take_long(t, spec, key, len, now, res, 0);
    return take(t, spec, key, (uint8_t)len, now, res);
}

void gh_limit_table_refund(gh_limit_table_t *t, const gh_limit_spec_t *spec, const char *key,
                           size_t len, const gh_limit_now_t *now)
{
    if (len > GH_LIMIT_KEY_INLINE) {
        take_long(t, spec, key, len, now, NULL, 1);
        return;
    }
    refund(t, spec, key, (uint8_t)len, now);
}

void gh_limit_table_stats(gh_limit_table_t *t, gh_limit_table_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < GH_LIMIT_SHARDS; i++) {
        shard_t *sh = &t->shards[i];
        lock(sh);
        out->keys += sh->used;
        out->capacity += sh->cap;
        out->evicted_rest += sh->evicted_rest;
        out->evicted_counting += sh->evicted_counting;
        unlock(sh);
    }
}
