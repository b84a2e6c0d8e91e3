/*
 * The SQLite backend: one file, shared by a running server and the CLI.
 *
 * - WAL mode, so readers (lookups) never wait for a writer (the CLI
 *   revoking a key) and the writer never waits for readers; writers wait
 *   for each other up to busy_timeout. synchronous=FULL: a revocation that
 *   was reported done survives a power cut.
 * - The schema is versioned with PRAGMA user_version and created on first
 *   open inside BEGIN IMMEDIATE, so two processes opening a new file at
 *   once do not both create it; application_id marks the file as
 *   gatehouse's, so a path pointing at some other database is refused.
 * - One write connection (the synchronous API and usage writes, behind a
 *   mutex) and a pool of read connections for lookups, which run on the
 *   libuv thread pool: a connection is taken by one job at a time, so the
 *   pool grows to the number of jobs running at once (at most the thread
 *   pool's size, UV_THREADPOOL_SIZE, 4 by default) and no further.
 * - Each lookup is one statement, reset at once: a read transaction never
 *   stays open, so it sees every write committed before it started and
 *   never holds back a checkpoint.
 *
 * Schema (version 3; a version 1 or 2 file is migrated when opened):
 * docs/internals/store.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include <gatehouse/log.h>

#include "store/backend.h"

#define SCHEMA_VERSION 3
#define APPLICATION_ID 0x47484b53 /* "GHKS" */
#define POOL_MAX 64               /* idle read connections kept */

static const char schema_v1[] =
    "CREATE TABLE api_keys ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " hash BLOB NOT NULL CHECK (length(hash) = 32),"
    " consumer TEXT NOT NULL,"
    " plan TEXT,"
    " scopes TEXT NOT NULL DEFAULT '',"
    " description TEXT NOT NULL DEFAULT '',"
    " enabled INTEGER NOT NULL DEFAULT 1,"
    " source TEXT NOT NULL CHECK (source IN ('generated', 'aws-import')),"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER,"
    " revoked_at INTEGER,"
    " grace_until INTEGER,"
    " replaced_by TEXT"
    ") WITHOUT ROWID;"
    "CREATE INDEX api_keys_consumer ON api_keys (consumer);"
    "CREATE TABLE api_key_usage ("
    " key_id TEXT NOT NULL,"
    " day INTEGER NOT NULL,"
    " count INTEGER NOT NULL,"
    " PRIMARY KEY (key_id, day)"
    ") WITHOUT ROWID;";

/* Version 2: OAuth clients and revoked access tokens. Added to a version 1
 * file by the migration (schema_check), and to a new one after schema_v1. */
static const char schema_v2[] =
    "CREATE TABLE oauth_clients ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " scopes TEXT NOT NULL DEFAULT '',"
    " audiences TEXT NOT NULL,"
    " auth_methods TEXT NOT NULL,"
    " jwks TEXT,"
    " token_ttl INTEGER,"
    " secret_hash BLOB CHECK (secret_hash IS NULL OR length(secret_hash) = 32),"
    " prev_secret_hash BLOB CHECK (prev_secret_hash IS NULL OR length(prev_secret_hash) = 32),"
    " prev_valid_until INTEGER,"
    " secret_rotated_at INTEGER,"
    " created_at INTEGER NOT NULL,"
    " revoked_at INTEGER"
    ") WITHOUT ROWID;"
    "CREATE TABLE token_revocations ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " jti TEXT NOT NULL UNIQUE,"
    " exp INTEGER NOT NULL,"
    " revoked_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX token_revocations_exp ON token_revocations (exp);";

/* Version 3: claimed client-assertion jtis (gh_store_jti_claim). */
static const char schema_v3[] = "CREATE TABLE jti_claims ("
                                " client_id TEXT NOT NULL,"
                                " jti TEXT NOT NULL,"
                                " until INTEGER NOT NULL,"
                                " claimed_at INTEGER NOT NULL,"
                                " UNIQUE (client_id, jti)"
                                ");"
                                "CREATE INDEX jti_claims_until ON jti_claims (until);";

/* The steps from version i - 1 to i, at [i - 1]; a new file runs them all. */
static const char *const schema_steps[SCHEMA_VERSION] = {schema_v1, schema_v2, schema_v3};

#define CLIENT_COLUMNS                                                                             \
    "id, name, scopes, audiences, auth_methods, jwks, token_ttl, created_at, revoked_at, "         \
    "secret_hash, prev_secret_hash, prev_valid_until, secret_rotated_at"

#define KEY_COLUMNS                                                                                \
    "id, consumer, plan, scopes, description, enabled, source, created_at, expires_at, "           \
    "revoked_at, grace_until, replaced_by, hash"

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *lookup;
    sqlite3_stmt *client; /* prepared on first use */
} reader_t;

typedef struct {
    char *path;
    int busy_ms;
    uv_mutex_t wlock; /* the write connection */
    sqlite3 *w;
    uv_mutex_t plock; /* the idle readers */
    reader_t *idle[POOL_MAX];
    size_t num_idle;
} sq_t;

/* A lookup's state, after its gh_store_req_t. */
typedef struct {
    uv_work_t work;
    gh_store_req_t *req;
    int status;
    gh_apikey_t rec;
    gh_client_t client;
    uint8_t hash[GH_APIKEY_HASH_LEN];
    char why[256];
} sq_req_t;

static sq_t *impl(gh_store_t *st)
{
    return st->impl;
}

static int db_fail(gh_store_error_t *err, sqlite3 *db, const char *what)
{
    int code = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
    int rc = (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED ? -EBUSY : -EIO;
    return gh_store_fail(err, rc, "%s: %s%s", what, db ? sqlite3_errmsg(db) : "out of memory",
                         rc == -EBUSY ? " (another process holds the store's write lock)" : "");
}

static int exec(sqlite3 *db, const char *sql, gh_store_error_t *err, const char *what)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(err, db, what);
    return 0;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* ---- opening ---- */

static int open_conn(const char *path, int flags, int busy_ms, sqlite3 **out, gh_store_error_t *err)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int e = db_fail(err, db, path);
        sqlite3_close(db);
        return e;
    }
    sqlite3_busy_timeout(db, busy_ms);
    sqlite3_extended_result_codes(db, 1);
    *out = db;
    return 0;
}

/* Creates the schema on a new file, or checks an existing one's. */
static int schema_check(sqlite3 *db, const char *path, gh_store_error_t *err)
{
    int64_t version = 0, app = 0, tables = 0;
    if (pragma_int(db, "PRAGMA user_version", &version) != 0 ||
        pragma_int(db, "PRAGMA application_id", &app) != 0)
        return db_fail(err, db, path);
    if (version == SCHEMA_VERSION && app == APPLICATION_ID)
        return 0;
    int rc = exec(db, "BEGIN IMMEDIATE", err, path);
    if (rc != 0)
        return rc;
    /* again, under the write lock: another process may have made it */
    if (pragma_int(db, "PRAGMA user_version", &version) != 0 ||
        pragma_int(db, "PRAGMA application_id", &app) != 0 ||
        pragma_int(db, "SELECT count(*) FROM sqlite_schema", &tables) != 0) {
        rc = db_fail(err, db, path);
        goto out;
    }
    if (app != 0 && app != APPLICATION_ID) {
        rc = gh_store_fail(err, -EINVAL,
                           "%s is not a gatehouse store (another application's "
                           "SQLite database)",
                           path);
        goto out;
    }
    if (version > SCHEMA_VERSION) {
        rc = gh_store_fail(err, -EINVAL,
                           "%s has store schema version %lld, newer than this gatehouse's (%d)",
                           path, (long long)version, SCHEMA_VERSION);
        goto out;
    }
    if (version == SCHEMA_VERSION && app == APPLICATION_ID)
        goto out;
    char sql[64];
    if (version >= 1 && app == APPLICATION_ID) {
        /* Each step adds tables and changes none, all in this one
         * transaction: a process that opened the file before (an older
         * server) goes on reading what it knows as before. */
        for (int64_t v = version; v < SCHEMA_VERSION; v++)
            if ((rc = exec(db, schema_steps[v], err, path)) != 0)
                goto out;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
        if ((rc = exec(db, sql, err, path)) != 0)
            goto out;
        GH_LOG(GH_LOG_INFO, "store", "%s: store schema migrated from version %lld to %d", path,
               (long long)version, SCHEMA_VERSION);
        return exec(db, "COMMIT", err, path);
    }
    if (version != 0 || tables != 0) {
        rc = gh_store_fail(err, -EINVAL, "%s is not a gatehouse store (it has other tables)", path);
        goto out;
    }
    for (int v = 0; v < SCHEMA_VERSION; v++)
        if ((rc = exec(db, schema_steps[v], err, path)) != 0)
            goto out;
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
    if ((rc = exec(db, sql, err, path)) != 0)
        goto out;
    snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", APPLICATION_ID);
    if ((rc = exec(db, sql, err, path)) != 0)
        goto out;
    return exec(db, "COMMIT", err, path);
out:
    sqlite3_exec(db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* The file, made readable by this user only (it holds key hashes and
 * consumers; SQLite gives its -wal and -shm files the same mode). */
static int prepare_file(const gh_store_conf_t *c, int create, gh_store_error_t *err)
{
    struct stat st;
    if (stat(c->path, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return gh_store_fail(err, -EINVAL, "%s is not a regular file", c->path);
        return 0;
    }
    if (errno != ENOENT)
        return gh_store_fail(err, -errno, "%s: %s", c->path, strerror(errno));
    if (!create)
        return gh_store_fail(err, -ENOENT, "no store at %s (creating or importing a key makes it)",
                             c->path);
    if (c->path_is_default && c->state_dir != NULL && mkdir(c->state_dir, 0700) != 0 &&
        errno != EEXIST)
        return gh_store_fail(err, -errno, "cannot make the state directory %s: %s", c->state_dir,
                             strerror(errno));
    int fd = open(c->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno != EEXIST)
        return gh_store_fail(err, -errno, "cannot create %s: %s", c->path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return 0;
}

static void sq_free(sq_t *q)
{
    for (size_t i = 0; i < q->num_idle; i++) {
        sqlite3_finalize(q->idle[i]->lookup);
        sqlite3_finalize(q->idle[i]->client);
        sqlite3_close(q->idle[i]->db);
        free(q->idle[i]);
    }
    sqlite3_close(q->w);
    uv_mutex_destroy(&q->wlock);
    uv_mutex_destroy(&q->plock);
    free(q->path);
    free(q);
}

static int sq_open(gh_store_t *st, int flags, gh_store_error_t *err)
{
    const gh_store_conf_t *c = &st->conf;
    int rc;
    if (sqlite3_threadsafe() == 0)
        return gh_store_fail(err, -ENOTSUP, "this SQLite library is built without threads");
    sq_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    if (uv_mutex_init(&q->wlock) != 0) {
        free(q);
        return gh_store_fail(err, -ENOMEM, "out of memory");
    }
    if (uv_mutex_init(&q->plock) != 0) {
        uv_mutex_destroy(&q->wlock);
        free(q);
        return gh_store_fail(err, -ENOMEM, "out of memory");
    }
    q->busy_ms = (int)c->busy_timeout_ms;
    if ((q->path = strdup(c->path)) == NULL) {
        rc = gh_store_fail(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = prepare_file(c, flags & GH_STORE_CREATE, err)) != 0 ||
        (rc = open_conn(c->path, SQLITE_OPEN_READWRITE, q->busy_ms, &q->w, err)) != 0)
        goto fail;
    /* WAL is a property of the file: set once, every later connection of
     * every process uses it. */
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(q->w, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, c->path);
        goto fail;
    }
    int step = sqlite3_step(s);
    const char *mode = step == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
    int wal = mode != NULL && strcmp(mode, "wal") == 0;
    sqlite3_finalize(s);
    if (!wal) {
        rc = step == SQLITE_ROW ? gh_store_fail(err, -EIO, "%s: cannot use WAL mode", c->path)
                                : db_fail(err, q->w, c->path);
        goto fail;
    }
    if ((rc = exec(q->w, "PRAGMA synchronous = FULL", err, c->path)) != 0 ||
        (rc = schema_check(q->w, c->path, err)) != 0)
        goto fail;
    st->impl = q;
    return 0;
fail:
    sq_free(q);
    return rc;
}

static void sq_close(gh_store_t *st)
{
    sq_free(impl(st));
    st->impl = NULL;
}

/* ---- rows ---- */

static char *col_dup(sqlite3_stmt *s, int i, int null_ok)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    if (t == NULL)
        return null_ok ? NULL : strdup("");
    return strdup((const char *)t);
}

/* The columns of KEY_COLUMNS into k (strings new), and the hash. */
static int row_to_key(sqlite3_stmt *s, gh_apikey_t *k, uint8_t *hash)
{
    memset(k, 0, sizeof(*k));
    const unsigned char *id = sqlite3_column_text(s, 0);
    if (id != NULL)
        snprintf(k->id, sizeof(k->id), "%s", (const char *)id);
    k->consumer = col_dup(s, 1, 0);
    k->plan = col_dup(s, 2, 1);
    k->scopes = col_dup(s, 3, 0);
    k->description = col_dup(s, 4, 0);
    k->enabled = sqlite3_column_int(s, 5) != 0;
    const unsigned char *src = sqlite3_column_text(s, 6);
    k->source = src != NULL && strcmp((const char *)src, "aws-import") == 0 ? GH_APIKEY_IMPORTED
                                                                            : GH_APIKEY_GENERATED;
    k->created_at = sqlite3_column_int64(s, 7);
    k->expires_at = sqlite3_column_int64(s, 8);
    k->revoked_at = sqlite3_column_int64(s, 9);
    k->grace_until = sqlite3_column_int64(s, 10);
    const unsigned char *rb = sqlite3_column_text(s, 11);
    if (rb != NULL)
        snprintf(k->replaced_by, sizeof(k->replaced_by), "%s", (const char *)rb);
    int bad = k->consumer == NULL || k->scopes == NULL || k->description == NULL ||
              (sqlite3_column_type(s, 2) != SQLITE_NULL && k->plan == NULL);
    if (hash != NULL) {
        const void *h = sqlite3_column_blob(s, 12);
        if (h == NULL || sqlite3_column_bytes(s, 12) != GH_APIKEY_HASH_LEN)
            memset(hash, 0, GH_APIKEY_HASH_LEN); /* matches no key's hash */
        else
            memcpy(hash, h, GH_APIKEY_HASH_LEN);
    }
    if (bad) {
        gh_apikey_dispose(k);
        return -ENOMEM;
    }
    return 0;
}

static void bind_opt_int(sqlite3_stmt *s, int i, int64_t v)
{
    if (v == 0)
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_int64(s, i, v);
}

static void bind_opt_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v == NULL)
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static int insert_key(sqlite3 *db, const gh_apikey_t *k, const uint8_t *hash, gh_store_error_t *err)
{
    static const char sql[] =
        "INSERT INTO api_keys (id, hash, consumer, plan, scopes, description, enabled, source, "
        "created_at, expires_at, revoked_at, grace_until, replaced_by) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, NULL, NULL)";
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_fail(err, db, "insert");
    sqlite3_bind_text(s, 1, k->id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, hash, GH_APIKEY_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, k->consumer, -1, SQLITE_STATIC);
    bind_opt_text(s, 4, k->plan);
    sqlite3_bind_text(s, 5, k->scopes ? k->scopes : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, k->description ? k->description : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 7, k->enabled ? 1 : 0);
    sqlite3_bind_text(s, 8, k->source == GH_APIKEY_IMPORTED ? "aws-import" : "generated", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, k->created_at);
    bind_opt_int(s, 10, k->expires_at);
    int rc = sqlite3_step(s);
    int ext = sqlite3_extended_errcode(db);
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return gh_store_fail(err, -EEXIST, "key id %s is taken", k->id);
    return db_fail(err, db, "insert");
}

/* ---- synchronous hooks (under wlock) ---- */

static int sq_key_insert(gh_store_t *st, const gh_apikey_t *k, const uint8_t *hash,
                         gh_store_error_t *err)
{
    sq_t *q = impl(st);
    uv_mutex_lock(&q->wlock);
    int rc = insert_key(q->w, k, hash, err);
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int get_locked(sqlite3 *db, const char *id, gh_apikey_t *out, uint8_t *hash,
                      gh_store_error_t *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = ?1", -1, &s,
                           NULL) != SQLITE_OK)
        return db_fail(err, db, "get");
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s), rc;
    if (step == SQLITE_ROW)
        rc = row_to_key(s, out, hash) == 0 ? 0 : gh_store_fail(err, -ENOMEM, "out of memory");
    else if (step == SQLITE_DONE)
        rc = gh_store_fail(err, -ENOENT, "no key with id %s", id);
    else
        rc = db_fail(err, db, "get");
    sqlite3_finalize(s);
    return rc;
}

static int sq_key_get(gh_store_t *st, const char *id, gh_apikey_t *out, uint8_t *hash,
                      gh_store_error_t *err)
{
    sq_t *q = impl(st);
    uv_mutex_lock(&q->wlock);
    int rc = get_locked(q->w, id, out, hash, err);
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int sq_key_list(gh_store_t *st, const char *consumer, gh_apikey_t **keys, size_t *n,
                       gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *s;
    gh_apikey_t *all = NULL;
    size_t cap = 0, count = 0;
    int rc = 0, step;
    uv_mutex_lock(&q->wlock);
    if (sqlite3_prepare_v2(q->w,
                           consumer ? "SELECT " KEY_COLUMNS " FROM api_keys WHERE consumer = ?1 "
                                      "ORDER BY created_at, id"
                                    : "SELECT " KEY_COLUMNS " FROM api_keys "
                                      "ORDER BY created_at, id",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "list");
        uv_mutex_unlock(&q->wlock);
        return rc;
    }
    if (consumer != NULL)
        sqlite3_bind_text(s, 1, consumer, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            gh_apikey_t *nk = realloc(all, ncap * sizeof(*nk));
            if (nk == NULL) {
                rc = gh_store_fail(err, -ENOMEM, "out of memory");
                break;
            }
            all = nk;
            cap = ncap;
        }
        if (row_to_key(s, &all[count], NULL) != 0) {
            rc = gh_store_fail(err, -ENOMEM, "out of memory");
            break;
        }
        count++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_fail(err, q->w, "list");
    sqlite3_finalize(s);
    uv_mutex_unlock(&q->wlock);
    if (rc != 0) {
        gh_apikey_list_free(all, count);
        return rc;
    }
    *keys = all;
    *n = count;
    return 0;
}

/* Runs one UPDATE with an id as ?1 and an integer as ?2: the rows it
 * changed, or a negative errno. */
static int update_id_int(sqlite3 *db, const char *sql, const char *id, int64_t v,
                         gh_store_error_t *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_fail(err, db, "update");
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, v);
    int step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE)
        return db_fail(err, db, "update");
    return sqlite3_changes(db);
}

static int sq_key_revoke(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    uv_mutex_lock(&q->wlock);
    int rc = update_id_int(q->w,
                           "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS "
                           "NULL",
                           id, now, err);
    if (rc == 0) {
        gh_apikey_t k;
        rc = get_locked(q->w, id, &k, NULL, err);
        if (rc == 0) {
            gh_apikey_dispose(&k);
            rc = gh_store_fail(err, -EALREADY, "key %s was revoked before", id);
        }
    } else if (rc > 0) {
        rc = 0;
    }
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int sq_key_rotate(gh_store_t *st, const char *old_id, int64_t grace_until,
                         const gh_apikey_t *nk, const uint8_t *hash, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *s = NULL;
    int rc;
    uv_mutex_lock(&q->wlock);
    if ((rc = exec(q->w, "BEGIN IMMEDIATE", err, "rotate")) != 0)
        goto unlock;
    if (sqlite3_prepare_v2(q->w,
                           "UPDATE api_keys SET replaced_by = ?2, grace_until = ?3 WHERE id = ?1 "
                           "AND revoked_at IS NULL AND replaced_by IS NULL",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "rotate");
        goto out;
    }
    sqlite3_bind_text(s, 1, old_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, nk->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, grace_until);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_fail(err, q->w, "rotate");
        goto out;
    }
    if (sqlite3_changes(q->w) != 1) {
        rc = -ESTALE;
        goto out;
    }
    rc = insert_key(q->w, nk, hash, err);
out:
    sqlite3_finalize(s);
    if (rc == 0)
        rc = exec(q->w, "COMMIT", err, "rotate");
    if (rc != 0)
        sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
unlock:
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int import_row(sqlite3 *db, sqlite3_stmt *find, sqlite3_stmt *upd,
                      const gh_store_import_row_t *r, int64_t now, gh_store_import_result_t *res,
                      gh_store_error_t *err)
{
    sqlite3_reset(find);
    sqlite3_bind_text(find, 1, r->id, -1, SQLITE_STATIC);
    int step = sqlite3_step(find);
    if (step == SQLITE_ROW) {
        const void *h = sqlite3_column_blob(find, 0);
        int same = h != NULL && sqlite3_column_bytes(find, 0) == GH_APIKEY_HASH_LEN &&
                   CRYPTO_memcmp(h, r->hash, GH_APIKEY_HASH_LEN) == 0;
        int revoked = sqlite3_column_type(find, 1) != SQLITE_NULL;
        sqlite3_reset(find);
        if (!same)
            return gh_store_import_error(
                res, r->line, "the key's id %s is taken by another key already in the store",
                r->id);
        if (revoked)
            return gh_store_import_error(
                res, r->line,
                "this key (id %s) is in the store and revoked: it cannot be "
                "imported again",
                r->id);
        sqlite3_reset(upd);
        sqlite3_bind_text(upd, 1, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(upd, 2, r->consumer, -1, SQLITE_STATIC);
        sqlite3_bind_text(upd, 3, r->description, -1, SQLITE_STATIC);
        bind_opt_text(upd, 4, r->plan);
        sqlite3_bind_int(upd, 5, r->enabled ? 1 : 0);
        if (sqlite3_step(upd) != SQLITE_DONE)
            return db_fail(err, db, "import");
        res->updated++;
        return 0;
    }
    sqlite3_reset(find);
    if (step != SQLITE_DONE)
        return db_fail(err, db, "import");
    gh_apikey_t k = {
        .consumer = (char *)r->consumer,
        .plan = (char *)r->plan,
        .scopes = (char *)"",
        .description = (char *)r->description,
        .enabled = r->enabled,
        .source = GH_APIKEY_IMPORTED,
        .created_at = now,
    };
    memcpy(k.id, r->id, sizeof(k.id));
    int rc = insert_key(db, &k, r->hash, err);
    if (rc == 0)
        res->created++;
    return rc;
}

static int sq_key_import(gh_store_t *st, const gh_store_import_row_t *rows, size_t n, int64_t now,
                         int dry_run, gh_store_import_result_t *res, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *find = NULL, *upd = NULL;
    int rc;
    uv_mutex_lock(&q->wlock);
    if ((rc = exec(q->w, "BEGIN IMMEDIATE", err, "import")) != 0)
        goto unlock;
    if (sqlite3_prepare_v2(q->w, "SELECT hash, revoked_at FROM api_keys WHERE id = ?1", -1, &find,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->w,
                           "UPDATE api_keys SET consumer = ?2, description = ?3, plan = ?4, "
                           "enabled = ?5 WHERE id = ?1",
                           -1, &upd, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "import");
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = import_row(q->w, find, upd, &rows[i], now, res, err);
    if (rc == 0 && res->total_errors != 0)
        rc = gh_store_fail(err, -EINVAL, "%zu rows refused by the store; nothing was imported",
                           res->total_errors);
out:
    sqlite3_finalize(find);
    sqlite3_finalize(upd);
    if (rc == 0 && !dry_run)
        rc = exec(q->w, "COMMIT", err, "import");
    else
        sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
    if (rc != 0) {
        res->created = res->updated = 0;
        if (rc == -ENOMEM)
            gh_store_fail(err, rc, "out of memory");
    }
unlock:
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int sq_usage_write(gh_store_t *st, const gh_store_usage_entry_t *e, size_t n,
                          gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *s = NULL;
    int rc;
    uv_mutex_lock(&q->wlock);
    if ((rc = exec(q->w, "BEGIN IMMEDIATE", err, "usage")) != 0)
        goto unlock;
    if (sqlite3_prepare_v2(q->w,
                           "INSERT INTO api_key_usage (key_id, day, count) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT (key_id, day) DO UPDATE SET count = min(count + "
                           "excluded.count, 9223372036854775807)",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "usage");
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, e[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, e[i].day);
        sqlite3_bind_int64(s, 3, e[i].count > INT64_MAX ? INT64_MAX : (int64_t)e[i].count);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = db_fail(err, q->w, "usage");
    }
out:
    sqlite3_finalize(s);
    if (rc == 0)
        rc = exec(q->w, "COMMIT", err, "usage");
    if (rc != 0)
        sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
unlock:
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int sq_usage_get(gh_store_t *st, const char *id, int64_t from_day, int64_t to_day,
                        uint64_t *counts, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *s;
    int rc = 0, step;
    uv_mutex_lock(&q->wlock);
    if (sqlite3_prepare_v2(q->w,
                           "SELECT day, count FROM api_key_usage WHERE key_id = ?1 AND day "
                           "BETWEEN ?2 AND ?3",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "usage");
        uv_mutex_unlock(&q->wlock);
        return rc;
    }
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, from_day);
    sqlite3_bind_int64(s, 3, to_day);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t day = sqlite3_column_int64(s, 0), c = sqlite3_column_int64(s, 1);
        if (day >= from_day && day <= to_day && c > 0)
            counts[day - from_day] += (uint64_t)c;
    }
    if (step != SQLITE_DONE)
        rc = db_fail(err, q->w, "usage");
    sqlite3_finalize(s);
    uv_mutex_unlock(&q->wlock);
    return rc;
}

/* ---- OAuth clients ---- */

static void bind_hash(sqlite3_stmt *s, int i, const uint8_t *h, int present)
{
    if (present)
        sqlite3_bind_blob(s, i, h, GH_CLIENT_HASH_LEN, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* A hash column into out: zeros (matching no secret) when NULL or not
 * 32 bytes; returns 1 when it held a hash. */
static int col_hash(sqlite3_stmt *s, int i, uint8_t *out)
{
    const void *h = sqlite3_column_blob(s, i);
    if (h == NULL || sqlite3_column_bytes(s, i) != GH_CLIENT_HASH_LEN) {
        memset(out, 0, GH_CLIENT_HASH_LEN);
        return 0;
    }
    memcpy(out, h, GH_CLIENT_HASH_LEN);
    return 1;
}

/* The columns of CLIENT_COLUMNS into c (strings new): 0, -ENOMEM, or
 * -EIO with *why (a value that does not read: refused, never guessed). */
static int row_to_client(sqlite3_stmt *s, gh_client_t *c, const char **why)
{
    memset(c, 0, sizeof(*c));
    *why = NULL;
    const unsigned char *id = sqlite3_column_text(s, 0);
    if (id == NULL || !gh_client_id_valid((const char *)id)) {
        *why = "the id is not a client id";
        return -EIO;
    }
    memcpy(c->id, id, GH_CLIENT_ID_LEN + 1);
    c->name = col_dup(s, 1, 0);
    c->scopes = col_dup(s, 2, 0);
    c->audiences = col_dup(s, 3, 0);
    c->jwks = col_dup(s, 5, 1);
    if (c->name == NULL || c->scopes == NULL || c->audiences == NULL ||
        (sqlite3_column_type(s, 5) != SQLITE_NULL && c->jwks == NULL)) {
        gh_client_dispose(c);
        return -ENOMEM;
    }
    const unsigned char *m = sqlite3_column_text(s, 4);
    if (m == NULL || gh_client_auth_parse((const char *)m, &c->auth_methods, why) != 0 ||
        c->auth_methods == 0) {
        *why = "auth_methods does not read";
        gh_client_dispose(c);
        return -EIO;
    }
    c->token_ttl = sqlite3_column_int64(s, 6);
    c->created_at = sqlite3_column_int64(s, 7);
    c->revoked_at = sqlite3_column_int64(s, 8);
    c->has_secret = col_hash(s, 9, c->secret_hash);
    col_hash(s, 10, c->prev_secret_hash);
    c->prev_valid_until = sqlite3_column_int64(s, 11);
    c->secret_rotated_at = sqlite3_column_int64(s, 12);
    if (c->has_secret != ((c->auth_methods & GH_CLIENT_AUTH_SECRET) != 0)) {
        *why = "its secret and its methods disagree";
        gh_client_dispose(c);
        return -EIO;
    }
    return 0;
}

static int client_row_fail(gh_store_t *st, gh_store_error_t *err, const char *id, int rc,
                           const char *why)
{
    if (rc == -ENOMEM)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    GH_LOG(GH_LOG_ERROR, "store", "%s: client %s: malformed record: %s", gh_store_describe(st), id,
           why);
    return gh_store_fail(err, -EIO, "%s: client %s: malformed record: %s", gh_store_describe(st),
                         id, why);
}

static int sq_client_insert(gh_store_t *st, const gh_client_t *c, gh_store_error_t *err)
{
    static const char sql[] =
        "INSERT INTO oauth_clients (id, name, scopes, audiences, auth_methods, jwks, token_ttl, "
        "secret_hash, prev_secret_hash, prev_valid_until, secret_rotated_at, created_at, "
        "revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, NULL, ?9, NULL)";
    sq_t *q = impl(st);
    sqlite3_stmt *s;
    char methods[64];
    uv_mutex_lock(&q->wlock);
    if (sqlite3_prepare_v2(q->w, sql, -1, &s, NULL) != SQLITE_OK) {
        int rc = db_fail(err, q->w, "insert client");
        uv_mutex_unlock(&q->wlock);
        return rc;
    }
    sqlite3_bind_text(s, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, c->scopes ? c->scopes : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, c->audiences, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, gh_client_auth_format(c->auth_methods, methods, sizeof(methods)), -1,
                      SQLITE_STATIC);
    bind_opt_text(s, 6, c->jwks);
    bind_opt_int(s, 7, c->token_ttl);
    bind_hash(s, 8, c->secret_hash, c->has_secret);
    sqlite3_bind_int64(s, 9, c->created_at);
    int step = sqlite3_step(s);
    int ext = sqlite3_extended_errcode(q->w);
    sqlite3_finalize(s);
    int rc = 0;
    if (step != SQLITE_DONE)
        rc = ext == SQLITE_CONSTRAINT_PRIMARYKEY
                 ? gh_store_fail(err, -EEXIST, "client id %s is taken", c->id)
                 : db_fail(err, q->w, "insert client");
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int client_get_locked(gh_store_t *st, sqlite3 *db, const char *id, gh_client_t *out,
                             gh_store_error_t *err)
{
    sqlite3_stmt *s;
    const char *why;
    if (sqlite3_prepare_v2(db, "SELECT " CLIENT_COLUMNS " FROM oauth_clients WHERE id = ?1", -1, &s,
                           NULL) != SQLITE_OK)
        return db_fail(err, db, "get client");
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s), rc;
    if (step == SQLITE_ROW) {
        rc = row_to_client(s, out, &why);
        if (rc != 0)
            rc = client_row_fail(st, err, id, rc, why);
    } else if (step == SQLITE_DONE) {
        rc = gh_store_fail(err, -ENOENT, "no client with id %s", id);
    } else {
        rc = db_fail(err, db, "get client");
    }
    sqlite3_finalize(s);
    return rc;
}

static int sq_client_get(gh_store_t *st, const char *id, gh_client_t *out, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    uv_mutex_lock(&q->wlock);
    int rc = client_get_locked(st, q->w, id, out, err);
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int sq_client_list(gh_store_t *st, gh_client_t **out, size_t *n, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *s;
    gh_client_t *all = NULL;
    size_t cap = 0, count = 0;
    int rc = 0, step;
    uv_mutex_lock(&q->wlock);
    if (sqlite3_prepare_v2(q->w,
                           "SELECT " CLIENT_COLUMNS " FROM oauth_clients ORDER BY created_at, id",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "list clients");
        uv_mutex_unlock(&q->wlock);
        return rc;
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            gh_client_t *nc = realloc(all, ncap * sizeof(*nc));
            if (nc == NULL) {
                rc = gh_store_fail(err, -ENOMEM, "out of memory");
                break;
            }
            all = nc;
            cap = ncap;
        }
        const char *why;
        rc = row_to_client(s, &all[count], &why);
        if (rc != 0) {
            const unsigned char *id = sqlite3_column_text(s, 0);
            rc = client_row_fail(st, err, id ? (const char *)id : "?", rc, why);
            break;
        }
        count++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_fail(err, q->w, "list clients");
    sqlite3_finalize(s);
    uv_mutex_unlock(&q->wlock);
    if (rc != 0) {
        gh_client_list_free(all, count);
        return rc;
    }
    *out = all;
    *n = count;
    return 0;
}

static int sq_client_revoke(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    uv_mutex_lock(&q->wlock);
    int rc = update_id_int(q->w,
                           "UPDATE oauth_clients SET revoked_at = ?2 WHERE id = ?1 AND revoked_at "
                           "IS NULL",
                           id, now, err);
    if (rc == 0) {
        gh_client_t c;
        rc = client_get_locked(st, q->w, id, &c, err);
        if (rc == 0) {
            gh_client_dispose(&c);
            rc = gh_store_fail(err, -EALREADY, "client %s was revoked before", id);
        }
    } else if (rc > 0) {
        rc = 0;
    }
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int sq_client_rotate(gh_store_t *st, const gh_client_t *c, const uint8_t *old_hash,
                            gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *s;
    int rc = 0;
    uv_mutex_lock(&q->wlock);
    /* One statement: the check (not revoked, the secret still the one
     * read) and the write are atomic without a transaction of their own. */
    if (sqlite3_prepare_v2(q->w,
                           "UPDATE oauth_clients SET secret_hash = ?2, prev_secret_hash = ?3, "
                           "prev_valid_until = ?4, secret_rotated_at = ?5 WHERE id = ?1 AND "
                           "revoked_at IS NULL AND secret_hash = ?6",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "rotate client secret");
        uv_mutex_unlock(&q->wlock);
        return rc;
    }
    sqlite3_bind_text(s, 1, c->id, -1, SQLITE_STATIC);
    bind_hash(s, 2, c->secret_hash, 1);
    bind_hash(s, 3, c->prev_secret_hash, c->prev_valid_until != 0);
    bind_opt_int(s, 4, c->prev_valid_until);
    bind_opt_int(s, 5, c->secret_rotated_at);
    bind_hash(s, 6, old_hash, 1);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_fail(err, q->w, "rotate client secret");
    else if (sqlite3_changes(q->w) != 1)
        rc = -ESTALE;
    sqlite3_finalize(s);
    uv_mutex_unlock(&q->wlock);
    return rc;
}

/* ---- revocations ---- */

/* Deletes at most GH_STORE_PURGE_BATCH revocations expired at now: the
 * number, or a negative errno. */
static int purge_locked(sqlite3 *db, int64_t now, gh_store_error_t *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "DELETE FROM token_revocations WHERE seq IN (SELECT seq FROM "
                           "token_revocations WHERE exp <= ?1 ORDER BY exp LIMIT ?2)",
                           -1, &s, NULL) != SQLITE_OK)
        return db_fail(err, db, "purge revocations");
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, GH_STORE_PURGE_BATCH);
    int step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE)
        return db_fail(err, db, "purge revocations");
    return sqlite3_changes(db);
}

static int sq_revocation_add(gh_store_t *st, const char *jti, int64_t exp, int64_t now,
                             gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *s = NULL;
    int rc;
    uv_mutex_lock(&q->wlock);
    if ((rc = exec(q->w, "BEGIN IMMEDIATE", err, "revoke token")) != 0)
        goto unlock;
    if ((rc = purge_locked(q->w, now, err)) < 0)
        goto out;
    rc = 0;
    if (sqlite3_prepare_v2(q->w,
                           "INSERT INTO token_revocations (jti, exp, revoked_at) VALUES (?1, ?2, "
                           "?3) ON CONFLICT (jti) DO NOTHING",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "revoke token");
        goto out;
    }
    sqlite3_bind_text(s, 1, jti, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, exp);
    sqlite3_bind_int64(s, 3, now);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_fail(err, q->w, "revoke token");
    else if (sqlite3_changes(q->w) == 0)
        rc = gh_store_fail(err, -EALREADY, "this token was revoked before");
out:
    sqlite3_finalize(s);
    /* -EALREADY commits the purge: nothing else was written */
    if (rc == 0 || rc == -EALREADY) {
        int c = exec(q->w, "COMMIT", err, "revoke token");
        if (c != 0)
            rc = c;
    }
    if (rc != 0 && rc != -EALREADY)
        sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
unlock:
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int sq_revocations_since(gh_store_t *st, uint64_t after, int64_t now, size_t max,
                                gh_revocation_t *out, size_t *n, uint64_t *next, size_t *looked,
                                uint64_t *last_made, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *s;
    int64_t last = 0;
    int rc = 0, step;
    *n = *looked = 0;
    *next = after;
    uv_mutex_lock(&q->wlock);
    /* sqlite_sequence keeps the highest number AUTOINCREMENT gave, even
     * after every row was purged; no row there: none was ever made. */
    if (pragma_int(q->w,
                   "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = "
                   "'token_revocations'), 0)",
                   &last) != 0) {
        rc = db_fail(err, q->w, "read revocations");
        goto unlock;
    }
    *last_made = last > 0 ? (uint64_t)last : 0;
    if (sqlite3_prepare_v2(q->w,
                           "SELECT seq, jti, exp FROM token_revocations WHERE seq > ?1 ORDER BY "
                           "seq LIMIT ?2",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "read revocations");
        goto unlock;
    }
    sqlite3_bind_int64(s, 1, after > INT64_MAX ? INT64_MAX : (int64_t)after);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(s, 0), exp = sqlite3_column_int64(s, 2);
        const unsigned char *jti = sqlite3_column_text(s, 1);
        (*looked)++;
        *next = (uint64_t)seq;
        if (exp <= now || jti == NULL || !gh_revocation_jti_valid((const char *)jti))
            continue;
        gh_revocation_t *e = &out[(*n)++];
        e->seq = (uint64_t)seq;
        e->exp = exp;
        snprintf(e->jti, sizeof(e->jti), "%s", (const char *)jti);
    }
    if (step != SQLITE_DONE)
        rc = db_fail(err, q->w, "read revocations");
    sqlite3_finalize(s);
unlock:
    uv_mutex_unlock(&q->wlock);
    return rc;
}

static int sq_revocations_purge(gh_store_t *st, int64_t now, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    uv_mutex_lock(&q->wlock);
    int rc = purge_locked(q->w, now, err);
    uv_mutex_unlock(&q->wlock);
    return rc;
}

/* ---- client-assertion claims ---- */

static int sq_jti_claim(gh_store_t *st, const char *client_id, const char *jti, int64_t until,
                        int64_t now, gh_store_error_t *err)
{
    sq_t *q = impl(st);
    sqlite3_stmt *s = NULL;
    int rc;
    uv_mutex_lock(&q->wlock);
    if ((rc = exec(q->w, "BEGIN IMMEDIATE", err, "claim jti")) != 0)
        goto unlock;
    /* At most GH_STORE_PURGE_BATCH passed claims, oldest first: a bound
     * on one claim's work; claims come at least as fast as they pass. */
    if (sqlite3_prepare_v2(q->w,
                           "DELETE FROM jti_claims WHERE rowid IN (SELECT rowid FROM jti_claims "
                           "WHERE until <= ?1 ORDER BY until LIMIT ?2)",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "purge jti claims");
        goto out;
    }
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, GH_STORE_PURGE_BATCH);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_fail(err, q->w, "purge jti claims");
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;
    /* The unique (client_id, jti) decides: a new pair goes in; a pair
     * whose claim passed (not purged yet) is claimed again; a live one
     * changes nothing, and is the replay. */
    if (sqlite3_prepare_v2(q->w,
                           "INSERT INTO jti_claims (client_id, jti, until, claimed_at) VALUES "
                           "(?1, ?2, ?3, ?4) ON CONFLICT (client_id, jti) DO UPDATE SET until = "
                           "excluded.until, claimed_at = excluded.claimed_at WHERE "
                           "jti_claims.until <= excluded.claimed_at",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_fail(err, q->w, "claim jti");
        goto out;
    }
    sqlite3_bind_text(s, 1, client_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, jti, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, until);
    sqlite3_bind_int64(s, 4, now);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_fail(err, q->w, "claim jti");
    else if (sqlite3_changes(q->w) == 0)
        rc = gh_store_fail(err, -EEXIST, "this client assertion was used before");
out:
    sqlite3_finalize(s);
    /* -EEXIST commits the purge: nothing else was written */
    if (rc == 0 || rc == -EEXIST) {
        int c = exec(q->w, "COMMIT", err, "claim jti");
        if (c != 0)
            rc = c;
    }
    if (rc != 0 && rc != -EEXIST)
        sqlite3_exec(q->w, "ROLLBACK", NULL, NULL, NULL);
unlock:
    uv_mutex_unlock(&q->wlock);
    return rc;
}

/* ---- lookups on the thread pool ---- */

static reader_t *reader_get(sq_t *q, char *why, size_t cap)
{
    reader_t *r = NULL;
    uv_mutex_lock(&q->plock);
    if (q->num_idle > 0)
        r = q->idle[--q->num_idle];
    uv_mutex_unlock(&q->plock);
    if (r != NULL)
        return r;
    gh_store_error_t err;
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    if (open_conn(q->path, SQLITE_OPEN_READWRITE, q->busy_ms, &r->db, &err) != 0) {
        snprintf(why, cap, "%s", err.msg);
        free(r);
        return NULL;
    }
    /* A reader never writes, whatever a bug would ask of it. */
    if (sqlite3_exec(r->db, "PRAGMA query_only = 1", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(r->db, "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = ?1", -1,
                           SQLITE_PREPARE_PERSISTENT, &r->lookup, NULL) != SQLITE_OK) {
        snprintf(why, cap, "%s", sqlite3_errmsg(r->db));
        sqlite3_close(r->db);
        free(r);
        return NULL;
    }
    return r;
}

static void reader_put(sq_t *q, reader_t *r)
{
    uv_mutex_lock(&q->plock);
    if (q->num_idle < POOL_MAX) {
        q->idle[q->num_idle++] = r;
        r = NULL;
    }
    uv_mutex_unlock(&q->plock);
    if (r != NULL) {
        sqlite3_finalize(r->lookup);
        sqlite3_finalize(r->client);
        sqlite3_close(r->db);
        free(r);
    }
}

/* A client's record by id, on a reader. */
static void client_lookup_work(sq_req_t *lr, reader_t *r)
{
    gh_store_req_t *req = lr->req;
    if (r->client == NULL &&
        sqlite3_prepare_v3(r->db, "SELECT " CLIENT_COLUMNS " FROM oauth_clients WHERE id = ?1", -1,
                           SQLITE_PREPARE_PERSISTENT, &r->client, NULL) != SQLITE_OK) {
        lr->status = -EIO;
        snprintf(lr->why, sizeof(lr->why), "%s", sqlite3_errmsg(r->db));
        return;
    }
    sqlite3_bind_text(r->client, 1, req->client_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(r->client);
    if (step == SQLITE_ROW) {
        const char *why;
        lr->status = row_to_client(r->client, &lr->client, &why);
        if (lr->status != 0)
            snprintf(lr->why, sizeof(lr->why), "%s", lr->status == -ENOMEM ? "out of memory" : why);
    } else if (step == SQLITE_DONE) {
        lr->status = -ENOENT;
    } else {
        lr->status = (step & 0xff) == SQLITE_BUSY ? -EBUSY : -EIO;
        snprintf(lr->why, sizeof(lr->why), "%s", sqlite3_errmsg(r->db));
    }
    sqlite3_reset(r->client);
    sqlite3_clear_bindings(r->client);
}

static void lookup_work(uv_work_t *w)
{
    sq_req_t *lr = w->data;
    gh_store_req_t *req = lr->req;
    sq_t *q = impl(req->store);
    reader_t *r = reader_get(q, lr->why, sizeof(lr->why));
    if (r == NULL) {
        lr->status = -EIO;
        return;
    }
    if (req->kind == GH_STORE_REQ_CLIENT) {
        client_lookup_work(lr, r);
        reader_put(q, r);
        return;
    }
    sqlite3_bind_text(r->lookup, 1, req->key.id, -1, SQLITE_STATIC);
    int step = sqlite3_step(r->lookup);
    if (step == SQLITE_ROW) {
        lr->status = row_to_key(r->lookup, &lr->rec, lr->hash);
        if (lr->status != 0)
            snprintf(lr->why, sizeof(lr->why), "out of memory");
    } else if (step == SQLITE_DONE) {
        lr->status = -ENOENT;
    } else {
        lr->status = (step & 0xff) == SQLITE_BUSY ? -EBUSY : -EIO;
        snprintf(lr->why, sizeof(lr->why), "%s", sqlite3_errmsg(r->db));
    }
    /* ends the read transaction at once */
    sqlite3_reset(r->lookup);
    sqlite3_clear_bindings(r->lookup);
    reader_put(q, r);
}

static void lookup_done(uv_work_t *w, int status)
{
    sq_req_t *lr = w->data;
    gh_store_req_t *req = lr->req;
    gh_apikey_t rec = lr->rec; /* its strings outlive req */
    gh_client_t client = lr->client;
    int kind = req->kind;
    uint8_t hash[GH_APIKEY_HASH_LEN];
    int rc = lr->status;
    memcpy(hash, lr->hash, sizeof(hash));
    if (status == UV_ECANCELED)
        rc = -ECANCELED; /* cancelled before it ran: no callback (cancelled is set) */
    else if (rc != 0 && rc != -ENOENT)
        GH_LOG(GH_LOG_WARN, "store", "%s: lookup of %s %s failed: %s",
               gh_store_describe(req->store), kind == GH_STORE_REQ_CLIENT ? "client" : "key",
               kind == GH_STORE_REQ_CLIENT ? req->client_id : req->key.id, lr->why);
    if (kind == GH_STORE_REQ_CLIENT) {
        gh_store_req_finish_client(req, rc, rc == 0 ? &client : NULL);
        gh_client_dispose(&client); /* zeros unless it was read */
        return;
    }
    gh_store_req_finish(req, rc, rc == 0 ? &rec : NULL, rc == 0 ? hash : NULL);
    gh_apikey_dispose(&rec);
}

static int sq_key_lookup(gh_store_t *st, uv_loop_t *loop, gh_store_req_t *req)
{
    (void)st;
    sq_req_t *lr = gh_store_req_backend(req);
    lr->req = req;
    lr->work.data = lr;
    return uv_queue_work(loop, &lr->work, lookup_work, lookup_done);
}

static void sq_key_lookup_cancel(gh_store_req_t *req)
{
    sq_req_t *lr = gh_store_req_backend(req);
    /* Succeeds only while the job waits in the queue; lookup_done then
     * runs with UV_ECANCELED. A running job finishes normally and its
     * answer is dropped. */
    uv_cancel((uv_req_t *)&lr->work);
}

const gh_store_backend_t gh_store_sqlite_backend = {
    .kind = GH_STORE_SQLITE,
    .name = "sqlite",
    .req_size = sizeof(sq_req_t),
    .open = sq_open,
    .close = sq_close,
    .key_insert = sq_key_insert,
    .key_get = sq_key_get,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .key_rotate = sq_key_rotate,
    .key_import = sq_key_import,
    .usage_write = sq_usage_write,
    .usage_get = sq_usage_get,
    .client_insert = sq_client_insert,
    .client_get = sq_client_get,
    .client_list = sq_client_list,
    .client_revoke = sq_client_revoke,
    .client_rotate = sq_client_rotate,
    .revocation_add = sq_revocation_add,
    .revocations_since = sq_revocations_since,
    .revocations_purge = sq_revocations_purge,
    .jti_claim = sq_jti_claim,
    .key_lookup = sq_key_lookup,
    .key_lookup_cancel = sq_key_lookup_cancel,
};
