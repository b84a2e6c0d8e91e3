/*
 * A Lambda function's proxy result as the client's response
 * (src/authorizer/lambda.c), against AWS's pages: "Working with AWS
 * Lambda proxy integrations for HTTP APIs" (response formats 1.0 and 2.0,
 * the 2.0 inference table; docs.aws.amazon.com/apigateway/latest/
 * developerguide/http-api-develop-integrations-lambda.html) and "Invoking
 * Lambda function URLs" (the same 2.0 format; its examples show what the
 * client receives: docs.aws.amazon.com/lambda/latest/dg/
 * urls-invocation.html). Every malformed answer is a 502.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "authorizer/authz.h"

static int map(const char *s, int version, gh_lambda_response_t *r)
{
    const char *why = NULL;
    int rc = gh_lambda_response_map(s, strlen(s), version, r, &why);
    if (rc == 0)
        assert_null(why);
    else
        assert_non_null(why);
    return rc;
}

/* "name: value" lines, joined with '|' */
static const char *headers(const gh_lambda_response_t *r)
{
    static char buf[4096];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->nheaders; i++) {
        assert_int_equal(strlen(r->headers[i].name), r->headers[i].name_len);
        assert_int_equal(strlen(r->headers[i].value), r->headers[i].value_len);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s: %s", i ? "|" : "",
                              r->headers[i].name, r->headers[i].value);
    }
    return buf;
}

static void expect_body(const gh_lambda_response_t *r, const void *body, size_t n)
{
    assert_int_equal(r->body_len, n);
    if (n == 0)
        assert_null(r->body);
    else
        assert_memory_equal(r->body, body, n);
}

/* ---- format 2.0 ---- */

static void test_v2_inferred(void **state)
{
    (void)state;
    gh_lambda_response_t r;
    /* "Hello, world!" reaches the client with its quotes (content-length
     * 15 in the function URL page's example), as application/json */
    assert_int_equal(map("\"Hello, world!\"", 2, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(headers(&r), "content-type: application/json");
    expect_body(&r, "\"Hello, world!\"", 15);
    gh_lambda_response_dispose(&r);
    /* an object without statusCode is the body, verbatim */
    static const char obj[] = "{\n  \"message\": \"Hello, world!\"\n}";
    assert_int_equal(map(obj, 2, &r), 0);
    assert_int_equal(r.status, 200);
    expect_body(&r, obj, strlen(obj));
    gh_lambda_response_dispose(&r);
    /* an object with a body but no statusCode too (body is not special) */
    static const char nostatus[] = "{\"body\":\"x\",\"headers\":{\"a\":\"b\"}}";
    assert_int_equal(map(nostatus, 2, &r), 0);
    assert_string_equal(headers(&r), "content-type: application/json");
    expect_body(&r, nostatus, strlen(nostatus));
    gh_lambda_response_dispose(&r);
    /* any JSON value */
    static const char *const any[] = {"42", "-1.5e3", "true", "null", "[1,2]", "{}", " \"x\" "};
    for (size_t i = 0; i < sizeof(any) / sizeof(any[0]); i++) {
        assert_int_equal(map(any[i], 2, &r), 0);
        assert_int_equal(r.status, 200);
        expect_body(&r, any[i], strlen(any[i]));
        gh_lambda_response_dispose(&r);
    }
}

static void test_v2_structured(void **state)
{
    (void)state;
    gh_lambda_response_t r;
    /* the function URL page's custom response with cookies: each cookie
     * becomes a set-cookie field */
    assert_int_equal(map("{\"statusCode\":201,\"headers\":{\"Content-Type\":\"application/json\","
                         "\"My-Custom-Header\":\"Custom Value\"},"
                         "\"body\":\"{\\\"message\\\":\\\"Hello, world!\\\"}\","
                         "\"cookies\":[\"Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT\","
                         "\"Cookie_2=Value2; Max-Age=78000\"],\"isBase64Encoded\":false}",
                         2, &r),
                     0);
    assert_int_equal(r.status, 201);
    assert_string_equal(headers(&r), "Content-Type: application/json|My-Custom-Header: Custom "
                                     "Value|Set-Cookie: Cookie_1=Value1; Expires=21 Oct 2021 "
                                     "07:48 GMT|Set-Cookie: Cookie_2=Value2; Max-Age=78000");
    expect_body(&r, "{\"message\":\"Hello, world!\"}", 27);
    gh_lambda_response_dispose(&r);
    /* base64: binary bytes, NUL included */
    assert_int_equal(
        map("{\"statusCode\":200,\"body\":\"AP8QYf4=\",\"isBase64Encoded\":true}", 2, &r), 0);
    static const unsigned char bin[] = {0x00, 0xff, 0x10, 'a', 0xfe};
    expect_body(&r, bin, sizeof(bin));
    assert_int_equal(r.nheaders, 0); /* no content-type added to a structured answer */
    gh_lambda_response_dispose(&r);
    /* padding optional; "true" as a string */
    assert_int_equal(
        map("{\"statusCode\":200,\"body\":\"YWI\",\"isBase64Encoded\":\"true\"}", 2, &r), 0);
    expect_body(&r, "ab", 2);
    gh_lambda_response_dispose(&r);
    /* statusCode as a string of digits; body null; a header number and
     * boolean stringified, a null header skipped */
    assert_int_equal(map("{\"statusCode\":\"404\",\"body\":null,\"headers\":{\"X-N\":3,"
                         "\"X-B\":true,\"X-Null\":null,\"X-F\":1.5}}",
                         2, &r),
                     0);
    assert_int_equal(r.status, 404);
    assert_string_equal(headers(&r), "X-N: 3|X-B: true|X-F: 1.5");
    expect_body(&r, NULL, 0);
    gh_lambda_response_dispose(&r);
    /* format 2.0 has no multiValueHeaders (HTTP API ignores it) */
    assert_int_equal(map("{\"statusCode\":200,\"multiValueHeaders\":{\"X\":[\"a\"]},"
                         "\"headers\":{\"Y\":\"b\"}}",
                         2, &r),
                     0);
    assert_string_equal(headers(&r), "Y: b");
    gh_lambda_response_dispose(&r);
    /* unknown members ignored (HTTP API skips them) */
    assert_int_equal(map("{\"statusCode\":200,\"extra\":{\"x\":1}}", 2, &r), 0);
    gh_lambda_response_dispose(&r);
}

static void test_dropped_and_refused_headers(void **state)
{
    (void)state;
    gh_lambda_response_t r;
    /* framing and hop-by-hop fields are the gateway's */
    assert_int_equal(map("{\"statusCode\":200,\"body\":\"abc\",\"headers\":{"
                         "\"Content-Length\":\"999\",\"transfer-encoding\":\"chunked\","
                         "\"Connection\":\"close, x-keep\",\"Keep-Alive\":\"timeout=5\","
                         "\"Proxy-Connection\":\"x\",\"TE\":\"trailers\",\"Trailer\":\"x\","
                         "\"Upgrade\":\"h2c\",\"HTTP2-Settings\":\"x\",\"X-Keep\":\"yes\","
                         "\"Set-Cookie\":\"s=1\"}}",
                         2, &r),
                     0);
    assert_string_equal(headers(&r), "X-Keep: yes|Set-Cookie: s=1");
    expect_body(&r, "abc", 3);
    gh_lambda_response_dispose(&r);
    assert_true(gh_lambda_header_dropped("CONTENT-LENGTH", 14));
    assert_false(gh_lambda_header_dropped("content-lengthx", 15));
    assert_false(gh_lambda_header_dropped("content-type", 12));
    /* a field that would split into two, or a name that is not a token:
     * the whole answer is malformed */
    static const char *const bad[] = {
        "{\"statusCode\":200,\"headers\":{\"X\":\"a\\r\\nInjected: 1\"}}",
        "{\"statusCode\":200,\"headers\":{\"X\":\"a\\nb\"}}",
        "{\"statusCode\":200,\"headers\":{\"X\":\"a\\u0000b\"}}",
        "{\"statusCode\":200,\"headers\":{\"X Y\":\"a\"}}",
        "{\"statusCode\":200,\"headers\":{\"X:Y\":\"a\"}}",
        "{\"statusCode\":200,\"headers\":{\"\":\"a\"}}",
        "{\"statusCode\":200,\"headers\":{\"X\":{\"a\":1}}}",
        "{\"statusCode\":200,\"headers\":{\"X\":[\"a\"]}}",
        "{\"statusCode\":200,\"headers\":[]}",
        "{\"statusCode\":200,\"cookies\":[\"a=1\\r\\nX: y\"]}",
        "{\"statusCode\":200,\"cookies\":\"a=1\"}",
        "{\"statusCode\":200,\"cookies\":[1]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (map(bad[i], 2, &r) != GH_AUTHZ_EBAD)
            fail_msg("accepted: %s", bad[i]);
    /* HTAB and obs-text are field-value bytes */
    assert_int_equal(map("{\"statusCode\":200,\"headers\":{\"X\":\"a\\tb \xc3\xa9\"}}", 2, &r), 0);
    gh_lambda_response_dispose(&r);
}

static void test_status_codes(void **state)
{
    (void)state;
    gh_lambda_response_t r;
    static const char *const ok[] = {"200", "599", "\"301\"", "204"};
    static const int okv[] = {200, 599, 301, 204};
    for (int i = 0; i < 4; i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "{\"statusCode\":%s}", ok[i]);
        for (int v = 1; v <= 2; v++) {
            assert_int_equal(map(buf, v, &r), 0);
            assert_int_equal(r.status, okv[i]);
            gh_lambda_response_dispose(&r);
        }
    }
    /* absurd ones: a 1xx, past 599, negative, 2^63, a float, a bool, a
     * string that is not digits, null */
    static const char *const bad[] = {
        "100",  "199",   "600",  "0",       "-200", "9223372036854775807",
        "1e3",  "200.0", "true", "\"2OO\"", "\"\"", "\"2000\"",
        "null", "{}",    "[200]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "{\"statusCode\":%s}", bad[i]);
        for (int v = 1; v <= 2; v++)
            if (map(buf, v, &r) != GH_AUTHZ_EBAD)
                fail_msg("accepted (format %d): %s", v, buf);
    }
    /* no content in a 204 or 304 */
    assert_int_equal(map("{\"statusCode\":204,\"body\":\"x\"}", 2, &r), 0);
    expect_body(&r, NULL, 0);
    gh_lambda_response_dispose(&r);
    assert_int_equal(map("{\"statusCode\":304,\"body\":\"x\"}", 1, &r), 0);
    expect_body(&r, NULL, 0);
    gh_lambda_response_dispose(&r);
}

static void test_bodies(void **state)
{
    (void)state;
    gh_lambda_response_t r;
    static const char *const bad[] = {
        "{\"statusCode\":200,\"body\":{\"a\":1}}",
        "{\"statusCode\":200,\"body\":1}",
        "{\"statusCode\":200,\"body\":[]}",
        "{\"statusCode\":200,\"body\":\"a b\",\"isBase64Encoded\":true}",
        "{\"statusCode\":200,\"body\":\"YQ=\",\"isBase64Encoded\":true}",
        "{\"statusCode\":200,\"body\":\"Y\",\"isBase64Encoded\":true}",
        "{\"statusCode\":200,\"body\":\"YQ==YQ==\",\"isBase64Encoded\":true}",
        "{\"statusCode\":200,\"body\":\"YQ-_\",\"isBase64Encoded\":true}",
        "{\"statusCode\":200,\"body\":\"YQ==\\n\",\"isBase64Encoded\":true}",
        "{\"statusCode\":200,\"body\":\"====\",\"isBase64Encoded\":true}",
        "{\"statusCode\":200,\"isBase64Encoded\":1}",
        "{\"statusCode\":200,\"isBase64Encoded\":\"yes\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (map(bad[i], 2, &r) != GH_AUTHZ_EBAD)
            fail_msg("accepted: %s", bad[i]);
    /* empty base64 is an empty body; unicode text as UTF-8 bytes */
    assert_int_equal(map("{\"statusCode\":200,\"body\":\"\",\"isBase64Encoded\":true}", 2, &r), 0);
    expect_body(&r, NULL, 0);
    gh_lambda_response_dispose(&r);
    assert_int_equal(map("{\"statusCode\":200,\"body\":\"\\u00e9\\ud83d\\ude00\"}", 2, &r), 0);
    expect_body(&r, "\xc3\xa9\xf0\x9f\x98\x80", 6);
    gh_lambda_response_dispose(&r);
    /* every base64 tail */
    assert_int_equal(map("{\"statusCode\":200,\"body\":\"YWJj\",\"isBase64Encoded\":true}", 2, &r),
                     0);
    expect_body(&r, "abc", 3);
    gh_lambda_response_dispose(&r);
    assert_int_equal(map("{\"statusCode\":200,\"body\":\"YQ==\",\"isBase64Encoded\":true}", 2, &r),
                     0);
    expect_body(&r, "a", 1);
    gh_lambda_response_dispose(&r);
    assert_int_equal(map("{\"statusCode\":200,\"body\":\"YWI=\",\"isBase64Encoded\":true}", 2, &r),
                     0);
    expect_body(&r, "ab", 2);
    gh_lambda_response_dispose(&r);
}

/* ---- format 1.0 ---- */

static void test_v1(void **state)
{
    (void)state;
    gh_lambda_response_t r;
    /* the page's 1.0 shape; headers and multiValueHeaders merged, a pair
     * given in both only once ("If the same key-value pair is specified in
     * both, the value will only appear once" - REST proxy integration) */
    assert_int_equal(map("{\"isBase64Encoded\":false,\"statusCode\":200,\"headers\":{"
                         "\"X-A\":\"1\",\"X-B\":\"2\",\"x-c\":\"3\"},\"multiValueHeaders\":{"
                         "\"X-A\":[\"1\",\"0\"],\"X-C\":[\"4\"],\"X-D\":[]},\"body\":\"hi\"}",
                         1, &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_string_equal(headers(&r), "X-A: 1|X-A: 0|X-C: 4|X-B: 2|x-c: 3");
    expect_body(&r, "hi", 2);
    gh_lambda_response_dispose(&r);
    /* statusCode is required: API Gateway's "Malformed Lambda proxy
     * response", a 502 */
    static const char *const bad[] = {
        "{\"body\":\"x\"}",
        "\"Hello\"",
        "42",
        "[]",
        "null",
        "{}",
        "{\"statusCode\":200,\"multiValueHeaders\":{\"X\":\"a\"}}",
        "{\"statusCode\":200,\"multiValueHeaders\":[]}",
        "{\"statusCode\":200,\"multiValueHeaders\":{\"X\":[{}]}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (map(bad[i], 1, &r) != GH_AUTHZ_EBAD)
            fail_msg("accepted: %s", bad[i]);
    /* 1.0 has no cookies member: it is ignored, like any other */
    assert_int_equal(map("{\"statusCode\":200,\"cookies\":[\"a=1\"]}", 1, &r), 0);
    assert_int_equal(r.nheaders, 0);
    gh_lambda_response_dispose(&r);
}

static void test_malformed_texts(void **state)
{
    (void)state;
    gh_lambda_response_t r;
    const char *why;
    static const char *const bad[] = {
        "",
        "   ",
        "Hello",
        "{\"statusCode\":200",
        "{\"statusCode\":200,\"statusCode\":201}",
        "{\"statusCode\":200,\"headers\":{\"X\":\"a\",\"X\":\"b\"}}",
        "\"\xff\"",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "1e999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        for (int v = 1; v <= 2; v++) {
            if (map(bad[i], v, &r) != GH_AUTHZ_EBAD)
                fail_msg("accepted: %s", bad[i]);
            assert_int_equal(r.nheaders, 0);
            assert_null(r.body);
        }
    static const char nul[] = "{\"statusCode\":200}\0";
    assert_int_equal(gh_lambda_response_map(nul, sizeof(nul) - 1, 2, &r, &why), GH_AUTHZ_EBAD);
    /* a valid answer cut at every byte: never a crash, never a response
     * other than the whole one's */
    static const char full[] =
        "{\"statusCode\":201,\"headers\":{\"a\":\"b\"},\"cookies\":[\"c=d\"],"
        "\"body\":\"YWJj\",\"isBase64Encoded\":true}";
    for (size_t n = 0; n < sizeof(full) - 1; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, full, n);
        int rc = gh_lambda_response_map(copy, n, 2, &r, &why);
        /* a prefix that is itself JSON ("{}" never is one here; "" is not)
         * cannot occur, so every cut is malformed */
        assert_int_equal(rc, GH_AUTHZ_EBAD);
        free(copy);
    }
    assert_int_equal(gh_lambda_response_map(full, sizeof(full) - 1, 2, &r, &why), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(headers(&r), "a: b|Set-Cookie: c=d");
    expect_body(&r, "abc", 3);
    gh_lambda_response_dispose(&r);
    /* too many headers */
    char *many = malloc(GH_LAMBDA_MAX_HEADERS * 16 + 64);
    size_t n = (size_t)sprintf(many, "{\"statusCode\":200,\"headers\":{");
    for (int i = 0; i <= GH_LAMBDA_MAX_HEADERS; i++)
        n += (size_t)sprintf(many + n, "%s\"h%d\":\"v\"", i ? "," : "", i);
    n += (size_t)sprintf(many + n, "}}");
    assert_int_equal(gh_lambda_response_map(many, n, 2, &r, &why), GH_AUTHZ_EBAD);
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_inferred),
        cmocka_unit_test(test_v2_structured),
        cmocka_unit_test(test_dropped_and_refused_headers),
        cmocka_unit_test(test_status_codes),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_malformed_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
