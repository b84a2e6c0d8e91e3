/*
 * Usage plans (the top-level `plans:` section) and the rate and quota
 * syntax they share with a route's `rate_limits:` (docs/config.md,
 * docs/rate-limits.md).
 *
 *   plans:
 *     gold:
 *       throttle: {rate: 100/s, burst: 200}
 *       quota: {limit: 100000, period: month, offset: 0}
 *       routes:
 *         orders: {throttle: {rate: 10/s, burst: 20}}
 *         catalog: {}
 *
 * Plans are parsed before the listeners (so that the rate_limits filter
 * knows, route by route, whether plans exist), and their route names are
 * checked after them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/config.h>
#include <gatehouse/limiter.h>
#include <gatehouse/yaml.h>

#include "config/sections.h"

#define MAX_PLANS 1024
#define MAX_PLAN_NAME 64

static int plain_text(const gh_yaml_node_t *n)
{
    return n->kind == GH_YAML_SCALAR && memchr(n->str, '\0', n->len) == NULL;
}

/* A rate's period: a duration ("1s", "500ms", "1h") or days ("1d"). */
static int parse_per(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, uint64_t *ms)
{
    uint64_t s;
    if (plain_text(n) && gh_config_parse_duration(n->str, ms) == 0)
        return 0;
    if (plain_text(n) && gh_offset_parse(n->str, &s) == 0 && s > 0) {
        *ms = s * 1000;
        return 0;
    }
    return gh_yaml_error(doc, n, "'per' must be a duration, such as 1s, 1m, 1h or 1d");
}

int gh_config_parse_rate(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_rate_t *out)
{
    static const char *const keys[] = {"requests", "per", NULL};
    const gh_yaml_node_t *v;
    int rc;
    if (n->kind == GH_YAML_SCALAR) {
        if (!plain_text(n) || gh_rate_parse(n->str, out) != 0)
            return gh_yaml_error(doc, n,
                                 "'rate' must be requests per period, such as 10/s, 100/min, "
                                 "5000/h or 1000/d, or {requests, per}");
    } else {
        uint64_t req;
        if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'rate'")) != 0 ||
            (rc = gh_yaml_check_keys(doc, n, keys, "'rate'")) != 0 ||
            (rc = gh_yaml_require(doc, n, "requests", "'rate'", &v)) != 0 ||
            (rc = gh_yaml_uint(doc, v, "requests", 1, GH_RATE_MAX_REQUESTS, &req)) != 0 ||
            (rc = gh_yaml_require(doc, n, "per", "'rate'", &v)) != 0 ||
            (rc = parse_per(doc, v, &out->per_ms)) != 0)
            return rc;
        out->requests = req;
        out->burst = req;
    }
    const char *why = gh_rate_check(out);
    return why != NULL ? gh_yaml_error(doc, n, "'rate': %s", why) : 0;
}

int gh_config_parse_rate_burst(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map, gh_rate_t *out)
{
    const gh_yaml_node_t *v;
    int rc;
    if ((rc = gh_yaml_require(doc, map, "rate", "'throttle'", &v)) != 0 ||
        (rc = gh_config_parse_rate(doc, v, out)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(map, "burst")) != NULL) {
        uint64_t b;
        if ((rc = gh_yaml_uint(doc, v, "burst", 1, GH_RATE_MAX_BURST, &b)) != 0)
            return rc;
        out->burst = b;
        const char *why = gh_rate_check(out);
        if (why != NULL)
            return gh_yaml_error(doc, v, "'burst': %s", why);
    }
    return 0;
}

int gh_config_parse_quota(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_quota_t *out)
{
    static const char *const keys[] = {"limit", "period", "offset", NULL};
    static const char *const periods[] = {"day", "week", "month"};
    const gh_yaml_node_t *v;
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'quota'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'quota'")) != 0 ||
        (rc = gh_yaml_require(doc, n, "limit", "'quota'", &v)) != 0 ||
        (rc = gh_yaml_uint(doc, v, "limit", 0, GH_QUOTA_MAX_LIMIT, &out->limit)) != 0 ||
        (rc = gh_yaml_require(doc, n, "period", "'quota'", &v)) != 0)
        return rc;
    size_t i = 0;
    while (i < 3 && !(plain_text(v) && strcmp(v->str, periods[i]) == 0))
        i++;
    if (i == 3)
        return gh_yaml_error(doc, v, "'period' must be day, week or month");
    out->period = (gh_period_t)i;
    out->offset_s = 0;
    if ((v = gh_yaml_map_get(n, "offset")) != NULL) {
        if (!plain_text(v) || gh_offset_parse(v->str, &out->offset_s) != 0)
            return gh_yaml_error(doc, v,
                                 "'offset' must be a duration from the period's start, such as "
                                 "0, 2h or 1d (a week starts on Sunday: 1d is Monday)");
        const char *why = gh_quota_check(out);
        if (why != NULL)
            return gh_yaml_error(doc, v, "'offset': %s", why);
    }
    return 0;
}

static int throttle(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_rate_t *out)
{
    static const char *const keys[] = {"rate", "burst", NULL};
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'throttle'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'throttle'")) != 0)
        return rc;
    return gh_config_parse_rate_burst(doc, n, out);
}

static int plan_routes(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_plan_t *p)
{
    static const char *const keys[] = {"throttle", NULL};
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'routes'")) != 0)
        return rc;
    p->restrict_routes = 1;
    if (n->count == 0)
        return 0;
    if ((p->routes = calloc(n->count, sizeof(*p->routes))) == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *k = n->head; k != NULL; k = k->next) {
        gh_plan_route_t *r = &p->routes[p->num_routes];
        const gh_yaml_node_t *v = k->value, *t;
        if (!plain_text(k) || k->len == 0)
            return gh_yaml_error(doc, k, "a plan's route must be named");
        if ((r->route = strdup(k->str)) == NULL)
            return gh_yaml_oom(doc);
        p->num_routes++;
        /* "orders:" alone (null), or {} : the route, without a throttle of its own. */
        if (v->kind == GH_YAML_SCALAR && v->plain &&
            (v->len == 0 || strcmp(v->str, "null") == 0 || strcmp(v->str, "~") == 0))
            continue;
        if ((rc = gh_yaml_expect(doc, v, GH_YAML_MAP, "a plan's route")) != 0 ||
            (rc = gh_yaml_check_keys(doc, v, keys, "a plan's route")) != 0)
            return rc;
        if ((t = gh_yaml_map_get(v, "throttle")) != NULL) {
            if ((rc = throttle(doc, t, &r->throttle)) != 0)
                return rc;
            r->has_throttle = 1;
        }
    }
    return 0;
}

static int plan_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > MAX_PLAN_NAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

int gh_config_parse_plans(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg)
{
    static const char *const keys[] = {"throttle", "quota", "routes", NULL};
    int rc;
    if (n == NULL)
        return 0;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'plans'")) != 0)
        return rc;
    if (n->count > MAX_PLANS)
        return gh_yaml_error(doc, n, "at most %d plans", MAX_PLANS);
    if (n->count == 0)
        return 0;
    if ((cfg->plans = calloc(n->count, sizeof(*cfg->plans))) == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *k = n->head; k != NULL; k = k->next) {
        gh_plan_t *p = &cfg->plans[cfg->num_plans];
        const gh_yaml_node_t *v = k->value, *x;
        if (!plain_text(k) || !plan_name_ok(k->str, k->len))
            return gh_yaml_error(doc, k, "a plan name is 1 to %d letters, digits, '-', '_' or '.'",
                                 MAX_PLAN_NAME);
        if ((p->name = strdup(k->str)) == NULL)
            return gh_yaml_oom(doc);
        cfg->num_plans++;
        if ((rc = gh_yaml_expect(doc, v, GH_YAML_MAP, "a plan")) != 0 ||
            (rc = gh_yaml_check_keys(doc, v, keys, "a plan")) != 0)
            return rc;
        if ((x = gh_yaml_map_get(v, "throttle")) != NULL) {
            if ((rc = throttle(doc, x, &p->throttle)) != 0)
                return rc;
            p->has_throttle = 1;
        }
        if ((x = gh_yaml_map_get(v, "quota")) != NULL) {
            if ((rc = gh_config_parse_quota(doc, x, &p->quota)) != 0)
                return rc;
            p->has_quota = 1;
        }
        if ((x = gh_yaml_map_get(v, "routes")) != NULL && (rc = plan_routes(doc, x, p)) != 0)
            return rc;
    }
    return 0;
}

int gh_config_check_plans(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const gh_config_t *cfg)
{
    for (size_t i = 0; i < cfg->num_plans; i++) {
        const gh_plan_t *p = &cfg->plans[i];
        for (size_t j = 0; j < p->num_routes; j++) {
            int found = 0;
            for (size_t l = 0; !found && l < cfg->num_listeners; l++)
                for (size_t r = 0; !found && r < cfg->listeners[l].num_routes; r++)
                    found = strcmp(cfg->listeners[l].routes[r].name, p->routes[j].route) == 0;
            if (!found) {
                const gh_yaml_node_t *pn = gh_yaml_map_get(n, p->name);
                const gh_yaml_node_t *rn = pn ? gh_yaml_map_get(pn, "routes") : NULL;
                const gh_yaml_node_t *at = rn ? gh_yaml_map_key(rn, p->routes[j].route) : NULL;
                return gh_yaml_error(doc, at != NULL ? at : n,
                                     "plan '%s' names route '%s', which no listener has", p->name,
                                     p->routes[j].route);
            }
        }
    }
    return 0;
}

const gh_plan_t *gh_config_plan_find(const gh_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->num_plans; i++)
        if (strcmp(cfg->plans[i].name, name) == 0)
            return &cfg->plans[i];
    return NULL;
}

void gh_config_free_plans(gh_config_t *cfg)
{
    for (size_t i = 0; i < cfg->num_plans; i++) {
        gh_plan_t *p = &cfg->plans[i];
        free(p->name);
        for (size_t j = 0; j < p->num_routes; j++)
            free(p->routes[j].route);
        free(p->routes);
    }
    free(cfg->plans);
    cfg->plans = NULL;
    cfg->num_plans = 0;
}
