/* FASTNN_CLONES: compile an elementwise loop for three instruction sets. The wheel targets
 * baseline x86-64, whose SSE2 handles two doubles at a time; on GCC for x86-64 ELF the loader
 * picks the AVX-512, AVX2 or baseline clone for the processor it runs on, elsewhere only the
 * baseline is compiled. Contraction into fused multiply-adds is off, so every clone rounds
 * exactly as the baseline does: results do not depend on the processor.
 */
#ifndef FASTNN_CLONES_H
#define FASTNN_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__)
#define FASTNN_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), \
                                     optimize("fp-contract=off")))
#else
#define FASTNN_CLONES
#endif

#endif
