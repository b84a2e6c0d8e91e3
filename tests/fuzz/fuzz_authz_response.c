/* libFuzzer target: Lambda authorizer answers (src/authorizer/response.c,
 * policy.c). The first byte picks the reader (format 1.0, 2.0 with simple
 * responses, 2.0 without) and the rest is the answer. Checks that a
 * refusal leaves nothing behind, that an accepted answer is consistent
 * (a simple one has no policy, an IAM one a principal; every context value
 * is NUL-free and bounded; header values have no control character), that
 * evaluation decides the same twice, and that the function error reader
 * takes the same bytes. With the answer split at its first newline, the
 * wildcard matcher is checked against a dynamic-programming matcher
 * written here, with its step bound. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authorizer/authz.h"

/* m[i][j]: pattern[i..] matches text[j..]; '?' one byte (the check runs
 * on ASCII-only inputs, where bytes are characters). */
static int dp_glob(const char *p, size_t pn, const char *s, size_t sn)
{
    unsigned char *m = calloc((pn + 1) * (sn + 1), 1);
    if (m == NULL)
        return -1;
#define M(i, j) m[(i) * (sn + 1) + (j)]
    M(pn, sn) = 1;
    for (size_t i = pn; i-- > 0;)
        for (size_t j = sn + 1; j-- > 0;) {
            if (p[i] == '*')
                M(i, j) = M(i + 1, j) || (j < sn && M(i, j + 1));
            else
                M(i, j) = j < sn && (p[i] == '?' || p[i] == s[j]) && M(i + 1, j + 1);
        }
    int r = M(0, 0);
#undef M
    free(m);
    return r;
}

static void check_glob(const char *d, size_t n)
{
    const char *nl = memchr(d, '\n', n);
    if (nl == NULL || n > 512)
        return;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)d[i] >= 0x80)
            return;
    size_t pn = (size_t)(nl - d), sn = n - pn - 1;
    uint64_t steps = 0;
    int got = gh_authz_glob(d, pn, nl + 1, sn, 0, &steps);
    if (steps > (uint64_t)(pn + 1) * (sn + 1) + pn + 1)
        abort();
    int want = dp_glob(d, pn, nl + 1, sn);
    if (want >= 0 && got != want)
        abort();
}

static void check_result(const gh_authz_result_t *r)
{
    static const char *const arns[] = {
        "arn:aws:execute-api:us-east-1:123456789012:api/$default/GET/",
        "arn:aws:execute-api:us-east-1:123456789012:api/prod/POST/a/b",
        "",
    };
    if (r->simple) {
        if (r->policy != NULL || r->principal != NULL)
            abort();
    } else if (r->policy == NULL || r->principal == NULL) {
        abort();
    }
    if (r->nctx > GH_AUTHZ_MAX_CONTEXT)
        abort();
    for (size_t i = 0; i < r->nctx; i++) {
        const gh_authz_ctx_t *c = &r->ctx[i];
        if (c->key == NULL || c->value == NULL || strlen(c->value) != c->value_len ||
            c->value_len > GH_AUTHZ_MAX_VALUE || c->type < GH_AUTHZ_CTX_STRING ||
            c->type > GH_AUTHZ_CTX_JSON)
            abort();
        char src[GH_AUTHZ_MAX_VALUE + 16];
        size_t kn = strlen(c->key);
        if (kn > GH_AUTHZ_MAX_VALUE)
            abort();
        memcpy(src, "context.", 8);
        memcpy(src + 8, c->key, kn + 1);
        const char *v;
        size_t vn;
        int rc = gh_authz_result_value(r, src, &v, &vn);
        /* every key is found (names are unique: duplicates are refused) */
        if (rc == 1) {
            if (v != c->value || vn != c->value_len)
                abort();
            for (size_t k = 0; k < vn; k++)
                if (((unsigned char)v[k] < 0x20 && v[k] != '\t') || v[k] == 0x7f)
                    abort();
        } else if (rc != -EINVAL) {
            abort();
        }
    }
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(arns[i]);
        gh_authz_decision_t a = gh_authz_result_decide(r, arns[i], n);
        if (a != gh_authz_result_decide(r, arns[i], n) || a > GH_AUTHZ_DENY_IMPLICIT)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t n = size - 1;
    char *text = malloc(n ? n : 1); /* exact size, so ASan sees a read past it */
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, n);
    gh_authz_result_t r;
    const char *why = NULL;
    int rc;
    switch (data[0] % 3) {
    case 0:
        rc = gh_authz_response_v1(text, n, &r, &why);
        break;
    case 1:
        rc = gh_authz_response_v2(text, n, 1, &r, &why);
        break;
    default:
        rc = gh_authz_response_v2(text, n, 0, &r, &why);
    }
    if (rc == 0) {
        if (why != NULL)
            abort();
        check_result(&r);
        gh_authz_result_dispose(&r);
    } else {
        if (rc != GH_AUTHZ_EBAD && rc != -ENOMEM)
            abort();
        if (rc == GH_AUTHZ_EBAD && why == NULL)
            abort();
        if (r.policy != NULL || r.principal != NULL || r.ctx != NULL || r.usage_key != NULL)
            abort();
    }
    gh_lambda_error_t k = gh_lambda_error_classify("Unhandled", 9, text, n, NULL);
    if (k != GH_LAMBDA_UNAUTHORIZED && k != GH_LAMBDA_FUNCTION_ERROR)
        abort();
    check_glob(text, n);
    free(text);
    return 0;
}
