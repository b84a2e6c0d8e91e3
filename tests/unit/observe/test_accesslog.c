/*
 * Access log (src/observe/accesslog.c): every line is one valid JSON object
 * (parsed back with jansson), escaping of client bytes, secret_query
 * masking, field selection, whole-line drops, and the file handling (open,
 * flush, reopen after rotation).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <gatehouse/accesslog.h>
#include <gatehouse/log.h>

#define ALL_FIELDS ((1u << GH_LOG_FIELD_COUNT) - 1)

static gh_access_log_buf_t lb;
static char tmpdir[] = "/tmp/gh-accesslog-XXXXXX";
static char path_a[300], path_b[300], path_rot[300];

static int group_setup(void **state)
{
    (void)state;
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(path_a, sizeof(path_a), "%s/access.log", tmpdir);
    snprintf(path_b, sizeof(path_b), "%s/other.log", tmpdir);
    snprintf(path_rot, sizeof(path_rot), "%s/access.log.1", tmpdir);
    gh_log_threshold = GH_LOG_ERROR;
    umask(022);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(path_a);
    unlink(path_b);
    unlink(path_rot);
    rmdir(tmpdir);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    lb.buf = malloc(GH_ACCESS_LOG_BUF);
    lb.len = 0;
    return lb.buf == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_access_log_close();
    free(lb.buf);
    lb.buf = NULL;
    unlink(path_a);
    unlink(path_b);
    unlink(path_rot);
    return 0;
}

static gh_access_log_conf_t conf_with(uint32_t fields, char **secrets, size_t num_secrets)
{
    gh_access_log_conf_t c;
    memset(&c, 0, sizeof(c));
    c.enabled = 1;
    c.fields = fields;
    c.secret_query = secrets;
    c.num_secret_query = num_secrets;
    return c;
}

static gh_access_log_entry_t sample_entry(void)
{
    gh_access_log_entry_t e;
    memset(&e, 0, sizeof(e));
    e.unix_ms = 1700000000123ULL; /* 2023-11-14T22:13:20.123Z */
    e.request_id = "req-1";
    e.listener = "edge";
    e.route = "orders";
    e.method = "POSTxx"; /* only method_len bytes */
    e.method_len = 4;
    e.path = "/v1/orders?ignored";
    e.path_len = 10;
    e.query = "a=1&b=2";
    e.query_len = 7;
    e.status = 201;
    e.bytes_in = 1234;
    e.bytes_out = 98765432109ULL;
    e.duration_us = 1234567;
    e.upstream = "10.0.0.1:8080";
    e.upstream_duration_us = 1005;
    e.client = "192.0.2.7";
    e.user_agent = "curl/8.0";
    e.user_agent_len = 8;
    e.principal = "alice";
    e.consumer = "shop";
    e.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    e.error = "upstream_timeout";
    return e;
}

/* Appends e alone to an empty buffer, checks the line's framing (one line,
 * ASCII only) and returns it parsed. */
static json_t *line_of(const gh_access_log_conf_t *conf, const gh_access_log_entry_t *e)
{
    lb.len = 0;
    gh_access_log_append(&lb, conf, e);
    assert_true(lb.len > 0);
    assert_int_equal(lb.buf[lb.len - 1], '\n');
    for (size_t i = 0; i < lb.len; i++) {
        unsigned char c = (unsigned char)lb.buf[i];
        assert_true(c < 0x80);                     /* valid UTF-8 whatever came in */
        assert_true(c >= 0x20 || i == lb.len - 1); /* no raw control bytes */
    }
    json_error_t err;
    json_t *j = json_loadb(lb.buf, lb.len, JSON_ALLOW_NUL, &err);
    if (j == NULL)
        fail_msg("invalid JSON (%s): %.*s", err.text, (int)lb.len, lb.buf);
    assert_true(json_is_object(j));
    return j;
}

static void assert_str(json_t *j, const char *key, const char *want)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_string(v))
        fail_msg("%s is not a string", key);
    assert_string_equal(json_string_value(v), want);
}

static void assert_strn(json_t *j, const char *key, const char *want, size_t n)
{
    json_t *v = json_object_get(j, key);
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), n);
    assert_memory_equal(json_string_value(v), want, n);
}

static void assert_null_field(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_null(v))
        fail_msg("%s is not null", key);
}

/* ---- fields ---- */

static void test_all_fields(void **state)
{
    (void)state;
    gh_access_log_conf_t c = conf_with(ALL_FIELDS, NULL, 0);
    gh_access_log_entry_t e = sample_entry();
    json_t *j = line_of(&c, &e);
    assert_int_equal(json_object_size(j), GH_LOG_FIELD_COUNT);
    assert_str(j, "time", "2023-11-14T22:13:20.123Z");
    assert_str(j, "request_id", "req-1");
    assert_str(j, "listener", "edge");
    assert_str(j, "route", "orders");
    assert_str(j, "method", "POST");
    assert_str(j, "path", "/v1/orders");
    assert_str(j, "query", "a=1&b=2");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 201);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_in")), 1234);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_out")), 98765432109LL);
    assert_str(j, "upstream", "10.0.0.1:8080");
    assert_str(j, "client", "192.0.2.7");
    assert_str(j, "user_agent", "curl/8.0");
    assert_str(j, "principal", "alice");
    assert_str(j, "consumer", "shop");
    assert_str(j, "trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_str(j, "error", "upstream_timeout");
    /* durations in ms with three decimals, exactly */
    assert_non_null(strstr(lb.buf, "\"duration_ms\":1234.567,"));
    assert_non_null(strstr(lb.buf, "\"upstream_duration_ms\":1.005,"));
    assert_true(json_is_real(json_object_get(j, "duration_ms")));

    /* Keys come in the documented order. */
    const char *prev = lb.buf;
    for (int f = 0; f < GH_LOG_FIELD_COUNT; f++) {
        char k[64];
        snprintf(k, sizeof(k), "\"%s\":", gh_access_log_field_names[f]);
        const char *at = strstr(lb.buf, k);
        assert_non_null(at);
        assert_true(at >= prev);
        prev = at;
    }
    assert_int_equal(lb.buf[0], '{');
    json_decref(j);
}

static void test_null_fields(void **state)
{
    (void)state;
    gh_access_log_conf_t c = conf_with(ALL_FIELDS, NULL, 0);
    gh_access_log_entry_t e;
    memset(&e, 0, sizeof(e));
    e.upstream_duration_us = -1;
    json_t *j = line_of(&c, &e);
    static const char *const nulls[] = {
        "request_id", "listener",   "route",     "method",
        "path",       "query",      "upstream",  "upstream_duration_ms",
        "client",     "user_agent", "principal", "consumer",
        "trace_id",   "error"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        assert_null_field(j, nulls[i]);
    assert_str(j, "time", "1970-01-01T00:00:00.000Z");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 0);
    assert_non_null(strstr(lb.buf, "\"duration_ms\":0.000,"));
    json_decref(j);

    /* Empty strings are strings, not null. */
    e.path = "";
    e.query = "";
    json_t *k = line_of(&c, &e);
    assert_str(k, "path", "");
    assert_str(k, "query", "");
    json_decref(k);
}

static void test_escaping(void **state)
{
    (void)state;
    gh_access_log_conf_t c = conf_with(ALL_FIELDS, NULL, 0);
    gh_access_log_entry_t e = sample_entry();
    /* quotes, backslash, controls, DEL, NUL, high bytes (invalid UTF-8 too) */
    static const char path[] = "/a\"b\\c\x01\n\t\r\x1f\x7f\0z\xc3\xa9\xff";
    static const char ua[] = "Mozilla \"5.0\" \\ \xe2\x82\xac\x80\x1b[31m";
    e.path = path;
    e.path_len = sizeof(path) - 1;
    e.user_agent = ua;
    e.user_agent_len = sizeof(ua) - 1;
    e.principal = "bob\"\\\n";
    e.error = "x\x02y";
    json_t *j = line_of(&c, &e);
    /* Each byte >= 0x80 is written as the code point of the same number
     * (\u00XX), so the decoded string is the Latin-1 reading of the bytes. */
    static const char path_dec[] = "/a\"b\\c\x01\n\t\r\x1f\x7f\0z\xc3\x83\xc2\xa9\xc3\xbf";
    assert_strn(j, "path", path_dec, sizeof(path_dec) - 1);
    static const char ua_dec[] = "Mozilla \"5.0\" \\ \xc3\xa2\xc2\x82\xc2\xac\xc2\x80\x1b[31m";
    assert_strn(j, "user_agent", ua_dec, sizeof(ua_dec) - 1);
    assert_str(j, "principal", "bob\"\\\n");
    assert_str(j, "error", "x\x02y");
    /* the exact spelling */
    assert_non_null(strstr(lb.buf, "\"path\":\"/a\\\"b\\\\c\\u0001\\u000a\\u0009\\u000d\\u001f"
                                   "\\u007f\\u0000z\\u00c3\\u00a9\\u00ff\""));
    json_decref(j);
}

/* ---- secret_query ---- */

static char s_api_key[] = "api_key", s_token[] = "token", s_sig[] = "sig";
static char *secrets[] = {s_api_key, s_token, s_sig};

static void expect_query(const char *q, const char *want)
{
    gh_access_log_conf_t c = conf_with(1u << GH_LOG_FIELD_QUERY, secrets, 3);
    gh_access_log_entry_t e;
    memset(&e, 0, sizeof(e));
    e.query = q;
    e.query_len = strlen(q);
    json_t *j = line_of(&c, &e);
    json_t *v = json_object_get(j, "query");
    if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0)
        fail_msg("query '%s': got '%s', want '%s'", q, json_string_value(v), want);
    json_decref(j);
}

static void test_secret_query(void **state)
{
    (void)state;
    expect_query("api_key=SECRET", "api_key=[redacted]");
    expect_query("a=1&api_key=SECRET&b=2", "a=1&api_key=[redacted]&b=2");
    /* repeated */
    expect_query("api_key=one&api_key=two&token=three",
                 "api_key=[redacted]&api_key=[redacted]&token=[redacted]");
    /* percent-encoded names, either case of hex */
    expect_query("api%5Fkey=S1&api%5fkey=S2&%61pi_key=S3&%73%69%67=S4",
                 "api%5Fkey=[redacted]&api%5fkey=[redacted]&%61pi_key=[redacted]&%73%69%67=["
                 "redacted]");
    /* ';' separates parameters too: a secret after it is masked, and so is
     * the rest of its '&' part (a server splitting at '&' only reads it
     * all as the secret's value) */
    expect_query("x=1;api_key=S", "x=1;api_key=[redacted]");
    expect_query(";api_key=S;", ";api_key=[redacted]");
    expect_query("api_key=abc;def&b=2", "api_key=[redacted]&b=2");
    expect_query("a=1;b=2&token=T;c=3&d=4", "a=1;b=2&token=[redacted]&d=4");
    expect_query("a=1&&b=2;;c", "a=1&&b=2;;c");
    /* a name without '=' has no value to hide */
    expect_query("token&a=1", "token&a=1");
    /* an empty value is still masked */
    expect_query("token=&a=1", "token=[redacted]&a=1");
    /* only the first '=' splits name and value */
    expect_query("sig=a=b=c", "sig=[redacted]");
    /* names match exactly, ignoring ASCII case (nginx reads $arg_ so) */
    expect_query("API_KEY=x&api_keys=y&xapi_key=z&api_ke=w",
                 "API_KEY=[redacted]&api_keys=y&xapi_key=z&api_ke=w");
    /* a secret name as a value is not a name */
    expect_query("x=api_key&y=token=1", "x=api_key&y=token=1");
    /* malformed percent escapes are taken literally */
    expect_query("api%5=x&api%zzkey=y&%=z", "api%5=x&api%zzkey=y&%=z");
    /* the masked query is escaped like any other */
    expect_query("q=\"\\&token=\x01", "q=\"\\&token=[redacted]");
    /* no secrets configured: the query verbatim */
    gh_access_log_conf_t c = conf_with(1u << GH_LOG_FIELD_QUERY, NULL, 0);
    gh_access_log_entry_t e;
    memset(&e, 0, sizeof(e));
    e.query = "api_key=SECRET&&x";
    e.query_len = strlen(e.query);
    json_t *j = line_of(&c, &e);
    assert_str(j, "query", "api_key=SECRET&&x");
    json_decref(j);
}

/* ---- field selection ---- */

static void test_field_selection(void **state)
{
    (void)state;
    gh_access_log_entry_t e = sample_entry();
    gh_access_log_conf_t c = conf_with(0, NULL, 0);
    lb.len = 0;
    gh_access_log_append(&lb, &c, &e);
    assert_int_equal(lb.len, 3);
    assert_memory_equal(lb.buf, "{}\n", 3);

    c = conf_with((1u << GH_LOG_FIELD_ERROR) | (1u << GH_LOG_FIELD_PATH) |
                      (1u << GH_LOG_FIELD_TIME) | (1u << GH_LOG_FIELD_STATUS),
                  NULL, 0);
    lb.len = 0;
    gh_access_log_append(&lb, &c, &e);
    static const char want[] = "{\"time\":\"2023-11-14T22:13:20.123Z\",\"path\":\"/v1/orders\","
                               "\"status\":201,\"error\":\"upstream_timeout\"}\n";
    assert_int_equal(lb.len, sizeof(want) - 1);
    assert_memory_equal(lb.buf, want, sizeof(want) - 1);

    for (int f = 0; f < GH_LOG_FIELD_COUNT; f++) {
        c = conf_with(1u << f, NULL, 0);
        json_t *j = line_of(&c, &e);
        assert_int_equal(json_object_size(j), 1);
        assert_non_null(json_object_get(j, gh_access_log_field_names[f]));
        json_decref(j);
    }
}

/* ---- buffer and file ---- */

static int ftruncate_path(const char *path)
{
    return truncate(path, 0);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *len = 0;
        return NULL;
    }
    char *buf = malloc(1 << 22);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 22) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static size_t count_lines(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '\n';
    return k;
}

/* Every line of a file parses. */
static void check_file_lines(const char *buf, size_t n)
{
    const char *p = buf, *end = buf + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        json_error_t err;
        json_t *j = json_loadb(p, (size_t)(nl - p), JSON_ALLOW_NUL, &err);
        if (j == NULL)
            fail_msg("bad line in file (%s)", err.text);
        json_decref(j);
        p = nl + 1;
    }
}

/* The line in buf (one line, newline-terminated), parsed. */
static json_t *only_line(const char *buf, size_t len)
{
    assert_int_equal(count_lines(buf, len), 1);
    json_error_t je;
    json_t *j = json_loadb(buf, len - 1, 0, &je);
    if (j == NULL)
        fail_msg("not JSON: %s", je.text);
    return j;
}

static int truncated_has(json_t *j, const char *field)
{
    json_t *t = json_object_get(j, "truncated");
    for (size_t i = 0; i < json_array_size(t); i++)
        if (strcmp(json_string_value(json_array_get(t, i)), field) == 0)
            return 1;
    return 0;
}

/*
 * A client used to be able to hide its request: a User-Agent of 60 KiB of
 * non-ASCII bytes escapes to 360 KiB, more than the buffer, and the whole
 * line was dropped. Now every client-controlled field is capped, the line
 * is written, and the capped fields are named in "truncated".
 */
static void test_long_fields_capped_not_dropped(void **state)
{
    (void)state;
    gh_access_log_conf_t fc = conf_with(ALL_FIELDS, NULL, 0);
    fc.path = path_a;
    assert_int_equal(gh_access_log_open(&fc), 0);
    uint64_t t0 = gh_access_log_lines_truncated();

    size_t n = 60000;
    char *ua = malloc(n), *path = malloc(n), *query = malloc(n), *pr = malloc(n + 1);
    memset(ua, 0xff, n);
    memset(path, 0x01, n);
    memset(query, 'q', n);
    memset(pr, 'P', n);
    pr[n] = '\0';
    gh_access_log_entry_t big = sample_entry();
    big.user_agent = ua;
    big.user_agent_len = n;
    big.path = path;
    big.path_len = n;
    big.query = query;
    big.query_len = n;
    big.method = ua;
    big.method_len = n;
    big.principal = pr;
    big.consumer = pr;
    gh_access_log_append(&lb, &fc, &big);
    gh_access_log_flush(&lb);

    size_t len;
    char *buf = slurp(path_a, &len);
    assert_non_null(buf);
    json_t *j = only_line(buf, len);
    const char *cut[] = {"method", "path", "query", "user_agent", "principal", "consumer"};
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++)
        if (!truncated_has(j, cut[i]))
            fail_msg("'%s' not named in truncated", cut[i]);
    assert_int_equal(json_array_size(json_object_get(j, "truncated")), 6);
    /* Cut to their caps (bytes >= 0x80 decode to U+00XX, one each). */
    assert_int_equal(strlen(json_string_value(json_object_get(j, "path"))), 2048);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "query"))), 2048);
    assert_int_equal(json_string_length(json_object_get(j, "user_agent")), 1024 * 2);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "principal"))), 512);
    /* Fields that fit are whole, and not named. */
    assert_str(j, "request_id", "req-1");
    json_decref(j);
    free(buf);
    assert_int_equal(gh_access_log_lines_truncated(), t0 + 1);

    /* A line of ordinary length carries no "truncated" key. */
    assert_int_equal(ftruncate_path(path_a), 0);
    gh_access_log_entry_t e = sample_entry();
    gh_access_log_append(&lb, &fc, &e);
    gh_access_log_flush(&lb);
    buf = slurp(path_a, &len);
    j = only_line(buf, len);
    assert_null(json_object_get(j, "truncated"));
    json_decref(j);
    free(buf);
    free(ua);
    free(path);
    free(query);
    free(pr);
}

/* A secret parameter past the query's cap is left out, never cut into. */
static void test_query_cap_keeps_secrets(void **state)
{
    (void)state;
    gh_access_log_conf_t c = conf_with(1u << GH_LOG_FIELD_QUERY, secrets, 3);
    char q[4200];
    memset(q, 'a', sizeof(q));
    memcpy(q, "x=", 2);
    /* "x=aaaa...a&token=SECRETVALUE", the secret straddling the cap */
    const char *tail = "&token=SECRETVALUESECRETVALUE";
    size_t at = 2040;
    memcpy(q + at, tail, strlen(tail));
    gh_access_log_entry_t e;
    memset(&e, 0, sizeof(e));
    e.query = q;
    e.query_len = at + strlen(tail);
    json_t *j = line_of(&c, &e);
    const char *got = json_string_value(json_object_get(j, "query"));
    assert_non_null(got);
    assert_null(strstr(got, "SECRET"));
    assert_true(strlen(got) <= 2048);
    assert_true(truncated_has(j, "query"));
    json_decref(j);
}

/* Lines lost to a failed write (a full disk) are counted. */
static void test_write_errors_counted(void **state)
{
    (void)state;
    gh_access_log_conf_t fc = conf_with(ALL_FIELDS, NULL, 0);
    char dev_full[] = "/dev/full";
    fc.path = dev_full;
    if (gh_access_log_open(&fc) != 0)
        fail_msg("cannot open /dev/full");
    uint64_t l0 = gh_access_log_lines_lost();
    gh_access_log_entry_t e = sample_entry();
    for (int i = 0; i < 7; i++)
        gh_access_log_append(&lb, &fc, &e);
    gh_access_log_flush(&lb);
    assert_int_equal(gh_access_log_lines_lost(), l0 + 7);
    assert_int_equal(lb.len, 0);
}

/* Lines are flushed before the buffer runs out: many appends, nothing lost,
 * every line whole. */
static void test_many_lines_flush_whole(void **state)
{
    (void)state;
    gh_access_log_conf_t fc = conf_with(ALL_FIELDS, NULL, 0);
    fc.path = path_a;
    assert_int_equal(gh_access_log_open(&fc), 0);
    gh_access_log_entry_t e = sample_entry();
    char path[3000];
    memset(path, 'p', sizeof(path));
    for (int i = 0; i < 500; i++) {
        e.path = path;
        e.path_len = (size_t)(i * 37) % sizeof(path);
        e.status = i;
        gh_access_log_append(&lb, &fc, &e);
    }
    gh_access_log_flush(&lb);
    size_t len;
    char *buf = slurp(path_a, &len);
    assert_int_equal(count_lines(buf, len), 500);
    check_file_lines(buf, len);
    free(buf);
}

/*
 * Regression (accesslog.c, gh_access_log_append): the room it made before
 * formatting counted only path, query and user agent, so a long principal
 * made a line that did not fit what was left of the buffer, and it was
 * dropped. The buffer here is filled to within 4200..5000 bytes of its
 * end, then a line with a 6,000-byte principal: written (capped) after a
 * flush.
 */
static void test_long_principal_not_dropped(void **state)
{
    (void)state;
    gh_access_log_conf_t fc = conf_with(ALL_FIELDS, NULL, 0);
    fc.path = path_a;
    assert_int_equal(gh_access_log_open(&fc), 0);
    gh_access_log_entry_t e = sample_entry();
    size_t lines = 0;
    while (GH_ACCESS_LOG_BUF - lb.len >= 5000) {
        gh_access_log_append(&lb, &fc, &e);
        lines++;
    }
    char *pr = malloc(6001);
    memset(pr, 'P', 6000);
    pr[6000] = '\0';
    gh_access_log_entry_t big = sample_entry();
    big.principal = pr;
    gh_access_log_append(&lb, &fc, &big);
    lines++;
    gh_access_log_flush(&lb);
    size_t len;
    char *buf = slurp(path_a, &len);
    check_file_lines(buf, len);
    size_t got = count_lines(buf, len);
    pr[512] = '\0';
    int found = strstr(buf, pr) != NULL && strstr(buf, "\"truncated\":[\"principal\"]") != NULL;
    free(buf);
    free(pr);
    if (!found || got != lines)
        fail_msg("line with the long principal dropped: %zu lines in the file, want %zu", got,
                 lines);
}

static void test_open_flush_reopen(void **state)
{
    (void)state;
    gh_access_log_conf_t fc = conf_with(1u << GH_LOG_FIELD_STATUS, NULL, 0);
    gh_access_log_entry_t e = sample_entry();

    /* No log open: a flush just empties the buffer. */
    gh_access_log_append(&lb, &fc, &e);
    gh_access_log_flush(&lb);
    assert_int_equal(lb.len, 0);

    fc.path = path_a;
    assert_int_equal(gh_access_log_open(&fc), 0);
    struct stat st;
    assert_int_equal(stat(path_a, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640); /* umask 022 from group_setup */
    e.status = 1;
    gh_access_log_append(&lb, &fc, &e);
    e.status = 2;
    gh_access_log_append(&lb, &fc, &e);
    /* Nothing reaches the file before a flush. */
    size_t len;
    char *buf = slurp(path_a, &len);
    assert_int_equal(len, 0);
    free(buf);
    gh_access_log_flush(&lb);
    buf = slurp(path_a, &len);
    assert_string_equal(buf, "{\"status\":1}\n{\"status\":2}\n");
    free(buf);

    /* Opening the same path again keeps the descriptor (no truncation). */
    assert_int_equal(gh_access_log_open(&fc), 0);

    /* Rotation: rename, reopen; new lines go to a new file at the path. */
    assert_int_equal(rename(path_a, path_rot), 0);
    e.status = 3;
    gh_access_log_append(&lb, &fc, &e);
    gh_access_log_flush(&lb); /* before reopen: still the renamed file */
    assert_int_equal(gh_access_log_reopen(), 0);
    e.status = 4;
    gh_access_log_append(&lb, &fc, &e);
    gh_access_log_flush(&lb);
    buf = slurp(path_rot, &len);
    assert_string_equal(buf, "{\"status\":1}\n{\"status\":2}\n{\"status\":3}\n");
    free(buf);
    buf = slurp(path_a, &len);
    assert_non_null(buf);
    assert_string_equal(buf, "{\"status\":4}\n");
    free(buf);

    /* A reload to another path: later lines go there. */
    gh_access_log_conf_t fb = fc;
    fb.path = path_b;
    assert_int_equal(gh_access_log_open(&fb), 0);
    e.status = 5;
    gh_access_log_append(&lb, &fb, &e);
    gh_access_log_flush(&lb);
    buf = slurp(path_b, &len);
    assert_string_equal(buf, "{\"status\":5}\n");
    free(buf);
    buf = slurp(path_a, &len);
    assert_string_equal(buf, "{\"status\":4}\n");
    free(buf);

    /* A path that cannot be opened: error, and the old file stays. */
    char bad[400];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/x.log", tmpdir);
    gh_access_log_conf_t fx = fc;
    fx.path = bad;
    assert_int_equal(gh_access_log_open(&fx), -ENOENT);
    e.status = 6;
    gh_access_log_append(&lb, &fb, &e);
    gh_access_log_flush(&lb);
    buf = slurp(path_b, &len);
    assert_string_equal(buf, "{\"status\":5}\n{\"status\":6}\n");
    free(buf);

    /* A disabled config changes nothing. */
    gh_access_log_conf_t off = fc;
    off.enabled = 0;
    off.path = path_a;
    assert_int_equal(gh_access_log_open(&off), 0);
    e.status = 7;
    gh_access_log_append(&lb, &fb, &e);
    gh_access_log_flush(&lb);
    buf = slurp(path_b, &len);
    assert_string_equal(buf, "{\"status\":5}\n{\"status\":6}\n{\"status\":7}\n");
    free(buf);

    /* Rotation with the file gone: reopen creates it. */
    assert_int_equal(unlink(path_b), 0);
    assert_int_equal(gh_access_log_reopen(), 0);
    e.status = 8;
    gh_access_log_append(&lb, &fb, &e);
    gh_access_log_flush(&lb);
    buf = slurp(path_b, &len);
    assert_string_equal(buf, "{\"status\":8}\n");
    free(buf);

    gh_access_log_close();
    /* Closed: reopen is a no-op, flush drops. */
    assert_int_equal(gh_access_log_reopen(), 0);
    gh_access_log_append(&lb, &fb, &e);
    gh_access_log_flush(&lb);
    assert_int_equal(lb.len, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_all_fields),
        T(test_null_fields),
        T(test_escaping),
        T(test_secret_query),
        T(test_field_selection),
        T(test_long_fields_capped_not_dropped),
        T(test_query_cap_keeps_secrets),
        T(test_write_errors_counted),
        T(test_many_lines_flush_whole),
        T(test_long_principal_not_dropped),
        T(test_open_flush_reopen),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
