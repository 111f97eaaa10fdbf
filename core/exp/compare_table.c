/* compare_table.c — the comparison table itself: row order (by model, the dense run first,
 * then by ratio and method, failed runs last, each published row under the run it matches),
 * the baseline of each row, the published row each run is compared with, and the three
 * renderings (GitHub markdown, LaTeX booktabs, CSV with raw numbers and delta columns). */
#include "compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { M_TASK0 = PB_CMP_MAX_PPL, M_MEAN = M_TASK0 + PB_CMP_TASKS, M_LAT, M_TPUT, M_END };

typedef struct {
    int row;       /* into c->rows */
    int base;      /* ours: the row its deltas are taken to (-1: none) */
    int paper;     /* ours: the published row it is compared with; published: the run it matches (-1) */
    int group;     /* model group, for rules between groups */
} line;

typedef struct {
    const pb_cmp *c;
    line *lines; int n;
    bool show[M_END];        /* metric columns with a value somewhere */
    bool show_exp, show_seed, show_params, show_params_ne;
    int n_metric;
} table;

/* ---- metrics ------------------------------------------------------------------------------ */

static double metric(const pb_cmp_row *r, int m) {
    if (m < M_TASK0) return r->ppl[m];
    if (m < M_MEAN) return r->acc[m - M_TASK0];
    return m == M_MEAN ? r->mean : m == M_LAT ? r->latency_ms : r->throughput;
}

static bool metric_exists(const pb_cmp *c, int m) {
    return m >= M_TASK0 || m < c->n_ppl;
}

static void metric_name(const pb_cmp *c, int m, pb_cmp_format fmt, char *out, size_t cap) {
    static const char *const tasks[PB_CMP_TASKS] = {"BoolQ", "PIQA", "HellaSwag", "WinoGrande", "ARC-e", "ARC-c", "OBQA"};
    const char *down = fmt == PB_CMP_TEX ? "$\\downarrow$" : "\u2193";
    if (fmt == PB_CMP_CSV) {
        if (m < M_TASK0) snprintf(out, cap, "ppl_%s", c->ppl_names[m]);
        else if (m < M_MEAN) snprintf(out, cap, "%s", pb_cmp_task_names[m - M_TASK0]);
        else snprintf(out, cap, "%s", m == M_MEAN ? "mean" : m == M_LAT ? "latency_ms" : "throughput");
        return;
    }
    if (m < M_TASK0) {
        const char *n = c->ppl_names[m], *pretty = strcmp(n, "wikitext2") == 0 ? "WikiText-2"
                                                  : strcmp(n, "ptb") == 0   ? "PTB"
                                                  : strcmp(n, "c4") == 0    ? "C4"
                                                  : strcmp(n, "tinystories") == 0 ? "TinyStories" : n;
        snprintf(out, cap, "%s%s", pretty, down);
    } else if (m < M_MEAN) {
        snprintf(out, cap, "%s", tasks[m - M_TASK0]);
    } else {
        snprintf(out, cap, "%s", m == M_MEAN ? "Mean" : m == M_LAT ? "Latency (ms/tok)" : "Throughput (tok/s)");
    }
}

/* ---- order --------------------------------------------------------------------------------- */

static bool is_dense(const pb_cmp_row *r) {
    return strcasecmp(r->method, "dense") == 0 || (r->paper && r->ratio == 0);
}

static bool is_done(const pb_cmp_row *r) {
    return strcmp(r->status, "done") == 0;
}

/* Where a run sits among the ratios: its target ratio, else what it achieved. */
static double ratio_key(const pb_cmp_row *r) {
    if (is_dense(r)) return -1;
    if (isfinite(r->ratio)) return r->ratio;
    if (isfinite(r->params_after) && isfinite(r->params_before) && r->params_before > 0)
        return 1 - r->params_after / r->params_before;
    if (isfinite(r->native)) return r->native;
    return isfinite(r->num_blocks) ? 2 + r->num_blocks : 1e9;
}

static int cmp_num(double a, double b) {
    if (isnan(a) || isnan(b)) return isnan(a) - isnan(b);
    return (a > b) - (a < b);
}

static const pb_cmp *sort_ctx;

static int cmp_rows(const void *pa, const void *pb) {
    const pb_cmp_row *a = &sort_ctx->rows[((const line *)pa)->row], *b = &sort_ctx->rows[((const line *)pb)->row];
    int k;
    if ((k = (int)is_dense(b) - (int)is_dense(a))) return k;
    if ((k = (int)is_done(b) - (int)is_done(a))) return k;
    if ((k = cmp_num(ratio_key(a), ratio_key(b)))) return k;
    if ((k = strcmp(a->method, b->method)) || (k = strcmp(a->criterion, b->criterion)) ||
        (k = strcmp(a->granularity, b->granularity)))
        return k;
    if ((k = cmp_num(a->num_blocks, b->num_blocks)) || (k = cmp_num(a->seed, b->seed))) return k;
    if ((k = a->dir - b->dir)) return k;
    return strcmp(a->run_id, b->run_id);
}

/* A published row names its amount by ratio, num_blocks or native setting: each one it gives
 * must be ours too (and it must give one). */
static bool same_amount(const pb_cmp_row *p, const pb_cmp_row *r) {
    if (is_dense(p) || is_dense(r)) return is_dense(p) && is_dense(r);
    if (isfinite(p->ratio) && !(isfinite(r->ratio) && fabs(p->ratio - r->ratio) < 1e-6)) return false;
    if (isfinite(p->native) && !(isfinite(r->native) && fabs(p->native - r->native) < 1e-6)) return false;
    if (isfinite(p->num_blocks) && p->num_blocks != r->num_blocks) return false;
    return isfinite(p->ratio) || isfinite(p->num_blocks) || isfinite(p->native);
}

static bool matches(const pb_cmp_row *p, const pb_cmp_row *r) {
    if (strcasecmp(p->model, r->model) != 0 || !is_done(r) || !same_amount(p, r)) return false;
    return strcasecmp(p->method, r->method) == 0 || (is_dense(p) && is_dense(r));
}

static int build(table *t, const pb_cmp *c, const char *baseline, pb_err *err) {
    memset(t, 0, sizeof *t);
    t->c = c;
    t->lines = pb_calloc((size_t)c->n_rows + 1, sizeof *t->lines);
    int *group = pb_calloc((size_t)c->n_rows + 1, sizeof *group);
    if (!t->lines || !group) {
        free(group);
        return pb_err_set(err, "out of memory");
    }
    /* model groups in order of first appearance, our runs before published-only models */
    int n_groups = 0;
    for (int i = 0; i < c->n_rows; i++) group[i] = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < c->n_rows; i++) {
            if (c->rows[i].paper != (pass == 1)) continue;
            for (int j = 0; j < c->n_rows && group[i] < 0; j++)
                if (group[j] >= 0 && strcasecmp(c->rows[j].model, c->rows[i].model) == 0) group[i] = group[j];
            if (group[i] < 0) group[i] = n_groups++;
        }
    int fixed_base = -1;
    if (baseline) {
        for (int i = 0; i < c->n_rows && fixed_base < 0; i++) {
            const pb_cmp_row *r = &c->rows[i];
            if (!r->paper && (strcmp(r->run_id, baseline) == 0 || (r->label[0] && strcmp(r->label, baseline) == 0))) {
                if (!is_done(r)) {
                    free(group);
                    return pb_err_set(err, "--baseline %s: that run's status is '%s', not done", baseline, r->status);
                }
                fixed_base = i;
            }
        }
        if (fixed_base < 0) {
            free(group);
            return pb_err_set(err, "--baseline %s: no run with that run_id or label in %s%s", baseline, c->dirs[0],
                              c->n_dirs > 1 ? " (or the other folders)" : "");
        }
    }
    sort_ctx = c;
    for (int g = 0; g < n_groups; g++) {
        int start = t->n, dense = -1;
        for (int i = 0; i < c->n_rows; i++)
            if (group[i] == g && !c->rows[i].paper) t->lines[t->n++] = (line){.row = i, .base = -1, .paper = -1, .group = g};
        qsort(t->lines + start, (size_t)(t->n - start), sizeof *t->lines, cmp_rows);
        for (int i = start; i < t->n && dense < 0; i++)
            if (is_dense(&c->rows[t->lines[i].row]) && is_done(&c->rows[t->lines[i].row])) dense = t->lines[i].row;
        int end = t->n;
        /* published rows: each goes right under the first of our runs it matches */
        line *tmp = pb_calloc((size_t)c->n_rows + 1, sizeof *tmp);
        if (!tmp) {
            free(group);
            return pb_err_set(err, "out of memory");
        }
        int k = 0;
        bool *used = pb_calloc((size_t)c->n_rows + 1, sizeof *used);
        if (!used) {
            free(tmp), free(group);
            return pb_err_set(err, "out of memory");
        }
        for (int i = start; i < end; i++) {
            line l = t->lines[i];
            l.base = fixed_base >= 0 ? fixed_base : dense;
            if (l.base == l.row) l.base = -1;
            tmp[k] = l;
            int self = k++;
            for (int p = 0; p < c->n_rows; p++)
                if (group[p] == g && c->rows[p].paper && !used[p] && matches(&c->rows[p], &c->rows[l.row])) {
                    used[p] = true;
                    if (tmp[self].paper < 0) tmp[self].paper = p;
                    tmp[k++] = (line){.row = p, .base = -1, .paper = l.row, .group = g};
                }
        }
        for (int p = 0; p < c->n_rows; p++)
            if (group[p] == g && c->rows[p].paper && !used[p]) tmp[k++] = (line){.row = p, .base = -1, .paper = -1, .group = g};
        memcpy(t->lines + start, tmp, (size_t)k * sizeof *tmp);
        t->n = start + k;
        free(tmp), free(used);
    }
    free(group);
    /* columns that have something to show */
    double seed0 = NAN;
    for (int i = 0; i < t->n; i++) {
        const pb_cmp_row *r = &c->rows[t->lines[i].row];
        for (int m = 0; m < M_END; m++)
            if (metric_exists(c, m) && isfinite(metric(r, m))) t->show[m] = true;
        t->show_params |= isfinite(r->params_after);
        t->show_params_ne |= isfinite(r->params_after_ne);
        if (!r->paper && isfinite(r->seed)) {
            if (isfinite(seed0) && r->seed != seed0) t->show_seed = true;
            seed0 = r->seed;
        }
    }
    t->show_exp = c->n_dirs > 1;
    for (int m = 0; m < M_END; m++) t->n_metric += t->show[m];
    return 0;
}

/* ---- cells --------------------------------------------------------------------------------- */

static int precision(int m) {
    return m == M_TPUT ? 1 : 2;
}

static void fmt_num(char *out, size_t cap, double v, int prec) {
    if (fabs(v) >= 1e6) snprintf(out, cap, "%.3e", v);
    else snprintf(out, cap, "%.*f", prec, v);
}

/* "+5.04" / "-2.55", never "-0.00". */
static void fmt_delta(char *out, size_t cap, double d, int prec) {
    double q = pow(10, prec);
    if (fabs(d) * q < 0.5) d = 0;
    if (fabs(d) >= 1e6) snprintf(out, cap, "%+.3e", d);
    else snprintf(out, cap, "%+.*f", prec, d);
}

static void fmt_params(char *out, size_t cap, double v) {
    if (!isfinite(v)) snprintf(out, cap, "%s", "");
    else if (v >= 1e9) snprintf(out, cap, "%.2fB", v / 1e9);
    else if (v >= 1e6) snprintf(out, cap, "%.2fM", v / 1e6);
    else if (v >= 1e3) snprintf(out, cap, "%.1fK", v / 1e3);
    else snprintf(out, cap, "%.0f", v);
}

static void fmt_ratio(char *out, size_t cap, const pb_cmp_row *r) {
    if (isfinite(r->ratio)) snprintf(out, cap, "%g%%", 100 * r->ratio);
    else if (isfinite(r->num_blocks) && r->num_blocks >= 0) snprintf(out, cap, "%.0f block%s", r->num_blocks, r->num_blocks == 1 ? "" : "s");
    else if (isfinite(r->native)) snprintf(out, cap, "native %g", r->native);
    else if (is_dense(r)) snprintf(out, cap, "0%%");
    else snprintf(out, cap, "%s", "");
}

static void fmt_criterion(char *out, size_t cap, const pb_cmp_row *r) {
    if (r->criterion[0] && r->granularity[0]) snprintf(out, cap, "%s (%s)", r->criterion, r->granularity);
    else snprintf(out, cap, "%s", r->criterion[0] ? r->criterion : r->granularity);
}

/* The text of metric m on line l: value, then the delta to the baseline (ours) or ours −
 * paper (published rows); empty when not measured. */
static void metric_cell(const table *t, const line *l, int m, pb_cmp_format fmt, char *out, size_t cap) {
    const pb_cmp_row *r = &t->c->rows[l->row];
    double v = metric(r, m);
    char a[64], d[64];
    out[0] = 0;
    if (!isfinite(v)) return;
    fmt_num(a, sizeof a, v, precision(m));
    double other = NAN;
    const char *pre = "";
    if (r->paper && l->paper >= 0) other = metric(&t->c->rows[l->paper], m), pre = "ours ";
    else if (!r->paper && l->base >= 0) other = metric(&t->c->rows[l->base], m);
    if (!isfinite(other)) {
        snprintf(out, cap, "%s", a);
        return;
    }
    fmt_delta(d, sizeof d, r->paper ? other - v : v - other, precision(m));
    if (fmt == PB_CMP_TEX) snprintf(out, cap, "%s {\\scriptsize (%s%s)}", a, pre, d);
    else snprintf(out, cap, "%s (%s%s)", a, pre, d);
}

/* ---- renderings ------------------------------------------------------------------------------ */

static void put_md(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
    }
}

static void put_tex(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '\\': fputs("\\textbackslash{}", f); break;
        case '~': fputs("\\textasciitilde{}", f); break;
        case '^': fputs("\\textasciicircum{}", f); break;
        case '\n': case '\r': fputc(' ', f); break;
        case '&': case '%': case '$': case '#': case '_': case '{': case '}': fputc('\\', f); /* fall through */
        default: fputc(*s, f);
        }
    }
}

static void put_csv(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char *exp_name(const pb_cmp *c, int dir) {
    const char *s = strrchr(c->dirs[dir], '/');
    return s && s[1] ? s + 1 : c->dirs[dir];
}

/* The identity cells of a line, in column order, into cells[] (count returned). */
static int id_cells(const table *t, const line *l, char cells[][160]) {
    const pb_cmp_row *r = &t->c->rows[l->row];
    int k = 0;
    if (t->show_exp) snprintf(cells[k++], 160, "%s", r->paper ? "" : exp_name(t->c, r->dir));
    snprintf(cells[k++], 160, "%s", r->model);
    snprintf(cells[k++], 160, "%s%s", r->method, r->paper ? " (paper)" : "");
    fmt_criterion(cells[k++], 160, r);
    fmt_ratio(cells[k++], 160, r);
    if (t->show_seed) {
        if (isfinite(r->seed)) snprintf(cells[k++], 160, "%.0f", r->seed);
        else cells[k++][0] = 0;
    }
    if (t->show_params) fmt_params(cells[k++], 160, r->params_after);
    if (t->show_params_ne) fmt_params(cells[k++], 160, r->params_after_ne);
    return k;
}

static int id_headers(const table *t, const char **h, bool tex) {
    int k = 0;
    if (t->show_exp) h[k++] = tex ? "Experiment" : "experiment";
    h[k++] = tex ? "Model" : "model";
    h[k++] = tex ? "Method" : "method";
    h[k++] = tex ? "Criterion" : "criterion";
    h[k++] = tex ? "Ratio" : "ratio";
    if (t->show_seed) h[k++] = tex ? "Seed" : "seed";
    if (t->show_params) h[k++] = tex ? "\\#Params" : "#params";
    if (t->show_params_ne) h[k++] = tex ? "\\#Params w/o emb." : "#params w/o emb.";
    return k;
}

/* What the parentheses mean, and why each failed run failed (md: text under the table;
 * tex: comment lines after it). */
static void notes(const table *t, FILE *f, const char *baseline, bool tex) {
    const char *c0 = tex ? "% " : "";
    fprintf(f, "\n%sPPL: lower is better; tasks: headline metric x100. In parentheses: the difference to %s%s; "
               "on (paper) rows, ours - paper.\n",
            c0, baseline ? "run " : "the dense run of the same model", baseline ? baseline : "");
    for (int i = 0; i < t->n; i++) {
        const pb_cmp_row *r = &t->c->rows[t->lines[i].row];
        if (r->paper || is_done(r)) continue;
        fprintf(f, "%s%s run %s (%s): ", c0, r->status, r->run_id, r->label[0] ? r->label : r->method);
        for (const char *e = r->error[0] ? r->error : "no error recorded"; *e; e++) fputc(*e == '\n' ? ' ' : *e, f);
        fputc('\n', f);
    }
}

static void print_md(const table *t, FILE *f, const char *baseline) {
    const char *h[16];
    char name[64], cell[256], cells[16][160];
    int n_id = id_headers(t, h, false);
    fputc('|', f);
    for (int i = 0; i < n_id; i++) fprintf(f, " %s |", h[i]);
    for (int m = 0; m < M_END; m++)
        if (t->show[m]) metric_name(t->c, m, PB_CMP_MD, name, sizeof name), fprintf(f, " %s |", name);
    fputs("\n|", f);
    for (int i = 0; i < n_id; i++) fputs("---|", f);
    for (int m = 0; m < t->n_metric; m++) fputs("---:|", f);
    fputc('\n', f);
    for (int i = 0; i < t->n; i++) {
        const line *l = &t->lines[i];
        const pb_cmp_row *r = &t->c->rows[l->row];
        int k = id_cells(t, l, cells);
        fputc('|', f);
        for (int j = 0; j < k; j++) fputc(' ', f), put_md(f, cells[j][0] ? cells[j] : "\u2013"), fputs(" |", f);
        bool first = true;
        for (int m = 0; m < M_END; m++) {
            if (!t->show[m]) continue;
            if (!r->paper && !is_done(r)) snprintf(cell, sizeof cell, "%s", first ? r->status : "");
            else metric_cell(t, l, m, PB_CMP_MD, cell, sizeof cell);
            first = false;
            fputc(' ', f), put_md(f, cell[0] ? cell : "\u2013"), fputs(" |", f);
        }
        fputc('\n', f);
    }
    notes(t, f, baseline, false);
}

static void print_tex(const table *t, FILE *f, const char *baseline) {
    const char *h[16];
    char name[64], cell[256], cells[16][160];
    int n_id = id_headers(t, h, true);
    fputs("% prunebench compare; needs \\usepackage{booktabs}\n\\begin{tabular}{", f);
    for (int i = 0; i < n_id; i++) fputc('l', f);
    for (int m = 0; m < t->n_metric; m++) fputc('r', f);
    fputs("}\n\\toprule\n", f);
    for (int i = 0; i < n_id; i++) fprintf(f, "%s%s", i ? " & " : "", h[i]);
    for (int m = 0; m < M_END; m++)
        if (t->show[m]) {
            metric_name(t->c, m, PB_CMP_TEX, name, sizeof name);
            fputs(" & ", f);
            /* the arrow is math, not text to escape */
            const char *arrow = strstr(name, "$\\downarrow$");
            if (arrow) fprintf(f, "%.*s", (int)(arrow - name), name), fputs("$\\downarrow$", f);
            else put_tex(f, name);
        }
    fputs(" \\\\\n\\midrule\n", f);
    for (int i = 0; i < t->n; i++) {
        const line *l = &t->lines[i];
        const pb_cmp_row *r = &t->c->rows[l->row];
        if (i > 0 && l->group != t->lines[i - 1].group) fputs("\\midrule\n", f);
        int k = id_cells(t, l, cells);
        for (int j = 0; j < k; j++) {
            if (j) fputs(" & ", f);
            put_tex(f, cells[j][0] ? cells[j] : "--");
        }
        if (!r->paper && !is_done(r) && t->n_metric > 0) {
            fprintf(f, " & \\multicolumn{%d}{l}{\\emph{", t->n_metric);
            put_tex(f, r->status);
            fputs("}}", f);
        } else {
            for (int m = 0; m < M_END; m++) {
                if (!t->show[m]) continue;
                metric_cell(t, l, m, PB_CMP_TEX, cell, sizeof cell);
                fputs(" & ", f);
                if (!cell[0]) fputs("--", f);
                else fputs(cell, f);   /* numbers and our own markup: nothing to escape */
            }
        }
        fputs(" \\\\\n", f);
    }
    fputs("\\bottomrule\n\\end{tabular}\n", f);
    notes(t, f, baseline, true);
}

static void csv_num(FILE *f, double v) {
    fputc(',', f);
    if (isfinite(v)) fprintf(f, "%.10g", v);
}

static void print_csv(const table *t, FILE *f) {
    const pb_cmp *c = t->c;
    char name[64];
    fputs("source,experiment,run_id,label,model,method,criterion,granularity,ratio,native,num_blocks,seed,status,error,"
          "note,baseline,params_before,params_after,params_after_no_embed",
          f);
    static const char *const pre[3] = {"", "delta_", "vs_paper_"};
    for (int p = 0; p < 3; p++)
        for (int m = 0; m < M_END; m++)
            if (metric_exists(c, m)) metric_name(c, m, PB_CMP_CSV, name, sizeof name), fprintf(f, ",%s%s", pre[p], name);
    fputc('\n', f);
    for (int i = 0; i < t->n; i++) {
        const line *l = &t->lines[i];
        const pb_cmp_row *r = &c->rows[l->row];
        fputs(r->paper ? "paper," : "ours,", f);
        const char *s[] = {r->paper ? "" : exp_name(c, r->dir), r->run_id, r->label, r->model, r->method, r->criterion, r->granularity};
        for (size_t j = 0; j < sizeof s / sizeof *s; j++) put_csv(f, s[j]), fputc(',', f);
        if (isfinite(r->ratio)) fprintf(f, "%.10g", r->ratio);
        csv_num(f, r->native);
        csv_num(f, r->num_blocks);
        csv_num(f, r->seed);
        const char *s2[] = {r->status, r->error, r->note, l->base >= 0 ? c->rows[l->base].run_id : ""};
        for (size_t j = 0; j < sizeof s2 / sizeof *s2; j++) fputc(',', f), put_csv(f, s2[j]);
        csv_num(f, r->params_before);
        csv_num(f, r->params_after);
        csv_num(f, r->params_after_ne);
        for (int m = 0; m < M_END; m++)
            if (metric_exists(c, m)) csv_num(f, metric(r, m));
        for (int m = 0; m < M_END; m++)
            if (metric_exists(c, m)) csv_num(f, !r->paper && l->base >= 0 ? metric(r, m) - metric(&c->rows[l->base], m) : NAN);
        for (int m = 0; m < M_END; m++)
            if (metric_exists(c, m)) csv_num(f, !r->paper && l->paper >= 0 ? metric(r, m) - metric(&c->rows[l->paper], m) : NAN);
        fputc('\n', f);
    }
}

int pb_cmp_print(const pb_cmp *c, FILE *f, pb_cmp_format fmt, const char *baseline, pb_err *err) {
    table t;
    if (build(&t, c, baseline, err) != 0) {
        free(t.lines);
        return -1;
    }
    if (fmt == PB_CMP_MD) print_md(&t, f, baseline);
    else if (fmt == PB_CMP_TEX) print_tex(&t, f, baseline);
    else print_csv(&t, f);
    free(t.lines);
    if (fflush(f) != 0 || ferror(f)) return pb_err_set(err, "cannot write the table to the output");
    return 0;
}
