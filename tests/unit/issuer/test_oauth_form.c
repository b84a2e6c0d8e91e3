/*
 * The form body parser (src/issuer/form.c) and the JSON writer
 * (src/issuer/jw.c): decoding ('+', %XX, double encoding, UTF-8, malformed
 * escapes), empty pairs, names without '=', RFC 6749 §3.2's empty values
 * and repeats as gh_form_get reports them, the bounds, and strings with
 * odd bytes written as JSON that jansson reads back to the same bytes.
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
#include <jansson.h>

#include "issuer/form.h"
#include "issuer/jw.h"

static char scratch[GH_FORM_SCRATCH(200000)];

static int parse(const char *body, gh_form_t *f)
{
    const char *why = NULL;
    size_t n = strlen(body);
    /* The exact scratch the header promises is enough: a copy of the body
     * in a heap block of its own size, so ASan sees any read past it. */
    char *copy = malloc(n ? n : 1);
    memcpy(copy, body, n);
    int rc = gh_form_parse(copy, n, scratch, GH_FORM_SCRATCH(n), f, &why);
    free(copy);
    if (rc == 0)
        assert_null(why);
    else
        assert_non_null(why);
    return rc;
}

/* The one value of name, asserting it is there once. */
static const char *one(const gh_form_t *f, const char *name)
{
    const gh_form_pair_t *p;
    assert_int_equal(gh_form_get(f, name, &p), 1);
    return p->value;
}

static void test_basic_pairs(void **state)
{
    (void)state;
    gh_form_t f;
    assert_int_equal(parse("grant_type=client_credentials&scope=a+b", &f), 0);
    assert_int_equal(f.n, 2);
    assert_string_equal(one(&f, "grant_type"), "client_credentials");
    assert_string_equal(one(&f, "scope"), "a b");
    assert_int_equal(gh_form_get(&f, "audience", NULL), 0);
    /* Names are exact: no case folding. */
    assert_int_equal(gh_form_get(&f, "Scope", NULL), 0);
}

static void test_decoding(void **state)
{
    (void)state;
    gh_form_t f;
    /* %2B is a literal '+', '+' a space; %26 and %3D inside a value do not
     * split it; %2541 decodes once, to "%41". */
    assert_int_equal(parse("a=%2B+%2b&b=x%26y%3Dz&c=%2541&d%5F=1&e=%C3%A9%E2%82%AC", &f), 0);
    assert_string_equal(one(&f, "a"), "+ +");
    assert_string_equal(one(&f, "b"), "x&y=z");
    assert_string_equal(one(&f, "c"), "%41");
    assert_string_equal(one(&f, "d_"), "1");
    assert_string_equal(one(&f, "e"), "\xc3\xa9\xe2\x82\xac");
    /* A '=' in a value is the value's (the first one splits). */
    assert_int_equal(parse("a==b=", &f), 0);
    assert_string_equal(one(&f, "a"), "=b=");
    /* A decoded NUL is kept with its length: the caller refuses it. */
    assert_int_equal(parse("a=x%00y", &f), 0);
    assert_int_equal(f.pairs[0].value_len, 3);
    assert_memory_equal(f.pairs[0].value, "x\0y", 3);
    /* Overlong and invalid UTF-8 are bytes here, judged by the caller. */
    assert_int_equal(parse("a=%C0%AF%FF", &f), 0);
    assert_int_equal(f.pairs[0].value_len, 3);
}

static void test_malformed_escapes(void **state)
{
    (void)state;
    gh_form_t f;
    static const char *const bad[] = {
        "a=%",
        "a=%4",
        "a=%G1",
        "a=%1G",
        "a=x%",
        "%=1",
        "a%=1",
        "a=%%41",
        "a=%-1",
        "a=% 41",
        "a=%+41",
        "a=%4%",
        "a=ok&b=%zz",
        "a=%\x00"
        "1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i], &f);
        if (rc != -EINVAL)
            fail_msg("\"%s\" gave %d", bad[i], rc);
    }
}

static void test_empty_pairs_and_values(void **state)
{
    (void)state;
    gh_form_t f;
    /* Empty pairs are skipped; a name without '=' and a name with '=' but
     * no value are pairs whose value is empty: omitted (RFC 6749 §3.2). */
    assert_int_equal(parse("&&a=1&&b&c=&&", &f), 0);
    assert_int_equal(f.n, 3);
    assert_string_equal(one(&f, "a"), "1");
    assert_int_equal(gh_form_get(&f, "b", NULL), 0);
    assert_int_equal(gh_form_get(&f, "c", NULL), 0);
    assert_int_equal(parse("", &f), 0);
    assert_int_equal(f.n, 0);
    assert_int_equal(parse("&", &f), 0);
    assert_int_equal(f.n, 0);
    /* An empty name is a pair like any other (and nobody's parameter). */
    assert_int_equal(parse("=x", &f), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.pairs[0].name_len, 0);
    assert_string_equal(f.pairs[0].value, "x");
}

static void test_repeats(void **state)
{
    (void)state;
    gh_form_t f;
    const gh_form_pair_t *p;
    assert_int_equal(parse("scope=a&scope=b", &f), 0);
    assert_int_equal(gh_form_get(&f, "scope", &p), 2);
    assert_string_equal(p->value, "a");
    /* Repeated under another spelling of the same name. */
    assert_int_equal(parse("scope=a&sc%6Fpe=b", &f), 0);
    assert_int_equal(gh_form_get(&f, "scope", NULL), 2);
    /* An empty repeat is omitted, so it does not count. */
    assert_int_equal(parse("scope=&scope=b&scope", &f), 0);
    assert_int_equal(gh_form_get(&f, "scope", &p), 1);
    assert_string_equal(p->value, "b");
}

static void test_bounds(void **state)
{
    (void)state;
    gh_form_t f;
    char *b = malloc(200000);
    /* GH_FORM_MAX_PAIRS pairs pass, one more does not; empty pairs are free. */
    size_t o = 0;
    for (int i = 0; i < GH_FORM_MAX_PAIRS; i++)
        o += (size_t)sprintf(b + o, "p%d=1&&", i);
    b[o] = '\0';
    assert_int_equal(parse(b, &f), 0);
    assert_int_equal(f.n, GH_FORM_MAX_PAIRS);
    strcpy(b + o, "x");
    assert_int_equal(parse(b, &f), -E2BIG);
    /* Pairs without values count too. */
    o = 0;
    for (int i = 0; i <= GH_FORM_MAX_PAIRS; i++)
        b[o++] = 'a', b[o++] = '&';
    b[o] = '\0';
    assert_int_equal(parse(b, &f), -E2BIG);
    /* A huge count of '&' alone is nothing. */
    memset(b, '&', 199999);
    b[199999] = '\0';
    assert_int_equal(parse(b, &f), 0);
    assert_int_equal(f.n, 0);
    /* Name and value bounds apply to decoded bytes. */
    memset(b, 'n', GH_FORM_MAX_NAME);
    strcpy(b + GH_FORM_MAX_NAME, "=1");
    assert_int_equal(parse(b, &f), 0);
    memset(b, 'n', GH_FORM_MAX_NAME + 1);
    strcpy(b + GH_FORM_MAX_NAME + 1, "=1");
    assert_int_equal(parse(b, &f), -E2BIG);
    o = (size_t)sprintf(b, "v=");
    for (int i = 0; i < GH_FORM_MAX_VALUE; i++)
        o += (size_t)sprintf(b + o, "%%41");
    assert_int_equal(parse(b, &f), 0);
    assert_int_equal(f.pairs[0].value_len, GH_FORM_MAX_VALUE);
    strcpy(b + o, "A");
    assert_int_equal(parse(b, &f), -E2BIG);
    free(b);
    /* Too little scratch is refused, not overrun. */
    const char *why;
    assert_int_equal(gh_form_parse("a=1", 3, scratch, 3, &f, &why), -E2BIG);
}

/* The scratch bound holds for every shape: each body of up to 6 bytes
 * from a small alphabet decodes into exactly GH_FORM_SCRATCH(len) bytes
 * of a heap block (ASan catches one byte more). */
static void test_scratch_bound_exhaustive(void **state)
{
    (void)state;
    static const char alpha[] = "a=&%4+";
    const size_t na = sizeof(alpha) - 1;
    char body[8];
    gh_form_t f;
    const char *why;
    for (size_t len = 0; len <= 6; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= na;
        for (size_t k = 0; k < total; k++) {
            size_t x = k;
            for (size_t i = 0; i < len; i++, x /= na)
                body[i] = alpha[x % na];
            char *s = malloc(GH_FORM_SCRATCH(len));
            int rc = gh_form_parse(body, len, s, GH_FORM_SCRATCH(len), &f, &why);
            assert_true(rc == 0 || rc == -EINVAL);
            for (size_t i = 0; rc == 0 && i < f.n; i++) {
                assert_int_equal(strlen(f.pairs[i].name), f.pairs[i].name_len);
                assert_int_equal(strlen(f.pairs[i].value), f.pairs[i].value_len);
            }
            free(s);
        }
    }
}

/* ---- the JSON writer ---- */

static void roundtrip(const char *s, size_t n)
{
    char buf[4096];
    gh_jw_t w;
    gh_jw_init(&w, buf, sizeof(buf));
    gh_jw_lit(&w, "[");
    gh_jw_str(&w, s, n);
    gh_jw_lit(&w, "]");
    long l = gh_jw_finish(&w);
    assert_true(l > 0);
    json_error_t e;
    json_t *v = json_loadb(buf, (size_t)l, JSON_ALLOW_NUL, &e);
    if (v == NULL)
        fail_msg("jansson refused %s: %s", buf, e.text);
    json_t *str = json_array_get(v, 0);
    assert_int_equal(json_string_length(str), n);
    assert_memory_equal(json_string_value(str), s, n);
    json_decref(v);
}

static void test_jw_strings(void **state)
{
    (void)state;
    char buf[64];
    gh_jw_t w;
    gh_jw_init(&w, buf, sizeof(buf));
    gh_jw_str(&w, "a\"b\\c\n\x01\x7f/\xc3\xa9", 11);
    assert_int_equal(gh_jw_finish(&w), 21);
    assert_string_equal(buf, "\"a\\\"b\\\\c\\n\\u0001\x7f/\xc3\xa9\"");
    /* Every byte below 0x80 alone, and together with NUL. */
    for (int c = 0; c < 0x80; c++) {
        char s[3] = {'x', (char)c, 'y'};
        roundtrip(s, 3);
    }
    roundtrip("\0\0", 2);
    roundtrip("\xf0\x9f\x98\x80 \xe2\x80\xa8 \xef\xbf\xbf", 12);
    /* Not UTF-8: refused, never written. */
    static const char *const bad[] = {
        "\x80",         "\xc0\xaf",         "\xc1\xbf",         "\xe0\x80\xaf",
        "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",
        "\xc3",         "\xe2\x82",         "a\xc3(",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gh_jw_init(&w, buf, sizeof(buf));
        gh_jw_cstr(&w, bad[i]);
        assert_int_equal(gh_jw_finish(&w), -EILSEQ);
    }
}

static void test_jw_room_and_ints(void **state)
{
    (void)state;
    char buf[8];
    gh_jw_t w;
    gh_jw_init(&w, buf, sizeof(buf));
    gh_jw_lit(&w, "1234567"); /* 7 + NUL fits */
    assert_int_equal(gh_jw_finish(&w), 7);
    gh_jw_init(&w, buf, sizeof(buf));
    gh_jw_lit(&w, "12345678");
    assert_int_equal(gh_jw_finish(&w), -ENOSPC);
    char big[64];
    gh_jw_init(&w, big, sizeof(big));
    gh_jw_int(&w, INT64_MIN);
    gh_jw_lit(&w, " ");
    gh_jw_int(&w, 0);
    gh_jw_lit(&w, " ");
    gh_jw_int(&w, INT64_MAX);
    assert_true(gh_jw_finish(&w) > 0);
    assert_string_equal(big, "-9223372036854775808 0 9223372036854775807");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_pairs),
        cmocka_unit_test(test_decoding),
        cmocka_unit_test(test_malformed_escapes),
        cmocka_unit_test(test_empty_pairs_and_values),
        cmocka_unit_test(test_repeats),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_scratch_bound_exhaustive),
        cmocka_unit_test(test_jw_strings),
        cmocka_unit_test(test_jw_room_and_ints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
