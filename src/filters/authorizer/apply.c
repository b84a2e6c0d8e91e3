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
#include <gatehouse/metrics.h>

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

const char *gh_azr_context_json(gh_stream_t *s, const gh_authz_result_t *r, size_t *len)
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

/* A copy in the stream's arena: a cached entry's strings may go (the
 * entry evicted by another request of the worker) before the stream. */
static const char *arena_copy(gh_stream_t *s, const char *v, size_t n)
{
    char *b = gh_stream_alloc(s, n + 1);
    if (b != NULL) {
        memcpy(b, v, n);
        b[n] = '\0';
    }
    return b;
}

static int apply(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o, int keep_identity)
{
    const gh_azr_prepared_t *p = &o->allow;
    if (p->lines_len > 0 && gh_stream_add_header_lines(s, p->lines, p->lines_len) < 0)
        return -2;
    if (keep_identity)
        return 0;
    gh_identity_t *id = gh_stream_identity(s);
    if (id->provider == NULL)
        id->provider = a->conf->name;
    if (p->principal != NULL) {
        const char *v = arena_copy(s, p->principal, strlen(p->principal));
        if (v == NULL)
            return -2;
        if (id->consumer == NULL)
            id->consumer = v;
        if (id->subject == NULL && id->token == NULL)
            id->subject = v;
    }
    if (id->claims == NULL && id->token == NULL && p->claims != NULL) {
        const char *j = arena_copy(s, p->claims, p->claims_len);
        if (j == NULL)
            return -2;
        id->claims = j;
        id->claims_len = p->claims_len;
    }
    return 0;
}

/* Counts decision id, remembering its counter in c (may be NULL) for the
 * next request decided from the cache. */
__attribute__((noinline)) static void count_id(gh_stream_t *s, gh_azr_cache_t *c, uint32_t id)
{
    gh_decision_stats_t *d = gh_metrics_decision(gh_stream_metrics(s), id);
    if (d == NULL)
        return;
    GH_STAT_INC(d->count);
    if (c != NULL) {
        c->memo = &d->count;
        c->memo_id = id;
    }
}

static void count(gh_stream_t *s, const gh_azr_t *a, const gh_azr_outcome_t *o)
{
    gh_azr_cache_t *c = o->cache;
    uint32_t id = a->decision_ids[o->reason];
    if (c != NULL && c->memo != NULL && c->memo_id == id)
        GH_STAT_INC(*c->memo);
    else
        count_id(s, c, id);
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

/* Not with cache_scope process: its answers are in the process's table
 * (from_shared), never in the worker's cache that gh_azr_apply_cached
 * reads, and sizing the worker's cache for its cache_entries would both
 * allocate up to a million entries per worker for nothing and, growing,
 * drop every answer the worker cached for its other authorizers. */
int gh_azr_is_bearer_cached(const gh_azr_t *a)
{
    const gh_authorizer_conf_t *c = a->conf;
    return c->ttl_ms > 0 && a->shared == NULL && c->num_sources == 1 &&
           c->sources[0].authorization && c->format != GH_AUTHORIZER_ENVOY &&
           c->format != GH_AUTHORIZER_AWS_V1_TOKEN;
}

/* What gh_azr_check (without_call, from_cache, decide) and gh_azr_apply
 * do for this request, in one frame: the Authorization value is the key's
 * one value, as without_call takes it; a simple allow needs no method ARN
 * (decide); an IAM answer, a denial and a miss go the general way before
 * anything is changed. */
int gh_azr_apply_cached(gh_stream_t *s, const gh_azr_t *a, const gh_drop_list_t *l)
{
    const gh_h1_header_t *h = gh_stream_authorization(s);
    if (h == NULL || h->value_len == 0)
        return 0;
    gh_azr_cache_t *c = gh_azr_worker_cache(s, a);
    if (c == NULL)
        return 0;
    gh_authz_str_t v = {h->value, h->value_len};
    gh_azr_centry_t *e =
        gh_azr_cache_get(c, gh_azr_cache_hash(c, a->id, &v, 1), a->id, &v, 1, gh_stream_now_ms(s));
    if (e == NULL || !e->result.simple || !e->result.authorized)
        return 0;
    if (gh_stream_replace_headers(s, l, e->lines, e->lines_len) < 0)
        return -2;
    /* As apply (keep_identity 0), the principal and the context copied
     * into the stream in one piece: the entry may be evicted first. */
    gh_identity_t *id = gh_stream_identity(s);
    if (id->provider == NULL)
        id->provider = a->conf->name;
    int claims = id->claims == NULL && id->token == NULL && e->claims != NULL;
    size_t pn = e->principal != NULL ? e->principal_len + 1 : 0;
    size_t n = pn + (claims ? e->claims_len + 1 : 0);
    if (n > 0) {
        char *b = gh_stream_alloc(s, n);
        if (b == NULL)
            return -2;
        if (pn > 0) {
            memcpy(b, e->principal, pn);
            if (id->consumer == NULL)
                id->consumer = b;
            if (id->subject == NULL && id->token == NULL)
                id->subject = b;
        }
        if (claims) {
            memcpy(b + pn, e->claims, e->claims_len + 1);
            id->claims = b + pn;
            id->claims_len = e->claims_len;
        }
    }
    uint32_t did = a->decision_ids[GH_AZR_ALLOWED_CACHED];
    if (c->memo != NULL && c->memo_id == did)
        GH_STAT_INC(*c->memo);
    else
        count_id(s, c, did);
    gh_stream_log_note(s, "authorizer=allow_cached");
    return 1;
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
