/*
 * What the store subcommands (gatehouse apikey, gatehouse client) share:
 * finding and opening the store the way the server does, and printing
 * times, text from the store and JSON documents. Internal to src/cli.
 */
#ifndef GATEHOUSE_CLI_STORE_OPEN_H
#define GATEHOUSE_CLI_STORE_OPEN_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include <gatehouse/store.h>

/* The store as the server finds it: the `store` section of config (a
 * file, may be NULL), else a SQLite file at store (may be NULL), else the
 * default (state/gatehouse.db). NULL after saying why on stderr, with
 * "gatehouse <prog>: " first; *missing (may be NULL) is set instead when
 * the store does not exist (without GH_STORE_CREATE). */
gh_store_t *gh_cli_store_open(const char *prog, const char *config, const char *store, int flags,
                              int *missing);

/* A time as RFC 3339 UTC ("-" for 0). */
void gh_cli_put_time(FILE *f, int64_t t);
/* Text from the store for a terminal: control bytes shown as \xHH. */
void gh_cli_put_safe(FILE *f, const char *s);
/* Prints j (taken), indented; 1 when it could not (out of memory). */
int gh_cli_print_json(const char *prog, json_t *j);

#endif
