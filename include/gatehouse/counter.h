/*
 * Process-wide counters that every worker updates, without locks.
 *
 * gh_counter_t sums: each worker adds to its own shard (a cache line of its
 * own, so workers never contend) and a reader sums the shards. Use it for
 * counts that are read rarely (usage per consumer, per-route totals).
 *
 * gh_window_t admits: "at most limit per window, across all workers of the
 * process", exactly. Its state is one 64-bit word (window number, count)
 * changed by compare-and-swap, so two workers can never both take the
 * last unit, and the first take in a new window resets the count. The
 * limits of the API-keys issue (quotas, fixed windows) build on it.
 */
#ifndef GATEHOUSE_COUNTER_H
#define GATEHOUSE_COUNTER_H

#include <stdint.h>

typedef struct gh_counter_s gh_counter_t;

/* shards: the number of workers (at least 1). NULL when out of memory. */
gh_counter_t *gh_counter_new(unsigned shards);
void gh_counter_free(gh_counter_t *c);
/* Any thread; shard is the caller's worker id (taken modulo the shards). */
void gh_counter_add(gh_counter_t *c, unsigned shard, int64_t n);
/* Any thread: the sum of the shards (each read whole, not a snapshot of all). */
int64_t gh_counter_sum(const gh_counter_t *c);

/* Zeroed memory is a valid, empty window counter. */
typedef struct {
    uint64_t word; /* window number << 40 | count */
} gh_window_t;

#define GH_WINDOW_COUNT_MAX ((UINT64_C(1) << 40) - 1)

/* Any thread: takes n units in window number window (e.g. unix time / 60
 * for a per-minute limit; only its low 24 bits are kept, so windows that
 * far apart look alike) if the count stays at most limit. Returns 1 when
 * taken, 0 when that would pass the limit (nothing taken). *count gets the
 * window's count after the call (may be NULL). A take for a window at
 * most 64 behind the stored one (with a count: a worker's clock that lags)
 * is refused; one farther behind is taken as a new window (the stored one
 * is old, its number wrapped). */
int gh_window_take(gh_window_t *w, uint64_t window, uint64_t n, uint64_t limit, uint64_t *count);

#endif
