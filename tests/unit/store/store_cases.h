/*
 * The store's cases every backend must pass, with an injected clock: the
 * key lifecycle (create, find, revoke, expire, rotate with grace), import,
 * usage counts, two stores on one backing (the CLI beside a server), and
 * the asynchronous lookup: answers on the loop, cancellation, the bound on
 * pending lookups, a store released while lookups are in flight.
 *
 * Included by one test program per backend (test_store.c: SQLite,
 * test_store_redis.c: Redis), which defines, before including it:
 *
 *   static gh_store_conf_t conf_here(void);  the configuration of the
 *       backing the current case uses (a file, a Redis prefix), new;
 *   static gh_store_t *open_again(void);     another store on it (the CLI
 *       beside a server), a new reference;
 *   static void raw_lacks(const char *s, size_t n);  fails when anything
 *       the backend keeps holds s[0..n);
 *
 * and lists STORE_CASES(setup, teardown) in its tests; its setup opens
 * `st` on a fresh backing.
 */
#ifndef GH_TEST_STORE_CASES_H
#define GH_TEST_STORE_CASES_H

#define T0 1700000000 /* the injected clock's start: 2023-11-14 */
#define DAY 86400
#define GUARD_MS 30000

static gh_store_t *st;

static gh_store_conf_t conf_here(void);
static gh_store_t *open_again(void);
static void raw_lacks(const char *s, size_t n);

static void create(const char *consumer, const char *plan, const char *scopes, int64_t expires_in,
                   int64_t now, char key[GH_APIKEY_LEN + 1], gh_apikey_t *rec)
{
    gh_apikey_spec_t spec = {consumer, plan, scopes, "a key", expires_in};
    gh_store_error_t err = {""};
    int rc = gh_store_key_create(st, &spec, now, key, rec, &err);
    if (rc != 0)
        fail_msg("create: %d %s", rc, err.msg);
}

/* find(key) as a worker would see it: 0 and the state at now, or -ENOENT. */
static int find(gh_store_t *s, const char *key, int64_t now, gh_apikey_state_t *state)
{
    gh_apikey_presented_t p;
    gh_apikey_t k;
    gh_store_error_t err;
    if (gh_apikey_present(key, strlen(key), &p, NULL) != 0)
        return -EINVAL;
    int rc = gh_store_key_find(s, &p, &k, &err);
    if (rc == 0) {
        if (state != NULL)
            *state = gh_apikey_state(&k, now);
        gh_apikey_dispose(&k);
    }
    return rc;
}

static gh_apikey_state_t state_of(const char *key, int64_t now)
{
    gh_apikey_state_t s = GH_APIKEY_VALID;
    assert_int_equal(find(st, key, now, &s), 0);
    return s;
}

/* ---- keys ---- */

static void test_state_order(void **state)
{
    (void)state;
    gh_apikey_t k = {.enabled = 1};
    assert_int_equal(gh_apikey_state(&k, T0), GH_APIKEY_VALID);
    assert_int_equal(gh_apikey_valid_until(&k), 0);
    k.grace_until = T0 + 10;
    assert_int_equal(gh_apikey_state(&k, T0), GH_APIKEY_VALID);
    assert_int_equal(gh_apikey_state(&k, T0 + 10), GH_APIKEY_REPLACED);
    k.expires_at = T0 + 5;
    assert_int_equal(gh_apikey_valid_until(&k), T0 + 5);
    assert_int_equal(gh_apikey_state(&k, T0 + 10), GH_APIKEY_EXPIRED);
    k.enabled = 0;
    assert_int_equal(gh_apikey_state(&k, T0 + 10), GH_APIKEY_DISABLED);
    assert_int_equal(gh_apikey_state(&k, T0), GH_APIKEY_DISABLED);
    k.revoked_at = T0 + 100;
    assert_int_equal(gh_apikey_state(&k, T0), GH_APIKEY_REVOKED);
    k.expires_at = T0 + 50;
    k.grace_until = T0 + 20;
    assert_int_equal(gh_apikey_valid_until(&k), T0 + 20);
    assert_string_equal(gh_apikey_state_name(GH_APIKEY_REPLACED), "replaced");
    assert_string_equal(gh_apikey_state_name(GH_APIKEY_VALID), "valid");
}

static void test_create_and_find(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    create("alice", "gold", "orders.read,orders.write", 0, T0, key, &rec);
    assert_true(gh_apikey_is_native(key, strlen(key)));
    assert_memory_equal(rec.id, key + 3, 12);
    assert_string_equal(rec.consumer, "alice");
    assert_string_equal(rec.plan, "gold");
    assert_string_equal(rec.scopes, "orders.read orders.write");
    assert_string_equal(rec.description, "a key");
    assert_int_equal(rec.created_at, T0);
    assert_int_equal(rec.expires_at, 0);
    assert_int_equal(rec.source, GH_APIKEY_GENERATED);
    assert_int_equal(state_of(key, T0), GH_APIKEY_VALID);
    /* get by id returns the same record */
    gh_apikey_t got;
    gh_store_error_t err;
    assert_int_equal(gh_store_key_get(st, rec.id, &got, &err), 0);
    assert_string_equal(got.consumer, "alice");
    assert_string_equal(got.scopes, "orders.read orders.write");
    assert_int_equal(got.enabled, 1);
    gh_apikey_dispose(&got);

    /* the backing holds the hash (SHA-256 of the key), never the key */
    raw_lacks(key + 16, 16);

    /* near misses of the key find nothing */
    char bad[GH_APIKEY_LEN + 2];
    memcpy(bad, key, sizeof(key));
    bad[GH_APIKEY_LEN - 1] = bad[GH_APIKEY_LEN - 1] == 'a' ? 'b' : 'a'; /* last secret char */
    assert_int_equal(find(st, bad, T0, NULL), -ENOENT);
    memcpy(bad, key, sizeof(key));
    bad[20] = bad[20] == 'Z' ? 'Y' : 'Z';
    assert_int_equal(find(st, bad, T0, NULL), -ENOENT);
    memcpy(bad, key, sizeof(key));
    bad[GH_APIKEY_LEN - 1] = '\0'; /* truncated */
    assert_int_equal(find(st, bad, T0, NULL), -ENOENT);
    memcpy(bad, key, sizeof(key));
    bad[0] = 'x'; /* wrong prefix: an imported key's derived id */
    assert_int_equal(find(st, bad, T0, NULL), -ENOENT);
    memcpy(bad, key, sizeof(key));
    bad[GH_APIKEY_LEN] = ' '; /* a space after it */
    bad[GH_APIKEY_LEN + 1] = '\0';
    assert_int_equal(find(st, bad, T0, NULL), -EINVAL);
    memcpy(bad, key, sizeof(key));
    bad[30] = '\0';
    gh_apikey_presented_t p;
    assert_int_equal(gh_apikey_present(bad, GH_APIKEY_LEN, &p, NULL), -EINVAL); /* NUL inside */
    /* the same id with another secret: a presented struct built by hand */
    assert_int_equal(gh_apikey_present(key, strlen(key), &p, NULL), 0);
    p.hash[31] ^= 1;
    assert_int_equal(gh_store_key_find(st, &p, &got, &err), -ENOENT);
    gh_apikey_dispose(&rec);
}

static void test_create_refusals(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_store_error_t err;
    struct {
        gh_apikey_spec_t spec;
        const char *says;
    } cases[] = {
        {{NULL, NULL, NULL, NULL, 0}, "consumer must not be empty"},
        {{"", NULL, NULL, NULL, 0}, "consumer must not be empty"},
        {{"=cmd()", NULL, NULL, NULL, 0}, "consumer must not start with"},
        {{"a\nb", NULL, NULL, NULL, 0}, "printable"},
        {{"alice", "gold plan", NULL, NULL, 0}, "plan must be"},
        {{"alice", NULL, "a,a", NULL, 0}, "listed twice"},
        {{"alice", NULL, NULL, "\x1b[2J", 0}, "description must not contain control"},
        {{"alice", NULL, NULL, NULL, -5}, "lifetime"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(key, 'x', sizeof(key));
        assert_int_equal(gh_store_key_create(st, &cases[i].spec, T0, key, NULL, &err), -EINVAL);
        if (strstr(err.msg, cases[i].says) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, cases[i].says);
    }
    gh_apikey_t *keys;
    size_t n;
    assert_int_equal(gh_store_key_list(st, NULL, &keys, &n, &err), 0);
    assert_int_equal(n, 0);
    gh_apikey_list_free(keys, n);
}

static void test_list(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    create("bob", NULL, NULL, 0, T0 + 2, key, NULL);
    create("alice", NULL, NULL, 0, T0 + 1, key, NULL);
    create("bob", "gold", NULL, 0, T0 + 3, key, NULL);
    gh_apikey_t *keys;
    size_t n;
    gh_store_error_t err;
    assert_int_equal(gh_store_key_list(st, NULL, &keys, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(keys[0].consumer, "alice"); /* oldest first */
    assert_string_equal(keys[1].consumer, "bob");
    assert_null(keys[1].plan);
    assert_string_equal(keys[2].plan, "gold");
    gh_apikey_list_free(keys, n);
    assert_int_equal(gh_store_key_list(st, "bob", &keys, &n, &err), 0);
    assert_int_equal(n, 2);
    gh_apikey_list_free(keys, n);
    assert_int_equal(gh_store_key_list(st, "carol", &keys, &n, &err), 0);
    assert_int_equal(n, 0);
    gh_apikey_list_free(keys, n);
}

static void test_revoke(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1], other[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    gh_store_error_t err;
    create("alice", NULL, NULL, 0, T0, key, &rec);
    create("alice", NULL, NULL, 0, T0, other, NULL);
    assert_int_equal(gh_store_key_revoke(st, rec.id, T0 + 10, &err), 0);
    assert_int_equal(state_of(key, T0 + 10), GH_APIKEY_REVOKED);
    assert_int_equal(state_of(key, T0 + 1000000), GH_APIKEY_REVOKED);
    /* a reader whose clock is behind the revoker's: revoked all the same */
    assert_int_equal(state_of(key, T0 + 5), GH_APIKEY_REVOKED);
    assert_int_equal(state_of(other, T0 + 10), GH_APIKEY_VALID); /* only that one */
    assert_int_equal(gh_store_key_revoke(st, rec.id, T0 + 20, &err), -EALREADY);
    gh_apikey_t got;
    assert_int_equal(gh_store_key_get(st, rec.id, &got, &err), 0);
    assert_int_equal(got.revoked_at, T0 + 10); /* the first revocation stands */
    gh_apikey_dispose(&got);
    assert_int_equal(gh_store_key_revoke(st, "aaaaaaaaaaaa", T0, &err), -ENOENT);
    assert_int_equal(gh_store_key_revoke(st, "AAAA", T0, &err), -EINVAL);
    assert_int_equal(gh_store_key_revoke(st, "aaaaaaaaaaaa' OR 1=1 --", T0, &err), -EINVAL);
    gh_apikey_dispose(&rec);
}

static void test_expiry(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    create("alice", NULL, NULL, 90 * DAY, T0, key, &rec);
    assert_int_equal(rec.expires_at, T0 + 90 * DAY);
    assert_int_equal(gh_apikey_valid_until(&rec), T0 + 90 * DAY);
    assert_int_equal(state_of(key, T0 + 90 * DAY - 1), GH_APIKEY_VALID);
    assert_int_equal(state_of(key, T0 + 90 * DAY), GH_APIKEY_EXPIRED);
    gh_apikey_dispose(&rec);
}

static void test_rotate_with_grace(void **state)
{
    (void)state;
    char old[GH_APIKEY_LEN + 1], nk[GH_APIKEY_LEN + 1];
    gh_apikey_t orec, nrec;
    gh_store_error_t err;
    create("alice", "gold", "a,b", 30 * DAY, T0, old, &orec);
    gh_apikey_rotate_t ro = {3600, -1};
    assert_int_equal(gh_store_key_rotate(st, orec.id, &ro, T0 + DAY, nk, &nrec, &err), 0);
    assert_true(gh_apikey_is_native(nk, strlen(nk)));
    assert_string_not_equal(nk, old);
    /* the same terms */
    assert_string_equal(nrec.consumer, "alice");
    assert_string_equal(nrec.plan, "gold");
    assert_string_equal(nrec.scopes, "a b");
    assert_string_equal(nrec.description, "a key");
    assert_int_equal(nrec.created_at, T0 + DAY);
    assert_int_equal(nrec.expires_at, T0 + DAY + 30 * DAY); /* the old key's lifetime */
    /* both work during the grace; the old stops at its end */
    assert_int_equal(state_of(old, T0 + DAY + 3599), GH_APIKEY_VALID);
    assert_int_equal(state_of(nk, T0 + DAY + 3599), GH_APIKEY_VALID);
    assert_int_equal(state_of(old, T0 + DAY + 3600), GH_APIKEY_REPLACED);
    assert_int_equal(state_of(nk, T0 + DAY + 3600), GH_APIKEY_VALID);
    gh_apikey_t got;
    assert_int_equal(gh_store_key_get(st, orec.id, &got, &err), 0);
    assert_string_equal(got.replaced_by, nrec.id);
    assert_int_equal(got.grace_until, T0 + DAY + 3600);
    assert_int_equal(gh_apikey_valid_until(&got), T0 + DAY + 3600);
    gh_apikey_dispose(&got);
    /* a key rotated once is not rotated again */
    char k3[GH_APIKEY_LEN + 1];
    assert_int_equal(gh_store_key_rotate(st, orec.id, &ro, T0 + DAY, k3, NULL, &err), -EALREADY);
    assert_non_null(strstr(err.msg, nrec.id));
    /* the new key can be rotated, with grace 0 and a lifetime of its own */
    gh_apikey_rotate_t now_ro = {0, 7 * DAY};
    gh_apikey_t r3;
    assert_int_equal(gh_store_key_rotate(st, nrec.id, &now_ro, T0 + 2 * DAY, k3, &r3, &err), 0);
    assert_int_equal(state_of(nk, T0 + 2 * DAY), GH_APIKEY_REPLACED);
    assert_int_equal(r3.expires_at, T0 + 9 * DAY);
    /* a revoked key cannot be rotated */
    assert_int_equal(gh_store_key_revoke(st, r3.id, T0 + 2 * DAY, &err), 0);
    assert_int_equal(gh_store_key_rotate(st, r3.id, &ro, T0 + 2 * DAY, nk, NULL, &err), -EALREADY);
    assert_non_null(strstr(err.msg, "revoked"));
    /* grace is bounded; unknown ids */
    gh_apikey_rotate_t bad = {-1, -1};
    assert_int_equal(gh_store_key_rotate(st, orec.id, &bad, T0, nk, NULL, &err), -EINVAL);
    assert_int_equal(gh_store_key_rotate(st, "aaaaaaaaaaaa", &ro, T0, nk, NULL, &err), -ENOENT);
    /* a key without expiry rotates into one without expiry; a revoked
     * old key in its grace is revoked */
    char a[GH_APIKEY_LEN + 1], b[GH_APIKEY_LEN + 1];
    gh_apikey_t ar, br;
    create("bob", NULL, NULL, 0, T0, a, &ar);
    assert_int_equal(gh_store_key_rotate(st, ar.id, &ro, T0, b, &br, &err), 0);
    assert_int_equal(br.expires_at, 0);
    assert_int_equal(gh_store_key_revoke(st, ar.id, T0 + 1, &err), 0);
    assert_int_equal(state_of(a, T0 + 2), GH_APIKEY_REVOKED);
    assert_int_equal(state_of(b, T0 + 2), GH_APIKEY_VALID);
    gh_apikey_dispose(&ar);
    gh_apikey_dispose(&br);
    gh_apikey_dispose(&r3);
    gh_apikey_dispose(&orec);
    gh_apikey_dispose(&nrec);
}

static void test_rotation_race_has_one_winner(void **state)
{
    (void)state;
    /* Another store rotates the key after this one read it: the backend's
     * conditional update (one transaction) refuses the stale rotation, and
     * store.c says so; nothing of it is written. */
    char key[GH_APIKEY_LEN + 1], k2[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    gh_store_error_t err;
    create("alice", NULL, NULL, 0, T0, key, &rec);
    gh_store_t *other = open_again();
    gh_apikey_rotate_t ro = {60, -1};
    assert_int_equal(gh_store_key_rotate(other, rec.id, &ro, T0, k2, NULL, &err), 0);
    gh_apikey_t nk = {.id = "zzzzzzzzzzzz",
                      .consumer = (char *)"alice",
                      .scopes = (char *)"",
                      .description = (char *)"",
                      .enabled = 1,
                      .created_at = T0};
    uint8_t hash[GH_APIKEY_HASH_LEN] = {1};
    assert_int_equal(st->backend->key_rotate(st, rec.id, T0 + 60, &nk, hash, &err), -ESTALE);
    gh_apikey_t got;
    assert_int_equal(gh_store_key_get(st, "zzzzzzzzzzzz", &got, &err), -ENOENT);
    /* the same through the API: refused, as the key was rotated */
    assert_int_equal(gh_store_key_rotate(st, rec.id, &ro, T0, k2, NULL, &err), -EALREADY);
    gh_apikey_t *keys;
    size_t n;
    assert_int_equal(gh_store_key_list(st, "alice", &keys, &n, &err), 0);
    assert_int_equal(n, 2);
    gh_apikey_list_free(keys, n);
    /* a new key's id that is taken is -EEXIST, the old key unchanged */
    char k3[GH_APIKEY_LEN + 1];
    gh_apikey_t r3;
    create("bob", NULL, NULL, 0, T0, k3, &r3);
    memcpy(nk.id, r3.id, sizeof(nk.id));
    char k4[GH_APIKEY_LEN + 1];
    gh_apikey_t r4;
    create("carol", NULL, NULL, 0, T0, k4, &r4);
    assert_int_equal(st->backend->key_rotate(st, r4.id, T0 + 60, &nk, hash, &err), -EEXIST);
    assert_int_equal(gh_store_key_get(st, r4.id, &got, &err), 0);
    assert_string_equal(got.replaced_by, "");
    assert_int_equal(got.grace_until, 0);
    gh_apikey_dispose(&got);
    gh_apikey_dispose(&r3);
    gh_apikey_dispose(&r4);
    gh_store_unref(other);
    gh_apikey_dispose(&rec);
}

/* ---- import ---- */

static gh_apikey_csv_row_t row(unsigned line, const char *key, const char *name, const char *plan,
                               int enabled)
{
    gh_apikey_csv_row_t r = {
        line, (char *)key, strlen(key), (char *)name, (char *)"imported", (char *)plan, enabled};
    return r;
}

static void test_import(void **state)
{
    (void)state;
    gh_apikey_csv_row_t rows[] = {
        row(2, "apikey1234abcdefghij0123456789", "alice", "gold", 1),
        row(3, "apikey1234abcdefghij0123456788", "bob", NULL, 0),
    };
    gh_store_import_result_t res;
    gh_store_error_t err;
    /* a dry run writes nothing */
    assert_int_equal(gh_store_key_import(st, rows, 2, T0, 1, &res, &err), 0);
    assert_int_equal(res.created, 2);
    assert_int_equal(find(st, rows[0].key, T0, NULL), -ENOENT);
    free(res.errors);
    assert_int_equal(gh_store_key_import(st, rows, 2, T0, 0, &res, &err), 0);
    assert_int_equal(res.created, 2);
    assert_int_equal(res.updated, 0);
    free(res.errors);
    /* found by the derived id, compared by hash */
    assert_int_equal(state_of(rows[0].key, T0), GH_APIKEY_VALID);
    assert_int_equal(state_of(rows[1].key, T0), GH_APIKEY_DISABLED);
    gh_apikey_presented_t p;
    gh_apikey_t k;
    assert_int_equal(gh_apikey_present(rows[0].key, rows[0].key_len, &p, NULL), 0);
    assert_int_equal(gh_store_key_find(st, &p, &k, &err), 0);
    assert_int_equal(k.source, GH_APIKEY_IMPORTED);
    assert_string_equal(k.plan, "gold");
    assert_string_equal(k.description, "imported");
    gh_apikey_dispose(&k);
    /* a second import of the same keys updates them (as AWS does) */
    rows[0].consumer = (char *)"alice2";
    rows[1].enabled = 1;
    assert_int_equal(gh_store_key_import(st, rows, 2, T0 + 5, 0, &res, &err), 0);
    assert_int_equal(res.created, 0);
    assert_int_equal(res.updated, 2);
    free(res.errors);
    assert_int_equal(gh_store_key_find(st, &p, &k, &err), 0);
    assert_string_equal(k.consumer, "alice2");
    assert_int_equal(k.created_at, T0);
    gh_apikey_dispose(&k);
    assert_int_equal(state_of(rows[1].key, T0), GH_APIKEY_VALID);
    /* a revoked key is not brought back, and one bad row stops them all */
    assert_int_equal(gh_store_key_revoke(st, p.id, T0 + 6, &err), 0);
    gh_apikey_csv_row_t more[] = {
        row(2, "another-key-abcdefghij0123", "carol", NULL, 1),
        row(3, "apikey1234abcdefghij0123456789", "mallory", NULL, 1),
    };
    assert_int_equal(gh_store_key_import(st, more, 2, T0 + 7, 0, &res, &err), -EINVAL);
    assert_int_equal(res.total_errors, 1);
    assert_int_equal(res.errors[0].line, 3);
    assert_non_null(strstr(res.errors[0].msg, "revoked"));
    assert_int_equal(res.created, 0);
    free(res.errors);
    assert_int_equal(find(st, more[0].key, T0, NULL), -ENOENT);
    assert_int_equal(state_of(more[1].key, T0 + 7), GH_APIKEY_REVOKED);
    assert_int_equal(gh_store_key_find(st, &p, &k, &err), 0);
    assert_string_equal(k.consumer, "alice2"); /* not mallory */
    gh_apikey_dispose(&k);
    /* rows are checked again by the store */
    gh_apikey_csv_row_t evil[] = {row(9, "short", "x", NULL, 1)};
    assert_int_equal(gh_store_key_import(st, evil, 1, T0, 0, &res, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "line 9"));
    gh_apikey_csv_row_t evil2[] = {row(9, "long-enough-key-0123456789", "=cmd", NULL, 1)};
    assert_int_equal(gh_store_key_import(st, evil2, 1, T0, 0, &res, &err), -EINVAL);
}

static void test_import_of_a_native_key_with_a_taken_id(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1], forged[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    create("alice", NULL, NULL, 0, T0, key, &rec);
    /* a gh_ key with alice's id and another secret: its id is alice's, so
     * the import must not overwrite her key's consumer */
    memcpy(forged, key, sizeof(key));
    forged[GH_APIKEY_LEN - 1] = forged[GH_APIKEY_LEN - 1] == 'a' ? 'b' : 'a';
    gh_apikey_csv_row_t rows[] = {row(2, forged, "mallory", NULL, 1)};
    gh_store_import_result_t res;
    gh_store_error_t err;
    assert_int_equal(gh_store_key_import(st, rows, 1, T0, 0, &res, &err), -EINVAL);
    assert_int_equal(res.total_errors, 1);
    assert_non_null(strstr(res.errors[0].msg, "taken by another key"));
    free(res.errors);
    gh_apikey_t got;
    assert_int_equal(gh_store_key_get(st, rec.id, &got, &err), 0);
    assert_string_equal(got.consumer, "alice");
    gh_apikey_dispose(&got);
    assert_int_equal(find(st, forged, T0, NULL), -ENOENT);
    gh_apikey_dispose(&rec);
}

/* ---- usage ---- */

static void test_usage(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    gh_store_error_t err;
    create("alice", NULL, NULL, 0, T0, key, &rec);
    int64_t day0 = T0 / DAY;
    for (unsigned w = 0; w < 12; w++) /* 12 workers, fewer shards */
        gh_store_usage_add(st, NULL, w, rec.id, T0, 2);
    gh_store_usage_add(st, NULL, 0, rec.id, (day0 + 1) * DAY, 5);     /* next UTC day */
    gh_store_usage_add(st, NULL, 0, rec.id, (day0 + 1) * DAY - 1, 1); /* still day 0 */
    gh_store_usage_add(st, NULL, 0, "not-an-id", T0, 1000);           /* ignored */
    uint64_t c[3];
    /* pending counts are included before they are written */
    assert_int_equal(gh_store_usage_get(st, rec.id, day0 - 1, day0 + 1, c, &err), 0);
    assert_int_equal(c[0], 0);
    assert_int_equal(c[1], 25);
    assert_int_equal(c[2], 5);
    assert_int_equal(gh_store_usage_flush(st, &err), 0);
    /* written: another store on the file sees them */
    gh_store_t *other = open_again();
    assert_int_equal(gh_store_usage_get(other, rec.id, day0 - 1, day0 + 1, c, &err), 0);
    assert_int_equal(c[1], 25);
    assert_int_equal(c[2], 5);
    /* written counts add up with later ones */
    gh_store_usage_add(st, NULL, 3, rec.id, T0, 10);
    assert_int_equal(gh_store_usage_flush(st, &err), 0);
    assert_int_equal(gh_store_usage_flush(st, &err), 0); /* nothing pending: no-op */
    assert_int_equal(gh_store_usage_get(other, rec.id, day0, day0, c, &err), 0);
    assert_int_equal(c[0], 35);
    /* the last unref writes what is pending */
    gh_store_usage_add(other, NULL, 0, rec.id, T0, 7);
    gh_store_unref(other);
    assert_int_equal(gh_store_usage_get(st, rec.id, day0, day0, c, &err), 0);
    assert_int_equal(c[0], 42);
    /* ranges */
    assert_int_equal(gh_store_usage_get(st, rec.id, day0, day0 - 1, c, &err), -EINVAL);
    assert_int_equal(gh_store_usage_get(st, "x", day0, day0, c, &err), -EINVAL);
    uint64_t *big = calloc(3660, sizeof(*big));
    assert_int_equal(gh_store_usage_get(st, rec.id, day0 - 3659, day0, big, &err), 0);
    assert_int_equal(big[3659], 42);
    assert_int_equal(gh_store_usage_get(st, rec.id, day0 - 3660, day0, big, &err), -EINVAL);
    free(big);
    assert_int_equal(gh_store_usage_dropped(st), 0);
    gh_apikey_dispose(&rec);
}

static void test_usage_bound(void **state)
{
    (void)state;
    gh_store_error_t err;
    /* one shard takes GH_STORE_USAGE_PENDING_MAX (id, day) pairs; more new
     * pairs are dropped and counted, existing pairs still count */
    char id[13] = "aaaaaaaaaaaa";
    for (unsigned i = 0; i < GH_STORE_USAGE_PENDING_MAX; i++)
        gh_store_usage_add(st, NULL, 1, id, (int64_t)i * DAY, 1);
    gh_store_usage_add(st, NULL, 1, id, (int64_t)GH_STORE_USAGE_PENDING_MAX * DAY, 3);
    assert_int_equal(gh_store_usage_dropped(st), 3);
    gh_store_usage_add(st, NULL, 1, id, 0, 1);
    gh_store_usage_add(st, NULL, 2, "bbbbbbbbbbbb", 0, 1); /* another shard has room */
    assert_int_equal(gh_store_usage_dropped(st), 3);
    uint64_t c[1];
    assert_int_equal(gh_store_usage_get(st, id, 0, 0, c, &err), 0);
    assert_int_equal(c[0], 2);
    /* written, the shard has room again */
    assert_int_equal(gh_store_usage_flush(st, &err), 0);
    gh_store_usage_add(st, NULL, 1, id, (int64_t)GH_STORE_USAGE_PENDING_MAX * DAY, 3);
    assert_int_equal(gh_store_usage_dropped(st), 3);
    assert_int_equal(gh_store_usage_flush(st, &err), 0);
    assert_int_equal(
        gh_store_usage_get(st, id, GH_STORE_USAGE_PENDING_MAX, GH_STORE_USAGE_PENDING_MAX, c, &err),
        0);
    assert_int_equal(c[0], 3);
}

/* ---- two stores on one backing: the CLI beside a server ---- */

static void test_two_stores_share_the_backing(void **state)
{
    (void)state;
    gh_store_t *cli = open_again();
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    gh_store_error_t err;
    gh_apikey_spec_t spec = {"alice", NULL, NULL, NULL, 0};
    assert_int_equal(gh_store_key_create(cli, &spec, T0, key, &rec, &err), 0);
    gh_apikey_state_t s;
    assert_int_equal(find(st, key, T0, &s), 0); /* the server sees the CLI's key */
    assert_int_equal(s, GH_APIKEY_VALID);
    assert_int_equal(gh_store_key_revoke(cli, rec.id, T0 + 1, &err), 0);
    assert_int_equal(find(st, key, T0 + 1, &s), 0);
    assert_int_equal(s, GH_APIKEY_REVOKED);
    /* the server's revocation, seen by the CLI: one state */
    char k2[GH_APIKEY_LEN + 1];
    gh_apikey_t r2;
    assert_int_equal(gh_store_key_create(st, &spec, T0, k2, &r2, &err), 0);
    assert_int_equal(gh_store_key_revoke(st, r2.id, T0 + 2, &err), 0);
    assert_int_equal(gh_store_key_revoke(cli, r2.id, T0 + 3, &err), -EALREADY);
    /* keys survive closing and opening again */
    gh_store_unref(cli);
    gh_store_unref(st);
    st = open_again();
    assert_int_equal(find(st, key, T0 + 1, &s), 0);
    assert_int_equal(s, GH_APIKEY_REVOKED);
    assert_int_equal(find(st, k2, T0, &s), 0);
    assert_int_equal(s, GH_APIKEY_REVOKED);
    gh_apikey_t got;
    assert_int_equal(gh_store_key_get(st, r2.id, &got, &err), 0);
    assert_int_equal(got.revoked_at, T0 + 2);
    gh_apikey_dispose(&got);
    gh_apikey_dispose(&rec);
    gh_apikey_dispose(&r2);
}

/* ---- asynchronous lookups ---- */

static int guard_fired;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_fired = 1;
}

/* Runs loop until cond(arg); fails the case after GUARD_MS, far beyond
 * every timeout the cases use (no case asserts how long anything took). */
static void run_until(uv_loop_t *loop, int (*cond)(void *), void *arg)
{
    uv_timer_t guard;
    guard_fired = 0;
    uv_timer_init(loop, &guard);
    uv_timer_start(&guard, on_guard, GUARD_MS, 0);
    uv_unref((uv_handle_t *)&guard);
    while (!cond(arg) && !guard_fired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (!cond(arg))
        fail_msg("condition not met within the guard time");
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* A worker's end: every handle closed by a walk, the loop run out, then
 * the store told (gh_store_loop_end), and the loop closed: nothing of the
 * store may be left on it. */
static void loop_done(uv_loop_t *loop)
{
    uv_walk(loop, close_any, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    gh_store_loop_end(loop);
    assert_int_equal(uv_loop_close(loop), 0);
}

typedef struct {
    int calls;
    int status;
    char consumer[64];
    gh_apikey_state_t state;
} answer_t;

static void on_answer(void *arg, int status, const gh_apikey_t *k)
{
    answer_t *a = arg;
    a->calls++;
    a->status = status;
    if (status == 0) {
        assert_non_null(k);
        snprintf(a->consumer, sizeof(a->consumer), "%s", k->consumer);
        a->state = gh_apikey_state(k, T0 + 100);
    } else {
        assert_null(k);
    }
}

static int lookup(uv_loop_t *loop, const char *key, answer_t *a, gh_store_req_t **req)
{
    gh_apikey_presented_t p;
    assert_int_equal(gh_apikey_present(key, strlen(key), &p, NULL), 0);
    return gh_store_key_lookup(st, loop, &p, on_answer, a, req);
}

/* cond: every answer of a NULL-terminated list came */
static int answered(void *arg)
{
    answer_t **a = arg;
    for (; *a != NULL; a++)
        if ((*a)->calls == 0)
            return 0;
    return 1;
}

static void test_async_lookup(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char key[GH_APIKEY_LEN + 1], imported[] = "AWSAWSAWSAWSAWSAWSAWS-0123456789";
    gh_apikey_t rec;
    gh_store_error_t err;
    gh_store_import_result_t res;
    create("alice", NULL, NULL, 50, T0, key, &rec);
    gh_apikey_csv_row_t rows[] = {row(2, imported, "bob", NULL, 1)};
    assert_int_equal(gh_store_key_import(st, rows, 1, T0, 0, &res, &err), 0);
    free(res.errors);
    answer_t a = {0}, b = {0}, miss = {0}, wrong = {0};
    gh_store_req_t *r1, *r2, *r3, *r4;
    assert_int_equal(lookup(&loop, key, &a, &r1), 0);
    assert_int_equal(lookup(&loop, imported, &b, &r2), 0);
    char other[GH_APIKEY_LEN + 1];
    assert_int_equal(gh_apikey_generate(other), 0);
    assert_int_equal(lookup(&loop, other, &miss, &r3), 0);
    char bad[GH_APIKEY_LEN + 1];
    memcpy(bad, key, sizeof(key));
    bad[50] = bad[50] == 'Q' ? 'R' : 'Q';
    assert_int_equal(lookup(&loop, bad, &wrong, &r4), 0);
    /* never answered from inside the call */
    assert_int_equal(a.calls + b.calls + miss.calls + wrong.calls, 0);
    answer_t *all[] = {&a, &b, &miss, &wrong, NULL};
    run_until(&loop, answered, all);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    assert_string_equal(a.consumer, "alice");
    assert_int_equal(a.state, GH_APIKEY_EXPIRED); /* judged by the caller at its time */
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, 0);
    assert_string_equal(b.consumer, "bob");
    assert_int_equal(miss.calls, 1);
    assert_int_equal(miss.status, -ENOENT);
    assert_int_equal(wrong.calls, 1);
    assert_int_equal(wrong.status, -ENOENT); /* the same answer as an unknown id */
    /* a malformed id is refused at once, and cb never runs */
    gh_apikey_presented_t p = {.id = "nope"};
    gh_store_req_t *r = (gh_store_req_t *)&p;
    assert_int_equal(gh_store_key_lookup(st, &loop, &p, on_answer, &a, &r), -EINVAL);
    assert_null(r);
    loop_done(&loop);
    assert_int_equal(atomic_load(&st->pending), 0);
    gh_apikey_dispose(&rec);
}

static void test_async_cancel(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char key[GH_APIKEY_LEN + 1];
    create("alice", NULL, NULL, 0, T0, key, NULL);
    /* Many lookups, every other one cancelled at once: whether its job
     * was still queued or already running, its callback never runs (arg
     * points at memory the caller is about to reuse), and nothing leaks. */
    enum { N = 64 };
    answer_t *ans = calloc(N, sizeof(*ans));
    gh_store_req_t *reqs[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(lookup(&loop, key, &ans[i], &reqs[i]), 0);
        if (i % 2)
            gh_store_req_cancel(reqs[i]);
    }
    answer_t *even[N / 2 + 1];
    for (int i = 0; i < N / 2; i++)
        even[i] = &ans[2 * i];
    even[N / 2] = NULL;
    run_until(&loop, answered, even);
    loop_done(&loop); /* the cancelled ones end by now, callbacks or not */
    assert_int_equal(atomic_load(&st->pending), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ans[i].calls, i % 2 ? 0 : 1);
        if (i % 2 == 0)
            assert_int_equal(ans[i].status, 0);
    }
    free(ans);
}

static void test_async_bound_and_release(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    gh_store_unref(st);
    gh_store_conf_t c = conf_here();
    c.max_pending = 3;
    gh_store_error_t err;
    assert_int_equal(gh_store_open(&c, 0, &st, &err), 0);
    gh_store_conf_dispose(&c);
    char key[GH_APIKEY_LEN + 1];
    create("alice", NULL, NULL, 0, T0, key, NULL);
    answer_t a[5] = {{0}};
    gh_store_req_t *r[5];
    for (int i = 0; i < 3; i++)
        assert_int_equal(lookup(&loop, key, &a[i], &r[i]), 0);
    /* the fourth waits for nobody: refused, no callback */
    assert_int_equal(lookup(&loop, key, &a[3], &r[3]), -EAGAIN);
    assert_null(r[3]);
    /* the owner lets go of the store while lookups are in flight: each
     * request holds it until answered */
    gh_store_t *gone = st;
    st = NULL;
    gh_store_unref(gone);
    answer_t *three[] = {&a[0], &a[1], &a[2], NULL};
    run_until(&loop, answered, three);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a[i].calls, 1);
        assert_int_equal(a[i].status, 0);
    }
    assert_int_equal(a[3].calls, 0);
    loop_done(&loop);
    st = open_again();
    /* room again once answered */
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(lookup(&loop, key, &a[4], &r[4]), 0);
    answer_t *last[] = {&a[4], NULL};
    run_until(&loop, answered, last);
    assert_int_equal(a[4].calls, 1);
    assert_int_equal(a[4].status, 0);
    loop_done(&loop);
}

static void test_async_sees_revocation_by_another_store(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    gh_store_error_t err;
    create("alice", NULL, NULL, 0, T0, key, &rec);
    answer_t a = {0};
    gh_store_req_t *r;
    answer_t *one[] = {&a, NULL};
    assert_int_equal(lookup(&loop, key, &a, &r), 0);
    run_until(&loop, answered, one);
    assert_int_equal(a.state, GH_APIKEY_VALID);
    gh_store_t *cli = open_again();
    assert_int_equal(gh_store_key_revoke(cli, rec.id, T0 + 1, &err), 0);
    gh_store_unref(cli);
    memset(&a, 0, sizeof(a));
    assert_int_equal(lookup(&loop, key, &a, &r), 0);
    run_until(&loop, answered, one);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.state, GH_APIKEY_REVOKED); /* a pooled connection sees the new write */
    loop_done(&loop);
    gh_apikey_dispose(&rec);
}

/* ---- the flush timer ---- */

static void noop(uv_timer_t *t)
{
    (void)t;
}

static void test_start_writes_usage_from_the_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    gh_store_unref(st);
    gh_store_conf_t c = conf_here();
    c.usage_flush_ms = 5;
    gh_store_error_t err;
    assert_int_equal(gh_store_open(&c, 0, &st, &err), 0);
    gh_store_conf_dispose(&c);
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    create("alice", NULL, NULL, 0, T0, key, &rec);
    assert_int_equal(gh_store_start(st, &loop), 0);
    assert_int_equal(gh_store_start(st, &loop), -EALREADY);
    gh_store_usage_add(st, &loop, 0, rec.id, T0, 4);
    gh_store_t *reader = open_again();
    uint64_t n[1] = {0};
    /* the timer does not hold the loop: run it until the count is
     * written, as another store reads it (a deadline guards the test) */
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, noop, 1, 1);
    uint64_t deadline = uv_now(&loop) + 20000;
    while (n[0] == 0 && uv_now(&loop) < deadline) {
        uv_run(&loop, UV_RUN_ONCE);
        assert_int_equal(gh_store_usage_get(reader, rec.id, T0 / DAY, T0 / DAY, n, &err), 0);
    }
    assert_int_equal(n[0], 4);
    /* stop writes what is pending at once */
    gh_store_usage_add(st, &loop, 0, rec.id, T0, 1);
    gh_store_stop(st);
    assert_int_equal(gh_store_usage_get(reader, rec.id, T0 / DAY, T0 / DAY, n, &err), 0);
    assert_int_equal(n[0], 5);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    gh_store_unref(reader);
    gh_apikey_dispose(&rec);
}

#define STORE_CASES(setup, teardown)                                                               \
    cmocka_unit_test(test_state_order),                                                            \
        cmocka_unit_test_setup_teardown(test_create_and_find, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(test_create_refusals, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),                               \
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),                             \
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),                             \
        cmocka_unit_test_setup_teardown(test_rotate_with_grace, setup, teardown),                  \
        cmocka_unit_test_setup_teardown(test_rotation_race_has_one_winner, setup, teardown),       \
        cmocka_unit_test_setup_teardown(test_import, setup, teardown),                             \
        cmocka_unit_test_setup_teardown(test_import_of_a_native_key_with_a_taken_id, setup,        \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),                              \
        cmocka_unit_test_setup_teardown(test_usage_bound, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_two_stores_share_the_backing, setup, teardown),       \
        cmocka_unit_test_setup_teardown(test_async_lookup, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(test_async_cancel, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(test_async_bound_and_release, setup, teardown),            \
        cmocka_unit_test_setup_teardown(test_async_sees_revocation_by_another_store, setup,        \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_start_writes_usage_from_the_loop, setup, teardown)

#endif
