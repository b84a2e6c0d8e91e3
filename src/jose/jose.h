/*
 * Internals shared by jwk.c (key sets, signature primitives, signing keys)
 * and jwt.c (tokens, claims): the algorithm table and the prepared key.
 */
#ifndef GATEHOUSE_AUTH_JOSE_H
#define GATEHOUSE_AUTH_JOSE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include <gatehouse/jwt.h>

enum { GH_KTY_RSA = 1, GH_KTY_EC, GH_KTY_OKP, GH_KTY_OCT };
enum { GH_FAM_PKCS1 = 1, GH_FAM_PSS, GH_FAM_ECDSA, GH_FAM_EDDSA, GH_FAM_HMAC };

#define GH_EC_MAX_COORD 66   /* P-521 */
#define GH_JOSE_MAX_SIG 1024 /* RSA 8192 */

typedef struct {
    const char *name;
    int family;
    int kty;
    int md;        /* 0 SHA-256, 1 SHA-384, 2 SHA-512; -1 none (EdDSA) */
    size_t hlen;   /* digest bytes */
    int curve_nid; /* ECDSA only */
} gh_alg_info_t;

extern const gh_alg_info_t gh_alg_info[GH_JWT_ALG_COUNT];

/* A usable public (or, for oct, secret) key, prepared once. */
typedef struct {
    int kty;
    int nid;                              /* EC curve, NID_ED25519 or NID_ED448; 0 otherwise */
    size_t coord;                         /* EC coordinate (and r, s) bytes */
    unsigned char order[GH_EC_MAX_COORD]; /* EC group order, coord bytes big-endian */
    gh_jwt_alg_t alg;                     /* the JWK's "alg", or UNKNOWN when absent */
    char *kid;                            /* NULL when absent */
    size_t kid_len;
    const char *kty_name, *crv_name;
    int bits;
    EVP_PKEY *pkey;        /* RSA, EC, OKP */
    unsigned char *secret; /* oct */
    size_t secret_len;
} gh_jwk_t;

struct gh_jwks_s {
    atomic_long refs;
    uint64_t generation;
    gh_jwk_t *keys;
    size_t n;
    char **warnings;
    size_t nwarn;
};

/* A verifier's memo of JOSE headers it parsed: the header segment as sent
 * (base64url, at most GH_JOSE_MEMO_SEG bytes) and what parse_header read from
 * it. Tokens of one issuer share their header, so most are found here. */
#define GH_JOSE_MEMO_SEG 192
#define GH_JOSE_MEMO_N 4

typedef struct {
    size_t seg_len; /* 0: empty slot */
    char seg[GH_JOSE_MEMO_SEG];
    gh_jwt_alg_t alg;
    int has_kid;
    char kid[GH_JWT_MAX_KID + 1];
    char typ[GH_JWT_MAX_TYP + 1];
} gh_jose_hdr_t;

typedef struct {
    gh_jose_hdr_t e[GH_JOSE_MEMO_N];
    unsigned next;
} gh_jose_memo_t;

/* v's memo (jwk.c owns the verifier). */
gh_jose_memo_t *gh_jose_memo(gh_jwt_verifier_t *v);

/* The process-wide digests, fetched once. */
const EVP_MD *gh_jose_md(int idx);
/* Whether key k may check alg: type, curve, the key's own "alg", HMAC length. */
int gh_jose_key_fits(const gh_jwk_t *k, gh_jwt_alg_t alg);
/* 1 valid, 0 not, -ENOMEM. v may be NULL. */
int gh_jose_verify(gh_jwt_verifier_t *v, const gh_jwk_t *k, gh_jwt_alg_t alg,
                   const unsigned char *msg, size_t msglen, const unsigned char *sig,
                   size_t siglen);
/* Signature into sig (GH_JOSE_MAX_SIG); returns its length or a negative errno. */
long gh_jose_sign(const gh_jwt_signing_key_t *key, gh_jwt_alg_t alg, const unsigned char *msg,
                  size_t msglen, unsigned char *sig, char *err, size_t errcap);
/* ECDSA: JOSE r||s to DER; -1 when r or s is 0 or >= the order. */
long gh_jose_ecdsa_to_der(const gh_jwk_t *k, const unsigned char *sig, size_t siglen,
                          unsigned char *der, size_t cap);

#endif
