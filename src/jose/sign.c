/*
 * Private signing keys (PEM, private JWK, generated, an HMAC secret), their
 * public half as a JWKS, and signing: for `gatehouse token mint`, the token
 * endpoint to come, and tests that need hostile tokens.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "jose/b64url.h"
#include "jose/jose.h"

/* ---- signing keys ---- */

struct gh_jwt_signing_key_s {
    EVP_PKEY *pkey;
    unsigned char *secret;
    size_t secret_len;
};

gh_jwt_signing_key_t *gh_jwt_signing_key_from_pkey(EVP_PKEY *pkey)
{
    gh_jwt_signing_key_t *k = calloc(1, sizeof(*k));
    if (k == NULL || !EVP_PKEY_up_ref(pkey)) {
        free(k);
        return NULL;
    }
    k->pkey = pkey;
    return k;
}

gh_jwt_signing_key_t *gh_jwt_signing_key_from_secret(const void *secret, size_t len)
{
    gh_jwt_signing_key_t *k = calloc(1, sizeof(*k));
    if (k == NULL || (k->secret = malloc(len ? len : 1)) == NULL) {
        free(k);
        return NULL;
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    return k;
}

void gh_jwt_signing_key_free(gh_jwt_signing_key_t *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    if (k->secret != NULL)
        OPENSSL_clear_free(k->secret, k->secret_len);
    free(k);
}

EVP_PKEY *gh_jwt_signing_key_pkey(const gh_jwt_signing_key_t *k)
{
    return k->pkey;
}

gh_jwt_signing_key_t *gh_jwt_signing_key_load_pem(const char *pem, size_t len, char *err,
                                                  size_t errcap)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL) {
        gh_jose_seterr(err, errcap, "not a PEM private key");
        return NULL;
    }
    gh_jwt_signing_key_t *k = gh_jwt_signing_key_from_pkey(pkey);
    EVP_PKEY_free(pkey);
    if (k == NULL)
        gh_jose_seterr(err, errcap, "out of memory");
    return k;
}

static EVP_PKEY *rsa_private(json_t *o, const char **why)
{
    static const struct {
        const char *jwk, *param;
    } m[] = {
        {"n", OSSL_PKEY_PARAM_RSA_N},          {"e", OSSL_PKEY_PARAM_RSA_E},
        {"d", OSSL_PKEY_PARAM_RSA_D},          {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
        {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
        {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2}, {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
    };
    BIGNUM *bn[8] = {0};
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    size_t have = 0;
    *why = "RSA private key needs n, e, d (and p, q, dp, dq, qi together)";
    for (size_t i = 0; bld != NULL && i < 8; i++) {
        size_t l;
        int bad = 0;
        unsigned char *b = gh_jose_member_b64(o, m[i].jwk, &l, &bad);
        if (bad)
            goto out;
        if (b == NULL)
            continue;
        int rc = gh_jose_push_bn(bld, m[i].param, b, l, &bn[i]);
        OPENSSL_clear_free(b, l);
        if (rc < 0)
            goto out;
        have |= (size_t)1 << i;
    }
    if ((have & 7) != 7 || (have > 7 && have != 0xff))
        goto out;
    pkey = gh_jose_pkey_fromdata("RSA", bld, EVP_PKEY_KEYPAIR);
    *why = pkey ? NULL : "RSA private key refused by OpenSSL";
out:
    OSSL_PARAM_BLD_free(bld);
    for (int i = 0; i < 8; i++)
        BN_clear_free(bn[i]);
    return pkey;
}

gh_jwt_signing_key_t *gh_jwt_signing_key_from_jwk(const char *json, size_t len, char *err,
                                                  size_t errcap)
{
    json_error_t jerr;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    gh_jwt_signing_key_t *k = NULL;
    EVP_PKEY *pkey = NULL;
    unsigned char *x = NULL, *y = NULL, *d = NULL;
    size_t xl = 0, yl = 0, dl = 0;
    int bad = 0;
    const char *why = "not a private JWK";
    const char *kty = json_string_value(json_object_get(o, "kty"));
    if (o == NULL || !json_is_object(o) || kty == NULL)
        goto out;
    if (strcmp(kty, "RSA") == 0) {
        pkey = rsa_private(o, &why);
    } else if (strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(o, "crv"));
        int ci = crv ? gh_jose_curve_index(crv) : -1;
        x = gh_jose_member_b64(o, "x", &xl, &bad);
        y = gh_jose_member_b64(o, "y", &yl, &bad);
        d = gh_jose_member_b64(o, "d", &dl, &bad);
        if (ci < 0 || !gh_jose_init() || bad || !x || !y || !d || xl != gh_jose_curves[ci].coord ||
            yl != gh_jose_curves[ci].coord) {
            why = "EC private key needs crv, x, y, d";
            goto out;
        }
        pkey = gh_jose_ec_key(ci, x, y, d, dl);
        why = "EC private key refused by OpenSSL";
    } else if (strcmp(kty, "OKP") == 0) {
        const char *crv = json_string_value(json_object_get(o, "crv"));
        d = gh_jose_member_b64(o, "d", &dl, &bad);
        const char *type = crv && strcmp(crv, "Ed25519") == 0 ? "ED25519"
                           : crv && strcmp(crv, "Ed448") == 0 ? "ED448"
                                                              : NULL;
        why = "OKP private key needs crv Ed25519 or Ed448 and d";
        if (type && d && !bad)
            pkey = EVP_PKEY_new_raw_private_key_ex(NULL, type, NULL, d, dl);
    } else if (strcmp(kty, "oct") == 0) {
        d = gh_jose_member_b64(o, "k", &dl, &bad);
        why = "oct key needs k";
        if (d && !bad)
            k = gh_jwt_signing_key_from_secret(d, dl);
        if (k != NULL)
            why = NULL;
        goto out;
    }
    if (pkey != NULL) {
        k = gh_jwt_signing_key_from_pkey(pkey);
        why = k ? NULL : "out of memory";
    }
out:
    if (why != NULL)
        gh_jose_seterr(err, errcap, "%s", why);
    EVP_PKEY_free(pkey);
    free(x);
    free(y);
    if (d != NULL)
        OPENSSL_clear_free(d, dl);
    json_decref(o);
    return k;
}

gh_jwt_signing_key_t *gh_jwt_signing_key_generate(gh_jwt_alg_t alg, int bits, char *err,
                                                  size_t errcap)
{
    if (alg <= GH_JWT_ALG_UNKNOWN || alg >= GH_JWT_ALG_COUNT) {
        gh_jose_seterr(err, errcap, "unknown algorithm");
        return NULL;
    }
    const gh_alg_info_t *ai = &gh_alg_info[alg];
    EVP_PKEY *pkey = NULL;
    if (ai->family == GH_FAM_HMAC) {
        unsigned char s[64];
        if (RAND_bytes(s, (int)ai->hlen) != 1) {
            gh_jose_seterr(err, errcap, "no randomness");
            return NULL;
        }
        gh_jwt_signing_key_t *k = gh_jwt_signing_key_from_secret(s, ai->hlen);
        OPENSSL_cleanse(s, sizeof(s));
        return k;
    }
    if (ai->kty == GH_KTY_RSA)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)(bits ? bits : 2048));
    else if (ai->kty == GH_KTY_EC)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", OBJ_nid2sn(ai->curve_nid));
    else
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, bits == 448 ? "ED448" : "ED25519");
    if (pkey == NULL) {
        gh_jose_seterr(err, errcap, "key generation failed");
        return NULL;
    }
    gh_jwt_signing_key_t *k = gh_jwt_signing_key_from_pkey(pkey);
    EVP_PKEY_free(pkey);
    return k;
}

static int set_b64(json_t *o, const char *name, const unsigned char *p, size_t len)
{
    char *s = malloc(GH_B64URL_ENC_LEN(len) + 1);
    if (s == NULL)
        return -1;
    gh_b64url_encode(p, len, s);
    int rc = json_object_set_new(o, name, json_string(s));
    free(s);
    return rc;
}

static int set_bn_b64(json_t *o, const char *name, const BIGNUM *bn, size_t width)
{
    size_t len = width ? width : (size_t)BN_num_bytes(bn);
    unsigned char *b = malloc(len ? len : 1);
    if (b == NULL || BN_bn2binpad(bn, b, (int)len) < 0) {
        free(b);
        return -1;
    }
    int rc = set_b64(o, name, b, len);
    free(b);
    return rc;
}

static int public_members(const gh_jwt_signing_key_t *k, json_t *o)
{
    if (k->pkey == NULL) {
        return json_object_set_new(o, "kty", json_string("oct")) ||
               set_b64(o, "k", k->secret, k->secret_len);
    }
    int rc = -1;
    BIGNUM *a = NULL, *b = NULL;
    if (EVP_PKEY_is_a(k->pkey, "RSA")) {
        rc = !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, &a) ||
             !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_E, &b) ||
             json_object_set_new(o, "kty", json_string("RSA")) || set_bn_b64(o, "n", a, 0) ||
             set_bn_b64(o, "e", b, 0);
    } else if (EVP_PKEY_is_a(k->pkey, "EC")) {
        char group[64];
        int ci = -1;
        if (EVP_PKEY_get_utf8_string_param(k->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                           sizeof(group), NULL)) {
            for (int i = 0; i < 3; i++) {
                if (strcmp(group, gh_jose_curves[i].group) == 0 ||
                    strcmp(group, OBJ_nid2sn(gh_jose_curves[i].nid)) == 0)
                    ci = i;
            }
        }
        rc = ci < 0 || !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &a) ||
             !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &b) ||
             json_object_set_new(o, "kty", json_string("EC")) ||
             json_object_set_new(o, "crv", json_string(gh_jose_curves[ci].crv)) ||
             set_bn_b64(o, "x", a, gh_jose_curves[ci].coord) ||
             set_bn_b64(o, "y", b, gh_jose_curves[ci].coord);
    } else if (EVP_PKEY_is_a(k->pkey, "ED25519") || EVP_PKEY_is_a(k->pkey, "ED448")) {
        unsigned char raw[64];
        size_t rl = sizeof(raw);
        int ed448 = EVP_PKEY_is_a(k->pkey, "ED448");
        rc = EVP_PKEY_get_raw_public_key(k->pkey, raw, &rl) != 1 ||
             json_object_set_new(o, "kty", json_string("OKP")) ||
             json_object_set_new(o, "crv", json_string(ed448 ? "Ed448" : "Ed25519")) ||
             set_b64(o, "x", raw, rl);
    }
    BN_free(a);
    BN_free(b);
    return rc ? -1 : 0;
}

char *gh_jwt_signing_key_jwks(const gh_jwt_signing_key_t *k, const char *kid, gh_jwt_alg_t alg,
                              char *err, size_t errcap)
{
    json_t *key = json_object(), *root = json_object(), *arr = json_array();
    char *out = NULL;
    if (!gh_jose_init() || key == NULL || root == NULL || arr == NULL ||
        public_members(k, key) < 0 || json_object_set_new(key, "use", json_string("sig")) ||
        (kid && json_object_set_new(key, "kid", json_string(kid))) ||
        (gh_jwt_alg_name(alg) &&
         json_object_set_new(key, "alg", json_string(gh_jwt_alg_name(alg)))) ||
        json_array_append(arr, key) || json_object_set(root, "keys", arr)) {
        gh_jose_seterr(err, errcap, "cannot export this key as a JWK");
    } else {
        out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        if (out == NULL)
            gh_jose_seterr(err, errcap, "out of memory");
    }
    json_decref(key);
    json_decref(arr);
    json_decref(root);
    return out;
}

long gh_jose_sign(const gh_jwt_signing_key_t *key, gh_jwt_alg_t alg, const unsigned char *msg,
                  size_t msglen, unsigned char *sig, char *err, size_t errcap)
{
    if (alg <= GH_JWT_ALG_UNKNOWN || alg >= GH_JWT_ALG_COUNT || !gh_jose_init()) {
        gh_jose_seterr(err, errcap, "unknown algorithm");
        return -EINVAL;
    }
    const gh_alg_info_t *ai = &gh_alg_info[alg];
    if (ai->family == GH_FAM_HMAC) {
        unsigned int hl = 0;
        if (key->pkey != NULL || key->secret_len == 0 ||
            HMAC(gh_jose_md(ai->md), key->secret, (int)key->secret_len, msg, msglen, sig, &hl) ==
                NULL) {
            gh_jose_seterr(err, errcap, "%s needs a secret", ai->name);
            return -EINVAL;
        }
        return (long)hl;
    }
    static const char *const types[] = {[GH_KTY_RSA] = "RSA", [GH_KTY_EC] = "EC"};
    if (key->pkey == NULL ||
        (ai->kty == GH_KTY_OKP
             ? !(EVP_PKEY_is_a(key->pkey, "ED25519") || EVP_PKEY_is_a(key->pkey, "ED448"))
             : !EVP_PKEY_is_a(key->pkey, types[ai->kty])) ||
        EVP_PKEY_get_size(key->pkey) > GH_JOSE_MAX_SIG) {
        gh_jose_seterr(err, errcap, "the key does not fit %s", ai->name);
        return -EINVAL;
    }
    /* The digest fetched once for the process (a fetch by name per call
     * costs as much as a sixth of an ES256 signature); NULL for EdDSA. */
    const EVP_MD *md = ai->md >= 0 && gh_jose_init() ? gh_jose_md(ai->md) : NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char der[GH_JOSE_MAX_SIG];
    unsigned char *out = ai->family == GH_FAM_ECDSA ? der : sig;
    size_t len = GH_JOSE_MAX_SIG;
    long rc = -EINVAL;
    if (ctx == NULL || (ai->md >= 0 && md == NULL) ||
        EVP_DigestSignInit(ctx, &pctx, md, NULL, key->pkey) != 1 ||
        (ai->family == GH_FAM_PSS &&
         (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0)) ||
        EVP_DigestSign(ctx, out, &len, msg, msglen) != 1) {
        gh_jose_seterr(err, errcap, "%s signing failed", ai->name);
        goto out;
    }
    rc = (long)len;
    if (ai->family == GH_FAM_ECDSA) {
        /* DER to the fixed-width r||s of RFC 7518 §3.4. */
        char group[64];
        int ci = -1;
        if (EVP_PKEY_get_utf8_string_param(key->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                           sizeof(group), NULL)) {
            for (int i = 0; i < 3; i++) {
                if (strcmp(group, gh_jose_curves[i].group) == 0 &&
                    gh_jose_curves[i].nid == ai->curve_nid)
                    ci = i;
            }
        }
        const unsigned char *p = der;
        ECDSA_SIG *es = ci >= 0 ? d2i_ECDSA_SIG(NULL, &p, (long)len) : NULL;
        size_t c = ci >= 0 ? gh_jose_curves[ci].coord : 0;
        if (es == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)c) < 0 ||
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + c, (int)c) < 0) {
            gh_jose_seterr(err, errcap, "the key does not fit %s", ai->name);
            rc = -EINVAL;
        } else {
            rc = (long)(2 * c);
        }
        ECDSA_SIG_free(es);
    }
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* ---- tokens ---- */

char *gh_jwt_sign(const char *header_json, const char *payload, size_t payload_len,
                  const gh_jwt_signing_key_t *key, gh_jwt_alg_t alg, char *err, size_t errcap)
{
    char defhdr[64];
    const char *name = gh_jwt_alg_name(alg);
    if (name == NULL) {
        if (err && errcap)
            snprintf(err, errcap, "unknown algorithm");
        return NULL;
    }
    if (header_json == NULL) {
        snprintf(defhdr, sizeof(defhdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", name);
        header_json = defhdr;
    }
    size_t hl = strlen(header_json);
    size_t cap = GH_B64URL_ENC_LEN(hl) + 1 + GH_B64URL_ENC_LEN(payload_len) + 1 +
                 GH_B64URL_ENC_LEN(GH_JOSE_MAX_SIG) + 1;
    char *out = malloc(cap);
    if (out == NULL) {
        if (err && errcap)
            snprintf(err, errcap, "out of memory");
        return NULL;
    }
    size_t o = gh_b64url_encode(header_json, hl, out);
    out[o++] = '.';
    o += gh_b64url_encode(payload, payload_len, out + o);
    unsigned char sig[GH_JOSE_MAX_SIG];
    long sl = gh_jose_sign(key, alg, (const unsigned char *)out, o, sig, err, errcap);
    if (sl < 0) {
        free(out);
        return NULL;
    }
    out[o++] = '.';
    gh_b64url_encode(sig, (size_t)sl, out + o);
    return out;
}
