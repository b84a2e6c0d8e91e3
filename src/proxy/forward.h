#ifndef GATEHOUSE_PROXY_FORWARD_H
#define GATEHOUSE_PROXY_FORWARD_H

#include <stddef.h>

#include <gatehouse/cidr.h>
#include <gatehouse/h1.h>

typedef struct gh_stream_s gh_stream_t;

/* Both return a head in the stream's arena (NULL when out of memory). */
char *gh_forward_request_head(gh_stream_t *s, size_t *len);
char *gh_forward_response_head(gh_stream_t *s, int chunked, int keep_alive, size_t *len);

/* The client address (docs/http.md, Forwarding fields) into client
 * (NUL-terminated). From a peer outside trusted[0..ntrusted) it is the peer
 * and 0 is returned. From a trusted proxy (returns 1) X-Forwarded-For is
 * read from the right: the first address that is not itself trusted is the
 * client; when every one is trusted, the leftmost; a member that is not a
 * plain IP address stops the walk at the address right of it (nginx's
 * real_ip_recursive). Borrows everything. */
int gh_forward_resolve_client(const gh_h1_header_t *h, size_t nh, const gh_cidr_t *trusted,
                              size_t ntrusted, const char *peer, char client[48]);

#endif
