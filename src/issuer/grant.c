/*
 * What an authenticated client gets (issuer.h): scope (RFC 6749 §3.3) and
 * audience/resource (RFC 8707 §2, RFC 8693 §2.1) within the client's.
 */
#include <string.h>

#include "issuer/issuer.h"

static int in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] != NULL && strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

int gh_oauth_grant(const gh_oauth_request_t *r, const gh_oauth_client_t *c,
                   const char *default_audience, gh_oauth_grant_t *out, gh_oauth_error_t *err)
{
    memset(out, 0, sizeof(*out));
    out->client_id = c->id;
    /* Scope: RFC 6749 §3.3 lets the server use "a pre-defined default
     * value" when none is asked for; gatehouse's is everything the client
     * was given, in the client's order. */
    if (r->nscopes == 0) {
        for (size_t i = 0; i < c->nscopes; i++) {
            if (c->scopes[i] == NULL || in_list(out->scopes, out->nscopes, c->scopes[i]))
                continue;
            if (out->nscopes == GH_OAUTH_MAX_SCOPES) {
                gh_oauth_fail(err, GH_OAUTH_SERVER_ERROR, "the client has too many scopes");
                return -1;
            }
            out->scopes[out->nscopes++] = c->scopes[i];
        }
    } else {
        for (size_t i = 0; i < r->nscopes; i++) {
            /* Exact, case-sensitive (RFC 6749 §3.3). All or nothing: a
             * narrower grant than asked would be allowed by §3.3, but a
             * client asking for what it was never given is a mistake
             * worth an answer. */
            if (!in_list(c->scopes, c->nscopes, r->scopes[i])) {
                gh_oauth_fail(err, GH_OAUTH_INVALID_SCOPE,
                              "a requested scope is not granted to this client");
                return -1;
            }
            out->scopes[out->nscopes++] = r->scopes[i];
        }
    }
    /* Audiences: the client's list, or for a client without one the
     * issuer's default audience alone. */
    const char *const *allowed = c->audiences;
    size_t nallowed = c->naudiences;
    if (nallowed == 0 && default_audience != NULL) {
        allowed = &default_audience;
        nallowed = 1;
    }
    if (r->ntargets == 0) {
        /* The narrowest choice: one audience, the client's first. */
        if (nallowed == 0 || allowed[0] == NULL) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_TARGET, "no audience for this client");
            return -1;
        }
        out->audiences[out->naudiences++] = allowed[0];
        return 0;
    }
    for (size_t i = 0; i < r->ntargets; i++) {
        if (!in_list(allowed, nallowed, r->targets[i])) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_TARGET,
                          "a requested audience or resource is not allowed for this client");
            return -1;
        }
        out->audiences[out->naudiences++] = r->targets[i];
    }
    return 0;
}
