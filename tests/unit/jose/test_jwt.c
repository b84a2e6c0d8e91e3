/* JWT parsing, verification and claims: the RFC 7515 / RFC 8037 example
 * vectors, round trips for every algorithm, the RFC 8725 attack list, and
 * each claim check both ways. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/jwt.h>

#include "jose/b64url.h"
#include "jose/jose.h"

#include <openssl/pem.h>

/* ---- RFC 7515 Appendix A vectors ---- */

#define RFC_PAYLOAD_B64                                                                            \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl" \
    "fQ"

static const char a1_token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC_PAYLOAD_B64
                               ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char a1_jwk[] =
    "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4"
    "hcgUuTwjAzZr1Z9CAow\"}";

#define A2_N                                                                                       \
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-"                        \
    "4qPCJrcS2mJPMEzP1Pt0Bm4d4"                                                                    \
    "QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-"                       \
    "bSf63kpaSHSXndS5z5rexMdb"                                                                     \
    "BYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_"                   \
    "I5IhlJH7aGhyxXFvUK-D"                                                                         \
    "WNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"

static const char a2_token[] =
    "eyJhbGciOiJSUzI1NiJ9." RFC_PAYLOAD_B64
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5j"
    "ujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L0"
    "7Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUip"
    "UTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
static const char a2_jwk_pub[] = "{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}";
static const char a2_jwk_priv[] =
    "{\"kty\":\"RSA\",\"n\":\"" A2_N
    "\",\"e\":\"AQAB\",\"d\":\"Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZ"
    "D50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRU"
    "Cgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2Qv"
    "Xt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeW"
    "jnczT0QU91p1DhOVRuOopznQ\",\"p\":\"4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiY"
    "rqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgt"
    "ldC-KDV5z-y2XDwGUc\",\"q\":\"uQPEfgmVtjL0Uyyx88GZFF1fOunH3-"
    "7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLY"
    "sp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjc"
    "JIDEz9RWdc\",\"dp\":\"BwKfV3Akq5_MFZDFZCnW-wzl-"
    "CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdB"
    "fpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_"
    "YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo"
    "0\",\"dq\":\"h_96-mK1R_"
    "7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6"
    "N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU\",\""
    "qi\":\"IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_"
    "QJQ3ydy5"
    "cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U\"}";

static const char a3_token[] = "eyJhbGciOiJFUzI1NiJ9." RFC_PAYLOAD_B64
                               ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA"
                               "pmWQxfKTUJqPP3-Kg6NU1Q";
static const char a3_jwk[] =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76"
    "e8Tus9uPHvRVEU\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";

/* A.4: ES512 over the non-JSON payload "Payload". */
static const char a4_input[] = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA";
static const char a4_sig[] =
    "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_"
    "7XdtAG8GaSw"
    "FKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
static const char a4_jwk[] = "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":"
                             "\"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_"
                             "NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk\",\"y\":\"ADSmRA43Z1DSNx_"
                             "RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDh"
                             "jDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2\"}";

/* RFC 8037 Appendix A: Ed25519 over "Example of Ed25519 signing". */
static const char ed_jwk_priv[] =
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"nWGxne_9WmC6hEr0kuwsxER"
    "JxWl7MmkZcDusAxyuf2A\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwI"
    "aaPcHURo\"}";
static const char ed_jwk_pub[] =
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg"
    "7hcvPapiMlrwIaaPcHURo\"}";
static const char ed_token[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
                               "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5Bh"
                               "VsPt9g7sVvpAr_MuM0KAg";

/* ---- helpers ---- */

static gh_jwks_t *jwks_or_die(const char *json, int sym)
{
    gh_jwks_opts_t o = {.allow_symmetric = sym};
    char err[256];
    gh_jwks_t *s = gh_jwks_parse(json, strlen(json), &o, err, sizeof(err));
    if (s == NULL)
        print_error("jwks: %s\n", err);
    assert_non_null(s);
    return s;
}

/* Parses and verifies; returns the verify code, or the parse code. */
static int check(const char *tok, const gh_jwks_t *keys, gh_jwt_reason_t *reason)
{
    gh_jwt_t t;
    int rc = gh_jwt_parse(tok, strlen(tok), &t, reason);
    if (rc < 0)
        return rc;
    rc = gh_jwt_verify(&t, keys, reason);
    gh_jwt_dispose(&t);
    return rc;
}

/* A token from raw parts: header and payload JSON text, signature bytes. */
static char *craft(const char *hdr, const char *payload, const unsigned char *sig, size_t sl)
{
    size_t hl = strlen(hdr), pl = strlen(payload);
    char *t = malloc(GH_B64URL_ENC_LEN(hl) + GH_B64URL_ENC_LEN(pl) + GH_B64URL_ENC_LEN(sl) + 3);
    assert_non_null(t);
    size_t o = gh_b64url_encode(hdr, hl, t);
    t[o++] = '.';
    o += gh_b64url_encode(payload, pl, t + o);
    t[o++] = '.';
    gh_b64url_encode(sig, sl, t + o);
    return t;
}

static size_t unb64(const char *s, unsigned char *out)
{
    long n = gh_b64url_decode(s, strlen(s), out);
    assert_true(n >= 0);
    return (size_t)n;
}

#define PAYLOAD "{\"iss\":\"https://issuer.example\",\"sub\":\"alice\",\"exp\":4000000000}"

/* A generated key for alg, its public JWKS (kid "k1") and the parsed set. */
typedef struct {
    gh_jwt_signing_key_t *key;
    gh_jwks_t *jwks;
} keypair_t;

static keypair_t keypair(gh_jwt_alg_t alg, int bits, const char *kid, int with_alg)
{
    char err[256];
    keypair_t kp;
    kp.key = gh_jwt_signing_key_generate(alg, bits, err, sizeof(err));
    assert_non_null(kp.key);
    char *doc =
        gh_jwt_signing_key_jwks(kp.key, kid, with_alg ? alg : GH_JWT_ALG_UNKNOWN, err, sizeof(err));
    assert_non_null(doc);
    kp.jwks = jwks_or_die(doc, 1);
    free(doc);
    return kp;
}

static void keypair_free(keypair_t *kp)
{
    gh_jwt_signing_key_free(kp->key);
    gh_jwks_unref(kp->jwks);
}

static char *sign(const char *hdr, const char *payload, const gh_jwt_signing_key_t *k,
                  gh_jwt_alg_t alg)
{
    char err[256];
    char *t = gh_jwt_sign(hdr, payload, strlen(payload), k, alg, err, sizeof(err));
    if (t == NULL)
        print_error("sign: %s\n", err);
    assert_non_null(t);
    return t;
}

/* ---- base64url ---- */

static void test_b64url(void **state)
{
    (void)state;
    unsigned char out[16];
    char enc[16];
    assert_int_equal(gh_b64url_encode("f", 1, enc), 2);
    assert_string_equal(enc, "Zg");
    assert_int_equal(gh_b64url_encode("\xfb\xff", 2, enc), 3);
    assert_string_equal(enc, "-_8");
    assert_int_equal(gh_b64url_decode("-_8", 3, out), 2);
    assert_int_equal(gh_b64url_decode("Zm9v", 4, out), 3);
    assert_int_equal(gh_b64url_decode("", 0, out), 0);
    assert_int_equal(gh_b64url_decode("Zg==", 4, out), -1); /* padding */
    assert_int_equal(gh_b64url_decode("+/8", 3, out), -1);  /* standard alphabet */
    assert_int_equal(gh_b64url_decode("Zm 9", 4, out), -1); /* whitespace */
    assert_int_equal(gh_b64url_decode("Zh", 2, out), -1);   /* non-zero trailing bits */
    assert_int_equal(gh_b64url_decode("Zm8", 3, out), 2);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(gh_b64url_decode("Zm9", 3, out), -1);   /* '9' ends in 01: loose bits */
    assert_int_equal(gh_b64url_decode("Zm9vY", 5, out), -1); /* 4k+1 */
    assert_int_equal(gh_b64url_decode("Zm\0v", 4, out), -1);
}

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
    assert_non_null(t.payload);
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
        assert_true(json_equal(a.payload, b.payload));
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
                               "\"scope\":\" read  write \",\"nested\":{\"deep\":{\"v\":\"x\"}}}");
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

    t = parse_payload("{\"scp\":[\"a\",1,\"b\"]}");
    assert_int_equal(gh_jwt_scopes(&t, sc, 4), 2);
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

static void test_alg_names(void **state)
{
    (void)state;
    for (int a = 1; a < GH_JWT_ALG_COUNT; a++) {
        const char *n = gh_jwt_alg_name((gh_jwt_alg_t)a);
        assert_int_equal(gh_jwt_alg_from_name(n, strlen(n)), a);
    }
    assert_null(gh_jwt_alg_name(GH_JWT_ALG_UNKNOWN));
    assert_int_equal(gh_jwt_alg_from_name("none", 4), GH_JWT_ALG_UNKNOWN);
    assert_int_equal(gh_jwt_alg_from_name("hs256", 5), GH_JWT_ALG_UNKNOWN);
    assert_int_equal(gh_jwt_alg_from_name("HS2560", 6), GH_JWT_ALG_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_rfc7515_a1_hs256),
        cmocka_unit_test(test_rfc7515_a2_rs256),
        cmocka_unit_test(test_rfc7515_a3_es256),
        cmocka_unit_test(test_rfc7515_a4_es512),
        cmocka_unit_test(test_rfc8037_ed25519),
        cmocka_unit_test(test_roundtrip_all),
        cmocka_unit_test(test_pem_key),
        cmocka_unit_test(test_alg_none_every_casing),
        cmocka_unit_test(test_hmac_with_rsa_public_key),
        cmocka_unit_test(test_key_alg_and_curve_must_fit),
        cmocka_unit_test(test_stripped_signature),
        cmocka_unit_test(test_kid_tricks),
        cmocka_unit_test(test_embedded_keys_ignored),
        cmocka_unit_test(test_ecdsa_psychic_signatures),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_duplicate_members),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_crit),
        cmocka_unit_test(test_kidless_bounded),
        cmocka_unit_test(test_header_memo),
        cmocka_unit_test(test_claims_times),
        cmocka_unit_test(test_claims_absurd_dates),
        cmocka_unit_test(test_claims_max_age),
        cmocka_unit_test(test_reason_table),
        cmocka_unit_test(test_kid_fallback_and_duplicates),
        cmocka_unit_test(test_kid_tries_bounded),
        cmocka_unit_test(test_claims_iss_aud_typ),
        cmocka_unit_test(test_claims_required),
        cmocka_unit_test(test_render_and_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
