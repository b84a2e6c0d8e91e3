/*
 * Field names gatehouse owns. One list for every place that must not let a
 * client, an upstream or a config option set such a field: header names an
 * option sets (claims_to_headers, payload_header, direct_response headers)
 * and trailer names forwarded either way.
 */
#ifndef GATEHOUSE_FIELDS_H
#define GATEHOUSE_FIELDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Why name[0 .. len) is a field gatehouse sets or removes itself (framing,
 * hop-by-hop, host, forwarding, credentials, trace context), as a static
 * phrase, or NULL when it is not. Case-insensitive; '_' matches '-', as
 * CGI-style upstreams read them. */
const char *gh_field_owned(const char *name, size_t len);

/* Whether two field names are the same to every upstream: ASCII case
 * ignored and '_' read as '-' (CGI-style servers read X_User as x-user). */
int gh_field_name_same(const char *a, size_t an, const char *b, size_t bn);

/* One byte of a name as gh_field_name_same compares it. */
static inline unsigned char gh_field_name_fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c == '_' ? '-' : c;
}

/* Whether name[0 .. len) is "authorization" in any case (gh_field_name_same
 * with "authorization": it has no '-' for a '_' to stand for). Its letters
 * are all there is to compare, and a byte b has b | 0x20 == L for a
 * lower-case letter L only when b is L or its upper case: two overlapping
 * words, each with bit 5 set in every byte, decide it exactly. Every
 * request carrying a token has such a name (a general compare costs about
 * fifty instructions). */
static inline int gh_field_is_authorization(const char *name, size_t len)
{
    if (len != 13)
        return 0;
    uint64_t a, b, lo, hi;
    memcpy(&a, name, 8);
    memcpy(&b, name + 5, 8);
    memcpy(&lo, "authoriz", 8);
    memcpy(&hi, "rization", 8);
    return (((a | 0x2020202020202020ULL) ^ lo) | ((b | 0x2020202020202020ULL) ^ hi)) == 0;
}

/* Whether name[0 .. len) starts with the lower-case lit[0 .. lit_len) and
 * goes on after it, compared as gh_field_name_same does ("X_B3_Flags" has
 * the prefix "x-b3-"). */
int gh_field_name_has_prefix(const char *name, size_t len, const char *lit, size_t lit_len);

/* Whether a trailer of this name may never be forwarded: an owned field,
 * or one whose meaning belongs to the header section (content-*, range,
 * conditionals, set-cookie, location, authenticate challenges). */
int gh_field_trailer_forbidden(const char *name, size_t len);

#endif
