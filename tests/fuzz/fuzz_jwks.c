/*
 * libFuzzer target for gh_jwks_parse: the first input byte picks the options
 * (allow_symmetric), the rest is the document, copied to an exactly sized
 * buffer. Checks: a set is returned with at least one usable key and at most
 * GH_JWKS_MAX_KEYS; each key's info is complete; warnings are printable; a
 * NULL result comes with an error message; ref/unref balance.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/jwt.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    gh_jwks_opts_t o = {.allow_symmetric = data[0] & 1};
    size_t n = size - 1;
    char *doc = malloc(n ? n : 1);
    if (doc == NULL)
        abort();
    memcpy(doc, data + 1, n);
    char err[200];
    memset(err, 'x', sizeof(err));
    gh_jwks_t *s = gh_jwks_parse(doc, n, &o, err, sizeof(err));
    if (s == NULL) {
        if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
            abort();
        free(doc);
        return 0;
    }
    size_t count = gh_jwks_count(s);
    if (count == 0 || count > GH_JWKS_MAX_KEYS)
        abort();
    for (size_t i = 0; i < count; i++) {
        gh_jwk_info_t info;
        if (gh_jwks_key_info(s, i, &info) != 0 || info.kty == NULL || info.bits <= 0)
            abort();
        if (!o.allow_symmetric && strcmp(info.kty, "oct") == 0)
            abort();
        if (strcmp(info.kty, "RSA") == 0 && info.bits < GH_JWKS_MIN_RSA_BITS)
            abort();
        if (info.kid != NULL && strlen(info.kid) > GH_JWT_MAX_KID)
            abort();
    }
    for (size_t i = 0; i < gh_jwks_warning_count(s); i++) {
        for (const char *w = gh_jwks_warning(s, i); *w; w++) {
            if (*w < 0x20 || *w > 0x7e)
                abort();
        }
    }
    gh_jwks_ref(s);
    gh_jwks_unref(s);
    gh_jwks_unref(s);
    free(doc);
    return 0;
}
