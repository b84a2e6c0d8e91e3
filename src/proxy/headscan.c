#include "proxy/headscan.h"

#include <string.h>

int gh_head_scan(const char *buf, size_t len, size_t *scanned)
{
    size_t from = *scanned > 3 ? *scanned - 3 : 0;
    if (from > len)
        from = 0; /* the buffer shrank under us: start over */
    for (const char *p = buf + from, *end = buf + len; p < end;) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (lf == NULL)
            break;
        if (lf == buf || lf[-1] != '\r')
            return 1; /* bare LF: let the parser refuse it */
        if (lf - buf >= 3 && lf[-2] == '\n' && lf[-3] == '\r')
            return 1;
        p = lf + 1;
    }
    *scanned = len;
    return 0;
}
