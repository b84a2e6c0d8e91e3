/*
 * Upstream connections and their per-worker, per-endpoint pools of idle
 * keep-alive connections. An idle connection keeps a read going so that an
 * upstream closing it (or sending stray bytes) is noticed and the
 * connection dropped before a request is put on it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gatehouse/log.h>

#include "proxy/proxy.h"

static void up_on_close(uv_handle_t *h)
{
    gh_upconn_t *u = h->data;
    gh_sockwrite_flush((uv_stream_t *)h);
    if (--u->handles_open > 0)
        return;
    if (u->counted)
        GH_STAT_DEC(u->stats->conns_active);
    if (u->tls != NULL)
        gh_uptls_free(u);
    free(u->rbuf);
    free(u);
}

static void unlink_idle(gh_upconn_t *u)
{
    gh_pool_t *p = u->pool;
    for (gh_upconn_t **pp = &p->idle; *pp != NULL; pp = &(*pp)->next_idle) {
        if (*pp == u) {
            *pp = u->next_idle;
            u->next_idle = NULL;
            gh_pool_idle_add(p, -1);
            return;
        }
    }
}

static void pool_kick_later(gh_pool_t *p);

void gh_upconn_close(gh_upconn_t *u)
{
    if (u->closing)
        return;
    u->closing = 1;
    u->stream = NULL;
    unlink_idle(u);
    gh_pool_t *p = u->pool;
    p->num_conns--;
    if (p->wait_head != NULL)
        pool_kick_later(p);
    gh_deadline_stop(&u->dl);
    if (u->tls != NULL)
        gh_uptls_close(u);
    uv_close((uv_handle_t *)&u->tcp, up_on_close);
}

static void up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    gh_upconn_t *u = h->data;
    (void)hint;
    *buf = uv_buf_init(u->rbuf + u->rlen, (unsigned)(u->rcap - u->rlen));
}

/* Whether an EOF libuv reported was a reset: libuv (1.44) reports EOF
 * without a read when epoll says POLLHUP after a partial read, which is
 * also what a reset right after data looks like; the socket's pending
 * error tells them apart. A close-delimited body must not end on a reset. */
static int eof_was_reset(gh_upconn_t *u)
{
    uv_os_fd_t fd;
    int err = 0;
    socklen_t len = sizeof(err);
    if (uv_fileno((const uv_handle_t *)&u->tcp, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return 0;
    return err != 0;
}

/* A read's bookkeeping, for the router and callouts alike: bytes
 * counted (reading stops when the buffer is full), or reading stopped at
 * the end or an error. */
static inline __attribute__((always_inline)) void took_read(gh_upconn_t *u, ssize_t nread)
{
    if (nread > 0) {
        u->heard = 1;
        u->rlen += (size_t)nread;
        if (u->rlen == u->rcap)
            gh_upconn_update_reading(u);
    } else {
        uv_read_stop((uv_stream_t *)&u->tcp);
        u->reading = 0;
    }
}

/* A callout's read: the same bookkeeping as the router's below. Out of
 * line: inlined, its frame (a stack protector) would cost up_on_read ten
 * instructions on every proxied read. */
__attribute__((noinline, cold)) static void callout_read(gh_upconn_t *u, ssize_t nread)
{
    if (nread == UV_EOF && eof_was_reset(u))
        nread = UV_ECONNRESET;
    took_read(u, nread);
    gh_callout_on_read(u->call, nread);
}

static void up_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    gh_upconn_t *u = h->data;
    (void)buf;
    if (nread == 0)
        return;
    if (u->stream == NULL) {
        if (u->call != NULL) {
            callout_read(u, nread);
            return;
        }
        /* Idle: the upstream closed, or sent bytes nobody asked for. */
        gh_upconn_close(u);
        return;
    }
    took_read(u, nread);
    if (nread == UV_EOF && eof_was_reset(u))
        nread = UV_ECONNRESET;
    gh_router_on_read(u->stream, nread);
}

/* up_on_read's dispatch for a transport's plaintext (uptls.c). */
void gh_upconn_deliver(gh_upconn_t *u, ssize_t nread)
{
    if (u->stream == NULL) {
        callout_read(u, nread);
        return;
    }
    took_read(u, nread);
    gh_router_on_read(u->stream, nread);
}

/* Reading stays on for the whole life of the connection, busy or idle,
 * and stops only when the buffer is full (back-pressure) or at EOF: each
 * stop and restart costs epoll_ctl calls, two or three per request. An
 * idle connection's read callback treats any event as the end of it. */
void gh_upconn_update_reading(gh_upconn_t *u)
{
    gh_stream_t *s = u->stream;
    int want = u->connected && !u->closing && u->rlen < u->rcap && (s == NULL || !s->up_eof);
    if (want && !u->reading) {
        /* Only here, where reading restarts: a TLS connection's plaintext
         * held back while rbuf was full is served then (uptls.c). */
        if (u->is_tls) {
            gh_uptls_resume(u);
            return;
        }
        if (uv_read_start((uv_stream_t *)&u->tcp, up_alloc, up_on_read) == 0)
            u->reading = 1;
    } else if (!want && u->reading) {
        uv_read_stop((uv_stream_t *)&u->tcp);
        u->reading = 0;
    }
}

#define UP_OF(d) ((gh_upconn_t *)((char *)(d)-offsetof(gh_upconn_t, dl)))

static void up_on_timer(gh_deadline_t *d)
{
    gh_upconn_t *u = UP_OF(d);
    if (u->stream == NULL) {
        if (u->call != NULL)
            gh_callout_on_timer(u->call); /* its connect timeout */
        else
            gh_upconn_close(u); /* idle timeout */
        return;
    }
    if (!u->connected)
        gh_router_connected(u->stream, UV_ETIMEDOUT);
    else
        gh_router_timeout(u->stream);
}

void gh_upconn_connected(gh_upconn_t *u, int status)
{
    gh_deadline_stop(&u->dl);
    if (u->stream == NULL) {
        if (u->call != NULL) {
            if (status == 0) {
                u->connected = 1;
                uv_tcp_nodelay(&u->tcp, 1);
            }
            gh_callout_on_connect(u->call, status);
            return;
        }
        gh_upconn_close(u);
        return;
    }
    if (status == 0) {
        u->connected = 1;
        uv_tcp_nodelay(&u->tcp, 1);
    }
    gh_router_connected(u->stream, status);
}

static void up_on_connect(uv_connect_t *req, int status)
{
    gh_upconn_t *u = req->data;
    if (u->closing)
        return;
    /* TLS: the handshake comes first, still under connect_timeout. */
    if (status == 0 && u->is_tls) {
        uv_tcp_nodelay(&u->tcp, 1);
        gh_uptls_start(u);
        return;
    }
    gh_upconn_connected(u, status);
}

const char *gh_upconn_why(const gh_upconn_t *u, int status)
{
    if (u != NULL && u->tls != NULL) {
        const char *why = gh_uptls_why(u);
        if (why != NULL)
            return why;
    }
    return uv_strerror(status);
}

/* Whether an idle pooled connection is still open, asked of the kernel:
 * the upstream's close may have arrived in this very loop turn, before
 * the idle read callback could see it. A request that cannot be sent twice
 * then goes to another connection instead of dying on this one. Bytes are
 * only peeked at; any (stray bytes, EOF, an error) means the connection is
 * done. */
static int idle_is_open(gh_upconn_t *u)
{
    uv_os_fd_t fd;
    char b;
    if (uv_fileno((const uv_handle_t *)&u->tcp, &fd) != 0)
        return 0;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static gh_upconn_t *take_idle(gh_pool_t *p, unsigned flags)
{
    while (p->idle != NULL) {
        gh_upconn_t *u = p->idle;
        p->idle = u->next_idle;
        u->next_idle = NULL;
        gh_pool_idle_add(p, -1);
        if ((flags & GH_UPCONN_CHECK) && !idle_is_open(u)) {
            gh_upconn_close(u);
            continue;
        }
        gh_deadline_stop(&u->dl);
        u->reused = 1;
        u->wrote = 0;
        u->heard = 0;
        u->probe = 0;
        return u;
    }
    return NULL;
}

gh_upconn_t *gh_upconn_get(gh_pool_t *p, unsigned flags, int *err)
{
    gh_upconn_t *u;
    if (!(flags & GH_UPCONN_FRESH) && (u = take_idle(p, flags)) != NULL)
        return u;
    /* At the cap, an idle connection makes room for the fresh one asked
     * for (a retry does not reuse a pooled connection). */
    if (p->num_conns >= p->cluster->max_connections && p->idle != NULL)
        gh_upconn_close(p->idle);
    if (p->num_conns >= p->cluster->max_connections) {
        *err = UV_EBUSY;
        return NULL;
    }
    u = calloc(1, sizeof(*u));
    if (u == NULL) {
        *err = UV_ENOMEM;
        return NULL;
    }
    const gh_cluster_t *c = p->cluster;
    size_t cap = c->max_response_head + 4096;
    if (cap < 65536)
        cap = 65536;
    u->rbuf = malloc(cap);
    if (u->rbuf == NULL) {
        free(u);
        *err = UV_ENOMEM;
        return NULL;
    }
    u->rcap = cap;
    u->pool = p;
    p->num_conns++;
    if (p->stats != NULL) {
        /* The stats entry outlives the pool (shards live until exit), so
         * the close callback may use it after a reload freed the pool. */
        u->stats = p->stats;
        u->counted = 1;
        GH_STAT_INC(p->stats->conns_total);
        GH_STAT_INC(p->stats->conns_active);
    }
    u->is_tls = c->tls != NULL;
    u->tcp.data = u;
    u->creq.data = u;
    uv_tcp_init(&p->worker->loop, &u->tcp);
    u->handles_open = 1;
    int r = uv_tcp_connect(&u->creq, &u->tcp, (const struct sockaddr *)&p->ep->addr, up_on_connect);
    if (r < 0) {
        *err = r;
        gh_upconn_close(u);
        return NULL;
    }
    gh_deadline_start(&p->worker->deadlines, &u->dl, c->connect_timeout_ms, up_on_timer);
    return u;
}

void gh_upconn_release(gh_upconn_t *u, int reusable)
{
    gh_pool_t *p = u->pool;
    u->stream = NULL;
    if (u->closing)
        return;
    /* A pool of a view that a reload replaced keeps no idle connections:
     * the view goes once its last stream ends. */
    if (!reusable || u->wpending || u->tls_dirty || p->num_idle >= p->cluster->max_idle ||
        p->worker->stopping || p->ws != p->worker->cur) {
        gh_upconn_close(u);
        return;
    }
    gh_deadline_stop(&u->dl);
    u->rlen = 0;
    u->next_idle = p->idle;
    p->idle = u;
    gh_pool_idle_add(p, 1);
    gh_upconn_update_reading(u);
    gh_deadline_start(&p->worker->deadlines, &u->dl, p->cluster->idle_timeout_ms, up_on_timer);
    if (p->wait_head != NULL)
        pool_kick_later(p);
}

void gh_upconn_wrote(gh_upconn_t *u, int status)
{
    u->wpending = 0;
    if (u->stream == NULL) {
        if (u->call != NULL)
            gh_callout_on_write(u->call, status);
        return;
    }
    gh_router_wrote(u->stream, status);
}

static void up_on_write(uv_write_t *req, int status)
{
    gh_upconn_wrote(req->data, status);
}

int gh_upconn_send(gh_upconn_t *u, uv_buf_t *bufs, unsigned nbufs)
{
    u->wreq.data = u;
    u->wpending = 1;
    int r = u->is_tls ? gh_uptls_write(u, bufs, nbufs)
                      : gh_sockwrite(&u->wreq, (uv_stream_t *)&u->tcp, bufs, nbufs, up_on_write);
    if (r < 0) {
        u->wpending = 0;
        return r;
    }
    u->wrote = 1;
    return 0;
}

/* Writes (part of) the request. Every write has a deadline of the
 * listener's body_timeout: an upstream that stops reading the request is
 * found out (504) instead of holding both connections. With u->probe set,
 * the first write starts with uv_try_write, whose answer says exactly
 * whether any byte left: uv_write's callback cannot tell a write that
 * failed at once from one that failed half way. */
/* The router's write on a TLS connection: no probe (the record layer
 * cannot say which bytes left), so a byte may have left. */
__attribute__((noinline, cold)) static void tls_write(gh_upconn_t *u, uv_buf_t *bufs,
                                                      unsigned nbufs)
{
    u->wpending = 1;
    int r = gh_uptls_write(u, bufs, nbufs);
    if (r < 0) {
        u->wpending = 0;
        gh_router_wrote(u->stream, r);
        return;
    }
    u->wrote = 1;
    gh_upconn_arm_timer(u, u->stream->lconf->body_timeout_ms);
}

void gh_upconn_write(gh_upconn_t *u, uv_buf_t *bufs, unsigned nbufs)
{
    if (u->is_tls) {
        tls_write(u, bufs, nbufs);
        return;
    }
    u->wreq.data = u;
    if (u->probe && !u->wrote) {
        int n = uv_try_write((uv_stream_t *)&u->tcp, bufs, nbufs);
        if (n < 0 && n != UV_EAGAIN) {
            gh_router_wrote(u->stream, n); /* not a byte was sent */
            return;
        }
        if (n > 0) {
            u->wrote = 1;
            /* All of it may have left (nbufs 0): the completion callback
             * still comes, so that the caller sees one way of finishing. */
            nbufs = gh_sockwrite_advance(&bufs, nbufs, (size_t)n);
        }
    }
    u->wpending = 1;
    int r = gh_sockwrite(&u->wreq, (uv_stream_t *)&u->tcp, bufs, nbufs, up_on_write);
    if (r < 0) {
        u->wpending = 0;
        gh_router_wrote(u->stream, r);
        return;
    }
    u->wrote = 1;
    gh_upconn_arm_timer(u, u->stream->lconf->body_timeout_ms);
}

void gh_upconn_arm_timer(gh_upconn_t *u, uint64_t ms)
{
    gh_deadline_start(&u->pool->worker->deadlines, &u->dl, ms, up_on_timer);
}

void gh_upconn_stop_timer(gh_upconn_t *u)
{
    gh_deadline_stop(&u->dl);
}

void gh_pool_dispose(gh_pool_t *p)
{
    gh_deadline_stop(&p->kick);
    while (p->idle != NULL)
        gh_upconn_close(p->idle);
    gh_deadline_stop(&p->kick);
    gh_uptls_pool_dispose(p);
}

/* ---- requests waiting for a connection ----
 *
 * A pool holds at most the cluster's max_connections connections; a
 * request that finds them all busy waits here, first come first served, up
 * to max_pending of them, each until the cluster's connect_timeout. A
 * connection released or closed hands its place on: the waiters are served
 * on the next loop turn (a deadline of 0 ms), not from inside the release,
 * which runs in the middle of another stream's end. */

int gh_pool_has_room(const gh_pool_t *p)
{
    /* An idle connection is room also for a fresh one: it is closed to
     * make the place (gh_upconn_get). */
    return p->wait_head == NULL && (p->idle != NULL || p->num_conns < p->cluster->max_connections);
}

#define POOL_OF_KICK(d) ((gh_pool_t *)((char *)(d)-offsetof(gh_pool_t, kick)))
#define STREAM_OF_WAIT(d) ((gh_stream_t *)((char *)(d)-offsetof(gh_stream_t, wait_dl)))

static void pool_kick(gh_deadline_t *d)
{
    gh_pool_t *p = POOL_OF_KICK(d);
    /* A dispatched stream may end at once and drop the last reference to
     * the view that owns this pool. */
    gh_wsnap_t *ws = gh_wsnap_ref(p->ws);
    while (p->wait_head != NULL) {
        gh_stream_t *s = p->wait_head;
        if (!s->res_started && p->idle == NULL && p->num_conns >= p->cluster->max_connections)
            break;
        gh_pool_unwait(s);
        if (!s->res_started) /* else it answered meanwhile (a client timeout) */
            gh_router_dispatch(s);
    }
    gh_wsnap_unref(ws);
}

static void pool_kick_later(gh_pool_t *p)
{
    if (!gh_deadline_is_active(&p->kick))
        gh_deadline_start(&p->worker->deadlines, &p->kick, 0, pool_kick);
}

static void wait_expired(gh_deadline_t *d)
{
    gh_stream_t *s = STREAM_OF_WAIT(d);
    gh_pool_unwait(s);
    if (!s->res_started)
        gh_router_wait_expired(s);
}

int gh_pool_wait(gh_pool_t *p, gh_stream_t *s, int fresh)
{
    if (p->num_waiting >= p->cluster->max_pending)
        return -1;
    s->wait_pool = p;
    s->wait_fresh = fresh != 0;
    s->wait_next = NULL;
    s->wait_prev = p->wait_tail;
    if (p->wait_tail != NULL)
        p->wait_tail->wait_next = s;
    else
        p->wait_head = s;
    p->wait_tail = s;
    p->num_waiting++;
    if (p->stats != NULL)
        GH_STAT_INC(p->stats->pending);
    gh_deadline_start(&p->worker->deadlines, &s->wait_dl, p->cluster->connect_timeout_ms,
                      wait_expired);
    return 0;
}

void gh_pool_unwait(gh_stream_t *s)
{
    gh_pool_t *p = s->wait_pool;
    if (p == NULL)
        return;
    if (s->wait_prev != NULL)
        s->wait_prev->wait_next = s->wait_next;
    else
        p->wait_head = s->wait_next;
    if (s->wait_next != NULL)
        s->wait_next->wait_prev = s->wait_prev;
    else
        p->wait_tail = s->wait_prev;
    s->wait_next = s->wait_prev = NULL;
    s->wait_pool = NULL;
    p->num_waiting--;
    if (p->stats != NULL)
        GH_STAT_DEC(p->stats->pending);
    gh_deadline_stop(&s->wait_dl);
}
