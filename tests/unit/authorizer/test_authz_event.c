/*
 * The events sent to Lambda functions (src/authorizer/event.c), field by
 * field against AWS's published example events:
 *
 *  [A2] "Working with AWS Lambda authorizers for HTTP APIs", payload format
 *       2.0 request (docs.aws.amazon.com/apigateway/latest/developerguide/
 *       http-api-lambda-authorizer.html)
 *  [A1] "Input to an Amazon API Gateway Lambda Authorizer", TOKEN and
 *       REQUEST (.../api-gateway-lambda-authorizer-input.html)
 *  [P]  "Working with AWS Lambda proxy integrations for HTTP APIs", payload
 *       formats 2.0 and 1.0 (.../http-api-develop-integrations-lambda.html)
 *  [C]  a captured HTTP API event without authorizer (aws-lambda-go,
 *       events/testdata/apigw-v2-request-no-authorizer.json): what is left
 *       out when absent.
 *
 * Where an example contradicts itself it is said at the test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "authorizer/authz.h"

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }
#define STR(s) ((gh_authz_str_t){s, sizeof(s) - 1})

typedef int (*build_fn)(const gh_authz_request_t *, char **, size_t *);

static json_t *build(build_fn fn, const gh_authz_request_t *r)
{
    char *out = NULL;
    size_t len = 0;
    int rc = fn(r, &out, &len);
    assert_int_equal(rc, 0);
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    json_error_t e;
    json_t *doc = json_loadb(out, len, JSON_REJECT_DUPLICATES, &e);
    if (doc == NULL)
        fail_msg("not JSON: %s: %s", e.text, out);
    free(out);
    return doc;
}

static void expect_json(const json_t *got, const char *want)
{
    json_error_t e;
    json_t *w = json_loads(want, 0, &e);
    if (w == NULL)
        fail_msg("bad expectation: %s", e.text);
    if (!json_equal((json_t *)got, w)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        char *x = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(stderr, "got:  %s\nwant: %s\n", g, x);
        free(g);
        free(x);
        fail();
    }
    json_decref(w);
}

/* The top-level keys, in order, joined with ','. */
static void expect_keys(const json_t *o, const char *want)
{
    char buf[1024] = "";
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        if (buf[0] != '\0')
            strcat(buf, ",");
        strcat(buf, k);
    }
    assert_string_equal(buf, want);
}

static const char *sget(const json_t *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const json_t *v = o;
    for (char *tok = strtok(buf, "."); tok != NULL; tok = strtok(NULL, "."))
        v = json_object_get(v, tok);
    if (!json_is_string(v))
        fail_msg("%s is not a string", path);
    return json_string_value(v);
}

/* ---- [A2]: the HTTP API authorizer event ---- */

static const gh_h1_header_t a2_headers[] = {
    H("Header1", "value1"),
    H("Header2", "value2"),
    H("Cookie", "cookie1; cookie2"),
    H("User-Agent", "agent"),
    H("Host", "id.execute-api.us-east-1.amazonaws.com"),
};
static const gh_authz_kv_t a2_path[] = {{"parameter1", "value1"}};
static const gh_authz_kv_t a2_stage[] = {{"stageVariable1", "value1"},
                                         {"stageVariable2", "value2"}};
static const gh_authz_str_t a2_ids[] = {{"user1", 5}, {"123", 3}};

static gh_authz_request_t a2_request(void)
{
    gh_authz_request_t r = {0};
    r.method = STR("POST");
    r.path = STR("/my/path");
    r.query = STR("parameter1=value1&parameter1=value2&parameter2=value");
    r.headers = a2_headers;
    r.nheaders = 5;
    r.source_ip = STR("IP");
    r.request_id = STR("id");
    r.time_ms = 1583348638390;
    r.account_id = "123456789012";
    r.api_id = "api-id";
    r.region = "us-east-1";
    r.path_params = a2_path;
    r.npath_params = 1;
    r.stage_vars = a2_stage;
    r.nstage_vars = 2;
    r.identity = a2_ids;
    r.nidentity = 2;
    return r;
}

static void test_v2_authorizer_event_matches_aws_example(void **state)
{
    (void)state;
    gh_authz_request_t r = a2_request();
    json_t *ev = build(gh_authz_event_v2, &r);
    /* [A2] field for field, but: its routeArn names another request (GET
     * /request on stage test of API abcdef123), so here it is this one's;
     * its "time" (12 Mar) contradicts its own timeEpoch (1583348638390 is
     * 4 Mar 2020 19:03:58 UTC), so time follows timeEpoch; headers are
     * lower case as [P]'s and [C]'s are; clientCert is mutual TLS, which
     * this event does not carry. */
    expect_json(ev, "{\"version\":\"2.0\",\"type\":\"REQUEST\","
                    "\"routeArn\":\"arn:aws:execute-api:us-east-1:123456789012:api-id/$default/"
                    "POST/my/path\","
                    "\"identitySource\":[\"user1\",\"123\"],\"routeKey\":\"$default\","
                    "\"rawPath\":\"/my/path\","
                    "\"rawQueryString\":\"parameter1=value1&parameter1=value2&parameter2=value\","
                    "\"cookies\":[\"cookie1\",\"cookie2\"],"
                    "\"headers\":{\"header1\":\"value1\",\"header2\":\"value2\","
                    "\"user-agent\":\"agent\","
                    "\"host\":\"id.execute-api.us-east-1.amazonaws.com\"},"
                    "\"queryStringParameters\":{\"parameter1\":\"value1,value2\","
                    "\"parameter2\":\"value\"},"
                    "\"requestContext\":{\"accountId\":\"123456789012\",\"apiId\":\"api-id\","
                    "\"domainName\":\"id.execute-api.us-east-1.amazonaws.com\","
                    "\"domainPrefix\":\"id\",\"http\":{\"method\":\"POST\",\"path\":\"/my/path\","
                    "\"protocol\":\"HTTP/1.1\",\"sourceIp\":\"IP\",\"userAgent\":\"agent\"},"
                    "\"requestId\":\"id\",\"routeKey\":\"$default\",\"stage\":\"$default\","
                    "\"time\":\"04/Mar/2020:19:03:58 +0000\",\"timeEpoch\":1583348638390},"
                    "\"pathParameters\":{\"parameter1\":\"value1\"},"
                    "\"stageVariables\":{\"stageVariable1\":\"value1\","
                    "\"stageVariable2\":\"value2\"}}");
    /* and in [A2]'s order */
    expect_keys(ev, "version,type,routeArn,identitySource,routeKey,rawPath,rawQueryString,"
                    "cookies,headers,queryStringParameters,requestContext,pathParameters,"
                    "stageVariables");
    expect_keys(json_object_get(ev, "requestContext"),
                "accountId,apiId,domainName,domainPrefix,http,requestId,routeKey,stage,time,"
                "timeEpoch");
    json_decref(ev);
}

static void test_route_arn_of_aws_example(void **state)
{
    (void)state;
    /* [A2]'s routeArn: GET /request, stage test, API abcdef123 */
    gh_authz_request_t r = a2_request();
    r.method = STR("GET");
    r.path = STR("/request");
    r.api_id = "abcdef123";
    r.stage = "test";
    char buf[GH_AUTHZ_MAX_ARN + 1];
    long n = gh_authz_method_arn(&r, buf, sizeof(buf));
    assert_string_equal(buf,
                        "arn:aws:execute-api:us-east-1:123456789012:abcdef123/test/GET/request");
    assert_int_equal(n, (long)strlen(buf));
    json_t *ev = build(gh_authz_event_v2, &r);
    assert_string_equal(sget(ev, "routeArn"), buf);
    json_decref(ev);
    /* the root: nothing after the method's '/' ([A1]'s ".../GET/") */
    r.path = STR("/");
    gh_authz_method_arn(&r, buf, sizeof(buf));
    assert_string_equal(buf, "arn:aws:execute-api:us-east-1:123456789012:abcdef123/test/GET/");
    /* too small a buffer */
    assert_int_equal(gh_authz_method_arn(&r, buf, 10), -ENOBUFS);
}

/* Werkzeug and Django read "delete" as DELETE: method ARNs and events say
 * it upper case, so that an IAM Deny on DELETE (and a handler's
 * httpMethod == "DELETE") applies to it. */
static void test_method_upper_case(void **state)
{
    (void)state;
    gh_authz_request_t r = a2_request();
    r.method = STR("dElete");
    char buf[GH_AUTHZ_MAX_ARN + 1];
    gh_authz_method_arn(&r, buf, sizeof(buf));
    assert_string_equal(
        buf, "arn:aws:execute-api:us-east-1:123456789012:api-id/$default/DELETE/my/path");
    json_t *ev = build(gh_authz_event_v2, &r);
    assert_string_equal(sget(ev, "routeArn"), buf);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(ev, "requestContext"), "http"), "method")),
        "DELETE");
    json_decref(ev);
    ev = build(gh_authz_event_v1_request, &r);
    assert_string_equal(sget(ev, "httpMethod"), "DELETE");
    assert_string_equal(sget(ev, "methodArn"), buf);
    json_decref(ev);
}

static void test_arn_past_aws_limit_is_e2big(void **state)
{
    (void)state;
    /* api-gateway-lambda-authorizer-output: a method ARN longer than 1600
     * bytes is a 414 */
    static char path[2000];
    path[0] = '/';
    memset(path + 1, 'a', sizeof(path) - 1);
    gh_authz_request_t r = a2_request();
    size_t fixed = strlen("arn:aws:execute-api:us-east-1:123456789012:api-id/$default/POST/");
    r.path = (gh_authz_str_t){path, GH_AUTHZ_MAX_ARN - fixed + 1};
    char buf[GH_AUTHZ_MAX_ARN + 1];
    assert_int_equal(gh_authz_method_arn(&r, buf, sizeof(buf)), GH_AUTHZ_MAX_ARN);
    r.path.n++;
    assert_int_equal(gh_authz_method_arn(&r, buf, sizeof(buf)), -E2BIG);
    char *out = (char *)1;
    assert_int_equal(gh_authz_event_v2(&r, &out, NULL), -E2BIG);
    assert_null(out);
    assert_int_equal(gh_authz_event_v1_token(&r, &out, NULL), -E2BIG);
    assert_int_equal(gh_authz_event_v1_request(&r, &out, NULL), -E2BIG);
}

static void test_missing_config_is_einval(void **state)
{
    (void)state;
    char *out;
    gh_authz_request_t r = a2_request();
    r.account_id = NULL;
    assert_int_equal(gh_authz_event_v2(&r, &out, NULL), -EINVAL);
    r = a2_request();
    r.region = NULL;
    assert_int_equal(gh_lambda_event_v2(&r, &out, NULL), -EINVAL);
    r = a2_request();
    r.api_id = NULL;
    assert_int_equal(gh_lambda_event_v1(&r, &out, NULL), -EINVAL);
    r = a2_request();
    r.method.p = NULL;
    assert_int_equal(gh_authz_event_v1_token(&r, &out, NULL), -EINVAL);
}

/* [C]: no query, no cookies, no path parameters, no stage variables: the
 * keys are left out; rawQueryString is "" */
static void test_v2_absent_parts_left_out(void **state)
{
    (void)state;
    static const gh_h1_header_t hs[] = {H("accept", "*/*")};
    gh_authz_request_t r = a2_request();
    r.query = (gh_authz_str_t){NULL, 0};
    r.headers = hs;
    r.nheaders = 1;
    r.npath_params = r.nstage_vars = r.nidentity = 0;
    json_t *ev = build(gh_authz_event_v2, &r);
    expect_keys(ev, "version,type,routeArn,identitySource,routeKey,rawPath,rawQueryString,"
                    "headers,requestContext");
    assert_string_equal(sget(ev, "rawQueryString"), "");
    assert_int_equal(json_array_size(json_object_get(ev, "identitySource")), 0);
    /* no User-Agent, no Host */
    assert_string_equal(sget(ev, "requestContext.http.userAgent"), "");
    assert_string_equal(sget(ev, "requestContext.domainName"), "");
    json_decref(ev);
    /* an empty query ("GET /?") is no parameters either */
    r.query = STR("");
    ev = build(gh_authz_event_v2, &r);
    assert_null(json_object_get(ev, "queryStringParameters"));
    json_decref(ev);
    /* a query of separators only */
    r.query = STR("&&&");
    ev = build(gh_authz_event_v2, &r);
    assert_null(json_object_get(ev, "queryStringParameters"));
    assert_string_equal(sget(ev, "rawQueryString"), "&&&");
    json_decref(ev);
}

static void test_v2_repeated_headers_joined_and_lower_cased(void **state)
{
    (void)state;
    /* [P]: "Duplicate headers are combined with commas" ("header2":
     * "value1,value2"), whatever the case each was sent in */
    static const gh_h1_header_t hs[] = {
        H("X-Dup", "a"), H("Accept", "*/*"), H("x-dup", "b"), H("X-DUP", ""), H("X-Dup", "c, d"),
    };
    gh_authz_request_t r = a2_request();
    r.headers = hs;
    r.nheaders = 5;
    json_t *ev = build(gh_authz_event_v2, &r);
    expect_json(json_object_get(ev, "headers"), "{\"x-dup\":\"a,b,,c, d\",\"accept\":\"*/*\"}");
    json_decref(ev);
}

static void test_cookies_split_and_kept_out_of_headers(void **state)
{
    (void)state;
    /* [P]: "All cookie headers in the request are combined ... and added
     * to the cookies field"; like [C] and the function URL example, the
     * Cookie field itself is not in headers */
    static const gh_h1_header_t hs[] = {
        H("Cookie", "a=1; b=2;c=3"),
        H("cookie", "a=4;  ; d"),
        H("X", "y"),
    };
    gh_authz_request_t r = a2_request();
    r.headers = hs;
    r.nheaders = 3;
    json_t *ev = build(gh_authz_event_v2, &r);
    expect_json(json_object_get(ev, "cookies"), "[\"a=1\",\"b=2\",\"c=3\",\"a=4\",\"d\"]");
    expect_json(json_object_get(ev, "headers"), "{\"x\":\"y\"}");
    json_decref(ev);
    /* the caller's own list wins over the fields */
    static const gh_authz_str_t given[] = {{"k=v", 3}};
    r.cookies = given;
    r.ncookies = 1;
    ev = build(gh_lambda_event_v2, &r);
    expect_json(json_object_get(ev, "cookies"), "[\"k=v\"]");
    json_decref(ev);
    /* format 1.0 has no cookies: the Cookie field stays a header */
    r.cookies = NULL;
    ev = build(gh_authz_event_v1_request, &r);
    assert_null(json_object_get(ev, "cookies"));
    assert_string_equal(sget(ev, "headers.Cookie"), "a=4;  ; d"); /* first spelling, last value */
    json_decref(ev);
}

static void test_query_decoding(void **state)
{
    (void)state;
    gh_authz_request_t r = a2_request();
    /* percent escapes and '+' decoded in the maps, never in
     * rawQueryString; a bad escape stands for itself; a name without '='
     * has the empty value; an empty name is skipped */
    r.query = STR("a=1+2&a=%41%2c&b&%62=3&c=%zz%4&=x&%C3%A9=%E2%82%AC");
    json_t *ev = build(gh_authz_event_v2, &r);
    assert_string_equal(sget(ev, "rawQueryString"),
                        "a=1+2&a=%41%2c&b&%62=3&c=%zz%4&=x&%C3%A9=%E2%82%AC");
    expect_json(json_object_get(ev, "queryStringParameters"),
                "{\"a\":\"1 2,A,\",\"b\":\",3\",\"c\":\"%zz%4\",\"\xc3\xa9\":\"\xe2\x82\xac\"}");
    json_decref(ev);
    ev = build(gh_authz_event_v1_request, &r);
    expect_json(json_object_get(ev, "queryStringParameters"),
                "{\"a\":\"A,\",\"b\":\"3\",\"c\":\"%zz%4\",\"\xc3\xa9\":\"\xe2\x82\xac\"}");
    expect_json(json_object_get(ev, "multiValueQueryStringParameters"),
                "{\"a\":[\"1 2\",\"A,\"],\"b\":[\"\",\"3\"],\"c\":[\"%zz%4\"],"
                "\"\xc3\xa9\":[\"\xe2\x82\xac\"]}");
    json_decref(ev);
    /* %00 decodes to a NUL, which JSON carries escaped */
    r.query = STR("n=%00x");
    char *out;
    assert_int_equal(gh_authz_event_v2(&r, &out, NULL), 0);
    assert_non_null(strstr(out, "\"n\":\"\\u0000x\""));
    free(out);
}

static void test_not_utf8_is_eilseq(void **state)
{
    (void)state;
    char *out = (char *)1;
    gh_authz_request_t r = a2_request();
    r.query = STR("q=%FF");
    assert_int_equal(gh_authz_event_v2(&r, &out, NULL), -EILSEQ);
    assert_null(out);
    assert_int_equal(gh_authz_event_v1_request(&r, &out, NULL), -EILSEQ);
    /* an overlong '/' and a surrogate */
    r = a2_request();
    r.query = STR("q=%C0%AF");
    assert_int_equal(gh_authz_event_v2(&r, &out, NULL), -EILSEQ);
    r.query = STR("q=%ED%A0%80");
    assert_int_equal(gh_lambda_event_v2(&r, &out, NULL), -EILSEQ);
    /* obs-text in a header value */
    static const gh_h1_header_t hs[] = {H("X", "caf\xe9")};
    r = a2_request();
    r.headers = hs;
    r.nheaders = 1;
    assert_int_equal(gh_authz_event_v2(&r, &out, NULL), -EILSEQ);
    assert_int_equal(gh_lambda_event_v1(&r, &out, NULL), -EILSEQ);
    /* in the path, the identity sources */
    r = a2_request();
    r.path = STR("/\x80");
    assert_int_equal(gh_lambda_event_v2(&r, &out, NULL), -EILSEQ);
    static const gh_authz_str_t bad_id[] = {{"\xff", 1}};
    r = a2_request();
    r.identity = bad_id;
    r.nidentity = 1;
    assert_int_equal(gh_authz_event_v1_token(&r, &out, NULL), -EILSEQ);
    /* and valid UTF-8 of 2, 3 and 4 bytes goes through */
    static const gh_h1_header_t ok[] = {H("X", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")};
    r = a2_request();
    r.headers = ok;
    r.nheaders = 1;
    json_t *ev = build(gh_authz_event_v2, &r);
    assert_string_equal(sget(ev, "headers.x"), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    json_decref(ev);
}

static void test_utf8_checker(void **state)
{
    (void)state;
    assert_true(gh_authz_utf8_ok("", 0));
    assert_true(gh_authz_utf8_ok("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    assert_false(gh_authz_utf8_ok("\xf4\x90\x80\x80", 4)); /* past it */
    assert_false(gh_authz_utf8_ok("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(gh_authz_utf8_ok("\xc3", 1));             /* truncated */
    assert_false(gh_authz_utf8_ok("\xe2\x82", 2));
    assert_false(gh_authz_utf8_ok("\xbf", 1)); /* lone continuation */
    assert_false(gh_authz_utf8_ok("\xc3\x28", 2));
}

static void test_domain_from_host(void **state)
{
    (void)state;
    static const gh_h1_header_t port[] = {H("Host", "api.example.com:8443")};
    static const gh_h1_header_t v6[] = {H("Host", "[::1]:8080")};
    gh_authz_request_t r = a2_request();
    r.headers = port;
    r.nheaders = 1;
    json_t *ev = build(gh_authz_event_v2, &r);
    assert_string_equal(sget(ev, "requestContext.domainName"), "api.example.com");
    assert_string_equal(sget(ev, "requestContext.domainPrefix"), "api");
    json_decref(ev);
    r.headers = v6;
    ev = build(gh_authz_event_v2, &r);
    assert_string_equal(sget(ev, "requestContext.domainName"), "[::1]");
    assert_string_equal(sget(ev, "requestContext.domainPrefix"), "[::1]");
    json_decref(ev);
    /* the view's own host and user agent win */
    r.host = STR("gw.local");
    r.user_agent = STR("ua/1");
    ev = build(gh_authz_event_v2, &r);
    assert_string_equal(sget(ev, "requestContext.domainName"), "gw.local");
    assert_string_equal(sget(ev, "requestContext.domainPrefix"), "gw");
    assert_string_equal(sget(ev, "requestContext.http.userAgent"), "ua/1");
    json_decref(ev);
}

static void test_time_format(void **state)
{
    (void)state;
    char t[27];
    gh_authz_time_format(0, t);
    assert_string_equal(t, "01/Jan/1970:00:00:00 +0000");
    /* [P] 1.0: requestTimeEpoch 1583349317135 is "04/Mar/2020:19:15:17" */
    gh_authz_time_format(1583349317135, t);
    assert_string_equal(t, "04/Mar/2020:19:15:17 +0000");
    gh_authz_time_format(1609459199999, t);
    assert_string_equal(t, "31/Dec/2020:23:59:59 +0000");
    gh_authz_time_format(951782400000, t); /* leap day */
    assert_string_equal(t, "29/Feb/2000:00:00:00 +0000");
}

/* ---- [A1]: REST TOKEN and REQUEST ---- */

static void test_v1_token_event_matches_aws_example(void **state)
{
    (void)state;
    /* [A1]: the token "allow" for GET / of API ymy8tbxw7b in any stage */
    static const gh_authz_str_t tok[] = {{"allow", 5}};
    gh_authz_request_t r = {0};
    r.method = STR("GET");
    r.path = STR("/");
    r.region = "us-west-2";
    r.account_id = "123456789012";
    r.api_id = "ymy8tbxw7b";
    r.stage = "*";
    r.identity = tok;
    r.nidentity = 1;
    char *out;
    size_t len;
    assert_int_equal(gh_authz_event_v1_token(&r, &out, &len), 0);
    assert_string_equal(out, "{\"type\":\"TOKEN\",\"authorizationToken\":\"allow\","
                             "\"methodArn\":\"arn:aws:execute-api:us-west-2:123456789012:"
                             "ymy8tbxw7b/*/GET/\"}");
    free(out);
    /* no token: the empty string ([A1]: "An empty string value is the
     * same as unauthorized"; the filter answers 401 before calling) */
    r.nidentity = 0;
    json_t *ev = build(gh_authz_event_v1_token, &r);
    assert_string_equal(sget(ev, "authorizationToken"), "");
    json_decref(ev);
}

static const gh_h1_header_t a1_headers[] = {
    H("X-AMZ-Date", "20170718T062915Z"),
    H("Accept", "*/*"),
    H("HeaderAuth1", "headerValue1"),
    H("User-Agent", "..."),
    H("Host", "s4x3opwd6i.execute-api.us-east-1.amazonaws.com"),
    H("cache-control", "no-cache"),
    H("Content-Type", "application/x-www-form-urlencoded"),
};
static const gh_authz_kv_t a1_stage[] = {{"StageVar1", "stageValue1"}};

static gh_authz_request_t a1_request(void)
{
    gh_authz_request_t r = {0};
    r.method = STR("GET");
    r.path = STR("/request");
    r.query = STR("QueryString1=queryValue1");
    r.headers = a1_headers;
    r.nheaders = 7;
    r.source_ip = STR("198.51.100.7");
    r.request_id = STR("req-1");
    r.time_ms = 1583349317135;
    r.account_id = "123456789012";
    r.api_id = "s4x3opwd6i";
    r.region = "us-east-1";
    r.stage = "test";
    r.resource = "/request";
    r.resource_id = "05c7jb";
    r.stage_vars = a1_stage;
    r.nstage_vars = 1;
    return r;
}

static void test_v1_request_event_matches_aws_example(void **state)
{
    (void)state;
    gh_authz_request_t r = a1_request();
    json_t *ev = build(gh_authz_event_v1_request, &r);
    expect_keys(ev, "type,methodArn,resource,path,httpMethod,headers,multiValueHeaders,"
                    "queryStringParameters,multiValueQueryStringParameters,pathParameters,"
                    "stageVariables,requestContext");
    assert_string_equal(sget(ev, "type"), "REQUEST");
    assert_string_equal(sget(ev, "methodArn"),
                        "arn:aws:execute-api:us-east-1:123456789012:s4x3opwd6i/test/GET/request");
    assert_string_equal(sget(ev, "resource"), "/request");
    assert_string_equal(sget(ev, "path"), "/request");
    assert_string_equal(sget(ev, "httpMethod"), "GET");
    /* names as the client spelled them ([A1]: "X-AMZ-Date", "cache-control") */
    expect_json(json_object_get(ev, "headers"),
                "{\"X-AMZ-Date\":\"20170718T062915Z\",\"Accept\":\"*/*\","
                "\"HeaderAuth1\":\"headerValue1\",\"User-Agent\":\"...\","
                "\"Host\":\"s4x3opwd6i.execute-api.us-east-1.amazonaws.com\","
                "\"cache-control\":\"no-cache\","
                "\"Content-Type\":\"application/x-www-form-urlencoded\"}");
    expect_json(json_object_get(ev, "multiValueHeaders"),
                "{\"X-AMZ-Date\":[\"20170718T062915Z\"],\"Accept\":[\"*/*\"],"
                "\"HeaderAuth1\":[\"headerValue1\"],\"User-Agent\":[\"...\"],"
                "\"Host\":[\"s4x3opwd6i.execute-api.us-east-1.amazonaws.com\"],"
                "\"cache-control\":[\"no-cache\"],"
                "\"Content-Type\":[\"application/x-www-form-urlencoded\"]}");
    expect_json(json_object_get(ev, "queryStringParameters"), "{\"QueryString1\":\"queryValue1\"}");
    expect_json(json_object_get(ev, "multiValueQueryStringParameters"),
                "{\"QueryString1\":[\"queryValue1\"]}");
    expect_json(json_object_get(ev, "pathParameters"), "{}"); /* [A1]: "pathParameters": {} */
    expect_json(json_object_get(ev, "stageVariables"), "{\"StageVar1\":\"stageValue1\"}");
    /* [A1]'s requestContext members (apiKey aside: API keys are the
     * apikey filter's), and the REST context's time and protocol */
    expect_json(json_object_get(ev, "requestContext"),
                "{\"accountId\":\"123456789012\",\"apiId\":\"s4x3opwd6i\","
                "\"domainName\":\"s4x3opwd6i.execute-api.us-east-1.amazonaws.com\","
                "\"domainPrefix\":\"s4x3opwd6i\",\"extendedRequestId\":\"req-1\","
                "\"httpMethod\":\"GET\",\"identity\":{\"sourceIp\":\"198.51.100.7\","
                "\"userAgent\":\"...\"},\"path\":\"/request\",\"protocol\":\"HTTP/1.1\","
                "\"requestId\":\"req-1\",\"requestTime\":\"04/Mar/2020:19:15:17 +0000\","
                "\"requestTimeEpoch\":1583349317135,\"resourceId\":\"05c7jb\","
                "\"resourcePath\":\"/request\",\"stage\":\"test\"}");
    json_decref(ev);
}

static void test_v1_repeated_headers_and_empty_maps(void **state)
{
    (void)state;
    /* headers: the last value; multiValueHeaders: all, under the first
     * spelling of the name */
    static const gh_h1_header_t hs[] = {H("X-Dup", "a"), H("x-dup", "b"), H("X-DUP", "c")};
    gh_authz_request_t r = a1_request();
    r.headers = hs;
    r.nheaders = 3;
    r.query = (gh_authz_str_t){NULL, 0};
    r.nstage_vars = 0;
    r.resource = NULL;
    r.resource_id = NULL;
    json_t *ev = build(gh_authz_event_v1_request, &r);
    expect_json(json_object_get(ev, "headers"), "{\"X-Dup\":\"c\"}");
    expect_json(json_object_get(ev, "multiValueHeaders"), "{\"X-Dup\":[\"a\",\"b\",\"c\"]}");
    expect_json(json_object_get(ev, "queryStringParameters"), "{}");
    expect_json(json_object_get(ev, "multiValueQueryStringParameters"), "{}");
    expect_json(json_object_get(ev, "stageVariables"), "{}");
    /* resource defaults to the path, resourceId to null */
    assert_string_equal(sget(ev, "resource"), "/request");
    assert_string_equal(sget(ev, "requestContext.resourcePath"), "/request");
    assert_true(json_is_null(json_object_get(json_object_get(ev, "requestContext"), "resourceId")));
    json_decref(ev);
}

/* ---- [P]: proxy events ---- */

static const gh_h1_header_t p_headers[] = {
    H("Header1", "value1"),
    H("Header2", "value1"),
    H("Header2", "value2"),
    H("Cookie", "cookie1; cookie2"),
    H("Content-Type", "text/plain; charset=utf-8"),
    H("User-Agent", "agent"),
};

static gh_authz_request_t p_request(void)
{
    gh_authz_request_t r = a2_request();
    r.headers = p_headers;
    r.nheaders = 6;
    r.host = STR("id.execute-api.us-east-1.amazonaws.com");
    r.body = (const unsigned char *)"Hello from Lambda";
    r.body_len = 17;
    r.nidentity = 0;
    return r;
}

static void test_v2_proxy_event_matches_aws_example(void **state)
{
    (void)state;
    gh_authz_request_t r = p_request();
    json_t *ev = build(gh_lambda_event_v2, &r);
    expect_keys(ev, "version,routeKey,rawPath,rawQueryString,cookies,headers,"
                    "queryStringParameters,requestContext,body,isBase64Encoded,pathParameters,"
                    "stageVariables");
    expect_json(ev, "{\"version\":\"2.0\",\"routeKey\":\"$default\",\"rawPath\":\"/my/path\","
                    "\"rawQueryString\":\"parameter1=value1&parameter1=value2&parameter2=value\","
                    "\"cookies\":[\"cookie1\",\"cookie2\"],"
                    "\"headers\":{\"header1\":\"value1\",\"header2\":\"value1,value2\","
                    "\"content-type\":\"text/plain; charset=utf-8\",\"user-agent\":\"agent\"},"
                    "\"queryStringParameters\":{\"parameter1\":\"value1,value2\","
                    "\"parameter2\":\"value\"},"
                    "\"requestContext\":{\"accountId\":\"123456789012\",\"apiId\":\"api-id\","
                    "\"domainName\":\"id.execute-api.us-east-1.amazonaws.com\","
                    "\"domainPrefix\":\"id\",\"http\":{\"method\":\"POST\",\"path\":\"/my/path\","
                    "\"protocol\":\"HTTP/1.1\",\"sourceIp\":\"IP\",\"userAgent\":\"agent\"},"
                    "\"requestId\":\"id\",\"routeKey\":\"$default\",\"stage\":\"$default\","
                    "\"time\":\"04/Mar/2020:19:03:58 +0000\",\"timeEpoch\":1583348638390},"
                    "\"body\":\"Hello from Lambda\",\"isBase64Encoded\":false,"
                    "\"pathParameters\":{\"parameter1\":\"value1\"},"
                    "\"stageVariables\":{\"stageVariable1\":\"value1\","
                    "\"stageVariable2\":\"value2\"}}");
    json_decref(ev);
}

static void test_v1_proxy_event_matches_aws_example(void **state)
{
    (void)state;
    /* [P] 1.0: GET /my/path, Header2 twice, parameter1 twice, no path
     * parameters or stage variables (null), body "Hello from Lambda!" */
    static const gh_h1_header_t hs[] = {
        H("Header1", "value1"),
        H("Header2", "value1"),
        H("Header2", "value2"),
        H("Content-Type", "text/plain"),
    };
    gh_authz_request_t r = p_request();
    r.method = STR("GET");
    r.api_id = "id";
    r.headers = hs;
    r.nheaders = 4;
    r.user_agent = STR("user-agent");
    r.request_id = STR("id=");
    r.time_ms = 1583349317135;
    r.npath_params = r.nstage_vars = 0;
    r.body = (const unsigned char *)"Hello from Lambda!";
    r.body_len = 18;
    json_t *ev = build(gh_lambda_event_v1, &r);
    expect_keys(ev, "version,resource,path,httpMethod,headers,multiValueHeaders,"
                    "queryStringParameters,multiValueQueryStringParameters,requestContext,"
                    "pathParameters,stageVariables,body,isBase64Encoded");
    /* [P] shows "Header2": "value2" would be the last value, and the
     * example's own headers map lists value2 */
    expect_json(json_object_get(ev, "headers"),
                "{\"Header1\":\"value1\",\"Header2\":\"value2\",\"Content-Type\":\"text/plain\"}");
    expect_json(json_object_get(ev, "multiValueHeaders"),
                "{\"Header1\":[\"value1\"],\"Header2\":[\"value1\",\"value2\"],"
                "\"Content-Type\":[\"text/plain\"]}");
    /* [P] lists "parameter1": "value1" (the first value) beside the
     * multi-value list; REST's proxy event has the last. gatehouse takes
     * the last, as REST API and the ALB do. */
    expect_json(json_object_get(ev, "queryStringParameters"),
                "{\"parameter1\":\"value2\",\"parameter2\":\"value\"}");
    expect_json(json_object_get(ev, "multiValueQueryStringParameters"),
                "{\"parameter1\":[\"value1\",\"value2\"],\"parameter2\":[\"value\"]}");
    assert_true(json_is_null(json_object_get(ev, "pathParameters")));
    assert_true(json_is_null(json_object_get(ev, "stageVariables")));
    assert_string_equal(sget(ev, "body"), "Hello from Lambda!");
    assert_true(json_is_false(json_object_get(ev, "isBase64Encoded")));
    json_t *rc = json_object_get(ev, "requestContext");
    assert_string_equal(sget(rc, "accountId"), "123456789012");
    assert_string_equal(sget(rc, "apiId"), "id");
    assert_string_equal(sget(rc, "domainName"), "id.execute-api.us-east-1.amazonaws.com");
    assert_string_equal(sget(rc, "domainPrefix"), "id");
    assert_string_equal(sget(rc, "extendedRequestId"), "id=");
    assert_string_equal(sget(rc, "httpMethod"), "GET");
    assert_string_equal(sget(rc, "identity.sourceIp"), "IP");
    assert_string_equal(sget(rc, "identity.userAgent"), "user-agent");
    assert_string_equal(sget(rc, "path"), "/my/path");
    assert_string_equal(sget(rc, "protocol"), "HTTP/1.1");
    assert_string_equal(sget(rc, "requestId"), "id=");
    assert_string_equal(sget(rc, "requestTime"), "04/Mar/2020:19:15:17 +0000");
    assert_int_equal(json_integer_value(json_object_get(rc, "requestTimeEpoch")), 1583349317135);
    assert_true(json_is_null(json_object_get(rc, "resourceId")));
    assert_string_equal(sget(rc, "resourcePath"), "/my/path");
    assert_string_equal(sget(rc, "stage"), "$default");
    json_decref(ev);
    /* no query, no body: null */
    r.query = (gh_authz_str_t){NULL, 0};
    r.body = NULL;
    r.body_len = 0;
    ev = build(gh_lambda_event_v1, &r);
    assert_true(json_is_null(json_object_get(ev, "queryStringParameters")));
    assert_true(json_is_null(json_object_get(ev, "multiValueQueryStringParameters")));
    assert_true(json_is_null(json_object_get(ev, "body")));
    assert_true(json_is_false(json_object_get(ev, "isBase64Encoded")));
    json_decref(ev);
}

static void expect_body(const gh_authz_request_t *r, build_fn fn, const char *body, int b64)
{
    json_t *ev = build(fn, r);
    if (body == NULL) {
        assert_null(json_object_get(ev, "body"));
    } else {
        json_t *b = json_object_get(ev, "body");
        assert_true(json_is_string(b));
        assert_int_equal(json_string_length(b), strlen(body));
        assert_memory_equal(json_string_value(b), body, strlen(body));
    }
    assert_int_equal(json_is_true(json_object_get(ev, "isBase64Encoded")), b64);
    json_decref(ev);
}

static void test_body_text_or_base64(void **state)
{
    (void)state;
    gh_authz_request_t r = p_request();
    gh_h1_header_t ct[] = {H("Content-Type", "")};
    r.headers = ct;
    r.nheaders = 1;
    static const struct {
        const char *ct;
        int text;
    } cases[] = {
        {"text/plain", 1},
        {"TEXT/HTML; charset=utf-8", 1},
        {"text/csv", 1},
        {"application/json", 1},
        {"Application/JSON;charset=UTF-8", 1},
        {"application/xml", 1},
        {"application/javascript", 1},
        /* everything else is base64, as measured on AWS (form data too) */
        {"application/x-www-form-urlencoded", 0},
        {"multipart/form-data; boundary=x", 0},
        {"application/octet-stream", 0},
        {"application/vnd.api+json", 0},
        {"application/jsonx", 0},
        {"text/", 0},
        {"image/png", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ct[0].value = cases[i].ct;
        ct[0].value_len = strlen(cases[i].ct);
        assert_int_equal(gh_lambda_body_is_text(cases[i].ct, strlen(cases[i].ct)), cases[i].text);
        r.body = (const unsigned char *)"hi!!";
        r.body_len = 4;
        expect_body(&r, gh_lambda_event_v2, cases[i].text ? "hi!!" : "aGkhIQ==", !cases[i].text);
        expect_body(&r, gh_lambda_event_v1, cases[i].text ? "hi!!" : "aGkhIQ==", !cases[i].text);
    }
    /* no Content-Type: base64 */
    r.nheaders = 0;
    expect_body(&r, gh_lambda_event_v2, "aGkhIQ==", 1);
    /* binary bytes (a NUL, 0xff) under a text type: base64 all the same */
    static const unsigned char bin[] = {0x00, 0xff, 0x10, 'a', 0xfe};
    ct[0].value = "text/plain";
    ct[0].value_len = 10;
    r.nheaders = 1;
    r.body = bin;
    r.body_len = sizeof(bin);
    expect_body(&r, gh_lambda_event_v2, "AP8QYf4=", 1);
    /* every padding length */
    r.body = (const unsigned char *)"a";
    r.body_len = 1;
    r.nheaders = 0;
    expect_body(&r, gh_lambda_event_v2, "YQ==", 1);
    r.body = (const unsigned char *)"ab";
    r.body_len = 2;
    expect_body(&r, gh_lambda_event_v2, "YWI=", 1);
    r.body = (const unsigned char *)"abc";
    r.body_len = 3;
    expect_body(&r, gh_lambda_event_v2, "YWJj", 1);
    /* unicode text goes as is */
    r.nheaders = 1;
    r.body = (const unsigned char *)"\xc3\xa9t\xc3\xa9";
    r.body_len = 5;
    expect_body(&r, gh_lambda_event_v2, "\xc3\xa9t\xc3\xa9", 0);
    /* no body: format 2.0 leaves it out ([C]) */
    r.body = NULL;
    r.body_len = 0;
    expect_body(&r, gh_lambda_event_v2, NULL, 0);
}

static void test_outputs_are_compact_and_escape_controls(void **state)
{
    (void)state;
    static const gh_h1_header_t hs[] = {H("X", "a\"b\\c\td")};
    gh_authz_request_t r = a2_request();
    r.headers = hs;
    r.nheaders = 1;
    char *out;
    assert_int_equal(gh_authz_event_v2(&r, &out, NULL), 0);
    assert_non_null(strstr(out, "\"x\":\"a\\\"b\\\\c\\td\""));
    assert_null(strchr(out, '\n'));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_authorizer_event_matches_aws_example),
        cmocka_unit_test(test_route_arn_of_aws_example),
        cmocka_unit_test(test_method_upper_case),
        cmocka_unit_test(test_arn_past_aws_limit_is_e2big),
        cmocka_unit_test(test_missing_config_is_einval),
        cmocka_unit_test(test_v2_absent_parts_left_out),
        cmocka_unit_test(test_v2_repeated_headers_joined_and_lower_cased),
        cmocka_unit_test(test_cookies_split_and_kept_out_of_headers),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_not_utf8_is_eilseq),
        cmocka_unit_test(test_utf8_checker),
        cmocka_unit_test(test_domain_from_host),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_v1_token_event_matches_aws_example),
        cmocka_unit_test(test_v1_request_event_matches_aws_example),
        cmocka_unit_test(test_v1_repeated_headers_and_empty_maps),
        cmocka_unit_test(test_v2_proxy_event_matches_aws_example),
        cmocka_unit_test(test_v1_proxy_event_matches_aws_example),
        cmocka_unit_test(test_body_text_or_base64),
        cmocka_unit_test(test_outputs_are_compact_and_escape_controls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
