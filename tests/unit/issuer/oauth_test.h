/* Shared by the issuer's tests: building a request view and reading an
 * error. Include after cmocka.h. */
#ifndef GATEHOUSE_TEST_OAUTH_H
#define GATEHOUSE_TEST_OAUTH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "issuer/issuer.h"

#define CT_FORM "application/x-www-form-urlencoded"

#define HDR(n, v) ((gh_h1_header_t){(n), strlen(n), (v), strlen(v)})

/* A request with the given fields (NULL: absent). */
static inline int oauth_req_full(gh_oauth_endpoint_t ep, const char *method,
                                 const gh_h1_header_t *h, size_t nh, const char *body,
                                 gh_oauth_request_t *r, gh_oauth_error_t *e)
{
    size_t bl = strlen(body);
    /* The body in a block of its own size, so ASan sees a read past it. */
    char *copy = malloc(bl ? bl : 1);
    memcpy(copy, body, bl);
    gh_oauth_http_t http = {method, strlen(method), h, nh, copy, bl};
    int rc = gh_oauth_request_parse(ep, &http, r, e);
    free(copy);
    if (rc == 0) {
        assert_int_equal(e->code, GH_OAUTH_OK);
        assert_non_null(r->client_id);
        assert_int_equal(strlen(r->client_id), r->client_id_len);
    } else {
        assert_int_not_equal(e->code, GH_OAUTH_OK);
        assert_true(e->desc[0] != '\0');
        assert_null(r->buf);
    }
    return rc;
}

static inline int oauth_req(gh_oauth_endpoint_t ep, const char *ct, const char *authz,
                            const char *body, gh_oauth_request_t *r, gh_oauth_error_t *e)
{
    gh_h1_header_t h[3];
    size_t n = 0;
    h[n++] = HDR("Host", "server.example.com");
    if (ct != NULL)
        h[n++] = HDR("Content-Type", ct);
    if (authz != NULL)
        h[n++] = HDR("Authorization", authz);
    return oauth_req_full(ep, "POST", h, n, body, r, e);
}

/* Expects a refusal with code and, when desc is not NULL, a description
 * containing it. */
static inline void oauth_refused(gh_oauth_endpoint_t ep, const char *ct, const char *authz,
                                 const char *body, gh_oauth_code_t code, const char *desc)
{
    gh_oauth_request_t r;
    gh_oauth_error_t e;
    if (oauth_req(ep, ct, authz, body, &r, &e) == 0) {
        gh_oauth_request_dispose(&r);
        fail_msg("accepted: %s", body);
    }
    if (e.code != code)
        fail_msg("%s: %s (%s), wanted %s", body, gh_oauth_code_name(e.code), e.desc,
                 gh_oauth_code_name(code));
    if (desc != NULL && strstr(e.desc, desc) == NULL)
        fail_msg("%s: \"%s\" does not say \"%s\"", body, e.desc, desc);
}

#endif
