#ifndef GATEHOUSE_FILE_H
#define GATEHOUSE_FILE_H

#include <errno.h>
#include <stddef.h>

/* Reads a whole file of at most max bytes into a new NUL-terminated buffer
 * (caller frees) and sets *len. NULL with errno set on failure (EFBIG when
 * the file is larger than max, GH_FILE_ENOTREG when it is not a regular
 * file: see gh_file_open). */
char *gh_file_read(const char *path, size_t max, size_t *len);

/* errno of a path that is not a regular file: opening a device node fails
 * with it too, so it means "not a regular file" wherever it comes from. */
#define GH_FILE_ENOTREG ENODEV

/* Opens a regular file for reading without ever blocking: the open is
 * O_NONBLOCK (a named pipe without a writer would hold the calling thread,
 * the main loop, until one came) and anything but a regular file is closed
 * again with errno GH_FILE_ENOTREG. Returns the descriptor (O_CLOEXEC) or
 * -1 with errno set. */
int gh_file_open(const char *path);

/* strerror(e), but "not a regular file" for what gh_file_open refuses. */
const char *gh_file_strerror(int e);

#endif
