/*
 * What a store backend implements (docs/internals/store.md). store.c does
 * everything that is the same for every kind: checks of input, key
 * generation and hashing, the constant-time comparison of a looked-up
 * hash, request lifetime and cancellation, reference counting, batching of
 * usage counts. A backend only keeps records and answers queries.
 *
 * Threads: the synchronous hooks run on the main thread, the CLI, or a
 * thread-pool thread (usage_write from gh_store_start's timer); a backend
 * serialises them itself. key_lookup runs on a worker's loop thread and
 * must not block it: it starts work (a thread-pool job, a command on the
 * worker's connection) whose completion calls gh_store_req_finish() on that
 * same loop, exactly once, also after key_lookup_cancel.
 */
#ifndef GATEHOUSE_STORE_BACKEND_H
#define GATEHOUSE_STORE_BACKEND_H

#include <stdatomic.h>

#include <gatehouse/store.h>

#include "store/usage.h"

/* One row of an import, checked and mapped by store.c. */
typedef struct {
    unsigned line;
    char id[GH_APIKEY_ID_LEN + 1];
    uint8_t hash[GH_APIKEY_HASH_LEN];
    const char *consumer, *description, *plan; /* borrowed; plan may be NULL */
    int enabled;
} gh_store_import_row_t;

typedef struct gh_store_backend_s {
    gh_store_kind_t kind;
    const char *name;
    size_t req_size; /* bytes of backend state after each gh_store_req_t */

    /* Opens st->conf's store into st->impl. */
    int (*open)(gh_store_t *st, int flags, gh_store_error_t *err);
    /* Any thread, once, when the last reference goes. */
    void (*close)(gh_store_t *st);

    /* Inserts k with hash. -EEXIST when its id is taken. */
    int (*key_insert)(gh_store_t *st, const gh_apikey_t *k, const uint8_t *hash,
                      gh_store_error_t *err);
    /* The record of id (and its hash into hash, when not NULL); -ENOENT. */
    int (*key_get)(gh_store_t *st, const char *id, gh_apikey_t *out, uint8_t *hash,
                   gh_store_error_t *err);
    int (*key_list)(gh_store_t *st, const char *consumer, gh_apikey_t **keys, size_t *n,
                    gh_store_error_t *err);
    /* Sets revoked_at if unset: -ENOENT, -EALREADY. */
    int (*key_revoke)(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err);
    /* One transaction: the old key, if still neither revoked nor rotated,
     * gets replaced_by = nk->id and grace_until; nk is inserted. -ESTALE
     * when the old key changed meanwhile (nothing written), -EEXIST when
     * nk's id is taken. */
    int (*key_rotate)(gh_store_t *st, const char *old_id, int64_t grace_until,
                      const gh_apikey_t *nk, const uint8_t *hash, gh_store_error_t *err);
    /* One transaction; per-row refusals go to res->errors (and then
     * nothing is written: -EINVAL). */
    int (*key_import)(gh_store_t *st, const gh_store_import_row_t *rows, size_t n, int64_t now,
                      int dry_run, gh_store_import_result_t *res, gh_store_error_t *err);
    /* Adds counts[i] to the written usage of (id, day) pairs. */
    int (*usage_write)(gh_store_t *st, const gh_store_usage_entry_t *e, size_t n,
                       gh_store_error_t *err);
    /* Written counts of id per day, added into counts[0 .. to - from]. */
    int (*usage_get)(gh_store_t *st, const char *id, int64_t from_day, int64_t to_day,
                     uint64_t *counts, gh_store_error_t *err);

    /* ---- OAuth clients (records with their hashes) ---- */
    /* Inserts c. -EEXIST when its id is taken. */
    int (*client_insert)(gh_store_t *st, const gh_client_t *c, gh_store_error_t *err);
    int (*client_get)(gh_store_t *st, const char *id, gh_client_t *out, gh_store_error_t *err);
    int (*client_list)(gh_store_t *st, gh_client_t **out, size_t *n, gh_store_error_t *err);
    /* Sets revoked_at if unset: -ENOENT, -EALREADY. */
    int (*client_revoke)(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err);
    /* One transaction: when the client is not revoked and its secret hash
     * is still old_hash, its secret becomes c->secret_hash, the previous
     * c->prev_secret_hash until c->prev_valid_until, rotated at
     * c->secret_rotated_at; otherwise -ESTALE (nothing written). */
    int (*client_rotate)(gh_store_t *st, const gh_client_t *c, const uint8_t *old_hash,
                         gh_store_error_t *err);

    /* ---- revocations ---- */
    /* Records (jti, exp) with the next sequence number and purges what
     * expired before now: 0, -EALREADY (jti recorded already). */
    int (*revocation_add)(gh_store_t *st, const char *jti, int64_t exp, int64_t now,
                          gh_store_error_t *err);
    /* Entries numbered after `after`, oldest first, at most max looked at;
     * those with exp <= now are skipped but count for *next. *last_made is
     * the highest number ever made (0: none). */
    int (*revocations_since)(gh_store_t *st, uint64_t after, int64_t now, size_t max,
                             gh_revocation_t *out, size_t *n, uint64_t *next, size_t *looked,
                             uint64_t *last_made, gh_store_error_t *err);
    int (*revocations_purge)(gh_store_t *st, int64_t now, gh_store_error_t *err);

    /* ---- client-assertion claims ---- */
    /* Claims (client_id, jti) until `until` (> now), both checked by
     * store.c: 0 when new or when the claim there had passed at now,
     * -EEXIST when it is live. A backend that does not expire claims by
     * itself purges up to GH_STORE_PURGE_BATCH passed ones first. */
    int (*jti_claim)(gh_store_t *st, const char *client_id, const char *jti, int64_t until,
                     int64_t now, gh_store_error_t *err);
    /* Optional, worker loop: starts the claim of req (kind
     * GH_STORE_REQ_CLAIM: req->client_id, req->jti, req->until, req->now)
     * without the thread pool, as key_lookup does (and key_lookup_cancel
     * cancels it); finished with gh_store_req_finish(req, status, NULL,
     * NULL). NULL: store.c runs jti_claim on the thread pool. */
    int (*jti_claim_start)(gh_store_t *st, uv_loop_t *loop, gh_store_req_t *req);

    /* Worker loop: starts the lookup of req->key.id (req->kind
     * GH_STORE_REQ_KEY) or req->client_id (GH_STORE_REQ_CLIENT). 0, or a
     * negative errno (then gh_store_req_finish is never called). */
    int (*key_lookup)(gh_store_t *st, uv_loop_t *loop, gh_store_req_t *req);
    /* Optional: the caller cancelled; stop the work if it has not started.
     * gh_store_req_finish still comes, from the loop. */
    void (*key_lookup_cancel)(gh_store_req_t *req);
    /* Optional, for every store of the kind at once (gh_store_loop_end):
     * loop ended (its owner closed its handles and ran it out); release
     * what the backend keeps for it, finishing its pending lookups. */
    void (*loop_end)(uv_loop_t *loop);
} gh_store_backend_t;

struct gh_store_s {
    const gh_store_backend_t *backend;
    gh_store_conf_t conf; /* a deep copy */
    char describe[256];
    atomic_uint refs;
    atomic_uint pending; /* lookups in flight */
    gh_usage_batch_t *usage;
    void *impl; /* the backend's */

    /* gh_store_start: the flush timer on the main loop */
    uv_timer_t *timer;
    uv_loop_t *loop;
    atomic_int flushing;
};

enum {
    GH_STORE_REQ_KEY = 0, /* gh_store_key_lookup */
    GH_STORE_REQ_CLIENT,  /* gh_store_client_lookup */
    GH_STORE_REQ_REVOKE,  /* gh_store_revocation_add_async (store.c, thread pool) */
    GH_STORE_REQ_CLAIM,   /* gh_store_jti_claim_async (jti_claim_start, or the thread pool) */
};

struct gh_store_req_s {
    gh_store_t *store; /* a reference */
    int kind;          /* GH_STORE_REQ_* */
    gh_store_key_cb cb;
    gh_store_client_cb client_cb;
    gh_store_status_cb status_cb;
    void *arg;
    int cancelled; /* set and read on the loop's thread only */
    int on_pool;   /* store.c's own job on the thread pool (cancelled with uv_cancel) */
    gh_apikey_presented_t key;
    char client_id[GH_CLIENT_ID_LEN + 1];
    /* GH_STORE_REQ_CLAIM: the claim of (client_id, jti) until, made at now */
    char jti[GH_STORE_JTI_MAX + 1];
    int64_t until, now;
    /* the backend's req_size bytes follow, aligned for any type */
    _Alignas(max_align_t) unsigned char backend[];
};

/* The backend's state of a request. */
static inline void *gh_store_req_backend(gh_store_req_t *req)
{
    return req->backend;
}

/* On the loop that started req: its answer. status 0 with rec and the
 * stored hash (compared here, in constant time), -ENOENT, or a failure.
 * Calls the callback unless cancelled, then frees req. Any kind of
 * request may be finished with a failure this way (rec NULL). */
void gh_store_req_finish(gh_store_req_t *req, int status, const gh_apikey_t *rec,
                         const uint8_t *stored_hash);
/* The same for a client lookup: status 0 with c (borrowed), or not. */
void gh_store_req_finish_client(gh_store_req_t *req, int status, const gh_client_t *c);

/* The store section parsed as a store of kind (its `kind` key, if any, is
 * not read again): how gh_store_conf_parse goes on once it has the kind,
 * and a seam for tests of one kind's keys. c is
 * always initialised (dispose it). */
int gh_store_conf_parse_kind(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                             const char *state_dir, gh_store_kind_t kind, gh_store_conf_t *c);

/* The backend for kind in this build, or NULL. */
const gh_store_backend_t *gh_store_backend_find(gh_store_kind_t kind);

extern const gh_store_backend_t gh_store_sqlite_backend;
extern const gh_store_backend_t gh_store_redis_backend;

/* Formats err->msg (err may be NULL); returns rc. */
int gh_store_fail(gh_store_error_t *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One refused import row for res (both backends' key_import): counted,
 * and its message kept while GH_APIKEY_CSV_MAX_ERRORS allow. 0 or -ENOMEM. */
int gh_store_import_error(gh_store_import_result_t *res, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A deep copy of src into dst; -ENOMEM (dst then holds nothing to free). */
int gh_store_conf_copy(gh_store_conf_t *dst, const gh_store_conf_t *src);

/* Copies of strings for records (NULL in, NULL out); -ENOMEM. */
int gh_store_apikey_copy(gh_apikey_t *dst, const gh_apikey_t *src);
int gh_store_client_copy(gh_client_t *dst, const gh_client_t *src);

/* Revocation and claim purges per write: a bound on the work one write
 * does. */
#define GH_STORE_PURGE_BATCH 1000

#endif
