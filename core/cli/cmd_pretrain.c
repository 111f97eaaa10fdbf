/* cmd_pretrain.c — `prunebench pretrain CONFIG --data FILE --out DIR`: every weight of a small
 * model trained from a fresh initialisation, through the same loop as finetune. */
#include "cli.h"
#include "grad.h"
#include "trainer.h"

#include <math.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_pretrain = {
    .name = "pretrain", .n_positional = 1, .run = run,
    .usage = "CONFIG --tokenizer FILE --data FILE --out DIR [--init-std 0.02] [--lr 5e-4] [--epochs 1] [--batch 32] "
             "[--micro-batch 8] [--cutoff 256] [--val-size N] [--resume]",
    .summary = "full-parameter training of a small LLaMA from scratch (causal LM on plain text)",
    .details =
        "CONFIG: a Hugging Face config.json (or a folder holding one) giving the architecture; per-layer shapes\n"
        "under \"prunebench_layers\" are honoured. Weights start as HF's LlamaPreTrainedModel init: normal(0,\n"
        "--init-std) for embeddings and projections, ones for norms, zeros for biases (seeded by --seed).\n"
        "Defaults: --format text (documents separated by blank lines, each with BOS, cut into --cutoff windows),\n"
        "AdamW lr 5e-4, weight decay 0.1 on matrices, 1 epoch, batch 32 in micro-batches of 8, 10 warm-up steps,\n"
        "cosine decay, clipping at 1.0. OUT gets the model (config.json + model.safetensors). --tokenizer is\n"
        "required; a tokenizer.json or tokenizer.model file is copied along when it comes from an HF folder.",
};

/* HF's _init_weights for LlamaForCausalLM: N(0, std) for Linear and Embedding weights. */
static void init_weights(pb_model *m, double std, uint64_t seed) {
    uint64_t st = pb_mix64(seed ^ 0x5eedull);
    int L = m->cfg.n_layers;
    for (int l = -1; l < L; l++)
        for (int k = 0; k < PB_G_INPUT; k++) {
            if ((k <= PB_G_FINAL_NORM) != (l < 0)) continue;
            int r, c;
            float *w = pb_grad_tensor(m, (pb_grad_kind)k, l, &r, &c);
            if (!w) continue;
            size_t n = (size_t)r * c;
            bool norm = k == PB_G_FINAL_NORM || k == PB_G_ATTN_NORM || k == PB_G_MLP_NORM;
            for (size_t i = 0; i < n; i++) {
                if (c == 1) {
                    w[i] = norm ? 1.0f : 0.0f;
                    continue;
                }
                /* Box-Muller on two 53-bit uniforms */
                double u1 = pb_rng_uniform(&st), u2 = pb_rng_uniform(&st);
                w[i] = (float)(std * sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2));
            }
        }
}

static int run(int argc, char **argv) {
    pb_opt opts[] = {
        PB_CLI_TRAIN_OPTS,
        {"init-std", PB_OPT_FLOAT, "S", "std of the normal initialisation (default 0.02)", 0, 0, 0, 0},
        PB_CLI_COMMON_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_pretrain, argc, argv, opts, pos, &code)) return code;
    pb_train_opts o;
    pb_train_defaults(&o);
    o.command = "pretrain";
    o.model_path = pos[0];
    o.lora = false;
    o.data.format = PB_SFT_TEXT;
    o.epochs = 1;
    o.batch = 32;
    o.micro_batch = 8;
    o.lr = 5e-4;
    o.adam.weight_decay = 0.1;
    o.adam.beta2 = 0.95;
    o.sched = PB_SCHED_COSINE;
    o.warmup = 10;
    pb_err err = {0};
    if (pb_cli_train_opts(opts, &o, &err) != 0) return pb_cli_fail(&err);
    pb_opt *is = pb_cli_opt(opts, "init-std");
    double std = is->set ? is->fval : 0.02;
    if (!(std > 0) || !isfinite(std)) {
        pb_err_set(&err, "pretrain: --init-std must be positive");
        return pb_cli_fail(&err);
    }
    const char *tpath = pb_cli_opt(opts, "tokenizer")->str;
    if (!tpath) {
        pb_err_set(&err, "pretrain: --tokenizer FILE is required");
        return pb_cli_fail(&err);
    }
    if (pb_cli_opt(opts, "lora")->set) {
        pb_err_set(&err, "pretrain: --lora does not apply (every weight is trained)");
        return pb_cli_fail(&err);
    }
    if (pb_train_check(&o, &err) != 0) return pb_cli_fail(&err);
    pb_opt *th = pb_cli_opt(opts, "threads");
    if (th->set) pb_set_threads((int)th->ival);

    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    if (pb_hf_config_load(pos[0], true, &m, &err) != 0 || pb_tok_load(tpath, &tok, &err) != 0) {
        pb_model_free(m);
        return pb_cli_fail(&err);
    }
    int rc = 0;
    if (pb_tok_vocab_size(tok) > m->cfg.vocab_size)
        rc = pb_err_set(&err, "pretrain: %s has %d tokens, more than the config's vocab_size %d", tpath,
                        pb_tok_vocab_size(tok), m->cfg.vocab_size);
    pb_train_result r;
    if (rc == 0) {
        init_weights(m, std, o.seed);
        rc = pb_train_run(m, tok, &o, &r, &err);
    }
    if (rc == 0) {
        printf("done: %lld steps, loss %.6f -> %.6f", (long long)r.steps, r.first_loss, r.last_loss);
        if (isfinite(r.val_before)) printf(", val_loss %.6f -> %.6f", r.val_before, r.val_last);
        printf(", %.0f tok/s; model in %s\n", r.tokens_per_s, o.out_dir);
    }
    pb_tok_free(tok);
    pb_model_free(m);
    return rc == 0 ? PB_EXIT_OK : pb_cli_fail(&err);
}
