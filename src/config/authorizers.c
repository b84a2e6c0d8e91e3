/*
 * providers.authorizers (docs/authorizers.md): custom authorizers that
 * routes name in authn and CUSTOM policies delegate to.
 *
 *   providers:
 *     authorizers:
 *       orders:
 *         format: aws-v2                 # aws-v2, aws-v1-token, aws-v1-request, envoy
 *         http: { cluster: authz, path: /authorize }
 *         # or lambda: { function: NAME-OR-ARN, region: us-east-1,
 *         #              qualifier: live, endpoint: CLUSTER, profile: NAME }
 *         identity_sources: [ "$request.header.Authorization" ]
 *         simple_responses: true         # aws-v2
 *         token_validation: "^Bearer "   # aws-v1-token
 *         ttl: 300s                      # 0 to 1h; 0: no cache
 *         cache_entries: 10000           # per worker (per process with process)
 *         cache_scope: worker            # worker or process
 *         timeout: 5s
 *         max_response: 1MiB
 *         on_error: 500                  # 500, 503 or allow
 *         headers: { x-user: principalId, x-tenant: context.tenant }
 *         realm: orders
 *         api: { account_id: "123456789012", api_id: gatehouse, stage: "$default",
 *                region: us-east-1 }
 *         envoy: { allowed_headers: [...], upstream_headers: [...],
 *                  client_headers: [...], max_request_body: 0 }
 *         usage_key_cache_ttl: 30s       # aws-v1 usageIdentifierKey lookups
 *         usage_key_negative_cache_ttl: 5s
 *
 * Names share one namespace with the jwt and apikeys providers: a route's
 * authn names any of them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <gatehouse/aws.h>
#include <gatehouse/config.h>
#include <gatehouse/yaml.h>

#include "authorizer/authz.h"
#include "config/sections.h"

#define DEFAULT_TTL_MS 300000
#define MAX_TTL_MS 3600000
#define DEFAULT_TIMEOUT_MS 5000
#define MAX_TIMEOUT_MS 60000
#define DEFAULT_MAX_RESPONSE (1024 * 1024)
#define MAX_SOURCES 16

static const struct {
    const char *name;
    int format;
} formats[] = {
    {"aws-v2", GH_AUTHORIZER_AWS_V2},
    {"aws-v1-token", GH_AUTHORIZER_AWS_V1_TOKEN},
    {"aws-v1-request", GH_AUTHORIZER_AWS_V1_REQUEST},
    {"envoy", GH_AUTHORIZER_ENVOY},
};

/* A cluster written in the config (an implicit Lambda endpoint's is named
 * by no key: config.h's implicit). */
static const gh_cluster_t *cluster_named(const gh_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->num_clusters; i++)
        if (!cfg->clusters[i].implicit && strcmp(cfg->clusters[i].name, name) == 0)
            return &cfg->clusters[i];
    return NULL;
}

static int cluster_ref(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const gh_config_t *cfg,
                       const char *key, char **out)
{
    int rc = gh_config_str(doc, n, key, out);
    if (rc != 0)
        return rc;
    const gh_cluster_t *c = cluster_named(cfg, *out);
    if (c == NULL)
        return gh_yaml_error(doc, n, "%s names unknown cluster '%s'", key, *out);
    if (c->lambda != NULL)
        return gh_yaml_error(doc, n,
                             "%s '%s' is a lambda cluster: an authorizer that is a Lambda "
                             "function says so with lambda:",
                             key, *out);
    return 0;
}

/* An identity source in API Gateway's spelling: $request.header.NAME,
 * $request.querystring.NAME, $request.cookie.NAME (format 2.0 style), or
 * method.request.header.NAME, method.request.querystring.NAME (REST). */
static int parse_source(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_authz_source_t *src)
{
    static const struct {
        const char *prefix;
        int kind;
    } forms[] = {
        {"$request.header.", GH_AUTHZ_SOURCE_HEADER},
        {"$request.querystring.", GH_AUTHZ_SOURCE_QUERY},
        {"$request.cookie.", GH_AUTHZ_SOURCE_COOKIE},
        {"method.request.header.", GH_AUTHZ_SOURCE_HEADER},
        {"method.request.querystring.", GH_AUTHZ_SOURCE_QUERY},
    };
    const char *v;
    int rc = gh_yaml_str(doc, n, "identity source", &v);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        size_t pl = strlen(forms[i].prefix);
        if (strncmp(v, forms[i].prefix, pl) != 0)
            continue;
        const char *name = v + pl;
        if (name[0] == '\0')
            return gh_yaml_error(doc, n, "identity source '%s' names nothing after '%s'", v,
                                 forms[i].prefix);
        for (const char *p = name; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == ',' || *p == ';' ||
                *p == '=' || *p == '&')
                return gh_yaml_error(doc, n,
                                     "identity source '%s' has a name gatehouse cannot read", v);
        src->kind = forms[i].kind;
        if (forms[i].kind == GH_AUTHZ_SOURCE_HEADER) {
            /* Any field may be read (Authorization, Cookie, Host): a
             * token is all a name needs to be. */
            for (const char *p = name; *p; p++)
                if (!(isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p) != NULL))
                    return gh_yaml_error(doc, n, "identity source '%s': '%s' is not a header name",
                                         v, name);
            rc = gh_config_dup_lower(doc, name, &src->name);
        } else {
            rc = gh_config_dup(doc, name, &src->name);
        }
        if (rc == 0) {
            src->name_len = strlen(src->name);
            src->authorization =
                src->kind == GH_AUTHZ_SOURCE_HEADER && strcmp(src->name, "authorization") == 0;
        }
        return rc != 0 ? rc : gh_config_dup(doc, v, &src->text);
    }
    return gh_yaml_error(doc, n,
                         "identity source '%s' is not $request.header.NAME, "
                         "$request.querystring.NAME, $request.cookie.NAME, "
                         "method.request.header.NAME or method.request.querystring.NAME",
                         v);
}

static int parse_sources(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_authorizer_conf_t *a)
{
    int rc;
    if (n->kind == GH_YAML_SCALAR) {
        a->sources = calloc(1, sizeof(*a->sources));
        if (a->sources == NULL)
            return gh_yaml_oom(doc);
        a->num_sources = 1;
        return parse_source(doc, n, &a->sources[0]);
    }
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_SEQ, "identity_sources")) != 0)
        return rc;
    if (n->count > MAX_SOURCES)
        return gh_yaml_error(doc, n, "identity_sources lists at most %d sources", MAX_SOURCES);
    a->sources = calloc(n->count + 1, sizeof(*a->sources));
    if (a->sources == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *it = n->head; it != NULL; it = it->next) {
        gh_authz_source_t *s = &a->sources[a->num_sources];
        if ((rc = parse_source(doc, it, s)) != 0)
            return rc;
        a->num_sources++;
        for (size_t i = 0; i + 1 < a->num_sources; i++)
            if (a->sources[i].kind == s->kind && strcmp(a->sources[i].name, s->name) == 0)
                return gh_yaml_error(doc, it, "identity source '%s' is listed twice", s->text);
    }
    return 0;
}

/* The default identity source of each format (API Gateway's). */
static int default_sources(const gh_yaml_doc_t *doc, gh_authorizer_conf_t *a)
{
    const char *text = a->format == GH_AUTHORIZER_AWS_V2 ? "$request.header.Authorization"
                       : a->format == GH_AUTHORIZER_AWS_V1_TOKEN
                           ? "method.request.header.Authorization"
                           : NULL;
    if (text == NULL)
        return 0;
    a->sources = calloc(1, sizeof(*a->sources));
    if (a->sources == NULL)
        return gh_yaml_oom(doc);
    a->num_sources = 1;
    a->sources[0].kind = GH_AUTHZ_SOURCE_HEADER;
    a->sources[0].name_len = 13;
    a->sources[0].authorization = 1;
    int rc = gh_config_dup(doc, "authorization", &a->sources[0].name);
    return rc != 0 ? rc : gh_config_dup(doc, text, &a->sources[0].text);
}

static int parse_http(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const gh_config_t *cfg,
                      gh_authorizer_conf_t *a)
{
    static const char *const keys[] = {"cluster", "path", NULL};
    const gh_yaml_node_t *v;
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "http")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "http")) != 0 ||
        (rc = gh_yaml_require(doc, n, "cluster", "http", &v)) != 0 ||
        (rc = cluster_ref(doc, v, cfg, "http.cluster", &a->cluster)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "path")) == NULL)
        return gh_config_dup(doc, "/", &a->path);
    if ((rc = gh_config_str(doc, v, "http.path", &a->path)) != 0)
        return rc;
    if (a->path[0] != '/')
        return gh_yaml_error(doc, v, "http.path starts with '/'");
    for (const char *p = a->path; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
            return gh_yaml_error(doc, v,
                                 "http.path holds a byte a request-target cannot (space, control, "
                                 "'#' or non-ASCII): percent-encode it");
    if (a->format == GH_AUTHORIZER_ENVOY && strchr(a->path, '?') != NULL)
        return gh_yaml_error(doc, v,
                             "http.path of an envoy authorizer is a prefix of the request's path: "
                             "no query");
    return 0;
}

/* The lambda block's rules are shared with lambda clusters (lambda.c). */
static int parse_lambda(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg,
                        gh_authorizer_conf_t *a)
{
    gh_config_lambda_t ref = {0};
    gh_cluster_t *cl;
    char owner[96];
    int rc = gh_config_parse_lambda(doc, n, NULL, &ref);
    snprintf(owner, sizeof(owner), "authorizer '%s'", a->name);
    if (rc == 0)
        rc = gh_config_lambda_bind(doc, n, cfg, owner, &ref, &cl);
    a->function = ref.function;
    a->region = ref.region;
    a->qualifier = ref.qualifier;
    a->endpoint = ref.endpoint;
    a->profile = ref.profile;
    return rc;
}

static int parse_headers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_authorizer_conf_t *a)
{
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "headers")) != 0)
        return rc;
    a->headers = calloc(n->count + 1, sizeof(*a->headers));
    if (a->headers == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *k = n->head; k != NULL; k = k->next) {
        gh_authz_header_map_t *h = &a->headers[a->num_headers];
        const char *src, *why;
        if ((rc = gh_config_set_header(doc, k, "headers", &h->header)) != 0)
            return rc;
        a->num_headers++;
        if ((why = gh_authz_header_refused(h->header, strlen(h->header))) != NULL)
            return gh_yaml_error(doc, k, "headers: '%s' %s", h->header, why);
        if ((rc = gh_yaml_str(doc, k->value, "headers value", &src)) != 0)
            return rc;
        if ((why = gh_authz_source_refused(src)) != NULL)
            return gh_yaml_error(doc, k->value, "headers: '%s' %s", src, why);
        if ((rc = gh_config_dup(doc, src, &h->source)) != 0)
            return rc;
    }
    return 0;
}

/* A list of header names (lower-cased), for envoy's allow lists. */
static int header_list(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key,
                       char ***out, size_t *count)
{
    int rc = gh_config_str_list(doc, n, key, out, count);
    for (size_t i = 0; rc == 0 && i < *count; i++) {
        char *h = (*out)[i];
        for (char *p = h; *p; p++) {
            if (!(isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p) != NULL))
                return gh_yaml_error(doc, n, "%s: '%s' is not a header name", key, h);
            *p = (char)tolower((unsigned char)*p);
        }
    }
    return rc;
}

static int parse_envoy(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_authorizer_conf_t *a)
{
    static const char *const keys[] = {"allowed_headers", "upstream_headers", "client_headers",
                                       "max_request_body", NULL};
    const gh_yaml_node_t *v;
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "envoy")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "envoy")) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "allowed_headers")) != NULL &&
        (rc = header_list(doc, v, "envoy.allowed_headers", &a->allowed_headers,
                          &a->num_allowed_headers)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "upstream_headers")) != NULL) {
        if ((rc = header_list(doc, v, "envoy.upstream_headers", &a->upstream_headers,
                              &a->num_upstream_headers)) != 0)
            return rc;
        for (size_t i = 0; i < a->num_upstream_headers; i++) {
            const char *h = a->upstream_headers[i], *why = gh_authz_header_refused(h, strlen(h));
            if (why != NULL)
                return gh_yaml_error(doc, v, "envoy.upstream_headers: '%s' %s", h, why);
        }
    }
    if ((v = gh_yaml_map_get(n, "client_headers")) != NULL) {
        if ((rc = header_list(doc, v, "envoy.client_headers", &a->client_headers,
                              &a->num_client_headers)) != 0)
            return rc;
        for (size_t i = 0; i < a->num_client_headers; i++) {
            const char *h = a->client_headers[i];
            if (gh_config_header_name_refused(h) != NULL && strcmp(h, "www-authenticate") != 0)
                return gh_yaml_error(doc, v, "envoy.client_headers: '%s' %s", h,
                                     gh_config_header_name_refused(h));
        }
    }
    if ((v = gh_yaml_map_get(n, "max_request_body")) != NULL) {
        uint64_t u;
        if (v->kind == GH_YAML_SCALAR && strcmp(v->str, "0") == 0)
            u = 0;
        else if ((rc = gh_yaml_size(doc, v, "envoy.max_request_body", 1, 1024 * 1024, &u)) != 0)
            return rc;
        a->max_request_body = (size_t)u;
    }
    return 0;
}

static int parse_api(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_authorizer_conf_t *a)
{
    static const char *const keys[] = {"account_id", "api_id", "stage", "region", NULL};
    static const char *const what[] = {"api.account_id", "api.api_id", "api.stage", "api.region"};
    char **out[] = {&a->account_id, &a->api_id, &a->stage, &a->api_region};
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "api")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "api")) != 0)
        return rc;
    for (size_t i = 0; i < 4; i++) {
        const gh_yaml_node_t *v = gh_yaml_map_get(n, keys[i]);
        if (v == NULL)
            continue;
        if ((rc = gh_config_str(doc, v, what[i], out[i])) != 0)
            return rc;
        /* They go into ARNs: no ARN separator, no control byte. */
        for (const char *p = *out[i]; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == ':' ||
                (*p == '/' && i != 2) || (i == 2 && *p == '/'))
                return gh_yaml_error(doc, v, "%s '%s' may not hold ':', '/', spaces or controls",
                                     what[i], *out[i]);
    }
    return 0;
}

static int apply_defaults(const gh_yaml_doc_t *doc, gh_authorizer_conf_t *a)
{
    static const char *const defaults[] = {"000000000000", "gatehouse", "$default", "us-east-1"};
    char **out[] = {&a->account_id, &a->api_id, &a->stage, &a->api_region};
    for (size_t i = 0; i < 4; i++) {
        const char *d = defaults[i];
        if (i == 3 && a->region != NULL)
            d = a->region;
        if (*out[i] == NULL && gh_config_dup(doc, d, out[i]) != 0)
            return -ENOMEM;
    }
    return 0;
}

static int parse_on_error(const gh_yaml_doc_t *doc, const gh_yaml_node_t *v, int *out)
{
    const char *s;
    int rc = gh_yaml_str(doc, v, "on_error", &s);
    if (rc != 0)
        return rc;
    if (strcmp(s, "500") == 0)
        *out = GH_AUTHZ_ON_ERROR_500;
    else if (strcmp(s, "503") == 0)
        *out = GH_AUTHZ_ON_ERROR_503;
    else if (strcmp(s, "allow") == 0)
        *out = GH_AUTHZ_ON_ERROR_ALLOW;
    else
        return gh_yaml_error(doc, v, "on_error is 500, 503 or allow");
    return 0;
}

static int parse_cache_scope(const gh_yaml_doc_t *doc, const gh_yaml_node_t *v, int *out)
{
    const char *s;
    int rc = gh_yaml_str(doc, v, "cache_scope", &s);
    if (rc != 0)
        return rc;
    if (strcmp(s, "worker") == 0)
        *out = GH_AUTHZ_CACHE_WORKER;
    else if (strcmp(s, "process") == 0)
        *out = GH_AUTHZ_CACHE_PROCESS;
    else
        return gh_yaml_error(doc, v, "cache_scope is worker or process");
    return 0;
}

static int parse_token_validation(const gh_yaml_doc_t *doc, const gh_yaml_node_t *v,
                                  gh_authorizer_conf_t *a)
{
    int rc = gh_config_str(doc, v, "token_validation", &a->token_validation);
    if (rc != 0)
        return rc;
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)a->token_validation, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        return gh_yaml_error(doc, v, "token_validation: invalid regex at offset %zu: %s",
                             (size_t)eo, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    a->token_re = re;
    return 0;
}

static int parse_authorizer(const gh_yaml_doc_t *doc, const gh_yaml_node_t *key, gh_config_t *cfg,
                            gh_authorizer_conf_t *a)
{
    static const char *const keys[] = {"format",
                                       "http",
                                       "lambda",
                                       "identity_sources",
                                       "simple_responses",
                                       "token_validation",
                                       "ttl",
                                       "cache_entries",
                                       "cache_scope",
                                       "timeout",
                                       "max_response",
                                       "on_error",
                                       "headers",
                                       "realm",
                                       "api",
                                       "envoy",
                                       "usage_key_cache_ttl",
                                       "usage_key_negative_cache_ttl",
                                       NULL};
    const gh_yaml_node_t *n = key->value, *v, *http, *lambda;
    int rc;
    uint64_t u;
    a->ttl_ms = DEFAULT_TTL_MS;
    /* As an apikeys provider's cache_ttl and negative_cache_ttl. */
    a->usage_ttl_ms = 30000;
    a->usage_negative_ttl_ms = 5000;
    a->cache_entries = 10000;
    a->timeout_ms = DEFAULT_TIMEOUT_MS;
    a->max_response = DEFAULT_MAX_RESPONSE;
    if ((rc = gh_config_dup(doc, key->str, &a->name)) != 0 ||
        (rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "an authorizer")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "authorizer")) != 0 ||
        (rc = gh_yaml_require(doc, n, "format", "an authorizer", &v)) != 0)
        return rc;
    const char *f;
    if ((rc = gh_yaml_str(doc, v, "format", &f)) != 0)
        return rc;
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strcmp(f, formats[i].name) == 0)
            a->format = formats[i].format;
    if (a->format == 0)
        return gh_yaml_error(doc, v, "format is aws-v2, aws-v1-token, aws-v1-request or envoy");

    http = gh_yaml_map_get(n, "http");
    lambda = gh_yaml_map_get(n, "lambda");
    if ((http != NULL) == (lambda != NULL))
        return gh_yaml_error(doc, n, "authorizer '%s' takes exactly one of http or lambda",
                             a->name);
    if (lambda != NULL && a->format == GH_AUTHORIZER_ENVOY)
        return gh_yaml_error(doc, lambda, "an envoy authorizer is a service (http), not a Lambda");
    if ((http != NULL && (rc = parse_http(doc, http, cfg, a)) != 0) ||
        (lambda != NULL && (rc = parse_lambda(doc, lambda, cfg, a)) != 0))
        return rc;

    if ((v = gh_yaml_map_get(n, "identity_sources")) != NULL)
        rc = parse_sources(doc, v, a);
    else
        rc = default_sources(doc, a);
    if (rc != 0)
        return rc;
    if (a->format == GH_AUTHORIZER_AWS_V1_TOKEN &&
        (a->num_sources != 1 || a->sources[0].kind != GH_AUTHZ_SOURCE_HEADER))
        return gh_yaml_error(doc, v ? v : n,
                             "an aws-v1-token authorizer reads its token from one header");

    if ((v = gh_yaml_map_get(n, "simple_responses")) != NULL) {
        if (a->format != GH_AUTHORIZER_AWS_V2)
            return gh_yaml_error(doc, v, "simple_responses is for aws-v2 authorizers");
        if ((rc = gh_yaml_bool(doc, v, "simple_responses", &a->simple_responses)) != 0)
            return rc;
    }
    if ((v = gh_yaml_map_get(n, "token_validation")) != NULL) {
        if (a->format != GH_AUTHORIZER_AWS_V1_TOKEN)
            return gh_yaml_error(doc, v, "token_validation is for aws-v1-token authorizers");
        if ((rc = parse_token_validation(doc, v, a)) != 0)
            return rc;
    }
    const gh_yaml_node_t *uk = gh_yaml_map_get(n, "usage_key_cache_ttl");
    if (uk == NULL)
        uk = gh_yaml_map_get(n, "usage_key_negative_cache_ttl");
    if (uk != NULL && a->format != GH_AUTHORIZER_AWS_V1_TOKEN &&
        a->format != GH_AUTHORIZER_AWS_V1_REQUEST)
        return gh_yaml_error(doc, uk,
                             "usage_key_cache_ttl and usage_key_negative_cache_ttl are for "
                             "aws-v1-token and aws-v1-request authorizers (usageIdentifierKey)");
    if ((v = gh_yaml_map_get(n, "usage_key_cache_ttl")) != NULL) {
        if (v->kind == GH_YAML_SCALAR && strcmp(v->str, "0s") == 0)
            a->usage_ttl_ms = 0;
        else if ((rc = gh_yaml_duration_max(doc, v, "usage_key_cache_ttl", MAX_TTL_MS,
                                            &a->usage_ttl_ms)) != 0)
            return rc;
    }
    if ((v = gh_yaml_map_get(n, "usage_key_negative_cache_ttl")) != NULL) {
        if (v->kind == GH_YAML_SCALAR && strcmp(v->str, "0s") == 0)
            a->usage_negative_ttl_ms = 0;
        else if ((rc = gh_yaml_duration_max(doc, v, "usage_key_negative_cache_ttl", MAX_TTL_MS,
                                            &a->usage_negative_ttl_ms)) != 0)
            return rc;
    }
    if ((v = gh_yaml_map_get(n, "ttl")) != NULL) {
        if (v->kind == GH_YAML_SCALAR && (strcmp(v->str, "0") == 0 || strcmp(v->str, "0s") == 0))
            a->ttl_ms = 0;
        else if ((rc = gh_yaml_duration_max(doc, v, "ttl", MAX_TTL_MS, &a->ttl_ms)) != 0)
            return rc;
    }
    /* The cache key is the identity sources' values (API Gateway's). */
    if (a->ttl_ms > 0 && a->num_sources == 0)
        return gh_yaml_error(doc, v ? v : n,
                             "authorizer '%s' caches its answers (ttl %llus) but has no "
                             "identity_sources to key them by: list them, or set ttl: 0",
                             a->name, (unsigned long long)(a->ttl_ms / 1000));
    if ((v = gh_yaml_map_get(n, "cache_entries")) != NULL) {
        if ((rc = gh_yaml_uint(doc, v, "cache_entries", 1, 1000000, &u)) != 0)
            return rc;
        a->cache_entries = (uint32_t)u;
    }
    if ((v = gh_yaml_map_get(n, "cache_scope")) != NULL &&
        (rc = parse_cache_scope(doc, v, &a->cache_scope)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "timeout")) != NULL &&
        (rc = gh_yaml_duration_max(doc, v, "timeout", MAX_TIMEOUT_MS, &a->timeout_ms)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "max_response")) != NULL) {
        if ((rc = gh_yaml_size(doc, v, "max_response", 64, GH_LAMBDA_MAX_RESULT, &u)) != 0)
            return rc;
        a->max_response = (size_t)u;
    }
    if ((v = gh_yaml_map_get(n, "on_error")) != NULL &&
        (rc = parse_on_error(doc, v, &a->on_error)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "headers")) != NULL && (rc = parse_headers(doc, v, a)) != 0)
        return rc;
    if (a->format == GH_AUTHORIZER_ENVOY && a->num_headers > 0)
        return gh_yaml_error(doc, v,
                             "an envoy authorizer's answer sets headers through "
                             "envoy.upstream_headers, not headers");
    if ((v = gh_yaml_map_get(n, "realm")) != NULL) {
        if ((rc = gh_config_str(doc, v, "realm", &a->realm)) != 0)
            return rc;
        for (const char *p = a->realm; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || *p == '"' || *p == '\\')
                return gh_yaml_error(doc, v, "realm holds a byte a quoted-string cannot");
    } else if ((rc = gh_config_dup(doc, "gatehouse", &a->realm)) != 0) {
        return rc;
    }
    if ((v = gh_yaml_map_get(n, "api")) != NULL) {
        if (a->format == GH_AUTHORIZER_ENVOY)
            return gh_yaml_error(doc, v, "api is for the aws formats");
        if ((rc = parse_api(doc, v, a)) != 0)
            return rc;
    }
    if ((v = gh_yaml_map_get(n, "envoy")) != NULL) {
        if (a->format != GH_AUTHORIZER_ENVOY)
            return gh_yaml_error(doc, v, "envoy is for envoy authorizers");
        if ((rc = parse_envoy(doc, v, a)) != 0)
            return rc;
    }
    return apply_defaults(doc, a) != 0 ? gh_yaml_oom(doc) : 0;
}

int gh_config_parse_authorizers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                                gh_config_t *cfg)
{
    int rc;
    if ((rc = gh_yaml_expect(doc, node, GH_YAML_MAP, "providers.authorizers")) != 0)
        return rc;
    cfg->authorizers = calloc(node->count + 1, sizeof(*cfg->authorizers));
    if (cfg->authorizers == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *k = node->head; k != NULL; k = k->next) {
        gh_authorizer_conf_t *a = &cfg->authorizers[cfg->num_authorizers];
        a->index = cfg->num_authorizers++;
        if ((rc = parse_authorizer(doc, k, cfg, a)) != 0)
            return rc;
        for (size_t i = 0; i < cfg->num_jwt_providers; i++)
            if (strcmp(cfg->jwt_providers[i].name, a->name) == 0)
                return gh_yaml_error(doc, k,
                                     "provider name '%s' is both a jwt provider and an "
                                     "authorizer",
                                     a->name);
        for (size_t i = 0; i < cfg->num_apikey_providers; i++)
            if (strcmp(cfg->apikey_providers[i].name, a->name) == 0)
                return gh_yaml_error(doc, k,
                                     "provider name '%s' is both an apikeys provider and "
                                     "an authorizer",
                                     a->name);
    }
    return 0;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

void gh_config_free_authorizers(gh_config_t *cfg)
{
    for (size_t i = 0; i < cfg->num_authorizers; i++) {
        gh_authorizer_conf_t *a = &cfg->authorizers[i];
        free(a->name);
        free(a->cluster);
        free(a->path);
        free(a->function);
        free(a->region);
        free(a->qualifier);
        free(a->endpoint);
        free(a->profile);
        for (size_t j = 0; j < a->num_sources; j++) {
            free(a->sources[j].name);
            free(a->sources[j].text);
        }
        free(a->sources);
        free(a->token_validation);
        pcre2_code_free(a->token_re);
        for (size_t j = 0; j < a->num_headers; j++) {
            free(a->headers[j].header);
            free(a->headers[j].source);
        }
        free(a->headers);
        free(a->realm);
        free(a->account_id);
        free(a->api_id);
        free(a->stage);
        free(a->api_region);
        free_list(a->allowed_headers, a->num_allowed_headers);
        free_list(a->upstream_headers, a->num_upstream_headers);
        free_list(a->client_headers, a->num_client_headers);
    }
    free(cfg->authorizers);
    cfg->authorizers = NULL;
    cfg->num_authorizers = 0;
}
