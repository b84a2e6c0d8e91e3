/*
 * The formats of AWS API Gateway Lambda authorizers and of Lambda functions
 * as upstreams, without any I/O (src/authorizer/): event.c builds the JSON
 * events a function receives from a request view; policy.c compiles an IAM
 * policy an authorizer returned and evaluates it against a method ARN;
 * response.c reads authorizer responses, function errors and maps their
 * principal and context to identity values and headers; lambda.c maps a
 * function's proxy result to an HTTP response. docs/internals/authorizers.md
 * says where every rule comes from.
 *
 * Ownership: builders write a new NUL-terminated JSON text the caller
 * frees with free(); parsers fill a caller's struct whose members they
 * allocate, released by the matching _dispose. Nothing here keeps a
 * pointer into the caller's input after it returns.
 *
 * Errors: 0 or a negative code. -ENOMEM; -EINVAL (a required config
 * string is missing); -EILSEQ (a request string is not UTF-8: JSON cannot
 * carry it); -E2BIG (the method ARN passes AWS's 1600 bytes: API Gateway
 * answers 414); GH_AUTHZ_EBAD (the function's output is malformed: 500
 * for an authorizer, 502 for an upstream; *why says what, statically).
 */
#ifndef GATEHOUSE_AUTHORIZER_AUTHZ_H
#define GATEHOUSE_AUTHORIZER_AUTHZ_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/h1.h>

struct json_t;

#define GH_AUTHZ_EBAD (-1000)

/* Bounds. AWS's own where it states them (method ARN 1600 bytes, a
 * policy's Resource 512 characters: api-gateway-lambda-authorizer-output),
 * ours elsewhere, so that no response makes parsing or evaluation
 * unbounded. */
#define GH_AUTHZ_MAX_ARN 1600
#define GH_AUTHZ_MAX_RESOURCE 512
#define GH_AUTHZ_MAX_RESPONSE (1u << 20) /* bytes of an authorizer response */
#define GH_AUTHZ_MAX_DEPTH 32            /* nesting of any JSON read here */
#define GH_AUTHZ_MAX_PATTERNS 1024       /* actions + resources of one policy */
#define GH_AUTHZ_MAX_PATTERN_BYTES 65536 /* their total length */
#define GH_AUTHZ_MAX_CONTEXT 256         /* context keys */
#define GH_AUTHZ_MAX_VALUE 8192          /* principalId, one context value, usageIdentifierKey */
#define GH_LAMBDA_MAX_RESULT (6u << 20)  /* Lambda's synchronous response limit, 6 MB */
#define GH_LAMBDA_MAX_HEADERS 256

/* ---- the request view ---- */

typedef struct {
    const char *p; /* borrowed; need not be NUL-terminated */
    size_t n;
} gh_authz_str_t;

/* A config pair (path parameter, stage variable): NUL-terminated, borrowed. */
typedef struct {
    const char *name;
    const char *value;
} gh_authz_kv_t;

/*
 * What the events are built from. The filter fills it from a stream and
 * the authorizer's config; every pointer is borrowed for the call. A
 * gh_authz_str_t with p == NULL is absent.
 */
typedef struct {
    gh_authz_str_t method;
    gh_authz_str_t path;           /* raw, as received, without the query */
    gh_authz_str_t query;          /* raw, after '?' (absent or empty: none) */
    const gh_h1_header_t *headers; /* in order, repeats kept */
    size_t nheaders;
    /* the request's cookies, "name=value" each; NULL: split from the
     * Cookie fields at ';' */
    const gh_authz_str_t *cookies;
    size_t ncookies;
    gh_authz_str_t source_ip;
    gh_authz_str_t user_agent; /* absent: the last User-Agent field */
    gh_authz_str_t request_id;
    gh_authz_str_t host;       /* absent: the Host field; a port is dropped */
    gh_authz_str_t protocol;   /* absent: "HTTP/1.1" */
    int64_t time_ms;           /* epoch milliseconds */
    const unsigned char *body; /* proxy events only */
    size_t body_len;
    /* config: account_id, api_id and region are required; stage and
     * route_key default to "$default"; resource (the REST resource
     * template, e.g. "/pets/{id}") to the path; resource_id to null */
    const char *account_id, *api_id, *region, *stage, *route_key, *resource, *resource_id;
    const gh_authz_kv_t *path_params;
    size_t npath_params;
    const gh_authz_kv_t *stage_vars;
    size_t nstage_vars;
    /* identity source values, in config order (v1 TOKEN: the first is
     * the token) */
    const gh_authz_str_t *identity;
    size_t nidentity;
} gh_authz_request_t;

/* ---- events (event.c): each writes a new JSON text to *out (free()) ---- */

/* arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path
 * without its leading '/'} into out (cap bytes, NUL-terminated). Returns
 * its length or a negative code (-E2BIG past GH_AUTHZ_MAX_ARN). */
long gh_authz_method_arn(const gh_authz_request_t *r, char *out, size_t cap);

int gh_authz_event_v2(const gh_authz_request_t *r, char **out, size_t *len);
int gh_authz_event_v1_token(const gh_authz_request_t *r, char **out, size_t *len);
int gh_authz_event_v1_request(const gh_authz_request_t *r, char **out, size_t *len);
int gh_lambda_event_v2(const gh_authz_request_t *r, char **out, size_t *len);
int gh_lambda_event_v1(const gh_authz_request_t *r, char **out, size_t *len);

/* Whether a request body of this Content-Type goes to a function as text
 * (isBase64Encoded false): text/(anything), application/json, application/xml,
 * application/javascript; anything else, and no Content-Type, is base64. */
int gh_lambda_body_is_text(const char *ct, size_t n);

/* "12/Mar/2020:19:03:58 +0000" for epoch milliseconds into out[27]. */
void gh_authz_time_format(int64_t ms, char out[27]);

/* ---- compiled IAM policies (policy.c) ---- */

typedef struct gh_authz_policy_s gh_authz_policy_t;

typedef enum {
    GH_AUTHZ_ALLOW = 0,
    GH_AUTHZ_DENY_EXPLICIT, /* a Deny statement matched */
    GH_AUTHZ_DENY_IMPLICIT, /* no Allow statement matched */
} gh_authz_decision_t;

/* ---- authorizer responses (response.c) ---- */

typedef enum {
    GH_AUTHZ_CTX_STRING = 1,
    GH_AUTHZ_CTX_NUMBER,
    GH_AUTHZ_CTX_BOOL,
    GH_AUTHZ_CTX_JSON, /* an object, array or null (format 2.0 only): compact JSON */
} gh_authz_ctx_type_t;

typedef struct {
    char *key;   /* owned, NUL-terminated */
    char *value; /* owned, NUL-terminated: the string, or the JSON text */
    size_t value_len;
    uint8_t type; /* gh_authz_ctx_type_t */
} gh_authz_ctx_t;

/*
 * What an authorizer answered. Immutable once parsed, so that a cache can
 * keep it and evaluate the policy against each later method ARN (API
 * Gateway evaluates a cached policy per request).
 */
typedef struct {
    int simple;                /* 1: isAuthorized decided (format 2.0 simple) */
    int authorized;            /* the simple answer */
    gh_authz_policy_t *policy; /* IAM answers (owned) */
    char *principal;           /* principalId, NULL when absent (owned) */
    char *usage_key;           /* usageIdentifierKey (1.0), NULL when absent */
    gh_authz_ctx_t *ctx;       /* context, in the response's order (owned) */
    size_t nctx;
} gh_authz_result_t;

/* Format 1.0 (REST TOKEN and REQUEST authorizers, HTTP API 1.0): an IAM
 * answer with principalId, policyDocument, optional context (string,
 * number and boolean values only) and usageIdentifierKey. */
int gh_authz_response_v1(const char *buf, size_t len, gh_authz_result_t *out, const char **why);

/* Format 2.0: with simple responses enabled, an answer that has
 * isAuthorized is a simple one; any other answer must be IAM, as it must
 * be always when they are not enabled. Context values may nest. */
int gh_authz_response_v2(const char *buf, size_t len, int simple_enabled, gh_authz_result_t *out,
                         const char **why);

void gh_authz_result_dispose(gh_authz_result_t *r);

/* The decision for one request's method ARN (the simple answer ignores
 * it). */
gh_authz_decision_t gh_authz_result_decide(const gh_authz_result_t *r, const char *arn, size_t n);

/* A policy alone (policy.c): doc is the policyDocument value (borrowed);
 * *out is the caller's, freed with gh_authz_policy_free. */
int gh_authz_policy_compile(const struct json_t *doc, gh_authz_policy_t **out, const char **why);
void gh_authz_policy_free(gh_authz_policy_t *p);
gh_authz_decision_t gh_authz_policy_eval(const gh_authz_policy_t *p, const char *arn, size_t n);

/* IAM's wildcard match: '*' any run (including '/' and ':'), '?' one
 * character; fold: ASCII case ignored (actions). O(pn * sn) at worst,
 * never exponential. *steps (when not NULL) counts the comparisons, for
 * the test that proves the bound. */
int gh_authz_glob(const char *pat, size_t pn, const char *s, size_t sn, int fold, uint64_t *steps);

/* ---- identity and headers from a result (response.c) ---- */

/* A mapping source: "principalId", "usageIdentifierKey" or
 * "context.<key>". Returns NULL or why the source is refused. */
const char *gh_authz_source_refused(const char *src);

/* Why a header name may not be set from an authorizer's answer, or NULL:
 * not an RFC 9110 token, or a name gatehouse owns (framing, hop-by-hop,
 * host, forwarding, credentials, trace context: gh_field_owned) or one
 * that changes how the body or the method is read. */
const char *gh_authz_header_refused(const char *name, size_t n);

/* The value of a source in a result: 1 (and *v, *n, borrowed from r), 0
 * when the result has none, -EINVAL when it cannot be a header value
 * (CR, LF, NUL or another control character but HTAB). */
int gh_authz_result_value(const gh_authz_result_t *r, const char *src, const char **v, size_t *n);

/* ---- function errors (response.c) ---- */

typedef enum {
    GH_LAMBDA_RESULT = 0,     /* no X-Amz-Function-Error: the payload is the result */
    GH_LAMBDA_UNAUTHORIZED,   /* errorMessage exactly "Unauthorized": 401 */
    GH_LAMBDA_FUNCTION_ERROR, /* any other function error */
} gh_lambda_error_t;

/* Classifies an Invoke answer by its X-Amz-Function-Error field (err,
 * absent when NULL) and payload {errorMessage, errorType}. *message (when
 * not NULL) receives a short static reason for the log. */
gh_lambda_error_t gh_lambda_error_classify(const char *err, size_t errn, const char *payload,
                                           size_t len, const char **message);

/* ---- Lambda proxy results (lambda.c) ---- */

typedef struct {
    char *name; /* owned, NUL-terminated, as the function wrote it */
    char *value;
    size_t name_len, value_len;
} gh_lambda_header_t;

typedef struct {
    int status;
    gh_lambda_header_t *headers; /* in order; Set-Cookie from cookies last */
    size_t nheaders;
    unsigned char *body; /* owned; NULL when empty */
    size_t body_len;
} gh_lambda_response_t;

/* Maps a function's payload (format 1 or 2) to a response. GH_AUTHZ_EBAD
 * (a 502 with *why) when it is malformed. */
int gh_lambda_response_map(const char *buf, size_t len, int version, gh_lambda_response_t *out,
                           const char **why);
void gh_lambda_response_dispose(gh_lambda_response_t *r);

/* Whether the gateway drops a header of this name from a function's
 * answer (framing and hop-by-hop: it frames the response itself). */
int gh_lambda_header_dropped(const char *name, size_t n);

/* ---- shared helpers ---- */

/* Loads buf[0 .. len) as any JSON value into *out (a new reference): at
 * most max bytes, no NUL byte, at most GH_AUTHZ_MAX_DEPTH levels,
 * duplicate member names refused. 0, -ENOMEM or GH_AUTHZ_EBAD with *why
 * (response.c). */
int gh_authz_load_json(const char *buf, size_t len, size_t max, struct json_t **out,
                       const char **why);

/* Whether s[0 .. n) is UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF), as JSON text requires. */
int gh_authz_utf8_ok(const char *s, size_t n);

#endif
