/*
 * Deadlines (src/core/deadline.c) on a real libuv loop: order of firing,
 * stop, restart, callbacks that start and stop other deadlines (growing the
 * list array under the running timer), many deadlines, dispose.
 *
 * Durations are tens of milliseconds; the tests check which deadlines fire
 * and in which order, never how long anything took.
 *
 * The module's timer is unref'd (an idle worker must be able to exit), so
 * each test refs it again: uv_run() then returns once nothing is pending.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <gatehouse/deadline.h>

typedef struct item_s {
    gh_deadline_t dl;
    int id;
    int fired;
    void (*action)(struct item_s *it);
} item_t;

#define ITEM_OF(d) ((item_t *)((char *)(d)-offsetof(item_t, dl)))

static uv_loop_t loop;
static gh_deadlines_t ds;
static int order[20000];
static int num_fired;

static void on_fire(gh_deadline_t *d)
{
    item_t *it = ITEM_OF(d);
    assert_false(gh_deadline_is_active(d));
    it->fired++;
    if (num_fired < (int)(sizeof(order) / sizeof(order[0])))
        order[num_fired] = it->id;
    num_fired++;
    if (it->action != NULL)
        it->action(it);
}

static void start(item_t *it, int id, uint64_t ms)
{
    it->id = id;
    assert_int_equal(gh_deadline_start(&ds, &it->dl, ms, on_fire), 0);
    assert_true(gh_deadline_is_active(&it->dl));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int setup(void **state)
{
    (void)state;
    num_fired = 0;
    memset(order, 0, sizeof(order));
    assert_int_equal(uv_loop_init(&loop), 0);
    gh_deadlines_init(&ds, &loop);
    uv_ref((uv_handle_t *)&ds.timer);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_deadlines_dispose(&ds);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static void run(void)
{
    uv_run(&loop, UV_RUN_DEFAULT);
}

/* ---- order ---- */

static void test_fire_in_order_of_expiry(void **state)
{
    (void)state;
    item_t it[8];
    memset(it, 0, sizeof(it));
    /* Create the lists in order of duration (a start and a stop each), so
     * that the order holds even if the loop is late and several expire in
     * one timer run; the deadlines themselves start in scrambled order. */
    item_t probe;
    memset(&probe, 0, sizeof(probe));
    static const uint64_t durs[] = {10, 30, 50, 70};
    for (size_t i = 0; i < 4; i++) {
        start(&probe, -1, durs[i]);
        gh_deadline_stop(&probe.dl);
        assert_false(gh_deadline_is_active(&probe.dl));
    }
    start(&it[0], 70, 70);
    start(&it[1], 10, 10);
    start(&it[2], 50, 50);
    start(&it[3], 11, 10); /* same duration, started later: fires after 10 */
    start(&it[4], 30, 30);
    start(&it[5], 71, 70);
    run();
    assert_int_equal(num_fired, 6);
    static const int want[] = {10, 11, 30, 50, 70, 71};
    for (int i = 0; i < 6; i++)
        assert_int_equal(order[i], want[i]);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(it[i].fired, 1);
        assert_false(gh_deadline_is_active(&it[i].dl));
    }
}

/*
 * Regression (deadline.c, on_timer): when the loop runs late and deadlines of
 * several durations have all expired by the time the timer fires, they fire
 * in the order their lists were created (first use of each duration), not in
 * order of expiry. Here the 40ms list is created first, then the 10ms one;
 * the loop is blocked for 100ms before it runs, so both are due in the same
 * timer run: observed order 40, 10; expected 10, 40.
 */
static void test_late_loop_fires_in_order_of_expiry(void **state)
{
    (void)state;
    item_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    start(&a, 40, 40);
    start(&b, 10, 10);
    sleep_ms(100);
    run();
    assert_int_equal(num_fired, 2);
    if (order[0] != 10 || order[1] != 40)
        fail_msg("fired %d then %d, want 10 then 40", order[0], order[1]);
}

/* ---- stop and restart ---- */

static void test_stop_before_expiry(void **state)
{
    (void)state;
    item_t it[4];
    memset(it, 0, sizeof(it));
    start(&it[0], 0, 20);
    start(&it[1], 1, 20);
    start(&it[2], 2, 40);
    start(&it[3], 3, 20);
    /* Middle, head of its list, and the only one of its list. */
    gh_deadline_stop(&it[1].dl);
    gh_deadline_stop(&it[0].dl);
    gh_deadline_stop(&it[2].dl);
    assert_false(gh_deadline_is_active(&it[0].dl));
    /* Stopping an idle deadline is harmless. */
    gh_deadline_stop(&it[2].dl);
    run();
    assert_int_equal(num_fired, 1);
    assert_int_equal(order[0], 3);
    assert_int_equal(it[0].fired + it[1].fired + it[2].fired, 0);
}

static void test_stop_all_nothing_fires(void **state)
{
    (void)state;
    item_t it[3];
    memset(it, 0, sizeof(it));
    for (int i = 0; i < 3; i++)
        start(&it[i], i, (uint64_t)(10 + 10 * i));
    for (int i = 0; i < 3; i++)
        gh_deadline_stop(&it[i].dl);
    run(); /* the timer fires for nothing and is not re-armed */
    assert_int_equal(num_fired, 0);
    assert_false(uv_is_active((uv_handle_t *)&ds.timer));
}

static void test_restart_moves_it(void **state)
{
    (void)state;
    item_t a, b, c, d;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    memset(&d, 0, sizeof(d));
    /* Within a list: c was the head, now the tail behind d. */
    start(&c, 3, 30);
    start(&d, 4, 30);
    start(&c, 3, 30);
    /* To another list: a was first, now after b. (Lists are created in
     * order of expiry so a late loop cannot change the order, see
     * test_late_loop_fires_in_order_of_expiry.) */
    start(&a, 1, 20);
    start(&b, 2, 40);
    start(&a, 1, 60);
    run();
    assert_int_equal(num_fired, 4);
    static const int want[] = {4, 3, 2, 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(order[i], want[i]);
    assert_int_equal(a.fired, 1);
    assert_int_equal(c.fired, 1);
}

static item_t *mover_target;

static void mover_cb(uv_timer_t *t)
{
    (void)t;
    /* Restarted from a later loop time (40ms): now due at 95ms, after b. */
    assert_int_equal(gh_deadline_start(&ds, &mover_target->dl, 55, on_fire), 0);
}

static void test_restart_from_the_loop(void **state)
{
    (void)state;
    item_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    start(&a, 1, 50);
    start(&b, 2, 70);
    mover_target = &a;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, mover_cb, 40, 0);
    run();
    uv_close((uv_handle_t *)&t, NULL);
    run();
    assert_int_equal(num_fired, 2);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 1);
    assert_int_equal(a.fired, 1);
}

/* ---- callbacks that touch other deadlines ---- */

static item_t cb_items[80];

static void act_stop_next(item_t *it)
{
    /* Stop the next one of the same list, though it is already due. */
    gh_deadline_stop(&cb_items[it->id + 1].dl);
}

static void test_callback_stops_due_sibling(void **state)
{
    (void)state;
    memset(cb_items, 0, sizeof(cb_items));
    cb_items[0].action = act_stop_next;
    start(&cb_items[0], 0, 20);
    start(&cb_items[1], 1, 20);
    start(&cb_items[2], 2, 20);
    run();
    assert_int_equal(num_fired, 2);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 2);
    assert_int_equal(cb_items[1].fired, 0);
}

static void act_restart_self(item_t *it)
{
    if (it->fired == 1)
        assert_int_equal(gh_deadline_start(&ds, &it->dl, 20, on_fire), 0);
}

/* Starts deadlines of 40 new durations (the list array grows, and moves,
 * many times while on_timer walks it), stops one that sits in an old list,
 * restarts another, and starts one on an existing duration. */
static void act_grow(item_t *it)
{
    (void)it;
    for (int k = 0; k < 40; k++) {
        cb_items[10 + k].id = 10 + k;
        assert_int_equal(gh_deadline_start(&ds, &cb_items[10 + k].dl, (uint64_t)(21 + k), on_fire),
                         0);
    }
    gh_deadline_stop(&cb_items[3].dl); /* in the 100ms list, created before */
    assert_false(gh_deadline_is_active(&cb_items[3].dl));
    /* 120ms -> 25ms from now */
    assert_int_equal(gh_deadline_start(&ds, &cb_items[4].dl, 25, on_fire), 0);
    cb_items[5].id = 5;
    assert_int_equal(gh_deadline_start(&ds, &cb_items[5].dl, 20, on_fire), 0);
}

static void test_callback_starts_and_stops_others(void **state)
{
    (void)state;
    memset(cb_items, 0, sizeof(cb_items));
    cb_items[0].action = act_grow;
    cb_items[1].action = act_restart_self;
    start(&cb_items[0], 0, 20);
    start(&cb_items[1], 1, 20);
    start(&cb_items[2], 2, 150);
    start(&cb_items[3], 3, 100);
    start(&cb_items[4], 4, 120);
    run();
    assert_int_equal(cb_items[0].fired, 1);
    assert_int_equal(cb_items[1].fired, 2);
    assert_int_equal(cb_items[2].fired, 1);
    assert_int_equal(cb_items[3].fired, 0);
    assert_int_equal(cb_items[4].fired, 1);
    assert_int_equal(cb_items[5].fired, 1);
    for (int k = 0; k < 40; k++)
        assert_int_equal(cb_items[10 + k].fired, 1);
    assert_int_equal(num_fired, 1 + 2 + 1 + 1 + 1 + 40);
    /* 0 and 1 fire first (same list, insertion order); 2 (150ms from the
     * start) fires last: everything else was due by about 80ms. */
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[num_fired - 1], 2);
    assert_int_equal(ds.num_lists, 4 + 40); /* 25 is among 21..60 */
}

/* ---- many ---- */

#define MANY 10000

static void test_many(void **state)
{
    (void)state;
    item_t *it = calloc(MANY, sizeof(*it));
    assert_non_null(it);
    static const uint64_t durs[] = {10, 20, 30, 40, 50};
    for (int i = 0; i < MANY; i++)
        start(&it[i], i, durs[i % 5]);
    int expect = MANY;
    for (int i = 0; i < MANY; i += 3) {
        gh_deadline_stop(&it[i].dl);
        expect--;
    }
    for (int i = 1; i < MANY; i += 7)
        start(&it[i], i, 15); /* restarted; stopped ones stay stopped */
    for (int i = 0; i < MANY; i += 3)
        if (i % 7 == 1)
            expect++;
    assert_int_equal(ds.num_lists, 6);
    run();
    assert_int_equal(num_fired, expect);
    for (int i = 0; i < MANY; i++) {
        int want = (i % 3 != 0) || (i % 7 == 1);
        assert_int_equal(it[i].fired, want);
        assert_false(gh_deadline_is_active(&it[i].dl));
    }
    /* Within one duration, start order is firing order. */
    int last[64];
    for (int k = 0; k < 64; k++)
        last[k] = -1;
    for (int n = 0; n < num_fired; n++) {
        int id = order[n];
        int k = (id % 7 == 1) ? 63 : id % 5;
        assert_true(id > last[k]);
        last[k] = id;
    }
    free(it);
}

/* ---- dispose and the loop reference ---- */

static void test_dispose_with_pending(void **state)
{
    (void)state;
    item_t it[3];
    memset(it, 0, sizeof(it));
    for (int i = 0; i < 3; i++)
        start(&it[i], i, (uint64_t)(10 * (i + 1)));
    gh_deadlines_dispose(&ds);
    sleep_ms(40); /* all would be due by now */
    run();
    assert_int_equal(num_fired, 0);
    /* teardown disposes again: must be harmless */
}

static void test_unrefd_timer_does_not_hold_the_loop(void **state)
{
    (void)state;
    item_t a;
    memset(&a, 0, sizeof(a));
    uv_unref((uv_handle_t *)&ds.timer);
    start(&a, 1, 20);
    /* Only the unref'd deadline timer: the loop has nothing to wait for. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(num_fired, 0);
    gh_deadline_stop(&a.dl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fire_in_order_of_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_loop_fires_in_order_of_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_before_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_all_nothing_fires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_moves_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_from_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_stops_due_sibling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_starts_and_stops_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispose_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrefd_timer_does_not_hold_the_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
