/* Seeded weight initialisation: xoshiro256** (seeded by splitmix64), normal
 * deviates by Marsaglia's polar method with a logarithm of our own, so the same
 * seed writes the same file everywhere (no libm transcendental, whose last bit
 * may differ between C libraries). */
#include <math.h>

#include "arch/build.h"

/* A fused multiply-add rounds once instead of twice and would change the bits
 * on machines with FMA: gcc never contracts in ISO C mode (-std=c11), clang
 * does unless told not to. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

void arch_rng_seed(arch_rng_t *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0;
}

uint64_t arch_rng_next(arch_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double arch_rng_uniform(arch_rng_t *r) { return (double)(arch_rng_next(r) >> 11) * 0x1.0p-53; }

/* Natural logarithm of a positive finite x from frexp (exact) and the series
 * log(m) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m-1)/(m+1), |s| < 0.172
 * for m in [sqrt(1/2), sqrt(2)); 14 terms leave an error below 1e-22. */
static double portable_log(double x)
{
    int e = 0;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e--;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, term = s, sum = 0.0;
    for (int k = 1; k <= 27; k += 2) {
        sum += term / k;
        term *= s2;
    }
    return 2.0 * sum + (double)e * 0.69314718055994530942;
}

double arch_rng_normal(arch_rng_t *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u = 0.0, v = 0.0, s = 0.0;
    do {
        u = 2.0 * arch_rng_uniform(r) - 1.0;
        v = 2.0 * arch_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * portable_log(s) / s);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

void arch_fill_normal(arch_rng_t *r, sfp_tensor_t *t, double std)
{
    float *p = t->data;
    int64_t count = sfp_tensor_numel(t);
    for (int64_t i = 0; i < count; i++) p[i] = (float)(std * arch_rng_normal(r));
}

void arch_fill_uniform(arch_rng_t *r, sfp_tensor_t *t, double bound)
{
    float *p = t->data;
    int64_t count = sfp_tensor_numel(t);
    for (int64_t i = 0; i < count; i++) p[i] = (float)(bound * (2.0 * arch_rng_uniform(r) - 1.0));
}

void arch_fill_const(sfp_tensor_t *t, float value)
{
    float *p = t->data;
    int64_t count = sfp_tensor_numel(t);
    for (int64_t i = 0; i < count; i++) p[i] = value;
}
