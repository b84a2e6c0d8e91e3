#include "proxy/snapshot.h"

#include <stdlib.h>

#include <gatehouse/authn.h>
#include <gatehouse/metrics.h>

#include "proxy/proxy.h"

static int build_providers(gh_snapshot_t *s)
{
    gh_config_t *cfg = s->cfg;
    s->jwt = calloc(cfg->num_jwt_providers + 1, sizeof(*s->jwt));
    if (s->jwt == NULL)
        return -1;
    for (size_t i = 0; i < cfg->num_jwt_providers; i++)
        if ((s->jwt[i] = gh_jwt_runtime_new(&cfg->jwt_providers[i])) == NULL)
            return -1;
    return 0;
}

static gh_authn_filter_conf_t *authn_conf(gh_snapshot_t *s, const gh_authn_conf_t *a)
{
    gh_authn_filter_conf_t *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return NULL;
    fc->authn = a;
    fc->rt = calloc(a->num_providers + 1, sizeof(*fc->rt));
    if (fc->rt == NULL) {
        free(fc);
        return NULL;
    }
    for (size_t i = 0; i < a->num_providers; i++)
        fc->rt[i] = s->jwt[a->providers[i]->index];
    return fc;
}

/* Builds each route's chain: authentication (when the route has authn),
 * then the terminal filter (router or direct response). Later filters
 * (policies, rate limits) go between the two, in config order. */
static int build_chains(gh_snapshot_t *s)
{
    gh_config_t *cfg = s->cfg;
    if (build_providers(s) < 0)
        return -1;
    s->chains = calloc(cfg->num_listeners ? cfg->num_listeners : 1, sizeof(*s->chains));
    if (s->chains == NULL)
        return -1;
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        gh_listener_conf_t *l = &cfg->listeners[i];
        s->chains[i] = calloc(l->num_routes ? l->num_routes : 1, sizeof(gh_chain_t));
        if (s->chains[i] == NULL)
            return -1;
        for (size_t j = 0; j < l->num_routes; j++) {
            gh_route_t *r = &l->routes[j];
            gh_chain_t *ch = &s->chains[i][j];
            ch->filters = calloc(2, sizeof(gh_filter_t));
            if (ch->filters == NULL)
                return -1;
            size_t n = 0;
            if (r->authn != NULL) {
                ch->authn_conf = authn_conf(s, r->authn);
                if (ch->authn_conf == NULL)
                    return -1;
                ch->filters[n].type = &gh_authn_filter;
                ch->filters[n++].conf = ch->authn_conf;
            }
            if (r->direct != NULL) {
                ch->filters[n].type = &gh_direct_filter;
                ch->filters[n++].conf = r->direct;
            } else {
                ch->filters[n].type = &gh_router_filter;
                ch->filters[n++].conf = r;
            }
            ch->num_filters = n;
            ch->route_id = gh_metrics_route_id(l->name, r->name);
            ch->series_ids = calloc(r->num_targets + 1, sizeof(uint32_t));
            if (ch->series_ids == NULL)
                return -1;
            ch->series_ids[0] = gh_metrics_series_id(l->name, r->name, "");
            for (size_t t = 0; t < r->num_targets; t++)
                ch->series_ids[t + 1] =
                    gh_metrics_series_id(l->name, r->name, r->targets[t].cluster->name);
        }
    }
    s->lids = calloc(cfg->num_listeners + 1, sizeof(*s->lids));
    s->cluster_ids = calloc(cfg->num_clusters + 1, sizeof(uint32_t));
    if (s->lids == NULL || s->cluster_ids == NULL)
        return -1;
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        const char *name = cfg->listeners[i].name;
        s->lids[i].listener_id = gh_metrics_listener_id(name);
        s->lids[i].noroute_route_id = gh_metrics_route_id(name, "");
        s->lids[i].noroute_series_id = gh_metrics_series_id(name, "", "");
    }
    s->endpoint_ids = calloc(cfg->num_clusters + 1, sizeof(uint32_t *));
    if (s->endpoint_ids == NULL)
        return -1;
    for (size_t i = 0; i < cfg->num_clusters; i++) {
        const gh_cluster_t *c = &cfg->clusters[i];
        s->cluster_ids[i] = gh_metrics_cluster_id(c->name);
        s->endpoint_ids[i] = calloc(c->num_endpoints + 1, sizeof(uint32_t));
        if (s->endpoint_ids[i] == NULL)
            return -1;
        for (size_t j = 0; j < c->num_endpoints; j++)
            s->endpoint_ids[i][j] = gh_metrics_endpoint_id(c->name, c->endpoints[j].address);
    }
    return 0;
}

static void snapshot_free(gh_snapshot_t *s)
{
    if (s->chains != NULL) {
        for (size_t i = 0; i < s->cfg->num_listeners; i++) {
            if (s->chains[i] == NULL)
                continue;
            for (size_t j = 0; j < s->cfg->listeners[i].num_routes; j++) {
                free(s->chains[i][j].filters);
                free(s->chains[i][j].series_ids);
                gh_authn_filter_conf_t *fc = s->chains[i][j].authn_conf;
                if (fc != NULL) {
                    free(fc->rt);
                    free(fc);
                }
            }
            free(s->chains[i]);
        }
        free(s->chains);
    }
    if (s->jwt != NULL)
        for (size_t i = 0; i < s->cfg->num_jwt_providers; i++)
            gh_jwt_runtime_free(s->jwt[i]);
    free(s->jwt);
    free(s->lids);
    free(s->cluster_ids);
    if (s->endpoint_ids != NULL)
        for (size_t i = 0; i < s->cfg->num_clusters; i++)
            free(s->endpoint_ids[i]);
    free(s->endpoint_ids);
    gh_config_free(s->cfg);
    free(s);
}

gh_snapshot_t *gh_snapshot_new(gh_config_t *cfg, uint64_t generation)
{
    gh_snapshot_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        gh_config_free(cfg);
        return NULL;
    }
    s->refs = 1;
    s->generation = generation;
    s->cfg = cfg;
    if (build_chains(s) < 0) {
        snapshot_free(s);
        return NULL;
    }
    return s;
}

gh_snapshot_t *gh_snapshot_ref(gh_snapshot_t *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void gh_snapshot_unref(gh_snapshot_t *s)
{
    if (s != NULL && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
        snapshot_free(s);
}
