/*
 * The directory of the issuer's keys: reading it with the checks a private
 * key's files deserve, and changing it (first key, rotation, pruning) so
 * that processes sharing it agree.
 *
 * Writers take flock() on the lock file for their whole read-modify-write,
 * so two rotations never both start from the same manifest, and two
 * servers starting together make one first key. Every file is written to
 * a temp file, fsync'd and renamed into place, and the directory fsync'd:
 * a reader (which takes no lock) sees the old manifest or the new one,
 * never half of one, and a crash leaves one or the other. A key file is
 * always in place before the manifest that names it, and a manifest stops
 * naming a key before its file goes, so a reader never meets a manifest
 * naming a file that was deleted (but for the race of reading the
 * manifest just before a prune: the loader reads again when the manifest
 * changed under it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/rand.h>

#include "issuer/keys_internal.h"

#define LOCK_WAIT_MS 10000
#define TMP_PREFIX ".tmp."

/* ---- reading ---- */

/* As ssh's StrictModes: a key file, the manifest or the directory owned by
 * another user than the one gatehouse runs as (or root) is that user's to
 * change, mode bits or not. */
static int owner_ok(const struct stat *st)
{
    return st->st_uid == geteuid() || st->st_uid == 0;
}

int gh_issuer_dir_open(const char *dir, char *err, size_t cap)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        gh_issuer_seterr(err, cap, "cannot open the key directory %s: %s", dir, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        gh_issuer_seterr(err, cap, "%s: %s", dir, strerror(e));
        return -e;
    }
    /* Whoever may write the directory may put their own key and manifest
     * in it, and have their tokens accepted. */
    if (!owner_ok(&st)) {
        close(fd);
        gh_issuer_seterr(err, cap,
                         "the key directory %s belongs to uid %u, not to the user gatehouse runs "
                         "as (uid %u) or root: that user could put its own keys in it",
                         dir, (unsigned)st.st_uid, (unsigned)geteuid());
        return -EACCES;
    }
    if (st.st_mode & 022) {
        close(fd);
        gh_issuer_seterr(err, cap,
                         "the key directory %s is writable by group or others (mode %04o): "
                         "chmod 700 it",
                         dir, (unsigned)(st.st_mode & 07777));
        return -EACCES;
    }
    return fd;
}

/* Opens name in dirfd for reading: a regular file (O_NONBLOCK: a FIFO put
 * there must not hold the caller), at most max bytes, none of whose mode
 * bits in `forbidden` are set. Reads it whole into a new NUL-terminated
 * buffer. NULL with *rc and err. */
static char *read_checked(int dirfd, const char *dir, const char *name, size_t max,
                          mode_t forbidden, const char *fix, size_t *len, int *rc, char *err,
                          size_t cap)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) != 0) {
        *rc = -errno;
        gh_issuer_seterr(err, cap, "%s/%s: %s", dir, name, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        *rc = -EINVAL;
        gh_issuer_seterr(err, cap, "%s/%s is not a regular file", dir, name);
        goto out;
    }
    if (!owner_ok(&st)) {
        *rc = -EACCES;
        gh_issuer_seterr(err, cap,
                         "%s/%s belongs to uid %u, not to the user gatehouse runs as "
                         "(uid %u) or root",
                         dir, name, (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    if (st.st_mode & forbidden) {
        *rc = -EACCES;
        gh_issuer_seterr(err, cap, "%s/%s is open to group or others (mode %04o): %s", dir, name,
                         (unsigned)(st.st_mode & 07777), fix);
        goto out;
    }
    if ((size_t)st.st_size > max) {
        *rc = -EINVAL;
        gh_issuer_seterr(err, cap, "%s/%s is larger than %zu bytes", dir, name, max);
        goto out;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        *rc = -ENOMEM;
        gh_issuer_seterr(err, cap, "out of memory");
        goto out;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *rc = -errno;
            gh_issuer_seterr(err, cap, "%s/%s: %s", dir, name, strerror(errno));
            free(buf);
            buf = NULL;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            *rc = -EINVAL;
            gh_issuer_seterr(err, cap, "%s/%s is larger than %zu bytes", dir, name, max);
            free(buf);
            buf = NULL;
            goto out;
        }
    }
    buf[n] = '\0';
    *len = n;
out:
    if (fd >= 0)
        close(fd);
    return buf;
}

int gh_issuer_manifest_read(int dirfd, const char *dir, gh_issuer_manifest_t *out, char *err,
                            size_t cap)
{
    size_t len = 0;
    int rc = 0;
    char why[400];
    char *text = read_checked(dirfd, dir, GH_ISSUER_KEYS_MANIFEST, GH_ISSUER_MANIFEST_MAX, 022,
                              "chmod 600 it", &len, &rc, err, cap);
    if (text == NULL)
        return rc;
    rc = gh_issuer_manifest_parse(text, len, out, why, sizeof(why));
    free(text);
    if (rc != 0)
        gh_issuer_seterr(err, cap, "%s/%s: %s", dir, GH_ISSUER_KEYS_MANIFEST, why);
    return rc;
}

gh_jwt_signing_key_t *gh_issuer_key_read(int dirfd, const char *dir, const char *kid,
                                         gh_jwt_alg_t alg, int *rc, char *err, size_t cap)
{
    char name[GH_ISSUER_KID_LEN + 8], why[200], got[GH_ISSUER_KID_LEN + 1];
    size_t len = 0;
    if (!gh_issuer_kid_valid(kid)) {
        *rc = -EINVAL;
        gh_issuer_seterr(err, cap, "not a kid");
        return NULL;
    }
    snprintf(name, sizeof(name), "%s.pem", kid);
    /* As ssh does with private keys: a key others can read is a key
     * others may have, and signing with it would hide that. */
    char *pem =
        read_checked(dirfd, dir, name, GH_ISSUER_PEM_MAX, 077, "chmod 600 it", &len, rc, err, cap);
    if (pem == NULL) {
        if (*rc == -ENOENT)
            gh_issuer_seterr(err, cap, "%s/%s names key %s, whose file %s is missing", dir,
                             GH_ISSUER_KEYS_MANIFEST, kid, name);
        return NULL;
    }
    gh_jwt_signing_key_t *key = gh_jwt_signing_key_load_pem(pem, len, why, sizeof(why));
    OPENSSL_cleanse(pem, len);
    free(pem);
    json_t *jwk = NULL;
    if (key == NULL) {
        *rc = -EINVAL;
        gh_issuer_seterr(err, cap, "%s/%s: %s", dir, name, why);
    } else if (!gh_issuer_key_fits(key, alg)) {
        *rc = -EINVAL;
        gh_issuer_seterr(err, cap, "%s/%s is not a key for %s", dir, name, gh_jwt_alg_name(alg));
    } else if ((jwk = gh_issuer_public_jwk(key, NULL, GH_JWT_ALG_UNKNOWN, got, why, sizeof(why))) ==
               NULL) {
        *rc = -EINVAL;
        gh_issuer_seterr(err, cap, "%s/%s: %s", dir, name, why);
    } else if (strcmp(got, kid) != 0) {
        /* A file swapped for another key's would sign with a kid that
         * names a different public key: every token refused. */
        *rc = -EINVAL;
        gh_issuer_seterr(err, cap, "%s/%s holds another key (thumbprint %s)", dir, name, got);
    } else {
        json_decref(jwk);
        return key;
    }
    json_decref(jwk);
    gh_jwt_signing_key_free(key);
    return NULL;
}

int gh_issuer_keys_list(const char *dir, gh_issuer_manifest_t *out, char *err, size_t cap)
{
    int dfd = gh_issuer_dir_open(dir, err, cap);
    if (dfd < 0)
        return dfd;
    int rc = gh_issuer_manifest_read(dfd, dir, out, err, cap);
    close(dfd);
    return rc;
}

/* ---- writing ---- */

static int fsync_dir(int dirfd, const char *dir, char *err, size_t cap)
{
    if (fsync(dirfd) != 0 && errno != EINVAL) {
        int e = errno;
        gh_issuer_seterr(err, cap, "%s: fsync: %s", dir, strerror(e));
        return -e;
    }
    return 0;
}

/* Writes data as name in dirfd, whole or not at all: a temp file (0600),
 * fsync'd, then renamed over name (exclusive: linked, so that an existing
 * name is never replaced: -EEXIST). */
static int write_atomic(int dirfd, const char *dir, const char *name, const void *data, size_t len,
                        int exclusive, char *err, size_t cap)
{
    char tmp[128];
    unsigned char rnd[6];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0, sizeof(rnd));
    snprintf(tmp, sizeof(tmp), TMP_PREFIX "%ld.%02x%02x%02x%02x%02x%02x", (long)getpid(), rnd[0],
             rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
        gh_issuer_seterr(err, cap, "%s: cannot create a file: %s", dir, strerror(errno));
        return rc;
    }
    /* The umask may have taken bits away, never added: 0600 exactly. */
    const char *p = data;
    size_t left = len;
    if (fchmod(fd, 0600) != 0)
        rc = -errno;
    while (rc == 0 && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0) {
        if (exclusive) {
            if (linkat(dirfd, tmp, dirfd, name, 0) != 0)
                rc = -errno;
            unlinkat(dirfd, tmp, 0);
        } else if (renameat(dirfd, tmp, dirfd, name) != 0) {
            rc = -errno;
        }
    }
    if (rc != 0) {
        unlinkat(dirfd, tmp, 0);
        if (rc != -EEXIST)
            gh_issuer_seterr(err, cap, "%s/%s: cannot write: %s", dir, name, strerror(-rc));
        return rc;
    }
    return fsync_dir(dirfd, dir, err, cap);
}

/* Takes the directory's lock: waits up to LOCK_WAIT_MS when wait, else
 * -EBUSY at once. Returns the lock's descriptor (close it to unlock). */
static int lock_take(int dirfd, const char *dir, int wait, char *err, size_t cap)
{
    int fd = openat(dirfd, GH_ISSUER_KEYS_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        gh_issuer_seterr(err, cap, "%s/%s: cannot open the lock: %s", dir, GH_ISSUER_KEYS_LOCK,
                         strerror(e));
        return -e;
    }
    for (int waited = 0;; waited += 20) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK) {
            int e = errno;
            close(fd);
            gh_issuer_seterr(err, cap, "%s/%s: flock: %s", dir, GH_ISSUER_KEYS_LOCK, strerror(e));
            return -e;
        }
        if (!wait || waited >= LOCK_WAIT_MS) {
            close(fd);
            gh_issuer_seterr(err, cap,
                             "another process is changing the keys in %s (it holds %s/%s)", dir,
                             dir, GH_ISSUER_KEYS_LOCK);
            return -EBUSY;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* mkdir that accepts an existing directory. */
static int make_dir(const char *path, char *err, size_t cap)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    int e = errno;
    gh_issuer_seterr(err, cap, "cannot make the directory %s: %s", path, strerror(e));
    return -e;
}

/* The directory, made when missing (with the state directory above it). */
static int dir_prepare(const char *dir, char *err, size_t cap)
{
    char *parent = strdup(dir);
    if (parent == NULL) {
        gh_issuer_seterr(err, cap, "out of memory");
        return -ENOMEM;
    }
    char *slash = strrchr(parent, '/');
    int rc = 0;
    if (slash != NULL && slash != parent) {
        *slash = '\0';
        rc = make_dir(parent, err, cap);
    }
    free(parent);
    if (rc == 0)
        rc = make_dir(dir, err, cap);
    return rc < 0 ? rc : gh_issuer_dir_open(dir, err, cap);
}

/* A new key for c, written to dirfd as "<kid>.pem"; its record in *info.
 * The caller holds the lock. */
static int key_make(const gh_issuer_keys_conf_t *c, int dirfd, int64_t now,
                    gh_issuer_key_info_t *info, char *err, size_t cap)
{
    char why[200], name[GH_ISSUER_KID_LEN + 8];
    gh_jwt_signing_key_t *key = gh_jwt_signing_key_generate(
        c->alg, c->alg == GH_JWT_RS256 ? c->rsa_bits : 0, why, sizeof(why));
    if (key == NULL) {
        gh_issuer_seterr(err, cap, "cannot make a %s key: %s", gh_jwt_alg_name(c->alg), why);
        return -EIO;
    }
    memset(info, 0, sizeof(*info));
    json_t *jwk = gh_issuer_public_jwk(key, NULL, GH_JWT_ALG_UNKNOWN, info->kid, why, sizeof(why));
    BIO *bio = jwk ? BIO_new(BIO_s_secmem()) : NULL;
    char *pem = NULL;
    long plen = 0;
    int rc = -ENOMEM;
    json_decref(jwk);
    if (bio == NULL ||
        !PEM_write_bio_PrivateKey(bio, gh_jwt_signing_key_pkey(key), NULL, NULL, 0, NULL, NULL) ||
        (plen = BIO_get_mem_data(bio, &pem)) <= 0) {
        gh_issuer_seterr(err, cap, "cannot write the new key as PEM");
        goto out;
    }
    snprintf(name, sizeof(name), "%s.pem", info->kid);
    rc = write_atomic(dirfd, c->dir, name, pem, (size_t)plen, 1, err, cap);
    if (rc == -EEXIST)
        gh_issuer_seterr(err, cap, "%s/%s exists already", c->dir, name);
    info->alg = c->alg;
    info->created_at = info->publish_at = info->sign_from = now;
out:
    BIO_free(bio);
    gh_jwt_signing_key_free(key);
    return rc;
}

static int manifest_write(int dirfd, const char *dir, const gh_issuer_manifest_t *m, int exclusive,
                          char *err, size_t cap)
{
    char why[300];
    if (gh_issuer_manifest_check(m, why, sizeof(why)) != 0) {
        /* A bug, not an input: never write what the loader would refuse. */
        gh_issuer_seterr(err, cap, "refusing to write a manifest that breaks its rules: %s", why);
        return -EINVAL;
    }
    char *text = gh_issuer_manifest_dump(m);
    if (text == NULL) {
        gh_issuer_seterr(err, cap, "out of memory");
        return -ENOMEM;
    }
    int rc =
        write_atomic(dirfd, dir, GH_ISSUER_KEYS_MANIFEST, text, strlen(text), exclusive, err, cap);
    free(text);
    return rc;
}

static void unlink_key(int dirfd, const char *kid)
{
    char name[GH_ISSUER_KID_LEN + 8];
    snprintf(name, sizeof(name), "%.*s.pem", GH_ISSUER_KID_LEN, kid);
    unlinkat(dirfd, name, 0);
}

/* Removes the keys retired at now from m; their kids into gone[]. */
static size_t drop_retired(gh_issuer_manifest_t *m, int64_t now, char gone[][GH_ISSUER_KID_LEN + 1])
{
    size_t kept = 0, n = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (gh_issuer_key_state(&m->keys[i], now) == GH_ISSUER_KEY_RETIRED)
            memcpy(gone[n++], m->keys[i].kid, GH_ISSUER_KID_LEN + 1);
        else
            m->keys[kept++] = m->keys[i];
    }
    m->n = kept;
    return n;
}

/* Under the lock: deletes temp files a writer left (every writer holds the
 * lock while its temp file exists) and key files m does not name (a key
 * written by a rotation that died before its manifest). */
static void sweep(int dirfd, const gh_issuer_manifest_t *m)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        if (strncmp(n, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0) {
            unlinkat(dirfd, n, 0);
            continue;
        }
        if (len != GH_ISSUER_KID_LEN + 4 || strcmp(n + GH_ISSUER_KID_LEN, ".pem") != 0)
            continue;
        char kid[GH_ISSUER_KID_LEN + 1];
        memcpy(kid, n, GH_ISSUER_KID_LEN);
        kid[GH_ISSUER_KID_LEN] = '\0';
        if (!gh_issuer_kid_valid(kid))
            continue;
        int named = 0;
        for (size_t i = 0; i < m->n && !named; i++)
            named = strcmp(m->keys[i].kid, kid) == 0;
        if (!named)
            unlinkat(dirfd, n, 0);
    }
    closedir(d);
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Under the lock, with no manifest: the first key, signing at once. */
static int first_key(const gh_issuer_keys_conf_t *c, int dirfd, int64_t now,
                     gh_issuer_key_info_t *info, char *err, size_t cap)
{
    gh_issuer_manifest_t m;
    memset(&m, 0, sizeof(m));
    m.max_token_ttl = c->max_token_ttl;
    m.leeway = c->leeway;
    m.n = 1;
    int rc = key_make(c, dirfd, now, &m.keys[0], err, cap);
    /* Linked, not renamed: should a manifest have appeared (a process that
     * does not take the lock), it is kept and this key swept later. */
    if (rc == 0)
        rc = manifest_write(dirfd, c->dir, &m, 1, err, cap);
    if (rc == -EEXIST)
        unlink_key(dirfd, m.keys[0].kid);
    if (rc == 0 && info != NULL)
        *info = m.keys[0];
    return rc;
}

int gh_issuer_keys_ensure(const gh_issuer_keys_conf_t *c, int64_t now, char *err, size_t cap)
{
    gh_issuer_manifest_t m;
    int rc = gh_issuer_keys_conf_check(c, err, cap);
    if (rc != 0)
        return rc;
    int dfd = dir_prepare(c->dir, err, cap);
    if (dfd < 0)
        return dfd;
    /* The common case, without the lock: a manifest that needs nothing. */
    rc = gh_issuer_manifest_read(dfd, c->dir, &m, err, cap);
    if (rc == 0 && m.max_token_ttl >= c->max_token_ttl && m.leeway >= c->leeway)
        goto out;
    if (rc != 0 && rc != -ENOENT)
        goto out;
    int lfd = lock_take(dfd, c->dir, 1, err, cap);
    if (lfd < 0) {
        rc = lfd;
        goto out;
    }
    rc = gh_issuer_manifest_read(dfd, c->dir, &m, err, cap);
    if (rc == -ENOENT) {
        rc = first_key(c, dfd, now, NULL, err, cap);
        if (rc == 0)
            rc = 1;
    } else if (rc == 0 && (m.max_token_ttl < c->max_token_ttl || m.leeway < c->leeway)) {
        m.max_token_ttl = max64(m.max_token_ttl, c->max_token_ttl);
        m.leeway = max64(m.leeway, c->leeway);
        rc = manifest_write(dfd, c->dir, &m, 0, err, cap);
    }
    close(lfd);
out:
    close(dfd);
    return rc;
}

int gh_issuer_keys_rotate(const gh_issuer_keys_conf_t *c, unsigned flags, int64_t now,
                          gh_issuer_rotate_result_t *out, char *err, size_t cap)
{
    gh_issuer_rotate_result_t res;
    gh_issuer_manifest_t m;
    char gone[GH_ISSUER_KEYS_MAX][GH_ISSUER_KID_LEN + 1];
    int emergency = (flags & GH_ISSUER_ROTATE_NOW) != 0;
    memset(&res, 0, sizeof(res));
    int rc = gh_issuer_keys_conf_check(c, err, cap);
    if (rc != 0)
        return rc;
    int dfd = dir_prepare(c->dir, err, cap);
    if (dfd < 0)
        return dfd;
    int lfd = lock_take(dfd, c->dir, 1, err, cap);
    if (lfd < 0) {
        close(dfd);
        return lfd;
    }
    rc = gh_issuer_manifest_read(dfd, c->dir, &m, err, cap);
    if (rc == -ENOENT) {
        rc = first_key(c, dfd, now, &res.added, err, cap);
        goto out;
    }
    if (rc != 0)
        goto out;
    m.max_token_ttl = max64(m.max_token_ttl, c->max_token_ttl);
    m.leeway = max64(m.leeway, c->leeway);
    size_t open = m.n;
    for (size_t i = 0; i < m.n; i++)
        if (m.keys[i].sign_until == 0)
            open = i;
    res.has_previous = 1;
    gh_issuer_key_info_t *cur = &m.keys[open]; /* the manifest's rules: there is one */
    /* Never before a time the manifest already gave away: a writer whose
     * clock is behind the last one's (another host, a clock set back) must
     * not start the new key inside an older key's signing window. */
    int64_t sign_from = emergency ? now : now + c->publish_lead;
    for (size_t i = 0; !emergency && i < m.n; i++)
        sign_from = max64(sign_from, max64(m.keys[i].sign_from, m.keys[i].sign_until));
    /* The key that signed until now signs until the new one starts (never
     * less than nothing: a key rotated away before it started, by a
     * rotation within the lead of the last one, never signs). */
    cur->sign_until = max64(sign_from, cur->sign_from);
    cur->retire_at = emergency ? now : cur->sign_until + m.max_token_ttl + m.leeway;
    res.previous = *cur;
    if (emergency) {
        /* Every key goes now, whatever it signed: a leaked directory leaks
         * them all, and their tokens must stop verifying. */
        for (size_t i = 0; i < m.n; i++)
            memcpy(gone[i], m.keys[i].kid, GH_ISSUER_KID_LEN + 1);
        res.pruned = m.n;
        m.n = 0;
    } else {
        res.pruned = drop_retired(&m, now, gone);
    }
    if (m.n >= GH_ISSUER_KEYS_MAX) {
        gh_issuer_seterr(err, cap,
                         "%zu keys are in rotation already (at most %d): wait until one retires, "
                         "or rotate with --now",
                         m.n, GH_ISSUER_KEYS_MAX);
        rc = -ENOSPC;
        goto out;
    }
    gh_issuer_key_info_t *k = &m.keys[m.n];
    if ((rc = key_make(c, dfd, now, k, err, cap)) != 0)
        goto out;
    k->sign_from = sign_from;
    m.n++;
    if ((rc = manifest_write(dfd, c->dir, &m, 0, err, cap)) != 0) {
        unlink_key(dfd, k->kid);
        goto out;
    }
    res.added = *k;
    for (size_t i = 0; i < res.pruned; i++)
        unlink_key(dfd, gone[i]);
    sweep(dfd, &m);
    fsync_dir(dfd, c->dir, NULL, 0);
out:
    close(lfd);
    close(dfd);
    if (rc == 0 && out != NULL)
        *out = res;
    return rc;
}

int gh_issuer_keys_prune(const char *dir, int64_t now, int wait, char *err, size_t cap)
{
    gh_issuer_manifest_t m;
    char gone[GH_ISSUER_KEYS_MAX][GH_ISSUER_KID_LEN + 1];
    int dfd = gh_issuer_dir_open(dir, err, cap);
    if (dfd < 0)
        return dfd;
    int lfd = lock_take(dfd, dir, wait, err, cap);
    if (lfd < 0) {
        close(dfd);
        return lfd;
    }
    int rc = gh_issuer_manifest_read(dfd, dir, &m, err, cap);
    if (rc != 0)
        goto out;
    size_t n = drop_retired(&m, now, gone);
    if (n > 0 && (rc = manifest_write(dfd, dir, &m, 0, err, cap)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        unlink_key(dfd, gone[i]);
    sweep(dfd, &m);
    fsync_dir(dfd, dir, NULL, 0);
    rc = (int)n;
out:
    close(lfd);
    close(dfd);
    return rc;
}
