/*
 * OAuth 2.0 clients without a store: their id and secret formats, the hash
 * of a secret, the checks of what a client is registered with, and the
 * comparison of a presented secret with a client's record. Pure functions
 * (no I/O, no globals), callable from any thread. The store that keeps
 * clients is gatehouse/store.h (gh_store_client_*); the user's view is
 * docs/issuer.md#clients.
 *
 * A client id gatehouse makes is public, and is what the client sends as
 * client_id (RFC 6749 section 2.2):
 *
 *     ghc_<16 characters of lower-case base32>      ghc_k7q2m4x9a3bcd5ef  (20)
 *
 * 80 random bits: ids are not secret, but two clients must never get the
 * same one (the store refuses a taken id and draws again). A secret is
 *
 *     ghs_<43 characters of base62>                  (47 characters)
 *
 * 256 random bits from RAND_bytes; "ghs_" so that secret scanners
 * recognise a leaked one. The store keeps SHA-256 of the whole secret,
 * never the secret: as for API keys, a plain fast hash is the right one,
 * since a secret of 256 random bits cannot be guessed from its hash
 * whatever the hash costs, and a slow password hash would only cost every
 * token request milliseconds of a worker's CPU.
 */
#ifndef GATEHOUSE_CLIENT_H
#define GATEHOUSE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define GH_CLIENT_ID_PREFIX "ghc_"
#define GH_CLIENT_ID_PREFIX_LEN 4
#define GH_CLIENT_ID_RAND_LEN 16
#define GH_CLIENT_ID_LEN (GH_CLIENT_ID_PREFIX_LEN + GH_CLIENT_ID_RAND_LEN)
#define GH_CLIENT_SECRET_PREFIX "ghs_"
#define GH_CLIENT_SECRET_PREFIX_LEN 4
#define GH_CLIENT_SECRET_RAND_LEN 43
#define GH_CLIENT_SECRET_LEN (GH_CLIENT_SECRET_PREFIX_LEN + GH_CLIENT_SECRET_RAND_LEN)
#define GH_CLIENT_HASH_LEN 32 /* SHA-256 */

/* Bounds of what a client is registered with (docs/issuer.md#clients). */
#define GH_CLIENT_NAME_MAX 128
#define GH_CLIENT_SCOPE_MAX 128          /* bytes of one scope */
#define GH_CLIENT_SCOPES_MAX 64          /* scopes per client */
#define GH_CLIENT_AUDIENCE_MAX 256       /* bytes of one audience */
#define GH_CLIENT_AUDIENCES_MAX 32       /* audiences per client */
#define GH_CLIENT_JWKS_MAX (32u * 1024)  /* bytes of a client's JWKS */
#define GH_CLIENT_TTL_MAX 86400          /* a per-client token lifetime: 1 s to 1 day */
#define GH_CLIENT_GRACE_MAX (30 * 86400) /* a rotated secret's grace: 0 to 30 days */
#define GH_CLIENT_GRACE_DEFAULT 86400

/* Client authentication methods (RFC 7591 section 2, token_endpoint_auth_method). */
enum {
    GH_CLIENT_AUTH_SECRET_BASIC = 1u << 0,    /* "client_secret_basic" */
    GH_CLIENT_AUTH_SECRET_POST = 1u << 1,     /* "client_secret_post" */
    GH_CLIENT_AUTH_PRIVATE_KEY_JWT = 1u << 2, /* "private_key_jwt" (RFC 7523) */
};
#define GH_CLIENT_AUTH_SECRET (GH_CLIENT_AUTH_SECRET_BASIC | GH_CLIENT_AUTH_SECRET_POST)
#define GH_CLIENT_AUTH_ALL (GH_CLIENT_AUTH_SECRET | GH_CLIENT_AUTH_PRIVATE_KEY_JWT)

/* A client's record. Strings are NUL-terminated. From the synchronous API
 * they are the caller's (gh_client_dispose); in a lookup callback they
 * are borrowed for the callback only. The hashes are here for the token
 * endpoint's comparison (gh_client_secret_check); they are never printed,
 * never put in a JSON document (gatehouse/store_json.h), never logged. */
typedef struct {
    char id[GH_CLIENT_ID_LEN + 1];
    char *name;            /* never NULL */
    char *scopes;          /* space-separated, "" for none */
    char *audiences;       /* space-separated, at least one */
    unsigned auth_methods; /* GH_CLIENT_AUTH_* bits, at least one */
    char *jwks;            /* the client's public keys (JSON text); NULL: none */
    int64_t token_ttl;     /* seconds; 0: the issuer's default */
    int64_t created_at;
    int64_t revoked_at; /* 0: active */
    int has_secret;     /* 0: a private_key_jwt client without a secret */
    uint8_t secret_hash[GH_CLIENT_HASH_LEN];
    /* The secret before the last rotate-secret, accepted while now <
     * prev_valid_until (0: none). */
    uint8_t prev_secret_hash[GH_CLIENT_HASH_LEN];
    int64_t prev_valid_until;
    int64_t secret_rotated_at; /* 0: never rotated */
} gh_client_t;

void gh_client_dispose(gh_client_t *c);
void gh_client_list_free(gh_client_t *c, size_t n);

/* 1 when id is exactly a client id gatehouse makes (prefix, 16 characters
 * of a-z and 2-7, nothing after). Anything else (other lengths, upper
 * case, a NUL inside, odd bytes) is 0: no store call is made for it. */
int gh_client_id_valid(const char *id);
/* The same for id[0..len) (a client_id from a request, not NUL-terminated). */
int gh_client_id_valid_n(const char *id, size_t len);
/* 1 when s[0..len) has the form of a secret (prefix, 43 base62). */
int gh_client_secret_valid_n(const char *s, size_t len);

/* A new id (NUL-terminated) from RAND_bytes. 0 or -EIO. */
int gh_client_id_generate(char out[GH_CLIENT_ID_LEN + 1]);
/* A new secret (NUL-terminated) from RAND_bytes. 0 or -EIO. */
int gh_client_secret_generate(char out[GH_CLIENT_SECRET_LEN + 1]);
/* SHA-256 of s[0..len) into out. */
void gh_client_secret_hash(const char *s, size_t len, uint8_t out[GH_CLIENT_HASH_LEN]);

/* Which of c's secrets s[0..len) is, at now:
 *   1  the current secret;
 *   2  the one before the last rotation, still in its grace
 *      (now < c->prev_valid_until);
 *   0  neither (or c has no secret, or s has not the form of a secret).
 * Both hashes are compared in constant time whatever the first says, so
 * the time taken does not tell which one matched or where a wrong secret
 * differs. Says nothing of c's state (revoked) or methods: the caller's. */
int gh_client_secret_check(const gh_client_t *c, const char *s, size_t len, int64_t now);

/* The same for a presented secret already hashed (hash of the whole
 * presented value, gh_client_secret_hash). */
int gh_client_secret_check_hash(const gh_client_t *c, const uint8_t hash[GH_CLIENT_HASH_LEN],
                                int64_t now);

typedef enum {
    GH_CLIENT_ACTIVE = 0,
    GH_CLIENT_REVOKED, /* revoked (at any time: clocks of hosts differ) */
} gh_client_state_t;

gh_client_state_t gh_client_state(const gh_client_t *c, int64_t now);
/* "active", "revoked". */
const char *gh_client_state_name(gh_client_state_t s);

/* ---- checks of what a client is registered with ----
 * Each returns NULL when acceptable, else why not (a static string). */

/* name: 1..128 bytes of UTF-8 without control characters, no space at
 * either end, not starting with = + - @ (CSV injection). */
const char *gh_client_check_name(const char *s);

/* Scopes as given ("a b", "a,b": separated by spaces and/or commas) into
 * their stored form: one space between scopes, in the given order. A scope
 * is RFC 6749 section 3.3's scope-token: 1..128 of %x21 / %x23-5B /
 * %x5D-7E (printable ASCII but '"' and '\\'); at most 64, none twice.
 * NULL or "" is no scope (""). Returns a new string (caller frees), or
 * NULL with *why set (static; "out of memory" too). */
char *gh_client_scopes_normalize(const char *in, const char **why);

/* Audiences likewise: separated by spaces and/or commas, at least one, at
 * most 32, none twice. An audience is a name ("orders") or an absolute URI
 * ("https://api.example.com/orders"): 1..256 bytes of printable ASCII but
 * '"', '\\' and '#' (an RFC 8707 resource has no fragment); one with a
 * ':' must start with a URI scheme (a letter, then letters, digits, + - .,
 * then ':'). */
char *gh_client_audiences_normalize(const char *in, const char **why);

/* 1 when the space-separated list `set` holds tok[0..len) exactly. */
int gh_client_list_has(const char *set, const char *tok, size_t len);

/* Authentication methods as names ("client_secret_basic private_key_jwt",
 * spaces and/or commas) into bits. "" or NULL: 0 (the default, decided by
 * gh_client_auth_default). Unknown names and repeats are refused: -EINVAL
 * with *why. */
int gh_client_auth_parse(const char *in, unsigned *out, const char **why);
/* The default for a client registered with (has_jwks 1) or without keys:
 * private_key_jwt alone, or the two secret methods. */
unsigned gh_client_auth_default(int has_jwks);
/* The names of bits, space-separated, in a fixed order, into buf (at
 * least 64 bytes). Returns buf. */
char *gh_client_auth_format(unsigned bits, char *buf, size_t cap);

/* A client's JWKS (private_key_jwt): JSON text of at most
 * GH_CLIENT_JWKS_MAX bytes without NUL, which gh_jwks_parse accepts with
 * every key usable for verifying (a key it would skip, a private key
 * among them, refuses the set: registering it is a mistake to point out,
 * not to pass over), no symmetric key, at least one key. why gets a
 * sentence (cap bytes). Returns 0 or -EINVAL. */
int gh_client_check_jwks(const char *jwks, size_t len, char *why, size_t cap);

#endif
