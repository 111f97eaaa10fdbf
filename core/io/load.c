/* load.c — pb_model_load: picks the reader from what the path is (folder, GGUF, llama2.c). */
#include "load.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

int pb_model_load(const char *path, const pb_load_opts *opts, pb_model **model, pb_tokenizer **tok, pb_err *err) {
    *model = NULL;
    if (tok) *tok = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return pb_err_set(err, "%s: no such file or directory", path);
        return pb_err_set(err, "%s: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return pb_hf_load(path, opts, model, tok, err);
    /* a FIFO or device would block or stream: only folders and regular files are models */
    if (!S_ISREG(st.st_mode)) return pb_err_set(err, "%s: not a regular file or directory", path);
    /* content, not the extension, decides: renamed files still load */
    FILE *f = fopen(path, "rb");
    if (!f) return pb_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    char magic[4] = {0};
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    if (n == 4 && !memcmp(magic, "GGUF", 4)) return pb_gguf_load(path, opts, model, tok, err);
    /* ...but a .gguf name without the magic is a damaged GGUF file, and the GGUF reader's
     * "wrong magic" says so better than the llama2.c reader's size checks would */
    size_t len = strlen(path);
    if (len >= 5 && !strcasecmp(path + len - 5, ".gguf")) return pb_gguf_load(path, opts, model, tok, err);
    return pb_llama2c_load(path, opts, model, tok, err);
}
