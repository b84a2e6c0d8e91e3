/*
 * Client authentication (src/issuer/auth.c) and the assertion replay
 * cache (src/issuer/replay.c): secrets right and wrong, unknown clients,
 * a hash that matches but may not (no secret), rotation grace at its
 * edge, revoked clients, methods and grant types a client may not use;
 * private_key_jwt assertions (RFC 7523 §3) with every claim rule broken
 * once, replayed, signed by another key or with HMAC; the cache's
 * refusal when full (never forgetting a live entry), expiry, and one
 * winner among threads claiming the same jti at once.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "oauth_test.h"

#define NOW 1700000000
#define TOKEN_URL "https://gw.example.com/oauth2/token"
#define ISSUER "https://gw.example.com"

static gh_jwt_signing_key_t *key, *other_key;
static gh_jwks_t *jwks;

static int setup(void **state)
{
    (void)state;
    char err[128];
    key = gh_jwt_signing_key_generate(GH_JWT_ES256, 0, err, sizeof(err));
    other_key = gh_jwt_signing_key_generate(GH_JWT_ES256, 0, err, sizeof(err));
    char *doc = gh_jwt_signing_key_jwks(key, "k1", GH_JWT_ES256, err, sizeof(err));
    jwks = gh_jwks_parse(doc, strlen(doc), NULL, err, sizeof(err));
    free(doc);
    return key && other_key && jwks ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    gh_jwt_signing_key_free(key);
    gh_jwt_signing_key_free(other_key);
    gh_jwks_unref(jwks);
    return 0;
}

static gh_oauth_client_t client(const char *id, const char *secret)
{
    gh_oauth_client_t c = {.id = id, .grant_types = GH_OAUTH_GRANT_CLIENT_CREDENTIALS};
    if (secret != NULL) {
        c.has_secret = 1;
        SHA256((const unsigned char *)secret, strlen(secret), c.secret_hash);
    }
    return c;
}

static gh_oauth_auth_conf_t conf(gh_oauth_replay_t *rc)
{
    return (gh_oauth_auth_conf_t){
        .token_endpoint = TOKEN_URL, .issuer = ISSUER, .skew = 30, .replay = rc};
}

/* Parses body (with Basic authz when not NULL) and authenticates it
 * against c at now; returns the error code. */
static gh_oauth_code_t auth_at(const char *authz, const char *body, const gh_oauth_client_t *c,
                               gh_oauth_replay_t *rc, int64_t now, gh_oauth_auth_result_t *res)
{
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    gh_oauth_auth_result_t local;
    if (oauth_req(GH_OAUTH_TOKEN, CT_FORM, authz, body, &r, &e) != 0)
        fail_msg("request refused: %s", e.desc);
    gh_oauth_auth_conf_t cf = conf(rc);
    int ret = gh_oauth_client_authenticate(&r, c, &cf, now, res ? res : &local, &e);
    if (res != NULL && res->jti != NULL) {
        /* Borrowed from the request: copied before it goes. */
        static char jti[GH_OAUTH_MAX_JTI + 1];
        memcpy(jti, res->jti, res->jti_len + 1);
        res->jti = jti;
    }
    gh_oauth_request_dispose(&r);
    if (ret == 0) {
        assert_int_equal(e.code, GH_OAUTH_OK);
    } else {
        assert_int_not_equal(e.code, GH_OAUTH_OK);
        assert_true(e.desc[0] != '\0');
    }
    return e.code;
}

#define POST(id, s) "grant_type=client_credentials&client_id=" id "&client_secret=" s

static void test_secrets(void **state)
{
    (void)state;
    gh_oauth_client_t c = client("s6BhdRkqt3", "gX1fBat3bV");
    const char *basic = "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW";
    const char *cc = "grant_type=client_credentials";
    assert_int_equal(auth_at(basic, cc, &c, NULL, NOW, NULL), GH_OAUTH_OK);
    assert_int_equal(auth_at(NULL, POST("s6BhdRkqt3", "gX1fBat3bV"), &c, NULL, NOW, NULL),
                     GH_OAUTH_OK);
    /* Wrong by one byte, a prefix, longer. */
    assert_int_equal(auth_at(NULL, POST("s6BhdRkqt3", "gX1fBat3bW"), &c, NULL, NOW, NULL),
                     GH_OAUTH_INVALID_CLIENT);
    assert_int_equal(auth_at(NULL, POST("s6BhdRkqt3", "gX1fBat3b"), &c, NULL, NOW, NULL),
                     GH_OAUTH_INVALID_CLIENT);
    assert_int_equal(auth_at(NULL, POST("s6BhdRkqt3", "gX1fBat3bVV"), &c, NULL, NOW, NULL),
                     GH_OAUTH_INVALID_CLIENT);
    /* Unknown client: compared with the dummy, refused. */
    assert_int_equal(auth_at(basic, cc, NULL, NULL, NOW, NULL), GH_OAUTH_INVALID_CLIENT);
    /* A hash that matches is not enough without has_secret. */
    c.has_secret = 0;
    assert_int_equal(auth_at(basic, cc, &c, NULL, NOW, NULL), GH_OAUTH_INVALID_CLIENT);
    c.has_secret = 1;
    /* The record must be the request's client. */
    gh_oauth_client_t c2 = client("someone-else", "gX1fBat3bV");
    assert_int_equal(auth_at(basic, cc, &c2, NULL, NOW, NULL), GH_OAUTH_SERVER_ERROR);
}

static void test_rotation(void **state)
{
    (void)state;
    gh_oauth_client_t c = client("c1", "new");
    SHA256((const unsigned char *)"old", 3, c.previous_hash);
    c.previous_valid_until = NOW + 10;
    assert_int_equal(auth_at(NULL, POST("c1", "new"), &c, NULL, NOW, NULL), GH_OAUTH_OK);
    assert_int_equal(auth_at(NULL, POST("c1", "old"), &c, NULL, NOW, NULL), GH_OAUTH_OK);
    assert_int_equal(auth_at(NULL, POST("c1", "old"), &c, NULL, NOW + 9, NULL), GH_OAUTH_OK);
    assert_int_equal(auth_at(NULL, POST("c1", "old"), &c, NULL, NOW + 10, NULL),
                     GH_OAUTH_INVALID_CLIENT);
    assert_int_equal(auth_at(NULL, POST("c1", "new"), &c, NULL, NOW + 10, NULL), GH_OAUTH_OK);
    /* No previous secret: a zeroed previous hash matches nothing. */
    c.previous_valid_until = 0;
    assert_int_equal(auth_at(NULL, POST("c1", "old"), &c, NULL, NOW, NULL),
                     GH_OAUTH_INVALID_CLIENT);
}

static void test_client_state(void **state)
{
    (void)state;
    gh_oauth_client_t c = client("c1", "s");
    c.status = GH_OAUTH_CLIENT_REVOKED;
    assert_int_equal(auth_at(NULL, POST("c1", "s"), &c, NULL, NOW, NULL), GH_OAUTH_INVALID_CLIENT);
    c.status = GH_OAUTH_CLIENT_ACTIVE;
    c.auth_methods = GH_OAUTH_AUTH_SECRET_BASIC;
    assert_int_equal(auth_at(NULL, POST("c1", "s"), &c, NULL, NOW, NULL), GH_OAUTH_INVALID_CLIENT);
    c.auth_methods = GH_OAUTH_AUTH_SECRET_POST;
    assert_int_equal(auth_at(NULL, POST("c1", "s"), &c, NULL, NOW, NULL), GH_OAUTH_OK);
    c.grant_types = 0;
    assert_int_equal(auth_at(NULL, POST("c1", "s"), &c, NULL, NOW, NULL),
                     GH_OAUTH_UNAUTHORIZED_CLIENT);
    /* Token operations need no grant type. */
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    gh_oauth_auth_result_t res;
    assert_int_equal(oauth_req(GH_OAUTH_INTROSPECT, CT_FORM, NULL,
                               "token=x&client_id=c1&client_secret=s", &r, &e),
                     0);
    gh_oauth_auth_conf_t cf = conf(NULL);
    assert_int_equal(gh_oauth_client_authenticate(&r, &c, &cf, NOW, &res, &e), 0);
    gh_oauth_request_dispose(&r);
}

/* ---- private_key_jwt ---- */

static char *assertion_with(const gh_jwt_signing_key_t *k, gh_jwt_alg_t alg, const char *claims)
{
    char err[128], hdr[64];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"k1\"}", gh_jwt_alg_name(alg));
    char *t = gh_jwt_sign(hdr, claims, strlen(claims), k, alg, err, sizeof(err));
    assert_non_null(t);
    return t;
}

static char *jwt_body(const gh_jwt_signing_key_t *k, gh_jwt_alg_t alg, const char *claims)
{
    char *a = assertion_with(k, alg, claims);
    char *b = malloc(strlen(a) + 256);
    sprintf(b, "grant_type=client_credentials&client_assertion_type=%s&client_assertion=%s",
            GH_OAUTH_ASSERTION_TYPE, a);
    free(a);
    return b;
}

static gh_oauth_code_t jwt_auth(const char *claims, const gh_oauth_client_t *c,
                                gh_oauth_replay_t *rc, gh_oauth_auth_result_t *res)
{
    char *b = jwt_body(key, GH_JWT_ES256, claims);
    gh_oauth_code_t code = auth_at(NULL, b, c, rc, NOW, res);
    free(b);
    return code;
}

#define CLAIMS(aud, extra)                                                                         \
    "{\"iss\":\"c1\",\"sub\":\"c1\",\"aud\":" aud ",\"exp\":1700000060,\"iat\":1700000000" extra "}"
#define JTI ",\"jti\":\"j-1\""

static void test_assertions(void **state)
{
    (void)state;
    gh_oauth_client_t c = client("c1", NULL);
    c.jwks = jwks;
    gh_oauth_auth_result_t res;
    /* Good, with the token endpoint, the issuer, or an array holding one. */
    assert_int_equal(jwt_auth(CLAIMS("\"" TOKEN_URL "\"", JTI), &c, NULL, &res), GH_OAUTH_OK);
    assert_string_equal(res.jti, "j-1");
    assert_int_equal(res.jti_len, 3);
    assert_true(res.jti_until >= 1700000060 + 30);
    assert_int_equal(jwt_auth(CLAIMS("\"" ISSUER "\"", JTI), &c, NULL, NULL), GH_OAUTH_OK);
    assert_int_equal(jwt_auth(CLAIMS("[\"x\",\"" ISSUER "\"]", JTI), &c, NULL, NULL), GH_OAUTH_OK);
    /* Each rule broken once. */
    static const char *const bad[] = {
        CLAIMS("\"https://gw.example.com/other\"", JTI),
        CLAIMS("[\"x\"]", JTI),
        CLAIMS("\"" ISSUER "/\"", JTI),
        CLAIMS("\"" TOKEN_URL "\"", ""),                        /* no jti */
        CLAIMS("\"" TOKEN_URL "\"", ",\"jti\":\"\""),           /* empty jti */
        CLAIMS("\"" TOKEN_URL "\"", ",\"jti\":7"),              /* not a string */
        CLAIMS("\"" TOKEN_URL "\"", JTI ",\"nbf\":1700000100"), /* not yet */
        "{\"iss\":\"c1\",\"sub\":\"c1\",\"aud\":\"" ISSUER "\",\"iat\":1700000000" JTI "}",
        "{\"iss\":\"c1\",\"sub\":\"c1\",\"aud\":\"" ISSUER "\",\"exp\":1699999960" JTI "}",
        "{\"iss\":\"c1\",\"sub\":\"c1\",\"aud\":\"" ISSUER "\",\"exp\":1700000331" JTI "}",
        "{\"iss\":\"c1\",\"sub\":\"c1\",\"aud\":\"" ISSUER "\",\"exp\":1700000060,"
        "\"iat\":1700000100" JTI "}",
        "{\"iss\":\"c1\",\"sub\":\"c1\",\"exp\":1700000060" JTI "}", /* no aud */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gh_oauth_code_t code = jwt_auth(bad[i], &c, NULL, NULL);
        if (code != GH_OAUTH_INVALID_CLIENT)
            fail_msg("%s gave %s", bad[i], gh_oauth_code_name(code));
    }
    /* exp at the bound (now + 300 + skew) passes. */
    assert_int_equal(jwt_auth("{\"iss\":\"c1\",\"sub\":\"c1\",\"aud\":\"" ISSUER
                              "\",\"exp\":1700000330" JTI "}",
                              &c, NULL, NULL),
                     GH_OAUTH_OK);
    /* Signed by a key the client did not register; with HMAC. */
    char *b = jwt_body(other_key, GH_JWT_ES256, CLAIMS("\"" ISSUER "\"", JTI));
    assert_int_equal(auth_at(NULL, b, &c, NULL, NOW, NULL), GH_OAUTH_INVALID_CLIENT);
    free(b);
    gh_jwt_signing_key_t *hk =
        gh_jwt_signing_key_from_secret("0123456789abcdef0123456789abcdef", 32);
    b = jwt_body(hk, GH_JWT_HS256, CLAIMS("\"" ISSUER "\"", JTI));
    assert_int_equal(auth_at(NULL, b, &c, NULL, NOW, NULL), GH_OAUTH_INVALID_CLIENT);
    free(b);
    /* Even when the client's key set holds that secret (a set parsed
     * with allow_symmetric): client_secret_jwt is not offered. */
    char *doc = gh_jwt_signing_key_jwks(hk, "k1", GH_JWT_HS256, NULL, 0);
    gh_jwks_opts_t sym = {.allow_symmetric = 1};
    gh_jwks_t *hjwks = gh_jwks_parse(doc, strlen(doc), &sym, NULL, 0);
    assert_non_null(hjwks);
    gh_oauth_client_t hc = client("c1", NULL);
    hc.jwks = hjwks;
    b = jwt_body(hk, GH_JWT_HS256, CLAIMS("\"" ISSUER "\"", JTI));
    assert_int_equal(auth_at(NULL, b, &hc, NULL, NOW, NULL), GH_OAUTH_INVALID_CLIENT);
    free(b);
    free(doc);
    gh_jwks_unref(hjwks);
    gh_jwt_signing_key_free(hk);
    /* A client without keys, an unknown client, a secret-only client. */
    gh_oauth_client_t nokeys = client("c1", "s");
    assert_int_equal(jwt_auth(CLAIMS("\"" ISSUER "\"", JTI), &nokeys, NULL, NULL),
                     GH_OAUTH_INVALID_CLIENT);
    assert_int_equal(jwt_auth(CLAIMS("\"" ISSUER "\"", JTI), NULL, NULL, NULL),
                     GH_OAUTH_INVALID_CLIENT);
    /* A client with keys and a secret, limited to secrets. */
    gh_oauth_client_t both = client("c1", "s");
    both.jwks = jwks;
    both.auth_methods = GH_OAUTH_AUTH_SECRET_BASIC | GH_OAUTH_AUTH_SECRET_POST;
    assert_int_equal(jwt_auth(CLAIMS("\"" ISSUER "\"", JTI), &both, NULL, NULL),
                     GH_OAUTH_INVALID_CLIENT);
    both.auth_methods = 0;
    assert_int_equal(jwt_auth(CLAIMS("\"" ISSUER "\"", JTI), &both, NULL, NULL), GH_OAUTH_OK);
    /* iss and sub differing is refused when the request is read. */
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    b = jwt_body(key, GH_JWT_ES256,
                 "{\"iss\":\"c1\",\"sub\":\"c2\",\"aud\":\"" ISSUER "\",\"exp\":1700000060" JTI
                 "}");
    assert_int_equal(oauth_req(GH_OAUTH_TOKEN, CT_FORM, NULL, b, &r, &e), -1);
    assert_int_equal(e.code, GH_OAUTH_INVALID_CLIENT);
    free(b);
    /* client_id naming another client than the assertion. */
    b = jwt_body(key, GH_JWT_ES256, CLAIMS("\"" ISSUER "\"", JTI));
    strcat(b, "&client_id=c2");
    assert_int_equal(oauth_req(GH_OAUTH_TOKEN, CT_FORM, NULL, b, &r, &e), -1);
    assert_int_equal(e.code, GH_OAUTH_INVALID_REQUEST);
    free(b);
}

static void test_assertion_replay(void **state)
{
    (void)state;
    gh_oauth_replay_t *rc = gh_oauth_replay_new(64);
    assert_non_null(rc);
    gh_oauth_client_t c = client("c1", NULL);
    c.jwks = jwks;
    const char *a = CLAIMS("\"" ISSUER "\"", JTI);
    assert_int_equal(jwt_auth(a, &c, rc, NULL), GH_OAUTH_OK);
    /* The same assertion again, and another with the same jti. */
    assert_int_equal(jwt_auth(a, &c, rc, NULL), GH_OAUTH_INVALID_CLIENT);
    assert_int_equal(jwt_auth(CLAIMS("\"" TOKEN_URL "\"", JTI), &c, rc, NULL),
                     GH_OAUTH_INVALID_CLIENT);
    assert_int_equal(jwt_auth(CLAIMS("\"" ISSUER "\"", ",\"jti\":\"j-2\""), &c, rc, NULL),
                     GH_OAUTH_OK);
    /* Another client may use the same jti. */
    gh_oauth_client_t c2 = client("c2", NULL);
    c2.jwks = jwks;
    assert_int_equal(jwt_auth("{\"iss\":\"c2\",\"sub\":\"c2\",\"aud\":\"" ISSUER
                              "\",\"exp\":1700000060" JTI "}",
                              &c2, rc, NULL),
                     GH_OAUTH_OK);
    /* A refused assertion (wrong audience) takes no slot. */
    assert_int_equal(jwt_auth(CLAIMS("\"x\"", ",\"jti\":\"j-3\""), &c, rc, NULL),
                     GH_OAUTH_INVALID_CLIENT);
    assert_int_equal(gh_oauth_replay_count(rc, NOW), 3);
    gh_oauth_replay_free(rc);
}

static void test_replay_cache(void **state)
{
    (void)state;
    /* The smallest table: one window of 32 slots. */
    gh_oauth_replay_t *rc = gh_oauth_replay_new(1);
    char jti[16];
    for (int i = 0; i < 32; i++) {
        int n = snprintf(jti, sizeof(jti), "j%d", i);
        assert_int_equal(gh_oauth_replay_claim(rc, "c", 1, jti, (size_t)n, NOW + 10 + i, NOW), 0);
    }
    /* Full: refused, and not one live entry forgotten. */
    assert_int_equal(gh_oauth_replay_claim(rc, "c", 1, "new", 3, NOW + 10, NOW), -ENOSPC);
    for (int i = 0; i < 32; i++) {
        int n = snprintf(jti, sizeof(jti), "j%d", i);
        assert_int_equal(gh_oauth_replay_claim(rc, "c", 1, jti, (size_t)n, NOW + 10, NOW), -EEXIST);
    }
    assert_int_equal(gh_oauth_replay_count(rc, NOW), 32);
    /* The first entry dies at NOW + 10: its slot takes the new one, and
     * that one only. */
    assert_int_equal(gh_oauth_replay_count(rc, NOW + 10), 31);
    assert_int_equal(gh_oauth_replay_claim(rc, "c", 1, "new", 3, NOW + 100, NOW + 10), 0);
    assert_int_equal(gh_oauth_replay_claim(rc, "c", 1, "new2", 4, NOW + 100, NOW + 10), -ENOSPC);
    /* j0 is forgotten only because it expired; a dead claim is a no-op. */
    assert_int_equal(gh_oauth_replay_claim(rc, "c", 1, "dead", 4, NOW, NOW), 0);
    /* Bounds. */
    assert_int_equal(gh_oauth_replay_claim(rc, "c\0d", 3, "x", 1, NOW + 10, NOW), -EINVAL);
    char big[GH_OAUTH_MAX_JTI + 1];
    memset(big, 'x', sizeof(big));
    assert_int_equal(gh_oauth_replay_claim(rc, "c", 1, big, sizeof(big), NOW + 10, NOW), -EINVAL);
    gh_oauth_replay_free(rc);
    /* A table sized for its load keeps everything it took. */
    rc = gh_oauth_replay_new(4096);
    int took = 0;
    for (int i = 0; i < 2048; i++) {
        int n = snprintf(jti, sizeof(jti), "k%d", i);
        took += gh_oauth_replay_claim(rc, "c", 1, jti, (size_t)n, NOW + 60, NOW) == 0;
    }
    assert_int_equal(took, 2048);
    for (int i = 0; i < 2048; i++) {
        int n = snprintf(jti, sizeof(jti), "k%d", i);
        assert_int_equal(gh_oauth_replay_claim(rc, "c", 1, jti, (size_t)n, NOW + 60, NOW), -EEXIST);
    }
    assert_int_equal(gh_oauth_replay_count(rc, NOW), 2048);
    gh_oauth_replay_free(rc);
}

#define RACERS 8

typedef struct {
    gh_oauth_replay_t *rc;
    pthread_barrier_t *go;
    int won;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    pthread_barrier_wait(r->go);
    for (int i = 0; i < 500; i++) {
        char jti[16];
        int n = snprintf(jti, sizeof(jti), "r%d", i);
        r->won += gh_oauth_replay_claim(r->rc, "c", 1, jti, (size_t)n, NOW + 60, NOW) == 0;
    }
    return NULL;
}

static void test_replay_threads(void **state)
{
    (void)state;
    /* Every thread claims the same 500 jti at once: each is won once. */
    gh_oauth_replay_t *rc = gh_oauth_replay_new(4096);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACERS);
    pthread_t th[RACERS];
    racer_t r[RACERS];
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer_t){rc, &go, 0};
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    int won = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        won += r[i].won;
    }
    assert_int_equal(won, 500);
    pthread_barrier_destroy(&go);
    gh_oauth_replay_free(rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secrets),          cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_client_state),     cmocka_unit_test(test_assertions),
        cmocka_unit_test(test_assertion_replay), cmocka_unit_test(test_replay_cache),
        cmocka_unit_test(test_replay_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
