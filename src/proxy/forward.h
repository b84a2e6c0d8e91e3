#ifndef GATEHOUSE_PROXY_FORWARD_H
#define GATEHOUSE_PROXY_FORWARD_H

#include <stddef.h>

typedef struct gh_stream_s gh_stream_t;

/* Both return a head in the stream's arena (NULL when out of memory). */
char *gh_forward_request_head(gh_stream_t *s, size_t *len);
char *gh_forward_response_head(gh_stream_t *s, int chunked, int keep_alive, size_t *len);

#endif
