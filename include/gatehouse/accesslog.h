/*
 * Access log: one JSON object per request, buffered per worker and written
 * with write(2) to one descriptor shared by the process.
 *
 * The descriptor number never changes while the process runs: the main
 * thread opens a new file and dup2()s it onto that number, so rotation
 * (SIGUSR1) and a reload that changes the path need no coordination with
 * the workers, whose next write simply lands in the new file.
 */
#ifndef GATEHOUSE_ACCESSLOG_H
#define GATEHOUSE_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/config.h>

/* Main thread: (re)opens the log for conf (path NULL = stdout). Returns 0 or
 * -errno; on failure the previous destination stays. */
int gh_access_log_open(const gh_access_log_conf_t *conf);
/* Main thread, for a reload that must not half-apply: opens what conf
 * needs into *fd without installing it (*fd = -1 when nothing changes).
 * Returns 0 or -errno. Then exactly one of commit (installs fd; takes it)
 * or abort (closes it). */
int gh_access_log_prepare(const gh_access_log_conf_t *conf, int *fd);
int gh_access_log_commit(const gh_access_log_conf_t *conf, int fd);

/* Whether gh_access_log_prepare could open path, checked without opening or
 * creating anything (validate --apply-checks): an existing path must be a
 * file the process may write and of a kind it accepts (a regular file, a
 * character device, its own stdout/stderr); a missing one needs a writable
 * directory. 0, or -1 with errno (GH_FILE_ENOTREG for the wrong kind). */
int gh_access_log_path_usable(const char *path);
void gh_access_log_abort(int fd);
/* Any thread: lines lost to write errors (a full disk), and lines written
 * with a field cut at its cap. */
uint64_t gh_access_log_lines_lost(void);
uint64_t gh_access_log_lines_truncated(void);
/* Main thread: reopens the current path (log rotation). */
int gh_access_log_reopen(void);
void gh_access_log_close(void);

typedef struct {
    char *buf; /* GH_ACCESS_LOG_BUF bytes */
    size_t len;
} gh_access_log_buf_t;

#define GH_ACCESS_LOG_BUF (64 * 1024)

/* One request's fields; strings may be NULL (written as null). Byte
 * strings (path, query, user agent) are escaped for JSON here. Each string
 * is capped (docs/operations.md); a capped one is named in the line's
 * "truncated" list, so a line is never dropped for its length. */
typedef struct {
    uint64_t unix_ms;
    const char *request_id;
    const char *listener;
    const char *route;
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
    int status;
    uint64_t bytes_in, bytes_out;
    uint64_t duration_us;
    const char *upstream;
    int64_t upstream_duration_us; /* -1: none */
    const char *client;
    const char *user_agent;
    size_t user_agent_len;
    const char *principal;
    const char *consumer;
    const char *trace_id;
    const char *error;
    const char *filter; /* what a filter did (gh_stream_log_note), or NULL */
} gh_access_log_entry_t;

/* Worker: formats e with conf's fields into b, flushing b first when it
 * lacks room. */
void gh_access_log_append(gh_access_log_buf_t *b, const gh_access_log_conf_t *conf,
                          const gh_access_log_entry_t *e);
/* Worker: writes what b holds. */
void gh_access_log_flush(gh_access_log_buf_t *b);

#endif
