/*
 * The async filter machinery of src/proxy/stream.c (gatehouse/filter.h):
 * pause and resume, cancel when the client leaves, deadlines, handles that
 * outlive their stream, bounded body buffering and deferred deletion.
 *
 * A test-only filter type, "testpause", is registered next to the
 * product's (gh_filter_types_set) and built into this program only. Its
 * route section picks a behaviour per route:
 *
 *   testpause: {mode: resume, ms: 20, header: true, limit: 64}
 *
 * A real worker (gh_worker_init) serves the config on a loopback socket;
 * the test runs its loop until the client sockets see what they wait for,
 * next to a tiny upstream (a listening socket polled between loop turns)
 * that keeps every request it got, byte for byte, and answers "up".
 * Counters kept by the filter's callbacks say what ran and how often, so
 * that each case fails when a callback runs twice, too early or not at
 * all; under the ASan build a use after free or a leaked handle fails it
 * too.
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

#include <gatehouse/config.h>
#include <gatehouse/filter.h>
#include <gatehouse/yaml.h>

#include "proxy/proxy.h"
#include "proxy/worker.h"

/* Loop turns before a wait gives up (with a short sleep each: about ten
 * seconds, far beyond any deadline used here). */
#define MAX_TURNS 100000

/* ---- the upstream: a loopback listener polled from the test ---- */

#define UP_MAX_CONNS 8
#define UP_MAX_REQS 8

typedef struct {
    int lfd;
    int port;
    int fds[UP_MAX_CONNS];
    char *buf[UP_MAX_CONNS]; /* heap, UP_BUF bytes each */
    size_t len[UP_MAX_CONNS];
    unsigned num_fds;
    char *reqs[UP_MAX_REQS]; /* heap: each request as received */
    size_t req_len[UP_MAX_REQS];
    unsigned num_reqs;
} upstream_t;

#define UP_BUF (1u << 20)

static const char up_response[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nup";

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

/* The length of the whole message at p[0..n) framed by Content-Length (or
 * without a body), or 0 while incomplete. Chunked requests never reach
 * this upstream: a buffered body goes with a Content-Length. */
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

static void upstream_poll(upstream_t *u)
{
    int fd;
    while (u->num_fds < UP_MAX_CONNS && (fd = accept(u->lfd, NULL, NULL)) >= 0) {
        fcntl(fd, F_SETFL, O_NONBLOCK);
        u->fds[u->num_fds] = fd;
        u->buf[u->num_fds] = malloc(UP_BUF);
        assert_non_null(u->buf[u->num_fds]);
        u->len[u->num_fds++] = 0;
    }
    for (unsigned i = 0; i < u->num_fds; i++) {
        if (u->fds[i] < 0)
            continue;
        ssize_t r = recv(u->fds[i], u->buf[i] + u->len[i], UP_BUF - u->len[i], 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            close(u->fds[i]);
            u->fds[i] = -1;
            continue;
        }
        if (r > 0)
            u->len[i] += (size_t)r;
        size_t m;
        while ((m = message_len(u->buf[i], u->len[i])) > 0) {
            assert_true(u->num_reqs < UP_MAX_REQS);
            u->reqs[u->num_reqs] = malloc(m + 1);
            assert_non_null(u->reqs[u->num_reqs]);
            memcpy(u->reqs[u->num_reqs], u->buf[i], m);
            u->reqs[u->num_reqs][m] = '\0';
            u->req_len[u->num_reqs++] = m;
            memmove(u->buf[i], u->buf[i] + m, u->len[i] - m);
            u->len[i] -= m;
            assert_int_equal(send(u->fds[i], up_response, sizeof(up_response) - 1, 0),
                             (ssize_t)sizeof(up_response) - 1);
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

/* ---- the fixture ---- */

typedef struct {
    gh_snapshot_t *snap;
    gh_worker_t w;
    int port;
    int slow_port; /* the listener with a short body_timeout */
    upstream_t up;
    int clients[32]; /* client sockets still open, for a teardown after a failure */
    unsigned num_clients;
} fixture_t;

static fixture_t *cur; /* the running case's, for the filter's checks */

/* ---- what the test filter saw ---- */

typedef struct {
    unsigned headers, paused, deadlines, deadline_null, cancels, logs, destroys, buffered;
    int cancel_take_null; /* on_cancel took its handle and got NULL */
    int cancel_mode;      /* of the filter whose on_cancel ran */
    int log_status, log_aborted;
    uint64_t log_bytes_out;
    uint64_t bytes_out_at_resume; /* the stream's bytes to the client when it resumed */
    unsigned up_reqs_at_resume;   /* requests the upstream had when the stream resumed */
    unsigned buffered_at_resume;
    char *body; /* heap: what on_request_buffered got */
    size_t body_len;
    /* Deferred deletion (mode double): seen inside the callback after the
     * stream ended. */
    int ended_in_cb, buried_in_cb, destroys_in_cb;
    char rid[64];
    /* The external holder's completion. */
    unsigned ext_fired;
    int ext_got_stream;
} seen_t;

static seen_t seen;

/* ---- the test filter ---- */

enum {
    MODE_HEADER = 0, /* add a response field, continue */
    MODE_RESUME,     /* pause; the deadline resumes */
    MODE_REPLY,      /* pause; the deadline replies 429 */
    MODE_HOLD,       /* pause on a deadline that never comes in a test */
    MODE_EXTERNAL,   /* pause; the handle goes to a holder outside the stream */
    MODE_SYNC,       /* pause and resume inside on_request_headers */
    MODE_BUFFER,     /* buffer the body whole, continue */
    MODE_BUFPAUSE,   /* buffer the body, then pause on it until the deadline */
    MODE_DOUBLE,     /* reply twice (the second aborts) and read the stream after */
    MODE_BADFIELD,   /* reply with a field gatehouse frames itself */
    MODE_BADSTATUS,  /* reply with a status that is not a final one */
};

static const char *const mode_names[] = {"header",   "resume",   "reply",     "hold",
                                         "external", "sync",     "buffer",    "bufpause",
                                         "double",   "badfield", "badstatus", NULL};

typedef struct {
    int mode;
    uint64_t ms;
    uint64_t limit;
    int header;
    uint64_t pad; /* bytes of an x-pad response field */
} tconf_t;

typedef struct {
    const tconf_t *conf;
    gh_stream_handle_t *h;
    gh_deadline_t dl;
} tctx_t;

/* Async work that outlives the stream keeps its state outside it (the
 * pattern filter.h prescribes): a heap holder with its own timer, freed in
 * the timer's close callback. */
typedef struct {
    gh_stream_handle_t *h;
    uv_timer_t timer;
} holder_t;

static holder_t *held;

static char pad_value[64 * 1024];

static int tparse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg,
                  gh_route_t *route, void **conf)
{
    static const char *const keys[] = {"mode", "ms", "limit", "header", "pad", NULL};
    const gh_yaml_node_t *v;
    const char *mode;
    int rc;
    (void)cfg;
    (void)route;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'testpause'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'testpause'")) != 0 ||
        (rc = gh_yaml_require(doc, n, "mode", "'testpause'", &v)) != 0 ||
        (rc = gh_yaml_str(doc, v, "mode", &mode)) != 0)
        return rc;
    tconf_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return gh_yaml_oom(doc);
    t->mode = -1;
    for (int i = 0; mode_names[i] != NULL; i++)
        if (strcmp(mode, mode_names[i]) == 0)
            t->mode = i;
    if (t->mode < 0) {
        free(t);
        return gh_yaml_error(doc, v, "unknown mode '%s'", mode);
    }
    if (((v = gh_yaml_map_get(n, "ms")) != NULL &&
         (rc = gh_yaml_uint(doc, v, "ms", 1, 3600000, &t->ms)) != 0) ||
        ((v = gh_yaml_map_get(n, "limit")) != NULL &&
         (rc = gh_yaml_uint(doc, v, "limit", 0, 1u << 30, &t->limit)) != 0) ||
        ((v = gh_yaml_map_get(n, "header")) != NULL &&
         (rc = gh_yaml_bool(doc, v, "header", &t->header)) != 0) ||
        ((v = gh_yaml_map_get(n, "pad")) != NULL &&
         (rc = gh_yaml_uint(doc, v, "pad", 1, sizeof(pad_value), &t->pad)) != 0)) {
        free(t);
        return rc;
    }
    *conf = t;
    return 0;
}

static void tfree_conf(void *conf)
{
    free(conf);
}

static void reply_429(gh_stream_t *s)
{
    static const gh_h1_header_t hs[] = {
        {.name = "retry-after", .name_len = 11, .value = "7", .value_len = 1},
        {.name = "content-type", .name_len = 12, .value = "text/plain", .value_len = 10},
    };
    gh_stream_reply(s, 429, hs, 2, "slow down\n", 10);
}

static void on_deadline(gh_deadline_t *d)
{
    tctx_t *ctx = (tctx_t *)((char *)d - offsetof(tctx_t, dl));
    gh_stream_handle_t *h = ctx->h;
    ctx->h = NULL;
    seen.deadlines++;
    gh_stream_t *s = gh_stream_handle_take(h);
    if (s == NULL) {
        seen.deadline_null++;
        return;
    }
    seen.bytes_out_at_resume = s->bytes_out;
    seen.up_reqs_at_resume = cur->up.num_reqs;
    seen.buffered_at_resume = seen.buffered;
    if (ctx->conf->mode == MODE_REPLY)
        reply_429(s);
    else
        gh_stream_continue(s);
}

static gh_filter_status_t pause_on_deadline(gh_stream_t *s, tctx_t *ctx)
{
    ctx->h = gh_stream_pause(s);
    assert_non_null(ctx->h);
    assert_int_equal(gh_stream_deadline_start(s, &ctx->dl, ctx->conf->ms, on_deadline), 0);
    seen.paused++;
    return GH_FILTER_PAUSE;
}

static gh_filter_status_t ton_request_headers(gh_stream_t *s, const void *conf, void *vctx)
{
    const tconf_t *t = conf;
    tctx_t *ctx = vctx;
    ctx->conf = t;
    seen.headers++;
    if (t->header) {
        assert_int_equal(gh_stream_add_response_header(s, "x-testpause", 11, "added", 5), 0);
        /* Refused: framing and hop-by-hop names, no name, a name that is
         * no token, a value that would start another field. None shows
         * in the responses the cases compare byte for byte. */
        assert_int_equal(gh_stream_add_response_header(s, "Content-Length", 14, "1", 1), -1);
        assert_int_equal(gh_stream_add_response_header(s, "connection", 10, "close", 5), -1);
        assert_int_equal(gh_stream_add_response_header(s, "", 0, "v", 1), -1);
        assert_int_equal(gh_stream_add_response_header(s, "x a", 3, "v", 1), -1);
        assert_int_equal(gh_stream_add_response_header(s, "x-a", 3, "v\r\nx-b: w", 10), -1);
        assert_int_equal(gh_stream_add_response_header(s, "x-a", 3, "v\0w", 3), -1);
    }
    if (t->pad > 0) {
        memset(pad_value, 'p', sizeof(pad_value));
        assert_int_equal(gh_stream_add_response_header(s, "x-pad", 5, pad_value, t->pad), 0);
    }
    switch (t->mode) {
    case MODE_RESUME:
    case MODE_REPLY:
    case MODE_HOLD:
        return pause_on_deadline(s, ctx);
    case MODE_EXTERNAL:
        assert_null(held);
        held = calloc(1, sizeof(*held));
        assert_non_null(held);
        held->h = gh_stream_pause(s);
        assert_non_null(held->h);
        seen.paused++;
        return GH_FILTER_PAUSE;
    case MODE_SYNC: {
        gh_stream_handle_t *h = gh_stream_pause(s);
        assert_non_null(h);
        seen.paused++;
        /* A second pause while the first is held is refused. */
        assert_null(gh_stream_pause(s));
        gh_stream_resume(h);
        return GH_FILTER_PAUSE;
    }
    case MODE_BUFFER:
    case MODE_BUFPAUSE:
        gh_stream_buffer_body(s, t->limit);
        return GH_FILTER_BUFFER;
    case MODE_DOUBLE:
        gh_stream_reply(s, 200, NULL, 0, "a", 1);
        /* A second reply once the first is under way aborts the stream:
         * it ends here, inside this callback. */
        gh_stream_reply(s, 200, NULL, 0, "b", 1);
        seen.ended_in_cb = s->ended;
        seen.buried_in_cb = cur->w.dead == s;
        seen.destroys_in_cb = (int)seen.destroys;
        snprintf(seen.rid, sizeof(seen.rid), "%s", gh_stream_request_id(s));
        return GH_FILTER_REPLIED;
    case MODE_BADFIELD: {
        gh_h1_header_t h = {"Content-Length", 14, "0", 1};
        gh_stream_reply(s, 200, &h, 1, "forged", 6);
        return GH_FILTER_REPLIED;
    }
    case MODE_BADSTATUS:
        gh_stream_reply(s, 101, NULL, 0, NULL, 0);
        return GH_FILTER_REPLIED;
    default:
        return GH_FILTER_CONTINUE;
    }
}

static gh_filter_status_t ton_request_buffered(gh_stream_t *s, const void *conf, void *vctx,
                                               const char *body, size_t len)
{
    const tconf_t *t = conf;
    seen.buffered++;
    free(seen.body);
    seen.body = malloc(len + 1);
    assert_non_null(seen.body);
    memcpy(seen.body, body, len);
    seen.body[len] = '\0';
    seen.body_len = len;
    if (t->mode == MODE_BUFPAUSE)
        return pause_on_deadline(s, vctx);
    return GH_FILTER_CONTINUE;
}

static void ton_cancel(gh_stream_t *s, const void *conf, void *vctx)
{
    tctx_t *ctx = vctx;
    (void)s;
    (void)conf;
    seen.cancels++;
    seen.cancel_mode = ctx->conf->mode;
    gh_deadline_stop(&ctx->dl);
    if (ctx->h != NULL) {
        /* Resuming after the abort: the take finds no stream. */
        seen.cancel_take_null = gh_stream_handle_take(ctx->h) == NULL;
        ctx->h = NULL;
    }
}

static void ton_log(gh_stream_t *s, const void *conf, void *ctx)
{
    (void)conf;
    (void)ctx;
    seen.logs++;
    seen.log_status = s->status;
    seen.log_aborted = s->aborted;
    seen.log_bytes_out = s->bytes_out;
}

static void ton_destroy(gh_stream_t *s, const void *conf, void *ctx)
{
    (void)s;
    (void)conf;
    (void)ctx;
    seen.destroys++;
}

static const gh_filter_type_t test_filter = {
    .name = "testpause",
    .phase = GH_PHASE_TRANSFORM,
    .ctx_size = sizeof(tctx_t),
    .parse = tparse,
    .free_conf = tfree_conf,
    .on_request_headers = ton_request_headers,
    .on_request_buffered = ton_request_buffered,
    .on_cancel = ton_cancel,
    .on_log = ton_log,
    .on_destroy = ton_destroy,
};

/* The same again under another name, for chains with two pausing
 * filters. */
static const gh_filter_type_t test_filter2 = {
    .name = "testpause2",
    .phase = GH_PHASE_TRANSFORM,
    .ctx_size = sizeof(tctx_t),
    .parse = tparse,
    .free_conf = tfree_conf,
    .on_request_headers = ton_request_headers,
    .on_request_buffered = ton_request_buffered,
    .on_cancel = ton_cancel,
    .on_log = ton_log,
    .on_destroy = ton_destroy,
};

/* The product's types with the test filters at their phase. */
static const gh_filter_type_t *types[16];

static void register_types(void)
{
    const gh_filter_type_t *const *product = gh_filter_types();
    size_t n = 0;
    int placed = 0;
    for (size_t i = 0; product[i] != NULL; i++) {
        if (!placed && product[i]->phase > test_filter.phase) {
            types[n++] = &test_filter;
            types[n++] = &test_filter2;
            placed = 1;
        }
        assert_true(n < sizeof(types) / sizeof(types[0]) - 2);
        types[n++] = product[i];
    }
    if (!placed) {
        types[n++] = &test_filter;
        types[n++] = &test_filter2;
    }
    types[n] = NULL;
    gh_filter_types_set(types);
}

/* ---- the external holder ---- */

static void holder_closed(uv_handle_t *h)
{
    free(h->data);
}

static void holder_fire(uv_timer_t *t)
{
    holder_t *ho = t->data;
    gh_stream_t *s = gh_stream_handle_take(ho->h);
    seen.ext_fired++;
    seen.ext_got_stream = s != NULL;
    if (s != NULL)
        gh_stream_continue(s);
    uv_close((uv_handle_t *)&ho->timer, holder_closed);
}

/* The holder's work completes on a later loop turn. */
static void holder_complete(fixture_t *f)
{
    holder_t *ho = held;
    held = NULL;
    assert_non_null(ho);
    uv_timer_init(&f->w.loop, &ho->timer);
    ho->timer.data = ho;
    uv_timer_start(&ho->timer, holder_fire, 0, 0);
}

/* ---- config and worker ---- */

static const char yaml_fmt[] = "listeners:\n"
                               "  - name: edge\n"
                               "    listen: 127.0.0.1:18078\n"
                               "    routes:\n"
                               "      - name: resume\n"
                               "        match: {path: {exact: /resume}}\n"
                               "        testpause: {mode: resume, ms: 20}\n"
                               "        direct_response: {status: 200, body: \"resumed\"}\n"
                               "      - name: upresume\n"
                               "        match: {path: {exact: /upresume}}\n"
                               "        testpause: {mode: resume, ms: 20}\n"
                               "        to: up\n"
                               "      - name: reply\n"
                               "        match: {path: {exact: /reply}}\n"
                               "        testpause: {mode: reply, ms: 20, header: true}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: hdr\n"
                               "        match: {path: {exact: /hdr}}\n"
                               "        testpause: {mode: header, header: true}\n"
                               "        direct_response: {status: 200, body: \"ok\"}\n"
                               "      - name: uphdr\n"
                               "        match: {path: {exact: /uphdr}}\n"
                               "        testpause: {mode: header, header: true}\n"
                               "        to: up\n"
                               "      - name: hold\n"
                               "        match: {path: {exact: /hold}}\n"
                               "        testpause: {mode: hold, ms: 600000}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: external\n"
                               "        match: {path: {exact: /external}}\n"
                               "        testpause: {mode: external}\n"
                               "        direct_response: {status: 200, body: \"ext\"}\n"
                               "      - name: sync\n"
                               "        match: {path: {exact: /sync}}\n"
                               "        testpause: {mode: sync}\n"
                               "        direct_response: {status: 200, body: \"sync\"}\n"
                               "      - name: syncup\n"
                               "        match: {path: {exact: /syncup}}\n"
                               "        testpause: {mode: sync}\n"
                               "        to: up\n"
                               "      - name: buffer\n"
                               "        match: {path: {exact: /buffer}}\n"
                               "        testpause: {mode: buffer, limit: 64}\n"
                               "        to: up\n"
                               "      - name: bufpause\n"
                               "        match: {path: {exact: /bufpause}}\n"
                               "        testpause: {mode: bufpause, limit: 64, ms: 20}\n"
                               "        to: up\n"
                               "      - name: double\n"
                               "        match: {path: {exact: /double}}\n"
                               "        testpause: {mode: double}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: badfield\n"
                               "        match: {path: {exact: /badfield}}\n"
                               "        testpause: {mode: badfield}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: badstatus\n"
                               "        match: {path: {exact: /badstatus}}\n"
                               "        testpause: {mode: badstatus}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: two\n"
                               "        match: {path: {exact: /two}}\n"
                               "        testpause: {mode: sync}\n"
                               "        testpause2: {mode: resume, ms: 20}\n"
                               "        direct_response: {status: 200, body: \"two\"}\n"
                               "      - name: twohold\n"
                               "        match: {path: {exact: /twohold}}\n"
                               "        testpause: {mode: resume, ms: 20}\n"
                               "        testpause2: {mode: hold, ms: 600000}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: twobuffer\n"
                               "        match: {path: {exact: /twobuffer}}\n"
                               "        testpause: {mode: buffer, limit: 64}\n"
                               "        testpause2: {mode: buffer, limit: 8}\n"
                               "        to: up\n"
                               "      - name: padbuffer\n"
                               "        match: {path: {exact: /padbuffer}}\n"
                               "        testpause: {mode: buffer, limit: 64, pad: 40000}\n"
                               "        to: up\n"
                               "      - name: extup\n"
                               "        match: {path: {exact: /extup}}\n"
                               "        testpause: {mode: external}\n"
                               "        to: up\n"
                               "  - name: slow\n"
                               "    listen: 127.0.0.1:18079\n"
                               "    body_timeout: 300ms\n"
                               "    routes:\n"
                               "      - name: holdbody\n"
                               "        testpause: {mode: hold, ms: 600000}\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "clusters:\n"
                               "  up:\n"
                               "    endpoints: [\"127.0.0.1:%d\"]\n";

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    free(seen.body);
    memset(&seen, 0, sizeof(seen));
    f->up.lfd = listen_loopback(&f->up.port);
    if (f->up.lfd < 0 || listen(f->up.lfd, 16) != 0)
        return -1;
    fcntl(f->up.lfd, F_SETFL, O_NONBLOCK);
    char yaml[sizeof(yaml_fmt) + 16];
    int n = snprintf(yaml, sizeof(yaml), yaml_fmt, f->up.port);
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("test.yaml", yaml, (size_t)n, &err);
    if (cfg == NULL) {
        print_error("config: %s\n", err.msg);
        return -1;
    }
    f->snap = gh_snapshot_new(cfg, 1);
    int fd = listen_loopback(&f->port), fd2 = listen_loopback(&f->slow_port);
    if (f->snap == NULL || fd < 0 || fd2 < 0)
        return -1;
    int fds[2] = {fd, fd2};
    if (gh_worker_init(&f->w, 0, f->snap, fds) != 0)
        return -1;
    cur = f;
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
    /* The clients closed: let the worker see it and free its connections
     * (dispose closes handles without their callbacks). */
    RUN_UNTIL(f, f->w.num_conns == 0 && f->w.dead == NULL);
    assert_null(held); /* every case takes the handles it kept */
    gh_worker_dispose(&f->w);
    gh_snapshot_unref(f->snap);
    upstream_close(&f->up);
    free(seen.body);
    seen.body = NULL;
    cur = NULL;
    free(f);
    return 0;
}

/* ---- clients ---- */

static int client_connect_to(fixture_t *f, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    assert_true(f->num_clients < sizeof(f->clients) / sizeof(f->clients[0]));
    f->clients[f->num_clients++] = fd;
    return fd;
}

static int client_connect(fixture_t *f)
{
    return client_connect_to(f, f->port);
}

static void client_close(fixture_t *f, int fd)
{
    for (unsigned i = 0; i < f->num_clients; i++)
        if (f->clients[i] == fd)
            f->clients[i] = -1;
    close(fd);
}

static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Sends n bytes of p in pieces of step bytes, with loop turns between
 * them, so that the worker reads them in many reads. */
static void send_split(fixture_t *f, int fd, const char *p, size_t n, size_t step)
{
    for (size_t o = 0; o < n; o += step) {
        size_t k = n - o < step ? n - o : step;
        assert_int_equal(send(fd, p + o, k, MSG_NOSIGNAL), (ssize_t)k);
        for (int i = 0; i < 3; i++)
            pump(f);
    }
}

static void close_rst(fixture_t *f, int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    client_close(f, fd);
}

/* Reads one whole response (a final one framed by its Content-Length, or
 * an interim one) into buf, NUL-terminated; or what came before the
 * connection closed (*closed set). Returns its length. */
static size_t read_response(fixture_t *f, int fd, char *buf, size_t cap, int *closed)
{
    size_t n = 0;
    *closed = 0;
    for (int turns = 0; turns < MAX_TURNS; turns++) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r > 0) {
            n += (size_t)r;
            buf[n] = '\0';
            const char *end = strstr(buf, "\r\n\r\n");
            if (end != NULL && strncmp(buf, "HTTP/1.1 1", 10) == 0)
                return n;
            if (end != NULL && message_len(buf, n) == n)
                return n;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            buf[n] = '\0';
            *closed = r == 0 ? 1 : 2; /* 2: reset */
            return n;
        }
        pump(f);
    }
    fail_msg("no whole response on the client socket");
    return 0;
}

/* Waits until the worker closes fd: returns the bytes that came first. */
static size_t read_to_close(fixture_t *f, int fd, char *buf, size_t cap)
{
    size_t total = 0;
    int closed = 0;
    while (!closed) {
        total += read_response(f, fd, buf + total, cap - total, &closed);
        assert_true(total < cap - 1);
    }
    return total;
}

static void request_ok(fixture_t *f, const char *req, const char *want)
{
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, req);
    size_t n = read_response(f, fd, buf, sizeof(buf), &closed);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
    client_close(f, fd);
}

/* The stream is gone: logged and destroyed once each, and freed by the end
 * of the loop turn that ended it. */
static void wait_stream_gone(fixture_t *f)
{
    RUN_UNTIL(f, seen.destroys > 0);
    assert_null(f->w.dead);
    assert_int_equal(seen.logs, 1);
    assert_int_equal(seen.destroys, 1);
}

/* ---- pause and resume ---- */

static void test_resume_on_deadline_direct(void **state)
{
    fixture_t *f = *state;
    request_ok(f, "GET /resume HTTP/1.1\r\nHost: a\r\n\r\n",
               "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nresumed");
    wait_stream_gone(f);
    assert_int_equal(seen.paused, 1);
    assert_int_equal(seen.deadlines, 1);
    assert_int_equal(seen.deadline_null, 0);
    assert_int_equal(seen.bytes_out_at_resume, 0); /* nothing was written before */
    assert_int_equal(seen.cancels, 0);
    assert_int_equal(seen.log_status, 200);
}

static void test_resume_on_deadline_upstream(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "GET /upresume HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t n = read_response(f, fd, buf, sizeof(buf), &closed);
    assert_true(n > 2);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_string_equal(buf + n - 6, "\r\n\r\nup");
    assert_int_equal(seen.deadlines, 1);
    assert_int_equal(seen.up_reqs_at_resume, 0); /* held until the resume */
    assert_int_equal(f->up.num_reqs, 1);
    assert_memory_equal(f->up.reqs[0], "GET /upresume HTTP/1.1\r\n", 24);
    /* The same connection serves the next request. */
    send_str(fd, "GET /upresume HTTP/1.1\r\nHost: a\r\n\r\n");
    n = read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(f->up.num_reqs, 2);
    assert_int_equal(seen.deadlines, 2);
    assert_int_equal(seen.up_reqs_at_resume, 1);
    client_close(f, fd);
    RUN_UNTIL(f, seen.destroys == 2);
    assert_int_equal(seen.logs, 2);
    assert_int_equal(seen.cancels, 0);
}

static void test_reply_from_deadline(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "GET /reply HTTP/1.1\r\nHost: a\r\n\r\n");
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_string_equal(buf, "HTTP/1.1 429 Too Many Requests\r\n"
                             "retry-after: 7\r\n"
                             "content-type: text/plain\r\n"
                             "x-testpause: added\r\n"
                             "content-length: 10\r\n"
                             "\r\n"
                             "slow down\n");
    assert_int_equal(closed, 0);
    /* Kept alive: the next request on it is served. */
    send_str(fd, "GET /hdr HTTP/1.1\r\nHost: a\r\n\r\n");
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_string_equal(buf,
                        "HTTP/1.1 200 OK\r\nx-testpause: added\r\ncontent-length: 2\r\n\r\nok");
    client_close(f, fd);
    RUN_UNTIL(f, seen.destroys == 2);
    assert_int_equal(seen.deadlines, 1);
    assert_int_equal(seen.cancels, 0);
    assert_int_equal(seen.logs, 2);
}

static void test_response_field_on_direct_response(void **state)
{
    fixture_t *f = *state;
    request_ok(f, "GET /hdr HTTP/1.1\r\nHost: a\r\n\r\n",
               "HTTP/1.1 200 OK\r\nx-testpause: added\r\ncontent-length: 2\r\n\r\nok");
    wait_stream_gone(f);
}

/* A filter's reply that gatehouse could not send as asked (a framing
 * field of its own, a 1xx status) goes out as a 500, never as written. */
static void expect_internal_error(fixture_t *f, const char *req, const char *detail)
{
    char body[256], want[512];
    int bl =
        snprintf(body, sizeof(body), "{\"error\":\"internal_error\",\"detail\":\"%s\"}\n", detail);
    snprintf(want, sizeof(want),
             "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
             "content-length: %d\r\n\r\n%s",
             bl, body);
    request_ok(f, req, want);
    wait_stream_gone(f);
}

static void test_reply_refused_field_is_500(void **state)
{
    expect_internal_error(*state, "GET /badfield HTTP/1.1\r\nHost: a\r\n\r\n",
                          "a filter replied with a field gatehouse does not send");
}

static void test_reply_bad_status_is_500(void **state)
{
    expect_internal_error(*state, "GET /badstatus HTTP/1.1\r\nHost: a\r\n\r\n",
                          "a filter replied with a bad status");
}

static void test_response_field_on_proxied_response(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "GET /uphdr HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t n = read_response(f, fd, buf, sizeof(buf), &closed);
    assert_int_equal(f->up.num_reqs, 1);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_string_equal(buf + n - 6, "\r\n\r\nup");
    const char *end = strstr(buf, "\r\n\r\n");
    const char *field = strstr(buf, "\r\nx-testpause: added\r\n");
    assert_non_null(field);
    assert_true(field < end);
    client_close(f, fd);
    wait_stream_gone(f);
}

/* ---- the client leaves while a filter holds the request ---- */

static void check_cancelled(fixture_t *f)
{
    wait_stream_gone(f);
    assert_int_equal(seen.cancels, 1);
    assert_int_equal(seen.cancel_take_null, 1);
    assert_int_equal(seen.deadlines, 0);
    assert_int_equal(seen.log_aborted, 1);
    assert_int_equal(seen.log_status, 0);
    assert_int_equal(seen.log_bytes_out, 0); /* nothing was written */
    assert_int_equal(f->up.num_reqs, 0);
}

static int paused_request(fixture_t *f, const char *path)
{
    char req[128];
    int fd = client_connect(f);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path);
    send_str(fd, req);
    RUN_UNTIL(f, seen.paused == 1);
    return fd;
}

static void test_close_during_pause(void **state)
{
    fixture_t *f = *state;
    client_close(f, paused_request(f, "/hold"));
    check_cancelled(f);
}

static void test_reset_during_pause(void **state)
{
    fixture_t *f = *state;
    close_rst(f, paused_request(f, "/hold"));
    check_cancelled(f);
}

/* A half-close: the client can still read, and gets no byte at all. */
static void test_half_close_during_pause(void **state)
{
    fixture_t *f = *state;
    char buf[256];
    int fd = paused_request(f, "/hold");
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_int_equal(read_to_close(f, fd, buf, sizeof(buf)), 0);
    client_close(f, fd);
    check_cancelled(f);
}

/* The handle sits in a holder outside the stream; its work completes on a
 * later loop turn, after the stream was freed: the take finds nothing. */
static void test_handle_taken_after_stream_freed(void **state)
{
    fixture_t *f = *state;
    close_rst(f, paused_request(f, "/external"));
    wait_stream_gone(f);
    assert_int_equal(seen.cancels, 1);
    assert_int_equal(seen.log_aborted, 1);
    for (int i = 0; i < 5; i++)
        pump(f);
    assert_null(f->w.dead);
    holder_complete(f);
    RUN_UNTIL(f, seen.ext_fired == 1);
    assert_int_equal(seen.ext_got_stream, 0);
    assert_int_equal(seen.logs, 1);
    assert_int_equal(seen.destroys, 1);
}

/* The same holder, completing while the client waits: the chain goes on. */
static void test_handle_taken_from_holder(void **state)
{
    fixture_t *f = *state;
    char buf[256];
    int closed;
    int fd = paused_request(f, "/external");
    for (int i = 0; i < 5; i++)
        pump(f);
    assert_int_equal(recv(fd, buf, sizeof(buf), 0), -1); /* nothing before the resume */
    holder_complete(f);
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_string_equal(buf, "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\next");
    assert_int_equal(seen.ext_fired, 1);
    assert_int_equal(seen.ext_got_stream, 1);
    client_close(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.cancels, 0);
}

/* ---- resume inside on_request_headers ---- */

static void test_sync_resume(void **state)
{
    fixture_t *f = *state;
    request_ok(f, "GET /sync HTTP/1.1\r\nHost: a\r\n\r\n",
               "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nsync");
    wait_stream_gone(f);
    assert_int_equal(seen.paused, 1);
    assert_int_equal(seen.cancels, 0);
}

static void test_sync_resume_upstream(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "GET /syncup HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t n = read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_string_equal(buf + n - 6, "\r\n\r\nup");
    assert_int_equal(f->up.num_reqs, 1);
    client_close(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.cancels, 0);
}

/* ---- buffering ---- */

/* The request the upstream got carries the body with a Content-Length of
 * its size, and nothing else after the head. */
static void check_forwarded_body(fixture_t *f, unsigned i, const char *body)
{
    assert_true(f->up.num_reqs > i);
    const char *req = f->up.reqs[i];
    size_t len = f->up.req_len[i], blen = strlen(body);
    const char *end = strstr(req, "\r\n\r\n");
    assert_non_null(end);
    size_t head = (size_t)(end - req) + 4;
    assert_int_equal(len, head + blen);
    assert_memory_equal(req + head, body, blen);
    char cl[64];
    snprintf(cl, sizeof(cl), "\r\ncontent-length: %zu\r\n", blen);
    const char *p = find_mem(req, head, cl);
    assert_non_null(p);
    assert_null(find_mem(req, head, "\r\ntransfer-encoding"));
    assert_null(find_mem(p + 2, head - (size_t)(p + 2 - req), "\r\ncontent-length"));
}

static const char body40[] = "0123456789abcdefghijABCDEFGHIJ!@#$%^&*()";

static void test_buffer_content_length_split(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n");
    send_split(f, fd, body40, 40, 1);
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(seen.buffered, 1);
    assert_int_equal(seen.body_len, 40);
    assert_memory_equal(seen.body, body40, 40);
    assert_int_equal(f->up.num_reqs, 1);
    check_forwarded_body(f, 0, body40);
    /* The connection stays usable. */
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz");
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    check_forwarded_body(f, 1, "xyz");
    assert_int_equal(seen.buffered, 2);
    client_close(f, fd);
    RUN_UNTIL(f, seen.destroys == 2);
}

static void test_buffer_chunked_split(void **state)
{
    fixture_t *f = *state;
    static const char chunked[] = "5\r\nhello\r\n"
                                  "1;ext=1\r\n \r\n"
                                  "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                                  "0\r\n"
                                  "x-trailer: t\r\n"
                                  "\r\n";
    static const char want[] = "hello abcdefghijklmnopqrstuvwxyz";
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    send_split(f, fd, chunked, sizeof(chunked) - 1, 2);
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(seen.buffered, 1);
    assert_int_equal(seen.body_len, sizeof(want) - 1);
    assert_string_equal(seen.body, want);
    check_forwarded_body(f, 0, want);
    assert_null(strstr(f->up.reqs[0], "x-trailer"));
    client_close(f, fd);
    wait_stream_gone(f);
}

static void test_buffer_empty_chunked(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(seen.buffered, 1);
    assert_int_equal(seen.body_len, 0);
    check_forwarded_body(f, 0, "");
    client_close(f, fd);
    wait_stream_gone(f);
}

/* Exactly at the limit is whole; one byte more is a 413. */
static void test_buffer_at_limit(void **state)
{
    fixture_t *f = *state;
    char body[65], req[256], buf[4096];
    int closed;
    memset(body, 'q', 64);
    body[64] = '\0';
    snprintf(req, sizeof(req), "POST /buffer HTTP/1.1\r\nHost: a\r\nContent-Length: 64\r\n\r\n%s",
             body);
    int fd = client_connect(f);
    send_str(fd, req);
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(seen.body_len, 64);
    check_forwarded_body(f, 0, body);
    client_close(f, fd);
    wait_stream_gone(f);
}

/* A 413 and a clean close: no request upstream, the filter never saw a
 * body. */
static void check_413(fixture_t *f, int fd)
{
    char buf[4096];
    size_t n = read_to_close(f, fd, buf, sizeof(buf));
    assert_true(n > 0);
    assert_memory_equal(buf, "HTTP/1.1 413 Content Too Large\r\n", 32);
    assert_non_null(strstr(buf, "\r\nconnection: close\r\n"));
    assert_int_equal(message_len(buf, n), n); /* the whole response, nothing after */
    client_close(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.buffered, 0);
    assert_int_equal(seen.log_status, 413);
    assert_int_equal(seen.log_aborted, 0);
    assert_int_equal(f->up.num_reqs, 0);
}

static void test_buffer_chunked_over_limit(void **state)
{
    fixture_t *f = *state;
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "20\r\n0123456789abcdef0123456789abcdef\r\n"
                 "21\r\n0123456789abcdef0123456789abcdefX\r\n"
                 "0\r\n\r\n");
    check_413(f, fd);
}

/* The Content-Length alone is over the limit: 413 before any body byte
 * is sent. */
static void test_buffer_content_length_over_limit(void **state)
{
    fixture_t *f = *state;
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n");
    check_413(f, fd);
}

/* Far more than the limit, in one go: the worker reads it in several
 * reads while the 413 is under way. */
static void test_buffer_large_body_over_limit(void **state)
{
    fixture_t *f = *state;
    size_t big = 256 * 1024;
    char *body = malloc(big + 64);
    assert_non_null(body);
    int k = snprintf(body, 64, "%zx\r\n", big);
    memset(body + k, 'z', big);
    memcpy(body + k + big, "\r\n0\r\n\r\n", 7);
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    /* The client's socket takes what the kernel buffers; the rest is
     * dropped with the connection. */
    size_t sent = 0, total = (size_t)k + big + 7;
    while (sent < total) {
        ssize_t r = send(fd, body + sent, total - sent, MSG_NOSIGNAL);
        if (r <= 0)
            break;
        sent += (size_t)r;
    }
    free(body);
    assert_true(sent > 65536);
    check_413(f, fd);
}

static void test_buffer_client_eof_mid_body(void **state)
{
    fixture_t *f = *state;
    char buf[256];
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n0123456789");
    for (int i = 0; i < 5; i++)
        pump(f);
    assert_int_equal(seen.headers, 1);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_int_equal(read_to_close(f, fd, buf, sizeof(buf)), 0);
    client_close(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.buffered, 0);
    assert_int_equal(seen.log_aborted, 1);
    assert_int_equal(seen.log_bytes_out, 0);
    assert_int_equal(f->up.num_reqs, 0);
}

static void test_buffer_client_reset_mid_body(void **state)
{
    fixture_t *f = *state;
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    RUN_UNTIL(f, seen.headers == 1);
    close_rst(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.buffered, 0);
    assert_int_equal(seen.log_aborted, 1);
    assert_int_equal(f->up.num_reqs, 0);
}

static void test_buffer_expect_continue(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                 "Content-Length: 10\r\n\r\n");
    size_t n = read_response(f, fd, buf, sizeof(buf), &closed);
    assert_int_equal(closed, 0);
    assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(n, 25);
    assert_int_equal(seen.buffered, 0);
    assert_int_equal(f->up.num_reqs, 0);
    send_str(fd, "0123456789");
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(seen.buffered, 1);
    assert_string_equal(seen.body, "0123456789");
    check_forwarded_body(f, 0, "0123456789");
    client_close(f, fd);
    wait_stream_gone(f);
}

/* A body sent whole with its head gets no 100 (RFC 9110 10.1.1 allows
 * skipping it), and is buffered all the same. */
static void test_buffer_expect_continue_body_sent(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "POST /buffer HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                 "Content-Length: 10\r\n\r\n0123456789");
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    check_forwarded_body(f, 0, "0123456789");
    client_close(f, fd);
    wait_stream_gone(f);
}

/* Buffered, then held on the body until a deadline: the upstream sees the
 * request only after the resume. */
static void test_buffer_then_pause(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "POST /bufpause HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n");
    send_split(f, fd, body40, 40, 7);
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(seen.buffered, 1);
    assert_int_equal(seen.deadlines, 1);
    assert_int_equal(seen.buffered_at_resume, 1);
    assert_int_equal(seen.up_reqs_at_resume, 0);
    check_forwarded_body(f, 0, body40);
    client_close(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.cancels, 0);
}

static void test_buffer_then_pause_client_leaves(void **state)
{
    fixture_t *f = *state;
    int fd = client_connect(f);
    send_str(fd, "POST /bufpause HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    RUN_UNTIL(f, seen.paused == 1);
    assert_int_equal(seen.buffered, 1);
    close_rst(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.cancels, 1);
    assert_int_equal(seen.cancel_take_null, 1);
    assert_int_equal(seen.deadlines, 0);
    assert_int_equal(f->up.num_reqs, 0);
}

/* ---- more around a pause ---- */

/* Reads exactly n bytes (fails on a close before). */
static void read_exact(fixture_t *f, int fd, char *buf, size_t n)
{
    size_t got = 0;
    for (int turns = 0; got < n; turns++) {
        if (turns > MAX_TURNS)
            fail_msg("only %zu of %zu bytes came", got, n);
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            fail_msg("closed after %zu of %zu bytes", got, n);
        pump(f);
    }
    buf[n] = '\0';
}

/* A request pipelined behind a paused one waits for it, and both are
 * answered in order on the one connection. */
static void test_pipelined_behind_pause(void **state)
{
    fixture_t *f = *state;
    static const char want[] =
        "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nresumed"
        "HTTP/1.1 200 OK\r\nx-testpause: added\r\ncontent-length: 2\r\n\r\nok";
    char buf[sizeof(want) + 64];
    int fd = client_connect(f);
    send_str(fd, "GET /resume HTTP/1.1\r\nHost: a\r\n\r\nGET /hdr HTTP/1.1\r\nHost: a\r\n\r\n");
    read_exact(f, fd, buf, sizeof(want) - 1);
    assert_string_equal(buf, want);
    assert_int_equal(seen.headers, 2);
    assert_int_equal(seen.bytes_out_at_resume, 0);
    client_close(f, fd);
    RUN_UNTIL(f, seen.destroys == 2);
    assert_int_equal(seen.logs, 2);
    assert_int_equal(seen.cancels, 0);
    for (int i = 0; i < 3; i++)
        pump(f);
    assert_int_equal(recv(fd, buf, 1, 0), -1); /* nothing more */
}

/* Sends all of p while running the loop: a peer that reads only when the
 * test lets it. */
static void send_all_pumping(fixture_t *f, int fd, const char *p, size_t n)
{
    size_t sent = 0;
    for (int turns = 0; sent < n; turns++) {
        if (turns > MAX_TURNS)
            fail_msg("sent only %zu of %zu bytes", sent, n);
        ssize_t r = send(fd, p + sent, n - sent, MSG_NOSIGNAL);
        if (r > 0)
            sent += (size_t)r;
        else
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        pump(f);
    }
}

/* The body arrives while the filter holds the request: more than the read
 * buffer holds, so reading stops; after the resume all of it goes
 * upstream, byte for byte. */
static void test_body_held_during_pause(void **state)
{
    fixture_t *f = *state;
    size_t n = 300 * 1024;
    char *body = malloc(n + 1), head[128], buf[4096];
    int closed;
    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i * 7 % 26);
    body[n] = '\0';
    int fd = client_connect(f);
    snprintf(head, sizeof(head), "POST /extup HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n",
             n);
    send_str(fd, head);
    RUN_UNTIL(f, seen.paused == 1);
    /* Fill what the kernel and the worker's read buffer take. */
    size_t sent = 0;
    for (int idle = 0; idle < 50 && sent < n;) {
        ssize_t r = send(fd, body + sent, n - sent, MSG_NOSIGNAL);
        if (r > 0) {
            sent += (size_t)r;
            idle = 0;
        } else {
            idle++;
        }
        pump(f);
    }
    assert_true(sent > 65536);
    assert_int_equal(f->up.num_reqs, 0);
    assert_int_equal(f->up.num_fds, 0); /* not even a connection upstream */
    holder_complete(f);
    send_all_pumping(f, fd, body + sent, n - sent);
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(seen.ext_got_stream, 1);
    assert_int_equal(f->up.num_reqs, 1);
    check_forwarded_body(f, 0, body);
    free(body);
    client_close(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.cancels, 0);
}

/* Draining lets a paused request finish (the chain resumes as usual) and
 * closes its connection after the response. */
static void test_drain_while_paused(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int fd = paused_request(f, "/resume");
    gh_worker_stop(&f->w, 0);
    size_t n = read_to_close(f, fd, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf,
                        "HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nresumed");
    client_close(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.deadlines, 1);
    assert_int_equal(seen.cancels, 0);
}

/* A forced stop closes a held request: cancelled, nothing written. */
static void test_forced_stop_while_paused(void **state)
{
    fixture_t *f = *state;
    char buf[256];
    int fd = paused_request(f, "/hold");
    gh_worker_stop(&f->w, 0);
    for (int i = 0; i < 20; i++)
        pump(f);
    assert_int_equal(seen.cancels, 0); /* a drain waits for it */
    assert_int_equal(f->w.num_conns, 1);
    gh_worker_stop(&f->w, 1);
    assert_int_equal(read_to_close(f, fd, buf, sizeof(buf)), 0);
    client_close(f, fd);
    check_cancelled(f);
}

/* The body stands still while the filter holds the request: gatehouse is
 * not reading it, so the body timeout (300 ms here) does not blame the
 * client with a 408; the request stays held, and a client that leaves
 * then cancels the filter. */
static void test_body_timeout_while_paused(void **state)
{
    fixture_t *f = *state;
    char buf[64];
    int fd = client_connect_to(f, f->slow_port);
    send_str(fd, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n012");
    RUN_UNTIL(f, seen.paused == 1);
    uint64_t t0 = uv_now(&f->w.loop);
    RUN_UNTIL(f, uv_now(&f->w.loop) - t0 >= 1000); /* three body timeouts */
    assert_true(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN);
    assert_int_equal(seen.cancels, 0);
    client_close(f, fd);
    wait_stream_gone(f);
    assert_int_equal(seen.cancels, 1);
    assert_int_equal(seen.cancel_take_null, 1);
    assert_int_equal(seen.deadlines, 0);
    assert_int_equal(seen.log_status, 0);
}

/* Reads until what came ends with tail. Returns the length. */
static size_t read_until_tail(fixture_t *f, int fd, char *buf, size_t cap, const char *tail)
{
    size_t n = 0, tn = strlen(tail);
    for (int turns = 0; n < tn || memcmp(buf + n - tn, tail, tn) != 0; turns++) {
        if (turns > MAX_TURNS)
            fail_msg("no '%s' at the end of what came", tail);
        assert_true(n < cap - 1);
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            fail_msg("closed after %zu bytes", n);
        pump(f);
    }
    buf[n] = '\0';
    return n;
}

/* A request pipelined right after a buffered body is neither taken into
 * the body nor lost. */
static void pipelined_after_buffered(fixture_t *f, const char *req, const char *body)
{
    char buf[4096];
    int fd = client_connect(f);
    send_str(fd, req);
    read_until_tail(f, fd, buf, sizeof(buf), "\r\n\r\nok");
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    const char *second = strstr(buf, "\r\n\r\nup");
    assert_non_null(second);
    assert_string_equal(second + 6,
                        "HTTP/1.1 200 OK\r\nx-testpause: added\r\ncontent-length: 2\r\n\r\nok");
    assert_int_equal(seen.buffered, 1);
    assert_string_equal(seen.body, body);
    assert_int_equal(f->up.num_reqs, 1);
    check_forwarded_body(f, 0, body);
    client_close(f, fd);
    RUN_UNTIL(f, seen.destroys == 2);
}

static void test_pipelined_after_buffered_length(void **state)
{
    pipelined_after_buffered(*state,
                             "POST /buffer HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
                             "GET /hdr HTTP/1.1\r\nHost: a\r\n\r\n",
                             "xyz");
}

static void test_pipelined_after_buffered_chunked(void **state)
{
    pipelined_after_buffered(
        *state,
        "POST /buffer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nxyz\r\n0\r\n\r\n"
        "GET /hdr HTTP/1.1\r\nHost: a\r\n\r\n",
        "xyz");
}

/* Two pausing filters: the first resumes at once, the second holds the
 * request until its deadline. */
static void test_two_pausing_filters(void **state)
{
    fixture_t *f = *state;
    request_ok(f, "GET /two HTTP/1.1\r\nHost: a\r\n\r\n",
               "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ntwo");
    RUN_UNTIL(f, seen.destroys == 2);
    assert_int_equal(seen.headers, 2);
    assert_int_equal(seen.paused, 2);
    assert_int_equal(seen.deadlines, 1);
    assert_int_equal(seen.logs, 2); /* one per filter */
    assert_int_equal(seen.cancels, 0);
}

/* The client leaves while the second of two filters holds the request:
 * only that one is cancelled, with its own context. */
static void test_two_pausing_filters_client_leaves(void **state)
{
    fixture_t *f = *state;
    int fd = client_connect(f);
    send_str(fd, "GET /twohold HTTP/1.1\r\nHost: a\r\n\r\n");
    RUN_UNTIL(f, seen.paused == 2);
    assert_int_equal(seen.deadlines, 1); /* the first one's */
    close_rst(f, fd);
    RUN_UNTIL(f, seen.destroys == 2);
    assert_null(f->w.dead);
    assert_int_equal(seen.cancels, 1);
    assert_int_equal(seen.cancel_mode, MODE_HOLD);
    assert_int_equal(seen.cancel_take_null, 1);
    assert_int_equal(seen.logs, 2);
    assert_int_equal(seen.log_aborted, 1);
    assert_int_equal(seen.log_bytes_out, 0);
}

/* The 413 is still being written (the client reads slowly, and filters
 * made it long) when more of the body comes: the answer is not taken
 * back, and the connection closes after it. */
static void test_buffer_413_while_more_body_comes(void **state)
{
    fixture_t *f = *state;
    char chunk[4096], *buf = malloc(128 * 1024);
    int small = 4096;
    assert_non_null(buf);
    memset(chunk, 'c', sizeof(chunk));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    f->clients[f->num_clients++] = fd;
    RUN_UNTIL(f, f->w.conns != NULL);
    uv_os_fd_t sfd;
    assert_int_equal(uv_fileno((uv_handle_t *)&f->w.conns->tcp, &sfd), 0);
    assert_int_equal(setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    send_str(fd, "POST /padbuffer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "100000\r\n");
    assert_int_equal(send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL), (ssize_t)sizeof(chunk));
    RUN_UNTIL(f, seen.headers == 1);
    for (int i = 0; i < 20; i++)
        pump(f);
    assert_true(f->w.conns->wpending); /* the 413 is under way */
    assert_int_equal(send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL), (ssize_t)sizeof(chunk));
    for (int i = 0; i < 20; i++)
        pump(f);
    size_t n = read_to_close(f, fd, buf, 128 * 1024);
    assert_true(n > 40000);
    assert_memory_equal(buf, "HTTP/1.1 413 Content Too Large\r\n", 32);
    assert_int_equal(message_len(buf, n), n);
    client_close(f, fd);
    free(buf);
    wait_stream_gone(f);
    assert_int_equal(seen.log_status, 413);
    assert_int_equal(seen.log_aborted, 0);
    assert_int_equal(seen.buffered, 0);
    assert_int_equal(f->up.num_reqs, 0);
}

/* A request without a body, buffered: the filter sees an empty body, and
 * the request goes upstream without one. */
static void test_buffer_no_body(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int closed;
    int fd = client_connect(f);
    send_str(fd, "GET /buffer HTTP/1.1\r\nHost: a\r\n\r\n");
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(seen.buffered, 1);
    assert_int_equal(seen.body_len, 0);
    assert_int_equal(f->up.num_reqs, 1);
    /* Forwarded as it came: no framing field added, nothing after the
     * head. */
    const char *req = f->up.reqs[0];
    assert_memory_equal(req, "GET /buffer HTTP/1.1\r\n", 22);
    assert_int_equal(f->up.req_len[0], (size_t)(strstr(req, "\r\n\r\n") - req) + 4);
    assert_null(find_mem(req, f->up.req_len[0], "content-length"));
    assert_null(find_mem(req, f->up.req_len[0], "transfer-encoding"));
    client_close(f, fd);
    wait_stream_gone(f);
}

/* Two filters buffer: the body the first one read whole (64 bytes
 * allowed) is over the second one's limit (8), which must not be handed a
 * body longer than it asked for (filter.h: "at most limit bytes"). A
 * chunked body is not bounded by its head, so only the buffered length can
 * tell. */
static void test_second_buffer_limit_enforced(void **state)
{
    fixture_t *f = *state;
    int fd = client_connect(f);
    send_str(fd, "POST /twobuffer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "14\r\n0123456789abcdefghij\r\n0\r\n\r\n");
    char buf[4096];
    int closed;
    read_response(f, fd, buf, sizeof(buf), &closed);
    assert_memory_equal(buf, "HTTP/1.1 413 Content Too Large\r\n", 32);
    client_close(f, fd);
    RUN_UNTIL(f, seen.destroys == 2);
    assert_int_equal(seen.buffered, 1); /* the first filter only */
    assert_int_equal(seen.body_len, 20);
    assert_int_equal(seen.log_status, 413);
    assert_int_equal(f->up.num_reqs, 0);
}

/* ---- deferred deletion ---- */

static void test_stream_freed_after_the_callback(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    int fd = client_connect(f);
    send_str(fd, "GET /double HTTP/1.1\r\nHost: a\r\n\r\n");
    /* The loop turn that ran the filter ended the stream and freed it. */
    RUN_UNTIL(f, seen.destroys > 0);
    assert_null(f->w.dead);
    assert_int_equal(seen.ended_in_cb, 1);
    assert_int_equal(seen.buried_in_cb, 1);
    assert_int_equal(seen.destroys_in_cb, 1);
    assert_int_equal(strlen(seen.rid), 32);
    assert_int_equal(seen.logs, 1);
    assert_int_equal(seen.destroys, 1);
    assert_int_equal(seen.log_aborted, 1);
    read_to_close(f, fd, buf, sizeof(buf));
    client_close(f, fd);
    /* A fresh connection is still served. */
    request_ok(f, "GET /hdr HTTP/1.1\r\nHost: a\r\n\r\n",
               "HTTP/1.1 200 OK\r\nx-testpause: added\r\ncontent-length: 2\r\n\r\nok");
}

int main(void)
{
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    register_types();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_resume_on_deadline_direct),
        T(test_resume_on_deadline_upstream),
        T(test_reply_from_deadline),
        T(test_response_field_on_direct_response),
        T(test_response_field_on_proxied_response),
        T(test_reply_refused_field_is_500),
        T(test_reply_bad_status_is_500),
        T(test_close_during_pause),
        T(test_reset_during_pause),
        T(test_half_close_during_pause),
        T(test_handle_taken_after_stream_freed),
        T(test_handle_taken_from_holder),
        T(test_sync_resume),
        T(test_sync_resume_upstream),
        T(test_buffer_content_length_split),
        T(test_buffer_chunked_split),
        T(test_buffer_empty_chunked),
        T(test_buffer_at_limit),
        T(test_buffer_chunked_over_limit),
        T(test_buffer_content_length_over_limit),
        T(test_buffer_large_body_over_limit),
        T(test_buffer_client_eof_mid_body),
        T(test_buffer_client_reset_mid_body),
        T(test_buffer_expect_continue),
        T(test_buffer_expect_continue_body_sent),
        T(test_buffer_then_pause),
        T(test_buffer_then_pause_client_leaves),
        T(test_stream_freed_after_the_callback),
        T(test_pipelined_behind_pause),
        T(test_body_held_during_pause),
        T(test_drain_while_paused),
        T(test_forced_stop_while_paused),
        T(test_body_timeout_while_paused),
        T(test_pipelined_after_buffered_length),
        T(test_pipelined_after_buffered_chunked),
        T(test_buffer_413_while_more_body_comes),
        T(test_buffer_no_body),
        T(test_second_buffer_limit_enforced),
        T(test_two_pausing_filters),
        T(test_two_pausing_filters_client_leaves),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    gh_filter_types_set(NULL);
    return rc;
}
