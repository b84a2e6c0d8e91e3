/*
 * A strict JSON reader for the two small objects of a JWS: the protected
 * header and the JWT claims. It validates the whole text and indexes the
 * top level, without building a tree (jansson's tree cost a fresh token
 * about 36k instructions, half of what gatehouse spent outside OpenSSL).
 *
 * It accepts a subset of what jansson's json_loadb(JSON_REJECT_DUPLICATES)
 * accepts, and reads the same values from it (tests/unit/jose/test_json.c
 * checks both against generated documents): one object, RFC 8259 grammar,
 * whitespace only around tokens, UTF-8 checked (no overlong forms, no
 * surrogates, nothing past U+10FFFF), escapes checked (\u0000 and unpaired
 * surrogates refused, as jansson refuses them without JSON_ALLOW_NUL),
 * duplicate member names refused in every object (after decoding escapes),
 * integers that overflow int64 and reals that overflow a double refused.
 * Stricter than jansson: at most GH_JOSE_JSON_MAX_DEPTH levels (jansson
 * allows 2048), and no NUL byte anywhere (jansson loses a NUL that follows
 * a number or a literal, and reads on: found by fuzz_jwt).
 */
#ifndef GATEHOUSE_JOSE_JSON_H
#define GATEHOUSE_JOSE_JSON_H

#include <stddef.h>
#include <stdint.h>

#define GH_JOSE_JSON_MAX_DEPTH 64

typedef enum {
    GH_JOSE_JSON_STRING = 1,
    GH_JOSE_JSON_NUMBER,
    GH_JOSE_JSON_TRUE,
    GH_JOSE_JSON_FALSE,
    GH_JOSE_JSON_NULL,
    GH_JOSE_JSON_OBJECT,
    GH_JOSE_JSON_ARRAY,
} gh_jose_json_type_t;

/* One indexed value: a member of the top-level object, or an element of
 * an array that is such a member (those follow their array's record, in
 * order; nelem says how many). Strings are decoded in place and
 * NUL-terminated; other values are their JSON text, not terminated (and
 * for arrays and objects, with their strings possibly decoded over: read
 * them from a fresh copy of the text). */
typedef struct gh_jose_json_rec_s {
    const char *name; /* decoded, NUL-terminated; NULL for an element */
    const char *val;
    uint32_t name_len;
    uint32_t val_len;
    uint32_t nelem; /* arrays: element records that follow */
    uint8_t type;   /* gh_jose_json_type_t */
} gh_jose_json_rec_t;

/* Records gh_jose_json_index may write for a text of len bytes. */
#define GH_JOSE_JSON_RECS(len) ((len) / 2 + 2)

/*
 * Checks text as one JSON object and indexes it into recs (room for
 * GH_JOSE_JSON_RECS(len)); the records' strings point into text, which is
 * rewritten where strings are decoded. Returns the number of records, -1
 * when the text is not an acceptable object, or -ENOMEM (a large object's
 * duplicate check needs a scratch buffer).
 */
long gh_jose_json_index(char *text, size_t len, gh_jose_json_rec_t *recs);

/* The top-level member called name (NUL-terminated), or NULL. */
const gh_jose_json_rec_t *gh_jose_json_get(const gh_jose_json_rec_t *recs, size_t n,
                                           const char *name);

/* A number record's value as a double (jansson's json_number_value). */
double gh_jose_json_number(const gh_jose_json_rec_t *r);

#endif
