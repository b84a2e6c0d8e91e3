/*
 * A small JSON writer for the issuer's own documents (token header and
 * claims, token and introspection responses): into a caller's buffer,
 * strings escaped per RFC 8259 §7 and checked to be UTF-8, so no jansson
 * tree is built on the mint path. An error sticks: check it once at the
 * end with gh_jw_finish.
 */
#ifndef GATEHOUSE_ISSUER_JW_H
#define GATEHOUSE_ISSUER_JW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len, cap; /* cap includes room for the final NUL */
    int err;         /* 0, -ENOSPC or -EILSEQ */
} gh_jw_t;

static inline void gh_jw_init(gh_jw_t *w, char *buf, size_t cap)
{
    w->p = buf;
    w->len = 0;
    w->cap = cap;
    w->err = 0;
}

/* Bytes as they are (JSON punctuation, names known to be plain). */
void gh_jw_raw(gh_jw_t *w, const char *s, size_t n);
#define gh_jw_lit(w, lit) gh_jw_raw((w), (lit), sizeof(lit) - 1)
/* A JSON string: quotes, '"' '\\' and controls escaped (\n, \t ... or
 * \u00XX), DEL and non-ASCII kept as they are when they are UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF: -EILSEQ). */
void gh_jw_str(gh_jw_t *w, const char *s, size_t n);
static inline void gh_jw_cstr(gh_jw_t *w, const char *s)
{
    gh_jw_str(w, s, strlen(s));
}
/* A decimal integer. */
void gh_jw_int(gh_jw_t *w, int64_t v);
/* NUL-terminates; returns the length, or the sticky error. */
long gh_jw_finish(gh_jw_t *w);

/* The length of the UTF-8 sequence at s[0 .. n), or 0 when it is not one. */
size_t gh_jw_utf8_len(const unsigned char *s, size_t n);

#endif
