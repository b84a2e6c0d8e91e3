/* The issuer filter's parts (filter.c: the endpoints; throttle.c: failed
 * client authentications). docs/issuer.md is the user's view. */
#ifndef GATEHOUSE_FILTERS_ISSUER_INTERNAL_H
#define GATEHOUSE_FILTERS_ISSUER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/filter.h>

extern const gh_filter_type_t gh_issuer_filter;

/* Seconds until the key (kind 'a' an address, 'p' a client id and an
 * address) may try again, or 0 when it may now: refused once it failed
 * `limit` times in the current minute (its own failures only, never
 * another key's). Any thread. */
uint64_t gh_isf_throttle_blocked(char kind, const char *k, size_t n, uint32_t limit, int64_t now);
/* Counts one failed authentication of the key at now. Any thread. */
void gh_isf_throttle_fail(char kind, const char *k, size_t n, int64_t now);

#endif
