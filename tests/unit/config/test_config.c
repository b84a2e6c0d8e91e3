/*
 * gh_config_load_buffer: the whole schema, its defaults, and one case per
 * kind of error with the exact "file:line:col: message" it must produce.
 *
 * Tests run with GH_CONFIG_NO_DNS=1 so that no case depends on the
 * resolver; one test turns it off to resolve "localhost" through the hosts
 * file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "gatehouse/config.h"

#define NAME "t.yaml"

static gh_config_t *load(const char *yaml, gh_config_error_t *err)
{
    return gh_config_load_buffer(NAME, yaml, strlen(yaml), err);
}

static gh_config_t *load_ok(const char *yaml)
{
    gh_config_error_t err = {{0}};
    gh_config_t *cfg = load(yaml, &err);
    if (cfg == NULL)
        fail_msg("unexpected error: %s", err.msg);
    return cfg;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void assert_ipv4(const struct sockaddr_storage *ss, socklen_t len, const char *ip,
                        uint16_t port)
{
    char buf[INET_ADDRSTRLEN];
    assert_int_equal(ss->ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, sizeof(buf));
    assert_string_equal(buf, ip);
    assert_int_equal(port_of(ss), port);
}

/* ---- a config with every key ---- */

static const char full_yaml[] =
    "workers: 4\n"
    "drain_timeout: 45s\n"
    "listeners:\n"
    "  - name: edge\n"
    "    listen: 127.0.0.1:8080\n"
    "    header_timeout: 5s\n"
    "    idle_timeout: 2m\n"
    "    body_timeout: 250ms\n"
    "    max_head: 32KiB\n"
    "    max_headers: 50\n"
    "    max_uri: 4KB\n"
    "    routes:\n"
    "      - name: orders\n"
    "        match:\n"
    "          host: [API.Example.com, \"*.Example.org\"]\n"
    "          path: { regex: \"^/v[0-9]+/\" }\n"
    "          methods: [GET, post]\n"
    "          headers:\n"
    "            - { name: X-Env, exact: canary }\n"
    "            - { name: x-pre, prefix: ab }\n"
    "            - { name: x-re, regex: \"^a+$\" }\n"
    "            - { name: x-has, present: true }\n"
    "            - { name: x-not, absent: true }\n"
    "          query:\n"
    "            - { name: Debug, present: true }\n"
    "            - { name: v, exact: \"1\" }\n"
    "        to:\n"
    "          - { cluster: orders, weight: 90 }\n"
    "          - { cluster: orders-v2, weight: 10 }\n"
    "        max_body: 1MiB\n"
    "        timeout: 3s\n"
    "      - name: health\n"
    "        match: { path: { exact: /health } }\n"
    "        direct_response:\n"
    "          status: 503\n"
    "          headers: { Content-Type: text/plain, x-a: \"b c\" }\n"
    "          body: \"down\\n\"\n"
    "        max_body: 0\n"
    "      - match: { path: { prefix: /static }, host: static.example.com }\n"
    "        to: orders\n"
    "  - name: v6\n"
    "    listen: \"[::1]:8443\"\n"
    "    routes: [ { direct_response: {} } ]\n"
    "clusters:\n"
    "  orders:\n"
    "    endpoints:\n"
    "      - 127.0.0.1:9000\n"
    "      - { address: \"127.0.0.2:9001\", weight: 3 }\n"
    "      - \"[::1]:9002\"\n"
    "    lb: least_request\n"
    "    connect_timeout: 1s\n"
    "    idle_timeout: 10s\n"
    "    max_idle: 8\n"
    "    max_response_head: 16KiB\n"
    "    max_response_headers: 20\n"
    "  orders-v2:\n"
    "    endpoints: [127.0.0.1:9100]\n"
    "    lb: random\n";

static void test_full(void **state)
{
    (void)state;
    gh_config_t *cfg = load_ok(full_yaml);

    assert_string_equal(cfg->path, NAME);
    assert_int_equal(cfg->workers, 4);
    assert_int_equal(cfg->drain_timeout_ms, 45000);

    assert_int_equal(cfg->num_clusters, 2);
    gh_cluster_t *orders = &cfg->clusters[0], *v2 = &cfg->clusters[1];
    assert_string_equal(orders->name, "orders");
    assert_int_equal(orders->index, 0);
    assert_int_equal(orders->num_endpoints, 3);
    assert_string_equal(orders->endpoints[0].address, "127.0.0.1:9000");
    assert_ipv4(&orders->endpoints[0].addr, orders->endpoints[0].addrlen, "127.0.0.1", 9000);
    assert_int_equal(orders->endpoints[0].weight, 1);
    assert_string_equal(orders->endpoints[1].address, "127.0.0.2:9001");
    assert_ipv4(&orders->endpoints[1].addr, orders->endpoints[1].addrlen, "127.0.0.2", 9001);
    assert_int_equal(orders->endpoints[1].weight, 3);
    assert_string_equal(orders->endpoints[2].address, "[::1]:9002");
    assert_int_equal(orders->endpoints[2].addr.ss_family, AF_INET6);
    assert_int_equal(orders->endpoints[2].addrlen, sizeof(struct sockaddr_in6));
    assert_int_equal(port_of(&orders->endpoints[2].addr), 9002);
    assert_int_equal(orders->total_weight, 5);
    assert_int_equal(orders->lb, GH_LB_LEAST_REQUEST);
    assert_int_equal(orders->connect_timeout_ms, 1000);
    assert_int_equal(orders->idle_timeout_ms, 10000);
    assert_int_equal(orders->max_idle, 8);
    assert_int_equal(orders->max_response_head, 16384);
    assert_int_equal(orders->max_response_headers, 20);
    assert_string_equal(v2->name, "orders-v2");
    assert_int_equal(v2->index, 1);
    assert_int_equal(v2->lb, GH_LB_RANDOM);
    assert_int_equal(v2->total_weight, 1);

    assert_int_equal(cfg->num_listeners, 2);
    gh_listener_conf_t *l = &cfg->listeners[0];
    assert_string_equal(l->name, "edge");
    assert_string_equal(l->address, "127.0.0.1:8080");
    assert_ipv4(&l->addr, l->addrlen, "127.0.0.1", 8080);
    assert_int_equal(l->header_timeout_ms, 5000);
    assert_int_equal(l->idle_timeout_ms, 120000);
    assert_int_equal(l->body_timeout_ms, 250);
    assert_int_equal(l->max_head, 32768);
    assert_int_equal(l->max_headers, 50);
    assert_int_equal(l->max_uri, 4000);
    assert_int_equal(l->num_routes, 3);

    gh_route_t *r = &l->routes[0];
    assert_string_equal(r->name, "orders");
    assert_int_equal(r->index, 0);
    assert_int_equal(r->num_hosts, 2);
    assert_string_equal(r->hosts[0], "api.example.com");
    assert_string_equal(r->hosts[1], "*.example.org");
    assert_true(r->has_path);
    assert_int_equal(r->path.kind, GH_MATCH_REGEX);
    assert_string_equal(r->path.value, "^/v[0-9]+/");
    assert_int_equal(r->path.value_len, 10);
    assert_non_null(r->path.re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->path.re, NULL);
    assert_true(pcre2_match(r->path.re, (PCRE2_SPTR) "/v12/x", 6, 0, 0, md, NULL) > 0);
    assert_int_equal(pcre2_match(r->path.re, (PCRE2_SPTR) "/x/v1/", 6, 0, 0, md, NULL),
                     PCRE2_ERROR_NOMATCH);
    pcre2_match_data_free(md);
    assert_int_equal(r->num_methods, 2);
    assert_string_equal(r->methods[0], "GET");
    assert_string_equal(r->methods[1], "post"); /* kept as written */
    assert_int_equal(r->num_headers, 5);
    assert_string_equal(r->headers[0].name, "x-env");
    assert_int_equal(r->headers[0].name_len, 5);
    assert_int_equal(r->headers[0].match.kind, GH_MATCH_EXACT);
    assert_string_equal(r->headers[0].match.value, "canary");
    assert_int_equal(r->headers[0].match.value_len, 6);
    assert_int_equal(r->headers[1].match.kind, GH_MATCH_PREFIX);
    assert_string_equal(r->headers[1].match.value, "ab");
    assert_int_equal(r->headers[2].match.kind, GH_MATCH_REGEX);
    assert_non_null(r->headers[2].match.re);
    assert_int_equal(r->headers[3].match.kind, GH_MATCH_PRESENT);
    assert_null(r->headers[3].match.value);
    assert_int_equal(r->headers[4].match.kind, GH_MATCH_ABSENT);
    assert_int_equal(r->num_query, 2);
    assert_string_equal(r->query[0].name, "Debug"); /* query names are case-sensitive */
    assert_int_equal(r->query[0].match.kind, GH_MATCH_PRESENT);
    assert_string_equal(r->query[1].name, "v");
    assert_string_equal(r->query[1].match.value, "1");
    assert_int_equal(r->num_targets, 2);
    assert_ptr_equal(r->targets[0].cluster, orders);
    assert_int_equal(r->targets[0].weight, 90);
    assert_ptr_equal(r->targets[1].cluster, v2);
    assert_int_equal(r->targets[1].weight, 10);
    assert_int_equal(r->total_weight, 100);
    assert_null(r->direct);
    assert_int_equal(r->max_body, 1048576);
    assert_int_equal(r->timeout_ms, 3000);

    r = &l->routes[1];
    assert_string_equal(r->name, "health");
    assert_int_equal(r->index, 1);
    assert_int_equal(r->num_hosts, 0);
    assert_int_equal(r->path.kind, GH_MATCH_EXACT);
    assert_string_equal(r->path.value, "/health");
    assert_null(r->path.re);
    assert_int_equal(r->num_targets, 0);
    assert_non_null(r->direct);
    assert_int_equal(r->direct->status, 503);
    assert_int_equal(r->direct->num_headers, 2);
    assert_string_equal(r->direct->headers[0].name, "content-type");
    assert_int_equal(r->direct->headers[0].name_len, 12);
    assert_string_equal(r->direct->headers[0].value, "text/plain");
    assert_int_equal(r->direct->headers[0].value_len, 10);
    assert_string_equal(r->direct->headers[1].value, "b c");
    assert_int_equal(r->direct->body_len, 5);
    assert_memory_equal(r->direct->body, "down\n", 5);
    assert_int_equal(r->max_body, 0);

    r = &l->routes[2];
    assert_string_equal(r->name, "edge/#2");
    assert_int_equal(r->index, 2);
    assert_int_equal(r->path.kind, GH_MATCH_PREFIX);
    assert_string_equal(r->path.value, "/static");
    assert_string_equal(r->hosts[0], "static.example.com");
    assert_int_equal(r->num_targets, 1);
    assert_ptr_equal(r->targets[0].cluster, orders);
    assert_int_equal(r->targets[0].weight, 1);
    assert_int_equal(r->total_weight, 1);

    l = &cfg->listeners[1];
    assert_string_equal(l->address, "[::1]:8443");
    assert_int_equal(l->addr.ss_family, AF_INET6);
    assert_int_equal(port_of(&l->addr), 8443);
    assert_string_equal(l->routes[0].name, "v6/#0");
    assert_int_equal(l->routes[0].direct->status, 200);
    assert_int_equal(l->routes[0].direct->num_headers, 0);
    assert_null(l->routes[0].direct->body);

    gh_config_free(cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    gh_config_t *cfg = load_ok("listeners:\n"
                               "  - name: edge\n"
                               "    listen: 0.0.0.0:80\n"
                               "    routes: [ { to: app } ]\n"
                               "clusters:\n"
                               "  app: { endpoints: [10.0.0.1:80] }\n");
    assert_int_equal(cfg->workers, 0);
    assert_int_equal(cfg->drain_timeout_ms, 30000);
    gh_listener_conf_t *l = &cfg->listeners[0];
    assert_int_equal(l->header_timeout_ms, 10000);
    assert_int_equal(l->idle_timeout_ms, 60000);
    assert_int_equal(l->body_timeout_ms, 60000);
    assert_int_equal(l->max_head, 65536);
    assert_int_equal(l->max_headers, 100);
    assert_int_equal(l->max_uri, 8192);
    gh_route_t *r = &l->routes[0];
    assert_string_equal(r->name, "edge/#0");
    assert_int_equal(r->num_hosts, 0);
    assert_null(r->hosts);
    assert_false(r->has_path);
    assert_null(r->methods);
    assert_int_equal(r->num_methods, 0);
    assert_int_equal(r->num_headers, 0);
    assert_int_equal(r->num_query, 0);
    assert_int_equal(r->max_body, 1024ULL * 1024 * 1024);
    assert_int_equal(r->timeout_ms, 15000);
    gh_cluster_t *c = &cfg->clusters[0];
    assert_int_equal(c->lb, GH_LB_ROUND_ROBIN);
    assert_int_equal(c->connect_timeout_ms, 2000);
    assert_int_equal(c->idle_timeout_ms, 30000);
    assert_int_equal(c->max_idle, 64);
    assert_int_equal(c->max_response_head, 65536);
    assert_int_equal(c->max_response_headers, 100);
    assert_int_equal(c->max_connections, 1024);
    assert_int_equal(c->max_pending, 1024);
    assert_int_equal(l->max_connections, 10000);
    assert_int_equal(l->max_conns_per_address, 0);
    assert_int_equal(c->endpoints[0].weight, 1);
    assert_int_equal(c->total_weight, 1);
    gh_config_free(cfg);
}

/* clusters may come before or after listeners; no clusters is fine when no
 * route needs one; flow and block styles mix. */
static void test_order_and_styles(void **state)
{
    (void)state;
    gh_config_t *cfg = load_ok("clusters: { b: { endpoints: [ { address: 127.0.0.1:1 } ] } }\n"
                               "listeners: [ { name: x, listen: 127.0.0.1:1, routes: [ { to: b "
                               "} ] } ]\n");
    assert_ptr_equal(cfg->listeners[0].routes[0].targets[0].cluster, &cfg->clusters[0]);
    gh_config_free(cfg);
    cfg = load_ok("listeners:\n"
                  "  - name: x\n"
                  "    listen: 127.0.0.1:1\n"
                  "    routes: [ { direct_response: { status: 204 } } ]\n");
    assert_int_equal(cfg->num_clusters, 0);
    assert_null(cfg->clusters);
    gh_config_free(cfg);
    /* anchors without aliases are harmless and allowed */
    cfg = load_ok("listeners:\n"
                  "  - &l { name: x, listen: 127.0.0.1:1, routes: [ { direct_response: {} } ] }\n");
    gh_config_free(cfg);
}

static void test_workers_and_limits_at_bounds(void **state)
{
    (void)state;
    gh_config_t *cfg = load_ok("workers: 1024\n"
                               "listeners:\n"
                               "  - name: x\n"
                               "    listen: 127.0.0.1:65535\n"
                               "    max_head: 1KiB\n"
                               "    max_headers: 10000\n"
                               "    max_uri: 1\n"
                               "    max_connections: 1\n"
                               "    max_connections_per_address: 1000000\n"
                               "    routes: [ { to: [ { cluster: c, weight: 1000000 } ] } ]\n"
                               "clusters:\n"
                               "  c: { endpoints: [ { address: 127.0.0.1:1, weight: 1000000 } ],\n"
                               "       max_idle: 0, max_response_head: 8MiB,\n"
                               "       max_response_headers: 1, max_connections: 1,\n"
                               "       max_pending: 0 }\n");
    assert_int_equal(cfg->listeners[0].max_connections, 1);
    assert_int_equal(cfg->listeners[0].max_conns_per_address, 1000000);
    assert_int_equal(cfg->clusters[0].max_connections, 1);
    assert_int_equal(cfg->clusters[0].max_pending, 0);
    assert_int_equal(cfg->workers, 1024);
    assert_int_equal(port_of(&cfg->listeners[0].addr), 65535);
    assert_int_equal(cfg->listeners[0].max_head, 1024);
    assert_int_equal(cfg->listeners[0].max_headers, 10000);
    assert_int_equal(cfg->listeners[0].max_uri, 1);
    assert_int_equal(cfg->listeners[0].routes[0].total_weight, 1000000);
    assert_int_equal(cfg->clusters[0].total_weight, 1000000);
    assert_int_equal(cfg->clusters[0].max_idle, 0);
    assert_int_equal(cfg->clusters[0].max_response_head, 8 * 1024 * 1024);
    gh_config_free(cfg);
}

static void test_direct_body_with_nul(void **state)
{
    (void)state;
    gh_config_t *cfg = load_ok("listeners:\n"
                               "  - name: x\n"
                               "    listen: 127.0.0.1:1\n"
                               "    routes: [ { direct_response: { body: \"a\\0b\" } } ]\n");
    assert_int_equal(cfg->listeners[0].routes[0].direct->body_len, 3);
    assert_memory_equal(cfg->listeners[0].routes[0].direct->body, "a\0b", 3);
    gh_config_free(cfg);
}

static void test_localhost_resolves(void **state)
{
    (void)state;
    static const char yaml[] = "listeners:\n"
                               "  - name: x\n"
                               "    listen: 127.0.0.1:1\n"
                               "    routes: [ { to: c } ]\n"
                               "clusters:\n"
                               "  c: { endpoints: [localhost:9000] }\n";
    /* honoured by the resolver path (hosts file) with and without the flag */
    for (int i = 0; i < 2; i++) {
        setenv("GH_CONFIG_NO_DNS", i == 0 ? "1" : "0", 1);
        gh_config_t *cfg = load_ok(yaml);
        gh_endpoint_conf_t *e = &cfg->clusters[0].endpoints[0];
        assert_string_equal(e->address, "localhost:9000");
        assert_true(e->addr.ss_family == AF_INET || e->addr.ss_family == AF_INET6);
        assert_int_equal(port_of(&e->addr), 9000);
        gh_config_free(cfg);
    }
    setenv("GH_CONFIG_NO_DNS", "1", 1);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/gh_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char yaml[] = "listeners:\n"
                               "  - name: x\n"
                               "    listen: 127.0.0.1:1\n"
                               "    routes: [ { to: nope } ]\n";
    assert_int_equal(write(fd, yaml, sizeof(yaml) - 1), sizeof(yaml) - 1);
    close(fd);
    gh_config_error_t err;
    assert_null(gh_config_load(path, &err));
    char want[600];
    snprintf(want, sizeof(want), "%s:4:21: route 'x/#0' names unknown cluster 'nope'", path);
    assert_string_equal(err.msg, want);
    unlink(path);

    assert_null(gh_config_load("/nonexistent/gh.yaml", &err));
    assert_string_equal(err.msg, "/nonexistent/gh.yaml: No such file or directory");
    assert_null(gh_config_load("/tmp", &err));
    assert_string_equal(err.msg, "/tmp: not a regular file");
}

static void test_reader_error(void **state)
{
    (void)state;
    gh_config_error_t err;
    static const char yaml[] = "workers: 1\nx: a\xff\n";
    assert_null(load(yaml, &err));
    assert_string_equal(err.msg, NAME ":2:5: invalid YAML: invalid leading UTF-8 octet");
}

static void test_nesting_limit(void **state)
{
    (void)state;
    char yaml[200];
    memset(yaml, '[', 100);
    memset(yaml + 100, ']', 99);
    yaml[199] = '\0';
    gh_config_error_t err;
    assert_null(load(yaml, &err));
    assert_string_equal(err.msg, NAME ":1:65: nesting deeper than 64 levels");
}

/* A mapping of n keys "k0".."k<n-1>" under the root, then `tail`. */
static char *many_keys(size_t n, const char *tail)
{
    size_t cap = n * 16 + strlen(tail) + 64, len = 0;
    char *y = malloc(cap);
    assert_non_null(y);
    len += (size_t)snprintf(y + len, cap - len, "x:\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(y + len, cap - len, "  k%zu: 1\n", i);
    snprintf(y + len, cap - len, "%s", tail);
    return y;
}

/* The duplicate-key check used to compare each key with every earlier one
 * of its mapping (100,000 keys: 27 s on the main loop). A duplicate at the
 * end of a large mapping is still found, at its position. */
static void test_duplicate_key_in_large_mapping(void **state)
{
    (void)state;
    char *y = many_keys(90000, "  k17: 2\n");
    gh_config_error_t err;
    assert_null(load(y, &err));
    assert_string_equal(err.msg, NAME ":90002:3: duplicate key 'k17'");
    free(y);
    /* Same text in different mappings is no duplicate. */
    y = many_keys(1000, "y:\n  k17: 2\n");
    assert_null(load(y, &err));
    assert_string_equal(err.msg, NAME ":1:1: unknown key 'x' in the configuration");
    free(y);
}

static void test_node_and_size_caps(void **state)
{
    (void)state;
    /* 1 root + 1 key + 1 map + 2 per entry: the cap falls inside the map. */
    char *y = many_keys(100000, "");
    gh_config_error_t err;
    assert_null(load(y, &err));
    assert_string_equal(err.msg, NAME
                        ":100000:11: more than 200000 YAML nodes (keys, values and list items)");
    free(y);
    size_t n = (16u << 20) + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, '#', n);
    assert_null(gh_config_load_buffer(NAME, big, n, &err));
    assert_string_equal(err.msg, NAME ": the document is larger than 16777216 bytes");
    free(big);
}

/* ---- durations and sizes ---- */

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t ms;
    } ok[] = {{"1ms", 1},
              {"250ms", 250},
              {"5s", 5000},
              {"2m", 120000},
              {"1h", 3600000},
              {"007s", 7000},
              {"18446744073709551615ms", UINT64_MAX},
              {"5124095576030h", 18446744073708000000ULL}};
    static const char *const bad[] = {
        "",
        "s",
        "0s",
        "0ms",
        "5",
        "5 s",
        " 5s",
        "5S",
        "5sec",
        "-5s",
        "+5s",
        "1.5s",
        "5us",
        "5d",
        "1hh",
        "ms5",
        "5s ",
        "0x5s",
        "18446744073709551616ms", /* digits overflow */
        "18446744073709552s",     /* multiplication overflow */
        "5124095576031h",
    };
    uint64_t v;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = 0;
        assert_int_equal(gh_config_parse_duration(ok[i].in, &v), 0);
        assert_int_equal(v, ok[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (gh_config_parse_duration(bad[i], &v) != -EINVAL)
            fail_msg("duration '%s' was accepted", bad[i]);
    }
    assert_int_equal(gh_config_parse_duration(NULL, &v), -EINVAL);
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t bytes;
    } ok[] = {{"0", 0},
              {"512", 512},
              {"512B", 512},
              {"64KiB", 65536},
              {"1MiB", 1048576},
              {"2GiB", 2147483648ULL},
              {"1KB", 1000},
              {"3MB", 3000000},
              {"4GB", 4000000000ULL},
              {"18446744073709551615", UINT64_MAX},
              {"17179869183GiB", 17179869183ULL << 30}};
    static const char *const bad[] = {"",
                                      "KiB",
                                      "1kib",
                                      "1K",
                                      "1k",
                                      "1 KiB",
                                      "-1",
                                      "1.5MiB",
                                      "1TiB",
                                      "1b",
                                      " 1",
                                      "1 ",
                                      "1KiBB",
                                      "18446744073709551616",
                                      "17179869184GiB",
                                      "18446744073709552KB"};
    uint64_t v;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = 1;
        assert_int_equal(gh_config_parse_size(ok[i].in, &v), 0);
        assert_int_equal(v, ok[i].bytes);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (gh_config_parse_size(bad[i], &v) != -EINVAL)
            fail_msg("size '%s' was accepted", bad[i]);
    }
    assert_int_equal(gh_config_parse_size(NULL, &v), -EINVAL);
}

/* ---- errors: one per kind, each with its exact position ---- */

/* A listener "a" whose routes list starts on line 5, column 7. */
#define L                                                                                          \
    "listeners:\n"                                                                                 \
    "  - name: a\n"                                                                                \
    "    listen: 127.0.0.1:1\n"                                                                    \
    "    routes:\n"
/* Cluster "app", for routes that need one; goes after L plus one route line. */
#define C "clusters: { app: { endpoints: [127.0.0.1:9] } }\n"
#define R(route) L "      - " route "\n" C
/* A valid listener, then clusters: starting on line 3 */
#define LC(clusters)                                                                               \
    "listeners: [ { name: a, listen: 127.0.0.1:1, routes: [ { to: app } ] } "                      \
    "]\nclusters:\n" clusters

/* A valid listener, then provider "p" whose realm (line 9, column 14)
 * is the argument. */
#define PV(realm)                                                                                  \
    "listeners: [ { name: a, listen: 127.0.0.1:1, routes: [ { to: app } ] } ]\n" C "providers:\n"  \
    "  jwt:\n"                                                                                     \
    "    p:\n"                                                                                     \
    "      issuer: https://issuer.example\n"                                                       \
    "      audiences: [a]\n"                                                                       \
    "      jwks: { inline: '{\"keys\":[]}' }\n"                                                    \
    "      realm: " realm "\n"
#define REALM_ERR "realm may contain only visible ASCII and spaces, without quotes or backslashes"

typedef struct {
    const char *yaml;
    const char *want;
} error_case_t;

static const error_case_t error_cases[] = {
    /* document */
    {"", NAME ": the configuration is empty"},
    {"# only a comment\n", NAME ": the configuration is empty"},
    {"- a\n", NAME ":1:1: the configuration must be a mapping"},
    {"a: [1, 2\n",
     NAME ":2:1: invalid YAML: did not find expected ',' or ']' while parsing a flow sequence"},
    {"a: b: c\n", NAME ":1:5: invalid YAML: mapping values are not allowed in this context"},
    {"a: &x 1\nb: *x\n", NAME ":2:4: YAML aliases are not supported"},
    {"workers: 1\n---\nworkers: 2\n", NAME ":2:1: only one YAML document is allowed"},
    {"? [a]\n: 1\n", NAME ":1:3: mapping keys must be scalars"},
    {"workers: 1\nworkers: 2\n", NAME ":2:1: duplicate key 'workers'"},
    {"foo: 1\n", NAME ":1:1: unknown key 'foo' in the configuration"},
    {"listeners: []\nfoo: 1\n", NAME ":2:1: unknown key 'foo' in the configuration"},
    {"\"a\\nb\": 1\n", NAME ":1:1: unknown key 'a?b' in the configuration"},
    /* root */
    {"workers: two\n", NAME ":1:10: 'workers' must be an integer from 0 to 1024"},
    {"workers: \"2\"\n", NAME ":1:10: 'workers' must be an integer from 0 to 1024"},
    {"workers: -1\n", NAME ":1:10: 'workers' must be an integer from 0 to 1024"},
    {"workers: 1025\n", NAME ":1:10: 'workers' must be an integer from 0 to 1024"},
    {"workers: [1]\n", NAME ":1:10: 'workers' must be an integer from 0 to 1024"},
    {"drain_timeout: 0s\n",
     NAME ":1:16: 'drain_timeout' must be a duration greater than zero, such as 250ms, 5s, 2m or "
          "1h"},
    {"drain_timeout: 30\n",
     NAME ":1:16: 'drain_timeout' must be a duration greater than zero, such as 250ms, 5s, 2m or "
          "1h"},
    /* Every duration key has an upper bound. */
    {"drain_timeout: 61m\n", NAME ":1:16: 'drain_timeout' must be at most 1h"},
    {"drain_timeout: 3600001ms\n", NAME ":1:16: 'drain_timeout' must be at most 1h"},
    {"drain_timeout: 18446744073709551615ms\n", NAME ":1:16: 'drain_timeout' must be at most 1h"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, header_timeout: 11m }\n",
     NAME ":2:53: 'header_timeout' must be at most 10m"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, idle_timeout: 2h }\n",
     NAME ":2:51: 'idle_timeout' must be at most 1h"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, body_timeout: 1000h }\n",
     NAME ":2:51: 'body_timeout' must be at most 1h"},
    {R("{ direct_response: {}, timeout: 61m }"), NAME ":5:41: 'timeout' must be at most 1h"},
    {LC("  app: { endpoints: [127.0.0.1:9], connect_timeout: 301s }\n"),
     NAME ":3:53: 'connect_timeout' must be at most 5m"},
    {LC("  app: { endpoints: [127.0.0.1:9], idle_timeout: 61m }\n"),
     NAME ":3:50: 'idle_timeout' must be at most 1h"},
    {"tracing: { collector: \"http://127.0.0.1:1/\", export_timeout: 61s }\n",
     NAME ":1:62: 'export_timeout' must be at most 1m"},
    {"tracing: { collector: \"http://127.0.0.1:1/\", flush_interval: 2m }\n",
     NAME ":1:62: 'flush_interval' must be at most 1m"},
    {"workers: 1\n", NAME ":1:1: the configuration is missing required key 'listeners'"},
    {"listeners: []\n", NAME ":1:12: 'listeners' must not be empty"},
    {"listeners: {}\n", NAME ":1:12: expected a list for 'listeners'"},
    {"listeners:\n", NAME ":1:11: expected a list for 'listeners'"},
    /* listener */
    {"listeners: [a]\n", NAME ":1:13: expected a mapping for a listener"},
    {"listeners:\n  - name: a\n    bogus: 1\n", NAME ":3:5: unknown key 'bogus' in listener"},
    {"listeners:\n  - listen: 127.0.0.1:1\n", NAME ":2:5: listener is missing required key 'name'"},
    {"listeners:\n  - name: a\n", NAME ":2:5: listener 'a' is missing required key 'listen'"},
    {"listeners:\n  - name: \"\"\n", NAME ":2:11: listener name must be 1 to 256 characters"},
    {"listeners:\n  - name: a b\n",
     NAME ":2:11: listener name 'a b' may contain only printable ASCII without spaces"},
    {"listeners:\n  - name: [a]\n", NAME ":2:11: 'listener name' must be a string"},
    {"listeners:\n  - name: \"a\\0b\"\n", NAME ":2:11: 'listener name' must not contain NUL"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1 }\n",
     NAME ":2:5: listener 'a' is missing required key 'routes'"},
    {L "      []\n", NAME ":5:7: 'routes' must not be empty"},
    {L "      a\n", NAME ":5:7: expected a list for 'routes'"},
    {"listeners:\n  - { name: a, listen: localhost:80 }\n",
     NAME ":2:24: listen address 'localhost:80' must be a numeric IPv4 address or a bracketed "
          "IPv6 address"},
    {"listeners:\n  - { name: a, listen: 127.1:80 }\n",
     NAME ":2:24: listen address '127.1:80' must be a numeric IPv4 address or a bracketed IPv6 "
          "address"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1 }\n",
     NAME ":2:24: listen address '127.0.0.1' needs a port"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:0 }\n",
     NAME ":2:24: listen address '127.0.0.1:0' needs a port from 1 to 65535"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:65536 }\n",
     NAME ":2:24: listen address '127.0.0.1:65536' needs a port from 1 to 65535"},
    {"listeners:\n  - { name: a, listen: \"127.0.0.1:\" }\n",
     NAME ":2:24: listen address '127.0.0.1:' needs a port from 1 to 65535"},
    {"listeners:\n  - { name: a, listen: \"127.0.0.1:80x\" }\n",
     NAME ":2:24: listen address '127.0.0.1:80x' needs a port from 1 to 65535"},
    {"listeners:\n  - { name: a, listen: \"::1:80\" }\n",
     NAME ":2:24: listen address '::1:80' has an IPv6 address without brackets"},
    {"listeners:\n  - { name: a, listen: \"[::1]\" }\n",
     NAME ":2:24: listen address '[::1]' needs a port after ']'"},
    {"listeners:\n  - { name: a, listen: \"[::1:80\" }\n",
     NAME ":2:24: listen address '[::1:80' has '[' without ']'"},
    {"listeners:\n  - { name: a, listen: \"[zz]:80\" }\n",
     NAME ":2:24: listen address '[zz]:80' has an invalid IPv6 address"},
    {"listeners:\n  - { name: a, listen: \":80\" }\n",
     NAME ":2:24: listen address ':80' has an empty host"},
    {"listeners:\n  - { name: a, listen: [1] }\n", NAME ":2:24: 'listen' must be a string"},
    {"listeners:\n"
     "  - { name: a, listen: 127.0.0.1:80, routes: [ { direct_response: {} } ] }\n"
     "  - { name: a, listen: 127.0.0.1:81, routes: [ { direct_response: {} } ] }\n",
     NAME ":3:13: duplicate listener name 'a'"},
    {"listeners:\n"
     "  - { name: a, listen: 127.0.0.1:80, routes: [ { direct_response: {} } ] }\n"
     "  - { name: b, listen: 127.0.0.1:80, routes: [ { direct_response: {} } ] }\n",
     NAME ":3:24: listener 'b' address '127.0.0.1:80' conflicts with listener 'a' "
          "('127.0.0.1:80')"},
    {"listeners:\n"
     "  - { name: a, listen: 127.0.0.1:80, routes: [ { direct_response: {} } ] }\n"
     "  - { name: b, listen: 0.0.0.0:80, routes: [ { direct_response: {} } ] }\n",
     NAME ":3:24: listener 'b' address '0.0.0.0:80' conflicts with listener 'a' "
          "('127.0.0.1:80')"},
    {"listeners:\n"
     "  - { name: a, listen: \"[::]:80\", routes: [ { direct_response: {} } ] }\n"
     "  - { name: b, listen: \"[::1]:80\", routes: [ { direct_response: {} } ] }\n",
     NAME ":3:24: listener 'b' address '[::1]:80' conflicts with listener 'a' ('[::]:80')"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, header_timeout: 10 }\n",
     NAME ":2:53: 'header_timeout' must be a duration greater than zero, such as 250ms, 5s, 2m "
          "or 1h"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, idle_timeout: 1d }\n",
     NAME ":2:51: 'idle_timeout' must be a duration greater than zero, such as 250ms, 5s, 2m or "
          "1h"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, body_timeout: {} }\n",
     NAME ":2:51: 'body_timeout' must be a duration greater than zero, such as 250ms, 5s, 2m or "
          "1h"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, max_head: 1000 }\n",
     NAME ":2:47: 'max_head' must be from 1024 to 8388608 bytes"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, max_head: 64kb }\n",
     NAME ":2:47: 'max_head' must be a size, such as 512, 64KiB or 1MiB"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, max_uri: 0 }\n",
     NAME ":2:46: 'max_uri' must be from 1 to 8388608 bytes"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, max_headers: 0 }\n",
     NAME ":2:50: 'max_headers' must be an integer from 1 to 10000"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, max_headers: 10001 }\n",
     NAME ":2:50: 'max_headers' must be an integer from 1 to 10000"},
    /* route */
    {L "      - a\n", NAME ":5:9: expected a mapping for a route"},
    {R("{ to: app, bogus: 1 }"), NAME ":5:20: unknown key 'bogus' in route"},
    /* A key with a NUL is no section: "authn\0" must not pass as authn
     * (which the route would then run without). */
    {R("{ to: app, \"authn\\0\": p }"),
     NAME ":5:20: unknown key 'authn' in route (it holds a NUL)"},
    {R("{ to: app, \"fault\\0x\": {abort: {status: 503}} }"),
     NAME ":5:20: unknown key 'fault' in route (it holds a NUL)"},
    {R("{ name: x }"), NAME ":5:9: route 'x' needs exactly one of 'to' or 'direct_response'"},
    {R("{ to: app, direct_response: {} }"),
     NAME ":5:20: route 'a/#0' needs exactly one of 'to' or 'direct_response'"},
    {L "      - { name: x, to: app }\n      - { name: x, to: app }\n" C,
     NAME ":6:17: duplicate route name 'x' in listener 'a'"},
    {L "      - { to: app }\n      - { name: a/#0, to: app }\n" C,
     NAME ":6:17: duplicate route name 'a/#0' in listener 'a'"},
    {L "      - { name: a/#1, to: app }\n      - { to: app }\n" C,
     NAME ":6:9: duplicate route name 'a/#1' in listener 'a'"},
    {R("{ to: app, to: app }"), NAME ":5:20: duplicate key 'to'"},
    {LC("  app: { endpoints: [127.0.0.1:9] }\n  app: { endpoints: [127.0.0.1:8] }\n"),
     NAME ":4:3: duplicate key 'app'"},
    {R("{ to: app, max_body: lots }"),
     NAME ":5:30: 'max_body' must be a size, such as 512, 64KiB or 1MiB"},
    {R("{ to: app, forward_trailers: [x-check, Authorization] }"),
     NAME ":5:48: trailer 'Authorization' can never be forwarded"},
    {R("{ to: app, forward_trailers: [transfer-encoding] }"),
     NAME ":5:39: trailer 'transfer-encoding' can never be forwarded"},
    {R("{ to: app, forward_trailers: [X_Original_URL] }"),
     NAME ":5:39: trailer 'X_Original_URL' can never be forwarded"},
    {R("{ to: app, forward_trailers: [true-client-ip] }"),
     NAME ":5:39: trailer 'true-client-ip' can never be forwarded"},
    {R("{ to: app, forward_trailers: [\"a b\"] }"),
     NAME ":5:39: trailer name 'a b' is not an HTTP token"},
    {R("{ to: app, forward_trailers: [] }"), NAME ":5:38: 'forward_trailers' must not be empty"},
    {R("{ to: app, timeout: 0ms }"),
     NAME ":5:29: 'timeout' must be a duration greater than zero, such as 250ms, 5s, 2m or 1h"},
    /* to */
    {R("{ to: nope }"), NAME ":5:15: route 'a/#0' names unknown cluster 'nope'"},
    {R("{ name: r, to: [ { cluster: app }, { cluster: nope, weight: 2 } ] }"),
     NAME ":5:55: route 'r' names unknown cluster 'nope'"},
    {R("{ to: [ { cluster: app }, { cluster: app } ] }"),
     NAME ":5:46: route 'a/#0' names cluster 'app' twice"},
    {R("{ to: [ { cluster: app, weight: 0 } ] }"),
     NAME ":5:41: 'weight' must be an integer from 1 to 1000000"},
    {R("{ to: [ { cluster: app, weight: 1000001 } ] }"),
     NAME ":5:41: 'weight' must be an integer from 1 to 1000000"},
    {R("{ to: [ { weight: 1 } ] }"),
     NAME ":5:17: an entry of 'to' is missing required key 'cluster'"},
    {R("{ to: [ { cluster: app, w: 1 } ] }"), NAME ":5:33: unknown key 'w' in an entry of 'to'"},
    {R("{ to: [ app ] }"), NAME ":5:17: expected a mapping for an entry of 'to'"},
    {R("{ to: [] }"), NAME ":5:15: 'to' must not be empty"},
    {R("{ to: { cluster: app } }"),
     NAME ":5:15: 'to' must be a cluster name or a list of { cluster, weight }"},
    /* match */
    {R("{ to: app, match: [] }"), NAME ":5:27: expected a mapping for 'match'"},
    {R("{ to: app, match: { hots: a } }"), NAME ":5:29: unknown key 'hots' in 'match'"},
    {R("{ to: app, match: { host: \"*\" } }"),
     NAME ":5:35: invalid host '*': a host name without port, optionally starting with '*.'"},
    {R("{ to: app, match: { host: \"a.*.com\" } }"),
     NAME ":5:35: invalid host 'a.*.com': a host name without port, optionally starting with "
          "'*.'"},
    {R("{ to: app, match: { host: \"*.*.com\" } }"),
     NAME ":5:35: invalid host '*.*.com': a host name without port, optionally starting with "
          "'*.'"},
    {R("{ to: app, match: { host: [ok.com, \"a.com:80\"] } }"),
     NAME ":5:44: invalid host 'a.com:80': a host name without port, optionally starting with "
          "'*.'"},
    {R("{ to: app, match: { host: \"a..com\" } }"),
     NAME ":5:35: invalid host 'a..com': a host name without port, optionally starting with "
          "'*.'"},
    {R("{ to: app, match: { host: [] } }"), NAME ":5:35: 'host' must not be empty"},
    {R("{ to: app, match: { host: { a: b } } }"),
     NAME ":5:35: 'host' must be a string or a list of strings"},
    {R("{ to: app, match: { host: [ [a] ] } }"), NAME ":5:37: 'host' must be a string"},
    {R("{ to: app, match: { path: /x } }"), NAME ":5:35: expected a mapping for 'path'"},
    {R("{ to: app, match: { path: {} } }"),
     NAME ":5:35: 'path' needs exactly one of 'exact', 'prefix' or 'regex'"},
    {R("{ to: app, match: { path: { exact: /a, prefix: /b } } }"),
     NAME ":5:48: 'path' needs exactly one of 'exact', 'prefix' or 'regex'"},
    {R("{ to: app, match: { path: { present: true } } }"),
     NAME ":5:37: unknown key 'present' in 'path'"},
    {R("{ to: app, match: { path: { exact: health } } }"),
     NAME ":5:44: path exact 'health' must start with '/'"},
    {R("{ to: app, match: { path: { prefix: \"\" } } }"),
     NAME ":5:45: path prefix '' must start with '/'"},
    {R("{ to: app, match: { path: { regex: \"^/(a\" } } }"),
     NAME ":5:44: invalid regex '^/(a': missing closing parenthesis at offset 4"},
    {R("{ to: app, match: { path: { regex: \"a{2,1}\" } } }"),
     NAME ":5:44: invalid regex 'a{2,1}': numbers out of order in {} quantifier at offset 5"},
    {R("{ to: app, match: { methods: GET } }"), NAME ":5:38: expected a list for 'methods'"},
    {R("{ to: app, match: { methods: [GET, \"GE T\"] } }"),
     NAME ":5:44: method 'GE T' is not an HTTP token"},
    {R("{ to: app, match: { methods: [\"\"] } }"), NAME ":5:39: method '' is not an HTTP token"},
    {R("{ to: app, match: { headers: { x: y } } }"), NAME ":5:38: expected a list for 'headers'"},
    {R("{ to: app, match: { headers: [ x ] } }"),
     NAME ":5:40: expected a mapping for an entry of 'headers'"},
    {R("{ to: app, match: { headers: [ { exact: y } ] } }"),
     NAME ":5:40: an entry of 'headers' is missing required key 'name'"},
    {R("{ to: app, match: { headers: [ { name: x } ] } }"),
     NAME ":5:40: an entry of 'headers' needs exactly one of 'exact', 'prefix', 'regex', "
          "'present' or 'absent'"},
    {R("{ to: app, match: { headers: [ { name: x, exact: a, absent: true } ] } }"),
     NAME ":5:61: an entry of 'headers' needs exactly one of 'exact', 'prefix', 'regex', "
          "'present' or 'absent'"},
    {R("{ to: app, match: { headers: [ { name: x, present: false } ] } }"),
     NAME ":5:60: 'present' can only be true"},
    {R("{ to: app, match: { headers: [ { name: x, absent: yes } ] } }"),
     NAME ":5:59: 'absent' must be true or false"},
    {R("{ to: app, match: { headers: [ { name: \"x y\", exact: a } ] } }"),
     NAME ":5:48: header name 'x y' is not an HTTP token"},
    {R("{ to: app, match: { headers: [ { name: x, exact: a, other: b } ] } }"),
     NAME ":5:61: unknown key 'other' in an entry of 'headers'"},
    {R("{ to: app, match: { headers: [ { name: x, regex: \"[\" } ] } }"),
     NAME ":5:58: invalid regex '[': missing terminating ] for character class at offset 1"},
    {R("{ to: app, match: { query: [ { name: \"a=b\", present: true } ] } }"),
     NAME ":5:46: invalid query parameter name 'a=b'"},
    {R("{ to: app, match: { query: [ { name: \"\", present: true } ] } }"),
     NAME ":5:46: invalid query parameter name ''"},
    {R("{ to: app, match: { query: [ { name: q, exact: [a] } ] } }"),
     NAME ":5:56: 'exact' must be a string"},
    {R("{ to: app, match: { query: [] } }"), NAME ":5:36: 'query' must not be empty"},
    /* direct_response */
    {R("{ direct_response: 200 }"), NAME ":5:28: expected a mapping for 'direct_response'"},
    {R("{ direct_response: { code: 200 } }"),
     NAME ":5:30: unknown key 'code' in 'direct_response'"},
    {R("{ direct_response: { status: 99 } }"),
     NAME ":5:38: 'status' must be an integer from 200 to 599"},
    {R("{ direct_response: { status: 600 } }"),
     NAME ":5:38: 'status' must be an integer from 200 to 599"},
    /* A 1xx is interim: the client would wait for a final response. */
    {R("{ direct_response: { status: 100 } }"),
     NAME ":5:38: 'status' must be an integer from 200 to 599"},
    {R("{ direct_response: { status: 101 } }"),
     NAME ":5:38: 'status' must be an integer from 200 to 599"},
    {R("{ direct_response: { status: 199 } }"),
     NAME ":5:38: 'status' must be an integer from 200 to 599"},
    {R("{ direct_response: { headers: [a] } }"), NAME ":5:39: expected a mapping for 'headers'"},
    {R("{ direct_response: { headers: { \"a b\": c } } }"),
     NAME ":5:41: header name 'a b' is not an HTTP token"},
    {R("{ direct_response: { headers: { a: \"b\\nc\" } } }"),
     NAME ":5:44: header 'a' must not contain control characters"},
    {R("{ direct_response: { headers: { a: [b] } } }"), NAME ":5:44: header 'a' must be a string"},
    {R("{ direct_response: { headers: { Content-Length: 5 } } }"),
     NAME ":5:41: header 'Content-Length' is a field gatehouse sets or removes itself (framing, "
          "hop-by-hop, host, "
          "forwarding, credentials, trace context)"},
    {R("{ direct_response: { headers: { transfer-encoding: chunked } } }"),
     NAME ":5:41: header 'transfer-encoding' is a field gatehouse sets or removes itself (framing, "
          "hop-by-hop, host, "
          "forwarding, credentials, trace context)"},
    {R("{ direct_response: { headers: { Connection: x } } }"),
     NAME ":5:41: header 'Connection' is a field gatehouse sets or removes itself (framing, "
          "hop-by-hop, host, "
          "forwarding, credentials, trace context)"},
    {R("{ direct_response: { headers: { proxy-x: x } } }"),
     NAME ":5:41: header 'proxy-x' is a hop-by-hop field (proxy-*)"},
    {R("{ direct_response: { headers: { X-Forwarded-Port: 1 } } }"),
     NAME ":5:41: header 'X-Forwarded-Port' is a forwarding field (x-forwarded-*)"},
    /* trusted_proxies */
    {"listeners: [ { name: a, listen: 127.0.0.1:1, trusted_proxies: [10.0.0.1/8], routes: [] } ]\n",
     NAME ":1:64: trusted_proxies entry '10.0.0.1/8' has bits set after the prefix length"},
    {"listeners: [ { name: a, listen: 127.0.0.1:1, trusted_proxies: [\"::1/200\"], routes: [] } "
     "]\n",
     NAME ":1:64: trusted_proxies entry '::1/200' has a prefix length beyond the address size"},
    {"listeners: [ { name: a, listen: 127.0.0.1:1, trusted_proxies: 10.0.0.0/8, routes: [] } ]\n",
     NAME ":1:63: expected a list for 'trusted_proxies'"},
    {"listeners: [ { name: a, listen: 127.0.0.1:1, trusted_proxies: [localhost], routes: [] } ]\n",
     NAME ":1:64: trusted_proxies entry 'localhost' is not an IPv4 or IPv6 address"},
    {R("{ direct_response: { headers: { x-a: 1, X-A: 2 } } }"),
     NAME ":5:49: header 'X-A' is set twice"},
    {R("{ direct_response: { status: 204, body: x } }"),
     NAME ":5:49: a 204 response cannot have a body"},
    {R("{ direct_response: { body: [x] } }"), NAME ":5:36: 'body' must be a string"},
    /* clusters */
    {LC("  []\n"), NAME ":3:3: expected a mapping for 'clusters'"},
    {LC("  app: [1]\n"), NAME ":3:8: expected a mapping for cluster 'app'"},
    {LC("  app: { endpoints: [127.0.0.1:9], lb: fastest }\n"),
     NAME ":3:40: 'lb' must be round_robin, least_request or random"},
    {LC("  app: { endpoint: [127.0.0.1:9] }\n"),
     NAME ":3:10: unknown key 'endpoint' in cluster 'app'"},
    {LC("  app: { lb: random }\n"), NAME ":3:8: cluster 'app' is missing required key 'endpoints'"},
    {LC("  app: { endpoints: [] }\n"), NAME ":3:21: 'endpoints' must not be empty"},
    {LC("  app: { endpoints: 127.0.0.1:9 }\n"), NAME ":3:21: expected a list for 'endpoints'"},
    {LC("  \"a b\": { endpoints: [127.0.0.1:9] }\n"),
     NAME ":3:3: cluster name 'a b' may contain only printable ASCII without spaces"},
    {LC("  app: { endpoints: [127.0.0.1] }\n"),
     NAME ":3:22: endpoint address '127.0.0.1' needs a port"},
    {LC("  app: { endpoints: [\"127.0.0.1:99999\"] }\n"),
     NAME ":3:22: endpoint address '127.0.0.1:99999' needs a port from 1 to 65535"},
    {LC("  app: { endpoints: [\"bad host:80\"] }\n"),
     NAME ":3:22: endpoint address 'bad host:80' has an invalid host name"},
    {LC("  app: { endpoints: [no-such-host.invalid:80] }\n"),
     NAME ":3:22: cannot resolve endpoint 'no-such-host.invalid:80': Name or service not known"},
    {LC("  app: { endpoints: [\"[::g]:80\"] }\n"),
     NAME ":3:22: cannot resolve endpoint '[::g]:80': Name or service not known"},
    {LC("  app: { endpoints: [127.0.0.1:9, 127.0.0.1:9] }\n"),
     NAME ":3:35: endpoint '127.0.0.1:9' is listed twice in cluster 'app' (use weight instead)"},
    {LC("  app: { endpoints: [ [a] ] }\n"),
     NAME ":3:23: an endpoint must be \"host:port\" or { address: \"host:port\", weight: N }"},
    {LC("  app: { endpoints: [ { weight: 2 } ] }\n"),
     NAME ":3:23: endpoint is missing required key 'address'"},
    {LC("  app: { endpoints: [ { address: 127.0.0.1:9, port: 2 } ] }\n"),
     NAME ":3:47: unknown key 'port' in endpoint"},
    {LC("  app: { endpoints: [ { address: 127.0.0.1:9, weight: -1 } ] }\n"),
     NAME ":3:55: 'weight' must be an integer from 1 to 1000000"},
    {LC("  app: { endpoints: [127.0.0.1:9], connect_timeout: 0s }\n"),
     NAME ":3:53: 'connect_timeout' must be a duration greater than zero, such as 250ms, 5s, 2m "
          "or 1h"},
    {LC("  app: { endpoints: [127.0.0.1:9], idle_timeout: forever }\n"),
     NAME ":3:50: 'idle_timeout' must be a duration greater than zero, such as 250ms, 5s, 2m or "
          "1h"},
    {LC("  app: { endpoints: [127.0.0.1:9], max_idle: 65537 }\n"),
     NAME ":3:46: 'max_idle' must be an integer from 0 to 65536"},
    {LC("  app: { endpoints: [127.0.0.1:9], max_response_head: 512 }\n"),
     NAME ":3:55: 'max_response_head' must be from 1024 to 8388608 bytes"},
    {LC("  app: { endpoints: [127.0.0.1:9], default_host: \"u@a.test\" }\n"),
     NAME ":3:50: default_host 'u@a.test' is not a valid host[:port]"},
    {LC("  app: { endpoints: [127.0.0.1:9], default_host: \"a.test:70000\" }\n"),
     NAME ":3:50: default_host 'a.test:70000' is not a valid host[:port]"},
    {LC("  app: { endpoints: [127.0.0.1:9], max_response_headers: 0 }\n"),
     NAME ":3:58: 'max_response_headers' must be an integer from 1 to 10000"},
    {LC("  app: { endpoints: [127.0.0.1:9], max_connections: 0 }\n"),
     NAME ":3:53: 'max_connections' must be an integer from 1 to 1000000"},
    {LC("  app: { endpoints: [127.0.0.1:9], max_pending: 1000001 }\n"),
     NAME ":3:49: 'max_pending' must be an integer from 0 to 1000000"},
    /* realm: visible ASCII and spaces only (it is sent in WWW-Authenticate) */
    {PV("\"a\\tb\""), NAME ":9:14: " REALM_ERR},
    {PV("\"a\\x01b\""), NAME ":9:14: " REALM_ERR},
    {PV("\"a\\x7fb\""), NAME ":9:14: " REALM_ERR},
    {PV("\"a\\xe9b\""), NAME ":9:14: " REALM_ERR},
    {PV("\"a\\rb\""), NAME ":9:14: " REALM_ERR},
    {PV("'a\"b'"), NAME ":9:14: " REALM_ERR},
    {PV("'a\\b'"), NAME ":9:14: " REALM_ERR},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, max_connections: 0 }\n",
     NAME ":2:54: 'max_connections' must be an integer from 1 to 1000000"},
    {"listeners:\n  - { name: a, listen: 127.0.0.1:1, max_connections_per_address: -1 }\n",
     NAME ":2:66: 'max_connections_per_address' must be an integer from 0 to 1000000"},
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

/* The issuer's http:// is for this host's loopback only: the whole host
 * must be localhost, 127.0.0.0/8 or [::1], not a name that starts so. */
static void test_issuer_http_only_on_loopback(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "http://localhost", "http://localhost:8080", "http://127.0.0.1:9/",  "http://127.255.0.1",
        "http://[::1]",     "http://[::1]:80",       "https://a.example.com"};
    static const char *const refused[] = {
        "http://localhost.evil.example", "http://127.evil.example", "http://127.0.0.1.nip.io",
        "http://[::1].evil.example",     "http://128.0.0.1",        "http://127.1:80",
        "http://localhost:80x",          "http://localhostx",       "http://[::1]x:80"};
    char yaml[512];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]) + sizeof(refused) / sizeof(refused[0]); i++) {
        int good = i < sizeof(ok) / sizeof(ok[0]);
        const char *u = good ? ok[i] : refused[i - sizeof(ok) / sizeof(ok[0])];
        snprintf(yaml, sizeof(yaml),
                 "issuer: { issuer: \"%s\" }\n"
                 "listeners: [ { name: a, listen: 127.0.0.1:1, routes: [ { issuer: {} } ] } ]\n",
                 u);
        gh_config_error_t err;
        memset(&err, 0, sizeof(err));
        gh_config_t *cfg = load(yaml, &err);
        if (good && cfg == NULL)
            fail_msg("%s refused: %s", u, err.msg);
        if (!good && cfg != NULL)
            fail_msg("%s accepted", u);
        if (!good && strstr(err.msg, "not loopback") == NULL)
            fail_msg("%s: %s", u, err.msg);
        gh_config_free(cfg);
    }
}

/* The issuer's credential parameters are masked in the access log's
 * query, beside the operator's own names, each once. */
static void test_issuer_masks_credentials_in_the_access_log(void **state)
{
    (void)state;
    gh_config_t *cfg =
        load_ok("access_log: { secret_query: [api_key, token] }\n"
                "issuer: { issuer: \"https://a.example\" }\n"
                "listeners: [ { name: a, listen: 127.0.0.1:1, routes: [ { issuer: {} } ] } ]\n");
    static const char *const want[] = {"api_key", "token", "client_secret", "client_assertion"};
    const gh_access_log_conf_t *l = &cfg->access_log;
    assert_int_equal(l->num_secret_query, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(l->secret_query[i], want[i]);
    assert_null(l->secret_query[4]);
    gh_config_free(cfg);
    cfg = load_ok("listeners: [ { name: a, listen: 127.0.0.1:1, routes: [ { to: app } ] } ]\n" C);
    assert_int_equal(cfg->access_log.num_secret_query, 0);
    gh_config_free(cfg);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_order_and_styles),
        cmocka_unit_test(test_workers_and_limits_at_bounds),
        cmocka_unit_test(test_direct_body_with_nul),
        cmocka_unit_test(test_localhost_resolves),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_reader_error),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_duplicate_key_in_large_mapping),
        cmocka_unit_test(test_node_and_size_caps),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_issuer_http_only_on_loopback),
        cmocka_unit_test(test_issuer_masks_credentials_in_the_access_log),
    };
    enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]) };
    enum { NERR = sizeof(error_cases) / sizeof(error_cases[0]) };
    static struct CMUnitTest tests[NFIXED + NERR];
    static char names[NERR][32];

    setenv("GH_CONFIG_NO_DNS", "1", 1);
    memcpy(tests, fixed, sizeof(fixed));
    for (size_t i = 0; i < NERR; i++) {
        snprintf(names[i], sizeof(names[i]), "error_case_%03zu", i);
        tests[NFIXED + i] = (struct CMUnitTest){.name = names[i],
                                                .test_func = test_error_case,
                                                .initial_state = (void *)&error_cases[i]};
    }
    return _cmocka_run_group_tests("config", tests, NFIXED + NERR, NULL, NULL);
}
