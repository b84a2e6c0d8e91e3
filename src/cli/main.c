/* gatehouse: the command line. Thin: parse arguments, call the library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/config.h>
#include <gatehouse/log.h>
#include <gatehouse/server.h>

#include "server/apply.h"
#include "cli/apikey.h"
#include "cli/client.h"
#include "cli/keys.h"
#include "cli/token.h"

static const char usage_main[] =
    "usage: gatehouse <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve     run the gateway\n"
    "  validate  check a configuration file and exit\n"
    "  token     mint, jwks, inspect: JWT tools for development\n"
    "  apikey    create, list, show, revoke, rotate, usage, import: API keys\n"
    "  client    create, list, show, revoke, rotate-secret: OAuth clients\n"
    "  keys      rotate, list, jwks, prune: the token issuer's signing keys\n"
    "  version   print the version\n"
    "\n"
    "'gatehouse <command> --help' describes a command.\n";

static const char usage_serve[] =
    "usage: gatehouse serve -c FILE [--workers N] [--log-level LEVEL]\n"
    "\n"
    "Runs the gateway in the foreground until SIGTERM or SIGINT, then drains\n"
    "in-flight requests (up to drain_timeout) and exits 0.\n"
    "\n"
    "  -c, --config FILE    configuration file (YAML), required\n"
    "  -w, --workers N      worker threads (default: the config's 'workers', else one per core)\n"
    "  --log-level LEVEL    error, warn, info (default) or debug\n";

static const char usage_validate[] =
    "usage: gatehouse validate -c FILE [--apply-checks]\n"
    "\n"
    "Checks FILE as 'serve' would and exits 0 if it is valid;\n"
    "otherwise prints the error as file:line:col: message and\n"
    "exits 1.\n"
    "\n"
    "  --apply-checks   also run the checks a reload makes before it applies\n"
    "                   the file: listener addresses can be bound, the access\n"
    "                   log can be opened, JWKS files and inline sets load,\n"
    "                   the collector URL parses. Nothing is created.\n";

static const char usage_version[] = "usage: gatehouse version\n\nPrints the version.\n";

typedef struct {
    const char *config;
    unsigned workers;
    int apply_checks;
} args_t;

static int misuse(const char *usage, const char *what, const char *arg)
{
    fprintf(stderr, "gatehouse: %s%s\n%s", what, arg, usage);
    return 2;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, const char *usage, int takes_config, args_t *a)
{
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (takes_config && (strcmp(o, "-c") == 0 || strcmp(o, "--config") == 0)) {
            if (i + 1 >= argc)
                return misuse(usage, "this option needs a file: ", o);
            a->config = argv[++i];
        } else if (takes_config == 2 && (strcmp(o, "-w") == 0 || strcmp(o, "--workers") == 0)) {
            if (i + 1 >= argc)
                return misuse(usage, "this option needs a number: ", o);
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*argv[i] == '\0' || *end != '\0' || n < 1 || n > 1024)
                return misuse(usage, "--workers needs a number from 1 to 1024, not ", argv[i]);
            a->workers = (unsigned)n;
        } else if (takes_config == 1 && strcmp(o, "--apply-checks") == 0) {
            a->apply_checks = 1;
        } else if (takes_config == 2 && strcmp(o, "--log-level") == 0) {
            if (i + 1 >= argc)
                return misuse(usage, "this option needs a level: ", o);
            const char *l = argv[++i];
            if (strcmp(l, "error") == 0)
                gh_log_threshold = GH_LOG_ERROR;
            else if (strcmp(l, "warn") == 0)
                gh_log_threshold = GH_LOG_WARN;
            else if (strcmp(l, "info") == 0)
                gh_log_threshold = GH_LOG_INFO;
            else if (strcmp(l, "debug") == 0)
                gh_log_threshold = GH_LOG_DEBUG;
            else
                return misuse(usage, "--log-level: unknown level ", l);
        } else {
            return misuse(usage, "unknown option ", o);
        }
    }
    if (takes_config && a->config == NULL)
        return misuse(usage, "-c FILE is required", "");
    return -1;
}

int main(int argc, char **argv)
{
    args_t a = {NULL, 0, 0};
    int r;
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if ((r = parse_args(argc - 2, argv + 2, usage_version, 0, &a)) >= 0)
            return r;
        printf("gatehouse %s\n", GH_VERSION);
        return 0;
    }
    if (strcmp(cmd, "validate") == 0) {
        if ((r = parse_args(argc - 2, argv + 2, usage_validate, 1, &a)) >= 0)
            return r;
        gh_config_error_t err;
        gh_config_t *cfg = gh_config_load(a.config, &err);
        if (cfg == NULL) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        char why[512];
        int bad = a.apply_checks && gh_apply_check(cfg, why, sizeof(why)) < 0;
        gh_config_free(cfg);
        if (bad) {
            fprintf(stderr, "%s: %s\n", a.config, why);
            return 1;
        }
        printf("%s: ok\n", a.config);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0) {
        if ((r = parse_args(argc - 2, argv + 2, usage_serve, 2, &a)) >= 0)
            return r;
        gh_server_opts_t o = {a.config, a.workers};
        return gh_server_run(&o);
    }
    if (strcmp(cmd, "token") == 0)
        return gh_cli_token(argc - 2, argv + 2);
    if (strcmp(cmd, "apikey") == 0)
        return gh_cli_apikey(argc - 2, argv + 2);
    if (strcmp(cmd, "client") == 0)
        return gh_cli_client(argc - 2, argv + 2);
    if (strcmp(cmd, "keys") == 0)
        return gh_cli_keys(argc - 2, argv + 2);
    fprintf(stderr, "gatehouse: unknown command '%s'\n%s", cmd, usage_main);
    return 2;
}
