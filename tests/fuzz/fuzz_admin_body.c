/* libFuzzer target: what the admin API reads from a request to manage API
 * keys (src/admin/apikeys.c): the JSON bodies of create, rotate and revoke,
 * the query strings of every operation, and the routing of /apikeys paths.
 * Checks that a refusal says why in printable ASCII (it goes into a JSON
 * detail and to terminals), that an accepted create has its consumer and
 * scopes without separators inside one, and that a route's id is a key id.
 * Also the body of POST /issuer/keys/rotate (src/admin/issuer_keys.c) and
 * the routing of /issuer/keys paths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/apikeys.h"
#include "admin/issuer_keys.h"

static void check_why(int rc, const char *why)
{
    if (rc == 0)
        return;
    if (why[0] == '\0' && rc != -12 /* ENOMEM */)
        abort();
    for (const char *p = why; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *s = malloc(size ? size : 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    char why[400];

    gh_admin_ak_create_t c;
    why[0] = '\0';
    int rc = gh_admin_ak_parse_create(s, size, &c, why, sizeof(why));
    check_why(rc, why);
    if (rc == 0) {
        if (c.consumer == NULL || c.expires_in < 0)
            abort();
        if (c.scopes != NULL && strpbrk(c.scopes, " \t") != NULL)
            abort();
        gh_admin_ak_create_dispose(&c);
    }
    gh_apikey_rotate_t ro;
    why[0] = '\0';
    rc = gh_admin_ak_parse_rotate(s, size, &ro, why, sizeof(why));
    check_why(rc, why);
    if (rc == 0 && (ro.grace < 0 || ro.expires_in < -1))
        abort();
    why[0] = '\0';
    check_why(gh_admin_ak_parse_revoke(s, size, why, sizeof(why)), why);
    gh_admin_ik_rotate_t ik;
    why[0] = '\0';
    rc = gh_admin_ik_parse_rotate(s, size, &ik, why, sizeof(why));
    check_why(rc, why);
    if (rc == 0 && ((ik.alg != GH_JWT_ALG_UNKNOWN && ik.alg != GH_JWT_ES256 &&
                     ik.alg != GH_JWT_RS256 && ik.alg != GH_JWT_EDDSA) ||
                    (ik.bits != 0 && ik.bits != 2048 && ik.bits != 3072 && ik.bits != 4096) ||
                    ik.lead < -1 || (ik.now && ik.lead >= 0)))
        abort();
    char *ikpath = malloc(size + 13);
    if (ikpath != NULL) {
        memcpy(ikpath, "/issuer/keys", 12);
        memcpy(ikpath + 12, s, size);
        static const char *const ikm[] = {"GET", "HEAD", "POST", "PUT"};
        for (size_t m = 0; m < 4; m++) {
            gh_admin_ik_route_t rt;
            gh_admin_reply_t r;
            if (!gh_admin_ik_is_path(ikpath, size + 12))
                break;
            if (gh_admin_ik_route(ikm[m], strlen(ikm[m]), ikpath, size + 12, &rt, &r) == 0) {
                if (rt.op != GH_IK_LIST && rt.op != GH_IK_ROTATE)
                    abort();
            } else {
                if (r.body == NULL || (r.status != 404 && r.status != 405))
                    abort();
                gh_admin_reply_dispose(&r);
            }
        }
        free(ikpath);
    }

    /* the input as a query string of each operation */
    for (int op = GH_AK_LIST; op <= GH_AK_USAGE; op++) {
        gh_admin_ak_query_t q;
        why[0] = '\0';
        rc = gh_admin_ak_parse_query((gh_admin_ak_op_t)op, s, size, &q, why, sizeof(why));
        check_why(rc, why);
        if (rc == 0) {
            if (q.days < 1 || q.days > 366 || q.num_plan_map > GH_ADMIN_AK_MAX_PLAN_MAP)
                abort();
            for (size_t i = 0; i < q.num_plan_map; i++)
                if (q.plan_map[i].usage_plan_id[0] == '\0' || q.plan_map[i].plan[0] == '\0')
                    abort();
            gh_admin_ak_query_dispose(&q);
        }
    }

    /* the input as a path after /apikeys, for each method */
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT"};
    char *path = malloc(size + 9);
    if (path != NULL) {
        memcpy(path, "/apikeys/", 9);
        memcpy(path + 9, s, size);
        for (size_t m = 0; m < 4; m++) {
            gh_admin_ak_route_t rt;
            gh_admin_reply_t r;
            memset(&r, 0, sizeof(r));
            if (gh_admin_ak_route(methods[m], strlen(methods[m]), path, size + 9, &rt, &r) == 0) {
                if (rt.op != GH_AK_LIST && rt.op != GH_AK_CREATE && rt.op != GH_AK_IMPORT &&
                    !gh_apikey_id_valid(rt.id))
                    abort();
            } else if (r.body != NULL && r.status != 404 && r.status != 405) {
                abort();
            }
            gh_admin_reply_dispose(&r);
        }
        free(path);
    }
    free(s);
    return 0;
}
