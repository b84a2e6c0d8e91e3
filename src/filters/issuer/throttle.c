/*
 * Failed client authentications, counted per key ('a' an address, 'p' a
 * client id with an address) in one-minute windows
 * (docs/issuer.md#failed-client-authentication). A key with `limit`
 * failures in the current minute is refused until the minute ends,
 * whatever its credentials. One table per process (every worker, every
 * snapshot: a reload does not forget an attack), a fixed number of slots.
 *
 * A key is its 64-bit digest under a secret drawn at start (SHA-256 of the
 * secret, the kind and the key), so nobody can aim keys at a victim's.
 * Only a key's own slot counts against it: a key that never failed is
 * never refused, however many others fail (a slot shared between keys
 * would let anyone who fails often enough, from enough addresses, lock
 * out clients that never failed). A key lives in one of WINDOW slots from
 * its home; a new key takes one whose minute is over, or else the one with
 * the fewest failures, so what is forgotten under pressure is the keys
 * that failed least, never the one that failed its limit.
 */
#include "filters/issuer/internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <uv.h>

#define SLOTS 16384u /* a power of two */
#define WINDOW 8u

typedef struct {
    uint64_t h; /* 0: never used */
    int64_t minute;
    uint32_t fails;
} slot_t;

static slot_t slots[SLOTS];
static uv_mutex_t lock;
static unsigned char secret[32];
static uv_once_t once = UV_ONCE_INIT;

static void init(void)
{
    uv_mutex_init(&lock);
    if (RAND_bytes(secret, sizeof(secret)) != 1) {
        /* Without randomness keys could be aimed, not forged: still only
         * a key's own failures count against it. */
        memset(secret, 0x5a, sizeof(secret));
    }
}

static uint64_t hash(char kind, const char *k, size_t n)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    unsigned char c = (unsigned char)kind;
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    uint64_t h = 0;
    if (x != NULL && EVP_DigestInit_ex(x, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(x, secret, sizeof(secret)) == 1 && EVP_DigestUpdate(x, &c, 1) == 1 &&
        EVP_DigestUpdate(x, k, n) == 1 && EVP_DigestFinal_ex(x, d, NULL) == 1)
        memcpy(&h, d, sizeof(h));
    EVP_MD_CTX_free(x);
    return h != 0 ? h : 1;
}

/* The key's slot in its window, or NULL. Under the lock. */
static slot_t *find(uint64_t h)
{
    for (unsigned i = 0; i < WINDOW; i++) {
        slot_t *s = &slots[(h + i) & (SLOTS - 1)];
        if (s->h == h)
            return s;
    }
    return NULL;
}

uint64_t gh_isf_throttle_blocked(char kind, const char *k, size_t n, uint32_t limit, int64_t now)
{
    uv_once(&once, init);
    uint64_t h = hash(kind, k, n);
    int64_t minute = now / 60;
    uv_mutex_lock(&lock);
    const slot_t *s = find(h);
    int blocked = s != NULL && s->minute == minute && s->fails >= limit;
    uv_mutex_unlock(&lock);
    return blocked ? (uint64_t)(60 - now % 60) : 0;
}

void gh_isf_throttle_fail(char kind, const char *k, size_t n, int64_t now)
{
    uv_once(&once, init);
    uint64_t h = hash(kind, k, n);
    int64_t minute = now / 60;
    uv_mutex_lock(&lock);
    slot_t *s = find(h);
    if (s == NULL) {
        /* A slot whose minute is over, else the one that failed least. */
        for (unsigned i = 0; i < WINDOW; i++) {
            slot_t *c = &slots[(h + i) & (SLOTS - 1)];
            if (c->minute != minute) {
                s = c;
                break;
            }
            if (s == NULL || c->fails < s->fails)
                s = c;
        }
        s->h = h;
        s->minute = minute;
        s->fails = 0;
    } else if (s->minute != minute) {
        s->minute = minute;
        s->fails = 0;
    }
    if (s->fails < UINT32_MAX)
        s->fails++;
    uv_mutex_unlock(&lock);
}
