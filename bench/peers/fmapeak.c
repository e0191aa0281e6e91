/* fmapeak: the FMA peak of this machine, from a register-only loop of
 * independent fused multiply-adds (no loads, no stores), per vector width the
 * CPU has: 256-bit (AVX2+FMA) and, where present, 512-bit (AVX-512F). It is
 * the bound docs/performance.md sets the kernels against; it does not use
 * avq's kernels. One JSON line per width; OMP_NUM_THREADS threads.
 *
 *	gcc -O2 -mavx2 -mfma -mavx512f -fopenmp fmapeak.c -o fmapeak
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* 12 accumulators cover an FMA latency of 4 cycles on 2 ports with room. */
__attribute__((target("avx2,fma"))) static float loop256(long n) {
  __m256 a = _mm256_set1_ps(1.0001f), b = _mm256_set1_ps(0.9999f);
  /* distinct starting values, or the compiler merges the chains into one */
  __m256 c0 = _mm256_set1_ps(0), c1 = _mm256_set1_ps(1), c2 = _mm256_set1_ps(2), c3 = _mm256_set1_ps(3),
         c4 = _mm256_set1_ps(4), c5 = _mm256_set1_ps(5), c6 = _mm256_set1_ps(6), c7 = _mm256_set1_ps(7),
         c8 = _mm256_set1_ps(8), c9 = _mm256_set1_ps(9), c10 = _mm256_set1_ps(10), c11 = _mm256_set1_ps(11);
  for (long i = 0; i < n; i++) {
    c0 = _mm256_fmadd_ps(a, b, c0); c1 = _mm256_fmadd_ps(a, b, c1);
    c2 = _mm256_fmadd_ps(a, b, c2); c3 = _mm256_fmadd_ps(a, b, c3);
    c4 = _mm256_fmadd_ps(a, b, c4); c5 = _mm256_fmadd_ps(a, b, c5);
    c6 = _mm256_fmadd_ps(a, b, c6); c7 = _mm256_fmadd_ps(a, b, c7);
    c8 = _mm256_fmadd_ps(a, b, c8); c9 = _mm256_fmadd_ps(a, b, c9);
    c10 = _mm256_fmadd_ps(a, b, c10); c11 = _mm256_fmadd_ps(a, b, c11);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                           _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

__attribute__((target("avx512f"))) static float loop512(long n) {
  __m512 a = _mm512_set1_ps(1.0001f), b = _mm512_set1_ps(0.9999f);
  __m512 c0 = _mm512_set1_ps(0), c1 = _mm512_set1_ps(1), c2 = _mm512_set1_ps(2), c3 = _mm512_set1_ps(3),
         c4 = _mm512_set1_ps(4), c5 = _mm512_set1_ps(5), c6 = _mm512_set1_ps(6), c7 = _mm512_set1_ps(7),
         c8 = _mm512_set1_ps(8), c9 = _mm512_set1_ps(9), c10 = _mm512_set1_ps(10), c11 = _mm512_set1_ps(11);
  for (long i = 0; i < n; i++) {
    c0 = _mm512_fmadd_ps(a, b, c0); c1 = _mm512_fmadd_ps(a, b, c1);
    c2 = _mm512_fmadd_ps(a, b, c2); c3 = _mm512_fmadd_ps(a, b, c3);
    c4 = _mm512_fmadd_ps(a, b, c4); c5 = _mm512_fmadd_ps(a, b, c5);
    c6 = _mm512_fmadd_ps(a, b, c6); c7 = _mm512_fmadd_ps(a, b, c7);
    c8 = _mm512_fmadd_ps(a, b, c8); c9 = _mm512_fmadd_ps(a, b, c9);
    c10 = _mm512_fmadd_ps(a, b, c10); c11 = _mm512_fmadd_ps(a, b, c11);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                           _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
  return _mm512_reduce_add_ps(s);
}

/* best of 5 runs of n iterations on every thread at once */
static double peak(int width, long n) {
  double best = 0;
  for (int rep = 0; rep < 5; rep++) {
    volatile float sink = 0;
    double t0 = now();
#pragma omp parallel reduction(+ : sink)
    sink += width == 512 ? loop512(n) : loop256(n);
    double dt = now() - t0;
    double flops = 2.0 * 12 * (width / 32) * (double)n * omp_get_max_threads();
    if (flops / dt > best) best = flops / dt;
  }
  return best / 1e9;
}

int main(void) {
  __builtin_cpu_init();
  long n = 200000000;
  int threads = omp_get_max_threads();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    printf("{\"bench\":\"fmapeak\",\"isa\":\"ymm\",\"threads\":%d,\"gflops\":%.1f}\n", threads, peak(256, n));
  if (__builtin_cpu_supports("avx512f"))
    printf("{\"bench\":\"fmapeak\",\"isa\":\"zmm\",\"threads\":%d,\"gflops\":%.1f}\n", threads, peak(512, n / 2));
  return 0;
}
