/*
 * The store's OAuth-client and token-revocation cases every backend must
 * pass, with an injected clock: create (and every refusal of what a client
 * is registered with), get, list, revoke, rotate-secret with its grace
 * (the time moved across it), the compare-and-set of a rotation, ids with
 * odd bytes, the asynchronous lookup (answers, cancellation, a revocation
 * by another store seen), the revocation feed (numbers, cursor,
 * expiry, purging, paging, a feed that restarts, the async add), and
 * client-assertion claims (a replay refused, per client, seen by another
 * store, claimed again once passed, bad input, the async claim).
 *
 * Included after store_cases.h (which has the store `st`, the loop
 * helpers and the backend hooks) by test_store.c and test_store_redis.c;
 * they list CLIENT_CASES(setup, teardown) and define one more hook:
 *
 *   static void claims_pass(int64_t t);  what the backend does by itself
 *       once time t has come to the claims whose until <= t (SQLite:
 *       nothing, the caller's now decides; Redis: each expires by its
 *       own TTL, which the test cannot wait for under an injected clock).
 */
#ifndef GH_TEST_CLIENT_CASES_H
#define GH_TEST_CLIENT_CASES_H

#include <gatehouse/client.h>

/* RFC 7517 appendix A.1's EC public key (without its "use": enc), A.2's
 * private key of the same pair, A.3's symmetric key: data from the
 * specification. */
#define EC_PUBLIC                                                                                  \
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","     \
    "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\",\"kid\":\"1\"}"
#define EC_PRIVATE                                                                                 \
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","     \
    "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\","                                       \
    "\"d\":\"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE\",\"kid\":\"1\"}"
#define OCT_KEY                                                                                    \
    "{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-"               \
    "EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\",\"kid\":\"HMAC key used in JWS "        \
    "spec Appendix A.1 example\"}"

static void client_new(const char *name, const char *scopes, const char *auds, const char *jwks,
                       int64_t now, char secret[GH_CLIENT_SECRET_LEN + 1], gh_client_t *rec)
{
    gh_client_spec_t spec = {name, scopes, auds, 0, jwks, 0};
    gh_store_error_t err = {""};
    int rc = gh_store_client_create(st, &spec, now, secret, rec, &err);
    if (rc != 0)
        fail_msg("client create: %d %s", rc, err.msg);
}

/* Which secret s is of client id, read back from the store at now. */
static int secret_is(gh_store_t *s, const char *id, const char *secret, int64_t now)
{
    gh_client_t c;
    gh_store_error_t err;
    assert_int_equal(gh_store_client_get(s, id, &c, &err), 0);
    int r = gh_client_secret_check(&c, secret, strlen(secret), now);
    gh_client_dispose(&c);
    return r;
}

static size_t client_count(void)
{
    gh_client_t *all;
    size_t n;
    gh_store_error_t err;
    assert_int_equal(gh_store_client_list(st, &all, &n, &err), 0);
    gh_client_list_free(all, n);
    return n;
}

static void test_client_create_and_get(void **state)
{
    (void)state;
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t rec, got;
    gh_store_error_t err;
    gh_client_spec_t spec = {"Orders service",
                             "orders.read, orders.write",
                             "https://api.example.com/orders orders",
                             0,
                             NULL,
                             300};
    assert_int_equal(gh_store_client_create(st, &spec, T0, secret, &rec, &err), 0);
    assert_true(gh_client_id_valid(rec.id));
    assert_int_equal(strlen(secret), GH_CLIENT_SECRET_LEN);
    assert_true(gh_client_secret_valid_n(secret, strlen(secret)));
    assert_string_equal(rec.name, "Orders service");
    assert_string_equal(rec.scopes, "orders.read orders.write");
    assert_string_equal(rec.audiences, "https://api.example.com/orders orders");
    assert_int_equal(rec.auth_methods, GH_CLIENT_AUTH_SECRET);
    assert_null(rec.jwks);
    assert_int_equal(rec.token_ttl, 300);
    assert_int_equal(rec.created_at, T0);
    assert_int_equal(rec.revoked_at, 0);
    assert_int_equal(rec.has_secret, 1);
    assert_int_equal(gh_client_secret_check(&rec, secret, strlen(secret), T0), 1);

    assert_int_equal(gh_store_client_get(st, rec.id, &got, &err), 0);
    assert_string_equal(got.id, rec.id);
    assert_string_equal(got.name, rec.name);
    assert_string_equal(got.scopes, rec.scopes);
    assert_string_equal(got.audiences, rec.audiences);
    assert_int_equal(got.auth_methods, rec.auth_methods);
    assert_int_equal(got.token_ttl, 300);
    assert_int_equal(got.created_at, T0);
    assert_memory_equal(got.secret_hash, rec.secret_hash, GH_CLIENT_HASH_LEN);
    assert_int_equal(got.prev_valid_until, 0);
    assert_int_equal(gh_client_state(&got, T0), GH_CLIENT_ACTIVE);
    gh_client_dispose(&got);

    /* the backing holds the secret's hash, never the secret */
    raw_lacks(secret + 8, 20);
    /* near misses of the secret are not it */
    char bad[GH_CLIENT_SECRET_LEN + 2];
    memcpy(bad, secret, sizeof(secret));
    bad[GH_CLIENT_SECRET_LEN - 1] ^= 1;
    assert_int_equal(secret_is(st, rec.id, bad, T0), 0);
    memcpy(bad, secret, sizeof(secret));
    bad[GH_CLIENT_SECRET_LEN] = ' ';
    bad[GH_CLIENT_SECRET_LEN + 1] = '\0';
    assert_int_equal(secret_is(st, rec.id, bad, T0), 0);
    assert_int_equal(gh_client_secret_check(&rec, secret, GH_CLIENT_SECRET_LEN - 1, T0), 0);
    assert_int_equal(gh_client_secret_check(&rec, "", 0, T0), 0);
    assert_int_equal(gh_client_secret_check(&rec, NULL, 0, T0), 0);
    /* another client's secret is not this one's */
    char s2[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t r2;
    client_new("Billing", NULL, "billing", NULL, T0, s2, &r2);
    assert_string_not_equal(r2.id, rec.id);
    assert_int_equal(secret_is(st, rec.id, s2, T0), 0);
    assert_int_equal(secret_is(st, r2.id, s2, T0), 1);
    assert_string_equal(r2.scopes, "");
    assert_int_equal(gh_store_client_get(st, "ghc_aaaaaaaaaaaaaaaa", &got, &err), -ENOENT);
    gh_client_dispose(&r2);
    gh_client_dispose(&rec);
}

static void test_client_create_refusals(void **state)
{
    (void)state;
    char secret[GH_CLIENT_SECRET_LEN + 1], longname[200], longscope[140], manyscopes[64 * 4 + 8],
        longaud[300], manyauds[40 * 4], bigjwks[GH_CLIENT_JWKS_MAX + 100];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    memset(longscope, 's', 129);
    longscope[129] = '\0';
    manyscopes[0] = '\0';
    for (int i = 0; i < 65; i++)
        snprintf(manyscopes + strlen(manyscopes), sizeof(manyscopes) - strlen(manyscopes), "s%d ",
                 i);
    memcpy(longaud, "https://", 8);
    memset(longaud + 8, 'a', 250);
    longaud[258] = '\0';
    manyauds[0] = '\0';
    for (int i = 0; i < 33; i++)
        snprintf(manyauds + strlen(manyauds), sizeof(manyauds) - strlen(manyauds), "a%d,", i);
    /* a valid JWKS made large by whitespace */
    memset(bigjwks, ' ', sizeof(bigjwks));
    memcpy(bigjwks, EC_PUBLIC, strlen(EC_PUBLIC));
    bigjwks[sizeof(bigjwks) - 1] = '\0';
    struct {
        gh_client_spec_t spec;
        const char *says;
    } cases[] = {
        {{NULL, NULL, "a", 0, NULL, 0}, "name must not be empty"},
        {{"", NULL, "a", 0, NULL, 0}, "name must not be empty"},
        {{longname, NULL, "a", 0, NULL, 0}, "at most 128"},
        {{" x", NULL, "a", 0, NULL, 0}, "space"},
        {{"x ", NULL, "a", 0, NULL, 0}, "space"},
        {{"a\nb", NULL, "a", 0, NULL, 0}, "control"},
        {{"\x1b[2J", NULL, "a", 0, NULL, 0}, "control"},
        {{"a\xc2\x85", NULL, "a", 0, NULL, 0}, "control"},  /* C1 NEL */
        {{"\xc0\xaf", NULL, "a", 0, NULL, 0}, "UTF-8"},     /* overlong '/' */
        {{"\xed\xa0\x80", NULL, "a", 0, NULL, 0}, "UTF-8"}, /* a surrogate */
        {{"\xff", NULL, "a", 0, NULL, 0}, "UTF-8"},
        {{"=HYPERLINK()", NULL, "a", 0, NULL, 0}, "formula"},
        {{"@x", NULL, "a", 0, NULL, 0}, "formula"},
        {{"n", "a\"b", "a", 0, NULL, 0}, "scope"},
        {{"n", "a\\b", "a", 0, NULL, 0}, "scope"},
        {{"n", "a\tb", "a", 0, NULL, 0}, "scope"},
        {{"n", "caf\xc3\xa9", "a", 0, NULL, 0}, "scope"},
        {{"n", "a b a", "a", 0, NULL, 0}, "twice"},
        {{"n", longscope, "a", 0, NULL, 0}, "longer than 128"},
        {{"n", manyscopes, "a", 0, NULL, 0}, "more than 64"},
        {{"n", NULL, NULL, 0, NULL, 0}, "at least one audience"},
        {{"n", NULL, " , ", 0, NULL, 0}, "at least one audience"},
        {{"n", NULL, "https://x/#frag", 0, NULL, 0}, "fragment"},
        {{"n", NULL, "1http://x", 0, NULL, 0}, "absolute URI"},
        {{"n", NULL, ":x", 0, NULL, 0}, "absolute URI"},
        {{"n", NULL, "a\"b", 0, NULL, 0}, "audience"},
        {{"n", NULL, "a\x7f", 0, NULL, 0}, "audience"},
        {{"n", NULL, "x,x", 0, NULL, 0}, "twice"},
        {{"n", NULL, longaud, 0, NULL, 0}, "longer than 256"},
        {{"n", NULL, manyauds, 0, NULL, 0}, "more than 32"},
        {{"n", NULL, "a", 0, NULL, -1}, "lifetime"},
        {{"n", NULL, "a", 0, NULL, GH_CLIENT_TTL_MAX + 1}, "lifetime"},
        {{"n", NULL, "a", 1u << 7, NULL, 0}, "unknown authentication"},
        {{"n", NULL, "a", GH_CLIENT_AUTH_PRIVATE_KEY_JWT, NULL, 0}, "needs the client's public"},
        {{"n", NULL, "a", GH_CLIENT_AUTH_SECRET_BASIC, EC_PUBLIC, 0}, "only for private_key_jwt"},
        {{"n", NULL, "a", 0, "{", 0}, "JWKS is refused"},
        {{"n", NULL, "a", 0, "", 0}, "empty"},
        {{"n", NULL, "a", 0, "[]", 0}, "JWKS is refused"},
        {{"n", NULL, "a", 0, "{\"keys\":[]}", 0}, "JWKS is refused"},
        {{"n", NULL, "a", 0, "{\"keys\":[" EC_PUBLIC "," EC_PRIVATE "]}", 0}, "cannot verify"},
        {{"n", NULL, "a", 0, EC_PRIVATE, 0}, "JWKS"},
        {{"n", NULL, "a", 0, OCT_KEY, 0}, "JWKS"},
        {{"n", NULL, "a", 0, bigjwks, 0}, "larger than"},
    };
    gh_store_error_t err;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(secret, 'x', sizeof(secret));
        gh_client_t rec;
        int rc = gh_store_client_create(st, &cases[i].spec, T0, secret, &rec, &err);
        if (rc != -EINVAL)
            fail_msg("case %zu: %d, not -EINVAL", i, rc);
        if (strstr(err.msg, cases[i].says) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, cases[i].says);
        assert_int_equal(secret[0], '\0'); /* no secret shown for a refusal */
        assert_null(rec.name);
    }
    assert_int_equal(client_count(), 0);
}

static void test_client_jwks(void **state)
{
    (void)state;
    char secret[GH_CLIENT_SECRET_LEN + 1], s2[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t rec, got;
    gh_store_error_t err;
    client_new("Signer", "a", "x", "{\"keys\":[" EC_PUBLIC "]}", T0, secret, &rec);
    /* keys given: private_key_jwt only, and no secret */
    assert_int_equal(rec.auth_methods, GH_CLIENT_AUTH_PRIVATE_KEY_JWT);
    assert_string_equal(secret, "");
    assert_int_equal(rec.has_secret, 0);
    assert_int_equal(gh_store_client_get(st, rec.id, &got, &err), 0);
    assert_string_equal(got.jwks, "{\"keys\":[" EC_PUBLIC "]}");
    assert_int_equal(got.has_secret, 0);
    /* a secret of zeros' hash would match nothing: no secret is no secret */
    uint8_t zeros[GH_CLIENT_HASH_LEN] = {0};
    assert_int_equal(gh_client_secret_check_hash(&got, zeros, T0), 0);
    gh_client_dispose(&got);
    assert_int_equal(gh_store_client_rotate_secret(st, rec.id, 60, T0, s2, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "no secret"));
    assert_string_equal(s2, "");
    /* both: a secret and the keys */
    gh_client_spec_t both = {"Both", NULL, "x", GH_CLIENT_AUTH_ALL, EC_PUBLIC, 0};
    gh_client_t r2;
    assert_int_equal(gh_store_client_create(st, &both, T0, s2, &r2, &err), 0);
    assert_int_equal(r2.auth_methods, GH_CLIENT_AUTH_ALL);
    assert_int_equal(secret_is(st, r2.id, s2, T0), 1);
    gh_client_dispose(&r2);
    gh_client_dispose(&rec);
}

static void test_client_list(void **state)
{
    (void)state;
    char secret[GH_CLIENT_SECRET_LEN + 1];
    client_new("b", NULL, "x", NULL, T0 + 2, secret, NULL);
    client_new("a", NULL, "x", NULL, T0 + 1, secret, NULL);
    client_new("c", NULL, "x", EC_PUBLIC, T0 + 3, secret, NULL);
    gh_client_t *all;
    size_t n;
    gh_store_error_t err;
    assert_int_equal(gh_store_client_list(st, &all, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(all[0].name, "a"); /* oldest first */
    assert_string_equal(all[1].name, "b");
    assert_string_equal(all[2].name, "c");
    assert_non_null(all[2].jwks);
    gh_client_list_free(all, n);
    /* API keys and clients are apart */
    gh_apikey_t *keys;
    assert_int_equal(gh_store_key_list(st, NULL, &keys, &n, &err), 0);
    assert_int_equal(n, 0);
    gh_apikey_list_free(keys, n);
}

static void test_client_revoke(void **state)
{
    (void)state;
    char secret[GH_CLIENT_SECRET_LEN + 1], s2[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t rec, got;
    gh_store_error_t err;
    client_new("a", NULL, "x", NULL, T0, secret, &rec);
    assert_int_equal(gh_store_client_revoke(st, rec.id, T0 + 5, &err), 0);
    assert_int_equal(gh_store_client_revoke(st, rec.id, T0 + 6, &err), -EALREADY);
    assert_int_equal(gh_store_client_get(st, rec.id, &got, &err), 0);
    assert_int_equal(got.revoked_at, T0 + 5); /* the first revocation stands */
    /* revoked whatever the reader's clock says */
    assert_int_equal(gh_client_state(&got, T0), GH_CLIENT_REVOKED);
    assert_string_equal(gh_client_state_name(gh_client_state(&got, T0)), "revoked");
    gh_client_dispose(&got);
    assert_int_equal(gh_store_client_rotate_secret(st, rec.id, 60, T0 + 7, s2, NULL, &err),
                     -EALREADY);
    assert_string_equal(s2, "");
    assert_int_equal(secret_is(st, rec.id, secret, T0 + 7), 1); /* its secret is unchanged */
    assert_int_equal(gh_store_client_revoke(st, "ghc_aaaaaaaaaaaaaaaa", T0, &err), -ENOENT);
    /* another store sees it */
    gh_store_t *other = open_again();
    assert_int_equal(gh_store_client_get(other, rec.id, &got, &err), 0);
    assert_int_equal(got.revoked_at, T0 + 5);
    gh_client_dispose(&got);
    gh_store_unref(other);
    gh_client_dispose(&rec);
}

static void test_client_rotate_with_grace(void **state)
{
    (void)state;
    char s0[GH_CLIENT_SECRET_LEN + 1], s1[GH_CLIENT_SECRET_LEN + 1], s2[GH_CLIENT_SECRET_LEN + 1],
        s3[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t rec, r1;
    gh_store_error_t err;
    client_new("a", "x", "y", NULL, T0, s0, &rec);
    assert_int_equal(gh_store_client_rotate_secret(st, rec.id, 100, T0 + 10, s1, &r1, &err), 0);
    assert_string_not_equal(s0, s1);
    assert_int_equal(r1.secret_rotated_at, T0 + 10);
    assert_int_equal(r1.prev_valid_until, T0 + 110);
    assert_string_equal(r1.scopes, "x"); /* everything else unchanged */
    assert_int_equal(secret_is(st, rec.id, s1, T0 + 10), 1);
    assert_int_equal(secret_is(st, rec.id, s0, T0 + 10), 2);
    assert_int_equal(secret_is(st, rec.id, s0, T0 + 109), 2);
    assert_int_equal(secret_is(st, rec.id, s0, T0 + 110), 0); /* the grace is over */
    assert_int_equal(secret_is(st, rec.id, s1, T0 + 100000), 1);
    raw_lacks(s1 + 8, 20);
    /* a second rotation within the grace: the oldest secret stops at once */
    assert_int_equal(gh_store_client_rotate_secret(st, rec.id, 50, T0 + 20, s2, NULL, &err), 0);
    assert_int_equal(secret_is(st, rec.id, s0, T0 + 20), 0);
    assert_int_equal(secret_is(st, rec.id, s1, T0 + 20), 2);
    assert_int_equal(secret_is(st, rec.id, s2, T0 + 20), 1);
    assert_int_equal(secret_is(st, rec.id, s1, T0 + 70), 0);
    /* grace 0: the old secret stops at once */
    assert_int_equal(gh_store_client_rotate_secret(st, rec.id, 0, T0 + 30, s3, NULL, &err), 0);
    assert_int_equal(secret_is(st, rec.id, s2, T0 + 30), 0);
    assert_int_equal(secret_is(st, rec.id, s1, T0 + 30), 0);
    assert_int_equal(secret_is(st, rec.id, s3, T0 + 30), 1);
    /* bounds */
    assert_int_equal(gh_store_client_rotate_secret(st, rec.id, -1, T0, s2, NULL, &err), -EINVAL);
    assert_int_equal(
        gh_store_client_rotate_secret(st, rec.id, GH_CLIENT_GRACE_MAX + 1, T0, s2, NULL, &err),
        -EINVAL);
    assert_int_equal(secret_is(st, rec.id, s3, T0 + 30), 1);
    gh_client_dispose(&r1);
    gh_client_dispose(&rec);
}

static void test_client_rotation_race_has_one_winner(void **state)
{
    (void)state;
    /* Another store rotates after this one read the client: the backend's
     * compare-and-set on the secret hash refuses the stale rotation, and
     * nothing of it is written. */
    char s0[GH_CLIENT_SECRET_LEN + 1], s1[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t rec, stale, got;
    gh_store_error_t err;
    client_new("a", NULL, "y", NULL, T0, s0, &rec);
    assert_int_equal(gh_store_client_get(st, rec.id, &stale, &err), 0);
    gh_store_t *other = open_again();
    assert_int_equal(gh_store_client_rotate_secret(other, rec.id, 60, T0, s1, NULL, &err), 0);
    uint8_t old[GH_CLIENT_HASH_LEN];
    memcpy(old, stale.secret_hash, sizeof(old));
    memset(stale.secret_hash, 7, sizeof(stale.secret_hash));
    memcpy(stale.prev_secret_hash, old, sizeof(old));
    stale.prev_valid_until = T0 + 60;
    stale.secret_rotated_at = T0;
    assert_int_equal(st->backend->client_rotate(st, &stale, old, &err), -ESTALE);
    assert_int_equal(secret_is(st, rec.id, s1, T0), 1);
    assert_int_equal(secret_is(st, rec.id, s0, T0), 2);
    /* revoked meanwhile: refused the same way */
    assert_int_equal(gh_store_client_get(st, rec.id, &got, &err), 0);
    assert_int_equal(gh_store_client_revoke(other, rec.id, T0, &err), 0);
    memset(got.secret_hash, 9, sizeof(got.secret_hash));
    gh_client_t cur;
    assert_int_equal(gh_store_client_get(st, rec.id, &cur, &err), 0);
    assert_int_equal(st->backend->client_rotate(st, &got, cur.secret_hash, &err), -ESTALE);
    gh_client_dispose(&cur);
    gh_client_dispose(&got);
    gh_store_unref(other);
    gh_client_dispose(&stale);
    gh_client_dispose(&rec);
}

static void test_client_odd_ids(void **state)
{
    (void)state;
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t rec, got;
    gh_store_error_t err;
    client_new("a", NULL, "y", NULL, T0, secret, &rec);
    char upper[GH_CLIENT_ID_LEN + 1], nul[GH_CLIENT_ID_LEN + 1], longer[GH_CLIENT_ID_LEN + 2];
    snprintf(upper, sizeof(upper), "%s", rec.id);
    upper[10] = (char)(upper[10] >= 'a' ? upper[10] - 32 : 'A');
    memcpy(nul, rec.id, sizeof(nul));
    nul[10] = '\0';
    snprintf(longer, sizeof(longer), "%sa", rec.id);
    const char *ids[] = {
        "",
        "ghc_",
        "ghc_aaaaaaaaaaaaaaa",   /* 15 */
        "ghc_aaaaaaaaaaaaaaaaa", /* 17 */
        "ghc_aaaaaaaaaaaaaaa1",  /* 1 is not base32 */
        "ghc_aaaaaaaaaaaaaaa\n",
        "ghc_aaaaaaaaaaaaaaa%",
        "ghc_aaaaaaaaaaaaa\xc3\xa9",
        "GHC_aaaaaaaaaaaaaaaa",
        "ghs_aaaaaaaaaaaaaaaa",
        "ghc_aaaaaaaaaaaaaaaa ",
        "ghc_*",
        "../../client:x",
        upper,
        nul,
        longer,
    };
    char s2[GH_CLIENT_SECRET_LEN + 1];
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        if (gh_store_client_get(st, ids[i], &got, &err) != -EINVAL)
            fail_msg("id %zu was not refused", i);
        assert_non_null(strstr(err.msg, "not a client id"));
        for (const char *p = err.msg; *p; p++) /* the message shows it safely */
            assert_true(*p >= 0x20 && *p < 0x7f);
        assert_int_equal(gh_store_client_revoke(st, ids[i], T0, &err), -EINVAL);
        assert_int_equal(gh_store_client_rotate_secret(st, ids[i], 0, T0, s2, NULL, &err), -EINVAL);
        gh_store_req_t *r = (gh_store_req_t *)&err;
        assert_int_equal(gh_store_client_lookup(st, &loop, ids[i], NULL, NULL, &r), -EINVAL);
        assert_null(r);
    }
    assert_int_equal(gh_store_client_get(st, NULL, &got, &err), -EINVAL);
    loop_done(&loop);
    /* nothing changed */
    assert_int_equal(secret_is(st, rec.id, secret, T0), 1);
    assert_int_equal(gh_store_client_get(st, rec.id, &got, &err), 0);
    assert_int_equal(got.revoked_at, 0);
    gh_client_dispose(&got);
    gh_client_dispose(&rec);
}

/* ---- client lookups ---- */

typedef struct {
    int calls;
    int status;
    int secret; /* gh_client_secret_check of want, at T0 */
    int64_t revoked_at;
    char name[64];
    const char *want;
} canswer_t;

static void on_client(void *arg, int status, const gh_client_t *c)
{
    canswer_t *a = arg;
    a->calls++;
    a->status = status;
    if (status == 0) {
        assert_non_null(c);
        snprintf(a->name, sizeof(a->name), "%s", c->name);
        a->revoked_at = c->revoked_at;
        if (a->want != NULL)
            a->secret = gh_client_secret_check(c, a->want, strlen(a->want), T0);
    } else {
        assert_null(c);
    }
}

static int canswered(void *arg)
{
    canswer_t **a = arg;
    for (; *a != NULL; a++)
        if ((*a)->calls == 0)
            return 0;
    return 1;
}

static void test_client_async_lookup(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char secret[GH_CLIENT_SECRET_LEN + 1], key[GH_APIKEY_LEN + 1];
    gh_client_t rec;
    gh_store_error_t err;
    client_new("Orders", NULL, "y", NULL, T0, secret, &rec);
    create("alice", NULL, NULL, 0, T0, key, NULL);
    canswer_t a = {.want = secret}, miss = {0}, wrong = {.want = "ghs_nope"};
    answer_t k = {0};
    gh_store_req_t *r1, *r2, *r3, *r4;
    assert_int_equal(gh_store_client_lookup(st, &loop, rec.id, on_client, &a, &r1), 0);
    assert_int_equal(
        gh_store_client_lookup(st, &loop, "ghc_aaaaaaaaaaaaaaaa", on_client, &miss, &r2), 0);
    assert_int_equal(gh_store_client_lookup(st, &loop, rec.id, on_client, &wrong, &r3), 0);
    /* a key lookup beside them on the same loop */
    assert_int_equal(lookup(&loop, key, &k, &r4), 0);
    assert_int_equal(a.calls + miss.calls + wrong.calls + k.calls, 0); /* never from inside */
    canswer_t *all[] = {&a, &miss, &wrong, NULL};
    run_until(&loop, canswered, all);
    answer_t *kk[] = {&k, NULL};
    run_until(&loop, answered, kk);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    assert_string_equal(a.name, "Orders");
    assert_int_equal(a.secret, 1);
    assert_int_equal(miss.calls, 1);
    assert_int_equal(miss.status, -ENOENT);
    assert_int_equal(wrong.status, 0);
    assert_int_equal(wrong.secret, 0);
    assert_int_equal(k.status, 0);
    assert_string_equal(k.consumer, "alice");

    /* cancelled ones never call back */
    enum { N = 32 };
    canswer_t *ans = calloc(N, sizeof(*ans));
    canswer_t *even[N / 2 + 1];
    for (int i = 0; i < N; i++) {
        gh_store_req_t *r;
        assert_int_equal(gh_store_client_lookup(st, &loop, rec.id, on_client, &ans[i], &r), 0);
        if (i % 2)
            gh_store_req_cancel(r);
        else
            even[i / 2] = &ans[i];
    }
    even[N / 2] = NULL;
    run_until(&loop, canswered, even);

    /* a revocation by another store is seen by the next lookup */
    gh_store_t *cli = open_again();
    assert_int_equal(gh_store_client_revoke(cli, rec.id, T0 + 1, &err), 0);
    gh_store_unref(cli);
    canswer_t b = {0};
    canswer_t *one[] = {&b, NULL};
    assert_int_equal(gh_store_client_lookup(st, &loop, rec.id, on_client, &b, &r1), 0);
    run_until(&loop, canswered, one);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.revoked_at, T0 + 1);
    loop_done(&loop);
    for (int i = 0; i < N; i++)
        assert_int_equal(ans[i].calls, i % 2 ? 0 : 1);
    free(ans);
    assert_int_equal(atomic_load(&st->pending), 0);
    gh_client_dispose(&rec);
}

/* ---- revocations ---- */

static void since(gh_store_t *s, uint64_t after, int64_t now, size_t max, gh_revocation_t **out,
                  size_t *n, uint64_t *next, int *more)
{
    gh_store_error_t err;
    int rc = gh_store_revocations_since(s, after, now, max, out, n, next, more, &err);
    if (rc != 0)
        fail_msg("since: %d %s", rc, err.msg);
}

static void test_revocations(void **state)
{
    (void)state;
    gh_store_error_t err;
    gh_revocation_t *e;
    size_t n;
    uint64_t next;
    int more;
    /* empty */
    since(st, 0, T0, 100, &e, &n, &next, &more);
    assert_int_equal(n, 0);
    assert_null(e);
    assert_int_equal(next, 0);
    assert_int_equal(more, 0);
    assert_int_equal(gh_store_revocation_add(st, "jti-1", T0 + 100, T0, &err), 0);
    assert_int_equal(gh_store_revocation_add(st, "jti-2", T0 + 50, T0, &err), 0);
    assert_int_equal(gh_store_revocation_add(st, "jti-1", T0 + 100, T0 + 1, &err), -EALREADY);
    /* expired already: nothing to remember, nothing written */
    assert_int_equal(gh_store_revocation_add(st, "jti-old", T0, T0, &err), 0);
    since(st, 0, T0, 100, &e, &n, &next, &more);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].jti, "jti-1");
    assert_int_equal(e[0].exp, T0 + 100);
    assert_string_equal(e[1].jti, "jti-2");
    assert_true(e[0].seq < e[1].seq);
    assert_int_equal(next, e[1].seq);
    assert_int_equal(more, 0);
    uint64_t cursor = next;
    free(e);
    /* only what came after the cursor, also when another store wrote it */
    since(st, cursor, T0, 100, &e, &n, &next, &more);
    assert_int_equal(n, 0);
    assert_int_equal(next, cursor);
    gh_store_t *other = open_again();
    assert_int_equal(gh_store_revocation_add(other, "jti-3", T0 + 200, T0 + 2, &err), 0);
    gh_store_unref(other);
    since(st, cursor, T0 + 2, 100, &e, &n, &next, &more);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].jti, "jti-3");
    assert_true(next > cursor);
    free(e);
    /* time moves on: jti-2 (exp T0+50) is no longer listed */
    since(st, 0, T0 + 50, 100, &e, &n, &next, &more);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].jti, "jti-1");
    assert_string_equal(e[1].jti, "jti-3");
    free(e);
    /* purge forgets the expired ones */
    assert_int_equal(gh_store_revocations_purge(st, T0 + 50, &err), 1);
    assert_int_equal(gh_store_revocations_purge(st, T0 + 50, &err), 0);
    /* bad input */
    char longjti[GH_REVOCATION_JTI_MAX + 2];
    memset(longjti, 'j', sizeof(longjti) - 1);
    longjti[sizeof(longjti) - 1] = '\0';
    const char *bad[] = {"", "a b", "a\nb", "caf\xc3\xa9", "\x01", longjti, NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (gh_store_revocation_add(st, bad[i], T0 + 10, T0, &err) != -EINVAL)
            fail_msg("jti %zu was not refused", i);
    longjti[GH_REVOCATION_JTI_MAX] = '\0'; /* exactly 128: fine */
    assert_int_equal(gh_store_revocation_add(st, longjti, T0 + 10, T0, &err), 0);
    assert_int_equal(gh_store_revocation_add(st, "far", T0 + GH_REVOCATION_EXP_MAX + 1, T0, &err),
                     -EINVAL);
    assert_int_equal(gh_store_revocations_since(st, 0, T0, 0, &e, &n, &next, &more, &err), -EINVAL);
    assert_int_equal(
        gh_store_revocations_since(st, 0, T0, GH_REVOCATIONS_MAX + 1, &e, &n, &next, &more, &err),
        -EINVAL);
}

static void test_revocation_paging_and_restart(void **state)
{
    (void)state;
    gh_store_error_t err;
    gh_revocation_t *e;
    size_t n;
    uint64_t next, after = 0;
    int more;
    char jti[32];
    for (int i = 0; i < 7; i++) {
        snprintf(jti, sizeof(jti), "p%d", i);
        /* every other one expires at T0 + 10 */
        assert_int_equal(gh_store_revocation_add(st, jti, i % 2 ? T0 + 10 : T0 + 1000, T0, &err),
                         0);
    }
    /* read at T0 + 10 in pages of 2: the expired ones are skipped but the
     * cursor passes them; every live one comes once, in order */
    char seen[8][GH_REVOCATION_JTI_MAX + 1];
    size_t total = 0;
    int pages = 0;
    do {
        since(st, after, T0 + 10, 2, &e, &n, &next, &more);
        for (size_t i = 0; i < n; i++)
            snprintf(seen[total++], sizeof(seen[0]), "%s", e[i].jti);
        free(e);
        assert_true(next >= after);
        after = next;
        pages++;
    } while (more && pages < 20);
    assert_int_equal(total, 4);
    assert_string_equal(seen[0], "p0");
    assert_string_equal(seen[1], "p2");
    assert_string_equal(seen[2], "p4");
    assert_string_equal(seen[3], "p6");
    assert_int_equal(pages, 4); /* 2+2+2+1 looked at */
    /* a cursor beyond the last number made (a restored file, a Redis that
     * lost its data): the feed is read from the start */
    since(st, after + 1000, T0 + 10, 100, &e, &n, &next, &more);
    assert_int_equal(n, 4);
    assert_string_equal(e[0].jti, "p0");
    assert_int_equal(next, after);
    free(e);
}

static int status_calls, status_last;

static void on_status(void *arg, int status)
{
    int *flag = arg;
    (*flag)++;
    status_calls++;
    status_last = status;
}

static int flag_set(void *arg)
{
    return *(int *)arg != 0;
}

static void test_revocation_async(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int f1 = 0, f2 = 0, f3 = 0;
    gh_store_req_t *r;
    status_calls = 0;
    assert_int_equal(
        gh_store_revocation_add_async(st, &loop, "a1", T0 + 60, T0, on_status, &f1, &r), 0);
    assert_int_equal(f1, 0);
    run_until(&loop, flag_set, &f1);
    assert_int_equal(status_last, 0);
    assert_int_equal(
        gh_store_revocation_add_async(st, &loop, "a1", T0 + 60, T0, on_status, &f2, &r), 0);
    run_until(&loop, flag_set, &f2);
    assert_int_equal(status_last, -EALREADY);
    assert_int_equal(
        gh_store_revocation_add_async(st, &loop, "bad jti", T0 + 60, T0, on_status, &f3, &r),
        -EINVAL);
    assert_null(r);
    /* cancelled: no callback, and the request is freed at the loop's end */
    assert_int_equal(
        gh_store_revocation_add_async(st, &loop, "a2", T0 + 60, T0, on_status, &f3, &r), 0);
    gh_store_req_cancel(r);
    loop_done(&loop);
    assert_int_equal(f3, 0);
    assert_int_equal(status_calls, 2);
    assert_int_equal(atomic_load(&st->pending), 0);
    gh_revocation_t *e;
    size_t n;
    uint64_t next;
    int more;
    since(st, 0, T0, 100, &e, &n, &next, &more);
    assert_true(n >= 1);
    assert_string_equal(e[0].jti, "a1");
    free(e);
}

/* ---- client-assertion claims ---- */

static void claims_pass(int64_t t);

#define CID_A "ghc_aaaaaaaaaaaaaaaa"
#define CID_B "ghc_bbbbbbbbbbbbbbbb"

static int claim_at(gh_store_t *s, const char *cid, const char *jti, int64_t until, int64_t now)
{
    gh_store_error_t err = {""};
    int rc = gh_store_jti_claim(s, cid, jti, until, now, &err);
    if (rc != 0 && rc != -EEXIST && rc != -EINVAL)
        fail_msg("claim: %d %s", rc, err.msg);
    if (rc == -EEXIST)
        assert_non_null(strstr(err.msg, "used before"));
    return rc;
}

static void test_jti_claims(void **state)
{
    (void)state;
    assert_int_equal(claim_at(st, CID_A, "j-1", T0 + 60, T0), 0);
    /* the replay, within the claim's life, on a second store of the same
     * backing too (another gatehouse of the fleet) */
    assert_int_equal(claim_at(st, CID_A, "j-1", T0 + 60, T0), -EEXIST);
    assert_int_equal(claim_at(st, CID_A, "j-1", T0 + 90, T0 + 59), -EEXIST);
    gh_store_t *other = open_again();
    assert_int_equal(claim_at(other, CID_A, "j-1", T0 + 70, T0 + 10), -EEXIST);
    assert_int_equal(claim_at(other, CID_A, "j-2", T0 + 70, T0 + 10), 0);
    assert_int_equal(claim_at(st, CID_A, "j-2", T0 + 70, T0 + 11), -EEXIST);
    gh_store_unref(other);
    /* per client: another client's jti of the same text is its own */
    assert_int_equal(claim_at(st, CID_B, "j-1", T0 + 60, T0), 0);
    assert_int_equal(claim_at(st, CID_B, "j-1", T0 + 60, T0), -EEXIST);
    /* jtis that differ in case, by a trailing space, or that prefix
     * another, are other jtis */
    assert_int_equal(claim_at(st, CID_A, "J-1", T0 + 60, T0), 0);
    assert_int_equal(claim_at(st, CID_A, "j-1 ", T0 + 60, T0), 0);
    assert_int_equal(claim_at(st, CID_A, "j-", T0 + 60, T0), 0);
    assert_int_equal(claim_at(st, CID_A, "j-1:x", T0 + 60, T0), 0);
    /* the claim passes at its until: the jti may be claimed again (a new
     * assertion of the same jti after the old one expired) */
    claims_pass(T0 + 60);
    assert_int_equal(claim_at(st, CID_A, "j-1", T0 + 120, T0 + 60), 0);
    assert_int_equal(claim_at(st, CID_A, "j-1", T0 + 120, T0 + 61), -EEXIST);
    assert_int_equal(claim_at(st, CID_B, "j-1", T0 + 120, T0 + 60), 0);
    /* j-2 (until T0 + 70) is still live */
    assert_int_equal(claim_at(st, CID_A, "j-2", T0 + 130, T0 + 69), -EEXIST);
    /* a dead claim (until <= now) writes nothing: nothing could replay it */
    assert_int_equal(claim_at(st, CID_A, "dead", T0, T0), 0);
    assert_int_equal(claim_at(st, CID_A, "dead", T0 - 5, T0), 0);
    assert_int_equal(claim_at(st, CID_A, "dead", T0 + 10, T0), 0);
    assert_int_equal(claim_at(st, CID_A, "dead", T0 + 10, T0), -EEXIST);
    /* the longest claim there may be */
    assert_int_equal(claim_at(st, CID_A, "far", T0 + GH_STORE_JTI_UNTIL_MAX, T0), 0);
    assert_int_equal(claim_at(st, CID_A, "far", T0 + GH_STORE_JTI_UNTIL_MAX, T0 + 1), -EEXIST);
}

static void test_jti_claim_refusals(void **state)
{
    (void)state;
    char jti[GH_STORE_JTI_MAX + 2];
    memset(jti, 'j', sizeof(jti) - 1);
    jti[sizeof(jti) - 1] = '\0'; /* 257 bytes */
    const char *bad_jti[] = {"", "a\nb", "a\tb", "caf\xc3\xa9", "\x01", "\x7f", "\xff", jti, NULL};
    for (size_t i = 0; i < sizeof(bad_jti) / sizeof(bad_jti[0]); i++)
        if (claim_at(st, CID_A, bad_jti[i], T0 + 10, T0) != -EINVAL)
            fail_msg("jti %zu was not refused", i);
    jti[GH_STORE_JTI_MAX] = '\0'; /* exactly 256: fine */
    assert_int_equal(claim_at(st, CID_A, jti, T0 + 10, T0), 0);
    assert_int_equal(claim_at(st, CID_A, jti, T0 + 10, T0), -EEXIST);
    /* every printable byte, the space and ':' included */
    char all[0x7f - 0x20 + 1];
    for (int c = 0x20; c < 0x7f; c++)
        all[c - 0x20] = (char)c;
    all[sizeof(all) - 1] = '\0';
    assert_int_equal(claim_at(st, CID_A, all, T0 + 10, T0), 0);
    assert_int_equal(claim_at(st, CID_A, all, T0 + 10, T0), -EEXIST);
    assert_int_equal(claim_at(st, CID_A, " ", T0 + 10, T0), 0);
    const char *bad_cid[] = {"",
                             NULL,
                             "ghc_aaaaaaaaaaaaaaa",   /* short */
                             "ghc_aaaaaaaaaaaaaaaaa", /* long */
                             "ghc_AAAAAAAAAAAAAAAA",  /* case */
                             "ghc_aaaaaaaaaaaaaaa1",  /* not base32 */
                             "ghk_aaaaaaaaaaaaaaaa",  /* prefix */
                             "ghc_aaaaaaaaaaaaaaa:"};
    for (size_t i = 0; i < sizeof(bad_cid) / sizeof(bad_cid[0]); i++)
        if (claim_at(st, bad_cid[i], "j", T0 + 10, T0) != -EINVAL)
            fail_msg("client id %zu was not refused", i);
    /* more than a day ahead */
    assert_int_equal(claim_at(st, CID_A, "j", T0 + GH_STORE_JTI_UNTIL_MAX + 1, T0), -EINVAL);
    assert_true(gh_store_jti_valid("x"));
    assert_false(gh_store_jti_valid(NULL));
    /* nothing refused was claimed */
    assert_int_equal(claim_at(st, CID_A, "j", T0 + 10, T0), 0);
}

static void test_jti_claim_async(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int f1 = 0, f2 = 0, f3 = 0, f4 = 0, f5 = 0;
    gh_store_req_t *r;
    status_calls = 0;
    assert_int_equal(
        gh_store_jti_claim_async(st, &loop, CID_A, "a-1", T0 + 60, T0, on_status, &f1, &r), 0);
    assert_non_null(r);
    assert_int_equal(f1, 0); /* never from inside the call */
    run_until(&loop, flag_set, &f1);
    assert_int_equal(status_last, 0);
    assert_int_equal(
        gh_store_jti_claim_async(st, &loop, CID_A, "a-1", T0 + 60, T0 + 1, on_status, &f2, &r), 0);
    run_until(&loop, flag_set, &f2);
    assert_int_equal(status_last, -EEXIST);
    /* what the synchronous API claimed, the async one sees, and back */
    assert_int_equal(claim_at(st, CID_A, "s-1", T0 + 60, T0), 0);
    assert_int_equal(
        gh_store_jti_claim_async(st, &loop, CID_A, "s-1", T0 + 60, T0, on_status, &f3, &r), 0);
    run_until(&loop, flag_set, &f3);
    assert_int_equal(status_last, -EEXIST);
    assert_int_equal(claim_at(st, CID_A, "a-1", T0 + 60, T0 + 2), -EEXIST);
    /* a dead claim: 0, still on a later turn */
    assert_int_equal(gh_store_jti_claim_async(st, &loop, CID_A, "d-1", T0, T0, on_status, &f4, &r),
                     0);
    assert_int_equal(f4, 0);
    run_until(&loop, flag_set, &f4);
    assert_int_equal(status_last, 0);
    /* refused input: no request, no callback */
    assert_int_equal(
        gh_store_jti_claim_async(st, &loop, CID_A, "bad\njti", T0 + 60, T0, on_status, &f5, &r),
        -EINVAL);
    assert_null(r);
    assert_int_equal(
        gh_store_jti_claim_async(st, &loop, "ghc_x", "j", T0 + 60, T0, on_status, &f5, &r),
        -EINVAL);
    assert_null(r);
    assert_int_equal(gh_store_jti_claim_async(st, &loop, CID_A, "j",
                                              T0 + GH_STORE_JTI_UNTIL_MAX + 1, T0, on_status, &f5,
                                              &r),
                     -EINVAL);
    assert_null(r);
    /* cancelled at once: no callback, freed by the loop's end */
    assert_int_equal(
        gh_store_jti_claim_async(st, &loop, CID_A, "c-1", T0 + 60, T0, on_status, &f5, &r), 0);
    gh_store_req_cancel(r);
    loop_done(&loop);
    assert_int_equal(f5, 0);
    assert_int_equal(status_calls, 4);
    assert_int_equal(atomic_load(&st->pending), 0);
}

typedef struct {
    int calls;
    int status;
} tally_t;

static void on_tally(void *arg, int status)
{
    tally_t *t = arg;
    t->calls++;
    t->status = status;
}

static int all_tallied(void *arg)
{
    tally_t *t = arg;
    for (; t->status != 1; t++) /* status 1 ends the array */
        if (t->calls == 0)
            return 0;
    return 1;
}

/* Many claims of one jti at once, from two stores on one backing (two
 * gatehouses) and both APIs: exactly one wins, every other is a replay. */
static void test_jti_claim_race_has_one_winner(void **state)
{
    (void)state;
    enum { N = 16 };
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    gh_store_t *other = open_again();
    tally_t t[N + 1] = {{0, 0}};
    t[N].status = 1;
    gh_store_req_t *r;
    for (int i = 0; i < N; i++)
        assert_int_equal(gh_store_jti_claim_async(i % 2 ? other : st, &loop, CID_A, "race", T0 + 60,
                                                  T0, on_tally, &t[i], &r),
                         0);
    int sync_rc = claim_at(other, CID_A, "race", T0 + 60, T0);
    run_until(&loop, all_tallied, t);
    int wins = sync_rc == 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].calls, 1);
        if (t[i].status == 0)
            wins++;
        else if (t[i].status != -EEXIST)
            fail_msg("claim %d: %d", i, t[i].status);
    }
    assert_int_equal(wins, 1);
    loop_done(&loop);
    gh_store_unref(other);
    assert_int_equal(claim_at(st, CID_A, "race", T0 + 60, T0), -EEXIST);
}

#define CLIENT_CASES(setup, teardown)                                                              \
    cmocka_unit_test_setup_teardown(test_client_create_and_get, setup, teardown),                  \
        cmocka_unit_test_setup_teardown(test_client_create_refusals, setup, teardown),             \
        cmocka_unit_test_setup_teardown(test_client_jwks, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_client_list, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_client_revoke, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_client_rotate_with_grace, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_client_rotation_race_has_one_winner, setup,           \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_client_odd_ids, setup, teardown),                     \
        cmocka_unit_test_setup_teardown(test_client_async_lookup, setup, teardown),                \
        cmocka_unit_test_setup_teardown(test_revocations, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_revocation_paging_and_restart, setup, teardown),      \
        cmocka_unit_test_setup_teardown(test_revocation_async, setup, teardown),                   \
        cmocka_unit_test_setup_teardown(test_jti_claims, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(test_jti_claim_refusals, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_jti_claim_async, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(test_jti_claim_race_has_one_winner, setup, teardown)

#endif
