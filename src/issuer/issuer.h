/*
 * The OAuth 2.0 token service's I/O-free core (src/issuer/): what the
 * issuer filter calls, on a worker thread, between reading a buffered
 * request and writing the reply. No sockets, no store, no clock: the
 * caller gives `now` (seconds since the epoch) and fills the client view
 * from its store record. docs/internals/issuer.md gives every rule its
 * RFC section and says what was decided where the RFCs leave a choice.
 *
 *   request.c    token (RFC 6749 §4.4), introspection (RFC 7662) and
 *                revocation (RFC 7009) requests: method, Content-Type,
 *                Authorization (Basic, RFC 6749 §2.3.1), the form body
 *                (form.h), which client authentication method was used;
 *   auth.c       client authentication against a client view: secrets
 *                (SHA-256, constant time, rotation grace), private_key_jwt
 *                (RFC 7523 §3) with the replay cache (replay.c);
 *   grant.c      scope (RFC 6749 §3.3) and audience/resource (RFC 8707,
 *                RFC 8693 §2.1) against the client's;
 *   mint.c       RFC 9068 access tokens and the RFC 6749 §5.1 response;
 *   inspect.c    reading one of our tokens back: introspection answers
 *                and revocation decisions;
 *   reply.c      error bodies (RFC 6749 §5.2) and the response fields.
 *
 * The order of calls for a token request:
 *   gh_oauth_request_parse -> (look the client up by req.client_id) ->
 *   gh_oauth_client_authenticate -> gh_oauth_grant -> gh_oauth_mint;
 * any failure fills a gh_oauth_error_t, which gh_oauth_reply_error turns
 * into the reply.
 *
 * Ownership: parsed requests, token infos and minted tokens own memory
 * released by their _dispose (which also wipes secrets); everything else
 * is borrowed for the call unless a comment says otherwise. Every
 * function may run on any thread; only the replay cache is shared (it
 * locks).
 */
#ifndef GATEHOUSE_ISSUER_ISSUER_H
#define GATEHOUSE_ISSUER_ISSUER_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/h1.h>
#include <gatehouse/jwt.h>

#include "issuer/form.h"

#define GH_OAUTH_MAX_BODY (32 * 1024)       /* a token, introspection or revocation body */
#define GH_OAUTH_MAX_CLIENT_ID 128          /* bytes of [A-Za-z0-9._~-] */
#define GH_OAUTH_MAX_SECRET 256             /* bytes of a presented client secret */
#define GH_OAUTH_MAX_AUTHORIZATION 1024     /* bytes of an Authorization field value */
#define GH_OAUTH_MAX_SCOPE 4096             /* bytes of a scope parameter */
#define GH_OAUTH_MAX_SCOPES 64              /* scope tokens requested or granted */
#define GH_OAUTH_MAX_TARGETS 8              /* audience + resource values requested or granted */
#define GH_OAUTH_MAX_TARGET 512             /* bytes of one audience or resource */
#define GH_OAUTH_MAX_JTI 256                /* bytes of an assertion's jti */
#define GH_OAUTH_MAX_ASSERTION_LIFETIME 300 /* default bound on exp - now of an assertion */

#define GH_OAUTH_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

/* ---- errors (RFC 6749 §5.2, RFC 8707 §2, RFC 7009 §2.2.1) ---- */

typedef enum {
    GH_OAUTH_OK = 0,
    GH_OAUTH_INVALID_REQUEST,         /* 400 (405 wrong method, 413 body too large) */
    GH_OAUTH_INVALID_CLIENT,          /* 401 with WWW-Authenticate: Basic */
    GH_OAUTH_INVALID_GRANT,           /* 400; not produced for client_credentials */
    GH_OAUTH_UNAUTHORIZED_CLIENT,     /* 400 */
    GH_OAUTH_UNSUPPORTED_GRANT_TYPE,  /* 400 */
    GH_OAUTH_INVALID_SCOPE,           /* 400 */
    GH_OAUTH_INVALID_TARGET,          /* 400 */
    GH_OAUTH_UNSUPPORTED_TOKEN_TYPE,  /* 400 */
    GH_OAUTH_SERVER_ERROR,            /* 500 (a key that cannot sign, a bad client record) */
    GH_OAUTH_TEMPORARILY_UNAVAILABLE, /* 503 (out of memory, replay cache full) */
    GH_OAUTH_ERROR_COUNT
} gh_oauth_code_t;

/* A refusal: the error code, its HTTP status and an error_description
 * (RFC 6749 §5.2: printable ASCII without '"' and '\'; only static text
 * and parameter names gatehouse knows go in, never request bytes). */
typedef struct {
    gh_oauth_code_t code;
    int status;
    char desc[128];
} gh_oauth_error_t;

/* "invalid_request" ...; NULL for GH_OAUTH_OK. Static string. */
const char *gh_oauth_code_name(gh_oauth_code_t code);

/* ---- requests (request.c) ---- */

typedef enum {
    GH_OAUTH_TOKEN = 0,  /* grant_type, scope, audience, resource */
    GH_OAUTH_INTROSPECT, /* token, token_type_hint */
    GH_OAUTH_REVOKE,     /* token, token_type_hint */
} gh_oauth_endpoint_t;

/* Client authentication methods (RFC 7591 §2 names); also bits of
 * gh_oauth_client_t.auth_methods. */
typedef enum {
    GH_OAUTH_AUTH_NONE = 0,
    GH_OAUTH_AUTH_SECRET_BASIC = 1,
    GH_OAUTH_AUTH_SECRET_POST = 2,
    GH_OAUTH_AUTH_PRIVATE_KEY_JWT = 4,
} gh_oauth_auth_method_t;

/* "client_secret_basic" ...; "none". Static string. */
const char *gh_oauth_auth_method_name(gh_oauth_auth_method_t m);

typedef enum {
    GH_OAUTH_HINT_NONE = 0,
    GH_OAUTH_HINT_ACCESS_TOKEN,
    GH_OAUTH_HINT_REFRESH_TOKEN,
    GH_OAUTH_HINT_OTHER, /* a value gatehouse does not know */
} gh_oauth_hint_t;

/* What the filter read from the stream; borrowed for the call. */
typedef struct {
    const char *method;
    size_t method_len;
    const gh_h1_header_t *headers; /* every request field, in order, repeats kept */
    size_t nheaders;
    const char *body; /* the whole buffered body */
    size_t body_len;
} gh_oauth_http_t;

typedef struct {
    gh_oauth_endpoint_t endpoint;
    gh_oauth_auth_method_t auth_method;
    /* The client's id, NUL-terminated, 1..GH_OAUTH_MAX_CLIENT_ID bytes of
     * [A-Za-z0-9._~-]: from Basic, the client_id parameter, or the
     * assertion's iss (= sub). Look the client up by it. */
    const char *client_id;
    size_t client_id_len;
    /* client_secret_basic and client_secret_post: the secret as presented
     * (decoded), NUL-terminated. NULL otherwise. */
    const char *secret;
    size_t secret_len;
    /* private_key_jwt: the assertion, parsed but not yet verified. */
    int has_assertion;
    gh_jwt_t assertion;

    /* token endpoint */
    const char *scope; /* the scope parameter as sent, NULL when absent */
    size_t scope_len;
    const char *scopes[GH_OAUTH_MAX_SCOPES]; /* its tokens, NUL-terminated, duplicates dropped */
    size_t nscopes;
    const char *targets[GH_OAUTH_MAX_TARGETS]; /* audience then resource values, deduplicated */
    size_t ntargets;

    /* introspection and revocation */
    const char *token; /* NUL-terminated */
    size_t token_len;
    gh_oauth_hint_t hint;

    /* private: the decoded body and credentials (wiped by dispose) */
    gh_form_t form;
    char *buf;
    size_t buf_len;
} gh_oauth_request_t;

/*
 * Reads a request to endpoint ep. POST only (405 otherwise); exactly one
 * Content-Type, application/x-www-form-urlencoded with any well-formed
 * parameters but charset other than utf-8; at most one Authorization, and
 * that one Basic; the body per form.h; the parameters ep reads present at
 * most once (audience and resource excepted), without control bytes; one
 * client authentication method, and one at all. For GH_OAUTH_TOKEN also
 * grant_type (client_credentials only), the syntax of scope (RFC 6749
 * §3.3: invalid_scope) and of audience and resource (an absolute URI
 * without fragment: invalid_target). For the others token is required.
 * On success *out owns memory (gh_oauth_request_dispose); on failure *out
 * needs no dispose and err says why. Returns 0 or -1.
 */
int gh_oauth_request_parse(gh_oauth_endpoint_t ep, const gh_oauth_http_t *http,
                           gh_oauth_request_t *out, gh_oauth_error_t *err);
void gh_oauth_request_dispose(gh_oauth_request_t *r);

/* Whether id[0 .. len) is a client id gatehouse accepts: 1..128 bytes of
 * RFC 3986 unreserved characters. Clients must be created with such ids. */
int gh_oauth_client_id_valid(const char *id, size_t len);

/* ---- clients (auth.c, grant.c) ---- */

typedef enum {
    GH_OAUTH_CLIENT_ACTIVE = 0,
    GH_OAUTH_CLIENT_REVOKED,
} gh_oauth_client_status_t;

#define GH_OAUTH_GRANT_CLIENT_CREDENTIALS 1u

/*
 * A client as the issuer needs it, filled by the caller from its store
 * record; every pointer borrowed for the call.
 */
typedef struct {
    const char *id; /* NUL-terminated */
    gh_oauth_client_status_t status;
    /* GH_OAUTH_AUTH_* bits the client may use; 0: every method it has
     * credentials for (a secret: basic and post; jwks: private_key_jwt). */
    unsigned auth_methods;
    /* GH_OAUTH_GRANT_* bits; without client_credentials: unauthorized_client. */
    unsigned grant_types;
    int has_secret;
    unsigned char secret_hash[32]; /* SHA-256 of the secret */
    /* After a secret rotation the previous secret stays valid until
     * previous_valid_until (exclusive; 0: no previous secret). */
    unsigned char previous_hash[32];
    int64_t previous_valid_until;
    const gh_jwks_t *jwks; /* public keys for private_key_jwt; NULL: none */
    /* Scopes it may have; the token's scope when it asks for none. */
    const char *const *scopes;
    size_t nscopes;
    /* Audiences it may ask for; the first is its default. */
    const char *const *audiences;
    size_t naudiences;
    /* It may introspect any token, not only its own. */
    int may_introspect;
} gh_oauth_client_t;

typedef struct gh_oauth_replay_s gh_oauth_replay_t;

typedef struct {
    /* The token endpoint URL and the issuer identifier: an assertion's aud
     * must hold one of them (RFC 7523 §3 point 3). NUL-terminated. */
    const char *token_endpoint;
    const char *issuer;
    int64_t skew;                   /* seconds of leeway on exp, nbf, iat */
    int64_t max_assertion_lifetime; /* exp - now bound; 0: GH_OAUTH_MAX_ASSERTION_LIFETIME */
    gh_jwt_verifier_t *verifier;    /* the worker's; may be NULL */
    /* The in-process replay cache (replay.c), or NULL: then the caller
     * must claim the result's jti elsewhere (a fleet's store) before it
     * answers. */
    gh_oauth_replay_t *replay;
} gh_oauth_auth_conf_t;

typedef struct {
    /* private_key_jwt: the assertion's jti (borrowed from the request) and
     * until when it must be remembered (exp + skew). NULL otherwise. */
    const char *jti;
    size_t jti_len;
    int64_t jti_until;
} gh_oauth_auth_result_t;

/*
 * Authenticates r's client against c, the client record for r->client_id,
 * or NULL when there is none (then a secret is still hashed and compared
 * with a dummy, so the time taken does not say whether the client exists).
 * Secrets: SHA-256 of the presented secret compared with CRYPTO_memcmp to
 * the current hash, and to the previous one while it is valid. Assertions
 * (RFC 7523 §3): signature by one of c->jwks (asymmetric algorithms only),
 * iss == sub == client_id, aud holding conf->token_endpoint or
 * conf->issuer, exp present and at most max_assertion_lifetime ahead,
 * nbf/iat not in the future, a jti; then the jti is claimed in
 * conf->replay (a jti seen before within its lifetime is refused; a full
 * cache answers temporarily_unavailable). A revoked client, one that may
 * not use the method, or one without client_credentials fail too.
 * Returns 0, or -1 with err (invalid_client, unauthorized_client,
 * temporarily_unavailable).
 */
int gh_oauth_client_authenticate(const gh_oauth_request_t *r, const gh_oauth_client_t *c,
                                 const gh_oauth_auth_conf_t *conf, int64_t now,
                                 gh_oauth_auth_result_t *res, gh_oauth_error_t *err);

/* ---- the assertion replay cache (replay.c) ---- */

/*
 * A fixed table of capacity entries (client id, jti) -> until, shared by
 * the workers (a mutex). An entry lives until its time passes; when the
 * slots an entry may take are all held by live entries the claim is
 * refused (-ENOSPC) rather than forgetting one, so a replay is never let
 * through for want of room. Size it at a few times the assertions
 * expected within the largest assertion lifetime. NULL when out of memory.
 */
gh_oauth_replay_t *gh_oauth_replay_new(size_t capacity);
void gh_oauth_replay_free(gh_oauth_replay_t *rc);
/* Claims (client_id, jti) until `until` at time now: 0 when fresh (now
 * remembered), -EEXIST when live already (a replay), -ENOSPC when full. */
int gh_oauth_replay_claim(gh_oauth_replay_t *rc, const char *client_id, size_t client_id_len,
                          const char *jti, size_t jti_len, int64_t until, int64_t now);
/* Live entries at now (for metrics). */
size_t gh_oauth_replay_count(gh_oauth_replay_t *rc, int64_t now);

/* ---- authorization (grant.c) ---- */

/* What a token will say; strings borrowed from the client view and the
 * request (both must outlive it). */
typedef struct {
    const char *client_id;
    const char *scopes[GH_OAUTH_MAX_SCOPES];
    size_t nscopes;
    const char *audiences[GH_OAUTH_MAX_TARGETS];
    size_t naudiences;
} gh_oauth_grant_t;

/*
 * Decides what an authenticated client gets. Scope: every requested token
 * must be one of c->scopes (exact, case-sensitive) or invalid_scope; none
 * requested gives all of c->scopes. Audience: each requested audience or
 * resource must be one of c->audiences (exact), or, when the client has
 * none, equal default_audience (may be NULL): else invalid_target; none
 * requested gives the client's first audience, or default_audience, or
 * invalid_target when there is neither. Returns 0, or -1 with err.
 */
int gh_oauth_grant(const gh_oauth_request_t *r, const gh_oauth_client_t *c,
                   const char *default_audience, gh_oauth_grant_t *out, gh_oauth_error_t *err);

/* ---- minting (mint.c) ---- */

typedef struct {
    const char *issuer; /* iss, NUL-terminated */
    const gh_jwt_signing_key_t *key;
    gh_jwt_alg_t alg; /* ES256 by default in config; RS256, EdDSA ... */
    const char *kid;  /* NULL: no kid */
    int64_t lifetime; /* seconds, > 0 */
    int with_nbf;     /* add nbf = iat */
} gh_oauth_mint_conf_t;

#define GH_OAUTH_JTI_LEN 22 /* 128 random bits, base64url */

typedef struct {
    char *access_token; /* owned, NUL-terminated */
    size_t access_token_len;
    char jti[GH_OAUTH_JTI_LEN + 1];
    int64_t iat, exp;
    char *body; /* owned: {access_token, token_type, expires_in, scope} */
    size_t body_len;
} gh_oauth_token_t;

/*
 * Mints an RFC 9068 access token for g at now: header {alg, kid, typ:
 * "at+jwt"}, claims iss, sub (the client id), aud (a string, or an array
 * when several), exp, iat, nbf (with_nbf), jti (128 bits from rand16 when
 * not NULL, for tests, else RAND_bytes), client_id, scope (when any), and
 * the 200 response body. Returns 0, or -1 with err (server_error: the key
 * does not fit alg, a string that is not UTF-8, claims over 8 KiB;
 * temporarily_unavailable: out of memory or randomness).
 */
int gh_oauth_mint(const gh_oauth_mint_conf_t *c, const gh_oauth_grant_t *g, int64_t now,
                  const unsigned char *rand16, gh_oauth_token_t *out, gh_oauth_error_t *err);
void gh_oauth_token_dispose(gh_oauth_token_t *t);

/* ---- our tokens read back (inspect.c) ---- */

typedef struct {
    const gh_jwks_t *keys;       /* the issuer's published keys (current and retiring) */
    const char *issuer;          /* NUL-terminated */
    int64_t skew;                /* the largest leeway any JWT filter gives exp */
    gh_jwt_verifier_t *verifier; /* may be NULL */
} gh_oauth_inspect_conf_t;

typedef struct {
    int ours;   /* signed by keys, iss = issuer, typ at+jwt, with jti, exp, iat, client_id */
    int active; /* ours, nbf <= now < exp (no leeway: the issuer's own clock) */
    /* When ours: borrowed from jwt. */
    const char *jti, *client_id, *sub, *scope; /* scope NULL when absent */
    int64_t exp, iat;
    gh_jwt_t jwt; /* owned when parsed */
    int parsed;
} gh_oauth_token_info_t;

/* Reads tok[0 .. len) as one of our access tokens at now. Anything that is
 * not (malformed, foreign, bad signature) leaves ours = 0: not an error.
 * *out needs gh_oauth_token_info_dispose. Returns 0, or -ENOMEM. */
int gh_oauth_token_inspect(const gh_oauth_inspect_conf_t *c, const char *tok, size_t len,
                           int64_t now, gh_oauth_token_info_t *out);
void gh_oauth_token_info_dispose(gh_oauth_token_info_t *ti);

/*
 * The RFC 7662 §2.2 answer for requester (authenticated) about ti:
 * {"active":false} unless ti is active, not revoked (the caller looked its
 * jti up), and the requester is the token's client or may_introspect;
 * else {"active":true, scope, client_id, sub, aud, iss, exp, iat, jti,
 * token_type: "Bearer"}. *body is new (free()). Returns 0 or -ENOMEM.
 */
int gh_oauth_introspection_body(const gh_oauth_token_info_t *ti, int revoked,
                                const gh_oauth_client_t *requester, char **body, size_t *len);

typedef struct {
    int revoke;      /* 1: remember jti as revoked until `until` */
    const char *jti; /* borrowed from the token info */
    int64_t until;   /* exp + skew */
} gh_oauth_revocation_t;

/*
 * RFC 7009 §2.1 for requester (authenticated) and r->hint at now: a token
 * that is not ours or expired (now >= exp + skew) needs nothing (revoke = 0, answer 200); one
 * issued to another client is refused (unauthorized_client); a hint
 * gatehouse does not know is unsupported_token_type. Returns 0 (answer
 * 200 with an empty body after storing the revocation when revoke is 1)
 * or -1 with err.
 */
int gh_oauth_revocation_decide(const gh_oauth_request_t *r, const gh_oauth_token_info_t *ti,
                               const gh_oauth_client_t *requester, int64_t skew, int64_t now,
                               gh_oauth_revocation_t *out, gh_oauth_error_t *err);

/* ---- replies (reply.c) ---- */

/* The fields of every answer (RFC 6749 §5.1: no-store, no-cache), with
 * Content-Type: application/json. Static; *n set to the count. */
const gh_h1_header_t *gh_oauth_json_headers(size_t *n);

typedef struct {
    int status;
    gh_h1_header_t headers[6];
    size_t nheaders;
    char challenge[160]; /* WWW-Authenticate value */
    char body[256];
    size_t body_len;
} gh_oauth_reply_t;

/* The RFC 6749 §5.2 error reply for e: {"error", "error_description"},
 * the no-store fields, WWW-Authenticate: Basic realm="realm" on a 401
 * (RFC 9110 §11.6.1 requires a challenge on every 401; realm's '"' and
 * '\' are escaped, control bytes dropped), Allow: POST on a 405. Self-
 * contained: out's pointers point into out. */
void gh_oauth_reply_error(const gh_oauth_error_t *e, const char *realm, gh_oauth_reply_t *out);

/* Sets *e (helpers for the files of src/issuer). */
void gh_oauth_fail(gh_oauth_error_t *e, gh_oauth_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
