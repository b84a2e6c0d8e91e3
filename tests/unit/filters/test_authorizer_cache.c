/*
 * The authorizers' per-worker answer cache (src/filters/authorizer/
 * cache.c): entries are per runtime and per exact key, expire at their
 * time (injected here), keep a stored result intact for per-ARN
 * evaluation, replace their own key, and stay within the table's bound
 * however many keys come.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filters/authorizer/authorizer.h"

static const char ALLOW_A[] =
    "{\"principalId\":\"u\",\"policyDocument\":{\"Version\":\"2012-10-17\",\"Statement\":[{"
    "\"Effect\":\"Allow\",\"Action\":\"execute-api:Invoke\",\"Resource\":"
    "\"arn:aws:execute-api:us-east-1:1:api/prod/GET/a*\"}]}}";

static gh_azr_centry_t *get(gh_azr_cache_t *c, uint64_t rt, const char *k, uint64_t now)
{
    return gh_azr_cache_get(c, gh_azr_cache_hash(c, rt, k, strlen(k)), rt, k, strlen(k), now);
}

static int put_simple(gh_azr_cache_t *c, uint64_t rt, const char *k, uint64_t exp, int allow)
{
    gh_authz_result_t r;
    const char *why;
    const char *text = allow ? "{\"isAuthorized\":true}" : "{\"isAuthorized\":false}";
    assert_int_equal(gh_authz_response_v2(text, strlen(text), 1, &r, &why), 0);
    int rc = gh_azr_cache_put(c, gh_azr_cache_hash(c, rt, k, strlen(k)), rt, k, strlen(k), exp, &r,
                              NULL, 0);
    gh_authz_result_dispose(&r);
    return rc;
}

static void test_hit_miss_and_expiry(void **state)
{
    (void)state;
    gh_azr_cache_t *c = gh_azr_cache_new(42);
    assert_non_null(c);
    assert_null(get(c, 1, "tok", 0)); /* no table yet */
    assert_int_equal(gh_azr_cache_fit(c, 16), 0);
    assert_int_equal(put_simple(c, 1, "tok", 1000, 1), 0);
    gh_azr_centry_t *e = get(c, 1, "tok", 999);
    assert_non_null(e);
    assert_true(e->result.simple && e->result.authorized);
    /* Another runtime, another key, a prefix of the key: misses. */
    assert_null(get(c, 2, "tok", 0));
    assert_null(get(c, 1, "to", 0));
    assert_null(get(c, 1, "tok2", 0));
    /* Expired at its time exactly, and gone after. */
    assert_null(get(c, 1, "tok", 1000));
    assert_int_equal(gh_azr_cache_count(c), 0);
    gh_azr_cache_free(c);
}

static void test_denials_and_replacement(void **state)
{
    (void)state;
    gh_azr_cache_t *c = gh_azr_cache_new(7);
    assert_int_equal(gh_azr_cache_fit(c, 4), 0);
    assert_int_equal(put_simple(c, 1, "k", 100, 0), 0);
    gh_azr_centry_t *e = get(c, 1, "k", 0);
    assert_non_null(e);
    assert_int_not_equal(gh_authz_result_decide(&e->result, "x", 1), GH_AUTHZ_ALLOW);
    /* The same key again replaces its entry, not another way. */
    assert_int_equal(put_simple(c, 1, "k", 200, 1), 0);
    assert_int_equal(gh_azr_cache_count(c), 1);
    e = get(c, 1, "k", 150);
    assert_non_null(e);
    assert_int_equal(gh_authz_result_decide(&e->result, "x", 1), GH_AUTHZ_ALLOW);
    gh_azr_cache_free(c);
}

static void test_policy_evaluated_per_arn(void **state)
{
    (void)state;
    gh_azr_cache_t *c = gh_azr_cache_new(9);
    assert_int_equal(gh_azr_cache_fit(c, 8), 0);
    gh_authz_result_t r;
    const char *why;
    assert_int_equal(gh_authz_response_v1(ALLOW_A, strlen(ALLOW_A), &r, &why), 0);
    assert_int_equal(
        gh_azr_cache_put(c, gh_azr_cache_hash(c, 3, "t", 1), 3, "t", 1, 10, &r, NULL, 0), 0);
    assert_null(r.policy); /* moved */
    gh_azr_centry_t *e = get(c, 3, "t", 0);
    assert_non_null(e);
    const char *a = "arn:aws:execute-api:us-east-1:1:api/prod/GET/a/1";
    const char *b = "arn:aws:execute-api:us-east-1:1:api/prod/GET/b";
    assert_int_equal(gh_authz_result_decide(&e->result, a, strlen(a)), GH_AUTHZ_ALLOW);
    assert_int_equal(gh_authz_result_decide(&e->result, b, strlen(b)), GH_AUTHZ_DENY_IMPLICIT);
    gh_azr_cache_free(c);
}

static void test_bounded(void **state)
{
    (void)state;
    gh_azr_cache_t *c = gh_azr_cache_new(1);
    assert_int_equal(gh_azr_cache_fit(c, 10), 0); /* 4 sets of 4 ways */
    char k[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        assert_int_equal(gh_azr_cache_put(c, gh_azr_cache_hash(c, 1, k, strlen(k)), 1, k, strlen(k),
                                          1000, NULL, "x-a: b\r\n", 8),
                         0);
    }
    assert_true(gh_azr_cache_count(c) <= 16);
    /* The last key is there, with its lines. */
    gh_azr_centry_t *e = get(c, 1, k, 0);
    assert_non_null(e);
    assert_int_equal(e->lines_len, 8);
    assert_memory_equal(e->lines, "x-a: b\r\n", 8);
    /* Growing keeps it bounded and usable. */
    assert_int_equal(gh_azr_cache_fit(c, 100), 0);
    assert_int_equal(gh_azr_cache_count(c), 0);
    gh_azr_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss_and_expiry),
        cmocka_unit_test(test_denials_and_replacement),
        cmocka_unit_test(test_policy_evaluated_per_arn),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
