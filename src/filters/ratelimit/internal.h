/* The rate_limits filter's parts (conf.c parses, filter.c runs). */
#ifndef GATEHOUSE_FILTERS_RATELIMIT_INTERNAL_H
#define GATEHOUSE_FILTERS_RATELIMIT_INTERNAL_H

#include "filters/ratelimit/ratelimit.h"

/* Limits a route may list: with the plan's three, what one request can
 * meet stays small enough for stack buffers. */
#define RL_MAX_LIMITS 16
#define RL_MAX_NAME 64

typedef enum {
    RL_KEY_ADDRESS = 0,
    RL_KEY_CONSUMER,
    RL_KEY_ROUTE,
    RL_KEY_HEADER,
    RL_KEY_CLAIM,
} rl_key_kind_t;

/* A request without the key (no such header, no consumer, no claim). */
typedef enum {
    RL_MISSING_SHARED = 0, /* counted in one bucket shared by all such requests */
    RL_MISSING_SKIP,       /* the limit does not apply (Envoy's descriptors) */
    RL_MISSING_DENY,       /* 400 */
} rl_missing_t;

typedef struct {
    char *name;
    rl_key_kind_t key;
    char *arg; /* RL_KEY_HEADER: name, lower-case; RL_KEY_CLAIM: dotted path */
    size_t arg_len;
    gh_limit_algo_t algo;
    gh_rate_t rate;
    gh_quota_t quota;
    int fleet;     /* mode: fleet */
    int fail_open; /* on_error: open */
    rl_missing_t missing;
    int headers; /* RateLimit fields on allowed responses */
} rl_limit_conf_t;

typedef struct {
    rl_limit_conf_t *limits;
    size_t num_limits;
} rl_conf_t;

int rl_parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
             gh_route_t *route, void **conf);
int rl_check(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const gh_config_t *cfg,
             const gh_route_t *route, const void *conf);
void rl_free_conf(void *conf);
int rl_implied(const gh_config_t *cfg, const gh_route_t *route);

/* The registered fleet backend, or NULL. */
const gh_ratelimit_fleet_t *rl_fleet(void);

#endif
