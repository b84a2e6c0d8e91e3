/*
 * Failed client authentications, counted per key ("c:" client id, "a:"
 * address) in one-minute windows (docs/issuer.md#failed-authentication).
 * A key with `limit` failures in the current minute is refused until the
 * minute ends, whatever its credentials. One table per process (every
 * worker, every snapshot: a reload does not forget an attack), a fixed
 * number of slots: a slot taken by another key is reused when its window
 * is over, or else the newcomer shares it (sharing can only refuse more,
 * never less). Keys are hashed with a random seed, so nobody can aim at a
 * victim's slot.
 */
#include "filters/issuer/internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <uv.h>

#define SLOTS 8192u /* a power of two */

typedef struct {
    uint64_t h;
    int64_t minute;
    uint32_t fails;
} slot_t;

static slot_t slots[SLOTS];
static uv_mutex_t lock;
static uint64_t seed;
static uv_once_t once = UV_ONCE_INIT;

static void init(void)
{
    uv_mutex_init(&lock);
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        seed = 0x9e3779b97f4a7c15ULL;
}

static uint64_t hash(char kind, const char *k, size_t n)
{
    uint64_t h = (0xcbf29ce484222325ULL ^ seed) * 0x100000001b3ULL;
    h = (h ^ (unsigned char)kind) * 0x100000001b3ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 0x100000001b3ULL;
    h ^= h >> 31;
    return h != 0 ? h : 1;
}

static slot_t *slot_for(uint64_t h)
{
    return &slots[h & (SLOTS - 1)];
}

uint64_t gh_isf_throttle_blocked(char kind, const char *k, size_t n, uint32_t limit, int64_t now)
{
    uv_once(&once, init);
    uint64_t h = hash(kind, k, n);
    int64_t minute = now / 60;
    uv_mutex_lock(&lock);
    const slot_t *s = slot_for(h);
    int blocked = s->minute == minute && s->fails >= limit;
    uv_mutex_unlock(&lock);
    return blocked ? (uint64_t)(60 - now % 60) : 0;
}

void gh_isf_throttle_fail(char kind, const char *k, size_t n, int64_t now)
{
    uv_once(&once, init);
    uint64_t h = hash(kind, k, n);
    int64_t minute = now / 60;
    uv_mutex_lock(&lock);
    slot_t *s = slot_for(h);
    if (s->minute != minute) {
        s->minute = minute;
        s->fails = 0;
    }
    s->h = h;
    if (s->fails < UINT32_MAX)
        s->fails++;
    uv_mutex_unlock(&lock);
}
