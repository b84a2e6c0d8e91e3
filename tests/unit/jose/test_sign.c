/* Signing keys and signing: a round trip through every algorithm, PEM
 * keys, and the public JWKS exported from signing keys. */
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

#include <openssl/pem.h>

/* ---- round trips ---- */

static void roundtrip(gh_jwt_alg_t alg, int bits)
{
    keypair_t kp = keypair(alg, bits, "k1", 1);
    char hdr[96];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"k1\",\"typ\":\"at+jwt\"}",
             gh_jwt_alg_name(alg));
    char *tok = sign(hdr, PAYLOAD, kp.key, alg);
    gh_jwt_reason_t why = GH_JWT_OK;
    gh_jwt_verifier_t *v = gh_jwt_verifier_new();
    assert_non_null(v);
    for (int pass = 0; pass < 3; pass++) { /* again, with the cached contexts */
        gh_jwt_t t;
        assert_int_equal(gh_jwt_parse(tok, strlen(tok), &t, &why), 0);
        assert_int_equal(gh_jwt_verifier_verify(v, &t, kp.jwks, &why), 0);
        assert_int_equal(gh_jwt_verify(&t, kp.jwks, &why), 0);
        gh_jwt_dispose(&t);
    }
    /* Tamper with the payload ("alice" becomes "mallory", still valid JSON,
     * so the token parses): the signature no longer holds. The forgery is
     * the other payload's header.payload with this token's signature. */
    gh_jwt_t t;
    char *other = sign(hdr,
                       "{\"iss\":\"https://issuer.example\",\"sub\":\"mallory\","
                       "\"exp\":4000000000}",
                       kp.key, alg);
    char *forged = malloc(strlen(other) + strlen(tok) + 1);
    assert_non_null(forged);
    size_t signing = (size_t)(strrchr(other, '.') - other);
    memcpy(forged, other, signing);
    strcpy(forged + signing, strrchr(tok, '.'));
    assert_int_equal(gh_jwt_parse(forged, strlen(forged), &t, &why), 0);
    assert_int_equal(gh_jwt_verifier_verify(v, &t, kp.jwks, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "bad signature");
    gh_jwt_dispose(&t);
    free(forged);
    free(other);
    /* Without a kid, the fitting keys are tried. */
    free(tok);
    tok = sign(NULL, PAYLOAD, kp.key, alg);
    assert_int_equal(gh_jwt_parse(tok, strlen(tok), &t, &why), 0);
    assert_int_equal(gh_jwt_verifier_verify(v, &t, kp.jwks, &why), 0);
    gh_jwt_dispose(&t);
    free(tok);
    gh_jwt_verifier_free(v);
    keypair_free(&kp);
}

static void test_roundtrip_all(void **state)
{
    (void)state;
    for (int a = GH_JWT_RS256; a < GH_JWT_ALG_COUNT; a++)
        roundtrip((gh_jwt_alg_t)a, 0);
    roundtrip(GH_JWT_EDDSA, 448);
    roundtrip(GH_JWT_RS256, 3072);
}

static void test_pem_key(void **state)
{
    (void)state;
    char err[128];
    gh_jwt_signing_key_t *g = gh_jwt_signing_key_generate(GH_JWT_ES384, 0, err, sizeof(err));
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PrivateKey(b, gh_jwt_signing_key_pkey(g), NULL, NULL, 0, NULL, NULL));
    char *pem;
    long n = BIO_get_mem_data(b, &pem);
    gh_jwt_signing_key_t *k = gh_jwt_signing_key_load_pem(pem, (size_t)n, err, sizeof(err));
    assert_non_null(k);
    BIO_free(b);
    char *doc = gh_jwt_signing_key_jwks(g, NULL, GH_JWT_ALG_UNKNOWN, err, sizeof(err));
    gh_jwks_t *s = jwks_or_die(doc, 0);
    char *tok = sign(NULL, PAYLOAD, k, GH_JWT_ES384);
    gh_jwt_reason_t why;
    assert_int_equal(check(tok, s, &why), 0);
    /* The wrong curve for the alg cannot sign. */
    assert_null(gh_jwt_sign(NULL, "{}", 2, k, GH_JWT_ES256, err, sizeof(err)));
    assert_null(gh_jwt_signing_key_load_pem("junk", 4, err, sizeof(err)));
    free(tok);
    free(doc);
    gh_jwks_unref(s);
    gh_jwt_signing_key_free(k);
    gh_jwt_signing_key_free(g);
}

static void test_export_roundtrip(void **state)
{
    (void)state;
    static const struct {
        gh_jwt_alg_t alg;
        int bits;
        const char *kty, *crv;
        int kbits;
    } cases[] = {
        {GH_JWT_RS256, 2048, "RSA", NULL, 2048},  {GH_JWT_PS384, 3072, "RSA", NULL, 3072},
        {GH_JWT_ES256, 0, "EC", "P-256", 256},    {GH_JWT_ES384, 0, "EC", "P-384", 384},
        {GH_JWT_ES512, 0, "EC", "P-521", 521},    {GH_JWT_EDDSA, 0, "OKP", "Ed25519", 256},
        {GH_JWT_EDDSA, 448, "OKP", "Ed448", 456}, {GH_JWT_HS384, 0, "oct", NULL, 384},
    };
    char err[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        gh_jwt_signing_key_t *k =
            gh_jwt_signing_key_generate(cases[i].alg, cases[i].bits, err, sizeof(err));
        assert_non_null(k);
        char *doc = gh_jwt_signing_key_jwks(k, "kid-1", cases[i].alg, err, sizeof(err));
        assert_non_null(doc);
        assert_null(strstr(doc, "\"d\""));
        gh_jwks_t *s = jwks_or_die(doc, 1);
        gh_jwk_info_t in;
        gh_jwks_key_info(s, 0, &in);
        assert_string_equal(in.kid, "kid-1");
        assert_string_equal(in.kty, cases[i].kty);
        assert_string_equal(in.alg, gh_jwt_alg_name(cases[i].alg));
        if (cases[i].crv)
            assert_string_equal(in.crv, cases[i].crv);
        assert_int_equal(in.bits, cases[i].kbits);
        gh_jwks_unref(s);
        free(doc);
        gh_jwt_signing_key_free(k);
    }
    /* A key that does not fit its alg cannot sign with it. */
    gh_jwt_signing_key_t *k = gh_jwt_signing_key_generate(GH_JWT_ES256, 0, err, sizeof(err));
    assert_null(gh_jwt_sign(NULL, "{}", 2, k, GH_JWT_RS256, err, sizeof(err)));
    assert_null(gh_jwt_sign(NULL, "{}", 2, k, GH_JWT_HS256, err, sizeof(err)));
    assert_null(gh_jwt_sign(NULL, "{}", 2, k, GH_JWT_ALG_UNKNOWN, err, sizeof(err)));
    gh_jwt_signing_key_free(k);
    assert_null(gh_jwt_signing_key_from_jwk("{\"kty\":\"EC\"}", 12, err, sizeof(err)));
    assert_null(gh_jwt_signing_key_from_jwk("nope", 4, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all),
        cmocka_unit_test(test_pem_key),
        cmocka_unit_test(test_export_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
