/*
 * The fault filter's config: percentages to 0.01% (exhaustively against a
 * reference reading of every "W.FF" text), and each section's errors at
 * file:line:col through the real config loader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/config.h>

#include "filters/fault/fault.h"

static int pct(const char *s, uint32_t *v)
{
    return gh_fault_parse_percent(s, strlen(s), v);
}

static void test_percent_every_two_decimal_value(void **state)
{
    (void)state;
    char buf[32];
    uint32_t v;
    /* Every value 0.00 .. 100.00 in three spellings reads back exactly. */
    for (uint32_t x = 0; x <= 10000; x++) {
        snprintf(buf, sizeof(buf), "%u.%02u", x / 100, x % 100);
        assert_int_equal(pct(buf, &v), 0);
        assert_int_equal(v, x);
        if (x % 100 == 0) {
            snprintf(buf, sizeof(buf), "%u", x / 100);
            assert_int_equal(pct(buf, &v), 0);
            assert_int_equal(v, x);
        }
        if (x % 10 == 0) {
            snprintf(buf, sizeof(buf), "%u.%u", x / 100, x % 100 / 10);
            assert_int_equal(pct(buf, &v), 0);
            assert_int_equal(v, x);
        }
    }
    /* trailing zeros past the second decimal are the same number */
    assert_int_equal(pct("12.500", &v), 0);
    assert_int_equal(v, 1250);
}

static void test_percent_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",     "-1",  "100.01", "101",    "0.001",
        "1e2",  ".5",  "5.",     " 5",     "5 ",
        "0x10", "abc", "50%",    "1,5",    "+5",
        "nan",  "inf", "1000",   "99.999", "00000000000000000000000000000001000"};
    uint32_t v = 77;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pct(bad[i], &v), -1);
        assert_int_equal(v, 77);
    }
}

static void expect_error(const char *fault, const char *want)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "clusters:\n"
             "  app: {endpoints: [127.0.0.1:9]}\n"
             "listeners:\n"
             "  - name: edge\n"
             "    listen: 127.0.0.1:18080\n"
             "    routes:\n"
             "      - to: app\n"
             "        fault: %s\n",
             fault);
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("t.yaml", yaml, strlen(yaml), &err);
    if (want == NULL) {
        if (cfg == NULL)
            fail_msg("'%s' refused: %s", fault, err.msg);
        gh_config_free(cfg);
        return;
    }
    if (cfg != NULL) {
        gh_config_free(cfg);
        fail_msg("'%s' accepted", fault);
    }
    if (strstr(err.msg, want) == NULL)
        fail_msg("'%s': got '%s', want '%s'", fault, err.msg, want);
}

static void test_config_errors(void **state)
{
    (void)state;
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    expect_error("{delay: {fixed: 10ms}}", NULL);
    expect_error("{abort: {status: 503, percent: 0.01, header: X-Abort}}", NULL);
    expect_error("{delay: {fixed: 1s, percent: 100.5}}", "t.yaml:8:45: 'percent' must be");
    expect_error("{delay: {fixed: 1s, percent: \"50\"}}", "'percent' must be a number");
    expect_error("{delay: {percent: 5}}", "t.yaml:8:24: 'delay' is missing required key 'fixed'");
    expect_error("{delay: {fixed: 2h}}", "'fixed' must be at most");
    expect_error("{abort: {status: 99}}", "status");
    expect_error("{abort: {status: 600}}", "status");
    expect_error("{abort: {percent: 5}}", "'abort' is missing required key 'status'");
    expect_error("{}", "t.yaml:8:16: 'fault' needs a 'delay', an 'abort' or both");
    expect_error("{delay: {fixed: 1s}, retry: {}}", "unknown key 'retry'");
    expect_error("{abort: {status: 503, header: \"x fault\"}}", "'header' must be a header name");
    expect_error("[]", "expected a mapping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_every_two_decimal_value),
        cmocka_unit_test(test_percent_refused),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
