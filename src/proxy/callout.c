/*
 * Callouts (gatehouse/callout.h, docs/internals/callout.md): a filter's own
 * HTTP/1.1 call to a cluster, on the worker's loop, over the pools the
 * router uses (upstream.c). A call takes a connection as a stream does
 * (gh_upconn_get, gh_pool_active_inc), owns its events through up->call
 * while it holds it, and gives it back reusable only after a whole
 * response on a connection that stays open and has nothing unread.
 *
 * Ownership: the call (heap) is the caller's from gh_callout_start until
 * its callback has returned or gh_callout_cancel; it holds a reference to
 * the worker's view (gh_wsnap_t) that owns the pools and the cluster, so a
 * reload cannot free them under it. The request head is the call's own
 * copy; the request body is borrowed (callout.h).
 *
 * TLS to upstreams is a transport under gh_upconn_t (uptls.c): nothing
 * here looks at the socket, only at u->rbuf and gh_upconn_send; a TLS
 * failure's reason comes from gh_upconn_why.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/callout.h>
#include <gatehouse/log.h>
#include <gatehouse/yaml.h>

#include "proxy/proxy.h"
#include "proxy/resread.h"

_Static_assert(GH_CALLOUT_OUTCOMES == GH_METRICS_CALLOUT_OUTCOMES, "one counter per outcome");

struct gh_callout_s {
    gh_worker_t *worker;
    gh_wsnap_t *ws; /* reference */
    const gh_cluster_t *cluster;
    gh_pool_t *pool;           /* the endpoint's, in ws */
    gh_upconn_t *up;           /* the connection it holds, or NULL */
    gh_cluster_stats_t *stats; /* the worker's shard entry (outlives ws), or NULL */
    gh_deadline_t dl;          /* the call's timeout */
    gh_callout_cb cb;
    void *arg;
    char *head; /* owned: the request head */
    size_t head_len;
    const char *body; /* borrowed (callout.h) */
    size_t body_len;
    uint64_t timeout_ms;
    gh_resread_t rr;
    unsigned tries;
    unsigned idempotent : 1;
    unsigned sent : 1;  /* the whole request was written */
    unsigned in_cb : 1; /* its callback runs: cancel does nothing */
    char reason[200];
};

/* ---- config time ---- */

const gh_cluster_t *gh_callout_cluster(const gh_config_t *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->num_clusters; i++)
        if (strcmp(cfg->clusters[i].name, name) == 0)
            return &cfg->clusters[i];
    return NULL;
}

int gh_callout_cluster_check(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                             const gh_config_t *cfg, const char *what, const char *name)
{
    const gh_cluster_t *c = gh_callout_cluster(cfg, name);
    if (c != NULL && c->lambda != NULL)
        return gh_yaml_error(doc, node,
                             "%s names cluster '%s', a lambda cluster: a call goes to a cluster "
                             "with endpoints",
                             what, name);
    if (c != NULL)
        return 0;
    return gh_yaml_error(doc, node, "%s names unknown cluster '%s'", what, name ? name : "");
}

/* ---- the request ---- */

/* Fields gatehouse writes itself, or that would change how the upstream
 * reads the framing or the connection. */
static int field_refused(const char *name, size_t n)
{
    static const char *const own[] = {
        "content-length",
        "transfer-encoding",
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    };
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (!gh_h1_is_tchar((unsigned char)name[i]))
            return 1;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strlen(own[i]) == n && gh_h1_name_equals(name, own[i], n))
            return 1;
    return 0;
}

/* field-value (RFC 9110 section 5.5): no control byte but HTAB. */
static int value_refused(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)v[i];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            return 1;
    }
    return 0;
}

static int method_is(const char *m, const char *lit)
{
    return strcmp(m, lit) == 0;
}

static int request_refused(const gh_callout_req_t *q)
{
    if (q->method == NULL || q->method[0] == '\0' || method_is(q->method, "HEAD") ||
        method_is(q->method, "CONNECT") || q->target == NULL || q->target_len == 0 ||
        q->target[0] != '/' || q->timeout_ms == 0 || (q->body == NULL && q->body_len > 0) ||
        (q->num_headers > 0 && q->headers == NULL))
        return 1;
    for (const char *p = q->method; *p != '\0'; p++)
        if (!gh_h1_is_tchar((unsigned char)*p))
            return 1;
    for (size_t i = 0; i < q->target_len; i++) {
        unsigned char b = (unsigned char)q->target[i];
        if (b <= 0x20 || b == 0x7f)
            return 1;
    }
    if (q->host != NULL && !gh_h1_authority_is_valid(q->host, q->host_len))
        return 1;
    for (size_t i = 0; i < q->num_headers; i++)
        if (field_refused(q->headers[i].name, q->headers[i].name_len) ||
            value_refused(q->headers[i].value, q->headers[i].value_len))
            return 1;
    return 0;
}

static char *put(char *o, const char *p, size_t n)
{
    memcpy(o, p, n);
    return o + n;
}

/* The head, for the endpoint of c->pool. */
static int build_head(gh_callout_t *c, const gh_callout_req_t *q)
{
    const char *host = q->host;
    size_t host_len = q->host_len;
    if (host == NULL) {
        host = c->cluster->default_host != NULL ? c->cluster->default_host : c->pool->ep->address;
        host_len = strlen(host);
    }
    int cl = q->body != NULL || method_is(q->method, "POST") || method_is(q->method, "PUT") ||
             method_is(q->method, "PATCH");
    size_t ml = strlen(q->method);
    size_t n = ml + 1 + q->target_len + 11 + 6 + host_len + 2 + 2;
    for (size_t i = 0; i < q->num_headers; i++)
        n += q->headers[i].name_len + 2 + q->headers[i].value_len + 2;
    if (cl)
        n += 16 + 20 + 2;
    c->head = malloc(n);
    if (c->head == NULL)
        return -1;
    char *o = c->head;
    o = put(o, q->method, ml);
    *o++ = ' ';
    o = put(o, q->target, q->target_len);
    o = put(o, " HTTP/1.1\r\nhost: ", 17);
    o = put(o, host, host_len);
    o = put(o, "\r\n", 2);
    for (size_t i = 0; i < q->num_headers; i++) {
        o = put(o, q->headers[i].name, q->headers[i].name_len);
        o = put(o, ": ", 2);
        o = put(o, q->headers[i].value, q->headers[i].value_len);
        o = put(o, "\r\n", 2);
    }
    if (cl)
        o += snprintf(o, 16 + 20 + 3, "content-length: %zu\r\n", q->body_len);
    o = put(o, "\r\n", 2);
    c->head_len = (size_t)(o - c->head);
    return 0;
}

/* ---- the end of a call ---- */

static void count(gh_callout_t *c, int code)
{
    if (c->stats != NULL)
        GH_STAT_INC(c->stats->callouts[-code]);
}

static void call_free(gh_callout_t *c)
{
    gh_deadline_stop(&c->dl);
    gh_resread_dispose(&c->rr);
    free(c->head);
    if (c->ws != NULL)
        gh_wsnap_unref(c->ws);
    free(c);
}

/* Gives the connection back: to the pool when reusable, else closed. */
static void detach(gh_callout_t *c, int reusable)
{
    gh_upconn_t *u = c->up;
    if (u == NULL)
        return;
    c->up = NULL;
    u->call = NULL;
    gh_pool_active_dec(u->pool);
    gh_upconn_release(u, reusable);
}

/* The call's one completion: the callback, then the call's memory. */
static void complete(gh_callout_t *c, int code)
{
    gh_callout_result_t res = {.error = code, .reason = code != 0 ? c->reason : NULL};
    gh_deadline_stop(&c->dl);
    count(c, code);
    if (code == 0) {
        res.status = c->rr.res.status;
        res.headers = c->rr.res.headers;
        res.num_headers = c->rr.res.num_headers;
        res.body = c->rr.body_len > 0 ? c->rr.body : NULL;
        res.body_len = c->rr.body_len;
    } else {
        GH_LOG(GH_LOG_DEBUG, "callout", "cluster '%s': %s: %s", c->cluster->name,
               gh_callout_error_name(code), c->reason);
    }
    c->in_cb = 1;
    c->cb(c->arg, &res);
    call_free(c);
}

static void call_fail(gh_callout_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void call_fail(gh_callout_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
    detach(c, 0);
    complete(c, code);
}

static const char *ep_name(const gh_callout_t *c)
{
    return c->pool->ep->address;
}

/* ---- taking a connection ---- */

static int send_request(gh_callout_t *c)
{
    uv_buf_t bufs[2];
    unsigned n = 0;
    bufs[n++] = uv_buf_init(c->head, (unsigned)c->head_len);
    if (c->body_len > 0)
        bufs[n++] = uv_buf_init((char *)c->body, (unsigned)c->body_len);
    return gh_upconn_send(c->up, bufs, n);
}

/* Takes a connection of c->pool (an idle one when flags allow). Returns 0,
 * or a GH_CALLOUT_E_* with c->reason set. */
static int attach(gh_callout_t *c, unsigned flags)
{
    gh_pool_t *p = c->pool;
    int err = 0;
    /* Asked of the kernel before reuse: the upstream's close of an idle
     * connection may have arrived in this very loop turn. */
    gh_upconn_t *u = gh_upconn_get(p, flags | GH_UPCONN_CHECK, &err);
    if (u == NULL) {
        if (err == UV_EBUSY) {
            snprintf(c->reason, sizeof(c->reason), "upstream %s has all of its %u connections busy",
                     ep_name(c), (unsigned)p->cluster->max_connections);
            return GH_CALLOUT_E_POOL_FULL;
        }
        if (err == UV_ENOMEM) {
            snprintf(c->reason, sizeof(c->reason), "out of memory");
            return GH_CALLOUT_E_NOMEM;
        }
        if (p->stats != NULL)
            GH_STAT_INC(p->stats->connect_failures);
        snprintf(c->reason, sizeof(c->reason), "cannot connect to upstream %s: %s", ep_name(c),
                 uv_strerror(err));
        return GH_CALLOUT_E_CONNECT;
    }
    u->call = c;
    c->up = u;
    c->tries++;
    c->sent = 0;
    gh_pool_active_inc(p);
    if (u->reused && p->stats != NULL)
        GH_STAT_INC(p->stats->pool_hits);
    gh_resread_dispose(&c->rr);
    size_t max_body = c->rr.max_body;
    gh_resread_init(&c->rr);
    c->rr.max_head = p->cluster->max_response_head;
    c->rr.max_headers = p->cluster->max_response_headers;
    c->rr.max_body = max_body;
    return 0;
}

/* A pooled connection can be closed by the upstream just as it is reused.
 * As the router does (router.c retry_fresh), the call goes once more, on
 * a new connection, only when the connection was a reused one, the
 * upstream sent nothing back, and not a byte left or the method is
 * idempotent: a POST is never sent twice once any byte of it left.
 * Returns 0 when retried (or failed with the callback run), -1 when the
 * caller must fail the call itself. */
static int retry_fresh(gh_callout_t *c)
{
    gh_upconn_t *u = c->up;
    if (u == NULL || !u->reused || c->tries > 1 || u->heard || (u->wrote && !c->idempotent))
        return -1;
    GH_LOG(GH_LOG_DEBUG, "callout", "pooled connection to %s was closed, calling again",
           ep_name(c));
    detach(c, 0);
    int rc = attach(c, GH_UPCONN_FRESH);
    if (rc < 0) {
        complete(c, rc);
        return 0;
    }
    return 0; /* a fresh connection: the request goes once it connects */
}

/* ---- events (upstream.c) ---- */

static void on_call_timeout(gh_deadline_t *d)
{
    gh_callout_t *c = (gh_callout_t *)((char *)d - offsetof(gh_callout_t, dl));
    if (c->pool->stats != NULL)
        GH_STAT_INC(c->pool->stats->timeouts);
    call_fail(c, GH_CALLOUT_E_TIMEOUT, "upstream %s did not answer within %llums", ep_name(c),
              (unsigned long long)c->timeout_ms);
}

void gh_callout_on_connect(gh_callout_t *c, int status)
{
    if (status == 0) {
        gh_upconn_update_reading(c->up);
        int r = send_request(c);
        if (r < 0)
            call_fail(c, GH_CALLOUT_E_RESET, "upstream %s broke while receiving the request: %s",
                      ep_name(c), gh_upconn_why(c->up, r));
        return;
    }
    if (c->pool->stats != NULL)
        GH_STAT_INC(c->pool->stats->connect_failures);
    if (status == UV_ETIMEDOUT)
        call_fail(c, GH_CALLOUT_E_CONNECT, "connect to upstream %s timed out", ep_name(c));
    else
        call_fail(c, GH_CALLOUT_E_CONNECT, "connect to upstream %s failed: %s", ep_name(c),
                  gh_upconn_why(c->up, status));
}

void gh_callout_on_timer(gh_callout_t *c)
{
    gh_callout_on_connect(c, UV_ETIMEDOUT);
}

void gh_callout_on_write(gh_callout_t *c, int status)
{
    if (status == 0) {
        c->sent = 1;
        return;
    }
    if (retry_fresh(c) == 0)
        return;
    /* An upstream that answered early (before taking the whole body) and
     * closed its reading side: its answer is still read. */
    if (c->rr.head_done)
        return;
    if (c->pool->stats != NULL)
        GH_STAT_INC(c->pool->stats->resets);
    call_fail(c, GH_CALLOUT_E_RESET, "upstream %s broke while receiving the request: %s",
              ep_name(c), gh_upconn_why(c->up, status));
}

void gh_callout_on_read(gh_callout_t *c, ssize_t nread)
{
    gh_upconn_t *u = c->up;
    /* The worker's parser scratch, fetched anew: a reload may have grown
     * (moved) it since the call started. */
    c->rr.scratch = c->worker->hdrs;
    int end = nread >= 0 ? GH_RESREAD_OPEN : nread == UV_EOF ? GH_RESREAD_EOF : GH_RESREAD_BROKE;
    int rc = gh_resread_feed(&c->rr, u->rbuf, &u->rlen, end);
    if (rc == GH_RESREAD_MORE) {
        gh_upconn_update_reading(u);
        return;
    }
    if (rc == GH_RESREAD_DONE) {
        /* Reusable: the upstream keeps it open, sent nothing more, and
         * took the whole request. */
        int reusable = end == GH_RESREAD_OPEN && c->rr.res.keep_alive && u->rlen == 0 && c->sent &&
                       !u->wpending;
        detach(c, reusable);
        complete(c, 0);
        return;
    }
    if (rc == GH_CALLOUT_E_RESET && !c->rr.head_done && retry_fresh(c) == 0)
        return;
    if (rc == GH_CALLOUT_E_RESET && c->pool->stats != NULL)
        GH_STAT_INC(c->pool->stats->resets);
    /* A TLS connection says why it ended (no close_notify, an alert). */
    const char *tls_why = u->tls != NULL ? gh_uptls_why(u) : NULL;
    call_fail(c, rc, "upstream %s %s%s%s%s", ep_name(c), gh_resread_why(&c->rr),
              tls_why != NULL ? " (" : "", tls_why != NULL ? tls_why : "",
              tls_why != NULL ? ")" : "");
}

/* ---- the API ---- */

/* The endpoint the balancer picks, or another with room when its
 * connections are all busy (as the router spills over); NULL when none
 * has room. A call never waits in a pool's queue: streams waiting there
 * come first (gh_pool_has_room is false while any wait). */
static gh_pool_t *pick_pool(gh_wsnap_t *ws, const gh_cluster_t *cl)
{
    gh_pool_t *pools = ws->pools[cl->index];
    size_t e = gh_lb_pick_endpoint(ws, cl), n = cl->num_endpoints;
    for (size_t i = 0; i < n; i++)
        if (gh_pool_has_room(&pools[(e + i) % n]))
            return &pools[(e + i) % n];
    return NULL;
}

int gh_callout_start(gh_stream_t *s, const gh_cluster_t *cluster, const gh_callout_req_t *req,
                     gh_callout_cb cb, void *arg, gh_callout_t **out)
{
    gh_wsnap_t *ws = s->ws;
    const gh_config_t *cfg = ws->snap->cfg;
    *out = NULL;
    /* The cluster must be one of this stream's snapshot: its index then
     * names the pools of this view. */
    if (cluster == NULL || cb == NULL || cluster->index >= cfg->num_clusters ||
        &cfg->clusters[cluster->index] != cluster || cluster->num_endpoints == 0)
        return GH_CALLOUT_E_INVALID;
    gh_cluster_stats_t *stats = ws->pools[cluster->index][0].stats;
    if (request_refused(req)) {
        if (stats != NULL)
            GH_STAT_INC(stats->callouts[-GH_CALLOUT_E_INVALID]);
        return GH_CALLOUT_E_INVALID;
    }
    gh_pool_t *p = pick_pool(ws, cluster);
    if (p == NULL) {
        if (stats != NULL)
            GH_STAT_INC(stats->callouts[-GH_CALLOUT_E_POOL_FULL]);
        return GH_CALLOUT_E_POOL_FULL;
    }
    gh_callout_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return GH_CALLOUT_E_NOMEM;
    c->worker = ws->worker;
    c->ws = gh_wsnap_ref(ws);
    c->cluster = cluster;
    c->pool = p;
    c->stats = stats;
    c->cb = cb;
    c->arg = arg;
    c->body = req->body;
    c->body_len = req->body_len;
    c->timeout_ms = req->timeout_ms;
    c->rr.max_body = req->max_body;
    static const char *const idem[] = {"GET", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
        if (method_is(req->method, idem[i]))
            c->idempotent = 1;
    int rc = GH_CALLOUT_E_NOMEM;
    if (build_head(c, req) < 0 ||
        gh_deadline_start(&c->worker->deadlines, &c->dl, req->timeout_ms, on_call_timeout) < 0)
        goto out;
    rc = attach(c, 0);
    if (rc < 0)
        goto out;
    if (c->up->connected && send_request(c) < 0) {
        /* A pooled connection that broke under the first write: nothing
         * left, so a fresh one takes it (it connects first). */
        detach(c, 0);
        rc = attach(c, GH_UPCONN_FRESH);
        if (rc < 0)
            goto out;
    }
    *out = c;
    return 0;
out:
    count(c, rc);
    call_free(c);
    return rc;
}

void gh_callout_cancel(gh_callout_t *c)
{
    if (c == NULL || c->in_cb)
        return;
    /* Whatever the connection was doing (connecting, writing the request,
     * reading the response), its state is the call's: it closes. */
    detach(c, 0);
    count(c, GH_CALLOUT_E_CANCELLED);
    call_free(c);
}

const char *gh_callout_result_header(const gh_callout_result_t *res, const char *lower, size_t *len)
{
    size_t n = strlen(lower);
    for (size_t i = 0; res != NULL && i < res->num_headers; i++)
        if (gh_h1_name_is(&res->headers[i], lower, n)) {
            if (len != NULL)
                *len = res->headers[i].value_len;
            return res->headers[i].value;
        }
    return NULL;
}
