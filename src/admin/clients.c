/*
 * The OAuth-client endpoints of the admin API (admin/clients.h). The work
 * is the store's (gatehouse/store.h) and the documents are the CLI's
 * (gatehouse/store_json.h); this file routes, checks what a request may
 * say, and maps the store's answers to HTTP statuses, as admin/apikeys.c
 * does for keys, and as strictly: every body member is known, typed and
 * given once, and no query parameter is taken.
 */
#include "admin/clients.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <gatehouse/store_json.h>

#define PATHS "/clients, /clients/ID, /clients/ID/revoke, /clients/ID/rotate-secret"

/* A name from a request, for a detail: at most 40 bytes, printable ASCII. */
static void shown(const char *s, size_t n, char *out, size_t cap)
{
    snprintf(out, cap, "%.*s%s", (int)(n > 40 ? 40 : n), s, n > 40 ? "..." : "");
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
}

/* The store's error as an answer (docs/admin.md#errors-of-the-client-endpoints). */
static void reply_store_error(gh_admin_reply_t *r, int rc, const gh_store_error_t *err)
{
    switch (rc) {
    case -ENOENT:
        gh_admin_reply_error(r, 404, "not_found", "%s", err->msg);
        return;
    case -EINVAL:
        gh_admin_reply_error(r, 400, "bad_request", "%s", err->msg);
        return;
    case -EALREADY:
    case -EAGAIN:
    case -EEXIST:
        gh_admin_reply_error(r, 409, "conflict", "%s", err->msg);
        return;
    default:
        gh_admin_reply_error(r, 503, "service_unavailable", "the client store failed: %s",
                             err->msg);
    }
}

static void oom(gh_admin_reply_t *r)
{
    gh_admin_reply_error(r, 503, "service_unavailable", "out of memory");
}

/* ---- routing ---- */

int gh_admin_cl_is_path(const char *path, size_t n)
{
    return (n == 8 && memcmp(path, "/clients", 8) == 0) ||
           (n > 8 && memcmp(path, "/clients/", 9) == 0);
}

static int method_is(const char *m, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(m, want, n) == 0;
}

int gh_admin_cl_route(const char *method, size_t mlen, const char *path, size_t plen,
                      gh_admin_cl_route_t *rt, gh_admin_reply_t *out)
{
    int get = method_is(method, mlen, "GET"), head = method_is(method, mlen, "HEAD");
    int post = method_is(method, mlen, "POST");
    const char *allow;
    char name[64];
    memset(rt, 0, sizeof(*rt));
    rt->head = head;
    if (plen == 8) { /* /clients */
        if (get || head) {
            rt->op = GH_CL_LIST;
            return 0;
        }
        if (post) {
            rt->op = GH_CL_CREATE;
            rt->body = GH_AK_BODY_JSON;
            return 0;
        }
        allow = "GET, HEAD, POST";
        goto not_allowed;
    }
    const char *rest = path + 9, *end = path + plen;
    size_t seg = (size_t)(end - rest);
    const char *slash = memchr(rest, '/', seg);
    if (slash != NULL)
        seg = (size_t)(slash - rest);
    /* The id as it is in the path: percent-encoded bytes are not decoded,
     * so "%67hc_..." is not an id (nor is anything else but the exact form). */
    if (!gh_client_id_valid_n(rest, seg)) {
        shown(rest, seg, name, sizeof(name));
        gh_admin_reply_error(out, 404, "not_found",
                             "'%s' is not a client id (ghc_ and 16 characters of a-z and 2-7); "
                             "client paths: " PATHS,
                             name);
        return -1;
    }
    memcpy(rt->id, rest, GH_CLIENT_ID_LEN);
    rt->id[GH_CLIENT_ID_LEN] = '\0';
    const char *sub = slash ? slash + 1 : NULL;
    size_t sublen = slash ? (size_t)(end - sub) : 0;
    if (sub == NULL) {
        if (get || head) {
            rt->op = GH_CL_SHOW;
            return 0;
        }
        allow = "GET, HEAD";
        goto not_allowed;
    }
    if (sublen == 6 && memcmp(sub, "revoke", 6) == 0) {
        rt->op = GH_CL_REVOKE;
        rt->body = GH_AK_BODY_JSON;
        allow = "POST";
        if (post)
            return 0;
        goto not_allowed;
    }
    if (sublen == 13 && memcmp(sub, "rotate-secret", 13) == 0) {
        rt->op = GH_CL_ROTATE;
        rt->body = GH_AK_BODY_JSON;
        allow = "POST";
        if (post)
            return 0;
        goto not_allowed;
    }
    shown(sub, sublen, name, sizeof(name));
    gh_admin_reply_error(out, 404, "not_found",
                         "no client operation '%s' (a client has /revoke and /rotate-secret)",
                         name);
    return -1;
not_allowed:
    gh_admin_reply_error(out, 405, "method_not_allowed", "this path takes %s", allow);
    if (out->body != NULL)
        snprintf(out->extra, sizeof(out->extra), "allow: %s\r\n", allow);
    return -1;
}

/* ---- bodies ---- */

/* Member name as a string: 1 and *out, 0 absent, -1 (why) not a string. */
static int get_string(json_t *doc, const char *name, const char **out, char *why, size_t cap)
{
    json_t *v = json_object_get(doc, name);
    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_string(v)) {
        snprintf(why, cap, "%s must be a string", name);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

/* Member name, an array of strings each one list item (no separator
 * inside: an element "a b" would read as two), joined with spaces into
 * *out (heap). 1, 0 absent, -1 refused (why), -ENOMEM. */
static int get_list(json_t *doc, const char *name, char **out, char *why, size_t cap)
{
    json_t *a = json_object_get(doc, name);
    *out = NULL;
    if (a == NULL)
        return 0;
    if (!json_is_array(a)) {
        snprintf(why, cap, "%s must be an array of strings", name);
        return -1;
    }
    size_t n = json_array_size(a), total = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e)) {
            snprintf(why, cap, "%s[%zu] must be a string", name, i);
            return -1;
        }
        const char *s = json_string_value(e);
        size_t l = json_string_length(e);
        if (l == 0 || strlen(s) != l || strpbrk(s, " ,\t") != NULL) {
            snprintf(why, cap, "%s[%zu] must be one item: not empty, without spaces or commas",
                     name, i);
            return -1;
        }
        total += l + 1;
    }
    char *p = malloc(total), *o = p;
    if (p == NULL)
        return -ENOMEM;
    *p = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        size_t l = strlen(s);
        if (i > 0)
            *o++ = ' ';
        memcpy(o, s, l);
        o += l;
        *o = '\0';
    }
    *out = p;
    return 1;
}

void gh_admin_cl_create_dispose(gh_admin_cl_create_t *c)
{
    json_decref(c->doc);
    free(c->scopes);
    free(c->audiences);
    free(c->jwks);
    memset(c, 0, sizeof(*c));
}

static int duration(const char *s, const char *name, int64_t min, int64_t max, int64_t *out,
                    char *why, size_t cap)
{
    char v[64];
    if (gh_apikey_duration_parse(s, out) == 0 && *out >= min && *out <= max)
        return 0;
    shown(s, strlen(s), v, sizeof(v));
    snprintf(why, cap, "%s must be a duration such as \"300s\" or \"1h\" (%s); not \"%s\"", name,
             max == GH_CLIENT_TTL_MAX ? "1s to 1d" : "0 to 30d", v);
    return -1;
}

int gh_admin_cl_parse_create(const char *body, size_t len, gh_admin_cl_create_t *out, char *why,
                             size_t cap)
{
    static const char *const known[] = {"name", "scopes",    "audiences", "auth_methods",
                                        "jwks", "token_ttl", NULL};
    int rc;
    memset(out, 0, sizeof(*out));
    if (len == 0) {
        snprintf(why, cap,
                 "creating a client needs a JSON body: {\"name\": \"NAME\", \"audiences\": [...], "
                 "\"scopes\": [...], \"jwks\": {...}, \"auth_methods\": [...], \"token_ttl\": "
                 "\"1h\"}");
        return -EINVAL;
    }
    out->doc = gh_admin_json_object(body, len, known, "create", why, cap, &rc);
    if (out->doc == NULL)
        return rc;
    rc = -EINVAL;
    int r = get_string(out->doc, "name", &out->name, why, cap);
    if (r == 0)
        snprintf(why, cap, "name is required");
    if (r <= 0)
        goto fail;
    if ((r = get_list(out->doc, "audiences", &out->audiences, why, cap)) <= 0) {
        if (r == 0)
            snprintf(why, cap, "audiences is required (the audiences its tokens may name)");
        rc = r == -ENOMEM ? -ENOMEM : -EINVAL;
        goto fail;
    }
    if ((r = get_list(out->doc, "scopes", &out->scopes, why, cap)) < 0) {
        rc = r == -ENOMEM ? -ENOMEM : -EINVAL;
        goto fail;
    }
    char *methods = NULL;
    if ((r = get_list(out->doc, "auth_methods", &methods, why, cap)) < 0) {
        rc = r == -ENOMEM ? -ENOMEM : -EINVAL;
        goto fail;
    }
    if (r > 0) {
        const char *bad;
        int e = gh_client_auth_parse(methods, &out->auth_methods, &bad);
        free(methods);
        if (e != 0) {
            snprintf(why, cap, "auth_methods: %s", bad);
            goto fail;
        }
        if (out->auth_methods == 0) {
            snprintf(why, cap, "auth_methods must name at least one method");
            goto fail;
        }
    }
    json_t *k = json_object_get(out->doc, "jwks");
    if (k != NULL) {
        if (!json_is_object(k)) {
            snprintf(why, cap, "jwks must be a JSON object (a JWK Set, or one JWK)");
            goto fail;
        }
        if ((out->jwks = json_dumps(k, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    const char *ttl;
    if ((r = get_string(out->doc, "token_ttl", &ttl, why, cap)) < 0)
        goto fail;
    if (r > 0 && duration(ttl, "token_ttl", 1, GH_CLIENT_TTL_MAX, &out->token_ttl, why, cap) != 0)
        goto fail;
    return 0;
fail:
    gh_admin_cl_create_dispose(out);
    return rc;
}

int gh_admin_cl_parse_rotate(const char *body, size_t len, int64_t *grace, char *why, size_t cap)
{
    static const char *const known[] = {"grace", NULL};
    int rc;
    *grace = GH_CLIENT_GRACE_DEFAULT;
    if (len == 0)
        return 0;
    json_t *doc = gh_admin_json_object(body, len, known, "rotate-secret", why, cap, &rc);
    if (doc == NULL)
        return rc;
    const char *g;
    int r = get_string(doc, "grace", &g, why, cap);
    rc = -EINVAL;
    if (r == 0 || (r > 0 && duration(g, "grace", 0, GH_CLIENT_GRACE_MAX, grace, why, cap) == 0))
        rc = 0;
    json_decref(doc);
    return rc;
}

/* ---- the operations ---- */

static void do_list(gh_store_t *st, int64_t now, gh_admin_reply_t *out)
{
    gh_client_t *all;
    size_t n;
    gh_store_error_t err;
    int rc = gh_store_client_list(st, &all, &n, &err);
    if (rc != 0) {
        reply_store_error(out, rc, &err);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        if (json_array_append_new(a, gh_client_json(&all[i], now)) != 0) {
            json_decref(a);
            a = NULL;
        }
    gh_client_list_free(all, n);
    gh_admin_reply_doc(out, 200, a);
}

/* A client with its secret, shown once (every admin answer has
 * cache-control: no-store). */
static void reply_secret(gh_admin_reply_t *out, int status, const gh_client_t *c, char *secret,
                         int64_t now)
{
    gh_admin_reply_doc(out, status, gh_client_json_with_secret(c, secret, now));
    OPENSSL_cleanse(secret, GH_CLIENT_SECRET_LEN + 1);
    if (out->body != NULL && status == 201)
        snprintf(out->extra, sizeof(out->extra), "location: /clients/%s\r\n", c->id);
}

static void do_create(gh_store_t *st, const char *body, size_t len, int64_t now,
                      gh_admin_reply_t *out)
{
    gh_admin_cl_create_t cr;
    char why[400];
    int rc = gh_admin_cl_parse_create(body, len, &cr, why, sizeof(why));
    if (rc == -ENOMEM) {
        oom(out);
        return;
    }
    if (rc != 0) {
        gh_admin_reply_error(out, 400, "bad_request", "%s", why);
        return;
    }
    gh_client_spec_t spec = {cr.name,         cr.scopes, cr.audiences,
                             cr.auth_methods, cr.jwks,   cr.token_ttl};
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t c;
    gh_store_error_t err;
    rc = gh_store_client_create(st, &spec, now, secret, &c, &err);
    gh_admin_cl_create_dispose(&cr);
    if (rc != 0) {
        reply_store_error(out, rc, &err);
        return;
    }
    reply_secret(out, 201, &c, secret, now);
    gh_client_dispose(&c);
}

static void do_show(gh_store_t *st, const char *id, int64_t now, gh_admin_reply_t *out)
{
    gh_client_t c;
    gh_store_error_t err;
    int rc = gh_store_client_get(st, id, &c, &err);
    if (rc != 0) {
        reply_store_error(out, rc, &err);
        return;
    }
    gh_admin_reply_doc(out, 200, gh_client_json(&c, now));
    gh_client_dispose(&c);
}

static void do_revoke(gh_store_t *st, const char *id, const char *body, size_t len, int64_t now,
                      gh_admin_reply_t *out)
{
    static const char *const known[] = {NULL};
    int rc;
    if (len > 0) {
        char why[400];
        json_t *doc = gh_admin_json_object(body, len, known, "revoke", why, sizeof(why), &rc);
        json_decref(doc);
        if (doc == NULL) {
            if (rc == -ENOMEM)
                oom(out);
            else
                gh_admin_reply_error(out, 400, "bad_request", "%s", why);
            return;
        }
    }
    gh_store_error_t err;
    rc = gh_store_client_revoke(st, id, now, &err);
    if (rc != 0) {
        reply_store_error(out, rc, &err);
        return;
    }
    do_show(st, id, now, out);
}

static void do_rotate(gh_store_t *st, const char *id, const char *body, size_t len, int64_t now,
                      gh_admin_reply_t *out)
{
    int64_t grace;
    char why[400];
    int rc = gh_admin_cl_parse_rotate(body, len, &grace, why, sizeof(why));
    if (rc != 0) {
        if (rc == -ENOMEM)
            oom(out);
        else
            gh_admin_reply_error(out, 400, "bad_request", "%s", why);
        return;
    }
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t c;
    gh_store_error_t err;
    rc = gh_store_client_rotate_secret(st, id, grace, now, secret, &c, &err);
    if (rc != 0) {
        reply_store_error(out, rc, &err);
        return;
    }
    reply_secret(out, 200, &c, secret, now);
    gh_client_dispose(&c);
}

void gh_admin_cl_handle(gh_store_t *st, const gh_admin_cl_route_t *rt, const char *query,
                        size_t qlen, const char *body, size_t blen, int64_t now,
                        gh_admin_reply_t *out)
{
    memset(out, 0, sizeof(*out));
    (void)query;
    if (qlen > 0) {
        gh_admin_reply_error(out, 400, "bad_request",
                             "the client endpoints take no query parameters");
        return;
    }
    switch (rt->op) {
    case GH_CL_LIST:
        do_list(st, now, out);
        break;
    case GH_CL_CREATE:
        do_create(st, body, blen, now, out);
        break;
    case GH_CL_SHOW:
        do_show(st, rt->id, now, out);
        break;
    case GH_CL_REVOKE:
        do_revoke(st, rt->id, body, blen, now, out);
        break;
    case GH_CL_ROTATE:
        do_rotate(st, rt->id, body, blen, now, out);
        break;
    }
}
