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

/* ---- redis_store.c's helpers for redis_clients.c ---- */

/* A growing argument vector whose strings it owns (numbers, key names). */
typedef struct {
    const char **v;
    size_t *lens;
    char **own;
    size_t n, cap, num_own;
    int oom;
} gh_rs_args_t;

void gh_rs_args_dispose(gh_rs_args_t *a);
void gh_rs_arg(gh_rs_args_t *a, const char *s, size_t len); /* borrowed */
void gh_rs_arg_str(gh_rs_args_t *a, const char *s);         /* borrowed */
void gh_rs_arg_i64(gh_rs_args_t *a, int64_t v);
void gh_rs_arg_key(gh_rs_args_t *a, const char *kind, const char *id); /* "kind:id" */
void gh_rs_hex32(const uint8_t *h, char out[65]);
int gh_rs_parse_i64(const struct redisReply *r, int64_t *out);
int gh_rs_io_fail(gh_store_t *st, gh_store_error_t *err, const char *what, int rc,
                  const struct redisReply *r, uint64_t timeout_ms);
/* A command with its key at argument 1 / a script, on the quick client;
 * a script on the bulk client (lists). 0 and *r (not an error answer). */
int gh_rs_quick_cmd(gh_store_t *st, const char *what, gh_rs_args_t *a, struct redisReply **r,
                    gh_store_error_t *err);
int gh_rs_quick_script(gh_store_t *st, const gh_redis_script_t *s, const char *what, int nkeys,
                       gh_rs_args_t *a, struct redisReply **r, gh_store_error_t *err);
int gh_rs_bulk_script(gh_store_t *st, const gh_redis_script_t *s, const char *what, int nkeys,
                      gh_rs_args_t *a, struct redisReply **r, gh_store_error_t *err);
int gh_rs_want_int(gh_store_t *st, const char *what, struct redisReply *r, long long *v,
                   gh_store_error_t *err);
/* The revoke script (HSETNX revoked_at on an existing hash), for clients too. */
const gh_redis_script_t *gh_rs_revoke_script(void);

/* ---- redis_clients.c: OAuth clients and revocations ---- */

/* The fields of a client's hash, in the order every read asks for them. */
enum {
    RC_NAME = 0,
    RC_SCOPES,
    RC_AUDIENCES,
    RC_AUTH_METHODS, /* names, space-separated */
    RC_JWKS,         /* absent: none */
    RC_TOKEN_TTL,    /* absent: the issuer's default */
    RC_CREATED_AT,
    RC_REVOKED_AT,        /* absent: active */
    RC_SECRET_HASH,       /* 64 lowercase hex digits; absent: no secret */
    RC_PREV_SECRET_HASH,  /* absent: none */
    RC_PREV_VALID_UNTIL,  /* absent: none */
    RC_SECRET_ROTATED_AT, /* absent: never */
    RC_COUNT
};

extern const char *const gh_rs_client_fields[RC_COUNT];

void gh_rs_clients_scripts_init(void);
/* The record of client id from an HMGET's RC_COUNT elements, as
 * gh_rs_record: 0, -ENOENT, -EIO (*why), -ENOMEM. */
int gh_rs_client_record(struct redisReply *const *el, const char *id, gh_client_t *out,
                        const char **why);

int gh_rs_client_insert(gh_store_t *st, const gh_client_t *c, gh_store_error_t *err);
int gh_rs_client_get(gh_store_t *st, const char *id, gh_client_t *out, gh_store_error_t *err);
int gh_rs_client_list(gh_store_t *st, gh_client_t **out, size_t *n, gh_store_error_t *err);
int gh_rs_client_revoke(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err);
int gh_rs_client_rotate(gh_store_t *st, const gh_client_t *c, const uint8_t *old_hash,
                        gh_store_error_t *err);
int gh_rs_revocation_add(gh_store_t *st, const char *jti, int64_t exp, int64_t now,
                         gh_store_error_t *err);
int gh_rs_revocations_since(gh_store_t *st, uint64_t after, int64_t now, size_t max,
                            gh_revocation_t *out, size_t *n, uint64_t *next, size_t *looked,
                            uint64_t *last_made, gh_store_error_t *err);
int gh_rs_revocations_purge(gh_store_t *st, int64_t now, gh_store_error_t *err);

/* A claim's key (without the prefix): "jti:CID:JTI"; its length, or 0
 * when it does not fit. The claim is SET key until NX PX (until - now) *
 * 1000, and gh_rs_claim_status reads its answer: 0 (OK), -EEXIST (nil:
 * the key was there), -EIO (anything else). */
#define GH_RS_CLAIM_KEY_MAX (4 + GH_CLIENT_ID_LEN + 1 + GH_STORE_JTI_MAX + 1)
size_t gh_rs_claim_key(char out[GH_RS_CLAIM_KEY_MAX], const char *client_id, const char *jti);
int gh_rs_claim_status(const struct redisReply *r);
int gh_rs_jti_claim(gh_store_t *st, const char *client_id, const char *jti, int64_t until,
                    int64_t now, gh_store_error_t *err);

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
