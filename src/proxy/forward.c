/*
 * The heads gatehouse forwards: the request head sent upstream and the
 * response head sent to the client (RFC 9110 section 7.6: hop-by-hop fields
 * are removed, Via is appended; framing fields are gatehouse's own).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/cidr.h>
#include <gatehouse/fields.h>

#include "proxy/forward.h"
#include "proxy/proxy.h"

typedef struct {
    const char *p;
    size_t n;
} slice_t;

typedef struct {
    slice_t *tok; /* in the stream's arena */
    size_t n;
} conn_tokens_t;

/* Fields a Connection option never removes from a request: the ones
 * gatehouse routes, frames, authenticates or forwards on, which is the list
 * of fields it owns (gatehouse/fields.h). A client listing them
 * ("Connection: authorization") would otherwise have the upstream see a
 * different request than the one gatehouse checked. The option is ignored
 * for them (docs/http.md). */
static int is_connection_protected(const char *name, size_t n)
{
    return gh_field_owned(name, n) != NULL;
}

/* The field names listed in Connection headers are hop-by-hop too
 * (RFC 9110 section 7.6.1), read with the parser's tokenizer (which
 * already refused a malformed list). No fixed cap: a token past one would
 * stay in the message. Returns -1 when out of memory. */
/* "close" and "keep-alive", the options nearly every Connection carries:
 * keep-alive is hop-by-hop anyway and "close" is a reserved field name
 * (RFC 9110 section 16.3.2.2), removed by is_hop_by_hop. Not stored, so
 * the common case stores no token at all. */
static int is_connection_option(const char *t, size_t n)
{
    return (n == 5 && strncasecmp(t, "close", 5) == 0) ||
           (n == 10 && strncasecmp(t, "keep-alive", 10) == 0);
}

static int collect_connection_tokens(gh_stream_t *s, const gh_h1_header_t *h, size_t nh,
                                     int request, conn_tokens_t *ct)
{
    size_t count = 0, pos, n;
    const char *t;
    ct->n = 0;
    ct->tok = NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nh; i++) {
            if (!GH_H1_NAME_IS(&h[i], "connection"))
                continue;
            pos = 0;
            while (gh_h1_token_list_next(h[i].value, h[i].value_len, &pos, &t, &n) > 0) {
                if (request && is_connection_protected(t, n))
                    continue;
                if (is_connection_option(t, n))
                    continue;
                if (pass == 0)
                    count++;
                else
                    ct->tok[ct->n++] = (slice_t){t, n};
            }
        }
        if (pass == 0) {
            if (count == 0)
                return 0;
            ct->tok = gh_arena_alloc(&s->arena, count * sizeof(*ct->tok));
            if (ct->tok == NULL)
                return -1;
        }
    }
    return 0;
}

static int is_hop_by_hop(const gh_h1_header_t *h, const conn_tokens_t *ct)
{
    switch (h->name_len) {
    case 2:
        if (GH_H1_NAME_IS(h, "te"))
            return 1;
        break;
    case 5:
        if (GH_H1_NAME_IS(h, "close"))
            return 1;
        break;
    case 7:
        if (GH_H1_NAME_IS(h, "trailer") || GH_H1_NAME_IS(h, "upgrade"))
            return 1;
        break;
    case 10:
        if (GH_H1_NAME_IS(h, "connection") || GH_H1_NAME_IS(h, "keep-alive"))
            return 1;
        break;
    case 17:
        if (GH_H1_NAME_IS(h, "transfer-encoding"))
            return 1;
        break;
    }
    if (h->name_len > 6 && (h->name[0] | 0x20) == 'p' && strncasecmp(h->name, "proxy-", 6) == 0)
        return 1;
    for (size_t i = 0; i < ct->n; i++)
        if (ct->tok[i].n == h->name_len && strncasecmp(ct->tok[i].p, h->name, h->name_len) == 0)
            return 1;
    return 0;
}

/*
 * Which names the per-field checks below (is_hop_by_hop, is_request_dropped,
 * is_trace_field, Via and Content-Length on responses) can match: bit L of
 * special_lens[c - 'a'] is set when one of them is L bytes long and starts
 * with the letter c; 'p' (proxy-*) and 'x' (x-forwarded-*, x-b3-*) have every
 * bit set, as a prefix matches any longer name. The checks compare names
 * ASCII case folded, '_' as '-', and none starts with anything but a
 * letter, so a field whose first letter and length miss this table is none
 * of them, and most fields of a request (User-Agent, Accept, Authorization)
 * are passed on after one lookup instead of a dozen name comparisons.
 * test_forward.c checks every name the checks match against this table.
 */
#define LEN(n) (UINT32_C(1) << (n))
static const uint32_t special_lens['z' - 'a' + 1] = {
    ['b' - 'a'] = LEN(2),                     /* b3 */
    ['c' - 'a'] = LEN(5) | LEN(10) | LEN(14), /* close, connection, content-length */
    ['e' - 'a'] = LEN(6),                     /* expect */
    ['f' - 'a'] = LEN(9),                     /* forwarded */
    ['h' - 'a'] = LEN(4) | LEN(14),           /* host, http2-settings */
    ['k' - 'a'] = LEN(10),                    /* keep-alive */
    ['p' - 'a'] = UINT32_MAX,                 /* proxy, proxy-* */
    /* te, trailer, tracestate, traceparent, true-client-ip, transfer-encoding */
    ['t' - 'a'] = LEN(2) | LEN(7) | LEN(10) | LEN(11) | LEN(14) | LEN(17),
    ['u' - 'a'] = LEN(7),     /* upgrade */
    ['v' - 'a'] = LEN(3),     /* via */
    ['x' - 'a'] = UINT32_MAX, /* x-forwarded-*, x-b3-*, x-real-ip, x-request-id, ... */
};
#undef LEN

/* The x- names the checks match go on with one of these letters (x-b3-*,
 * x-client-ip, x-forwarded-*, x-http-method-override, x-original-url,
 * x-real-ip, x-request-id, x-rewrite-url), so the x- fields a request
 * usually carries (X-Api-Key, X-Amz-Date, X-Custom) take the short way. */
#define LETTER(c) (UINT32_C(1) << ((c) - 'a'))
static const uint32_t x_third =
    LETTER('b') | LETTER('c') | LETTER('f') | LETTER('h') | LETTER('o') | LETTER('r');
#undef LETTER

/* 0 when h is none of the fields the checks look for (see special_lens). */
static inline __attribute__((always_inline)) int may_be_special(const gh_h1_header_t *h)
{
    if (h->name_len == 0)
        return 1;
    unsigned c = (unsigned char)h->name[0] | 0x20u;
    if (c < 'a' || c > 'z')
        return 0;
    uint32_t m = special_lens[c - 'a'];
    if (m != UINT32_MAX)
        return h->name_len < 32 && ((m >> h->name_len) & 1);
    if (c != 'x')
        return 1;
    if (h->name_len < 3 || (h->name[1] != '-' && h->name[1] != '_'))
        return 0;
    unsigned c2 = (unsigned char)h->name[2] | 0x20u;
    return c2 >= 'a' && c2 <= 'z' && ((x_third >> (c2 - 'a')) & 1);
}

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}
#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

/* Decimal digits of v (snprintf costs ~800 instructions a call here). */
static char *put_u64(char *o, uint64_t v)
{
    char d[20];
    size_t n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *o++ = d[--n];
    return o;
}

static char *put_content_length(char *o, uint64_t v)
{
    o = PUT_LIT(o, "content-length: ");
    o = put_u64(o, v);
    return PUT_LIT(o, "\r\n");
}

static char *put_header(char *o, const gh_h1_header_t *h)
{
    o = put(o, h->name, h->name_len);
    o = PUT_LIT(o, ": ");
    o = put(o, h->value, h->value_len);
    return PUT_LIT(o, "\r\n");
}

/* Joins every field of a name into one comma-separated value, for the
 * fields gatehouse appends to (X-Forwarded-For, Via). */
static char *put_joined(char *o, const gh_h1_header_t *h, size_t nh, const char *lower,
                        size_t lower_len, int *any)
{
    for (size_t i = 0; i < nh; i++) {
        /* An empty field is an empty list (RFC 9110 section 5.6.1): it
         * adds no member, so no ", " is written for it. */
        if (h[i].value_len == 0 || !gh_h1_name_is(&h[i], lower, lower_len))
            continue;
        if (*any)
            o = PUT_LIT(o, ", ");
        o = put(o, h[i].value, h[i].value_len);
        *any = 1;
    }
    return o;
}

static size_t heads_size(const gh_h1_header_t *h, size_t nh)
{
    size_t n = 0;
    for (size_t i = 0; i < nh; i++)
        n += h[i].name_len + h[i].value_len + 4 + 2; /* ": ", CRLF, ", " when joined */
    return n;
}

/* A name compared the way CGI-style upstreams read it (WSGI, PHP, Rack):
 * '_' and '-' both become '_' in HTTP_X_USER, so "x_user" would arrive as
 * the identity header "x-user" a filter set. Fields gatehouse drops so that
 * it alone sets them are matched this way (gh_field_name_same). */
#define LOOSE_IS(h, lit) gh_field_name_same((h)->name, (h)->name_len, (lit), sizeof(lit) - 1)
#define LOOSE_PREFIX(h, lit)                                                                       \
    gh_field_name_has_prefix((h)->name, (h)->name_len, (lit), sizeof(lit) - 1)

static int is_x_forwarded(const gh_h1_header_t *h)
{
    return LOOSE_PREFIX(h, "x-forwarded-");
}

/* Trace context fields: replaced by gatehouse's own when it traces, and
 * never passed on from a peer outside trusted_proxies. Every x-b3-* name
 * counts (x-b3-flags: 1 would force sampling in a B3-aware upstream). */
static int is_trace_field(const gh_h1_header_t *h)
{
    return GH_H1_NAME_IS(h, "b3") || GH_H1_NAME_IS(h, "tracestate") ||
           GH_H1_NAME_IS(h, "traceparent") || LOOSE_PREFIX(h, "x-b3-");
}

/* gh_field_name_same for two names of n bytes, the same bytes (the usual
 * spelling of a dropped field) compared in place for 8 to 16 bytes. */
static inline int same_name(const char *a, const char *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, a, 8);
        memcpy(&b0, b, 8);
        memcpy(&a1, a + n - 8, 8);
        memcpy(&b1, b + n - 8, 8);
        if (a0 == b0 && a1 == b1)
            return 1;
    }
    return gh_field_name_same(a, n, b, n);
}

static int is_filter_dropped(const gh_stream_t *s, const gh_h1_header_t *h)
{
    /* The length and the first byte, folded as gh_field_name_same folds,
     * rule most fields out without a call. The parser takes no empty
     * name, and an empty drop matches nothing. */
    if (h->name_len == 0)
        return 0;
    unsigned char c0 = gh_field_name_fold((unsigned char)h->name[0]);
    for (unsigned i = 0; i < s->num_hdr_drop; i++) {
        const struct gh_hdr_drop_s *d = &s->hdr_drop[i];
        if (h->name_len == d->len && c0 == d->c0 && same_name(h->name, d->name, d->len))
            return 1;
    }
    return 0;
}

/* Fields gatehouse writes itself, or never forwards: framing, Expect
 * (answered here), HTTP2-Settings (h2c upgrades are ignored), Via
 * (appended to), Host (rebuilt from the validated authority) and, from a
 * peer that is not a trusted proxy, every forwarding field. */
static int is_request_dropped(const gh_stream_t *s, const gh_h1_header_t *h)
{
    /* Every X-Forwarded-* (-Port, -Prefix, -Server, ...), not only the
     * three gatehouse writes: an upstream may believe any of them. */
    if (!s->peer_trusted && is_x_forwarded(h))
        return 1;
    /* Always: "Proxy" is httpoxy (CGI makes it HTTP_PROXY, the upstream's
     * outbound proxy); X-Original-URL and X-Rewrite-URL make IIS and
     * Symfony serve another path than the one routed and authenticated;
     * X-HTTP-Method-Override another method than the route allowed. From
     * an untrusted peer: the client-address fields some upstreams believe
     * (True-Client-IP, X-Client-IP) like X-Real-IP. */
    switch (h->name_len) {
    case 3:
        return LOOSE_IS(h, "via");
    case 4:
        return GH_H1_NAME_IS(h, "host");
    case 5:
        return GH_H1_NAME_IS(h, "proxy");
    case 6:
        return GH_H1_NAME_IS(h, "expect");
    case 9:
        return !s->peer_trusted && (GH_H1_NAME_IS(h, "forwarded") || LOOSE_IS(h, "x-real-ip"));
    case 11:
        return !s->peer_trusted && LOOSE_IS(h, "x-client-ip");
    case 12:
        return LOOSE_IS(h, "x-request-id");
    case 13:
        return LOOSE_IS(h, "x-rewrite-url");
    case 14:
        return GH_H1_NAME_IS(h, "content-length") || GH_H1_NAME_IS(h, "http2-settings") ||
               LOOSE_IS(h, "x-original-url") || (!s->peer_trusted && LOOSE_IS(h, "true-client-ip"));
    case 15:
        return LOOSE_IS(h, "x-forwarded-for");
    case 22:
        return LOOSE_IS(h, "x-http-method-override");
    }
    return 0;
}

static const gh_h1_header_t *find(const gh_h1_header_t *h, size_t nh, const char *lower, size_t n)
{
    for (size_t i = 0; i < nh; i++)
        if (gh_h1_name_is(&h[i], lower, n))
            return &h[i];
    return NULL;
}
#define FIND(h, nh, lit) find((h), (nh), (lit), sizeof(lit) - 1)

static const char *default_host(const gh_stream_t *s)
{
    /* No cluster with endpoints (gh_stream_forwarded for a lambda route):
     * an HTTP/1.0 request without Host gets none. */
    if (s->cluster == NULL || s->cluster->endpoints == NULL)
        return s->cluster != NULL && s->cluster->default_host != NULL ? s->cluster->default_host
                                                                      : "";
    return s->cluster->default_host != NULL ? s->cluster->default_host
                                            : s->cluster->endpoints[s->endpoint].address;
}

/* Host: the absolute-form authority, else the Host field (both validated
 * by check_request in stream.c), else (HTTP/1.0 without Host) the
 * cluster's default_host or the endpoint's address, so the upstream always
 * gets an HTTP/1.1 request with a Host. */
static char *put_host(char *o, const gh_stream_t *s, const gh_h1_header_t *host)
{
    o = PUT_LIT(o, "host: ");
    if (s->authority != NULL)
        o = put(o, s->authority, s->authority_len);
    else if (host != NULL)
        o = put(o, host->value, host->value_len);
    else
        o = put(o, default_host(s), strlen(default_host(s)));
    return PUT_LIT(o, "\r\n");
}

/* X-Forwarded-For, -Proto, -Host and X-Real-IP. From an untrusted peer
 * they are gatehouse's alone (the client's were dropped); from a trusted
 * proxy X-Forwarded-For is appended to and the others are kept when
 * present. */
static char *put_forwarding(char *o, const gh_stream_t *s, const gh_h1_header_t *host)
{
    const gh_h1_request_t *r = &s->req;
    int any = 0;
    o = PUT_LIT(o, "x-forwarded-for: ");
    if (s->peer_trusted)
        o = put_joined(o, r->headers, r->num_headers, "x-forwarded-for", 15, &any);
    if (any)
        o = PUT_LIT(o, ", ");
    o = put(o, s->conn->peer, strlen(s->conn->peer));
    o = PUT_LIT(o, "\r\n");
    if (!s->peer_trusted || FIND(r->headers, r->num_headers, "x-forwarded-proto") == NULL)
        o = PUT_LIT(o, "x-forwarded-proto: http\r\n");
    if ((!s->peer_trusted || FIND(r->headers, r->num_headers, "x-forwarded-host") == NULL) &&
        (s->authority != NULL || host != NULL)) {
        o = PUT_LIT(o, "x-forwarded-host: ");
        if (s->authority != NULL)
            o = put(o, s->authority, s->authority_len);
        else
            o = put(o, host->value, host->value_len);
        o = PUT_LIT(o, "\r\n");
    }
    if (!s->peer_trusted || FIND(r->headers, r->num_headers, "x-real-ip") == NULL) {
        o = PUT_LIT(o, "x-real-ip: ");
        o = put(o, s->client, strlen(s->client));
        o = PUT_LIT(o, "\r\n");
    }
    return o;
}

static int is_method(const gh_h1_request_t *r, const char *m)
{
    return r->method_len == strlen(m) && memcmp(r->method, m, r->method_len) == 0;
}

/* gatehouse frames every body it sends. A request without a body keeps an
 * explicit "Content-Length: 0" when the client sent one, and gets one for
 * POST, PUT and PATCH (RFC 9110 section 8.6: a sender SHOULD send it for
 * methods that define content), so an upstream that insists on a length
 * (411) sees the request the client made. */
static char *put_request_framing(char *o, const gh_h1_request_t *r)
{
    if (r->body == GH_H1_BODY_CHUNKED)
        return PUT_LIT(o, "transfer-encoding: chunked\r\n");
    if (r->body == GH_H1_BODY_LENGTH)
        return put_content_length(o, r->content_length);
    if (FIND(r->headers, r->num_headers, "content-length") != NULL || is_method(r, "POST") ||
        is_method(r, "PUT") || is_method(r, "PATCH"))
        return PUT_LIT(o, "content-length: 0\r\n");
    return o;
}

/* One X-Forwarded-For member, trimmed, parsed into ip and copied to out.
 * Returns -1 when it is not a plain address. */
static int xff_member(const char *v, size_t a, size_t b, uint8_t ip[16], char out[48])
{
    while (a < b && (v[a] == ' ' || v[a] == '\t'))
        a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
        b--;
    /* An address that parses is at most 45 bytes (INET6_ADDRSTRLEN - 1). */
    if (gh_ip_parse(v + a, b - a, ip) < 0)
        return -1;
    snprintf(out, 48, "%.*s", (int)(b - a), v + a);
    return 0;
}

int gh_forward_resolve_client(const gh_h1_header_t *h, size_t nh, const gh_cidr_t *trusted,
                              size_t ntrusted, const char *peer, char client[48])
{
    uint8_t ip[16];
    size_t pn = strnlen(peer, 47);
    memcpy(client, peer, pn);
    client[pn] = '\0';
    if (ntrusted == 0 || gh_ip_parse(peer, strlen(peer), ip) < 0 ||
        !gh_cidr_list_contains(trusted, ntrusted, ip))
        return 0;
    /* From the right: the last field's last member is the hop nearest to
     * the peer. */
    for (size_t i = nh; i-- > 0;) {
        if (!GH_H1_NAME_IS(&h[i], "x-forwarded-for"))
            continue;
        const char *v = h[i].value;
        size_t end = h[i].value_len;
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            if (xff_member(v, start, end, ip, client) < 0)
                return 1; /* client keeps the address right of it */
            if (!gh_cidr_list_contains(trusted, ntrusted, ip))
                return 1;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    return 1;
}

char *gh_forward_request_head(gh_stream_t *s, size_t *len)
{
    const gh_h1_request_t *r = &s->req;
    conn_tokens_t ct;
    if (s->hdr_edit_failed)
        return NULL;
    if (collect_connection_tokens(s, r->headers, r->num_headers, 1, &ct) < 0)
        return NULL;
    const gh_h1_header_t *host = r->host_index >= 0 ? &r->headers[r->host_index] : NULL;

    size_t cap = r->method_len + r->target_len + s->fwd_target_len + 64 +
                 heads_size(r->headers, r->num_headers) + sizeof(s->conn->peer) +
                 sizeof(s->client) + 2 * (s->host_len + s->authority_len) + sizeof(s->request_id) +
                 384 + (s->traced ? 128 + GH_TRACESTATE_MAX : 0) + s->hdr_add_len;
    if (host == NULL && s->authority == NULL)
        cap += strlen(default_host(s));
    char *buf = gh_arena_alloc(&s->arena, cap), *o = buf;
    if (buf == NULL)
        return NULL;

    o = put(o, r->method, r->method_len);
    o = PUT_LIT(o, " ");
    if (s->fwd_target != NULL) {
        o = put(o, s->fwd_target, s->fwd_target_len);
    } else { /* the normalized path, the query as sent; absolute-form becomes origin-form */
        o = put(o, s->path, s->path_len);
        if (s->query != NULL) {
            o = PUT_LIT(o, "?");
            o = put(o, s->query, s->query_len);
        }
    }
    o = PUT_LIT(o, " HTTP/1.1\r\n");
    o = put_host(o, s, host);
    /* Connection options name any field: with them, every field goes
     * through every check; without, only fields that may be special.
     * Filters' drops name any field too: each field is matched against
     * them (by length first). */
    int any_name = ct.n > 0;
    for (size_t i = 0; i < r->num_headers; i++) {
        const gh_h1_header_t *h = &r->headers[i];
        if (any_name || may_be_special(h)) {
            if (is_hop_by_hop(h, &ct) || is_request_dropped(s, h))
                continue;
            if ((s->traced || !s->peer_trusted) && is_trace_field(h))
                continue;
        }
        if (((s->hdr_drop_lens >> (h->name_len % 64)) & 1) && is_filter_dropped(s, h))
            continue;
        o = put_header(o, h);
    }
    o = put_forwarding(o, s, host);
    int any = 0;
    o = PUT_LIT(o, "via: ");
    o = put_joined(o, r->headers, r->num_headers, "via", 3, &any);
    if (any)
        o = PUT_LIT(o, ", ");
    o = r->minor_version == 0 ? PUT_LIT(o, "1.0 gatehouse\r\n") : PUT_LIT(o, "1.1 gatehouse\r\n");
    o = PUT_LIT(o, "x-request-id: ");
    o = put(o, s->request_id, strlen(s->request_id));
    o = PUT_LIT(o, "\r\n");
    if (s->traced)
        o += gh_trace_format_headers(s->span, o, (size_t)(buf + cap - o));
    if (s->hdr_add_len > 0)
        o = put(o, s->hdr_add, s->hdr_add_len);
    o = s->body_buffered ? put_content_length(o, s->body_len) : put_request_framing(o, r);
    o = PUT_LIT(o, "\r\n");
    *len = (size_t)(o - buf);
    return buf;
}

/* The response's framing is gatehouse's own, whatever the upstream's
 * Connection named: a body with a length gets that Content-Length, an
 * empty one "Content-Length: 0", a chunked or close-delimited one chunked
 * (or, to HTTP/1.0, a close). HEAD and 304 carry the upstream's length as
 * information; 1xx and 204 carry none. */
static char *put_response_framing(char *o, const gh_stream_t *s, int chunked)
{
    const gh_h1_response_t *r = &s->res;
    int head = s->req.method_len == 4 && memcmp(s->req.method, "HEAD", 4) == 0;
    if (chunked)
        return PUT_LIT(o, "transfer-encoding: chunked\r\n");
    if (r->status < 200 || r->status == 204)
        return o;
    if (head || r->status == 304) {
        const gh_h1_header_t *cl = FIND(r->headers, r->num_headers, "content-length");
        if (cl == NULL)
            return o;
        o = PUT_LIT(o, "content-length: ");
        o = put(o, cl->value, cl->value_len); /* digits only: checked by the parser */
        return PUT_LIT(o, "\r\n");
    }
    if (r->body == GH_H1_BODY_LENGTH)
        return put_content_length(o, r->content_length);
    if (r->body == GH_H1_BODY_NONE)
        return PUT_LIT(o, "content-length: 0\r\n");
    return o; /* close-delimited to an HTTP/1.0 client */
}

char *gh_forward_response_head(gh_stream_t *s, int chunked, int keep_alive, size_t *len)
{
    const gh_h1_response_t *r = &s->res;
    conn_tokens_t ct;
    if (collect_connection_tokens(s, r->headers, r->num_headers, 0, &ct) < 0)
        return NULL;

    size_t cap = r->reason_len + 64 + heads_size(r->headers, r->num_headers) + 256 + s->res_add_len;
    char *buf = gh_arena_alloc(&s->arena, cap), *o = buf;
    if (buf == NULL)
        return NULL;
    o = PUT_LIT(o, "HTTP/1.1 ");
    *o++ = (char)('0' + r->status / 100 % 10); /* the parser took three digits */
    *o++ = (char)('0' + r->status / 10 % 10);
    *o++ = (char)('0' + r->status % 10);
    *o++ = ' ';
    o = put(o, r->reason, r->reason_len);
    o = PUT_LIT(o, "\r\n");
    for (size_t i = 0; i < r->num_headers; i++) {
        const gh_h1_header_t *h = &r->headers[i];
        if ((ct.n > 0 || may_be_special(h)) && (is_hop_by_hop(h, &ct) || GH_H1_NAME_IS(h, "via") ||
                                                GH_H1_NAME_IS(h, "content-length")))
            continue;
        o = put_header(o, h);
    }
    int any = 0;
    o = PUT_LIT(o, "via: ");
    o = put_joined(o, r->headers, r->num_headers, "via", 3, &any);
    if (any)
        o = PUT_LIT(o, ", ");
    o = r->minor_version == 0 ? PUT_LIT(o, "1.0 gatehouse\r\n") : PUT_LIT(o, "1.1 gatehouse\r\n");
    /* Fields filters add to the final response (RateLimit, Retry-After). */
    if (r->status >= 200 && s->res_add_len > 0)
        o = put(o, s->res_add, s->res_add_len);
    o = put_response_framing(o, s, chunked);
    if (!keep_alive)
        o = PUT_LIT(o, "connection: close\r\n");
    else if (s->req.minor_version == 0)
        o = PUT_LIT(o, "connection: keep-alive\r\n");
    o = PUT_LIT(o, "\r\n");
    *len = (size_t)(o - buf);
    return buf;
}

/* The forwarded head, read back: gatehouse wrote it, one "name: value"
 * per line, so splitting at the first ':' and the one space after it gives
 * each field back as it goes upstream. */
int gh_stream_forwarded(gh_stream_t *s, gh_stream_forwarded_t *out)
{
    size_t len, n = 0;
    char *head = gh_forward_request_head(s, &len);
    if (head == NULL)
        return -1;
    const char *end = head + len, *p = memchr(head, '\n', len);
    if (p == NULL)
        return -1;
    /* The request line: METHOD SP target SP HTTP/1.1 */
    const char *t = memchr(head, ' ', (size_t)(p - head));
    const char *te = t != NULL ? memchr(t + 1, ' ', (size_t)(p - t - 1)) : NULL;
    if (te == NULL)
        return -1;
    t++;
    const char *q = memchr(t, '?', (size_t)(te - t));
    out->path = t;
    out->path_len = (size_t)((q != NULL ? q : te) - t);
    out->query = q != NULL ? q + 1 : NULL;
    out->query_len = q != NULL ? (size_t)(te - q - 1) : 0;
    for (const char *l = p + 1; l < end && *l != '\r';
         l = (const char *)memchr(l, '\n', (size_t)(end - l)) + 1)
        n++;
    out->headers = gh_arena_alloc(&s->arena, (n + 1) * sizeof(*out->headers));
    if (out->headers == NULL)
        return -1;
    out->num_headers = 0;
    for (const char *l = p + 1; l < end && *l != '\r';) {
        const char *le = memchr(l, '\r', (size_t)(end - l));
        const char *c = memchr(l, ':', (size_t)(le - l));
        gh_h1_header_t *h = &out->headers[out->num_headers];
        h->name = l;
        h->name_len = (size_t)(c - l);
        h->value = c + 2 <= le ? c + 2 : le;
        h->value_len = (size_t)(le - h->value);
        /* An HTTP/1.0 request without Host has none here either. */
        if (!(h->value_len == 0 && GH_H1_NAME_IS(h, "host")))
            out->num_headers++;
        l = le + 2;
    }
    return 0;
}
