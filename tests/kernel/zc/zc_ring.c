// SPDX-License-Identifier: BSD-2-Clause
/*
 * zc_ring - the daxnet ring side of the zero-copy guest tests.
 *
 *   zc_ring server PORT POOLFILE [--copy] [--lag-ms N] [--count K]
 *                  [--rcvbuf N]
 *   zc_ring client ADDR PORT POOLFILE BYTES WRITE_SIZE [--copy]
 *
 * server: accepts K connections one after the other, attaches each to a
 * /dev/daxnet port registered with DAXNET_REG_ZEROCOPY (unless --copy),
 * checks every received byte against zc_stream's pattern straight in the
 * pool buffers named by the RX slots, and prints per stream
 *   zc_ring: server bytes=N bad=M sum=HEX mode=zc|copy <counters>
 * client: connects, attaches, sends BYTES from pool buffers through TX
 * slots (WRITE_SIZE bytes per slot), then EOF; waits until every buffer
 * came back (release rule) and prints
 *   zc_ring: client bytes=N sum=HEX mode=... <counters>
 * Buffer ownership follows the release rule of daxnet.h exactly.
 */
#define _GNU_SOURCE
#include "../ktest_util.h"

#include <sys/resource.h>

#define NBUFS	4096
#define BS	4096

static void die(const char *what)
{
	fprintf(stderr, "zc_ring: %s: %s\n", what, strerror(errno));
	exit(1);
}

struct port {
	int fd;
	uint8_t *pool;
	uint32_t flags;
	struct daxnet_ring *rx, *tx, *sp;
	struct daxnet_slot *rxs, *txs;
	uint32_t *sps;
	uint32_t freel[NBUFS], nfree;
	uint32_t kheld[NBUFS];
	uint32_t tx_ret;
};

static void kdrop(struct port *p, uint32_t b)
{
	if (b >= NBUFS || !p->kheld[b]) {
		fprintf(stderr, "zc_ring: release of unheld buffer %u\n", b);
		exit(1);
	}
	if (--p->kheld[b] == 0)
		p->freel[p->nfree++] = b;
}

static void port_open(struct port *p, const char *path, int zc)
{
	struct dxt_geom g = { .buf_size = BS, .buf_count = NBUFS, .rx = 1024,
			      .tx = 1024, .spare = 512 };
	struct dxt_rings k;
	uint64_t rsize;
	int pfd, mflags = MAP_SHARED_VALIDATE | MAP_SYNC;
	uint32_t i;

	memset(p, 0, sizeof(*p));
	/* A device-DAX character device (/dev/daxX.Y) is mapped as is. */
	if (!strncmp(path, "/dev/dax", 8)) {
		pfd = open(path, O_RDWR);
		if (pfd < 0)
			die("device-DAX pool");
	} else {
		pfd = open(path, O_RDWR | O_CREAT, 0600);
		if (pfd < 0 || ftruncate(pfd, (off_t)NBUFS * BS))
			die("pool file");
	}
	p->pool = mmap(NULL, (size_t)NBUFS * BS, PROT_READ | PROT_WRITE, mflags, pfd, 0);
	if (p->pool == MAP_FAILED)
		p->pool = mmap(NULL, (size_t)NBUFS * BS, PROT_READ | PROT_WRITE,
			       MAP_SHARED, pfd, 0);
	if (p->pool == MAP_FAILED)
		die("mmap pool");
	p->fd = open(DAXNET_DEVICE, O_RDWR | O_CLOEXEC);
	if (p->fd < 0)
		die("open /dev/daxnet");
	g.flags = zc ? DAXNET_REG_ZEROCOPY : 0;
	if (dxt_register(p->fd, p->pool, (uint64_t)NBUFS * BS, &g, &rsize))
		die("REGISTER");
	if (dxt_map_rings(p->fd, rsize, &k))
		die("mmap region");
	p->flags = k.flags;
	p->rx = k.rx;
	p->tx = k.tx;
	p->sp = k.sp;
	p->rxs = k.rxs;
	p->txs = k.txs;
	p->sps = k.sps;
	for (i = NBUFS; i > 0; i--)
		p->freel[p->nfree++] = i - 1;
}

static void refill(struct port *p, uint32_t keep)
{
	dxt_refill(p->sp, p->sps, p->freel, &p->nfree, keep, p->kheld);
}

typedef void (*rx_fn)(struct port *p, const struct daxnet_slot *s, void *arg);

static void port_sync(struct port *p, uint32_t keep, rx_fn cb, void *arg)
{
	struct daxnet_sync s = { .pair = 0 };
	uint32_t i, n, t;

	refill(p, keep);
	if (ioctl(p->fd, DAXNET_IOC_SYNC, &s))
		die("SYNC");
	n = p->tx->num_slots;
	t = dxt_ktail(p->tx);
	for (i = p->tx_ret; i != t; i = daxnet_ring_next(i, n)) {
		struct daxnet_slot *ts = &p->txs[i];

		if (ts->flags & DAXNET_SLOT_ERROR) {
			fprintf(stderr, "zc_ring: TX slot error %u\n", ts->err);
			exit(1);
		}
		if ((ts->flags & DAXNET_SLOT_DATA) && !(ts->flags & DAXNET_SLOT_BUF_HELD))
			kdrop(p, ts->buf_idx);
	}
	p->tx_ret = t;
	n = p->rx->num_slots;
	t = dxt_ktail(p->rx);
	for (i = p->rx->head; i != t; i = daxnet_ring_next(i, n)) {
		struct daxnet_slot *rs = &p->rxs[i];

		if (rs->flags & DAXNET_SLOT_RELEASE) {
			kdrop(p, rs->buf_idx);
			continue;
		}
		if (cb)
			cb(p, rs, arg);
		if ((rs->flags & DAXNET_SLOT_DATA) && !(rs->flags & DAXNET_SLOT_BUF_HELD))
			kdrop(p, rs->buf_idx);
	}
	p->rx->head = p->rx->cur = t;
	refill(p, keep);
}

static void wait_port(struct port *p, int ms)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

	poll(&pfd, 1, ms);
}

/* CPU time of this process so far, in microseconds. */
static long long cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL +
	       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static void print_counters(struct port *p)
{
	static struct daxnet_counters prev;
	struct daxnet_counters_arg a = { .pair = DAXNET_RING_ALL };
	struct daxnet_counters now;
	uint64_t *c = (uint64_t *)&a.c, *o = (uint64_t *)&prev;
	size_t k;

	/* Deltas since the previous stream of this process. */
	if (ioctl(p->fd, DAXNET_IOC_COUNTERS, &a))
		die("COUNTERS");
	now = a.c;
	for (k = 0; k < sizeof(now) / sizeof(uint64_t); k++)
		c[k] -= o[k];
	prev = now;
	printf(" rx_bytes=%llu rx_copied=%llu rx_zc_bytes=%llu rx_copy_head=%llu rx_copy_other=%llu releases=%llu"
	       " tx_bytes=%llu tx_copied=%llu tx_zc_bytes=%llu tx_zc_batches=%llu tx_zc_copied=%llu tx_zc_early=%llu\n",
	       (unsigned long long)a.c.rx_bytes, (unsigned long long)a.c.rx_copied,
	       (unsigned long long)a.c.rx_zc_bytes, (unsigned long long)a.c.rx_copy_head,
	       (unsigned long long)a.c.rx_copy_other, (unsigned long long)a.c.releases,
	       (unsigned long long)a.c.tx_bytes, (unsigned long long)a.c.tx_copied,
	       (unsigned long long)a.c.tx_zc_bytes, (unsigned long long)a.c.tx_zc_batches,
	       (unsigned long long)a.c.tx_zc_copied, (unsigned long long)a.c.tx_zc_early);
	fflush(stdout);
}

struct stream {
	uint32_t conn;
	uint64_t pos, bad, h;
	int eof, err;
};

static void rx_cb(struct port *p, const struct daxnet_slot *s, void *arg)
{
	struct stream *st = arg;
	const uint8_t *d;
	uint32_t i;

	if (s->conn != st->conn)
		return;
	if (s->flags & DAXNET_SLOT_EOF)
		st->eof = 1;
	if (s->flags & DAXNET_SLOT_ERROR)
		st->err = s->err;
	if (!(s->flags & DAXNET_SLOT_DATA))
		return;
	d = p->pool + (size_t)s->buf_idx * BS + s->offset;
	for (i = 0; i < s->len; i++) {
		st->bad += d[i] != dxt_pattern(st->pos + i);
		st->h = (st->h ^ d[i]) * 0x100000001b3ull;
	}
	st->pos += s->len;
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int server(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int zc = 1, lag = 0, count = 1, one = 1, rcvbuf = 0, ls, i;
	static struct port p;

	for (i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--copy"))
			zc = 0;
		else if (!strcmp(argv[i], "--lag-ms") && i + 1 < argc)
			lag = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rcvbuf") && i + 1 < argc)
			rcvbuf = atoi(argv[++i]);
	}
	port_open(&p, argv[3], zc);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (rcvbuf)
		setsockopt(ls, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	a.sin_port = htons(atoi(argv[2]));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 8))
		die("bind/listen");
	while (count--) {
		struct daxnet_attach at = { 0 };
		struct daxnet_detach dt = { 0 };
		struct stream st = { .h = 0xcbf29ce484222325ull };
		int s = accept(ls, NULL, NULL), pre;

		if (s < 0)
			die("accept");
		/*
		 * Bytes queued before ATTACH: the vnic put them in ordinary
		 * pages (their flow was not attached yet), so they are copied.
		 */
		if (ioctl(s, FIONREAD, &pre))
			pre = 0;
		at.fd = s;
		if (ioctl(p.fd, DAXNET_IOC_ATTACH, &at))
			die("ATTACH");
		close(s);
		st.conn = at.conn;
		while (!st.eof && !st.err) {
			port_sync(&p, 0, rx_cb, &st);
			if (lag)
				msleep(lag);
			else
				wait_port(&p, 50);
		}
		{
			struct daxnet_counters_arg ca = {
				.pair = at.conn, .flags = DAXNET_COUNTERS_CONN,
			};

			if (ioctl(p.fd, DAXNET_IOC_COUNTERS, &ca))
				die("COUNTERS_CONN");
			printf("zc_ring: conn rx_bytes=%llu rx_copied=%llu rx_zc_bytes=%llu pre_attach=%d\n",
			       (unsigned long long)ca.c.rx_bytes,
			       (unsigned long long)ca.c.rx_copied,
			       (unsigned long long)ca.c.rx_zc_bytes, pre);
		}
		dt.conn = at.conn;
		dt.flags = DAXNET_DETACH_DISCARD;
		ioctl(p.fd, DAXNET_IOC_DETACH, &dt);
		printf("zc_ring: server bytes=%llu bad=%llu sum=%016llx err=%d mode=%s",
		       (unsigned long long)st.pos, (unsigned long long)st.bad,
		       (unsigned long long)st.h, st.err,
		       (p.flags & DAXNET_REG_ZEROCOPY) ? "zc" : "copy");
		print_counters(&p);
	}
	return 0;
}

static int client(int argc, char **argv)
{
	uint64_t total = strtoull(argv[5], NULL, 0), pos = 0;
	uint32_t ws = strtoul(argv[6], NULL, 0), held, b, i;
	uint64_t h = 0xcbf29ce484222325ull;
	struct daxnet_attach at = { 0 };
	static struct port p;
	int s, eof_sent = 0;

	long long t0 = cpu_us();

	if (!ws || ws > BS)
		ws = BS;
	port_open(&p, argv[4], !(argc > 7 && !strcmp(argv[7], "--copy")));
	s = dxt_connect(argv[2], argv[3]);
	if (s < 0)
		die("connect");
	at.fd = s;
	if (ioctl(p.fd, DAXNET_IOC_ATTACH, &at))
		die("ATTACH");
	close(s);
	for (;;) {
		uint32_t n = p.tx->num_slots, hd = p.tx->head;

		while (daxnet_ring_space(hd, dxt_ktail(p.tx), n) && !eof_sent) {
			struct daxnet_slot *ts = &p.txs[hd];

			memset(ts, 0, sizeof(*ts));
			ts->conn = at.conn;
			if (pos == total) {
				ts->buf_idx = DAXNET_NO_BUF;
				ts->flags = DAXNET_SLOT_EOF;
				eof_sent = 1;
			} else {
				uint32_t len = total - pos < ws ? total - pos : ws;

				if (!p.nfree)
					break;
				b = p.freel[--p.nfree];
				p.kheld[b]++;
				for (i = 0; i < len; i++) {
					uint8_t c = dxt_pattern(pos + i);

					p.pool[(size_t)b * BS + i] = c;
					h = (h ^ c) * 0x100000001b3ull;
				}
				ts->buf_idx = b;
				ts->len = len;
				ts->flags = DAXNET_SLOT_DATA;
				pos += len;
			}
			hd = daxnet_ring_next(hd, n);
		}
		p.tx->head = p.tx->cur = hd;
		port_sync(&p, NBUFS, NULL, NULL);
		for (held = 0, b = 0; b < NBUFS; b++)
			held += p.kheld[b];
		if (eof_sent && !held)
			break;
		wait_port(&p, 20);
	}
	printf("zc_ring: client bytes=%llu sum=%016llx mode=%s cpu_us=%lld",
	       (unsigned long long)pos, (unsigned long long)h,
	       (p.flags & DAXNET_REG_ZEROCOPY) ? "zc" : "copy", cpu_us() - t0);
	print_counters(&p);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "server"))
		return server(argc, argv);
	if (argc >= 7 && !strcmp(argv[1], "client"))
		return client(argc, argv);
	fprintf(stderr, "usage: see the comment at the top of zc_ring.c\n");
	return 2;
}
