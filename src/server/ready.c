/*
 * What the admin API asks of the process: whether it is ready (/ready:
 * starting, draining, or a JWT provider a route needs without keys), and
 * the running snapshot for /config and /clusters.
 */
#include <stdio.h>

#include <gatehouse/authn.h>

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
    /* Required keys: every provider a route uses must have loaded once.
     * Every one that has not is a reason of its own (the admin API splits
     * them at '\n'), so an operator sees them all at once. */
    size_t o = 0, listed = 0, more = 0;
    for (size_t i = 0; i < sv->snap->cfg->num_jwt_providers; i++) {
        const char *why;
        if (gh_jwt_runtime_ready(sv->snap->jwt[i], &why))
            continue;
        if (listed == READY_REASONS_MAX) {
            more++;
            continue;
        }
        char one[READY_REASON_LEN];
        /* why may name a file, a URL or quote a JWKS host's answer. */
        snprintf(one, sizeof(one), "jwt provider '%s': %s", sv->snap->cfg->jwt_providers[i].name,
                 detailed ? why : "keys not loaded (details need the admin token)");
        for (char *c = one; *c; c++)
            if (*c == '\n')
                *c = ' ';
        o += (size_t)snprintf(sv->ready_reason + o, sizeof(sv->ready_reason) - o, "%s%s",
                              listed > 0 ? "\n" : "", one);
        listed++;
    }
    if (more > 0)
        snprintf(sv->ready_reason + o, sizeof(sv->ready_reason) - o,
                 "\nand %zu more jwt providers without keys", more);
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
