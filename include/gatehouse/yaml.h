/*
 * A small layer over libyaml for the config loaders: one document becomes a
 * tree of nodes that remember where they were written, and every error is
 * formatted "file:line:col: message" (1-based, as editors count).
 *
 * The tree is deliberately plain YAML without the clever parts: aliases are
 * refused (a shared node walked once per reference is how "billion laughs"
 * inputs blow up, and a gateway config gains little from them), only one
 * document is allowed, nesting is limited to GH_YAML_MAX_DEPTH, mapping keys
 * must be scalars and a repeated key is an error. Tags are ignored: the
 * schema, not the YAML resolver, decides what a scalar means.
 *
 * Each config section (core, auth, issuer, ...) parses its own part of the
 * tree with the helpers below, so that all of them report errors the same way.
 */
#ifndef GATEHOUSE_YAML_H
#define GATEHOUSE_YAML_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/config.h>

#define GH_YAML_MAX_DEPTH 64
/* Caps on what one document may cost to load (docs/config.md): its size,
 * and the number of nodes (each scalar, list and mapping is one). */
#define GH_YAML_MAX_BYTES (16u << 20)
#define GH_YAML_MAX_NODES 200000u
/* The longest duration any key accepts (7 days): a larger value only
 * overflows the timers it feeds. Keys with a tighter bound use
 * gh_yaml_duration_max. */
#define GH_YAML_DURATION_MAX (7ULL * 24 * 60 * 60 * 1000)

typedef enum {
    GH_YAML_SCALAR = 0,
    GH_YAML_SEQ,
    GH_YAML_MAP,
} gh_yaml_kind_t;

typedef struct gh_yaml_node_s gh_yaml_node_t;

struct gh_yaml_node_s {
    gh_yaml_kind_t kind;
    uint32_t line; /* 1-based */
    uint32_t col;  /* 1-based, in characters */

    /* scalars: NUL-terminated; len counts bytes and may include a NUL that
     * YAML's "\0" escape produced (the typed getters refuse those) */
    const char *str;
    size_t len;
    int plain; /* written without quotes or block style: may be a number, bool or null */

    /* sequences: the items; mappings: the keys (scalars), each with ->value */
    gh_yaml_node_t *head;
    size_t count;

    gh_yaml_node_t *next;  /* next item or key in the parent */
    gh_yaml_node_t *value; /* mapping keys only */

    /* private */
    gh_yaml_node_t *tail;
    gh_yaml_node_t *all_next;
    gh_yaml_node_t *parent; /* mapping keys: their mapping */
};

typedef struct gh_yaml_doc_s {
    const char *name;       /* borrowed; used in messages */
    gh_yaml_node_t *root;   /* NULL for an empty document */
    gh_config_error_t *err; /* borrowed; where errors go */
    gh_yaml_node_t *all;    /* private: every node, for dispose */
    size_t num_nodes;       /* private */
    gh_yaml_node_t **keys;  /* private: hash set of mapping keys */
    size_t keys_cap, num_keys;
} gh_yaml_doc_t;

/* Parses buf into doc (caller's memory). name and err are borrowed and must
 * outlive doc. Returns 0, or -EINVAL (syntax or structure: err is filled) or
 * -ENOMEM; on failure doc holds nothing and dispose is still safe. */
int gh_yaml_doc_init(gh_yaml_doc_t *doc, const char *name, const char *buf, size_t len,
                     gh_config_error_t *err);
void gh_yaml_doc_dispose(gh_yaml_doc_t *doc);

/* Formats "name:line:col: message" into doc->err (control characters in the
 * message become '?', so a hostile key cannot forge log lines). at may be
 * NULL for errors without a position ("name: message"). Returns -EINVAL so
 * callers can write `return gh_yaml_error(...)`. */
int gh_yaml_error(const gh_yaml_doc_t *doc, const gh_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "name: out of memory"; returns -ENOMEM. */
int gh_yaml_oom(const gh_yaml_doc_t *doc);

/* The value for key in map (borrowed), or NULL. map must be a mapping. */
const gh_yaml_node_t *gh_yaml_map_get(const gh_yaml_node_t *map, const char *key);
/* The key node itself, for errors that point at a key. */
const gh_yaml_node_t *gh_yaml_map_key(const gh_yaml_node_t *map, const char *key);

/* Errors unless node has the kind: "expected a mapping for <what>". */
int gh_yaml_expect(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_yaml_kind_t kind,
                   const char *what);
/* Errors on the first key of map that is not in allowed (NULL-terminated):
 * "unknown key 'k' in <what>", at the key. */
int gh_yaml_check_keys(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map,
                       const char *const *allowed, const char *what);
/* The value of a required key, or an error at map:
 * "<what> is missing required key '<key>'". */
int gh_yaml_require(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map, const char *key,
                    const char *what, const gh_yaml_node_t **out);

/* Typed scalars. key names the setting in messages; out is written only on
 * success. The string is borrowed from the tree. */
int gh_yaml_str(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                const char **out);
/* A plain decimal integer in [min, max]. */
int gh_yaml_uint(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                 uint64_t min, uint64_t max, uint64_t *out);
/* true or false (also True/TRUE/False/FALSE), plain. */
int gh_yaml_bool(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key, int *out);
/* gh_config_parse_duration syntax; always > 0 and at most GH_YAML_DURATION_MAX. */
int gh_yaml_duration(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                     uint64_t *ms);
/* The same, at most max_ms (error "'key' must be at most 1h"). */
int gh_yaml_duration_max(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                         uint64_t max_ms, uint64_t *ms);
/* gh_config_parse_size syntax, in [min, max] bytes. */
int gh_yaml_size(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const char *key,
                 uint64_t min, uint64_t max, uint64_t *bytes);

#endif
