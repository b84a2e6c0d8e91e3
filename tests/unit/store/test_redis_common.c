/*
 * What the Redis clients share (src/store/redis_common.c), without a
 * server: option checks, the RESP encoder (byte for byte, with the key
 * prefix), the handshake, script ids, NOSCRIPT detection and the limit
 * arguments and reply parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "store/redis_internal.h"

static int conf_ok(const gh_redis_opts_t *o, const char *want_err)
{
    redis_conf_t rc;
    char err[128] = "";
    int r = redis_conf_init(&rc, o, err, sizeof(err));
    if (r == 0)
        redis_conf_dispose(&rc);
    else if (want_err != NULL && strstr(err, want_err) == NULL)
        fail_msg("error '%s' does not say '%s'", err, want_err);
    return r == 0;
}

static void test_options(void **state)
{
    (void)state;
    char long_prefix[300];
    memset(long_prefix, 'p', sizeof(long_prefix) - 1);
    long_prefix[sizeof(long_prefix) - 1] = '\0';
    struct {
        gh_redis_opts_t o;
        int ok;
        const char *err;
    } cases[] = {
        {{.host = "127.0.0.1"}, 1, NULL},
        {{.host = "::1"}, 1, NULL},
        {{.host = "localhost"}, 1, NULL},
        {{.unix_path = "/run/redis.sock"}, 1, NULL},
        /* A name would need a blocking lookup on the loop. */
        {{.host = "redis.example.com"}, 0, "IP address"},
        {{.host = "127.0.0.1 "}, 0, "IP address"},
        {{.host = ""}, 0, "IP address"},
        {{.host = "127.0.0.1", .unix_path = "/x"}, 0, "not both"},
        {{0}, 0, "no host"},
        {{.unix_path = ""}, 0, "unix_path"},
        {{.host = "127.0.0.1", .username = "u"}, 0, "without password"},
        {{.host = "127.0.0.1", .pool_size = 65}, 0, "pool_size"},
        {{.host = "127.0.0.1", .pool_size = 64}, 1, NULL},
        {{.host = "127.0.0.1", .max_pending = (1u << 20) + 1}, 0, "max_pending"},
        {{.host = "127.0.0.1", .command_timeout_ms = UINT64_MAX}, 0, "one day"},
        {{.host = "127.0.0.1", .prefix = long_prefix}, 0, "prefix"},
        {{.host = "127.0.0.1", .db = 4000000}, 0, "db"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (conf_ok(&cases[i].o, cases[i].err) != cases[i].ok)
            fail_msg("case %zu", i);
    /* Defaults, and localhost as 127.0.0.1 (not ::1). */
    redis_conf_t rc;
    gh_redis_opts_t o = {.host = "localhost", .backoff_min_ms = 900, .backoff_max_ms = 10};
    assert_int_equal(redis_conf_init(&rc, &o, NULL, 0), 0);
    assert_string_equal(rc.host, "127.0.0.1");
    assert_int_equal(rc.port, 6379);
    assert_int_equal(rc.pool_size, 2);
    assert_int_equal(rc.max_pending, 1024);
    assert_int_equal(rc.connect_timeout_ms, 1000);
    assert_int_equal(rc.command_timeout_ms, 1000);
    assert_int_equal(rc.backoff_max_ms, 900);
    assert_string_equal(rc.where, "127.0.0.1:6379");
    redis_conf_dispose(&rc);
    gh_redis_opts_t v6 = {.host = "::1", .port = 7000};
    assert_int_equal(redis_conf_init(&rc, &v6, NULL, 0), 0);
    assert_string_equal(rc.where, "[::1]:7000");
    redis_conf_dispose(&rc);
    /* The clients refuse the same options. */
    char err[128];
    gh_redis_opts_t bad = {.host = "redis"};
    assert_null(gh_redis_sync_new(&bad, err, sizeof(err)));
    assert_non_null(strstr(err, "IP address"));
}

static void test_encoder(void **state)
{
    (void)state;
    redis_conf_t rc;
    gh_redis_opts_t o = {.host = "127.0.0.1", .prefix = "gh:"};
    assert_int_equal(redis_conf_init(&rc, &o, NULL, 0), 0);
    redis_buf_t b;
    redis_buf_init(&b);
    const char *argv[] = {"MSET", "k1", "v\r\n1", "k2", ""};
    size_t lens[] = {4, 2, 4, 2, 0};
    assert_int_equal(redis_format(&b, &rc, 5, argv, lens, 1u << 1 | 1u << 3), 0);
    const char want[] =
        "*5\r\n$4\r\nMSET\r\n$5\r\ngh:k1\r\n$4\r\nv\r\n1\r\n$5\r\ngh:k2\r\n$0\r\n\r\n";
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.p, want, b.len);
    assert_int_equal(b.p[b.len], '\0');
    redis_buf_dispose(&b);

    /* hiredis's own encoder agrees (an independent implementation). */
    char *h = NULL;
    const char *hargv[] = {"MSET", "gh:k1", "v\r\n1", "gh:k2", ""};
    size_t hlens[] = {4, 5, 4, 5, 0};
    int hl = redisFormatCommandArgv(&h, 5, hargv, hlens);
    assert_int_equal(hl, (int)sizeof(want) - 1);
    assert_memory_equal(h, want, (size_t)hl);
    redisFreeCommand(h);

    /* Large: grows past the inline buffer, keeps the NUL past the end. */
    static char big[100000];
    memset(big, 'x', sizeof(big));
    const char *bargv[] = {"SET", "k", big};
    size_t blens[] = {3, 1, sizeof(big)};
    redis_buf_init(&b);
    assert_int_equal(redis_format(&b, &rc, 3, bargv, blens, 1u << 1), 0);
    assert_int_equal(b.len, 4 + 9 + 10 + 9 + sizeof(big) + 2);
    assert_int_equal(b.p[b.len], '\0');
    redis_buf_dispose(&b);

    /* Refused: no arguments, NULL with a length. */
    redis_buf_init(&b);
    assert_int_equal(redis_format(&b, &rc, 0, argv, lens, 0), -EINVAL);
    const char *nul[] = {"GET", NULL};
    size_t nlens[] = {3, 1};
    assert_int_equal(redis_format(&b, &rc, 2, nul, nlens, 0), -EINVAL);
    redis_buf_dispose(&b);

    /* Script: EVALSHA sha numkeys keys(prefixed) args, then EVAL text. */
    gh_redis_script_t s;
    gh_redis_script_init(&s, "return 1");
    assert_string_equal(s.sha1, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    redis_buf_t tail;
    redis_buf_init(&tail);
    const char *sargv[] = {"key", "arg"};
    size_t slens[] = {3, 3};
    assert_int_equal(redis_format_script_tail(&tail, &rc, 1, 2, sargv, slens), 0);
    redis_buf_init(&b);
    assert_int_equal(redis_format_script(&b, &s, 0, tail.p, tail.len, 3), 0);
    const char wsha[] = "*5\r\n$7\r\nEVALSHA\r\n$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\n"
                        "$1\r\n1\r\n$6\r\ngh:key\r\n$3\r\narg\r\n";
    assert_int_equal(b.len, sizeof(wsha) - 1);
    assert_memory_equal(b.p, wsha, b.len);
    redis_buf_dispose(&b);
    redis_buf_init(&b);
    assert_int_equal(redis_format_script(&b, &s, 1, tail.p, tail.len, 3), 0);
    const char weval[] = "*5\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n"
                         "$1\r\n1\r\n$6\r\ngh:key\r\n$3\r\narg\r\n";
    assert_int_equal(b.len, sizeof(weval) - 1);
    assert_memory_equal(b.p, weval, b.len);
    redis_buf_dispose(&b);
    redis_buf_dispose(&tail);
    redis_buf_init(&tail);
    assert_int_equal(redis_format_script_tail(&tail, &rc, 3, 2, sargv, slens), -EINVAL);
    redis_buf_dispose(&tail);
    redis_conf_dispose(&rc);
}

static void test_handshake(void **state)
{
    (void)state;
    redis_conf_t rc;
    gh_redis_opts_t o = {.host = "127.0.0.1", .username = "app", .password = "pw", .db = 12};
    assert_int_equal(redis_conf_init(&rc, &o, NULL, 0), 0);
    redis_buf_t b;
    size_t ends[REDIS_HANDSHAKE_MAX];
    int n;
    redis_buf_init(&b);
    assert_int_equal(redis_format_handshake(&b, &rc, ends, &n), 0);
    assert_int_equal(n, 3);
    const char want[] = "*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$2\r\npw\r\n"
                        "*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n"
                        "*1\r\n$4\r\nPING\r\n";
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.p, want, b.len);
    assert_int_equal(ends[0], 31);
    assert_int_equal(ends[1], 31 + 24);
    assert_int_equal(ends[2], b.len);
    redis_buf_dispose(&b);
    redis_conf_dispose(&rc);

    gh_redis_opts_t plain = {.host = "127.0.0.1"};
    assert_int_equal(redis_conf_init(&rc, &plain, NULL, 0), 0);
    redis_buf_init(&b);
    assert_int_equal(redis_format_handshake(&b, &rc, ends, &n), 0);
    assert_int_equal(n, 1); /* always a PING: ready means answered */
    redis_buf_dispose(&b);
    redis_conf_dispose(&rc);
}

static void test_noscript_and_limit_reply(void **state)
{
    (void)state;
    char noscript[] = "NOSCRIPT No matching script.", errns[] = "ERR NOSCRIPT", ns[] = "NOSCRIPT";
    redisReply e = {.type = REDIS_REPLY_ERROR, .str = noscript, .len = 28};
    assert_true(redis_reply_is_noscript(&e));
    redisReply other = {.type = REDIS_REPLY_ERROR, .str = errns, .len = 12};
    assert_false(redis_reply_is_noscript(&other));
    redisReply status = {.type = REDIS_REPLY_STATUS, .str = ns, .len = 8};
    assert_false(redis_reply_is_noscript(&status));
    assert_false(redis_reply_is_noscript(NULL));

    /* {all, now, (allowed, remaining, reset, retry, next) per limit} */
    redisReply v[12] = {{.type = REDIS_REPLY_INTEGER, .integer = 0},
                        {.type = REDIS_REPLY_INTEGER, .integer = 1700000000000},
                        {.type = REDIS_REPLY_INTEGER, .integer = 0},
                        {.type = REDIS_REPLY_INTEGER, .integer = 3},
                        {.type = REDIS_REPLY_INTEGER, .integer = 1500},
                        {.type = REDIS_REPLY_INTEGER, .integer = -1},
                        {.type = REDIS_REPLY_INTEGER, .integer = 500},
                        {.type = REDIS_REPLY_INTEGER, .integer = 1},
                        {.type = REDIS_REPLY_INTEGER, .integer = 7},
                        {.type = REDIS_REPLY_INTEGER, .integer = 900},
                        {.type = REDIS_REPLY_INTEGER, .integer = 0},
                        {.type = REDIS_REPLY_INTEGER, .integer = 900}};
    redisReply *el[12];
    for (int i = 0; i < 12; i++)
        el[i] = &v[i];
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 12, .element = el};
    gh_redis_limit_result_t r[2];
    int allowed = -1;
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), 0);
    assert_int_equal(allowed, 0);
    assert_int_equal(r[0].allowed, 0);
    assert_int_equal(r[0].remaining, 3);
    assert_int_equal(r[0].reset_ms, 1500);
    assert_int_equal(r[0].retry_after_ms, GH_REDIS_NEVER);
    assert_int_equal(r[0].next_ms, 500);
    assert_int_equal(r[0].now_ms, 1700000000000ull);
    assert_int_equal(r[1].allowed, 1);
    assert_int_equal(r[1].remaining, 7);
    assert_int_equal(r[1].retry_after_ms, 0);
    assert_int_equal(r[1].next_ms, 900);
    assert_int_equal(r[1].now_ms, 1700000000000ull);
    /* Shapes a broken or foreign script could return. */
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 1), -EPROTO); /* count */
    arr.elements = 10; /* the four values per limit of an older script */
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), -EPROTO);
    arr.elements = 12;
    v[0].integer = 1; /* allowed, though one limit refused */
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), -EPROTO);
    v[0].integer = 2;
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), -EPROTO);
    v[0].integer = 0;
    v[5].integer = -2;
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), -EPROTO);
    v[5].integer = 0; /* refused with nothing to wait for */
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), -EPROTO);
    v[5].integer = 10;
    v[6].integer = -1; /* a negative time to the next unit */
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), -EPROTO);
    v[6].integer = 500;
    v[3].type = REDIS_REPLY_STRING;
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), -EPROTO);
    v[3].type = REDIS_REPLY_INTEGER;
    v[1].integer = -1;
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), -EPROTO);
    v[1].integer = 5;
    assert_int_equal(redis_limit_parse(&arr, &allowed, r, 2), 0);
    assert_int_equal(r[0].retry_after_ms, 10);
    assert_int_equal(redis_limit_parse(&e, &allowed, r, 1), -EPROTO);
    assert_int_equal(redis_limit_parse(NULL, &allowed, r, 1), -EPROTO);

    /* Arguments: keys, now, cost (above every limit: the largest + 1),
     * then five per limit. */
    redis_limit_args_t a;
    gh_redis_limit_key_t keys[2] = {
        {"k", 1, {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 10, .period_ms = 60000, .offset_ms = -5}},
        {"b", 1, {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 12, .rate = 3, .period_ms = 1000}},
    };
    assert_int_equal(redis_limit_args(&a, keys, 2, UINT64_MAX, 42), 0);
    const char *want[] = {"k",     "b",  "42", "13", "w", "10",   "0",
                          "60000", "-5", "b",  "12", "3", "1000", "0"};
    assert_int_equal(a.argc, 14);
    assert_int_equal(a.n, 2);
    for (int i = 0; i < a.argc; i++) {
        assert_int_equal(a.lens[i], strlen(want[i]));
        assert_memory_equal(a.argv[i], want[i], a.lens[i]);
    }
    assert_int_equal(redis_limit_args(&a, keys, 1, 5, 42), 0);
    assert_string_equal(a.argv[2], "5");
    /* Refused: none, too many, the same key twice, a bad limit, now
     * beyond exact integers. */
    gh_redis_limit_key_t many[GH_REDIS_LIMITS_MAX + 1];
    for (int i = 0; i <= GH_REDIS_LIMITS_MAX; i++)
        many[i] = keys[1];
    assert_int_equal(redis_limit_args(&a, keys, 0, 1, 42), -EINVAL);
    assert_int_equal(redis_limit_args(&a, many, GH_REDIS_LIMITS_MAX + 1, 1, 42), -EINVAL);
    assert_int_equal(redis_limit_args(&a, many, 2, 1, 42), -EINVAL);
    keys[1].lim.rate = 0;
    assert_int_equal(redis_limit_args(&a, keys, 2, 1, 42), -EINVAL);
    keys[1].lim.rate = 3;
    assert_int_equal(redis_limit_args(&a, keys, 2, 1, UINT64_C(1) << 60), -EINVAL);
    keys[1].key = NULL;
    assert_int_equal(redis_limit_args(&a, keys, 2, 1, 42), -EINVAL);
}

/* gh_redis_resolve: what the store and the fleet limiter both open with. */
static void test_resolve(void **state)
{
    (void)state;
    char host[64], err[256];
    uint16_t port = 0;
    assert_int_equal(
        gh_redis_resolve("127.0.0.1:6379", host, sizeof(host), &port, err, sizeof(err)), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6379);
    assert_int_equal(gh_redis_resolve("[::1]:7000", host, sizeof(host), &port, err, sizeof(err)),
                     0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7000);
    assert_int_equal(gh_redis_resolve("localhost:1", host, sizeof(host), &port, err, sizeof(err)),
                     0);
    assert_string_equal(host, "localhost");
    /* The port is digits only: strtoul alone would take a sign or
     * leading blanks, and "-18446744073709551615" as port 1. */
    static const char *const bad[] = {"127.0.0.1",
                                      "127.0.0.1:0",
                                      "127.0.0.1:65536",
                                      "127.0.0.1:63x",
                                      ":6379",
                                      "[::1]6379",
                                      "[::1:6379",
                                      "[]:6379",
                                      "127.0.0.1:-1",
                                      "127.0.0.1:+6379",
                                      "127.0.0.1: 6379",
                                      "[::1]:\t6379",
                                      "127.0.0.1:-18446744073709551615",
                                      "127.0.0.1:99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(gh_redis_resolve(bad[i], host, sizeof(host), &port, err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, bad[i]));
    }
    /* A name is not looked up under GH_CONFIG_NO_DNS (a worker never
     * waits on DNS; tests never touch it). */
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    assert_int_equal(
        gh_redis_resolve("redis.example.com:6379", host, sizeof(host), &port, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "GH_CONFIG_NO_DNS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),   cmocka_unit_test(test_encoder),
        cmocka_unit_test(test_handshake), cmocka_unit_test(test_noscript_and_limit_reply),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
