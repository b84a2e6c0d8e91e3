/*
 * The heads gatehouse forwards: the request head sent upstream and the
 * response head sent to the client (RFC 9110 section 7.6: hop-by-hop fields
 * are removed, Via is appended; framing fields are gatehouse's own).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy/forward.h"
#include "proxy/proxy.h"

#define MAX_CONN_TOKENS 16

typedef struct {
    const char *p;
    size_t n;
} slice_t;

typedef struct {
    slice_t tok[MAX_CONN_TOKENS];
    size_t n;
} conn_tokens_t;

/* The field names listed in Connection headers are hop-by-hop too
 * (RFC 9110 section 7.6.1). */
static void collect_connection_tokens(const gh_h1_header_t *h, size_t nh, conn_tokens_t *ct)
{
    ct->n = 0;
    for (size_t i = 0; i < nh; i++) {
        if (!GH_H1_NAME_IS(&h[i], "connection"))
            continue;
        const char *p = h[i].value, *end = p + h[i].value_len;
        while (p < end && ct->n < MAX_CONN_TOKENS) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *s = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if (p > s)
                ct->tok[ct->n++] = (slice_t){s, (size_t)(p - s)};
        }
    }
}

static int is_hop_by_hop(const gh_h1_header_t *h, const conn_tokens_t *ct)
{
    switch (h->name_len) {
    case 2:
        if (GH_H1_NAME_IS(h, "te"))
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

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}
#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

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
        if (!gh_h1_name_is(&h[i], lower, lower_len))
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

/* Trace context fields, replaced by gatehouse's own when it traces. */
static int is_trace_field(const gh_h1_header_t *h)
{
    switch (h->name_len) {
    case 2:
        return GH_H1_NAME_IS(h, "b3");
    case 10:
        return GH_H1_NAME_IS(h, "tracestate");
    case 11:
        return GH_H1_NAME_IS(h, "traceparent") || GH_H1_NAME_IS(h, "x-b3-spanid") ||
               GH_H1_NAME_IS(h, "x-b3-flags");
    case 12:
        return GH_H1_NAME_IS(h, "x-b3-traceid") || GH_H1_NAME_IS(h, "x-b3-sampled");
    case 18:
        return GH_H1_NAME_IS(h, "x-b3-parentspanid");
    }
    return 0;
}

static int is_filter_dropped(const gh_stream_t *s, const gh_h1_header_t *h)
{
    for (unsigned i = 0; i < s->num_hdr_drop; i++)
        if (gh_h1_name_is(h, s->hdr_drop[i].name, s->hdr_drop[i].len))
            return 1;
    return 0;
}

static int is_request_dropped(const gh_h1_header_t *h)
{
    switch (h->name_len) {
    case 3:
        return GH_H1_NAME_IS(h, "via");
    case 6:
        return GH_H1_NAME_IS(h, "expect");
    case 12:
        return GH_H1_NAME_IS(h, "x-request-id");
    case 14:
        return GH_H1_NAME_IS(h, "content-length");
    case 15:
        return GH_H1_NAME_IS(h, "x-forwarded-for");
    case 16:
        return GH_H1_NAME_IS(h, "x-forwarded-host");
    case 17:
        return GH_H1_NAME_IS(h, "x-forwarded-proto");
    }
    return 0;
}

char *gh_forward_request_head(gh_stream_t *s, size_t *len)
{
    const gh_h1_request_t *r = &s->req;
    conn_tokens_t ct;
    collect_connection_tokens(r->headers, r->num_headers, &ct);

    size_t cap = r->method_len + r->target_len + s->fwd_target_len + 64 +
                 heads_size(r->headers, r->num_headers) + sizeof(s->conn->peer) + s->host_len +
                 sizeof(s->request_id) + 256 + (s->traced ? 128 + GH_TRACESTATE_MAX : 0) +
                 s->hdr_add_len;
    if (s->authority != NULL)
        cap += s->authority_len;
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
    if (s->authority != NULL) {
        o = PUT_LIT(o, "host: ");
        o = put(o, s->authority, s->authority_len);
        o = PUT_LIT(o, "\r\n");
    }
    for (size_t i = 0; i < r->num_headers; i++) {
        const gh_h1_header_t *h = &r->headers[i];
        if (is_hop_by_hop(h, &ct) || is_request_dropped(h))
            continue;
        if (s->traced && is_trace_field(h))
            continue;
        if (is_filter_dropped(s, h))
            continue;
        if (s->authority != NULL && (int)i == r->host_index)
            continue;
        o = put_header(o, h);
    }
    int any = 0;
    o = PUT_LIT(o, "x-forwarded-for: ");
    o = put_joined(o, r->headers, r->num_headers, "x-forwarded-for", 15, &any);
    if (any)
        o = PUT_LIT(o, ", ");
    o = put(o, s->conn->peer, strlen(s->conn->peer));
    o = PUT_LIT(o, "\r\nx-forwarded-proto: http\r\n");
    if (s->authority != NULL || r->host_index >= 0) {
        o = PUT_LIT(o, "x-forwarded-host: ");
        if (s->authority != NULL)
            o = put(o, s->authority, s->authority_len);
        else
            o = put(o, r->headers[r->host_index].value, r->headers[r->host_index].value_len);
        o = PUT_LIT(o, "\r\n");
    }
    any = 0;
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
    if (r->body == GH_H1_BODY_CHUNKED) {
        o = PUT_LIT(o, "transfer-encoding: chunked\r\n");
    } else if (r->body == GH_H1_BODY_LENGTH) {
        char num[32];
        int k = snprintf(num, sizeof(num), "content-length: %llu\r\n",
                         (unsigned long long)r->content_length);
        o = put(o, num, (size_t)k);
    }
    o = PUT_LIT(o, "\r\n");
    *len = (size_t)(o - buf);
    return buf;
}

char *gh_forward_response_head(gh_stream_t *s, int chunked, int keep_alive, size_t *len)
{
    const gh_h1_response_t *r = &s->res;
    conn_tokens_t ct;
    collect_connection_tokens(r->headers, r->num_headers, &ct);

    size_t cap = r->reason_len + 64 + heads_size(r->headers, r->num_headers) + 256;
    char *buf = gh_arena_alloc(&s->arena, cap), *o = buf;
    if (buf == NULL)
        return NULL;
    char line[32];
    int k = snprintf(line, sizeof(line), "HTTP/1.1 %03d ", r->status);
    o = put(o, line, (size_t)k);
    o = put(o, r->reason, r->reason_len);
    o = PUT_LIT(o, "\r\n");
    int no_length = r->status == 204 || r->status < 200;
    for (size_t i = 0; i < r->num_headers; i++) {
        const gh_h1_header_t *h = &r->headers[i];
        if (is_hop_by_hop(h, &ct) || GH_H1_NAME_IS(h, "via"))
            continue;
        if (no_length && GH_H1_NAME_IS(h, "content-length"))
            continue;
        o = put_header(o, h);
    }
    int any = 0;
    o = PUT_LIT(o, "via: ");
    o = put_joined(o, r->headers, r->num_headers, "via", 3, &any);
    if (any)
        o = PUT_LIT(o, ", ");
    o = r->minor_version == 0 ? PUT_LIT(o, "1.0 gatehouse\r\n") : PUT_LIT(o, "1.1 gatehouse\r\n");
    if (chunked)
        o = PUT_LIT(o, "transfer-encoding: chunked\r\n");
    if (!keep_alive)
        o = PUT_LIT(o, "connection: close\r\n");
    else if (s->req.minor_version == 0)
        o = PUT_LIT(o, "connection: keep-alive\r\n");
    o = PUT_LIT(o, "\r\n");
    *len = (size_t)(o - buf);
    return buf;
}
