/*
 * The events API Gateway sends to Lambda functions, built from a request
 * view: the authorizer events (HTTP API payload format 2.0; REST TOKEN and
 * REQUEST) and the proxy events of a function as an upstream (formats 2.0
 * and 1.0). Field names, their order and their forms follow AWS's
 * published example events (docs/internals/authorizers.md names each page).
 *
 * Everything a client sent goes into JSON strings, which must be UTF-8: a
 * value that is not is refused (-EILSEQ) rather than repaired, so that an
 * authorizer never decides on bytes other than those the upstream gets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include <gatehouse/hex.h>
#include <gatehouse/pairs.h>

#include "authorizer/authz.h"

/* ---- small helpers ---- */

int gh_authz_utf8_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t k;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= k)
            return 0;
        for (size_t i = 1; i <= k; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += k + 1;
    }
    return 1;
}

static int ieq(const char *a, size_t an, const char *lit)
{
    size_t ln = strlen(lit);
    if (an != ln)
        return 0;
    for (size_t i = 0; i < an; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c | 0x20);
        if (c != lit[i])
            return 0;
    }
    return 1;
}

/* The builder's state: the first error wins and every later call is a
 * no-op, so that the event functions read as the event's shape. */
typedef struct {
    int err;
} bld_t;

static void fail(bld_t *b, int err)
{
    if (b->err == 0)
        b->err = err;
}

static json_t *S(bld_t *b, const char *p, size_t n)
{
    if (b->err != 0)
        return NULL;
    if (p == NULL)
        p = "", n = 0;
    if (!gh_authz_utf8_ok(p, n)) {
        fail(b, -EILSEQ);
        return NULL;
    }
    json_t *v = json_stringn_nocheck(p, n);
    if (v == NULL)
        fail(b, -ENOMEM);
    return v;
}

static json_t *CS(bld_t *b, const char *s)
{
    return S(b, s, s != NULL ? strlen(s) : 0);
}

/* The method as API Gateway's events carry it, upper case: Werkzeug
 * (Flask) and Django upper-case it, so "delete" is DELETE upstream, and an
 * authorizer must decide on that (an IAM Deny on DELETE, a handler's
 * httpMethod == "DELETE"). */
static void upper(char *d, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
}

static json_t *METHOD(bld_t *b, const gh_authz_request_t *r)
{
    if (b->err != 0)
        return NULL;
    char *m = malloc(r->method.n + 1);
    if (m == NULL) {
        fail(b, -ENOMEM);
        return NULL;
    }
    upper(m, r->method.p != NULL ? r->method.p : "", r->method.n);
    json_t *v = S(b, m, r->method.n);
    free(m);
    return v;
}

static json_t *OBJ(bld_t *b)
{
    json_t *v = b->err == 0 ? json_object() : NULL;
    if (v == NULL)
        fail(b, -ENOMEM);
    return v;
}

static json_t *ARR(bld_t *b)
{
    json_t *v = b->err == 0 ? json_array() : NULL;
    if (v == NULL)
        fail(b, -ENOMEM);
    return v;
}

static json_t *INT(bld_t *b, int64_t i)
{
    json_t *v = b->err == 0 ? json_integer((json_int_t)i) : NULL;
    if (v == NULL)
        fail(b, -ENOMEM);
    return v;
}

static json_t *NUL(bld_t *b)
{
    (void)b;
    return json_null(); /* a static singleton: never fails */
}

/* Sets o[k] = v, taking v; keys of the caller's (already checked) bytes. */
static void putn(bld_t *b, json_t *o, const char *k, size_t kn, json_t *v)
{
    if (v == NULL || o == NULL) {
        fail(b, -ENOMEM);
        json_decref(v);
        return;
    }
    if (json_object_setn_new_nocheck(o, k, kn, v) != 0)
        fail(b, -ENOMEM);
}

static void put(bld_t *b, json_t *o, const char *k, json_t *v)
{
    putn(b, o, k, strlen(k), v);
}

static void push(bld_t *b, json_t *a, json_t *v)
{
    if (v == NULL || a == NULL) {
        fail(b, -ENOMEM);
        json_decref(v);
        return;
    }
    if (json_array_append_new(a, v) != 0)
        fail(b, -ENOMEM);
}

static const char *or_default(const char *s, const char *dflt)
{
    return s != NULL ? s : dflt;
}

/* The request's field of this (lower-case) name: the last one, or the
 * first when first is set. */
static const gh_h1_header_t *field(const gh_authz_request_t *r, const char *name, int first)
{
    const gh_h1_header_t *found = NULL;
    for (size_t i = 0; i < r->nheaders; i++)
        if (ieq(r->headers[i].name, r->headers[i].name_len, name)) {
            found = &r->headers[i];
            if (first)
                break;
        }
    return found;
}

static gh_authz_str_t user_agent(const gh_authz_request_t *r)
{
    if (r->user_agent.p != NULL)
        return r->user_agent;
    const gh_h1_header_t *h = field(r, "user-agent", 0);
    return h != NULL ? (gh_authz_str_t){h->value, h->value_len} : (gh_authz_str_t){"", 0};
}

/* domainName: the Host without its port (API Gateway's never has one);
 * domainPrefix: its first label. */
static gh_authz_str_t domain_name(const gh_authz_request_t *r)
{
    gh_authz_str_t h = r->host;
    if (h.p == NULL) {
        const gh_h1_header_t *f = field(r, "host", 1);
        h = f != NULL ? (gh_authz_str_t){f->value, f->value_len} : (gh_authz_str_t){"", 0};
    }
    if (h.n > 0 && h.p[0] == '[') {
        const char *close = memchr(h.p, ']', h.n);
        if (close != NULL)
            h.n = (size_t)(close - h.p) + 1;
        return h;
    }
    const char *colon = memchr(h.p, ':', h.n);
    if (colon != NULL)
        h.n = (size_t)(colon - h.p);
    return h;
}

static gh_authz_str_t domain_prefix(gh_authz_str_t d)
{
    if (d.n > 0 && d.p[0] == '[')
        return d;
    const char *dot = memchr(d.p, '.', d.n);
    if (dot != NULL)
        d.n = (size_t)(dot - d.p);
    return d;
}

static gh_authz_str_t protocol(const gh_authz_request_t *r)
{
    return r->protocol.p != NULL ? r->protocol : (gh_authz_str_t){"HTTP/1.1", 8};
}

void gh_authz_time_format(int64_t ms, char out[27])
{
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t secs = ms / 1000 - (ms % 1000 < 0);
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
        memset(&tm, 0, sizeof(tm)), tm.tm_mday = 1, tm.tm_year = 70;
    /* "%d/%b/%Y:%H:%M:%S +0000" with English month names whatever the
     * locale (strftime's %b is not) */
    out[0] = (char)('0' + tm.tm_mday / 10);
    out[1] = (char)('0' + tm.tm_mday % 10);
    out[2] = '/';
    memcpy(out + 3, months[tm.tm_mon], 3);
    out[6] = '/';
    int y = tm.tm_year + 1900;
    out[7] = (char)('0' + y / 1000);
    out[8] = (char)('0' + y / 100 % 10);
    out[9] = (char)('0' + y / 10 % 10);
    out[10] = (char)('0' + y % 10);
    out[11] = ':';
    out[12] = (char)('0' + tm.tm_hour / 10);
    out[13] = (char)('0' + tm.tm_hour % 10);
    out[14] = ':';
    out[15] = (char)('0' + tm.tm_min / 10);
    out[16] = (char)('0' + tm.tm_min % 10);
    out[17] = ':';
    out[18] = (char)('0' + tm.tm_sec / 10);
    out[19] = (char)('0' + tm.tm_sec % 10);
    memcpy(out + 20, " +0000", 7);
}

long gh_authz_method_arn(const gh_authz_request_t *r, char *out, size_t cap)
{
    if (r->region == NULL || r->account_id == NULL || r->api_id == NULL || r->method.p == NULL)
        return -EINVAL;
    const char *path = r->path.p != NULL ? r->path.p : "";
    size_t pn = r->path.p != NULL ? r->path.n : 0;
    if (pn > 0 && path[0] == '/')
        path++, pn--;
    const char *stage = or_default(r->stage, "$default");
    size_t need = strlen("arn:aws:execute-api:") + strlen(r->region) + 1 + strlen(r->account_id) +
                  1 + strlen(r->api_id) + 1 + strlen(stage) + 1 + r->method.n + 1 + pn;
    if (need > GH_AUTHZ_MAX_ARN)
        return -E2BIG;
    if (need + 1 > cap)
        return -ENOBUFS;
    char *p = out;
#define APPEND(s, n) (memcpy(p, (s), (n)), p += (n))
    APPEND("arn:aws:execute-api:", 20);
    APPEND(r->region, strlen(r->region));
    *p++ = ':';
    APPEND(r->account_id, strlen(r->account_id));
    *p++ = ':';
    APPEND(r->api_id, strlen(r->api_id));
    *p++ = '/';
    APPEND(stage, strlen(stage));
    *p++ = '/';
    upper(p, r->method.p, r->method.n);
    p += r->method.n;
    *p++ = '/';
    APPEND(path, pn);
#undef APPEND
    *p = '\0';
    return (long)(p - out);
}

static json_t *arn(bld_t *b, const gh_authz_request_t *r)
{
    if (b->err != 0)
        return NULL;
    char buf[GH_AUTHZ_MAX_ARN + 1];
    long n = gh_authz_method_arn(r, buf, sizeof(buf));
    if (n < 0) {
        fail(b, (int)n);
        return NULL;
    }
    return S(b, buf, (size_t)n);
}

/* ---- headers ---- */

/* Format 2.0: names in lower case, repeats joined with ',' (API Gateway:
 * "Duplicate headers are combined with commas"), Cookie fields left out
 * (they are the cookies array). */
static json_t *headers_v2(bld_t *b, const gh_authz_request_t *r)
{
    json_t *o = OBJ(b);
    for (size_t i = 0; i < r->nheaders && b->err == 0; i++) {
        const gh_h1_header_t *h = &r->headers[i];
        if (ieq(h->name, h->name_len, "cookie"))
            continue;
        char *name = malloc(h->name_len ? h->name_len : 1);
        if (name == NULL) {
            fail(b, -ENOMEM);
            break;
        }
        for (size_t k = 0; k < h->name_len; k++) {
            char c = h->name[k];
            name[k] = c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c;
        }
        if (!gh_authz_utf8_ok(name, h->name_len)) {
            fail(b, -EILSEQ);
        } else {
            json_t *prev = json_object_getn(o, name, h->name_len);
            if (prev == NULL) {
                putn(b, o, name, h->name_len, S(b, h->value, h->value_len));
            } else {
                size_t pn = json_string_length(prev), n = pn + 1 + h->value_len;
                char *joined = malloc(n);
                if (joined == NULL) {
                    fail(b, -ENOMEM);
                } else {
                    memcpy(joined, json_string_value(prev), pn);
                    joined[pn] = ',';
                    memcpy(joined + pn + 1, h->value, h->value_len);
                    putn(b, o, name, h->name_len, S(b, joined, n));
                    free(joined);
                }
            }
        }
        free(name);
    }
    return o;
}

/* Format 1.0: names as the client spelled them (the first spelling of a
 * name repeated in another case), headers the last value of each,
 * multiValueHeaders all of them in order. */
static void headers_v1(bld_t *b, const gh_authz_request_t *r, json_t **single, json_t **multi)
{
    *single = OBJ(b);
    *multi = OBJ(b);
    for (size_t i = 0; i < r->nheaders && b->err == 0; i++) {
        const gh_h1_header_t *h = &r->headers[i], *first = h;
        for (size_t j = 0; j < i; j++)
            if (r->headers[j].name_len == h->name_len &&
                strncasecmp(r->headers[j].name, h->name, h->name_len) == 0) {
                first = &r->headers[j];
                break;
            }
        if (!gh_authz_utf8_ok(first->name, first->name_len)) {
            fail(b, -EILSEQ);
            break;
        }
        putn(b, *single, first->name, first->name_len, S(b, h->value, h->value_len));
        json_t *a = json_object_getn(*multi, first->name, first->name_len);
        if (a == NULL) {
            a = ARR(b);
            putn(b, *multi, first->name, first->name_len, a);
        }
        push(b, a, S(b, h->value, h->value_len));
    }
}

/* ---- query ---- */

/* Percent escapes and '+' as a space, as API Gateway decodes query
 * parameters; a '%' without two hex digits stands for itself. out has room
 * for n bytes. */
static size_t query_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && (hi = gh_hex_value((unsigned char)s[i + 1])) >= 0 &&
                   (lo = gh_hex_value((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* Calls each(name, value) for every parameter with a non-empty name,
 * decoded. */
typedef void (*param_cb)(bld_t *b, void *arg, const char *k, size_t kn, const char *v, size_t vn);

static void query_each(bld_t *b, const gh_authz_request_t *r, param_cb each, void *arg)
{
    if (r->query.p == NULL || r->query.n == 0)
        return;
    char *buf = malloc(r->query.n);
    if (buf == NULL) {
        fail(b, -ENOMEM);
        return;
    }
    gh_pairs_t it;
    gh_pair_t pr;
    gh_pairs_init(&it, r->query.p, r->query.n, '&');
    while (b->err == 0 && gh_pairs_next(&it, &pr)) {
        size_t kn = query_decode(pr.name, pr.name_len, buf);
        size_t vn = query_decode(pr.value, pr.value_len, buf + kn);
        if (kn == 0)
            continue;
        if (!gh_authz_utf8_ok(buf, kn)) {
            fail(b, -EILSEQ);
            break;
        }
        each(b, arg, buf, kn, buf + kn, vn);
    }
    free(buf);
}

static void q_join(bld_t *b, void *arg, const char *k, size_t kn, const char *v, size_t vn)
{
    json_t *o = arg, *prev = json_object_getn(o, k, kn);
    if (prev == NULL) {
        putn(b, o, k, kn, S(b, v, vn));
        return;
    }
    size_t pn = json_string_length(prev);
    char *joined = malloc(pn + 1 + vn);
    if (joined == NULL) {
        fail(b, -ENOMEM);
        return;
    }
    memcpy(joined, json_string_value(prev), pn);
    joined[pn] = ',';
    memcpy(joined + pn + 1, v, vn);
    putn(b, o, k, kn, S(b, joined, pn + 1 + vn));
    free(joined);
}

typedef struct {
    json_t *single, *multi;
} q_v1_t;

static void q_v1(bld_t *b, void *arg, const char *k, size_t kn, const char *v, size_t vn)
{
    q_v1_t *q = arg;
    putn(b, q->single, k, kn, S(b, v, vn));
    json_t *a = json_object_getn(q->multi, k, kn);
    if (a == NULL) {
        a = ARR(b);
        putn(b, q->multi, k, kn, a);
    }
    push(b, a, S(b, v, vn));
}

/* ---- the rest ---- */

static json_t *cookies(bld_t *b, const gh_authz_request_t *r)
{
    json_t *a = ARR(b);
    if (r->cookies != NULL) {
        for (size_t i = 0; i < r->ncookies; i++)
            push(b, a, S(b, r->cookies[i].p, r->cookies[i].n));
        return a;
    }
    for (size_t i = 0; i < r->nheaders && b->err == 0; i++) {
        const gh_h1_header_t *h = &r->headers[i];
        if (!ieq(h->name, h->name_len, "cookie"))
            continue;
        gh_pairs_t it;
        gh_pair_t pr;
        gh_pairs_init(&it, h->value, h->value_len, ';');
        while (gh_pairs_next(&it, &pr)) {
            size_t n = pr.raw_len;
            while (n > 0 && (pr.raw[n - 1] == ' ' || pr.raw[n - 1] == '\t'))
                n--;
            if (n > 0)
                push(b, a, S(b, pr.raw, n));
        }
    }
    return a;
}

static json_t *kvs(bld_t *b, const gh_authz_kv_t *kv, size_t n)
{
    json_t *o = OBJ(b);
    for (size_t i = 0; i < n && b->err == 0; i++) {
        if (kv[i].name == NULL || !gh_authz_utf8_ok(kv[i].name, strlen(kv[i].name))) {
            fail(b, -EILSEQ);
            break;
        }
        put(b, o, kv[i].name, CS(b, kv[i].value));
    }
    return o;
}

static json_t *identity_array(bld_t *b, const gh_authz_request_t *r)
{
    json_t *a = ARR(b);
    for (size_t i = 0; i < r->nidentity; i++)
        push(b, a, S(b, r->identity[i].p, r->identity[i].n));
    return a;
}

static json_t *http_v2(bld_t *b, const gh_authz_request_t *r)
{
    json_t *o = OBJ(b);
    gh_authz_str_t ua = user_agent(r), proto = protocol(r);
    put(b, o, "method", METHOD(b, r));
    put(b, o, "path", S(b, r->path.p, r->path.n));
    put(b, o, "protocol", S(b, proto.p, proto.n));
    put(b, o, "sourceIp", S(b, r->source_ip.p, r->source_ip.n));
    put(b, o, "userAgent", S(b, ua.p, ua.n));
    return o;
}

static json_t *context_v2(bld_t *b, const gh_authz_request_t *r)
{
    json_t *o = OBJ(b);
    char tbuf[27];
    gh_authz_time_format(r->time_ms, tbuf);
    gh_authz_str_t dn = domain_name(r), dp = domain_prefix(dn);
    put(b, o, "accountId", CS(b, r->account_id));
    put(b, o, "apiId", CS(b, r->api_id));
    put(b, o, "domainName", S(b, dn.p, dn.n));
    put(b, o, "domainPrefix", S(b, dp.p, dp.n));
    put(b, o, "http", http_v2(b, r));
    put(b, o, "requestId", S(b, r->request_id.p, r->request_id.n));
    put(b, o, "routeKey", CS(b, or_default(r->route_key, "$default")));
    put(b, o, "stage", CS(b, or_default(r->stage, "$default")));
    put(b, o, "time", CS(b, tbuf));
    put(b, o, "timeEpoch", INT(b, r->time_ms));
    return o;
}

/* The fields both format 2.0 events share, from routeKey to
 * queryStringParameters; absent ones (no cookies, no query) are left out
 * as in AWS's captured events. */
static void common_v2(bld_t *b, json_t *o, const gh_authz_request_t *r)
{
    put(b, o, "routeKey", CS(b, or_default(r->route_key, "$default")));
    put(b, o, "rawPath", S(b, r->path.p, r->path.n));
    put(b, o, "rawQueryString", S(b, r->query.p, r->query.n));
    json_t *c = cookies(b, r);
    if (c != NULL && json_array_size(c) > 0)
        put(b, o, "cookies", c);
    else
        json_decref(c);
    put(b, o, "headers", headers_v2(b, r));
    json_t *q = OBJ(b);
    if (q != NULL)
        query_each(b, r, q_join, q);
    if (q != NULL && json_object_size(q) > 0)
        put(b, o, "queryStringParameters", q);
    else
        json_decref(q);
}

static void params_v2(bld_t *b, json_t *o, const gh_authz_request_t *r)
{
    if (r->npath_params > 0)
        put(b, o, "pathParameters", kvs(b, r->path_params, r->npath_params));
    if (r->nstage_vars > 0)
        put(b, o, "stageVariables", kvs(b, r->stage_vars, r->nstage_vars));
}

static int finish(bld_t *b, json_t *root, char **out, size_t *len)
{
    *out = NULL;
    if (len != NULL)
        *len = 0;
    if (b->err == 0 && root == NULL)
        b->err = -ENOMEM;
    if (b->err == 0) {
        *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (*out == NULL)
            b->err = -ENOMEM;
        else if (len != NULL)
            *len = strlen(*out);
    }
    json_decref(root);
    return b->err;
}

static int check_config(const gh_authz_request_t *r)
{
    if (r->account_id == NULL || r->api_id == NULL || r->region == NULL || r->method.p == NULL)
        return -EINVAL;
    return 0;
}

int gh_authz_event_v2(const gh_authz_request_t *r, char **out, size_t *len)
{
    bld_t b = {check_config(r)};
    json_t *o = OBJ(&b);
    put(&b, o, "version", CS(&b, "2.0"));
    put(&b, o, "type", CS(&b, "REQUEST"));
    put(&b, o, "routeArn", arn(&b, r));
    put(&b, o, "identitySource", identity_array(&b, r));
    common_v2(&b, o, r);
    put(&b, o, "requestContext", context_v2(&b, r));
    params_v2(&b, o, r);
    return finish(&b, o, out, len);
}

int gh_authz_event_v1_token(const gh_authz_request_t *r, char **out, size_t *len)
{
    bld_t b = {check_config(r)};
    json_t *o = OBJ(&b);
    put(&b, o, "type", CS(&b, "TOKEN"));
    if (r->nidentity > 0)
        put(&b, o, "authorizationToken", S(&b, r->identity[0].p, r->identity[0].n));
    else
        put(&b, o, "authorizationToken", CS(&b, ""));
    put(&b, o, "methodArn", arn(&b, r));
    return finish(&b, o, out, len);
}

static json_t *identity_v1(bld_t *b, const gh_authz_request_t *r)
{
    json_t *o = OBJ(b);
    gh_authz_str_t ua = user_agent(r);
    put(b, o, "sourceIp", S(b, r->source_ip.p, r->source_ip.n));
    put(b, o, "userAgent", S(b, ua.p, ua.n));
    return o;
}

static json_t *context_v1(bld_t *b, const gh_authz_request_t *r)
{
    json_t *o = OBJ(b);
    char tbuf[27];
    gh_authz_time_format(r->time_ms, tbuf);
    gh_authz_str_t dn = domain_name(r), dp = domain_prefix(dn), proto = protocol(r);
    const char *resource = r->resource;
    put(b, o, "accountId", CS(b, r->account_id));
    put(b, o, "apiId", CS(b, r->api_id));
    put(b, o, "domainName", S(b, dn.p, dn.n));
    put(b, o, "domainPrefix", S(b, dp.p, dp.n));
    put(b, o, "extendedRequestId", S(b, r->request_id.p, r->request_id.n));
    put(b, o, "httpMethod", METHOD(b, r));
    put(b, o, "identity", identity_v1(b, r));
    put(b, o, "path", S(b, r->path.p, r->path.n));
    put(b, o, "protocol", S(b, proto.p, proto.n));
    put(b, o, "requestId", S(b, r->request_id.p, r->request_id.n));
    put(b, o, "requestTime", CS(b, tbuf));
    put(b, o, "requestTimeEpoch", INT(b, r->time_ms));
    put(b, o, "resourceId", r->resource_id != NULL ? CS(b, r->resource_id) : NUL(b));
    put(b, o, "resourcePath", resource != NULL ? CS(b, resource) : S(b, r->path.p, r->path.n));
    put(b, o, "stage", CS(b, or_default(r->stage, "$default")));
    return o;
}

/* resource, path, httpMethod, headers, multiValueHeaders and both query
 * maps of the format 1.0 events. Empty maps are {} in the authorizer
 * event (AWS's example has "pathParameters": {}) and null in the proxy
 * event (its example has "pathParameters": null). */
static void common_v1(bld_t *b, json_t *o, const gh_authz_request_t *r, int empty_null)
{
    put(b, o, "resource", r->resource != NULL ? CS(b, r->resource) : S(b, r->path.p, r->path.n));
    put(b, o, "path", S(b, r->path.p, r->path.n));
    put(b, o, "httpMethod", METHOD(b, r));
    json_t *h, *mh;
    headers_v1(b, r, &h, &mh);
    put(b, o, "headers", h);
    put(b, o, "multiValueHeaders", mh);
    q_v1_t q = {OBJ(b), OBJ(b)};
    if (q.single != NULL && q.multi != NULL)
        query_each(b, r, q_v1, &q);
    if (empty_null && q.single != NULL && json_object_size(q.single) == 0) {
        json_decref(q.single);
        json_decref(q.multi);
        put(b, o, "queryStringParameters", NUL(b));
        put(b, o, "multiValueQueryStringParameters", NUL(b));
    } else {
        put(b, o, "queryStringParameters", q.single);
        put(b, o, "multiValueQueryStringParameters", q.multi);
    }
}

static void params_v1(bld_t *b, json_t *o, const gh_authz_request_t *r, int empty_null)
{
    if (empty_null && r->npath_params == 0)
        put(b, o, "pathParameters", NUL(b));
    else
        put(b, o, "pathParameters", kvs(b, r->path_params, r->npath_params));
    if (empty_null && r->nstage_vars == 0)
        put(b, o, "stageVariables", NUL(b));
    else
        put(b, o, "stageVariables", kvs(b, r->stage_vars, r->nstage_vars));
}

int gh_authz_event_v1_request(const gh_authz_request_t *r, char **out, size_t *len)
{
    bld_t b = {check_config(r)};
    json_t *o = OBJ(&b);
    put(&b, o, "type", CS(&b, "REQUEST"));
    put(&b, o, "methodArn", arn(&b, r));
    common_v1(&b, o, r, 0);
    params_v1(&b, o, r, 0);
    put(&b, o, "requestContext", context_v1(&b, r));
    return finish(&b, o, out, len);
}

/* ---- proxy events ---- */

int gh_lambda_body_is_text(const char *ct, size_t n)
{
    if (ct == NULL)
        return 0;
    size_t end = 0;
    while (end < n && ct[end] != ';' && ct[end] != ' ' && ct[end] != '\t')
        end++;
    if (end > 5 && strncasecmp(ct, "text/", 5) == 0)
        return 1;
    return ieq(ct, end, "application/json") || ieq(ct, end, "application/xml") ||
           ieq(ct, end, "application/javascript");
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding (RFC 4648 section 4), as API Gateway
 * encodes bodies. */
static json_t *base64(bld_t *b, const unsigned char *in, size_t n)
{
    if (b->err != 0)
        return NULL;
    size_t olen = (n + 2) / 3 * 4;
    char *out = malloc(olen + 1);
    if (out == NULL) {
        fail(b, -ENOMEM);
        return NULL;
    }
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = b64chars[v >> 6 & 63];
        out[o++] = b64chars[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    json_t *v = json_stringn_nocheck(out, o);
    free(out);
    if (v == NULL)
        fail(b, -ENOMEM);
    return v;
}

/* body and isBase64Encoded: text when the Content-Type says so and the
 * bytes are UTF-8 (a "text" body that is not cannot be a JSON string, so
 * it goes base64 like any binary one). */
static void body(bld_t *b, json_t *o, const gh_authz_request_t *r, int v1)
{
    if (r->body == NULL || r->body_len == 0) {
        if (v1)
            put(b, o, "body", NUL(b));
        put(b, o, "isBase64Encoded", json_false());
        return;
    }
    const gh_h1_header_t *ct = field(r, "content-type", 1);
    int text = ct != NULL && gh_lambda_body_is_text(ct->value, ct->value_len) &&
               gh_authz_utf8_ok((const char *)r->body, r->body_len);
    put(b, o, "body",
        text ? S(b, (const char *)r->body, r->body_len) : base64(b, r->body, r->body_len));
    put(b, o, "isBase64Encoded", text ? json_false() : json_true());
}

int gh_lambda_event_v2(const gh_authz_request_t *r, char **out, size_t *len)
{
    bld_t b = {check_config(r)};
    json_t *o = OBJ(&b);
    put(&b, o, "version", CS(&b, "2.0"));
    common_v2(&b, o, r);
    put(&b, o, "requestContext", context_v2(&b, r));
    body(&b, o, r, 0);
    params_v2(&b, o, r);
    return finish(&b, o, out, len);
}

int gh_lambda_event_v1(const gh_authz_request_t *r, char **out, size_t *len)
{
    bld_t b = {check_config(r)};
    json_t *o = OBJ(&b);
    put(&b, o, "version", CS(&b, "1.0"));
    common_v1(&b, o, r, 1);
    put(&b, o, "requestContext", context_v1(&b, r));
    params_v1(&b, o, r, 1);
    body(&b, o, r, 1);
    return finish(&b, o, out, len);
}
