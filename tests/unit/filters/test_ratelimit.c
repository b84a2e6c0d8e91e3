/*
 * The rate_limits filter in a real worker (gh_worker_init on a loopback
 * socket, run turn by turn from the test): usage plans, and the fleet
 * path through a test backend.
 *
 * Plans need an identity with a plan, which the API-key provider will
 * set; here a test-only authentication filter, "testid", sets the
 * consumer and the plan from request fields (x-consumer, x-plan). Being an
 * authentication filter, it makes the rate_limits filter implied on its
 * routes when the config has plans.
 *
 * The fleet backend ("testfleet", registered with gh_ratelimit_fleet_set)
 * records what take saw, and answers on a later loop turn (a uv timer on
 * the worker's loop), or never until the test says so: allowed, refused
 * (one item), a store error, or a take that fails at once. Under the
 * ASan build a late answer for a stream that ended would show as a use
 * after free or a leak.
 *
 * filter.c is included to reach its decimal writer.
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
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../src/filters/ratelimit/filter.c"

#include "proxy/proxy.h"
#include "proxy/worker.h"

#define MAX_TURNS 100000

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

/* ---- the test fleet backend ---- */

enum { FLEET_ALLOW = 0, FLEET_REFUSE, FLEET_ERROR, FLEET_FAIL_TAKE, FLEET_HOLD };

typedef struct {
    gh_ratelimit_batch_t *b;
    uv_timer_t timer;
} pending_t;

static struct {
    int mode;
    size_t refuse_item;
    unsigned takes, answered;
    char keys[4][64]; /* what take saw, copied during take */
    uint64_t ids[4];
    size_t num_items;
    pending_t *held; /* FLEET_HOLD: answered by fleet_release */
} fleet;

static void pending_closed(uv_handle_t *h)
{
    free(h->data);
}

static void answer(pending_t *p)
{
    gh_ratelimit_batch_t *b = p->b;
    int status = 0;
    for (size_t i = 0; i < b->num_items; i++) {
        gh_limit_result_t *r = &b->items[i].res;
        memset(r, 0, sizeof(*r));
        r->allowed = !(fleet.mode == FLEET_REFUSE && i == fleet.refuse_item);
        r->limit = 50;
        r->remaining = r->allowed ? 49 : 0;
        r->reset_s = 7;
        r->retry_s = r->allowed ? 0 : 7;
        r->window_s = 60;
    }
    if (fleet.mode == FLEET_ERROR)
        status = -ETIMEDOUT;
    fleet.answered++;
    b->done(b, status);
}

static void pending_fire(uv_timer_t *t)
{
    pending_t *p = t->data;
    answer(p);
    uv_close((uv_handle_t *)&p->timer, pending_closed);
}

static int fleet_take(void *backend, gh_ratelimit_batch_t *b)
{
    assert_ptr_equal(backend, &fleet);
    fleet.takes++;
    fleet.num_items = b->num_items;
    for (size_t i = 0; i < b->num_items && i < 4; i++) {
        snprintf(fleet.keys[i], sizeof(fleet.keys[i]), "%.*s", (int)b->items[i].key_len,
                 b->items[i].key);
        fleet.ids[i] = b->items[i].spec->id;
    }
    if (fleet.mode == FLEET_FAIL_TAKE)
        return -ECONNREFUSED;
    pending_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->b = b;
    uv_timer_init(b->loop, &p->timer);
    p->timer.data = p;
    if (fleet.mode == FLEET_HOLD) {
        fleet.held = p;
        return 0;
    }
    uv_timer_start(&p->timer, pending_fire, 1, 0);
    return 0;
}

static const gh_ratelimit_fleet_t test_fleet = {
    .name = "testfleet", .take = fleet_take, .backend = &fleet};

static void fleet_release(void)
{
    pending_t *p = fleet.held;
    fleet.held = NULL;
    assert_non_null(p);
    uv_timer_start(&p->timer, pending_fire, 0, 0);
}

/* ---- the worker ---- */

static const char yaml[] =
    "store: {kind: redis}\n"
    "plans:\n"
    "  gold:\n"
    "    throttle: {rate: 1/h, burst: 3}\n"
    "    routes:\n"
    "      orders: {throttle: {rate: 1/h, burst: 1}}\n"
    "      catalog: {}\n"
    "  silver:\n"
    "    quota: {limit: 2, period: day}\n"
    "  open: {}\n"
    "  team:\n"
    "    throttle: {rate: 1/h, burst: 5}\n"
    "    quota: {limit: 9, period: month}\n"
    "    routes:\n"
    "      fleet: {throttle: {rate: 1/h, burst: 4}}\n"
    "      catalog: {}\n"
    "    mode: fleet\n"
    "    on_error: open\n"
    "listeners:\n"
    "  - name: edge\n"
    "    listen: 127.0.0.1:18077\n"
    "    routes:\n"
    "      - name: orders\n"
    "        match: {path: {exact: /orders}}\n"
    "        testid: {}\n"
    "        direct_response: {status: 200, body: orders}\n"
    "      - name: catalog\n"
    "        match: {path: {exact: /catalog}}\n"
    "        testid: {}\n"
    "        direct_response: {status: 200, body: catalog}\n"
    "      - name: mixed\n"
    "        match: {path: {exact: /mixed}}\n"
    "        testid: {}\n"
    "        rate_limits:\n"
    "          - {name: local, key: consumer, rate: 1/h, burst: 2}\n"
    "        direct_response: {status: 200, body: mixed}\n"
    "      - name: fleet\n"
    "        match: {path: {exact: /fleet}}\n"
    "        testid: {}\n"
    "        rate_limits:\n"
    "          - {name: local, key: 'header:x-tenant', rate: 1/h, burst: 2}\n"
    "          - {name: shared, key: consumer, rate: 50/min, mode: fleet}\n"
    "          - {name: shared2, key: address, rate: 50/min, mode: fleet, on_error: open}\n"
    "        direct_response: {status: 200, body: fleet}\n"
    "      - name: fleetopen\n"
    "        match: {path: {exact: /fleetopen}}\n"
    "        testid: {}\n"
    "        rate_limits:\n"
    "          - {name: soft, key: address, rate: 50/min, mode: fleet, on_error: open}\n"
    "        direct_response: {status: 200, body: open}\n"
    "      - name: skip\n"
    "        match: {path: {exact: /skip}}\n"
    "        testid: {}\n"
    "        rate_limits:\n"
    "          - {name: tenant, key: 'header:x-tenant', rate: 1/h, burst: 5, missing: skip}\n"
    "        direct_response: {status: 200, body: skip}\n"
    "      - name: public\n"
    "        match: {path: {exact: /public}}\n"
    "        direct_response: {status: 200, body: public}\n";

typedef struct {
    gh_snapshot_t *snap;
    gh_worker_t w;
    int port;
    int clients[16];
    unsigned num_clients;
} fixture_t;

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

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    memset(&fleet, 0, sizeof(fleet));
    register_types();
    gh_ratelimit_fleet_set(&test_fleet);
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("test.yaml", yaml, sizeof(yaml) - 1, &err);
    if (cfg == NULL) {
        print_error("config: %s\n", err.msg);
        return -1;
    }
    f->snap = gh_snapshot_new(cfg, 1);
    int fd = listen_loopback(&f->port);
    if (f->snap == NULL || fd < 0)
        return -1;
    int fds[1] = {fd};
    if (gh_worker_init(&f->w, 0, f->snap, fds) != 0)
        return -1;
    *state = f;
    return 0;
}

static void pump(fixture_t *f)
{
    uv_run(&f->w.loop, UV_RUN_NOWAIT);
    usleep(100);
}

#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        int turns_ = 0;                                                                            \
        while (!(cond)) {                                                                          \
            if (++turns_ > MAX_TURNS)                                                              \
                fail_msg("waited in vain for %s", #cond);                                          \
            pump(f);                                                                               \
        }                                                                                          \
    } while (0)

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (unsigned i = 0; i < f->num_clients; i++)
        if (f->clients[i] >= 0)
            close(f->clients[i]);
    RUN_UNTIL(f, f->w.num_conns == 0 && f->w.dead == NULL);
    assert_null(fleet.held);
    gh_worker_dispose(&f->w);
    gh_snapshot_unref(f->snap);
    gh_ratelimit_fleet_set(NULL);
    gh_filter_types_set(NULL);
    /* The counters outlive snapshots; each case starts with new ones. */
    gh_limit_table_free(table);
    table = NULL;
    free(f);
    return 0;
}

static int client_connect(fixture_t *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (unsigned i = 0; i < f->num_clients; i++)
        if (f->clients[i] < 0) {
            f->clients[i] = fd;
            return fd;
        }
    assert_true(f->num_clients < sizeof(f->clients) / sizeof(f->clients[0]));
    f->clients[f->num_clients++] = fd;
    return fd;
}

static void client_close(fixture_t *f, int fd)
{
    for (unsigned i = 0; i < f->num_clients; i++)
        if (f->clients[i] == fd)
            f->clients[i] = -1;
    close(fd);
}

/* One request on a new connection; the whole response (framed by its
 * Content-Length) into buf. Returns the status. */
static int request(fixture_t *f, const char *path, const char *fields, char *buf, size_t cap)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path,
                     fields ? fields : "");
    int fd = client_connect(f);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    size_t got = 0;
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
        pump(f);
    }
    client_close(f, fd);
    int status = 0;
    sscanf(buf, "HTTP/1.1 %d", &status);
    return status;
}

static int status_of(fixture_t *f, const char *path, const char *fields)
{
    char buf[4096];
    return request(f, path, fields, buf, sizeof(buf));
}

/* The value of a response field (first one), or "" */
static const char *field(const char *resp, const char *name, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\r\n%s: ", name);
    const char *p = strcasestr(resp, pat);
    out[0] = '\0';
    if (p == NULL)
        return out;
    p += strlen(pat);
    const char *e = strstr(p, "\r\n");
    snprintf(out, cap, "%.*s", (int)(e - p), p);
    return out;
}

/* ---- plans ---- */

static void test_plan_throttle_per_consumer(void **state)
{
    fixture_t *f = *state;
    char buf[4096], v[256];
    const char *alice = "x-consumer: alice\r\nx-plan: gold\r\n";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(request(f, "/catalog", alice, buf, sizeof(buf)), 200);
        snprintf(v, sizeof(v), "\"gold.throttle\";r=%d;t=", 2 - i);
        assert_non_null(strstr(field(buf, "RateLimit", v + 100, 150), v));
        assert_string_equal(field(buf, "RateLimit-Policy", v, sizeof(v)),
                            "\"gold.throttle\";q=3;w=10800");
    }
    assert_int_equal(request(f, "/catalog", alice, buf, sizeof(buf)), 429);
    assert_non_null(strstr(buf, "{\"error\":\"rate_limited\",\"detail\":\"rate limit "
                                "'gold.throttle' exceeded; retry after 3600 s\"}"));
    assert_string_equal(field(buf, "retry-after", v, sizeof(v)), "3600");
    /* Another consumer of the plan has its own bucket. */
    assert_int_equal(status_of(f, "/catalog", "x-consumer: bob\r\nx-plan: gold\r\n"), 200);
}

static void test_plan_route_throttle_and_refund(void **state)
{
    fixture_t *f = *state;
    char buf[4096], v[256];
    const char *alice = "x-consumer: alice\r\nx-plan: gold\r\n";
    /* orders: the plan's throttle and the route's (burst 1). */
    assert_int_equal(request(f, "/orders", alice, buf, sizeof(buf)), 200);
    assert_string_equal(field(buf, "RateLimit", v, sizeof(v)),
                        "\"gold.throttle\";r=2;t=3600, \"gold.route\";r=0;t=3600");
    /* Refused by the route's throttle: the plan's unit comes back. */
    assert_int_equal(request(f, "/orders", alice, buf, sizeof(buf)), 429);
    assert_non_null(strstr(buf, "'gold.route' exceeded"));
    /* So catalog still has two of the plan's three. */
    assert_int_equal(status_of(f, "/catalog", alice), 200);
    assert_int_equal(status_of(f, "/catalog", alice), 200);
    assert_int_equal(request(f, "/catalog", alice, buf, sizeof(buf)), 429);
    assert_non_null(strstr(buf, "'gold.throttle' exceeded"));
}

static void test_plan_routes_and_identities(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    /* gold lists orders and catalog: mixed is valid but not allowed. */
    assert_int_equal(
        request(f, "/mixed", "x-consumer: alice\r\nx-plan: gold\r\n", buf, sizeof(buf)), 403);
    assert_non_null(strstr(buf, "{\"error\":\"forbidden\",\"detail\":\"the API key's usage plan "
                                "does not include this route\"}"));
    /* A plan the config does not have: refused, not served unlimited. */
    assert_int_equal(
        request(f, "/catalog", "x-consumer: alice\r\nx-plan: platinum\r\n", buf, sizeof(buf)), 403);
    assert_non_null(strstr(buf, "usage plan is not configured"));
    /* Plan names are exact. */
    assert_int_equal(status_of(f, "/catalog", "x-consumer: alice\r\nx-plan: Gold\r\n"), 403);
    /* A plan without a consumer to count for. */
    assert_int_equal(status_of(f, "/catalog", "x-plan: gold\r\n"), 403);
    /* An identity without a plan, and no identity: no plan limits. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(request(f, "/catalog", "x-consumer: carol\r\n", buf, sizeof(buf)), 200);
        assert_null(strcasestr(buf, "ratelimit"));
        assert_int_equal(status_of(f, "/public", NULL), 200);
    }
    /* A plan without throttle, quota or routes: anything goes. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(status_of(f, "/mixed", "x-consumer: dan\r\nx-plan: open\r\n"),
                         i < 2 ? 200 : 429); /* mixed's own limit: 2 per consumer */
}

static void test_plan_quota_and_route_limits_together(void **state)
{
    fixture_t *f = *state;
    char buf[4096], v[256];
    const char *erin = "x-consumer: erin\r\nx-plan: silver\r\n";
    time_t now = time(NULL);
    assert_int_equal(request(f, "/mixed", erin, buf, sizeof(buf)), 200);
    field(buf, "RateLimit", v, sizeof(v));
    /* The route's limit first, then the plan's quota, until midnight UTC. */
    long t = 0;
    assert_int_equal(sscanf(v, "\"local\";r=1;t=3600, \"silver.quota\";r=1;t=%ld", &t), 1);
    long until = 86400 - (long)(now % 86400);
    assert_true(t <= until && t >= until - 2);
    assert_string_equal(field(buf, "RateLimit-Policy", v, sizeof(v)),
                        "\"local\";q=2;w=7200, \"silver.quota\";q=2;w=86400");
    assert_int_equal(status_of(f, "/mixed", erin), 200);
    /* Both spent at once: the route's limit answers first. */
    assert_int_equal(request(f, "/mixed", erin, buf, sizeof(buf)), 429);
    assert_non_null(strstr(buf, "'local' exceeded"));
    /* The quota is per consumer over every route of the plan. */
    assert_int_equal(request(f, "/catalog", erin, buf, sizeof(buf)), 429);
    assert_non_null(strstr(buf, "'silver.quota' exceeded"));
}

/* A route limit skipped (its key is missing) and a plan's limit taken:
 * as many limits taken as the route has, but not the route's. The
 * RateLimit-Policy field describes the limits in RateLimit, not the
 * route's precomputed line (which names the skipped limit and not the
 * plan's). */
static void test_plan_limit_beside_a_skipped_route_limit(void **state)
{
    fixture_t *f = *state;
    char buf[4096], v[256];
    const char *erin = "x-consumer: erin\r\nx-plan: silver\r\n";
    assert_int_equal(request(f, "/skip", erin, buf, sizeof(buf)), 200);
    assert_int_equal(strncmp(field(buf, "RateLimit", v, sizeof(v)), "\"silver.quota\";r=1;t=", 21),
                     0);
    assert_string_equal(field(buf, "RateLimit-Policy", v, sizeof(v)),
                        "\"silver.quota\";q=2;w=86400");
    assert_int_equal(request(f, "/skip", "x-consumer: erin\r\nx-plan: silver\r\nx-tenant: t\r\n",
                             buf, sizeof(buf)),
                     200);
    assert_string_equal(field(buf, "RateLimit-Policy", v, sizeof(v)),
                        "\"tenant\";q=5;w=18000, \"silver.quota\";q=2;w=86400");
    /* Without a plan, the route's own line. */
    assert_int_equal(request(f, "/skip", "x-consumer: carol\r\nx-tenant: t\r\n", buf, sizeof(buf)),
                     200);
    assert_string_equal(field(buf, "RateLimit-Policy", v, sizeof(v)), "\"tenant\";q=5;w=18000");
}

/* ---- fleet ---- */

static void test_fleet_allowed_refused_and_refunds(void **state)
{
    fixture_t *f = *state;
    char buf[4096], v[256];
    const char *req = "x-consumer: alice\r\nx-tenant: t1\r\n";
    fleet.mode = FLEET_ALLOW;
    assert_int_equal(request(f, "/fleet", req, buf, sizeof(buf)), 200);
    assert_int_equal(fleet.takes, 1);
    assert_int_equal(fleet.num_items, 2);
    assert_string_equal(fleet.keys[0], "alice");
    assert_string_equal(fleet.keys[1], "127.0.0.1");
    assert_int_not_equal(fleet.ids[0], fleet.ids[1]);
    assert_string_equal(field(buf, "RateLimit", v, sizeof(v)),
                        "\"local\";r=1;t=3600, \"shared\";r=49;t=7, \"shared2\";r=49;t=7");
    assert_string_equal(field(buf, "RateLimit-Policy", v, sizeof(v)),
                        "\"local\";q=2;w=7200, \"shared\";q=50;w=60, \"shared2\";q=50;w=60");
    /* Refused by a fleet limit: 429 for it, and the local unit back. */
    fleet.mode = FLEET_REFUSE;
    fleet.refuse_item = 0;
    assert_int_equal(request(f, "/fleet", req, buf, sizeof(buf)), 429);
    assert_non_null(strstr(buf, "'shared' exceeded; retry after 7 s"));
    assert_string_equal(field(buf, "retry-after", v, sizeof(v)), "7");
    fleet.mode = FLEET_ALLOW;
    assert_int_equal(request(f, "/fleet", req, buf, sizeof(buf)), 200);
    assert_non_null(strstr(field(buf, "RateLimit", v, sizeof(v)), "\"local\";r=0;"));
    /* A local refusal never asks the fleet. */
    unsigned takes = fleet.takes;
    assert_int_equal(status_of(f, "/fleet", req), 429);
    assert_int_equal(fleet.takes, takes);
}

static void test_fleet_errors_open_and_closed(void **state)
{
    fixture_t *f = *state;
    char buf[4096], v[256];
    /* A store that times out: "shared" fails closed (the default). */
    fleet.mode = FLEET_ERROR;
    assert_int_equal(request(f, "/fleet", "x-consumer: a\r\nx-tenant: t2\r\n", buf, sizeof(buf)),
                     503);
    assert_non_null(strstr(buf, "the rate limit store is unavailable"));
    /* ... and the local unit came back: two more pass. */
    fleet.mode = FLEET_ALLOW;
    assert_int_equal(status_of(f, "/fleet", "x-consumer: a\r\nx-tenant: t2\r\n"), 200);
    assert_int_equal(status_of(f, "/fleet", "x-consumer: a\r\nx-tenant: t2\r\n"), 200);
    /* on_error: open passes, without its fields. */
    fleet.mode = FLEET_ERROR;
    assert_int_equal(request(f, "/fleetopen", NULL, buf, sizeof(buf)), 200);
    assert_string_equal(field(buf, "RateLimit", v, sizeof(v)), "");
    /* A take that fails at once: the same, without a pause. */
    fleet.mode = FLEET_FAIL_TAKE;
    assert_int_equal(status_of(f, "/fleetopen", NULL), 200);
    assert_int_equal(status_of(f, "/fleet", "x-consumer: a\r\nx-tenant: t3\r\n"), 503);
}

/* A plan with mode: fleet: its limits join the route's fleet limits in
 * the one batch (after them), fail open as the plan says, and a local
 * plan stays local. */
static void test_fleet_plan(void **state)
{
    fixture_t *f = *state;
    char buf[4096], v[512];
    const char *alice = "x-consumer: alice\r\nx-plan: team\r\nx-tenant: t1\r\n";
    fleet.mode = FLEET_ALLOW;
    assert_int_equal(request(f, "/fleet", alice, buf, sizeof(buf)), 200);
    assert_int_equal(fleet.takes, 1);
    assert_int_equal(fleet.num_items, 5);
    assert_string_equal(fleet.keys[0], "alice");     /* shared */
    assert_string_equal(fleet.keys[1], "127.0.0.1"); /* shared2 */
    assert_string_equal(fleet.keys[2], "alice");     /* team.throttle */
    assert_string_equal(fleet.keys[3], "alice");     /* team.route */
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_int_not_equal(fleet.ids[i], fleet.ids[j]);
    assert_string_equal(field(buf, "RateLimit", v, sizeof(v)),
                        "\"local\";r=1;t=3600, \"shared\";r=49;t=7, \"shared2\";r=49;t=7, "
                        "\"team.throttle\";r=49;t=7, \"team.route\";r=49;t=7, "
                        "\"team.quota\";r=49;t=7");
    /* The quota (the fifth item) refuses: 429 for it, the local unit back. */
    fleet.mode = FLEET_REFUSE;
    fleet.refuse_item = 4;
    assert_int_equal(request(f, "/fleet", alice, buf, sizeof(buf)), 429);
    assert_non_null(strstr(buf, "'team.quota' exceeded; retry after 7 s"));
    fleet.mode = FLEET_ALLOW;
    assert_int_equal(request(f, "/fleet", alice, buf, sizeof(buf)), 200);
    assert_non_null(strstr(field(buf, "RateLimit", v, sizeof(v)), "\"local\";r=0;"));
    /* catalog: only the plan's limits, in fleet mode. The store fails: the
     * plan fails open, without its fields. */
    unsigned takes = fleet.takes;
    fleet.mode = FLEET_ERROR;
    assert_int_equal(
        request(f, "/catalog", "x-consumer: bob\r\nx-plan: team\r\n", buf, sizeof(buf)), 200);
    assert_int_equal(fleet.takes, takes + 1);
    assert_int_equal(fleet.num_items, 2); /* throttle and quota */
    assert_string_equal(field(buf, "RateLimit", v, sizeof(v)), "");
    /* /fleet with the same failure: the route's "shared" fails closed. */
    assert_int_equal(status_of(f, "/fleet", "x-consumer: bob\r\nx-plan: team\r\nx-tenant: t9\r\n"),
                     503);
    /* gold is a local plan: the fleet is not asked. */
    takes = fleet.takes;
    fleet.mode = FLEET_ALLOW;
    assert_int_equal(status_of(f, "/catalog", "x-consumer: carl\r\nx-plan: gold\r\n"), 200);
    assert_int_equal(fleet.takes, takes);
}

static void test_fleet_answer_after_the_client_left(void **state)
{
    fixture_t *f = *state;
    fleet.mode = FLEET_HOLD;
    int fd = client_connect(f);
    const char *req = "GET /fleetopen HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    RUN_UNTIL(f, fleet.held != NULL);
    /* The client leaves while the stream waits for the store. */
    client_close(f, fd);
    RUN_UNTIL(f, f->w.num_conns == 0 && f->w.dead == NULL);
    /* The answer comes for a stream that is gone: the call is freed. */
    fleet.mode = FLEET_ALLOW;
    fleet_release();
    RUN_UNTIL(f, fleet.answered == 1);
    assert_int_equal(status_of(f, "/fleetopen", NULL), 200);
}

/* ---- the decimal writer ---- */

static void test_put_u64(void **state)
{
    (void)state;
    static const uint64_t vs[] = {0,
                                  1,
                                  9,
                                  10,
                                  99,
                                  100,
                                  101,
                                  65535,
                                  99999,
                                  100000,
                                  4294967295ULL,
                                  4294967296ULL,
                                  9999999999999999999ULL,
                                  10000000000000000000ULL,
                                  UINT64_MAX};
    char a[32], b[32];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]) + 100000; i++) {
        uint64_t v;
        if (i < sizeof(vs) / sizeof(vs[0])) {
            v = vs[i];
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v = x >> (x % 64);
        }
        *put_u64(a, v) = '\0';
        snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
        assert_string_equal(a, b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plan_throttle_per_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_route_throttle_and_refund, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_routes_and_identities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_quota_and_route_limits_together, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_limit_beside_a_skipped_route_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fleet_allowed_refused_and_refunds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fleet_errors_open_and_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fleet_plan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fleet_answer_after_the_client_left, setup, teardown),
        cmocka_unit_test(test_put_u64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
