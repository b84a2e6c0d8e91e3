/*
 * HTTP/1.1 message parsing (RFC 9110, RFC 9112): request and response heads,
 * and the chunked transfer coding. Strict, zero-copy, bounded.
 *
 * The head parsers are stateless: call them again with the whole buffer when
 * more bytes arrive (the head is bounded by max_head, so re-scanning costs at
 * most O(max_head) per read). All pointers in the results borrow from the
 * caller's buffer and are valid as long as it is.
 *
 * The framing of the message body is decided here, not by the caller, so the
 * rules that prevent request smuggling live in one place:
 *   - Transfer-Encoding and Content-Length together: error (400).
 *   - Transfer-Encoding must be exactly "chunked" (case-insensitive), once:
 *     any other coding, a list, a repeat or odd whitespace is an error (400
 *     for requests, 502 for responses); HTTP/1.0 requests with TE: error.
 *   - Content-Length: 1*DIGIT, at most 18 digits; repeated only with equal
 *     values (otherwise error); lists ("5, 5") are refused.
 *   - obs-fold, bare CR, NUL and other CTLs except HTAB in values, whitespace
 *     before the colon, non-token bytes in names or methods: error.
 *   - Bare LF as a line terminator is refused (RFC 9112 section 2.2 allows a
 *     recipient to accept it; a proxy that does so may disagree with an
 *     upstream that does not).
 *   - HTTP/1.1 requests need exactly one Host header; HTTP/1.0 may omit it
 *     but never repeat it.
 */
#ifndef GATEHOUSE_H1_H
#define GATEHOUSE_H1_H

#include <stddef.h>
#include <stdint.h>

/* Return values of the head parsers: > 0 is the head's length in bytes
 * (through the empty line). */
#define GH_H1_INCOMPLETE 0
#define GH_H1_ERROR (-1)

typedef struct {
    const char *name; /* not NUL-terminated; borrowed from the buffer */
    size_t name_len;
    const char *value; /* leading and trailing OWS trimmed */
    size_t value_len;
} gh_h1_header_t;

/* Why a head was refused: the HTTP status to answer with and a short,
 * static, human-readable reason for the JSON body and the log. */
typedef struct {
    int status;         /* 400, 414, 431, 501 (requests); 502 (responses) */
    const char *detail; /* static string, e.g. "both Content-Length and Transfer-Encoding" */
} gh_h1_error_t;

typedef enum {
    GH_H1_BODY_NONE = 0,    /* no body (no CL, no TE on a request; or CL: 0) */
    GH_H1_BODY_LENGTH,      /* content_length bytes follow */
    GH_H1_BODY_CHUNKED,     /* chunked coding follows */
    GH_H1_BODY_UNTIL_CLOSE, /* responses only: body ends when the connection closes */
} gh_h1_body_t;

typedef struct {
    size_t max_head;    /* a head longer than this: 431 (request) / 502 (response) */
    size_t max_headers; /* more header fields than this: 431 / 502 */
    size_t max_uri;     /* request-target longer than this: 414 */
} gh_h1_limits_t;

typedef struct {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent: origin-form, absolute-form, '*' */
    size_t target_len;
    int minor_version;       /* 0 or 1; other versions are an error (505 not used: 400) */
    gh_h1_header_t *headers; /* caller's array of capacity limits->max_headers */
    size_t num_headers;

    /* Derived by the parser. */
    gh_h1_body_t body;
    uint64_t content_length;      /* when body == GH_H1_BODY_LENGTH */
    int host_index;               /* index of the Host header, -1 if none */
    unsigned keep_alive : 1;      /* per version default and Connection tokens */
    unsigned expect_continue : 1; /* Expect: 100-continue (case-insensitive) */
    unsigned has_upgrade : 1;     /* an Upgrade header is present */
} gh_h1_request_t;

typedef struct {
    int status; /* 100..999 */
    const char *reason;
    size_t reason_len;
    int minor_version;
    gh_h1_header_t *headers;
    size_t num_headers;

    /* Derived by the parser, as if the request was not HEAD: the caller
     * overrides body to NONE for HEAD requests. 1xx, 204 and 304 always
     * yield GH_H1_BODY_NONE. */
    gh_h1_body_t body;
    uint64_t content_length;
    unsigned keep_alive : 1;
} gh_h1_response_t;

/* Parses a request head at buf[0..len). Leading empty lines (CRLF) before
 * the request-line are skipped, as RFC 9112 section 2.2 allows.
 * Returns the head length (> 0), GH_H1_INCOMPLETE, or GH_H1_ERROR with *err
 * filled in. req->headers must point at limits->max_headers entries. */
int gh_h1_request_parse(const char *buf, size_t len, const gh_h1_limits_t *limits,
                        gh_h1_request_t *req, gh_h1_error_t *err);

/* Same for a response head (status 502 in *err on refusal). */
int gh_h1_response_parse(const char *buf, size_t len, const gh_h1_limits_t *limits,
                         gh_h1_response_t *res, gh_h1_error_t *err);

/* Whether name[0..len) equals lower[0..len) (a lower-case literal of the
 * same length), ASCII case ignored. */
int gh_h1_name_equals(const char *name, const char *lower, size_t len);

/* Case-insensitive comparison of a header name with a lower-case literal.
 * The length is compared inline: names are compared on every header of
 * every message, most differ in length, and the call is then not made. */
static inline int gh_h1_name_is(const gh_h1_header_t *h, const char *lower, size_t lower_len)
{
    return h->name_len == lower_len && gh_h1_name_equals(h->name, lower, lower_len);
}
#define GH_H1_NAME_IS(h, lit) gh_h1_name_is((h), (lit), sizeof(lit) - 1)

/* Whether c may appear in a token (RFC 9110 section 5.6.2). */
int gh_h1_is_tchar(unsigned char c);

/* Whether a[0..n) is an authority as gatehouse accepts it in Host and in
 * an absolute-form target: a reg-name of ALPHA, DIGIT and -._~!$&'()*+,;=
 * (no percent-encoding), an IPv4 address, or a bracketed IPv6 literal,
 * then an optional ":" and port of at most five digits, at most 65535. No
 * userinfo. An empty string is not an authority. */
int gh_h1_authority_is_valid(const char *a, size_t n);

/* Iterates over a comma-separated list of tokens (RFC 9110 section 5.6.1,
 * `#token`), as in Connection: empty members and OWS around commas are
 * skipped. *pos is the caller's cursor into v[0..len), 0 to start.
 * Returns 1 with *tok and *tok_len set (borrowed from v), 0 at the end of the
 * list, or GH_H1_ERROR when a member is not exactly one token ("a b",
 * "a/b", a quoted string). This is the only Connection tokenizer: the
 * parser (keep-alive, close) and the forwarding code (which fields are
 * hop-by-hop) must read a list the same way. */
int gh_h1_token_list_next(const char *v, size_t len, size_t *pos, const char **tok,
                          size_t *tok_len);

/*
 * Incremental chunked decoder. Feed it the bytes as they arrive; it reports
 * one event per call:
 *   GH_H1_CHUNK_DATA: in[*data_off .. *data_off + *data_len) is body data;
 *                     *consumed bytes of in were used (data included).
 *   GH_H1_CHUNK_MORE: all *consumed (== len) bytes used, need more input.
 *   GH_H1_CHUNK_DONE: the last chunk and trailer section ended; *consumed
 *                     bytes used; bytes after them belong to the next message.
 *   GH_H1_ERROR:      malformed (bad hex, size overflow past 2^62, missing
 *                     CRLF, bare LF, chunk-ext with CTLs, trailer too long or
 *                     malformed); err filled (status 400).
 * Chunk extensions are parsed and ignored. Trailer fields are validated like
 * header fields and copied into d->trailers (at most GH_H1_MAX_TRAILERS bytes,
 * each line kept with its CRLF) so the caller can forward them.
 */
#define GH_H1_CHUNK_DATA 1
#define GH_H1_CHUNK_MORE 2
#define GH_H1_CHUNK_DONE 3
#define GH_H1_MAX_TRAILERS 8192

typedef struct {
    int state;          /* private */
    uint64_t remaining; /* private: bytes left in the current chunk */
    size_t line_len;    /* private: bytes of the current size/trailer line */
    char trailers[GH_H1_MAX_TRAILERS];
    size_t trailers_len; /* trailer field lines, each ending in CRLF; no final CRLF */
} gh_h1_chunked_t;

void gh_h1_chunked_init(gh_h1_chunked_t *d);
int gh_h1_chunked_decode(gh_h1_chunked_t *d, const char *in, size_t len, size_t *consumed,
                         size_t *data_off, size_t *data_len, gh_h1_error_t *err);

#endif
