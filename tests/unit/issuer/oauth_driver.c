/*
 * Test driver, not a test: runs the token service's core (src/issuer/) on
 * requests read from stdin, for tests/integration/test_oauth_core.py to
 * judge with PyJWT and oauthlib. Built with the unit tests
 * (build/oauth_driver).
 *
 * One JSON object per input line; byte strings that may hold anything are
 * hex:
 *   {"op": "mint", "alg": "ES256", "issuer": "...", "client_id": "...",
 *    "scopes": [...], "audiences": [...], "lifetime": 600, "now": N}
 *   {"op": "parse", "endpoint": "token"|"introspect"|"revoke",
 *    "method": "POST", "headers": [[HEX, HEX], ...], "body": HEX}
 * One JSON object per output line, in order:
 *   mint:  {"jwks": "...", "token": "...", "body": "..."}
 *   parse: {"ok": true, "auth_method": "...", "client_id": "...",
 *           "secret": HEX | null, "scopes": [...], "targets": [...],
 *           "token": "..." | null}
 *          {"ok": false, "status": 401, "headers": [[name, value], ...],
 *           "body": "..."}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/hex.h>
#include <jansson.h>

#include "issuer/issuer.h"

static char *unhex(const char *s, size_t *len)
{
    size_t n = s ? strlen(s) : 1;
    if (n % 2 != 0)
        return NULL;
    char *b = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = gh_hex_value((unsigned char)s[2 * i]);
        int lo = gh_hex_value((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return NULL;
        }
        b[i] = (char)(hi << 4 | lo);
    }
    b[n / 2] = '\0';
    *len = n / 2;
    return b;
}

static json_t *hexstr(const char *p, size_t n)
{
    char *h = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        sprintf(h + 2 * i, "%02x", (unsigned char)p[i]);
    h[2 * n] = '\0';
    json_t *v = json_string(h);
    free(h);
    return v;
}

static json_t *mint(json_t *in)
{
    char err[128];
    const char *algname = json_string_value(json_object_get(in, "alg"));
    gh_jwt_alg_t alg = gh_jwt_alg_from_name(algname, strlen(algname));
    gh_jwt_signing_key_t *key = gh_jwt_signing_key_generate(alg, 0, err, sizeof(err));
    if (key == NULL)
        return json_pack("{ss}", "error", err);
    char *jwks = gh_jwt_signing_key_jwks(key, "k1", alg, err, sizeof(err));
    gh_oauth_grant_t g = {.client_id = json_string_value(json_object_get(in, "client_id"))};
    json_t *a = json_object_get(in, "scopes");
    for (size_t i = 0; i < json_array_size(a) && i < GH_OAUTH_MAX_SCOPES; i++)
        g.scopes[g.nscopes++] = json_string_value(json_array_get(a, i));
    a = json_object_get(in, "audiences");
    for (size_t i = 0; i < json_array_size(a) && i < GH_OAUTH_MAX_TARGETS; i++)
        g.audiences[g.naudiences++] = json_string_value(json_array_get(a, i));
    gh_oauth_mint_conf_t mc = {
        .issuer = json_string_value(json_object_get(in, "issuer")),
        .key = key,
        .alg = alg,
        .kid = "k1",
        .lifetime = json_integer_value(json_object_get(in, "lifetime")),
    };
    gh_oauth_token_t t;
    gh_oauth_error_t e;
    json_t *out;
    if (gh_oauth_mint(&mc, &g, json_integer_value(json_object_get(in, "now")), NULL, &t, &e) == 0) {
        out = json_pack("{ss ss ss#}", "jwks", jwks, "token", t.access_token, "body", t.body,
                        t.body_len);
        gh_oauth_token_dispose(&t);
    } else {
        out = json_pack("{ss}", "error", e.desc);
    }
    free(jwks);
    gh_jwt_signing_key_free(key);
    return out;
}

static json_t *parse(json_t *in)
{
    const char *ep = json_string_value(json_object_get(in, "endpoint"));
    gh_oauth_endpoint_t endpoint = strcmp(ep, "token") == 0        ? GH_OAUTH_TOKEN
                                   : strcmp(ep, "introspect") == 0 ? GH_OAUTH_INTROSPECT
                                                                   : GH_OAUTH_REVOKE;
    json_t *hs = json_object_get(in, "headers");
    size_t nh = json_array_size(hs);
    gh_h1_header_t *h = calloc(nh + 1, sizeof(*h));
    char **bufs = calloc(2 * nh + 2, sizeof(char *));
    for (size_t i = 0; i < nh; i++) {
        json_t *pair = json_array_get(hs, i);
        bufs[2 * i] = unhex(json_string_value(json_array_get(pair, 0)), &h[i].name_len);
        bufs[2 * i + 1] = unhex(json_string_value(json_array_get(pair, 1)), &h[i].value_len);
        h[i].name = bufs[2 * i];
        h[i].value = bufs[2 * i + 1];
    }
    size_t bl = 0;
    char *body = unhex(json_string_value(json_object_get(in, "body")), &bl);
    const char *method = json_string_value(json_object_get(in, "method"));
    gh_oauth_http_t http = {method, strlen(method), h, nh, body, bl};
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    json_t *out;
    if (gh_oauth_request_parse(endpoint, &http, &r, &e) == 0) {
        json_t *scopes = json_array(), *targets = json_array();
        for (size_t i = 0; i < r.nscopes; i++)
            json_array_append_new(scopes, json_string(r.scopes[i]));
        for (size_t i = 0; i < r.ntargets; i++)
            json_array_append_new(targets, json_string(r.targets[i]));
        out =
            json_pack("{sb ss ss so so so so}", "ok", 1, "auth_method",
                      gh_oauth_auth_method_name(r.auth_method), "client_id", r.client_id, "secret",
                      r.secret ? hexstr(r.secret, r.secret_len) : json_null(), "scopes", scopes,
                      "targets", targets, "token", r.token ? json_string(r.token) : json_null());
        gh_oauth_request_dispose(&r);
    } else {
        gh_oauth_reply_t rep;
        gh_oauth_reply_error(&e, "gatehouse", &rep);
        json_t *fields = json_array();
        for (size_t i = 0; i < rep.nheaders; i++)
            json_array_append_new(fields,
                                  json_pack("[s# s#]", rep.headers[i].name, rep.headers[i].name_len,
                                            rep.headers[i].value, rep.headers[i].value_len));
        out = json_pack("{sb si so ss#}", "ok", 0, "status", rep.status, "headers", fields, "body",
                        rep.body, rep.body_len);
    }
    for (size_t i = 0; i < 2 * nh; i++)
        free(bufs[i]);
    free(bufs);
    free(h);
    free(body);
    return out;
}

int main(void)
{
    char line[256 * 1024];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        json_error_t je;
        json_t *in = json_loads(line, 0, &je);
        const char *op = json_string_value(json_object_get(in, "op"));
        json_t *out = op == NULL                ? json_pack("{ss}", "error", "bad input")
                      : strcmp(op, "mint") == 0 ? mint(in)
                                                : parse(in);
        char *s = json_dumps(out, JSON_COMPACT);
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(out);
        json_decref(in);
    }
    return 0;
}
