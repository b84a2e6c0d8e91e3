/*
 * Callouts over TLS (src/proxy/uptls.c under callout.c): a filter's call to
 * a cluster with `tls`, on a real worker, against a loopback TLS upstream
 * written here with OpenSSL's server side (non-blocking, polled between
 * loop turns) and a certificate made in the test for 127.0.0.1.
 *
 * Cases: a call and its answer over TLS, the connection kept and reused;
 * answers cut at every byte; a second connection resuming the first's
 * session; a certificate whose name does not match (a connect failure
 * whose reason says why); a close-delimited body ended by close_notify
 * (whole) and by a bare close (a truncation, GH_CALLOUT_E_RESET); a large
 * answer split over many records.
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
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <gatehouse/callout.h>
#include <gatehouse/config.h>
#include <gatehouse/filter.h>
#include <gatehouse/yaml.h>

#include "proxy/proxy.h"
#include "proxy/worker.h"

#define MAX_TURNS 200000

/* ---- a certificate for 127.0.0.1 ---- */

static EVP_PKEY *key;
static X509 *cert;
static char ca_path[64];

static void make_cert(void)
{
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(key);
    cert = X509_new();
    assert_non_null(cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, key);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext =
        X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:up.test");
    assert_non_null(ext);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
    snprintf(ca_path, sizeof(ca_path), "/tmp/gh-callout-tls-%d.pem", (int)getpid());
    FILE *fp = fopen(ca_path, "w");
    assert_non_null(fp);
    PEM_write_X509(fp, cert);
    fclose(fp);
}

/* ---- the TLS upstream ---- */

enum {
    UP_KEEP = 0,  /* answer, keep the connection */
    UP_NOTIFY,    /* answer, close_notify, close */
    UP_BARE,      /* answer, close without close_notify */
    UP_REPLY_CUT, /* answer in one-byte records (every byte its own read) */
};

#define UP_MAX 16

typedef struct {
    int lfd, port;
    SSL_CTX *ctx;
    int fds[UP_MAX];
    SSL *ssl[UP_MAX];
    int shaken[UP_MAX];
    char buf[UP_MAX][8192];
    size_t len[UP_MAX];
    int sending[UP_MAX];
    size_t out_off[UP_MAX];
    unsigned num, accepts, handshakes, resumed, reqs;
    int mode;
    const char *reply;
    size_t reply_len;
} upstream_t;

static void up_drop(upstream_t *u, unsigned i)
{
    SSL_free(u->ssl[i]);
    u->ssl[i] = NULL;
    close(u->fds[i]);
    u->fds[i] = -1;
}

/* Sends what is left of connection i's answer, as far as the socket
 * takes it (the worker reads it on the same thread, between polls); then
 * what the mode says. */
static void up_send(upstream_t *u, unsigned i)
{
    SSL *s = u->ssl[i];
    while (u->out_off[i] < u->reply_len) {
        size_t n = u->mode == UP_REPLY_CUT ? 1 : u->reply_len - u->out_off[i], w = 0;
        if (SSL_write_ex(s, u->reply + u->out_off[i], n, &w) != 1) {
            int e = SSL_get_error(s, 0);
            assert_true(e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ);
            return;
        }
        u->out_off[i] += w;
    }
    u->sending[i] = 0;
    if (u->mode == UP_NOTIFY) {
        SSL_shutdown(s);
        up_drop(u, i);
    } else if (u->mode == UP_BARE) {
        up_drop(u, i);
    }
}

static void up_answer(upstream_t *u, unsigned i)
{
    u->reqs++;
    u->sending[i] = 1;
    u->out_off[i] = 0;
    up_send(u, i);
}

static void upstream_poll(upstream_t *u)
{
    int fd;
    while (u->num < UP_MAX && (fd = accept(u->lfd, NULL, NULL)) >= 0) {
        fcntl(fd, F_SETFL, O_NONBLOCK);
        u->fds[u->num] = fd;
        u->ssl[u->num] = SSL_new(u->ctx);
        assert_non_null(u->ssl[u->num]);
        SSL_set_fd(u->ssl[u->num], fd);
        SSL_set_accept_state(u->ssl[u->num]);
        u->shaken[u->num] = 0;
        u->sending[u->num] = 0;
        u->len[u->num++] = 0;
        u->accepts++;
    }
    for (unsigned i = 0; i < u->num; i++) {
        SSL *s = u->ssl[i];
        if (s == NULL)
            continue;
        ERR_clear_error();
        if (!u->shaken[i]) {
            int r = SSL_do_handshake(s);
            if (r == 1) {
                u->shaken[i] = 1;
                u->handshakes++;
                u->resumed += SSL_session_reused(s);
            } else {
                int e = SSL_get_error(s, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    up_drop(u, i);
                continue;
            }
        }
        if (u->sending[i]) {
            up_send(u, i);
            continue;
        }
        size_t got = 0;
        if (SSL_read_ex(s, u->buf[i] + u->len[i], sizeof(u->buf[i]) - u->len[i], &got) != 1) {
            int e = SSL_get_error(s, 0);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                up_drop(u, i);
            continue;
        }
        u->len[i] += got;
        /* Callouts here send no body: a request ends with its head. */
        char *end = memmem(u->buf[i], u->len[i], "\r\n\r\n", 4);
        if (end != NULL) {
            size_t m = (size_t)(end - u->buf[i]) + 4;
            memmove(u->buf[i], u->buf[i] + m, u->len[i] - m);
            u->len[i] -= m;
            up_answer(u, i);
        }
    }
}

static void upstream_close(upstream_t *u)
{
    for (unsigned i = 0; i < u->num; i++)
        if (u->ssl[i] != NULL)
            up_drop(u, i);
    SSL_CTX_free(u->ctx);
    close(u->lfd);
}

/* ---- the test filter: one call per request ---- */

typedef struct {
    unsigned calls;
    int error;
    char reason[256];
    int status;
    char *body;
    size_t body_len;
} got_t;

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

static int tparse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg,
                  gh_route_t *route, void **conf)
{
    const char *name;
    (void)cfg;
    (void)route;
    int rc = gh_yaml_str(doc, n, "tlscall", &name);
    if (rc != 0)
        return rc;
    tconf_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->cluster = strdup(name)) == NULL) {
        free(t);
        return gh_yaml_oom(doc);
    }
    *conf = t;
    return 0;
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
    (void)rt;
    (void)route;
    (void)listener;
    tinst_t *in = calloc(1, sizeof(*in));
    if (in != NULL)
        in->cluster = gh_callout_cluster(cfg, ((const tconf_t *)conf)->cluster);
    return in;
}

static void tunbind(void *instance)
{
    free(instance);
}

static void on_done(void *arg, const gh_callout_result_t *res)
{
    tctx_t *ctx = arg;
    ctx->call = NULL;
    got.calls++;
    got.error = res->error;
    snprintf(got.reason, sizeof(got.reason), "%s", res->reason ? res->reason : "");
    got.status = res->status;
    free(got.body);
    got.body = malloc(res->body_len + 1);
    assert_non_null(got.body);
    if (res->body_len > 0)
        memcpy(got.body, res->body, res->body_len);
    got.body[res->body_len] = '\0';
    got.body_len = res->body_len;
    gh_stream_t *s = gh_stream_handle_take(ctx->h);
    ctx->h = NULL;
    assert_non_null(s);
    gh_stream_reply(s, 200, NULL, 0, "done", 4);
}

static gh_filter_status_t ton_request_headers(gh_stream_t *s, const void *conf, void *vctx)
{
    const tinst_t *in = conf;
    tctx_t *ctx = vctx;
    gh_callout_req_t q = {.method = "GET",
                          .target = "/check",
                          .target_len = 6,
                          .timeout_ms = 10000,
                          .max_body = 4u << 20};
    ctx->h = gh_stream_pause(s);
    int rc = gh_callout_start(s, in->cluster, &q, on_done, ctx, &ctx->call);
    if (rc < 0) {
        got.calls++;
        got.error = rc;
        gh_stream_handle_take(ctx->h);
        ctx->h = NULL;
        gh_stream_reply(s, 503, NULL, 0, "x", 1);
        return GH_FILTER_REPLIED;
    }
    return GH_FILTER_PAUSE;
}

static void ton_cancel(gh_stream_t *s, const void *conf, void *vctx)
{
    tctx_t *ctx = vctx;
    (void)s;
    (void)conf;
    gh_callout_cancel(ctx->call);
    ctx->call = NULL;
    gh_stream_handle_take(ctx->h);
    ctx->h = NULL;
}

static const gh_filter_type_t test_filter = {
    .name = "tlscall",
    .phase = GH_PHASE_AUTHN,
    .ctx_size = sizeof(tctx_t),
    .parse = tparse,
    .free_conf = tfree_conf,
    .bind = tbind,
    .unbind = tunbind,
    .on_request_headers = ton_request_headers,
    .on_cancel = ton_cancel,
};

static const gh_filter_type_t *types[16];

static void register_types(void)
{
    const gh_filter_type_t *const *product = gh_filter_types();
    size_t n = 0;
    types[n++] = &test_filter;
    for (size_t i = 0; product[i] != NULL; i++)
        types[n++] = product[i];
    types[n] = NULL;
    gh_filter_types_set(types);
}

/* ---- the fixture ---- */

enum { CL_GOOD = 0, CL_WRONG_NAME };

static const char yaml_fmt[] = "listeners:\n"
                               "  - name: edge\n"
                               "    listen: 127.0.0.1:18079\n"
                               "    routes:\n"
                               "      - name: good\n"
                               "        match: {path: {exact: /good}}\n"
                               "        tlscall: good\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "      - name: wrong\n"
                               "        match: {path: {exact: /wrong}}\n"
                               "        tlscall: wrong\n"
                               "        direct_response: {status: 200, body: \"never\"}\n"
                               "clusters:\n"
                               "  good:\n"
                               "    endpoints: [\"127.0.0.1:%d\"]\n"
                               "    tls: {ca_file: \"%s\"}\n"
                               "  wrong:\n"
                               "    endpoints: [\"127.0.0.1:%d\"]\n"
                               "    tls: {ca_file: \"%s\", sni: other.test}\n";

typedef struct {
    gh_snapshot_t *snap;
    gh_worker_t w;
    int port;
    upstream_t up;
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
    free(got.body);
    memset(&got, 0, sizeof(got));
    f->up.lfd = listen_loopback(&f->up.port);
    if (f->up.lfd < 0 || listen(f->up.lfd, 16) != 0)
        return -1;
    fcntl(f->up.lfd, F_SETFL, O_NONBLOCK);
    f->up.ctx = SSL_CTX_new(TLS_server_method());
    if (f->up.ctx == NULL || SSL_CTX_use_certificate(f->up.ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(f->up.ctx, key) != 1)
        return -1;
    char yaml[sizeof(yaml_fmt) + 256];
    int n = snprintf(yaml, sizeof(yaml), yaml_fmt, f->up.port, ca_path, f->up.port, ca_path);
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
    *state = f;
    return 0;
}

static void pump(fixture_t *f)
{
    uv_run(&f->w.loop, UV_RUN_NOWAIT);
    upstream_poll(&f->up);
    usleep(50);
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
    RUN_UNTIL(f, f->w.num_conns == 0 && f->w.dead == NULL);
    gh_worker_dispose(&f->w);
    gh_snapshot_unref(f->snap);
    upstream_close(&f->up);
    free(got.body);
    got.body = NULL;
    free(f);
    return 0;
}

/* One call through path: waits for its callback. */
static void call(fixture_t *f, const char *path)
{
    unsigned n = got.calls;
    char req[128];
    int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(send(fd, req, (size_t)len, MSG_NOSIGNAL), len);
    RUN_UNTIL(f, got.calls > n);
    close(fd);
}

static gh_pool_t *pool_of(fixture_t *f, size_t cluster)
{
    return &f->w.cur->pools[cluster][0];
}

static void set_reply(fixture_t *f, int mode, const char *reply)
{
    f->up.mode = mode;
    f->up.reply = reply;
    f->up.reply_len = strlen(reply);
}

static const char r_length[] = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
static const char r_close[] = "HTTP/1.1 200 OK\r\nx-a: 1\r\n\r\nuntil close";

static void test_call_and_reuse(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_KEEP, r_length);
    for (int i = 0; i < 3; i++) {
        call(f, "/good");
        if (got.error != 0)
            fail_msg("%s", got.reason);
        assert_int_equal(got.status, 200);
        assert_string_equal(got.body, "hello");
        RUN_UNTIL(f, pool_of(f, CL_GOOD)->num_idle == 1);
    }
    assert_int_equal(f->up.accepts, 1);
    assert_int_equal(f->up.reqs, 3);
}

static void test_answer_cut_at_every_byte(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_REPLY_CUT, r_length);
    call(f, "/good");
    if (got.error != 0)
        fail_msg("%s", got.reason);
    assert_string_equal(got.body, "hello");
    RUN_UNTIL(f, pool_of(f, CL_GOOD)->num_idle == 1);
}

static void test_session_resumed(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_NOTIFY, r_length);
    call(f, "/good");
    assert_int_equal(got.error, 0);
    call(f, "/good");
    assert_int_equal(got.error, 0);
    call(f, "/good");
    assert_int_equal(got.error, 0);
    assert_int_equal(f->up.handshakes, 3);
    assert_int_equal(f->up.resumed, 2);
}

static void test_name_mismatch_is_connect_failure(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_KEEP, r_length);
    call(f, "/wrong");
    assert_int_equal(got.error, GH_CALLOUT_E_CONNECT);
    if (strstr(got.reason, "certificate verify failed: hostname mismatch") == NULL)
        fail_msg("reason: %s", got.reason);
    assert_int_equal(f->up.reqs, 0);
    RUN_UNTIL(f, pool_of(f, CL_WRONG_NAME)->num_conns == 0);
}

static void test_close_delimited_with_close_notify(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_NOTIFY, r_close);
    call(f, "/good");
    if (got.error != 0)
        fail_msg("%s", got.reason);
    assert_string_equal(got.body, "until close");
}

static void test_close_delimited_without_close_notify(void **state)
{
    fixture_t *f = *state;
    set_reply(f, UP_BARE, r_close);
    call(f, "/good");
    assert_int_equal(got.error, GH_CALLOUT_E_RESET);
    if (strstr(got.reason, "without close_notify") == NULL)
        fail_msg("reason: %s", got.reason);
}

static void test_large_answer(void **state)
{
    fixture_t *f = *state;
    size_t n = 3u << 20;
    char head[64];
    int hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\ncontent-length: %zu\r\n\r\n", n);
    char *reply = malloc((size_t)hl + n + 1);
    assert_non_null(reply);
    memcpy(reply, head, (size_t)hl);
    for (size_t i = 0; i < n; i++)
        reply[hl + (int)i] = (char)('a' + i % 23);
    reply[(size_t)hl + n] = '\0';
    set_reply(f, UP_KEEP, reply);
    call(f, "/good");
    if (got.error != 0)
        fail_msg("%s", got.reason);
    assert_int_equal(got.body_len, n);
    assert_memory_equal(got.body, reply + hl, n);
    free(reply);
}

int main(void)
{
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    register_types();
    make_cert();
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_call_and_reuse),
        T(test_answer_cut_at_every_byte),
        T(test_session_resumed),
        T(test_name_mismatch_is_connect_failure),
        T(test_close_delimited_with_close_notify),
        T(test_close_delimited_without_close_notify),
        T(test_large_answer),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(ca_path);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}
