/*
 * Request path normalization (src/http/path.c): the one spelling of a path
 * that route matching, every filter and the upstream all see, so that a
 * check made on the path is a check on what the origin will serve.
 *
 * With normalization on, the path is
 *   - percent-decoded where the escape is an unreserved character
 *     (RFC 3986 section 6.2.2.2: "%61dmin" is "admin", "%2e" is "."), other
 *     escapes kept with upper-case hex digits ("%3b" becomes "%3B");
 *   - refused when an escape is malformed ("%", "%g1"), decodes to NUL or a
 *     control byte, or the decoded bytes are not UTF-8 (overlong "%C0%AE"
 *     is a dot to some decoders);
 *   - cut at raw '/'; escaped slashes ("%2F", "%5C") and raw '\' are
 *     rejected, kept (not a boundary), or turned into '/' with a redirect;
 *   - stripped of ";params" in every segment, or those are kept, or refused;
 *   - merged where slashes repeat ("//admin" is "/admin"), if asked;
 *   - rid of dot segments (RFC 3986 section 5.2.4), where a dot segment is
 *     any segment that decodes to "." or ".." before its first ';' (Tomcat
 *     and Spring read "..;x" as ".."). A kept escaped slash next to a dot
 *     segment ("..%2Fadmin") is refused: an origin that decodes %2F before
 *     splitting would climb where gatehouse did not.
 * The result starts with '/', has no dot segment under any of those
 * readings, and normalizes to itself.
 */
#ifndef GATEHOUSE_PATH_H
#define GATEHOUSE_PATH_H

#include <stddef.h>

/* %2F, %5C and raw '\' in a path. */
typedef enum {
    GH_PATH_SLASHES_REJECT = 0, /* 400 (the default) */
    GH_PATH_SLASHES_KEEP,       /* forwarded as sent; not a segment boundary */
    GH_PATH_SLASHES_REDIRECT,   /* unescape_and_redirect: become '/', answer with a redirect */
} gh_path_slashes_t;

/* ";params" after a segment (RFC 3986 section 3.3). */
typedef enum {
    GH_PATH_PARAMS_STRIP = 0, /* removed from every segment (the default) */
    GH_PATH_PARAMS_KEEP,      /* forwarded; only dot segments lose theirs */
    GH_PATH_PARAMS_REJECT,    /* 400 */
} gh_path_params_t;

typedef struct {
    int normalize;     /* 0: the path is used exactly as received, nothing below applies */
    int merge_slashes; /* "//" is "/" */
    gh_path_slashes_t escaped_slashes;
    gh_path_params_t params;
} gh_path_opts_t;

/* The listener defaults: normalize, merge, reject escaped slashes, strip
 * params. */
#define GH_PATH_OPTS_DEFAULT                                                                       \
    {                                                                                              \
        1, 1, GH_PATH_SLASHES_REJECT, GH_PATH_PARAMS_STRIP                                         \
    }

typedef enum {
    GH_PATH_OK = 0,       /* out holds the path to route on and forward */
    GH_PATH_REDIRECT = 1, /* escaped slashes under REDIRECT: out holds the Location path,
                             which never begins with "//" (that is refused instead) */
    GH_PATH_REFUSE = -1,  /* *reason says why (a static string); out is garbage */
} gh_path_result_t;

/* The room out needs for a path of len bytes: never more than the input,
 * except that an empty path becomes "/". */
#define GH_PATH_OUT_MAX(len) ((len) > 0 ? (len) : 1)

/* Normalizes in[0..len) (the path of a request-target: no query) into
 * out, which must hold GH_PATH_OUT_MAX(len) bytes and may not overlap in.
 * Borrows everything; writes *out_len, and *reason on a refusal. An empty
 * path is "/"; one that does not begin with '/' is refused. Pure: no
 * allocation, no global state. */
gh_path_result_t gh_path_normalize(const char *in, size_t len, const gh_path_opts_t *opts,
                                   char *out, size_t *out_len, const char **reason);

#endif
