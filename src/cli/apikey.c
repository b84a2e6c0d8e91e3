/*
 * gatehouse apikey create | list | show | revoke | rotate | usage | import:
 * the API keys of a store (gatehouse/store.h), from the command line.
 * Argument parsing and printing only: the work is the store's.
 *
 * The store is the one the server uses: --config FILE (its `store`
 * section), --store PATH (a SQLite file), or the default
 * (state/gatehouse.db). SQLite in WAL mode lets this run while a server
 * has the same file open.
 */
#include "cli/apikey.h"
#include "cli/store_open.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include <gatehouse/config.h>
#include <gatehouse/file.h>
#include <gatehouse/store.h>
#include <gatehouse/store_json.h>

static const char usage[] =
    "usage: gatehouse apikey create --consumer NAME [--plan PLAN] [--expires DURATION]\n"
    "                               [--scopes A,B] [--description TEXT] [--json]\n"
    "       gatehouse apikey list [--consumer NAME] [--json]\n"
    "       gatehouse apikey show ID [--json]\n"
    "       gatehouse apikey revoke ID\n"
    "       gatehouse apikey rotate ID [--grace DURATION] [--expires DURATION|never] [--json]\n"
    "       gatehouse apikey usage ID [--days N] [--json]\n"
    "       gatehouse apikey import FILE.csv [--plan-map USAGEPLANID=PLAN]... [--plan PLAN]\n"
    "                               [--dry-run]\n"
    "\n"
    "create  makes a key and prints it once, on stdout (its id and terms on stderr);\n"
    "        the store keeps only its hash. --expires: a lifetime (90d); default never.\n"
    "list    the keys (never their secrets or hashes), with their state now.\n"
    "show    one key's record.\n"
    "revoke  stops a key at once (running servers: within their lookup cache time).\n"
    "rotate  a new key with the same consumer, plan and scopes; the old one keeps\n"
    "        working for --grace (default 24h; 0 stops it at once). The new key's\n"
    "        lifetime is --expires, else the old key's.\n"
    "usage   a key's request counts: today, this week, this month (UTC), and per day\n"
    "        for the last --days (default 7).\n"
    "import  AWS API Gateway's API key CSV file (Name, Key, Description, Enabled,\n"
    "        UsagePlanIds). Every row is checked first: one bad row and nothing is\n"
    "        imported. --plan-map maps a usage plan id to a gatehouse plan; --plan\n"
    "        is the plan of rows without usage plan ids. --dry-run checks only.\n"
    "\n"
    "Durations: a number and s, m, h, d or w (30d, 12h, 2w).\n"
    "\n"
    "The store (as the server finds it):\n"
    "  -c, --config FILE   the store section of a configuration file\n"
    "  --store PATH        a SQLite store file\n"
    "  (neither: state/gatehouse.db, made on first use)\n";

#define CSV_MAX GH_APIKEY_CSV_MAX_BYTES
#define MAX_PLAN_MAP 1024

/* Which options a command takes (the store's, -c and --store, all do). */
enum {
    O_CONSUMER = 1 << 0,
    O_PLAN = 1 << 1,
    O_EXPIRES = 1 << 2,
    O_SCOPES = 1 << 3,
    O_DESCRIPTION = 1 << 4,
    O_GRACE = 1 << 5,
    O_DAYS = 1 << 6,
    O_JSON = 1 << 7,
    O_DRY_RUN = 1 << 8,
    O_PLAN_MAP = 1 << 9,
};

typedef struct {
    unsigned seen; /* O_* */
    const char *config, *store;
    const char *consumer, *plan, *expires, *scopes, *description, *grace, *days;
    const char *arg; /* ID or FILE */
    int json, dry_run;
    gh_apikey_plan_map_t plan_map[MAX_PLAN_MAP];
    size_t num_plan_map;
} opts_t;

static int misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int misuse(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "gatehouse apikey: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static int parse(int argc, char **argv, opts_t *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            o->seen |= O_JSON;
            continue;
        }
        if (strcmp(a, "--dry-run") == 0) {
            o->dry_run = 1;
            o->seen |= O_DRY_RUN;
            continue;
        }
        unsigned bit = 0;
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
            slot = &o->config;
        else if (strcmp(a, "--store") == 0)
            slot = &o->store;
        else if (strcmp(a, "--consumer") == 0)
            slot = &o->consumer, bit = O_CONSUMER;
        else if (strcmp(a, "--plan") == 0)
            slot = &o->plan, bit = O_PLAN;
        else if (strcmp(a, "--expires") == 0)
            slot = &o->expires, bit = O_EXPIRES;
        else if (strcmp(a, "--scopes") == 0)
            slot = &o->scopes, bit = O_SCOPES;
        else if (strcmp(a, "--description") == 0)
            slot = &o->description, bit = O_DESCRIPTION;
        else if (strcmp(a, "--grace") == 0)
            slot = &o->grace, bit = O_GRACE;
        else if (strcmp(a, "--days") == 0)
            slot = &o->days, bit = O_DAYS;
        else if (strcmp(a, "--plan-map") == 0) {
            o->seen |= O_PLAN_MAP;
            if (i + 1 >= argc)
                return misuse("%s needs USAGEPLANID=PLAN", a);
            char *m = argv[++i];
            char *eq = strchr(m, '=');
            if (eq == NULL || eq == m || eq[1] == '\0')
                return misuse("--plan-map needs USAGEPLANID=PLAN, not '%s'", m);
            if (o->num_plan_map == MAX_PLAN_MAP)
                return misuse("%s", "more than 1024 --plan-map options");
            *eq = '\0';
            const char *why = gh_apikey_check_plan(eq + 1);
            if (why != NULL) {
                fprintf(stderr, "gatehouse apikey: --plan-map %s: the plan %s\n", m, why);
                return 2;
            }
            for (size_t k = 0; k < o->num_plan_map; k++)
                if (strcmp(o->plan_map[k].usage_plan_id, m) == 0)
                    return misuse("usage plan '%s' is mapped twice", m);
            o->plan_map[o->num_plan_map].usage_plan_id = m;
            o->plan_map[o->num_plan_map++].plan = eq + 1;
            continue;
        } else if (a[0] == '-' && a[1] != '\0') {
            return misuse("unknown option %s", a);
        } else if (o->arg == NULL) {
            o->arg = a;
            continue;
        } else {
            return misuse("unexpected argument %s", a);
        }
        if (i + 1 >= argc)
            return misuse("%s needs a value", a);
        if (*slot != NULL)
            return misuse("%s is given twice", a);
        *slot = argv[++i];
        o->seen |= bit;
    }
    if (o->config != NULL && o->store != NULL)
        return misuse("%s", "give --config or --store, not both");
    return -1;
}

/* "30d", "12h", "0": seconds (gatehouse/store_json.h). 0 or -1. */
static int parse_duration(const char *s, int64_t *out)
{
    return gh_apikey_duration_parse(s, out) == 0 ? 0 : -1;
}

/* The store, or NULL after saying why; *missing (may be NULL) is set when
 * it does not exist (without GH_STORE_CREATE). */
static gh_store_t *open_store_or_missing(const opts_t *o, int flags, int *missing)
{
    return gh_cli_store_open("apikey", o->config, o->store, flags, missing);
}

static gh_store_t *open_store(const opts_t *o, int flags)
{
    return open_store_or_missing(o, flags, NULL);
}

/* ---- printing ---- */

static void put_time(FILE *f, int64_t t)
{
    gh_cli_put_time(f, t);
}

static void put_safe(FILE *f, const char *s)
{
    gh_cli_put_safe(f, s);
}

/* Prints j (taken); 1 when it could not (out of memory). */
static int print_json(json_t *j)
{
    return gh_cli_print_json("apikey", j);
}

static void show_text(const gh_apikey_t *k, int64_t now)
{
    gh_apikey_state_t state = gh_apikey_state(k, now);
    printf("id           %s\n", k->id);
    printf("state        %s", gh_apikey_state_name(state));
    if (state == GH_APIKEY_VALID && k->grace_until != 0) {
        printf(" (replaced by %s; works until ", k->replaced_by);
        put_time(stdout, k->grace_until);
        printf(")");
    }
    printf("\nconsumer     ");
    put_safe(stdout, k->consumer);
    printf("\nplan         ");
    put_safe(stdout, k->plan ? k->plan : "-");
    printf("\nscopes       ");
    put_safe(stdout, k->scopes[0] ? k->scopes : "-");
    printf("\ndescription  ");
    put_safe(stdout, k->description[0] ? k->description : "-");
    printf("\nsource       %s\n",
           k->source == GH_APIKEY_IMPORTED ? "aws-import (an imported key)" : "generated");
    printf("enabled      %s\ncreated      ", k->enabled ? "true" : "false");
    put_time(stdout, k->created_at);
    printf("\nexpires      ");
    if (k->expires_at == 0)
        printf("never");
    else
        put_time(stdout, k->expires_at);
    printf("\nrevoked      ");
    put_time(stdout, k->revoked_at);
    if (k->replaced_by[0] != '\0') {
        printf("\nreplaced by  %s\ngrace until  ", k->replaced_by);
        put_time(stdout, k->grace_until);
    }
    printf("\n");
}

/* ---- commands ---- */

static int store_error(const char *what, const gh_store_error_t *err)
{
    fprintf(stderr, "gatehouse apikey %s: %s\n", what, err->msg);
    return 1;
}

static int new_key_out(const char *what, const opts_t *o, const char *key, const gh_apikey_t *k,
                       int64_t now)
{
    if (o->json) {
        return print_json(gh_apikey_json_with_key(k, key, now));
    } else {
        printf("%s\n", key);
        fflush(stdout);
        fprintf(stderr, "gatehouse apikey %s: key %s for consumer ", what, k->id);
        put_safe(stderr, k->consumer);
        fprintf(stderr, ", plan %s, expires ", k->plan ? k->plan : "-");
        if (k->expires_at)
            put_time(stderr, k->expires_at);
        else
            fputs("never", stderr);
        fprintf(stderr, ".\nThe key above is shown this once: the store keeps only its hash.\n");
    }
    return 0;
}

static int cmd_create(const opts_t *o, int64_t now)
{
    gh_apikey_spec_t spec = {o->consumer, o->plan, o->scopes, o->description, 0};
    if (o->consumer == NULL)
        return misuse("%s", "create needs --consumer NAME");
    if (o->arg != NULL)
        return misuse("unexpected argument %s", o->arg);
    if (o->expires != NULL && strcmp(o->expires, "never") != 0 &&
        (parse_duration(o->expires, &spec.expires_in) != 0 || spec.expires_in == 0))
        return misuse("--expires needs a duration such as 90d or 12h, not '%s'", o->expires);
    gh_store_t *st = open_store(o, GH_STORE_CREATE);
    if (st == NULL)
        return 1;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t k;
    gh_store_error_t err;
    int rc = gh_store_key_create(st, &spec, now, key, &k, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("create", &err);
    rc = new_key_out("create", o, key, &k, now);
    OPENSSL_cleanse(key, sizeof(key));
    gh_apikey_dispose(&k);
    return rc;
}

static int cmd_list(const opts_t *o, int64_t now)
{
    if (o->arg != NULL)
        return misuse("unexpected argument %s", o->arg);
    gh_store_t *st = open_store(o, 0);
    if (st == NULL)
        return 1;
    gh_apikey_t *keys;
    size_t n;
    gh_store_error_t err;
    int rc = gh_store_key_list(st, o->consumer, &keys, &n, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("list", &err);
    if (o->json) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < n; i++)
            if (json_array_append_new(a, gh_apikey_json(&keys[i], now)) != 0) {
                json_decref(a);
                a = NULL;
            }
        rc = print_json(a);
    } else {
        int wc = 8, wp = 4;
        for (size_t i = 0; i < n; i++) {
            int c = (int)strlen(keys[i].consumer), p = keys[i].plan ? (int)strlen(keys[i].plan) : 1;
            wc = c > wc ? (c > 40 ? 40 : c) : wc;
            wp = p > wp ? p : wp;
        }
        printf("%-12s  %-8s  %-*s  %-*s  %-20s  %-10s  %s\n", "ID", "STATE", wc, "CONSUMER", wp,
               "PLAN", "EXPIRES", "SOURCE", "SCOPES");
        for (size_t i = 0; i < n; i++) {
            const gh_apikey_t *k = &keys[i];
            gh_apikey_state_t state = gh_apikey_state(k, now);
            /* "grace": rotated, and still working until its grace ends */
            printf("%-12s  %-8s  ", k->id,
                   state == GH_APIKEY_VALID && k->grace_until ? "grace"
                                                              : gh_apikey_state_name(state));
            put_safe(stdout, k->consumer);
            printf("%*s  %-*s  ",
                   wc - (int)strlen(k->consumer) > 0 ? wc - (int)strlen(k->consumer) : 0, "", wp,
                   k->plan ? k->plan : "-");
            if (k->expires_at)
                put_time(stdout, k->expires_at);
            else
                printf("%-20s", "never");
            printf("  %-10s  ", k->source == GH_APIKEY_IMPORTED ? "aws-import" : "generated");
            put_safe(stdout, k->scopes[0] ? k->scopes : "-");
            printf("\n");
        }
    }
    gh_apikey_list_free(keys, n);
    return rc;
}

static int need_id(const opts_t *o, const char *cmd)
{
    if (o->arg == NULL) {
        fprintf(stderr, "gatehouse apikey %s: needs a key ID\n%s", cmd, usage);
        return 2;
    }
    return 0;
}

static int cmd_show(const opts_t *o, int64_t now)
{
    int r = need_id(o, "show");
    if (r != 0)
        return r;
    gh_store_t *st = open_store(o, 0);
    if (st == NULL)
        return 1;
    gh_apikey_t k;
    gh_store_error_t err;
    int rc = gh_store_key_get(st, o->arg, &k, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("show", &err);
    if (o->json)
        rc = print_json(gh_apikey_json(&k, now));
    else
        show_text(&k, now);
    gh_apikey_dispose(&k);
    return rc;
}

static int cmd_revoke(const opts_t *o, int64_t now)
{
    int r = need_id(o, "revoke");
    if (r != 0)
        return r;
    gh_store_t *st = open_store(o, 0);
    if (st == NULL)
        return 1;
    gh_store_error_t err;
    int rc = gh_store_key_revoke(st, o->arg, now, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("revoke", &err);
    printf("revoked key %s\n", o->arg);
    return 0;
}

static int cmd_rotate(const opts_t *o, int64_t now)
{
    gh_apikey_rotate_t ro = {24 * 3600, -1};
    int r = need_id(o, "rotate");
    if (r != 0)
        return r;
    if (o->grace != NULL && parse_duration(o->grace, &ro.grace) != 0)
        return misuse("--grace needs a duration such as 24h or 0, not '%s'", o->grace);
    if (o->expires != NULL) {
        if (strcmp(o->expires, "never") == 0)
            ro.expires_in = 0;
        else if (parse_duration(o->expires, &ro.expires_in) != 0 || ro.expires_in == 0)
            return misuse("--expires needs a duration such as 90d, or never, not '%s'", o->expires);
    }
    gh_store_t *st = open_store(o, 0);
    if (st == NULL)
        return 1;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t k;
    gh_store_error_t err;
    int rc = gh_store_key_rotate(st, o->arg, &ro, now, key, &k, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("rotate", &err);
    rc = new_key_out("rotate", o, key, &k, now);
    if (!o->json) {
        fprintf(stderr, "Key %s keeps working until ", o->arg);
        put_time(stderr, now + ro.grace);
        fprintf(stderr, " (grace %llds).\n", (long long)ro.grace);
    }
    OPENSSL_cleanse(key, sizeof(key));
    gh_apikey_dispose(&k);
    return rc;
}

static int cmd_usage(const opts_t *o, int64_t now)
{
    int r = need_id(o, "usage");
    if (r != 0)
        return r;
    long days = 7;
    if (o->days != NULL) {
        char *end;
        days = strtol(o->days, &end, 10);
        if (o->days[0] < '0' || o->days[0] > '9' || *end != '\0' || days < 1 ||
            days > GH_APIKEY_USAGE_MAX_DAYS)
            return misuse("--days needs a number from 1 to 366, not '%s'", o->days);
    }
    gh_store_t *st = open_store(o, 0);
    if (st == NULL)
        return 1;
    static gh_apikey_usage_t u;
    gh_store_error_t err;
    int rc = gh_store_usage_report(st, o->arg, (unsigned)days, now, &u, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("usage", &err);
    if (o->json) {
        rc = print_json(gh_apikey_usage_json(&u));
    } else {
        printf("key %s, consumer ", u.key.id);
        put_safe(stdout, u.key.consumer);
        printf(", plan %s (UTC days)\n", u.key.plan ? u.key.plan : "-");
        printf("today       %llu\n", (unsigned long long)u.today);
        printf("this week   %llu (since Monday)\n", (unsigned long long)u.week);
        printf("this month  %llu\n", (unsigned long long)u.month);
        for (unsigned i = 0; i < u.days; i++) {
            char buf[16];
            gh_apikey_day_format(u.first_day + i, buf, sizeof(buf));
            printf("%s  %llu\n", buf, (unsigned long long)u.per_day[i]);
        }
    }
    gh_apikey_usage_dispose(&u);
    return rc;
}

static void print_errors(const char *file, const gh_apikey_csv_error_t *e, size_t n, size_t total)
{
    for (size_t i = 0; i < n; i++) {
        if (e[i].line)
            fprintf(stderr, "%s:%u: %s\n", file, e[i].line, e[i].msg);
        else
            fprintf(stderr, "%s: %s\n", file, e[i].msg);
    }
    if (total > n)
        fprintf(stderr, "%s: ... and %zu more errors\n", file, total - n);
}

static int cmd_import(const opts_t *o, int64_t now)
{
    if (o->arg == NULL) {
        fprintf(stderr, "gatehouse apikey import: needs a FILE.csv\n%s", usage);
        return 2;
    }
    const char *why;
    if (o->plan != NULL && (why = gh_apikey_check_plan(o->plan)) != NULL) {
        fprintf(stderr, "gatehouse apikey import: --plan: the plan %s\n", why);
        return 2;
    }
    size_t len;
    char *buf = gh_file_read(o->arg, CSV_MAX, &len);
    if (buf == NULL) {
        fprintf(stderr, "gatehouse apikey import: %s: %s\n", o->arg,
                errno == EFBIG ? "larger than 64 MiB" : gh_file_strerror(errno));
        return 1;
    }
    gh_apikey_csv_opts_t co = {o->plan_map, o->num_plan_map, o->plan};
    gh_apikey_csv_t csv;
    int rc = gh_apikey_csv_parse(buf, len, &co, &csv);
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (rc != 0) {
        gh_apikey_csv_dispose(&csv);
        fprintf(stderr, "gatehouse apikey import: out of memory\n");
        return 1;
    }
    if (csv.total_errors != 0) {
        print_errors(o->arg, csv.errors, csv.num_errors, csv.total_errors);
        fprintf(stderr, "gatehouse apikey import: %zu error%s in %s; nothing was imported\n",
                csv.total_errors, csv.total_errors == 1 ? "" : "s", o->arg);
        gh_apikey_csv_dispose(&csv);
        return 1;
    }
    if (csv.num_rows == 0) {
        gh_apikey_csv_dispose(&csv);
        printf("%s: no keys to import\n", o->arg);
        return 0;
    }
    int missing = 0;
    gh_store_t *st = open_store_or_missing(o, o->dry_run ? 0 : GH_STORE_CREATE, &missing);
    if (st == NULL) {
        size_t rows = csv.num_rows;
        gh_apikey_csv_dispose(&csv);
        if (!missing)
            return 1;
        /* a dry run before the store exists: every row would be new */
        printf("would import %zu key%s from %s: %zu new, 0 updated (no store yet)\n", rows,
               rows == 1 ? "" : "s", o->arg, rows);
        return 0;
    }
    gh_store_import_result_t res;
    gh_store_error_t err;
    rc = gh_store_key_import(st, csv.rows, csv.num_rows, now, o->dry_run, &res, &err);
    gh_store_unref(st);
    size_t rows = csv.num_rows;
    gh_apikey_csv_dispose(&csv);
    if (rc != 0) {
        print_errors(o->arg, res.errors, res.num_errors, res.total_errors);
        fprintf(stderr, "gatehouse apikey import: %s\n", err.msg);
        free(res.errors);
        return 1;
    }
    free(res.errors);
    printf("%s %zu key%s from %s: %zu new, %zu updated\n", o->dry_run ? "would import" : "imported",
           rows, rows == 1 ? "" : "s", o->arg, res.created, res.updated);
    return 0;
}

int gh_cli_apikey(int argc, char **argv)
{
    static opts_t o;
    memset(&o, 0, sizeof(o));
    if (argc < 1) {
        fputs(usage, stderr);
        return 2;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    int r = parse(argc - 1, argv + 1, &o);
    if (r >= 0)
        return r;
    static const struct {
        const char *name;
        unsigned takes;
    } cmds[] = {
        {"create", O_CONSUMER | O_PLAN | O_EXPIRES | O_SCOPES | O_DESCRIPTION | O_JSON},
        {"list", O_CONSUMER | O_JSON},
        {"show", O_JSON},
        {"revoke", 0},
        {"rotate", O_GRACE | O_EXPIRES | O_JSON},
        {"usage", O_DAYS | O_JSON},
        {"import", O_PLAN | O_PLAN_MAP | O_DRY_RUN},
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(sub, cmds[i].name) == 0 && (o.seen & ~cmds[i].takes) != 0) {
            fprintf(stderr, "gatehouse apikey %s: an option given does not apply to it\n%s", sub,
                    usage);
            return 2;
        }
    int64_t now = (int64_t)time(NULL);
    if (strcmp(sub, "create") == 0)
        return cmd_create(&o, now);
    if (strcmp(sub, "list") == 0)
        return cmd_list(&o, now);
    if (strcmp(sub, "show") == 0)
        return cmd_show(&o, now);
    if (strcmp(sub, "revoke") == 0)
        return cmd_revoke(&o, now);
    if (strcmp(sub, "rotate") == 0)
        return cmd_rotate(&o, now);
    if (strcmp(sub, "usage") == 0)
        return cmd_usage(&o, now);
    if (strcmp(sub, "import") == 0)
        return cmd_import(&o, now);
    fprintf(stderr, "gatehouse apikey: unknown command '%s'\n%s", sub, usage);
    return 2;
}
