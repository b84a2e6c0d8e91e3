/*
 * IAM policies returned by Lambda authorizers, compiled once and evaluated
 * against each request's method ARN (a cached answer is evaluated again
 * for every later request, as API Gateway does).
 *
 * The grammar kept is IAM's for these policies: Version, Id, and Statement
 * (an array, or a single object); each statement Effect (exactly "Allow"
 * or "Deny"), Action and Resource (a string or an array of strings), Sid.
 * NotAction, NotResource, Condition and Principal are refused, not
 * ignored: ignoring a Condition would widen an Allow. Actions match
 * "execute-api:Invoke" with ASCII case ignored (IAM: "The prefix and the
 * action name are case insensitive"), resources match the ARN exactly;
 * both take '*' and '?' wildcards. A matching Deny wins; no matching
 * Allow denies.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "authorizer/authz.h"

typedef struct {
    uint32_t off, len;
} pat_t;

typedef struct {
    uint8_t deny;
    uint32_t a0, na; /* actions: pats[a0 .. a0 + na) */
    uint32_t r0, nr; /* resources */
} stmt_t;

struct gh_authz_policy_s {
    stmt_t *st;
    uint32_t nst;
    pat_t *pats;
    uint32_t npats;
    char *text; /* every pattern, back to back */
    size_t text_len;
};

/* The length of the UTF-8 sequence at s[i] (1 for a byte that starts
 * none, so that any input advances). */
static size_t u8len(const char *s, size_t i, size_t n)
{
    unsigned char c = (unsigned char)s[i];
    size_t k = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    return i + k <= n ? k : n - i;
}

static int ceq(char a, char b, int fold)
{
    if (fold) {
        if (a >= 'A' && a <= 'Z')
            a = (char)(a | 0x20);
        if (b >= 'A' && b <= 'Z')
            b = (char)(b | 0x20);
    }
    return a == b;
}

/*
 * The greedy match with one backtrack point: on a mismatch, the last '*'
 * takes one more character and the rest of the pattern is tried again from
 * there. Earlier stars never need to move (whatever a later star can
 * absorb, it absorbs), so each text position restarts the pattern at most
 * once per star position: O(pn * sn) comparisons, where a naive recursive
 * matcher is exponential in the number of stars.
 */
int gh_authz_glob(const char *p, size_t pn, const char *s, size_t sn, int fold, uint64_t *steps)
{
    size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;
    uint64_t k = 0;
    while (si < sn) {
        k++;
        if (pi < pn && p[pi] == '*') {
            star_p = ++pi;
            star_s = si;
        } else if (pi < pn && p[pi] == '?') {
            pi++;
            si += u8len(s, si, sn);
        } else if (pi < pn && ceq(p[pi], s[si], fold)) {
            pi++;
            si++;
        } else if (star_p != (size_t)-1) {
            pi = star_p;
            star_s += u8len(s, star_s, sn);
            si = star_s;
        } else {
            break;
        }
    }
    while (pi < pn && p[pi] == '*')
        pi++, k++;
    if (steps != NULL)
        *steps += k;
    return si >= sn && pi == pn;
}

void gh_authz_policy_free(gh_authz_policy_t *p)
{
    if (p == NULL)
        return;
    free(p->st);
    free(p->pats);
    free(p->text);
    free(p);
}

/* Counts the strings of an Action or Resource value (a string or an array
 * of them) and their bytes; -1 when it is neither. */
static long count_strings(const json_t *v, size_t *bytes, size_t max_one)
{
    if (json_is_string(v)) {
        if (json_string_length(v) > max_one)
            return -1;
        *bytes += json_string_length(v);
        return 1;
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return -1;
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || json_string_length(e) > max_one)
            return -1;
        *bytes += json_string_length(e);
    }
    return (long)json_array_size(v);
}

static void add_strings(gh_authz_policy_t *p, const json_t *v)
{
    size_t n = json_is_string(v) ? 1 : json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_string(v) ? v : json_array_get(v, i);
        size_t len = json_string_length(e);
        memcpy(p->text + p->text_len, json_string_value(e), len);
        p->pats[p->npats].off = (uint32_t)p->text_len;
        p->pats[p->npats].len = (uint32_t)len;
        p->npats++;
        p->text_len += len;
    }
}

static const char *check_statement(const json_t *s, size_t *npats, size_t *bytes)
{
    if (!json_is_object(s))
        return "a policy statement is not an object";
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)s, key, v)
    {
        if (strcmp(key, "Effect") == 0 || strcmp(key, "Action") == 0 ||
            strcmp(key, "Resource") == 0)
            continue;
        if (strcmp(key, "Sid") == 0) {
            if (!json_is_string(v))
                return "a statement's Sid is not a string";
            continue;
        }
        if (strcmp(key, "NotAction") == 0 || strcmp(key, "NotResource") == 0 ||
            strcmp(key, "Condition") == 0 || strcmp(key, "Principal") == 0 ||
            strcmp(key, "NotPrincipal") == 0)
            return "a statement uses NotAction, NotResource, Condition or Principal, which "
                   "gatehouse does not evaluate";
        return "a statement has a member IAM does not define";
    }
    const json_t *eff = json_object_get(s, "Effect");
    if (!json_is_string(eff) || (strcmp(json_string_value(eff), "Allow") != 0 &&
                                 strcmp(json_string_value(eff), "Deny") != 0))
        return "a statement's Effect is not \"Allow\" or \"Deny\"";
    long na = count_strings(json_object_get(s, "Action"), bytes, GH_AUTHZ_MAX_RESOURCE);
    if (na < 0)
        return "a statement's Action is not a string or a non-empty array of strings";
    long nr = count_strings(json_object_get(s, "Resource"), bytes, GH_AUTHZ_MAX_RESOURCE);
    if (nr < 0)
        return "a statement's Resource is not a string or a non-empty array of strings of at "
               "most 512 bytes";
    *npats += (size_t)na + (size_t)nr;
    if (*npats > GH_AUTHZ_MAX_PATTERNS || *bytes > GH_AUTHZ_MAX_PATTERN_BYTES)
        return "the policy has too many actions and resources";
    return NULL;
}

int gh_authz_policy_compile(const json_t *doc, gh_authz_policy_t **out, const char **why)
{
    *out = NULL;
    *why = NULL;
    if (!json_is_object(doc)) {
        *why = "policyDocument is not an object";
        return GH_AUTHZ_EBAD;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)doc, key, v)
    {
        if (strcmp(key, "Version") == 0) {
            if (!json_is_string(v) || (strcmp(json_string_value(v), "2012-10-17") != 0 &&
                                       strcmp(json_string_value(v), "2008-10-17") != 0)) {
                *why = "policyDocument's Version is not \"2012-10-17\" or \"2008-10-17\"";
                return GH_AUTHZ_EBAD;
            }
        } else if (strcmp(key, "Id") == 0) {
            if (!json_is_string(v)) {
                *why = "policyDocument's Id is not a string";
                return GH_AUTHZ_EBAD;
            }
        } else if (strcmp(key, "Statement") != 0) {
            *why = "policyDocument has a member IAM does not define";
            return GH_AUTHZ_EBAD;
        }
    }
    const json_t *st = json_object_get(doc, "Statement");
    if (st == NULL || (!json_is_array(st) && !json_is_object(st))) {
        *why = "policyDocument's Statement is not an array or an object";
        return GH_AUTHZ_EBAD;
    }
    size_t nst = json_is_object(st) ? 1 : json_array_size(st), npats = 0, bytes = 0;
    if (nst > GH_AUTHZ_MAX_PATTERNS) {
        *why = "the policy has too many statements";
        return GH_AUTHZ_EBAD;
    }
    for (size_t i = 0; i < nst; i++) {
        const json_t *s = json_is_object(st) ? st : json_array_get(st, i);
        if ((*why = check_statement(s, &npats, &bytes)) != NULL)
            return GH_AUTHZ_EBAD;
    }
    gh_authz_policy_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->st = calloc(nst ? nst : 1, sizeof(*p->st));
    p->pats = calloc(npats ? npats : 1, sizeof(*p->pats));
    p->text = malloc(bytes ? bytes : 1);
    if (p->st == NULL || p->pats == NULL || p->text == NULL) {
        gh_authz_policy_free(p);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nst; i++) {
        const json_t *s = json_is_object(st) ? st : json_array_get(st, i);
        stmt_t *t = &p->st[p->nst++];
        t->deny = strcmp(json_string_value(json_object_get(s, "Effect")), "Deny") == 0;
        t->a0 = p->npats;
        add_strings(p, json_object_get(s, "Action"));
        t->na = p->npats - t->a0;
        t->r0 = p->npats;
        add_strings(p, json_object_get(s, "Resource"));
        t->nr = p->npats - t->r0;
    }
    *out = p;
    return 0;
}

static int any_match(const gh_authz_policy_t *p, uint32_t from, uint32_t n, const char *s,
                     size_t sn, int fold)
{
    for (uint32_t i = from; i < from + n; i++)
        if (gh_authz_glob(p->text + p->pats[i].off, p->pats[i].len, s, sn, fold, NULL))
            return 1;
    return 0;
}

gh_authz_decision_t gh_authz_policy_eval(const gh_authz_policy_t *p, const char *arn, size_t n)
{
    static const char action[] = "execute-api:Invoke";
    int allowed = 0;
    if (p == NULL)
        return GH_AUTHZ_DENY_IMPLICIT;
    for (uint32_t i = 0; i < p->nst; i++) {
        const stmt_t *t = &p->st[i];
        if (!t->deny && allowed)
            continue; /* only a Deny can change the outcome now */
        if (!any_match(p, t->a0, t->na, action, sizeof(action) - 1, 1) ||
            !any_match(p, t->r0, t->nr, arn, n, 0))
            continue;
        if (t->deny)
            return GH_AUTHZ_DENY_EXPLICIT;
        allowed = 1;
    }
    return allowed ? GH_AUTHZ_ALLOW : GH_AUTHZ_DENY_IMPLICIT;
}
