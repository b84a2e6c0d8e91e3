/* libFuzzer target: a token endpoint's answer as the inject filter's token
 * sources read it (src/filters/inject/source.c). The first byte picks the
 * status (200 or an error status), the rest is the body. Checks that a
 * refusal leaves no token and says why, and that an accepted token is 1 to
 * 16 KiB of RFC 6750 b64token bytes (what a Bearer field may carry: never
 * a space, CR, LF or control) with a lifetime of 1 s to a year. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/inject/source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    long status = data[0] & 1 ? 200 : 400 + (data[0] >> 1);
    char *token = (char *)1, why[256] = "";
    uint64_t ttl = 0;
    int rc = gh_tsrc_parse_answer(status, (const char *)data + 1, size - 1, 300, &token, &ttl, why,
                                  sizeof(why));
    if (rc != 0) {
        if (token != NULL || why[0] == '\0')
            abort();
        return 0;
    }
    size_t n = strlen(token);
    if (status != 200 || n == 0 || n > 16384 || ttl == 0 || ttl > 366ULL * 86400)
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c <= 0x20 || c >= 0x7f || c == ',' || c == '"' || c == '\\')
            abort();
    }
    free(token);
    return 0;
}
