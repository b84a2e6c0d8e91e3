/*
 * The JWA algorithms gatehouse knows (RFC 7518, RFC 8037), which key each
 * may be checked with, and the process-wide OpenSSL state every key and
 * signature shares: the SHA-2 digests fetched once and the NIST curves'
 * group orders (for the ECDSA r/s range check), prepared on first use.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#include "jose/jose.h"

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

/* ---- process-wide prepared state ---- */

static const char *const md_names[3] = {"SHA2-256", "SHA2-384", "SHA2-512"};
static EVP_MD *mds[3];

gh_jose_curve_t gh_jose_curves[GH_JOSE_NCURVES] = {
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
    for (int i = 0; i < GH_JOSE_NCURVES; i++) {
        gh_jose_curve_t *c = &gh_jose_curves[i];
        EC_GROUP *g = EC_GROUP_new_by_curve_name(c->nid);
        if (g == NULL)
            return;
        int ok = BN_bn2binpad(EC_GROUP_get0_order(g), c->order, (int)c->coord) == (int)c->coord;
        EC_GROUP_free(g);
        if (!ok)
            return;
    }
    init_ok = 1;
}

int gh_jose_init(void)
{
    pthread_once(&once, init_once);
    return init_ok;
}

const EVP_MD *gh_jose_md(int idx)
{
    return gh_jose_init() && idx >= 0 && idx < 3 ? mds[idx] : NULL;
}

const char *gh_jose_md_name(int idx)
{
    return idx >= 0 && idx < 3 ? md_names[idx] : NULL;
}

int gh_jose_curve_index(const char *crv)
{
    for (int i = 0; i < GH_JOSE_NCURVES; i++) {
        if (strcmp(gh_jose_curves[i].crv, crv) == 0)
            return i;
    }
    return -1;
}

void gh_jose_seterr(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}
