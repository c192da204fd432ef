// SPDX-License-Identifier: BSD-2-Clause
/*
 * zc_guard - a zero-copy port handed abusive buffer indices (issue 13).
 *
 *   zc_guard dup PORT
 *   zc_guard zcperm
 *   zc_guard hold PORT STOPFILE [keep]
 *   zc_guard sink PORT
 *   zc_guard send ADDR PORT BYTES
 *   zc_guard csum IFNAME SECONDS
 *   zc_guard race PORT SECONDS
 *   zc_guard badsum IFNAME ADDR PORT BYTES N
 *   zc_guard wake PORT
 *   zc_guard owe ADDR PORT
 *   zc_guard defer ADDR PORT
 *   zc_guard limit ADDR PORT
 *   zc_guard push
 *   zc_guard empty
 *   zc_guard rxlimit PORT
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
#include "../ktest_util.h"

#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <pthread.h>
#include <sys/time.h>

#define MAXBUFS	256
#define BS	4096

static int failed;
static uint32_t nbufs = 4;	/* pool buffers */
static uint32_t nspare = 32768;	/* spare ring slots */
static uint32_t nrx = 64, ntx = 8;	/* RX and TX ring slots */
static uint32_t reg_extra, max_conns;	/* more DAXNET_REG_* flags, max_conns */
static const uint8_t marker = 'Z';	/* the foreign stream's byte */

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
	uint8_t *region;
	struct daxnet_ring *rx, *sp, *tx;
	struct daxnet_slot *rxs, *txs;
	uint32_t *sps;
	uint32_t kheld[MAXBUFS];	/* kernel references per buffer */
};

static void port_open(struct port *p)
{
	struct dxt_geom g = { .buf_size = BS, .buf_count = nbufs, .rx = nrx,
			      .tx = ntx, .spare = nspare,
			      .max_conns = max_conns,
			      .flags = DAXNET_REG_ZEROCOPY | reg_extra };
	struct dxt_rings k;
	uint64_t rsize;

	memset(p, 0, sizeof(*p));
	p->pool = mmap(NULL, (size_t)nbufs * BS, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->pool == MAP_FAILED)
		die("mmap pool");
	p->fd = open(DAXNET_DEVICE, O_RDWR | O_CLOEXEC);
	if (p->fd < 0)
		die("open " DAXNET_DEVICE);
	if (dxt_register(p->fd, p->pool, (uint64_t)nbufs * BS, &g, &rsize))
		die("REGISTER");
	if (dxt_map_rings(p->fd, rsize, &k))
		die("mmap region");
	p->flags = k.flags;
	p->region = k.region;
	p->rx = k.rx;
	p->sp = k.sp;
	p->rxs = k.rxs;
	p->sps = k.sps;
	p->tx = k.tx;
	p->txs = k.txs;
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
		if (p->kheld[b] || !daxnet_ring_space(h, dxt_ktail(p->sp), n))
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
	uint32_t n = p->rx->num_slots, t = dxt_ktail(p->rx), i, k;

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
			st->bad += d[k] != dxt_pattern(st->pos + k);
			st->h = (st->h ^ d[k]) * 0x100000001b3ull;
		}
		st->pos += s->len;
		if (!(s->flags & DAXNET_SLOT_BUF_HELD))
			kdrop(p, s->buf_idx);
	}
	p->rx->head = p->rx->cur = t;
}

/* One sync (spares given first) and the RX slots consumed; dies on error. */
static void step_rx(struct port *p, struct stream *st)
{
	int ret;

	give_spares(p);
	ret = sync_pair(p);
	if (ret) {
		errno = -ret;
		die("SYNC");
	}
	rx_consume(p, st);
}

/* The buffers the kernel holds (references, mirrored in p->kheld). */
static uint64_t held_total(const struct port *p)
{
	uint64_t held = 0;
	uint32_t b;

	for (b = 0; b < nbufs; b++)
		held += p->kheld[b];
	return held;
}

/* The server's line the guest script parses: its stream and counters. */
static void server_line(const struct stream *st, const struct daxnet_counters *c,
			const char *name, unsigned long long value)
{
	printf("zc_guard: server bytes=%llu bad=%llu sum=%016llx rx_zc_bytes=%llu rx_copied=%llu %s=%llu\n",
	       (unsigned long long)st->pos, (unsigned long long)st->bad,
	       (unsigned long long)st->h, (unsigned long long)c->rx_zc_bytes,
	       (unsigned long long)c->rx_copied, name, value);
}

/* Attach the connected socket s to p (or die); the conn id. */
static uint32_t attach_fd(struct port *p, int s)
{
	struct daxnet_attach at = { .fd = s };

	if (ioctl(p->fd, DAXNET_IOC_ATTACH, &at))
		die("ATTACH");
	return at.conn;
}

/* Accept one TCP connection on port (or die); the socket. */
static int accept_one(const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
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
	return s;
}

/* Accept one connection on port and attach it; returns the conn id. */
static uint32_t accept_attach(struct port *p, const char *port)
{
	int s = accept_one(port);
	uint32_t conn = attach_fd(p, s);

	close(s);
	return conn;
}

/* Connect to ADDR:PORT, waiting while the server starts (or die). */
static int connect_or_die(const char *addr, const char *port)
{
	int s = dxt_connect(addr, port);

	if (s < 0)
		die("connect");
	return s;
}

/* Connect to ADDR:PORT (retrying while the server starts) and ATTACH. */
static int connect_attach(struct port *p, const char *addr, const char *port,
			  uint32_t *conn)
{
	int s = connect_or_die(addr, port);

	*conn = attach_fd(p, s);
	return s;
}

/* Queue a TX DATA slot of BS bytes of buffer b at h; the next head. */
static uint32_t tx_put(struct port *p, uint32_t h, uint32_t conn, uint32_t b)
{
	p->txs[h] = (struct daxnet_slot){ .conn = conn, .buf_idx = b,
					  .len = BS, .flags = DAXNET_SLOT_DATA };
	p->kheld[b]++;
	return daxnet_ring_next(h, p->tx->num_slots);
}

/*
 * Sync RX (poll 50 ms between) until buffer b is held no more, a sync
 * fails or 200 rounds passed; adds the RELEASE slots naming b to *got
 * (if not NULL). The last sync's result.
 */
static int await_release(struct port *p, struct stream *st, uint32_t b, uint32_t *got)
{
	uint32_t i;
	int ret = 0, tries;

	for (tries = 0; ret == 0 && p->kheld[b] && tries < 200; tries++) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

		poll(&pfd, 1, 50);
		ret = sync_flags(p, DAXNET_SYNC_RX);
		for (i = p->rx->head; got && i != dxt_ktail(p->rx);
		     i = daxnet_ring_next(i, p->rx->num_slots))
			*got += (p->rxs[i].flags & DAXNET_SLOT_RELEASE) && p->rxs[i].buf_idx == b;
		rx_consume(p, st);
	}
	return ret;
}

static int dup_test(int argc, char **argv)
{
	struct stream st = { .h = 0xcbf29ce484222325ull };
	struct daxnet_counters c0, c;
	static struct port p;
	uint32_t i, h, n;
	int ret, tries;

	(void)argc;
	port_open(&p);
	st.conn = accept_attach(&p, argv[2]);
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
	check("spare-dup-tail", dxt_ktail(p.sp) == n - 1, "tail=%llu", dxt_ktail(p.sp));
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
	if (dxt_ktail(p.rx) == p.rx->head ||
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
		step_rx(&p, &st);
		if (!st.eof)
			poll(&pfd, 1, 20);
	}
	c = counters(&p);
	check("stream", st.eof && !st.err && !st.bad && c.bad_buf == c0.bad_buf + 3,
	      "err=%llu", st.err);
	server_line(&st, &c, "held", held_total(&p));
	close(p.fd);
	return failed;
}

/*
 * wake PORT: a lost-wakeup test. A zero-copy port over 4 buffers receives
 * a stream (zc_stream client) by the rules and sleeps in poll() - up to
 * 30 s - whenever a sync brought no slot. With 4 buffers the stream keeps
 * stalling until vnic buffers come back from freed skbs, and nothing in
 * the stack wakes the poller when the last skb of a buffer goes: only
 * daxnet's recheck timer (armed by poll while closed buffers wait). A
 * poll that times out with the stream unfinished is a lost wakeup.
 * Prints "zc_guard: wake ok|FAIL waits=N" and the server line.
 */
static int wake_test(char **argv)
{
	struct stream st = { .h = DXT_FNV_SEED };
	struct daxnet_counters c;
	static struct port p;
	uint64_t waits = 0, lost = 0;
	uint32_t head;
	int tries;

	port_open(&p);
	st.conn = accept_attach(&p, argv[2]);
	for (tries = 0; !st.eof && !st.err && tries < 200000; tries++) {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };

		head = p.rx->head;
		step_rx(&p, &st);
		if (st.eof || st.err || p.rx->head != head)
			continue;
		waits++;
		if (poll(&pfd, 1, 30000) == 0) {
			lost++;
			break;
		}
	}
	c = counters(&p);
	check("wake", st.eof && !st.err && !st.bad && !lost, "waits=%llu", waits);
	server_line(&st, &c, "releases", c.releases);
	close(p.fd);
	return failed;
}

/*
 * zcperm: an unprivileged caller cannot put a port in zero-copy mode
 * (EPERM), or cannot open the device at all; copy mode still works when
 * it can open it.
 */
static int zcperm_test(void)
{
	struct dxt_geom g = { .buf_size = BS, .buf_count = 4, .rx = 64,
			      .tx = 64, .spare = 64,
			      .flags = DAXNET_REG_ZEROCOPY };
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
	ret = -dxt_register(fd, pool, 4 * BS, &g, NULL);
	check("zcperm", ret == EPERM, "register errno=%llu", ret);
	g.flags = 0;
	ret = -dxt_register(fd, pool, 4 * BS, &g, NULL);
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
 * same vnic end). At EOF it detaches the connection (the client sees
 * EOF); with "keep" it answers with a TX EOF slot instead, so the
 * connection stays attached until the port closes (zc.ctl lists it).
 */
static int hold_test(int argc, char **argv)
{
	struct stream st = { .h = 0xcbf29ce484222325ull };
	struct daxnet_counters c;
	static struct port p;
	uint64_t i, run = 0, hits = 0;
	int tries, detached = 0, keep = argc >= 5 && !strcmp(argv[4], "keep");

	nbufs = 64;
	nspare = 64;
	port_open(&p);
	st.conn = accept_attach(&p, argv[2]);
	for (tries = 0; access(argv[3], F_OK) && tries < 6000; tries++) {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };

		step_rx(&p, &st);
		if ((st.eof || st.err) && !detached && keep) {
			/* keep: a TX EOF slot; the client sees EOF, the socket stays. */
			uint32_t h = p.tx->head;

			p.txs[h] = (struct daxnet_slot){ .conn = st.conn, .buf_idx = DAXNET_NO_BUF,
							 .flags = DAXNET_SLOT_EOF };
			p.tx->head = p.tx->cur = daxnet_ring_next(h, p.tx->num_slots);
			detached = 1;
		} else if ((st.eof || st.err) && !detached) {
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
	uint64_t total = 0, odd = 0;
	int s = accept_one(argv[2]);
	uint8_t buf[65536];
	ssize_t n, k;

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
	uint64_t total = strtoull(argv[4], NULL, 0), sent = 0;
	uint8_t buf[65536];
	ssize_t n;
	int s;

	memset(buf, marker, sizeof(buf));
	s = connect_or_die(argv[2], argv[3]);
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

/* Fold a 32-bit ones' complement sum to 16 bits. */
static uint16_t fold16(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

/*
 * One IPv4/TCP frame from lo:lport to re:rport with len marker bytes,
 * built for a packet socket (the vnic then gets it CHECKSUM_NONE, like a
 * bridged or forwarded frame) with a TCP checksum that is right, or wrong
 * when bad. Returns the frame length.
 */
static size_t badsum_frame(uint8_t *f, const struct sockaddr_in *lo,
			   const struct sockaddr_in *re, uint16_t rport,
			   size_t len, int bad)
{
	uint8_t *ip = f + 14, *th = ip + 20;
	size_t tot = 20 + 20 + len;
	uint16_t c;

	memset(f, 0xff, 6);		/* broadcast: the vnic drops first */
	memset(f + 6, 0x02, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 40);
	ip[0] = 0x45;
	ip[2] = tot >> 8;
	ip[3] = tot & 0xff;
	ip[8] = 64;
	ip[9] = IPPROTO_TCP;
	memcpy(ip + 12, &lo->sin_addr, 4);
	memcpy(ip + 16, &re->sin_addr, 4);
	c = ~fold16(sum16(ip, 20, 0));
	ip[10] = c >> 8;
	ip[11] = c & 0xff;
	memcpy(th, &lo->sin_port, 2);
	th[2] = rport >> 8;
	th[3] = rport & 0xff;
	th[7] = 1;			/* seq 1: far out of the window */
	th[12] = 5 << 4;
	th[13] = 0x18;			/* ACK | PSH */
	th[14] = 0x10;			/* window */
	memset(th + 20, marker, len);
	c = ~fold16(sum16(th, 20 + len, sum16(ip + 12, 8, 0) + IPPROTO_TCP + 20 + len));
	if (bad)
		c ^= 0x5a5a;
	th[16] = c >> 8;
	th[17] = c & 0xff;
	return 14 + tot;
}

/*
 * badsum IFNAME ADDR PORT BYTES N: connect to ADDR:PORT (a zero-copy
 * zc_ring server over the vnic), send BYTES of zc_stream's pattern, then
 * put N frames of the connection's own 4-tuple carrying 1000 marker bytes
 * and a wrong TCP checksum on IFNAME with a packet socket (plus one frame
 * with a right checksum to PORT + 1, where nothing listens: a control the
 * vnic must not count), then finish the stream. The vnic must drop the N
 * frames before any pool sees them and count them in the receiving end's
 * rx_csum_bad; the server's byte check sees only the pattern. Prints
 * "zc_guard: badsum sent=N bytes=B sum=HEX".
 */
static int badsum_test(char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET }, lo;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };
	uint64_t total = strtoull(argv[5], NULL, 0), pos = 0;
	uint64_t h = DXT_FNV_SEED;
	int n = atoi(argv[6]), s, ps, i, sent = 0;
	uint16_t rport = (uint16_t)atoi(argv[4]);
	socklen_t ll = sizeof(lo);
	static uint8_t f[2048], buf[4096];
	size_t flen;

	a.sin_port = htons(rport);
	if (inet_pton(AF_INET, argv[3], &a.sin_addr) != 1)
		die("address");
	s = connect_or_die(argv[3], argv[4]);
	if (getsockname(s, (struct sockaddr *)&lo, &ll))
		die("getsockname");
	ps = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
	if (ps < 0)
		die("packet socket");
	sll.sll_protocol = htons(ETH_P_IP);
	sll.sll_ifindex = if_nametoindex(argv[2]);
	sll.sll_halen = 6;
	memset(sll.sll_addr, 0xff, 6);
	for (; pos < total || sent < n;) {
		size_t k = total - pos < sizeof(buf) ? total - pos : sizeof(buf), j;

		for (j = 0; j < k; j++)
			buf[j] = dxt_pattern(pos + j);
		h = dxt_fnv1a(h, buf, k);
		if (k && write(s, buf, k) != (ssize_t)k)
			die("write");
		pos += k;
		/* Interleaved with the stream, while the flow is attached. */
		for (i = 0; i < 4 && sent < n; i++, sent++) {
			flen = badsum_frame(f, &lo, &a, rport, 1000, 1);
			if (sendto(ps, f, flen, 0, (struct sockaddr *)&sll, sizeof(sll)) != (ssize_t)flen)
				die("sendto bad frame");
		}
	}
	flen = badsum_frame(f, &lo, &a, rport + 1, 1000, 0);
	if (sendto(ps, f, flen, 0, (struct sockaddr *)&sll, sizeof(sll)) != (ssize_t)flen)
		die("sendto control frame");
	shutdown(s, SHUT_WR);
	while (read(s, buf, sizeof(buf)) > 0)
		;
	close(s);
	close(ps);
	printf("zc_guard: badsum sent=%d bytes=%llu sum=%016llx\n", sent,
	       (unsigned long long)pos, (unsigned long long)h);
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

		for (k = rnd() % 8; k && daxnet_ring_space(h, dxt_ktail(p->sp), n); k--) {
			p->sps[h] = rnd() % 4 ? rnd() % nbufs : rnd();
			h = daxnet_ring_next(h, n);
		}
		t = dxt_ktail(p->rx);
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

/*
 * owe ADDR PORT: the RELEASEs a zero-copy TX batch owes are counted once
 * per buffer. A zero-copy port with 8-slot rings (a RELEASE queue of 16
 * entries that the fault knob keeps from growing) sends 6 TX slots naming
 * the same 4 KiB buffer in one sync: one batch, 6 references to the
 * buffer, 6 RELEASEs owed when it completes. The reap must find room for
 * 6; the code before dxn_zc_batch_owe() summed the buffer's 6 owed
 * RELEASEs once per send (36), found no room without growing the queue
 * and deferred the batch for as long as the queue could not grow. The 6
 * RELEASE slots must arrive while growth fails, with no deferral.
 * The peer is "zc_guard sink" (the bytes are the marker byte).
 */
static int owe_test(char **argv)
{
	struct stream st = { .h = DXT_FNV_SEED };
	struct daxnet_counters c;
	static struct port p;
	uint32_t h, h0, n, i, k = 6, got = 0;
	int s, ret;

	nbufs = 4;
	nspare = 8;
	nrx = 8;
	ntx = 8;
	port_open(&p);
	s = connect_attach(&p, argv[2], argv[3], &st.conn);
	ret = sync_pair(&p);
	check("owe-sync", ret == 0, "first sync %lld", ret);
	rx_consume(&p, &st);
	memset(p.pool + BS, marker, BS);
	n = p.tx->num_slots;
	h = h0 = p.tx->head;
	for (i = 0; i < k; i++)
		h = tx_put(&p, h, st.conn, 1);
	p.tx->head = p.tx->cur = h;
	if (dxt_knob_write("fail_release_grow", "Y")) {
		check("owe-knob", 0, "no fault knob (a build without CONFIG_DAXNET_FAULT_INJECT) %llu", 0);
		return failed;
	}
	ret = sync_flags(&p, DAXNET_SYNC_TX);
	/* Every slot comes back held (zero copy); RELEASEs follow the ACKs. */
	for (i = h0; i != h; i = daxnet_ring_next(i, n))
		if (!(p.txs[i].flags & DAXNET_SLOT_BUF_HELD))
			kdrop(&p, 1);
	if (ret == 0)
		ret = await_release(&p, &st, 1, &got);
	c = counters(&p);
	dxt_knob_write("fail_release_grow", "N");
	check("owe-sync", ret == 0, "syncs %lld", ret);
	check("owe-zc", c.tx_zc_bytes == (uint64_t)k * BS, "tx_zc_bytes=%llu",
	      (unsigned long long)c.tx_zc_bytes);
	check("owe-releases", !p.kheld[1], "buffer 1 still held %llu times with the queue unable to grow",
	      p.kheld[1]);
	check("owe-deferred", c.rel_deferred == 0, "rel_deferred=%llu",
	      (unsigned long long)c.rel_deferred);
	printf("zc_guard: owe releases=%u tx_zc_batches=%llu rel_deferred=%llu\n", got,
	       (unsigned long long)c.tx_zc_batches, (unsigned long long)c.rel_deferred);
	close(s);
	close(p.fd);
	return failed;
}

/*
 * limit ADDR PORT: the RELEASEs zero-copy sends owe count against the
 * ENOBUFS rule's limit (DXN_MAX_TXQ, lowered to 4 with the test build's
 * debugfs daxnet/txq_max). One sync of a zero-copy port over the vnic
 * pair, 8 TX slots of 4 KiB: 4 naming buffer 1 go by reference (BUF_HELD,
 * a RELEASE owed each) and bring the debt to the limit; then 2 naming
 * buffer 2 (in no batch) go by copy, owing nothing (tx_zc_limited); then
 * one naming buffer 1 again, which would owe a RELEASE however sent, fails
 * with ENOBUFS, and so does the last (buffer 2 again, which could go by
 * copy): nothing after a refused slot may reach the peer, or the stream
 * would have a gap. The 6 others' bytes arrive and buffer 1's 4 RELEASEs
 * come. Before, nothing bounded that debt (nor the completed batches
 * waiting for their ACK on zc->ackwait): all 8 went by reference.
 * The peer is "zc_guard sink".
 */
static int limit_test(char **argv)
{
	struct stream st = { .h = DXT_FNV_SEED };
	struct daxnet_counters c;
	static struct port p;
	uint32_t h, h0, n, i, k = 8, lim = 4, held = 0, errs = 0;
	int s, ret, big = 1 << 20;

	nbufs = 4;
	nspare = 8;
	nrx = 16;
	ntx = 16;
	port_open(&p);
	s = connect_or_die(argv[2], argv[3]);
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	st.conn = attach_fd(&p, s);
	ret = sync_pair(&p);
	check("limit-sync", ret == 0, "first sync %lld", ret);
	rx_consume(&p, &st);
	memset(p.pool + BS, marker, BS);
	n = p.tx->num_slots;
	h = h0 = p.tx->head;
	memset(p.pool + 2 * BS, marker, BS);
	for (i = 0; i < k; i++)
		h = tx_put(&p, h, st.conn, (i >= 4 && i < 6) || i == 7 ? 2 : 1);
	p.tx->head = p.tx->cur = h;
	if (dxt_knob_u32("txq_max", lim)) {
		check("limit-knob", 0, "no txq_max knob (a build without CONFIG_DAXNET_FAULT_INJECT) %llu", 0);
		return failed;
	}
	ret = sync_flags(&p, DAXNET_SYNC_TX);
	for (i = h0; i != h; i = daxnet_ring_next(i, n)) {
		if (p.txs[i].flags & DAXNET_SLOT_ERROR)
			errs += p.txs[i].err == ENOBUFS;
		if (p.txs[i].flags & DAXNET_SLOT_BUF_HELD)
			held++;
		else
			kdrop(&p, p.txs[i].buf_idx);
	}
	c = counters(&p);
	dxt_knob_u32("txq_max", 0);
	check("limit-sync", ret == 0, "TX sync %lld", ret);
	check("limit-enobufs", errs == 2, "%llu slots failed with ENOBUFS, want 2", errs);
	check("limit-gapless", p.txs[(h + n - 1) % n].flags & DAXNET_SLOT_ERROR,
	      "the slot after a refused one was sent (a gap in the stream) %llu", 0);
	check("limit-held", held == lim, "%llu slots sent by reference (held), want 4", held);
	check("limit-zc", c.tx_zc_bytes == (uint64_t)lim * BS, "tx_zc_bytes=%llu",
	      (unsigned long long)c.tx_zc_bytes);
	check("limit-counted", c.tx_zc_limited == 2, "tx_zc_limited=%llu, want 2",
	      (unsigned long long)c.tx_zc_limited);
	check("limit-bytes", c.tx_bytes == 6ull * BS, "tx_bytes=%llu",
	      (unsigned long long)c.tx_bytes);
	if (ret == 0)
		ret = await_release(&p, &st, 1, NULL);
	check("limit-releases", !p.kheld[1], "buffer 1 still held %llu times",
	      (unsigned long long)p.kheld[1]);
	printf("zc_guard: limit held=%u tx_zc_limited=%llu tx_zc_batches=%llu\n", held,
	       (unsigned long long)c.tx_zc_limited, (unsigned long long)c.tx_zc_batches);
	close(s);
	close(p.fd);
	return failed;
}

/* A connected pair over lo: *srv accepted, *cli with SO_RCVBUF rcvbuf (0: default). */
static void lo_pair(int *cli, int *srv, int rcvbuf)
{
	struct sockaddr_in la = { .sin_family = AF_INET };
	socklen_t al = sizeof(la);
	int ls;

	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(ls, (struct sockaddr *)&la, sizeof(la)) || listen(ls, 4) ||
	    getsockname(ls, (struct sockaddr *)&la, &al))
		die("listen lo");
	*cli = socket(AF_INET, SOCK_STREAM, 0);
	if (rcvbuf)
		setsockopt(*cli, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (connect(*cli, (struct sockaddr *)&la, sizeof(la)))
		die("connect lo");
	*srv = accept(ls, NULL, NULL);
	if (*srv < 0)
		die("accept lo");
	close(ls);
}

/*
 * push: bytes sent with MSG_MORE before a refused slot are pushed by the
 * sync. A zero-copy port, the ENOBUFS limit lowered to 1, two connections
 * over lo (in the step's own netns). X's peer does not read and has a tiny
 * receive buffer, so what X sends stays in its send queue. One TX sync:
 * X sends 4 KiB of buffer 1 by reference (a RELEASE owed: the debt is at
 * the limit; the batch stays open, its bytes unsent); then Z (TCP_NODELAY,
 * nothing sent before) sends 100 bytes of buffer 2 by copy with MSG_MORE,
 * since its next slot follows, and that slot, naming buffer 1 again, is
 * refused with ENOBUFS. Right after the sync Z must have no unsent byte
 * (SIOCOUTQNSD 0): the module as it was left the 100 bytes corked, with
 * nothing in flight to clear it, until the probe timer (200 ms or more).
 * Z's peer then gets the 100 bytes; once X's peer reads, buffer 1 comes
 * back.
 */
static int push_test(void)
{
	struct stream st = { .h = DXT_FNV_SEED };
	static struct port p;
	static uint8_t fill[1 << 16], rb[1 << 16];
	uint32_t h, h0, n, i, cx, cz;
	int xc, xs, zc, zs, ret, one = 1, big = 1 << 20, unsent = -1, tries;
	uint64_t zgot = 0;
	ssize_t r;

	nbufs = 4;
	nspare = 8;
	nrx = 16;
	ntx = 16;
	port_open(&p);
	lo_pair(&xc, &xs, 4096);
	lo_pair(&zc, &zs, 0);
	setsockopt(xs, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(zs, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	cx = attach_fd(&p, xs);
	cz = attach_fd(&p, zs);
	st.conn = cz;
	ret = sync_pair(&p);
	check("push-sync", ret == 0, "first sync %lld", ret);
	rx_consume(&p, &st);
	/* X's peer window closes: the rest of fill waits in X's queue. */
	r = send(xs, fill, sizeof(fill), MSG_DONTWAIT);
	check("push-fill", r > 0, "send on X: %lld", (long long)r);
	memset(p.pool + BS, marker, 2 * BS);
	n = p.tx->num_slots;
	h = h0 = p.tx->head;
	h = tx_put(&p, h, cx, 1);
	h = tx_put(&p, h, cz, 2);
	p.txs[daxnet_ring_next(h0, n)].len = 100;
	h = tx_put(&p, h, cz, 1);
	p.tx->head = p.tx->cur = h;
	if (dxt_knob_u32("txq_max", 1)) {
		check("push-knob", 0, "no txq_max knob (a build without CONFIG_DAXNET_FAULT_INJECT) %llu", 0);
		return failed;
	}
	ret = sync_flags(&p, DAXNET_SYNC_TX);
	if (ioctl(zs, SIOCOUTQNSD, &unsent))
		die("SIOCOUTQNSD");
	dxt_knob_u32("txq_max", 0);
	check("push-sync", ret == 0, "TX sync %lld", ret);
	check("push-zc", p.txs[h0].flags & DAXNET_SLOT_BUF_HELD,
	      "X's slot not sent by reference (flags %#llx)", p.txs[h0].flags);
	i = daxnet_ring_next(h0, n);
	check("push-copy", !(p.txs[i].flags & DAXNET_SLOT_ERROR), "Z's first slot failed (err %llu)",
	      p.txs[i].err);
	i = daxnet_ring_next(i, n);
	check("push-refused", (p.txs[i].flags & DAXNET_SLOT_ERROR) && p.txs[i].err == ENOBUFS,
	      "Z's second slot not refused with ENOBUFS (err %llu)", p.txs[i].err);
	check("push-unsent", unsent == 0,
	      "%llu bytes of Z left unsent (corked) after the sync", (unsigned long long)unsent);
	for (i = h0; i != h; i = daxnet_ring_next(i, n))
		if (!(p.txs[i].flags & DAXNET_SLOT_BUF_HELD))
			kdrop(&p, p.txs[i].buf_idx);
	/* Z's peer gets the 100 bytes (whenever they were sent). */
	for (tries = 0; zgot < 100 && tries < 100; tries++) {
		struct pollfd pfd = { .fd = zc, .events = POLLIN };

		poll(&pfd, 1, 100);
		r = recv(zc, rb, sizeof(rb), MSG_DONTWAIT);
		if (r > 0)
			zgot += r;
	}
	check("push-arrived", zgot == 100, "Z's peer got %llu bytes, want 100",
	      (unsigned long long)zgot);
	/* X's peer reads: X's batch completes, buffer 1 comes back. */
	for (tries = 0; ret == 0 && p.kheld[1] && tries < 400; tries++) {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };

		while (recv(xc, rb, sizeof(rb), MSG_DONTWAIT) > 0)
			;
		poll(&pfd, 1, 50);
		ret = sync_pair(&p);
		rx_consume(&p, &st);
	}
	check("push-releases", ret == 0 && !p.kheld[1], "buffer 1 still held %llu times",
	      (unsigned long long)p.kheld[1]);
	printf("zc_guard: push unsent=%d\n", unsent);
	close(xc);
	close(xs);
	close(zc);
	close(zs);
	close(p.fd);
	return failed;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Release at most max RX slots (RELEASEs counted back); true if some left. */
static int rx_release_some(struct port *p, uint32_t max)
{
	uint32_t n = p->rx->num_slots, t = dxt_ktail(p->rx), i = p->rx->head;

	for (; i != t && max; i = daxnet_ring_next(i, n), max--)
		if (p->rxs[i].flags & DAXNET_SLOT_RELEASE)
			kdrop(p, p->rxs[i].buf_idx);
	p->rx->head = p->rx->cur = i;
	return i != t;
}

/*
 * defer ADDR PORT: zero-copy RELEASEs deferred for lack of memory make
 * poll() back off instead of spinning. A zero-copy port with 8-slot rings
 * (a 16-entry RELEASE queue, growth blocked by the fault knob) sends 6
 * TX slots naming one buffer (a sync reserving 1 + 6 entries), then
 * attaches 10 more connections (over lo). Every later sync reserves 11
 * entries for its connections, so the batch's 6 RELEASEs do not fit:
 * the housekeeping defers them (rel_deferred) at every sync while the
 * syncs themselves succeed. poll() must report that work only every
 * 100 ms (a timer wakes the poller), not at once: a poll loop spun on it
 * before the backoff. With growth allowed again the 6 RELEASEs arrive.
 */
static int defer_test(char **argv)
{
	struct sockaddr_in la = { .sin_family = AF_INET };
	struct stream st = { .h = DXT_FNV_SEED };
	struct daxnet_attach at = { 0 };
	struct daxnet_counters c;
	static struct port p;
	socklen_t al = sizeof(la);
	uint32_t h, i, k = 6, conn;
	int s, ls, cl[10], sv[10], ret, tries, wakeups = 0, e;
	double t0, el = 0;

	nbufs = 4;
	nspare = 8;
	nrx = 8;
	ntx = 8;
	port_open(&p);
	if (dxt_knob_write("fail_release_grow", "Y")) {
		check("defer-knob", 0, "no fault knob (a build without CONFIG_DAXNET_FAULT_INJECT) %llu", 0);
		return failed;
	}
	s = connect_attach(&p, argv[2], argv[3], &conn);
	st.conn = conn;
	ret = sync_pair(&p);
	rx_consume(&p, &st);
	memset(p.pool + BS, marker, BS);
	h = p.tx->head;
	for (i = 0; i < k; i++)
		h = tx_put(&p, h, conn, 1);
	p.tx->head = p.tx->cur = h;
	if (!ret)
		ret = sync_flags(&p, DAXNET_SYNC_TX);
	check("defer-tx", ret == 0, "TX sync %lld", ret);
	/* Ten more connections over lo: later syncs reserve 11 entries. */
	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(ls, (struct sockaddr *)&la, sizeof(la)) || listen(ls, 16) ||
	    getsockname(ls, (struct sockaddr *)&la, &al))
		die("listen lo");
	for (e = 0; e < 10; e++) {
		cl[e] = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(cl[e], (struct sockaddr *)&la, sizeof(la)))
			die("connect lo");
		sv[e] = accept(ls, NULL, NULL);
		at = (struct daxnet_attach){ .fd = sv[e] };
		if (ioctl(p.fd, DAXNET_IOC_ATTACH, &at))
			die("ATTACH lo");
	}
	close(ls);
	/* Drain the NEW_CONN slots, at most 5 per sync (11 + 5 fit). */
	for (tries = 0; !ret && tries < 100; tries++) {
		ret = sync_flags(&p, DAXNET_SYNC_RX);
		if (!rx_release_some(&p, 5) && counters(&p).rel_deferred)
			break;
		usleep(20000);
	}
	c = counters(&p);
	check("defer-deferred", !ret && c.rel_deferred > 0 && p.kheld[1] == k,
	      "rel_deferred=%llu", (unsigned long long)c.rel_deferred);
	/* Poll loop: each report is a sync that defers again. */
	ret = sync_flags(&p, DAXNET_SYNC_RX);
	t0 = now_s();
	do {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };

		if (poll(&pfd, 1, 200) == 1 && (pfd.revents & POLLIN)) {
			wakeups++;
			ret = sync_flags(&p, DAXNET_SYNC_RX);
			rx_release_some(&p, 5);
			if (ret || !p.kheld[1])
				break;
		}
		el = now_s() - t0;
	} while (el < 1.0 || (!wakeups && el < 30));
	dxt_knob_write("fail_release_grow", "N");
	check("defer-still", ret == 0 && p.kheld[1] == k, "buffer 1 held %llu times", p.kheld[1]);
	check("defer-retry", wakeups >= 1, "wakeups %llu", wakeups);
	check("defer-backoff", wakeups <= 2 + (int)(el * 20),
	      "%llu EPOLLIN reports in one second for RELEASEs that stay deferred", wakeups);
	/* Growth allowed: the RELEASEs come. */
	for (tries = 0; !ret && p.kheld[1] && tries < 100; tries++) {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };

		poll(&pfd, 1, 200);
		ret = sync_flags(&p, DAXNET_SYNC_RX);
		rx_release_some(&p, 8);
	}
	check("defer-released", !ret && !p.kheld[1], "buffer 1 still held %llu times",
	      p.kheld[1]);
	c = counters(&p);
	printf("zc_guard: defer wakeups=%d in %.2f s rel_deferred=%llu tx_zc_batches=%llu\n",
	       wakeups, el, (unsigned long long)c.rel_deferred,
	       (unsigned long long)c.tx_zc_batches);
	for (e = 0; e < 10; e++) {
		close(cl[e]);
		close(sv[e]);
	}
	close(s);
	close(p.fd);
	return failed;
}

/* The send sequence number (write_seq) of an established socket, or -1. */
static int64_t send_seq(int s)
{
	int on = 1, off = 0, q = TCP_SEND_QUEUE;
	uint32_t seq;
	socklen_t l = sizeof(seq);
	int64_t ret = -1;

	if (setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)))
		return -1;
	if (!setsockopt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) &&
	    !getsockopt(s, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, &l))
		ret = seq;
	setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off));
	return ret;
}

/* Hand one 4 KiB TX slot of buffer 1 over and sync TX; the slot's flags. */
static uint32_t tx_one(struct port *p, uint32_t conn, int *ret)
{
	uint32_t n = p->tx->num_slots, h = p->tx->head;

	p->txs[h] = (struct daxnet_slot){ .conn = conn, .buf_idx = 1,
					  .len = BS, .flags = DAXNET_SLOT_DATA };
	p->kheld[1]++;
	p->tx->head = p->tx->cur = daxnet_ring_next(h, n);
	*ret = sync_flags(p, DAXNET_SYNC_TX);
	if (!(p->txs[h].flags & DAXNET_SLOT_BUF_HELD))
		kdrop(p, 1);
	return p->txs[h].flags;
}

/*
 * empty: a zero-copy TX batch whose every send was refused (the socket's
 * send buffer full: EAGAIN) holds no buffer and has no end_seq (0). It
 * completes at once and must be freed at the next sync. A reap that asks
 * it, like the others, whether snd_una is before end_seq keeps it on
 * zc->ackwait, counted in tx_zc_early, for as long as snd_una is in the
 * upper half of the sequence space: until the connection closes, one
 * batch per sync that found the socket full, nothing bounding them.
 * A zero-copy port attaches a connection over lo whose send sequence is
 * in that half (read with TCP_REPAIR; new connections until one is),
 * fills its send buffer (the peer does not read), then makes 8 syncs
 * each handing over one more 4 KiB slot: each first retries the queued
 * range, which fails (an empty batch) unless the window opened a little.
 * Every empty batch (a sync that sent nothing; at least 4) must be
 * reaped (tx_zc_batches) and none counted early. Then the peer reads: every
 * byte arrives and every buffer comes back.
 */
static int empty_test(void)
{
	struct sockaddr_in la = { .sin_family = AF_INET };
	struct stream st = { .h = DXT_FNV_SEED };
	struct daxnet_attach at = { 0 };
	struct daxnet_counters c0, c1;
	static struct port p;
	static uint8_t rb[1 << 16];
	socklen_t al = sizeof(la);
	uint64_t slots = 0, got = 0, bad = 0, sent, empties = 0;
	uint32_t i, k = 8, fl;
	int ls, cl = -1, sv = -1, small = 4096, tries, ret = 0;
	int64_t seq = -1;
	ssize_t r;

	nbufs = 4;
	nspare = 8;
	nrx = 64;
	ntx = 16;
	port_open(&p);
	memset(p.pool + BS, marker, BS);
	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (bind(ls, (struct sockaddr *)&la, sizeof(la)) || listen(ls, 4) ||
	    getsockname(ls, (struct sockaddr *)&la, &al))
		die("listen lo");
	for (tries = 0; tries < 64; tries++) {
		cl = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(cl, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		if (connect(cl, (struct sockaddr *)&la, sizeof(la)))
			die("connect lo");
		sv = accept(ls, NULL, NULL);
		seq = send_seq(cl);
		if (seq < 0 || (seq >= 0x80000000ll && seq < 0xff000000ll))
			break;
		close(cl);
		close(sv);
	}
	close(ls);
	check("empty-seq", seq >= 0x80000000ll, "send sequence %llx (TCP_REPAIR needs CAP_NET_ADMIN)",
	      (unsigned long long)seq);
	if (seq < 0x80000000ll)
		return failed;
	at.fd = cl;
	if (ioctl(p.fd, DAXNET_IOC_ATTACH, &at))
		die("ATTACH");
	st.conn = at.conn;
	ret = sync_pair(&p);
	rx_consume(&p, &st);
	/* Fill: until a slot's bytes are queued (the send buffer is full). */
	for (tries = 0; !ret && tries < 256; tries++) {
		fl = tx_one(&p, at.conn, &ret);
		slots++;
		if (fl & DAXNET_SLOT_ERROR)
			ret = -EIO;
		if (counters(&p).tx_bytes < slots * BS)
			break;
	}
	check("empty-full", !ret && counters(&p).tx_bytes < slots * BS,
	      "send buffer not full after %llu slots", slots);
	usleep(200000);
	rx_consume(&p, &st);
	c0 = counters(&p);
	sent = c0.tx_bytes;
	for (i = 0; !ret && i < k; i++) {
		fl = tx_one(&p, at.conn, &ret);
		slots++;
		if (fl & DAXNET_SLOT_ERROR)
			ret = -EIO;
		rx_consume(&p, &st);
		/* Nothing went out: the sync's batch is empty. */
		c1 = counters(&p);
		empties += c1.tx_bytes == sent;
		sent = c1.tx_bytes;
	}
	if (!ret)
		ret = sync_flags(&p, DAXNET_SYNC_RX);
	rx_consume(&p, &st);
	c1 = counters(&p);
	check("empty-sync", ret == 0, "syncs %lld", ret);
	check("empty-blocked", empties >= k / 2,
	      "only %llu of 8 syncs found the send buffer full", empties);
	check("empty-reaped", c1.tx_zc_batches - c0.tx_zc_batches >= empties,
	      "%llu batches completed after syncs that made more empty batches",
	      (unsigned long long)(c1.tx_zc_batches - c0.tx_zc_batches));
	check("empty-early", c1.tx_zc_early == c0.tx_zc_early,
	      "%llu empty batches counted early (kept on ackwait)",
	      (unsigned long long)(c1.tx_zc_early - c0.tx_zc_early));
	/* The peer reads: all the bytes arrive, every buffer comes back. */
	for (tries = 0; !ret && (got < slots * BS || p.kheld[1]) && tries < 3000; tries++) {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };

		while ((r = recv(sv, rb, sizeof(rb), MSG_DONTWAIT)) > 0) {
			for (i = 0; i < r; i++)
				bad += rb[i] != marker;
			got += r;
		}
		poll(&pfd, 1, 10);
		ret = sync_pair(&p);
		rx_consume(&p, &st);
	}
	check("empty-bytes", !ret && got == slots * BS && !bad, "received %llu bytes", got);
	check("empty-released", !p.kheld[1], "buffer 1 still held %llu times", p.kheld[1]);
	printf("zc_guard: empty seq=%llx slots=%llu empty=%llu batches=%llu early=%llu\n",
	       (unsigned long long)seq, (unsigned long long)slots,
	       (unsigned long long)empties,
	       (unsigned long long)(c1.tx_zc_batches - c0.tx_zc_batches),
	       (unsigned long long)(c1.tx_zc_early - c0.tx_zc_early));
	close(cl);
	close(sv);
	close(p.fd);
	return failed;
}

/*
 * rxlimit PORT: rx_limit on a zero-copy connection (DAXNET_REG_CONNSTATE).
 * A zero-copy port bound to the vnic end receives zc_stream's stream with
 * the limit set to 1000, 5000, 3 buffers + 7 and 100000 bytes in turn
 * (most of them inside a vnic buffer published in place): at each the
 * kernel publishes exactly up to the limit and pauses while more bytes
 * wait in the socket (rx_paused counts, rx_pending > 0, the position
 * stays put over further syncs); raising it resumes. Then the limit is
 * lifted (0) and the rest arrives to EOF, every byte checked against the
 * pattern (the caller compares the sums). Bytes published in place
 * (rx_zc_bytes) must be among them.
 */
static int rxlimit_test(char **argv)
{
	static const uint64_t lim[] = { 1000, 5000, 3 * BS + 7, 100000 };
	struct stream st = { .h = DXT_FNV_SEED };
	volatile struct daxnet_conn_state *cs;
	const struct daxnet_region *reg;
	struct daxnet_counters c;
	static struct port p;
	uint64_t paused0;
	unsigned int i, tries;

	nbufs = 16;
	nspare = 16;
	nrx = 64;
	reg_extra = DAXNET_REG_CONNSTATE;
	max_conns = 4;
	port_open(&p);
	reg = (const void *)p.region;
	check("rxlimit-table", (p.flags & DAXNET_REG_CONNSTATE) && reg->conn_state_ofs,
	      "flags=%llx", p.flags);
	st.conn = accept_attach(&p, argv[2]);
	cs = (volatile struct daxnet_conn_state *)(p.region + reg->conn_state_ofs);
	cs += DAXNET_CONN_INDEX(st.conn);
	for (i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
		cs->rx_limit = lim[i];
		paused0 = cs->rx_paused;
		/* Up to the limit, then paused with bytes left in the socket. */
		for (tries = 0; tries < 3000 && !st.eof && !st.err &&
		     (st.pos < lim[i] || !cs->rx_pending || cs->rx_paused == paused0); tries++) {
			struct pollfd pfd = { .fd = p.fd, .events = POLLIN };
			uint32_t head = p.rx->head;

			step_rx(&p, &st);
			if (p.rx->head == head)
				poll(&pfd, 1, 20);
		}
		for (tries = 0; tries < 5; tries++)
			step_rx(&p, &st);
		check("rxlimit-stop", st.pos == lim[i] && cs->rx_bytes == lim[i],
		      "published %llu bytes", st.pos);
		check("rxlimit-paused", cs->rx_paused > paused0 && cs->rx_pending > 0,
		      "%llu bytes pending", cs->rx_pending);
		printf("zc_guard: rxlimit limit=%llu pos=%llu pending=%llu paused=%llu\n",
		       (unsigned long long)lim[i], (unsigned long long)st.pos,
		       (unsigned long long)cs->rx_pending, (unsigned long long)cs->rx_paused);
		if (st.eof || st.err || st.pos != lim[i])
			break;
	}
	/* No limit: the rest to EOF. */
	cs->rx_limit = 0;
	for (tries = 0; !st.eof && !st.err && tries < 200000; tries++) {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };
		uint32_t head = p.rx->head;

		step_rx(&p, &st);
		if (!st.eof && p.rx->head == head)
			poll(&pfd, 1, 100);
	}
	c = counters(&p);
	check("rxlimit-eof", st.eof && !st.err && !st.bad, "bad bytes %llu", st.bad);
	check("rxlimit-inplace", c.rx_zc_bytes > 0, "rx_zc_bytes=%llu",
	      (unsigned long long)c.rx_zc_bytes);
	server_line(&st, &c, "held", held_total(&p));
	close(p.fd);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "dup"))
		return dup_test(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "zcperm"))
		return zcperm_test();
	if (argc >= 4 && !strcmp(argv[1], "hold"))
		return hold_test(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], "sink"))
		return sink(argv);
	if (argc >= 5 && !strcmp(argv[1], "send"))
		return sendm(argv);
	if (argc >= 4 && !strcmp(argv[1], "csum"))
		return csum_capture(argv);
	if (argc >= 4 && !strcmp(argv[1], "race"))
		return race_test(argv);
	if (argc >= 7 && !strcmp(argv[1], "badsum"))
		return badsum_test(argv);
	if (argc >= 3 && !strcmp(argv[1], "wake"))
		return wake_test(argv);
	if (argc >= 4 && !strcmp(argv[1], "owe"))
		return owe_test(argv);
	if (argc >= 4 && !strcmp(argv[1], "defer"))
		return defer_test(argv);
	if (argc >= 4 && !strcmp(argv[1], "limit"))
		return limit_test(argv);
	if (argc >= 2 && !strcmp(argv[1], "push"))
		return push_test();
	if (argc >= 2 && !strcmp(argv[1], "empty"))
		return empty_test();
	if (argc >= 3 && !strcmp(argv[1], "rxlimit"))
		return rxlimit_test(argv);
	fprintf(stderr, "usage: see the comment at the top of zc_guard.c\n");
	return 2;
}
