/*
 * TLS to upstreams: a transport under gh_upconn_t (docs/tls.md,
 * docs/internals/callout.md), shared by the router and callouts.
 *
 * OpenSSL never touches the socket. Two memory BIOs sit between it and
 * libuv: ciphertext that libuv reads is written into the read BIO, and
 * what OpenSSL writes (handshake flights, records, alerts) is taken from
 * the write BIO and handed to gh_sockwrite. So nothing blocks, and the
 * connection keeps libuv's read, write and timer paths, the pools, the
 * keep-alive and the connect deadline (which runs on through the
 * handshake: connected is set only once it is done).
 *
 * Reads: ciphertext is read into the free part of rbuf (rbuf + rlen) and
 * copied into the read BIO at once, so the same bytes then take the
 * plaintext; the owner sees plaintext exactly as from a plain socket
 * (gh_upconn_deliver). When rbuf is full the raw read stops (as for plain
 * connections) and the plaintext OpenSSL still holds waits; it is served
 * when the owner asks for reads again (gh_uptls_resume), on the next loop
 * turn, never from inside the owner's call. What the read BIO holds is
 * bounded by one read.
 *
 * Ends: a close_notify is a clean end (UV_EOF); the peer's bytes ending
 * without one is a truncation (RFC 8446 section 6.1), delivered as
 * UV_ECONNRESET, so that a close-delimited body cut short never looks
 * whole; any other TLS error is UV_EPROTO with the reason kept in why.
 *
 * Sessions: the last resumable session of each endpoint is kept in its
 * pool (per worker, per view); a new connection offers it. With TLS 1.3
 * the session comes in a ticket after the handshake, so it is looked for
 * after every read until the connection saved one.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <gatehouse/log.h>

#include "proxy/proxy.h"

typedef struct gh_uptls_s {
    gh_upconn_t *u;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    gh_deadline_t drain;
    int raw_end;             /* 0, or the libuv status that ended the raw reads */
    unsigned handshaken : 1; /* the handshake is done */
    unsigned ended : 1;      /* the end (or failure) was delivered: nothing more */
    unsigned fatal : 1;      /* no close_notify: the TLS state is broken */
    unsigned saved : 1;      /* this connection's session is in the pool */
    char why[200];
} gh_uptls_t;

/* A write of ciphertext: the bytes live with the request. */
typedef struct {
    uv_write_t req;
    gh_upconn_t *u;
    int owner; /* the owner's write: its completion is the owner's */
    char data[];
} tls_wreq_t;

const char *gh_uptls_why(const gh_upconn_t *u)
{
    return u->tls != NULL && u->tls->why[0] != '\0' ? u->tls->why : NULL;
}

static void set_why(gh_uptls_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_why(gh_uptls_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->why, sizeof(t->why), fmt, ap);
    va_end(ap);
}

/* OpenSSL's reason for the last failure: the certificate check's when that
 * was it, else the error queue's (then cleared). */
static void ssl_failure(gh_uptls_t *t, const char *during)
{
    long v = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();
    if (v != X509_V_OK) {
        set_why(t, "TLS %s: certificate verify failed: %s", during,
                X509_verify_cert_error_string(v));
    } else if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        char buf[128];
        if (r == NULL) {
            ERR_error_string_n(e, buf, sizeof(buf));
            r = buf;
        }
        set_why(t, "TLS %s: %s", during, r);
    } else {
        set_why(t, "TLS %s: the connection broke", during);
    }
    ERR_clear_error();
    t->fatal = 1;
}

static void on_write(uv_write_t *req, int status)
{
    tls_wreq_t *w = req->data;
    gh_upconn_t *u = w->u;
    int owner = w->owner;
    free(w);
    if (owner)
        gh_upconn_wrote(u, status);
}

/* Sends what OpenSSL wrote. An owner's write always gets its completion
 * (even with no byte, which does not happen with records). */
static int flush(gh_upconn_t *u, int owner)
{
    gh_uptls_t *t = u->tls;
    size_t n = BIO_ctrl_pending(t->wbio);
    if (n == 0 && !owner)
        return 0;
    tls_wreq_t *w = malloc(sizeof(*w) + n);
    if (w == NULL)
        return UV_ENOMEM;
    if (n > 0 && BIO_read(t->wbio, w->data, (int)n) != (int)n) {
        free(w);
        return UV_EIO;
    }
    w->u = u;
    w->owner = owner;
    w->req.data = w;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    int r = gh_sockwrite(&w->req, (uv_stream_t *)&u->tcp, &b, n > 0 ? 1 : 0, on_write);
    if (r < 0)
        free(w);
    return r;
}

static void save_session(gh_upconn_t *u)
{
    gh_uptls_t *t = u->tls;
    SSL_SESSION *s = SSL_get0_session(t->ssl);
    if (t->saved || s == NULL || !SSL_SESSION_is_resumable(s))
        return;
    gh_pool_t *p = u->pool;
    SSL_SESSION_up_ref(s);
    if (p->tls_session != NULL)
        SSL_SESSION_free(p->tls_session);
    p->tls_session = s;
    t->saved = 1;
}

/* The endpoint's host from "host:port" or "[v6]:port" into buf; whether
 * it is an address literal. */
static int endpoint_host(const char *address, char *buf, size_t len, int *is_ip)
{
    const char *colon = strrchr(address, ':');
    size_t n = colon != NULL ? (size_t)(colon - address) : strlen(address);
    if (n >= 2 && address[0] == '[' && address[n - 1] == ']') {
        address++;
        n -= 2;
    }
    if (n == 0 || n >= len)
        return -1;
    memcpy(buf, address, n);
    buf[n] = '\0';
    unsigned char a[16];
    *is_ip = inet_pton(AF_INET, buf, a) == 1 || inet_pton(AF_INET6, buf, a) == 1;
    return 0;
}

/* ---- the handshake ---- */

static void handshake_failed(gh_upconn_t *u, int status)
{
    gh_uptls_t *t = u->tls;
    t->ended = 1;
    GH_LOG(GH_LOG_WARN, "upstream", "cluster '%s' upstream %s: %s", u->pool->cluster->name,
           u->pool->ep->address, t->why);
    gh_upconn_connected(u, status);
}

static void handshake(gh_upconn_t *u)
{
    gh_uptls_t *t = u->tls;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL)
        ssl_failure(t, "handshake");
    /* A failed handshake may still have an alert to send. */
    int w = flush(u, 0);
    if (e == SSL_ERROR_NONE) {
        if (w < 0) {
            set_why(t, "TLS handshake: %s", uv_strerror(w));
            handshake_failed(u, w);
            return;
        }
        t->handshaken = 1;
        save_session(u);
        u->connected = 1;
        gh_upconn_connected(u, 0);
        return;
    }
    if (e == SSL_ERROR_WANT_READ && w == 0 && t->raw_end == 0)
        return; /* the server's next flight */
    if (e == SSL_ERROR_WANT_READ) {
        int st = t->raw_end != 0 ? t->raw_end : w;
        set_why(t, "TLS handshake: upstream %s",
                st == UV_EOF ? "closed the connection" : uv_strerror(st));
        t->fatal = 1;
        handshake_failed(u, st == UV_EOF ? UV_ECONNRESET : st);
        return;
    }
    if (t->why[0] == '\0')
        set_why(t, "TLS handshake failed");
    handshake_failed(u, UV_EPROTO);
}

/* ---- reads ---- */

static void tls_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    gh_upconn_t *u = h->data;
    (void)hint;
    *buf = uv_buf_init(u->rbuf + u->rlen, (unsigned)(u->rcap - u->rlen));
}

/* An idle connection: a session ticket or a key update is taken in, and
 * anything else (data nobody asked for, close_notify, the end, an error)
 * ends the connection, as upstream.c does for plain ones. */
static void idle_read(gh_upconn_t *u)
{
    gh_uptls_t *t = u->tls;
    size_t got = 0;
    ERR_clear_error();
    int r = SSL_read_ex(t->ssl, u->rbuf + u->rlen, u->rcap - u->rlen, &got);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL)
        t->fatal = 1;
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ && t->raw_end == 0 && flush(u, 0) == 0) {
        save_session(u);
        return;
    }
    gh_upconn_close(u);
}

/* u->tls_dirty, for gh_upconn_release, after every event: bytes that
 * nobody asked for wait in the TLS layer (a whole or partial record, or
 * plaintext), or the TLS layer ended. An owner that releases the
 * connection in the middle of a pump is covered by the pump itself: it
 * goes on with idle_read. */
static void mark(gh_upconn_t *u)
{
    gh_uptls_t *t = u->tls;
    u->tls_dirty = t->ended || t->fatal || SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0;
}

/* Hands the owner what OpenSSL can decrypt, while rbuf has room. */
static void pump(gh_upconn_t *u)
{
    gh_uptls_t *t = u->tls;
    while (!u->closing && !t->ended) {
        if (u->stream == NULL && u->call == NULL) {
            idle_read(u);
            return;
        }
        if (u->rlen == u->rcap) {
            gh_upconn_update_reading(u); /* stops; gh_uptls_resume restarts */
            return;
        }
        size_t got = 0;
        ERR_clear_error();
        int r = SSL_read_ex(t->ssl, u->rbuf + u->rlen, u->rcap - u->rlen, &got);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL)
            ssl_failure(t, "read");
        int w = flush(u, 0); /* a key update's answer, an alert */
        if (!t->saved)
            save_session(u);
        if (e == SSL_ERROR_NONE) {
            gh_upconn_deliver(u, (ssize_t)got);
            continue;
        }
        int end;
        if (e == SSL_ERROR_WANT_READ) {
            if (t->raw_end == 0 && w == 0)
                return;
            /* RFC 8446 section 6.1: without close_notify the end may be
             * an attacker's cut: never a clean end of the data. */
            end = w < 0 ? w : UV_ECONNRESET;
            set_why(t, "TLS: upstream %s without close_notify",
                    t->raw_end == UV_EOF ? "closed the connection" : "broke the connection");
            t->fatal = 1;
        } else if (e == SSL_ERROR_ZERO_RETURN) {
            end = UV_EOF; /* close_notify */
        } else {
            end = UV_EPROTO;
            if (t->why[0] == '\0')
                set_why(t, "TLS read failed");
        }
        t->ended = 1;
        if (end != UV_EOF)
            GH_LOG(GH_LOG_INFO, "upstream", "cluster '%s' upstream %s: %s", u->pool->cluster->name,
                   u->pool->ep->address, t->why);
        gh_upconn_deliver(u, end);
        return;
    }
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    gh_upconn_t *u = h->data;
    gh_uptls_t *t = u->tls;
    if (nread == 0)
        return;
    if (nread > 0) {
        if (BIO_write(t->rbio, buf->base, (int)nread) != (int)nread)
            nread = UV_ENOMEM;
    }
    if (nread < 0) {
        uv_read_stop(h);
        u->reading = 0;
        if (t->raw_end == 0)
            t->raw_end = (int)nread;
    }
    if (!t->handshaken) {
        if (!t->ended)
            handshake(u);
    } else {
        pump(u);
    }
    if (!u->closing)
        mark(u);
}

#define TLS_OF_DRAIN(d) ((gh_uptls_t *)((char *)(d)-offsetof(gh_uptls_t, drain)))

static void on_drain(gh_deadline_t *d)
{
    gh_uptls_t *t = TLS_OF_DRAIN(d);
    pump(t->u);
    if (!t->u->closing)
        mark(t->u);
}

void gh_uptls_resume(gh_upconn_t *u)
{
    gh_uptls_t *t = u->tls;
    if (t == NULL)
        return;
    if (t->raw_end == 0 && uv_read_start((uv_stream_t *)&u->tcp, tls_alloc, on_read) != 0)
        return;
    u->reading = 1;
    if (!t->ended && !gh_deadline_is_active(&t->drain) &&
        (SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0 || t->raw_end != 0))
        gh_deadline_start(&u->pool->worker->deadlines, &t->drain, 0, on_drain);
}

/* ---- connection life ---- */

void gh_uptls_start(gh_upconn_t *u)
{
    const gh_cluster_tls_t *conf = u->pool->cluster->tls;
    gh_uptls_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        gh_upconn_connected(u, UV_ENOMEM);
        return;
    }
    t->u = u;
    u->tls = t;
    t->ssl = SSL_new(conf->ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        t->rbio = t->wbio = NULL;
        set_why(t, "TLS: out of memory");
        t->ended = t->fatal = 1;
        ERR_clear_error();
        gh_upconn_connected(u, UV_ENOMEM);
        return;
    }
    /* An empty read BIO means "more to come", never the end: the end is
     * the socket's, told apart in pump(). */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_connect_state(t->ssl);

    /* The name checked in the certificate: sni, else the endpoint's host;
     * an address literal is checked against the certificate's IP
     * addresses and sent as no SNI (RFC 6066 section 3). */
    char host[256];
    int is_ip = 0, ok = 1;
    const char *name = conf->sni;
    if (name == NULL && endpoint_host(u->pool->ep->address, host, sizeof(host), &is_ip) == 0)
        name = host;
    if (name != NULL && !is_ip)
        ok = SSL_set_tlsext_host_name(t->ssl, name) == 1;
    if (ok && conf->verify && name != NULL) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) == 1
                   : X509_VERIFY_PARAM_set1_host(vp, name, 0) == 1;
    }
    if (ok && u->pool->tls_session != NULL)
        ok = SSL_set_session(t->ssl, u->pool->tls_session) == 1;
    if (!ok) {
        ssl_failure(t, "setup");
        t->ended = 1;
        gh_upconn_connected(u, UV_EINVAL);
        return;
    }
    if (uv_read_start((uv_stream_t *)&u->tcp, tls_alloc, on_read) != 0) {
        set_why(t, "TLS: cannot read from the socket");
        t->ended = t->fatal = 1;
        gh_upconn_connected(u, UV_EIO);
        return;
    }
    u->reading = 1;
    handshake(u);
    if (!u->closing)
        mark(u);
}

int gh_uptls_write(gh_upconn_t *u, uv_buf_t *bufs, unsigned nbufs)
{
    gh_uptls_t *t = u->tls;
    if (t == NULL || !t->handshaken || t->fatal)
        return UV_EPIPE;
    ERR_clear_error();
    for (unsigned i = 0; i < nbufs; i++) {
        size_t done = 0;
        if (bufs[i].len > 0 && SSL_write_ex(t->ssl, bufs[i].base, bufs[i].len, &done) != 1) {
            ssl_failure(t, "write");
            return UV_EPROTO;
        }
    }
    return flush(u, 1);
}

void gh_uptls_close(gh_upconn_t *u)
{
    gh_uptls_t *t = u->tls;
    gh_deadline_stop(&t->drain);
    if (!t->handshaken || t->fatal || t->ssl == NULL)
        return;
    /* close_notify (RFC 8446 section 6.1), if the socket takes it now: the
     * handle is closed next, and libuv cancels queued writes. */
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    char buf[128];
    int n = BIO_read(t->wbio, buf, sizeof(buf));
    if (n > 0) {
        uv_buf_t b = uv_buf_init(buf, (unsigned)n);
        (void)uv_try_write((uv_stream_t *)&u->tcp, &b, 1);
    }
}

void gh_uptls_free(gh_upconn_t *u)
{
    gh_uptls_t *t = u->tls;
    gh_deadline_stop(&t->drain);
    SSL_free(t->ssl);
    free(t);
    u->tls = NULL;
}

void gh_uptls_pool_dispose(gh_pool_t *p)
{
    if (p->tls_session != NULL)
        SSL_SESSION_free(p->tls_session);
    p->tls_session = NULL;
}
