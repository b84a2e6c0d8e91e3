/*
 * Internals shared by the files of src/jose, one job each:
 *   alg.c     the algorithm table, key/algorithm fit, process-wide digests
 *             and curves;
 *   keyset.c  JWK sets: parsing and preparing public keys (and the JWK
 *             member and EVP_PKEY helpers sign.c reuses for private JWKs);
 *   verify.c  signature checks over prepared keys, with the per-worker
 *             verifier (digest context, prepared contexts, JOSE header memo);
 *   sign.c    private signing keys and signing (`token mint`, tests);
 *   jwt.c     compact tokens: parsing, claims, claims as header values.
 * Nothing here is public: include/gatehouse/jwt.h is the module's API.
 */
#ifndef GATEHOUSE_AUTH_JOSE_H
#define GATEHOUSE_AUTH_JOSE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

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

/* ---- alg.c ---- */

/* A NIST curve: its JOSE and OpenSSL names, coordinate size and group order
 * (big-endian, filled by gh_jose_init). */
typedef struct {
    int nid;
    const char *crv;   /* JOSE name */
    const char *group; /* OpenSSL group name */
    size_t coord;
    unsigned char order[GH_EC_MAX_COORD];
} gh_jose_curve_t;

#define GH_JOSE_NCURVES 3
extern gh_jose_curve_t gh_jose_curves[GH_JOSE_NCURVES];

/* Prepares the process-wide state once (any thread); 1 when usable. */
int gh_jose_init(void);
/* The process-wide digests, fetched once: 0 SHA-256, 1 SHA-384, 2 SHA-512. */
const EVP_MD *gh_jose_md(int idx);
/* "SHA2-256" ...; NULL for -1 (EdDSA). Static string. */
const char *gh_jose_md_name(int idx);
/* Index in gh_jose_curves of a JOSE curve name ("P-256"), or -1. */
int gh_jose_curve_index(const char *crv);
/* Whether key k may check alg: type, curve, the key's own "alg", HMAC length. */
int gh_jose_key_fits(const gh_jwk_t *k, gh_jwt_alg_t alg);
/* snprintf into err when err is not NULL and cap > 0. */
void gh_jose_seterr(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* p without its leading zero bytes; *len shrinks to match. */
static inline const unsigned char *gh_jose_skip_zeros(const unsigned char *p, size_t *len)
{
    while (*len > 0 && *p == 0) {
        p++;
        (*len)--;
    }
    return p;
}

/* ---- keyset.c: JWK members and key building, shared with sign.c ---- */

/* Decodes base64url member name of o into a new buffer (free(); the caller
 * clears it first when it is secret). NULL when absent, or when not a valid
 * base64url string (*bad = 1) or out of memory (*bad = -ENOMEM). */
unsigned char *gh_jose_member_b64(json_t *o, const char *name, size_t *len, int *bad);
/* Pushes big-endian p as a BIGNUM parameter; the BIGNUM goes to *keep (the
 * caller frees it after the builder). Returns 0 or -1. */
int gh_jose_push_bn(OSSL_PARAM_BLD *bld, const char *key, const unsigned char *p, size_t len,
                    BIGNUM **keep);
/* An EVP_PKEY of type from bld's parameters (a new reference), or NULL. */
EVP_PKEY *gh_jose_pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, int selection);
/* An EC key on gh_jose_curves[ci] from x and y (coord bytes each), with
 * private d when not NULL; the point is checked. A new reference, or NULL. */
EVP_PKEY *gh_jose_ec_key(int ci, const unsigned char *x, const unsigned char *y,
                         const unsigned char *d, size_t dlen);

/* ---- verify.c ---- */

/* v's memo (verify.c owns the verifier; jwt.c reads and fills the memo). */
gh_jose_memo_t *gh_jose_memo(gh_jwt_verifier_t *v);
/* 1 valid, 0 not, -ENOMEM. v may be NULL. */
int gh_jose_verify(gh_jwt_verifier_t *v, const gh_jwk_t *k, gh_jwt_alg_t alg,
                   const unsigned char *msg, size_t msglen, const unsigned char *sig,
                   size_t siglen);
/* ECDSA: JOSE r||s to DER; -1 when r or s is 0 or >= the order. */
long gh_jose_ecdsa_to_der(const gh_jwk_t *k, const unsigned char *sig, size_t siglen,
                          unsigned char *der, size_t cap);

/* ---- sign.c ---- */

/* Signature into sig (GH_JOSE_MAX_SIG); returns its length or a negative errno. */
long gh_jose_sign(const gh_jwt_signing_key_t *key, gh_jwt_alg_t alg, const unsigned char *msg,
                  size_t msglen, unsigned char *sig, char *err, size_t errcap);

#endif
