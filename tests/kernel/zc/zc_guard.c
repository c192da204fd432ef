// SPDX-License-Identifier: BSD-2-Clause
/*
 * zc_guard - a zero-copy port handed abusive buffer indices (issue 13).
 *
 *   zc_guard dup PORT
 *   zc_guard zcperm
 *   zc_guard hold PORT STOPFILE
 *   zc_guard sink PORT
 *   zc_guard send ADDR PORT BYTES
 *   zc_guard csum IFNAME SECONDS
 *   zc_guard race PORT SECONDS
 *
 * Registers a zero-copy port over a 4-buffer anonymous shared pool with a
 * 32768-entry spare ring, accepts one connection on PORT (zc_stream's
 * client over a daxnet vnic, so the pool is bound to the vnic end), then:
 *   spare-dup   the whole spare ring filled with index 0: the sync must
 *               fail with EINVAL and count bad_buf (the code as filed
 *               pushed 32759 entries into the 4-entry vnic free list);
 *   spare-held  an index the kernel already holds (given as spare before):
 *               EINVAL, bad_buf; rewritten to a free index: accepted;
 *   rx-held     an RX slot released with BUF_CHANGED naming a buffer the
 *               kernel holds: EINVAL; released plainly: accepted;
 * and finally receives the rest of the stream by the rules, checking
 * every byte against zc_stream's pattern. Prints one line per check
 *   zc_guard: CHECK ok|FAIL ...
 * and "zc_guard: server bytes=N bad=M sum=HEX" at the end; exits 1 on
 * any failed check. The other modes are described at their functions
 * (cross-user exposure and the capability needed for zero-copy mode).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/daxnet.h>

#define MAXBUFS	256
#define BS	4096

static int failed;
static uint32_t nbufs = 4;	/* pool buffers */
static uint32_t nspare = 32768;	/* spare ring slots */
static const uint8_t marker = 'Z';	/* the foreign stream's byte */

static uint8_t pattern(uint64_t i)
{
	uint64_t x = (i >> 3) * 0x9E3779B97F4A7C15ull;

	return (uint8_t)(x >> (8 * (i & 7)) ^ (x >> 61));
}

static void die(const char *what)
{
	fprintf(stderr, "zc_guard: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void check(const char *name, int ok, const char *fmt, unsigned long long a)
{
	printf("zc_guard: %s %s ", name, ok ? "ok" : "FAIL");
	printf(fmt, a);
	printf("\n");
	fflush(stdout);
	if (!ok)
		failed = 1;
}

struct port {
	int fd;
	uint8_t *pool;
	uint32_t flags;
	struct daxnet_ring *rx, *sp;
	struct daxnet_slot *rxs;
	uint32_t *sps;
	uint32_t kheld[MAXBUFS];	/* kernel references per buffer */
};

static uint32_t ktail(const struct daxnet_ring *r)
{
	return __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

static void port_open(struct port *p)
{
	struct daxnet_register r = { .api_version = DAXNET_API };
	struct daxnet_pair_desc *pd;
	struct daxnet_region *reg;
	uint8_t *region;

	memset(p, 0, sizeof(*p));
	p->pool = mmap(NULL, (size_t)nbufs * BS, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->pool == MAP_FAILED)
		die("mmap pool");
	p->fd = open(DAXNET_DEVICE, O_RDWR | O_CLOEXEC);
	if (p->fd < 0)
		die("open " DAXNET_DEVICE);
	r.flags = DAXNET_REG_ZEROCOPY;
	r.pool_addr = (uintptr_t)p->pool;
	r.pool_len = (uint64_t)nbufs * BS;
	r.buf_size = BS;
	r.buf_count = nbufs;
	r.num_pairs = 1;
	r.rx_slots = 64;
	r.tx_slots = 8;
	r.spare_slots = nspare;
	if (ioctl(p->fd, DAXNET_IOC_REGISTER, &r))
		die("REGISTER");
	region = mmap(NULL, r.region_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      p->fd, 0);
	if (region == MAP_FAILED)
		die("mmap region");
	reg = (struct daxnet_region *)region;
	p->flags = reg->flags;
	pd = (void *)(region + reg->pairs_ofs);
	p->rx = (void *)(region + pd->rx_ofs);
	p->sp = (void *)(region + pd->spare_ofs);
	p->rxs = (void *)(region + p->rx->slots_ofs);
	p->sps = (void *)(region + p->sp->slots_ofs);
}

static int sync_flags(struct port *p, uint32_t flags)
{
	struct daxnet_sync s = { .pair = 0, .flags = flags };

	return ioctl(p->fd, DAXNET_IOC_SYNC, &s) ? -errno : 0;
}

static int sync_pair(struct port *p)
{
	struct daxnet_sync s = { .pair = 0 };

	return ioctl(p->fd, DAXNET_IOC_SYNC, &s) ? -errno : 0;
}

static struct daxnet_counters counters(struct port *p)
{
	struct daxnet_counters_arg a = { .pair = DAXNET_RING_ALL };

	if (ioctl(p->fd, DAXNET_IOC_COUNTERS, &a))
		die("COUNTERS");
	return a.c;
}

static void kdrop(struct port *p, uint32_t b)
{
	if (b >= nbufs || !p->kheld[b]) {
		fprintf(stderr, "zc_guard: release of unheld buffer %u\n", b);
		exit(1);
	}
	p->kheld[b]--;
}

/* Hand every buffer user space owns to the spare ring. */
static void give_spares(struct port *p)
{
	uint32_t n = p->sp->num_slots, h = p->sp->head, b;

	for (b = 0; b < nbufs; b++) {
		if (p->kheld[b] || !daxnet_ring_space(h, ktail(p->sp), n))
			continue;
		p->sps[h] = b;
		p->kheld[b]++;
		h = daxnet_ring_next(h, n);
	}
	p->sp->head = p->sp->cur = h;
}

struct stream {
	uint32_t conn;
	uint64_t pos, bad, h;
	int eof, err;
};

/* Consume the RX slots the kernel published. */
static void rx_consume(struct port *p, struct stream *st)
{
	uint32_t n = p->rx->num_slots, t = ktail(p->rx), i, k;

	for (i = p->rx->head; i != t; i = daxnet_ring_next(i, n)) {
		const struct daxnet_slot *s = &p->rxs[i];
		const uint8_t *d;

		if (s->flags & DAXNET_SLOT_RELEASE) {
			kdrop(p, s->buf_idx);
			continue;
		}
		if (s->conn == st->conn) {
			if (s->flags & DAXNET_SLOT_EOF)
				st->eof = 1;
			if (s->flags & DAXNET_SLOT_ERROR)
				st->err = s->err;
		}
		if (!(s->flags & DAXNET_SLOT_DATA))
			continue;
		d = p->pool + (size_t)s->buf_idx * BS + s->offset;
		for (k = 0; k < s->len; k++) {
			st->bad += d[k] != pattern(st->pos + k);
			st->h = (st->h ^ d[k]) * 0x100000001b3ull;
		}
		st->pos += s->len;
		if (!(s->flags & DAXNET_SLOT_BUF_HELD))
			kdrop(p, s->buf_idx);
	}
	p->rx->head = p->rx->cur = t;
}

static int dup_test(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct stream st = { .h = 0xcbf29ce484222325ull };
	struct daxnet_attach at = { 0 };
	struct daxnet_counters c0, c;
	static struct port p;
	uint32_t i, h, n, held;
	int one = 1, ls, s, ret, tries;

	(void)argc;
	port_open(&p);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_port = htons(atoi(argv[2]));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1))
		die("bind/listen");
	s = accept(ls, NULL, NULL);
	if (s < 0)
		die("accept");
	at.fd = s;
	if (ioctl(p.fd, DAXNET_IOC_ATTACH, &at))
		die("ATTACH");
	close(s);
	st.conn = at.conn;
	check("zerocopy", p.flags & DAXNET_REG_ZEROCOPY, "flags=%llu", p.flags);
	/* Publishes NEW_CONN; no data yet (no spare buffers). */
	if (sync_pair(&p))
		die("first SYNC");
	c0 = counters(&p);

	/*
	 * TX-only syncs below: spare intake without an RX phase, so no data
	 * is received into the buffers given as spares.
	 */
	/* spare-dup: index 0 in every slot user space owns. */
	n = p.sp->num_slots;
	h = p.sp->head;
	for (i = 0; i < n - 1; i++) {
		p.sps[h] = 0;
		h = daxnet_ring_next(h, n);
	}
	p.sp->head = p.sp->cur = h;
	ret = sync_flags(&p, DAXNET_SYNC_TX);
	c = counters(&p);
	check("spare-dup", ret == -EINVAL && c.bad_buf == c0.bad_buf + 1,
	      "sync=%lld", (long long)ret);
	/* Nothing was taken: the entries can still be rewritten. */
	check("spare-dup-tail", ktail(p.sp) == n - 1, "tail=%llu", ktail(p.sp));
	for (i = 0; i < n - 1; i++)
		p.sps[i] = DAXNET_NO_BUF;
	p.sps[0] = 1;
	ret = sync_flags(&p, DAXNET_SYNC_TX);
	c = counters(&p);
	check("spare-rewritten", !ret && c.bad_slot == c0.bad_slot + n - 2,
	      "sync=%lld", (long long)ret);
	p.kheld[1]++;

	/* spare-held: buffer 1 again while the kernel holds it. */
	h = p.sp->head;
	p.sps[h] = 1;
	p.sp->head = p.sp->cur = daxnet_ring_next(h, n);
	ret = sync_flags(&p, DAXNET_SYNC_TX);
	c = counters(&p);
	check("spare-held", ret == -EINVAL && c.bad_buf == c0.bad_buf + 2,
	      "sync=%lld", (long long)ret);
	p.sps[h] = 2;
	ret = sync_flags(&p, DAXNET_SYNC_TX);
	check("spare-held-rewritten", !ret, "sync=%lld", (long long)ret);
	p.kheld[2]++;

	/* rx-held: the NEW_CONN slot released with buffer 1 swapped in. */
	if (ktail(p.rx) == p.rx->head ||
	    !(p.rxs[p.rx->head].flags & DAXNET_SLOT_NEW_CONN)) {
		check("rx-held", 0, "no NEW_CONN slot at %llu", p.rx->head);
	} else {
		struct daxnet_slot *rs = &p.rxs[p.rx->head];
		struct daxnet_slot save = *rs;
		uint32_t oh = p.rx->head;

		rs->buf_idx = 1;
		rs->flags |= DAXNET_SLOT_BUF_CHANGED;
		p.rx->head = p.rx->cur = daxnet_ring_next(oh, p.rx->num_slots);
		ret = sync_pair(&p);
		c = counters(&p);
		check("rx-held", ret == -EINVAL && c.bad_buf == c0.bad_buf + 3,
		      "sync=%lld", (long long)ret);
		*rs = save;
		p.rx->head = p.rx->cur = oh;
	}

	/* The rest of the stream, by the rules. */
	for (tries = 0; !st.eof && !st.err && tries < 20000; tries++) {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };

		rx_consume(&p, &st);
		give_spares(&p);
		ret = sync_pair(&p);
		if (ret) {
			errno = -ret;
			die("SYNC");
		}
		rx_consume(&p, &st);
		if (!st.eof)
			poll(&pfd, 1, 20);
	}
	c = counters(&p);
	check("stream", st.eof && !st.err && !st.bad && c.bad_buf == c0.bad_buf + 3,
	      "err=%llu", st.err);
	for (held = 0, i = 0; i < nbufs; i++)
		held += p.kheld[i];
	printf("zc_guard: server bytes=%llu bad=%llu sum=%016llx rx_zc_bytes=%llu rx_copied=%llu held=%u\n",
	       (unsigned long long)st.pos, (unsigned long long)st.bad,
	       (unsigned long long)st.h, (unsigned long long)c.rx_zc_bytes,
	       (unsigned long long)c.rx_copied, held);
	close(p.fd);
	return failed;
}

/* Accept one connection on port and attach it; returns the conn id. */
static uint32_t accept_attach(struct port *p, const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct daxnet_attach at = { 0 };
	int one = 1, ls, s;

	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_port = htons(atoi(port));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1))
		die("bind/listen");
	s = accept(ls, NULL, NULL);
	if (s < 0)
		die("accept");
	close(ls);
	at.fd = s;
	if (ioctl(p->fd, DAXNET_IOC_ATTACH, &at))
		die("ATTACH");
	close(s);
	return at.conn;
}

/*
 * zcperm: an unprivileged caller cannot put a port in zero-copy mode
 * (EPERM), or cannot open the device at all; copy mode still works when
 * it can open it.
 */
static int zcperm_test(void)
{
	struct daxnet_register r = { .api_version = DAXNET_API };
	void *pool;
	int fd, ret;

	fd = open(DAXNET_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		check("zcperm", errno == EACCES || errno == EPERM,
		      "open errno=%llu", errno);
		return failed;
	}
	pool = mmap(NULL, 4 * BS, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pool == MAP_FAILED)
		die("mmap pool");
	r.flags = DAXNET_REG_ZEROCOPY;
	r.pool_addr = (uintptr_t)pool;
	r.pool_len = 4 * BS;
	r.buf_size = BS;
	r.buf_count = 4;
	r.num_pairs = 1;
	r.rx_slots = 64;
	r.tx_slots = 64;
	r.spare_slots = 64;
	ret = ioctl(fd, DAXNET_IOC_REGISTER, &r) ? errno : 0;
	check("zcperm", ret == EPERM, "register errno=%llu", ret);
	r.flags = 0;
	ret = ioctl(fd, DAXNET_IOC_REGISTER, &r) ? errno : 0;
	check("zcperm-copy", ret == 0, "register errno=%llu", ret);
	close(fd);
	return failed;
}

/*
 * hold PORT STOPFILE: a zero-copy port over 64 buffers receives its own
 * stream (zc_stream client) to EOF, then keeps syncing - handing every
 * buffer it owns to the kernel as a spare - until STOPFILE exists, and
 * finally scans its whole pool for 64 bytes in a row of the foreign
 * stream's marker byte (zc_guard send: another user's traffic over the
 * same vnic end).
 */
static int hold_test(char **argv)
{
	struct stream st = { .h = 0xcbf29ce484222325ull };
	struct daxnet_counters c;
	static struct port p;
	uint64_t i, run = 0, hits = 0;
	int tries, detached = 0;

	nbufs = 64;
	nspare = 64;
	port_open(&p);
	st.conn = accept_attach(&p, argv[2]);
	for (tries = 0; access(argv[3], F_OK) && tries < 6000; tries++) {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };

		give_spares(&p);
		if (sync_pair(&p))
			die("SYNC");
		rx_consume(&p, &st);
		if ((st.eof || st.err) && !detached) {
			/* Closes the socket: the client sees EOF. */
			struct daxnet_detach dt = {
				.conn = st.conn, .flags = DAXNET_DETACH_DISCARD,
			};

			if (ioctl(p.fd, DAXNET_IOC_DETACH, &dt))
				die("DETACH");
			detached = 1;
		}
		poll(&pfd, 1, 20);
	}
	c = counters(&p);
	for (i = 0; i < (uint64_t)nbufs * BS; i++) {
		run = p.pool[i] == marker ? run + 1 : 0;
		if (run == 64)
			hits++;
	}
	check("own-stream", st.eof && !st.err && !st.bad, "bytes=%llu", st.pos);
	check("foreign-bytes", hits == 0, "runs=%llu", hits);
	printf("zc_guard: hold bytes=%llu bad=%llu sum=%016llx rx_zc_bytes=%llu rx_copied=%llu\n",
	       (unsigned long long)st.pos, (unsigned long long)st.bad,
	       (unsigned long long)st.h, (unsigned long long)c.rx_zc_bytes,
	       (unsigned long long)c.rx_copied);
	return failed;
}

/* sink PORT: accept one connection and read it to EOF (plain socket). */
static int sink(char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	uint64_t total = 0, odd = 0;
	int one = 1, ls, s;
	uint8_t buf[65536];
	ssize_t n, k;

	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_port = htons(atoi(argv[2]));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1))
		die("bind/listen");
	s = accept(ls, NULL, NULL);
	if (s < 0)
		die("accept");
	while ((n = read(s, buf, sizeof(buf))) > 0) {
		for (k = 0; k < n; k++)
			odd += buf[k] != marker;
		total += n;
	}
	printf("zc_guard: sink bytes=%llu odd=%llu\n",
	       (unsigned long long)total, (unsigned long long)odd);
	return odd != 0;
}

/* send ADDR PORT BYTES: connect and send BYTES marker bytes. */
static int sendm(char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	uint64_t total = strtoull(argv[4], NULL, 0), sent = 0;
	uint8_t buf[65536];
	int s, tries;
	ssize_t n;

	memset(buf, marker, sizeof(buf));
	a.sin_port = htons(atoi(argv[3]));
	inet_pton(AF_INET, argv[2], &a.sin_addr);
	for (tries = 0;; tries++) {
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (!connect(s, (struct sockaddr *)&a, sizeof(a)))
			break;
		if (tries == 100)
			die("connect");
		close(s);
		usleep(100000);
	}
	while (sent < total) {
		n = write(s, buf, total - sent < sizeof(buf) ? total - sent : sizeof(buf));
		if (n <= 0)
			die("write");
		sent += n;
	}
	close(s);
	printf("zc_guard: send bytes=%llu\n", (unsigned long long)sent);
	return 0;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	return acc;
}

/* GRO on or off for ifname (SIOCETHTOOL, ETHTOOL_SGRO). */
static void set_gro(int s, const char *ifname, int on)
{
	struct ethtool_value ev = { .cmd = ETHTOOL_SGRO, .data = on };
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&ev;
	if (ioctl(s, SIOCETHTOOL, &ifr))
		die("ETHTOOL_SGRO");
}

/*
 * csum IFNAME SECONDS: capture the IPv4/TCP frames IFNAME receives (a
 * packet socket sees the skbs the vnic rebuilt; GRO is switched off
 * meanwhile, merged skbs carry their first segment's header) and check
 * each one's TCP checksum. Prints "zc_guard: csum good=N bad=M".
 */
static int csum_capture(char **argv)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };
	uint64_t good = 0, bad = 0;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	time_t end = time(NULL) + atoi(argv[3]);
	static uint8_t f[70000];
	int s;

	s = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
	if (s < 0)
		die("packet socket");
	sll.sll_protocol = htons(ETH_P_IP);
	sll.sll_ifindex = if_nametoindex(argv[2]);
	set_gro(s, argv[2], 0);
	if (bind(s, (struct sockaddr *)&sll, sizeof(sll)))
		die("bind packet socket");
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	printf("zc_guard: csum capturing\n");
	fflush(stdout);
	while (time(NULL) < end) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s, f, sizeof(f), 0, (struct sockaddr *)&from, &fl);
		uint32_t ihl, tot, acc;

		if (n < 20 || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		ihl = (f[0] & 15) * 4;
		tot = (uint32_t)f[2] << 8 | f[3];
		if ((f[0] >> 4) != 4 || f[9] != IPPROTO_TCP || tot > n || tot < ihl + 20)
			continue;
		/* Pseudo header + TCP header and payload: sums to 0xffff. */
		acc = sum16(f + 12, 8, 0) + IPPROTO_TCP + (tot - ihl);
		acc = sum16(f + ihl, tot - ihl, acc);
		while (acc >> 16)
			acc = (acc & 0xffff) + (acc >> 16);
		if (acc == 0xffff)
			good++;
		else
			bad++;
	}
	set_gro(s, argv[2], 1);
	printf("zc_guard: csum good=%llu bad=%llu\n",
	       (unsigned long long)good, (unsigned long long)bad);
	return 0;
}

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

struct race {
	struct port *p;
	uint32_t conn;
	volatile int stop;
	uint64_t syncs, einval, other;
};

/* Syncs handing over random spare indices and RX swaps (dups, held, junk). */
static void *race_sync(void *arg)
{
	struct race *r = arg;
	struct port *p = r->p;

	while (!r->stop) {
		uint32_t n = p->sp->num_slots, h = p->sp->head, k, t;
		struct daxnet_sync s = { .pair = 0 };

		for (k = rnd() % 8; k && daxnet_ring_space(h, ktail(p->sp), n); k--) {
			p->sps[h] = rnd() % 4 ? rnd() % nbufs : rnd();
			h = daxnet_ring_next(h, n);
		}
		t = ktail(p->rx);
		for (k = p->rx->head; k != t; k = daxnet_ring_next(k, p->rx->num_slots)) {
			if (rnd() % 4 == 0) {
				p->rxs[k].buf_idx = rnd() % nbufs;
				p->rxs[k].flags |= DAXNET_SLOT_BUF_CHANGED;
			}
		}
		if (ioctl(p->fd, DAXNET_IOC_SYNC, &s) == 0) {
			/* Accepted: the entries are the kernel's now. */
			p->sp->head = p->sp->cur = h;
			p->rx->head = p->rx->cur = t;
			r->syncs++;
		} else if (errno == EINVAL) {
			r->einval++;
		} else {
			r->other++;
		}
	}
	return NULL;
}

/* poll() and COUNTERS in a loop. */
static void *race_poll(void *arg)
{
	struct race *r = arg;

	while (!r->stop) {
		struct pollfd pfd = { .fd = r->p->fd, .events = POLLIN };
		struct daxnet_counters_arg a = { .pair = DAXNET_RING_ALL };

		poll(&pfd, 1, 1);
		ioctl(r->p->fd, DAXNET_IOC_COUNTERS, &a);
	}
	return NULL;
}

/*
 * race PORT SECONDS: a zero-copy port (64 buffers) bound by one stream;
 * one thread syncs with random spare entries and RX swaps (duplicates,
 * kernel-held and out-of-range indices), one polls and reads counters,
 * the main thread detaches the connection halfway and closes the port at
 * the end while both still run. The kernel must neither crash nor warn
 * (the guest checks dmesg); prints the sync outcomes.
 */
static int race_test(char **argv)
{
	static struct port p;
	struct race r = { .p = &p };
	struct daxnet_detach dt = { .flags = DAXNET_DETACH_DISCARD };
	pthread_t t1, t2;
	int secs = atoi(argv[3]), fd;

	nbufs = 64;
	nspare = 256;
	port_open(&p);
	r.conn = accept_attach(&p, argv[2]);
	fd = p.fd;
	pthread_create(&t1, NULL, race_sync, &r);
	pthread_create(&t2, NULL, race_poll, &r);
	usleep(secs * 500000);
	dt.conn = r.conn;
	ioctl(fd, DAXNET_IOC_DETACH, &dt);
	usleep(secs * 500000);
	/* Close under the threads' feet: their ioctls hold the file. */
	close(fd);
	usleep(200000);
	r.stop = 1;
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	printf("zc_guard: race syncs=%llu einval=%llu other=%llu\n",
	       (unsigned long long)r.syncs, (unsigned long long)r.einval,
	       (unsigned long long)r.other);
	return !(r.syncs && r.einval);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "dup"))
		return dup_test(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "zcperm"))
		return zcperm_test();
	if (argc >= 4 && !strcmp(argv[1], "hold"))
		return hold_test(argv);
	if (argc >= 3 && !strcmp(argv[1], "sink"))
		return sink(argv);
	if (argc >= 5 && !strcmp(argv[1], "send"))
		return sendm(argv);
	if (argc >= 4 && !strcmp(argv[1], "csum"))
		return csum_capture(argv);
	if (argc >= 4 && !strcmp(argv[1], "race"))
		return race_test(argv);
	fprintf(stderr, "usage: see the comment at the top of zc_guard.c\n");
	return 2;
}
