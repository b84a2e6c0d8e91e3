/*
 * A real redis-server for unit tests: started on a free loopback port in
 * a temporary directory (no persistence), and stopped, killed, restarted
 * on the same port, paused (SIGSTOP) and resumed by the test.
 *
 * Nothing is mocked: if redis-server is not installed the start fails,
 * and so does the test (scripts/deps test installs it). GH_REDIS_SERVER
 * names another binary. The server dies with the test process
 * (PR_SET_PDEATHSIG), so a crashed test leaves no server behind.
 *
 * Header-only (static functions): include it from one test program.
 */
#ifndef GH_TEST_REDIS_SERVER_H
#define GH_TEST_REDIS_SERVER_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define RS_MAX_EXTRA 8

typedef struct {
    pid_t pid;
    int port;
    int paused;
    char dir[64];
    char bin[256];
    const char *extra[RS_MAX_EXTRA + 1]; /* more arguments, NULL-terminated */
} rs_t;

static inline int rs_find_bin(rs_t *r)
{
    const char *env = getenv("GH_REDIS_SERVER");
    if (env != NULL && env[0] != '\0') {
        snprintf(r->bin, sizeof(r->bin), "%s", env);
        return access(r->bin, X_OK) == 0 ? 0 : -1;
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s:/usr/bin:/usr/sbin:/usr/local/bin", path != NULL ? path : "");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d != NULL;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(r->bin, sizeof(r->bin), "%s/redis-server", d);
        if (access(r->bin, X_OK) == 0)
            return 0;
    }
    r->bin[0] = '\0';
    return -1;
}

/* A port nobody listens on now (the kernel's pick for port 0). */
static inline int rs_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline void rs_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* 1 when the server answers a PING (+PONG, or an error such as NOAUTH). */
static inline int rs_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = 0;
    if (fd < 0)
        return 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        write(fd, "*1\r\n$4\r\nPING\r\n", 14) == 14) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c;
        if (poll(&p, 1, 2000) == 1 && read(fd, &c, 1) == 1)
            ok = c == '+' || c == '-';
    }
    close(fd);
    return ok;
}

static inline int rs_spawn(rs_t *r)
{
    char port[16], log[96];
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    const char *argv[32] = {r->bin,      "--port",
                            port,        "--bind",
                            "127.0.0.1", "--save",
                            "",          "--appendonly",
                            "no",        "--dir",
                            r->dir,      "--logfile",
                            log,         "--daemonize",
                            "no",        "--protected-mode",
                            "no",        "--enable-debug-command",
                            "yes"};
    int n = 19;
    for (int i = 0; i < RS_MAX_EXTRA && r->extra[i] != NULL; i++)
        argv[n++] = r->extra[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Dies with the test; no output on the test's terminal. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) {
            dup2(dn, 0);
            dup2(dn, 1);
            dup2(dn, 2);
        }
        execv(r->bin, (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    r->paused = 0;
    /* Up to about 10 s (ASan, a loaded machine); a server that exits
     * (port taken) fails at once. */
    for (int i = 0; i < 1000; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            r->pid = 0;
            return -1;
        }
        if (rs_answers(r->port))
            return 0;
        rs_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    r->pid = 0;
    return -1;
}

static inline void rs_stop(rs_t *r);

/* extra: more redis-server arguments (borrowed, NULL-terminated), or NULL.
 * 0, or -1 with a reason on stderr. */
static inline int rs_start(rs_t *r, const char *const *extra)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; extra != NULL && extra[i] != NULL && i < RS_MAX_EXTRA; i++)
        r->extra[i] = extra[i];
    if (rs_find_bin(r) < 0) {
        fprintf(stderr, "redis-server not found (run scripts/deps test)\n");
        return -1;
    }
    snprintf(r->dir, sizeof(r->dir), "/tmp/gh-redis-XXXXXX");
    if (mkdtemp(r->dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = rs_free_port();
        if (r->port > 0 && rs_spawn(r) == 0)
            return 0;
    }
    fprintf(stderr, "redis-server did not start on 127.0.0.1\n");
    rs_stop(r);
    return -1;
}

static inline void rs_resume(rs_t *r)
{
    if (r->pid > 0 && r->paused) {
        kill(r->pid, SIGCONT);
        r->paused = 0;
    }
}

/* The process stops (SIGSTOP): its kernel still accepts connections and
 * buffers what is sent, but nothing is answered. */
static inline void rs_pause(rs_t *r)
{
    if (r->pid > 0 && !r->paused) {
        kill(r->pid, SIGSTOP);
        r->paused = 1;
    }
}

/* SIGKILL: the server goes away at once (its sockets are closed). */
static inline void rs_kill(rs_t *r)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
    r->paused = 0;
}

/* A new server on the same port (empty: nothing persisted). */
static inline int rs_restart(rs_t *r)
{
    rs_kill(r);
    for (int i = 0; i < 100; i++) {
        if (rs_spawn(r) == 0)
            return 0;
        rs_sleep_ms(50); /* the port may still be held for a moment */
    }
    return -1;
}

static inline void rs_stop(rs_t *r)
{
    if (r->pid > 0) {
        rs_resume(r);
        kill(r->pid, SIGTERM);
        int st;
        int done = 0;
        for (int i = 0; i < 500 && !done; i++) {
            if (waitpid(r->pid, &st, WNOHANG) == r->pid)
                done = 1;
            else
                rs_sleep_ms(10);
        }
        if (!done) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
        }
        r->pid = 0;
    }
    if (r->dir[0] != '\0') {
        DIR *d = opendir(r->dir);
        if (d != NULL) {
            struct dirent *e;
            char p[512];
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                snprintf(p, sizeof(p), "%s/%s", r->dir, e->d_name);
                unlink(p);
            }
            closedir(d);
        }
        rmdir(r->dir);
        r->dir[0] = '\0';
    }
}

#endif
