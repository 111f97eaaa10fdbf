/* data.c — the dataset registry (registry.json, compiled in) and the data folder: which
 * datasets exist, where their files are, and whether a file on disk is the registered one.
 *
 * The registry is parsed once per process with cJSON; every string handed out points into
 * that parsed tree, which lives until exit (it stays reachable, so leak checkers are quiet).
 * The first lookup parses it (not thread-safe: the CLI looks up before starting threads).
 * A file check reports one line that says which file, what was expected (size, sha256,
 * source) and how to get it, because "file not found" alone sends a researcher hunting. */
#include "pb_data.h"

#include "registry_json.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    pb_data_info info;
    pb_data_file **files;  /* (n_splits) -> contiguous files of that split */
    int *n_files;          /* (n_splits) */
} reg_entry;

static struct {
    bool loaded;
    int n;
    reg_entry *e;          /* (n) */
    cJSON *root;
    char error[256];       /* set when the compiled-in registry is malformed */
} g_reg;

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t jint(const cJSON *o, const char *key, int64_t dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

static int parse_format(const char *s, pb_text_format *f) {
    static const char *const names[] = {"plain", "wikitext", "lines", "paragraphs", "jsonl"};
    if (!s) { *f = PB_TEXT_PLAIN; return 0; }
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) { *f = (pb_text_format)i; return 0; }
    return -1;
}

static int load_split(reg_entry *re, int si, const cJSON *arr) {
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n < 1) return -1;
    pb_data_file *fs = pb_calloc((size_t)n, sizeof *fs);
    if (!fs) return -1;
    re->files[si] = fs;
    re->n_files[si] = n;
    int i = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, arr) {
        pb_data_file *d = &fs[i++];
        d->dataset = re->info.name;
        d->split = re->info.splits[si];
        d->role = jstr(f, "role");
        d->path = jstr(f, "path");
        d->sha256 = jstr(f, "sha256");
        d->bytes = jint(f, "bytes", -1);
        d->source = jstr(f, "source");
        d->url = jstr(f, "url");
        d->gunzip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "gunzip"));
        if (!d->path || !d->source || (d->sha256 && strlen(d->sha256) != 64)) return -1;
    }
    return 0;
}

static int load_entry(reg_entry *re, const cJSON *d) {
    pb_data_info *in = &re->info;
    in->name = jstr(d, "name");
    in->kind = jstr(d, "kind");
    in->description = jstr(d, "description");
    in->default_split = jstr(d, "default_split");
    in->field = jstr(d, "field");
    in->join = jstr(d, "join");
    in->max_docs = jint(d, "max_docs", 0);
    in->truncate_windows = jint(d, "truncate_windows", 0);
    in->count = jint(d, "count", 0);
    if (!in->name || !in->kind || !in->default_split || parse_format(jstr(d, "format"), &in->format)) return -1;
    if (!in->join) in->join = "\n\n";
    const cJSON *splits = cJSON_GetObjectItemCaseSensitive(d, "splits");
    int ns = cJSON_GetArraySize(splits);
    if (!cJSON_IsObject(splits) || ns < 1) return -1;
    const char **names = pb_calloc((size_t)ns, sizeof *names);
    re->files = pb_calloc((size_t)ns, sizeof *re->files);
    re->n_files = pb_calloc((size_t)ns, sizeof *re->n_files);
    in->splits = names;
    if (!names || !re->files || !re->n_files) return -1;
    in->n_splits = ns;
    int si = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, splits) {
        names[si] = s->string;
        if (load_split(re, si, s)) return -1;
        si++;
    }
    bool has_default = false;
    for (int i = 0; i < ns; i++) has_default |= strcmp(names[i], in->default_split) == 0;
    return has_default ? 0 : -1;
}

static int registry(pb_err *err) {
    if (!g_reg.loaded) {
        g_reg.loaded = true;
        g_reg.root = cJSON_Parse(pb_registry_json);
        const cJSON *ds = cJSON_GetObjectItemCaseSensitive(g_reg.root, "datasets");
        int n = cJSON_GetArraySize(ds);
        g_reg.e = n > 0 ? pb_calloc((size_t)n, sizeof *g_reg.e) : NULL;
        if (!cJSON_IsArray(ds) || !g_reg.e) {
            snprintf(g_reg.error, sizeof g_reg.error, "datasets/registry.json: no \"datasets\" array (or out of memory)");
        } else {
            const cJSON *d;
            cJSON_ArrayForEach(d, ds) {
                if (load_entry(&g_reg.e[g_reg.n], d)) {
                    snprintf(g_reg.error, sizeof g_reg.error, "datasets/registry.json: entry %d (%s) is malformed",
                             g_reg.n, jstr(d, "name") ? jstr(d, "name") : "?");
                    break;
                }
                g_reg.n++;
            }
        }
    }
    if (g_reg.error[0]) return pb_err_set(err, "%s", g_reg.error);
    return 0;
}

static reg_entry *find(const char *name) {
    for (int i = 0; name && i < g_reg.n; i++)
        if (strcmp(g_reg.e[i].info.name, name) == 0) return &g_reg.e[i];
    return NULL;
}

void pb_data_names(const char *kind, char *buf, size_t cap) {
    pb_err e;
    if (cap == 0) return;
    buf[0] = 0;
    if (registry(&e)) return;
    size_t k = 0;
    for (int i = 0; i < g_reg.n; i++) {
        if (kind && strcmp(g_reg.e[i].info.kind, kind) != 0) continue;
        int w = snprintf(buf + k, cap - k, "%s%s", k ? ", " : "", g_reg.e[i].info.name);
        if (w < 0 || (size_t)w >= cap - k) break;
        k += (size_t)w;
    }
}

int pb_data_info_get(const char *dataset, const pb_data_info **info, pb_err *err) {
    PB_TRY(registry(err));
    reg_entry *re = find(dataset);
    if (!re) {
        char known[512];
        pb_data_names(NULL, known, sizeof known);
        return pb_err_set(err, "unknown dataset '%s'; known datasets: %s", dataset ? dataset : "", known);
    }
    *info = &re->info;
    return 0;
}

const char *pb_data_default_split(const char *dataset) {
    pb_err e;
    const pb_data_info *in;
    return pb_data_info_get(dataset, &in, &e) ? NULL : in->default_split;
}

/* Groups of split names that mean the same thing across datasets and HF conventions. */
static bool synonyms(const char *a, const char *b) {
    static const char *const group[] = {"valid", "validation", "val", "dev"};
    int ia = -1, ib = -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(a, group[i]) == 0) ia = i;
        if (strcmp(b, group[i]) == 0) ib = i;
    }
    return ia >= 0 && ib >= 0;
}

static int split_index(const reg_entry *re, const char *split, pb_err *err) {
    const pb_data_info *in = &re->info;
    if (!split) split = in->default_split;
    for (int i = 0; i < in->n_splits; i++)
        if (strcmp(in->splits[i], split) == 0) return i;
    for (int i = 0; i < in->n_splits; i++)
        if (synonyms(in->splits[i], split)) return i;
    char known[256];
    size_t k = 0;
    known[0] = 0;
    for (int i = 0; i < in->n_splits && k < sizeof known; i++) {
        int w = snprintf(known + k, sizeof known - k, "%s%s", i ? ", " : "", in->splits[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
    return pb_err_set(err, "%s: unknown split '%s'; its splits: %s", in->name, split, known);
}

/* A registered dataset and the index of one of its splits (NULL: the default split). */
static int lookup(const char *dataset, const char *split, const reg_entry **out, int *si, pb_err *err) {
    const pb_data_info *in;
    PB_TRY(pb_data_info_get(dataset, &in, err)); /* loads the registry; names the unknown */
    const reg_entry *re = find(dataset);
    *si = split_index(re, split, err);
    if (*si < 0) return -1;
    *out = re;
    return 0;
}

int pb_data_split_name(const char *dataset, const char *split, const char **name, pb_err *err) {
    const reg_entry *re;
    int si;
    PB_TRY(lookup(dataset, split, &re, &si, err));
    *name = re->info.splits[si];
    return 0;
}

int pb_data_files(const char *dataset, const char *split, const pb_data_file **files, int *n, pb_err *err) {
    const reg_entry *re;
    int si;
    PB_TRY(lookup(dataset, split, &re, &si, err));
    *files = re->files[si];
    *n = re->n_files[si];
    return 0;
}

int pb_data_dir(const char *opt, char **dir, pb_err *err) {
    *dir = NULL;
    const char *pick = NULL;
    if (opt) {
        if (!pb_is_dir(opt)) return pb_err_set(err, "--data-dir %s: not a directory", opt);
        pick = opt;
    } else {
        const char *env = getenv("PRUNEBENCH_DATA");
        if (env && *env) {
            if (!pb_is_dir(env)) return pb_err_set(err, "PRUNEBENCH_DATA=%s: not a directory", env);
            pick = env;
        } else if (pb_is_dir("../shared/data")) {
            pick = "../shared/data";
        } else if (pb_is_dir("data")) {
            pick = "data";
        }
    }
    if (!pick)
        return pb_err_set(err, "no data folder: no --data-dir, PRUNEBENCH_DATA not set, and neither ../shared/data nor "
                               "./data exists; give --data-dir DIR or set PRUNEBENCH_DATA (datasets/fetch NAME downloads "
                               "the files)");
    *dir = strdup(pick);
    PB_CHECK_ALLOC(*dir, err);
    return 0;
}

/* Files whose sha256 already matched in this process (path strings, never freed). */
static struct { char *path[64]; int n; } g_verified;

static bool was_verified(const char *path) {
    for (int i = 0; i < g_verified.n; i++)
        if (strcmp(g_verified.path[i], path) == 0) return true;
    return false;
}

/* "expected 1290590 bytes (sha256 173c87a5...) from SOURCE" */
static void describe(const pb_data_file *f, char *buf, size_t cap) {
    char size[48], sha[48];
    if (f->bytes >= 0) snprintf(size, sizeof size, "%lld bytes", (long long)f->bytes);
    else snprintf(size, sizeof size, "size not recorded");
    if (f->sha256) snprintf(sha, sizeof sha, "sha256 %.8s...", f->sha256);
    else snprintf(sha, sizeof sha, "sha256 not recorded");
    snprintf(buf, cap, "expected %s (%s) from %s", size, sha, f->source);
}

static void remedy(const pb_data_file *f, char *buf, size_t cap) {
    if (f->url) snprintf(buf, cap, "run datasets/fetch %s or set --data-dir", f->dataset);
    else snprintf(buf, cap, "no download URL is recorded: obtain it from the source above, or set --data-dir");
}

int pb_data_path(const char *dir, const char *dataset, const char *split, const char *role, bool verify,
                 char **path, pb_err *err) {
    *path = NULL;
    const pb_data_file *fs;
    int n;
    PB_TRY(pb_data_files(dataset, split, &fs, &n, err));
    const pb_data_file *f = NULL;
    for (int i = 0; i < n && !f; i++)
        if (role ? (fs[i].role && strcmp(fs[i].role, role) == 0) : (n == 1 || (fs[i].role && !strcmp(fs[i].role, "docs"))))
            f = &fs[i];
    if (!f) return pb_err_set(err, "%s %s: no file with role '%s' in the registry", dataset, fs[0].split, role ? role : "");

    char *full = pb_path_join(dir, f->path);
    PB_CHECK_ALLOC(full, err);
    char what[512], fix[160];
    describe(f, what, sizeof what);
    remedy(f, fix, sizeof fix);
    struct stat st;
    if (stat(full, &st) != 0) {
        pb_err_set(err, "%s: missing; %s — %s", full, what, fix);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        pb_err_set(err, "%s: not a regular file; %s — %s", full, what, fix);
        goto fail;
    }
    if (f->bytes >= 0 && (int64_t)st.st_size != f->bytes) {
        pb_err_set(err, "%s: %lld bytes, but the registry %s (truncated or another version) — %s", full,
                   (long long)st.st_size, what, fix);
        goto fail;
    }
    if (verify && f->sha256 && !was_verified(full)) {
        char hex[65];
        if (pb_sha256_file(full, hex, err)) goto fail;
        if (strcmp(hex, f->sha256) != 0) {
            pb_err_set(err, "%s: sha256 %.8s... differs from the registry's %.8s... at the right size (corrupt or "
                            "another version; from %s) — %s", full, hex, f->sha256, f->source, fix);
            goto fail;
        }
        char *copy = g_verified.n < 64 ? strdup(full) : NULL;
        if (copy) g_verified.path[g_verified.n++] = copy; /* no copy: it is just checked again next time */
    }
    *path = full;
    return 0;
fail:
    free(full);
    return -1;
}
