/*
 * URLs without their credentials (see gatehouse/redact.h).
 */
#include <stdlib.h>
#include <string.h>

#include <gatehouse/redact.h>

static const char mask[] = "[redacted]";
#define MASK_LEN (sizeof(mask) - 1)

static char *put(char *o, const char *p, size_t n)
{
    memcpy(o, p, n);
    return o + n;
}

/* The query q[0..n): each parameter's name kept, its value (after the
 * first '=') masked; a parameter without '=' is kept as it is. */
static char *put_query(char *o, const char *q, size_t n)
{
    const char *end = q + n;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        if (eq != NULL) {
            o = put(o, q, (size_t)(eq + 1 - q));
            o = put(o, mask, MASK_LEN);
        } else {
            o = put(o, q, (size_t)(pe - q));
        }
        if (amp == NULL)
            break;
        *o++ = '&';
        q = amp + 1;
    }
    return o;
}

/* RFC 3986 section 3.2.1: userinfo is what precedes the last '@' of the
 * authority (a password may hold one unencoded); section 3.4: the query
 * runs from the first '?' to '#' or the end. */
char *gh_url_redact(const char *url)
{
    size_t len = strlen(url);
    const char *auth = strstr(url, "://");
    auth = auth != NULL ? auth + 3 : url;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    const char *rest = auth + alen;
    size_t before_frag = strcspn(rest, "#");
    const char *qm = memchr(rest, '?', before_frag);
    size_t params = 1;
    for (const char *p = qm; p != NULL && p < rest + before_frag; p++)
        params += *p == '&';
    char *out = malloc(len + MASK_LEN * (params + 1) + 1);
    if (out == NULL)
        return NULL;
    char *o = put(out, url, (size_t)(auth - url));
    if (at != NULL) {
        o = put(o, mask, MASK_LEN);
        o = put(o, at, (size_t)(rest - at));
    } else {
        o = put(o, auth, alen);
    }
    if (qm != NULL) {
        o = put(o, rest, (size_t)(qm + 1 - rest));
        o = put_query(o, qm + 1, (size_t)(rest + before_frag - (qm + 1)));
        rest += before_frag;
    }
    o = put(o, rest, strlen(rest));
    *o = '\0';
    return out;
}
