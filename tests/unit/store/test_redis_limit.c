/*
 * The fleet rate-limit script (src/store/redis_limit.c) against a real
 * redis-server: its answers compared with a reference token bucket, fixed
 * window and calendar month written here (exact integer arithmetic, months
 * from timegm), on random sequences with an injected clock; the edges
 * (cost above the limit, cost 0, a clock going back, a period changed by a
 * reload, keys and their expiry); the server's clock; NOSCRIPT after
 * SCRIPT FLUSH; and exactness under concurrency: two clients on two
 * threads, each with its own loop and connections, taking at once from
 * one limit, where the allowed takes must add up to the limit exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>

#include <gatehouse/redis.h>

#include "redis_server.h"

static rs_t srv;
static gh_redis_sync_t *sc;

static redisReply *oracle(const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
    assert_non_null(ctx);
    assert_int_equal(ctx->err, 0);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    redisFree(ctx);
    return r;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (rs_start(&srv, NULL) < 0)
        return -1; /* no redis-server: the group fails */
    gh_redis_opts_t o = {.host = "127.0.0.1", .port = (uint16_t)srv.port, .prefix = "t:"};
    sc = gh_redis_sync_new(&o, NULL, 0);
    return sc != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    gh_redis_sync_free(sc);
    rs_stop(&srv);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    redisReply *r = oracle("FLUSHALL");
    freeReplyObject(r);
    return 0;
}

static gh_redis_limit_result_t take(const char *key, const gh_redis_limit_t *lim, uint64_t cost,
                                    uint64_t now)
{
    gh_redis_limit_result_t res;
    memset(&res, 0xa5, sizeof(res));
    assert_int_equal(gh_redis_sync_limit_take(sc, key, strlen(key), lim, cost, now, &res), 0);
    return res;
}

/* ---- the references ---- */

typedef struct {
    int has;
    __int128 credit; /* tokens * period */
    int64_t at;
} ref_bucket_t;

static uint64_t ceil_div(__int128 a, __int128 b)
{
    return (uint64_t)((a + b - 1) / b);
}

static gh_redis_limit_result_t ref_bucket(ref_bucket_t *b, const gh_redis_limit_t *l, uint64_t cost,
                                          int64_t now)
{
    gh_redis_limit_result_t r = {0};
    __int128 cap = (__int128)l->limit * l->period_ms;
    if (cost > l->limit)
        cost = l->limit + 1;
    if (!b->has) {
        b->credit = cap;
        b->at = now;
    } else {
        int64_t t = now > b->at ? now : b->at;
        b->credit += (__int128)(t - b->at) * l->rate;
        if (b->credit > cap)
            b->credit = cap;
        b->at = t;
    }
    b->has = 1;
    __int128 need = (__int128)cost * l->period_ms;
    r.allowed = need <= b->credit;
    if (r.allowed)
        b->credit -= need;
    r.remaining = (uint64_t)(b->credit / l->period_ms);
    r.reset_ms = ceil_div(cap - b->credit, l->rate) + (uint64_t)(b->at - now);
    if (!r.allowed)
        r.retry_after_ms = need > cap
                               ? GH_REDIS_NEVER
                               : ceil_div(need - b->credit, l->rate) + (uint64_t)(b->at - now);
    r.now_ms = (uint64_t)now;
    if (b->credit >= cap)
        b->has = 0; /* a full bucket is no key */
    return r;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Window start and end of now (ms) for a window or a month limit. */
static void ref_window_bounds(const gh_redis_limit_t *l, int64_t now, int64_t *ws, int64_t *we)
{
    if (l->kind == GH_REDIS_LIMIT_WINDOW) {
        *ws = floor_div(now - l->offset_ms, (int64_t)l->period_ms) * (int64_t)l->period_ms +
              l->offset_ms;
        *we = *ws + (int64_t)l->period_ms;
        return;
    }
    int64_t day = floor_div(now - l->offset_ms, 86400000);
    time_t secs = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&secs, &tm);
    struct tm first = {.tm_year = tm.tm_year, .tm_mon = tm.tm_mon, .tm_mday = 1};
    struct tm next = {
        .tm_year = tm.tm_year + (tm.tm_mon == 11), .tm_mon = (tm.tm_mon + 1) % 12, .tm_mday = 1};
    *ws = (int64_t)timegm(&first) * 1000 + l->offset_ms;
    *we = (int64_t)timegm(&next) * 1000 + l->offset_ms;
}

#define REF_WINDOWS 64

typedef struct {
    int64_t start[REF_WINDOWS];
    uint64_t used[REF_WINDOWS];
    int n;
} ref_window_t;

static gh_redis_limit_result_t ref_window(ref_window_t *w, const gh_redis_limit_t *l, uint64_t cost,
                                          int64_t now)
{
    gh_redis_limit_result_t r = {0};
    int64_t ws, we;
    ref_window_bounds(l, now, &ws, &we);
    int i;
    for (i = 0; i < w->n && w->start[i] != ws; i++)
        ;
    if (i == w->n) {
        assert_true(w->n < REF_WINDOWS);
        w->start[w->n] = ws;
        w->used[w->n++] = 0;
    }
    r.allowed = w->used[i] + cost <= l->limit;
    if (r.allowed)
        w->used[i] += cost;
    r.remaining = w->used[i] >= l->limit ? 0 : l->limit - w->used[i];
    r.reset_ms = (uint64_t)(we - now);
    if (!r.allowed)
        r.retry_after_ms = cost > l->limit ? GH_REDIS_NEVER : (uint64_t)(we - now);
    r.now_ms = (uint64_t)now;
    return r;
}

static void assert_same(const gh_redis_limit_result_t *got, const gh_redis_limit_result_t *want,
                        int step)
{
    if (got->allowed != want->allowed || got->remaining != want->remaining ||
        got->reset_ms != want->reset_ms || got->retry_after_ms != want->retry_after_ms ||
        got->now_ms != want->now_ms)
        fail_msg("step %d: got allowed=%d remaining=%llu reset=%llu retry=%llu now=%llu, "
                 "want allowed=%d remaining=%llu reset=%llu retry=%llu now=%llu",
                 step, got->allowed, (unsigned long long)got->remaining,
                 (unsigned long long)got->reset_ms, (unsigned long long)got->retry_after_ms,
                 (unsigned long long)got->now_ms, want->allowed,
                 (unsigned long long)want->remaining, (unsigned long long)want->reset_ms,
                 (unsigned long long)want->retry_after_ms, (unsigned long long)want->now_ms);
}

static uint64_t rnd_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(uint64_t n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return n == 0 ? 0 : rnd_state % n;
}

/* ---- cases ---- */

static void test_bucket_by_hand(void **state)
{
    (void)state;
    /* 5 tokens, one per second. */
    gh_redis_limit_t l = {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 5, .rate = 1, .period_ms = 1000};
    uint64_t t0 = 1700000000000ull;
    for (int i = 0; i < 5; i++) {
        gh_redis_limit_result_t r = take("b", &l, 1, t0);
        assert_int_equal(r.allowed, 1);
        assert_int_equal(r.remaining, 4 - i);
        assert_int_equal(r.retry_after_ms, 0);
        assert_int_equal(r.reset_ms, 1000 * (uint64_t)(i + 1));
        assert_int_equal(r.now_ms, t0);
    }
    gh_redis_limit_result_t r = take("b", &l, 1, t0);
    assert_int_equal(r.allowed, 0);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_ms, 1000);
    /* Half a token later: still not, 500 ms to go. */
    r = take("b", &l, 1, t0 + 500);
    assert_int_equal(r.allowed, 0);
    assert_int_equal(r.retry_after_ms, 500);
    r = take("b", &l, 1, t0 + 1000);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 0);
    /* Cost 2 needs two tokens: 2 s after t0 + 1000. */
    r = take("b", &l, 2, t0 + 1000);
    assert_int_equal(r.allowed, 0);
    assert_int_equal(r.retry_after_ms, 2000);
    /* A cost above the burst can never be taken. */
    r = take("b", &l, 6, t0 + 100000);
    assert_int_equal(r.allowed, 0);
    assert_int_equal(r.retry_after_ms, GH_REDIS_NEVER);
    assert_int_equal(r.remaining, 5);
    r = take("b", &l, UINT64_MAX, t0 + 100000);
    assert_int_equal(r.retry_after_ms, GH_REDIS_NEVER);
    /* A full bucket is no key at all. */
    redisReply *k = oracle("EXISTS t:b:b");
    assert_int_equal(k->integer, 0);
    freeReplyObject(k);
    /* Cost 0 reads without taking. */
    r = take("b", &l, 0, t0 + 100000);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 5);
    r = take("b", &l, 3, t0 + 100000);
    assert_int_equal(r.remaining, 2);
    k = oracle("PTTL t:b:b");
    assert_true(k->integer > 3000); /* expires once full again, plus a minute */
    freeReplyObject(k);
}

/* Two gatehouses whose clocks disagree (caller's clock): time never runs
 * back for the bucket, so the interval is not refilled twice. */
static void test_bucket_clock_back(void **state)
{
    (void)state;
    gh_redis_limit_t l = {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 2, .rate = 1, .period_ms = 1000};
    uint64_t t0 = 1700000000000ull;
    take("c", &l, 2, t0 + 5000); /* empty at t0 + 5 s */
    gh_redis_limit_result_t r = take("c", &l, 1, t0);
    assert_int_equal(r.allowed, 0);
    assert_int_equal(r.retry_after_ms, 5000 + 1000); /* in the caller's clock */
    r = take("c", &l, 1, t0 + 5999);
    assert_int_equal(r.allowed, 0);
    r = take("c", &l, 1, t0 + 6000);
    assert_int_equal(r.allowed, 1);
    /* The late clock again: nothing refilled for it. */
    r = take("c", &l, 1, t0 + 3000);
    assert_int_equal(r.allowed, 0);
}

/* A reload that changes the refill period keeps the tokens left. */
static void test_bucket_period_change(void **state)
{
    (void)state;
    gh_redis_limit_t a = {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 10, .rate = 1, .period_ms = 1000};
    gh_redis_limit_t b = {
        .kind = GH_REDIS_LIMIT_BUCKET, .limit = 10, .rate = 60, .period_ms = 60000};
    uint64_t t0 = 1700000000000ull;
    gh_redis_limit_result_t r = take("p", &a, 7, t0);
    assert_int_equal(r.remaining, 3);
    r = take("p", &b, 1, t0);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 2);
    /* A smaller burst caps what is there. */
    gh_redis_limit_t c = {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 1, .rate = 1, .period_ms = 1000};
    r = take("p", &c, 0, t0);
    assert_int_equal(r.remaining, 1);
}

static void test_bucket_random_vs_reference(void **state)
{
    (void)state;
    const gh_redis_limit_t ls[] = {
        {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 1, .rate = 1, .period_ms = 1},
        {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 7, .rate = 3, .period_ms = 1000},
        {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 100, .rate = 7, .period_ms = 60000},
        {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 20, .rate = 1000, .period_ms = 1},
        {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 1000000, .rate = 999983, .period_ms = 3600000},
    };
    for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
        char key[16];
        snprintf(key, sizeof(key), "r%zu", i);
        ref_bucket_t ref = {0};
        int64_t now = 1700000000000ll + (int64_t)rnd(1000000);
        for (int step = 0; step < 400; step++) {
            /* Mostly forward, sometimes back (another gatehouse's clock). */
            uint64_t dt = rnd(4) == 0 ? 0 : rnd(ls[i].period_ms * 3 / (ls[i].rate + 1) + 3);
            now += rnd(10) == 0 ? -(int64_t)rnd(2000) : (int64_t)dt;
            uint64_t cost = rnd(3) == 0 ? rnd(ls[i].limit + 2) : (rnd(8) == 0 ? 0 : 1);
            gh_redis_limit_result_t got = take(key, &ls[i], cost, (uint64_t)now);
            gh_redis_limit_result_t want = ref_bucket(&ref, &ls[i], cost, now);
            assert_same(&got, &want, step);
        }
    }
}

static void test_window_random_vs_reference(void **state)
{
    (void)state;
    const gh_redis_limit_t ls[] = {
        {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 5, .period_ms = 1000},
        {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 3, .period_ms = 60000, .offset_ms = 7000},
        {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 10, .period_ms = 86400000, .offset_ms = -3600000},
        /* A week from Monday 00:00 UTC (1970-01-05). */
        {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 4, .period_ms = 604800000, .offset_ms = 345600000},
        {.kind = GH_REDIS_LIMIT_MONTH, .limit = 6},
        {.kind = GH_REDIS_LIMIT_MONTH, .limit = 2, .offset_ms = 6 * 3600000},
    };
    for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
        char key[16];
        snprintf(key, sizeof(key), "w%zu", i);
        ref_window_t ref = {0};
        uint64_t span = ls[i].kind == GH_REDIS_LIMIT_MONTH ? 40ull * 86400000 : ls[i].period_ms;
        int64_t now = 1700000000000ll;
        for (int step = 0; step < 300; step++) {
            now += (int64_t)rnd(span / 4 + 1);
            uint64_t cost = rnd(4) == 0 ? rnd(ls[i].limit + 2) : 1;
            gh_redis_limit_result_t got = take(key, &ls[i], cost, (uint64_t)now);
            gh_redis_limit_result_t want = ref_window(&ref, &ls[i], cost, now);
            assert_same(&got, &want, step);
            if (ref.n == REF_WINDOWS)
                break;
        }
    }
}

/* Every month boundary from 1970 to 2400, the last ms before and the
 * first of each month (leap years, centuries, 2000 and 2100, 2400). */
static void test_month_boundaries(void **state)
{
    (void)state;
    gh_redis_limit_t l = {.kind = GH_REDIS_LIMIT_MONTH, .limit = 1000};
    gh_redis_limit_t off = {.kind = GH_REDIS_LIMIT_MONTH, .limit = 1000, .offset_ms = -7200000};
    int checked = 0;
    for (int y = 1970; y <= 2400; y += (y < 1990 || (y > 2090 && y < 2110) || y > 2390) ? 1 : 7) {
        for (int m = 0; m < 12; m++) {
            struct tm tm = {.tm_year = y - 1900, .tm_mon = m, .tm_mday = 1};
            int64_t start = (int64_t)timegm(&tm) * 1000;
            const gh_redis_limit_t *which[] = {&l, &off};
            for (int k = 0; k < 2; k++) {
                int64_t b = start + which[k]->offset_ms;
                for (int d = -1; d <= 0; d++) {
                    if (b + d <= 0)
                        continue; /* now 0 asks for the server's clock */
                    gh_redis_limit_result_t got = take("m", which[k], 0, (uint64_t)(b + d));
                    int64_t ws, we;
                    ref_window_bounds(which[k], b + d, &ws, &we);
                    if (got.reset_ms != (uint64_t)(we - (b + d)))
                        fail_msg("%d-%02d %+d ms (offset %lld): reset %llu, want %lld", y, m + 1, d,
                                 (long long)which[k]->offset_ms, (unsigned long long)got.reset_ms,
                                 (long long)(we - (b + d)));
                    /* The first ms of a month starts it; the last ends the one before. */
                    assert_int_equal(d == 0 ? ws : we, b);
                    checked++;
                }
            }
        }
    }
    assert_true(checked > 2000);
}

/* A take creates key:START with an expiry a minute past the window; a
 * denied take does not count. */
static void test_window_keys(void **state)
{
    (void)state;
    gh_redis_limit_t l = {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 2, .period_ms = 60000};
    uint64_t now = 1699999990000ull; /* 10 s into the minute from 1699999980000 */
    take("k", &l, 1, now);
    take("k", &l, 1, now);
    gh_redis_limit_result_t r = take("k", &l, 1, now);
    assert_int_equal(r.allowed, 0);
    assert_int_equal(r.retry_after_ms, 50000);
    assert_int_equal(r.reset_ms, 50000);
    redisReply *k = oracle("GET t:k:w1699999980000");
    assert_string_equal(k->str, "2");
    freeReplyObject(k);
    k = oracle("PTTL t:k:w1699999980000");
    assert_true(k->integer > 60000 && k->integer <= 110000);
    freeReplyObject(k);
    r = take("k", &l, 1, now + 50000);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 1);
}

/* now 0: the server's clock decides (the same host: close to ours). */
static void test_server_clock(void **state)
{
    (void)state;
    gh_redis_limit_t l = {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 3, .period_ms = 86400000};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t here = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    gh_redis_limit_result_t r = take("s", &l, 1, 0);
    assert_int_equal(r.allowed, 1);
    assert_true(r.now_ms + 60000 > here && r.now_ms < here + 60000);
    assert_int_equal(r.reset_ms, 86400000 - r.now_ms % 86400000);
    gh_redis_limit_t b = {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 2, .rate = 1, .period_ms = 1000};
    r = take("sb", &b, 2, 0);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 0);
}

static void test_limit_check(void **state)
{
    (void)state;
    const uint64_t big = UINT64_C(1) << 52;
    struct {
        gh_redis_limit_t l;
        int ok;
    } cases[] = {
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = 1, .rate = 1, .period_ms = 1}, 1},
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = 0, .rate = 1, .period_ms = 1}, 0},
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = 1, .rate = 0, .period_ms = 1}, 0},
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = 1, .rate = 1, .period_ms = 0}, 0},
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = big, .rate = 1, .period_ms = 1}, 1},
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = big, .rate = 1, .period_ms = 2}, 0},
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = big + 1, .rate = 1, .period_ms = 1}, 0},
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = 1, .rate = big + 1, .period_ms = 1}, 0},
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = 1 << 20, .rate = 1, .period_ms = big >> 20}, 1},
        {{.kind = GH_REDIS_LIMIT_BUCKET, .limit = 1 << 20, .rate = 1, .period_ms = (big >> 20) + 1},
         0},
        {{.kind = GH_REDIS_LIMIT_WINDOW, .limit = 1, .period_ms = 0}, 0},
        {{.kind = GH_REDIS_LIMIT_WINDOW, .limit = 1, .period_ms = UINT64_MAX}, 0},
        {{.kind = GH_REDIS_LIMIT_WINDOW, .limit = UINT64_MAX, .period_ms = 1}, 0},
        {{.kind = GH_REDIS_LIMIT_WINDOW, .limit = 1, .period_ms = 1, .offset_ms = INT64_MIN}, 0},
        {{.kind = GH_REDIS_LIMIT_MONTH, .limit = 1, .offset_ms = -86400000}, 1},
        {{.kind = GH_REDIS_LIMIT_MONTH, .limit = 0}, 0},
        {{.kind = (gh_redis_limit_kind_t)7, .limit = 1, .rate = 1, .period_ms = 1}, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if ((gh_redis_limit_check(&cases[i].l) == 0) != cases[i].ok)
            fail_msg("case %zu", i);
        gh_redis_limit_result_t r;
        int rc = gh_redis_sync_limit_take(sc, "x", 1, &cases[i].l, 1, 1, &r);
        assert_int_equal(rc == 0, cases[i].ok);
        if (!cases[i].ok)
            assert_int_equal(rc, -EINVAL);
    }
    assert_int_equal(gh_redis_limit_check(NULL), -EINVAL);
    gh_redis_limit_t l = {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 1, .period_ms = 1};
    gh_redis_limit_result_t r;
    assert_int_equal(gh_redis_sync_limit_take(sc, "x", 1, &l, 1, UINT64_MAX, &r), -EINVAL);
    assert_int_equal(gh_redis_sync_limit_take(sc, NULL, 0, &l, 1, 1, &r), -EINVAL);
}

/* A key with odd bytes is one key, whatever it holds. */
static void test_odd_keys(void **state)
{
    (void)state;
    gh_redis_limit_t l = {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 1, .period_ms = 60000};
    const char key[] = "a\0b\r\n:1700000000000 *";
    gh_redis_limit_result_t r;
    assert_int_equal(
        gh_redis_sync_limit_take(sc, key, sizeof(key) - 1, &l, 1, 1700000000000ull, &r), 0);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(gh_redis_sync_limit_take(sc, key, 1, &l, 1, 1700000000000ull, &r), 0);
    assert_int_equal(r.allowed, 1); /* "a" alone is another key */
    assert_int_equal(
        gh_redis_sync_limit_take(sc, key, sizeof(key) - 1, &l, 1, 1700000000000ull, &r), 0);
    assert_int_equal(r.allowed, 0);
}

/* A client that chooses its own limit key (a header's value) cannot name
 * the state of another limit: whatever the bytes, buckets, windows and
 * months live under keys no other (kind, key, window) pair produces. */
static void test_keys_cannot_collide(void **state)
{
    (void)state;
    uint64_t now = 1699999990000ull; /* window start 1699999980000 */
    gh_redis_limit_t win = {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 2, .period_ms = 60000};
    gh_redis_limit_t bucket = {
        .kind = GH_REDIS_LIMIT_BUCKET, .limit = 2, .rate = 1, .period_ms = 1000};
    gh_redis_limit_t month = {.kind = GH_REDIS_LIMIT_MONTH, .limit = 2};
    const char *hostile[] = {"victim:w1699999980000",
                             "victim:1699999980000",
                             "victim:w1699999980000:b",
                             "victim:b",
                             "victim:w",
                             "victim:"};
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        take(hostile[i], &bucket, 1, now);
        take(hostile[i], &win, 1, now);
        take(hostile[i], &month, 1, now);
    }
    /* The victim's window is untouched and of the right type. */
    gh_redis_limit_result_t r = take("victim", &win, 1, now);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 1);
    r = take("victim", &bucket, 1, now);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 1);
    r = take("victim", &month, 1, now);
    assert_int_equal(r.allowed, 1);
    assert_int_equal(r.remaining, 1);
}

/* ---- NOSCRIPT and concurrency: async clients ---- */

typedef struct {
    int calls;
    int status;
    gh_redis_limit_result_t res;
} take_res_t;

static void on_take(int status, const gh_redis_limit_result_t *res, void *arg)
{
    take_res_t *t = arg;
    t->calls++;
    t->status = status;
    if (res != NULL)
        t->res = *res;
}

static void run_until_called(uv_loop_t *loop, take_res_t *t, int n)
{
    for (int turns = 0; turns < 1000000; turns++) {
        int done = 1;
        for (int i = 0; i < n; i++)
            done &= t[i].calls > 0;
        if (done)
            return;
        uv_run(loop, UV_RUN_ONCE);
    }
    fail_msg("no reply");
}

static gh_redis_t *connect_on(uv_loop_t *loop, unsigned pool)
{
    gh_redis_opts_t o = {.host = "127.0.0.1",
                         .port = (uint16_t)srv.port,
                         .prefix = "t:",
                         .pool_size = pool,
                         .max_pending = 4096,
                         .command_timeout_ms = 20000};
    gh_redis_t *c = gh_redis_new(loop, &o, NULL, 0);
    if (c == NULL)
        return NULL;
    gh_redis_stats_t st;
    for (int i = 0; i < 1000000; i++) {
        gh_redis_stats(c, &st);
        if (st.connected == pool)
            return c;
        uv_run(loop, UV_RUN_ONCE);
    }
    return c;
}

static void test_noscript_recovery(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    gh_redis_t *c = connect_on(&loop, 1);
    assert_non_null(c);
    gh_redis_limit_t l = {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 3, .period_ms = 60000};
    uint64_t now = 1700000000000ull;
    for (int i = 0; i < 4; i++) {
        if (i == 2) {
            redisReply *r = oracle("SCRIPT FLUSH");
            freeReplyObject(r);
        }
        take_res_t t = {0};
        assert_int_equal(gh_redis_limit_take(c, "n", 1, &l, 1, now, on_take, &t, NULL), 0);
        run_until_called(&loop, &t, 1);
        assert_int_equal(t.calls, 1);
        assert_int_equal(t.status, 0);
        assert_int_equal(t.res.allowed, i < 3);
        assert_int_equal(t.res.remaining, i < 3 ? 2 - i : 0);
    }
    /* Sync too. */
    redisReply *r = oracle("SCRIPT FLUSH");
    freeReplyObject(r);
    gh_redis_limit_result_t res;
    assert_int_equal(gh_redis_sync_limit_take(sc, "n", 1, &l, 0, now, &res), 0);
    assert_int_equal(res.remaining, 0);
    gh_redis_stats_t st;
    gh_redis_stats(c, &st);
    assert_int_equal(st.errors, 0); /* NOSCRIPT answered, not an error */
    gh_redis_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* An error reply from the script reaches the caller as -EPROTO. */
static void test_script_error(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    gh_redis_t *c = connect_on(&loop, 1);
    redisReply *r = oracle("SET t:wrongtype:w1699999980000 notanumber");
    freeReplyObject(r);
    gh_redis_limit_t l = {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 3, .period_ms = 60000};
    take_res_t t = {0};
    assert_int_equal(
        gh_redis_limit_take(c, "wrongtype", 9, &l, 1, 1700000000000ull, on_take, &t, NULL), 0);
    run_until_called(&loop, &t, 1);
    assert_int_equal(t.status, -EPROTO);
    gh_redis_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

#define TAKES 300

typedef struct {
    int calls;
    int status;
    int allowed;
    size_t n;
    gh_redis_limit_result_t res[GH_REDIS_LIMITS_MAX];
} multi_res_t;

static void on_multi(int status, int allowed, const gh_redis_limit_result_t *res, size_t n,
                     void *arg)
{
    multi_res_t *m = arg;
    m->calls++;
    m->status = status;
    m->allowed = allowed;
    m->n = n;
    for (size_t i = 0; i < n && i < GH_REDIS_LIMITS_MAX; i++)
        m->res[i] = res[i];
}

typedef struct {
    const gh_redis_limit_key_t *keys;
    size_t n;
    uint64_t now;
    pthread_barrier_t *go;
    int ok;
    int allowed;
    int denied;
    int failed;
    int inconsistent; /* allowed while a limit refused, or the other way */
    multi_res_t t[TAKES];
} racer_t;

static void *racer(void *arg)
{
    racer_t *r = arg;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return NULL;
    gh_redis_t *c = connect_on(&loop, 2);
    pthread_barrier_wait(r->go);
    if (c != NULL) {
        r->ok = 1;
        for (int i = 0; i < TAKES; i++)
            if (gh_redis_limits_take(c, r->keys, r->n, 1, r->now, on_multi, &r->t[i], NULL) != 0)
                r->ok = 0;
        for (int turns = 0; turns < 10000000; turns++) {
            int done = 1;
            for (int i = 0; i < TAKES; i++)
                done &= r->t[i].calls > 0;
            if (done)
                break;
            uv_run(&loop, UV_RUN_ONCE);
        }
        for (int i = 0; i < TAKES; i++) {
            multi_res_t *m = &r->t[i];
            if (m->calls != 1 || m->status != 0 || m->n != r->n) {
                r->failed++;
                continue;
            }
            int every = 1;
            for (size_t k = 0; k < m->n; k++) {
                every &= m->res[k].allowed;
                /* A limit that refuses has nothing left for this cost. */
                if (!m->res[k].allowed && m->res[k].remaining != 0)
                    r->inconsistent++;
            }
            if (every != m->allowed)
                r->inconsistent++;
            if (m->allowed)
                r->allowed++;
            else
                r->denied++;
        }
        gh_redis_close(c);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return NULL;
}

/* Two clients, each on its own thread, loop and connections, take 1 unit
 * TAKES times each, all at once, from the same limits. */
static void race(const gh_redis_limit_key_t *keys, size_t n, uint64_t now, int want)
{
    static racer_t rs[2];
    pthread_t th[2];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    for (int i = 0; i < 2; i++) {
        memset(&rs[i], 0, sizeof(rs[i]));
        rs[i].keys = keys;
        rs[i].n = n;
        rs[i].now = now;
        rs[i].go = &go;
        assert_int_equal(pthread_create(&th[i], NULL, racer, &rs[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rs[i].ok, 1);
        assert_int_equal(rs[i].failed, 0);
        assert_int_equal(rs[i].inconsistent, 0);
    }
    assert_int_equal(rs[0].allowed + rs[1].allowed, want);
    assert_int_equal(rs[0].denied + rs[1].denied, 2 * TAKES - want);
}

/* What is left of a limit after a race: a take of 0 reads it. */
static uint64_t left(const gh_redis_limit_key_t *k, uint64_t now)
{
    gh_redis_limit_result_t r;
    assert_int_equal(gh_redis_sync_limit_take(sc, k->key, k->key_len, &k->lim, 0, now, &r), 0);
    return r.remaining;
}

/* Limits between TAKES and 2 * TAKES: neither client alone can use it up,
 * so both are still taking when it runs out. */
static void test_exact_bucket_two_clients(void **state)
{
    (void)state;
    /* Refilled by one a day: no refill during the race. */
    gh_redis_limit_key_t k[] = {
        {"race-bucket",
         11,
         {.kind = GH_REDIS_LIMIT_BUCKET, .limit = TAKES + 137, .rate = 1, .period_ms = 86400000}}};
    race(k, 1, 1700000000000ull, TAKES + 137);
    k[0].key = "race-bucket-server-clock";
    k[0].key_len = strlen(k[0].key);
    race(k, 1, 0, TAKES + 137);
}

static void test_exact_window_two_clients(void **state)
{
    (void)state;
    gh_redis_limit_key_t k[] = {
        {"race-window",
         11,
         {.kind = GH_REDIS_LIMIT_WINDOW, .limit = TAKES + 211, .period_ms = 86400000}}};
    race(k, 1, 1700000000000ull, TAKES + 211);
    gh_redis_limit_key_t m[] = {
        {"race-month", 10, {.kind = GH_REDIS_LIMIT_MONTH, .limit = TAKES + 1}}};
    race(m, 1, 1700000000000ull, TAKES + 1);
}

/* A throttle and a quota in one decision: whichever runs out first stops
 * the requests, and the other is charged for exactly the allowed ones. */
static void test_exact_two_limits_two_clients(void **state)
{
    (void)state;
    uint64_t now = 1700000000000ull;
    gh_redis_limit_key_t k[] = {
        {"race2-throttle",
         14,
         {.kind = GH_REDIS_LIMIT_BUCKET, .limit = TAKES + 137, .rate = 1, .period_ms = 86400000}},
        {"race2-quota", 11, {.kind = GH_REDIS_LIMIT_MONTH, .limit = TAKES + 300}},
    };
    race(k, 2, now, TAKES + 137);
    assert_int_equal(left(&k[0], now), 0);
    assert_int_equal(left(&k[1], now), 300 - 137); /* the refused were not counted */

    gh_redis_limit_key_t q[] = {
        {"race3-throttle",
         14,
         {.kind = GH_REDIS_LIMIT_BUCKET, .limit = TAKES + 200, .rate = 1, .period_ms = 86400000}},
        {"race3-quota",
         11,
         {.kind = GH_REDIS_LIMIT_WINDOW, .limit = TAKES + 50, .period_ms = 86400000}},
    };
    race(q, 2, now, TAKES + 50);
    assert_int_equal(left(&q[0], now), 200 - 50); /* the refused took no token */
    assert_int_equal(left(&q[1], now), 0);
}

/* Several limits by hand: all or nothing. */
static void test_two_limits_by_hand(void **state)
{
    (void)state;
    uint64_t t0 = 1699999980000ull; /* a minute window starts here */
    gh_redis_limit_key_t k[] = {
        {"h-bucket", 8, {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 3, .rate = 1, .period_ms = 1000}},
        {"h-window", 8, {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 5, .period_ms = 60000}},
    };
    gh_redis_limit_result_t r[2];
    int allowed;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gh_redis_sync_limits_take(sc, k, 2, 1, t0, &allowed, r), 0);
        assert_int_equal(allowed, 1);
        assert_int_equal(r[0].remaining, 2 - i);
        assert_int_equal(r[1].remaining, 4 - i);
    }
    /* The bucket is empty: refused, and the window is not charged. */
    assert_int_equal(gh_redis_sync_limits_take(sc, k, 2, 1, t0, &allowed, r), 0);
    assert_int_equal(allowed, 0);
    assert_int_equal(r[0].allowed, 0);
    assert_int_equal(r[0].retry_after_ms, 1000);
    assert_int_equal(r[1].allowed, 1);
    assert_int_equal(r[1].retry_after_ms, 0);
    assert_int_equal(r[1].remaining, 2);
    redisReply *g = oracle("GET t:h-window:w1699999980000");
    assert_string_equal(g->str, "3");
    freeReplyObject(g);
    /* Two seconds later, two tokens: a take of 2 passes both. */
    assert_int_equal(gh_redis_sync_limits_take(sc, k, 2, 2, t0 + 2000, &allowed, r), 0);
    assert_int_equal(allowed, 1);
    assert_int_equal(r[0].remaining, 0);
    assert_int_equal(r[1].remaining, 0);
    /* The window is used up: refused, and the (full) bucket keeps its tokens. */
    assert_int_equal(gh_redis_sync_limits_take(sc, k, 2, 1, t0 + 10000, &allowed, r), 0);
    assert_int_equal(allowed, 0);
    assert_int_equal(r[0].allowed, 1);
    assert_int_equal(r[0].remaining, 3);
    assert_int_equal(r[1].allowed, 0);
    assert_int_equal(r[1].retry_after_ms, 50000);
    assert_int_equal(left(&k[0], t0 + 10000), 3);
    /* A cost above one limit: that one never, the other's own view. */
    assert_int_equal(gh_redis_sync_limits_take(sc, k, 2, 4, t0 + 60000, &allowed, r), 0);
    assert_int_equal(allowed, 0);
    assert_int_equal(r[0].retry_after_ms, GH_REDIS_NEVER);
    assert_int_equal(r[1].allowed, 1);
    assert_int_equal(r[1].remaining, 5);
}

/* Random decisions over a bucket and two windows, against the references
 * combined: all or nothing. */
static void test_multi_random_vs_reference(void **state)
{
    (void)state;
    gh_redis_limit_key_t k[] = {
        {"mr-b", 4, {.kind = GH_REDIS_LIMIT_BUCKET, .limit = 6, .rate = 2, .period_ms = 1000}},
        {"mr-w", 4, {.kind = GH_REDIS_LIMIT_WINDOW, .limit = 9, .period_ms = 5000}},
        {"mr-m", 4, {.kind = GH_REDIS_LIMIT_MONTH, .limit = 40, .offset_ms = 3600000}},
    };
    ref_bucket_t b = {0};
    ref_window_t w = {0}, m = {0};
    int64_t now = 1700000000000ll;
    int allowed_count = 0;
    for (int step = 0; step < 400; step++) {
        now += (int64_t)rnd(rnd(5) == 0 ? 3 * 86400000ull : 900);
        uint64_t cost = rnd(6) == 0 ? rnd(8) : 1;
        gh_redis_limit_result_t got[3];
        int allowed;
        assert_int_equal(gh_redis_sync_limits_take(sc, k, 3, cost, (uint64_t)now, &allowed, got),
                         0);
        /* The references: each limit's verdict with the cost; if any
         * refuses, nothing is taken (their state as after a take of 0). */
        ref_bucket_t b1 = b, b0 = b;
        ref_window_t w1 = w, w0 = w, m1 = m, m0 = m;
        gh_redis_limit_result_t with[3] = {ref_bucket(&b1, &k[0].lim, cost, now),
                                           ref_window(&w1, &k[1].lim, cost, now),
                                           ref_window(&m1, &k[2].lim, cost, now)};
        int all = with[0].allowed && with[1].allowed && with[2].allowed;
        assert_int_equal(allowed, all);
        gh_redis_limit_result_t want[3];
        if (all) {
            memcpy(want, with, sizeof(want));
            b = b1;
            w = w1;
            m = m1;
            allowed_count++;
        } else {
            gh_redis_limit_result_t none[3] = {ref_bucket(&b0, &k[0].lim, 0, now),
                                               ref_window(&w0, &k[1].lim, 0, now),
                                               ref_window(&m0, &k[2].lim, 0, now)};
            for (int i = 0; i < 3; i++) {
                want[i] = none[i];
                want[i].allowed = with[i].allowed;
                want[i].retry_after_ms = with[i].retry_after_ms;
            }
            b = b0;
            w = w0;
            m = m0;
        }
        for (int i = 0; i < 3; i++)
            assert_same(&got[i], &want[i], step * 10 + i);
        if (w.n >= REF_WINDOWS - 1 || m.n >= REF_WINDOWS - 1)
            break;
    }
    assert_true(allowed_count > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_bucket_by_hand, setup),
        cmocka_unit_test_setup(test_bucket_clock_back, setup),
        cmocka_unit_test_setup(test_bucket_period_change, setup),
        cmocka_unit_test_setup(test_bucket_random_vs_reference, setup),
        cmocka_unit_test_setup(test_window_random_vs_reference, setup),
        cmocka_unit_test_setup(test_month_boundaries, setup),
        cmocka_unit_test_setup(test_window_keys, setup),
        cmocka_unit_test_setup(test_server_clock, setup),
        cmocka_unit_test_setup(test_limit_check, setup),
        cmocka_unit_test_setup(test_odd_keys, setup),
        cmocka_unit_test_setup(test_keys_cannot_collide, setup),
        cmocka_unit_test_setup(test_noscript_recovery, setup),
        cmocka_unit_test_setup(test_script_error, setup),
        cmocka_unit_test_setup(test_exact_bucket_two_clients, setup),
        cmocka_unit_test_setup(test_exact_window_two_clients, setup),
        cmocka_unit_test_setup(test_exact_two_limits_two_clients, setup),
        cmocka_unit_test_setup(test_two_limits_by_hand, setup),
        cmocka_unit_test_setup(test_multi_random_vs_reference, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
