/*
 * application/x-www-form-urlencoded bodies (the token, introspection and
 * revocation requests: RFC 6749 Appendix B, WHATWG URL "application/
 * x-www-form-urlencoded parsing"), decoded once and whole. The body is
 * buffered by the caller; nothing here reads a socket or allocates.
 *
 * Rules (docs/internals/issuer.md says why):
 *   - pairs are split on '&'; an empty pair ("&&", a leading or trailing
 *     '&') is skipped;
 *   - a pair is name '=' value, split at the first '='; a pair without
 *     '=' is a name with an empty value;
 *   - in names and values '+' is a space and %XX the byte XX; a '%' not
 *     followed by two hex digits refuses the whole body (-EINVAL), and a
 *     decoded "%41" stays "%41" (one decoding, never two);
 *   - at most GH_FORM_MAX_PAIRS pairs (empty-valued ones count), names of
 *     at most GH_FORM_MAX_NAME bytes, values of at most GH_FORM_MAX_VALUE
 *     bytes, once decoded: -E2BIG beyond.
 * Bytes are not judged here: the caller checks each parameter it reads
 * (gh_form_get) for control bytes and its own syntax.
 */
#ifndef GATEHOUSE_ISSUER_FORM_H
#define GATEHOUSE_ISSUER_FORM_H

#include <stddef.h>

#define GH_FORM_MAX_PAIRS 64
#define GH_FORM_MAX_NAME 128
#define GH_FORM_MAX_VALUE (16 * 1024) /* a client assertion or a token: GH_JWT_MAX_TOKEN */

/* Scratch bytes gh_form_parse needs for a body of len bytes. */
#define GH_FORM_SCRATCH(len) ((len) + 1)

typedef struct {
    const char *name; /* decoded, NUL-terminated (may hold a decoded NUL before its end) */
    size_t name_len;
    const char *value; /* decoded, NUL-terminated; "" when empty or absent */
    size_t value_len;
} gh_form_pair_t;

typedef struct {
    gh_form_pair_t pairs[GH_FORM_MAX_PAIRS];
    size_t n;
} gh_form_t;

/*
 * Decodes body[0 .. len) into out, the decoded bytes going to scratch (at
 * least GH_FORM_SCRATCH(len) bytes, the caller's: out's strings point into
 * it). body is borrowed for the call. Returns 0, -EINVAL (a malformed
 * percent escape) or -E2BIG (a bound passed), with *why a static phrase.
 */
int gh_form_parse(const char *body, size_t len, char *scratch, size_t cap, gh_form_t *out,
                  const char **why);

/* Decodes raw[0 .. n) by the rules above ('+', %XX) into out (room for n
 * bytes): the decoded length, or -1 on a malformed percent escape. For
 * the parts of a Basic credential (RFC 6749 §2.3.1). */
long gh_form_decode(const char *raw, size_t n, char *out);

/*
 * The parameter called name, as RFC 6749 §3.2 reads it: pairs whose value
 * is empty are "treated as if they were omitted" and do not count. Returns
 * how many non-empty pairs have that name (0, 1, or more: repeated), with
 * *first (may be NULL) the first of them.
 */
size_t gh_form_get(const gh_form_t *f, const char *name, const gh_form_pair_t **first);

#endif
