/* The instruction set the kernels use, chosen once at run time from what
 * the CPU offers (cpuid), so one binary runs on any x86-64: AVX-512 where
 * present, else AVX2 + FMA, else plain C. SFP_ISA=scalar|avx2|avx512 in the
 * environment lowers the choice (never above what the CPU has), so tests and
 * benchmarks can run each variant on one machine. */
#ifndef SFP_CPU_H
#define SFP_CPU_H

typedef enum sfp_isa { SFP_ISA_SCALAR = 0, SFP_ISA_AVX2 = 1, SFP_ISA_AVX512 = 2 } sfp_isa_t;

/* The best the CPU supports: AVX2 needs avx2 and fma; AVX512 needs those and
 * avx512f, avx512bw and avx512vl. */
sfp_isa_t sfp_cpu_isa_supported(void);
/* The one kernels use: SFP_ISA (read once; unknown values are ignored)
 * capped at what the CPU supports, or the supported one. */
sfp_isa_t sfp_cpu_isa(void);
/* Forces the choice (capped at what the CPU supports) and returns what is
 * now in effect. For tests and benchmarks: call before creating plans, as
 * scratch sizes depend on the choice. */
sfp_isa_t sfp_cpu_set_isa(sfp_isa_t isa);
/* "scalar", "avx2", "avx512". */
const char *sfp_isa_name(sfp_isa_t isa);
/* The CPU's brand string ("AMD EPYC 9R14 ..."), or "unknown". */
const char *sfp_cpu_model(void);

#endif
