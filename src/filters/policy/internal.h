/*
 * The policies filter's parts (src/filters/policy/): compile.c (the
 * `policies:` section, listener and route attachment, into the compiled
 * form below), claims.c (claim paths "[a][b]" and reading them from the
 * verified token's payload), eval.c (a policy set against one request's
 * facts, without allocating), filter.c (the type's table, bind, the
 * decision's reply, log note and metrics). Internal to the folder; the
 * unit tests include it.
 *
 * Everything compiled here lives in the config (one per load, so one per
 * snapshot), is immutable, and is shared by every worker.
 */
#ifndef GATEHOUSE_FILTERS_POLICY_INTERNAL_H
#define GATEHOUSE_FILTERS_POLICY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/cidr.h>
#include <gatehouse/filter.h>

#include "filters/policy/policy.h"

/* Bounds, so that neither a config nor a token makes evaluation unbounded. */
#define GH_POL_MAX_CLAIM_DEPTH 8 /* segments of request.auth.claims[a][b]... */
#define GH_POL_MAX_NAME 253      /* a policy's name, as a DNS name */
#define GH_POL_MAX_VALUE 4096    /* one value of a list */
#define GH_POL_JSON_MAX_DEPTH 64 /* nesting the claims reader walks through */

/* ---- patterns: Istio's string match ---- */

/* "abc" exact, "abc*" prefix, "*abc" suffix, "*" presence (a non-empty
 * value; for request.headers, the field is there). */
typedef enum {
    GH_PAT_EXACT = 0,
    GH_PAT_PREFIX,
    GH_PAT_SUFFIX,
    GH_PAT_PRESENT,
} gh_pat_kind_t;

typedef struct {
    uint8_t kind;
    uint32_t len;
    char *s; /* the literal without its '*', NUL-terminated (owned) */
} gh_pat_t;

/* request_principals and request.auth.principal: "iss/sub", split at the
 * last '/' (an issuer is often a URL) into two patterns, as Istio's
 * request principal generator does. */
typedef struct {
    gh_pat_t iss, sub;
} gh_principal_pat_t;

/* ---- checks ---- */

typedef enum {
    GH_ATTR_SOURCE_IP = 0, /* the direct peer */
    GH_ATTR_REMOTE_IP,     /* the client after trusted_proxies */
    GH_ATTR_PRINCIPAL,     /* "iss/sub" of the verified JWT */
    GH_ATTR_CONSUMER,      /* the API-key consumer */
    GH_ATTR_HOST,
    GH_ATTR_METHOD,
    GH_ATTR_PATH,
    GH_ATTR_PORT, /* the listener's port */
    GH_ATTR_HEADER,
    GH_ATTR_CLAIM, /* also request.auth.audiences ([aud]) and .presenter ([azp]) */
    GH_ATTR_SCOPES,
    GH_ATTR_COUNT
} gh_attr_t;

/* One list of values or not_values. Which array is used depends on the
 * attribute: cidrs (ips), ports, principals, pats (every string). */
typedef struct {
    uint32_t n;
    gh_pat_t *pats;
    gh_principal_pat_t *principals;
    gh_cidr_t *cidrs;
    uint16_t *ports;
} gh_vset_t;

/* attr matches one of values (when given) and none of not_values (when
 * given). An attribute the request does not have (no token, no such
 * header, a claim that is not a string) matches no value, so it fails
 * `values` and passes `not_values`: Istio makes not_values NOT(any of
 * them), and so does this. */
typedef struct {
    uint8_t attr;
    uint8_t has_values, has_not;
    char *name; /* GH_ATTR_HEADER: the field name, lower-case (owned) */
    uint32_t name_len;
    uint32_t claim; /* GH_ATTR_CLAIM: index into the section's claim paths */
    gh_vset_t values, not_values;
    uint32_t line, col; /* where it was written, for load-time errors */
} gh_check_t;

/* Checks that must all match: a source, an operation, a rule's `when`. */
typedef struct {
    gh_check_t *v;
    uint32_t n;
} gh_conj_t;

/* Istio's Rule: any of `from` (none: any source), any of `to` (none: any
 * operation), and every condition of `when`. An empty rule matches every
 * request. */
typedef struct {
    gh_conj_t *from;
    uint32_t nfrom;
    gh_conj_t *to;
    uint32_t nto;
    gh_conj_t when;
} gh_rule_t;

typedef enum {
    GH_POL_ALLOW = 0,
    GH_POL_DENY,
    GH_POL_CUSTOM, /* delegated to an authorizer (provider) when it matches */
} gh_pol_action_t;

struct gh_policy_s {
    char *name;
    uint8_t action; /* gh_pol_action_t */
    uint8_t dry_run;
    uint8_t has_paths;  /* some check reads the path (refused where paths are not normalized) */
    uint8_t has_claims; /* some check reads a claim (the claims cache is worth a look-up) */
    gh_rule_t *rules;
    uint32_t nrules; /* 0: matches nothing (Istio: rules not set) */
    size_t provider; /* CUSTOM: the authorizer's index in the config */
    uint32_t line, col;
};

/* A claim path, request.auth.claims[a][b] -> {"a", "b"}. */
typedef struct {
    char **segs; /* owned, NUL-terminated */
    uint32_t *lens;
    uint32_t n;
    /* [scope] or [permission]: a string value is matched word by word, as
     * Istio has them split at spaces (its JWT filter's
     * space_delimited_claims) */
    int split;
} gh_claim_path_t;

/* The `policies:` section. */
struct gh_policy_section_s {
    uint64_t id; /* unique in the process (claims cached per worker are tied to it) */
    gh_policy_t *v;
    size_t n;
    gh_claim_path_t *claims; /* distinct paths read by any policy */
    size_t nclaims, claims_cap;
};

/* A route's conf: the policies that govern it, its listener's first. */
typedef struct {
    const gh_policy_t **v; /* borrowed from the section */
    size_t n;
} gh_policy_route_conf_t;

/* ---- claims.c ---- */

/* Parses "[a][b]..." (what follows "request.auth.claims") into p (owned
 * strings; free with gh_policy_claim_path_dispose). A segment is 1 to 256
 * bytes without '[', ']' or a control byte, as Istio's brackets carry no
 * quoting. Returns NULL, or why not (static text). */
const char *gh_policy_claim_path_parse(const char *s, size_t n, gh_claim_path_t *p);
void gh_policy_claim_path_dispose(gh_claim_path_t *p);

/* A JSON value found in a payload: its kind and its bytes (a string's
 * without the quotes, escapes still in; an array's with its brackets). */
typedef enum {
    GH_JV_ABSENT = 0,
    GH_JV_STRING,
    GH_JV_ARRAY,
    GH_JV_OTHER, /* number, true, false, null, object */
} gh_jv_kind_t;

typedef struct {
    uint8_t kind;
    uint8_t escaped; /* GH_JV_STRING: holds a backslash escape */
    const char *p;
    size_t n;
} gh_jv_t;

/* The value at path p in the JSON object text[0..len) (the verified
 * token's payload). Memory-safe on any input (it never reads outside
 * text and never recurses); on text that is not a JSON object, or a path
 * through something else than objects, the value is absent. Object
 * members are compared after decoding their names' escapes. */
gh_jv_t gh_policy_claim_find(const char *text, size_t len, const gh_claim_path_t *p);

/* Decodes the JSON string body s[0..n) (between its quotes) into out,
 * which holds at least n bytes (a decoded string is never longer).
 * Returns the decoded length, or -1 when it is not a valid string body. */
long gh_policy_json_unescape(const char *s, size_t n, char *out);

/* Calls fn(arg, element) for each element of the JSON array text
 * a[0..n) (with its brackets), until fn returns non-zero; returns that,
 * or 0. Elements are read as gh_policy_claim_find reads values. */
int gh_policy_json_each(const char *a, size_t n, int (*fn)(void *arg, const gh_jv_t *e), void *arg);

/* ---- eval.c ---- */

/* The facts of one request that policies read. Text fields are borrowed
 * for the evaluation; the lazy parts are filled on first use. */
typedef struct gh_policy_req_s {
    const char *method;
    size_t method_len;
    const char *path; /* normalized, without the query */
    size_t path_len;
    const char *host; /* lower-case, no port; len 0: none */
    size_t host_len;
    unsigned port;
    const char *peer;   /* direct peer's address text, or "" */
    const char *remote; /* client's address text after trusted_proxies, or "" */
    const char *issuer, *subject, *consumer, *scopes; /* NULL: absent */
    const gh_h1_header_t *headers;
    size_t nheaders;
    /* The verified token's payload (JSON text), asked for on first use;
     * NULL: none. */
    const char *(*claims_fn)(void *arg, size_t *len);
    /* Memory for the request's life (joined header values, decoded
     * strings); NULL when out of memory. */
    void *(*alloc_fn)(void *arg, size_t n);
    void *arg;

    /* ---- filled by the evaluator ---- */
    uint8_t peer_state, remote_state, claims_state; /* 0 unread, 1 have, 2 none */
    int oom;                                        /* an allocation failed */
    uint8_t peer_ip[16], remote_ip[16];
    const char *claims;
    size_t claims_len;
    /* Claim values found, by the section's claim index (claim_state[i]:
     * 0 unread, else found); sized by the caller for the section. */
    gh_jv_t *claim_vals;
    uint8_t *claim_state;
    size_t nclaim_slots;
} gh_policy_req_t;

/* Whether policy pol matches the request. */
int gh_policy_matches(const gh_policy_section_t *sec, const gh_policy_t *pol, gh_policy_req_t *req);

/* Whether the pattern matches v[0..n) (case-sensitive). */
int gh_pat_match(const gh_pat_t *pat, const char *v, size_t n);

/* ---- cache.c ---- */

#define GH_POL_CACHE_SLOTS 256
#define GH_POL_CACHE_MAX_TOKEN 4096

/* One verified token's claims: its decoded payload and the values of the
 * section's claim paths found in it (state[i] 0: not looked up yet). */
typedef struct {
    char *token; /* owned copy, compared whole */
    size_t token_len, token_cap;
    char *payload; /* owned, NUL-terminated */
    size_t payload_len, payload_cap;
    uint8_t payload_state; /* 0 not decoded yet, 1 have */
    uint64_t sec_id;
    gh_jv_t *vals; /* point into payload */
    uint8_t *state;
    size_t nvals;
} gh_policy_centry_t;

typedef struct {
    gh_policy_centry_t *slots[GH_POL_CACHE_SLOTS];
} gh_policy_wcache_t;

void *gh_policy_cache_new(void);
void gh_policy_cache_free(void *w);
/* The entry of token[0..n) under sec, found or made (its values then not
 * looked up yet); NULL when the token is too long to cache or out of
 * memory. Valid until the next call on w. */
gh_policy_centry_t *gh_policy_cache_get(gh_policy_wcache_t *w, const gh_policy_section_t *sec,
                                        const char *token, size_t n);
/* Keeps a copy of the decoded payload text[0..len) in e; returns it, or
 * NULL when out of memory (e then has none). */
const char *gh_policy_cache_payload(gh_policy_centry_t *e, const char *text, size_t len);

/* ---- compile.c ---- */

int gh_policy_parse_section(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                            void **section);
void gh_policy_free_section(void *section);
int gh_policy_parse_listener(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                             gh_listener_conf_t *listener, void **conf);
int gh_policy_parse_route(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                          gh_route_t *route, void **conf);
void gh_policy_free_conf(void *conf);

#endif
