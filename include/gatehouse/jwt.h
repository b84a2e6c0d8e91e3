/*
 * JWT (RFC 7519) in JWS compact form (RFC 7515) with JWK key sets (RFC 7517),
 * the JWA algorithms of RFC 7518 and EdDSA (RFC 8037), checked per RFC 8725.
 * No networking, no config: key sets come in as bytes, tokens as bytes.
 *
 * The hot path is gh_jwt_parse -> gh_jwt_verifier_verify -> gh_jwt_check_claims.
 * Keys are prepared once when the set is parsed (EVP_PKEY built from
 * OSSL_PARAMs, digests fetched once), so a verification does no algorithm
 * fetches; a per-worker gh_jwt_verifier_t also keeps the OpenSSL contexts.
 *
 * Errors: int functions return 0 or a negative errno and set *reason to a
 * gh_jwt_reason_t; gh_jwt_reason_text gives its short text for
 * error_description, logs and metrics ("expired", "bad signature" ...).
 * Never the token.
 *   -EINVAL  the token is invalid (401 invalid_token)
 *   -ENOKEY  no key in the set has the token's kid (401; worth a JWKS refresh)
 *   -EACCES  a valid token lacks a required claim value (403 insufficient_scope)
 *   -ENOMEM  allocation failure (503)
 */
#ifndef GATEHOUSE_JWT_H
#define GATEHOUSE_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#define GH_JWT_MAX_TOKEN (16 * 1024) /* bytes of compact serialization */
#define GH_JWKS_MAX_DOC (1024 * 1024)
#define GH_JWKS_MAX_KEYS 100
#define GH_JWT_MAX_KID 256
#define GH_JWT_MAX_TYP 127
#define GH_JWKS_MIN_RSA_BITS 2048
/* The largest NumericDate accepted: 9999-12-31T23:59:59Z. */
#define GH_JWT_MAX_DATE 253402300799.0

/* ---- refusal reasons ---- */

/* Why a token was refused: the library's reasons and the authn filter's, in
 * one list so that a metric series, a description and a status come from one
 * table (gh_jwt_reason_text, gh_jwt_reason_status). */
typedef enum {
    GH_JWT_OK = 0,
    GH_JWT_MISSING_TOKEN,
    GH_JWT_MULTIPLE_TOKENS,
    GH_JWT_UNKNOWN_ISSUER,
    GH_JWT_KEYS_UNAVAILABLE,
    GH_JWT_ALG_NOT_ALLOWED,
    GH_JWT_TOKEN_TOO_LARGE,
    GH_JWT_MALFORMED_TOKEN,
    GH_JWT_MALFORMED_HEADER,
    GH_JWT_MALFORMED_KID,
    GH_JWT_MALFORMED_PAYLOAD,
    GH_JWT_MALFORMED_SIGNATURE,
    GH_JWT_ALG_NONE,
    GH_JWT_UNSUPPORTED_ALG,
    GH_JWT_UNSUPPORTED_CRIT,
    GH_JWT_BAD_SIGNATURE,
    GH_JWT_NO_KEY_FOR_ALG,
    GH_JWT_UNKNOWN_KEY,
    GH_JWT_WRONG_ISSUER,
    GH_JWT_WRONG_AUDIENCE,
    GH_JWT_MISSING_EXP,
    GH_JWT_EXPIRED,
    GH_JWT_NOT_YET_VALID,
    GH_JWT_ISSUED_IN_FUTURE,
    GH_JWT_MALFORMED_CLAIM,
    GH_JWT_MISSING_IAT,
    GH_JWT_TOO_OLD,
    GH_JWT_WRONG_TYP,
    GH_JWT_INSUFFICIENT_CLAIMS,
    GH_JWT_REVOKED, /* issuer: self: revoked through the token service (RFC 7009) */
    GH_JWT_OUT_OF_MEMORY,
    GH_JWT_REASON_COUNT
} gh_jwt_reason_t;

/* "expired" ...; "ok" for GH_JWT_OK. Static string. */
const char *gh_jwt_reason_text(gh_jwt_reason_t r);
/* The HTTP status of a refusal for r: 401, 403 (insufficient claims), 503
 * (keys unavailable, out of memory); 200 for GH_JWT_OK. */
int gh_jwt_reason_status(gh_jwt_reason_t r);

/* ---- algorithms ---- */

typedef enum {
    GH_JWT_ALG_UNKNOWN = 0,
    GH_JWT_RS256,
    GH_JWT_RS384,
    GH_JWT_RS512,
    GH_JWT_PS256,
    GH_JWT_PS384,
    GH_JWT_PS512,
    GH_JWT_ES256,
    GH_JWT_ES384,
    GH_JWT_ES512,
    GH_JWT_EDDSA, /* Ed25519 or Ed448: the key's curve decides (RFC 8037 §3.1) */
    GH_JWT_HS256,
    GH_JWT_HS384,
    GH_JWT_HS512,
    GH_JWT_ALG_COUNT
} gh_jwt_alg_t;

/* "RS256" ...; NULL for GH_JWT_ALG_UNKNOWN. Static string. */
const char *gh_jwt_alg_name(gh_jwt_alg_t alg);
/* Exact, case-sensitive match (RFC 7515 §4.1.1); GH_JWT_ALG_UNKNOWN otherwise,
 * which includes "none" in every casing. */
gh_jwt_alg_t gh_jwt_alg_from_name(const char *name, size_t len);

/* ---- key sets ---- */

typedef struct gh_jwks_s gh_jwks_t;

typedef struct {
    /* Accept "oct" keys (HS256/384/512). Off by default: a symmetric key in a
     * set fetched from a URL is shared with whoever can read that URL. */
    int allow_symmetric;
} gh_jwks_opts_t;

/*
 * Parses a JWKS ({"keys":[...]}) or a single JWK. Each key is checked and
 * prepared; a key that cannot be used is skipped with a warning (see
 * gh_jwks_warning): "use" other than "sig", "key_ops" without "verify",
 * unknown kty/crv/alg, RSA under 2048 bits, an EC point not on its curve,
 * "oct" without opts->allow_symmetric, private members (d, p, q, dp, dq, qi,
 * oth; k is the oct key itself) in a public set. Whole-document errors
 * (malformed JSON, duplicate member names, over 1 MiB or 100 keys, no usable
 * key at all) return NULL with a message in err (NUL-terminated, truncated to
 * errcap). json is borrowed; opts may be NULL (defaults). Returns a new set
 * with one reference, generation 0.
 */
gh_jwks_t *gh_jwks_parse(const char *json, size_t len, const gh_jwks_opts_t *opts, char *err,
                         size_t errcap);
/* Takes one more reference (atomic; any thread); returns jwks. */
gh_jwks_t *gh_jwks_ref(gh_jwks_t *jwks);
/* Drops one reference (atomic; any thread); the last one frees. NULL is a no-op. */
void gh_jwks_unref(gh_jwks_t *jwks);
/* Usable keys. */
size_t gh_jwks_count(const gh_jwks_t *jwks);
/* Whether a and b hold the same usable keys in the same order (kid, type,
 * alg and key material; warnings aside). NULL is never the same. A refresh
 * that fetched the same keys keeps the old set's generation, so the workers'
 * verified-token caches survive it. */
int gh_jwks_same_keys(const gh_jwks_t *a, const gh_jwks_t *b);
/* The generation is the caller's: set it once, before the set is shared (the
 * verified-token cache keys on it so a new set invalidates old entries). */
void gh_jwks_set_generation(gh_jwks_t *jwks, uint64_t generation);
uint64_t gh_jwks_generation(const gh_jwks_t *jwks);
/* Skipped-key warnings, e.g. "key 2 (kid \"old\"): RSA key of 1024 bits, under 2048".
 * Borrowed strings, valid while the set lives. */
size_t gh_jwks_warning_count(const gh_jwks_t *jwks);
const char *gh_jwks_warning(const gh_jwks_t *jwks, size_t i);

typedef struct {
    const char *kid; /* NULL when the key has none */
    const char *kty; /* "RSA", "EC", "OKP", "oct" */
    const char *crv; /* "P-256", "Ed25519" ...; NULL for RSA and oct */
    const char *alg; /* the key's "alg" member, NULL when absent */
    int bits;        /* modulus, curve or secret size */
} gh_jwk_info_t;

/* Describes usable key i (< gh_jwks_count); strings borrowed from the set.
 * Returns 0, or -ERANGE. For `token inspect` and /ready. */
int gh_jwks_key_info(const gh_jwks_t *jwks, size_t i, gh_jwk_info_t *out);

/* ---- tokens ---- */

struct gh_jose_json_rec_s; /* src/jose/json.h */

typedef struct {
    gh_jwt_alg_t alg;
    int has_kid;
    char kid[GH_JWT_MAX_KID + 1];
    char typ[GH_JWT_MAX_TYP + 1]; /* "" when absent */
    /* The claims' top level, indexed by a strict reader (no jansson tree
     * on the hot path): read them with gh_jwt_claim_string,
     * gh_jwt_claim_number, gh_jwt_scopes; gh_jwt_claim and gh_jwt_payload
     * build a jansson tree on first use. */
    const struct gh_jose_json_rec_s *claims;
    size_t nclaims;
    json_t *tree; /* owned; NULL until gh_jwt_payload builds it */
    /* One allocation holding the claims index, a copy of the token, the
     * decoded signature and the claims' text. */
    char *buf;
    const char *tok;    /* the token's copy, in buf */
    size_t signing_len; /* header.payload: the JWS signing input at tok */
    size_t payload_b64_off, payload_b64_len;
    const unsigned char *sig;
    size_t sig_len;
} gh_jwt_t;

/*
 * Parses a compact JWS carrying a JWT. Strict: three base64url segments
 * without padding or whitespace and with canonical trailing bits, at most
 * GH_JWT_MAX_TOKEN bytes; the header a JSON object with a known "alg" (never
 * "none"), no "crit" (RFC 7515 §4.1.11: gatehouse understands no extension),
 * no "b64" but true (RFC 7797), "kid" a string of at most 256 bytes; the
 * payload a JSON object without duplicate member names. Both are read by
 * src/jose/json.h's strict reader: no duplicate names at any depth, UTF-8
 * and escapes checked, at most 64 levels of nesting. "jku", "x5u", "jwk"
 * and "x5c" are tolerated and never used (RFC 8725 §3.10). tok is borrowed
 * (copied). On success *out owns memory released by gh_jwt_dispose; on
 * failure *out needs no dispose. Returns 0, -EINVAL or -ENOMEM.
 */
int gh_jwt_parse(const char *tok, size_t len, gh_jwt_t *out, gh_jwt_reason_t *reason);
void gh_jwt_dispose(gh_jwt_t *t);

/* Per-worker scratch: reusable digest context and a small cache of prepared
 * OpenSSL verification contexts. Not thread-safe: one per thread. The cache
 * holds references to at most a few keys, so a retired key set's keys live
 * until evicted or the verifier is freed. */
typedef struct gh_jwt_verifier_s gh_jwt_verifier_t;
gh_jwt_verifier_t *gh_jwt_verifier_new(void);
void gh_jwt_verifier_free(gh_jwt_verifier_t *v);
/* gh_jwt_parse with v's memo of the last few JOSE headers it read: tokens of
 * one issuer share their header segment, which is then compared byte for
 * byte instead of decoded and parsed again. Same results as gh_jwt_parse;
 * v may be NULL. */
int gh_jwt_verifier_parse(gh_jwt_verifier_t *v, const char *tok, size_t len, gh_jwt_t *out,
                          gh_jwt_reason_t *reason);

/*
 * Checks the signature against keys (borrowed). With a kid, only the key with
 * that kid is tried (none: -ENOKEY "unknown key"); without one, each key whose
 * type fits the algorithm is tried. A key's "alg", when present, must equal the
 * token's, and the key type must fit the algorithm (RSA for RS/PS, EC on the
 * matching curve for ES, OKP for EdDSA, oct for HS): so a token cannot make an
 * RSA public key serve as an HMAC secret (RFC 8725 §2.1). ECDSA signatures
 * with r or s zero or not below the group order are refused before OpenSSL
 * sees them (CVE-2022-21449 class). v may be NULL (slower: contexts are made
 * per call). Returns 0, -EINVAL ("bad signature", "no key for algorithm" ...),
 * -ENOKEY or -ENOMEM.
 */
int gh_jwt_verifier_verify(gh_jwt_verifier_t *v, const gh_jwt_t *t, const gh_jwks_t *keys,
                           gh_jwt_reason_t *reason);
int gh_jwt_verify(const gh_jwt_t *t, const gh_jwks_t *keys, gh_jwt_reason_t *reason);

/* ---- claims ---- */

typedef enum {
    GH_JWT_CLAIM_EXACT,   /* the claim equals values[0] */
    GH_JWT_CLAIM_ONE_OF,  /* a scalar claim equals one of values; an array claim holds one */
    GH_JWT_CLAIM_CONTAINS /* an array, or a space-separated string (scope), holds every
                             one of values */
} gh_jwt_claim_op_t;

/* Values compare with the claim rendered as by gh_jwt_claim_render for scalars:
 * "true" matches true, "42" matches 42. */
typedef struct {
    const char *path; /* dotted for nested claims: "realm_access.roles" */
    gh_jwt_claim_op_t op;
    const char *const *values;
    size_t nvalues;
} gh_jwt_claim_req_t;

typedef struct {
    const char *issuer;           /* NULL: not checked */
    const char *const *audiences; /* aud (strings only) must hold one; none: not checked */
    size_t naudiences;
    int64_t skew;     /* seconds of clock leeway, applied to exp, nbf, iat */
    int exp_optional; /* exp may be absent (it is still honoured when present) */
    const char *typ;  /* required "typ", e.g. "at+jwt"; NULL: not checked */
    const gh_jwt_claim_req_t *required;
    size_t nrequired;
    int64_t max_age; /* > 0: iat is required and now - iat must not exceed it (+ skew) */
} gh_jwt_claims_policy_t;

/*
 * Checks registered claims, then required ones, at time now (seconds since
 * the epoch). -EINVAL with reason "wrong issuer", "wrong audience", "missing
 * exp", "expired", "not yet valid", "issued in the future", "malformed claim",
 * "missing iat", "token too old", "wrong typ"; -EACCES with "insufficient
 * claims" for a required claim. exp, nbf and iat must be numbers in
 * [0, GH_JWT_MAX_DATE] ("malformed claim" otherwise), so a caller may convert
 * them to int64_t. detail
 * (may be NULL) gets the claim concerned, and for -EACCES what was needed
 * ("scope contains orders.read"), for error_description and WWW-Authenticate.
 */
int gh_jwt_check_claims(const gh_jwt_t *t, const gh_jwt_claims_policy_t *p, int64_t now,
                        gh_jwt_reason_t *reason, char *detail, size_t detail_cap);

/* A top-level string claim, decoded and NUL-terminated (borrowed from the
 * token; it holds no NUL), with its length in *len (may be NULL); NULL when
 * absent or not a string. No tree is built. */
const char *gh_jwt_claim_string(const gh_jwt_t *t, const char *name, size_t *len);
/* A top-level number claim into *out: 0, 1 when absent, -1 when not a
 * number. No tree is built. */
int gh_jwt_claim_number(const gh_jwt_t *t, const char *name, double *out);

/* The claims as a jansson object, built on the first call from the
 * payload (a token is used by one thread). Borrowed from the token; NULL
 * when out of memory. */
json_t *gh_jwt_payload(const gh_jwt_t *t);

/* The claim at a dotted path, or NULL. A member whose own name contains dots
 * ("https://example.com/roles") is found too: at each level the longest
 * matching name wins. Borrowed from the token; builds the tree (above). */
json_t *gh_jwt_claim(const gh_jwt_t *t, const char *path);
/* The same lookup in any JSON object (claims decoded by someone else: the
 * rate_limits filter's claim keys). Borrowed from root; NULL when absent. */
json_t *gh_jwt_json_path(json_t *root, const char *path, size_t len);

/* gh_jwt_claim rendered by gh_jwt_claim_render, without building the tree
 * when path names a top-level string. Returns the length, -ENOENT when the
 * claim is absent, -ENOMEM, or gh_jwt_claim_render's errors. */
int gh_jwt_claim_render_path(const gh_jwt_t *t, const char *path, char *buf, size_t cap);

/*
 * Renders a claim value for an HTTP header into buf: strings as they are,
 * arrays joined by "," (elements rendered the same way, nested arrays and
 * objects as compact JSON), numbers and booleans as JSON text, objects and
 * null as compact JSON. Returns the length (buf NUL-terminated), -ENOSPC when
 * cap is too small, or -EINVAL when the text holds a control character
 * (CR, LF, NUL ... would split or forge a header), a string starts or ends
 * with a space or tab (HTTP trims them: " admin" would read as "admin"),
 * or an array element's rendering holds a ',' (it would read as several
 * elements).
 */
int gh_jwt_claim_render(const json_t *v, char *buf, size_t cap);

/* The payload segment as sent (base64url JSON), for a "whole payload" header.
 * Borrowed from the token; not NUL-terminated. */
const char *gh_jwt_payload_b64(const gh_jwt_t *t, size_t *len);

typedef struct {
    const char *p;
    size_t len;
} gh_jwt_slice_t;

/* The token's scopes: "scope" split on spaces (RFC 8693 §4.2), else the
 * strings of an "scp" array (but those holding a space, or empty: they
 * would not survive being joined with spaces), else an "scp" string. Fills up to max slices
 * (borrowed from the token) and returns how many there are in all (may exceed max). */
size_t gh_jwt_scopes(const gh_jwt_t *t, gh_jwt_slice_t *out, size_t max);

/* ---- signing: `gatehouse token mint`, the token endpoint, tests ---- */

/* A private key (RSA, EC, Ed25519/Ed448) or an HMAC secret. */
typedef struct gh_jwt_signing_key_s gh_jwt_signing_key_t;

/* PEM private key (PKCS#8 or traditional). pem borrowed. */
gh_jwt_signing_key_t *gh_jwt_signing_key_load_pem(const char *pem, size_t len, char *err,
                                                  size_t errcap);
/* A private JWK (RSA with d and the CRT members, EC or OKP with d, or oct). */
gh_jwt_signing_key_t *gh_jwt_signing_key_from_jwk(const char *json, size_t len, char *err,
                                                  size_t errcap);
/* Copies secret. */
gh_jwt_signing_key_t *gh_jwt_signing_key_from_secret(const void *secret, size_t len);
/* A fresh key fit for alg: RSA 2048 (bits 0) or bits, the alg's curve, Ed25519
 * for EdDSA (Ed448 when bits is 448), a hash-sized random secret for HS. */
gh_jwt_signing_key_t *gh_jwt_signing_key_generate(gh_jwt_alg_t alg, int bits, char *err,
                                                  size_t errcap);
/* Takes a reference to pkey (the caller keeps its own). */
gh_jwt_signing_key_t *gh_jwt_signing_key_from_pkey(EVP_PKEY *pkey);
void gh_jwt_signing_key_free(gh_jwt_signing_key_t *k);
/* Borrowed; NULL for an HMAC secret. */
EVP_PKEY *gh_jwt_signing_key_pkey(const gh_jwt_signing_key_t *k);

/* The public half as a JWKS document {"keys":[{...}]} with "use":"sig", and
 * kid and alg when given (NULL / GH_JWT_ALG_UNKNOWN to omit). An HMAC secret
 * comes out as an "oct" key holding k: only for tests and trusted inline
 * config. Returns a new string (free()), or NULL with err. */
char *gh_jwt_signing_key_jwks(const gh_jwt_signing_key_t *k, const char *kid, gh_jwt_alg_t alg,
                              char *err, size_t errcap);

/*
 * Signs: BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature),
 * with both inputs taken byte for byte (header NULL means {"alg":"<alg>","typ":
 * "JWT"}). The header is not checked against alg, so tests can build hostile
 * tokens; the key must fit alg. Returns a new NUL-terminated string (free()),
 * or NULL with err.
 */
char *gh_jwt_sign(const char *header_json, const char *payload, size_t payload_len,
                  const gh_jwt_signing_key_t *key, gh_jwt_alg_t alg, char *err, size_t errcap);

#endif
