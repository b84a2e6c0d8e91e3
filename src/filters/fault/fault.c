/*
 * Fault injection, as Istio's HTTPFaultInjection: per route, delay a
 * percentage of requests by a fixed time, and/or abort a percentage with an
 * HTTP status; each optionally only for requests that carry a given header.
 *
 *   fault:
 *     delay: {fixed: 2s, percent: 50, header: x-fault-delay}
 *     abort: {status: 503, percent: 0.5}
 *
 * The delay is a deadline on the worker's wheel while the stream is paused
 * (the worker goes on serving); an abort is a local reply. A request that
 * is both delayed and aborted is aborted when its delay ends, as Envoy's
 * fault filter does. Each decision is an independent draw from the
 * worker's generator, in parts per 10,000 (0.01%).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "filters/fault/fault.h"

/* A delay longer than this is a misconfigured timeout, not a fault. */
#define MAX_DELAY_MS (60ULL * 60 * 1000)

typedef struct {
    uint64_t ms;     /* 0: no delay */
    uint32_t per10k; /* of requests (that carry header) */
    char *header;    /* lower-case, or NULL: every request */
} fault_delay_t;

typedef struct {
    int status; /* 0: no abort */
    uint32_t per10k;
    char *header;
} fault_abort_t;

typedef struct {
    fault_delay_t delay;
    fault_abort_t abort;
} fault_conf_t;

/* The instance on a route: the conf and its metric ids. */
typedef struct {
    const fault_conf_t *conf;
    uint32_t delayed_id, aborted_id;
} fault_inst_t;

typedef struct {
    const fault_inst_t *in;
    gh_stream_handle_t *handle; /* while delayed */
    gh_deadline_t dl;
    int abort; /* abort when the delay ends */
} fault_ctx_t;

/* ---- config ---- */

int gh_fault_parse_percent(const char *s, size_t len, uint32_t *per10k)
{
    uint32_t whole = 0, frac = 0;
    size_t i = 0, digits = 0, fdigits = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
        if ((whole = whole * 10 + (uint32_t)(s[i] - '0')) > 100)
            return -1;
    if (digits == 0)
        return -1;
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, fdigits++)
            if (fdigits < 2)
                frac = frac * 10 + (uint32_t)(s[i] - '0');
            else if (s[i] != '0')
                return -1; /* finer than 0.01% */
        if (fdigits == 0)
            return -1;
    }
    if (i != len)
        return -1;
    if (fdigits == 1)
        frac *= 10;
    uint32_t v = whole * 100 + frac;
    if (v > 10000)
        return -1;
    *per10k = v;
    return 0;
}

static int parse_pct(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map, uint32_t *per10k)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, "percent");
    *per10k = 10000;
    if (v == NULL)
        return 0;
    if (v->kind != GH_YAML_SCALAR || !v->plain ||
        gh_fault_parse_percent(v->str, v->len, per10k) < 0)
        return gh_yaml_error(doc, v,
                             "'percent' must be a number from 0 to 100 with at most two decimals");
    return 0;
}

static int parse_header(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map, char **out)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, "header");
    const char *name;
    int rc;
    if (v == NULL)
        return 0;
    if ((rc = gh_yaml_str(doc, v, "header", &name)) != 0)
        return rc;
    if (v->len == 0)
        return gh_yaml_error(doc, v, "'header' must be a header name");
    for (size_t i = 0; i < v->len; i++)
        if (!gh_h1_is_tchar((unsigned char)name[i]))
            return gh_yaml_error(doc, v, "'header' must be a header name (an HTTP token)");
    if ((*out = malloc(v->len + 1)) == NULL)
        return gh_yaml_oom(doc);
    for (size_t i = 0; i <= v->len; i++)
        (*out)[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    return 0;
}

static int parse_delay(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, fault_delay_t *d)
{
    static const char *const keys[] = {"fixed", "percent", "header", NULL};
    const gh_yaml_node_t *v;
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'delay'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'delay'")) != 0 ||
        (rc = gh_yaml_require(doc, n, "fixed", "'delay'", &v)) != 0 ||
        (rc = gh_yaml_duration_max(doc, v, "fixed", MAX_DELAY_MS, &d->ms)) != 0 ||
        (rc = parse_pct(doc, n, &d->per10k)) != 0)
        return rc;
    return parse_header(doc, n, &d->header);
}

static int parse_abort(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, fault_abort_t *a)
{
    static const char *const keys[] = {"status", "percent", "header", NULL};
    const gh_yaml_node_t *v;
    uint64_t status;
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'abort'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'abort'")) != 0 ||
        (rc = gh_yaml_require(doc, n, "status", "'abort'", &v)) != 0 ||
        (rc = gh_yaml_uint(doc, v, "status", 200, 599, &status)) != 0 ||
        (rc = parse_pct(doc, n, &a->per10k)) != 0)
        return rc;
    a->status = (int)status;
    return parse_header(doc, n, &a->header);
}

static void free_conf(void *p)
{
    fault_conf_t *f = p;
    if (f == NULL)
        return;
    free(f->delay.header);
    free(f->abort.header);
    free(f);
}

static int parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg,
                 gh_route_t *route, void **conf)
{
    static const char *const keys[] = {"delay", "abort", NULL};
    const gh_yaml_node_t *d, *a;
    int rc;
    (void)cfg;
    (void)route;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'fault'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'fault'")) != 0)
        return rc;
    d = gh_yaml_map_get(n, "delay");
    a = gh_yaml_map_get(n, "abort");
    if (d == NULL && a == NULL)
        return gh_yaml_error(doc, n, "'fault' needs a 'delay', an 'abort' or both");
    fault_conf_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return gh_yaml_oom(doc);
    if ((d != NULL && (rc = parse_delay(doc, d, &f->delay)) != 0) ||
        (a != NULL && (rc = parse_abort(doc, a, &f->abort)) != 0)) {
        free_conf(f);
        return rc;
    }
    *conf = f;
    return 0;
}

static void *fault_bind(void *rt, const gh_config_t *cfg, const gh_route_t *route, const void *conf,
                        const char *listener)
{
    (void)rt;
    (void)cfg;
    (void)listener;
    fault_inst_t *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return NULL;
    in->conf = conf;
    in->delayed_id = gh_metrics_filter_id("fault", route->name, "delay");
    in->aborted_id = gh_metrics_filter_id("fault", route->name, "abort");
    return in;
}

static void fault_unbind(void *in)
{
    free(in);
}

/* ---- per request ---- */

/* Whether this request gets the fault: it carries the header (if one is
 * named) and the draw falls under the percentage. */
static int hit(gh_stream_t *s, uint32_t per10k, const char *header)
{
    size_t len;
    if (per10k == 0)
        return 0;
    if (header != NULL && gh_stream_header_get(s, header, &len) == NULL)
        return 0;
    return per10k >= 10000 || gh_stream_random(s) % 10000 < per10k;
}

static void abort_now(gh_stream_t *s, const fault_inst_t *in, int delayed)
{
    gh_stream_count(s, in->aborted_id);
    gh_stream_log_note(s, delayed ? "fault=delay,abort" : "fault=abort");
    gh_stream_reply_error(s, in->conf->abort.status, "fault_injected",
                          "the request was aborted by fault injection");
}

static void delay_done(gh_deadline_t *d)
{
    fault_ctx_t *ctx = (fault_ctx_t *)((char *)d - offsetof(fault_ctx_t, dl));
    gh_stream_handle_t *h = ctx->handle;
    ctx->handle = NULL;
    gh_stream_t *s = gh_stream_handle_take(h);
    if (s == NULL)
        return; /* cannot happen: on_cancel stops the deadline */
    if (ctx->abort)
        abort_now(s, ctx->in, 1);
    else
        gh_stream_continue(s);
}

static gh_filter_status_t on_request_headers(gh_stream_t *s, const void *conf, void *vctx)
{
    const fault_inst_t *in = conf;
    const fault_conf_t *f = in->conf;
    fault_ctx_t *ctx = vctx;
    int do_delay = f->delay.ms > 0 && hit(s, f->delay.per10k, f->delay.header);
    int do_abort = f->abort.status > 0 && hit(s, f->abort.per10k, f->abort.header);
    if (!do_delay) {
        if (!do_abort)
            return GH_FILTER_CONTINUE;
        abort_now(s, in, 0);
        return GH_FILTER_REPLIED;
    }
    ctx->in = in;
    ctx->abort = do_abort;
    ctx->handle = gh_stream_pause(s);
    if (ctx->handle == NULL ||
        gh_stream_deadline_start(s, &ctx->dl, f->delay.ms, delay_done) != 0) {
        gh_stream_handle_take(ctx->handle);
        ctx->handle = NULL;
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    gh_stream_count(s, in->delayed_id);
    gh_stream_log_note(s, do_abort ? "fault=delay,abort" : "fault=delay");
    return GH_FILTER_PAUSE;
}

/* The client left (or the worker drains) during the delay. */
static void on_cancel(gh_stream_t *s, const void *conf, void *vctx)
{
    fault_ctx_t *ctx = vctx;
    (void)s;
    (void)conf;
    gh_deadline_stop(&ctx->dl);
    gh_stream_handle_take(ctx->handle); /* NULL: the stream is ending */
    ctx->handle = NULL;
}

const gh_filter_type_t gh_fault_filter = {
    .name = "fault",
    .phase = GH_PHASE_TRANSFORM,
    .ctx_size = sizeof(fault_ctx_t),
    .parse = parse,
    .free_conf = free_conf,
    .bind = fault_bind,
    .unbind = fault_unbind,
    .on_request_headers = on_request_headers,
    .on_cancel = on_cancel,
};
