/* JWT parsing and claims: strict compact serialization, the JOSE header
 * rules (alg none, crit, duplicates, kid), the header memo, and each claim
 * check both ways. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jose_test.h"

/* ---- RFC 8725 attacks ---- */

static void test_alg_none_every_casing(void **state)
{
    (void)state;
    static const char *const spellings[] = {"none", "None", "NONE", "nOnE", "NoNe", "nonE"};
    gh_jwks_t *k = jwks_or_die(a1_jwk, 1);
    for (size_t i = 0; i < sizeof(spellings) / sizeof(*spellings); i++) {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", spellings[i]);
        /* With an empty signature (the unsecured JWS form) and with a junk one. */
        char *tok = craft(hdr, PAYLOAD, (const unsigned char *)"", 0);
        gh_jwt_reason_t why = GH_JWT_OK;
        assert_int_equal(check(tok, k, &why), -EINVAL);
        free(tok);
        tok = craft(hdr, PAYLOAD, (const unsigned char *)"x", 1);
        assert_int_equal(check(tok, k, &why), -EINVAL);
        assert_string_equal(gh_jwt_reason_text(why), "alg none refused");
        free(tok);
    }
    /* Other unknown or non-signature algorithms. */
    static const char *const others[] = {"HS1", "RS1", "rs256", "ES256K", "", "A128KW", "RSA-OAEP"};
    for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++) {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", others[i]);
        char *tok = craft(hdr, PAYLOAD, (const unsigned char *)"x", 1);
        gh_jwt_reason_t why = GH_JWT_OK;
        assert_int_equal(check(tok, k, &why), -EINVAL);
        assert_string_equal(gh_jwt_reason_text(why), "unsupported algorithm");
        free(tok);
    }
    gh_jwks_unref(k);
}

static void test_stripped_signature(void **state)
{
    (void)state;
    gh_jwks_t *k = jwks_or_die(a2_jwk_pub, 0);
    char tok[1024];
    const char *last = strrchr(a2_token, '.');
    memcpy(tok, a2_token, (size_t)(last - a2_token) + 1);
    tok[last - a2_token + 1] = '\0'; /* "header.payload." */
    gh_jwt_reason_t why = GH_JWT_OK;
    assert_int_equal(check(tok, k, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "malformed token");
    tok[last - a2_token] = '\0'; /* "header.payload" */
    assert_int_equal(check(tok, k, &why), -EINVAL);
    /* A truncated signature is refused by length before any math. */
    snprintf(tok, sizeof(tok), "%.*sAAAA", (int)(last - a2_token + 1), a2_token);
    assert_int_equal(check(tok, k, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "bad signature");
    gh_jwks_unref(k);
}

static void test_malformed(void **state)
{
    (void)state;
    gh_jwks_t *k = jwks_or_die(a3_jwk, 0);
    static const struct {
        const char *tok, *why;
    } cases[] = {
        {"", "malformed token"},
        {"abc", "malformed token"},
        {"a.b", "malformed token"},
        {"a.b.c.d", "malformed token"},
        {"a.b.c.d.e", "malformed token"},
        {".eyJ9.AA", "malformed token"},
        {"eyJhbGciOiJFUzI1NiJ9=.e30.AAAA", "malformed header"},
        {"eyJhbGciOiJFUzI1NiJ9.e30=.AAAA", "malformed payload"},
        {"eyJhbGciOiJFUzI1NiJ9.e30.AA+/", "malformed signature"},
        {"eyJhbGciOiJFUzI1NiJ9.e30.AA A", "malformed signature"},
        {"eyJhbGciOiJFUzI1NiJ9 .e30.AAAA", "malformed header"},
        {"eyJhbGciOiJFUzI1NiJ9.e31.AAAA", "malformed payload"},      /* loose trailing bits */
        {"W10.e30.AAAA", "malformed header"},                        /* [] */
        {"e30.e30.AAAA", "malformed header"},                        /* {} without alg */
        {"eyJhbGciOjF9.e30.AAAA", "malformed header"},               /* alg 1 */
        {"eyJhbGciOiJFUzI1NiJ9.W10.AAAA", "malformed payload"},      /* [] */
        {"eyJhbGciOiJFUzI1NiJ9.IngiCg.AAAA", "malformed payload"},   /* "x" */
        {"eyJhbGciOiJFUzI1NiJ9.eyJhIjp9.AAAA", "malformed payload"}, /* {"a":} */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        gh_jwt_reason_t why = GH_JWT_OK;
        gh_jwt_t t;
        int rc = gh_jwt_parse(cases[i].tok, strlen(cases[i].tok), &t, &why);
        if (rc != -EINVAL || strcmp(gh_jwt_reason_text(why), cases[i].why) != 0)
            print_error("case %zu: %s: rc %d why %s\n", i, cases[i].tok, rc,
                        gh_jwt_reason_text(why));
        assert_int_equal(rc, -EINVAL);
        assert_string_equal(gh_jwt_reason_text(why), cases[i].why);
    }
    gh_jwks_unref(k);
}

static void test_duplicate_members(void **state)
{
    (void)state;
    keypair_t kp = keypair(GH_JWT_ES256, 0, NULL, 0);
    gh_jwt_reason_t why = GH_JWT_OK;
    char *tok = sign(NULL, "{\"sub\":\"alice\",\"sub\":\"admin\",\"exp\":4000000000}", kp.key,
                     GH_JWT_ES256);
    assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "malformed payload");
    free(tok);
    tok = sign("{\"alg\":\"ES256\",\"alg\":\"none\"}", PAYLOAD, kp.key, GH_JWT_ES256);
    assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "malformed header");
    free(tok);
    keypair_free(&kp);
}

static void test_oversized(void **state)
{
    (void)state;
    keypair_t kp = keypair(GH_JWT_HS256, 0, NULL, 0);
    /* Just under the limit works; just over is refused before decoding. */
    size_t fill = 12000;
    char *payload = malloc(fill + 64);
    int n = snprintf(payload, 64, "{\"exp\":4000000000,\"pad\":\"");
    memset(payload + n, 'a', fill);
    strcpy(payload + n + fill, "\"}");
    char *tok = sign(NULL, payload, kp.key, GH_JWT_HS256);
    gh_jwt_reason_t why = GH_JWT_OK;
    assert_true(strlen(tok) <= GH_JWT_MAX_TOKEN);
    assert_int_equal(check(tok, kp.jwks, &why), 0);
    free(tok);
    free(payload);
    char *big = malloc(GH_JWT_MAX_TOKEN + 2);
    memset(big, 'A', GH_JWT_MAX_TOKEN + 1);
    big[10] = '.';
    big[20] = '.';
    big[GH_JWT_MAX_TOKEN + 1] = '\0';
    assert_int_equal(check(big, kp.jwks, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "token too large");
    free(big);
    keypair_free(&kp);
}

static void test_crit(void **state)
{
    (void)state;
    keypair_t kp = keypair(GH_JWT_ES256, 0, NULL, 0);
    gh_jwt_reason_t why = GH_JWT_OK;
    static const char *const hdrs[] = {
        "{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}",
        "{\"alg\":\"ES256\",\"crit\":[\"b64\"],\"b64\":false}",
        "{\"alg\":\"ES256\",\"crit\":[]}",
    };
    for (size_t i = 0; i < 3; i++) {
        char *tok = sign(hdrs[i], PAYLOAD, kp.key, GH_JWT_ES256);
        assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
        assert_string_equal(gh_jwt_reason_text(why), "unsupported crit");
        free(tok);
    }
    /* "b64" without crit: false (or anything but true) would have the
     * segment read as claims when it was signed as raw content. */
    static const char *const b64[] = {
        "{\"alg\":\"ES256\",\"b64\":false}", "{\"alg\":\"ES256\",\"b\\u0036\\u0034\":false}",
        "{\"alg\":\"ES256\",\"b64\":null}",  "{\"alg\":\"ES256\",\"b64\":\"true\"}",
        "{\"alg\":\"ES256\",\"b64\":0}",
    };
    for (size_t i = 0; i < sizeof(b64) / sizeof(*b64); i++) {
        char *tok = sign(b64[i], PAYLOAD, kp.key, GH_JWT_ES256);
        assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
        assert_string_equal(gh_jwt_reason_text(why), "malformed header");
        free(tok);
    }
    char *tok = sign("{\"alg\":\"ES256\",\"b64\":true}", PAYLOAD, kp.key, GH_JWT_ES256);
    assert_int_equal(check(tok, kp.jwks, &why), 0);
    free(tok);
    keypair_free(&kp);
}

/* ---- claims ---- */

static gh_jwt_t parse_payload(const char *payload)
{
    static const unsigned char sig[] = {1, 2, 3};
    char *tok = craft("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", payload, sig, 3);
    gh_jwt_t t;
    gh_jwt_reason_t why = GH_JWT_OK;
    if (gh_jwt_parse(tok, strlen(tok), &t, &why) != 0)
        print_error("parse_payload: %s\n", gh_jwt_reason_text(why));
    free(tok);
    assert_non_null(gh_jwt_payload(&t));
    return t;
}

static int claims(const char *payload, const gh_jwt_claims_policy_t *p, int64_t now,
                  gh_jwt_reason_t *why, char *detail, size_t cap)
{
    gh_jwt_t t = parse_payload(payload);
    int rc = gh_jwt_check_claims(&t, p, now, why, detail, cap);
    gh_jwt_dispose(&t);
    return rc;
}

/* gh_jwt_verifier_parse gives what gh_jwt_parse gives, whether its memo of
 * JOSE headers has the token's header or not: for good headers, headers that
 * fail (never remembered), headers differing in one byte, and more distinct
 * headers than the memo holds. */
static void same_parse(gh_jwt_verifier_t *v, const char *tok)
{
    gh_jwt_t a, b;
    gh_jwt_reason_t ra = GH_JWT_OK, rb = GH_JWT_OK;
    int rca = gh_jwt_parse(tok, strlen(tok), &a, &ra);
    int rcb = gh_jwt_verifier_parse(v, tok, strlen(tok), &b, &rb);
    if (rca != rcb || (rca < 0 && ra != rb))
        fail_msg("%s: parse %d (%s), memo parse %d (%s)", tok, rca, gh_jwt_reason_text(ra), rcb,
                 gh_jwt_reason_text(rb));
    if (rca == 0) {
        assert_int_equal(a.alg, b.alg);
        assert_int_equal(a.has_kid, b.has_kid);
        assert_string_equal(a.kid, b.kid);
        assert_string_equal(a.typ, b.typ);
        assert_int_equal(a.sig_len, b.sig_len);
        assert_memory_equal(a.sig, b.sig, a.sig_len);
        assert_true(json_equal(gh_jwt_payload(&a), gh_jwt_payload(&b)));
        gh_jwt_dispose(&a);
        gh_jwt_dispose(&b);
    }
}

static void test_header_memo(void **state)
{
    (void)state;
    static const char *const hdrs[] = {
        "{\"alg\":\"RS256\",\"kid\":\"a\"}",
        "{\"alg\":\"RS256\",\"kid\":\"b\"}", /* one byte apart */
        "{\"alg\":\"ES256\",\"typ\":\"at+jwt\"}",
        "{\"alg\":\"none\"}",
        "{\"alg\":\"RS256\",\"crit\":[\"x\"]}",
        "{\"alg\":\"RS256\",\"kid\":\"a\",\"kid\":\"b\"}",
        "{\"alg\":\"PS384\"}",
        "{\"alg\":\"EdDSA\",\"kid\":\"e\"}",
        "{\"alg\":\"HS256\",\"kid\":\"h\"}",
        "not json",
    };
    static const unsigned char sig[] = {1, 2, 3, 4, 5, 6, 7, 8};
    gh_jwt_verifier_t *v = gh_jwt_verifier_new();
    assert_non_null(v);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
            char payload[64];
            snprintf(payload, sizeof(payload), "{\"sub\":\"u%d-%zu\"}", round, i);
            char *tok = craft(hdrs[i], payload, sig, sizeof(sig));
            same_parse(v, tok);
            same_parse(v, tok); /* the second time from the memo */
            free(tok);
        }
    }
    gh_jwt_verifier_free(v);
}

/* exp, nbf and iat outside [0, year 9999] are malformed: the verified-token
 * cache converts exp to int64_t, undefined behaviour for 1e300 or 2^63. */
static void test_claims_absurd_dates(void **state)
{
    (void)state;
    gh_jwt_claims_policy_t p = {.skew = 60};
    gh_jwt_reason_t why = GH_JWT_OK;
    char d[64];
    static const char *const bad[] = {
        "1e300",
        "-1",
        "-1e300",
        "9223372036854775807",
        "9.223372036854775808e18",
        "1.8446744073709551617e19",
        "253402300800",
        "1e19",
    };
    static const char *const names[] = {"exp", "nbf", "iat"};
    for (size_t n = 0; n < 3; n++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            char pl[128];
            if (n == 0)
                snprintf(pl, sizeof(pl), "{\"exp\":%s}", bad[i]);
            else
                snprintf(pl, sizeof(pl), "{\"exp\":2000,\"%s\":%s}", names[n], bad[i]);
            why = GH_JWT_OK;
            int rc = claims(pl, &p, 1000, &why, d, sizeof(d));
            if (rc != -EINVAL || why != GH_JWT_MALFORMED_CLAIM)
                fail_msg("%s: rc %d, %s", pl, rc, gh_jwt_reason_text(why));
            assert_string_equal(d, names[n]);
        }
    }
    /* The edges of the range are dates. */
    assert_int_equal(claims("{\"exp\":253402300799}", &p, 1000, &why, d, sizeof(d)), 0);
    assert_int_equal(claims("{\"exp\":2000,\"iat\":0}", &p, 1000, &why, d, sizeof(d)), 0);
}

static void test_claims_max_age(void **state)
{
    (void)state;
    gh_jwt_claims_policy_t p = {.skew = 10, .max_age = 100};
    gh_jwt_reason_t why = GH_JWT_OK;
    char d[64];
    assert_int_equal(claims("{\"exp\":5000,\"iat\":1000}", &p, 1110, &why, d, sizeof(d)), 0);
    assert_int_equal(claims("{\"exp\":5000,\"iat\":1000}", &p, 1111, &why, d, sizeof(d)), -EINVAL);
    assert_int_equal(why, GH_JWT_TOO_OLD);
    assert_string_equal(d, "iat");
    assert_int_equal(claims("{\"exp\":5000}", &p, 1000, &why, d, sizeof(d)), -EINVAL);
    assert_int_equal(why, GH_JWT_MISSING_IAT);
    p.max_age = 0;
    assert_int_equal(claims("{\"exp\":5000}", &p, 1000, &why, d, sizeof(d)), 0);
}

/* One table: every reason has its own text and a refusal status; the filter
 * counts and describes refusals through it. */
static void test_reason_table(void **state)
{
    (void)state;
    for (int i = 0; i < GH_JWT_REASON_COUNT; i++) {
        const char *t = gh_jwt_reason_text((gh_jwt_reason_t)i);
        assert_non_null(t);
        assert_true(t[0] != '\0');
        for (int j = 0; j < i; j++)
            assert_string_not_equal(t, gh_jwt_reason_text((gh_jwt_reason_t)j));
        int st = gh_jwt_reason_status((gh_jwt_reason_t)i);
        assert_true(i == GH_JWT_OK ? st == 200 : st == 401 || st == 403 || st == 503);
    }
    assert_int_equal(gh_jwt_reason_status(GH_JWT_INSUFFICIENT_CLAIMS), 403);
    assert_int_equal(gh_jwt_reason_status(GH_JWT_KEYS_UNAVAILABLE), 503);
    assert_int_equal(gh_jwt_reason_status(GH_JWT_OUT_OF_MEMORY), 503);
    assert_int_equal(gh_jwt_reason_status(GH_JWT_EXPIRED), 401);
}

static void test_claims_times(void **state)
{
    (void)state;
    gh_jwt_claims_policy_t p = {.skew = 60};
    gh_jwt_reason_t why = GH_JWT_OK;
    char d[64];
    /* exp: valid until exp + skew, exclusive. */
    assert_int_equal(claims("{\"exp\":1000}", &p, 1059, &why, d, sizeof(d)), 0);
    assert_int_equal(claims("{\"exp\":1000}", &p, 1060, &why, d, sizeof(d)), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "expired");
    assert_string_equal(d, "exp");
    assert_int_equal(claims("{\"exp\":1000.5}", &p, 1060, &why, d, sizeof(d)), 0);
    assert_int_equal(claims("{\"exp\":\"1000\"}", &p, 0, &why, d, sizeof(d)), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "malformed claim");
    assert_int_equal(claims("{\"sub\":\"x\"}", &p, 0, &why, d, sizeof(d)), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "missing exp");
    p.exp_optional = 1;
    assert_int_equal(claims("{\"sub\":\"x\"}", &p, 0, &why, d, sizeof(d)), 0);
    assert_int_equal(claims("{\"exp\":1000}", &p, 2000, &why, d, sizeof(d)), -EINVAL);
    /* nbf: usable from nbf - skew. */
    assert_int_equal(claims("{\"exp\":5000,\"nbf\":1000}", &p, 940, &why, d, sizeof(d)), 0);
    assert_int_equal(claims("{\"exp\":5000,\"nbf\":1000}", &p, 939, &why, d, sizeof(d)), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "not yet valid");
    assert_int_equal(claims("{\"nbf\":true}", &p, 939, &why, d, sizeof(d)), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "malformed claim");
    /* iat: no later than now + skew. */
    assert_int_equal(claims("{\"iat\":1060}", &p, 1000, &why, d, sizeof(d)), 0);
    assert_int_equal(claims("{\"iat\":1061}", &p, 1000, &why, d, sizeof(d)), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "issued in the future");
    assert_string_equal(d, "iat");
    assert_int_equal(claims("{\"iat\":null}", &p, 1000, &why, d, sizeof(d)), -EINVAL);
    /* No skew. */
    p.skew = 0;
    assert_int_equal(claims("{\"exp\":1000}", &p, 999, &why, NULL, 0), 0);
    assert_int_equal(claims("{\"exp\":1000}", &p, 1000, &why, NULL, 0), -EINVAL);
}

static void test_claims_iss_aud_typ(void **state)
{
    (void)state;
    static const char *const auds[] = {"orders", "billing"};
    gh_jwt_claims_policy_t p = {
        .issuer = "https://issuer.example", .audiences = auds, .naudiences = 2, .exp_optional = 1};
    gh_jwt_reason_t why = GH_JWT_OK;
    char d[64];
    assert_int_equal(claims("{\"iss\":\"https://issuer.example\",\"aud\":\"billing\"}", &p, 0, &why,
                            d, sizeof(d)),
                     0);
    assert_int_equal(claims("{\"iss\":\"https://issuer.example\",\"aud\":[\"x\",\"orders\"]}", &p,
                            0, &why, d, sizeof(d)),
                     0);
    assert_int_equal(claims("{\"iss\":\"https://issuer.example\",\"aud\":[\"x\",\"y\"]}", &p, 0,
                            &why, d, sizeof(d)),
                     -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "wrong audience");
    /* aud is a string or an array of strings (RFC 7519 section 4.1.3): an
     * array with anything else in it is for nobody, even beside one of
     * ours, and a number is not the audience spelt as its digits. PyJWT
     * refuses these too ("Invalid claim format in token"). */
    static const char *const bad_arrays[] = {
        "[1,\"orders\"]", "[\"orders\",null]",           "[true,\"orders\"]",
        "[[\"orders\"]]", "[{\"orders\":1},\"orders\"]", "[\"x\",\"orders\",1.5]",
    };
    for (size_t i = 0; i < sizeof(bad_arrays) / sizeof(*bad_arrays); i++) {
        char pl[128];
        snprintf(pl, sizeof(pl), "{\"iss\":\"https://issuer.example\",\"aud\":%s}", bad_arrays[i]);
        why = GH_JWT_OK;
        assert_int_equal(claims(pl, &p, 0, &why, d, sizeof(d)), -EINVAL);
        assert_string_equal(gh_jwt_reason_text(why), "wrong audience");
    }
    static const char *const numeric[] = {"123", "null"};
    gh_jwt_claims_policy_t pn = {.audiences = numeric, .naudiences = 2, .exp_optional = 1};
    assert_int_equal(claims("{\"aud\":[123]}", &pn, 0, &why, d, sizeof(d)), -EINVAL);
    assert_int_equal(claims("{\"aud\":[null]}", &pn, 0, &why, d, sizeof(d)), -EINVAL);
    assert_int_equal(claims("{\"aud\":123}", &pn, 0, &why, d, sizeof(d)), -EINVAL);
    assert_int_equal(claims("{\"aud\":[\"123\"]}", &pn, 0, &why, d, sizeof(d)), 0);
    assert_int_equal(
        claims("{\"iss\":\"https://issuer.example\",\"aud\":[]}", &p, 0, &why, d, sizeof(d)),
        -EINVAL);
    assert_int_equal(claims("{\"iss\":\"https://issuer.example\"}", &p, 0, &why, d, sizeof(d)),
                     -EINVAL);
    assert_int_equal(claims("{\"iss\":\"https://issuer.example\",\"aud\":\"Orders\"}", &p, 0, &why,
                            d, sizeof(d)),
                     -EINVAL);
    assert_int_equal(claims("{\"iss\":\"https://issuer.example/\",\"aud\":\"orders\"}", &p, 0, &why,
                            d, sizeof(d)),
                     -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "wrong issuer");
    assert_int_equal(claims("{\"aud\":\"orders\"}", &p, 0, &why, d, sizeof(d)), -EINVAL);
    assert_int_equal(claims("{\"iss\":[\"https://issuer.example\"],\"aud\":\"orders\"}", &p, 0,
                            &why, d, sizeof(d)),
                     -EINVAL);
    /* typ: parse_payload's tokens carry "at+jwt". */
    p.typ = "at+jwt";
    assert_int_equal(claims("{\"iss\":\"https://issuer.example\",\"aud\":\"orders\"}", &p, 0, &why,
                            d, sizeof(d)),
                     0);
    p.typ = "application/AT+JWT";
    assert_int_equal(claims("{\"iss\":\"https://issuer.example\",\"aud\":\"orders\"}", &p, 0, &why,
                            d, sizeof(d)),
                     0);
    p.typ = "JWT";
    assert_int_equal(claims("{\"iss\":\"https://issuer.example\",\"aud\":\"orders\"}", &p, 0, &why,
                            d, sizeof(d)),
                     -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "wrong typ");
}

static void test_claims_required(void **state)
{
    (void)state;
    static const char *const read[] = {"orders.read"};
    static const char *const rw[] = {"orders.read", "orders.write"};
    static const char *const roles[] = {"admin", "ops"};
    static const char *const tenant[] = {"acme"};
    static const char *const verified[] = {"true"};
    static const char *const level[] = {"2", "3"};
    const char *pl = "{\"scope\":\"profile orders.read  email\",\"scp\":[\"a\"],"
                     "\"realm\":{\"roles\":[\"user\",\"ops\"],\"tenant\":\"acme\"},"
                     "\"https://example.com/claims.level\":3,\"email_verified\":true}";
    gh_jwt_reason_t why = GH_JWT_OK;
    char d[128];
    struct {
        gh_jwt_claim_req_t r;
        int want;
    } cases[] = {
        {{"scope", GH_JWT_CLAIM_CONTAINS, read, 1}, 0},
        {{"scope", GH_JWT_CLAIM_CONTAINS, rw, 2}, -EACCES},
        {{"realm.roles", GH_JWT_CLAIM_ONE_OF, roles, 2}, 0},
        {{"realm.roles", GH_JWT_CLAIM_CONTAINS, roles, 2}, -EACCES},
        {{"realm.tenant", GH_JWT_CLAIM_EXACT, tenant, 1}, 0},
        {{"realm.tenant", GH_JWT_CLAIM_ONE_OF, roles, 2}, -EACCES},
        {{"realm", GH_JWT_CLAIM_EXACT, tenant, 1}, -EACCES},
        {{"email_verified", GH_JWT_CLAIM_EXACT, verified, 1}, 0},
        {{"https://example.com/claims.level", GH_JWT_CLAIM_ONE_OF, level, 2}, 0},
        {{"missing", GH_JWT_CLAIM_EXACT, tenant, 1}, -EACCES},
        {{"realm.tenant.x", GH_JWT_CLAIM_EXACT, tenant, 1}, -EACCES},
        {{"scope", GH_JWT_CLAIM_EXACT, read, 1}, -EACCES},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        gh_jwt_claims_policy_t p = {.exp_optional = 1, .required = &cases[i].r, .nrequired = 1};
        int rc = claims(pl, &p, 0, &why, d, sizeof(d));
        if (rc != cases[i].want)
            print_error("case %zu: rc %d\n", i, rc);
        assert_int_equal(rc, cases[i].want);
        if (rc == -EACCES)
            assert_string_equal(gh_jwt_reason_text(why), "insufficient claims");
    }
    gh_jwt_claims_policy_t p = {.exp_optional = 1, .required = &cases[1].r, .nrequired = 1};
    claims(pl, &p, 0, &why, d, sizeof(d));
    assert_string_equal(d, "scope contains orders.write");
}

static void test_render_and_scopes(void **state)
{
    (void)state;
    gh_jwt_t t = parse_payload("{\"s\":\"alice\",\"a\":[\"x\",\"y\",3,true,{\"k\":1}],\"n\":42,"
                               "\"f\":1.5,\"b\":false,\"o\":{\"k\":\"v\",\"z\":[1]},\"z\":null,"
                               "\"crlf\":\"a\\r\\nX-Admin: 1\",\"u\":\"caf\\u00e9\","
                               "\"scope\":\" read  write \",\"nested\":{\"deep\":{\"v\":\"x\"}},"
                               "\"commas\":[\"eng,admin\"],\"smuggle\":[{\"\\\",admin,\\\"\":1}],"
                               "\"pairs\":[\"x\",[1,2]],\"name\":\"Doe, John\","
                               "\"lead\":\" admin\",\"trail\":\"admin \",\"tab\":\"\\tadmin\","
                               "\"elem\":[\"eng\",\" admin\"],\"elem2\":[\"admin\\t\"],"
                               "\"inner\":\"a \\tb\"}");
    char buf[128];
    assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, "s"), buf, sizeof(buf)), 5);
    assert_string_equal(buf, "alice");
    gh_jwt_claim_render(gh_jwt_claim(&t, "a"), buf, sizeof(buf));
    assert_string_equal(buf, "x,y,3,true,{\"k\":1}");
    gh_jwt_claim_render(gh_jwt_claim(&t, "n"), buf, sizeof(buf));
    assert_string_equal(buf, "42");
    gh_jwt_claim_render(gh_jwt_claim(&t, "f"), buf, sizeof(buf));
    assert_string_equal(buf, "1.5");
    gh_jwt_claim_render(gh_jwt_claim(&t, "b"), buf, sizeof(buf));
    assert_string_equal(buf, "false");
    gh_jwt_claim_render(gh_jwt_claim(&t, "o"), buf, sizeof(buf));
    assert_string_equal(buf, "{\"k\":\"v\",\"z\":[1]}");
    gh_jwt_claim_render(gh_jwt_claim(&t, "z"), buf, sizeof(buf));
    assert_string_equal(buf, "null");
    gh_jwt_claim_render(gh_jwt_claim(&t, "nested.deep.v"), buf, sizeof(buf));
    assert_string_equal(buf, "x");
    assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, "u"), buf, sizeof(buf)), 5);
    assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, "crlf"), buf, sizeof(buf)), -EINVAL);
    /* An element that would split into two on the upstream's ','. */
    assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, "commas"), buf, sizeof(buf)), -EINVAL);
    assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, "smuggle"), buf, sizeof(buf)), -EINVAL);
    assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, "pairs"), buf, sizeof(buf)), -EINVAL);
    assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, "name"), buf, sizeof(buf)), 9);
    assert_string_equal(buf, "Doe, John");
    /* Spaces and tabs around a value or an element, which HTTP trims. */
    static const char *const padded[] = {"lead", "trail", "tab", "elem", "elem2"};
    for (size_t i = 0; i < sizeof(padded) / sizeof(*padded); i++) {
        assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, padded[i]), buf, sizeof(buf)),
                         -EINVAL);
        assert_int_equal(gh_jwt_claim_render_path(&t, padded[i], buf, sizeof(buf)), -EINVAL);
    }
    assert_int_equal(gh_jwt_claim_render_path(&t, "inner", buf, sizeof(buf)), 4);
    assert_string_equal(buf, "a \tb");
    assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, "s"), buf, 5), -ENOSPC);
    assert_int_equal(gh_jwt_claim_render(gh_jwt_claim(&t, "o"), buf, 8), -ENOSPC);
    assert_null(gh_jwt_claim(&t, "nested.nope"));

    gh_jwt_slice_t sc[4];
    assert_int_equal(gh_jwt_scopes(&t, sc, 4), 2);
    assert_int_equal(sc[0].len, 4);
    assert_memory_equal(sc[0].p, "read", 4);
    assert_memory_equal(sc[1].p, "write", 5);
    assert_int_equal(gh_jwt_scopes(&t, sc, 1), 2);
    gh_jwt_dispose(&t);

    t = parse_payload("{\"scp\":[\"a\",1,\"b c\",\"\",\"b\"]}");
    assert_int_equal(gh_jwt_scopes(&t, sc, 4), 2);
    assert_memory_equal(sc[0].p, "a", 1);
    assert_int_equal(sc[1].len, 1);
    assert_memory_equal(sc[1].p, "b", 1);
    gh_jwt_dispose(&t);

    /* The payload segment, as sent. */
    gh_jwt_t a1;
    gh_jwt_reason_t why;
    assert_int_equal(gh_jwt_parse(a1_token, strlen(a1_token), &a1, &why), 0);
    size_t pl;
    const char *p = gh_jwt_payload_b64(&a1, &pl);
    assert_int_equal(pl, strlen(RFC_PAYLOAD_B64));
    assert_memory_equal(p, RFC_PAYLOAD_B64, pl);
    gh_jwt_dispose(&a1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_none_every_casing),
        cmocka_unit_test(test_stripped_signature),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_duplicate_members),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_crit),
        cmocka_unit_test(test_header_memo),
        cmocka_unit_test(test_claims_absurd_dates),
        cmocka_unit_test(test_claims_max_age),
        cmocka_unit_test(test_reason_table),
        cmocka_unit_test(test_claims_times),
        cmocka_unit_test(test_claims_iss_aud_typ),
        cmocka_unit_test(test_claims_required),
        cmocka_unit_test(test_render_and_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
