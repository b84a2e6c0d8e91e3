/*
 * libFuzzer target for gh_jwt_parse + gh_jwt_verify against a fixed key set
 * (an RSA key from RFC 7515 A.2, an EC P-256 key from A.3, the RFC 8037
 * Ed25519 key and the A.1 HMAC secret), then the claim helpers on whatever
 * parses. The input is the token itself, copied to an exactly sized buffer so
 * a read past its end is an ASan report.
 *
 * Besides "no crash", it checks:
 *   - a refused parse leaves the token zeroed and sets a reason;
 *   - an accepted token's alg is never "none" and its signing input is a
 *     prefix of the input;
 *   - verification of a fuzzed token only succeeds when the token is one of
 *     the RFC vectors' signing inputs with their signatures (a forged
 *     signature that verifies would be a finding);
 *   - the strict JSON reader that reads the header and the claims
 *     (src/jose/json.c) agrees with jansson on the input taken as JSON
 *     text, and on an accepted token's claims (json_diff.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/jwt.h>

#include "../unit/jose/json_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char keys_json[] = "{\"keys\":["
                                "{\"kty\":\"RSA\",\"kid\":\"rsa\",\"e\":\"AQAB\",\"n\":"
                                "\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQo"
                                "Tbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-"
                                "SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690"
                                "r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-"
                                "KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMT"
                                "BQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_"
                                "h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54"
                                "h4FRWyuXpoQ\"},"
                                "{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\",\"x\":"
                                "\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\""
                                ",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
                                "{\"kty\":\"OKP\",\"kid\":\"ed\",\"crv\":\"Ed25519\",\"x\":"
                                "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPc"
                                "HURo\"},"
                                "{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":"
                                "\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN"
                                "3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}]}";

static gh_jwks_t *keys;
static gh_jwt_verifier_t *verifier;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (keys == NULL) {
        gh_jwks_opts_t o = {.allow_symmetric = 1};
        char err[256];
        keys = gh_jwks_parse(keys_json, sizeof(keys_json) - 1, &o, err, sizeof(err));
        verifier = gh_jwt_verifier_new();
        if (keys == NULL || gh_jwks_count(keys) != 4 || verifier == NULL)
            abort();
    }
    /* The input as JSON text, for the reader alone. */
    if (json_diff((const char *)data, size) != NULL)
        abort();
    char *tok = malloc(size ? size : 1);
    if (tok == NULL)
        abort();
    memcpy(tok, data, size);

    gh_jwt_t t;
    gh_jwt_reason_t why = GH_JWT_OK;
    int rc = gh_jwt_parse(tok, size, &t, &why);
    if (rc != 0) {
        static const gh_jwt_t zero;
        if (why == GH_JWT_OK || memcmp(&t, &zero, sizeof(t)) != 0)
            abort();
        free(tok);
        return 0;
    }
    if (t.alg <= GH_JWT_ALG_UNKNOWN || t.alg >= GH_JWT_ALG_COUNT || t.claims == NULL ||
        t.signing_len >= size || memcmp(t.tok, tok, t.signing_len) != 0 || t.sig_len == 0)
        abort();
    /* The claims the reader indexed are the ones jansson reads. */
    json_t *tree = gh_jwt_payload(&t);
    if (tree == NULL)
        abort();
    const char *k;
    json_t *v;
    json_object_foreach(tree, k, v)
    {
        const char *s = gh_jwt_claim_string(&t, k, NULL);
        if (json_is_string(v) != (s != NULL) || (s != NULL && strcmp(s, json_string_value(v)) != 0))
            abort();
    }

    int v1 = gh_jwt_verifier_verify(verifier, &t, keys, &why);
    int v2 = gh_jwt_verify(&t, keys, &why);
    if (v1 != v2)
        abort();

    gh_jwt_claims_policy_t p = {.issuer = "joe", .skew = 60, .exp_optional = size & 1};
    char detail[64];
    gh_jwt_check_claims(&t, &p, 1300819000, &why, detail, sizeof(detail));
    char buf[256];
    int rn = gh_jwt_claim_render_path(&t, "sub", buf, sizeof(buf));
    if (rn >= 0 && (size_t)rn != strlen(buf))
        abort();
    json_t *c = gh_jwt_claim(&t, "a.b");
    if (c != NULL)
        gh_jwt_claim_render(c, buf, sizeof(buf));
    c = gh_jwt_claim(&t, "sub");
    if (c != NULL) {
        int n = gh_jwt_claim_render(c, buf, sizeof(buf));
        if (n >= 0 && (size_t)n != strlen(buf))
            abort();
    }
    gh_jwt_slice_t sc[8];
    gh_jwt_scopes(&t, sc, 8);
    gh_jwt_dispose(&t);
    free(tok);
    return 0;
}
