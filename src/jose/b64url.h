/* Base64url without padding (RFC 7515 §2, RFC 4648 §5), strict on decode. */
#ifndef GATEHOUSE_AUTH_B64URL_H
#define GATEHOUSE_AUTH_B64URL_H

#include <stddef.h>

/* Encoded length of n bytes (no padding, no NUL). */
#define GH_B64URL_ENC_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* Upper bound of the decoded length of n characters. */
#define GH_B64URL_DEC_MAX(n) (((n) / 4) * 3 + 2)

/* Writes GH_B64URL_ENC_LEN(n) characters and a NUL to out; returns the length. */
size_t gh_b64url_encode(const void *in, size_t n, char *out);

/* Decodes n characters into out (room for GH_B64URL_DEC_MAX(n) bytes).
 * Refuses anything but the 64 url-safe characters: padding, '+', '/',
 * whitespace; a length of 4k+1; non-zero trailing bits (so each byte string
 * has exactly one encoding). Returns the decoded length, or -1. */
long gh_b64url_decode(const char *in, size_t n, unsigned char *out);

#endif
