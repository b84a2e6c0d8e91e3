/*
 * One request's authorizer decision (authorizer.h): the identity sources
 * (API Gateway: a missing one is a 401 without calling), the aws-v1-token
 * token_validation regex (a mismatch is a 401 without calling), the cache,
 * then the call: the event POSTed to the authorizer's cluster, or to the
 * Lambda Invoke API signed with Signature Version 4, or, for envoy, the
 * request's method, path and allowed headers sent to the ext_authz
 * service. The answer becomes an outcome (authorizer.h) that the caller
 * applies inside the callback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <gatehouse/aws.h>
#include <gatehouse/fields.h>
#include <gatehouse/log.h>
#include <gatehouse/pairs.h>

#include "filters/authorizer/authorizer.h"

#define MAX_ENVOY_HEADERS 64
/* The cache key's values: the identity sources, and for envoy the request
 * the service is asked about (envoy_key). */
#define MAX_VALS 17

struct gh_azr_call_s {
    const gh_azr_t *a;
    gh_stream_handle_t *handle;
    gh_callout_t *co;
    gh_azr_done_cb cb;
    void *arg;
    char *body; /* malloc'd: the event (aws), freed when the call ends */
    /* The identity-source values (the cache key), pointing into the
     * request's head, which outlives the call. */
    gh_authz_str_t vals[MAX_VALS];
    size_t nv;
    char *arn; /* the stream's arena: the method ARN */
    size_t arn_len;
};

/* ---- identity sources ---- */

/* The copies of a query or cookie source: counted on the first pass, the
 * first kept; joined with ',' into b on the second. */
typedef struct {
    const char *one;
    size_t one_n, count, total;
    char *b, *o;
} copies_t;

static void copy_seen(copies_t *c, int pass, const char *v, size_t n)
{
    if (pass == 0) {
        if (c->count++ == 0) {
            c->one = v;
            c->one_n = n;
        }
        c->total += n + 1;
        return;
    }
    if (c->o != c->b)
        *c->o++ = ',';
    memcpy(c->o, v, n);
    c->o += n;
}

/* The value of source src in the request: 1 and *v, 0 when it is missing
 * or empty (API Gateway: "if a specified identity source is missing, null,
 * or empty"). Repeated header fields are joined with ',' (arena). */
static int source_value(gh_stream_t *s, const gh_authz_source_t *src, const char **v, size_t *n)
{
    size_t nh;
    const gh_h1_header_t *hs = gh_stream_headers(s, &nh);
    size_t len = src->name_len;
    if (src->authorization) {
        /* The stream allows one Authorization field (two are a 400), and
         * the name has no '-' for a '_' spelling to stand for. */
        const gh_h1_header_t *h = gh_stream_authorization(s);
        *v = h != NULL ? h->value : NULL;
        *n = h != NULL ? h->value_len : 0;
        return h != NULL && h->value_len > 0;
    }
    if (src->kind == GH_AUTHZ_SOURCE_HEADER) {
        const char *first = NULL;
        size_t fn = 0, total = 0, count = 0;
        for (size_t i = 0; i < nh; i++)
            if (hs[i].name_len == len && (gh_h1_name_equals(hs[i].name, src->name, len) ||
                                          gh_field_name_same(hs[i].name, len, src->name, len))) {
                if (first == NULL) {
                    first = hs[i].value;
                    fn = hs[i].value_len;
                }
                total += hs[i].value_len + 1;
                count++;
            }
        if (count <= 1) {
            *v = first;
            *n = fn;
            return first != NULL && fn > 0;
        }
        char *b = gh_stream_alloc(s, total), *o = b;
        if (b == NULL)
            return 0;
        for (size_t i = 0; i < nh; i++)
            if (hs[i].name_len == len &&
                gh_field_name_same(hs[i].name, hs[i].name_len, src->name, len)) {
                if (o != b)
                    *o++ = ',';
                memcpy(o, hs[i].value, hs[i].value_len);
                o += hs[i].value_len;
            }
        *v = b;
        *n = (size_t)(o - b);
        return *n > 0;
    }
    /* A query parameter (names compared decoded) or a cookie (every
     * Cookie field, pairs split at ';', names trimmed). Repeats are joined
     * with ',' as a header source's are: the event carries every copy, so
     * the value that keys the cache must cover them all (an authorizer
     * that reads another copy than the first must not find its answer
     * cached for a request it never saw). */
    copies_t cp = {NULL, 0, 0, 0, NULL, NULL};
    for (int pass = 0; pass < 2; pass++) {
        if (src->kind == GH_AUTHZ_SOURCE_QUERY) {
            const char *m, *p, *q;
            size_t ml, pl, ql;
            gh_stream_request_line(s, &m, &ml, &p, &pl, &q, &ql);
            gh_pairs_t it;
            gh_pair_t pr;
            gh_pairs_init(&it, q, q ? ql : 0, '&');
            while (gh_pairs_next(&it, &pr)) {
                if (gh_pair_name_decoded_is(&pr, src->name, len))
                    copy_seen(&cp, pass, pr.value, pr.value_len);
            }
        } else {
            for (size_t i = 0; i < nh; i++) {
                if (hs[i].name_len != 6 || !gh_field_name_same(hs[i].name, 6, "cookie", 6))
                    continue;
                gh_pairs_t it;
                gh_pair_t pr;
                gh_pairs_init(&it, hs[i].value, hs[i].value_len, ';');
                while (gh_pairs_next(&it, &pr)) {
                    const char *nm = pr.name;
                    size_t nl = pr.name_len;
                    while (nl > 0 && (*nm == ' ' || *nm == '\t')) {
                        nm++;
                        nl--;
                    }
                    if (nl == len && memcmp(nm, src->name, len) == 0)
                        copy_seen(&cp, pass, pr.value, pr.value_len);
                }
            }
        }
        if (pass == 0) {
            if (cp.count <= 1) {
                *v = cp.one;
                *n = cp.one_n;
                return cp.one != NULL && cp.one_n > 0;
            }
            if ((cp.b = cp.o = gh_stream_alloc(s, cp.total)) == NULL)
                return 0;
        }
    }
    *v = cp.b;
    *n = (size_t)(cp.o - cp.b);
    /* Missing when no copy has a value ("a=&a=" is none). */
    return *n > cp.count - 1;
}

int gh_azr_sources_present(gh_stream_t *s, const gh_azr_t *a)
{
    for (size_t i = 0; i < a->conf->num_sources; i++) {
        const char *v;
        size_t n;
        if (!source_value(s, &a->conf->sources[i], &v, &n))
            return 0;
    }
    return 1;
}

/* ---- outcomes ---- */

static inline void outcome(gh_azr_outcome_t *o, int kind, int reason, const char *why)
{
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->reason = reason;
    o->why = why;
}

/* A result (fresh or cached) decided for this request's method ARN (a
 * simple answer needs none: arn may be NULL); an allow does what p says. */
static inline __attribute__((always_inline)) void decide(gh_azr_outcome_t *o,
                                                         const gh_authz_result_t *r,
                                                         const char *arn, size_t arn_len,
                                                         int cached, const gh_azr_prepared_t *p)
{
    if (r->simple && r->authorized) {
        outcome(o, GH_AZR_OUT_ALLOW, cached ? GH_AZR_ALLOWED_CACHED : GH_AZR_ALLOWED, NULL);
        o->allow = *p;
        return;
    }
    gh_authz_decision_t d =
        r->simple ? GH_AUTHZ_DENY_EXPLICIT : gh_authz_result_decide(r, arn, arn_len);
    if (d == GH_AUTHZ_ALLOW) {
        /* Only an IAM answer (format 1.0) has a usageIdentifierKey. */
        outcome(o, GH_AZR_OUT_ALLOW, cached ? GH_AZR_ALLOWED_CACHED : GH_AZR_ALLOWED, NULL);
        o->allow = *p;
        o->usage_key = r->usage_key;
        return;
    }
    outcome(o, GH_AZR_OUT_DENY, cached ? GH_AZR_DENIED_CACHED : GH_AZR_DENIED,
            r->simple ? "the authorizer answered isAuthorized false"
            : d == GH_AUTHZ_DENY_EXPLICIT
                ? "the authorizer's policy denies this method ARN"
                : "the authorizer's policy does not allow this method ARN");
}

/* ---- the request view ---- */

static int64_t now_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The Host the upstream gets: an absolute-form target's authority, else
 * the Host field (NULL: none). */
static const char *request_host(gh_stream_t *s, size_t *len)
{
    const char *a = gh_stream_authority(s, len);
    return a != NULL ? a : gh_stream_header_get(s, "host", len);
}

/* The view of the request; an absolute-form target's authority is its
 * host, in domainName and in the events' Host field, as the upstream gets
 * it (the client's own Host field is not what was routed). 0, or -1 when
 * out of memory. */
static int fill_view(gh_stream_t *s, const gh_authorizer_conf_t *c, gh_authz_request_t *r)
{
    memset(r, 0, sizeof(*r));
    gh_stream_request_line(s, &r->method.p, &r->method.n, &r->path.p, &r->path.n, &r->query.p,
                           &r->query.n);
    r->headers = gh_stream_headers(s, &r->nheaders);
    size_t al;
    const char *auth = gh_stream_authority(s, &al);
    if (auth != NULL) {
        gh_h1_header_t *hs = gh_stream_alloc(s, (r->nheaders + 1) * sizeof(*hs));
        if (hs == NULL)
            return -1;
        memcpy(hs, r->headers, r->nheaders * sizeof(*hs));
        for (size_t i = 0; i < r->nheaders; i++)
            if (hs[i].name_len == 4 && gh_field_name_same(hs[i].name, 4, "host", 4)) {
                hs[i].value = auth;
                hs[i].value_len = al;
            }
        r->headers = hs;
        r->host = (gh_authz_str_t){auth, al};
    }
    const char *ip = gh_stream_client_address(s);
    r->source_ip.p = ip;
    r->source_ip.n = strlen(ip);
    const char *rid = gh_stream_request_id(s);
    if (rid != NULL) {
        r->request_id.p = rid;
        r->request_id.n = strlen(rid);
    }
    r->time_ms = now_epoch_ms();
    r->account_id = c->account_id;
    r->api_id = c->api_id;
    r->region = c->api_region;
    r->stage = c->stage;
    return 0;
}

/* ---- the call ---- */

static void call_end(gh_azr_call_t *c)
{
    free(c->body);
    c->body = NULL;
    c->co = NULL;
}

static void count_call(gh_stream_t *s, const gh_azr_t *a, int err)
{
    if (err <= 0 && err > -GH_CALLOUT_OUTCOMES)
        gh_stream_count(s, a->call_ids[-err]);
}

/* What an allowing aws answer does to a request (gh_azr_prepared_t), in
 * the stream's arena: the configured headers' lines, the principal, the
 * context as JSON. Returns 0, -1 when a value cannot be a header value
 * (the answer is malformed), -2 when out of memory. */
static int prepare(gh_stream_t *s, const gh_authorizer_conf_t *c, const gh_authz_result_t *r,
                   gh_azr_prepared_t *p)
{
    memset(p, 0, sizeof(*p));
    size_t total = 0;
    for (size_t i = 0; i < c->num_headers; i++) {
        const char *v;
        size_t n;
        int k = gh_authz_result_value(r, c->headers[i].source, &v, &n);
        if (k < 0)
            return -1;
        if (k == 1)
            total += strlen(c->headers[i].header) + n + 4;
    }
    char *b = total > 0 ? gh_stream_alloc(s, total) : NULL, *w = b;
    if (total > 0 && b == NULL)
        return -2;
    for (size_t i = 0; i < c->num_headers; i++) {
        const char *v;
        size_t n, hl = strlen(c->headers[i].header);
        if (gh_authz_result_value(r, c->headers[i].source, &v, &n) != 1)
            continue;
        memcpy(w, c->headers[i].header, hl);
        memcpy(w + hl, ": ", 2);
        memcpy(w + hl + 2, v, n);
        memcpy(w + hl + 2 + n, "\r\n", 2);
        w += hl + n + 4;
    }
    p->lines = b;
    p->lines_len = (size_t)(w - b);
    p->principal = r->principal;
    if (r->nctx > 0) {
        p->claims = gh_azr_context_json(s, r, &p->claims_len);
        if (p->claims == NULL)
            return -2;
    }
    return 0;
}

/* cache_scope process: the answer into the process's cache (shared.c),
 * the entry held by the worker while the outcome points into it. The
 * entry, or NULL (out of memory: nothing cached, r still the caller's). */
static gh_azr_sentry_t *shared_put(gh_stream_t *s, gh_azr_call_t *c, gh_authz_result_t *r,
                                   const gh_azr_prepared_t *p)
{
    gh_azr_shared_t *t = c->a->shared;
    gh_azr_hold_t *hold = gh_azr_hold_of(s);
    if (hold == NULL)
        return NULL;
    uint64_t now = gh_stream_now_ms(s);
    gh_azr_sentry_t *e = gh_azr_shared_put(t, gh_azr_shared_hash(t, c->vals, c->nv), c->vals, c->nv,
                                           now, now + c->a->conf->ttl_ms, r, p);
    if (e != NULL)
        gh_azr_hold_set(hold, e);
    return e;
}

/* The payload of an aws answer, read into r. */
static void aws_answer(gh_stream_t *s, gh_azr_call_t *c, const gh_callout_result_t *res,
                       gh_azr_outcome_t *o, gh_authz_result_t *r)
{
    const gh_authorizer_conf_t *conf = c->a->conf;
    size_t en = 0;
    const char *fe = gh_callout_result_header(res, "x-amz-function-error", &en);
    if (res->status != 200) {
        /* An HTTP authorizer may answer 401 itself; the Invoke API's own
         * errors (403 signature, 404 function, 429, 5xx) are errors. */
        if (res->status == 401 && conf->function == NULL)
            outcome(o, GH_AZR_OUT_UNAUTH, GH_AZR_UNAUTHORIZED, "the authorizer answered 401");
        else
            outcome(o, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "the authorizer answered a status not 200");
        return;
    }
    if (fe != NULL) {
        const char *msg = NULL;
        gh_lambda_error_t k = gh_lambda_error_classify(fe, en, res->body, res->body_len, &msg);
        if (k == GH_LAMBDA_UNAUTHORIZED) {
            outcome(o, GH_AZR_OUT_UNAUTH, GH_AZR_UNAUTHORIZED, "the authorizer said Unauthorized");
            return;
        }
        if (k == GH_LAMBDA_FUNCTION_ERROR) {
            outcome(o, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "the authorizer function failed");
            return;
        }
    }
    const char *why = NULL;
    int rc = conf->format == GH_AUTHORIZER_AWS_V2
                 ? gh_authz_response_v2(res->body ? res->body : "", res->body_len,
                                        conf->simple_responses, r, &why)
                 : gh_authz_response_v1(res->body ? res->body : "", res->body_len, r, &why);
    if (rc != 0) {
        gh_authz_result_dispose(r);
        gh_stream_count(s, c->a->bad_answer_id);
        GH_LOG(GH_LOG_WARN, "authorizers", "authorizer '%s': malformed answer: %s", conf->name,
               rc == GH_AUTHZ_EBAD && why ? why : "out of memory");
        outcome(o, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "the authorizer's answer is malformed");
        return;
    }
    gh_azr_prepared_t p;
    int k = prepare(s, conf, r, &p);
    if (k != 0) {
        if (k == -1)
            gh_stream_count(s, c->a->bad_answer_id);
        outcome(o, GH_AZR_OUT_ERROR, GH_AZR_ERROR,
                k == -1 ? "the authorizer's answer has a value that cannot be a header value"
                        : "out of memory");
        return;
    }
    if (c->a->shared != NULL) {
        const gh_azr_sentry_t *e = shared_put(s, c, r, &p);
        decide(o, e != NULL ? &e->result : r, c->arn, c->arn_len, 0, &p);
        return;
    }
    gh_azr_cache_t *cache = conf->ttl_ms > 0 ? gh_azr_worker_cache(s, c->a) : NULL;
    if (cache != NULL) {
        uint64_t h = gh_azr_cache_hash(cache, c->a->id, c->vals, c->nv);
        gh_azr_centry_t *e = gh_azr_cache_put(cache, h, c->a->id, c->vals, c->nv,
                                              gh_stream_now_ms(s) + conf->ttl_ms, r, &p);
        if (e != NULL) {
            decide(o, &e->result, c->arn, c->arn_len, 0, &p);
            return;
        }
    }
    decide(o, r, c->arn, c->arn_len, 0, &p);
}

static int status_2xx(int st)
{
    return st >= 200 && st <= 299;
}

static int listed(char *const *v, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i]) == len && gh_field_name_same(v[i], len, name, len))
            return 1;
    return 0;
}

/* envoy: 2xx allows with the upstream_headers of the answer; anything
 * else goes to the client. */
static void envoy_answer(gh_stream_t *s, gh_azr_call_t *c, const gh_callout_result_t *res,
                         gh_azr_outcome_t *o)
{
    const gh_authorizer_conf_t *conf = c->a->conf;
    if (!status_2xx(res->status)) {
        outcome(o, GH_AZR_OUT_ENVOY, GH_AZR_ENVOY_DENIED, "denied by the authorization service");
        o->status = res->status;
        o->headers = res->headers;
        o->num_headers = res->num_headers;
        o->body = res->body;
        o->body_len = res->body_len;
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < res->num_headers; i++)
        if (listed(conf->upstream_headers, conf->num_upstream_headers, res->headers[i].name,
                   res->headers[i].name_len))
            total += res->headers[i].name_len + res->headers[i].value_len + 4;
    char *b = total ? gh_stream_alloc(s, total) : NULL, *w = b;
    if (total > 0 && b == NULL) {
        outcome(o, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "out of memory");
        return;
    }
    for (size_t i = 0; i < res->num_headers; i++) {
        const gh_h1_header_t *h = &res->headers[i];
        if (!listed(conf->upstream_headers, conf->num_upstream_headers, h->name, h->name_len))
            continue;
        for (size_t k = 0; k < h->value_len; k++) {
            unsigned char ch = (unsigned char)h->value[k];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                outcome(o, GH_AZR_OUT_ERROR, GH_AZR_ERROR,
                        "the authorization service's header holds a control byte");
                return;
            }
        }
        for (size_t k = 0; k < h->name_len; k++)
            *w++ = (char)(h->name[k] >= 'A' && h->name[k] <= 'Z' ? h->name[k] + 32 : h->name[k]);
        memcpy(w, ": ", 2);
        w += 2;
        memcpy(w, h->value, h->value_len);
        w += h->value_len;
        memcpy(w, "\r\n", 2);
        w += 2;
    }
    outcome(o, GH_AZR_OUT_ALLOW, GH_AZR_ALLOWED, NULL);
    o->allow.lines = b;
    o->allow.lines_len = (size_t)(w - b);
    if (c->a->shared != NULL) {
        shared_put(s, c, NULL, &o->allow);
        return;
    }
    gh_azr_cache_t *cache = conf->ttl_ms > 0 && c->nv > 0 ? gh_azr_worker_cache(s, c->a) : NULL;
    if (cache != NULL)
        gh_azr_cache_put(cache, gh_azr_cache_hash(cache, c->a->id, c->vals, c->nv), c->a->id,
                         c->vals, c->nv, gh_stream_now_ms(s) + conf->ttl_ms, NULL, &o->allow);
}

static void on_answer(void *arg, const gh_callout_result_t *res)
{
    gh_azr_call_t *c = arg;
    gh_stream_t *s = gh_stream_handle_take(c->handle);
    c->handle = NULL;
    call_end(c);
    if (s == NULL)
        return; /* cannot happen: on_cancel cancels the call */
    gh_azr_outcome_t o;
    gh_authz_result_t r;
    memset(&r, 0, sizeof(r));
    count_call(s, c->a, res->error);
    if (res->error != GH_CALLOUT_OK) {
        GH_LOG(GH_LOG_WARN, "authorizers", "authorizer '%s': %s: %s", c->a->conf->name,
               gh_callout_error_name(res->error), res->reason ? res->reason : "");
        outcome(&o, GH_AZR_OUT_ERROR, GH_AZR_ERROR,
                res->error == GH_CALLOUT_E_TIMEOUT ? "the authorizer did not answer in time"
                                                   : "the authorizer cannot be reached");
    } else if (c->a->conf->format == GH_AUTHORIZER_ENVOY) {
        envoy_answer(s, c, res, &o);
    } else {
        aws_answer(s, c, res, &o, &r);
    }
    c->cb(c->arg, s, &o);
    gh_authz_result_dispose(&r);
}

void gh_azr_cancel(gh_azr_call_t *c)
{
    if (c == NULL)
        return;
    if (c->co != NULL)
        gh_callout_cancel(c->co);
    call_end(c);
    if (c->handle != NULL)
        gh_stream_handle_take(c->handle);
    c->handle = NULL;
}

static int token_ok(const gh_authorizer_conf_t *c, const char *v, size_t n)
{
    if (c->token_re == NULL)
        return 1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c->token_re, NULL);
    if (md == NULL)
        return -1;
    int rc = pcre2_match(c->token_re, (PCRE2_SPTR)v, n, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* Fills the aws call's headers and, for Lambda, signs. Returns 0 or a
 * reason. */
static const char *aws_request(gh_stream_t *s, const gh_azr_t *a, gh_azr_call_t *c,
                               gh_callout_req_t *q, gh_h1_header_t *hs, size_t *nh)
{
    static const char ct[] = "application/json";
    hs[0] = (gh_h1_header_t){"content-type", 12, ct, sizeof(ct) - 1};
    *nh = 1;
    q->method = "POST";
    q->target = a->target;
    q->target_len = a->target_len;
    q->body = c->body;
    if (a->conf->function == NULL)
        return NULL;
    if (a->creds == NULL)
        return "no AWS credentials";
    const char *qm = memchr(a->target, '?', a->target_len);
    size_t pl = qm ? (size_t)(qm - a->target) : a->target_len;
    gh_aws_header_t sh[2] = {{"host", 4, a->host, a->host_len},
                             {"content-type", 12, ct, sizeof(ct) - 1}};
    gh_aws_sigv4_req_t sr = {
        .method = "POST",
        .path = a->target,
        .path_len = pl,
        .query = qm ? qm + 1 : NULL,
        .query_len = qm ? a->target_len - pl - 1 : 0,
        .headers = sh,
        .num_headers = 2,
        .payload = q->body,
        .payload_len = q->body_len,
        .region = a->region,
        .service = "lambda",
        .time = (int64_t)time(NULL),
    };
    gh_aws_sigv4_out_t *so = gh_stream_alloc(s, sizeof(*so));
    if (so == NULL)
        return "out of memory";
    if (gh_aws_sigv4_sign(&sr, a->creds, so) != 0)
        return so->error ? so->error : "cannot sign";
    hs[(*nh)++] = (gh_h1_header_t){"x-amz-date", 10, so->amz_date, strlen(so->amz_date)};
    if (so->security_token != NULL)
        hs[(*nh)++] = (gh_h1_header_t){"x-amz-security-token", 20, so->security_token,
                                       strlen(so->security_token)};
    hs[(*nh)++] = (gh_h1_header_t){"authorization", 13, so->authorization, so->authorization_len};
    q->host = a->host;
    q->host_len = a->host_len;
    return NULL;
}

/* Fields a callout writes itself, never copied from the request. */
static int framing(const char *n, size_t l)
{
    static const char *const v[] = {
        "content-length", "transfer-encoding", "host",   "connection",       "keep-alive", "te",
        "trailer",        "upgrade",           "expect", "proxy-connection", NULL};
    for (size_t i = 0; v[i]; i++)
        if (strlen(v[i]) == l && gh_field_name_same(v[i], l, n, l))
            return 1;
    return 0;
}

/* envoy: whether request field h is sent to the service. */
static int envoy_sent(const gh_authorizer_conf_t *c, const gh_h1_header_t *h)
{
    if (framing(h->name, h->name_len))
        return 0;
    /* Ours only (envoy_request): a client's copy would say what we did not. */
    if (c->max_request_body > 0 && h->name_len == 25 &&
        gh_field_name_same(h->name, 25, "x-envoy-auth-partial-body", 25))
        return 0;
    return (h->name_len == 13 && gh_field_name_same(h->name, 13, "authorization", 13)) ||
           listed(c->allowed_headers, c->num_allowed_headers, h->name, h->name_len);
}

/* envoy: the original method and path under http.path, the allowed
 * headers with Authorization, and the request's Host. */
static const char *envoy_request(gh_stream_t *s, const gh_azr_t *a, gh_callout_req_t *q,
                                 gh_h1_header_t *hs, size_t *nh)
{
    const gh_authorizer_conf_t *c = a->conf;
    const char *m, *p, *qs;
    size_t ml, pl, ql;
    gh_stream_request_line(s, &m, &ml, &p, &pl, &qs, &ql);
    char *meth = gh_stream_alloc(s, ml + 1);
    size_t pre = strlen(c->path);
    if (pre > 0 && c->path[pre - 1] == '/')
        pre--;
    char *t = gh_stream_alloc(s, pre + pl + (qs ? ql + 1 : 0) + 1);
    if (meth == NULL || t == NULL)
        return "out of memory";
    /* Upper case: Envoy's parser refuses "delete", so services compare
     * "DELETE", and Werkzeug and Django read "delete" as DELETE. HEAD's
     * answer has no body to frame by: the service is asked with GET
     * (docs/authorizers.md). */
    for (size_t i = 0; i < ml; i++)
        meth[i] = (char)(m[i] >= 'a' && m[i] <= 'z' ? m[i] - 32 : m[i]);
    meth[ml] = '\0';
    if (ml == 4 && memcmp(meth, "HEAD", 4) == 0)
        memcpy(meth, "GET", 4);
    memcpy(t, c->path, pre);
    memcpy(t + pre, p, pl);
    size_t tl = pre + pl;
    if (qs != NULL) {
        t[tl++] = '?';
        memcpy(t + tl, qs, ql);
        tl += ql;
    }
    t[tl] = '\0';
    q->method = meth;
    q->target = t;
    q->target_len = tl;
    size_t n;
    const gh_h1_header_t *rh = gh_stream_headers(s, &n);
    *nh = 0;
    for (size_t i = 0; i < n && *nh < MAX_ENVOY_HEADERS; i++)
        if (envoy_sent(c, &rh[i]))
            hs[(*nh)++] = rh[i];
    /* with_request_body: the buffered body, whole (a longer one was a 413
     * before: allow_partial_message false), marked as Envoy marks it. A
     * request gatehouse did not buffer (a CUSTOM policy's call on a route
     * that reads none) is sent without its body, marked partial. */
    if (c->max_request_body > 0 && *nh < MAX_ENVOY_HEADERS) {
        size_t bl = 0;
        const char *b = gh_stream_buffered_body(s, &bl);
        int whole = b != NULL && bl <= c->max_request_body;
        if (whole) {
            q->body = b;
            q->body_len = bl;
        }
        hs[(*nh)++] = (gh_h1_header_t){"x-envoy-auth-partial-body", 25, whole ? "false" : "true",
                                       whole ? 5 : 4};
    }
    size_t hl;
    const char *host = request_host(s, &hl);
    if (host != NULL && hl > 0) {
        q->host = host;
        q->host_len = hl;
    }
    return NULL;
}

static char *key_part(char *w, const char *p, size_t n)
{
    uint64_t l = n;
    memcpy(w, &l, 8);
    if (n > 0)
        memcpy(w + 8, p, n);
    return w + 8 + n;
}

/* envoy: a service answers about the request it is sent (method, path and
 * query, Host, the headers passed: an OPA policy allows GET /public, not
 * DELETE /admin), not about the token alone. The cache key's last value is
 * that request, each part length-prefixed, in the stream's arena, so that
 * a cached allow answers only the same request. 0, or -1 when out of
 * memory. */
static int envoy_key(gh_stream_t *s, const gh_authorizer_conf_t *c, gh_authz_str_t *v)
{
    const char *m, *p, *q, *host;
    size_t ml, pl, ql, hl = 0, n, sent = 0;
    gh_stream_request_line(s, &m, &ml, &p, &pl, &q, &ql);
    host = request_host(s, &hl);
    const gh_h1_header_t *rh = gh_stream_headers(s, &n);
    /* with_request_body: the body sent, or that it was not (partial). */
    const char *body = NULL;
    size_t bl = 0;
    if (c->max_request_body > 0) {
        body = gh_stream_buffered_body(s, &bl);
        if (body == NULL || bl > c->max_request_body)
            body = NULL, bl = 0;
    }
    size_t total = 8 + ml + 8 + pl + 8 + (q ? ql + 1 : 0) + 8 + (host ? hl : 0) + 9 + 8 + bl;
    for (size_t i = 0; i < n && sent < MAX_ENVOY_HEADERS; i++)
        if (envoy_sent(c, &rh[i])) {
            total += 16 + rh[i].name_len + rh[i].value_len;
            sent++;
        }
    char *b = gh_stream_alloc(s, total + 1), *w = b;
    if (b == NULL)
        return -1;
    w = key_part(w, m, ml);
    w = key_part(w, p, pl);
    /* "?" and no query at all are two requests. */
    uint64_t ql8 = q ? ql + 1 : 0;
    memcpy(w, &ql8, 8);
    w += 8;
    if (q != NULL) {
        *w++ = '?';
        memcpy(w, q, ql);
        w += ql;
    }
    w = key_part(w, host, host ? hl : 0);
    sent = 0;
    for (size_t i = 0; i < n && sent < MAX_ENVOY_HEADERS; i++)
        if (envoy_sent(c, &rh[i])) {
            w = key_part(w, rh[i].name, rh[i].name_len);
            w = key_part(w, rh[i].value, rh[i].value_len);
            sent++;
        }
    w = key_part(w, body != NULL ? "1" : "0", 1);
    w = key_part(w, body, bl);
    v->p = b;
    v->n = (size_t)(w - b);
    return 0;
}

/* The method ARN of the request into the stream's arena (*arn). 0, or -1
 * with out saying why not. */
static int method_arn(gh_stream_t *s, const gh_authz_request_t *view, char **arn, size_t *arn_len,
                      gh_azr_outcome_t *out)
{
    *arn = gh_stream_alloc(s, GH_AUTHZ_MAX_ARN + 1);
    long an = *arn ? gh_authz_method_arn(view, *arn, GH_AUTHZ_MAX_ARN + 1) : -ENOMEM;
    if (an >= 0) {
        *arn_len = (size_t)an;
        return 0;
    }
    outcome(out, an == -E2BIG ? GH_AZR_OUT_BAD : GH_AZR_OUT_ERROR,
            an == -E2BIG ? GH_AZR_BAD_REQUEST : GH_AZR_ERROR,
            an == -E2BIG ? "the method ARN is longer than 1600 bytes" : "out of memory");
    out->status = 414;
    return -1;
}

/* A cached answer for values v: 1 with out decided, 0 when there is
 * none, -1 when out says why not (a method ARN that cannot be made). An
 * IAM answer is evaluated against this request's method ARN (made into
 * *arn); a simple one and an envoy allow need none. */
static inline __attribute__((always_inline)) int from_cache(gh_stream_t *s, const gh_azr_t *a,
                                                            const gh_authz_str_t *v, size_t nv,
                                                            char **arn, size_t *arn_len,
                                                            gh_azr_outcome_t *out)
{
    gh_azr_cache_t *cache = gh_azr_worker_cache(s, a);
    if (cache == NULL)
        return 0;
    gh_azr_centry_t *e = gh_azr_cache_get(cache, gh_azr_cache_hash(cache, a->id, v, nv), a->id, v,
                                          nv, gh_stream_now_ms(s));
    if (e == NULL)
        return 0;
    gh_azr_prepared_t p = {e->lines, e->lines_len, e->principal, e->claims, e->claims_len};
    if (a->conf->format == GH_AUTHORIZER_ENVOY) {
        outcome(out, GH_AZR_OUT_ALLOW, GH_AZR_ALLOWED_CACHED, NULL);
        out->allow = p;
        out->cache = cache;
        return 1;
    }
    if (!e->result.simple) {
        gh_authz_request_t view;
        if (fill_view(s, a->conf, &view) != 0) {
            outcome(out, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "out of memory");
            return -1;
        }
        if (method_arn(s, &view, arn, arn_len, out) != 0)
            return -1;
    }
    decide(out, &e->result, *arn, *arn_len, 1, &p);
    out->cache = cache;
    return 1;
}

/* from_cache for cache_scope process: the process's entry, held by the
 * worker (gh_azr_hold_set) so that the outcome's pointers into it stay
 * valid while the caller applies it, whatever other workers evict
 * meanwhile. */
static __attribute__((noinline)) int from_shared(gh_stream_t *s, const gh_azr_t *a,
                                                 const gh_authz_str_t *v, size_t nv, char **arn,
                                                 size_t *arn_len, gh_azr_outcome_t *out)
{
    gh_azr_hold_t *hold = gh_azr_hold_of(s);
    if (hold == NULL)
        return 0;
    gh_azr_sentry_t *e = gh_azr_shared_get(a->shared, gh_azr_shared_hash(a->shared, v, nv), v, nv,
                                           gh_stream_now_ms(s));
    if (e == NULL)
        return 0;
    gh_azr_hold_set(hold, e);
    if (a->conf->format == GH_AUTHORIZER_ENVOY) {
        outcome(out, GH_AZR_OUT_ALLOW, GH_AZR_ALLOWED_CACHED, NULL);
        out->allow = e->p;
        return 1;
    }
    if (!e->result.simple) {
        gh_authz_request_t view;
        if (fill_view(s, a->conf, &view) != 0) {
            outcome(out, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "out of memory");
            return -1;
        }
        if (method_arn(s, &view, arn, arn_len, out) != 0)
            return -1;
    }
    decide(out, &e->result, *arn, *arn_len, 1, &e->p);
    return 1;
}

/* What can be decided without a call: a missing identity source, a
 * token that token_validation refuses, an answer in the cache. 1 with out
 * decided, 0 when a call is needed (vals, *arn hold what was found). */
static inline __attribute__((always_inline)) int without_call(gh_stream_t *s, const gh_azr_t *a,
                                                              gh_authz_str_t *vals, size_t *pnv,
                                                              char **arn, size_t *arn_len,
                                                              gh_azr_outcome_t *out)
{
    const gh_authorizer_conf_t *conf = a->conf;
    size_t nv = *pnv;
    for (size_t i = 0; i < nv; i++) {
        const gh_authz_source_t *src = &conf->sources[i];
        if (src->authorization) {
            /* The stream allows one Authorization field (two are a 400),
             * and the name has no '-' for a '_' spelling to stand for. */
            const gh_h1_header_t *h = gh_stream_authorization(s);
            if (h != NULL && h->value_len > 0) {
                vals[i].p = h->value;
                vals[i].n = h->value_len;
                continue;
            }
        }
        if (!source_value(s, src, &vals[i].p, &vals[i].n)) {
            outcome(out, GH_AZR_OUT_MISSING, GH_AZR_MISSING, "an identity source is missing");
            return 1;
        }
    }
    if (conf->format == GH_AUTHORIZER_AWS_V1_TOKEN && nv > 0) {
        int ok = token_ok(conf, vals[0].p, vals[0].n);
        if (ok == 0) {
            outcome(out, GH_AZR_OUT_MISSING, GH_AZR_TOKEN_INVALID,
                    "the token does not match the authorizer's token_validation");
            return 1;
        }
        if (ok < 0) {
            outcome(out, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "out of memory");
            return 1;
        }
    }
    if (conf->ttl_ms == 0 || nv == 0)
        return 0;
    if (conf->format == GH_AUTHORIZER_ENVOY) {
        if (envoy_key(s, conf, &vals[nv]) != 0) {
            outcome(out, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "out of memory");
            return 1;
        }
        *pnv = ++nv;
    }
    if (a->shared != NULL)
        return from_shared(s, a, vals, nv, arn, arn_len, out) != 0;
    return from_cache(s, a, vals, nv, arn, arn_len, out) != 0;
}

int gh_azr_decided(gh_stream_t *s, const gh_azr_t *a, gh_azr_outcome_t *out)
{
    gh_authz_str_t vals[MAX_VALS];
    size_t nv = a->conf->num_sources < 16 ? a->conf->num_sources : 16;
    char *arn = NULL;
    size_t arn_len = 0;
    return without_call(s, a, vals, &nv, &arn, &arn_len, out);
}

int gh_azr_check(gh_stream_t *s, const gh_azr_t *a, gh_azr_done_cb cb, void *arg,
                 gh_azr_call_t **call, gh_azr_outcome_t *out)
{
    const gh_authorizer_conf_t *conf = a->conf;
    gh_authz_str_t vals[MAX_VALS];
    size_t nv = conf->num_sources < 16 ? conf->num_sources : 16;
    char *arn = NULL;
    size_t arn_len = 0;
    if (without_call(s, a, vals, &nv, &arn, &arn_len, out))
        return 0;
    /* A call: its state in the stream's arena. */
    gh_azr_call_t *c = gh_stream_alloc(s, sizeof(*c));
    if (c == NULL) {
        outcome(out, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "out of memory");
        return 0;
    }
    memset(c, 0, sizeof(*c));
    c->a = a;
    c->cb = cb;
    c->arg = arg;
    c->nv = nv;
    memcpy(c->vals, vals, nv * sizeof(vals[0]));
    c->arn = arn;
    c->arn_len = arn_len;
    gh_authz_request_t view;
    if (fill_view(s, conf, &view) != 0) {
        outcome(out, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "out of memory");
        return 0;
    }
    view.identity = c->vals;
    view.nidentity = conf->num_sources < 16 ? conf->num_sources : 16;
    if (conf->format != GH_AUTHORIZER_ENVOY && c->arn == NULL &&
        method_arn(s, &view, &c->arn, &c->arn_len, out) != 0)
        return 0;
    gh_h1_header_t hs[MAX_ENVOY_HEADERS + 4];
    size_t nh = 0;
    gh_callout_req_t q;
    memset(&q, 0, sizeof(q));
    q.timeout_ms = conf->timeout_ms;
    q.max_body = conf->max_response;
    const char *why = NULL;
    if (conf->format == GH_AUTHORIZER_ENVOY) {
        why = envoy_request(s, a, &q, hs, &nh);
    } else {
        size_t bl = 0;
        int rc = conf->format == GH_AUTHORIZER_AWS_V2 ? gh_authz_event_v2(&view, &c->body, &bl)
                 : conf->format == GH_AUTHORIZER_AWS_V1_TOKEN
                     ? gh_authz_event_v1_token(&view, &c->body, &bl)
                     : gh_authz_event_v1_request(&view, &c->body, &bl);
        if (rc == -EILSEQ) {
            outcome(out, GH_AZR_OUT_BAD, GH_AZR_BAD_REQUEST,
                    "the request holds a string that is not UTF-8");
            out->status = 400;
            return 0;
        }
        if (rc != 0) {
            outcome(out, GH_AZR_OUT_ERROR, GH_AZR_ERROR, "cannot build the authorizer's event");
            return 0;
        }
        q.body_len = bl;
        why = aws_request(s, a, c, &q, hs, &nh);
    }
    if (why == NULL && a->cluster == NULL)
        why = "no cluster";
    q.headers = hs;
    q.num_headers = nh;
    if (why == NULL && (c->handle = gh_stream_pause(s)) == NULL)
        why = "out of memory";
    if (why == NULL) {
        int rc = gh_callout_start(s, a->cluster, &q, on_answer, c, &c->co);
        if (rc != 0) {
            gh_stream_handle_take(c->handle);
            c->handle = NULL;
            count_call(s, a, rc);
            why = rc == GH_CALLOUT_E_POOL_FULL ? "too many authorizer calls in flight"
                                               : "cannot call the authorizer";
        }
    }
    if (why != NULL) {
        GH_LOG(GH_LOG_WARN, "authorizers", "authorizer '%s': %s", conf->name, why);
        call_end(c);
        outcome(out, GH_AZR_OUT_ERROR, GH_AZR_ERROR, why);
        return 0;
    }
    *call = c;
    return 1;
}
