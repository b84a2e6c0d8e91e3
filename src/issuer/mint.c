/*
 * RFC 9068 JWT access tokens and the RFC 6749 §5.1 token response
 * (issuer.h). The header and claims are written by jw.h into stack
 * buffers, not built as jansson trees: the mint path is benchmarked, and
 * what it costs beside OpenSSL's sign call is this file's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "issuer/issuer.h"
#include "issuer/jw.h"
#include "jose/b64url.h"

/* Claims above this would make a token past GH_JWT_MAX_TOKEN once encoded
 * and signed with RSA 8192 (4/3 of 8 KiB plus 1.4 KiB), which no
 * gatehouse verifier would take. */
#define MAX_CLAIMS 8192
#define MAX_SCOPE_JOINED 8192

void gh_oauth_token_dispose(gh_oauth_token_t *t)
{
    free(t->access_token);
    free(t->body);
    t->access_token = NULL;
    t->body = NULL;
}

/* The scope tokens joined by single spaces into buf (cap bytes); the
 * length, or -1 when they do not fit. */
static long join_scopes(const gh_oauth_grant_t *g, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < g->nscopes; i++) {
        size_t l = strlen(g->scopes[i]);
        if (o + l + 2 > cap)
            return -1;
        if (i > 0)
            buf[o++] = ' ';
        memcpy(buf + o, g->scopes[i], l);
        o += l;
    }
    buf[o] = '\0';
    return (long)o;
}

int gh_oauth_mint(const gh_oauth_mint_conf_t *c, const gh_oauth_grant_t *g, int64_t now,
                  const unsigned char *rand16, gh_oauth_token_t *out, gh_oauth_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *alg = gh_jwt_alg_name(c->alg);
    if (alg == NULL || c->key == NULL || c->issuer == NULL || g->client_id == NULL ||
        c->lifetime <= 0 || g->naudiences == 0) {
        gh_oauth_fail(err, GH_OAUTH_SERVER_ERROR, "the issuer is not configured to sign");
        return -1;
    }
    unsigned char rnd[16];
    if (rand16 != NULL)
        memcpy(rnd, rand16, sizeof(rnd));
    else if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        gh_oauth_fail(err, GH_OAUTH_TEMPORARILY_UNAVAILABLE, "no randomness");
        return -1;
    }
    gh_b64url_encode(rnd, sizeof(rnd), out->jti);
    out->iat = now;
    out->exp = now + c->lifetime;

    char hdr[GH_JWT_MAX_KID * 6 + 64];
    gh_jw_t w;
    gh_jw_init(&w, hdr, sizeof(hdr));
    gh_jw_lit(&w, "{\"alg\":\"");
    gh_jw_raw(&w, alg, strlen(alg));
    gh_jw_lit(&w, "\"");
    if (c->kid != NULL) {
        gh_jw_lit(&w, ",\"kid\":");
        gh_jw_cstr(&w, c->kid);
    }
    /* RFC 9068 §2.1: typ "at+jwt" (RFC 8725 §3.11 explicit typing). */
    gh_jw_lit(&w, ",\"typ\":\"at+jwt\"}");
    if (gh_jw_finish(&w) < 0) {
        gh_oauth_fail(err, GH_OAUTH_SERVER_ERROR, "the key id cannot be written");
        return -1;
    }

    char scope[MAX_SCOPE_JOINED];
    long sl = join_scopes(g, scope, sizeof(scope));
    char claims[MAX_CLAIMS];
    gh_jw_init(&w, claims, sizeof(claims));
    gh_jw_lit(&w, "{\"iss\":");
    gh_jw_cstr(&w, c->issuer);
    /* RFC 9068 §2.2: for client credentials sub is the client itself. */
    gh_jw_lit(&w, ",\"sub\":");
    gh_jw_cstr(&w, g->client_id);
    gh_jw_lit(&w, ",\"aud\":");
    if (g->naudiences == 1) {
        gh_jw_cstr(&w, g->audiences[0]);
    } else {
        gh_jw_lit(&w, "[");
        for (size_t i = 0; i < g->naudiences; i++) {
            if (i > 0)
                gh_jw_lit(&w, ",");
            gh_jw_cstr(&w, g->audiences[i]);
        }
        gh_jw_lit(&w, "]");
    }
    gh_jw_lit(&w, ",\"exp\":");
    gh_jw_int(&w, out->exp);
    gh_jw_lit(&w, ",\"iat\":");
    gh_jw_int(&w, out->iat);
    if (c->with_nbf) {
        gh_jw_lit(&w, ",\"nbf\":");
        gh_jw_int(&w, out->iat);
    }
    gh_jw_lit(&w, ",\"jti\":\"");
    gh_jw_raw(&w, out->jti, GH_OAUTH_JTI_LEN);
    gh_jw_lit(&w, "\",\"client_id\":");
    gh_jw_cstr(&w, g->client_id);
    if (sl > 0) {
        gh_jw_lit(&w, ",\"scope\":");
        gh_jw_str(&w, scope, (size_t)sl);
    }
    gh_jw_lit(&w, "}");
    long cl = gh_jw_finish(&w);
    if (sl < 0 || cl < 0) {
        gh_oauth_fail(err, GH_OAUTH_SERVER_ERROR, "%s",
                      cl == -EILSEQ ? "a claim is not UTF-8" : "the claims are too large");
        return -1;
    }

    char why[64];
    out->access_token = gh_jwt_sign(hdr, claims, (size_t)cl, c->key, c->alg, why, sizeof(why));
    if (out->access_token == NULL) {
        gh_oauth_fail(err, GH_OAUTH_SERVER_ERROR, "the token cannot be signed");
        return -1;
    }
    out->access_token_len = strlen(out->access_token);

    /* The token is base64url and dots: no escaping. The scope is escaped
     * once more, into the body's own room. */
    size_t cap = out->access_token_len + (size_t)(sl > 0 ? sl : 0) * 6 + 96;
    out->body = malloc(cap);
    if (out->body == NULL) {
        gh_oauth_token_dispose(out);
        gh_oauth_fail(err, GH_OAUTH_TEMPORARILY_UNAVAILABLE, "out of memory");
        return -1;
    }
    gh_jw_init(&w, out->body, cap);
    gh_jw_lit(&w, "{\"access_token\":\"");
    gh_jw_raw(&w, out->access_token, out->access_token_len);
    gh_jw_lit(&w, "\",\"token_type\":\"Bearer\",\"expires_in\":");
    gh_jw_int(&w, c->lifetime);
    if (sl > 0) {
        /* RFC 6749 §5.1: scope is optional when it is what was asked for;
         * always sent, so a client never has to guess. */
        gh_jw_lit(&w, ",\"scope\":");
        gh_jw_str(&w, scope, (size_t)sl);
    }
    gh_jw_lit(&w, "}");
    long bl = gh_jw_finish(&w);
    if (bl < 0) {
        gh_oauth_token_dispose(out);
        gh_oauth_fail(err, GH_OAUTH_SERVER_ERROR, "the response cannot be written");
        return -1;
    }
    out->body_len = (size_t)bl;
    return 0;
}
