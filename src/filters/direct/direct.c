/*
 * direct_response: a route that answers by itself (health checks, fixed
 * redirects, maintenance pages). A terminal filter: it takes the router's
 * place at the end of the chain.
 *
 *   direct_response: {status: 200, headers: {content-type: text/plain}, body: "ok"}
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/filter.h>

#include "filters/direct/direct.h"

/* A response is written whole; this many fields is plenty for one. */
#define MAX_HEADERS 64

static void free_conf(void *p)
{
    gh_direct_response_t *d = p;
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->num_headers; i++) {
        free(d->headers[i].name);
        free(d->headers[i].value);
    }
    free(d->headers);
    free(d->body);
    free(d);
}

static int is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!gh_h1_is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

static char *dup_lower(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    d[n] = '\0';
    return d;
}

static int parse_header(const gh_yaml_doc_t *doc, const gh_yaml_node_t *k, gh_direct_response_t *d)
{
    gh_header_kv_t *h = &d->headers[d->num_headers];
    const gh_yaml_node_t *v = k->value;
    if (!is_token(k->str, k->len))
        return gh_yaml_error(doc, k, "header name '%s' is not an HTTP token", k->str);
    /* The proxy frames the body and sets the hop-by-hop fields itself; a
     * configured one could only disagree with it. */
    const char *why = gh_config_header_name_refused(k->str);
    if (why != NULL)
        return gh_yaml_error(doc, k, "header '%s' %s", k->str, why);
    for (size_t i = 0; i < d->num_headers; i++)
        if (strlen(d->headers[i].name) == k->len &&
            strncasecmp(d->headers[i].name, k->str, k->len) == 0)
            return gh_yaml_error(doc, k, "header '%s' is set twice", k->str);
    if (v->kind != GH_YAML_SCALAR)
        return gh_yaml_error(doc, v, "header '%s' must be a string", k->str);
    /* field-value: VCHAR, obs-text, SP, HTAB (RFC 9110 section 5.5) */
    for (size_t i = 0; i < v->len; i++) {
        unsigned char b = (unsigned char)v->str[i];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            return gh_yaml_error(doc, v, "header '%s' must not contain control characters", k->str);
    }
    if ((h->name = dup_lower(k->str, k->len)) == NULL || (h->value = malloc(v->len + 1)) == NULL) {
        free(h->name);
        return gh_yaml_oom(doc);
    }
    memcpy(h->value, v->str, v->len);
    h->value[v->len] = '\0';
    h->name_len = k->len;
    h->value_len = v->len;
    d->num_headers++;
    return 0;
}

static int parse_body(const gh_yaml_doc_t *doc, const gh_yaml_node_t *v, gh_direct_response_t *d)
{
    if (v->kind != GH_YAML_SCALAR)
        return gh_yaml_error(doc, v, "'body' must be a string");
    /* RFC 9110 sections 15.2, 15.3.5 and 15.4.5: never a body. */
    if (d->status == 204 || d->status == 304)
        return gh_yaml_error(doc, v, "a %d response cannot have a body", d->status);
    if ((d->body = malloc(v->len + 1)) == NULL)
        return gh_yaml_oom(doc);
    memcpy(d->body, v->str, v->len);
    d->body[v->len] = '\0';
    d->body_len = v->len;
    return 0;
}

static int parse_fields(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_direct_response_t *d)
{
    const gh_yaml_node_t *v;
    uint64_t status = 200;
    int rc;
    if ((v = gh_yaml_map_get(n, "status")) != NULL &&
        (rc = gh_yaml_uint(doc, v, "status", 200, 599, &status)) != 0)
        return rc;
    d->status = (int)status;
    if ((v = gh_yaml_map_get(n, "headers")) != NULL) {
        if ((rc = gh_yaml_expect(doc, v, GH_YAML_MAP, "'headers'")) != 0)
            return rc;
        if (v->count > MAX_HEADERS)
            return gh_yaml_error(doc, v, "a direct_response has at most %d headers", MAX_HEADERS);
        if (v->count > 0 && (d->headers = calloc(v->count, sizeof(*d->headers))) == NULL)
            return gh_yaml_oom(doc);
        for (const gh_yaml_node_t *k = v->head; k != NULL; k = k->next)
            if ((rc = parse_header(doc, k, d)) != 0)
                return rc;
    }
    if ((v = gh_yaml_map_get(n, "body")) != NULL && (rc = parse_body(doc, v, d)) != 0)
        return rc;
    return 0;
}

static int parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg,
                 gh_route_t *route, void **conf)
{
    static const char *const keys[] = {"status", "headers", "body", NULL};
    int rc;
    (void)cfg;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'direct_response'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'direct_response'")) != 0)
        return rc;
    gh_direct_response_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return gh_yaml_oom(doc);
    if ((rc = parse_fields(doc, n, d)) != 0) {
        free_conf(d);
        return rc;
    }
    route->direct = d;
    *conf = d;
    return 0;
}

static gh_filter_status_t on_request_headers(gh_stream_t *s, const void *conf, void *ctx)
{
    const gh_direct_response_t *d = conf;
    gh_h1_header_t hs[MAX_HEADERS];
    (void)ctx;
    for (size_t i = 0; i < d->num_headers; i++) {
        hs[i].name = d->headers[i].name;
        hs[i].name_len = d->headers[i].name_len;
        hs[i].value = d->headers[i].value;
        hs[i].value_len = d->headers[i].value_len;
    }
    gh_stream_reply(s, d->status, hs, d->num_headers, d->body, d->body_len);
    return GH_FILTER_REPLIED;
}

const gh_filter_type_t gh_direct_filter = {
    .name = "direct_response",
    .phase = GH_PHASE_TERMINAL,
    .parse = parse,
    .free_conf = free_conf,
    .on_request_headers = on_request_headers,
};
