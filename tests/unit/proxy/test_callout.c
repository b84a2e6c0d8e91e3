/*
 * Callouts (gatehouse/callout.h, src/proxy/callout.c): a filter's own
 * HTTP/1.1 calls to a cluster over the router's pools.
 *
 * A test-only filter type, "testcall", starts one call per request to the
 * cluster its route names (testcall: {cluster: auth}), with what the
 * running case put in `plan`, and keeps what the callback got in `got`. A
 * real worker (gh_worker_init) serves the config on a loopback socket; the
 * upstream is a loopback listener polled between loop turns that answers
 * each whole request as the case scripts it (answer, answer in two pieces,
 * stall, close, reset, half-close, never read) and keeps every request it
 * got, byte for byte, with the connection it came on.
 *
 * callout.c is included, not linked, so the cases can see where a call
 * stands (writing, reading) before they cancel it. Under the ASan build a
 * callback after cancel, a use after free or a leak fails the case.
 *
 * The response reader (resread.c) is also fed directly, each response cut
 * at every byte and byte by byte, against the answer it gives whole.
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

#include <gatehouse/callout.h>
#include <gatehouse/config.h>
#include <gatehouse/filter.h>
#include <gatehouse/yaml.h>

#include "../../../src/proxy/callout.c"
#include "proxy/proxy.h"
#include "proxy/resread.h"
#include "proxy/worker.h"

#define MAX_TURNS 100000

/* ---- the upstream ---- */

enum {
    UP_REPLY = 0,    /* answer each request (in two pieces when split > 0) */
    UP_STALL,        /* read, never answer */
    UP_CLOSE,        /* close on a request, without a byte */
    UP_RST,          /* send split bytes of the answer, then reset */
    UP_HALF,         /* send the answer (reply_len may be 0), then shut down writing */
    UP_REPLY_CLOSE,  /* answer, then close (close-delimited bodies) */
    UP_NOREAD,       /* accept, never read */
    UP_PARTIAL,      /* send split bytes of the answer, then stall */
    UP_CLOSE_SECOND, /* answer a connection's first request, close on its second */
};

#define UP_MAX_CONNS 160
#define UP_MAX_REQS 512
#define UP_BUF (1u << 16)

typedef struct {
    int lfd;
    int port;
    unsigned accepts;
    int fds[UP_MAX_CONNS];
    char *buf[UP_MAX_CONNS];
    size_t len[UP_MAX_CONNS];
    unsigned reqs_on[UP_MAX_CONNS];
    unsigned num_fds;
    unsigned peer_closed; /* connections the worker closed (EOF or reset seen here) */
    char *reqs[UP_MAX_REQS];
    size_t req_len[UP_MAX_REQS];
    unsigned req_conn[UP_MAX_REQS];
    unsigned num_reqs;
    int mode;
    const char *reply;
    size_t reply_len;
    size_t split;
    /* The rest of a split answer: sent after rest_turns polls. */
    int rest_conn;
    size_t rest_off;
    int rest_turns;
    int rest_close; /* then close */
} upstream_t;

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

static const char *find_mem(const char *h, size_t hn, const char *n)
{
    size_t nn = strlen(n);
    for (size_t i = 0; i + nn <= hn; i++)
        if (strncasecmp(h + i, n, nn) == 0)
            return h + i;
    return NULL;
}

/* A whole request framed by Content-Length (callouts send no other). */
static size_t message_len(const char *p, size_t n)
{
    const char *end = find_mem(p, n, "\r\n\r\n");
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - p) + 4, body = 0;
    const char *cl = find_mem(p, head, "\r\ncontent-length:");
    if (cl != NULL)
        body = strtoul(cl + 17, NULL, 10);
    return n >= head + body ? head + body : 0;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            usleep(100);
            continue;
        }
        if (r < 0 && (errno == EPIPE || errno == ECONNRESET))
            return; /* gatehouse closed it (a cancelled call) */
        assert_true(r > 0);
        p += r;
        n -= (size_t)r;
    }
}

static void up_close_conn(upstream_t *u, unsigned i, int rst)
{
    if (rst) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(u->fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(u->fds[i]);
    u->fds[i] = -1;
}

static void up_answer(upstream_t *u, unsigned i)
{
    int fd = u->fds[i];
    switch (u->mode) {
    case UP_REPLY:
    case UP_REPLY_CLOSE:
        if (u->split > 0 && u->split < u->reply_len) {
            send_all(fd, u->reply, u->split);
            u->rest_conn = (int)i;
            u->rest_off = u->split;
            u->rest_turns = 3;
            u->rest_close = u->mode == UP_REPLY_CLOSE;
            return;
        }
        send_all(fd, u->reply, u->reply_len);
        if (u->mode == UP_REPLY_CLOSE)
            up_close_conn(u, i, 0);
        return;
    case UP_CLOSE:
        up_close_conn(u, i, 0);
        return;
    case UP_RST:
        send_all(fd, u->reply, u->split);
        up_close_conn(u, i, 1);
        return;
    case UP_HALF:
        send_all(fd, u->reply, u->reply_len);
        shutdown(fd, SHUT_WR);
        return;
    case UP_PARTIAL:
        send_all(fd, u->reply, u->split);
        return;
    case UP_CLOSE_SECOND:
        if (u->reqs_on[i] == 1)
            send_all(fd, u->reply, u->reply_len);
        else
            up_close_conn(u, i, 0);
        return;
    default:
        return;
    }
}

static void upstream_poll(upstream_t *u)
{
    int fd;
    while (u->num_fds < UP_MAX_CONNS && (fd = accept(u->lfd, NULL, NULL)) >= 0) {
        fcntl(fd, F_SETFL, O_NONBLOCK);
        u->fds[u->num_fds] = fd;
        u->buf[u->num_fds] = malloc(UP_BUF);
        assert_non_null(u->buf[u->num_fds]);
        u->len[u->num_fds] = 0;
        u->reqs_on[u->num_fds++] = 0;
        u->accepts++;
    }
    if (u->rest_turns > 0 && --u->rest_turns == 0 && u->fds[u->rest_conn] >= 0) {
        send_all(u->fds[u->rest_conn], u->reply + u->rest_off, u->reply_len - u->rest_off);
        if (u->rest_close)
            up_close_conn(u, (unsigned)u->rest_conn, 0);
    }
    if (u->mode == UP_NOREAD)
        return;
    for (unsigned i = 0; i < u->num_fds; i++) {
        if (u->fds[i] < 0)
            continue;
        if (u->len[i] == UP_BUF)
            u->len[i] = 0; /* a body too big to keep (never a whole request here) */
        ssize_t r = recv(u->fds[i], u->buf[i] + u->len[i], UP_BUF - u->len[i], 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            up_close_conn(u, i, 0);
            u->peer_closed++;
            continue;
        }
        if (r > 0)
            u->len[i] += (size_t)r;
        size_t m;
        while (u->fds[i] >= 0 && (m = message_len(u->buf[i], u->len[i])) > 0) {
            assert_true(u->num_reqs < UP_MAX_REQS);
            u->reqs[u->num_reqs] = malloc(m + 1);
            assert_non_null(u->reqs[u->num_reqs]);
            memcpy(u->reqs[u->num_reqs], u->buf[i], m);
            u->reqs[u->num_reqs][m] = '\0';
            u->req_len[u->num_reqs] = m;
            u->req_conn[u->num_reqs++] = i;
            memmove(u->buf[i], u->buf[i] + m, u->len[i] - m);
            u->len[i] -= m;
            u->reqs_on[i]++;
            up_answer(u, i);
        }
    }
}

static void upstream_close(upstream_t *u)
{
    for (unsigned i = 0; i < u->num_fds; i++) {
        if (u->fds[i] >= 0)
            close(u->fds[i]);
        free(u->buf[i]);
    }
    for (unsigned i = 0; i < u->num_reqs; i++)
        free(u->reqs[i]);
    if (u->lfd >= 0)
        close(u->lfd);
}

/* Open connections the upstream holds now. */
static unsigned up_open(const upstream_t *u)
{
    unsigned n = 0;
    for (unsigned i = 0; i < u->num_fds; i++)
        n += u->fds[i] >= 0;
    return n;
}

/* ---- the test filter ---- */

typedef struct {
    const char *method;
    const char *target;
    const char *host;
    gh_h1_header_t hdrs[4];
    size_t num_hdrs;
    const char *body;
    size_t body_len;
    uint64_t timeout_ms;
    size_t max_body;
    int cancel_now; /* cancel right after the start, before any event */
} plan_t;

typedef struct {
    unsigned finished; /* callbacks, failed starts, cancels right after the start */
    unsigned calls;    /* callbacks */
    unsigned cancels;  /* on_cancel ran */
    unsigned start_fails;
    int start_rc;
    int error;
    char reason[256];
    int status;
    char hdrs[1024]; /* "name: value\n" each */
    char *body;      /* heap */
    size_t body_len;
    int body_null;
} got_t;

static plan_t plan;
static got_t got;

typedef struct {
    char *cluster;
} tconf_t;

typedef struct {
    const gh_cluster_t *cluster;
} tinst_t;

typedef struct {
    gh_stream_handle_t *h;
    gh_callout_t *call;
} tctx_t;

static tctx_t *last_ctx; /* the running call's, for the cases that look inside */

static int tparse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg,
                  gh_route_t *route, void **conf)
{
    static const char *const keys[] = {"cluster", NULL};
    const gh_yaml_node_t *v;
    const char *name;
    int rc;
    (void)cfg;
    (void)route;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'testcall'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'testcall'")) != 0 ||
        (rc = gh_yaml_require(doc, n, "cluster", "'testcall'", &v)) != 0 ||
        (rc = gh_yaml_str(doc, v, "cluster", &name)) != 0)
        return rc;
    tconf_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->cluster = strdup(name)) == NULL) {
        free(t);
        return gh_yaml_oom(doc);
    }
    *conf = t;
    return 0;
}

static int tcheck(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const gh_config_t *cfg,
                  const gh_route_t *route, const void *conf)
{
    const tconf_t *t = conf;
    char what[128];
    snprintf(what, sizeof(what), "route '%s': testcall", route->name);
    return gh_callout_cluster_check(doc, gh_yaml_map_get(node, "cluster"), cfg, what, t->cluster);
}

static void tfree_conf(void *conf)
{
    tconf_t *t = conf;
    free(t->cluster);
    free(t);
}

static void *tbind(void *rt, const gh_config_t *cfg, const gh_route_t *route, const void *conf,
                   const char *listener)
{
    const tconf_t *t = conf;
    (void)rt;
    (void)route;
    (void)listener;
    tinst_t *in = calloc(1, sizeof(*in));
    if (in != NULL)
        in->cluster = gh_callout_cluster(cfg, t->cluster);
    return in;
}

static void tunbind(void *instance)
{
    free(instance);
}

static void on_done(void *arg, const gh_callout_result_t *res)
{
    tctx_t *ctx = arg;
    gh_callout_t *self = ctx->call;
    assert_non_null(self);
    ctx->call = NULL;
    got.calls++;
    got.finished++;
    got.error = res->error;
    snprintf(got.reason, sizeof(got.reason), "%s", res->reason ? res->reason : "");
    got.status = res->status;
    got.hdrs[0] = '\0';
    size_t o = 0;
    for (size_t i = 0; i < res->num_headers; i++)
        o += (size_t)snprintf(got.hdrs + o, sizeof(got.hdrs) - o, "%.*s: %.*s\n",
                              (int)res->headers[i].name_len, res->headers[i].name,
                              (int)res->headers[i].value_len, res->headers[i].value);
    free(got.body);
    got.body = malloc(res->body_len + 1);
    assert_non_null(got.body);
    if (res->body_len > 0)
        memcpy(got.body, res->body, res->body_len);
    got.body[res->body_len] = '\0';
    got.body_len = res->body_len;
    got.body_null = res->body == NULL;
    /* Cancelling from inside the callback does nothing. */
    gh_callout_cancel(self);
    gh_stream_t *s = gh_stream_handle_take(ctx->h);
    ctx->h = NULL;
    assert_non_null(s); /* on_cancel cancels: a callback always finds its stream */
    gh_stream_reply(s, 200, NULL, 0, "done", 4);
}

static gh_filter_status_t ton_request_headers(gh_stream_t *s, const void *conf, void *vctx)
{
    const tinst_t *in = conf;
    tctx_t *ctx = vctx;
    last_ctx = ctx;
    gh_callout_req_t q = {
        .method = plan.method,
        .target = plan.target,
        .target_len = plan.target ? strlen(plan.target) : 0,
        .host = plan.host,
        .host_len = plan.host ? strlen(plan.host) : 0,
        .headers = plan.hdrs,
        .num_headers = plan.num_hdrs,
        .body = plan.body,
        .body_len = plan.body_len,
        .timeout_ms = plan.timeout_ms,
        .max_body = plan.max_body,
    };
    ctx->h = gh_stream_pause(s);
    assert_non_null(ctx->h);
    int rc = gh_callout_start(s, in->cluster, &q, on_done, ctx, &ctx->call);
    got.start_rc = rc;
    if (rc < 0) {
        assert_null(ctx->call);
        got.start_fails++;
        got.finished++;
        gh_stream_handle_take(ctx->h);
        ctx->h = NULL;
        const char *name = gh_callout_error_name(rc);
        gh_stream_reply(s, 503, NULL, 0, name, strlen(name));
        return GH_FILTER_REPLIED;
    }
    assert_non_null(ctx->call);
    if (plan.cancel_now) {
        gh_callout_cancel(ctx->call);
        ctx->call = NULL;
        got.finished++;
        gh_stream_handle_take(ctx->h);
        ctx->h = NULL;
        gh_stream_reply(s, 200, NULL, 0, "cancelled", 9);
        return GH_FILTER_REPLIED;
    }
    return GH_FILTER_PAUSE;
}

static void ton_cancel(gh_stream_t *s, const void *conf, void *vctx)
{
    tctx_t *ctx = vctx;
    (void)s;
    (void)conf;
    got.cancels++;
    gh_callout_cancel(ctx->call);
    ctx->call = NULL;
    assert_null(gh_stream_handle_take(ctx->h));
    ctx->h = NULL;
}

static void ton_destroy(gh_stream_t *s, const void *conf, void *vctx)
{
    (void)s;
    (void)conf;
    if (last_ctx == vctx)
        last_ctx = NULL;
}

static const gh_filter_type_t test_filter = {
    .name = "testcall",
    .phase = GH_PHASE_AUTHN,
    .ctx_size = sizeof(tctx_t),
    .parse = tparse,
    .check = tcheck,
    .free_conf = tfree_conf,
    .bind = tbind,
    .unbind = tunbind,
    .on_request_headers = ton_request_headers,
    .on_cancel = ton_cancel,
    .on_destroy = ton_destroy,
};

static const gh_filter_type_t *types[16];

static void register_types(void)
{
    const gh_filter_type_t *const *product = gh_filter_types();
    size_t n = 0;
    types[n++] = &test_filter;
    for (size_t i = 0; product[i] != NULL; i++) {
        assert_true(n < sizeof(types) / sizeof(types[0]) - 1);
        types[n++] = product[i];
    }
    types[n] = NULL;
    gh_filter_types_set(types);
}

/* ---- the fixture ---- */

enum { CL_AUTH = 0, CL_REFUSED, CL_ONE };

static const char yaml_fmt[] = "listeners:\n"
                               "  - name: edge\n"
                               "    listen: 127.0.0.1:18078\n"
                               "    routes:\n"
                               "      - name: auth\n"
                               "        match: {path: {exact: /auth}}\n"
                               "        testcall: {cluster: auth}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: refused\n"
                               "        match: {path: {exact: /refused}}\n"
                               "        testcall: {cluster: refused}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: one\n"
                               "        match: {path: {exact: /one}}\n"
                               "        testcall: {cluster: one}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: routed\n"
                               "        match: {path: {exact: /routed}}\n"
                               "        to: one\n"
                               "clusters:\n"
                               "  auth:\n"
                               "    endpoints: [\"127.0.0.1:%d\"]\n"
                               "  refused:\n"
                               "    endpoints: [\"127.0.0.1:%d\"]\n"
                               "  one:\n"
                               "    endpoints: [\"127.0.0.1:%d\"]\n"
                               "    max_connections: 1\n"
                               "    max_pending: 1\n";

typedef struct {
    gh_snapshot_t *snap;
    gh_worker_t w;
    int port;
    upstream_t up;
    int clients[256];
    unsigned num_clients;
} fixture_t;

static void plan_default(void)
{
    memset(&plan, 0, sizeof(plan));
    plan.method = "GET";
    plan.target = "/check";
    plan.timeout_ms = 10000;
    plan.max_body = 1 << 20;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    plan_default();
    free(got.body);
    memset(&got, 0, sizeof(got));
    f->up.lfd = listen_loopback(&f->up.port);
    if (f->up.lfd < 0 || listen(f->up.lfd, 16) != 0)
        return -1;
    fcntl(f->up.lfd, F_SETFL, O_NONBLOCK);
    /* A port nobody listens on: bound, never listening, so connects to it
     * are refused for as long as the case runs. */
    int refused_port, rfd = listen_loopback(&refused_port);
    if (rfd < 0)
        return -1;
    char yaml[sizeof(yaml_fmt) + 64];
    int n = snprintf(yaml, sizeof(yaml), yaml_fmt, f->up.port, refused_port, f->up.port);
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("test.yaml", yaml, (size_t)n, &err);
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
    f->up.rest_conn = -1;
    f->clients[f->num_clients++] = rfd; /* closed with the clients */
    *state = f;
    return 0;
}

static void pump(fixture_t *f)
{
    uv_run(&f->w.loop, UV_RUN_NOWAIT);
    upstream_poll(&f->up);
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
    gh_worker_dispose(&f->w);
    gh_snapshot_unref(f->snap);
    upstream_close(&f->up);
    free(got.body);
    got.body = NULL;
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

/* A client that leaves with a reset: a proxied request is then aborted
 * (a plain close after the whole request still waits for its answer). */
static void client_reset(fixture_t *f, int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    client_close(f, fd);
}

/* Sends a request for path on a new client connection (left open). */
static int request(fixture_t *f, const char *path)
{
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path);
    int fd = client_connect(f);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

/* One call through path; waits for its callback and closes the client. */
static void call(fixture_t *f, const char *path)
{
    unsigned n = got.finished;
    int fd = request(f, path);
    RUN_UNTIL(f, got.finished > n);
    client_close(f, fd);
}

static gh_pool_t *pool_of(fixture_t *f, size_t cluster)
{
    return &f->w.cur->pools[cluster][0];
}

static gh_cluster_stats_t *stats_of(fixture_t *f, size_t cluster)
{
    gh_cluster_stats_t *st = gh_metrics_cluster(f->w.metrics, f->snap->cluster_ids[cluster]);
    assert_non_null(st);
    return st;
}

static void set_reply(fixture_t *f, int mode, const char *reply)
{
    f->up.mode = mode;
    f->up.reply = reply;
    f->up.reply_len = reply ? strlen(reply) : 0;
    f->up.split = 0;
}

/* The call's connection is gone: closed on gatehouse's side (the upstream
 * saw its end), not in the pool. */
static void expect_conn_closed(fixture_t *f, size_t cluster)
{
    RUN_UNTIL(f, pool_of(f, cluster)->num_conns == 0 && up_open(&f->up) == 0);
    assert_int_equal(pool_of(f, cluster)->num_idle, 0);
    assert_int_equal(pool_of(f, cluster)->active, 0);
}

/* ---- answers ---- */

static const char r_length[] = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello";
static const char r_chunked[] = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n"
                                "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: v\r\n\r\n";
static const char r_close[] = "HTTP/1.1 200 OK\r\nx-a: 1\r\n\r\nuntil close";

static void test_content_length(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, r_length);
    plan.method = "POST";
    plan.target = "/check?x=1&y=%20";
    plan.hdrs[0] = (gh_h1_header_t){"x-test", 6, "v 1", 3};
    plan.hdrs[1] = (gh_h1_header_t){"Authorization", 13, "Bearer t", 8};
    plan.num_hdrs = 2;
    plan.body = "body";
    plan.body_len = 4;
    call(f, "/auth");
    assert_int_equal(got.calls, 1);
    assert_int_equal(got.error, 0);
    assert_int_equal(got.status, 200);
    assert_string_equal(got.body, "hello");
    assert_string_equal(got.hdrs, "content-length: 5\nx-a: 1\n");
    /* What went upstream, byte for byte: Host from the endpoint, the
     * fields in order, the body framed by Content-Length. */
    char want[256];
    snprintf(want, sizeof(want),
             "POST /check?x=1&y=%%20 HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nx-test: v 1\r\n"
             "Authorization: Bearer t\r\ncontent-length: 4\r\n\r\nbody",
             f->up.port);
    assert_int_equal(f->up.num_reqs, 1);
    assert_string_equal(f->up.reqs[0], want);
    /* Kept for the next call. */
    RUN_UNTIL(f, pool_of(f, CL_AUTH)->num_idle == 1);
    assert_int_equal(pool_of(f, CL_AUTH)->active, 0);
    assert_int_equal(stats_of(f, CL_AUTH)->callouts[0], 1);
}

static void test_host_override_and_empty_post(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, "HTTP/1.1 204 No Content\r\n\r\n");
    plan.method = "POST";
    plan.host = "authz.internal:8443";
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    assert_int_equal(got.status, 204);
    assert_int_equal(got.body_len, 0);
    assert_true(got.body_null);
    assert_string_equal(f->up.reqs[0], "POST /check HTTP/1.1\r\nhost: authz.internal:8443\r\n"
                                       "content-length: 0\r\n\r\n");
}

static void test_chunked(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, r_chunked);
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    assert_int_equal(got.status, 200);
    assert_string_equal(got.body, "hello world");
    assert_string_equal(got.hdrs, "transfer-encoding: chunked\nx-a: 1\n");
    RUN_UNTIL(f, pool_of(f, CL_AUTH)->num_idle == 1);
}

static void test_close_delimited(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY_CLOSE, r_close);
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    assert_string_equal(got.body, "until close");
    expect_conn_closed(f, CL_AUTH);
}

/* Every answer, cut in two at every byte, read in two reads: the same
 * result. Keep-alive answers come on one connection throughout. */
static void split_every_byte(fixture_t *f, int mode, const char *reply, const char *body)
{
    size_t n = strlen(reply);
    unsigned calls = got.calls;
    for (size_t k = 1; k < n; k++) {
        set_reply(f, mode, reply);
        f->up.split = k;
        call(f, "/auth");
        assert_int_equal(got.calls, ++calls);
        if (got.error != 0)
            fail_msg("split at %zu: %s", k, got.reason);
        assert_int_equal(got.status, 200);
        assert_string_equal(got.body, body);
    }
}

static void test_split_length(void **state)
{
    fixture_t *f = *state;
    split_every_byte(f, UP_REPLY, r_length, "hello");
    assert_int_equal(f->up.accepts, 1);
}

static void test_split_chunked_after_interim(void **state)
{
    fixture_t *f = *state;
    static const char r[] = "HTTP/1.1 100 Continue\r\n\r\n"
                            "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
                            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    split_every_byte(f, UP_REPLY, r, "hello world");
    assert_int_equal(f->up.accepts, 1);
}

static void test_split_close_delimited(void **state)
{
    fixture_t *f = *state;
    split_every_byte(f, UP_REPLY_CLOSE, r_close, "until close");
    assert_int_equal(f->up.accepts, strlen(r_close) - 1);
}

static void test_interim_then_final(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY,
              "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
              "HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\nx-why: no\r\n\r\nno");
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    assert_int_equal(got.status, 403);
    assert_string_equal(got.hdrs, "content-length: 2\nx-why: no\n");
    assert_string_equal(got.body, "no");
}

static void expect_error(fixture_t *f, int code)
{
    assert_int_equal(got.calls, 1);
    if (got.error != code)
        fail_msg("got %s (%s, body %s), wanted %s", gh_callout_error_name(got.error), got.reason,
                 got.body, gh_callout_error_name(code));
    assert_true(got.reason[0] != '\0');
    assert_int_equal(got.status, 0);
    assert_int_equal(got.body_len, 0);
    assert_int_equal(stats_of(f, CL_AUTH)->callouts[-code], 1);
}

static void test_too_large_length(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, r_length);
    plan.max_body = 4;
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_TOO_LARGE);
    expect_conn_closed(f, CL_AUTH);
}

static void test_too_large_chunked(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, r_chunked);
    plan.max_body = 10; /* "hello world" is 11 */
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_TOO_LARGE);
    expect_conn_closed(f, CL_AUTH);
}

static void test_too_large_close_delimited(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY_CLOSE, r_close);
    plan.max_body = 0;
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_TOO_LARGE);
    expect_conn_closed(f, CL_AUTH);
}

static void test_at_limit(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, r_chunked);
    plan.max_body = 11;
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    assert_string_equal(got.body, "hello world");
}

static void malformed(fixture_t *f, const char *reply)
{
    set_reply(f, UP_REPLY, reply);
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_MALFORMED);
    expect_conn_closed(f, CL_AUTH);
}

static void test_malformed_status(void **state)
{
    malformed(*state, "HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n");
}

static void test_malformed_version(void **state)
{
    malformed(*state, "HTTP/2.0 200 OK\r\ncontent-length: 0\r\n\r\n");
}

static void test_malformed_field(void **state)
{
    malformed(*state, "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n");
}

static void test_malformed_bare_lf(void **state)
{
    malformed(*state, "HTTP/1.1 200 OK\ncontent-length: 0\n\n");
}

static void test_malformed_two_lengths(void **state)
{
    malformed(*state, "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab");
}

static void test_malformed_chunk(void **state)
{
    malformed(*state, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
}

static void test_malformed_switching(void **state)
{
    malformed(*state, "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n");
}

static void test_timeout_stall(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_STALL, NULL);
    plan.timeout_ms = 150;
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_TIMEOUT);
    assert_int_equal(f->up.num_reqs, 1);
    expect_conn_closed(f, CL_AUTH);
    assert_int_equal(f->up.peer_closed, 1); /* closed by gatehouse */
    assert_int_equal(stats_of(f, CL_AUTH)->timeouts, 1);
}

static void test_reset_mid_response(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_RST, r_length);
    f->up.split = strlen(r_length) - 2;
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_RESET);
    assert_int_equal(f->up.num_reqs, 1);
    expect_conn_closed(f, CL_AUTH);
}

static void test_reset_mid_close_delimited(void **state)
{
    fixture_t *f = *state;
    /* A reset is not the end of a body that ends at the close. */
    set_reply(f, UP_RST, r_close);
    f->up.split = strlen(r_close) - 2;
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_RESET);
}

static void test_close_before_responding(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_CLOSE, NULL);
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_RESET);
    assert_int_equal(f->up.num_reqs, 1); /* a fresh connection's close is not retried */
    assert_int_equal(f->up.accepts, 1);
    expect_conn_closed(f, CL_AUTH);
}

static void test_half_close_before_responding(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_HALF, "");
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_RESET);
    expect_conn_closed(f, CL_AUTH);
}

static void test_half_close_after_response(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_HALF, r_length);
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    assert_string_equal(got.body, "hello");
    /* The upstream's FIN reaches the pooled connection: it goes. */
    expect_conn_closed(f, CL_AUTH);
}

static void test_half_close_ends_close_delimited(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_HALF, r_close);
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    assert_string_equal(got.body, "until close");
    expect_conn_closed(f, CL_AUTH);
}

static void test_half_close_mid_length(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_HALF, "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhello");
    call(f, "/auth");
    expect_error(f, GH_CALLOUT_E_RESET);
    expect_conn_closed(f, CL_AUTH);
}

static void test_connect_refused(void **state)
{
    fixture_t *f = *state;
    call(f, "/refused");
    assert_int_equal(got.calls, 1);
    assert_int_equal(got.error, GH_CALLOUT_E_CONNECT);
    assert_non_null(strstr(got.reason, "failed"));
    assert_int_equal(stats_of(f, CL_REFUSED)->connect_failures, 1);
    assert_int_equal(stats_of(f, CL_REFUSED)->callouts[-GH_CALLOUT_E_CONNECT], 1);
    RUN_UNTIL(f, pool_of(f, CL_REFUSED)->num_conns == 0);
}

/* The cluster "one" has max_connections 1: a call in flight holds it, a
 * second call finds the pool full at once (calls never queue). */
static void test_pool_full(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_STALL, NULL);
    int first = request(f, "/one");
    RUN_UNTIL(f, f->up.num_reqs == 1);
    assert_int_equal(pool_of(f, CL_ONE)->num_conns, 1);
    call(f, "/one");
    assert_int_equal(got.start_fails, 1);
    assert_int_equal(got.start_rc, GH_CALLOUT_E_POOL_FULL);
    assert_int_equal(got.calls, 0);
    assert_int_equal(stats_of(f, CL_ONE)->callouts[-GH_CALLOUT_E_POOL_FULL], 1);
    /* The first call's client leaves: cancelled, its connection closed. */
    client_close(f, first);
    RUN_UNTIL(f, got.cancels == 1);
    expect_conn_closed(f, CL_ONE);
    assert_int_equal(got.calls, 0);
    assert_int_equal(stats_of(f, CL_ONE)->callouts[-GH_CALLOUT_E_CANCELLED], 1);
}

/* A route and a call share the pool of a cluster: a proxied request in
 * flight holds the only connection, and a call finds the pool full. */
static void test_pool_shared_with_router(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_STALL, NULL);
    int routed = request(f, "/routed");
    RUN_UNTIL(f, f->up.num_reqs == 1);
    call(f, "/one");
    assert_int_equal(got.start_rc, GH_CALLOUT_E_POOL_FULL);
    client_reset(f, routed);
    RUN_UNTIL(f, pool_of(f, CL_ONE)->num_conns == 0);
    /* And the connection a call leaves idle serves the route. */
    set_reply(f, UP_REPLY, r_length);
    call(f, "/one");
    assert_int_equal(got.error, 0);
    RUN_UNTIL(f, pool_of(f, CL_ONE)->num_idle == 1);
    unsigned accepts = f->up.accepts;
    int fd = request(f, "/routed");
    RUN_UNTIL(f, f->up.num_reqs == 3);
    assert_int_equal(f->up.accepts, accepts);
    assert_memory_equal(f->up.reqs[2], "GET /routed HTTP/1.1\r\n", 22);
    assert_int_equal(f->up.req_conn[2], f->up.req_conn[1]);
    client_close(f, fd);
}

static void test_keep_alive_reuse(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, r_chunked);
    call(f, "/auth");
    call(f, "/auth");
    set_reply(f, UP_REPLY, r_length);
    call(f, "/auth");
    assert_int_equal(got.calls, 3);
    assert_int_equal(got.error, 0);
    assert_int_equal(f->up.num_reqs, 3);
    assert_int_equal(f->up.accepts, 1);
    assert_int_equal(stats_of(f, CL_AUTH)->pool_hits, 2);
    assert_int_equal(stats_of(f, CL_AUTH)->conns_total, 1);
    assert_int_equal(stats_of(f, CL_AUTH)->callouts[0], 3);
}

/* An answer with bytes after its end (a second response nobody asked
 * for) is taken, and the connection is not reused. */
static void test_extra_bytes_not_reused(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n");
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    assert_string_equal(got.body, "ok");
    expect_conn_closed(f, CL_AUTH);
}

static void test_connection_close_not_reused(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok");
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    expect_conn_closed(f, CL_AUTH);
}

static void test_cancel_before_connect(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, r_length);
    plan.cancel_now = 1;
    call(f, "/auth");
    int fd = request(f, "/auth");
    RUN_UNTIL(f, stats_of(f, CL_AUTH)->callouts[-GH_CALLOUT_E_CANCELLED] == 2);
    client_close(f, fd);
    assert_int_equal(got.calls, 0);
    assert_int_equal(got.start_fails, 0);
    expect_conn_closed(f, CL_AUTH);
    assert_int_equal(f->up.num_reqs, 0);
    /* A call after them is served. */
    plan.cancel_now = 0;
    call(f, "/auth");
    assert_int_equal(got.error, 0);
}

static void test_cancel_on_reused_before_write_completes(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, r_length);
    call(f, "/auth");
    RUN_UNTIL(f, pool_of(f, CL_AUTH)->num_idle == 1);
    /* Taken from the pool and written at once, then cancelled: the
     * connection, whose answer is now on its way, is not reused. */
    plan.cancel_now = 1;
    call(f, "/auth");
    RUN_UNTIL(f, stats_of(f, CL_AUTH)->callouts[-GH_CALLOUT_E_CANCELLED] == 1);
    expect_conn_closed(f, CL_AUTH);
    assert_int_equal(got.calls, 1);
    plan.cancel_now = 0;
    call(f, "/auth");
    assert_int_equal(got.calls, 2);
    assert_int_equal(got.error, 0);
    assert_int_equal(f->up.accepts, 2);
}

static void test_cancel_while_writing(void **state)
{
    fixture_t *f = *state;
    size_t big = 32u << 20; /* more than any socket buffers hold */
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, 'b', big);
    set_reply(f, UP_NOREAD, NULL);
    plan.method = "PUT";
    plan.body = body;
    plan.body_len = big;
    int fd = request(f, "/auth");
    RUN_UNTIL(f, last_ctx != NULL && last_ctx->call != NULL && last_ctx->call->up != NULL &&
                     last_ctx->call->up->connected && last_ctx->call->up->wpending);
    for (int i = 0; i < 20; i++)
        pump(f);
    assert_true(last_ctx->call->up->wpending); /* still writing: the upstream reads nothing */
    client_close(f, fd);
    RUN_UNTIL(f, got.cancels == 1);
    assert_int_equal(pool_of(f, CL_AUTH)->num_idle, 0);
    /* The body can go now: nothing writes from it any more. */
    memset(body, 0, big);
    free(body);
    set_reply(f, UP_STALL, NULL); /* read again, to see the close */
    expect_conn_closed(f, CL_AUTH);
    assert_int_equal(f->up.peer_closed, 1);
    assert_int_equal(got.calls, 0);
    assert_int_equal(f->up.num_reqs, 0);
}

static void test_cancel_while_reading(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_PARTIAL, r_chunked);
    f->up.split = strlen(r_chunked) - 10; /* the head and part of the body */
    int fd = request(f, "/auth");
    RUN_UNTIL(f, last_ctx != NULL && last_ctx->call != NULL && last_ctx->call->rr.head_done &&
                     last_ctx->call->rr.body_len > 0);
    client_close(f, fd);
    RUN_UNTIL(f, got.cancels == 1);
    expect_conn_closed(f, CL_AUTH);
    assert_int_equal(got.calls, 0);
    assert_int_equal(f->up.peer_closed, 1);
    /* A call after it gets a connection of its own and a whole answer. */
    set_reply(f, UP_REPLY, r_length);
    call(f, "/auth");
    assert_int_equal(got.error, 0);
    assert_string_equal(got.body, "hello");
    assert_int_equal(f->up.accepts, 2);
}

static void test_cancel_while_connecting_refused(void **state)
{
    fixture_t *f = *state;
    plan.cancel_now = 1;
    call(f, "/refused");
    assert_int_equal(got.calls, 0);
    /* The refusal that comes later finds no call. */
    for (int i = 0; i < 50; i++)
        pump(f);
    assert_int_equal(got.calls, 0);
    RUN_UNTIL(f, pool_of(f, CL_REFUSED)->num_conns == 0);
}

/* The upstream closed a pooled connection while it was idle, and the
 * next call starts in the loop turn that brings the close, before the
 * idle connection's read sees it: the client's request is made ready
 * first (epoll reports in order of readiness). The call must not die on
 * the dead connection: it is found out before use (a peek), or, for an
 * idempotent call, sent again on a fresh one. */
static void stale_pooled(fixture_t *f, const char *method)
{
    set_reply(f, UP_REPLY, r_length);
    plan.method = method;
    call(f, "/auth");
    RUN_UNTIL(f, pool_of(f, CL_AUTH)->num_idle == 1 && f->w.num_conns == 0);
    int fd = client_connect(f);
    RUN_UNTIL(f, f->w.num_conns == 1);
    /* libuv adds a socket to epoll at the poll after its read starts: one
     * more turn, so that its readiness is queued before the close's. */
    pump(f);
    pump(f);
    static const char req[] = "GET /auth HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
    up_close_conn(&f->up, 0, 0);
    RUN_UNTIL(f, got.calls == 2);
    client_close(f, fd);
    if (got.error != 0)
        fail_msg("%s: %s", gh_callout_error_name(got.error), got.reason);
    assert_string_equal(got.body, "hello");
    assert_int_equal(f->up.accepts, 2);
}

static void test_stale_pooled_get(void **state)
{
    stale_pooled(*state, "GET");
}

static void test_stale_pooled_post(void **state)
{
    /* Not retried once written: the peek before use is what saves it. */
    stale_pooled(*state, "POST");
}

/* The keep-alive race: the upstream closes a reused connection after the
 * request reached it, without a byte back. An idempotent call goes again
 * on a fresh connection; a POST never goes twice. */
static void test_reused_closed_get_retried(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_CLOSE_SECOND, r_length);
    call(f, "/auth");
    call(f, "/auth");
    assert_int_equal(got.calls, 2);
    assert_int_equal(got.error, 0);
    assert_int_equal(f->up.accepts, 2);
    assert_int_equal(f->up.num_reqs, 3);
    assert_string_equal(f->up.reqs[1], f->up.reqs[2]);
}

static void test_reused_closed_post_not_retried(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_CLOSE_SECOND, r_length);
    plan.method = "POST";
    plan.body = "x";
    plan.body_len = 1;
    call(f, "/auth");
    call(f, "/auth");
    assert_int_equal(got.calls, 2);
    assert_int_equal(got.error, GH_CALLOUT_E_RESET);
    assert_int_equal(f->up.accepts, 1);
    assert_int_equal(f->up.num_reqs, 2);
}

static void expect_invalid(fixture_t *f)
{
    unsigned n = got.start_fails;
    call(f, "/auth");
    assert_int_equal(got.start_fails, n + 1);
    assert_int_equal(got.start_rc, GH_CALLOUT_E_INVALID);
    assert_int_equal(got.calls, 0);
    plan_default();
}

static void test_invalid_requests(void **state)
{
    fixture_t *f = *state;
    static const char *const owned[] = {
        "Content-Length", "transfer-encoding", "host",   "connection",      "keep-alive", "te",
        "trailer",        "upgrade",           "expect", "proxy-connection"};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
        plan.hdrs[0] = (gh_h1_header_t){owned[i], strlen(owned[i]), "1", 1};
        plan.num_hdrs = 1;
        expect_invalid(f);
    }
    plan.hdrs[0] = (gh_h1_header_t){"x-a", 3, "v\r\nx-b: w", 10};
    plan.num_hdrs = 1;
    expect_invalid(f);
    plan.hdrs[0] = (gh_h1_header_t){"x a", 3, "v", 1};
    plan.num_hdrs = 1;
    expect_invalid(f);
    plan.hdrs[0] = (gh_h1_header_t){"", 0, "v", 1};
    plan.num_hdrs = 1;
    expect_invalid(f);
    plan.method = "HEAD";
    expect_invalid(f);
    plan.method = "CONNECT";
    expect_invalid(f);
    plan.method = "GE T";
    expect_invalid(f);
    plan.target = "http://a/";
    expect_invalid(f);
    plan.target = "/a b";
    expect_invalid(f);
    plan.target = "/a\r\nx: y";
    expect_invalid(f);
    plan.host = "a b";
    expect_invalid(f);
    plan.host = "user@host";
    expect_invalid(f);
    plan.timeout_ms = 0;
    expect_invalid(f);
    assert_int_equal(f->up.accepts, 0);
    assert_int_equal(stats_of(f, CL_AUTH)->callouts[-GH_CALLOUT_E_INVALID], 22);
}

static void test_unknown_cluster_refused_at_load(void **state)
{
    (void)state;
    static const char y[] = "listeners:\n"
                            "  - name: edge\n"
                            "    listen: 127.0.0.1:18078\n"
                            "    routes:\n"
                            "      - name: r\n"
                            "        testcall: {cluster: nope}\n"
                            "        direct_response: {status: 200}\n"
                            "clusters:\n"
                            "  auth: {endpoints: [\"127.0.0.1:1\"]}\n";
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("t.yaml", y, sizeof(y) - 1, &err);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, "t.yaml:6:"));
    assert_non_null(strstr(err.msg, "route 'r': testcall names unknown cluster 'nope'"));
}

static void test_metrics_rendered(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY, r_length);
    call(f, "/auth");
    size_t len;
    char *m = gh_metrics_render(&len);
    assert_non_null(m);
    assert_non_null(strstr(m, "# TYPE gatehouse_callouts_total counter\n"));
    assert_non_null(strstr(m, "gatehouse_callouts_total{cluster=\"auth\",outcome=\"ok\"} "));
    assert_non_null(strstr(m, "gatehouse_callouts_total{cluster=\"auth\",outcome=\"cancelled\"} "));
    free(m);
}

/* ---- the reader, fed directly ---- */

typedef struct {
    int rc;
    int status;
    char body[256];
    size_t body_len;
    size_t left; /* bytes left in the buffer after the end */
} rout_t;

/* Feeds msg in pieces: cut at k (0: whole; SIZE_MAX: byte by byte), then
 * the end (EOF or reset) when end is not OPEN. */
static void feed(const char *msg, size_t n, size_t k, int end, size_t max_body, rout_t *o)
{
    gh_h1_header_t scratch[16];
    gh_resread_t r;
    gh_resread_init(&r);
    r.max_head = 4096;
    r.max_headers = 16;
    r.max_body = max_body;
    r.scratch = scratch;
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    size_t len = 0, off = 0;
    int rc = GH_RESREAD_MORE;
    while (off < n && rc == GH_RESREAD_MORE) {
        size_t step = k == 0 ? n : k == SIZE_MAX ? 1 : (off < k ? k - off : n - off);
        if (step > n - off)
            step = n - off;
        memcpy(buf + len, msg + off, step);
        len += step;
        off += step;
        rc = gh_resread_feed(&r, buf, &len, GH_RESREAD_OPEN);
    }
    if (rc == GH_RESREAD_MORE && end != GH_RESREAD_OPEN)
        rc = gh_resread_feed(&r, buf, &len, end);
    o->rc = rc;
    o->status = rc == GH_RESREAD_DONE ? r.res.status : 0;
    o->body_len = rc == GH_RESREAD_DONE ? r.body_len : 0;
    assert_true(o->body_len < sizeof(o->body));
    if (o->body_len > 0)
        memcpy(o->body, r.body, o->body_len);
    o->left = len + (n - off);
    free(buf);
    gh_resread_dispose(&r);
}

static void same_every_split(const char *msg, int end, size_t max_body, int want_rc,
                             const char *want_body)
{
    size_t n = strlen(msg);
    rout_t whole, o;
    feed(msg, n, 0, end, max_body, &whole);
    assert_int_equal(whole.rc, want_rc);
    if (want_body != NULL) {
        assert_int_equal(whole.body_len, strlen(want_body));
        assert_memory_equal(whole.body, want_body, whole.body_len);
    }
    for (size_t k = 1; k <= n; k++) {
        feed(msg, n, k == n ? SIZE_MAX : k, end, max_body, &o);
        if (o.rc != whole.rc || o.status != whole.status || o.body_len != whole.body_len ||
            memcmp(o.body, whole.body, o.body_len) != 0 ||
            (o.rc == GH_RESREAD_DONE && o.left != whole.left))
            fail_msg("%s cut at %zu: rc %d, whole %d", msg, k, o.rc, whole.rc);
    }
}

static void test_reader_splits(void **state)
{
    (void)state;
    same_every_split(r_length, GH_RESREAD_OPEN, 100, GH_RESREAD_DONE, "hello");
    same_every_split(r_chunked, GH_RESREAD_OPEN, 100, GH_RESREAD_DONE, "hello world");
    same_every_split(r_close, GH_RESREAD_EOF, 100, GH_RESREAD_DONE, "until close");
    same_every_split(r_close, GH_RESREAD_BROKE, 100, GH_CALLOUT_E_RESET, NULL);
    same_every_split("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                     "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcHTTP/1.1",
                     GH_RESREAD_OPEN, 100, GH_RESREAD_DONE, "abc");
    same_every_split("HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n", GH_RESREAD_OPEN,
                     100, GH_RESREAD_DONE, "");
    same_every_split("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                     "000\r\n\r\n",
                     GH_RESREAD_OPEN, 0, GH_RESREAD_DONE, "");
    same_every_split(r_chunked, GH_RESREAD_OPEN, 10, GH_CALLOUT_E_TOO_LARGE, NULL);
    same_every_split(r_close, GH_RESREAD_EOF, 10, GH_CALLOUT_E_TOO_LARGE, NULL);
    same_every_split(r_length, GH_RESREAD_OPEN, 4, GH_CALLOUT_E_TOO_LARGE, NULL);
    same_every_split("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhello", GH_RESREAD_EOF, 100,
                     GH_CALLOUT_E_RESET, NULL);
    same_every_split("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloX\r\n",
                     GH_RESREAD_OPEN, 100, GH_CALLOUT_E_MALFORMED, NULL);
    same_every_split("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", GH_RESREAD_OPEN,
                     100, GH_CALLOUT_E_MALFORMED, NULL);
    same_every_split("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", GH_RESREAD_OPEN, 100,
                     GH_CALLOUT_E_MALFORMED, NULL);
    same_every_split("HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
                     GH_RESREAD_OPEN, 100, GH_CALLOUT_E_MALFORMED, NULL);
    same_every_split("HTTP/1.1 100 Continue\r\n\r\n", GH_RESREAD_EOF, 100, GH_CALLOUT_E_RESET,
                     NULL);
    same_every_split("", GH_RESREAD_EOF, 100, GH_CALLOUT_E_RESET, NULL);
}

static void test_reader_head_too_large(void **state)
{
    (void)state;
    char msg[8192];
    int n = snprintf(msg, sizeof(msg), "HTTP/1.1 200 OK\r\nx-pad: %06000d\r\n\r\n", 0);
    rout_t o;
    feed(msg, (size_t)n, 0, GH_RESREAD_OPEN, 100, &o);
    assert_int_equal(o.rc, GH_CALLOUT_E_MALFORMED);
}

int main(void)
{
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    register_types();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_content_length),
        T(test_host_override_and_empty_post),
        T(test_chunked),
        T(test_close_delimited),
        T(test_split_length),
        T(test_split_chunked_after_interim),
        T(test_split_close_delimited),
        T(test_interim_then_final),
        T(test_too_large_length),
        T(test_too_large_chunked),
        T(test_too_large_close_delimited),
        T(test_at_limit),
        T(test_malformed_status),
        T(test_malformed_version),
        T(test_malformed_field),
        T(test_malformed_bare_lf),
        T(test_malformed_two_lengths),
        T(test_malformed_chunk),
        T(test_malformed_switching),
        T(test_timeout_stall),
        T(test_reset_mid_response),
        T(test_reset_mid_close_delimited),
        T(test_close_before_responding),
        T(test_half_close_before_responding),
        T(test_half_close_after_response),
        T(test_half_close_ends_close_delimited),
        T(test_half_close_mid_length),
        T(test_connect_refused),
        T(test_pool_full),
        T(test_pool_shared_with_router),
        T(test_keep_alive_reuse),
        T(test_extra_bytes_not_reused),
        T(test_connection_close_not_reused),
        T(test_cancel_before_connect),
        T(test_cancel_on_reused_before_write_completes),
        T(test_cancel_while_writing),
        T(test_cancel_while_reading),
        T(test_cancel_while_connecting_refused),
        T(test_stale_pooled_get),
        T(test_stale_pooled_post),
        T(test_reused_closed_get_retried),
        T(test_reused_closed_post_not_retried),
        T(test_invalid_requests),
        T(test_metrics_rendered),
        cmocka_unit_test(test_unknown_cluster_refused_at_load),
        cmocka_unit_test(test_reader_splits),
        cmocka_unit_test(test_reader_head_too_large),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    gh_filter_types_set(NULL);
    return rc;
}
