/*
 * The JWT filter's per-worker cache of verified tokens (src/filters/jwt/
 * cache.c): equality is the whole token and the provider runtime, never
 * the two-word hash; a token two providers verified has an entry for
 * each; a re-verified token takes its stale entry back instead of another
 * way of its set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filters/jwt/internal.h"

/* Stores tok as verified by rt_id, as verify_one does. */
static entry_t *put(wstate_t *w, const char *tok, uint64_t rt_id)
{
    size_t n = strlen(tok);
    uint64_t h = gh_jwtf_token_hash(w, tok, n);
    entry_t *e = gh_jwtf_cache_slot(w, h, rt_id, tok, n);
    assert_non_null(e);
    assert_null(e->token);
    e->token = malloc(n);
    assert_non_null(e->token);
    memcpy(e->token, tok, n);
    e->token_len = n;
    e->hash = h;
    e->rt_id = rt_id;
    e->gen = 1;
    e->expires = INT64_MAX;
    return e;
}

static entry_t *find(wstate_t *w, const char *tok, uint64_t rt_id)
{
    size_t n = strlen(tok);
    return gh_jwtf_cache_find(w, gh_jwtf_token_hash(w, tok, n), rt_id, tok, n);
}

static wstate_t *small_cache(void)
{
    wstate_t *w = gh_jwtf_wstate_new();
    assert_non_null(w);
    assert_int_equal(gh_jwtf_cache_fit(w, 16), 0); /* 4 sets of 4 ways */
    assert_int_equal(w->nsets, 4);
    return w;
}

/* A token ending like tok, of its length, in tok's set: a hash collision
 * made on purpose (the hash reads the length and the last 16 bytes). */
static void same_set_token(wstate_t *w, const char *tok, char *out, size_t cap)
{
    size_t n = strlen(tok);
    assert_true(n + 1 <= cap && n > 20);
    memcpy(out, tok, n + 1);
    out[0] = out[0] == 'A' ? 'B' : 'A';
    assert_int_equal(gh_jwtf_token_hash(w, out, n), gh_jwtf_token_hash(w, tok, n));
}

static void test_full_token_compared(void **state)
{
    (void)state;
    wstate_t *w = small_cache();
    const char *tok = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLWFsaWNl";
    char twin[128];
    same_set_token(w, tok, twin, sizeof(twin));
    entry_t *e = put(w, tok, 7);
    assert_ptr_equal(find(w, tok, 7), e);
    /* Same hash, same length, same signature bytes: still not the token. */
    assert_null(find(w, twin, 7));
    /* A prefix, or the token with a byte more, is another token. */
    char longer[128];
    snprintf(longer, sizeof(longer), "%sA", tok);
    assert_null(find(w, longer, 7));
    assert_null(gh_jwtf_cache_find(w, gh_jwtf_token_hash(w, tok, strlen(tok) - 1), 7, tok,
                                   strlen(tok) - 1));
    gh_jwtf_wstate_free(w);
}

static void test_each_provider_its_entry(void **state)
{
    (void)state;
    wstate_t *w = small_cache();
    const char *tok = "eyJhbGciOiJFUzI1NiJ9.eyJhdWQiOlsiYSIsImIiXX0.c2lnbmF0dXJlLWZvci1ib3Ro";
    entry_t *a = put(w, tok, 1);
    entry_t *b = put(w, tok, 2);
    assert_ptr_not_equal(a, b);
    /* Each runtime finds its own entry, whichever was stored first. */
    assert_ptr_equal(find(w, tok, 1), a);
    assert_ptr_equal(find(w, tok, 2), b);
    /* A runtime that never verified it (another provider, a reloaded
     * config) finds nothing. */
    assert_null(find(w, tok, 3));
    gh_jwtf_wstate_free(w);
}

static void test_reverified_token_takes_its_entry_back(void **state)
{
    (void)state;
    wstate_t *w = small_cache();
    const char *tok = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLW9mLWJvYi0xMjM0";
    char other[128];
    same_set_token(w, tok, other, sizeof(other));
    entry_t *o = put(w, other, 9);
    /* The token, used on two providers in turn and re-verified each time
     * (its entries gone stale: a new key set), keeps one entry per
     * provider; the set's other token is never evicted for it. */
    entry_t *a = put(w, tok, 1), *b = put(w, tok, 2);
    for (int i = 0; i < 200; i++) {
        a->gen = b->gen = 0; /* stale */
        assert_ptr_equal(put(w, tok, (uint64_t)(1 + i % 2)), i % 2 ? b : a);
        a->gen = b->gen = 1;
    }
    assert_ptr_equal(find(w, other, 9), o);
    size_t copies = 0;
    for (size_t i = 0; i < w->nsets * WAYS; i++)
        copies += w->entries[i].token != NULL && w->entries[i].token_len == strlen(tok) &&
                  memcmp(w->entries[i].token, tok, strlen(tok)) == 0;
    assert_int_equal(copies, 2);
    gh_jwtf_wstate_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_token_compared),
        cmocka_unit_test(test_each_provider_its_entry),
        cmocka_unit_test(test_reverified_token_takes_its_entry_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
