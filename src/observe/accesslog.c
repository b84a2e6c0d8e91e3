/* Access log: JSON lines. See include/gatehouse/accesslog.h. */
#include <gatehouse/accesslog.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gatehouse/file.h>
#include <gatehouse/log.h>
#include <gatehouse/pairs.h>

/* The descriptor workers write to; -1 while no log is open. Its number
 * stays the same for the life of the process once set. */
static int log_fd = -1;
static char *log_path;           /* main thread only; NULL = stdout */
static uint64_t lines_lost;      /* atomic: lines a failed write lost */
static uint64_t lines_truncated; /* atomic: lines with a capped field */

/* Whether st is the file behind one of the process's own standard streams
 * (so "/dev/stdout" works when stdout is a pipe, as under a supervisor). */
static int is_own_stream(const struct stat *st)
{
    struct stat o;
    for (int fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++)
        if (fstat(fd, &o) == 0 && o.st_dev == st->st_dev && o.st_ino == st->st_ino)
            return 1;
    return 0;
}

/* The kinds of file the access log may be: a named pipe or a socket would
 * block or refuse writes. */
static int kind_ok(const struct stat *st)
{
    return S_ISREG(st->st_mode) || S_ISCHR(st->st_mode) || is_own_stream(st);
}

int gh_access_log_path_usable(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!kind_ok(&st)) {
            errno = GH_FILE_ENOTREG;
            return -1;
        }
        return access(path, W_OK);
    }
    if (errno != ENOENT)
        return -1;
    char *copy = strdup(path);
    if (copy == NULL)
        return -1;
    int r = access(dirname(copy), W_OK | X_OK);
    int e = errno;
    free(copy);
    errno = e;
    return r;
}

/* Opens without blocking (a named pipe without a reader would hold the
 * main loop) and accepts a regular file, a character device or the
 * process's own stdout/stderr; then writes block as they would on stdout. */
static int open_path(const char *path)
{
    if (path == NULL)
        return dup(STDOUT_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0640);
    if (fd < 0) {
        if (errno == ENXIO) /* a named pipe without a reader, a socket */
            errno = GH_FILE_ENOTREG;
        return -1;
    }
    struct stat st;
    int e = fstat(fd, &st) != 0 ? errno : 0;
    if (e == 0 && !kind_ok(&st))
        e = GH_FILE_ENOTREG;
    if (e == 0 && fcntl(fd, F_SETFL, O_APPEND) != 0)
        e = errno;
    if (e != 0) {
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int install(int fd)
{
    int cur = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
    if (cur < 0) {
        __atomic_store_n(&log_fd, fd, __ATOMIC_RELEASE);
        return 0;
    }
    /* dup2 swaps the file behind the number atomically for every thread. */
    int r = dup2(fd, cur) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int gh_access_log_prepare(const gh_access_log_conf_t *conf, int *fd)
{
    *fd = -1;
    if (!conf->enabled)
        return 0; /* keep whatever is open: workers skip logging by config */
    int same = (conf->path == NULL && log_path == NULL) ||
               (conf->path != NULL && log_path != NULL && strcmp(conf->path, log_path) == 0);
    if (same && log_fd >= 0)
        return 0;
    *fd = open_path(conf->path);
    return *fd < 0 ? -errno : 0;
}

int gh_access_log_commit(const gh_access_log_conf_t *conf, int fd)
{
    if (fd < 0)
        return 0;
    char *p = conf->path ? strdup(conf->path) : NULL;
    if (conf->path != NULL && p == NULL) {
        close(fd);
        return -ENOMEM;
    }
    int r = install(fd);
    if (r == 0) {
        free(log_path);
        log_path = p;
    } else {
        free(p);
    }
    return r;
}

void gh_access_log_abort(int fd)
{
    if (fd >= 0)
        close(fd);
}

int gh_access_log_open(const gh_access_log_conf_t *conf)
{
    int fd;
    int r = gh_access_log_prepare(conf, &fd);
    if (r < 0) {
        GH_LOG(GH_LOG_ERROR, "accesslog", "cannot open %s: %s", conf->path ? conf->path : "stdout",
               gh_file_strerror(-r));
        return r;
    }
    return gh_access_log_commit(conf, fd);
}

uint64_t gh_access_log_lines_lost(void)
{
    return __atomic_load_n(&lines_lost, __ATOMIC_RELAXED);
}

uint64_t gh_access_log_lines_truncated(void)
{
    return __atomic_load_n(&lines_truncated, __ATOMIC_RELAXED);
}

static uint64_t count_newlines(const char *p, size_t n)
{
    uint64_t k = 0;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; q++)
        k++;
    return k;
}

int gh_access_log_reopen(void)
{
    if (log_fd < 0 || log_path == NULL)
        return 0;
    int fd = open_path(log_path);
    if (fd < 0) {
        int e = errno;
        GH_LOG(GH_LOG_ERROR, "accesslog", "cannot reopen %s: %s", log_path, gh_file_strerror(e));
        return -e;
    }
    return install(fd);
}

void gh_access_log_close(void)
{
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    free(log_path);
    log_path = NULL;
}

void gh_access_log_flush(gh_access_log_buf_t *b)
{
    int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
    size_t off = 0;
    while (fd >= 0 && off < b->len) {
        ssize_t n = write(fd, b->buf + off, b->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* A full disk loses log lines, never requests; the loss is
             * counted (gatehouse_access_log_lines_lost_total). A line cut
             * by a short write counts as lost: its tail is. */
            uint64_t lost = count_newlines(b->buf + off, b->len - off);
            if (off > 0 && b->buf[off - 1] != '\n')
                lost++;
            __atomic_add_fetch(&lines_lost, lost, __ATOMIC_RELAXED);
            break;
        }
        off += (size_t)n;
    }
    b->len = 0;
}

/* ---- formatting ---- */

typedef struct {
    char *p, *end;
    int first;
    uint32_t truncated; /* bit set of GH_LOG_FIELD_* whose value was capped */
} w_t;

/* Caps on each string field, in bytes before escaping. A client controls
 * the path, query, user agent and method (and, through a token, the
 * principal and consumer); without caps a long value made the line larger
 * than the buffer and the whole line was dropped, so a client could hide
 * its own requests. A capped value is cut and the field named in the
 * line's "truncated" list. With every field at its cap and every byte
 * escaped (6x) a line still fits an empty buffer: see ALOG_LINE_MAX below. */
#define CAP_METHOD 64
#define CAP_PATH 2048
#define CAP_QUERY 2048
#define CAP_USER_AGENT 1024
#define CAP_NAME 512 /* request id, listener, route, upstream, client, principal, consumer, ... */
#define LINE_FIXED 2048 /* keys, numbers, time, punctuation */
#define ALOG_LINE_MAX                                                                              \
    (LINE_FIXED + 6 * (CAP_METHOD + CAP_PATH + CAP_QUERY + CAP_USER_AGENT + 10 * CAP_NAME))
_Static_assert(ALOG_LINE_MAX < GH_ACCESS_LOG_BUF, "a line at its caps must fit the buffer");

static void raw(w_t *w, const char *s, size_t n)
{
    if ((size_t)(w->end - w->p) < n) {
        w->p = w->end; /* truncated: the caller sees no room and drops the line */
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

static void key(w_t *w, const char *k)
{
    if (!w->first)
        raw(w, ",", 1);
    w->first = 0;
    raw(w, "\"", 1);
    raw(w, k, strlen(k));
    raw(w, "\":", 2);
}

/* A JSON string from arbitrary bytes: escapes quotes, backslashes, control
 * bytes and bytes >= 0x80 (as \u00XX, so the line stays valid UTF-8 whatever
 * a client put in its User-Agent). */
static void str(w_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (s == NULL) {
        raw(w, "null", 4);
        return;
    }
    raw(w, "\"", 1);
    for (size_t i = 0; i < n && w->p < w->end; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            raw(w, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            raw(w, e, 6);
        } else {
            raw(w, (const char *)&s[i], 1);
        }
    }
    raw(w, "\"", 1);
}

/* s (n bytes) cut to cap; a cut marks field as truncated. */
static void capped(w_t *w, int field, const char *s, size_t n, size_t cap)
{
    if (s != NULL && n > cap) {
        n = cap;
        w->truncated |= 1u << field;
    }
    str(w, s, n);
}

static void cstr(w_t *w, int field, const char *s)
{
    capped(w, field, s, s ? strnlen(s, CAP_NAME + 1) : 0, CAP_NAME);
}

static void num(w_t *w, uint64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
    raw(w, b, (size_t)n);
}

static void ms(w_t *w, uint64_t us)
{
    char b[32];
    int n = snprintf(b, sizeof(b), "%llu.%03llu", (unsigned long long)(us / 1000),
                     (unsigned long long)(us % 1000));
    raw(w, b, (size_t)n);
}

/* Names are compared percent-decoded (and '+' as space), the way the
 * application reads them: "api%5Fkey" is api_key (gatehouse/pairs.h). */
static int is_secret(const gh_access_log_conf_t *conf, const gh_pair_t *pr)
{
    for (size_t i = 0; i < conf->num_secret_query; i++)
        if (gh_pair_name_decoded_is(pr, conf->secret_query[i], strlen(conf->secret_query[i])))
            return 1;
    return 0;
}

/* The name=value pair in [s, e). */
static gh_pair_t pair_of(const char *s, const char *e)
{
    gh_pair_t pr;
    const char *eq = memchr(s, '=', (size_t)(e - s));
    pr.name = s;
    pr.name_len = (size_t)((eq ? eq : e) - s);
    pr.has_value = eq != NULL;
    pr.value = eq ? eq + 1 : e;
    pr.value_len = (size_t)(e - pr.value);
    pr.raw = s;
    pr.raw_len = (size_t)(e - s);
    return pr;
}

/* One '&'-separated part of a query, masked into tmp at *o. ';' separates
 * parameters too (some frameworks read "x=1;api_key=S" as two), so each
 * ';' piece is checked; from a secret piece on, the rest of the part is
 * masked, since a server that splits only at '&' reads it all as that
 * value. 0 when it does not fit whole. */
static int mask_part(const gh_access_log_conf_t *conf, const char *s, const char *e, char *tmp,
                     size_t cap, size_t *o)
{
    size_t at = *o;
    for (const char *p = s; p < e;) {
        const char *q = memchr(p, ';', (size_t)(e - p));
        gh_pair_t pr = pair_of(p, q ? q : e);
        int secret = pr.has_value && is_secret(conf, &pr);
        size_t keep = secret ? pr.name_len + 1 : pr.raw_len + (q != NULL);
        if (at + keep + 10 > cap)
            return 0;
        memcpy(tmp + at, p, keep);
        at += keep;
        if (secret) {
            memcpy(tmp + at, "[redacted]", 10);
            at += 10;
            break;
        }
        p = q ? q + 1 : e;
    }
    *o = at;
    return 1;
}

/* The query with the values of secret parameters replaced, then capped.
 * Masking comes first, so a cut never lands inside a secret value that
 * would then be written: a part that does not fit whole is left out. */
static void query(w_t *w, const gh_access_log_conf_t *conf, const char *q, size_t n)
{
    if (q == NULL) {
        raw(w, "null", 4);
        return;
    }
    if (conf->num_secret_query == 0) {
        capped(w, GH_LOG_FIELD_QUERY, q, n, CAP_QUERY);
        return;
    }
    char tmp[CAP_QUERY + 1];
    size_t o = 0;
    const char *end = q + n;
    for (const char *p = q; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if (!mask_part(conf, p, e, tmp, sizeof(tmp) - 1, &o)) {
            w->truncated |= 1u << GH_LOG_FIELD_QUERY;
            break;
        }
        if (amp != NULL)
            tmp[o++] = '&';
        p = amp ? amp + 1 : end;
    }
    str(w, tmp, o);
}

static void timestamp(w_t *w, uint64_t unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    char b[40];
    gmtime_r(&t, &tm);
    int n = snprintf(b, sizeof(b), "\"%04d-%02d-%02dT%02d:%02d:%02d.%03uZ\"", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned)(unix_ms % 1000));
    raw(w, b, (size_t)n);
}

static size_t at_most(size_t n, size_t cap)
{
    return n < cap ? n : cap;
}

#define F(bit) (conf->fields & (1u << (bit)))

void gh_access_log_append(gh_access_log_buf_t *b, const gh_access_log_conf_t *conf,
                          const gh_access_log_entry_t *e)
{
    /* Room for this line with every byte escaped; each field counts at
     * most its cap, so this never exceeds ALOG_LINE_MAX and the line
     * always fits once the buffer is flushed. */
    size_t need =
        LINE_FIXED +
        6 * (at_most(e->method_len, CAP_METHOD) + at_most(e->path_len, CAP_PATH) +
             at_most(e->query_len, CAP_QUERY) + at_most(e->user_agent_len, CAP_USER_AGENT));
    const char *more[] = {e->request_id, e->listener, e->route,    e->upstream, e->client,
                          e->principal,  e->consumer, e->trace_id, e->error,    e->filter};
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        if (more[i] != NULL)
            need += 6 * strnlen(more[i], CAP_NAME);
    if (GH_ACCESS_LOG_BUF - b->len < need)
        gh_access_log_flush(b);
    w_t w = {b->buf + b->len, b->buf + GH_ACCESS_LOG_BUF - 1, 1, 0};
    raw(&w, "{", 1);
    if (F(GH_LOG_FIELD_TIME)) {
        key(&w, "time");
        timestamp(&w, e->unix_ms);
    }
    if (F(GH_LOG_FIELD_REQUEST_ID)) {
        key(&w, "request_id");
        cstr(&w, GH_LOG_FIELD_REQUEST_ID, e->request_id);
    }
    if (F(GH_LOG_FIELD_LISTENER)) {
        key(&w, "listener");
        cstr(&w, GH_LOG_FIELD_LISTENER, e->listener);
    }
    if (F(GH_LOG_FIELD_ROUTE)) {
        key(&w, "route");
        cstr(&w, GH_LOG_FIELD_ROUTE, e->route);
    }
    if (F(GH_LOG_FIELD_METHOD)) {
        key(&w, "method");
        capped(&w, GH_LOG_FIELD_METHOD, e->method, e->method_len, CAP_METHOD);
    }
    if (F(GH_LOG_FIELD_PATH)) {
        key(&w, "path");
        capped(&w, GH_LOG_FIELD_PATH, e->path, e->path_len, CAP_PATH);
    }
    if (F(GH_LOG_FIELD_QUERY)) {
        key(&w, "query");
        query(&w, conf, e->query, e->query_len);
    }
    if (F(GH_LOG_FIELD_STATUS)) {
        key(&w, "status");
        num(&w, (uint64_t)e->status);
    }
    if (F(GH_LOG_FIELD_BYTES_IN)) {
        key(&w, "bytes_in");
        num(&w, e->bytes_in);
    }
    if (F(GH_LOG_FIELD_BYTES_OUT)) {
        key(&w, "bytes_out");
        num(&w, e->bytes_out);
    }
    if (F(GH_LOG_FIELD_DURATION)) {
        key(&w, "duration_ms");
        ms(&w, e->duration_us);
    }
    if (F(GH_LOG_FIELD_UPSTREAM)) {
        key(&w, "upstream");
        cstr(&w, GH_LOG_FIELD_UPSTREAM, e->upstream);
    }
    if (F(GH_LOG_FIELD_UPSTREAM_DURATION)) {
        key(&w, "upstream_duration_ms");
        if (e->upstream_duration_us < 0)
            raw(&w, "null", 4);
        else
            ms(&w, (uint64_t)e->upstream_duration_us);
    }
    if (F(GH_LOG_FIELD_CLIENT)) {
        key(&w, "client");
        cstr(&w, GH_LOG_FIELD_CLIENT, e->client);
    }
    if (F(GH_LOG_FIELD_USER_AGENT)) {
        key(&w, "user_agent");
        capped(&w, GH_LOG_FIELD_USER_AGENT, e->user_agent, e->user_agent_len, CAP_USER_AGENT);
    }
    if (F(GH_LOG_FIELD_PRINCIPAL)) {
        key(&w, "principal");
        cstr(&w, GH_LOG_FIELD_PRINCIPAL, e->principal);
    }
    if (F(GH_LOG_FIELD_CONSUMER)) {
        key(&w, "consumer");
        cstr(&w, GH_LOG_FIELD_CONSUMER, e->consumer);
    }
    if (F(GH_LOG_FIELD_TRACE_ID)) {
        key(&w, "trace_id");
        cstr(&w, GH_LOG_FIELD_TRACE_ID, e->trace_id);
    }
    if (F(GH_LOG_FIELD_ERROR)) {
        key(&w, "error");
        cstr(&w, GH_LOG_FIELD_ERROR, e->error);
    }
    if (F(GH_LOG_FIELD_FILTER)) {
        key(&w, "filter");
        cstr(&w, GH_LOG_FIELD_FILTER, e->filter);
    }
    if (w.truncated != 0) {
        key(&w, "truncated");
        raw(&w, "[", 1);
        int first = 1;
        for (int i = 0; i < GH_LOG_FIELD_COUNT; i++) {
            if (!(w.truncated & (1u << i)))
                continue;
            if (!first)
                raw(&w, ",", 1);
            first = 0;
            cstr(&w, i, gh_access_log_field_names[i]);
        }
        raw(&w, "]", 1);
        __atomic_add_fetch(&lines_truncated, 1, __ATOMIC_RELAXED);
    }
    raw(&w, "}\n", 2);
    if (w.p >= w.end) {
        /* Cannot happen with the caps (ALOG_LINE_MAX); if it did, the line is
         * counted lost rather than written in half. */
        __atomic_add_fetch(&lines_lost, 1, __ATOMIC_RELAXED);
        return;
    }
    b->len = (size_t)(w.p - b->buf);
}
