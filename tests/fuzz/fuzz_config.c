/*
 * libFuzzer target: arbitrary bytes -> gh_config_load_buffer.
 *
 * Must never crash, leak or hang, whatever the YAML. Endpoint host names
 * would reach the resolver, so the target sets GH_CONFIG_NO_DNS=1 before
 * the first input: names other than "localhost" are then refused as
 * unresolvable without a lookup, and every run stays hermetic and fast.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Isrc \
 *       src/config/yaml.c src/config/config.c tests/fuzz/fuzz_config.c -lyaml -lpcre2-8 -o
 * fuzz_config
 *   ./fuzz_config tests/fuzz/corpus/config
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gatehouse/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("fuzz.yaml", (const char *)data, size, &err);
    if (cfg == NULL) {
        /* every failure must say something, with the file name first */
        if (strncmp(err.msg, "fuzz.yaml:", 10) != 0)
            abort();
        return 0;
    }
    gh_config_free(cfg);
    return 0;
}
