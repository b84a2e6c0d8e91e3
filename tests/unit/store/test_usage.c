/*
 * src/store/usage.c: counts added from many threads while a writer takes
 * them are all counted exactly once; the per-shard bound; put-back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include <gatehouse/store.h>

#include "store/usage.h"

#define THREADS 4
#define ADDS 50000
#define IDS 37

static gh_usage_batch_t *batch;
static uint64_t taken[IDS];
static uv_mutex_t taken_lock;
static atomic_int adding;

static void id_of(unsigned i, char out[13])
{
    snprintf(out, 13, "%012u", i); /* digits are not base32, but the batch does not care */
    for (int k = 0; k < 12; k++)
        out[k] = (char)('a' + (out[k] - '0'));
}

static void drain(void)
{
    gh_store_usage_entry_t *e;
    size_t n;
    assert_int_equal(gh_usage_batch_take(batch, &e, &n), 0);
    uv_mutex_lock(&taken_lock);
    for (size_t i = 0; i < n; i++) {
        unsigned idx = 0;
        for (int k = 0; k < 12; k++)
            idx = idx * 10 + (unsigned)(e[i].id[k] - 'a');
        assert_true(idx < IDS);
        assert_int_equal(e[i].day, 19000 + idx % 3);
        taken[idx] += e[i].count;
    }
    uv_mutex_unlock(&taken_lock);
    free(e);
}

static void adder(void *arg)
{
    unsigned w = (unsigned)(uintptr_t)arg;
    char id[13];
    for (unsigned i = 0; i < ADDS; i++) {
        unsigned idx = (i * 7 + w) % IDS;
        id_of(idx, id);
        assert_int_equal(gh_usage_batch_add(batch, w, id, 19000 + idx % 3, 1 + idx % 2), 0);
    }
}

static void taker(void *arg)
{
    (void)arg;
    while (adding)
        drain();
}

static void test_concurrent_adds_and_takes_are_exact(void **state)
{
    (void)state;
    batch = gh_usage_batch_new();
    assert_non_null(batch);
    uv_mutex_init(&taken_lock);
    uv_thread_t t[THREADS], tk;
    adding = 1;
    assert_int_equal(uv_thread_create(&tk, taker, NULL), 0);
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(uv_thread_create(&t[i], adder, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&t[i]);
    adding = 0;
    uv_thread_join(&tk);
    drain();
    uint64_t want[IDS] = {0};
    for (unsigned w = 0; w < THREADS; w++)
        for (unsigned i = 0; i < ADDS; i++) {
            unsigned idx = (i * 7 + w) % IDS;
            want[idx] += 1 + idx % 2;
        }
    for (unsigned i = 0; i < IDS; i++)
        assert_int_equal(taken[i], want[i]);
    assert_int_equal(gh_usage_batch_dropped(batch), 0);
    gh_usage_batch_free(batch);
    uv_mutex_destroy(&taken_lock);
}

static void test_bound_and_put_back(void **state)
{
    (void)state;
    gh_usage_batch_t *b = gh_usage_batch_new();
    char id[13] = "abcdefghijkl";
    for (unsigned d = 0; d < GH_STORE_USAGE_PENDING_MAX; d++)
        assert_int_equal(gh_usage_batch_add(b, 5, id, d, 1), 0);
    assert_int_equal(gh_usage_batch_add(b, 5, id, GH_STORE_USAGE_PENDING_MAX, 9), -ENOSPC);
    assert_int_equal(gh_usage_batch_add(b, 5 + GH_USAGE_SHARDS, id, 99999, 9), -ENOSPC);
    assert_int_equal(gh_usage_batch_add(b, 5, id, 7, 1), 0); /* an existing pair */
    assert_int_equal(gh_usage_batch_dropped(b), 18);
    assert_int_equal(gh_usage_batch_pending(b, id, 7), 2);
    assert_int_equal(gh_usage_batch_pending(b, id, 99999), 0);
    gh_store_usage_entry_t *e;
    size_t n;
    assert_int_equal(gh_usage_batch_take(b, &e, &n), 0);
    assert_int_equal(n, GH_STORE_USAGE_PENDING_MAX);
    assert_int_equal(gh_usage_batch_pending(b, id, 7), 0);
    /* a failed write puts them back, spread over the shards */
    gh_usage_batch_put_back(b, e, n);
    assert_int_equal(gh_usage_batch_pending(b, id, 7), 2);
    assert_int_equal(gh_usage_batch_dropped(b), 18);
    free(e);
    /* a count does not wrap */
    assert_int_equal(gh_usage_batch_add(b, 0, id, 7, UINT64_MAX), 0);
    assert_int_equal(gh_usage_batch_pending(b, id, 7), UINT64_MAX);
    assert_int_equal(gh_usage_batch_take(b, &e, &n), 0);
    free(e);
    assert_int_equal(gh_usage_batch_take(b, &e, &n), 0);
    assert_int_equal(n, 0);
    assert_null(e);
    gh_usage_batch_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_adds_and_takes_are_exact),
        cmocka_unit_test(test_bound_and_put_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
