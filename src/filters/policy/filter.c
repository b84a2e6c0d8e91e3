/*
 * The policies filter (authz phase): on every route its listener or the
 * route itself attaches policies to, it decides after authentication
 * whether the request may go on (docs/authorization.md).
 *
 * A denial is a 403 whose JSON body names the deciding policy
 * ({"error":"forbidden","detail":...,"policy":"NAME"}), a note in the
 * access log's "filter" field (policy=deny:NAME) and a count in
 * gatehouse_policy_decisions_total. Dry-run policies never change the
 * outcome: what they would have decided is logged and counted beside it.
 *
 * The instance a route runs with is made once per snapshot (bind): the
 * route's policies split by kind, their metric ids, and the notes and
 * details of each outcome, so that a request only evaluates and counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "filters/authorizer/authorizer.h"
#include "filters/policy/internal.h"

typedef struct {
    uint32_t hit;  /* DENY: it matched; ALLOW: it matched (allowed) */
    uint32_t miss; /* ALLOW: no ALLOW policy of its set matched (denied) */
    char *note;    /* "policy=deny:NAME", "policy=allow:NAME" (dry run: "dry_run=...") */
    char *detail;  /* DENY: the 403's detail */
} entry_t;

typedef struct {
    const gh_policy_section_t *sec;
    gh_policy_lists_t l;
    entry_t *deny, *allow, *dry_deny, *dry_allow;
    char *no_allow_note, *no_allow_detail, *no_allow_names;
    char *dry_no_allow_note;
    unsigned port;
    int claims; /* some policy reads claims */
    /* CUSTOM policies (evaluated first; the first that matches delegates
     * to its authorizer) and the dry-run ones (counted and noted only). */
    const gh_policy_t **custom, **dry_custom;
    uint32_t ncustom, ndry_custom;
    const gh_azr_t **custom_az; /* the authorizer of each custom[i] */
    /* The largest envoy.max_request_body of those (0: none sends the
     * body): the body is read whole before the CUSTOM policies run. */
    size_t az_body;
    uint32_t *custom_allow, *custom_deny, *dry_custom_hit;
    char **dry_custom_note;
} inst_t;

/* A CUSTOM policy's call in flight (the stream's context). */
typedef struct {
    gh_azr_call_t *call;
    const inst_t *in;
    uint32_t i;
} pending_t;

/* ---- the snapshot's authorizers, for CUSTOM policies ---- */

static int policy_init(const gh_config_t *cfg, void **rt)
{
    const gh_policy_section_t *sec = gh_config_section(cfg, &gh_policy_filter);
    *rt = NULL;
    int any = 0;
    for (size_t i = 0; sec != NULL && i < sec->n; i++)
        any |= sec->v[i].action == GH_POL_CUSTOM;
    if (!any || cfg->num_authorizers == 0)
        return 0;
    return (*rt = gh_azr_set_new(cfg)) != NULL ? 0 : -1;
}

static void policy_fini(void *rt)
{
    gh_azr_set_free(rt);
}

static size_t policy_ready(const void *rt, int detailed, char *out, size_t cap)
{
    return gh_azr_set_ready(rt, detailed, out, cap);
}

/* ---- bind ---- */

static void entries_free(entry_t *e, uint32_t n)
{
    for (uint32_t i = 0; e != NULL && i < n; i++) {
        free(e[i].note);
        free(e[i].detail);
    }
    free(e);
}

static void policy_unbind(void *p)
{
    inst_t *in = p;
    if (in == NULL)
        return;
    free(in->l.deny);
    free(in->l.allow);
    free(in->l.dry_deny);
    free(in->l.dry_allow);
    entries_free(in->deny, in->l.ndeny);
    entries_free(in->allow, in->l.nallow);
    entries_free(in->dry_deny, in->l.ndry_deny);
    entries_free(in->dry_allow, in->l.ndry_allow);
    free(in->no_allow_note);
    free(in->no_allow_detail);
    free(in->no_allow_names);
    free(in->dry_no_allow_note);
    free(in->custom);
    free(in->dry_custom);
    free(in->custom_az);
    free(in->custom_allow);
    free(in->custom_deny);
    free(in->dry_custom_hit);
    for (uint32_t i = 0; in->dry_custom_note != NULL && i < in->ndry_custom; i++)
        free(in->dry_custom_note[i]);
    free(in->dry_custom_note);
    free(in);
}

static char *fmt(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

/* The names of n policies joined by ',' (names hold no ','). */
static char *join_names(const gh_policy_t *const *v, uint32_t n)
{
    size_t len = 1;
    for (uint32_t i = 0; i < n; i++)
        len += strlen(v[i]->name) + 1;
    char *s = malloc(len), *o = s;
    if (s == NULL)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        size_t k = strlen(v[i]->name);
        if (i > 0)
            *o++ = ',';
        memcpy(o, v[i]->name, k);
        o += k;
    }
    *o = '\0';
    return s;
}

static int make_entries(const gh_policy_t *const *v, uint32_t n, int dry, entry_t **out)
{
    const char *dr = dry ? "true" : "false";
    entry_t *e = calloc(n ? n : 1, sizeof(*e));
    if (e == NULL)
        return -1;
    *out = e;
    for (uint32_t i = 0; i < n; i++) {
        const gh_policy_t *p = v[i];
        int deny = p->action == GH_POL_DENY;
        const char *action = deny ? "DENY" : "ALLOW";
        e[i].hit = gh_metrics_policy_id(p->name, action, deny ? "deny" : "allow", dr);
        e[i].miss = deny ? UINT32_MAX : gh_metrics_policy_id(p->name, action, "deny", dr);
        e[i].note = fmt(dry ? (deny ? "dry_run=deny:" : "dry_run=allow:")
                            : (deny ? "policy=deny:" : "policy=allow:"),
                        p->name);
        e[i].detail = deny ? fmt("denied by policy ", p->name) : NULL;
        if (e[i].note == NULL || (deny && e[i].detail == NULL))
            return -1;
    }
    return 0;
}

static unsigned listener_port(const gh_config_t *cfg, const gh_route_t *r)
{
    const struct sockaddr_storage *ss = &cfg->listeners[r->listener].addr;
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void *policy_bind(void *rt, const gh_config_t *cfg, const gh_route_t *route,
                         const void *conf, const char *listener)
{
    const gh_policy_route_conf_t *c = conf;
    const gh_azr_set_t *az = rt;
    inst_t *in = calloc(1, sizeof(*in));
    (void)listener;
    if (in == NULL)
        return NULL;
    in->sec = gh_config_section(cfg, &gh_policy_filter);
    in->port = listener_port(cfg, route);
    size_t n = c != NULL ? c->n : 0;
    in->l.deny = calloc(n + 1, sizeof(*in->l.deny));
    in->l.allow = calloc(n + 1, sizeof(*in->l.allow));
    in->l.dry_deny = calloc(n + 1, sizeof(*in->l.dry_deny));
    in->l.dry_allow = calloc(n + 1, sizeof(*in->l.dry_allow));
    in->custom = calloc(n + 1, sizeof(*in->custom));
    in->dry_custom = calloc(n + 1, sizeof(*in->dry_custom));
    in->custom_az = calloc(n + 1, sizeof(*in->custom_az));
    in->custom_allow = calloc(n + 1, sizeof(*in->custom_allow));
    in->custom_deny = calloc(n + 1, sizeof(*in->custom_deny));
    in->dry_custom_hit = calloc(n + 1, sizeof(*in->dry_custom_hit));
    in->dry_custom_note = calloc(n + 1, sizeof(*in->dry_custom_note));
    if (in->l.deny == NULL || in->l.allow == NULL || in->l.dry_deny == NULL ||
        in->l.dry_allow == NULL || in->custom == NULL || in->dry_custom == NULL ||
        in->custom_az == NULL || in->custom_allow == NULL || in->custom_deny == NULL ||
        in->dry_custom_hit == NULL || in->dry_custom_note == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const gh_policy_t *p = c->v[i];
        if (p->action == GH_POL_CUSTOM) {
            if (p->dry_run) {
                in->dry_custom_hit[in->ndry_custom] =
                    gh_metrics_policy_id(p->name, "CUSTOM", "delegate", "true");
                if ((in->dry_custom_note[in->ndry_custom] = fmt("dry_run=custom:", p->name)) ==
                    NULL)
                    goto fail;
                in->dry_custom[in->ndry_custom++] = p;
                continue;
            }
            if (az == NULL || p->provider >= az->n)
                goto fail;
            in->custom_az[in->ncustom] = &az->v[p->provider];
            const gh_authorizer_conf_t *ac = az->v[p->provider].conf;
            if (ac->format == GH_AUTHORIZER_ENVOY && ac->max_request_body > in->az_body)
                in->az_body = ac->max_request_body;
            in->custom_allow[in->ncustom] =
                gh_metrics_policy_id(p->name, "CUSTOM", "allow", "false");
            in->custom_deny[in->ncustom] = gh_metrics_policy_id(p->name, "CUSTOM", "deny", "false");
            in->custom[in->ncustom++] = p;
            in->claims |= p->has_claims;
            continue;
        }
        if (p->dry_run) {
            if (p->action == GH_POL_DENY)
                in->l.dry_deny[in->l.ndry_deny++] = p;
            else
                in->l.dry_allow[in->l.ndry_allow++] = p;
        } else if (p->action == GH_POL_DENY) {
            in->l.deny[in->l.ndeny++] = p;
        } else {
            in->l.allow[in->l.nallow++] = p;
        }
        in->claims |= p->has_claims;
    }
    if (make_entries(in->l.deny, in->l.ndeny, 0, &in->deny) < 0 ||
        make_entries(in->l.allow, in->l.nallow, 0, &in->allow) < 0 ||
        make_entries(in->l.dry_deny, in->l.ndry_deny, 1, &in->dry_deny) < 0 ||
        make_entries(in->l.dry_allow, in->l.ndry_allow, 1, &in->dry_allow) < 0)
        goto fail;
    if (in->l.nallow > 0) {
        if ((in->no_allow_names = join_names(in->l.allow, in->l.nallow)) == NULL ||
            (in->no_allow_note = fmt("policy=no_allow:", in->no_allow_names)) == NULL ||
            (in->no_allow_detail = fmt("no ALLOW policy matched: ", in->no_allow_names)) == NULL)
            goto fail;
    }
    if (in->l.ndry_allow > 0) {
        char *names = join_names(in->l.dry_allow, in->l.ndry_allow);
        in->dry_no_allow_note = names != NULL ? fmt("dry_run=no_allow:", names) : NULL;
        free(names);
        if (in->dry_no_allow_note == NULL)
            goto fail;
    }
    return in;
fail:
    policy_unbind(in);
    return NULL;
}

/* ---- the request ---- */

/* What the evaluator's callbacks reach: the stream, and the token's
 * entry in the worker's claims cache (NULL: not cached). */
typedef struct {
    gh_stream_t *s;
    gh_policy_centry_t *e;
    gh_policy_req_t *req;
} call_t;

static const char *claims_cb(void *arg, size_t *len)
{
    call_t *c = arg;
    const char *text = gh_stream_claims(c->s, len);
    if (c->e == NULL || text == NULL)
        return text;
    const char *kept = gh_policy_cache_payload(c->e, text, *len);
    if (kept == NULL) {
        /* Not kept: the values found in this request's copy must not
         * outlive it in the cache. */
        c->req->claim_vals = NULL;
        c->req->claim_state = NULL;
        return text;
    }
    return kept;
}

static void *alloc_cb(void *arg, size_t n)
{
    return gh_stream_alloc(((call_t *)arg)->s, n);
}

/* With a verified token whose claims some policy reads, the worker's
 * cache entry of that token gives the payload and the values found
 * before (cache.c). */
static void use_cache(gh_stream_t *s, const inst_t *in, const gh_identity_t *id,
                      gh_policy_req_t *req, call_t *c)
{
    gh_policy_wcache_t *w =
        gh_stream_worker_state(s, &gh_policy_filter, gh_policy_cache_new, gh_policy_cache_free);
    gh_policy_centry_t *e =
        w != NULL ? gh_policy_cache_get(w, in->sec, id->token, id->token_len) : NULL;
    if (e == NULL)
        return;
    c->e = e;
    req->claim_vals = e->vals;
    req->claim_state = e->state;
    req->nclaim_slots = e->nvals;
    if (e->payload_state == 1) {
        req->claims = e->payload;
        req->claims_len = e->payload_len;
        req->claims_state = 1;
    }
}

static void count(gh_stream_t *s, uint32_t id)
{
    gh_counter_stats_t *st = gh_metrics_policy(gh_stream_metrics(s), id);
    if (st != NULL)
        GH_STAT_INC(st->count);
}

/* The dry-run outcomes: counted, and their notes appended to the enforced
 * one (in the stream's arena; a failed allocation only loses the note). */
static const char *dry_run_note(gh_stream_t *s, const inst_t *in, const gh_policy_decision_t *d,
                                const char *note)
{
    const char *parts[GH_POL_MAX_PER_ROUTE + 2];
    size_t np = 0, len = 1;
    if (note != NULL)
        parts[np++] = note;
    for (uint32_t i = 0; i < in->l.ndry_deny; i++)
        if (d->dry_deny_hits & ((uint64_t)1 << i)) {
            count(s, in->dry_deny[i].hit);
            parts[np++] = in->dry_deny[i].note;
        }
    if (d->dry_allow_outcome == GH_POL_OUT_ALLOW) {
        count(s, in->dry_allow[d->dry_allow_index].hit);
        parts[np++] = in->dry_allow[d->dry_allow_index].note;
    } else if (d->dry_allow_outcome == GH_POL_OUT_NO_ALLOW) {
        for (uint32_t i = 0; i < in->l.ndry_allow; i++)
            count(s, in->dry_allow[i].miss);
        parts[np++] = in->dry_no_allow_note;
    }
    if (np == 0 || (np == 1 && note != NULL))
        return note;
    for (size_t i = 0; i < np; i++)
        len += strlen(parts[i]) + 1;
    char *out = gh_stream_alloc(s, len), *o = out;
    if (out == NULL)
        return note;
    for (size_t i = 0; i < np; i++) {
        size_t k = strlen(parts[i]);
        if (i > 0)
            *o++ = ' ';
        memcpy(o, parts[i], k);
        o += k;
    }
    *o = '\0';
    return out;
}

static void fill_req(gh_stream_t *s, const inst_t *in, gh_policy_req_t *req, call_t *call)
{
    gh_identity_t *id = gh_stream_identity(s);
    const char *query;
    size_t query_len;
    memset(req, 0, sizeof(*req));
    gh_stream_request_line(s, &req->method, &req->method_len, &req->path, &req->path_len, &query,
                           &query_len);
    req->host = gh_stream_host(s, &req->host_len);
    req->port = in->port;
    req->peer = gh_stream_peer_address(s);
    req->remote = gh_stream_client_address(s);
    req->issuer = id->issuer;
    req->subject = id->subject;
    req->consumer = id->consumer;
    req->scopes = id->scopes;
    req->headers = gh_stream_headers(s, &req->nheaders);
    *call = (call_t){s, NULL, req};
    req->claims_fn = claims_cb;
    req->alloc_fn = alloc_cb;
    req->arg = call;
    if (in->claims && id->token != NULL)
        use_cache(s, in, id, req, call);
}

static gh_filter_status_t evaluate(gh_stream_t *s, const inst_t *in);

/* ---- CUSTOM: delegation to an authorizer ---- */

static gh_filter_status_t custom_finish(gh_stream_t *s, const inst_t *in, uint32_t i,
                                        const gh_azr_outcome_t *o)
{
    const gh_azr_t *a = in->custom_az[i];
    const char *name = in->custom[i]->name;
    if (o->kind == GH_AZR_OUT_ALLOW) {
        /* An identity a token or key gave stays; without one, the
         * authorizer's becomes it. */
        int rc = gh_azr_apply(s, a, o, gh_stream_identity(s)->provider != NULL);
        if (rc == -2) {
            gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
            return GH_FILTER_REPLIED;
        }
        if (rc == 0) {
            count(s, in->custom_allow[i]);
            return evaluate(s, in);
        }
        gh_azr_outcome_t bad = {.kind = GH_AZR_OUT_ERROR,
                                .reason = GH_AZR_ERROR,
                                .why = "the authorizer's answer has a value that cannot be a "
                                       "header value"};
        if (!gh_azr_refuse(s, a, &bad, name))
            return evaluate(s, in);
        count(s, in->custom_deny[i]);
        return GH_FILTER_REPLIED;
    }
    if (gh_azr_refuse(s, a, o, name)) {
        count(s, in->custom_deny[i]);
        return GH_FILTER_REPLIED;
    }
    return evaluate(s, in); /* on_error: allow */
}

static void custom_done(void *arg, gh_stream_t *s, const gh_azr_outcome_t *o)
{
    pending_t *pd = arg;
    pd->call = NULL;
    if (custom_finish(s, pd->in, pd->i, o) == GH_FILTER_CONTINUE)
        gh_stream_continue(s);
}

/* Istio's order: CUSTOM first. Dry-run CUSTOM policies that match are
 * counted and noted (no call); the first enforced one that matches asks
 * its authorizer, whose denial ends the request and whose allowance lets
 * DENY and ALLOW decide next. */
static gh_filter_status_t custom(gh_stream_t *s, const inst_t *in)
{
    for (uint32_t i = 0; i < in->ncustom; i++)
        if (gh_azr_drop_headers(s, in->custom_az[i]) < 0) {
            gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
            return GH_FILTER_REPLIED;
        }
    gh_policy_req_t req;
    call_t call;
    fill_req(s, in, &req, &call);
    for (uint32_t i = 0; i < in->ndry_custom; i++)
        if (gh_policy_matches(in->sec, in->dry_custom[i], &req)) {
            count(s, in->dry_custom_hit[i]);
            gh_stream_log_note(s, in->dry_custom_note[i]);
        }
    for (uint32_t i = 0; i < in->ncustom; i++) {
        if (!gh_policy_matches(in->sec, in->custom[i], &req))
            continue;
        if (req.oom)
            break;
        pending_t *pd = gh_stream_alloc(s, sizeof(*pd));
        if (pd == NULL)
            break;
        memset(pd, 0, sizeof(*pd));
        pd->in = in;
        pd->i = i;
        gh_stream_set_ctx(s, pd);
        gh_azr_outcome_t o;
        if (gh_azr_check(s, in->custom_az[i], custom_done, pd, &pd->call, &o) == 1)
            return GH_FILTER_PAUSE;
        return custom_finish(s, in, i, &o);
    }
    if (req.oom) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    return evaluate(s, in);
}

static gh_filter_status_t on_request_headers(gh_stream_t *s, const void *conf, void *ctx)
{
    const inst_t *in = conf;
    (void)ctx;
    if (in->az_body > 0) {
        gh_stream_buffer_body(s, in->az_body);
        return GH_FILTER_BUFFER;
    }
    if (in->ncustom > 0 || in->ndry_custom > 0)
        return custom(s, in);
    return evaluate(s, in);
}

/* The body a CUSTOM policy's envoy authorizer sends is whole (az_body). */
static gh_filter_status_t on_request_buffered(gh_stream_t *s, const void *conf, void *ctx,
                                              const char *body, size_t len)
{
    (void)ctx;
    (void)body;
    (void)len;
    return custom(s, conf);
}

static void on_cancel(gh_stream_t *s, const void *conf, void *ctx)
{
    pending_t *pd = ctx;
    (void)s;
    (void)conf;
    if (pd != NULL) {
        gh_azr_cancel(pd->call);
        pd->call = NULL;
    }
}

static gh_filter_status_t evaluate(gh_stream_t *s, const inst_t *in)
{
    gh_policy_req_t req;
    gh_policy_decision_t d;
    call_t call;
    fill_req(s, in, &req, &call);
    gh_policy_decide(in->sec, &in->l, &req, &d);

    if (d.oom) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    const char *note = NULL, *detail = NULL, *names = NULL;
    switch (d.outcome) {
    case GH_POL_OUT_DENY:
        count(s, in->deny[d.index].hit);
        note = in->deny[d.index].note;
        detail = in->deny[d.index].detail;
        names = in->l.deny[d.index]->name;
        break;
    case GH_POL_OUT_NO_ALLOW:
        for (uint32_t i = 0; i < in->l.nallow; i++)
            count(s, in->allow[i].miss);
        note = in->no_allow_note;
        detail = in->no_allow_detail;
        names = in->no_allow_names;
        break;
    case GH_POL_OUT_ALLOW:
        count(s, in->allow[d.index].hit);
        note = in->allow[d.index].note;
        break;
    default:
        break;
    }
    if (in->l.ndry_deny > 0 || in->l.ndry_allow > 0)
        note = dry_run_note(s, in, &d, note);
    if (note != NULL)
        gh_stream_log_note(s, note);
    if (detail == NULL)
        return GH_FILTER_CONTINUE;
    const char *members[2] = {"policy", names};
    gh_stream_reply_error_members(s, 403, "forbidden", detail, members, 1, NULL);
    return GH_FILTER_REPLIED;
}

const gh_filter_type_t gh_policy_filter = {
    .name = "policies",
    .phase = GH_PHASE_AUTHZ,
    .parse = gh_policy_parse_route,
    .free_conf = gh_policy_free_conf,
    .parse_section = gh_policy_parse_section,
    .free_section = gh_policy_free_section,
    .parse_listener = gh_policy_parse_listener,
    .init = policy_init,
    .fini = policy_fini,
    .ready = policy_ready,
    .bind = policy_bind,
    .unbind = policy_unbind,
    .on_request_headers = on_request_headers,
    .on_request_buffered = on_request_buffered,
    .on_cancel = on_cancel,
};
