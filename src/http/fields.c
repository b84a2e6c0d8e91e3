#include <gatehouse/fields.h>

#include <string.h>

/* Compares name[0 .. len) with a lower-case literal, ASCII case folded and
 * '_' read as '-'. */
static int name_eq(const char *name, size_t len, const char *lit)
{
    size_t i = 0;
    for (; i < len && lit[i] != '\0'; i++) {
        char ch = name[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch | 0x20);
        else if (ch == '_')
            ch = '-';
        if (ch != lit[i])
            return 0;
    }
    return i == len && lit[i] == '\0';
}

int gh_field_name_same(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return 0;
    if (memcmp(a, b, an) == 0) /* the usual spelling: the same bytes */
        return 1;
    for (size_t i = 0; i < an; i++)
        if (gh_field_name_fold((unsigned char)a[i]) != gh_field_name_fold((unsigned char)b[i]))
            return 0;
    return 1;
}

int gh_field_name_has_prefix(const char *name, size_t len, const char *lit, size_t lit_len)
{
    return len > lit_len && name_eq(name, lit_len, lit);
}

static int in_list(const char *name, size_t len, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (name_eq(name, len, list[i]))
            return 1;
    return 0;
}

/* Names gatehouse owns on the way upstream. A filter option or a trailer
 * that set one would forge framing (two Content-Length fields), a
 * hop-by-hop field, the routing authority, the forwarding chain the
 * upstream trusts, or a credential. */
static const char *const owned[] = {
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "host",
    "authorization",
    "cookie",
    "forwarded",
    "x-real-ip",
    "via",
    "x-request-id",
    "expect",
    "http2-settings",
    "traceparent",
    "tracestate",
    "b3",
    /* read as the client address, or as another path or method than the
     * one routed: forward.c never passes these on from a client */
    "true-client-ip",
    "x-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "proxy",
    NULL,
};

const char *gh_field_owned(const char *name, size_t len)
{
    if (in_list(name, len, owned))
        return "is a field gatehouse sets or removes itself (framing, hop-by-hop, host, "
               "forwarding, credentials, trace context)";
    if (gh_field_name_has_prefix(name, len, "proxy-", 6))
        return "is a hop-by-hop field (proxy-*)";
    if (gh_field_name_has_prefix(name, len, "x-forwarded-", 12))
        return "is a forwarding field (x-forwarded-*)";
    if (gh_field_name_has_prefix(name, len, "x-b3-", 5))
        return "is a trace context field (x-b3-*)";
    return NULL;
}

/* Fields whose meaning belongs to the header section (RFC 9110 section
 * 6.5.1): a trailer of such a name could change how the message is read
 * after it was checked. */
static const char *const header_only[] = {
    "content-encoding",    "content-type", "content-range",    "set-cookie",    "max-forwards",
    "cache-control",       "range",        "if-match",         "if-none-match", "if-modified-since",
    "if-unmodified-since", "if-range",     "www-authenticate", "location",      NULL,
};

int gh_field_trailer_forbidden(const char *name, size_t len)
{
    return gh_field_owned(name, len) != NULL || in_list(name, len, header_only);
}
