/*
 * The issuer filter (docs/issuer.md): a route with `issuer: {}` serves the
 * OAuth 2.0 token service of the config's `issuer` section.
 *
 *   POST /oauth2/token                        client credentials (RFC 6749 4.4)
 *   POST /oauth2/introspect                   RFC 7662
 *   POST /oauth2/revoke                       RFC 7009
 *   GET  /oauth2/jwks                         the published keys
 *   GET  /.well-known/oauth-authorization-server   RFC 8414
 *   GET  /.well-known/openid-configuration         the same, for OIDC readers
 *
 * A POST's body is buffered (at most 32 KiB), read by the I/O-free core
 * (src/issuer/issuer.h), the client looked up in the store
 * (gh_store_client_lookup, on the worker's loop), authenticated, a client
 * assertion's jti claimed in the store (gh_store_jti_claim_async: once
 * for the whole fleet), and the answer built. Nothing blocks a worker: the
 * store calls are async, signing is a CPU step. Failed client
 * authentications are counted per client id with this address and per
 * address (throttle.c), refused with 429 past the limit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/sha.h>

#include <gatehouse/client.h>
#include <gatehouse/issuer_keys.h>
#include <gatehouse/log.h>
#include <gatehouse/revoked.h>
#include <gatehouse/store.h>

#include "filters/issuer/internal.h"
#include "issuer/issuer.h"

enum { EP_NONE = 0, EP_TOKEN, EP_INTROSPECT, EP_REVOKE, EP_JWKS, EP_META, EP_OIDC };

/* Events counted per route (gatehouse_filter_events_total{filter="issuer"}). */
enum {
    EV_ISSUED = 0,
    EV_INTROSPECTED,
    EV_REVOKED,
    EV_REFUSED,   /* any RFC 6749 error answer */
    EV_THROTTLED, /* 429: too many failed authentications */
    EV_COUNT
};
static const char *const event_names[EV_COUNT] = {"token_issued", "introspected", "revoked",
                                                  "refused", "throttled"};

/* The per-snapshot runtime (NULL without an issuer section). */
typedef struct {
    const gh_issuer_conf_t *is;
    gh_issuer_keys_t *keys; /* borrowed: the process's watcher */
    gh_store_t *store;      /* a reference, or NULL: store_error says why */
    char store_error[256];
    char *token_endpoint; /* is->url + "/oauth2/token" */
    char *meta, *oidc;    /* the discovery documents */
    size_t meta_len, oidc_len;
    char max_age[48]; /* the JWKS's Cache-Control */
} isf_rt_t;

typedef struct {
    const isf_rt_t *rt;
    uint32_t ev[EV_COUNT];
} isf_inst_t;

typedef struct view_s view_t;

typedef struct {
    const isf_inst_t *in;
    int ep;
    int has_req;
    gh_oauth_request_t req;
    gh_stream_handle_t *h;
    gh_store_req_t *sreq;
    int64_t now;
    /* Authenticated, waiting for the jti claim: the client's view (from
     * gh_stream_alloc, its keys already dropped) and token lifetime. */
    view_t *cv;
    int64_t token_ttl;
} isf_ctx_t;

/* The process's assertion replay cache: across snapshots, so that a reload
 * does not forget which assertions were used. Made by the first snapshot
 * with an issuer (main thread), freed at exit. */
static gh_oauth_replay_t *replay;

/* ---- config ---- */

static int parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg,
                 gh_route_t *route, void **conf)
{
    static const char *const keys[] = {NULL};
    int rc;
    (void)cfg;
    (void)route;
    (void)conf;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'issuer' on a route")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'issuer' on a route")) != 0)
        return rc;
    return 0;
}

static int check(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const gh_config_t *cfg,
                 const gh_route_t *route, const void *conf)
{
    (void)conf;
    if (cfg->issuer == NULL)
        return gh_yaml_error(doc, n,
                             "route '%s' serves the token endpoint: the configuration needs a "
                             "top-level 'issuer' section",
                             route->name);
    return 0;
}

/* ---- per snapshot ---- */

static char *discovery(const gh_issuer_conf_t *is, int oidc, size_t *len)
{
    static const char *const paths[4] = {"/oauth2/token", "/oauth2/jwks", "/oauth2/introspect",
                                         "/oauth2/revoke"};
    char u[4][600];
    for (int i = 0; i < 4; i++)
        snprintf(u[i], sizeof(u[i]), "%s%s", is->url, paths[i]);
    const char *alg = gh_jwt_alg_name((gh_jwt_alg_t)is->alg);
    /* RFC 8414 section 2; response_types_supported is required there and
     * empty here: this server has no authorization endpoint. Each endpoint
     * that lists private_key_jwt MUST list the assertion algorithms too
     * (section 2, for the token, revocation and introspection endpoints
     * alike): the same ones, since one check serves all three. */
    json_t *doc = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:[s],s:[],s:[sss],s:[ssss],s:[sss],s:[ssss],s:[sss],"
        "s:[ssss],s:[s]}",
        "issuer", is->url, "token_endpoint", u[0], "jwks_uri", u[1], "introspection_endpoint", u[2],
        "revocation_endpoint", u[3], "grant_types_supported", "client_credentials",
        "response_types_supported", "token_endpoint_auth_methods_supported", "client_secret_basic",
        "client_secret_post", "private_key_jwt", "token_endpoint_auth_signing_alg_values_supported",
        "ES256", "RS256", "PS256", "EdDSA", "introspection_endpoint_auth_methods_supported",
        "client_secret_basic", "client_secret_post", "private_key_jwt",
        "introspection_endpoint_auth_signing_alg_values_supported", "ES256", "RS256", "PS256",
        "EdDSA", "revocation_endpoint_auth_methods_supported", "client_secret_basic",
        "client_secret_post", "private_key_jwt",
        "revocation_endpoint_auth_signing_alg_values_supported", "ES256", "RS256", "PS256", "EdDSA",
        "access_token_signing_alg_values_supported", alg);
    if (doc != NULL && oidc) {
        json_object_set_new(doc, "subject_types_supported", json_pack("[s]", "public"));
        json_object_set_new(doc, "id_token_signing_alg_values_supported", json_pack("[s]", alg));
    }
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    *len = text != NULL ? strlen(text) : 0;
    return text;
}

static void isf_fini(void *p)
{
    isf_rt_t *rt = p;
    if (rt == NULL)
        return;
    gh_store_unref(rt->store);
    free(rt->token_endpoint);
    free(rt->meta);
    free(rt->oidc);
    free(rt);
}

static int isf_init(const gh_config_t *cfg, void **out)
{
    *out = NULL;
    if (cfg->issuer == NULL)
        return 0;
    isf_rt_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return -1;
    rt->is = cfg->issuer;
    rt->keys = gh_issuer_current();
    if (replay == NULL)
        replay = gh_oauth_replay_new(cfg->issuer->replay_capacity);
    gh_store_error_t err = {""};
    /* A new reference already (store.h): isf_fini drops it. */
    rt->store = gh_store_current_get(&err);
    if (rt->store == NULL)
        snprintf(rt->store_error, sizeof(rt->store_error), "%s", err.msg);
    snprintf(rt->max_age, sizeof(rt->max_age), "public, max-age=%llu",
             (unsigned long long)cfg->issuer->jwks_max_age);
    size_t n = strlen(cfg->issuer->url) + sizeof("/oauth2/token");
    if (replay == NULL || (rt->token_endpoint = malloc(n)) == NULL ||
        (rt->meta = discovery(cfg->issuer, 0, &rt->meta_len)) == NULL ||
        (rt->oidc = discovery(cfg->issuer, 1, &rt->oidc_len)) == NULL) {
        isf_fini(rt);
        return -1;
    }
    snprintf(rt->token_endpoint, n, "%s/oauth2/token", cfg->issuer->url);
    *out = rt;
    return 0;
}

static size_t isf_ready(const void *p, int detailed, char *out, size_t cap)
{
    const isf_rt_t *rt = p;
    const char *why = NULL;
    if (rt == NULL)
        return 0;
    if (rt->keys == NULL)
        why = "no signing keys";
    else if (!gh_issuer_keys_ok(rt->keys, &why))
        ; /* why set: an older set still serves */
    else if (rt->store == NULL)
        why = rt->store_error;
    if (why == NULL)
        return 0;
    snprintf(out, cap, "issuer: %s", detailed ? why : "see the log");
    return 1;
}

static void *isf_bind(void *p, const gh_config_t *cfg, const gh_route_t *route, const void *conf,
                      const char *listener)
{
    (void)cfg;
    (void)conf;
    (void)listener;
    isf_inst_t *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return NULL;
    in->rt = p;
    for (int i = 0; i < EV_COUNT; i++)
        in->ev[i] = gh_metrics_filter_id("issuer", route->name, event_names[i]);
    return in;
}

static void isf_unbind(void *in)
{
    free(in);
}

static void isf_service_free(void)
{
    gh_oauth_replay_free(replay);
    replay = NULL;
}

/* ---- replies ---- */

static void reply_error(gh_stream_t *s, const isf_inst_t *in, const gh_oauth_error_t *e)
{
    gh_oauth_reply_t r;
    gh_oauth_reply_error(e, "gatehouse", &r);
    gh_stream_count(s, in->ev[EV_REFUSED]);
    gh_stream_log_note(s, gh_oauth_code_name(e->code));
    gh_stream_reply(s, r.status, r.headers, r.nheaders, r.body, r.body_len);
}

static void reply_json(gh_stream_t *s, const char *body, size_t len)
{
    size_t nh;
    const gh_h1_header_t *hs = gh_oauth_json_headers(&nh);
    gh_stream_reply(s, 200, hs, nh, body, len);
}

static void fail_with(gh_stream_t *s, const isf_inst_t *in, gh_oauth_code_t code, int status,
                      const char *desc)
{
    gh_oauth_error_t e;
    gh_oauth_fail(&e, code, "%s", desc);
    if (status != 0)
        e.status = status;
    reply_error(s, in, &e);
}

/* ---- the GET endpoints ---- */

static void serve_get(gh_stream_t *s, const isf_inst_t *in, int ep)
{
    const isf_rt_t *rt = in->rt;
    if (ep == EP_JWKS) {
        gh_issuer_keyset_t *set = gh_issuer_keys_get(rt->keys);
        size_t len = 0;
        const char *doc = gh_issuer_keyset_jwks_json(set, (int64_t)time(NULL), &len);
        gh_h1_header_t hs[] = {{"Content-Type", 12, "application/json", 16},
                               {"Cache-Control", 13, rt->max_age, strlen(rt->max_age)}};
        gh_stream_reply(s, 200, hs, 2, doc, len);
        gh_issuer_keyset_unref(set);
        return;
    }
    gh_h1_header_t hs[] = {{"Content-Type", 12, "application/json", 16},
                           {"Cache-Control", 13, rt->max_age, strlen(rt->max_age)}};
    if (ep == EP_META)
        gh_stream_reply(s, 200, hs, 2, rt->meta, rt->meta_len);
    else
        gh_stream_reply(s, 200, hs, 2, rt->oidc, rt->oidc_len);
}

static int endpoint_of(const char *p, size_t n)
{
    static const struct {
        const char *path;
        int ep;
    } map[] = {
        {"/oauth2/token", EP_TOKEN},
        {"/oauth2/introspect", EP_INTROSPECT},
        {"/oauth2/revoke", EP_REVOKE},
        {"/oauth2/jwks", EP_JWKS},
        {"/.well-known/jwks.json", EP_JWKS},
        {"/.well-known/oauth-authorization-server", EP_META},
        {"/.well-known/openid-configuration", EP_OIDC},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strlen(map[i].path) == n && memcmp(map[i].path, p, n) == 0)
            return map[i].ep;
    return EP_NONE;
}

/* 1 when Content-Length says more than GH_OAUTH_MAX_BODY (the codec
 * checked its syntax: one field of digits). */
static int declared_too_large(const gh_stream_t *s)
{
    size_t n;
    const char *v = gh_stream_header_get(s, "content-length", &n);
    uint64_t len = 0;
    if (v == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9' || len > GH_OAUTH_MAX_BODY)
            return len > GH_OAUTH_MAX_BODY;
        len = len * 10 + (uint64_t)(v[i] - '0');
    }
    return len > GH_OAUTH_MAX_BODY;
}

static gh_filter_status_t on_request_headers(gh_stream_t *s, const void *conf, void *vctx)
{
    const isf_inst_t *in = conf;
    isf_ctx_t *ctx = vctx;
    const char *m, *path, *q;
    size_t ml, pl, ql;
    gh_stream_request_line(s, &m, &ml, &path, &pl, &q, &ql);
    int ep = endpoint_of(path, pl);
    ctx->in = in;
    ctx->ep = ep;
    if (ep == EP_NONE) {
        gh_stream_reply_error(s, 404, "not_found",
                              "the token service serves /oauth2/token, /oauth2/introspect, "
                              "/oauth2/revoke, /oauth2/jwks and /.well-known/"
                              "oauth-authorization-server");
        return GH_FILTER_REPLIED;
    }
    int is_get = (ml == 3 && memcmp(m, "GET", 3) == 0) || (ml == 4 && memcmp(m, "HEAD", 4) == 0);
    if (ep >= EP_JWKS) {
        if (!is_get) {
            gh_h1_header_t allow = {"Allow", 5, "GET, HEAD", 9};
            gh_stream_reply(s, 405, &allow, 1, NULL, 0);
            return GH_FILTER_REPLIED;
        }
        serve_get(s, in, ep);
        return GH_FILTER_REPLIED;
    }
    if (!(ml == 4 && memcmp(m, "POST", 4) == 0)) {
        fail_with(s, in, GH_OAUTH_INVALID_REQUEST, 405, "the token service takes POST");
        return GH_FILTER_REPLIED;
    }
    /* A declared length over the bound is answered here, as RFC 6749
     * section 5.2 asks, before any of it is read: the stream's own 413
     * (when a chunked body grows past it) is gatehouse's generic refusal. */
    if (declared_too_large(s)) {
        fail_with(s, in, GH_OAUTH_INVALID_REQUEST, 413, "the body is too large");
        return GH_FILTER_REPLIED;
    }
    gh_stream_buffer_body(s, GH_OAUTH_MAX_BODY);
    return GH_FILTER_BUFFER;
}

/* ---- the POST endpoints ---- */

/* Splits a space-separated list (copied into buf) into v. */
static size_t split(const char *list, char *buf, size_t cap, const char **v, size_t max)
{
    size_t n = 0;
    snprintf(buf, cap, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t != NULL && n < max;
         t = strtok_r(NULL, " ", &save))
        v[n++] = t;
    return n;
}

struct view_s {
    gh_oauth_client_t v;
    const char *scopes[GH_CLIENT_SCOPES_MAX];
    const char *auds[GH_CLIENT_AUDIENCES_MAX];
    char sbuf[GH_CLIENT_SCOPES_MAX * (GH_CLIENT_SCOPE_MAX + 1) + 1];
    char abuf[GH_CLIENT_AUDIENCES_MAX * (GH_CLIENT_AUDIENCE_MAX + 1) + 1];
    char id[GH_CLIENT_ID_LEN + 1]; /* v.id: the view outlives the record */
    gh_jwks_t *jwks;
};

/* The issuer's view of a store record (borrowed for the callback). 0, or
 * -1 when the record's keys do not parse (a server error: the store
 * checked them when the client was registered). */
static int view_of(const gh_issuer_conf_t *is, const gh_client_t *c, int64_t now, view_t *out)
{
    gh_oauth_client_t *v = &out->v;
    memset(v, 0, sizeof(*v));
    out->jwks = NULL;
    snprintf(out->id, sizeof(out->id), "%s", c->id);
    v->id = out->id;
    v->status = gh_client_state(c, now) == GH_CLIENT_REVOKED ? GH_OAUTH_CLIENT_REVOKED
                                                             : GH_OAUTH_CLIENT_ACTIVE;
    v->auth_methods = c->auth_methods; /* the same bits (client.h, issuer.h) */
    v->grant_types = GH_OAUTH_GRANT_CLIENT_CREDENTIALS;
    v->has_secret = c->has_secret;
    memcpy(v->secret_hash, c->secret_hash, sizeof(v->secret_hash));
    memcpy(v->previous_hash, c->prev_secret_hash, sizeof(v->previous_hash));
    v->previous_valid_until = c->prev_valid_until;
    for (size_t i = 0; i < is->num_introspectors; i++)
        if (strcmp(is->introspectors[i], c->id) == 0)
            v->may_introspect = 1;
    v->nscopes = split(c->scopes, out->sbuf, sizeof(out->sbuf), out->scopes, GH_CLIENT_SCOPES_MAX);
    v->scopes = out->scopes;
    v->naudiences =
        split(c->audiences, out->abuf, sizeof(out->abuf), out->auds, GH_CLIENT_AUDIENCES_MAX);
    v->audiences = out->auds;
    if (c->jwks != NULL) {
        char err[256];
        gh_jwks_opts_t opts = {0};
        out->jwks = gh_jwks_parse(c->jwks, strlen(c->jwks), &opts, err, sizeof(err));
        if (out->jwks == NULL)
            return -1;
        v->jwks = out->jwks;
    }
    return 0;
}

/* The throttle's keys: the client's address alone ('a'), and the client
 * id asked for together with the address ('p'). Not the client id alone:
 * client ids are public (every token names its client), and a limit on
 * the id alone would let anyone lock a client out. An address speaks for
 * every client behind it (a NAT, a sidecar host): its limit is ten times
 * a pair's. */
#define ADDRESS_FACTOR 10u

static size_t pair_key(const isf_ctx_t *ctx, const char *addr, char *buf, size_t cap)
{
    size_t n = ctx->req.client_id_len, a = strlen(addr);
    if (n + 1 + a > cap)
        return 0;
    memcpy(buf, ctx->req.client_id, n);
    buf[n] = '\0';
    memcpy(buf + n + 1, addr, a);
    return n + 1 + a;
}

static void count_failure(gh_stream_t *s, const isf_ctx_t *ctx, int64_t now)
{
    const char *addr = gh_stream_client_address(s);
    char key[GH_OAUTH_MAX_CLIENT_ID + 80];
    size_t n;
    gh_isf_throttle_fail('a', addr, strlen(addr), now);
    if (ctx->has_req && ctx->req.client_id != NULL &&
        (n = pair_key(ctx, addr, key, sizeof(key))) > 0)
        gh_isf_throttle_fail('p', key, n, now);
}

static void issue(gh_stream_t *s, isf_ctx_t *ctx, const view_t *cv)
{
    const isf_rt_t *rt = ctx->in->rt;
    gh_oauth_error_t err;
    gh_oauth_grant_t g;
    if (gh_oauth_grant(&ctx->req, &cv->v, rt->is->default_audience, &g, &err) != 0) {
        reply_error(s, ctx->in, &err);
        return;
    }
    gh_issuer_keyset_t *set = gh_issuer_keys_get(rt->keys);
    gh_issuer_signer_t sg;
    if (gh_issuer_keyset_signer(set, ctx->now, &sg) != 0) {
        gh_issuer_keyset_unref(set);
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503,
                  "no signing key is valid yet (clocks of the hosts sharing the keys differ)");
        return;
    }
    int64_t life = (int64_t)rt->is->token_ttl;
    if (ctx->token_ttl > 0 && ctx->token_ttl < life)
        life = ctx->token_ttl; /* a client's own lifetime only shortens */
    if (sg.max_exp != 0 && ctx->now + life > sg.max_exp)
        life = sg.max_exp - ctx->now;
    gh_oauth_mint_conf_t mc = {.issuer = rt->is->url,
                               .key = sg.key,
                               .alg = sg.alg,
                               .kid = sg.kid,
                               .lifetime = life > 0 ? life : 1};
    gh_oauth_token_t tok;
    int rc = gh_oauth_mint(&mc, &g, ctx->now, NULL, &tok, &err);
    gh_issuer_keyset_unref(set);
    if (rc != 0) {
        reply_error(s, ctx->in, &err);
        return;
    }
    gh_stream_count(s, ctx->in->ev[EV_ISSUED]);
    gh_stream_log_note(s, "issuer=token_issued");
    reply_json(s, tok.body, tok.body_len);
    gh_oauth_token_dispose(&tok);
}

/* Reads tok as one of ours at now into *ti (dispose it). -1: out of memory. */
static int inspect(const isf_rt_t *rt, const char *tok, size_t len, int64_t now,
                   gh_oauth_token_info_t *ti)
{
    memset(ti, 0, sizeof(*ti));
    gh_issuer_keyset_t *set = gh_issuer_keys_get(rt->keys);
    gh_jwks_t *keys = gh_issuer_keyset_jwks(set, now);
    int rc = 0;
    if (keys != NULL) {
        gh_oauth_inspect_conf_t ic = {keys, rt->is->url, (int64_t)rt->is->leeway, NULL};
        rc = gh_oauth_token_inspect(&ic, tok, len, now, ti);
    }
    gh_issuer_keyset_unref(set);
    return rc == 0 ? 0 : -1;
}

static void introspect(gh_stream_t *s, isf_ctx_t *ctx, const view_t *cv)
{
    gh_oauth_token_info_t ti;
    char *body = NULL;
    size_t len = 0;
    if (inspect(ctx->in->rt, ctx->req.token, ctx->req.token_len, ctx->now, &ti) != 0) {
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503, "out of memory");
        return;
    }
    int revoked = ti.ours && ti.jti != NULL && gh_revoked_has(ti.jti, strlen(ti.jti), ctx->now);
    int rc = gh_oauth_introspection_body(&ti, revoked, &cv->v, &body, &len);
    gh_oauth_token_info_dispose(&ti);
    if (rc != 0) {
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503, "out of memory");
        return;
    }
    gh_stream_count(s, ctx->in->ev[EV_INTROSPECTED]);
    reply_json(s, body, len);
    free(body);
}

/* A store call the stream paused for has answered: the call is over, and
 * the stream, if it is still there, is the caller's to go on with. */
static gh_stream_t *resumed(isf_ctx_t *ctx)
{
    ctx->sreq = NULL;
    gh_stream_t *s = gh_stream_handle_take(ctx->h);
    ctx->h = NULL;
    return s;
}

static void revoked_stored(void *arg, int status)
{
    isf_ctx_t *ctx = arg;
    gh_stream_t *s = resumed(ctx);
    if (s == NULL)
        return;
    if (status != 0 && status != -EALREADY) {
        /* Known revoked here already; the others would not learn it. */
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503,
                  "the revocation could not be stored; try again");
        return;
    }
    gh_stream_count(s, ctx->in->ev[EV_REVOKED]);
    gh_h1_header_t hs[] = {{"Cache-Control", 13, "no-store", 8}};
    gh_stream_reply(s, 200, hs, 1, NULL, 0);
}

/* 1 when the stream paused for the store write. */
static int revoke_token(gh_stream_t *s, isf_ctx_t *ctx, const view_t *cv)
{
    const isf_rt_t *rt = ctx->in->rt;
    gh_oauth_token_info_t ti;
    gh_oauth_error_t err;
    gh_oauth_revocation_t rv;
    if (inspect(rt, ctx->req.token, ctx->req.token_len, ctx->now, &ti) != 0) {
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503, "out of memory");
        return 0;
    }
    /* Kept until no JWT filter takes the token any more: an `issuer: self`
     * provider may allow more skew past exp (clock_skew, at most
     * GH_JWT_MAX_CLOCK_SKEW) than the issuer's leeway. */
    int64_t keep = (int64_t)rt->is->leeway;
    if (keep < GH_JWT_MAX_CLOCK_SKEW)
        keep = GH_JWT_MAX_CLOCK_SKEW;
    if (gh_oauth_revocation_decide(&ctx->req, &ti, &cv->v, keep, ctx->now, &rv, &err) != 0) {
        gh_oauth_token_info_dispose(&ti);
        reply_error(s, ctx->in, &err);
        return 0;
    }
    if (!rv.revoke) {
        gh_oauth_token_info_dispose(&ti);
        gh_h1_header_t hs[] = {{"Cache-Control", 13, "no-store", 8}};
        gh_stream_reply(s, 200, hs, 1, NULL, 0);
        return 0;
    }
    /* Refused here at once; everywhere else once the store has it. A set
     * that cannot take it (2^20 live revocations, or no memory) would
     * leave the token good: say so, never 200. */
    if (gh_revoked_add(rv.jti, strlen(rv.jti), rv.until) != 0) {
        gh_oauth_token_info_dispose(&ti);
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503,
                  "the token cannot be revoked now: the revoked-token set is full");
        return 0;
    }
    ctx->h = gh_stream_pause(s);
    int rc = ctx->h != NULL
                 ? gh_store_revocation_add_async(rt->store, gh_stream_loop(s), rv.jti, rv.until,
                                                 ctx->now, revoked_stored, ctx, &ctx->sreq)
                 : -ENOMEM;
    gh_oauth_token_info_dispose(&ti);
    if (rc != 0) {
        gh_stream_handle_take(ctx->h);
        ctx->h = NULL;
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503,
                  "the revocation could not be stored; try again");
        return 0;
    }
    return 1;
}

/* The client is authenticated (and its assertion, if any, claimed). */
static void answer(gh_stream_t *s, isf_ctx_t *ctx, const view_t *cv)
{
    if (ctx->ep == EP_TOKEN)
        issue(s, ctx, cv);
    else if (ctx->ep == EP_INTROSPECT)
        introspect(s, ctx, cv);
    else
        revoke_token(s, ctx, cv);
}

/* The jti as the store takes it (gh_store_jti_valid): printable ASCII as
 * it is; any other bytes (UTF-8, controls: a jti is any JSON string) as
 * "sha256:" and the hex digest of them, so that every jti can be claimed.
 * A client that sends that very text as a jti can only refuse its own
 * other assertion: claims are per client. */
static void store_jti(const char *jti, size_t len, char out[GH_STORE_JTI_MAX + 1])
{
    int plain = len > 0 && len <= GH_STORE_JTI_MAX;
    for (size_t i = 0; plain && i < len; i++)
        plain = (unsigned char)jti[i] >= 0x20 && (unsigned char)jti[i] <= 0x7e;
    if (plain) {
        memcpy(out, jti, len);
        out[len] = '\0';
        return;
    }
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)jti, len, d);
    memcpy(out, "sha256:", 7);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
}

static void on_claimed(void *arg, int status)
{
    isf_ctx_t *ctx = arg;
    gh_stream_t *s = resumed(ctx);
    view_t *cv = ctx->cv;
    ctx->cv = NULL;
    if (s == NULL)
        return;
    if (status == -EEXIST) {
        /* Another gatehouse of the fleet took this assertion: the answer
         * the in-process cache gives for one taken here. */
        count_failure(s, ctx, ctx->now);
        fail_with(s, ctx->in, GH_OAUTH_INVALID_CLIENT, 0,
                  "client assertion: this jti was used before");
        return;
    }
    if (status != 0) {
        /* Fail closed: without the claim the assertion could be taken
         * again elsewhere. The jti is spent here either way (the
         * in-process cache has it): the client makes a new assertion. */
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503,
                  "the client assertion could not be recorded; try again with a new one");
        return;
    }
    /* The time is taken again: a slow store must not stretch a token. */
    ctx->now = (int64_t)time(NULL);
    answer(s, ctx, cv);
}

/* Claims res's jti in the store for the whole fleet before answering:
 * 1 when the stream paused for it, 0 when it answered (a failure). cv
 * (from gh_stream_alloc) is kept for on_claimed; its keys are dropped. */
static int claim(gh_stream_t *s, isf_ctx_t *ctx, view_t *cv, const gh_oauth_auth_result_t *res)
{
    const isf_rt_t *rt = ctx->in->rt;
    char jti[GH_STORE_JTI_MAX + 1];
    store_jti(res->jti, res->jti_len, jti);
    gh_jwks_unref(cv->jwks);
    cv->jwks = NULL;
    cv->v.jwks = NULL;
    ctx->cv = cv;
    ctx->h = gh_stream_pause(s);
    int rc = ctx->h != NULL
                 ? gh_store_jti_claim_async(rt->store, gh_stream_loop(s), cv->id, jti,
                                            res->jti_until, ctx->now, on_claimed, ctx, &ctx->sreq)
                 : -ENOMEM;
    if (rc != 0) {
        gh_stream_handle_take(ctx->h);
        ctx->h = NULL;
        ctx->cv = NULL;
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503,
                  rc == -EAGAIN ? "too many store requests in flight; try again with a new "
                                  "client assertion"
                                : "the client assertion could not be recorded; try again with a "
                                  "new one");
        return 0;
    }
    return 1;
}

/* The client's record is in (or not): authenticate, claim an assertion's
 * jti, then the endpoint. */
static void with_client(gh_stream_t *s, isf_ctx_t *ctx, const gh_client_t *rec)
{
    const isf_rt_t *rt = ctx->in->rt;
    gh_oauth_error_t err;
    gh_oauth_auth_result_t res;
    view_t *cv = gh_stream_alloc(s, sizeof(*cv));
    if (cv == NULL) {
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503, "out of memory");
        return;
    }
    /* gh_stream_alloc does not zero, and without a record view_of does not
     * run: every path below unrefs jwks. */
    cv->jwks = NULL;
    if (rec != NULL && view_of(rt->is, rec, ctx->now, cv) != 0) {
        gh_jwks_unref(cv->jwks);
        fail_with(s, ctx->in, GH_OAUTH_SERVER_ERROR, 500,
                  "the client's registered keys do not load");
        return;
    }
    gh_oauth_auth_conf_t ac = {.token_endpoint = rt->token_endpoint,
                               .issuer = rt->is->url,
                               .skew = (int64_t)rt->is->leeway,
                               .max_assertion_lifetime = (int64_t)rt->is->assertion_lifetime,
                               .verifier = NULL,
                               .replay = replay};
    ctx->token_ttl = rec != NULL ? rec->token_ttl : 0;
    if (gh_oauth_client_authenticate(&ctx->req, rec != NULL ? &cv->v : NULL, &ac, ctx->now, &res,
                                     &err) != 0) {
        if (err.code == GH_OAUTH_INVALID_CLIENT)
            count_failure(s, ctx, ctx->now);
        gh_jwks_unref(cv->jwks);
        reply_error(s, ctx->in, &err);
        return;
    }
    if (res.jti != NULL) {
        /* The in-process cache (inside authenticate) refused a replay at
         * this gatehouse already, without a store call; the store's claim
         * refuses one at any other sharing the store. */
        claim(s, ctx, cv, &res);
        return;
    }
    answer(s, ctx, cv);
    gh_jwks_unref(cv->jwks);
}

static void on_client(void *arg, int status, const gh_client_t *c)
{
    isf_ctx_t *ctx = arg;
    gh_stream_t *s = resumed(ctx);
    if (s == NULL)
        return;
    if (status != 0 && status != -ENOENT) {
        fail_with(s, ctx->in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503,
                  "the client store cannot be read; try again");
        return;
    }
    /* The time is taken again: a slow store must not stretch a token. */
    ctx->now = (int64_t)time(NULL);
    with_client(s, ctx, status == 0 ? c : NULL);
}

static gh_filter_status_t on_request_buffered(gh_stream_t *s, const void *conf, void *vctx,
                                              const char *body, size_t len)
{
    const isf_inst_t *in = conf;
    const isf_rt_t *rt = in->rt;
    isf_ctx_t *ctx = vctx;
    gh_oauth_error_t err;
    const char *m, *path, *q;
    size_t ml, pl, ql, nh;
    gh_stream_request_line(s, &m, &ml, &path, &pl, &q, &ql);
    gh_oauth_http_t http = {m, ml, gh_stream_headers(s, &nh), 0, body, len};
    http.nheaders = nh;
    gh_oauth_endpoint_t ep = ctx->ep == EP_TOKEN        ? GH_OAUTH_TOKEN
                             : ctx->ep == EP_INTROSPECT ? GH_OAUTH_INTROSPECT
                                                        : GH_OAUTH_REVOKE;
    ctx->now = (int64_t)time(NULL);
    if (gh_oauth_request_parse(ep, &http, &ctx->req, &err) != 0) {
        if (err.code == GH_OAUTH_INVALID_CLIENT)
            count_failure(s, ctx, ctx->now);
        reply_error(s, in, &err);
        return GH_FILTER_REPLIED;
    }
    ctx->has_req = 1;
    const char *addr = gh_stream_client_address(s);
    char key[GH_OAUTH_MAX_CLIENT_ID + 80];
    size_t kn = pair_key(ctx, addr, key, sizeof(key));
    uint64_t wait = gh_isf_throttle_blocked('a', addr, strlen(addr),
                                            rt->is->failed_auth_limit * ADDRESS_FACTOR, ctx->now);
    if (wait == 0 && kn > 0)
        wait = gh_isf_throttle_blocked('p', key, kn, rt->is->failed_auth_limit, ctx->now);
    if (wait > 0) {
        char ra[24];
        int k = snprintf(ra, sizeof(ra), "%llu", (unsigned long long)wait);
        gh_stream_add_response_header(s, "Retry-After", 11, ra, (size_t)k);
        gh_stream_count(s, in->ev[EV_THROTTLED]);
        fail_with(s, in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 429,
                  "too many failed client authentications from this client or address; retry "
                  "later");
        return GH_FILTER_REPLIED;
    }
    if (rt->store == NULL) {
        fail_with(s, in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503, "the client store is not open");
        return GH_FILTER_REPLIED;
    }
    /* An id gatehouse never makes is nobody: no store call, the same
     * answer (and the same hashing) as for an unknown one. */
    if (!gh_client_id_valid_n(ctx->req.client_id, ctx->req.client_id_len)) {
        with_client(s, ctx, NULL);
        return GH_FILTER_REPLIED;
    }
    ctx->h = gh_stream_pause(s);
    if (ctx->h == NULL) {
        fail_with(s, in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503, "out of memory");
        return GH_FILTER_REPLIED;
    }
    int rc = gh_store_client_lookup(rt->store, gh_stream_loop(s), ctx->req.client_id, on_client,
                                    ctx, &ctx->sreq);
    if (rc != 0) {
        gh_stream_handle_take(ctx->h);
        ctx->h = NULL;
        fail_with(s, in, GH_OAUTH_TEMPORARILY_UNAVAILABLE, 503,
                  rc == -EAGAIN ? "too many client lookups in flight; try again"
                                : "the client store cannot be read; try again");
        return GH_FILTER_REPLIED;
    }
    return GH_FILTER_PAUSE;
}

static void on_cancel(gh_stream_t *s, const void *conf, void *vctx)
{
    isf_ctx_t *ctx = vctx;
    (void)s;
    (void)conf;
    if (ctx->sreq != NULL)
        gh_store_req_cancel(ctx->sreq);
    ctx->sreq = NULL;
    gh_stream_handle_take(ctx->h);
    ctx->h = NULL;
    ctx->cv = NULL; /* the stream's memory: freed with it */
}

static void on_destroy(gh_stream_t *s, const void *conf, void *vctx)
{
    isf_ctx_t *ctx = vctx;
    (void)s;
    (void)conf;
    if (ctx->has_req)
        gh_oauth_request_dispose(&ctx->req);
    ctx->has_req = 0;
}

const gh_filter_type_t gh_issuer_filter = {
    .name = "issuer",
    .phase = GH_PHASE_TERMINAL,
    .ctx_size = sizeof(isf_ctx_t),
    .parse = parse,
    .check = check,
    .init = isf_init,
    .fini = isf_fini,
    .ready = isf_ready,
    .bind = isf_bind,
    .unbind = isf_unbind,
    .service_free = isf_service_free,
    .on_request_headers = on_request_headers,
    .on_request_buffered = on_request_buffered,
    .on_cancel = on_cancel,
    .on_destroy = on_destroy,
};
