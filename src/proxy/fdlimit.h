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

/* ---- running out all the same (any thread) ----
 * The limit can be lowered under the running process, and descriptors can
 * be held elsewhere in it; see fdlimit.c for why these exist. */

/* The lock under which every "give a reserve descriptor up, take one"
 * step runs: the admin API's reserve, a worker's reserve, a worker's
 * listener coming back. Held for a few system calls, never on the request
 * path, and never nested. */
void gh_fdlimit_lock(void);
void gh_fdlimit_unlock(void);

/* With the lock held: the admin API, refused a descriptor (EMFILE,
 * ENFILE), says so, and from then on the data plane keeps what it takes
 * only with room left (below). Under the lock so that it is never lost to
 * a gh_fdlimit_room that found room a moment before. */
void gh_fdlimit_ran_out(void);

/* Whether the process ran out and has not had room since (no lock). */
int gh_fdlimit_is_short(void);

/* With the lock held: whether the data plane may keep one more descriptor.
 * Always when the process has not run out; otherwise only while
 * GH_FDLIMIT_KEEP descriptors stay free besides it, found by opening them
 * (and closing them again). With GH_FDLIMIT_CLEAR free the process has room
 * again and the check ends. */
#define GH_FDLIMIT_KEEP 2
#define GH_FDLIMIT_CLEAR 16
int gh_fdlimit_room(void);

#endif
