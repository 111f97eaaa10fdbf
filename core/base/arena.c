/* arena.c — chained-block arena: many allocations, one free (see pb_base.h). */
#include "pb_base.h"

#include <stdlib.h>
#include <string.h>

#define PB_ARENA_ALIGN 64

struct pb_arena_block {
    pb_arena_block *next;
    size_t cap, used;
    /* data follows, aligned */
};

static size_t hdr_size(void) {
    return (sizeof(pb_arena_block) + PB_ARENA_ALIGN - 1) & ~(size_t)(PB_ARENA_ALIGN - 1);
}

bool pb_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

void *pb_calloc(size_t n, size_t size) {
    size_t total;
    if (!pb_mul_ok(n, size, &total)) return NULL;
    return calloc(total ? total : 1, 1);
}

void pb_arena_init(pb_arena *a, size_t block_size) {
    a->head = NULL;
    a->block_size = block_size ? block_size : (size_t)1 << 20;
    a->total = 0;
}

void *pb_arena_alloc(pb_arena *a, size_t bytes) {
    if (bytes > SIZE_MAX - PB_ARENA_ALIGN) return NULL;
    size_t need = (bytes + PB_ARENA_ALIGN - 1) & ~(size_t)(PB_ARENA_ALIGN - 1);
    if (need == 0) need = PB_ARENA_ALIGN;
    pb_arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > a->block_size ? need : a->block_size;
        if (cap > SIZE_MAX - hdr_size() - PB_ARENA_ALIGN) return NULL;
        /* aligned_alloc requires size to be a multiple of the alignment */
        size_t sz = (hdr_size() + cap + PB_ARENA_ALIGN - 1) & ~(size_t)(PB_ARENA_ALIGN - 1);
        b = aligned_alloc(PB_ARENA_ALIGN, sz);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    uint8_t *p = (uint8_t *)b + hdr_size() + b->used;
    b->used += need;
    a->total += need;
    memset(p, 0, bytes);
    return p;
}

void *pb_arena_alloc_n(pb_arena *a, size_t n, size_t size) {
    size_t total;
    if (!pb_mul_ok(n, size, &total)) return NULL;
    return pb_arena_alloc(a, total);
}

char *pb_arena_strndup(pb_arena *a, const char *s, size_t n) {
    char *d = pb_arena_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *pb_arena_strdup(pb_arena *a, const char *s) { return pb_arena_strndup(a, s, strlen(s)); }

void pb_arena_free(pb_arena *a) {
    pb_arena_block *b = a->head;
    while (b) {
        pb_arena_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
    a->total = 0;
}
