/*
 * The authorizers' process-wide answer cache (src/filters/authorizer/
 * shared.c): the per-worker cache's semantics (exact keys, expiry at the
 * injected time, results kept whole for per-ARN evaluation, denials,
 * replacement), an exact bound whatever comes, entries that outlive
 * their eviction and their table while a reference is held, and threads
 * hammering look-ups, inserts and evictions at once (run under the ASan
 * build; the concurrency test is the one to run under TSan by hand).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <cmocka.h>

#include "filters/authorizer/authorizer.h"

static const char ALLOW_A[] =
    "{\"principalId\":\"u\",\"policyDocument\":{\"Version\":\"2012-10-17\",\"Statement\":[{"
    "\"Effect\":\"Allow\",\"Action\":\"execute-api:Invoke\",\"Resource\":"
    "\"arn:aws:execute-api:us-east-1:1:api/prod/GET/a*\"}]}}";

static const gh_azr_prepared_t nothing;

static gh_authz_str_t one(const char *k)
{
    return (gh_authz_str_t){k, strlen(k)};
}

/* The entry of key k at now with a reference (the caller's), or NULL. */
static gh_azr_sentry_t *get(gh_azr_shared_t *t, const char *k, uint64_t now)
{
    gh_authz_str_t v = one(k);
    return gh_azr_shared_get(t, gh_azr_shared_hash(t, &v, 1), &v, 1, now);
}

/* 1 when key k is there at now. */
static int has(gh_azr_shared_t *t, const char *k, uint64_t now)
{
    gh_azr_sentry_t *e = get(t, k, now);
    gh_azr_sentry_unref(e);
    return e != NULL;
}

static gh_azr_sentry_t *put(gh_azr_shared_t *t, const char *k, uint64_t now, uint64_t exp,
                            gh_authz_result_t *r, const gh_azr_prepared_t *p)
{
    gh_authz_str_t v = one(k);
    return gh_azr_shared_put(t, gh_azr_shared_hash(t, &v, 1), &v, 1, now, exp, r, p);
}

static void put_simple(gh_azr_shared_t *t, const char *k, uint64_t exp, int allow)
{
    gh_authz_result_t r;
    const char *why;
    const char *text = allow ? "{\"isAuthorized\":true}" : "{\"isAuthorized\":false}";
    assert_int_equal(gh_authz_response_v2(text, strlen(text), 1, &r, &why), 0);
    gh_azr_sentry_t *e = put(t, k, 0, exp, &r, &nothing);
    assert_non_null(e);
    gh_azr_sentry_unref(e);
    gh_authz_result_dispose(&r);
}

static void test_hit_miss_and_expiry(void **state)
{
    (void)state;
    gh_azr_shared_t *t = gh_azr_shared_new(16);
    assert_non_null(t);
    assert_null(get(t, "tok", 0));
    put_simple(t, "tok", 1000, 1);
    gh_azr_sentry_t *e = get(t, "tok", 999);
    assert_non_null(e);
    assert_true(e->result.simple && e->result.authorized);
    gh_azr_sentry_unref(e);
    /* Another key, a prefix of the key: misses. */
    assert_false(has(t, "to", 0));
    assert_false(has(t, "tok2", 0));
    /* Expired at its time exactly, and gone after. */
    assert_null(get(t, "tok", 1000));
    assert_int_equal(gh_azr_shared_count(t), 0);
    gh_azr_shared_free(t);
}

static void test_denials_and_replacement(void **state)
{
    (void)state;
    gh_azr_shared_t *t = gh_azr_shared_new(4);
    put_simple(t, "k", 100, 0);
    gh_azr_sentry_t *e = get(t, "k", 0);
    assert_non_null(e);
    assert_int_not_equal(gh_authz_result_decide(&e->result, "x", 1), GH_AUTHZ_ALLOW);
    /* The same key again replaces its entry, not another slot; the
     * reference held still reads the old answer. */
    put_simple(t, "k", 200, 1);
    assert_int_equal(gh_azr_shared_count(t), 1);
    assert_int_not_equal(gh_authz_result_decide(&e->result, "x", 1), GH_AUTHZ_ALLOW);
    gh_azr_sentry_unref(e);
    e = get(t, "k", 150);
    assert_non_null(e);
    assert_int_equal(gh_authz_result_decide(&e->result, "x", 1), GH_AUTHZ_ALLOW);
    gh_azr_sentry_unref(e);
    gh_azr_shared_free(t);
}

static void test_policy_evaluated_per_arn(void **state)
{
    (void)state;
    gh_azr_shared_t *t = gh_azr_shared_new(8);
    gh_authz_result_t r;
    const char *why;
    assert_int_equal(gh_authz_response_v1(ALLOW_A, strlen(ALLOW_A), &r, &why), 0);
    gh_azr_prepared_t p = {.lines = "x-user: u\r\n", .lines_len = 11, .principal = "u"};
    gh_azr_sentry_t *e = put(t, "t", 0, 10, &r, &p);
    assert_non_null(e);
    gh_azr_sentry_unref(e);
    assert_null(r.policy); /* moved */
    e = get(t, "t", 0);
    assert_non_null(e);
    const char *a = "arn:aws:execute-api:us-east-1:1:api/prod/GET/a/1";
    const char *b = "arn:aws:execute-api:us-east-1:1:api/prod/GET/b";
    assert_int_equal(gh_authz_result_decide(&e->result, a, strlen(a)), GH_AUTHZ_ALLOW);
    assert_int_equal(gh_authz_result_decide(&e->result, b, strlen(b)), GH_AUTHZ_DENY_IMPLICIT);
    assert_int_equal(e->p.lines_len, 11);
    assert_memory_equal(e->p.lines, "x-user: u\r\n", 11);
    assert_string_equal(e->p.principal, "u");
    assert_null(e->p.claims);
    gh_azr_sentry_unref(e);
    gh_azr_shared_free(t);
}

/* Exactly cache_entries, however many keys come (sizes that are and are
 * not a multiple of the 4 ways). */
static void test_bounded_exactly(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {1, 2, 3, 4, 5, 10, 17, 64};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        gh_azr_shared_t *t = gh_azr_shared_new(sizes[s]);
        char k[32];
        for (int i = 0; i < 5000; i++) {
            snprintf(k, sizeof(k), "key-%d", i);
            gh_azr_prepared_t p = {.lines = "x-a: b\r\n",
                                   .lines_len = 8,
                                   .principal = k,
                                   .claims = "{}",
                                   .claims_len = 2};
            gh_azr_sentry_t *e = put(t, k, 0, 1000, NULL, &p);
            assert_non_null(e);
            gh_azr_sentry_unref(e);
            assert_true(gh_azr_shared_count(t) <= sizes[s]);
        }
        assert_int_equal(gh_azr_shared_count(t), sizes[s]);
        /* The last key is there, with its strings. */
        gh_azr_sentry_t *e = get(t, k, 0);
        assert_non_null(e);
        assert_string_equal(e->p.principal, k);
        assert_int_equal(e->p.claims_len, 2);
        assert_string_equal(e->p.claims, "{}");
        gh_azr_sentry_unref(e);
        gh_azr_shared_free(t);
    }
}

/* A full set takes an expired slot before it evicts a live entry. */
static void test_expired_slot_first(void **state)
{
    (void)state;
    gh_azr_shared_t *t = gh_azr_shared_new(4); /* one set */
    put_simple(t, "a", 1000, 1);
    put_simple(t, "b", 1000, 1);
    put_simple(t, "c", 10, 1);
    put_simple(t, "d", 1000, 1);
    gh_azr_sentry_t *e = put(t, "e", 20, 1000, NULL, &nothing);
    gh_azr_sentry_unref(e);
    assert_true(has(t, "a", 30) && has(t, "b", 30) && has(t, "d", 30) && has(t, "e", 30));
    assert_false(has(t, "c", 0));
    gh_azr_shared_free(t);
}

/* An entry in use outlives its eviction and its table. */
static void test_reference_outlives_eviction_and_table(void **state)
{
    (void)state;
    gh_azr_shared_t *t = gh_azr_shared_new(1);
    gh_azr_prepared_t p = {.lines = "x-t: 1\r\n", .lines_len = 8, .principal = "first"};
    gh_azr_sentry_unref(put(t, "first", 0, 100, NULL, &p));
    gh_azr_sentry_t *held = get(t, "first", 0);
    assert_non_null(held);
    gh_azr_sentry_unref(put(t, "second", 0, 100, NULL, &nothing)); /* evicts it */
    assert_false(has(t, "first", 0));
    assert_string_equal(held->p.principal, "first");
    gh_azr_sentry_t *two = get(t, "second", 0);
    assert_non_null(two);
    gh_azr_shared_free(t); /* a reload: the snapshot goes */
    assert_string_equal(held->p.principal, "first");
    assert_memory_equal(held->p.lines, "x-t: 1\r\n", 8);
    assert_null(two->p.principal);
    gh_azr_sentry_unref(held);
    gh_azr_sentry_unref(two);
}

/* Two values are not their concatenation, nor split elsewhere; and a
 * look-up given another key's hash (same length) compares the key. */
static void test_values_do_not_run_together(void **state)
{
    (void)state;
    gh_azr_shared_t *t = gh_azr_shared_new(64);
    gh_authz_str_t ab[2] = {{"a,b", 3}, {"c", 1}}, a_bc[2] = {{"a", 1}, {",bc", 3}};
    gh_authz_str_t abc = {"a,bc", 4};
    uint64_t h = gh_azr_shared_hash(t, ab, 2);
    assert_int_not_equal(h, gh_azr_shared_hash(t, a_bc, 2));
    assert_int_not_equal(h, gh_azr_shared_hash(t, &abc, 1));
    gh_azr_sentry_unref(gh_azr_shared_put(t, h, ab, 2, 0, 100, NULL, &nothing));
    gh_azr_sentry_t *e = gh_azr_shared_get(t, h, ab, 2, 0);
    assert_non_null(e);
    gh_azr_sentry_unref(e);
    assert_null(gh_azr_shared_get(t, h, a_bc, 2, 0));
    assert_null(gh_azr_shared_get(t, h, &abc, 1, 0));
    assert_null(gh_azr_shared_get(t, h, ab, 1, 0));
    assert_int_equal(gh_azr_shared_count(t), 1);
    /* Two tables draw two secrets. */
    gh_azr_shared_t *u = gh_azr_shared_new(64);
    assert_int_not_equal(h, gh_azr_shared_hash(u, ab, 2));
    gh_azr_shared_free(u);
    gh_azr_shared_free(t);
}

/* ---- threads ---- */

#define THREADS 6
#define ROUNDS 40000
#define KEYS 48
#define HELD 8

typedef struct {
    gh_azr_shared_t *t;
    unsigned id;
    unsigned hits, puts, bad;
} worker_t;

/* Every entry of key k says k in its lines and principal, and a simple
 * answer that allows exactly when k's number is even: a reader that got
 * another key's entry, or one freed under it, sees it (or ASan does). */
static int entry_is(const gh_azr_sentry_t *e, const char *k, int n)
{
    char line[48];
    int ll = snprintf(line, sizeof(line), "x-k: %s\r\n", k);
    return e->p.lines_len == (size_t)ll && memcmp(e->p.lines, line, (size_t)ll) == 0 &&
           e->p.principal != NULL && strcmp(e->p.principal, k) == 0 && e->result.simple &&
           e->result.authorized == (n % 2 == 0);
}

static void *hammer(void *arg)
{
    worker_t *w = arg;
    gh_azr_sentry_t *held[HELD] = {0};
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (w->id + 1);
    for (unsigned i = 0; i < ROUNDS; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int n = (int)(rng % KEYS);
        char k[16];
        snprintf(k, sizeof(k), "key-%d", n);
        /* Each thread's clock runs at its own pace, as the workers'
         * loops do: entries expire under the others. */
        uint64_t now = i / 4;
        gh_azr_sentry_t *e = get(w->t, k, now);
        if (e == NULL) {
            char line[48];
            int ll = snprintf(line, sizeof(line), "x-k: %s\r\n", k);
            const char *text = n % 2 == 0 ? "{\"isAuthorized\":true}" : "{\"isAuthorized\":false}";
            gh_authz_result_t r;
            const char *why;
            if (gh_authz_response_v2(text, strlen(text), 1, &r, &why) != 0) {
                w->bad++;
                continue;
            }
            gh_azr_prepared_t p = {.lines = line, .lines_len = (size_t)ll, .principal = k};
            e = put(w->t, k, now, now + 1 + rng % 50, &r, &p);
            gh_authz_result_dispose(&r);
            if (e == NULL) {
                w->bad++;
                continue;
            }
            w->puts++;
        } else {
            w->hits++;
        }
        if (!entry_is(e, k, n))
            w->bad++;
        /* Held a while, as a worker holds the entry its outcome came
         * from, while the others evict it. */
        gh_azr_sentry_unref(held[i % HELD]);
        held[i % HELD] = e;
    }
    for (int i = 0; i < HELD; i++) {
        if (held[i] != NULL && held[i]->p.principal == NULL)
            w->bad++;
        gh_azr_sentry_unref(held[i]);
    }
    return NULL;
}

static void test_threads_hammer(void **state)
{
    (void)state;
    gh_azr_shared_t *t = gh_azr_shared_new(13); /* fewer slots than keys: evictions */
    pthread_t th[THREADS];
    worker_t w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.t = t, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    unsigned hits = 0, puts = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
        hits += w[i].hits;
        puts += w[i].puts;
    }
    assert_int_equal(hits + puts, THREADS * ROUNDS);
    assert_true(hits > 0 && puts > 0);
    assert_true(gh_azr_shared_count(t) <= 13);
    gh_azr_shared_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss_and_expiry),
        cmocka_unit_test(test_denials_and_replacement),
        cmocka_unit_test(test_policy_evaluated_per_arn),
        cmocka_unit_test(test_bounded_exactly),
        cmocka_unit_test(test_expired_slot_first),
        cmocka_unit_test(test_reference_outlives_eviction_and_table),
        cmocka_unit_test(test_values_do_not_run_together),
        cmocka_unit_test(test_threads_hammer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
