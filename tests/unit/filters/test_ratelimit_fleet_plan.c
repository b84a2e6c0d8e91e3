/*
 * Usage plans in fleet mode with the real Redis backend: two "processes"
 * (two workers, each with its own snapshot of the same config, run turn
 * by turn from the test) in front of one redis-server share a plan's
 * quota and throttle. (They share this process's table of local
 * counters too, so a local plan would count together here as well: that
 * two processes count local plans apart needs two processes, which
 * tests/integration/test_ratelimit_fleet.py has.)
 *
 * In-process, with a test-only authentication filter ("testid") that sets
 * the consumer and the plan from request fields (x-consumer, x-plan), as
 * in test_ratelimit.c: the plan's path through the filter and the real
 * backend without the key store. With real API keys in Redis and two
 * processes: tests/integration/test_ratelimit_fleet.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>

#include <gatehouse/config.h>
#include <gatehouse/filter.h>
#include <gatehouse/redis.h>

#include "filters/ratelimit/ratelimit.h"
#include "proxy/proxy.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

#include "../store/redis_server.h"

#define MAX_TURNS 200000

static rs_t srv;

/* ---- the test identity filter ---- */

static char *arena_copy(gh_stream_t *s, const char *v, size_t n)
{
    char *p = gh_stream_alloc(s, n + 1);
    assert_non_null(p);
    memcpy(p, v, n);
    p[n] = '\0';
    return p;
}

static gh_filter_status_t id_request_headers(gh_stream_t *s, const void *conf, void *ctx)
{
    size_t n;
    const char *v;
    (void)conf;
    (void)ctx;
    gh_identity_t *id = gh_stream_identity(s);
    if ((v = gh_stream_header_get(s, "x-consumer", &n)) != NULL)
        id->consumer = arena_copy(s, v, n);
    if ((v = gh_stream_header_get(s, "x-plan", &n)) != NULL)
        id->plan = arena_copy(s, v, n);
    return GH_FILTER_CONTINUE;
}

static const gh_filter_type_t testid_filter = {
    .name = "testid",
    .phase = GH_PHASE_AUTHN,
    .on_request_headers = id_request_headers,
};

static const gh_filter_type_t *types[16];

static void register_types(void)
{
    const gh_filter_type_t *const *product = gh_filter_types();
    size_t n = 0;
    types[n++] = &testid_filter;
    for (size_t i = 0; product[i] != NULL; i++)
        types[n++] = product[i];
    types[n] = NULL;
    gh_filter_types_set(types);
}

/* ---- two gatehouses ---- */

typedef struct {
    gh_snapshot_t *snap;
    gh_worker_t w;
    int port;
} gh_t;

static gh_t ghs[2];

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static int start(gh_t *g, unsigned id)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "store: {kind: redis, address: '127.0.0.1:%d', timeout: 2s, prefix: 'plan:'}\n"
             "plans:\n"
             "  team:\n"
             "    throttle: {rate: 1/h, burst: 100}\n"
             "    quota: {limit: 5, period: day}\n"
             "    mode: fleet\n"
             "listeners:\n"
             "  - name: edge\n"
             "    listen: 127.0.0.1:1\n"
             "    routes:\n"
             "      - name: api\n"
             "        match: {path: {prefix: /}}\n"
             "        testid: {}\n"
             "        direct_response: {status: 200, body: ok}\n",
             srv.port);
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("t.yaml", yaml, strlen(yaml), &err);
    if (cfg == NULL) {
        print_error("config: %s\n", err.msg);
        return -1;
    }
    if ((g->snap = gh_snapshot_new(cfg, 1)) == NULL)
        return -1;
    int fd = listen_loopback(&g->port);
    if (fd < 0)
        return -1;
    int fds[1] = {fd};
    return gh_worker_init(&g->w, id, g->snap, fds);
}

static int setup(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof(srv));
    if (rs_start(&srv, NULL) != 0) {
        fprintf(stderr, "cannot start redis-server (scripts/deps test installs it)\n");
        return -1;
    }
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    register_types();
    gh_ratelimit_fleet_set(NULL); /* the Redis backend */
    return start(&ghs[0], 0) == 0 && start(&ghs[1], 1) == 0 ? 0 : -1;
}

static void pump_all(void)
{
    uv_run(&ghs[0].w.loop, UV_RUN_NOWAIT);
    uv_run(&ghs[1].w.loop, UV_RUN_NOWAIT);
    usleep(50);
}

static int teardown(void **state)
{
    (void)state;
    for (int turns = 0; turns < MAX_TURNS; turns++) {
        if (ghs[0].w.num_conns == 0 && ghs[1].w.num_conns == 0 && ghs[0].w.dead == NULL &&
            ghs[1].w.dead == NULL)
            break;
        pump_all();
    }
    for (int i = 0; i < 2; i++) {
        gh_worker_dispose(&ghs[i].w);
        gh_snapshot_unref(ghs[i].snap);
    }
    gh_filter_types_set(NULL);
    rs_stop(&srv);
    return 0;
}

/* One request to g on a new connection; the status, and the response in
 * buf. */
static int request(gh_t *g, const char *fields, char *buf, size_t cap)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET /x HTTP/1.1\r\nHost: t\r\n%s\r\n", fields);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)g->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    size_t got = 0;
    buf[0] = '\0';
    for (int turns = 0; turns < MAX_TURNS; turns++) {
        ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
        if (r > 0) {
            got += (size_t)r;
            buf[got] = '\0';
            const char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "content-length: ");
            if (end != NULL && cl != NULL &&
                got >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
                break;
        } else if (r == 0) {
            break;
        }
        pump_all();
    }
    close(fd);
    int status = 0;
    sscanf(buf, "HTTP/1.1 %d", &status);
    return status;
}

static void test_fleet_plan_shared_by_two_gatehouses(void **state)
{
    (void)state;
    char buf[4096];
    const char *alice = "x-consumer: alice\r\nx-plan: team\r\n";
    /* The quota of 5 a day, whichever gatehouse answers. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(request(&ghs[i % 2], alice, buf, sizeof(buf)), 200);
        char want[64];
        snprintf(want, sizeof(want), "\"team.quota\";r=%d;t=", 4 - i);
        assert_non_null(strstr(buf, want));
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(request(&ghs[i], alice, buf, sizeof(buf)), 429);
        assert_non_null(strstr(buf, "'team.quota' exceeded"));
    }
    /* Counted in Redis (not in this process's table, which both
     * workers share here): alice's day window holds 5. */
    gh_redis_opts_t o = {.host = "127.0.0.1", .port = (uint16_t)srv.port};
    char err[128];
    gh_redis_sync_t *sc = gh_redis_sync_new(&o, err, sizeof(err));
    assert_non_null(sc);
    const char *kargv[] = {"KEYS", "plan:rl:*:5:alice:w*"};
    size_t klens[] = {4, strlen(kargv[1])};
    struct redisReply *r = NULL;
    assert_int_equal(gh_redis_sync_command(sc, 2, kargv, klens, 0, &r), 0);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    const char *gargv[] = {"GET", r->element[0]->str};
    size_t glens[] = {3, r->element[0]->len};
    struct redisReply *v = NULL;
    assert_int_equal(gh_redis_sync_command(sc, 2, gargv, glens, 0, &v), 0);
    assert_int_equal(v->type, REDIS_REPLY_STRING);
    assert_string_equal(v->str, "5");
    gh_redis_reply_free(v);
    gh_redis_reply_free(r);
    gh_redis_sync_free(sc);
    /* Another consumer of the plan: its own throttle and quota. */
    assert_int_equal(request(&ghs[0], "x-consumer: bob\r\nx-plan: team\r\n", buf, sizeof(buf)),
                     200);
    assert_non_null(strstr(buf, "\"team.throttle\";r=99;"));
    assert_non_null(strstr(buf, "\"team.quota\";r=4;"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fleet_plan_shared_by_two_gatehouses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
