/*
 * The fleet backend of the rate_limits filter: fleet limits decided by
 * Redis (gatehouse/redis.h), one atomic script per request for all of its
 * fleet limits, so that every gatehouse in front of one Redis takes from
 * one counter (docs/rate-limits.md#fleet-mode, docs/redis.md).
 *
 * Per snapshot (open, main thread): the store section's address (a host
 * name resolved here, on the main thread, as cluster endpoints are at
 * load: the client never resolves on a worker), timeout, pool and prefix.
 *
 * Per worker: one async Redis client, made on the worker's thread by its
 * first fleet request (the filter's per-worker state gives no loop to
 * create(); the batch carries it). A client whose first connection is
 * still being made would refuse calls with -ENOTCONN, so a new client
 * holds calls for at most its connect timeout, in a list bounded by
 * max_pending, and sends them once it is up; after that a call fails at
 * once when no connection is up (the client's rule: never a wait without
 * a bound). A reload that changes the store makes a new client on each
 * worker at its next fleet request; the one before stays for the calls it
 * has in flight and is closed when the last of them ends. The worker's
 * clients are closed by worker_free, after the worker's loop ended (see
 * docs/redis.md: gh_redis_close then frees at once and ends pending
 * calls with -ESHUTDOWN, whose batches find their streams gone).
 *
 * Keys. A limit's state lives at PREFIX "rl:" ID ":" LEN ":" VALUE, where
 * ID is the limit's stable id (16 hex digits: what the limit is, so two
 * routes, two limits of a route, and a plan's throttle and quota never
 * share one) and VALUE the request's key (an address, a consumer, a
 * header's value) with LEN its length in decimal; a value longer than 64
 * bytes or with a byte outside printable ASCII is written as "#:" and the
 * hex of its SHA-256 instead. The length (or '#') makes the encoding
 * injective, so no value a client sends can name another key's or
 * another limit's state; the script adds the suffix that keeps a
 * bucket's and a window's keys apart.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <openssl/sha.h>

#include <gatehouse/config.h>
#include <gatehouse/log.h>
#include <gatehouse/redis.h>

#include "filters/ratelimit/internal.h"

_Static_assert(GH_RATELIMIT_FLEET_MAX <= GH_REDIS_LIMITS_MAX,
               "a request's fleet limits must fit one Redis decision");

#define FL_VALUE_CLEAR 64 /* longer values are hashed */
#define FL_KEY_MAX 96     /* "rl:" + 16 + ":" + 2 + ":" + 64, or "rl:" + 16 + ":#:" + 64 */
#define FL_CONNECT_MIN_MS 1000
#define FL_WAIT_TICK_MS 5
#define FL_LOG_EVERY_MS 10000
#define FL_IDLE_TICK_MS 10000

/* Test hooks: the clock sent with every decision (0, the default, is the
 * Redis server's clock: docs/redis.md#the-rate-limit-script), and how long
 * a worker's client may stay without a call before it is closed. */
static uint64_t fl_clock_ms;
static uint64_t fl_idle_ms = 60000;

/* ---- per snapshot ---- */

typedef struct {
    char host[INET6_ADDRSTRLEN];
    uint16_t port;
    char prefix[80];
    uint64_t timeout_ms, connect_ms;
    unsigned pool, max_pending;
    char where[300]; /* the address as configured, for logs */
} fl_conf_t;

static int conf_same(const fl_conf_t *a, const fl_conf_t *b)
{
    return a->port == b->port && a->timeout_ms == b->timeout_ms && a->connect_ms == b->connect_ms &&
           a->pool == b->pool && a->max_pending == b->max_pending &&
           strcmp(a->host, b->host) == 0 && strcmp(a->prefix, b->prefix) == 0 &&
           strcmp(a->where, b->where) == 0;
}

static void *fl_open(const gh_config_t *cfg, char *err, size_t cap)
{
    const gh_store_conf_t *st = &cfg->store;
    if (st->kind != GH_STORE_REDIS || st->address == NULL) {
        snprintf(err, cap, "fleet limits need store.kind: redis");
        return NULL;
    }
    fl_conf_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    if (gh_redis_resolve(st->address, c->host, sizeof(c->host), &c->port, err, cap) < 0) {
        free(c);
        return NULL;
    }
    snprintf(c->where, sizeof(c->where), "%s", st->address);
    snprintf(c->prefix, sizeof(c->prefix), "%s", st->prefix != NULL ? st->prefix : "");
    c->timeout_ms = st->timeout_ms;
    /* As the store's clients: TCP and the handshake may take the timeout,
     * at least a second. */
    c->connect_ms = st->timeout_ms > FL_CONNECT_MIN_MS ? st->timeout_ms : FL_CONNECT_MIN_MS;
    c->pool = st->pool;
    c->max_pending = st->max_pending;
    return c;
}

static void fl_close(void *backend)
{
    free(backend);
}

/* ---- counters and logs (any thread) ---- */

enum { FL_ALLOWED = 0, FL_LIMITED, FL_ERROR, FL_RESULTS };
enum {
    FL_E_TIMEOUT = 0,
    FL_E_UNAVAILABLE,
    FL_E_LOST,
    FL_E_OVERLOADED,
    FL_E_PROTOCOL,
    FL_E_SHUTDOWN,
    FL_E_OTHER,
    FL_REASONS
};
static const char *const result_names[FL_RESULTS] = {"allowed", "limited", "error"};
static const char *const reason_names[FL_REASONS] = {
    "timeout", "unavailable", "connection_lost", "overloaded", "protocol", "shutdown", "other"};

static uint64_t results[FL_RESULTS];
static uint64_t reasons[FL_REASONS];
static uint64_t pending;       /* decisions sent or held, not answered yet */
static uint64_t last_log_ms;   /* monotonic ms of the last warning; 0: none yet */
static uint64_t unlogged_errs; /* errors since the last warning */

static int reason_of(int status)
{
    switch (status) {
    case -ETIMEDOUT:
        return FL_E_TIMEOUT;
    case -ENOTCONN:
        return FL_E_UNAVAILABLE;
    case -ECONNRESET:
        return FL_E_LOST;
    case -EAGAIN:
        return FL_E_OVERLOADED;
    case -EPROTO:
        return FL_E_PROTOCOL;
    case -ESHUTDOWN:
        return FL_E_SHUTDOWN;
    default:
        return FL_E_OTHER;
    }
}

static const char *reason_text(int status)
{
    switch (status) {
    case -ETIMEDOUT:
        return "no reply within the store's timeout";
    case -ENOTCONN:
        return "no connection to Redis";
    case -ECONNRESET:
        return "the connection was lost";
    case -EAGAIN:
        return "too many decisions in flight (store.max_pending)";
    case -EPROTO:
        return "an error reply or a reply of the wrong shape";
    case -ESHUTDOWN:
        return "the worker is stopping";
    case -ENOMEM:
        return "out of memory";
    default:
        return "refused";
    }
}

/* Every failed decision is counted; at most one line per FL_LOG_EVERY_MS
 * is logged for the whole process, with how many failed since the last:
 * a Redis that is down must not turn every request into a log line. */
static void note_error(const char *where, int status)
{
    __atomic_add_fetch(&results[FL_ERROR], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&reasons[reason_of(status)], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&unlogged_errs, 1, __ATOMIC_RELAXED);
    uint64_t now = uv_hrtime() / 1000000 + 1,
             last = __atomic_load_n(&last_log_ms, __ATOMIC_RELAXED);
    if (last != 0 && now - last < FL_LOG_EVERY_MS)
        return;
    if (!__atomic_compare_exchange_n(&last_log_ms, &last, now, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return; /* another thread logs this period */
    uint64_t more = __atomic_exchange_n(&unlogged_errs, 0, __ATOMIC_RELAXED);
    GH_LOG(GH_LOG_WARN, "rate_limits",
           "fleet limits: redis %s: %s; %llu failed decision%s since the last such line (each "
           "limit's on_error decided; at most one line every %d s)",
           where, reason_text(status), (unsigned long long)more, more == 1 ? "" : "s",
           FL_LOG_EVERY_MS / 1000);
}

/* ---- per worker ---- */

typedef struct fl_client_s fl_client_t;
typedef struct fl_call_s fl_call_t;

typedef struct {
    fl_client_t *cur; /* the client of the newest store seen */
    fl_client_t *old; /* clients of a store before a reload, until idle */
    fl_call_t *wait;  /* calls held for a new client's first connection */
    fl_call_t **wait_tail;
    unsigned waiting;
    uv_timer_t timer; /* ticks while calls wait; closed by the worker's teardown */
    int timer_ready;
    uv_timer_t idle; /* closes a client left without calls (unreferenced) */
    int idle_ready;
    int ending;
} fl_worker_t;

struct fl_client_s {
    gh_redis_t *c;
    fl_conf_t conf;
    unsigned busy;    /* calls in flight or waiting */
    int up;           /* a connection has been ready */
    int retired;      /* in w->old */
    int closing;      /* gh_redis_close is running */
    uint64_t born_ms; /* loop time it was made */
    uint64_t used_ms; /* loop time of its last call */
    fl_client_t *next;
    fl_client_t *reg_prev, *reg_next; /* every live client, for /metrics */
};

struct fl_call_s {
    gh_ratelimit_batch_t *b;
    fl_worker_t *w;
    fl_client_t *cl;
    fl_call_t *next;
    size_t n;
    gh_limit_spec_t spec[GH_RATELIMIT_FLEET_MAX];
    gh_redis_limit_key_t keys[GH_RATELIMIT_FLEET_MAX];
    char key[GH_RATELIMIT_FLEET_MAX][FL_KEY_MAX];
};

/* The live clients and what closed ones counted, for /metrics. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static fl_client_t *reg_head;
static uint64_t reg_closed_reconnects;

static void reg_add(fl_client_t *cl)
{
    pthread_mutex_lock(&reg_lock);
    cl->reg_prev = NULL;
    cl->reg_next = reg_head;
    if (reg_head != NULL)
        reg_head->reg_prev = cl;
    reg_head = cl;
    pthread_mutex_unlock(&reg_lock);
}

static void reg_remove(fl_client_t *cl)
{
    gh_redis_stats_t st;
    gh_redis_stats(cl->c, &st);
    pthread_mutex_lock(&reg_lock);
    if (cl->reg_prev != NULL)
        cl->reg_prev->reg_next = cl->reg_next;
    else
        reg_head = cl->reg_next;
    if (cl->reg_next != NULL)
        cl->reg_next->reg_prev = cl->reg_prev;
    reg_closed_reconnects += st.reconnects;
    pthread_mutex_unlock(&reg_lock);
}

static void *fl_worker_new(void)
{
    fl_worker_t *w = calloc(1, sizeof(*w));
    if (w != NULL)
        w->wait_tail = &w->wait;
    return w;
}

static fl_client_t *client_new(const fl_conf_t *conf, uv_loop_t *loop, int *rc)
{
    char err[256] = "";
    fl_client_t *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    cl->conf = *conf;
    gh_redis_opts_t o = {.host = conf->host,
                         .port = conf->port,
                         .prefix = conf->prefix[0] != '\0' ? conf->prefix : NULL,
                         .pool_size = conf->pool,
                         .max_pending = conf->max_pending,
                         .connect_timeout_ms = conf->connect_ms,
                         .command_timeout_ms = conf->timeout_ms};
    if ((cl->c = gh_redis_new(loop, &o, err, sizeof(err))) == NULL) {
        GH_LOG(GH_LOG_ERROR, "rate_limits", "fleet limits: redis %s: %s", conf->where,
               err[0] != '\0' ? err : "out of memory");
        free(cl);
        *rc = err[0] != '\0' ? -EINVAL : -ENOMEM;
        return NULL;
    }
    cl->born_ms = cl->used_ms = uv_now(loop);
    reg_add(cl);
    return cl;
}

/* Closes cl (no call waits on it): pending commands end now with
 * -ESHUTDOWN, through on_reply, which leaves cl to this function. */
static void client_close(fl_worker_t *w, fl_client_t *cl)
{
    for (fl_client_t **p = &w->old; *p != NULL; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            break;
        }
    if (w->cur == cl)
        w->cur = NULL;
    reg_remove(cl);
    cl->closing = 1;
    gh_redis_close(cl->c);
    free(cl);
}

/* One call of cl is over. A retired client with none left is closed;
 * the caller touches cl no more. */
static void client_unbusy(fl_worker_t *w, fl_client_t *cl)
{
    cl->busy--;
    if (cl->retired && cl->busy == 0 && !cl->closing && !w->ending)
        client_close(w, cl);
}

/* The worker's client for conf: the current one, one a reload left
 * behind (requests of the snapshot before still use it), or a new one,
 * which becomes the current one. */
static fl_client_t *client_for(fl_worker_t *w, const fl_conf_t *conf, uv_loop_t *loop, int *rc)
{
    if (w->cur != NULL && conf_same(&w->cur->conf, conf))
        return w->cur;
    for (fl_client_t *cl = w->old; cl != NULL; cl = cl->next)
        if (conf_same(&cl->conf, conf))
            return cl;
    fl_client_t *cl = client_new(conf, loop, rc);
    if (cl == NULL)
        return NULL;
    fl_client_t *prev = w->cur;
    w->cur = cl;
    if (prev != NULL) {
        if (prev->busy == 0) {
            client_close(w, prev);
        } else {
            prev->retired = 1;
            prev->next = w->old;
            w->old = prev;
        }
    }
    return cl;
}

static int client_ready(fl_client_t *cl)
{
    gh_redis_stats_t st;
    gh_redis_stats(cl->c, &st);
    if (st.connected > 0)
        cl->up = 1;
    return st.connected > 0;
}

/* ---- a decision ---- */

static void to_redis(const gh_limit_spec_t *sp, gh_redis_limit_t *lim)
{
    memset(lim, 0, sizeof(*lim));
    if (sp->algo == GH_LIMIT_BUCKET) {
        lim->kind = GH_REDIS_LIMIT_BUCKET;
        lim->limit = sp->rate.burst;
        lim->rate = sp->rate.requests;
        lim->period_ms = sp->rate.per_ms;
        return;
    }
    lim->limit = sp->quota.limit;
    lim->offset_ms = (int64_t)sp->quota.offset_s * 1000;
    switch (sp->quota.period) {
    case GH_PERIOD_DAY:
        lim->kind = GH_REDIS_LIMIT_WINDOW;
        lim->period_ms = 86400000;
        break;
    case GH_PERIOD_WEEK:
        /* Weeks start on Sunday (AWS's): 1970-01-04, three days after the
         * epoch, was the first. */
        lim->kind = GH_REDIS_LIMIT_WINDOW;
        lim->period_ms = 7 * 86400000ULL;
        lim->offset_ms += 3 * 86400000LL;
        break;
    default:
        lim->kind = GH_REDIS_LIMIT_MONTH;
        break;
    }
}

/* The Redis key of (limit id, value): see the top of this file. */
static size_t key_build(char *out, uint64_t id, const char *v, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    int clear = len <= FL_VALUE_CLEAR;
    for (size_t i = 0; clear && i < len; i++)
        clear = (unsigned char)v[i] >= 0x20 && (unsigned char)v[i] < 0x7f;
    int n = snprintf(out, FL_KEY_MAX, "rl:%016llx:", (unsigned long long)id);
    size_t p = (size_t)n;
    if (clear) {
        p += (size_t)snprintf(out + p, FL_KEY_MAX - p, "%zu:", len);
        memcpy(out + p, v, len);
        return p + len;
    }
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)v, len, d);
    out[p++] = '#';
    out[p++] = ':';
    for (size_t i = 0; i < sizeof(d); i++) {
        out[p++] = hex[d[i] >> 4];
        out[p++] = hex[d[i] & 15];
    }
    return p;
}

static uint64_t ceil_s(uint64_t ms)
{
    return ms / 1000 + (ms % 1000 != 0);
}

/* The Redis decision of one limit as the local table would have given it
 * (gatehouse/limiter.h), so the 429, Retry-After and the RateLimit fields
 * are the same in both modes. */
static void from_redis(const gh_limit_spec_t *sp, const gh_redis_limit_result_t *r,
                       gh_limit_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->allowed = r->allowed;
    out->remaining = r->remaining;
    if (sp->algo == GH_LIMIT_BUCKET) {
        out->limit = sp->rate.burst;
        if (r->allowed) {
            out->reset_s = ceil_s(r->next_ms); /* until the next unit */
            return;
        }
        uint64_t retry = r->retry_after_ms == GH_REDIS_NEVER ? gh_bucket_window_s(&sp->rate)
                                                             : ceil_s(r->retry_after_ms);
        out->retry_s = retry > 0 ? retry : 1;
        out->reset_s = out->retry_s;
        return;
    }
    int64_t start, end;
    gh_quota_window(&sp->quota, (int64_t)(r->now_ms / 1000), &start, &end);
    out->limit = sp->quota.limit;
    out->window_s = (uint64_t)(end - start);
    out->reset_s = r->reset_ms > 0 ? ceil_s(r->reset_ms) : 1;
    out->retry_s = r->allowed ? 0 : out->reset_s;
}

static void on_reply(int status, int allowed, const gh_redis_limit_result_t *res, size_t n,
                     void *arg)
{
    fl_call_t *call = arg;
    gh_ratelimit_batch_t *b = call->b;
    __atomic_sub_fetch(&pending, 1, __ATOMIC_RELAXED);
    if (status == 0 && (res == NULL || n != call->n))
        status = -EPROTO;
    if (status == 0) {
        call->cl->up = 1;
        for (size_t i = 0; i < n; i++)
            from_redis(&call->spec[i], &res[i], &b->items[i].res);
        __atomic_add_fetch(&results[allowed ? FL_ALLOWED : FL_LIMITED], 1, __ATOMIC_RELAXED);
    } else {
        note_error(call->cl->conf.where, status);
    }
    client_unbusy(call->w, call->cl);
    free(call);
    b->done(b, status); /* last: it may free b, and run the next filters */
}

static int submit(fl_call_t *call)
{
    return gh_redis_limits_take(call->cl->c, call->keys, call->n, 1, fl_clock_ms, on_reply, call,
                                NULL);
}

static void call_fail(fl_call_t *call, int status)
{
    gh_ratelimit_batch_t *b = call->b;
    __atomic_sub_fetch(&pending, 1, __ATOMIC_RELAXED);
    note_error(call->cl->conf.where, status);
    client_unbusy(call->w, call->cl);
    free(call);
    b->done(b, status);
}

/* Calls held for a new client's first connection: sent once it is up,
 * failed once its connect timeout has passed. */
static void wait_tick(uv_timer_t *t)
{
    fl_worker_t *w = t->data;
    fl_call_t *list = w->wait;
    uint64_t now = uv_now(t->loop);
    w->wait = NULL;
    w->wait_tail = &w->wait;
    w->waiting = 0;
    while (list != NULL) {
        fl_call_t *call = list;
        list = call->next;
        call->next = NULL;
        fl_client_t *cl = call->cl;
        if (client_ready(cl)) {
            int rc = submit(call); /* in flight now: its busy count goes on */
            if (rc < 0)
                call_fail(call, rc);
        } else if (now - cl->born_ms >= cl->conf.connect_ms) {
            call_fail(call, -ENOTCONN);
        } else {
            *w->wait_tail = call;
            w->wait_tail = &call->next;
            w->waiting++;
        }
    }
    if (w->wait == NULL)
        uv_timer_stop(t);
}

static int wait_add(fl_worker_t *w, fl_call_t *call, uv_loop_t *loop)
{
    if (!w->timer_ready) {
        if (uv_timer_init(loop, &w->timer) != 0)
            return -ENOMEM;
        w->timer.data = w;
        w->timer_ready = 1;
    }
    if (w->wait == NULL &&
        uv_timer_start(&w->timer, wait_tick, FL_WAIT_TICK_MS, FL_WAIT_TICK_MS) != 0)
        return -ENOMEM;
    *w->wait_tail = call;
    w->wait_tail = &call->next;
    w->waiting++;
    call->cl->busy++;
    return 0;
}

/* A worker's client that has had no call for fl_idle_ms is closed (made
 * again by the next fleet request): after a reload that removed the fleet
 * limits, or moved them to another store, no worker keeps connections
 * nobody uses. */
static void idle_tick(uv_timer_t *t)
{
    fl_worker_t *w = t->data;
    uint64_t now = uv_now(t->loop);
    if (w->cur != NULL && w->cur->busy == 0 && now - w->cur->used_ms >= fl_idle_ms)
        client_close(w, w->cur);
    if (w->cur == NULL && w->old == NULL)
        uv_timer_stop(t);
}

static void idle_watch(fl_worker_t *w, uv_loop_t *loop)
{
    if (!w->idle_ready) {
        if (uv_timer_init(loop, &w->idle) != 0)
            return; /* then clients stay until the worker ends */
        w->idle.data = w;
        uv_unref((uv_handle_t *)&w->idle);
        w->idle_ready = 1;
    }
    if (!uv_is_active((uv_handle_t *)&w->idle)) {
        uint64_t every = fl_idle_ms < FL_IDLE_TICK_MS ? fl_idle_ms : FL_IDLE_TICK_MS;
        uv_timer_start(&w->idle, idle_tick, every, every);
    }
}

static int fl_take(void *backend, gh_ratelimit_batch_t *b)
{
    const fl_conf_t *conf = backend;
    fl_worker_t *w = b->worker;
    fl_client_t *cl = NULL;
    fl_call_t *call = NULL;
    int rc = -EINVAL;
    if (conf == NULL || w == NULL || b->num_items == 0 || b->num_items > GH_RATELIMIT_FLEET_MAX)
        goto fail;
    if ((cl = client_for(w, conf, b->loop, &rc)) == NULL)
        goto fail;
    cl->used_ms = uv_now(b->loop);
    idle_watch(w, b->loop);
    if ((call = malloc(sizeof(*call))) == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    call->b = b;
    call->w = w;
    call->cl = cl;
    call->next = NULL;
    call->n = b->num_items;
    for (size_t i = 0; i < call->n; i++) {
        const gh_ratelimit_item_t *it = &b->items[i];
        call->spec[i] = *it->spec;
        call->keys[i].key = call->key[i];
        call->keys[i].key_len = key_build(call->key[i], it->spec->id, it->key, it->key_len);
        to_redis(it->spec, &call->keys[i].lim);
    }
    if ((rc = submit(call)) == 0) {
        cl->busy++;
        __atomic_add_fetch(&pending, 1, __ATOMIC_RELAXED);
        return 0;
    }
    /* A new client's first connection is not up yet: hold the call for a
     * while rather than fail the first requests of every worker. */
    if (rc == -ENOTCONN && !cl->up && uv_now(b->loop) - cl->born_ms < cl->conf.connect_ms &&
        w->waiting < conf->max_pending && wait_add(w, call, b->loop) == 0) {
        __atomic_add_fetch(&pending, 1, __ATOMIC_RELAXED);
        return 0;
    }
fail:
    free(call);
    note_error(conf != NULL ? conf->where : "?", rc);
    return rc;
}

static void fl_worker_free(void *p)
{
    fl_worker_t *w = p;
    if (w == NULL)
        return;
    /* After the worker's loop ended (its handles, the timer among them,
     * were closed by its teardown): calls end with -ESHUTDOWN here, on
     * this thread; their streams are gone, so done only frees. */
    w->ending = 1;
    fl_call_t *list = w->wait;
    w->wait = NULL;
    while (list != NULL) {
        fl_call_t *call = list;
        list = call->next;
        call_fail(call, -ESHUTDOWN);
    }
    while (w->old != NULL)
        client_close(w, w->old);
    if (w->cur != NULL)
        client_close(w, w->cur);
    free(w);
}

/* ---- /metrics ---- */

static size_t fl_metrics(char *buf, size_t cap)
{
    uint64_t connected = 0, reconnects;
    pthread_mutex_lock(&reg_lock);
    reconnects = reg_closed_reconnects;
    for (fl_client_t *cl = reg_head; cl != NULL; cl = cl->reg_next) {
        gh_redis_stats_t st;
        gh_redis_stats(cl->c, &st);
        connected += st.connected;
        reconnects += st.reconnects;
    }
    pthread_mutex_unlock(&reg_lock);
    char tmp[2048];
    size_t used = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(tmp + used, sizeof(tmp) - used, __VA_ARGS__);                            \
        if (n_ > 0)                                                                                \
            used += (size_t)n_ < sizeof(tmp) - used ? (size_t)n_ : sizeof(tmp) - used - 1;         \
    } while (0)
    PUT("# HELP gatehouse_rate_limit_fleet_decisions_total Fleet rate-limit decisions by "
        "result: allowed, limited (a fleet limit refused) or error (the store failed; each "
        "limit's on_error decided).\n"
        "# TYPE gatehouse_rate_limit_fleet_decisions_total counter\n");
    for (int i = 0; i < FL_RESULTS; i++)
        PUT("gatehouse_rate_limit_fleet_decisions_total{result=\"%s\"} %llu\n", result_names[i],
            (unsigned long long)__atomic_load_n(&results[i], __ATOMIC_RELAXED));
    PUT("# HELP gatehouse_rate_limit_fleet_errors_total Fleet rate-limit decisions the store "
        "failed, by reason.\n"
        "# TYPE gatehouse_rate_limit_fleet_errors_total counter\n");
    for (int i = 0; i < FL_REASONS; i++)
        PUT("gatehouse_rate_limit_fleet_errors_total{reason=\"%s\"} %llu\n", reason_names[i],
            (unsigned long long)__atomic_load_n(&reasons[i], __ATOMIC_RELAXED));
    PUT("# HELP gatehouse_rate_limit_fleet_connections Connections to the fleet limits' Redis "
        "ready now, over every worker.\n"
        "# TYPE gatehouse_rate_limit_fleet_connections gauge\n"
        "gatehouse_rate_limit_fleet_connections %llu\n"
        "# HELP gatehouse_rate_limit_fleet_reconnects_total Connection attempts to the fleet "
        "limits' Redis after each connection's first.\n"
        "# TYPE gatehouse_rate_limit_fleet_reconnects_total counter\n"
        "gatehouse_rate_limit_fleet_reconnects_total %llu\n"
        "# HELP gatehouse_rate_limit_fleet_pending Fleet rate-limit decisions sent to Redis, or "
        "held for a new connection, and not answered yet.\n"
        "# TYPE gatehouse_rate_limit_fleet_pending gauge\n"
        "gatehouse_rate_limit_fleet_pending %llu\n",
        (unsigned long long)connected, (unsigned long long)reconnects,
        (unsigned long long)__atomic_load_n(&pending, __ATOMIC_RELAXED));
#undef PUT
    if (buf != NULL && cap > 0) {
        size_t n = used < cap ? used : cap - 1;
        memcpy(buf, tmp, n);
        buf[n] = '\0';
    }
    return used;
}

const gh_ratelimit_fleet_t gh_ratelimit_fleet_redis = {
    .name = "redis",
    .open = fl_open,
    .close = fl_close,
    .worker_new = fl_worker_new,
    .worker_free = fl_worker_free,
    .take = fl_take,
    .metrics = fl_metrics,
};
