/*
 * The Redis fleet backend of the rate_limits filter (fleet.c) against a
 * real redis-server (tests/unit/store/redis_server.h), on a libuv loop
 * run by the test:
 *
 * - the mapping: every answer compared with the local limiter
 *   (gatehouse/limiter.h, the reference) on random time sequences with
 *   an injected clock, for buckets, daily, weekly and monthly quotas
 *   with offsets: allowed, remaining, limit, reset, retry and window the
 *   same, so 429s and RateLimit fields do not depend on the mode;
 * - several limits in one decision: all or none;
 * - keys: the limit's id and the value, length-prefixed or hashed, so no
 *   value names another key's state;
 * - failures: a stopped server (timeout), a killed one (fail fast) and
 *   its restart, the bound on calls in flight, a new client's first
 *   connection (calls held, then sent; or failed after the connect
 *   timeout when nobody answers);
 * - a store changed by a reload (a second client, the first closed when
 *   its last call ends), the worker's teardown with calls in flight, the
 *   metrics and the throttled log.
 *
 * fleet.c is included to reach its statics (the injected clock, the
 * worker's state).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "../../../src/filters/ratelimit/fleet.c"

#include "../store/redis_server.h"

#define GUARD_MS 30000

static uv_loop_t loop;
static rs_t srv;
static int guard_fired;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_fired = 1;
}

/* Runs lp until cond(arg); fails the case after GUARD_MS. */
static void wait_until_on(uv_loop_t *lp, int (*cond)(void *), void *arg)
{
    uv_timer_t guard;
    guard_fired = 0;
    uv_timer_init(lp, &guard);
    uv_timer_start(&guard, on_guard, GUARD_MS, 0);
    while (!cond(arg) && !guard_fired)
        uv_run(lp, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(lp, UV_RUN_NOWAIT);
    if (!cond(arg))
        fail_msg("condition not met within the guard time");
}

static void wait_until(int (*cond)(void *), void *arg)
{
    wait_until_on(&loop, cond, arg);
}

/* ---- a batch as the filter makes it ---- */

typedef struct {
    gh_ratelimit_batch_t b;
    gh_ratelimit_item_t items[GH_RATELIMIT_FLEET_MAX];
    gh_limit_spec_t spec[GH_RATELIMIT_FLEET_MAX];
    char keys[GH_RATELIMIT_FLEET_MAX][128];
    int calls;
    int status;
} tb_t;

static void tb_done(gh_ratelimit_batch_t *b, int status)
{
    tb_t *t = (tb_t *)((char *)b - offsetof(tb_t, b));
    t->calls++;
    t->status = status;
}

static int tb_called(void *arg)
{
    return ((tb_t *)arg)->calls > 0;
}

/* A batch of n items: spec[i] keyed by keys[i] (filled by the caller). */
static void tb_init(tb_t *t, size_t n, fl_worker_t *w, uv_loop_t *lp)
{
    t->b.items = t->items;
    t->b.num_items = n;
    t->b.loop = lp;
    t->b.worker = w;
    t->b.done = tb_done;
    t->calls = 0;
    t->status = 1;
    for (size_t i = 0; i < n; i++) {
        t->items[i].spec = &t->spec[i];
        t->items[i].key = t->keys[i];
        t->items[i].key_len = strlen(t->keys[i]);
    }
}

/* Takes and waits for the answer: its status, or take's error. */
static int tb_take(tb_t *t, fl_conf_t *c)
{
    int rc = fl_take(c, &t->b);
    if (rc < 0) {
        assert_int_equal(t->calls, 0); /* done never runs after a failed take */
        return rc;
    }
    assert_int_equal(t->calls, 0); /* nor inside take */
    wait_until(tb_called, t);
    assert_int_equal(t->calls, 1);
    return t->status;
}

static fl_conf_t *conf_with(const char *prefix, uint64_t timeout_ms, unsigned max_pending)
{
    char address[64], err[256] = "";
    snprintf(address, sizeof(address), "127.0.0.1:%d", srv.port);
    gh_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.store.kind = GH_STORE_REDIS;
    cfg.store.address = address;
    cfg.store.prefix = (char *)prefix;
    cfg.store.timeout_ms = timeout_ms;
    cfg.store.pool = 2;
    cfg.store.max_pending = max_pending;
    fl_conf_t *c = fl_open(&cfg, err, sizeof(err));
    if (c == NULL)
        fail_msg("open: %s", err);
    return c;
}

static int setup(void **state)
{
    (void)state;
    fl_clock_ms = 0;
    return uv_loop_init(&loop);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* As a worker ends: every handle closed by a walk, the loop run out, then
 * the per-worker state freed (gh_worker_dispose). */
static void worker_teardown(uv_loop_t *lp, fl_worker_t *w)
{
    uv_walk(lp, close_any, NULL);
    uv_run(lp, UV_RUN_DEFAULT);
    fl_worker_free(w);
    assert_int_equal(uv_loop_close(lp), 0);
}

static int teardown(void **state)
{
    (void)state;
    if (srv.paused)
        rs_resume(&srv);
    if (srv.pid <= 0)
        rs_restart(&srv);
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

static int group_setup(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof(srv));
    if (rs_start(&srv, NULL) != 0) {
        fprintf(stderr, "cannot start redis-server (scripts/deps test installs it)\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rs_stop(&srv);
    return 0;
}

/* ---- the mapping, against the local limiter ---- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void assert_same_result(const gh_limit_result_t *got, const gh_limit_result_t *want,
                               const char *what, int step)
{
    if (got->allowed != want->allowed || got->limit != want->limit ||
        got->remaining != want->remaining || got->reset_s != want->reset_s ||
        got->retry_s != want->retry_s || got->window_s != want->window_s)
        fail_msg("%s step %d: got allowed=%d limit=%llu remaining=%llu reset=%llu retry=%llu "
                 "window=%llu; local allowed=%d limit=%llu remaining=%llu reset=%llu retry=%llu "
                 "window=%llu",
                 what, step, got->allowed, (unsigned long long)got->limit,
                 (unsigned long long)got->remaining, (unsigned long long)got->reset_s,
                 (unsigned long long)got->retry_s, (unsigned long long)got->window_s, want->allowed,
                 (unsigned long long)want->limit, (unsigned long long)want->remaining,
                 (unsigned long long)want->reset_s, (unsigned long long)want->retry_s,
                 (unsigned long long)want->window_s);
}

/* The next time of a sequence: the same ms, ms apart, seconds apart, or
 * a jump over days and months. */
static uint64_t step_ms(void)
{
    switch (rnd() % 12) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
        return 0; /* bursts */
    case 5:
    case 6:
        return rnd() % 1000;
    case 7:
    case 8:
        return rnd() % 60000;
    case 9:
        return rnd() % 3600000;
    case 10:
        return rnd() % (3 * 86400000ULL);
    default:
        return rnd() % (40 * 86400000ULL);
    }
}

static void test_mapping_matches_local(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        gh_limit_spec_t spec;
    } cases[] = {
        {"3/s burst 5", {.algo = GH_LIMIT_BUCKET, .rate = {3, 1000, 5}}},
        {"1/h burst 1", {.algo = GH_LIMIT_BUCKET, .rate = {1, 3600000, 1}}},
        {"7 per 10s burst 3", {.algo = GH_LIMIT_BUCKET, .rate = {7, 10000, 3}}},
        {"1000/s burst 2", {.algo = GH_LIMIT_BUCKET, .rate = {1000, 1000, 2}}},
        {"2 per 1d burst 4", {.algo = GH_LIMIT_BUCKET, .rate = {2, 86400000, 4}}},
        {"day", {.algo = GH_LIMIT_WINDOW, .quota = {4, GH_PERIOD_DAY, 0}}},
        {"day at 02:00", {.algo = GH_LIMIT_WINDOW, .quota = {3, GH_PERIOD_DAY, 7200}}},
        {"week from Sunday", {.algo = GH_LIMIT_WINDOW, .quota = {5, GH_PERIOD_WEEK, 0}}},
        {"week from Monday 6h", {.algo = GH_LIMIT_WINDOW, .quota = {3, GH_PERIOD_WEEK, 108000}}},
        {"month", {.algo = GH_LIMIT_WINDOW, .quota = {6, GH_PERIOD_MONTH, 0}}},
        {"month from the 3rd noon",
         {.algo = GH_LIMIT_WINDOW, .quota = {2, GH_PERIOD_MONTH, 2 * 86400 + 43200}}},
    };
    fl_conf_t *c = conf_with("map:", 2000, 64);
    fl_worker_t *w = fl_worker_new();
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        gh_limit_spec_t spec = cases[k].spec;
        spec.id = 1000 + k;
        /* From 2028-02-27 (a leap February ends), in ms. */
        uint64_t t = 1835308800000ULL + rnd() % 86400000;
        uint64_t tat = 0;
        int64_t win = INT64_MIN;
        uint64_t count = 0;
        int allowed = 0;
        if (spec.algo == GH_LIMIT_BUCKET)
            tat = gh_bucket_init(&spec.rate, t);
        for (int step = 0; step < 200; step++) {
            t += step_ms();
            fl_clock_ms = t;
            tb_t tb;
            tb.spec[0] = spec;
            snprintf(tb.keys[0], sizeof(tb.keys[0]), "who");
            tb_init(&tb, 1, w, &loop);
            assert_int_equal(tb_take(&tb, c), 0);
            gh_limit_result_t want;
            if (spec.algo == GH_LIMIT_BUCKET)
                gh_bucket_take(&tat, &spec.rate, t, &want);
            else
                gh_quota_take(&win, &count, &spec.quota, (int64_t)t, &want);
            assert_same_result(&tb.items[0].res, &want, cases[k].what, step);
            allowed += want.allowed;
        }
        /* Both answers were met, not only one. */
        if (allowed == 0 || allowed == 200)
            fail_msg("%s: %d of 200 allowed", cases[k].what, allowed);
    }
    worker_teardown(&loop, w);
    assert_int_equal(uv_loop_init(&loop), 0);
    fl_close(c);
}

/* A throttle and a quota in one decision: all or none. */
static void test_several_limits_all_or_none(void **state)
{
    (void)state;
    fl_conf_t *c = conf_with("multi:", 2000, 64);
    fl_worker_t *w = fl_worker_new();
    fl_clock_ms = 1767225600000ULL; /* 2026-01-01 */
    tb_t tb;
    gh_limit_spec_t throttle = {.id = 1, .algo = GH_LIMIT_BUCKET, .rate = {1, 3600000, 3}};
    gh_limit_spec_t quota = {.id = 2, .algo = GH_LIMIT_WINDOW, .quota = {2, GH_PERIOD_DAY, 0}};
    for (int i = 0; i < 4; i++) {
        tb.spec[0] = throttle;
        tb.spec[1] = quota;
        strcpy(tb.keys[0], "alice");
        strcpy(tb.keys[1], "alice");
        tb_init(&tb, 2, w, &loop);
        assert_int_equal(tb_take(&tb, c), 0);
        if (i < 2) {
            assert_true(tb.items[0].res.allowed && tb.items[1].res.allowed);
            assert_int_equal(tb.items[0].res.remaining, 2 - (uint64_t)i);
            assert_int_equal(tb.items[1].res.remaining, 1 - (uint64_t)i);
        } else {
            /* The quota refuses: the throttle, which alone would allow,
             * keeps its unit (remaining stays 1). */
            assert_true(tb.items[0].res.allowed);
            assert_false(tb.items[1].res.allowed);
            assert_int_equal(tb.items[0].res.remaining, 1);
            assert_int_equal(tb.items[1].res.retry_s, 86400);
        }
    }
    /* The refused requests took nothing from the throttle: it has its
     * one unit, then none. */
    for (int i = 0; i < 2; i++) {
        tb.spec[0] = throttle;
        strcpy(tb.keys[0], "alice");
        tb_init(&tb, 1, w, &loop);
        assert_int_equal(tb_take(&tb, c), 0);
        assert_int_equal(tb.items[0].res.allowed, i == 0);
    }
    worker_teardown(&loop, w);
    assert_int_equal(uv_loop_init(&loop), 0);
    fl_close(c);
}

/* ---- keys ---- */

static void test_keys(void **state)
{
    (void)state;
    char a[FL_KEY_MAX], b[FL_KEY_MAX];
    size_t la, lb;
    la = key_build(a, 0x1234, "alice", 5);
    assert_int_equal(la, strlen("rl:0000000000001234:5:alice"));
    assert_memory_equal(a, "rl:0000000000001234:5:alice", la);
    /* Values that try to reach another key: each pair differs. */
    static const char *const values[] = {
        "",         "a",         "a:",
        "5:a",      "1:a",       "a:b",
        ":b",       "b",         "x:wabc",
        "x:b",      "x:m123",    "#:abc",
        "#",        "0:",        "12:aa",
        "1",        "1:1:1",     "victim",
        "victim:b", "victim:w1", "rl:0000000000001234:5:alice",
        " a",       "a ",        "A",
        "\x01",     "\xff\xfe",  "é",
    };
    size_t n = sizeof(values) / sizeof(values[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            for (uint64_t ida = 1; ida <= 2; ida++)
                for (uint64_t idb = 1; idb <= 2; idb++) {
                    if (i == j && ida == idb)
                        continue;
                    la = key_build(a, ida, values[i], strlen(values[i]));
                    lb = key_build(b, idb, values[j], strlen(values[j]));
                    /* Distinct, and neither a prefix of the other that the
                     * script's suffixes (":b", ":wN", ":mN") could extend
                     * into the other: the length field ends the value. */
                    assert_false(la == lb && memcmp(a, b, la) == 0);
                }
    /* Long and binary values are hashed, whole: no two share a key. */
    char lng[200];
    memset(lng, 'x', sizeof(lng));
    la = key_build(a, 7, lng, 65);
    lb = key_build(b, 7, lng, 66);
    assert_int_equal(la, 3 + 16 + 3 + 64);
    assert_int_equal(memcmp(a, "rl:0000000000000007:#:", 22), 0);
    assert_false(la == lb && memcmp(a, b, la) == 0);
    la = key_build(a, 7, lng, 64); /* at the bound: in clear */
    assert_int_equal(la, 3 + 16 + 1 + 2 + 1 + 64);
    la = key_build(a, 7, "a\nb", 3);
    assert_int_equal(memcmp(a, "rl:0000000000000007:#:", 22), 0);
    la = key_build(a, 7, "\x06\x20\x01\x0d\xb8\0\0\0\0", 9); /* an IPv6 /64 key */
    assert_int_equal(la, 3 + 16 + 3 + 64);
    assert_true(la <= FL_KEY_MAX);
}

/* End to end: values a client could choose land in their own counters,
 * under the store's prefix. */
static void test_keys_in_redis(void **state)
{
    (void)state;
    fl_conf_t *c = conf_with("keys:", 2000, 64);
    fl_worker_t *w = fl_worker_new();
    static const char *const values[] = {"v", "v:b", "1:v", "v:w0", ""};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        tb_t tb;
        tb.spec[0] = (gh_limit_spec_t){.id = 42, .algo = GH_LIMIT_BUCKET, .rate = {1, 3600000, 1}};
        strcpy(tb.keys[0], values[i]);
        tb_init(&tb, 1, w, &loop);
        assert_int_equal(tb_take(&tb, c), 0);
        assert_true(tb.items[0].res.allowed); /* a fresh bucket each */
        tb_init(&tb, 1, w, &loop);
        assert_int_equal(tb_take(&tb, c), 0);
        assert_false(tb.items[0].res.allowed); /* and it is that value's */
    }
    /* The same value under another limit's id: its own bucket. */
    tb_t tb;
    tb.spec[0] = (gh_limit_spec_t){.id = 43, .algo = GH_LIMIT_BUCKET, .rate = {1, 3600000, 1}};
    strcpy(tb.keys[0], "v");
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(tb_take(&tb, c), 0);
    assert_true(tb.items[0].res.allowed);
    /* What Redis holds: the prefix, the id, the length, the value. */
    gh_redis_sync_t *sc;
    gh_redis_opts_t o = {.host = "127.0.0.1", .port = (uint16_t)srv.port};
    char err[128];
    assert_non_null(sc = gh_redis_sync_new(&o, err, sizeof(err)));
    const char *argv[] = {"EXISTS", "keys:rl:000000000000002a:3:v:b:b"};
    size_t lens[] = {6, strlen(argv[1])};
    struct redisReply *r = NULL;
    assert_int_equal(gh_redis_sync_command(sc, 2, argv, lens, 0, &r), 0);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    gh_redis_reply_free(r);
    gh_redis_sync_free(sc);
    worker_teardown(&loop, w);
    assert_int_equal(uv_loop_init(&loop), 0);
    fl_close(c);
}

/* ---- failures ---- */

static gh_limit_spec_t one_per_hour(uint64_t id)
{
    return (gh_limit_spec_t){.id = id, .algo = GH_LIMIT_BUCKET, .rate = {1, 3600000, 1000}};
}

typedef struct {
    fl_worker_t *w;
    uint64_t connected;
} conn_want_t;

static int connected_is(void *arg)
{
    conn_want_t *x = arg;
    return x->w->cur != NULL && client_ready(x->w->cur) == (x->connected > 0);
}

static void test_stopped_server_times_out(void **state)
{
    (void)state;
    fl_conf_t *c = conf_with("stop:", 100, 64);
    fl_worker_t *w = fl_worker_new();
    tb_t tb;
    tb.spec[0] = one_per_hour(1);
    strcpy(tb.keys[0], "k");
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(tb_take(&tb, c), 0);
    rs_pause(&srv);
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(tb_take(&tb, c), -ETIMEDOUT);
    rs_resume(&srv);
    uint64_t timeouts = __atomic_load_n(&reasons[FL_E_TIMEOUT], __ATOMIC_RELAXED);
    assert_true(timeouts >= 1);
    /* Back: the client reconnects (the timeout closed its connection). */
    conn_want_t want = {w, 1};
    wait_until(connected_is, &want);
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(tb_take(&tb, c), 0);
    assert_true(tb.items[0].res.allowed);
    worker_teardown(&loop, w);
    assert_int_equal(uv_loop_init(&loop), 0);
    fl_close(c);
}

static void test_killed_server_fails_fast_then_recovers(void **state)
{
    (void)state;
    fl_conf_t *c = conf_with("kill:", 1000, 64);
    fl_worker_t *w = fl_worker_new();
    tb_t tb;
    tb.spec[0] = one_per_hour(1);
    strcpy(tb.keys[0], "k");
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(tb_take(&tb, c), 0);
    rs_kill(&srv);
    conn_want_t down = {w, 0};
    wait_until(connected_is, &down);
    /* No connection: refused at once, never queued. */
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(fl_take(c, &tb.b), -ENOTCONN);
    assert_int_equal(tb.calls, 0);
    assert_int_equal(rs_restart(&srv), 0);
    conn_want_t up = {w, 1};
    wait_until(connected_is, &up);
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(tb_take(&tb, c), 0);
    assert_true(tb.items[0].res.allowed);
    worker_teardown(&loop, w);
    assert_int_equal(uv_loop_init(&loop), 0);
    fl_close(c);
}

static void test_calls_in_flight_are_bounded(void **state)
{
    (void)state;
    fl_conf_t *c = conf_with("bound:", 5000, 2);
    fl_worker_t *w = fl_worker_new();
    tb_t tb[3];
    for (int i = 0; i < 3; i++) {
        tb[i].spec[0] = one_per_hour(1);
        strcpy(tb[i].keys[0], "k");
    }
    tb_init(&tb[0], 1, w, &loop);
    assert_int_equal(tb_take(&tb[0], c), 0); /* connected */
    rs_pause(&srv);
    tb_init(&tb[0], 1, w, &loop);
    tb_init(&tb[1], 1, w, &loop);
    tb_init(&tb[2], 1, w, &loop);
    assert_int_equal(fl_take(c, &tb[0].b), 0);
    assert_int_equal(fl_take(c, &tb[1].b), 0);
    assert_int_equal(fl_take(c, &tb[2].b), -EAGAIN);
    rs_resume(&srv);
    wait_until(tb_called, &tb[0]);
    wait_until(tb_called, &tb[1]);
    assert_int_equal(tb[0].status, 0);
    assert_int_equal(tb[1].status, 0);
    assert_int_equal(tb[2].calls, 0);
    worker_teardown(&loop, w);
    assert_int_equal(uv_loop_init(&loop), 0);
    fl_close(c);
}

/* A worker's first call: its client is still connecting; the call is
 * held, then sent, not failed. */
static void test_first_call_waits_for_the_connection(void **state)
{
    (void)state;
    fl_conf_t *c = conf_with("first:", 1000, 64);
    for (int round = 0; round < 3; round++) {
        fl_worker_t *w = fl_worker_new();
        tb_t tb[2];
        for (int i = 0; i < 2; i++) {
            tb[i].spec[0] = one_per_hour(1);
            strcpy(tb[i].keys[0], "k");
            tb_init(&tb[i], 1, w, &loop);
            assert_int_equal(fl_take(c, &tb[i].b), 0);
        }
        assert_int_equal(w->waiting, 2); /* nothing connected yet */
        wait_until(tb_called, &tb[0]);
        wait_until(tb_called, &tb[1]);
        assert_int_equal(tb[0].status, 0);
        assert_int_equal(tb[1].status, 0);
        assert_true(tb[0].items[0].res.allowed);
        worker_teardown(&loop, w);
        assert_int_equal(uv_loop_init(&loop), 0);
    }
    fl_close(c);
}

/* Nobody answers: held calls fail once the connect timeout passed, and
 * later calls fail at once. */
static void test_first_call_without_a_server(void **state)
{
    (void)state;
    fl_conf_t *c = conf_with("nobody:", 1000, 64);
    rs_kill(&srv);
    fl_worker_t *w = fl_worker_new();
    tb_t tb;
    tb.spec[0] = one_per_hour(1);
    strcpy(tb.keys[0], "k");
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(tb_take(&tb, c), -ENOTCONN);
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(fl_take(c, &tb.b), -ENOTCONN);
    assert_int_equal(tb.calls, 0);
    worker_teardown(&loop, w);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(rs_restart(&srv), 0);
    fl_close(c);
}

static size_t registered(void)
{
    size_t n = 0;
    pthread_mutex_lock(&reg_lock);
    for (fl_client_t *cl = reg_head; cl != NULL; cl = cl->reg_next)
        n++;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

/* A reload that changes the store: the worker makes a client for the new
 * one; the client before serves its calls in flight, and the requests of
 * the snapshot before, and is closed when its last call ended. */
static void test_store_change_on_reload(void **state)
{
    (void)state;
    fl_conf_t *a = conf_with("a:", 5000, 64), *b = conf_with("b:", 5000, 64);
    fl_worker_t *w = fl_worker_new();
    tb_t ta, tb2;
    size_t base = registered();
    ta.spec[0] = one_per_hour(1);
    strcpy(ta.keys[0], "k");
    tb2.spec[0] = one_per_hour(1);
    strcpy(tb2.keys[0], "k");
    tb_init(&ta, 1, w, &loop);
    assert_int_equal(tb_take(&ta, a), 0);
    assert_int_equal(registered(), base + 1);
    fl_client_t *first = w->cur;
    rs_pause(&srv);
    tb_init(&ta, 1, w, &loop);
    assert_int_equal(fl_take(a, &ta.b), 0); /* in flight on a's client */
    tb_init(&tb2, 1, w, &loop);
    assert_int_equal(fl_take(b, &tb2.b), 0); /* a new client, still connecting */
    assert_ptr_not_equal(w->cur, first);
    assert_ptr_equal(w->old, first);
    assert_int_equal(registered(), base + 2);
    rs_resume(&srv);
    wait_until(tb_called, &ta);
    wait_until(tb_called, &tb2);
    assert_int_equal(ta.status, 0);
    assert_int_equal(tb2.status, 0);
    /* a's client had no call left: closed. Counts are per prefix. */
    assert_null(w->old);
    assert_int_equal(registered(), base + 1);
    assert_int_equal(ta.items[0].res.remaining, 998);
    assert_int_equal(tb2.items[0].res.remaining, 999);
    /* The snapshot before may still send: a client for it again. */
    tb_init(&ta, 1, w, &loop);
    assert_int_equal(tb_take(&ta, a), 0);
    assert_int_equal(ta.items[0].res.remaining, 997);
    worker_teardown(&loop, w);
    assert_int_equal(registered(), base);
    assert_int_equal(uv_loop_init(&loop), 0);
    fl_close(a);
    fl_close(b);
}

static int no_client(void *arg)
{
    return ((fl_worker_t *)arg)->cur == NULL;
}

/* A client left without calls is closed (a reload removed the fleet
 * limits: no worker keeps connections nobody uses), and made again by
 * the next call. */
static void test_idle_client_is_closed(void **state)
{
    (void)state;
    fl_conf_t *c = conf_with("idle:", 2000, 64);
    fl_worker_t *w = fl_worker_new();
    size_t base = registered();
    fl_idle_ms = 50;
    tb_t tb;
    tb.spec[0] = one_per_hour(1);
    strcpy(tb.keys[0], "k");
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(tb_take(&tb, c), 0);
    assert_int_equal(registered(), base + 1);
    wait_until(no_client, w);
    assert_int_equal(registered(), base);
    tb_init(&tb, 1, w, &loop);
    assert_int_equal(tb_take(&tb, c), 0); /* held for the new connection, then sent */
    assert_int_equal(tb.items[0].res.remaining, 998);
    fl_idle_ms = 60000;
    worker_teardown(&loop, w);
    assert_int_equal(uv_loop_init(&loop), 0);
    fl_close(c);
}

/* The worker ends with calls in flight and held: they end with
 * -ESHUTDOWN when its state is freed, after its loop closed (no use of
 * freed handles: ASan). */
static void test_worker_teardown_with_calls_in_flight(void **state)
{
    (void)state;
    fl_conf_t *c = conf_with("down:", 5000, 64);
    uv_loop_t own;
    assert_int_equal(uv_loop_init(&own), 0);
    fl_worker_t *w = fl_worker_new();
    tb_t tb[3];
    for (int i = 0; i < 3; i++) {
        tb[i].spec[0] = one_per_hour(1);
        strcpy(tb[i].keys[0], "k");
    }
    tb_init(&tb[0], 1, w, &own);
    assert_int_equal(fl_take(c, &tb[0].b), 0);
    wait_until_on(&own, tb_called, &tb[0]);
    assert_int_equal(tb[0].status, 0);
    rs_pause(&srv);
    tb_init(&tb[1], 1, w, &own);
    assert_int_equal(fl_take(c, &tb[1].b), 0);
    uv_run(&own, UV_RUN_NOWAIT);
    /* and one held for a new client (another store) */
    fl_conf_t *c2 = conf_with("down2:", 5000, 64);
    tb_init(&tb[2], 1, w, &own);
    assert_int_equal(fl_take(c2, &tb[2].b), 0);
    assert_int_equal(w->waiting, 1);
    worker_teardown(&own, w);
    assert_int_equal(tb[1].calls, 1);
    assert_int_equal(tb[1].status, -ESHUTDOWN);
    assert_int_equal(tb[2].calls, 1);
    assert_int_equal(tb[2].status, -ESHUTDOWN);
    rs_resume(&srv);
    fl_close(c);
    fl_close(c2);
}

/* ---- metrics and logs ---- */

static void test_metrics_and_log_throttle(void **state)
{
    (void)state;
    char buf[4096];
    size_t need = fl_metrics(NULL, 0);
    assert_true(need > 0 && need < sizeof(buf));
    assert_int_equal(fl_metrics(buf, sizeof(buf)), need);
    assert_int_equal(strlen(buf), need);
    char line[128];
    snprintf(line, sizeof(line),
             "gatehouse_rate_limit_fleet_errors_total{reason=\"timeout\"} %llu\n",
             (unsigned long long)reasons[FL_E_TIMEOUT]);
    assert_non_null(strstr(buf, line));
    snprintf(line, sizeof(line),
             "gatehouse_rate_limit_fleet_decisions_total{result=\"allowed\"} %llu\n",
             (unsigned long long)results[FL_ALLOWED]);
    assert_non_null(strstr(buf, line));
    assert_non_null(strstr(buf, "# TYPE gatehouse_rate_limit_fleet_connections gauge\n"));
    /* Every call of the cases before was answered, held ones too. */
    assert_non_null(strstr(buf, "\ngatehouse_rate_limit_fleet_pending 0\n"));
    /* Cut short, as snprintf. */
    char small[16];
    assert_int_equal(fl_metrics(small, sizeof(small)), need);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    /* One warning per period: the second error is only counted. */
    last_log_ms = 0;
    unlogged_errs = 0;
    uint64_t before = results[FL_ERROR];
    note_error("test", -ENOTCONN);
    assert_int_equal(unlogged_errs, 0);
    note_error("test", -ENOTCONN);
    note_error("test", -EAGAIN);
    assert_int_equal(unlogged_errs, 2);
    assert_int_equal(results[FL_ERROR], before + 3);
}

static void test_open_refusals(void **state)
{
    (void)state;
    char err[256];
    gh_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.store.kind = GH_STORE_SQLITE;
    assert_null(fl_open(&cfg, err, sizeof(err)));
    assert_string_equal(err, "fleet limits need store.kind: redis");
    cfg.store.kind = GH_STORE_REDIS;
    cfg.store.prefix = (char *)"p:";
    cfg.store.address = (char *)"[::1]:7001";
    fl_conf_t *c = fl_open(&cfg, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(c->host, "::1");
    assert_int_equal(c->port, 7001);
    fl_close(c);
    cfg.store.address = (char *)"localhost:7002";
    assert_non_null(c = fl_open(&cfg, err, sizeof(err)));
    assert_string_equal(c->host, "localhost");
    fl_close(c);
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    cfg.store.address = (char *)"redis.internal:6379";
    assert_null(fl_open(&cfg, err, sizeof(err)));
    assert_string_equal(err, "store address 'redis.internal:6379': 'redis.internal' is a host "
                             "name, and GH_CONFIG_NO_DNS forbids looking it up");
    unsetenv("GH_CONFIG_NO_DNS");
}

int main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_open_refusals),
        cmocka_unit_test_setup_teardown(test_mapping_matches_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_limits_all_or_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_in_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_server_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_server_fails_fast_then_recovers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_calls_in_flight_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_call_waits_for_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_call_without_a_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_change_on_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_client_is_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_teardown_with_calls_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_and_log_throttle, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
