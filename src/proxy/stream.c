/*
 * A stream is one request/response exchange on a downstream connection:
 * route match, the filter chain, the request body pump towards the router,
 * local replies, and the end of the exchange (log, release, keep-alive).
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/fields.h>
#include <gatehouse/log.h>

#include "proxy/forward.h"
#include "proxy/proxy.h"

static void translate(const char **p, const char *from, char *to)
{
    if (*p != NULL)
        *p = to + (*p - from);
}

static void set_target_parts(gh_stream_t *s)
{
    const char *t = s->req.target, *end = t + s->req.target_len;
    s->authority = NULL;
    /* absolute-form (RFC 9112 section 3.2.2): the authority replaces Host. */
    if (s->req.target_len > 7 && (strncasecmp(t, "http://", 7) == 0 ||
                                  (s->req.target_len > 8 && strncasecmp(t, "https://", 8) == 0))) {
        const char *a = (const char *)memchr(t, ':', s->req.target_len) + 3;
        const char *ae = a;
        while (ae < end && *ae != '/' && *ae != '?')
            ae++;
        s->authority = a;
        s->authority_len = (size_t)(ae - a);
        t = ae;
    }
    const char *q = memchr(t, '?', (size_t)(end - t));
    if (t == end) {
        s->path = "/";
        s->path_len = 1;
    } else {
        s->path = t;
        s->path_len = (size_t)((q ? q : end) - t);
    }
    if (q != NULL) {
        s->query = q + 1;
        s->query_len = (size_t)(end - q - 1);
    }
}

static int set_host(gh_stream_t *s)
{
    const char *h = NULL;
    size_t n = 0;
    if (s->authority != NULL) {
        h = s->authority; /* validated by check_request: no userinfo */
        n = s->authority_len;
    } else if (s->req.host_index >= 0) {
        h = s->req.headers[s->req.host_index].value;
        n = s->req.headers[s->req.host_index].value_len;
    }
    if (h != NULL && n > 0) {
        size_t end = n;
        if (h[0] == '[') {
            const char *rb = memchr(h, ']', n);
            if (rb != NULL)
                end = (size_t)(rb - h) + 1;
        } else {
            const char *colon = memchr(h, ':', n);
            if (colon != NULL)
                end = (size_t)(colon - h);
        }
        n = end;
        /* "api.example.com." names the same host as "api.example.com"
         * (a fully qualified name): route on one form, or a route's host
         * match, and the authentication on it, could be stepped around. */
        if (n > 1 && h[n - 1] == '.' && h[0] != '[')
            n--;
    }
    char *lower = gh_arena_alloc(&s->arena, n + 1);
    if (lower == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)h[i]);
    lower[n] = '\0';
    s->host = lower;
    s->host_len = n;
    return 0;
}

static void set_request_id(gh_stream_t *s)
{
    /* An X-Request-Id is an identity a client could pick to collide with
     * or impersonate another request in the logs: only a trusted proxy's
     * is kept. */
    for (size_t i = 0; s->peer_trusted && i < s->req.num_headers; i++) {
        const gh_h1_header_t *h = &s->req.headers[i];
        if (!GH_H1_NAME_IS(h, "x-request-id"))
            continue;
        if (h->value_len == 0 || h->value_len >= sizeof(s->request_id))
            break;
        for (size_t j = 0; j < h->value_len; j++)
            if (h->value[j] < 0x21 || h->value[j] > 0x7e)
                goto generate;
        memcpy(s->request_id, h->value, h->value_len);
        s->request_id[h->value_len] = '\0';
        return;
    }
generate:;
    static const char hex[] = "0123456789abcdef";
    uint64_t a = gh_rand(s->conn->worker), b = gh_rand(s->conn->worker);
    for (int i = 0; i < 16; i++) {
        s->request_id[i] = hex[(a >> (60 - 4 * i)) & 15];
        s->request_id[16 + i] = hex[(b >> (60 - 4 * i)) & 15];
    }
    s->request_id[32] = '\0';
}

/* Asterisk-form ("OPTIONS *"); authority-form is CONNECT's, refused
 * before this is asked. */
static int is_target_without_path(const gh_stream_t *s)
{
    return s->req.target_len == 1 && s->req.target[0] == '*';
}

/* From here on s->path is the normalized path (gatehouse/path.h): the
 * route match, every filter (gh_stream_request_line) and the target sent
 * upstream all see it, so that "/public/../admin" cannot be matched as
 * /public/ and served as /admin. Asterisk-form and authority-form have no
 * path. A refusal or a redirect is answered by gh_stream_run_request.
 * Returns -1 only when out of memory. */
static int normalize_path(gh_stream_t *s, const gh_path_opts_t *o)
{
    if (!o->normalize || is_target_without_path(s))
        return 0;
    char *buf = gh_arena_alloc(&s->arena, GH_PATH_OUT_MAX(s->path_len));
    if (buf == NULL)
        return -1;
    size_t n = 0;
    const char *why = NULL;
    s->path_result = gh_path_normalize(s->path, s->path_len, o, buf, &n, &why);
    if (s->path_result == GH_PATH_OK) {
        s->path = buf;
        s->path_len = n;
    } else if (s->path_result == GH_PATH_REFUSE) {
        s->path_reason = why;
    } else {
        size_t cap = n + s->query_len + sizeof("location: ?\r\n");
        char *loc = gh_arena_alloc(&s->arena, cap);
        if (loc == NULL)
            return -1;
        snprintf(loc, cap, "location: %.*s%s%.*s\r\n", (int)n, buf, s->query ? "?" : "",
                 (int)s->query_len, s->query ? s->query : "");
        s->path_location = loc;
    }
    return 0;
}

static int refuse(gh_stream_t *s, int status, const char *detail)
{
    s->refuse_status = status;
    s->refuse_detail = detail;
    return -1;
}

/* Upgrade is honoured nowhere yet. An h2c upgrade is optional for the
 * server (RFC 9113 section 3.1 lets it answer in HTTP/1.1), so it is
 * ignored: Upgrade and HTTP2-Settings are not forwarded. Any other
 * protocol (websocket, ...) would reach an upstream that switches while
 * gatehouse still parses HTTP/1.1: refused. */
static int upgrade_is_h2c_only(const gh_stream_t *s)
{
    for (size_t i = 0; i < s->req.num_headers; i++) {
        const gh_h1_header_t *h = &s->req.headers[i];
        if (!GH_H1_NAME_IS(h, "upgrade"))
            continue;
        size_t pos = 0, n;
        const char *t;
        int r, any = 0;
        while ((r = gh_h1_token_list_next(h->value, h->value_len, &pos, &t, &n)) > 0) {
            if (n != 3 || strncasecmp(t, "h2c", 3) != 0)
                return 0;
            any = 1;
        }
        if (r < 0 || !any)
            return 0;
    }
    return 1;
}

/* What the parser leaves to the proxy: the target's form and authority,
 * the Host value, credentials that must be singletons, and methods or
 * upgrades gatehouse cannot carry. */
static int check_request(gh_stream_t *s)
{
    const gh_h1_request_t *r = &s->req;
    s->auth_index = -1;
    if (r->method_len == 7 && memcmp(r->method, "CONNECT", 7) == 0)
        return refuse(s, 501, "CONNECT is not supported");
    if (r->target[0] != '/' && !(r->target_len == 1 && r->target[0] == '*')) {
        /* absolute-form (RFC 9112 section 3.2.2): only http and https
         * name something a reverse proxy serves; the authority overrides
         * Host and is checked like it. */
        if (s->authority == NULL)
            return refuse(s, 400, "absolute-form target must be http or https");
        if (memchr(s->authority, '@', s->authority_len) != NULL)
            return refuse(s, 400, "userinfo in the request-target");
        if (!gh_h1_authority_is_valid(s->authority, s->authority_len))
            return refuse(s, 400, "invalid authority in the request-target");
    }
    if (r->host_index >= 0) {
        const gh_h1_header_t *h = &r->headers[r->host_index];
        if (h->value_len > 0 && !gh_h1_authority_is_valid(h->value, h->value_len))
            return refuse(s, 400, "invalid Host");
    }
    for (size_t i = 0; i < r->num_headers; i++) {
        /* RFC 9110 section 11.6.2 allows one Authorization. With two, a
         * filter may check one while the upstream reads the other. */
        if (!gh_field_is_authorization(r->headers[i].name, r->headers[i].name_len))
            continue;
        if (s->auth_index >= 0)
            return refuse(s, 400, "more than one Authorization field");
        s->auth_index = (int)i;
    }
    if (r->has_upgrade && !upgrade_is_h2c_only(s))
        return refuse(s, 501, "protocol upgrades are not supported");
    return 0;
}

/* The client address for logs and X-Real-IP, and whether the peer is a
 * trusted proxy (docs/http.md, Forwarding fields). */
static void resolve_client(gh_stream_t *s)
{
    const gh_listener_conf_t *l = gh_conn_lconf(s->conn);
    s->peer_trusted =
        gh_forward_resolve_client(s->req.headers, s->req.num_headers, l->trusted_proxies,
                                  l->num_trusted_proxies, s->conn->peer, s->client) == 1;
}

/* A stream and its arena's first block are one allocation. */
#define STREAM_ALLOC_OFF ((sizeof(gh_stream_t) + 15) & ~(size_t)15)
#define STREAM_FIRST_BLOCK 4096

static gh_stream_t *stream_take(gh_worker_t *w)
{
    gh_stream_t *s = w->num_stream_free > 0
                         ? w->stream_free[--w->num_stream_free]
                         : aligned_alloc(16, STREAM_ALLOC_OFF + STREAM_FIRST_BLOCK);
    if (s == NULL)
        return NULL;
    memset(s, 0, offsetof(gh_stream_t, drop_inline));
    gh_arena_init_first(&s->arena, 4096, (char *)s + STREAM_ALLOC_OFF, STREAM_FIRST_BLOCK);
    return s;
}

/* Under AddressSanitizer streams are not reused, so that a use after the
 * end of an exchange is reported rather than landing in the next one. */
#if defined(__SANITIZE_ADDRESS__)
#define STREAM_CACHE_ON 0
#else
#define STREAM_CACHE_ON 1
#endif

static void stream_give(gh_worker_t *w, gh_stream_t *s)
{
    if (s->head_buf != NULL) {
#if STREAM_CACHE_ON
        gh_conn_rbuf_recycle(w, s->head_buf, s->head_cap);
#else
        /* Freed, not recycled, under AddressSanitizer (as the stream is):
         * a read of the head after the exchange is then reported rather
         * than landing in the next request's bytes. */
        free(s->head_buf);
#endif
    }
    s->head_buf = NULL;
    gh_arena_dispose(&s->arena);
#if STREAM_CACHE_ON
    if (w->num_stream_free < sizeof(w->stream_free) / sizeof(w->stream_free[0])) {
        w->stream_free[w->num_stream_free++] = s;
        return;
    }
#else
    (void)w;
#endif
    free(s);
}

void gh_stream_cache_free(gh_worker_t *w)
{
    while (w->num_stream_free > 0)
        free(w->stream_free[--w->num_stream_free]);
}

gh_stream_t *gh_stream_new(gh_conn_t *c, const gh_h1_request_t *req, size_t head_len)
{
    gh_stream_t *s = stream_take(c->worker);
    if (s == NULL)
        return NULL;
    s->conn = c;
    s->ws = gh_wsnap_ref(c->ws);
    s->snap = s->ws->snap;
    s->id = c->id;
    s->req = *req;
    s->req.headers = gh_arena_alloc(&s->arena, (req->num_headers + 1) * sizeof(gh_h1_header_t));
    if (s->req.headers == NULL)
        goto fail;
    if (c->rlen == head_len) {
        /* The read buffer holds this head and nothing after it (a request
         * without a body in its first read, the usual case): the stream
         * takes the buffer rather than a copy of the head, and the
         * connection takes another from the free list when it next reads.
         * The connection held its buffer through the exchange before, so
         * this costs memory only when the client sends more meanwhile
         * (pipelining): a second buffer, as long as the exchange lasts. */
        s->head = c->rbuf;
        s->head_buf = c->rbuf;
        s->head_cap = c->rcap;
        memcpy(s->req.headers, req->headers, req->num_headers * sizeof(gh_h1_header_t));
        c->rbuf = NULL;
        c->rlen = 0;
    } else {
        s->head = gh_arena_alloc(&s->arena, head_len);
        if (s->head == NULL)
            goto fail;
        memcpy(s->head, c->rbuf, head_len);
        translate(&s->req.method, c->rbuf, s->head);
        translate(&s->req.target, c->rbuf, s->head);
        for (size_t i = 0; i < req->num_headers; i++) {
            s->req.headers[i] = req->headers[i];
            translate(&s->req.headers[i].name, c->rbuf, s->head);
            translate(&s->req.headers[i].value, c->rbuf, s->head);
        }
        memmove(c->rbuf, c->rbuf + head_len, c->rlen - head_len);
        c->rlen -= head_len;
    }
    c->keep_alive = req->keep_alive;
    s->req_body_done = req->body == GH_H1_BODY_NONE ||
                       (req->body == GH_H1_BODY_LENGTH && req->content_length == 0);

    set_target_parts(s);
    resolve_client(s);
    /* A refusal is answered by gh_stream_run_request; a refused request's
     * path is not normalized (the access log shows it as sent). */
    int refused = check_request(s) < 0;
    if (set_host(s) < 0)
        goto fail;
    if (!refused && normalize_path(s, &gh_conn_lconf(c)->path) < 0)
        goto fail;
    set_request_id(s);
    s->start_ns = uv_hrtime();
    s->bytes_in = head_len;
    gh_observe_start(s);
    return s;
fail:
    gh_wsnap_unref(s->ws);
    stream_give(c->worker, s);
    return NULL;
}

static void start_buffering(gh_stream_t *s);
static char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* What the chain does after filter i returned st. 1: go on with the next. */
static int chain_step(gh_stream_t *s, size_t i, gh_filter_status_t st)
{
    if (s->ended)
        return 0;
    switch (st) {
    case GH_FILTER_CONTINUE:
        return 1;
    case GH_FILTER_BUFFER:
        s->buffer_filter = i;
        start_buffering(s);
        return 0;
    case GH_FILTER_PAUSE:
    case GH_FILTER_REPLIED:
    default:
        return 0;
    }
}

static void run_chain(gh_stream_t *s)
{
    while (s->next_filter < s->num_filters) {
        size_t i = s->next_filter++;
        const gh_filter_t *f = &s->filters[i];
        if (f->type->on_request_headers == NULL)
            continue;
        if (!chain_step(s, i, f->type->on_request_headers(s, f->conf, s->ctx[i])))
            return;
    }
}

/* ---- pause, resume, cancel (gatehouse/filter.h) ---- */

/* Shared by a paused stream and its filter: s is cleared when the stream
 * ends, so the filter's later take sees NULL instead of a freed stream.
 * Freed by the take (the filter's one use of it). */
struct gh_stream_handle_s {
    gh_stream_t *s;
};

gh_stream_handle_t *gh_stream_pause(gh_stream_t *s)
{
    if (s->handle != NULL || s->ended || s->next_filter == 0)
        return NULL;
    gh_stream_handle_t *h = malloc(sizeof(*h));
    if (h == NULL)
        return NULL;
    h->s = s;
    s->handle = h;
    s->paused_filter = s->next_filter; /* the filter running now, + 1 */
    return h;
}

gh_stream_t *gh_stream_handle_take(gh_stream_handle_t *h)
{
    if (h == NULL)
        return NULL;
    gh_stream_t *s = h->s;
    if (s != NULL) {
        s->handle = NULL;
        s->paused_filter = 0;
    }
    free(h);
    return s;
}

void gh_stream_continue(gh_stream_t *s)
{
    if (s->ended || s->res_started)
        return;
    run_chain(s);
}

void gh_stream_resume(gh_stream_handle_t *h)
{
    gh_stream_t *s = gh_stream_handle_take(h);
    if (s != NULL)
        gh_stream_continue(s);
}

/* The stream ends while a filter holds its handle: the handle forgets the
 * stream, and the filter hears of it. */
static void cancel_paused(gh_stream_t *s)
{
    gh_stream_handle_t *h = s->handle;
    if (h == NULL)
        return;
    size_t i = s->paused_filter - 1;
    h->s = NULL;
    s->handle = NULL;
    s->paused_filter = 0;
    const gh_filter_t *f = &s->filters[i];
    if (f->type->on_cancel != NULL)
        f->type->on_cancel(s, f->conf, s->ctx[i]);
}

int gh_stream_deadline_start(gh_stream_t *s, gh_deadline_t *d, uint64_t ms, gh_deadline_cb cb)
{
    return gh_deadline_start(&s->conn->worker->deadlines, d, ms, cb);
}

uv_loop_t *gh_stream_loop(gh_stream_t *s)
{
    return &s->conn->worker->loop;
}

uint64_t gh_stream_now_ms(gh_stream_t *s)
{
    return uv_now(&s->conn->worker->loop);
}

unsigned gh_stream_worker_id(const gh_stream_t *s)
{
    return s->conn->worker->id;
}

uint64_t gh_stream_random(gh_stream_t *s)
{
    return gh_rand(s->conn->worker);
}

/* ---- bounded request-body buffering ---- */

/* Buffered bodies are written with one uv_buf_t (32-bit length). */
#define BODY_LIMIT_MAX ((size_t)1 << 30)

void gh_stream_buffer_body(gh_stream_t *s, size_t limit)
{
    s->body_limit = limit < BODY_LIMIT_MAX ? limit : BODY_LIMIT_MAX;
}

const char *gh_stream_buffered_body(const gh_stream_t *s, size_t *len)
{
    *len = 0;
    if (!s->body_read)
        return NULL;
    *len = s->body_len;
    return s->body_buf != NULL ? s->body_buf : "";
}

/* 413; gh_stream_fail: an upstream connection taken already goes too. */
static void body_too_large(gh_stream_t *s, uint64_t limit)
{
    char detail[128];
    snprintf(detail, sizeof(detail), "request body exceeds the limit of %llu bytes",
             (unsigned long long)limit);
    gh_stream_fail(s, 413, "payload_too_large", detail);
}

static uint64_t buffer_limit(const gh_stream_t *s)
{
    return s->body_limit < s->route->max_body ? s->body_limit : s->route->max_body;
}

static int body_append(gh_stream_t *s, const char *p, size_t n)
{
    if (s->body_len + n > s->body_cap) {
        size_t cap = s->body_cap ? s->body_cap : 1024;
        while (cap < s->body_len + n)
            cap *= 2;
        if (cap > buffer_limit(s))
            cap = (size_t)buffer_limit(s);
        char *nb = gh_arena_alloc(&s->arena, cap);
        if (nb == NULL)
            return -1;
        if (s->body_len > 0)
            memcpy(nb, s->body_buf, s->body_len);
        s->body_buf = nb;
        s->body_cap = cap;
    }
    memcpy(s->body_buf + s->body_len, p, n);
    s->body_len += n;
    return 0;
}

static void observe_body(gh_stream_t *s);

/* The body is whole: the filter that asked sees it, and the chain goes on
 * from there. */
static void body_complete(gh_stream_t *s)
{
    s->buffering = 0;
    /* A request that had no body goes on without one (no Content-Length:
     * 0 added to a GET). */
    s->body_buffered = s->req.body != GH_H1_BODY_NONE;
    s->body_read = 1;
    s->req_body_done = 1;
    s->req_pump.done = 1;
    gh_conn_update_reading(s->conn);
    size_t i = s->buffer_filter;
    const gh_filter_t *f = &s->filters[i];
    gh_filter_status_t st = GH_FILTER_CONTINUE;
    if (f->type->on_request_buffered != NULL)
        st = f->type->on_request_buffered(s, f->conf, s->ctx[i],
                                          s->body_buf != NULL ? s->body_buf : "", s->body_len);
    if (chain_step(s, i, st))
        run_chain(s);
}

/* 100 Continue, once, to a client that waits for it before its body (and
 * has not sent any of it yet). 0, or -1 when the stream was aborted. */
static int send_continue(gh_stream_t *s)
{
    gh_conn_t *c = s->conn;
    if (!s->req.expect_continue || s->req.minor_version != 1 || s->continue_sent)
        return 0;
    /* Body bytes came already (the client stopped waiting), or a response
     * is on its way: a 100 now could land after the final response's head
     * (RFC 9110 section 10.1.1 lets a server leave it out then). */
    if (c->rlen > 0 || s->res_started) {
        s->continue_sent = 1;
        return 0;
    }
    uv_buf_t cb = uv_buf_init(continue_line, sizeof(continue_line) - 1);
    s->continue_sent = 1;
    if (gh_conn_write_aside(c, &cb, 1) < 0) {
        gh_stream_abort(s, "cannot write 100 Continue");
        return -1;
    }
    return 0;
}

/* One pump fill of the request body from the client's read buffer into
 * bufs, counted; a malformed body is a 400 and one past limit a 413.
 * Returns the number of bufs (*inflight: the buffer bytes they cover), or
 * -1 when the stream was answered instead. */
static int take_request_body(gh_stream_t *s, uv_buf_t *bufs, size_t *inflight, uint64_t limit)
{
    gh_conn_t *c = s->conn;
    gh_h1_error_t err = {0, NULL};
    size_t taken = 0;
    uint64_t payload = 0;
    int k =
        gh_body_pump_take(&s->req_pump, c->rbuf, &c->rlen, bufs, inflight, &taken, &payload, &err);
    if (k < 0) {
        gh_stream_fail(s, 400, "bad_request", err.detail ? err.detail : "malformed chunked body");
        return -1;
    }
    s->req_body_bytes += payload;
    s->bytes_in += taken;
    if (s->req_body_bytes > limit) {
        body_too_large(s, limit);
        return -1;
    }
    return k;
}

/* Takes what the client sent so far into body_buf (decoded), dropping it
 * from the read buffer, until the body is complete. */
static int buffer_body(gh_stream_t *s)
{
    gh_conn_t *c = s->conn;
    uv_buf_t bufs[GH_PUMP_MAX_BUFS];
    if (send_continue(s) < 0)
        return -1;
    while (!s->req_pump.done) {
        size_t inflight = 0;
        int k = take_request_body(s, bufs, &inflight, buffer_limit(s));
        if (k < 0)
            return -1;
        for (unsigned d = 0; d < s->req_pump.num_data; d++)
            if (body_append(s, s->req_pump.data[d].base, s->req_pump.data[d].len) < 0) {
                gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
                return -1;
            }
        observe_body(s);
        if (inflight > 0) {
            memmove(c->rbuf, c->rbuf + inflight, c->rlen - inflight);
            c->rlen -= inflight;
        }
        if (k == 0)
            break;
    }
    if (s->req_pump.done) {
        body_complete(s);
        return 0;
    }
    if (c->peer_eof) {
        gh_stream_abort(s, "client closed the connection mid-body");
        return -1;
    }
    gh_conn_update_reading(c);
    return 0;
}

static void start_buffering(gh_stream_t *s)
{
    if (s->req.body == GH_H1_BODY_LENGTH && s->req.content_length > buffer_limit(s)) {
        body_too_large(s, buffer_limit(s));
        return;
    }
    if (s->req_pump.done) {
        /* Read whole already (an earlier filter buffered it, with a
         * larger limit): a chunked body was not bounded by its head, and
         * this filter must not get more than it asked for. */
        if (s->body_len > buffer_limit(s)) {
            body_too_large(s, buffer_limit(s));
            return;
        }
        body_complete(s);
        return;
    }
    s->buffering = 1;
    buffer_body(s);
}

static int name_in_lines(const char *lines, size_t len, const char *name, size_t nlen)
{
    for (const char *p = lines, *end = lines + len; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)((eol != NULL ? eol : end) - p));
        if (colon != NULL && gh_field_name_same(p, (size_t)(colon - p), name, nlen))
            return 1;
        p = eol != NULL ? eol + 1 : end;
    }
    return 0;
}

/* A request trailer goes upstream only when the route's forward_trailers
 * names it, and never when a filter set or removed a field of that name:
 * an upstream that merges trailers into the header section would
 * otherwise read the client's value in place of the one gatehouse
 * checked or set (an identity header from a JWT claim, say). */
static int request_trailer_allowed(const char *name, size_t len, void *arg)
{
    gh_stream_t *s = arg;
    int listed = 0;
    for (size_t i = 0; i < s->route->num_forward_trailers && !listed; i++)
        listed = strlen(s->route->forward_trailers[i]) == len &&
                 strncasecmp(s->route->forward_trailers[i], name, len) == 0;
    if (!listed || name_in_lines(s->hdr_add, s->hdr_add_len, name, len))
        return 0;
    for (unsigned i = 0; i < s->num_hdr_drop; i++)
        if (gh_field_name_same(s->hdr_drop[i].name, s->hdr_drop[i].len, name, len))
            return 0;
    return 1;
}

void gh_stream_run_request(gh_stream_t *s)
{
    gh_conn_t *c = s->conn;
    size_t ri;

    s->lconf = gh_conn_lconf(c);
    if (s->refuse_status != 0) {
        c->keep_alive = 0;
        gh_stream_reply_error(s, s->refuse_status,
                              s->refuse_status == 501 ? "not_implemented" : "bad_request",
                              s->refuse_detail);
        return;
    }
    if (s->path_result == GH_PATH_REFUSE) {
        gh_stream_reply_error(s, 400, "bad_request", s->path_reason);
        return;
    }
    if (s->path_result == GH_PATH_REDIRECT) {
        gh_stream_reply_error_with(s, 307, "escaped_slash",
                                   "the path has escaped slashes; see location", s->path_location);
        return;
    }
    s->route = gh_route_match(c->worker, s->lconf, s, &ri);
    if (s->route == NULL) {
        gh_stream_reply_error(s, 404, "not_found", "no route matched the request");
        return;
    }
    if (s->req.body == GH_H1_BODY_LENGTH && s->req.content_length > s->route->max_body) {
        char detail[128];
        snprintf(detail, sizeof(detail), "request body of %llu bytes exceeds the limit of %llu",
                 (unsigned long long)s->req.content_length, (unsigned long long)s->route->max_body);
        gh_stream_reply_error(s, 413, "payload_too_large", detail);
        return;
    }
    const gh_chain_t *ch = &s->snap->chains[c->li][ri];
    s->filters = ch->filters;
    s->num_filters = ch->num_filters;
    s->hooks = ch->hooks;
    s->ctx = gh_arena_calloc(&s->arena, ch->num_filters * sizeof(void *));
    if (s->ctx == NULL)
        goto oom;
    for (size_t i = 0; (ch->hooks & GH_HOOK_CTX) && i < ch->num_filters; i++) {
        if (ch->filters[i].type->ctx_size == 0)
            continue;
        s->ctx[i] = gh_arena_calloc(&s->arena, ch->filters[i].type->ctx_size);
        if (s->ctx[i] == NULL)
            goto oom;
    }
    if (gh_body_pump_init(&s->req_pump, &s->arena, s->req.body, s->req.content_length,
                          s->req.body == GH_H1_BODY_CHUNKED ? GH_PUMP_OUT_CHUNKED
                                                            : GH_PUMP_OUT_RAW) < 0)
        goto oom;
    s->req_body_done = s->req_pump.done;
    s->req_pump.on_trailer = request_trailer_allowed;
    s->req_pump.trailer_arg = s;
    run_chain(s);
    return;
oom:
    s->num_filters = 0;
    gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
}

void gh_stream_reply_error(gh_stream_t *s, int status, const char *code, const char *detail)
{
    gh_stream_reply_error_with(s, status, code, detail, NULL);
}

/* Marks s as answered locally and decides the connection's fate: a body
 * we have not read makes it unusable (its bytes would be taken for the
 * next request). 0, or -1 when a response was started already (then s
 * was aborted instead). */
static int reply_begin(gh_stream_t *s, int status, const char *detail)
{
    gh_conn_t *c = s->conn;
    if (s->ended)
        return -1;
    if (s->res_started) {
        gh_stream_abort(s, detail);
        return -1;
    }
    /* Answered by anyone but the filter that holds the request:
     * the paused filter stops its work now, not when its timer fires into
     * a response already on its way. */
    cancel_paused(s);
    s->res_started = 1;
    s->replied = 1;
    /* A body being buffered is read no further: what still comes stays
     * unread (the connection closes after the reply), and the next read
     * must not answer a second time, which would abort the reply. */
    s->buffering = 0;
    s->status = status;
    if (detail != NULL)
        s->error = gh_arena_memdup(&s->arena, detail, strlen(detail));
    if (!s->req_body_done || c->worker->stopping)
        c->keep_alive = 0;
    return 0;
}

static int is_head_request(const gh_stream_t *s)
{
    return s->req.method_len == 4 && memcmp(s->req.method, "HEAD", 4) == 0;
}

/* Hands a heap buffer holding a whole response to the client. */
static void reply_send(gh_stream_t *s, char *buf, size_t len)
{
    gh_conn_t *c = s->conn;
    c->wbuf = buf;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    gh_conn_write(c, &b, 1);
}

void gh_stream_reply_error_with(gh_stream_t *s, int status, const char *code, const char *detail,
                                const char *extra)
{
    gh_stream_reply_error_members(s, status, code, detail, NULL, 0, extra);
}

void gh_stream_reply_error_members(gh_stream_t *s, int status, const char *code, const char *detail,
                                   const char *const *members, size_t n, const char *extra)
{
    if (reply_begin(s, status, detail) < 0)
        return;
    gh_conn_t *c = s->conn;
    /* The fields filters added (Retry-After on a 429) come with it. */
    char *lines = (char *)extra;
    if (s->res_add_len > 0) {
        size_t el = extra != NULL ? strlen(extra) : 0;
        lines = gh_arena_alloc(&s->arena, el + s->res_add_len + 1);
        if (lines == NULL) {
            gh_stream_abort(s, "out of memory");
            return;
        }
        if (el > 0)
            memcpy(lines, extra, el);
        memcpy(lines + el, s->res_add, s->res_add_len);
        lines[el + s->res_add_len] = '\0';
    }
    size_t len;
    char *buf = gh_reply_error_build_members(status, code, detail, members, n, lines,
                                             !c->keep_alive, is_head_request(s), &len);
    if (buf == NULL) {
        gh_stream_abort(s, "out of memory");
        return;
    }
    GH_LOG(GH_LOG_DEBUG, "stream", "req=%s local reply %d %s: %s", s->request_id, status, code,
           detail);
    reply_send(s, buf, len);
}

/* Fields gatehouse writes itself on every response, which a filter may
 * not set: framing and hop-by-hop names. */
static int response_field_refused(const char *name, size_t n, const char *value, size_t vn)
{
    static const char *const own[] = {"content-length",   "transfer-encoding",
                                      "connection",       "keep-alive",
                                      "proxy-connection", "te",
                                      "trailer",          "upgrade"};
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (!gh_h1_is_tchar((unsigned char)name[i]))
            return 1;
    for (size_t i = 0; i < vn; i++) {
        unsigned char b = (unsigned char)value[i];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            return 1; /* field-value: VCHAR, obs-text, SP, HTAB (RFC 9110 section 5.5) */
    }
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (gh_field_name_same(name, n, own[i], strlen(own[i])))
            return 1;
    return 0;
}

static size_t field_line_len(size_t n, size_t vn)
{
    return n + vn + 4;
}

static char *put_field_line(char *o, const char *name, size_t n, const char *value, size_t vn)
{
    memcpy(o, name, n);
    o += n;
    *o++ = ':';
    *o++ = ' ';
    memcpy(o, value, vn);
    o += vn;
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

/* Room for len more bytes of response fields (s->res_add) after those
 * added so far: a pointer to them, or NULL when out of memory. */
static char *res_add_room(gh_stream_t *s, size_t len)
{
    size_t need = s->res_add_len + len;
    if (need > s->res_add_cap) {
        if (s->res_add_cap == 0 && need <= sizeof(s->res_inline)) {
            s->res_add = s->res_inline;
            s->res_add_cap = sizeof(s->res_inline);
            return s->res_add;
        }
        size_t cap = s->res_add_cap ? s->res_add_cap * 2 : 512;
        while (cap < need)
            cap *= 2;
        char *nb = gh_arena_alloc(&s->arena, cap);
        if (nb == NULL)
            return NULL;
        if (s->res_add_len > 0)
            memcpy(nb, s->res_add, s->res_add_len);
        s->res_add = nb;
        s->res_add_cap = cap;
    }
    return s->res_add + s->res_add_len;
}

int gh_stream_add_response_header(gh_stream_t *s, const char *name, size_t name_len,
                                  const char *value, size_t value_len)
{
    if (response_field_refused(name, name_len, value, value_len))
        return -1;
    size_t len = field_line_len(name_len, value_len);
    char *o = res_add_room(s, len);
    if (o == NULL)
        return -1;
    put_field_line(o, name, name_len, value, value_len);
    s->res_add_len += len;
    return 0;
}

char *gh_stream_response_lines_reserve(gh_stream_t *s, size_t max)
{
    return res_add_room(s, max);
}

void gh_stream_response_lines_commit(gh_stream_t *s, size_t used)
{
    s->res_add_len += used;
}

void gh_stream_reply(gh_stream_t *s, int status, const gh_h1_header_t *headers, size_t num_headers,
                     const char *body, size_t body_len)
{
    if (status < 200 || status > 599) {
        gh_stream_reply_error(s, 500, "internal_error", "a filter replied with a bad status");
        return;
    }
    size_t cap = 128 + s->res_add_len + body_len;
    for (size_t i = 0; i < num_headers; i++) {
        const gh_h1_header_t *h = &headers[i];
        if (response_field_refused(h->name, h->name_len, h->value, h->value_len)) {
            gh_stream_reply_error(s, 500, "internal_error",
                                  "a filter replied with a field gatehouse does not send");
            return;
        }
        cap += field_line_len(h->name_len, h->value_len);
    }
    if (reply_begin(s, status, NULL) < 0)
        return;
    gh_conn_t *c = s->conn;
    char *buf = malloc(cap), *o = buf;
    if (buf == NULL) {
        gh_stream_abort(s, "out of memory");
        return;
    }
    o += snprintf(o, 64, "HTTP/1.1 %d %s\r\n", status, gh_status_reason(status));
    for (size_t i = 0; i < num_headers; i++)
        o = put_field_line(o, headers[i].name, headers[i].name_len, headers[i].value,
                           headers[i].value_len);
    if (s->res_add_len > 0) {
        memcpy(o, s->res_add, s->res_add_len);
        o += s->res_add_len;
    }
    int has_body = status != 204 && status != 304;
    if (has_body)
        o += snprintf(o, 40, "content-length: %zu\r\n", body_len);
    if (!c->keep_alive)
        o += snprintf(o, 24, "connection: close\r\n");
    *o++ = '\r';
    *o++ = '\n';
    if (has_body && !is_head_request(s) && body_len > 0) {
        memcpy(o, body, body_len);
        o += body_len;
    }
    GH_LOG(GH_LOG_DEBUG, "stream", "req=%s local reply %d", s->request_id, status);
    reply_send(s, buf, (size_t)(o - buf));
}

void gh_stream_fail(gh_stream_t *s, int status, const char *code, const char *detail)
{
    if (s->up != NULL) {
        gh_upconn_t *u = s->up;
        s->up = NULL;
        u->stream = NULL;
        gh_pool_active_dec(u->pool);
        gh_upconn_release(u, 0);
    }
    gh_stream_reply_error(s, status, code, detail);
}

/* Runs the response filters, last to first. Returns 0 to go on, -1 when
 * one of them answered locally instead. */
int gh_stream_response_filters(gh_stream_t *s)
{
    if (!(s->hooks & GH_HOOK_RES_HEADERS))
        return 0;
    for (size_t i = s->num_filters; i-- > 0;) {
        const gh_filter_t *f = &s->filters[i];
        if (f->type->on_response_headers == NULL)
            continue;
        if (f->type->on_response_headers(s, f->conf, s->ctx[i]) != GH_FILTER_CONTINUE)
            return -1;
    }
    return 0;
}

void gh_stream_reap(gh_worker_t *w)
{
    while (w->dead != NULL) {
        gh_stream_t *s = w->dead;
        w->dead = s->dead_next;
        gh_wsnap_unref(s->ws);
        stream_give(w, s);
    }
}

/* Deferred deletion: s is freed by the worker's reaper, a check handle
 * that runs once per loop turn after the I/O callbacks (worker.c), so every
 * frame that still holds s (a filter that replied, the chain runner, a
 * pump) may look at s->ended and return. Its snapshot reference goes then
 * too: a filter's conf lives in the snapshot. */
static void stream_bury(gh_worker_t *w, gh_stream_t *s)
{
    s->dead_next = w->dead;
    w->dead = s;
}

void gh_stream_end(gh_stream_t *s)
{
    gh_conn_t *c = s->conn;
    if (s->ended)
        return;
    s->ended = 1;
    if (!s->logged) {
        s->logged = 1;
        cancel_paused(s);
        gh_observe_end(s);
        for (size_t i = 0; (s->hooks & GH_HOOK_LOG) && i < s->num_filters; i++)
            if (s->filters[i].type->on_log != NULL)
                s->filters[i].type->on_log(s, s->filters[i].conf, s->ctx[i]);
        for (size_t i = 0; i < s->num_filters; i++)
            if (s->filters[i].type->on_destroy != NULL)
                s->filters[i].type->on_destroy(s, s->filters[i].conf, s->ctx[i]);
    }
    if (s->up != NULL) {
        gh_upconn_t *u = s->up;
        int reusable = !s->aborted && s->res_up_done && s->res.keep_alive && s->req_sent &&
                       s->req_inflight == 0 && u->rlen == 0 && !s->up_eof;
        s->up = NULL;
        u->stream = NULL;
        gh_pool_t *p = u->pool;
        gh_pool_active_dec(p);
        gh_upconn_release(u, reusable);
    }
    int keep = c->keep_alive && s->req_body_done && !s->aborted && !c->worker->stopping &&
               s->req_inflight == 0;
    int aborted = s->aborted;
    c->stream = NULL;
    stream_bury(c->worker, s);
    if (aborted) {
        gh_conn_close(c);
    } else if (keep) {
        c->state = GH_CONN_HEAD;
        gh_conn_process(c);
    } else {
        c->state = GH_CONN_CLOSING;
        gh_conn_finish(c);
    }
}

void gh_stream_abort(gh_stream_t *s, const char *why)
{
    GH_LOG(GH_LOG_DEBUG, "stream", "req=%s aborted: %s", s->request_id, why ? why : "");
    s->aborted = 1;
    s->conn->keep_alive = 0;
    if (s->error == NULL && why != NULL)
        s->error = gh_arena_memdup(&s->arena, why, strlen(why));
    gh_stream_end(s);
}

/* Called when a write of response bytes (or of a local reply) to the
 * client completed. */
void gh_stream_client_wrote(gh_stream_t *s)
{
    gh_conn_arm_timer(s->conn);
    if (s->replied) {
        s->res_done = 1;
        gh_stream_end(s);
        return;
    }
    gh_router_client_drained(s);
}

void gh_stream_client_timeout(gh_stream_t *s)
{
    gh_conn_t *c = s->conn;
    if (!s->res_started && (s->handle != NULL || s->wait_pool != NULL ||
                            (s->up != NULL && (!s->up->connected || s->up->wpending)))) {
        /* The body stands still because of gatehouse's side: a filter
         * holds the request (its own deadline governs), no upstream
         * connection yet, or one that stopped taking the request. Their
         * own deadlines answer that (503 from the queue, 504 from the
         * connect or the write), not a 408 that blames the client. */
        gh_conn_arm_timer(c);
        return;
    }
    if (!s->req_body_done && !s->res_started) {
        gh_stream_fail(s, 408, "request_timeout", "request body not received in time");
        return;
    }
    if (c->wpending || !s->req_body_done) {
        gh_stream_abort(s, "client stalled");
        return;
    }
    gh_conn_arm_timer(c); /* waiting for the upstream, whose own timers govern */
}

void gh_stream_client_eof(gh_stream_t *s, int err)
{
    /* Nothing has gone upstream while a filter holds the request (a fault
     * delay, an authorizer call): a client that closes then is taken as
     * gone, as HAProxy's abortonclose does for queued requests, rather
     * than sending its request on and writing to a closed socket. */
    if (s->handle != NULL) {
        gh_stream_abort(s, "client closed the connection while the request was held");
        return;
    }
    /* A client that half-closes after sending its whole request still
     * gets its response (HTTP/1.0-era clients do this). */
    if (err == UV_EOF && s->req_body_done && !s->replied)
        return;
    if (err == UV_EOF && s->replied)
        return;
    /* The rest of the body may be in the read buffer already, not yet
     * pumped (the upstream still connecting, a write under way, a filter
     * waiting): the pump decides, once it runs, whether the body was cut
     * short (c->peer_eof is set). */
    if (err == UV_EOF) {
        gh_stream_pump_request(s);
        return;
    }
    gh_stream_abort(s, "client closed the connection");
}

/* The filters that watch the body see the payload spans of the last pump
 * fill. */
static void observe_body(gh_stream_t *s)
{
    for (size_t i = 0; (s->hooks & GH_HOOK_REQ_BODY) && i < s->num_filters; i++) {
        const gh_filter_t *f = &s->filters[i];
        if (f->type->on_request_body == NULL)
            continue;
        for (unsigned d = 0; d < s->req_pump.num_data; d++)
            f->type->on_request_body(s, f->conf, s->ctx[i], s->req_pump.data[d].base,
                                     s->req_pump.data[d].len, 0);
        if (s->req_pump.done)
            f->type->on_request_body(s, f->conf, s->ctx[i], NULL, 0, 1);
    }
}

/* Sends the request head and whatever body bytes are buffered to the
 * upstream, one write at a time: while a write is under way the client's
 * read buffer is not compacted, and reading stops when it is full, which is
 * the back-pressure that keeps a fast client from outrunning a slow
 * upstream. */
int gh_stream_pump_request(gh_stream_t *s)
{
    gh_conn_t *c = s->conn;
    gh_upconn_t *u = s->up;
    uv_buf_t bufs[GH_PUMP_MAX_BUFS + 1];
    unsigned n = 0;

    if (s->buffering)
        return buffer_body(s);
    if (u == NULL || !u->connected || u->wpending || s->req_sent || s->res_done)
        return 0;
    if (!s->head_sent) {
        bufs[n++] = uv_buf_init(s->fwd_head, (unsigned)s->fwd_head_len);
        s->head_sent = 1;
        s->up_start_ns = uv_hrtime();
        if (s->body_buffered && s->body_len > 0)
            bufs[n++] = uv_buf_init(s->body_buf, (unsigned)s->body_len);
    }
    if (!s->req_pump.done) {
        size_t consumed = 0;
        if (send_continue(s) < 0)
            return -1;
        int k = take_request_body(s, bufs + n, &consumed, s->route->max_body);
        if (k < 0)
            return -1;
        observe_body(s);
        if (k == 0 && !s->req_pump.done && c->peer_eof) {
            /* Every byte the client will ever send is taken, and the body
             * is not complete. */
            gh_stream_abort(s, "client closed the connection mid-body");
            return -1;
        }
        n += (unsigned)k;
        s->req_inflight = consumed;
        if (s->req_pump.done)
            s->req_body_done = 1;
    }
    if (n == 0) {
        gh_conn_update_reading(c);
        return 0;
    }
    gh_upconn_write(u, bufs, n);
    return 0;
}

/* The upstream accepted the bytes of the last request write. */
void gh_stream_request_written(gh_stream_t *s)
{
    gh_conn_t *c = s->conn;
    if (s->req_inflight > 0) {
        memmove(c->rbuf, c->rbuf + s->req_inflight, c->rlen - s->req_inflight);
        c->rlen -= s->req_inflight;
        s->req_inflight = 0;
    }
    if (s->req_pump.done && !s->req_sent) {
        s->req_sent = 1;
        gh_router_request_sent(s);
    }
    gh_conn_update_reading(c);
    gh_stream_pump_request(s);
}

/* ---- the filter-facing accessors (gatehouse/filter.h) ---- */

gh_identity_t *gh_stream_identity(gh_stream_t *s)
{
    return &s->identity;
}

void gh_stream_set_ctx(gh_stream_t *s, void *ctx)
{
    if (s->next_filter > 0)
        s->ctx[s->next_filter - 1] = ctx;
}

const char *gh_stream_client_address(const gh_stream_t *s)
{
    return s->client;
}

const char *gh_stream_peer_address(const gh_stream_t *s)
{
    return s->conn->peer;
}

const char *gh_stream_host(const gh_stream_t *s, size_t *len)
{
    *len = s->host_len;
    return s->host != NULL ? s->host : "";
}

const char *gh_stream_authority(const gh_stream_t *s, size_t *len)
{
    *len = s->authority != NULL ? s->authority_len : 0;
    return s->authority;
}

void gh_stream_request_line(const gh_stream_t *s, const char **method, size_t *method_len,
                            const char **path, size_t *path_len, const char **query,
                            size_t *query_len)
{
    *method = s->req.method;
    *method_len = s->req.method_len;
    *path = s->path;
    *path_len = s->path_len;
    *query = s->query;
    *query_len = s->query_len;
}

size_t gh_stream_header_count(const gh_stream_t *s)
{
    return s->req.num_headers;
}

void gh_stream_header_at(const gh_stream_t *s, size_t i, const char **name, size_t *name_len,
                         const char **value, size_t *value_len)
{
    const gh_h1_header_t *h = &s->req.headers[i];
    *name = h->name;
    *name_len = h->name_len;
    *value = h->value;
    *value_len = h->value_len;
}

void *gh_stream_alloc(gh_stream_t *s, size_t size)
{
    size_t at = s->alloc_inline_used;
    if (size <= sizeof(s->alloc_inline) - at) {
        /* at is a multiple of 16, and so is what is left: rounding up
         * stays inside. */
        s->alloc_inline_used = at + ((size + 15) & ~(size_t)15);
        return s->alloc_inline + at;
    }
    void *p = gh_arena_alloc(&s->arena, size);
    /* A filter builds its edits (a Cookie without the token, a target
     * without the token's parameter) in this memory; if it cannot, the
     * request must not go out unedited. */
    if (p == NULL && size > 0)
        s->hdr_edit_failed = 1;
    return p;
}

static int grow_hdr_add(gh_stream_t *s, size_t need)
{
    if (need <= s->hdr_add_cap)
        return 0;
    if (s->hdr_add_cap == 0 && need <= sizeof(s->add_inline)) {
        s->hdr_add = s->add_inline;
        s->hdr_add_cap = sizeof(s->add_inline);
        return 0;
    }
    size_t cap = s->hdr_add_cap ? s->hdr_add_cap * 2 : 256;
    while (cap < need)
        cap *= 2;
    char *nb = gh_arena_alloc(&s->arena, cap);
    if (nb == NULL)
        return -1;
    if (s->hdr_add_len)
        memcpy(nb, s->hdr_add, s->hdr_add_len);
    s->hdr_add = nb;
    s->hdr_add_cap = cap;
    return 0;
}

/* A header edit that fails (out of memory) latches hdr_edit_failed, and
 * gh_forward_request_head then refuses to build the head: a filter that
 * ignores the return value still cannot get a request forwarded without
 * the drop or the add it asked for. */
static int edit_failed(gh_stream_t *s)
{
    s->hdr_edit_failed = 1;
    return -1;
}

int gh_stream_add_header(gh_stream_t *s, const char *name, size_t name_len, const char *value,
                         size_t value_len)
{
    if (grow_hdr_add(s, s->hdr_add_len + name_len + value_len + 4) < 0)
        return edit_failed(s);
    char *o = s->hdr_add + s->hdr_add_len;
    memcpy(o, name, name_len);
    o += name_len;
    *o++ = ':';
    *o++ = ' ';
    memcpy(o, value, value_len);
    o += value_len;
    *o++ = '\r';
    *o++ = '\n';
    s->hdr_add_len = (size_t)(o - s->hdr_add);
    return 0;
}

static inline int add_lines(gh_stream_t *s, const char *lines, size_t len)
{
    size_t need = s->hdr_add_len + len;
    if (s->hdr_add_cap == 0 && need <= sizeof(s->add_inline)) { /* the usual first add */
        s->hdr_add = s->add_inline;
        s->hdr_add_cap = sizeof(s->add_inline);
    } else if (grow_hdr_add(s, need) < 0) {
        return edit_failed(s);
    }
    memcpy(s->hdr_add + s->hdr_add_len, lines, len);
    s->hdr_add_len += len;
    return 0;
}

int gh_stream_add_header_lines(gh_stream_t *s, const char *lines, size_t len)
{
    return add_lines(s, lines, len);
}

/* The drop list has no fixed size: a name past a fixed cap would simply
 * not be dropped, and a forged identity header or a token meant to be
 * removed would reach the upstream. It is bounded by what filters ask
 * for, which the config bounds. A stream's list is its own (drop_inline,
 * then the arena, hdr_drop_cap entries) or, cap 0 with entries, a route's
 * gh_drop_list_t borrowed whole (gh_stream_drop_list), copied here before
 * anything is added to it. */
static int append_drop(gh_stream_t *s, const char *lower, size_t len)
{
    if (s->num_hdr_drop >= s->hdr_drop_cap) { /* none yet, full, or borrowed */
        const unsigned inline_cap = sizeof(s->drop_inline) / sizeof(s->drop_inline[0]);
        unsigned n = s->num_hdr_drop, cap = n < inline_cap ? inline_cap : 2 * n;
        struct gh_hdr_drop_s *nd = s->drop_inline;
        if (cap != inline_cap || s->hdr_drop == s->drop_inline) {
            nd = cap > n ? gh_arena_alloc(&s->arena, cap * sizeof(*nd)) : NULL;
            if (nd == NULL)
                return edit_failed(s);
        }
        if (n > 0)
            memcpy(nd, s->hdr_drop, n * sizeof(*nd));
        s->hdr_drop = nd;
        s->hdr_drop_cap = cap;
    }
    s->hdr_drop[s->num_hdr_drop].name = lower;
    s->hdr_drop[s->num_hdr_drop].len = len;
    s->hdr_drop[s->num_hdr_drop].c0 = len > 0 ? gh_field_name_fold((unsigned char)lower[0]) : 0;
    s->num_hdr_drop++;
    s->hdr_drop_lens |= UINT64_C(1) << (len % 64);
    return 0;
}

int gh_stream_drop_header_static(gh_stream_t *s, const char *lower, size_t len)
{
    return append_drop(s, lower, len);
}

struct gh_drop_list_s {
    unsigned n;
    uint64_t lens; /* as gh_stream_t's hdr_drop_lens */
    struct gh_hdr_drop_s d[];
};

gh_drop_list_t *gh_drop_list_new(const char *const *names, size_t n)
{
    if (n > UINT32_MAX / 2)
        return NULL;
    gh_drop_list_t *l = calloc(1, sizeof(*l) + n * sizeof(l->d[0]));
    if (l == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        l->d[i].name = names[i];
        l->d[i].len = strlen(names[i]);
        l->d[i].c0 = gh_field_name_fold((unsigned char)names[i][0]);
        l->lens |= UINT64_C(1) << (l->d[i].len % 64);
    }
    l->n = (unsigned)n;
    return l;
}

void gh_drop_list_free(gh_drop_list_t *l)
{
    free(l);
}

static inline int drop_list(gh_stream_t *s, const gh_drop_list_t *l)
{
    if (l == NULL || l->n == 0)
        return 0;
    if (s->num_hdr_drop == 0) {
        /* Borrowed: cap 0 makes append_drop copy it before adding. */
        s->hdr_drop = (struct gh_hdr_drop_s *)(uintptr_t)l->d;
        s->num_hdr_drop = l->n;
        s->hdr_drop_cap = 0;
        s->hdr_drop_lens |= l->lens;
        return 0;
    }
    for (unsigned i = 0; i < l->n; i++)
        if (append_drop(s, l->d[i].name, l->d[i].len) < 0)
            return -1;
    return 0;
}

int gh_stream_drop_list(gh_stream_t *s, const gh_drop_list_t *l)
{
    return drop_list(s, l);
}

int gh_stream_replace_headers(gh_stream_t *s, const gh_drop_list_t *l, const char *lines,
                              size_t len)
{
    if (drop_list(s, l) < 0)
        return -1;
    return len > 0 ? add_lines(s, lines, len) : 0;
}

int gh_stream_drop_header(gh_stream_t *s, const char *lower, size_t len)
{
    char *copy = gh_arena_memdup(&s->arena, lower, len);
    if (copy == NULL)
        return edit_failed(s);
    return append_drop(s, copy, len);
}

/* The first use of type's state on worker w: made in the first free slot
 * (slots are never freed before the worker ends). Kept apart from the
 * look-up, which every request of a route with a cache makes, so that the
 * look-up is a leaf that saves no registers. */
__attribute__((noinline)) static void *worker_state_new(gh_worker_t *w,
                                                        const gh_filter_type_t *type,
                                                        void *(*create)(void),
                                                        void (*destroy)(void *))
{
    size_t n = sizeof(w->fstate) / sizeof(w->fstate[0]);
    for (size_t i = 0; i < n; i++) {
        if (w->fstate[i].type == NULL) {
            void *st = create();
            if (st == NULL)
                return NULL;
            w->fstate[i].type = type;
            w->fstate[i].state = st;
            w->fstate[i].destroy = destroy;
            return st;
        }
    }
    return NULL;
}

void *gh_stream_worker_state(gh_stream_t *s, const gh_filter_type_t *type, void *(*create)(void),
                             void (*destroy)(void *))
{
    gh_worker_t *w = s->conn->worker;
    size_t n = sizeof(w->fstate) / sizeof(w->fstate[0]);
    for (size_t i = 0; i < n; i++)
        if (w->fstate[i].type == type)
            return w->fstate[i].state;
    return worker_state_new(w, type, create, destroy);
}

const gh_h1_header_t *gh_stream_authorization(const gh_stream_t *s)
{
    return s->auth_index >= 0 ? &s->req.headers[s->auth_index] : NULL;
}

const gh_h1_header_t *gh_stream_headers(const gh_stream_t *s, size_t *n)
{
    *n = s->req.num_headers;
    return s->req.headers;
}

void gh_stream_set_target(gh_stream_t *s, const char *target, size_t len)
{
    s->fwd_target = target;
    s->fwd_target_len = len;
}

int gh_stream_match(gh_stream_t *s, const gh_strmatch_t *m, const char *v, size_t n)
{
    return gh_strmatch_match(s->conn->worker, m, v, n);
}

gh_metrics_shard_t *gh_stream_metrics(gh_stream_t *s)
{
    return s->conn->worker->metrics;
}

const char *gh_stream_header_get(const gh_stream_t *s, const char *lower, size_t *len)
{
    size_t n = strlen(lower);
    for (size_t i = 0; i < s->req.num_headers; i++) {
        const gh_h1_header_t *h = &s->req.headers[i];
        if (gh_field_name_same(h->name, h->name_len, lower, n)) {
            *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

const gh_route_t *gh_stream_route(const gh_stream_t *s)
{
    return s->route;
}

const char *gh_stream_request_id(const gh_stream_t *s)
{
    return s->request_id;
}

void gh_stream_count(gh_stream_t *s, uint32_t id)
{
    gh_counter_stats_t *st = gh_metrics_filter(s->conn->worker->metrics, id);
    if (st != NULL)
        GH_STAT_INC(st->count);
}

void gh_stream_log_note(gh_stream_t *s, const char *note)
{
    s->log_note = note;
}

void gh_stream_upstream_begin(gh_stream_t *s, size_t target, const char *name)
{
    if (s->route == NULL || target >= s->route->num_targets)
        return;
    s->target = target;
    s->cluster = s->route->targets[target].cluster;
    s->upstream_name = name;
    s->up_start_ns = uv_hrtime();
}

void gh_stream_upstream_end(gh_stream_t *s)
{
    if (s->up_start_ns != 0)
        s->res_up_done = 1;
}
