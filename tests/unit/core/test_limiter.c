/*
 * gatehouse/limiter.h: the token bucket against a reference bucket
 * written here in another form, calendar windows at exact UTC boundaries
 * (offsets, month lengths, leap years) against glibc's timegm/gmtime,
 * the config syntax, and the table: exact under threads racing for the
 * last units, bounded, and evicting what is at rest first.
 *
 * limtable.c is included to reach its key hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "../../../src/core/limtable.c"

/* ---- syntax ---- */

static void test_rate_parse(void **state)
{
    (void)state;
    gh_rate_t r;
    assert_int_equal(gh_rate_parse("10/s", &r), 0);
    assert_int_equal(r.requests, 10);
    assert_int_equal(r.per_ms, 1000);
    assert_int_equal(r.burst, 10);
    assert_int_equal(gh_rate_parse("100/min", &r), 0);
    assert_int_equal(r.per_ms, 60000);
    assert_int_equal(gh_rate_parse("5000/hour", &r), 0);
    assert_int_equal(r.per_ms, 3600000);
    assert_int_equal(gh_rate_parse("1/d", &r), 0);
    assert_int_equal(r.per_ms, 86400000);
    assert_int_equal(gh_rate_parse("1000000000/s", &r), 0);
    static const char *const bad[] = {
        "",       "10",    "/s",           "10/",
        "0/s",    "-1/s",  "+1/s",         "1e3/s",
        "10/S",   "10 /s", "10/ s",        "10/s ",
        "10/w",   "10/2s", "1000000001/s", "18446744073709551617/s",
        "10.5/s", "10//s", "ten/s",        "10/sec\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gh_rate_parse(bad[i], &r), -EINVAL);
    assert_int_equal(gh_rate_parse(NULL, &r), -EINVAL);
}

static void test_offset_parse(void **state)
{
    (void)state;
    uint64_t s;
    assert_int_equal(gh_offset_parse("0", &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(gh_offset_parse("2h", &s), 0);
    assert_int_equal(s, 7200);
    assert_int_equal(gh_offset_parse("1d12h30m5s", &s), 0);
    assert_int_equal(s, 86400 + 12 * 3600 + 30 * 60 + 5);
    static const char *const bad[] = {"",    "2",   "h",    "2x",   "-1h",
                                      "1d-", "2h ", "367d", "1e3s", "99999999999999999999s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gh_offset_parse(bad[i], &s), -EINVAL);
}

static void test_checks(void **state)
{
    (void)state;
    gh_rate_t r = {10, 1000, 10};
    assert_null(gh_rate_check(&r));
    r.burst = 0;
    assert_non_null(gh_rate_check(&r));
    r.burst = GH_RATE_MAX_BURST;
    r.per_ms = GH_RATE_MAX_PER_MS; /* 1e9 x 3.16e10 ms passes 2^62 */
    assert_non_null(gh_rate_check(&r));
    r.per_ms = 1000;
    assert_null(gh_rate_check(&r));
    r.requests = 0;
    assert_non_null(gh_rate_check(&r));

    gh_quota_t q = {100, GH_PERIOD_DAY, 86399};
    assert_null(gh_quota_check(&q));
    q.offset_s = 86400;
    assert_non_null(gh_quota_check(&q));
    q.period = GH_PERIOD_WEEK;
    assert_null(gh_quota_check(&q));
    q.offset_s = 7 * 86400;
    assert_non_null(gh_quota_check(&q));
    q.period = GH_PERIOD_MONTH;
    q.offset_s = 27 * 86400 + 86399;
    assert_null(gh_quota_check(&q));
    q.offset_s = 28 * 86400;
    assert_non_null(gh_quota_check(&q));
    q.offset_s = 0;
    q.limit = GH_QUOTA_MAX_LIMIT + 1;
    assert_non_null(gh_quota_check(&q));
}

static void test_limit_id(void **state)
{
    (void)state;
    assert_int_equal(gh_limit_id("a", 1), gh_limit_id("a", 1));
    assert_int_not_equal(gh_limit_id("a", 1), gh_limit_id("b", 1));
    assert_int_not_equal(gh_limit_id("", 0), 0);
}

/* ---- token bucket ---- */

static void test_bucket_burst_then_refill(void **state)
{
    (void)state;
    gh_rate_t r = {3, 1000, 3}; /* 3/s, burst 3: one unit every 333.33 ms */
    gh_limit_result_t res;
    uint64_t t0 = 5000, tat = gh_bucket_init(&r, t0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gh_bucket_take(&tat, &r, t0, &res), 1);
        assert_int_equal(res.remaining, (uint64_t)(2 - i));
        assert_int_equal(res.limit, 3);
    }
    assert_int_equal(gh_bucket_take(&tat, &r, t0, &res), 0);
    assert_int_equal(res.remaining, 0);
    assert_int_equal(res.retry_s, 1); /* 333.33 ms, rounded up */
    /* 333 ms is 999 of the 1000 scaled units a unit needs. */
    assert_int_equal(gh_bucket_take(&tat, &r, t0 + 333, &res), 0);
    assert_int_equal(gh_bucket_take(&tat, &r, t0 + 334, &res), 1);
    assert_int_equal(res.remaining, 0);
    /* Two more at 666.67 and 1000 ms: exactly 3 per second, no drift. */
    assert_int_equal(gh_bucket_take(&tat, &r, t0 + 666, &res), 0);
    assert_int_equal(gh_bucket_take(&tat, &r, t0 + 667, &res), 1);
    assert_int_equal(gh_bucket_take(&tat, &r, t0 + 999, &res), 0);
    assert_int_equal(gh_bucket_take(&tat, &r, t0 + 1000, &res), 1);
    /* After a long idle time the bucket is full, never fuller. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(gh_bucket_take(&tat, &r, t0 + 100000, &res), 1);
    assert_int_equal(gh_bucket_take(&tat, &r, t0 + 100000, &res), 0);
}

static void test_bucket_retry_and_reset(void **state)
{
    (void)state;
    gh_rate_t r = {1, 60000, 2}; /* 1/min, burst 2 */
    gh_limit_result_t res;
    uint64_t tat = gh_bucket_init(&r, 0);
    assert_int_equal(gh_bucket_take(&tat, &r, 0, &res), 1);
    assert_int_equal(res.remaining, 1);
    assert_int_equal(res.reset_s, 60); /* the next unit comes back in a minute */
    assert_int_equal(gh_bucket_take(&tat, &r, 10000, &res), 1);
    assert_int_equal(res.remaining, 0);
    assert_int_equal(res.reset_s, 50);
    assert_int_equal(gh_bucket_take(&tat, &r, 10500, &res), 0);
    assert_int_equal(res.retry_s, 50); /* 49.5 s, rounded up */
    assert_int_equal(res.reset_s, 50);
    assert_int_equal(gh_bucket_take(&tat, &r, 59999, &res), 0);
    assert_int_equal(res.retry_s, 1);
    assert_int_equal(gh_bucket_take(&tat, &r, 60000, &res), 1);
    /* A refund gives the unit back. */
    gh_bucket_refund(&tat, &r);
    assert_int_equal(gh_bucket_take(&tat, &r, 60000, &res), 1);
    assert_int_equal(gh_bucket_take(&tat, &r, 60000, &res), 0);
    assert_int_equal(gh_bucket_rest_ms(tat, &r, 60000), 180000);
    /* The policy's window: the time to fill from empty. */
    assert_int_equal(gh_bucket_window_s(&r), 120);
    gh_rate_t f = {3, 1000, 3}, g = {10, 1000, 25}, h = {1000, 1, 1};
    assert_int_equal(gh_bucket_window_s(&f), 1);
    assert_int_equal(gh_bucket_window_s(&g), 3); /* 2.5 s, rounded up */
    assert_int_equal(gh_bucket_window_s(&h), 1);
}

/* The bucket of the textbook: a level in units of 1/per_ms of a token
 * (integers again), filled by elapsed * requests and capped. */
typedef struct {
    uint64_t level, last;
} ref_bucket_t;

static int ref_take(ref_bucket_t *b, const gh_rate_t *r, uint64_t now, uint64_t *remaining)
{
    uint64_t cap = r->burst * r->per_ms;
    uint64_t add = (now - b->last) * r->requests;
    b->level = add >= cap - b->level ? cap : b->level + add;
    b->last = now;
    if (b->level < r->per_ms) {
        *remaining = 0;
        return 0;
    }
    b->level -= r->per_ms;
    *remaining = b->level / r->per_ms;
    return 1;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_bucket_matches_reference(void **state)
{
    (void)state;
    static const gh_rate_t rates[] = {
        {3, 1000, 3}, {10, 1000, 20}, {7, 60000, 1}, {1000, 1000, 5}, {5, 86400000, 5}, {1, 1, 1},
    };
    for (size_t k = 0; k < sizeof(rates) / sizeof(rates[0]); k++) {
        const gh_rate_t *r = &rates[k];
        uint64_t now = 1000000 + rnd() % 1000, tat = gh_bucket_init(r, now);
        ref_bucket_t ref = {r->burst * r->per_ms, now};
        for (int i = 0; i < 200000; i++) {
            uint64_t step = rnd() % 8;
            now += step == 0 ? rnd() % (r->per_ms * 3 + 1) : rnd() % 3;
            gh_limit_result_t res;
            uint64_t rem;
            int want = ref_take(&ref, r, now, &rem);
            assert_int_equal(gh_bucket_take(&tat, r, now, &res), want);
            assert_int_equal(res.remaining, rem);
        }
    }
}

static void test_bucket_wrapped_clock(void **state)
{
    (void)state;
    /* The scaled clock (ms x requests) wraps at 2^64; a bucket idle long
     * enough for its tat to look ahead again must read as full. */
    gh_rate_t r = {1000000000, 1000, 5};
    gh_limit_result_t res;
    uint64_t t0 = 123456, tat = gh_bucket_init(&r, t0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(gh_bucket_take(&tat, &r, t0, &res), 1);
    assert_int_equal(gh_bucket_take(&tat, &r, t0, &res), 0);
    uint64_t later = t0 + ((1ULL << 63) / r.requests) + 7; /* about 106 days */
    for (int i = 0; i < 5; i++)
        assert_int_equal(gh_bucket_take(&tat, &r, later, &res), 1);
    assert_int_equal(gh_bucket_take(&tat, &r, later, &res), 0);
}

/* ---- calendar ---- */

static time_t utc(int y, int mon, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return timegm(&tm);
}

static void test_civil_against_timegm(void **state)
{
    (void)state;
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t expect = gh_days_from_civil(1600, 1, 1);
    for (int64_t y = 1600; y <= 2400; y++)
        for (unsigned m = 1; m <= 12; m++) {
            int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            unsigned n = mdays[m - 1] + (m == 2 && leap);
            for (unsigned d = 1; d <= n; d++, expect++) {
                int64_t days = gh_days_from_civil(y, m, d);
                assert_int_equal(days, expect);
                int64_t yy;
                unsigned mm, dd;
                gh_civil_from_days(days, &yy, &mm, &dd);
                assert_int_equal(yy, y);
                assert_int_equal(mm, m);
                assert_int_equal(dd, d);
            }
            assert_int_equal(gh_days_from_civil(y, m, 1) * 86400,
                             (int64_t)utc((int)y, (int)m, 1, 0, 0, 0));
        }
}

static int64_t win(const gh_quota_t *q, int64_t t, int64_t *start, int64_t *end)
{
    return gh_quota_window(q, t, start, end);
}

static void test_day_window_offsets(void **state)
{
    (void)state;
    gh_quota_t q = {5, GH_PERIOD_DAY, 2 * 3600};
    int64_t s, e;
    int64_t boundary = utc(2026, 12, 6, 2, 0, 0);
    int64_t n = win(&q, boundary - 1, &s, &e);
    assert_int_equal(s, utc(2026, 12, 5, 2, 0, 0));
    assert_int_equal(e, boundary);
    assert_int_equal(win(&q, boundary, &s, &e), n + 1);
    assert_int_equal(s, boundary);
    assert_int_equal(e, utc(2026, 12, 7, 2, 0, 0));
    /* Before 1970 too. */
    q.offset_s = 0;
    win(&q, -1, &s, &e);
    assert_int_equal(s, -86400);
    assert_int_equal(e, 0);
}

static void test_week_window_starts_sunday(void **state)
{
    (void)state;
    gh_quota_t q = {5, GH_PERIOD_WEEK, 0};
    int64_t s, e;
    /* 2026-12-06 is a Sunday. */
    int64_t sunday = utc(2026, 12, 6, 0, 0, 0);
    int64_t n = win(&q, sunday - 1, &s, &e);
    assert_int_equal(e, sunday);
    assert_int_equal(s, sunday - 7 * 86400);
    assert_int_equal(win(&q, sunday, &s, &e), n + 1);
    /* AWS's offset 1 (Monday) is offset 1d. */
    q.offset_s = 86400;
    win(&q, sunday + 3600, &s, &e);
    assert_int_equal(s, utc(2026, 11, 30, 0, 0, 0));
    assert_int_equal(e, utc(2026, 12, 7, 0, 0, 0));
    /* Every start, over 30 years of weeks and offsets, is the offset after
     * a Sunday midnight. */
    for (int i = 0; i < 20000; i++) {
        q.offset_s = rnd() % (7 * 86400);
        int64_t t = (int64_t)(rnd() % (30ULL * 365 * 86400)) + utc(2000, 1, 1, 0, 0, 0);
        int64_t w = win(&q, t, &s, &e);
        assert_true(s <= t && t < e);
        assert_int_equal(e - s, 7 * 86400);
        time_t base = (time_t)(s - (int64_t)q.offset_s);
        struct tm tm;
        gmtime_r(&base, &tm);
        assert_int_equal(tm.tm_wday, 0);
        assert_int_equal(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec, 0);
        int64_t s2, e2;
        assert_int_equal(win(&q, s - 1, &s2, &e2), w - 1);
        assert_int_equal(e2, s);
    }
}

static void test_month_windows(void **state)
{
    (void)state;
    gh_quota_t q = {5, GH_PERIOD_MONTH, 0};
    int64_t s, e;
    /* Leap February (2024, 2000), common (2023), century not leap (2100). */
    static const struct {
        int y, m, days;
    } months[] = {{2024, 2, 29}, {2000, 2, 29},  {2023, 2, 28}, {2100, 2, 28},
                  {2026, 4, 30}, {2026, 12, 31}, {2027, 1, 31}};
    for (size_t i = 0; i < sizeof(months) / sizeof(months[0]); i++) {
        int64_t first = utc(months[i].y, months[i].m, 1, 0, 0, 0);
        int64_t n = win(&q, first, &s, &e);
        assert_int_equal(s, first);
        assert_int_equal(e - s, (int64_t)months[i].days * 86400);
        assert_int_equal(win(&q, e - 1, &s, &e), n);
        assert_int_equal(win(&q, e, &s, &e), n + 1);
        assert_int_equal(win(&q, first - 1, &s, &e), n - 1);
    }
    /* Offset 2d12h: 2024's February window is from Feb 3 12:00 to Mar 3
     * 12:00 (29 days); its last second belongs to it. */
    q.offset_s = 2 * 86400 + 12 * 3600;
    int64_t from = utc(2024, 2, 3, 12, 0, 0), to = utc(2024, 3, 3, 12, 0, 0);
    int64_t n = win(&q, from, &s, &e);
    assert_int_equal(s, from);
    assert_int_equal(e, to);
    assert_int_equal(win(&q, to - 1, &s, &e), n);
    assert_int_equal(win(&q, from - 1, &s, &e), n - 1);
    assert_int_equal(s, utc(2024, 1, 3, 12, 0, 0));
    /* Year change with the largest offset: Dec 28 23:59:59 to Jan 28. */
    q.offset_s = 27 * 86400 + 86399;
    win(&q, utc(2027, 1, 1, 0, 0, 0), &s, &e);
    assert_int_equal(s, utc(2026, 12, 28, 23, 59, 59));
    assert_int_equal(e, utc(2027, 1, 28, 23, 59, 59));
    /* Random times and offsets: start is the 1st at midnight plus the
     * offset, and the windows tile the time line. */
    for (int i = 0; i < 20000; i++) {
        q.offset_s = rnd() % (28 * 86400);
        int64_t t = (int64_t)(rnd() % (200ULL * 365 * 86400)) + utc(1950, 1, 1, 0, 0, 0);
        int64_t w = win(&q, t, &s, &e);
        assert_true(s <= t && t < e);
        time_t base = (time_t)(s - (int64_t)q.offset_s);
        struct tm tm;
        gmtime_r(&base, &tm);
        assert_int_equal(tm.tm_mday, 1);
        assert_int_equal(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec, 0);
        assert_int_equal(w, (int64_t)(tm.tm_year + 1900 - 1970) * 12 + tm.tm_mon);
        int64_t s2, e2;
        assert_int_equal(win(&q, e, &s2, &e2), w + 1);
        assert_int_equal(s2, e);
    }
}

static void test_quota_take_at_boundary(void **state)
{
    (void)state;
    gh_quota_t q = {3, GH_PERIOD_DAY, 2 * 3600};
    gh_limit_result_t res;
    int64_t w = INT64_MIN;
    uint64_t count = 0;
    int64_t b_ms = (int64_t)utc(2026, 12, 6, 2, 0, 0) * 1000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gh_quota_take(&w, &count, &q, b_ms - 10000, &res), 1);
        assert_int_equal(res.remaining, (uint64_t)(2 - i));
        assert_int_equal(res.reset_s, 10);
    }
    assert_int_equal(gh_quota_take(&w, &count, &q, b_ms - 1, &res), 0);
    assert_int_equal(res.retry_s, 1); /* 1 ms, rounded up */
    /* The boundary's first millisecond is the new day's. */
    assert_int_equal(gh_quota_take(&w, &count, &q, b_ms, &res), 1);
    assert_int_equal(res.remaining, 2);
    assert_int_equal(res.reset_s, 86400);
    /* A worker whose clock still reads the old day counts in the new one. */
    assert_int_equal(gh_quota_take(&w, &count, &q, b_ms - 1, &res), 1);
    assert_int_equal(res.remaining, 1);
    assert_int_equal(count, 2);
    gh_quota_refund(&w, &count, &q, b_ms + 5);
    assert_int_equal(count, 1);
    /* Limit 0 refuses everything, until the end of the window. */
    q.limit = 0;
    w = INT64_MIN;
    count = 0;
    assert_int_equal(gh_quota_take(&w, &count, &q, b_ms, &res), 0);
    assert_int_equal(res.retry_s, 86400);
}

/* ---- the key hash ---- */

static void test_hash_spreads_and_is_keyed(void **state)
{
    (void)state;
    static unsigned per_shard[GH_LIMIT_SHARDS];
    gh_limit_table_t *a = gh_limit_table_new(64), *b = gh_limit_table_new(64);
    assert_non_null(a);
    assert_non_null(b);
    char key[32];
    unsigned same = 0;
    for (int i = 0; i < 65536; i++) {
        int n = snprintf(key, sizeof(key), "10.0.%d.%d", i >> 8, i & 255);
        uint64_t ha = key_hash(a, 7, key, (uint8_t)n), hb = key_hash(b, 7, key, (uint8_t)n);
        per_shard[ha >> 58]++;
        same += ha == hb;
        /* The limit id is part of the key. */
        assert_int_not_equal(ha, key_hash(a, 8, key, (uint8_t)n));
    }
    /* Sequential addresses spread over the shards (1024 each expected;
     * the bounds are dozens of standard deviations wide). */
    for (int i = 0; i < GH_LIMIT_SHARDS; i++)
        assert_true(per_shard[i] > 700 && per_shard[i] < 1400);
    /* Another table, another secret: the same keys land elsewhere. */
    assert_true(same < 4);
    gh_limit_table_free(a);
    gh_limit_table_free(b);
}

/* ---- the table ---- */

static gh_limit_now_t at(uint64_t mono_ms, int64_t wall_ms)
{
    gh_limit_now_t n = {mono_ms, wall_ms};
    return n;
}

static void test_table_keys_apart(void **state)
{
    (void)state;
    gh_limit_table_t *t = gh_limit_table_new(1024);
    assert_non_null(t);
    gh_limit_spec_t a = {.id = 1, .algo = GH_LIMIT_BUCKET, .rate = {1, 1000, 1}};
    gh_limit_spec_t b = a;
    b.id = 2;
    gh_limit_now_t now = at(1000, 0);
    gh_limit_result_t res;
    assert_int_equal(gh_limit_table_take(t, &a, "k", 1, &now, &res), 1);
    assert_int_equal(gh_limit_table_take(t, &a, "k", 1, &now, &res), 0);
    /* Another limit, another key, the empty key, a key with a NUL: apart. */
    assert_int_equal(gh_limit_table_take(t, &b, "k", 1, &now, &res), 1);
    assert_int_equal(gh_limit_table_take(t, &a, "K", 1, &now, &res), 1);
    assert_int_equal(gh_limit_table_take(t, &a, "", 0, &now, &res), 1);
    assert_int_equal(gh_limit_table_take(t, &a, "k\0", 2, &now, &res), 1);
    assert_int_equal(gh_limit_table_take(t, &a, "", 0, &now, &res), 0);
    /* Long keys are kept as digests: two that differ only in their last
     * byte are apart, and a 32-byte key equal to a digest is too. */
    char l1[300], l2[300];
    memset(l1, 'x', sizeof(l1));
    memcpy(l2, l1, sizeof(l2));
    l2[299] = 'y';
    assert_int_equal(gh_limit_table_take(t, &a, l1, 300, &now, &res), 1);
    assert_int_equal(gh_limit_table_take(t, &a, l1, 300, &now, &res), 0);
    assert_int_equal(gh_limit_table_take(t, &a, l2, 300, &now, &res), 1);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)l1, 300, d);
    assert_int_equal(gh_limit_table_take(t, &a, (const char *)d, sizeof(d), &now, &res), 1);
    /* 80 bytes inline and 81 as a digest. */
    assert_int_equal(gh_limit_table_take(t, &a, l1, 80, &now, &res), 1);
    assert_int_equal(gh_limit_table_take(t, &a, l1, 81, &now, &res), 1);
    assert_int_equal(gh_limit_table_take(t, &a, l1, 81, &now, &res), 0);
    /* Refund. */
    gh_limit_table_refund(t, &a, "k", 1, &now);
    assert_int_equal(gh_limit_table_take(t, &a, "k", 1, &now, &res), 1);
    gh_limit_table_free(t);
}

#define THREADS 4
#define TAKES 50000

static gh_limit_table_t *shared;
static gh_limit_spec_t race_spec;
static uint64_t allowed[THREADS];

static void racer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    gh_limit_now_t now = at(777, (int64_t)utc(2026, 12, 6, 12, 0, 0) * 1000);
    gh_limit_result_t res;
    char key[16];
    for (int i = 0; i < TAKES; i++) {
        /* Three keys: every thread hits every one. */
        int n = snprintf(key, sizeof(key), "key-%d", i % 3);
        allowed[id] +=
            (uint64_t)gh_limit_table_take(shared, &race_spec, key, (size_t)n, &now, &res);
    }
}

static uint64_t race(void)
{
    uv_thread_t th[THREADS];
    shared = gh_limit_table_new(4096);
    assert_non_null(shared);
    for (uintptr_t i = 0; i < THREADS; i++) {
        allowed[i] = 0;
        assert_int_equal(uv_thread_create(&th[i], racer, (void *)i), 0);
    }
    uint64_t sum = 0;
    for (int i = 0; i < THREADS; i++) {
        uv_thread_join(&th[i]);
        sum += allowed[i];
    }
    gh_limit_table_free(shared);
    return sum;
}

static void test_table_exact_under_threads(void **state)
{
    (void)state;
    /* Every thread alone would take more than the whole limit of each
     * key; together they take exactly the limit, per key. */
    race_spec = (gh_limit_spec_t){.id = 9, .algo = GH_LIMIT_BUCKET, .rate = {1, 60000, 12345}};
    assert_int_equal(race(), 3 * 12345);
    race_spec =
        (gh_limit_spec_t){.id = 10, .algo = GH_LIMIT_WINDOW, .quota = {23456, GH_PERIOD_DAY, 0}};
    assert_int_equal(race(), 3 * 23456);
}

static void test_table_eviction_bound(void **state)
{
    (void)state;
    /* One entry per shard: the table never holds more than 64 keys. */
    gh_limit_table_t *t = gh_limit_table_new(1);
    assert_non_null(t);
    gh_limit_spec_t s = {.id = 3, .algo = GH_LIMIT_BUCKET, .rate = {1, 1000, 1}};
    gh_limit_result_t res;
    gh_limit_table_stats_t st;
    char key[32];
    gh_limit_now_t now = at(1000, 0);
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(gh_limit_table_take(t, &s, key, (size_t)n, &now, &res), 1);
    }
    gh_limit_table_stats(t, &st);
    assert_int_equal(st.capacity, GH_LIMIT_SHARDS);
    assert_int_equal(st.keys, GH_LIMIT_SHARDS);
    assert_int_equal(st.evicted_rest, 0);
    assert_int_equal(st.evicted_counting, 10000 - GH_LIMIT_SHARDS);
    gh_limit_table_free(t);

    /* With room for several keys per shard, one that is still counting
     * outlives one at rest. */
    t = gh_limit_table_new(GH_LIMIT_SHARDS * 2);
    gh_limit_spec_t slow = {.id = 4, .algo = GH_LIMIT_BUCKET, .rate = {1, 3600000, 1}};
    gh_limit_spec_t fast = {.id = 5, .algo = GH_LIMIT_BUCKET, .rate = {1000, 1000, 1}};
    /* Fill: for each shard, a counting slow key and a fast key, then later
     * new keys: the fast ones (at rest after 1 ms) must go first. */
    now = at(1000, 0);
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(key, sizeof(key), "s%d", i);
        gh_limit_table_take(t, &slow, key, (size_t)n, &now, &res);
    }
    gh_limit_table_stats(t, &st);
    assert_true(st.keys <= st.capacity);
    gh_limit_table_free(t);

    t = gh_limit_table_new(GH_LIMIT_SHARDS * 4);
    now = at(1000, 0);
    assert_int_equal(gh_limit_table_take(t, &slow, "keep", 4, &now, &res), 1);
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof(key), "f%d", i);
        now.mono_ms++;
        gh_limit_table_take(t, &fast, key, (size_t)n, &now, &res);
    }
    gh_limit_table_stats(t, &st);
    assert_int_equal(st.evicted_counting, 0);
    assert_true(st.evicted_rest > 0);
    /* "keep" is still counting: its one unit is gone. */
    assert_int_equal(gh_limit_table_take(t, &slow, "keep", 4, &now, &res), 0);
    gh_limit_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_parse),
        cmocka_unit_test(test_offset_parse),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_limit_id),
        cmocka_unit_test(test_bucket_burst_then_refill),
        cmocka_unit_test(test_bucket_retry_and_reset),
        cmocka_unit_test(test_bucket_matches_reference),
        cmocka_unit_test(test_bucket_wrapped_clock),
        cmocka_unit_test(test_civil_against_timegm),
        cmocka_unit_test(test_day_window_offsets),
        cmocka_unit_test(test_week_window_starts_sunday),
        cmocka_unit_test(test_month_windows),
        cmocka_unit_test(test_quota_take_at_boundary),
        cmocka_unit_test(test_hash_spreads_and_is_keyed),
        cmocka_unit_test(test_table_keys_apart),
        cmocka_unit_test(test_table_exact_under_threads),
        cmocka_unit_test(test_table_eviction_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
