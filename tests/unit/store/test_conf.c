/*
 * src/store/conf.c through the config loader: the top-level state_dir and
 * store sections, their defaults, and every refusal at its line:col.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/config.h>
#include <gatehouse/store.h>

#include "store/backend.h"

#define LISTENERS                                                                                  \
    "listeners:\n"                                                                                 \
    "  - { name: l, listen: 127.0.0.1:1, routes: [ { direct_response: { status: 200 } } ] }\n"

static gh_config_t *load_ok(const char *yaml)
{
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("t.yaml", yaml, strlen(yaml), &err);
    if (cfg == NULL)
        fail_msg("unexpected error: %s", err.msg);
    return cfg;
}

static void load_err(const char *yaml, const char *want)
{
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("t.yaml", yaml, strlen(yaml), &err);
    if (cfg != NULL) {
        gh_config_free(cfg);
        fail_msg("loaded, expected: %s", want);
    }
    if (strcmp(err.msg, want) != 0)
        fail_msg("got '%s', expected '%s'", err.msg, want);
}

static void test_defaults(void **state)
{
    (void)state;
    gh_config_t *cfg = load_ok(LISTENERS);
    assert_string_equal(cfg->state_dir, "state");
    assert_int_equal(cfg->store.kind, GH_STORE_SQLITE);
    assert_string_equal(cfg->store.path, "state/gatehouse.db");
    assert_int_equal(cfg->store.path_is_default, 1);
    assert_string_equal(cfg->store.state_dir, "state");
    assert_int_equal(cfg->store.busy_timeout_ms, 5000);
    assert_int_equal(cfg->store.max_pending, 1024);
    assert_int_equal(cfg->store.usage_flush_ms, 1000);
    gh_config_free(cfg);
    /* the state directory moves the default file */
    cfg = load_ok("state_dir: /var/lib/gatehouse/\n" LISTENERS);
    assert_string_equal(cfg->store.path, "/var/lib/gatehouse/gatehouse.db");
    assert_int_equal(cfg->store.path_is_default, 1);
    gh_config_free(cfg);
    cfg = load_ok("store: {}\n" LISTENERS);
    assert_string_equal(cfg->store.path, "state/gatehouse.db");
    gh_config_free(cfg);
}

static void test_sqlite(void **state)
{
    (void)state;
    gh_config_t *cfg = load_ok("store:\n"
                               "  kind: sqlite\n"
                               "  path: /tmp/keys.db\n"
                               "  busy_timeout: 250ms\n"
                               "  max_pending: 64\n"
                               "  usage_flush: 10s\n" LISTENERS);
    assert_string_equal(cfg->store.path, "/tmp/keys.db");
    assert_int_equal(cfg->store.path_is_default, 0);
    assert_int_equal(cfg->store.busy_timeout_ms, 250);
    assert_int_equal(cfg->store.max_pending, 64);
    assert_int_equal(cfg->store.usage_flush_ms, 10000);
    gh_config_free(cfg);
}

static void test_redis(void **state)
{
    (void)state;
    gh_config_t *cfg = load_ok("store:\n"
                               "  kind: redis\n"
                               "  address: '[::1]:6390'\n"
                               "  timeout: 100ms\n"
                               "  pool: 4\n"
                               "  prefix: 'gh:'\n"
                               "  max_pending: 64\n" LISTENERS);
    assert_int_equal(cfg->store.kind, GH_STORE_REDIS);
    assert_string_equal(cfg->store.address, "[::1]:6390");
    assert_int_equal(cfg->store.timeout_ms, 100);
    assert_int_equal(cfg->store.pool, 4);
    assert_string_equal(cfg->store.prefix, "gh:");
    assert_int_equal(cfg->store.max_pending, 64);
    gh_config_free(cfg);
    /* the defaults */
    cfg = load_ok("store: { kind: redis }\n" LISTENERS);
    assert_int_equal(cfg->store.kind, GH_STORE_REDIS);
    assert_string_equal(cfg->store.address, "127.0.0.1:6379");
    assert_int_equal(cfg->store.timeout_ms, 250);
    assert_int_equal(cfg->store.pool, 2);
    assert_string_equal(cfg->store.prefix, "gatehouse:");
    gh_config_free(cfg);
}

static void test_refusals(void **state)
{
    (void)state;
    load_err("store: sqlite\n" LISTENERS, "t.yaml:1:8: expected a mapping for store");
    load_err("store: { kind: mysql }\n" LISTENERS,
             "t.yaml:1:16: store kind must be sqlite or redis, not 'mysql'");
    load_err("store: { kind: Redis }\n" LISTENERS,
             "t.yaml:1:16: store kind must be sqlite or redis, not 'Redis'");
    load_err("store: { kind: redis, busy_timeout: 1s }\n" LISTENERS,
             "t.yaml:1:23: 'busy_timeout' is a key of a sqlite store, and this store is redis");
    load_err("store: { pth: x }\n" LISTENERS, "t.yaml:1:10: unknown key 'pth' in store");
    load_err("store: { path: '' }\n" LISTENERS, "t.yaml:1:16: path must not be empty");
    load_err("store: { address: 127.0.0.1:6379 }\n" LISTENERS,
             "t.yaml:1:10: 'address' is a key of a redis store, and this store is sqlite");
    load_err("store: { prefix: x }\n" LISTENERS,
             "t.yaml:1:10: 'prefix' is a key of a redis store, and this store is sqlite");
    load_err("store: { busy_timeout: 2m }\n" LISTENERS,
             "t.yaml:1:24: 'busy_timeout' must be at most 1m");
    load_err("store: { max_pending: 0 }\n" LISTENERS,
             "t.yaml:1:23: 'max_pending' must be an integer from 1 to 1000000");
    load_err("store: { usage_flush: 0s }\n" LISTENERS,
             "t.yaml:1:23: 'usage_flush' must be a duration greater than zero, such as 250ms, 5s, "
             "2m or 1h");
    load_err("state_dir: ''\n" LISTENERS, "t.yaml:1:12: state_dir must not be empty");
    load_err("state_dir: [a]\n" LISTENERS, "t.yaml:1:12: 'state_dir' must be a string");
}

static void test_redis_keys_are_checked(void **state)
{
    (void)state;
    /* Each refusal of a redis store's keys at its position (the parser
     * is reached through gh_store_conf_parse_kind on a document directly). */
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"{ address: 'redis.internal:6379', timeout: 100ms, pool: 4, prefix: 'gh:' }", NULL},
        {"{ address: '[::1]:6379' }", NULL},
        {"{ address: '127.0.0.1' }", "t.yaml:1:12: store address '127.0.0.1' needs a port"},
        {"{ address: ':6379' }", "t.yaml:1:12: store address ':6379' needs a host"},
        {"{ address: 'h:0' }",
         "t.yaml:1:12: store address 'h:0' has a port that is not a number from 1 to 65535"},
        {"{ address: 'h:65536' }",
         "t.yaml:1:12: store address 'h:65536' has a port that is not a number from 1 to 65535"},
        {"{ address: '::1:6379' }",
         "t.yaml:1:12: store address '::1:6379' has an IPv6 host without brackets"},
        {"{ address: 'a b:1' }",
         "t.yaml:1:12: store address 'a b:1' has a character that cannot be in a host"},
        {"{ address: 'user@h:1' }",
         "t.yaml:1:12: store address 'user@h:1' has a character that cannot be in a host"},
        {"{ pool: 0 }", "t.yaml:1:9: 'pool' must be an integer from 1 to 64"},
        {"{ timeout: 2m }", "t.yaml:1:12: 'timeout' must be at most 1m"},
        {"{ prefix: 'a b' }", "t.yaml:1:11: store prefix must be printable ASCII without spaces"},
        {"{ path: x.db }",
         "t.yaml:1:3: 'path' is a key of a sqlite store, and this store is redis"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gh_config_error_t err = {""};
        gh_yaml_doc_t doc;
        assert_int_equal(
            gh_yaml_doc_init(&doc, "t.yaml", cases[i].yaml, strlen(cases[i].yaml), &err), 0);
        /* a redis store: the kind key is left out, and the kind set
         * before the keys are read */
        gh_store_conf_t c;
        int rc = gh_store_conf_parse_kind(&doc, doc.root, NULL, GH_STORE_REDIS, &c);
        if (cases[i].want == NULL) {
            if (rc != 0)
                fail_msg("case %zu: %s", i, err.msg);
        } else {
            assert_int_equal(rc, -EINVAL);
            if (strcmp(err.msg, cases[i].want) != 0)
                fail_msg("case %zu: got '%s', expected '%s'", i, err.msg, cases[i].want);
        }
        gh_store_conf_dispose(&c);
        gh_yaml_doc_dispose(&doc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sqlite),
        cmocka_unit_test(test_redis),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_redis_keys_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
