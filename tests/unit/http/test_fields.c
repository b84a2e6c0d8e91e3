/*
 * Field names (src/http/fields.c, include/gatehouse/fields.h): the word
 * compare that finds the Authorization field (gh_field_is_authorization)
 * says what gh_field_name_same says for every name one or two bytes away
 * from "authorization" (each byte value at each position), every mix of
 * case, and every length around 13: a spelling it missed would let a
 * second Authorization through the singleton check, one it took wrongly
 * would be read as the credential.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/fields.h>

static const char AUTH[] = "authorization";

static int reference(const char *n, size_t len)
{
    return gh_field_name_same(n, len, AUTH, 13);
}

static void check(const char *n, size_t len)
{
    if (gh_field_is_authorization(n, len) != reference(n, len))
        fail_msg("name '%.*s' (%zu bytes): word compare %d, reference %d", (int)len, n, len,
                 gh_field_is_authorization(n, len), reference(n, len));
}

static void test_one_byte_away(void **state)
{
    (void)state;
    char n[14];
    for (size_t p = 0; p < 13; p++)
        for (int c = 0; c < 256; c++) {
            memcpy(n, AUTH, 14);
            n[p] = (char)c;
            check(n, 13);
        }
}

static void test_two_bytes_away(void **state)
{
    (void)state;
    char n[14];
    for (size_t p = 0; p < 13; p++)
        for (size_t q = p + 1; q < 13; q++)
            for (int c = 0; c < 256; c++)
                for (int d = 0; d < 256; d++) {
                    memcpy(n, AUTH, 14);
                    n[p] = (char)c;
                    n[q] = (char)d;
                    check(n, 13);
                }
}

static void test_every_case_mix(void **state)
{
    (void)state;
    char n[14];
    for (unsigned m = 0; m < (1u << 13); m++) {
        for (size_t i = 0; i < 13; i++)
            n[i] = (char)((m >> i) & 1 ? AUTH[i] - 'a' + 'A' : AUTH[i]);
        assert_true(gh_field_is_authorization(n, 13));
    }
}

static void test_lengths(void **state)
{
    (void)state;
    /* Prefixes and extensions, read from a buffer long enough for the
     * word loads whatever the length said. */
    char buf[32];
    memset(buf, 'n', sizeof(buf));
    memcpy(buf, AUTH, 13);
    for (size_t len = 0; len < 20; len++)
        check(buf, len);
    memcpy(buf + 1, AUTH, 13);
    buf[0] = 'x';
    for (size_t len = 0; len < 20; len++)
        check(buf, len);
    assert_false(gh_field_is_authorization("proxy-authorization", 19));
    assert_false(gh_field_is_authorization("authorization_", 14));
    assert_false(gh_field_is_authorization("authorizatio", 12));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_byte_away),
        cmocka_unit_test(test_two_bytes_away),
        cmocka_unit_test(test_every_case_mix),
        cmocka_unit_test(test_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
