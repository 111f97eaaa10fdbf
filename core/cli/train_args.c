/* train_args.c — the options finetune and pretrain share, read into pb_train_opts. */
#include "cli.h"
#include "trainer.h"

#include <string.h>

int pb_cli_train_opts(pb_opt *opts, void *train_opts, pb_err *err) {
    pb_train_opts *o = train_opts;
    pb_opt *x;
    o->data_path = pb_cli_opt(opts, "data")->str;
    o->out_dir = pb_cli_opt(opts, "out")->str;
    if (!o->data_path) return pb_err_set(err, "%s: --data FILE is required", o->command);
    if (!o->out_dir) return pb_err_set(err, "%s: --out DIR is required", o->command);
    if ((x = pb_cli_opt(opts, "format"))->set) {
        if (strcmp(x->str, "alpaca") == 0) o->data.format = PB_SFT_ALPACA;
        else if (strcmp(x->str, "text") == 0) o->data.format = PB_SFT_TEXT;
        else return pb_err_set(err, "%s: unknown --format '%s' (alpaca or text)", o->command, x->str);
    }
    if ((x = pb_cli_opt(opts, "cutoff"))->set) {
        if (x->ival < 2 || x->ival > (1 << 20)) return pb_err_set(err, "%s: --cutoff must be between 2 and 2^20", o->command);
        o->data.cutoff = (int)x->ival;
    }
    if (pb_cli_opt(opts, "train-on-inputs")->set) o->data.train_on_inputs = true;
    const struct { const char *name; int *dst; long lo; } ints[] = {
        {"val-size", &o->val_size, 0}, {"epochs", &o->epochs, 1}, {"batch", &o->batch, 1},
        {"micro-batch", &o->micro_batch, 1}, {"eval-every", &o->eval_every, 0}, {"save-every", &o->save_every, 0}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if ((x = pb_cli_opt(opts, ints[i].name))->set) {
            if (x->ival < ints[i].lo || x->ival > 1000000000L)
                return pb_err_set(err, "%s: --%s must be at least %ld (got %ld)", o->command, ints[i].name, ints[i].lo,
                                  x->ival);
            *ints[i].dst = (int)x->ival;
        }
    if ((x = pb_cli_opt(opts, "max-steps"))->set) {
        if (x->ival < 1) return pb_err_set(err, "%s: --max-steps must be at least 1", o->command);
        o->max_steps = x->ival;
    }
    if ((x = pb_cli_opt(opts, "warmup"))->set) {
        if (x->ival < 0) return pb_err_set(err, "%s: --warmup must not be negative", o->command);
        o->warmup = x->ival;
    }
    if ((x = pb_cli_opt(opts, "seed"))->set) o->seed = (uint64_t)x->ival;
    if ((x = pb_cli_opt(opts, "lr"))->set) o->lr = x->fval;
    if ((x = pb_cli_opt(opts, "weight-decay"))->set) {
        if (x->fval < 0) return pb_err_set(err, "%s: --weight-decay must not be negative", o->command);
        o->adam.weight_decay = x->fval;
    }
    if ((x = pb_cli_opt(opts, "max-grad-norm"))->set) o->max_grad_norm = x->fval;
    if ((x = pb_cli_opt(opts, "schedule"))->set) PB_TRY(pb_sched_parse(x->str, &o->sched, err));
    if ((x = pb_cli_opt(opts, "save-dtype"))->set) {
        if (strcmp(x->str, "f32") == 0) o->save_dtype = PB_DTYPE_F32;
        else if (strcmp(x->str, "f16") == 0) o->save_dtype = PB_DTYPE_F16;
        else if (strcmp(x->str, "bf16") == 0) o->save_dtype = PB_DTYPE_BF16;
        else return pb_err_set(err, "%s: unknown --save-dtype '%s' (f32, f16 or bf16)", o->command, x->str);
    }
    o->resume = pb_cli_opt(opts, "resume")->set;
    return 0;
}
