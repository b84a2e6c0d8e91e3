/*
 * A snapshot is the running configuration plus what is derived from it
 * (each route's filter chain). Immutable once published; refcounted: the
 * main thread holds one reference, each worker one, each stream one, so a
 * reload can replace it while in-flight requests finish on the old one.
 */
#ifndef GATEHOUSE_PROXY_SNAPSHOT_H
#define GATEHOUSE_PROXY_SNAPSHOT_H

#include <stdint.h>

#include <gatehouse/config.h>
#include <gatehouse/filter.h>

typedef struct {
    /* The route's filters in phase order, then the terminal one (the
     * router unless the route has a terminal filter). Instances made by a
     * type's bind are owned here (freed by its unbind). */
    gh_filter_t *filters;
    size_t num_filters;
    /* The per-request hooks some filter of the chain has (GH_HOOK_*), so
     * that a request does not walk the chain for a hook none of them has. */
    unsigned hooks;
    /* Metric ids (gatehouse/metrics.h): the route's, and one series per
     * target cluster, [0] being the series without a cluster (local
     * replies before a cluster was chosen, direct responses). */
    uint32_t route_id;
    uint32_t *series_ids; /* num_targets + 1 */
} gh_chain_t;

enum {
    GH_HOOK_CTX = 1,         /* ctx_size > 0 */
    GH_HOOK_LOG = 2,         /* on_log */
    GH_HOOK_REQ_BODY = 4,    /* on_request_body */
    GH_HOOK_RES_HEADERS = 8, /* on_response_headers */
    GH_HOOK_RES_BODY = 16,   /* on_response_body */
};

typedef struct {
    uint32_t listener_id;
    uint32_t noroute_route_id;  /* route="" */
    uint32_t noroute_series_id; /* route="", cluster="" */
} gh_listener_ids_t;

typedef struct {
    unsigned long refs; /* atomic */
    uint64_t generation;
    gh_config_t *cfg;        /* owned */
    gh_chain_t **chains;     /* [listener][route], owned */
    gh_listener_ids_t *lids; /* [listener] */
    uint32_t *cluster_ids;   /* [cluster] */
    uint32_t **endpoint_ids; /* [cluster][endpoint] */
    /* The filter types this snapshot was built with (the registry's list)
     * and each one's per-snapshot runtime (init/fini), by index. */
    const gh_filter_type_t *const *types;
    void **rt;
    /* Client connections one worker may hold over all its listeners, fitted
     * to RLIMIT_NOFILE by gh_fdlimit_apply(); 0 until then: no cap. */
    uint32_t conn_cap;
} gh_snapshot_t;

/* Main thread only (it assigns metric ids). Takes cfg (owned from here on,
 * also on failure). Returns a snapshot with
 * one reference, or NULL when out of memory. */
gh_snapshot_t *gh_snapshot_new(gh_config_t *cfg, uint64_t generation);
gh_snapshot_t *gh_snapshot_ref(gh_snapshot_t *s);
/* Main thread, for /ready: how many parts of the filters' runtimes are not
 * ready, their reasons as lines in out (gh_filter_type_t.ready). */
size_t gh_snapshot_not_ready(const gh_snapshot_t *s, int detailed, char *out, size_t cap);
void gh_snapshot_unref(gh_snapshot_t *s);

#endif
