/*
 * Grants (src/issuer/grant.c), minting (src/issuer/mint.c) and our tokens
 * read back (src/issuer/inspect.c). Minted tokens are checked byte for
 * byte (header, claims, response body), verified by gatehouse's own
 * verifier with RFC 9068's typ, and their signatures checked a second
 * way, straight with OpenSSL's EVP API (ES256, RS256, EdDSA) and a
 * base64url decoder written here. Claims with odd bytes come back equal
 * through jansson; what is not UTF-8 is refused. Introspection answers
 * and revocation decisions for own, foreign, expired, revoked tokens and
 * other clients' tokens.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "oauth_test.h"

#define NOW 1700000000
#define ISSUER "https://gw.example.com"
#define CC "grant_type=client_credentials"
#define BASIC "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW" /* s6BhdRkqt3:gX1fBat3bV */

static const unsigned char rand16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static gh_jwt_signing_key_t *es, *rs, *ed;
static gh_jwks_t *keys; /* es only */

static gh_jwks_t *jwks_of(const gh_jwt_signing_key_t *k, gh_jwt_alg_t alg)
{
    char err[128];
    char *doc = gh_jwt_signing_key_jwks(k, "k1", alg, err, sizeof(err));
    gh_jwks_t *s = gh_jwks_parse(doc, strlen(doc), NULL, err, sizeof(err));
    free(doc);
    assert_non_null(s);
    return s;
}

static int setup(void **state)
{
    (void)state;
    char err[128];
    es = gh_jwt_signing_key_generate(GH_JWT_ES256, 0, err, sizeof(err));
    rs = gh_jwt_signing_key_generate(GH_JWT_RS256, 2048, err, sizeof(err));
    ed = gh_jwt_signing_key_generate(GH_JWT_EDDSA, 0, err, sizeof(err));
    keys = jwks_of(es, GH_JWT_ES256);
    return es && rs && ed ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    gh_jwt_signing_key_free(es);
    gh_jwt_signing_key_free(rs);
    gh_jwt_signing_key_free(ed);
    gh_jwks_unref(keys);
    return 0;
}

static const char *const scopes[] = {"orders.read", "orders.write", "admin"};
static const char *const auds[] = {"orders", "https://api.example.com/"};

static gh_oauth_client_t client(void)
{
    return (gh_oauth_client_t){
        .id = "s6BhdRkqt3",
        .grant_types = GH_OAUTH_GRANT_CLIENT_CREDENTIALS,
        .scopes = scopes,
        .nscopes = 3,
        .audiences = auds,
        .naudiences = 2,
    };
}

/* Parses body (Basic, client s6BhdRkqt3) and grants it for c. */
static gh_oauth_code_t grant(const char *body, const gh_oauth_client_t *c, const char *def,
                             gh_oauth_request_t *r, gh_oauth_grant_t *g)
{
    gh_oauth_error_t e;
    if (oauth_req(GH_OAUTH_TOKEN, CT_FORM, BASIC, body, r, &e) != 0)
        fail_msg("refused: %s", e.desc);
    int rc = gh_oauth_grant(r, c, def, g, &e);
    if (rc != 0) {
        assert_int_not_equal(e.code, GH_OAUTH_OK);
        return e.code;
    }
    return GH_OAUTH_OK;
}

static void test_grants(void **state)
{
    (void)state;
    gh_oauth_client_t c = client();
    gh_oauth_request_t r;
    gh_oauth_grant_t g;
    /* Nothing asked: every scope, the first audience. */
    assert_int_equal(grant(CC, &c, "dflt", &r, &g), GH_OAUTH_OK);
    assert_int_equal(g.nscopes, 3);
    assert_string_equal(g.scopes[2], "admin");
    assert_int_equal(g.naudiences, 1);
    assert_string_equal(g.audiences[0], "orders");
    assert_string_equal(g.client_id, "s6BhdRkqt3");
    gh_oauth_request_dispose(&r);
    /* A subset, in the request's order. */
    assert_int_equal(grant(CC "&scope=admin+orders.read&resource=https://api.example.com/"
                              "&audience=orders",
                           &c, NULL, &r, &g),
                     GH_OAUTH_OK);
    assert_int_equal(g.nscopes, 2);
    assert_string_equal(g.scopes[0], "admin");
    assert_string_equal(g.scopes[1], "orders.read");
    assert_int_equal(g.naudiences, 2);
    gh_oauth_request_dispose(&r);
    /* One scope too many; one of another case; a prefix. */
    static const char *const bad_scope[] = {
        CC "&scope=orders.read+orders.delete",
        CC "&scope=Admin",
        CC "&scope=orders",
    };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(grant(bad_scope[i], &c, NULL, &r, &g), GH_OAUTH_INVALID_SCOPE);
        gh_oauth_request_dispose(&r);
    }
    /* Targets outside the client's, even the issuer's default. */
    static const char *const bad_target[] = {
        CC "&audience=billing",
        CC "&resource=https://api.example.com",
        CC "&audience=orders&audience=dflt",
        CC "&resource=https://api.example.com/x",
    };
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(grant(bad_target[i], &c, "dflt", &r, &g), GH_OAUTH_INVALID_TARGET);
        gh_oauth_request_dispose(&r);
    }
    /* A client without audiences gets the default, and only it. */
    c.naudiences = 0;
    assert_int_equal(grant(CC, &c, "dflt", &r, &g), GH_OAUTH_OK);
    assert_string_equal(g.audiences[0], "dflt");
    gh_oauth_request_dispose(&r);
    assert_int_equal(grant(CC "&audience=dflt", &c, "dflt", &r, &g), GH_OAUTH_OK);
    gh_oauth_request_dispose(&r);
    assert_int_equal(grant(CC "&audience=orders", &c, "dflt", &r, &g), GH_OAUTH_INVALID_TARGET);
    gh_oauth_request_dispose(&r);
    assert_int_equal(grant(CC, &c, NULL, &r, &g), GH_OAUTH_INVALID_TARGET);
    gh_oauth_request_dispose(&r);
    /* A client without scopes gets a token without scope; asking fails. */
    c = client();
    c.nscopes = 0;
    assert_int_equal(grant(CC, &c, NULL, &r, &g), GH_OAUTH_OK);
    assert_int_equal(g.nscopes, 0);
    gh_oauth_request_dispose(&r);
    assert_int_equal(grant(CC "&scope=admin", &c, NULL, &r, &g), GH_OAUTH_INVALID_SCOPE);
    gh_oauth_request_dispose(&r);
}

/* ---- an independent check: OpenSSL's EVP API on the token's bytes ---- */

static size_t b64url_dec(const char *in, size_t n, unsigned char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = strchr(a, in[i]);
        assert_non_null(p);
        acc = acc << 6 | (uint32_t)(p - a);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

static void evp_check(const char *tok, const gh_jwt_signing_key_t *k, gh_jwt_alg_t alg)
{
    const char *dot2 = strrchr(tok, '.');
    unsigned char sig[1024], der[1024];
    size_t sl = b64url_dec(dot2 + 1, strlen(dot2 + 1), sig);
    const unsigned char *s = sig;
    EVP_PKEY *pk = gh_jwt_signing_key_pkey(k);
    if (alg == GH_JWT_ES256) {
        /* JOSE r||s (RFC 7518 §3.4) to DER. */
        assert_int_equal(sl, 64);
        ECDSA_SIG *es_ = ECDSA_SIG_new();
        ECDSA_SIG_set0(es_, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        unsigned char *p = der;
        sl = (size_t)i2d_ECDSA_SIG(es_, &p);
        ECDSA_SIG_free(es_);
        s = der;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(
        EVP_DigestVerifyInit(ctx, NULL, alg == GH_JWT_EDDSA ? NULL : EVP_sha256(), NULL, pk), 1);
    int ok = EVP_DigestVerify(ctx, s, sl, (const unsigned char *)tok, (size_t)(dot2 - tok));
    EVP_MD_CTX_free(ctx);
    assert_int_equal(ok, 1);
}

/* The decoded header or payload segment i of tok, NUL-terminated (free()). */
static char *segment(const char *tok, int i)
{
    const char *p = tok;
    for (int k = 0; k < i; k++)
        p = strchr(p, '.') + 1;
    const char *e = strchr(p, '.');
    char *out = malloc(strlen(tok));
    size_t n = b64url_dec(p, (size_t)(e - p), (unsigned char *)out);
    out[n] = '\0';
    return out;
}

static gh_oauth_mint_conf_t mint_conf(const gh_jwt_signing_key_t *k, gh_jwt_alg_t alg)
{
    return (gh_oauth_mint_conf_t){
        .issuer = ISSUER, .key = k, .alg = alg, .kid = "k1", .lifetime = 600};
}

static void test_mint_exact(void **state)
{
    (void)state;
    gh_oauth_client_t c = client();
    gh_oauth_request_t r;
    gh_oauth_grant_t g;
    assert_int_equal(grant(CC "&scope=orders.read+admin", &c, NULL, &r, &g), GH_OAUTH_OK);
    static const struct {
        gh_jwt_signing_key_t **k;
        gh_jwt_alg_t alg;
        const char *hdr;
    } algs[] = {
        {&es, GH_JWT_ES256, "{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"at+jwt\"}"},
        {&rs, GH_JWT_RS256, "{\"alg\":\"RS256\",\"kid\":\"k1\",\"typ\":\"at+jwt\"}"},
        {&ed, GH_JWT_EDDSA, "{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"typ\":\"at+jwt\"}"},
    };
    for (size_t i = 0; i < 3; i++) {
        gh_oauth_mint_conf_t mc = mint_conf(*algs[i].k, algs[i].alg);
        gh_oauth_token_t t;
        gh_oauth_error_t e;
        assert_int_equal(gh_oauth_mint(&mc, &g, NOW, rand16, &t, &e), 0);
        assert_string_equal(t.jti, "AAECAwQFBgcICQoLDA0ODw");
        assert_int_equal(t.exp, NOW + 600);
        assert_int_equal(t.iat, NOW);
        assert_int_equal(strlen(t.access_token), t.access_token_len);
        char *h = segment(t.access_token, 0), *p = segment(t.access_token, 1);
        assert_string_equal(h, algs[i].hdr);
        assert_string_equal(p, "{\"iss\":\"" ISSUER "\",\"sub\":\"s6BhdRkqt3\","
                               "\"aud\":\"orders\",\"exp\":1700000600,\"iat\":1700000000,"
                               "\"jti\":\"AAECAwQFBgcICQoLDA0ODw\",\"client_id\":"
                               "\"s6BhdRkqt3\",\"scope\":\"orders.read admin\"}");
        free(h);
        free(p);
        /* Verified by gatehouse's verifier, as the JWT filter would. */
        gh_jwks_t *pub = jwks_of(*algs[i].k, algs[i].alg);
        gh_jwt_t jwt;
        gh_jwt_reason_t why;
        assert_int_equal(gh_jwt_parse(t.access_token, t.access_token_len, &jwt, &why), 0);
        assert_int_equal(gh_jwt_verify(&jwt, pub, &why), 0);
        const char *aud1[] = {"orders"};
        gh_jwt_claims_policy_t pol = {
            .issuer = ISSUER, .audiences = aud1, .naudiences = 1, .typ = "at+jwt"};
        assert_int_equal(gh_jwt_check_claims(&jwt, &pol, NOW + 599, &why, NULL, 0), 0);
        assert_int_equal(gh_jwt_check_claims(&jwt, &pol, NOW + 600, &why, NULL, 0), -EINVAL);
        gh_jwt_dispose(&jwt);
        gh_jwks_unref(pub);
        /* And by OpenSSL directly. */
        evp_check(t.access_token, *algs[i].k, algs[i].alg);
        /* The response body. */
        json_error_t je;
        json_t *b = json_loadb(t.body, t.body_len, JSON_REJECT_DUPLICATES, &je);
        assert_non_null(b);
        assert_int_equal(json_object_size(b), 4);
        assert_string_equal(json_string_value(json_object_get(b, "access_token")), t.access_token);
        assert_string_equal(json_string_value(json_object_get(b, "token_type")), "Bearer");
        assert_int_equal(json_integer_value(json_object_get(b, "expires_in")), 600);
        assert_string_equal(json_string_value(json_object_get(b, "scope")), "orders.read admin");
        json_decref(b);
        gh_oauth_token_dispose(&t);
    }
    gh_oauth_request_dispose(&r);
}

static void test_mint_shapes(void **state)
{
    (void)state;
    gh_oauth_grant_t g = {.client_id = "c1", .audiences = {"a", "b"}, .naudiences = 2};
    gh_oauth_mint_conf_t mc = mint_conf(es, GH_JWT_ES256);
    mc.kid = NULL;
    mc.with_nbf = 1;
    gh_oauth_token_t t, t2;
    gh_oauth_error_t e;
    assert_int_equal(gh_oauth_mint(&mc, &g, NOW, NULL, &t, &e), 0);
    char *h = segment(t.access_token, 0), *p = segment(t.access_token, 1);
    assert_string_equal(h, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\"}");
    char want[512];
    snprintf(want, sizeof(want),
             "{\"iss\":\"" ISSUER "\",\"sub\":\"c1\",\"aud\":[\"a\",\"b\"],\"exp\":1700000600,"
             "\"iat\":1700000000,\"nbf\":1700000000,\"jti\":\"%s\",\"client_id\":\"c1\"}",
             t.jti);
    assert_string_equal(p, want);
    free(h);
    free(p);
    /* No scope: none in the body either. */
    assert_null(strstr(t.body, "scope"));
    /* Fresh randomness: another jti. */
    assert_int_equal(gh_oauth_mint(&mc, &g, NOW, NULL, &t2, &e), 0);
    assert_string_not_equal(t.jti, t2.jti);
    gh_oauth_token_dispose(&t);
    gh_oauth_token_dispose(&t2);
    /* Misconfigured: no key, a key of another type, no audience. */
    mc.key = NULL;
    assert_int_equal(gh_oauth_mint(&mc, &g, NOW, NULL, &t, &e), -1);
    assert_int_equal(e.code, GH_OAUTH_SERVER_ERROR);
    mc.key = rs;
    assert_int_equal(gh_oauth_mint(&mc, &g, NOW, NULL, &t, &e), -1);
    assert_int_equal(e.code, GH_OAUTH_SERVER_ERROR);
    assert_null(t.access_token);
    mc.key = es;
    g.naudiences = 0;
    assert_int_equal(gh_oauth_mint(&mc, &g, NOW, NULL, &t, &e), -1);
}

static void test_mint_odd_bytes(void **state)
{
    (void)state;
    /* Strings from a client record or config with every kind of byte
     * that needs escaping: jansson reads back the same bytes. */
    static const char *const odd_scopes[] = {"a\"b", "c\\d", "e\x01", "\xc3\xa9", "\x7f/"};
    gh_oauth_grant_t g = {.client_id = "c1",
                          .audiences = {"aud\n\"x\"", "\xf0\x9f\x98\x80"},
                          .naudiences = 2,
                          .nscopes = 5};
    memcpy(g.scopes, odd_scopes, sizeof(odd_scopes));
    gh_oauth_mint_conf_t mc = mint_conf(es, GH_JWT_ES256);
    mc.issuer = "iss\t\"\\\x1f";
    mc.kid = "k\"1";
    gh_oauth_token_t t;
    gh_oauth_error_t e;
    assert_int_equal(gh_oauth_mint(&mc, &g, NOW, NULL, &t, &e), 0);
    char *p = segment(t.access_token, 1), *h = segment(t.access_token, 0);
    json_error_t je;
    json_t *v = json_loads(p, JSON_REJECT_DUPLICATES, &je), *hv = json_loads(h, 0, &je);
    assert_non_null(v);
    assert_non_null(hv);
    assert_string_equal(json_string_value(json_object_get(hv, "kid")), "k\"1");
    assert_string_equal(json_string_value(json_object_get(v, "iss")), mc.issuer);
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "aud"), 0)),
                        "aud\n\"x\"");
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "aud"), 1)),
                        "\xf0\x9f\x98\x80");
    assert_string_equal(json_string_value(json_object_get(v, "scope")),
                        "a\"b c\\d e\x01 \xc3\xa9 \x7f/");
    json_decref(v);
    json_decref(hv);
    free(p);
    free(h);
    json_t *b = json_loadb(t.body, t.body_len, 0, &je);
    assert_string_equal(json_string_value(json_object_get(b, "scope")),
                        "a\"b c\\d e\x01 \xc3\xa9 \x7f/");
    json_decref(b);
    gh_oauth_token_dispose(&t);
    /* Not UTF-8 anywhere: refused, nothing signed. */
    g.audiences[1] = "\xc0\xaf";
    assert_int_equal(gh_oauth_mint(&mc, &g, NOW, NULL, &t, &e), -1);
    assert_int_equal(e.code, GH_OAUTH_SERVER_ERROR);
    assert_null(t.access_token);
    /* Claims that would not fit a token any verifier takes. */
    char *big = malloc(9000);
    memset(big, 's', 8999);
    big[8999] = '\0';
    gh_oauth_grant_t g2 = {.client_id = "c1", .audiences = {"a"}, .naudiences = 1, .nscopes = 1};
    g2.scopes[0] = big;
    assert_int_equal(gh_oauth_mint(&mc, &g2, NOW, NULL, &t, &e), -1);
    assert_int_equal(e.code, GH_OAUTH_SERVER_ERROR);
    free(big);
}

/* ---- introspection and revocation ---- */

static char *mint_for(const char *client_id, const gh_jwt_signing_key_t *k, const char *iss)
{
    gh_oauth_grant_t g = {.client_id = client_id,
                          .scopes = {"orders.read"},
                          .nscopes = 1,
                          .audiences = {"orders", "x"},
                          .naudiences = 2};
    gh_oauth_mint_conf_t mc = mint_conf(k, k == rs ? GH_JWT_RS256 : GH_JWT_ES256);
    mc.issuer = iss;
    gh_oauth_token_t t;
    gh_oauth_error_t e;
    if (gh_oauth_mint(&mc, &g, NOW, rand16, &t, &e) != 0)
        fail_msg("mint: %s", e.desc);
    char *tok = strdup(t.access_token);
    gh_oauth_token_dispose(&t);
    return tok;
}

static json_t *introspect(const char *tok, int64_t now, int revoked, const gh_oauth_client_t *who)
{
    gh_oauth_inspect_conf_t ic = {.keys = keys, .issuer = ISSUER, .skew = 30};
    gh_oauth_token_info_t ti;
    assert_int_equal(gh_oauth_token_inspect(&ic, tok, strlen(tok), now, &ti), 0);
    char *body;
    size_t len;
    assert_int_equal(gh_oauth_introspection_body(&ti, revoked, who, &body, &len), 0);
    gh_oauth_token_info_dispose(&ti);
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(v);
    free(body);
    return v;
}

static int is_inactive(json_t *v)
{
    int r = json_object_size(v) == 1 && json_is_false(json_object_get(v, "active"));
    json_decref(v);
    return r;
}

static void test_introspection(void **state)
{
    (void)state;
    gh_oauth_client_t owner = client(), other = client();
    other.id = "other";
    char *tok = mint_for("s6BhdRkqt3", es, ISSUER);
    json_t *v = introspect(tok, NOW + 1, 0, &owner);
    assert_true(json_is_true(json_object_get(v, "active")));
    assert_string_equal(json_string_value(json_object_get(v, "scope")), "orders.read");
    assert_string_equal(json_string_value(json_object_get(v, "client_id")), "s6BhdRkqt3");
    assert_string_equal(json_string_value(json_object_get(v, "sub")), "s6BhdRkqt3");
    assert_string_equal(json_string_value(json_object_get(v, "iss")), ISSUER);
    assert_string_equal(json_string_value(json_object_get(v, "jti")), "AAECAwQFBgcICQoLDA0ODw");
    assert_string_equal(json_string_value(json_object_get(v, "token_type")), "Bearer");
    assert_int_equal(json_integer_value(json_object_get(v, "exp")), NOW + 600);
    assert_int_equal(json_integer_value(json_object_get(v, "iat")), NOW);
    assert_int_equal(json_array_size(json_object_get(v, "aud")), 2);
    assert_int_equal(json_object_size(v), 10);
    json_decref(v);
    /* Expired (no leeway), revoked, asked by another client: inactive. */
    assert_true(is_inactive(introspect(tok, NOW + 600, 0, &owner)));
    assert_true(is_inactive(introspect(tok, NOW + 1, 1, &owner)));
    assert_true(is_inactive(introspect(tok, NOW + 1, 0, &other)));
    assert_true(is_inactive(introspect(tok, NOW + 1, 0, NULL)));
    other.may_introspect = 1;
    v = introspect(tok, NOW + 1, 0, &other);
    assert_true(json_is_true(json_object_get(v, "active")));
    json_decref(v);
    /* Not ours: another key, another issuer, not a token, a token of
     * ours with a byte changed, a JWT with typ JWT signed by our key. */
    char *foreign = mint_for("s6BhdRkqt3", rs, ISSUER);
    assert_true(is_inactive(introspect(foreign, NOW + 1, 0, &owner)));
    free(foreign);
    char *iss = mint_for("s6BhdRkqt3", es, "https://evil.example.com");
    assert_true(is_inactive(introspect(iss, NOW + 1, 0, &owner)));
    free(iss);
    assert_true(is_inactive(introspect("not a token", NOW + 1, 0, &owner)));
    char *bent = strdup(tok);
    bent[strlen(bent) - 3] ^= 1;
    assert_true(is_inactive(introspect(bent, NOW + 1, 0, &owner)));
    free(bent);
    char err[64];
    static const char claims[] = "{\"iss\":\"" ISSUER "\",\"sub\":\"s6BhdRkqt3\",\"client_id\":"
                                 "\"s6BhdRkqt3\",\"jti\":\"j\",\"exp\":1700000600,\"iat\":1}";
    char *plain = gh_jwt_sign("{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"JWT\"}", claims,
                              strlen(claims), es, GH_JWT_ES256, err, sizeof(err));
    assert_true(is_inactive(introspect(plain, NOW + 1, 0, &owner)));
    free(plain);
    free(tok);
}

static gh_oauth_code_t revoke(const char *tok, const char *hint, const gh_oauth_client_t *who,
                              int64_t now, gh_oauth_revocation_t *out)
{
    char body[4096];
    snprintf(body, sizeof(body), "token=%s%s", tok, hint);
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    assert_int_equal(oauth_req(GH_OAUTH_REVOKE, CT_FORM, BASIC, body, &r, &e), 0);
    gh_oauth_inspect_conf_t ic = {.keys = keys, .issuer = ISSUER, .skew = 30};
    gh_oauth_token_info_t ti;
    assert_int_equal(gh_oauth_token_inspect(&ic, r.token, r.token_len, now, &ti), 0);
    int rc = gh_oauth_revocation_decide(&r, &ti, who, 30, now, out, &e);
    gh_oauth_code_t code = rc == 0 ? GH_OAUTH_OK : e.code;
    if (out->revoke) {
        /* Copied before the info goes. */
        static char jti[64];
        snprintf(jti, sizeof(jti), "%s", out->jti);
        out->jti = jti;
    }
    gh_oauth_token_info_dispose(&ti);
    gh_oauth_request_dispose(&r);
    return code;
}

static void test_revocation(void **state)
{
    (void)state;
    gh_oauth_client_t owner = client(), other = client();
    other.id = "other";
    other.may_introspect = 1; /* may see, may not revoke */
    char *tok = mint_for("s6BhdRkqt3", es, ISSUER);
    gh_oauth_revocation_t rv;
    assert_int_equal(revoke(tok, "", &owner, NOW + 1, &rv), GH_OAUTH_OK);
    assert_true(rv.revoke);
    assert_string_equal(rv.jti, "AAECAwQFBgcICQoLDA0ODw");
    assert_int_equal(rv.until, NOW + 600 + 30);
    assert_int_equal(revoke(tok, "&token_type_hint=refresh_token", &owner, NOW + 1, &rv),
                     GH_OAUTH_OK);
    assert_true(rv.revoke);
    /* Within the leeway JWT filters give exp, still worth revoking. */
    assert_int_equal(revoke(tok, "", &owner, NOW + 629, &rv), GH_OAUTH_OK);
    assert_true(rv.revoke);
    assert_int_equal(revoke(tok, "", &owner, NOW + 630, &rv), GH_OAUTH_OK);
    assert_false(rv.revoke);
    assert_int_equal(revoke(tok, "", &other, NOW + 1, &rv), GH_OAUTH_UNAUTHORIZED_CLIENT);
    assert_false(rv.revoke);
    assert_int_equal(revoke(tok, "&token_type_hint=id_token", &owner, NOW + 1, &rv),
                     GH_OAUTH_UNSUPPORTED_TOKEN_TYPE);
    /* Unknown tokens: 200, nothing to do. */
    assert_int_equal(revoke("garbage", "", &owner, NOW + 1, &rv), GH_OAUTH_OK);
    assert_false(rv.revoke);
    char *foreign = mint_for("s6BhdRkqt3", rs, ISSUER);
    assert_int_equal(revoke(foreign, "", &owner, NOW + 1, &rv), GH_OAUTH_OK);
    assert_false(rv.revoke);
    free(foreign);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grants),        cmocka_unit_test(test_mint_exact),
        cmocka_unit_test(test_mint_shapes),   cmocka_unit_test(test_mint_odd_bytes),
        cmocka_unit_test(test_introspection), cmocka_unit_test(test_revocation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
