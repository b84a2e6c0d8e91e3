/*
 * libFuzzer target for gh_issuer_manifest_parse (src/issuer/manifest.c),
 * the reader of the issuer's keys.json. The input is the document, copied
 * to an exactly sized buffer. Checks: a refusal comes with a message; an
 * accepted manifest obeys the timeline's rules (checked again), every kid
 * is a safe file name, and it survives a round trip through the writer
 * unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "issuer/keys_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *doc = malloc(size ? size : 1);
    if (doc == NULL)
        abort();
    memcpy(doc, data, size);
    char err[300];
    memset(err, 'x', sizeof(err));
    gh_issuer_manifest_t m, again;
    int rc = gh_issuer_manifest_parse(doc, size, &m, err, sizeof(err));
    free(doc);
    if (rc != 0) {
        if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
            abort();
        return 0;
    }
    if (gh_issuer_manifest_check(&m, err, sizeof(err)) != 0)
        abort();
    for (size_t i = 0; i < m.n; i++) {
        if (!gh_issuer_kid_valid(m.keys[i].kid) || strchr(m.keys[i].kid, '/') != NULL)
            abort();
        if (gh_jwt_alg_name(m.keys[i].alg) == NULL)
            abort();
    }
    char *text = gh_issuer_manifest_dump(&m);
    if (text == NULL)
        abort();
    if (gh_issuer_manifest_parse(text, strlen(text), &again, err, sizeof(err)) != 0 ||
        memcmp(&m, &again, sizeof(m)) != 0)
        abort();
    free(text);
    return 0;
}
