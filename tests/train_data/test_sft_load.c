/* test_sft_load.c — pb_sft_load without ../shared: a tiny SentencePiece vocabulary (control
 * tokens, "▁", and the 256 byte-fallback pieces) makes token counts exact by construction
 * (BOS, the dummy-prefix "▁", then one id per ASCII byte, "▁" per space), so the cutoff and
 * EOS boundary cases, the prompt mask, skipping, and the text windows can be checked id for
 * id; then every kind of bad input must give -1, one line naming the file and the record or
 * line, and an empty (freeable) set — under ASan/UBSan in the sanitizer build. */
#include "pb_test.h"
#include "sft.h"

enum { UNK = 0, BOS = 1, EOS = 2, BYTE0 = 3, SPACE = 259 };

static pb_tokenizer *tiny_tokenizer(void) {
    static char bytes[256][8];
    const char *tokens[260];
    float scores[260];
    int32_t types[260];
    tokens[UNK] = "<unk>", tokens[BOS] = "<s>", tokens[EOS] = "</s>", tokens[SPACE] = "\xE2\x96\x81";
    types[UNK] = PB_TOKT_UNKNOWN, types[BOS] = types[EOS] = PB_TOKT_CONTROL, types[SPACE] = PB_TOKT_NORMAL;
    for (int i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        tokens[BYTE0 + i] = bytes[i];
        types[BYTE0 + i] = PB_TOKT_BYTE;
    }
    for (int i = 0; i < 260; i++) scores[i] = 0;
    pb_tok_vocab_spec sp = {.model = "llama", .n_tokens = 260, .tokens = tokens, .scores = scores, .types = types,
                            .bos_id = BOS, .eos_id = EOS, .unk_id = UNK, .add_bos = 1, .add_space_prefix = 1};
    pb_tokenizer *t;
    pb_err err;
    REQUIRE(pb_tok_from_vocab(&sp, &t, &err) == 0, "%s", err.msg);
    return t;
}

/* The ids the tiny tokenizer gives for ASCII text: BOS, "▁", then bytes with " " as "▁". */
static int expect_ids(const char *s, int32_t *out) {
    int n = 0;
    out[n++] = BOS;
    out[n++] = SPACE;
    for (; *s; s++) out[n++] = *s == ' ' ? SPACE : BYTE0 + (unsigned char)*s;
    return n;
}

static const char *NOIN = "Below is an instruction that describes a task. Write a response that appropriately "
                          "completes the request.\n\n### Instruction:\n";
static const char *WITHIN = "Below is an instruction that describes a task, paired with an input that provides "
                            "further context. Write a response that appropriately completes the request.\n\n"
                            "### Instruction:\n";

static char path_buf[4096];
static const char *write_tmp(const char *name, const char *content) {
    char dir[4096];
    pb_test_join(dir, sizeof dir, pb_test_tmp(), "train_data_load");
    mkdir(dir, 0777);
    pb_test_join(path_buf, sizeof path_buf, dir, name);
    pb_test_write_file(path_buf, content, strlen(content));
    return path_buf;
}

static void bad(const pb_tokenizer *t, const char *name, const char *content, pb_sft_opts o, const char *where,
                const char *what);

static pb_sft_opts alpaca(int cutoff) { return (pb_sft_opts){PB_SFT_ALPACA, cutoff, false, true}; }

/* Loads content as name; returns the set (REQUIREs success). */
static pb_sft_set load_ok(const pb_tokenizer *t, const char *name, const char *content, pb_sft_opts o) {
    pb_sft_set s;
    pb_err err;
    const char *p = write_tmp(name, content);
    REQUIRE(pb_sft_load(p, t, &o, &s, &err) == 0, "%s: %s", name, err.msg);
    return s;
}

static bool ex_is(const pb_sft_set *s, int i, const int32_t *ids, int n) {
    return s->len[i] == n && memcmp(s->ids + s->off[i], ids, (size_t)n * sizeof *ids) == 0;
}

static void test_alpaca_exact(const pb_tokenizer *t) {
    int32_t want[4096];
    char full[8192], tpl[4096];
    /* no input: "input" "", absent and null all select the short template */
    snprintf(tpl, sizeof tpl, "%shi\n\n### Response:\n", NOIN);
    snprintf(full, sizeof full, "%sok go", tpl);
    int nt = expect_ids(tpl, want), nf = expect_ids(full, want);
    want[nf] = EOS;
    pb_sft_set s = load_ok(t, "noin.json",
                           "[{\"instruction\": \"hi\", \"input\": \"\", \"output\": \"ok go\"},\n"
                           " {\"instruction\": \"hi\", \"output\": \"ok go\", \"extra\": [1, {}]},\n"
                           " {\"instruction\": \"hi\", \"input\": null, \"output\": \"ok go\"}]",
                           alpaca(1000));
    CHECK(s.n == 3 && s.n_skipped == 0 && s.n_tokens == 3 * (nf + 1));
    for (int i = 0; i < s.n; i++) CHECK_MSG(ex_is(&s, i, want, nf + 1) && s.n_prompt[i] == nt, "record %d", i);
    pb_sft_free(&s);
    CHECK(s.ids == NULL && s.n == 0);

    /* with input; train_on_inputs gives n_prompt 0; no EOS when add_eos is off */
    snprintf(tpl, sizeof tpl, "%sdo it\n\n### Input:\nx y\n\n### Response:\n", WITHIN);
    snprintf(full, sizeof full, "%sdone", tpl);
    nt = expect_ids(tpl, want), nf = expect_ids(full, want);
    const char *rec = "{\"instruction\": \"do it\", \"input\": \"x y\", \"output\": \"done\"}\n";
    pb_sft_opts o = alpaca(1000);
    s = load_ok(t, "in.jsonl", rec, o);
    want[nf] = EOS;
    CHECK(s.n == 1 && ex_is(&s, 0, want, nf + 1) && s.n_prompt[0] == nt);
    pb_sft_free(&s);
    o.train_on_inputs = true;
    o.add_eos = false;
    s = load_ok(t, "in.jsonl", rec, o);
    CHECK(s.n == 1 && ex_is(&s, 0, want, nf) && s.n_prompt[0] == 0);
    pb_sft_free(&s);

    /* the cut: output lengths that leave the full prompt at cutoff-1, cutoff and cutoff+5
     * ids before EOS; EOS only fits in the first. Empty output: only EOS is labelled. */
    snprintf(tpl, sizeof tpl, "%sq\n\n### Response:\n", NOIN);
    nt = expect_ids(tpl, want);
    int cutoff = nt + 10;
    char json[8192] = "[";
    int extra[] = {9, 10, 15, 0};
    for (int k = 0; k < 4; k++) {
        char out[64] = {0};
        memset(out, 'z', (size_t)extra[k]);
        snprintf(json + strlen(json), sizeof json - strlen(json), "%s{\"instruction\":\"q\",\"output\":\"%s\"}",
                 k ? "," : "", out);
    }
    strcat(json, "]");
    s = load_ok(t, "cut.json", json, alpaca(cutoff));
    REQUIRE(s.n == 4, "n = %d", s.n);
    int32_t *e;
    CHECK(s.len[0] == cutoff && s.ids[s.off[0] + cutoff - 1] == EOS);                /* nt + 9 ids, then EOS */
    CHECK(s.len[1] == cutoff && s.ids[s.off[1] + cutoff - 1] == BYTE0 + 'z');        /* exactly cutoff: no EOS */
    CHECK(s.len[2] == cutoff && s.ids[s.off[2] + cutoff - 1] == BYTE0 + 'z');        /* cut, no EOS */
    e = s.ids + s.off[3];
    CHECK(s.len[3] == nt + 1 && e[nt] == EOS && s.n_prompt[3] == nt);
    for (int k = 0; k < 4; k++) CHECK(s.n_prompt[k] == nt);
    pb_sft_free(&s);
    o = alpaca(cutoff);
    o.add_eos = false; /* empty output without EOS has nothing to learn: skipped */
    s = load_ok(t, "cut.json", json, o);
    CHECK(s.n == 3 && s.n_skipped == 1);
    pb_sft_free(&s);

    /* a prompt of cutoff ids leaves no label: every record skipped is an error; with
     * train_on_inputs all are kept whole; one more id of room labels exactly one position */
    bad(t, "cut.json", json, alpaca(nt), ": ", "no training example: 4 record(s)");
    o = alpaca(nt);
    o.train_on_inputs = true;
    s = load_ok(t, "cut.json", json, o);
    CHECK(s.n == 4 && s.n_skipped == 0 && s.len[3] == nt && s.n_prompt[3] == 0);
    pb_sft_free(&s);
    s = load_ok(t, "cut.json", json, alpaca(nt + 1));
    CHECK(s.n == 4 && s.n_skipped == 0);
    for (int k = 0; k < s.n; k++) CHECK(s.len[k] == nt + 1 && s.n_prompt[k] == nt);
    CHECK(s.ids[s.off[3] + nt] == EOS && s.ids[s.off[0] + nt] == BYTE0 + 'z');
    pb_sft_free(&s);
}

static void test_text_exact(const pb_tokenizer *t) {
    /* a plain file is one document: blank lines and spaces are text, one BOS at the start */
    pb_sft_opts o = {PB_SFT_TEXT, 4, false, true};
    pb_sft_set s = load_ok(t, "docs.txt", "ab\n\nc d", o);
    /* stream 1 ▁ a b \n \n c ▁ d -> windows [1 ▁ a b] [\n \n c ▁] and [d], 1 id: dropped */
    int32_t w0[] = {BOS, SPACE, BYTE0 + 'a', BYTE0 + 'b'}, w1[] = {BYTE0 + '\n', BYTE0 + '\n', BYTE0 + 'c', SPACE};
    CHECK(s.n == 2 && ex_is(&s, 0, w0, 4) && ex_is(&s, 1, w1, 4) && s.n_tokens == 8);
    CHECK(s.n_prompt[0] == 0 && s.n_prompt[1] == 0 && s.n_skipped == 0);
    pb_sft_free(&s);
    o.cutoff = 3; /* 9 ids: three full windows */
    s = load_ok(t, "docs.txt", "ab\n\nc d", o);
    CHECK(s.n == 3 && s.len[2] == 3 && s.ids[s.off[2] + 2] == BYTE0 + 'd');
    pb_sft_free(&s);
    o.cutoff = 5; /* windows of 5 and 4 */
    s = load_ok(t, "docs.txt", "ab\n\nc d", o);
    CHECK(s.n == 2 && s.len[1] == 4 && s.n_tokens == 9);
    pb_sft_free(&s);
    /* a .jsonl file: one document per line, each with its BOS */
    o.cutoff = 4;
    s = load_ok(t, "docs.jsonl", "{\"text\": \"ab\"}\n\n{\"text\": \"c d\"}\n", o);
    /* stream 1 ▁ a b 1 ▁ c ▁ d -> windows [1 ▁ a b] [1 ▁ c ▁] and [d]: dropped */
    int32_t j1[] = {BOS, SPACE, BYTE0 + 'c', SPACE};
    CHECK(s.n == 2 && ex_is(&s, 0, w0, 4) && ex_is(&s, 1, j1, 4) && s.n_tokens == 8);
    pb_sft_free(&s);
}

/* Every bad input: -1, one line starting with the file and `where`, containing `what`, and
 * *out left empty. */
static void bad(const pb_tokenizer *t, const char *name, const char *content, pb_sft_opts o, const char *where,
                const char *what) {
    pb_sft_set s;
    memset(&s, 0x5A, sizeof s);
    pb_err err = {0};
    const char *p = content ? write_tmp(name, content) : name;
    char want[4200];
    snprintf(want, sizeof want, "%s%s", p, where);
    int rc = pb_sft_load(p, t, &o, &s, &err);
    pb_sft_set zero;
    memset(&zero, 0, sizeof zero);
    CHECK_MSG(rc == -1, "%s: loaded", name);
    CHECK_MSG(memcmp(&s, &zero, sizeof s) == 0, "%s: set not emptied", name);
    CHECK_MSG(!strncmp(err.msg, want, strlen(want)) && strstr(err.msg, what) && !strchr(err.msg, '\n'),
              "%s: got \"%s\", want \"%s...%s\"", name, err.msg, want, what);
    pb_sft_free(&s);
}

static void test_bad(const pb_tokenizer *t) {
    pb_sft_opts a = alpaca(64), x = {PB_SFT_TEXT, 64, false, true};
    bad(t, "empty.json", "", a, ": ", "empty file");
    bad(t, "blank.jsonl", " \n\t\r\n", a, ": ", "empty file");
    bad(t, "noarr.json", "[]", a, ": ", "no training example");
    bad(t, "notobj.json", "[{\"instruction\":\"a\",\"output\":\"b\"}, 5]", a, ": record 1: ", "not a JSON object");
    bad(t, "noout.json", "[{\"instruction\":\"a\",\"input\":\"b\"}]", a, ": record 0: ", "missing string field \"output\"");
    bad(t, "noins.json", "[{\"output\":\"a\"}]", a, ": record 0: ", "missing string field \"instruction\"");
    bad(t, "numout.json", "[{\"instruction\":\"a\",\"output\":3}]", a, ": record 0: ", "field \"output\" is not a string");
    bad(t, "numin.json", "[{\"instruction\":\"a\",\"input\":[],\"output\":\"b\"}]", a, ": record 0: ",
        "field \"input\" is not a string");
    bad(t, "nullins.json", "[{\"instruction\":null,\"output\":\"b\"}]", a, ": record 0: ",
        "field \"instruction\" is not a string");
    bad(t, "syntax.json", "[{\"instruction\": \"a\",\n \"output\": }]", a, ":2:", "not valid JSON");
    bad(t, "cut.json", "[{\"instruction\": \"a\", \"out", a, ":1:", "not valid JSON");
    bad(t, "after.json", "[]\n  x", a, ":2:3: ", "text after the JSON array");
    bad(t, "l3.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}\n\n{\"instruction\":\"a\"}\n", a, ":3: ",
        "missing string field \"output\"");
    bad(t, "l2.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}\r\n  {\"instruction\":\"a\",, }\r\n", a, ":2:",
        "not valid JSON");
    bad(t, "tail.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"} {}\n", a, ":1:34: ", "text after the JSON value");
    bad(t, "arr.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}\n\"text\"\n", a, ":2: ", "not a JSON object");
    bad(t, "/nonexistent/train.json", NULL, a, ": ", "cannot open");
    bad(t, "/nonexistent/train.txt", NULL, x, ": ", "cannot open");
    /* an empty file: BOS alone is one id, so no window has a labelled position */
    bad(t, "empty.txt", "", x, ": ", "no training window");
    pb_sft_opts c1 = alpaca(1), fm = alpaca(64);
    fm.format = (pb_sft_format)7;
    bad(t, "ok.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}", c1, ": ", "cutoff 1 is too small");
    bad(t, "ok.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}", fm, ": ", "unknown training-data format");
    /* every record's prompt is longer than the cutoff */
    bad(t, "short.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":\"\"}", alpaca(8),
        ": ", "no training example: 2 record(s)");

    /* deep nesting and binary garbage must fail cleanly, not overflow the stack or crash */
    static char deep[200003];
    memset(deep, '[', 200000);
    deep[200000] = 0;
    bad(t, "deep.json", deep, a, ":1:", "not valid JSON");
    memset(deep, '{', 200000);
    bad(t, "deep.jsonl", deep, a, ":1:", "not valid JSON");
    char garbage[4096];
    uint32_t r = 12345;
    for (size_t i = 0; i + 1 < sizeof garbage; i++) {
        r = r * 1664525u + 1013904223u;
        garbage[i] = (char)((r >> 24) | 1); /* no NUL: the writer uses strlen */
    }
    garbage[sizeof garbage - 1] = 0;
    garbage[0] = '[';
    bad(t, "garbage.json", garbage, a, ":1:", "not valid JSON");
    garbage[0] = '{';
    bad(t, "garbage.jsonl", garbage, a, ":", "");
    /* a directory */
    char dir[4096];
    pb_test_join(dir, sizeof dir, pb_test_tmp(), "train_data_load");
    bad(t, dir, NULL, a, ": ", "");
}

int main(void) {
    pb_tokenizer *t = tiny_tokenizer();
    test_alpaca_exact(t);
    test_text_exact(t);
    test_bad(t);
    /* a UTF-8 byte-order mark before the array or the first line is skipped */
    pb_sft_set s = load_ok(t, "bom.json", "\xEF\xBB\xBF[{\"instruction\":\"a\",\"output\":\"b\"}]", alpaca(256));
    CHECK(s.n == 1);
    pb_sft_free(&s);
    s = load_ok(t, "bom.jsonl", "\xEF\xBB\xBF{\"instruction\":\"a\",\"output\":\"b\"}\n", alpaca(256));
    CHECK(s.n == 1);
    pb_sft_free(&s);
    pb_tok_free(t);
    return pb_test_done("train_data_load");
}
