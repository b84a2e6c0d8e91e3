/*
 * gatehouse/counter.h: sums are exact under concurrent adds, and a window
 * admits exactly limit units across threads racing for the last ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include <gatehouse/counter.h>

#define THREADS 4
#define ADDS 200000

static gh_counter_t *counter;
static gh_window_t window;
static uint64_t taken[THREADS];

static void adder(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < ADDS; i++)
        gh_counter_add(counter, id, (i & 1) ? 3 : -1);
}

static void test_sum_is_exact_under_concurrency(void **state)
{
    (void)state;
    uv_thread_t t[THREADS];
    counter = gh_counter_new(2); /* fewer shards than threads: shared shards */
    assert_non_null(counter);
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(uv_thread_create(&t[i], adder, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&t[i]);
    assert_int_equal(gh_counter_sum(counter), (int64_t)THREADS * (ADDS / 2) * 2);
    gh_counter_free(counter);
}

#define LIMIT 100000

static void taker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    /* Every thread tries for more than the whole limit. */
    for (int i = 0; i < LIMIT; i++)
        taken[id] += (uint64_t)gh_window_take(&window, 7, 1, LIMIT, NULL);
}

static void test_window_admits_exactly_the_limit(void **state)
{
    (void)state;
    uv_thread_t t[THREADS];
    window.word = 0;
    for (uintptr_t i = 0; i < THREADS; i++) {
        taken[i] = 0;
        assert_int_equal(uv_thread_create(&t[i], taker, (void *)i), 0);
    }
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&t[i]);
    uint64_t total = 0;
    for (int i = 0; i < THREADS; i++)
        total += taken[i];
    assert_int_equal(total, LIMIT);
    uint64_t count = 0;
    assert_int_equal(gh_window_take(&window, 7, 1, LIMIT, &count), 0);
    assert_int_equal(count, LIMIT);
}

static void test_window_resets_and_refuses_the_past(void **state)
{
    (void)state;
    gh_window_t w = {0};
    uint64_t count;
    assert_int_equal(gh_window_take(&w, 5, 3, 3, &count), 1);
    assert_int_equal(count, 3);
    assert_int_equal(gh_window_take(&w, 5, 1, 3, &count), 0);
    /* a new window starts from zero */
    assert_int_equal(gh_window_take(&w, 6, 2, 3, &count), 1);
    assert_int_equal(count, 2);
    /* a take stamped with an older window (a clock behind) is refused */
    assert_int_equal(gh_window_take(&w, 5, 1, 3, &count), 0);
    /* more than the limit at once is never taken, even in a new window */
    assert_int_equal(gh_window_take(&w, 7, 4, 3, &count), 0);
    assert_int_equal(gh_window_take(&w, 7, 3, 3, &count), 1);
    /* window numbers wrap at 24 bits: 2^24 + 7 is window 7 again */
    assert_int_equal(gh_window_take(&w, (UINT64_C(1) << 24) + 7, 1, 3, &count), 0);
    assert_int_equal(count, 3);
    /* and the window after the wrap point is newer than the one before it */
    gh_window_t x = {0};
    assert_int_equal(gh_window_take(&x, (UINT64_C(1) << 24) - 1, 1, 1, NULL), 1);
    assert_int_equal(gh_window_take(&x, UINT64_C(1) << 24, 1, 1, &count), 1);
    assert_int_equal(count, 1);
}

/* One-second windows of unix time: a counter used once, then idle for 100
 * days (more than 2^23 windows), is not taken for one from the future
 * that refuses every take for the next 97 days. A clock a few windows
 * behind is still refused. */
static void test_window_idle_for_months(void **state)
{
    (void)state;
    const uint64_t t0 = 1764966000, day = 86400;
    uint64_t count;
    for (uint64_t days = 1; days <= 400; days += 3) {
        gh_window_t w = {0};
        assert_int_equal(gh_window_take(&w, t0, 10, 10, NULL), 1);
        /* the same window modulo 2^24 goes on counting (documented) */
        if (((days * day) & ((UINT64_C(1) << 24) - 1)) == 0)
            continue;
        assert_int_equal(gh_window_take(&w, t0 + days * day, 1, 10, &count), 1);
        assert_int_equal(count, 1);
    }
    gh_window_t w = {0};
    assert_int_equal(gh_window_take(&w, t0, 1, 10, NULL), 1);
    assert_int_equal(gh_window_take(&w, t0 - 3, 1, 10, &count), 0);
    assert_int_equal(gh_window_take(&w, t0 - 64, 1, 10, &count), 0);
    assert_int_equal(count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_is_exact_under_concurrency),
        cmocka_unit_test(test_window_admits_exactly_the_limit),
        cmocka_unit_test(test_window_resets_and_refuses_the_past),
        cmocka_unit_test(test_window_idle_for_months),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
