/*
 * IP addresses and CIDR prefixes (see gatehouse/cidr.h).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/cidr.h>

int gh_ip_parse(const char *s, size_t n, uint8_t out[16])
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (memchr(buf, ':', n) != NULL)
        return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    return inet_pton(AF_INET, buf, out + 12) == 1 ? 0 : -1;
}

const char *gh_cidr_parse(const char *s, gh_cidr_t *out)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (gh_ip_parse(s, alen, out->addr) < 0)
        return "is not an IPv4 or IPv6 address";
    int v4 = memchr(s, ':', alen) == NULL;
    unsigned max = v4 ? 32 : 128, bits = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        if (*p == '\0' || strlen(p) > 3)
            return "has an invalid prefix length";
        bits = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return "has an invalid prefix length";
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (bits > max)
            return "has a prefix length beyond the address size";
    }
    out->bits = (uint8_t)(v4 ? bits + 96 : bits);
    for (unsigned i = out->bits; i < 128; i++)
        if (out->addr[i / 8] & (0x80u >> (i % 8)))
            return "has bits set after the prefix length";
    return NULL;
}

int gh_cidr_contains(const gh_cidr_t *c, const uint8_t ip[16])
{
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, ip, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (c->addr[full] & mask) == (ip[full] & mask);
}

int gh_cidr_list_contains(const gh_cidr_t *list, size_t n, const uint8_t ip[16])
{
    for (size_t i = 0; i < n; i++)
        if (gh_cidr_contains(&list[i], ip))
            return 1;
    return 0;
}
