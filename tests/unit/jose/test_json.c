/* The strict JSON reader of JOSE headers and JWT claims (src/jose/json.c):
 * the cases it must refuse as jansson refuses them, its records, and a
 * differential run against jansson over generated and mutated documents. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json_diff.h"

/* The reader's verdict on a NUL-terminated text: records, or -1. */
static long index_of(const char *text)
{
    size_t len = strlen(text);
    char *copy = strdup(text);
    gh_jose_json_rec_t *recs = malloc(GH_JOSE_JSON_RECS(len) * sizeof(*recs));
    assert_non_null(copy);
    assert_non_null(recs);
    long n = gh_jose_json_index(copy, len, recs);
    free(copy);
    free(recs);
    return n;
}

/* Both the reader and jansson refuse text, or both accept it (and agree). */
static void agree(const char *text, int accepted)
{
    const char *why = json_diff(text, strlen(text));
    if (why != NULL)
        fail_msg("%s: %s", text, why);
    if ((index_of(text) >= 0) != accepted)
        fail_msg("%s: expected %s", text, accepted ? "accepted" : "refused");
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "\"a\"",
        "1",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,\"a\":1}",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{'a':1}",
        "{a:1}",
        "{\"a\":1 \"b\":2}",
        /* duplicates, also after decoding escapes and in nested objects */
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"x\":{\"k\":1,\"k\":1}}",
        "{\"x\":[{\"k\":1,\"\\u006b\":1}]}",
        /* strings */
        "{\"a\":\"\\u0000\"}",
        "{\"a\\u0000\":1}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\\ud800\"}",
        "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\":\"\\x41\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"nl\nhere\"}",
        "{\"a\":\"\xc0\x80\"}",         /* overlong NUL */
        "{\"a\":\"\xe0\x80\xaf\"}",     /* overlong '/' */
        "{\"a\":\"\xed\xa0\x80\"}",     /* a surrogate in UTF-8 */
        "{\"a\":\"\xf4\x90\x80\x80\"}", /* past U+10FFFF */
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\x80\"}",
        "{\"a\":\"\xc3\"}",
        /* numbers */
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":1e}",
        "{\"a\":+1}",
        "{\"a\":0x10}",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
        "{\"a\":9223372036854775808}",
        "{\"a\":-9223372036854775809}",
        "{\"a\":99999999999999999999999}",
        "{\"a\":1e309}",
        "{\"a\":-1e309}",
        /* literals and whitespace */
        "{\"a\":tru}",
        "{\"a\":truex}",
        "{\"a\":True}",
        "{\"a\":nul}",
        "{\"a\":1,\f\"b\":2}",
        "{\"a\":1\v}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        agree(bad[i], 0);
    /* NUL bytes, in a string and after the object; and after a number or a
     * literal, where jansson loses them (json_diff.h) and the reader refuses. */
    static const char nul_num[] = "{\"a\":1\0,\"b\":0.5\0,\"c\":true\0}";
    assert_null(json_diff(nul_num, sizeof(nul_num) - 1));
    char copy_num[sizeof(nul_num)];
    gh_jose_json_rec_t recs_num[GH_JOSE_JSON_RECS(sizeof(nul_num))];
    memcpy(copy_num, nul_num, sizeof(nul_num));
    assert_int_equal(gh_jose_json_index(copy_num, sizeof(nul_num) - 1, recs_num), -1);
    static const char nul_in[] = "{\"a\":\"x\0y\"}", nul_after[] = "{\"a\":1}\0";
    assert_null(json_diff(nul_in, sizeof(nul_in) - 1));
    assert_null(json_diff(nul_after, sizeof(nul_after) - 1));
    char copy[sizeof(nul_after)];
    gh_jose_json_rec_t recs[GH_JOSE_JSON_RECS(sizeof(nul_after))];
    memcpy(copy, nul_after, sizeof(nul_after));
    assert_int_equal(gh_jose_json_index(copy, sizeof(nul_after) - 1, recs), -1);
}

static void test_acceptances(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{}",
        " \t\r\n{ \"a\" : 1 , \"b\" :[ ] ,\"c\":{ } } \n",
        "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
        "{\"a\":\"\\u00e9\\u20ac\\ud83d\\ude00\"}",
        "{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"}",
        "{\"\":0}",
        "{\"a\":9223372036854775807,\"b\":-9223372036854775808,\"c\":-0}",
        "{\"a\":1e308,\"b\":1e-400,\"c\":-1.5E+3,\"d\":0.0}",
        "{\"a\":true,\"b\":false,\"c\":null}",
        "{\"a\":{\"a\":1},\"b\":[{\"a\":1},{\"a\":2}]}",
        "{\"A\":1,\"a\":2}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        agree(good[i], 1);
}

/* Depth: jansson allows 2048 levels, the reader GH_JOSE_JSON_MAX_DEPTH. */
static void test_depth(void **state)
{
    (void)state;
    char doc[512];
    for (int depth = GH_JOSE_JSON_MAX_DEPTH - 1; depth <= GH_JOSE_JSON_MAX_DEPTH + 1; depth++) {
        size_t o = 0;
        o += (size_t)snprintf(doc + o, sizeof(doc) - o, "{\"a\":");
        for (int i = 1; i < depth; i++)
            doc[o++] = '[';
        doc[o++] = '1';
        for (int i = 1; i < depth; i++)
            doc[o++] = ']';
        doc[o++] = '}';
        doc[o] = '\0';
        assert_int_equal(index_of(doc) >= 0, depth <= GH_JOSE_JSON_MAX_DEPTH);
        assert_null(json_diff(doc, o));
    }
}

/* The records: the top level in order, strings decoded and terminated,
 * an array's elements after it. */
static void test_records(void **state)
{
    (void)state;
    char text[] = "{\"iss\":\"https://i\\/x\",\"aud\":[\"a\",\"b\\u00e9\",3,[\"n\"]],"
                  "\"exp\":1700000000,\"n\\u0061me\":{\"sub\":\"no\"},\"f\":1.5e1}";
    gh_jose_json_rec_t recs[GH_JOSE_JSON_RECS(sizeof(text))];
    long n = gh_jose_json_index(text, sizeof(text) - 1, recs);
    assert_int_equal(n, 9);
    const gh_jose_json_rec_t *r = gh_jose_json_get(recs, (size_t)n, "iss");
    assert_non_null(r);
    assert_int_equal(r->type, GH_JOSE_JSON_STRING);
    assert_string_equal(r->val, "https://i/x");
    r = gh_jose_json_get(recs, (size_t)n, "aud");
    assert_int_equal(r->type, GH_JOSE_JSON_ARRAY);
    assert_int_equal(r->nelem, 4);
    assert_string_equal(r[1].val, "a");
    assert_string_equal(r[2].val, "b\xc3\xa9");
    assert_int_equal(r[3].type, GH_JOSE_JSON_NUMBER);
    assert_int_equal(r[4].type, GH_JOSE_JSON_ARRAY);
    r = gh_jose_json_get(recs, (size_t)n, "exp");
    assert_true(gh_jose_json_number(r) == 1700000000.0);
    assert_int_equal(gh_jose_json_get(recs, (size_t)n, "name")->type, GH_JOSE_JSON_OBJECT);
    /* Only the top level is indexed: "sub" is nested. */
    assert_null(gh_jose_json_get(recs, (size_t)n, "sub"));
    assert_true(gh_jose_json_number(gh_jose_json_get(recs, (size_t)n, "f")) == 15.0);
}

/* An object of thousands of names takes the sorted duplicate check. */
static void test_large_objects(void **state)
{
    (void)state;
    size_t cap = 64 * 1024, o = 0;
    char *doc = malloc(cap);
    assert_non_null(doc);
    doc[o++] = '{';
    for (int i = 0; i < 3000; i++)
        o += (size_t)snprintf(doc + o, cap - o, "%s\"k%d\":%d", i ? "," : "", i, i);
    size_t open_end = o;
    doc[o++] = '}';
    doc[o] = '\0';
    assert_int_equal(index_of(doc), 3000);
    assert_null(json_diff(doc, o));
    o = open_end;
    o += (size_t)snprintf(doc + o, cap - o, ",\"k1234\":0}");
    assert_int_equal(index_of(doc), -1);
    assert_null(json_diff(doc, o));
    free(doc);
}

/* ---- generated documents ---- */

typedef struct {
    uint64_t s;
    char *buf;
    size_t len, cap;
} gen_t;

static uint32_t rnd(gen_t *g, uint32_t n)
{
    g->s ^= g->s << 13;
    g->s ^= g->s >> 7;
    g->s ^= g->s << 17;
    return (uint32_t)(g->s >> 32) % n;
}

static void emit(gen_t *g, const char *s)
{
    size_t n = strlen(s);
    if (g->len + n + 1 > g->cap) {
        g->cap = (g->len + n + 1) * 2;
        g->buf = realloc(g->buf, g->cap);
        assert_non_null(g->buf);
    }
    memcpy(g->buf + g->len, s, n);
    g->len += n;
    g->buf[g->len] = '\0';
}

static void gen_string(gen_t *g, int name)
{
    /* Few names, so that duplicates (also spelled with escapes) happen. */
    static const char *const names[] = {"a",
                                        "\\u0061",
                                        "b",
                                        "iss",
                                        "i\\u0073s",
                                        "sub",
                                        "aud",
                                        "",
                                        "exp",
                                        "\\ud83d\\ude00",
                                        "\xf0\x9f\x98\x80"};
    static const char *const parts[] = {"x",
                                        "hello",
                                        " ",
                                        "\\\"",
                                        "\\\\",
                                        "\\/",
                                        "\\n",
                                        "\\u00e9",
                                        "\\u20ac",
                                        "\\ud83d",
                                        "\\ude00",
                                        "\\u0000",
                                        "\\u0001",
                                        "\xc3\xa9",
                                        "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80",
                                        "\xc0\x80",
                                        "\xed\xa0\x80",
                                        "\xf4\x90\x80\x80",
                                        "\xff",
                                        "\x7f",
                                        "\\q",
                                        "\\u12",
                                        "\x01",
                                        "\t",
                                        "\\uD83D\\uDE00"};
    emit(g, "\"");
    if (name && rnd(g, 4) != 0) {
        emit(g, names[rnd(g, sizeof(names) / sizeof(*names))]);
    } else {
        for (uint32_t i = rnd(g, 5); i > 0; i--)
            emit(g, parts[rnd(g, rnd(g, 3) ? 9 : sizeof(parts) / sizeof(*parts))]);
    }
    emit(g, "\"");
}

static void gen_number(gen_t *g)
{
    static const char *const nums[] = {"0",
                                       "-0",
                                       "1",
                                       "1700000000",
                                       "-42",
                                       "3.25",
                                       "1e3",
                                       "2E-5",
                                       "-0.5e+10",
                                       "1e308",
                                       "1e309",
                                       "-1e309",
                                       "1e-400",
                                       "9223372036854775807",
                                       "9223372036854775808",
                                       "-9223372036854775808",
                                       "-9223372036854775809",
                                       "123456789012345678901234567890",
                                       "01",
                                       "1.",
                                       ".5",
                                       "-",
                                       "1e",
                                       "+1",
                                       "0x1",
                                       "1.5e1"};
    emit(g, nums[rnd(g, rnd(g, 2) ? 10 : sizeof(nums) / sizeof(*nums))]);
}

static void gen_value(gen_t *g, int depth);

static void gen_ws(gen_t *g)
{
    static const char *const ws[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
    emit(g, ws[rnd(g, sizeof(ws) / sizeof(*ws))]);
}

static void gen_object(gen_t *g, int depth)
{
    emit(g, "{");
    uint32_t n = rnd(g, depth < 3 ? 7 : 3);
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0)
            emit(g, ",");
        gen_ws(g);
        gen_string(g, 1);
        gen_ws(g);
        emit(g, ":");
        gen_value(g, depth + 1);
        gen_ws(g);
    }
    emit(g, "}");
}

static void gen_value(gen_t *g, int depth)
{
    gen_ws(g);
    uint32_t k = rnd(g, depth > 6 ? 4 : 7);
    if (rnd(g, 200) == 0) {
        /* Deep nesting, around the reader's limit. */
        uint32_t d = GH_JOSE_JSON_MAX_DEPTH - 3 + rnd(g, 6);
        for (uint32_t i = 0; i < d; i++)
            emit(g, "[");
        for (uint32_t i = 0; i < d; i++)
            emit(g, "]");
        return;
    }
    switch (k) {
    case 0:
        gen_string(g, 0);
        break;
    case 1:
        gen_number(g);
        break;
    case 2: {
        static const char *const lit[] = {"true", "false", "null", "tru", "nulll", "True"};
        emit(g, lit[rnd(g, rnd(g, 4) ? 3 : 6)]);
        break;
    }
    case 3:
        gen_string(g, 0);
        break;
    case 4:
    case 5:
        emit(g, "[");
        for (uint32_t i = rnd(g, 4); i > 0; i--) {
            gen_value(g, depth + 1);
            if (i > 1)
                emit(g, ",");
        }
        emit(g, "]");
        break;
    default:
        gen_object(g, depth);
        break;
    }
}

static void mutate(gen_t *g)
{
    static const char bytes[] = "{}[]:,\"\\ 0a-.e\x01\x80";
    if (g->len == 0)
        return;
    size_t at = rnd(g, (uint32_t)g->len);
    switch (rnd(g, 3)) {
    case 0: /* delete */
        memmove(g->buf + at, g->buf + at + 1, g->len - at);
        g->len--;
        break;
    case 1: /* replace */
        g->buf[at] = bytes[rnd(g, sizeof(bytes) - 1)];
        break;
    default: /* insert */
        emit(g, " ");
        memmove(g->buf + at + 1, g->buf + at, g->len - at - 1);
        g->buf[at] = bytes[rnd(g, sizeof(bytes) - 1)];
        break;
    }
}

static void test_differential(void **state)
{
    (void)state;
    /* GH_TEST_JSON_ROUNDS and GH_TEST_JSON_SEED run it longer or elsewhere. */
    const char *env = getenv("GH_TEST_JSON_ROUNDS");
    int rounds = env ? atoi(env) : 30000;
    env = getenv("GH_TEST_JSON_SEED");
    gen_t g = {env ? strtoull(env, NULL, 10) | 1 : 0x9E3779B97F4A7C15ULL, NULL, 0, 0};
    unsigned accepted = 0, refused = 0, deep = 0;
    for (int i = 0; i < rounds; i++) {
        g.len = 0;
        gen_object(&g, 0);
        for (uint32_t m = rnd(&g, 4) == 0 ? 1 + rnd(&g, 3) : 0; m > 0; m--)
            mutate(&g);
        const char *why = json_diff(g.buf, g.len);
        if (why != NULL)
            fail_msg("document %d: %s: %.*s", i, why, (int)g.len, g.buf);
        char *copy = malloc(g.len + 1);
        assert_non_null(copy);
        memcpy(copy, g.buf, g.len + 1);
        gh_jose_json_rec_t *recs = malloc(GH_JOSE_JSON_RECS(g.len) * sizeof(*recs));
        assert_non_null(recs);
        long n = gh_jose_json_index(copy, g.len, recs);
        json_error_t jerr;
        json_t *tree = json_loadb(g.buf, g.len, JSON_REJECT_DUPLICATES, &jerr);
        if (n >= 0)
            accepted++;
        else
            refused++;
        if (n < 0 && tree != NULL)
            deep++; /* json_diff checked it is only the depth */
        json_decref(tree);
        free(recs);
        free(copy);
    }
    free(g.buf);
    /* The generator must exercise both verdicts, and the depth limit. */
    print_message("differential: %u accepted, %u refused, %u only for depth\n", accepted, refused,
                  deep);
    assert_true(accepted > 3000);
    assert_true(refused > 3000);
    assert_true(deep > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),      cmocka_unit_test(test_acceptances),
        cmocka_unit_test(test_depth),         cmocka_unit_test(test_records),
        cmocka_unit_test(test_large_objects), cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
