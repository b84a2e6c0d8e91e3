/* src/http/pairs.c: query and cookie pair iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/pairs.h>

typedef struct {
    const char *name, *value;
    int has_value;
} want_t;

static void check(const char *s, char sep, const want_t *want, size_t n)
{
    gh_pairs_t it;
    gh_pair_t pr;
    size_t i = 0;
    gh_pairs_init(&it, s, strlen(s), sep);
    while (gh_pairs_next(&it, &pr)) {
        assert_true(i < n);
        assert_int_equal(pr.name_len, strlen(want[i].name));
        assert_memory_equal(pr.name, want[i].name, pr.name_len);
        assert_int_equal(pr.value_len, strlen(want[i].value));
        assert_memory_equal(pr.value, want[i].value, pr.value_len);
        assert_int_equal(pr.has_value, want[i].has_value);
        i++;
    }
    assert_int_equal(i, n);
}

static void test_query(void **state)
{
    (void)state;
    const want_t w[] = {{"a", "1", 1}, {"b", "", 0}, {"c", "", 1}, {"d", "x=y", 1}};
    check("a=1&b&c=&&d=x=y&", '&', w, 4);
}

static void test_cookie_skips_spaces(void **state)
{
    (void)state;
    const want_t w[] = {{"session", "abc", 1}, {"theme", "dark", 1}, {"x", "", 0}};
    check("session=abc;  theme=dark;;x", ';', w, 3);
}

static void test_empty_and_null(void **state)
{
    (void)state;
    check("", '&', NULL, 0);
    check("&&&", '&', NULL, 0);
    gh_pairs_t it;
    gh_pair_t pr;
    gh_pairs_init(&it, NULL, 0, '&');
    assert_int_equal(gh_pairs_next(&it, &pr), 0);
}

static void test_name_is(void **state)
{
    (void)state;
    gh_pairs_t it;
    gh_pair_t pr;
    gh_pairs_init(&it, "token=1", 7, '&');
    assert_int_equal(gh_pairs_next(&it, &pr), 1);
    assert_true(gh_pair_name_is(&pr, "token", 5));
    assert_false(gh_pair_name_is(&pr, "toke", 4));
    assert_false(gh_pair_name_is(&pr, "tokens", 6));
}

/* Every byte value escaped as %XX (both hex cases) and as itself reads as
 * that byte; '+' reads as a space; a '%' without two hex digits stands for
 * itself; a decoded name is neither a prefix nor an extension of another. */
static void test_name_decoded_is(void **state)
{
    (void)state;
    static const char hexu[] = "0123456789ABCDEF", hexl[] = "0123456789abcdef";
    for (int c = 0; c < 256; c++) {
        char raw[8] = {'a', '%', hexu[c >> 4], hexl[c & 15], 'b', '='};
        char want[3] = {'a', (char)c, 'b'};
        gh_pairs_t it;
        gh_pair_t pr;
        gh_pairs_init(&it, raw, 6, '&');
        assert_int_equal(gh_pairs_next(&it, &pr), 1);
        if (c == 0) { /* a NUL ends the name, as PHP reads it */
            assert_true(gh_pair_name_decoded_is(&pr, "a", 1));
            continue;
        }
        assert_true(gh_pair_name_decoded_is(&pr, want, 3));
        assert_false(gh_pair_name_decoded_is(&pr, want, 2));
        assert_false(gh_pair_name_is(&pr, want, 3));
    }
    static const struct {
        const char *raw, *name;
        int is;
    } cases[] = {
        {"access%5Ftoken=x", "access_token", 1},
        {"a+b=x", "a b", 1},
        {"a%2=x", "a%2", 1},
        {"a%zz=x", "a%zz", 1},
        {"a%=x", "a%", 1},
        {"%25=x", "%", 1},
        {"%2525=x", "%25", 1},
        {"token=x", "tokens", 0},
        {"tokens=x", "token", 0},
        {"a%2Bb=x", "a+b", 1},
        {"a%2Bb=x", "a b", 0},
        {"ACCESS_TOKEN=x", "access_token", 1},
        {"Access%5ftoken=x", "access_token", 1},
        /* PHP's names: ' ', '.', '[' become '_', leading spaces go, "a[]"
         * and "a[k]" are the array a, a NUL ends the name */
        {"access.token=x", "access_token", 1},
        {"access+token=x", "access_token", 1},
        {"access%20token=x", "access_token", 1},
        {"access[token=x", "access_token", 1},
        {"access_token[]=x", "access_token", 1},
        {"access_token[k]=x", "access_token", 1},
        {"+access_token=x", "access_token", 1},
        {"access_token%00x=x", "access_token", 1},
        {"[]=x", "_]", 1},
        {"access_tokens[]=x", "access_token", 0},
        {"xaccess_token=x", "access_token", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gh_pairs_t it;
        gh_pair_t pr;
        gh_pairs_init(&it, cases[i].raw, strlen(cases[i].raw), '&');
        assert_int_equal(gh_pairs_next(&it, &pr), 1);
        assert_int_equal(gh_pair_name_decoded_is(&pr, cases[i].name, strlen(cases[i].name)),
                         cases[i].is);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query),           cmocka_unit_test(test_cookie_skips_spaces),
        cmocka_unit_test(test_empty_and_null),  cmocka_unit_test(test_name_is),
        cmocka_unit_test(test_name_decoded_is),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
