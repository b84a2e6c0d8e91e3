/*
 * The store: where API keys, OAuth clients, revoked access tokens,
 * claimed client assertions and usage counts live, behind one interface
 * with a backend per kind: SQLite (one file, the embedded default) and
 * Redis (fleets: every gatehouse in front of one Redis shares keys,
 * revocations, claims and usage counts). Configured by the top-level `store`
 * section (gh_store_conf_t in gatehouse/config.h, docs/config.md#store).
 *
 * Two ways in:
 *
 *   - the synchronous API (create, get, list, revoke, rotate, import,
 *     usage) for the CLI and the main thread (admin API). A call blocks for
 *     at most the store's timeout (SQLite: busy_timeout, when another
 *     process holds the write lock; Redis: the connect timeout plus the
 *     call's, docs/internals/store.md#redis). Never call it on a worker.
 *
 *   - the asynchronous API for workers: gh_store_key_lookup() of a
 *     presented key, answered on the caller's loop, cancellable; and
 *     gh_store_usage_add(), which never blocks (counts are batched and
 *     written from the loop given to gh_store_start()).
 *
 * Every function takes the time (`now`, unix seconds) from its caller
 * rather than reading the clock, so that expiry and rotation grace are
 * tested without waiting.
 *
 * Errors: int functions return 0 or a negative errno and, when err is not
 * NULL, a sentence in err->msg. -ENOENT: no such key; -EINVAL: refused
 * input; -EEXIST, -EALREADY: state conflicts (said in msg); -EIO: the
 * backend failed (Redis: down, not answering in time, an error answer;
 * msg says which); -ENOTSUP: a kind this build has no backend for.
 *
 * Internals (the backend table, how SQLite runs lookups on the thread
 * pool): docs/internals/store.md.
 */
#ifndef GATEHOUSE_STORE_H
#define GATEHOUSE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <gatehouse/apikey.h>
#include <gatehouse/client.h>
#include <gatehouse/config.h>
#include <gatehouse/yaml.h>

typedef struct gh_store_s gh_store_t;
typedef struct gh_store_req_s gh_store_req_t;

typedef struct {
    char msg[256];
} gh_store_error_t;

typedef enum {
    GH_APIKEY_GENERATED = 0, /* made by gatehouse (gh_ form) */
    GH_APIKEY_IMPORTED,      /* imported from AWS API Gateway's CSV */
} gh_apikey_source_t;

/* A key's record: everything but the secret and its hash, which never
 * leave the store. Strings are NUL-terminated. From the synchronous API
 * they are the caller's (gh_apikey_dispose); in a lookup callback they are
 * borrowed for the callback only. */
typedef struct {
    char id[GH_APIKEY_ID_LEN + 1];
    char *consumer;    /* never NULL */
    char *plan;        /* NULL: no plan */
    char *scopes;      /* space-separated; "" for none */
    char *description; /* "" for none */
    int enabled;       /* 0: disabled (imported with Enabled false) */
    gh_apikey_source_t source;
    int64_t created_at;
    int64_t expires_at;                     /* 0: never */
    int64_t revoked_at;                     /* 0: not revoked */
    int64_t grace_until;                    /* rotated: valid until then; 0: not rotated */
    char replaced_by[GH_APIKEY_ID_LEN + 1]; /* rotated: the new key's id; "" otherwise */
} gh_apikey_t;

void gh_apikey_dispose(gh_apikey_t *k);
void gh_apikey_list_free(gh_apikey_t *keys, size_t n);

typedef enum {
    GH_APIKEY_VALID = 0,
    GH_APIKEY_REVOKED,  /* revoked (at any time: clocks of hosts differ) */
    GH_APIKEY_DISABLED, /* enabled is 0 */
    GH_APIKEY_EXPIRED,  /* expires_at <= now */
    GH_APIKEY_REPLACED, /* rotated, and its grace is over: grace_until <= now */
} gh_apikey_state_t;

/* What a key is at now, in the order above (a revoked key is revoked,
 * whatever else). A key in its rotation grace is VALID. */
gh_apikey_state_t gh_apikey_state(const gh_apikey_t *k, int64_t now);
/* "valid", "revoked", "disabled", "expired", "replaced". */
const char *gh_apikey_state_name(gh_apikey_state_t s);
/* The first time at which a key that is VALID now stops being valid by
 * itself (expiry, end of grace), or 0 if never: a bound for caching a
 * lookup. Revocation is not foreseeable: cache for a bounded time. */
int64_t gh_apikey_valid_until(const gh_apikey_t *k);

/* ---- configuration ---- */

/* The state directory when the config names none (relative to the
 * working directory, as every relative path of the config). */
#define GH_STORE_DEFAULT_STATE_DIR "state"

/* The defaults: sqlite at "<state_dir>/gatehouse.db" (state_dir NULL:
 * GH_STORE_DEFAULT_STATE_DIR). Returns 0 or -ENOMEM. */
int gh_store_conf_default(gh_store_conf_t *c, const char *state_dir);
/* The top-level `store` section (node NULL: absent) into c, which is
 * always initialised (dispose it, even after an error). Errors go through
 * gh_yaml_error (file:line:col). */
int gh_store_conf_parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *state_dir,
                        gh_store_conf_t *c);
void gh_store_conf_dispose(gh_store_conf_t *c);

/* ---- opening ---- */

enum {
    GH_STORE_CREATE = 1, /* create the file and its schema when missing (the server) */
};

/* Opens the store conf describes (conf is copied). SQLite: the file in WAL
 * mode, its schema created or checked (docs/internals/store.md); a
 * default path's directory (the state_dir) is created (mode 0700) with
 * GH_STORE_CREATE; without it a missing file is -ENOENT. Redis: the
 * address's host name is resolved now (-EIO when it does not resolve);
 * Redis itself need not be up (every call then fails with -EIO until it
 * is), but when it is, the prefix's schema marker is checked (-EINVAL for
 * a newer schema or another application's keys) and, with
 * GH_STORE_CREATE, set. Returns 0 and *out (one reference, the caller's),
 * or an error. -ENOTSUP for a kind without a backend in this build. */
int gh_store_open(const gh_store_conf_t *conf, int flags, gh_store_t **out, gh_store_error_t *err);
/* References: each pending lookup holds one, so a store outlives its
 * requests. The last unref writes the usage counts still pending
 * (synchronously) and closes the backend; any thread. */
gh_store_t *gh_store_ref(gh_store_t *st);
void gh_store_unref(gh_store_t *st);
/* The kind's name ("sqlite", "redis") and a description for logs
 * ("sqlite state/gatehouse.db"). */
const char *gh_store_kind(const gh_store_t *st);
const char *gh_store_describe(const gh_store_t *st);

/* Main thread of a server: writes the batched usage counts every
 * conf->usage_flush_ms from loop (the write itself runs on the thread
 * pool). Call once; gh_store_stop() stops it and writes what is pending
 * (the loop must run after it, to close the timer). Without start (the
 * CLI, tests), counts are written by gh_store_usage_flush() and by the
 * last unref. Returns 0 or a negative errno. */
int gh_store_start(gh_store_t *st, uv_loop_t *loop);
void gh_store_stop(gh_store_t *st);

/* ---- the process's store (a server's main thread) ----
 *
 * A running server has one current store: the one its running config's
 * `store` section names. The authn filter's API-key providers (each
 * snapshot holds a reference) and the admin API use it, so a key the admin
 * API makes is looked up, counted and reported through the same store
 * object (usage counts not yet written included). The server chooses it
 * once per config apply, before building the snapshot, as part of the
 * reload transaction; it is opened on first use (a snapshot whose routes
 * check API keys, or the admin API's first /apikeys request), so that a
 * gateway without API keys makes no state directory or database file.
 * docs/architecture.md#the-store explains the choice.
 *
 * All of these run on the main thread only. */

/* The loop the current store's usage writes run from (gh_store_start).
 * Call once, before the first select. */
void gh_store_current_init(uv_loop_t *loop);
/* Makes conf (copied) the current store's configuration. When the store
 * open now has exactly this configuration it stays current, with its
 * pending usage counts; otherwise the next gh_store_current_get opens the
 * new one. The store before is kept until gh_store_current_commit (drops
 * it) or gh_store_current_rollback (restores it): a reload that fails
 * after this changes nothing. Returns 0 or -ENOMEM. */
int gh_store_current_select(const gh_store_conf_t *conf);
void gh_store_current_commit(void);
void gh_store_current_rollback(void);
/* A new reference to the current store (the caller unrefs it), opened
 * (GH_STORE_CREATE) and its usage writes started if it was not open yet;
 * NULL with err filled when nothing is selected or it cannot be opened
 * (the next call tries again). Blocks for at most the store's open (SQLite:
 * creating the file and its schema waits up to busy_timeout). */
gh_store_t *gh_store_current_get(gh_store_error_t *err);
/* At exit, after the workers stopped: stops the usage writes and writes
 * what is pending (the loop must run after it, to close the timer). */
void gh_store_current_stop(void);
/* Drops the process's reference (holders keep theirs) and the selection. */
void gh_store_current_free(void);

/* ---- synchronous API: CLI and main thread ---- */

typedef struct {
    const char *consumer;    /* required */
    const char *plan;        /* NULL: none */
    const char *scopes;      /* as given ("a,b"); NULL: none */
    const char *description; /* NULL: none */
    int64_t expires_in;      /* seconds from now; 0: never */
} gh_apikey_spec_t;

/* Makes a key for spec: key_out gets the key itself, to show once (the
 * store keeps only its hash); rec (may be NULL) its record (dispose it).
 * -EINVAL when spec is refused. */
int gh_store_key_create(gh_store_t *st, const gh_apikey_spec_t *spec, int64_t now,
                        char key_out[GH_APIKEY_LEN + 1], gh_apikey_t *rec, gh_store_error_t *err);
int gh_store_key_get(gh_store_t *st, const char *id, gh_apikey_t *out, gh_store_error_t *err);
/* Every key, oldest first; consumer non-NULL keeps that consumer's only.
 * *keys is the caller's (gh_apikey_list_free). */
int gh_store_key_list(gh_store_t *st, const char *consumer, gh_apikey_t **keys, size_t *n,
                      gh_store_error_t *err);
/* Revokes at now; effective for every reader of the store from then on
 * (workers that cache lookups: within their cache's bound). -EALREADY
 * when it was revoked before. */
int gh_store_key_revoke(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err);

typedef struct {
    int64_t grace;      /* seconds the old key keeps working (0: stops at once) */
    int64_t expires_in; /* the new key's lifetime in seconds; 0: never;
                           -1: the old key's (expires_at - created_at), or never */
} gh_apikey_rotate_t;

/* A new key for the same consumer, plan, scopes and description; the old
 * key keeps working for opts->grace seconds, then is "replaced". Refused
 * with -EALREADY (a state conflict) for a revoked key or one rotated before
 * (rotate its replacement), -EINVAL for opts out of bounds. The check and
 * both writes are one transaction: two rotations of one key cannot both
 * win (the loser gets -EAGAIN, nothing changed). */
int gh_store_key_rotate(gh_store_t *st, const char *id, const gh_apikey_rotate_t *opts, int64_t now,
                        char key_out[GH_APIKEY_LEN + 1], gh_apikey_t *rec, gh_store_error_t *err);

/* Imports parsed rows (gatehouse/apikey.h) as one transaction: all of them
 * or none. A key already in the store (same value) is updated (consumer,
 * description, plan, enabled), as AWS does on a second import; a revoked
 * one is an error, so an old file cannot bring a revoked key back. */
typedef struct {
    size_t created, updated;
    gh_apikey_csv_error_t *errors; /* rows the store refused (the first
                                      GH_APIKEY_CSV_MAX_ERRORS); caller frees */
    size_t num_errors;             /* in errors[] */
    size_t total_errors;           /* all of them */
} gh_store_import_result_t;

/* Returns 0 when every row went in (or would, with dry_run); -EINVAL when
 * some row was refused (res->errors says which, and nothing was written);
 * another error when the store failed. */
int gh_store_key_import(gh_store_t *st, const gh_apikey_csv_row_t *rows, size_t n, int64_t now,
                        int dry_run, gh_store_import_result_t *res, gh_store_error_t *err);

/* Looks a presented key up synchronously (tests, admin tools): 0 and *out
 * when a key with its id exists and its hash matches, -ENOENT otherwise.
 * The state (revoked, expired...) is the caller's to judge. */
int gh_store_key_find(gh_store_t *st, const gh_apikey_presented_t *p, gh_apikey_t *out,
                      gh_store_error_t *err);

/* The usage of key id on UTC days from_day to to_day (unix time / 86400),
 * one count per day into counts[0 .. to_day - from_day] (zeroed first),
 * including counts not yet written. At most 3660 days. */
int gh_store_usage_get(gh_store_t *st, const char *id, int64_t from_day, int64_t to_day,
                       uint64_t *counts, gh_store_error_t *err);
/* Writes the batched counts now (main thread, CLI, tests). */
int gh_store_usage_flush(gh_store_t *st, gh_store_error_t *err);

/* ---- asynchronous API: workers ---- */

/* The answer to a lookup, on the loop it was started from:
 *   0        a key with p's id exists and its hash matches p's (compared in
 *            constant time); key is its record, borrowed for this call
 *            (copy what you keep). Judge it with gh_apikey_state(key, now).
 *   -ENOENT  no such key, or the hash differs (key NULL): the same answer,
 *            so a caller cannot tell an unknown id from a wrong secret.
 *   other    the store failed; key NULL. The caller decides (fail closed:
 *            503). SQLite: -EIO, -EBUSY. Redis: -ENOTCONN (no connection
 *            up: Redis down, answered on the next turn without waiting),
 *            -ETIMEDOUT (no answer within the store's timeout),
 *            -ECONNRESET (the connection broke), -EIO (an error answer or
 *            a malformed record), -ESHUTDOWN (the loop ended).
 * The request is freed after cb returns: drop your pointer to it in cb. */
typedef void (*gh_store_key_cb)(void *arg, int status, const gh_apikey_t *key);

/* Starts a lookup of p (copied) from a worker. On success returns 0 and
 * *req; cb(arg, ...) then runs exactly once, later, on loop (never from
 * inside this call), unless gh_store_req_cancel(*req) is called first.
 * On failure returns -ENOMEM, or -EAGAIN when conf->max_pending lookups
 * are in flight already (the queue is bounded); cb never runs.
 *
 * A network backend keeps a connection pool per loop, made by the loop's
 * first lookup: a loop that made lookups must be ended with
 * gh_store_loop_end once its owner has closed its handles and run it out,
 * before the loop's memory is reused. */
int gh_store_key_lookup(gh_store_t *st, uv_loop_t *loop, const gh_apikey_presented_t *p,
                        gh_store_key_cb cb, void *arg, gh_store_req_t **req);

/* On the loop's thread, while the request is pending (before cb ran):
 * cb will not run and arg will not be touched again, whatever the work in
 * flight does; the request's memory is the store's to free. A filter calls
 * this from on_cancel (its stream is gone) with arg pointing into the
 * stream's context. */
void gh_store_req_cancel(gh_store_req_t *req);

/* A loop that made lookups has ended: its owner closed every handle (a
 * uv_walk) and ran it until it returned, and no thread runs it any more
 * (a worker's teardown, on the main thread). Releases what every store
 * keeps for that loop (the Redis backend's connections) and finishes the
 * lookups still pending on it with -ESHUTDOWN: callbacks of requests not
 * cancelled run here, on the calling thread. Stores released before keep
 * nothing for it. Any thread but the loop's; idempotent. */
void gh_store_loop_end(uv_loop_t *loop);

/* Counts n uses of key id at now (its UTC day), from any thread, without
 * waiting on the store: shard is the caller's worker id (counts are batched
 * in 8 shards, taken modulo, so workers do not contend). Counts wait in
 * memory for the next write (gh_store_start's timer, gh_store_usage_flush,
 * the last unref). At most GH_STORE_USAGE_PENDING_MAX distinct (key, day)
 * pairs wait per shard; past that, counts of new pairs are dropped and
 * counted (gh_store_usage_dropped). An id that is not a valid id is
 * ignored. loop is for network backends that count directly. */
#define GH_STORE_USAGE_PENDING_MAX 4096u
void gh_store_usage_add(gh_store_t *st, uv_loop_t *loop, unsigned shard, const char *id,
                        int64_t now, uint64_t n);
uint64_t gh_store_usage_dropped(const gh_store_t *st);

/* ---- OAuth clients (docs/issuer.md#clients) ----
 *
 * The same two ways in as keys: the synchronous calls below for the CLI
 * and the admin API, gh_store_client_lookup for the token endpoint on a
 * worker. Errors as above: -ENOENT no such client, -EINVAL refused input
 * (a malformed id too), -EALREADY a state conflict, -EAGAIN a concurrent
 * change won, -EIO the backend failed. */

typedef struct {
    const char *name;      /* required (gh_client_check_name) */
    const char *scopes;    /* spaces and/or commas; NULL: none */
    const char *audiences; /* spaces and/or commas; at least one */
    unsigned auth_methods; /* GH_CLIENT_AUTH_* bits; 0: gh_client_auth_default(jwks != NULL) */
    const char *jwks;      /* JSON text (gh_client_check_jwks), borrowed; NULL: none.
                              Required with private_key_jwt, refused without it. */
    int64_t token_ttl;     /* seconds, 1 to GH_CLIENT_TTL_MAX; 0: the issuer's default */
} gh_client_spec_t;

/* Registers a client. secret_out gets its secret, to show once (the store
 * keeps its hash), or "" when its methods need none (private_key_jwt
 * only); rec (may be NULL) its record (dispose it). */
int gh_store_client_create(gh_store_t *st, const gh_client_spec_t *spec, int64_t now,
                           char secret_out[GH_CLIENT_SECRET_LEN + 1], gh_client_t *rec,
                           gh_store_error_t *err);
int gh_store_client_get(gh_store_t *st, const char *id, gh_client_t *out, gh_store_error_t *err);
/* Every client, oldest first; *out is the caller's (gh_client_list_free). */
int gh_store_client_list(gh_store_t *st, gh_client_t **out, size_t *n, gh_store_error_t *err);
/* Revokes at now: its secrets and keys stop authenticating for every
 * reader of the store (workers: on their next lookup). -EALREADY when it
 * was revoked before. Tokens it holds stay valid until they expire unless
 * revoked by jti (below). */
int gh_store_client_revoke(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err);
/* A new secret; the one it replaces keeps working for grace seconds (0 to
 * GH_CLIENT_GRACE_MAX; 0: stops at once). A secret older than that one
 * (still in the grace of an earlier rotation) stops at once: at most two
 * secrets work at any time. -EALREADY for a revoked client, -EINVAL for
 * one without a secret (private_key_jwt only). Compare-and-set on the
 * current secret: of two rotations at once, one wins; the other gets
 * -EAGAIN and changes nothing. */
int gh_store_client_rotate_secret(gh_store_t *st, const char *id, int64_t grace, int64_t now,
                                  char secret_out[GH_CLIENT_SECRET_LEN + 1], gh_client_t *rec,
                                  gh_store_error_t *err);

/* The answer to a client lookup, on the loop it was started from:
 *   0        c is the client's record, hashes included, borrowed for this
 *            call. Judge it: gh_client_state (revoked), the methods, and
 *            gh_client_secret_check for a presented secret.
 *   -ENOENT  no such client (c NULL).
 *   other    the store failed, as for key lookups (fail closed: 503 /
 *            RFC 6749's temporarily_unavailable is not defined for the
 *            token endpoint: answer 503). c NULL.
 * The request is freed after cb returns. */
typedef void (*gh_store_client_cb)(void *arg, int status, const gh_client_t *c);

/* Starts a lookup of client id (copied; gh_client_id_valid, else -EINVAL
 * at once) from a worker: the same contract as gh_store_key_lookup (cb
 * once, later, on loop, unless gh_store_req_cancel; -EAGAIN at
 * conf->max_pending lookups of any kind in flight; -ENOMEM). */
int gh_store_client_lookup(gh_store_t *st, uv_loop_t *loop, const char *id, gh_store_client_cb cb,
                           void *arg, gh_store_req_t **req);

/* ---- revoked access tokens (RFC 7009; docs/issuer.md#revocation) ----
 *
 * A revocation is (jti, exp): the token with that jti is refused until
 * exp, after which it is refused anyway and the store forgets it. Every
 * revocation gets a sequence number, increasing in the order they were
 * made, so a process keeps up with every other gatehouse sharing the store
 * by asking only for what came after the last number it saw. */

#define GH_REVOCATION_JTI_MAX 128 /* bytes of printable ASCII (0x21..0x7e) */
#define GH_REVOCATIONS_MAX 10000  /* entries per gh_store_revocations_since call */

typedef struct {
    uint64_t seq;
    int64_t exp;
    char jti[GH_REVOCATION_JTI_MAX + 1];
} gh_revocation_t;

/* 1 when jti is 1..128 bytes of printable ASCII without spaces. */
int gh_revocation_jti_valid(const char *jti);

/* Revokes jti until exp. 0 when recorded; -EALREADY when it was (the
 * first stands: a jti's exp is the token's); 0 without writing anything
 * when exp <= now (the token has expired: nothing to refuse); -EINVAL for
 * a malformed jti or an exp more than GH_REVOCATION_EXP_MAX ahead.
 * Purges revocations that expired before now, a bounded number per call.
 * Thread-safe: besides the main thread and the CLI, a worker may run it
 * on the thread pool (gh_store_revocation_add_async). */
#define GH_REVOCATION_EXP_MAX (366LL * 86400)
int gh_store_revocation_add(gh_store_t *st, const char *jti, int64_t exp, int64_t now,
                            gh_store_error_t *err);

/* The revocations numbered after `after` (0: from the start) that have
 * not expired at now, oldest first, at most max (1 to GH_REVOCATIONS_MAX)
 * of those looked at: *out (caller frees; NULL when *n is 0), *n, and
 * *next, the number to pass next time (the last looked at, expired ones
 * included, so they are not looked at again). *more is 1 when there may be
 * more at once (call again with *next before waiting). When the store's
 * numbers went back (a Redis that lost its data, a file restored from a
 * backup), after > the last number made: the feed is read from the start
 * again. Thread-safe; blocks as the synchronous API: a server's poller runs
 * it on the thread pool, not on a loop. */
int gh_store_revocations_since(gh_store_t *st, uint64_t after, int64_t now, size_t max,
                               gh_revocation_t **out, size_t *n, uint64_t *next, int *more,
                               gh_store_error_t *err);

/* Forgets revocations whose exp <= now: the number forgotten (>= 0), or a
 * negative errno. gh_store_revocation_add purges too; this is for a timer. */
int gh_store_revocations_purge(gh_store_t *st, int64_t now, gh_store_error_t *err);

/* gh_store_revocation_add from a worker: run on the libuv thread pool, the
 * answer (its status) on loop, later, exactly once unless cancelled
 * (gh_store_req_cancel), as for lookups. Counts against max_pending. */
typedef void (*gh_store_status_cb)(void *arg, int status);
int gh_store_revocation_add_async(gh_store_t *st, uv_loop_t *loop, const char *jti, int64_t exp,
                                  int64_t now, gh_store_status_cb cb, void *arg,
                                  gh_store_req_t **req);

/* ---- client-assertion claims (RFC 7523 section 3; docs/issuer.md) ----
 *
 * A private_key_jwt client assertion must be taken once: its jti (per
 * client) is claimed in the store until the assertion stops being valid,
 * so that every gatehouse sharing the store refuses it a second time. */

#define GH_STORE_JTI_MAX 256             /* bytes of printable ASCII (0x20..0x7e) */
#define GH_STORE_JTI_UNTIL_MAX (86400LL) /* until - now at most: a day */

/* 1 when jti is 1..GH_STORE_JTI_MAX bytes of printable ASCII (spaces
 * allowed). */
int gh_store_jti_valid(const char *jti);

/* Claims (client_id, jti) until `until` (unix seconds, the assertion's
 * exp plus the leeway allowed on it). 0 when newly claimed (also when a
 * claim of it had passed: re-claimed); -EEXIST when it was claimed before
 * and until has not passed (a replay); 0 without writing anything when
 * until <= now (the assertion is dead: nothing could replay it); -EINVAL
 * for a malformed client id (gh_client_id_valid) or jti, or an until more
 * than GH_STORE_JTI_UNTIL_MAX ahead; -EIO (-EBUSY: SQLite's write lock)
 * when the backend failed: the claim may or may not have been made, so a
 * caller answers as for a replay or fails closed, never as claimed.
 * Claims that passed are forgotten: SQLite purges a bounded number
 * (GH_STORE_PURGE_BATCH) per call, Redis expires each by itself. The
 * synchronous call blocks as the synchronous API; thread-safe. */
int gh_store_jti_claim(gh_store_t *st, const char *client_id, const char *jti, int64_t until,
                       int64_t now, gh_store_error_t *err);

/* gh_store_jti_claim from a worker: the answer (its status as above, or
 * -ENOTCONN, -ETIMEDOUT, -ECONNRESET, -ESHUTDOWN from Redis as for
 * lookups) on loop, later, exactly once unless cancelled
 * (gh_store_req_cancel). SQLite runs it on the libuv thread pool; Redis
 * sends one SET NX PX on the loop's connection. client_id and jti are
 * copied. Returns 0 and *req, or -EINVAL (bad input, as above), -EAGAIN
 * (max_pending requests in flight), -ENOMEM; cb never runs then. */
int gh_store_jti_claim_async(gh_store_t *st, uv_loop_t *loop, const char *client_id,
                             const char *jti, int64_t until, int64_t now, gh_store_status_cb cb,
                             void *arg, gh_store_req_t **req);

#endif
