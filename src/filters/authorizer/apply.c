/*
 * An authorizer's outcome applied to the stream (authorizer.h).
 *
 * Allow: principalId becomes the consumer (what rate limits and usage
 * plans key by, and policies' request.auth.consumer... ) and, without a
 * verified JWT, the subject (the access log's principal); the context
 * becomes the identity's claims (a JSON object), so that policies
 * (request.auth.claims[KEY]) and limits (key: claim:KEY) read it as they
 * read a token's claims. The configured headers are set upstream; the
 * client's copies of those names were dropped before anything was decided
 * (gh_azr_drop_headers), so an absent value never lets one through.
 *
 * Refusals use API Gateway's statuses with gatehouse's JSON bodies; an
 * envoy service's refusal goes to the client as it was sent (its status,
 * content-type and client_headers, its body).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <gatehouse/fields.h>

#include "filters/authorizer/authorizer.h"

int gh_azr_drop_headers(gh_stream_t *s, const gh_azr_t *a)
{
    const gh_authorizer_conf_t *c = a->conf;
    int rc = 0;
    for (size_t i = 0; i < c->num_headers; i++)
        rc |= gh_stream_drop_header_static(s, c->headers[i].header, strlen(c->headers[i].header));
    for (size_t i = 0; i < c->num_upstream_headers; i++)
        rc |=
            gh_stream_drop_header_static(s, c->upstream_headers[i], strlen(c->upstream_headers[i]));
    return rc < 0 ? -1 : 0;
}

/* The context as a JSON object text in the stream's arena, or NULL. */
static const char *context_json(gh_stream_t *s, const gh_authz_result_t *r, size_t *len)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < r->nctx; i++) {
        const gh_authz_ctx_t *c = &r->ctx[i];
        json_t *v = c->type == GH_AUTHZ_CTX_STRING
                        ? json_stringn(c->value, c->value_len)
                        : json_loadb(c->value, c->value_len, JSON_DECODE_ANY, NULL);
        if (v == NULL || json_object_set_new(o, c->key, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (t == NULL)
        return NULL;
    *len = strlen(t);
    char *b = gh_stream_alloc(s, *len + 1);
    if (b != NULL)
        memcpy(b, t, *len + 1);
    free(t);
    return b;
}

static char *arena_dup(gh_stream_t *s, const char *v)
{
    size_t n = strlen(v);
    char *b = gh_stream_alloc(s, n + 1);
    if (b != NULL)
        memcpy(b, v, n + 1);
    return b;
}

static int apply(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o, int keep_identity)
{
    const gh_authorizer_conf_t *c = a->conf;
    if (o->lines_len > 0 && gh_stream_add_header_lines(s, o->lines, o->lines_len) < 0)
        return -2;
    const gh_authz_result_t *r = o->result;
    if (r == NULL)
        return 0;
    /* Every value is checked before any is set: a malformed answer adds
     * nothing. */
    for (size_t i = 0; i < c->num_headers; i++) {
        const char *v;
        size_t n;
        if (gh_authz_result_value(r, c->headers[i].source, &v, &n) < 0)
            return -1;
    }
    for (size_t i = 0; i < c->num_headers; i++) {
        const char *v;
        size_t n;
        if (gh_authz_result_value(r, c->headers[i].source, &v, &n) == 1 &&
            gh_stream_add_header(s, c->headers[i].header, strlen(c->headers[i].header), v, n) < 0)
            return -2;
    }
    if (keep_identity)
        return 0;
    gh_identity_t *id = gh_stream_identity(s);
    if (id->provider == NULL)
        id->provider = c->name;
    if (r->principal != NULL) {
        char *p = arena_dup(s, r->principal);
        if (p == NULL)
            return -2;
        if (id->consumer == NULL)
            id->consumer = p;
        if (id->subject == NULL && id->token == NULL)
            id->subject = p;
    }
    if (id->claims == NULL && id->token == NULL && r->nctx > 0) {
        size_t n = 0;
        const char *j = context_json(s, r, &n);
        if (j == NULL)
            return -2;
        id->claims = j;
        id->claims_len = n;
    }
    return 0;
}

static void count(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o)
{
    gh_azr_count(s, a, (gh_azr_reason_t)o->reason);
}

int gh_azr_apply(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o, int keep_identity)
{
    int rc = apply(s, a, o, keep_identity);
    if (rc == 0) {
        count(s, a, o);
        gh_stream_log_note(s, o->reason == GH_AZR_ALLOWED_CACHED ? "authorizer=allow_cached"
                                                                 : "authorizer=allow");
    }
    return rc;
}

/* The envoy service's answer, passed on. */
static void envoy_reply(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o)
{
    const gh_authorizer_conf_t *c = a->conf;
    gh_h1_header_t hs[64];
    size_t n = 0;
    for (size_t i = 0; i < o->num_headers && n < 64; i++) {
        const gh_h1_header_t *h = &o->headers[i];
        int ok = h->name_len == 12 && gh_field_name_same(h->name, 12, "content-type", 12);
        for (size_t k = 0; !ok && k < c->num_client_headers; k++)
            ok = strlen(c->client_headers[k]) == h->name_len &&
                 gh_field_name_same(c->client_headers[k], h->name_len, h->name, h->name_len);
        if (ok)
            hs[n++] = *h;
    }
    int status = o->status >= 200 && o->status <= 599 ? o->status : 403;
    gh_stream_reply(s, status, hs, n, o->body, o->body_len);
}

int gh_azr_refuse(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o, const char *policy)
{
    const gh_authorizer_conf_t *c = a->conf;
    const char *members[4] = {"authorizer", c->name, "policy", policy};
    size_t nm = policy != NULL ? 2 : 1;
    char hdr[300];
    count(s, a, o);
    switch (o->kind) {
    case GH_AZR_OUT_MISSING:
    case GH_AZR_OUT_UNAUTH:
        snprintf(hdr, sizeof(hdr), "www-authenticate: Bearer realm=\"%s\"\r\n", c->realm);
        gh_stream_log_note(s, "authorizer=unauthorized");
        gh_stream_reply_error_members(s, 401, "unauthorized", o->why, members, nm, hdr);
        return 1;
    case GH_AZR_OUT_DENY:
        gh_stream_log_note(s, "authorizer=deny");
        gh_stream_reply_error_members(s, 403, "forbidden", o->why, members, nm, NULL);
        return 1;
    case GH_AZR_OUT_BAD:
        gh_stream_log_note(s, "authorizer=bad_request");
        gh_stream_reply_error_members(s, o->status,
                                      o->status == 414 ? "uri_too_long" : "bad_request", o->why,
                                      members, nm, NULL);
        return 1;
    case GH_AZR_OUT_ENVOY:
        gh_stream_log_note(s, "authorizer=deny");
        envoy_reply(s, a, o);
        return 1;
    case GH_AZR_OUT_ERROR:
    default:
        if (c->on_error == GH_AUTHZ_ON_ERROR_ALLOW) {
            gh_stream_log_note(s, "authorizer=error_allowed");
            return 0;
        }
        gh_stream_log_note(s, "authorizer=error");
        if (c->on_error == GH_AUTHZ_ON_ERROR_503)
            gh_stream_reply_error_members(s, 503, "service_unavailable", o->why, members, nm, NULL);
        else
            gh_stream_reply_error_members(s, 500, "authorizer_error", o->why, members, nm, NULL);
        return 1;
    }
}
