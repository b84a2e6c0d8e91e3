/*
 * Error codes, error replies (RFC 6749 §5.2) and the fields of every
 * answer of the token service.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "issuer/issuer.h"
#include "issuer/jw.h"

static const struct {
    const char *name;
    int status;
} codes[GH_OAUTH_ERROR_COUNT] = {
    [GH_OAUTH_OK] = {NULL, 200},
    [GH_OAUTH_INVALID_REQUEST] = {"invalid_request", 400},
    [GH_OAUTH_INVALID_CLIENT] = {"invalid_client", 401},
    [GH_OAUTH_INVALID_GRANT] = {"invalid_grant", 400},
    [GH_OAUTH_UNAUTHORIZED_CLIENT] = {"unauthorized_client", 400},
    [GH_OAUTH_UNSUPPORTED_GRANT_TYPE] = {"unsupported_grant_type", 400},
    [GH_OAUTH_INVALID_SCOPE] = {"invalid_scope", 400},
    [GH_OAUTH_INVALID_TARGET] = {"invalid_target", 400},
    [GH_OAUTH_UNSUPPORTED_TOKEN_TYPE] = {"unsupported_token_type", 400},
    [GH_OAUTH_SERVER_ERROR] = {"server_error", 500},
    [GH_OAUTH_TEMPORARILY_UNAVAILABLE] = {"temporarily_unavailable", 503},
};

const char *gh_oauth_code_name(gh_oauth_code_t code)
{
    return (unsigned)code < GH_OAUTH_ERROR_COUNT ? codes[code].name : NULL;
}

void gh_oauth_fail(gh_oauth_error_t *e, gh_oauth_code_t code, const char *fmt, ...)
{
    e->code = code;
    e->status = (unsigned)code < GH_OAUTH_ERROR_COUNT ? codes[code].status : 500;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
    va_end(ap);
}

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

/* RFC 6749 §5.1: "Cache-Control: no-store" and "Pragma: no-cache" on
 * every response carrying tokens or credentials; the errors get them too. */
static const gh_h1_header_t json_headers[] = {
    H("Content-Type", "application/json"),
    H("Cache-Control", "no-store"),
    H("Pragma", "no-cache"),
};

const gh_h1_header_t *gh_oauth_json_headers(size_t *n)
{
    *n = sizeof(json_headers) / sizeof(json_headers[0]);
    return json_headers;
}

/* RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E. The
 * descriptions are gatehouse's own text, so this only guards a mistake. */
static void clean_desc(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in != '\0' && o + 1 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        out[o++] = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' ? (char)c : '?';
    }
    out[o] = '\0';
}

void gh_oauth_reply_error(const gh_oauth_error_t *e, const char *realm, gh_oauth_reply_t *out)
{
    gh_oauth_code_t code = e->code;
    if ((unsigned)code >= GH_OAUTH_ERROR_COUNT || code == GH_OAUTH_OK)
        code = GH_OAUTH_SERVER_ERROR;
    out->status = e->status >= 400 && e->status <= 599 ? e->status : codes[code].status;
    out->nheaders = 0;
    for (size_t i = 0; i < sizeof(json_headers) / sizeof(json_headers[0]); i++)
        out->headers[out->nheaders++] = json_headers[i];
    if (out->status == 401) {
        /* realm is a quoted-string (RFC 9110 §5.6.4): '"' and '\' as
         * quoted-pairs; control bytes cannot be sent at all. */
        size_t o = 0, cap = sizeof(out->challenge);
        static const char pre[] = "Basic realm=\"";
        memcpy(out->challenge, pre, sizeof(pre) - 1);
        o = sizeof(pre) - 1;
        for (const char *p = realm ? realm : "gatehouse"; *p != '\0' && o + 4 < cap; p++) {
            unsigned char c = (unsigned char)*p;
            if (c < 0x20 || c == 0x7f)
                continue;
            if (c == '"' || c == '\\')
                out->challenge[o++] = '\\';
            out->challenge[o++] = (char)c;
        }
        out->challenge[o++] = '"';
        out->challenge[o] = '\0';
        out->headers[out->nheaders++] = (gh_h1_header_t){"WWW-Authenticate", 16, out->challenge, o};
    } else if (out->status == 405) {
        out->headers[out->nheaders++] = (gh_h1_header_t)H("Allow", "POST");
    }
    char desc[sizeof(e->desc)];
    clean_desc(e->desc, desc, sizeof(desc));
    gh_jw_t w;
    gh_jw_init(&w, out->body, sizeof(out->body));
    gh_jw_lit(&w, "{\"error\":");
    gh_jw_cstr(&w, codes[code].name);
    if (desc[0] != '\0') {
        gh_jw_lit(&w, ",\"error_description\":");
        gh_jw_cstr(&w, desc);
    }
    gh_jw_lit(&w, "}");
    long n = gh_jw_finish(&w);
    out->body_len = n > 0 ? (size_t)n : 0;
}
