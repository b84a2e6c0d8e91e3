/*
 * Authorizer responses (formats 1.0 and 2.0), Lambda function errors, and
 * what an answer gives later filters: identity values and headers.
 *
 * Every text is read through one bounded loader: a size cap, no NUL byte
 * (jansson reads on past a raw NUL after a number or a literal, see
 * src/jose/json.h), a nesting cap checked before jansson recurses, and
 * duplicate member names refused. AWS does not document what it does with
 * duplicates (its JSON readers differ: last wins in Jackson, first in
 * some); refusing means no two readers of one answer can disagree.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <gatehouse/fields.h>

#include "authorizer/authz.h"

/* ---- the bounded loader ---- */

static int depth_ok(const char *s, size_t n, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return 0;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 1;
}

/* Loads buf as JSON (any value when any is set, else an object) into
 * *out. 0, -ENOMEM, or GH_AUTHZ_EBAD with *why. */
static int load(const char *buf, size_t len, size_t max, int any, json_t **out, const char **why)
{
    *out = NULL;
    if (buf == NULL)
        buf = "", len = 0;
    if (len > max) {
        *why = "the answer is too large";
        return GH_AUTHZ_EBAD;
    }
    if (memchr(buf, '\0', len) != NULL) {
        *why = "the answer holds a NUL byte";
        return GH_AUTHZ_EBAD;
    }
    if (!depth_ok(buf, len, GH_AUTHZ_MAX_DEPTH)) {
        *why = "the answer nests too deep";
        return GH_AUTHZ_EBAD;
    }
    json_error_t e;
    json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES | (any ? JSON_DECODE_ANY : 0), &e);
    if (doc == NULL) {
        switch (json_error_code(&e)) {
        case json_error_out_of_memory:
            return -ENOMEM;
        case json_error_duplicate_key:
            *why = "the answer repeats a member name";
            break;
        default:
            *why = "the answer is not JSON";
        }
        return GH_AUTHZ_EBAD;
    }
    if (!any && !json_is_object(doc)) {
        json_decref(doc);
        *why = "the answer is not a JSON object";
        return GH_AUTHZ_EBAD;
    }
    *out = doc;
    return 0;
}

/* ---- results ---- */

void gh_authz_result_dispose(gh_authz_result_t *r)
{
    if (r == NULL)
        return;
    gh_authz_policy_free(r->policy);
    free(r->principal);
    free(r->usage_key);
    for (size_t i = 0; i < r->nctx; i++) {
        free(r->ctx[i].key);
        free(r->ctx[i].value);
    }
    free(r->ctx);
    memset(r, 0, sizeof(*r));
}

/* A context value as later filters read it: strings as they are, other
 * scalars as their JSON text ("1", "true"; API Gateway stringifies them),
 * and in format 2.0 objects, arrays and null as compact JSON. */
static int ctx_value(const json_t *v, int nested_ok, gh_authz_ctx_t *c, const char **why)
{
    char num[32];
    const char *s = NULL;
    size_t n = 0;
    char *dumped = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        s = json_string_value(v), n = json_string_length(v);
        c->type = GH_AUTHZ_CTX_STRING;
        break;
    case JSON_INTEGER:
        n = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
        c->type = GH_AUTHZ_CTX_NUMBER;
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        s = json_is_true(v) ? "true" : "false", n = strlen(s);
        c->type = GH_AUTHZ_CTX_BOOL;
        break;
    case JSON_REAL:
        c->type = GH_AUTHZ_CTX_NUMBER;
        goto dump;
    default:
        if (!nested_ok) {
            /* api-gateway-lambda-authorizer-output: "you cannot set a JSON
             * object or array as a valid value of any key in the context
             * map"; API Gateway fails such an answer (500). */
            *why = "a context value is an object, an array or null";
            return GH_AUTHZ_EBAD;
        }
        c->type = GH_AUTHZ_CTX_JSON;
    dump:
        dumped = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (dumped == NULL)
            return -ENOMEM;
        s = dumped, n = strlen(dumped);
    }
    if (n > GH_AUTHZ_MAX_VALUE) {
        free(dumped);
        *why = "a context value is too long";
        return GH_AUTHZ_EBAD;
    }
    c->value = malloc(n + 1);
    if (c->value != NULL) {
        memcpy(c->value, s, n);
        c->value[n] = '\0';
        c->value_len = n;
    }
    free(dumped);
    return c->value != NULL ? 0 : -ENOMEM;
}

static int read_context(const json_t *ctx, int nested_ok, gh_authz_result_t *out, const char **why)
{
    if (ctx == NULL || json_is_null(ctx))
        return 0;
    if (!json_is_object(ctx)) {
        *why = "context is not an object";
        return GH_AUTHZ_EBAD;
    }
    size_t n = json_object_size(ctx);
    if (n > GH_AUTHZ_MAX_CONTEXT) {
        *why = "context has too many keys";
        return GH_AUTHZ_EBAD;
    }
    if (n == 0)
        return 0;
    out->ctx = calloc(n, sizeof(*out->ctx));
    if (out->ctx == NULL)
        return -ENOMEM;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)ctx, key, v)
    {
        gh_authz_ctx_t *c = &out->ctx[out->nctx];
        size_t kn = strlen(key);
        if (kn > GH_AUTHZ_MAX_VALUE) {
            *why = "a context key is too long";
            return GH_AUTHZ_EBAD;
        }
        if ((c->key = strdup(key)) == NULL)
            return -ENOMEM;
        out->nctx++;
        int rc = ctx_value(v, nested_ok, c, why);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int opt_string(const json_t *doc, const char *name, int required, char **out,
                      const char **why, const char *bad)
{
    const json_t *v = json_object_get(doc, name);
    if (v == NULL || json_is_null(v)) {
        if (required) {
            *why = bad;
            return GH_AUTHZ_EBAD;
        }
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > GH_AUTHZ_MAX_VALUE) {
        *why = bad;
        return GH_AUTHZ_EBAD;
    }
    *out = strdup(json_string_value(v));
    return *out != NULL ? 0 : -ENOMEM;
}

/* The IAM form both formats share. */
static int read_iam(const json_t *doc, int v1, gh_authz_result_t *out, const char **why)
{
    int rc;
    if ((rc = opt_string(doc, "principalId", 1, &out->principal, why,
                         "principalId is missing or not a string")) != 0)
        return rc;
    const json_t *pd = json_object_get(doc, "policyDocument");
    if (pd == NULL) {
        *why = "policyDocument is missing";
        return GH_AUTHZ_EBAD;
    }
    if ((rc = gh_authz_policy_compile(pd, &out->policy, why)) != 0)
        return rc;
    if ((rc = read_context(json_object_get(doc, "context"), !v1, out, why)) != 0)
        return rc;
    if (v1 && (rc = opt_string(doc, "usageIdentifierKey", 0, &out->usage_key, why,
                               "usageIdentifierKey is not a string")) != 0)
        return rc;
    return 0;
}

static int parse(const char *buf, size_t len, int v1, int simple_enabled, gh_authz_result_t *out,
                 const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    *why = NULL;
    memset(out, 0, sizeof(*out));
    json_t *doc;
    int rc = load(buf, len, GH_AUTHZ_MAX_RESPONSE, 0, &doc, why);
    if (rc != 0)
        return rc;
    const json_t *ok = json_object_get(doc, "isAuthorized");
    if (!v1 && simple_enabled && ok != NULL) {
        if (!json_is_boolean(ok)) {
            *why = "isAuthorized is not a boolean";
            rc = GH_AUTHZ_EBAD;
        } else {
            out->simple = 1;
            out->authorized = json_is_true(ok);
            rc = read_context(json_object_get(doc, "context"), 1, out, why);
        }
    } else {
        rc = read_iam(doc, v1, out, why);
    }
    json_decref(doc);
    if (rc != 0)
        gh_authz_result_dispose(out);
    return rc;
}

int gh_authz_response_v1(const char *buf, size_t len, gh_authz_result_t *out, const char **why)
{
    return parse(buf, len, 1, 0, out, why);
}

int gh_authz_response_v2(const char *buf, size_t len, int simple_enabled, gh_authz_result_t *out,
                         const char **why)
{
    return parse(buf, len, 0, simple_enabled, out, why);
}

gh_authz_decision_t gh_authz_result_decide(const gh_authz_result_t *r, const char *arn, size_t n)
{
    if (r->simple)
        return r->authorized ? GH_AUTHZ_ALLOW : GH_AUTHZ_DENY_EXPLICIT;
    return gh_authz_policy_eval(r->policy, arn, n);
}

/* ---- identity values and headers ---- */

const char *gh_authz_source_refused(const char *src)
{
    if (src == NULL)
        return "is empty";
    if (strcmp(src, "principalId") == 0 || strcmp(src, "usageIdentifierKey") == 0)
        return NULL;
    if (strncmp(src, "context.", 8) == 0 && src[8] != '\0')
        return NULL;
    return "is not principalId, usageIdentifierKey or context.<key>";
}

static int is_tchar(unsigned char c)
{
    /* RFC 9110 section 5.6.2 */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Beyond gh_field_owned: fields that tell the upstream how to read the
 * body or which method was meant. An authorizer's answer setting one
 * would make the upstream read another request than the one checked. */
static const char *const body_fields[] = {
    "content-type",   "content-encoding", "content-range",     "content-md5",  "digest",
    "content-digest", "x-http-method",    "x-method-override", "max-forwards", NULL,
};

const char *gh_authz_header_refused(const char *name, size_t n)
{
    if (name == NULL || n == 0)
        return "is empty";
    if (n > 256)
        return "is longer than 256 bytes";
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)name[i]))
            return "is not a valid field name (RFC 9110 token)";
    const char *why = gh_field_owned(name, n);
    if (why != NULL)
        return why;
    for (size_t i = 0; body_fields[i] != NULL; i++)
        if (gh_field_name_same(name, n, body_fields[i], strlen(body_fields[i])))
            return "describes the request body or its method to the upstream";
    return NULL;
}

int gh_authz_result_value(const gh_authz_result_t *r, const char *src, const char **v, size_t *n)
{
    const char *s = NULL;
    size_t sn = 0;
    if (strcmp(src, "principalId") == 0) {
        s = r->principal;
        sn = s != NULL ? strlen(s) : 0;
    } else if (strcmp(src, "usageIdentifierKey") == 0) {
        s = r->usage_key;
        sn = s != NULL ? strlen(s) : 0;
    } else if (strncmp(src, "context.", 8) == 0) {
        for (size_t i = 0; i < r->nctx; i++)
            if (strcmp(r->ctx[i].key, src + 8) == 0) {
                s = r->ctx[i].value;
                sn = r->ctx[i].value_len;
                break;
            }
    }
    if (s == NULL)
        return 0;
    /* RFC 9110 section 5.5: field-value is VCHAR, obs-text, SP and HTAB;
     * a CR or LF here would end the field and start another. */
    for (size_t i = 0; i < sn; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -EINVAL;
    }
    *v = s;
    *n = sn;
    return 1;
}

/* ---- function errors ---- */

gh_lambda_error_t gh_lambda_error_classify(const char *err, size_t errn, const char *payload,
                                           size_t len, const char **message)
{
    const char *unused;
    if (message == NULL)
        message = &unused;
    if (err == NULL) {
        *message = NULL;
        return GH_LAMBDA_RESULT;
    }
    (void)errn;
    json_t *doc;
    const char *why;
    gh_lambda_error_t kind = GH_LAMBDA_FUNCTION_ERROR;
    *message = "the function failed";
    if (load(payload, len, GH_AUTHZ_MAX_RESPONSE, 0, &doc, &why) != 0)
        return kind;
    const json_t *m = json_object_get(doc, "errorMessage");
    /* API Gateway's one way for a Lambda authorizer to answer 401: fail
     * with exactly this message (raise Exception('Unauthorized'),
     * callback('Unauthorized')). */
    if (json_is_string(m) && strcmp(json_string_value(m), "Unauthorized") == 0) {
        kind = GH_LAMBDA_UNAUTHORIZED;
        *message = "the function answered Unauthorized";
    }
    json_decref(doc);
    return kind;
}

/* ---- shared with lambda.c ---- */

int gh_authz_load_json(const char *buf, size_t len, size_t max, json_t **out, const char **why)
{
    return load(buf, len, max, 1, out, why);
}
