#include <gatehouse/log.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

gh_log_level_t gh_log_threshold = GH_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void gh_log(gh_log_level_t level, const char *component, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 level_names[level], component);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* Messages carry text from the network (a JWKS host's answer, a
     * client's bytes): a control byte there must not start a forged line. */
    for (char *c = line + n; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    /* One fputs per line: stdio locks the stream, so lines from workers
     * never interleave. */
    size_t len = strlen(line);
    if (len < sizeof(line) - 1) {
        line[len] = '\n';
        line[len + 1] = '\0';
    } else {
        line[sizeof(line) - 2] = '\n';
    }
    fputs(line, stderr);
}
