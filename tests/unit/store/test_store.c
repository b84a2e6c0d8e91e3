/*
 * src/store/store.c with the SQLite backend (src/store/sqlite.c), on
 * temporary files: the cases every backend passes (store_cases.h), and
 * SQLite's own: the file's mode, WAL and schema, refusals of files that are
 * not a gatehouse store, the default path's state directory, a writer
 * that waits for another process's write lock, the migrations from
 * schema versions 1 and 2, and the purge of passed jti claims.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include <gatehouse/store.h>

#include "store/backend.h"
#include "store_cases.h"

#include "client_cases.h"

static char dir[] = "/tmp/gh-store-XXXXXX";
static char path[256];

static gh_store_conf_t conf_for(const char *p)
{
    gh_store_conf_t c;
    assert_int_equal(gh_store_conf_default(&c, NULL), 0);
    free(c.path);
    c.path = strdup(p);
    c.path_is_default = 0;
    return c;
}

static gh_store_conf_t conf_here(void)
{
    return conf_for(path);
}

static gh_store_t *open_at(const char *p, int flags, int expect)
{
    gh_store_conf_t c = conf_for(p);
    gh_store_error_t err = {""};
    gh_store_t *s = NULL;
    int rc = gh_store_open(&c, flags, &s, &err);
    gh_store_conf_dispose(&c);
    if (rc != expect)
        fail_msg("open %s: %d (%s), expected %d", p, rc, err.msg, expect);
    return s;
}

static int setup(void **state)
{
    (void)state;
    static int made;
    if (!made && mkdtemp(dir) == NULL)
        return -1;
    made = 1;
    static int n;
    snprintf(path, sizeof(path), "%s/store-%d.db", dir, n++);
    st = open_at(path, GH_STORE_CREATE, 0);
    return st == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_store_unref(st);
    st = NULL;
    return 0;
}

static gh_store_t *open_again(void)
{
    return open_at(path, 0, 0);
}

/* The caller's now decides whether a claim has passed: nothing to do. */
static void claims_pass(int64_t t)
{
    (void)t;
}

static int64_t count_rows(const char *p, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static int64_t user_version(const char *p)
{
    return count_rows(p, "PRAGMA user_version");
}

/* Every column of every row of every table, as bytes. */
static void raw_lacks(const char *needle, size_t n)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    const char *q[] = {"SELECT * FROM api_keys", "SELECT * FROM api_key_usage",
                       "SELECT * FROM oauth_clients", "SELECT * FROM token_revocations",
                       "SELECT * FROM jti_claims"};
    int all = 0;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    for (size_t t = 0; t < sizeof(q) / sizeof(q[0]); t++) {
        assert_int_equal(sqlite3_prepare_v2(db, q[t], -1, &s, NULL), SQLITE_OK);
        int rows = 0;
        while (sqlite3_step(s) == SQLITE_ROW) {
            rows++;
            for (int i = 0; i < sqlite3_column_count(s); i++) {
                const void *v = sqlite3_column_blob(s, i);
                int len = sqlite3_column_bytes(s, i);
                if (v != NULL && (size_t)len >= n)
                    assert_null(memmem(v, (size_t)len, needle, n));
            }
        }
        all += rows;
        sqlite3_finalize(s);
    }
    assert_true(all > 0); /* the check looked at something */
    sqlite3_close(db);
}

/* ---- the file ---- */

static void test_file_mode_wal_and_schema(void **state)
{
    (void)state;
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s;
    const char *q[][2] = {{"PRAGMA journal_mode", "wal"},
                          {"PRAGMA user_version", "3"},
                          {"PRAGMA application_id", "1195920211"}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(sqlite3_prepare_v2(db, q[i][0], -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(s, 0), q[i][1]);
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    /* opening again: the schema is there, nothing to do */
    gh_store_t *again = open_at(path, 0, 0);
    gh_store_unref(again);
    assert_string_equal(gh_store_kind(st), "sqlite");
    assert_non_null(strstr(gh_store_describe(st), path));
}

/* A store file of schema version 1 (before OAuth clients), as an older
 * gatehouse made it, with a key in it: opened, it becomes version 3 in
 * one transaction, its key still found, clients, revocations and claims
 * usable. */
static void test_migration_from_version_1(void **state)
{
    (void)state;
    char p[300];
    snprintf(p, sizeof(p), "%s/v1.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    static const char v1[] =
        "PRAGMA journal_mode = WAL;"
        "CREATE TABLE api_keys (id TEXT PRIMARY KEY NOT NULL, hash BLOB NOT NULL CHECK "
        "(length(hash) = 32), consumer TEXT NOT NULL, plan TEXT, scopes TEXT NOT NULL DEFAULT '', "
        "description TEXT NOT NULL DEFAULT '', enabled INTEGER NOT NULL DEFAULT 1, source TEXT NOT "
        "NULL CHECK (source IN ('generated', 'aws-import')), created_at INTEGER NOT NULL, "
        "expires_at INTEGER, revoked_at INTEGER, grace_until INTEGER, replaced_by TEXT) WITHOUT "
        "ROWID;"
        "CREATE INDEX api_keys_consumer ON api_keys (consumer);"
        "CREATE TABLE api_key_usage (key_id TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER "
        "NOT NULL, PRIMARY KEY (key_id, day)) WITHOUT ROWID;"
        "PRAGMA user_version = 1;"
        "PRAGMA application_id = 1195920211;";
    assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
    /* a key made by the version-1 gatehouse: gh_ + id + secret */
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_presented_t pk;
    assert_int_equal(gh_apikey_generate(key), 0);
    assert_int_equal(gh_apikey_present(key, strlen(key), &pk, NULL), 0);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO api_keys (id, hash, consumer, source, "
                                        "created_at) VALUES (?1, ?2, 'old', 'generated', 1)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, pk.id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, pk.hash, 32, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(db);

    gh_store_t *old = open_at(p, 0, 0); /* the CLI's open migrates too */
    gh_apikey_t k;
    gh_store_error_t err;
    assert_int_equal(gh_store_key_find(old, &pk, &k, &err), 0);
    assert_string_equal(k.consumer, "old");
    gh_apikey_dispose(&k);
    gh_client_spec_t spec = {"migrated", NULL, "x", 0, NULL, 0};
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t c;
    assert_int_equal(gh_store_client_create(old, &spec, T0, secret, &c, &err), 0);
    assert_int_equal(gh_store_revocation_add(old, "j", T0 + 10, T0, &err), 0);
    assert_int_equal(gh_store_jti_claim(old, c.id, "j", T0 + 10, T0, &err), 0);
    assert_int_equal(gh_store_jti_claim(old, c.id, "j", T0 + 10, T0, &err), -EEXIST);
    gh_store_unref(old);
    assert_int_equal(user_version(p), 3);
    /* and again: nothing to migrate */
    old = open_at(p, 0, 0);
    gh_client_t got;
    assert_int_equal(gh_store_client_get(old, c.id, &got, &err), 0);
    gh_client_dispose(&got);
    gh_store_unref(old);
    gh_client_dispose(&c);
}

/* A file of schema version 2 (clients and revocations, before jti
 * claims), as the gatehouse before made it: opened, it gains the claims
 * table and version 3, and nothing in it changes. */
static void test_migration_from_version_2(void **state)
{
    (void)state;
    char p[300];
    snprintf(p, sizeof(p), "%s/v2.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    /* version 2's schema as it was written (src/store/sqlite.c before
     * version 3), and a client and a revocation in it */
    static const char v2[] =
        "PRAGMA journal_mode = WAL;"
        "CREATE TABLE api_keys (id TEXT PRIMARY KEY NOT NULL, hash BLOB NOT NULL CHECK "
        "(length(hash) = 32), consumer TEXT NOT NULL, plan TEXT, scopes TEXT NOT NULL DEFAULT '', "
        "description TEXT NOT NULL DEFAULT '', enabled INTEGER NOT NULL DEFAULT 1, source TEXT NOT "
        "NULL CHECK (source IN ('generated', 'aws-import')), created_at INTEGER NOT NULL, "
        "expires_at INTEGER, revoked_at INTEGER, grace_until INTEGER, replaced_by TEXT) WITHOUT "
        "ROWID;"
        "CREATE INDEX api_keys_consumer ON api_keys (consumer);"
        "CREATE TABLE api_key_usage (key_id TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER "
        "NOT NULL, PRIMARY KEY (key_id, day)) WITHOUT ROWID;"
        "CREATE TABLE oauth_clients (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, scopes "
        "TEXT NOT NULL DEFAULT '', audiences TEXT NOT NULL, auth_methods TEXT NOT NULL, jwks "
        "TEXT, token_ttl INTEGER, secret_hash BLOB CHECK (secret_hash IS NULL OR "
        "length(secret_hash) = 32), prev_secret_hash BLOB CHECK (prev_secret_hash IS NULL OR "
        "length(prev_secret_hash) = 32), prev_valid_until INTEGER, secret_rotated_at INTEGER, "
        "created_at INTEGER NOT NULL, revoked_at INTEGER) WITHOUT ROWID;"
        "CREATE TABLE token_revocations (seq INTEGER PRIMARY KEY AUTOINCREMENT, jti TEXT NOT NULL "
        "UNIQUE, exp INTEGER NOT NULL, revoked_at INTEGER NOT NULL);"
        "CREATE INDEX token_revocations_exp ON token_revocations (exp);"
        "INSERT INTO oauth_clients (id, name, audiences, auth_methods, created_at) VALUES "
        "('ghc_aaaaaaaaaaaaaaaa', 'old', 'x', 'private_key_jwt', 1);"
        "INSERT INTO token_revocations (jti, exp, revoked_at) VALUES ('r1', 1700000100, 1);"
        "PRAGMA user_version = 2;"
        "PRAGMA application_id = 1195920211;";
    assert_int_equal(sqlite3_exec(db, v2, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(count_rows(p, "SELECT count(*) FROM sqlite_schema WHERE name = 'jti_claims'"),
                     0);

    gh_store_t *old = open_at(p, 0, 0); /* the CLI's open migrates too */
    assert_int_equal(user_version(p), 3);
    assert_int_equal(count_rows(p, "SELECT count(*) FROM sqlite_schema WHERE name IN "
                                   "('jti_claims', 'jti_claims_until')"),
                     2);
    gh_store_error_t err;
    gh_client_t c;
    assert_int_equal(gh_store_client_get(old, "ghc_aaaaaaaaaaaaaaaa", &c, &err), 0);
    assert_string_equal(c.name, "old");
    gh_client_dispose(&c);
    gh_revocation_t *e;
    size_t n;
    uint64_t next;
    int more;
    assert_int_equal(gh_store_revocations_since(old, 0, T0, 10, &e, &n, &next, &more, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].jti, "r1");
    free(e);
    assert_int_equal(gh_store_jti_claim(old, "ghc_aaaaaaaaaaaaaaaa", "a", T0 + 10, T0, &err), 0);
    assert_int_equal(gh_store_jti_claim(old, "ghc_aaaaaaaaaaaaaaaa", "a", T0 + 10, T0, &err),
                     -EEXIST);
    gh_store_unref(old);
    /* and again: nothing to migrate, the claim kept */
    old = open_at(p, 0, 0);
    assert_int_equal(gh_store_jti_claim(old, "ghc_aaaaaaaaaaaaaaaa", "a", T0 + 10, T0 + 1, &err),
                     -EEXIST);
    gh_store_unref(old);
    assert_int_equal(user_version(p), 3);
}

/* Passed claims are deleted by later claims, GH_STORE_PURGE_BATCH at
 * most per claim (replays included), oldest first; live ones stay. */
static void test_jti_claims_purged(void **state)
{
    (void)state;
    gh_store_error_t err;
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO jti_claims (client_id, jti, until, "
                                        "claimed_at) VALUES ('ghc_aaaaaaaaaaaaaaaa', ?1, ?2, ?3)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    /* GH_STORE_PURGE_BATCH + 5 passed at T0 + 100, the last 5 passing
     * latest; one live until T0 + 500 */
    for (int i = 0; i < GH_STORE_PURGE_BATCH + 6; i++) {
        char jti[32];
        snprintf(jti, sizeof(jti), "old-%d", i);
        sqlite3_bind_text(s, 1, jti, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, i == GH_STORE_PURGE_BATCH + 5 ? T0 + 500 : T0 + i / 10);
        sqlite3_bind_int64(s, 3, T0 - 60);
        assert_int_equal(sqlite3_step(s), SQLITE_DONE);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    const char *all = "SELECT count(*) FROM jti_claims";
    const char *passed = "SELECT count(*) FROM jti_claims WHERE until <= 1700000100";
    assert_int_equal(count_rows(path, all), GH_STORE_PURGE_BATCH + 6);
    /* one claim purges a batch, oldest first; of a jti whose claim passed
     * but is not purged yet (the batch was used up), the row is claimed
     * again in place */
    assert_int_equal(
        gh_store_jti_claim(st, "ghc_aaaaaaaaaaaaaaaa", "old-1004", T0 + 600, T0 + 100, &err), 0);
    assert_int_equal(count_rows(path, passed), 4); /* old-1000 to 1003 */
    assert_int_equal(count_rows(path, "SELECT min(until) FROM jti_claims"), T0 + 100);
    assert_int_equal(count_rows(path, "SELECT until FROM jti_claims WHERE jti = 'old-1004'"),
                     T0 + 600);
    /* a replay purges too, and is still refused */
    assert_int_equal(
        gh_store_jti_claim(st, "ghc_aaaaaaaaaaaaaaaa", "old-1005", T0 + 600, T0 + 100, &err),
        -EEXIST);
    assert_int_equal(count_rows(path, passed), 0);
    assert_int_equal(count_rows(path, all), 2);
    assert_int_equal(
        gh_store_jti_claim(st, "ghc_aaaaaaaaaaaaaaaa", "new", T0 + 600, T0 + 100, &err), 0);
    assert_int_equal(count_rows(path, all), 3);
    assert_int_equal(
        gh_store_jti_claim(st, "ghc_aaaaaaaaaaaaaaaa", "old-1004", T0 + 600, T0 + 101, &err),
        -EEXIST);
}

/* Another process holds the write lock longer than busy_timeout: a claim
 * fails (-EBUSY), synchronous or not, never reads as claimed. */
static void test_jti_claim_under_a_held_write_lock(void **state)
{
    (void)state;
    gh_store_error_t err;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    gh_store_conf_t c = conf_for(path);
    c.busy_timeout_ms = 50;
    gh_store_t *impatient;
    assert_int_equal(gh_store_open(&c, 0, &impatient, &err), 0);
    gh_store_conf_dispose(&c);
    assert_int_equal(gh_store_jti_claim(impatient, "ghc_aaaaaaaaaaaaaaaa", "j", T0 + 10, T0, &err),
                     -EBUSY);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    tally_t t[2] = {{0, 0}, {0, 1}};
    gh_store_req_t *req;
    assert_int_equal(gh_store_jti_claim_async(impatient, &loop, "ghc_aaaaaaaaaaaaaaaa", "j",
                                              T0 + 10, T0, on_tally, &t[0], &req),
                     0);
    run_until(&loop, all_tallied, t);
    assert_int_equal(t[0].status, -EBUSY);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    assert_int_equal(gh_store_jti_claim(impatient, "ghc_aaaaaaaaaaaaaaaa", "j", T0 + 10, T0, &err),
                     0);
    gh_store_unref(impatient);
    loop_done(&loop);
}

static void test_open_refusals(void **state)
{
    (void)state;
    char p[300];
    /* missing without CREATE */
    snprintf(p, sizeof(p), "%s/missing.db", dir);
    assert_null(open_at(p, 0, -ENOENT));
    assert_int_equal(access(p, F_OK), -1);
    /* a missing directory is not made for an explicit path */
    snprintf(p, sizeof(p), "%s/nodir/x.db", dir);
    assert_null(open_at(p, GH_STORE_CREATE, -ENOENT));
    /* another application's database */
    snprintf(p, sizeof(p), "%s/other.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_null(open_at(p, GH_STORE_CREATE, -EINVAL));
    snprintf(p, sizeof(p), "%s/otherapp.db", dir);
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA application_id = 7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_null(open_at(p, GH_STORE_CREATE, -EINVAL));
    /* a newer schema */
    snprintf(p, sizeof(p), "%s/newer.db", dir);
    gh_store_t *s = open_at(p, GH_STORE_CREATE, 0);
    gh_store_unref(s);
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 4", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_null(open_at(p, 0, -EINVAL));
    /* not a regular file */
    assert_null(open_at(dir, 0, -EINVAL));
    /* a kind without a backend */
    gh_store_conf_t c = conf_for(p);
    c.kind = (gh_store_kind_t)7;
    gh_store_error_t err;
    assert_int_equal(gh_store_open(&c, 0, &s, &err), -ENOTSUP);
    assert_non_null(strstr(err.msg, "not available"));
    gh_store_conf_dispose(&c);
}

static void test_default_path_makes_state_dir(void **state)
{
    (void)state;
    char sd[300];
    snprintf(sd, sizeof(sd), "%s/state", dir);
    gh_store_conf_t c;
    assert_int_equal(gh_store_conf_default(&c, sd), 0);
    char want[320];
    snprintf(want, sizeof(want), "%s/gatehouse.db", sd);
    assert_string_equal(c.path, want);
    gh_store_t *s;
    gh_store_error_t err;
    assert_int_equal(gh_store_open(&c, 0, &s, &err), -ENOENT); /* not made without CREATE */
    assert_int_equal(gh_store_open(&c, GH_STORE_CREATE, &s, &err), 0);
    struct stat sb;
    assert_int_equal(stat(sd, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    gh_store_unref(s);
    gh_store_conf_dispose(&c);
    /* "dir/" and "dir" name the same file */
    assert_int_equal(gh_store_conf_default(&c, "state/"), 0);
    assert_string_equal(c.path, "state/gatehouse.db");
    gh_store_conf_dispose(&c);
}

/* A writer holding the write lock (another process mid-transaction):
 * readers go on (WAL); another writer waits busy_timeout, then fails with a
 * clear error rather than hanging. */
static void test_writer_waits_for_the_write_lock(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_store_error_t err;
    gh_apikey_spec_t spec = {"alice", NULL, NULL, NULL, 0};
    assert_int_equal(gh_store_key_create(st, &spec, T0, key, NULL, &err), 0);
    sqlite3 *db;
    gh_apikey_state_t s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(find(st, key, T0 + 1, &s), 0);
    gh_store_conf_t c = conf_for(path);
    c.busy_timeout_ms = 50;
    gh_store_t *impatient;
    assert_int_equal(gh_store_open(&c, 0, &impatient, &err), 0);
    gh_store_conf_dispose(&c);
    char k2[GH_APIKEY_LEN + 1];
    assert_int_equal(gh_store_key_create(impatient, &spec, T0, k2, NULL, &err), -EBUSY);
    assert_non_null(strstr(err.msg, "write lock"));
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    assert_int_equal(gh_store_key_create(impatient, &spec, T0, k2, NULL, &err), 0);
    gh_store_unref(impatient);
    assert_int_equal(find(st, k2, T0, &s), 0);
    assert_int_equal(s, GH_APIKEY_VALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_mode_wal_and_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_path_makes_state_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_waits_for_the_write_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_version_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti_claims_purged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti_claim_under_a_held_write_lock, setup, teardown),
        STORE_CASES(setup, teardown),
        CLIENT_CASES(setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
