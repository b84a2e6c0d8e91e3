/*
 * Authorizers in the authn filter (docs/authorizers.md): a route's authn
 * names custom authorizers beside JWT and API-key providers. On an `all`
 * route each of them must allow after the keys and tokens passed (API
 * Gateway's "API key required" with an authorizer); on an any/optional
 * route an authorizer decides when no key or token is there and its
 * identity sources are, the first such in the order written.
 *
 * A call pauses the stream; the answer resumes it here, and the next
 * authorizer of an `all` route is asked from the callback. A stream that
 * ends meanwhile cancels the call (on_cancel).
 *
 * An allowing aws-v1 answer with a usageIdentifierKey (API Gateway's API
 * key source AUTHORIZER) ties the request to that key: looked up as an
 * apikeys provider's key (gh_jwtf_ak_usage, which may pause the stream
 * again), its consumer, plan and id become the identity's, and a key that
 * is unknown, revoked, disabled or expired is a 403. On a route that
 * reads keys itself (an apikeys provider: API key source HEADER) the
 * answer's key is ignored, as API Gateway ignores it then.
 */
#include <stdio.h>
#include <string.h>

#include "filters/jwt/internal.h"

struct gh_jwtf_az_pending_s {
    int tag; /* GH_JWTF_CTX_AZ */
    gh_azr_call_t *call;
    const gh_authn_filter_conf_t *fc;
    size_t k;  /* the authorizer asked */
    int chain; /* 1: an `all` route, the next ones follow */
};

static gh_filter_status_t ask(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k,
                              int chain);

/* Where a decision goes on after the usage key's lookup. */
typedef struct {
    const gh_authn_filter_conf_t *fc;
    size_t k;
    int chain;
} usage_next_t;

/* A usage key that does not pass: API Gateway's 403 for an invalid key
 * (503 when the store cannot say). */
static void usage_refuse(gh_stream_t *s, const gh_azr_t *a, int r)
{
    const char *members[2] = {"authorizer", a->conf->name};
    int st = gh_jwtf_ak_reason_status(r);
    char note[64];
    snprintf(note, sizeof(note), "usage_key=%s", gh_jwtf_ak_reason_name(r));
    gh_stream_log_note(s, note);
    if (st == 503) {
        gh_stream_reply_error_members(s, 503, "service_unavailable",
                                      "the usage identifier key cannot be checked now", members, 1,
                                      NULL);
        return;
    }
    gh_stream_reply_error_members(s, 403, "forbidden",
                                  r == GH_AK_PLAN_UNKNOWN
                                      ? "the usage identifier key's usage plan is not configured"
                                      : "invalid usage identifier key",
                                  members, 1, NULL);
}

static gh_filter_status_t after(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k,
                                int chain)
{
    if (chain && k + 1 < fc->authn->num_authorizers)
        return ask(s, fc, k + 1, chain);
    return GH_FILTER_CONTINUE;
}

static void usage_done(void *arg, gh_stream_t *s, int r)
{
    usage_next_t *n = arg;
    if (r != GH_AK_OK) {
        usage_refuse(s, n->fc->az[n->k], r);
        return;
    }
    if (after(s, n->fc, n->k, n->chain) == GH_FILTER_CONTINUE)
        gh_stream_continue(s);
}

/* The allowed answer's usageIdentifierKey (usage_key, borrowed). */
__attribute__((noinline)) static gh_filter_status_t
usage(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k, int chain, const char *usage_key)
{
    usage_next_t *n = gh_stream_alloc(s, sizeof(*n));
    if (n == NULL) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    *n = (usage_next_t){fc, k, chain};
    int r = gh_jwtf_ak_usage(s, fc, fc->az[k]->conf, usage_key, strlen(usage_key), usage_done, n);
    if (r == -1)
        return GH_FILTER_PAUSE;
    if (r != GH_AK_OK) {
        usage_refuse(s, fc->az[k], r);
        return GH_FILTER_REPLIED;
    }
    return after(s, fc, k, chain);
}

/* The outcome of authorizer k: applied, refused, or the next one asked. */
static inline __attribute__((always_inline)) gh_filter_status_t
finish_as(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k, int chain,
          const gh_azr_outcome_t *o, int usage_keys)
{
    const gh_azr_t *a = fc->az[k];
    if (o->kind == GH_AZR_OUT_ALLOW) {
        int rc = gh_azr_apply(s, a, o, 0);
        if (rc == -2) {
            gh_stream_reply_error(s, 503, "service_unavailable", "cannot edit the request");
            return GH_FILTER_REPLIED;
        }
        if (rc == -1) {
            gh_azr_outcome_t bad = {.kind = GH_AZR_OUT_ERROR,
                                    .reason = GH_AZR_ERROR,
                                    .why = "the authorizer's answer has a value that cannot be a "
                                           "header value"};
            if (gh_azr_refuse(s, a, &bad, NULL))
                return GH_FILTER_REPLIED;
        }
        if (usage_keys && o->usage_key != NULL && rc == 0 && fc->authn->num_apikeys == 0)
            return usage(s, fc, k, chain, o->usage_key);
    } else if (gh_azr_refuse(s, a, o, NULL)) {
        return GH_FILTER_REPLIED;
    }
    if (chain && k + 1 < fc->authn->num_authorizers)
        return ask(s, fc, k + 1, chain);
    return GH_FILTER_CONTINUE;
}

/* The general way; gh_jwtf_az_one's route (az_only) has no aws-v1
 * authorizer, so no usage key to look for. */
#define finish(s, fc, k, chain, o) finish_as((s), (fc), (k), (chain), (o), 1)

static void done(void *arg, gh_stream_t *s, const gh_azr_outcome_t *o)
{
    gh_jwtf_az_pending_t *pd = arg;
    pd->call = NULL;
    if (finish(s, pd->fc, pd->k, pd->chain, o) == GH_FILTER_CONTINUE)
        gh_stream_continue(s);
}

static gh_filter_status_t ask(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k, int chain)
{
    gh_jwtf_az_pending_t *pd = gh_stream_alloc(s, sizeof(*pd));
    if (pd == NULL) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    memset(pd, 0, sizeof(*pd));
    pd->tag = GH_JWTF_CTX_AZ;
    pd->fc = fc;
    pd->k = k;
    pd->chain = chain;
    gh_stream_set_ctx(s, pd);
    gh_azr_outcome_t o;
    if (gh_azr_check(s, fc->az[k], done, pd, &pd->call, &o) == 1)
        return GH_FILTER_PAUSE;
    return finish(s, fc, k, chain, &o);
}

gh_filter_status_t gh_jwtf_az_all(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k)
{
    if (k >= fc->authn->num_authorizers)
        return GH_FILTER_CONTINUE;
    return ask(s, fc, k, 1);
}

gh_filter_status_t gh_jwtf_az_one(gh_stream_t *s, const gh_authn_filter_conf_t *fc)
{
    if (gh_stream_drop_list(s, fc->set_drops) < 0) {
        gh_stream_reply_error(s, 503, "service_unavailable", "cannot edit the request");
        return GH_FILTER_REPLIED;
    }
    /* The usual request, decided from the cache, needs no pending state. */
    gh_azr_outcome_t o;
    if (gh_azr_decided(s, fc->az[0], &o))
        return finish_as(s, fc, 0, 0, &o, 0);
    return ask(s, fc, 0, 0);
}

gh_filter_status_t gh_jwtf_az_any(gh_stream_t *s, const gh_authn_filter_conf_t *fc)
{
    const gh_authn_conf_t *a = fc->authn;
    for (size_t k = 0; k < a->num_authorizers; k++)
        if (gh_azr_sources_present(s, fc->az[k]))
            return ask(s, fc, k, 0);
    if (a->optional)
        return GH_FILTER_CONTINUE;
    gh_azr_outcome_t o = {.kind = GH_AZR_OUT_MISSING,
                          .reason = GH_AZR_MISSING,
                          .why = "no credential in the request"};
    gh_azr_refuse(s, fc->az[0], &o, NULL);
    return GH_FILTER_REPLIED;
}

void gh_jwtf_az_cancel(gh_jwtf_az_pending_t *pd)
{
    if (pd == NULL)
        return;
    gh_azr_cancel(pd->call);
    pd->call = NULL;
}
