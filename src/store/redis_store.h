/*
 * The Redis backend of the store (docs/internals/store.md#redis), shared
 * by its two files: redis_store.c (opening, the synchronous hooks, the
 * scripts, records) and redis_lookup.c (each worker loop's async client
 * and the lookups on it). Not a public interface.
 */
#ifndef GATEHOUSE_STORE_REDIS_STORE_H
#define GATEHOUSE_STORE_REDIS_STORE_H

#include <arpa/inet.h>
#include <stdint.h>

#include <gatehouse/redis.h>

#include "store/backend.h"

/* The fields of a key's hash, in the order every read asks for them
 * (HMGET): a reply's element i is field i. */
enum {
    RF_HASH = 0, /* SHA-256 of the key, 64 lowercase hex digits */
    RF_CONSUMER,
    RF_PLAN, /* absent: no plan */
    RF_SCOPES,
    RF_DESCRIPTION,
    RF_ENABLED, /* "1" or "0" */
    RF_SOURCE,  /* "generated" or "aws-import" */
    RF_CREATED_AT,
    RF_EXPIRES_AT,  /* absent: never */
    RF_REVOKED_AT,  /* absent: not revoked */
    RF_GRACE_UNTIL, /* absent: not rotated */
    RF_REPLACED_BY, /* absent: not rotated */
    RF_COUNT
};

extern const char *const gh_rs_fields[RF_COUNT];

typedef struct {
    /* What each worker loop's async client is made with (redis_lookup.c);
     * its strings point into this struct. */
    gh_redis_opts_t opts;
    char host[INET6_ADDRSTRLEN];
    char *prefix;
    uint64_t connect_ms;

    /* Two blocking clients, each one thread at a time: sync for the quick
     * calls of the CLI and the admin API (get, create, revoke, rotate),
     * bulk for the long ones (list, import, usage), so a usage write on
     * the thread pool never holds up the admin API, and each has a timeout
     * that fits its work. */
    uv_mutex_t slock;
    gh_redis_sync_t *sync;
    uv_mutex_t block;
    gh_redis_sync_t *bulk;

    /* Usage writes (under block): this store's writer id and the sequence
     * number of its last batch, so that a batch sent again after a lost
     * reply is applied once; and that batch, kept until Redis confirms it. */
    char writer[33];
    uint64_t seq;
    gh_store_usage_entry_t *doubt;
    size_t num_doubt;
    uint64_t doubt_seq;
} gh_rs_t;

/* The record of id from the RF_COUNT elements el (an HMGET's reply): 0
 * with *out (strings new) and the stored hash, -ENOENT when there is no
 * record (no consumer), -EIO when it is malformed (*why says how), or
 * -ENOMEM. A malformed hash is kept as zeros, which match no key. */
int gh_rs_record(struct redisReply *const *el, const char *id, gh_apikey_t *out, uint8_t *hash,
                 const char **why);

/* ---- redis_lookup.c ---- */

typedef struct gh_rs_loop_s gh_rs_loop_t;

/* A lookup's state, after its gh_store_req_t. It is in exactly one place
 * until finished: in flight on the loop's client (cmd), parked until the
 * client's first connection is up, or done (answered on the loop's next
 * turn, with status). */
typedef struct gh_rs_req_s {
    gh_store_req_t *req;
    gh_rs_loop_t *lc;
    gh_redis_cmd_t *cmd;
    struct gh_rs_req_s *next; /* parked or done list */
    int status;
} gh_rs_req_t;

/* The backend's lookup hooks. */
int gh_rs_key_lookup(gh_store_t *st, uv_loop_t *loop, gh_store_req_t *req);
void gh_rs_key_lookup_cancel(gh_store_req_t *req);
/* After loop's owner closed its handles and ran it out: frees the clients
 * every store has on it, ending their lookups (-ESHUTDOWN). */
void gh_rs_loop_end(uv_loop_t *loop);
/* The store closes (its last reference went, on any thread): its per-loop
 * clients are closed by their own loops, soon, or by gh_rs_loop_end. */
void gh_rs_forget_store(gh_store_t *st);

#endif
