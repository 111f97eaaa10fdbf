/* test_tasks_text.c — the Python-semantics string helpers behind the task readers, on
 * hand-written cases: HellaSwag's preprocess (the tricky cases of eval-protocol.md: " [title]",
 * non-greedy tags, tags not crossing a newline, the single-pass double-space replace, strip
 * of Unicode whitespace), str.capitalize (the rest lower-cased), WinoGrande's split, code
 * point lengths; and the reader's document building on small hand-written files. */
#include "pb_data.h"
#include "pb_test.h"
#include "tasks.h"

static void hs(const char *in, const char *want) {
    char *got = pb_hellaswag_preprocess(in);
    REQUIRE(got, "out of memory");
    CHECK_MSG(strcmp(got, want) == 0, "preprocess(\"%s\") = \"%s\", want \"%s\"", in, got, want);
    free(got);
}

static void cap(const char *in, const char *want) {
    char *got = pb_py_capitalize(in);
    REQUIRE(got, "out of memory");
    CHECK_MSG(strcmp(got, want) == 0, "capitalize(\"%s\") = \"%s\", want \"%s\"", in, got, want);
    free(got);
}

static void wg(const char *sent, const char *opt, const char *want_ctx, const char *want_cont) {
    char *ctx, *cont;
    pb_err err = {0};
    REQUIRE(pb_winogrande_split(sent, opt, &ctx, &cont, &err) == 0, "%s", err.msg);
    CHECK_MSG(strcmp(ctx, want_ctx) == 0, "ctx \"%s\", want \"%s\"", ctx, want_ctx);
    CHECK_MSG(strcmp(cont, want_cont) == 0, "cont \"%s\", want \"%s\"", cont, want_cont);
    free(ctx);
    free(cont);
}

/* Writes text to PB_TMP/name and loads it as task `task` (labels text NULL: no labels file). */
static int load(const char *task, const char *docs, const char *labels, pb_task **t, pb_err *err) {
    char dp[4096], lp[4096];
    pb_test_join(dp, sizeof dp, pb_test_tmp(), "zs_docs.jsonl");
    pb_test_write_file(dp, docs, strlen(docs));
    if (labels) {
        pb_test_join(lp, sizeof lp, pb_test_tmp(), "zs_labels.lst");
        pb_test_write_file(lp, labels, strlen(labels));
    }
    return pb_task_load(task, dp, labels ? lp : NULL, t, err);
}

static void load_errors(void) {
    pb_task *t = NULL;
    pb_err err = {0};
    /* each: a bad file gives -1 and a message naming the file and line */
    struct { const char *task, *docs, *labels, *want; } cases[] = {
        {"piqa", "{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n{\"goal\":\"g\",\"sol1\":\"a\"}\n", "0\n1\n",
         "zs_docs.jsonl:2: missing field \"sol2\""},
        {"piqa", "{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n", "0\n",
         "zs_labels.lst: has 1 labels, fewer than the documents"},
        {"piqa", "{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n", "0\n1\n", "zs_labels.lst: has 2 labels for the 1 documents"},
        {"piqa", "{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n", "2\n", "zs_labels.lst:1: label \"2\" is not 0 or 1"},
        {"boolq", "{\"question\":\"q\",\"title\":\"t\",\"answer\":true,\"passage\":\"p\"}\n{\"question\": oops}\n", NULL,
         "zs_docs.jsonl:2:"},
        {"boolq", "[1, 2]\n", NULL, "zs_docs.jsonl:1: expected a JSON object"},
        {"boolq", "{\"question\":\"q\",\"title\":\"t\",\"answer\":\"yes\",\"passage\":\"p\"}\n", NULL,
         "zs_docs.jsonl:1: field \"answer\" is not true or false"},
        {"boolq", "\n\n", NULL, "zs_docs.jsonl: no documents"},
        {"boolq", "", NULL, "zs_docs.jsonl: no documents"},
        {"boolq", "{\"question\":\"q\",\"title\":\"t\",\"answer\":true,\"passage\":\"p\"}\n\n{}\n", NULL,
         "zs_docs.jsonl:2: empty line"},
        {"winogrande", "{\"sentence\":\"no blank\",\"option1\":\"a\",\"option2\":\"b\",\"answer\":\"1\"}\n", "1\n",
         "zs_docs.jsonl:1: sentence has no \"_\""},
        {"winogrande", "{\"sentence\":\"a _ b\",\"option1\":\"a\",\"option2\":\"b\",\"answer\":\"1\"}\n", "2\n",
         "zs_labels.lst:1: label \"2\" disagrees"},
        {"arc_easy", "{\"id\":\"x\",\"question\":{\"stem\":\"s\",\"choices\":[{\"text\":\"a\",\"label\":\"A\"}]},"
                     "\"answerKey\":\"B\"}\n", NULL, "zs_docs.jsonl:1: answerKey \"B\" is not one of the choice labels"},
        {"hellaswag", "{\"activity_label\":\"a\",\"ctx_a\":\"b\",\"ctx_b\":\"c\",\"endings\":[\"x\",\"y\"],\"label\":2}\n",
         NULL, "zs_docs.jsonl:1: label 2 is outside the 2 endings"},
        {"openbookqa", "{\"question\":{\"stem\":\"s\"},\"answerKey\":\"A\"}\n", NULL,
         "zs_docs.jsonl:1: question: missing field \"choices\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&err, 0, sizeof err);
        int rc = load(cases[i].task, cases[i].docs, cases[i].labels, &t, &err);
        CHECK_MSG(rc == -1 && !t, "case %zu (%s) loaded", i, cases[i].task);
        CHECK_MSG(strstr(err.msg, cases[i].want) != NULL, "case %zu: message \"%s\" lacks \"%s\"", i, err.msg,
                  cases[i].want);
        CHECK_MSG(!strchr(err.msg, '\n'), "case %zu: message has a newline", i);
        pb_task_free(t);
        t = NULL;
    }
    memset(&err, 0, sizeof err);
    CHECK(pb_task_load("nosuchtask", "x", NULL, &t, &err) == -1 && strstr(err.msg, "known: boolq, piqa"));
}

static void load_docs(void) {
    pb_task *t = NULL;
    pb_err err = {0};
    /* Google BoolQ -> SuperGLUE passage; a trailing blank line and CRLF are tolerated */
    REQUIRE(load("boolq", "{\"question\":\"is it\",\"title\":\"T\",\"answer\":true,\"passage\":\"P.\"}\r\n\n", NULL, &t,
                 &err) == 0, "%s", err.msg);
    CHECK(t->n_docs == 1 && t->docs[0].gold == 1 && t->docs[0].n_choices == 2);
    CHECK(!strcmp(t->docs[0].ctx[0], "T -- P.\nQuestion: is it?\nAnswer:"));
    CHECK(!strcmp(t->docs[0].cont[0], " no") && !strcmp(t->docs[0].cont[1], " yes"));
    CHECK(!t->has_norm && !t->headline_norm);
    pb_task_free(t);
    /* OBQA: bare stem, answerKey stripped; lengths in code points ("é" is one) */
    REQUIRE(load("openbookqa", "{\"question\":{\"stem\":\"Stem\",\"choices\":[{\"text\":\"caf\\u00e9\",\"label\":\"A\"},"
                               "{\"text\":\"b\",\"label\":\"B\"}]},\"answerKey\":\" B \"}\n", NULL, &t, &err) == 0,
            "%s", err.msg);
    CHECK(!strcmp(t->docs[0].ctx[0], "Stem") && t->docs[0].gold == 1 && t->docs[0].choice_len[0] == 4);
    CHECK(!strcmp(t->docs[0].cont[0], " caf\xc3\xa9"));
    CHECK(t->has_norm && t->headline_norm);
    pb_task_free(t);
    /* ARC numeric keys */
    REQUIRE(load("arc_challenge", "{\"question\":{\"stem\":\"Q\",\"choices\":[{\"text\":\"a\",\"label\":\"1\"},"
                                  "{\"text\":\"b\",\"label\":\"2\"},{\"text\":\"c\",\"label\":\"3\"}]},\"answerKey\":\"3\"}\n",
                 NULL, &t, &err) == 0, "%s", err.msg);
    CHECK(t->docs[0].gold == 2 && t->docs[0].n_choices == 3 && !strcmp(t->docs[0].ctx[2], "Question: Q\nAnswer:"));
    pb_task_free(t);
    /* HellaSwag: ctx_b capitalized (rest lower-cased), preprocessing, string labels */
    REQUIRE(load("hellaswag", "{\"activity_label\":\"Cooking\",\"ctx_a\":\"A man [header] cooks.\",\"ctx_b\":\"tHE man\","
                              "\"endings\":[\" [step] stirs  the pot. \",\"eats.\"],\"label\":\"1\"}\n", NULL, &t, &err) == 0,
            "%s", err.msg);
    CHECK_MSG(!strcmp(t->docs[0].ctx[0], "Cooking: A man cooks. The man"), "%s", t->docs[0].ctx[0]);
    /* strip runs before the tag is removed, so the ending keeps a leading space */
    CHECK_MSG(!strcmp(t->docs[0].cont[0], "  stirs the pot."), "%s", t->docs[0].cont[0]);
    CHECK(t->docs[0].gold == 1 && t->docs[0].choice_len[0] == 15);
    pb_task_free(t);
    /* HellaSwag: an empty ctx_b leaves a trailing space that strip() removes */
    REQUIRE(load("hellaswag", "{\"activity_label\":\"X\",\"ctx_a\":\"y.\",\"ctx_b\":\"\",\"endings\":[\"a\"],\"label\":0}\n",
                 NULL, &t, &err) == 0, "%s", err.msg);
    CHECK(!strcmp(t->docs[0].ctx[0], "X: y."));
    pb_task_free(t);
    /* WinoGrande: labels file, two contexts, one continuation */
    REQUIRE(load("winogrande", "{\"sentence\":\"Ann beat Bo so _ won .\",\"option1\":\"Ann\",\"option2\":\"Bo\","
                               "\"answer\":\"1\"}\n", "1\n", &t, &err) == 0, "%s", err.msg);
    CHECK(!strcmp(t->docs[0].ctx[0], "Ann beat Bo so Ann") && !strcmp(t->docs[0].ctx[1], "Ann beat Bo so Bo"));
    CHECK(!strcmp(t->docs[0].cont[0], " won .") && !strcmp(t->docs[0].cont[1], " won ."));
    CHECK(t->docs[0].gold == 0);
    pb_task_free(t);
}

int main(void) {
    /* HellaSwag preprocess */
    hs("  A [title] B  ", "A. B");                     /* strip, then " [title]" -> ". " */
    hs("A [header] B [step] C", "A B C");              /* tags removed; the doubled spaces collapse */
    hs("x [a [b] y] z", "x y] z");                      /* non-greedy from the first "[" */
    hs("x [a\nb] y", "x [a\nb] y");                     /* "." does not match a newline */
    hs("x [a\n[b] y", "x [a\n y");                      /* the second "[" still matches */
    hs("a   b", "a  b");                                /* one pass: three spaces -> two */
    hs("a    b", "a  b");                               /* four -> two */
    hs("[title] x", " x");                              /* no leading space: a plain tag, and no strip after */
    hs("x [title]", "x. ");                             /* strip comes first: the ". " keeps its space */
    hs("\xc2\xa0 x \xe3\x80\x80", "x");                 /* NBSP and ideographic space are whitespace */
    hs("[unclosed", "[unclosed");
    hs("", "");
    /* str.capitalize: the first code point upper (title) case, the rest lower */
    cap("hello World", "Hello world");
    cap("tHE MAN", "The man");
    cap("", "");
    cap("1ABC", "1abc");
    cap("\xc3\xa9" "COLE", "\xc3\x89" "cole");             /* éCOLE -> École */
    cap("\xc3\x9f" "X", "Ssx");                         /* ß -> Ss */
    cap("\xce\xb1\xce\x92", "\xce\x91\xce\xb2");        /* αΒ -> Αβ */
    cap("\xd0\xb4\xd0\x9e", "\xd0\x94\xd0\xbe");        /* дО -> До */
    cap("\xff" "AB", "\xff" "ab");                      /* an invalid byte is kept */
    /* WinoGrande: context up to the blank + option; continuation " " + stripped rest */
    wg("The cup beat _ .", "Tom", "The cup beat Tom", " .");
    wg("_ ran.", "Ann", "Ann", " ran.");
    wg("He saw _", "it", "He saw it", " ");
    wg("a _ b _ c", "X", "a X", " b _ c");             /* only the first "_" */
    wg("a _\xe2\x80\x83 b \n", "X", "a X", " b");       /* Unicode whitespace stripped */
    /* code points and strip */
    CHECK(pb_utf8_len("caf\xc3\xa9", 5) == 4);
    CHECK(pb_utf8_len("\xf0\x9f\x98\x80!", 5) == 2);
    CHECK(pb_utf8_len("\xc3", 1) == 1);                /* truncated sequence: one */
    CHECK(pb_py_rstrip_len("ab \n\t", 5) == 2);
    CHECK(pb_py_rstrip_len("ab\xe2\x80\x83", 5) == 2); /* EM SPACE */
    CHECK(pb_py_rstrip_len("ab\x80", 3) == 3);         /* a stray continuation byte is not space */
    size_t b, e;
    pb_py_strip("\x1c x \x85", 5, &b, &e);              /* \x1c is whitespace; byte 0x85 alone is invalid UTF-8 */
    CHECK(b == 2 && e == 5);
    load_errors();
    load_docs();
    return pb_test_done("zeroshot_tasks_text");
}
