/* open+close loop for benchmarks/bench.py.
 * usage: openloop COUNT [PATH] [RATE]  -> prints ns per open+close pair, pairs/s,
 *        CPU ns per pair (the process's own: its syscalls and their BPF programs)
 * RATE > 0 paces the loop to about RATE opens per second (batches of 1000). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

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
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	const char *path = argc > 2 ? argv[2] : "/etc/hostname";
	double rate = argc > 3 ? atof(argv[3]) : 0;
	double start = now(), cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	for (long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY);
		if (fd >= 0)
			close(fd);
		if (rate > 0 && i % 1000 == 999) {
			double due = start + (i + 1) / rate;
			double left = due - now();
			if (left > 0)
				usleep((useconds_t)(left * 1e6));
		}
	}
	double el = now() - start;
	cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
	printf("%.1f %.0f %.1f\n", el * 1e9 / n, n / el, cpu * 1e9 / n);
	return 0;
}
