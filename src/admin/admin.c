/*
 * Admin API server: a small HTTP/1.1 server on the main thread, on the same
 * strict parser as the data plane. Answers are built whole, so a connection
 * reads one request, writes one answer, and goes on with the next
 * (keep-alive) or closes.
 *
 * Only the /apikeys operations that take one read a request body
 * (admin/apikeys.c says which), and only one framed by Content-Length:
 * its size is checked against the bound before a byte of it is read, and
 * exactly that many bytes are read into a buffer of that size, so a body
 * never becomes a second request. Chunked bodies are answered 411 (send
 * Content-Length); any other request with a body is refused. A refused
 * body is never read as requests: the connection is closed after the
 * answer, lingering (shut down, then read and dropped for a bounded time)
 * so that the answer is not lost to a reset.
 */
#include <gatehouse/admin.h>

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <gatehouse/h1.h>
#include <gatehouse/log.h>
#include <gatehouse/metrics.h>

#include "admin/apikeys.h"
#include "admin/clients.h"
#include "admin/issuer_keys.h"
#include "proxy/fdlimit.h"
#include "proxy/proxy.h"

#define ADMIN_RBUF 16384
#define ADMIN_MAX_HEADERS 64
#define ADMIN_IDLE_MS 30000
/* A request head must be complete this long after its first byte (or after
 * the accept); bytes that trickle in do not extend it (slowloris). */
#define ADMIN_HEAD_MS 5000
/* An answer must be taken by the peer this long after it was queued; a
 * peer that pipelines requests and never reads is closed, not waited on. */
#define ADMIN_WRITE_MS 5000
/* Open admin connections. At the cap a new connection evicts the oldest
 * one, whatever it is doing, so a probe always gets in. */
#define ADMIN_MAX_CONNS 64
/* While the reserve cannot be taken back, accepting waits and this timer
 * tries again: short, since a probe's own timeout is often a second. */
#define ADMIN_RESERVE_RETRY_MS 100
/* A request body: a peer that sends no byte of it for this long is closed
 * (a stall), and the whole body must be in this long after its head. */
#define ADMIN_BODY_IDLE_MS 5000
#define ADMIN_BODY_MS 60000
/* A connection closed after an answer it may not have read all of (a
 * refused body, a malformed request) is drained this long at most. */
#define ADMIN_LINGER_MS 2000

typedef struct admin_conn_s admin_conn_t;

enum {
    DL_FRESH = 0, /* accepted, nothing armed yet */
    DL_ANSWERED,  /* a request was answered, nothing armed yet */
    DL_IDLE,      /* waiting for the next request */
    DL_HEAD,      /* a head has started (or the connection is fresh) */
    DL_WRITE,     /* an answer is being written; nothing more is read */
    DL_BODY,      /* a request body is being read */
    DL_LINGER,    /* shut down after the last answer; what arrives is dropped */
};

struct gh_admin_s {
    /* The listener is a raw socket polled by libuv rather than a uv_tcp_t:
     * libuv answers EMFILE by accepting and closing whatever is pending,
     * which would drop the very probe that asks whether the process is
     * alive. Here a descriptor held in reserve is given up to accept it. */
    uv_poll_t poll;
    int lfd;
    int reserve_fd; /* /dev/null, or -1 while lent to a connection */
    int polling;
    uv_timer_t retry;             /* reopens the reserve while accepting is paused */
    struct sockaddr_storage addr; /* what the listener is bound to */
    socklen_t addrlen;
    gh_admin_hooks_t hooks;
    char *token;
    uint64_t max_import_body;
    int importing;       /* a CSV import body is being read (one at a time) */
    admin_conn_t *conns; /* newest first */
    unsigned num_conns;
    int stopping;
    unsigned open_handles;
};

struct admin_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_write_t creq;    /* 100 Continue */
    uv_shutdown_t sreq; /* lingering close */
    gh_admin_t *admin;
    admin_conn_t *prev, *next;
    char rbuf[ADMIN_RBUF];
    size_t rlen;
    char *wbuf; /* the answer being written (wlen bytes); it may hold a new key */
    size_t wlen;
    /* The body of the request being read: body_len bytes (its
     * Content-Length) into body; its head stays at rbuf[0..head_len). */
    char *body;
    size_t body_len, body_got, head_len;
    uint64_t body_until;       /* uv_now by which the whole body must be in */
    int importing;             /* this body is the CSV import (admin->importing) */
    gh_store_t *store;         /* held for the /apikeys or /clients request being read */
    gh_admin_ak_route_t route; /* its body and head rules (for /clients too) */
    int clients;               /* a /clients request: croute says which */
    gh_admin_cl_route_t croute;
    int ik; /* the body being read is an /issuer/keys request's */
    gh_admin_ik_route_t ik_route;
    int close_after;
    int linger; /* close_after with bytes maybe unread: drain before closing */
    int lingering;
    int closing;
    int deadline;   /* DL_*: which deadline runs; reads do not move it */
    int on_reserve; /* accepted with the reserved descriptor: one answer, then close */
    unsigned handles;
};

static void admin_maybe_free(gh_admin_t *a)
{
    if (a->stopping && a->open_handles == 0 && a->conns == NULL) {
        free(a->token);
        free(a);
    }
}

static void on_listener_readable(uv_poll_t *p, int status, int events);

/* With gh_fdlimit_lock held. */
static void reserve_take(gh_admin_t *a)
{
    if (a->reserve_fd < 0)
        a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Accepting resumes once a descriptor is in reserve again. */
static void accepting_resume(gh_admin_t *a)
{
    if (a->stopping || a->polling)
        return;
    gh_fdlimit_lock();
    reserve_take(a);
    gh_fdlimit_unlock();
    if (a->reserve_fd < 0)
        return; /* the retry timer tries again */
    uv_timer_stop(&a->retry);
    uv_poll_start(&a->poll, UV_READABLE, on_listener_readable);
    a->polling = 1;
}

static void on_retry(uv_timer_t *t)
{
    accepting_resume(t->data);
}

/* An answer's buffer is wiped before it is freed: the answer of a create
 * or a rotate holds the key, which is shown once and kept nowhere. */
static void wbuf_free(admin_conn_t *c)
{
    if (c->wbuf != NULL) {
        OPENSSL_cleanse(c->wbuf, c->wlen);
        free(c->wbuf);
    }
    c->wbuf = NULL;
    c->wlen = 0;
}

/* Drops the body buffer (it may hold keys: an import's CSV) and the store
 * reference of the request being read. */
static void body_release(admin_conn_t *c)
{
    if (c->body != NULL) {
        OPENSSL_cleanse(c->body, c->body_len);
        free(c->body);
        c->body = NULL;
    }
    if (c->importing) {
        c->importing = 0;
        c->admin->importing = 0;
    }
    if (c->store != NULL)
        gh_store_unref(c->store);
    c->store = NULL;
    c->ik = 0;
    c->body_len = c->body_got = c->head_len = 0;
}

static void conn_closed(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    gh_admin_t *a = c->admin;
    body_release(c);
    OPENSSL_cleanse(c->rbuf, sizeof(c->rbuf));
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->num_conns--;
    wbuf_free(c);
    free(c);
    accepting_resume(a);
    admin_maybe_free(a);
}

static void conn_close(admin_conn_t *c)
{
    gh_admin_t *a = c->admin;
    if (c->closing)
        return;
    c->closing = 1;
    /* uv_close closes the descriptor at once. While the reserve is out (this
     * connection may hold its descriptor), the one given back goes straight
     * into the reserve, under the lock: a worker must not take it between
     * the two (fdlimit.c). */
    int refill = a->reserve_fd < 0 && !a->stopping;
    if (refill)
        gh_fdlimit_lock();
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    if (refill) {
        reserve_take(a);
        gh_fdlimit_unlock();
    }
    uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void process(admin_conn_t *c);
static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void on_deadline(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    admin_conn_t *c = req->data;
    if (status < 0)
        conn_close(c);
}

/* After the last answer of a connection whose peer may still be sending
 * (a refused body, a malformed request): closing with unread bytes would
 * send a reset, and a peer's stack may then drop the answer before its
 * application read it. So: FIN, then read and drop until the peer closes
 * or ADMIN_LINGER_MS pass. Nothing read now is ever parsed. */
static void linger_start(admin_conn_t *c)
{
    c->lingering = 1;
    c->rlen = 0;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_deadline, ADMIN_LINGER_MS, 0);
    c->deadline = DL_LINGER;
}

static void on_write(uv_write_t *req, int status)
{
    admin_conn_t *c = req->data;
    wbuf_free(c);
    uv_timer_stop(&c->timer);
    c->deadline = DL_ANSWERED;
    if (status < 0 || (c->close_after && !c->linger)) {
        conn_close(c);
        return;
    }
    if (c->close_after) {
        linger_start(c);
        return;
    }
    process(c);
}

static void respond(admin_conn_t *c, int status, const char *reason, const char *ctype,
                    const char *extra, const char *body, size_t blen, int head_only)
{
    size_t cap = blen + 512;
    char *buf = malloc(cap);
    if (buf == NULL) {
        conn_close(c);
        return;
    }
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
                     "cache-control: no-store\r\n%s%s\r\n",
                     status, reason, ctype, blen, extra ? extra : "",
                     c->close_after ? "connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= cap - blen) {
        free(buf);
        conn_close(c);
        return;
    }
    if (!head_only && blen > 0)
        memcpy(buf + n, body, blen);
    size_t len = (size_t)n + (head_only ? 0 : blen);
    /* One answer at a time: reading resumes only once it is written
     * (process() stopped reading), so output never piles up. */
    uv_timer_start(&c->timer, on_deadline, ADMIN_WRITE_MS, 0);
    c->deadline = DL_WRITE;
    c->wbuf = buf;
    c->wlen = len;
    c->wreq.data = c;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        wbuf_free(c);
        conn_close(c);
    }
}

static void respond_json(admin_conn_t *c, int status, const char *reason, const char *json,
                         const char *extra, int head_only)
{
    respond(c, status, reason, "application/json", extra, json, strlen(json), head_only);
}

/* Compares in time independent of where the strings differ, so the token
 * cannot be guessed a byte at a time from response times. */
static int token_equal(const char *want, const char *got, size_t got_len)
{
    size_t wl = strlen(want);
    unsigned char d = (unsigned char)(wl != got_len);
    for (size_t i = 0; i < wl; i++)
        d |= (unsigned char)(want[i] ^ (i < got_len ? got[i] : 0));
    return d == 0;
}

static int authorized(const gh_admin_t *a, const gh_h1_request_t *req)
{
    if (a->token == NULL)
        return 1;
    for (size_t i = 0; i < req->num_headers; i++) {
        const gh_h1_header_t *h = &req->headers[i];
        if (!GH_H1_NAME_IS(h, "authorization"))
            continue;
        if (h->value_len < 7 || strncasecmp(h->value, "bearer ", 7) != 0)
            return 0;
        const char *t = h->value + 7;
        size_t tl = h->value_len - 7;
        while (tl > 0 && *t == ' ') {
            t++;
            tl--;
        }
        return token_equal(a->token, t, tl);
    }
    return 0;
}

/* The ready hook's reasons, one per line, as a JSON array (a new
 * reference, NULL when out of memory). */
static json_t *reasons_array(const char *why)
{
    json_t *a = json_array();
    while (a != NULL) {
        size_t n = strcspn(why, "\n");
        if (json_array_append_new(a, json_stringn(why, n)) < 0) {
            json_decref(a);
            return NULL;
        }
        if (why[n] == '\0')
            break;
        why += n + 1;
    }
    return a;
}

static int path_is(const gh_h1_request_t *req, const char *p)
{
    size_t n = strlen(p), tl = req->target_len;
    const char *q = memchr(req->target, '?', tl);
    if (q != NULL)
        tl = (size_t)(q - req->target);
    return tl == n && memcmp(req->target, p, n) == 0;
}

/* The request's one Content-Type value: 1 and *v, 0 none, -1 two. */
static int content_type(const gh_h1_request_t *req, const char **v, size_t *n)
{
    int found = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const gh_h1_header_t *h = &req->headers[i];
        if (!GH_H1_NAME_IS(h, "content-type"))
            continue;
        if (found++)
            return -1;
        *v = h->value;
        *n = h->value_len;
    }
    return found;
}

/* An answer from apikeys.c (taken); NULL body: out of memory, close. */
static void respond_reply(admin_conn_t *c, gh_admin_reply_t *r, int head_only)
{
    if (r->body == NULL) {
        conn_close(c);
        return;
    }
    respond(c, r->status, gh_status_reason(r->status), "application/json",
            r->extra[0] ? r->extra : NULL, r->body, r->len, head_only);
    gh_admin_reply_dispose(r);
}

/* Drops the first n bytes of rbuf: a request answered (the answer is a
 * copy). */
static void consume(admin_conn_t *c, size_t n)
{
    memmove(c->rbuf, c->rbuf + n, c->rlen - n);
    c->rlen -= n;
}

/* Runs the /apikeys request whose head is req and whose whole body is
 * body[0..blen), with the store held in c->store; releases both. */
static void apikeys_run(admin_conn_t *c, const gh_h1_request_t *req, const char *body, size_t blen)
{
    const char *q = memchr(req->target, '?', req->target_len);
    size_t qlen = q ? req->target_len - (size_t)(q - req->target) - 1 : 0;
    gh_admin_reply_t r;
    if (c->clients)
        gh_admin_cl_handle(c->store, &c->croute, q ? q + 1 : "", qlen, body, blen,
                           (int64_t)time(NULL), &r);
    else
        gh_admin_ak_handle(c->store, &c->route, q ? q + 1 : "", qlen, body, blen,
                           (int64_t)time(NULL), &r);
    respond_reply(c, &r, c->route.head);
}

static void body_deadline(admin_conn_t *c)
{
    uint64_t now = uv_now(c->tcp.loop);
    if (now >= c->body_until) {
        conn_close(c);
        return;
    }
    uint64_t left = c->body_until - now;
    uv_timer_start(&c->timer, on_deadline, left < ADMIN_BODY_IDLE_MS ? left : ADMIN_BODY_IDLE_MS,
                   0);
}

static void on_continue(uv_write_t *req, int status)
{
    if (status < 0)
        conn_close(req->data);
}

/* Reads the rest of a request body of len bytes, avail of which came with
 * its head (head_len bytes at rbuf); body_done runs once it is in. -1 when
 * out of memory (nothing started). */
static int body_read_start(admin_conn_t *c, const gh_h1_request_t *req, size_t head_len, size_t len,
                           size_t avail)
{
    gh_admin_t *a = c->admin;
    /* The rest of the body is read into a buffer of exactly its size: the
     * reads stop at its end, so the next request's bytes stay unread. The
     * head stays where it is, and is parsed again when the body is in. */
    c->body = malloc(len);
    if (c->body == NULL)
        return -1;
    memcpy(c->body, c->rbuf + head_len, avail);
    OPENSSL_cleanse(c->rbuf + head_len, avail);
    c->body_len = len;
    c->body_got = avail;
    c->head_len = head_len;
    c->rlen = head_len;
    if (!c->ik && c->route.body == GH_AK_BODY_CSV) {
        c->importing = 1;
        a->importing = 1;
    }
    /* RFC 9110 section 10.1.1: an HTTP/1.0 client's expectation is
     * ignored; otherwise the client waits for this before sending. */
    if (req->expect_continue && req->minor_version == 1) {
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init(cont, sizeof(cont) - 1);
        c->creq.data = c;
        if (uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1, on_continue) != 0) {
            conn_close(c);
            return 0;
        }
    }
    c->body_until = uv_now(c->tcp.loop) + ADMIN_BODY_MS;
    c->deadline = DL_BODY;
    body_deadline(c);
    if (!c->closing && uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) != 0)
        conn_close(c);
    return 0;
}

/* The /apikeys request with head req (head_len bytes at rbuf): every check
 * that can refuse it runs before a byte of its body is read, and a refused
 * body is never read: the connection closes after the answer. */
static void apikeys_start(admin_conn_t *c, const gh_h1_request_t *req, size_t head_len)
{
    gh_admin_t *a = c->admin;
    int has_body = req->body != GH_H1_BODY_NONE;
    const char *q = memchr(req->target, '?', req->target_len);
    size_t plen = q ? (size_t)(q - req->target) : req->target_len;
    const char *extra = NULL;
    int head_only = 0;
    gh_admin_reply_t r;
    memset(&r, 0, sizeof(r));
    /* Without a token any local user could mint keys through a loopback
     * admin API (/config and /metrics only show). */
    if (a->token == NULL) {
        gh_admin_reply_error(&r, 403, "forbidden",
                             "the API-key and client endpoints need an admin token: set "
                             "admin.token_file or admin.token_env");
        goto refused;
    }
    if (c->clients) {
        /* the client endpoints' rules of bodies are the JSON ones of /apikeys */
        if (gh_admin_cl_route(req->method, req->method_len, req->target, plen, &c->croute, &r) !=
            0) {
            head_only = c->croute.head;
            goto refused;
        }
        memset(&c->route, 0, sizeof(c->route));
        c->route.body = c->croute.body;
        c->route.head = c->croute.head;
    } else if (gh_admin_ak_route(req->method, req->method_len, req->target, plen, &c->route, &r) !=
               0) {
        goto refused;
    }
    head_only = c->route.head;
    if (has_body && c->route.body == GH_AK_BODY_NONE) {
        gh_admin_reply_error(&r, 400, "bad_request", "this admin request takes no body");
        goto refused;
    }
    /* Chunked is not read here: admin bodies come from scripts and curl,
     * which know their length, and with Content-Length the bound is
     * checked before the body is read. 411 tells the client what to send
     * instead (RFC 9110 section 15.5.12). */
    if (req->body == GH_H1_BODY_CHUNKED) {
        gh_admin_reply_error(&r, 411, "length_required",
                             "send the body with Content-Length (chunked bodies are not read "
                             "here)");
        goto refused;
    }
    uint64_t cap = c->route.body == GH_AK_BODY_CSV ? a->max_import_body : GH_ADMIN_JSON_BODY_MAX;
    uint64_t len = has_body ? req->content_length : 0;
    if (len > cap) {
        gh_admin_reply_error(&r, 413, "payload_too_large",
                             "the body is larger than %llu bytes (%s)", (unsigned long long)cap,
                             c->route.body == GH_AK_BODY_CSV ? "admin.max_import_body"
                                                             : "the bound of JSON bodies");
        goto refused;
    }
    if (len > 0) {
        const char *ct = NULL;
        size_t ctn = 0;
        if (content_type(req, &ct, &ctn) < 0) {
            gh_admin_reply_error(&r, 400, "bad_request", "two Content-Type fields");
            goto refused;
        }
        if (gh_admin_ak_check_type(&c->route, ct, ctn, &r) != 0)
            goto refused;
        if (c->route.body == GH_AK_BODY_CSV && a->importing) {
            gh_admin_reply_error(&r, 503, "service_unavailable",
                                 "another import is being received; try again when it is done");
            extra = "retry-after: 1\r\n";
            goto refused;
        }
    }
    char why[256] = "unknown reason";
    c->store = a->hooks.store ? a->hooks.store(a->hooks.arg, why, sizeof(why)) : NULL;
    if (c->store == NULL) {
        gh_admin_reply_error(&r, 503, "service_unavailable", "the key store is unavailable: %s",
                             why);
        goto refused;
    }
    size_t avail = c->rlen - head_len;
    if (len <= avail) {
        /* The whole body (or none) came with the head. */
        apikeys_run(c, req, c->rbuf + head_len, (size_t)len);
        OPENSSL_cleanse(c->rbuf + head_len, (size_t)len);
        body_release(c);
        consume(c, head_len + (size_t)len);
        return;
    }
    if (body_read_start(c, req, head_len, (size_t)len, avail) != 0) {
        body_release(c);
        gh_admin_reply_error(&r, 503, "service_unavailable", "out of memory");
        goto refused;
    }
    return;
refused:
    if (extra != NULL && r.body != NULL)
        snprintf(r.extra, sizeof(r.extra), "%s", extra);
    /* A body that was not read is not read now: close after the answer. */
    if (has_body)
        c->close_after = c->linger = 1;
    respond_reply(c, &r, head_only);
    consume(c, head_len);
}

/* The token issuer's key settings, or NULL with the answer in *r. */
static const gh_issuer_keys_conf_t *issuer_conf(admin_conn_t *c, gh_admin_reply_t *r)
{
    gh_admin_t *a = c->admin;
    char why[256] = "this gatehouse issues no tokens";
    const gh_issuer_keys_conf_t *conf =
        a->hooks.issuer_keys ? a->hooks.issuer_keys(a->hooks.arg, why, sizeof(why)) : NULL;
    if (conf == NULL)
        gh_admin_reply_error(r, 404, "not_found", "no issuer keys here: %s", why);
    return conf;
}

/* Runs the /issuer/keys request whose head is req and whose whole body is
 * body[0..blen). */
static void issuer_keys_run(admin_conn_t *c, const gh_h1_request_t *req, const char *body,
                            size_t blen)
{
    gh_admin_t *a = c->admin;
    const char *q = memchr(req->target, '?', req->target_len);
    size_t qlen = q ? req->target_len - (size_t)(q - req->target) - 1 : 0;
    gh_admin_reply_t r;
    memset(&r, 0, sizeof(r));
    const gh_issuer_keys_conf_t *conf = issuer_conf(c, &r);
    if (conf != NULL && gh_admin_ik_handle(conf, &c->ik_route, q ? q + 1 : "", qlen, body, blen,
                                           (int64_t)time(NULL), &r) == 1) {
        GH_LOG(GH_LOG_INFO, "admin", "issuer signing keys rotated through the admin API");
        if (a->hooks.issuer_keys_rotated != NULL)
            a->hooks.issuer_keys_rotated(a->hooks.arg);
    }
    respond_reply(c, &r, c->ik_route.head);
}

/* The /issuer/keys request with head req: as apikeys_start, every check
 * that can refuse it runs before a byte of its body is read. The same
 * token: a rotation changes which keys every verifier trusts. */
static void issuer_keys_start(admin_conn_t *c, const gh_h1_request_t *req, size_t head_len)
{
    gh_admin_t *a = c->admin;
    int has_body = req->body != GH_H1_BODY_NONE;
    const char *q = memchr(req->target, '?', req->target_len);
    size_t plen = q ? (size_t)(q - req->target) : req->target_len;
    int head_only = 0;
    gh_admin_reply_t r;
    memset(&r, 0, sizeof(r));
    if (a->token == NULL) {
        gh_admin_reply_error(&r, 403, "forbidden",
                             "the issuer key endpoints need an admin token: set admin.token_file "
                             "or admin.token_env");
        goto refused;
    }
    if (gh_admin_ik_route(req->method, req->method_len, req->target, plen, &c->ik_route, &r) != 0)
        goto refused;
    head_only = c->ik_route.head;
    if (has_body && c->ik_route.body == GH_AK_BODY_NONE) {
        gh_admin_reply_error(&r, 400, "bad_request", "this admin request takes no body");
        goto refused;
    }
    if (req->body == GH_H1_BODY_CHUNKED) {
        gh_admin_reply_error(&r, 411, "length_required",
                             "send the body with Content-Length (chunked bodies are not read "
                             "here)");
        goto refused;
    }
    uint64_t len = has_body ? req->content_length : 0;
    if (len > GH_ADMIN_IK_BODY_MAX) {
        gh_admin_reply_error(&r, 413, "payload_too_large", "the body is larger than %u bytes",
                             GH_ADMIN_IK_BODY_MAX);
        goto refused;
    }
    if (len > 0) {
        const char *ct = NULL;
        size_t ctn = 0;
        gh_admin_ak_route_t json_route = {.body = GH_AK_BODY_JSON};
        if (content_type(req, &ct, &ctn) < 0) {
            gh_admin_reply_error(&r, 400, "bad_request", "two Content-Type fields");
            goto refused;
        }
        if (gh_admin_ak_check_type(&json_route, ct, ctn, &r) != 0)
            goto refused;
    }
    if (issuer_conf(c, &r) == NULL)
        goto refused;
    size_t avail = c->rlen - head_len;
    if (len <= avail) {
        issuer_keys_run(c, req, c->rbuf + head_len, (size_t)len);
        consume(c, head_len + (size_t)len);
        return;
    }
    c->ik = 1;
    if (body_read_start(c, req, head_len, (size_t)len, avail) != 0) {
        body_release(c);
        gh_admin_reply_error(&r, 503, "service_unavailable", "out of memory");
        goto refused;
    }
    return;
refused:
    if (has_body)
        c->close_after = c->linger = 1;
    respond_reply(c, &r, head_only);
    consume(c, head_len);
}

/* The body is in: the head is parsed again from where it stayed (the
 * parser is stateless, and the head has not changed), then answered. */
static void body_done(admin_conn_t *c)
{
    gh_h1_header_t headers[ADMIN_MAX_HEADERS];
    gh_h1_request_t req;
    gh_h1_error_t err = {0, NULL};
    gh_h1_limits_t lim = {ADMIN_RBUF - 1, ADMIN_MAX_HEADERS, 4096};
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    c->deadline = DL_ANSWERED;
    req.headers = headers;
    size_t head_len = c->head_len;
    if (gh_h1_request_parse(c->rbuf, head_len, &lim, &req, &err) != (int)head_len) {
        conn_close(c); /* cannot happen: the same bytes parsed before */
        return;
    }
    if (c->ik)
        issuer_keys_run(c, &req, c->body, c->body_len);
    else
        apikeys_run(c, &req, c->body, c->body_len);
    body_release(c);
    c->rlen = 0; /* only the head was left in rbuf */
}

static void handle(admin_conn_t *c, const gh_h1_request_t *req, size_t head_len)
{
    gh_admin_t *a = c->admin;
    int is_head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    int is_get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    int probe = path_is(req, "/live") || path_is(req, "/ready");
    int known =
        probe || path_is(req, "/metrics") || path_is(req, "/config") || path_is(req, "/clusters");
    const char *q = memchr(req->target, '?', req->target_len);
    size_t plen = q ? (size_t)(q - req->target) : req->target_len;
    /* Probes stay open so that an orchestrator needs no secret; everything
     * else, unknown paths included, needs the token first, so the API does
     * not describe itself to strangers. A body is not read before that. */
    if (!probe && !authorized(a, req)) {
        if (req->body != GH_H1_BODY_NONE)
            c->close_after = c->linger = 1;
        respond_json(c, 401, "Unauthorized",
                     "{\"error\":\"unauthorized\",\"detail\":\"this admin path needs "
                     "Authorization: Bearer <admin token>\"}\n",
                     "www-authenticate: Bearer realm=\"gatehouse-admin\"\r\n", is_head);
        goto consumed;
    }
    if (gh_admin_ak_is_path(req->target, plen) || gh_admin_cl_is_path(req->target, plen)) {
        c->clients = gh_admin_cl_is_path(req->target, plen);
        apikeys_start(c, req, head_len);
        return;
    }
    if (gh_admin_ik_is_path(req->target, plen)) {
        issuer_keys_start(c, req, head_len);
        return;
    }
    /* Other admin requests carry no body; one that does is refused rather
     * than skipped, so its bytes never become a second request. */
    if (req->body != GH_H1_BODY_NONE) {
        c->close_after = c->linger = 1;
        respond_json(c, 400, "Bad Request",
                     "{\"error\":\"bad_request\",\"detail\":\"admin requests have no body\"}\n",
                     NULL, 0);
        goto consumed;
    }
    if (!known) {
        respond_json(c, 404, "Not Found",
                     "{\"error\":\"not_found\",\"detail\":\"admin paths: /live /ready /metrics "
                     "/config /clusters /apikeys /clients /issuer/keys\"}\n",
                     NULL, is_head);
        goto consumed;
    }
    if (!is_get && !is_head) {
        respond_json(c, 405, "Method Not Allowed",
                     "{\"error\":\"method_not_allowed\",\"detail\":\"use GET\"}\n",
                     "allow: GET, HEAD\r\n", 0);
        goto consumed;
    }
    if (path_is(req, "/live")) {
        respond_json(c, 200, "OK", "{\"status\":\"live\"}\n", NULL, is_head);
        goto consumed;
    }
    if (path_is(req, "/ready")) {
        const char *why = NULL;
        /* /ready is open to anyone who can reach the port; the details of
         * a reason (file paths, URLs, a JWKS host's answer) only go to a
         * caller with the token. */
        int ok = a->hooks.ready(a->hooks.arg, authorized(a, req), &why);
        /* The reason can hold text from the network (a JWKS host's answer):
         * jansson does the escaping. */
        json_t *doc = ok ? json_pack("{s:s,s:I}", "status", "ready", "generation",
                                     (json_int_t)gh_stats_generation())
                         : json_pack("{s:s,s:o}", "status", "not_ready", "reasons",
                                     reasons_array(why ? why : "starting"));
        char *body = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(doc);
        if (body == NULL) {
            conn_close(c);
            return;
        }
        size_t n = strlen(body);
        char *line = realloc(body, n + 2); /* one JSON document per line, as elsewhere */
        if (line == NULL) {
            free(body);
            conn_close(c);
            return;
        }
        line[n++] = '\n';
        line[n] = '\0';
        respond(c, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", "application/json", NULL,
                line, n, is_head);
        free(line);
        goto consumed;
    }
    char *body = NULL;
    size_t len = 0;
    const char *ctype = "application/json";
    if (path_is(req, "/metrics")) {
        body = gh_metrics_render(&len);
        ctype = "text/plain; version=0.0.4; charset=utf-8";
    } else if (path_is(req, "/config")) {
        body = a->hooks.config_json(a->hooks.arg, &len);
    } else {
        body = a->hooks.clusters_json(a->hooks.arg, &len);
    }
    if (body == NULL) {
        respond_json(c, 503, "Service Unavailable",
                     "{\"error\":\"service_unavailable\",\"detail\":\"out of memory\"}\n", NULL,
                     is_head);
        goto consumed;
    }
    respond(c, 200, "OK", ctype, NULL, body, len, is_head);
    free(body);
consumed:
    consume(c, head_len);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    admin_conn_t *c = h->data;
    (void)hint;
    if (c->body != NULL) /* exactly the rest of the body, never a byte past it */
        *buf = uv_buf_init(c->body + c->body_got, (unsigned)(c->body_len - c->body_got));
    else if (c->lingering) /* dropped as it comes */
        *buf = uv_buf_init(c->rbuf, ADMIN_RBUF);
    else
        *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(ADMIN_RBUF - c->rlen));
}

static void process(admin_conn_t *c)
{
    gh_h1_header_t headers[ADMIN_MAX_HEADERS];
    gh_h1_request_t req;
    gh_h1_error_t err = {0, NULL};
    gh_h1_limits_t lim = {ADMIN_RBUF - 1, ADMIN_MAX_HEADERS, 4096};
    if (c->closing || c->lingering || c->body != NULL)
        return;
    req.headers = headers;
    int r = c->rlen ? gh_h1_request_parse(c->rbuf, c->rlen, &lim, &req, &err) : GH_H1_INCOMPLETE;
    if (r == GH_H1_INCOMPLETE) {
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
        /* Between requests the idle deadline runs; the first byte of a head
         * replaces it with the head deadline, which later bytes leave be. */
        if (c->deadline != DL_HEAD && (c->rlen > 0 || c->deadline == DL_FRESH)) {
            uv_timer_start(&c->timer, on_deadline, ADMIN_HEAD_MS, 0);
            c->deadline = DL_HEAD;
        } else if (c->deadline == DL_ANSWERED) {
            uv_timer_start(&c->timer, on_deadline, ADMIN_IDLE_MS, 0);
            c->deadline = DL_IDLE;
        }
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    c->deadline = DL_ANSWERED;
    if (r < 0) {
        char body[256];
        int status = err.status ? err.status : 400;
        c->close_after = c->linger = 1;
        snprintf(body, sizeof(body), "{\"error\":\"bad_request\",\"detail\":\"%s\"}\n",
                 err.detail ? err.detail : "malformed request");
        respond_json(c, status, gh_status_reason(status), body, NULL, 0);
        return;
    }
    c->close_after = !req.keep_alive || c->admin->stopping || c->on_reserve;
    handle(c, &req, (size_t)r);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    admin_conn_t *c = h->data;
    (void)buf;
    if (nread < 0) {
        /* EOF or a reset: mid-body, mid-head or while lingering, there is
         * nobody left to answer. */
        conn_close(c);
        return;
    }
    if (c->lingering)
        return;
    if (c->body != NULL) {
        c->body_got += (size_t)nread;
        if (c->body_got < c->body_len) {
            if (nread > 0)
                body_deadline(c);
            return;
        }
        body_done(c);
        return;
    }
    c->rlen += (size_t)nread;
    if (c->rlen == ADMIN_RBUF)
        uv_read_stop(h);
    process(c);
}

/* The oldest open connection, whatever it is doing: one that is still
 * writing may belong to a peer that never reads. */
static admin_conn_t *oldest_open(gh_admin_t *a)
{
    admin_conn_t *found = NULL;
    for (admin_conn_t *c = a->conns; c != NULL; c = c->next)
        if (!c->closing)
            found = c;
    return found;
}

static int accept_one(gh_admin_t *a)
{
    int fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int err = fd < 0 ? errno : 0;
    if (err == EMFILE || err == ENFILE) {
        /* Out of descriptors (the data plane's connections hold them):
         * the reserve makes room for this one, then accepting pauses
         * until a descriptor can be put back in reserve. Between the close
         * and the accept another thread could take the freed descriptor
         * and keep it (fdlimit.c draws the race): the workers' reserve
         * steps wait for the lock, and, told that the process ran out, a
         * worker gives back what its libuv accepted into the last free
         * descriptors. Then this accept wins, or the retry does. */
        gh_fdlimit_lock();
        gh_fdlimit_ran_out();
        if (a->reserve_fd >= 0) {
            close(a->reserve_fd);
            a->reserve_fd = -1;
            fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            err = fd < 0 ? errno : 0;
            if (fd < 0)
                reserve_take(a); /* nothing was pending, or the descriptor went elsewhere */
        }
        gh_fdlimit_unlock();
    }
    if (err == EMFILE || err == ENFILE) {
        GH_LOG(GH_LOG_WARN, "admin", "out of descriptors: admin connections wait");
        uv_poll_stop(&a->poll);
        a->polling = 0;
        uv_timer_start(&a->retry, on_retry, ADMIN_RESERVE_RETRY_MS, ADMIN_RESERVE_RETRY_MS);
    }
    return fd < 0 ? -err : fd;
}

static void conn_start(gh_admin_t *a, int fd)
{
    if (a->num_conns >= ADMIN_MAX_CONNS) {
        admin_conn_t *old = oldest_open(a);
        if (old != NULL)
            conn_close(old);
    }
    admin_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    uv_loop_t *loop = a->poll.loop;
    c->admin = a;
    c->tcp.data = c->timer.data = c;
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->handles = 2;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->num_conns++;
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        conn_close(c);
        return;
    }
    /* A connection on the reserved descriptor answers one request and
     * closes, to give the descriptor back. */
    c->on_reserve = a->reserve_fd < 0;
    process(c);
}

static void on_listener_readable(uv_poll_t *p, int status, int events)
{
    gh_admin_t *a = p->data;
    (void)events;
    if (status < 0 || a->stopping)
        return;
    for (int i = 0; i < 16 && a->polling; i++) {
        int fd = accept_one(a);
        if (fd == -EINTR || fd == -ECONNABORTED)
            continue;
        if (fd < 0)
            return;
        conn_start(a, fd);
    }
}

static int listen_on(const gh_admin_conf_t *conf)
{
    int fd = socket(conf->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&conf->addr, conf->addrlen) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

gh_admin_t *gh_admin_start(uv_loop_t *loop, const gh_admin_conf_t *conf,
                           const gh_admin_hooks_t *hooks)
{
    int fd = listen_on(conf);
    if (fd < 0) {
        GH_LOG(GH_LOG_ERROR, "admin", "cannot listen on %s: %s", conf->address, strerror(-fd));
        return NULL;
    }
    gh_admin_t *a = calloc(1, sizeof(*a));
    if (a == NULL || (conf->token != NULL && (a->token = strdup(conf->token)) == NULL) ||
        uv_poll_init_socket(loop, &a->poll, fd) != 0) {
        GH_LOG(GH_LOG_ERROR, "admin", "cannot start the admin API: out of memory");
        if (a != NULL)
            free(a->token);
        free(a);
        close(fd);
        return NULL;
    }
    a->lfd = fd;
    a->reserve_fd = -1;
    a->hooks = *hooks;
    a->max_import_body = conf->max_import_body;
    memcpy(&a->addr, &conf->addr, conf->addrlen);
    a->addrlen = conf->addrlen;
    a->poll.data = a->retry.data = a;
    uv_timer_init(loop, &a->retry);
    a->open_handles = 2;
    accepting_resume(a);
    GH_LOG(GH_LOG_INFO, "admin", "admin API on %s%s", conf->address,
           a->token ? " (bearer token required)" : "");
    return a;
}

int gh_admin_is_bound_to(const gh_admin_t *a, const gh_admin_conf_t *conf)
{
    return a != NULL && conf->enabled && conf->addrlen == a->addrlen &&
           memcmp(&conf->addr, &a->addr, a->addrlen) == 0;
}

void gh_admin_update(gh_admin_t *a, const gh_admin_conf_t *conf)
{
    char *t = conf->token ? strdup(conf->token) : NULL;
    if (conf->token != NULL && t == NULL)
        return; /* keep the old token rather than open the API */
    free(a->token);
    a->token = t;
    a->max_import_body = conf->max_import_body;
}

static void listener_closed(uv_handle_t *h)
{
    gh_admin_t *a = h->data;
    a->open_handles--;
    admin_maybe_free(a);
}

void gh_admin_stop(gh_admin_t *a)
{
    if (a == NULL || a->stopping)
        return;
    a->stopping = 1;
    for (admin_conn_t *c = a->conns; c != NULL; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&a->poll, listener_closed);
    uv_close((uv_handle_t *)&a->retry, listener_closed);
    close(a->lfd);
    if (a->reserve_fd >= 0)
        close(a->reserve_fd);
    a->reserve_fd = -1;
}
