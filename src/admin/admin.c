/*
 * Admin API server: a small HTTP/1.1 server on the main thread, on the same
 * strict parser as the data plane. Requests are tiny and answers are built
 * whole, so a connection reads one head, writes one answer, and goes on
 * with the next (keep-alive) or closes.
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
#include <unistd.h>

#include <gatehouse/h1.h>
#include <gatehouse/log.h>
#include <gatehouse/metrics.h>

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

typedef struct admin_conn_s admin_conn_t;

enum {
    DL_FRESH = 0, /* accepted, nothing armed yet */
    DL_ANSWERED,  /* a request was answered, nothing armed yet */
    DL_IDLE,      /* waiting for the next request */
    DL_HEAD,      /* a head has started (or the connection is fresh) */
    DL_WRITE,     /* an answer is being written; nothing more is read */
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
    admin_conn_t *conns; /* newest first */
    unsigned num_conns;
    int stopping;
    unsigned open_handles;
};

struct admin_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    gh_admin_t *admin;
    admin_conn_t *prev, *next;
    char rbuf[ADMIN_RBUF];
    size_t rlen;
    char *wbuf;
    int close_after;
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

static void conn_closed(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    gh_admin_t *a = c->admin;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->num_conns--;
    free(c->wbuf);
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

static void on_deadline(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_write(uv_write_t *req, int status)
{
    admin_conn_t *c = req->data;
    free(c->wbuf);
    c->wbuf = NULL;
    uv_timer_stop(&c->timer);
    c->deadline = DL_ANSWERED;
    if (status < 0 || c->close_after) {
        conn_close(c);
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
    c->wreq.data = c;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        free(buf);
        c->wbuf = NULL;
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

static void handle(admin_conn_t *c, const gh_h1_request_t *req)
{
    gh_admin_t *a = c->admin;
    int is_head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    int is_get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    int probe = path_is(req, "/live") || path_is(req, "/ready");
    int known =
        probe || path_is(req, "/metrics") || path_is(req, "/config") || path_is(req, "/clusters");
    /* Probes stay open so that an orchestrator needs no secret; everything
     * else, unknown paths included, needs the token first, so the API does
     * not describe itself to strangers. */
    if (!probe && !authorized(a, req)) {
        respond_json(c, 401, "Unauthorized",
                     "{\"error\":\"unauthorized\",\"detail\":\"this admin path needs "
                     "Authorization: Bearer <admin token>\"}\n",
                     "www-authenticate: Bearer realm=\"gatehouse-admin\"\r\n", is_head);
        return;
    }
    if (!known) {
        respond_json(c, 404, "Not Found",
                     "{\"error\":\"not_found\",\"detail\":\"admin paths: /live /ready /metrics "
                     "/config /clusters\"}\n",
                     NULL, is_head);
        return;
    }
    if (!is_get && !is_head) {
        respond_json(c, 405, "Method Not Allowed",
                     "{\"error\":\"method_not_allowed\",\"detail\":\"use GET\"}\n",
                     "allow: GET, HEAD\r\n", 0);
        return;
    }
    if (path_is(req, "/live")) {
        respond_json(c, 200, "OK", "{\"status\":\"live\"}\n", NULL, is_head);
        return;
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
        return;
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
        return;
    }
    respond(c, 200, "OK", ctype, NULL, body, len, is_head);
    free(body);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    admin_conn_t *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(ADMIN_RBUF - c->rlen));
}

static void process(admin_conn_t *c)
{
    gh_h1_header_t headers[ADMIN_MAX_HEADERS];
    gh_h1_request_t req;
    gh_h1_error_t err = {0, NULL};
    gh_h1_limits_t lim = {ADMIN_RBUF - 1, ADMIN_MAX_HEADERS, 4096};
    if (c->closing)
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
        c->close_after = 1;
        snprintf(body, sizeof(body), "{\"error\":\"bad_request\",\"detail\":\"%s\"}\n",
                 err.detail ? err.detail : "malformed request");
        respond_json(c, status, gh_status_reason(status), body, NULL, 0);
        return;
    }
    /* Admin requests carry no body; one that does is refused rather
     * than skipped, so its bytes never become a second request. */
    if (req.body != GH_H1_BODY_NONE) {
        c->close_after = 1;
        respond_json(c, 400, "Bad Request",
                     "{\"error\":\"bad_request\",\"detail\":\"admin requests have no body\"}\n",
                     NULL, 0);
        return;
    }
    c->close_after = !req.keep_alive || c->admin->stopping || c->on_reserve;
    /* Handle from a copy: the read buffer is compacted before the answer
     * is written, and the handler only reads the head. */
    handle(c, &req);
    memmove(c->rbuf, c->rbuf + r, c->rlen - (size_t)r);
    c->rlen -= (size_t)r;
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    admin_conn_t *c = h->data;
    (void)buf;
    if (nread < 0) {
        conn_close(c);
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
