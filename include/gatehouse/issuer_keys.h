/*
 * The token issuer's signing keys and their rotation (docs/issuer.md#keys-and-rotation
 * for operators, with the timeline; docs/internals/issuer-keys.md for how).
 *
 * The keys live in a directory of the state directory (<state_dir>/issuer):
 * one PEM file per key (mode 0600), named by the key's kid, and a manifest
 * (keys.json) that gives each key its times:
 *
 *   publish_at  from then on the key is in the JWKS
 *   sign_from   from then on it signs (publish_at <= sign_from)
 *   sign_until  it signs no more (0: open; the newest key)
 *   retire_at   it leaves the JWKS (0 while it signs; else sign_until +
 *               the longest token lifetime + leeway)
 *
 * so that switching keys needs no reload: every reader picks the signing
 * key and the published set by its clock. Kids are RFC 7638 thumbprints
 * (SHA-256), checked against the key file when it is loaded.
 *
 * Three layers:
 *
 *   - the directory (blocking file I/O; the CLI, the admin API, server
 *     start): gh_issuer_keys_ensure, _rotate, _prune, _list. Writers are
 *     serialized by flock() on a lock file, so processes sharing the
 *     directory (two servers starting, a server and the CLI) never make two
 *     first keys or lose a rotation; files are written whole (temp file,
 *     fsync, rename) so a reader sees the old manifest or the new one.
 *
 *   - the key set: an immutable, refcounted snapshot of the directory
 *     (gh_issuer_keyset_t) that answers, for any time `now`, which key
 *     signs, the JWKS text to publish, and the gh_jwks_t that verifies
 *     tokens of this issuer (`issuer: self`). Any thread, no locks: what
 *     changes with time was computed when the set was loaded, per period
 *     between the keys' times.
 *
 *   - the watcher (main thread): loads the set, keeps the current one for
 *     workers, re-reads the directory when the manifest changes (polled
 *     every second, so every gatehouse sharing the directory follows a
 *     rotation made by any of them or by the CLI) or on
 *     gh_issuer_keys_reload (SIGHUP, an admin rotation), and prunes keys
 *     once they are retired.
 *
 * Every function takes the time (`now`, unix seconds) from its caller, so
 * that a rotation's whole timeline is tested without waiting.
 *
 * Errors: int functions return 0 (or a documented count) or a negative
 * errno, with a sentence in err (NUL-terminated, cut to cap). -ENOENT: no
 * manifest yet; -EINVAL: refused input or a corrupt directory (err says
 * which file and why); -EACCES: a file or the directory is open to group or
 * others; -EBUSY: another process holds the lock; -ENOSPC: too many keys
 * in rotation; -EIO and other errnos from the file system.
 */
#ifndef GATEHOUSE_ISSUER_KEYS_H
#define GATEHOUSE_ISSUER_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include <gatehouse/config.h>
#include <gatehouse/jwt.h>

/* RFC 7638 SHA-256 thumbprint in base64url: 43 characters. */
#define GH_ISSUER_KID_LEN 43
/* Keys a manifest may hold (published, signing and retiring ones): every
 * one is in the JWKS, so a runaway script cannot grow it without bound. */
#define GH_ISSUER_KEYS_MAX 16
/* The directory under the state directory, and its files. */
#define GH_ISSUER_KEYS_SUBDIR "issuer"
#define GH_ISSUER_KEYS_MANIFEST "keys.json"
#define GH_ISSUER_KEYS_LOCK "lock"

/* ---- settings ---- */

typedef struct {
    char *dir;             /* owned: "<state_dir>/issuer" */
    gh_jwt_alg_t alg;      /* of new keys: GH_JWT_ES256 (default), GH_JWT_RS256, GH_JWT_EDDSA */
    int rsa_bits;          /* 2048 (default), 3072 or 4096 */
    int64_t jwks_max_age;  /* s, the JWKS's Cache-Control max-age; default 300 */
    int64_t publish_lead;  /* s from publishing a key to signing with it; default 360, and
                              never below jwks_max_age (gh_issuer_keys_conf_check) */
    int64_t max_token_ttl; /* s, the longest lifetime of a token this process signs;
                              default 3600 */
    int64_t leeway;        /* s, the clock skew verifiers allow; default 60 */
} gh_issuer_keys_conf_t;

#define GH_ISSUER_DEFAULT_JWKS_MAX_AGE 300
#define GH_ISSUER_DEFAULT_PUBLISH_LEAD 360
#define GH_ISSUER_DEFAULT_MAX_TOKEN_TTL 3600
#define GH_ISSUER_DEFAULT_LEEWAY 60
/* Bounds of the settings (and of the manifest's copies of ttl and leeway). */
#define GH_ISSUER_MAX_TTL (366 * 86400)
#define GH_ISSUER_MAX_LEEWAY 3600
#define GH_ISSUER_MAX_LEAD (7 * 86400)

/* The defaults, with dir "<state_dir>/issuer" (state_dir NULL: the store's
 * default, "state"). Returns 0 or -ENOMEM. */
int gh_issuer_keys_conf_init(gh_issuer_keys_conf_t *c, const char *state_dir);
/* The settings a server running cfg uses: its state directory and, when it
 * has an `issuer` section, the section's alg, rsa_bits, jwks_max_age,
 * publish_lead, token_ttl and leeway (the defaults without one). For the
 * server and for `gatehouse keys -c FILE`, so that a rotation made by the
 * CLI keeps the lead and max-age the server publishes. 0 or -ENOMEM. */
int gh_issuer_keys_conf_from_config(gh_issuer_keys_conf_t *c, const gh_config_t *cfg);
void gh_issuer_keys_conf_dispose(gh_issuer_keys_conf_t *c);
/* Whether c may be used: a supported alg and RSA size, values within the
 * bounds above, publish_lead >= jwks_max_age (a verifier that cached the
 * JWKS just before a rotation must see the new key before any token
 * signed with it). Returns 0 or -EINVAL with err. */
int gh_issuer_keys_conf_check(const gh_issuer_keys_conf_t *c, char *err, size_t cap);
/* GH_JWT_ES256, GH_JWT_RS256 or GH_JWT_EDDSA from "ES256", "RS256",
 * "EdDSA"; GH_JWT_ALG_UNKNOWN for anything else. */
gh_jwt_alg_t gh_issuer_keys_alg(const char *name);

/* ---- a key's record ---- */

typedef struct {
    char kid[GH_ISSUER_KID_LEN + 1];
    gh_jwt_alg_t alg;
    int64_t created_at;
    int64_t publish_at;
    int64_t sign_from;
    int64_t sign_until; /* 0: open (the newest key) */
    int64_t retire_at;  /* 0: not scheduled */
} gh_issuer_key_info_t;

typedef enum {
    GH_ISSUER_KEY_PENDING = 0, /* now < publish_at (the writer's clock is ahead) */
    GH_ISSUER_KEY_PUBLISHED,   /* in the JWKS, not signing yet */
    GH_ISSUER_KEY_SIGNING,     /* in the JWKS and signing */
    GH_ISSUER_KEY_RETIRING,    /* in the JWKS, signs no more */
    GH_ISSUER_KEY_RETIRED,     /* out of the JWKS; deleted by the next prune */
} gh_issuer_key_state_t;

gh_issuer_key_state_t gh_issuer_key_state(const gh_issuer_key_info_t *k, int64_t now);
/* "pending", "published", "signing", "retiring", "retired". */
const char *gh_issuer_key_state_name(gh_issuer_key_state_t s);

/* The manifest: the directory's record of its keys, oldest first. */
typedef struct {
    int64_t max_token_ttl; /* the longest token lifetime any signer declared */
    int64_t leeway;        /* the largest leeway any signer declared */
    size_t n;
    gh_issuer_key_info_t keys[GH_ISSUER_KEYS_MAX];
} gh_issuer_manifest_t;

/* ---- the directory (blocking; not on a worker) ---- */

/*
 * Makes the directory (mode 0700, and the state directory above it when
 * missing) and the first key when there is no manifest: it signs at once
 * (no token exists that another key could have signed). Raises the
 * manifest's max_token_ttl and leeway to c's when they are lower, so that
 * the retirement of keys rotated later covers this process's tokens. With
 * a manifest that needs no change nothing is written and no lock is taken
 * (a read-only mount works). Returns 1 when it made the first key, 0 when
 * there was one already, or a negative errno.
 */
int gh_issuer_keys_ensure(const gh_issuer_keys_conf_t *c, int64_t now, char *err, size_t cap);

enum {
    /* Emergency (a key leaked): the new key signs at once, and every other
     * key is retired and deleted at once, so their tokens stop verifying
     * everywhere the directory is shared (within a second) and wherever
     * the JWKS is fetched (within its max-age). Verifiers that cached the
     * JWKS refuse the new key's tokens until they refetch it. */
    GH_ISSUER_ROTATE_NOW = 1,
};

typedef struct {
    gh_issuer_key_info_t added;
    int has_previous;              /* 0: the directory had no key (the first one was made) */
    gh_issuer_key_info_t previous; /* the key that signed until then, as updated */
    size_t pruned;                 /* retired keys deleted on the way */
} gh_issuer_rotate_result_t;

/*
 * Adds a key made for c->alg (c->rsa_bits) at now: published at once,
 * signing from now + c->publish_lead. The key that signed until then signs
 * until the new one starts, and retires max_token_ttl + leeway later (the
 * larger of c's and the manifest's). Retired keys are pruned on the way.
 * With no manifest, makes the first key as gh_issuer_keys_ensure does.
 * Waits up to 10 s for the lock (-EBUSY after). -ENOSPC when the manifest
 * would hold more than GH_ISSUER_KEYS_MAX keys (wait for one to retire).
 * out may be NULL.
 */
int gh_issuer_keys_rotate(const gh_issuer_keys_conf_t *c, unsigned flags, int64_t now,
                          gh_issuer_rotate_result_t *out, char *err, size_t cap);

/* Deletes the keys retired at now (manifest first, then their files), and
 * files a writer left behind (temp files, key files the manifest does not
 * name). wait 0: -EBUSY at once when another process holds the lock (the
 * watcher's call). Returns the number of keys deleted, or a negative errno. */
int gh_issuer_keys_prune(const char *dir, int64_t now, int wait, char *err, size_t cap);

/* Reads the manifest of dir (no key file is opened): for `keys list` and
 * GET /issuer/keys. -ENOENT when there is none yet. */
int gh_issuer_keys_list(const char *dir, gh_issuer_manifest_t *out, char *err, size_t cap);

/* The manifest as `keys list --json` and GET /issuer/keys show it:
 * {"max_token_ttl", "leeway", "keys": [{"kid", "alg", "state" (at now),
 * "created_at", "publish_at", "sign_from", "sign_until", "retire_at"}]},
 * times in unix seconds (0: not set). A new reference; NULL when out of
 * memory. */
json_t *gh_issuer_keys_json(const gh_issuer_manifest_t *m, int64_t now);
/* A rotation's result: {"added": key, "previous": key or null, "pruned": n},
 * each key as above. */
json_t *gh_issuer_rotate_json(const gh_issuer_rotate_result_t *r, int64_t now);

/* ---- the key set (immutable; any thread) ---- */

typedef struct gh_issuer_keyset_s gh_issuer_keyset_t;

/*
 * Loads dir as it is: the manifest, and the key file of every key not
 * retired at now. Refused, with err naming the file: a manifest that does
 * not parse or breaks the timeline's rules, a key file that is missing,
 * open to group or others (-EACCES, as ssh refuses such keys), not a key
 * for its alg, or whose thumbprint is not its kid. prev (borrowed, may be
 * NULL) is the set this one replaces: a published set with the same keys
 * keeps its JWKS generation, so verified-token caches survive a reload
 * that changed nothing they rely on. Returns a new set (one reference) or
 * NULL with *rc (may be NULL) set to the negative errno.
 */
gh_issuer_keyset_t *gh_issuer_keyset_load(const char *dir, int64_t now,
                                          const gh_issuer_keyset_t *prev, int *rc, char *err,
                                          size_t cap);
/* Atomic; any thread. ref returns set; unref of NULL is a no-op. */
gh_issuer_keyset_t *gh_issuer_keyset_ref(gh_issuer_keyset_t *set);
void gh_issuer_keyset_unref(gh_issuer_keyset_t *set);

/* The manifest the set was loaded from (borrowed). */
const gh_issuer_manifest_t *gh_issuer_keyset_manifest(const gh_issuer_keyset_t *set);

typedef struct {
    const gh_jwt_signing_key_t *key; /* borrowed from the set */
    const char *kid;                 /* borrowed */
    gh_jwt_alg_t alg;
    /* A token signed now must expire by then (exp <= max_exp); 0: no bound.
     * It is the key's retire_at - leeway: a token living longer would
     * outlive its key in the JWKS. Only a process whose token lifetime is
     * over the manifest's max_token_ttl ever meets it. */
    int64_t max_exp;
} gh_issuer_signer_t;

/* The key that signs at now: 0 and *out, or -ENOKEY when none does (only
 * before the first key's sign_from, when another host's clock is ahead). */
int gh_issuer_keyset_signer(const gh_issuer_keyset_t *set, int64_t now, gh_issuer_signer_t *out);

/* Signs payload (a JSON object's text, taken byte for byte) with s: the
 * header is {"alg":..,"kid":..,"typ":typ} (typ NULL: "JWT"; it must need
 * no JSON escaping). The payload's exp is the caller's: keep it <=
 * s->max_exp. Returns a new string (free()), or NULL with err. */
char *gh_issuer_signer_sign(const gh_issuer_signer_t *s, const char *typ, const char *payload,
                            size_t len, char *err, size_t cap);

/* The JWKS document published at now ({"keys":[...]}, public members, kid,
 * alg, "use":"sig"; compact JSON): every key with publish_at <= now <
 * retire_at. Borrowed from the set, never NULL ({"keys":[]} when none). */
const char *gh_issuer_keyset_jwks_json(const gh_issuer_keyset_t *set, int64_t now, size_t *len);

/* The same keys parsed for verification (`issuer: self`), or NULL when
 * none is published at now. Borrowed: gh_jwks_ref it to keep it past the
 * set. Its generation (gh_jwks_generation) is unique in the process and
 * changes exactly when the published keys do. */
gh_jwks_t *gh_issuer_keyset_jwks(const gh_issuer_keyset_t *set, int64_t now);

/* The first time after now at which the signer or the published keys
 * change, or 0 when they never will (for caches and timers). */
int64_t gh_issuer_keyset_next_change(const gh_issuer_keyset_t *set, int64_t now);

/* ---- the watcher (main thread) ---- */

typedef struct gh_issuer_keys_s gh_issuer_keys_t;

/*
 * Main thread: gh_issuer_keys_ensure, then the first load (both blocking),
 * then a poll of the manifest every second. c is copied. Returns NULL with
 * err when the directory cannot be made or does not load: a server must
 * not start without keys.
 */
gh_issuer_keys_t *gh_issuer_keys_start(uv_loop_t *loop, const gh_issuer_keys_conf_t *c, char *err,
                                       size_t cap);
/* Main thread: loads the directory now (SIGHUP; after an admin rotation). A
 * set that does not load never replaces the current one (logged). */
void gh_issuer_keys_reload(gh_issuer_keys_t *k);
/* Any thread: the current set, a new reference (never NULL once started). */
gh_issuer_keyset_t *gh_issuer_keys_get(gh_issuer_keys_t *k);
/* Any thread: bumped each time a new set is installed (1 after start). */
uint64_t gh_issuer_keys_generation(gh_issuer_keys_t *k);
/* Main thread: for /ready. 1 when the last load worked; else *why says why
 * the current set is an older one (text owned by k). */
int gh_issuer_keys_ok(gh_issuer_keys_t *k, const char **why);
/* Main thread: closes the handles (run the loop after); k is freed in
 * their close callbacks, with its set (workers' references stay valid). */
void gh_issuer_keys_stop(gh_issuer_keys_t *k);

/* ---- the process's watcher (main thread; src/issuer/current.c) ----
 *
 * The server chooses it at each config apply, like the store
 * (gatehouse/store.h): select makes the watcher the config's `issuer`
 * section asks for (started, or one already running with the same
 * settings), commit makes it the running one, rollback forgets a selection
 * whose config was refused. Filters read gh_issuer_current() while a
 * snapshot is made. */
void gh_issuer_current_init(uv_loop_t *main_loop);
/* 0, or -1 with err ("issuer: the signing keys in DIR do not load: ...").
 * A config without an issuer section selects none. */
int gh_issuer_current_select(const gh_config_t *cfg, char *err, size_t cap);
void gh_issuer_current_commit(void);
void gh_issuer_current_rollback(void);
/* The selected watcher (borrowed until gh_issuer_current_stop), or NULL
 * when the config has no issuer. */
gh_issuer_keys_t *gh_issuer_current(void);
/* The running config's key settings (the admin API's /issuer/keys), or
 * NULL. */
const gh_issuer_keys_conf_t *gh_issuer_current_conf(void);
/* SIGHUP and an admin rotation: reload the running watcher's directory. */
void gh_issuer_current_reload(void);
void gh_issuer_current_stop(void);
void gh_issuer_current_free(void);

#endif
