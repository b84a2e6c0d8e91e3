/*
 * Signature checks (RFC 7518, RFC 8037) over prepared keys, and the
 * per-worker verifier that makes them cheap: one reusable digest context,
 * a small cache of OpenSSL verification contexts set up once per (key,
 * algorithm), and the memo of JOSE headers jwt.c keeps in it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "jose/jose.h"

/* At most this many keys are tried per token (without a kid, or with a kid
 * that several keys share, or falling back to keys without a kid): a forged
 * token must not cost a hundred RSA operations. */
#define MAX_KEY_TRIES 10

/* ---- ECDSA signatures ---- */

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
        const unsigned char *p = gh_jose_skip_zeros(half[i], &l);
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

/* ---- the per-worker verifier ---- */

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
    if (!gh_jose_init() || (v->md = EVP_MD_CTX_new()) == NULL) {
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

/* ---- tokens ---- */

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
    const unsigned char *msg = (const unsigned char *)t->tok;
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
