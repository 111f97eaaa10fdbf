/* cmd_finetune.c — `prunebench finetune MODEL --data FILE --out DIR`: LoRA recovery training,
 * with the defaults of the LLM-Pruner / Shortened LLaMA recovery scripts. */
#include "cli.h"
#include "trainer.h"

#include <math.h>
#include <string.h>

static int run(int argc, char **argv);

const pb_cmd pb_cmd_finetune = {
    .name = "finetune", .n_positional = 1, .run = run,
    .usage = "MODEL --data FILE --out DIR [--format alpaca|text] [--lora-rank 8] [--lora-alpha 16] "
             "[--lora-dropout 0.05] [--lora-targets q,k,v,o,gate,up,down] [--lr 1e-4] [--epochs 2] [--batch 64] "
             "[--micro-batch 4] [--cutoff 256] [--val-size N] [--merge] [--resume]",
    .summary = "LoRA fine-tuning (the papers' recovery stage), with checkpoints and resume",
    .details =
        "Defaults are the recovery settings of LLM-Pruner and Shortened LLaMA: Alpaca prompt template, loss on\n"
        "the response only, EOS appended, cutoff 256; LoRA r 8, alpha 16, dropout 0.05 on q,k,v,o,gate,up,down;\n"
        "AdamW lr 1e-4 (weight decay 0), 2 epochs, batch 64 = micro-batch 4 x 16 accumulated, 100 warm-up steps\n"
        "then linear decay, gradient clipping at 1.0; validation every 100 steps, checkpoint every 200.\n"
        "Prints one line per step (loss, lr, grad_norm, tok/s) and per evaluation (val_loss).\n"
        "OUT gets the adapter in PEFT layout (adapter_config.json, adapter_model.safetensors): the best one by\n"
        "validation loss (OUT/best) unless --select last; --merge also writes the merged model to OUT/merged.\n"
        "A killed run continues with --resume from OUT/checkpoint.json and repeats an uninterrupted run's\n"
        "losses exactly (same options and --threads). Evaluate with e.g. `prunebench ppl MODEL --lora OUT`.\n"
        "Alpaca data: a JSON array or JSON Lines of {instruction, input, output}; --format text: documents\n"
        "separated by blank lines, cut into --cutoff windows.",
};

static int run(int argc, char **argv) {
    pb_opt opts[] = {
        PB_CLI_TRAIN_OPTS,
        {"lora-rank", PB_OPT_INT, "R", "adapter rank (default 8)", 0, 0, 0, 0},
        {"lora-alpha", PB_OPT_FLOAT, "A", "adapter scale numerator: scale = alpha / rank (default 16)", 0, 0, 0, 0},
        {"lora-dropout", PB_OPT_FLOAT, "P", "dropout on the adapters' input (default 0.05)", 0, 0, 0, 0},
        {"lora-targets", PB_OPT_STR, "LIST", "projections to adapt (default q,k,v,o,gate,up,down)", 0, 0, 0, 0},
        {"merge", PB_OPT_FLAG, NULL, "also write the model with the adapter merged to OUT/merged", 0, 0, 0, 0},
        {"select", PB_OPT_STR, "best|last", "which adapter OUT gets (default best by validation loss)", 0, 0, 0, 0},
        PB_CLI_COMMON_OPTS, {0}};
    const char *pos[1];
    int code;
    if (pb_cli_parse(&pb_cmd_finetune, argc, argv, opts, pos, &code)) return code;
    pb_train_opts o;
    pb_train_defaults(&o);
    o.command = "finetune";
    o.model_path = pos[0];
    pb_err err = {0};
    pb_opt *x;
    if (pb_cli_train_opts(opts, &o, &err) != 0) return pb_cli_fail(&err);
    if ((x = pb_cli_opt(opts, "lora-rank"))->set) o.rank = x->ival < -1 ? -1 : x->ival > 65536 ? 65536 : (int)x->ival;
    if ((x = pb_cli_opt(opts, "lora-alpha"))->set) o.alpha = (float)x->fval;
    if ((x = pb_cli_opt(opts, "lora-dropout"))->set) o.dropout = (float)x->fval;
    if ((x = pb_cli_opt(opts, "lora-targets"))->set && pb_lora_parse_targets(x->str, &o.targets, &err) != 0)
        return pb_cli_fail(&err);
    o.merge = pb_cli_opt(opts, "merge")->set;
    if ((x = pb_cli_opt(opts, "select"))->set) {
        if (strcmp(x->str, "last") == 0) o.select_last = true;
        else if (strcmp(x->str, "best") != 0) {
            pb_err_set(&err, "finetune: unknown --select '%s' (best or last)", x->str);
            return pb_cli_fail(&err);
        }
    }
    if (pb_cli_opt(opts, "lora")->set) {
        pb_err_set(&err, "finetune: --lora applies an adapter for evaluation; training continues only with --resume");
        return pb_cli_fail(&err);
    }
    if (pb_train_check(&o, &err) != 0) return pb_cli_fail(&err);

    pb_model *m = NULL;
    pb_tokenizer *tok = NULL;
    if (pb_cli_load(pos[0], opts, true, &m, &tok, &err) != 0) return pb_cli_fail(&err);
    if (pb_is_dir(pos[0])) o.tokenizer_from = pos[0];
    pb_train_result r;
    int rc = pb_train_run(m, tok, &o, &r, &err);
    if (rc == 0) {
        printf("done: %lld steps, loss %.6f -> %.6f", (long long)r.steps, r.first_loss, r.last_loss);
        if (isfinite(r.val_before)) printf(", val_loss %.6f -> best %.6f (step %lld)", r.val_before, r.val_best,
                                           (long long)r.best_step);
        printf(", %.0f tok/s; adapter in %s\n", r.tokens_per_s, o.out_dir);
    }
    pb_tok_free(tok);
    pb_model_free(m);
    return rc == 0 ? PB_EXIT_OK : pb_cli_fail(&err);
}
