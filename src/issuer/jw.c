/*
 * The issuer's JSON writer (jw.h).
 */
#include <errno.h>

#include "issuer/jw.h"

void gh_jw_raw(gh_jw_t *w, const char *s, size_t n)
{
    if (w->err)
        return;
    if (w->cap - w->len <= n) {
        w->err = -ENOSPC;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

size_t gh_jw_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2, cp = c & 0x1fu, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3, cp = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0; /* a continuation byte, 0xc0/0xc1 (overlong), 0xf5.. */
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

void gh_jw_str(gh_jw_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    gh_jw_raw(w, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed at each escape */
    for (size_t i = 0; i < n && !w->err;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            size_t l = c < 0x80 ? 1 : gh_jw_utf8_len(u + i, n - i);
            if (l == 0) {
                w->err = -EILSEQ;
                return;
            }
            i += l;
            run += l;
            continue;
        }
        gh_jw_raw(w, s + i - run, run);
        run = 0;
        char esc[6] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        gh_jw_raw(w, esc, el);
        i++;
    }
    gh_jw_raw(w, s + n - run, run);
    gh_jw_raw(w, "\"", 1);
}

void gh_jw_int(gh_jw_t *w, int64_t v)
{
    char b[24];
    size_t i = sizeof(b);
    /* Through uint64_t so that INT64_MIN has a magnitude. */
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        b[--i] = (char)('0' + m % 10);
        m /= 10;
    } while (m != 0);
    if (v < 0)
        b[--i] = '-';
    gh_jw_raw(w, b + i, sizeof(b) - i);
}

long gh_jw_finish(gh_jw_t *w)
{
    if (w->err)
        return w->err;
    w->p[w->len] = '\0'; /* gh_jw_raw always leaves a byte */
    return (long)w->len;
}
