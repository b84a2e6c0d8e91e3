/*
 * IP addresses and CIDR prefixes, for trusted_proxies. IPv4 is kept in its
 * IPv4-mapped IPv6 form (::ffff:a.b.c.d), so one comparison serves both
 * families and a listener on [::] that sees mapped peers matches IPv4
 * prefixes.
 */
#ifndef GATEHOUSE_CIDR_H
#define GATEHOUSE_CIDR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t addr[16];
    uint8_t bits; /* prefix length over the 16-byte form: 96 + n for IPv4 /n */
} gh_cidr_t;

/* Parses an IPv4 or IPv6 address in s[0..n) (no brackets, no port, no
 * zone). Returns 0, or -1 when it is not an address. */
int gh_ip_parse(const char *s, size_t n, uint8_t out[16]);

/* Parses "10.0.0.0/8", "2001:db8::/32" or a single address (a /32 or
 * /128). Returns NULL on success, else a static reason. Host bits set
 * after the prefix ("10.0.0.1/8") are refused: the list is written by a
 * person, and a typo there widens the trust. */
const char *gh_cidr_parse(const char *s, gh_cidr_t *out);

int gh_cidr_contains(const gh_cidr_t *c, const uint8_t ip[16]);

/* Whether ip is in any of the n prefixes. */
int gh_cidr_list_contains(const gh_cidr_t *list, size_t n, const uint8_t ip[16]);

#endif
