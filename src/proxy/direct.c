/* direct_response: a route that answers by itself (health checks, fixed
 * redirects, maintenance pages). A terminal filter like the router. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

static gh_filter_status_t direct_on_request_headers(gh_stream_t *s, const void *conf, void *ctx)
{
    const gh_direct_response_t *d = conf;
    gh_conn_t *c = s->conn;
    (void)ctx;

    if (!s->req_body_done || c->worker->stopping)
        c->keep_alive = 0;
    size_t cap = 128 + d->body_len;
    for (size_t i = 0; i < d->num_headers; i++)
        cap += d->headers[i].name_len + d->headers[i].value_len + 4;
    char *buf = malloc(cap), *o = buf;
    if (buf == NULL) {
        gh_stream_reply_error(s, 503, "service_unavailable", "out of memory");
        return GH_FILTER_REPLIED;
    }
    o += snprintf(o, 64, "HTTP/1.1 %d %s\r\n", d->status, gh_status_reason(d->status));
    int has_length = d->status >= 200 && d->status != 204 && d->status != 304;
    for (size_t i = 0; i < d->num_headers; i++) {
        memcpy(o, d->headers[i].name, d->headers[i].name_len);
        o += d->headers[i].name_len;
        *o++ = ':';
        *o++ = ' ';
        memcpy(o, d->headers[i].value, d->headers[i].value_len);
        o += d->headers[i].value_len;
        *o++ = '\r';
        *o++ = '\n';
    }
    if (has_length)
        o += snprintf(o, 40, "content-length: %zu\r\n", d->body_len);
    if (!c->keep_alive)
        o += snprintf(o, 24, "connection: close\r\n");
    *o++ = '\r';
    *o++ = '\n';
    int head_only = s->req.method_len == 4 && memcmp(s->req.method, "HEAD", 4) == 0;
    if (has_length && !head_only && d->body_len > 0) {
        memcpy(o, d->body, d->body_len);
        o += d->body_len;
    }
    s->res_started = 1;
    s->replied = 1;
    s->status = d->status;
    c->wbuf = buf;
    uv_buf_t b = uv_buf_init(buf, (unsigned)(o - buf));
    gh_conn_write(c, &b, 1);
    return GH_FILTER_REPLIED;
}

const gh_filter_type_t gh_direct_filter = {
    .name = "direct_response",
    .on_request_headers = direct_on_request_headers,
};
