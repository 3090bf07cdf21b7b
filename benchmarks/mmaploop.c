/* mmap+munmap loop for benchmarks/bench.py (loop "mmap").
 * usage: mmaploop COUNT  -> prints ns per mmap+munmap pair, pairs/s, CPU ns
 *        per pair
 * A private writable mapping is accounted: the kernel asks whether the caller
 * has CAP_SYS_ADMIN (security_vm_enough_memory_mm, CAP_OPT_NOAUDIT). Run as an
 * unprivileged user, every iteration is one refused quiet probe on
 * capability:cap_capable: the tracepoint rung's call-site check runs each time. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double clock_s(clockid_t id)
{
	struct timespec t;
	clock_gettime(id, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	double start = now(), cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	for (long i = 0; i < n; i++) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED)
			munmap(p, 4096);
	}
	double el = now() - start;
	cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
	printf("%.1f %.0f %.1f\n", el * 1e9 / n, n / el, cpu * 1e9 / n);
	return 0;
}
