/*
 * Usage counts waiting to be written: per (key id, UTC day), in shards so
 * that workers counting at once do not contend (each counts in the shard
 * of its worker id; a shard's lock is otherwise taken only by the writer,
 * once per flush). Bounded: GH_STORE_USAGE_PENDING_MAX pairs per shard;
 * past that, counts of new pairs are dropped and counted.
 */
#ifndef GATEHOUSE_STORE_USAGE_H
#define GATEHOUSE_STORE_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/apikey.h>

#define GH_USAGE_SHARDS 8

typedef struct {
    char id[GH_APIKEY_ID_LEN + 1];
    int64_t day;
    uint64_t count;
} gh_store_usage_entry_t;

typedef struct gh_usage_batch_s gh_usage_batch_t;

gh_usage_batch_t *gh_usage_batch_new(void);
void gh_usage_batch_free(gh_usage_batch_t *b);
/* Any thread. 0, or -ENOSPC (dropped: the shard is full, or out of memory). */
int gh_usage_batch_add(gh_usage_batch_t *b, unsigned shard, const char *id, int64_t day,
                       uint64_t n);
/* Takes every pending count: *out (caller frees; NULL when none) and *n.
 * -ENOMEM leaves the counts pending. */
int gh_usage_batch_take(gh_usage_batch_t *b, gh_store_usage_entry_t **out, size_t *n);
/* Puts counts taken back (a write failed); those that do not fit are
 * dropped and counted. */
void gh_usage_batch_put_back(gh_usage_batch_t *b, const gh_store_usage_entry_t *e, size_t n);
/* The pending count of (id, day). */
uint64_t gh_usage_batch_pending(gh_usage_batch_t *b, const char *id, int64_t day);
/* Counts dropped since the batch was made. */
uint64_t gh_usage_batch_dropped(const gh_usage_batch_t *b);

#endif
