// Peer harness: OpenBLAS cblas_sgemm (and cblas_sgemv for the one-row
// shapes) at the shapes `avq bench gemm` measures, C = A·Wᵀ with W stored
// [N, K] as a Linear weight is. Not part of the Go build; bench/run-peers.sh
// builds and runs it:
//
//	gcc -O2 sgemm.c -lopenblas -o sgemm && OPENBLAS_NUM_THREADS=T ./sgemm [M N K]
//
// One JSON object per line, fields named as avq bench gemm --json names them.
// Each figure is the median of at least 5 timed calls and 1.5 s, after 2
// warm-up calls; the data are pseudo-random (a periodic pattern flatters the
// memory system). For M = 1 the weight rotates through copies totalling
// 512 MiB, so that it streams from DRAM as in decoding.
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);
extern int openblas_get_num_threads(void);

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static uint64_t rng = 88172645463325252ull;
static float rnd(void) {
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 - 0.5);
}

static float *randoms(size_t n) {
	float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
	if (!p) {
		perror("alloc");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) p[i] = rnd();
	return p;
}

// run times one shape with the given routine ("sgemm" or "sgemv").
static void run(int m, int n, int k, const char *routine) {
	size_t wsize = (size_t)n * k * sizeof(float);
	int copies = 1;
	if (m == 1) copies = (int)((512ull << 20) / wsize), copies = copies < 1 ? 1 : copies;
	float **w = malloc(copies * sizeof(float *));
	for (int i = 0; i < copies; i++) w[i] = randoms((size_t)n * k);
	float *a = randoms((size_t)m * k), *c = randoms((size_t)m * n);
	double ts[4000], total = 0;
	int reps = 0, next = 0;
	for (int it = -2; it < 4000 && (reps < 5 || total < 1.5); it++) {
		double t0 = now();
		if (!strcmp(routine, "sgemv"))
			cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1, w[next], k, a, 1, 0, c, 1);
		else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, w[next], k, 0, c, n);
		double dt = now() - t0;
		next = (next + 1) % copies;
		if (it >= 0) ts[reps++] = dt, total += dt;
	}
	qsort(ts, reps, sizeof(double), cmp);
	double med = ts[reps / 2];
	printf("{\"bench\":\"gemm\",\"peer\":\"openblas %s\",\"core\":\"%s\",\"m\":%d,\"n\":%d,\"k\":%d,"
	       "\"weights\":\"F32\",\"threads\":%d,\"reps\":%d,\"median_ms\":%.4g,\"min_ms\":%.4g,"
	       "\"weight_gbps\":%.4g,\"gflops\":%.4g,\"weight_copies\":%d}\n",
	       routine, openblas_get_corename(), m, n, k, openblas_get_num_threads(), reps, med * 1e3,
	       ts[0] * 1e3, wsize / med / 1e9, 2.0 * m * n * k / med / 1e9, copies);
	fflush(stdout);
	for (int i = 0; i < copies; i++) free(w[i]);
	free(w), free(a), free(c);
}

int main(int argc, char **argv) {
	static const int shapes[][3] = {{577, 1024, 1024}, {577, 4096, 1024}, {577, 1024, 4096},
	                                {576, 4096, 1024}, {576, 4096, 4096}, {1, 4096, 4096},
	                                {1, 11008, 4096},  {1, 32064, 4096}};
	fprintf(stderr, "%s\n", openblas_get_config());
	if (argc == 4) {
		int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]);
		run(m, n, k, "sgemm");
		if (m == 1) run(m, n, k, "sgemv");
		return 0;
	}
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		run(shapes[i][0], shapes[i][1], shapes[i][2], "sgemm");
		if (shapes[i][0] == 1) run(shapes[i][0], shapes[i][1], shapes[i][2], "sgemv");
	}
	return 0;
}
