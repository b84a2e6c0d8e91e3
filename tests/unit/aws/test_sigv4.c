/*
 * Signature Version 4 (src/aws/sigv4.c): AWS's published test suite (every
 * vector in tests/unit/aws/sigv4_suite/, checked at the canonical request,
 * the string to sign and the Authorization value), then what the suite does
 * not cover: the double encoding of paths, query normalization, bounds and
 * every refusal.
 */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../../src/aws/sigv4.c"

#define AK "AKIDEXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
/* 2015-08-30T12:36:00Z, the suite's signing time */
#define SUITE_TIME INT64_C(1440938160)

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* The suite's files were written on machines with either line ending. */
static void strip_cr(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++)
        if (*r != '\r')
            *w++ = *r;
    *w = '\0';
}

static char suite_dir[4096];

/* ---- one vector ---- */

typedef struct {
    char method[16];
    char path[1024];
    char query[1024];
    gh_aws_header_t headers[32];
    size_t num_headers;
    char store[8192]; /* header names and values */
    const char *body;
    size_t body_len;
    char token[1024];
} parsed_req_t;

/* Parses a .req: "METHOD target HTTP/1.1", header lines (an indented line
 * continues the one above: obs-fold, unfolded to one space as RFC 9112
 * section 5.2 allows), a blank line, the body. X-Amz-Date is checked and
 * dropped (the signer adds it); X-Amz-Security-Token becomes the token. */
static void parse_req(char *text, size_t len, parsed_req_t *r)
{
    memset(r, 0, sizeof(*r));
    strip_cr(text);
    len = strlen(text);
    char *end = text + len;
    char *nl = strchr(text, '\n');
    char *line_end = nl != NULL ? nl : end;
    char *sp1 = memchr(text, ' ', (size_t)(line_end - text));
    char *sp2 = line_end;
    while (sp2 > sp1 && sp2[-1] != ' ')
        sp2--;
    assert_non_null(sp1);
    assert_true(sp2 - 1 > sp1);
    snprintf(r->method, sizeof(r->method), "%.*s", (int)(sp1 - text), text);
    char *target = sp1 + 1;
    size_t tlen = (size_t)(sp2 - 1 - target);
    char *q = memchr(target, '?', tlen);
    if (q != NULL) {
        snprintf(r->path, sizeof(r->path), "%.*s", (int)(q - target), target);
        snprintf(r->query, sizeof(r->query), "%.*s", (int)(target + tlen - q - 1), q + 1);
    } else {
        snprintf(r->path, sizeof(r->path), "%.*s", (int)tlen, target);
    }
    char *p = nl != NULL ? nl + 1 : end;
    size_t used = 0;
    while (p < end) {
        char *e = strchr(p, '\n');
        if (e == NULL)
            e = end;
        if (e == p) { /* the blank line: the body follows */
            p = e + 1 <= end ? e + 1 : end;
            r->body = p;
            r->body_len = (size_t)(end - p);
            return;
        }
        if (*p == ' ' || *p == '\t') {
            assert_true(r->num_headers > 0);
            gh_aws_header_t *h = &r->headers[r->num_headers - 1];
            /* values are stored last in store: extend in place */
            assert_ptr_equal(h->value + h->value_len, r->store + used);
            r->store[used++] = ' ';
            memcpy(r->store + used, p, (size_t)(e - p));
            used += (size_t)(e - p);
            h->value_len += 1 + (size_t)(e - p);
        } else {
            char *colon = memchr(p, ':', (size_t)(e - p));
            assert_non_null(colon);
            gh_aws_header_t *h = &r->headers[r->num_headers++];
            char *name = r->store + used;
            memcpy(name, p, (size_t)(colon - p));
            used += (size_t)(colon - p);
            char *value = r->store + used;
            memcpy(value, colon + 1, (size_t)(e - colon - 1));
            used += (size_t)(e - colon - 1);
            *h = (gh_aws_header_t){name, (size_t)(colon - p), value, (size_t)(e - colon - 1)};
        }
        assert_true(used < sizeof(r->store) - 1024);
        p = e < end ? e + 1 : end;
    }
    r->body = end;
}

static void drop_header(parsed_req_t *r, size_t i)
{
    memmove(&r->headers[i], &r->headers[i + 1], (r->num_headers - i - 1) * sizeof(r->headers[0]));
    r->num_headers--;
}

static void run_vector(const char *dir, const char *name)
{
    char path[4096];
    char *files[5];
    static const char *const ext[] = {"req", "creq", "sts", "authz", "sreq"};
    size_t reqlen = 0;
    for (int i = 0; i < 5; i++) {
        if (snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext[i]) >= (int)sizeof(path))
            fail_msg("path too long");
        files[i] = slurp(path, i == 0 ? &reqlen : NULL);
        if (files[i] == NULL)
            fail_msg("%s: cannot read", path);
        if (i > 0)
            strip_cr(files[i]);
    }
    parsed_req_t *r = malloc(sizeof(*r));
    parse_req(files[0], reqlen, r);
    for (size_t i = 0; i < r->num_headers;) {
        const gh_aws_header_t *h = &r->headers[i];
        if (name_is(h->name, h->name_len, "x-amz-date")) {
            if (h->value_len != 16 || memcmp(h->value, "20150830T123600Z", 16) != 0)
                fail_msg("%s: unexpected X-Amz-Date", name);
            drop_header(r, i);
        } else if (name_is(h->name, h->name_len, "x-amz-security-token")) {
            snprintf(r->token, sizeof(r->token), "%.*s", (int)h->value_len, h->value);
            drop_header(r, i);
        } else {
            i++;
        }
    }
    /* A token the request does not carry but its canonical request signs
     * (get-vanilla-with-session-token): botocore's suite runner takes it
     * from there too. */
    const char *tl = strstr(files[1], "\nx-amz-security-token:");
    if (r->token[0] == '\0' && tl != NULL) {
        tl += strlen("\nx-amz-security-token:");
        snprintf(r->token, sizeof(r->token), "%.*s", (int)strcspn(tl, "\n"), tl);
    }
    char err[256];
    gh_aws_creds_t *c = gh_aws_creds_new(AK, SK, r->token, err, sizeof(err));
    assert_non_null(c);
    gh_aws_sigv4_req_t req = {
        .method = r->method,
        .path = r->path,
        .path_len = strlen(r->path),
        .query = r->query,
        .query_len = strlen(r->query),
        .headers = r->headers,
        .num_headers = r->num_headers,
        .payload = r->body,
        .payload_len = r->body_len,
        .region = "us-east-1",
        .service = "service",
        .time = SUITE_TIME,
    };
    char creq[8192];
    sigv4_trace_t tr = {.creq = creq, .creq_cap = sizeof(creq) - 1};
    gh_aws_sigv4_out_t out;
    int rc = sign(&req, c, &out, &tr);
    if (rc != 0)
        fail_msg("%s: sign: %d %s", name, rc, out.error);
    assert_true(tr.creq_len < sizeof(creq));
    creq[tr.creq_len] = '\0';
    if (strcmp(creq, files[1]) != 0)
        fail_msg("%s: canonical request\n--- got\n%s\n--- want\n%s", name, creq, files[1]);
    if (strcmp(tr.sts, files[2]) != 0)
        fail_msg("%s: string to sign\n--- got\n%s\n--- want\n%s", name, tr.sts, files[2]);
    if (strcmp(out.authorization, files[3]) != 0)
        fail_msg("%s: authorization\n--- got\n%s\n--- want\n%s", name, out.authorization, files[3]);
    assert_int_equal(out.authorization_len, strlen(files[3]));
    assert_string_equal(out.amz_date, "20150830T123600Z");
    /* The signed request carries what the signer returned. */
    char hdrs[2048];
    size_t hn = gh_aws_sigv4_headers(&out, hdrs, sizeof(hdrs));
    assert_true(hn < sizeof(hdrs));
    hdrs[hn] = '\0';
    char want[1200];
    snprintf(want, sizeof(want), "Authorization: %s\r\n", files[3]);
    assert_non_null(strstr(hdrs, want));
    if (r->token[0] != '\0') {
        snprintf(want, sizeof(want), "X-Amz-Security-Token: %s\r\n", r->token);
        assert_non_null(strstr(hdrs, want));
        assert_ptr_equal(out.security_token, c->token);
    } else {
        assert_null(strstr(hdrs, "X-Amz-Security-Token"));
        assert_null(out.security_token);
    }
    gh_aws_creds_free(c);
    free(r);
    for (int i = 0; i < 5; i++)
        free(files[i]);
}

/* Every directory under the suite holding NAME/NAME.req. */
static void walk(const char *dir, unsigned *count, char names[][128])
{
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096], req[4400];
        if (snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub))
            fail_msg("path too long");
        struct stat st;
        if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (snprintf(req, sizeof(req), "%s/%s.req", sub, e->d_name) >= (int)sizeof(req))
            fail_msg("path too long");
        if (stat(req, &st) == 0) {
            run_vector(sub, e->d_name);
            if (snprintf(names[*count], 128, "%s", e->d_name) >= 128)
                fail_msg("name too long");
            (*count)++;
        }
        walk(sub, count, names);
    }
    closedir(d);
}

static void test_suite(void **state)
{
    (void)state;
    unsigned count = 0;
    static char names[64][128];
    walk(suite_dir, &count, names);
    /* All 34 vectors ran (the README lists them): a missing file or a
     * renamed directory cannot pass by testing less. */
    assert_int_equal(count, 34);
    static const char *const must[] = {
        "get-vanilla",
        "get-vanilla-query-order-key-case",
        "get-header-value-trim",
        "get-space",
        "get-slash",
        "get-slashes",
        "get-slash-dot-slash",
        "get-slash-pointless-dot",
        "get-relative",
        "get-relative-relative",
        "get-utf8",
        "post-x-www-form-urlencoded",
        "post-vanilla-query",
        "get-header-key-duplicate",
        "get-header-value-multiline",
        "post-sts-header-before",
        "post-sts-header-after",
        "get-vanilla-with-session-token",
    };
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
        int found = 0;
        for (unsigned k = 0; k < count; k++)
            found |= strcmp(names[k], must[i]) == 0;
        if (!found)
            fail_msg("vector %s did not run", must[i]);
    }
}

/* ---- beyond the suite ---- */

static gh_aws_creds_t *creds(const char *token)
{
    char err[256];
    gh_aws_creds_t *c = gh_aws_creds_new(AK, SK, token, err, sizeof(err));
    assert_non_null(c);
    return c;
}

static const gh_aws_header_t host_only[] = {{"Host", 4, "example.amazonaws.com", 21}};

static gh_aws_sigv4_req_t base_req(void)
{
    return (gh_aws_sigv4_req_t){
        .method = "GET",
        .path = "/",
        .path_len = 1,
        .headers = host_only,
        .num_headers = 1,
        .region = "us-east-1",
        .service = "service",
        .time = SUITE_TIME,
    };
}

/* Signs req and returns its canonical request (static buffer). */
static const char *creq_of(const gh_aws_sigv4_req_t *req, const gh_aws_creds_t *c)
{
    static char buf[16384];
    sigv4_trace_t tr = {.creq = buf, .creq_cap = sizeof(buf) - 1};
    gh_aws_sigv4_out_t out;
    int rc = sign(req, c, &out, &tr);
    if (rc != 0)
        fail_msg("sign: %d %s", rc, out.error);
    assert_true(tr.creq_len < sizeof(buf));
    buf[tr.creq_len] = '\0';
    /* The streamed hash is the hash of the traced text. */
    unsigned char h[32];
    unsigned int hl;
    char hex[65];
    assert_int_equal(EVP_Digest(buf, tr.creq_len, h, &hl, EVP_sha256(), NULL), 1);
    to_hex(h, 32, hex);
    assert_non_null(strstr(tr.sts, hex));
    return buf;
}

/* The second line of a canonical request. */
static void assert_uri(const char *path, const char *want)
{
    gh_aws_creds_t *c = creds(NULL);
    gh_aws_sigv4_req_t req = base_req();
    req.path = path;
    req.path_len = strlen(path);
    const char *cr = creq_of(&req, c);
    const char *l = strchr(cr, '\n') + 1;
    size_t n = strcspn(l, "\n");
    if (n != strlen(want) || memcmp(l, want, n) != 0)
        fail_msg("path %s: canonical URI %.*s, want %s", path, (int)n, l, want);
    gh_aws_creds_free(c);
}

static void test_paths(void **state)
{
    (void)state;
    /* A Lambda function ARN, percent-encoded on the wire, is encoded again
     * in the canonical URI (AWS: "each path segment must be URI-encoded
     * twice"; botocore does the same). */
    assert_uri("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction"
               "%3Amy-fn/invocations",
               "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A123456789012"
               "%253Afunction%253Amy-fn/invocations");
    assert_uri("/a%2Fb", "/a%252Fb");
    assert_uri("", "/");
    assert_uri("/", "/");
    assert_uri("//", "/");
    assert_uri("/.", "/");
    assert_uri("/..", "/");
    assert_uri("/../../a", "/a");
    assert_uri("/a/.", "/a");
    assert_uri("/a/./", "/a/");
    assert_uri("/a/b/..", "/a");
    assert_uri("/a/b/../", "/a/");
    assert_uri("/a//b///", "/a/b/");
    assert_uri("/a/...", "/a/...");
    assert_uri("/%2e%2e/x", "/%252e%252e/x");
    assert_uri("/~user/a+b=c;d", "/~user/a%2Bb%3Dc%3Bd");
    assert_uri("/\xe1\x88\xb4", "/%E1%88%B4");
}

static void assert_query(const char *q, const char *want)
{
    gh_aws_creds_t *c = creds(NULL);
    gh_aws_sigv4_req_t req = base_req();
    req.query = q;
    req.query_len = strlen(q);
    const char *cr = creq_of(&req, c);
    const char *l = strchr(strchr(cr, '\n') + 1, '\n') + 1;
    size_t n = strcspn(l, "\n");
    if (n != strlen(want) || memcmp(l, want, n) != 0)
        fail_msg("query %s: canonical %.*s, want %s", q, (int)n, l, want);
    gh_aws_creds_free(c);
}

static void test_queries(void **state)
{
    (void)state;
    assert_query("", "");
    assert_query("Qualifier=prod", "Qualifier=prod");
    assert_query("a", "a=");
    assert_query("a=", "a=");
    assert_query("a=%7e%7E~", "a=~~~");
    assert_query("a=%2f%2F/", "a=%2F%2F%2F");
    assert_query("a=b+c", "a=b%2Bc");
    assert_query("a=b=c", "a=b%3Dc");
    assert_query("b=1&a=2&a=1&A=3", "A=3&a=1&a=2&b=1");
    /* Sorted by the encoded bytes: '%' (0x25) sorts before '-' (0x2d) and
     * before letters; the name decides before the value. */
    assert_query("a-b=1&a=2&%41=0", "A=0&a=2&a-b=1");
    assert_query("x=%e1%88%b4&x=\xe1\x88\xb3", "x=%E1%88%B3&x=%E1%88%B4");
    assert_query("%00=%ff", "%00=%FF");
}

static void test_headers(void **state)
{
    (void)state;
    gh_aws_creds_t *c = creds("tok/en+=");
    const gh_aws_header_t hs[] = {
        {"Host", 4, "lambda.us-east-1.amazonaws.com", 30},
        {"User-Agent", 10, "gatehouse", 9},
        {"Connection", 10, "keep-alive", 10},
        {"X-Amz-Invocation-Type", 21, "\t Request  \t Response ", 22},
        {"content-type", 12, "application/json", 16},
        {"X-Amzn-Trace-Id", 15, "Root=1-abc", 10},
        {"Content-Length", 14, "2", 1},
        {"x-empty", 7, "", 0},
        {"X-EMPTY", 7, "  ", 2},
        {"x-a", 3, "1", 1},
        {"X-A", 3, " 2 ", 3},
    };
    gh_aws_sigv4_req_t req = base_req();
    req.method = "POST";
    req.headers = hs;
    req.num_headers = sizeof(hs) / sizeof(hs[0]);
    req.payload = "{}";
    req.payload_len = 2;
    const char *cr = creq_of(&req, c);
    assert_string_equal(cr, "POST\n/\n\n"
                            "content-length:2\n"
                            "content-type:application/json\n"
                            "host:lambda.us-east-1.amazonaws.com\n"
                            "x-a:1,2\n"
                            "x-amz-date:20150830T123600Z\n"
                            "x-amz-invocation-type:Request Response\n"
                            "x-amz-security-token:tok/en+=\n"
                            "x-empty:,\n"
                            "\n"
                            "content-length;content-type;host;x-a;x-amz-date;x-amz-invocation-"
                            "type;x-amz-security-token;x-empty\n"
                            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    gh_aws_sigv4_out_t out;
    assert_int_equal(gh_aws_sigv4_sign(&req, c, &out), 0);
    assert_string_equal(out.payload_sha256,
                        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    assert_non_null(strstr(out.authorization, "SignedHeaders=content-length;content-type;host;x-a;"
                                              "x-amz-date;x-amz-invocation-type;x-amz-security-"
                                              "token;x-empty, Signature="));
    /* The secret appears nowhere in what goes on the wire. */
    char buf[2048];
    size_t n = gh_aws_sigv4_headers(&out, buf, sizeof(buf));
    assert_true(n < sizeof(buf));
    buf[n] = '\0';
    assert_null(strstr(buf, SK));
    assert_non_null(strstr(buf, "X-Amz-Security-Token: tok/en+=\r\n"));
    /* Too small a buffer: nothing written, the length needed returned. */
    memset(buf, 'z', sizeof(buf));
    assert_int_equal(gh_aws_sigv4_headers(&out, buf, n - 1), n);
    assert_int_equal(buf[0], 'z');
    assert_int_equal(gh_aws_sigv4_headers(&out, buf, n), n);
    gh_aws_creds_free(c);
}

/* Long values pass the sink's buffer in every way: the hash of what was
 * streamed in pieces equals the hash of the whole (creq_of checks). */
static void test_long_values(void **state)
{
    (void)state;
    gh_aws_creds_t *c = creds(NULL);
    static char big[3000];
    for (size_t len = 0; len < sizeof(big); len += 97) {
        memset(big, 'v', len);
        for (size_t i = 13; i < len; i += 29)
            big[i] = ' ';
        gh_aws_header_t hs[] = {{"Host", 4, "h", 1}, {"x-big", 5, big, len}};
        gh_aws_sigv4_req_t req = base_req();
        req.headers = hs;
        req.num_headers = 2;
        req.payload = big;
        req.payload_len = len;
        creq_of(&req, c);
    }
    gh_aws_creds_free(c);
}

static int sign_rc(const gh_aws_sigv4_req_t *req, const gh_aws_creds_t *c)
{
    gh_aws_sigv4_out_t out;
    int rc = gh_aws_sigv4_sign(req, c, &out);
    if (rc != 0) {
        assert_non_null(out.error);
        assert_string_equal(out.authorization, "");
    } else {
        assert_null(out.error);
    }
    return rc;
}

static void test_refusals(void **state)
{
    (void)state;
    gh_aws_creds_t *c = creds(NULL);
    gh_aws_sigv4_req_t r = base_req();
    assert_int_equal(sign_rc(&r, c), 0);
    assert_int_equal(sign_rc(&r, NULL), -EINVAL);

    static const char *const methods[] = {
        "", "get", "Get", "G T", "G\nT", "GET\x80", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        r = base_req();
        r.method = methods[i];
        assert_int_equal(sign_rc(&r, c), -EINVAL);
    }
    r = base_req();
    r.method = "M-SEARCH";
    assert_int_equal(sign_rc(&r, c), 0);

    static const char *const paths[] = {"a", "x/", "/a?b", "/a#b", "/a\nb", "/a\rb", "/\x7f"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        r = base_req();
        r.path = paths[i];
        r.path_len = strlen(paths[i]);
        assert_int_equal(sign_rc(&r, c), -EINVAL);
    }
    r = base_req();
    r.path = "/a\0b";
    r.path_len = 4;
    assert_int_equal(sign_rc(&r, c), -EINVAL);

    static const char *const queries[] = {"&",    "a&",  "&a",    "a&&b", "=1",    "a=1&=2", "a=%",
                                          "a=%4", "%zz", "a=%4g", "a b",  "a=1#f", "a=\t"};
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        r = base_req();
        r.query = queries[i];
        r.query_len = strlen(queries[i]);
        if (sign_rc(&r, c) != -EINVAL)
            fail_msg("query %s was signed", queries[i]);
    }
    /* A '%' at the very end must not read past the query (ASan). */
    char *q = malloc(3);
    memcpy(q, "a%4", 3);
    r = base_req();
    r.query = q;
    r.query_len = 3;
    assert_int_equal(sign_rc(&r, c), -EINVAL);
    free(q);

    static const char *const regions[] = {"", "US-EAST-1", "us east", "us_east_1",
                                          "a234567890123456789012345678901234567890123456789012345"
                                          "678901234"};
    for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
        r = base_req();
        r.region = regions[i];
        assert_int_equal(sign_rc(&r, c), -EINVAL);
        r = base_req();
        r.service = regions[i];
        assert_int_equal(sign_rc(&r, c), -EINVAL);
    }
    r = base_req();
    r.region = NULL;
    assert_int_equal(sign_rc(&r, c), -EINVAL);

    r = base_req();
    r.time = -1;
    assert_int_equal(sign_rc(&r, c), -EINVAL);
    r.time = INT64_C(253402300800);
    assert_int_equal(sign_rc(&r, c), -EINVAL);
    r.time = INT64_C(253402300799);
    assert_int_equal(sign_rc(&r, c), 0);
    r.time = 0;
    assert_int_equal(sign_rc(&r, c), 0);

    r = base_req();
    r.payload_len = 1;
    assert_int_equal(sign_rc(&r, c), -EINVAL);
    r = base_req();
    r.query_len = 1;
    assert_int_equal(sign_rc(&r, c), -EINVAL);
    r = base_req();
    r.headers = NULL;
    assert_int_equal(sign_rc(&r, c), -EINVAL);
    r.num_headers = 0;
    assert_int_equal(sign_rc(&r, c), -EINVAL); /* no Host */

    /* Headers: Host exactly once; the signer's own refused; names tokens;
     * values visible ASCII with blanks. */
    const gh_aws_header_t none[] = {{"x-a", 3, "1", 1}};
    const gh_aws_header_t two_hosts[] = {{"Host", 4, "a", 1}, {"host", 4, "a", 1}};
    const gh_aws_header_t authz[] = {{"Host", 4, "a", 1}, {"Authorization", 13, "x", 1}};
    const gh_aws_header_t date[] = {{"Host", 4, "a", 1}, {"X-AMZ-DATE", 10, "x", 1}};
    const gh_aws_header_t tok[] = {{"Host", 4, "a", 1}, {"x-amz-security-token", 20, "x", 1}};
    const gh_aws_header_t badname[] = {{"Host", 4, "a", 1}, {"x a", 3, "x", 1}};
    const gh_aws_header_t colon[] = {{"Host", 4, "a", 1}, {"x:a", 3, "x", 1}};
    const gh_aws_header_t empty[] = {{"Host", 4, "a", 1}, {"", 0, "x", 1}};
    const gh_aws_header_t crlf[] = {{"Host", 4, "a", 1}, {"x", 1, "a\r\n b", 5}};
    const gh_aws_header_t nul[] = {{"Host", 4, "a", 1}, {"x", 1, "a\0b", 3}};
    const gh_aws_header_t latin1[] = {{"Host", 4, "a", 1}, {"x", 1, "caf\xe9", 4}};
    const gh_aws_header_t utf8[] = {{"Host", 4, "a", 1}, {"x", 1, "caf\xc3\xa9", 5}};
    const gh_aws_header_t del[] = {{"Host", 4, "a", 1}, {"x", 1, "\x7f", 1}};
    const struct {
        const gh_aws_header_t *h;
        size_t n;
    } bad[] = {{none, 1},    {two_hosts, 2}, {authz, 2}, {date, 2},     {tok, 2},
               {badname, 2}, {colon, 2},     {empty, 2}, {crlf, 2},     {nul, 2},
               {latin1, 2},  {utf8, 2},      {del, 2},   {host_only, 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = base_req();
        r.headers = bad[i].h;
        r.num_headers = bad[i].n;
        if (sign_rc(&r, c) != -EINVAL)
            fail_msg("header case %zu was signed", i);
    }
    gh_aws_creds_free(c);
}

static void test_bounds(void **state)
{
    (void)state;
    gh_aws_creds_t *c = creds(NULL);
    gh_aws_header_t hs[GH_AWS_SIGV4_MAX_HEADERS + 1];
    char names[GH_AWS_SIGV4_MAX_HEADERS + 1][8];
    hs[0] = host_only[0];
    for (int i = 1; i <= GH_AWS_SIGV4_MAX_HEADERS; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%d", i);
        hs[i] = (gh_aws_header_t){names[i], strlen(names[i]), "v", 1};
    }
    gh_aws_sigv4_req_t r = base_req();
    r.headers = hs;
    r.num_headers = GH_AWS_SIGV4_MAX_HEADERS;
    assert_int_equal(sign_rc(&r, c), 0);
    r.num_headers = GH_AWS_SIGV4_MAX_HEADERS + 1;
    assert_int_equal(sign_rc(&r, c), -E2BIG);

    /* The signed-header list that would not fit the Authorization value. */
    static char longnames[GH_AWS_SIGV4_MAX_HEADERS][256];
    gh_aws_header_t longs[GH_AWS_SIGV4_MAX_HEADERS];
    longs[0] = host_only[0];
    for (int i = 1; i < GH_AWS_SIGV4_MAX_HEADERS; i++) {
        memset(longnames[i], 'a' + i % 26, 200);
        longnames[i][0] = (char)('a' + i % 26);
        longnames[i][1] = (char)('a' + i / 26);
        longs[i] = (gh_aws_header_t){longnames[i], 200, "v", 1};
    }
    r.headers = longs;
    r.num_headers = GH_AWS_SIGV4_MAX_HEADERS;
    assert_int_equal(sign_rc(&r, c), -E2BIG);

    char q[GH_AWS_SIGV4_MAX_QUERY + 2];
    size_t n = 0;
    for (int i = 0; i <= GH_AWS_SIGV4_MAX_PARAMS; i++)
        n += (size_t)snprintf(q + n, sizeof(q) - n, "%sp%d=1", i ? "&" : "", i);
    r = base_req();
    r.query = q;
    r.query_len = n;
    assert_int_equal(sign_rc(&r, c), -E2BIG);
    r.query_len = (size_t)(strrchr(q, '&') - q);
    assert_int_equal(sign_rc(&r, c), 0);
    memset(q, 'a', sizeof(q));
    r.query_len = GH_AWS_SIGV4_MAX_QUERY + 1;
    assert_int_equal(sign_rc(&r, c), -E2BIG);
    r.query_len = GH_AWS_SIGV4_MAX_QUERY;
    assert_int_equal(sign_rc(&r, c), 0);

    static char p[GH_AWS_SIGV4_MAX_PATH + 1];
    for (size_t i = 0; i < sizeof(p); i++)
        p[i] = i % 2 ? 'a' : '/';
    r = base_req();
    r.path = p;
    r.path_len = GH_AWS_SIGV4_MAX_PATH;
    assert_int_equal(sign_rc(&r, c), 0);
    r.path_len = GH_AWS_SIGV4_MAX_PATH + 1;
    assert_int_equal(sign_rc(&r, c), -E2BIG);
    gh_aws_creds_free(c);
}

/* The signing key chain, step by step, against the example in AWS's
 * Signature Version 4 documentation ("Examples of how to derive a signing
 * key": secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215,
 * us-east-1, iam). */
static void test_signing_key(void **state)
{
    (void)state;
    const char *secret = "AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    unsigned char k1[32], k2[32];
    char hex[65];
    assert_int_equal(hmac(secret, strlen(secret), "20120215", 8, k1), 0);
    to_hex(k1, 32, hex);
    assert_string_equal(hex, "969fbb94feb542b71ede6f87fe4d5fa29c789342b0f407474670f0c2489e0a0d");
    assert_int_equal(hmac(k1, 32, "us-east-1", 9, k2), 0);
    to_hex(k2, 32, hex);
    assert_string_equal(hex, "69daa0209cd9c5ff5c8ced464a696fd4252e981430b10e3d3fd8e2f197d7a70c");
    assert_int_equal(hmac(k2, 32, "iam", 3, k1), 0);
    to_hex(k1, 32, hex);
    assert_string_equal(hex, "f72cfd46f26bc4643f06a11eabb6c0ba18780c19a8da0c31ace671265e3c87fa");
    assert_int_equal(hmac(k1, 32, "aws4_request", 12, k2), 0);
    to_hex(k2, 32, hex);
    assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char here[4096];
    snprintf(here, sizeof(here), "%s", __FILE__);
    snprintf(suite_dir, sizeof(suite_dir), "%s/sigv4_suite", dirname(here));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite),       cmocka_unit_test(test_paths),
        cmocka_unit_test(test_queries),     cmocka_unit_test(test_headers),
        cmocka_unit_test(test_long_values), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bounds),      cmocka_unit_test(test_signing_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
