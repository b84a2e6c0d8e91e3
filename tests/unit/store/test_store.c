/*
 * src/store/store.c with the SQLite backend (src/store/sqlite.c), on
 * temporary files: the cases every backend passes (store_cases.h), and
 * SQLite's own: the file's mode, WAL and schema, refusals of files that are
 * not a gatehouse store, the default path's state directory, and a writer
 * that waits for another process's write lock.
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

/* Every column of every row of every table, as bytes. */
static void raw_lacks(const char *needle, size_t n)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    const char *q[] = {"SELECT * FROM api_keys", "SELECT * FROM api_key_usage",
                       "SELECT * FROM oauth_clients", "SELECT * FROM token_revocations"};
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
                          {"PRAGMA user_version", "2"},
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
 * gatehouse made it, with a key in it: opened, it becomes version 2 in
 * one transaction, its key still found, clients and revocations usable. */
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
    gh_store_unref(old);
    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 2);
    sqlite3_finalize(s);
    sqlite3_close(db);
    /* and again: nothing to migrate */
    old = open_at(p, 0, 0);
    gh_client_t got;
    assert_int_equal(gh_store_client_get(old, c.id, &got, &err), 0);
    gh_client_dispose(&got);
    gh_store_unref(old);
    gh_client_dispose(&c);
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
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 3", NULL, NULL, NULL), SQLITE_OK);
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
        STORE_CASES(setup, teardown),
        CLIENT_CASES(setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
