/* The fetch body buffer (gatehouse/sink.h). */
#include <gatehouse/sink.h>

#include <stdlib.h>
#include <string.h>

size_t gh_sink_write(char *p, size_t size, size_t n, void *arg)
{
    gh_sink_t *s = arg;
    size_t k = size * n;
    if (s->len + k > s->max) {
        s->too_big = 1;
        return 0;
    }
    char *nb = realloc(s->buf, s->len + k + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + s->len, p, k);
    s->buf = nb;
    s->len += k;
    s->buf[s->len] = '\0';
    return k;
}
