/*
 * The policies' config: the top-level `policies:` section compiled once
 * per load (so once per snapshot) into the form eval.c walks, and the
 * `policies: [NAME, ...]` lists of listeners and routes.
 *
 *   policies:
 *     orders-read:
 *       action: ALLOW            # ALLOW (default), DENY or CUSTOM
 *       provider: { name: AUTHZ }  # CUSTOM: the authorizer it delegates to
 *       dry_run: false
 *       rules:
 *         - from: [ { source: { request_principals: ["https://login.example.com/alice"] } } ]
 *           to:   [ { operation: { methods: [GET], paths: ["/orders*"] } } ]
 *           when: [ { key: "request.auth.claims[groups]", values: [readers] } ]
 *
 * The shape and the meaning are Istio's AuthorizationPolicy's (the spec
 * only: no selector, the attachment says where a policy applies), with
 * field names in snake_case. Where Istio accepts something that cannot
 * mean what it seems to (an empty list, '*' in the middle of a value, a
 * path that the normalizer would never produce, a condition it would
 * ignore), this refuses it at load, at file:line:col.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/fields.h>
#include <gatehouse/path.h>

#include "filters/policy/internal.h"

/* ---- errors and small helpers ---- */

__attribute__((format(printf, 4, 5))) static int err_at(const gh_yaml_doc_t *doc, uint32_t line,
                                                        uint32_t col, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gh_yaml_node_t at;
    memset(&at, 0, sizeof(at));
    at.line = line;
    at.col = col;
    return gh_yaml_error(doc, &at, "%s", msg);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* "ipBlocks" -> "ip_blocks", into out (cap bytes); 0 when s has no
 * upper-case letter (nothing to suggest). */
static int snake_of(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    int upper = 0;
    for (; *s != '\0' && o + 2 < cap; s++) {
        if (*s >= 'A' && *s <= 'Z') {
            upper = 1;
            out[o++] = '_';
            out[o++] = (char)(*s - 'A' + 'a');
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return upper;
}

/* gh_yaml_check_keys, with a hint for Istio's spellings: camelCase names
 * of the keys allowed here, and the parts of an AuthorizationPolicy that
 * gatehouse puts elsewhere. */
static int check_keys(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map,
                      const char *const *allowed, const char *what)
{
    for (const gh_yaml_node_t *k = map->head; k != NULL; k = k->next) {
        int ok = memchr(k->str, '\0', k->len) == NULL;
        for (size_t i = 0; ok && allowed[i] != NULL; i++)
            if (strcmp(k->str, allowed[i]) == 0)
                goto next;
        char snake[128];
        const char *hint = "";
        char buf[200];
        if (ok && snake_of(k->str, snake, sizeof(snake)))
            for (size_t i = 0; allowed[i] != NULL; i++)
                if (strcmp(snake, allowed[i]) == 0) {
                    snprintf(buf, sizeof(buf), " (gatehouse spells it '%s')", allowed[i]);
                    hint = buf;
                }
        if (strcmp(k->str, "selector") == 0 || strcmp(k->str, "targetRef") == 0 ||
            strcmp(k->str, "targetRefs") == 0)
            hint = " (a policy applies where it is attached: 'policies: [NAME]' on a listener "
                   "or a route)";
        else if (strcmp(k->str, "spec") == 0 || strcmp(k->str, "metadata") == 0 ||
                 strcmp(k->str, "apiVersion") == 0 || strcmp(k->str, "kind") == 0)
            hint = " (write the fields of an AuthorizationPolicy's spec directly under its name)";
        return gh_yaml_error(doc, k, "unknown key '%s' in %s%s", k->str, what, hint);
    next:;
    }
    return 0;
}

static int nonempty_seq(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key,
                        const char *omit)
{
    char what[64];
    snprintf(what, sizeof(what), "'%s'", key);
    int rc = gh_yaml_expect(doc, n, GH_YAML_SEQ, what);
    if (rc == 0 && n->count == 0)
        rc = gh_yaml_error(doc, n, "'%s' is empty: %s", key, omit);
    return rc;
}

/* ---- freeing ---- */

static void vset_dispose(gh_vset_t *v)
{
    for (uint32_t i = 0; v->pats != NULL && i < v->n; i++)
        free(v->pats[i].s);
    for (uint32_t i = 0; v->principals != NULL && i < v->n; i++) {
        free(v->principals[i].iss.s);
        free(v->principals[i].sub.s);
    }
    free(v->pats);
    free(v->principals);
    free(v->cidrs);
    free(v->ports);
}

static void conj_dispose(gh_conj_t *c)
{
    for (uint32_t i = 0; i < c->n; i++) {
        free(c->v[i].name);
        vset_dispose(&c->v[i].values);
        vset_dispose(&c->v[i].not_values);
    }
    free(c->v);
}

static void policy_dispose(gh_policy_t *p)
{
    for (uint32_t i = 0; i < p->nrules; i++) {
        gh_rule_t *r = &p->rules[i];
        for (uint32_t j = 0; j < r->nfrom; j++)
            conj_dispose(&r->from[j]);
        for (uint32_t j = 0; j < r->nto; j++)
            conj_dispose(&r->to[j]);
        free(r->from);
        free(r->to);
        conj_dispose(&r->when);
    }
    free(p->rules);
    free(p->name);
}

void gh_policy_free_section(void *p)
{
    gh_policy_section_t *sec = p;
    if (sec == NULL)
        return;
    for (size_t i = 0; i < sec->n; i++)
        policy_dispose(&sec->v[i]);
    free(sec->v);
    for (size_t i = 0; i < sec->nclaims; i++)
        gh_policy_claim_path_dispose(&sec->claims[i]);
    free(sec->claims);
    free(sec);
}

/* ---- values ---- */

/* Istio's string match: "*" presence, "*abc" suffix, "abc*" prefix, else
 * exact. A '*' anywhere else is refused: Istio would take "a*b" or "*a*"
 * literally on one side, which no one means. */
static int parse_pat(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *s, size_t len,
                     gh_pat_t *pat)
{
    const char *lit = s;
    size_t ll = len;
    if (len == 1 && s[0] == '*') {
        pat->kind = GH_PAT_PRESENT;
        ll = 0;
    } else if (s[0] == '*') {
        pat->kind = GH_PAT_SUFFIX;
        lit++;
        ll--;
    } else if (s[len - 1] == '*') {
        pat->kind = GH_PAT_PREFIX;
        ll--;
    } else {
        pat->kind = GH_PAT_EXACT;
    }
    if (memchr(lit, '*', ll) != NULL)
        return gh_yaml_error(doc, n,
                             "'%s': '*' may stand alone (any value), start a value (suffix match) "
                             "or end it (prefix match), nowhere else",
                             s);
    pat->len = (uint32_t)ll;
    pat->s = dup_n(lit, ll);
    return pat->s == NULL ? gh_yaml_oom(doc) : 0;
}

/* A path as the listener's normalizer leaves it, or it could never match:
 * "/a/../b", "//a", "/%61" and "/a;x" are refused with the form to write. */
static int check_path(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const gh_pat_t *pat)
{
    const char *s = n->str;
    for (size_t i = 0; i < n->len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
            return gh_yaml_error(doc, n,
                                 "path '%s' may hold only visible ASCII without '?' and '#' "
                                 "(the query is not part of the path)",
                                 s);
    }
    if (pat->kind == GH_PAT_PRESENT)
        return 0;
    if ((pat->kind == GH_PAT_EXACT || pat->kind == GH_PAT_PREFIX) && pat->s[0] != '/')
        return gh_yaml_error(doc, n, "path '%s' must start with '/' (or '*' for a suffix)", s);
    /* Normalized with the defaults, the literal must not change; a suffix
     * is tried behind a segment of its own. */
    char in[GH_POL_MAX_VALUE + 8], out[GH_POL_MAX_VALUE + 8];
    size_t il = 0, ol = 0;
    const char *why = NULL;
    if (pat->kind == GH_PAT_SUFFIX) {
        memcpy(in, "/x", 2);
        il = 2;
    }
    memcpy(in + il, pat->s, pat->len);
    il += pat->len;
    gh_path_opts_t opts = GH_PATH_OPTS_DEFAULT;
    if (gh_path_normalize(in, il, &opts, out, &ol, &why) != GH_PATH_OK)
        return gh_yaml_error(doc, n,
                             "path '%s' could never match: requests with it are refused (%s)", s,
                             why ? why : "not a path");
    if (ol != il || memcmp(in, out, il) != 0)
        return gh_yaml_error(doc, n,
                             "path '%s' is not in normalized form (requests are compared after "
                             "normalization: it would read '%.*s')",
                             s, (int)(pat->kind == GH_PAT_SUFFIX ? ol - 2 : ol),
                             pat->kind == GH_PAT_SUFFIX ? out + 2 : out);
    return 0;
}

/* A host pattern: lower-cased (hosts compare case-insensitively, as the
 * routing does), without a port or a trailing dot (the routing removes
 * both before it compares). */
static int check_host(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_pat_t *pat)
{
    const char *s = n->str;
    int bracket = pat->len > 0 && pat->s[0] == '[';
    for (uint32_t i = 0; i < pat->len; i++) {
        char c = pat->s[i];
        if (c >= 'A' && c <= 'Z')
            pat->s[i] = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                   c == '_' || (bracket && (c == '[' || c == ']' || c == ':'))))
            return gh_yaml_error(doc, n,
                                 "host '%s' must be a host name or a bracketed IPv6 address, "
                                 "without a port (ports: compare the listener's port)",
                                 s);
    }
    if (pat->len > 0 && pat->s[pat->len - 1] == '.' && pat->kind != GH_PAT_PREFIX)
        return gh_yaml_error(doc, n, "host '%s': write it without the trailing dot", s);
    return 0;
}

/* request_principals: Istio's reading of "iss/sub" (the last '/' splits
 * them; '*' alone is any issuer and subject; a leading '*' is a suffix of
 * the issuer, or without '/', of the subject; a trailing '*' a prefix of
 * the subject, or without '/', of the issuer). */
static int parse_principal(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                           gh_principal_pat_t *pr)
{
    const char *s = n->str;
    size_t len = n->len;
    const char *slash = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '/')
            slash = s + i;
    const char *star = memchr(s, '*', len);
    if (len > 1 &&
        ((len > 2 && memchr(s + 1, '*', len - 2) != NULL) || (s[0] == '*' && s[len - 1] == '*')))
        return gh_yaml_error(doc, n,
                             "request principal '%s': '*' may stand alone, start it or end it, "
                             "once",
                             s);
    const char *iss = s, *sub = "";
    size_t il = len, sl = 0;
    if (slash != NULL) {
        il = (size_t)(slash - s);
        sub = slash + 1;
        sl = len - il - 1;
    } else if (star == NULL) {
        return gh_yaml_error(doc, n,
                             "request principal '%s' has no '/': it is \"issuer/subject\" (the "
                             "token's iss and sub)",
                             s);
    }
    gh_pat_kind_t ik = GH_PAT_EXACT, sk = GH_PAT_EXACT;
    if (len == 1) {
        ik = sk = GH_PAT_PRESENT;
        il = sl = 0;
    } else if (s[0] == '*') {
        if (slash != NULL) {
            ik = il == 1 ? GH_PAT_PRESENT : GH_PAT_SUFFIX;
            iss++;
            il--;
        } else {
            ik = GH_PAT_PRESENT;
            sk = GH_PAT_SUFFIX;
            sub = s + 1;
            sl = len - 1;
            il = 0;
        }
    } else if (s[len - 1] == '*') {
        if (slash != NULL) {
            sk = sl == 1 ? GH_PAT_PRESENT : GH_PAT_PREFIX;
            sl--;
        } else {
            ik = GH_PAT_PREFIX;
            il--;
            sk = GH_PAT_PRESENT;
        }
    }
    if ((ik == GH_PAT_EXACT && il == 0) || (sk == GH_PAT_EXACT && sl == 0))
        return gh_yaml_error(doc, n, "request principal '%s' has an empty issuer or subject", s);
    pr->iss.kind = (uint8_t)ik;
    pr->sub.kind = (uint8_t)sk;
    pr->iss.len = (uint32_t)(ik == GH_PAT_PRESENT ? 0 : il);
    pr->sub.len = (uint32_t)(sk == GH_PAT_PRESENT ? 0 : sl);
    pr->iss.s = dup_n(iss, pr->iss.len);
    pr->sub.s = dup_n(sub, pr->sub.len);
    return pr->iss.s == NULL || pr->sub.s == NULL ? gh_yaml_oom(doc) : 0;
}

static int parse_port(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, uint16_t *out)
{
    uint64_t v = 0;
    const char *s = n->str;
    if (n->len == 0 || n->len > 5)
        goto bad;
    for (size_t i = 0; i < n->len; i++) {
        if (s[i] < '0' || s[i] > '9')
            goto bad;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        goto bad;
    *out = (uint16_t)v;
    return 0;
bad:
    return gh_yaml_error(doc, n, "port '%s' must be a number from 1 to 65535", s);
}

/* The list at n into vs, read as attribute attr's values. */
static int parse_vset(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key,
                      uint8_t attr, gh_vset_t *vs)
{
    int rc;
    char omit[96];
    snprintf(omit, sizeof(omit), "leave '%s' out (an empty list would match nothing)", key);
    if ((rc = nonempty_seq(doc, n, key, omit)) != 0)
        return rc;
    size_t cnt = n->count;
    switch (attr) {
    case GH_ATTR_SOURCE_IP:
    case GH_ATTR_REMOTE_IP:
        vs->cidrs = calloc(cnt, sizeof(*vs->cidrs));
        break;
    case GH_ATTR_PRINCIPAL:
        vs->principals = calloc(cnt, sizeof(*vs->principals));
        break;
    case GH_ATTR_PORT:
        vs->ports = calloc(cnt, sizeof(*vs->ports));
        break;
    default:
        vs->pats = calloc(cnt, sizeof(*vs->pats));
    }
    if (vs->cidrs == NULL && vs->principals == NULL && vs->ports == NULL && vs->pats == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *e = n->head; e != NULL; e = e->next) {
        const char *s;
        if ((rc = gh_yaml_str(doc, e, key, &s)) != 0)
            return rc;
        if (e->len == 0)
            return gh_yaml_error(doc, e, "an empty value in '%s' matches nothing", key);
        if (e->len > GH_POL_MAX_VALUE)
            return gh_yaml_error(doc, e, "a value in '%s' is longer than %d bytes", key,
                                 GH_POL_MAX_VALUE);
        for (size_t i = 0; i < e->len; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                return gh_yaml_error(doc, e, "a value in '%s' holds a control character", key);
        uint32_t i = vs->n;
        const char *why;
        switch (attr) {
        case GH_ATTR_SOURCE_IP:
        case GH_ATTR_REMOTE_IP:
            if ((why = gh_cidr_parse(s, &vs->cidrs[i])) != NULL)
                return gh_yaml_error(doc, e, "'%s' in '%s' %s", s, key, why);
            break;
        case GH_ATTR_PRINCIPAL:
            vs->n++; /* counted first: a half-made entry is freed with the rest */
            if ((rc = parse_principal(doc, e, &vs->principals[i])) != 0)
                return rc;
            continue;
        case GH_ATTR_PORT:
            if ((rc = parse_port(doc, e, &vs->ports[i])) != 0)
                return rc;
            break;
        default:
            vs->n++;
            if (attr == GH_ATTR_PATH && strpbrk(s, "{}") != NULL)
                return gh_yaml_error(doc, e, "path '%s': path templates are not supported", s);
            if ((rc = parse_pat(doc, e, s, e->len, &vs->pats[i])) != 0)
                return rc;
            if (attr == GH_ATTR_METHOD) {
                if (vs->pats[i].kind != GH_PAT_EXACT)
                    return gh_yaml_error(doc, e,
                                         "method '%s' must be a method name, matched exactly", s);
                for (size_t k = 0; k < e->len; k++)
                    if (!gh_h1_is_tchar((unsigned char)s[k]))
                        return gh_yaml_error(doc, e, "method '%s' is not an HTTP token", s);
            } else if (attr == GH_ATTR_PATH) {
                if ((rc = check_path(doc, e, &vs->pats[i])) != 0)
                    return rc;
            } else if (attr == GH_ATTR_HOST) {
                if ((rc = check_host(doc, e, &vs->pats[i])) != 0)
                    return rc;
            } else if (attr == GH_ATTR_SCOPES && memchr(s, ' ', e->len) != NULL) {
                return gh_yaml_error(doc, e, "scope '%s' holds a space: scopes are single words",
                                     s);
            }
            continue;
        }
        vs->n++;
    }
    return 0;
}

/* ---- checks, sources, operations, conditions ---- */

/* Cheap checks first within an AND: the request line before the
 * identity, claims (which decode the token's payload) last. */
static int attr_cost(uint8_t a)
{
    static const uint8_t cost[GH_ATTR_COUNT] = {
        [GH_ATTR_PORT] = 0,      [GH_ATTR_METHOD] = 1,    [GH_ATTR_PATH] = 2,
        [GH_ATTR_HOST] = 3,      [GH_ATTR_PRINCIPAL] = 4, [GH_ATTR_CONSUMER] = 4,
        [GH_ATTR_SCOPES] = 5,    [GH_ATTR_HEADER] = 6,    [GH_ATTR_SOURCE_IP] = 7,
        [GH_ATTR_REMOTE_IP] = 7, [GH_ATTR_CLAIM] = 8,
    };
    return cost[a];
}

static void conj_sort(gh_conj_t *c)
{
    for (uint32_t i = 1; i < c->n; i++) {
        gh_check_t t = c->v[i];
        uint32_t j = i;
        while (j > 0 && attr_cost(c->v[j - 1].attr) > attr_cost(t.attr)) {
            c->v[j] = c->v[j - 1];
            j--;
        }
        c->v[j] = t;
    }
}

typedef struct {
    const char *pos, *neg;
    uint8_t attr;
} field_t;

static const field_t source_fields[] = {
    {"ip_blocks", "not_ip_blocks", GH_ATTR_SOURCE_IP},
    {"remote_ip_blocks", "not_remote_ip_blocks", GH_ATTR_REMOTE_IP},
    {"request_principals", "not_request_principals", GH_ATTR_PRINCIPAL},
    {"consumers", "not_consumers", GH_ATTR_CONSUMER},
};

static const field_t operation_fields[] = {
    {"hosts", "not_hosts", GH_ATTR_HOST},
    {"methods", "not_methods", GH_ATTR_METHOD},
    {"paths", "not_paths", GH_ATTR_PATH},
    {"ports", "not_ports", GH_ATTR_PORT},
};

/* A source or an operation: one check per field pair it names. */
static int parse_fields(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *what,
                        const field_t *fields, size_t nf, const char *const *keys, gh_conj_t *c)
{
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, what)) != 0 ||
        (rc = check_keys(doc, n, keys, what)) != 0)
        return rc;
    if (n->count == 0)
        return gh_yaml_error(doc, n, "an empty %s matches anything: leave it out", what);
    c->v = calloc(nf, sizeof(*c->v));
    if (c->v == NULL)
        return gh_yaml_oom(doc);
    for (size_t i = 0; i < nf; i++) {
        const gh_yaml_node_t *pk = gh_yaml_map_key(n, fields[i].pos);
        const gh_yaml_node_t *nk = gh_yaml_map_key(n, fields[i].neg);
        const gh_yaml_node_t *at = pk != NULL ? pk : nk;
        if (at == NULL)
            continue;
        gh_check_t *ck = &c->v[c->n++];
        ck->attr = fields[i].attr;
        ck->line = at->line;
        ck->col = at->col;
        if (pk != NULL) {
            ck->has_values = 1;
            if ((rc = parse_vset(doc, pk->value, fields[i].pos, ck->attr, &ck->values)) != 0)
                return rc;
        }
        if (nk != NULL) {
            ck->has_not = 1;
            if ((rc = parse_vset(doc, nk->value, fields[i].neg, ck->attr, &ck->not_values)) != 0)
                return rc;
        }
    }
    conj_sort(c);
    return 0;
}

static int parse_source(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_conj_t *c)
{
    static const char *const keys[] = {"ip_blocks",
                                       "not_ip_blocks",
                                       "remote_ip_blocks",
                                       "not_remote_ip_blocks",
                                       "request_principals",
                                       "not_request_principals",
                                       "consumers",
                                       "not_consumers",
                                       "principals",
                                       "not_principals",
                                       "namespaces",
                                       "not_namespaces",
                                       NULL};
    if (n->kind == GH_YAML_MAP) {
        static const char *const mtls[] = {"principals", "not_principals", "namespaces",
                                           "not_namespaces"};
        for (size_t i = 0; i < 4; i++) {
            const gh_yaml_node_t *k = gh_yaml_map_key(n, mtls[i]);
            if (k != NULL)
                return gh_yaml_error(doc, k,
                                     "'%s' (the peer's mTLS identity) is not supported yet: it "
                                     "arrives with mutual TLS; request_principals matches the "
                                     "token's iss/sub",
                                     mtls[i]);
        }
    }
    return parse_fields(doc, n, "'source'", source_fields, 4, keys, c);
}

static int parse_operation(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_conj_t *c,
                           uint8_t *has_paths)
{
    static const char *const keys[] = {"hosts",       "not_hosts", "methods",
                                       "not_methods", "paths",     "not_paths",
                                       "ports",       "not_ports", NULL};
    int rc = parse_fields(doc, n, "'operation'", operation_fields, 4, keys, c);
    for (uint32_t i = 0; rc == 0 && i < c->n; i++)
        if (c->v[i].attr == GH_ATTR_PATH)
            *has_paths = 1;
    return rc;
}

/* The index of claim path p in the section (added when new; p's strings
 * are taken either way). */
static int claim_index(const gh_yaml_doc_t *doc, gh_policy_section_t *sec, gh_claim_path_t *p,
                       uint32_t *out)
{
    for (size_t i = 0; i < sec->nclaims; i++) {
        const gh_claim_path_t *q = &sec->claims[i];
        int same = q->n == p->n;
        for (uint32_t k = 0; same && k < p->n; k++)
            same = q->lens[k] == p->lens[k] && memcmp(q->segs[k], p->segs[k], p->lens[k]) == 0;
        if (same) {
            gh_policy_claim_path_dispose(p);
            *out = (uint32_t)i;
            return 0;
        }
    }
    if (sec->nclaims == sec->claims_cap) {
        size_t cap = sec->claims_cap ? sec->claims_cap * 2 : 8;
        gh_claim_path_t *nc = realloc(sec->claims, cap * sizeof(*nc));
        if (nc == NULL) {
            gh_policy_claim_path_dispose(p);
            return gh_yaml_oom(doc);
        }
        sec->claims = nc;
        sec->claims_cap = cap;
    }
    sec->claims[sec->nclaims] = *p;
    *out = (uint32_t)sec->nclaims++;
    return 0;
}

static int claim_of_name(const gh_yaml_doc_t *doc, gh_policy_section_t *sec, const char *path,
                         uint32_t *out)
{
    gh_claim_path_t p;
    if (gh_policy_claim_path_parse(path, strlen(path), &p) != NULL)
        return gh_yaml_oom(doc);
    return claim_index(doc, sec, &p, out);
}

/* One `when` entry: {key, values, not_values}. The keys are Istio's
 * (https://istio.io/latest/docs/reference/config/security/conditions/),
 * plus request.auth.scopes; Istio ignores a key it does not know, this
 * refuses it. */
static int parse_condition(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                           gh_policy_section_t *sec, gh_check_t *ck)
{
    static const char *const keys[] = {"key", "values", "not_values", NULL};
    const gh_yaml_node_t *kn, *vk, *nk;
    const char *key;
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "an entry of 'when'")) != 0 ||
        (rc = check_keys(doc, n, keys, "an entry of 'when'")) != 0 ||
        (rc = gh_yaml_require(doc, n, "key", "an entry of 'when'", &kn)) != 0 ||
        (rc = gh_yaml_str(doc, kn, "key", &key)) != 0)
        return rc;
    vk = gh_yaml_map_key(n, "values");
    nk = gh_yaml_map_key(n, "not_values");
    if (vk == NULL && nk == NULL)
        return gh_yaml_error(doc, n, "condition '%s' needs 'values', 'not_values' or both", key);
    ck->line = kn->line;
    ck->col = kn->col;

    static const char hdr[] = "request.headers", clm[] = "request.auth.claims";
    if (strncmp(key, hdr, sizeof(hdr) - 1) == 0) {
        const char *b = key + sizeof(hdr) - 1;
        size_t bl = strlen(b);
        if (bl < 3 || b[0] != '[' || b[bl - 1] != ']')
            return gh_yaml_error(doc, kn,
                                 "condition key '%s': the header name goes in brackets, "
                                 "as request.headers[User-Agent]",
                                 key);
        for (size_t i = 1; i + 1 < bl; i++)
            if (!gh_h1_is_tchar((unsigned char)b[i]))
                return gh_yaml_error(doc, kn, "condition key '%s': '%.*s' is not a header name",
                                     key, (int)(bl - 2), b + 1);
        ck->attr = GH_ATTR_HEADER;
        ck->name_len = (uint32_t)(bl - 2);
        if ((ck->name = dup_n(b + 1, bl - 2)) == NULL)
            return gh_yaml_oom(doc);
        for (char *q = ck->name; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
    } else if (strncmp(key, clm, sizeof(clm) - 1) == 0) {
        gh_claim_path_t p;
        const char *why =
            gh_policy_claim_path_parse(key + sizeof(clm) - 1, strlen(key) - (sizeof(clm) - 1), &p);
        if (why != NULL)
            return gh_yaml_error(doc, kn, "condition key '%s' %s", key, why);
        ck->attr = GH_ATTR_CLAIM;
        if ((rc = claim_index(doc, sec, &p, &ck->claim)) != 0)
            return rc;
    } else if (strcmp(key, "request.auth.audiences") == 0) {
        ck->attr = GH_ATTR_CLAIM;
        if ((rc = claim_of_name(doc, sec, "[aud]", &ck->claim)) != 0)
            return rc;
    } else if (strcmp(key, "request.auth.presenter") == 0) {
        ck->attr = GH_ATTR_CLAIM;
        if ((rc = claim_of_name(doc, sec, "[azp]", &ck->claim)) != 0)
            return rc;
    } else if (strcmp(key, "request.auth.principal") == 0) {
        ck->attr = GH_ATTR_PRINCIPAL;
    } else if (strcmp(key, "request.auth.scopes") == 0) {
        ck->attr = GH_ATTR_SCOPES;
    } else if (strcmp(key, "source.ip") == 0) {
        ck->attr = GH_ATTR_SOURCE_IP;
    } else if (strcmp(key, "remote.ip") == 0) {
        ck->attr = GH_ATTR_REMOTE_IP;
    } else if (strcmp(key, "destination.port") == 0) {
        ck->attr = GH_ATTR_PORT;
    } else if (strcmp(key, "source.principal") == 0 || strcmp(key, "source.namespace") == 0) {
        return gh_yaml_error(doc, kn,
                             "condition key '%s' (the peer's mTLS identity) is not supported yet: "
                             "it arrives with mutual TLS",
                             key);
    } else if (strcmp(key, "connection.sni") == 0) {
        return gh_yaml_error(doc, kn,
                             "condition key 'connection.sni' is not supported yet: it arrives "
                             "with TLS");
    } else if (strcmp(key, "destination.ip") == 0) {
        return gh_yaml_error(doc, kn,
                             "condition key 'destination.ip' is not supported: attach the policy "
                             "to the listener of that address instead");
    } else {
        return gh_yaml_error(doc, kn,
                             "unknown condition key '%s' (request.headers[NAME], "
                             "request.auth.claims[NAME]..., request.auth.principal, "
                             "request.auth.audiences, request.auth.presenter, request.auth.scopes, "
                             "source.ip, remote.ip, destination.port)",
                             key);
    }
    if (vk != NULL) {
        ck->has_values = 1;
        if ((rc = parse_vset(doc, vk->value, "values", ck->attr, &ck->values)) != 0)
            return rc;
    }
    if (nk != NULL) {
        ck->has_not = 1;
        if ((rc = parse_vset(doc, nk->value, "not_values", ck->attr, &ck->not_values)) != 0)
            return rc;
    }
    return 0;
}

/* from: [{source: {...}}], to: [{operation: {...}}]: Istio's shape. */
static int parse_wrapped(const gh_yaml_doc_t *doc, const gh_yaml_node_t *list, const char *key,
                         const char *inner, gh_conj_t **out, uint32_t *count, uint8_t *has_paths)
{
    char omit[96], what[64];
    int rc;
    snprintf(omit, sizeof(omit), "leave '%s' out to match any %s", key, inner);
    if ((rc = nonempty_seq(doc, list, key, omit)) != 0)
        return rc;
    if ((*out = calloc(list->count, sizeof(**out))) == NULL)
        return gh_yaml_oom(doc);
    snprintf(what, sizeof(what), "an entry of '%s'", key);
    for (const gh_yaml_node_t *e = list->head; e != NULL; e = e->next) {
        const char *const keys[] = {inner, NULL};
        const gh_yaml_node_t *v;
        gh_conj_t *c = &(*out)[(*count)++];
        if ((rc = gh_yaml_expect(doc, e, GH_YAML_MAP, what)) != 0 ||
            (rc = check_keys(doc, e, keys, what)) != 0 ||
            (rc = gh_yaml_require(doc, e, inner, what, &v)) != 0)
            return rc;
        rc = has_paths != NULL ? parse_operation(doc, v, c, has_paths) : parse_source(doc, v, c);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int parse_rule(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_policy_section_t *sec,
                      gh_policy_t *pol, gh_rule_t *r)
{
    static const char *const keys[] = {"from", "to", "when", NULL};
    const gh_yaml_node_t *v;
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "a rule")) != 0 ||
        (rc = check_keys(doc, n, keys, "a rule")) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "from")) != NULL &&
        (rc = parse_wrapped(doc, v, "from", "source", &r->from, &r->nfrom, NULL)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "to")) != NULL &&
        (rc = parse_wrapped(doc, v, "to", "operation", &r->to, &r->nto, &pol->has_paths)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "when")) != NULL) {
        if ((rc = nonempty_seq(doc, v, "when", "leave 'when' out for no conditions")) != 0)
            return rc;
        if ((r->when.v = calloc(v->count, sizeof(*r->when.v))) == NULL)
            return gh_yaml_oom(doc);
        for (const gh_yaml_node_t *e = v->head; e != NULL; e = e->next) {
            gh_check_t *ck = &r->when.v[r->when.n++];
            if ((rc = parse_condition(doc, e, sec, ck)) != 0)
                return rc;
            if (ck->attr == GH_ATTR_CLAIM)
                pol->has_claims = 1;
        }
        conj_sort(&r->when);
    }
    return 0;
}

/* Names end up in JSON bodies, log notes, metric labels and lists joined
 * by ',': a DNS-like name keeps all of those plain. */
static int check_policy_name(const gh_yaml_doc_t *doc, const gh_yaml_node_t *k)
{
    int ok = k->len >= 1 && k->len <= GH_POL_MAX_NAME;
    for (size_t i = 0; ok && i < k->len; i++) {
        char c = k->str[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_' || c == '.';
    }
    if (!ok)
        return gh_yaml_error(doc, k,
                             "policy name '%s' must be 1 to %d letters, digits, '-', '_' or '.'",
                             k->str, GH_POL_MAX_NAME);
    return 0;
}

/* CUSTOM's provider, as Istio names its extension provider
 * (`provider: {name: NAME}`), or the name alone: an authorizer of
 * providers.authorizers. */
static int parse_provider(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const gh_config_t *cfg,
                          gh_policy_t *pol)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(n, "provider");
    if (pol->action != GH_POL_CUSTOM) {
        if (v != NULL)
            return gh_yaml_error(doc, v, "'provider' is for action CUSTOM");
        return 0;
    }
    if (v == NULL)
        return gh_yaml_error(doc, n,
                             "a CUSTOM policy names its provider: 'provider: {name: AUTHORIZER}'");
    const gh_yaml_node_t *name = v;
    if (v->kind == GH_YAML_MAP) {
        static const char *const keys[] = {"name", NULL};
        int rc = gh_yaml_check_keys(doc, v, keys, "provider");
        if (rc != 0)
            return rc;
        if ((name = gh_yaml_map_get(v, "name")) == NULL)
            return gh_yaml_error(doc, v, "provider needs 'name'");
    }
    if (name->kind != GH_YAML_SCALAR)
        return gh_yaml_error(doc, name, "provider's name is the name of an authorizer");
    for (size_t i = 0; i < cfg->num_authorizers; i++)
        if (strcmp(cfg->authorizers[i].name, name->str) == 0) {
            pol->provider = i;
            return 0;
        }
    return gh_yaml_error(doc, name, "provider '%s' is not an authorizer (providers.authorizers)",
                         name->str);
}

static int parse_policy(const gh_yaml_doc_t *doc, const gh_yaml_node_t *k, gh_policy_section_t *sec,
                        const gh_config_t *cfg, gh_policy_t *pol)
{
    static const char *const keys[] = {"action", "dry_run", "rules", "provider", NULL};
    const gh_yaml_node_t *n = k->value, *v;
    char what[GH_POL_MAX_NAME + 16];
    int rc, b;
    if ((rc = check_policy_name(doc, k)) != 0)
        return rc;
    if ((pol->name = dup_n(k->str, k->len)) == NULL)
        return gh_yaml_oom(doc);
    pol->line = k->line;
    pol->col = k->col;
    snprintf(what, sizeof(what), "policy '%s'", pol->name);
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, what)) != 0 ||
        (rc = check_keys(doc, n, keys, what)) != 0)
        return rc;
    pol->action = GH_POL_ALLOW;
    if ((v = gh_yaml_map_get(n, "action")) != NULL) {
        if (v->kind != GH_YAML_SCALAR)
            return gh_yaml_error(doc, v, "'action' must be ALLOW, DENY or CUSTOM");
        if (strcasecmp(v->str, "allow") == 0)
            pol->action = GH_POL_ALLOW;
        else if (strcasecmp(v->str, "deny") == 0)
            pol->action = GH_POL_DENY;
        else if (strcasecmp(v->str, "custom") == 0)
            pol->action = GH_POL_CUSTOM;
        else if (strcasecmp(v->str, "audit") == 0)
            return gh_yaml_error(doc, v,
                                 "action AUDIT is not supported: use 'dry_run: true' to log and "
                                 "count what a policy would decide");
        else
            return gh_yaml_error(doc, v, "'action' must be ALLOW, DENY or CUSTOM");
    }
    if ((rc = parse_provider(doc, n, cfg, pol)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "dry_run")) != NULL) {
        if ((rc = gh_yaml_bool(doc, v, "dry_run", &b)) != 0)
            return rc;
        pol->dry_run = (uint8_t)(b != 0);
    }
    /* Istio: rules not set, the policy matches nothing (an ALLOW policy
     * without rules then allows nothing, a DENY one denies nothing). */
    if ((v = gh_yaml_map_get(n, "rules")) != NULL) {
        if ((rc = nonempty_seq(doc, v, "rules",
                               "leave 'rules' out for a policy that matches nothing")) != 0)
            return rc;
        if ((pol->rules = calloc(v->count, sizeof(*pol->rules))) == NULL)
            return gh_yaml_oom(doc);
        for (const gh_yaml_node_t *r = v->head; r != NULL; r = r->next)
            if ((rc = parse_rule(doc, r, sec, pol, &pol->rules[pol->nrules++])) != 0)
                return rc;
    }
    return 0;
}

int gh_policy_parse_section(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                            void **out)
{
    int rc;
    *out = NULL;
    if (node == NULL)
        return 0;
    if ((rc = gh_yaml_expect(doc, node, GH_YAML_MAP, "'policies'")) != 0)
        return rc;
    if (node->count == 0)
        return gh_yaml_error(doc, node, "'policies' is empty: leave it out");
    gh_policy_section_t *sec = calloc(1, sizeof(*sec));
    if (sec == NULL || (sec->v = calloc(node->count, sizeof(*sec->v))) == NULL) {
        free(sec);
        return gh_yaml_oom(doc);
    }
    static uint64_t next_id; /* main thread */
    sec->id = ++next_id;
    for (const gh_yaml_node_t *k = node->head; k != NULL; k = k->next)
        if ((rc = parse_policy(doc, k, sec, cfg, &sec->v[sec->n++])) != 0) {
            gh_policy_free_section(sec);
            return rc;
        }
    *out = sec;
    return 0;
}

/* ---- attachment ---- */

void gh_policy_free_conf(void *p)
{
    gh_policy_route_conf_t *c = p;
    if (c == NULL)
        return;
    free(c->v);
    free(c);
}

static const gh_policy_t *find_policy(const gh_policy_section_t *sec, const char *name)
{
    for (size_t i = 0; sec != NULL && i < sec->n; i++)
        if (strcmp(sec->v[i].name, name) == 0)
            return &sec->v[i];
    return NULL;
}

/* Appends the policies named by n (a name or a list of names) to c. base:
 * how many of c's were inherited from the listener (named again: an
 * error). */
static int add_names(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                     const gh_policy_section_t *sec, gh_policy_route_conf_t *c, size_t base,
                     const char *listener)
{
    const gh_yaml_node_t *one = n->kind == GH_YAML_SCALAR ? n : NULL;
    int rc;
    if (one == NULL &&
        (rc = nonempty_seq(doc, n, "policies", "leave 'policies' out for no policies")) != 0)
        return rc;
    size_t want = c->n + (one != NULL ? 1 : n->count);
    if (want > GH_POL_MAX_PER_ROUTE)
        return gh_yaml_error(doc, n, "more than %d policies would govern one route",
                             GH_POL_MAX_PER_ROUTE);
    const gh_policy_t **v = realloc(c->v, want * sizeof(*v));
    if (v == NULL)
        return gh_yaml_oom(doc);
    c->v = v;
    for (const gh_yaml_node_t *e = one != NULL ? one : n->head; e != NULL;
         e = one != NULL ? NULL : e->next) {
        const char *name;
        if ((rc = gh_yaml_str(doc, e, "policies", &name)) != 0)
            return rc;
        const gh_policy_t *p = find_policy(sec, name);
        if (p == NULL)
            return gh_yaml_error(doc, e, "unknown policy '%s'%s", name,
                                 sec == NULL ? " (there is no 'policies' section)" : "");
        for (size_t i = 0; i < c->n; i++) {
            if (c->v[i] != p)
                continue;
            if (i < base)
                return gh_yaml_error(doc, e,
                                     "policy '%s' is attached to listener '%s' already, which "
                                     "applies it to every route of it",
                                     name, listener);
            return gh_yaml_error(doc, e, "policy '%s' is listed twice", name);
        }
        c->v[c->n++] = p;
    }
    return 0;
}

/* A path check compares the normalized path: a listener that forwards
 * paths as received would let "/public/../admin" through an ALLOW of the
 * prefix "/public/". */
static int check_normalized(const gh_yaml_doc_t *doc, const gh_yaml_node_t *at,
                            const gh_policy_route_conf_t *c, const gh_listener_conf_t *l)
{
    if (l->path.normalize)
        return 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i]->has_paths)
            return gh_yaml_error(doc, at,
                                 "policy '%s' matches paths, but listener '%s' has "
                                 "normalize_path: false: '..' and escapes would step around it",
                                 c->v[i]->name, l->name);
    return 0;
}

int gh_policy_parse_listener(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                             gh_listener_conf_t *l, void **out)
{
    gh_policy_route_conf_t *c = calloc(1, sizeof(*c));
    int rc;
    *out = NULL;
    if (c == NULL)
        return gh_yaml_oom(doc);
    if ((rc = add_names(doc, node, gh_config_section(cfg, &gh_policy_filter), c, 0, l->name)) !=
            0 ||
        (rc = check_normalized(doc, node, c, l)) != 0) {
        gh_policy_free_conf(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* A header that a provider of the route sets from the token (dropping the
 * client's copies on the way up) still holds the client's value when a
 * policy reads the request: refused, so that a policy never trusts a
 * forgeable copy of an identity. */
static int check_headers(const gh_yaml_doc_t *doc, const gh_policy_route_conf_t *c,
                         const gh_route_t *r)
{
    for (size_t i = 0; r->authn != NULL && i < c->n; i++) {
        const gh_policy_t *pol = c->v[i];
        for (uint32_t j = 0; j < pol->nrules; j++) {
            const gh_conj_t *w = &pol->rules[j].when;
            for (uint32_t k = 0; k < w->n; k++) {
                const gh_check_t *ck = &w->v[k];
                if (ck->attr != GH_ATTR_HEADER)
                    continue;
                for (size_t p = 0; p < r->authn->num_providers; p++) {
                    const gh_jwt_provider_conf_t *pv = r->authn->providers[p];
                    int sets = pv->payload_header != NULL &&
                               gh_field_name_same(pv->payload_header, strlen(pv->payload_header),
                                                  ck->name, ck->name_len);
                    for (size_t h = 0; !sets && h < pv->num_claims_to_headers; h++)
                        sets = gh_field_name_same(pv->claims_to_headers[h].header,
                                                  strlen(pv->claims_to_headers[h].header), ck->name,
                                                  ck->name_len);
                    if (sets)
                        return err_at(doc, ck->line, ck->col,
                                      "policy '%s' reads request.headers[%s], which provider '%s' "
                                      "of route '%s' sets from the token: the policy would read "
                                      "the client's own copy; read the claim "
                                      "(request.auth.claims[...]) instead",
                                      pol->name, ck->name, pv->name, r->name);
                }
                for (size_t p = 0; p < r->authn->num_apikeys; p++) {
                    const gh_apikey_provider_conf_t *ak = r->authn->apikeys[p];
                    if (ak->consumer_header != NULL &&
                        gh_field_name_same(ak->consumer_header, strlen(ak->consumer_header),
                                           ck->name, ck->name_len))
                        return err_at(doc, ck->line, ck->col,
                                      "policy '%s' reads request.headers[%s], which provider '%s' "
                                      "of route '%s' sets to the API key's consumer: the policy "
                                      "would read the client's own copy; use 'consumers' instead",
                                      pol->name, ck->name, ak->name, r->name);
                }
            }
        }
    }
    return 0;
}

int gh_policy_parse_route(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                          gh_route_t *r, void **out)
{
    const gh_policy_route_conf_t *lc = gh_config_listener_conf(cfg, r->listener, &gh_policy_filter);
    const gh_listener_conf_t *l = &cfg->listeners[r->listener];
    gh_policy_route_conf_t *c = calloc(1, sizeof(*c));
    int rc = 0;
    *out = NULL;
    if (c == NULL)
        return gh_yaml_oom(doc);
    if (lc != NULL && lc->n > 0) {
        if ((c->v = malloc(lc->n * sizeof(*c->v))) == NULL) {
            free(c);
            return gh_yaml_oom(doc);
        }
        memcpy(c->v, lc->v, lc->n * sizeof(*c->v));
        c->n = lc->n;
    }
    if (node != NULL) {
        gh_policy_route_conf_t own = {0};
        size_t base = c->n;
        rc = add_names(doc, node, gh_config_section(cfg, &gh_policy_filter), c, base, l->name);
        own.v = c->v + base;
        own.n = c->n - base;
        if (rc == 0)
            rc = check_normalized(doc, node, &own, l);
    }
    if (rc == 0)
        rc = check_headers(doc, c, r);
    if (rc != 0) {
        gh_policy_free_conf(c);
        return rc;
    }
    *out = c;
    return 0;
}
