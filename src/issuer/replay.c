/*
 * The client-assertion replay cache (issuer.h; RFC 7523 §3 point 7: the
 * server "MAY ensure that JWTs are not replayed by maintaining the set
 * of used jti values for the length of time for which the JWT would be
 * considered valid"; gatehouse does).
 *
 * A power-of-two table of fixed slots, each a 128-bit digest of (client
 * id, jti) under a per-process random salt and the time until which it
 * is live. An entry may sit in WINDOW slots from its home; a claim scans
 * all of them, so a live entry is always found, and reuses the first
 * dead slot. When the window holds only live entries the claim is
 * refused: forgetting one instead would let its assertion be replayed.
 * The salt keeps a client from choosing jti values that all land in one
 * window, to refuse other clients' assertions.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "issuer/issuer.h"

#define WINDOW 32

typedef struct {
    unsigned char key[16];
    int64_t until; /* live while until > now; 0 never used */
} slot_t;

struct gh_oauth_replay_s {
    pthread_mutex_t lock;
    size_t mask;
    unsigned char salt[16];
    slot_t *slots;
};

gh_oauth_replay_t *gh_oauth_replay_new(size_t capacity)
{
    size_t n = WINDOW;
    while (n < capacity && n < ((size_t)1 << 30))
        n <<= 1;
    gh_oauth_replay_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        return NULL;
    rc->slots = calloc(n, sizeof(slot_t));
    if (rc->slots == NULL || RAND_bytes(rc->salt, sizeof(rc->salt)) != 1 ||
        pthread_mutex_init(&rc->lock, NULL) != 0) {
        free(rc->slots);
        free(rc);
        return NULL;
    }
    rc->mask = n - 1;
    return rc;
}

void gh_oauth_replay_free(gh_oauth_replay_t *rc)
{
    if (rc == NULL)
        return;
    pthread_mutex_destroy(&rc->lock);
    free(rc->slots);
    free(rc);
}

int gh_oauth_replay_claim(gh_oauth_replay_t *rc, const char *client_id, size_t client_id_len,
                          const char *jti, size_t jti_len, int64_t until, int64_t now)
{
    unsigned char in[16 + GH_OAUTH_MAX_CLIENT_ID + 1 + GH_OAUTH_MAX_JTI];
    unsigned char d[SHA256_DIGEST_LENGTH];
    if (client_id_len > GH_OAUTH_MAX_CLIENT_ID || jti_len > GH_OAUTH_MAX_JTI ||
        memchr(client_id, '\0', client_id_len) != NULL)
        return -EINVAL;
    if (until <= now)
        return 0; /* dead already: nothing could replay it */
    /* A client id holds no NUL, so (id, NUL, jti) reads one way only. */
    memcpy(in, rc->salt, 16);
    memcpy(in + 16, client_id, client_id_len);
    in[16 + client_id_len] = '\0';
    memcpy(in + 17 + client_id_len, jti, jti_len);
    SHA256(in, 17 + client_id_len + jti_len, d);
    uint64_t h;
    memcpy(&h, d + 16, sizeof(h));
    pthread_mutex_lock(&rc->lock);
    slot_t *free_slot = NULL;
    int rcode = -ENOSPC;
    /* The table has at least WINDOW slots (gh_oauth_replay_new). */
    for (size_t i = 0; i < WINDOW; i++) {
        slot_t *s = &rc->slots[(h + i) & rc->mask];
        if (s->until <= now) {
            if (free_slot == NULL)
                free_slot = s;
            continue;
        }
        if (memcmp(s->key, d, 16) == 0) {
            rcode = -EEXIST;
            free_slot = NULL;
            break;
        }
    }
    if (free_slot != NULL) {
        memcpy(free_slot->key, d, 16);
        free_slot->until = until;
        rcode = 0;
    }
    pthread_mutex_unlock(&rc->lock);
    return rcode;
}

size_t gh_oauth_replay_count(gh_oauth_replay_t *rc, int64_t now)
{
    size_t n = 0;
    pthread_mutex_lock(&rc->lock);
    for (size_t i = 0; i <= rc->mask; i++)
        n += rc->slots[i].until > now;
    pthread_mutex_unlock(&rc->lock);
    return n;
}
