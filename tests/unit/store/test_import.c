/*
 * src/store/import.c: AWS API Gateway's API key CSV file. The guide's own
 * examples, then every way a field can be split, quoted and broken, each
 * error with its line, and a round trip of randomly quoted files.
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

#include <gatehouse/apikey.h>

#define K1 "apikey1234abcdefghij0123456789"
#define K2 "apikey1234abcdefghij0123456788"
#define K3 "apikey1234abcdefghij0123456787"

static const gh_apikey_plan_map_t map[] = {
    {"c7y23b", "gold"},
    {"glvrsr", "gold"},
    {"zz9999", "silver"},
};
static const gh_apikey_csv_opts_t opts = {map, 3, NULL};

static gh_apikey_csv_t csv;

static int teardown(void **state)
{
    (void)state;
    gh_apikey_csv_dispose(&csv);
    return 0;
}

static void parse_n(const char *text, size_t n, const gh_apikey_csv_opts_t *o)
{
    gh_apikey_csv_dispose(&csv);
    /* an exact-size copy, so a read past the end is caught under ASan */
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    assert_int_equal(gh_apikey_csv_parse(copy, n, o, &csv), 0);
    free(copy);
}

static void parse(const char *text)
{
    parse_n(text, strlen(text), &opts);
}

static void parse_with(const char *text, const gh_apikey_csv_opts_t *o)
{
    parse_n(text, strlen(text), o);
}

/* The file is clean and has n rows. */
static void clean(size_t n)
{
    if (csv.total_errors != 0)
        fail_msg("unexpected error: line %u: %s", csv.errors[0].line, csv.errors[0].msg);
    assert_int_equal(csv.num_rows, n);
}

/* The only error is on line, and its message contains what. */
static void one_error(unsigned line, const char *what)
{
    assert_int_equal(csv.total_errors, 1);
    assert_int_equal(csv.num_errors, 1);
    assert_int_equal(csv.errors[0].line, line);
    if (strstr(csv.errors[0].msg, what) == NULL)
        fail_msg("error '%s' does not say '%s'", csv.errors[0].msg, what);
}

static void row_is(size_t i, unsigned line, const char *key, const char *name, const char *desc,
                   const char *plan, int enabled)
{
    const gh_apikey_csv_row_t *r = &csv.rows[i];
    assert_int_equal(r->line, line);
    assert_int_equal(r->key_len, strlen(key));
    assert_string_equal(r->key, key);
    assert_string_equal(r->consumer, name);
    assert_string_equal(r->description, desc);
    if (plan == NULL)
        assert_null(r->plan);
    else
        assert_string_equal(r->plan, plan);
    assert_int_equal(r->enabled, enabled);
}

/* ---- the developer guide's examples ---- */

static void test_guide_examples(void **state)
{
    (void)state;
    parse("Key,name\n" K1 ",MyFirstApiKey\n");
    clean(1);
    row_is(0, 2, K1, "MyFirstApiKey", "", NULL, 1);

    parse("Name,key,description,Enabled,usageplanIds\n"
          "MyFirstApiKey," K1 ",An imported key,TRUE,c7y23b\n");
    clean(1);
    row_is(0, 2, K1, "MyFirstApiKey", "An imported key", "gold", 1);

    parse("Enabled,Name,key,UsageplanIds\n"
          "true,MyFirstApiKey," K1 ",\"c7y23b,glvrsr\"\n");
    clean(1);
    row_is(0, 2, K1, "MyFirstApiKey", "", "gold", 1);

    /* "enclosed with a pair of double or single quotes" */
    parse("Enabled,Name,key,UsageplanIds\n"
          "true,MyFirstApiKey," K1 ",'c7y23b,glvrsr'\n");
    clean(1);
    row_is(0, 2, K1, "MyFirstApiKey", "", "gold", 1);
}

/* ---- the header ---- */

static void test_header(void **state)
{
    (void)state;
    /* case, order, spaces around names, unknown columns ignored */
    parse(" KEY ,Owner,\tnAmE\t,x\n" K1 ",someone,alice,y\n");
    clean(1);
    row_is(0, 2, K1, "alice", "", NULL, 1);
    parse("Name\n"
          "alice\n");
    one_error(1, "the columns Name and Key are required");
    assert_int_equal(csv.num_rows, 0);
    parse("Key\n" K1 "\n");
    one_error(1, "Name and Key are required");
    parse("Name,Key,name\nalice," K1 ",bob\n");
    one_error(1, "named twice: Name");
    parse("");
    one_error(0, "the file is empty");
    parse("\n\r\n\n");
    one_error(0, "the file is empty");
    /* a header row alone: nothing to import, and no error */
    parse("Name,Key\n");
    clean(0);
    /* a byte order mark (Excel writes one) */
    parse("\xef\xbb\xbfName,Key\nalice," K1 "\n");
    clean(1);
    /* "Name " with an inner difference is not Name */
    parse("Na me,Key\nalice," K1 "\n");
    one_error(1, "required");
}

/* ---- records and fields ---- */

static void test_line_endings(void **state)
{
    (void)state;
    parse("Name,Key\r\nalice," K1 "\r\nbob," K2 "\r\n");
    clean(2);
    row_is(1, 3, K2, "bob", "", NULL, 1);
    /* no newline at the end */
    parse("Name,Key\nalice," K1 "\nbob," K2);
    clean(2);
    row_is(1, 3, K2, "bob", "", NULL, 1);
    /* blank lines anywhere are skipped, and counted */
    parse("\n\nName,Key\n\nalice," K1 "\r\n\r\n\nbob," K2 "\n\n");
    clean(2);
    row_is(0, 5, K1, "alice", "", NULL, 1);
    row_is(1, 8, K2, "bob", "", NULL, 1);
    /* mixed LF and CRLF */
    parse("Name,Key\nalice," K1 "\r\nbob," K2 "\n");
    clean(2);
    /* a CR that ends nothing */
    parse("Name,Key\nalice," K1 "\rbob," K2 "\n");
    one_error(2, "carriage return");
    parse("Name,Key\nalice," K1 "\r");
    one_error(2, "carriage return");
}

static void test_quoting(void **state)
{
    (void)state;
    /* quotes of both kinds around any field; a doubled quote is one */
    parse("\"Name\",'Key',Description\n"
          "\"Smith, Jane\",'" K1 "',\"She said \"\"hi\"\"\"\n"
          "'O''Brien'," K2 ",'it''s, ok'\n"
          "\"\"," K3 ",\n");
    assert_int_equal(csv.total_errors, 1); /* the empty Name of line 4 */
    assert_int_equal(csv.errors[0].line, 4);
    assert_int_equal(csv.num_rows, 2);
    row_is(0, 2, K1, "Smith, Jane", "She said \"hi\"", NULL, 1);
    row_is(1, 3, K2, "O'Brien", "it's, ok", NULL, 1);
    /* the other quote is a letter inside a quoted field */
    parse("Name,Key,Description\n\"it's\"," K1 ",'say \"x\"'\n");
    clean(1);
    row_is(0, 2, K1, "it's", "say \"x\"", NULL, 1);
    /* an apostrophe inside an unquoted field is a letter */
    parse("Name,Key,Description\nBob's app," K1 ",Bob's key\n");
    clean(1);
    row_is(0, 2, K1, "Bob's app", "Bob's key", NULL, 1);
    /* a double quote inside an unquoted field is refused */
    parse("Name,Key\nBo\"b," K1 "\n");
    one_error(2, "double quote inside an unquoted field");
    /* text after a closing quote */
    parse("Name,Key\n\"alice\"x," K1 "\n");
    one_error(2, "after the closing quote");
    parse("Name,Key\n\"alice\" ," K1 "\n");
    one_error(2, "after the closing quote");
    /* a space before an opening quote makes the field unquoted */
    parse("Name,Key\n \"alice\"," K1 "\n");
    one_error(2, "double quote inside an unquoted field");
    /* a quoted empty field, and an empty last field */
    parse("Name,Key,Description\nalice," K1 ",\"\"\nbob," K2 ",\n");
    clean(2);
    row_is(0, 2, K1, "alice", "", NULL, 1);
    row_is(1, 3, K2, "bob", "", NULL, 1);
}

static void test_unclosed_quote_stops(void **state)
{
    (void)state;
    parse("Name,Key\nalice," K1 "\n\"bob," K2 "\ncarol," K3 "\n");
    one_error(3, "not closed");
    assert_int_equal(csv.num_rows, 1);
    parse("Name,Key\nalice,'" K1);
    one_error(2, "quoted with ' is not closed");
    parse("Name,Key\nalice,\"");
    one_error(2, "quoted with \" is not closed");
    /* a doubled quote at the very end is not a closing one */
    parse("Name,Key\nalice,\"x\"\"");
    one_error(2, "not closed");
}

static void test_multiline_quoted_field_keeps_line_numbers(void **state)
{
    (void)state;
    /* a line break inside quotes is part of the field (and refused in a
     * description: no control characters); the next record starts on the
     * right line */
    parse("Name,Key,Description\n"
          "alice," K1 ",\"two\nlines\"\n"
          "bob," K2 ",ok\n"
          "=cmd," K3 ",x\n");
    assert_int_equal(csv.total_errors, 2);
    assert_int_equal(csv.errors[0].line, 2);
    assert_non_null(strstr(csv.errors[0].msg, "Description must not contain control"));
    assert_int_equal(csv.errors[1].line, 5);
    assert_int_equal(csv.num_rows, 1);
    row_is(0, 4, K2, "bob", "ok", NULL, 1);
    /* a quoted name over three lines, then more rows */
    parse("Name,Key\n\"a\n\n\nb\"," K1 "\nbob," K2 "\n");
    assert_int_equal(csv.total_errors, 1);
    assert_int_equal(csv.errors[0].line, 2);
    row_is(0, 6, K2, "bob", "", NULL, 1);
}

static void test_field_counts(void **state)
{
    (void)state;
    parse("Name,Key,Description\nalice," K1 "\n");
    one_error(2, "2 fields, and the header row has 3");
    parse("Name,Key\nalice," K1 ",extra\n");
    one_error(2, "3 fields");
    parse("Name,Key\nalice," K1 ",\n");
    one_error(2, "3 fields");
    /* 257 fields */
    char big[2000] = "Name,Key\nalice," K1;
    for (int i = 0; i < 255; i++)
        strcat(big, ",x");
    strcat(big, "\nbob," K2 "\n");
    parse(big);
    one_error(2, "more than 256 fields");
    row_is(0, 3, K2, "bob", "", NULL, 1);
}

static void test_nul_and_long_fields(void **state)
{
    (void)state;
    static const char nul[] = "Name,Key\nal\0ice," K1 "\nbob," K2 "\n";
    parse_n(nul, sizeof(nul) - 1, &opts);
    one_error(2, "NUL");
    row_is(0, 3, K2, "bob", "", NULL, 1);
    static const char qnul[] = "Name,Key\n\"al\0ice\"," K1 "\nbob," K2 "\n";
    parse_n(qnul, sizeof(qnul) - 1, &opts);
    one_error(2, "NUL");
    assert_int_equal(csv.num_rows, 1);
    /* a key with a NUL: the key's check, not a cut key */
    static const char knul[] = "Name,Key\nalice,apikey1234\0abcdefghij0123456789\n";
    parse_n(knul, sizeof(knul) - 1, &opts);
    one_error(2, "NUL");
    char *big = malloc(10000);
    strcpy(big, "Name,Key,Description\nalice," K1 ",");
    size_t n = strlen(big);
    memset(big + n, 'x', 4097);
    strcpy(big + n + 4097, "\nbob," K2 ",ok\n");
    parse(big);
    one_error(2, "longer than 4096");
    row_is(0, 3, K2, "bob", "ok", NULL, 1);
    /* a quoted one too; 4096 bytes is fine (and then refused as a
     * description longer than 1024) */
    strcpy(big, "Name,Key,Description\nalice," K1 ",\"");
    n = strlen(big);
    memset(big + n, 'x', 4096);
    strcpy(big + n + 4096, "\"\n");
    parse(big);
    one_error(2, "Description must be at most 1024");
    free(big);
}

/* ---- values ---- */

static void test_keys(void **state)
{
    (void)state;
    parse("Name,Key\na,apikey1234abcdefghi\n");
    one_error(2, "Key is refused: shorter than 20");
    char *big = malloc(400);
    strcpy(big, "Name,Key\na,");
    memset(big + 11, 'k', 129);
    strcpy(big + 11 + 129, "\n");
    parse(big);
    one_error(2, "longer than 128");
    big[11 + 128] = '\n';
    big[11 + 129] = '\0';
    parse(big);
    clean(1);
    free(big);
    /* whitespace inside quotes is kept, so the key is refused, not trimmed */
    parse("Name,Key\na,\" " K1 "\"\n");
    one_error(2, "space, control");
    parse("Name,Key\na,\"" K1 " \"\n");
    one_error(2, "space, control");
    parse("Name,Key\na,\"" K1 "\t\"\n");
    one_error(2, "space, control");
    /* unquoted trailing space is part of the field too */
    parse("Name,Key\na," K1 " \n");
    one_error(2, "space, control");
    parse("Name,Key\na,\"apikey1234\nabcdefghij0123456789\"\n");
    one_error(2, "space, control");
    parse("Name,Key\na,apikey1234\x1b"
          "abcdefghij0123456789\n");
    one_error(2, "space, control");
    parse("Name,Key\na,\n");
    one_error(2, "Key is refused: empty");
    /* no error message quotes the key */
    parse("Name,Key\na,SECRETSECRETSECRET"
          "\x01"
          "SECRET\n");
    assert_null(strstr(csv.errors[0].msg, "SECRET"));
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    parse("Name,Key\nalice," K1 "\nbob," K2 "\ncarol," K1 "\ndave,'" K2 "'\n");
    assert_int_equal(csv.total_errors, 2);
    assert_int_equal(csv.errors[0].line, 4);
    assert_string_equal(csv.errors[0].msg, "the same key as line 2");
    assert_int_equal(csv.errors[1].line, 5);
    assert_string_equal(csv.errors[1].msg, "the same key as line 3");
    assert_int_equal(csv.num_rows, 2);
    /* keys differing in case only are different keys */
    parse("Name,Key\nalice,APIKEY1234abcdefghij0123456789\nbob," K1 "\n");
    clean(2);
    /* many distinct keys: the set grows */
    char *big = malloc(200 * 60 + 100);
    strcpy(big, "Name,Key\n");
    for (int i = 0; i < 200; i++)
        sprintf(big + strlen(big), "n%d,key-%04d-abcdefghijklmnop\n", i, i);
    sprintf(big + strlen(big), "again,key-0137-abcdefghijklmnop\n");
    parse(big);
    one_error(202, "the same key as line 139");
    assert_int_equal(csv.num_rows, 200);
    free(big);
}

static void test_names_and_csv_injection(void **state)
{
    (void)state;
    const char *bad[] = {"=HYPERLINK(\"\"http://evil\"\")", "+cmd", "-2+3", "@SUM(A1)"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[300];
        snprintf(text, sizeof(text), "Name,Key\n\"%s\"," K1 "\n", bad[i]);
        parse(text);
        one_error(2, "Name must not start with = + - or @");
        snprintf(text, sizeof(text), "Name,Key,Description\nalice," K1 ",\"%s\"\n", bad[i]);
        parse(text);
        one_error(2, "Description must not start with = + - or @");
    }
    parse("Name,Key\n\"\t=1+1\"," K1 "\n");
    one_error(2, "Name");
    parse("Name,Key\n\" alice\"," K1 "\n");
    one_error(2, "Name must not start or end with a space");
    parse("Name,Key\n," K1 "\n");
    one_error(2, "Name must not be empty");
}

static void test_enabled(void **state)
{
    (void)state;
    parse("Name,Key,Enabled\na," K1 ",TRUE\nb," K2 ",False\nc," K3 ",\n");
    clean(3);
    assert_int_equal(csv.rows[0].enabled, 1);
    assert_int_equal(csv.rows[1].enabled, 0);
    assert_int_equal(csv.rows[2].enabled, 1); /* AWS: "a true Boolean value" by default */
    const char *bad[] = {"yes", "1", "0", " true", "truee"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[200];
        snprintf(text, sizeof(text), "Name,Key,Enabled\na," K1 ",%s\n", bad[i]);
        parse(text);
        one_error(2, "Enabled must be true or false");
    }
}

static void test_usage_plans(void **state)
{
    (void)state;
    /* several ids mapping to one plan; spaces around ids; an empty entry */
    parse("Name,Key,UsagePlanIds\na," K1 ",\" c7y23b , glvrsr,\"\n");
    clean(1);
    assert_string_equal(csv.rows[0].plan, "gold");
    /* ids mapping to different plans */
    parse("Name,Key,UsagePlanIds\na," K1 ",'c7y23b,zz9999'\n");
    one_error(2, "map to different plans (gold, silver)");
    /* an id without a mapping */
    parse("Name,Key,UsagePlanIds\na," K1 ",abc123\n");
    one_error(2, "usage plan 'abc123' has no plan mapping (--plan-map abc123=PLAN)");
    /* a long id is not echoed: it may be a key in the wrong column */
    parse("Name,UsagePlanIds,Key\na," K1 ",abc123xyzabc123xyzabc\n");
    one_error(2, "a usage plan id of 30 characters has no plan mapping (not shown");
    assert_null(strstr(csv.errors[0].msg, K1));
    parse("Name,Key,UsagePlanIds\na," K1 ",abcdefghij012345678\n");
    one_error(2, "usage plan 'abcdefghij012345678' has no plan mapping");
    /* an id that is not an id */
    parse("Name,Key,UsagePlanIds\na," K1 ",\"c7y23b;drop\"\n");
    one_error(2, "not 1 to 64 letters and digits");
    parse("Name,Key,UsagePlanIds\na," K1 ",\"'c7y23b'\"\n");
    one_error(2, "not 1 to 64 letters and digits");
    /* unquoted, the comma splits fields: a field count error, not two ids */
    parse("Name,Key,UsagePlanIds\na," K1 ",c7y23b,glvrsr\n");
    one_error(2, "4 fields");
    /* no ids: the default plan, or none */
    gh_apikey_csv_opts_t d = {map, 3, "bronze"};
    parse_with("Name,Key,UsagePlanIds\na," K1 ",\nb," K2 ",zz9999\n", &d);
    clean(2);
    assert_string_equal(csv.rows[0].plan, "bronze");
    assert_string_equal(csv.rows[1].plan, "silver");
    parse_with("Name,Key\na," K1 "\n", NULL);
    clean(1);
    assert_null(csv.rows[0].plan);
}

static void test_error_cap_and_row_cap(void **state)
{
    (void)state;
    char *big = malloc(300 * 20 + 100);
    strcpy(big, "Name,Key\n");
    for (int i = 0; i < 300; i++)
        strcat(big, "x,short\n");
    parse(big);
    assert_int_equal(csv.total_errors, 300);
    assert_int_equal(csv.num_errors, GH_APIKEY_CSV_MAX_ERRORS);
    assert_int_equal(csv.errors[99].line, 101);
    assert_int_equal(csv.num_rows, 0);
    free(big);
    /* a file over the size cap is refused whole, unread */
    gh_apikey_csv_dispose(&csv);
    assert_int_equal(
        gh_apikey_csv_parse("Name,Key\n", (size_t)GH_APIKEY_CSV_MAX_BYTES + 1, &opts, &csv), 0);
    one_error(0, "larger than");
}

/* ---- round trip: random fields, randomly quoted, parse back the same ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void random_text(char *out, size_t min, size_t max, const char *alphabet)
{
    size_t n = min + rnd((unsigned)(max - min + 1)), a = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rnd((unsigned)a)];
    out[n] = '\0';
}

/* Writes f as a field: unquoted when it can be, else quoted with " or ',
 * doubling that quote inside. */
static void put_field(char **p, const char *f)
{
    int must = strchr(f, ',') || strchr(f, '"') || strchr(f, '\n') || f[0] == '\'' || f[0] == '\0';
    int style = must ? 1 + (int)rnd(2) : (int)rnd(3);
    if (style == 0) {
        *p += sprintf(*p, "%s", f);
        return;
    }
    char q = style == 1 ? '"' : '\'';
    *(*p)++ = q;
    for (const char *c = f; *c; c++) {
        if (*c == q)
            *(*p)++ = q;
        *(*p)++ = *c;
    }
    *(*p)++ = q;
}

static void test_round_trip(void **state)
{
    (void)state;
    static const char name_chars[] = "abcXYZ09 ,'\"().&";
    static const char key_chars[] = "abcdefghijkLMNOP0123456789,'\"=+-@;:!#$%&()*/<>?[]^`{|}~";
    enum { ROWS = 60, ROUNDS = 40 };
    char *text = malloc(ROWS * 700 + 200);
    static char names[ROWS][40], keys[ROWS][140], descs[ROWS][80];
    for (int round = 0; round < ROUNDS; round++) {
        /* columns in a random order, with an ignored one */
        const char *cols[4] = {"Name", "Key", "Description", "Ignored"};
        int order[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; i--) {
            int j = (int)rnd((unsigned)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        char *p = text;
        for (int c = 0; c < 4; c++)
            p += sprintf(p, "%s%s", c ? "," : "", cols[order[c]]);
        p += sprintf(p, rnd(2) ? "\r\n" : "\n");
        for (int r = 0; r < ROWS; r++) {
            do
                random_text(names[r], 1, 30, name_chars);
            while (names[r][0] == ' ' || names[r][strlen(names[r]) - 1] == ' ');
            random_text(keys[r], 17, 125, key_chars);
            sprintf(keys[r] + strlen(keys[r]), "%03d", r); /* distinct */
            do
                random_text(descs[r], 0, 60, name_chars);
            while (descs[r][0] == '=' || descs[r][0] == '+' || descs[r][0] == '-' ||
                   descs[r][0] == '@');
            const char *vals[4] = {names[r], keys[r], descs[r], "ignored,\"x\""};
            for (int c = 0; c < 4; c++) {
                if (c)
                    *p++ = ',';
                put_field(&p, vals[order[c]]);
            }
            p += sprintf(p, rnd(2) ? "\r\n" : "\n");
        }
        *p = '\0';
        parse_n(text, (size_t)(p - text), NULL);
        if (csv.total_errors != 0)
            fail_msg("round %d: line %u: %s\n%s", round, csv.errors[0].line, csv.errors[0].msg,
                     text);
        assert_int_equal(csv.num_rows, ROWS);
        for (int r = 0; r < ROWS; r++) {
            assert_string_equal(csv.rows[r].consumer, names[r]);
            assert_string_equal(csv.rows[r].key, keys[r]);
            assert_string_equal(csv.rows[r].description, descs[r]);
            assert_int_equal(csv.rows[r].line, r + 2);
        }
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_guide_examples, teardown),
        cmocka_unit_test_teardown(test_header, teardown),
        cmocka_unit_test_teardown(test_line_endings, teardown),
        cmocka_unit_test_teardown(test_quoting, teardown),
        cmocka_unit_test_teardown(test_unclosed_quote_stops, teardown),
        cmocka_unit_test_teardown(test_multiline_quoted_field_keeps_line_numbers, teardown),
        cmocka_unit_test_teardown(test_field_counts, teardown),
        cmocka_unit_test_teardown(test_nul_and_long_fields, teardown),
        cmocka_unit_test_teardown(test_keys, teardown),
        cmocka_unit_test_teardown(test_duplicate_keys, teardown),
        cmocka_unit_test_teardown(test_names_and_csv_injection, teardown),
        cmocka_unit_test_teardown(test_enabled, teardown),
        cmocka_unit_test_teardown(test_usage_plans, teardown),
        cmocka_unit_test_teardown(test_error_cap_and_row_cap, teardown),
        cmocka_unit_test_teardown(test_round_trip, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
