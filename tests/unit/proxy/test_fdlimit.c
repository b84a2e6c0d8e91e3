/*
 * The client connection cap per worker derived from RLIMIT_NOFILE
 * (src/proxy/fdlimit.c): two descriptors per connection, a headroom for the
 * process and for each worker, idle pools of all endpoints but the largest,
 * never above the listeners' max_connections, never below one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/config.h>

#include "proxy/fdlimit.h"

static gh_config_t *load(const char *yaml)
{
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    gh_config_error_t err = {{0}};
    gh_config_t *cfg = gh_config_load_buffer("fdlimit.yaml", yaml, strlen(yaml), &err);
    if (cfg == NULL)
        fprintf(stderr, "config: %s\n", err.msg);
    assert_non_null(cfg);
    return cfg;
}

/* One listener (default max_connections 10000), one endpoint. */
static const char one[] = "listeners:\n"
                          "  - name: edge\n"
                          "    listen: 127.0.0.1:18001\n"
                          "    routes: [ { name: all, to: app } ]\n"
                          "clusters:\n"
                          "  app: { endpoints: [\"127.0.0.1:18100\"] }\n";

static void test_two_descriptors_per_connection_after_headroom(void **state)
{
    (void)state;
    gh_config_t *cfg = load(one);
    /* 128 for the process, 8 + 2 per listener for each worker; the only
     * endpoint's idle connections are inside the two per connection. */
    assert_int_equal(gh_fdlimit_conn_cap(cfg, 2, 256), (256 - 128 - 2 * 10) / 2 / 2);
    assert_int_equal(gh_fdlimit_conn_cap(cfg, 1, 1024), (1024 - 128 - 10) / 2);
    /* A limit this small cannot hold the headroom: one connection still. */
    assert_int_equal(gh_fdlimit_conn_cap(cfg, 2, 100), 1);
    assert_int_equal(gh_fdlimit_conn_cap(cfg, 2, 0), 1);
    /* Plenty of descriptors: the listeners' own limit. */
    assert_int_equal(gh_fdlimit_conn_cap(cfg, 4, 1u << 20), 10000);
    assert_int_equal(gh_fdlimit_conn_cap(cfg, 1, UINT64_MAX), 10000);
    gh_config_free(cfg);
}

/* Two listeners (their limits add up), three endpoints with idle pools of
 * 64, 10 (capped by max_connections 10) and 0. */
static const char many[] = "listeners:\n"
                           "  - name: a\n"
                           "    listen: 127.0.0.1:18001\n"
                           "    max_connections: 300\n"
                           "    routes: [ { name: all, to: app } ]\n"
                           "  - name: b\n"
                           "    listen: 127.0.0.1:18002\n"
                           "    max_connections: 200\n"
                           "    routes: [ { name: all, to: app } ]\n"
                           "clusters:\n"
                           "  app: { endpoints: [\"127.0.0.1:18100\", \"127.0.0.1:18101\"] }\n"
                           "  small: { endpoints: [\"127.0.0.1:18102\"], max_connections: 10 }\n"
                           "  none: { endpoints: [\"127.0.0.1:18103\"], max_idle: 0 }\n";

static void test_listeners_add_up_and_other_pools_count(void **state)
{
    (void)state;
    gh_config_t *cfg = load(many);
    /* idle beyond the largest pool: 64 (app's second) + 10 + 0. */
    uint64_t worker = 8 + 2 * 2 + 64 + 10;
    assert_int_equal(gh_fdlimit_conn_cap(cfg, 3, 2048), (2048 - 128 - 3 * worker) / 3 / 2);
    assert_int_equal(gh_fdlimit_conn_cap(cfg, 3, 1u << 20), 500);
    gh_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_descriptors_per_connection_after_headroom),
        cmocka_unit_test(test_listeners_add_up_and_other_pools_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
