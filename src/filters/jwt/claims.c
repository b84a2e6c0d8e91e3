/*
 * gh_stream_claims (gatehouse/filter.h): the verified token's payload for
 * the filters after authentication (policies over claims, limits keyed by
 * a claim). The JWT filter records only where the token is; the payload is
 * decoded here on first use, so requests whose filters never read claims
 * pay nothing for it.
 */
#include <string.h>

#include <gatehouse/filter.h>

#include "jose/b64url.h"

const char *gh_stream_claims(gh_stream_t *s, size_t *len)
{
    gh_identity_t *id = gh_stream_identity(s);
    if (id->claims != NULL) {
        *len = id->claims_len;
        return id->claims;
    }
    *len = 0;
    if (id->token == NULL)
        return NULL;
    /* header.payload.signature: the filter verified this shape. */
    const char *p = memchr(id->token, '.', id->token_len);
    if (p == NULL)
        return NULL;
    p++;
    const char *end = memchr(p, '.', id->token_len - (size_t)(p - id->token));
    if (end == NULL)
        return NULL;
    size_t n = (size_t)(end - p);
    unsigned char *out = gh_stream_alloc(s, GH_B64URL_DEC_MAX(n) + 1);
    if (out == NULL)
        return NULL;
    long got = gh_b64url_decode(p, n, out);
    if (got < 0)
        return NULL;
    out[got] = '\0';
    id->claims = (const char *)out;
    id->claims_len = (size_t)got;
    *len = id->claims_len;
    return id->claims;
}
