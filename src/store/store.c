/*
 * The store's dispatch (gatehouse/store.h): what every backend shares.
 * Input is checked here, keys are made and hashed here, and a looked-up
 * hash is compared here, so a backend cannot get those wrong; a backend
 * only keeps records (src/store/backend.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <gatehouse/log.h>
#include <gatehouse/store.h>

#include "store/backend.h"

#define MAX_LIFETIME_S (100LL * 366 * 86400) /* expires_in, grace: sane bounds */
#define MAX_USAGE_DAYS 3660

/* ---- records ---- */

void gh_apikey_dispose(gh_apikey_t *k)
{
    if (k == NULL)
        return;
    free(k->consumer);
    free(k->plan);
    free(k->scopes);
    free(k->description);
    k->consumer = k->plan = k->scopes = k->description = NULL;
}

void gh_apikey_list_free(gh_apikey_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gh_apikey_dispose(&keys[i]);
    free(keys);
}

gh_apikey_state_t gh_apikey_state(const gh_apikey_t *k, int64_t now)
{
    /* Revoked whatever the time: a gateway whose clock is behind the one
     * that revoked must not serve the key until it catches up. */
    if (k->revoked_at != 0)
        return GH_APIKEY_REVOKED;
    if (!k->enabled)
        return GH_APIKEY_DISABLED;
    if (k->expires_at != 0 && k->expires_at <= now)
        return GH_APIKEY_EXPIRED;
    if (k->grace_until != 0 && k->grace_until <= now)
        return GH_APIKEY_REPLACED;
    return GH_APIKEY_VALID;
}

const char *gh_apikey_state_name(gh_apikey_state_t s)
{
    switch (s) {
    case GH_APIKEY_VALID:
        return "valid";
    case GH_APIKEY_REVOKED:
        return "revoked";
    case GH_APIKEY_DISABLED:
        return "disabled";
    case GH_APIKEY_EXPIRED:
        return "expired";
    case GH_APIKEY_REPLACED:
        return "replaced";
    }
    return "unknown";
}

int64_t gh_apikey_valid_until(const gh_apikey_t *k)
{
    int64_t t = k->expires_at;
    if (k->grace_until != 0 && (t == 0 || k->grace_until < t))
        t = k->grace_until;
    return t;
}

int gh_store_fail(gh_store_error_t *err, int rc, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return rc;
}

int gh_store_import_error(gh_store_import_result_t *res, unsigned line, const char *fmt, ...)
{
    res->total_errors++;
    if (res->num_errors >= GH_APIKEY_CSV_MAX_ERRORS)
        return 0;
    if (res->errors == NULL &&
        (res->errors = calloc(GH_APIKEY_CSV_MAX_ERRORS, sizeof(*res->errors))) == NULL)
        return -ENOMEM;
    gh_apikey_csv_error_t *e = &res->errors[res->num_errors++];
    va_list ap;
    e->line = line;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return 0;
}

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return 0;
    *out = strdup(s);
    return *out == NULL ? -ENOMEM : 0;
}

int gh_store_apikey_copy(gh_apikey_t *dst, const gh_apikey_t *src)
{
    *dst = *src;
    dst->consumer = dst->plan = dst->scopes = dst->description = NULL;
    if (dup_opt(src->consumer, &dst->consumer) != 0 || dup_opt(src->plan, &dst->plan) != 0 ||
        dup_opt(src->scopes ? src->scopes : "", &dst->scopes) != 0 ||
        dup_opt(src->description ? src->description : "", &dst->description) != 0) {
        gh_apikey_dispose(dst);
        return -ENOMEM;
    }
    return 0;
}

/* ---- backends ---- */

static const gh_store_backend_t *const backends[] = {
    &gh_store_sqlite_backend,
    &gh_store_redis_backend,
    NULL,
};

const gh_store_backend_t *gh_store_backend_find(gh_store_kind_t kind)
{
    for (size_t i = 0; backends[i] != NULL; i++)
        if (backends[i]->kind == kind)
            return backends[i];
    return NULL;
}

static int copy_str(const char *s, char **out)
{
    return dup_opt(s, out);
}

int gh_store_conf_copy(gh_store_conf_t *dst, const gh_store_conf_t *src)
{
    *dst = *src;
    dst->path = dst->state_dir = dst->address = dst->prefix = NULL;
    if (copy_str(src->path, &dst->path) != 0 || copy_str(src->state_dir, &dst->state_dir) != 0 ||
        copy_str(src->address, &dst->address) != 0 || copy_str(src->prefix, &dst->prefix) != 0) {
        gh_store_conf_dispose(dst);
        return -ENOMEM;
    }
    return 0;
}

int gh_store_open(const gh_store_conf_t *conf, int flags, gh_store_t **out, gh_store_error_t *err)
{
    *out = NULL;
    const gh_store_backend_t *b = gh_store_backend_find(conf->kind);
    if (b == NULL)
        return gh_store_fail(err, -ENOTSUP,
                             "store kind '%s' is not available in this build of gatehouse",
                             conf->kind == GH_STORE_REDIS    ? "redis"
                             : conf->kind == GH_STORE_SQLITE ? "sqlite"
                                                             : "unknown");
    gh_store_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    st->backend = b;
    atomic_init(&st->refs, 1);
    atomic_init(&st->pending, 0);
    atomic_init(&st->flushing, 0);
    if (gh_store_conf_copy(&st->conf, conf) != 0 || (st->usage = gh_usage_batch_new()) == NULL) {
        gh_store_conf_dispose(&st->conf);
        free(st);
        return gh_store_fail(err, -ENOMEM, "out of memory");
    }
    if (st->conf.kind == GH_STORE_SQLITE)
        snprintf(st->describe, sizeof(st->describe), "sqlite %s", st->conf.path);
    else
        snprintf(st->describe, sizeof(st->describe), "redis %s", st->conf.address);
    int rc = b->open(st, flags, err);
    if (rc != 0) {
        gh_usage_batch_free(st->usage);
        gh_store_conf_dispose(&st->conf);
        free(st);
        return rc;
    }
    *out = st;
    return 0;
}

gh_store_t *gh_store_ref(gh_store_t *st)
{
    atomic_fetch_add(&st->refs, 1);
    return st;
}

void gh_store_unref(gh_store_t *st)
{
    if (st == NULL || atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    gh_store_error_t err;
    if (gh_store_usage_flush(st, &err) != 0)
        GH_LOG(GH_LOG_WARN, "store", "%s: usage counts lost at close: %s", st->describe, err.msg);
    st->backend->close(st);
    gh_usage_batch_free(st->usage);
    gh_store_conf_dispose(&st->conf);
    free(st);
}

const char *gh_store_kind(const gh_store_t *st)
{
    return st->backend->name;
}

const char *gh_store_describe(const gh_store_t *st)
{
    return st->describe;
}

/* ---- usage ---- */

void gh_store_usage_add(gh_store_t *st, uv_loop_t *loop, unsigned shard, const char *id,
                        int64_t now, uint64_t n)
{
    (void)loop;
    if (!gh_apikey_id_valid(id) || now < 0)
        return;
    gh_usage_batch_add(st->usage, shard, id, now / 86400, n);
}

uint64_t gh_store_usage_dropped(const gh_store_t *st)
{
    return gh_usage_batch_dropped(st->usage);
}

int gh_store_usage_flush(gh_store_t *st, gh_store_error_t *err)
{
    gh_store_usage_entry_t *e;
    size_t n;
    if (gh_usage_batch_take(st->usage, &e, &n) != 0)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    if (n == 0)
        return 0;
    int rc = st->backend->usage_write(st, e, n, err);
    if (rc != 0)
        gh_usage_batch_put_back(st->usage, e, n); /* next time */
    free(e);
    return rc;
}

int gh_store_usage_get(gh_store_t *st, const char *id, int64_t from_day, int64_t to_day,
                       uint64_t *counts, gh_store_error_t *err)
{
    if (!gh_apikey_id_valid(id))
        return gh_store_fail(err, -EINVAL, "'%.40s' is not a key id", id ? id : "");
    if (to_day < from_day || to_day - from_day >= MAX_USAGE_DAYS)
        return gh_store_fail(err, -EINVAL, "a usage range is 1 to %d days", MAX_USAGE_DAYS);
    memset(counts, 0, (size_t)(to_day - from_day + 1) * sizeof(*counts));
    int rc = st->backend->usage_get(st, id, from_day, to_day, counts, err);
    if (rc != 0)
        return rc;
    for (int64_t d = from_day; d <= to_day; d++) {
        uint64_t p = gh_usage_batch_pending(st->usage, id, d), *c = &counts[d - from_day];
        *c = p > UINT64_MAX - *c ? UINT64_MAX : *c + p;
    }
    return 0;
}

typedef struct {
    uv_work_t work;
    gh_store_t *st;
} flush_job_t;

static void flush_work(uv_work_t *w)
{
    flush_job_t *j = (flush_job_t *)w;
    gh_store_error_t err;
    if (gh_store_usage_flush(j->st, &err) != 0)
        GH_LOG(GH_LOG_WARN, "store",
               "%s: writing usage counts failed (kept for the next "
               "write): %s",
               j->st->describe, err.msg);
}

static void flush_done(uv_work_t *w, int status)
{
    (void)status;
    flush_job_t *j = (flush_job_t *)w;
    atomic_store(&j->st->flushing, 0);
    gh_store_unref(j->st);
    free(j);
}

static void flush_tick(uv_timer_t *t)
{
    gh_store_t *st = t->data;
    int idle = 0;
    /* One write at a time: a slow disk makes the batches bigger, not the
     * queue of writes longer. */
    if (!atomic_compare_exchange_strong(&st->flushing, &idle, 1))
        return;
    flush_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        atomic_store(&st->flushing, 0);
        return;
    }
    j->st = gh_store_ref(st);
    if (uv_queue_work(t->loop, &j->work, flush_work, flush_done) != 0) {
        atomic_store(&st->flushing, 0);
        gh_store_unref(st);
        free(j);
    }
}

static void timer_closed(uv_handle_t *h)
{
    gh_store_t *st = h->data;
    free(h);
    gh_store_unref(st);
}

int gh_store_start(gh_store_t *st, uv_loop_t *loop)
{
    if (st->timer != NULL)
        return -EALREADY;
    uv_timer_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    int rc = uv_timer_init(loop, t);
    if (rc != 0) {
        free(t);
        return rc;
    }
    t->data = gh_store_ref(st); /* released in timer_closed */
    uv_unref((uv_handle_t *)t); /* never keeps the loop alive by itself */
    rc = uv_timer_start(t, flush_tick, st->conf.usage_flush_ms, st->conf.usage_flush_ms);
    if (rc != 0) {
        uv_close((uv_handle_t *)t, timer_closed);
        return rc;
    }
    st->timer = t;
    st->loop = loop;
    return 0;
}

void gh_store_stop(gh_store_t *st)
{
    if (st->timer == NULL)
        return;
    uv_timer_stop(st->timer);
    uv_close((uv_handle_t *)st->timer, timer_closed);
    st->timer = NULL;
    gh_store_error_t err;
    if (gh_store_usage_flush(st, &err) != 0)
        GH_LOG(GH_LOG_WARN, "store", "%s: writing usage counts at stop failed: %s", st->describe,
               err.msg);
}

/* ---- lookups (workers) ---- */

/* A request of kind for st, counted against max_pending: NULL with *rc
 * (-EAGAIN, -ENOMEM). extra: bytes of state after it, at least the
 * backend's. */
static gh_store_req_t *req_new(gh_store_t *st, int kind, size_t extra, void *arg, int *rc)
{
    if (atomic_fetch_add(&st->pending, 1) >= st->conf.max_pending) {
        atomic_fetch_sub(&st->pending, 1);
        *rc = -EAGAIN;
        return NULL;
    }
    if (extra < st->backend->req_size)
        extra = st->backend->req_size;
    gh_store_req_t *req = calloc(1, sizeof(*req) + extra);
    if (req == NULL) {
        atomic_fetch_sub(&st->pending, 1);
        *rc = -ENOMEM;
        return NULL;
    }
    req->store = gh_store_ref(st);
    req->kind = kind;
    req->arg = arg;
    return req;
}

/* A request that was never started: no callback. */
static void req_drop(gh_store_req_t *req)
{
    gh_store_t *st = req->store;
    atomic_fetch_sub(&st->pending, 1);
    free(req);
    gh_store_unref(st);
}

int gh_store_key_lookup(gh_store_t *st, uv_loop_t *loop, const gh_apikey_presented_t *p,
                        gh_store_key_cb cb, void *arg, gh_store_req_t **out)
{
    int rc;
    *out = NULL;
    if (!gh_apikey_id_valid(p->id))
        return -EINVAL;
    gh_store_req_t *req = req_new(st, GH_STORE_REQ_KEY, 0, arg, &rc);
    if (req == NULL)
        return rc;
    req->cb = cb;
    req->key = *p;
    rc = st->backend->key_lookup(st, loop, req);
    if (rc != 0) {
        req_drop(req);
        return rc;
    }
    *out = req;
    return 0;
}

int gh_store_client_lookup(gh_store_t *st, uv_loop_t *loop, const char *id, gh_store_client_cb cb,
                           void *arg, gh_store_req_t **out)
{
    int rc;
    *out = NULL;
    if (!gh_client_id_valid(id))
        return -EINVAL;
    gh_store_req_t *req = req_new(st, GH_STORE_REQ_CLIENT, 0, arg, &rc);
    if (req == NULL)
        return rc;
    req->client_cb = cb;
    memcpy(req->client_id, id, GH_CLIENT_ID_LEN + 1);
    rc = st->backend->key_lookup(st, loop, req);
    if (rc != 0) {
        req_drop(req);
        return rc;
    }
    *out = req;
    return 0;
}

static void pool_job_cancel(gh_store_req_t *req);

void gh_store_req_cancel(gh_store_req_t *req)
{
    if (req == NULL || req->cancelled)
        return;
    req->cancelled = 1;
    req->arg = NULL;
    if (req->on_pool)
        pool_job_cancel(req);
    else if (req->store->backend->key_lookup_cancel != NULL)
        req->store->backend->key_lookup_cancel(req);
}

void gh_store_loop_end(uv_loop_t *loop)
{
    for (size_t i = 0; backends[i] != NULL; i++)
        if (backends[i]->loop_end != NULL)
            backends[i]->loop_end(loop);
}

/* The callback of req's kind, unless cancelled; then req is freed. */
static void req_deliver(gh_store_req_t *req, int status, const gh_apikey_t *rec,
                        const gh_client_t *c)
{
    gh_store_t *st = req->store;
    if (!req->cancelled) {
        switch (req->kind) {
        case GH_STORE_REQ_KEY:
            req->cb(req->arg, status, status == 0 ? rec : NULL);
            break;
        case GH_STORE_REQ_CLIENT:
            req->client_cb(req->arg, status, status == 0 ? c : NULL);
            break;
        default:
            req->status_cb(req->arg, status);
            break;
        }
    }
    atomic_fetch_sub(&st->pending, 1);
    free(req);
    gh_store_unref(st);
}

void gh_store_req_finish(gh_store_req_t *req, int status, const gh_apikey_t *rec,
                         const uint8_t *stored_hash)
{
    /* An unknown id and a wrong secret give the same answer, and the
     * comparison takes the same time wherever the first differing byte is. */
    if (req->kind == GH_STORE_REQ_KEY && status == 0 &&
        (rec == NULL || stored_hash == NULL ||
         CRYPTO_memcmp(stored_hash, req->key.hash, GH_APIKEY_HASH_LEN) != 0))
        status = -ENOENT;
    if (req->kind == GH_STORE_REQ_CLIENT && status == 0)
        status = -EIO; /* a client's answer comes through gh_store_req_finish_client */
    req_deliver(req, status, rec, NULL);
}

void gh_store_req_finish_client(gh_store_req_t *req, int status, const gh_client_t *c)
{
    if (status == 0 && c == NULL)
        status = -EIO;
    req_deliver(req, status, NULL, c);
}

int gh_store_key_find(gh_store_t *st, const gh_apikey_presented_t *p, gh_apikey_t *out,
                      gh_store_error_t *err)
{
    uint8_t hash[GH_APIKEY_HASH_LEN];
    memset(out, 0, sizeof(*out));
    if (!gh_apikey_id_valid(p->id))
        return gh_store_fail(err, -ENOENT, "no such key");
    int rc = st->backend->key_get(st, p->id, out, hash, err);
    if (rc != 0)
        return rc;
    if (CRYPTO_memcmp(hash, p->hash, GH_APIKEY_HASH_LEN) != 0) {
        gh_apikey_dispose(out);
        memset(out, 0, sizeof(*out));
        return gh_store_fail(err, -ENOENT, "no such key");
    }
    return 0;
}

/* ---- the synchronous API ---- */

static int check_id(const char *id, gh_store_error_t *err)
{
    if (gh_apikey_id_valid(id))
        return 0;
    return gh_store_fail(err, -EINVAL, "'%.40s' is not a key id (12 characters of a-z and 2-7)",
                         id ? id : "");
}

/* The metadata of a new key: checked, scopes normalised into *scopes. */
static int check_spec(const gh_apikey_spec_t *spec, char **scopes, gh_store_error_t *err)
{
    const char *why;
    *scopes = NULL;
    if ((why = gh_apikey_check_consumer(spec->consumer)) != NULL)
        return gh_store_fail(err, -EINVAL, "the consumer %s", why);
    if (spec->plan != NULL && (why = gh_apikey_check_plan(spec->plan)) != NULL)
        return gh_store_fail(err, -EINVAL, "the plan %s", why);
    if ((why = gh_apikey_check_description(spec->description)) != NULL)
        return gh_store_fail(err, -EINVAL, "the description %s", why);
    if (spec->expires_in < 0 || spec->expires_in > MAX_LIFETIME_S)
        return gh_store_fail(err, -EINVAL, "a key's lifetime is 1 second to 100 years");
    if ((*scopes = gh_apikey_scopes_normalize(spec->scopes, &why)) == NULL)
        return gh_store_fail(err, -EINVAL, "the scopes: %s", why);
    return 0;
}

/* A new native key and its record's id and hash; the caller inserts it. */
static int make_key(char key[GH_APIKEY_LEN + 1], gh_apikey_t *k, uint8_t *hash,
                    gh_store_error_t *err)
{
    gh_apikey_presented_t p;
    if (gh_apikey_generate(key) != 0)
        return gh_store_fail(err, -EIO, "the random generator failed");
    gh_apikey_present(key, GH_APIKEY_LEN, &p, NULL);
    memcpy(k->id, p.id, sizeof(k->id));
    memcpy(hash, p.hash, GH_APIKEY_HASH_LEN);
    return 0;
}

/* A new key's id is 60 random bits: a collision with an existing id is
 * unlikely but possible, and is answered by drawing again. */
#define ID_ATTEMPTS 4

int gh_store_key_create(gh_store_t *st, const gh_apikey_spec_t *spec, int64_t now,
                        char key_out[GH_APIKEY_LEN + 1], gh_apikey_t *rec, gh_store_error_t *err)
{
    char *scopes;
    uint8_t hash[GH_APIKEY_HASH_LEN];
    int rc = check_spec(spec, &scopes, err);
    if (rec != NULL)
        memset(rec, 0, sizeof(*rec));
    if (rc != 0)
        return rc;
    gh_apikey_t k = {
        .consumer = (char *)spec->consumer,
        .plan = (char *)spec->plan,
        .scopes = scopes,
        .description = (char *)(spec->description ? spec->description : ""),
        .enabled = 1,
        .source = GH_APIKEY_GENERATED,
        .created_at = now,
        .expires_at = spec->expires_in ? now + spec->expires_in : 0,
    };
    rc = -EEXIST;
    for (int i = 0; i < ID_ATTEMPTS && rc == -EEXIST; i++)
        if ((rc = make_key(key_out, &k, hash, err)) == 0)
            rc = st->backend->key_insert(st, &k, hash, err);
    if (rc == 0 && rec != NULL && gh_store_apikey_copy(rec, &k) != 0)
        rc = gh_store_fail(err, -ENOMEM, "out of memory (the key was made: %s)", k.id);
    if (rc != 0 && rc != -ENOMEM)
        OPENSSL_cleanse(key_out, GH_APIKEY_LEN + 1);
    free(scopes);
    return rc;
}

int gh_store_key_get(gh_store_t *st, const char *id, gh_apikey_t *out, gh_store_error_t *err)
{
    memset(out, 0, sizeof(*out));
    int rc = check_id(id, err);
    return rc != 0 ? rc : st->backend->key_get(st, id, out, NULL, err);
}

int gh_store_key_list(gh_store_t *st, const char *consumer, gh_apikey_t **keys, size_t *n,
                      gh_store_error_t *err)
{
    *keys = NULL;
    *n = 0;
    return st->backend->key_list(st, consumer, keys, n, err);
}

int gh_store_key_revoke(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err)
{
    int rc = check_id(id, err);
    return rc != 0 ? rc : st->backend->key_revoke(st, id, now, err);
}

int gh_store_key_rotate(gh_store_t *st, const char *id, const gh_apikey_rotate_t *opts, int64_t now,
                        char key_out[GH_APIKEY_LEN + 1], gh_apikey_t *rec, gh_store_error_t *err)
{
    gh_apikey_t old;
    uint8_t hash[GH_APIKEY_HASH_LEN];
    int rc;
    if (rec != NULL)
        memset(rec, 0, sizeof(*rec));
    if (opts->grace < 0 || opts->grace > MAX_LIFETIME_S)
        return gh_store_fail(err, -EINVAL, "the grace period is 0 seconds to 100 years");
    if (opts->expires_in < -1 || opts->expires_in > MAX_LIFETIME_S)
        return gh_store_fail(err, -EINVAL, "a key's lifetime is 1 second to 100 years");
    if ((rc = gh_store_key_get(st, id, &old, err)) != 0)
        return rc;
    if (old.revoked_at != 0) {
        rc = gh_store_fail(err, -EALREADY, "key %s is revoked: it cannot be rotated", id);
        goto out;
    }
    if (old.replaced_by[0] != '\0') {
        rc = gh_store_fail(err, -EALREADY,
                           "key %s was rotated already (replaced by %s): rotate that one", id,
                           old.replaced_by);
        goto out;
    }
    int64_t lifetime = opts->expires_in;
    if (lifetime == -1)
        lifetime = old.expires_at > old.created_at ? old.expires_at - old.created_at : 0;
    gh_apikey_t k = {
        .consumer = old.consumer,
        .plan = old.plan,
        .scopes = old.scopes,
        .description = old.description,
        .enabled = old.enabled,
        .source = GH_APIKEY_GENERATED,
        .created_at = now,
        .expires_at = lifetime ? now + lifetime : 0,
    };
    rc = -EEXIST;
    for (int i = 0; i < ID_ATTEMPTS && rc == -EEXIST; i++)
        if ((rc = make_key(key_out, &k, hash, err)) == 0)
            rc = st->backend->key_rotate(st, id, now + opts->grace, &k, hash, err);
    if (rc == -ESTALE)
        rc = gh_store_fail(err, -EAGAIN,
                           "key %s was revoked or rotated meanwhile; nothing was changed", id);
    if (rc == 0 && rec != NULL && gh_store_apikey_copy(rec, &k) != 0)
        rc = gh_store_fail(err, -ENOMEM, "out of memory (the key was rotated: %s)", k.id);
    if (rc != 0 && rc != -ENOMEM)
        OPENSSL_cleanse(key_out, GH_APIKEY_LEN + 1);
out:
    gh_apikey_dispose(&old);
    return rc;
}

int gh_store_key_import(gh_store_t *st, const gh_apikey_csv_row_t *rows, size_t n, int64_t now,
                        int dry_run, gh_store_import_result_t *res, gh_store_error_t *err)
{
    memset(res, 0, sizeof(*res));
    if (n == 0)
        return 0;
    gh_store_import_row_t *in = calloc(n, sizeof(*in));
    if (in == NULL)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    int rc = 0;
    /* The rows were checked by the parser; they are checked again here,
     * since rows may come from elsewhere (the admin API). */
    for (size_t i = 0; i < n && rc == 0; i++) {
        const gh_apikey_csv_row_t *r = &rows[i];
        gh_apikey_presented_t p;
        const char *why;
        if (gh_apikey_present(r->key, r->key_len, &p, &why) != 0)
            rc = gh_store_fail(err, -EINVAL, "line %u: Key is refused: %s", r->line, why);
        else if ((why = gh_apikey_check_consumer(r->consumer)) != NULL)
            rc = gh_store_fail(err, -EINVAL, "line %u: Name %s", r->line, why);
        else if ((why = gh_apikey_check_description(r->description)) != NULL)
            rc = gh_store_fail(err, -EINVAL, "line %u: Description %s", r->line, why);
        else if (r->plan != NULL && (why = gh_apikey_check_plan(r->plan)) != NULL)
            rc = gh_store_fail(err, -EINVAL, "line %u: the plan %s", r->line, why);
        if (rc != 0)
            break;
        in[i].line = r->line;
        memcpy(in[i].id, p.id, sizeof(in[i].id));
        memcpy(in[i].hash, p.hash, sizeof(in[i].hash));
        in[i].consumer = r->consumer;
        in[i].description = r->description ? r->description : "";
        in[i].plan = r->plan;
        in[i].enabled = r->enabled;
    }
    if (rc == 0)
        rc = st->backend->key_import(st, in, n, now, dry_run, res, err);
    free(in);
    return rc;
}

/* ---- OAuth clients ---- */

int gh_store_client_copy(gh_client_t *dst, const gh_client_t *src)
{
    *dst = *src;
    dst->name = dst->scopes = dst->audiences = dst->jwks = NULL;
    if (dup_opt(src->name, &dst->name) != 0 ||
        dup_opt(src->scopes ? src->scopes : "", &dst->scopes) != 0 ||
        dup_opt(src->audiences ? src->audiences : "", &dst->audiences) != 0 ||
        dup_opt(src->jwks, &dst->jwks) != 0) {
        gh_client_dispose(dst);
        return -ENOMEM;
    }
    return 0;
}

static int check_client_id(const char *id, gh_store_error_t *err)
{
    if (gh_client_id_valid(id))
        return 0;
    char shown[48];
    size_t n = 0;
    /* the id as given, printable ASCII only, cut: it may be anything */
    for (const char *p = id ? id : ""; *p != '\0' && n < 40; p++)
        shown[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    shown[n] = '\0';
    return gh_store_fail(err, -EINVAL,
                         "'%s' is not a client id (ghc_ and 16 characters of a-z and 2-7)", shown);
}

/* What a new client is registered with, checked and normalised into c
 * (its strings new, the spec's jwks borrowed). */
static int check_client_spec(const gh_client_spec_t *spec, gh_client_t *c, gh_store_error_t *err)
{
    const char *why;
    char buf[320];
    memset(c, 0, sizeof(*c));
    if ((why = gh_client_check_name(spec->name)) != NULL)
        return gh_store_fail(err, -EINVAL, "the name %s", why);
    if (spec->token_ttl < 0 || spec->token_ttl > GH_CLIENT_TTL_MAX)
        return gh_store_fail(err, -EINVAL,
                             "a client's token lifetime is 1 second to 1 day (0: the issuer's)");
    unsigned methods = spec->auth_methods;
    if (methods & ~(unsigned)GH_CLIENT_AUTH_ALL)
        return gh_store_fail(err, -EINVAL, "unknown authentication method bits");
    if (methods == 0)
        methods = gh_client_auth_default(spec->jwks != NULL);
    if ((methods & GH_CLIENT_AUTH_PRIVATE_KEY_JWT) && spec->jwks == NULL)
        return gh_store_fail(err, -EINVAL,
                             "private_key_jwt needs the client's public keys (a JWKS)");
    if (!(methods & GH_CLIENT_AUTH_PRIVATE_KEY_JWT) && spec->jwks != NULL)
        return gh_store_fail(err, -EINVAL,
                             "a JWKS is only for private_key_jwt, which the methods do not "
                             "include");
    if (spec->jwks != NULL &&
        gh_client_check_jwks(spec->jwks, strlen(spec->jwks), buf, sizeof(buf)) != 0)
        return gh_store_fail(err, -EINVAL, "%s", buf);
    if ((c->scopes = gh_client_scopes_normalize(spec->scopes, &why)) == NULL)
        return gh_store_fail(err, -EINVAL, "the scopes: %s", why);
    if ((c->audiences = gh_client_audiences_normalize(spec->audiences, &why)) == NULL) {
        free(c->scopes);
        c->scopes = NULL;
        return gh_store_fail(err, -EINVAL, "the audiences: %s", why);
    }
    c->name = (char *)spec->name;
    c->jwks = (char *)spec->jwks;
    c->auth_methods = methods;
    c->token_ttl = spec->token_ttl;
    c->has_secret = (methods & GH_CLIENT_AUTH_SECRET) != 0;
    return 0;
}

/* A new secret into c (its hash) and out; "" for a client without one. */
static int make_secret(gh_client_t *c, char out[GH_CLIENT_SECRET_LEN + 1], gh_store_error_t *err)
{
    out[0] = '\0';
    if (!c->has_secret)
        return 0;
    if (gh_client_secret_generate(out) != 0)
        return gh_store_fail(err, -EIO, "the random generator failed");
    gh_client_secret_hash(out, GH_CLIENT_SECRET_LEN, c->secret_hash);
    return 0;
}

int gh_store_client_create(gh_store_t *st, const gh_client_spec_t *spec, int64_t now,
                           char secret_out[GH_CLIENT_SECRET_LEN + 1], gh_client_t *rec,
                           gh_store_error_t *err)
{
    gh_client_t c;
    if (rec != NULL)
        memset(rec, 0, sizeof(*rec));
    secret_out[0] = '\0';
    int rc = check_client_spec(spec, &c, err);
    if (rc != 0)
        return rc;
    c.created_at = now;
    rc = -EEXIST;
    for (int i = 0; i < ID_ATTEMPTS && rc == -EEXIST; i++) {
        if (gh_client_id_generate(c.id) != 0 || make_secret(&c, secret_out, err) != 0) {
            rc = gh_store_fail(err, -EIO, "the random generator failed");
            break;
        }
        rc = st->backend->client_insert(st, &c, err);
    }
    if (rc == 0 && rec != NULL && gh_store_client_copy(rec, &c) != 0)
        rc = gh_store_fail(err, -ENOMEM, "out of memory (the client was made: %s)", c.id);
    if (rc != 0 && rc != -ENOMEM)
        OPENSSL_cleanse(secret_out, GH_CLIENT_SECRET_LEN + 1);
    free(c.scopes);
    free(c.audiences);
    OPENSSL_cleanse(c.secret_hash, sizeof(c.secret_hash));
    return rc;
}

int gh_store_client_get(gh_store_t *st, const char *id, gh_client_t *out, gh_store_error_t *err)
{
    memset(out, 0, sizeof(*out));
    int rc = check_client_id(id, err);
    return rc != 0 ? rc : st->backend->client_get(st, id, out, err);
}

int gh_store_client_list(gh_store_t *st, gh_client_t **out, size_t *n, gh_store_error_t *err)
{
    *out = NULL;
    *n = 0;
    return st->backend->client_list(st, out, n, err);
}

int gh_store_client_revoke(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err)
{
    int rc = check_client_id(id, err);
    return rc != 0 ? rc : st->backend->client_revoke(st, id, now, err);
}

int gh_store_client_rotate_secret(gh_store_t *st, const char *id, int64_t grace, int64_t now,
                                  char secret_out[GH_CLIENT_SECRET_LEN + 1], gh_client_t *rec,
                                  gh_store_error_t *err)
{
    gh_client_t c;
    uint8_t old[GH_CLIENT_HASH_LEN];
    if (rec != NULL)
        memset(rec, 0, sizeof(*rec));
    secret_out[0] = '\0';
    if (grace < 0 || grace > GH_CLIENT_GRACE_MAX)
        return gh_store_fail(err, -EINVAL, "the grace period is 0 seconds to 30 days");
    int rc = gh_store_client_get(st, id, &c, err);
    if (rc != 0)
        return rc;
    if (c.revoked_at != 0) {
        rc =
            gh_store_fail(err, -EALREADY, "client %s is revoked: its secret cannot be rotated", id);
        goto out;
    }
    if (!c.has_secret) {
        rc = gh_store_fail(err, -EINVAL,
                           "client %s has no secret (it authenticates with private_key_jwt only)",
                           id);
        goto out;
    }
    memcpy(old, c.secret_hash, sizeof(old));
    if (make_secret(&c, secret_out, err) != 0) {
        rc = -EIO;
        goto out;
    }
    /* The secret replaced keeps working for the grace; one replaced
     * before it (in an earlier grace) is dropped now. */
    if (grace > 0) {
        memcpy(c.prev_secret_hash, old, sizeof(old));
        c.prev_valid_until = now + grace;
    } else {
        memset(c.prev_secret_hash, 0, sizeof(c.prev_secret_hash));
        c.prev_valid_until = 0;
    }
    c.secret_rotated_at = now;
    rc = st->backend->client_rotate(st, &c, old, err);
    if (rc == -ESTALE)
        rc = gh_store_fail(err, -EAGAIN,
                           "client %s was revoked or its secret rotated meanwhile; nothing was "
                           "changed",
                           id);
    if (rc == 0 && rec != NULL && gh_store_client_copy(rec, &c) != 0)
        rc = gh_store_fail(err, -ENOMEM, "out of memory (the secret was rotated: %s)", id);
    if (rc != 0 && rc != -ENOMEM)
        OPENSSL_cleanse(secret_out, GH_CLIENT_SECRET_LEN + 1);
out:
    OPENSSL_cleanse(old, sizeof(old));
    gh_client_dispose(&c);
    return rc;
}

/* ---- revocations ---- */

int gh_revocation_jti_valid(const char *jti)
{
    size_t n = jti ? strnlen(jti, GH_REVOCATION_JTI_MAX + 1) : 0;
    if (n == 0 || n > GH_REVOCATION_JTI_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)jti[i] < 0x21 || (unsigned char)jti[i] > 0x7e)
            return 0;
    return 1;
}

static int check_revocation(const char *jti, int64_t exp, int64_t now, gh_store_error_t *err)
{
    if (!gh_revocation_jti_valid(jti))
        return gh_store_fail(err, -EINVAL,
                             "a jti is 1 to 128 characters of printable ASCII without spaces");
    if (exp > now && exp - now > GH_REVOCATION_EXP_MAX)
        return gh_store_fail(err, -EINVAL, "the token's exp is more than a year ahead");
    return 0;
}

int gh_store_revocation_add(gh_store_t *st, const char *jti, int64_t exp, int64_t now,
                            gh_store_error_t *err)
{
    int rc = check_revocation(jti, exp, now, err);
    if (rc != 0)
        return rc;
    if (exp <= now)
        return 0; /* expired: refused anyway, nothing to remember */
    return st->backend->revocation_add(st, jti, exp, now, err);
}

int gh_store_revocations_since(gh_store_t *st, uint64_t after, int64_t now, size_t max,
                               gh_revocation_t **out, size_t *n, uint64_t *next, int *more,
                               gh_store_error_t *err)
{
    *out = NULL;
    *n = 0;
    *next = after;
    *more = 0;
    if (max < 1 || max > GH_REVOCATIONS_MAX)
        return gh_store_fail(err, -EINVAL, "a revocation read takes 1 to %d entries",
                             GH_REVOCATIONS_MAX);
    gh_revocation_t *e = calloc(max, sizeof(*e));
    if (e == NULL)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    size_t got = 0, looked = 0;
    uint64_t last = 0, nx = after;
    int rc = st->backend->revocations_since(st, after, now, max, e, &got, &nx, &looked, &last, err);
    if (rc == 0 && last < after) {
        /* The numbers went back: this store is not the one the caller
         * read before (restored, or a Redis that lost its data). What it
         * holds now is read from the start; what the caller knew stays
         * refused on its side until it expires. */
        GH_LOG(GH_LOG_WARN, "store",
               "%s: the revocation feed restarted (last number %llu, the reader had %llu); "
               "reading it from the start",
               st->describe, (unsigned long long)last, (unsigned long long)after);
        got = looked = 0;
        nx = 0;
        rc = st->backend->revocations_since(st, 0, now, max, e, &got, &nx, &looked, &last, err);
    }
    if (rc != 0) {
        free(e);
        return rc;
    }
    if (got == 0) {
        free(e);
        e = NULL;
    }
    *out = e;
    *n = got;
    *next = nx;
    *more = looked == max;
    return 0;
}

int gh_store_revocations_purge(gh_store_t *st, int64_t now, gh_store_error_t *err)
{
    return st->backend->revocations_purge(st, now, err);
}

/* A write from a worker (a revocation, a claim on a backend without its
 * own async path): the synchronous call on the thread pool. */
typedef struct {
    uv_work_t work;
    gh_store_req_t *req;
    char jti[GH_REVOCATION_JTI_MAX + 1]; /* a revocation's (a claim's is req->jti) */
    int64_t exp;                         /* a revocation's */
    int status;
} pool_job_t;

static void pool_work(uv_work_t *w)
{
    pool_job_t *j = w->data;
    gh_store_req_t *req = j->req;
    gh_store_error_t err;
    if (req->kind == GH_STORE_REQ_CLAIM) {
        j->status =
            gh_store_jti_claim(req->store, req->client_id, req->jti, req->until, req->now, &err);
        if (j->status != 0 && j->status != -EEXIST)
            GH_LOG(GH_LOG_WARN, "store", "%s: claiming a client assertion of %s failed: %s",
                   gh_store_describe(req->store), req->client_id, err.msg);
        return;
    }
    j->status = gh_store_revocation_add(req->store, j->jti, j->exp, req->now, &err);
    if (j->status != 0 && j->status != -EALREADY)
        GH_LOG(GH_LOG_WARN, "store", "%s: revoking a token failed: %s",
               gh_store_describe(req->store), err.msg);
}

static void pool_done(uv_work_t *w, int status)
{
    pool_job_t *j = w->data;
    req_deliver(j->req, status == UV_ECANCELED ? -ECANCELED : j->status, NULL, NULL);
}

static void pool_job_cancel(gh_store_req_t *req)
{
    pool_job_t *j = gh_store_req_backend(req);
    /* Succeeds only while queued; a running job finishes, its answer dropped. */
    uv_cancel((uv_req_t *)&j->work);
}

/* Queues req (its job's fields set) on loop's thread pool: 0, or the
 * failure (req dropped, no callback). */
static int pool_start(uv_loop_t *loop, gh_store_req_t *req)
{
    pool_job_t *j = gh_store_req_backend(req);
    j->req = req;
    j->work.data = j;
    req->on_pool = 1;
    int rc = uv_queue_work(loop, &j->work, pool_work, pool_done);
    if (rc != 0)
        req_drop(req);
    return rc;
}

int gh_store_revocation_add_async(gh_store_t *st, uv_loop_t *loop, const char *jti, int64_t exp,
                                  int64_t now, gh_store_status_cb cb, void *arg,
                                  gh_store_req_t **out)
{
    int rc;
    *out = NULL;
    if (check_revocation(jti, exp, now, NULL) != 0)
        return -EINVAL;
    gh_store_req_t *req = req_new(st, GH_STORE_REQ_REVOKE, sizeof(pool_job_t), arg, &rc);
    if (req == NULL)
        return rc;
    req->status_cb = cb;
    req->now = now;
    pool_job_t *j = gh_store_req_backend(req);
    snprintf(j->jti, sizeof(j->jti), "%s", jti);
    j->exp = exp;
    if ((rc = pool_start(loop, req)) != 0)
        return rc;
    *out = req;
    return 0;
}

/* ---- client-assertion claims ---- */

int gh_store_jti_valid(const char *jti)
{
    size_t n = jti ? strnlen(jti, GH_STORE_JTI_MAX + 1) : 0;
    if (n == 0 || n > GH_STORE_JTI_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)jti[i] < 0x20 || (unsigned char)jti[i] > 0x7e)
            return 0;
    return 1;
}

static int check_claim(const char *client_id, const char *jti, int64_t until, int64_t now,
                       gh_store_error_t *err)
{
    if (!gh_client_id_valid(client_id))
        return gh_store_fail(err, -EINVAL, "'%.40s' is not a client id",
                             client_id ? client_id : "");
    if (!gh_store_jti_valid(jti))
        return gh_store_fail(err, -EINVAL, "a claimed jti is 1 to %d characters of printable ASCII",
                             GH_STORE_JTI_MAX);
    if (until > now && until - now > GH_STORE_JTI_UNTIL_MAX)
        return gh_store_fail(err, -EINVAL, "a claim lasts at most a day");
    return 0;
}

int gh_store_jti_claim(gh_store_t *st, const char *client_id, const char *jti, int64_t until,
                       int64_t now, gh_store_error_t *err)
{
    int rc = check_claim(client_id, jti, until, now, err);
    if (rc != 0)
        return rc;
    if (until <= now)
        return 0; /* dead already: nothing could replay it */
    return st->backend->jti_claim(st, client_id, jti, until, now, err);
}

int gh_store_jti_claim_async(gh_store_t *st, uv_loop_t *loop, const char *client_id,
                             const char *jti, int64_t until, int64_t now, gh_store_status_cb cb,
                             void *arg, gh_store_req_t **out)
{
    int rc;
    *out = NULL;
    if (check_claim(client_id, jti, until, now, NULL) != 0)
        return -EINVAL;
    gh_store_req_t *req = req_new(st, GH_STORE_REQ_CLAIM, sizeof(pool_job_t), arg, &rc);
    if (req == NULL)
        return rc;
    req->status_cb = cb;
    memcpy(req->client_id, client_id, GH_CLIENT_ID_LEN + 1);
    snprintf(req->jti, sizeof(req->jti), "%s", jti);
    req->until = until;
    req->now = now;
    /* A dead claim (until <= now) takes the thread pool, which answers 0
     * without a store call: never an answer from inside this call. */
    if (st->backend->jti_claim_start != NULL && until > now) {
        rc = st->backend->jti_claim_start(st, loop, req);
        if (rc != 0) {
            req_drop(req);
            return rc;
        }
    } else if ((rc = pool_start(loop, req)) != 0) {
        return rc;
    }
    *out = req;
    return 0;
}
