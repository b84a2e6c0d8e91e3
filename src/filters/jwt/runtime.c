/* The authn filter's per-snapshot runtime: one entry per JWT provider (key
 * ring, claims policy, metric ids), and the type's config, readiness and
 * service hooks. See internal.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gatehouse/metrics.h>
#include <gatehouse/pairs.h>
#include <gatehouse/revoked.h>

#include "filters/jwt/internal.h"

/* ---- runtime ---- */

uint64_t gh_jwtf_self_generation(const gh_jwt_runtime_t *rt)
{
    gh_issuer_keyset_t *set = gh_issuer_keys_get(rt->self);
    gh_jwks_t *keys = gh_issuer_keyset_jwks(set, (int64_t)time(NULL));
    uint64_t g = keys != NULL ? gh_jwks_generation(keys) : 0;
    gh_issuer_keyset_unref(set);
    if (g == 0)
        return 0; /* no key published: nothing verifies */
    g ^= gh_revoked_generation() * 0x9e3779b97f4a7c15ULL;
    return g != 0 ? g : 1;
}

gh_jwks_t *gh_jwtf_self_keys(const gh_jwt_runtime_t *rt)
{
    gh_issuer_keyset_t *set = gh_issuer_keys_get(rt->self);
    gh_jwks_t *keys = gh_issuer_keyset_jwks(set, (int64_t)time(NULL));
    if (keys != NULL)
        gh_jwks_ref(keys);
    gh_issuer_keyset_unref(set);
    return keys;
}

static uint64_t next_runtime_id; /* atomic */

gh_jwt_runtime_t *gh_jwtf_runtime_new(const gh_jwt_provider_conf_t *p)
{
    gh_jwt_runtime_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return NULL;
    rt->id = __atomic_add_fetch(&next_runtime_id, 1, __ATOMIC_RELAXED);
    rt->conf = p;
    if (p->jwks_source == GH_JWKS_SELF)
        rt->self = gh_issuer_current();
    else
        rt->keyring = gh_keyring_acquire(p);
    rt->reqs = calloc(p->num_required_claims + 1, sizeof(*rt->reqs));
    if ((rt->keyring == NULL && rt->self == NULL) || rt->reqs == NULL) {
        gh_jwtf_runtime_free(rt);
        return NULL;
    }
    size_t scope_len = 0;
    for (size_t i = 0; i < p->num_required_claims; i++) {
        const gh_claim_req_t *r = &p->required_claims[i];
        rt->reqs[i].path = r->claim;
        rt->reqs[i].op = r->op == GH_CLAIM_EXACT    ? GH_JWT_CLAIM_EXACT
                         : r->op == GH_CLAIM_ONE_OF ? GH_JWT_CLAIM_ONE_OF
                                                    : GH_JWT_CLAIM_CONTAINS;
        rt->reqs[i].values = (const char *const *)r->values;
        rt->reqs[i].nvalues = r->num_values;
        if (strcmp(r->claim, "scope") == 0 || strcmp(r->claim, "scp") == 0)
            for (size_t j = 0; j < r->num_values; j++)
                scope_len += strlen(r->values[j]) + 1;
    }
    if (scope_len > 0 && (rt->scope_needed = calloc(1, scope_len + 1)) != NULL) {
        for (size_t i = 0; i < p->num_required_claims; i++) {
            const gh_claim_req_t *r = &p->required_claims[i];
            if (strcmp(r->claim, "scope") != 0 && strcmp(r->claim, "scp") != 0)
                continue;
            for (size_t j = 0; j < r->num_values; j++) {
                if (rt->scope_needed[0])
                    strcat(rt->scope_needed, " ");
                strcat(rt->scope_needed, r->values[j]);
            }
        }
    }
    rt->policy.issuer = p->issuer;
    rt->policy.audiences = (const char *const *)p->audiences;
    rt->policy.naudiences = p->num_audiences;
    rt->policy.skew = (int64_t)p->clock_skew_s;
    rt->policy.exp_optional = p->exp_optional;
    rt->policy.typ = p->typ;
    rt->policy.required = rt->reqs;
    rt->policy.nrequired = p->num_required_claims;
    rt->policy.max_age = (int64_t)p->max_token_age_s;
    for (size_t i = 0; i < GH_JWT_REASON_COUNT; i++)
        rt->decision_ids[i] = gh_metrics_decision_id(p->name, i == GH_JWT_OK ? "allow" : "deny",
                                                     gh_jwt_reason_text((gh_jwt_reason_t)i));
    return rt;
}

void gh_jwtf_runtime_free(gh_jwt_runtime_t *rt)
{
    if (rt == NULL)
        return;
    gh_keyring_release(rt->keyring);
    free(rt->reqs);
    free(rt->scope_needed);
    free(rt);
}

void gh_jwtf_count(gh_stream_t *s, const gh_jwt_runtime_t *rt, gh_jwt_reason_t r)
{
    gh_decision_stats_t *d = gh_metrics_decision(gh_stream_metrics(s), rt->decision_ids[r]);
    if (d != NULL)
        GH_STAT_INC(d->count);
}

/* ---- the type's table: config, runtime, readiness ---- */

/* The snapshot's runtime: one entry per provider of the config. */
typedef struct {
    const gh_config_t *cfg;
    gh_jwt_runtime_t **rt; /* cfg->num_jwt_providers */
    gh_jwtf_ak_runtime_t ak;
    gh_azr_set_t *az; /* the config's authorizers, or NULL when it has none */
} runtimes_t;

int gh_jwtf_parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                  gh_route_t *route, void **conf)
{
    int rc = gh_config_parse_authn(doc, node, cfg, route);
    if (rc != 0) {
        gh_config_free_authn(route->authn);
        route->authn = NULL;
        return rc;
    }
    *conf = route->authn;
    return 0;
}

void gh_jwtf_free_conf(void *conf)
{
    gh_config_free_authn(conf);
}

void gh_jwtf_fini(void *p)
{
    runtimes_t *r = p;
    if (r == NULL)
        return;
    for (size_t i = 0; r->rt != NULL && i < r->cfg->num_jwt_providers; i++)
        gh_jwtf_runtime_free(r->rt[i]);
    free(r->rt);
    gh_jwtf_ak_fini(&r->ak);
    gh_azr_set_free(r->az);
    free(r);
}

/* Every provider gets its runtime, whether a route uses it or not: /ready
 * waits for every provider's keys, as before the registry. */
int gh_jwtf_init(const gh_config_t *cfg, void **out)
{
    *out = NULL;
    if (cfg->num_jwt_providers == 0 && cfg->num_apikey_providers == 0 && cfg->num_authorizers == 0)
        return 0;
    runtimes_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    r->cfg = cfg;
    r->rt = calloc(cfg->num_jwt_providers + 1, sizeof(*r->rt));
    if (r->rt == NULL || gh_jwtf_ak_init(cfg, &r->ak) < 0) {
        gh_jwtf_fini(r);
        return -1;
    }
    if (cfg->num_authorizers > 0 && (r->az = gh_azr_set_new(cfg)) == NULL) {
        gh_jwtf_fini(r);
        return -1;
    }
    for (size_t i = 0; i < cfg->num_jwt_providers; i++)
        if ((r->rt[i] = gh_jwtf_runtime_new(&cfg->jwt_providers[i])) == NULL) {
            gh_jwtf_fini(r);
            return -1;
        }
    *out = r;
    return 0;
}

/* Required keys: every provider must have loaded once. Each one that has
 * not is a line of its own, so an operator sees them all at once. */
/* Appends line to out[0..cap) after *o, "\n"-separated, if it fits. */
static void put_line(char *out, size_t cap, size_t *o, const char *line)
{
    size_t len = strlen(line);
    if (*o + 1 + len >= cap)
        return;
    if (*o > 0)
        out[(*o)++] = '\n';
    memcpy(out + *o, line, len + 1);
    *o += len;
}

/* Lines listed before the rest are only counted. */
#define READY_LINES_MAX 32

size_t gh_jwtf_ready(const void *p, int detailed, char *out, size_t cap)
{
    const runtimes_t *r = p;
    size_t listed = 0, more = 0, o = 0;
    for (size_t i = 0; r != NULL && i < r->cfg->num_jwt_providers; i++) {
        const char *why;
        int ok;
        if (r->rt[i]->keyring != NULL) {
            ok = gh_keyring_ready(r->rt[i]->keyring, &why);
        } else {
            ok = gh_jwtf_self_generation(r->rt[i]) != 0;
            why = "the issuer has no signing key published yet";
        }
        if (ok)
            continue;
        if (listed == READY_LINES_MAX) {
            more++;
            continue;
        }
        char one[512];
        /* why may name a file, a URL or quote a JWKS host's answer. */
        snprintf(one, sizeof(one), "jwt provider '%s': %s", r->cfg->jwt_providers[i].name,
                 detailed ? why : "keys not loaded (details need the admin token)");
        for (char *c = one; *c != '\0'; c++)
            if (*c == '\n')
                *c = ' ';
        put_line(out, cap, &o, one);
        listed++;
    }
    if (more > 0) {
        char one[80];
        snprintf(one, sizeof(one), "and %zu more jwt providers without keys", more);
        put_line(out, cap, &o, one);
        listed++;
    }
    char one[128];
    if (r != NULL && gh_jwtf_ak_ready(&r->ak, r->cfg, one, sizeof(one)) > 0) {
        put_line(out, cap, &o, one);
        listed++;
    }
    char az[1024];
    size_t naz = r != NULL ? gh_azr_set_ready(r->az, detailed, az, sizeof(az)) : 0;
    if (naz > 0) {
        put_line(out, cap, &o, az);
        listed += naz;
    }
    return listed;
}

static int bind_drops(gh_authn_filter_conf_t *fc);

/* fc->ak_name_words and its words (internal.h), for a lower-case name. */
static void bind_name_words(gh_authn_filter_conf_t *fc, const char *name, size_t len)
{
    if (len < 8 || len > 16)
        return;
    for (int k = 0; k < 2; k++) {
        const char *w = name + (k == 0 ? 0 : len - 8);
        unsigned char m[8];
        for (int i = 0; i < 8; i++)
            m[i] = w[i] >= 'a' && w[i] <= 'z' ? 0x20 : 0;
        memcpy(&fc->ak_name_w[k], w, 8);
        memcpy(&fc->ak_name_m[k], m, 8);
    }
    fc->ak_name_words = 1;
}

void *gh_jwtf_bind(void *p, const gh_config_t *cfg, const gh_route_t *route, const void *conf,
                   const char *listener)
{
    runtimes_t *r = p;
    const gh_authn_conf_t *a = conf;
    (void)route;
    (void)listener;
    gh_authn_filter_conf_t *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return NULL;
    fc->authn = a;
    fc->ak = &r->ak;
    fc->rt = calloc(a->num_providers + 1, sizeof(*fc->rt));
    fc->az = calloc(a->num_authorizers + 1, sizeof(*fc->az));
    if (fc->rt == NULL || fc->az == NULL || (a->num_authorizers > 0 && r->az == NULL)) {
        free(fc->rt);
        free(fc->az);
        free(fc);
        return NULL;
    }
    for (size_t i = 0; i < a->num_authorizers; i++)
        fc->az[i] = &r->az->v[a->authorizers[i]->index];
    for (size_t i = 0; i < a->num_providers; i++) {
        fc->rt[i] = r->rt[a->providers[i]->index];
        fc->drops |=
            a->providers[i]->num_claims_to_headers > 0 || a->providers[i]->payload_header != NULL;
    }
    const gh_jwt_provider_conf_t *p0 = a->num_providers == 1 ? a->providers[0] : NULL;
    fc->bearer_only = p0 != NULL && a->num_apikeys == 0 && a->num_authorizers == 0 && !a->all &&
                      a->num_exempt == 0 && !fc->drops && p0->forward_token && p0->num_from == 1 &&
                      p0->from[0].kind == GH_TOKEN_FROM_HEADER && p0->from[0].name_len == 13 &&
                      memcmp(p0->from[0].name, "authorization", 13) == 0 &&
                      p0->from[0].prefix_len == 7 && memcmp(p0->from[0].prefix, "Bearer ", 7) == 0;
    fc->no_plans = cfg->num_plans == 0;
    for (size_t i = 0; i < a->num_authorizers; i++)
        if (a->authorizers[i]->format == GH_AUTHORIZER_ENVOY &&
            a->authorizers[i]->max_request_body > fc->az_body)
            fc->az_body = a->authorizers[i]->max_request_body;
    /* A route whose body goes to an authorizer buffers it first, and an
     * aws-v1 answer may name a usage key: the general way
     * (on_request_headers, authz.c's finish). */
    fc->az_only = a->num_providers == 0 && a->num_apikeys == 0 && a->num_authorizers == 1 &&
                  !a->all && !a->optional && a->num_exempt == 0 && fc->az_body == 0 &&
                  a->authorizers[0]->format != GH_AUTHORIZER_AWS_V1_TOKEN &&
                  a->authorizers[0]->format != GH_AUTHORIZER_AWS_V1_REQUEST;
    fc->az_fast = fc->az_only && gh_azr_is_bearer_cached(fc->az[0]);
    fc->key_only = a->num_providers == 0 && a->num_apikeys == 1 && a->num_authorizers == 0 &&
                   !a->all && a->num_exempt == 0 && a->apikeys[0]->query == NULL;
    if (fc->key_only)
        bind_name_words(fc, a->apikeys[0]->header, a->apikeys[0]->from[0].name_len);
    if (bind_drops(fc) != 0) {
        gh_jwtf_unbind(fc);
        return NULL;
    }
    return fc;
}

/* fc->set_drops and fc->ak_fast_drops (internal.h). 0, or -1 when out of
 * memory. */
static int bind_drops(gh_authn_filter_conf_t *fc)
{
    const gh_authn_conf_t *a = fc->authn;
    size_t n = a->num_apikeys + 2;
    for (size_t i = 0; i < a->num_authorizers; i++)
        n += a->authorizers[i]->num_headers + a->authorizers[i]->num_upstream_headers;
    for (size_t i = 0; i < a->num_providers; i++)
        n += a->providers[i]->num_claims_to_headers + 1;
    const char **names = calloc(n, sizeof(*names));
    if (names == NULL)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < a->num_providers; i++) {
        const gh_jwt_provider_conf_t *p = a->providers[i];
        for (size_t j = 0; j < p->num_claims_to_headers; j++)
            names[k++] = p->claims_to_headers[j].header;
        if (p->payload_header != NULL)
            names[k++] = p->payload_header;
    }
    for (size_t i = 0; i < a->num_apikeys; i++)
        if (a->apikeys[i]->consumer_header != NULL)
            names[k++] = a->apikeys[i]->consumer_header;
    /* Headers authorizers set: the client's copies never pass. */
    for (size_t i = 0; i < a->num_authorizers; i++) {
        const gh_authorizer_conf_t *z = a->authorizers[i];
        for (size_t j = 0; j < z->num_headers; j++)
            names[k++] = z->headers[j].header;
        for (size_t j = 0; j < z->num_upstream_headers; j++)
            names[k++] = z->upstream_headers[j];
    }
    int rc = 0;
    if (k > 0 && (fc->set_drops = gh_drop_list_new(names, k)) == NULL)
        rc = -1;
    if (rc == 0 && fc->key_only) {
        const gh_apikey_provider_conf_t *p = a->apikeys[0];
        k = 0;
        if (p->consumer_header != NULL)
            names[k++] = p->consumer_header;
        if (!p->forward_key)
            names[k++] = p->header;
        if (k > 0 && (fc->ak_fast_drops = gh_drop_list_new(names, k)) == NULL)
            rc = -1;
    }
    free(names);
    return rc;
}

void gh_jwtf_unbind(void *p)
{
    gh_authn_filter_conf_t *fc = p;
    if (fc != NULL) {
        free(fc->rt);
        free(fc->az);
        gh_drop_list_free(fc->set_drops);
        gh_drop_list_free(fc->ak_fast_drops);
    }
    free(fc);
}

int gh_jwtf_service_start(uv_loop_t *main_loop)
{
    gh_keyring_init(main_loop);
    return 0;
}

void gh_jwtf_service_stop(void)
{
    gh_keyring_shutdown();
}

void gh_jwtf_service_free(void)
{
    gh_keyring_free_all();
}
