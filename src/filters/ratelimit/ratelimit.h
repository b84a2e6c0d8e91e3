/*
 * The rate_limits filter (LIMITS phase): a route's own limits (its
 * `rate_limits:` section) and the usage plans of the callers' identities
 * (`plans:`). Users' side: docs/rate-limits.md; the counters:
 * gatehouse/limiter.h.
 */
#ifndef GATEHOUSE_FILTERS_RATELIMIT_H
#define GATEHOUSE_FILTERS_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/filter.h>
#include <gatehouse/limiter.h>

extern const gh_filter_type_t gh_ratelimit_filter;

/* ---- fleet mode: where a shared counter store plugs in ----
 *
 * A limit with `mode: fleet` is decided by a backend shared by every
 * gatehouse (Redis, with one atomic script per decision). The filter
 * gathers a request's fleet limits into one batch after its local limits
 * passed, pauses the stream, and hands the batch to the backend; the
 * backend answers on the stream's worker loop, later, through done. The
 * batch is the filter's malloc'd memory, not the stream's: the call may
 * outlive the stream (the client leaves), and done then frees it.
 *
 * Until a backend is registered (gh_ratelimit_fleet_set), `mode: fleet`
 * is a load error.
 */
typedef struct gh_ratelimit_item_s {
    /* spec (the limit's id, algorithm and parameters) and key are
     * borrowed from the stream and its snapshot: read them in take only,
     * copying into the call what it sends. */
    const gh_limit_spec_t *spec;
    const char *key;
    size_t key_len;
    gh_limit_result_t res; /* the backend's answer, written before done */
} gh_ratelimit_item_t;

typedef struct gh_ratelimit_batch_s gh_ratelimit_batch_t;
struct gh_ratelimit_batch_s {
    gh_ratelimit_item_t *items;
    size_t num_items;
    gh_limit_now_t now;
    uv_loop_t *loop; /* the worker's: done must run there */
    /* The backend's answer, exactly once, never inside take: status 0 (each
     * item's res is filled; all items were taken, or none when one was
     * refused) or -errno (the store is down or slow: each limit's on_error
     * decides). */
    void (*done)(gh_ratelimit_batch_t *b, int status);
};

typedef struct {
    const char *name;
    /* Worker thread. Starts b; returns 0 (done will run), or -errno (it
     * will not: taken as a store error). Bounded: a backend that cannot
     * take more work fails the call rather than queue it. */
    int (*take)(void *backend, gh_ratelimit_batch_t *b);
    void *backend;
} gh_ratelimit_fleet_t;

/* Main thread, before a config with `mode: fleet` loads (NULL: none). */
void gh_ratelimit_fleet_set(const gh_ratelimit_fleet_t *fleet);

/* The process-wide counter table (created by the service, or on first
 * use by a snapshot): for /metrics and tests. */
gh_limit_table_t *gh_ratelimit_table(void);

#endif
