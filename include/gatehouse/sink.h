/*
 * A bounded growable buffer for bodies fetched with libcurl (the JWKS
 * fetches, the inject filter's token requests): gh_sink_write is a
 * CURLOPT_WRITEFUNCTION. Past max bytes it keeps nothing more, sets
 * too_big and makes the transfer fail. buf is NUL-terminated once anything
 * came, and the caller's to free.
 */
#ifndef GATEHOUSE_SINK_H
#define GATEHOUSE_SINK_H

#include <stddef.h>

typedef struct {
    char *buf;
    size_t len;
    size_t max;
    int too_big;
} gh_sink_t;

size_t gh_sink_write(char *p, size_t size, size_t n, void *arg);

#endif
