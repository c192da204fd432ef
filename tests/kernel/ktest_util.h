/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ktest_util.h - port setup shared by the daxnet guest test programs
 * (daxnet_ktest.c, zc/zc_ring.c, zc/zc_guard.c, zc/zc_stream.c): REGISTER
 * with an explicit geometry, mapping the ring region and finding the first
 * pair's rings, the acquire load of a kernel tail, the stream pattern and
 * its checksum.
 * Header-only (static functions) so each program stays one source file.
 */
#ifndef DAXNET_KTEST_UTIL_H
#define DAXNET_KTEST_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

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

#endif /* DAXNET_KTEST_UTIL_H */
