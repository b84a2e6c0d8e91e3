/*
 * IAM policies from Lambda authorizers (src/authorizer/policy.c): the
 * wildcard matcher (with a reference matcher written here, and a proof
 * that a pathological pattern costs O(pattern * text) comparisons, not
 * exponential time), the grammar, and evaluation against method ARNs
 * (explicit Deny wins, nothing matching denies), with the statements of
 * AWS's "Control access for invoking an API" page
 * (docs.aws.amazon.com/apigateway/latest/developerguide/
 * api-gateway-control-access-using-iam-policies-to-invoke-api.html).
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

#include "authorizer/authz.h"

static int glob(const char *p, const char *s)
{
    return gh_authz_glob(p, strlen(p), s, strlen(s), 0, NULL);
}

/* The definition, recursively (exponential: short inputs only). '?' is one
 * byte here: the generated inputs are ASCII. */
static int ref(const char *p, const char *s)
{
    if (*p == '\0')
        return *s == '\0';
    if (*p == '*')
        return ref(p + 1, s) || (*s != '\0' && ref(p, s + 1));
    if (*s == '\0')
        return 0;
    return (*p == '?' || *p == *s) && ref(p + 1, s + 1);
}

static void test_glob_forms(void **state)
{
    (void)state;
    assert_true(glob("", ""));
    assert_false(glob("", "a"));
    assert_true(glob("*", ""));
    assert_true(glob("*", "anything/at:all"));
    assert_true(glob("abc", "abc"));
    assert_false(glob("abc", "abd"));
    assert_false(glob("abc", "ab"));
    assert_false(glob("ab", "abc"));
    assert_true(glob("a?c", "abc"));
    assert_false(glob("a?c", "ac"));
    assert_true(glob("a*c", "ac"));
    assert_true(glob("a*c", "a/b:c"));
    assert_false(glob("a*c", "a/b:cd"));
    assert_true(glob("a*c*", "a/b:cd"));
    assert_true(glob("**", "x"));
    assert_true(glob("*?", "x"));
    assert_false(glob("*??", "x"));
    assert_true(glob("*a*b*c", "xxaxxbxxc"));
    assert_false(glob("*a*b*c", "xxcxxbxxa"));
    /* '*' runs across '/' and ':' (brief and AWS's arn:aws:execute-api:*:*:*) */
    assert_true(glob("arn:aws:execute-api:*", "arn:aws:execute-api:us-east-1:1:a/s/GET/x/y"));
    /* '?' is one character, not one byte */
    assert_true(glob("/?/", "/\xc3\xa9/"));
    assert_false(glob("/?"
                      "?/",
                      "/\xc3\xa9/"));
    assert_true(glob("/*\xc3\xa9", "/x\xc3\xa9"));
    /* case: resources exact, actions folded */
    assert_false(glob("ABC", "abc"));
    assert_true(gh_authz_glob("EXECUTE-API:invoke", 18, "execute-api:Invoke", 18, 1, NULL));
}

static void test_glob_against_reference(void **state)
{
    (void)state;
    /* every pattern over {a, b, *, ?} up to 6 long against every text over
     * {a, b} up to 7 long */
    static const char pa[] = "ab*?", ta[] = "ab";
    char p[8], s[9];
    unsigned long checked = 0;
    for (int pl = 0; pl <= 6; pl++) {
        unsigned long np = 1;
        for (int i = 0; i < pl; i++)
            np *= 4;
        for (unsigned long pi = 0; pi < np; pi++) {
            unsigned long x = pi;
            for (int i = 0; i < pl; i++, x /= 4)
                p[i] = pa[x % 4];
            p[pl] = '\0';
            for (int sl = 0; sl <= 7; sl++) {
                for (unsigned long si = 0; si < (1ul << sl); si++) {
                    for (int i = 0; i < sl; i++)
                        s[i] = ta[(si >> i) & 1];
                    s[sl] = '\0';
                    if (glob(p, s) != ref(p, s))
                        fail_msg("'%s' against '%s': %d, reference %d", p, s, glob(p, s),
                                 ref(p, s));
                    checked++;
                }
            }
        }
    }
    assert_true(checked > 1000000);
}

static void test_glob_pathological_is_polynomial(void **state)
{
    (void)state;
    /* "*a*a*a...*a*b" against "aaaa...a": a backtracking matcher tries
     * every way to split the a's among the stars (exponential); this one
     * counts at most (pattern + 1) * (text + 1) steps. The bound is on
     * steps, not time (TESTING.md: no timing assertions). */
    char pat[GH_AUTHZ_MAX_RESOURCE + 1], text[GH_AUTHZ_MAX_ARN + 1];
    size_t pn = 0;
    while (pn + 3 <= GH_AUTHZ_MAX_RESOURCE - 2) {
        pat[pn++] = '*';
        pat[pn++] = 'a';
    }
    pat[pn++] = '*';
    pat[pn++] = 'b';
    memset(text, 'a', GH_AUTHZ_MAX_ARN);
    uint64_t steps = 0;
    assert_false(gh_authz_glob(pat, pn, text, GH_AUTHZ_MAX_ARN, 0, &steps));
    assert_true(steps > 0);
    assert_true(steps <= (uint64_t)(pn + 1) * (GH_AUTHZ_MAX_ARN + 1));
    /* and with '?'s, as fuzzers like */
    for (size_t i = 1; i + 2 < pn; i += 4) /* not the final b */
        pat[i] = '?';
    steps = 0;
    assert_false(gh_authz_glob(pat, pn, text, GH_AUTHZ_MAX_ARN, 0, &steps));
    assert_true(steps <= (uint64_t)(pn + 1) * (GH_AUTHZ_MAX_ARN + 1));
    /* a match at the very end */
    text[GH_AUTHZ_MAX_ARN - 1] = 'b';
    steps = 0;
    assert_true(gh_authz_glob(pat, pn, text, GH_AUTHZ_MAX_ARN, 0, &steps));
    assert_true(steps <= (uint64_t)(pn + 1) * (GH_AUTHZ_MAX_ARN + 1));
}

/* ---- compile and evaluate ---- */

static gh_authz_policy_t *compile(const char *doc, const char **why)
{
    json_t *d = json_loads(doc, JSON_DECODE_ANY, NULL);
    if (d == NULL)
        fail_msg("bad test JSON: %s", doc);
    gh_authz_policy_t *p = (gh_authz_policy_t *)1;
    const char *w = NULL;
    int rc = gh_authz_policy_compile(d, &p, &w);
    json_decref(d);
    if (why != NULL)
        *why = w;
    if (rc != 0) {
        assert_int_equal(rc, GH_AUTHZ_EBAD);
        assert_null(p);
        assert_non_null(w);
        return NULL;
    }
    assert_non_null(p);
    return p;
}

static gh_authz_decision_t eval(const gh_authz_policy_t *p, const char *arn)
{
    return gh_authz_policy_eval(p, arn, strlen(arn));
}

#define ARN "arn:aws:execute-api:us-east-1:123456789012:api-id"

static void test_aws_examples(void **state)
{
    (void)state;
    /* "to grant a user permission to view a list of pets ..., but to deny
     * the user permission to add a pet" */
    gh_authz_policy_t *p = compile("{\"Version\":\"2012-10-17\",\"Statement\":["
                                   "{\"Effect\":\"Allow\",\"Action\":[\"execute-api:Invoke\"],"
                                   "\"Resource\":[\"" ARN "/*/GET/pets\"]},"
                                   "{\"Effect\":\"Deny\",\"Action\":[\"execute-api:Invoke\"],"
                                   "\"Resource\":[\"" ARN "/*/POST/pets\"]}]}",
                                   NULL);
    assert_int_equal(eval(p, ARN "/prod/GET/pets"), GH_AUTHZ_ALLOW);
    assert_int_equal(eval(p, ARN "/prod/POST/pets"), GH_AUTHZ_DENY_EXPLICIT);
    assert_int_equal(eval(p, ARN "/prod/GET/pets/a1b2"), GH_AUTHZ_DENY_IMPLICIT);
    assert_int_equal(eval(p, ARN "/prod/PUT/pets"), GH_AUTHZ_DENY_IMPLICIT);
    gh_authz_policy_free(p);
    /* "any method on any resource of any API ... in the test stage" */
    p = compile("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                "\"Action\":[\"execute-api:Invoke\",\"execute-api:InvalidateCache\"],"
                "\"Resource\":[\"arn:aws:execute-api:*:*:*/test/*\"]}]}",
                NULL);
    assert_int_equal(eval(p, ARN "/test/DELETE/a/b"), GH_AUTHZ_ALLOW);
    assert_int_equal(eval(p, ARN "/prod/GET/"), GH_AUTHZ_DENY_IMPLICIT);
    gh_authz_policy_free(p);
    /* AWS: "arn:aws:execute-api:us-east-1:*:api-id/test/GET/mydemoresource/(star)" */
    p = compile("{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"execute-api:Invoke\","
                "\"Resource\":\"arn:aws:execute-api:us-east-1:*:api-id/test/GET/mydemoresource/"
                "*\"}}",
                NULL);
    assert_int_equal(eval(p, ARN "/test/GET/mydemoresource/x"), GH_AUTHZ_ALLOW);
    assert_int_equal(eval(p, ARN "/test/GET/mydemoresource"), GH_AUTHZ_DENY_IMPLICIT);
    assert_int_equal(eval(p, ARN "/test/POST/mydemoresource/x"), GH_AUTHZ_DENY_IMPLICIT);
    gh_authz_policy_free(p);
}

static void test_deny_beats_allow_in_any_order(void **state)
{
    (void)state;
    const char *docs[] = {
        "{\"Statement\":[{\"Effect\":\"Deny\",\"Action\":\"*\",\"Resource\":\"" ARN "/*/GET/"
        "secret*\"},{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"},"
        "{\"Effect\":\"Deny\",\"Action\":\"*\",\"Resource\":\"" ARN "/*/GET/secret*\"}]}",
    };
    for (int i = 0; i < 2; i++) {
        gh_authz_policy_t *p = compile(docs[i], NULL);
        assert_int_equal(eval(p, ARN "/s/GET/secret/x"), GH_AUTHZ_DENY_EXPLICIT);
        assert_int_equal(eval(p, ARN "/s/GET/public"), GH_AUTHZ_ALLOW);
        gh_authz_policy_free(p);
    }
}

static void test_actions(void **state)
{
    (void)state;
    static const struct {
        const char *action;
        int applies;
    } cases[] = {
        {"\"execute-api:Invoke\"", 1},
        {"\"execute-api:*\"", 1},
        {"\"*\"", 1},
        {"\"EXECUTE-API:invoke\"", 1}, /* IAM: case-insensitive */
        {"\"execute-api:Inv*\"", 1},
        {"\"execute-api:Invok?\"", 1},
        {"[\"s3:GetObject\",\"execute-api:Invoke\"]", 1},
        {"\"execute-api:InvalidateCache\"", 0},
        {"\"s3:*\"", 0},
        {"\"execute-api\"", 0},
        {"\"execute-api:Invoke \"", 0},
        {"\"\"", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[256];
        snprintf(doc, sizeof(doc),
                 "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":%s,\"Resource\":\"*\"}]}",
                 cases[i].action);
        gh_authz_policy_t *p = compile(doc, NULL);
        assert_int_equal(eval(p, ARN "/s/GET/"),
                         cases[i].applies ? GH_AUTHZ_ALLOW : GH_AUTHZ_DENY_IMPLICIT);
        gh_authz_policy_free(p);
        /* a Deny of an action that is not Invoke denies nothing */
        snprintf(doc, sizeof(doc),
                 "{\"Statement\":[{\"Effect\":\"Deny\",\"Action\":%s,\"Resource\":\"*\"},"
                 "{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}",
                 cases[i].action);
        p = compile(doc, NULL);
        assert_int_equal(eval(p, ARN "/s/GET/"),
                         cases[i].applies ? GH_AUTHZ_DENY_EXPLICIT : GH_AUTHZ_ALLOW);
        gh_authz_policy_free(p);
    }
}

static void test_resources(void **state)
{
    (void)state;
    gh_authz_policy_t *p =
        compile("{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"execute-api:Invoke\","
                "\"Resource\":[\"" ARN "/prod/GET/a?c\",\"" ARN "/prod/POST/exact\"]}]}",
                NULL);
    assert_int_equal(eval(p, ARN "/prod/GET/abc"), GH_AUTHZ_ALLOW);
    assert_int_equal(eval(p, ARN "/prod/GET/a/c"), GH_AUTHZ_ALLOW); /* '?' is any character */
    assert_int_equal(eval(p, ARN "/prod/GET/ac"), GH_AUTHZ_DENY_IMPLICIT);
    assert_int_equal(eval(p, ARN "/prod/POST/exact"), GH_AUTHZ_ALLOW);
    assert_int_equal(eval(p, ARN "/prod/POST/exact/"), GH_AUTHZ_DENY_IMPLICIT);
    assert_int_equal(eval(p, ARN "/prod/POST/EXACT"), GH_AUTHZ_DENY_IMPLICIT); /* case kept */
    assert_int_equal(eval(p, ARN "/prod/post/exact"), GH_AUTHZ_DENY_IMPLICIT);
    gh_authz_policy_free(p);
    /* no statement at all: nothing is allowed */
    p = compile("{\"Version\":\"2012-10-17\",\"Statement\":[]}", NULL);
    assert_int_equal(eval(p, ARN "/prod/GET/"), GH_AUTHZ_DENY_IMPLICIT);
    gh_authz_policy_free(p);
    assert_int_equal(gh_authz_policy_eval(NULL, "x", 1), GH_AUTHZ_DENY_IMPLICIT);
}

static void test_refused_documents(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]",
        "\"x\"",
        "{}",
        "{\"Statement\":null}",
        "{\"Statement\":\"x\"}",
        "{\"Statement\":[1]}",
        "{\"Version\":\"2020-01-01\",\"Statement\":[]}",
        "{\"Version\":1,\"Statement\":[]}",
        "{\"Statement\":[],\"Extra\":1}",
        "{\"Statement\":[{\"Effect\":\"allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow \",\"Action\":\"*\",\"Resource\":\"*\"}]}",
        "{\"Statement\":[{\"Action\":\"*\",\"Resource\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Resource\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[],\"Resource\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":[]}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[1],\"Resource\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":{\"a\":1}}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":[\"*\",null]}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"NotAction\":\"x\",\"Resource\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"NotResource\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\","
        "\"Condition\":{}}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\","
        "\"Principal\":\"*\"}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\",\"Sid\":1}]}",
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\",\"X\":1}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why;
        if (compile(bad[i], &why) != NULL)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(why);
    }
    /* Sid and Id are fine; the older Version too */
    gh_authz_policy_t *p =
        compile("{\"Id\":\"x\",\"Version\":\"2008-10-17\",\"Statement\":[{\"Sid\":\"s\","
                "\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}",
                NULL);
    assert_int_equal(eval(p, ARN "/s/GET/"), GH_AUTHZ_ALLOW);
    gh_authz_policy_free(p);
}

static void test_bounds(void **state)
{
    (void)state;
    /* AWS: "the Resource ARN ... is currently limited to 512 characters" */
    char *doc = malloc(4096), res[GH_AUTHZ_MAX_RESOURCE + 2];
    memset(res, 'a', sizeof(res));
    res[0] = '*';
    res[GH_AUTHZ_MAX_RESOURCE] = '\0';
    snprintf(doc, 4096,
             "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"%s\"}}", res);
    gh_authz_policy_t *p = compile(doc, NULL);
    assert_non_null(p);
    gh_authz_policy_free(p);
    res[GH_AUTHZ_MAX_RESOURCE] = 'a';
    res[GH_AUTHZ_MAX_RESOURCE + 1] = '\0';
    snprintf(doc, 4096,
             "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"%s\"}}", res);
    assert_null(compile(doc, NULL));
    free(doc);
    /* too many resources */
    json_t *arr = json_array();
    for (int i = 0; i <= GH_AUTHZ_MAX_PATTERNS; i++)
        json_array_append_new(arr, json_string("*"));
    json_t *d = json_pack("{s:{s:s,s:s,s:o}}", "Statement", "Effect", "Allow", "Action", "*",
                          "Resource", arr);
    const char *why = NULL;
    gh_authz_policy_t *q = (gh_authz_policy_t *)1;
    assert_int_equal(gh_authz_policy_compile(d, &q, &why), GH_AUTHZ_EBAD);
    assert_null(q);
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_forms),
        cmocka_unit_test(test_glob_against_reference),
        cmocka_unit_test(test_glob_pathological_is_polynomial),
        cmocka_unit_test(test_aws_examples),
        cmocka_unit_test(test_deny_beats_allow_in_any_order),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_refused_documents),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
