/*
 * Route matching: the listener's routes in order, first match wins. A route
 * matches when every part it names matches: host, path, method, headers,
 * query parameters. Regexes run with per-worker match data, so workers
 * share the compiled (JIT) patterns without locks.
 */
#include <string.h>
#include <strings.h>

#include <gatehouse/pairs.h>

#include "proxy/proxy.h"

int gh_strmatch_match(gh_worker_t *w, const gh_strmatch_t *m, const char *v, size_t n)
{
    switch (m->kind) {
    case GH_MATCH_EXACT:
        return n == m->value_len && memcmp(v, m->value, n) == 0;
    case GH_MATCH_PREFIX:
        return n >= m->value_len && memcmp(v, m->value, m->value_len) == 0;
    case GH_MATCH_REGEX:
        return pcre2_match(m->re, (PCRE2_SPTR)v, n, 0, 0, w->md, NULL) >= 0;
    case GH_MATCH_PRESENT:
        return 1;
    case GH_MATCH_ABSENT:
        return 0;
    }
    return 0;
}

static int host_match(const gh_route_t *r, const char *h, size_t n)
{
    for (size_t i = 0; i < r->num_hosts; i++) {
        const char *p = r->hosts[i];
        size_t pl = strlen(p);
        if (pl >= 2 && p[0] == '*' && p[1] == '.') {
            /* "*.example.com" matches "a.example.com" and "a.b.example.com",
             * not "example.com" itself. */
            if (n > pl - 1 && memcmp(h + n - (pl - 1), p + 1, pl - 1) == 0)
                return 1;
        } else if (pl == n && memcmp(p, h, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ASCII case ignored: methods are case-sensitive (RFC 9110 section 9.1),
 * but many upstreams (Flask, Django, Rack) read "delete" as DELETE, so a
 * route for DELETE with authentication must take "delete" too, not let it
 * fall through to a route without (as policies' methods match). */
static int method_match(const gh_route_t *r, const gh_h1_request_t *req)
{
    for (size_t i = 0; i < r->num_methods; i++) {
        const char *m = r->methods[i];
        if (strlen(m) == req->method_len && strncasecmp(m, req->method, req->method_len) == 0)
            return 1;
    }
    return 0;
}

static int headers_match(gh_worker_t *w, const gh_route_t *r, const gh_h1_request_t *req)
{
    for (size_t i = 0; i < r->num_headers; i++) {
        const gh_kvmatch_t *km = &r->headers[i];
        int found = 0, ok = 0;
        for (size_t j = 0; j < req->num_headers && !ok; j++) {
            const gh_h1_header_t *h = &req->headers[j];
            if (h->name_len != km->name_len || strncasecmp(h->name, km->name, km->name_len) != 0)
                continue;
            found = 1;
            ok = gh_strmatch_match(w, &km->match, h->value, h->value_len);
        }
        if (km->match.kind == GH_MATCH_ABSENT) {
            if (found)
                return 0;
        } else if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* Query parameters are matched on their raw (still percent-encoded) form:
 * decoding here and again in the upstream is how two parties end up
 * disagreeing about a value. */
static int query_match(gh_worker_t *w, const gh_route_t *r, const char *q, size_t qn)
{
    for (size_t i = 0; i < r->num_query; i++) {
        const gh_kvmatch_t *km = &r->query[i];
        int found = 0, ok = 0;
        gh_pairs_t it;
        gh_pair_t pr;
        gh_pairs_init(&it, q, qn, '&');
        while (!ok && gh_pairs_next(&it, &pr)) {
            if (!gh_pair_name_is(&pr, km->name, km->name_len))
                continue;
            found = 1;
            ok = gh_strmatch_match(w, &km->match, pr.value, pr.value_len);
        }
        if (km->match.kind == GH_MATCH_ABSENT) {
            if (found)
                return 0;
        } else if (!ok) {
            return 0;
        }
    }
    return 1;
}

const gh_route_t *gh_route_match(gh_worker_t *w, const gh_listener_conf_t *l, const gh_stream_t *s,
                                 size_t *index)
{
    for (size_t i = 0; i < l->num_routes; i++) {
        const gh_route_t *r = &l->routes[i];
        if (r->num_hosts && !host_match(r, s->host, s->host_len))
            continue;
        if (r->has_path && !gh_strmatch_match(w, &r->path, s->path, s->path_len))
            continue;
        if (r->num_methods && !method_match(r, &s->req))
            continue;
        if (r->num_headers && !headers_match(w, r, &s->req))
            continue;
        if (r->num_query && !query_match(w, r, s->query, s->query_len))
            continue;
        *index = i;
        return r;
    }
    return NULL;
}
