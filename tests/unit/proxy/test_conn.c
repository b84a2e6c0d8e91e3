/*
 * Admission in src/proxy/conn.c when there is no memory for a connection:
 * the pending connection must still be accepted and closed. A connection
 * callback that does not call uv_accept makes libuv stop watching the
 * listening socket until someone does, so one failed calloc used to stop a
 * listener for good.
 *
 * calloc is wrapped at link time (-Wl,--wrap=calloc, see CMakeLists.txt)
 * so that the allocation of a gh_conn_t fails on demand; nothing in the
 * production code knows about it. A real worker (gh_worker_init) serves a
 * direct_response route on a socket bound here; the loop is run from the
 * test until the clients see what they wait for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/config.h>

#include "proxy/proxy.h"
#include "proxy/worker.h"

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

static int fail_conns; /* how many gh_conn_t allocations to fail */

void *__wrap_calloc(size_t n, size_t size)
{
    if (fail_conns > 0 && n == 1 && size == sizeof(gh_conn_t)) {
        fail_conns--;
        return NULL;
    }
    return __real_calloc(n, size);
}

/* Allocations the size of a read buffer or more (64 KiB and up). */
static int big_mallocs;
void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size)
{
    if (size >= 64 * 1024)
        big_mallocs++;
    return __real_malloc(size);
}

static const char yaml[] = "listeners:\n"
                           "  - name: edge\n"
                           "    listen: 127.0.0.1:18077\n"
                           "    routes:\n"
                           "      - direct_response: { status: 200, body: \"ok\" }\n";

typedef struct {
    gh_snapshot_t *snap;
    gh_worker_t w;
    int port;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = __real_calloc(1, sizeof(*f));
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("test.yaml", yaml, strlen(yaml), &err);
    if (f == NULL || cfg == NULL)
        return -1;
    f->snap = gh_snapshot_new(cfg, 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (f->snap == NULL || fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    f->port = ntohs(a.sin_port);
    int fds[1] = {fd};
    if (gh_worker_init(&f->w, 0, f->snap, fds) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    /* The clients closed: let the worker see it and free its connections
     * (dispose closes handles without their callbacks). */
    for (int i = 0; i < 20000 && f->w.num_conns > 0; i++) {
        uv_run(&f->w.loop, UV_RUN_NOWAIT);
        usleep(100);
    }
    assert_int_equal(f->w.num_conns, 0);
    gh_worker_dispose(&f->w);
    gh_snapshot_unref(f->snap);
    free(f);
    return 0;
}

static int client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Runs the worker's loop until fd has an answer: returns what it read
 * (0 at a close without a byte), or fails after many turns. */
static ssize_t await(fixture_t *f, int fd, char *buf, size_t cap)
{
    for (int i = 0; i < 20000; i++) {
        uv_run(&f->w.loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf, cap, 0);
        if (n >= 0)
            return n;
        if (errno == ECONNRESET)
            return 0;
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        usleep(100);
    }
    fail_msg("no answer on the client socket: the listener stopped accepting");
    return -1;
}

static uint64_t refused(fixture_t *f)
{
    gh_listener_stats_t *st = gh_metrics_listener(f->w.metrics, f->snap->lids[0].listener_id);
    assert_non_null(st);
    return st->conns_refused;
}

static void served(fixture_t *f)
{
    char buf[512];
    int fd = client_connect(f->port);
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
    ssize_t n = await(f, fd, buf, sizeof(buf) - 1);
    assert_true(n > 12);
    assert_memory_equal(buf, "HTTP/1.1 200", 12);
    close(fd);
}

static void test_no_memory_accepts_and_closes(void **state)
{
    fixture_t *f = *state;
    char buf[64];
    fail_conns = 1;
    int fd = client_connect(f->port);
    assert_int_equal(await(f, fd, buf, sizeof(buf)), 0);
    close(fd);
    assert_int_equal(fail_conns, 0);
    assert_int_equal(refused(f), 1);
    served(f); /* the listener still accepts */
}

/* Two at once, both allocations failing: the second arrives while the
 * sink still closes the first, so the listener waits for the sink (libuv
 * keeps the connection) and then tries again, with memory this time. */
static void test_no_memory_twice_in_a_row(void **state)
{
    fixture_t *f = *state;
    char buf[512];
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    uint64_t before = refused(f);
    fail_conns = 2;
    int a = client_connect(f->port), b = client_connect(f->port);
    assert_int_equal(send(b, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
    assert_int_equal(await(f, a, buf, sizeof(buf)), 0);
    ssize_t n = await(f, b, buf, sizeof(buf));
    assert_true(n > 12);
    assert_memory_equal(buf, "HTTP/1.1 200", 12);
    close(a);
    close(b);
    assert_int_equal(fail_conns, 0);
    assert_int_equal(refused(f), before + 1);
    served(f);
}

/* Keep-alive requests on a default listener reuse the worker's free read
 * buffers: a few allocations at the start, none per request after. (Under
 * AddressSanitizer heads are freed, not recycled: stream.c.) */
static void test_read_buffers_are_reused(void **state)
{
    fixture_t *f = *state;
    char buf[512];
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    int fd = client_connect(f->port);
    int before = 0;
    for (int i = 0; i < 200; i++) {
        if (i == 20)
            before = big_mallocs;
        assert_int_equal(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
        ssize_t n = await(f, fd, buf, sizeof(buf) - 1);
        assert_true(n > 12);
        assert_memory_equal(buf, "HTTP/1.1 200", 12);
        for (int k = 0; k < 5; k++) /* the stream ends at the end of a loop turn */
            uv_run(&f->w.loop, UV_RUN_NOWAIT);
    }
    close(fd);
#if defined(__SANITIZE_ADDRESS__)
    (void)before;
#else
    assert_int_equal(big_mallocs - before, 0);
#endif
}

int main(void)
{
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_memory_accepts_and_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_memory_twice_in_a_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_buffers_are_reused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
