/*
 * Internals of the OTLP exporter (src/observe/otlp.c) that its tests reach:
 * the JSON writer and the encoding of one span. Not part of the public API.
 */
#ifndef GATEHOUSE_OBSERVE_OTLP_H
#define GATEHOUSE_OBSERVE_OTLP_H

#include <stddef.h>

#include <gatehouse/trace.h>

/* A growing output buffer. failed is set (and sticks until reset) when an
 * allocation fails; writes after that are no-ops. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} gh_otlp_buf_t;

/* Appends s as a JSON string literal: quotes and backslashes escaped,
 * control bytes as \u00XX, bytes that are not valid UTF-8 as \ufffd. */
void gh_otlp_put_string(gh_otlp_buf_t *b, const char *s);

/* The ExportTraceServiceRequest body for this one span (strings truncated
 * as the queue would), NUL-terminated. Returns a new string the caller
 * frees, or NULL on allocation failure. */
char *gh_otlp_encode_span(const char *service_name, const gh_span_t *span);

#endif
