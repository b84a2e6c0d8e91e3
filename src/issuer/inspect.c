/*
 * Our access tokens read back (issuer.h): introspection answers (RFC 7662
 * §2.2) and revocation decisions (RFC 7009 §2.1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "issuer/issuer.h"
#include "issuer/jw.h"

void gh_oauth_token_info_dispose(gh_oauth_token_info_t *ti)
{
    if (ti->parsed)
        gh_jwt_dispose(&ti->jwt);
    ti->parsed = 0;
}

static int date(const gh_jwt_t *t, const char *name, int64_t *out)
{
    double d;
    if (gh_jwt_claim_number(t, name, &d) != 0 || !(d >= 0 && d <= GH_JWT_MAX_DATE) ||
        d != (double)(int64_t)d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

int gh_oauth_token_inspect(const gh_oauth_inspect_conf_t *c, const char *tok, size_t len,
                           int64_t now, gh_oauth_token_info_t *out)
{
    memset(out, 0, sizeof(*out));
    gh_jwt_reason_t why;
    int rc = gh_jwt_verifier_parse(c->verifier, tok, len, &out->jwt, &why);
    if (rc == -ENOMEM)
        return -ENOMEM;
    if (rc < 0)
        return 0;
    out->parsed = 1;
    const gh_jwt_t *t = &out->jwt;
    if (strcmp(t->typ, "at+jwt") != 0)
        return 0;
    rc = gh_jwt_verifier_verify(c->verifier, t, c->keys, &why);
    if (rc == -ENOMEM)
        return -ENOMEM;
    if (rc < 0)
        return 0;
    const char *iss = gh_jwt_claim_string(t, "iss", NULL);
    out->jti = gh_jwt_claim_string(t, "jti", NULL);
    out->client_id = gh_jwt_claim_string(t, "client_id", NULL);
    out->sub = gh_jwt_claim_string(t, "sub", NULL);
    out->scope = gh_jwt_claim_string(t, "scope", NULL);
    if (iss == NULL || c->issuer == NULL || strcmp(iss, c->issuer) != 0 || out->jti == NULL ||
        out->client_id == NULL || out->sub == NULL || date(t, "exp", &out->exp) < 0 ||
        date(t, "iat", &out->iat) < 0)
        return 0;
    out->ours = 1;
    int64_t nbf = 0;
    int has_nbf = gh_jwt_claim_number(t, "nbf", &(double){0}) == 0;
    if (has_nbf && date(t, "nbf", &nbf) < 0)
        return 0;
    out->active = now < out->exp && (!has_nbf || nbf <= now);
    return 0;
}

static int may_see(const gh_oauth_token_info_t *ti, const gh_oauth_client_t *requester)
{
    return requester != NULL && requester->id != NULL &&
           (requester->may_introspect || strcmp(requester->id, ti->client_id) == 0);
}

int gh_oauth_introspection_body(const gh_oauth_token_info_t *ti, int revoked,
                                const gh_oauth_client_t *requester, char **body, size_t *len)
{
    static const char inactive[] = "{\"active\":false}";
    *body = NULL;
    *len = 0;
    /* RFC 7662 §2.2: an inactive token, or one the requester may not know
     * about (§4: "the authorization server MAY respond ... as if the token
     * were not active"), gets only active: false. */
    if (!ti->ours || !ti->active || revoked || !may_see(ti, requester)) {
        *body = strdup(inactive);
        if (*body == NULL)
            return -ENOMEM;
        *len = sizeof(inactive) - 1;
        return 0;
    }
    const gh_jwt_t *t = &ti->jwt;
    json_t *aud = gh_jwt_claim(t, "aud");
    size_t cap = strlen(ti->jti) + strlen(ti->client_id) + strlen(ti->sub) +
                 (ti->scope ? strlen(ti->scope) : 0) + strlen(gh_jwt_claim_string(t, "iss", NULL));
    if (json_is_string(aud)) {
        cap += json_string_length(aud);
    } else if (json_is_array(aud)) {
        for (size_t i = 0; i < json_array_size(aud); i++)
            cap += json_string_length(json_array_get(aud, i)) + 1;
    }
    cap = cap * 6 + 256; /* every byte escaped at worst, and the names */
    char *b = malloc(cap);
    if (b == NULL)
        return -ENOMEM;
    gh_jw_t w;
    gh_jw_init(&w, b, cap);
    gh_jw_lit(&w, "{\"active\":true");
    if (ti->scope != NULL) {
        gh_jw_lit(&w, ",\"scope\":");
        gh_jw_cstr(&w, ti->scope);
    }
    gh_jw_lit(&w, ",\"client_id\":");
    gh_jw_cstr(&w, ti->client_id);
    gh_jw_lit(&w, ",\"sub\":");
    gh_jw_cstr(&w, ti->sub);
    if (json_is_string(aud)) {
        gh_jw_lit(&w, ",\"aud\":");
        gh_jw_str(&w, json_string_value(aud), json_string_length(aud));
    } else if (json_is_array(aud)) {
        gh_jw_lit(&w, ",\"aud\":[");
        size_t k = 0;
        for (size_t i = 0; i < json_array_size(aud); i++) {
            json_t *a = json_array_get(aud, i);
            if (!json_is_string(a))
                continue;
            if (k++ > 0)
                gh_jw_lit(&w, ",");
            gh_jw_str(&w, json_string_value(a), json_string_length(a));
        }
        gh_jw_lit(&w, "]");
    }
    gh_jw_lit(&w, ",\"iss\":");
    gh_jw_cstr(&w, gh_jwt_claim_string(t, "iss", NULL));
    gh_jw_lit(&w, ",\"exp\":");
    gh_jw_int(&w, ti->exp);
    gh_jw_lit(&w, ",\"iat\":");
    gh_jw_int(&w, ti->iat);
    gh_jw_lit(&w, ",\"jti\":");
    gh_jw_cstr(&w, ti->jti);
    gh_jw_lit(&w, ",\"token_type\":\"Bearer\"}");
    long n = gh_jw_finish(&w);
    if (n < 0) {
        /* Strings the token's own (strict) JSON held: cannot fail but for
         * room, which cap covers. */
        free(b);
        return -ENOMEM;
    }
    *body = b;
    *len = (size_t)n;
    return 0;
}

int gh_oauth_revocation_decide(const gh_oauth_request_t *r, const gh_oauth_token_info_t *ti,
                               const gh_oauth_client_t *requester, int64_t skew, int64_t now,
                               gh_oauth_revocation_t *out, gh_oauth_error_t *err)
{
    memset(out, 0, sizeof(*out));
    /* RFC 7009 §2.2.1: unsupported_token_type when the server cannot
     * revoke the type named. gatehouse issues access tokens only; a
     * refresh_token hint is still only a hint (§2.1: the search extends
     * to every type), an unknown one is refused. */
    if (r->hint == GH_OAUTH_HINT_OTHER) {
        gh_oauth_fail(err, GH_OAUTH_UNSUPPORTED_TOKEN_TYPE, "only access tokens can be revoked");
        return -1;
    }
    /* §2.2: "invalid tokens do not cause an error response": a foreign,
     * malformed or expired token (past exp + skew: no JWT filter takes it
     * any more) has nothing to revoke. One not valid yet (nbf) has. */
    if (!ti->ours || now >= ti->exp + skew)
        return 0;
    /* §2.1: the server "verifies whether the token was issued to the
     * client making the revocation request. If this validation fails,
     * the request is refused". */
    if (requester == NULL || requester->id == NULL || strcmp(requester->id, ti->client_id) != 0) {
        gh_oauth_fail(err, GH_OAUTH_UNAUTHORIZED_CLIENT, "the token was not issued to this client");
        return -1;
    }
    out->revoke = 1;
    out->jti = ti->jti;
    out->until = ti->exp + skew;
    return 0;
}
