/*
 * Base64url. Decoding is strict because a token's bytes are signed: a lenient
 * decoder would accept several spellings of one token (padding, whitespace,
 * loose trailing bits), which breaks cache keys and "same token" checks.
 */
#include "jose/b64url.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

static const char enc_tab[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63, or 0xff for anything else. */
static const uint8_t dec_tab[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};
/* The table stores value + 1 so that the zero default means "not base64url". */

size_t gh_b64url_encode(const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = enc_tab[v >> 18];
        out[o++] = enc_tab[(v >> 12) & 63];
        out[o++] = enc_tab[(v >> 6) & 63];
        out[o++] = enc_tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = enc_tab[v >> 18];
        out[o++] = enc_tab[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = enc_tab[v >> 18];
        out[o++] = enc_tab[(v >> 12) & 63];
        out[o++] = enc_tab[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* The decoding table spread over four, each character's six bits already
 * in place and bit 31 set for a character outside the alphabet: a group of
 * four is four loads and three ORs (a token is ~1 KB of base64url). */
static uint32_t quad[4][256];
static pthread_once_t quad_once = PTHREAD_ONCE_INIT;

static void quad_init(void)
{
    for (int c = 0; c < 256; c++) {
        uint32_t v = dec_tab[c] ? (uint32_t)dec_tab[c] - 1 : 0x80000000u;
        for (int k = 0; k < 4; k++)
            quad[k][c] = v & 0x80000000u ? v : v << (18 - 6 * k);
    }
}

long gh_b64url_decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4 == 1)
        return -1;
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0, i = 0;
    pthread_once(&quad_once, quad_init);
    /* All but the last group: each writes four bytes, the fourth to be
     * overwritten by the next group (out has room: GH_B64URL_DEC_MAX). */
    for (; i + 8 <= n; i += 4) {
        uint32_t v = quad[0][s[i]] | quad[1][s[i + 1]] | quad[2][s[i + 2]] | quad[3][s[i + 3]];
        if (v & 0x80000000u)
            return -1;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint32_t be = __builtin_bswap32(v << 8);
#else
        uint32_t be = v << 8;
#endif
        memcpy(out + o, &be, 4);
        o += 3;
    }
    for (; i + 4 <= n; i += 4) {
        uint32_t a = dec_tab[s[i]], b = dec_tab[s[i + 1]], c = dec_tab[s[i + 2]],
                 d = dec_tab[s[i + 3]];
        if (!a || !b || !c || !d)
            return -1;
        uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    size_t rest = n - i;
    if (rest >= 2) {
        uint32_t a = dec_tab[s[i]], b = dec_tab[s[i + 1]];
        if (!a || !b)
            return -1;
        uint32_t v = (a - 1) << 18 | (b - 1) << 12;
        if (rest == 2) {
            if ((b - 1) & 0x0f) /* RFC 4648 §3.5: pad bits must be zero */
                return -1;
            out[o++] = (unsigned char)(v >> 16);
        } else {
            uint32_t c = dec_tab[s[i + 2]];
            if (!c || ((c - 1) & 0x03))
                return -1;
            v |= (c - 1) << 6;
            out[o++] = (unsigned char)(v >> 16);
            out[o++] = (unsigned char)(v >> 8);
        }
    }
    return (long)o;
}
