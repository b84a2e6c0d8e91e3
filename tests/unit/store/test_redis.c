/*
 * The async Redis client (src/store/redis.c) on a real libuv loop against
 * a real redis-server (redis_server.h): round trips, the key prefix, the
 * pool, timeouts on a stopped server, a killed and restarted server,
 * the bounded queue, cancellation, shutdown with commands pending,
 * closing from a callback and after the loop's owner closed every handle,
 * a peer that accepts and never answers, a closed port, AUTH, SELECT,
 * Unix sockets, scripts.
 *
 * Each case checks the error kind and how many times each callback ran,
 * never how long anything took; waits are bounded by a guard timer far
 * beyond every timeout used here, which fails the case when it fires.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>

#include <gatehouse/redis.h>

#include "redis_server.h"

#define GUARD_MS 30000

static uv_loop_t loop;
static rs_t srv;
static int guard_fired;

typedef struct {
    int calls;
    int status;
    int type;
    long long integer;
    char str[128];
    size_t len;
    gh_redis_t *close_me; /* closed from the callback */
    gh_redis_t *send_on;  /* sends again from the callback */
    int send_rc;
} res_t;

static void on_res(int status, const struct redisReply *r, void *arg)
{
    res_t *x = arg;
    x->calls++;
    x->status = status;
    x->type = r != NULL ? r->type : 0;
    if (r != NULL) {
        x->integer = r->integer;
        x->len = r->str != NULL ? r->len : 0;
        if (r->str != NULL)
            memcpy(x->str, r->str, r->len < sizeof(x->str) ? r->len : sizeof(x->str) - 1);
    }
    if (x->send_on != NULL) {
        const char *argv[] = {"PING"};
        size_t lens[] = {4};
        x->send_rc = gh_redis_command(x->send_on, 1, argv, lens, 0, on_res, x, NULL);
    }
    if (x->close_me != NULL)
        gh_redis_close(x->close_me);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_fired = 1;
}

/* Runs the loop until cond(arg); fails the case after GUARD_MS. */
static void wait_until(int (*cond)(void *), void *arg)
{
    uv_timer_t guard;
    guard_fired = 0;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, GUARD_MS, 0);
    while (!cond(arg) && !guard_fired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (!cond(arg))
        fail_msg("condition not met within the guard time");
}

static int called(void *arg)
{
    return ((res_t *)arg)->calls > 0;
}

typedef struct {
    gh_redis_t *c;
    uint64_t connected;
    uint64_t reconnects;
} want_t;

static int connected_is(void *arg)
{
    want_t *w = arg;
    gh_redis_stats_t st;
    gh_redis_stats(w->c, &st);
    return st.connected == w->connected && st.reconnects >= w->reconnects;
}

static void wait_connected(gh_redis_t *c, uint64_t n)
{
    want_t w = {c, n, 0};
    wait_until(connected_is, &w);
}

/* Clients a case has not closed yet: a failed case leaves them to the
 * teardown, which must not hang on their handles. */
static gh_redis_t *open_clients[8];

static void track(gh_redis_t *c)
{
    for (size_t i = 0; i < sizeof(open_clients) / sizeof(open_clients[0]); i++)
        if (open_clients[i] == NULL) {
            open_clients[i] = c;
            return;
        }
}

/* The case closes c itself (directly or from a callback). */
static void forget(gh_redis_t *c)
{
    for (size_t i = 0; i < sizeof(open_clients) / sizeof(open_clients[0]); i++)
        if (open_clients[i] == c)
            open_clients[i] = NULL;
}

static gh_redis_t *client_with(gh_redis_opts_t *o)
{
    char err[128] = "";
    if (o->host == NULL && o->unix_path == NULL)
        o->host = "127.0.0.1";
    if (o->port == 0 && o->unix_path == NULL)
        o->port = (uint16_t)srv.port;
    gh_redis_t *c = gh_redis_new(&loop, o, err, sizeof(err));
    if (c == NULL)
        fail_msg("gh_redis_new: %s", err);
    track(c);
    return c;
}

static gh_redis_t *client(unsigned pool)
{
    gh_redis_opts_t o = {
        .pool_size = pool, .command_timeout_ms = 5000, .backoff_min_ms = 10, .backoff_max_ms = 50};
    gh_redis_t *c = client_with(&o);
    wait_connected(c, pool);
    return c;
}

static void close_client(gh_redis_t *c)
{
    forget(c);
    gh_redis_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static int cmd(gh_redis_t *c, res_t *x, uint32_t keys, int argc, ...)
{
    const char *argv[16];
    size_t lens[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = strlen(argv[i]);
    }
    va_end(ap);
    memset(x, 0, sizeof(*x));
    return gh_redis_command(c, argc, argv, lens, keys, on_res, x, NULL);
}

/* Sends and waits for the reply. */
static void call(gh_redis_t *c, res_t *x, uint32_t keys, int argc, ...)
{
    const char *argv[16];
    size_t lens[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = strlen(argv[i]);
    }
    va_end(ap);
    memset(x, 0, sizeof(*x));
    assert_int_equal(gh_redis_command(c, argc, argv, lens, keys, on_res, x, NULL), 0);
    wait_until(called, x);
    assert_int_equal(x->calls, 1);
}

/* A command through a synchronous client without prefix: the oracle for
 * what the async client wrote. */
static redisReply *oracle(const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
    assert_non_null(ctx);
    assert_int_equal(ctx->err, 0);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    redisFree(ctx);
    return r;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&loop) != 0)
        return -1;
    /* No redis-server: the group fails (not skipped). */
    return rs_start(&srv, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    rs_stop(&srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    rs_resume(&srv);
    if (srv.pid <= 0 && rs_restart(&srv) < 0)
        return -1;
    redisReply *r = oracle("FLUSHALL");
    freeReplyObject(r);
    return 0;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(int *)arg)++;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Every case leaves the loop without handles: a leaked handle fails here
 * (and is closed, so that the next cases can run). */
static int teardown(void **state)
{
    (void)state;
    rs_resume(&srv);
    int left = 0;
    for (size_t i = 0; i < sizeof(open_clients) / sizeof(open_clients[0]); i++)
        if (open_clients[i] != NULL) {
            gh_redis_close(open_clients[i]);
            open_clients[i] = NULL;
            left++;
        }
    uv_run(&loop, UV_RUN_NOWAIT);
    int open = 0;
    uv_walk(&loop, count_handle, &open);
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    return open == 0 && left == 0 ? 0 : -1;
}

/* ---- cases ---- */

static void test_roundtrip_and_prefix(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.prefix = "gh:", .pool_size = 1};
    gh_redis_t *c = client_with(&o);
    wait_connected(c, 1);
    res_t x;
    /* Binary-safe: NUL, CR LF and a RESP-looking value. */
    const char val[] = "a\0b\r\n*1\r\n$4\r\nPING\r\n";
    const char *argv[] = {"SET", "k", val};
    size_t lens[] = {3, 1, sizeof(val) - 1};
    memset(&x, 0, sizeof(x));
    assert_int_equal(gh_redis_command(c, 3, argv, lens, 1u << 1, on_res, &x, NULL), 0);
    wait_until(called, &x);
    assert_int_equal(x.status, 0);
    assert_int_equal(x.type, REDIS_REPLY_STATUS);
    assert_string_equal(x.str, "OK");

    /* The key went with its prefix; the value byte for byte. */
    redisReply *r = oracle("GET gh:k");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, sizeof(val) - 1);
    assert_memory_equal(r->str, val, sizeof(val) - 1);
    freeReplyObject(r);
    r = oracle("EXISTS k");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);

    call(c, &x, 1u << 1, 2, "GET", "k");
    assert_int_equal(x.type, REDIS_REPLY_STRING);
    assert_int_equal(x.len, sizeof(val) - 1);
    /* Without the key bit, the argument is sent as is. */
    call(c, &x, 0, 2, "GET", "k");
    assert_int_equal(x.type, REDIS_REPLY_NIL);
    /* An error reply is a reply: status 0, counted as an error. */
    call(c, &x, 1u << 1, 3, "HGET", "k", "f");
    assert_int_equal(x.status, 0);
    assert_int_equal(x.type, REDIS_REPLY_ERROR);
    gh_redis_stats_t st;
    gh_redis_stats(c, &st);
    assert_int_equal(st.commands, 4);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.connected, 1);
    close_client(c);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    gh_redis_t *c = client(1);
    res_t x;
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    memset(&x, 0, sizeof(x));
    assert_int_equal(gh_redis_command(c, 0, argv, lens, 0, on_res, &x, NULL), -EINVAL);
    assert_int_equal(gh_redis_command(c, 1, argv, lens, 0, NULL, &x, NULL), -EINVAL);
    const char *nul[] = {NULL};
    assert_int_equal(gh_redis_command(c, 1, nul, lens, 0, on_res, &x, NULL), -EINVAL);
    assert_int_equal(gh_redis_command(NULL, 1, argv, lens, 0, on_res, &x, NULL), -EINVAL);
    /* Commands that would change the shared connection for other callers. */
    const char *state_cmds[][2] = {{"MULTI", NULL},     {"multi", NULL},   {"Select", "1"},
                                   {"SUBSCRIBE", "ch"}, {"MONITOR", NULL}, {"CLIENT", "REPLY"},
                                   {"client", "reply"}, {"AUTH", "pw"},    {"QUIT", NULL},
                                   {"WATCH", "k"},      {"RESET", NULL},   {"HELLO", "3"}};
    for (size_t i = 0; i < sizeof(state_cmds) / sizeof(state_cmds[0]); i++) {
        size_t l2[2] = {strlen(state_cmds[i][0]),
                        state_cmds[i][1] != NULL ? strlen(state_cmds[i][1]) : 0};
        int n = state_cmds[i][1] != NULL ? 2 : 1;
        assert_int_equal(gh_redis_command(c, n, state_cmds[i], l2, 0, on_res, &x, NULL), -EINVAL);
    }
    assert_int_equal(x.calls, 0);
    /* CLIENT for anything else is fine. */
    call(c, &x, 0, 2, "CLIENT", "ID");
    assert_int_equal(x.type, REDIS_REPLY_INTEGER);
    close_client(c);
}

typedef struct {
    res_t *xs;
    int n;
} all_t;

static int all_called(void *arg)
{
    all_t *a = arg;
    for (int i = 0; i < a->n; i++)
        if (a->xs[i].calls == 0)
            return 0;
    return 1;
}

/* A command that blocks its connection (BLPOP) does not hold the others:
 * each new command goes to the connection with the fewest in flight. */
static void test_pool(void **state)
{
    (void)state;
    gh_redis_t *c = client(3);
    res_t blocked, xs[6];
    assert_int_equal(cmd(c, &blocked, 1u << 1, 3, "BLPOP", "q", "0"), 0);
    for (int i = 0; i < 6; i++) {
        call(c, &xs[i], 0, 1, "PING");
        assert_int_equal(xs[i].status, 0);
        assert_string_equal(xs[i].str, "PONG");
    }
    /* Two at once: both avoid the busy connection. */
    assert_int_equal(cmd(c, &xs[0], 0, 1, "PING"), 0);
    assert_int_equal(cmd(c, &xs[1], 0, 1, "PING"), 0);
    all_t a = {xs, 2};
    wait_until(all_called, &a);
    assert_int_equal(blocked.calls, 0);
    redisReply *r = oracle("CLIENT LIST");
    int n = 0;
    for (const char *p = r->str; (p = strstr(p, "cmd=blpop")) != NULL; p++)
        n++;
    assert_int_equal(n, 1);
    freeReplyObject(r);
    r = oracle("LPUSH q v");
    freeReplyObject(r);
    wait_until(called, &blocked);
    assert_int_equal(blocked.status, 0);
    assert_int_equal(blocked.type, REDIS_REPLY_ARRAY);
    close_client(c);
}

/* A stopped server: the command ends with -ETIMEDOUT, exactly once; the
 * connection is dropped at once (commands fail fast while it is down),
 * and comes back when the server does. */
static void test_timeout_paused_server(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.pool_size = 1,
                         .command_timeout_ms = 200,
                         .connect_timeout_ms = 200,
                         .backoff_min_ms = 10,
                         .backoff_max_ms = 50};
    gh_redis_t *c = client_with(&o);
    wait_connected(c, 1);
    rs_pause(&srv);
    res_t x, y;
    assert_int_equal(cmd(c, &x, 0, 2, "GET", "k"), 0);
    x.send_on = c; /* its callback sends again: not on the late connection */
    wait_until(called, &x);
    assert_int_equal(x.status, -ETIMEDOUT);
    assert_int_equal(x.send_rc, -ENOTCONN);
    /* Dropped with its late command: nothing to send on now. */
    memset(&y, 0, sizeof(y));
    assert_int_equal(cmd(c, &y, 0, 1, "PING"), -ENOTCONN);
    /* While stopped, reconnects reach the kernel but never finish the
     * handshake: still nothing ready. */
    want_t w = {c, 0, 2};
    wait_until(connected_is, &w);
    assert_int_equal(cmd(c, &y, 0, 1, "PING"), -ENOTCONN);
    rs_resume(&srv);
    wait_connected(c, 1);
    call(c, &y, 0, 1, "PING");
    assert_int_equal(y.status, 0);
    assert_int_equal(x.calls, 1); /* the timed-out one never ran again */
    gh_redis_stats_t st;
    gh_redis_stats(c, &st);
    assert_int_equal(st.timeouts, 1);
    assert_true(st.refused >= 2);
    close_client(c);
}

/* Killed: the command in flight ends with -ECONNRESET, new ones fail at
 * once while it is down; restarted: the pool reconnects by itself. */
static void test_kill_and_restart(void **state)
{
    (void)state;
    gh_redis_t *c = client(2);
    res_t inflight, y;
    assert_int_equal(cmd(c, &inflight, 0, 3, "BLPOP", "q", "0"), 0);
    /* Make sure it reached the server. */
    call(c, &y, 0, 1, "PING");
    rs_kill(&srv);
    wait_until(called, &inflight);
    assert_int_equal(inflight.status, -ECONNRESET);
    wait_connected(c, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cmd(c, &y, 0, 1, "PING"), -ENOTCONN);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(y.calls, 0);
    assert_int_equal(rs_restart(&srv), 0);
    wait_connected(c, 2);
    call(c, &y, 0, 1, "PING");
    assert_int_equal(y.status, 0);
    assert_int_equal(inflight.calls, 1);
    gh_redis_stats_t st;
    gh_redis_stats(c, &st);
    assert_true(st.reconnects >= 2);
    assert_int_equal(st.refused, 3);
    close_client(c);
}

/* max_pending commands in flight: the next is refused at once. */
static void test_bounded_queue(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.pool_size = 1, .max_pending = 4, .command_timeout_ms = 20000};
    gh_redis_t *c = client_with(&o);
    wait_connected(c, 1);
    res_t xs[4], over;
    assert_int_equal(cmd(c, &xs[0], 0, 3, "BLPOP", "q", "0"), 0);
    for (int i = 1; i < 4; i++)
        assert_int_equal(cmd(c, &xs[i], 0, 1, "PING"), 0);
    assert_int_equal(cmd(c, &over, 0, 1, "PING"), -EAGAIN);
    assert_int_equal(cmd(c, &over, 0, 3, "SET", "a", "b"), -EAGAIN);
    redisReply *r = oracle("LPUSH q v");
    freeReplyObject(r);
    all_t a = {xs, 4};
    wait_until(all_called, &a);
    for (int i = 0; i < 4; i++)
        assert_int_equal(xs[i].status, 0);
    assert_int_equal(over.calls, 0);
    call(c, &over, 0, 1, "PING");
    assert_int_equal(over.status, 0);
    gh_redis_stats_t st;
    gh_redis_stats(c, &st);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.commands, 5);
    close_client(c);
}

/* A cancelled command's reply comes and is dropped; the callback never
 * runs; the command still counted against the queue until then. */
static void test_cancel(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.pool_size = 1, .max_pending = 2, .command_timeout_ms = 20000};
    gh_redis_t *c = client_with(&o);
    wait_connected(c, 1);
    res_t blocked, after, over;
    gh_redis_cmd_t *h = NULL;
    const char *argv[] = {"BLPOP", "q", "0"};
    size_t lens[] = {5, 1, 1};
    memset(&blocked, 0, sizeof(blocked));
    assert_int_equal(gh_redis_command(c, 3, argv, lens, 0, on_res, &blocked, &h), 0);
    assert_non_null(h);
    gh_redis_cancel(h);
    assert_int_equal(cmd(c, &after, 0, 1, "PING"), 0);
    assert_int_equal(cmd(c, &over, 0, 1, "PING"), -EAGAIN);
    redisReply *r = oracle("LPUSH q v");
    freeReplyObject(r);
    /* PING is answered after BLPOP on the same connection. */
    wait_until(called, &after);
    assert_int_equal(after.status, 0);
    assert_int_equal(blocked.calls, 0);
    r = oracle("LLEN q");
    assert_int_equal(r->integer, 0); /* the BLPOP did pop: its reply came */
    freeReplyObject(r);
    call(c, &over, 0, 1, "PING");
    close_client(c);
}

/* A cancelled command that never gets a reply still has a deadline. */
static void test_cancel_then_timeout(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.pool_size = 1, .command_timeout_ms = 200, .backoff_min_ms = 10};
    gh_redis_t *c = client_with(&o);
    wait_connected(c, 1);
    res_t x;
    gh_redis_cmd_t *h = NULL;
    const char *argv[] = {"BLPOP", "q", "0"};
    size_t lens[] = {5, 1, 1};
    memset(&x, 0, sizeof(x));
    assert_int_equal(gh_redis_command(c, 3, argv, lens, 0, on_res, &x, &h), 0);
    gh_redis_cancel(h);
    want_t w = {c, 1, 1}; /* dropped at its deadline, then connected again */
    wait_until(connected_is, &w);
    assert_int_equal(x.calls, 0);
    gh_redis_stats_t st;
    gh_redis_stats(c, &st);
    assert_int_equal(st.timeouts, 1);
    close_client(c);
}

/* Closing with commands pending: each callback runs once, during the
 * close, with -ESHUTDOWN; one that sends again is refused. */
static void test_shutdown_pending(void **state)
{
    (void)state;
    gh_redis_t *c = client(2);
    rs_pause(&srv);
    res_t xs[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(cmd(c, &xs[i], 0, 2, "GET", "k"), 0);
    xs[2].send_on = c;
    uv_run(&loop, UV_RUN_NOWAIT); /* written to the sockets */
    forget(c);
    gh_redis_close(c);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(xs[i].calls, 1);
        assert_int_equal(xs[i].status, -ESHUTDOWN);
    }
    assert_int_equal(xs[2].send_rc, -ESHUTDOWN);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 5; i++)
        assert_int_equal(xs[i].calls, 1);
    rs_resume(&srv);
}

/* Closing from a reply's callback, with another command still on that
 * connection and one on another. */
static void test_close_from_callback(void **state)
{
    (void)state;
    gh_redis_t *c = client(2);
    res_t first, second, third;
    assert_int_equal(cmd(c, &first, 0, 1, "PING"), 0);
    assert_int_equal(cmd(c, &second, 0, 3, "BLPOP", "q", "0"), 0);
    assert_int_equal(cmd(c, &third, 0, 3, "BLPOP", "q2", "0"), 0);
    first.close_me = c;
    forget(c);
    wait_until(called, &first);
    assert_int_equal(first.status, 0);
    assert_int_equal(second.calls, 1);
    assert_int_equal(second.status, -ESHUTDOWN);
    assert_int_equal(third.calls, 1);
    assert_int_equal(third.status, -ESHUTDOWN);
    uv_run(&loop, UV_RUN_DEFAULT);
}

/* Closing from a callback that runs because the connection was lost. */
static void test_close_from_lost_callback(void **state)
{
    (void)state;
    gh_redis_t *c = client(1);
    res_t a, b;
    assert_int_equal(cmd(c, &a, 0, 3, "BLPOP", "q", "0"), 0);
    assert_int_equal(cmd(c, &b, 0, 3, "BLPOP", "q", "0"), 0);
    a.close_me = c;
    forget(c);
    uv_run(&loop, UV_RUN_NOWAIT);
    rs_kill(&srv);
    wait_until(called, &a);
    assert_int_equal(a.status, -ECONNRESET);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, -ESHUTDOWN);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(rs_restart(&srv), 0);
}

/* A worker's teardown: the loop's owner closes every handle with a walk
 * and runs the loop out; the client, closed afterwards, frees at once and
 * its pending command learns of the shutdown. */
static void test_close_after_walk(void **state)
{
    (void)state;
    uv_loop_t own;
    assert_int_equal(uv_loop_init(&own), 0);
    gh_redis_opts_t o = {.host = "127.0.0.1", .port = (uint16_t)srv.port, .pool_size = 2};
    gh_redis_t *c = gh_redis_new(&own, &o, NULL, 0);
    assert_non_null(c);
    gh_redis_stats_t st;
    for (int i = 0; i < 100000; i++) {
        gh_redis_stats(c, &st);
        if (st.connected == 2)
            break;
        uv_run(&own, UV_RUN_ONCE);
    }
    assert_int_equal(st.connected, 2);
    res_t x;
    const char *argv[] = {"BLPOP", "q", "0"};
    size_t lens[] = {5, 1, 1};
    memset(&x, 0, sizeof(x));
    assert_int_equal(gh_redis_command(c, 3, argv, lens, 0, on_res, &x, NULL), 0);
    uv_run(&own, UV_RUN_NOWAIT);
    uv_walk(&own, close_any, NULL);
    uv_run(&own, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&own), 0);
    assert_int_equal(x.calls, 0);
    gh_redis_close(c);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.status, -ESHUTDOWN);
}

/* A peer that accepts connections and never answers (a hung Redis, a
 * black hole): nothing becomes ready, every command fails fast, and the
 * client keeps trying on its backoff. */
static void test_peer_never_answers(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    gh_redis_opts_t o = {.port = ntohs(a.sin_port),
                         .pool_size = 2,
                         .connect_timeout_ms = 50,
                         .backoff_min_ms = 10,
                         .backoff_max_ms = 20};
    gh_redis_t *c = client_with(&o);
    want_t w = {c, 0, 4};
    wait_until(connected_is, &w);
    res_t x;
    assert_int_equal(cmd(c, &x, 0, 1, "PING"), -ENOTCONN);
    close_client(c);
    close(fd);
    assert_int_equal(x.calls, 0);
}

/* Nobody listens: refused connects are noticed (not left to a timeout
 * that would never come: the connect timeout here is a day). The port is
 * held by a socket bound without listen, so nobody else can take it. */
static void test_port_closed(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    gh_redis_opts_t o = {.port = ntohs(a.sin_port),
                         .pool_size = 1,
                         .connect_timeout_ms = 24 * 3600 * 1000,
                         .backoff_min_ms = 1,
                         .backoff_max_ms = 2};
    gh_redis_t *c = client_with(&o);
    want_t w = {c, 0, 5};
    wait_until(connected_is, &w);
    res_t x;
    assert_int_equal(cmd(c, &x, 0, 1, "PING"), -ENOTCONN);
    close_client(c);
    close(fd);
}

/* ---- a peer that is not Redis: answers the handshake, then misbehaves ---- */

typedef struct {
    int lfd;
    int port;
    const char *extra; /* sent after each answer */
    volatile int stop;
    int accepted;
    pthread_t th;
} fake_t;

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    int fds[64];
    int n = 0;
    while (!f->stop) {
        struct pollfd p[65];
        p[0].fd = f->lfd;
        p[0].events = POLLIN;
        for (int i = 0; i < n; i++) {
            p[i + 1].fd = fds[i];
            p[i + 1].events = POLLIN;
        }
        if (poll(p, (nfds_t)n + 1, 20) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && n < 64) {
            int fd = accept(f->lfd, NULL, NULL);
            if (fd >= 0) {
                fds[n++] = fd;
                __atomic_add_fetch(&f->accepted, 1, __ATOMIC_RELAXED);
            }
        }
        for (int i = 0; i < n; i++) {
            if (!(p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t r = read(fds[i], buf, sizeof(buf));
            if (r <= 0) {
                close(fds[i]);
                fds[i] = fds[--n];
                break;
            }
            /* One +PONG per PING, then the misbehaviour. */
            for (ssize_t k = 0; k + 4 <= r; k++)
                if (memcmp(buf + k, "PING", 4) == 0 && write(fds[i], "+PONG\r\n", 7) < 0)
                    break;
            if (write(fds[i], f->extra, strlen(f->extra)) < 0)
                continue;
        }
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return NULL;
}

static void fake_start(fake_t *f, const char *extra)
{
    memset(f, 0, sizeof(*f));
    f->extra = extra;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 64), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f)
{
    f->stop = 1;
    pthread_join(f->th, NULL);
    close(f->lfd);
}

/* A reply nobody asked for aborts the process in hiredis 0.14 (an assert,
 * on in Debian's build); here the connection is dropped and retried.
 * Garbage is a protocol error: the same. */
static void test_peer_misbehaves(void **state)
{
    (void)state;
    const char *extras[] = {"+EXTRA\r\n", ":42\r\n*1\r\n$1\r\nx\r\n", "%%%% not RESP\r\n",
                            "$-5\r\n"};
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        fake_t f;
        fake_start(&f, extras[i]);
        gh_redis_opts_t o = {.port = (uint16_t)f.port,
                             .pool_size = 1,
                             .command_timeout_ms = 20000,
                             .backoff_min_ms = 1,
                             .backoff_max_ms = 4};
        gh_redis_t *c = client_with(&o);
        /* Each connection is dropped as soon as the handshake is done:
         * the process lives on, and keeps trying. */
        want_t w = {c, 0, 3};
        wait_until(connected_is, &w);
        close_client(c);
        fake_stop(&f);
    }
}

static void test_auth_and_select(void **state)
{
    (void)state;
    rs_t auth;
    const char *extra[] = {"--requirepass", "s3cret pass", NULL};
    assert_int_equal(rs_start(&auth, extra), 0);
    uint16_t port = (uint16_t)auth.port;

    gh_redis_opts_t good = {.port = port, .password = "s3cret pass", .db = 3, .pool_size = 2};
    gh_redis_t *c = client_with(&good);
    wait_connected(c, 2);
    res_t x;
    call(c, &x, 1u << 1, 3, "SET", "k", "in-db-3");
    assert_int_equal(x.status, 0);
    close_client(c);

    /* db 0 does not have it; db 3 does. */
    gh_redis_opts_t db0 = {.port = port, .password = "s3cret pass", .pool_size = 1};
    c = client_with(&db0);
    wait_connected(c, 1);
    call(c, &x, 1u << 1, 2, "GET", "k");
    assert_int_equal(x.type, REDIS_REPLY_NIL);
    close_client(c);
    gh_redis_opts_t db3 = {.port = port, .password = "s3cret pass", .db = 3, .pool_size = 1};
    c = client_with(&db3);
    wait_connected(c, 1);
    call(c, &x, 1u << 1, 2, "GET", "k");
    assert_string_equal(x.str, "in-db-3");
    close_client(c);

    /* ACL user form: AUTH default <password>. */
    gh_redis_opts_t user = {
        .port = port, .username = "default", .password = "s3cret pass", .pool_size = 1};
    c = client_with(&user);
    wait_connected(c, 1);
    close_client(c);

    /* A wrong password: never ready, commands refused, and it keeps
     * trying (the operator may fix the server). */
    gh_redis_opts_t bad = {.port = port,
                           .password = "wrong",
                           .pool_size = 1,
                           .backoff_min_ms = 5,
                           .backoff_max_ms = 10};
    c = client_with(&bad);
    want_t w = {c, 0, 3};
    wait_until(connected_is, &w);
    assert_int_equal(cmd(c, &x, 0, 1, "PING"), -ENOTCONN);
    close_client(c);

    /* No password at all: the PING of the handshake is refused. */
    gh_redis_opts_t none = {
        .port = port, .pool_size = 1, .backoff_min_ms = 5, .backoff_max_ms = 10};
    c = client_with(&none);
    want_t w2 = {c, 0, 3};
    wait_until(connected_is, &w2);
    close_client(c);

    rs_stop(&auth);
}

static void test_unix_socket(void **state)
{
    (void)state;
    rs_t us;
    char path[128];
    const char *extra[] = {"--unixsocket", path, "--unixsocketperm", "700", NULL};
    snprintf(path, sizeof(path), "/tmp/gh-redis-test-%d.sock", (int)getpid());
    assert_int_equal(rs_start(&us, extra), 0);
    gh_redis_opts_t o = {.unix_path = path, .pool_size = 2};
    gh_redis_t *c = client_with(&o);
    wait_connected(c, 2);
    res_t x;
    call(c, &x, 0, 1, "PING");
    assert_int_equal(x.status, 0);
    assert_string_equal(x.str, "PONG");
    close_client(c);
    rs_stop(&us);
    unlink(path);
}

static const char echo_lua[] = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}";

typedef struct {
    int calls;
    int status;
    long long n;
    char key[64];
} eval_res_t;

static void on_eval(int status, const struct redisReply *r, void *arg)
{
    eval_res_t *x = arg;
    x->calls++;
    x->status = status;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        snprintf(x->key, sizeof(x->key), "%.*s", (int)r->element[0]->len, r->element[0]->str);
        x->n = r->element[2]->integer;
    }
}

static int eval_called(void *arg)
{
    return ((eval_res_t *)arg)->calls > 0;
}

/* Scripts: keys prefixed, EVALSHA, and after SCRIPT FLUSH the NOSCRIPT
 * error is answered by sending EVAL (the script ran once per call). */
static void test_eval_noscript(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.prefix = "p:", .pool_size = 1};
    gh_redis_t *c = client_with(&o);
    wait_connected(c, 1);
    gh_redis_script_t s;
    gh_redis_script_init(&s, echo_lua);
    const char *argv[] = {"counter", "x"};
    size_t lens[] = {7, 1};
    for (int round = 1; round <= 3; round++) {
        eval_res_t x = {0};
        if (round == 3) {
            redisReply *r = oracle("SCRIPT FLUSH");
            freeReplyObject(r);
        }
        assert_int_equal(gh_redis_eval(c, &s, 1, 2, argv, lens, on_eval, &x, NULL), 0);
        wait_until(eval_called, &x);
        assert_int_equal(x.calls, 1);
        assert_int_equal(x.status, 0);
        assert_string_equal(x.key, "p:counter");
        assert_int_equal(x.n, round);
    }
    redisReply *r = oracle("SCRIPT EXISTS %s", s.sha1);
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);
    r = oracle("GET p:counter");
    assert_string_equal(r->str, "3");
    freeReplyObject(r);
    close_client(c);
}

static void test_metrics_lines(void **state)
{
    (void)state;
    gh_redis_t *c = client(1);
    res_t x;
    call(c, &x, 0, 1, "PING");
    gh_redis_stats_t st[2], sum = {0};
    gh_redis_stats(c, &st[0]);
    st[1] = st[0];
    gh_redis_stats_add(&sum, &st[0]);
    gh_redis_stats_add(&sum, &st[1]);
    assert_int_equal(sum.commands, 2);
    const char *names[] = {"limits", "store"};
    char buf[4096];
    size_t n = gh_redis_metrics_format(buf, sizeof(buf), names, st, 2);
    assert_true(n < sizeof(buf));
    assert_non_null(strstr(buf, "gatehouse_redis_commands_total{client=\"limits\"} 1\n"));
    assert_non_null(strstr(buf, "gatehouse_redis_connections{client=\"store\"} 1\n"));
    assert_non_null(strstr(buf, "# TYPE gatehouse_redis_timeouts_total counter\n"));
    /* Cut short: the length it needs, and a terminated prefix. */
    char small[32];
    assert_int_equal(gh_redis_metrics_format(small, sizeof(small), names, st, 2), n);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    close_client(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_and_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_paused_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_then_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_lost_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_after_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_never_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_misbehaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_and_select, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_noscript, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_lines, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
