/*
 * Finding the end of a message head that arrives in pieces, looking at each
 * byte once. Re-running the full parser over the whole buffer on every read
 * made a 64 KiB head sent a byte at a time cost about 2 GB of scanning; the
 * parser now runs only when this scan says it can decide.
 */
#ifndef GATEHOUSE_PROXY_HEADSCAN_H
#define GATEHOUSE_PROXY_HEADSCAN_H

#include <stddef.h>

/* Whether the full parser should look at buf[0 .. len): 1 when the bytes
 * added since the last call (from *scanned - 3, so that a blank line cut
 * across reads is seen) hold the end of a head ("\r\n\r\n") or a bare LF
 * (which the parser refuses at once). Otherwise 0, and *scanned = len.
 * *scanned starts at 0 for each new head and never exceeds len. */
int gh_head_scan(const char *buf, size_t len, size_t *scanned);

#endif
