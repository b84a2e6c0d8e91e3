/*
 * Client authentication (issuer.h): secrets (RFC 6749 §2.3.1) and
 * private_key_jwt (RFC 7523 §2.2 and §3, RFC 7521 §4.2).
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "issuer/issuer.h"

/* What an unknown client's secret is compared with: the same work as for
 * a known one, and a match means nothing (the result is masked). */
static const unsigned char dummy_hash[32] = {
    0x67, 0x61, 0x74, 0x65, 0x68, 0x6f, 0x75, 0x73, 0x65, 0x20, 0x6e, 0x6f, 0x20, 0x73, 0x75, 0x63,
    0x68, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static int secret_matches(const gh_oauth_request_t *r, const gh_oauth_client_t *c, int64_t now)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)r->secret, r->secret_len, h);
    int has_cur = c != NULL && c->has_secret;
    int has_prev = c != NULL && c->has_secret && c->previous_valid_until > now;
    /* Both comparisons always run, on 32 bytes each, in constant time. */
    int cur = CRYPTO_memcmp(h, has_cur ? c->secret_hash : dummy_hash, sizeof(h)) == 0;
    int prev = CRYPTO_memcmp(h, has_prev ? c->previous_hash : dummy_hash, sizeof(h)) == 0;
    OPENSSL_cleanse(h, sizeof(h));
    return (cur & has_cur) | (prev & has_prev);
}

static int is_symmetric(gh_jwt_alg_t alg)
{
    return alg == GH_JWT_HS256 || alg == GH_JWT_HS384 || alg == GH_JWT_HS512;
}

static int assertion_ok(const gh_oauth_request_t *r, const gh_oauth_client_t *c,
                        const gh_oauth_auth_conf_t *conf, int64_t now, gh_oauth_auth_result_t *res,
                        gh_oauth_error_t *err)
{
    const gh_jwt_t *t = &r->assertion;
    gh_jwt_reason_t why = GH_JWT_OK;
    if (c == NULL || c->jwks == NULL) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "client authentication failed");
        return -1;
    }
    /* client_secret_jwt (an HMAC under the client secret) is not offered:
     * the secret would have to be kept in the clear to check it. */
    if (is_symmetric(t->alg)) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT,
                      "client assertion: symmetric algorithms are not accepted");
        return -1;
    }
    int rc = gh_jwt_verifier_verify(conf->verifier, t, c->jwks, &why);
    if (rc == -ENOMEM) {
        gh_oauth_fail(err, GH_OAUTH_TEMPORARILY_UNAVAILABLE, "out of memory");
        return -1;
    }
    if (rc < 0) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "client assertion: %s",
                      gh_jwt_reason_text(why));
        return -1;
    }
    const char *auds[2];
    size_t naud = 0;
    if (conf->token_endpoint != NULL)
        auds[naud++] = conf->token_endpoint;
    if (conf->issuer != NULL)
        auds[naud++] = conf->issuer;
    if (naud == 0) {
        /* Without one, gh_jwt_check_claims would not check aud at all. */
        gh_oauth_fail(err, GH_OAUTH_SERVER_ERROR, "no audience to check assertions against");
        return -1;
    }
    gh_jwt_claims_policy_t pol = {
        .issuer = r->client_id,
        .audiences = auds,
        .naudiences = naud,
        .skew = conf->skew,
    };
    char detail[64];
    rc = gh_jwt_check_claims(t, &pol, now, &why, detail, sizeof(detail));
    if (rc < 0) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "client assertion: %s",
                      gh_jwt_reason_text(why));
        return -1;
    }
    /* Bounded lifetime: the replay cache must hold each jti until its
     * exp, so an assertion valid for a year would hold a slot for a year. */
    double exp = 0;
    int64_t life = conf->max_assertion_lifetime > 0 ? conf->max_assertion_lifetime
                                                    : GH_OAUTH_MAX_ASSERTION_LIFETIME;
    if (gh_jwt_claim_number(t, "exp", &exp) != 0 || exp > (double)(now + life + conf->skew)) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT,
                      "client assertion: exp is too far ahead (at most %lld seconds)",
                      (long long)life);
        return -1;
    }
    size_t jl = 0;
    const char *jti = gh_jwt_claim_string(t, "jti", &jl);
    if (jti == NULL || jl == 0 || jl > GH_OAUTH_MAX_JTI) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "client assertion: jti is required");
        return -1;
    }
    res->jti = jti;
    res->jti_len = jl;
    res->jti_until = (int64_t)exp + conf->skew + 1;
    return 0;
}

static unsigned methods_of(const gh_oauth_client_t *c)
{
    if (c->auth_methods != 0)
        return c->auth_methods;
    return (c->has_secret ? GH_OAUTH_AUTH_SECRET_BASIC | GH_OAUTH_AUTH_SECRET_POST : 0) |
           (c->jwks != NULL ? GH_OAUTH_AUTH_PRIVATE_KEY_JWT : 0);
}

int gh_oauth_client_authenticate(const gh_oauth_request_t *r, const gh_oauth_client_t *c,
                                 const gh_oauth_auth_conf_t *conf, int64_t now,
                                 gh_oauth_auth_result_t *res, gh_oauth_error_t *err)
{
    memset(res, 0, sizeof(*res));
    err->code = GH_OAUTH_OK;
    err->status = 200;
    err->desc[0] = '\0';
    if (c != NULL && (c->id == NULL || strlen(c->id) != r->client_id_len ||
                      memcmp(c->id, r->client_id, r->client_id_len) != 0)) {
        gh_oauth_fail(err, GH_OAUTH_SERVER_ERROR, "the client record is not the request's");
        return -1;
    }
    switch (r->auth_method) {
    case GH_OAUTH_AUTH_SECRET_BASIC:
    case GH_OAUTH_AUTH_SECRET_POST:
        if (r->secret == NULL || !secret_matches(r, c, now)) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "client authentication failed");
            return -1;
        }
        break;
    case GH_OAUTH_AUTH_PRIVATE_KEY_JWT:
        if (!r->has_assertion) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "client authentication failed");
            return -1;
        }
        if (assertion_ok(r, c, conf, now, res, err) < 0)
            return -1;
        break;
    default:
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "client authentication required");
        return -1;
    }
    /* From here the caller proved it holds the client's credentials, so
     * saying what else is wrong tells no one else anything. */
    if (c->status != GH_OAUTH_CLIENT_ACTIVE) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "the client is revoked");
        return -1;
    }
    if (!(methods_of(c) & (unsigned)r->auth_method)) {
        gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT, "the client may not use %s",
                      gh_oauth_auth_method_name(r->auth_method));
        return -1;
    }
    if (r->endpoint == GH_OAUTH_TOKEN && !(c->grant_types & GH_OAUTH_GRANT_CLIENT_CREDENTIALS)) {
        gh_oauth_fail(err, GH_OAUTH_UNAUTHORIZED_CLIENT,
                      "the client may not use the client_credentials grant");
        return -1;
    }
    if (res->jti != NULL && conf->replay != NULL) {
        int rc = gh_oauth_replay_claim(conf->replay, r->client_id, r->client_id_len, res->jti,
                                       res->jti_len, res->jti_until, now);
        if (rc == -EEXIST) {
            gh_oauth_fail(err, GH_OAUTH_INVALID_CLIENT,
                          "client assertion: this jti was used before");
            return -1;
        }
        if (rc < 0) {
            gh_oauth_fail(err, GH_OAUTH_TEMPORARILY_UNAVAILABLE,
                          "too many client assertions to remember");
            return -1;
        }
    }
    return 0;
}
