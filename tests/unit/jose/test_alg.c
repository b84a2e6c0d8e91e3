/* The algorithm names: exact, case-sensitive, never "none". */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/jwt.h>

static void test_alg_names(void **state)
{
    (void)state;
    for (int a = 1; a < GH_JWT_ALG_COUNT; a++) {
        const char *n = gh_jwt_alg_name((gh_jwt_alg_t)a);
        assert_int_equal(gh_jwt_alg_from_name(n, strlen(n)), a);
    }
    assert_null(gh_jwt_alg_name(GH_JWT_ALG_UNKNOWN));
    assert_int_equal(gh_jwt_alg_from_name("none", 4), GH_JWT_ALG_UNKNOWN);
    assert_int_equal(gh_jwt_alg_from_name("hs256", 5), GH_JWT_ALG_UNKNOWN);
    assert_int_equal(gh_jwt_alg_from_name("HS2560", 6), GH_JWT_ALG_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
