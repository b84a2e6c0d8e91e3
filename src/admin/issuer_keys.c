/*
 * The issuer's signing-key endpoints (admin/issuer_keys.h). The work is
 * the library's (gatehouse/issuer_keys.h) and the documents are the CLI's
 * (`keys list --json`, `keys rotate --json`). Strict as the /apikeys
 * endpoints are: a misspelt member or a query parameter is refused, never
 * ignored into a rotation with defaults.
 */
#include "admin/issuer_keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/store_json.h>

#define PREFIX "/issuer/keys"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

static void reply_doc(gh_admin_reply_t *r, int status, json_t *doc)
{
    char *s = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    memset(r, 0, sizeof(*r));
    r->status = status;
    if (s == NULL)
        return;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (line == NULL) {
        free(s);
        return;
    }
    line[n++] = '\n';
    line[n] = '\0';
    r->body = line;
    r->len = n;
}

int gh_admin_ik_is_path(const char *path, size_t n)
{
    return (n == PREFIX_LEN && memcmp(path, PREFIX, PREFIX_LEN) == 0) ||
           (n > PREFIX_LEN && memcmp(path, PREFIX "/", PREFIX_LEN + 1) == 0);
}

static int method_is(const char *m, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(m, want, n) == 0;
}

int gh_admin_ik_route(const char *method, size_t mlen, const char *path, size_t plen,
                      gh_admin_ik_route_t *rt, gh_admin_reply_t *out)
{
    int get = method_is(method, mlen, "GET"), head = method_is(method, mlen, "HEAD");
    int post = method_is(method, mlen, "POST");
    const char *allow;
    memset(rt, 0, sizeof(*rt));
    memset(out, 0, sizeof(*out));
    rt->head = head;
    if (plen == PREFIX_LEN) {
        rt->op = GH_IK_LIST;
        allow = "GET, HEAD";
        if (get || head)
            return 0;
    } else if (plen == PREFIX_LEN + 7 && memcmp(path + PREFIX_LEN, "/rotate", 7) == 0) {
        rt->op = GH_IK_ROTATE;
        rt->body = GH_AK_BODY_JSON;
        allow = "POST";
        if (post)
            return 0;
    } else {
        gh_admin_reply_error(out, 404, "not_found",
                             "issuer key paths: /issuer/keys, /issuer/keys/rotate");
        return -1;
    }
    gh_admin_reply_error(out, 405, "method_not_allowed", "this path takes %s", allow);
    if (out->body != NULL)
        snprintf(out->extra, sizeof(out->extra), "allow: %s\r\n", allow);
    return -1;
}

int gh_admin_ik_parse_rotate(const char *body, size_t len, gh_admin_ik_rotate_t *out, char *why,
                             size_t cap)
{
    static const char *const known[] = {"alg", "bits", "lead", "now", NULL};
    json_error_t e;
    int rc = -EINVAL;
    out->alg = GH_JWT_ALG_UNKNOWN;
    out->bits = 0;
    out->lead = -1;
    out->now = 0;
    if (len == 0)
        return 0;
    /* jansson reads past a NUL after a number or a literal: refused first. */
    if (memchr(body, '\0', len) != NULL) {
        snprintf(why, cap, "the body holds a NUL byte");
        return -EINVAL;
    }
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (doc == NULL) {
        if (json_error_code(&e) == json_error_out_of_memory)
            return -ENOMEM;
        snprintf(why, cap, "the body is not acceptable JSON (line %d, column %d)", e.line,
                 e.column);
        return -EINVAL;
    }
    if (!json_is_object(doc)) {
        snprintf(why, cap, "the body must be a JSON object");
        goto out;
    }
    const char *name;
    json_t *v;
    json_object_foreach(doc, name, v)
    {
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], name) != 0)
            i++;
        if (known[i] == NULL) {
            snprintf(why, cap, "unknown member: a rotation takes alg, bits, lead and now");
            goto out;
        }
    }
    if ((v = json_object_get(doc, "alg")) != NULL &&
        (out->alg = gh_issuer_keys_alg(json_string_value(v))) == GH_JWT_ALG_UNKNOWN) {
        snprintf(why, cap, "alg must be \"ES256\", \"RS256\" or \"EdDSA\"");
        goto out;
    }
    if ((v = json_object_get(doc, "bits")) != NULL) {
        json_int_t b = json_is_integer(v) ? json_integer_value(v) : 0;
        if (b != 2048 && b != 3072 && b != 4096) {
            snprintf(why, cap, "bits must be 2048, 3072 or 4096");
            goto out;
        }
        out->bits = (int)b;
    }
    if ((v = json_object_get(doc, "lead")) != NULL &&
        (!json_is_string(v) || gh_apikey_duration_parse(json_string_value(v), &out->lead) != 0)) {
        snprintf(why, cap, "lead must be a duration such as \"6m\" or \"1h\"");
        goto out;
    }
    if ((v = json_object_get(doc, "now")) != NULL) {
        if (!json_is_boolean(v)) {
            snprintf(why, cap, "now must be true or false");
            goto out;
        }
        out->now = json_is_true(v);
    }
    if (out->now && out->lead >= 0) {
        snprintf(why, cap, "now and lead do not go together (now signs at once)");
        goto out;
    }
    rc = 0;
out:
    json_decref(doc);
    return rc;
}

static void reply_keys_error(gh_admin_reply_t *r, int rc, const char *err)
{
    switch (rc) {
    case -EINVAL:
    case -EACCES:
        /* The directory is not usable as it is: an operator must look. */
        gh_admin_reply_error(r, 500, "keys_unusable", "%s", err);
        return;
    case -EBUSY:
    case -ENOSPC:
        gh_admin_reply_error(r, 409, "conflict", "%s", err);
        if (r->body != NULL && rc == -EBUSY)
            snprintf(r->extra, sizeof(r->extra), "retry-after: 1\r\n");
        return;
    default:
        gh_admin_reply_error(r, 503, "service_unavailable", "%s", err);
    }
}

int gh_admin_ik_handle(const gh_issuer_keys_conf_t *conf, const gh_admin_ik_route_t *rt,
                       const char *query, size_t qlen, const char *body, size_t blen, int64_t now,
                       gh_admin_reply_t *out)
{
    char err[512];
    (void)query;
    memset(out, 0, sizeof(*out));
    if (qlen > 0) {
        gh_admin_reply_error(out, 400, "bad_request", "the issuer key paths take no query");
        return 0;
    }
    if (rt->op == GH_IK_LIST) {
        gh_issuer_manifest_t m;
        int rc = gh_issuer_keys_list(conf->dir, &m, err, sizeof(err));
        if (rc == -ENOENT)
            gh_admin_reply_error(out, 404, "not_found",
                                 "no issuer keys yet (the issuer makes the first one when it "
                                 "starts; POST /issuer/keys/rotate makes one now)");
        else if (rc != 0)
            reply_keys_error(out, rc, err);
        else
            reply_doc(out, 200, gh_issuer_keys_json(&m, now));
        return 0;
    }
    gh_admin_ik_rotate_t ro;
    int rc = gh_admin_ik_parse_rotate(body, blen, &ro, err, sizeof(err));
    if (rc == -ENOMEM) {
        gh_admin_reply_error(out, 503, "service_unavailable", "out of memory");
        return 0;
    }
    if (rc != 0) {
        gh_admin_reply_error(out, 400, "bad_request", "%s", err);
        return 0;
    }
    gh_issuer_keys_conf_t c = *conf; /* dir borrowed */
    if (ro.alg != GH_JWT_ALG_UNKNOWN)
        c.alg = ro.alg;
    if (ro.bits != 0) {
        if (c.alg != GH_JWT_RS256) {
            gh_admin_reply_error(out, 400, "bad_request", "bits is for RS256 keys");
            return 0;
        }
        c.rsa_bits = ro.bits;
    }
    if (ro.lead >= 0)
        c.publish_lead = ro.lead;
    if (gh_issuer_keys_conf_check(&c, err, sizeof(err)) != 0) {
        gh_admin_reply_error(out, 400, "bad_request", "%s", err);
        return 0;
    }
    gh_issuer_rotate_result_t res;
    rc = gh_issuer_keys_rotate(&c, ro.now ? GH_ISSUER_ROTATE_NOW : 0, now, &res, err, sizeof(err));
    if (rc != 0) {
        reply_keys_error(out, rc, err);
        return 0;
    }
    reply_doc(out, 201, gh_issuer_rotate_json(&res, now));
    return 1;
}
