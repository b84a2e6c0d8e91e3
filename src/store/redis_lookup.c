/*
 * Key and client lookups of the Redis store on worker loops: one async
 * client (gatehouse/redis.h) per (store, loop), made on the loop's thread
 * by its first lookup, and the lookups on it (one HMGET each); client-
 * assertion claims (one SET NX PX each) take the same path.
 *
 * Who closes a loop's client, and on which thread (a client belongs to
 * its loop's thread; libuv handles are never touched from another):
 *
 *   - the store goes (its last reference, on any thread): the client is
 *     marked an orphan, under the registry's lock, and its loop closes it
 *     on its next tick (a timer every second on that loop, which does not
 *     keep the loop alive). No lookup is pending then: each holds a
 *     reference to the store.
 *   - the loop ends first (a worker stops: its owner closes every handle
 *     with a walk, runs the loop out, and later, on the main thread,
 *     destroys the worker's state, which calls gh_store_loop_end): the
 *     clients of every store on that loop are taken out of the registry
 *     and closed there. gh_redis_close frees at once after such a
 *     teardown, and ends the commands still in flight with -ESHUTDOWN;
 *     lookups parked or answered but not yet delivered end the same way.
 *     Their requests were cancelled by then (the worker's streams are
 *     gone), so no caller's callback runs on that thread.
 *
 * A new client has no connection yet: a lookup made before its first
 * connection is up waits (parked, polled every few ms) at most the connect
 * timeout; after that, a lookup while Redis is down fails at once
 * (-ENOTCONN), so a request never waits on a Redis that is known down.
 * Every answer reaches gh_store_req_finish on the loop, on a later turn
 * than the lookup, exactly once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include <gatehouse/log.h>

#include "store/redis_store.h"

#define TICK_MS 1000u /* how soon a client of a store that went is closed */
#define PARK_POLL_MS 5u

struct gh_rs_loop_s {
    gh_rs_loop_t *next, *prev; /* the registry, under g_lock */
    uv_loop_t *loop;
    gh_store_t *store; /* NULL once the store went (under g_lock) */
    gh_redis_t *c;
    uv_timer_t tick; /* closes an orphan */
    uv_timer_t poke; /* delivers done answers, retries parked lookups */
    int handles;     /* of tick and poke, not closed yet */
    uint64_t warm_until;
    gh_rs_req_t *done, *done_tail;
    gh_rs_req_t *parked, *parked_tail;
};

static uv_once_t g_once = UV_ONCE_INIT;
static uv_mutex_t g_lock;
static gh_rs_loop_t *g_loops;

static void registry_init(void)
{
    if (uv_mutex_init(&g_lock) != 0)
        abort(); /* at the first lookup: nothing else could work either */
}

static void unlink_locked(gh_rs_loop_t *lc)
{
    if (lc->prev != NULL)
        lc->prev->next = lc->next;
    else
        g_loops = lc->next;
    if (lc->next != NULL)
        lc->next->prev = lc->prev;
    lc->next = lc->prev = NULL;
}

/* ---- requests ---- */

static void push(gh_rs_req_t **head, gh_rs_req_t **tail, gh_rs_req_t *rq)
{
    rq->next = NULL;
    if (*tail != NULL)
        (*tail)->next = rq;
    else
        *head = rq;
    *tail = rq;
}

/* Answered on the loop's next turn. */
static void defer(gh_rs_req_t *rq, int status);

static void on_client_reply(gh_rs_req_t *rq, int status, const struct redisReply *r)
{
    gh_store_req_t *req = rq->req;
    gh_client_t c;
    const char *why = NULL;
    int rc = status;
    if (rc == 0) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != RC_COUNT) {
            why = r->type == REDIS_REPLY_ERROR ? r->str : "an answer of the wrong shape";
            rc = -EIO;
        } else {
            rc = gh_rs_client_record(r->element, req->client_id, &c, &why);
        }
        if (rc == -EIO)
            GH_LOG(GH_LOG_ERROR, "store", "%s: lookup of client %s: %s",
                   gh_store_describe(req->store), req->client_id, why ? why : "malformed record");
    }
    gh_store_req_finish_client(req, rc, rc == 0 ? &c : NULL);
    if (rc == 0)
        gh_client_dispose(&c);
}

static void on_claim_reply(gh_rs_req_t *rq, int status, const struct redisReply *r)
{
    gh_store_req_t *req = rq->req;
    int rc = status;
    if (rc == 0 && (rc = gh_rs_claim_status(r)) == -EIO)
        GH_LOG(GH_LOG_ERROR, "store", "%s: claim of a client assertion of %s: %s",
               gh_store_describe(req->store), req->client_id,
               r->type == REDIS_REPLY_ERROR ? r->str : "an answer of the wrong shape");
    gh_store_req_finish(req, rc, NULL, NULL);
}

static void on_reply(int status, const struct redisReply *r, void *arg)
{
    gh_rs_req_t *rq = arg;
    gh_store_req_t *req = rq->req;
    gh_apikey_t rec;
    uint8_t hash[GH_APIKEY_HASH_LEN];
    const char *why = NULL;
    int rc = status;
    rq->cmd = NULL;
    if (req->kind == GH_STORE_REQ_CLIENT) {
        on_client_reply(rq, status, r);
        return;
    }
    if (req->kind == GH_STORE_REQ_CLAIM) {
        on_claim_reply(rq, status, r);
        return;
    }
    if (rc == 0) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != RF_COUNT) {
            why = r->type == REDIS_REPLY_ERROR ? r->str : "an answer of the wrong shape";
            rc = -EIO;
        } else {
            rc = gh_rs_record(r->element, req->key.id, &rec, hash, &why);
        }
        if (rc == -EIO)
            GH_LOG(GH_LOG_ERROR, "store", "%s: lookup of key %s: %s", gh_store_describe(req->store),
                   req->key.id, why ? why : "malformed record");
    }
    /* finish frees req (and rq with it), and may drop the store's last
     * reference: nothing of either is used after it. */
    gh_store_req_finish(req, rc, rc == 0 ? &rec : NULL, rc == 0 ? hash : NULL);
    if (rc == 0)
        gh_apikey_dispose(&rec);
}

/* SET key until NX PX ttl: atomic, so of two gatehouses claiming one jti
 * at once exactly one gets OK. The time to live is taken from the claim's
 * now, not the time of sending: a parked claim lives a little longer. */
static int send_claim(gh_rs_req_t *rq)
{
    gh_store_req_t *req = rq->req;
    char key[GH_RS_CLAIM_KEY_MAX], until[24], ttl[24];
    const char *argv[6] = {"SET", key, until, "NX", "PX", ttl};
    size_t lens[6] = {3, 0, 0, 2, 2, 0};
    if ((lens[1] = gh_rs_claim_key(key, req->client_id, req->jti)) == 0)
        return -EINVAL;
    lens[2] = (size_t)snprintf(until, sizeof(until), "%lld", (long long)req->until);
    lens[5] = (size_t)snprintf(ttl, sizeof(ttl), "%lld", (long long)(req->until - req->now) * 1000);
    return gh_redis_command(rq->lc->c, 6, argv, lens, 1u << 1, on_reply, rq, &rq->cmd);
}

static int send_lookup(gh_rs_req_t *rq)
{
    if (rq->req->kind == GH_STORE_REQ_CLAIM)
        return send_claim(rq);
    enum { ARGS = 2 + (int)RF_COUNT + (int)RC_COUNT }; /* room for either */
    const char *argv[ARGS];
    size_t lens[ARGS];
    char key[8 + GH_CLIENT_ID_LEN + 1];
    int n;
    argv[0] = "HMGET";
    lens[0] = 5;
    argv[1] = key;
    if (rq->req->kind == GH_STORE_REQ_CLIENT) {
        memcpy(key, "client:", 7);
        memcpy(key + 7, rq->req->client_id, GH_CLIENT_ID_LEN + 1);
        lens[1] = 7 + GH_CLIENT_ID_LEN;
        for (int i = 0; i < RC_COUNT; i++) {
            argv[2 + i] = gh_rs_client_fields[i];
            lens[2 + i] = strlen(gh_rs_client_fields[i]);
        }
        n = 2 + RC_COUNT;
    } else {
        memcpy(key, "key:", 4);
        memcpy(key + 4, rq->req->key.id, GH_APIKEY_ID_LEN + 1);
        lens[1] = 4 + GH_APIKEY_ID_LEN;
        for (int i = 0; i < RF_COUNT; i++) {
            argv[2 + i] = gh_rs_fields[i];
            lens[2 + i] = strlen(gh_rs_fields[i]);
        }
        n = 2 + RF_COUNT;
    }
    return gh_redis_command(rq->lc->c, n, argv, lens, 1u << 1, on_reply, rq, &rq->cmd);
}

static void on_poke(uv_timer_t *t);

static void defer(gh_rs_req_t *rq, int status)
{
    gh_rs_loop_t *lc = rq->lc;
    rq->status = status;
    push(&lc->done, &lc->done_tail, rq);
    uv_timer_start(&lc->poke, on_poke, 0, 0);
}

static void park(gh_rs_req_t *rq)
{
    gh_rs_loop_t *lc = rq->lc;
    push(&lc->parked, &lc->parked_tail, rq);
    if (!uv_is_active((uv_handle_t *)&lc->poke))
        uv_timer_start(&lc->poke, on_poke, PARK_POLL_MS, 0);
}

static void on_poke(uv_timer_t *t)
{
    gh_rs_loop_t *lc = t->data;
    gh_rs_req_t *done = lc->done, *done_tail = lc->done_tail, *p = lc->parked;
    lc->done = lc->done_tail = lc->parked = lc->parked_tail = NULL;
    gh_redis_stats_t s;
    gh_redis_stats(lc->c, &s);
    uint64_t now = uv_now(t->loop);
    while (p != NULL) {
        gh_rs_req_t *next = p->next;
        int rc = -ENOTCONN;
        if (p->req->cancelled)
            rc = -ECANCELED;
        else if (s.connected > 0)
            rc = send_lookup(p);
        if (rc == -ENOTCONN && now < lc->warm_until && !p->req->cancelled) {
            push(&lc->parked, &lc->parked_tail, p);
        } else if (rc != 0) {
            p->status = rc == -EINVAL ? -EIO : rc;
            push(&done, &done_tail, p);
        }
        p = next;
    }
    if (lc->parked != NULL)
        uv_timer_start(&lc->poke, on_poke, PARK_POLL_MS, 0);
    /* Answers last: a callback may look up again (onto fresh lists), or
     * drop the store's last reference (the client stays until the tick). */
    while (done != NULL) {
        gh_rs_req_t *next = done->next;
        gh_store_req_finish(done->req, done->status, NULL, NULL);
        done = next;
    }
}

/* ---- per-loop clients ---- */

static void lc_handle_closed(uv_handle_t *h)
{
    gh_rs_loop_t *lc = h->data;
    if (--lc->handles == 0)
        free(lc);
}

/* On the loop's thread, the store gone: nothing is pending. */
static void lc_close(gh_rs_loop_t *lc)
{
    gh_redis_close(lc->c);
    lc->c = NULL;
    uv_timer_stop(&lc->tick);
    uv_timer_stop(&lc->poke);
    uv_close((uv_handle_t *)&lc->tick, lc_handle_closed);
    uv_close((uv_handle_t *)&lc->poke, lc_handle_closed);
}

static void on_tick(uv_timer_t *t)
{
    gh_rs_loop_t *lc = t->data;
    uv_mutex_lock(&g_lock);
    int orphan = lc->store == NULL;
    if (orphan)
        unlink_locked(lc);
    uv_mutex_unlock(&g_lock);
    if (orphan)
        lc_close(lc);
}

static gh_rs_loop_t *lc_new(gh_store_t *st, uv_loop_t *loop)
{
    gh_rs_t *q = st->impl;
    char why[256] = "";
    gh_rs_loop_t *lc = calloc(1, sizeof(*lc));
    if (lc == NULL)
        return NULL;
    lc->c = gh_redis_new(loop, &q->opts, why, sizeof(why));
    if (lc->c == NULL) {
        GH_LOG(GH_LOG_ERROR, "store", "%s: no Redis client for this worker: %s",
               gh_store_describe(st), why[0] ? why : "out of memory");
        free(lc);
        return NULL;
    }
    lc->loop = loop;
    lc->store = st;
    lc->warm_until = uv_now(loop) + q->connect_ms;
    uv_timer_init(loop, &lc->tick);
    uv_timer_init(loop, &lc->poke);
    lc->tick.data = lc->poke.data = lc;
    lc->handles = 2;
    uv_timer_start(&lc->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&lc->tick);
    return lc;
}

/* The client of st on loop (the caller's thread runs loop), made on first
 * use. Only this thread makes one for this loop, so the lock is not held
 * while making it. */
static gh_rs_loop_t *lc_get(gh_store_t *st, uv_loop_t *loop)
{
    gh_rs_loop_t *lc;
    uv_once(&g_once, registry_init);
    uv_mutex_lock(&g_lock);
    for (lc = g_loops; lc != NULL; lc = lc->next)
        if (lc->store == st && lc->loop == loop)
            break;
    uv_mutex_unlock(&g_lock);
    if (lc != NULL || (lc = lc_new(st, loop)) == NULL)
        return lc;
    uv_mutex_lock(&g_lock);
    lc->next = g_loops;
    if (g_loops != NULL)
        g_loops->prev = lc;
    g_loops = lc;
    uv_mutex_unlock(&g_lock);
    return lc;
}

int gh_rs_key_lookup(gh_store_t *st, uv_loop_t *loop, gh_store_req_t *req)
{
    gh_rs_req_t *rq = gh_store_req_backend(req);
    memset(rq, 0, sizeof(*rq));
    rq->req = req;
    if ((rq->lc = lc_get(st, loop)) == NULL)
        return -ENOMEM;
    int rc = send_lookup(rq);
    if (rc == 0)
        return 0;
    if (rc == -EAGAIN || rc == -ENOMEM)
        return rc; /* refused: store.c says so to the caller, no callback */
    if (rc == -ENOTCONN && uv_now(loop) < rq->lc->warm_until)
        park(rq);
    else
        defer(rq, rc == -EINVAL ? -EIO : rc); /* Redis down: answered next turn */
    return 0;
}

void gh_rs_key_lookup_cancel(gh_store_req_t *req)
{
    gh_rs_req_t *rq = gh_store_req_backend(req);
    /* In flight: the client will not call back, so the request is
     * finished here, next turn. Parked or done: the next poke finishes it
     * (cancelled: no callback). */
    if (rq->cmd != NULL) {
        gh_redis_cancel(rq->cmd);
        rq->cmd = NULL;
        defer(rq, -ECANCELED);
    }
}

void gh_rs_forget_store(gh_store_t *st)
{
    uv_once(&g_once, registry_init);
    uv_mutex_lock(&g_lock);
    for (gh_rs_loop_t *lc = g_loops; lc != NULL; lc = lc->next)
        if (lc->store == st)
            lc->store = NULL;
    uv_mutex_unlock(&g_lock);
}

void gh_rs_loop_end(uv_loop_t *loop)
{
    gh_rs_loop_t *mine = NULL;
    uv_once(&g_once, registry_init);
    uv_mutex_lock(&g_lock);
    for (gh_rs_loop_t *lc = g_loops, *next; lc != NULL; lc = next) {
        next = lc->next;
        if (lc->loop != loop)
            continue;
        unlink_locked(lc);
        lc->next = mine;
        mine = lc;
    }
    uv_mutex_unlock(&g_lock);
    /* Outside the lock: finishing a request may close its store. */
    while (mine != NULL) {
        gh_rs_loop_t *lc = mine;
        mine = lc->next;
        if (!uv_is_closing((uv_handle_t *)&lc->tick)) {
            /* The loop still has our handles: freeing them would leave
             * libuv pointing at freed memory. A bug of the caller. */
            GH_LOG(GH_LOG_ERROR, "store",
                   "a loop ended with its store handles open; its Redis client is leaked");
            continue;
        }
        gh_redis_stats_t s;
        gh_redis_stats(lc->c, &s);
        gh_redis_close(lc->c); /* in-flight lookups end here with -ESHUTDOWN */
        lc->c = NULL;
        gh_rs_req_t *lists[2] = {lc->done, lc->parked};
        lc->done = lc->done_tail = lc->parked = lc->parked_tail = NULL;
        for (int i = 0; i < 2; i++)
            for (gh_rs_req_t *rq = lists[i], *next; rq != NULL; rq = next) {
                next = rq->next;
                gh_store_req_finish(rq->req, i == 0 ? rq->status : -ESHUTDOWN, NULL, NULL);
            }
        free(lc);
        GH_LOG(GH_LOG_DEBUG, "store",
               "released the Redis client of a loop that ended (%llu lookups sent on it)",
               (unsigned long long)s.commands);
    }
}
