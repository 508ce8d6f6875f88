"""A population library's C source: the fixed C around the generated loops
(:func:`actsearch.expressions.printing.c.function_source`) and how its translation units are put
together (:func:`c_sources`). The fixed parts: the prelude every translation unit starts with
(the float32 primitives the operator table's ``c`` column names), the dispatcher that runs each
member on its own function (through the population's TABLES), and the rest of a stacked
network's training step in C (loss, finiteness check, Adam, the MLP's whole step, convolution
columns, BatchNorm). PRELUDE and TABLES are ``%``-format templates (literal percent signs
doubled); TYPES, DISPATCH and STEP are plain C, the same for every population."""
from __future__ import annotations

from typing import Any, Sequence

from ...expressions.functions import EPS
from ...expressions.printing.c import function_source

__all__ = ["PRELUDE", "TYPES", "TABLES", "DISPATCH", "STEP", "c_sources"]

PRELUDE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define HIDDEN __attribute__((visibility("hidden")))
#ifdef ACTSEARCH_LIBMVEC
#define VEC __attribute__((simd("notinbranch")))
#else
#define VEC
#endif
/* sin and cos are declared const and built with -fno-builtin-sinf/cosf: otherwise GCC merges a
   sin and a cos of one argument into sincosf, which does not vectorise. */
VEC __attribute__((const)) float sinf(float); VEC __attribute__((const)) float cosf(float);
VEC float expf(float); VEC float logf(float); VEC float log1pf(float);
VEC float sinhf(float); VEC float coshf(float); VEC float tanhf(float);
VEC float asinhf(float); VEC float atanf(float); VEC float erff(float); float powf(float, float);
#define fabsf __builtin_fabsf
#define sqrtf __builtin_sqrtf
#define copysignf __builtin_copysignf
#define EPS %(eps)sf
static inline float _sq(float a) { return a * a; }
static inline float _sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }
static inline float _softplus(float a) { float s = log1pf(expf(a)); return a > 20.0f ? a : s; }
/* Selects by arithmetic on 0/1 masks: a ?: around a call is control flow GCC will not vectorise. */
static inline float _sinc(float a) { float z = a == 0.0f, s = sinf(a) / (a + z); return s + z; }
static inline float _dsinc(float a) {  /* (a cos a - sin a)/a^2, by its series near 0 */
  float m = fabsf(a) < 0.05f, d = a + m;
  float big = (a * cosf(a) - sinf(a)) / (d * d), small = a * (a * a / 30.0f - 1.0f / 3.0f);
  return m * small + (1.0f - m) * big;
}
static inline float _max(float a, float b) { return (a > b || a != a) ? a : b; }
static inline float _min(float a, float b) { return (a < b || a != a) ? a : b; }
static inline float _heaviside(float a) { return a > 0.0f ? 1.0f : (a < 0.0f ? 0.0f : 0.5f); }
static inline float _step(float a, float at0) { return a > 0.0f ? 1.0f : (a < 0.0f ? 0.0f : at0); }
static inline float _gate(float g, float v) { return g == 0.0f ? 0.0f : g * v; }
static inline float _sign(float a) { return a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : 0.0f); }
"""

TYPES = r"""
/* (N runs, R values per run, run stride, ...): one call per member, the runs looped inside — a call
   per run cost ~2x for a channels_last CNN layer's runs of C = 32 values. */
typedef void fwd_fn_t(int64_t, int64_t, int64_t, const float*, float*, const float* const*);
typedef void bwd_fn_t(int64_t, int64_t, int64_t, const float*, const float*, float*, const float* const*,
                      float* const*);
typedef fwd_fn_t* fwd_fn;
typedef bwd_fn_t* bwd_fn;
"""

# The one population-specific part of the dispatcher: which loops member i runs, and its β count.
TABLES = r"""%(decls)s
HIDDEN const fwd_fn actsearch_fwd[] = {%(fwd)s};
HIDDEN const bwd_fn actsearch_bwd[] = {%(bwd)s};
HIDDEN const int actsearch_nb[] = {%(nb)s};
HIDDEN const int actsearch_maxb = %(maxb)d;
"""

DISPATCH = r"""
extern HIDDEN const fwd_fn actsearch_fwd[];
extern HIDDEN const bwd_fn actsearch_bwd[];
extern HIDDEN const int actsearch_nb[];
extern HIDDEN const int actsearch_maxb;
#define FWD actsearch_fwd
#define BWD actsearch_bwd
#define NB actsearch_nb
#define MAXB actsearch_maxb

/* beta j of member k for each value of a run: value r is in channel (r / inner) % C — written as
   nested loops over (channel, inner), no division per value (that cost a stacked MLP member with a
   per-channel beta 2.5x its step: a run is all N*C values of the member). */
static void expand(const float* beta, int64_t per_channel, int64_t R, int64_t inner, int64_t C, float* out) {
  if (!per_channel) {
    for (int64_t r = 0; r < R; r++) out[r] = beta[0];
    return;
  }
  for (int64_t r = 0; r < R;)
    for (int64_t c = 0; c < C && r < R; c++) {
      const float b = beta[c];
      const int64_t end = r + inner < R ? r + inner : R;
      for (; r < end; r++) out[r] = b;
    }
}

/* Subnormal floats flushed to zero while a member's loops run (FTZ and DAZ, restored after): an
   exp(-b*u^2) far in its tail yields subnormals, and each costs the CPU a microcode assist — one
   such member of a stacked MLP ran 2.5x slower than with them flushed. Values below 1.2e-38 are
   0 for training; the flag is the thread's own, so nothing else of the process changes. */
#if defined(__SSE__)
#include <xmmintrin.h>
#define FLUSH_SUBNORMALS unsigned int mxcsr_ = _mm_getcsr(); _mm_setcsr(mxcsr_ | 0x8040u);
#define RESTORE_SUBNORMALS _mm_setcsr(mxcsr_);
#else
#define FLUSH_SUBNORMALS
#define RESTORE_SUBNORMALS
#endif

/* A member with per-channel beta whose values lie in one run of N*C (a stacked MLP layer, channel
   r % C) is run as N runs of C instead: its beta is expanded to C values, not N*C, and the
   generated backward adds each run's dL/dbeta into the same C sums — in the same order. */
static void runs_of_channels(int nb, int64_t per_channel, int64_t inner, int64_t C, int64_t* n, int64_t* r,
                             int64_t* s) {
  if (nb && per_channel && inner == 1 && *n == 1 && *r % C == 0) {
    *n = *r / C;
    *s = C;
    *r = C;
  }
}

/* out[c] = the sum of g's values in channel c, in the order of r (as a plain loop would add them). */
static void reduce_channels(const float* g, int64_t R, int64_t inner, int64_t C, float* out) {
  for (int64_t c = 0; c < C; c++) out[c] = 0.0f;
  if (inner == 1) {
    for (int64_t base = 0; base < R; base += C) {
      const int64_t m = R - base < C ? R - base : C;
      for (int64_t c = 0; c < m; c++) out[c] += g[base + c];
    }
    return;
  }
  for (int64_t r = 0; r < R;)
    for (int64_t c = 0; c < C && r < R; c++) {
      const int64_t end = r + inner < R ? r + inner : R;
      for (; r < end; r++) out[c] += g[r];
    }
}

/* One member's activations: function f on N runs of R values (run n at + n*sn), its β slots
   beta[0..NB[f]) (C values per channel if per_channel, else 1). 0, or 1 when out of memory. */
static int member_forward(int f, int64_t N, int64_t R, int64_t inner, int64_t C, int64_t sn, const float* x,
                          float* y, const float* const* beta, int64_t per_channel) {
  int64_t n = N, r = R, s = sn;
  runs_of_channels(NB[f], per_channel, inner, C, &n, &r, &s);
  float* scratch = malloc(sizeof(float) * (NB[f] * r + 1));
  if (!scratch) return 1;
  const float* b[MAXB];
  for (int j = 0; j < NB[f]; j++) {
    expand(beta[j], per_channel, r, inner, C, scratch + j * r);
    b[j] = scratch + j * r;
  }
  FLUSH_SUBNORMALS
  FWD[f](n, r, s, x, y, b);
  RESTORE_SUBNORMALS
  free(scratch);
  return 0;
}

/* Its backward: gx from gy, and dL/dbeta_j into gbeta[j] (C values per channel, else 1; NULL: not
   wanted). */
static int member_backward(int f, int64_t N, int64_t R, int64_t inner, int64_t C, int64_t sn, const float* x,
                           const float* gy, float* gx, const float* const* beta, int64_t per_channel,
                           float* const* gbeta) {
  int64_t n = N, r = R, s = sn;
  runs_of_channels(NB[f], per_channel, inner, C, &n, &r, &s);
  float* scratch = malloc(sizeof(float) * (2 * NB[f] * r + 1));
  if (!scratch) return 1;
  const float* b[MAXB];
  float* g[MAXB];
  for (int j = 0; j < NB[f]; j++) {
    expand(beta[j], per_channel, r, inner, C, scratch + j * r);
    b[j] = scratch + j * r;
    g[j] = scratch + (NB[f] + j) * r;
    for (int64_t i = 0; i < r; i++) g[j][i] = 0.0f;
  }
  FLUSH_SUBNORMALS
  BWD[f](n, r, s, x, gy, gx, b, g);
  RESTORE_SUBNORMALS
  for (int j = 0; j < NB[f]; j++) {
    float* out = gbeta[j];
    if (!out) continue;
    if (per_channel) {
      reduce_channels(g[j], r, inner, C, out);
    } else {
      float total = 0.0f;
      for (int64_t i = 0; i < r; i++) total += g[j][i];
      out[0] = total;
    }
  }
  free(scratch);
  return 0;
}

/* Member k's values start at x + k*sk: N runs of R contiguous values, run n at + n*sn.
   Members run in parallel on torch's own OpenMP pool (the library links the libgomp torch loaded). */
int actsearch_forward(int64_t K, const int32_t* fid, int64_t N, int64_t R, int64_t inner, int64_t C, int64_t sk,
                      int64_t sn, const float* x, float* y, const float* const* beta,
                      const int64_t* per_channel) {
  int err = 0;
  #pragma omp parallel for schedule(dynamic, 1) reduction(|: err)
  for (int64_t k = 0; k < K; k++)
    err |= member_forward(fid[k], N, R, inner, C, sn, x + k * sk, y + k * sk, beta + k * MAXB, per_channel[k]);
  return err;
}

/* gbeta[k*MAXB + j]: where dL/dbeta_j of member k goes (C values per channel, else 1), or NULL. */
int actsearch_backward(int64_t K, const int32_t* fid, int64_t N, int64_t R, int64_t inner, int64_t C, int64_t sk,
                       int64_t sn, const float* x, const float* gy, float* gx,
                       const float* const* beta, const int64_t* per_channel, float* const* gbeta) {
  int err = 0;
  #pragma omp parallel for schedule(dynamic, 1) reduction(|: err)
  for (int64_t k = 0; k < K; k++)
    err |= member_backward(fid[k], N, R, inner, C, sn, x + k * sk, gy + k * sk, gx + k * sk, beta + k * MAXB,
                           per_channel[k], gbeta + k * MAXB);
  return err;
}
"""


# The rest of a stacked MLP's training step that is not a matmul (actsearch.evaluation._backprop): torch
# spends ~10 us of dispatch per op on these (K, N, 10) tensors, 8 ops for the loss alone.
STEP = r"""
/* One member's cross-entropy: x (N, C) logits, t (N,) labels; returns the mean over n of
   -log softmax(x)[label], as torch's log_softmax + nll_loss; d = its gradient (softmax -
   onehot(label)) / N, as their backward computes it. CE_LANES examples at a time, one per SIMD
   lane, their logits transposed into xt[c][lane]: a row of C = 10 classes is too short a loop to
   vectorise (expf was ~90% of this call). */
#define CE_LANES 16
static float ce_member(int64_t N, int64_t C, const float* x0, const int64_t* t, float* d0) {
  const float inv = 1.0f / (float)N;
  float total = 0.0f;
  float xt[C * CE_LANES], m[CE_LANES], lse[CE_LANES];
  for (int64_t n0 = 0; n0 < N; n0 += CE_LANES) {
    const int64_t nb = N - n0 < CE_LANES ? N - n0 : CE_LANES;
    const float* x = x0 + n0 * C;
    float* d = d0 + n0 * C;
    for (int64_t c = 0; c < C; c++)
      for (int64_t j = 0; j < nb; j++) xt[c * CE_LANES + j] = x[j * C + c];
    for (int64_t j = 0; j < nb; j++) m[j] = xt[j];
    for (int64_t c = 1; c < C; c++) {
      #pragma omp simd
      for (int64_t j = 0; j < nb; j++) {
        const float v = xt[c * CE_LANES + j];
        m[j] = (v > m[j] || v != v) ? v : m[j];
      }
    }
    for (int64_t j = 0; j < nb; j++) lse[j] = 0.0f;
    for (int64_t c = 0; c < C; c++) {
      #pragma omp simd
      for (int64_t j = 0; j < nb; j++) lse[j] += expf(xt[c * CE_LANES + j] - m[j]);
    }
    #pragma omp simd
    for (int64_t j = 0; j < nb; j++) lse[j] = logf(lse[j]);
    for (int64_t c = 0; c < C; c++) {
      #pragma omp simd
      for (int64_t j = 0; j < nb; j++) xt[c * CE_LANES + j] = expf(xt[c * CE_LANES + j] - m[j] - lse[j]) * inv;
    }
    for (int64_t c = 0; c < C; c++)
      for (int64_t j = 0; j < nb; j++) d[j * C + c] = xt[c * CE_LANES + j];
    for (int64_t j = 0; j < nb; j++) {  /* in example order, as the plain loop summed */
      const int64_t label = t[n0 + j];
      total += -(x[j * C + label] - m[j] - lse[j]);
      d[j * C + label] -= inv;
    }
  }
  return total / (float)N;
}

/* Member k, example n: logits[(k*N + n)*C + c], label target[k*N + n]; loss[k] and g (K, N, C) as
   ce_member gives them. */
void actsearch_cross_entropy(int64_t K, int64_t N, int64_t C, const float* logits, const int64_t* target,
                             float* loss, float* g) {
  #pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < K; k++) loss[k] = ce_member(N, C, logits + k * N * C, target + k * N, g + k * N * C);
}

/* The columns of a stacked 1-D convolution as one matrix per member (what a grouped convolution
   builds inside): a (member k at a + k*sk) is (N, L, C) rows of C channels; u is (K, N, T, taps, C)
   with u[k][n][t][j] = a[k][n][stride*t + j - pad], 0 in the padding — a window is one contiguous
   span of a's rows. A convolution is then one batched GEMM: u (K, N*T, taps*C) times the weights. */
void actsearch_im2col(int64_t K, int64_t N, int64_t L, int64_t C, int64_t T, int64_t taps, int64_t stride,
                      int64_t pad, int64_t sk, const float* a, float* u) {
  #pragma omp parallel for collapse(2) schedule(static)
  for (int64_t k = 0; k < K; k++)
    for (int64_t n = 0; n < N; n++) {
      const float* restrict src = a + k * sk + n * L * C;
      float* restrict dst = u + (k * N + n) * T * taps * C;
      for (int64_t t = 0; t < T; t++, dst += taps * C) {
        const int64_t p0 = stride * t - pad;
        const int64_t lo = p0 < 0 ? -p0 : 0, hi = p0 + taps > L ? L - p0 : taps;  /* taps inside a */
        for (int64_t i = 0; i < lo * C; i++) dst[i] = 0.0f;
        memcpy(dst + lo * C, src + (p0 + lo) * C, sizeof(float) * (hi - lo) * C);
        for (int64_t i = hi * C; i < taps * C; i++) dst[i] = 0.0f;
      }
    }
}

/* The adjoint of actsearch_im2col: ga (K, N, L, C) = the sum, over the columns gu (K, N, T, taps, C),
   of each entry at the row it was read from — gathered per row of ga (a row two windows share
   gets both), so each value is written once. The windows reading each row are listed first. */
void actsearch_col2im(int64_t K, int64_t N, int64_t L, int64_t C, int64_t T, int64_t taps, int64_t stride,
                      int64_t pad, const float* gu, float* ga) {
  int64_t* readers = malloc(sizeof(int64_t) * L * (taps + 1));  /* per row: count, then column offsets */
  if (!readers) abort();
  for (int64_t p = 0; p < L; p++) {
    int64_t* r = readers + p * (taps + 1);
    r[0] = 0;
    for (int64_t j = 0; j < taps; j++) {  /* window t reads row p as its tap j when stride*t = p + pad - j */
      const int64_t q = p + pad - j;
      if (q >= 0 && q % stride == 0 && q / stride < T) r[1 + r[0]++] = ((q / stride) * taps + j) * C;
    }
  }
  #pragma omp parallel for collapse(2) schedule(static)
  for (int64_t k = 0; k < K; k++)
    for (int64_t n = 0; n < N; n++) {
      const float* restrict src = gu + (k * N + n) * T * taps * C;
      float* restrict dst = ga + (k * N + n) * L * C;
      for (int64_t p = 0; p < L; p++, dst += C) {
        const int64_t* r = readers + p * (taps + 1);
        if (r[0] == 0) {
          for (int64_t c = 0; c < C; c++) dst[c] = 0.0f;
          continue;
        }
        const float* restrict first = src + r[1];
        for (int64_t c = 0; c < C; c++) dst[c] = first[c];
        for (int64_t e = 2; e <= r[0]; e++) {
          const float* restrict col = src + r[e];
          for (int64_t c = 0; c < C; c++) dst[c] += col[c];
        }
      }
    }
  free(readers);
}

/* Per channel, the sums over R rows of C values of (a - ca) * (b - cb) into double acc[c] (ca, cb
   NULL: 0; b NULL: the factor is 1) — summed in float over blocks of BN_BLOCK rows, the blocks in
   double; part: C floats of scratch. The backward sums two products in one pass this way. */
#define BN_BLOCK 64
__attribute__((always_inline)) inline  /* specialised at each call: ca, b, cb tested at compile time */
static void channel_sums(int64_t R, int64_t C, const float* restrict a, const float* restrict ca,
                         const float* restrict b, const float* restrict cb, float* restrict part,
                         double* restrict acc) {
  for (int64_t c = 0; c < C; c++) acc[c] = 0.0;
  for (int64_t r0 = 0; r0 < R; r0 += BN_BLOCK) {
    const int64_t r1 = r0 + BN_BLOCK < R ? r0 + BN_BLOCK : R;
    for (int64_t c = 0; c < C; c++) part[c] = 0.0f;
    for (int64_t r = r0; r < r1; r++)
      for (int64_t c = 0; c < C; c++) {
        const float u = a[r * C + c] - (ca ? ca[c] : 0.0f);
        part[c] += b ? u * (b[r * C + c] - (cb ? cb[c] : 0.0f)) : u;
      }
    for (int64_t c = 0; c < C; c++) acc[c] += part[c];
  }
}

/* BatchNorm of a member-major stack, z (K, R, C): statistics per (member, channel) over its R rows,
   as torch's CPU batch norm computes them (two passes; running variance unbiased; y = z * alpha +
   (beta - mean * alpha) with alpha = invstd * gamma). Training: mean and invstd (K, C) are
   written, the running statistics updated; else the running statistics normalize. */
void actsearch_bn_forward(int64_t K, int64_t R, int64_t C, const float* z, const float* gamma, const float* beta,
                          float* y, float* mean, float* invstd, float* running_mean, float* running_var,
                          int64_t training, double momentum, double eps) {
  #pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < K; k++) {
    const float* restrict zk = z + k * R * C;
    float* restrict yk = y + k * R * C;
    float* restrict m = mean + k * C;
    float* restrict is = invstd + k * C;
    float* restrict rm = running_mean + k * C;
    float* restrict rv = running_var + k * C;
    double* restrict acc = malloc(sizeof(double) * 2 * C);
    float* restrict part = malloc(sizeof(float) * 3 * C);
    if (!acc || !part) abort();
    if (training) {
      channel_sums(R, C, zk, NULL, NULL, NULL, part, acc);  /* sum z */
      for (int64_t c = 0; c < C; c++) m[c] = (float)(acc[c] / R);
      channel_sums(R, C, zk, m, zk, m, part, acc + C);  /* sum (z - mean)^2 */
      for (int64_t c = 0; c < C; c++) {
        is[c] = (float)(1.0 / __builtin_sqrt(acc[C + c] / R + eps));
        rm[c] = (float)(momentum * m[c] + (1.0 - momentum) * rm[c]);
        rv[c] = (float)(momentum * acc[C + c] / (R > 1 ? R - 1 : 1) + (1.0 - momentum) * rv[c]);
      }
    } else {
      for (int64_t c = 0; c < C; c++) {
        m[c] = rm[c];
        is[c] = (float)(1.0 / __builtin_sqrt((double)rv[c] + eps));
      }
    }
    float* restrict alpha = part;
    float* restrict shift = part + C;
    for (int64_t c = 0; c < C; c++) {
      alpha[c] = is[c] * gamma[k * C + c];
      shift[c] = beta[k * C + c] - m[c] * alpha[c];
    }
    for (int64_t r = 0; r < R; r++)
      for (int64_t c = 0; c < C; c++) yk[r * C + c] = zk[r * C + c] * alpha[c] + shift[c];
    free(acc);
    free(part);
  }
}

/* The backward of a training-mode actsearch_bn_forward: gz, and dgamma, dbeta (K, C), from gy —
   torch's formula: gz = (gy - mean(gy) - (z - mean) * proj) * invstd * gamma. */
void actsearch_bn_backward(int64_t K, int64_t R, int64_t C, const float* z, const float* gy, const float* gamma,
                           const float* mean, const float* invstd, float* gz, float* dgamma, float* dbeta) {
  #pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < K; k++) {
    const float* restrict zk = z + k * R * C;
    const float* restrict gk = gy + k * R * C;
    float* restrict ok = gz + k * R * C;
    const float* restrict m = mean + k * C;
    const float* restrict is = invstd + k * C;
    double* restrict acc = malloc(sizeof(double) * 2 * C);  /* sum of gy, sum of gy * (z - mean) */
    float* restrict part = malloc(sizeof(float) * 3 * C);
    if (!acc || !part) abort();
    for (int64_t c = 0; c < 2 * C; c++) acc[c] = 0.0;
    for (int64_t r0 = 0; r0 < R; r0 += BN_BLOCK) {  /* channel_sums' blocks, both sums in one pass */
      const int64_t r1 = r0 + BN_BLOCK < R ? r0 + BN_BLOCK : R;
      for (int64_t c = 0; c < 2 * C; c++) part[c] = 0.0f;
      for (int64_t r = r0; r < r1; r++)
        for (int64_t c = 0; c < C; c++) {
          const float g = gk[r * C + c];
          part[c] += g;
          part[C + c] += g * (zk[r * C + c] - m[c]);
        }
      for (int64_t c = 0; c < 2 * C; c++) acc[c] += part[c];
    }
    float* restrict grad_mean = part;
    float* restrict proj = part + C;
    float* restrict scale = part + 2 * C;
    for (int64_t c = 0; c < C; c++) {
      dbeta[k * C + c] = (float)acc[c];
      dgamma[k * C + c] = (float)(acc[C + c] * is[c]);
      grad_mean[c] = (float)(acc[c] / R);
      proj[c] = (float)(acc[C + c] / R * is[c] * is[c]);
      scale[c] = is[c] * gamma[k * C + c];
    }
    for (int64_t r = 0; r < R; r++)
      for (int64_t c = 0; c < C; c++)
        ok[r * C + c] = (gk[r * C + c] - grad_mean[c] - (zk[r * C + c] - m[c]) * proj[c]) * scale[c];
    free(acc);
    free(part);
  }
}

/* Whether any of x's n values is inf or NaN: x * 0 is NaN exactly for those, and the sum of the
   products vectorises. */
static int has_nonfinite(const float* x, int64_t n) {
  float acc = 0.0f;
  #pragma omp simd reduction(+: acc)
  for (int64_t j = 0; j < n; j++) acc += x[j] * 0.0f;
  return acc != acc;
}

/* bad[k] = 1 where member k's loss, or any value of its own in the flat gradient g, is inf or NaN:
   segment i is count[i] values at g + offset[i], owned by member owner[i] (its slice of a stacked
   tensor, or one of its β). */
void actsearch_nonfinite_flat(int64_t K, const float* loss, int64_t T, const int64_t* offset, const int64_t* count,
                              const int64_t* owner, const float* g, int32_t* bad) {
  for (int64_t k = 0; k < K; k++) bad[k] = loss[k] * 0.0f != loss[k] * 0.0f;
  #pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < T; i++)
    if (has_nonfinite(g + offset[i], count[i])) {
      #pragma omp atomic write
      bad[owner[i]] = 1;
    }
}

/* One Adam step over the flat buffers (p, its gradient g, the moments m and v; the segments of
   actsearch_nonfinite_flat, which cover them), and bad[k] as that function sets it — the gradient
   read once for both. Each value as torch's fused CPU Adam computes it in its vectorised loop
   (weight decay added to the gradient; lerp for m; the FMAs written out, so the result does not
   depend on this compiler's contraction): bitwise the same numbers there. bc1 = 1 - beta1^step,
   bc2_sqrt = sqrt(1 - beta2^step), in double as torch's. A member with a non-finite value is
   updated too (Adam is elementwise: only its own values go wrong) — its caller drops it. */
void actsearch_adam(int64_t K, const float* loss, int64_t T, const int64_t* offset, const int64_t* count,
                    const int64_t* owner, float* p, const float* g, float* m, float* v, double lr, double beta1,
                    double beta2, double eps, double weight_decay, double bc1, double bc2_sqrt, int32_t* bad) {
  const float w = (float)(1.0 - beta1), b2 = (float)beta2, c2 = (float)(1.0 - beta2);
  const float neg_step = (float)(-(lr / bc1)), bc = (float)bc2_sqrt, e = (float)eps, wd = (float)weight_decay;
  for (int64_t k = 0; k < K; k++) bad[k] = loss[k] * 0.0f != loss[k] * 0.0f;
  #pragma omp parallel
  {
    FLUSH_SUBNORMALS
    #pragma omp for schedule(dynamic, 8)
    for (int64_t s = 0; s < T; s++) {
      const int64_t at = offset[s], n = count[s];
      float* restrict ps = p + at;
      const float* restrict gs = g + at;
      float* restrict ms = m + at;
      float* restrict vs = v + at;
      if (has_nonfinite(gs, n)) {
        #pragma omp atomic write
        bad[owner[s]] = 1;
      }
      #pragma omp simd
      for (int64_t i = 0; i < n; i++) {
        const float gi = weight_decay != 0.0 ? __builtin_fmaf(ps[i], wd, gs[i]) : gs[i];
        const float mi = fabsf(w) < 0.5f ? __builtin_fmaf(w, gi - ms[i], ms[i]) : __builtin_fmaf(w - 1.0f, gi - ms[i], gi);
        const float vi = __builtin_fmaf(c2 * gi, gi, vs[i] * b2);
        ms[i] = mi;
        vs[i] = vi;
        ps[i] = ps[i] + neg_step * mi / (sqrtf(vi) / bc + e);
      }
    }
    RESTORE_SUBNORMALS
  }
}

/* The BLAS single-precision GEMM (Fortran interface, column-major, 32-bit integers): the one torch's
   CPU build carries (MKL's SGEMM), its address passed in by the caller. */
typedef void sgemm_fn(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                      const int*, const float*, const int*, const float*, float*, const int*);

/* Row-major c (M, N) = op(a) (M, K) · op(b) (K, N) + beta c, op transposing where ta / tb: the
   column-major call on the transposed problem. */
static void mm(sgemm_fn* gemm, int ta, int tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const char oa = ta ? 'T' : 'N', ob = tb ? 'T' : 'N';
  const int m = (int)M, n = (int)N, k = (int)K, la = (int)lda, lb = (int)ldb, lc = (int)ldc;
  const float one = 1.0f;
  gemm(&ob, &oa, &n, &m, &k, &one, b, &lb, a, &la, &beta, c, &lc);
}

static void add_rows(int64_t N, int64_t C, const float* g, float* out) {  /* out[c] = sum over n of g[n][c] */
  for (int64_t c = 0; c < C; c++) out[c] = 0.0f;
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) out[c] += g[n * C + c];
}

/* A stacked plain MLP's whole training step, member by member: each member's forward, loss and
   backward run on one thread, its GEMMs single-threaded BLAS calls on its own (N, width) blocks,
   members spread over the threads — one parallel region per step instead of ~15, and a member's
   activations stay in its core's cache. What mlp_loss_and_grads computes with torch's batched GEMMs
   (actsearch.evaluation._backprop), in the same order: z = x W^T + b as nn.Linear's addmm forms it
   (bias copied in, GEMM added on), the activations, the loss and dloss/dlogits (ce_member), then
   per layer from the top: dW = dz^T a, db = the sum of dz over n, da = dz W.
   dims: L + 2 sizes (input, the L hidden widths, classes). W[l], B[l], GW[l], GB[l] (l = 0..L, the
   head last): member 0's weight (out, in), bias, and their gradients; member k's at + k*out*in and
   + k*out. Layer l's activations: fid[k], its beta slots beta[(l*K + k)*MAXB ...], per_channel[l*K +
   k], dL/dbeta into gbeta[(l*K + k)*MAXB ...]. x (K, N, dims[0]) and target (K, N) — or, with
   rows, the whole training set, member k's example n being its row rows[k*N + n] (gathered here,
   into the member's own workspace). loss (K,). */
int actsearch_mlp_step(int64_t K, int64_t L, const int64_t* dims, int64_t N, void* gemm_ptr, const float* x,
                       const int64_t* target, const int64_t* rows, const float* const* W, const float* const* B,
                       float* const* GW, float* const* GB, const int32_t* fid, const float* const* beta,
                       const int64_t* per_channel, float* const* gbeta, float* loss) {
  sgemm_fn* gemm = (sgemm_fn*)gemm_ptr;
  int64_t hidden = 0, widest = dims[0];
  for (int64_t l = 1; l <= L; l++) {
    hidden += dims[l];
    widest = dims[l] > widest ? dims[l] : widest;
  }
  const int64_t C = dims[L + 1];
  int err = 0;
  #pragma omp parallel for schedule(dynamic, 1) reduction(|: err)
  for (int64_t k = 0; k < K; k++) {
    /* z and a = f(z) of every hidden layer, the logits and their gradient, two gradient buffers,
       the gathered batch and its labels */
    float* work = malloc(sizeof(float) * N * (2 * hidden + 2 * C + 2 * widest + dims[0]) + sizeof(int64_t) * N);
    if (!work) { err = 1; continue; }
    float* zs = work;
    float* as = zs + N * hidden;
    float* logits = as + N * hidden;
    float* d = logits + N * C;
    float* ga = d + N * C;
    float* gz = ga + N * widest;
    const float* xk = x + k * N * dims[0];
    const int64_t* tk = target + k * N;
    if (rows) {
      float* xg = gz + N * widest;
      int64_t* tg = (int64_t*)(xg + N * dims[0]);
      for (int64_t n = 0; n < N; n++) {
        const int64_t r = rows[k * N + n];
        memcpy(xg + n * dims[0], x + r * dims[0], sizeof(float) * dims[0]);
        tg[n] = target[r];
      }
      xk = xg;
      tk = tg;
    }
    const float* a = xk;
    float* z = zs;
    float* h = as;
    for (int64_t l = 0; l <= L; l++) {
      const int64_t in = dims[l], out = dims[l + 1];
      float* dst = l < L ? z : logits;
      const float* bias = B[l] + k * out;
      for (int64_t n = 0; n < N; n++) memcpy(dst + n * out, bias, sizeof(float) * out);
      mm(gemm, 0, 1, N, out, in, a, in, W[l] + k * out * in, in, 1.0f, dst, out);
      if (l == L) break;
      err |= member_forward(fid[k], 1, N * out, 1, out, 0, z, h, beta + (l * K + k) * MAXB, per_channel[l * K + k]);
      a = h;
      z += N * out;
      h += N * out;
    }
    loss[k] = ce_member(N, C, logits, tk, d);
    const float* g = d;  /* dL/d(layer l's output before its activation), (N, out) */
    for (int64_t l = L; l >= 0; l--) {
      const int64_t in = dims[l], out = dims[l + 1];
      int64_t below = 0;  /* where hidden layer l - 1 (this layer's input) starts in zs and as */
      for (int64_t i = 1; i < l; i++) below += N * dims[i];
      const float* a_in = l ? as + below : xk;
      mm(gemm, 1, 0, out, in, N, g, out, a_in, in, 0.0f, GW[l] + k * out * in, in);
      add_rows(N, out, g, GB[l] + k * out);
      if (l == 0) break;
      mm(gemm, 0, 0, N, in, out, g, out, W[l] + k * out * in, in, 0.0f, ga, in);
      err |= member_backward(fid[k], 1, N * in, 1, in, 0, zs + below, ga, gz, beta + ((l - 1) * K + k) * MAXB,
                             per_channel[(l - 1) * K + k], gbeta + ((l - 1) * K + k) * MAXB);
      g = gz;
    }
    free(work);
  }
  return err;
}
"""


def c_sources(cands: Sequence[Any], units: int = 1) -> list[str]:
    """The C source of one population's library as translation units for a parallel build (the
    compiler's time is ~all in these loops): member i's ``fwd_i``/``bwd_i`` in unit i mod
    ``units``, then the dispatch tables, then the dispatcher and the training-step helpers — the
    same text for every population (its object is built once: :func:`._build.load`'s ``shared``)."""
    prelude = PRELUDE % {"eps": repr(EPS)}
    parts = [[prelude] for _ in range(max(1, min(units, len(cands))))]
    for i, c in enumerate(cands):
        parts[i % len(parts)].append(function_source(c.expr, tuple(c.betas), c.x, i))
    n = len(cands)
    nb = [len(c.betas) for c in cands]
    parts.append([prelude, TYPES, TABLES % {
        "decls": "".join(f"HIDDEN fwd_fn_t fwd_{i}; HIDDEN bwd_fn_t bwd_{i};\n" for i in range(n)),
        "fwd": ", ".join(f"fwd_{i}" for i in range(n)), "bwd": ", ".join(f"bwd_{i}" for i in range(n)),
        "nb": ", ".join(map(str, nb)), "maxb": max([1, *nb])}])
    parts.append([prelude, TYPES, DISPATCH, STEP])
    return ["".join(p) for p in parts]
