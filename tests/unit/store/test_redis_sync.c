/*
 * The synchronous Redis client (src/store/redis_sync.c) against a real
 * redis-server: round trips with the prefix, error replies, a stopped
 * server (timeout, then a failed reconnect and calls failing fast within
 * the backoff), a killed and restarted server, AUTH and SELECT, scripts
 * after SCRIPT FLUSH. Counters tell whether a call tried to connect; no
 * case measures time.
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

static rs_t srv;

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return rs_start(&srv, NULL); /* no redis-server: the group fails */
}

static int group_teardown(void **state)
{
    (void)state;
    rs_stop(&srv);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    rs_resume(&srv);
    if (srv.pid <= 0 && rs_restart(&srv) < 0)
        return -1;
    return 0;
}

static gh_redis_sync_t *sync_with(gh_redis_opts_t *o)
{
    char err[128] = "";
    if (o->host == NULL)
        o->host = "127.0.0.1";
    if (o->port == 0)
        o->port = (uint16_t)srv.port;
    gh_redis_sync_t *s = gh_redis_sync_new(o, err, sizeof(err));
    if (s == NULL)
        fail_msg("gh_redis_sync_new: %s", err);
    return s;
}

static int run(gh_redis_sync_t *s, redisReply **r, uint32_t keys, int argc, ...)
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
    return gh_redis_sync_command(s, argc, argv, lens, keys, r);
}

static void test_roundtrip(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.prefix = "cli:"};
    gh_redis_sync_t *s = sync_with(&o);
    gh_redis_opts_t bare = {0};
    gh_redis_sync_t *plain = sync_with(&bare);
    redisReply *r = NULL;
    assert_int_equal(run(s, &r, 1u << 1, 3, "SET", "k", "v"), 0);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    gh_redis_reply_free(r);
    assert_int_equal(run(plain, &r, 0, 2, "GET", "cli:k"), 0);
    assert_string_equal(r->str, "v");
    gh_redis_reply_free(r);
    /* An error reply: status 0, the reply says it. */
    assert_int_equal(run(s, &r, 1u << 1, 3, "HGET", "k", "f"), 0);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    gh_redis_reply_free(r);
    gh_redis_stats_t st;
    gh_redis_sync_stats(s, &st);
    assert_int_equal(st.commands, 2);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.connected, 1);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(run(s, &r, 0, 0), -EINVAL);
    assert_null(r);
    gh_redis_sync_free(s);
    gh_redis_sync_free(plain);
}

/* A stopped server: -ETIMEDOUT; the next call connects again (the kernel
 * accepts) but the handshake gets no answer: -ENOTCONN; calls within the
 * backoff then fail without trying; after the server is back, it works. */
static void test_paused_server(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.command_timeout_ms = 200,
                         .connect_timeout_ms = 200,
                         .backoff_min_ms = 60000,
                         .backoff_max_ms = 60000};
    gh_redis_sync_t *s = sync_with(&o);
    redisReply *r = NULL;
    assert_int_equal(run(s, &r, 0, 1, "PING"), 0);
    gh_redis_reply_free(r);
    rs_pause(&srv);
    assert_int_equal(run(s, &r, 0, 2, "GET", "k"), -ETIMEDOUT);
    assert_null(r);
    assert_int_equal(run(s, &r, 0, 1, "PING"), -ENOTCONN);
    gh_redis_stats_t st;
    gh_redis_sync_stats(s, &st);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.timeouts, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(run(s, &r, 0, 1, "PING"), -ENOTCONN);
    gh_redis_sync_stats(s, &st);
    assert_int_equal(st.reconnects, 1); /* no attempt within the backoff */
    assert_int_equal(st.refused, 6);
    assert_int_equal(st.connected, 0);
    rs_resume(&srv);
    gh_redis_sync_free(s);

    /* A short backoff: back when the server is. */
    gh_redis_opts_t quick = {.backoff_min_ms = 1, .backoff_max_ms = 2};
    s = sync_with(&quick);
    assert_int_equal(run(s, &r, 0, 1, "PING"), 0);
    gh_redis_reply_free(r);
    gh_redis_sync_free(s);
}

static void test_kill_and_restart(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.backoff_min_ms = 1, .backoff_max_ms = 5};
    gh_redis_sync_t *s = sync_with(&o);
    redisReply *r = NULL;
    assert_int_equal(run(s, &r, 0, 1, "PING"), 0);
    gh_redis_reply_free(r);
    rs_kill(&srv);
    assert_int_equal(run(s, &r, 0, 1, "PING"), -ECONNRESET);
    assert_int_equal(run(s, &r, 0, 1, "PING"), -ENOTCONN);
    assert_int_equal(rs_restart(&srv), 0);
    int rc = -ENOTCONN;
    for (int i = 0; i < 1000 && rc == -ENOTCONN; i++) {
        rc = run(s, &r, 0, 1, "PING");
        if (rc == -ENOTCONN)
            rs_sleep_ms(5); /* inside the backoff */
    }
    assert_int_equal(rc, 0);
    assert_string_equal(r->str, "PONG");
    gh_redis_reply_free(r);
    gh_redis_sync_free(s);
}

static void test_auth_select(void **state)
{
    (void)state;
    rs_t auth;
    const char *extra[] = {"--requirepass", "pw", NULL};
    assert_int_equal(rs_start(&auth, extra), 0);
    gh_redis_opts_t good = {.port = (uint16_t)auth.port, .password = "pw", .db = 5};
    gh_redis_sync_t *s = sync_with(&good);
    redisReply *r = NULL;
    assert_int_equal(run(s, &r, 0, 3, "SET", "k", "five"), 0);
    gh_redis_reply_free(r);
    gh_redis_sync_free(s);
    gh_redis_opts_t db0 = {.port = (uint16_t)auth.port, .password = "pw"};
    s = sync_with(&db0);
    assert_int_equal(run(s, &r, 0, 2, "GET", "k"), 0);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    gh_redis_reply_free(r);
    gh_redis_sync_free(s);
    gh_redis_opts_t bad = {.port = (uint16_t)auth.port, .password = "nope"};
    s = sync_with(&bad);
    assert_int_equal(run(s, &r, 0, 1, "PING"), -ENOTCONN);
    gh_redis_sync_free(s);
    gh_redis_opts_t none = {.port = (uint16_t)auth.port};
    s = sync_with(&none);
    assert_int_equal(run(s, &r, 0, 1, "PING"), -ENOTCONN);
    gh_redis_sync_free(s);
    rs_stop(&auth);
}

static void test_script(void **state)
{
    (void)state;
    gh_redis_opts_t o = {.prefix = "s:"};
    gh_redis_sync_t *s = sync_with(&o);
    gh_redis_script_t sc;
    gh_redis_script_init(&sc, "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    const char *argv[] = {"n", "2"};
    size_t lens[] = {1, 1};
    redisReply *r = NULL;
    for (int i = 1; i <= 3; i++) {
        if (i == 3) {
            assert_int_equal(run(s, &r, 0, 2, "SCRIPT", "FLUSH"), 0);
            gh_redis_reply_free(r);
        }
        assert_int_equal(gh_redis_sync_eval(s, &sc, 1, 2, argv, lens, &r), 0);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(r->integer, 2 * i);
        gh_redis_reply_free(r);
    }
    assert_int_equal(run(s, &r, 0, 2, "GET", "s:n"), 0);
    assert_string_equal(r->str, "6");
    gh_redis_reply_free(r);
    gh_redis_sync_free(s);
}

/* A peer that answers the handshake, then trickles a reply a byte at a
 * time, each well within the socket timeout: the whole reply has a
 * deadline, so the call ends with -ETIMEDOUT all the same. */
typedef struct {
    int lfd;
    volatile int stop;
} trickle_t;

static void *trickle_main(void *arg)
{
    trickle_t *t = arg;
    int fd = accept(t->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[4096];
    if (read(fd, buf, sizeof(buf)) <= 0 || write(fd, "+PONG\r\n", 7) != 7) {
        close(fd);
        return NULL;
    }
    if (read(fd, buf, sizeof(buf)) <= 0) {
        close(fd);
        return NULL;
    }
    const char head[] = "$100000\r\n";
    for (size_t i = 0; !t->stop && i < 1000; i++) {
        char c = i < sizeof(head) - 1 ? head[i] : 'x';
        if (write(fd, &c, 1) != 1)
            break;
        rs_sleep_ms(20);
    }
    close(fd);
    return NULL;
}

static void test_trickling_peer(void **state)
{
    (void)state;
    trickle_t t = {0};
    t.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(t.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(t.lfd, 4), 0);
    assert_int_equal(getsockname(t.lfd, (struct sockaddr *)&a, &len), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, trickle_main, &t), 0);
    gh_redis_opts_t o = {.port = ntohs(a.sin_port), .command_timeout_ms = 300};
    gh_redis_sync_t *s = sync_with(&o);
    redisReply *r = NULL;
    assert_int_equal(run(s, &r, 0, 2, "GET", "k"), -ETIMEDOUT);
    assert_null(r);
    t.stop = 1;
    pthread_join(th, NULL);
    close(t.lfd);
    gh_redis_sync_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_roundtrip, setup),
        cmocka_unit_test_setup(test_paused_server, setup),
        cmocka_unit_test_setup(test_kill_and_restart, setup),
        cmocka_unit_test_setup(test_auth_select, setup),
        cmocka_unit_test_setup(test_script, setup),
        cmocka_unit_test_setup(test_trickling_peer, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
