/* JSON views of the running snapshot for the admin API. */
#include "admin/views.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/metrics.h>
#include <gatehouse/redact.h>
#include <gatehouse/trace.h>

static const char *const lb_names[] = {"round_robin", "least_request", "random"};
static const char *const match_names[] = {"exact", "prefix", "regex", "present", "absent"};

static json_t *strmatch(const gh_strmatch_t *m)
{
    json_t *o = json_object();
    if (m->kind == GH_MATCH_PRESENT || m->kind == GH_MATCH_ABSENT)
        json_object_set_new(o, match_names[m->kind], json_true());
    else
        json_object_set_new(o, match_names[m->kind], json_stringn(m->value, m->value_len));
    return o;
}

static json_t *kvmatches(const gh_kvmatch_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = strmatch(&v[i].match);
        json_object_set_new(o, "name", json_stringn(v[i].name, v[i].name_len));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *route(const gh_route_t *r)
{
    json_t *o = json_object(), *m = json_object();
    json_object_set_new(o, "name", json_string(r->name));
    if (r->num_hosts) {
        json_t *h = json_array();
        for (size_t i = 0; i < r->num_hosts; i++)
            json_array_append_new(h, json_string(r->hosts[i]));
        json_object_set_new(m, "host", h);
    }
    if (r->has_path)
        json_object_set_new(m, "path", strmatch(&r->path));
    if (r->num_methods) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->num_methods; i++)
            json_array_append_new(a, json_string(r->methods[i]));
        json_object_set_new(m, "methods", a);
    }
    if (r->num_headers)
        json_object_set_new(m, "headers", kvmatches(r->headers, r->num_headers));
    if (r->num_query)
        json_object_set_new(m, "query", kvmatches(r->query, r->num_query));
    json_object_set_new(o, "match", m);
    if (r->direct != NULL) {
        json_t *d = json_object(), *hs = json_object();
        json_object_set_new(d, "status", json_integer(r->direct->status));
        for (size_t i = 0; i < r->direct->num_headers; i++)
            json_object_set_new(
                hs, r->direct->headers[i].name,
                json_stringn(r->direct->headers[i].value, r->direct->headers[i].value_len));
        json_object_set_new(d, "headers", hs);
        json_object_set_new(d, "body_bytes", json_integer((json_int_t)r->direct->body_len));
        json_object_set_new(o, "direct_response", d);
    } else {
        json_t *to = json_array();
        for (size_t i = 0; i < r->num_targets; i++)
            json_array_append_new(to, json_pack("{s:s,s:I}", "cluster", r->targets[i].cluster->name,
                                                "weight", (json_int_t)r->targets[i].weight));
        json_object_set_new(o, "to", to);
    }
    json_object_set_new(o, "max_body", json_integer((json_int_t)r->max_body));
    json_object_set_new(o, "timeout_ms", json_integer((json_int_t)r->timeout_ms));
    return o;
}

static char *dump(json_t *root, size_t *len)
{
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *out = realloc(s, n + 2);
    if (out == NULL) {
        free(s);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    *len = n + 1;
    return out;
}

char *gh_admin_config_json(const gh_snapshot_t *snap, size_t *len)
{
    const gh_config_t *cfg = snap->cfg;
    json_t *root = json_object();
    json_object_set_new(root, "generation", json_integer((json_int_t)snap->generation));
    json_object_set_new(root, "path", json_string(cfg->path));
    json_object_set_new(root, "workers", json_integer(cfg->workers));
    json_object_set_new(root, "drain_timeout_ms", json_integer((json_int_t)cfg->drain_timeout_ms));
    json_t *ls = json_array();
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        const gh_listener_conf_t *l = &cfg->listeners[i];
        json_t *o =
            json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "name", l->name, "listen", l->address,
                      "header_timeout_ms", (json_int_t)l->header_timeout_ms, "idle_timeout_ms",
                      (json_int_t)l->idle_timeout_ms, "body_timeout_ms",
                      (json_int_t)l->body_timeout_ms, "max_head", (json_int_t)l->max_head,
                      "max_headers", (json_int_t)l->max_headers, "max_uri", (json_int_t)l->max_uri);
        json_t *rs = json_array();
        for (size_t j = 0; j < l->num_routes; j++)
            json_array_append_new(rs, route(&l->routes[j]));
        json_object_set_new(o, "routes", rs);
        json_array_append_new(ls, o);
    }
    json_object_set_new(root, "listeners", ls);
    json_t *cs = json_object();
    for (size_t i = 0; i < cfg->num_clusters; i++) {
        const gh_cluster_t *c = &cfg->clusters[i];
        json_t *eps = json_array();
        for (size_t j = 0; j < c->num_endpoints; j++)
            json_array_append_new(eps, json_pack("{s:s,s:I}", "address", c->endpoints[j].address,
                                                 "weight", (json_int_t)c->endpoints[j].weight));
        if (c->lambda != NULL) {
            /* Where the keys come from, never the keys. */
            const gh_lambda_cluster_t *l = c->lambda;
            json_decref(eps);
            json_object_set_new(
                cs, c->name,
                json_pack("{s:s,s:{s:s,s:s,s:s?,s:s,s:s?,s:s,s:I}}", "type", "lambda", "lambda",
                          "function", l->function, "region", l->region, "qualifier", l->qualifier,
                          "endpoint", l->endpoint, "profile", l->profile, "payload",
                          l->payload == 1 ? "1.0" : "2.0", "max_body", (json_int_t)l->max_body));
            continue;
        }
        json_object_set_new(
            cs, c->name,
            json_pack("{s:o,s:s,s:I,s:I,s:I}", "endpoints", eps, "lb", lb_names[c->lb],
                      "connect_timeout_ms", (json_int_t)c->connect_timeout_ms, "idle_timeout_ms",
                      (json_int_t)c->idle_timeout_ms, "max_idle", (json_int_t)c->max_idle));
    }
    json_object_set_new(root, "clusters", cs);
    if (cfg->admin.enabled) {
        /* The token itself never leaves the process: only where it comes from. */
        json_t *a = json_pack("{s:s}", "listen", cfg->admin.address);
        if (cfg->admin.token != NULL)
            json_object_set_new(a, "token", json_string("[redacted]"));
        if (cfg->admin.token_file != NULL)
            json_object_set_new(a, "token_file", json_string(cfg->admin.token_file));
        if (cfg->admin.token_env != NULL)
            json_object_set_new(a, "token_env", json_string(cfg->admin.token_env));
        json_object_set_new(a, "max_import_body",
                            json_integer((json_int_t)cfg->admin.max_import_body));
        json_object_set_new(root, "admin", a);
    }
    if (cfg->access_log.enabled) {
        json_t *f = json_array();
        for (int i = 0; i < GH_LOG_FIELD_COUNT; i++)
            if (cfg->access_log.fields & (1u << i))
                json_array_append_new(f, json_string(gh_access_log_field_names[i]));
        json_object_set_new(root, "access_log",
                            json_pack("{s:s,s:o}", "path",
                                      cfg->access_log.path ? cfg->access_log.path : "stdout",
                                      "fields", f));
    }
    if (cfg->tracing.enabled) {
        /* A collector URL may carry a credential as userinfo. */
        char *collector = gh_url_redact(cfg->tracing.collector);
        json_object_set_new(root, "tracing",
                            json_pack("{s:s?,s:f,s:s}", "collector", collector, "sampling",
                                      cfg->tracing.sampling, "service_name",
                                      cfg->tracing.service_name));
        free(collector);
    }
    return dump(root, len);
}

char *gh_admin_clusters_json(const gh_snapshot_t *snap, size_t *len)
{
    const gh_config_t *cfg = snap->cfg;
    json_t *root = json_object(), *cs = json_array();
    for (size_t i = 0; i < cfg->num_clusters; i++) {
        const gh_cluster_t *c = &cfg->clusters[i];
        json_t *eps = json_array();
        for (size_t j = 0; j < c->num_endpoints; j++) {
            uint64_t active, idle;
            gh_metrics_endpoint_read(snap->endpoint_ids[i][j], &active, &idle);
            json_array_append_new(
                eps, json_pack("{s:s,s:I,s:I,s:I}", "address", c->endpoints[j].address, "weight",
                               (json_int_t)c->endpoints[j].weight, "active_requests",
                               (json_int_t)active, "idle_connections", (json_int_t)idle));
        }
        json_array_append_new(cs, json_pack("{s:s,s:s,s:o}", "name", c->name, "lb", lb_names[c->lb],
                                            "endpoints", eps));
    }
    json_object_set_new(root, "clusters", cs);
    json_object_set_new(root, "generation", json_integer((json_int_t)snap->generation));
    return dump(root, len);
}
