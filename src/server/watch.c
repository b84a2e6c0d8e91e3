/* The config file watch: a change of content reloads, as SIGHUP does. */
#include <stdlib.h>
#include <string.h>

#include <gatehouse/file.h>
#include <gatehouse/log.h>

#include "server/server.h"

static void on_debounce(uv_timer_t *t)
{
    server_t *sv = t->data;
    size_t len;
    if (sv->stopping)
        return;
    char *text = gh_file_read(sv->path, CONFIG_TEXT_MAX, &len);
    if (text == NULL)
        return; /* mid-replace; the rename's own event follows */
    if (sv->last_text != NULL && len == sv->last_len && memcmp(text, sv->last_text, len) == 0) {
        free(text);
        return;
    }
    free(sv->last_text);
    sv->last_text = text;
    sv->last_len = len;
    gh_server_reload(sv, "file changed");
}

/* Watches the directory, not the file: editors and Kubernetes replace the
 * file by rename, which a watch on the old inode would never see. Events
 * come in bursts, so a short debounce makes one reload out of them. */
static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    server_t *sv = h->data;
    (void)events;
    if (status < 0)
        return;
    const char *base = strrchr(sv->path, '/');
    base = base ? base + 1 : sv->path;
    /* Kubernetes updates a mounted ConfigMap by swapping a "..data"
     * symlink, so events under another name count too; the content
     * comparison in on_debounce drops the ones that change nothing. */
    if (filename != NULL && strcmp(filename, base) != 0 && strncmp(filename, "..", 2) != 0)
        return;
    uv_timer_start(&sv->debounce, on_debounce, 100, 0);
}

void gh_server_watch_start(server_t *sv)
{
    char dir[4096];
    const char *slash = strrchr(sv->path, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - sv->path);
        if (n == 0)
            n = 1;
        if (n >= sizeof(dir))
            return;
        memcpy(dir, sv->path, n);
        dir[n] = '\0';
    }
    uv_fs_event_init(&sv->loop, &sv->watch);
    uv_timer_init(&sv->loop, &sv->debounce);
    sv->watch.data = sv->debounce.data = sv;
    int r = uv_fs_event_start(&sv->watch, on_fs_event, dir, 0);
    if (r < 0)
        GH_LOG(GH_LOG_WARN, "config", "cannot watch %s for changes (%s); SIGHUP still reloads", dir,
               uv_strerror(r));
}
