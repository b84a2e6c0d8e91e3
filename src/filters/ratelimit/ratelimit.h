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
 * A limit with `mode: fleet` (a route's, or a plan's) is decided by a
 * backend shared by every gatehouse: Redis, with one atomic script per
 * decision (fleet.c, docs/rate-limits.md#fleet-mode). The filter gathers
 * a request's fleet limits into one batch after its local limits passed,
 * pauses the stream, and hands the batch to the backend; the backend
 * answers on the stream's worker loop, later, through done. The batch is
 * the filter's malloc'd memory, not the stream's: the call may outlive
 * the stream (the client leaves), and done then frees it.
 *
 * `mode: fleet` needs `store.kind: redis` (a load error otherwise). The
 * backend is the Redis one unless another is registered
 * (gh_ratelimit_fleet_set: tests). Each snapshot with fleet limits opens
 * the backend for its config (open, on the main thread) and each instance
 * keeps what it opened, so a reload that changes the store never changes
 * the backend under a request of the snapshot before.
 */
#define GH_RATELIMIT_FLEET_MAX 8 /* fleet limits one request meets (one decision) */

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
    size_t num_items; /* 1 .. GH_RATELIMIT_FLEET_MAX */
    gh_limit_now_t now;
    uv_loop_t *loop; /* the worker's: done must run there */
    void *worker;    /* the backend's state of this worker (worker_new), or NULL */
    /* The backend's answer, exactly once, never inside take: status 0 (each
     * item's res is filled; all items were taken, or none when one was
     * refused) or -errno (the store is down or slow: each limit's on_error
     * decides). */
    void (*done)(gh_ratelimit_batch_t *b, int status);
};

typedef struct {
    const char *name;
    /* Main thread, for each snapshot with fleet limits: the backend's view
     * of cfg (its store section), which take then gets as backend. NULL
     * when it cannot serve cfg, with the reason in err. Optional: without
     * it take gets `backend` below. */
    void *(*open)(const gh_config_t *cfg, char *err, size_t errcap);
    /* Any thread: the snapshot that opened backend is gone. */
    void (*close)(void *backend);
    /* Per-worker state (gh_stream_worker_state): made on the worker's
     * thread by its first fleet request, freed by worker_free after the
     * worker's loop ended (main thread: see docs/redis.md on closing a
     * client after a worker's teardown). Optional. */
    void *(*worker_new)(void);
    void (*worker_free)(void *worker);
    /* Worker thread. Starts b; returns 0 (done will run), or -errno (it
     * will not: taken as a store error). Bounded: a backend that cannot
     * take more work fails the call rather than queue it. */
    int (*take)(void *backend, gh_ratelimit_batch_t *b);
    void *backend;
    /* Lines for /metrics (main thread), as gh_metrics_extra_fn; optional. */
    size_t (*metrics)(char *buf, size_t cap);
} gh_ratelimit_fleet_t;

/* The Redis backend (fleet.c). */
extern const gh_ratelimit_fleet_t gh_ratelimit_fleet_redis;

/* Main thread, before a config with fleet limits loads: the backend the
 * next snapshots open (NULL: the Redis backend). */
void gh_ratelimit_fleet_set(const gh_ratelimit_fleet_t *fleet);

/* The process-wide counter table (created by the service, or on first
 * use by a snapshot): for /metrics and tests. */
gh_limit_table_t *gh_ratelimit_table(void);

#endif
