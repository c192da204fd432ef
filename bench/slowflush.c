// SPDX-License-Identifier: BSD-2-Clause
//
// An emulated slow persistence medium for benchmarks (PASTE's experiment):
// LD_PRELOAD'ed into a server, it adds a fixed delay after every flush
// call - fdatasync, fsync, msync - so that the same delay hits daxnet
// (page granularity: one msync per batch) and Redis (appendfsync always:
// one fdatasync per batch) alike. The delay is a sleep: the calling thread
// waits as it would for a device, its CPU is free meanwhile.
//
//   DAXNET_FLUSH_DELAY_US=100 LD_PRELOAD=.../slowflush.so redis-server ...
//
// Counts the delayed calls and prints the count to stderr at exit.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static long delay_ns;
static atomic_ulong flushes;

__attribute__((constructor)) static void slowflush_init(void)
{
	const char *e = getenv("DAXNET_FLUSH_DELAY_US");
	delay_ns = e ? atol(e) * 1000L : 0;
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* 10 us must not become 60 */
}

__attribute__((destructor)) static void slowflush_fini(void)
{
	fprintf(stderr, "slowflush: %lu flushes delayed by %ld us\n", (unsigned long)atomic_load(&flushes),
		delay_ns / 1000);
}

static void slow(void)
{
	struct timespec ts = {delay_ns / 1000000000L, delay_ns % 1000000000L};
	int saved = errno;
	atomic_fetch_add(&flushes, 1);
	if (delay_ns > 0)
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	errno = saved;
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	int r = real(fd);
	slow();
	return r;
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	int r = real(fd);
	slow();
	return r;
}

int msync(void *addr, size_t len, int flags)
{
	static int (*real)(void *, size_t, int);
	if (!real)
		real = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "msync");
	int r = real(addr, len, flags);
	slow();
	return r;
}
