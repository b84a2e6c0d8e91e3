/* Local responses: the JSON error body every refusal carries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

const char *gh_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    /* The rest of RFC 9110 section 15 (a direct_response may use any). */
    case 203:
        return "Non-Authoritative Information";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 303:
        return "See Other";
    case 305:
        return "Use Proxy";
    case 308:
        return "Permanent Redirect";
    case 402:
        return "Payment Required";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Writes s as a JSON string body (without quotes) into out; escapes what
 * RFC 8259 requires. Returns the length written, truncating at cap. */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (; *s != '\0' && n + 6 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            out[n++] = '\\';
            out[n++] = 'u';
            out[n++] = '0';
            out[n++] = '0';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

char *gh_reply_error_build(int status, const char *code, const char *detail, int close,
                           int head_only, size_t *len)
{
    return gh_reply_error_build_with(status, code, detail, NULL, close, head_only, len);
}

char *gh_reply_error_build_with(int status, const char *code, const char *detail, const char *extra,
                                int close, int head_only, size_t *len)
{
    return gh_reply_error_build_members(status, code, detail, NULL, 0, extra, close, head_only,
                                        len);
}

char *gh_reply_error_build_members(int status, const char *code, const char *detail,
                                   const char *const *members, size_t n, const char *extra,
                                   int close, int head_only, size_t *len)
{
    char body[2048], esc_code[64], esc_detail[512];
    size_t ce = json_escape(esc_code, sizeof(esc_code), code);
    size_t de = json_escape(esc_detail, sizeof(esc_detail), detail ? detail : "");
    int bl = snprintf(body, sizeof(body), "{\"error\":\"%.*s\",\"detail\":\"%.*s\"", (int)ce,
                      esc_code, (int)de, esc_detail);
    if (bl < 0)
        return NULL;
    /* Each member "name":"value", escaped, cut where the body is full
     * (the closing "}\n" always fits: 8 bytes are kept for it). */
    for (size_t i = 0; i < n; i++) {
        size_t room = sizeof(body) - 8 - (size_t)bl;
        if (room < 16)
            break;
        body[bl++] = ',';
        body[bl++] = '"';
        bl += (int)json_escape(body + bl, room / 2, members[2 * i]);
        body[bl++] = '"';
        body[bl++] = ':';
        body[bl++] = '"';
        room = sizeof(body) - 8 - (size_t)bl;
        bl += (int)json_escape(body + bl, room, members[2 * i + 1] ? members[2 * i + 1] : "");
        body[bl++] = '"';
    }
    body[bl++] = '}';
    body[bl++] = '\n';
    body[bl] = '\0';
    /* RFC 9110 sections 15.3.5 and 15.4.5: a 204 or 304 has no content. */
    if (status == 204 || status == 304) {
        bl = 0;
        body[0] = '\0';
    }
    size_t cap = (size_t)bl + 256 + (extra ? strlen(extra) : 0);
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    int hl =
        bl == 0 ? snprintf(buf, cap, "HTTP/1.1 %d %s\r\n%s%s\r\n", status, gh_status_reason(status),
                           extra ? extra : "", close ? "connection: close\r\n" : "")
                : snprintf(buf, cap,
                           "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                           "content-length: %d\r\n%s%s\r\n",
                           status, gh_status_reason(status), bl, extra ? extra : "",
                           close ? "connection: close\r\n" : "");
    if (hl < 0 || (size_t)hl + (size_t)bl > cap) {
        free(buf);
        return NULL;
    }
    if (head_only) {
        *len = (size_t)hl;
        return buf;
    }
    memcpy(buf + hl, body, (size_t)bl);
    *len = (size_t)hl + (size_t)bl;
    return buf;
}
