/*
 * The lambda upstream: the terminal filter of a route whose `to` names
 * clusters of type lambda (docs/lambda.md). It takes the router's place:
 * the request body is read whole (bounded by lambda.max_body: 413 past it),
 * the request as the router would forward it becomes an API Gateway proxy
 * event (HTTP API payload 2.0, or 1.0), the Invoke API call is signed with
 * Signature Version 4 and goes out as a callout to the cluster named by
 * lambda.endpoint, and the function's result is mapped back to a response
 * the way API Gateway maps it (src/authorizer/lambda.c), framed by
 * gatehouse.
 *
 * It is never written on a route: the config puts it on every route whose
 * targets are lambda clusters (its `implied` hook), and a route cannot mix
 * lambda and HTTP clusters.
 *
 * Failures, as the router answers for an HTTP upstream: connect refused or
 * reset, malformed answer 502; a timeout (the route's `timeout`, covering
 * the whole call) 504; every connection busy 503. The function failing
 * (X-Amz-Function-Error) or answering something that is not a proxy result
 * is a 502; the Invoke API refusing the call (signature, unknown function,
 * bad request) a 502 and throttling (429) a 503, each with a reason of
 * gatehouse's: the service's own error body never reaches the client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gatehouse/aws.h>
#include <gatehouse/callout.h>
#include <gatehouse/filter.h>
#include <gatehouse/log.h>
#include <gatehouse/metrics.h>

#include "authorizer/authz.h"
#include "filters/lambda/lambda.h"

/* The Invoke API's path, and AWS's own values for the proxy event's
 * requestContext where gatehouse has none of its own. */
#define INVOKE_PREFIX "/2015-03-31/functions/"
#define INVOKE_SUFFIX "/invocations"
#define EVENT_ACCOUNT "000000000000"
#define EVENT_API "gatehouse"

/* One of the route's targets, bound: what every call to it sends. */
typedef struct {
    const gh_lambda_cluster_t *fn;
    const gh_cluster_t *endpoint; /* the cluster that answers the Invoke API */
    char *target;                 /* path[?Qualifier=Q], percent-encoded (owned) */
    size_t target_len, path_len;
    char *host;     /* Host sent and signed (owned) */
    char *upstream; /* "lambda:FUNCTION[:QUALIFIER]", the access log's upstream (owned) */
} lambda_target_t;

typedef struct {
    const gh_route_t *route;
    lambda_target_t *targets; /* as route->targets */
    size_t num_targets;
    uint32_t ev_function_error, ev_bad_result, ev_refused, ev_throttled, ev_failed;
} lambda_inst_t;

/* Per stream, zeroed. The call borrows event until its callback ran or
 * it was cancelled. */
typedef struct {
    const lambda_inst_t *in;
    const lambda_target_t *t;
    size_t target; /* t's index in the route's targets */
    gh_stream_handle_t *h;
    gh_callout_t *call;
    char *event; /* malloc'd by the event builder */
    size_t event_len;
} lambda_ctx_t;

/* ---- config ---- */

static int implied(const gh_config_t *cfg, const gh_route_t *route)
{
    (void)cfg;
    return route->num_targets > 0 && route->targets[0].cluster->lambda != NULL;
}

static int parse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                 gh_route_t *route, void **conf)
{
    (void)cfg;
    (void)route;
    *conf = NULL;
    if (node != NULL)
        return gh_yaml_error(doc, node,
                             "'lambda' is not a route key: a route reaches a Lambda function "
                             "with 'to' naming a cluster of type lambda");
    return 0;
}

static void lambda_unbind(void *p)
{
    lambda_inst_t *in = p;
    if (in == NULL)
        return;
    for (size_t i = 0; i < in->num_targets; i++) {
        free(in->targets[i].target);
        free(in->targets[i].host);
        free(in->targets[i].upstream);
    }
    free(in->targets);
    free(in);
}

/* Percent-encodes s for a path segment or a query value: every byte but
 * the unreserved ones (RFC 3986 section 2.3), so ':' of an ARN is %3A and
 * '$' of $LATEST %24, as botocore sends them. Returns the end of out. */
static char *encode(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    return out;
}

static int bind_target(lambda_target_t *t, const gh_cluster_t *c)
{
    const gh_lambda_cluster_t *fn = c->lambda;
    t->fn = fn;
    t->endpoint = fn->endpoint_cluster;
    if (fn->creds == NULL)
        GH_LOG(GH_LOG_WARN, "lambda",
               "cluster '%s': no AWS credentials (%s): its requests are answered 503", c->name,
               fn->creds_error ? fn->creds_error : "not loaded");
    size_t cap = sizeof(INVOKE_PREFIX) + sizeof(INVOKE_SUFFIX) + 3 * strlen(fn->function) +
                 (fn->qualifier != NULL ? 16 + 3 * strlen(fn->qualifier) : 0);
    if ((t->target = malloc(cap)) == NULL)
        return -1;
    char *o = t->target;
    memcpy(o, INVOKE_PREFIX, sizeof(INVOKE_PREFIX) - 1);
    o = encode(o + sizeof(INVOKE_PREFIX) - 1, fn->function);
    memcpy(o, INVOKE_SUFFIX, sizeof(INVOKE_SUFFIX) - 1);
    o += sizeof(INVOKE_SUFFIX) - 1;
    t->path_len = (size_t)(o - t->target);
    if (fn->qualifier != NULL) {
        memcpy(o, "?Qualifier=", 11);
        o = encode(o + 11, fn->qualifier);
    }
    *o = '\0';
    t->target_len = (size_t)(o - t->target);
    /* The Host the Invoke API is signed for: the endpoint cluster's
     * default_host when set (an egress proxy may want its own), else AWS's
     * regional endpoint, which a TLS-terminating proxy passes on as is. */
    size_t hl = t->endpoint->default_host != NULL ? strlen(t->endpoint->default_host) + 1
                                                  : strlen(fn->region) + 32;
    if ((t->host = malloc(hl)) == NULL)
        return -1;
    if (t->endpoint->default_host != NULL)
        memcpy(t->host, t->endpoint->default_host, hl);
    else
        snprintf(t->host, hl, "lambda.%s.amazonaws.com", fn->region);
    size_t ul = strlen(fn->function) + (fn->qualifier ? strlen(fn->qualifier) : 0) + 16;
    if ((t->upstream = malloc(ul)) == NULL)
        return -1;
    snprintf(t->upstream, ul, "lambda:%s%s%s", fn->function, fn->qualifier ? ":" : "",
             fn->qualifier ? fn->qualifier : "");
    return 0;
}

static void *lambda_bind(void *rt, const gh_config_t *cfg, const gh_route_t *route,
                         const void *conf, const char *listener)
{
    (void)rt;
    (void)cfg;
    (void)conf;
    (void)listener;
    lambda_inst_t *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return NULL;
    in->route = route;
    in->targets = calloc(route->num_targets + 1, sizeof(*in->targets));
    if (in->targets == NULL) {
        free(in);
        return NULL;
    }
    in->num_targets = route->num_targets;
    for (size_t i = 0; i < route->num_targets; i++)
        if (bind_target(&in->targets[i], route->targets[i].cluster) < 0) {
            lambda_unbind(in);
            return NULL;
        }
    in->ev_function_error = gh_metrics_filter_id("lambda", route->name, "function_error");
    in->ev_bad_result = gh_metrics_filter_id("lambda", route->name, "bad_result");
    in->ev_refused = gh_metrics_filter_id("lambda", route->name, "invoke_refused");
    in->ev_throttled = gh_metrics_filter_id("lambda", route->name, "throttled");
    in->ev_failed = gh_metrics_filter_id("lambda", route->name, "call_failed");
    return in;
}

/* ---- per request ---- */

static size_t pick_target(gh_stream_t *s, const gh_route_t *r)
{
    if (r->num_targets == 1)
        return 0;
    uint64_t x = gh_stream_random(s) % r->total_weight;
    for (size_t i = 0; i < r->num_targets; i++) {
        if (x < r->targets[i].weight)
            return i;
        x -= r->targets[i].weight;
    }
    return r->num_targets - 1;
}

static gh_filter_status_t on_request_headers(gh_stream_t *s, const void *conf, void *ctxp)
{
    const lambda_inst_t *in = conf;
    lambda_ctx_t *ctx = ctxp;
    size_t i = pick_target(s, in->route);
    ctx->in = in;
    ctx->t = &in->targets[i];
    ctx->target = i;
    gh_stream_buffer_body(s, (size_t)ctx->t->fn->max_body);
    return GH_FILTER_BUFFER;
}

/* The proxy event of the request as the router would have sent it. */
static int build_event(gh_stream_t *s, lambda_ctx_t *ctx, const char *body, size_t len)
{
    gh_stream_forwarded_t fw;
    if (gh_stream_forwarded(s, &fw) < 0)
        return -ENOMEM;
    gh_authz_request_t r;
    memset(&r, 0, sizeof(r));
    const char *path, *query;
    size_t path_len, query_len;
    gh_stream_request_line(s, &r.method.p, &r.method.n, &path, &path_len, &query, &query_len);
    r.path = (gh_authz_str_t){fw.path, fw.path_len};
    r.query = (gh_authz_str_t){fw.query, fw.query_len};
    r.headers = fw.headers;
    r.nheaders = fw.num_headers;
    const char *ip = gh_stream_client_address(s);
    r.source_ip = (gh_authz_str_t){ip, strlen(ip)};
    const char *rid = gh_stream_request_id(s);
    r.request_id = (gh_authz_str_t){rid, strlen(rid)};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    r.body = (const unsigned char *)body;
    r.body_len = len;
    r.account_id = EVENT_ACCOUNT;
    r.api_id = EVENT_API;
    r.region = ctx->t->fn->region;
    return ctx->t->fn->payload == 1 ? gh_lambda_event_v1(&r, &ctx->event, &ctx->event_len)
                                    : gh_lambda_event_v2(&r, &ctx->event, &ctx->event_len);
}

static void call_done(void *arg, const gh_callout_result_t *res);

static gh_filter_status_t fail_start(gh_stream_t *s, lambda_ctx_t *ctx, int rc);

static gh_filter_status_t on_request_buffered(gh_stream_t *s, const void *conf, void *ctxp,
                                              const char *body, size_t len)
{
    lambda_ctx_t *ctx = ctxp;
    const lambda_target_t *t = ctx->t;
    (void)conf;
    int rc = build_event(s, ctx, body, len);
    if (rc == -EILSEQ) {
        gh_stream_reply_error(s, 400, "bad_request",
                              "the request holds bytes that are not UTF-8, which a Lambda event "
                              "(JSON) cannot carry");
        return GH_FILTER_REPLIED;
    }
    if (rc == -ENOMEM) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    if (rc != 0) {
        gh_stream_reply_error(s, 500, "internal_error", "the Lambda event cannot be built");
        return GH_FILTER_REPLIED;
    }
    /* Lambda's synchronous Invoke takes at most 6 MB of event: a larger one
     * is the client's request too large, as API Gateway answers it. */
    if (ctx->event_len > GH_LAMBDA_MAX_RESULT) {
        gh_stream_reply_error(s, 413, "payload_too_large",
                              "the request makes a Lambda event larger than 6 MB");
        return GH_FILTER_REPLIED;
    }
    const char *ctype = "application/json", *itype = "RequestResponse";
    gh_aws_header_t sh[] = {{"host", 4, t->host, strlen(t->host)},
                            {"content-type", 12, ctype, strlen(ctype)},
                            {"x-amz-invocation-type", 21, itype, strlen(itype)}};
    const char *query = memchr(t->target, '?', t->target_len);
    gh_aws_sigv4_req_t sreq = {.method = "POST",
                               .path = t->target,
                               .path_len = t->path_len,
                               .query = query != NULL ? query + 1 : NULL,
                               .query_len = query != NULL ? t->target_len - t->path_len - 1 : 0,
                               .headers = sh,
                               .num_headers = 3,
                               .payload = ctx->event,
                               .payload_len = ctx->event_len,
                               .region = t->fn->region,
                               .service = "lambda",
                               .time = (int64_t)time(NULL)};
    gh_aws_sigv4_out_t sig;
    if (t->fn->creds == NULL) {
        gh_stream_reply_error(s, 503, "service_unavailable",
                              "no AWS credentials for the Lambda function (see the log)");
        return GH_FILTER_REPLIED;
    }
    if ((rc = gh_aws_sigv4_sign(&sreq, t->fn->creds, &sig)) != 0) {
        GH_LOG(GH_LOG_ERROR, "lambda", "req=%s cannot sign the Invoke call: %s",
               gh_stream_request_id(s), sig.error ? sig.error : "error");
        gh_stream_reply_error(s, rc == -ENOMEM ? 503 : 500,
                              rc == -ENOMEM ? "service_unavailable" : "internal_error",
                              "the Lambda Invoke call cannot be signed");
        return GH_FILTER_REPLIED;
    }
    gh_h1_header_t hs[5];
    size_t nh = 0;
    hs[nh++] = (gh_h1_header_t){
        .name = "content-type", .name_len = 12, .value = ctype, .value_len = strlen(ctype)};
    hs[nh++] = (gh_h1_header_t){.name = "x-amz-invocation-type",
                                .name_len = 21,
                                .value = itype,
                                .value_len = strlen(itype)};
    hs[nh++] = (gh_h1_header_t){.name = "x-amz-date",
                                .name_len = 10,
                                .value = sig.amz_date,
                                .value_len = strlen(sig.amz_date)};
    if (sig.security_token != NULL)
        hs[nh++] = (gh_h1_header_t){.name = "x-amz-security-token",
                                    .name_len = 20,
                                    .value = sig.security_token,
                                    .value_len = strlen(sig.security_token)};
    hs[nh++] = (gh_h1_header_t){.name = "authorization",
                                .name_len = 13,
                                .value = sig.authorization,
                                .value_len = sig.authorization_len};
    gh_callout_req_t q = {.method = "POST",
                          .target = t->target,
                          .target_len = t->target_len,
                          .host = t->host,
                          .host_len = strlen(t->host),
                          .headers = hs,
                          .num_headers = nh,
                          .body = ctx->event,
                          .body_len = ctx->event_len,
                          .timeout_ms = gh_stream_route(s)->timeout_ms,
                          .max_body = GH_LAMBDA_MAX_RESULT};
    if ((ctx->h = gh_stream_pause(s)) == NULL) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    gh_stream_upstream_begin(s, ctx->target, t->upstream);
    rc = gh_callout_start(s, t->endpoint, &q, call_done, ctx, &ctx->call);
    if (rc < 0) {
        gh_stream_handle_take(ctx->h);
        ctx->h = NULL;
        ctx->call = NULL;
        return fail_start(s, ctx, rc);
    }
    return GH_FILTER_PAUSE;
}

/* A call that failed before or instead of an answer: the router's
 * statuses for the same failures of an HTTP upstream. */
static void fail_call(gh_stream_t *s, lambda_ctx_t *ctx, int code, const char *reason)
{
    char detail[320];
    const char *fn = ctx->t->fn->function;
    gh_stream_count(s, ctx->in->ev_failed);
    switch (code) {
    case GH_CALLOUT_E_TIMEOUT:
        snprintf(detail, sizeof(detail), "Lambda function '%s': %s", fn, reason);
        gh_stream_reply_error(s, 504, "gateway_timeout", detail);
        return;
    case GH_CALLOUT_E_CONNECT:
        snprintf(detail, sizeof(detail), "Lambda function '%s': %s", fn, reason);
        /* The callout has one code for a refused connect and one that
         * passed connect_timeout; the router answers the second 504. */
        if (strstr(reason, "timed out") != NULL)
            gh_stream_reply_error(s, 504, "gateway_timeout", detail);
        else
            gh_stream_reply_error(s, 502, "bad_gateway", detail);
        return;
    case GH_CALLOUT_E_POOL_FULL:
        snprintf(detail, sizeof(detail), "Lambda function '%s': %s", fn, reason);
        gh_stream_reply_error(s, 503, "service_unavailable", detail);
        return;
    case GH_CALLOUT_E_NOMEM:
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return;
    case GH_CALLOUT_E_TOO_LARGE:
        snprintf(detail, sizeof(detail),
                 "Lambda function '%s' answered more than Lambda's 6 MB result limit", fn);
        gh_stream_reply_error(s, 502, "bad_gateway", detail);
        return;
    case GH_CALLOUT_E_INVALID:
        snprintf(detail, sizeof(detail), "Lambda function '%s': the call was refused: %s", fn,
                 reason);
        gh_stream_reply_error(s, 500, "internal_error", detail);
        return;
    default: /* reset, malformed */
        snprintf(detail, sizeof(detail), "Lambda function '%s': %s", fn, reason);
        gh_stream_reply_error(s, 502, "bad_gateway", detail);
        return;
    }
}

static gh_filter_status_t fail_start(gh_stream_t *s, lambda_ctx_t *ctx, int rc)
{
    const char *reason = rc == GH_CALLOUT_E_POOL_FULL ? "every connection to the Invoke API "
                                                        "endpoint is busy"
                         : rc == GH_CALLOUT_E_CONNECT ? "cannot connect to the Invoke API endpoint"
                                                      : gh_callout_error_name(rc);
    fail_call(s, ctx, rc, reason);
    return GH_FILTER_REPLIED;
}

/* The service's error code (x-amzn-ErrorType, which AWS may follow with
 * ':' and a URL), when it is a plain name: the only part of the service's
 * answer a client sees. */
static void error_type(const gh_callout_result_t *res, char out[65])
{
    size_t n = 0, i;
    const char *v = gh_callout_result_header(res, "x-amzn-errortype", &n);
    out[0] = '\0';
    if (v == NULL)
        return;
    for (i = 0; i < n && i < 64 && v[i] != ':'; i++) {
        char c = v[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.'))
            break;
        out[i] = c;
    }
    if (i < n && v[i] != ':') {
        out[0] = '\0';
        return;
    }
    out[i] = '\0';
}

/* The Invoke API answered something else than 200: the service's refusal
 * (its body, which may quote the canonical request, stays here). */
static void service_error(gh_stream_t *s, lambda_ctx_t *ctx, const gh_callout_result_t *res)
{
    char type[65], detail[320];
    const char *fn = ctx->t->fn->function;
    error_type(res, type);
    GH_LOG(GH_LOG_WARN, "lambda", "req=%s the Invoke API answered %d %s for function '%s'",
           gh_stream_request_id(s), res->status, type[0] ? type : "(no error type)", fn);
    if (res->status == 429) {
        gh_stream_count(s, ctx->in->ev_throttled);
        snprintf(detail, sizeof(detail), "Lambda throttled the call to function '%s' (429%s%s)", fn,
                 type[0] ? " " : "", type);
        gh_stream_reply_error(s, 503, "service_unavailable", detail);
        return;
    }
    gh_stream_count(s, ctx->in->ev_refused);
    if (res->status == 413) {
        snprintf(detail, sizeof(detail),
                 "the request is too large for Lambda function '%s' (413%s%s)", fn,
                 type[0] ? " " : "", type);
        gh_stream_reply_error(s, 413, "payload_too_large", detail);
        return;
    }
    snprintf(detail, sizeof(detail),
             "the Lambda Invoke API refused the call to function '%s' (%d%s%s)", fn, res->status,
             type[0] ? " " : "", type);
    gh_stream_reply_error(s, 502, "bad_gateway", detail);
}

static void function_result(gh_stream_t *s, lambda_ctx_t *ctx, const gh_callout_result_t *res)
{
    char detail[320];
    const char *fn = ctx->t->fn->function, *why = NULL;
    size_t fe_len = 0;
    const char *fe = gh_callout_result_header(res, "x-amz-function-error", &fe_len);
    if (gh_lambda_error_classify(fe, fe_len, res->body, res->body_len, &why) != GH_LAMBDA_RESULT) {
        /* Handled or Unhandled; the function's errorMessage and stack trace
         * are not the client's to read. */
        int plain = fe_len > 0 && fe_len <= 16;
        for (size_t i = 0; plain && i < fe_len; i++)
            plain = (fe[i] >= 'A' && fe[i] <= 'Z') || (fe[i] >= 'a' && fe[i] <= 'z');
        gh_stream_count(s, ctx->in->ev_function_error);
        snprintf(detail, sizeof(detail), "Lambda function '%s' failed (X-Amz-Function-Error: %.*s)",
                 fn, plain ? (int)fe_len : 7, plain ? fe : "unknown");
        gh_stream_reply_error(s, 502, "bad_gateway", detail);
        return;
    }
    gh_lambda_response_t out;
    int rc = gh_lambda_response_map(res->body != NULL ? res->body : "", res->body_len,
                                    ctx->t->fn->payload, &out, &why);
    if (rc == GH_AUTHZ_EBAD) {
        gh_stream_count(s, ctx->in->ev_bad_result);
        snprintf(detail, sizeof(detail),
                 "Lambda function '%s' returned a malformed proxy result: %s", fn,
                 why != NULL ? why : "malformed");
        gh_stream_reply_error(s, 502, "bad_gateway", detail);
        return;
    }
    if (rc != 0) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return;
    }
    gh_h1_header_t *hs = gh_stream_alloc(s, (out.nheaders + 1) * sizeof(*hs));
    if (hs == NULL) {
        gh_lambda_response_dispose(&out);
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < out.nheaders; i++) {
        const gh_lambda_header_t *h = &out.headers[i];
        /* Framing and hop-by-hop fields are gatehouse's to write. */
        if (gh_lambda_header_dropped(h->name, h->name_len))
            continue;
        hs[n++] = (gh_h1_header_t){
            .name = h->name, .name_len = h->name_len, .value = h->value, .value_len = h->value_len};
    }
    gh_stream_reply(s, out.status, hs, n, (const char *)out.body, out.body_len);
    gh_lambda_response_dispose(&out);
}

static void call_done(void *arg, const gh_callout_result_t *res)
{
    lambda_ctx_t *ctx = arg;
    ctx->call = NULL;
    free(ctx->event);
    ctx->event = NULL;
    gh_stream_t *s = gh_stream_handle_take(ctx->h);
    ctx->h = NULL;
    if (s == NULL)
        return;
    if (res->error != 0) {
        fail_call(s, ctx, res->error, res->reason != NULL ? res->reason : "call failed");
        return;
    }
    gh_stream_upstream_end(s);
    if (res->status != 200)
        service_error(s, ctx, res);
    else
        function_result(s, ctx, res);
}

static void on_cancel(gh_stream_t *s, const void *conf, void *ctxp)
{
    lambda_ctx_t *ctx = ctxp;
    (void)s;
    (void)conf;
    gh_callout_cancel(ctx->call);
    ctx->call = NULL;
    gh_stream_handle_take(ctx->h);
    ctx->h = NULL;
    free(ctx->event);
    ctx->event = NULL;
}

static void on_destroy(gh_stream_t *s, const void *conf, void *ctxp)
{
    lambda_ctx_t *ctx = ctxp;
    (void)s;
    (void)conf;
    free(ctx->event);
    ctx->event = NULL;
}

/* The runtime is the config itself (borrowed): /ready needs only it. */
static int lambda_init(const gh_config_t *cfg, void **rt)
{
    *rt = (void *)cfg;
    return 0;
}

/* A lambda cluster whose credentials did not load answers every request
 * 503: the process is not ready to serve it (as an authorizer without
 * them). */
static size_t lambda_ready(const void *rt, int detailed, char *out, size_t cap)
{
    const gh_config_t *cfg = rt;
    size_t n = 0, o = 0;
    for (size_t i = 0; cfg != NULL && i < cfg->num_clusters; i++) {
        const gh_lambda_cluster_t *l = cfg->clusters[i].lambda;
        if (l == NULL || l->creds != NULL)
            continue;
        int w = snprintf(out + o, o < cap ? cap - o : 0, "%slambda cluster '%s': %s", n ? "\n" : "",
                         cfg->clusters[i].name,
                         detailed && l->creds_error != NULL ? l->creds_error
                                                            : "no AWS credentials (see the log)");
        if (w > 0 && o + (size_t)w < cap)
            o += (size_t)w;
        else if (o < cap)
            out[o] = '\0';
        n++;
    }
    return n;
}

const gh_filter_type_t gh_lambda_filter = {
    .name = "lambda",
    .phase = GH_PHASE_TERMINAL,
    .ctx_size = sizeof(lambda_ctx_t),
    .parse = parse,
    .implied = implied,
    .init = lambda_init,
    .ready = lambda_ready,
    .bind = lambda_bind,
    .unbind = lambda_unbind,
    .on_request_headers = on_request_headers,
    .on_request_buffered = on_request_buffered,
    .on_cancel = on_cancel,
    .on_destroy = on_destroy,
};
