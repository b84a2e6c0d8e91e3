/* libFuzzer target: the AWS shared credentials / config file reader
 * (src/aws/ini.c), for both file kinds and two profiles. Checks that a read
 * either fails with a "fuzz:LINE: " message that quotes nothing of the
 * input, or returns values that are slices of the input: trimmed, one line,
 * no control byte, each on a line after its section's header. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/ini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *s, size_t size, gh_aws_ini_kind_t kind, const char *profile)
{
    gh_aws_ini_profile_t pf, again;
    char err[512], err2[512];
    memset(err, 0x55, sizeof(err));
    int r = gh_aws_ini_read(s, size, "fuzz", kind, profile, &pf, err, sizeof(err));
    int r2 = gh_aws_ini_read(s, size, "fuzz", kind, profile, &again, err2, sizeof(err2));
    if (r != r2)
        abort();
    if (r != 0) {
        if (r != -EINVAL || memchr(err, '\0', sizeof(err)) == NULL ||
            strncmp(err, "fuzz:", 5) != 0 || strcmp(err, err2) != 0)
            abort();
        /* A marker in the input never reaches the message. */
        if (strstr(err, "Q7X") != NULL)
            abort();
        return;
    }
    if (memcmp(&pf, &again, sizeof(pf)) != 0)
        abort();
    for (int i = 0; i < GH_AWS_INI_NUM_KEYS; i++) {
        const gh_aws_ini_val_t *v = &pf.v[i];
        if (v->p == NULL)
            continue;
        if (pf.section_line == 0 || v->line <= pf.section_line)
            abort();
        if (v->p < s || v->p + v->len > s + size || v->len > GH_AWS_INI_MAX_LINE)
            abort();
        for (size_t k = 0; k < v->len; k++) {
            unsigned char c = (unsigned char)v->p[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                abort();
        }
        if (v->len > 0 && (v->p[0] == ' ' || v->p[0] == '\t' || v->p[v->len - 1] == ' ' ||
                           v->p[v->len - 1] == '\t'))
            abort();
    }
    if ((pf.unsupported_before != NULL) != (pf.unsupported_before_line != 0) ||
        (pf.unsupported_after != NULL) != (pf.unsupported_after_line != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *s = malloc(size ? size : 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    check(s, size, GH_AWS_INI_CREDENTIALS, "default");
    check(s, size, GH_AWS_INI_CONFIG, "default");
    check(s, size, GH_AWS_INI_CREDENTIALS, "p");
    check(s, size, GH_AWS_INI_CONFIG, "p");
    free(s);
    return 0;
}
