/*
 * Downstream connections: accept, read, parse request heads, hand each
 * request to a stream, keep-alive and pipelining, timeouts, and closing.
 *
 * One stream at a time per connection. Pipelined requests wait, unparsed,
 * in the read buffer until the current response has been written; the
 * buffer's size bounds what a client can queue, which gives back-pressure
 * for free and answers requests in order (RFC 9112 section 9.3.2).
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/log.h>

#include "proxy/headscan.h"
#include "proxy/proxy.h"

#define LINGER_MS 2000

static void conn_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);

/* The read buffer of a listener with the default max_head (64 KiB, plus
 * room to see a head is too long): the size the worker keeps free buffers
 * of. A listener with a larger max_head reads into its own. */
#define RBUF_STD (64 * 1024 + 4096)

static int rbuf_take(gh_conn_t *c)
{
    gh_worker_t *w = c->worker;
    if (c->rbuf != NULL)
        return 0;
    if (c->rcap == RBUF_STD && w->num_rbuf_free > 0)
        c->rbuf = w->rbuf_free[--w->num_rbuf_free];
    else
        c->rbuf = malloc(c->rcap);
    return c->rbuf != NULL ? 0 : -1;
}

void gh_conn_rbuf_recycle(gh_worker_t *w, char *buf, size_t cap)
{
    if (cap == RBUF_STD && w->num_rbuf_free < sizeof(w->rbuf_free) / sizeof(w->rbuf_free[0]))
        w->rbuf_free[w->num_rbuf_free++] = buf;
    else
        free(buf);
}

/* Gives the buffer back while the connection waits with nothing in it. */
static void rbuf_give(gh_conn_t *c)
{
    if (c->rbuf == NULL || c->rlen != 0)
        return;
    gh_conn_rbuf_recycle(c->worker, c->rbuf, c->rcap);
    c->rbuf = NULL;
}

static void admission_release(gh_conn_t *c);

static void conn_on_close(uv_handle_t *h)
{
    gh_conn_t *c = h->data;
    gh_sockwrite_flush((uv_stream_t *)h);
    if (--c->handles_open > 0)
        return;
    gh_worker_t *w = c->worker;
    w->num_conns--;
    admission_release(c);
    if (c->lstats != NULL)
        GH_STAT_DEC(c->lstats->conns_active);
    if (c->ws != NULL)
        gh_wsnap_unref(c->ws);
    c->rlen = 0;
    rbuf_give(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->wbuf);
    free(c);
    gh_conn_resume_accepting(w);
}

/* Closes at once: the peer may see a reset if bytes were unread. Used when
 * the exchange broke; a finished exchange goes through linger_close(). */
void gh_conn_close(gh_conn_t *c)
{
    if (c->state == GH_CONN_CLOSING && c->handles_open == 0)
        return;
    if (c->stream != NULL) {
        gh_stream_t *s = c->stream;
        gh_stream_abort(s, "client connection closed");
        return; /* abort ends the stream, which closes us */
    }
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    c->state = GH_CONN_CLOSING;
    gh_deadline_stop(&c->dl);
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

#define CONN_OF(d) ((gh_conn_t *)((char *)(d)-offsetof(gh_conn_t, dl)))

static void linger_timeout(gh_deadline_t *d)
{
    gh_conn_t *c = CONN_OF(d);
    gh_conn_close(c);
}

static void linger_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    gh_conn_t *c = h->data;
    (void)buf;
    if (nread < 0)
        gh_conn_close(c);
    c->rlen = 0; /* discard */
}

static void linger_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    gh_conn_t *c = h->data;
    (void)hint;
    if (rbuf_take(c) < 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(c->rbuf, (unsigned)c->rcap);
}

static void linger_shutdown(uv_shutdown_t *req, int status)
{
    gh_conn_t *c = req->data;
    free(req);
    if (status < 0 || uv_is_closing((uv_handle_t *)&c->tcp)) {
        gh_conn_close(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    uv_read_start((uv_stream_t *)&c->tcp, linger_alloc, linger_read);
    gh_deadline_start(&c->worker->deadlines, &c->dl, LINGER_MS, linger_timeout);
}

/* Closing after a response that told the client "connection: close" while
 * its bytes may still be in flight towards us: closing with unread data
 * makes the kernel send a reset, which can destroy the response before the
 * client reads it. So: send FIN, read and discard for a while, then close
 * (what nginx calls lingering close). */
static void linger_close(gh_conn_t *c)
{
    uv_shutdown_t *req = malloc(sizeof(*req));
    c->state = GH_CONN_CLOSING;
    gh_deadline_stop(&c->dl);
    if (req == NULL) {
        gh_conn_close(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, linger_shutdown) < 0) {
        free(req);
        gh_conn_close(c);
    }
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    gh_conn_t *c = h->data;
    (void)hint;
    if (rbuf_take(c) < 0) {
        *buf = uv_buf_init(NULL, 0); /* the read fails with UV_ENOBUFS: closed */
        return;
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

void gh_conn_update_reading(gh_conn_t *c)
{
    int want = c->state != GH_CONN_CLOSING && c->rlen < c->rcap && !c->peer_eof;
    if (c->state == GH_CONN_HEAD && c->wpending)
        want = 0;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_on_read) == 0)
            c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void conn_timeout(gh_deadline_t *d)
{
    gh_conn_t *c = CONN_OF(d);
    if (c->state == GH_CONN_HEAD) {
        if (c->rlen == 0) {
            gh_conn_close(c); /* idle keep-alive connection */
            return;
        }
        size_t len;
        char *buf = gh_reply_error_build(408, "request_timeout",
                                         "request head not received in time", 1, 0, &len);
        c->keep_alive = 0;
        gh_observe_refused(c, 408, "request_timeout");
        if (buf == NULL) {
            gh_conn_close(c);
            return;
        }
        c->wbuf = buf;
        c->state = GH_CONN_CLOSING;
        uv_buf_t b = uv_buf_init(buf, (unsigned)len);
        gh_conn_write(c, &b, 1);
        return;
    }
    if (c->state == GH_CONN_STREAM && c->stream != NULL)
        gh_stream_client_timeout(c->stream);
}

void gh_conn_arm_timer(gh_conn_t *c)
{
    const gh_listener_conf_t *l = gh_conn_lconf(c);
    uint64_t ms;
    if (c->state == GH_CONN_HEAD && c->rlen == 0 && c->served)
        ms = l->idle_timeout_ms;
    else if (c->state == GH_CONN_HEAD && c->rlen == 0)
        /* A new connection owes its first request: a silent one holds a
         * max_connections slot for header_timeout, not idle_timeout. */
        ms = l->header_timeout_ms < l->idle_timeout_ms ? l->header_timeout_ms : l->idle_timeout_ms;
    else if (c->state == GH_CONN_HEAD)
        ms = l->header_timeout_ms;
    else
        ms = l->body_timeout_ms;
    gh_deadline_start(&c->worker->deadlines, &c->dl, ms, conn_timeout);
}

static void reply_and_close(gh_conn_t *c, int status, const char *code, const char *detail)
{
    size_t len;
    char *buf = gh_reply_error_build(status, code, detail, 1, 0, &len);
    c->keep_alive = 0;
    gh_observe_refused(c, status, code);
    if (buf == NULL) {
        gh_conn_close(c);
        return;
    }
    c->wbuf = buf;
    c->state = GH_CONN_CLOSING;
    gh_deadline_stop(&c->dl);
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    gh_conn_write(c, &b, 1);
}

static const char *status_code_name(int status)
{
    switch (status) {
    case 414:
        return "uri_too_long";
    case 431:
        return "header_too_large";
    case 501:
        return "not_implemented";
    default:
        return "bad_request";
    }
}

/* Whether the request parser can decide now. Running it on every read
 * would scan a head sent a byte at a time once per byte; it runs when the
 * new bytes hold a head end (or a bare LF, refused at once), at the close,
 * at the head size limit; and on the first read of a head and once when
 * the buffer first passes max_uri, so that bytes that are no HTTP at all
 * (a TLS handshake) are a 400, and an over-long request-target a 414,
 * without waiting for the rest of the head. */
static int head_worth_parsing(gh_conn_t *c, const gh_listener_conf_t *l)
{
    size_t before = c->head_scanned;
    if (before == 0)
        return 1; /* the first read of a head: the parser decides (most are whole) */
    int end = gh_head_scan(c->rbuf, c->rlen, &c->head_scanned);
    return end || c->peer_eof || c->rlen > l->max_head || c->rlen == c->rcap ||
           (before <= l->max_uri && c->rlen > l->max_uri);
}

void gh_conn_process(gh_conn_t *c)
{
    while (c->state == GH_CONN_HEAD) {
        if (c->worker->stopping) {
            gh_conn_close(c);
            return;
        }
        if (c->ws != c->worker->cur && gh_conn_take_current(c) < 0) {
            /* Its listener is gone from the config: a request already on
             * its way is still served, on the old view, and the
             * connection closes after it. */
            if (c->rlen == 0) {
                gh_conn_close(c);
                return;
            }
            c->retiring = 1;
        }
        const gh_listener_conf_t *l = gh_conn_lconf(c);
        if (c->rlen == 0) {
            if (c->peer_eof) {
                gh_conn_close(c);
                return;
            }
            if (!c->wpending)
                rbuf_give(c);
            gh_conn_arm_timer(c);
            gh_conn_update_reading(c);
            return;
        }
        gh_h1_request_t req;
        gh_h1_error_t err = {0, NULL};
        gh_h1_limits_t lim = {l->max_head, l->max_headers, l->max_uri};
        req.headers = c->worker->hdrs;
        int r = GH_H1_INCOMPLETE;
        if (head_worth_parsing(c, l))
            r = gh_h1_request_parse(c->rbuf, c->rlen, &lim, &req, &err);
        if (r == GH_H1_INCOMPLETE) {
            /* The parser saw it all: a blank line it did not take as a head
             * end (one before the request line) is not to be found again. */
            c->head_scanned = c->rlen;
            if (c->peer_eof) {
                gh_conn_close(c);
                return;
            }
            /* The header timeout runs from the first byte of the head and
             * is not extended by later bytes: a slowloris gains nothing. */
            if (!c->head_timer) {
                gh_conn_arm_timer(c);
                c->head_timer = 1;
            }
            gh_conn_update_reading(c);
            return;
        }
        if (r < 0) {
            GH_LOG(GH_LOG_DEBUG, "conn", "conn=%llu refused request: %d %s",
                   (unsigned long long)c->id, err.status, err.detail ? err.detail : "");
            reply_and_close(c, err.status ? err.status : 400, status_code_name(err.status),
                            err.detail ? err.detail : "malformed request");
            return;
        }
        c->head_timer = 0;
        c->head_scanned = 0;
        if (c->retiring)
            req.keep_alive = 0;
        gh_stream_t *s = gh_stream_new(c, &req, (size_t)r);
        if (s == NULL) {
            reply_and_close(c, 503, "service_unavailable", "out of memory");
            return;
        }
        c->state = GH_CONN_STREAM;
        c->stream = s;
        c->served = 1;
        gh_conn_arm_timer(c);
        gh_stream_run_request(s);
        return;
    }
    if (c->state == GH_CONN_STREAM && c->stream != NULL)
        gh_stream_pump_request(c->stream);
}

static void conn_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    gh_conn_t *c = h->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        c->peer_eof = 1;
        gh_conn_update_reading(c);
        if (c->state == GH_CONN_STREAM && c->stream != NULL) {
            gh_stream_client_eof(c->stream, (int)nread);
            return;
        }
        if (c->state == GH_CONN_HEAD && c->rlen > 0) {
            gh_conn_process(c); /* parse what is there; a complete head is still served */
            return;
        }
        gh_conn_close(c);
        return;
    }
    c->rlen += (size_t)nread;
    if (c->state == GH_CONN_STREAM)
        gh_conn_arm_timer(c);
    if (c->rlen == c->rcap)
        gh_conn_update_reading(c);
    gh_conn_process(c);
}

/* Write requests live only while a write is in flight: an idle
 * connection does not carry them. */
static uv_write_t *wreq_take(gh_worker_t *w)
{
    if (w->num_wreq_free > 0)
        return w->wreq_free[--w->num_wreq_free];
    return malloc(sizeof(uv_write_t));
}

static void wreq_give(gh_worker_t *w, uv_write_t *req)
{
    if (w->num_wreq_free < sizeof(w->wreq_free) / sizeof(w->wreq_free[0]))
        w->wreq_free[w->num_wreq_free++] = req;
    else
        free(req);
}

static void aside_written(uv_write_t *req, int status)
{
    gh_conn_t *c = req->data;
    (void)status; /* a failure shows up on the response write too */
    wreq_give(c->worker, req);
}

int gh_conn_write_aside(gh_conn_t *c, uv_buf_t *bufs, unsigned nbufs)
{
    uv_write_t *req = wreq_take(c->worker);
    if (req == NULL)
        return -1;
    req->data = c;
    if (uv_write(req, (uv_stream_t *)&c->tcp, bufs, nbufs, aside_written) < 0) {
        wreq_give(c->worker, req);
        return -1;
    }
    return 0;
}

static void conn_on_write(uv_write_t *req, int status)
{
    gh_conn_t *c = req->data;
    wreq_give(c->worker, req);
    c->wpending = 0;
    free(c->wbuf);
    c->wbuf = NULL;
    if (status < 0) {
        gh_conn_close(c);
        return;
    }
    if (c->state == GH_CONN_CLOSING) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            linger_close(c);
        return;
    }
    if (c->stream != NULL)
        gh_stream_client_wrote(c->stream);
}

void gh_conn_write(gh_conn_t *c, uv_buf_t *bufs, unsigned nbufs)
{
    if (c->stream != NULL)
        for (unsigned i = 0; i < nbufs; i++)
            c->stream->bytes_out += bufs[i].len;
    uv_write_t *req = wreq_take(c->worker);
    int r = UV_ENOMEM;
    if (req != NULL) {
        req->data = c;
        c->wpending = 1;
        r = gh_sockwrite(req, (uv_stream_t *)&c->tcp, bufs, nbufs, conn_on_write);
    }
    if (r < 0) {
        if (req != NULL)
            wreq_give(c->worker, req);
        c->wpending = 0;
        free(c->wbuf);
        c->wbuf = NULL;
        gh_conn_close(c);
    }
}

/* A finished exchange that did not keep the connection alive. */
void gh_conn_finish(gh_conn_t *c)
{
    if (c->peer_eof)
        gh_conn_close(c);
    else
        linger_close(c);
}

/* The client's address: as text in c->peer, and in ss (zeroed family
 * when unknown). */
static void peer_text(gh_conn_t *c, struct sockaddr_storage *ss_out)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    c->peer[0] = '\0';
    memset(ss_out, 0, sizeof(*ss_out));
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    *ss_out = ss;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer, sizeof(c->peer));
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->peer, sizeof(c->peer));
}

static size_t rbuf_size(const gh_listener_conf_t *l)
{
    /* The read buffer holds a whole head plus room to see that it is too
     * long, and is the unit of body streaming. */
    size_t cap = l->max_head + 4096;
    return cap < RBUF_STD ? RBUF_STD : cap;
}

/* Moves an idle connection (between requests) to the worker's current
 * snapshot, so a keep-alive connection's next request sees a reload.
 * Returns -1 when its listener is gone from the new config: the caller
 * closes it. */
int gh_conn_take_current(gh_conn_t *c)
{
    gh_wsnap_t *cur = c->worker->cur;
    const gh_listener_conf_t *old = gh_conn_lconf(c);
    const gh_config_t *cfg = cur->snap->cfg;
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        const gh_listener_conf_t *l = &cfg->listeners[i];
        if (l->addrlen != old->addrlen || memcmp(&l->addr, &old->addr, l->addrlen) != 0)
            continue;
        size_t cap = rbuf_size(l);
        if (cap > c->rcap) {
            if (c->rbuf != NULL) {
                char *nb = c->rcap == RBUF_STD ? malloc(cap) : realloc(c->rbuf, cap);
                if (nb == NULL)
                    return -1;
                if (c->rcap == RBUF_STD) {
                    memcpy(nb, c->rbuf, c->rlen);
                    free(c->rbuf);
                }
                c->rbuf = nb;
            }
            c->rcap = cap;
        }
        gh_wsnap_unref(c->ws);
        c->ws = gh_wsnap_ref(cur);
        c->li = i;
        return 0;
    }
    return -1;
}

/* ---- admission: what a listener takes on ----
 *
 * Over its max_connections a listener stops accepting: its connection
 * callback returns without uv_accept, so libuv keeps the one connection it
 * already took and stops watching the socket, and the kernel's backlog
 * holds the others, each served once a connection here closes. Refusing
 * them (accept and close) would only make clients retry into the same
 * wall. The same holds for the worker as a whole at its share of the
 * descriptor limit (snapshot conn_cap, fdlimit.c), on every listener.
 * A client address over max_connections_per_address is different:
 * the others must still get in, so that connection is accepted and closed.
 */

typedef struct gh_addr_count_s {
    struct gh_addr_count_s *next;
    uint32_t count;
    uint8_t len;
    unsigned char addr[16];
} gh_addr_count_t;

#define ADDR_BUCKETS 256

static const gh_listener_conf_t *listener_conf(const gh_listener_t *l)
{
    return &l->worker->cur->snap->cfg->listeners[l->li];
}

/* Over its share of RLIMIT_NOFILE (fdlimit.c) a worker stops accepting on
 * every listener, as at a listener's max_connections. */
static int worker_full(const gh_worker_t *w)
{
    uint32_t cap = w->cur->snap->conn_cap;
    return cap != 0 && w->num_conns >= cap;
}

static gh_listener_stats_t *listener_stats(const gh_listener_t *l)
{
    gh_worker_t *w = l->worker;
    return gh_metrics_listener(w->metrics, w->cur->snap->lids[l->li].listener_id);
}

static void accept_pause(gh_listener_t *l, int count)
{
    if (l->paused)
        return;
    l->paused = 1;
    l->worker->num_paused++;
    gh_listener_stats_t *st = listener_stats(l);
    if (count && st != NULL)
        GH_STAT_INC(st->accept_pauses);
}

static void count_refused(gh_listener_t *l)
{
    gh_listener_stats_t *st = listener_stats(l);
    if (st != NULL)
        GH_STAT_INC(st->conns_refused);
}

static void sink_closed(uv_handle_t *h)
{
    gh_worker_t *w = h->data;
    w->sink_busy = 0;
    gh_conn_resume_accepting(w);
}

/* Takes the pending connection into the worker's sink handle and closes
 * it: for when there is no memory for a gh_conn_t. Not accepting at all
 * would stop the listener for good (libuv watches it again only after a
 * uv_accept), so a passing allocation failure must not skip this. While
 * the sink is still closing the last one, the listener waits for it. */
static void accept_refuse(gh_listener_t *l)
{
    gh_worker_t *w = l->worker;
    if (w->sink_busy) {
        accept_pause(l, 0);
        return;
    }
    w->sink_busy = 1;
    uv_tcp_init(&w->loop, &w->sink);
    w->sink.data = w;
    if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&w->sink) == 0)
        count_refused(l);
    uv_close((uv_handle_t *)&w->sink, sink_closed);
}

/* What a client is counted by: its IPv4 address, or the /64 of its IPv6
 * address, since one subscriber commonly holds a whole /64 and could
 * otherwise use a fresh address per connection. Listeners are
 * IPV6_V6ONLY (cli/server.c), so IPv4-mapped addresses should not occur;
 * were they to, every IPv4 client would share the /64 ::ffff:0:0/64,
 * hence their IPv4 part is taken. */
static size_t addr_key(const struct sockaddr_storage *ss, const unsigned char **key)
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (ss->ss_family == AF_INET) {
        *key = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
        return 4;
    }
    if (ss->ss_family == AF_INET6) {
        const unsigned char *a =
            (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
            *key = a + 12;
            return 4;
        }
        *key = a;
        return 8;
    }
    return 0;
}

/* FNV-1a from a random start: an attacker who picks source addresses
 * (an IPv6 /64 is plenty) should not be able to pile them in one bucket. */
static size_t addr_hash(const gh_listener_t *l, const unsigned char *k, size_t n)
{
    uint32_t h = 2166136261u ^ l->addr_seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 16777619u;
    return h % ADDR_BUCKETS;
}

/* Counts c against its address. Returns -1 when the address is at the
 * limit (or the count cannot be kept: no memory), so c is to be refused. */
static int addr_admit(gh_listener_t *l, gh_conn_t *c, const struct sockaddr_storage *ss,
                      uint32_t limit)
{
    const unsigned char *k;
    size_t n = addr_key(ss, &k);
    if (n == 0)
        return 0; /* not an IP peer: nothing to count by */
    if (l->by_addr == NULL) {
        if ((l->by_addr = calloc(ADDR_BUCKETS, sizeof(*l->by_addr))) == NULL)
            return -1;
        l->addr_seed = (uint32_t)gh_rand(l->worker);
    }
    gh_addr_count_t **b = &l->by_addr[addr_hash(l, k, n)], *e;
    for (e = *b; e != NULL; e = e->next)
        if (e->len == n && memcmp(e->addr, k, n) == 0)
            break;
    if (e == NULL) {
        if ((e = calloc(1, sizeof(*e))) == NULL)
            return -1;
        e->len = (uint8_t)n;
        memcpy(e->addr, k, n);
        e->next = *b;
        *b = e;
    }
    if (e->count >= limit)
        return -1;
    e->count++;
    c->addr = e;
    return 0;
}

static void admission_release(gh_conn_t *c)
{
    gh_listener_t *l = c->lst;
    if (l == NULL)
        return;
    l->num_conns--;
    gh_addr_count_t *e = c->addr;
    c->lst = NULL;
    c->addr = NULL;
    if (e == NULL || --e->count > 0)
        return;
    for (gh_addr_count_t **pp = &l->by_addr[addr_hash(l, e->addr, e->len)]; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            free(e);
            return;
        }
    }
}

void gh_conn_resume_accepting(gh_worker_t *w)
{
    if (w->num_paused == 0 || w->stopping || w->cur == NULL)
        return;
    for (gh_listener_t *l = w->listeners; l != NULL; l = l->next) {
        if (!l->paused || l->num_conns >= listener_conf(l)->max_connections)
            continue;
        if (worker_full(w))
            return;
        l->paused = 0;
        w->num_paused--;
        gh_conn_accept(l); /* takes the connection libuv kept, and watches again */
    }
}

void gh_conn_listener_gone(gh_listener_t *l)
{
    gh_worker_t *w = l->worker;
    for (gh_conn_t *c = w->conns; c != NULL; c = c->next) {
        if (c->lst == l) {
            c->lst = NULL;
            c->addr = NULL;
        }
    }
    if (l->paused) {
        l->paused = 0;
        w->num_paused--;
    }
    if (l->by_addr != NULL) {
        for (size_t i = 0; i < ADDR_BUCKETS; i++) {
            while (l->by_addr[i] != NULL) {
                gh_addr_count_t *e = l->by_addr[i];
                l->by_addr[i] = e->next;
                free(e);
            }
        }
        free(l->by_addr);
        l->by_addr = NULL;
    }
    l->num_conns = 0;
}

void gh_conn_accept(gh_listener_t *l)
{
    gh_worker_t *w = l->worker;
    const gh_listener_conf_t *lc = listener_conf(l);
    if (l->num_conns >= lc->max_connections || worker_full(w)) {
        accept_pause(l, 1);
        return;
    }
    gh_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        accept_refuse(l);
        return;
    }
    c->ws = gh_wsnap_ref(w->cur);
    c->li = l->li;
    c->rcap = rbuf_size(gh_conn_lconf(c));
    c->worker = w;
    c->lstats = gh_metrics_listener(w->metrics, c->ws->snap->lids[c->li].listener_id);
    if (c->lstats != NULL) {
        GH_STAT_INC(c->lstats->conns_total);
        GH_STAT_INC(c->lstats->conns_active);
    }
    c->id = ++w->next_conn_id;
    c->tcp.data = c;
    uv_tcp_init(&w->loop, &c->tcp);
    c->handles_open = 1;
    w->num_conns++;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    c->lst = l;
    l->num_conns++;
    if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp) != 0) {
        gh_conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    peer_text(c, &ss);
    if (lc->max_conns_per_address > 0 && addr_admit(l, c, &ss, lc->max_conns_per_address) < 0) {
        GH_LOG(GH_LOG_DEBUG, "conn", "conn=%llu refused: %s is at max_connections_per_address",
               (unsigned long long)c->id, c->peer);
        count_refused(l);
        gh_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = GH_CONN_HEAD;
    c->keep_alive = 1;
    gh_conn_process(c);
}
