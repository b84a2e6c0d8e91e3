/*
 * Route matching (src/proxy/route.c): hosts (exact and "*." wildcards),
 * paths (exact, prefix, regex), methods, headers and query parameters
 * (exact, prefix, regex, present, absent), first match wins.
 *
 * The routes come from a real config (gh_config_load_buffer); the worker and
 * stream are minimal: match data, and the parsed request fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/config.h>

#include "proxy/proxy.h"

static const char yaml[] = "listeners:\n"
                           "  - name: hosts\n"
                           "    listen: 127.0.0.1:18001\n"
                           "    routes:\n"
                           "      - name: exact\n"
                           "        match: { host: [API.Example.com, other.test, \"[::1]\"] }\n"
                           "        direct_response: {}\n"
                           "      - name: wild\n"
                           "        match: { host: \"*.Example.org\" }\n"
                           "        direct_response: {}\n"
                           "  - name: paths\n"
                           "    listen: 127.0.0.1:18002\n"
                           "    routes:\n"
                           "      - name: exact\n"
                           "        match: { path: { exact: /exact } }\n"
                           "        direct_response: {}\n"
                           "      - name: prefix\n"
                           "        match: { path: { prefix: /pre } }\n"
                           "        direct_response: {}\n"
                           "      - name: regex\n"
                           "        match: { path: { regex: \"^/v[0-9]+/items$\" } }\n"
                           "        direct_response: {}\n"
                           "      - name: unanchored\n"
                           "        match: { path: { regex: \"lo+ng\" } }\n"
                           "        direct_response: {}\n"
                           "  - name: methods\n"
                           "    listen: 127.0.0.1:18003\n"
                           "    routes:\n"
                           "      - name: m\n"
                           "        match: { methods: [GET, POST] }\n"
                           "        direct_response: {}\n"
                           "  - name: headers\n"
                           "    listen: 127.0.0.1:18004\n"
                           "    routes:\n"
                           "      - name: h-exact\n"
                           "        match: { headers: [ { name: X-Env, exact: canary } ] }\n"
                           "        direct_response: {}\n"
                           "      - name: h-prefix\n"
                           "        match: { headers: [ { name: x-pre, prefix: ab } ] }\n"
                           "        direct_response: {}\n"
                           "      - name: h-regex\n"
                           "        match: { headers: [ { name: x-re, regex: \"^a+$\" } ] }\n"
                           "        direct_response: {}\n"
                           "      - name: h-present\n"
                           "        match: { headers: [ { name: x-has, present: true } ] }\n"
                           "        direct_response: {}\n"
                           "      - name: h-absent\n"
                           "        match:\n"
                           "          headers:\n"
                           "            - { name: x-kind, exact: k }\n"
                           "            - { name: X-Not, absent: true }\n"
                           "        direct_response: {}\n"
                           "  - name: query\n"
                           "    listen: 127.0.0.1:18005\n"
                           "    routes:\n"
                           "      - name: q-exact\n"
                           "        match: { query: [ { name: v, exact: \"1\" } ] }\n"
                           "        direct_response: {}\n"
                           "      - name: q-raw\n"
                           "        match: { query: [ { name: k, exact: \"a%20b\" } ] }\n"
                           "        direct_response: {}\n"
                           "      - name: q-present\n"
                           "        match: { query: [ { name: debug, present: true } ] }\n"
                           "        direct_response: {}\n"
                           "      - name: q-absent\n"
                           "        match:\n"
                           "          query:\n"
                           "            - { name: kind, exact: x }\n"
                           "            - { name: skip, absent: true }\n"
                           "        direct_response: {}\n"
                           "      - name: q-regex\n"
                           "        match: { query: [ { name: id, regex: \"^[0-9]+$\" } ] }\n"
                           "        direct_response: {}\n"
                           "      - name: q-prefix\n"
                           "        match: { query: [ { name: p, prefix: ab } ] }\n"
                           "        direct_response: {}\n"
                           "  - name: order\n"
                           "    listen: 127.0.0.1:18006\n"
                           "    routes:\n"
                           "      - name: all-parts\n"
                           "        match:\n"
                           "          host: api.example.com\n"
                           "          path: { prefix: /a }\n"
                           "          methods: [PUT]\n"
                           "          headers: [ { name: x-t, present: true } ]\n"
                           "          query: [ { name: q, present: true } ]\n"
                           "        direct_response: {}\n"
                           "      - name: first\n"
                           "        match: { path: { prefix: /a } }\n"
                           "        direct_response: {}\n"
                           "      - name: shadowed\n"
                           "        match: { path: { prefix: /a/b } }\n"
                           "        direct_response: {}\n"
                           "      - name: catch-all\n"
                           "        direct_response: {}\n";

static gh_config_t *cfg;
static gh_worker_t worker;

static int group_setup(void **state)
{
    (void)state;
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    gh_config_error_t err = {{0}};
    cfg = gh_config_load_buffer("route.yaml", yaml, strlen(yaml), &err);
    if (cfg == NULL) {
        fprintf(stderr, "config: %s\n", err.msg);
        return -1;
    }
    memset(&worker, 0, sizeof(worker));
    worker.md = pcre2_match_data_create(1, NULL);
    return worker.md == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pcre2_match_data_free(worker.md);
    gh_config_free(cfg);
    return 0;
}

static const gh_listener_conf_t *listener(const char *name)
{
    for (size_t i = 0; i < cfg->num_listeners; i++)
        if (strcmp(cfg->listeners[i].name, name) == 0)
            return &cfg->listeners[i];
    fail_msg("no listener %s", name);
    return NULL;
}

#define MAX_H 8

typedef struct {
    gh_stream_t s;
    gh_h1_header_t h[MAX_H];
} req_t;

/* A request: host, method, path, query (NULL: none), then header name and
 * value pairs, NULL-terminated. */
static void make(req_t *r, const char *host, const char *method, const char *path,
                 const char *query, ...)
{
    memset(r, 0, sizeof(*r));
    r->s.host = host;
    r->s.host_len = strlen(host);
    r->s.path = path;
    r->s.path_len = strlen(path);
    r->s.query = query;
    r->s.query_len = query ? strlen(query) : 0;
    r->s.req.method = method;
    r->s.req.method_len = strlen(method);
    r->s.req.headers = r->h;
    va_list ap;
    va_start(ap, query);
    const char *n;
    while ((n = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        assert_true(r->s.req.num_headers < MAX_H);
        gh_h1_header_t *h = &r->h[r->s.req.num_headers++];
        h->name = n;
        h->name_len = strlen(n);
        h->value = v;
        h->value_len = strlen(v);
    }
    va_end(ap);
}

/* The name of the route that matches, or NULL; checks the index. */
static const char *route_of(const char *lname, req_t *r)
{
    const gh_listener_conf_t *l = listener(lname);
    size_t index = 9999;
    const gh_route_t *rt = gh_route_match(&worker, l, &r->s, &index);
    if (rt == NULL) {
        assert_int_equal(index, 9999); /* untouched */
        return NULL;
    }
    assert_ptr_equal(rt, &l->routes[index]);
    return rt->name;
}

static void expect(const char *lname, req_t *r, const char *want)
{
    const char *got = route_of(lname, r);
    if (want == NULL && got != NULL)
        fail_msg("%s %s host=%s path=%s query=%s: matched %s, want none", lname, r->s.req.method,
                 r->s.host, r->s.path, r->s.query ? r->s.query : "(none)", got);
    if (want != NULL && (got == NULL || strcmp(got, want) != 0))
        fail_msg("%s %s host=%s path=%s query=%s: matched %s, want %s", lname, r->s.req.method,
                 r->s.host, r->s.path, r->s.query ? r->s.query : "(none)", got ? got : "none",
                 want);
}

#define HOST(h, want)                                                                              \
    do {                                                                                           \
        req_t r_;                                                                                  \
        make(&r_, (h), "GET", "/", NULL, NULL);                                                    \
        expect("hosts", &r_, (want));                                                              \
    } while (0)

static void test_hosts(void **state)
{
    (void)state;
    HOST("api.example.com", "exact");
    HOST("other.test", "exact");
    HOST("[::1]", "exact");
    HOST("api.example.co", NULL);
    HOST("api.example.com.evil", NULL);
    HOST("xapi.example.com", NULL);
    HOST("example.com", NULL);
    HOST("", NULL);
    /* wildcard: one or more labels in front, never the apex */
    HOST("a.example.org", "wild");
    HOST("a.b.example.org", "wild");
    HOST("x-y.z.example.org", "wild");
    HOST("example.org", NULL);
    HOST("xexample.org", NULL);
    HOST("evil-example.org", NULL);
    HOST("a.example.org.evil", NULL);
    HOST("a.example.orgx", NULL);
    HOST("org", NULL);
}

#define PATH(p, want)                                                                              \
    do {                                                                                           \
        req_t r_;                                                                                  \
        make(&r_, "h", "GET", (p), NULL, NULL);                                                    \
        expect("paths", &r_, (want));                                                              \
    } while (0)

static void test_paths(void **state)
{
    (void)state;
    PATH("/exact", "exact");
    PATH("/exact/", NULL);
    PATH("/exactly", NULL);
    PATH("/exac", NULL);
    PATH("/EXACT", NULL);
    PATH("/pre", "prefix");
    PATH("/pre/", "prefix");
    PATH("/prefix/a/b", "prefix"); /* a byte prefix, not a segment prefix */
    PATH("/pr", NULL);
    PATH("/Pre", NULL);
    PATH("/v1/items", "regex");
    PATH("/v123/items", "regex");
    PATH("/v/items", NULL);
    PATH("/v1/items/", NULL);
    PATH("/x/v1/items", NULL);
    PATH("/x/looong/y", "unanchored");
    PATH("/lng", NULL);
    PATH("/", NULL);
}

static void test_path_not_nul_terminated(void **state)
{
    (void)state;
    /* The stream's path points into the request head: bytes after path_len
     * (the query) must not count. */
    req_t r;
    make(&r, "h", "GET", "/exact?x=1", "x=1", NULL);
    r.s.path_len = 6;
    expect("paths", &r, "exact");
    make(&r, "h", "GET", "/v1/items?", NULL, NULL);
    r.s.path_len = 9;
    expect("paths", &r, "regex");
}

#define METHOD(m, want)                                                                            \
    do {                                                                                           \
        req_t r_;                                                                                  \
        make(&r_, "h", (m), "/", NULL, NULL);                                                      \
        expect("methods", &r_, (want));                                                            \
    } while (0)

static void test_methods(void **state)
{
    (void)state;
    METHOD("GET", "m");
    METHOD("POST", "m");
    METHOD("get", "m"); /* ASCII case ignored (route.c: upstreams read "get" as GET) */
    METHOD("pOST", "m");
    METHOD("GE", NULL);
    METHOD("GETS", NULL);
    METHOD("DELETE", NULL);
    METHOD("", NULL);
}

static void test_headers(void **state)
{
    (void)state;
    req_t r;
    make(&r, "h", "GET", "/", NULL, "x-env", "canary", NULL);
    expect("headers", &r, "h-exact");
    make(&r, "h", "GET", "/", NULL, "X-ENV", "canary", NULL); /* names: any case */
    expect("headers", &r, "h-exact");
    make(&r, "h", "GET", "/", NULL, "X-Env", "Canary", NULL); /* values: exact */
    expect("headers", &r, NULL);
    make(&r, "h", "GET", "/", NULL, "x-env", "canary2", NULL);
    expect("headers", &r, NULL);
    make(&r, "h", "GET", "/", NULL, "x-env-x", "canary", NULL);
    expect("headers", &r, NULL);
    make(&r, "h", "GET", "/", NULL, "x-en", "canary", NULL);
    expect("headers", &r, NULL);
    /* one of several fields of the name is enough */
    make(&r, "h", "GET", "/", NULL, "x-env", "stable", "X-Env", "canary", NULL);
    expect("headers", &r, "h-exact");

    make(&r, "h", "GET", "/", NULL, "x-pre", "abc", NULL);
    expect("headers", &r, "h-prefix");
    make(&r, "h", "GET", "/", NULL, "X-Pre", "ab", NULL);
    expect("headers", &r, "h-prefix");
    make(&r, "h", "GET", "/", NULL, "x-pre", "a", NULL);
    expect("headers", &r, NULL);
    make(&r, "h", "GET", "/", NULL, "x-pre", "xab", NULL);
    expect("headers", &r, NULL);

    make(&r, "h", "GET", "/", NULL, "x-re", "aaaa", NULL);
    expect("headers", &r, "h-regex");
    make(&r, "h", "GET", "/", NULL, "x-re", "aab", NULL);
    expect("headers", &r, NULL);
    make(&r, "h", "GET", "/", NULL, "x-re", "", NULL);
    expect("headers", &r, NULL);

    make(&r, "h", "GET", "/", NULL, "X-HAS", "", NULL); /* present with an empty value */
    expect("headers", &r, "h-present");
    make(&r, "h", "GET", "/", NULL, "x-has", "anything", NULL);
    expect("headers", &r, "h-present");

    make(&r, "h", "GET", "/", NULL, "x-kind", "k", NULL);
    expect("headers", &r, "h-absent");
    make(&r, "h", "GET", "/", NULL, "x-kind", "k", "x-not", "", NULL);
    expect("headers", &r, NULL);
    make(&r, "h", "GET", "/", NULL, "X-NOT", "1", "x-kind", "k", NULL);
    expect("headers", &r, NULL);
    make(&r, "h", "GET", "/", NULL, "x-kind", "k", "x-nott", "1", NULL);
    expect("headers", &r, "h-absent");

    make(&r, "h", "GET", "/", NULL, NULL);
    expect("headers", &r, NULL);
}

#define QUERY(q, want)                                                                             \
    do {                                                                                           \
        req_t r_;                                                                                  \
        make(&r_, "h", "GET", "/", (q), NULL);                                                     \
        expect("query", &r_, (want));                                                              \
    } while (0)

static void test_query(void **state)
{
    (void)state;
    QUERY("v=1", "q-exact");
    QUERY("a=2&v=1&b=3", "q-exact");
    QUERY("v=2&v=1", "q-exact"); /* any occurrence */
    QUERY("v=10", NULL);
    QUERY("v=", NULL);
    QUERY("v", NULL);
    QUERY("V=1", NULL); /* names are case-sensitive */
    QUERY("vv=1", NULL);
    QUERY("&&v=1&&", "q-exact");
    /* raw, not percent-decoded */
    QUERY("k=a%20b", "q-raw");
    QUERY("k=a b", NULL);
    QUERY("k=a+b", NULL);
    QUERY("%6B=a%20b", NULL);
    /* present: with or without '=' and value */
    QUERY("debug", "q-present");
    QUERY("debug=", "q-present");
    QUERY("x=1&debug=0", "q-present");
    QUERY("debugx", NULL);
    /* absent */
    QUERY("kind=x", "q-absent");
    QUERY("kind=x&skip", NULL);
    QUERY("skip=1&kind=x", NULL);
    QUERY("kind=x&skipper=1", "q-absent");
    QUERY("kind=y", NULL);
    /* regex on the raw value */
    QUERY("id=123", "q-regex");
    QUERY("id=12a", NULL);
    QUERY("id=", NULL);
    QUERY("p=abc", "q-prefix");
    QUERY("p=a", NULL);
    /* no query at all, or an empty one */
    QUERY(NULL, NULL);
    QUERY("", NULL);
}

static void test_absent_alone_without_query(void **state)
{
    (void)state;
    /* kind=x is required too, so no query: no match (absent alone passes) */
    req_t r;
    make(&r, "h", "GET", "/", NULL, NULL);
    expect("query", &r, NULL);
}

static void test_first_match_wins(void **state)
{
    (void)state;
    req_t r;
    make(&r, "api.example.com", "PUT", "/a/b", "q=1", "X-T", "1", NULL);
    expect("order", &r, "all-parts");
    assert_string_equal(route_of("order", &r), "all-parts");
    /* each part missing in turn: falls to the next route that matches */
    make(&r, "other.example.com", "PUT", "/a/b", "q=1", "X-T", "1", NULL);
    expect("order", &r, "first");
    make(&r, "api.example.com", "GET", "/a/b", "q=1", "X-T", "1", NULL);
    expect("order", &r, "first");
    make(&r, "api.example.com", "PUT", "/a/b", "q=1", NULL);
    expect("order", &r, "first");
    make(&r, "api.example.com", "PUT", "/a/b", "x=1", "X-T", "1", NULL);
    expect("order", &r, "first");
    make(&r, "api.example.com", "PUT", "/b", "q=1", "X-T", "1", NULL);
    expect("order", &r, "catch-all");
    /* "shadowed" can never match: "first" takes all of /a */
    make(&r, "h", "GET", "/a/b/c", NULL, NULL);
    expect("order", &r, "first");
    make(&r, "h", "GET", "/zzz", NULL, NULL);
    expect("order", &r, "catch-all");

    const gh_listener_conf_t *l = listener("order");
    size_t index = 0;
    make(&r, "h", "DELETE", "/", NULL, NULL);
    assert_ptr_equal(gh_route_match(&worker, l, &r.s, &index), &l->routes[3]);
    assert_int_equal(index, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_path_not_nul_terminated),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_absent_alone_without_query),
        cmocka_unit_test(test_first_match_wins),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
