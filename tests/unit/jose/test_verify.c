/* Signature checks: the RFC 7515 / RFC 8037 example vectors, key and
 * algorithm fit (RFC 8725), kid matching and its bounds, and ECDSA
 * signatures out of range. */
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

/* ---- RFC vectors ---- */

static void test_rfc7515_a1_hs256(void **state)
{
    (void)state;
    gh_jwks_t *k = jwks_or_die(a1_jwk, 1);
    gh_jwt_reason_t why = GH_JWT_OK;
    gh_jwt_t t;
    assert_int_equal(gh_jwt_parse(a1_token, strlen(a1_token), &t, &why), 0);
    assert_int_equal(t.alg, GH_JWT_HS256);
    assert_string_equal(t.typ, "JWT");
    assert_false(t.has_kid);
    assert_int_equal(gh_jwt_verify(&t, k, &why), 0);
    assert_true(json_is_true(gh_jwt_claim(&t, "http://example.com/is_root")));
    gh_jwt_claims_policy_t p = {.issuer = "joe"};
    assert_int_equal(gh_jwt_check_claims(&t, &p, 1300819379, &why, NULL, 0), 0);
    assert_int_equal(gh_jwt_check_claims(&t, &p, 1300819380, &why, NULL, 0), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "expired");
    gh_jwt_dispose(&t);
    /* The same secret is refused when symmetric keys are not allowed. */
    char err[128];
    assert_null(gh_jwks_parse(a1_jwk, strlen(a1_jwk), NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "symmetric"));
    gh_jwks_unref(k);
}

static void test_rfc7515_a2_rs256(void **state)
{
    (void)state;
    gh_jwks_t *k = jwks_or_die(a2_jwk_pub, 0);
    gh_jwt_reason_t why = GH_JWT_OK;
    assert_int_equal(check(a2_token, k, &why), 0);
    /* PKCS#1 v1.5 is deterministic: signing again gives the RFC's bytes. */
    char err[128];
    gh_jwt_signing_key_t *sk =
        gh_jwt_signing_key_from_jwk(a2_jwk_priv, strlen(a2_jwk_priv), err, sizeof(err));
    assert_non_null(sk);
    static const char payload[] =
        "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
    char *tok = gh_jwt_sign("{\"alg\":\"RS256\"}", payload, strlen(payload), sk, GH_JWT_RS256, err,
                            sizeof(err));
    assert_non_null(tok);
    assert_string_equal(tok, a2_token);
    free(tok);
    gh_jwt_signing_key_free(sk);
    /* The private JWK itself is refused as a verification key set. */
    assert_null(gh_jwks_parse(a2_jwk_priv, strlen(a2_jwk_priv), NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "private"));
    gh_jwks_unref(k);
}

static void test_rfc7515_a3_es256(void **state)
{
    (void)state;
    gh_jwks_t *k = jwks_or_die(a3_jwk, 0);
    gh_jwt_reason_t why = GH_JWT_OK;
    assert_int_equal(check(a3_token, k, &why), 0);
    gh_jwks_unref(k);
}

static void test_rfc7515_a4_es512(void **state)
{
    (void)state;
    gh_jwks_t *k = jwks_or_die(a4_jwk, 0);
    unsigned char sig[200];
    size_t sl = unb64(a4_sig, sig);
    assert_int_equal(sl, 132);
    /* The payload is not JSON, so this vector goes to the signature layer. */
    const unsigned char *msg = (const unsigned char *)a4_input;
    assert_int_equal(
        gh_jose_verify(NULL, &k->keys[0], GH_JWT_ES512, msg, strlen(a4_input), sig, sl), 1);
    sig[10] ^= 1;
    assert_int_equal(
        gh_jose_verify(NULL, &k->keys[0], GH_JWT_ES512, msg, strlen(a4_input), sig, sl), 0);
    /* And the token as a whole is no JWT. */
    char tok[512];
    snprintf(tok, sizeof(tok), "%s.%s", a4_input, a4_sig);
    gh_jwt_reason_t why = GH_JWT_OK;
    assert_int_equal(check(tok, k, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "malformed payload");
    gh_jwks_unref(k);
}

static void test_rfc8037_ed25519(void **state)
{
    (void)state;
    char err[128];
    gh_jwt_signing_key_t *sk =
        gh_jwt_signing_key_from_jwk(ed_jwk_priv, strlen(ed_jwk_priv), err, sizeof(err));
    assert_non_null(sk);
    static const char msg[] = "Example of Ed25519 signing";
    char *tok =
        gh_jwt_sign("{\"alg\":\"EdDSA\"}", msg, strlen(msg), sk, GH_JWT_EDDSA, err, sizeof(err));
    assert_non_null(tok);
    assert_string_equal(tok, ed_token);
    free(tok);
    gh_jwt_signing_key_free(sk);

    gh_jwks_t *k = jwks_or_die(ed_jwk_pub, 0);
    const char *dot = strrchr(ed_token, '.');
    unsigned char sig[64];
    assert_int_equal(unb64(dot + 1, sig), 64);
    gh_jwt_verifier_t *v = gh_jwt_verifier_new();
    assert_int_equal(gh_jose_verify(v, &k->keys[0], GH_JWT_EDDSA, (const unsigned char *)ed_token,
                                    (size_t)(dot - ed_token), sig, 64),
                     1);
    sig[0] ^= 1;
    assert_int_equal(gh_jose_verify(v, &k->keys[0], GH_JWT_EDDSA, (const unsigned char *)ed_token,
                                    (size_t)(dot - ed_token), sig, 64),
                     0);
    gh_jwt_verifier_free(v);
    gh_jwks_unref(k);
}

/* The classic confusion: the verifier holds an RSA public key, the attacker
 * HMACs with that key's public bytes (PEM or DER or the JWK's n) as the
 * secret and sets alg HS256. */
static void test_hmac_with_rsa_public_key(void **state)
{
    (void)state;
    keypair_t kp = keypair(GH_JWT_RS256, 0, "rsa1", 0);
    EVP_PKEY *pk = gh_jwt_signing_key_pkey(kp.key);
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PUBKEY(b, pk));
    char *pem;
    long n = BIO_get_mem_data(b, &pem);
    gh_jwt_signing_key_t *forger = gh_jwt_signing_key_from_secret(pem, (size_t)n);
    BIO_free(b);
    for (int with_kid = 0; with_kid < 2; with_kid++) {
        char *tok = sign(with_kid ? "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}" : "{\"alg\":\"HS256\"}",
                         PAYLOAD, forger, GH_JWT_HS256);
        gh_jwt_reason_t why = GH_JWT_OK;
        assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
        assert_string_equal(gh_jwt_reason_text(why), "no key for algorithm");
        free(tok);
    }
    /* Even a set that allows symmetric keys holds no oct key here. */
    gh_jwt_signing_key_free(forger);
    keypair_free(&kp);
}

static void test_key_alg_and_curve_must_fit(void **state)
{
    (void)state;
    /* A key that says RS256 does not verify PS256, even with a valid signature. */
    keypair_t kp = keypair(GH_JWT_RS256, 0, "k1", 1);
    char *tok = sign("{\"alg\":\"PS256\",\"kid\":\"k1\"}", PAYLOAD, kp.key, GH_JWT_PS256);
    gh_jwt_reason_t why = GH_JWT_OK;
    assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "no key for algorithm");
    free(tok);
    keypair_free(&kp);
    /* A P-384 key does not verify ES256 (nor the reverse). */
    keypair_t p384 = keypair(GH_JWT_ES384, 0, "k1", 0);
    keypair_t p256 = keypair(GH_JWT_ES256, 0, "k1", 0);
    tok = sign("{\"alg\":\"ES256\",\"kid\":\"k1\"}", PAYLOAD, p256.key, GH_JWT_ES256);
    assert_int_equal(check(tok, p384.jwks, &why), -EINVAL);
    assert_int_equal(check(tok, p256.jwks, &why), 0);
    free(tok);
    keypair_free(&p384);
    keypair_free(&p256);
}

static void test_kid_tricks(void **state)
{
    (void)state;
    keypair_t kp = keypair(GH_JWT_ES256, 0, "good-key", 0);
    static const char *const kids[] = {
        "../../../../dev/null",
        "' OR '1'='1",
        "good-key\\u0000",
        "GOOD-KEY",
        "good-key ",
        "good-ke",
        "*",
        "",
    };
    for (size_t i = 0; i < sizeof(kids) / sizeof(*kids); i++) {
        char hdr[128];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kids[i]);
        char *tok = sign(hdr, PAYLOAD, kp.key, GH_JWT_ES256);
        gh_jwt_reason_t why = GH_JWT_OK;
        int rc = check(tok, kp.jwks, &why);
        assert_true(rc == -ENOKEY || rc == -EINVAL);
        if (rc == -ENOKEY)
            assert_string_equal(gh_jwt_reason_text(why), "unknown key");
        free(tok);
    }
    /* kid of the wrong type, or too long. */
    char *tok = sign("{\"alg\":\"ES256\",\"kid\":42}", PAYLOAD, kp.key, GH_JWT_ES256);
    gh_jwt_reason_t why = GH_JWT_OK;
    assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "malformed kid");
    free(tok);
    char hdr[400];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%0257d\"}", 0);
    tok = sign(hdr, PAYLOAD, kp.key, GH_JWT_ES256);
    assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "malformed kid");
    free(tok);
    /* Missing kid: the fitting key is found. */
    tok = sign("{\"alg\":\"ES256\"}", PAYLOAD, kp.key, GH_JWT_ES256);
    assert_int_equal(check(tok, kp.jwks, &why), 0);
    free(tok);
    keypair_free(&kp);
}

static void test_embedded_keys_ignored(void **state)
{
    (void)state;
    keypair_t trusted = keypair(GH_JWT_RS256, 0, "t", 0);
    keypair_t attacker = keypair(GH_JWT_RS256, 0, "t", 0);
    char err[128];
    char *ajwk = gh_jwt_signing_key_jwks(attacker.key, "t", GH_JWT_ALG_UNKNOWN, err, sizeof(err));
    json_t *doc = json_loads(ajwk, 0, NULL);
    char *one = json_dumps(json_array_get(json_object_get(doc, "keys"), 0), JSON_COMPACT);
    char hdr[2048];
    static const char *const prefixes[] = {
        "{\"alg\":\"RS256\",\"jwk\":",
        "{\"alg\":\"RS256\",\"kid\":\"t\",\"jwk\":",
        "{\"alg\":\"RS256\",\"jku\":\"https://attacker.example/jwks\",\"x\":",
        "{\"alg\":\"RS256\",\"x5u\":\"https://attacker.example/c.pem\",\"x\":",
        "{\"alg\":\"RS256\",\"x5c\":[\"MIIB\"],\"x\":",
    };
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(*prefixes); i++) {
        snprintf(hdr, sizeof(hdr), "%s%s}", prefixes[i], one);
        char *tok = sign(hdr, PAYLOAD, attacker.key, GH_JWT_RS256);
        gh_jwt_reason_t why = GH_JWT_OK;
        assert_int_equal(check(tok, trusted.jwks, &why), -EINVAL);
        assert_string_equal(gh_jwt_reason_text(why), "bad signature");
        /* The header parses: those members are tolerated, just never used. */
        assert_int_equal(check(tok, attacker.jwks, &why), 0);
        free(tok);
    }
    free(one);
    json_decref(doc);
    free(ajwk);
    keypair_free(&trusted);
    keypair_free(&attacker);
}

static void test_ecdsa_psychic_signatures(void **state)
{
    (void)state;
    keypair_t kp = keypair(GH_JWT_ES256, 0, NULL, 0);
    const gh_jwk_t *key = &kp.jwks->keys[0];
    gh_jwt_reason_t why = GH_JWT_OK;
    unsigned char sig[64];
    /* r = s = 0: CVE-2022-21449 accepted this for any message. */
    memset(sig, 0, sizeof(sig));
    char *tok = craft("{\"alg\":\"ES256\"}", PAYLOAD, sig, 64);
    assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
    assert_string_equal(gh_jwt_reason_text(why), "bad signature");
    free(tok);
    unsigned char der[200];
    assert_true(gh_jose_ecdsa_to_der(key, sig, 64, der, sizeof(der)) < 0);
    /* r = n and s = n; r = n, s = 1; r = 1, s > n. */
    memcpy(sig, key->order, 32);
    memcpy(sig + 32, key->order, 32);
    assert_true(gh_jose_ecdsa_to_der(key, sig, 64, der, sizeof(der)) < 0);
    memset(sig + 32, 0, 32);
    sig[63] = 1;
    assert_true(gh_jose_ecdsa_to_der(key, sig, 64, der, sizeof(der)) < 0);
    memset(sig, 0, 32);
    sig[31] = 1;
    memset(sig + 32, 0xff, 32);
    assert_true(gh_jose_ecdsa_to_der(key, sig, 64, der, sizeof(der)) < 0);
    /* r = s = 1 is in range and encodes; OpenSSL then says no. */
    memset(sig, 0, 64);
    sig[31] = sig[63] = 1;
    assert_int_equal(gh_jose_ecdsa_to_der(key, sig, 64, der, sizeof(der)), 8);
    tok = craft("{\"alg\":\"ES256\"}", PAYLOAD, sig, 64);
    assert_int_equal(check(tok, kp.jwks, &why), -EINVAL);
    free(tok);
    /* A DER signature instead of r||s is refused by its length. */
    tok = sign(NULL, PAYLOAD, kp.key, GH_JWT_ES256);
    gh_jwt_t t;
    assert_int_equal(gh_jwt_parse(tok, strlen(tok), &t, &why), 0);
    long dl = gh_jose_ecdsa_to_der(key, t.sig, t.sig_len, der, sizeof(der));
    assert_true(dl > 0);
    char *dertok = craft("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", PAYLOAD, der, (size_t)dl);
    assert_int_equal(check(dertok, kp.jwks, &why), -EINVAL);
    gh_jwt_dispose(&t);
    free(dertok);
    free(tok);
    keypair_free(&kp);
}

static void test_kidless_bounded(void **state)
{
    (void)state;
    /* Twelve fitting keys without kids; the token's key is the last: with
     * no kid at most ten are tried, so it is refused. */
    char err[128];
    gh_jwt_signing_key_t *keys[12];
    json_t *set = json_array();
    for (int i = 0; i < 12; i++) {
        keys[i] = gh_jwt_signing_key_generate(GH_JWT_ES256, 0, err, sizeof(err));
        char *d = gh_jwt_signing_key_jwks(keys[i], NULL, GH_JWT_ALG_UNKNOWN, err, sizeof(err));
        json_t *o = json_loads(d, 0, NULL);
        json_array_append(set, json_array_get(json_object_get(o, "keys"), 0));
        json_decref(o);
        free(d);
    }
    json_t *root = json_pack("{s:o}", "keys", set);
    char *doc = json_dumps(root, JSON_COMPACT);
    gh_jwks_t *s = jwks_or_die(doc, 0);
    gh_jwt_reason_t why = GH_JWT_OK;
    char *tok = sign(NULL, PAYLOAD, keys[9], GH_JWT_ES256);
    assert_int_equal(check(tok, s, &why), 0);
    free(tok);
    tok = sign(NULL, PAYLOAD, keys[11], GH_JWT_ES256);
    assert_int_equal(check(tok, s, &why), -EINVAL);
    free(tok);
    /* The verifier's context cache (8 entries) survives more keys than slots. */
    gh_jwt_verifier_t *v = gh_jwt_verifier_new();
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 10; i++) {
            tok = sign(NULL, PAYLOAD, keys[i], GH_JWT_ES256);
            gh_jwt_t t;
            assert_int_equal(gh_jwt_parse(tok, strlen(tok), &t, &why), 0);
            assert_int_equal(gh_jwt_verifier_verify(v, &t, s, &why), 0);
            gh_jwt_dispose(&t);
            free(tok);
        }
    }
    gh_jwt_verifier_free(v);
    for (int i = 0; i < 12; i++)
        gh_jwt_signing_key_free(keys[i]);
    free(doc);
    json_decref(root);
    gh_jwks_unref(s);
}

/* A token with a kid may use a key without one (Envoy's rule); keys sharing
 * a kid are all tried; the tries stay bounded. */
static void test_kid_fallback_and_duplicates(void **state)
{
    (void)state;
    gh_jwt_reason_t why = GH_JWT_OK;
    char err[256];
    keypair_t nokid = keypair(GH_JWT_ES256, 0, NULL, 1);
    char *tok = sign("{\"alg\":\"ES256\",\"kid\":\"rotated\"}", PAYLOAD, nokid.key, GH_JWT_ES256);
    assert_int_equal(check(tok, nokid.jwks, &why), 0);
    free(tok);

    /* Two keys of kid "k"; the token is signed by the second. */
    keypair_t a = keypair(GH_JWT_ES256, 0, "k", 1), b = keypair(GH_JWT_ES256, 0, "k", 1);
    char *ja = gh_jwt_signing_key_jwks(a.key, "k", GH_JWT_ES256, err, sizeof(err));
    char *jb = gh_jwt_signing_key_jwks(b.key, "k", GH_JWT_ES256, err, sizeof(err));
    assert_non_null(ja);
    assert_non_null(jb);
    char doc[4096];
    /* {"keys":[A]} and {"keys":[B]} joined into {"keys":[A,B]}. */
    size_t la = strlen(ja);
    assert_true(la > 2 && strlen(jb) > 9 && la + strlen(jb) < sizeof(doc));
    memcpy(doc, ja, la - 2);
    doc[la - 2] = ',';
    strcpy(doc + la - 1, jb + 9);
    gh_jwks_t *both = jwks_or_die(doc, 0);
    assert_int_equal(gh_jwks_count(both), 2);
    assert_int_equal(gh_jwks_warning_count(both), 1);
    assert_non_null(strstr(gh_jwks_warning(both, 0), "same kid"));
    tok = sign("{\"alg\":\"ES256\",\"kid\":\"k\"}", PAYLOAD, b.key, GH_JWT_ES256);
    assert_int_equal(check(tok, both, &why), 0);
    free(tok);
    /* A kid no key has: unknown key, even with kid-less keys present. */
    tok = sign("{\"alg\":\"ES256\",\"kid\":\"zzz\"}", PAYLOAD, b.key, GH_JWT_ES256);
    assert_int_equal(check(tok, nokid.jwks, &why), -ENOKEY);
    assert_int_equal(why, GH_JWT_UNKNOWN_KEY);
    free(tok);
    /* Same keys: same set; another key or order: not. */
    gh_jwks_t *again = jwks_or_die(doc, 0);
    assert_true(gh_jwks_same_keys(both, again));
    assert_false(gh_jwks_same_keys(both, a.jwks));
    assert_false(gh_jwks_same_keys(a.jwks, b.jwks));
    assert_false(gh_jwks_same_keys(NULL, a.jwks));
    gh_jwks_unref(again);
    gh_jwks_unref(both);
    free(ja);
    free(jb);
    keypair_free(&a);
    keypair_free(&b);
    keypair_free(&nokid);
}

/* At most ten keys are tried per token, whether they share its kid or have
 * none: a set of many kid-less keys costs a forged token ten checks. */
static void test_kid_tries_bounded(void **state)
{
    (void)state;
    gh_jwt_reason_t why = GH_JWT_OK;
    char err[256];
    /* Eleven copies of one kid-less HMAC secret's JWK would be rejected as
     * duplicates by nobody, and the eleventh signer is never reached; use
     * eleven distinct secrets. */
    char doc[8192] = "{\"keys\":[";
    gh_jwt_signing_key_t *last = NULL;
    for (int i = 0; i < 11; i++) {
        unsigned char secret[32];
        memset(secret, 'a' + i, sizeof(secret));
        gh_jwt_signing_key_t *k = gh_jwt_signing_key_from_secret(secret, sizeof(secret));
        char *j = gh_jwt_signing_key_jwks(k, NULL, GH_JWT_HS256, err, sizeof(err));
        assert_non_null(j);
        /* strip {"keys":[ and ]} */
        size_t jl = strlen(j);
        strncat(doc, j + 9, jl - 11);
        strcat(doc, i < 10 ? "," : "]}");
        free(j);
        if (i == 10)
            last = k;
        else
            gh_jwt_signing_key_free(k);
    }
    gh_jwks_t *set = jwks_or_die(doc, 1);
    assert_int_equal(gh_jwks_count(set), 11);
    char *tok = sign("{\"alg\":\"HS256\",\"kid\":\"x\"}", PAYLOAD, last, GH_JWT_HS256);
    assert_int_equal(check(tok, set, &why), -ENOKEY);
    free(tok);
    tok = sign(NULL, PAYLOAD, last, GH_JWT_HS256);
    assert_int_equal(check(tok, set, &why), -EINVAL);
    assert_int_equal(why, GH_JWT_BAD_SIGNATURE);
    free(tok);
    gh_jwt_signing_key_free(last);
    gh_jwks_unref(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_a1_hs256),
        cmocka_unit_test(test_rfc7515_a2_rs256),
        cmocka_unit_test(test_rfc7515_a3_es256),
        cmocka_unit_test(test_rfc7515_a4_es512),
        cmocka_unit_test(test_rfc8037_ed25519),
        cmocka_unit_test(test_hmac_with_rsa_public_key),
        cmocka_unit_test(test_key_alg_and_curve_must_fit),
        cmocka_unit_test(test_kid_tricks),
        cmocka_unit_test(test_embedded_keys_ignored),
        cmocka_unit_test(test_ecdsa_psychic_signatures),
        cmocka_unit_test(test_kidless_bounded),
        cmocka_unit_test(test_kid_fallback_and_duplicates),
        cmocka_unit_test(test_kid_tries_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
