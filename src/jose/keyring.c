/* Keyrings: see include/gatehouse/keyring.h. */
#include <gatehouse/keyring.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gatehouse/file.h>
#include <gatehouse/log.h>
#include <gatehouse/redact.h>
#include <gatehouse/sink.h>

enum { K_IDLE = 0, K_FETCHING };

struct gh_keyring_s {
    gh_keyring_t *next;
    unsigned refs; /* atomic */
    char *name, *issuer;
    gh_jwks_source_t source;
    char *inline_text, *file, *uri;
    gh_jwks_opts_t opts;
    int insecure_http; /* fixed at creation: part of the keyring's identity */
    uint64_t refresh_ms, min_refresh_ms, max_refresh_ms, timeout_ms;

    uv_mutex_t lock; /* guards current against a swap between load and ref */
    gh_jwks_t *current;
    uint64_t generation;   /* atomic; of current */
    uint64_t loaded_ms;    /* atomic; wall clock of the last successful load */
    unsigned want_refresh; /* atomic; set by workers */

    /* Main thread only. */
    int state;
    int running; /* timers armed */
    uv_timer_t timer;
    uv_fs_poll_t poll;
    uv_work_t work;
    uint64_t last_fetch_ms; /* monotonic */
    unsigned failures;
    char last_error[600];
    uint64_t fetch_ok, fetch_failed, fetch_invalid; /* atomic for the metrics reader */
    /* The running fetch's settings, copied from the fields above when it
     * starts: a reload may rewrite those while a pool thread reads these. */
    uint64_t job_timeout_ms;
    int job_insecure;
    /* Results of the thread-pool fetch. */
    char *body;
    size_t body_len;
    long max_age; /* -1: none */
    char fetch_err[540];
};

static uv_loop_t *loop;
static uv_async_t wake;
static gh_keyring_t *all;
static int shutting_down;
/* Atomic: set by the main thread at shutdown, read by fetches in the pool,
 * which abort at their next progress callback (curl calls it about once a
 * second even when the peer sends nothing). */
static int cancel_fetches;

static uint64_t now_ms(void)
{
    return uv_now(loop);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- fetching (thread pool) ---- */

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return __atomic_load_n(&cancel_fetches, __ATOMIC_ACQUIRE) ? 1 : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    long *max_age = arg;
    size_t k = size * n;
    if (k > 14 && strncasecmp(p, "cache-control:", 14) == 0) {
        char line[512];
        size_t l = k < sizeof(line) - 1 ? k : sizeof(line) - 1;
        memcpy(line, p, l);
        line[l] = '\0';
        for (char *c = line; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        char *m = strstr(line, "max-age=");
        if (m != NULL && strstr(line, "no-store") == NULL) {
            /* A year is past any max_refresh_interval; clamping here keeps
             * the seconds-to-milliseconds product from wrapping around
             * ("max-age=99999999999999999" would otherwise come out small). */
            long v = strtol(m + 8, NULL, 10);
            *max_age = v < 0 ? -1 : v > 31536000 ? 31536000 : v;
        }
    }
    return k;
}

/* Starts an error message (these reach the log and /ready) with url as it
 * may be shown: userinfo and query values redacted. Returns the length
 * written, for the rest of the message to follow. */
static size_t err_url(char *err, size_t cap, const char *url)
{
    char *r = gh_url_redact(url);
    snprintf(err, cap, "%s", r != NULL ? r : "(URL not shown: out of memory)");
    free(r);
    return strlen(err);
}

/* GET url into *out; returns 0 or -1 with err. */
static int http_get(const gh_keyring_t *k, const char *url, gh_sink_t *out, long *max_age,
                    char *err, size_t cap)
{
    CURL *c = curl_easy_init();
    char ebuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    int rc = -1;
    if (c == NULL) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)k->job_timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)k->job_timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, k->job_insecure ? "http,https" : "https");
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "gatehouse/" GH_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, gh_sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, max_age);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    CURLcode r = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    size_t n = out->too_big || r != CURLE_OK || status != 200 ? err_url(err, cap, url) : 0;
    if (out->too_big)
        snprintf(err + n, cap - n, ": document larger than %d bytes", GH_JWKS_MAX_DOC);
    else if (r == CURLE_ABORTED_BY_CALLBACK)
        snprintf(err + n, cap - n, ": cancelled (shutting down)");
    else if (r != CURLE_OK)
        snprintf(err + n, cap - n, ": %s", ebuf[0] ? ebuf : curl_easy_strerror(r));
    else if (status != 200)
        snprintf(err + n, cap - n, ": HTTP status %ld", status);
    else
        rc = 0;
    curl_easy_cleanup(c);
    return rc;
}

/* RFC 8414 section 3.1: the well-known part goes between the issuer's
 * origin and its path ("https://as.example/t1" ->
 * "https://as.example/.well-known/oauth-authorization-server/t1"). */
static int rfc8414_url(const char *issuer, char *out, size_t cap)
{
    const char *scheme = strstr(issuer, "://");
    if (scheme == NULL)
        return -1;
    const char *path = strchr(scheme + 3, '/');
    size_t origin = path ? (size_t)(path - issuer) : strlen(issuer);
    size_t plen = path ? strlen(path) : 0;
    if (plen > 0 && path[plen - 1] == '/')
        plen--; /* "https://as.example/" has no path */
    int n = snprintf(out, cap, "%.*s/.well-known/oauth-authorization-server%.*s", (int)origin,
                     issuer, (int)plen, path ? path : "");
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Whether the jwks_uri ju, named by the metadata document at url, may be
 * fetched: 0, or -1 with err. A plain-http jwks_uri would undo the TLS that
 * fetched the document naming it, so it is refused from an https document
 * whatever insecure_http says, and from an http one unless it is set. */
static int jwks_uri_usable(const char *url, const char *ju, int insecure, char *err, size_t cap)
{
    if (ju == NULL || (strncmp(ju, "https://", 8) != 0 && strncmp(ju, "http://", 7) != 0)) {
        size_t n = err_url(err, cap, url);
        snprintf(err + n, cap - n, ": no usable jwks_uri");
        return -1;
    }
    if (strncmp(ju, "http://", 7) == 0 && (!insecure || strncmp(url, "https://", 8) == 0)) {
        size_t n = err_url(err, cap, url);
        n += (size_t)snprintf(err + n, cap - n, ": jwks_uri '");
        n = n < cap ? n + err_url(err + n, cap - n, ju) : n;
        if (n < cap)
            snprintf(err + n, cap - n, "' is plain http%s",
                     insecure ? " in an https document" : " (insecure_http is not set)");
        return -1;
    }
    return 0;
}

/* Reads one metadata document. OpenID Connect Discovery 1.0 section 4.3 /
 * RFC 8414 section 3.3: its issuer must equal the configured one, or a
 * compromised or confused metadata host could hand out another issuer's
 * keys. */
static int read_metadata(gh_keyring_t *k, const char *url, char **jwks_uri, char *err, size_t cap)
{
    gh_sink_t doc = {NULL, 0, GH_JWKS_MAX_DOC, 0};
    long unused = -1;
    if (http_get(k, url, &doc, &unused, err, cap) < 0) {
        free(doc.buf);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb(doc.buf ? doc.buf : "", doc.len, JSON_REJECT_DUPLICATES, &je);
    free(doc.buf);
    if (root == NULL || !json_is_object(root)) {
        size_t n = err_url(err, cap, url);
        snprintf(err + n, cap - n, ": not a JSON object");
        json_decref(root);
        return -1;
    }
    const char *iss = json_string_value(json_object_get(root, "issuer"));
    const char *ju = json_string_value(json_object_get(root, "jwks_uri"));
    int rc = -1;
    if (iss == NULL || strcmp(iss, k->issuer) != 0) {
        size_t n = err_url(err, cap, url);
        snprintf(err + n, cap - n, ": issuer '%s' is not '%s'", iss ? iss : "(none)", k->issuer);
    } else if (jwks_uri_usable(url, ju, k->job_insecure, err, cap) == 0 &&
               (*jwks_uri = strdup(ju)) != NULL)
        rc = 0;
    json_decref(root);
    return rc;
}

/* The issuer's jwks_uri: from its OpenID Connect configuration (k->uri),
 * else from its RFC 8414 authorization server metadata. Redirects are not
 * followed. When both fail, err says why for each. */
static int discover(gh_keyring_t *k, char **jwks_uri, char *err, size_t cap)
{
    char oidc_err[256], url[2048];
    if (read_metadata(k, k->uri, jwks_uri, oidc_err, sizeof(oidc_err)) == 0)
        return 0;
    if (rfc8414_url(k->issuer, url, sizeof(url)) < 0) {
        snprintf(err, cap, "%s", oidc_err);
        return -1;
    }
    char oauth_err[256];
    if (read_metadata(k, url, jwks_uri, oauth_err, sizeof(oauth_err)) == 0)
        return 0;
    snprintf(err, cap, "%s; and %s", oidc_err, oauth_err);
    return -1;
}

static void fetch_work(uv_work_t *w)
{
    gh_keyring_t *k = w->data;
    gh_sink_t s = {NULL, 0, GH_JWKS_MAX_DOC, 0};
    int rc;
    k->max_age = -1;
    k->fetch_err[0] = '\0';
    if (k->source == GH_JWKS_FILE) {
        s.buf = gh_file_read(k->file, GH_JWKS_MAX_DOC, &s.len);
        rc = s.buf != NULL ? 0 : -1;
        if (rc < 0)
            snprintf(k->fetch_err, sizeof(k->fetch_err), "%s: %s", k->file,
                     errno == EFBIG ? "larger than the 1 MiB key set limit"
                                    : gh_file_strerror(errno));
    } else if (k->source == GH_JWKS_DISCOVERY) {
        char *ju = NULL;
        rc = discover(k, &ju, k->fetch_err, sizeof(k->fetch_err));
        if (rc == 0 && __atomic_load_n(&cancel_fetches, __ATOMIC_ACQUIRE)) {
            size_t n = err_url(k->fetch_err, sizeof(k->fetch_err), ju);
            snprintf(k->fetch_err + n, sizeof(k->fetch_err) - n, ": cancelled (shutting down)");
            rc = -1;
        } else if (rc == 0)
            rc = http_get(k, ju, &s, &k->max_age, k->fetch_err, sizeof(k->fetch_err));
        free(ju);
    } else {
        rc = http_get(k, k->uri, &s, &k->max_age, k->fetch_err, sizeof(k->fetch_err));
    }
    if (rc < 0) {
        free(s.buf);
        s.buf = NULL;
        s.len = 0;
    }
    k->body = s.buf;
    k->body_len = s.len;
}

/* ---- main thread ---- */

static void schedule(gh_keyring_t *k, uint64_t ms);

/* Installs a parsed set; the old one goes when its last reader lets go. A
 * set holding the same keys as the current one is dropped instead: the
 * generation (and with it every worker's verified-token cache) changes only
 * when the keys do. Returns whether the keys changed. */
static int install(gh_keyring_t *k, gh_jwks_t *set)
{
    __atomic_store_n(&k->loaded_ms, wall_ms(), __ATOMIC_RELAXED);
    k->last_error[0] = '\0';
    if (gh_jwks_same_keys(k->current, set)) {
        gh_jwks_unref(set);
        return 0;
    }
    uint64_t gen = __atomic_load_n(&k->generation, __ATOMIC_RELAXED) + 1;
    gh_jwks_set_generation(set, gen);
    uv_mutex_lock(&k->lock);
    gh_jwks_t *old = k->current;
    k->current = set;
    __atomic_store_n(&k->generation, gen, __ATOMIC_RELEASE);
    uv_mutex_unlock(&k->lock);
    gh_jwks_unref(old);
    for (size_t i = 0; i < gh_jwks_warning_count(set); i++)
        GH_LOG(GH_LOG_WARN, "jwks", "provider '%s': %s", k->name, gh_jwks_warning(set, i));
    return 1;
}

/* Parses text as the new set. Returns 0, or -1 (error logged, old set kept). */
static int load_text(gh_keyring_t *k, const char *text, size_t len)
{
    char err[256];
    gh_jwks_t *set = gh_jwks_parse(text, len, &k->opts, err, sizeof(err));
    if (set == NULL) {
        snprintf(k->last_error, sizeof(k->last_error), "invalid key set: %s", err);
        __atomic_add_fetch(&k->fetch_invalid, 1, __ATOMIC_RELAXED);
        GH_LOG(GH_LOG_ERROR, "jwks", "provider '%s': %s; %s", k->name, k->last_error,
               k->current ? "keeping the previous keys" : "no keys yet");
        return -1;
    }
    if (k->insecure_http && (k->source == GH_JWKS_URI || k->source == GH_JWKS_DISCOVERY))
        GH_LOG(GH_LOG_WARN, "jwks",
               "provider '%s': keys fetched over plain http (insecure_http: true): anyone on "
               "the path can replace them",
               k->name);
    size_t n = gh_jwks_count(set);
    if (install(k, set))
        GH_LOG(GH_LOG_INFO, "jwks", "provider '%s': %zu keys loaded (generation %llu)", k->name, n,
               (unsigned long long)k->generation);
    else
        GH_LOG(GH_LOG_INFO, "jwks", "provider '%s': %zu keys unchanged (generation %llu)", k->name,
               n, (unsigned long long)k->generation);
    return 0;
}

static uint64_t backoff_ms(gh_keyring_t *k)
{
    /* 1 s, 2 s, 4 s ... up to the refresh interval. */
    uint64_t ms = 1000;
    for (unsigned i = 1; i < k->failures && ms < k->refresh_ms; i++)
        ms *= 2;
    return ms < k->refresh_ms ? ms : k->refresh_ms;
}

static void fetch_done(uv_work_t *w, int status)
{
    gh_keyring_t *k = w->data;
    k->state = K_IDLE;
    int ok = status == 0 && k->body != NULL;
    if (!ok && shutting_down) {
        GH_LOG(GH_LOG_INFO, "jwks", "provider '%s': fetch cancelled: shutting down", k->name);
        free(k->body);
        k->body = NULL;
        return;
    }
    if (!ok) {
        snprintf(k->last_error, sizeof(k->last_error), "fetch failed: %s",
                 k->fetch_err[0] ? k->fetch_err : "cancelled");
        __atomic_add_fetch(&k->fetch_failed, 1, __ATOMIC_RELAXED);
        GH_LOG(GH_LOG_ERROR, "jwks", "provider '%s': %s; %s", k->name, k->last_error,
               k->current ? "keeping the previous keys" : "no keys yet");
    } else {
        ok = load_text(k, k->body, k->body_len) == 0;
        if (ok)
            __atomic_add_fetch(&k->fetch_ok, 1, __ATOMIC_RELAXED);
    }
    free(k->body);
    k->body = NULL;
    if (k->source == GH_JWKS_FILE)
        return; /* the file poll drives files */
    if (ok) {
        k->failures = 0;
        uint64_t next = k->refresh_ms;
        if (k->max_age >= 0) {
            next = (uint64_t)k->max_age * 1000;
            if (next < k->min_refresh_ms)
                next = k->min_refresh_ms;
            if (next > k->max_refresh_ms)
                next = k->max_refresh_ms;
        }
        schedule(k, next);
    } else {
        k->failures++;
        schedule(k, backoff_ms(k));
    }
}

static void fetch_start(gh_keyring_t *k)
{
    if (k->state == K_FETCHING || shutting_down)
        return;
    k->state = K_FETCHING;
    k->last_fetch_ms = now_ms();
    k->job_timeout_ms = k->timeout_ms;
    k->job_insecure = k->insecure_http;
    k->work.data = k;
    if (uv_queue_work(loop, &k->work, fetch_work, fetch_done) != 0) {
        k->state = K_IDLE;
        schedule(k, backoff_ms(k));
    }
}

static void on_timer(uv_timer_t *t)
{
    gh_keyring_t *k = t->data;
    if (__atomic_load_n(&k->refs, __ATOMIC_ACQUIRE) == 0) {
        k->running = 0; /* nobody uses it; acquire restarts it */
        return;
    }
    fetch_start(k);
}

static void schedule(gh_keyring_t *k, uint64_t ms)
{
    if (shutting_down)
        return;
    uv_timer_start(&k->timer, on_timer, ms, 0);
}

static void on_file_change(uv_fs_poll_t *h, int status, const uv_stat_t *prev,
                           const uv_stat_t *curr)
{
    gh_keyring_t *k = h->data;
    (void)prev;
    (void)curr;
    if (status < 0)
        return; /* gone for now: keep the keys we have */
    if (__atomic_load_n(&k->refs, __ATOMIC_ACQUIRE) > 0)
        fetch_start(k);
}

static void start(gh_keyring_t *k)
{
    k->running = 1;
    switch (k->source) {
    case GH_JWKS_INLINE:
        if (k->current == NULL)
            load_text(k, k->inline_text, strlen(k->inline_text));
        break;
    case GH_JWKS_FILE:
        fetch_start(k);
        uv_fs_poll_start(&k->poll, on_file_change, k->file, 1000);
        break;
    case GH_JWKS_URI:
    case GH_JWKS_DISCOVERY:
        fetch_start(k);
        break;
    case GH_JWKS_SELF: /* never acquired: the JWT filter reads the issuer's keys */
        break;
    }
}

static void on_wake(uv_async_t *a)
{
    (void)a;
    for (gh_keyring_t *k = all; k != NULL; k = k->next) {
        if (!__atomic_exchange_n(&k->want_refresh, 0, __ATOMIC_ACQ_REL))
            continue;
        if (k->source != GH_JWKS_URI && k->source != GH_JWKS_DISCOVERY)
            continue;
        /* Unknown kids are attacker-controlled: at most one refetch per
         * min_refresh_interval, whatever the rate of such tokens. */
        if (k->state == K_IDLE && now_ms() - k->last_fetch_ms >= k->min_refresh_ms) {
            GH_LOG(GH_LOG_INFO, "jwks", "provider '%s': unknown kid, refreshing keys", k->name);
            uv_timer_stop(&k->timer);
            fetch_start(k);
        }
    }
}

void gh_keyring_init(uv_loop_t *l)
{
    loop = l;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    uv_async_init(loop, &wake, on_wake);
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int matches(const gh_keyring_t *k, const gh_jwt_provider_conf_t *p)
{
    return strcmp(k->name, p->name) == 0 && strcmp(k->issuer, p->issuer) == 0 &&
           k->source == p->jwks_source && same_str(k->inline_text, p->jwks_inline) &&
           same_str(k->file, p->jwks_file) && same_str(k->uri, p->jwks_uri) &&
           k->opts.allow_symmetric == p->allow_symmetric && k->insecure_http == p->insecure_http;
}

static void keyring_free(gh_keyring_t *k)
{
    free(k->name);
    free(k->issuer);
    free(k->inline_text);
    free(k->file);
    free(k->uri);
    gh_jwks_unref(k->current);
    uv_mutex_destroy(&k->lock);
    free(k);
}

static char *dup_or_null(const char *s, int *oom)
{
    char *d = s ? strdup(s) : NULL;
    if (s != NULL && d == NULL)
        *oom = 1;
    return d;
}

gh_keyring_t *gh_keyring_acquire(const gh_jwt_provider_conf_t *p)
{
    gh_keyring_t *k;
    for (k = all; k != NULL; k = k->next)
        if (matches(k, p))
            break;
    if (k == NULL) {
        int oom = 0;
        k = calloc(1, sizeof(*k));
        if (k == NULL)
            return NULL;
        k->name = dup_or_null(p->name, &oom);
        k->issuer = dup_or_null(p->issuer, &oom);
        k->inline_text = dup_or_null(p->jwks_inline, &oom);
        k->file = dup_or_null(p->jwks_file, &oom);
        k->uri = dup_or_null(p->jwks_uri, &oom);
        uv_mutex_init(&k->lock);
        if (oom) {
            keyring_free(k);
            return NULL;
        }
        k->source = p->jwks_source;
        k->opts.allow_symmetric = p->allow_symmetric;
        k->insecure_http = p->insecure_http;
        uv_timer_init(loop, &k->timer);
        uv_fs_poll_init(loop, &k->poll);
        k->timer.data = k->poll.data = k;
        k->next = all;
        all = k;
    }
    /* Intervals follow the newest config that names the keyring. */
    k->refresh_ms = p->refresh_ms;
    k->min_refresh_ms = p->min_refresh_ms;
    k->max_refresh_ms = p->max_refresh_ms;
    k->timeout_ms = p->fetch_timeout_ms;
    __atomic_add_fetch(&k->refs, 1, __ATOMIC_ACQ_REL);
    if (!k->running)
        start(k);
    return k;
}

void gh_keyring_release(gh_keyring_t *k)
{
    if (k != NULL)
        __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL);
}

int gh_keyring_check(const gh_jwt_provider_conf_t *p, char *err, size_t cap)
{
    gh_jwks_opts_t opts = {.allow_symmetric = p->allow_symmetric};
    char why[256];
    size_t len = 0;
    char *text = NULL;
    const char *doc;
    if (p->jwks_source == GH_JWKS_INLINE) {
        doc = p->jwks_inline;
        len = strlen(doc);
    } else if (p->jwks_source == GH_JWKS_FILE) {
        if ((text = gh_file_read(p->jwks_file, GH_JWKS_MAX_DOC, &len)) == NULL) {
            snprintf(
                err, cap, "jwt provider '%s': cannot read jwks file %s: %s", p->name, p->jwks_file,
                errno == EFBIG ? "larger than the 1 MiB key set limit" : gh_file_strerror(errno));
            return -1;
        }
        doc = text;
    } else {
        return 0; /* fetched: checked when it arrives, never blocking a reload */
    }
    gh_jwks_t *set = gh_jwks_parse(doc, len, &opts, why, sizeof(why));
    free(text);
    if (set == NULL) {
        snprintf(err, cap, "jwt provider '%s': %s key set does not load: %s", p->name,
                 p->jwks_source == GH_JWKS_FILE ? "the file's" : "the inline", why);
        return -1;
    }
    gh_jwks_unref(set);
    return 0;
}

gh_jwks_t *gh_keyring_get(gh_keyring_t *k)
{
    uv_mutex_lock(&k->lock);
    gh_jwks_t *s = k->current ? gh_jwks_ref(k->current) : NULL;
    uv_mutex_unlock(&k->lock);
    return s;
}

uint64_t gh_keyring_generation(gh_keyring_t *k)
{
    return __atomic_load_n(&k->generation, __ATOMIC_ACQUIRE);
}

void gh_keyring_request_refresh(gh_keyring_t *k)
{
    if (!__atomic_exchange_n(&k->want_refresh, 1, __ATOMIC_ACQ_REL))
        uv_async_send(&wake);
}

int gh_keyring_ready(gh_keyring_t *k, const char **why)
{
    if (k->current != NULL)
        return 1;
    *why = k->last_error[0] ? k->last_error : "keys not loaded yet";
    return 0;
}

size_t gh_keyring_metrics(char *buf, size_t cap, void *arg)
{
    size_t n = 0;
    int w;
    (void)arg;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        w = snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, __VA_ARGS__);               \
        if (w > 0)                                                                                 \
            n += (size_t)w;                                                                        \
    } while (0)
    EMIT("# HELP gatehouse_jwks_fetches_total Key set loads by provider and outcome.\n"
         "# TYPE gatehouse_jwks_fetches_total counter\n");
    for (gh_keyring_t *k = all; k != NULL; k = k->next) {
        EMIT("gatehouse_jwks_fetches_total{provider=\"%s\",outcome=\"ok\"} %llu\n", k->name,
             (unsigned long long)__atomic_load_n(&k->fetch_ok, __ATOMIC_RELAXED));
        EMIT("gatehouse_jwks_fetches_total{provider=\"%s\",outcome=\"failed\"} %llu\n", k->name,
             (unsigned long long)__atomic_load_n(&k->fetch_failed, __ATOMIC_RELAXED));
        EMIT("gatehouse_jwks_fetches_total{provider=\"%s\",outcome=\"invalid\"} %llu\n", k->name,
             (unsigned long long)__atomic_load_n(&k->fetch_invalid, __ATOMIC_RELAXED));
    }
    EMIT("# HELP gatehouse_jwks_age_seconds Seconds since the provider's keys last loaded.\n"
         "# TYPE gatehouse_jwks_age_seconds gauge\n");
    uint64_t now = wall_ms();
    for (gh_keyring_t *k = all; k != NULL; k = k->next) {
        uint64_t at = __atomic_load_n(&k->loaded_ms, __ATOMIC_RELAXED);
        if (at != 0)
            EMIT("gatehouse_jwks_age_seconds{provider=\"%s\"} %.3f\n", k->name,
                 (double)(now - at) / 1000.0);
    }
    EMIT("# HELP gatehouse_jwks_keys Usable keys in the provider's current set.\n"
         "# TYPE gatehouse_jwks_keys gauge\n");
    for (gh_keyring_t *k = all; k != NULL; k = k->next)
        if (k->current != NULL)
            EMIT("gatehouse_jwks_keys{provider=\"%s\"} %zu\n", k->name, gh_jwks_count(k->current));
#undef EMIT
    return n;
}

static void closed(uv_handle_t *h)
{
    (void)h;
}

void gh_keyring_shutdown(void)
{
    if (shutting_down)
        return;
    shutting_down = 1;
    __atomic_store_n(&cancel_fetches, 1, __ATOMIC_RELEASE);
    for (gh_keyring_t *k = all; k != NULL; k = k->next) {
        if (k->state == K_FETCHING) {
            GH_LOG(GH_LOG_INFO, "jwks", "provider '%s': cancelling the running fetch", k->name);
            uv_cancel((uv_req_t *)&k->work);
        }
        uv_close((uv_handle_t *)&k->timer, closed);
        uv_close((uv_handle_t *)&k->poll, closed);
    }
    if (loop != NULL && !uv_is_closing((uv_handle_t *)&wake))
        uv_close((uv_handle_t *)&wake, NULL);
}

void gh_keyring_free_all(void)
{
    gh_keyring_t *k = all;
    all = NULL;
    while (k != NULL) {
        gh_keyring_t *next = k->next;
        free(k->body);
        keyring_free(k);
        k = next;
    }
}
