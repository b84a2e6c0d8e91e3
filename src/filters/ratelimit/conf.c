/*
 * The route's `rate_limits:` section: a list of limits, each
 *
 *   {name, key, rate + burst | quota, mode, on_error, missing, headers}
 *
 * key: address | consumer | route | header:NAME | claim:PATH.
 * Rates and quotas share their syntax with `plans:` (src/config/plans.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/config.h>
#include <gatehouse/h1.h>
#include <gatehouse/yaml.h>

#include "filters/ratelimit/internal.h"

static const gh_ratelimit_fleet_t *fleet;

void gh_ratelimit_fleet_set(const gh_ratelimit_fleet_t *f)
{
    fleet = f;
}

const gh_ratelimit_fleet_t *rl_fleet(void)
{
    return fleet;
}

void rl_free_conf(void *p)
{
    rl_conf_t *c = p;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->num_limits; i++) {
        free(c->limits[i].name);
        free(c->limits[i].arg);
    }
    free(c->limits);
    free(c);
}

static int plain(const gh_yaml_node_t *n)
{
    return n->kind == GH_YAML_SCALAR && memchr(n->str, '\0', n->len) == NULL;
}

/* Names go into the RateLimit fields as Structured Field strings, metric
 * labels and the access log: a safe alphabet, no escaping anywhere. */
static int name_ok(const char *s, size_t len)
{
    if (len == 0 || len > RL_MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int parse_key(const gh_yaml_doc_t *doc, const gh_yaml_node_t *v, rl_limit_conf_t *l)
{
    static const char *const fixed[] = {"address", "consumer", "route"};
    if (!plain(v))
        return gh_yaml_error(doc, v, "'key' must be a string");
    for (size_t i = 0; i < 3; i++)
        if (strcmp(v->str, fixed[i]) == 0) {
            l->key = (rl_key_kind_t)i;
            return 0;
        }
    const char *arg;
    if (strncmp(v->str, "header:", 7) == 0) {
        arg = v->str + 7;
        size_t n = v->len - 7;
        if (n == 0)
            goto bad;
        for (size_t i = 0; i < n; i++)
            if (!gh_h1_is_tchar((unsigned char)arg[i]))
                return gh_yaml_error(doc, v, "'key': '%s' is not a header name (an HTTP token)",
                                     arg);
        l->key = RL_KEY_HEADER;
        if ((l->arg = malloc(n + 1)) == NULL)
            return gh_yaml_oom(doc);
        for (size_t i = 0; i <= n; i++)
            l->arg[i] = (char)(arg[i] >= 'A' && arg[i] <= 'Z' ? arg[i] + 32 : arg[i]);
        l->arg_len = n;
        return 0;
    }
    if (strncmp(v->str, "claim:", 6) == 0) {
        arg = v->str + 6;
        size_t n = v->len - 6;
        if (n == 0 || arg[0] == '.' || arg[n - 1] == '.' || strstr(arg, "..") != NULL)
            return gh_yaml_error(doc, v,
                                 "'key': a claim is a name or a dotted path, such as claim:sub "
                                 "or claim:org.id");
        l->key = RL_KEY_CLAIM;
        if ((l->arg = strdup(arg)) == NULL)
            return gh_yaml_oom(doc);
        l->arg_len = n;
        return 0;
    }
bad:
    return gh_yaml_error(doc, v,
                         "'key' must be address, consumer, route, header:NAME or claim:PATH");
}

static int choice(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map, const char *key,
                  const char *const *names, size_t n, int *out)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, key);
    if (v == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (plain(v) && strcmp(v->str, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    char list[128] = "";
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s",
                 i == 0       ? ""
                 : i + 1 == n ? " or "
                              : ", ",
                 names[i]);
    }
    return gh_yaml_error(doc, v, "'%s' must be %s", key, list);
}

static int parse_limit(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, size_t index,
                       rl_limit_conf_t *l)
{
    static const char *const keys[] = {"name", "key",      "rate",    "burst",   "quota",
                                       "mode", "on_error", "missing", "headers", NULL};
    static const char *const modes[] = {"local", "fleet"};
    static const char *const errs[] = {"closed", "open"};
    static const char *const missing[] = {"shared", "skip", "deny"};
    const gh_yaml_node_t *v, *rate, *quota;
    int rc, mode = 0, err = 0, miss = 0;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "a rate limit")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "a rate limit")) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "name")) != NULL) {
        if (!plain(v) || !name_ok(v->str, v->len))
            return gh_yaml_error(
                doc, v, "a limit's name is 1 to %d letters, digits, '-', '_' or '.'", RL_MAX_NAME);
        l->name = strdup(v->str);
    } else {
        char buf[32];
        snprintf(buf, sizeof(buf), "limit-%zu", index + 1);
        l->name = strdup(buf);
    }
    if (l->name == NULL)
        return gh_yaml_oom(doc);
    if ((rc = gh_yaml_require(doc, n, "key", "a rate limit", &v)) != 0 ||
        (rc = parse_key(doc, v, l)) != 0)
        return rc;
    rate = gh_yaml_map_get(n, "rate");
    quota = gh_yaml_map_get(n, "quota");
    if ((rate == NULL) == (quota == NULL))
        return gh_yaml_error(doc, n, "a rate limit needs exactly one of 'rate' or 'quota'");
    if (rate != NULL) {
        l->algo = GH_LIMIT_BUCKET;
        if ((rc = gh_config_parse_rate_burst(doc, n, &l->rate)) != 0)
            return rc;
    } else {
        if ((v = gh_yaml_map_get(n, "burst")) != NULL)
            return gh_yaml_error(doc, v, "'burst' goes with 'rate', not 'quota'");
        l->algo = GH_LIMIT_WINDOW;
        if ((rc = gh_config_parse_quota(doc, quota, &l->quota)) != 0)
            return rc;
    }
    if ((rc = choice(doc, n, "mode", modes, 2, &mode)) != 0 ||
        (rc = choice(doc, n, "on_error", errs, 2, &err)) != 0 ||
        (rc = choice(doc, n, "missing", missing, 3, &miss)) != 0)
        return rc;
    l->fleet = mode;
    l->fail_open = err;
    l->missing = (rl_missing_t)miss;
    l->headers = 1;
    if ((v = gh_yaml_map_get(n, "headers")) != NULL &&
        (rc = gh_yaml_bool(doc, v, "headers", &l->headers)) != 0)
        return rc;
    if (l->fleet && rl_fleet() == NULL)
        return gh_yaml_error(doc, gh_yaml_map_get(n, "mode"),
                             "'mode: fleet' needs a shared store (store.kind: redis), which this "
                             "build does not have yet; use 'mode: local'");
    if (l->key == RL_KEY_ROUTE && gh_yaml_map_get(n, "missing") != NULL)
        return gh_yaml_error(doc, gh_yaml_map_key(n, "missing"),
                             "'missing' has no meaning for 'key: route'");
    return 0;
}

int rl_parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg, gh_route_t *route,
             void **conf)
{
    int rc;
    (void)cfg;
    (void)route;
    rl_conf_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return gh_yaml_oom(doc);
    if (n == NULL) { /* implied: plans only */
        *conf = c;
        return 0;
    }
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_SEQ, "'rate_limits'")) != 0)
        goto fail;
    if (n->count == 0 || n->count > RL_MAX_LIMITS) {
        rc = gh_yaml_error(doc, n, "'rate_limits' lists 1 to %d limits", RL_MAX_LIMITS);
        goto fail;
    }
    if ((c->limits = calloc(n->count, sizeof(*c->limits))) == NULL) {
        rc = gh_yaml_oom(doc);
        goto fail;
    }
    for (const gh_yaml_node_t *item = n->head; item != NULL; item = item->next) {
        rl_limit_conf_t *l = &c->limits[c->num_limits++];
        if ((rc = parse_limit(doc, item, c->num_limits - 1, l)) != 0)
            goto fail;
        for (size_t j = 0; j + 1 < c->num_limits; j++)
            if (strcmp(c->limits[j].name, l->name) == 0) {
                rc = gh_yaml_error(doc, item, "two limits of this route are named '%s'", l->name);
                goto fail;
            }
    }
    *conf = c;
    return 0;
fail:
    rl_free_conf(c);
    return rc;
}

int rl_check(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const gh_config_t *cfg,
             const gh_route_t *route, const void *conf)
{
    const rl_conf_t *c = conf;
    int authn = 0;
    (void)cfg;
    for (size_t i = 0; i < route->num_filters; i++)
        authn |= route->filters[i].type->phase == GH_PHASE_AUTHN;
    for (size_t i = 0; i < c->num_limits; i++) {
        const rl_limit_conf_t *l = &c->limits[i];
        if ((l->key != RL_KEY_CLAIM && l->key != RL_KEY_CONSUMER) || authn)
            continue;
        /* A claim or a consumer comes from a verified identity: without
         * authentication there is none, and every request would count in
         * the one bucket of requests without the key. */
        const gh_yaml_node_t *item = node->head;
        for (size_t k = 0; k < i && item != NULL; k++)
            item = item->next;
        return gh_yaml_error(doc, item != NULL ? gh_yaml_map_get(item, "key") : node,
                             "limit '%s' is keyed by %s, but route '%s' has no 'authn'", l->name,
                             l->key == RL_KEY_CLAIM ? "a claim" : "the consumer", route->name);
    }
    return 0;
}

int rl_implied(const gh_config_t *cfg, const gh_route_t *route)
{
    /* Where an identity can come from, it can carry a usage plan: every
     * route with an authentication filter enforces plans. */
    if (cfg->num_plans == 0)
        return 0;
    for (size_t i = 0; i < route->num_filters; i++)
        if (route->filters[i].type->phase == GH_PHASE_AUTHN)
            return 1;
    return 0;
}
