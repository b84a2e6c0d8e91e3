#include "proxy/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include <gatehouse/metrics.h>

#include "proxy/proxy.h"

static int init_runtimes(gh_snapshot_t *s)
{
    size_t n = 0;
    s->types = gh_filter_types();
    while (s->types[n] != NULL)
        n++;
    s->rt = calloc(n + 1, sizeof(*s->rt));
    if (s->rt == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (s->types[i]->init != NULL && s->types[i]->init(s->cfg, &s->rt[i]) < 0)
            return -1;
    return 0;
}

static void *runtime_of(const gh_snapshot_t *s, const gh_filter_type_t *t)
{
    for (size_t i = 0; s->types[i] != NULL; i++)
        if (s->types[i] == t)
            return s->rt[i];
    return NULL;
}

/* The route's filter sections, bound to this snapshot's runtimes, then the
 * router when no filter answers by itself. */
static int build_chain(gh_snapshot_t *s, const gh_listener_conf_t *l, const gh_route_t *r,
                       gh_chain_t *ch)
{
    ch->filters = calloc(r->num_filters + 1, sizeof(gh_filter_t));
    if (ch->filters == NULL)
        return -1;
    int terminal = 0;
    for (size_t k = 0; k < r->num_filters; k++) {
        const gh_filter_type_t *t = r->filters[k].type;
        const void *conf = r->filters[k].conf;
        if (t->bind != NULL && (conf = t->bind(runtime_of(s, t), s->cfg, r, conf, l->name)) == NULL)
            return -1;
        ch->filters[ch->num_filters].type = t;
        ch->filters[ch->num_filters++].conf = conf;
        terminal |= t->phase == GH_PHASE_TERMINAL;
    }
    if (!terminal) {
        ch->filters[ch->num_filters].type = &gh_router_filter;
        ch->filters[ch->num_filters++].conf = r;
    }
    for (size_t k = 0; k < ch->num_filters; k++) {
        const gh_filter_type_t *t = ch->filters[k].type;
        ch->hooks |= (t->ctx_size > 0 ? GH_HOOK_CTX : 0u) | (t->on_log ? GH_HOOK_LOG : 0u) |
                     (t->on_request_body ? GH_HOOK_REQ_BODY : 0u) |
                     (t->on_response_headers ? GH_HOOK_RES_HEADERS : 0u) |
                     (t->on_response_body ? GH_HOOK_RES_BODY : 0u);
    }
    return 0;
}

/* Builds each route's chain (build_chain) and the metric ids. */
static int build_chains(gh_snapshot_t *s)
{
    gh_config_t *cfg = s->cfg;
    if (init_runtimes(s) < 0)
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
            if (build_chain(s, l, r, ch) < 0)
                return -1;
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
                gh_chain_t *ch = &s->chains[i][j];
                for (size_t k = 0; ch->filters != NULL && k < ch->num_filters; k++)
                    if (ch->filters[k].type->unbind != NULL)
                        ch->filters[k].type->unbind((void *)ch->filters[k].conf);
                free(ch->filters);
                free(ch->series_ids);
            }
            free(s->chains[i]);
        }
        free(s->chains);
    }
    if (s->rt != NULL)
        for (size_t i = 0; s->types[i] != NULL; i++)
            if (s->types[i]->fini != NULL && s->rt[i] != NULL)
                s->types[i]->fini(s->rt[i]);
    free(s->rt);
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

size_t gh_snapshot_not_ready(const gh_snapshot_t *s, int detailed, char *out, size_t cap)
{
    size_t n = 0, o = 0;
    if (cap > 0)
        out[0] = '\0';
    for (size_t i = 0; s->types[i] != NULL; i++) {
        if (s->types[i]->ready == NULL)
            continue;
        if (o > 0 && o + 1 < cap) {
            out[o++] = '\n';
            out[o] = '\0';
        }
        size_t k = s->types[i]->ready(s->rt[i], detailed, out + o, cap - o);
        if (k == 0 && o > 0 && out[o - 1] == '\n')
            out[--o] = '\0';
        n += k;
        o += strlen(out + o);
    }
    return n;
}
