/*
 * The `rate_limits:` route section and the `plans:` section: what a valid
 * config becomes, where the filter is implied (routes with authentication
 * when plans exist), and one case per refusal with its exact message and
 * position (absurd numbers, wrong types, unknown keys, fleet mode).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/config.h>

#include "filters/ratelimit/internal.h"

#define NAME "t.yaml"

static gh_config_t *load(const char *yaml, gh_config_error_t *err)
{
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    return gh_config_load_buffer(NAME, yaml, strlen(yaml), err);
}

static const rl_conf_t *conf_of(const gh_route_t *r)
{
    for (size_t i = 0; i < r->num_filters; i++)
        if (r->filters[i].type == &gh_ratelimit_filter)
            return r->filters[i].conf;
    return NULL;
}

#define HEAD                                                                                       \
    "clusters: { app: { endpoints: [127.0.0.1:9] } }\n"                                            \
    "providers:\n"                                                                                 \
    "  jwt:\n"                                                                                     \
    "    corp: { issuer: https://i.test, audiences: [a], jwks: { inline: '{\"keys\": []}' } }\n"

static void test_route_limits(void **state)
{
    (void)state;
    static const char yaml[] =
        HEAD "listeners:\n"
             "  - name: edge\n"
             "    listen: 127.0.0.1:1\n"
             "    routes:\n"
             "      - name: api\n"
             "        to: app\n"
             "        authn: corp\n"
             "        rate_limits:\n"
             "          - { name: per-second, key: address, rate: 10/s, burst: 20 }\n"
             "          - { key: 'header:X-Tenant', rate: { requests: 100, per: 1d }, missing: "
             "skip }\n"
             "          - { name: daily, key: 'claim:org.id', quota: { limit: 5, period: month, "
             "offset: 2d12h }, headers: false, on_error: open }\n"
             "          - { name: all, key: route, rate: 1000/min }\n"
             "          - { name: who, key: consumer, rate: 3/h, missing: deny }\n";
    gh_config_error_t err;
    gh_config_t *cfg = load(yaml, &err);
    if (cfg == NULL)
        fail_msg("%s", err.msg);
    const rl_conf_t *c = conf_of(&cfg->listeners[0].routes[0]);
    assert_non_null(c);
    assert_int_equal(c->num_limits, 5);
    const rl_limit_conf_t *l = c->limits;
    assert_string_equal(l[0].name, "per-second");
    assert_int_equal(l[0].key, RL_KEY_ADDRESS);
    assert_int_equal(l[0].algo, GH_LIMIT_BUCKET);
    assert_int_equal(l[0].rate.requests, 10);
    assert_int_equal(l[0].rate.per_ms, 1000);
    assert_int_equal(l[0].rate.burst, 20);
    assert_int_equal(l[0].missing, RL_MISSING_SHARED);
    assert_int_equal(l[0].fail_open, 0);
    assert_int_equal(l[0].headers, 1);
    assert_string_equal(l[1].name, "limit-2");
    assert_int_equal(l[1].key, RL_KEY_HEADER);
    assert_string_equal(l[1].arg, "x-tenant"); /* lower-cased */
    assert_int_equal(l[1].rate.per_ms, 86400000);
    assert_int_equal(l[1].rate.burst, 100);
    assert_int_equal(l[1].missing, RL_MISSING_SKIP);
    assert_int_equal(l[2].key, RL_KEY_CLAIM);
    assert_string_equal(l[2].arg, "org.id");
    assert_int_equal(l[2].algo, GH_LIMIT_WINDOW);
    assert_int_equal(l[2].quota.period, GH_PERIOD_MONTH);
    assert_int_equal(l[2].quota.offset_s, 2 * 86400 + 12 * 3600);
    assert_int_equal(l[2].headers, 0);
    assert_int_equal(l[2].fail_open, 1);
    assert_int_equal(l[3].key, RL_KEY_ROUTE);
    assert_int_equal(l[4].key, RL_KEY_CONSUMER);
    assert_int_equal(l[4].missing, RL_MISSING_DENY);
    /* Registry order: authn, then rate_limits. */
    assert_int_equal(cfg->listeners[0].routes[0].num_filters, 2);
    assert_ptr_equal(cfg->listeners[0].routes[0].filters[1].type, &gh_ratelimit_filter);
    gh_config_free(cfg);
}

static void test_plans_and_implied(void **state)
{
    (void)state;
    static const char yaml[] =
        HEAD "plans:\n"
             "  gold:\n"
             "    throttle: { rate: 100/s, burst: 200 }\n"
             "    quota: { limit: 100000, period: week, offset: 1d }\n"
             "    routes:\n"
             "      orders: { throttle: { rate: 10/s } }\n"
             "      catalog:\n"
             "  free:\n"
             "    quota: { limit: 0, period: day }\n"
             "listeners:\n"
             "  - name: edge\n"
             "    listen: 127.0.0.1:1\n"
             "    routes:\n"
             "      - { name: orders, to: app, authn: corp }\n"
             "      - { name: catalog, to: app, authn: corp, rate_limits: [ { key: address, "
             "rate: 1/s } ] }\n"
             "      - { name: open, to: app }\n";
    gh_config_error_t err;
    gh_config_t *cfg = load(yaml, &err);
    if (cfg == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(cfg->num_plans, 2);
    const gh_plan_t *g = gh_config_plan_find(cfg, "gold");
    assert_non_null(g);
    assert_true(g->has_throttle);
    assert_int_equal(g->throttle.requests, 100);
    assert_int_equal(g->throttle.burst, 200);
    assert_true(g->has_quota);
    assert_int_equal(g->quota.period, GH_PERIOD_WEEK);
    assert_int_equal(g->quota.offset_s, 86400);
    assert_true(g->restrict_routes);
    assert_int_equal(g->num_routes, 2);
    assert_string_equal(g->routes[0].route, "orders");
    assert_true(g->routes[0].has_throttle);
    assert_int_equal(g->routes[0].throttle.burst, 10);
    assert_false(g->routes[1].has_throttle);
    const gh_plan_t *f = gh_config_plan_find(cfg, "free");
    assert_false(f->has_throttle);
    assert_int_equal(f->quota.limit, 0);
    assert_false(f->restrict_routes);
    assert_null(gh_config_plan_find(cfg, "Gold"));
    /* orders: authn only in the file, the filter is implied (no limits of
     * its own); catalog: its own section; open: no authentication, so no
     * identity and no plan: no filter. */
    const gh_route_t *r = cfg->listeners[0].routes;
    assert_non_null(conf_of(&r[0]));
    assert_int_equal(conf_of(&r[0])->num_limits, 0);
    assert_int_equal(conf_of(&r[1])->num_limits, 1);
    assert_null(conf_of(&r[2]));
    assert_int_equal(r[2].num_filters, 0);
    gh_config_free(cfg);

    /* Without plans, a route with authn only has no rate limit filter. */
    static const char noplans[] = HEAD "listeners:\n"
                                       "  - name: edge\n"
                                       "    listen: 127.0.0.1:1\n"
                                       "    routes:\n"
                                       "      - { name: orders, to: app, authn: corp }\n";
    cfg = load(noplans, &err);
    assert_non_null(cfg);
    assert_null(conf_of(&cfg->listeners[0].routes[0]));
    gh_config_free(cfg);
}

typedef struct {
    const char *yaml;
    const char *want;
} error_case_t;

/* One route "r" at line 8 (col 9 for its keys): the limits go on line 8. */
#define R(limits)                                                                                  \
    HEAD "listeners:\n"                                                                            \
         "  - name: edge\n"                                                                        \
         "    listen: 127.0.0.1:1\n"                                                               \
         "    routes:\n"                                                                           \
         "      - name: r\n"                                                                       \
         "        to: app\n"                                                                       \
         "        authn: corp\n"                                                                   \
         "        rate_limits: " limits "\n"
#define P(plans)                                                                                   \
    HEAD "plans:\n" plans "listeners:\n"                                                           \
         "  - name: edge\n"                                                                        \
         "    listen: 127.0.0.1:1\n"                                                               \
         "    routes:\n"                                                                           \
         "      - { name: r, to: app, authn: corp }\n"

static const error_case_t cases[] = {
    {R("[]"), NAME ":12:22: 'rate_limits' lists 1 to 16 limits"},
    {R("{ key: address }"), NAME ":12:22: expected a list for 'rate_limits'"},
    {R("[ { rate: 1/s } ]"), NAME ":12:24: a rate limit is missing required key 'key'"},
    {R("[ { key: address } ]"), NAME ":12:24: a rate limit needs exactly one of 'rate' or 'quota'"},
    {R("[ { key: address, rate: 1/s, quota: { limit: 1, period: day } } ]"),
     NAME ":12:24: a rate limit needs exactly one of 'rate' or 'quota'"},
    {R("[ { key: address, rate: 0/s } ]"),
     NAME ":12:46: 'rate' must be requests per period, such as 10/s, 100/min, 5000/h or 1000/d, "
          "or {requests, per}"},
    {R("[ { key: address, rate: 10/fortnight } ]"),
     NAME ":12:46: 'rate' must be requests per period, such as 10/s, 100/min, 5000/h or 1000/d, "
          "or {requests, per}"},
    {R("[ { key: address, rate: 18446744073709551617/s } ]"),
     NAME ":12:46: 'rate' must be requests per period, such as 10/s, 100/min, 5000/h or 1000/d, "
          "or {requests, per}"},
    {R("[ { key: address, rate: { requests: -1, per: 1s } } ]"),
     NAME ":12:58: 'requests' must be an integer from 1 to 1000000000"},
    {R("[ { key: address, rate: { requests: 1, per: 0s } } ]"),
     NAME ":12:66: 'per' must be a duration, such as 1s, 1m, 1h or 1d"},
    {R("[ { key: address, rate: { requests: 1, per: 1s, burst: 2 } } ]"),
     NAME ":12:70: unknown key 'burst' in 'rate'"},
    {R("[ { key: address, rate: 1/s, burst: 0 } ]"),
     NAME ":12:58: 'burst' must be an integer from 1 to 1000000000"},
    {R("[ { key: address, rate: 1/s, burst: 1e3 } ]"),
     NAME ":12:58: 'burst' must be an integer from 1 to 1000000000"},
    {R("[ { key: address, rate: { requests: 1, per: 366d }, burst: 1000000000 } ]"),
     NAME ":12:81: 'burst': the burst times the period is too large (burst x period in ms must "
          "be below 2^62)"},
    {R("[ { key: address, quota: { limit: 1, period: day }, burst: 3 } ]"),
     NAME ":12:81: 'burst' goes with 'rate', not 'quota'"},
    {R("[ { key: address, quota: { limit: 1, period: year } } ]"),
     NAME ":12:67: 'period' must be day, week or month"},
    {R("[ { key: address, quota: { limit: 1, period: day, offset: 24h } } ]"),
     NAME ":12:80: 'offset': a day's offset must be less than 1d"},
    {R("[ { key: address, quota: { limit: 1, period: month, offset: 28d } } ]"),
     NAME ":12:82: 'offset': a month's offset must be less than 28d"},
    {R("[ { key: address, quota: { limit: 1, period: week, offset: 1 } } ]"),
     NAME ":12:81: 'offset' must be a duration from the period's start, such as 0, 2h or 1d (a "
          "week starts on Sunday: 1d is Monday)"},
    {R("[ { key: address, quota: { limit: -5, period: day } } ]"),
     NAME ":12:56: 'limit' must be an integer from 0 to 4611686018427387903"},
    {R("[ { key: ip, rate: 1/s } ]"),
     NAME ":12:31: 'key' must be address, consumer, route, header:NAME or claim:PATH"},
    {R("[ { key: 'header:', rate: 1/s } ]"),
     NAME ":12:31: 'key' must be address, consumer, route, header:NAME or claim:PATH"},
    {R("[ { key: 'header:x y', rate: 1/s } ]"),
     NAME ":12:31: 'key': 'x y' is not a header name (an HTTP token)"},
    {R("[ { key: 'claim:a..b', rate: 1/s } ]"),
     NAME ":12:31: 'key': a claim is a name or a dotted path, such as claim:sub or claim:org.id"},
    {R("[ { key: address, rate: 1/s, mode: fleet } ]"),
     NAME ":12:57: 'mode: fleet' needs a shared store (store.kind: redis), which this build "
          "does not have yet; use 'mode: local'"},
    {R("[ { key: address, rate: 1/s, mode: redis } ]"),
     NAME ":12:57: 'mode' must be local or fleet"},
    {R("[ { key: address, rate: 1/s, on_error: ignore } ]"),
     NAME ":12:61: 'on_error' must be closed or open"},
    {R("[ { key: address, rate: 1/s, missing: allow } ]"),
     NAME ":12:60: 'missing' must be shared, skip or deny"},
    {R("[ { key: route, rate: 1/s, missing: skip } ]"),
     NAME ":12:49: 'missing' has no meaning for 'key: route'"},
    {R("[ { key: address, rate: 1/s, headers: maybe } ]"),
     NAME ":12:60: 'headers' must be true or false"},
    {R("[ { key: address, rate: 1/s, name: 'a b' } ]"),
     NAME ":12:57: a limit's name is 1 to 64 letters, digits, '-', '_' or '.'"},
    {R("[ { key: address, rate: 1/s, name: x }, { key: route, rate: 1/s, name: x } ]"),
     NAME ":12:62: two limits of this route are named 'x'"},
    {R("[ { key: address, rate: 1/s, per: 1s } ]"),
     NAME ":12:51: unknown key 'per' in a rate limit"},
    /* A claim or consumer key needs authentication on the route. */
    {HEAD "listeners:\n"
          "  - name: edge\n"
          "    listen: 127.0.0.1:1\n"
          "    routes:\n"
          "      - { name: r, to: app, rate_limits: [ { key: 'claim:sub', rate: 1/s } ] }\n",
     NAME ":9:51: limit 'limit-1' is keyed by a claim, but route 'r' has no 'authn'"},
    {HEAD "listeners:\n"
          "  - name: edge\n"
          "    listen: 127.0.0.1:1\n"
          "    routes:\n"
          "      - { name: r, to: app, rate_limits: [ { key: consumer, rate: 1/s } ] }\n",
     NAME ":9:51: limit 'limit-1' is keyed by the consumer, but route 'r' has no 'authn'"},
    /* plans */
    {P("  []\n"), NAME ":6:3: expected a mapping for 'plans'"},
    {P("  'a b': {}\n"), NAME ":6:3: a plan name is 1 to 64 letters, digits, '-', '_' or '.'"},
    {P("  g: { rate: 1/s }\n"), NAME ":6:8: unknown key 'rate' in a plan"},
    {P("  g: { throttle: { rate: 1/s, per: 1s } }\n"),
     NAME ":6:31: unknown key 'per' in 'throttle'"},
    {P("  g: { throttle: { burst: 5 } }\n"),
     NAME ":6:18: 'throttle' is missing required key 'rate'"},
    {P("  g: { quota: { limit: 5 } }\n"), NAME ":6:15: 'quota' is missing required key 'period'"},
    {P("  g: { routes: [r] }\n"), NAME ":6:16: expected a mapping for 'routes'"},
    {P("  g: { routes: { nope: {} } }\n"),
     NAME ":6:18: plan 'g' names route 'nope', which no listener has"},
    {P("  g: { routes: { r: { quota: { limit: 1, period: day } } } }\n"),
     NAME ":6:23: unknown key 'quota' in a plan's route"},
};

static void test_error_case(void **state)
{
    const error_case_t *c = *state;
    gh_config_error_t err;
    memset(&err, 0, sizeof(err));
    gh_config_t *cfg = load(c->yaml, &err);
    if (cfg != NULL) {
        gh_config_free(cfg);
        fail_msg("accepted:\n%s", c->yaml);
    }
    if (strcmp(err.msg, c->want) != 0)
        fail_msg("for:\n%s\nwant: %s\ngot:  %s", c->yaml, c->want, err.msg);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_route_limits),
        cmocka_unit_test(test_plans_and_implied),
    };
    int failed = cmocka_run_group_tests_name("fixed", fixed, NULL, NULL);
    size_t n = sizeof(cases) / sizeof(cases[0]);
    struct CMUnitTest *t = calloc(n, sizeof(*t));
    char(*names)[32] = calloc(n, sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "error_%zu", i);
        t[i].name = names[i];
        t[i].test_func = test_error_case;
        t[i].initial_state = (void *)&cases[i];
    }
    failed += _cmocka_run_group_tests("errors", t, n, NULL, NULL);
    free(t);
    free(names);
    return failed;
}
