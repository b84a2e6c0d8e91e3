#ifndef GATEHOUSE_PROXY_FDLIMIT_H
#define GATEHOUSE_PROXY_FDLIMIT_H

#include "proxy/snapshot.h"

/* Main thread, at start and on every reload, before snap is published:
 * raises RLIMIT_NOFILE's soft limit to the hard limit, then sets
 * snap->conn_cap, the client connections one of workers workers may hold,
 * so that all of them with their upstream connections fit in the limit
 * (logged as a warning when that is below what the listeners'
 * max_connections allow). snap is borrowed. */
void gh_fdlimit_apply(gh_snapshot_t *snap, unsigned workers);

/* The arithmetic of gh_fdlimit_apply, apart for tests: the per-worker cap
 * for nofile descriptors. */
uint32_t gh_fdlimit_conn_cap(const gh_config_t *cfg, unsigned workers, uint64_t nofile);

#endif
