/*
 * The token service's failed-authentication throttle (src/filters/issuer/
 * throttle.c): a key is refused after `limit` failures of its own in the
 * current minute, and only then. Failures of other keys, however many,
 * never refuse a key that did not fail (they used to, when they landed in
 * its slot: anyone failing from enough addresses locked every client out),
 * and do not make a key at its limit forgotten.
 *
 * The table is one per process: each test works in its own minute.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "filters/issuer/internal.h"

#define LIMIT 10u

static uint64_t blocked(const char *k, int64_t now)
{
    return gh_isf_throttle_blocked('p', k, strlen(k), LIMIT, now);
}

static void fail_once(const char *k, int64_t now)
{
    gh_isf_throttle_fail('p', k, strlen(k), now);
}

static void test_a_key_is_refused_at_its_limit_until_the_minute_ends(void **state)
{
    (void)state;
    int64_t now = 1796532600; /* a minute's start */
    for (unsigned i = 0; i + 1 < LIMIT; i++)
        fail_once("ghc_aaaaaaaaaaaaaaaa", now + 5);
    assert_int_equal(blocked("ghc_aaaaaaaaaaaaaaaa", now + 5), 0);
    assert_int_equal(blocked("victim", now + 5), 0);
    fail_once("ghc_aaaaaaaaaaaaaaaa", now + 5);
    assert_int_equal(blocked("ghc_aaaaaaaaaaaaaaaa", now + 5), 55);
    assert_int_equal(blocked("ghc_aaaaaaaaaaaaaaaa", now + 59), 1);
    assert_int_equal(blocked("ghc_aaaaaaaaaaaaaaaa", now + 60), 0);
    /* the kinds are apart */
    assert_int_equal(gh_isf_throttle_blocked('a', "ghc_aaaaaaaaaaaaaaaa", 20, LIMIT, now + 5), 0);
}

static void test_others_failing_never_refuse_a_key_that_did_not_fail(void **state)
{
    (void)state;
    int64_t now = 1796532600 + 600;
    char k[64];
    /* Twenty times the table's size in distinct failing keys, as from
     * thousands of addresses with fresh client ids: every slot is full,
     * many times over. */
    for (unsigned i = 0; i < 400000; i++) {
        snprintf(k, sizeof(k), "ghc_attacker%07u 10.%u.%u.%u", i, i >> 16 & 255, i >> 8 & 255,
                 i & 255);
        fail_once(k, now);
    }
    unsigned refused = 0;
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(k, sizeof(k), "ghc_victim%07u 192.0.2.%u", i, i & 255);
        refused += blocked(k, now) != 0;
    }
    assert_int_equal(refused, 0);
}

static void test_a_key_at_its_limit_is_not_forgotten_under_pressure(void **state)
{
    (void)state;
    int64_t now = 1796532600 + 1200;
    char k[64];
    for (unsigned i = 0; i < LIMIT; i++)
        fail_once("guesser", now);
    assert_int_not_equal(blocked("guesser", now), 0);
    for (unsigned i = 0; i < 400000; i++) {
        snprintf(k, sizeof(k), "noise%u", i);
        fail_once(k, now);
    }
    assert_int_not_equal(blocked("guesser", now), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_key_is_refused_at_its_limit_until_the_minute_ends),
        cmocka_unit_test(test_others_failing_never_refuse_a_key_that_did_not_fail),
        cmocka_unit_test(test_a_key_at_its_limit_is_not_forgotten_under_pressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
