/*
 * The checks a config must pass to be applied, beyond loading: what only
 * the machine it runs on can say (a listener's address is free, the access
 * log's directory is writable, a JWKS file exists and holds keys, the
 * collector URL parses). A reload runs them before its snapshot goes live;
 * `gatehouse validate --apply-checks` runs them without serving.
 *
 * Each returns 0, or -1 with the reason in why (cap bytes, NUL-terminated).
 */
#ifndef GATEHOUSE_SERVER_APPLY_H
#define GATEHOUSE_SERVER_APPLY_H

#include <stddef.h>

#include <gatehouse/config.h>

/* A listening socket for l (SO_REUSEPORT, non-blocking, not yet listening).
 * Returns the descriptor or -errno. */
int gh_apply_bind_listener(const gh_listener_conf_t *l);

/* Every provider whose key set is inline or a file: the set loads (the
 * same parser the keyring uses). URI and discovery sets load later, from
 * the network, and are not checked. */
int gh_apply_check_jwks(const gh_config_t *cfg, char *why, size_t cap);

/* For validate: every listener's address can be bound now (with
 * SO_REUSEPORT, so a running gatehouse of the same user does not count as
 * taken); the access log file can be opened for appending, or created in
 * its directory (nothing is created); the tracing collector URL parses.
 * Then gh_apply_check_jwks. */
int gh_apply_check(const gh_config_t *cfg, char *why, size_t cap);

#endif
