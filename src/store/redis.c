/*
 * The async Redis client of one loop (gatehouse/redis.h): a pool of
 * hiredis async connections driven by uv_poll handles, a FIFO of the
 * commands in flight whose head's deadline one timer watches, and
 * reconnection with backoff.
 *
 * Ownership. The client owns its slots (one per pooled connection), each
 * with its poll handle, its timer (backoff, connect timeout) and, while
 * connected or connecting, a hiredis context. A command (gh_redis_cmd_t)
 * is allocated when accepted and is hiredis's privdata until hiredis hands
 * it back (with the reply, or NULL when the context goes away): only then
 * is it freed, so a late reply after a timeout or a cancel finds it and is
 * dropped. The user's callback is cleared before it runs, which makes it
 * run at most once whichever of reply, timeout, lost connection or
 * shutdown comes first. The client is freed when its last handle has
 * closed.
 *
 * The libuv glue is ours, not hiredis's adapters/libuv.h: libuv reports a
 * socket error (POLLERR: a refused connect, a reset) as a poll status and
 * stops the handle, and that adapter ignores the status, so the connection
 * would hang until a timeout. Ours hands the event to hiredis, whose read
 * or connect check then sees the error. Its poll handle also lives in the
 * slot, so a teardown after the loop ended frees no memory the loop holds.
 *
 * hiredis 0.14 rules kept here: a context is never freed from its connect
 * callback (hiredis touches it after), only from a command callback
 * (deferred by hiredis) or from outside hiredis; the cleanup hook is the
 * one place that learns a context is going away, whoever frees it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <gatehouse/log.h>

#include "store/redis_internal.h"

typedef enum {
    SLOT_IDLE = 0,   /* no context: waiting for the backoff timer */
    SLOT_CONNECTING, /* TCP connect in progress */
    SLOT_HANDSHAKE,  /* AUTH / SELECT / PING sent */
    SLOT_READY,
    SLOT_GOING, /* its context is being freed: take no command */
} slot_state_t;

typedef struct slot_s {
    gh_redis_t *client;
    slot_state_t state;
    redisAsyncContext *ac;
    uv_poll_t poll;
    int poll_events;
    int poll_open; /* initialised and its close callback not yet run */
    uv_timer_t timer;
    unsigned failures;  /* in a row, for the backoff */
    unsigned inflight;  /* user commands on this connection */
    int handshake_left; /* replies still expected */
    int connect_due;    /* the backoff ended while the poll handle was closing */
    int started;        /* at least one attempt made */
    uint64_t ready_at;  /* when it became ready (uv_now) */
} slot_t;

typedef void (*done_fn)(gh_redis_cmd_t *cmd, int status, const redisReply *reply);

struct gh_redis_cmd_s {
    gh_redis_t *client;
    slot_t *slot;
    gh_redis_cmd_t *prev, *next; /* the FIFO while queued */
    int queued;
    uint64_t deadline;
    done_fn done; /* NULL once finished or cancelled */
    union {
        gh_redis_cb raw;
        gh_redis_limit_cb limit;
        gh_redis_limits_cb limits;
    } cb;
    void *arg;
    size_t nlimits; /* a limit decision: how many */
    /* A script call: its arguments after the script, for the EVAL resend. */
    const gh_redis_script_t *script;
    char *tail;
    size_t tail_len;
    int tail_argc;
    int resent;
};

struct gh_redis_s {
    uv_loop_t *loop;
    redis_conf_t conf;
    slot_t *slots;
    unsigned nslots;
    unsigned next_slot;
    uv_timer_t timer; /* the FIFO head's deadline */
    gh_redis_cmd_t *head, *tail;
    unsigned npending;
    unsigned handles; /* open uv handles (and holds while closing) */
    unsigned ncmds;   /* allocated commands */
    unsigned nready;
    int closing;
    int down_logged;
    int refused_logged;
    uint64_t lost_logged_at;
    uint64_t rnd;
    gh_redis_stats_t stats;
};

static void start_connect(slot_t *s);
static void schedule_connect(slot_t *s);
static void slot_drop(slot_t *s);

/* ---- lifetime ---- */

static void client_free(gh_redis_t *c)
{
    redis_conf_dispose(&c->conf);
    free(c->slots);
    free(c);
}

static void maybe_free(gh_redis_t *c)
{
    if (c->closing && c->handles == 0 && c->ncmds == 0)
        client_free(c);
}

static void handle_closed(uv_handle_t *h)
{
    gh_redis_t *c = h->data;
    c->handles--;
    maybe_free(c);
}

static void slot_timer_closed(uv_handle_t *h)
{
    slot_t *s = h->data;
    gh_redis_t *c = s->client;
    c->handles--;
    maybe_free(c);
}

static void not_ready(slot_t *s)
{
    if (s->state == SLOT_READY) {
        s->client->nready--;
        REDIS_STAT_ADD(&s->client->stats, connected, (uint64_t)-1);
    }
}

/* ---- commands and the FIFO ---- */

static void fifo_remove(gh_redis_t *c, gh_redis_cmd_t *cmd)
{
    if (!cmd->queued)
        return;
    if (cmd->prev != NULL)
        cmd->prev->next = cmd->next;
    else
        c->head = cmd->next;
    if (cmd->next != NULL)
        cmd->next->prev = cmd->prev;
    else
        c->tail = cmd->prev;
    cmd->prev = cmd->next = NULL;
    cmd->queued = 0;
    c->npending--;
}

static void fifo_append(gh_redis_t *c, gh_redis_cmd_t *cmd)
{
    cmd->prev = c->tail;
    cmd->next = NULL;
    if (c->tail != NULL)
        c->tail->next = cmd;
    else
        c->head = cmd;
    c->tail = cmd;
    cmd->queued = 1;
    c->npending++;
}

static gh_redis_cmd_t *cmd_new(gh_redis_t *c)
{
    gh_redis_cmd_t *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL)
        return NULL;
    cmd->client = c;
    c->ncmds++;
    return cmd;
}

static void cmd_free(gh_redis_cmd_t *cmd)
{
    gh_redis_t *c = cmd->client;
    fifo_remove(c, cmd); /* a cancelled command is still queued */
    free(cmd->tail);
    free(cmd);
    c->ncmds--;
    maybe_free(c);
}

/* Ends cmd for its caller: out of the FIFO, counted, its callback run
 * (once: cleared first). The memory stays until hiredis hands it back. */
static void finish(gh_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    gh_redis_t *c = cmd->client;
    fifo_remove(c, cmd);
    done_fn done = cmd->done;
    cmd->done = NULL;
    if (status == -ETIMEDOUT)
        REDIS_STAT_ADD(&c->stats, timeouts, 1);
    else if ((status != 0 && status != -ESHUTDOWN) ||
             (reply != NULL && reply->type == REDIS_REPLY_ERROR))
        REDIS_STAT_ADD(&c->stats, errors, 1);
    if (done != NULL)
        done(cmd, status, reply);
}

static void on_deadline(uv_timer_t *t);

static void arm_timer(gh_redis_t *c)
{
    if (c->head == NULL || c->closing || uv_is_active((uv_handle_t *)&c->timer))
        return;
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->timer, on_deadline, c->head->deadline > now ? c->head->deadline - now : 0,
                   0);
}

/* The head's deadline: it and every command as old fail with -ETIMEDOUT,
 * and the connections they wait on are dropped. Redis answers a
 * connection's commands in order, so whatever is behind a late command
 * there is late too; a new connection is the way to get answers again.
 * The dropped connection's other commands end with -ECONNRESET (or
 * -ETIMEDOUT when their own deadline has passed too). */
static void on_deadline(uv_timer_t *t)
{
    gh_redis_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    while (!c->closing && c->head != NULL && c->head->deadline <= now) {
        gh_redis_cmd_t *cmd = c->head;
        slot_t *s = cmd->slot;
        if (s->ac != NULL && s->state != SLOT_GOING) {
            /* Dropped before any callback runs, so that none sends on it;
             * its commands come back now, this one with -ETIMEDOUT. */
            GH_LOG(GH_LOG_WARN, "redis", "%s: no reply within %llu ms: reconnecting", c->conf.where,
                   (unsigned long long)c->conf.command_timeout_ms);
            slot_drop(s);
        } else {
            finish(cmd, -ETIMEDOUT, NULL);
        }
    }
    arm_timer(c);
}

/* hiredis hands a command back: its reply, or NULL when the context goes
 * away (then every command still on it comes back, in order). */
static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    gh_redis_cmd_t *cmd = priv;
    gh_redis_t *c = cmd->client;
    slot_t *s = cmd->slot;
    redisReply *reply = r;
    s->inflight--;
    if (reply == NULL) {
        /* Its context is going: send nothing more on it (hiredis would
         * refuse it). */
        not_ready(s);
        s->state = SLOT_GOING;
        int status = c->closing                         ? -ESHUTDOWN
                     : cmd->deadline <= uv_now(c->loop) ? -ETIMEDOUT
                                                        : -ECONNRESET;
        if (cmd->done != NULL)
            finish(cmd, status, NULL);
        else if (cmd->queued && status == -ETIMEDOUT)
            REDIS_STAT_ADD(&c->stats, timeouts, 1); /* cancelled, and then late */
        cmd_free(cmd);
        return;
    }
    if (cmd->done != NULL && cmd->script != NULL && !cmd->resent &&
        redis_reply_is_noscript(reply) && s->state == SLOT_READY) {
        /* The server lost the script (restart, SCRIPT FLUSH, failover):
         * nothing ran. Send the same call as EVAL, which runs and loads
         * it, on the same connection and under the same deadline. */
        redis_buf_t b;
        redis_buf_init(&b);
        cmd->resent = 1;
        int rc = redis_format_script(&b, cmd->script, 1, cmd->tail, cmd->tail_len, cmd->tail_argc);
        if (rc == 0 && redisAsyncFormattedCommand(ac, on_reply, cmd, b.p, b.len) == REDIS_OK) {
            s->inflight++;
            redis_buf_dispose(&b);
            return;
        }
        redis_buf_dispose(&b);
        finish(cmd, rc == -ENOMEM ? -ENOMEM : -ECONNRESET, NULL);
        cmd_free(cmd);
        return;
    }
    if (cmd->done != NULL)
        finish(cmd, 0, reply);
    cmd_free(cmd);
}

/* ---- the event glue (hiredis's ev hooks; privdata: the slot) ---- */

static void on_poll(uv_poll_t *h, int status, int events);

static void poll_update(slot_t *s)
{
    if (!s->poll_open || uv_is_closing((uv_handle_t *)&s->poll))
        return;
    if (s->poll_events != 0)
        uv_poll_start(&s->poll, s->poll_events, on_poll);
    else
        uv_poll_stop(&s->poll);
}

static void ev_add_read(void *p)
{
    slot_t *s = p;
    s->poll_events |= UV_READABLE;
    poll_update(s);
}

static void ev_del_read(void *p)
{
    slot_t *s = p;
    s->poll_events &= ~UV_READABLE;
    poll_update(s);
}

static void ev_add_write(void *p)
{
    slot_t *s = p;
    s->poll_events |= UV_WRITABLE;
    poll_update(s);
}

static void ev_del_write(void *p)
{
    slot_t *s = p;
    s->poll_events &= ~UV_WRITABLE;
    poll_update(s);
}

static void poll_closed(uv_handle_t *h)
{
    slot_t *s = h->data;
    gh_redis_t *c = s->client;
    s->poll_open = 0;
    c->handles--;
    if (s->connect_due && !c->closing) {
        s->connect_due = 0;
        start_connect(s);
    }
    maybe_free(c);
}

/* hiredis frees the context: after its commands came back, before the
 * disconnect callback and the close of its socket. */
static void ev_cleanup(void *p)
{
    slot_t *s = p;
    gh_redis_t *c = s->client;
    redisAsyncContext *ac = s->ac;
    int was_up = s->state == SLOT_READY || s->state == SLOT_GOING;
    /* The backoff starts again only for a connection that stayed up a
     * while: a server that accepts and then drops every connection is
     * retried ever more slowly, not in a tight loop. */
    if (was_up && s->handshake_left == 0 && uv_now(c->loop) - s->ready_at >= c->conf.backoff_max_ms)
        s->failures = 0;
    not_ready(s);
    /* No error on the context: we dropped it ourselves, and said why. */
    if (ac != NULL && !c->closing && ac->err != 0) {
        const char *why = ac->errstr != NULL ? ac->errstr : "closed";
        if (was_up && s->handshake_left == 0) {
            /* At most one line per 10 s for a server that keeps dropping
             * connections (then at debug level). */
            uint64_t now = uv_now(c->loop);
            int loud = c->lost_logged_at == 0 || now - c->lost_logged_at >= 10000;
            GH_LOG(!loud            ? GH_LOG_DEBUG
                   : c->nready == 0 ? GH_LOG_WARN
                                    : GH_LOG_INFO,
                   "redis", "%s: connection lost (%s)%s", c->conf.where, why,
                   c->nready == 0 ? ": no connection left" : "");
            if (loud)
                c->lost_logged_at = now;
            if (loud && c->nready == 0)
                c->down_logged = 1;
        } else if (!c->down_logged) {
            GH_LOG(GH_LOG_WARN, "redis", "%s: cannot connect (%s)", c->conf.where, why);
            c->down_logged = 1;
        }
    }
    s->ac = NULL;
    s->state = SLOT_IDLE;
    s->poll_events = 0;
    if (s->poll_open && !uv_is_closing((uv_handle_t *)&s->poll))
        uv_close((uv_handle_t *)&s->poll, poll_closed);
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_timer_stop(&s->timer);
    if (!c->closing)
        schedule_connect(s);
}

/* Drops the connection for an error found outside hiredis's own read
 * path, keeping the reason for the log. */
static void slot_fail(slot_t *s, int err, const char *why)
{
    redisAsyncContext *ac = s->ac;
    if (ac == NULL || s->state == SLOT_GOING)
        return;
    if (why != NULL) {
        ac->c.err = err;
        snprintf(ac->c.errstr, sizeof(ac->c.errstr), "%s", why);
    }
    ac->err = ac->c.err != 0 ? ac->c.err : REDIS_ERR_OTHER;
    ac->errstr = ac->c.errstr;
    slot_drop(s);
}

/* Reads what the socket has and hands each reply to its command, in
 * order. This is hiredis's redisAsyncHandleRead without its assert: in
 * hiredis 0.14 a reply that no command waits for (a misbehaving or
 * hostile peer; gatehouse never subscribes or monitors) aborts the
 * process, in Debian's build too. Here it is a protocol error: the
 * connection is dropped and its commands end with -ECONNRESET. */
static void read_replies(slot_t *s)
{
    redisAsyncContext *ac = s->ac;
    redisContext *c = &ac->c;
    if (redisBufferRead(c) != REDIS_OK) {
        slot_fail(s, 0, NULL);
        return;
    }
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
            slot_fail(s, 0, NULL);
            return;
        }
        if (reply == NULL)
            break;
        redisCallback *cb = ac->replies.head;
        if (cb == NULL) {
            c->reader->fn->freeObject(reply);
            slot_fail(s, REDIS_ERR_PROTOCOL, "a reply no command waits for");
            return;
        }
        ac->replies.head = cb->next;
        if (ac->replies.tail == cb)
            ac->replies.tail = NULL;
        redisCallbackFn *fn = cb->fn;
        void *priv = cb->privdata;
        free(cb); /* hiredis 0.14 allocates it with malloc */
        if (fn != NULL) {
            /* A free asked for during the callback is deferred to here. */
            c->flags |= REDIS_IN_CALLBACK;
            fn(ac, reply, priv);
            c->flags &= ~REDIS_IN_CALLBACK;
        }
        c->reader->fn->freeObject(reply);
        if (c->flags & REDIS_FREEING) {
            redisAsyncFree(ac);
            return;
        }
    }
    if (c->reader->len > REDIS_READ_MAX) {
        GH_LOG(GH_LOG_WARN, "redis", "%s: reply larger than %zu bytes: reconnecting",
               s->client->conf.where, REDIS_READ_MAX);
        slot_drop(s);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    slot_t *s = h->data;
    redisAsyncContext *ac = s->ac;
    if (ac == NULL)
        return;
    if (status < 0) {
        /* libuv stopped the handle on a socket error (POLLERR); start it
         * again and let hiredis meet the error: the connect check while
         * connecting, a read once connected. */
        poll_update(s);
        events = UV_READABLE | UV_WRITABLE;
    }
    if (!(ac->c.flags & REDIS_CONNECTED)) {
        /* Connecting: hiredis checks the socket's error and calls
         * on_connect, or frees the context. */
        redisAsyncHandleWrite(ac);
        return;
    }
    if (events & UV_READABLE) {
        read_replies(s);
        if (s->ac != ac || s->state == SLOT_GOING)
            return;
    }
    if (events & UV_WRITABLE)
        redisAsyncHandleWrite(ac);
}

/* ---- connections ---- */

static uint64_t next_random(gh_redis_t *c)
{
    c->rnd ^= c->rnd << 13;
    c->rnd ^= c->rnd >> 7;
    c->rnd ^= c->rnd << 17;
    return c->rnd;
}

/* Frees a slot's context from outside hiredis's callbacks (or deferred by
 * hiredis when inside one of that context's command callbacks): its
 * commands come back with NULL, then the cleanup hook closes the poll
 * handle and schedules the reconnect. */
static void slot_drop(slot_t *s)
{
    redisAsyncContext *ac = s->ac;
    if (ac == NULL || s->state == SLOT_GOING)
        return;
    not_ready(s);
    s->state = SLOT_GOING;
    redisAsyncFree(ac);
}

static void on_slot_timer(uv_timer_t *t)
{
    slot_t *s = t->data;
    gh_redis_t *c = s->client;
    if (c->closing)
        return;
    if (s->ac != NULL) {
        /* The connect or the handshake took too long. */
        if (!c->down_logged) {
            GH_LOG(GH_LOG_WARN, "redis", "%s: no connection within %llu ms", c->conf.where,
                   (unsigned long long)c->conf.connect_timeout_ms);
            c->down_logged = 1;
        }
        slot_drop(s);
        return;
    }
    if (s->poll_open)
        s->connect_due = 1; /* start once the old poll handle is closed */
    else
        start_connect(s);
}

static void schedule_connect(slot_t *s)
{
    gh_redis_t *c = s->client;
    uint64_t d = c->conf.backoff_min_ms;
    unsigned f = s->failures < 20 ? s->failures : 20;
    for (unsigned i = 0; i < f && d < c->conf.backoff_max_ms; i++)
        d *= 2;
    if (d > c->conf.backoff_max_ms)
        d = c->conf.backoff_max_ms;
    /* Jitter (half to all of d), so that a fleet that lost its Redis does
     * not come back in step. */
    d = d / 2 + next_random(c) % (d - d / 2 + 1);
    s->failures++;
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_timer_start(&s->timer, on_slot_timer, d, 0);
}

static void on_handshake(redisAsyncContext *ac, void *r, void *priv)
{
    slot_t *s = ac->data;
    redisReply *reply = r;
    gh_redis_t *c = s->client;
    (void)priv;
    if (reply == NULL || s->state != SLOT_HANDSHAKE)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* Wrong password, unknown db: an error for the operator, once
         * until a connection succeeds (every slot retries on its backoff). */
        if (!c->refused_logged)
            GH_LOG(GH_LOG_ERROR, "redis", "%s: handshake refused: %.*s", c->conf.where,
                   (int)(reply->len < 200 ? reply->len : 200), reply->str);
        c->refused_logged = 1;
        c->down_logged = 1;
        slot_drop(s); /* deferred by hiredis until this callback returns */
        return;
    }
    if (--s->handshake_left > 0)
        return;
    uv_timer_stop(&s->timer);
    s->state = SLOT_READY;
    s->ready_at = uv_now(c->loop);
    c->refused_logged = 0;
    c->nready++;
    REDIS_STAT_ADD(&c->stats, connected, 1);
    if (c->down_logged) {
        GH_LOG(GH_LOG_INFO, "redis", "%s: connected", c->conf.where);
        c->down_logged = 0;
    }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    slot_t *s = cac->data;
    redisAsyncContext *ac = s->ac;
    if (status != REDIS_OK || ac == NULL)
        return; /* hiredis frees the context next: the cleanup hook reschedules */
    redis_buf_t b;
    size_t ends[REDIS_HANDSHAKE_MAX];
    int n = 0;
    redis_buf_init(&b);
    /* On failure (out of memory) the connect timeout drops the slot. */
    s->state = SLOT_HANDSHAKE;
    s->handshake_left = INT_MAX;
    if (redis_format_handshake(&b, &s->client->conf, ends, &n) == 0) {
        /* One callback per command: hiredis expects one reply each. */
        size_t at = 0;
        int sent = 0;
        for (int i = 0; i < n; i++) {
            if (redisAsyncFormattedCommand(ac, on_handshake, NULL, b.p + at, ends[i] - at) !=
                REDIS_OK)
                break;
            sent++;
            at = ends[i];
        }
        if (sent == n)
            s->handshake_left = n;
        /* Finds a peer that vanished without a FIN while idle. Not on a
         * Unix socket: the TCP options would fail and leave an error on
         * the context that stops every later write. */
        if (s->client->conf.unix_path == NULL)
            redisEnableKeepAlive(&ac->c);
    }
    redis_buf_dispose(&b);
}

static void start_connect(slot_t *s)
{
    gh_redis_t *c = s->client;
    if (s->started)
        REDIS_STAT_ADD(&c->stats, reconnects, 1);
    s->started = 1;
    redisAsyncContext *ac = c->conf.unix_path != NULL
                                ? redisAsyncConnectUnix(c->conf.unix_path)
                                : redisAsyncConnect(c->conf.host, c->conf.port);
    if (ac == NULL || ac->err != 0) {
        if (ac != NULL && !c->down_logged) {
            GH_LOG(GH_LOG_WARN, "redis", "%s: cannot connect (%s)", c->conf.where, ac->errstr);
            c->down_logged = 1;
        }
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_connect(s);
        return;
    }
    if (uv_poll_init(c->loop, &s->poll, ac->c.fd) != 0) {
        redisAsyncFree(ac);
        schedule_connect(s);
        return;
    }
    s->poll.data = s;
    s->poll_open = 1;
    s->poll_events = 0;
    c->handles++;
    ac->data = s;
    ac->ev.data = s;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    s->ac = ac;
    s->state = SLOT_CONNECTING;
    s->inflight = 0;
    s->handshake_left = 0;
    redisAsyncSetConnectCallback(ac, on_connect); /* waits for writable */
    uv_timer_start(&s->timer, on_slot_timer, c->conf.connect_timeout_ms, 0);
}

/* ---- the client ---- */

gh_redis_t *gh_redis_new(uv_loop_t *loop, const gh_redis_opts_t *opts, char *err, size_t errcap)
{
    gh_redis_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        if (err != NULL && errcap > 0)
            snprintf(err, errcap, "redis: out of memory");
        return NULL;
    }
    if (redis_conf_init(&c->conf, opts, err, errcap) < 0) {
        free(c);
        return NULL;
    }
    c->slots = calloc(c->conf.pool_size, sizeof(*c->slots));
    if (c->slots == NULL) {
        redis_conf_dispose(&c->conf);
        free(c);
        if (err != NULL && errcap > 0)
            snprintf(err, errcap, "redis: out of memory");
        return NULL;
    }
    c->loop = loop;
    c->nslots = c->conf.pool_size;
    c->rnd = (uint64_t)(uintptr_t)c ^ uv_hrtime() ^ UINT64_C(0x9e3779b97f4a7c15);
    if (c->rnd == 0)
        c->rnd = 1;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles++;
    for (unsigned i = 0; i < c->nslots; i++) {
        slot_t *s = &c->slots[i];
        s->client = c;
        uv_timer_init(loop, &s->timer);
        s->timer.data = s;
        c->handles++;
    }
    for (unsigned i = 0; i < c->nslots; i++)
        start_connect(&c->slots[i]);
    return c;
}

/* The loop's owner closed our handles already (uv_walk) and ran the loop
 * to its end: libuv references nothing of ours any more, so free
 * hiredis's contexts without their event hooks, and everything at once. */
static void teardown_now(gh_redis_t *c)
{
    for (unsigned i = 0; i < c->nslots; i++) {
        slot_t *s = &c->slots[i];
        redisAsyncContext *ac = s->ac;
        if (ac == NULL)
            continue;
        ac->ev.addRead = ac->ev.delRead = ac->ev.addWrite = ac->ev.delWrite = NULL;
        ac->ev.cleanup = NULL;
        s->ac = NULL;
        s->state = SLOT_GOING;
        redisAsyncFree(ac); /* its commands come back now and are freed */
    }
    client_free(c);
}

void gh_redis_close(gh_redis_t *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    /* Every pending command learns now, exactly once; a callback that
     * sends again is refused (closing). */
    while (c->head != NULL)
        finish(c->head, -ESHUTDOWN, NULL);
    if (uv_is_closing((uv_handle_t *)&c->timer)) {
        teardown_now(c);
        return;
    }
    /* Held while this runs: a free below may release the last command. */
    c->handles++;
    for (unsigned i = 0; i < c->nslots; i++) {
        slot_t *s = &c->slots[i];
        if (s->ac != NULL && s->state != SLOT_GOING) {
            not_ready(s);
            s->state = SLOT_GOING;
            redisAsyncFree(s->ac); /* deferred when called from its callback */
        }
        if (!uv_is_closing((uv_handle_t *)&s->timer))
            uv_close((uv_handle_t *)&s->timer, slot_timer_closed);
    }
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    c->handles--;
    maybe_free(c);
}

/* The ready connection with the fewest commands in flight, starting
 * after the last one picked so that ties rotate. */
static slot_t *pick(gh_redis_t *c)
{
    slot_t *best = NULL;
    unsigned at = 0;
    for (unsigned i = 0; i < c->nslots; i++) {
        unsigned k = (c->next_slot + i) % c->nslots;
        slot_t *s = &c->slots[k];
        if (s->state == SLOT_READY && (best == NULL || s->inflight < best->inflight)) {
            best = s;
            at = k;
        }
    }
    if (best != NULL)
        c->next_slot = (at + 1) % c->nslots;
    return best;
}

static int admit(gh_redis_t *c, slot_t **slot)
{
    int rc = 0;
    if (c->closing)
        rc = -ESHUTDOWN;
    else if (c->npending >= c->conf.max_pending)
        rc = -EAGAIN;
    else if ((*slot = pick(c)) == NULL)
        rc = -ENOTCONN;
    if (rc != 0)
        REDIS_STAT_ADD(&c->stats, refused, 1);
    return rc;
}

static void refuse_cmd(gh_redis_t *c, gh_redis_cmd_t *cmd)
{
    REDIS_STAT_ADD(&c->stats, refused, 1);
    if (cmd != NULL) {
        free(cmd->tail);
        free(cmd);
        c->ncmds--;
    }
}

/* Sends the request b on slot s for cmd, whose callback is set. Frees cmd
 * when it cannot. */
static int send_cmd(gh_redis_t *c, slot_t *s, gh_redis_cmd_t *cmd, const redis_buf_t *b,
                    gh_redis_cmd_t **out)
{
    if (redisAsyncFormattedCommand(s->ac, on_reply, cmd, b->p, b->len) != REDIS_OK) {
        refuse_cmd(c, cmd);
        return -ENOTCONN;
    }
    cmd->slot = s;
    s->inflight++;
    cmd->deadline = uv_now(c->loop) + c->conf.command_timeout_ms;
    fifo_append(c, cmd);
    arm_timer(c);
    REDIS_STAT_ADD(&c->stats, commands, 1);
    if (out != NULL)
        *out = cmd;
    return 0;
}

static void raw_done(gh_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    cmd->cb.raw(status, reply, cmd->arg);
}

int gh_redis_command(gh_redis_t *c, int argc, const char *const *argv, const size_t *lens,
                     uint32_t keys, gh_redis_cb cb, void *arg, gh_redis_cmd_t **out)
{
    slot_t *s = NULL;
    if (c == NULL || cb == NULL)
        return -EINVAL;
    int rc = admit(c, &s);
    if (rc < 0)
        return rc;
    redis_buf_t b;
    redis_buf_init(&b);
    gh_redis_cmd_t *cmd = NULL;
    rc = redis_format(&b, &c->conf, argc, argv, lens, keys);
    if (rc == 0 && (cmd = cmd_new(c)) == NULL)
        rc = -ENOMEM;
    if (rc < 0) {
        redis_buf_dispose(&b);
        refuse_cmd(c, cmd);
        return rc;
    }
    cmd->done = raw_done;
    cmd->cb.raw = cb;
    cmd->arg = arg;
    rc = send_cmd(c, s, cmd, &b, out);
    redis_buf_dispose(&b);
    return rc;
}

/* A script call; the caller has set cmd's callback through *fill. */
static int eval_start(gh_redis_t *c, const gh_redis_script_t *script, int nkeys, int argc,
                      const char *const *argv, const size_t *lens, gh_redis_cmd_t *proto,
                      gh_redis_cmd_t **out)
{
    slot_t *s = NULL;
    int rc = admit(c, &s);
    if (rc < 0)
        return rc;
    redis_buf_t tail, b;
    redis_buf_init(&tail);
    redis_buf_init(&b);
    gh_redis_cmd_t *cmd = NULL;
    rc = redis_format_script_tail(&tail, &c->conf, nkeys, argc, argv, lens);
    if (rc == 0 && (cmd = cmd_new(c)) == NULL)
        rc = -ENOMEM;
    if (rc == 0 && (cmd->tail = malloc(tail.len + 1)) == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        memcpy(cmd->tail, tail.p, tail.len + 1);
        cmd->tail_len = tail.len;
        cmd->tail_argc = argc + 1;
        cmd->script = script;
        rc = redis_format_script(&b, script, 0, cmd->tail, cmd->tail_len, cmd->tail_argc);
    }
    if (rc == 0) {
        cmd->done = proto->done;
        cmd->cb = proto->cb;
        cmd->arg = proto->arg;
        cmd->nlimits = proto->nlimits;
        rc = send_cmd(c, s, cmd, &b, out);
    } else {
        refuse_cmd(c, cmd);
    }
    redis_buf_dispose(&tail);
    redis_buf_dispose(&b);
    return rc;
}

int gh_redis_eval(gh_redis_t *c, const gh_redis_script_t *script, int nkeys, int argc,
                  const char *const *argv, const size_t *lens, gh_redis_cb cb, void *arg,
                  gh_redis_cmd_t **out)
{
    if (c == NULL || cb == NULL || script == NULL)
        return -EINVAL;
    gh_redis_cmd_t proto = {.done = raw_done, .cb.raw = cb, .arg = arg};
    return eval_start(c, script, nkeys, argc, argv, lens, &proto, out);
}

/* The decision in reply, or -EPROTO (logged). */
static int limit_reply(gh_redis_cmd_t *cmd, int status, const redisReply *reply, int *allowed,
                       gh_redis_limit_result_t *res)
{
    if (status != 0)
        return status;
    status = redis_limit_parse(reply, allowed, res, cmd->nlimits);
    if (status < 0) {
        int err = reply->type == REDIS_REPLY_ERROR && reply->str != NULL;
        GH_LOG(GH_LOG_WARN, "redis", "%s: limit script failed: %.*s", cmd->client->conf.where,
               err ? (int)(reply->len < 200 ? reply->len : 200) : 16,
               err ? reply->str : "unexpected reply");
    }
    return status;
}

static void limit_done(gh_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    gh_redis_limit_result_t res;
    int allowed;
    status = limit_reply(cmd, status, reply, &allowed, &res);
    cmd->cb.limit(status, status == 0 ? &res : NULL, cmd->arg);
}

static void limits_done(gh_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    gh_redis_limit_result_t res[GH_REDIS_LIMITS_MAX];
    int allowed = 0;
    status = limit_reply(cmd, status, reply, &allowed, res);
    cmd->cb.limits(status, status == 0 ? allowed : 0, status == 0 ? res : NULL,
                   status == 0 ? cmd->nlimits : 0, cmd->arg);
}

static int limits_start(gh_redis_t *c, const gh_redis_limit_key_t *keys, size_t n, uint64_t cost,
                        uint64_t now_ms, gh_redis_cmd_t *proto, gh_redis_cmd_t **out)
{
    redis_limit_args_t a;
    if (c == NULL)
        return -EINVAL;
    if (redis_limit_args(&a, keys, n, cost, now_ms) < 0) {
        REDIS_STAT_ADD(&c->stats, refused, 1);
        return -EINVAL;
    }
    proto->nlimits = n;
    return eval_start(c, redis_limit_script(), (int)a.n, a.argc, a.argv, a.lens, proto, out);
}

int gh_redis_limit_take(gh_redis_t *c, const char *key, size_t key_len, const gh_redis_limit_t *lim,
                        uint64_t cost, uint64_t now_ms, gh_redis_limit_cb cb, void *arg,
                        gh_redis_cmd_t **out)
{
    if (lim == NULL || cb == NULL)
        return c != NULL ? limits_start(c, NULL, 0, 0, 0, NULL, NULL) : -EINVAL;
    gh_redis_limit_key_t k = {.key = key, .key_len = key_len, .lim = *lim};
    gh_redis_cmd_t proto = {.done = limit_done, .cb.limit = cb, .arg = arg};
    return limits_start(c, &k, 1, cost, now_ms, &proto, out);
}

int gh_redis_limits_take(gh_redis_t *c, const gh_redis_limit_key_t *keys, size_t n, uint64_t cost,
                         uint64_t now_ms, gh_redis_limits_cb cb, void *arg, gh_redis_cmd_t **out)
{
    if (cb == NULL)
        return c != NULL ? limits_start(c, NULL, 0, 0, 0, NULL, NULL) : -EINVAL;
    gh_redis_cmd_t proto = {.done = limits_done, .cb.limits = cb, .arg = arg};
    return limits_start(c, keys, n, cost, now_ms, &proto, out);
}

void gh_redis_cancel(gh_redis_cmd_t *cmd)
{
    /* It stays in the FIFO: still in flight, still counted against
     * max_pending, and its deadline still guards its connection. */
    if (cmd != NULL)
        cmd->done = NULL;
}

void gh_redis_stats(const gh_redis_t *c, gh_redis_stats_t *out)
{
    redis_stats_read(&c->stats, out);
}
