/* libFuzzer target: the token service's form parser and request reader
 * (src/issuer/form.c, src/issuer/request.c) and its JSON writer
 * (src/issuer/jw.c).
 *
 * Input: byte 0 picks the endpoint; up to the first '\n' is an
 * Authorization value (none when empty); the rest is the body.
 * Checks: every decoded string lies in the scratch and is NUL-terminated
 * at its length; pairs re-encoded (every byte but unreserved ones as
 * %XX) parse back to the same pairs; gh_form_get counts what a plain
 * scan counts; a request read is consistent (client id valid, secrets
 * NUL-terminated, scopes and targets within bounds); and the body written
 * as a JSON string either is refused as not UTF-8 or reads back, through
 * jansson, as the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "issuer/form.h"
#include "issuer/issuer.h"
#include "issuer/jw.h"

static void check_form(const char *body, size_t n)
{
    char *scratch = malloc(GH_FORM_SCRATCH(n));
    gh_form_t f;
    const char *why;
    if (scratch == NULL)
        return;
    if (gh_form_parse(body, n, scratch, GH_FORM_SCRATCH(n), &f, &why) != 0) {
        if (why == NULL)
            abort();
        free(scratch);
        return;
    }
    static const char hex[] = "0123456789ABCDEF";
    char *again = malloc(n * 3 + f.n * 2 + 1);
    size_t o = 0;
    for (size_t i = 0; i < f.n; i++) {
        const gh_form_pair_t *p = &f.pairs[i];
        if (p->name < scratch || p->name + p->name_len >= scratch + GH_FORM_SCRATCH(n) ||
            p->name[p->name_len] != '\0' || p->value[p->value_len] != '\0')
            abort();
        if (p->value_len > 0 &&
            (p->value < scratch || p->value + p->value_len >= scratch + GH_FORM_SCRATCH(n)))
            abort();
        if (p->name_len > GH_FORM_MAX_NAME || p->value_len > GH_FORM_MAX_VALUE)
            abort();
        if (i > 0)
            again[o++] = '&';
        for (int part = 0; part < 2; part++) {
            const char *s = part ? p->value : p->name;
            size_t l = part ? p->value_len : p->name_len;
            if (part)
                again[o++] = '=';
            for (size_t k = 0; k < l; k++) {
                unsigned char c = (unsigned char)s[k];
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~') {
                    again[o++] = (char)c;
                } else {
                    again[o++] = '%';
                    again[o++] = hex[c >> 4];
                    again[o++] = hex[c & 15];
                }
            }
        }
        /* gh_form_get counts the non-empty pairs of a name. */
        if (memchr(p->name, '\0', p->name_len) == NULL) {
            char name[GH_FORM_MAX_NAME + 1];
            memcpy(name, p->name, p->name_len + 1);
            size_t count = 0;
            for (size_t k = 0; k < f.n; k++)
                count += f.pairs[k].value_len > 0 && f.pairs[k].name_len == p->name_len &&
                         memcmp(f.pairs[k].name, name, p->name_len) == 0;
            if (gh_form_get(&f, name, NULL) != count)
                abort();
        }
    }
    char *s2 = malloc(GH_FORM_SCRATCH(o));
    gh_form_t f2;
    if (gh_form_parse(again, o, s2, GH_FORM_SCRATCH(o), &f2, &why) != 0 || f2.n != f.n)
        abort();
    for (size_t i = 0; i < f.n; i++) {
        if (f2.pairs[i].name_len != f.pairs[i].name_len ||
            f2.pairs[i].value_len != f.pairs[i].value_len ||
            memcmp(f2.pairs[i].name, f.pairs[i].name, f.pairs[i].name_len) != 0 ||
            memcmp(f2.pairs[i].value, f.pairs[i].value, f.pairs[i].value_len) != 0)
            abort();
    }
    free(s2);
    free(again);
    free(scratch);
}

static void check_request(gh_oauth_endpoint_t ep, const char *authz, size_t al, const char *body,
                          size_t n)
{
    gh_h1_header_t h[2] = {
        {"Content-Type", 12, "application/x-www-form-urlencoded", 33},
        {"Authorization", 13, authz, al},
    };
    gh_oauth_http_t http = {"POST", 4, h, al > 0 ? 2 : 1, body, n};
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    if (gh_oauth_request_parse(ep, &http, &r, &e) != 0) {
        if (e.code == GH_OAUTH_OK || e.desc[0] == '\0' || r.buf != NULL)
            abort();
        return;
    }
    if (!gh_oauth_client_id_valid(r.client_id, r.client_id_len) ||
        strlen(r.client_id) != r.client_id_len)
        abort();
    if (r.secret != NULL && strlen(r.secret) != r.secret_len)
        abort();
    if ((r.auth_method == GH_OAUTH_AUTH_PRIVATE_KEY_JWT) != r.has_assertion)
        abort();
    if (r.nscopes > GH_OAUTH_MAX_SCOPES || r.ntargets > GH_OAUTH_MAX_TARGETS)
        abort();
    for (size_t i = 0; i < r.nscopes; i++)
        if (r.scopes[i][0] == '\0' || strchr(r.scopes[i], ' ') != NULL)
            abort();
    if (ep != GH_OAUTH_TOKEN && (r.token == NULL || strlen(r.token) != r.token_len))
        abort();
    gh_oauth_reply_t rep;
    gh_oauth_request_dispose(&r);
    gh_oauth_reply_error(&e, "r", &rep); /* an OK error is a server_error reply */
}

static void check_json(const char *s, size_t n)
{
    size_t cap = n * 6 + 3;
    char *buf = malloc(cap);
    gh_jw_t w;
    gh_jw_init(&w, buf, cap);
    gh_jw_str(&w, s, n);
    long l = gh_jw_finish(&w);
    if (l >= 0) {
        json_error_t je;
        json_t *v = json_loadb(buf, (size_t)l, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (v == NULL || json_string_length(v) != n || memcmp(json_string_value(v), s, n) != 0)
            abort();
        json_decref(v);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 64 * 1024)
        return 0;
    /* Copies of exactly their size, so ASan sees any read past the end. */
    char *all = malloc(size);
    memcpy(all, data, size);
    gh_oauth_endpoint_t ep = (gh_oauth_endpoint_t)(all[0] % 3);
    const char *rest = all + 1;
    size_t rl = size - 1;
    const char *nl = memchr(rest, '\n', rl);
    size_t al = nl ? (size_t)(nl - rest) : 0;
    const char *body = nl ? nl + 1 : rest;
    size_t bl = nl ? rl - al - 1 : rl;
    char *authz = malloc(al ? al : 1);
    char *b = malloc(bl ? bl : 1);
    memcpy(authz, rest, al);
    memcpy(b, body, bl);
    check_form(b, bl);
    check_request(ep, authz, al, b, bl);
    check_json(b, bl);
    free(b);
    free(authz);
    free(all);
    return 0;
}
