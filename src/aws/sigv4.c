/*
 * AWS Signature Version 4 (header signing, AWS4-HMAC-SHA256), for services
 * other than S3. docs/internals/aws.md walks through it; in short:
 *
 *   CanonicalRequest = Method \n CanonicalURI \n CanonicalQuery \n
 *                      CanonicalHeaders \n SignedHeaders \n hex(SHA256(payload))
 *   StringToSign     = "AWS4-HMAC-SHA256" \n AmzDate \n Scope \n hex(SHA256(CanonicalRequest))
 *   Scope            = YYYYMMDD/region/service/aws4_request
 *   SigningKey       = HMAC(HMAC(HMAC(HMAC("AWS4" secret, YYYYMMDD), region), service),
 *                           "aws4_request")
 *   Signature        = hex(HMAC(SigningKey, StringToSign))
 *
 * The canonical request is never built in memory: it is streamed into the
 * SHA-256 through a small buffer, so its size costs no allocation. Sorting
 * (headers by name, query parameters by encoded name then value) works on
 * index arrays on the stack, bounded by GH_AWS_SIGV4_MAX_*.
 *
 * Where the AWS documentation leaves a choice, this follows botocore, the
 * implementation gatehouse is tested against (tests/integration/
 * test_aws_sigv4.py), and refuses what the two might read differently.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <gatehouse/hex.h>
#include <gatehouse/aws.h>

#include "aws/creds.h"

/* ---- a sink: the canonical request, into SHA-256 (and a trace) ---- */

/* A copy of the canonical request and string to sign, for the unit tests
 * (which include this file) and nothing else: it holds the session token. */
typedef struct {
    char *creq;
    size_t creq_cap, creq_len; /* creq_len may pass creq_cap: truncated */
    char sts[512];
} sigv4_trace_t;

typedef struct {
    EVP_MD_CTX *md;
    unsigned char buf[512];
    size_t n;
    int failed;
    sigv4_trace_t *trace;
} sink_t;

static void sink_flush(sink_t *s)
{
    if (s->n > 0 && EVP_DigestUpdate(s->md, s->buf, s->n) != 1)
        s->failed = 1;
    s->n = 0;
}

static void sink_put(sink_t *s, const void *p, size_t n)
{
    sigv4_trace_t *t = s->trace;
    if (t != NULL) {
        if (t->creq_len < t->creq_cap)
            memcpy(t->creq + t->creq_len, p,
                   n < t->creq_cap - t->creq_len ? n : t->creq_cap - t->creq_len);
        t->creq_len += n;
    }
    if (n >= sizeof(s->buf)) {
        sink_flush(s);
        if (EVP_DigestUpdate(s->md, p, n) != 1)
            s->failed = 1;
        return;
    }
    if (s->n + n > sizeof(s->buf))
        sink_flush(s);
    memcpy(s->buf + s->n, p, n);
    s->n += n;
}

static void sink_byte(sink_t *s, char c)
{
    sink_put(s, &c, 1);
}

static void sink_str(sink_t *s, const char *str)
{
    sink_put(s, str, strlen(str));
}

/* ---- encoding ---- */

static const char hexd[] = "0123456789ABCDEF";
static const char hexl[] = "0123456789abcdef";

/* RFC 3986 section 2.3: the bytes AWS leaves unencoded. */
static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void put_encoded(sink_t *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (is_unreserved(c)) {
            sink_byte(s, (char)c);
        } else {
            char e[3] = {'%', hexd[c >> 4], hexd[c & 15]};
            sink_put(s, e, 3);
        }
    }
}

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexl[p[i] >> 4];
        out[2 * i + 1] = hexl[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* A query name or value as its canonical bytes, one at a time: each raw
 * byte or %XX escape decoded, then encoded again (upper-case hex,
 * unreserved bytes bare). The raw text was checked: every '%' has two hex
 * digits after it. */
typedef struct {
    const unsigned char *p, *end;
    char pend[2];
    int npend;
} qenc_t;

static void qenc_init(qenc_t *it, const char *p, size_t n)
{
    it->p = (const unsigned char *)p;
    it->end = it->p + n;
    it->npend = 0;
}

static int qenc_next(qenc_t *it)
{
    if (it->npend > 0)
        return (unsigned char)it->pend[2 - it->npend--];
    if (it->p == it->end)
        return -1;
    unsigned char c = *it->p++;
    if (c == '%') {
        c = (unsigned char)(gh_hex_value((unsigned char)it->p[0]) << 4 |
                            gh_hex_value((unsigned char)it->p[1]));
        it->p += 2;
    }
    if (is_unreserved(c))
        return c;
    it->pend[0] = hexd[c >> 4];
    it->pend[1] = hexd[c & 15];
    it->npend = 2;
    return '%';
}

static int qenc_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    qenc_t x, y;
    qenc_init(&x, a, an);
    qenc_init(&y, b, bn);
    for (;;) {
        int c = qenc_next(&x), d = qenc_next(&y);
        if (c != d)
            return c < d ? -1 : 1;
        if (c < 0)
            return 0;
    }
}

static void put_qenc(sink_t *s, const char *p, size_t n)
{
    qenc_t it;
    qenc_init(&it, p, n);
    int c;
    while ((c = qenc_next(&it)) >= 0)
        sink_byte(s, (char)c);
}

/* ---- request parts ---- */

/* RFC 9110 section 5.6.2 */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)lower(a[i]), y = (unsigned char)lower(b[i]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static int name_is(const char *a, size_t an, const char *lc)
{
    return name_cmp(a, an, lc, strlen(lc)) == 0;
}

/* Not signed, as botocore does not sign them: hop-by-hop fields and ones a
 * proxy on the way may rewrite. */
static const char *const unsigned_headers[] = {
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
};

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} hdr_t;

/* Values trimmed, and every run of blanks inside one space (the "Trimall"
 * of AWS's documentation; botocore's ' '.join(value.split())). */
static void put_trimmed(sink_t *s, const char *v, size_t n)
{
    size_t i = 0;
    int blank = 0, any = 0;
    for (; i < n; i++) {
        char c = v[i];
        if (c == ' ' || c == '\t') {
            blank = 1;
            continue;
        }
        if (blank && any)
            sink_byte(s, ' ');
        blank = 0;
        any = 1;
        sink_byte(s, c);
    }
}

typedef struct {
    const char *p;
    size_t len;
} seg_t;

typedef struct {
    const char *name, *value;
    size_t name_len, value_len;
} param_t;

/* ---- signing ---- */

static int refuse(gh_aws_sigv4_out_t *out, int e, const char *why)
{
    out->error = why;
    return e;
}

static int hmac(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
    unsigned int n = 32;
    return HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &n) != NULL && n == 32 ? 0 : -1;
}

static int check_request(const gh_aws_sigv4_req_t *req, const gh_aws_creds_t *creds,
                         gh_aws_sigv4_out_t *out)
{
    if (creds == NULL)
        return refuse(out, -EINVAL, "no credentials");
    const char *m = req->method;
    size_t mlen = m != NULL ? strlen(m) : 0;
    if (mlen == 0 || mlen > 32)
        return refuse(out, -EINVAL, "the method is empty or too long");
    for (size_t i = 0; i < mlen; i++)
        if (!is_tchar((unsigned char)m[i]) || (m[i] >= 'a' && m[i] <= 'z'))
            /* botocore upper-cases the method it signs; a lower-case one
             * would be signed as another request than the one sent. */
            return refuse(out, -EINVAL, "the method is not an upper-case token");
    if (!gh_aws_name_is_valid(req->region))
        return refuse(out, -EINVAL, "the region is not 1-63 of a-z, 0-9, '-'");
    if (!gh_aws_name_is_valid(req->service))
        return refuse(out, -EINVAL, "the service is not 1-63 of a-z, 0-9, '-'");
    /* 9999-12-31T23:59:59Z: four-digit years only, as the date format has. */
    if (req->time < 0 || req->time > INT64_C(253402300799))
        return refuse(out, -EINVAL, "the time is before 1970 or after 9999");
    if (req->payload == NULL && req->payload_len > 0)
        return refuse(out, -EINVAL, "no payload but a payload length");
    if (req->path_len > GH_AWS_SIGV4_MAX_PATH)
        return refuse(out, -E2BIG, "the path is too long");
    if (req->path_len > 0 && (req->path == NULL || req->path[0] != '/'))
        return refuse(out, -EINVAL, "the path does not start with '/'");
    for (size_t i = 0; i < req->path_len; i++) {
        unsigned char c = (unsigned char)req->path[i];
        if (c < 0x20 || c == 0x7f || c == '?' || c == '#')
            return refuse(out, -EINVAL, "the path holds a control byte, '?' or '#'");
    }
    if ((req->query == NULL && req->query_len > 0) ||
        (req->headers == NULL && req->num_headers > 0))
        return refuse(out, -EINVAL, "a NULL query or header list with a length");
    if (req->query_len > GH_AWS_SIGV4_MAX_QUERY)
        return refuse(out, -E2BIG, "the query is too long");
    for (size_t i = 0; i < req->query_len; i++) {
        unsigned char c = (unsigned char)req->query[i];
        if (c <= 0x20 || c == 0x7f || c == '#')
            return refuse(out, -EINVAL, "the query holds a control byte, a space or '#'");
        if (c == '%' &&
            (i + 2 >= req->query_len || gh_hex_value((unsigned char)req->query[i + 1]) < 0 ||
             gh_hex_value((unsigned char)req->query[i + 2]) < 0))
            return refuse(out, -EINVAL, "the query has a '%' without two hex digits");
    }
    if (req->num_headers > GH_AWS_SIGV4_MAX_HEADERS)
        return refuse(out, -E2BIG, "too many headers");
    int hosts = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const gh_aws_header_t *h = &req->headers[i];
        if (h->name_len == 0 || h->name_len > 256)
            return refuse(out, -EINVAL, "a header name is empty or too long");
        for (size_t k = 0; k < h->name_len; k++)
            if (!is_tchar((unsigned char)h->name[k]))
                return refuse(out, -EINVAL, "a header name is not a token");
        for (size_t k = 0; k < h->value_len; k++) {
            unsigned char c = (unsigned char)h->value[k];
            /* Bytes past ASCII are read differently by AWS's own
             * implementations (botocore reads them as Latin-1 and signs
             * their UTF-8): refused rather than signed one way. */
            if ((c < 0x20 && c != '\t') || c >= 0x7f)
                return refuse(out, -EINVAL, "a header value holds a control byte or non-ASCII");
        }
        if (name_is(h->name, h->name_len, "host"))
            hosts++;
        if (name_is(h->name, h->name_len, "authorization") ||
            name_is(h->name, h->name_len, "x-amz-date") ||
            name_is(h->name, h->name_len, "x-amz-security-token"))
            return refuse(out, -EINVAL,
                          "Authorization, X-Amz-Date and X-Amz-Security-Token are the signer's");
    }
    if (hosts != 1)
        return refuse(out, -EINVAL, "a request to sign needs exactly one Host header");
    return 0;
}

/* The canonical URI: the path's segments with "", "." and ".." resolved
 * (RFC 3986 section 5.2.4, plus AWS's removal of empty segments), a
 * trailing '/' kept, each segment percent-encoded. */
static int put_path(sink_t *s, const char *path, size_t len, gh_aws_sigv4_out_t *out)
{
    seg_t segs[GH_AWS_SIGV4_MAX_PATH / 2 + 1];
    size_t nseg = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (nseg > 0)
                nseg--;
        } else if (n > 0 && !(n == 1 && path[i] == '.')) {
            if (nseg == sizeof(segs) / sizeof(segs[0]))
                return refuse(out, -E2BIG, "too many path segments");
            segs[nseg].p = path + i;
            segs[nseg++].len = n;
        }
        i = j + 1;
    }
    sink_byte(s, '/');
    for (size_t i = 0; i < nseg; i++) {
        if (i > 0)
            sink_byte(s, '/');
        put_encoded(s, segs[i].p, segs[i].len);
    }
    if (nseg > 0 && path[len - 1] == '/')
        sink_byte(s, '/');
    return 0;
}

static int put_query(sink_t *s, const char *q, size_t len, gh_aws_sigv4_out_t *out)
{
    param_t ps[GH_AWS_SIGV4_MAX_PARAMS];
    size_t np = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && q[j] != '&')
            j++;
        if (j == i)
            return refuse(out, -EINVAL, "the query has an empty parameter");
        if (np == GH_AWS_SIGV4_MAX_PARAMS)
            return refuse(out, -E2BIG, "too many query parameters");
        const char *eq = memchr(q + i, '=', j - i);
        param_t *p = &ps[np++];
        p->name = q + i;
        p->name_len = eq != NULL ? (size_t)(eq - (q + i)) : j - i;
        p->value = eq != NULL ? eq + 1 : q + j;
        p->value_len = eq != NULL ? (size_t)(q + j - (eq + 1)) : 0;
        if (p->name_len == 0)
            return refuse(out, -EINVAL, "the query has a parameter without a name");
        if (j == len - 1)
            return refuse(out, -EINVAL, "the query ends with '&'");
        i = j + 1;
    }
    /* Insertion sort (at most GH_AWS_SIGV4_MAX_PARAMS): by encoded name,
     * then by encoded value. */
    for (size_t i = 1; i < np; i++) {
        param_t t = ps[i];
        size_t k = i;
        while (k > 0) {
            int c = qenc_cmp(ps[k - 1].name, ps[k - 1].name_len, t.name, t.name_len);
            if (c == 0)
                c = qenc_cmp(ps[k - 1].value, ps[k - 1].value_len, t.value, t.value_len);
            if (c <= 0)
                break;
            ps[k] = ps[k - 1];
            k--;
        }
        ps[k] = t;
    }
    for (size_t i = 0; i < np; i++) {
        if (i > 0)
            sink_byte(s, '&');
        put_qenc(s, ps[i].name, ps[i].name_len);
        sink_byte(s, '=');
        put_qenc(s, ps[i].value, ps[i].value_len);
    }
    return 0;
}

static int is_unsigned_header(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(unsigned_headers) / sizeof(unsigned_headers[0]); i++)
        if (name_is(name, len, unsigned_headers[i]))
            return 1;
    return 0;
}

/* The canonical headers (into s) and the signed-headers list (into
 * signed_list[cap], NUL-terminated), in one sorted pass. */
static int put_headers(sink_t *s, const gh_aws_sigv4_req_t *req, const char *amz_date,
                       const gh_aws_creds_t *creds, char *signed_list, size_t cap,
                       gh_aws_sigv4_out_t *out)
{
    hdr_t hs[GH_AWS_SIGV4_MAX_HEADERS + 2];
    size_t nh = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const gh_aws_header_t *h = &req->headers[i];
        if (is_unsigned_header(h->name, h->name_len))
            continue;
        hs[nh++] = (hdr_t){h->name, h->name_len, h->value, h->value_len};
    }
    hs[nh++] = (hdr_t){"x-amz-date", 10, amz_date, 16};
    if (creds->token != NULL)
        hs[nh++] = (hdr_t){"x-amz-security-token", 20, creds->token, creds->token_len};
    /* A stable insertion sort by lower-cased name: the values of a name
     * given several times stay in the order given, and are joined with
     * ',' in it (get-header-value-order in AWS's suite). */
    for (size_t i = 1; i < nh; i++) {
        hdr_t t = hs[i];
        size_t k = i;
        while (k > 0 && name_cmp(hs[k - 1].name, hs[k - 1].name_len, t.name, t.name_len) > 0) {
            hs[k] = hs[k - 1];
            k--;
        }
        hs[k] = t;
    }
    size_t sl = 0;
    for (size_t i = 0; i < nh;) {
        size_t j = i + 1;
        while (j < nh && name_cmp(hs[i].name, hs[i].name_len, hs[j].name, hs[j].name_len) == 0)
            j++;
        if (sl + (sl > 0) + hs[i].name_len >= cap)
            return refuse(out, -E2BIG, "the signed header names are too long");
        if (sl > 0)
            signed_list[sl++] = ';';
        for (size_t k = 0; k < hs[i].name_len; k++) {
            char c = lower(hs[i].name[k]);
            signed_list[sl++] = c;
            sink_byte(s, c);
        }
        sink_byte(s, ':');
        for (size_t k = i; k < j; k++) {
            if (k > i)
                sink_byte(s, ',');
            put_trimmed(s, hs[k].value, hs[k].value_len);
        }
        sink_byte(s, '\n');
        i = j;
    }
    signed_list[sl] = '\0';
    return 0;
}

static int sign(const gh_aws_sigv4_req_t *req, const gh_aws_creds_t *creds, gh_aws_sigv4_out_t *out,
                sigv4_trace_t *trace)
{
    memset(out, 0, sizeof(*out));
    int r = check_request(req, creds, out);
    if (r != 0)
        return r;

    time_t t = (time_t)req->time;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL ||
        strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16)
        return refuse(out, -EINVAL, "the time cannot be formatted");
    char date[9];
    memcpy(date, out->amz_date, 8);
    date[8] = '\0';

    unsigned char h[32];
    unsigned int hl = 0;
    static const unsigned char nothing[1];
    if (EVP_Digest(req->payload_len > 0 ? req->payload : nothing, req->payload_len, h, &hl,
                   EVP_sha256(), NULL) != 1)
        return refuse(out, -ENOMEM, "SHA-256 failed");
    to_hex(h, 32, out->payload_sha256);

    char signed_list[GH_AWS_SIGV4_AUTH_MAX];
    sink_t *s = &(sink_t){.trace = trace};
    if ((s->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(s->md);
        return refuse(out, -ENOMEM, "SHA-256 failed");
    }
    sink_str(s, req->method);
    sink_byte(s, '\n');
    r = put_path(s, req->path, req->path_len, out);
    if (r == 0) {
        sink_byte(s, '\n');
        r = put_query(s, req->query, req->query_len, out);
    }
    if (r == 0) {
        sink_byte(s, '\n');
        r = put_headers(s, req, out->amz_date, creds, signed_list, sizeof(signed_list), out);
    }
    if (r == 0) {
        sink_byte(s, '\n');
        sink_str(s, signed_list);
        sink_byte(s, '\n');
        sink_put(s, out->payload_sha256, 64);
        sink_flush(s);
        if (s->failed || EVP_DigestFinal_ex(s->md, h, &hl) != 1)
            r = refuse(out, -ENOMEM, "SHA-256 failed");
    }
    EVP_MD_CTX_free(s->md);
    if (r != 0)
        return r;

    char creq_hex[65];
    to_hex(h, 32, creq_hex);
    char sts[512];
    int n = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
                     out->amz_date, date, req->region, req->service, creq_hex);
    if (n < 0 || (size_t)n >= sizeof(sts))
        return refuse(out, -E2BIG, "the string to sign is too long");
    if (trace != NULL)
        memcpy(trace->sts, sts, (size_t)n + 1);

    /* The signing key chain. The key material is wiped after use: the
     * derived keys are as good as the secret for a day in this region. */
    unsigned char key[4 + GH_AWS_SECRET_MAX], k1[32], k2[32];
    memcpy(key, "AWS4", 4);
    memcpy(key + 4, creds->secret, creds->secret_len);
    r = hmac(key, 4 + creds->secret_len, date, 8, k1) ||
                hmac(k1, 32, req->region, strlen(req->region), k2) ||
                hmac(k2, 32, req->service, strlen(req->service), k1) ||
                hmac(k1, 32, "aws4_request", 12, k2) || hmac(k2, 32, sts, (size_t)n, h)
            ? -ENOMEM
            : 0;
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    if (r != 0)
        return refuse(out, r, "HMAC-SHA256 failed");
    char sig[65];
    to_hex(h, 32, sig);

    n = snprintf(out->authorization, sizeof(out->authorization),
                 "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                 "Signature=%s",
                 creds->access_key_id, date, req->region, req->service, signed_list, sig);
    if (n < 0 || (size_t)n >= sizeof(out->authorization)) {
        out->authorization[0] = '\0';
        return refuse(out, -E2BIG, "the Authorization value is too long");
    }
    out->authorization_len = (size_t)n;
    out->security_token = creds->token;
    return 0;
}

int gh_aws_sigv4_sign(const gh_aws_sigv4_req_t *req, const gh_aws_creds_t *creds,
                      gh_aws_sigv4_out_t *out)
{
    return sign(req, creds, out, NULL);
}

size_t gh_aws_sigv4_headers(const gh_aws_sigv4_out_t *out, char *buf, size_t cap)
{
    size_t need = sizeof("X-Amz-Date: \r\n") - 1 + 16 + sizeof("Authorization: \r\n") - 1 +
                  out->authorization_len;
    if (out->security_token != NULL)
        need += sizeof("X-Amz-Security-Token: \r\n") - 1 + strlen(out->security_token);
    if (need > cap)
        return need;
    char *p = buf;
#define PUT(s, n)                                                                                  \
    do {                                                                                           \
        memcpy(p, (s), (n));                                                                       \
        p += (n);                                                                                  \
    } while (0)
    PUT("X-Amz-Date: ", 12);
    PUT(out->amz_date, 16);
    PUT("\r\n", 2);
    if (out->security_token != NULL) {
        PUT("X-Amz-Security-Token: ", 22);
        PUT(out->security_token, strlen(out->security_token));
        PUT("\r\n", 2);
    }
    PUT("Authorization: ", 15);
    PUT(out->authorization, out->authorization_len);
    PUT("\r\n", 2);
#undef PUT
    return need;
}
