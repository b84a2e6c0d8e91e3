/*
 * Request path normalization (include/gatehouse/path.h says what it does).
 *
 * One pass, left to right. Each segment is decoded into out right after a
 * '/', as it would be kept; when it ends, it is either kept, dropped (a
 * merged empty segment, a dot segment) or it pops the segment before it
 * (".."), which is RFC 3986 section 5.2.4's output buffer with the segments
 * already in it. Because a segment never grows when it is decoded, out can
 * be written while in is still being read.
 */
#include <gatehouse/hex.h>
#include <gatehouse/path.h>

#include <string.h>

/* What the bytes before a segment's first ';' (raw or "%3B") were: a dot
 * segment is one whose core is "." or "..", whatever follows the ';',
 * because Tomcat and Spring drop the parameters before they resolve dots. */
typedef struct {
    size_t dots;
    unsigned other : 1;     /* a byte other than '.' */
    unsigned in_params : 1; /* past the first ';' */
} core_t;

typedef struct {
    const gh_path_opts_t *o;
    char *out;
    size_t n;
    const char *reason;
    unsigned redirect : 1; /* an escaped slash became '/' */
    unsigned need;         /* UTF-8 continuation bytes still expected */
    unsigned char lo, hi;  /* the range of the next one */
} norm_t;

/* One segment as it is read. */
typedef struct {
    size_t start; /* index of its '/' in out */
    core_t whole;
    core_t sub;             /* since the last kept escaped slash */
    unsigned stripping : 1; /* in ";params" that are being removed */
    unsigned esc_slash : 1; /* holds a kept escaped slash */
    unsigned sub_dot : 1;   /* a part between kept escaped slashes was a dot segment */
    unsigned boundary : 1;  /* ended at an escaped slash turned into '/' */
} seg_t;

static void core_add(core_t *k, unsigned char v)
{
    if (k->in_params)
        return;
    if (v == ';')
        k->in_params = 1;
    else if (v == '.')
        k->dots++;
    else
        k->other = 1;
}

static int core_is_dot(const core_t *k)
{
    return !k->other && (k->dots == 1 || k->dots == 2);
}

static int refuse(norm_t *z, const char *why)
{
    z->reason = why;
    return -1;
}

/* RFC 3629 section 4: well-formed UTF-8 only. Overlong forms are what old
 * decoders read "%C0%AE" as '.' through. */
static int utf8_feed(norm_t *z, unsigned char b)
{
    if (z->need > 0) {
        if (b < z->lo || b > z->hi)
            return refuse(z, "path is not UTF-8");
        z->need--;
        z->lo = 0x80;
        z->hi = 0xBF;
        return 0;
    }
    if (b < 0x80)
        return 0;
    z->lo = 0x80;
    z->hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        z->need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        z->need = 2;
        if (b == 0xE0)
            z->lo = 0xA0; /* overlong */
        else if (b == 0xED)
            z->hi = 0x9F; /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        z->need = 3;
        if (b == 0xF0)
            z->lo = 0x90; /* overlong */
        else if (b == 0xF4)
            z->hi = 0x8F; /* above U+10FFFF */
    } else {
        return refuse(z, "path is not UTF-8");
    }
    return 0;
}

/* RFC 3986 section 2.3. */
static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void emit(norm_t *z, const seg_t *sg, char c)
{
    if (!sg->stripping)
        z->out[z->n++] = c;
}

static void emit_escape(norm_t *z, const seg_t *sg, unsigned char v)
{
    static const char hex[] = "0123456789ABCDEF";
    emit(z, sg, '%');
    emit(z, sg, hex[v >> 4]);
    emit(z, sg, hex[v & 15]);
}

static void track(seg_t *sg, unsigned char v)
{
    if (sg->stripping)
        return;
    core_add(&sg->whole, v);
    core_add(&sg->sub, v);
}

/* "%2F", "%5C" or a raw '\'. Returns 1 when it ends the segment. */
static int escaped_slash(norm_t *z, seg_t *sg, const char *raw, size_t raw_len, unsigned char v)
{
    switch (z->o->escaped_slashes) {
    case GH_PATH_SLASHES_REDIRECT:
        z->redirect = 1;
        sg->boundary = 1;
        return 1;
    case GH_PATH_SLASHES_KEEP:
        if (sg->stripping)
            return 0;
        if (raw_len == 1)
            emit(z, sg, raw[0]);
        else
            emit_escape(z, sg, v);
        core_add(&sg->whole, v);
        if (core_is_dot(&sg->sub))
            sg->sub_dot = 1;
        memset(&sg->sub, 0, sizeof(sg->sub));
        sg->esc_slash = 1;
        return 0;
    case GH_PATH_SLASHES_REJECT:
    default:
        return refuse(z, raw_len == 1 ? "backslash in path" : "escaped slash in path");
    }
}

/* Reads one segment from in[*i] (just after its '/') up to the next
 * boundary, writing it to out. Returns 0, or -1 to refuse. */
static int read_segment(norm_t *z, seg_t *sg, const char *in, size_t len, size_t *i)
{
    while (*i < len && in[*i] != '/') {
        const char *at = in + *i;
        unsigned char c = (unsigned char)*at;
        if (c == '%') {
            int h1 = *i + 2 < len ? gh_hex_value((unsigned char)at[1]) : -1;
            int h2 = *i + 2 < len ? gh_hex_value((unsigned char)at[2]) : -1;
            if (h1 < 0 || h2 < 0)
                return refuse(z, "bad percent-encoding in path");
            unsigned char v = (unsigned char)(h1 << 4 | h2);
            *i += 3;
            if (v == 0)
                return refuse(z, "NUL in path");
            if (v < 0x20 || v == 0x7f)
                return refuse(z, "control character in path");
            if (utf8_feed(z, v) < 0)
                return -1;
            if (v == '/' || v == '\\') {
                int r = escaped_slash(z, sg, at, 3, v);
                if (r != 0)
                    return r < 0 ? -1 : 0;
                continue;
            }
            if (is_unreserved(v))
                emit(z, sg, (char)v);
            else
                emit_escape(z, sg, v);
            track(sg, v);
            continue;
        }
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
            return refuse(z, "invalid byte in path");
        if (utf8_feed(z, c) < 0)
            return -1;
        (*i)++;
        if (c == '\\') {
            int r = escaped_slash(z, sg, at, 1, c);
            if (r != 0)
                return r < 0 ? -1 : 0;
            continue;
        }
        if (c == ';' && !sg->stripping) {
            if (z->o->params == GH_PATH_PARAMS_REJECT)
                return refuse(z, "parameter in path");
            track(sg, c);
            if (z->o->params == GH_PATH_PARAMS_STRIP) {
                sg->stripping = 1;
                continue;
            }
        } else {
            track(sg, c);
        }
        emit(z, sg, (char)c);
    }
    return 0;
}

/* The segment just read is kept, dropped, or pops the one before it. */
static int end_segment(norm_t *z, const seg_t *sg, int last, int *trail)
{
    *trail = 0;
    if (core_is_dot(&sg->whole)) {
        z->n = sg->start;
        if (sg->whole.dots == 2)
            while (z->n > 0 && z->out[--z->n] != '/')
                ;
        *trail = last;
        return 0;
    }
    if (sg->esc_slash && (sg->sub_dot || core_is_dot(&sg->sub)))
        return refuse(z, "dot segment beside an escaped slash in path");
    if (z->n == sg->start + 1 && z->o->merge_slashes && !last)
        z->n = sg->start;
    return 0;
}

static int normalize(norm_t *z, const char *in, size_t len)
{
    size_t i = 1;
    int trail = 0;
    for (;;) {
        seg_t sg;
        memset(&sg, 0, sizeof(sg));
        sg.start = z->n;
        z->out[z->n++] = '/';
        if (read_segment(z, &sg, in, len, &i) < 0)
            return -1;
        int last = i >= len && !sg.boundary;
        if (end_segment(z, &sg, last, &trail) < 0)
            return -1;
        if (last)
            break;
        if (!sg.boundary) {
            if (utf8_feed(z, '/') < 0)
                return -1;
            i++; /* the raw '/' */
        }
    }
    if (z->need > 0)
        return refuse(z, "path is not UTF-8");
    if (trail || z->n == 0)
        z->out[z->n++] = '/';
    return 0;
}

gh_path_result_t gh_path_normalize(const char *in, size_t len, const gh_path_opts_t *opts,
                                   char *out, size_t *out_len, const char **reason)
{
    norm_t z;
    memset(&z, 0, sizeof(z));
    z.o = opts;
    z.out = out;
    if (len == 0) {
        out[0] = '/';
        *out_len = 1;
        return GH_PATH_OK;
    }
    if (!opts->normalize) {
        memcpy(out, in, len);
        *out_len = len;
        return GH_PATH_OK;
    }
    if (in[0] != '/') {
        *reason = "path does not begin with '/'";
        return GH_PATH_REFUSE;
    }
    if (normalize(&z, in, len) < 0) {
        *reason = z.reason;
        return GH_PATH_REFUSE;
    }
    *out_len = z.n;
    if (!z.redirect)
        return GH_PATH_OK;
    /* Without merging, "/%2F%2Fevil.example" would become a Location of
     * "///evil.example", which browsers follow to another host. */
    if (z.n > 1 && out[1] == '/') {
        *reason = "escaped slashes would redirect to another host";
        return GH_PATH_REFUSE;
    }
    return GH_PATH_REDIRECT;
}
