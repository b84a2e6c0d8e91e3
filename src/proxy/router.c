/*
 * The router: the terminal filter of every proxied route. It picks a
 * cluster and endpoint, takes a pooled connection or opens one, sends the
 * request (the body pump lives in stream.c), parses the upstream's response
 * head with the same strictness as requests, and streams the response body
 * to the client with back-pressure in both directions.
 *
 * Failure mapping: connect refused or reset, or the upstream closing before
 * a response head: 502; connect or response-head timeout: 504. Once the
 * response head is on its way to the client, a failure can only be shown by
 * cutting the connection, so that a truncated body never looks complete.
 */
#include <stdio.h>
#include <string.h>

#include <gatehouse/log.h>

#include "proxy/forward.h"
#include "proxy/headscan.h"
#include "proxy/proxy.h"

static int connect_upstream(gh_stream_t *s, int fresh);

static gh_filter_status_t router_on_request_headers(gh_stream_t *s, const void *conf, void *ctx)
{
    const gh_route_t *r = conf;
    (void)ctx;
    s->target = gh_lb_pick_target(s->conn->worker, r);
    s->cluster = r->targets[s->target].cluster;
    /* The endpoint is picked before the head is built: an HTTP/1.0
     * request without Host gets the endpoint's address as its Host. */
    s->endpoint = gh_lb_pick_endpoint(s->ws, s->cluster);
    s->fwd_head = gh_forward_request_head(s, &s->fwd_head_len);
    if (s->fwd_head == NULL) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    return connect_upstream(s, 0) < 0 ? GH_FILTER_REPLIED : GH_FILTER_PAUSE;
}

/* A stream that ends while waiting for a connection (its client left)
 * leaves the queue. */
static void router_on_destroy(gh_stream_t *s, const void *conf, void *ctx)
{
    (void)conf;
    (void)ctx;
    gh_pool_unwait(s);
}

const gh_filter_type_t gh_router_filter = {
    .name = "router",
    .on_request_headers = router_on_request_headers,
    .on_destroy = router_on_destroy,
};

static void start_exchange(gh_stream_t *s)
{
    gh_upconn_update_reading(s->up);
    gh_stream_pump_request(s);
}

/* RFC 9110 section 9.2.2: a client (and so a proxy) may repeat these
 * automatically, as the intended effect of sending one twice is that of
 * sending it once. POST and PATCH are not among them. */
static int method_is_idempotent(const gh_stream_t *s)
{
    static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
        if (s->req.method_len == strlen(idem[i]) &&
            memcmp(s->req.method, idem[i], s->req.method_len) == 0)
            return 1;
    return 0;
}

/* The whole request is its forwarded head: a body streams through without
 * a copy being kept, so a request with one can never be sent again. */
static int request_is_replayable(const gh_stream_t *s)
{
    return s->req.body == GH_H1_BODY_NONE ||
           (s->req.body == GH_H1_BODY_LENGTH && s->req.content_length == 0);
}

static int attach_upstream(gh_stream_t *s, gh_pool_t *p, int fresh);

/* Every connection of the endpoint is busy: wait for one, or 503 when
 * max_pending requests wait already (RFC 9110 section 15.6.4: the server
 * is overloaded). */
static int wait_for_connection(gh_stream_t *s, gh_pool_t *p, int fresh)
{
    if (gh_pool_wait(p, s, fresh) == 0)
        return 0;
    char detail[200];
    if (p->stats != NULL)
        GH_STAT_INC(p->stats->pending_overflows);
    snprintf(detail, sizeof(detail),
             "upstream %s has all of its %u connections busy and %u requests waiting",
             p->ep->address, (unsigned)p->cluster->max_connections,
             (unsigned)p->cluster->max_pending);
    gh_stream_fail(s, 503, "service_unavailable", detail);
    return -1;
}

void gh_router_dispatch(gh_stream_t *s)
{
    attach_upstream(s, &s->ws->pools[s->cluster->index][s->endpoint], s->wait_fresh);
}

void gh_router_wait_expired(gh_stream_t *s)
{
    gh_pool_t *p = &s->ws->pools[s->cluster->index][s->endpoint];
    char detail[200];
    if (p->stats != NULL)
        GH_STAT_INC(p->stats->pending_timeouts);
    snprintf(detail, sizeof(detail),
             "no connection to upstream %s became free within %llums (max_connections %u)",
             p->ep->address, (unsigned long long)p->cluster->connect_timeout_ms,
             (unsigned)p->cluster->max_connections);
    gh_stream_fail(s, 503, "service_unavailable", detail);
}

/* The endpoint the balancer picked has every connection busy: another
 * endpoint with room takes the request rather than the queue (a retry
 * keeps its endpoint). Only under saturation does this bend the weights. */
static gh_pool_t *spill_over(gh_stream_t *s, gh_pool_t *p)
{
    gh_pool_t *pools = s->ws->pools[s->cluster->index];
    size_t n = s->cluster->num_endpoints;
    for (size_t i = 1; i < n; i++) {
        size_t e = (s->endpoint + i) % n;
        if (gh_pool_has_room(&pools[e])) {
            s->endpoint = e;
            return &pools[e];
        }
    }
    return p;
}

static int connect_upstream(gh_stream_t *s, int fresh)
{
    gh_pool_t *p = &s->ws->pools[s->cluster->index][s->endpoint];
    if (!gh_pool_has_room(p) && !fresh)
        p = spill_over(s, p);
    if (!gh_pool_has_room(p))
        return wait_for_connection(s, p, fresh);
    return attach_upstream(s, p, fresh);
}

static int attach_upstream(gh_stream_t *s, gh_pool_t *p, int fresh)
{
    int err = 0;
    int replayable = request_is_replayable(s), idempotent = method_is_idempotent(s);
    unsigned flags = fresh ? GH_UPCONN_FRESH : 0;
    /* A pooled connection that died under a GET is answered by a retry;
     * anything else must not be put on a dead connection in the first
     * place (see retry_fresh). */
    if (!(replayable && idempotent))
        flags |= GH_UPCONN_CHECK;
    gh_upconn_t *u = gh_upconn_get(p, flags, &err);
    if (u == NULL && err == UV_EBUSY)
        return wait_for_connection(s, p, fresh);
    if (u == NULL) {
        char detail[160];
        snprintf(detail, sizeof(detail), "cannot connect to upstream %s: %s", p->ep->address,
                 uv_strerror(err));
        gh_stream_fail(s, 502, "bad_gateway", detail);
        return -1;
    }
    u->stream = s;
    u->probe = u->reused && replayable && !idempotent;
    s->up = u;
    s->res_head_scanned = 0; /* about the new connection's read buffer */
    gh_pool_active_inc(p);
    if (u->reused && p->stats != NULL)
        GH_STAT_INC(p->stats->pool_hits);
    s->tries++;
    if (u->connected)
        start_exchange(s);
    return 0;
}

/* A pooled connection can be closed by the upstream just as we reuse it.
 * gatehouse must never replay a request the upstream may have acted on, so
 * the request is sent once more, on a new connection, only when
 *   - it went out on a reused pooled connection (the keep-alive race; a
 *     fresh connection that fails is the upstream's answer),
 *   - the upstream sent nothing back, not even an interim response,
 *   - it has no body (see request_is_replayable), and
 *   - not a byte of it was written, or its method is idempotent.
 * So a POST or PATCH is never sent twice once any byte of it left, and a
 * request is sent at most twice. */
static int retry_fresh(gh_stream_t *s)
{
    gh_upconn_t *u = s->up;
    if (u == NULL || !u->reused || s->tries > 1 || s->res_head_parsed || u->heard ||
        !request_is_replayable(s) || (u->wrote && !method_is_idempotent(s)))
        return -1;
    GH_LOG(GH_LOG_DEBUG, "router", "req=%s pooled connection to %s was closed, retrying",
           s->request_id, u->pool->ep->address);
    s->up = NULL;
    gh_pool_active_dec(u->pool);
    gh_upconn_release(u, 0);
    s->head_sent = 0;
    s->req_sent = 0;
    s->up_eof = 0;
    s->req_inflight = 0;
    connect_upstream(s, 1);
    return 0;
}

void gh_router_connected(gh_stream_t *s, int status)
{
    if (status == 0) {
        start_exchange(s);
        return;
    }
    char detail[160];
    gh_pool_t *p = s->up->pool;
    if (p->stats != NULL)
        GH_STAT_INC(p->stats->connect_failures);
    if (status == UV_ETIMEDOUT) {
        snprintf(detail, sizeof(detail), "connect to upstream %s timed out",
                 s->up->pool->ep->address);
        gh_stream_fail(s, 504, "gateway_timeout", detail);
        return;
    }
    snprintf(detail, sizeof(detail), "connect to upstream %s failed: %s", s->up->pool->ep->address,
             gh_upconn_why(s->up, status));
    gh_stream_fail(s, 502, "bad_gateway", detail);
}

void gh_router_wrote(gh_stream_t *s, int status)
{
    if (status < 0) {
        if (retry_fresh(s) == 0)
            return;
        if (s->res_head_parsed) {
            /* The upstream answered and stopped reading the body (an early
             * response such as 413); let that response through. */
            s->req_inflight = 0;
            s->conn->keep_alive = 0;
            return;
        }
        char detail[160];
        if (s->up->pool->stats != NULL)
            GH_STAT_INC(s->up->pool->stats->resets);
        snprintf(detail, sizeof(detail), "upstream %s broke while receiving the request: %s",
                 s->up->pool->ep->address, gh_upconn_why(s->up, status));
        gh_stream_fail(s, 502, "bad_gateway", detail);
        return;
    }
    /* The write deadline is done; the response timeout starts once the
     * whole request is out (gh_router_request_sent). Once a response is
     * under way its own body timeout runs on the same deadline. */
    if (!s->res_head_parsed)
        gh_upconn_stop_timer(s->up);
    gh_stream_request_written(s);
}

void gh_router_request_sent(gh_stream_t *s)
{
    if (!s->res_head_parsed && s->up != NULL)
        gh_upconn_arm_timer(s->up, s->route->timeout_ms);
}

void gh_router_timeout(gh_stream_t *s)
{
    if (s->up->pool->stats != NULL)
        GH_STAT_INC(s->up->pool->stats->timeouts);
    if (!s->res_started) {
        char detail[160];
        if (s->up->wpending)
            snprintf(detail, sizeof(detail), "upstream %s stopped reading the request for %llums",
                     s->up->pool->ep->address, (unsigned long long)s->lconf->body_timeout_ms);
        else
            snprintf(detail, sizeof(detail), "upstream %s did not respond within %llums",
                     s->up->pool->ep->address, (unsigned long long)s->route->timeout_ms);
        gh_stream_fail(s, 504, "gateway_timeout", detail);
        return;
    }
    gh_stream_abort(s, "upstream stalled mid-response");
}

static void pump_response(gh_stream_t *s);

/* Response trailers reach the client, except names that are never
 * forwarded as trailers (framing, hop-by-hop, cookies, ...), which the pump
 * drops before asking. An HTTP/1.0 client gets none: it has no chunked
 * coding to carry them. */
static int response_trailer_allowed(const char *name, size_t len, void *arg)
{
    (void)name;
    (void)len;
    (void)arg;
    return 1;
}

/* Decides the client's framing and writes the response head. */
static void start_response(gh_stream_t *s)
{
    gh_conn_t *c = s->conn;
    gh_h1_body_t in = s->res.body;
    if (s->req.method_len == 4 && memcmp(s->req.method, "HEAD", 4) == 0)
        in = GH_H1_BODY_NONE;
    if (gh_stream_response_filters(s) < 0) {
        gh_upconn_t *u = s->up;
        s->up = NULL;
        u->stream = NULL;
        gh_pool_active_dec(u->pool);
        gh_upconn_release(u, 0);
        return;
    }
    int chunked = 0;
    if (in == GH_H1_BODY_CHUNKED || in == GH_H1_BODY_UNTIL_CLOSE) {
        /* An HTTP/1.0 client knows no chunked coding: its body ends when
         * the connection closes. */
        if (s->req.minor_version >= 1)
            chunked = 1;
        else
            c->keep_alive = 0;
    }
    /* An answer before the whole request body arrived: the connection
     * closes after it (stream.c), and the head says so. */
    if (c->worker->stopping || !s->req_body_done)
        c->keep_alive = 0;
    s->res_out_head = gh_forward_response_head(s, chunked, c->keep_alive, &s->res_out_head_len);
    if (s->res_out_head == NULL ||
        gh_body_pump_init(&s->res_pump, &s->arena, in, s->res.content_length,
                          chunked ? GH_PUMP_OUT_CHUNKED : GH_PUMP_OUT_RAW) < 0) {
        gh_stream_fail(s, 503, "service_unavailable", "out of memory");
        return;
    }
    s->res_pump.on_trailer = response_trailer_allowed;
    s->res_started = 1;
    s->res_head_pending = 1;
    s->status = s->res.status;
    pump_response(s);
}

static void parse_response_head(gh_stream_t *s)
{
    gh_upconn_t *u = s->up;
    const gh_cluster_t *cl = s->cluster;
    gh_h1_limits_t lim = {cl->max_response_head, cl->max_response_headers, 0};
    gh_h1_error_t err = {0, NULL};
    char detail[200];

    for (;;) {
        gh_h1_response_t res;
        res.headers = s->conn->worker->hdrs;
        /* As for requests (conn.c): the parser runs only when the new
         * bytes hold a head end, or at the size limit or the close. */
        int r = GH_H1_INCOMPLETE;
        if (u->rlen > 0 &&
            (s->res_head_scanned == 0 || s->up_eof || u->rlen > cl->max_response_head ||
             u->rlen == u->rcap || gh_head_scan(u->rbuf, u->rlen, &s->res_head_scanned)))
            r = gh_h1_response_parse(u->rbuf, u->rlen, &lim, &res, &err);
        if (r == GH_H1_INCOMPLETE) {
            s->res_head_scanned = u->rlen; /* no head end to find again */
            if (!s->up_eof) {
                gh_upconn_update_reading(u);
                return;
            }
            if (retry_fresh(s) == 0)
                return;
            if (u->pool->stats != NULL)
                GH_STAT_INC(u->pool->stats->resets);
            snprintf(detail, sizeof(detail), "upstream %s closed the connection %s",
                     u->pool->ep->address,
                     u->rlen ? "in the middle of the response head" : "before responding");
            gh_stream_fail(s, 502, "bad_gateway", detail);
            return;
        }
        if (r < 0) {
            snprintf(detail, sizeof(detail), "upstream %s sent a malformed response: %s",
                     u->pool->ep->address, err.detail ? err.detail : "");
            gh_stream_fail(s, 502, "bad_gateway", detail);
            return;
        }
        if (res.status == 101) {
            gh_stream_fail(s, 502, "bad_gateway", "upstream switched protocols unasked");
            return;
        }
        if (res.status < 200) {
            /* Interim responses are dropped: gatehouse answers Expect
             * itself, and forwarding 1xx would need a second write queue
             * for little gain. */
            memmove(u->rbuf, u->rbuf + r, u->rlen - (size_t)r);
            u->rlen -= (size_t)r;
            s->res_head_scanned = 0;
            continue;
        }
        s->res_head = gh_arena_alloc(&s->arena, (size_t)r);
        gh_h1_header_t *hs = gh_arena_alloc(&s->arena, (res.num_headers + 1) * sizeof(*hs));
        if (s->res_head == NULL || hs == NULL) {
            gh_stream_fail(s, 503, "service_unavailable", "out of memory");
            return;
        }
        memcpy(s->res_head, u->rbuf, (size_t)r);
        ptrdiff_t d = s->res_head - u->rbuf;
        res.reason += d;
        for (size_t i = 0; i < res.num_headers; i++) {
            hs[i] = res.headers[i];
            hs[i].name += d;
            hs[i].value += d;
        }
        res.headers = hs;
        s->res = res;
        s->res_head_parsed = 1;
        memmove(u->rbuf, u->rbuf + r, u->rlen - (size_t)r);
        u->rlen -= (size_t)r;
        gh_upconn_arm_timer(u, s->lconf->body_timeout_ms);
        start_response(s);
        return;
    }
}

static void pump_response(gh_stream_t *s)
{
    gh_conn_t *c = s->conn;
    gh_upconn_t *u = s->up;
    uv_buf_t bufs[GH_PUMP_MAX_BUFS + 2];
    unsigned n = 0;
    gh_h1_error_t err = {0, NULL};

    if (c->wpending || s->res_inflight > 0)
        return;
    int first = s->res_head_pending; /* nothing has reached the client yet */
    if (s->res_head_pending) {
        bufs[n++] = uv_buf_init(s->res_out_head, (unsigned)s->res_out_head_len);
        s->res_head_pending = 0;
    }
    if (!s->res_pump.done && u != NULL) {
        size_t consumed = 0, taken = 0;
        uint64_t payload = 0;
        int k = gh_body_pump_take(&s->res_pump, u->rbuf, &u->rlen, bufs + n, &consumed, &taken,
                                  &payload, &err);
        if (k < 0) {
            if (first) {
                /* Nothing reached the client yet: it can still get a 502. */
                s->res_started = 0;
                gh_stream_fail(s, 502, "bad_gateway", "upstream sent a malformed chunked body");
                return;
            }
            gh_stream_abort(s, "upstream sent a malformed chunked body");
            return;
        }
        for (size_t i = s->num_filters; (s->hooks & GH_HOOK_RES_BODY) && i-- > 0;) {
            const gh_filter_t *f = &s->filters[i];
            if (f->type->on_response_body == NULL)
                continue;
            for (unsigned j = 0; j < s->res_pump.num_data; j++)
                f->type->on_response_body(s, f->conf, s->ctx[i], s->res_pump.data[j].base,
                                          s->res_pump.data[j].len, 0);
            if (s->res_pump.done)
                f->type->on_response_body(s, f->conf, s->ctx[i], NULL, 0, 1);
        }
        n += (unsigned)k;
        s->res_inflight = consumed;
        if (!s->res_pump.done && s->up_eof && consumed == u->rlen) {
            /* A close-delimited body ends only with a clean EOF; a reset
             * or read error cut it short, and ending it with the last
             * chunk would make the truncated body look complete. */
            if (s->res_pump.in != GH_H1_BODY_UNTIL_CLOSE || s->up_err) {
                if (u->pool->stats != NULL)
                    GH_STAT_INC(u->pool->stats->resets);
                gh_stream_abort(s, "upstream closed the connection mid-response");
                return;
            }
            n += (unsigned)gh_body_pump_finish(&s->res_pump, bufs + n);
        }
    }
    if (s->res_pump.done) {
        s->res_up_done = 1;
        if (u != NULL)
            gh_upconn_stop_timer(u);
    }
    if (n == 0) {
        if (s->res_pump.done) {
            /* A close-delimited body to a client that reads until close:
             * nothing more to write, the exchange is over. */
            s->res_done = 1;
            gh_stream_end(s);
            return;
        }
        if (u != NULL)
            gh_upconn_update_reading(u);
        return;
    }
    gh_conn_write(c, bufs, n);
    if (u != NULL)
        gh_upconn_update_reading(u);
}

void gh_router_on_read(gh_stream_t *s, ssize_t nread)
{
    if (nread < 0) {
        s->up_eof = 1;
        /* Only once the head is in: before it, a pooled connection's reset
         * may still be retried on a fresh one (retry_fresh). */
        if (nread != UV_EOF && s->res_head_parsed)
            s->up_err = 1;
    }
    if (!s->res_head_parsed) {
        parse_response_head(s);
        return;
    }
    if (nread > 0 && s->up != NULL)
        gh_upconn_arm_timer(s->up, s->lconf->body_timeout_ms);
    pump_response(s);
}

void gh_router_client_drained(gh_stream_t *s)
{
    gh_upconn_t *u = s->up;
    if (s->res_inflight > 0 && u != NULL) {
        memmove(u->rbuf, u->rbuf + s->res_inflight, u->rlen - s->res_inflight);
        u->rlen -= s->res_inflight;
    }
    s->res_inflight = 0;
    if (s->res_pump.done) {
        s->res_done = 1;
        gh_stream_end(s);
        return;
    }
    pump_response(s);
}
