/* CPU feature detection for the kernels' run-time dispatch (see cpu.h):
 * __builtin_cpu_supports once, the SFP_ISA override once, then an atomic
 * read per call. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/cpu.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SFP_CPU_X86 1
#include <cpuid.h>
#endif

static atomic_int isa_in_effect = -1;

sfp_isa_t sfp_cpu_isa_supported(void)
{
#ifdef SFP_CPU_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return SFP_ISA_SCALAR;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return SFP_ISA_AVX512;
    return SFP_ISA_AVX2;
#else
    return SFP_ISA_SCALAR;
#endif
}

sfp_isa_t sfp_cpu_set_isa(sfp_isa_t isa)
{
    const sfp_isa_t best = sfp_cpu_isa_supported();
    if (isa > best) isa = best;
    atomic_store(&isa_in_effect, (int)isa);
    return isa;
}

sfp_isa_t sfp_cpu_isa(void)
{
    int isa = atomic_load(&isa_in_effect);
    if (isa >= 0) return (sfp_isa_t)isa;
    sfp_isa_t want = sfp_cpu_isa_supported();
    const char *env = getenv("SFP_ISA");
    if (env && !strcmp(env, "scalar")) want = SFP_ISA_SCALAR;
    else if (env && !strcmp(env, "avx2")) want = SFP_ISA_AVX2;
    else if (env && !strcmp(env, "avx512")) want = SFP_ISA_AVX512;
    return sfp_cpu_set_isa(want);
}

const char *sfp_isa_name(sfp_isa_t isa)
{
    switch (isa) {
    case SFP_ISA_AVX2: return "avx2";
    case SFP_ISA_AVX512: return "avx512";
    default: return "scalar";
    }
}

const char *sfp_cpu_model(void)
{
    static char model[49];
#ifdef SFP_CPU_X86
    static atomic_int known = 0;
    if (atomic_load(&known)) return model;
    unsigned int regs[12] = {0}, max = __get_cpuid_max(0x80000000u, NULL);
    if (max >= 0x80000004u) {
        for (unsigned int i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
        char raw[49] = {0};
        memcpy(raw, regs, 48);
        const char *p = raw;
        while (*p == ' ') p++;
        size_t n = strlen(p);
        while (n > 0 && p[n - 1] == ' ') n--;
        memcpy(model, p, n);
        model[n] = '\0';
    }
    if (!model[0]) strcpy(model, "unknown");
    atomic_store(&known, 1);
    return model;
#else
    strcpy(model, "unknown");
    return model;
#endif
}
