/*
 * IP addresses and CIDR prefixes (src/core/cidr.c), checked against a
 * bit-by-bit reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/core/cidr.c"

static void test_parse_ok(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        unsigned bits;
    } ok[] = {
        {"10.0.0.0/8", 104}, {"127.0.0.1", 128},    {"0.0.0.0/0", 96},   {"::1", 128},
        {"::/0", 0},         {"2001:db8::/32", 32}, {"1.2.3.4/32", 128},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        gh_cidr_t c;
        const char *why = gh_cidr_parse(ok[i].s, &c);
        if (why != NULL || c.bits != ok[i].bits)
            fail_msg("%s: %s, bits %u", ok[i].s, why ? why : "ok", c.bits);
    }
}

static void test_parse_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",           "10.0.0.0/",   "10.0.0.0/33", "10.0.0.1/8", "::1/129", "10.0.0.0/-1",
        "10.0.0/8",   "a.b.c.d",     "10.0.0.0/8x", "::1/0128",   "[::1]",   "1.2.3.4:80",
        "fe80::1%lo", "10.0.0.0/ 8", "300.0.0.0/8",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gh_cidr_t c;
        if (gh_cidr_parse(bad[i], &c) == NULL)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static int ref_contains(const gh_cidr_t *c, const uint8_t ip[16])
{
    for (unsigned i = 0; i < c->bits; i++) {
        unsigned m = 0x80u >> (i % 8);
        if ((c->addr[i / 8] & m) != (ip[i / 8] & m))
            return 0;
    }
    return 1;
}

/* Every prefix length of an IPv4 and an IPv6 network, against addresses
 * that differ from it in each single bit. */
static void test_contains(void **state)
{
    (void)state;
    static const char *const nets[] = {"203.0.113.77", "2001:db8:85a3::8a2e:370:7334"};
    for (size_t k = 0; k < 2; k++) {
        uint8_t base[16];
        assert_int_equal(gh_ip_parse(nets[k], strlen(nets[k]), base), 0);
        unsigned lo = k == 0 ? 96 : 0;
        for (unsigned bits = lo; bits <= 128; bits++) {
            gh_cidr_t c;
            memcpy(c.addr, base, 16);
            c.bits = (uint8_t)bits;
            for (unsigned i = bits; i < 128; i++)
                c.addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
            for (unsigned flip = 0; flip <= 128; flip++) {
                uint8_t ip[16];
                memcpy(ip, base, 16);
                if (flip < 128)
                    ip[flip / 8] ^= (uint8_t)(0x80u >> (flip % 8));
                if (gh_cidr_contains(&c, ip) != ref_contains(&c, ip))
                    fail_msg("%s/%u flip %u", nets[k], bits, flip);
            }
        }
    }
}

static void test_mapped(void **state)
{
    (void)state;
    gh_cidr_t c;
    uint8_t a[16], b[16];
    assert_null(gh_cidr_parse("127.0.0.0/8", &c));
    assert_int_equal(gh_ip_parse("127.0.0.1", 9, a), 0);
    assert_int_equal(gh_ip_parse("::ffff:127.0.0.1", 16, b), 0);
    assert_memory_equal(a, b, 16);
    assert_true(gh_cidr_list_contains(&c, 1, b));
    assert_int_equal(gh_ip_parse("::1", 3, b), 0);
    assert_false(gh_cidr_list_contains(&c, 1, b));
    assert_int_equal(gh_ip_parse("unknown", 7, b), -1);
    assert_int_equal(gh_ip_parse("", 0, b), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_mapped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
