/*
 * Token sources (source.h): the client credentials grant, run from the main
 * loop in libuv's thread pool with libcurl, and the current token kept for
 * the workers.
 *
 * Timeline of a source: the first fetch starts when a config that names it
 * is applied. A token of lifetime L (expires_in) is refreshed after 0.8 L,
 * and used until L minus a margin of min(L/10, 30 s) (so that a token never
 * reaches an upstream in its last moments). A failed fetch is retried after
 * 1, 2, 4 ... 30 s while the current token stays in use; once it is past its
 * margin with no new one, requests are refused (503, the reason said) and
 * /ready lists the source.
 */
#include "filters/inject/source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <gatehouse/log.h>
#include <gatehouse/redact.h>
#include <gatehouse/sink.h>

#define MAX_ANSWER (64 * 1024)
#define MAX_TOKEN (16 * 1024)
#define DEFAULT_TTL_S 300 /* an answer without expires_in */
#define MAX_BACKOFF_MS 30000
#define MAX_MARGIN_MS 30000

typedef enum { S_IDLE = 0, S_FETCHING } state_t;

struct gh_tsrc_s {
    gh_tsrc_t *next; /* every source (main thread) */
    int refs;        /* atomic */
    int running;     /* main thread: its timer is armed or a fetch runs */
    /* Settings, immutable. */
    char *token_url, *client_id, *client_secret, *scope, *audience, *resource;
    int secret_post, insecure_http;
    uint64_t timeout_ms;
    char name[320]; /* redacted URL and client, for messages */
    /* Main thread. */
    uv_timer_t timer;
    uv_work_t work;
    state_t state;
    unsigned failures;
    /* The job's answer (written in the pool, read in fetch_done). */
    char *job_token;
    uint64_t job_expires_in;
    char job_err[256];
    /* Published: read by workers under lock. */
    uv_mutex_t lock;
    char *line; /* "authorization: Bearer T\r\n", or NULL */
    size_t line_len;
    uint64_t usable_until_ms; /* uv_now clock */
    char why[640];            /* why there is no usable token */
};

static uv_loop_t *loop;
static gh_tsrc_t *all;
static int shutting_down;
static int cancel_fetches; /* atomic: running fetches abort */

/* ---- the answer (pure) ---- */

/* RFC 6750 section 2.1's b64token: what a Bearer field can carry. */
static int is_b64token(const char *t, size_t n)
{
    size_t i = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'))
            break;
    }
    if (i == 0)
        return 0;
    while (i < n && t[i] == '=')
        i++;
    return i == n;
}

/* Copies s for a message: printable ASCII only, at most max bytes. */
static void printable(char *out, size_t cap, const char *s, size_t max)
{
    size_t o = 0;
    for (size_t i = 0; i < max && s[i] != '\0' && o + 1 < cap; i++)
        out[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[o] = '\0';
}

int gh_tsrc_parse_answer(long status, const char *body, size_t len, uint64_t default_ttl,
                         char **token, uint64_t *expires_in, char *why, size_t cap)
{
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    *token = NULL;
    if (status != 200) {
        const char *e = doc != NULL ? json_string_value(json_object_get(doc, "error")) : NULL;
        const char *d =
            doc != NULL ? json_string_value(json_object_get(doc, "error_description")) : NULL;
        char es[64] = "", ds[160] = "";
        if (e != NULL)
            printable(es, sizeof(es), e, 60);
        if (d != NULL)
            printable(ds, sizeof(ds), d, 150);
        if (e != NULL)
            snprintf(why, cap, "the token endpoint answered %ld %s%s%s", status, es,
                     d != NULL ? ": " : "", ds);
        else
            snprintf(why, cap, "the token endpoint answered %ld", status);
        json_decref(doc);
        return -1;
    }
    if (doc == NULL || !json_is_object(doc)) {
        snprintf(why, cap, "the token endpoint's answer is not a JSON object");
        json_decref(doc);
        return -1;
    }
    const char *t = json_string_value(json_object_get(doc, "access_token"));
    const char *tt = json_string_value(json_object_get(doc, "token_type"));
    json_t *ei = json_object_get(doc, "expires_in");
    int rc = -1;
    if (t == NULL)
        snprintf(why, cap, "the token endpoint's answer has no access_token");
    else if (strlen(t) > MAX_TOKEN || !is_b64token(t, strlen(t)))
        snprintf(why, cap,
                 "the access token is longer than 16 KiB or holds bytes a Bearer "
                 "field cannot carry");
    else if (tt == NULL || strcasecmp(tt, "bearer") != 0)
        snprintf(why, cap, "the token endpoint's answer has token_type %s, not Bearer",
                 tt == NULL ? "(none)" : "other than Bearer");
    else if (ei != NULL && !json_is_null(ei) &&
             !(json_is_integer(ei) && json_integer_value(ei) > 0 &&
               json_integer_value(ei) <= 366LL * 86400))
        snprintf(why, cap,
                 "the token endpoint's answer has an expires_in that is not a "
                 "whole number of seconds from 1 to a year");
    else if ((*token = strdup(t)) == NULL)
        snprintf(why, cap, "out of memory");
    else {
        *expires_in =
            ei != NULL && json_is_integer(ei) ? (uint64_t)json_integer_value(ei) : default_ttl;
        rc = 0;
    }
    json_decref(doc);
    return rc;
}

/* ---- fetching (thread pool) ---- */

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)arg;
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return __atomic_load_n(&cancel_fetches, __ATOMIC_ACQUIRE) ? 1 : 0;
}

/* Appends "&name=value" (value form-encoded) to the body. */
static int form_add(CURL *c, char **body, size_t *len, const char *name, const char *value)
{
    char *v = curl_easy_escape(c, value, 0);
    if (v == NULL)
        return -1;
    size_t need = *len + strlen(name) + strlen(v) + 3;
    char *nb = realloc(*body, need);
    if (nb == NULL) {
        curl_free(v);
        return -1;
    }
    *len += (size_t)snprintf(nb + *len, need - *len, "%s%s=%s", *len ? "&" : "", name, v);
    *body = nb;
    curl_free(v);
    return 0;
}

/* The form body, and for client_secret_basic the Authorization field
 * (RFC 6749 section 2.3.1: id and secret form-encoded, then Base64). */
static int build_request(CURL *c, const gh_tsrc_t *t, char **body, char **authz)
{
    size_t len = 0;
    *body = NULL;
    *authz = NULL;
    if (form_add(c, body, &len, "grant_type", "client_credentials") != 0 ||
        (t->scope != NULL && form_add(c, body, &len, "scope", t->scope) != 0) ||
        (t->audience != NULL && form_add(c, body, &len, "audience", t->audience) != 0) ||
        (t->resource != NULL && form_add(c, body, &len, "resource", t->resource) != 0))
        return -1;
    if (t->secret_post)
        return form_add(c, body, &len, "client_id", t->client_id) != 0 ||
                       form_add(c, body, &len, "client_secret", t->client_secret) != 0
                   ? -1
                   : 0;
    char *id = curl_easy_escape(c, t->client_id, 0),
         *sec = curl_easy_escape(c, t->client_secret, 0);
    int rc = -1;
    if (id != NULL && sec != NULL) {
        size_t n = strlen(id) + strlen(sec) + 1;
        char *raw = malloc(n + 1);
        char *field = malloc(4 * ((n + 2) / 3) + 32);
        if (raw != NULL && field != NULL) {
            snprintf(raw, n + 1, "%s:%s", id, sec);
            int k = sprintf(field, "Authorization: Basic ");
            EVP_EncodeBlock((unsigned char *)field + k, (const unsigned char *)raw, (int)n);
            *authz = field;
            field = NULL;
            rc = 0;
        }
        if (raw != NULL)
            OPENSSL_cleanse(raw, n);
        free(raw);
        free(field);
    }
    curl_free(id);
    curl_free(sec);
    return rc;
}

static void fetch_work(uv_work_t *w)
{
    gh_tsrc_t *t = w->data;
    char ebuf[CURL_ERROR_SIZE] = "", *body = NULL, *authz = NULL;
    gh_sink_t out = {NULL, 0, MAX_ANSWER, 0};
    struct curl_slist *hs = NULL;
    long status = 0;
    t->job_token = NULL;
    t->job_err[0] = '\0';
    CURL *c = curl_easy_init();
    if (c == NULL || build_request(c, t, &body, &authz) != 0) {
        snprintf(t->job_err, sizeof(t->job_err), "out of memory");
        goto done;
    }
    hs = curl_slist_append(hs, "Content-Type: application/x-www-form-urlencoded");
    hs = curl_slist_append(hs, "Accept: application/json");
    if (authz != NULL)
        hs = curl_slist_append(hs, authz);
    curl_easy_setopt(c, CURLOPT_URL, t->token_url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, t->insecure_http ? "http,https" : "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "gatehouse/" GH_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, gh_sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    CURLcode r = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (r != CURLE_OK) {
        snprintf(t->job_err, sizeof(t->job_err), "%s",
                 out.too_big ? "the token endpoint's answer is larger than 64 KiB"
                 : ebuf[0]   ? ebuf
                             : curl_easy_strerror(r));
        goto done;
    }
    gh_tsrc_parse_answer(status, out.buf != NULL ? out.buf : "", out.len, DEFAULT_TTL_S,
                         &t->job_token, &t->job_expires_in, t->job_err, sizeof(t->job_err));
done:
    if (authz != NULL)
        OPENSSL_cleanse(authz, strlen(authz));
    if (body != NULL)
        OPENSSL_cleanse(body, strlen(body));
    free(authz);
    free(body);
    free(out.buf);
    curl_slist_free_all(hs);
    if (c != NULL)
        curl_easy_cleanup(c);
}

/* ---- main thread ---- */

static void fetch_start(gh_tsrc_t *t);

static void on_timer(uv_timer_t *h)
{
    gh_tsrc_t *t = h->data;
    if (__atomic_load_n(&t->refs, __ATOMIC_ACQUIRE) == 0) {
        t->running = 0; /* nobody uses it: acquire starts it again */
        return;
    }
    fetch_start(t);
}

static void schedule(gh_tsrc_t *t, uint64_t ms)
{
    if (!shutting_down)
        uv_timer_start(&t->timer, on_timer, ms, 0);
}

static uint64_t backoff_ms(const gh_tsrc_t *t)
{
    uint64_t ms = 1000;
    for (unsigned i = 1; i < t->failures && ms < MAX_BACKOFF_MS; i++)
        ms *= 2;
    return ms < MAX_BACKOFF_MS ? ms : MAX_BACKOFF_MS;
}

/* Publishes a new token of lifetime life_ms fetched at now. */
static int publish(gh_tsrc_t *t, const char *token, uint64_t life_ms, uint64_t now)
{
    size_t n = strlen(token) + sizeof("authorization: Bearer \r\n");
    char *line = malloc(n);
    if (line == NULL)
        return -1;
    int k = snprintf(line, n, "authorization: Bearer %s\r\n", token);
    uint64_t margin = life_ms / 10 < MAX_MARGIN_MS ? life_ms / 10 : MAX_MARGIN_MS;
    uv_mutex_lock(&t->lock);
    char *old = t->line;
    size_t old_len = t->line_len;
    t->line = line;
    t->line_len = (size_t)k;
    t->usable_until_ms = now + life_ms - margin;
    snprintf(t->why, sizeof(t->why), "the token from %s expired before a new one came", t->name);
    uv_mutex_unlock(&t->lock);
    if (old != NULL)
        OPENSSL_cleanse(old, old_len);
    free(old);
    return 0;
}

static void fetch_done(uv_work_t *w, int status)
{
    gh_tsrc_t *t = w->data;
    uint64_t now = uv_now(loop);
    t->state = S_IDLE;
    if (shutting_down) {
        free(t->job_token);
        t->job_token = NULL;
        return;
    }
    if (status == 0 && t->job_token != NULL &&
        publish(t, t->job_token, t->job_expires_in * 1000, now) == 0) {
        if (t->failures > 0)
            GH_LOG(GH_LOG_INFO, "inject", "%s: token obtained after %u failed attempts", t->name,
                   t->failures);
        t->failures = 0;
        schedule(t, t->job_expires_in * 800); /* at 80% of its lifetime */
    } else {
        const char *e = status != 0 ? "cancelled" : t->job_err[0] ? t->job_err : "out of memory";
        t->failures++;
        uv_mutex_lock(&t->lock);
        int has = t->line != NULL && now < t->usable_until_ms;
        snprintf(t->why, sizeof(t->why), "no token from %s: %s", t->name, e);
        uv_mutex_unlock(&t->lock);
        GH_LOG(GH_LOG_ERROR, "inject", "%s: cannot obtain a token: %s; %s (retrying in %llus)",
               t->name, e, has ? "the current token stays in use" : "requests get 503",
               (unsigned long long)(backoff_ms(t) / 1000));
        schedule(t, backoff_ms(t));
    }
    if (t->job_token != NULL)
        OPENSSL_cleanse(t->job_token, strlen(t->job_token));
    free(t->job_token);
    t->job_token = NULL;
}

static void fetch_start(gh_tsrc_t *t)
{
    if (t->state == S_FETCHING || shutting_down)
        return;
    t->state = S_FETCHING;
    t->running = 1;
    t->work.data = t;
    if (uv_queue_work(loop, &t->work, fetch_work, fetch_done) != 0) {
        t->state = S_IDLE;
        t->failures++;
        schedule(t, backoff_ms(t));
    }
}

void gh_tsrc_init(uv_loop_t *main_loop)
{
    loop = main_loop;
    shutting_down = 0;
    __atomic_store_n(&cancel_fetches, 0, __ATOMIC_RELEASE);
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int matches(const gh_tsrc_t *t, const gh_tsrc_conf_t *c)
{
    return same(t->token_url, c->token_url) && same(t->client_id, c->client_id) &&
           same(t->client_secret, c->client_secret) && same(t->scope, c->scope) &&
           same(t->audience, c->audience) && same(t->resource, c->resource) &&
           t->secret_post == c->secret_post && t->insecure_http == c->insecure_http &&
           t->timeout_ms == c->timeout_ms;
}

static void tsrc_free(gh_tsrc_t *t)
{
    free(t->token_url);
    free(t->client_id);
    if (t->client_secret != NULL)
        OPENSSL_cleanse(t->client_secret, strlen(t->client_secret));
    free(t->client_secret);
    free(t->scope);
    free(t->audience);
    free(t->resource);
    if (t->line != NULL)
        OPENSSL_cleanse(t->line, t->line_len);
    free(t->line);
    free(t->job_token);
    uv_mutex_destroy(&t->lock);
    free(t);
}

static char *dup_or_null(const char *s, int *oom)
{
    char *d = s != NULL ? strdup(s) : NULL;
    if (s != NULL && d == NULL)
        *oom = 1;
    return d;
}

gh_tsrc_t *gh_tsrc_acquire(const gh_tsrc_conf_t *c)
{
    gh_tsrc_t *t;
    for (t = all; t != NULL; t = t->next)
        if (matches(t, c))
            break;
    if (t == NULL) {
        int oom = 0;
        if ((t = calloc(1, sizeof(*t))) == NULL)
            return NULL;
        uv_mutex_init(&t->lock);
        t->token_url = dup_or_null(c->token_url, &oom);
        t->client_id = dup_or_null(c->client_id, &oom);
        t->client_secret = dup_or_null(c->client_secret, &oom);
        t->scope = dup_or_null(c->scope, &oom);
        t->audience = dup_or_null(c->audience, &oom);
        t->resource = dup_or_null(c->resource, &oom);
        if (oom) {
            tsrc_free(t);
            return NULL;
        }
        t->secret_post = c->secret_post;
        t->insecure_http = c->insecure_http;
        t->timeout_ms = c->timeout_ms;
        char *url = gh_url_redact(c->token_url);
        snprintf(t->name, sizeof(t->name), "token endpoint %s (client %.64s)",
                 url != NULL ? url : "(URL not shown)", c->client_id);
        free(url);
        snprintf(t->why, sizeof(t->why), "no token from %s yet", t->name);
        uv_timer_init(loop, &t->timer);
        t->timer.data = t;
        t->next = all;
        all = t;
    }
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
    if (!t->running)
        fetch_start(t);
    return t;
}

void gh_tsrc_release(gh_tsrc_t *t)
{
    if (t != NULL)
        __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
}

int gh_tsrc_use(gh_tsrc_t *t, uint64_t now_ms, int (*use)(void *arg, const char *line, size_t len),
                void *arg, char *why, size_t why_cap)
{
    uv_mutex_lock(&t->lock);
    int rc;
    if (t->line != NULL && now_ms < t->usable_until_ms) {
        rc = use(arg, t->line, t->line_len);
    } else {
        snprintf(why, why_cap, "%s", t->why);
        rc = 1;
    }
    uv_mutex_unlock(&t->lock);
    return rc;
}

int gh_tsrc_ready(gh_tsrc_t *t, char *why, size_t cap)
{
    uv_mutex_lock(&t->lock);
    int ok = t->line != NULL && uv_now(loop) < t->usable_until_ms;
    if (!ok)
        snprintf(why, cap, "%s", t->why);
    uv_mutex_unlock(&t->lock);
    return ok;
}

const char *gh_tsrc_name(const gh_tsrc_t *t)
{
    return t->name;
}

static void closed(uv_handle_t *h)
{
    (void)h;
}

void gh_tsrc_shutdown(void)
{
    if (shutting_down || loop == NULL)
        return;
    shutting_down = 1;
    __atomic_store_n(&cancel_fetches, 1, __ATOMIC_RELEASE);
    for (gh_tsrc_t *t = all; t != NULL; t = t->next) {
        if (t->state == S_FETCHING)
            uv_cancel((uv_req_t *)&t->work);
        uv_close((uv_handle_t *)&t->timer, closed);
    }
}

void gh_tsrc_free_all(void)
{
    gh_tsrc_t *t = all;
    all = NULL;
    while (t != NULL) {
        gh_tsrc_t *next = t->next;
        tsrc_free(t);
        t = next;
    }
}
