/*
 * JWK sets (RFC 7517): parsing a set or a single JWK, checking and
 * preparing each public key once (an EVP_PKEY built from OSSL_PARAMs, the EC
 * group order kept for the r/s range check), and the set's lifetime. A set
 * is immutable after gh_jwks_parse and shared by all workers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/obj_mac.h>

#include "jose/b64url.h"
#include "jose/jose.h"

#define RSA_MAX_BITS 8192
#define HMAC_MAX_KEY 1024

/* ---- warnings ---- */

/* A kid as it may appear in a log line: printable ASCII only, bounded. */
static void kid_for_log(const char *kid, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; kid[i] != '\0' && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)kid[i];
        out[o++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
        if (i == 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
    }
    out[o] = '\0';
}

static int add_warning(gh_jwks_t *s, size_t idx, const char *kid, const char *why)
{
    char k[64] = "", line[256];
    if (kid != NULL)
        kid_for_log(kid, k, sizeof(k));
    if (kid != NULL)
        snprintf(line, sizeof(line), "key %zu (kid \"%s\"): %s", idx, k, why);
    else
        snprintf(line, sizeof(line), "key %zu: %s", idx, why);
    char *copy = strdup(line);
    if (copy == NULL)
        return -ENOMEM;
    s->warnings[s->nwarn++] = copy;
    return 0;
}

/* Two usable keys with one kid: tokens naming it are tried against both (up
 * to verify.c's MAX_KEY_TRIES), which works but usually means a rotation left an old
 * key behind. One warning per later duplicate; at most one per key, so the
 * warnings array (twice the key count) has room. */
static int warn_duplicate_kids(gh_jwks_t *s)
{
    for (size_t i = 1; i < s->n; i++) {
        const gh_jwk_t *k = &s->keys[i];
        if (k->kid == NULL)
            continue;
        for (size_t j = 0; j < i; j++) {
            const gh_jwk_t *o = &s->keys[j];
            if (o->kid != NULL && o->kid_len == k->kid_len &&
                memcmp(o->kid, k->kid, k->kid_len) == 0) {
                char why[64];
                snprintf(why, sizeof(why), "same kid as usable key %zu; both are tried", j);
                if (add_warning(s, i, k->kid, why) < 0)
                    return -ENOMEM;
                break;
            }
        }
    }
    return 0;
}

/* ---- JWK members ---- */

unsigned char *gh_jose_member_b64(json_t *o, const char *name, size_t *len, int *bad)
{
    json_t *v = json_object_get(o, name);
    *len = 0;
    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    size_t n = json_string_length(v);
    unsigned char *out = malloc(GH_B64URL_DEC_MAX(n) + 1);
    if (out == NULL) {
        *bad = -ENOMEM;
        return NULL;
    }
    long d = gh_b64url_decode(json_string_value(v), n, out);
    if (d <= 0) {
        free(out);
        *bad = 1;
        return NULL;
    }
    *len = (size_t)d;
    return out;
}

static int bits_of(const unsigned char *p, size_t len)
{
    p = gh_jose_skip_zeros(p, &len);
    if (len == 0)
        return 0;
    int b = (int)len * 8;
    for (unsigned char top = p[0]; !(top & 0x80); top = (unsigned char)(top << 1))
        b--;
    return b;
}

EVP_PKEY *gh_jose_pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, int selection)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, selection, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

int gh_jose_push_bn(OSSL_PARAM_BLD *bld, const char *key, const unsigned char *p, size_t len,
                    BIGNUM **keep)
{
    BIGNUM *bn = BN_bin2bn(p, (int)len, NULL);
    if (bn == NULL || !OSSL_PARAM_BLD_push_BN(bld, key, bn)) {
        BN_free(bn);
        return -1;
    }
    *keep = bn; /* the builder refers to it until to_param */
    return 0;
}

static EVP_PKEY *rsa_public(const unsigned char *n, size_t nlen, const unsigned char *e,
                            size_t elen)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    EVP_PKEY *pkey = NULL;
    if (bld != NULL && gh_jose_push_bn(bld, OSSL_PKEY_PARAM_RSA_N, n, nlen, &bn_n) == 0 &&
        gh_jose_push_bn(bld, OSSL_PKEY_PARAM_RSA_E, e, elen, &bn_e) == 0)
        pkey = gh_jose_pkey_fromdata("RSA", bld, EVP_PKEY_PUBLIC_KEY);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return pkey;
}

/* EC public key from x and y; the point is checked to be on the curve and of
 * the group's order (invalid-curve attacks matter less for signatures than for
 * ECDH, but a bad point is a broken key set and worth saying so). */
EVP_PKEY *gh_jose_ec_key(int ci, const unsigned char *x, const unsigned char *y,
                         const unsigned char *d, size_t dlen)
{
    size_t c = gh_jose_curves[ci].coord;
    unsigned char pub[1 + 2 * GH_EC_MAX_COORD];
    pub[0] = 0x04; /* uncompressed point, SEC 1 §2.3.3 */
    memcpy(pub + 1, x, c);
    memcpy(pub + 1 + c, y, c);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn_d = NULL;
    EVP_PKEY *pkey = NULL;
    if (bld != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, gh_jose_curves[ci].group,
                                        0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * c) &&
        (d == NULL || gh_jose_push_bn(bld, OSSL_PKEY_PARAM_PRIV_KEY, d, dlen, &bn_d) == 0))
        pkey = gh_jose_pkey_fromdata("EC", bld, d != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(bn_d);
    if (pkey == NULL)
        return NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth"};

/* Parses one JWK into k. Returns 0, a static reason to skip it in *why, or
 * -ENOMEM. */
static int parse_key(json_t *o, const gh_jwks_opts_t *opts, gh_jwk_t *k, const char **why)
{
    unsigned char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    int bad = 0, rc = 0;
    *why = NULL;

    json_t *use = json_object_get(o, "use");
    if (use != NULL && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0)) {
        *why = "\"use\" is not \"sig\"";
        return 0;
    }
    json_t *ops = json_object_get(o, "key_ops");
    if (ops != NULL) {
        int verify = 0;
        size_t i;
        json_t *op;
        if (!json_is_array(ops)) {
            *why = "\"key_ops\" is not an array";
            return 0;
        }
        json_array_foreach(ops, i, op)
        {
            if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
                verify = 1;
        }
        if (!verify) {
            *why = "\"key_ops\" lacks \"verify\"";
            return 0;
        }
    }
    json_t *kty = json_object_get(o, "kty");
    if (!json_is_string(kty)) {
        *why = "no \"kty\"";
        return 0;
    }
    const char *ks = json_string_value(kty);
    json_t *alg = json_object_get(o, "alg");
    if (alg != NULL) {
        if (!json_is_string(alg)) {
            *why = "\"alg\" is not a string";
            return 0;
        }
        k->alg = gh_jwt_alg_from_name(json_string_value(alg), json_string_length(alg));
        if (k->alg == GH_JWT_ALG_UNKNOWN) {
            *why = "\"alg\" is not a supported signature algorithm";
            return 0;
        }
    }

    if (strcmp(ks, "RSA") == 0 || strcmp(ks, "EC") == 0 || strcmp(ks, "OKP") == 0) {
        /* A public key set that carries private keys is a misconfigured
         * issuer: refuse the key rather than hold a private key in memory. */
        for (size_t i = 0; i < sizeof(private_members) / sizeof(*private_members); i++) {
            if (json_object_get(o, private_members[i]) != NULL) {
                *why = "private key material in a public key set";
                return 0;
            }
        }
    }

    if (strcmp(ks, "RSA") == 0) {
        k->kty = GH_KTY_RSA;
        k->kty_name = "RSA";
        a = gh_jose_member_b64(o, "n", &alen, &bad);
        b = gh_jose_member_b64(o, "e", &blen, &bad);
        if (bad < 0) {
            rc = -ENOMEM;
            goto out;
        }
        const unsigned char *e = b ? gh_jose_skip_zeros(b, &blen) : NULL;
        if (a == NULL || b == NULL || bad) {
            *why = "RSA key without valid \"n\" and \"e\"";
            goto out;
        }
        k->bits = bits_of(a, alen);
        if (k->bits < GH_JWKS_MIN_RSA_BITS) {
            *why = "RSA key under 2048 bits";
            goto out;
        }
        if (k->bits > RSA_MAX_BITS) {
            *why = "RSA key over 8192 bits";
            goto out;
        }
        /* A public exponent is small and odd; a huge one only costs time. */
        if (blen == 0 || blen > 8 || !(e[blen - 1] & 1) || (blen == 1 && e[0] == 1)) {
            *why = "RSA exponent out of range";
            goto out;
        }
        k->pkey = rsa_public(a, alen, e, blen);
        if (k->pkey == NULL)
            *why = "RSA key refused by OpenSSL";
    } else if (strcmp(ks, "EC") == 0) {
        k->kty = GH_KTY_EC;
        k->kty_name = "EC";
        json_t *crv = json_object_get(o, "crv");
        int ci = json_is_string(crv) ? gh_jose_curve_index(json_string_value(crv)) : -1;
        if (ci < 0) {
            *why = "EC key on an unsupported curve";
            goto out;
        }
        k->nid = gh_jose_curves[ci].nid;
        k->crv_name = gh_jose_curves[ci].crv;
        k->coord = gh_jose_curves[ci].coord;
        k->bits = ci == 0 ? 256 : ci == 1 ? 384 : 521;
        memcpy(k->order, gh_jose_curves[ci].order, k->coord);
        a = gh_jose_member_b64(o, "x", &alen, &bad);
        b = gh_jose_member_b64(o, "y", &blen, &bad);
        if (bad < 0) {
            rc = -ENOMEM;
            goto out;
        }
        /* RFC 7518 §6.2.1.2: x and y are exactly the coordinate size. */
        if (a == NULL || b == NULL || bad || alen != k->coord || blen != k->coord) {
            *why = "EC key without valid \"x\" and \"y\"";
            goto out;
        }
        k->pkey = gh_jose_ec_key(ci, a, b, NULL, 0);
        if (k->pkey == NULL)
            *why = "EC point not on the curve";
    } else if (strcmp(ks, "OKP") == 0) {
        k->kty = GH_KTY_OKP;
        k->kty_name = "OKP";
        json_t *crv = json_object_get(o, "crv");
        const char *cs = json_is_string(crv) ? json_string_value(crv) : "";
        size_t want;
        if (strcmp(cs, "Ed25519") == 0) {
            k->nid = NID_ED25519;
            k->crv_name = "Ed25519";
            k->bits = 256;
            want = 32;
        } else if (strcmp(cs, "Ed448") == 0) {
            k->nid = NID_ED448;
            k->crv_name = "Ed448";
            k->bits = 456;
            want = 57;
        } else {
            *why = "OKP key not on a signature curve (Ed25519, Ed448)";
            goto out;
        }
        a = gh_jose_member_b64(o, "x", &alen, &bad);
        if (bad < 0) {
            rc = -ENOMEM;
            goto out;
        }
        if (a == NULL || bad || alen != want) {
            *why = "OKP key without a valid \"x\"";
            goto out;
        }
        k->pkey = EVP_PKEY_new_raw_public_key_ex(NULL, k->nid == NID_ED25519 ? "ED25519" : "ED448",
                                                 NULL, a, alen);
        if (k->pkey == NULL)
            *why = "OKP key refused by OpenSSL";
    } else if (strcmp(ks, "oct") == 0) {
        k->kty = GH_KTY_OCT;
        k->kty_name = "oct";
        if (opts == NULL || !opts->allow_symmetric) {
            *why = "symmetric key not allowed here";
            goto out;
        }
        a = gh_jose_member_b64(o, "k", &alen, &bad);
        if (bad < 0) {
            rc = -ENOMEM;
            goto out;
        }
        /* RFC 7518 §3.2: an HMAC key at least as long as the hash; 256 bits
         * is the floor for any of them. */
        if (a == NULL || bad || alen < 32 || alen > HMAC_MAX_KEY) {
            *why = "oct key without a \"k\" of 32 to 1024 bytes";
            goto out;
        }
        k->secret = a;
        k->secret_len = alen;
        k->bits = (int)alen * 8;
        a = NULL;
    } else {
        *why = "unsupported \"kty\"";
        goto out;
    }
    if (*why == NULL && k->alg != GH_JWT_ALG_UNKNOWN && !gh_jose_key_fits(k, k->alg))
        *why = "\"alg\" does not fit the key";
out:
    if (a != NULL)
        OPENSSL_cleanse(a, alen);
    free(a);
    free(b);
    return rc;
}

static void key_dispose(gh_jwk_t *k)
{
    EVP_PKEY_free(k->pkey);
    if (k->secret != NULL)
        OPENSSL_clear_free(k->secret, k->secret_len);
    free(k->kid);
    memset(k, 0, sizeof(*k));
}

static void jwks_free(gh_jwks_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        key_dispose(&s->keys[i]);
    for (size_t i = 0; i < s->nwarn; i++)
        free(s->warnings[i]);
    free(s->keys);
    free(s->warnings);
    free(s);
}

gh_jwks_t *gh_jwks_parse(const char *json, size_t len, const gh_jwks_opts_t *opts, char *err,
                         size_t errcap)
{
    gh_jwks_t *s = NULL;
    json_t *root = NULL;
    gh_jose_seterr(err, errcap, "%s", "");
    if (!gh_jose_init()) {
        gh_jose_seterr(err, errcap, "OpenSSL lacks SHA-2 or the NIST curves");
        return NULL;
    }
    if (len > GH_JWKS_MAX_DOC) {
        gh_jose_seterr(err, errcap, "key set of %zu bytes, over the limit of %d", len,
                       GH_JWKS_MAX_DOC);
        return NULL;
    }
    json_error_t jerr;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        gh_jose_seterr(err, errcap, "key set is not valid JSON: %s at line %d column %d", jerr.text,
                       jerr.line, jerr.column);
        return NULL;
    }
    json_t *single[1] = {NULL}, *arr = NULL;
    size_t count;
    if (!json_is_object(root)) {
        gh_jose_seterr(err, errcap, "key set is not a JSON object");
        goto fail;
    }
    if ((arr = json_object_get(root, "keys")) != NULL) {
        if (!json_is_array(arr)) {
            gh_jose_seterr(err, errcap, "\"keys\" is not an array");
            goto fail;
        }
        count = json_array_size(arr);
    } else if (json_object_get(root, "kty") != NULL) {
        single[0] = root;
        count = 1;
    } else {
        gh_jose_seterr(err, errcap, "neither a JWK set (\"keys\") nor a JWK (\"kty\")");
        goto fail;
    }
    if (count > GH_JWKS_MAX_KEYS) {
        gh_jose_seterr(err, errcap, "%zu keys, over the limit of %d", count, GH_JWKS_MAX_KEYS);
        goto fail;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || (count && ((s->keys = calloc(count, sizeof(*s->keys))) == NULL ||
                                (s->warnings = calloc(2 * count, sizeof(char *))) == NULL))) {
        gh_jose_seterr(err, errcap, "out of memory");
        goto fail;
    }
    atomic_init(&s->refs, 1);
    for (size_t i = 0; i < count; i++) {
        json_t *o = arr ? json_array_get(arr, i) : single[0];
        gh_jwk_t *k = &s->keys[s->n];
        const char *why = NULL, *kid = NULL;
        if (!json_is_object(o)) {
            why = "not a JSON object";
        } else {
            json_t *jk = json_object_get(o, "kid");
            if (jk != NULL && !json_is_string(jk))
                why = "\"kid\" is not a string";
            else if (jk != NULL && json_string_length(jk) > GH_JWT_MAX_KID)
                why = "\"kid\" over 256 bytes";
            else if (jk != NULL && strlen(json_string_value(jk)) != json_string_length(jk))
                why = "\"kid\" holds a NUL";
            kid = jk != NULL && why == NULL ? json_string_value(jk) : NULL;
        }
        if (why == NULL && parse_key(o, opts, k, &why) < 0) {
            gh_jose_seterr(err, errcap, "out of memory");
            key_dispose(k);
            goto fail;
        }
        if (why == NULL && kid != NULL) {
            k->kid_len = strlen(kid);
            if ((k->kid = strdup(kid)) == NULL) {
                gh_jose_seterr(err, errcap, "out of memory");
                key_dispose(k);
                goto fail;
            }
        }
        if (why != NULL) {
            key_dispose(k);
            if (add_warning(s, i, kid, why) < 0) {
                gh_jose_seterr(err, errcap, "out of memory");
                goto fail;
            }
            continue;
        }
        s->n++;
    }
    if (s->n == 0) {
        gh_jose_seterr(err, errcap, "no usable key%s%s", s->nwarn ? ": " : "",
                       s->nwarn ? s->warnings[0] : "");
        goto fail;
    }
    if (warn_duplicate_kids(s) < 0) {
        gh_jose_seterr(err, errcap, "out of memory");
        goto fail;
    }
    json_decref(root);
    return s;
fail:
    if (s != NULL)
        jwks_free(s);
    json_decref(root);
    return NULL;
}

gh_jwks_t *gh_jwks_ref(gh_jwks_t *jwks)
{
    atomic_fetch_add_explicit(&jwks->refs, 1, memory_order_relaxed);
    return jwks;
}

void gh_jwks_unref(gh_jwks_t *jwks)
{
    if (jwks == NULL)
        return;
    /* acq_rel on the decrement, so the freeing thread sees every other
     * thread's last reads completed. (Release plus a separate acquire fence
     * is equivalent, but ThreadSanitizer does not model fences and reported
     * every retired key set as a race.) */
    if (atomic_fetch_sub_explicit(&jwks->refs, 1, memory_order_acq_rel) == 1)
        jwks_free(jwks);
}

size_t gh_jwks_count(const gh_jwks_t *jwks)
{
    return jwks->n;
}

static int same_key(const gh_jwk_t *a, const gh_jwk_t *b)
{
    if (a->kty != b->kty || a->alg != b->alg || a->kid_len != b->kid_len ||
        (a->kid == NULL) != (b->kid == NULL) ||
        (a->kid != NULL && memcmp(a->kid, b->kid, a->kid_len) != 0))
        return 0;
    if (a->kty == GH_KTY_OCT)
        return a->secret_len == b->secret_len &&
               CRYPTO_memcmp(a->secret, b->secret, a->secret_len) == 0;
    return EVP_PKEY_eq(a->pkey, b->pkey) == 1;
}

int gh_jwks_same_keys(const gh_jwks_t *a, const gh_jwks_t *b)
{
    if (a == NULL || b == NULL || a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (!same_key(&a->keys[i], &b->keys[i]))
            return 0;
    return 1;
}

void gh_jwks_set_generation(gh_jwks_t *jwks, uint64_t generation)
{
    jwks->generation = generation;
}

uint64_t gh_jwks_generation(const gh_jwks_t *jwks)
{
    return jwks->generation;
}

size_t gh_jwks_warning_count(const gh_jwks_t *jwks)
{
    return jwks->nwarn;
}

const char *gh_jwks_warning(const gh_jwks_t *jwks, size_t i)
{
    return i < jwks->nwarn ? jwks->warnings[i] : NULL;
}

int gh_jwks_key_info(const gh_jwks_t *jwks, size_t i, gh_jwk_info_t *out)
{
    if (i >= jwks->n)
        return -ERANGE;
    const gh_jwk_t *k = &jwks->keys[i];
    out->kid = k->kid;
    out->kty = k->kty_name;
    out->crv = k->crv_name;
    out->alg = gh_jwt_alg_name(k->alg);
    out->bits = k->bits;
    return 0;
}
