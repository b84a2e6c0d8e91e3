/* src/admin/issuer_keys.c: routing of /issuer/keys paths, the rotate body's
 * strict parser, and the answers of list and rotate over a real directory. */
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

#include "admin/issuer_keys.h"

#define T0 1700000000LL

static int route(const char *method, const char *path, gh_admin_ik_route_t *rt, int *status)
{
    gh_admin_reply_t r;
    int rc = gh_admin_ik_route(method, strlen(method), path, strlen(path), rt, &r);
    *status = rc == 0 ? 0 : r.status;
    if (rc != 0)
        gh_admin_reply_dispose(&r);
    return rc;
}

static void test_paths_and_methods(void **state)
{
    (void)state;
    gh_admin_ik_route_t rt;
    int st;
    assert_true(gh_admin_ik_is_path("/issuer/keys", 12));
    assert_true(gh_admin_ik_is_path("/issuer/keys/rotate", 19));
    assert_false(gh_admin_ik_is_path("/issuer/keysx", 13));
    assert_false(gh_admin_ik_is_path("/issuer/key", 11));
    assert_int_equal(route("GET", "/issuer/keys", &rt, &st), 0);
    assert_int_equal(rt.op, GH_IK_LIST);
    assert_int_equal(rt.body, GH_AK_BODY_NONE);
    assert_int_equal(route("HEAD", "/issuer/keys", &rt, &st), 0);
    assert_true(rt.head);
    assert_int_equal(route("POST", "/issuer/keys/rotate", &rt, &st), 0);
    assert_int_equal(rt.op, GH_IK_ROTATE);
    assert_int_equal(rt.body, GH_AK_BODY_JSON);
    assert_int_equal(route("POST", "/issuer/keys", &rt, &st), -1);
    assert_int_equal(st, 405);
    assert_int_equal(route("GET", "/issuer/keys/rotate", &rt, &st), -1);
    assert_int_equal(st, 405);
    assert_int_equal(route("post", "/issuer/keys/rotate", &rt, &st), -1); /* methods are exact */
    assert_int_equal(st, 405);
    assert_int_equal(route("POST", "/issuer/keys/rotate/", &rt, &st), -1);
    assert_int_equal(st, 404);
    assert_int_equal(route("POST", "/issuer/keys/Rotate", &rt, &st), -1);
    assert_int_equal(st, 404);
}

static int parse(const char *body, gh_admin_ik_rotate_t *o, char *why)
{
    return gh_admin_ik_parse_rotate(body, strlen(body), o, why, 200);
}

static void test_rotate_body(void **state)
{
    (void)state;
    gh_admin_ik_rotate_t o;
    char why[200];
    assert_int_equal(parse("", &o, why), 0);
    assert_int_equal(o.alg, GH_JWT_ALG_UNKNOWN);
    assert_int_equal(o.lead, -1);
    assert_int_equal(o.now, 0);
    assert_int_equal(parse("{}", &o, why), 0);
    assert_int_equal(parse("{\"alg\":\"RS256\",\"bits\":4096,\"lead\":\"1h\"}", &o, why), 0);
    assert_int_equal(o.alg, GH_JWT_RS256);
    assert_int_equal(o.bits, 4096);
    assert_int_equal(o.lead, 3600);
    assert_int_equal(parse("{\"now\":true}", &o, why), 0);
    assert_int_equal(o.now, 1);
    static const char *const bad[] = {
        "{\"alg\":\"HS256\"}",
        "{\"alg\":\"es256\"}",
        "{\"alg\":null}",
        "{\"bits\":1024}",
        "{\"bits\":\"2048\"}",
        "{\"bits\":2048.0}",
        "{\"lead\":600}",
        "{\"lead\":\"-5m\"}",
        "{\"lead\":\"10x\"}",
        "{\"now\":1}",
        "{\"now\":\"true\"}",
        "{\"now\":true,\"lead\":\"6m\"}",
        "{\"Alg\":\"ES256\"}",
        "{\"alg\":\"ES256\",\"alg\":\"ES256\"}",
        "[]",
        "\"x\"",
        "{",
        "{} {}",
        "{\"alg\":\"ES256\"}x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        if (parse(bad[i], &o, why) != -EINVAL || why[0] == '\0')
            fail_msg("accepted: %s", bad[i]);
    }
    /* A NUL after a literal is refused, not read up to. */
    assert_int_equal(gh_admin_ik_parse_rotate("{\"now\":true}\0x", 14, &o, why, sizeof(why)),
                     -EINVAL);
}

static char dir[64];

static gh_admin_reply_t handle(const gh_issuer_keys_conf_t *c, gh_admin_ik_op_t op,
                               const char *query, const char *body, int64_t now, int *changed)
{
    gh_admin_ik_route_t rt = {op, op == GH_IK_ROTATE ? GH_AK_BODY_JSON : GH_AK_BODY_NONE, 0};
    gh_admin_reply_t r;
    *changed = gh_admin_ik_handle(c, &rt, query, strlen(query), body, strlen(body), now, &r);
    assert_non_null(r.body);
    return r;
}

static void test_list_and_rotate(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/gh_ik_admin_XXXXXX");
    assert_non_null(mkdtemp(dir));
    gh_issuer_keys_conf_t c;
    assert_int_equal(gh_issuer_keys_conf_init(&c, dir), 0);
    int changed;
    gh_admin_reply_t r = handle(&c, GH_IK_LIST, "", "", T0, &changed);
    assert_int_equal(r.status, 404);
    assert_false(changed);
    gh_admin_reply_dispose(&r);
    r = handle(&c, GH_IK_ROTATE, "", "", T0, &changed);
    assert_int_equal(r.status, 201);
    assert_true(changed);
    assert_non_null(strstr(r.body, "\"previous\": null"));
    gh_admin_reply_dispose(&r);
    r = handle(&c, GH_IK_ROTATE, "", "{\"alg\":\"EdDSA\",\"lead\":\"10m\"}", T0 + 5, &changed);
    assert_int_equal(r.status, 201);
    assert_non_null(strstr(r.body, "\"EdDSA\""));
    assert_non_null(strstr(r.body, "\"sign_from\": 1700000605"));
    gh_admin_reply_dispose(&r);
    r = handle(&c, GH_IK_LIST, "", "", T0 + 6, &changed);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"state\": \"signing\""));
    assert_non_null(strstr(r.body, "\"state\": \"published\""));
    gh_admin_reply_dispose(&r);
    /* Refusals: a query, a lead under the JWKS max-age, bits for EC. */
    r = handle(&c, GH_IK_ROTATE, "now=1", "", T0 + 7, &changed);
    assert_int_equal(r.status, 400);
    assert_false(changed);
    gh_admin_reply_dispose(&r);
    r = handle(&c, GH_IK_ROTATE, "", "{\"lead\":\"1m\"}", T0 + 7, &changed);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "max-age"));
    gh_admin_reply_dispose(&r);
    r = handle(&c, GH_IK_ROTATE, "", "{\"bits\":3072}", T0 + 7, &changed);
    assert_int_equal(r.status, 400);
    gh_admin_reply_dispose(&r);
    /* A directory others may write: 500, said so, nothing rotated. */
    assert_int_equal(chmod(c.dir, 0777), 0);
    r = handle(&c, GH_IK_ROTATE, "", "", T0 + 8, &changed);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "keys_unusable"));
    assert_false(changed);
    gh_admin_reply_dispose(&r);
    r = handle(&c, GH_IK_LIST, "", "", T0 + 8, &changed);
    assert_int_equal(r.status, 500);
    gh_admin_reply_dispose(&r);
    assert_int_equal(chmod(c.dir, 0700), 0);
    gh_issuer_keys_conf_dispose(&c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_and_methods),
        cmocka_unit_test(test_rotate_body),
        cmocka_unit_test(test_list_and_rotate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
