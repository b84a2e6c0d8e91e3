/*
 * Evaluating compiled policies against one request's facts
 * (gh_policy_req_t), as Envoy's RBAC engine evaluates what Istio generates
 * from an AuthorizationPolicy: a policy matches when one of its rules
 * does; a rule when one of its sources, one of its operations and all of
 * its conditions do; a source, operation or condition when every field it
 * names does: the attribute is one of `values` (if given) and none of
 * `not_values` (if given).
 *
 * Nothing here allocates but through req->alloc_fn (repeated header fields
 * joined, escaped claim strings decoded, the claim slots); the lazy facts
 * (IP addresses, the token's payload, claims) are read once per request.
 */
#include <string.h>
#include <strings.h>

#include <gatehouse/fields.h>

#include "filters/policy/internal.h"

static inline int pat_match(const gh_pat_t *pat, const char *v, size_t n)
{
    switch (pat->kind) {
    case GH_PAT_EXACT:
        return n == pat->len && memcmp(v, pat->s, n) == 0;
    case GH_PAT_PREFIX:
        return n >= pat->len && memcmp(v, pat->s, pat->len) == 0;
    case GH_PAT_SUFFIX:
        return n >= pat->len && memcmp(v + n - pat->len, pat->s, pat->len) == 0;
    case GH_PAT_PRESENT:
        return n > 0;
    }
    return 0;
}

int gh_pat_match(const gh_pat_t *pat, const char *v, size_t n)
{
    return pat_match(pat, v, n);
}

static inline int any_pat(const gh_vset_t *vs, const char *v, size_t n)
{
    for (uint32_t i = 0; i < vs->n; i++)
        if (pat_match(&vs->pats[i], v, n))
            return 1;
    return 0;
}

/* Any space-separated word of s[0..n) matches (scopes; Istio's
 * space_delimited_claims for "scope" and "permission"). */
static int any_word(const gh_vset_t *vs, const char *s, size_t n)
{
    const char *e = s + n;
    while (s < e) {
        const char *sp = memchr(s, ' ', (size_t)(e - s));
        const char *end = sp != NULL ? sp : e;
        if (end > s && any_pat(vs, s, (size_t)(end - s)))
            return 1;
        s = end + 1;
    }
    return 0;
}

static void *req_alloc(gh_policy_req_t *req, size_t n)
{
    void *p = req->alloc_fn != NULL ? req->alloc_fn(req->arg, n) : NULL;
    if (p == NULL)
        req->oom = 1;
    return p;
}

/* ---- lazy facts ---- */

static const uint8_t *ip_of(uint8_t *state, uint8_t *ip, const char *text)
{
    if (*state == 0)
        *state =
            text != NULL && text[0] != '\0' && gh_ip_parse(text, strlen(text), ip) == 0 ? 1 : 2;
    return *state == 1 ? ip : NULL;
}

static const char *claims_of(gh_policy_req_t *req, size_t *len)
{
    if (req->claims_state == 0) {
        req->claims = req->claims_fn != NULL ? req->claims_fn(req->arg, &req->claims_len) : NULL;
        req->claims_state = req->claims != NULL ? 1 : 2;
    }
    *len = req->claims_len;
    return req->claims_state == 1 ? req->claims : NULL;
}

static const gh_jv_t *claim_of(const gh_policy_section_t *sec, gh_policy_req_t *req, uint32_t k)
{
    static const gh_jv_t absent = {GH_JV_ABSENT, 0, NULL, 0};
    size_t len;
    const char *text = claims_of(req, &len);
    if (text == NULL || k >= sec->nclaims)
        return &absent;
    if (req->claim_vals == NULL) {
        /* One slot per claim path of the section, made on the first claim
         * a request reads: a route without claim conditions pays nothing. */
        size_t n = sec->nclaims;
        req->claim_vals = req_alloc(req, n * sizeof(gh_jv_t));
        req->claim_state = req_alloc(req, n);
        if (req->claim_vals == NULL || req->claim_state == NULL) {
            req->claim_vals = NULL;
            return &absent;
        }
        memset(req->claim_state, 0, n);
        req->nclaim_slots = n;
    }
    if (!req->claim_state[k]) {
        req->claim_vals[k] = gh_policy_claim_find(text, len, &sec->claims[k]);
        req->claim_state[k] = 1;
    }
    return &req->claim_vals[k];
}

/* A JSON string's text, decoded when it has escapes (rare: request memory). */
static const char *string_of(gh_policy_req_t *req, const gh_jv_t *v, size_t *n)
{
    if (!v->escaped) {
        *n = v->n;
        return v->p;
    }
    char *out = req_alloc(req, v->n + 1);
    if (out == NULL)
        return NULL;
    long dn = gh_policy_json_unescape(v->p, v->n, out);
    if (dn < 0)
        return NULL;
    *n = (size_t)dn;
    return out;
}

typedef struct {
    gh_policy_req_t *req;
    const gh_vset_t *vs;
} each_arg_t;

static int element_matches(void *arg, const gh_jv_t *el)
{
    each_arg_t *a = arg;
    size_t n;
    if (el->kind != GH_JV_STRING)
        return 0;
    const char *s = string_of(a->req, el, &n);
    return s != NULL && any_pat(a->vs, s, n);
}

/* A claim value against the patterns: a string, or any string element of
 * an array (Envoy's list match, one_of). Istio has the top-level "scope"
 * and "permission" claims split at spaces first (its JWT filter's
 * space_delimited_claims), so that [scope] matches one scope. Anything
 * else (numbers, booleans, objects) matches nothing. */
__attribute__((noinline)) static int
claim_matches(const gh_policy_section_t *sec, gh_policy_req_t *req, uint32_t k, const gh_vset_t *vs)
{
    const gh_jv_t *v = claim_of(sec, req, k);
    if (v->kind == GH_JV_ARRAY) {
        each_arg_t a = {req, vs};
        return gh_policy_json_each(v->p, v->n, element_matches, &a);
    }
    if (v->kind != GH_JV_STRING)
        return 0;
    size_t n;
    const char *s = string_of(req, v, &n);
    if (s == NULL)
        return 0;
    return sec->claims[k].split ? any_word(vs, s, n) : any_pat(vs, s, n);
}

/* Request header fields named name: absent, or their values joined with
 * "," (RFC 9110 section 5.3), which is what Envoy matches and what Istio
 * documents (Authorization Policy Normalization, duplicate headers). A
 * presence pattern ("*") matches a field that is there, even empty. Names
 * are compared as CGI-style upstreams (WSGI, PHP, Rack) read them, '_' as
 * '-' (gh_field_name_same): "x_debug" reaches such an upstream as
 * X-Debug, so a DENY on x-debug must see it. */
__attribute__((noinline)) static int header_matches(gh_policy_req_t *req, const gh_check_t *c,
                                                    const gh_vset_t *vs)
{
    const gh_h1_header_t *first = NULL;
    size_t count = 0, total = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const gh_h1_header_t *h = &req->headers[i];
        if (!gh_field_name_same(h->name, h->name_len, c->name, c->name_len))
            continue;
        if (first == NULL)
            first = h;
        count++;
        total += h->value_len + 1;
    }
    if (first == NULL)
        return 0;
    for (uint32_t i = 0; i < vs->n; i++)
        if (vs->pats[i].kind == GH_PAT_PRESENT)
            return 1;
    if (count == 1)
        return any_pat(vs, first->value, first->value_len);
    char *joined = req_alloc(req, total);
    if (joined == NULL)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const gh_h1_header_t *h = &req->headers[i];
        if (!gh_field_name_same(h->name, h->name_len, c->name, c->name_len))
            continue;
        if (o > 0)
            joined[o++] = ',';
        memcpy(joined + o, h->value, h->value_len);
        o += h->value_len;
    }
    return any_pat(vs, joined, o);
}

__attribute__((noinline)) static int principal_matches(const gh_policy_req_t *req,
                                                       const gh_vset_t *vs)
{
    if (req->issuer == NULL || req->subject == NULL)
        return 0;
    size_t il = strlen(req->issuer), sl = strlen(req->subject);
    for (uint32_t i = 0; i < vs->n; i++)
        if (pat_match(&vs->principals[i].iss, req->issuer, il) &&
            pat_match(&vs->principals[i].sub, req->subject, sl))
            return 1;
    return 0;
}

__attribute__((noinline)) static int ip_in(uint8_t *state, uint8_t *ip, const char *text,
                                           const gh_vset_t *vs)
{
    const uint8_t *a = ip_of(state, ip, text);
    return a != NULL && gh_cidr_list_contains(vs->cidrs, vs->n, a);
}

/* The method is one of vs (exact names), ASCII case ignored. Methods are
 * case-sensitive (RFC 9110 section 9.1), but upstreams do not all read
 * them so: Django and Flask (Werkzeug) upper-case the method, so "delete"
 * reaches their DELETE handlers and must meet a DENY of DELETE; an ALLOW
 * of GET then lets through nothing that such an upstream would not take
 * for GET, and a case-sensitive upstream refuses "get" itself. */
static int method_in(const gh_vset_t *vs, const char *m, size_t n)
{
    for (uint32_t i = 0; i < vs->n; i++)
        if (vs->pats[i].len == n && strncasecmp(vs->pats[i].s, m, n) == 0)
            return 1;
    return 0;
}

/* Whether the request's attribute is one of vs. An attribute the request
 * does not have is none of them. */
static inline int attr_in(const gh_policy_section_t *sec, gh_policy_req_t *req, const gh_check_t *c,
                          const gh_vset_t *vs)
{
    switch (c->attr) {
    case GH_ATTR_SOURCE_IP:
        return ip_in(&req->peer_state, req->peer_ip, req->peer, vs);
    case GH_ATTR_REMOTE_IP:
        return ip_in(&req->remote_state, req->remote_ip, req->remote, vs);
    case GH_ATTR_PRINCIPAL:
        return principal_matches(req, vs);
    case GH_ATTR_CONSUMER:
        return req->consumer != NULL && any_pat(vs, req->consumer, strlen(req->consumer));
    case GH_ATTR_HOST:
        return req->host_len > 0 && any_pat(vs, req->host, req->host_len);
    case GH_ATTR_METHOD:
        return method_in(vs, req->method, req->method_len);
    case GH_ATTR_PATH:
        return any_pat(vs, req->path, req->path_len);
    case GH_ATTR_PORT:
        for (uint32_t i = 0; i < vs->n; i++)
            if (vs->ports[i] == req->port)
                return 1;
        return 0;
    case GH_ATTR_HEADER:
        return header_matches(req, c, vs);
    case GH_ATTR_CLAIM:
        return claim_matches(sec, req, c->claim, vs);
    case GH_ATTR_SCOPES:
        return req->scopes != NULL && any_word(vs, req->scopes, strlen(req->scopes));
    }
    return 0;
}

static int check_matches(const gh_policy_section_t *sec, gh_policy_req_t *req, const gh_check_t *c)
{
    if (c->has_values && !attr_in(sec, req, c, &c->values))
        return 0;
    return !(c->has_not && attr_in(sec, req, c, &c->not_values));
}

static int conj_matches(const gh_policy_section_t *sec, gh_policy_req_t *req, const gh_conj_t *j)
{
    for (uint32_t i = 0; i < j->n; i++)
        if (!check_matches(sec, req, &j->v[i]))
            return 0;
    return 1;
}

static int any_conj(const gh_policy_section_t *sec, gh_policy_req_t *req, const gh_conj_t *v,
                    uint32_t n)
{
    if (n == 0)
        return 1; /* not set: any source, any operation */
    for (uint32_t i = 0; i < n; i++)
        if (conj_matches(sec, req, &v[i]))
            return 1;
    return 0;
}

int gh_policy_matches(const gh_policy_section_t *sec, const gh_policy_t *pol, gh_policy_req_t *req)
{
    for (uint32_t i = 0; i < pol->nrules; i++) {
        const gh_rule_t *r = &pol->rules[i];
        /* All three must hold, so the order is free: operations (the
         * request line) first, conditions (claims, headers) last. */
        if (any_conj(sec, req, r->to, r->nto) && any_conj(sec, req, r->from, r->nfrom) &&
            conj_matches(sec, req, &r->when))
            return 1;
    }
    return 0;
}

void gh_policy_decide(const gh_policy_section_t *sec, const gh_policy_lists_t *l,
                      gh_policy_req_t *req, gh_policy_decision_t *out)
{
    memset(out, 0, sizeof(*out));
    out->outcome = GH_POL_OUT_NONE;
    for (uint32_t i = 0; i < l->ndeny; i++)
        if (gh_policy_matches(sec, l->deny[i], req)) {
            out->outcome = GH_POL_OUT_DENY;
            out->index = i;
            break;
        }
    if (out->outcome != GH_POL_OUT_DENY && l->nallow > 0) {
        out->outcome = GH_POL_OUT_NO_ALLOW;
        for (uint32_t i = 0; i < l->nallow; i++)
            if (gh_policy_matches(sec, l->allow[i], req)) {
                out->outcome = GH_POL_OUT_ALLOW;
                out->index = i;
                break;
            }
    }
    for (uint32_t i = 0; i < l->ndry_deny && i < 64; i++)
        if (gh_policy_matches(sec, l->dry_deny[i], req))
            out->dry_deny_hits |= (uint64_t)1 << i;
    if (l->ndry_allow > 0) {
        out->dry_allow_outcome = GH_POL_OUT_NO_ALLOW;
        for (uint32_t i = 0; i < l->ndry_allow; i++)
            if (gh_policy_matches(sec, l->dry_allow[i], req)) {
                out->dry_allow_outcome = GH_POL_OUT_ALLOW;
                out->dry_allow_index = i;
                break;
            }
    }
    /* A fact that could not be read (out of memory) may have turned a
     * DENY's match into a miss: never allow on that. */
    out->oom = req->oom;
}
