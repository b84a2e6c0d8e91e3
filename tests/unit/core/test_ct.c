/*
 * Constant-time equality (src/core/ct.c): the same answer as memcmp for
 * every length up to past two of the AVX2 path's 256-byte steps, with one
 * byte differing at every position (each bit of it), on the AVX2 path and
 * on the SSE2/word paths, and at unaligned offsets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/core/ct.c"

#define MAXN 700

static void check_all(void)
{
    static char a[MAXN + 64], b[MAXN + 64];
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < sizeof(a); i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        a[i] = (char)x;
    }
    for (size_t off = 0; off < 3; off++) {
        for (size_t n = 0; n <= MAXN; n++) {
            const char *p = a + off;
            char *q = b + (off * 7) % 5;
            memcpy(q, p, n);
            assert_int_equal(gh_ct_equal(p, q, n), 1);
            for (size_t i = 0; i < n; i++) {
                /* One bit a time on a few lengths, the low and high bit
                 * on the others (the sum must see every lane). */
                for (int bit = 0; bit < 8; bit += (n % 61 == 0 ? 1 : 7)) {
                    q[i] ^= (char)(1 << bit);
                    if (gh_ct_equal(p, q, n) != 0)
                        fail_msg("n %zu off %zu: byte %zu bit %d differs, called equal", n, off, i,
                                 bit);
                    q[i] ^= (char)(1 << bit);
                }
            }
            assert_int_equal(gh_ct_equal(p, q, n), 1);
        }
    }
}

static void test_default_path(void **state)
{
    (void)state;
    check_all();
}

static void test_without_avx2(void **state)
{
    (void)state;
#ifdef HAVE_AVX2_PATH
    avx2_off = 1;
#endif
    check_all();
#ifdef HAVE_AVX2_PATH
    avx2_off = 0;
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_without_avx2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
