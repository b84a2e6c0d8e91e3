/* Shared by the JWT tests (test_jwt.c, test_verify.c, test_sign.c): the
 * RFC 7515 / RFC 8037 example vectors and helpers that sign, craft and check
 * tokens. Include after cmocka.h. */
#ifndef GATEHOUSE_TEST_JOSE_H
#define GATEHOUSE_TEST_JOSE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/jwt.h>

#include "jose/b64url.h"
#include "jose/jose.h"

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

static inline gh_jwks_t *jwks_or_die(const char *json, int sym)
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
static inline int check(const char *tok, const gh_jwks_t *keys, gh_jwt_reason_t *reason)
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
static inline char *craft(const char *hdr, const char *payload, const unsigned char *sig, size_t sl)
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

static inline size_t unb64(const char *s, unsigned char *out)
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

static inline keypair_t keypair(gh_jwt_alg_t alg, int bits, const char *kid, int with_alg)
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

static inline void keypair_free(keypair_t *kp)
{
    gh_jwt_signing_key_free(kp->key);
    gh_jwks_unref(kp->jwks);
}

static inline char *sign(const char *hdr, const char *payload, const gh_jwt_signing_key_t *k,
                         gh_jwt_alg_t alg)
{
    char err[256];
    char *t = gh_jwt_sign(hdr, payload, strlen(payload), k, alg, err, sizeof(err));
    if (t == NULL)
        print_error("sign: %s\n", err);
    assert_non_null(t);
    return t;
}

#endif
