#ifndef GATEHOUSE_FILE_H
#define GATEHOUSE_FILE_H

#include <stddef.h>

/* Reads a whole file of at most max bytes into a new NUL-terminated buffer
 * (caller frees) and sets *len. NULL with errno set on failure (EFBIG when
 * the file is larger than max). */
char *gh_file_read(const char *path, size_t max, size_t *len);

#endif
