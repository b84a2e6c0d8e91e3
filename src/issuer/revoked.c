/*
 * The revoked-token set (gatehouse/revoked.h): an open-addressing table of
 * (jti, exp) under a read-write lock, fed by a poll of the store's
 * revocation feed on the thread pool.
 *
 * The table doubles when half full, up to MAX_ENTRIES live entries (a
 * revocation past that is refused and logged: revoking a million live
 * tokens is a key rotation, not a list). Expired entries are dropped when
 * the table is rebuilt, which each poll does when a tenth of it has
 * expired.
 */
#include <gatehouse/revoked.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include <gatehouse/log.h>
#include <gatehouse/store.h>

#define MAX_ENTRIES (1u << 20)
#define MIN_CAP 1024u

typedef struct {
    uint64_t h; /* 0: empty */
    int64_t exp;
    char *jti; /* owned */
    size_t len;
} entry_t;

typedef struct {
    entry_t *v;
    size_t cap, used;
} table_t;

static uv_rwlock_t lock;
static table_t tab; /* under lock */
static uint64_t seed[2];
static uv_loop_t *loop;
static uv_timer_t timer;
static int timer_on, stopping;
static uint64_t poll_ms;
/* The poll job (main thread between polls; the pool during one). */
static struct {
    uv_work_t work;
    int running;
    /* The store polled last, kept referenced between polls: the cursor is
     * a number in its feed only. Another store (a reload that changed the
     * `store` section) numbers its own revocations, and those at or below
     * the cursor would never be read: the cursor starts again at 0. Held,
     * not only compared, so that a new store cannot take its address. */
    gh_store_t *st;
    uint64_t cursor; /* st's last sequence number seen */
    gh_revocation_t *got;
    size_t n;
    int64_t now;
    int rc;
    char err[256];
} job;
static uint64_t polls;
static uint64_t generation; /* atomic */
static char last_error[256];

/* ---- the table ---- */

static uint64_t hash(const char *s, size_t n)
{
    /* FNV-1a keyed by a random seed: jtis are chosen by whoever minted (us)
     * but a revocation request names any token, so no one can aim collisions. */
    uint64_t h = 0xcbf29ce484222325ULL ^ seed[0];
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    h ^= seed[1];
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h != 0 ? h : 1;
}

static entry_t *find(const table_t *t, uint64_t h, const char *jti, size_t len)
{
    if (t->cap == 0)
        return NULL;
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        entry_t *e = &t->v[i];
        if (e->h == 0)
            return NULL;
        if (e->h == h && e->len == len && memcmp(e->jti, jti, len) == 0)
            return e;
    }
}

static void put(table_t *t, entry_t e)
{
    for (size_t i = e.h & (t->cap - 1);; i = (i + 1) & (t->cap - 1))
        if (t->v[i].h == 0) {
            t->v[i] = e;
            t->used++;
            return;
        }
}

/* Rebuilds t at cap, dropping entries expired at now. -ENOMEM: t unchanged. */
static int rebuild(table_t *t, size_t cap, int64_t now)
{
    table_t n = {calloc(cap, sizeof(entry_t)), cap, 0};
    if (n.v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        entry_t *e = &t->v[i];
        if (e->h == 0)
            continue;
        if (e->exp <= now)
            free(e->jti);
        else
            put(&n, *e);
    }
    free(t->v);
    *t = n;
    return 0;
}

/* Under the write lock. */
static int add_locked(const char *jti, size_t len, int64_t exp, int64_t now)
{
    if (exp <= now)
        return 0;
    uint64_t h = hash(jti, len);
    entry_t *e = find(&tab, h, jti, len);
    if (e != NULL) {
        if (exp > e->exp)
            e->exp = exp;
        return 0;
    }
    if (tab.used + 1 > tab.cap / 2) {
        size_t cap = tab.cap ? tab.cap * 2 : MIN_CAP;
        if (tab.used >= MAX_ENTRIES || rebuild(&tab, cap, now) != 0)
            return tab.used >= MAX_ENTRIES ? -ENOSPC : -ENOMEM;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, jti, len);
    copy[len] = '\0';
    put(&tab, (entry_t){h, exp, copy, len});
    __atomic_add_fetch(&generation, 1, __ATOMIC_RELEASE);
    /* cppcheck-suppress memleak ; put stored copy in the table, which frees it */
    return 0;
}

uint64_t gh_revoked_generation(void)
{
    return __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
}

int gh_revoked_has(const char *jti, size_t len, int64_t now)
{
    if (!timer_on)
        return 0; /* no issuer in this process: nothing is known revoked */
    uv_rwlock_rdlock(&lock);
    const entry_t *e = tab.used > 0 ? find(&tab, hash(jti, len), jti, len) : NULL;
    int r = e != NULL && now < e->exp;
    uv_rwlock_rdunlock(&lock);
    return r;
}

int gh_revoked_add(const char *jti, size_t len, int64_t exp)
{
    if (!timer_on)
        return -ENOSPC;
    uv_rwlock_wrlock(&lock);
    int rc = add_locked(jti, len, exp, (int64_t)time(NULL));
    uv_rwlock_wrunlock(&lock);
    return rc;
}

/* ---- the poll ---- */

static void poll_work(uv_work_t *w)
{
    (void)w;
    gh_store_error_t err = {""};
    uint64_t next = job.cursor;
    int more = 1;
    job.got = NULL;
    job.n = 0;
    job.rc = 0;
    /* At most a few pages per poll: the rest comes at the next one. */
    for (int page = 0; page < 8 && more && job.rc == 0; page++) {
        gh_revocation_t *got = NULL;
        size_t n = 0;
        job.rc = gh_store_revocations_since(job.st, next, job.now, GH_REVOCATIONS_MAX, &got, &n,
                                            &next, &more, &err);
        if (job.rc != 0)
            break;
        gh_revocation_t *all = realloc(job.got, (job.n + n + 1) * sizeof(*all));
        if (all == NULL) {
            free(got);
            job.rc = -ENOMEM;
            snprintf(err.msg, sizeof(err.msg), "out of memory");
            break;
        }
        if (n > 0)
            memcpy(all + job.n, got, n * sizeof(*got));
        job.got = all;
        job.n += n;
        free(got);
        job.cursor = next;
    }
    snprintf(job.err, sizeof(job.err), "%s", job.rc != 0 ? err.msg : "");
}

static void schedule(void);

static void poll_done(uv_work_t *w, int status)
{
    (void)w;
    job.running = 0;
    if (stopping) {
        gh_store_unref(job.st);
        job.st = NULL;
    }
    polls++;
    if (status != 0 || job.rc != 0) {
        const char *e = status != 0 ? "cancelled" : job.err;
        if (strcmp(e, last_error) != 0)
            GH_LOG(GH_LOG_ERROR, "issuer",
                   "cannot read revoked tokens from the store: %s (keeping the %zu known)", e,
                   tab.used);
        snprintf(last_error, sizeof(last_error), "%s", e);
    } else {
        if (last_error[0] != '\0')
            GH_LOG(GH_LOG_INFO, "issuer", "revoked tokens are read from the store again");
        last_error[0] = '\0';
    }
    size_t refused = 0;
    uv_rwlock_wrlock(&lock);
    for (size_t i = 0; i < job.n; i++)
        if (add_locked(job.got[i].jti, strlen(job.got[i].jti), job.got[i].exp, job.now) != 0)
            refused++;
    /* Drop what expired when there is enough of it to be worth a pass. */
    size_t expired = 0;
    for (size_t i = 0; i < tab.cap && tab.used > 0; i++)
        expired += tab.v[i].h != 0 && tab.v[i].exp <= job.now;
    if (expired > 0 && expired * 10 >= tab.used)
        rebuild(&tab, tab.cap, job.now);
    uv_rwlock_wrunlock(&lock);
    if (refused > 0)
        GH_LOG(GH_LOG_ERROR, "issuer", "%zu revoked tokens not kept: the set is full or memory is",
               refused);
    free(job.got);
    job.got = NULL;
    job.n = 0;
    schedule();
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
    if (job.running || stopping)
        return;
    gh_store_error_t err = {""};
    gh_store_t *st = gh_store_current_get(&err);
    if (st == NULL) {
        if (strcmp(err.msg, last_error) != 0)
            GH_LOG(GH_LOG_ERROR, "issuer", "cannot open the store for revoked tokens: %s", err.msg);
        snprintf(last_error, sizeof(last_error), "%s", err.msg);
        schedule();
        return;
    }
    if (st != job.st) {
        gh_store_unref(job.st);
        job.st = st; /* gh_store_current_get's reference, kept until the store changes */
        job.cursor = 0;
    } else {
        gh_store_unref(st);
    }
    job.now = (int64_t)time(NULL);
    job.running = 1;
    if (uv_queue_work(loop, &job.work, poll_work, poll_done) != 0) {
        job.running = 0;
        schedule();
    }
}

static void schedule(void)
{
    if (timer_on && !stopping && poll_ms > 0)
        uv_timer_start(&timer, on_timer, poll_ms, 0);
}

void gh_revoked_init(uv_loop_t *main_loop)
{
    loop = main_loop;
    uv_rwlock_init(&lock);
    if (RAND_bytes((unsigned char *)seed, sizeof(seed)) != 1)
        seed[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    uv_timer_init(loop, &timer);
    timer_on = 1;
}

void gh_revoked_configure(uint64_t ms)
{
    if (!timer_on)
        return;
    int first = poll_ms == 0 && ms > 0;
    poll_ms = ms;
    if (ms == 0) {
        uv_timer_stop(&timer);
        return;
    }
    if (first && !job.running)
        uv_timer_start(&timer, on_timer, 0, 0); /* learn what is revoked at once */
}

void gh_revoked_status(size_t *entries, uint64_t *n, const char **error)
{
    *entries = 0;
    if (timer_on) {
        uv_rwlock_rdlock(&lock);
        *entries = tab.used;
        uv_rwlock_rdunlock(&lock);
    }
    *n = polls;
    *error = last_error;
}

static void closed(uv_handle_t *h)
{
    (void)h;
}

void gh_revoked_stop(void)
{
    if (!timer_on || stopping)
        return;
    stopping = 1;
    if (job.running) {
        uv_cancel((uv_req_t *)&job.work); /* poll_done drops the store */
    } else {
        gh_store_unref(job.st);
        job.st = NULL;
    }
    uv_close((uv_handle_t *)&timer, closed);
}

void gh_revoked_free(void)
{
    for (size_t i = 0; i < tab.cap; i++)
        free(tab.v[i].jti);
    free(tab.v);
    memset(&tab, 0, sizeof(tab));
    if (timer_on)
        uv_rwlock_destroy(&lock);
    timer_on = 0;
    stopping = 0;
    poll_ms = 0;
    gh_store_unref(job.st);
    job.st = NULL;
    job.cursor = 0;
}
