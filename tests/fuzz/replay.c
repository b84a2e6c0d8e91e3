/*
 * Replays a libFuzzer target's seed corpus without libFuzzer, so that ctest
 * runs every committed corpus (and every crash input added to it) as a
 * regression test on every `make test`, in the plain and sanitized builds.
 *
 *   replay_<name> DIR...   runs LLVMFuzzerTestOneInput on every file in DIR
 *
 * A target that crashes or aborts fails the test; an empty corpus fails too,
 * so a mistyped path cannot pass by testing nothing.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Reads a whole file into a heap buffer of exactly its size (the caller
 * frees), so that ASan catches a read one past the end as libFuzzer would. */
static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (buf == NULL || bad) {
        free(buf);
        return NULL;
    }
    uint8_t *exact = malloc(n ? n : 1);
    if (exact != NULL)
        memcpy(exact, buf, n);
    free(buf);
    *len = n;
    return exact;
}

static int replay_dir(const char *dir, unsigned *count)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", dir);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t len = 0;
        uint8_t *data = read_all(path, &len);
        if (data == NULL) {
            fprintf(stderr, "replay: cannot read %s\n", path);
            closedir(d);
            return -1;
        }
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        (*count)++;
    }
    closedir(d);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++)
        if (replay_dir(argv[i], &count) < 0)
            return 1;
    if (count == 0) {
        fprintf(stderr, "replay: no inputs\n");
        return 1;
    }
    printf("replay: %u inputs, no failure\n", count);
    return 0;
}
