// Peer harness: memory bandwidth, STREAM-style (McCalpin's copy and triad
// kernels, plus a read-only sum), OpenMP threads. The bound for one-token
// decoding is bytes of weights per token ÷ this bandwidth. Not part of the Go
// build; bench/run-peers.sh builds and runs it:
//
//	gcc -O3 -march=native -fopenmp stream.c -o stream && OMP_NUM_THREADS=T ./stream
//
// Three arrays of 80 M doubles (640 MB each, far beyond the caches); each
// kernel runs 10 times and the best run is reported, as STREAM does; bytes
// are counted as STREAM counts them (copy 2, triad 3 arrays; no write
// allocate).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N (80L * 1000 * 1000)

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
	double *a = aligned_alloc(64, N * 8), *b = aligned_alloc(64, N * 8), *c = aligned_alloc(64, N * 8);
	if (!a || !b || !c) {
		perror("alloc");
		return 1;
	}
#pragma omp parallel for
	for (long i = 0; i < N; i++) a[i] = 1, b[i] = 2, c[i] = 0;
	double copy = 0, triad = 0, read = 0, check = 0, s = 3;
	for (int r = 0; r < 10; r++) {
		double t0 = now();
#pragma omp parallel for
		for (long i = 0; i < N; i++) c[i] = a[i];
		double t1 = now();
#pragma omp parallel for
		for (long i = 0; i < N; i++) a[i] = b[i] + s * c[i];
		double t2 = now(), sum = 0;
#pragma omp parallel for simd reduction(+ : sum)
		for (long i = 0; i < N; i++) sum += b[i];
		double t3 = now();
		check += sum;
		double cp = 2.0 * N * 8 / (t1 - t0) / 1e9, tr = 3.0 * N * 8 / (t2 - t1) / 1e9, rd = 1.0 * N * 8 / (t3 - t2) / 1e9;
		copy = cp > copy ? cp : copy, triad = tr > triad ? tr : triad, read = rd > read ? rd : read;
	}
	printf("{\"bench\":\"stream\",\"peer\":\"stream.c\",\"threads\":%d,\"array_mb\":%.0f,"
	       "\"copy_gbps\":%.4g,\"triad_gbps\":%.4g,\"read_gbps\":%.4g,\"check\":%g}\n",
	       omp_get_max_threads(), N * 8 / 1e6, copy, triad, read, check);
	return 0;
}
