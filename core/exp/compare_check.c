/* compare_check.c — structural checks of an index's `summary` table before HDF5 reads it.
 *
 * HDF5 1.10 trusts some of what a file says: a compound member whose offset lies outside
 * its row, a number type whose bit fields lie outside its bytes, or a variable-length string
 * whose global-heap object claims more bytes than the heap holds, makes H5Dread copy out of
 * bounds (found by flipping bytes of index files under
 * ASan). So the row layout, the extent of the stored rows, and every heap object that a
 * variable-length string column refers to are checked against the file first; a damaged
 * file is then one error line instead of a crash.
 *
 * On-disk facts used (HDF5 file format spec): a contiguous dataset's rows are packed at
 * H5Dget_offset; a variable-length string in a row is a 4-byte length, the address of a
 * global heap collection (sizeof_addr bytes) and a 4-byte object index; a collection is
 * "GCOL", version 1, 3 reserved bytes, its total size (sizeof_len bytes), then objects (2-byte
 * index, 2-byte reference count, 4 reserved, sizeof_len size, data padded to 8 bytes; index 0
 * is the free space, whose size field covers itself). All little-endian. H5Dget_type gives the
 * member offsets of the in-memory layout, where a variable-length string takes sizeof(char *):
 * the disk offsets follow by adding, member by member, what each earlier string grows on disk. */
#include "compare.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ROW_BYTES (1u << 20)
#define MAX_COLLECTION (64u << 20)

typedef struct {
    uint64_t addr;
    unsigned char *buf;     /* the whole collection */
    uint64_t size;
} collection;

typedef struct {
    FILE *fp;
    uint64_t file_size, base;
    unsigned sa, sl;        /* sizeof_addr, sizeof_len */
    collection *cols; int n_cols;
} heap_ctx;

static uint64_t le(const unsigned char *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;) v = v << 8 | p[i];
    return v;
}

static bool read_at(FILE *fp, uint64_t off, void *buf, size_t n) {
    return off <= (uint64_t)INT64_MAX && fseeko(fp, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, n, fp) == n;
}

/* Loads and walks the collection at addr (once): every object must lie inside it, as HDF5's
 * own walk assumes. NULL when it does not. */
static const collection *load_collection(heap_ctx *h, uint64_t addr) {
    for (int i = 0; i < h->n_cols; i++)
        if (h->cols[i].addr == addr) return h->cols[i].buf ? &h->cols[i] : NULL;
    collection *nc = realloc(h->cols, (size_t)(h->n_cols + 1) * sizeof *nc);
    if (!nc) return NULL;
    h->cols = nc;
    collection *c = &h->cols[h->n_cols++];
    *c = (collection){.addr = addr};
    unsigned char hdr[16];
    uint64_t at = addr + h->base, hl = 8 + h->sl;
    if (addr > h->file_size || at > h->file_size || h->file_size - at < hl || !read_at(h->fp, at, hdr, hl)) return NULL;
    uint64_t size = le(hdr + 8, h->sl);
    if (memcmp(hdr, "GCOL", 4) != 0 || hdr[4] != 1 || size < hl || size > MAX_COLLECTION || size > h->file_size - at)
        return NULL;
    unsigned char *buf = malloc(size);
    if (!buf || !read_at(h->fp, at, buf, size)) {
        free(buf);
        return NULL;
    }
    uint64_t p = hl, oh = 8 + h->sl;
    while (p < size) {
        if (size - p < oh) break;   /* a tail too small for a header is free space to HDF5 */
        unsigned idx = (unsigned)le(buf + p, 2);
        uint64_t osize = le(buf + p + 8, h->sl);
        uint64_t need = idx > 0 ? (osize > size ? size + 1 : oh + ((osize + 7) & ~(uint64_t)7)) : osize;
        if (need == 0 || need > size - p) {
            free(buf);
            return NULL;
        }
        p += need;
    }
    c->buf = buf;
    c->size = size;
    return c;
}

/* Whether heap object idx of the collection holds exactly len bytes. */
static bool object_ok(const heap_ctx *h, const collection *c, unsigned idx, uint64_t len) {
    uint64_t p = 8 + h->sl, oh = 8 + h->sl;
    while (p < c->size && c->size - p >= oh) {
        unsigned i = (unsigned)le(c->buf + p, 2);
        uint64_t osize = le(c->buf + p + 8, h->sl);
        if (i == idx && idx > 0) return osize == len;
        p += i > 0 ? oh + ((osize + 7) & ~(uint64_t)7) : osize;
    }
    return false;
}

/* HDF5 converts numbers bit field by bit field as the type describes them: every field must
 * lie inside the value's bytes. */
static bool numeric_ok(hid_t t, H5T_class_t cls, size_t size) {
    size_t prec = H5Tget_precision(t);
    int off = H5Tget_offset(t);
    if (size == 0 || size > 64 || prec == 0 || off < 0 || prec > 8 * size || (size_t)off > 8 * size - prec) return false;
    if (cls != H5T_FLOAT) return true;
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0) return false;
    return spos < prec && esize > 0 && msize > 0 && esize <= prec && epos <= prec - esize && msize <= prec && mpos <= prec - msize;
}

typedef struct { size_t mem_off, mem_size; bool vstr; } member;

static int by_offset(const void *a, const void *b) {
    size_t x = ((const member *)a)->mem_off, y = ((const member *)b)->mem_off;
    return (x > y) - (x < y);
}

int pb_cmp_check_summary(const char *path, int64_t file, int64_t d, int64_t ft, uint64_t n, pb_err *err) {
    size_t ts = H5Tget_size(ft);
    int nm = H5Tget_nmembers(ft);
    if (ts == 0 || ts > MAX_ROW_BYTES || nm < 0) return pb_err_set(err, "%s: 'summary' has a damaged row type", path);
    member *ms = pb_calloc((size_t)nm + 1, sizeof *ms);
    PB_CHECK_ALLOC(ms, err);
    bool nested = false;   /* strings inside nested types: their disk layout is not followed here */
    for (int m = 0; m < nm; m++) {
        hid_t mt = H5Tget_member_type(ft, (unsigned)m);
        ms[m].mem_off = H5Tget_member_offset(ft, (unsigned)m);
        ms[m].mem_size = mt >= 0 ? H5Tget_size(mt) : 0;
        H5T_class_t cls = mt >= 0 ? H5Tget_class(mt) : H5T_NO_CLASS;
        ms[m].vstr = cls == H5T_STRING && H5Tis_variable_str(mt) > 0;
        nested |= cls == H5T_COMPOUND || cls == H5T_ARRAY || cls == H5T_VLEN;
        bool bits_ok = cls != H5T_INTEGER && cls != H5T_FLOAT ? true : numeric_ok(mt, cls, ms[m].mem_size);
        if (mt >= 0) H5Tclose(mt);
        if (!bits_ok) {
            free(ms);
            return pb_err_set(err, "%s: 'summary' column %d has a damaged number type", path, m);
        }
        if (ms[m].mem_size == 0 || ms[m].mem_off > ts || ms[m].mem_size > ts - ms[m].mem_off) {
            free(ms);
            return pb_err_set(err, "%s: 'summary' column %d lies outside its row (damaged file)", path, m);
        }
    }
    haddr_t data = H5Dget_offset(d);
    hid_t fcpl = H5Fget_create_plist(file);
    size_t sa = 0, sl = 0;
    hsize_t ub = 0;
    bool sizes = fcpl >= 0 && H5Pget_sizes(fcpl, &sa, &sl) >= 0 && H5Pget_userblock(fcpl, &ub) >= 0;
    if (fcpl >= 0) H5Pclose(fcpl);
    struct stat st;
    /* compact and chunked layouts, and files with unusual address sizes, are left to HDF5 */
    if (n == 0 || data == HADDR_UNDEF || !sizes || sa < 2 || sa > 8 || sl < 2 || sl > 8 || stat(path, &st) != 0) {
        free(ms);
        return 0;
    }
    qsort(ms, (size_t)nm, sizeof *ms, by_offset);
    uint64_t vdisk = 4 + sa + 4, grow = 0, row = ts;
    for (int m = 0; m < nm; m++)
        if (ms[m].vstr) row += vdisk - ms[m].mem_size;
    uint64_t fsize = (uint64_t)st.st_size;
    if (data > fsize || row > (fsize - data) / n) {
        free(ms);
        return pb_err_set(err, "%s: the 'summary' rows run past the end of the file (damaged file)", path);
    }
    int rc = 0;
    heap_ctx h = {.fp = nested ? NULL : fopen(path, "rb"), .file_size = fsize, .base = ub, .sa = (unsigned)sa, .sl = (unsigned)sl};
    for (int m = 0; h.fp && m < nm && rc == 0; m++) {
        uint64_t disk_off = ms[m].mem_off + grow;
        if (!ms[m].vstr) continue;
        grow += vdisk - ms[m].mem_size;
        for (uint64_t i = 0; i < n && rc == 0; i++) {
            unsigned char ref[20];
            if (!read_at(h.fp, data + i * row + disk_off, ref, vdisk)) {
                rc = pb_err_set(err, "%s: cannot read row %llu of 'summary' (damaged file)", path, (unsigned long long)i);
                break;
            }
            uint64_t len = le(ref, 4), addr = le(ref + 4, sa);
            unsigned idx = (unsigned)le(ref + 4 + sa, 4);
            if (len == 0 && addr == 0) continue;   /* a null string has no heap object (an empty one has) */
            const collection *c = load_collection(&h, addr);
            if (!c || !object_ok(&h, c, idx, len))
                rc = pb_err_set(err, "%s: row %llu of 'summary' has a damaged string (global heap object)", path,
                                (unsigned long long)i);
        }
    }
    if (h.fp) fclose(h.fp);
    for (int i = 0; i < h.n_cols; i++) free(h.cols[i].buf);
    free(h.cols);
    free(ms);
    return rc;
}
