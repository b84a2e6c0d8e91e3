/*
 * Lambda authorizer answers (src/authorizer/response.c): formats 1.0 and
 * 2.0 as AWS's pages show them ("Output from an Amazon API Gateway Lambda
 * authorizer", docs.aws.amazon.com/apigateway/latest/developerguide/
 * api-gateway-lambda-authorizer-output.html; "Working with AWS Lambda
 * authorizers for HTTP APIs", .../http-api-lambda-authorizer.html), every
 * refusal (missing principalId, context objects in 1.0, duplicate names,
 * too deep, too large, not JSON, truncated at every byte), the cached
 * policy evaluated against later ARNs, identity values and the header
 * mapping checks, and function errors ("Unauthorized" is a 401).
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

#include "authorizer/authz.h"

#define ARN "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b"

static int v1(const char *s, gh_authz_result_t *r)
{
    const char *why = NULL;
    int rc = gh_authz_response_v1(s, strlen(s), r, &why);
    if (rc == 0)
        assert_null(why);
    else
        assert_non_null(why);
    return rc;
}

static int v2(const char *s, int simple, gh_authz_result_t *r)
{
    const char *why = NULL;
    int rc = gh_authz_response_v2(s, strlen(s), simple, r, &why);
    if (rc == 0)
        assert_null(why);
    else
        assert_non_null(why);
    return rc;
}

static gh_authz_decision_t decide(const gh_authz_result_t *r, const char *arn)
{
    return gh_authz_result_decide(r, arn, strlen(arn));
}

static const char *value(const gh_authz_result_t *r, const char *src)
{
    const char *v = NULL;
    size_t n = 0;
    int rc = gh_authz_result_value(r, src, &v, &n);
    if (rc != 1)
        return NULL;
    assert_int_equal(strlen(v), n);
    return v;
}

/* ---- format 1.0 ---- */

static void test_v1_aws_example(void **state)
{
    (void)state;
    /* the page's example, with Effect Allow and a concrete Resource */
    gh_authz_result_t r;
    assert_int_equal(v1("{\"principalId\":\"yyyyyyyy\",\"policyDocument\":{\"Version\":"
                        "\"2012-10-17\",\"Statement\":[{\"Action\":\"execute-api:Invoke\","
                        "\"Effect\":\"Allow\",\"Resource\":\"" ARN "/*/GET/\"}]},"
                        "\"context\":{\"stringKey\":\"value\",\"numberKey\":\"1\","
                        "\"booleanKey\":\"true\"},\"usageIdentifierKey\":\"{api-key}\"}",
                        &r),
                     0);
    assert_false(r.simple);
    assert_string_equal(r.principal, "yyyyyyyy");
    assert_string_equal(r.usage_key, "{api-key}");
    assert_int_equal(r.nctx, 3);
    assert_string_equal(r.ctx[0].key, "stringKey");
    assert_string_equal(r.ctx[0].value, "value");
    assert_int_equal(r.ctx[0].type, GH_AUTHZ_CTX_STRING);
    assert_string_equal(value(&r, "principalId"), "yyyyyyyy");
    assert_string_equal(value(&r, "usageIdentifierKey"), "{api-key}");
    assert_string_equal(value(&r, "context.numberKey"), "1");
    assert_null(value(&r, "context.missing"));
    assert_null(value(&r, "nonsense"));
    /* the cached answer decides each later request by its own ARN */
    assert_int_equal(decide(&r, ARN "/prod/GET/"), GH_AUTHZ_ALLOW);
    assert_int_equal(decide(&r, ARN "/test/GET/"), GH_AUTHZ_ALLOW);
    assert_int_equal(decide(&r, ARN "/prod/POST/"), GH_AUTHZ_DENY_IMPLICIT);
    assert_int_equal(decide(&r, ARN "/prod/GET/pets"), GH_AUTHZ_DENY_IMPLICIT);
    gh_authz_result_dispose(&r);
    gh_authz_result_dispose(&r); /* disposing twice is harmless */

    /* the page's Deny example */
    assert_int_equal(v1("{\"principalId\":\"user\",\"policyDocument\":{\"Version\":"
                        "\"2012-10-17\",\"Statement\":[{\"Action\":\"execute-api:Invoke\","
                        "\"Effect\":\"Deny\",\"Resource\":\"" ARN "/*/GET/\"}]}}",
                        &r),
                     0);
    assert_int_equal(decide(&r, ARN "/prod/GET/"), GH_AUTHZ_DENY_EXPLICIT);
    assert_int_equal(r.nctx, 0);
    assert_null(r.usage_key);
    gh_authz_result_dispose(&r);
}

static void test_v1_statement_forms(void **state)
{
    (void)state;
    gh_authz_result_t r;
    /* a single statement object, string Action and Resource */
    assert_int_equal(v1("{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":{\"Effect\":"
                        "\"Allow\",\"Action\":\"execute-api:Invoke\",\"Resource\":\"*\"}}}",
                        &r),
                     0);
    assert_int_equal(decide(&r, ARN "/s/GET/"), GH_AUTHZ_ALLOW);
    gh_authz_result_dispose(&r);
    /* arrays of both */
    assert_int_equal(v1("{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[{\"Effect\":"
                        "\"Allow\",\"Action\":[\"execute-api:Invoke\"],\"Resource\":[\"" ARN
                        "/s/GET/a\",\"" ARN "/s/GET/b\"]}]}}",
                        &r),
                     0);
    assert_int_equal(decide(&r, ARN "/s/GET/b"), GH_AUTHZ_ALLOW);
    assert_int_equal(decide(&r, ARN "/s/GET/c"), GH_AUTHZ_DENY_IMPLICIT);
    gh_authz_result_dispose(&r);
}

static void test_v1_context_types(void **state)
{
    (void)state;
    gh_authz_result_t r;
    assert_int_equal(v1("{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]},"
                        "\"context\":{\"s\":\"x\",\"i\":-42,\"r\":1.5,\"t\":true,\"f\":false,"
                        "\"big\":9223372036854775807,\"u\":\"\xc3\xa9\"}}",
                        &r),
                     0);
    assert_int_equal(r.nctx, 7);
    /* API Gateway: "The returned values are all stringified" */
    assert_string_equal(value(&r, "context.s"), "x");
    assert_string_equal(value(&r, "context.i"), "-42");
    assert_int_equal(r.ctx[1].type, GH_AUTHZ_CTX_NUMBER);
    assert_string_equal(value(&r, "context.r"), "1.5");
    assert_string_equal(value(&r, "context.t"), "true");
    assert_int_equal(r.ctx[3].type, GH_AUTHZ_CTX_BOOL);
    assert_string_equal(value(&r, "context.f"), "false");
    assert_string_equal(value(&r, "context.big"), "9223372036854775807");
    assert_string_equal(value(&r, "context.u"), "\xc3\xa9");
    /* no statements: everything denied */
    assert_int_equal(decide(&r, ARN "/s/GET/"), GH_AUTHZ_DENY_IMPLICIT);
    gh_authz_result_dispose(&r);
    /* "you cannot set a JSON object or array as a valid value of any key
     * in the context map": API Gateway fails the answer (500) */
    static const char *const nested[] = {"{\"o\":{}}", "{\"a\":[1]}", "{\"n\":null}",
                                         "{\"ok\":\"x\",\"o\":{\"k\":\"v\"}}"};
    for (size_t i = 0; i < 4; i++) {
        char buf[256];
        snprintf(buf, sizeof(buf),
                 "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]},\"context\":%s}",
                 nested[i]);
        assert_int_equal(v1(buf, &r), GH_AUTHZ_EBAD);
        assert_null(r.policy);
        assert_null(r.principal);
        assert_int_equal(r.nctx, 0);
    }
    /* context not an object */
    assert_int_equal(v1("{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]},"
                        "\"context\":[]}",
                        &r),
                     GH_AUTHZ_EBAD);
    /* context null is no context */
    assert_int_equal(v1("{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]},"
                        "\"context\":null}",
                        &r),
                     0);
    assert_int_equal(r.nctx, 0);
    gh_authz_result_dispose(&r);
}

static void test_v1_refusals(void **state)
{
    (void)state;
    gh_authz_result_t r;
    static const char *const bad[] = {
        /* principalId is required ("must include the principal identifier") */
        "{\"policyDocument\":{\"Statement\":[]}}",
        "{\"principalId\":null,\"policyDocument\":{\"Statement\":[]}}",
        "{\"principalId\":5,\"policyDocument\":{\"Statement\":[]}}",
        "{\"principalId\":\"p\"}",
        "{\"principalId\":\"p\",\"policyDocument\":null}",
        "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]},\"usageIdentifierKey\":1}",
        /* a simple answer is not a format 1.0 answer */
        "{\"isAuthorized\":true}",
        /* not an object */
        "[]",
        "\"Allow\"",
        "true",
        "null",
        "",
        " ",
        "{",
        "{\"principalId\":\"p\",",
        "{\"principalId\":\"p\"}x",
        "{'principalId':'p'}",
        /* duplicate names, at the top and inside */
        "{\"principalId\":\"a\",\"principalId\":\"b\",\"policyDocument\":{\"Statement\":[]}}",
        "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[],\"Statement\":[]}}",
        "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]},\"context\":{\"k\":\"1\","
        "\"k\":\"2\"}}",
        /* invalid UTF-8 and an escaped NUL */
        "{\"principalId\":\"\xff\",\"policyDocument\":{\"Statement\":[]}}",
        "{\"principalId\":\"a\\u0000b\",\"policyDocument\":{\"Statement\":[]}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (v1(bad[i], &r) != GH_AUTHZ_EBAD)
            fail_msg("accepted: %s", bad[i]);
        assert_null(r.policy);
    }
    /* a raw NUL after a literal (jansson reads on past it) */
    static const char nul[] = "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]}}\0x";
    const char *why;
    assert_int_equal(gh_authz_response_v1(nul, sizeof(nul) - 1, &r, &why), GH_AUTHZ_EBAD);
    assert_int_equal(gh_authz_response_v1(NULL, 0, &r, NULL), GH_AUTHZ_EBAD);
    /* unknown top-level members carry no authority and are ignored */
    assert_int_equal(v1("{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]},"
                        "\"statusCode\":200}",
                        &r),
                     0);
    gh_authz_result_dispose(&r);
}

static void test_truncated_at_every_byte(void **state)
{
    (void)state;
    static const char full[] =
        "{\"principalId\":\"p\",\"policyDocument\":{\"Version\":\"2012-10-17\",\"Statement\":[{"
        "\"Effect\":\"Allow\",\"Action\":\"execute-api:Invoke\",\"Resource\":\"*\"}]},"
        "\"context\":{\"a\":1}}";
    gh_authz_result_t r;
    for (size_t n = 0; n < sizeof(full) - 1; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, full, n);
        assert_int_equal(gh_authz_response_v1(copy, n, &r, NULL), GH_AUTHZ_EBAD);
        assert_int_equal(gh_authz_response_v2(copy, n, 1, &r, NULL), GH_AUTHZ_EBAD);
        free(copy);
    }
    assert_int_equal(gh_authz_response_v1(full, sizeof(full) - 1, &r, NULL), 0);
    gh_authz_result_dispose(&r);
}

static void test_huge_and_deep(void **state)
{
    (void)state;
    gh_authz_result_t r;
    const char *why;
    /* deeper than the bound, in an ignored member: refused before jansson
     * recurses */
    size_t depth = GH_AUTHZ_MAX_DEPTH + 1;
    char *deep = malloc(depth * 2 + 128);
    size_t n = (size_t)sprintf(deep, "{\"principalId\":\"p\",\"x\":");
    for (size_t i = 0; i < depth - 1; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth - 1; i++)
        deep[n++] = ']';
    n += (size_t)sprintf(deep + n, ",\"policyDocument\":{\"Statement\":[]}}");
    assert_int_equal(gh_authz_response_v1(deep, n, &r, &why), GH_AUTHZ_EBAD);
    assert_string_equal(why, "the answer nests too deep");
    free(deep);
    /* just within it */
    deep = malloc(depth * 2 + 128);
    n = (size_t)sprintf(deep, "{\"principalId\":\"p\",\"x\":");
    for (size_t i = 0; i < depth - 2; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth - 2; i++)
        deep[n++] = ']';
    n += (size_t)sprintf(deep + n, ",\"policyDocument\":{\"Statement\":[]}}");
    assert_int_equal(gh_authz_response_v1(deep, n, &r, &why), 0);
    gh_authz_result_dispose(&r);
    free(deep);
    /* brackets inside strings do not count */
    char str[256];
    n = (size_t)snprintf(str, sizeof(str),
                         "{\"principalId\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[\","
                         "\"policyDocument\":{\"Statement\":[]}}");
    assert_int_equal(gh_authz_response_v1(str, n, &r, &why), 0);
    gh_authz_result_dispose(&r);
    /* past the size bound */
    size_t big = GH_AUTHZ_MAX_RESPONSE + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    static const char small[] = "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]}}";
    memcpy(huge, small, sizeof(small) - 1);
    assert_int_equal(gh_authz_response_v1(huge, big, &r, &why), GH_AUTHZ_EBAD);
    assert_string_equal(why, "the answer is too large");
    assert_int_equal(gh_authz_response_v1(huge, big - 1, &r, &why), 0);
    gh_authz_result_dispose(&r);
    free(huge);
    /* a principalId past GH_AUTHZ_MAX_VALUE */
    char *longp = malloc(GH_AUTHZ_MAX_VALUE + 128);
    n = (size_t)sprintf(longp, "{\"principalId\":\"");
    memset(longp + n, 'p', GH_AUTHZ_MAX_VALUE + 1);
    n += GH_AUTHZ_MAX_VALUE + 1;
    n += (size_t)sprintf(longp + n, "\",\"policyDocument\":{\"Statement\":[]}}");
    assert_int_equal(gh_authz_response_v1(longp, n, &r, &why), GH_AUTHZ_EBAD);
    free(longp);
    /* too many context keys */
    char *many = malloc(GH_AUTHZ_MAX_CONTEXT * 16 + 128);
    n = (size_t)sprintf(many, "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]},"
                              "\"context\":{");
    for (int i = 0; i <= GH_AUTHZ_MAX_CONTEXT; i++)
        n += (size_t)sprintf(many + n, "%s\"k%d\":1", i ? "," : "", i);
    n += (size_t)sprintf(many + n, "}}");
    assert_int_equal(gh_authz_response_v1(many, n, &r, &why), GH_AUTHZ_EBAD);
    free(many);
}

/* ---- format 2.0 ---- */

static void test_v2_simple(void **state)
{
    (void)state;
    gh_authz_result_t r;
    /* the page's Node.js example answers */
    assert_int_equal(v2("{\"isAuthorized\":true,\"context\":{\"stringKey\":\"value\","
                        "\"numberKey\":1,\"booleanKey\":true,\"arrayKey\":[\"value1\",\"value2\"],"
                        "\"mapKey\":{\"value1\":\"value2\"}}}",
                        1, &r),
                     0);
    assert_true(r.simple);
    assert_true(r.authorized);
    assert_null(r.policy);
    assert_null(r.principal);
    assert_int_equal(decide(&r, "anything"), GH_AUTHZ_ALLOW);
    /* format 2.0 lets context values nest: they are kept as JSON text */
    assert_string_equal(value(&r, "context.arrayKey"), "[\"value1\",\"value2\"]");
    assert_int_equal(r.ctx[3].type, GH_AUTHZ_CTX_JSON);
    assert_string_equal(value(&r, "context.mapKey"), "{\"value1\":\"value2\"}");
    assert_string_equal(value(&r, "context.numberKey"), "1");
    assert_string_equal(value(&r, "context.booleanKey"), "true");
    gh_authz_result_dispose(&r);

    assert_int_equal(v2("{\"isAuthorized\":false}", 1, &r), 0);
    assert_true(r.simple);
    assert_int_equal(decide(&r, "x"), GH_AUTHZ_DENY_EXPLICIT);
    gh_authz_result_dispose(&r);
    /* isAuthorized must be a boolean */
    static const char *const bad[] = {"{\"isAuthorized\":\"true\"}", "{\"isAuthorized\":1}",
                                      "{\"isAuthorized\":null}", "{\"isAuthorized\":{}}",
                                      "{\"isAuthorized\":true,\"context\":\"x\"}"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(v2(bad[i], 1, &r), GH_AUTHZ_EBAD);
}

static void test_v2_simple_enabled_takes_iam_too(void **state)
{
    (void)state;
    /* AWS (CreateAuthorizer, enableSimpleResponses): "If enabled, the
     * Lambda authorizer can return a boolean value instead of an IAM
     * policy": an answer without isAuthorized is read as IAM */
    static const char iam[] = "{\"principalId\":\"abcdef\",\"policyDocument\":{\"Version\":"
                              "\"2012-10-17\",\"Statement\":[{\"Action\":\"execute-api:Invoke\","
                              "\"Effect\":\"Allow\",\"Resource\":\"" ARN "/$default/GET/x\"}]},"
                              "\"context\":{\"k\":{\"n\":[1]}}}";
    gh_authz_result_t r;
    for (int simple = 0; simple <= 1; simple++) {
        assert_int_equal(v2(iam, simple, &r), 0);
        assert_false(r.simple);
        assert_string_equal(r.principal, "abcdef");
        assert_int_equal(decide(&r, ARN "/$default/GET/x"), GH_AUTHZ_ALLOW);
        assert_int_equal(decide(&r, ARN "/$default/GET/y"), GH_AUTHZ_DENY_IMPLICIT);
        assert_string_equal(value(&r, "context.k"), "{\"n\":[1]}");
        gh_authz_result_dispose(&r);
    }
    /* not enabled: a simple answer is malformed (no principalId, no
     * policy), API Gateway's 500 */
    assert_int_equal(v2("{\"isAuthorized\":true}", 0, &r), GH_AUTHZ_EBAD);
    /* enabled, both forms in one answer: isAuthorized decides */
    assert_int_equal(
        v2("{\"isAuthorized\":false,\"principalId\":\"p\",\"policyDocument\":{"
           "\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}}",
           1, &r),
        0);
    assert_true(r.simple);
    assert_int_equal(decide(&r, ARN "/$default/GET/x"), GH_AUTHZ_DENY_EXPLICIT);
    gh_authz_result_dispose(&r);
    /* IAM without principalId */
    assert_int_equal(v2("{\"policyDocument\":{\"Statement\":[]}}", 1, &r), GH_AUTHZ_EBAD);
    /* nested context is still bounded in depth */
    assert_int_equal(
        v2("{\"isAuthorized\":true,\"context\":{\"k\":"
           "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
           1, &r),
        GH_AUTHZ_EBAD);
}

/* ---- identity values and header mapping ---- */

static void test_header_values_refuse_control_characters(void **state)
{
    (void)state;
    gh_authz_result_t r;
    assert_int_equal(v2("{\"isAuthorized\":true,\"context\":{\"crlf\":\"a\\r\\nX-Injected: 1\","
                        "\"lf\":\"a\\nb\",\"tab\":\"a\\tb\",\"del\":\"\\u007f\",\"ok\":\"a b\","
                        "\"obs\":\"\xc3\xa9\"}}",
                        1, &r),
                     0);
    const char *v;
    size_t n;
    assert_int_equal(gh_authz_result_value(&r, "context.crlf", &v, &n), -EINVAL);
    assert_int_equal(gh_authz_result_value(&r, "context.lf", &v, &n), -EINVAL);
    assert_int_equal(gh_authz_result_value(&r, "context.del", &v, &n), -EINVAL);
    assert_int_equal(gh_authz_result_value(&r, "context.tab", &v, &n), 1);
    assert_int_equal(gh_authz_result_value(&r, "context.ok", &v, &n), 1);
    assert_int_equal(gh_authz_result_value(&r, "context.obs", &v, &n), 1);
    assert_int_equal(gh_authz_result_value(&r, "principalId", &v, &n), 0);
    assert_int_equal(gh_authz_result_value(&r, "usageIdentifierKey", &v, &n), 0);
    gh_authz_result_dispose(&r);
}

static void test_mapping_config_checks(void **state)
{
    (void)state;
    assert_null(gh_authz_source_refused("principalId"));
    assert_null(gh_authz_source_refused("usageIdentifierKey"));
    assert_null(gh_authz_source_refused("context.tenant"));
    assert_null(gh_authz_source_refused("context.a.b"));
    assert_non_null(gh_authz_source_refused("context."));
    assert_non_null(gh_authz_source_refused("context"));
    assert_non_null(gh_authz_source_refused("principalid"));
    assert_non_null(gh_authz_source_refused(""));
    assert_non_null(gh_authz_source_refused(NULL));

    static const char *const ok[] = {"x-user", "X-Tenant-Id", "x_claims", "x.a~b!"};
    for (size_t i = 0; i < 4; i++)
        if (gh_authz_header_refused(ok[i], strlen(ok[i])) != NULL)
            fail_msg("refused %s", ok[i]);
    static const char *const refused[] = {
        "host",
        "Host",
        "content-length",
        "Transfer-Encoding",
        "connection",
        "te",
        "upgrade",
        "keep-alive",
        "proxy-authorization",
        "Proxy-Foo",
        "proxy_connection",
        "trailer",
        "authorization",
        "cookie",
        "x-forwarded-for",
        "X-Forwarded-Host",
        "forwarded",
        "via",
        "x-real-ip",
        "x-request-id",
        "traceparent",
        "x-b3-traceid",
        "expect",
        "content-type",
        "Content-Encoding",
        "content_length",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "max-forwards",
        "",
        "x user",
        "x:user",
        "x\r\ny",
        "\xc3\xa9",
        ":authority",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (gh_authz_header_refused(refused[i], strlen(refused[i])) == NULL)
            fail_msg("accepted %s", refused[i]);
    char longname[300];
    memset(longname, 'x', sizeof(longname));
    assert_non_null(gh_authz_header_refused(longname, 257));
    assert_null(gh_authz_header_refused(longname, 256));
    assert_non_null(gh_authz_header_refused(NULL, 0));
}

/* ---- function errors ---- */

static void test_function_errors(void **state)
{
    (void)state;
    const char *msg;
    static const char unauth[] =
        "{\"errorMessage\":\"Unauthorized\",\"errorType\":\"Error\",\"stackTrace\":[]}";
    assert_int_equal(gh_lambda_error_classify("Unhandled", 9, unauth, sizeof(unauth) - 1, &msg),
                     GH_LAMBDA_UNAUTHORIZED);
    assert_non_null(msg);
    assert_int_equal(gh_lambda_error_classify("Handled", 7, unauth, sizeof(unauth) - 1, NULL),
                     GH_LAMBDA_UNAUTHORIZED);
    /* exactly "Unauthorized": any other message is a function error */
    static const char *const other[] = {
        "{\"errorMessage\":\"unauthorized\"}",
        "{\"errorMessage\":\"Unauthorized \"}",
        "{\"errorMessage\":\"Unauthorized: expired\"}",
        "{\"errorMessage\":[\"Unauthorized\"]}",
        "{\"errorType\":\"Unauthorized\"}",
        "\"Unauthorized\"",
        "not json",
        "",
        "{\"errorMessage\":\"Unauthorized\",\"errorMessage\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        assert_int_equal(gh_lambda_error_classify("Unhandled", 9, other[i], strlen(other[i]), &msg),
                         GH_LAMBDA_FUNCTION_ERROR);
    /* no X-Amz-Function-Error: the payload is a result, whatever it says */
    assert_int_equal(gh_lambda_error_classify(NULL, 0, unauth, sizeof(unauth) - 1, &msg),
                     GH_LAMBDA_RESULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_aws_example),
        cmocka_unit_test(test_v1_statement_forms),
        cmocka_unit_test(test_v1_context_types),
        cmocka_unit_test(test_v1_refusals),
        cmocka_unit_test(test_truncated_at_every_byte),
        cmocka_unit_test(test_huge_and_deep),
        cmocka_unit_test(test_v2_simple),
        cmocka_unit_test(test_v2_simple_enabled_takes_iam_too),
        cmocka_unit_test(test_header_values_refuse_control_characters),
        cmocka_unit_test(test_mapping_config_checks),
        cmocka_unit_test(test_function_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
