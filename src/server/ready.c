/*
 * What the admin API asks of the process: whether it is ready (/ready:
 * starting, draining, or a JWT provider a route needs without keys), and
 * the running snapshot for /config and /clusters.
 */
#include <stdio.h>

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

gh_admin_hooks_t gh_server_admin_hooks(server_t *sv)
{
    gh_admin_hooks_t hooks = {hook_ready, hook_config, hook_clusters, sv};
    return hooks;
}
