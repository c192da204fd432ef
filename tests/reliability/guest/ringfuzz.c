// SPDX-License-Identifier: BSD-2-Clause
/*
 * daxnet_ringfuzz: drives /dev/daxnet the way a buggy or hostile
 * application would, for a bounded number of steps, inside the test guest
 * (docs/reliability.md). The module must answer every bad index, slot,
 * argument and mapping with an error and a counter: never a WARN, BUG or
 * oops (the guest runner fails the run on any of those in dmesg).
 *
 * Each step, chosen by a seeded PRNG, is one of:
 *   - write a head or cur of any ring of any pair: a legal step forward,
 *     any index, just out of range, or any 32-bit value;
 *   - write a TX slot: conn (attached, stale or garbage), buffer, offset,
 *     length, flags, reserved and err fields, legal or not;
 *   - write a spare-ring entry or an RX slot with BUF_CHANGED and any
 *     buffer index;
 *   - scribble a field the kernel owns (tail, num_slots, kind, slots_ofs):
 *     the mapping is writable, the module must use its private copies;
 *   - DAXNET_IOC_SYNC with any pair (valid, ALL, out of range) and flags,
 *     and nonzero reserved words; poll() with a zero timeout;
 *   - COUNTERS, ATTACH (good sockets, listening sockets, non-sockets,
 *     garbage fds, already attached ones), DETACH (any id, any flags), a
 *     second REGISTER, a wrong mmap;
 *   - write the connection-state table (DAXNET_REG_CONNSTATE): rx_limit
 *     (none, ahead, just below what was published, any 64-bit value) or
 *     a field the kernel owns;
 *   - the peer sends bytes, shuts down or resets;
 *   - a tidy step that plays by the rules (release RX, refill spares with
 *     valid buffers, send a valid TX slot), so real work is interleaved.
 *
 * Checked in user space: every call returns success or one of the errors
 * the ABI documents; after each successful sync the tails are in range and
 * every published RX slot is well formed (DATA: a valid buffer, len >= 1,
 * offset + len <= buf_size). Exit 0 when all held, 1 otherwise, 2 on
 * setup errors. Prints a summary line:
 *   ringfuzz: seed S steps N syncs N (einval N) ... bad_ring N bad_slot N
 *
 *   daxnet_ringfuzz [--pool-dir DIR] [--steps N] [--seed S]
 */
#define _GNU_SOURCE
#include "../../kernel/ktest_util.h"

#define BUF_SIZE 2048u
#define BUF_COUNT 512u
#define PAIRS 2u
#define SLOTS 16u
#define MAX_CONNS 8u
#define NCONN 4

static uint64_t rng_state;

static uint32_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static uint32_t below(uint32_t n)
{
	return n ? rnd() % n : 0;
}

static int failures;

#define BAD(...)                                            \
	do {                                                \
		fprintf(stderr, "ringfuzz: FAIL: " __VA_ARGS__); \
		fputc('\n', stderr);                        \
		failures++;                                 \
	} while (0)

struct ring_ptrs {
	struct daxnet_ring *ring[3]; /* rx, tx, spare */
	struct daxnet_slot *rxs, *txs;
	__u32 *spares;
	__u32 num[3];
};

static int port_fd = -1;
static unsigned char *region;
static size_t region_size;
static struct daxnet_conn_state *cstab;	/* DAXNET_REG_CONNSTATE table */
static struct ring_ptrs pr[PAIRS];
static unsigned char *pool;
static int listener = -1;
static struct sockaddr_in laddr;

struct conn {
	int client, server;
	__u32 id;
	int attached;
};
static struct conn conns[NCONN];

static struct {
	unsigned long steps, syncs, sync_einval, polls, attaches, attach_fail, detaches, detach_fail;
	unsigned long rx_checked, tidy, scribbles;
} st;

/* A field the kernel owns, written anyway. */
static void kwrite(const __u32 *field, __u32 v)
{
	*(volatile __u32 *)(uintptr_t)field = v;
}

static int errno_ok(int e, const int *allowed)
{
	for (; *allowed; allowed++)
		if (e == *allowed)
			return 1;
	return 0;
}

static void new_tcp_pair(struct conn *c)
{
	c->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->client < 0 || connect(c->client, (struct sockaddr *)&laddr, sizeof(laddr)) != 0) {
		perror("ringfuzz: connect");
		exit(2);
	}
	c->server = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	if (c->server < 0) {
		perror("ringfuzz: accept");
		exit(2);
	}
	c->attached = 0;
	c->id = DAXNET_NO_CONN;
}

static void close_rst(int fd)
{
	struct linger lg = { 1, 0 };

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void do_attach(struct conn *c, int fd, __u32 pair, __u32 flags, int expect_ok)
{
	static const int allowed[] = { EINVAL, EBADF, ENOTSOCK, ENOTCONN, EBUSY, ENOSPC, EPROTONOSUPPORT,
				       EOPNOTSUPP, EISCONN, EALREADY, 0 };
	struct daxnet_attach a;

	memset(&a, 0, sizeof(a));
	a.fd = fd;
	a.pair = pair;
	a.cookie = rnd();
	a.flags = flags;
	st.attaches++;
	if (ioctl(port_fd, DAXNET_IOC_ATTACH, &a) == 0) {
		if (!expect_ok)
			BAD("ATTACH fd %d pair %u flags %#x succeeded", fd, pair, flags);
		if (c) {
			c->id = a.conn;
			c->attached = 1;
		}
		return;
	}
	st.attach_fail++;
	if (!errno_ok(errno, allowed))
		BAD("ATTACH fd %d pair %u: unexpected errno %d (%s)", fd, pair, errno, strerror(errno));
	else if (expect_ok && errno != ENOSPC)
		BAD("ATTACH of a fresh connected socket failed: %s", strerror(errno));
}

static void do_detach(__u32 id, __u32 flags)
{
	static const int allowed[] = { EINVAL, ENOENT, EBUSY, EAGAIN, 0 };
	struct daxnet_detach d;

	memset(&d, 0, sizeof(d));
	d.conn = id;
	d.flags = flags;
	st.detaches++;
	if (ioctl(port_fd, DAXNET_IOC_DETACH, &d) == 0) {
		for (int i = 0; i < NCONN; i++)
			if (conns[i].attached && conns[i].id == id)
				conns[i].attached = 0;
		return;
	}
	st.detach_fail++;
	if (!errno_ok(errno, allowed))
		BAD("DETACH %#x flags %#x: unexpected errno %d (%s)", id, flags, errno, strerror(errno));
}

static __u32 rx_tail_seen[PAIRS];
/* head/cur of every ring as of the last sync that accepted them: what the
 * module's private copies hold, so tidy() can return to a legal state. */
static __u32 ok_head[PAIRS][3], ok_cur[PAIRS][3];

static void remember_accepted(__u32 pair)
{
	for (__u32 p = 0; p < PAIRS; p++) {
		if (pair != DAXNET_RING_ALL && pair != p)
			continue;
		for (int k = 0; k < 3; k++) {
			ok_head[p][k] = pr[p].ring[k]->head;
			ok_cur[p][k] = pr[p].ring[k]->cur;
		}
	}
}
static unsigned long steps_total;
static int scribbled;

static void check_rx(void)
{
	if (scribbled)
		return; /* the shared copies of kernel fields are garbage now */
	for (__u32 p = 0; p < PAIRS; p++) {
		struct ring_ptrs *r = &pr[p];

		for (int k = 0; k < 3; k++)
			if (r->ring[k]->tail >= r->num[k])
				BAD("pair %u ring %d: tail %u outside %u slots", p, k, r->ring[k]->tail, r->num[k]);
		__u32 t = r->ring[0]->tail % r->num[0];

		for (__u32 i = rx_tail_seen[p]; i != t; i = daxnet_ring_next(i, r->num[0])) {
			const struct daxnet_slot *s = &r->rxs[i];

			st.rx_checked++;
			if (s->flags & DAXNET_SLOT_DATA) {
				if (s->buf_idx >= BUF_COUNT || s->len < 1 || (__u64)s->offset + s->len > BUF_SIZE)
					BAD("RX DATA slot %u: buf %u off %u len %u", i, s->buf_idx, s->offset,
					    s->len);
			} else if (s->flags & DAXNET_SLOT_RELEASE) {
				if (s->buf_idx >= BUF_COUNT)
					BAD("RX RELEASE slot %u names buffer %u", i, s->buf_idx);
			}
		}
		rx_tail_seen[p] = t;
	}
}

static __u32 pick_index(__u32 n, __u32 near)
{
	switch (below(4)) {
	case 0:
		return (near + below(3)) % n;
	case 1:
		return below(n);
	case 2:
		return n + below(4);
	default:
		return rnd();
	}
}

static __u32 pick_conn(void)
{
	struct conn *c = &conns[below(NCONN)];

	switch (below(4)) {
	case 0:
	case 1:
		return c->id;
	case 2:
		return c->id ^ (1u << DAXNET_CONN_INDEX_BITS); /* stale generation */
	default:
		return rnd();
	}
}

static void do_sync(__u32 pair, __u32 flags, int garbage)
{
	static const int allowed[] = { EINVAL, EAGAIN, EINTR, 0 };
	struct daxnet_sync s;

	memset(&s, 0, sizeof(s));
	s.pair = pair;
	s.flags = flags;
	if (garbage)
		s.reserved[below(2)] = rnd() | 1;
	st.syncs++;
	if (ioctl(port_fd, DAXNET_IOC_SYNC, &s) == 0) {
		if (garbage)
			BAD("SYNC with nonzero reserved words succeeded");
		remember_accepted(pair);
		check_rx();
		return;
	}
	if (errno == EINVAL)
		st.sync_einval++;
	if (!errno_ok(errno, allowed))
		BAD("SYNC pair %#x flags %#x: unexpected errno %d (%s)", pair, flags, errno, strerror(errno));
}

static __u32 fresh_buf;

static void tidy(__u32 p)
{
	struct ring_ptrs *r = &pr[p];
	struct daxnet_ring *rx = r->ring[0], *tx = r->ring[1], *sp = r->ring[2];

	if (scribbled)
		return;
	st.tidy++;
	for (int k = 0; k < 3; k++) { /* back to what the module accepted last */
		r->ring[k]->head = ok_head[p][k];
		r->ring[k]->cur = ok_cur[p][k];
	}
	rx->head = rx->cur = rx->tail;
	/* refill spares with buffers 0..255 (TX uses 256..511) */
	__u32 h = sp->head % r->num[2];

	while (daxnet_ring_next(h, r->num[2]) != sp->tail % r->num[2] && below(8)) {
		r->spares[h] = fresh_buf++ % (BUF_COUNT / 2);
		h = daxnet_ring_next(h, r->num[2]);
	}
	sp->head = sp->cur = h;
	/* one valid TX slot on an attached connection of this pair, if any */
	for (int i = 0; i < NCONN; i++) {
		struct conn *c = &conns[i];

		if (!c->attached)
			continue;
		__u32 th = tx->head % r->num[1];

		if (daxnet_ring_next(th, r->num[1]) == tx->tail % r->num[1])
			break;
		struct daxnet_slot *s = &r->txs[th];

		memset(s, 0, sizeof(*s));
		s->conn = c->id;
		s->buf_idx = BUF_COUNT / 2 + below(BUF_COUNT / 2);
		s->offset = below(BUF_SIZE / 2);
		s->len = 1 + below(BUF_SIZE / 2);
		s->flags = DAXNET_SLOT_DATA;
		tx->head = tx->cur = daxnet_ring_next(th, r->num[1]);
		break;
	}
}

static void step(void)
{
	__u32 p = below(PAIRS);
	struct ring_ptrs *r = &pr[p];
	int k = (int)below(3);

	st.steps++;
	switch (below(20)) {
	case 0:
		r->ring[k]->head = pick_index(r->num[k], r->ring[k]->head);
		break;
	case 1:
		r->ring[k]->cur = pick_index(r->num[k], r->ring[k]->head);
		break;
	case 2:
	case 3: {
		struct daxnet_slot *s = &r->txs[below(r->num[1])];

		s->conn = pick_conn();
		s->buf_idx = below(4) ? below(BUF_COUNT) : pick_index(BUF_COUNT, 0);
		s->offset = below(4) ? below(BUF_SIZE) : rnd();
		s->len = below(4) ? below(BUF_SIZE + 2) : rnd();
		s->flags = below(4) ? DAXNET_SLOT_DATA | (below(8) ? 0 : DAXNET_SLOT_EOF) : (__u16)rnd();
		s->reserved = below(8) ? 0 : rnd();
		s->err = below(8) ? 0 : (__u16)rnd();
		s->user_data = rnd();
		break;
	}
	case 4:
		r->spares[below(r->num[2])] = below(4) ? below(BUF_COUNT) : pick_index(BUF_COUNT, 0);
		break;
	case 5: {
		struct daxnet_slot *s = &r->rxs[below(r->num[0])];

		s->buf_idx = below(4) ? below(BUF_COUNT) : rnd();
		s->flags |= DAXNET_SLOT_BUF_CHANGED;
		break;
	}
	case 6:
		/* scribble a kernel-owned field (second half of the run only: the
		 * user-space checks of kernel output stop after the first one) */
		if (st.steps > steps_total / 2 && below(4) == 0) {
			struct daxnet_ring *ring = r->ring[k];

			st.scribbles++;
			scribbled = 1;
			switch (below(4)) {
			case 0:
				kwrite(&ring->tail, pick_index(r->num[k], ring->tail));
				break;
			case 1:
				kwrite(&ring->num_slots, rnd());
				break;
			case 2:
				kwrite(&ring->kind, rnd());
				break;
			default:
				kwrite((const __u32 *)&ring->slots_ofs, rnd());
				break;
			}
		}
		break;
	case 7:
	case 8:
	case 9: {
		__u32 pair = below(4) ? p : below(2) ? DAXNET_RING_ALL : pick_index(PAIRS, 0);
		__u32 flags = below(4) ? below(4) : rnd();

		do_sync(pair, flags, below(16) == 0);
		break;
	}
	case 10: {
		struct pollfd pfd = { port_fd, POLLIN | POLLOUT, 0 };

		st.polls++;
		if (poll(&pfd, 1, 0) < 0)
			BAD("poll: %s", strerror(errno));
		break;
	}
	case 11: {
		struct daxnet_counters_arg a;
		int ret;

		memset(&a, 0, sizeof(a));
		a.pair = below(4) ? p : below(2) ? DAXNET_RING_ALL : rnd();
		a.flags = below(8) ? 0 : rnd();
		ret = ioctl(port_fd, DAXNET_IOC_COUNTERS, &a);
		if (ret != 0 && errno != EINVAL)
			BAD("COUNTERS: unexpected errno %d", errno);
		if (ret == 0 && a.flags != 0)
			BAD("COUNTERS with nonzero flags succeeded");
		break;
	}
	case 12: { /* attach: fresh, duplicate, listening, non-socket, garbage */
		struct conn *c = &conns[below(NCONN)];

		switch (below(5)) {
		case 0:
			if (!c->attached) {
				close_rst(c->client);
				close_rst(c->server);
				new_tcp_pair(c);
				do_attach(c, c->server, p, 0, 1);
			}
			break;
		case 1:
			if (c->attached)
				do_attach(NULL, c->server, p, 0, 0);
			break;
		case 2:
			do_attach(NULL, listener, p, 0, 0);
			break;
		case 3:
			do_attach(NULL, port_fd, p, 0, 0);
			break;
		default:
			do_attach(NULL, (int)rnd(), rnd(), rnd() | 1, 0);
			break;
		}
		break;
	}
	case 13:
		do_detach(pick_conn(), below(4) ? (below(2) ? DAXNET_DETACH_DISCARD : 0) : rnd());
		break;
	case 14: { /* the peer */
		struct conn *c = &conns[below(NCONN)];
		char buf[512];

		if (c->client < 0)
			break;
		switch (below(8)) {
		case 0:
			shutdown(c->client, SHUT_WR);
			break;
		case 1:
			close_rst(c->client);
			c->client = -1;
			break;
		default: {
			size_t n = 1 + below(sizeof(buf));

			for (size_t i = 0; i < n; i++)
				buf[i] = (char)rnd();
			(void)!send(c->client, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			/* drain what the module sent us */
			(void)!recv(c->client, buf, sizeof(buf), MSG_DONTWAIT);
			break;
		}
		}
		break;
	}
	case 15: { /* a second REGISTER, a wrong mmap */
		struct daxnet_register reg;

		memset(&reg, 0, sizeof(reg));
		reg.api_version = DAXNET_API;
		reg.pool_addr = (uintptr_t)pool;
		reg.pool_len = (__u64)BUF_SIZE * BUF_COUNT;
		reg.buf_size = BUF_SIZE;
		reg.buf_count = BUF_COUNT;
		reg.num_pairs = 1;
		reg.rx_slots = reg.tx_slots = reg.spare_slots = SLOTS;
		if (ioctl(port_fd, DAXNET_IOC_REGISTER, &reg) == 0)
			BAD("a second REGISTER on one port succeeded");
		void *m = mmap(NULL, region_size + 4096 * (1 + below(4)), PROT_READ | PROT_WRITE, MAP_SHARED,
			       port_fd, 0);
		if (m != MAP_FAILED) {
			BAD("mmap longer than the region succeeded");
			munmap(m, region_size + 4096);
		}
		break;
	}
	case 16: { /* the connection-state table: rx_limit, or a kernel field */
		struct daxnet_conn_state *e = &cstab[below(MAX_CONNS)];

		switch (below(6)) {
		case 0:
			e->rx_limit = 0;
			break;
		case 1:
			e->rx_limit = e->rx_bytes + below(4096);
			break;
		case 2:
			e->rx_limit = e->rx_bytes > 0 ? e->rx_bytes - 1 : 1;
			break;
		case 3:
			e->rx_limit = ((__u64)rnd() << 32) | rnd();
			break;
		case 4: /* kernel-owned (const in the header): scribble anyway */
			*(__u32 *)(void *)&e->conn = rnd();
			*(__u32 *)(void *)&e->tx_slots = rnd();
			break;
		default:
			*(__u64 *)(void *)&e->tx_bytes = ((__u64)rnd() << 32) | rnd();
			*(__u64 *)(void *)&e->rx_bytes = rnd();
			*(__u64 *)(void *)&e->reserved = rnd();
			break;
		}
		if (below(2))
			do_sync(p, 0, 0);
		break;
	}
	default:
		tidy(p);
		if (below(2))
			do_sync(p, 0, 0);
		break;
	}
}

static void *map_pool(const char *dir)
{
	char path[4096];
	size_t len = (size_t)BUF_SIZE * BUF_COUNT;
	int fd;
	void *m;

	snprintf(path, sizeof(path), "%s/ringfuzz.%d.pool", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)len) != 0) {
		fprintf(stderr, "ringfuzz: cannot create %s: %s\n", path, strerror(errno));
		exit(2);
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	if (m == MAP_FAILED)
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		fprintf(stderr, "ringfuzz: mmap %s: %s\n", path, strerror(errno));
		exit(2);
	}
	close(fd);
	unlink(path);
	memset(m, 0, len);
	return m;
}

int main(int argc, char **argv)
{
	const char *dir = "/dev/shm";
	unsigned long steps = 20000;
	uint64_t seed = (uint64_t)time(NULL);
	struct daxnet_register reg;
	socklen_t al = sizeof(laddr);

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pool-dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "usage: %s [--pool-dir DIR] [--steps N] [--seed S]\n", argv[0]);
			return 2;
		}
	}
	rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
	pool = map_pool(dir);

	port_fd = open(DAXNET_DEVICE, O_RDWR | O_CLOEXEC);
	if (port_fd < 0) {
		fprintf(stderr, "ringfuzz: %s: %s\n", DAXNET_DEVICE, strerror(errno));
		return 2;
	}
	memset(&reg, 0, sizeof(reg));
	reg.api_version = DAXNET_API;
	reg.pool_addr = (uintptr_t)pool;
	reg.pool_len = (__u64)BUF_SIZE * BUF_COUNT;
	reg.buf_size = BUF_SIZE;
	reg.buf_count = BUF_COUNT;
	reg.num_pairs = PAIRS;
	reg.rx_slots = reg.tx_slots = reg.spare_slots = SLOTS;
	reg.max_conns = MAX_CONNS;
	/* The connection-state table too: its rx_limit is user-written. */
	reg.flags = DAXNET_REG_CONNSTATE;
	if (ioctl(port_fd, DAXNET_IOC_REGISTER, &reg) != 0) {
		fprintf(stderr, "ringfuzz: REGISTER: %s\n", strerror(errno));
		return 2;
	}
	region_size = reg.region_size;
	region = mmap(NULL, region_size, PROT_READ | PROT_WRITE, MAP_SHARED, port_fd, 0);
	if (region == MAP_FAILED) {
		fprintf(stderr, "ringfuzz: mmap region: %s\n", strerror(errno));
		return 2;
	}
	const struct daxnet_region *hdr = (const struct daxnet_region *)region;

	if (!(hdr->flags & DAXNET_REG_CONNSTATE) || !hdr->conn_state_ofs) {
		fprintf(stderr, "ringfuzz: no connection-state table\n");
		return 2;
	}
	cstab = (struct daxnet_conn_state *)(region + hdr->conn_state_ofs);
	const struct daxnet_pair_desc *pd = (const struct daxnet_pair_desc *)(region + hdr->pairs_ofs);

	for (__u32 p = 0; p < PAIRS; p++) {
		__u64 ofs[3] = { pd[p].rx_ofs, pd[p].tx_ofs, pd[p].spare_ofs };

		for (int k = 0; k < 3; k++) {
			pr[p].ring[k] = (struct daxnet_ring *)(region + ofs[k]);
			pr[p].num[k] = pr[p].ring[k]->num_slots;
		}
		pr[p].rxs = (struct daxnet_slot *)(region + pr[p].ring[0]->slots_ofs);
		pr[p].txs = (struct daxnet_slot *)(region + pr[p].ring[1]->slots_ofs);
		pr[p].spares = (__u32 *)(region + pr[p].ring[2]->slots_ofs);
	}

	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&laddr, 0, sizeof(laddr));
	laddr.sin_family = AF_INET;
	laddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (listener < 0 || bind(listener, (struct sockaddr *)&laddr, sizeof(laddr)) != 0 ||
	    listen(listener, 16) != 0 || getsockname(listener, (struct sockaddr *)&laddr, &al) != 0) {
		perror("ringfuzz: listen");
		return 2;
	}
	for (int i = 0; i < NCONN; i++) {
		new_tcp_pair(&conns[i]);
		do_attach(&conns[i], conns[i].server, (__u32)i % PAIRS, 0, 1);
	}

	steps_total = steps;
	for (unsigned long i = 0; i < steps && failures < 20; i++)
		step();

	struct daxnet_counters_arg ca;

	memset(&ca, 0, sizeof(ca));
	ca.pair = DAXNET_RING_ALL;
	if (ioctl(port_fd, DAXNET_IOC_COUNTERS, &ca) != 0)
		BAD("COUNTERS(ALL): %s", strerror(errno));
	printf("ringfuzz: seed %llu steps %lu syncs %lu (einval %lu) polls %lu attaches %lu (refused %lu) "
	       "detaches %lu (refused %lu) tidy %lu scribbles %lu rx_slots_checked %lu; module counters: "
	       "syncs %llu rx_slots %llu tx_slots %llu bad_ring %llu bad_slot %llu rx_paused %llu; failures %d\n",
	       (unsigned long long)seed, st.steps, st.syncs, st.sync_einval, st.polls, st.attaches, st.attach_fail,
	       st.detaches, st.detach_fail, st.tidy, st.scribbles, st.rx_checked, (unsigned long long)ca.c.syncs,
	       (unsigned long long)ca.c.rx_slots, (unsigned long long)ca.c.tx_slots,
	       (unsigned long long)ca.c.bad_ring, (unsigned long long)ca.c.bad_slot,
	       (unsigned long long)ca.c.rx_paused, failures);
	for (int i = 0; i < NCONN; i++) {
		close_rst(conns[i].client);
		close_rst(conns[i].server);
	}
	munmap(region, region_size);
	close(port_fd); /* detaches everything */
	return failures ? 1 : 0;
}
