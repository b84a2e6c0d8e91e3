/*
 * Token, introspection and revocation requests (src/issuer/request.c):
 * RFC 6749 §4.4.2's example request and its Basic credential, Basic's
 * form-urlencoding (§2.3.1) and strict base64, the method, Content-Type
 * and Authorization fields (missing, repeated, odd), every parameter rule
 * (repeats, omitted empty values, control bytes), the client
 * authentication methods alone and mixed, client ids with odd bytes,
 * scope syntax (§3.3), audience and resource (RFC 8707), and the error
 * replies (§5.2) built from the refusals.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "oauth_test.h"

#define T GH_OAUTH_TOKEN
#define CC "grant_type=client_credentials"
#define BASIC_RFC "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW" /* s6BhdRkqt3:gX1fBat3bV */

static void test_rfc6749_example(void **state)
{
    (void)state;
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    /* RFC 6749 §4.4.2 (and §2.3.1's credential). */
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC, CC, &r, &e), 0);
    assert_int_equal(r.auth_method, GH_OAUTH_AUTH_SECRET_BASIC);
    assert_string_equal(r.client_id, "s6BhdRkqt3");
    assert_string_equal(r.secret, "gX1fBat3bV");
    assert_int_equal(r.secret_len, 10);
    assert_null(r.scope);
    assert_int_equal(r.nscopes, 0);
    assert_int_equal(r.ntargets, 0);
    gh_oauth_request_dispose(&r);
    /* §2.3.1's body form of the same credential. */
    assert_int_equal(oauth_req(T, CT_FORM, NULL,
                               CC "&client_id=s6BhdRkqt3&client_secret=7Fjfp0ZBr1KtDRbnfVdmIw", &r,
                               &e),
                     0);
    assert_int_equal(r.auth_method, GH_OAUTH_AUTH_SECRET_POST);
    assert_string_equal(r.client_id, "s6BhdRkqt3");
    assert_string_equal(r.secret, "7Fjfp0ZBr1KtDRbnfVdmIw");
    gh_oauth_request_dispose(&r);
}

static void test_basic_encoding(void **state)
{
    (void)state;
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    /* client-1 : p@ss:w+rd% é, each form-urlencoded before base64. */
    assert_int_equal(
        oauth_req(T, CT_FORM, "Basic Y2xpZW50LTE6cCU0MHNzJTNBdyUyQnJkJTI1KyVDMyVBOQ==", CC, &r, &e),
        0);
    assert_string_equal(r.client_id, "client-1");
    assert_string_equal(r.secret, "p@ss:w+rd% \xc3\xa9");
    gh_oauth_request_dispose(&r);
    /* Both parts are decoded: "client%2D1" is client-1, "s%2Bx" is s+x. */
    assert_int_equal(oauth_req(T, CT_FORM, "Basic Y2xpZW50JTJEMTpzJTJCeA==", CC, &r, &e), 0);
    assert_string_equal(r.client_id, "client-1");
    assert_string_equal(r.secret, "s+x");
    gh_oauth_request_dispose(&r);
    /* An unencoded '+' is a space, as the RFC's encoding says. */
    assert_int_equal(oauth_req(T, CT_FORM, "Basic Y2xpZW50LTE6YSti", CC, &r, &e), 0);
    assert_string_equal(r.secret, "a b");
    gh_oauth_request_dispose(&r);
    /* The first ':' splits: an unencoded ':' in the secret stays. */
    assert_int_equal(oauth_req(T, CT_FORM, "Basic Y2xpZW50LTE6c2U6Y3JldA==", CC, &r, &e), 0);
    assert_string_equal(r.secret, "se:cret");
    gh_oauth_request_dispose(&r);
    /* The scheme is case-insensitive; several spaces may follow it. */
    assert_int_equal(oauth_req(T, CT_FORM, "bAsIc   czZCaGRSa3F0MzpnWDFmQmF0M2JW", CC, &r, &e), 0);
    assert_string_equal(r.client_id, "s6BhdRkqt3");
    gh_oauth_request_dispose(&r);
    /* client_id in the body as well, the same: fine. */
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC, CC "&client_id=s6BhdRkqt3", &r, &e), 0);
    gh_oauth_request_dispose(&r);
}

static void test_basic_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *authz;
        gh_oauth_code_t code;
    } bad[] = {
        {"Basic", GH_OAUTH_INVALID_CLIENT},
        {"Basic ", GH_OAUTH_INVALID_CLIENT},
        {"Bearer czZCaGRSa3F0MzpnWDFmQmF0M2JW", GH_OAUTH_INVALID_CLIENT},
        {"Basicx czZCaGRSa3F0MzpnWDFmQmF0M2JW", GH_OAUTH_INVALID_CLIENT},
        {"Digest username=\"a\"", GH_OAUTH_INVALID_CLIENT},
        {"Basic czZCaGRSa3F0MzpnWDFmQmF0M2J", GH_OAUTH_INVALID_CLIENT},   /* length 4k+3 */
        {"Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW=", GH_OAUTH_INVALID_CLIENT}, /* stray pad */
        {"Basic Y2xpZW50LTE", GH_OAUTH_INVALID_CLIENT},                   /* pad missing */
        {"Basic YTpiYx==", GH_OAUTH_INVALID_CLIENT},             /* non-zero trailing bits */
        {"Basic YTpi Yw==", GH_OAUTH_INVALID_CLIENT},            /* space inside */
        {"Basic YTpi_w==", GH_OAUTH_INVALID_CLIENT},             /* base64url alphabet */
        {"Basic YT=i", GH_OAUTH_INVALID_CLIENT},                 /* pad in the middle */
        {"Basic Y2xpZW50LTE=", GH_OAUTH_INVALID_CLIENT},         /* no ':' */
        {"Basic Y2xpZW50LTE6", GH_OAUTH_INVALID_CLIENT},         /* empty secret */
        {"Basic OnNlY3JldA==", GH_OAUTH_INVALID_CLIENT},         /* empty id (":secret") */
        {"Basic Y2xpZW50LTE6JXp6", GH_OAUTH_INVALID_CLIENT},     /* %zz */
        {"Basic Y2xpZW50LTE6JTAweA==", GH_OAUTH_INVALID_CLIENT}, /* %00 in the secret */
        {"Basic Y2xpJTIwZW50Ong=", GH_OAUTH_INVALID_CLIENT},     /* "cli ent": bad id */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gh_oauth_request_t r;
        gh_oauth_error_t e;
        if (oauth_req(T, CT_FORM, bad[i].authz, CC, &r, &e) == 0) {
            gh_oauth_request_dispose(&r);
            fail_msg("accepted %s", bad[i].authz);
        }
        if (e.code != bad[i].code || e.status != 401)
            fail_msg("%s: %s %d", bad[i].authz, gh_oauth_code_name(e.code), e.status);
    }
    /* Basic naming another client than client_id. */
    oauth_refused(T, CT_FORM, BASIC_RFC, CC "&client_id=other", GH_OAUTH_INVALID_REQUEST,
                  "does not match");
}

static void test_fields(void **state)
{
    (void)state;
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    gh_h1_header_t h[4];
    /* The method: POST only, case-sensitive (RFC 9110 §9.1). */
    h[0] = HDR("content-type", CT_FORM);
    h[1] = HDR("authorization", BASIC_RFC);
    assert_int_equal(oauth_req_full(T, "GET", h, 2, CC, &r, &e), -1);
    assert_int_equal(e.status, 405);
    assert_int_equal(oauth_req_full(T, "post", h, 2, CC, &r, &e), -1);
    assert_int_equal(e.status, 405);
    /* Lower-case field names are the same fields. */
    assert_int_equal(oauth_req_full(T, "POST", h, 2, CC, &r, &e), 0);
    gh_oauth_request_dispose(&r);
    /* Repeated Content-Type, even identical. */
    h[2] = HDR("Content-Type", CT_FORM);
    assert_int_equal(oauth_req_full(T, "POST", h, 3, CC, &r, &e), -1);
    assert_int_equal(e.code, GH_OAUTH_INVALID_REQUEST);
    assert_non_null(strstr(e.desc, "repeated"));
    /* Repeated Authorization, even identical: 401. */
    h[2] = HDR("AUTHORIZATION", BASIC_RFC);
    assert_int_equal(oauth_req_full(T, "POST", h, 3, CC, &r, &e), -1);
    assert_int_equal(e.code, GH_OAUTH_INVALID_CLIENT);
    assert_int_equal(e.status, 401);
    /* Content-Type values. */
    static const char *const ok[] = {
        "application/x-www-form-urlencoded",
        "APPLICATION/X-WWW-FORM-URLENCODED",
        "application/x-www-form-urlencoded;charset=UTF-8",
        "application/x-www-form-urlencoded ; charset=\"utf-8\"",
        "application/x-www-form-urlencoded; charset=utf-8; x=\"a;b\\\"\"",
        "application/x-www-form-urlencoded;",
        "application/x-www-form-urlencoded; ;x=y",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (oauth_req(T, ok[i], BASIC_RFC, CC, &r, &e) != 0)
            fail_msg("refused %s: %s", ok[i], e.desc);
        gh_oauth_request_dispose(&r);
    }
    static const char *const bad[] = {
        "application/json",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencodedx",
        "application/x-www-form-urlencoded,application/json",
        "application/x-www-form-urlencoded; charset=iso-8859-1",
        "application/x-www-form-urlencoded; charset=utf-8; charset=utf-8",
        "application/x-www-form-urlencoded; charset=\"utf-8",
        "application/x-www-form-urlencoded; charset=utf-88",
        "application/x-www-form-urlencoded; x",
        "application/x-www-form-urlencoded; x=",
        "application/x-www-form-urlencoded; =y",
        "application/x-www-form-urlencoded; x=\"\x01\"",
        "text/plain",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        oauth_refused(T, bad[i], BASIC_RFC, CC, GH_OAUTH_INVALID_REQUEST, NULL);
    oauth_refused(T, NULL, BASIC_RFC, CC, GH_OAUTH_INVALID_REQUEST, "missing");
}

static void test_body_bound(void **state)
{
    (void)state;
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    char *b = malloc(GH_OAUTH_MAX_BODY + 2);
    memset(b, '&', GH_OAUTH_MAX_BODY + 1);
    memcpy(b, CC, strlen(CC));
    b[GH_OAUTH_MAX_BODY] = '\0';
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC, b, &r, &e), 0);
    gh_oauth_request_dispose(&r);
    b[GH_OAUTH_MAX_BODY] = '&';
    b[GH_OAUTH_MAX_BODY + 1] = '\0';
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC, b, &r, &e), -1);
    assert_int_equal(e.status, 413);
    free(b);
    /* Too many pairs, malformed escapes: invalid_request. */
    oauth_refused(T, CT_FORM, BASIC_RFC, CC "&x=%4", GH_OAUTH_INVALID_REQUEST, "percent");
}

static void test_params(void **state)
{
    (void)state;
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    /* grant_type. */
    oauth_refused(T, CT_FORM, BASIC_RFC, "", GH_OAUTH_INVALID_REQUEST, "grant_type");
    oauth_refused(T, CT_FORM, BASIC_RFC, "grant_type=", GH_OAUTH_INVALID_REQUEST, "grant_type");
    oauth_refused(T, CT_FORM, BASIC_RFC, "grant_type", GH_OAUTH_INVALID_REQUEST, "grant_type");
    oauth_refused(T, CT_FORM, BASIC_RFC, "grant_type=password&username=a&password=b",
                  GH_OAUTH_UNSUPPORTED_GRANT_TYPE, NULL);
    oauth_refused(T, CT_FORM, BASIC_RFC, "grant_type=Client_Credentials",
                  GH_OAUTH_UNSUPPORTED_GRANT_TYPE, NULL);
    oauth_refused(T, CT_FORM, BASIC_RFC, "grant_type=client_credentials%00",
                  GH_OAUTH_INVALID_REQUEST, "control");
    /* Repeats of a parameter read: refused, naming it, even when equal,
     * spelled differently or next to an omitted empty one. */
    oauth_refused(T, CT_FORM, BASIC_RFC, CC "&" CC, GH_OAUTH_INVALID_REQUEST,
                  "grant_type is repeated");
    oauth_refused(T, CT_FORM, BASIC_RFC, CC "&gr%61nt_type=client_credentials",
                  GH_OAUTH_INVALID_REQUEST, "grant_type is repeated");
    oauth_refused(T, CT_FORM, BASIC_RFC, CC "&scope=a&scope=a", GH_OAUTH_INVALID_REQUEST,
                  "scope is repeated");
    oauth_refused(T, CT_FORM, NULL, CC "&client_id=a&client_id=a&client_secret=s",
                  GH_OAUTH_INVALID_REQUEST, "client_id is repeated");
    oauth_refused(T, CT_FORM, NULL, CC "&client_id=a&client_secret=s&client_secret=t",
                  GH_OAUTH_INVALID_REQUEST, "client_secret is repeated");
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC, CC "&scope=&scope=a&scope", &r, &e), 0);
    assert_string_equal(r.scope, "a");
    gh_oauth_request_dispose(&r);
    /* Parameters not read are ignored, repeated or not, at every endpoint. */
    assert_int_equal(
        oauth_req(T, CT_FORM, BASIC_RFC, CC "&x=1&x=2&token=a&token=b&%00=%00", &r, &e), 0);
    gh_oauth_request_dispose(&r);
    assert_int_equal(oauth_req(GH_OAUTH_INTROSPECT, CT_FORM, BASIC_RFC,
                               "token=t&grant_type=a&grant_type=b&scope=%01", &r, &e),
                     0);
    gh_oauth_request_dispose(&r);
}

static void test_methods(void **state)
{
    (void)state;
    /* None at all. */
    oauth_refused(T, CT_FORM, NULL, CC, GH_OAUTH_INVALID_CLIENT, "required");
    oauth_refused(T, CT_FORM, NULL, CC "&client_id=a", GH_OAUTH_INVALID_CLIENT, "required");
    oauth_refused(T, CT_FORM, NULL, CC "&client_id=a&client_secret=", GH_OAUTH_INVALID_CLIENT,
                  "required");
    /* More than one (RFC 6749 §2.3). */
    oauth_refused(T, CT_FORM, BASIC_RFC, CC "&client_secret=x", GH_OAUTH_INVALID_REQUEST,
                  "more than one");
    oauth_refused(T, CT_FORM, BASIC_RFC, CC "&client_assertion=x", GH_OAUTH_INVALID_REQUEST,
                  "more than one");
    oauth_refused(T, CT_FORM, NULL,
                  CC "&client_id=a&client_secret=x&client_assertion_type=" GH_OAUTH_ASSERTION_TYPE,
                  GH_OAUTH_INVALID_REQUEST, "more than one");
    /* client_secret_post needs its client_id. */
    oauth_refused(T, CT_FORM, NULL, CC "&client_secret=x", GH_OAUTH_INVALID_REQUEST,
                  "without client_id");
    /* Assertions: both parameters, the jwt-bearer type, a JWT. */
    oauth_refused(T, CT_FORM, NULL, CC "&client_assertion=x", GH_OAUTH_INVALID_REQUEST, "together");
    oauth_refused(T, CT_FORM, NULL, CC "&client_assertion_type=" GH_OAUTH_ASSERTION_TYPE,
                  GH_OAUTH_INVALID_REQUEST, "together");
    oauth_refused(T, CT_FORM, NULL,
                  CC "&client_assertion=a.b.c&client_assertion_type="
                     "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                  GH_OAUTH_INVALID_CLIENT, "client_assertion_type");
    oauth_refused(T, CT_FORM, NULL,
                  CC "&client_assertion=a.b.c&client_assertion_type=" GH_OAUTH_ASSERTION_TYPE,
                  GH_OAUTH_INVALID_CLIENT, "client assertion");
}

static void test_client_ids(void **state)
{
    (void)state;
    char body[512];
    static const struct {
        const char *enc;
        gh_oauth_code_t code;
    } bad[] = {
        {"a+b", GH_OAUTH_INVALID_CLIENT},    {"a%2Fb", GH_OAUTH_INVALID_CLIENT},
        {"%C3%A9", GH_OAUTH_INVALID_CLIENT}, {"a%3Ab", GH_OAUTH_INVALID_CLIENT},
        {"a%00b", GH_OAUTH_INVALID_REQUEST}, {"a%0Ab", GH_OAUTH_INVALID_REQUEST},
        {"a%7F", GH_OAUTH_INVALID_REQUEST},  {"a%22", GH_OAUTH_INVALID_CLIENT},
        {"%25", GH_OAUTH_INVALID_CLIENT},    {"a*", GH_OAUTH_INVALID_CLIENT},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), CC "&client_id=%s&client_secret=s", bad[i].enc);
        oauth_refused(T, CT_FORM, NULL, body, bad[i].code, NULL);
    }
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    char id[GH_OAUTH_MAX_CLIENT_ID + 2];
    memset(id, 'a', sizeof(id) - 1);
    id[GH_OAUTH_MAX_CLIENT_ID] = '\0';
    snprintf(body, sizeof(body), CC "&client_id=%s&client_secret=s", id);
    assert_int_equal(oauth_req(T, CT_FORM, NULL, body, &r, &e), 0);
    gh_oauth_request_dispose(&r);
    id[GH_OAUTH_MAX_CLIENT_ID] = 'a';
    id[GH_OAUTH_MAX_CLIENT_ID + 1] = '\0';
    snprintf(body, sizeof(body), CC "&client_id=%s&client_secret=s", id);
    oauth_refused(T, CT_FORM, NULL, body, GH_OAUTH_INVALID_CLIENT, "client_id");
    assert_int_equal(oauth_req(T, CT_FORM, NULL, CC "&client_id=A-z.0_9~&client_secret=s", &r, &e),
                     0);
    gh_oauth_request_dispose(&r);
}

static void test_scope(void **state)
{
    (void)state;
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC,
                               CC "&scope=orders.read+orders%3Awrite+!%23~+orders.read", &r, &e),
                     0);
    assert_int_equal(r.nscopes, 3);
    assert_string_equal(r.scopes[0], "orders.read");
    assert_string_equal(r.scopes[1], "orders:write");
    assert_string_equal(r.scopes[2], "!#~");
    gh_oauth_request_dispose(&r);
    static const char *const bad[] = {
        "a++b", "+a", "a+", "a%22b", "a%5Cb", "%C3%A9", "a%7F", "+",
    };
    char body[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), CC "&scope=%s", bad[i]);
        oauth_refused(T, CT_FORM, BASIC_RFC, body,
                      strstr(bad[i], "7F") ? GH_OAUTH_INVALID_REQUEST : GH_OAUTH_INVALID_SCOPE,
                      NULL);
    }
    oauth_refused(T, CT_FORM, BASIC_RFC, CC "&scope=a%09b", GH_OAUTH_INVALID_REQUEST, "control");
    /* GH_OAUTH_MAX_SCOPES distinct tokens pass, one more does not. */
    char *b = malloc(4096);
    size_t o = (size_t)sprintf(b, CC "&scope=s0");
    for (int i = 1; i < GH_OAUTH_MAX_SCOPES; i++)
        o += (size_t)sprintf(b + o, "+s%d", i);
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC, b, &r, &e), 0);
    assert_int_equal(r.nscopes, GH_OAUTH_MAX_SCOPES);
    gh_oauth_request_dispose(&r);
    sprintf(b + o, "+s%d", GH_OAUTH_MAX_SCOPES);
    oauth_refused(T, CT_FORM, BASIC_RFC, b, GH_OAUTH_INVALID_SCOPE, "too many");
    free(b);
}

static void test_targets(void **state)
{
    (void)state;
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    /* Both may repeat (RFC 8707 §2, RFC 8693 §2.1); equal values collapse. */
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC,
                               CC "&resource=https%3A%2F%2Fapi.example.com%2Forders"
                                  "&audience=orders&resource=urn:example:x&audience=orders"
                                  "&resource=https://api.example.com/orders",
                               &r, &e),
                     0);
    assert_int_equal(r.ntargets, 3);
    assert_string_equal(r.targets[0], "orders");
    assert_string_equal(r.targets[1], "https://api.example.com/orders");
    assert_string_equal(r.targets[2], "urn:example:x");
    gh_oauth_request_dispose(&r);
    static const char *const bad[] = {
        "resource=https://a/%23frag",
        "resource=https://a/x#",
        "resource=/relative",
        "resource=orders",
        "resource=1http://a",
        "resource=http:",
        "resource=http://a/%252",
        "resource=http://a/%C3%A9",
        "resource=http://a/%20",
        "audience=a+b",
        "audience=%C3%A9",
    };
    char body[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), CC "&%s", bad[i]);
        oauth_refused(T, CT_FORM, BASIC_RFC, body, GH_OAUTH_INVALID_TARGET, NULL);
    }
    /* A percent escape inside a resource URI is the URI's (decoded once by
     * the form: "%252F" is the URI text "%2F"). */
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC, CC "&resource=http://a/%252F", &r, &e), 0);
    assert_string_equal(r.targets[0], "http://a/%2F");
    gh_oauth_request_dispose(&r);
    char *b = malloc(1024);
    size_t o = (size_t)sprintf(b, CC);
    for (int i = 0; i < GH_OAUTH_MAX_TARGETS; i++)
        o += (size_t)sprintf(b + o, "&audience=a%d", i);
    assert_int_equal(oauth_req(T, CT_FORM, BASIC_RFC, b, &r, &e), 0);
    gh_oauth_request_dispose(&r);
    sprintf(b + o, "&resource=urn:x");
    oauth_refused(T, CT_FORM, BASIC_RFC, b, GH_OAUTH_INVALID_TARGET, "too many");
    free(b);
}

static void test_token_ops(void **state)
{
    (void)state;
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    static const struct {
        const char *hint;
        gh_oauth_hint_t want;
    } hints[] = {
        {"", GH_OAUTH_HINT_NONE},
        {"&token_type_hint=access_token", GH_OAUTH_HINT_ACCESS_TOKEN},
        {"&token_type_hint=refresh_token", GH_OAUTH_HINT_REFRESH_TOKEN},
        {"&token_type_hint=id_token", GH_OAUTH_HINT_OTHER},
        {"&token_type_hint=", GH_OAUTH_HINT_NONE},
    };
    char body[128];
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
        snprintf(body, sizeof(body), "token=abc%s", hints[i].hint);
        assert_int_equal(oauth_req(GH_OAUTH_REVOKE, CT_FORM, BASIC_RFC, body, &r, &e), 0);
        assert_int_equal(r.hint, hints[i].want);
        assert_string_equal(r.token, "abc");
        gh_oauth_request_dispose(&r);
    }
    oauth_refused(GH_OAUTH_INTROSPECT, CT_FORM, BASIC_RFC, "token=", GH_OAUTH_INVALID_REQUEST,
                  "token is missing");
    oauth_refused(GH_OAUTH_INTROSPECT, CT_FORM, BASIC_RFC, "token=a&token=a",
                  GH_OAUTH_INVALID_REQUEST, "token is repeated");
    oauth_refused(GH_OAUTH_REVOKE, CT_FORM, BASIC_RFC,
                  "token=a&token_type_hint=a&token_type_hint=b", GH_OAUTH_INVALID_REQUEST,
                  "token_type_hint is repeated");
    oauth_refused(GH_OAUTH_REVOKE, CT_FORM, NULL, "token=a", GH_OAUTH_INVALID_CLIENT, NULL);
    /* grant_type is not the token operations' business. */
    assert_int_equal(oauth_req(GH_OAUTH_INTROSPECT, CT_FORM, BASIC_RFC, "token=a", &r, &e), 0);
    gh_oauth_request_dispose(&r);
}

static json_t *reply_json(const gh_oauth_reply_t *rep)
{
    json_error_t je;
    json_t *v = json_loadb(rep->body, rep->body_len, 0, &je);
    assert_non_null(v);
    return v;
}

static const char *field(const gh_oauth_reply_t *rep, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < rep->nheaders; i++) {
        if (rep->headers[i].name_len == strlen(name) &&
            strncasecmp(rep->headers[i].name, name, strlen(name)) == 0) {
            assert_null(v); /* never twice */
            v = strndup(rep->headers[i].value, rep->headers[i].value_len);
        }
    }
    return v;
}

static void check_field(const gh_oauth_reply_t *rep, const char *name, const char *want)
{
    char *v = (char *)field(rep, name);
    if (want == NULL) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void test_error_replies(void **state)
{
    (void)state;
    gh_oauth_reply_t rep;
    gh_oauth_error_t e;
    gh_oauth_request_t r;
    /* invalid_client: 401, a Basic challenge (realm quoted), no-store. */
    assert_int_equal(oauth_req(T, CT_FORM, "Bearer x", CC, &r, &e), -1);
    gh_oauth_reply_error(&e, "gate \"house\"\\\x01", &rep);
    assert_int_equal(rep.status, 401);
    check_field(&rep, "WWW-Authenticate", "Basic realm=\"gate \\\"house\\\"\\\\\"");
    check_field(&rep, "Cache-Control", "no-store");
    check_field(&rep, "Pragma", "no-cache");
    check_field(&rep, "Content-Type", "application/json");
    check_field(&rep, "Allow", NULL);
    json_t *v = reply_json(&rep);
    assert_string_equal(json_string_value(json_object_get(v, "error")), "invalid_client");
    assert_non_null(json_string_value(json_object_get(v, "error_description")));
    assert_int_equal(json_object_size(v), 2);
    json_decref(v);
    /* 405 with Allow. */
    gh_h1_header_t h[1] = {HDR("Content-Type", CT_FORM)};
    assert_int_equal(oauth_req_full(T, "PUT", h, 1, CC, &r, &e), -1);
    gh_oauth_reply_error(&e, NULL, &rep);
    assert_int_equal(rep.status, 405);
    check_field(&rep, "Allow", "POST");
    check_field(&rep, "WWW-Authenticate", NULL);
    /* Every code: its status and name; a description kept to §5.2's
     * characters whatever went in. */
    static const int status[] = {0, 400, 401, 400, 400, 400, 400, 400, 400, 500, 503};
    for (int c = 1; c < GH_OAUTH_ERROR_COUNT; c++) {
        gh_oauth_fail(&e, (gh_oauth_code_t)c, "a \"quoted\" \\ %s", "\x01\xff");
        assert_int_equal(e.status, status[c]);
        gh_oauth_reply_error(&e, "r", &rep);
        assert_int_equal(rep.status, status[c]);
        check_field(&rep, "WWW-Authenticate", status[c] == 401 ? "Basic realm=\"r\"" : NULL);
        v = reply_json(&rep);
        assert_string_equal(json_string_value(json_object_get(v, "error")),
                            gh_oauth_code_name((gh_oauth_code_t)c));
        assert_string_equal(json_string_value(json_object_get(v, "error_description")),
                            "a ?quoted? ? ??");
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6749_example), cmocka_unit_test(test_basic_encoding),
        cmocka_unit_test(test_basic_refusals),  cmocka_unit_test(test_fields),
        cmocka_unit_test(test_body_bound),      cmocka_unit_test(test_params),
        cmocka_unit_test(test_methods),         cmocka_unit_test(test_client_ids),
        cmocka_unit_test(test_scope),           cmocka_unit_test(test_targets),
        cmocka_unit_test(test_token_ops),       cmocka_unit_test(test_error_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
