/*
 * The admin API's request bodies (src/admin/admin.c) over real sockets:
 * the admin server runs on a loop in a thread of its own with a SQLite
 * store on a temporary file, and this thread is its client. A request
 * with a body split at every byte means the same; a body never becomes a
 * request (pipelined requests after it are answered in order, and request
 * bytes inside a body are body); refused bodies (too large, chunked, wrong
 * type, unauthorised, on a GET) are never read and the connection closes
 * after the answer, which arrives whole; a peer that stalls mid-body is
 * closed without an answer; one that resets mid-body leaves nothing
 * behind (the import slot is free again); 100-continue.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <gatehouse/admin.h>
#include <gatehouse/config.h>
#include <gatehouse/store.h>

#define TOKEN "0123456789abcdef-admin-token"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
#define IMPORT_MAX 4096

static char dir[] = "/tmp/gh-admin-body-XXXXXX";
static gh_store_t *st;
static uv_loop_t loop;
static uv_thread_t thread;
static uv_async_t stop_async;
static gh_admin_t *admin;
static int port;
static int store_down; /* read on the loop thread, set between requests */

/* ---- the server ---- */

static int hook_ready(void *arg, int detailed, const char **reason)
{
    (void)arg;
    (void)detailed;
    (void)reason;
    return 1;
}

static char *hook_json(void *arg, size_t *len)
{
    (void)arg;
    *len = 3;
    return strdup("{}\n");
}

static gh_store_t *hook_store(void *arg, char *why, size_t cap)
{
    (void)arg;
    if (__atomic_load_n(&store_down, __ATOMIC_ACQUIRE)) {
        snprintf(why, cap, "the test says so");
        return NULL;
    }
    return gh_store_ref(st);
}

static void on_stop(uv_async_t *a)
{
    gh_admin_stop(admin);
    uv_close((uv_handle_t *)a, NULL);
}

static void run_loop(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    close(fd);
    return ntohs(sa.sin_port);
}

static int group_setup(void **state)
{
    (void)state;
    char path[256];
    gh_store_error_t err;
    gh_store_conf_t c;
    if (mkdtemp(dir) == NULL || gh_store_conf_default(&c, NULL) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/store.db", dir);
    free(c.path);
    c.path = strdup(path);
    c.path_is_default = 0;
    int rc = gh_store_open(&c, GH_STORE_CREATE, &st, &err);
    gh_store_conf_dispose(&c);
    if (rc != 0)
        return -1;
    if (uv_loop_init(&loop) != 0 || (port = free_port()) < 0)
        return -1;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    gh_admin_conf_t conf;
    memset(&conf, 0, sizeof(conf));
    conf.enabled = 1;
    conf.address = addr;
    struct sockaddr_in *sa = (struct sockaddr_in *)&conf.addr;
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    conf.addrlen = sizeof(*sa);
    conf.token = (char *)TOKEN;
    conf.max_import_body = IMPORT_MAX;
    gh_admin_hooks_t hooks = {hook_ready, hook_json, hook_json, hook_store, NULL, NULL, NULL};
    admin = gh_admin_start(&loop, &conf, &hooks);
    if (admin == NULL || uv_async_init(&loop, &stop_async, on_stop) != 0)
        return -1;
    return uv_thread_create(&thread, run_loop, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    uv_async_send(&stop_async);
    uv_thread_join(&thread);
    uv_loop_close(&loop);
    gh_store_unref(st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the client ---- */

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    struct timeval tv = {20, 0};
    assert_true(fd >= 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void put(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            fail_msg("send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

static void pause_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* What a connection received, kept across responses. */
typedef struct {
    int fd;
    char buf[1 << 23];
    size_t len;
    int eof;
} client_t;

static int fill(client_t *c)
{
    if (c->len == sizeof(c->buf))
        fail_msg("response larger than the test's buffer");
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n < 0 && errno == EINTR)
        return 1;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        fail_msg("no answer within 20 s");
    if (n <= 0) {
        c->eof = 1;
        return 0;
    }
    c->len += (size_t)n;
    return 1;
}

typedef struct {
    int status;
    char head[2048];
    char body[1 << 23];
    size_t body_len;
} resp_t;

/* The next response (interim ones included); status 0 when the connection
 * ended first. */
static void next_response(client_t *c, resp_t *r)
{
    char *end;
    memset(r, 0, offsetof(resp_t, body));
    r->body[0] = '\0';
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (!fill(c))
            return;
    size_t hl = (size_t)(end - c->buf) + 4;
    assert_true(hl < sizeof(r->head));
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    size_t cl = 0;
    const char *p = strcasestr(r->head, "\r\ncontent-length: ");
    if (p != NULL)
        cl = strtoul(p + 18, NULL, 10);
    assert_true(cl < sizeof(r->body));
    while (c->len < hl + cl)
        if (!fill(c))
            fail_msg("connection ended inside a response body");
    memcpy(r->body, c->buf + hl, cl);
    r->body[cl] = '\0';
    r->body_len = cl;
    memmove(c->buf, c->buf + hl + cl, c->len - hl - cl);
    c->len -= hl + cl;
}

/* 1 when the server closed the connection (EOF or reset) with nothing
 * more sent. */
static int closed_quietly(client_t *c)
{
    size_t before = c->len;
    while (fill(c))
        ;
    return c->len == before;
}

static client_t *client_new(void)
{
    client_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->fd = dial();
    return c;
}

static void client_free(client_t *c)
{
    close(c->fd);
    free(c);
}

static void expect(client_t *c, int status, const char *in_body)
{
    static resp_t r;
    next_response(c, &r);
    if (r.status != status)
        fail_msg("status %d, expected %d: %s%s", r.status, status, r.head, r.body);
    if (in_body != NULL && strstr(r.body, in_body) == NULL)
        fail_msg("'%s' not in %s", in_body, r.body);
}

static size_t count_keys(void)
{
    static const char req[] = "GET /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n";
    static resp_t r;
    client_t *c = client_new();
    put(c->fd, req, sizeof(req) - 1);
    next_response(c, &r);
    assert_int_equal(r.status, 200);
    size_t n = 0;
    for (const char *p = r.body; (p = strstr(p, "\"id\":")) != NULL; p++)
        n++;
    client_free(c);
    return n;
}

static size_t create_request(char *out, size_t cap, const char *consumer, const char *tail)
{
    char body[512];
    int bl = snprintf(body, sizeof(body),
                      "{\"consumer\":\"%s\",\"description\":\"split \\u00e9 %s\","
                      "\"scopes\":[\"orders:read\"]}",
                      consumer, consumer);
    int n = snprintf(out, cap,
                     "POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s%s",
                     bl, body, tail);
    return (size_t)n;
}

/* ---- tests ---- */

/* A create with a pipelined probe behind it, cut in two at every byte
 * (and paused between the pieces, so the server reads them apart): the
 * same key is made from the same body each time, and the probe is
 * answered after it. */
static void test_split_at_every_byte(void **state)
{
    (void)state;
    char req[2048];
    static const char probe[] = "GET /live HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = create_request(req, sizeof(req), "split-client", probe);
    size_t before = count_keys();
    for (size_t cut = 1; cut < n; cut++) {
        client_t *c = client_new();
        put(c->fd, req, cut);
        pause_ms(1);
        put(c->fd, req + cut, n - cut);
        expect(c, 201, "\"description\": \"split \xc3\xa9 split-client\"");
        expect(c, 200, "\"status\":\"live\"");
        client_free(c);
    }
    assert_int_equal(count_keys(), before + n - 1);
}

/* The same in three pieces, each cut inside the body, so that the body
 * arrives over several reads into its own buffer. */
static void test_body_in_pieces(void **state)
{
    (void)state;
    char req[2048];
    size_t n = create_request(req, sizeof(req), "pieces", "");
    const char *body = strstr(req, "\r\n\r\n") + 4;
    size_t head = (size_t)(body - req);
    for (size_t a = head; a < n; a += 7)
        for (size_t b = a + 1; b < n; b += 13) {
            client_t *c = client_new();
            put(c->fd, req, a);
            pause_ms(1);
            put(c->fd, req + a, b - a);
            pause_ms(1);
            put(c->fd, req + b, n - b);
            expect(c, 201, "\"consumer\": \"pieces\"");
            client_free(c);
        }
}

/* A body near the JSON bound, larger than the head's buffer: whitespace
 * padding is JSON. Then a second request on the same connection. */
static void test_large_body_keepalive(void **state)
{
    (void)state;
    size_t cap = 64 * 1024;
    char *body = malloc(cap + 1);
    const char *obj = "{\"consumer\":\"large\"}";
    memset(body, ' ', cap);
    memcpy(body, obj, strlen(obj));
    char head[512];
    client_t *c = client_new();
    int hl = snprintf(head, sizeof(head),
                      "POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      cap);
    put(c->fd, head, (size_t)hl);
    put(c->fd, body, 5000);
    pause_ms(2);
    put(c->fd, body + 5000, cap - 5000);
    expect(c, 201, "\"consumer\": \"large\"");
    put(c->fd, head, (size_t)hl);
    put(c->fd, body, cap);
    expect(c, 201, "\"consumer\": \"large\"");
    /* one byte more: refused before it is read, and the answer arrives
     * whole although the whole body was sent */
    hl = snprintf(head, sizeof(head),
                  "POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                  cap + 1);
    put(c->fd, head, (size_t)hl);
    put(c->fd, body, cap + 1);
    expect(c, 413, "larger than 65536 bytes");
    assert_true(closed_quietly(c));
    client_free(c);
    free(body);
}

/* Request bytes inside a body are body: the body is not JSON (400), and
 * the one real request after it is answered; what the body held is not. */
static void test_body_never_a_request(void **state)
{
    (void)state;
    static const char smuggled[] = "GET /config HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n";
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s"
                     "GET /live HTTP/1.1\r\nHost: a\r\n\r\n",
                     sizeof(smuggled) - 1, smuggled);
    for (int cut = 1; cut < n; cut += 3) {
        client_t *c = client_new();
        put(c->fd, req, (size_t)cut);
        pause_ms(1);
        put(c->fd, req + cut, (size_t)n - (size_t)cut);
        expect(c, 400, "not acceptable JSON");
        expect(c, 200, "\"status\":\"live\"");
        client_free(c);
    }
    /* A Content-Length shorter than what follows: the rest is the next
     * request, and a malformed one closes the connection. */
    client_t *c = client_new();
    static const char shortcl[] = "POST /apikeys/aaaaaaaaaaaa/revoke HTTP/1.1\r\nHost: a\r\n" AUTH
                                  "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
                                  "{}XGET /live HTTP/1.1\r\n\r\n";
    put(c->fd, shortcl, sizeof(shortcl) - 1);
    expect(c, 404, "not_found");
    expect(c, 400, "");
    assert_true(closed_quietly(c));
    client_free(c);
}

static void refused_and_closed(const char *req, size_t n, int status, const char *detail)
{
    client_t *c = client_new();
    put(c->fd, req, n);
    expect(c, status, detail);
    assert_true(closed_quietly(c));
    client_free(c);
}

#define REFUSED(req, status, detail) refused_and_closed(req, sizeof(req) - 1, status, detail)

static void test_refused_bodies(void **state)
{
    (void)state;
    size_t before = count_keys();
    REFUSED("POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            "10\r\n{\"consumer\":\"x\"}\r\n0\r\n\r\n",
            411, "Content-Length");
    REFUSED("POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
            "Content-Type: text/plain\r\nContent-Length: 16\r\n\r\n{\"consumer\":\"x\"}",
            415, "content-type: application/json");
    REFUSED("POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
            "Content-Length: 16\r\n\r\n{\"consumer\":\"x\"}",
            415, "content-type: application/json");
    REFUSED("POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
            "Content-Type: application/json\r\nContent-Type: application/json\r\n"
            "Content-Length: 16\r\n\r\n{\"consumer\":\"x\"}",
            400, "two Content-Type");
    REFUSED("POST /apikeys/import HTTP/1.1\r\nHost: a\r\n" AUTH
            "Content-Type: application/json\r\nContent-Length: 9\r\n\r\nName,Key\n",
            415, "content-type: text/csv");
    /* no token: 401 before the body is looked at */
    REFUSED("POST /apikeys HTTP/1.1\r\nHost: a\r\n"
            "Content-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"consumer\":\"x\"}",
            401, "Authorization: Bearer");
    REFUSED("POST /apikeys HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer wrong-token-wrong\r\n"
            "Content-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"consumer\":\"x\"}",
            401, "Authorization: Bearer");
    /* a body where none is taken */
    REFUSED("GET /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH "Content-Length: 2\r\n\r\n{}", 400,
            "takes no body");
    REFUSED("GET /apikeys/aaaaaaaaaaaa/usage HTTP/1.1\r\nHost: a\r\n" AUTH
            "Content-Length: 2\r\n\r\n{}",
            400, "takes no body");
    REFUSED("GET /live HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}", 400,
            "admin requests have no body");
    REFUSED("POST /apikeys/aaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n" AUTH
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            405, "takes GET, HEAD");
    REFUSED("POST /apikeys/nope HTTP/1.1\r\nHost: a\r\n" AUTH
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            404, "is not a key id");
    /* over the import bound (4096 here) */
    char big[IMPORT_MAX + 512];
    int hl = snprintf(big, sizeof(big),
                      "POST /apikeys/import HTTP/1.1\r\nHost: a\r\n" AUTH
                      "Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n",
                      IMPORT_MAX + 1);
    memset(big + hl, 'x', sizeof(big) - (size_t)hl);
    refused_and_closed(big, sizeof(big), 413, "admin.max_import_body");
    /* Content-Length beyond any bound */
    REFUSED("POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
            "Content-Type: application/json\r\nContent-Length: 999999999999999999\r\n\r\n{}",
            413, "larger than");
    assert_int_equal(count_keys(), before);
}

/* A peer that stops sending mid-body is closed, without an answer; one
 * that resets mid-body leaves the server serving, and an import's slot
 * free for the next import. */
static void test_stall_and_reset(void **state)
{
    (void)state;
    char req[1024];
    size_t n = create_request(req, sizeof(req), "stalled", "");
    size_t before = count_keys();
    client_t *c = client_new();
    put(c->fd, req, n - 5);
    assert_true(closed_quietly(c));
    client_free(c);

    static const char imp[] = "POST /apikeys/import HTTP/1.1\r\nHost: a\r\n" AUTH
                              "Content-Type: text/csv\r\nContent-Length: 200\r\n\r\nName,Key\n";
    for (int round = 0; round < 3; round++) {
        c = client_new();
        put(c->fd, imp, sizeof(imp) - 1);
        pause_ms(20);
        /* while that body is being received, a second import waits */
        client_t *d = client_new();
        static const char imp2[] = "POST /apikeys/import?dry_run=1 HTTP/1.1\r\nHost: a\r\n" AUTH
                                   "Content-Type: text/csv\r\nContent-Length: 9\r\n\r\nName,Key\n";
        put(d->fd, imp2, sizeof(imp2) - 1);
        expect(d, 503, "another import");
        client_free(d);
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        client_free(c); /* RST */
        pause_ms(20);
        d = client_new();
        put(d->fd, imp2, sizeof(imp2) - 1);
        expect(d, 200, "\"rows\": 0");
        client_free(d);
    }
    /* a reset mid-create */
    c = client_new();
    put(c->fd, req, n - 3);
    pause_ms(20);
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    client_free(c);
    assert_int_equal(count_keys(), before);
}

static void test_expect_continue(void **state)
{
    (void)state;
    static resp_t r;
    static const char body[] = "{\"consumer\":\"patient\"}";
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "POST /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH
                      "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      sizeof(body) - 1);
    client_t *c = client_new();
    put(c->fd, head, (size_t)hl);
    next_response(c, &r);
    assert_int_equal(r.status, 100);
    put(c->fd, body, sizeof(body) - 1);
    expect(c, 201, "\"consumer\": \"patient\"");
    /* refused before the body: no 100, the final answer */
    static const char nope[] = "POST /apikeys HTTP/1.1\r\nHost: a\r\n"
                               "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                               "Content-Length: 10\r\n\r\n";
    client_free(c);
    c = client_new();
    put(c->fd, nope, sizeof(nope) - 1);
    expect(c, 401, "");
    assert_true(closed_quietly(c));
    client_free(c);
}

static void test_store_unavailable(void **state)
{
    (void)state;
    char req[1024];
    size_t n = create_request(req, sizeof(req), "nostore", "");
    __atomic_store_n(&store_down, 1, __ATOMIC_RELEASE);
    client_t *c = client_new();
    put(c->fd, req, n);
    expect(c, 503, "the key store is unavailable: the test says so");
    assert_true(closed_quietly(c));
    client_free(c);
    c = client_new();
    static const char list[] = "GET /apikeys HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n";
    put(c->fd, list, sizeof(list) - 1);
    expect(c, 503, "unavailable");
    put(c->fd, list, sizeof(list) - 1); /* no body: the connection goes on */
    expect(c, 503, "unavailable");
    __atomic_store_n(&store_down, 0, __ATOMIC_RELEASE);
    put(c->fd, list, sizeof(list) - 1);
    expect(c, 200, "");
    client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_at_every_byte),  cmocka_unit_test(test_body_in_pieces),
        cmocka_unit_test(test_large_body_keepalive), cmocka_unit_test(test_body_never_a_request),
        cmocka_unit_test(test_refused_bodies),       cmocka_unit_test(test_stall_and_reset),
        cmocka_unit_test(test_expect_continue),      cmocka_unit_test(test_store_unavailable),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
