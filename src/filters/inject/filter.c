/*
 * The inject filter (docs/inject.md): credentials put on requests on their
 * way out, for callers that cannot obtain a token themselves.
 *
 *   inject:
 *     token_url: https://idp.example.com/oauth2/token
 *     client_id: legacy-batch
 *     client_secret_file: /run/secrets/batch     # or client_secret_env: VAR
 *     auth_method: client_secret_basic           # or client_secret_post
 *     scopes: [orders.read]
 *     audience: https://orders.internal          # and/or resource: (RFC 8707)
 *     timeout: 5s
 *
 * The same section may be written on a cluster: every route to it then
 * gets the filter (a route's own section wins).
 *
 * The request's own Authorization fields are removed and
 * "Authorization: Bearer TOKEN" is set, TOKEN the current one of the
 * route's token source (source.h). Without a usable token the request is
 * answered 503 with the reason, never forwarded without credentials.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <gatehouse/file.h>
#include <gatehouse/filter.h>

#include "config/sections.h"
#include "filters/inject/inject.h"
#include "filters/inject/source.h"

#define MAX_TIMEOUT_MS 60000
#define MAX_SECRET 4096
#define MAX_FIELD 1024

typedef struct {
    char *token_url, *client_id, *client_secret, *scope, *audience, *resource;
    int secret_post, insecure_http;
    uint64_t timeout_ms;
} inject_conf_t;

typedef struct {
    gh_tsrc_t *src;
    uint32_t refused_id;
} inject_inst_t;

/* The snapshot's runtime: the sources its routes use, for /ready. */
typedef struct {
    gh_tsrc_t **v;
    size_t n;
} inject_rt_t;

/* ---- config ---- */

static void free_conf(void *p)
{
    inject_conf_t *c = p;
    if (c == NULL)
        return;
    free(c->token_url);
    free(c->client_id);
    if (c->client_secret != NULL)
        OPENSSL_cleanse(c->client_secret, strlen(c->client_secret));
    free(c->client_secret);
    free(c->scope);
    free(c->audience);
    free(c->resource);
    free(c);
}

/* A string of 1..max printable ASCII bytes without spaces. */
static int opt_word(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map, const char *key,
                    size_t max, char **out)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, key);
    int rc;
    if (v == NULL)
        return 0;
    if ((rc = gh_config_str(doc, v, key, out)) != 0)
        return rc;
    size_t n = strlen(*out);
    if (n > max)
        return gh_yaml_error(doc, v, "'%s' is longer than %zu characters", key, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)(*out)[i] <= 0x20 || (unsigned char)(*out)[i] >= 0x7f)
            return gh_yaml_error(doc, v, "'%s' may hold only printable ASCII without spaces", key);
    return 0;
}

/* RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
static int scope_char(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static int parse_scopes(const gh_yaml_doc_t *doc, const gh_yaml_node_t *v, char **out)
{
    int rc;
    if ((rc = gh_yaml_expect(doc, v, GH_YAML_SEQ, "'scopes'")) != 0)
        return rc;
    size_t len = 0;
    for (const gh_yaml_node_t *e = v->head; e != NULL; e = e->next) {
        const char *s;
        if ((rc = gh_yaml_str(doc, e, "scope", &s)) != 0)
            return rc;
        if (e->len == 0 || e->len > 128)
            return gh_yaml_error(doc, e, "a scope is 1 to 128 characters");
        for (size_t i = 0; i < e->len; i++)
            if (!scope_char((unsigned char)s[i]))
                return gh_yaml_error(doc, e,
                                     "scope '%s' holds a character RFC 6749 does not allow "
                                     "(space, '\"', '\\\\' or a control)",
                                     s);
        len += e->len + 1;
    }
    if (len == 0)
        return 0;
    if ((*out = malloc(len)) == NULL)
        return gh_yaml_oom(doc);
    size_t o = 0;
    for (const gh_yaml_node_t *e = v->head; e != NULL; e = e->next) {
        memcpy(*out + o, e->str, e->len);
        o += e->len;
        (*out)[o++] = ' ';
    }
    (*out)[o - 1] = '\0';
    return 0;
}

/* The secret, read now (main thread): from a file (trailing line breaks
 * and spaces trimmed) or an environment variable. */
static int load_secret(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, inject_conf_t *c)
{
    const gh_yaml_node_t *f = gh_yaml_map_get(n, "client_secret_file");
    const gh_yaml_node_t *e = gh_yaml_map_get(n, "client_secret_env");
    const char *s;
    int rc;
    if ((f != NULL) == (e != NULL))
        return gh_yaml_error(doc, n,
                             "inject takes exactly one of client_secret_file or "
                             "client_secret_env (a secret is never written in the config)");
    if (f != NULL) {
        if ((rc = gh_yaml_str(doc, f, "client_secret_file", &s)) != 0)
            return rc;
        size_t len = 0;
        char *buf = gh_file_read(s, MAX_SECRET, &len);
        if (buf == NULL)
            return gh_yaml_error(doc, f, "cannot read client_secret_file '%s': %s", s,
                                 errno == EFBIG ? "larger than 4 KiB" : gh_file_strerror(errno));
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
            buf[--len] = '\0';
        c->client_secret = buf;
    } else {
        if ((rc = gh_yaml_str(doc, e, "client_secret_env", &s)) != 0)
            return rc;
        const char *val = getenv(s);
        if (val == NULL || val[0] == '\0')
            return gh_yaml_error(doc, e, "client_secret_env: the variable '%s' is not set", s);
        if (strlen(val) > MAX_SECRET)
            return gh_yaml_error(doc, e, "client_secret_env: '%s' is longer than 4 KiB", s);
        if ((c->client_secret = strdup(val)) == NULL)
            return gh_yaml_oom(doc);
    }
    const gh_yaml_node_t *at = f != NULL ? f : e;
    if (c->client_secret[0] == '\0')
        return gh_yaml_error(doc, at, "the client secret is empty");
    for (const char *p = c->client_secret; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            return gh_yaml_error(doc, at, "the client secret holds a control character");
    return 0;
}

static int parse_url(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, inject_conf_t *c)
{
    const gh_yaml_node_t *v;
    int rc;
    if ((rc = gh_yaml_require(doc, n, "token_url", "inject", &v)) != 0 ||
        (rc = opt_word(doc, n, "token_url", 2048, &c->token_url)) != 0)
        return rc;
    const gh_yaml_node_t *ih = gh_yaml_map_get(n, "insecure_http");
    if (ih != NULL && (rc = gh_yaml_bool(doc, ih, "insecure_http", &c->insecure_http)) != 0)
        return rc;
    const char *u = c->token_url;
    size_t skip = strncmp(u, "https://", 8) == 0 ? 8 : strncmp(u, "http://", 7) == 0 ? 7 : 0;
    if (skip == 0)
        return gh_yaml_error(doc, v, "token_url must be an https:// URL");
    if (skip == 7 && !c->insecure_http)
        return gh_yaml_error(doc, v,
                             "token_url is http://: the client secret and the tokens would "
                             "cross the network in the clear (say insecure_http: true to "
                             "allow it anyway)");
    if (u[skip] == '\0' || u[skip] == '/' || strchr(u, '#') != NULL ||
        memchr(u + skip, '@', strcspn(u + skip, "/")) != NULL)
        return gh_yaml_error(doc, v,
                             "token_url needs a host, and no user information or "
                             "fragment");
    return 0;
}

static int parse_into(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, inject_conf_t *c)
{
    static const char *const keys[] = {"token_url",         "client_id",   "client_secret_file",
                                       "client_secret_env", "auth_method", "scopes",
                                       "audience",          "resource",    "timeout",
                                       "insecure_http",     NULL};
    const gh_yaml_node_t *v;
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'inject'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'inject'")) != 0)
        return rc;
    c->timeout_ms = 5000;
    if ((rc = parse_url(doc, n, c)) != 0 ||
        (rc = gh_yaml_require(doc, n, "client_id", "inject", &v)) != 0 ||
        (rc = opt_word(doc, n, "client_id", 256, &c->client_id)) != 0 ||
        (rc = load_secret(doc, n, c)) != 0 ||
        (rc = opt_word(doc, n, "audience", MAX_FIELD, &c->audience)) != 0 ||
        (rc = opt_word(doc, n, "resource", MAX_FIELD, &c->resource)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "scopes")) != NULL && (rc = parse_scopes(doc, v, &c->scope)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "timeout")) != NULL &&
        ((rc = gh_yaml_duration_max(doc, v, "timeout", MAX_TIMEOUT_MS, &c->timeout_ms)) != 0))
        return rc;
    if (c->timeout_ms == 0)
        return gh_yaml_error(doc, v, "inject.timeout must be more than 0");
    if ((v = gh_yaml_map_get(n, "auth_method")) != NULL) {
        if (v->kind == GH_YAML_SCALAR && strcmp(v->str, "client_secret_post") == 0)
            c->secret_post = 1;
        else if (v->kind != GH_YAML_SCALAR || strcmp(v->str, "client_secret_basic") != 0)
            return gh_yaml_error(doc, v,
                                 "auth_method is client_secret_basic (the default) or "
                                 "client_secret_post");
    }
    return 0;
}

static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_conf(const inject_conf_t *a, const inject_conf_t *b)
{
    return same(a->token_url, b->token_url) && same(a->client_id, b->client_id) &&
           same(a->client_secret, b->client_secret) && same(a->scope, b->scope) &&
           same(a->audience, b->audience) && same(a->resource, b->resource) &&
           a->secret_post == b->secret_post && a->insecure_http == b->insecure_http &&
           a->timeout_ms == b->timeout_ms;
}

static int parse_one(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, inject_conf_t **out)
{
    inject_conf_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return gh_yaml_oom(doc);
    int rc = parse_into(doc, n, c);
    if (rc != 0) {
        free_conf(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* A route to clusters with `inject` (implied, n NULL): the clusters'
 * sections, which must say the same thing: a request must not get one
 * credential or another by the draw of a weighted split. */
static int parse_from_clusters(const gh_yaml_doc_t *doc, const gh_route_t *route, void **conf)
{
    const gh_yaml_node_t *clusters = gh_yaml_map_get(doc->root, "clusters");
    inject_conf_t *first = NULL;
    for (size_t i = 0; i < route->num_targets; i++) {
        const gh_cluster_t *cl = route->targets[i].cluster;
        const gh_yaml_node_t *n = gh_yaml_map_get(gh_yaml_map_get(clusters, cl->name), "inject");
        inject_conf_t *c = NULL;
        int rc;
        if (n == NULL)
            rc = gh_yaml_error(doc, gh_yaml_map_get(clusters, cl->name),
                               "route '%s' splits its requests between clusters with and "
                               "without 'inject': give every one of them the same inject, or "
                               "put inject on the route",
                               route->name);
        else if ((rc = parse_one(doc, n, &c)) == 0 && first != NULL && !same_conf(first, c))
            rc = gh_yaml_error(doc, n,
                               "route '%s' splits its requests between clusters whose 'inject' "
                               "differ: give them the same, or put inject on the route",
                               route->name);
        if (rc != 0) {
            free_conf(c);
            free_conf(first);
            return rc;
        }
        if (first == NULL)
            first = c;
        else
            free_conf(c);
    }
    *conf = first;
    return 0;
}

static int parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg,
                 gh_route_t *route, void **conf)
{
    (void)cfg;
    if (n == NULL)
        return parse_from_clusters(doc, route, conf);
    inject_conf_t *c = NULL;
    int rc = parse_one(doc, n, &c);
    if (rc == 0)
        *conf = c;
    return rc;
}

/* A route whose clusters have `inject` gets the filter (a route's own
 * section wins over theirs). */
static int implied(const gh_config_t *cfg, const gh_route_t *route)
{
    (void)cfg;
    for (size_t i = 0; i < route->num_targets; i++)
        if (route->targets[i].cluster->has_inject)
            return 1;
    return 0;
}

/* ---- per snapshot ---- */

static int inject_init(const gh_config_t *cfg, void **rt)
{
    (void)cfg;
    *rt = calloc(1, sizeof(inject_rt_t));
    return *rt != NULL ? 0 : -1;
}

static void inject_fini(void *p)
{
    inject_rt_t *rt = p;
    if (rt == NULL)
        return;
    free(rt->v);
    free(rt);
}

static size_t inject_ready(const void *p, int detailed, char *out, size_t cap)
{
    const inject_rt_t *rt = p;
    size_t n = 0, o = 0;
    for (size_t i = 0; rt != NULL && i < rt->n; i++) {
        char why[640];
        if (gh_tsrc_ready(rt->v[i], why, sizeof(why)))
            continue;
        int w = snprintf(out + o, o < cap ? cap - o : 0, "%sinject: %s", n ? "\n" : "",
                         detailed ? why : "no token yet (see the log)");
        if (w > 0 && o + (size_t)w < cap)
            o += (size_t)w;
        else if (o < cap)
            out[o] = '\0';
        n++;
    }
    return n;
}

static void *inject_bind(void *p, const gh_config_t *cfg, const gh_route_t *route, const void *conf,
                         const char *listener)
{
    inject_rt_t *rt = p;
    const inject_conf_t *c = conf;
    (void)cfg;
    (void)listener;
    inject_inst_t *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return NULL;
    gh_tsrc_conf_t sc = {
        .token_url = c->token_url,
        .client_id = c->client_id,
        .client_secret = c->client_secret,
        .secret_post = c->secret_post,
        .scope = c->scope,
        .audience = c->audience,
        .resource = c->resource,
        .timeout_ms = c->timeout_ms,
        .insecure_http = c->insecure_http,
    };
    if ((in->src = gh_tsrc_acquire(&sc)) == NULL) {
        free(in);
        return NULL;
    }
    size_t i = 0;
    while (i < rt->n && rt->v[i] != in->src)
        i++;
    if (i == rt->n) {
        gh_tsrc_t **nv = realloc(rt->v, (rt->n + 1) * sizeof(*nv));
        if (nv == NULL) {
            gh_tsrc_release(in->src);
            free(in);
            return NULL;
        }
        rt->v = nv;
        rt->v[rt->n++] = in->src;
    }
    in->refused_id = gh_metrics_filter_id("inject", route->name, "no_token");
    return in;
}

static void inject_unbind(void *p)
{
    inject_inst_t *in = p;
    if (in == NULL)
        return;
    gh_tsrc_release(in->src);
    free(in);
}

static int inject_service_start(uv_loop_t *main_loop)
{
    gh_tsrc_init(main_loop);
    return 0;
}

/* ---- per request ---- */

static int put_line(void *arg, const char *line, size_t len)
{
    return gh_stream_add_header_lines(arg, line, len) == 0 ? 0 : -1;
}

static gh_filter_status_t on_request_headers(gh_stream_t *s, const void *conf, void *ctx)
{
    const inject_inst_t *in = conf;
    char why[640];
    (void)ctx;
    /* The caller's own credentials never pass: the one gatehouse sets is
     * the only Authorization the upstream sees. */
    if (gh_stream_drop_header_static(s, "authorization", 13) != 0)
        return GH_FILTER_CONTINUE; /* the stream is marked: answered 503 */
    int rc = gh_tsrc_use(in->src, gh_stream_now_ms(s), put_line, s, why, sizeof(why));
    if (rc <= 0)
        return GH_FILTER_CONTINUE; /* rc < 0: marked, answered 503 */
    gh_stream_count(s, in->refused_id);
    gh_stream_log_note(s, "inject=no_token");
    gh_stream_reply_error(s, 503, "service_unavailable", why);
    return GH_FILTER_REPLIED;
}

const gh_filter_type_t gh_inject_filter = {
    .name = "inject",
    .phase = GH_PHASE_TRANSFORM,
    .parse = parse,
    .free_conf = free_conf,
    .implied = implied,
    .init = inject_init,
    .fini = inject_fini,
    .ready = inject_ready,
    .bind = inject_bind,
    .unbind = inject_unbind,
    .service_start = inject_service_start,
    .service_stop = gh_tsrc_shutdown,
    .service_free = gh_tsrc_free_all,
    .on_request_headers = on_request_headers,
};
