/*
 * A Lambda function's proxy result as an HTTP response, the way API
 * Gateway maps it (HTTP API payload formats 2.0 and 1.0).
 *
 * Format 2.0 infers: a result that is valid JSON but not an object with a
 * statusCode is a 200 whose body is the result itself, verbatim, with
 * content-type application/json ("Hello" arrives with its quotes: AWS's
 * function URL example shows content-length 15 for "Hello, world!").
 * Format 1.0 requires statusCode. Anything malformed is a 502, as API
 * Gateway's "Malformed Lambda proxy response".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "authorizer/authz.h"

void gh_lambda_response_dispose(gh_lambda_response_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* The gateway frames the response itself: a function's framing or
 * hop-by-hop fields (RFC 9110 section 7.6.1, RFC 9112 section 6) would
 * contradict it or reach the client meaning nothing. */
int gh_lambda_header_dropped(const char *name, size_t n)
{
    static const char *const dropped[] = {
        "content-length",   "transfer-encoding",
        "connection",       "keep-alive",
        "proxy-connection", "te",
        "trailer",          "upgrade",
        "http2-settings",   NULL,
    };
    for (size_t i = 0; dropped[i] != NULL; i++)
        if (strlen(dropped[i]) == n && strncasecmp(name, dropped[i], n) == 0)
            return 1;
    return 0;
}

static int tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

typedef struct {
    gh_lambda_response_t *out;
    size_t cap;
    const char **why;
} acc_t;

/* A header value from JSON: strings as they are, numbers and booleans as
 * their JSON text (functions write "X-Count": 3); null skips the field.
 * Returns 1 with a new string, 0 to skip, or an error. */
static int scalar_text(const json_t *v, char **s, size_t *n, const char **why)
{
    if (json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        *n = json_string_length(v);
        *s = malloc(*n + 1);
        if (*s == NULL)
            return -ENOMEM;
        memcpy(*s, json_string_value(v), *n + 1);
        return 1;
    }
    if (json_is_number(v) || json_is_boolean(v)) {
        *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (*s == NULL)
            return -ENOMEM;
        *n = strlen(*s);
        return 1;
    }
    *why = "a header value is an object or an array";
    return GH_AUTHZ_EBAD;
}

/* Adds name: value (value taken). Malformed names and values refuse the
 * whole answer: a CR or LF in a value would be a second field. */
static int add(acc_t *a, const char *name, size_t nn, char *value, size_t vn)
{
    for (size_t i = 0; i < nn; i++)
        if (!tchar((unsigned char)name[i])) {
            free(value);
            *a->why = "a header name is not a valid field name";
            return GH_AUTHZ_EBAD;
        }
    for (size_t i = 0; i < vn; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            free(value);
            *a->why = "a header value holds a control character";
            return GH_AUTHZ_EBAD;
        }
    }
    if (nn == 0) {
        free(value);
        *a->why = "a header name is empty";
        return GH_AUTHZ_EBAD;
    }
    if (gh_lambda_header_dropped(name, nn)) {
        free(value);
        return 0;
    }
    gh_lambda_response_t *o = a->out;
    if (o->nheaders == GH_LAMBDA_MAX_HEADERS) {
        free(value);
        *a->why = "the answer has too many headers";
        return GH_AUTHZ_EBAD;
    }
    if (o->nheaders == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        gh_lambda_header_t *h = realloc(o->headers, cap * sizeof(*h));
        if (h == NULL) {
            free(value);
            return -ENOMEM;
        }
        o->headers = h;
        a->cap = cap;
    }
    gh_lambda_header_t *h = &o->headers[o->nheaders];
    h->name = malloc(nn + 1);
    if (h->name == NULL) {
        free(value);
        return -ENOMEM;
    }
    memcpy(h->name, name, nn);
    h->name[nn] = '\0';
    h->name_len = nn;
    h->value = value;
    h->value_len = vn;
    o->nheaders++;
    return 0;
}

static int has(const gh_lambda_response_t *o, const char *name, size_t nn, const char *v, size_t vn)
{
    for (size_t i = 0; i < o->nheaders; i++)
        if (o->headers[i].name_len == nn && strncasecmp(o->headers[i].name, name, nn) == 0 &&
            o->headers[i].value_len == vn && memcmp(o->headers[i].value, v, vn) == 0)
            return 1;
    return 0;
}

/* headers (and in format 1.0 multiValueHeaders, merged first: "If the same
 * key-value pair is specified in both, the value will only appear once"). */
static int read_headers(acc_t *a, const json_t *doc, int v1)
{
    const char *key;
    const json_t *v;
    int rc;
    const json_t *mh = v1 ? json_object_get(doc, "multiValueHeaders") : NULL;
    if (mh != NULL && !json_is_null(mh)) {
        if (!json_is_object(mh)) {
            *a->why = "multiValueHeaders is not an object";
            return GH_AUTHZ_EBAD;
        }
        json_object_foreach((json_t *)mh, key, v)
        {
            if (json_is_null(v))
                continue;
            if (!json_is_array(v)) {
                *a->why = "a multiValueHeaders value is not an array";
                return GH_AUTHZ_EBAD;
            }
            size_t i;
            const json_t *e;
            json_array_foreach(v, i, e)
            {
                char *s;
                size_t n;
                if ((rc = scalar_text(e, &s, &n, a->why)) < 0)
                    return rc;
                if (rc == 1 && (rc = add(a, key, strlen(key), s, n)) != 0)
                    return rc;
            }
        }
    }
    const json_t *h = json_object_get(doc, "headers");
    if (h == NULL || json_is_null(h))
        return 0;
    if (!json_is_object(h)) {
        *a->why = "headers is not an object";
        return GH_AUTHZ_EBAD;
    }
    json_object_foreach((json_t *)h, key, v)
    {
        char *s;
        size_t n;
        if ((rc = scalar_text(v, &s, &n, a->why)) < 0)
            return rc;
        if (rc == 0)
            continue;
        if (mh != NULL && has(a->out, key, strlen(key), s, n)) {
            free(s);
            continue;
        }
        if ((rc = add(a, key, strlen(key), s, n)) != 0)
            return rc;
    }
    return 0;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64 (RFC 4648 section 4), padding optional but exact when
 * present; anything else (whitespace, the URL alphabet, a lone last
 * character) refused. Returns the length written to out (room for n * 3 /
 * 4 + 3 bytes) or -1. */
static long b64decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4 == 0 && n > 0 && in[n - 1] == '=') {
        n--;
        if (in[n - 1] == '=')
            n--;
    }
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

/* statusCode: an integer, or a string of digits (functions write "200";
 * AWS's local emulator, SAM CLI, takes both), from 200 to 599: a 1xx
 * cannot end an exchange. */
static int read_status(const json_t *v, int *status, const char **why)
{
    long long s = -1;
    if (json_is_integer(v)) {
        s = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *p = json_string_value(v);
        size_t n = json_string_length(v);
        if (n >= 1 && n <= 3) {
            s = 0;
            for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9') {
                    s = -1;
                    break;
                }
                s = s * 10 + (p[i] - '0');
            }
        }
    }
    if (s < 200 || s > 599) {
        *why = "statusCode is not an integer from 200 to 599";
        return GH_AUTHZ_EBAD;
    }
    *status = (int)s;
    return 0;
}

/* isBase64Encoded: a boolean, or the strings "true" and "false" (as SAM
 * CLI takes them); absent or null is false. */
static int read_b64flag(const json_t *v, int *flag, const char **why)
{
    *flag = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *flag = json_is_true(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0) {
            *flag = 1;
            return 0;
        }
        if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0)
            return 0;
    }
    *why = "isBase64Encoded is not a boolean";
    return GH_AUTHZ_EBAD;
}

static int structured(acc_t *a, const json_t *doc, int v1)
{
    gh_lambda_response_t *o = a->out;
    int rc, b64;
    if ((rc = read_status(json_object_get(doc, "statusCode"), &o->status, a->why)) != 0)
        return rc;
    if ((rc = read_b64flag(json_object_get(doc, "isBase64Encoded"), &b64, a->why)) != 0)
        return rc;
    if ((rc = read_headers(a, doc, v1)) != 0)
        return rc;
    const json_t *cookies = v1 ? NULL : json_object_get(doc, "cookies");
    if (cookies != NULL && !json_is_null(cookies)) {
        if (!json_is_array(cookies)) {
            *a->why = "cookies is not an array";
            return GH_AUTHZ_EBAD;
        }
        size_t i;
        const json_t *c;
        json_array_foreach(cookies, i, c)
        {
            if (!json_is_string(c)) {
                *a->why = "a cookie is not a string";
                return GH_AUTHZ_EBAD;
            }
            char *s = strdup(json_string_value(c));
            if (s == NULL)
                return -ENOMEM;
            if ((rc = add(a, "Set-Cookie", 10, s, json_string_length(c))) != 0)
                return rc;
        }
    }
    const json_t *body = json_object_get(doc, "body");
    if (body == NULL || json_is_null(body))
        return 0;
    if (!json_is_string(body)) {
        *a->why = "body is not a string";
        return GH_AUTHZ_EBAD;
    }
    size_t n = json_string_length(body);
    /* RFC 9110 sections 15.3.5 and 15.4.5: no content in a 204 or a 304 */
    if (n == 0 || o->status == 204 || o->status == 304)
        return 0;
    o->body = malloc(n + 3);
    if (o->body == NULL)
        return -ENOMEM;
    if (b64) {
        long dn = b64decode(json_string_value(body), n, o->body);
        if (dn < 0) {
            *a->why = "body is not valid base64";
            return GH_AUTHZ_EBAD;
        }
        o->body_len = (size_t)dn;
    } else {
        memcpy(o->body, json_string_value(body), n);
        o->body_len = n;
    }
    if (o->body_len == 0) {
        free(o->body);
        o->body = NULL;
    }
    return 0;
}

int gh_lambda_response_map(const char *buf, size_t len, int version, gh_lambda_response_t *out,
                           const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    *why = NULL;
    memset(out, 0, sizeof(*out));
    json_t *doc;
    int rc = gh_authz_load_json(buf, len, GH_LAMBDA_MAX_RESULT, &doc, why);
    if (rc != 0)
        return rc;
    acc_t a = {out, 0, why};
    int v1 = version == 1;
    if (json_is_object(doc) && json_object_get(doc, "statusCode") != NULL) {
        rc = structured(&a, doc, v1);
    } else if (v1) {
        *why = json_is_object(doc) ? "statusCode is missing" : "the answer is not a JSON object";
        rc = GH_AUTHZ_EBAD;
    } else {
        out->status = 200;
        char *ct = strdup("application/json");
        rc = ct == NULL ? -ENOMEM : add(&a, "content-type", 12, ct, 16);
        if (rc == 0 && len > 0) {
            if ((out->body = malloc(len)) == NULL) {
                rc = -ENOMEM;
            } else {
                memcpy(out->body, buf, len);
                out->body_len = len;
            }
        }
    }
    json_decref(doc);
    if (rc != 0)
        gh_lambda_response_dispose(out);
    return rc;
}
