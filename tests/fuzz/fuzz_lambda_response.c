/* libFuzzer target: a Lambda function's proxy result as a response
 * (src/authorizer/lambda.c). The first byte picks payload format 1.0 or
 * 2.0, the rest is the function's output. Checks that a refusal leaves
 * nothing behind and says why; that an accepted answer has a final status
 * (200 to 599), header names that are tokens and never a framing or
 * hop-by-hop field, values without CR, LF, NUL or other controls, a body
 * no longer than the output (base64 only shrinks) and none on 204 and
 * 304; and that format 2.0's inferred answer is the output verbatim. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authorizer/authz.h"

static int token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL)))
            return 0;
    }
    return 1;
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
    int version = data[0] & 1 ? 1 : 2;
    gh_lambda_response_t r;
    const char *why = NULL;
    int rc = gh_lambda_response_map(text, n, version, &r, &why);
    if (rc != 0) {
        if ((rc == GH_AUTHZ_EBAD && why == NULL) || r.headers != NULL || r.body != NULL ||
            r.nheaders != 0)
            abort();
        free(text);
        return 0;
    }
    if (why != NULL || r.status < 200 || r.status > 599 || r.nheaders > GH_LAMBDA_MAX_HEADERS ||
        r.body_len > n || (r.body == NULL) != (r.body_len == 0))
        abort();
    if ((r.status == 204 || r.status == 304) && r.body_len != 0)
        abort();
    int content_type = 0;
    for (size_t i = 0; i < r.nheaders; i++) {
        const gh_lambda_header_t *h = &r.headers[i];
        if (strlen(h->name) != h->name_len || strlen(h->value) != h->value_len ||
            !token(h->name, h->name_len) || gh_lambda_header_dropped(h->name, h->name_len))
            abort();
        for (size_t k = 0; k < h->value_len; k++) {
            unsigned char c = (unsigned char)h->value[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                abort();
        }
        content_type +=
            strcmp(h->name, "content-type") == 0 && strcmp(h->value, "application/json") == 0;
    }
    /* inferred (2.0, no statusCode member: no such name, and no escape
     * that could spell one): the output verbatim, as JSON */
    if (version == 2 && memmem(text, n, "\"statusCode\"", 12) == NULL &&
        memchr(text, '\\', n) == NULL) {
        if (r.status != 200 || r.nheaders != 1 || content_type != 1 || r.body_len != n ||
            (n > 0 && memcmp(r.body, text, n) != 0))
            abort();
    }
    gh_lambda_response_dispose(&r);
    free(text);
    return 0;
}
