/*
 * The client connection cap per worker derived from RLIMIT_NOFILE
 * (src/proxy/fdlimit.c): two descriptors per connection, a headroom for the
 * process and for each worker, idle pools of all endpoints but the largest,
 * never above the listeners' max_connections, never below one. And, once
 * the admin API ran out of descriptors, the room the data plane must leave
 * it, probed under a lowered RLIMIT_NOFILE in this process.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

/* ---- room once the admin API ran out ---- */

#define LOW_LIMIT 64

static int filler[LOW_LIMIT];
static int num_filler;

/* Opens descriptors until the (lowered) limit refuses one. */
static void fill(void)
{
    int fd;
    while (num_filler < LOW_LIMIT && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        filler[num_filler++] = fd;
    assert_int_equal(open("/dev/null", O_RDONLY | O_CLOEXEC), -1);
    assert_int_equal(errno, EMFILE);
}

/* Leaves exactly n descriptors free. */
static void leave_free(int n)
{
    fill();
    assert_true(num_filler >= n);
    for (int i = 0; i < n; i++)
        close(filler[--num_filler]);
}

/* How many descriptors are free now (the table is left as it was). */
static int count_free(void)
{
    int fds[LOW_LIMIT], n = 0;
    while (n < LOW_LIMIT && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return n;
}

static void test_room_once_the_admin_ran_out(void **state)
{
    (void)state;
    struct rlimit was, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    low = was;
    low.rlim_cur = LOW_LIMIT;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

    /* Not run out: the data plane takes what it finds, and nothing is
     * probed, even with no descriptor free. */
    leave_free(0);
    assert_false(gh_fdlimit_is_short());
    gh_fdlimit_lock();
    assert_true(gh_fdlimit_room());
    gh_fdlimit_unlock();

    gh_fdlimit_lock();
    gh_fdlimit_ran_out();
    gh_fdlimit_unlock();
    assert_true(gh_fdlimit_is_short());

    /* Fewer than GH_FDLIMIT_KEEP free: no room; the probe gives back what
     * it opened. */
    for (int n = 0; n < GH_FDLIMIT_KEEP; n++) {
        leave_free(n);
        gh_fdlimit_lock();
        assert_false(gh_fdlimit_room());
        gh_fdlimit_unlock();
        assert_int_equal(count_free(), n);
        assert_true(gh_fdlimit_is_short());
    }
    /* GH_FDLIMIT_KEEP up to GH_FDLIMIT_CLEAR - 1 free: room, still short. */
    for (int n = GH_FDLIMIT_KEEP; n < GH_FDLIMIT_CLEAR; n++) {
        leave_free(n);
        gh_fdlimit_lock();
        assert_true(gh_fdlimit_room());
        gh_fdlimit_unlock();
        assert_int_equal(count_free(), n);
        assert_true(gh_fdlimit_is_short());
    }
    /* GH_FDLIMIT_CLEAR free: the process has room again. */
    leave_free(GH_FDLIMIT_CLEAR);
    gh_fdlimit_lock();
    assert_true(gh_fdlimit_room());
    gh_fdlimit_unlock();
    assert_false(gh_fdlimit_is_short());
    assert_int_equal(count_free(), GH_FDLIMIT_CLEAR);
    /* And then no probe again. */
    leave_free(0);
    gh_fdlimit_lock();
    assert_true(gh_fdlimit_room());
    gh_fdlimit_unlock();

    while (num_filler > 0)
        close(filler[--num_filler]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_descriptors_per_connection_after_headroom),
        cmocka_unit_test(test_listeners_add_up_and_other_pools_count),
        cmocka_unit_test(test_room_once_the_admin_ran_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
