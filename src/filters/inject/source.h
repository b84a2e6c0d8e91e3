/*
 * Token sources: access tokens obtained by the OAuth 2.0 client credentials
 * grant (RFC 6749 section 4.4) from a token endpoint, kept fresh in the
 * background, for the inject filter (docs/inject.md).
 *
 * A source is one (token endpoint, client, secret, scopes, audience): every
 * route whose inject section says the same shares it, within a config and
 * across reloads, so a reload does not fetch a new token. The main thread
 * owns sources: it fetches (libcurl in libuv's thread pool, never on a
 * worker), refreshes when 80% of a token's lifetime has passed, and retries
 * a failed fetch with a backoff while the current token is still valid.
 * Workers only read the current token, under the source's mutex.
 */
#ifndef GATEHOUSE_FILTERS_INJECT_SOURCE_H
#define GATEHOUSE_FILTERS_INJECT_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct gh_tsrc_s gh_tsrc_t;

/* What a source is made of: the inject section, parsed (filter.c). The
 * strings are borrowed by acquire, which copies them. */
typedef struct {
    const char *token_url;
    const char *client_id;
    const char *client_secret; /* a secret: never logged */
    int secret_post;           /* client_secret_post; 0: client_secret_basic */
    const char *scope;         /* space-separated, or NULL */
    const char *audience;      /* or NULL */
    const char *resource;      /* or NULL (RFC 8707) */
    uint64_t timeout_ms;
    int insecure_http;
} gh_tsrc_conf_t;

/* Main thread, once. */
void gh_tsrc_init(uv_loop_t *main_loop);
/* Main thread: stops every source (handles closed; run the loop after). */
void gh_tsrc_shutdown(void);
void gh_tsrc_free_all(void);

/* Main thread: the source for c, shared or new (its first fetch starts at
 * once). A reference, or NULL when out of memory. */
gh_tsrc_t *gh_tsrc_acquire(const gh_tsrc_conf_t *c);
/* Any thread. An unreferenced source stops refreshing. */
void gh_tsrc_release(gh_tsrc_t *s);

/* Any thread: when the source holds a token usable at now_ms (uv_now's
 * clock), calls use(arg, line, len) with line "authorization: Bearer
 * TOKEN\r\n" (valid during the call only: the source's lock is held, so
 * use only copies it) and returns use's result; else returns 1 with why
 * (why_cap bytes) saying why there is none. */
int gh_tsrc_use(gh_tsrc_t *s, uint64_t now_ms, int (*use)(void *arg, const char *line, size_t len),
                void *arg, char *why, size_t why_cap);
/* Main thread, for /ready: 1 when a usable token is held, else 0 and the
 * reason in why. */
int gh_tsrc_ready(gh_tsrc_t *s, char *why, size_t cap);
/* The redacted token URL and client id, for messages. */
const char *gh_tsrc_name(const gh_tsrc_t *s);

/* Parses a token endpoint's answer (RFC 6749 section 5.1; an error
 * answer, section 5.2, gives the reason): status, Content-Type and body.
 * On success *token (malloc'd, the caller's) holds the access token and
 * *expires_in its lifetime in seconds (default_ttl when the answer has
 * none). Returns 0, or -1 with why. Pure: tests and the fuzz target. */
int gh_tsrc_parse_answer(long status, const char *body, size_t len, uint64_t default_ttl,
                         char **token, uint64_t *expires_in, char *why, size_t cap);

#endif
