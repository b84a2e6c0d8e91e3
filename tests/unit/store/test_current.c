/*
 * src/store/current.c: the process's store. Nothing is opened before it
 * is asked for; the same configuration keeps the same object (with its
 * pending usage counts) across a selection; another configuration gets
 * another object, and a rollback puts the previous one back; a store that
 * cannot be opened is tried again at the next ask; stop and free leave no
 * handle on the loop.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <gatehouse/store.h>

static char dir[] = "/tmp/gh-current-XXXXXX";

static gh_store_conf_t conf_at(const char *name)
{
    gh_store_conf_t c;
    char p[256];
    assert_int_equal(gh_store_conf_default(&c, NULL), 0);
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    free(c.path);
    c.path = strdup(p);
    c.path_is_default = 0;
    return c;
}

static int exists(const char *name)
{
    char p[256];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

static void test_current(void **state)
{
    (void)state;
    uv_loop_t loop;
    gh_store_error_t err;
    assert_int_equal(uv_loop_init(&loop), 0);
    gh_store_current_init(&loop);
    assert_null(gh_store_current_get(&err));
    assert_non_null(strstr(err.msg, "no store is configured"));

    /* selected, not opened until asked for */
    gh_store_conf_t a = conf_at("a.db"), b = conf_at("b.db");
    assert_int_equal(gh_store_current_select(&a), 0);
    gh_store_current_commit();
    assert_false(exists("a.db"));
    gh_store_t *s1 = gh_store_current_get(&err);
    assert_non_null(s1);
    assert_true(exists("a.db"));
    gh_store_t *s2 = gh_store_current_get(&err);
    assert_ptr_equal(s1, s2);
    gh_store_unref(s2);

    /* a reload with the same section keeps the object and what it holds */
    gh_store_usage_add(s1, NULL, 0, "aaaaaaaaaaaa", 86400 * 100, 5);
    assert_int_equal(gh_store_current_select(&a), 0);
    s2 = gh_store_current_get(&err);
    assert_ptr_equal(s1, s2);
    gh_store_unref(s2);
    gh_store_current_commit();
    s2 = gh_store_current_get(&err);
    assert_ptr_equal(s1, s2);
    gh_store_unref(s2);

    /* another store: a new object; a failed reload puts the old one back */
    assert_int_equal(gh_store_current_select(&b), 0);
    s2 = gh_store_current_get(&err);
    assert_non_null(s2);
    assert_ptr_not_equal(s1, s2);
    gh_store_unref(s2);
    gh_store_current_rollback();
    s2 = gh_store_current_get(&err);
    assert_ptr_equal(s1, s2);
    gh_store_unref(s2);

    /* the same file with other settings is another object too */
    gh_store_conf_t a2 = conf_at("a.db");
    a2.busy_timeout_ms = 1000;
    assert_int_equal(gh_store_current_select(&a2), 0);
    gh_store_current_commit();
    s2 = gh_store_current_get(&err);
    assert_ptr_not_equal(s1, s2);
    /* the old object's pending counts were written when it stopped */
    uint64_t counts[1];
    assert_int_equal(gh_store_usage_get(s2, "aaaaaaaaaaaa", 100, 100, counts, &err), 0);
    assert_int_equal(counts[0], 5);
    gh_store_unref(s2);
    gh_store_unref(s1); /* ours, taken before: still valid until here */

    /* a store that cannot be opened: NULL, and tried again at each ask */
    gh_store_conf_t bad = conf_at("no/such/dir/c.db");
    assert_int_equal(gh_store_current_select(&bad), 0);
    gh_store_current_commit();
    assert_null(gh_store_current_get(&err));
    assert_true(err.msg[0] != '\0');
    char d[256];
    snprintf(d, sizeof(d), "%s/no/such/dir", dir);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", d);
    assert_int_equal(system(cmd), 0);
    s2 = gh_store_current_get(&err);
    assert_non_null(s2);
    gh_store_unref(s2);

    gh_store_current_stop();
    gh_store_current_free();
    assert_null(gh_store_current_get(&err));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0); /* every timer closed */
    gh_store_conf_dispose(&a);
    gh_store_conf_dispose(&a2);
    gh_store_conf_dispose(&b);
    gh_store_conf_dispose(&bad);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_current),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return rc;
}
