/*
 * JWK sets (RFC 7517) and the keys' operations: parsing and preparing public
 * keys, the signature primitives of RFC 7518 / RFC 8037 over prepared keys,
 * and private signing keys (PEM, private JWK, generated) for minting.
 *
 * Keys are prepared once, at load: an EVP_PKEY built from OSSL_PARAMs, the EC
 * group order kept as bytes for the r/s range check, digests fetched once per
 * process. A set is immutable after gh_jwks_parse and shared by all workers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "jose/b64url.h"
#include "jose/jose.h"

#define RSA_MAX_BITS 8192
#define HMAC_MAX_KEY 1024
/* At most this many keys are tried per token (without a kid, or with a kid
 * that several keys share, or falling back to keys without a kid): a forged
 * token must not cost a hundred RSA operations. */
#define MAX_KEY_TRIES 10

const gh_alg_info_t gh_alg_info[GH_JWT_ALG_COUNT] = {
    [GH_JWT_RS256] = {"RS256", GH_FAM_PKCS1, GH_KTY_RSA, 0, 32, 0},
    [GH_JWT_RS384] = {"RS384", GH_FAM_PKCS1, GH_KTY_RSA, 1, 48, 0},
    [GH_JWT_RS512] = {"RS512", GH_FAM_PKCS1, GH_KTY_RSA, 2, 64, 0},
    [GH_JWT_PS256] = {"PS256", GH_FAM_PSS, GH_KTY_RSA, 0, 32, 0},
    [GH_JWT_PS384] = {"PS384", GH_FAM_PSS, GH_KTY_RSA, 1, 48, 0},
    [GH_JWT_PS512] = {"PS512", GH_FAM_PSS, GH_KTY_RSA, 2, 64, 0},
    [GH_JWT_ES256] = {"ES256", GH_FAM_ECDSA, GH_KTY_EC, 0, 32, NID_X9_62_prime256v1},
    [GH_JWT_ES384] = {"ES384", GH_FAM_ECDSA, GH_KTY_EC, 1, 48, NID_secp384r1},
    [GH_JWT_ES512] = {"ES512", GH_FAM_ECDSA, GH_KTY_EC, 2, 64, NID_secp521r1},
    [GH_JWT_EDDSA] = {"EdDSA", GH_FAM_EDDSA, GH_KTY_OKP, -1, 0, 0},
    [GH_JWT_HS256] = {"HS256", GH_FAM_HMAC, GH_KTY_OCT, 0, 32, 0},
    [GH_JWT_HS384] = {"HS384", GH_FAM_HMAC, GH_KTY_OCT, 1, 48, 0},
    [GH_JWT_HS512] = {"HS512", GH_FAM_HMAC, GH_KTY_OCT, 2, 64, 0},
};

const char *gh_jwt_alg_name(gh_jwt_alg_t alg)
{
    return alg > GH_JWT_ALG_UNKNOWN && alg < GH_JWT_ALG_COUNT ? gh_alg_info[alg].name : NULL;
}

gh_jwt_alg_t gh_jwt_alg_from_name(const char *name, size_t len)
{
    for (int a = 1; a < GH_JWT_ALG_COUNT; a++) {
        if (strlen(gh_alg_info[a].name) == len && memcmp(gh_alg_info[a].name, name, len) == 0)
            return (gh_jwt_alg_t)a;
    }
    return GH_JWT_ALG_UNKNOWN;
}

/* ---- process-wide prepared state ---- */

static const char *const md_names[3] = {"SHA2-256", "SHA2-384", "SHA2-512"};
static EVP_MD *mds[3];

static struct {
    int nid;
    const char *crv;   /* JOSE name */
    const char *group; /* OpenSSL group name */
    size_t coord;
    unsigned char order[GH_EC_MAX_COORD];
} curves[3] = {
    {NID_X9_62_prime256v1, "P-256", "prime256v1", 32, {0}},
    {NID_secp384r1, "P-384", "secp384r1", 48, {0}},
    {NID_secp521r1, "P-521", "secp521r1", 66, {0}},
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_ok;

static void init_once(void)
{
    for (int i = 0; i < 3; i++) {
        mds[i] = EVP_MD_fetch(NULL, md_names[i], NULL);
        if (mds[i] == NULL)
            return;
    }
    for (int i = 0; i < 3; i++) {
        EC_GROUP *g = EC_GROUP_new_by_curve_name(curves[i].nid);
        if (g == NULL)
            return;
        int ok = BN_bn2binpad(EC_GROUP_get0_order(g), curves[i].order, (int)curves[i].coord) ==
                 (int)curves[i].coord;
        EC_GROUP_free(g);
        if (!ok)
            return;
    }
    init_ok = 1;
}

static int jose_init(void)
{
    pthread_once(&once, init_once);
    return init_ok;
}

const EVP_MD *gh_jose_md(int idx)
{
    return jose_init() && idx >= 0 && idx < 3 ? mds[idx] : NULL;
}

/* ---- errors and warnings ---- */

static void seterr(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

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
 * to MAX_KEY_TRIES), which works but usually means a rotation left an old
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

/* Decodes a base64url member into a new buffer; NULL when absent or bad. */
static unsigned char *member_b64(json_t *o, const char *name, size_t *len, int *bad)
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

static const unsigned char *skip_zeros(const unsigned char *p, size_t *len)
{
    while (*len > 0 && *p == 0) {
        p++;
        (*len)--;
    }
    return p;
}

static int bits_of(const unsigned char *p, size_t len)
{
    p = skip_zeros(p, &len);
    if (len == 0)
        return 0;
    int b = (int)len * 8;
    for (unsigned char top = p[0]; !(top & 0x80); top = (unsigned char)(top << 1))
        b--;
    return b;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, int selection)
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

static int push_bn(OSSL_PARAM_BLD *bld, const char *key, const unsigned char *p, size_t len,
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
    if (bld != NULL && push_bn(bld, OSSL_PKEY_PARAM_RSA_N, n, nlen, &bn_n) == 0 &&
        push_bn(bld, OSSL_PKEY_PARAM_RSA_E, e, elen, &bn_e) == 0)
        pkey = pkey_fromdata("RSA", bld, EVP_PKEY_PUBLIC_KEY);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return pkey;
}

static int curve_index(const char *crv)
{
    for (int i = 0; i < 3; i++) {
        if (strcmp(curves[i].crv, crv) == 0)
            return i;
    }
    return -1;
}

/* EC public key from x and y; the point is checked to be on the curve and of
 * the group's order (invalid-curve attacks matter less for signatures than for
 * ECDH, but a bad point is a broken key set and worth saying so). */
static EVP_PKEY *ec_public(int ci, const unsigned char *x, const unsigned char *y,
                           const unsigned char *d, size_t dlen)
{
    size_t c = curves[ci].coord;
    unsigned char pub[1 + 2 * GH_EC_MAX_COORD];
    pub[0] = 0x04; /* uncompressed point, SEC 1 §2.3.3 */
    memcpy(pub + 1, x, c);
    memcpy(pub + 1 + c, y, c);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn_d = NULL;
    EVP_PKEY *pkey = NULL;
    if (bld != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curves[ci].group, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * c) &&
        (d == NULL || push_bn(bld, OSSL_PKEY_PARAM_PRIV_KEY, d, dlen, &bn_d) == 0))
        pkey = pkey_fromdata("EC", bld, d != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
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
        a = member_b64(o, "n", &alen, &bad);
        b = member_b64(o, "e", &blen, &bad);
        if (bad < 0) {
            rc = -ENOMEM;
            goto out;
        }
        const unsigned char *e = b ? skip_zeros(b, &blen) : NULL;
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
        int ci = json_is_string(crv) ? curve_index(json_string_value(crv)) : -1;
        if (ci < 0) {
            *why = "EC key on an unsupported curve";
            goto out;
        }
        k->nid = curves[ci].nid;
        k->crv_name = curves[ci].crv;
        k->coord = curves[ci].coord;
        k->bits = ci == 0 ? 256 : ci == 1 ? 384 : 521;
        memcpy(k->order, curves[ci].order, k->coord);
        a = member_b64(o, "x", &alen, &bad);
        b = member_b64(o, "y", &blen, &bad);
        if (bad < 0) {
            rc = -ENOMEM;
            goto out;
        }
        /* RFC 7518 §6.2.1.2: x and y are exactly the coordinate size. */
        if (a == NULL || b == NULL || bad || alen != k->coord || blen != k->coord) {
            *why = "EC key without valid \"x\" and \"y\"";
            goto out;
        }
        k->pkey = ec_public(ci, a, b, NULL, 0);
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
        a = member_b64(o, "x", &alen, &bad);
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
        a = member_b64(o, "k", &alen, &bad);
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
    seterr(err, errcap, "%s", "");
    if (!jose_init()) {
        seterr(err, errcap, "OpenSSL lacks SHA-2 or the NIST curves");
        return NULL;
    }
    if (len > GH_JWKS_MAX_DOC) {
        seterr(err, errcap, "key set of %zu bytes, over the limit of %d", len, GH_JWKS_MAX_DOC);
        return NULL;
    }
    json_error_t jerr;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        seterr(err, errcap, "key set is not valid JSON: %s at line %d column %d", jerr.text,
               jerr.line, jerr.column);
        return NULL;
    }
    json_t *single[1] = {NULL}, *arr = NULL;
    size_t count;
    if (!json_is_object(root)) {
        seterr(err, errcap, "key set is not a JSON object");
        goto fail;
    }
    if ((arr = json_object_get(root, "keys")) != NULL) {
        if (!json_is_array(arr)) {
            seterr(err, errcap, "\"keys\" is not an array");
            goto fail;
        }
        count = json_array_size(arr);
    } else if (json_object_get(root, "kty") != NULL) {
        single[0] = root;
        count = 1;
    } else {
        seterr(err, errcap, "neither a JWK set (\"keys\") nor a JWK (\"kty\")");
        goto fail;
    }
    if (count > GH_JWKS_MAX_KEYS) {
        seterr(err, errcap, "%zu keys, over the limit of %d", count, GH_JWKS_MAX_KEYS);
        goto fail;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || (count && ((s->keys = calloc(count, sizeof(*s->keys))) == NULL ||
                                (s->warnings = calloc(2 * count, sizeof(char *))) == NULL))) {
        seterr(err, errcap, "out of memory");
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
            seterr(err, errcap, "out of memory");
            key_dispose(k);
            goto fail;
        }
        if (why == NULL && kid != NULL) {
            k->kid_len = strlen(kid);
            if ((k->kid = strdup(kid)) == NULL) {
                seterr(err, errcap, "out of memory");
                key_dispose(k);
                goto fail;
            }
        }
        if (why != NULL) {
            key_dispose(k);
            if (add_warning(s, i, kid, why) < 0) {
                seterr(err, errcap, "out of memory");
                goto fail;
            }
            continue;
        }
        s->n++;
    }
    if (s->n == 0) {
        seterr(err, errcap, "no usable key%s%s", s->nwarn ? ": " : "",
               s->nwarn ? s->warnings[0] : "");
        goto fail;
    }
    if (warn_duplicate_kids(s) < 0) {
        seterr(err, errcap, "out of memory");
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

/* ---- verification ---- */

int gh_jose_key_fits(const gh_jwk_t *k, gh_jwt_alg_t alg)
{
    if (alg <= GH_JWT_ALG_UNKNOWN || alg >= GH_JWT_ALG_COUNT)
        return 0;
    const gh_alg_info_t *ai = &gh_alg_info[alg];
    /* RFC 8725 §3.1: the key decides what it may verify, never the token. */
    if (k->kty != ai->kty || (k->alg != GH_JWT_ALG_UNKNOWN && k->alg != alg))
        return 0;
    if (ai->family == GH_FAM_ECDSA && k->nid != ai->curve_nid)
        return 0;
    if (ai->family == GH_FAM_HMAC && k->secret_len < ai->hlen)
        return 0;
    return 1;
}

long gh_jose_ecdsa_to_der(const gh_jwk_t *k, const unsigned char *sig, size_t siglen,
                          unsigned char *der, size_t cap)
{
    size_t c = k->coord;
    if (siglen != 2 * c || cap < 2 * c + 16)
        return -1;
    const unsigned char *half[2] = {sig, sig + c};
    unsigned char body[2 * (GH_EC_MAX_COORD + 3)];
    size_t bl = 0;
    for (int i = 0; i < 2; i++) {
        /* r and s must lie in [1, n-1] (FIPS 186-4 §6.4.2); OpenSSL checks
         * too, but refusing here keeps the rule visible and tested. */
        size_t l = c;
        const unsigned char *p = skip_zeros(half[i], &l);
        if (l == 0 || memcmp(half[i], k->order, c) >= 0)
            return -1;
        body[bl++] = 0x02; /* INTEGER, minimal, non-negative */
        body[bl++] = (unsigned char)(l + (p[0] & 0x80 ? 1 : 0));
        if (p[0] & 0x80)
            body[bl++] = 0x00;
        memcpy(body + bl, p, l);
        bl += l;
    }
    size_t o = 0;
    der[o++] = 0x30; /* SEQUENCE */
    if (bl > 127)
        der[o++] = 0x81;
    der[o++] = (unsigned char)bl;
    memcpy(der + o, body, bl);
    return (long)(o + bl);
}

#define VCACHE 8

struct gh_jwt_verifier_s {
    EVP_MD_CTX *md;
    struct {
        EVP_PKEY *pkey; /* identity only; pctx holds the reference */
        gh_jwt_alg_t alg;
        EVP_PKEY_CTX *pctx;
    } cache[VCACHE];
    unsigned next;
    gh_jose_memo_t memo;
};

gh_jose_memo_t *gh_jose_memo(gh_jwt_verifier_t *v)
{
    return &v->memo;
}

gh_jwt_verifier_t *gh_jwt_verifier_new(void)
{
    gh_jwt_verifier_t *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return NULL;
    if (!jose_init() || (v->md = EVP_MD_CTX_new()) == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

void gh_jwt_verifier_free(gh_jwt_verifier_t *v)
{
    if (v == NULL)
        return;
    for (unsigned i = 0; i < VCACHE; i++)
        EVP_PKEY_CTX_free(v->cache[i].pctx);
    EVP_MD_CTX_free(v->md);
    free(v);
}

/* A verification context for (pkey, alg): initialised once with the digest
 * and padding, then reused. It holds a reference to pkey, so the key cannot
 * be freed and its address reused while cached: the identity check is sound. */
static EVP_PKEY_CTX *prepared_ctx(gh_jwt_verifier_t *v, EVP_PKEY *pkey, gh_jwt_alg_t alg)
{
    for (unsigned i = 0; i < VCACHE; i++) {
        if (v->cache[i].pkey == pkey && v->cache[i].alg == alg)
            return v->cache[i].pctx;
    }
    const gh_alg_info_t *ai = &gh_alg_info[alg];
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (pctx == NULL || EVP_PKEY_verify_init(pctx) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(pctx, gh_jose_md(ai->md)) <= 0)
        goto fail;
    if (ai->family == GH_FAM_PSS &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, gh_jose_md(ai->md)) <= 0 ||
         /* RFC 7518 §3.5: salt as long as the hash; "DIGEST" makes the
          * verifier insist on exactly that. */
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
        goto fail;
    if (ai->family == GH_FAM_PKCS1 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
        goto fail;
    unsigned slot = v->next++ % VCACHE;
    EVP_PKEY_CTX_free(v->cache[slot].pctx);
    v->cache[slot].pkey = pkey;
    v->cache[slot].alg = alg;
    v->cache[slot].pctx = pctx;
    return pctx;
fail:
    EVP_PKEY_CTX_free(pctx);
    return NULL;
}

static int verify_with(gh_jwt_verifier_t *v, const gh_jwk_t *k, gh_jwt_alg_t alg,
                       const unsigned char *msg, size_t msglen, const unsigned char *sig,
                       size_t siglen)
{
    const gh_alg_info_t *ai = &gh_alg_info[alg];
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;

    if (ai->family == GH_FAM_HMAC) {
        if (siglen != ai->hlen ||
            HMAC(gh_jose_md(ai->md), k->secret, (int)k->secret_len, msg, msglen, h, &hl) == NULL)
            return 0;
        /* Constant time: a timing oracle on the MAC lets an attacker forge
         * it byte by byte. */
        return hl == siglen && CRYPTO_memcmp(h, sig, siglen) == 0;
    }
    if (ai->family == GH_FAM_EDDSA) {
        /* Pure EdDSA signs the message itself (no prehash), so there is no
         * digest to separate out: one DigestVerify on the reusable context. */
        int ok = EVP_DigestVerifyInit_ex(v->md, NULL, NULL, NULL, NULL, k->pkey, NULL) == 1 &&
                 EVP_DigestVerify(v->md, sig, siglen, msg, msglen) == 1;
        EVP_MD_CTX_reset(v->md);
        return ok;
    }

    unsigned char der[2 * GH_EC_MAX_COORD + 16];
    if (ai->family == GH_FAM_ECDSA) {
        long dl = gh_jose_ecdsa_to_der(k, sig, siglen, der, sizeof(der));
        if (dl < 0)
            return 0;
        sig = der;
        siglen = (size_t)dl;
    } else if (siglen != (size_t)EVP_PKEY_get_size(k->pkey)) {
        return 0; /* RSA signatures are exactly the modulus size (RFC 8017 §8.2.2) */
    }
    if (EVP_DigestInit_ex2(v->md, gh_jose_md(ai->md), NULL) != 1 ||
        EVP_DigestUpdate(v->md, msg, msglen) != 1 || EVP_DigestFinal_ex(v->md, h, &hl) != 1)
        return -ENOMEM;
    EVP_PKEY_CTX *pctx = prepared_ctx(v, k->pkey, alg);
    if (pctx == NULL)
        return -ENOMEM;
    return EVP_PKEY_verify(pctx, sig, siglen, h, hl) == 1;
}

int gh_jose_verify(gh_jwt_verifier_t *v, const gh_jwk_t *k, gh_jwt_alg_t alg,
                   const unsigned char *msg, size_t msglen, const unsigned char *sig, size_t siglen)
{
    if (!gh_jose_key_fits(k, alg))
        return 0;
    if (v != NULL)
        return verify_with(v, k, alg, msg, msglen, sig, siglen);
    gh_jwt_verifier_t *tmp = gh_jwt_verifier_new();
    if (tmp == NULL)
        return -ENOMEM;
    int rc = verify_with(tmp, k, alg, msg, msglen, sig, siglen);
    gh_jwt_verifier_free(tmp);
    return rc;
}

/* Whether key k is a candidate for token t: with a kid, keys of that kid
 * (pass 0) and then keys without one (pass 1, as Envoy does: an issuer that
 * publishes kid-less keys may still stamp kids on its tokens); without a
 * kid, every key (pass 0 only). kid is an opaque, case-sensitive string (RFC
 * 7517 section 4.5): an exact byte comparison, never a path or a pattern. */
static int candidate(const gh_jwk_t *k, const gh_jwt_t *t, size_t kl, int pass)
{
    if (!t->has_kid)
        return 1;
    if (pass == 1)
        return k->kid == NULL;
    return k->kid != NULL && k->kid_len == kl && memcmp(k->kid, t->kid, kl) == 0;
}

int gh_jwt_verifier_verify(gh_jwt_verifier_t *v, const gh_jwt_t *t, const gh_jwks_t *keys,
                           gh_jwt_reason_t *reason)
{
    gh_jwt_reason_t dummy;
    if (reason == NULL)
        reason = &dummy;
    const unsigned char *msg = (const unsigned char *)t->buf;
    size_t kl = t->has_kid ? strlen(t->kid) : 0;
    int matched = 0, tried = 0;
    for (int pass = 0; pass < (t->has_kid ? 2 : 1); pass++) {
        for (size_t i = 0; i < keys->n; i++) {
            const gh_jwk_t *k = &keys->keys[i];
            if (!candidate(k, t, kl, pass))
                continue;
            matched |= pass == 0;
            if (!gh_jose_key_fits(k, t->alg))
                continue;
            if (tried == MAX_KEY_TRIES)
                break;
            tried++;
            int rc = gh_jose_verify(v, k, t->alg, msg, t->signing_len, t->sig, t->sig_len);
            if (rc == 1)
                return 0;
            if (rc < 0) {
                *reason = GH_JWT_OUT_OF_MEMORY;
                return rc;
            }
        }
    }
    /* No key carries the kid: worth a refetch, even when kid-less keys were
     * tried and failed (the new key may be the token's). */
    if (t->has_kid && !matched) {
        *reason = GH_JWT_UNKNOWN_KEY;
        return -ENOKEY;
    }
    *reason = tried == 0 ? GH_JWT_NO_KEY_FOR_ALG : GH_JWT_BAD_SIGNATURE;
    return -EINVAL;
}

int gh_jwt_verify(const gh_jwt_t *t, const gh_jwks_t *keys, gh_jwt_reason_t *reason)
{
    return gh_jwt_verifier_verify(NULL, t, keys, reason);
}

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
        seterr(err, errcap, "not a PEM private key");
        return NULL;
    }
    gh_jwt_signing_key_t *k = gh_jwt_signing_key_from_pkey(pkey);
    EVP_PKEY_free(pkey);
    if (k == NULL)
        seterr(err, errcap, "out of memory");
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
        unsigned char *b = member_b64(o, m[i].jwk, &l, &bad);
        if (bad)
            goto out;
        if (b == NULL)
            continue;
        int rc = push_bn(bld, m[i].param, b, l, &bn[i]);
        OPENSSL_clear_free(b, l);
        if (rc < 0)
            goto out;
        have |= (size_t)1 << i;
    }
    if ((have & 7) != 7 || (have > 7 && have != 0xff))
        goto out;
    pkey = pkey_fromdata("RSA", bld, EVP_PKEY_KEYPAIR);
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
        int ci = crv ? curve_index(crv) : -1;
        x = member_b64(o, "x", &xl, &bad);
        y = member_b64(o, "y", &yl, &bad);
        d = member_b64(o, "d", &dl, &bad);
        if (ci < 0 || !jose_init() || bad || !x || !y || !d || xl != curves[ci].coord ||
            yl != curves[ci].coord) {
            why = "EC private key needs crv, x, y, d";
            goto out;
        }
        pkey = ec_public(ci, x, y, d, dl);
        why = "EC private key refused by OpenSSL";
    } else if (strcmp(kty, "OKP") == 0) {
        const char *crv = json_string_value(json_object_get(o, "crv"));
        d = member_b64(o, "d", &dl, &bad);
        const char *type = crv && strcmp(crv, "Ed25519") == 0 ? "ED25519"
                           : crv && strcmp(crv, "Ed448") == 0 ? "ED448"
                                                              : NULL;
        why = "OKP private key needs crv Ed25519 or Ed448 and d";
        if (type && d && !bad)
            pkey = EVP_PKEY_new_raw_private_key_ex(NULL, type, NULL, d, dl);
    } else if (strcmp(kty, "oct") == 0) {
        d = member_b64(o, "k", &dl, &bad);
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
        seterr(err, errcap, "%s", why);
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
        seterr(err, errcap, "unknown algorithm");
        return NULL;
    }
    const gh_alg_info_t *ai = &gh_alg_info[alg];
    EVP_PKEY *pkey = NULL;
    if (ai->family == GH_FAM_HMAC) {
        unsigned char s[64];
        if (RAND_bytes(s, (int)ai->hlen) != 1) {
            seterr(err, errcap, "no randomness");
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
        seterr(err, errcap, "key generation failed");
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
                if (strcmp(group, curves[i].group) == 0 ||
                    strcmp(group, OBJ_nid2sn(curves[i].nid)) == 0)
                    ci = i;
            }
        }
        rc = ci < 0 || !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &a) ||
             !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &b) ||
             json_object_set_new(o, "kty", json_string("EC")) ||
             json_object_set_new(o, "crv", json_string(curves[ci].crv)) ||
             set_bn_b64(o, "x", a, curves[ci].coord) || set_bn_b64(o, "y", b, curves[ci].coord);
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
    if (!jose_init() || key == NULL || root == NULL || arr == NULL || public_members(k, key) < 0 ||
        json_object_set_new(key, "use", json_string("sig")) ||
        (kid && json_object_set_new(key, "kid", json_string(kid))) ||
        (gh_jwt_alg_name(alg) &&
         json_object_set_new(key, "alg", json_string(gh_jwt_alg_name(alg)))) ||
        json_array_append(arr, key) || json_object_set(root, "keys", arr)) {
        seterr(err, errcap, "cannot export this key as a JWK");
    } else {
        out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        if (out == NULL)
            seterr(err, errcap, "out of memory");
    }
    json_decref(key);
    json_decref(arr);
    json_decref(root);
    return out;
}

long gh_jose_sign(const gh_jwt_signing_key_t *key, gh_jwt_alg_t alg, const unsigned char *msg,
                  size_t msglen, unsigned char *sig, char *err, size_t errcap)
{
    if (alg <= GH_JWT_ALG_UNKNOWN || alg >= GH_JWT_ALG_COUNT || !jose_init()) {
        seterr(err, errcap, "unknown algorithm");
        return -EINVAL;
    }
    const gh_alg_info_t *ai = &gh_alg_info[alg];
    if (ai->family == GH_FAM_HMAC) {
        unsigned int hl = 0;
        if (key->pkey != NULL || key->secret_len == 0 ||
            HMAC(gh_jose_md(ai->md), key->secret, (int)key->secret_len, msg, msglen, sig, &hl) ==
                NULL) {
            seterr(err, errcap, "%s needs a secret", ai->name);
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
        seterr(err, errcap, "the key does not fit %s", ai->name);
        return -EINVAL;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char der[GH_JOSE_MAX_SIG];
    unsigned char *out = ai->family == GH_FAM_ECDSA ? der : sig;
    size_t len = GH_JOSE_MAX_SIG;
    long rc = -EINVAL;
    if (ctx == NULL ||
        EVP_DigestSignInit_ex(ctx, &pctx, ai->md >= 0 ? md_names[ai->md] : NULL, NULL, NULL,
                              key->pkey, NULL) != 1 ||
        (ai->family == GH_FAM_PSS &&
         (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0)) ||
        EVP_DigestSign(ctx, out, &len, msg, msglen) != 1) {
        seterr(err, errcap, "%s signing failed", ai->name);
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
                if (strcmp(group, curves[i].group) == 0 && curves[i].nid == ai->curve_nid)
                    ci = i;
            }
        }
        const unsigned char *p = der;
        ECDSA_SIG *es = ci >= 0 ? d2i_ECDSA_SIG(NULL, &p, (long)len) : NULL;
        size_t c = ci >= 0 ? curves[ci].coord : 0;
        if (es == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)c) < 0 ||
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + c, (int)c) < 0) {
            seterr(err, errcap, "the key does not fit %s", ai->name);
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
