/*
 * Socket writes without the epoll_ctl that libuv adds to each one.
 *
 * libuv (1.44, Debian 12's) finishes a uv_write() that the socket took whole
 * by queueing its callback; when the callback runs, libuv stops watching
 * for POLLOUT, and uv__io_stop() queues the descriptor for an
 * epoll_ctl(EPOLL_CTL_MOD) whenever another event (our read) is still
 * armed, whether POLLOUT was ever armed or not. On a keep-alive exchange
 * that is one system call per write: two of the eight per proxied request
 * (the request to the upstream, the response to the client).
 *
 * gh_sockwrite() first writes with uv_try_write(), which does not touch the
 * descriptor's watcher. When every byte left, the callback is queued here
 * and called from an idle handle on the next loop turn, before the loop
 * polls, which is when libuv would have called it from its pending queue.
 * Whatever the socket did not take goes through uv_write() as before, and
 * so does a write that failed (libuv reports the failure its own way).
 *
 * The queue holds requests whose bytes are in the kernel: a handle that is
 * closed before its completion ran has it run from its close callback
 * (gh_sockwrite_flush), as libuv runs completed writes' callbacks with
 * status 0 ahead of the close callback.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

/* Every socket of a worker is on the worker's own loop. */
static gh_worker_t *worker_of(const uv_stream_t *h)
{
    return (gh_worker_t *)(void *)((char *)h->loop - offsetof(gh_worker_t, loop));
}

struct gh_sockwrite_done_s {
    uv_write_t *req; /* borrowed; NULL once flushed */
    uv_stream_t *h;
    uv_write_cb cb;
};

static void on_idle(uv_idle_t *idle)
{
    gh_worker_t *w = idle->data;
    /* Only those queued before this turn: a callback's own write that
     * completes at once waits for the next turn, so that a stream pumping
     * a long body does not keep the loop from polling. */
    size_t n = w->num_wdone;
    for (size_t i = 0; i < n; i++) {
        gh_sockwrite_done_t d = w->wdone[i]; /* a callback may grow the array */
        if (d.req != NULL)
            d.cb(d.req, 0);
    }
    memmove(w->wdone, w->wdone + n, (w->num_wdone - n) * sizeof(*w->wdone));
    w->num_wdone -= n;
    if (w->num_wdone == 0)
        uv_idle_stop(idle);
}

void gh_sockwrite_init(gh_worker_t *w)
{
    uv_idle_init(&w->loop, &w->wdone_idle);
    w->wdone_idle.data = w;
}

void gh_sockwrite_dispose(gh_worker_t *w)
{
    free(w->wdone);
    w->wdone = NULL;
    w->num_wdone = w->cap_wdone = 0;
}

/* Queues cb(req, 0) for the next loop turn. Returns 0, or -1 (no memory,
 * or the worker's loop is closing its handles) and nothing was queued. */
static int complete_later(gh_worker_t *w, uv_write_t *req, uv_stream_t *h, uv_write_cb cb)
{
    if (uv_is_closing((uv_handle_t *)&w->wdone_idle))
        return -1;
    if (w->num_wdone == w->cap_wdone) {
        size_t cap = w->cap_wdone ? w->cap_wdone * 2 : 64;
        gh_sockwrite_done_t *a = realloc(w->wdone, cap * sizeof(*a));
        if (a == NULL)
            return -1;
        w->wdone = a;
        w->cap_wdone = cap;
    }
    w->wdone[w->num_wdone++] = (gh_sockwrite_done_t){req, h, cb};
    uv_idle_start(&w->wdone_idle, on_idle);
    return 0;
}

unsigned gh_sockwrite_advance(uv_buf_t **bufs, unsigned nbufs, size_t n)
{
    uv_buf_t *b = *bufs;
    while (nbufs > 0 && n >= b->len) {
        n -= b->len;
        b++;
        nbufs--;
    }
    if (nbufs > 0) {
        b->base += n;
        b->len -= n;
    }
    *bufs = b;
    return nbufs;
}

int gh_sockwrite(uv_write_t *req, uv_stream_t *h, uv_buf_t *bufs, unsigned nbufs, uv_write_cb cb)
{
    static char none;
    uv_buf_t empty = uv_buf_init(&none, 0);
    if (nbufs > 0) {
        /* Not a byte taken: UV_EAGAIN (a write of libuv's still queued,
         * which this one must follow, found without a system call; or a
         * full socket, which uv_write() then tries once more) or an error,
         * which uv_write() reports as it always has. */
        int n = uv_try_write(h, bufs, nbufs);
        if (n <= 0)
            return uv_write(req, h, bufs, nbufs, cb);
        nbufs = gh_sockwrite_advance(&bufs, nbufs, (size_t)n);
        if (nbufs > 0)
            return uv_write(req, h, bufs, nbufs, cb);
    }
    if (complete_later(worker_of(h), req, h, cb) == 0)
        return 0;
    /* All sent, but nowhere to queue the completion: an empty write brings
     * it, at the cost of the epoll_ctl this file is about. */
    return uv_write(req, h, &empty, 1, cb);
}

void gh_sockwrite_flush(uv_stream_t *h)
{
    gh_worker_t *w = worker_of(h);
    for (size_t i = 0; i < w->num_wdone; i++) {
        gh_sockwrite_done_t d = w->wdone[i];
        if (d.req != NULL && d.h == h) {
            w->wdone[i].req = NULL;
            d.cb(d.req, 0);
        }
    }
}
