/*
 * Socket writes (src/proxy/sockwrite.c): uv_write()'s contract kept (one
 * callback, on a later loop turn, never from inside the call; bytes in
 * order; a closed handle's completion before its close callback ends), and
 * no epoll_ctl for a write the socket takes whole.
 *
 * epoll_ctl is counted by defining it here: libuv's calls from the shared
 * library bind to the executable's definition, which passes them on to the
 * kernel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/proxy.h"

static unsigned epoll_ctl_calls;

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    epoll_ctl_calls++;
    return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

/* A write's owner, freed by the test where the proxy frees a connection. */
typedef struct {
    uv_write_t req;
    int calls;
    int status;
    int order; /* completion order among the test's writes */
} wr_t;

typedef struct {
    gh_worker_t *w;
    uv_tcp_t *tcp; /* heap: freed in its close callback */
    int peer;      /* the other end, non-blocking */
    int closed;
    int flushed_before_free; /* completions seen by the close callback */
} fixture_t;

static int completions;
static wr_t *freed_owner; /* freed with the handle (test_close_in_same_turn) */

static void write_cb(uv_write_t *req, int status)
{
    wr_t *x = req->data;
    x->calls++;
    x->status = status;
    x->order = ++completions;
}

static void noop_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char b[4096];
    (void)h;
    (void)hint;
    *buf = uv_buf_init(b, sizeof(b));
}

static void noop_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    (void)h;
    (void)n;
    (void)buf;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->w = calloc(1, sizeof(*f->w));
    f->tcp = calloc(1, sizeof(*f->tcp));
    if (f->w == NULL || f->tcp == NULL || uv_loop_init(&f->w->loop) != 0)
        return -1;
    gh_sockwrite_init(f->w);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) != 0)
        return -1;
    f->peer = socket(AF_INET, SOCK_STREAM, 0);
    if (f->peer < 0 || connect(f->peer, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    int s = accept(l, NULL, NULL);
    close(l);
    if (s < 0)
        return -1;
    fcntl(f->peer, F_SETFL, O_NONBLOCK);
    uv_tcp_init(&f->w->loop, f->tcp);
    f->tcp->data = f;
    if (uv_tcp_open(f->tcp, s) != 0)
        return -1;
    /* Reading, as every proxy socket is: the descriptor is in epoll. */
    uv_read_start((uv_stream_t *)f->tcp, noop_alloc, noop_read);
    uv_run(&f->w->loop, UV_RUN_NOWAIT);
    completions = 0;
    freed_owner = NULL;
    *state = f;
    return 0;
}

static void close_cb(uv_handle_t *h)
{
    fixture_t *f = h->data;
    int before = completions;
    gh_sockwrite_flush((uv_stream_t *)h);
    f->flushed_before_free = completions - before;
    f->closed = 1;
    free(h);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->tcp != NULL)
        uv_close((uv_handle_t *)f->tcp, close_cb);
    uv_close((uv_handle_t *)&f->w->wdone_idle, NULL);
    uv_run(&f->w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->w->loop), 0);
    gh_sockwrite_dispose(f->w);
    close(f->peer);
    free(f->w);
    free(f);
    return 0;
}

/* Reads what the peer has, appending to buf[*have .. cap). */
static void peer_drain(fixture_t *f, char *buf, size_t *have, size_t cap)
{
    for (;;) {
        char scratch[65536];
        ssize_t n = recv(f->peer, *have < cap ? buf + *have : scratch,
                         *have < cap ? cap - *have : sizeof(scratch), 0);
        if (n <= 0)
            return;
        *have += (size_t)n;
    }
}

static wr_t *wr_new(void)
{
    wr_t *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->req.data = x;
    x->status = 1;
    return x;
}

/* A short write leaves at once and completes on the next loop turn, once;
 * and costs no epoll_ctl, where a uv_write() costs one per write. */
static void test_whole_write_completes_next_turn(void **state)
{
    fixture_t *f = *state;
    char msg[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    char got[64];
    for (int i = 0; i < 100; i++) {
        wr_t *x = wr_new();
        uv_buf_t b = uv_buf_init(msg, sizeof(msg) - 1);
        unsigned before = epoll_ctl_calls;
        assert_int_equal(gh_sockwrite(&x->req, (uv_stream_t *)f->tcp, &b, 1, write_cb), 0);
        assert_int_equal(x->calls, 0); /* never from inside the call */
        size_t have = 0;
        peer_drain(f, got, &have, sizeof(got));
        assert_int_equal(have, sizeof(msg) - 1); /* already in the kernel */
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
        assert_int_equal(x->calls, 1);
        assert_int_equal(x->status, 0);
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
        assert_int_equal(x->calls, 1);
        assert_int_equal(epoll_ctl_calls, before);
        free(x);
    }
    /* The counter does see libuv's calls: a plain uv_write() on the same
     * socket is followed by a re-arm. */
    wr_t *x = wr_new();
    uv_buf_t b = uv_buf_init(msg, sizeof(msg) - 1);
    unsigned before = epoll_ctl_calls;
    assert_int_equal(uv_write(&x->req, (uv_stream_t *)f->tcp, &b, 1, write_cb), 0);
    uv_run(&f->w->loop, UV_RUN_NOWAIT);
    uv_run(&f->w->loop, UV_RUN_NOWAIT);
    assert_int_equal(x->calls, 1);
    assert_true(epoll_ctl_calls > before);
    free(x);
}

/* A write larger than the socket takes: the rest goes through libuv, the
 * callback comes once, after the last byte, and the bytes arrive in order,
 * followed by those of a second write made meanwhile. */
static void test_partial_write_then_queued_write(void **state)
{
    fixture_t *f = *state;
    size_t big = 8u << 20, small = 1000, cap = big + small;
    char *data = malloc(cap), *got = malloc(cap);
    assert_non_null(data);
    assert_non_null(got);
    for (size_t i = 0; i < cap; i++)
        data[i] = (char)(i * 7 + i / 251);
    wr_t *a = wr_new(), *b = wr_new();
    uv_buf_t ba[2] = {uv_buf_init(data, 4096), uv_buf_init(data + 4096, (unsigned)(big - 4096))};
    uv_buf_t bb = uv_buf_init(data + big, (unsigned)small);
    assert_int_equal(gh_sockwrite(&a->req, (uv_stream_t *)f->tcp, ba, 2, write_cb), 0);
    assert_int_equal(gh_sockwrite(&b->req, (uv_stream_t *)f->tcp, &bb, 1, write_cb), 0);
    assert_int_equal(a->calls + b->calls, 0);
    size_t have = 0;
    for (int i = 0; i < 200000 && (have < cap || b->calls == 0); i++) {
        peer_drain(f, got, &have, cap);
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(have, cap);
    assert_memory_equal(got, data, cap);
    assert_int_equal(a->calls, 1);
    assert_int_equal(b->calls, 1);
    assert_int_equal(a->status, 0);
    assert_int_equal(b->status, 0);
    assert_true(a->order < b->order);
    free(a);
    free(b);
    free(data);
    free(got);
}

/* With nothing left to send (the caller wrote it with uv_try_write), only
 * the completion comes, on the next turn. */
static void test_no_bufs_completes_next_turn(void **state)
{
    fixture_t *f = *state;
    wr_t *x = wr_new();
    assert_int_equal(gh_sockwrite(&x->req, (uv_stream_t *)f->tcp, NULL, 0, write_cb), 0);
    assert_int_equal(x->calls, 0);
    uv_run(&f->w->loop, UV_RUN_NOWAIT);
    assert_int_equal(x->calls, 1);
    assert_int_equal(x->status, 0);
    free(x);
}

/* A write and the close of its handle in one loop turn, after that turn's
 * idle phase (here from a check callback; in the proxy, from a read
 * callback): libuv runs the close callback in this turn's closing phase,
 * before the next idle phase. The completion must come from the flush
 * there, before the owner is freed, and never again (the owner is freed
 * with the handle: ASan sees a late call). Another socket's completion of
 * the same turn is left for the next turn. */
typedef struct {
    fixture_t *f;
    wr_t *x, *y;
    uv_pipe_t *pipe;
    int done;
} turn_t;

static void close_and_free_cb(uv_handle_t *h)
{
    close_cb(h);
    free(freed_owner);
}

static void write_then_close(uv_check_t *chk)
{
    turn_t *t = chk->data;
    static char msg[] = "bye";
    uv_buf_t b = uv_buf_init(msg, 3), c = uv_buf_init(msg, 3);
    uv_check_stop(chk);
    assert_int_equal(gh_sockwrite(&t->x->req, (uv_stream_t *)t->f->tcp, &b, 1, write_cb), 0);
    assert_int_equal(gh_sockwrite(&t->y->req, (uv_stream_t *)t->pipe, &c, 1, write_cb), 0);
    freed_owner = t->x;
    uv_close((uv_handle_t *)t->f->tcp, close_and_free_cb);
    t->f->tcp = NULL;
    t->done = 1;
}

static void test_close_in_same_turn(void **state)
{
    fixture_t *f = *state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    uv_pipe_t pipe;
    uv_pipe_init(&f->w->loop, &pipe, 0);
    assert_int_equal(uv_pipe_open(&pipe, sv[0]), 0);
    turn_t t = {f, wr_new(), wr_new(), &pipe, 0};
    uv_check_t chk;
    uv_check_init(&f->w->loop, &chk);
    chk.data = &t;
    uv_check_start(&chk, write_then_close);

    uv_run(&f->w->loop, UV_RUN_NOWAIT);
    assert_true(t.done);
    assert_true(f->closed);
    assert_int_equal(f->flushed_before_free, 1);
    assert_int_equal(completions, 1);
    assert_int_equal(t.y->calls, 0);
    for (int i = 0; i < 5; i++)
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
    assert_int_equal(completions, 2); /* y's, and x's not again */
    assert_int_equal(t.y->calls, 1);
    assert_int_equal(t.y->status, 0);
    free(t.y);
    uv_close((uv_handle_t *)&chk, NULL);
    uv_close((uv_handle_t *)&pipe, NULL);
    uv_run(&f->w->loop, UV_RUN_NOWAIT);
    close(sv[1]);
}

/* A write to a socket the peer reset: the failure comes in the callback
 * (as uv_write's would), never from inside the call. */
static void test_error_in_callback(void **state)
{
    fixture_t *f = *state;
    struct linger lg = {1, 0};
    setsockopt(f->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(f->peer);
    f->peer = -1;
    for (int i = 0; i < 10; i++)
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
    char msg[] = "late";
    wr_t *x = wr_new();
    uv_buf_t b = uv_buf_init(msg, 4);
    int r = gh_sockwrite(&x->req, (uv_stream_t *)f->tcp, &b, 1, write_cb);
    assert_int_equal(x->calls, 0);
    for (int i = 0; i < 5; i++)
        uv_run(&f->w->loop, UV_RUN_NOWAIT);
    if (r < 0) {
        assert_int_equal(x->calls, 0);
    } else {
        assert_int_equal(x->calls, 1);
        assert_true(x->status < 0);
    }
    free(x);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole_write_completes_next_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_write_then_queued_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_bufs_completes_next_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_same_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_in_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
