/* libFuzzer target: AWS API Gateway's API key CSV file (src/store/import.c).
 * Checks that every row it returns is one the importer may take (a key
 * that passes gh_apikey_check, with its length right; a checked name and
 * description; a plan from the map), that rows come in line order with no
 * key twice, that the error list stays within its cap, and that no error
 * message holds a row's key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/apikey.h>

static const gh_apikey_plan_map_t map[] = {{"abc123", "gold"}, {"x", "silver"}, {"y", "gold"}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *s = malloc(size ? size : 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    gh_apikey_csv_opts_t o = {map, 3, size % 2 ? "bronze" : NULL};
    gh_apikey_csv_t csv;
    if (gh_apikey_csv_parse(s, size, &o, &csv) != 0) {
        gh_apikey_csv_dispose(&csv);
        free(s);
        return 0;
    }
    if (csv.num_errors > csv.total_errors || csv.num_errors > GH_APIKEY_CSV_MAX_ERRORS)
        abort();
    unsigned last = 0;
    for (size_t i = 0; i < csv.num_rows; i++) {
        const gh_apikey_csv_row_t *r = &csv.rows[i];
        if (r->line <= last)
            abort();
        last = r->line;
        if (strlen(r->key) != r->key_len || gh_apikey_check(r->key, r->key_len) != NULL)
            abort();
        if (gh_apikey_check_consumer(r->consumer) != NULL ||
            gh_apikey_check_description(r->description) != NULL)
            abort();
        if (r->plan != NULL && strcmp(r->plan, "gold") != 0 && strcmp(r->plan, "silver") != 0 &&
            strcmp(r->plan, "bronze") != 0)
            abort();
        if (r->enabled != 0 && r->enabled != 1)
            abort();
        for (size_t j = 0; j < i; j++)
            if (csv.rows[j].key_len == r->key_len &&
                memcmp(csv.rows[j].key, r->key, r->key_len) == 0)
                abort();
        for (size_t e = 0; e < csv.num_errors; e++)
            if (strstr(csv.errors[e].msg, r->key) != NULL)
                abort();
    }
    for (size_t e = 0; e < csv.num_errors; e++)
        if (memchr(csv.errors[e].msg, '\0', sizeof(csv.errors[e].msg)) == NULL)
            abort();
    gh_apikey_csv_dispose(&csv);
    free(s);
    return 0;
}
