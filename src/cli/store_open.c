/* The store subcommands' shared parts (cli/store_open.h). */
#include "cli/store_open.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gatehouse/config.h>

/* The store's configuration as the server would find it. */
static int load_conf(const char *prog, const char *config, const char *store, gh_store_conf_t *conf)
{
    if (config != NULL) {
        gh_config_error_t err;
        gh_config_t *cfg = gh_config_load(config, &err);
        if (cfg == NULL) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        *conf = cfg->store;
        memset(&cfg->store, 0, sizeof(cfg->store)); /* moved */
        gh_config_free(cfg);
        return 0;
    }
    if (gh_store_conf_default(conf, NULL) != 0) {
        fprintf(stderr, "gatehouse %s: out of memory\n", prog);
        return 1;
    }
    if (store != NULL) {
        char *p = strdup(store);
        if (p == NULL) {
            gh_store_conf_dispose(conf);
            fprintf(stderr, "gatehouse %s: out of memory\n", prog);
            return 1;
        }
        free(conf->path);
        conf->path = p;
        conf->path_is_default = 0;
    }
    return 0;
}

gh_store_t *gh_cli_store_open(const char *prog, const char *config, const char *store, int flags,
                              int *missing)
{
    gh_store_conf_t conf;
    gh_store_error_t err;
    gh_store_t *st;
    if (load_conf(prog, config, store, &conf) != 0)
        return NULL;
    int rc = gh_store_open(&conf, flags, &st, &err);
    gh_store_conf_dispose(&conf);
    if (rc == -ENOENT && missing != NULL) {
        *missing = 1;
        return NULL;
    }
    if (rc != 0) {
        fprintf(stderr, "gatehouse %s: %s\n", prog, err.msg);
        return NULL;
    }
    return st;
}

void gh_cli_put_time(FILE *f, int64_t t)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        fputs(t == 0 ? "-" : "?", f);
    else
        fputs(buf, f);
}

/* The store checks what it is given, but a file edited by other means
 * could hold escape sequences, which are shown as \xHH rather than run. */
void gh_cli_put_safe(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

int gh_cli_print_json(const char *prog, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (s != NULL)
        printf("%s\n", s);
    else
        fprintf(stderr, "gatehouse %s: out of memory\n", prog);
    free(s);
    json_decref(j);
    return s == NULL;
}
