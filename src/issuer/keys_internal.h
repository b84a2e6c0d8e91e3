/*
 * Internals shared by the files of the issuer's keys, one job each:
 *   manifest.c  the manifest's strict parser and its writer, the timeline's
 *               rules, RFC 7638 thumbprints;
 *   keydir.c    the directory: lock, atomic writes, permission checks,
 *               ensure, rotate, prune, list;
 *   keyset.c    the loaded, immutable key set and its periods;
 *   keywatch.c  the main thread's watcher.
 * Nothing here is public: include/gatehouse/issuer_keys.h is the API.
 */
#ifndef GATEHOUSE_ISSUER_KEYS_INTERNAL_H
#define GATEHOUSE_ISSUER_KEYS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <gatehouse/issuer_keys.h>

/* A manifest is small: 16 keys of about 250 bytes. */
#define GH_ISSUER_MANIFEST_MAX (64 * 1024)
/* A PEM private key: RSA 4096 is about 3.3 KB. */
#define GH_ISSUER_PEM_MAX (16 * 1024)
#define GH_ISSUER_MANIFEST_VERSION 1

/* Parses and checks a manifest (a fuzz target's entry point): strict JSON
 * (no duplicate names, no NUL), every member known and typed, times in
 * [0, 253402300799], kids RFC 7638 thumbprints in form, and the timeline's
 * rules (gh_issuer_manifest_check). Returns 0 or -EINVAL with err. */
int gh_issuer_manifest_parse(const char *text, size_t len, gh_issuer_manifest_t *out, char *err,
                             size_t cap);
/* The timeline's rules: 1..GH_ISSUER_KEYS_MAX keys, distinct kids,
 * publish_at <= sign_from, sign_until 0 or >= sign_from, retire_at 0 exactly
 * when sign_until is 0 and else >= sign_until, exactly one open key, and
 * signing windows that do not overlap. 0 or -EINVAL with err. */
int gh_issuer_manifest_check(const gh_issuer_manifest_t *m, char *err, size_t cap);
/* The manifest as indented JSON ending in a newline: a new string (free()),
 * NULL when out of memory. */
char *gh_issuer_manifest_dump(const gh_issuer_manifest_t *m);

/* Whether s (NUL-terminated) has a thumbprint's form: 43 base64url
 * characters (so it is also a safe file name). */
int gh_issuer_kid_valid(const char *s);

/* RFC 7638 SHA-256 thumbprint of a public JWK (an object with kty and its
 * required members) into out (GH_ISSUER_KID_LEN + 1). 0 or -EINVAL. */
int gh_issuer_jwk_thumbprint(json_t *jwk, char *out);
/* The public JWK of a signing key (a new reference; kid and alg when
 * given) and its thumbprint into kid_out (may be NULL). NULL with err. */
json_t *gh_issuer_public_jwk(const gh_jwt_signing_key_t *key, const char *kid, gh_jwt_alg_t alg,
                             char *kid_out, char *err, size_t cap);

/* Whether key is a key for alg (RSA of at least 2048 bits for RS256, P-256
 * for ES256, Ed25519 for EdDSA). */
int gh_issuer_key_fits(const gh_jwt_signing_key_t *key, gh_jwt_alg_t alg);

/* Formats err (never NULL when cap > 0). */
void gh_issuer_seterr(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads dir's manifest: the open directory's fd, the text checked for
 * permissions (not writable by group or others) and size, parsed. 0,
 * -ENOENT, or another negative errno with err. */
int gh_issuer_manifest_read(int dirfd, const char *dir, gh_issuer_manifest_t *out, char *err,
                            size_t cap);
/* Opens dir (O_DIRECTORY) and checks it is not writable by group or
 * others. The descriptor, or a negative errno with err. */
int gh_issuer_dir_open(const char *dir, char *err, size_t cap);
/* Reads "<kid>.pem" of dirfd: a regular file of mode 0600 or stricter,
 * holding a private key that fits alg and whose thumbprint is kid. Returns
 * the key, or NULL with *rc and err. */
gh_jwt_signing_key_t *gh_issuer_key_read(int dirfd, const char *dir, const char *kid,
                                         gh_jwt_alg_t alg, int *rc, char *err, size_t cap);

#endif
