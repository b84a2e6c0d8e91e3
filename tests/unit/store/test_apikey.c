/*
 * src/store/apikey.c: the key format (made keys parse back, every near
 * miss is not native), what a presented key may hold, the lookup id of
 * imported keys, and the checks of consumer, plan, description, scopes.
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
#include <openssl/sha.h>

#include <gatehouse/apikey.h>

static void test_generated_keys_are_native_and_distinct(void **state)
{
    (void)state;
    char a[GH_APIKEY_LEN + 1], b[GH_APIKEY_LEN + 1];
    unsigned seen_chars[256] = {0};
    for (int i = 0; i < 200; i++) {
        assert_int_equal(gh_apikey_generate(a), 0);
        assert_int_equal(strlen(a), GH_APIKEY_LEN);
        assert_int_equal(GH_APIKEY_LEN, 59);
        assert_memory_equal(a, "gh_", 3);
        assert_true(gh_apikey_is_native(a, strlen(a)));
        assert_null(gh_apikey_check(a, strlen(a)));
        for (size_t k = 16; k < GH_APIKEY_LEN; k++)
            seen_chars[(unsigned char)a[k]]++;
        gh_apikey_presented_t p;
        assert_int_equal(gh_apikey_present(a, strlen(a), &p, NULL), 0);
        assert_memory_equal(p.id, a + 3, 12);
        assert_true(gh_apikey_id_valid(p.id));
        uint8_t md[32];
        SHA256((const unsigned char *)a, strlen(a), md);
        assert_memory_equal(p.hash, md, 32);
        assert_int_equal(gh_apikey_generate(b), 0);
        assert_string_not_equal(a, b);
        assert_memory_not_equal(a + 3, b + 3, 12);
    }
    /* 200 * 43 secret characters: every base62 character shows up (the
     * chance that one of 62 never does is about 62 * e^-139). */
    for (const char *c = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"; *c; c++)
        assert_true(seen_chars[(unsigned char)*c] > 0);
}

static void test_near_misses_are_not_native(void **state)
{
    (void)state;
    char k[GH_APIKEY_LEN + 1];
    assert_int_equal(gh_apikey_generate(k), 0);
    char m[GH_APIKEY_LEN + 2];
    /* every single-byte change of the prefix, id and separator */
    const char *swaps[] = {"G", "x", "-", "_", "1", "A", "8", "0"};
    for (size_t pos = 0; pos < 16; pos++) {
        for (size_t s = 0; s < sizeof(swaps) / sizeof(swaps[0]); s++) {
            memcpy(m, k, sizeof(k));
            if (m[pos] == swaps[s][0])
                continue;
            m[pos] = swaps[s][0];
            int legal_id_char =
                pos >= 3 && pos < 15 &&
                ((m[pos] >= 'a' && m[pos] <= 'z') || (m[pos] >= '2' && m[pos] <= '7'));
            assert_int_equal(gh_apikey_is_native(m, GH_APIKEY_LEN), legal_id_char);
        }
    }
    /* truncated, extended, a secret with a non-base62 byte */
    assert_false(gh_apikey_is_native(k, GH_APIKEY_LEN - 1));
    memcpy(m, k, sizeof(k));
    m[GH_APIKEY_LEN] = 'a';
    m[GH_APIKEY_LEN + 1] = '\0';
    assert_false(gh_apikey_is_native(m, GH_APIKEY_LEN + 1));
    memcpy(m, k, sizeof(k));
    m[40] = '-';
    assert_false(gh_apikey_is_native(m, GH_APIKEY_LEN));
    m[40] = '_';
    assert_false(gh_apikey_is_native(m, GH_APIKEY_LEN));
}

static void test_presented_key_bytes(void **state)
{
    (void)state;
    gh_apikey_presented_t p;
    const char *why = NULL;
    /* AWS's bounds: 20 to 128 characters */
    char buf[200];
    memset(buf, 'a', sizeof(buf));
    assert_int_equal(gh_apikey_present(buf, 19, &p, &why), -EINVAL);
    assert_string_equal(why, "shorter than 20 characters");
    assert_int_equal(gh_apikey_present(buf, 20, &p, &why), 0);
    assert_int_equal(gh_apikey_present(buf, 128, &p, &why), 0);
    assert_int_equal(gh_apikey_present(buf, 129, &p, &why), -EINVAL);
    assert_string_equal(why, "longer than 128 characters");
    assert_int_equal(gh_apikey_present(buf, 0, &p, &why), -EINVAL);
    assert_string_equal(why, "empty");
    assert_int_equal(gh_apikey_present(NULL, 0, &p, &why), -EINVAL);
    /* a space, tab, CR, LF, NUL, DEL, a C1 byte or UTF-8 anywhere: refused,
     * never trimmed or cut */
    const unsigned char bad[] = {' ', '\t', '\r', '\n', '\0', 0x7f, 0x85, 0xc3, 0x01, 0x1b};
    for (size_t i = 0; i < sizeof(bad); i++) {
        for (size_t pos = 0; pos < 30; pos += 29) {
            memset(buf, 'a', 30);
            buf[pos] = (char)bad[i];
            why = NULL;
            assert_int_equal(gh_apikey_present(buf, 30, &p, &why), -EINVAL);
            assert_string_equal(why, "holds a space, control or non-ASCII byte");
        }
    }
    /* a NUL in a short key is still the byte's fault, not the length's */
    memcpy(buf, "abc\0def", 7);
    assert_int_equal(gh_apikey_present(buf, 7, &p, &why), -EINVAL);
    assert_string_equal(why, "holds a space, control or non-ASCII byte");
    /* every printable ASCII character is allowed (AWS keys are opaque) */
    for (int c = 0x21; c <= 0x7e; c++) {
        memset(buf, 'a', 30);
        buf[10] = (char)c;
        assert_null(gh_apikey_check(buf, 30));
    }
}

static void test_imported_key_id_is_derived(void **state)
{
    (void)state;
    const char *aws = "apikey1234abcdefghij0123456789";
    gh_apikey_presented_t p, q;
    assert_int_equal(gh_apikey_present(aws, strlen(aws), &p, NULL), 0);
    assert_true(gh_apikey_id_valid(p.id));
    /* the id is SHA-256("gatehouse api key id" NUL key), 60 bits in base32 */
    unsigned char in[200], md[32];
    memcpy(in, "gatehouse api key id", 21);
    memcpy(in + 21, aws, strlen(aws));
    SHA256(in, 21 + strlen(aws), md);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | md[i];
    char want[13];
    for (int i = 0; i < 12; i++)
        want[i] = "abcdefghijklmnopqrstuvwxyz234567"[(v >> (59 - 5 * i)) & 31];
    want[12] = '\0';
    assert_string_equal(p.id, want);
    /* and it is not a prefix of the stored hash */
    SHA256((const unsigned char *)aws, strlen(aws), md);
    assert_memory_equal(p.hash, md, 32);
    uint64_t hv = 0;
    for (int i = 0; i < 8; i++)
        hv = hv << 8 | md[i];
    assert_true((hv >> 4) != (v >> 4));
    /* stable, and different for a different key */
    assert_int_equal(gh_apikey_present(aws, strlen(aws), &q, NULL), 0);
    assert_string_equal(p.id, q.id);
    assert_int_equal(gh_apikey_present("apikey1234abcdefghij0123456788", 30, &q, NULL), 0);
    assert_string_not_equal(p.id, q.id);
    /* A key with the wrong prefix is an imported key: its id is derived,
     * not read from it, so "GH_" + a victim's id finds nothing of theirs. */
    char k[GH_APIKEY_LEN + 1];
    assert_int_equal(gh_apikey_generate(k), 0);
    k[0] = 'G';
    k[1] = 'H';
    assert_int_equal(gh_apikey_present(k, GH_APIKEY_LEN, &q, NULL), 0);
    assert_memory_not_equal(q.id, k + 3, 12);
}

static void test_id_valid(void **state)
{
    (void)state;
    assert_true(gh_apikey_id_valid("abcdefgh2345"));
    assert_false(gh_apikey_id_valid("abcdefgh234"));
    assert_false(gh_apikey_id_valid("abcdefgh23456"));
    assert_false(gh_apikey_id_valid("Abcdefgh2345"));
    assert_false(gh_apikey_id_valid("abcdefgh2341")); /* 1 is not base32 */
    assert_false(gh_apikey_id_valid("abcdefgh234 "));
    assert_false(gh_apikey_id_valid(""));
    assert_false(gh_apikey_id_valid(NULL));
    assert_false(gh_apikey_id_valid("../../../etc"));
}

static void test_consumer_plan_description(void **state)
{
    (void)state;
    assert_null(gh_apikey_check_consumer("alice"));
    assert_null(gh_apikey_check_consumer("Team Orders (prod)"));
    assert_null(gh_apikey_check_consumer("a=b"));
    assert_non_null(gh_apikey_check_consumer(""));
    assert_non_null(gh_apikey_check_consumer(NULL));
    assert_non_null(gh_apikey_check_consumer(" alice"));
    assert_non_null(gh_apikey_check_consumer("alice "));
    assert_non_null(gh_apikey_check_consumer("ali\tce"));
    assert_non_null(gh_apikey_check_consumer("ali\nce"));
    assert_non_null(gh_apikey_check_consumer("caf\xc3\xa9"));
    const char *inj[] = {"=HYPERLINK(\"http://x\")", "+1", "-1", "@SUM(A1)", "\tx", "\rx"};
    for (size_t i = 0; i < sizeof(inj) / sizeof(inj[0]); i++) {
        assert_non_null(gh_apikey_check_consumer(inj[i]));
        assert_non_null(gh_apikey_check_description(inj[i]));
    }
    char longer[300];
    memset(longer, 'x', sizeof(longer));
    longer[256] = '\0';
    assert_null(gh_apikey_check_consumer(longer));
    longer[256] = 'x';
    longer[257] = '\0';
    assert_non_null(gh_apikey_check_consumer(longer));

    assert_null(gh_apikey_check_plan("gold"));
    assert_null(gh_apikey_check_plan("free-tier_v2.1"));
    assert_non_null(gh_apikey_check_plan("-gold"));
    assert_non_null(gh_apikey_check_plan(".gold"));
    assert_non_null(gh_apikey_check_plan("gold plan"));
    assert_non_null(gh_apikey_check_plan("gold/x"));
    assert_non_null(gh_apikey_check_plan(""));

    assert_null(gh_apikey_check_description(NULL));
    assert_null(gh_apikey_check_description(""));
    assert_null(gh_apikey_check_description("Bob's key, for \"orders\" \xe2\x9c\x93"));
    assert_non_null(gh_apikey_check_description("line\nbreak"));
    assert_non_null(gh_apikey_check_description("esc \x1b[8m hidden"));
    assert_non_null(gh_apikey_check_description("c1 \xc2\x9b csi"));
    assert_non_null(gh_apikey_check_description("bad \xff utf8"));
    assert_non_null(gh_apikey_check_description("overlong \xc0\xaf"));
    assert_non_null(gh_apikey_check_description("surrogate \xed\xa0\x80"));
    assert_non_null(gh_apikey_check_description("cut \xe2\x9c"));
}

static void test_scopes(void **state)
{
    (void)state;
    const char *why = NULL;
    char *s = gh_apikey_scopes_normalize("a,b c,,  d", &why);
    assert_non_null(s);
    assert_string_equal(s, "a b c d");
    free(s);
    s = gh_apikey_scopes_normalize(NULL, &why);
    assert_string_equal(s, "");
    free(s);
    s = gh_apikey_scopes_normalize(" , ", &why);
    assert_string_equal(s, "");
    free(s);
    assert_null(gh_apikey_scopes_normalize("a,b,a", &why));
    assert_string_equal(why, "a scope is listed twice");
    /* a prefix of another scope is not the same scope */
    s = gh_apikey_scopes_normalize("orders orders.read", &why);
    assert_string_equal(s, "orders orders.read");
    free(s);
    assert_null(gh_apikey_scopes_normalize("a\tb", &why));
    assert_null(gh_apikey_scopes_normalize("a\"b", &why));
    assert_null(gh_apikey_scopes_normalize("a\\b", &why));
    char many[64 * 4 + 8] = "";
    for (int i = 0; i < 65; i++)
        sprintf(many + strlen(many), "%s%c%c", i ? "," : "", 'a' + i / 26, 'a' + i % 26);
    assert_null(gh_apikey_scopes_normalize(many, &why));
    assert_string_equal(why, "more than 64 scopes");
    char big[200];
    memset(big, 'x', 129);
    big[129] = '\0';
    assert_null(gh_apikey_scopes_normalize(big, &why));
    big[128] = '\0';
    s = gh_apikey_scopes_normalize(big, &why);
    assert_non_null(s);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_keys_are_native_and_distinct),
        cmocka_unit_test(test_near_misses_are_not_native),
        cmocka_unit_test(test_presented_key_bytes),
        cmocka_unit_test(test_imported_key_id_is_derived),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_consumer_plan_description),
        cmocka_unit_test(test_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
