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
 */
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

/* The outcome of authorizer k: applied, refused, or the next one asked. */
static gh_filter_status_t finish(gh_stream_t *s, const gh_authn_filter_conf_t *fc, size_t k,
                                 int chain, const gh_azr_outcome_t *o)
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
    } else if (gh_azr_refuse(s, a, o, NULL)) {
        return GH_FILTER_REPLIED;
    }
    if (chain && k + 1 < fc->authn->num_authorizers)
        return ask(s, fc, k + 1, chain);
    return GH_FILTER_CONTINUE;
}

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
