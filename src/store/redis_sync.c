/*
 * The synchronous Redis client (gatehouse/redis.h) for the main thread,
 * the CLI and the admin API: one hiredis blocking connection with a
 * connect timeout, a socket timeout on every read and write, and a
 * deadline for each whole reply, so that a call blocks for at most about
 * connect_timeout_ms + command_timeout_ms (each deadline is checked
 * between reads, so one more read timeout at worst).
 *
 * After a failed connect, calls within the backoff delay fail at once
 * (-ENOTCONN) instead of paying the connect timeout again: the admin API
 * runs on the main loop, which must not stall on every request while
 * Redis is down. A connection that failed mid-command (timeout, reset) is
 * dropped; the next call connects again, since the reply stream of a
 * timed-out connection cannot be trusted to line up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include <gatehouse/log.h>

#include "store/redis_internal.h"

struct gh_redis_sync_s {
    redis_conf_t conf;
    redisContext *ctx;
    uint64_t retry_at_ms; /* monotonic: no connect attempt before */
    unsigned failures;
    int down_logged;
    int started;
    gh_redis_stats_t stats;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct timeval tv_of(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

gh_redis_sync_t *gh_redis_sync_new(const gh_redis_opts_t *opts, char *err, size_t errcap)
{
    gh_redis_sync_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        if (err != NULL && errcap > 0)
            snprintf(err, errcap, "redis: out of memory");
        return NULL;
    }
    if (redis_conf_init(&s->conf, opts, err, errcap) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void drop(gh_redis_sync_t *s)
{
    if (s->ctx != NULL) {
        redisFree(s->ctx);
        s->ctx = NULL;
        REDIS_STAT_ADD(&s->stats, connected, (uint64_t)-1);
    }
}

void gh_redis_sync_free(gh_redis_sync_t *s)
{
    if (s == NULL)
        return;
    drop(s);
    redis_conf_dispose(&s->conf);
    free(s);
}

static void connect_failed(gh_redis_sync_t *s, const char *why)
{
    uint64_t d = s->conf.backoff_min_ms;
    for (unsigned i = 0; i < s->failures && i < 20 && d < s->conf.backoff_max_ms; i++)
        d *= 2;
    if (d > s->conf.backoff_max_ms)
        d = s->conf.backoff_max_ms;
    s->failures++;
    s->retry_at_ms = mono_ms() + d;
    if (!s->down_logged) {
        GH_LOG(GH_LOG_WARN, "redis", "%s: cannot connect (%s)", s->conf.where, why);
        s->down_logged = 1;
    }
}

/* One reply, read by hand rather than with redisGetReply: the socket
 * timeout bounds each read, so a peer trickling a byte at a time would
 * hold the caller (the main loop) for ever; this checks a deadline for the
 * whole reply, and a cap on its size. 0, -ETIMEDOUT, -ECONNRESET or
 * -EPROTO. */
static int get_reply(gh_redis_sync_t *s, uint64_t deadline, void **r)
{
    redisContext *c = s->ctx;
    int done = 0;
    while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return -1;
    }
    for (;;) {
        if (redisGetReplyFromReader(c, r) != REDIS_OK)
            return -1;
        if (*r != NULL)
            return 0;
        if (mono_ms() >= deadline) {
            errno = EAGAIN;
            c->err = REDIS_ERR_IO;
            return -1;
        }
        if (redisBufferRead(c) != REDIS_OK)
            return -1;
        if (c->reader->len > REDIS_READ_MAX) {
            c->err = REDIS_ERR_PROTOCOL;
            snprintf(c->errstr, sizeof(c->errstr), "reply larger than %zu bytes", REDIS_READ_MAX);
            return -1;
        }
    }
}

/* Sends the formatted p and reads n replies within timeout_ms; the last
 * one into *last (when not NULL), the others freed; the first error
 * reply's text into err (when not NULL). 0, -ETIMEDOUT or -ECONNRESET
 * (the connection is then dropped). */
static int roundtrip(gh_redis_sync_t *s, const char *p, size_t len, int n, uint64_t timeout_ms,
                     redisReply **last, char *err, size_t errcap)
{
    if (redisAppendFormattedCommand(s->ctx, p, len) != REDIS_OK) {
        drop(s);
        return -ENOMEM;
    }
    uint64_t deadline = mono_ms() + timeout_ms;
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        errno = 0;
        if (get_reply(s, deadline, &r) != 0) {
            int e = errno;
            int timeout = s->ctx->err == REDIS_ERR_IO && (e == EAGAIN || e == EWOULDBLOCK);
            GH_LOG(GH_LOG_WARN, "redis", "%s: %s", s->conf.where,
                   timeout ? "no reply in time" : s->ctx->errstr);
            drop(s);
            return timeout ? -ETIMEDOUT : -ECONNRESET;
        }
        redisReply *reply = r;
        if (err != NULL && reply->type == REDIS_REPLY_ERROR && err[0] == '\0')
            snprintf(err, errcap, "%.*s", (int)(reply->len < 200 ? reply->len : 200),
                     reply->str != NULL ? reply->str : "error");
        if (i == n - 1 && last != NULL)
            *last = reply;
        else
            freeReplyObject(reply);
    }
    return 0;
}

static int sync_connect(gh_redis_sync_t *s)
{
    if (s->ctx != NULL)
        return 0;
    if (mono_ms() < s->retry_at_ms)
        return -ENOTCONN;
    if (s->started)
        REDIS_STAT_ADD(&s->stats, reconnects, 1);
    s->started = 1;
    struct timeval ctv = tv_of(s->conf.connect_timeout_ms);
    redisContext *ctx = s->conf.unix_path != NULL
                            ? redisConnectUnixWithTimeout(s->conf.unix_path, ctv)
                            : redisConnectWithTimeout(s->conf.host, s->conf.port, ctv);
    if (ctx == NULL || ctx->err != 0) {
        connect_failed(s, ctx != NULL ? ctx->errstr : "out of memory");
        if (ctx != NULL)
            redisFree(ctx);
        return -ENOTCONN;
    }
    /* The handshake runs under the connect timeout, like the async one. */
    if (redisSetTimeout(ctx, ctv) != REDIS_OK ||
        (s->conf.unix_path == NULL && redisEnableKeepAlive(ctx) != REDIS_OK)) {
        connect_failed(s, ctx->errstr);
        redisFree(ctx);
        return -ENOTCONN;
    }
    s->ctx = ctx;
    REDIS_STAT_ADD(&s->stats, connected, 1);
    redis_buf_t b;
    size_t ends[REDIS_HANDSHAKE_MAX];
    int n = 0;
    char refused[256] = "";
    redis_buf_init(&b);
    int rc = redis_format_handshake(&b, &s->conf, ends, &n);
    redisReply *last = NULL;
    if (rc == 0)
        rc = roundtrip(s, b.p, b.len, n, s->conf.connect_timeout_ms, &last, refused,
                       sizeof(refused));
    redis_buf_dispose(&b);
    gh_redis_reply_free(last);
    if (rc == 0 && refused[0] != '\0') {
        GH_LOG(GH_LOG_ERROR, "redis", "%s: handshake refused: %s", s->conf.where, refused);
        s->down_logged = 1;
        drop(s);
        rc = -ENOTCONN;
    }
    if (rc == 0) {
        struct timeval tv = tv_of(s->conf.command_timeout_ms);
        if (redisSetTimeout(s->ctx, tv) != REDIS_OK) {
            drop(s);
            rc = -ENOTCONN;
        }
    }
    if (rc < 0) {
        if (s->ctx != NULL)
            drop(s);
        connect_failed(s, "handshake failed");
        return -ENOTCONN;
    }
    s->failures = 0;
    if (s->down_logged) {
        GH_LOG(GH_LOG_INFO, "redis", "%s: connected", s->conf.where);
        s->down_logged = 0;
    }
    return 0;
}

static int count_end(gh_redis_sync_t *s, int rc, redisReply *reply)
{
    if (rc == -ETIMEDOUT)
        REDIS_STAT_ADD(&s->stats, timeouts, 1);
    else if (rc < 0 || (reply != NULL && reply->type == REDIS_REPLY_ERROR))
        REDIS_STAT_ADD(&s->stats, errors, 1);
    return rc;
}

int gh_redis_sync_command(gh_redis_sync_t *s, int argc, const char *const *argv, const size_t *lens,
                          uint32_t keys, struct redisReply **reply)
{
    if (s == NULL || reply == NULL)
        return -EINVAL;
    *reply = NULL;
    redis_buf_t b;
    redis_buf_init(&b);
    int rc = redis_format(&b, &s->conf, argc, argv, lens, keys);
    if (rc == 0)
        rc = sync_connect(s);
    if (rc < 0) {
        redis_buf_dispose(&b);
        REDIS_STAT_ADD(&s->stats, refused, 1);
        return rc;
    }
    REDIS_STAT_ADD(&s->stats, commands, 1);
    rc = roundtrip(s, b.p, b.len, 1, s->conf.command_timeout_ms, reply, NULL, 0);
    redis_buf_dispose(&b);
    return count_end(s, rc, *reply);
}

int gh_redis_sync_eval(gh_redis_sync_t *s, const gh_redis_script_t *script, int nkeys, int argc,
                       const char *const *argv, const size_t *lens, struct redisReply **reply)
{
    if (s == NULL || script == NULL || reply == NULL)
        return -EINVAL;
    *reply = NULL;
    redis_buf_t tail, b;
    redis_buf_init(&tail);
    redis_buf_init(&b);
    int rc = redis_format_script_tail(&tail, &s->conf, nkeys, argc, argv, lens);
    if (rc == 0)
        rc = redis_format_script(&b, script, 0, tail.p, tail.len, argc + 1);
    if (rc == 0)
        rc = sync_connect(s);
    if (rc < 0) {
        REDIS_STAT_ADD(&s->stats, refused, 1);
        goto out;
    }
    REDIS_STAT_ADD(&s->stats, commands, 1);
    rc = roundtrip(s, b.p, b.len, 1, s->conf.command_timeout_ms, reply, NULL, 0);
    if (rc == 0 && redis_reply_is_noscript(*reply)) {
        /* Nothing ran: send it as EVAL (see gh_redis_script_t). */
        gh_redis_reply_free(*reply);
        *reply = NULL;
        redis_buf_dispose(&b);
        rc = redis_format_script(&b, script, 1, tail.p, tail.len, argc + 1);
        if (rc == 0)
            rc = roundtrip(s, b.p, b.len, 1, s->conf.command_timeout_ms, reply, NULL, 0);
    }
    rc = count_end(s, rc, *reply);
out:
    redis_buf_dispose(&tail);
    redis_buf_dispose(&b);
    return rc;
}

int gh_redis_sync_limits_take(gh_redis_sync_t *s, const gh_redis_limit_key_t *keys, size_t n,
                              uint64_t cost, uint64_t now_ms, int *allowed,
                              gh_redis_limit_result_t *res)
{
    redis_limit_args_t a;
    if (s == NULL || allowed == NULL || res == NULL ||
        redis_limit_args(&a, keys, n, cost, now_ms) < 0)
        return -EINVAL;
    redisReply *reply = NULL;
    int rc = gh_redis_sync_eval(s, redis_limit_script(), (int)a.n, a.argc, a.argv, a.lens, &reply);
    if (rc == 0) {
        rc = redis_limit_parse(reply, allowed, res, n);
        if (rc < 0) {
            int err = reply->type == REDIS_REPLY_ERROR && reply->str != NULL;
            GH_LOG(GH_LOG_WARN, "redis", "%s: limit script failed: %.*s", s->conf.where,
                   err ? (int)(reply->len < 200 ? reply->len : 200) : 16,
                   err ? reply->str : "unexpected reply");
        }
    }
    gh_redis_reply_free(reply);
    return rc;
}

int gh_redis_sync_limit_take(gh_redis_sync_t *s, const char *key, size_t key_len,
                             const gh_redis_limit_t *lim, uint64_t cost, uint64_t now_ms,
                             gh_redis_limit_result_t *res)
{
    int allowed;
    if (lim == NULL)
        return -EINVAL;
    gh_redis_limit_key_t k = {.key = key, .key_len = key_len, .lim = *lim};
    return gh_redis_sync_limits_take(s, &k, 1, cost, now_ms, &allowed, res);
}

void gh_redis_sync_stats(const gh_redis_sync_t *s, gh_redis_stats_t *out)
{
    redis_stats_read(&s->stats, out);
}
