/*
 * One snapshot's authorizers (authorizer.h): what a call needs that is the
 * same for every request, made once on the main thread. AWS credentials
 * are read here (files and the environment: never on a worker); a Lambda
 * authorizer whose credentials cannot be loaded is kept, reported by
 * /ready and the log, and its requests get its on_error answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/aws.h>
#include <gatehouse/log.h>
#include <gatehouse/metrics.h>

#include "filters/authorizer/authorizer.h"

static uint64_t next_id; /* atomic */

static const struct {
    const char *decision, *reason;
} reasons[GH_AZR_REASON_COUNT] = {
    [GH_AZR_ALLOWED] = {"allow", "allowed"},
    [GH_AZR_ALLOWED_CACHED] = {"allow", "allowed_cached"},
    [GH_AZR_DENIED] = {"deny", "denied"},
    [GH_AZR_DENIED_CACHED] = {"deny", "denied_cached"},
    [GH_AZR_UNAUTHORIZED] = {"deny", "unauthorized"},
    [GH_AZR_MISSING] = {"deny", "missing_identity_source"},
    [GH_AZR_TOKEN_INVALID] = {"deny", "token_validation"},
    [GH_AZR_BAD_REQUEST] = {"deny", "bad_request"},
    [GH_AZR_ERROR] = {"error", "authorizer_error"},
    [GH_AZR_ENVOY_DENIED] = {"deny", "denied_by_service"},
};

/* The Invoke API's path for a function: the name or ARN percent-encoded
 * as one path segment (':' is %3A, as botocore sends it), then the
 * qualifier as a query parameter. */
static char *invoke_target(const gh_authorizer_conf_t *c, size_t *len)
{
    static const char pre[] = "/2015-03-31/functions/", post[] = "/invocations";
    size_t fl = strlen(c->function), ql = c->qualifier ? strlen(c->qualifier) : 0;
    size_t cap = sizeof(pre) + 3 * fl + sizeof(post) + 11 + 3 * ql + 1;
    char *t = malloc(cap), *o = t;
    if (t == NULL)
        return NULL;
    memcpy(o, pre, sizeof(pre) - 1);
    o += sizeof(pre) - 1;
    for (const char *p = c->function; *p; p++) {
        if (*p == ':') {
            memcpy(o, "%3A", 3);
            o += 3;
        } else {
            *o++ = *p; /* [A-Za-z0-9_-] only (config) */
        }
    }
    memcpy(o, post, sizeof(post) - 1);
    o += sizeof(post) - 1;
    if (c->qualifier != NULL) {
        o += sprintf(o, "?Qualifier=");
        for (const char *p = c->qualifier; *p; p++) {
            if (*p == '$') {
                memcpy(o, "%24", 3);
                o += 3;
            } else {
                *o++ = *p;
            }
        }
    }
    *o = '\0';
    *len = (size_t)(o - t);
    return t;
}

static int lambda_init(gh_azr_t *a)
{
    const gh_authorizer_conf_t *c = a->conf;
    char err[512] = "";
    if ((a->target = invoke_target(c, &a->target_len)) == NULL)
        return -1;
    /* Always set: the config refuses a lambda block without a region. */
    snprintf(a->region, sizeof(a->region), "%s", c->region);
    const char *dh = a->cluster != NULL ? a->cluster->default_host : NULL;
    char host[128];
    if (dh == NULL)
        snprintf(host, sizeof(host), "lambda.%s.amazonaws.com", a->region);
    if ((a->host = strdup(dh != NULL ? dh : host)) == NULL)
        return -1;
    a->host_len = strlen(a->host);
    a->creds = gh_aws_creds_load(NULL, c->profile, err, sizeof(err));
    if (a->creds == NULL) {
        if ((a->creds_error = strdup(err[0] ? err : "no credentials")) == NULL)
            return -1;
        GH_LOG(GH_LOG_ERROR, "authorizers",
               "authorizer '%s': cannot load AWS credentials: %s (its requests get its "
               "on_error answer)",
               c->name, a->creds_error);
    } else {
        GH_LOG(GH_LOG_INFO, "authorizers", "authorizer '%s': AWS credentials from %s (key %s)",
               c->name, gh_aws_creds_source(a->creds), gh_aws_creds_access_key_id(a->creds));
    }
    return 0;
}

gh_azr_set_t *gh_azr_set_new(const gh_config_t *cfg)
{
    gh_azr_set_t *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return NULL;
    set->cfg = cfg;
    set->v = calloc(cfg->num_authorizers + 1, sizeof(*set->v));
    if (set->v == NULL) {
        free(set);
        return NULL;
    }
    set->n = cfg->num_authorizers;
    for (size_t i = 0; i < set->n; i++) {
        gh_azr_t *a = &set->v[i];
        const gh_authorizer_conf_t *c = &cfg->authorizers[i];
        a->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
        a->conf = c;
        a->cluster = gh_callout_cluster(cfg, c->function != NULL ? c->endpoint : c->cluster);
        for (int r = 0; r < GH_AZR_REASON_COUNT; r++)
            a->decision_ids[r] =
                gh_metrics_decision_id(c->name, reasons[r].decision, reasons[r].reason);
        for (int k = 0; k < GH_CALLOUT_OUTCOMES; k++)
            a->call_ids[k] = gh_metrics_filter_id("authorizer", c->name, gh_callout_error_name(-k));
        a->bad_answer_id = gh_metrics_filter_id("authorizer", c->name, "bad_answer");
        /* The process's cache is this runtime's: a reload makes a new
         * one (no answer outlives the config that asked for it) and the
         * old one goes with its snapshot (gh_azr_set_free). */
        if (c->cache_scope == GH_AUTHZ_CACHE_PROCESS && c->ttl_ms > 0 &&
            (a->shared = gh_azr_shared_new(c->cache_entries)) == NULL) {
            gh_azr_set_free(set);
            return NULL;
        }
        int rc;
        if (c->function != NULL) {
            rc = lambda_init(a);
        } else {
            a->target = strdup(c->path);
            a->target_len = a->target != NULL ? strlen(a->target) : 0;
            rc = a->target != NULL ? 0 : -1;
        }
        if (rc != 0) {
            gh_azr_set_free(set);
            return NULL;
        }
    }
    return set;
}

void gh_azr_set_free(gh_azr_set_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++) {
        gh_aws_creds_free(set->v[i].creds);
        free(set->v[i].creds_error);
        free(set->v[i].target);
        free(set->v[i].host);
        gh_azr_shared_free(set->v[i].shared);
    }
    free(set->v);
    free(set);
}

size_t gh_azr_set_ready(const gh_azr_set_t *set, int detailed, char *out, size_t cap)
{
    size_t n = 0, o = 0;
    for (size_t i = 0; set != NULL && i < set->n; i++) {
        const gh_azr_t *a = &set->v[i];
        if (a->creds_error == NULL)
            continue;
        int w =
            snprintf(out + o, o < cap ? cap - o : 0, "%sauthorizer '%s': %s", n ? "\n" : "",
                     a->conf->name, detailed ? a->creds_error : "no AWS credentials (see the log)");
        if (w > 0 && o + (size_t)w < cap)
            o += (size_t)w;
        else if (o < cap)
            out[o] = '\0';
        n++;
    }
    return n;
}
