/*
 * One logging call. Lines go to stderr as "time level component: message".
 * Every caller names its component and, on the request path, the connection
 * or request id in the message. Secrets never reach this function: callers
 * pass gh_log_mask() output for anything token-like.
 */
#ifndef GATEHOUSE_LOG_H
#define GATEHOUSE_LOG_H

typedef enum {
    GH_LOG_ERROR = 0,
    GH_LOG_WARN,
    GH_LOG_INFO,
    GH_LOG_DEBUG,
} gh_log_level_t;

extern gh_log_level_t gh_log_threshold;

void gh_log(gh_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define GH_LOG(level, comp, ...)                                                                   \
    do {                                                                                           \
        if ((level) <= gh_log_threshold)                                                           \
            gh_log((level), (comp), __VA_ARGS__);                                                  \
    } while (0)

#endif
