/* safetensors_write.c — writes fp32 tensors as a safetensors file in F32, F16 or BF16.
 *
 * Integers go into the header as raw JSON text: cJSON prints large doubles with %g, which
 * would turn a byte offset beyond 1e15 into exponent notation that strict readers reject. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *raw_u64(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateRaw(buf);
}

/* Builds the header text (padded with spaces to a multiple of 8 so that the data, and
 * with it every F32 tensor, starts 8-byte aligned and can be mapped in place). */
static char *build_header(const pb_st_out_tensor *t, int n, pb_st_dtype d, size_t *len) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    char *txt = NULL;
    if (!root || !meta) goto fail;
    cJSON_AddItemToObject(root, "__metadata__", meta);
    meta = NULL;
    if (!cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(root, "__metadata__"), "format", "pt")) goto fail;
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e) goto fail;
        cJSON_AddItemToObject(root, t[i].name, e);
        cJSON *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        if (!shape || !offs) { cJSON_Delete(shape); cJSON_Delete(offs); goto fail; }
        cJSON_AddItemToObject(e, "dtype", cJSON_CreateString(pb_st_dtype_name(d)));
        cJSON_AddItemToObject(e, "shape", shape);
        cJSON_AddItemToObject(e, "data_offsets", offs);
        for (int k = 0; k < t[i].ndim; k++) cJSON_AddItemToArray(shape, raw_u64((uint64_t)t[i].shape[k]));
        uint64_t bytes = (uint64_t)t[i].numel * pb_st_dtype_size(d);
        cJSON_AddItemToArray(offs, raw_u64(off));
        cJSON_AddItemToArray(offs, raw_u64(off + bytes));
        /* cJSON drops items it failed to allocate; count them back to catch OOM */
        if (cJSON_GetArraySize(shape) != t[i].ndim || cJSON_GetArraySize(offs) != 2 ||
            !cJSON_GetObjectItemCaseSensitive(e, "dtype"))
            goto fail;
        off += bytes;
    }
    char *s = cJSON_PrintUnformatted(root);
    if (!s) goto fail;
    size_t l = strlen(s), padded = (l + 7) & ~(size_t)7;
    txt = malloc(padded + 1);
    if (txt) {
        memcpy(txt, s, l);
        memset(txt + l, ' ', padded - l);
        txt[padded] = 0;
        *len = padded;
    }
    cJSON_free(s);
fail:
    cJSON_Delete(root);
    cJSON_Delete(meta);
    return txt;
}

static int write_tensor(FILE *fp, const pb_st_out_tensor *t, pb_st_dtype d, uint8_t *buf, size_t buf_elems) {
    if (d == PB_ST_F32) return t->numel && fwrite(t->data, 4, t->numel, fp) != t->numel ? -1 : 0;
    for (size_t i = 0; i < t->numel; i += buf_elems) {
        size_t k = t->numel - i < buf_elems ? t->numel - i : buf_elems;
        pb_st_from_f32(d, t->data + i, buf, k);
        if (fwrite(buf, 2, k, fp) != k) return -1;
    }
    return 0;
}

int pb_st_write(const char *path, const pb_st_out_tensor *t, int n, pb_st_dtype d, pb_err *err) {
    size_t hlen = 0;
    char *hdr = build_header(t, n, d, &hlen);
    if (!hdr) return pb_err_set(err, "%s: out of memory building the header", path);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(hdr);
        return pb_err_set(err, "%s: cannot create: %s", path, strerror(errno));
    }
    const size_t buf_elems = (size_t)1 << 22;
    uint8_t *buf = d == PB_ST_F32 ? NULL : malloc(buf_elems * 2);
    int rc = 0;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if (d != PB_ST_F32 && !buf) {
        rc = pb_err_set(err, "%s: out of memory", path);
    } else if (fwrite(lenb, 1, 8, fp) != 8 || fwrite(hdr, 1, hlen, fp) != hlen) {
        rc = pb_err_set(err, "%s: write error: %s", path, strerror(errno));
    } else {
        for (int i = 0; i < n && rc == 0; i++)
            if (write_tensor(fp, &t[i], d, buf, buf_elems) != 0)
                rc = pb_err_set(err, "%s: write error (tensor %s): %s", path, t[i].name, strerror(errno));
    }
    /* on disk before the caller renames it into place: a crash must not leave a short file
     * under the final name */
    if (rc == 0 && (fflush(fp) != 0 || fsync(fileno(fp)) != 0))
        rc = pb_err_set(err, "%s: write error: %s", path, strerror(errno));
    if (fclose(fp) != 0 && rc == 0) rc = pb_err_set(err, "%s: write error: %s", path, strerror(errno));
    free(buf);
    free(hdr);
    if (rc != 0) unlink(path);
    return rc;
}
