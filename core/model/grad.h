/* grad.h — the backward driver: the loss of a batch and its gradients with respect to any
 * chosen weights, LoRA adapters and the input embeddings, streamed to a consumer.
 *
 * Memory. Activations are recomputed, not stored: the forward keeps only each layer's
 * input (the residual stream, L+1 times (N, d) per micro-batch) and the backward
 * recomputes one layer's internals at a time. Weight gradients are produced one layer at
 * a time, over all micro-batches, in one layer-sized buffer that the consumer reads
 * before the next layer reuses it; so scoring every weight of a model (Taylor importance,
 * Fisher terms) needs the model, one layer of gradients, the embedding/head gradient if
 * asked for, and the residual checkpoints — never a second copy of the model.
 *
 * Order of work: (1) every micro-batch forward to the loss and back through the LM head
 * and final norm; (2) layers L-1..0, each over every micro-batch; (3) the embedding. */
#ifndef PB_GRAD_H
#define PB_GRAD_H

#include "model.h"

/* The tensors whose gradients a caller can ask for (bit (1u << kind) of pb_grad_opts.want). */
typedef enum {
    PB_G_EMBED, PB_G_LM_HEAD, PB_G_FINAL_NORM,
    PB_G_ATTN_NORM, PB_G_Q, PB_G_K, PB_G_V, PB_G_O, PB_G_BQ, PB_G_BK, PB_G_BV, PB_G_BO,
    PB_G_MLP_NORM, PB_G_GATE, PB_G_UP, PB_G_DOWN, PB_G_BGATE, PB_G_BUP, PB_G_BDOWN,
    PB_G_INPUT,   /* d loss / d (input embeddings), (B*T, d) per micro-batch */
    PB_G_COUNT
} pb_grad_kind;

extern const char *const pb_grad_kind_names[PB_G_COUNT];  /* HF-style short names: "embed", "q", ... */

#define PB_G_ALL_WEIGHTS ((1u << PB_G_INPUT) - 1u)
/* the 7 projections and 2 norms of a block (Shortened LLaMA's block importance) */
#define PB_G_BLOCK ((1u << PB_G_ATTN_NORM) | (1u << PB_G_Q) | (1u << PB_G_K) | (1u << PB_G_V) | (1u << PB_G_O) | \
                    (1u << PB_G_MLP_NORM) | (1u << PB_G_GATE) | (1u << PB_G_UP) | (1u << PB_G_DOWN))

/* One gradient, handed to the consumer when it is complete. With a tied LM head, the
 * embedding's gradient (head + lookup) comes once, as PB_G_EMBED. */
typedef struct {
    pb_grad_kind kind;
    int layer;            /* -1 for embed, lm_head, final_norm, input */
    int micro;            /* the micro-batch, when per_micro_batch or for PB_G_INPUT; else -1 */
    const float *w;       /* the weight (NULL for PB_G_INPUT) */
    const float *g;       /* its gradient, same layout */
    int rows, cols;       /* row-major (rows, cols); vectors have cols == 1 */
} pb_grad_event;

/* Returns 0, or -1 with err set to stop the run. */
typedef int (*pb_grad_consumer)(void *ctx, const pb_grad_event *ev, pb_err *err);

typedef enum {
    PB_LOSS_MEAN_TOKENS,   /* mean NLL over every labelled position of every micro-batch */
    PB_LOSS_MEAN_MICRO     /* mean over micro-batches of each one's token mean: what HF Trainer's
                              gradient accumulation optimises (loss / accumulation steps) */
} pb_loss_norm;

typedef struct {
    unsigned want;             /* weights (and PB_G_INPUT) whose gradients the consumer receives */
    pb_grad_consumer consumer;
    void *ctx;
    bool per_micro_batch;      /* consumer gets each micro-batch's own gradient (a Fisher term
                                  needs per-sample squares) instead of the sum */
    pb_loss_norm norm;
    double loss_scale;         /* multiplies every gradient (0 means 1), not the returned loss:
                                  1/k when a trainer runs k accumulated micro-batches one call
                                  at a time (HF's loss / gradient_accumulation_steps) */
} pb_grad_opts;

/* A micro-batch: B sequences of T tokens; targets (B, T) are the token each position must
 * predict, -1 for none (prompt, padding, the last position). */
typedef struct {
    const int32_t *tokens;
    const int32_t *targets;
    int B, T;
} pb_batch;

typedef struct pb_grad_state pb_grad_state;
pb_grad_state *pb_grad_state_new(void);
void pb_grad_state_free(pb_grad_state *s);
/* Peak bytes of scratch the state has held (benchmarks report it). */
size_t pb_grad_state_bytes(const pb_grad_state *s);

/* Runs forward and backward over n micro-batches. *loss (optional) is the normalised loss,
 * *n_labelled (optional) the labelled positions. LoRA gradients accumulate (+=) into the
 * adapters of m->lora when they have gradient buffers; dropout applies when
 * m->lora->training, keyed by m->lora->dropout_key and the micro-batch index. Fails on bad
 * tokens or targets, a non-finite loss (naming the micro-batch and row), no labelled
 * position at all, or a consumer's error. */
int pb_grad_run(const pb_model *m, pb_grad_state *s, const pb_batch *mb, int n_micro, const pb_grad_opts *o,
                double *loss, int64_t *n_labelled, pb_err *err);

/* The weight of kind k (layer l for block tensors, ignored otherwise) and its row-major
 * shape (vectors: cols 1), or NULL when the model has no such tensor (a missing sublayer
 * or bias, lm_head of a tied model, PB_G_INPUT). */
float *pb_grad_tensor(const pb_model *m, pb_grad_kind k, int l, int *rows, int *cols);

/* targets[b][t] = tokens[b][t+1], -1 at t = T-1: the plain next-token objective. */
void pb_batch_next_token(const int32_t *tokens, int B, int T, int32_t *targets);

#endif
