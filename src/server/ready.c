/*
 * What the admin API asks of the process: whether it is ready (/ready:
 * starting, draining, or a JWT provider a route needs without keys), the
 * running snapshot for /config and /clusters, and the store for /apikeys.
 */
#include <stdio.h>

#include <gatehouse/issuer_keys.h>
#include <gatehouse/store.h>

#include "admin/views.h"
#include "server/server.h"

static int hook_ready(void *arg, int detailed, const char **reason)
{
    server_t *sv = arg;
    if (sv->stopping) {
        *reason = "draining";
        return 0;
    }
    if (!sv->serving) {
        *reason = "starting";
        return 0;
    }
    /* Every filter runtime must be ready (the JWT providers' keys loaded
     * once). Each part that is not is a line of its own (the admin API
     * splits them at '\n'), so an operator sees them all at once. */
    size_t listed =
        gh_snapshot_not_ready(sv->snap, detailed, sv->ready_reason, sizeof(sv->ready_reason));
    if (listed > 0) {
        *reason = sv->ready_reason;
        return 0;
    }
    return 1;
}

static char *hook_config(void *arg, size_t *len)
{
    server_t *sv = arg;
    return gh_admin_config_json(sv->snap, len);
}

static char *hook_clusters(void *arg, size_t *len)
{
    server_t *sv = arg;
    return gh_admin_clusters_json(sv->snap, len);
}

/* The process's current store (gatehouse/store.h): the one the running
 * config names, which the API-key providers use too. */
static gh_store_t *hook_store(void *arg, char *why, size_t cap)
{
    gh_store_error_t err;
    (void)arg;
    gh_store_t *st = gh_store_current_get(&err);
    if (st == NULL)
        snprintf(why, cap, "%s", err.msg);
    return st;
}

/* The running config's issuer keys (its `issuer` section's settings). */
static const gh_issuer_keys_conf_t *hook_issuer_keys(void *arg, char *why, size_t cap)
{
    (void)arg;
    const gh_issuer_keys_conf_t *c = gh_issuer_current_conf();
    if (c == NULL)
        snprintf(why, cap, "the configuration has no issuer section");
    return c;
}

static void hook_issuer_keys_rotated(void *arg)
{
    (void)arg;
    gh_issuer_current_reload();
}

gh_admin_hooks_t gh_server_admin_hooks(server_t *sv)
{
    gh_admin_hooks_t hooks = {hook_ready, hook_config,      hook_clusters,           hook_store,
                              sv,         hook_issuer_keys, hook_issuer_keys_rotated};
    return hooks;
}
