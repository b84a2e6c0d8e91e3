/* Where a route's providers find a token (headers, cookies, query), and
 * how forward_token: false strips every location. See internal.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gatehouse/metrics.h>
#include <gatehouse/pairs.h>

#include "filters/jwt/internal.h"

/* ---- token location ---- */

int gh_jwtf_same_token(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (a == b || memcmp(a, b, an) == 0);
}

/* A cookie's name as servers read it: without the spaces or tabs around
 * it (RFC 6265 section 5.2 trims them), so "token =x" is the cookie
 * "token". */
static int cookie_name_is(const gh_pair_t *pr, const char *name, size_t n)
{
    const char *p = pr->name;
    size_t l = pr->name_len;
    while (l > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        l--;
    }
    while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
        l--;
    /* Then as a query name is read (gatehouse/pairs.h): nginx's
     * $cookie_NAME ignores case and PHP percent-decodes cookie names, so an
     * upstream could read "Session=" or "%73ession=" as "session". */
    gh_pair_t trimmed = *pr;
    trimmed.name = p;
    trimmed.name_len = l;
    return gh_pair_name_decoded_is(&trimmed, name, n);
}

/* The cookie name's pairs in one Cookie field: each is added to *copies;
 * the last one's value goes to *out. */
static void find_in_cookie(const char *v, size_t vn, const char *name, size_t nn, found_t *out,
                           unsigned *copies)
{
    gh_pairs_t it;
    gh_pair_t pr;
    gh_pairs_init(&it, v, vn, ';');
    while (gh_pairs_next(&it, &pr)) {
        if (cookie_name_is(&pr, name, nn)) {
            out->p = pr.value;
            out->n = pr.value_len;
            (*copies)++;
        }
    }
}

/* v starts with prefix, ASCII case ignored (v holds at least n bytes). The
 * usual spelling ("Bearer") is one memcmp. */
static inline int prefix_is(const char *v, const char *prefix, size_t n)
{
    return n == 0 || memcmp(v, prefix, n) == 0 || strncasecmp(v, prefix, n) == 0;
}

/* Adds a token found at one place to what a location holds so far:
 * -1 when it differs from one found before. */
static int take(found_t *cand, const char *v, size_t n)
{
    if (cand->p != NULL && !gh_jwtf_same_token(cand->p, cand->n, v, n))
        return -1;
    cand->p = v;
    cand->n = n;
    return 0;
}

/* Whether c may continue an auth-scheme (RFC 9110 section 5.6.2 tchar). */
static int tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* What follows the prefix (and spaces) in h, a field of the location's
 * name. The auth-scheme is case-insensitive (RFC 9110 11.1); another
 * scheme (Basic, or "Bearerx") is simply not a bearer token. A prefix's
 * trailing space stands for anything that ends the scheme word: RFC 9110
 * wants one SP there, but upstreams that split on any whitespace read
 * "Bearer<TAB>token", or "Bearer<NBSP>token" once decoded as Latin-1, as a
 * bearer token. So that is a token here too, verified (and refused when
 * malformed) rather than passed on unverified, as another scheme, by an
 * optional route. */
static inline int take_header(const gh_h1_header_t *h, const gh_token_from_t *from, found_t *cand)
{
    size_t pl = from->prefix_len;
    int sep = pl > 0 && from->prefix[pl - 1] == ' ';
    if (sep)
        pl--;
    if (h->value_len < pl || !prefix_is(h->value, from->prefix, pl))
        return 0;
    const char *v = h->value + pl;
    size_t n = h->value_len - pl;
    if (sep && (n == 0 || tchar((unsigned char)*v)))
        return 0;
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    return n > 0 ? take(cand, v, n) : 0;
}

/* Authorization, the usual location, is a singleton the stream has found
 * already (gh_stream_authorization): no scan of the fields for it. */
static int is_authorization(const gh_token_from_t *from)
{
    return from->name_len == 13 && memcmp(from->name, "authorization", 13) == 0;
}

/* A header location: every field of that name. */
static int find_in_headers(const gh_stream_t *s, const gh_token_from_t *from, found_t *cand)
{
    if (is_authorization(from)) {
        const gh_h1_header_t *h = gh_stream_authorization(s);
        return h != NULL ? take_header(h, from, cand) : 0;
    }
    size_t nh;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
    for (size_t j = 0; j < nh; j++)
        if (gh_h1_name_is(&hs[j], from->name, from->name_len) &&
            take_header(&hs[j], from, cand) < 0)
            return -1;
    return 0;
}

/* A cookie location: the pair of that name in the Cookie fields. A name
 * that appears twice (in one field or two, with or without a value, equal
 * or not) is refused: servers disagree on which one counts, so the upstream
 * could read one gatehouse did not check. */
static int find_in_cookies(const gh_h1_header_t *hs, size_t nh, const gh_token_from_t *from,
                           found_t *cand)
{
    found_t c = {NULL, 0, from};
    unsigned copies = 0;
    for (size_t j = 0; j < nh; j++)
        if (GH_H1_NAME_IS(&hs[j], "cookie"))
            find_in_cookie(hs[j].value, hs[j].value_len, from->name, from->name_len, &c, &copies);
    if (copies > 1)
        return -1;
    if (c.p != NULL && c.n > 0 && take(cand, c.p, c.n) < 0)
        return -1;
    return 0;
}

/* A query location: the parameter of that name, percent-decoded. As for
 * cookies, a name given twice is refused (frameworks take the first, the
 * last, or a list). */
static int find_in_query(gh_stream_t *s, const gh_token_from_t *from, found_t *cand)
{
    const char *method, *path, *query;
    size_t method_len, path_len, query_len;
    gh_stream_request_line(s, &method, &method_len, &path, &path_len, &query, &query_len);
    gh_pairs_t it;
    gh_pair_t pr;
    found_t c = {NULL, 0, NULL};
    unsigned copies = 0;
    gh_pairs_init(&it, query, query_len, '&');
    while (gh_pairs_next(&it, &pr)) {
        if (gh_pair_name_decoded_is(&pr, from->name, from->name_len)) {
            c.p = pr.value;
            c.n = pr.value_len;
            copies++;
        }
    }
    if (copies > 1)
        return -1;
    if (c.p != NULL && c.n > 0 && take(cand, c.p, c.n) < 0)
        return -1;
    return 0;
}

/* The token one location holds, into *cand (p NULL: none). -1 when it
 * holds two different ones or a name twice. */
int gh_jwtf_find_at(gh_stream_t *s, const gh_h1_header_t *hs, size_t nh,
                    const gh_token_from_t *from, found_t *cand)
{
    return from->kind == GH_TOKEN_FROM_QUERY    ? find_in_query(s, from, cand)
           : from->kind == GH_TOKEN_FROM_COOKIE ? find_in_cookies(hs, nh, from, cand)
                                                : find_in_headers(s, from, cand);
}

/* The token a provider's locations hold. Returns 0 none, 1 one, -1 two
 * different ones. */
int gh_jwtf_find_token(gh_stream_t *s, const gh_jwt_provider_conf_t *p, found_t *out)
{
    if (p->num_from == 1 && p->from[0].kind == GH_TOKEN_FROM_HEADER) {
        /* One header location (the default, Authorization): the loop
         * below without locations to reconcile. */
        const gh_token_from_t *from = &p->from[0];
        found_t cand = {NULL, 0, from};
        if (is_authorization(from)) {
            const gh_h1_header_t *h = gh_stream_authorization(s);
            if (h != NULL)
                take_header(h, from, &cand); /* the first token: nothing to differ from */
        } else if (find_in_headers(s, from, &cand) < 0) {
            return -1;
        }
        *out = cand.p != NULL ? cand : (found_t){NULL, 0, NULL};
        return cand.p != NULL;
    }
    found_t f = {NULL, 0, NULL};
    size_t nh;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
    for (size_t i = 0; i < p->num_from; i++) {
        const gh_token_from_t *from = &p->from[i];
        found_t cand = {NULL, 0, from};
        if (gh_jwtf_find_at(s, hs, nh, from, &cand) < 0)
            return -1;
        if (cand.p == NULL)
            continue;
        if (f.p != NULL && !gh_jwtf_same_token(f.p, f.n, cand.p, cand.n))
            return -1;
        if (f.p == NULL)
            f = cand;
    }
    *out = f;
    return f.p != NULL;
}

int gh_jwtf_strip_init(gh_stream_t *s, const gh_authn_conf_t *a, strip_t *st)
{
    size_t cap = 0;
    for (size_t i = 0; i < a->num_providers; i++)
        cap += a->providers[i]->num_from;
    for (size_t i = 0; i < a->num_apikeys; i++)
        cap += a->apikeys[i]->num_from;
    memset(st, 0, sizeof(*st));
    st->cap = cap;
    st->v = cap > 0 ? gh_stream_alloc(s, cap * sizeof(*st->v)) : NULL;
    return cap > 0 && st->v == NULL ? -1 : 0;
}

void gh_jwtf_strip_add(strip_t *st, const gh_token_from_t *from)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->v[i] == from)
            return;
    if (st->n == st->cap)
        return; /* cannot happen: cap counts every location of the route */
    st->v[st->n++] = from;
    st->cookies += from->kind == GH_TOKEN_FROM_COOKIE;
    st->queries += from->kind == GH_TOKEN_FROM_QUERY;
}

void gh_jwtf_strip_add_provider(strip_t *st, const gh_jwt_provider_conf_t *p)
{
    for (size_t i = 0; i < p->num_from; i++)
        gh_jwtf_strip_add(st, &p->from[i]);
}

static int strip_has(const strip_t *st, gh_token_from_kind_t kind, const gh_pair_t *pr)
{
    for (size_t i = 0; i < st->n; i++) {
        const gh_token_from_t *f = st->v[i];
        if (f->kind != kind)
            continue;
        if (kind == GH_TOKEN_FROM_COOKIE ? cookie_name_is(pr, f->name, f->name_len)
                                         : gh_pair_name_decoded_is(pr, f->name, f->name_len))
            return 1;
    }
    return 0;
}

/* Every Cookie field becomes one, without the stripped pairs. */
static int strip_cookies(gh_stream_t *s, const strip_t *st)
{
    size_t nh;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
    size_t cap = 1;
    for (size_t i = 0; i < nh; i++)
        if (GH_H1_NAME_IS(&hs[i], "cookie"))
            cap += 2 * hs[i].value_len + 2; /* "a;b" may become "a; b" */
    char *out = gh_stream_alloc(s, cap);
    size_t o = 0;
    if (out == NULL)
        return -1;
    for (size_t i = 0; i < nh; i++) {
        const gh_h1_header_t *h = &hs[i];
        if (!GH_H1_NAME_IS(h, "cookie"))
            continue;
        gh_pairs_t it;
        gh_pair_t pr;
        gh_pairs_init(&it, h->value, h->value_len, ';');
        while (gh_pairs_next(&it, &pr)) {
            if (strip_has(st, GH_TOKEN_FROM_COOKIE, &pr))
                continue;
            if (o > 0) {
                out[o++] = ';';
                out[o++] = ' ';
            }
            memcpy(out + o, pr.raw, pr.raw_len);
            o += pr.raw_len;
        }
    }
    if (gh_stream_drop_header(s, "cookie", 6) < 0)
        return -1;
    return o > 0 ? gh_stream_add_header(s, "cookie", 6, out, o) : 0;
}

/* The target: the path, then every parameter but the stripped ones. */
static int strip_query(gh_stream_t *s, const strip_t *st)
{
    const char *method, *path, *query;
    size_t method_len, path_len, query_len;
    gh_stream_request_line(s, &method, &method_len, &path, &path_len, &query, &query_len);
    size_t cap = path_len + query_len + 2;
    char *t = gh_stream_alloc(s, cap);
    if (t == NULL)
        return -1;
    memcpy(t, path, path_len);
    size_t o = path_len;
    gh_pairs_t it;
    gh_pair_t pr;
    int first = 1;
    gh_pairs_init(&it, query, query_len, '&');
    while (gh_pairs_next(&it, &pr)) {
        if (strip_has(st, GH_TOKEN_FROM_QUERY, &pr))
            continue;
        t[o++] = first ? '?' : '&';
        first = 0;
        memcpy(t + o, pr.raw, pr.raw_len);
        o += pr.raw_len;
    }
    gh_stream_set_target(s, t, o);
    return 0;
}

int gh_jwtf_strip_apply(gh_stream_t *s, const strip_t *st)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->v[i]->kind == GH_TOKEN_FROM_HEADER &&
            gh_stream_drop_header(s, st->v[i]->name, st->v[i]->name_len) < 0)
            return -1;
    if (st->cookies > 0 && strip_cookies(s, st) < 0)
        return -1;
    if (st->queries > 0 && strip_query(s, st) < 0)
        return -1;
    return 0;
}
