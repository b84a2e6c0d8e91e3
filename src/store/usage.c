/* Pending usage counts: one open-addressing table per shard. */
#include "store/usage.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <gatehouse/store.h>

#define FIRST_SLOTS 64u

typedef struct {
    uv_mutex_t lock;
    gh_store_usage_entry_t *slots; /* count 0: free */
    size_t cap;                    /* power of two, or 0 */
    size_t used;
    /* keep the shards on their own cache lines */
    char pad[64];
} shard_t;

struct gh_usage_batch_s {
    shard_t shards[GH_USAGE_SHARDS];
    atomic_uint_fast64_t dropped;
};

static uint64_t hash_pair(const char *id, int64_t day)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)day;
    for (size_t i = 0; i < GH_APIKEY_ID_LEN && id[i] != '\0'; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 31);
}

gh_usage_batch_t *gh_usage_batch_new(void)
{
    gh_usage_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    for (size_t i = 0; i < GH_USAGE_SHARDS; i++) {
        if (uv_mutex_init(&b->shards[i].lock) != 0) {
            while (i-- > 0)
                uv_mutex_destroy(&b->shards[i].lock);
            free(b);
            return NULL;
        }
    }
    return b;
}

void gh_usage_batch_free(gh_usage_batch_t *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < GH_USAGE_SHARDS; i++) {
        uv_mutex_destroy(&b->shards[i].lock);
        free(b->shards[i].slots);
    }
    free(b);
}

static gh_store_usage_entry_t *probe(gh_store_usage_entry_t *slots, size_t cap, const char *id,
                                     int64_t day)
{
    size_t i = (size_t)hash_pair(id, day) & (cap - 1);
    for (;;) {
        gh_store_usage_entry_t *e = &slots[i];
        if (e->count == 0 || (e->day == day && strcmp(e->id, id) == 0))
            return e;
        i = (i + 1) & (cap - 1);
    }
}

/* Doubles the table (keeps the load at most one half). Under the lock. */
static int grow(shard_t *s)
{
    size_t ncap = s->cap == 0 ? FIRST_SLOTS : s->cap * 2;
    gh_store_usage_entry_t *n = calloc(ncap, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].count != 0)
            *probe(n, ncap, s->slots[i].id, s->slots[i].day) = s->slots[i];
    free(s->slots);
    s->slots = n;
    s->cap = ncap;
    return 0;
}

static int add_locked(shard_t *s, const char *id, int64_t day, uint64_t n)
{
    if (s->cap != 0) {
        gh_store_usage_entry_t *e = probe(s->slots, s->cap, id, day);
        if (e->count != 0) {
            e->count = e->count > UINT64_MAX - n ? UINT64_MAX : e->count + n;
            return 0;
        }
    }
    if (s->used >= GH_STORE_USAGE_PENDING_MAX)
        return -ENOSPC;
    if ((s->used + 1) * 2 > s->cap && grow(s) != 0)
        return -ENOSPC;
    gh_store_usage_entry_t *e = probe(s->slots, s->cap, id, day);
    memcpy(e->id, id, GH_APIKEY_ID_LEN);
    e->id[GH_APIKEY_ID_LEN] = '\0';
    e->day = day;
    e->count = n;
    s->used++;
    return 0;
}

int gh_usage_batch_add(gh_usage_batch_t *b, unsigned shard, const char *id, int64_t day, uint64_t n)
{
    if (n == 0)
        return 0;
    shard_t *s = &b->shards[shard % GH_USAGE_SHARDS];
    uv_mutex_lock(&s->lock);
    int rc = add_locked(s, id, day, n);
    uv_mutex_unlock(&s->lock);
    if (rc != 0)
        atomic_fetch_add(&b->dropped, n);
    return rc;
}

int gh_usage_batch_take(gh_usage_batch_t *b, gh_store_usage_entry_t **out, size_t *n)
{
    gh_store_usage_entry_t *tables[GH_USAGE_SHARDS];
    size_t caps[GH_USAGE_SHARDS], total = 0;
    *out = NULL;
    *n = 0;
    /* Each shard's table is swapped out under its lock (no copy there), so
     * a worker counting meanwhile waits for a pointer swap only. */
    for (size_t i = 0; i < GH_USAGE_SHARDS; i++) {
        shard_t *s = &b->shards[i];
        uv_mutex_lock(&s->lock);
        tables[i] = s->slots;
        caps[i] = s->cap;
        total += s->used;
        s->slots = NULL;
        s->cap = s->used = 0;
        uv_mutex_unlock(&s->lock);
    }
    gh_store_usage_entry_t *all = total ? malloc(total * sizeof(*all)) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < GH_USAGE_SHARDS; i++) {
        for (size_t j = 0; all != NULL && j < caps[i]; j++)
            if (tables[i][j].count != 0)
                all[k++] = tables[i][j];
        if (all == NULL && total != 0) {
            /* out of memory: back where they were */
            for (size_t j = 0; j < caps[i]; j++)
                if (tables[i][j].count != 0)
                    gh_usage_batch_put_back(b, &tables[i][j], 1);
        }
        free(tables[i]);
    }
    if (all == NULL && total != 0)
        return -ENOMEM;
    *out = all;
    *n = k;
    return 0;
}

void gh_usage_batch_put_back(gh_usage_batch_t *b, const gh_store_usage_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gh_usage_batch_add(b, (unsigned)(hash_pair(e[i].id, e[i].day) % GH_USAGE_SHARDS), e[i].id,
                           e[i].day, e[i].count);
}

uint64_t gh_usage_batch_pending(gh_usage_batch_t *b, const char *id, int64_t day)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < GH_USAGE_SHARDS; i++) {
        shard_t *s = &b->shards[i];
        uv_mutex_lock(&s->lock);
        if (s->cap != 0) {
            const gh_store_usage_entry_t *e = probe(s->slots, s->cap, id, day);
            if (e->count != 0)
                sum = e->count > UINT64_MAX - sum ? UINT64_MAX : sum + e->count;
        }
        uv_mutex_unlock(&s->lock);
    }
    return sum;
}

uint64_t gh_usage_batch_dropped(const gh_usage_batch_t *b)
{
    return atomic_load(&((gh_usage_batch_t *)b)->dropped);
}
