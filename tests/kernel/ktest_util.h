/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ktest_util.h - what the daxnet guest test programs share
 * (daxnet_ktest.c, zc/zc_ring.c, zc/zc_guard.c, zc/zc_stream.c,
 * tests/reliability/guest/ringfuzz.c): the system headers they all use
 * (MAP_SYNC needs glibc 2.28 and _GNU_SOURCE), REGISTER with an explicit
 * geometry, mapping the ring region and finding the first pair's rings,
 * the acquire load of a kernel tail, the stream pattern and its checksum,
 * a TCP connect that waits for the server, and the test build's debugfs
 * knobs.
 * Header-only (static functions) so each program stays one source file.
 */
#ifndef DAXNET_KTEST_UTIL_H
#define DAXNET_KTEST_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/daxnet.h>

/* The geometry of one REGISTER (everything but the pool). */
struct dxt_geom {
	uint32_t buf_size, buf_count, pairs;
	uint32_t rx, tx, spare, max_conns;
	uint32_t flags;		/* DAXNET_REG_* */
	uint32_t api;		/* 0: DAXNET_API */
};

/* The first pair's rings in a mapped region. */
struct dxt_rings {
	uint8_t *region;
	size_t region_size;
	uint32_t flags;		/* daxnet_region.flags: what REGISTER gave */
	struct daxnet_ring *rx, *tx, *sp;
	struct daxnet_slot *rxs, *txs;
	uint32_t *sps;
};

/* REGISTER pool [pool, pool + len) on fd; 0 or -errno; *region_size out. */
static inline int dxt_register(int fd, const void *pool, uint64_t len,
			       const struct dxt_geom *g, uint64_t *region_size)
{
	struct daxnet_register r;

	if (region_size)
		*region_size = 0;
	memset(&r, 0, sizeof(r));
	r.api_version = g->api ? g->api : DAXNET_API;
	r.flags = g->flags;
	r.pool_addr = (uintptr_t)pool;
	r.pool_len = len;
	r.buf_size = g->buf_size;
	r.buf_count = g->buf_count;
	r.num_pairs = g->pairs ? g->pairs : 1;
	r.rx_slots = g->rx;
	r.tx_slots = g->tx;
	r.spare_slots = g->spare;
	r.max_conns = g->max_conns;
	if (ioctl(fd, DAXNET_IOC_REGISTER, &r))
		return -errno;
	if (region_size)
		*region_size = r.region_size;
	return 0;
}

/* Map the region of a registered port and find pair 0; 0 or -errno. */
static inline int dxt_map_rings(int fd, size_t region_size, struct dxt_rings *k)
{
	const struct daxnet_region *reg;
	const struct daxnet_pair_desc *pd;

	memset(k, 0, sizeof(*k));
	k->region = mmap(NULL, region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (k->region == MAP_FAILED) {
		k->region = NULL;
		return -errno;
	}
	k->region_size = region_size;
	reg = (const struct daxnet_region *)k->region;
	k->flags = reg->flags;
	pd = (const void *)(k->region + reg->pairs_ofs);
	k->rx = (void *)(k->region + pd->rx_ofs);
	k->tx = (void *)(k->region + pd->tx_ofs);
	k->sp = (void *)(k->region + pd->spare_ofs);
	k->rxs = (void *)(k->region + k->rx->slots_ofs);
	k->txs = (void *)(k->region + k->tx->slots_ofs);
	k->sps = (void *)(k->region + k->sp->slots_ofs);
	return 0;
}

/* The kernel's tail of r (acquire: the slots before it are written). */
static inline uint32_t dxt_ktail(const struct daxnet_ring *r)
{
	return __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

/*
 * Hand free buffers to spare ring sp (its entries sps) while it has room
 * and more than `keep` are free: each is popped from freel[0, *nfree) and
 * counted in kheld[] (the kernel's references, mirrored).
 */
static inline void dxt_refill(struct daxnet_ring *sp, uint32_t *sps, uint32_t *freel,
			      uint32_t *nfree, uint32_t keep, uint32_t *kheld)
{
	uint32_t n = sp->num_slots, h = sp->head;

	while (daxnet_ring_space(h, dxt_ktail(sp), n) && *nfree > keep) {
		uint32_t b = freel[--*nfree];

		sps[h] = b;
		kheld[b]++;
		h = daxnet_ring_next(h, n);
	}
	sp->head = sp->cur = h;
}

/* Byte i of every test stream (zc_stream, zc_ring, zc_guard). */
static inline uint8_t dxt_pattern(uint64_t i)
{
	uint64_t x = (i >> 3) * 0x9E3779B97F4A7C15ull;

	return (uint8_t)(x >> (8 * (i & 7)) ^ (x >> 61));
}

/* The streams' checksum: FNV-1a 64 over the bytes, from DXT_FNV_SEED. */
#define DXT_FNV_SEED 0xcbf29ce484222325ull

static inline uint64_t dxt_fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ull;
	}
	return h;
}

/*
 * A TCP connection to addr:port, retried every 100 ms for 10 s while the
 * server starts; the socket, or -1 with errno set (EINVAL: no IPv4 address).
 */
static inline int dxt_connect(const char *addr, const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	int s, tries;

	a.sin_port = htons((uint16_t)atoi(port));
	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	for (tries = 0;; tries++) {
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			return -1;
		if (!connect(s, (struct sockaddr *)&a, sizeof(a)))
			return s;
		close(s);
		if (tries == 100)
			return -1;
		nanosleep(&pause, NULL);
	}
}

#define DXT_DEBUGFS "/sys/kernel/debug"

/*
 * Write val to the test build's debugfs knob daxnet/<name> (mounting
 * debugfs first if needed); 0, or -1 when there is no such knob (a build
 * without CONFIG_DAXNET_FAULT_INJECT) or the write fails.
 */
static inline int dxt_knob_write(const char *name, const char *val)
{
	char path[128];
	size_t n = strlen(val);
	int fd, ok;

	snprintf(path, sizeof(path), DXT_DEBUGFS "/daxnet/%s", name);
	if (access(path, F_OK))
		mount("debugfs", DXT_DEBUGFS, "debugfs", 0, NULL);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, val, n) == (ssize_t)n;
	close(fd);
	return ok ? 0 : -1;
}

/* dxt_knob_write() of an unsigned number. */
static inline int dxt_knob_u32(const char *name, uint32_t v)
{
	char b[16];

	snprintf(b, sizeof(b), "%u", v);
	return dxt_knob_write(name, b);
}

#endif /* DAXNET_KTEST_UTIL_H */
