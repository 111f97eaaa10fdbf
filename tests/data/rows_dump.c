/* rows_dump.c — test helper: prints what the dataset readers produce, for Python to compare
 * with its own implementation of the HF semantics.
 *
 *   rows_dump rows FORMAT FILE [FIELD [MAX]]   FORMAT: plain|wikitext|lines|paragraphs|jsonl
 *   rows_dump text DATASET|FILE DATA_DIR [SPLIT|- [JOIN]]
 *   rows_dump isspace                          code points for which pb_py_isspace holds
 *
 * rows: "N\n" then per row "LEN\n" + the row's bytes + "\n". text: the joined text's bytes.
 * Errors: the message on stderr, exit 1. */
#include "pb_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const pb_err *e) {
    fprintf(stderr, "%s\n", e->msg);
    return 1;
}

int main(int argc, char **argv) {
    pb_err err = {0};
    if (argc == 2 && !strcmp(argv[1], "isspace")) {
        for (uint32_t c = 0; c < 0x110000; c++)
            if (pb_py_isspace(c)) printf("%x\n", c);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "rows")) {
        static const char *const names[] = {"plain", "wikitext", "lines", "paragraphs", "jsonl"};
        int f = -1;
        for (int i = 0; i < 5; i++)
            if (!strcmp(argv[2], names[i])) f = i;
        if (f < 0) { fprintf(stderr, "unknown format %s\n", argv[2]); return 2; }
        pb_rows r;
        if (pb_rows_read(argv[3], (pb_text_format)f, argc > 4 ? argv[4] : NULL, argc > 5 ? atoll(argv[5]) : 0, &r, &err))
            return fail(&err);
        printf("%zu\n", r.n);
        for (size_t i = 0; i < r.n; i++) {
            printf("%zu\n", r.off[i + 1] - r.off[i]);
            fwrite(r.buf + r.off[i], 1, r.off[i + 1] - r.off[i], stdout);
            putchar('\n');
        }
        pb_rows_free(&r);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "text")) {
        pb_text_set t;
        const char *split = argc > 4 && strcmp(argv[4], "-") ? argv[4] : NULL;
        if (pb_data_text(argv[3], argv[2], split, argc > 5 ? argv[5] : NULL, true, &t, &err)) return fail(&err);
        fwrite(t.text, 1, t.len, stdout);
        pb_text_set_free(&t);
        return 0;
    }
    fprintf(stderr, "usage: rows_dump rows FORMAT FILE [FIELD [MAX]] | text DATASET DATA_DIR [SPLIT [JOIN]] | isspace\n");
    return 2;
}
