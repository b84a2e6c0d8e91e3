/*
 * Metrics: counters and histograms kept per worker (a shard each, written
 * only by its worker, without locks or atomics beyond relaxed stores) and
 * summed when /metrics is read.
 *
 * Series are identified by small integer ids that stay stable across
 * reloads: the main thread maps each label set (listener, route, cluster
 * names from the config, never request data, so cardinality is bounded by
 * the config) to an id when it builds a snapshot. A shard grows in chunks
 * as new ids appear; chunks never move, so the reader needs no lock.
 */
#ifndef GATEHOUSE_METRICS_H
#define GATEHOUSE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define GH_HIST_BUCKETS 13             /* plus +Inf */
#define GH_METRICS_CALLOUT_OUTCOMES 10 /* GH_CALLOUT_OUTCOMES (gatehouse/callout.h) */

typedef struct {
    uint64_t buckets[GH_HIST_BUCKETS + 1]; /* not cumulative; last is +Inf */
    uint64_t sum_us;
    uint64_t count;
} gh_hist_t;

typedef struct {
    uint64_t codes[5]; /* 1xx .. 5xx */
} gh_series_stats_t;

typedef struct {
    gh_hist_t duration;
    uint64_t bytes_in;
    uint64_t bytes_out;
} gh_route_stats_t;

typedef struct {
    uint64_t conns_active; /* per shard: opened - closed, may wrap below 0 in one shard */
    uint64_t conns_total;
    uint64_t accept_pauses; /* stopped accepting at max_connections */
    uint64_t conns_refused; /* accepted and closed at once (per-address limit, no memory) */
} gh_listener_stats_t;

typedef struct {
    gh_hist_t duration;
    uint64_t conns_active;
    uint64_t conns_total;
    uint64_t connect_failures;
    uint64_t timeouts;
    uint64_t resets;
    uint64_t pool_hits;
    uint64_t pending_overflows; /* 503: max_pending requests were waiting already */
    uint64_t pending_timeouts;  /* 503: no connection became free within connect_timeout */
    uint64_t pending;           /* gauge, per shard like conns_active: requests waiting now */
    /* Filters' own calls to the cluster (gatehouse/callout.h), by outcome:
     * [0] ok, [-code] for each GH_CALLOUT_E_* code. */
    uint64_t callouts[GH_METRICS_CALLOUT_OUTCOMES];
} gh_cluster_stats_t;

/* Authentication decisions by provider and reason. */
typedef struct {
    uint64_t count;
} gh_decision_stats_t;

/* One event counter of a filter (gatehouse_filter_events_total). */
typedef gh_decision_stats_t gh_counter_stats_t;

/* One endpoint of a cluster, for /clusters. */
typedef struct {
    uint64_t active_requests; /* per shard: may wrap below 0 in one shard */
    uint64_t idle_conns;
} gh_endpoint_stats_t;

typedef struct gh_metrics_shard_s gh_metrics_shard_t;

/* Registry (main thread). Returns the id of the label set, creating it;
 * UINT32_MAX when out of memory or past GH_METRICS_MAX_IDS. */
#define GH_METRICS_MAX_IDS (64 * 1024)
uint32_t gh_metrics_series_id(const char *listener, const char *route, const char *cluster);
uint32_t gh_metrics_route_id(const char *listener, const char *route);
uint32_t gh_metrics_listener_id(const char *listener);
uint32_t gh_metrics_cluster_id(const char *cluster);
uint32_t gh_metrics_endpoint_id(const char *cluster, const char *address);
uint32_t gh_metrics_decision_id(const char *provider, const char *decision, const char *reason);
/* gatehouse_filter_events_total{filter, route, event}. */
uint32_t gh_metrics_filter_id(const char *filter, const char *route, const char *event);
/* gatehouse_policy_decisions_total{policy, action, decision, dry_run}. */
uint32_t gh_metrics_policy_id(const char *policy, const char *action, const char *decision,
                              const char *dry_run);
/* Main thread: the endpoint's values summed over shards. */
void gh_metrics_endpoint_read(uint32_t id, uint64_t *active_requests, uint64_t *idle_conns);

/* A worker's shard (created by the main thread before the worker runs). */
gh_metrics_shard_t *gh_metrics_shard_new(void);

/* Worker side: the stats for an id, allocated on first use; NULL when out
 * of memory or for UINT32_MAX (callers skip the update). */
gh_series_stats_t *gh_metrics_series(gh_metrics_shard_t *s, uint32_t id);
gh_route_stats_t *gh_metrics_route(gh_metrics_shard_t *s, uint32_t id);
gh_listener_stats_t *gh_metrics_listener(gh_metrics_shard_t *s, uint32_t id);
gh_cluster_stats_t *gh_metrics_cluster(gh_metrics_shard_t *s, uint32_t id);
gh_endpoint_stats_t *gh_metrics_endpoint(gh_metrics_shard_t *s, uint32_t id);
gh_decision_stats_t *gh_metrics_decision(gh_metrics_shard_t *s, uint32_t id);
gh_counter_stats_t *gh_metrics_filter(gh_metrics_shard_t *s, uint32_t id);
gh_counter_stats_t *gh_metrics_policy(gh_metrics_shard_t *s, uint32_t id);

/* Single-writer increments that a concurrent reader sees whole. */
#define GH_STAT_ADD(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELAXED)
#define GH_STAT_INC(field) GH_STAT_ADD(field, 1)
#define GH_STAT_DEC(field) __atomic_store_n(&(field), (field)-1, __ATOMIC_RELAXED)
void gh_hist_observe(gh_hist_t *h, uint64_t us);

/* Process-wide values (any thread). */
void gh_stats_reload(int ok);
void gh_stats_set_generation(uint64_t generation);
uint64_t gh_stats_generation(void);

/* Extra lines a module contributes to /metrics (tracing, JWKS): fn writes
 * at most cap bytes and returns how many it needed (like snprintf); it is
 * called again with more room when that is cap or more. Up to 8 sources;
 * adding fn again replaces its arg; a NULL arg removes it. Main thread. */
typedef size_t (*gh_metrics_extra_fn)(char *buf, size_t cap, void *arg);
void gh_metrics_set_extra(gh_metrics_extra_fn fn, void *arg);

/* Renders the Prometheus text exposition (version 0.0.4) of every shard,
 * summed. Returns a heap string (caller frees) and its length in *len. */
char *gh_metrics_render(size_t *len);

/* Frees every shard and the registry; at exit, after the workers stopped. */
void gh_metrics_shutdown(void);

#endif
