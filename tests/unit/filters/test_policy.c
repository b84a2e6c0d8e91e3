/*
 * Authorization policies in-process: the compiler (every field, its
 * errors at file:line:col, attachment to listeners and routes), the
 * evaluator (each attribute with values and not_values, absent
 * attributes, Istio's glob forms and request principals, nested and array
 * claims, scopes, repeated headers, rule composition) and the decision
 * order (DENY before ALLOW, no ALLOW applying, dry run). The claims reader
 * is checked against jansson on generated documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <gatehouse/config.h>
#include <gatehouse/path.h>

#include "filters/policy/internal.h"

/* ---- fixtures ---- */

typedef struct {
    const char *claims;
    int fail_alloc;
    void *allocs[256];
    int nallocs;
} tctx_t;

static const char *t_claims(void *arg, size_t *len)
{
    tctx_t *t = arg;
    if (t->claims == NULL)
        return NULL;
    *len = strlen(t->claims);
    return t->claims;
}

static void *t_alloc(void *arg, size_t n)
{
    tctx_t *t = arg;
    if (t->fail_alloc || t->nallocs == 256)
        return NULL;
    return t->allocs[t->nallocs++] = malloc(n ? n : 1);
}

static void t_free(tctx_t *t)
{
    while (t->nallocs > 0)
        free(t->allocs[--t->nallocs]);
}

static tctx_t T;

/* A request with nothing but its line and addresses: GET / on
 * api.example.com:18080 from 10.0.0.1, no identity. */
static gh_policy_req_t base(void)
{
    gh_policy_req_t r;
    memset(&r, 0, sizeof(r));
    r.method = "GET";
    r.method_len = 3;
    r.path = "/";
    r.path_len = 1;
    r.host = "api.example.com";
    r.host_len = strlen(r.host);
    r.port = 18080;
    r.peer = "10.0.0.1";
    r.remote = "10.0.0.1";
    r.claims_fn = t_claims;
    r.alloc_fn = t_alloc;
    r.arg = &T;
    return r;
}

static gh_policy_req_t with_path(const char *p)
{
    gh_policy_req_t r = base();
    r.path = p;
    r.path_len = strlen(p);
    return r;
}

static const char *head = "clusters:\n"
                          "  app: {endpoints: [127.0.0.1:9]}\n";

static gh_config_t *load_text(const char *yaml, gh_config_error_t *err)
{
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    return gh_config_load_buffer("t.yaml", yaml, strlen(yaml), err);
}

/* A config with policies p (flow-style definitions, one a line, each
 * "name: {...}") and a listener with one route. */
static gh_config_t *load_policies(const char *p)
{
    char yaml[16384];
    gh_config_error_t err;
    snprintf(yaml, sizeof(yaml),
             "%spolicies:\n%s\nlisteners:\n  - name: edge\n    listen: 127.0.0.1:18080\n"
             "    routes:\n      - to: app\n",
             head, p);
    gh_config_t *cfg = load_text(yaml, &err);
    if (cfg == NULL)
        fail_msg("refused: %s\n%s", err.msg, yaml);
    return cfg;
}

static const gh_policy_section_t *section(const gh_config_t *cfg)
{
    return gh_config_section(cfg, &gh_policy_filter);
}

static const gh_policy_t *find(const gh_config_t *cfg, const char *name)
{
    const gh_policy_section_t *sec = section(cfg);
    for (size_t i = 0; i < sec->n; i++)
        if (strcmp(sec->v[i].name, name) == 0)
            return &sec->v[i];
    fail_msg("no policy %s", name);
    return NULL;
}

/* Whether the one policy "p: def" matches req (a fresh copy each time:
 * the lazy state is the evaluator's). */
static int m(const char *def, gh_policy_req_t req)
{
    char p[8192];
    snprintf(p, sizeof(p), "  p: %s", def);
    gh_config_t *cfg = load_policies(p);
    int r = gh_policy_matches(section(cfg), find(cfg, "p"), &req);
    t_free(&T);
    gh_config_free(cfg);
    return r;
}

/* A rule with one when condition on key, values list vals. */
static int cond(const char *key, const char *vals, gh_policy_req_t req)
{
    char def[4096];
    snprintf(def, sizeof(def), "{rules: [{when: [{key: \"%s\", values: %s}]}]}", key, vals);
    return m(def, req);
}

static int notcond(const char *key, const char *vals, gh_policy_req_t req)
{
    char def[4096];
    snprintf(def, sizeof(def), "{rules: [{when: [{key: \"%s\", not_values: %s}]}]}", key, vals);
    return m(def, req);
}

static int src(const char *field, const char *vals, gh_policy_req_t req)
{
    char def[4096];
    snprintf(def, sizeof(def), "{rules: [{from: [{source: {%s: %s}}]}]}", field, vals);
    return m(def, req);
}

static int op(const char *field, const char *vals, gh_policy_req_t req)
{
    char def[4096];
    snprintf(def, sizeof(def), "{rules: [{to: [{operation: {%s: %s}}]}]}", field, vals);
    return m(def, req);
}

/* ---- patterns ---- */

static void test_patterns(void **state)
{
    (void)state;
    gh_pat_t e = {GH_PAT_EXACT, 3, (char *)"abc"}, p = {GH_PAT_PREFIX, 3, (char *)"abc"},
             s = {GH_PAT_SUFFIX, 3, (char *)"abc"}, any = {GH_PAT_PRESENT, 0, (char *)""};
    assert_true(gh_pat_match(&e, "abc", 3));
    assert_false(gh_pat_match(&e, "abcd", 4));
    assert_false(gh_pat_match(&e, "ab", 2));
    assert_false(gh_pat_match(&e, "ABC", 3));
    assert_true(gh_pat_match(&p, "abc", 3));
    assert_true(gh_pat_match(&p, "abcd", 4));
    assert_false(gh_pat_match(&p, "ab", 2));
    assert_false(gh_pat_match(&p, "xabc", 4));
    assert_true(gh_pat_match(&s, "abc", 3));
    assert_true(gh_pat_match(&s, "xabc", 4));
    assert_false(gh_pat_match(&s, "abcx", 4));
    assert_false(gh_pat_match(&s, "bc", 2));
    assert_true(gh_pat_match(&any, "x", 1));
    assert_false(gh_pat_match(&any, "", 0));

    /* The glob forms as the config writes them. */
    assert_true(op("paths", "[\"/a\"]", with_path("/a")));
    assert_false(op("paths", "[\"/a\"]", with_path("/a/")));
    assert_true(op("paths", "[\"/a/*\"]", with_path("/a/")));
    assert_true(op("paths", "[\"/a/*\"]", with_path("/a/b/c")));
    assert_false(op("paths", "[\"/a/*\"]", with_path("/a")));
    assert_false(op("paths", "[\"/a/*\"]", with_path("/ab")));
    assert_true(op("paths", "[\"/a*\"]", with_path("/ab")));
    assert_true(op("paths", "[\"*.json\"]", with_path("/x/y.json")));
    assert_false(op("paths", "[\"*.json\"]", with_path("/x/y.jsonx")));
    assert_true(op("paths", "[\"*\"]", with_path("/")));
}

/* ---- sources ---- */

static void test_ip_blocks(void **state)
{
    (void)state;
    gh_policy_req_t r = base();
    assert_true(src("ip_blocks", "[10.0.0.0/8]", r));
    assert_true(src("ip_blocks", "[192.0.2.0/24, 10.0.0.1]", r));
    assert_false(src("ip_blocks", "[192.0.2.0/24]", r));
    assert_false(src("not_ip_blocks", "[10.0.0.0/8]", r));
    assert_true(src("not_ip_blocks", "[192.0.2.0/24]", r));
    assert_true(
        m("{rules: [{from: [{source: {ip_blocks: [10.0.0.0/8], not_ip_blocks: [10.0.0.0/16]}}]}]}",
          r) == 0);
    r.peer = "10.1.2.3";
    assert_true(
        m("{rules: [{from: [{source: {ip_blocks: [10.0.0.0/8], not_ip_blocks: [10.0.0.0/16]}}]}]}",
          r));
    r.peer = "2001:db8::7";
    assert_true(src("ip_blocks", "[\"2001:db8::/32\"]", r));
    assert_false(src("ip_blocks", "[10.0.0.0/8]", r));
    r.peer = "::ffff:10.0.0.1"; /* a mapped peer on a [::] listener is an IPv4 one */
    assert_true(src("ip_blocks", "[10.0.0.0/8]", r));
    /* No address (a unix socket): in no block, so outside every not_ block. */
    r.peer = "";
    assert_false(src("ip_blocks", "[0.0.0.0/0, \"::/0\"]", r));
    assert_true(src("not_ip_blocks", "[0.0.0.0/0]", r));

    /* remote_ip_blocks read the client after trusted proxies, not the peer. */
    r = base();
    r.remote = "203.0.113.9";
    assert_true(src("remote_ip_blocks", "[203.0.113.0/24]", r));
    assert_false(src("ip_blocks", "[203.0.113.0/24]", r));
    assert_false(src("not_remote_ip_blocks", "[203.0.113.0/24]", r));
    assert_true(src("not_remote_ip_blocks", "[10.0.0.0/8]", r));
    assert_true(cond("remote.ip", "[203.0.113.9]", r));
    assert_false(cond("source.ip", "[203.0.113.9]", r));
    assert_true(cond("source.ip", "[10.0.0.1]", r));
    assert_true(notcond("source.ip", "[192.0.2.1]", r));
}

static void test_request_principals(void **state)
{
    (void)state;
    gh_policy_req_t r = base(), none = base();
    r.issuer = "https://issuer.example";
    r.subject = "alice";
    static const struct {
        const char *pat;
        int want;
    } cases[] = {
        {"*", 1},
        {"https://issuer.example/alice", 1},
        {"https://issuer.example/bob", 0},
        {"https://issuer.example/*", 1},
        {"https://other.example/*", 0},
        {"*/alice", 1},
        {"*/bob", 0},
        {"*.example/alice", 1}, /* issuer suffix, exact subject */
        {"*.other/alice", 0},
        {"*ice", 1}, /* no '/': any issuer, subject suffix */
        {"*bob", 0},
        {"https:*", 1}, /* no '/': issuer prefix, any subject */
        {"http:*", 0},
        {"https://issuer.example/ali*", 1},
        {"https://issuer.example/bo*", 0},
        /* Split at the last '/', as Istio does: this is issuer
         * "https://issuer.example/alice" with a subject suffix "". */
        {"https://issuer.examp*", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char v[256];
        snprintf(v, sizeof(v), "[\"%s\"]", cases[i].pat);
        if (src("request_principals", v, r) != cases[i].want)
            fail_msg("request_principals %s: want %d", cases[i].pat, cases[i].want);
        if (cond("request.auth.principal", v, r) != cases[i].want)
            fail_msg("request.auth.principal %s: want %d", cases[i].pat, cases[i].want);
        /* Without a token, no principal is any of them. */
        assert_false(src("request_principals", v, none));
        assert_true(src("not_request_principals", v, none));
        assert_int_equal(src("not_request_principals", v, r), !cases[i].want);
    }
    /* A subject holding '/' cannot be named exactly (Istio's split). */
    r.issuer = "https://i";
    r.subject = "team/alice";
    assert_false(src("request_principals", "[\"https://i/team/alice\"]", r));
    assert_true(src("request_principals", "[\"*/alice\"]", r) == 0);
    assert_true(src("request_principals", "[\"*alice\"]", r));
}

static void test_consumers(void **state)
{
    (void)state;
    gh_policy_req_t r = base();
    assert_false(src("consumers", "[acme]", r));
    assert_true(src("not_consumers", "[acme]", r));
    r.consumer = "acme";
    assert_true(src("consumers", "[acme]", r));
    assert_true(src("consumers", "[\"ac*\"]", r));
    assert_true(src("consumers", "[\"*me\"]", r));
    assert_true(src("consumers", "[\"*\"]", r));
    assert_false(src("consumers", "[bob, ACME]", r));
    assert_false(src("not_consumers", "[acme]", r));
    assert_true(src("not_consumers", "[bob]", r));
}

/* ---- operations ---- */

static void test_operations(void **state)
{
    (void)state;
    gh_policy_req_t r = base();
    /* hosts: written in any case, compared with the lower-cased host */
    assert_true(op("hosts", "[API.Example.com]", r));
    assert_true(op("hosts", "[\"*.example.com\"]", r));
    assert_true(op("hosts", "[\"api.*\"]", r));
    assert_false(op("hosts", "[example.com]", r));
    assert_false(op("not_hosts", "[api.example.com]", r));
    assert_true(op("not_hosts", "[example.com]", r));
    r.host_len = 0; /* HTTP/1.0 without Host */
    assert_false(op("hosts", "[\"*\"]", r));
    assert_true(op("not_hosts", "[\"*\"]", r));

    r = base();
    assert_true(op("methods", "[GET, HEAD]", r));
    assert_false(op("methods", "[POST]", r));
    assert_true(op("not_methods", "[POST, DELETE]", r));
    assert_false(op("not_methods", "[GET]", r));
    /* Methods are case-sensitive (RFC 9110 section 9.1), but Django and
     * Flask (Werkzeug) upper-case the method they are given, so "delete"
     * reaches their DELETE handlers: a DENY of DELETE must see it, and an
     * ALLOW of GET lets through nothing such an upstream would not take
     * for GET. Policies compare methods ignoring ASCII case. */
    r.method = "get";
    assert_true(op("methods", "[GET]", r));
    assert_false(op("not_methods", "[GET]", r));
    r.method = "DeLeTe";
    r.method_len = 6;
    assert_true(op("methods", "[DELETE]", r));
    assert_false(op("methods", "[DELET]", r));
    assert_true(op("not_methods", "[GET]", r));
    r.method = "GET";
    r.method_len = 3;
    r.method = "PURGE";
    r.method_len = 5;
    assert_true(op("methods", "[PURGE]", r));

    r = with_path("/admin/users");
    assert_true(op("paths", "[/admin/users]", r));
    assert_true(op("paths", "[\"/admin/*\"]", r));
    assert_false(op("paths", "[/admin]", r));
    assert_false(op("not_paths", "[\"/admin/*\"]", r));
    assert_true(op("not_paths", "[\"/public/*\"]", r));
    assert_true(
        m("{rules: [{to: [{operation: {paths: [\"/admin/*\"], not_paths: [/admin/me]}}]}]}", r));
    assert_false(m("{rules: [{to: [{operation: {paths: [\"/admin/*\"], not_paths: "
                   "[/admin/users]}}]}]}",
                   r));

    r = base();
    assert_true(op("ports", "[18080]", r));
    assert_true(op("ports", "[\"18080\", 80]", r));
    assert_false(op("ports", "[8080]", r));
    assert_true(op("not_ports", "[8080]", r));
    assert_false(op("not_ports", "[18080]", r));
    assert_true(cond("destination.port", "[18080]", r));
    assert_false(cond("destination.port", "[80]", r));

    /* Fields of an operation are ANDed. */
    r = with_path("/orders/1");
    assert_true(m("{rules: [{to: [{operation: {methods: [GET], paths: [\"/orders/*\"]}}]}]}", r));
    r.method = "POST";
    r.method_len = 4;
    assert_false(m("{rules: [{to: [{operation: {methods: [GET], paths: [\"/orders/*\"]}}]}]}", r));
}

/* ---- conditions ---- */

static void test_header_conditions(void **state)
{
    (void)state;
    gh_policy_req_t r = base();
    gh_h1_header_t one[] = {{"X-Role", 6, "admin", 5}};
    gh_h1_header_t two[] = {
        {"x-role", 6, "admin", 5}, {"Other", 5, "v", 1}, {"X-ROLE", 6, "user", 4}};
    gh_h1_header_t empty[] = {{"x-role", 6, "", 0}};

    assert_false(cond("request.headers[x-role]", "[admin]", r));
    assert_true(notcond("request.headers[x-role]", "[admin]", r));
    assert_false(cond("request.headers[x-role]", "[\"*\"]", r));
    assert_true(notcond("request.headers[x-role]", "[\"*\"]", r));

    r.headers = one;
    r.nheaders = 1;
    assert_true(cond("request.headers[X-Role]", "[admin]", r));
    assert_true(cond("request.headers[x-role]", "[\"adm*\", other]", r));
    assert_false(cond("request.headers[x-role]", "[Admin]", r));
    assert_false(notcond("request.headers[x-role]", "[admin]", r));

    /* Repeated fields are one value joined with ',' (Istio, Envoy). */
    r.headers = two;
    r.nheaders = 3;
    assert_false(cond("request.headers[x-role]", "[admin]", r));
    assert_false(cond("request.headers[x-role]", "[user]", r));
    assert_true(cond("request.headers[x-role]", "[\"admin,user\"]", r));
    assert_true(cond("request.headers[x-role]", "[\"admin*\"]", r));
    assert_true(cond("request.headers[x-role]", "[\"*user\"]", r));
    assert_true(notcond("request.headers[x-role]", "[admin]", r));
    assert_false(notcond("request.headers[x-role]", "[\"*,user\"]", r));

    /* CGI-style upstreams (WSGI, PHP, Rack) read X_Role as X-Role: so
     * does the condition, or a DENY on the field (its presence above all,
     * what docs/authorization.md recommends) would be stepped around by
     * spelling it with '_'. */
    gh_h1_header_t under[] = {{"X_Role", 6, "admin", 5}};
    gh_h1_header_t mixed[] = {{"x-role", 6, "user", 4}, {"x_role", 6, "admin", 5}};
    r.headers = under;
    r.nheaders = 1;
    assert_true(cond("request.headers[x-role]", "[\"*\"]", r));
    assert_true(cond("request.headers[x-role]", "[admin]", r));
    assert_false(notcond("request.headers[x-role]", "[admin]", r));
    r.headers = mixed;
    r.nheaders = 2;
    assert_true(cond("request.headers[x-role]", "[\"user,admin\"]", r));
    assert_true(cond("request.headers[x_role]", "[\"*admin\"]", r));

    /* "*" is presence: an empty field is there. */
    r.headers = empty;
    r.nheaders = 1;
    assert_true(cond("request.headers[x-role]", "[\"*\"]", r));
    assert_false(cond("request.headers[x-role]", "[\"a*\"]", r));

    /* A join that cannot be made fails closed. */
    r.headers = two;
    r.nheaders = 3;
    T.fail_alloc = 1;
    gh_config_t *cfg = load_policies("  p: {rules: [{when: [{key: \"request.headers[x-role]\", "
                                     "not_values: [admin]}]}]}");
    gh_policy_req_t q = r;
    assert_true(gh_policy_matches(section(cfg), find(cfg, "p"), &q));
    assert_true(q.oom);
    T.fail_alloc = 0;
    gh_config_free(cfg);
}

static const char *claims_json =
    "{\"iss\":\"https://issuer.example\",\"sub\":\"alice\","
    " \"groups\" : [ \"eng\" , \"admin\" ],"
    "\"org\":{\"team\":{\"name\":\"core\",\"tags\":[\"x\"]},\"id\":7},"
    "\"scope\":\"orders.read  orders.write\",\"permission\":\"read write\","
    "\"scp\":[\"a\",\"b\"],\"n\":5,\"b\":true,\"nul\":null,"
    "\"esc\":\"a\\u0062c\\/\",\"k\\u0065y\":\"v\",\"quote\":\"say \\\"hi\\\"\","
    "\"aud\":[\"api\",\"web\"],\"azp\":\"client-1\",\"mixed\":[1,\"x\",null,[\"y\"],{\"z\":\"z\"}],"
    "\"one\":\"eng\",\"emoji\":\"\\ud83d\\ude00\",\"empty\":\"\",\"nested\":[[\"deep\"]]}";

static void test_claim_conditions(void **state)
{
    (void)state;
    gh_policy_req_t r = base();
    T.claims = claims_json;
    static const struct {
        const char *key, *vals;
        int want;
    } cases[] = {
        {"request.auth.claims[groups]", "[admin]", 1},
        {"request.auth.claims[groups]", "[ops]", 0},
        {"request.auth.claims[groups]", "[\"ad*\"]", 1},
        {"request.auth.claims[groups]", "[\"*\"]", 1},
        {"request.auth.claims[one]", "[eng]", 1},
        {"request.auth.claims[one]", "[\"e*\"]", 1},
        {"request.auth.claims[org][team][name]", "[core]", 1},
        {"request.auth.claims[org][team][tags]", "[x]", 1},
        {"request.auth.claims[org][team]", "[core]", 0},
        {"request.auth.claims[org][id]", "[\"7\"]", 0},
        {"request.auth.claims[org][nothing]", "[core]", 0},
        {"request.auth.claims[name]", "[core]", 0},
        {"request.auth.claims[scope]", "[orders.read]", 1},
        {"request.auth.claims[scope]", "[orders.write]", 1},
        {"request.auth.claims[scope]", "[\"orders.read  orders.write\"]", 0},
        {"request.auth.claims[permission]", "[write]", 1},
        {"request.auth.claims[scp]", "[b]", 1},
        {"request.auth.claims[n]", "[\"5\"]", 0},
        {"request.auth.claims[b]", "[\"true\"]", 0},
        {"request.auth.claims[nul]", "[\"null\"]", 0},
        {"request.auth.claims[esc]", "[\"abc/\"]", 1},
        {"request.auth.claims[key]", "[v]", 1},
        {"request.auth.claims[quote]", "[\"say \\\"hi\\\"\"]", 1},
        {"request.auth.claims[mixed]", "[x]", 1},
        {"request.auth.claims[mixed]", "[y]", 0},
        {"request.auth.claims[mixed]", "[\"1\"]", 0},
        {"request.auth.claims[mixed]", "[z]", 0},
        {"request.auth.claims[nested]", "[deep]", 0},
        {"request.auth.claims[emoji]", "[\"\\U0001F600\"]", 1},
        {"request.auth.claims[empty]", "[\"*\"]", 0},
        {"request.auth.claims[missing]", "[\"*\"]", 0},
        {"request.auth.claims[sub]", "[\"ali*\"]", 1},
        {"request.auth.audiences", "[web]", 1},
        {"request.auth.audiences", "[other]", 0},
        {"request.auth.presenter", "[client-1]", 1},
        {"request.auth.presenter", "[\"client-*\"]", 1},
        {"request.auth.presenter", "[client-2]", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cond(cases[i].key, cases[i].vals, r) != cases[i].want)
            fail_msg("%s %s: want %d", cases[i].key, cases[i].vals, cases[i].want);
        /* not_values: none of them, so an absent or non-string claim passes */
        if (notcond(cases[i].key, cases[i].vals, r) != !cases[i].want)
            fail_msg("%s not %s: want %d", cases[i].key, cases[i].vals, !cases[i].want);
    }
    /* Without a token every claim is absent. */
    T.claims = NULL;
    assert_false(cond("request.auth.claims[groups]", "[\"*\"]", r));
    assert_true(notcond("request.auth.claims[groups]", "[admin]", r));
    assert_false(cond("request.auth.audiences", "[\"*\"]", r));
    /* A payload that is not an object reads as no claims. */
    T.claims = "[\"groups\"]";
    assert_false(cond("request.auth.claims[groups]", "[\"*\"]", r));
    T.claims = "{\"groups\":[\"admin\"";
    assert_false(cond("request.auth.claims[groups]", "[admin]", r));
    T.claims = NULL;
}

static void test_scopes(void **state)
{
    (void)state;
    gh_policy_req_t r = base();
    assert_false(cond("request.auth.scopes", "[orders.read]", r));
    assert_true(notcond("request.auth.scopes", "[orders.read]", r));
    r.scopes = "orders.read orders.write";
    assert_true(cond("request.auth.scopes", "[orders.read]", r));
    assert_true(cond("request.auth.scopes", "[orders.write]", r));
    assert_true(cond("request.auth.scopes", "[\"orders.*\"]", r));
    assert_false(cond("request.auth.scopes", "[orders]", r));
    assert_false(cond("request.auth.scopes", "[admin]", r));
    assert_false(notcond("request.auth.scopes", "[orders.write]", r));
    assert_true(notcond("request.auth.scopes", "[admin]", r));
}

/* ---- rules and decisions ---- */

static void test_rule_composition(void **state)
{
    (void)state;
    gh_policy_req_t r = with_path("/a");
    r.issuer = "i";
    r.subject = "s";
    /* An empty rule matches everything; no rules match nothing. */
    assert_true(m("{rules: [{}]}", r));
    assert_false(m("{}", r));
    assert_false(m("{action: DENY}", r));
    /* any of from, any of to */
    assert_true(m("{rules: [{from: [{source: {ip_blocks: [192.0.2.0/24]}}, {source: "
                  "{request_principals: [i/s]}}]}]}",
                  r));
    assert_true(m("{rules: [{to: [{operation: {paths: [/b]}}, {operation: {paths: [/a]}}]}]}", r));
    assert_false(m("{rules: [{to: [{operation: {paths: [/b]}}, {operation: {paths: [/c]}}]}]}", r));
    /* fields of a source ANDed */
    assert_false(m("{rules: [{from: [{source: {ip_blocks: [10.0.0.0/8], request_principals: "
                   "[i/x]}}]}]}",
                   r));
    assert_true(m("{rules: [{from: [{source: {ip_blocks: [10.0.0.0/8], request_principals: "
                  "[i/s]}}]}]}",
                  r));
    /* from AND to AND every when */
    assert_true(m("{rules: [{from: [{source: {request_principals: [i/s]}}], to: [{operation: "
                  "{paths: [/a]}}], when: [{key: destination.port, values: [18080]}, {key: "
                  "source.ip, values: [10.0.0.1]}]}]}",
                  r));
    assert_false(m("{rules: [{from: [{source: {request_principals: [i/s]}}], to: [{operation: "
                   "{paths: [/a]}}], when: [{key: destination.port, values: [18080]}, {key: "
                   "source.ip, values: [10.0.0.2]}]}]}",
                   r));
    assert_false(m("{rules: [{from: [{source: {request_principals: [i/x]}}], to: [{operation: "
                   "{paths: [/a]}}]}]}",
                   r));
    /* any rule */
    assert_true(m("{rules: [{to: [{operation: {paths: [/b]}}]}, {to: [{operation: {paths: "
                  "[/a]}}]}]}",
                  r));
    /* values and not_values of one condition both hold */
    assert_true(m("{rules: [{when: [{key: source.ip, values: [10.0.0.0/8], not_values: "
                  "[10.9.0.0/16]}]}]}",
                  r));
    assert_false(m("{rules: [{when: [{key: source.ip, values: [10.0.0.0/8], not_values: "
                   "[10.0.0.0/16]}]}]}",
                   r));
}

static gh_policy_lists_t lists_of(const gh_config_t *cfg, const char *const *names)
{
    gh_policy_lists_t l;
    static const gh_policy_t *d[64], *a[64], *dd[64], *da[64];
    memset(&l, 0, sizeof(l));
    l.deny = d;
    l.allow = a;
    l.dry_deny = dd;
    l.dry_allow = da;
    for (size_t i = 0; names[i] != NULL; i++) {
        const gh_policy_t *p = find(cfg, names[i]);
        if (p->dry_run)
            (p->action == GH_POL_DENY
                 ? dd
                 : da)[p->action == GH_POL_DENY ? l.ndry_deny++ : l.ndry_allow++] = p;
        else
            (p->action == GH_POL_DENY ? d : a)[p->action == GH_POL_DENY ? l.ndeny++ : l.nallow++] =
                p;
    }
    return l;
}

static gh_policy_decision_t decide(const gh_config_t *cfg, const char *const *names,
                                   gh_policy_req_t req)
{
    gh_policy_lists_t l = lists_of(cfg, names);
    gh_policy_decision_t d;
    gh_policy_decide(section(cfg), &l, &req, &d);
    t_free(&T);
    return d;
}

static void test_decision_order(void **state)
{
    (void)state;
    gh_config_t *cfg = load_policies(
        "  deny-admin: {action: DENY, rules: [{to: [{operation: {paths: [\"/admin/*\"]}}]}]}\n"
        "  deny-never: {action: DENY}\n"
        "  allow-all: {rules: [{}]}\n"
        "  allow-nothing: {}\n"
        "  allow-public: {rules: [{to: [{operation: {paths: [\"/public/*\"]}}]}]}\n"
        "  allow-get: {rules: [{to: [{operation: {methods: [GET]}}]}]}\n"
        "  dry-deny-public: {action: DENY, dry_run: true, rules: [{to: [{operation: {paths: "
        "[\"/public/*\"]}}]}]}\n"
        "  dry-deny-all: {action: DENY, dry_run: true, rules: [{}]}\n"
        "  dry-allow-admin: {dry_run: true, rules: [{to: [{operation: {paths: "
        "[\"/admin/*\"]}}]}]}\n");
    gh_policy_decision_t d;

    /* No policy: allowed. */
    const char *none[] = {NULL};
    d = decide(cfg, none, with_path("/admin/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_NONE);

    /* DENY first, whatever ALLOW says. */
    const char *a[] = {"allow-all", "deny-admin", NULL};
    d = decide(cfg, a, with_path("/admin/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_DENY);
    assert_int_equal(d.index, 0);
    d = decide(cfg, a, with_path("/public/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_ALLOW);

    /* Only DENY policies, none matching: allowed (no ALLOW applies). */
    const char *b[] = {"deny-admin", "deny-never", NULL};
    d = decide(cfg, b, with_path("/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_NONE);
    d = decide(cfg, b, with_path("/admin/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_DENY);

    /* ALLOW policies apply: one must match. */
    const char *c[] = {"allow-public", "allow-get", NULL};
    gh_policy_req_t post = with_path("/x");
    post.method = "POST";
    post.method_len = 4;
    d = decide(cfg, c, post);
    assert_int_equal(d.outcome, GH_POL_OUT_NO_ALLOW);
    d = decide(cfg, c, with_path("/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_ALLOW);
    assert_int_equal(d.index, 1);
    post.path = "/public/y";
    post.path_len = 9;
    d = decide(cfg, c, post);
    assert_int_equal(d.outcome, GH_POL_OUT_ALLOW);
    assert_int_equal(d.index, 0);

    /* An ALLOW policy without rules allows nothing (Istio's allow-nothing). */
    const char *e[] = {"allow-nothing", NULL};
    d = decide(cfg, e, with_path("/"));
    assert_int_equal(d.outcome, GH_POL_OUT_NO_ALLOW);

    /* Dry run never changes the outcome; it is reported beside it. */
    const char *f[] = {"dry-deny-public", "dry-deny-all", "dry-allow-admin", NULL};
    d = decide(cfg, f, with_path("/public/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_NONE);
    assert_int_equal(d.dry_deny_hits, 3);
    assert_int_equal(d.dry_allow_outcome, GH_POL_OUT_NO_ALLOW);
    d = decide(cfg, f, with_path("/admin/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_NONE);
    assert_int_equal(d.dry_deny_hits, 2);
    assert_int_equal(d.dry_allow_outcome, GH_POL_OUT_ALLOW);
    assert_int_equal(d.dry_allow_index, 0);
    /* ... also beside an enforced denial */
    const char *g[] = {"deny-admin", "dry-deny-public", "dry-allow-admin", NULL};
    d = decide(cfg, g, with_path("/admin/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_DENY);
    assert_int_equal(d.dry_deny_hits, 0);
    assert_int_equal(d.dry_allow_outcome, GH_POL_OUT_ALLOW);
    const char *h[] = {"allow-get", "dry-allow-admin", NULL};
    d = decide(cfg, h, with_path("/x"));
    assert_int_equal(d.outcome, GH_POL_OUT_ALLOW);
    assert_int_equal(d.dry_allow_outcome, GH_POL_OUT_NO_ALLOW);
    gh_config_free(cfg);
}

/* What the stream hands the policies is the normalized path: every
 * spelling of /admin that reaches the upstream as /admin is denied, and
 * none of them is allowed by a prefix of /public/. */
static void test_normalized_paths(void **state)
{
    (void)state;
    gh_config_t *cfg =
        load_policies("  deny-admin: {action: DENY, rules: [{to: [{operation: {paths: [/admin, "
                      "\"/admin/*\"]}}]}]}\n"
                      "  allow-public: {rules: [{to: [{operation: {paths: [\"/public/*\"]}}]}]}\n");
    static const char *const to_admin[] = {
        "/admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "//admin",
        "/./admin",
        "/%61dmin",
        "/admin;x",
        "/public/..;/admin",
        "/public/.%2e/admin",
        "/admin/",
        "/admin//x",
        "/admin/./x",
        "/x/../admin/y",
    };
    gh_path_opts_t opts = GH_PATH_OPTS_DEFAULT;
    const char *deny[] = {"deny-admin", NULL}, *allow[] = {"allow-public", NULL};
    for (size_t i = 0; i < sizeof(to_admin) / sizeof(to_admin[0]); i++) {
        char out[256];
        size_t ol;
        const char *why;
        gh_path_result_t pr =
            gh_path_normalize(to_admin[i], strlen(to_admin[i]), &opts, out, &ol, &why);
        assert_int_equal(pr, GH_PATH_OK);
        out[ol] = '\0';
        gh_policy_decision_t d = decide(cfg, deny, with_path(out));
        if (d.outcome != GH_POL_OUT_DENY)
            fail_msg("%s (normalized %s) not denied", to_admin[i], out);
        d = decide(cfg, allow, with_path(out));
        if (d.outcome != GH_POL_OUT_NO_ALLOW)
            fail_msg("%s (normalized %s) allowed by a /public/ prefix", to_admin[i], out);
    }
    gh_config_free(cfg);
}

/* ---- the compiler's errors ---- */

static void expect_error(const char *yaml_tail, const char *want)
{
    char yaml[8192];
    gh_config_error_t err;
    snprintf(yaml, sizeof(yaml), "%s%s", head, yaml_tail);
    gh_config_t *cfg = load_text(yaml, &err);
    if (want == NULL) {
        if (cfg == NULL)
            fail_msg("refused: %s\n%s", err.msg, yaml);
        gh_config_free(cfg);
        return;
    }
    if (cfg != NULL) {
        gh_config_free(cfg);
        fail_msg("accepted, want '%s':\n%s", want, yaml);
    }
    if (strstr(err.msg, want) == NULL) {
        if (getenv("T_SOFT")) {
            printf("MISMATCH got '%s'\n         want '%s'\n", err.msg, want);
            return;
        }
        fail_msg("got '%s', want '%s'\n%s", err.msg, want, yaml);
    }
}

/* A policy (line 4 holds "  p: def") before a plain listener. */
static void expect_policy_error(const char *def, const char *want)
{
    char tail[4096];
    snprintf(tail, sizeof(tail),
             "policies:\n  p: %s\nlisteners:\n  - name: edge\n    listen: 127.0.0.1:18080\n"
             "    routes:\n      - to: app\n",
             def);
    expect_error(tail, want);
}

static void test_compile_errors(void **state)
{
    (void)state;
    expect_policy_error("{}", NULL);
    expect_policy_error("{action: deny, dry_run: true, rules: [{}]}", NULL);
    expect_policy_error("{action: CUSTOM}", "a CUSTOM policy names its provider");
    expect_policy_error("{action: CUSTOM, provider: nope}",
                        "provider 'nope' is not an authorizer (providers.authorizers)");
    expect_policy_error("{action: AUDIT}", "action AUDIT is not supported: use 'dry_run: true'");
    expect_policy_error("{action: MAYBE}", "t.yaml:4:15: 'action' must be ALLOW, DENY or CUSTOM");
    expect_policy_error("{action: [ALLOW]}", "'action' must be ALLOW, DENY or CUSTOM");
    expect_policy_error("{dry_run: yes}", "t.yaml:4:16: 'dry_run' must be true or false");
    expect_policy_error("{provider: {name: x}}", "t.yaml:4:17: 'provider' is for action CUSTOM");
    expect_policy_error("{selector: {}}", "a policy applies where it is attached");
    expect_policy_error("{spec: {}}", "write the fields of an AuthorizationPolicy's spec");
    expect_policy_error("{dryRun: true}", "unknown key 'dryRun' in policy 'p' (gatehouse spells "
                                          "it 'dry_run')");
    expect_policy_error("{rules: []}",
                        "t.yaml:4:14: 'rules' is empty: leave 'rules' out for a policy that "
                        "matches nothing");
    expect_policy_error("{rules: [{froms: []}]}", "unknown key 'froms' in a rule");
    expect_policy_error("{rules: [{from: []}]}", "'from' is empty: leave 'from' out to match any "
                                                 "source");
    expect_policy_error("{rules: [{to: []}]}", "'to' is empty");
    expect_policy_error("{rules: [{when: []}]}", "'when' is empty");
    expect_policy_error("{rules: [{from: [{}]}]}", "an entry of 'from' is missing required key "
                                                   "'source'");
    expect_policy_error("{rules: [{from: [{source: {}}]}]}",
                        "an empty 'source' matches anything: leave it out");
    expect_policy_error("{rules: [{to: [{operation: {}}]}]}", "an empty 'operation'");
    expect_policy_error("{rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]}",
                        "unknown key 'ipBlocks' in 'source' (gatehouse spells it 'ip_blocks')");
    expect_policy_error("{rules: [{from: [{source: {principals: [a]}}]}]}",
                        "'principals' (the peer's mTLS identity) is not supported yet: it arrives "
                        "with mutual TLS");
    expect_policy_error("{rules: [{from: [{source: {not_namespaces: [a]}}]}]}",
                        "'not_namespaces' (the peer's mTLS identity) is not supported yet");
    expect_policy_error("{rules: [{from: [{source: {ip_blocks: []}}]}]}",
                        "'ip_blocks' is empty: leave 'ip_blocks' out");
    expect_policy_error("{rules: [{from: [{source: {ip_blocks: [10.0.0.1/8]}}]}]}",
                        "'10.0.0.1/8' in 'ip_blocks' has bits set after the prefix length");
    expect_policy_error("{rules: [{from: [{source: {ip_blocks: [example.com]}}]}]}",
                        "is not an IPv4 or IPv6 address");
    expect_policy_error("{rules: [{from: [{source: {request_principals: [alice]}}]}]}",
                        "request principal 'alice' has no '/'");
    expect_policy_error("{rules: [{from: [{source: {request_principals: [\"*a*\"]}}]}]}",
                        "'*' may stand alone, start it or end it");
    expect_policy_error("{rules: [{from: [{source: {request_principals: [\"i/\"]}}]}]}",
                        "has an empty issuer or subject");
    expect_policy_error("{rules: [{from: [{source: {consumers: [\"\"]}}]}]}",
                        "an empty value in 'consumers' matches nothing");
    expect_policy_error("{rules: [{from: [{source: {consumers: [\"a*b\"]}}]}]}",
                        "'a*b': '*' may stand alone");
    expect_policy_error("{rules: [{from: [{source: {consumers: [\"**\"]}}]}]}", "'*' may stand");
    expect_policy_error("{rules: [{to: [{operation: {methods: [\"GE*\"]}}]}]}",
                        "method 'GE*' must be a method name, matched exactly");
    expect_policy_error("{rules: [{to: [{operation: {methods: [\"G T\"]}}]}]}",
                        "method 'G T' is not an HTTP token");
    expect_policy_error("{rules: [{to: [{operation: {paths: [admin]}}]}]}",
                        "path 'admin' must start with '/'");
    expect_policy_error("{rules: [{to: [{operation: {paths: [/a/../b]}}]}]}",
                        "path '/a/../b' is not in normalized form (requests are compared after "
                        "normalization: it would read '/b')");
    expect_policy_error("{rules: [{to: [{operation: {paths: [\"//admin\"]}}]}]}",
                        "would read '/admin'");
    expect_policy_error("{rules: [{to: [{operation: {paths: [\"/%61dmin\"]}}]}]}",
                        "would read '/admin'");
    expect_policy_error("{rules: [{to: [{operation: {paths: [\"/a%2fb\"]}}]}]}",
                        "path '/a%2fb' could never match");
    expect_policy_error("{rules: [{to: [{operation: {paths: [\"*/../x\"]}}]}]}",
                        "not in normalized form");
    expect_policy_error("{rules: [{to: [{operation: {paths: [\"/a?b=1\"]}}]}]}",
                        "without '?' and '#'");
    expect_policy_error("{rules: [{to: [{operation: {paths: [\"/a/{*}\"]}}]}]}",
                        "path templates are not supported");
    expect_policy_error("{rules: [{to: [{operation: {hosts: [\"a.com:80\"]}}]}]}",
                        "without a port");
    expect_policy_error("{rules: [{to: [{operation: {hosts: [\"a.com.\"]}}]}]}",
                        "without the trailing dot");
    expect_policy_error("{rules: [{to: [{operation: {ports: [0]}}]}]}",
                        "port '0' must be a number from 1 to 65535");
    expect_policy_error("{rules: [{to: [{operation: {ports: [http]}}]}]}", "port 'http'");
    expect_policy_error("{rules: [{to: [{operation: {ports: [65536]}}]}]}", "port '65536'");
    expect_policy_error("{rules: [{when: [{values: [a]}]}]}",
                        "an entry of 'when' is missing required key 'key'");
    expect_policy_error("{rules: [{when: [{key: source.ip}]}]}",
                        "condition 'source.ip' needs 'values', 'not_values' or both");
    expect_policy_error("{rules: [{when: [{key: source.ip, values: []}]}]}", "'values' is empty");
    expect_policy_error("{rules: [{when: [{key: source.ip, notValues: [a]}]}]}",
                        "(gatehouse spells it 'not_values')");
    expect_policy_error("{rules: [{when: [{key: connection.sni, values: [a]}]}]}",
                        "'connection.sni' is not supported yet: it arrives with TLS");
    expect_policy_error("{rules: [{when: [{key: source.principal, values: [a]}]}]}",
                        "arrives with mutual TLS");
    expect_policy_error("{rules: [{when: [{key: destination.ip, values: [a]}]}]}",
                        "'destination.ip' is not supported");
    expect_policy_error("{rules: [{when: [{key: request.auth.claim, values: [a]}]}]}",
                        "unknown condition key 'request.auth.claim'");
    expect_policy_error("{rules: [{when: [{key: \"request.auth.claims\", values: [a]}]}]}",
                        "needs a claim name in brackets");
    expect_policy_error("{rules: [{when: [{key: \"request.auth.claims[]\", values: [a]}]}]}",
                        "has an empty claim name");
    expect_policy_error("{rules: [{when: [{key: \"request.auth.claims[a]b\", values: [a]}]}]}",
                        "needs each claim name in brackets");
    expect_policy_error("{rules: [{when: [{key: \"request.auth.claims[a\", values: [a]}]}]}",
                        "has a '[' without its ']'");
    expect_policy_error(
        "{rules: [{when: [{key: \"request.auth.claims[a][b][c][d][e][f][g][h][i]\", values: "
        "[a]}]}]}",
        "nests claims deeper than 8 levels");
    expect_policy_error("{rules: [{when: [{key: \"request.headers[]\", values: [a]}]}]}",
                        "the header name goes in brackets");
    expect_policy_error("{rules: [{when: [{key: \"request.headers[a b]\", values: [a]}]}]}",
                        "'a b' is not a header name");
    expect_policy_error("{rules: [{when: [{key: request.auth.scopes, values: [\"a b\"]}]}]}",
                        "scope 'a b' holds a space");
    expect_policy_error("{rules: [{when: [{key: destination.port, values: [x]}]}]}",
                        "port 'x' must be");
    expect_policy_error("[]", "t.yaml:4:6: expected a mapping for policy 'p'");

    expect_error("policies: {}\nlisteners: []\n", "t.yaml:3:11: 'policies' is empty");
    expect_error("policies: []\n", "expected a mapping for 'policies'");
    expect_error("policies:\n  \"a b\": {}\n", "t.yaml:4:3: policy name 'a b' must be 1 to 253");
    expect_error("policies:\n  \"a,b\": {}\n", "policy name 'a,b'");
}

static const char *listener_yaml(const char *lpol, const char *r1, const char *r2,
                                 const char *lextra)
{
    static char y[8192];
    snprintf(y, sizeof(y),
             "policies:\n"
             "  a: {action: DENY}\n"
             "  b: {}\n"
             "  c: {rules: [{to: [{operation: {paths: [/x]}}]}]}\n"
             "  h: {rules: [{when: [{key: \"request.headers[X-User]\", values: [alice]}]}]}\n"
             "providers:\n"
             "  jwt:\n"
             "    corp:\n"
             "      issuer: https://i.example\n"
             "      audiences: any\n"
             "      jwks: {inline: '{\"keys\":[]}'}\n"
             "      claims_to_headers: {sub: x_user}\n"
             "listeners:\n"
             "  - name: edge\n"
             "    listen: 127.0.0.1:18080\n"
             "%s%s"
             "    routes:\n"
             "      - name: one\n"
             "        to: app\n"
             "%s"
             "      - name: two\n"
             "        to: app\n"
             "%s",
             lextra, lpol, r1, r2);
    return y;
}

/* The policies governing route i of listener 0, as names joined by ','
 * ("-" when the route has no policies filter). */
static void route_policies(const gh_config_t *cfg, size_t i, char *out, size_t cap)
{
    const gh_route_t *r = &cfg->listeners[0].routes[i];
    snprintf(out, cap, "-");
    for (size_t k = 0; k < r->num_filters; k++) {
        if (r->filters[k].type != &gh_policy_filter)
            continue;
        const gh_policy_route_conf_t *c = r->filters[k].conf;
        out[0] = '\0';
        for (size_t j = 0; j < c->n; j++) {
            size_t o = strlen(out);
            snprintf(out + o, cap - o, "%s%s", j ? "," : "", c->v[j]->name);
        }
    }
}

static void expect_attach(const char *yaml, const char *want1, const char *want2)
{
    char full[8192], got[256];
    gh_config_error_t err;
    snprintf(full, sizeof(full), "%s%s", head, yaml);
    gh_config_t *cfg = load_text(full, &err);
    if (cfg == NULL)
        fail_msg("refused: %s\n%s", err.msg, full);
    route_policies(cfg, 0, got, sizeof(got));
    if (strcmp(got, want1) != 0)
        fail_msg("route one: got %s, want %s", got, want1);
    route_policies(cfg, 1, got, sizeof(got));
    if (strcmp(got, want2) != 0)
        fail_msg("route two: got %s, want %s", got, want2);
    gh_config_free(cfg);
}

static void test_attachment(void **state)
{
    (void)state;
    /* A listener's policies govern every route of it, first; a route's
     * own come after. */
    expect_attach(listener_yaml("    policies: [a, b]\n", "        policies: [c]\n", "", ""),
                  "a,b,c", "a,b");
    expect_attach(listener_yaml("", "        policies: c\n", "", ""), "c", "-");
    expect_attach(listener_yaml("    policies: a\n", "", "", ""), "a", "a");

    char y[8192];
    snprintf(y, sizeof(y), "%s",
             listener_yaml("    policies: [a]\n", "        policies: [zz]\n", "", ""));
    expect_error(y, "t.yaml:22:20: unknown policy 'zz'");
    snprintf(y, sizeof(y), "%s", listener_yaml("    policies: [zz]\n", "", "", ""));
    expect_error(y, "t.yaml:18:16: unknown policy 'zz'");
    snprintf(y, sizeof(y), "%s",
             listener_yaml("    policies: [a]\n", "        policies: [b, a]\n", "", ""));
    expect_error(y, "t.yaml:22:23: policy 'a' is attached to listener 'edge' already");
    snprintf(y, sizeof(y), "%s", listener_yaml("", "        policies: [b, c, b]\n", "", ""));
    expect_error(y, "t.yaml:21:26: policy 'b' is listed twice");
    snprintf(y, sizeof(y), "%s", listener_yaml("    policies: []\n", "", "", ""));
    expect_error(y, "t.yaml:18:15: 'policies' is empty: leave 'policies' out");
    snprintf(y, sizeof(y), "%s", listener_yaml("", "        policies: []\n", "", ""));
    expect_error(y, "'policies' is empty");
    snprintf(y, sizeof(y), "%s", listener_yaml("", "        policies: {a: 1}\n", "", ""));
    expect_error(y, "t.yaml:21:19: expected a list for 'policies'");
    /* Path policies need normalized paths. */
    snprintf(y, sizeof(y), "%s",
             listener_yaml("    policies: [c]\n", "", "", "    normalize_path: false\n"));
    expect_error(y, "t.yaml:19:15: policy 'c' matches paths, but listener 'edge' has "
                    "normalize_path: false");
    snprintf(y, sizeof(y), "%s",
             listener_yaml("", "", "        policies: [c]\n", "    normalize_path: false\n"));
    expect_error(y, "policy 'c' matches paths");
    snprintf(y, sizeof(y), "%s",
             listener_yaml("    policies: [a, b]\n", "", "", "    normalize_path: false\n"));
    expect_error(y, NULL);
    /* A header the route's provider sets from the token is not read. */
    snprintf(y, sizeof(y), "%s",
             listener_yaml("",
                           "        authn: {any: [corp]}\n        "
                           "policies: [h]\n",
                           "", ""));
    expect_error(y, "t.yaml:7:29: policy 'h' reads request.headers[x-user], which provider "
                    "'corp' of route 'one' sets from the token");
    snprintf(y, sizeof(y), "%s",
             listener_yaml("    policies: [h]\n", "", "        authn: {any: [corp]}\n", ""));
    expect_error(y, "of route 'two' sets from the token");
    snprintf(y, sizeof(y), "%s", listener_yaml("", "        policies: [h]\n", "", ""));
    expect_error(y, NULL);
    /* ... nor one an API-key provider sets to the consumer. */
    expect_error("policies:\n"
                 "  c: {rules: [{when: [{key: \"request.headers[X-Consumer]\", values: [a]}]}]}\n"
                 "providers:\n"
                 "  apikeys:\n"
                 "    keys: {header: x-api-key, consumer_header: x-consumer}\n"
                 "listeners:\n"
                 "  - name: edge\n"
                 "    listen: 127.0.0.1:18080\n"
                 "    routes:\n"
                 "      - name: r\n"
                 "        authn: keys\n"
                 "        policies: [c]\n"
                 "        to: app\n",
                 "t.yaml:4:29: policy 'c' reads request.headers[x-consumer], which provider 'keys' "
                 "of route 'r' sets to the API key's consumer");
    /* Unknown keys of the attachment's neighbours stay errors. */
    snprintf(y, sizeof(y), "%s", listener_yaml("    policy: [a]\n", "", "", ""));
    expect_error(y, "unknown key 'policy' in listener");
    /* No section at all. */
    expect_error("listeners:\n  - name: edge\n    listen: 127.0.0.1:18080\n    routes:\n"
                 "      - to: app\n        policies: [a]\n",
                 "t.yaml:8:20: unknown policy 'a' (there is no 'policies' section)");
    /* Too many on one route. */
    char big[16384];
    size_t o = (size_t)snprintf(big, sizeof(big), "policies:\n");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o, "  p%d: {}\n", i);
    o += (size_t)snprintf(
        big + o, sizeof(big) - o,
        "listeners:\n  - name: edge\n    listen: 127.0.0.1:18080\n    policies: [");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o, "%sp%d", i ? ", " : "", i);
    snprintf(big + o, sizeof(big) - o, "]\n    routes:\n      - to: app\n");
    expect_error(big, "more than 64 policies would govern one route");
}

/* ---- claim paths and the JSON reader ---- */

static void test_claim_path_parse(void **state)
{
    (void)state;
    gh_claim_path_t p;
    assert_null(gh_policy_claim_path_parse("[a]", 3, &p));
    assert_int_equal(p.n, 1);
    assert_string_equal(p.segs[0], "a");
    gh_policy_claim_path_dispose(&p);
    assert_null(gh_policy_claim_path_parse("[a.b][ c ][x/y]", 15, &p));
    assert_int_equal(p.n, 3);
    assert_string_equal(p.segs[0], "a.b");
    assert_string_equal(p.segs[1], " c ");
    assert_string_equal(p.segs[2], "x/y");
    gh_policy_claim_path_dispose(&p);
    static const char *const bad[] = {"",     "a",      "[",    "[]",     "[a",   "[a]b",
                                      "[a][", "[a[b]]", "[a]]", "[\x01]", " [a]", "[a] "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (gh_policy_claim_path_parse(bad[i], strlen(bad[i]), &p) == NULL)
            fail_msg("'%s' accepted", bad[i]);
    }
    char long_seg[300] = "[";
    memset(long_seg + 1, 'a', 257);
    long_seg[258] = ']';
    long_seg[259] = '\0';
    assert_non_null(gh_policy_claim_path_parse(long_seg, strlen(long_seg), &p));
}

static gh_jv_t find_in(const char *json, const char *path)
{
    gh_claim_path_t p;
    if (gh_policy_claim_path_parse(path, strlen(path), &p) != NULL)
        fail_msg("bad path %s", path);
    gh_jv_t v = gh_policy_claim_find(json, strlen(json), &p);
    gh_policy_claim_path_dispose(&p);
    return v;
}

static void test_json_reader(void **state)
{
    (void)state;
    gh_jv_t v =
        find_in(" { \"a\" : { \"b\" : [1, {\"c\":\"]\"}, \"x\\\"y\"] } , \"d\":\"e\" } ", "[d]");
    assert_int_equal(v.kind, GH_JV_STRING);
    assert_int_equal(v.n, 1);
    assert_memory_equal(v.p, "e", 1);
    v = find_in("{\"a\":{\"b\":[1,2]}}", "[a][b]");
    assert_int_equal(v.kind, GH_JV_ARRAY);
    assert_int_equal(v.n, 5);
    v = find_in("{\"a\":{\"b\":[1,2]}}", "[a][b][c]");
    assert_int_equal(v.kind, GH_JV_ABSENT);
    v = find_in("{\"a\":5}", "[a]");
    assert_int_equal(v.kind, GH_JV_OTHER);
    v = find_in("{\"a\":{}}", "[a]");
    assert_int_equal(v.kind, GH_JV_OTHER);
    /* Truncated or broken text anywhere: absent, never a read past it. */
    static const char *const broken[] = {
        "",
        "{",
        "{\"a\"",
        "{\"a\":",
        "{\"a\":\"x",
        "{\"a\":[",
        "{\"a\":\"\\",
        "{\"b\":1 \"a\":2}",
        "{\"b\":[1,}",
        "{\"a\"1}",
        "[\"a\"]",
        "\"a\"",
        "{\"b\":{\"c\":",
        "{\"b\":\"\\\"}",
        "{,\"a\":1}",
    };
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        size_t n = strlen(broken[i]);
        char *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */
        memcpy(copy, broken[i], n);
        gh_claim_path_t p;
        assert_null(gh_policy_claim_path_parse("[a]", 3, &p));
        v = gh_policy_claim_find(copy, n, &p);
        if (v.kind != GH_JV_ABSENT)
            fail_msg("'%s': found", broken[i]);
        gh_policy_claim_path_dispose(&p);
        free(copy);
    }
    /* Deeper than the bound: the value is skipped as unreadable. */
    char deep[512];
    size_t o = (size_t)snprintf(deep, sizeof(deep), "{\"x\":");
    for (int i = 0; i < 70; i++)
        deep[o++] = '[';
    for (int i = 0; i < 70; i++)
        deep[o++] = ']';
    snprintf(deep + o, sizeof(deep) - o, ",\"a\":\"b\"}");
    assert_int_equal(find_in(deep, "[a]").kind, GH_JV_ABSENT);

    char out[64];
    assert_int_equal(gh_policy_json_unescape("a\\u00e9\\ud83d\\ude00\\t", 21, out), 8);
    assert_memory_equal(out, "a\xc3\xa9\xf0\x9f\x98\x80\t", 8);
    assert_int_equal(gh_policy_json_unescape("\\ud83d", 6, out), -1);
    assert_int_equal(gh_policy_json_unescape("\\ude00", 6, out), -1);
    assert_int_equal(gh_policy_json_unescape("\\x", 2, out), -1);
    assert_int_equal(gh_policy_json_unescape("\\u12", 4, out), -1);
    assert_int_equal(gh_policy_json_unescape("\\", 1, out), -1);
}

/* The reader against jansson (an implementation it did not write) on
 * generated objects: nested objects and arrays, names and strings that
 * need escapes (quotes, backslashes, control bytes, non-ASCII). */
static uint64_t rng = 88172645463325252ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static const char *const alphabet[] = {"a", "b", "\"", "\\", "\n", "\xc3\xa9", "/", "c d", "\x7f"};

static void rand_name(char *out, size_t cap)
{
    size_t n = 1 + rnd(3), o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *s = alphabet[rnd(sizeof(alphabet) / sizeof(alphabet[0]))];
        o += (size_t)snprintf(out + o, cap - o, "%s", s);
    }
}

static json_t *rand_value(int depth)
{
    char s[64];
    switch (rnd(depth > 3 ? 4 : 6)) {
    case 0:
        rand_name(s, sizeof(s));
        return json_string(s);
    case 1:
        return json_integer(rnd(1000));
    case 2:
        return rnd(2) ? json_true() : json_null();
    case 3:
        rand_name(s, sizeof(s));
        return json_string(s);
    case 4: {
        json_t *a = json_array();
        for (unsigned i = rnd(4); i > 0; i--)
            json_array_append_new(a, rand_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = 1 + rnd(4); i > 0; i--) {
            rand_name(s, sizeof(s));
            json_object_set_new(o, s, rand_value(depth + 1));
        }
        return o;
    }
    }
}

static void test_json_against_jansson(void **state)
{
    (void)state;
    for (int round = 0; round < 400; round++) {
        json_t *doc = json_object();
        char names[4][64];
        for (int i = 0; i < 4; i++) {
            rand_name(names[i], sizeof(names[i]));
            json_object_set_new(doc, names[i], rand_value(0));
        }
        char *text = json_dumps(doc, rnd(2) ? JSON_INDENT(1) : JSON_COMPACT);
        /* Paths of one and two names, mostly present ones. */
        for (int t = 0; t < 8; t++) {
            const char *n1 = names[rnd(4)];
            char n2[64];
            rand_name(n2, sizeof(n2));
            json_t *v1 = json_object_get(doc, n1);
            if (json_is_object(v1) && rnd(2)) {
                const char *k;
                json_t *x;
                json_object_foreach(v1, k, x)
                {
                    if (rnd(2))
                        snprintf(n2, sizeof(n2), "%s", k);
                }
            }
            int two = rnd(2);
            json_t *want = two ? (json_is_object(v1) ? json_object_get(v1, n2) : NULL) : v1;
            if (strpbrk(n1, "[]") || strpbrk(n2, "[]"))
                continue;
            gh_claim_path_t p;
            memset(&p, 0, sizeof(p));
            char *segs[2] = {(char *)n1, n2};
            uint32_t lens[2] = {(uint32_t)strlen(n1), (uint32_t)strlen(n2)};
            p.segs = segs;
            p.lens = lens;
            p.n = two ? 2 : 1;
            gh_jv_t got = gh_policy_claim_find(text, strlen(text), &p);
            if (want == NULL) {
                assert_int_equal(got.kind, GH_JV_ABSENT);
            } else if (json_is_string(want)) {
                assert_int_equal(got.kind, GH_JV_STRING);
                char buf[256];
                long dn = gh_policy_json_unescape(got.p, got.n, buf);
                assert_int_equal(dn, (long)json_string_length(want));
                assert_memory_equal(buf, json_string_value(want), (size_t)dn);
            } else if (json_is_array(want)) {
                assert_int_equal(got.kind, GH_JV_ARRAY);
                json_error_t e;
                json_t *back = json_loadb(got.p, got.n, 0, &e);
                assert_non_null(back);
                assert_true(json_equal(back, want));
                json_decref(back);
            } else {
                assert_int_equal(got.kind, GH_JV_OTHER);
            }
        }
        free(text);
        json_decref(doc);
    }
}

/* ---- the claims cache ---- */

static int claims_calls;

static const char *counting_claims(void *arg, size_t *len)
{
    claims_calls++;
    return t_claims(arg, len);
}

static void test_claims_cache(void **state)
{
    (void)state;
    gh_config_t *cfg = load_policies(
        "  p: {rules: [{when: [{key: \"request.auth.claims[groups]\", values: [admin]}]}]}");
    const gh_policy_section_t *sec = section(cfg);
    gh_policy_wcache_t *w = gh_policy_cache_new();
    const char *tok = "aaaa.bbbb.signature-of-token-one",
               *tok2 = "aaaa.cccc.signature-of-token-two";

    /* First request: the payload is read once and kept; the second with
     * the same token reads neither payload nor claim again. */
    T.claims = "{\"groups\":[\"admin\"]}";
    claims_calls = 0;
    for (int round = 0; round < 2; round++) {
        gh_policy_centry_t *e = gh_policy_cache_get(w, sec, tok, strlen(tok));
        assert_non_null(e);
        gh_policy_req_t r = base();
        r.claims_fn = counting_claims;
        r.claim_vals = e->vals;
        r.claim_state = e->state;
        r.nclaim_slots = e->nvals;
        if (e->payload_state == 1) {
            r.claims = e->payload;
            r.claims_len = e->payload_len;
            r.claims_state = 1;
        } else {
            size_t n = 0;
            const char *text = counting_claims(&T, &n);
            r.claims = gh_policy_cache_payload(e, text, n);
            r.claims_len = n;
            r.claims_state = 1;
        }
        assert_true(gh_policy_matches(sec, find(cfg, "p"), &r));
        assert_int_equal(e->state[0], 1);
    }
    assert_int_equal(claims_calls, 1);
    T.claims = NULL;

    /* A reload (another section) keeps the payload, forgets the values. */
    gh_config_t *cfg2 =
        load_policies("  p: {rules: [{when: [{key: \"request.auth.claims[org]\", values: [x]}]}]}");
    assert_true(section(cfg2)->id != sec->id);
    gh_policy_centry_t *e = gh_policy_cache_get(w, section(cfg2), tok, strlen(tok));
    assert_non_null(e);
    assert_int_equal(e->payload_state, 1);
    assert_int_equal(e->state[0], 0);
    gh_config_free(cfg2);

    /* Another token: a fresh entry with nothing looked up. */
    gh_policy_centry_t *e2 = gh_policy_cache_get(w, sec, tok2, strlen(tok2));
    assert_non_null(e2);
    assert_int_equal(e2->payload_state, 0);
    assert_int_equal(e2->state[0], 0);
    assert_memory_equal(e2->token, tok2, strlen(tok2));

    /* Tokens too long to cache are read per request. */
    char big[GH_POL_CACHE_MAX_TOKEN + 2];
    memset(big, 'x', sizeof(big));
    assert_null(gh_policy_cache_get(w, sec, big, sizeof(big)));
    assert_null(gh_policy_cache_get(w, sec, big, 0));

    /* Every slot filled with distinct tokens, then read back or replaced:
     * the cache never grows past its slots and never mixes tokens up. */
    char t[64];
    for (int i = 0; i < 4 * GH_POL_CACHE_SLOTS; i++) {
        snprintf(t, sizeof(t), "h.p.sig-%08d-tail", i);
        gh_policy_centry_t *x = gh_policy_cache_get(w, sec, t, strlen(t));
        assert_non_null(x);
        assert_int_equal(x->token_len, strlen(t));
        assert_memory_equal(x->token, t, strlen(t));
    }
    gh_policy_cache_free(w);
    gh_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns),           cmocka_unit_test(test_ip_blocks),
        cmocka_unit_test(test_request_principals), cmocka_unit_test(test_consumers),
        cmocka_unit_test(test_operations),         cmocka_unit_test(test_header_conditions),
        cmocka_unit_test(test_claim_conditions),   cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_rule_composition),   cmocka_unit_test(test_decision_order),
        cmocka_unit_test(test_normalized_paths),   cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_attachment),         cmocka_unit_test(test_claim_path_parse),
        cmocka_unit_test(test_json_reader),        cmocka_unit_test(test_json_against_jansson),
        cmocka_unit_test(test_claims_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
