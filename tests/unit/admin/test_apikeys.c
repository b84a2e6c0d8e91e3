/*
 * src/admin/apikeys.c in-process: the strict checks of JSON bodies (every
 * member's type, unknown and repeated members, bad JSON of each kind),
 * query strings (names, repeats, percent-decoding, bounds), routing (every
 * path and method, 404 and 405 with allow), content types, and each
 * operation against a real SQLite store on a temporary file, with its
 * status, headers and JSON.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <gatehouse/store.h>
#include <gatehouse/store_json.h>

#include "admin/apikeys.h"

#define T0 1700000000 /* 2023-11-14T22:13:20Z, a Tuesday */

static char dir[] = "/tmp/gh-admin-ak-XXXXXX";
static gh_store_t *st;

/* ---- body parsers ---- */

static void create_refused_n(const char *body, size_t len, const char *want)
{
    gh_admin_ak_create_t c;
    char why[400] = "";
    int rc = gh_admin_ak_parse_create(body, len, &c, why, sizeof(why));
    if (rc != -EINVAL)
        fail_msg("create %.*s: %d, expected -EINVAL", (int)len, body, rc);
    if (strstr(why, want) == NULL)
        fail_msg("create %.*s: '%s' does not say '%s'", (int)len, body, why, want);
}

static void create_refused(const char *body, const char *want)
{
    create_refused_n(body, strlen(body), want);
}

static void test_create_body(void **state)
{
    (void)state;
    gh_admin_ak_create_t c;
    char why[400];
    const char *full = "{\"consumer\":\"alice\",\"plan\":\"gold\",\"scopes\":[\"orders:read\","
                       "\"orders:write\"],\"description\":\"Orders app\",\"expires\":\"90d\"}";
    assert_int_equal(gh_admin_ak_parse_create(full, strlen(full), &c, why, sizeof(why)), 0);
    assert_string_equal(c.consumer, "alice");
    assert_string_equal(c.plan, "gold");
    assert_string_equal(c.scopes, "orders:read,orders:write");
    assert_string_equal(c.description, "Orders app");
    assert_int_equal(c.expires_in, 90 * 86400);
    gh_admin_ak_create_dispose(&c);
    /* the minimum; whitespace around tokens; escapes decoded */
    const char *min = " \r\n\t{ \"consumer\" : \"b\\u006fb\" } \n";
    assert_int_equal(gh_admin_ak_parse_create(min, strlen(min), &c, why, sizeof(why)), 0);
    assert_string_equal(c.consumer, "bob");
    assert_null(c.plan);
    assert_null(c.scopes);
    assert_null(c.description);
    assert_int_equal(c.expires_in, 0);
    gh_admin_ak_create_dispose(&c);
    const char *never = "{\"consumer\":\"x\",\"expires\":\"never\",\"scopes\":[]}";
    assert_int_equal(gh_admin_ak_parse_create(never, strlen(never), &c, why, sizeof(why)), 0);
    assert_int_equal(c.expires_in, 0);
    assert_string_equal(c.scopes, "");
    gh_admin_ak_create_dispose(&c);

    create_refused("", "needs a JSON body");
    create_refused("{}", "consumer is required");
    create_refused("{\"plan\":\"gold\"}", "consumer is required");
    /* not JSON, or not one object */
    create_refused("consumer=alice", "not acceptable JSON");
    create_refused("{\"consumer\":\"a\"", "ends too early");
    create_refused("{\"consumer\":\"a\"}{}", "something follows");
    create_refused("{\"consumer\":\"a\"} x", "something follows");
    create_refused("[{\"consumer\":\"a\"}]", "must be a JSON object");
    create_refused("\"alice\"", "not acceptable JSON");
    create_refused("{'consumer':'a'}", "invalid syntax");
    create_refused("{\"consumer\":\"a\",}", "not acceptable JSON");
    create_refused("{\"consumer\":\"\\u0000a\"}", "\\u0000");
    create_refused("{\"consumer\":\"\xff\"}", "not UTF-8");
    create_refused("{\"consumer\":\"\xc0\xaf\"}", "not UTF-8");
    create_refused_n("{\"consumer\":\"a\"}\0", 17, "NUL byte");
    create_refused_n("{\"consumer\":\"a\",\"expires\":1\0}", 29, "NUL byte");
    /* one name twice, also when only its escapes differ */
    create_refused("{\"consumer\":\"a\",\"consumer\":\"b\"}", "appears twice");
    create_refused("{\"consumer\":\"a\",\"\\u0063onsumer\":\"b\"}", "appears twice");
    create_refused("{\"consumer\":\"a\",\"plan\":\"x\",\"plan\":\"x\"}", "appears twice");
    /* members it does not know, whatever their case or spelling */
    create_refused("{\"consumer\":\"a\",\"Consumer\":\"b\"}", "unknown member 'Consumer'");
    create_refused("{\"consumer\":\"a\",\"scope\":[\"x\"]}", "unknown member 'scope'");
    create_refused("{\"consumer\":\"a\",\"key\":\"gh_aaaaaaaaaaaa_x\"}", "unknown member 'key'");
    create_refused("{\"consumer\":\"a\",\"\\u00e9\":1}", "unknown member '?"
                                                         "?'");
    /* wrong types */
    static const char *const not_strings[] = {"1", "1.5", "true", "null", "[]", "{}", "[\"a\"]"};
    for (size_t i = 0; i < sizeof(not_strings) / sizeof(not_strings[0]); i++) {
        char b[128];
        snprintf(b, sizeof(b), "{\"consumer\":%s}", not_strings[i]);
        create_refused(b, "consumer must be a string");
        snprintf(b, sizeof(b), "{\"consumer\":\"a\",\"plan\":%s}", not_strings[i]);
        create_refused(b, "plan must be a string");
        snprintf(b, sizeof(b), "{\"consumer\":\"a\",\"description\":%s}", not_strings[i]);
        create_refused(b, "description must be a string");
        snprintf(b, sizeof(b), "{\"consumer\":\"a\",\"expires\":%s}", not_strings[i]);
        create_refused(b, "expires must be a string");
    }
    create_refused("{\"consumer\":\"a\",\"scopes\":\"a,b\"}", "scopes must be an array");
    create_refused("{\"consumer\":\"a\",\"scopes\":{\"a\":1}}", "scopes must be an array");
    create_refused("{\"consumer\":\"a\",\"scopes\":null}", "scopes must be an array");
    create_refused("{\"consumer\":\"a\",\"scopes\":[\"a\",1]}", "scopes[1] must be a string");
    create_refused("{\"consumer\":\"a\",\"scopes\":[[\"a\"]]}", "scopes[0] must be a string");
    /* an element that would read as two scopes, or none */
    create_refused("{\"consumer\":\"a\",\"scopes\":[\"a b\"]}", "scopes[0] must be one scope");
    create_refused("{\"consumer\":\"a\",\"scopes\":[\"x\",\"a,b\"]}", "scopes[1] must be one");
    create_refused("{\"consumer\":\"a\",\"scopes\":[\"\"]}", "scopes[0] must be one scope");
    create_refused("{\"consumer\":\"a\",\"scopes\":[\"a\\tb\"]}", "scopes[0] must be one scope");
    /* lifetimes */
    static const char *const bad_expires[] = {
        "",
        "0",
        "0d",
        "90",
        "-1d",
        "1y",
        "d",
        " 90d",
        "90d ",
        "90 d",
        "90D",
        "1.5d",
        "+90d",
        "NEVER",
        "0x10d",
        "9223372036854775807d",
        "99999999999999999999s",
    };
    for (size_t i = 0; i < sizeof(bad_expires) / sizeof(bad_expires[0]); i++) {
        char b[128];
        snprintf(b, sizeof(b), "{\"consumer\":\"a\",\"expires\":\"%s\"}", bad_expires[i]);
        create_refused(b, "expires must be a duration");
    }
    /* deep nesting is refused, not a crash */
    char deep[8192];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof(deep), "{\"consumer\":\"a\",\"plan\":");
    for (int i = 0; i < 3000; i++)
        deep[n++] = '[';
    create_refused_n(deep, n, "not acceptable JSON");
}

static void test_rotate_and_revoke_bodies(void **state)
{
    (void)state;
    gh_apikey_rotate_t ro;
    char why[400];
    assert_int_equal(gh_admin_ak_parse_rotate("", 0, &ro, why, sizeof(why)), 0);
    assert_int_equal(ro.grace, 86400);
    assert_int_equal(ro.expires_in, -1);
    const char *b = "{\"grace\":\"0\",\"expires\":\"never\"}";
    assert_int_equal(gh_admin_ak_parse_rotate(b, strlen(b), &ro, why, sizeof(why)), 0);
    assert_int_equal(ro.grace, 0);
    assert_int_equal(ro.expires_in, 0);
    b = "{\"grace\":\"2h\",\"expires\":\"1w\"}";
    assert_int_equal(gh_admin_ak_parse_rotate(b, strlen(b), &ro, why, sizeof(why)), 0);
    assert_int_equal(ro.grace, 7200);
    assert_int_equal(ro.expires_in, 7 * 86400);
    assert_int_equal(gh_admin_ak_parse_rotate("{}", 2, &ro, why, sizeof(why)), 0);
    assert_int_equal(ro.grace, 86400);
    static const struct {
        const char *body, *want;
    } bad[] = {
        {"{\"grace\":0}", "grace must be a string"},
        {"{\"grace\":\"-1h\"}", "grace must be a duration"},
        {"{\"grace\":\"never\"}", "grace must be a duration"},
        {"{\"grace\":\"1h\",\"grace\":\"2h\"}", "appears twice"},
        {"{\"expires\":\"0\"}", "expires must be a duration"},
        {"{\"expires\":false}", "expires must be a string"},
        {"{\"consumer\":\"a\"}", "unknown member 'consumer': rotate takes grace, expires"},
        {"[]", "must be a JSON object"},
        {"null", "not acceptable JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        assert_int_equal(
            gh_admin_ak_parse_rotate(bad[i].body, strlen(bad[i].body), &ro, why, sizeof(why)),
            -EINVAL);
        if (strstr(why, bad[i].want) == NULL)
            fail_msg("rotate %s: '%s' does not say '%s'", bad[i].body, why, bad[i].want);
    }
    assert_int_equal(gh_admin_ak_parse_revoke("", 0, why, sizeof(why)), 0);
    assert_int_equal(gh_admin_ak_parse_revoke("{}", 2, why, sizeof(why)), 0);
    assert_int_equal(gh_admin_ak_parse_revoke(" { } ", 5, why, sizeof(why)), 0);
    assert_int_equal(gh_admin_ak_parse_revoke("{\"grace\":\"1h\"}", 14, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "revoke takes an empty object"));
    assert_int_equal(gh_admin_ak_parse_revoke("[]", 2, why, sizeof(why)), -EINVAL);
    assert_int_equal(gh_admin_ak_parse_revoke("{}{}", 4, why, sizeof(why)), -EINVAL);
}

/* ---- query strings ---- */

static void query_refused(gh_admin_ak_op_t op, const char *q, const char *want)
{
    gh_admin_ak_query_t out;
    char why[400] = "";
    int rc = gh_admin_ak_parse_query(op, q, strlen(q), &out, why, sizeof(why));
    if (rc != -EINVAL)
        fail_msg("query %s: %d, expected -EINVAL", q, rc);
    if (strstr(why, want) == NULL)
        fail_msg("query %s: '%s' does not say '%s'", q, why, want);
}

static void test_queries(void **state)
{
    (void)state;
    gh_admin_ak_query_t q;
    char why[400];
    const char *s = "consumer=Acme+Corp%2C%20Inc.";
    assert_int_equal(gh_admin_ak_parse_query(GH_AK_LIST, s, strlen(s), &q, why, sizeof(why)), 0);
    assert_string_equal(q.consumer, "Acme Corp, Inc.");
    gh_admin_ak_query_dispose(&q);
    assert_int_equal(gh_admin_ak_parse_query(GH_AK_LIST, "", 0, &q, why, sizeof(why)), 0);
    assert_null(q.consumer);
    gh_admin_ak_query_dispose(&q);
    /* empty pairs are nothing */
    assert_int_equal(gh_admin_ak_parse_query(GH_AK_USAGE, "&&days=30&", 10, &q, why, sizeof(why)),
                     0);
    assert_int_equal(q.days, 30);
    gh_admin_ak_query_dispose(&q);
    assert_int_equal(gh_admin_ak_parse_query(GH_AK_USAGE, "", 0, &q, why, sizeof(why)), 0);
    assert_int_equal(q.days, 7);
    gh_admin_ak_query_dispose(&q);
    s = "plan_map=c7y23b=gold&plan_map=glvrsr%3Dsilver&plan=free&dry_run=true";
    assert_int_equal(gh_admin_ak_parse_query(GH_AK_IMPORT, s, strlen(s), &q, why, sizeof(why)), 0);
    assert_int_equal(q.num_plan_map, 2);
    assert_string_equal(q.plan_map[0].usage_plan_id, "c7y23b");
    assert_string_equal(q.plan_map[0].plan, "gold");
    assert_string_equal(q.plan_map[1].usage_plan_id, "glvrsr");
    assert_string_equal(q.plan_map[1].plan, "silver");
    assert_string_equal(q.plan, "free");
    assert_int_equal(q.dry_run, 1);
    gh_admin_ak_query_dispose(&q);
    s = "dry_run=0";
    assert_int_equal(gh_admin_ak_parse_query(GH_AK_IMPORT, s, strlen(s), &q, why, sizeof(why)), 0);
    assert_int_equal(q.dry_run, 0);
    gh_admin_ak_query_dispose(&q);
    /* many plan_map entries: more than one block of them */
    char big[4096];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%splan_map=id%d=p%d", i ? "&" : "", i, i);
    assert_int_equal(gh_admin_ak_parse_query(GH_AK_IMPORT, big, n, &q, why, sizeof(why)), 0);
    assert_int_equal(q.num_plan_map, 40);
    assert_string_equal(q.plan_map[39].usage_plan_id, "id39");
    gh_admin_ak_query_dispose(&q);

    /* a parameter an operation does not take is refused, so that a typo
     * or a dry_run on the wrong operation never does the real thing */
    query_refused(GH_AK_CREATE, "dry_run=1",
                  "unknown query parameter 'dry_run': create takes none");
    query_refused(GH_AK_ROTATE, "grace=1h", "rotate takes none");
    query_refused(GH_AK_REVOKE, "x", "revoke takes none");
    query_refused(GH_AK_SHOW, "a=b", "takes none");
    query_refused(GH_AK_LIST, "Consumer=a", "unknown query parameter 'Consumer'");
    query_refused(GH_AK_LIST, "consumer%3Da", "unknown query parameter");
    query_refused(GH_AK_LIST, "consume%72=a", "unknown query parameter");
    query_refused(GH_AK_LIST, "days=3", "listing keys takes consumer");
    query_refused(GH_AK_USAGE, "consumer=a", "usage takes days");
    query_refused(GH_AK_IMPORT, "dry-run=1", "import takes plan_map, plan and dry_run");
    /* each once (plan_map excepted), each with a value */
    query_refused(GH_AK_LIST, "consumer=a&consumer=a", "given twice");
    query_refused(GH_AK_USAGE, "days=1&days=1", "given twice");
    query_refused(GH_AK_IMPORT, "plan=a&plan=b", "given twice");
    query_refused(GH_AK_IMPORT, "dry_run=1&dry_run=1", "given twice");
    query_refused(GH_AK_LIST, "consumer", "needs a value");
    query_refused(GH_AK_IMPORT, "dry_run", "needs a value");
    /* escapes */
    query_refused(GH_AK_LIST, "consumer=%zz", "two hex digits");
    query_refused(GH_AK_LIST, "consumer=a%", "two hex digits");
    query_refused(GH_AK_LIST, "consumer=a%4", "two hex digits");
    query_refused(GH_AK_LIST, "consumer=a%00b", "%00 is refused");
    /* values */
    static const char *const bad_days[] = {"days=0",   "days=367", "days=-1",
                                           "days=+7",  "days=7x",  "days=",
                                           "days=1e2", "days= 7",  "days=99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_days) / sizeof(bad_days[0]); i++)
        query_refused(GH_AK_USAGE, bad_days[i], "days must be a number from 1 to 366");
    query_refused(GH_AK_IMPORT, "dry_run=yes", "dry_run must be 1, true, 0 or false");
    query_refused(GH_AK_IMPORT, "dry_run=TRUE", "dry_run must be");
    query_refused(GH_AK_IMPORT, "plan=-gold", "plan: the plan");
    query_refused(GH_AK_IMPORT, "plan=", "plan: the plan");
    query_refused(GH_AK_IMPORT, "plan_map=abc", "plan_map must be USAGEPLANID=PLAN");
    query_refused(GH_AK_IMPORT, "plan_map==gold", "plan_map must be USAGEPLANID=PLAN");
    query_refused(GH_AK_IMPORT, "plan_map=abc=", "plan_map must be USAGEPLANID=PLAN");
    query_refused(GH_AK_IMPORT, "plan_map=abc=g%20old", "plan_map abc: the plan");
    query_refused(GH_AK_IMPORT, "plan_map=a=x&plan_map=a=y", "usage plan 'a' is mapped twice");
    /* past the bound */
    char *many = malloc(20 * (GH_ADMIN_AK_MAX_PLAN_MAP + 1));
    n = 0;
    for (int i = 0; i <= GH_ADMIN_AK_MAX_PLAN_MAP; i++)
        n += (size_t)sprintf(many + n, "%splan_map=i%d=p", i ? "&" : "", i);
    assert_int_equal(gh_admin_ak_parse_query(GH_AK_IMPORT, many, n, &q, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "more than 1024 plan_map"));
    free(many);
}

/* ---- routing ---- */

static void route_ok(const char *method, const char *path, gh_admin_ak_op_t op, int body)
{
    gh_admin_ak_route_t rt;
    gh_admin_reply_t r;
    memset(&r, 0, sizeof(r));
    assert_true(gh_admin_ak_is_path(path, strlen(path)));
    if (gh_admin_ak_route(method, strlen(method), path, strlen(path), &rt, &r) != 0)
        fail_msg("%s %s: %d %s", method, path, r.status, r.body);
    assert_int_equal(rt.op, op);
    assert_int_equal(rt.body, body);
    assert_int_equal(rt.head, strcmp(method, "HEAD") == 0);
}

static void route_refused(const char *method, const char *path, int status, const char *allow,
                          const char *detail)
{
    gh_admin_ak_route_t rt;
    gh_admin_reply_t r;
    memset(&r, 0, sizeof(r));
    assert_true(gh_admin_ak_is_path(path, strlen(path)));
    assert_int_equal(gh_admin_ak_route(method, strlen(method), path, strlen(path), &rt, &r), -1);
    if (r.status != status)
        fail_msg("%s %s: %d, expected %d", method, path, r.status, status);
    assert_non_null(r.body);
    if (allow != NULL) {
        char want[64];
        snprintf(want, sizeof(want), "allow: %s\r\n", allow);
        assert_string_equal(r.extra, want);
    } else {
        assert_string_equal(r.extra, "");
    }
    if (detail != NULL && strstr(r.body, detail) == NULL)
        fail_msg("%s %s: '%s' does not say '%s'", method, path, r.body, detail);
    gh_admin_reply_dispose(&r);
}

static void test_routes(void **state)
{
    (void)state;
    const char *id = "/apikeys/k7q2m4x7a3bc";
    char p[64];
    route_ok("GET", "/apikeys", GH_AK_LIST, GH_AK_BODY_NONE);
    route_ok("HEAD", "/apikeys", GH_AK_LIST, GH_AK_BODY_NONE);
    route_ok("POST", "/apikeys", GH_AK_CREATE, GH_AK_BODY_JSON);
    route_ok("POST", "/apikeys/import", GH_AK_IMPORT, GH_AK_BODY_CSV);
    route_ok("GET", id, GH_AK_SHOW, GH_AK_BODY_NONE);
    route_ok("HEAD", id, GH_AK_SHOW, GH_AK_BODY_NONE);
    snprintf(p, sizeof(p), "%s/revoke", id);
    route_ok("POST", p, GH_AK_REVOKE, GH_AK_BODY_JSON);
    route_refused("GET", p, 405, "POST", "this path takes POST");
    route_refused("DELETE", p, 405, "POST", NULL);
    snprintf(p, sizeof(p), "%s/rotate", id);
    route_ok("POST", p, GH_AK_ROTATE, GH_AK_BODY_JSON);
    route_refused("PUT", p, 405, "POST", NULL);
    snprintf(p, sizeof(p), "%s/usage", id);
    route_ok("GET", p, GH_AK_USAGE, GH_AK_BODY_NONE);
    route_ok("HEAD", p, GH_AK_USAGE, GH_AK_BODY_NONE);
    route_refused("POST", p, 405, "GET, HEAD", NULL);
    route_refused("DELETE", "/apikeys", 405, "GET, HEAD, POST", NULL);
    route_refused("get", "/apikeys", 405, "GET, HEAD, POST", NULL); /* methods are case-sensitive */
    route_refused("GET", "/apikeys/import", 405, "POST", NULL);
    route_refused("DELETE", id, 405, "GET, HEAD", NULL);
    route_refused("POST", id, 405, "GET, HEAD", NULL);
    /* paths that are not: each a 404 that says why */
    route_refused("GET", "/apikeys/", 404, NULL, "'' is not a key id");
    route_refused("GET", "/apikeys//revoke", 404, NULL, "is not a key id");
    route_refused("GET", "/apikeys/K7Q2M4X9A3BC", 404, NULL, "is not a key id");
    route_refused("GET", "/apikeys/k7q2m4x7a3b1", 404, NULL, "is not a key id"); /* 1: not base32 */
    route_refused("GET", "/apikeys/k7q2m4x7a3bcd", 404, NULL, "is not a key id");
    route_refused("GET", "/apikeys/k7q2m4x7a3b", 404, NULL, "is not a key id");
    route_refused("GET", "/apikeys/k7q2m4x7a3b%63", 404, NULL, "is not a key id");
    route_refused("POST", "/apikeys/import/", 404, NULL, "is not a key id");
    route_refused("POST", "/apikeys/IMPORT", 404, NULL, "is not a key id");
    route_refused("GET", "/apikeys/k7q2m4x7a3bc/", 404, NULL, "no API-key operation ''");
    route_refused("POST", "/apikeys/k7q2m4x7a3bc/revoke/", 404, NULL, "no API-key operation");
    route_refused("POST", "/apikeys/k7q2m4x7a3bc/Revoke", 404, NULL, "no API-key operation");
    route_refused("POST", "/apikeys/k7q2m4x7a3bc/../revoke", 404, NULL, "no API-key operation");
    route_refused("GET", "/apikeys/k7q2m4x7a3bc/usage/x", 404, NULL, "no API-key operation");
    /* a long segment is cut in the detail */
    char lng[300] = "/apikeys/";
    memset(lng + 9, 'a', 200);
    lng[209] = '\0';
    route_refused("GET", lng, 404, NULL, "aaaaaaaa...'");
    assert_false(gh_admin_ak_is_path("/apikeysx", 9));
    assert_false(gh_admin_ak_is_path("/apikey", 7));
    assert_false(gh_admin_ak_is_path("/APIKEYS", 8));
    assert_false(gh_admin_ak_is_path("//apikeys", 9));
}

static void type_ok(int body, const char *ct)
{
    gh_admin_ak_route_t rt = {.body = body};
    gh_admin_reply_t r;
    memset(&r, 0, sizeof(r));
    if (gh_admin_ak_check_type(&rt, ct, ct ? strlen(ct) : 0, &r) != 0)
        fail_msg("content-type '%s' refused", ct);
}

static void type_refused(int body, const char *ct)
{
    gh_admin_ak_route_t rt = {.body = body};
    gh_admin_reply_t r;
    memset(&r, 0, sizeof(r));
    if (gh_admin_ak_check_type(&rt, ct, ct ? strlen(ct) : 0, &r) == 0)
        fail_msg("content-type '%s' taken", ct ? ct : "(none)");
    assert_int_equal(r.status, 415);
    assert_non_null(strstr(r.body, body == GH_AK_BODY_CSV ? "content-type: text/csv"
                                                          : "content-type: application/json"));
    gh_admin_reply_dispose(&r);
}

static void test_content_types(void **state)
{
    (void)state;
    type_ok(GH_AK_BODY_JSON, "application/json");
    type_ok(GH_AK_BODY_JSON, "Application/JSON");
    type_ok(GH_AK_BODY_JSON, "application/json; charset=utf-8");
    type_ok(GH_AK_BODY_JSON, "application/json;charset=UTF-8");
    type_ok(GH_AK_BODY_CSV, "text/csv");
    type_ok(GH_AK_BODY_CSV, "text/csv; header=present");
    type_refused(GH_AK_BODY_JSON, NULL);
    type_refused(GH_AK_BODY_JSON, "");
    type_refused(GH_AK_BODY_JSON, "text/json");
    type_refused(GH_AK_BODY_JSON, "application/jsonx");
    type_refused(GH_AK_BODY_JSON, "application/json-patch+json");
    type_refused(GH_AK_BODY_JSON, "application/x-www-form-urlencoded");
    type_refused(GH_AK_BODY_JSON, "text/csv");
    type_refused(GH_AK_BODY_CSV, "application/json");
    type_refused(GH_AK_BODY_CSV, "text/plain");
    type_refused(GH_AK_BODY_CSV, "text/csvx");
}

/* ---- the operations, on a real store ---- */

typedef struct {
    int status;
    char extra[160];
    json_t *doc;
} answer_t;

static answer_t run(const char *method, const char *target, const char *body, int64_t now)
{
    gh_admin_ak_route_t rt;
    gh_admin_reply_t r;
    answer_t a;
    memset(&r, 0, sizeof(r));
    memset(&a, 0, sizeof(a));
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    if (gh_admin_ak_route(method, strlen(method), target, plen, &rt, &r) != 0)
        fail_msg("%s %s not routed: %s", method, target, r.body);
    gh_admin_ak_handle(st, &rt, q ? q + 1 : "", q ? strlen(q + 1) : 0, body ? body : "",
                       body ? strlen(body) : 0, now, &r);
    assert_non_null(r.body);
    assert_int_equal(r.body[r.len - 1], '\n');
    assert_int_equal(strlen(r.body), r.len);
    json_error_t e;
    a.doc = json_loadb(r.body, r.len, JSON_REJECT_DUPLICATES, &e);
    if (a.doc == NULL)
        fail_msg("%s %s: the answer is not JSON: %s", method, target, r.body);
    a.status = r.status;
    memcpy(a.extra, r.extra, sizeof(a.extra));
    gh_admin_reply_dispose(&r);
    return a;
}

static const char *str(json_t *doc, const char *name)
{
    json_t *v = json_object_get(doc, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void expect_error(answer_t a, int status, const char *code, const char *detail)
{
    if (a.status != status)
        fail_msg("status %d, expected %d: %s", a.status, status, str(a.doc, "detail"));
    assert_string_equal(str(a.doc, "error"), code);
    const char *d = str(a.doc, "detail");
    assert_non_null(d);
    if (strstr(d, detail) == NULL)
        fail_msg("'%s' does not say '%s'", d, detail);
    json_decref(a.doc);
}

static int setup(void **state)
{
    (void)state;
    static int made, n;
    char path[256];
    if (!made && mkdtemp(dir) == NULL)
        return -1;
    made = 1;
    snprintf(path, sizeof(path), "%s/store-%d.db", dir, n++);
    gh_store_conf_t c;
    gh_store_error_t err;
    if (gh_store_conf_default(&c, NULL) != 0)
        return -1;
    free(c.path);
    c.path = strdup(path);
    c.path_is_default = 0;
    int rc = gh_store_open(&c, GH_STORE_CREATE, &st, &err);
    gh_store_conf_dispose(&c);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    gh_store_unref(st);
    st = NULL;
    return 0;
}

static void test_lifecycle(void **state)
{
    (void)state;
    answer_t a = run("GET", "/apikeys", NULL, T0);
    assert_int_equal(a.status, 200);
    assert_true(json_is_array(a.doc) && json_array_size(a.doc) == 0);
    json_decref(a.doc);
    /* create: 201, the key once, where it lives */
    a = run("POST", "/apikeys",
            "{\"consumer\":\"alice\",\"plan\":\"gold\",\"scopes\":[\"a\",\"b\"],\"description\":"
            "\"d\",\"expires\":\"1d\"}",
            T0);
    assert_int_equal(a.status, 201);
    char id[16], key[GH_APIKEY_LEN + 1];
    snprintf(id, sizeof(id), "%s", str(a.doc, "id"));
    snprintf(key, sizeof(key), "%s", str(a.doc, "key"));
    assert_true(gh_apikey_is_native(key, strlen(key)));
    assert_int_equal(strncmp(key + 3, id, 12), 0);
    char loc[64];
    snprintf(loc, sizeof(loc), "location: /apikeys/%s\r\n", id);
    assert_string_equal(a.extra, loc);
    assert_string_equal(str(a.doc, "state"), "valid");
    assert_string_equal(str(a.doc, "expires"), "2023-11-15T22:13:20Z");
    assert_int_equal(json_array_size(json_object_get(a.doc, "scopes")), 2);
    json_decref(a.doc);
    /* the key is the store's: it is found by the store */
    gh_apikey_presented_t p;
    gh_apikey_t rec;
    gh_store_error_t err;
    assert_int_equal(gh_apikey_present(key, strlen(key), &p, NULL), 0);
    assert_int_equal(gh_store_key_find(st, &p, &rec, &err), 0);
    assert_string_equal(rec.consumer, "alice");
    gh_apikey_dispose(&rec);
    /* show and list: the same document as gh_apikey_json, never the key */
    char target[128];
    snprintf(target, sizeof(target), "/apikeys/%s", id);
    a = run("GET", target, NULL, T0 + 10);
    assert_int_equal(a.status, 200);
    assert_null(json_object_get(a.doc, "key"));
    assert_null(json_object_get(a.doc, "hash"));
    assert_int_equal(gh_store_key_get(st, id, &rec, &err), 0);
    json_t *want = gh_apikey_json(&rec, T0 + 10);
    assert_true(json_equal(a.doc, want));
    json_decref(want);
    gh_apikey_dispose(&rec);
    json_decref(a.doc);
    a = run("POST", "/apikeys", "{\"consumer\":\"bob\"}", T0);
    assert_int_equal(a.status, 201);
    json_decref(a.doc);
    a = run("GET", "/apikeys?consumer=alice", NULL, T0);
    assert_int_equal(json_array_size(a.doc), 1);
    assert_string_equal(str(json_array_get(a.doc, 0), "id"), id);
    json_decref(a.doc);
    a = run("GET", "/apikeys", NULL, T0);
    assert_int_equal(json_array_size(a.doc), 2);
    json_decref(a.doc);
    a = run("GET", "/apikeys?consumer=nobody", NULL, T0);
    assert_int_equal(json_array_size(a.doc), 0);
    json_decref(a.doc);
    /* expiry is judged at now */
    a = run("GET", target, NULL, T0 + 86400);
    assert_string_equal(str(a.doc, "state"), "expired");
    json_decref(a.doc);

    /* rotate: a new key; the old one in its grace, then a conflict */
    snprintf(target, sizeof(target), "/apikeys/%s/rotate", id);
    a = run("POST", target, "{\"grace\":\"1h\",\"expires\":\"never\"}", T0 + 60);
    assert_int_equal(a.status, 201);
    char nid[16];
    snprintf(nid, sizeof(nid), "%s", str(a.doc, "id"));
    assert_string_not_equal(nid, id);
    assert_non_null(str(a.doc, "key"));
    assert_true(json_is_null(json_object_get(a.doc, "expires")));
    assert_string_equal(str(a.doc, "consumer"), "alice");
    json_decref(a.doc);
    expect_error(run("POST", target, NULL, T0 + 61), 409, "conflict", "rotated already");
    snprintf(target, sizeof(target), "/apikeys/%s", id);
    a = run("GET", target, NULL, T0 + 61);
    assert_string_equal(str(a.doc, "replaced_by"), nid);
    assert_string_equal(str(a.doc, "grace_until"), "2023-11-14T23:14:20Z");
    json_decref(a.doc);

    /* revoke: 200 with the record, then a conflict; a revoked key does not rotate */
    snprintf(target, sizeof(target), "/apikeys/%s/revoke", nid);
    a = run("POST", target, NULL, T0 + 100);
    assert_int_equal(a.status, 200);
    assert_string_equal(str(a.doc, "state"), "revoked");
    assert_string_equal(str(a.doc, "revoked"), "2023-11-14T22:15:00Z");
    json_decref(a.doc);
    expect_error(run("POST", target, "{}", T0 + 101), 409, "conflict", "revoked");
    snprintf(target, sizeof(target), "/apikeys/%s/rotate", nid);
    expect_error(run("POST", target, "{}", T0 + 102), 409, "conflict", "revoked");

    /* unknown keys */
    expect_error(run("GET", "/apikeys/aaaaaaaaaaaa", NULL, T0), 404, "not_found", "");
    expect_error(run("POST", "/apikeys/aaaaaaaaaaaa/revoke", NULL, T0), 404, "not_found", "");
    expect_error(run("POST", "/apikeys/aaaaaaaaaaaa/rotate", NULL, T0), 404, "not_found", "");
    expect_error(run("GET", "/apikeys/aaaaaaaaaaaa/usage", NULL, T0), 404, "not_found", "");
}

static void test_refusals_change_nothing(void **state)
{
    (void)state;
    /* the store's own checks, as 400 */
    expect_error(run("POST", "/apikeys", "{\"consumer\":\"=cmd()\"}", T0), 400, "bad_request",
                 "the consumer");
    expect_error(run("POST", "/apikeys", "{\"consumer\":\"a\",\"plan\":\"gold plan\"}", T0), 400,
                 "bad_request", "the plan");
    expect_error(run("POST", "/apikeys", "{\"consumer\":\"a\",\"scopes\":[\"a\",\"a\"]}", T0), 400,
                 "bad_request", "the scopes");
    expect_error(run("POST", "/apikeys", "{\"consumer\":\"a\",\"description\":\"@x\"}", T0), 400,
                 "bad_request", "the description");
    expect_error(run("POST", "/apikeys", "{\"consumer\":\"a\",\"expires\":\"99999w\"}", T0), 400,
                 "bad_request", "lifetime");
    expect_error(run("POST", "/apikeys", "{\"consumer\":\" a\"}", T0), 400, "bad_request",
                 "the consumer");
    expect_error(run("POST", "/apikeys", "{\"consumer\":\"a\\u001b[2J\"}", T0), 400, "bad_request",
                 "the consumer");
    expect_error(run("POST", "/apikeys?dry_run=1", "{\"consumer\":\"a\"}", T0), 400, "bad_request",
                 "unknown query parameter 'dry_run'");
    expect_error(run("POST", "/apikeys", "{\"consumer\":\"a\",\"consumer\":\"a\"}", T0), 400,
                 "bad_request", "appears twice");
    /* nothing was made by any of them */
    answer_t a = run("GET", "/apikeys", NULL, T0);
    assert_int_equal(json_array_size(a.doc), 0);
    json_decref(a.doc);
}

static void test_usage(void **state)
{
    (void)state;
    answer_t a = run("POST", "/apikeys", "{\"consumer\":\"alice\"}", T0);
    char id[16], target[128];
    snprintf(id, sizeof(id), "%s", str(a.doc, "id"));
    json_decref(a.doc);
    /* counts still waiting in the store object are included */
    gh_store_usage_add(st, NULL, 0, id, T0, 3);
    gh_store_usage_add(st, NULL, 1, id, T0 - 86400, 2);      /* Monday */
    gh_store_usage_add(st, NULL, 2, id, T0 - 2 * 86400, 5);  /* Sunday: last week */
    gh_store_usage_add(st, NULL, 3, id, T0 - 14 * 86400, 7); /* Oct 31: last month */
    snprintf(target, sizeof(target), "/apikeys/%s/usage?days=3", id);
    a = run("GET", target, NULL, T0);
    assert_int_equal(a.status, 200);
    assert_int_equal(json_integer_value(json_object_get(a.doc, "today")), 3);
    assert_int_equal(json_integer_value(json_object_get(a.doc, "week")), 5);
    assert_int_equal(json_integer_value(json_object_get(a.doc, "month")), 10);
    json_t *days = json_object_get(a.doc, "days");
    assert_int_equal(json_array_size(days), 3);
    assert_string_equal(str(json_array_get(days, 0), "day"), "2023-11-12");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(days, 0), "count")), 5);
    assert_string_equal(str(json_array_get(days, 2), "day"), "2023-11-14");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(days, 2), "count")), 3);
    json_decref(a.doc);
    /* written or pending, the same answer */
    gh_store_error_t err;
    assert_int_equal(gh_store_usage_flush(st, &err), 0);
    snprintf(target, sizeof(target), "/apikeys/%s/usage", id);
    a = run("GET", target, NULL, T0);
    assert_int_equal(json_integer_value(json_object_get(a.doc, "month")), 10);
    assert_int_equal(json_array_size(json_object_get(a.doc, "days")), 7);
    json_decref(a.doc);
    snprintf(target, sizeof(target), "/apikeys/%s/usage?days=366", id);
    a = run("GET", target, NULL, T0);
    assert_int_equal(a.status, 200);
    assert_int_equal(json_array_size(json_object_get(a.doc, "days")), 366);
    json_decref(a.doc);
    snprintf(target, sizeof(target), "/apikeys/%s/usage?days=367", id);
    expect_error(run("GET", target, NULL, T0), 400, "bad_request", "days must be");
}

static const char csv_good[] = "Name,Key,Description,Enabled,UsagePlanIds\n"
                               "orders-app,apikey1234abcdefghij0123456789,Orders,TRUE,c7y23b\n"
                               "billing,apikey9876abcdefghij0123456789,\"Billing, nightly\",true,\n"
                               "legacy,apikey5555abcdefghij0123456789,,FALSE,\n";

static void test_import(void **state)
{
    (void)state;
    /* a usage plan without a mapping: every row checked, nothing written */
    answer_t a = run("POST", "/apikeys/import", csv_good, T0);
    assert_int_equal(a.status, 400);
    assert_string_equal(str(a.doc, "error"), "bad_request");
    assert_non_null(strstr(str(a.doc, "detail"), "1 error in the file; nothing was imported"));
    json_t *errs = json_object_get(a.doc, "errors");
    assert_int_equal(json_array_size(errs), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 0), "line")), 2);
    assert_non_null(strstr(str(json_array_get(errs, 0), "message"), "(plan_map=c7y23b=PLAN)"));
    assert_int_equal(json_integer_value(json_object_get(a.doc, "total_errors")), 1);
    char *text = json_dumps(a.doc, 0);
    assert_null(strstr(text, "apikey1234")); /* never a key in an answer */
    free(text);
    json_decref(a.doc);
    /* a dry run writes nothing */
    a = run("POST", "/apikeys/import?plan_map=c7y23b=gold&dry_run=1", csv_good, T0);
    assert_int_equal(a.status, 200);
    assert_true(json_is_true(json_object_get(a.doc, "dry_run")));
    assert_int_equal(json_integer_value(json_object_get(a.doc, "rows")), 3);
    assert_int_equal(json_integer_value(json_object_get(a.doc, "created")), 3);
    json_decref(a.doc);
    a = run("GET", "/apikeys", NULL, T0);
    assert_int_equal(json_array_size(a.doc), 0);
    json_decref(a.doc);
    /* the import itself */
    a = run("POST", "/apikeys/import?plan_map=c7y23b=gold&plan=free", csv_good, T0);
    assert_int_equal(a.status, 200);
    assert_true(json_is_false(json_object_get(a.doc, "dry_run")));
    assert_int_equal(json_integer_value(json_object_get(a.doc, "created")), 3);
    assert_int_equal(json_integer_value(json_object_get(a.doc, "updated")), 0);
    json_decref(a.doc);
    a = run("GET", "/apikeys?consumer=orders-app", NULL, T0);
    assert_int_equal(json_array_size(a.doc), 1);
    json_t *k = json_array_get(a.doc, 0);
    assert_string_equal(str(k, "plan"), "gold");
    assert_string_equal(str(k, "source"), "aws-import");
    json_decref(a.doc);
    a = run("GET", "/apikeys?consumer=billing", NULL, T0);
    assert_string_equal(str(json_array_get(a.doc, 0), "plan"), "free");
    json_decref(a.doc);
    a = run("GET", "/apikeys?consumer=legacy", NULL, T0);
    assert_string_equal(str(json_array_get(a.doc, 0), "state"), "disabled");
    char legacy[16];
    snprintf(legacy, sizeof(legacy), "%s", str(json_array_get(a.doc, 0), "id"));
    json_decref(a.doc);
    /* a second import updates */
    a = run("POST", "/apikeys/import?plan_map=c7y23b=silver", csv_good, T0);
    assert_int_equal(a.status, 200);
    assert_int_equal(json_integer_value(json_object_get(a.doc, "updated")), 3);
    json_decref(a.doc);
    /* a revoked key in the file: refused by the store, nothing written */
    char target[64];
    snprintf(target, sizeof(target), "/apikeys/%s/revoke", legacy);
    a = run("POST", target, NULL, T0);
    assert_int_equal(a.status, 200);
    json_decref(a.doc);
    a = run("POST", "/apikeys/import?plan_map=c7y23b=bronze", csv_good, T0);
    assert_int_equal(a.status, 400);
    assert_non_null(strstr(str(a.doc, "detail"), "refused by the store; nothing was imported"));
    errs = json_object_get(a.doc, "errors");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(errs, 0), "line")), 4);
    json_decref(a.doc);
    a = run("GET", "/apikeys?consumer=orders-app", NULL, T0);
    assert_string_equal(str(json_array_get(a.doc, 0), "plan"), "silver");
    json_decref(a.doc);
    /* files that are not CSV of keys */
    a = run("POST", "/apikeys/import", "", T0);
    assert_int_equal(a.status, 400);
    json_decref(a.doc);
    a = run("POST", "/apikeys/import", "{\"consumer\":\"a\"}", T0);
    assert_int_equal(a.status, 400);
    json_decref(a.doc);
    /* a header only: nothing to import */
    a = run("POST", "/apikeys/import", "Name,Key\n", T0);
    assert_int_equal(a.status, 200);
    assert_int_equal(json_integer_value(json_object_get(a.doc, "rows")), 0);
    json_decref(a.doc);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_body),
        cmocka_unit_test(test_rotate_and_revoke_bodies),
        cmocka_unit_test(test_queries),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_content_types),
        T(test_lifecycle),
        T(test_refusals_change_nothing),
        T(test_usage),
        T(test_import),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return rc;
}
