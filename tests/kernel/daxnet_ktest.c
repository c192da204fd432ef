// SPDX-License-Identifier: BSD-2-Clause
/*
 * daxnet_ktest: tests of daxnet.ko, run inside the test guest by
 * guest-kernel-tests.sh (needs root, /dev/daxnet and the module loaded).
 *
 *   daxnet_ktest [--pool-dir DIR] [--shm-dir DIR] [--rmmod-name NAME] [TEST...]
 *
 * Every test prints "DAXNET-PASS ktest.<name>" or "DAXNET-FAIL ktest.<name>:
 * why"; the exit status is the number of failures. Pools live in files of
 * --pool-dir (a DAX mount: mapped MAP_SHARED_VALIDATE | MAP_SYNC) and, for
 * the "shm" variants, --shm-dir (tmpfs: plain MAP_SHARED).
 *
 * The ring helper below follows docs/abi.md strictly, including the buffer
 * release rule: a buffer returns to the test's free list when the kernel
 * gives back its last reference (an RX DATA slot without BUF_HELD, a TX
 * slot passed by tail without BUF_HELD, or a RELEASE slot).
 */
#define _GNU_SOURCE
#include "ktest_util.h"

#include <netinet/tcp.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/tls.h>
#include <linux/userfaultfd.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

static const char *pool_dir = "/tmp";
static const char *shm_dir = "/dev/shm";
static const char *rmmod_name = "daxnet";
static int failures;
static char fail_msg[512];
/* DAXNET_REG_* flags kport_open_ex() registers with (t_conn_state). */
static uint32_t kport_reg_flags;

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		if (!(cond)) {                                            \
			snprintf(fail_msg, sizeof(fail_msg), __VA_ARGS__); \
			fprintf(stderr, "  %s:%d: %s (errno %d %s)\n",    \
				__FILE__, __LINE__, fail_msg, errno,      \
				strerror(errno));                         \
			return -1;                                        \
		}                                                         \
	} while (0)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ the rings */

struct kport {
	int fd;
	int pool_fd;
	uint8_t *region;
	size_t region_size;
	uint8_t *pool;
	size_t pool_len;
	uint32_t bs, nbufs;
	struct daxnet_ring *rx, *tx, *sp;
	struct daxnet_slot *rxs, *txs;
	uint32_t *sps;
	uint32_t *freel;	/* free buffers */
	uint32_t nfree;
	uint32_t tx_ret;	/* next TX slot whose result is unread */
	uint32_t *kheld;	/* per buffer: kernel references (mirror) */
	uint64_t syncs;
	uint64_t tx_errors;	/* TX slots returned with ERROR */
};

static uint32_t rspace(uint32_t h, uint32_t t, uint32_t n)
{
	return daxnet_ring_space(h, t, n);
}

static void buf_put(struct kport *p, uint32_t b)
{
	p->freel[p->nfree++] = b;
}

/* The kernel dropped one reference to b. */
static void kref_drop(struct kport *p, uint32_t b)
{
	if (b >= p->nbufs || !p->kheld[b]) {
		fprintf(stderr, "  kref_drop: buffer %u not held\n", b);
		return;
	}
	if (--p->kheld[b] == 0)
		buf_put(p, b);
}

static int kport_open_ex(struct kport *p, bool shm, uint32_t nbufs,
			 uint32_t bs, uint32_t rx, uint32_t tx, uint32_t spare,
			 uint32_t max_conns, uint32_t api)
{
	struct dxt_geom g = { .buf_size = bs, .buf_count = nbufs, .rx = rx,
			      .tx = tx, .spare = spare, .max_conns = max_conns,
			      .api = api, .flags = kport_reg_flags };
	struct dxt_rings k;
	uint64_t rsize;
	char path[256];
	int flags = MAP_SHARED, ret;
	uint32_t i;

	memset(p, 0, sizeof(*p));
	p->bs = bs;
	p->nbufs = nbufs;
	p->pool_len = (size_t)bs * nbufs;
	snprintf(path, sizeof(path), "%s/ktest-pool-%d-%p", shm ? shm_dir : pool_dir,
		 getpid(), (void *)p);
	p->pool_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(p->pool_fd >= 0, "open pool %s", path);
	unlink(path);
	CHECK(ftruncate(p->pool_fd, p->pool_len) == 0, "ftruncate pool");
	if (!shm)
		flags = MAP_SHARED_VALIDATE | MAP_SYNC;
	p->pool = mmap(NULL, p->pool_len, PROT_READ | PROT_WRITE, flags,
		       p->pool_fd, 0);
	CHECK(p->pool != MAP_FAILED, "mmap pool (%s)", shm ? "shm" : "MAP_SYNC");

	p->fd = open("/dev/daxnet", O_RDWR | O_CLOEXEC);
	CHECK(p->fd >= 0, "open /dev/daxnet");
	ret = dxt_register(p->fd, p->pool, p->pool_len, &g, &rsize);
	if (ret)
		return ret;
	CHECK(dxt_map_rings(p->fd, rsize, &k) == 0, "mmap region");
	p->region = k.region;
	p->region_size = k.region_size;
	p->rx = k.rx;
	p->tx = k.tx;
	p->sp = k.sp;
	p->rxs = k.rxs;
	p->txs = k.txs;
	p->sps = k.sps;
	p->freel = calloc(nbufs, sizeof(uint32_t));
	p->kheld = calloc(nbufs, sizeof(uint32_t));
	for (i = nbufs; i > 0; i--)
		buf_put(p, i - 1);
	return 0;
}

static int kport_open(struct kport *p, bool shm)
{
	return kport_open_ex(p, shm, 1024, 2048, 256, 256, 64, 1024, DAXNET_API);
}

static void kport_close(struct kport *p)
{
	if (p->region && p->region != MAP_FAILED)
		munmap(p->region, p->region_size);
	if (p->fd > 0)
		close(p->fd);
	if (p->pool && p->pool != MAP_FAILED)
		munmap(p->pool, p->pool_len);
	if (p->pool_fd > 0)
		close(p->pool_fd);
	free(p->freel);
	free(p->kheld);
	memset(p, 0, sizeof(*p));
}

/* Give spare buffers, keeping `keep` free buffers for TX. */
static void refill(struct kport *p, uint32_t keep)
{
	dxt_refill(p->sp, p->sps, p->freel, &p->nfree, keep, p->kheld);
}

typedef void (*rx_fn)(struct kport *p, const struct daxnet_slot *s,
		      const uint8_t *data, void *arg);

/*
 * One sync: TX results, RX slots to cb, release them, refill spares.
 * Returns the ioctl result (0 or -errno).
 */
static int kport_sync(struct kport *p, rx_fn cb, void *arg)
{
	struct daxnet_sync s = { .pair = 0 };
	uint32_t i, n, t;
	int ret;

	refill(p, 32);
	ret = ioctl(p->fd, DAXNET_IOC_SYNC, &s) < 0 ? -errno : 0;
	p->syncs++;
	if (ret)
		return ret;
	/* TX slots passed by tail. */
	n = p->tx->num_slots;
	t = dxt_ktail(p->tx);
	for (i = p->tx_ret; i != t; i = daxnet_ring_next(i, n)) {
		struct daxnet_slot *ts = &p->txs[i];

		if ((ts->flags & DAXNET_SLOT_DATA) &&
		    !(ts->flags & DAXNET_SLOT_BUF_HELD))
			kref_drop(p, ts->buf_idx);
		if (ts->flags & DAXNET_SLOT_ERROR)
			p->tx_errors++;
	}
	p->tx_ret = t;
	/* RX slots. */
	n = p->rx->num_slots;
	t = dxt_ktail(p->rx);
	for (i = p->rx->head; i != t; i = daxnet_ring_next(i, n)) {
		struct daxnet_slot *rs = &p->rxs[i];
		const uint8_t *data = NULL;

		if (rs->flags & DAXNET_SLOT_DATA)
			data = p->pool + (size_t)rs->buf_idx * p->bs + rs->offset;
		if (cb && !(rs->flags & DAXNET_SLOT_RELEASE))
			cb(p, rs, data, arg);
		if (rs->flags & DAXNET_SLOT_RELEASE)
			kref_drop(p, rs->buf_idx);
		else if ((rs->flags & DAXNET_SLOT_DATA) &&
			 !(rs->flags & DAXNET_SLOT_BUF_HELD))
			kref_drop(p, rs->buf_idx);
	}
	p->rx->head = p->rx->cur = t;
	refill(p, 32);
	return 0;
}

/* Queue one TX slot (copying data into a fresh buffer). */
static int kport_tx(struct kport *p, uint32_t conn, const void *data,
		    uint32_t len, uint16_t flags, rx_fn cb, void *arg)
{
	uint32_t n = p->tx->num_slots, h = p->tx->head, b = DAXNET_NO_BUF;
	struct daxnet_slot *s;
	int tries = 0;

	while (!rspace(h, dxt_ktail(p->tx), n) || (len && !p->nfree)) {
		int ret = kport_sync(p, cb, arg);

		if (ret)
			return ret;
		h = p->tx->head;
		if (++tries > 100000)
			return -EAGAIN;
		if (tries % 64 == 0)
			usleep(1000);
	}
	if (len) {
		b = p->freel[--p->nfree];
		memcpy(p->pool + (size_t)b * p->bs, data, len);
		p->kheld[b]++;
	}
	s = &p->txs[h];
	memset(s, 0, sizeof(*s));
	s->conn = conn;
	s->buf_idx = b;
	s->offset = 0;
	s->len = len;
	s->flags = flags;
	h = daxnet_ring_next(h, n);
	p->tx->head = p->tx->cur = h;
	return 0;
}

static int kport_attach(struct kport *p, int fd, uint64_t cookie, uint32_t *conn)
{
	struct daxnet_attach a = { .fd = fd, .cookie = cookie };

	if (ioctl(p->fd, DAXNET_IOC_ATTACH, &a) < 0)
		return -errno;
	*conn = a.conn;
	return 0;
}

static int kport_detach(struct kport *p, uint32_t conn, uint32_t flags)
{
	struct daxnet_detach d = { .conn = conn, .flags = flags };

	return ioctl(p->fd, DAXNET_IOC_DETACH, &d) < 0 ? -errno : 0;
}

static struct daxnet_counters kport_counters(struct kport *p)
{
	struct daxnet_counters_arg a = { .pair = DAXNET_RING_ALL };

	if (ioctl(p->fd, DAXNET_IOC_COUNTERS, &a) < 0)
		memset(&a.c, 0xff, sizeof(a.c));
	return a.c;
}

/* ------------------------------------------------------------- sockets */

static int listener(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (void *)&a, sizeof(a)) || listen(fd, 4096) ||
	    getsockname(fd, (void *)&a, &al)) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* A connected pair over loopback: *cli (client side), *srv (accepted). */
static int tcp_pair_on(int lfd, uint16_t port, int *cli, int *srv)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*cli < 0 || connect(*cli, (void *)&a, sizeof(a)))
		return -1;
	*srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return *srv < 0 ? -1 : 0;
}

/* Return -1 if a helper that CHECKs failed (its fail_msg stands). */
#define TRY(call)                         \
	do {                              \
		if ((call) != 0)          \
			return -1;        \
	} while (0)

/* n loopback pairs, each server end attached to p (cookie i); 0 or -1. */
static int attach_pairs(struct kport *p, int n, int *cli, int *srv, uint32_t *conn)
{
	uint16_t port;
	int lfd = listener(&port), i;

	CHECK(lfd >= 0, "listener");
	for (i = 0; i < n; i++) {
		CHECK(tcp_pair_on(lfd, port, &cli[i], &srv[i]) == 0, "pair %d", i);
		CHECK(kport_attach(p, srv[i], i, &conn[i]) == 0, "attach %d", i);
	}
	close(lfd);
	return 0;
}

/* Close both ends of n pairs. */
static void close_pairs(int n, const int *cli, const int *srv)
{
	int i;

	for (i = 0; i < n; i++) {
		close(cli[i]);
		close(srv[i]);
	}
}

/* Detach (DISCARD) and close the n pairs of attach_pairs(); 0 or -1. */
static int detach_pairs(struct kport *p, int n, const int *cli, const int *srv, const uint32_t *conn)
{
	int i;

	for (i = 0; i < n; i++) {
		CHECK(kport_detach(p, conn[i], DAXNET_DETACH_DISCARD) == 0, "detach %d", i);
		close(cli[i]);
		close(srv[i]);
	}
	return 0;
}

static int tcp_pair(int *cli, int *srv)
{
	uint16_t port;
	int lfd = listener(&port), ret;

	if (lfd < 0)
		return -1;
	ret = tcp_pair_on(lfd, port, cli, srv);
	close(lfd);
	return ret;
}

/* One loopback pair, its server end attached to p (cookie); 0 or -1. */
static int attach_pair(struct kport *p, uint64_t cookie, int *cli, int *srv, uint32_t *conn)
{
	CHECK(tcp_pair(cli, srv) == 0, "tcp pair");
	CHECK(kport_attach(p, *srv, cookie, conn) == 0, "attach");
	return 0;
}

/* Read exactly len bytes with a timeout; returns bytes read. */
static ssize_t read_full(int fd, void *buf, size_t len, double timeout)
{
	double end = now_s() + timeout;
	size_t got = 0;

	while (got < len && now_s() < end) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		r = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EAGAIN)
				continue;
			break;
		}
		got += r;
	}
	return got;
}

/* ---------------------------------------------------------- RX capture */

#define MAXC 1100

struct capture {
	uint8_t *data[MAXC];	/* per cookie: received bytes */
	size_t len[MAXC];
	size_t cap[MAXC];
	int newconn[MAXC];
	int eof[MAXC];
	int err[MAXC];
	int errno_[MAXC];
	int bad_order;
};

static void capture_cb(struct kport *p, const struct daxnet_slot *s,
		       const uint8_t *data, void *arg)
{
	struct capture *c = arg;
	uint64_t k = s->user_data;

	(void)p;

	if (k >= MAXC)
		return;
	if (s->flags & DAXNET_SLOT_NEW_CONN) {
		if (c->newconn[k] || c->len[k])
			c->bad_order++;
		c->newconn[k]++;
	}
	if (s->flags & DAXNET_SLOT_DATA) {
		if (!c->newconn[k] || c->eof[k] || c->err[k])
			c->bad_order++;
		if (c->len[k] + s->len > c->cap[k]) {
			c->cap[k] = (c->len[k] + s->len) * 2;
			c->data[k] = realloc(c->data[k], c->cap[k]);
		}
		memcpy(c->data[k] + c->len[k], data, s->len);
		c->len[k] += s->len;
	}
	if ((s->flags & DAXNET_SLOT_EOF) && !(s->flags & DAXNET_SLOT_DATA))
		c->eof[k]++;
	if (s->flags & DAXNET_SLOT_ERROR) {
		c->err[k]++;
		c->errno_[k] = s->err;
	}
}

/* Free a calloc()ed capture and what it collected. */
static void capture_free(struct capture *c)
{
	int i;

	for (i = 0; i < MAXC; i++)
		free(c->data[i]);
	free(c);
}

/* Sync until pred(c) holds or timeout; returns 0 when it held. */
static int sync_until(struct kport *p, struct capture *c,
		      bool (*pred)(struct capture *c, void *a), void *a,
		      double timeout)
{
	double end = now_s() + timeout;

	while (now_s() < end) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

		if (kport_sync(p, capture_cb, c))
			return -1;
		if (pred(c, a))
			return 0;
		poll(&pfd, 1, 20);
	}
	return -1;
}

static bool have_bytes(struct capture *c, void *a)
{
	size_t *want = a;

	return c->len[want[0]] >= want[1];
}

static bool have_eof(struct capture *c, void *a)
{
	return c->eof[*(size_t *)a] > 0;
}

static bool have_err(struct capture *c, void *a)
{
	return c->err[*(size_t *)a] > 0;
}

/* ---------------------------------------------------------------- tests */

/* Registration checks, attach refusals, one echo, counters. */
static int t_basic(bool shm)
{
	struct kport p, q;
	struct capture *c = calloc(1, sizeof(*c));
	struct daxnet_counters k;
	int cli, srv, lfd, ufd, ret;
	uint16_t port;
	uint32_t conn = 0, conn2 = 0;
	size_t want[2] = { 1, 5 };
	char buf[64];

	CHECK(kport_open_ex(&q, shm, 16, 2048, 8, 8, 8, 4, DAXNET_API + 7) == -EPROTO,
	      "REGISTER with a wrong api_version must fail EPROTO");
	kport_close(&q);
	CHECK(kport_open_ex(&q, shm, 16, 1000, 8, 8, 8, 4, DAXNET_API) == -EINVAL,
	      "REGISTER with buf_size 1000 must fail EINVAL");
	kport_close(&q);
	CHECK(kport_open_ex(&q, shm, 16, 2048, 2, 8, 8, 4, DAXNET_API) == -EINVAL,
	      "REGISTER with 2 RX slots must fail EINVAL");
	kport_close(&q);

	ret = kport_open(&p, shm);
	CHECK(ret == 0, "REGISTER failed: %d", ret);
	CHECK(mmap(NULL, p.region_size + 4096, PROT_READ, MAP_SHARED, p.fd, 0) == MAP_FAILED,
	      "mmap of the wrong length must fail");

	ufd = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(kport_attach(&p, ufd, 0, &conn) == -EPROTONOSUPPORT, "UDP attach");
	close(ufd);
	lfd = listener(&port);
	CHECK(kport_attach(&p, lfd, 0, &conn) == -ENOTCONN, "listener attach");
	CHECK(kport_attach(&p, 12345, 0, &conn) == -EBADF, "bad fd attach");
	CHECK(kport_attach(&p, p.pool_fd, 0, &conn) == -ENOTSOCK, "file attach");
	CHECK(tcp_pair_on(lfd, port, &cli, &srv) == 0, "tcp pair");
	close(lfd);
	CHECK(kport_attach(&p, srv, 1, &conn) == 0, "attach");
	CHECK(kport_attach(&p, srv, 1, &conn2) == -EBUSY, "double attach must be EBUSY");
	CHECK(kport_detach(&p, conn + 1, 0) == -ENOENT, "detach of a wrong id");

	CHECK(send(cli, "hello", 5, 0) == 5, "client send");
	CHECK(sync_until(&p, c, have_bytes, want, 20) == 0, "no RX data");
	CHECK(c->newconn[1] == 1 && !c->bad_order, "NEW_CONN first, once");
	CHECK(memcmp(c->data[1], "hello", 5) == 0, "RX payload");

	CHECK(kport_tx(&p, conn, "world!", 6, DAXNET_SLOT_DATA, capture_cb, c) == 0, "tx");
	CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	CHECK(read_full(cli, buf, 6, 20) == 6 && !memcmp(buf, "world!", 6), "client recv");

	/* TX EOF -> the client sees EOF; client shutdown -> RX EOF. */
	CHECK(kport_tx(&p, conn, NULL, 0, DAXNET_SLOT_EOF, capture_cb, c) == 0, "tx eof");
	CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	CHECK(read_full(cli, buf, 1, 20) == 0, "client must see EOF");
	shutdown(cli, SHUT_WR);
	CHECK(sync_until(&p, c, have_eof, &want[0], 20) == 0, "no RX EOF");
	CHECK(c->eof[1] == 1, "one EOF");

	k = kport_counters(&p);
	CHECK(k.syncs >= 2 && k.rx_bytes == 5 && k.tx_bytes == 6 && k.conns == 1 &&
	      k.rx_copied == 5 && k.tx_copied == 6 && k.bad_ring == 0,
	      "counters: syncs %llu rx_bytes %llu tx_bytes %llu conns %llu",
	      (unsigned long long)k.syncs, (unsigned long long)k.rx_bytes,
	      (unsigned long long)k.tx_bytes, (unsigned long long)k.conns);
	CHECK(kport_detach(&p, conn, 0) == 0, "detach");
	CHECK(kport_counters(&p).conns == 0, "conns after detach");
	close(cli);
	close(srv);
	kport_close(&p);
	capture_free(c);
	return 0;
}

/* A stream of `total` bytes each way with small rings and few spares. */
static int t_stream(bool shm)
{
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	const size_t total = 1 << 20;
	uint8_t *src = malloc(total), *back = malloc(total);
	int cli, srv;
	uint32_t conn = 0;
	size_t i, sent = 0, want[2] = { 1, total }, got = 0;
	double end;

	for (i = 0; i < total; i++)
		src[i] = (uint8_t)(i * 7 + (i >> 11));
	CHECK(kport_open_ex(&p, shm, 96, 2048, 16, 16, 8, 8, DAXNET_API) == 0, "register");
	TRY(attach_pair(&p, 1, &cli, &srv, &conn));
	fcntl(cli, F_SETFL, O_NONBLOCK);
	/* client -> server, 1 MiB through a 16-slot ring and 8 spares */
	end = now_s() + 120;
	while ((sent < total || c->len[1] < total) && now_s() < end) {
		if (sent < total) {
			ssize_t r = send(cli, src + sent, total - sent, 0);

			if (r > 0)
				sent += r;
		}
		CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	}
	CHECK(c->len[1] == total, "received %zu of %zu", c->len[1], total);
	CHECK(!memcmp(c->data[1], src, total), "RX stream corrupted");
	(void)want;

	/* server -> client, 1 MiB in 1500-byte TX slots while the client reads */
	end = now_s() + 120;
	sent = 0;
	while ((sent < total || got < total) && now_s() < end) {
		ssize_t r;

		if (sent < total) {
			uint32_t n = total - sent < 1500 ? total - sent : 1500;

			CHECK(kport_tx(&p, conn, src + sent, n, DAXNET_SLOT_DATA,
				       capture_cb, c) == 0, "tx");
			sent += n;
		}
		r = recv(cli, back + got, total - got, MSG_DONTWAIT);
		if (r > 0)
			got += r;
		if (sent == total || (sent / 1500) % 8 == 0)
			CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	}
	CHECK(got == total, "client got %zu of %zu", got, total);
	CHECK(!memcmp(back, src, total), "TX stream corrupted");
	CHECK(p.tx_errors == 0, "TX errors");
	CHECK(kport_detach(&p, conn, 0) == 0, "detach");
	printf("  stream: %llu syncs, rx_ring_full %llu, spare_empty %llu, tx_held %llu, releases %llu\n",
	       (unsigned long long)kport_counters(&p).syncs,
	       (unsigned long long)kport_counters(&p).rx_ring_full,
	       (unsigned long long)kport_counters(&p).spare_empty,
	       (unsigned long long)kport_counters(&p).tx_held,
	       (unsigned long long)kport_counters(&p).releases);
	close(cli);
	close(srv);
	kport_close(&p);
	capture_free(c);
	free(src);
	free(back);
	return 0;
}

static bool all_have(struct capture *c, void *a)
{
	size_t *w = a, i;

	for (i = 0; i < w[0]; i++)
		if (c->len[i] < w[1])
			return false;
	return true;
}

/* 1000 connections on one port: one message each way per connection. */
static int t_conn1000(void)
{
	enum { N = 1000 };
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	static int cli[N], srv[N];
	static uint32_t conn[N];
	struct rlimit rl = { 8192, 8192 };
	struct daxnet_counters k;
	char msg[16], buf[16];
	size_t want[2] = { N, 8 };
	int i, ok = 0;
	uint64_t syncs0;

	setrlimit(RLIMIT_NOFILE, &rl);
	CHECK(kport_open_ex(&p, false, 4096, 2048, 4096, 4096, 2048, 1024,
			    DAXNET_API) == 0, "register");
	TRY(attach_pairs(&p, N, cli, srv, conn));
	for (i = 0; i < N; i++) {
		snprintf(msg, sizeof(msg), "c%06d", i);
		CHECK(send(cli[i], msg, 8, 0) == 8, "send %d", i);
	}
	syncs0 = kport_counters(&p).syncs;
	CHECK(sync_until(&p, c, all_have, want, 120) == 0, "not all data arrived");
	k = kport_counters(&p);
	printf("  conn1000: %d connections' data in %llu syncs (%llu RX slots)\n",
	       N, (unsigned long long)(k.syncs - syncs0),
	       (unsigned long long)k.rx_slots);
	for (i = 0; i < N; i++) {
		snprintf(msg, sizeof(msg), "c%06d", i);
		CHECK(!memcmp(c->data[i], msg, 8), "payload of %d", i);
		CHECK(c->newconn[i] == 1 && !c->bad_order, "events of %d", i);
		snprintf(msg, sizeof(msg), "s%06d", i);
		CHECK(kport_tx(&p, conn[i], msg, 8, DAXNET_SLOT_DATA, capture_cb, c) == 0, "tx %d", i);
	}
	CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	for (i = 0; i < N; i++) {
		snprintf(msg, sizeof(msg), "s%06d", i);
		if (read_full(cli[i], buf, 8, 20) == 8 && !memcmp(buf, msg, 8))
			ok++;
	}
	CHECK(ok == N, "%d of %d clients got their reply", ok, N);
	/* Closing the port detaches all 1000. */
	kport_close(&p);
	close_pairs(N, cli, srv);
	capture_free(c);
	return 0;
}

/* close(fd) while attached: the connection keeps working until detach. */
static int t_close_fd(void)
{
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	int cli, srv;
	uint32_t conn = 0;
	size_t want[2] = { 3, 4 };
	char buf[8];

	CHECK(kport_open(&p, false) == 0, "register");
	TRY(attach_pair(&p, 3, &cli, &srv, &conn));
	close(srv);
	CHECK(send(cli, "ping", 4, 0) == 4, "send");
	CHECK(sync_until(&p, c, have_bytes, want, 20) == 0, "no data after close(fd)");
	CHECK(kport_tx(&p, conn, "pong", 4, DAXNET_SLOT_DATA, capture_cb, c) == 0, "tx");
	CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	CHECK(read_full(cli, buf, 4, 20) == 4 && !memcmp(buf, "pong", 4), "reply");
	/* Detach drops the last file reference: the socket closes (FIN). */
	CHECK(kport_detach(&p, conn, 0) == 0, "detach");
	CHECK(read_full(cli, buf, 1, 20) == 0, "client must see the close");
	close(cli);
	kport_close(&p);
	capture_free(c);
	return 0;
}

/* The peer resets: ERROR with ECONNRESET, once; TX afterwards fails. */
static int t_peer_reset(void)
{
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	struct linger lg = { 1, 0 };
	int cli, srv;
	uint32_t conn = 0;
	size_t k = 2, want[2] = { 2, 3 };

	CHECK(kport_open(&p, true) == 0, "register");
	TRY(attach_pair(&p, 2, &cli, &srv, &conn));
	CHECK(send(cli, "abc", 3, 0) == 3, "send");
	CHECK(sync_until(&p, c, have_bytes, want, 20) == 0, "no data");
	setsockopt(cli, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(cli);
	CHECK(sync_until(&p, c, have_err, &k, 20) == 0, "no ERROR slot");
	CHECK(c->err[2] == 1 && c->errno_[2] == ECONNRESET, "ERROR once, ECONNRESET (got %d)",
	      c->errno_[2]);
	CHECK(kport_tx(&p, conn, "x", 1, DAXNET_SLOT_DATA, capture_cb, c) == 0, "tx");
	CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	CHECK(c->err[2] == 1, "ERROR reported more than once");
	CHECK(kport_detach(&p, conn, DAXNET_DETACH_DISCARD) == 0, "detach");
	close(srv);
	kport_close(&p);
	capture_free(c);
	return 0;
}

/* Detach with TX bytes queued (EBUSY, then DISCARD) and RX bytes unread. */
static int t_detach_inflight(void)
{
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	static char blob[2048];
	struct daxnet_counters k;
	int cli, srv, i, rcv = 4096;
	uint32_t conn = 0;
	char buf[16];

	CHECK(kport_open_ex(&p, false, 2048, 2048, 64, 64, 16, 8, DAXNET_API) == 0, "register");
	CHECK(tcp_pair(&cli, &srv) == 0, "tcp pair");
	setsockopt(cli, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	setsockopt(srv, SOL_SOCKET, SO_SNDBUF, &rcv, sizeof(rcv));
	CHECK(kport_attach(&p, srv, 4, &conn) == 0, "attach");
	/* The client never reads: the socket fills, the kernel queues. */
	for (i = 0; i < 1500 && kport_counters(&p).tx_held == 0; i++)
		CHECK(kport_tx(&p, conn, blob, sizeof(blob), DAXNET_SLOT_DATA, capture_cb, c) == 0, "tx");
	CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	k = kport_counters(&p);
	CHECK(k.tx_held > 0, "no TX slot was held (sent %d slots)", i);
	CHECK(kport_detach(&p, conn, 0) == -EBUSY, "detach with queued TX must be EBUSY");
	/* RX bytes the ring has not taken stay in the socket. */
	CHECK(send(cli, "tail", 4, 0) == 4, "send");
	usleep(200000);
	CHECK(kport_detach(&p, conn, DAXNET_DETACH_DISCARD) == 0, "detach DISCARD");
	k = kport_counters(&p);
	CHECK(k.tx_discarded > 0, "tx_discarded not counted");
	CHECK(read_full(srv, buf, 4, 20) == 4 && !memcmp(buf, "tail", 4),
	      "unpublished RX bytes must stay readable after detach");
	/* RELEASE slots return every held buffer. */
	for (i = 0; i < 10; i++)
		kport_sync(&p, capture_cb, c);
	CHECK(p.nfree + 0 >= 2048 - 16 - 64, "buffers not returned: %u free", p.nfree);
	close(cli);
	close(srv);
	kport_close(&p);
	capture_free(c);
	return 0;
}

/* Close /dev/daxnet with sockets attached: they go back to normal. */
static int t_release_attached(void)
{
	enum { N = 16 };
	struct kport p;
	int cli[N], srv[N], i;
	uint32_t conn = 0;
	char buf[8];

	CHECK(kport_open(&p, false) == 0, "register");
	for (i = 0; i < N; i++) {
		CHECK(tcp_pair(&cli[i], &srv[i]) == 0, "pair");
		CHECK(kport_attach(&p, srv[i], i, &conn) == 0, "attach");
		CHECK(send(cli[i], "zz", 2, 0) == 2, "send");
	}
	kport_sync(&p, NULL, NULL);
	/* Half the fds closed by the user: closing the port closes those. */
	for (i = 0; i < N / 2; i++)
		close(srv[i]);
	kport_close(&p);
	for (i = 0; i < N / 2; i++)
		CHECK(read_full(cli[i], buf, 1, 20) == 0, "closed socket %d must see EOF", i);
	for (i = N / 2; i < N; i++) {
		/* Its callbacks are restored: normal send/recv/poll work. */
		CHECK(send(cli[i], "yy", 2, 0) == 2, "send");
		CHECK(send(srv[i], "ok", 2, 0) == 2, "send on the released socket");
		CHECK(read_full(cli[i], buf, 2, 20) == 2 && !memcmp(buf, "ok", 2), "recv");
		CHECK(read_full(srv[i], buf, 2, 20) == 2 && !memcmp(buf, "yy", 2),
		      "released socket must be readable again");
		close(srv[i]);
	}
	for (i = 0; i < N; i++)
		close(cli[i]);
	return 0;
}

/* The module cannot be unloaded while a port is open. */
static int t_rmmod_busy(void)
{
	struct kport p;
	int cli, srv;
	uint32_t conn = 0;
	long r;

	CHECK(kport_open(&p, false) == 0, "register");
	TRY(attach_pair(&p, 0, &cli, &srv, &conn));
	r = syscall(SYS_delete_module, rmmod_name, O_NONBLOCK);
	CHECK(r < 0 && (errno == EWOULDBLOCK || errno == EBUSY),
	      "delete_module must fail while in use (r=%ld)", r);
	CHECK(access("/dev/daxnet", F_OK) == 0, "module went away");
	kport_close(&p);
	close(cli);
	close(srv);
	return 0;
}

static uint32_t rnd(void)
{
	static uint64_t s = 0x9e3779b97f4a7c15ull;

	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return (uint32_t)s;
}

static uint32_t rnd_index(uint32_t n)
{
	switch (rnd() % 4) {
	case 0:
		return rnd();
	case 1:
		return n + rnd() % 3 - 1;
	default:
		return rnd() % n;
	}
}

/* Fill a slot with random bytes, biased towards almost-valid values. */
static void garbage_slot(struct kport *p, struct daxnet_slot *ts, uint32_t conn)
{
	ts->conn = rnd() % 2 ? conn : rnd();
	ts->buf_idx = rnd_index(p->nbufs);
	ts->offset = rnd() % 3 ? rnd() % 2048 : rnd();
	ts->len = rnd() % 3 ? rnd() % 2048 : rnd();
	ts->flags = rnd() % 3 ? DAXNET_SLOT_DATA : rnd();
	ts->err = rnd() % 4 ? 0 : rnd();
	ts->reserved = rnd() % 8 ? 0 : rnd();
}

/*
 * Random garbage in every user-written index and slot: odd rounds corrupt
 * ring indices (the sync must fail with EINVAL and change nothing), even
 * rounds move the indices legally over slots full of garbage (the sync must
 * succeed, refusing the bad slots, or fail with EINVAL and bad_buf when the
 * garbage hands over a buffer the kernel holds or repeats one). Never an
 * oops, never a WARN.
 */
static int t_garbage(void)
{
	struct kport p;
	struct daxnet_counters k;
	int cli, srv, round, einval = 0, ok = 0, bad_idx = 0, legal_ok = 0;
	int refused = 0;
	uint32_t conn = 0, i, n, h, t, sh[3], sc[3];
	struct daxnet_ring *rings[3];

	CHECK(kport_open_ex(&p, false, 256, 2048, 32, 32, 16, 8, DAXNET_API) == 0, "register");
	TRY(attach_pair(&p, 0, &cli, &srv, &conn));
	fcntl(cli, F_SETFL, O_NONBLOCK);
	rings[0] = p.rx;
	rings[1] = p.tx;
	rings[2] = p.sp;
	for (round = 0; round < 4000; round++) {
		struct daxnet_sync s = { .pair = 0 };
		char sink[4096];

		send(cli, "garbage!", 8, 0);
		for (i = 0; i < 3; i++) {
			sh[i] = rings[i]->head;
			sc[i] = rings[i]->cur;
		}
		if (round % 2) {
			struct daxnet_ring *r = rings[rnd() % 3];

			r->head = rnd_index(r->num_slots);
			r->cur = rnd_index(r->num_slots);
			bad_idx++;
		} else {
			/* TX: hand over up to all free slots, each garbage. */
			n = p.tx->num_slots;
			h = p.tx->head;
			t = dxt_ktail(p.tx);
			for (i = rnd() % (rspace(h, t, n) + 1); i; i--) {
				garbage_slot(&p, &p.txs[h], conn);
				h = daxnet_ring_next(h, n);
			}
			p.tx->head = p.tx->cur = h;
			/* RX: release everything, random BUF_CHANGED swaps. */
			n = p.rx->num_slots;
			t = dxt_ktail(p.rx);
			for (h = p.rx->head; h != t; h = daxnet_ring_next(h, n)) {
				p.rxs[h].flags = rnd();
				p.rxs[h].buf_idx = rnd_index(p.nbufs);
			}
			p.rx->head = p.rx->cur = t;
			/* Spare: random indices in every free entry. */
			n = p.sp->num_slots;
			h = p.sp->head;
			t = dxt_ktail(p.sp);
			for (i = rspace(h, t, n); i; i--) {
				p.sps[h] = rnd_index(p.nbufs);
				h = daxnet_ring_next(h, n);
			}
			p.sp->head = p.sp->cur = h;
		}
		if (rnd() % 8 == 0)
			s.flags = rnd() % 4;
		if (!(round % 2))
			k = kport_counters(&p);
		if (ioctl(p.fd, DAXNET_IOC_SYNC, &s) < 0) {
			CHECK(errno == EINVAL, "sync failed with errno %d", errno);
			einval++;
			if (!(round % 2)) {
				/* Only for a held or repeated buffer index. */
				uint64_t bb = k.bad_buf;

				k = kport_counters(&p);
				CHECK(k.bad_buf == bb + 1 && !(s.flags & ~3u),
				      "a legal round may only fail on a held buffer");
				refused++;
			}
			/* Nothing changed: put the valid indices back. */
			for (i = 0; i < 3; i++) {
				rings[i]->head = sh[i];
				rings[i]->cur = sc[i];
			}
		} else {
			ok++;
			legal_ok += !(round % 2);
			CHECK(round % 2 || !(s.flags & ~3u), "legal moves must sync");
		}
		while (recv(cli, sink, sizeof(sink), 0) > 0)
			;
	}
	k = kport_counters(&p);
	printf("  garbage: %d syncs EINVAL (%d corrupt index rounds), %d accepted; bad_ring %llu bad_buf %llu bad_slot %llu\n",
	       einval, bad_idx, ok, (unsigned long long)k.bad_ring,
	       (unsigned long long)k.bad_buf, (unsigned long long)k.bad_slot);
	/* Legal rounds fail too when the garbage repeats a buffer index. */
	CHECK(einval > 0 && k.bad_ring + k.bad_buf == (uint64_t)einval,
	      "bad_ring + bad_buf must count the EINVAL syncs");
	CHECK(legal_ok + refused == 2000 && legal_ok > 0 && k.bad_slot > 0,
	      "legal rounds must sync (or refuse a held buffer) and count bad slots");
	/* Detaching and closing still work after all that. */
	CHECK(kport_detach(&p, conn, DAXNET_DETACH_DISCARD) == 0 ||
	      kport_detach(&p, conn, DAXNET_DETACH_DISCARD) == -ENOENT, "detach");
	kport_close(&p);
	close(cli);
	close(srv);
	return 0;
}

/* Two processes, each with its own port and listening port, echo 200 msgs. */
static int echo_child(int id)
{
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	int cli, srv, i;
	uint32_t conn = 0;
	char msg[32], buf[32];
	size_t want[2];

	if (kport_open(&p, id % 2) || tcp_pair(&cli, &srv) ||
	    kport_attach(&p, srv, 5, &conn))
		return 1;
	for (i = 0; i < 200; i++) {
		int n = snprintf(msg, sizeof(msg), "p%d-m%04d", id, i);

		if (send(cli, msg, n, 0) != n)
			return 2;
		want[0] = 5;
		want[1] = c->len[5] + n;
		if (sync_until(&p, c, have_bytes, want, 30))
			return 3;
		if (memcmp(c->data[5] + c->len[5] - n, msg, n))
			return 4;
		if (kport_tx(&p, conn, msg, n, DAXNET_SLOT_DATA, capture_cb, c) ||
		    kport_sync(&p, capture_cb, c))
			return 5;
		if (read_full(cli, buf, n, 30) != n || memcmp(buf, msg, n))
			return 6;
	}
	kport_close(&p);
	return 0;
}

static int t_two_procs(void)
{
	pid_t pid[2];
	int i, st;

	for (i = 0; i < 2; i++) {
		pid[i] = fork();
		CHECK(pid[i] >= 0, "fork");
		if (!pid[i])
			_exit(echo_child(i));
	}
	for (i = 0; i < 2; i++) {
		CHECK(waitpid(pid[i], &st, 0) == pid[i], "waitpid");
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed (status %d)", i,
		      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
	return 0;
}

/* --------------------------------------------------- privilege model */

#define KT_UID 65534	/* nobody */
#define KT_GID 4242	/* stands for the `daxnet` group of the udev rule */

/* Drop to uid KT_UID with gid `gid` and no supplementary groups. */
static int drop_privs(gid_t gid)
{
	if (setgroups(0, NULL) || setresgid(gid, gid, gid) ||
	    setresuid(KT_UID, KT_UID, KT_UID))
		return -1;
	return 0;
}

/* Run fn in a child that dropped to gid; returns its exit status or -1. */
static int as_user(gid_t gid, int (*fn)(void))
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (!pid)
		_exit(drop_privs(gid) ? 100 : fn());
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Child: opening /dev/daxnet must fail with EACCES. */
static int child_open_refused(void)
{
	int fd = open("/dev/daxnet", O_RDWR);

	if (fd >= 0)
		return 1;
	return errno == EACCES ? 0 : 2;
}

/* Child (in the group): copy mode works, zero-copy is EPERM. */
static int child_group_member(void)
{
	struct kport p;
	int ret = kport_open_ex(&p, true, 16, 4096, 8, 8, 8, 4, DAXNET_API);

	if (ret)
		return 10;
	kport_close(&p);
	/* The same geometry with DAXNET_REG_ZEROCOPY. */
	{
		struct dxt_geom g = { .buf_size = 4096, .buf_count = 16,
				      .rx = 8, .tx = 8, .spare = 8,
				      .flags = DAXNET_REG_ZEROCOPY };
		size_t len = 16 * 4096;
		void *pool = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		int fd = open("/dev/daxnet", O_RDWR), zret;

		if (pool == MAP_FAILED || fd < 0)
			return 11;
		zret = dxt_register(fd, pool, len, &g, NULL);
		if (zret == 0)
			return 12;
		if (zret != -EPERM)
			return 13;
		close(fd);
		munmap(pool, len);
	}
	return 0;
}

/*
 * The node is root-owned 0660 (kernel/udev/60-daxnet.rules hands it to
 * the daxnet group); a user outside the group cannot open it; one in the
 * group gets copy mode but not zero-copy (CAP_NET_ADMIN).
 */
static int t_privileges(void)
{
	struct stat st;
	int ret;

	CHECK(stat("/dev/daxnet", &st) == 0, "stat /dev/daxnet");
	CHECK((st.st_mode & 07777) == 0660 && st.st_uid == 0,
	      "/dev/daxnet must be root-owned 0660, is uid %u mode %o",
	      (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	ret = as_user(KT_GID, child_open_refused);
	CHECK(ret == 0, "a user outside the group opened /dev/daxnet (child %d)", ret);
	/* What udev does for the daxnet group, with a test gid. */
	CHECK(chown("/dev/daxnet", 0, KT_GID) == 0, "chgrp /dev/daxnet");
	ret = as_user(KT_GID, child_group_member);
	CHECK(chown("/dev/daxnet", 0, st.st_gid) == 0, "restore the group");
	CHECK(ret == 0, "group member: copy mode must work, zero-copy must be EPERM (child %d)",
	      ret);
	return 0;
}

static struct kport *fdpass_port;

/* Child of the owner (another mm): every ioctl and mmap is EPERM. */
static int child_not_owner(void)
{
	struct kport *p = fdpass_port;
	struct daxnet_sync s = { .pair = 0 };
	struct daxnet_counters_arg a = { .pair = DAXNET_RING_ALL };
	struct daxnet_detach d = { .conn = 1 };
	struct daxnet_attach at = { .fd = 0 };
	void *m;

	if (ioctl(p->fd, DAXNET_IOC_SYNC, &s) == 0 || errno != EPERM)
		return 1;
	if (ioctl(p->fd, DAXNET_IOC_COUNTERS, &a) == 0 || errno != EPERM)
		return 2;
	if (ioctl(p->fd, DAXNET_IOC_ATTACH, &at) == 0 || errno != EPERM)
		return 3;
	if (ioctl(p->fd, DAXNET_IOC_DETACH, &d) == 0 || errno != EPERM)
		return 4;
	m = mmap(NULL, p->region_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 p->fd, 0);
	if (m != MAP_FAILED || errno != EPERM)
		return 5;
	return 0;
}

/* A port fd inherited by (or passed to) another process is refused there. */
static int t_fd_passed(void)
{
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	size_t want[2] = { 3, 4 };
	int cli, srv, ret;
	uint32_t conn = 0;
	pid_t pid;
	int st;

	CHECK(kport_open(&p, true) == 0, "register");
	TRY(attach_pair(&p, 3, &cli, &srv, &conn));
	CHECK(send(cli, "ping", 4, 0) == 4, "send");
	fdpass_port = &p;
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid)
		_exit(child_not_owner());
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st), "waitpid");
	ret = WEXITSTATUS(st);
	CHECK(ret == 0, "another process used the port (check %d)", ret);
	/* The owner is unaffected. */
	CHECK(sync_until(&p, c, have_bytes, want, 20) == 0, "owner RX");
	kport_close(&p);
	close(cli);
	close(srv);
	capture_free(c);
	return 0;
}

struct race {
	volatile int fd;
	volatile int stop;
	size_t len;
	unsigned long mmaps;
};

static void *race_mmap(void *arg)
{
	struct race *r = arg;

	while (!r->stop) {
		void *m = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
			       MAP_SHARED, r->fd, 0);

		if (m != MAP_FAILED)
			munmap(m, r->len);
		r->mmaps++;
	}
	return NULL;
}

/* Child: REGISTER on fresh ports while a thread mmaps them, for secs. */
static int race_register_child(double secs)
{
	struct race r = { .len = 1 << 16 };
	size_t plen = 64 * 4096;
	double end = now_s() + secs;
	unsigned long regs = 0;
	pthread_t th;
	uint8_t *pool;
	char path[256];
	int pfd;

	snprintf(path, sizeof(path), "%s/ktest-race-%d", pool_dir, getpid());
	pfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	unlink(path);
	if (pfd < 0 || ftruncate(pfd, plen))
		return 1;
	pool = mmap(NULL, plen, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	if (pool == MAP_FAILED)
		return 2;
	r.fd = open("/dev/daxnet", O_RDWR);
	if (r.fd < 0 || pthread_create(&th, NULL, race_mmap, &r))
		return 3;
	while (now_s() < end) {
		struct dxt_geom g = { .buf_size = 4096, .buf_count = 64,
				      .rx = 64, .tx = 64, .spare = 64 };
		int nfd = open("/dev/daxnet", O_RDWR), old;

		if (nfd < 0)
			return 4;
		old = r.fd;
		r.fd = nfd;
		close(old);
		if (dxt_register(nfd, pool, plen, &g, NULL))
			return 5;
		regs++;
	}
	r.stop = 1;
	pthread_join(th, NULL);
	printf("  race: %lu registrations, %lu mmaps\n", regs, r.mmaps);
	return 0;
}

/*
 * REGISTER (port->lock, then user memory: mmap_lock) racing mmap of the
 * same port from another thread (mmap_lock, then ->mmap) for a few
 * seconds: no ABBA deadlock. The race runs in a child; a deadlocked child
 * is reported after a bound (it stays stuck in D state).
 */
static int t_register_mmap_race(void)
{
	double end;
	pid_t pid;
	int st = 0;

	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid)
		_exit(race_register_child(3.0));
	end = now_s() + 60;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		CHECK(now_s() < end, "REGISTER racing mmap deadlocked (child %d stuck)", pid);
		usleep(100000);
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "race child failed (status %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return 0;
}

/* ---------------------------------------- buffer ownership, pool kinds */

/* REGISTER on fd with an explicit pool; returns 0 or -errno. */
static int reg_raw(int fd, void *pool, size_t len, uint32_t bs, uint32_t n,
		   uint32_t pairs, uint32_t rx, uint32_t tx, uint32_t sp,
		   uint32_t flags)
{
	struct dxt_geom g = { .buf_size = bs, .buf_count = n, .pairs = pairs,
			      .rx = rx, .tx = tx, .spare = sp, .flags = flags };

	return dxt_register(fd, pool, len, &g, NULL);
}

/* Hand buffer b on the spare ring (no mirror bookkeeping). */
static void spare_push(struct kport *p, uint32_t b)
{
	uint32_t h = p->sp->head;

	p->sps[h] = b;
	h = daxnet_ring_next(h, p->sp->num_slots);
	p->sp->head = p->sp->cur = h;
}

static int raw_sync(struct kport *p)
{
	struct daxnet_sync s = { .pair = 0 };

	return ioctl(p->fd, DAXNET_IOC_SYNC, &s) ? -errno : 0;
}

/* Rewind the spare ring's head (after a sync that changed nothing). */
static void spare_rewind(struct kport *p, uint32_t k)
{
	uint32_t n = p->sp->num_slots;

	p->sp->head = p->sp->cur = (p->sp->head + n - k) % n;
}

/*
 * Indices user space hands over are checked against the kernel's
 * ownership state (pool->own): a duplicate spare, a spare the kernel
 * already holds, a BUF_CHANGED swap naming a buffer the kernel fills -
 * each fails the sync with EINVAL, nothing changed, counter bad_buf.
 */
static int t_dup_index(void)
{
	struct kport p;
	struct daxnet_counters k0, k1;
	int cli, srv;
	uint32_t conn = 0, h, t;

	CHECK(kport_open_ex(&p, true, 16, 4096, 8, 8, 8, 4, DAXNET_API) == 0, "register");
	k0 = kport_counters(&p);
	spare_push(&p, 3);
	spare_push(&p, 3);
	CHECK(raw_sync(&p) == -EINVAL, "a duplicate spare index must fail the sync with EINVAL");
	k1 = kport_counters(&p);
	CHECK(k1.bad_buf == k0.bad_buf + 1 && k1.bad_ring == k0.bad_ring,
	      "bad_buf %llu (was %llu), bad_ring %llu", (unsigned long long)k1.bad_buf,
	      (unsigned long long)k0.bad_buf, (unsigned long long)k1.bad_ring);
	CHECK(dxt_ktail(p.sp) == p.sp->num_slots - 1, "nothing may change on EINVAL");
	spare_rewind(&p, 1);
	spare_push(&p, 4);
	p.sps[p.sp->head ? p.sp->head - 1 : p.sp->num_slots - 1] = 4;
	CHECK(raw_sync(&p) == 0, "distinct spares must be taken");
	spare_push(&p, 3);
	CHECK(raw_sync(&p) == -EINVAL, "a spare the kernel holds must be refused");
	spare_rewind(&p, 1);
	CHECK(kport_counters(&p).bad_buf == k0.bad_buf + 2, "two refusals");

	/* RX lands in buffer 4 or 3 (held, packing); swap it in: refused. */
	TRY(attach_pair(&p, 1, &cli, &srv, &conn));
	CHECK(send(cli, "hi", 2, 0) == 2, "send");
	/* Wait for the DATA slot (after NEW_CONN); keep the slots. */
	for (h = 0; h < 5000; h++) {
		for (t = p.rx->head; t != dxt_ktail(p.rx); t = daxnet_ring_next(t, p.rx->num_slots))
			if (p.rxs[t].flags & DAXNET_SLOT_DATA)
				break;
		if (t != dxt_ktail(p.rx))
			break;
		usleep(1000);
		raw_sync(&p);
	}
	CHECK(t != dxt_ktail(p.rx) && (p.rxs[t].flags & DAXNET_SLOT_BUF_HELD), "held RX slot");
	p.rxs[t].flags |= DAXNET_SLOT_BUF_CHANGED;	/* names its own buffer */
	h = p.rx->head;
	p.rx->head = p.rx->cur = dxt_ktail(p.rx);
	k0 = kport_counters(&p);
	CHECK(raw_sync(&p) == -EINVAL, "swapping in a buffer the kernel fills must be refused");
	CHECK(kport_counters(&p).bad_buf == k0.bad_buf + 1, "swap refusal counted");
	p.rxs[t].flags &= ~DAXNET_SLOT_BUF_CHANGED;
	p.rx->head = p.rx->cur = h;
	close(cli);
	CHECK(kport_detach(&p, conn, DAXNET_DETACH_DISCARD) == 0, "detach");
	close(srv);
	kport_close(&p);
	return 0;
}

/*
 * The zero-copy refill overflow input of issue 13: buf_count 4, a 32768
 * entry spare ring full of index 0. The sync is refused (nothing taken),
 * again and again; four distinct indices are then taken.
 */
static int t_zc_dup_spares(void)
{
	struct kport p;
	size_t len = 4 * 4096;
	uint32_t n = DAXNET_MAX_SLOTS, i;
	uint8_t *pool = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct dxt_geom g = { .buf_size = 4096, .buf_count = 4, .rx = 8,
			      .tx = 8, .spare = n, .flags = DAXNET_REG_ZEROCOPY };
	struct dxt_rings k;
	uint64_t rsize;

	CHECK(pool != MAP_FAILED, "mmap");
	memset(&p, 0, sizeof(p));
	p.fd = open("/dev/daxnet", O_RDWR);
	CHECK(p.fd >= 0, "open");
	CHECK(dxt_register(p.fd, pool, len, &g, &rsize) == 0, "REGISTER zero-copy");
	CHECK(dxt_map_rings(p.fd, rsize, &k) == 0, "mmap region");
	p.region = k.region;
	p.region_size = k.region_size;
	p.sp = k.sp;
	p.sps = k.sps;
	for (i = 0; i + 1 < n; i++)
		p.sps[i] = 0;
	p.sp->head = p.sp->cur = n - 1;
	for (i = 0; i < 100; i++)
		CHECK(raw_sync(&p) == -EINVAL, "a spare ring full of index 0 must be refused (sync %u)", i);
	CHECK(dxt_ktail(p.sp) == n - 1, "nothing may be taken");
	CHECK(kport_counters(&p).bad_buf == 100, "bad_buf %llu",
	      (unsigned long long)kport_counters(&p).bad_buf);
	for (i = 0; i < 4; i++)
		p.sps[i] = i;
	p.sp->head = p.sp->cur = 4;
	CHECK(raw_sync(&p) == 0, "four distinct spares must be taken");
	munmap(p.region, p.region_size);
	close(p.fd);
	munmap(pool, len);
	return 0;
}

/* REGISTER copy mode then zero-copy over m; returns both results. */
static void reg_both(uint8_t *m, size_t len, int *copy, int *zc)
{
	int fd = open("/dev/daxnet", O_RDWR);

	*copy = reg_raw(fd, m, len, 4096, len / 4096, 1, 8, 8, 8, 0);
	close(fd);
	fd = open("/dev/daxnet", O_RDWR);
	*zc = reg_raw(fd, m, len, 4096, len / 4096, 1, 8, 8, 8, DAXNET_REG_ZEROCOPY);
	close(fd);
}

/*
 * What REGISTER accepts, decided from every VMA of the pool: copy mode
 * works through the owner's mapping, so any writable memory (heap,
 * MAP_PRIVATE, two files); zero-copy pins, so only one MAP_SHARED file
 * or shared memory object (EINVAL otherwise). Holes and read-only
 * mappings are refused in both.
 */
static int t_pool_kinds(void)
{
	size_t len = 16 * 4096;
	char path[256];
	int fd, pfd, qfd, ret, copy, zc;
	uint8_t *m;

	snprintf(path, sizeof(path), "%s/ktest-kinds-%d", shm_dir, getpid());
	pfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	unlink(path);
	CHECK(pfd >= 0 && ftruncate(pfd, len) == 0, "pool file");
	snprintf(path, sizeof(path), "%s/ktest-kinds2-%d", shm_dir, getpid());
	qfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	unlink(path);
	CHECK(qfd >= 0 && ftruncate(qfd, len) == 0, "second file");

	/* MAP_PRIVATE (file and anonymous). */
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, pfd, 0);
	reg_both(m, len, &copy, &zc);
	munmap(m, len);
	CHECK(copy == 0 && zc == -EINVAL, "MAP_PRIVATE file pool: copy %d zc %d, want 0 EINVAL",
	      copy, zc);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg_both(m, len, &copy, &zc);
	munmap(m, len);
	CHECK(copy == 0 && zc == -EINVAL, "MAP_PRIVATE anonymous pool: copy %d zc %d, want 0 EINVAL",
	      copy, zc);
	/* Shared memory: both. */
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	reg_both(m, len, &copy, &zc);
	munmap(m, len);
	CHECK(copy == 0 && zc == 0, "shm pool: copy %d zc %d, want 0 0", copy, zc);

	/* A hole in the middle. */
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	munmap(m + 5 * 4096, 4096);
	fd = open("/dev/daxnet", O_RDWR);
	ret = reg_raw(fd, m, len, 4096, 16, 1, 8, 8, 8, 0);
	close(fd);
	munmap(m, len);
	CHECK(ret == -EFAULT, "pool with a hole: %d, want EFAULT", ret);

	/* Read-only. */
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, pfd, 0);
	fd = open("/dev/daxnet", O_RDWR);
	ret = reg_raw(fd, m, len, 4096, 16, 1, 8, 8, 8, 0);
	close(fd);
	munmap(m, len);
	CHECK(ret == -EACCES, "read-only pool: %d, want EACCES", ret);

	/* Two files back to back (mixed mappings). */
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	CHECK(mmap(m + len / 2, len / 2, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		   qfd, 0) != MAP_FAILED, "second half");
	reg_both(m, len, &copy, &zc);
	munmap(m, len);
	CHECK(copy == 0 && zc == -EINVAL, "pool over two files: copy %d zc %d, want 0 EINVAL",
	      copy, zc);
	close(pfd);
	close(qfd);

	/*
	 * Pages a driver inserted (VM_MIXEDMAP: here the rings of another
	 * port, a character device on devtmpfs, whose magic is tmpfs's) are
	 * no pool in either mode; zero-copy used to take them for shared
	 * memory and pin them.
	 */
	{
		struct kport q;

		CHECK(kport_open_ex(&q, true, 16, 4096, 8, 8, 8, 4, DAXNET_API) == 0,
		      "register the port whose rings serve as the pool");
		reg_both(q.region, q.region_size, &copy, &zc);
		kport_close(&q);
		CHECK(copy == -EINVAL && zc == -EINVAL,
		      "pool in another port's ring mapping: copy %d zc %d, want EINVAL EINVAL",
		      copy, zc);
	}
	return 0;
}

struct uffd_swap {
	int uffd;
	uint8_t *pool;
	size_t len;
	volatile int done;	/* REGISTER returned */
	int swapped;		/* the mapping was replaced during REGISTER */
};

/*
 * At the first missing-page fault in the pool (the pin), replace the
 * shared-memory mapping with private anonymous memory, then let the
 * fault go on.
 */
static void *uffd_swapper(void *arg)
{
	struct uffd_swap *u = arg;
	struct uffd_msg msg;
	struct uffdio_range r = { .start = (uintptr_t)u->pool, .len = u->len };

	while (!u->done) {
		struct pollfd pfd = { .fd = u->uffd, .events = POLLIN };

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(u->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		if (mmap(u->pool, u->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED)
			u->swapped = 1;
		ioctl(u->uffd, UFFDIO_WAKE, &r);
		break;
	}
	return NULL;
}

/*
 * Zero-copy judges the pool's memory and pins it under one mmap_lock:
 * another thread cannot swap what was judged (shared memory) for what
 * may not be pinned (private memory) in between. The swap is tried at
 * the pin itself with userfaultfd: the pin's first fault stops in the
 * swapper, which remaps the range MAP_PRIVATE and wakes it. Holding the
 * lock, the pin cannot wait there (the fault fails, EFAULT); a pin that
 * dropped the lock to wait would pin private pages of a "shared memory"
 * pool. (6.1's FOLL_LONGTERM slow path never drops it, so this does not
 * fail on the code before the fix, whose window lay between judgement
 * and pin; it guards kernels whose GUP waits with the lock dropped.)
 */
static int t_pool_swap_race(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffd_swap u = { .len = 16 * 4096 };
	pthread_t th;
	char path[256];
	int pfd, fd, ret;

	snprintf(path, sizeof(path), "%s/ktest-swap-%d", shm_dir, getpid());
	pfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	unlink(path);
	CHECK(pfd >= 0 && ftruncate(pfd, u.len) == 0, "pool file");
	u.pool = mmap(NULL, u.len, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	CHECK(u.pool != MAP_FAILED, "mmap pool");
	u.uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (u.uffd < 0) {
		printf("  pool_swap_race: no userfaultfd (errno %d): skipped\n", errno);
		munmap(u.pool, u.len);
		close(pfd);
		return 0;
	}
	CHECK(ioctl(u.uffd, UFFDIO_API, &api) == 0, "UFFDIO_API");
	reg.range.start = (uintptr_t)u.pool;
	reg.range.len = u.len;
	CHECK(ioctl(u.uffd, UFFDIO_REGISTER, &reg) == 0, "UFFDIO_REGISTER on shared memory");
	CHECK(pthread_create(&th, NULL, uffd_swapper, &u) == 0, "thread");
	fd = open("/dev/daxnet", O_RDWR);
	ret = reg_raw(fd, u.pool, u.len, 4096, 16, 1, 8, 8, 8, DAXNET_REG_ZEROCOPY);
	u.done = 1;
	pthread_join(th, NULL);
	close(fd);
	close(u.uffd);
	munmap(u.pool, u.len);
	close(pfd);
	printf("  pool_swap_race: REGISTER %d, mapping swapped during it: %s\n", ret,
	       u.swapped ? "yes" : "no");
	CHECK(!(ret == 0 && u.swapped),
	      "zero-copy REGISTER pinned a pool remapped MAP_PRIVATE after it was judged shared");
	CHECK(ret == 0 || ret == -EFAULT, "REGISTER %d, want 0 or EFAULT", ret);
	return 0;
}

/* Whether a kernel log record after the position of kfd contains what. */
static bool kmsg_has(int kfd, const char *what)
{
	char rec[1024];
	ssize_t n;

	for (;;) {
		n = read(kfd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)	/* overwritten records: go on */
			continue;
		if (n <= 0)
			return false;
		rec[n] = 0;
		if (strstr(rec, what))
			return true;
	}
}

/*
 * Zero-copy pins the pool for the life of the port, so a file on a DAX
 * file system (whose blocks the file system owns: truncate, hole punching)
 * is refused with EOPNOTSUPP and a kernel message naming what is
 * accepted; copy mode takes the same mapping. The pool is a file of
 * --pool-dir, which must be DAX (MAP_SYNC works).
 */
static int t_zc_fsdax(void)
{
	size_t len = 16 * 4096;
	char path[256];
	int pfd, kfd, fd, copy, zc, ret;
	uint8_t *m;

	snprintf(path, sizeof(path), "%s/ktest-fsdax-%d", pool_dir, getpid());
	pfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	unlink(path);
	CHECK(pfd >= 0 && ftruncate(pfd, len) == 0, "pool file %s", path);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, pfd, 0);
	CHECK(m != MAP_FAILED, "MAP_SYNC mapping of %s: --pool-dir must be on a DAX file system",
	      path);
	kfd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	CHECK(kfd >= 0, "open /dev/kmsg");
	lseek(kfd, 0, SEEK_END);
	reg_both(m, len, &copy, &zc);
	CHECK(copy == 0 && zc == -EOPNOTSUPP, "fsdax pool: copy %d zc %d, want 0 EOPNOTSUPP",
	      copy, zc);
	CHECK(kmsg_has(kfd, "device DAX"), "no kernel message naming device DAX");
	close(kfd);
	munmap(m, len);
	/* A plain MAP_SHARED mapping of the same file: the same answer. */
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	CHECK(m != MAP_FAILED, "MAP_SHARED mapping");
	fd = open("/dev/daxnet", O_RDWR);
	ret = reg_raw(fd, m, len, 4096, 16, 1, 8, 8, 8, DAXNET_REG_ZEROCOPY);
	close(fd);
	munmap(m, len);
	CHECK(ret == -EOPNOTSUPP, "fsdax pool, MAP_SHARED: zc %d, want EOPNOTSUPP", ret);
	/* Nothing stayed pinned: truncating does not wait (hung-task check). */
	ret = ftruncate(pfd, 0);
	close(pfd);
	CHECK(ret == 0, "truncate after the refusal");
	return 0;
}

#define DBG_DIR DXT_DEBUGFS

/*
 * Make every growth of a RELEASE queue fail (or not), with the module's
 * debugfs knob (mounting debugfs if needed); 0 or -1.
 */
static int fail_release_grow(bool on)
{
	return dxt_knob_write("fail_release_grow", on ? "Y" : "N");
}

/*
 * A sync reserves room for every RELEASE it may owe before it changes
 * anything. When the RELEASE queue cannot grow (the debugfs knob
 * daxnet/fail_release_grow fails every growth), the sync fails with
 * ENOMEM, counts rel_nomem (not rel_deferred, the zero-copy deferrals)
 * and changes nothing - the spare it was handed stays with user space and
 * is taken by the next sync - instead of dropping a RELEASE and losing
 * the buffer until the port closes. 20 connections on 8+8-slot rings
 * need more than the queue's initial 16 entries. A sync of
 * DAXNET_RING_ALL fails with the same ENOMEM (it used to say EINVAL).
 */
static int t_rel_nomem(void)
{
	enum { N = 20 };
	struct kport p;
	struct daxnet_sync all = { .pair = DAXNET_RING_ALL };
	struct daxnet_counters k0, k1;
	int cli[N], srv[N], r1, r2, r3;
	uint32_t conn[N], tail0, tail1;
	char path[256];

	/* The fault is injected through debugfs: no module parameter for it. */
	snprintf(path, sizeof(path), "/sys/module/%s/parameters/test_release_nomem", rmmod_name);
	CHECK(access(path, F_OK) != 0, "%s exists: a writable test knob in production", path);
	CHECK(kport_open_ex(&p, true, 64, 2048, 8, 8, 8, 32, DAXNET_API) == 0, "register");
	TRY(attach_pairs(&p, N, cli, srv, conn));
	tail0 = dxt_ktail(p.sp);
	spare_push(&p, 5);
	k0 = kport_counters(&p);
	CHECK(fail_release_grow(true) == 0, "turn on the RELEASE queue fault");
	r1 = raw_sync(&p);
	tail1 = dxt_ktail(p.sp);
	k1 = kport_counters(&p);
	/* DAXNET_RING_ALL reports the pair's errno, not EINVAL. */
	r3 = ioctl(p.fd, DAXNET_IOC_SYNC, &all) ? -errno : 0;
	fail_release_grow(false);
	r2 = raw_sync(&p);
	CHECK(r1 == -ENOMEM, "sync without room for its RELEASEs: %d, want ENOMEM", r1);
	CHECK(r3 == -ENOMEM, "sync of DAXNET_RING_ALL without room: %d, want ENOMEM", r3);
	CHECK(k1.rel_nomem == k0.rel_nomem + 1 && k1.syncs == k0.syncs,
	      "rel_nomem %llu (was %llu), syncs %llu (was %llu)",
	      (unsigned long long)k1.rel_nomem, (unsigned long long)k0.rel_nomem,
	      (unsigned long long)k1.syncs, (unsigned long long)k0.syncs);
	CHECK(tail1 == tail0, "the failed sync took a spare");
	CHECK(k1.rel_deferred == k0.rel_deferred, "a failed sync counted as deferred");
	CHECK(r2 == 0, "sync once the queue can grow: %d", r2);
	CHECK(dxt_ktail(p.sp) != tail0, "the spare was not taken afterwards");
	TRY(detach_pairs(&p, N, cli, srv, conn));
	kport_close(&p);
	return 0;
}

/*
 * With the RELEASE queue fault on: polls p for `events` and syncs at each
 * report, for 1 s at least (30 s until the first report) or until a sync
 * is not refused with ENOMEM, then turns the fault off. Returns the last
 * sync's result; *wakeups: the reports, *el: the seconds it polled.
 */
static int sync_on_reports(struct kport *p, short events, int *wakeups, double *el)
{
	struct pollfd pfd;
	double t0 = now_s();
	int r = -ENOMEM;

	*wakeups = 0;
	*el = 0;
	do {
		pfd = (struct pollfd){ .fd = p->fd, .events = events };
		if (poll(&pfd, 1, 200) == 1 && (pfd.revents & events)) {
			(*wakeups)++;
			r = raw_sync(p);
			if (r != -ENOMEM)
				break;
		}
		*el = now_s() - t0;
	} while (*el < 1.0 || (!*wakeups && *el < 30));
	fail_release_grow(false);
	return r;
}

/*
 * A sync refused with ENOMEM makes poll() back off: the work that failed
 * is reported again only after a pause (100 ms), when a timer wakes the
 * poller, not at once. Before, poll() kept reporting EPOLLIN for work
 * every sync refused, and a poll loop spun at full speed while memory
 * stayed short. The bound below only loosens when the machine is slow.
 */
static int t_nomem_poll(void)
{
	enum { N = 20 };
	struct pollfd pfd;
	struct kport p;
	int cli[N], srv[N], r, wakeups = 0;
	uint32_t conn[N];
	double el;

	CHECK(kport_open_ex(&p, true, 64, 2048, 8, 8, 8, 32, DAXNET_API) == 0, "register");
	TRY(attach_pairs(&p, N, cli, srv, conn));
	/* 20 NEW_CONNs are due; a sync owes more than the queue holds. */
	CHECK(fail_release_grow(true) == 0, "turn on the RELEASE queue fault");
	r = raw_sync(&p);
	CHECK(r == -ENOMEM, "sync without room for its RELEASEs: %d, want ENOMEM", r);
	r = sync_on_reports(&p, POLLIN, &wakeups, &el);
	CHECK(r == -ENOMEM, "sync under the fault: %d, want ENOMEM", r);
	CHECK(wakeups >= 1, "poll() never reported the failed work again (%.1f s)", el);
	CHECK(wakeups <= 2 + (int)(el * 20),
	      "poll() reported EPOLLIN %d times in %.2f s for syncs that failed: spinning",
	      wakeups, el);
	/* Memory is back: the next report leads to a sync that works. */
	pfd = (struct pollfd){ .fd = p.fd, .events = POLLIN };
	CHECK(poll(&pfd, 1, 30000) == 1 && (pfd.revents & POLLIN), "no EPOLLIN after the backoff");
	r = raw_sync(&p);
	CHECK(r == 0, "sync once the queue can grow: %d", r);
	TRY(detach_pairs(&p, N, cli, srv, conn));
	kport_close(&p);
	return 0;
}

static bool poll_in(struct kport *p)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/*
 * The TX-only variant of nomem_poll: the pair's only work is TX slots
 * handed over (the TX ring full, so no EPOLLOUT either) and the sync that
 * would send them is refused with ENOMEM. poll() must report that work
 * again after the backoff, not spin, and the sync after the fault sends
 * it. Before, poll() reported EPOLLIN only for RX-side work (news,
 * RELEASEs, write space back): after the backoff it reported nothing and
 * a poller slept for good with 31 TX slots handed over.
 */
static int t_nomem_poll_tx(void)
{
	enum { N = 12 };
	static const char byte = 'x';
	struct pollfd pfd;
	struct kport p;
	int cli[N], srv[N], i, r, wakeups = 0;
	uint32_t conn[N], n;
	char sink[64];
	size_t got = 0;
	double el;

	/*
	 * RELEASE queue of rx + tx = 40 entries; a sync owes one per
	 * connection and per TX slot handed over: 12 + 31 do not fit.
	 */
	CHECK(kport_open_ex(&p, true, 64, 2048, 8, 32, 8, 16, DAXNET_API) == 0, "register");
	TRY(attach_pairs(&p, N, cli, srv, conn));
	/* Publish the NEW_CONNs: then nothing is pending on the RX side. */
	for (i = 0; i < 20 && (i < 2 || poll_in(&p)); i++)
		CHECK(kport_sync(&p, NULL, NULL) == 0, "sync (NEW_CONN)");
	CHECK(!poll_in(&p), "EPOLLIN with nothing to do");
	n = p.tx->num_slots;
	for (i = 0; i < (int)n - 1; i++)
		CHECK(kport_tx(&p, conn[0], &byte, 1, DAXNET_SLOT_DATA, NULL, NULL) == 0,
		      "tx %d", i);
	CHECK(rspace(p.tx->cur, dxt_ktail(p.tx), n) == 0, "the TX ring is not full");
	CHECK(fail_release_grow(true) == 0, "turn on the RELEASE queue fault");
	r = raw_sync(&p);
	if (r != -ENOMEM)
		fail_release_grow(false);
	CHECK(r == -ENOMEM, "sync without room for its RELEASEs: %d, want ENOMEM", r);
	r = sync_on_reports(&p, POLLIN | POLLOUT, &wakeups, &el);
	CHECK(r == -ENOMEM, "sync under the fault: %d, want ENOMEM", r);
	CHECK(wakeups >= 1, "poll() never reported the refused TX work again (%.1f s)", el);
	CHECK(wakeups <= 2 + (int)(el * 20),
	      "poll() reported %d times in %.2f s for syncs that failed: spinning", wakeups, el);
	/* Memory is back: the next report leads to a sync that sends. */
	pfd = (struct pollfd){ .fd = p.fd, .events = POLLIN | POLLOUT };
	CHECK(poll(&pfd, 1, 30000) == 1 && (pfd.revents & POLLIN), "no EPOLLIN after the backoff");
	CHECK(kport_sync(&p, NULL, NULL) == 0, "sync once the queue can grow");
	CHECK(!poll_in(&p), "EPOLLIN after the TX slots were consumed");
	for (i = 0; i < 3000 && got < n - 1; i++) {
		ssize_t k = recv(cli[0], sink, sizeof(sink), MSG_DONTWAIT);

		if (k > 0)
			got += k;
		else
			usleep(1000);
	}
	CHECK(got == n - 1, "the peer got %zu of %u bytes", got, n - 1);
	TRY(detach_pairs(&p, N, cli, srv, conn));
	kport_close(&p);
	return 0;
}

/*
 * A port with 8+8-slot rings (RELEASE queue of 16) and connection *conn
 * whose peer *cli never reads: at least `held` TX slots of it are queued
 * in the kernel (ntxq of the pair beyond the queue's size).
 */
static int txq_setup(struct kport *p, struct capture *c, int *cli, int *srv,
		     uint32_t *conn, uint64_t held)
{
	static char blob[2048];
	int i, small = 4096;

	CHECK(kport_open_ex(p, true, 128, 2048, 8, 8, 8, 8, DAXNET_API) == 0, "register");
	CHECK(tcp_pair(cli, srv) == 0, "tcp pair");
	setsockopt(*cli, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(*srv, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	CHECK(kport_attach(p, *srv, 1, conn) == 0, "attach");
	for (i = 0; i < 200 && kport_counters(p).tx_held < held; i++) {
		CHECK(kport_tx(p, *conn, blob, sizeof(blob), DAXNET_SLOT_DATA, capture_cb, c) == 0,
		      "tx");
		if (i % 4 == 3)
			CHECK(kport_sync(p, capture_cb, c) == 0, "sync");
	}
	CHECK(kport_counters(p).tx_held >= held, "only %llu TX slots queued, want %llu",
	      (unsigned long long)kport_counters(p).tx_held, (unsigned long long)held);
	return 0;
}

/*
 * ATTACH whose result cannot be written back (the argument is in a
 * read-only page) fails with EFAULT and leaves nothing attached, also
 * while the RELEASE queue cannot grow and the pair has TX ranges queued:
 * the result is written before the socket is hooked, so nothing has to be
 * undone. (The ioctl used to detach the new connection after the fact, a
 * step that needed RELEASE room and could itself fail with ENOMEM.)
 */
static int t_attach_efault(void)
{
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	struct daxnet_attach *ro;
	int cli, srv, cli2, srv2, ret;
	uint32_t conn = 0, conn2 = 0;
	uint64_t conns;

	if (txq_setup(&p, c, &cli, &srv, &conn, 20))
		return -1;
	CHECK(tcp_pair(&cli2, &srv2) == 0, "tcp pair");
	ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro != MAP_FAILED, "mmap");
	memset(ro, 0, sizeof(*ro));
	ro->fd = srv2;
	ro->cookie = 2;
	CHECK(mprotect(ro, 4096, PROT_READ) == 0, "mprotect");
	CHECK(fail_release_grow(true) == 0, "turn on the RELEASE queue fault");
	ret = ioctl(p.fd, DAXNET_IOC_ATTACH, ro) ? -errno : 0;
	conns = kport_counters(&p).conns;
	fail_release_grow(false);
	CHECK(ret == -EFAULT, "ATTACH with a read-only argument: %d, want EFAULT", ret);
	CHECK(conns == 1, "%llu connections attached after the failed ATTACH, want 1",
	      (unsigned long long)conns);
	CHECK(kport_attach(&p, srv2, 2, &conn2) == 0, "the socket must be attachable again");
	/* Its DETACH reserves its own RELEASEs (none), not the pair's queue. */
	CHECK(fail_release_grow(true) == 0, "turn on the RELEASE queue fault");
	ret = kport_detach(&p, conn2, 0);
	fail_release_grow(false);
	CHECK(ret == 0, "DETACH of a connection that owes nothing: %d, want 0", ret);
	CHECK(kport_detach(&p, conn, DAXNET_DETACH_DISCARD) == 0, "detach DISCARD");
	munmap(ro, 4096);
	close(cli);
	close(srv);
	close(cli2);
	close(srv2);
	kport_close(&p);
	capture_free(c);
	return 0;
}

/*
 * A refused ATTACH leaves its argument as it was: the connection id is
 * written back only once nothing can refuse the socket any more. (It used
 * to be copied out first, so a listening or already attached socket got
 * an error and a connection id that named nothing.)
 */
static int t_attach_refused(void)
{
	struct daxnet_attach a;
	struct kport p;
	int cli, srv, lfd, ret;
	uint32_t conn = 0;
	uint16_t port;

	CHECK(kport_open_ex(&p, true, 64, 2048, 8, 8, 8, 8, DAXNET_API) == 0, "register");
	lfd = listener(&port);
	CHECK(lfd >= 0, "listener");
	TRY(attach_pair(&p, 1, &cli, &srv, &conn));
	memset(&a, 0, sizeof(a));
	a.fd = lfd;
	a.conn = 0xdeadbeef;
	ret = ioctl(p.fd, DAXNET_IOC_ATTACH, &a) ? -errno : 0;
	CHECK(ret == -ENOTCONN, "ATTACH of a listener: %d, want ENOTCONN", ret);
	CHECK(a.conn == 0xdeadbeef, "a refused ATTACH (ENOTCONN) wrote conn %#x", a.conn);
	memset(&a, 0, sizeof(a));
	a.fd = srv;
	a.conn = 0xdeadbeef;
	ret = ioctl(p.fd, DAXNET_IOC_ATTACH, &a) ? -errno : 0;
	CHECK(ret == -EBUSY, "second ATTACH of a socket: %d, want EBUSY", ret);
	CHECK(a.conn == 0xdeadbeef, "a refused ATTACH (EBUSY) wrote conn %#x", a.conn);
	CHECK(kport_counters(&p).conns == 1, "a refused ATTACH changed the connection count");
	CHECK(kport_detach(&p, conn, DAXNET_DETACH_DISCARD) == 0, "detach");
	close(lfd);
	close(cli);
	close(srv);
	kport_close(&p);
	return 0;
}

/*
 * poll() reports EPOLLIN only for work a sync can do. A RELEASE owed
 * while user space keeps the RX ring full cannot be published: poll()
 * must not report it (it did, and a poll loop spun without end), and
 * reports it again as soon as user space releases RX slots; the next
 * sync then publishes it.
 */
static int t_poll_release(void)
{
	static char blob[2048];
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	struct daxnet_counters k0, k1;
	int cli, srv, i, small = 4096, quiet = -1, ne, ecli[8], esrv[8];
	uint32_t conn = 0, econn, n;
	size_t want = 0, got = 0;
	char sink[65536];

	CHECK(kport_open_ex(&p, true, 64, 2048, 8, 8, 8, 16, DAXNET_API) == 0, "register");
	CHECK(tcp_pair(&cli, &srv) == 0, "tcp pair");
	setsockopt(cli, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(srv, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	CHECK(kport_attach(&p, srv, 1, &conn) == 0, "attach");
	/*
	 * TX the client does not read yet: more queued in the kernel than
	 * the sockets' buffers can drain while the RX ring fills.
	 */
	for (i = 0; i < 200 && kport_counters(&p).tx_held < 8; i++) {
		CHECK(kport_tx(&p, conn, blob, sizeof(blob), DAXNET_SLOT_DATA, capture_cb, c) == 0,
		      "tx");
		want += sizeof(blob);
	}
	CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	CHECK(kport_counters(&p).tx_held >= 8, "fewer than 8 TX slots were queued");
	/*
	 * Fill the RX ring with NEW_CONN slots of more connections, one per
	 * sync, and keep it full (head stays): nothing else is pending.
	 */
	n = p.rx->num_slots;
	for (ne = 0; ne < 8 && rspace(p.rx->head, dxt_ktail(p.rx), n) < n - 1; ne++) {
		CHECK(tcp_pair(&ecli[ne], &esrv[ne]) == 0, "tcp pair");
		CHECK(kport_attach(&p, esrv[ne], 10 + ne, &econn) == 0, "attach %d", ne);
		CHECK(raw_sync(&p) == 0, "sync");
	}
	CHECK(rspace(p.rx->head, dxt_ktail(p.rx), n) == n - 1, "the RX ring did not fill");
	/* The client reads all: the queued TX goes out, its buffers are owed. */
	for (i = 0; i < 400; i++) {
		ssize_t r;

		while ((r = recv(cli, sink, sizeof(sink), MSG_DONTWAIT)) > 0)
			got += r;
		CHECK(raw_sync(&p) == 0, "sync");
		if (got == want && !poll_in(&p)) {
			quiet = i;
			break;
		}
		usleep(2000);
	}
	CHECK(got == want, "the client got %zu of %zu bytes", got, want);
	CHECK(quiet >= 0, "poll() keeps reporting EPOLLIN with the RX ring full");
	/* Release the RX ring: ready again, and the RELEASE comes. */
	p.rx->head = p.rx->cur = dxt_ktail(p.rx);
	CHECK(poll_in(&p), "no EPOLLIN after the RX ring was released");
	k0 = kport_counters(&p);
	CHECK(raw_sync(&p) == 0, "sync");
	k1 = kport_counters(&p);
	CHECK(k1.releases > k0.releases, "no RELEASE slot after the ring was released");
	CHECK(kport_detach(&p, conn, DAXNET_DETACH_DISCARD) == 0, "detach");
	close(cli);
	close(srv);
	kport_close(&p);
	close_pairs(ne, ecli, esrv);
	capture_free(c);
	return 0;
}

/*
 * A one-page pool cannot make the kernel allocate hundreds of MiB: ring
 * geometry beyond the per-port cap is refused with E2BIG.
 */
static int t_geometry_caps(void)
{
	uint8_t *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int fd, ret;

	CHECK(m != MAP_FAILED, "mmap");
	fd = open("/dev/daxnet", O_RDWR);
	ret = reg_raw(fd, m, 4096, 512, 8, DAXNET_MAX_PAIRS, DAXNET_MAX_SLOTS,
		      DAXNET_MAX_SLOTS, DAXNET_MAX_SLOTS, 0);
	close(fd);
	CHECK(ret == -E2BIG, "64 pairs of 32768-slot rings over one page: %d, want E2BIG", ret);
	fd = open("/dev/daxnet", O_RDWR);
	ret = reg_raw(fd, m, 4096, 512, 8, 4, 4096, 4096, 4096, 0);
	close(fd);
	CHECK(ret == 0, "a sane geometry over one page: %d", ret);
	munmap(m, 4096);
	return 0;
}

/* Child: truncate the registered pool file (must not wait for pins). */
static int truncate_child(int pfd)
{
	alarm(20);
	return ftruncate(pfd, 0) ? 1 : 0;
}

/*
 * Copy mode pins no file page: truncating a registered fsdax pool file
 * returns at once (a pinned pool makes it wait for the pins), and RX into
 * the truncated pool fails the connection with EFAULT instead of writing
 * to blocks the file system freed.
 */
static int t_truncate_pool(void)
{
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	size_t want = 2;
	int cli, srv, st;
	uint32_t conn = 0;
	pid_t pid;
	double end;

	CHECK(kport_open(&p, false) == 0, "register (DAX pool)");
	TRY(attach_pair(&p, 2, &cli, &srv, &conn));
	refill(&p, 32);
	CHECK(raw_sync(&p) == 0, "sync");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid)
		_exit(truncate_child(p.pool_fd));
	end = now_s() + 40;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		CHECK(now_s() < end, "truncate of the pool file hangs");
		usleep(100000);
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "truncate of a registered pool file must not wait (child %s %d)",
	      WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	CHECK(send(cli, "gone", 4, 0) == 4, "send");
	CHECK(sync_until(&p, c, have_err, &want, 20) == 0, "no ERROR after the pool went away");
	CHECK(c->errno_[2] == EFAULT, "ERROR errno %d, want EFAULT", c->errno_[2]);
	close(cli);
	close(srv);
	kport_close(&p);
	capture_free(c);
	return 0;
}

/*
 * kTLS after attach: a socket carries at most one ULP and an attached one
 * carries daxnet's placeholder, so TCP_ULP "tls" fails with EEXIST (kTLS
 * would otherwise save our callbacks and call them after detach and
 * rmmod). After detach the socket takes kTLS normally.
 */
static int t_ktls(void)
{
	struct tls12_crypto_info_aes_gcm_128 ci;
	struct kport p;
	int cli, srv, ret;
	uint32_t conn = 0;
	char buf[64];

	CHECK(kport_open(&p, true) == 0, "register");
	TRY(attach_pair(&p, 0, &cli, &srv, &conn));
	ret = setsockopt(srv, IPPROTO_TCP, TCP_ULP, "tls", 3);
	if (ret && errno == ENOENT) {
		printf("  ktls: no tls module in this kernel: skipped\n");
		goto out;
	}
	CHECK(ret < 0 && errno == EEXIST, "TCP_ULP tls on an attached socket must fail EEXIST (ret %d)",
	      ret);
	CHECK(kport_detach(&p, conn, 0) == 0, "detach");
	CHECK(setsockopt(srv, IPPROTO_TCP, TCP_ULP, "tls", 3) == 0, "TCP_ULP tls after detach");
	memset(&ci, 0, sizeof(ci));
	ci.info.version = TLS_1_2_VERSION;
	ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	ret = setsockopt(srv, SOL_TLS, TLS_TX, &ci, sizeof(ci));
	if (ret && errno == ENOENT) {
		printf("  ktls: no gcm(aes) in this kernel: TLS_TX skipped\n");
		goto out;
	}
	CHECK(ret == 0, "TLS_TX");
	CHECK(send(srv, "hello", 5, 0) == 5, "send over kTLS");
	/* One record: 5 header + 8 nonce + 5 payload + 16 tag. */
	CHECK(read_full(cli, buf, 34, 20) == 34, "TLS record");
	CHECK(buf[0] == 23, "application data record");
out:
	close(cli);
	close(srv);
	kport_close(&p);
	return 0;
}

/* ----------------------------------------------- multi-threaded fuzzer */

static struct daxnet_conn_state *cstate(struct kport *p, uint32_t conn);

struct fz {
	volatile int fd;
	volatile int stop;
	struct kport *p;
	struct daxnet_conn_state *cs;	/* the DAXNET_REG_CONNSTATE table or NULL */
	uint32_t nbufs;
	unsigned long syncs, attaches, mmaps, ioctls;
};

static uint32_t fz_rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)*s;
}

/* Sync in a loop, feeding spares (often duplicates) and releasing RX. */
static void *fz_sync(void *arg)
{
	struct fz *f = arg;
	struct kport *p = f->p;
	uint64_t s = 0x1234567ull;

	while (!f->stop) {
		struct daxnet_sync sy = { .pair = 0 };
		uint32_t n = p->sp->num_slots, h = p->sp->head, t = dxt_ktail(p->sp);

		if (daxnet_ring_space(h, t, n)) {
			p->sps[h] = fz_rnd(&s) % (f->nbufs + 2);
			p->sp->head = p->sp->cur = daxnet_ring_next(h, n);
		}
		p->rx->head = p->rx->cur = dxt_ktail(p->rx);
		/* Any rx_limit: none, ahead, behind what was published. */
		if (f->cs && fz_rnd(&s) % 4 == 0) {
			struct daxnet_conn_state *e = &f->cs[fz_rnd(&s) % 64];

			e->rx_limit = fz_rnd(&s) % 3 ? e->rx_bytes + fz_rnd(&s) % 4096 - 1024 :
				      fz_rnd(&s) % 2 ? 0 : ((uint64_t)fz_rnd(&s) << 32 | fz_rnd(&s));
		}
		if (ioctl(f->fd, DAXNET_IOC_SYNC, &sy) && errno == EBADF)
			break;
		f->syncs++;
	}
	return NULL;
}

/* Attach, write, detach sockets in a loop. */
static void *fz_attach(void *arg)
{
	struct fz *f = arg;
	uint64_t s = 0x9876543ull;

	while (!f->stop) {
		struct daxnet_attach a = { .pair = 0 };
		struct daxnet_detach d;
		int cli, srv;

		if (tcp_pair(&cli, &srv))
			continue;
		a.fd = srv;
		if (ioctl(f->fd, DAXNET_IOC_ATTACH, &a) == 0) {
			f->attaches++;
			send(cli, "fuzz", 4, MSG_DONTWAIT);
			if (fz_rnd(&s) % 2)
				close(cli);
			usleep(fz_rnd(&s) % 2000);
			memset(&d, 0, sizeof(d));
			d.conn = a.conn;
			d.flags = fz_rnd(&s) % 2;
			ioctl(f->fd, DAXNET_IOC_DETACH, &d);
		}
		close(cli);
		close(srv);
	}
	return NULL;
}

/* mmap/munmap the rings in a loop. */
static void *fz_mmap(void *arg)
{
	struct fz *f = arg;

	while (!f->stop) {
		void *m = mmap(NULL, f->p->region_size, PROT_READ | PROT_WRITE,
			       MAP_SHARED, f->fd, 0);

		if (m != MAP_FAILED)
			munmap(m, f->p->region_size);
		f->mmaps++;
	}
	return NULL;
}

/* Random ioctl commands and arguments (sizes, reserved fields, ids). */
static void *fz_ioctl(void *arg)
{
	static const unsigned long cmds[] = {
		DAXNET_IOC_REGISTER, DAXNET_IOC_ATTACH, DAXNET_IOC_DETACH,
		DAXNET_IOC_SYNC, DAXNET_IOC_COUNTERS, _IOWR(DAXNET_IOC_MAGIC, 0x77, uint64_t),
	};
	struct fz *f = arg;
	uint64_t s = 0x5555aaaa1ull;
	uint32_t a[96];

	while (!f->stop) {
		unsigned long cmd = cmds[fz_rnd(&s) % 6];
		uint32_t i;

		for (i = 0; i < 96; i++)
			a[i] = fz_rnd(&s) % 4 ? fz_rnd(&s) % 8 : fz_rnd(&s);
		if (fz_rnd(&s) % 4 == 0)
			a[0] = DAXNET_API;
		if (cmd == DAXNET_IOC_ATTACH)
			a[0] = fz_rnd(&s) % 64;		/* an fd number */
		ioctl(f->fd, cmd, fz_rnd(&s) % 16 ? (void *)a : (void *)(uintptr_t)fz_rnd(&s));
		f->ioctls++;
	}
	return NULL;
}

/* One round: a fresh port, four threads, closed under their feet. */
static int fz_round(double secs)
{
	static unsigned int round;
	struct kport p;
	struct fz f = { 0 };
	pthread_t th[4];
	int i, ret;

	/* Every other round with the connection-state table (rx_limit). */
	kport_reg_flags = round++ % 2 ? DAXNET_REG_CONNSTATE : 0;
	ret = kport_open_ex(&p, true, 64, 2048, 16, 16, 16, 64, DAXNET_API);
	kport_reg_flags = 0;
	if (ret)
		return 1;
	if (((const struct daxnet_region *)p.region)->flags & DAXNET_REG_CONNSTATE)
		f.cs = cstate(&p, 0);
	f.p = &p;
	f.fd = p.fd;
	f.nbufs = 64;
	if (pthread_create(&th[0], NULL, fz_sync, &f) ||
	    pthread_create(&th[1], NULL, fz_attach, &f) ||
	    pthread_create(&th[2], NULL, fz_mmap, &f) ||
	    pthread_create(&th[3], NULL, fz_ioctl, &f))
		return 2;
	usleep((useconds_t)(secs * 1e6));
	/* Close the port while the threads still use it. */
	f.fd = -1;
	close(p.fd);
	usleep(20000);
	f.stop = 1;
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	p.fd = -1;
	printf("  fuzz round%s: %lu syncs, %lu attaches, %lu mmaps, %lu random ioctls\n",
	       f.cs ? " (CONNSTATE)" : "", f.syncs, f.attaches, f.mmaps, f.ioctls);
	kport_close(&p);
	return 0;
}

static int fz_child(double total)
{
	double end = now_s() + total;
	int ret = 0;

	while (!ret && now_s() < end)
		ret = fz_round(total < 10 ? total / 2 : 5);
	return ret;
}

/* Run the fuzzer in a child for secs; a hang is reported after a bound. */
static int run_fuzz(double secs)
{
	double end;
	pid_t pid;
	int st = 0;

	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid)
		_exit(fz_child(secs));
	end = now_s() + secs + 60;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		CHECK(now_s() < end, "fuzzer child %d hangs", pid);
		usleep(100000);
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fuzzer child failed (status %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return 0;
}

/* sync vs attach/detach vs mmap vs random ioctls vs close: 4 s. */
/* ------------------------------------------------- connection state */

/* Entry of conn in the state table of a DAXNET_REG_CONNSTATE port. */
static struct daxnet_conn_state *cstate(struct kport *p, uint32_t conn)
{
	const struct daxnet_region *reg = (const void *)p->region;
	struct daxnet_conn_state *t = (void *)(p->region + reg->conn_state_ofs);

	return &t[DAXNET_CONN_INDEX(conn)];
}

static int cs_open(struct kport *p, uint32_t max_conns)
{
	int ret;

	kport_reg_flags = DAXNET_REG_CONNSTATE;
	ret = kport_open_ex(p, true, 128, 2048, 64, 64, 16, max_conns, DAXNET_API);
	kport_reg_flags = 0;
	return ret;
}

/*
 * DAXNET_REG_CONNSTATE: the region holds one daxnet_conn_state per
 * connection index; the kernel keeps the TX bytes it queued for a peer
 * that does not read, the unacknowledged and the unpublished RX bytes
 * there, and stops publishing RX at the user-written rx_limit (a limit
 * lowered below what was published pauses, it is not an error), resuming
 * when it is raised. Without the flag there is no table; an unknown flag
 * is refused.
 */
static int t_conn_state(void)
{
	static char blob[2048];
	struct kport p = { 0 }, q = { 0 };
	struct capture *c = calloc(1, sizeof(*c));
	const struct daxnet_region *reg;
	struct daxnet_conn_state *st;
	struct daxnet_counters_arg ca;
	uint8_t *sent = malloc(5000), *back = malloc(1 << 20);
	size_t want[2] = { 1, 1000 };
	int cli, srv, small = 4096, i;
	uint64_t rsize;
	uint32_t conn = 0;
	ssize_t got;

	CHECK(c && sent && back, "malloc");
	/* Without the flag: no table. An undefined flag: EINVAL. */
	CHECK(kport_open_ex(&q, true, 64, 2048, 16, 16, 16, 8, DAXNET_API) == 0, "register");
	reg = (const void *)q.region;
	CHECK(!(reg->flags & DAXNET_REG_CONNSTATE) && !reg->conn_state_ofs,
	      "a table without DAXNET_REG_CONNSTATE");
	{
		struct dxt_geom g = { .buf_size = 2048, .buf_count = 64, .rx = 16, .tx = 16,
				      .spare = 16, .max_conns = 8, .flags = 0x8000 };
		int fd = open("/dev/daxnet", O_RDWR | O_CLOEXEC);

		CHECK(fd >= 0, "open");
		CHECK(dxt_register(fd, q.pool, q.pool_len, &g, &rsize) == -EINVAL,
		      "an undefined REGISTER flag was accepted");
		close(fd);
	}
	kport_close(&q);

	CHECK(cs_open(&p, 8) == 0, "register with DAXNET_REG_CONNSTATE");
	reg = (const void *)p.region;
	CHECK(reg->flags & DAXNET_REG_CONNSTATE, "region flags lack CONNSTATE");
	CHECK(reg->conn_state_ofs && reg->conn_state_ofs % 64 == 0 &&
	      reg->conn_state_ofs + 8 * sizeof(*st) <= p.region_size,
	      "conn_state_ofs %llu outside the region", (unsigned long long)reg->conn_state_ofs);
	for (i = 0; i < 8; i++)
		CHECK(cstate(&p, i)->conn == DAXNET_NO_CONN, "entry %d of no connection", i);

	CHECK(tcp_pair(&cli, &srv) == 0, "tcp pair");
	setsockopt(cli, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(srv, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	CHECK(kport_attach(&p, srv, 1, &conn) == 0, "attach");
	st = cstate(&p, conn);
	CHECK(st->conn == conn && !st->tx_slots && !st->tx_bytes && !st->rx_limit,
	      "entry after attach: conn %#x tx %u/%llu", st->conn, st->tx_slots,
	      (unsigned long long)st->tx_bytes);

	/* TX: a peer that never reads; what the socket cannot take is queued. */
	for (i = 0; i < 100 && st->tx_slots < 4; i++) {
		CHECK(kport_tx(&p, conn, blob, sizeof(blob), DAXNET_SLOT_DATA, capture_cb, c) == 0,
		      "tx");
		CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	}
	CHECK(st->tx_slots >= 4, "only %u TX slots queued after %d", st->tx_slots, i);
	CHECK(st->tx_bytes > 3 * sizeof(blob) && st->tx_bytes <= (uint64_t)st->tx_slots * sizeof(blob),
	      "tx_bytes %llu for %u slots", (unsigned long long)st->tx_bytes, st->tx_slots);
	CHECK(st->tx_unacked > 0, "nothing unacknowledged beside a full queue");
	/* The peer reads it all: the queue and the unacknowledged bytes drain. */
	{
		double end = now_s() + 30;
		size_t total = 0;

		while ((st->tx_slots || st->tx_bytes || st->tx_unacked) && now_s() < end) {
			got = recv(cli, back, 1 << 20, MSG_DONTWAIT);
			if (got > 0)
				total += got;
			else
				usleep(1000);
			CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
		}
		CHECK(!st->tx_slots && !st->tx_bytes && !st->tx_unacked,
		      "after the peer read %zu bytes: %u slots, %llu bytes, %llu unacked", total,
		      st->tx_slots, (unsigned long long)st->tx_bytes,
		      (unsigned long long)st->tx_unacked);
	}

	/* RX at most up to rx_limit; the rest stays in the socket. */
	for (i = 0; i < 5000; i++)
		sent[i] = dxt_pattern(i);
	CHECK(sync_until(&p, c, have_bytes, (size_t[]){ 1, 0 }, 5) == 0 && c->newconn[1] == 1,
	      "NEW_CONN");
	st->rx_limit = 1000;
	CHECK(write(cli, sent, 5000) == 5000, "write");
	CHECK(sync_until(&p, c, have_bytes, want, 10) == 0, "the first 1000 bytes");
	for (i = 0; i < 20; i++) {
		CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
		usleep(2000);
	}
	CHECK(c->len[1] == 1000 && st->rx_bytes == 1000,
	      "published %zu bytes (entry %llu) with rx_limit 1000", c->len[1],
	      (unsigned long long)st->rx_bytes);
	CHECK(st->rx_pending == 4000, "rx_pending %llu, want 4000",
	      (unsigned long long)st->rx_pending);
	CHECK(st->rx_paused >= 1, "rx_paused not counted");
	/* A limit below what was published: paused, not an error. */
	st->rx_limit = 10;
	for (i = 0; i < 5; i++)
		CHECK(kport_sync(&p, capture_cb, c) == 0, "sync with a lowered rx_limit");
	CHECK(c->len[1] == 1000 && st->rx_bytes == 1000, "published %zu with rx_limit 10", c->len[1]);
	/* Raised: the next sync publishes up to it, then the rest. */
	st->rx_limit = 3000;
	want[1] = 3000;
	CHECK(sync_until(&p, c, have_bytes, want, 10) == 0, "up to the raised limit");
	for (i = 0; i < 5; i++)
		CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
	CHECK(c->len[1] == 3000 && st->rx_pending == 2000, "published %zu, pending %llu at 3000",
	      c->len[1], (unsigned long long)st->rx_pending);
	st->rx_limit = 0;
	want[1] = 5000;
	CHECK(sync_until(&p, c, have_bytes, want, 10) == 0, "all bytes without a limit");
	CHECK(c->len[1] == 5000 && !memcmp(c->data[1], sent, 5000), "the stream is intact");
	CHECK(st->rx_bytes == 5000 && !st->rx_pending, "entry rx %llu pending %llu",
	      (unsigned long long)st->rx_bytes, (unsigned long long)st->rx_pending);
	memset(&ca, 0, sizeof(ca));
	ca.pair = DAXNET_RING_ALL;
	CHECK(ioctl(p.fd, DAXNET_IOC_COUNTERS, &ca) == 0 && ca.c.rx_paused >= 2,
	      "counter rx_paused %llu", (unsigned long long)ca.c.rx_paused);

	CHECK(kport_detach(&p, conn, 0) == 0, "detach");
	CHECK(st->conn == DAXNET_NO_CONN, "entry of a detached connection: %#x", st->conn);
	close(cli);
	close(srv);
	kport_close(&p);
	capture_free(c);
	free(sent);
	free(back);
	return 0;
}

#define CS_REFRESH_MAX DBG_DIR "/daxnet/cs_refresh_max"

/* The debugfs statistic daxnet/cs_refresh_max (reset when set), or -1. */
static long cs_refresh_max(bool reset)
{
	char b[32] = "";
	long v = -1;
	int fd;

	fd = open(CS_REFRESH_MAX, reset ? O_WRONLY : O_RDONLY);
	if (fd < 0)
		return -1;
	if (reset)
		v = write(fd, "0", 1) == 1 ? 0 : -1;
	else if (read(fd, b, sizeof(b) - 1) > 0)
		v = strtol(b, NULL, 10);
	close(fd);
	return v;
}

/*
 * The connection-state refresh at the end of a sync is bounded: it
 * writes the connections whose TX the sync touched and at most 16 more of
 * those with TX queued or unacknowledged (round robin), not every such
 * connection at every sync. 32 connections whose peers do not read keep
 * bytes unacknowledged; three syncs that touch none of them write fewer
 * than 32 entries each (debugfs daxnet/cs_refresh_max). Once the peers
 * have read everything, every entry reaches 0 within a few syncs and the
 * refresh has nothing left to write.
 */
static int t_cs_refresh_bound(void)
{
	enum { N = 32, SLOTS = 4 };
	static char blob[2048];
	struct kport p;
	int cli[N], srv[N], lfd, i, j, one = 1, busy;
	uint32_t conn[N];
	char *sink = malloc(1 << 16);
	uint16_t port;
	long mx;
	double end;

	CHECK(sink, "malloc");
	if (access(CS_REFRESH_MAX, F_OK))
		mount("debugfs", DBG_DIR, "debugfs", 0, NULL);
	CHECK(cs_refresh_max(true) == 0, "reset %s", CS_REFRESH_MAX);
	CHECK(cs_open(&p, 64) == 0, "register with DAXNET_REG_CONNSTATE");
	lfd = listener(&port);
	CHECK(lfd >= 0, "listener");
	for (i = 0; i < N; i++) {
		CHECK(tcp_pair_on(lfd, port, &cli[i], &srv[i]) == 0, "pair %d", i);
		setsockopt(cli[i], SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
		setsockopt(srv[i], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
		CHECK(kport_attach(&p, srv[i], i, &conn[i]) == 0, "attach %d", i);
	}
	close(lfd);
	/* 8 KiB to each peer: more than its receive and our send buffer. */
	for (j = 0; j < SLOTS; j++)
		for (i = 0; i < N; i++)
			CHECK(kport_tx(&p, conn[i], blob, sizeof(blob), DAXNET_SLOT_DATA, NULL,
				       NULL) == 0, "tx %d/%d", i, j);
	for (i = 0; i < 10; i++) {
		CHECK(kport_sync(&p, NULL, NULL) == 0, "sync");
		usleep(10000);
	}
	for (i = 0, busy = 0; i < N; i++)
		busy += cstate(&p, conn[i])->tx_slots || cstate(&p, conn[i])->tx_unacked;
	CHECK(busy == N, "only %d of %d connections hold unacknowledged bytes", busy, N);
	CHECK(cs_refresh_max(true) == 0, "reset %s", CS_REFRESH_MAX);
	for (i = 0; i < 3; i++)
		CHECK(kport_sync(&p, NULL, NULL) == 0, "sync");
	mx = cs_refresh_max(false);
	CHECK(mx >= 0 && mx < N, "one sync wrote %ld connection-state entries with %d listed",
	      mx, N);
	/* The peers read: every entry reaches 0, refreshed round robin. */
	end = now_s() + 60;
	do {
		for (i = 0; i < N; i++)
			while (recv(cli[i], sink, 1 << 16, MSG_DONTWAIT) > 0)
				;
		CHECK(kport_sync(&p, NULL, NULL) == 0, "sync");
		for (i = 0, busy = 0; i < N; i++)
			busy += cstate(&p, conn[i])->tx_slots || cstate(&p, conn[i])->tx_unacked;
		if (busy)
			usleep(2000);
	} while (busy && now_s() < end);
	CHECK(!busy, "%d entries still show TX queued or unacknowledged", busy);
	CHECK(cs_refresh_max(true) == 0, "reset %s", CS_REFRESH_MAX);
	CHECK(kport_sync(&p, NULL, NULL) == 0, "sync");
	mx = cs_refresh_max(false);
	CHECK(mx == 0, "a sync with nothing to refresh wrote %ld entries", mx);
	for (i = 0; i < N; i++) {
		CHECK(kport_detach(&p, conn[i], 0) == 0, "detach %d", i);
		close(cli[i]);
		close(srv[i]);
	}
	kport_close(&p);
	free(sink);
	return 0;
}

/*
 * A connection paused at its rx_limit does not wake the poller for every
 * segment that arrives: nothing can be published until the limit is
 * raised. Before, each segment marked it ready, poll() reported EPOLLIN
 * and the sync ran an RX phase that published nothing (rx_paused counted
 * one more). 20 segments after the pause: at most one report. Raising the
 * limit publishes everything.
 */
static int t_pause_wake(void)
{
	struct kport p;
	struct capture *c = calloc(1, sizeof(*c));
	struct daxnet_conn_state *st;
	uint8_t sent[400];
	size_t want[2] = { 1, 100 };
	int cli, srv, i, one = 1, reports = 0;
	uint32_t conn = 0;
	uint64_t paused0;

	CHECK(c, "malloc");
	for (i = 0; i < (int)sizeof(sent); i++)
		sent[i] = dxt_pattern(i);
	CHECK(cs_open(&p, 8) == 0, "register with DAXNET_REG_CONNSTATE");
	CHECK(tcp_pair(&cli, &srv) == 0, "tcp pair");
	setsockopt(cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	CHECK(kport_attach(&p, srv, 1, &conn) == 0, "attach");
	st = cstate(&p, conn);
	st->rx_limit = 100;
	CHECK(write(cli, sent, 200) == 200, "write");
	CHECK(sync_until(&p, c, have_bytes, want, 10) == 0, "the first 100 bytes");
	for (i = 0; i < 5; i++) {
		CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
		usleep(2000);
	}
	CHECK(c->len[1] == 100 && st->rx_paused >= 1, "published %zu, rx_paused %llu",
	      c->len[1], (unsigned long long)st->rx_paused);
	CHECK(!poll_in(&p), "EPOLLIN for a paused connection with nothing new");
	paused0 = st->rx_paused;
	for (i = 0; i < 20; i++) {
		struct pollfd pfd = { .fd = p.fd, .events = POLLIN };

		CHECK(write(cli, sent + 200 + 10 * i, 10) == 10, "write %d", i);
		if (poll(&pfd, 1, 100) == 1 && (pfd.revents & POLLIN)) {
			reports++;
			CHECK(kport_sync(&p, capture_cb, c) == 0, "sync");
		}
	}
	CHECK(c->len[1] == 100, "published %zu bytes beyond rx_limit 100", c->len[1]);
	CHECK(reports <= 1, "poll() reported EPOLLIN %d times for 20 segments to a paused "
	      "connection (rx_paused +%llu)", reports,
	      (unsigned long long)(st->rx_paused - paused0));
	/* Raised: everything comes, intact. */
	st->rx_limit = 0;
	want[1] = sizeof(sent);
	CHECK(sync_until(&p, c, have_bytes, want, 10) == 0, "all bytes after the limit was lifted");
	CHECK(!memcmp(c->data[1], sent, sizeof(sent)), "the stream is intact");
	CHECK(kport_detach(&p, conn, 0) == 0, "detach");
	close(cli);
	close(srv);
	kport_close(&p);
	capture_free(c);
	return 0;
}

#define TXQ_MAX DBG_DIR "/daxnet/txq_max"

/* The test build's debugfs daxnet/txq_max (0: DXN_MAX_TXQ); 0 or -1. */
static int txq_max(unsigned int v)
{
	return dxt_knob_u32("txq_max", v);
}

/*
 * The ENOBUFS rule: a TX slot that would have to be queued while the
 * pair's queued ranges plus unpublished RELEASEs reach DXN_MAX_TXQ
 * (lowered to 4 with the test build's debugfs daxnet/txq_max) comes back
 * ERROR/ENOBUFS; the queue never exceeds the limit, nothing else fails,
 * and once the peer reads, the queued bytes go out.
 */
struct pollout_waiter {
	int fd;
	pid_t tid;
	short revents;
	int ret;
	int done;
};

/*
 * Waits for POLLOUT alone, without a timeout: poll() evaluates the mask
 * once more when its timeout ends, so a timeout would hide a missing
 * wakeup. The test cancels the thread when no wakeup came.
 */
static void *pollout_wait(void *arg)
{
	struct pollout_waiter *w = arg;
	struct pollfd pfd = { .fd = w->fd, .events = POLLOUT };

	__atomic_store_n(&w->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	w->ret = poll(&pfd, 1, -1);
	w->revents = pfd.revents;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Joins the waiter once it is done (60 s at most), else cancels it. */
static bool pollout_join(pthread_t th, struct pollout_waiter *w)
{
	int i;

	for (i = 0; i < 60000 && !__atomic_load_n(&w->done, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	if (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE))
		pthread_cancel(th);
	pthread_join(th, NULL);
	return __atomic_load_n(&w->done, __ATOMIC_ACQUIRE);
}

/* Whether thread tid sleeps (state S), polled for at most ~10 s. */
static bool thread_sleeps(pid_t tid)
{
	char path[64], buf[256], *p;
	int i, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	for (i = 0; i < 10000; i++) {
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return false;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			p = strrchr(buf, ')');
			if (p && p[1] == ' ' && p[2] == 'S')
				return true;
		}
		usleep(1000);
	}
	return false;
}

static int t_txq_enobufs(void)
{
	static char blob[2048];
	struct kport p;
	struct daxnet_conn_state *st;
	int cli, srv, one = 1, i, enobufs = 0, other = 0;
	uint32_t conn = 0, maxq = 0, h;
	char *sink = malloc(1 << 16);
	struct pollfd pfd = { .events = POLLOUT };
	struct pollout_waiter w = { 0 };
	pthread_t th;
	bool out;
	int pr;

	CHECK(sink, "malloc");
	CHECK(cs_open(&p, 8) == 0, "register with DAXNET_REG_CONNSTATE");
	CHECK(tcp_pair(&cli, &srv) == 0, "tcp pair");
	setsockopt(cli, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	setsockopt(srv, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
	CHECK(kport_attach(&p, srv, 1, &conn) == 0, "attach");
	st = cstate(&p, conn);
	CHECK(txq_max(4) == 0, "set %s (a build without CONFIG_DAXNET_FAULT_INJECT?)", TXQ_MAX);
	pfd.fd = p.fd;
	for (i = 0; i < 64 && !enobufs; i++) {
		h = p.tx->head;
		if (kport_tx(&p, conn, blob, sizeof(blob), DAXNET_SLOT_DATA, NULL, NULL) ||
		    kport_sync(&p, NULL, NULL))
			break;
		if (p.txs[h].flags & DAXNET_SLOT_ERROR) {
			if (p.txs[h].err == ENOBUFS)
				enobufs++;
			else
				other++;
		}
		if (st->tx_slots > maxq)
			maxq = st->tx_slots;
	}
	/* At the limit the kernel takes no more TX: no EPOLLOUT. */
	pfd.revents = 0;
	pr = poll(&pfd, 1, 0);
	out = pr > 0 && (pfd.revents & POLLOUT);
	if (enobufs != 1 || other || pr < 0 || out)
		txq_max(0);
	CHECK(enobufs == 1 && !other, "after %d slots: %d ENOBUFS, %d other errors", i, enobufs,
	      other);
	CHECK(pr >= 0, "poll: %s", strerror(errno));
	CHECK(!out, "poll() reported POLLOUT with %u ranges queued at the limit 4", maxq);
	CHECK(maxq <= 4, "%u ranges queued with the limit at 4", maxq);
	CHECK(kport_counters(&p).bad_slot == 0, "bad_slot counted");
	/*
	 * Another thread waits for POLLOUT alone while this one drains the
	 * queue by syncs: the sync that takes the pair below the limit
	 * wakes it (a waiter woken only for EPOLLIN would sleep on).
	 */
	w.fd = p.fd;
	if (pthread_create(&th, NULL, pollout_wait, &w)) {
		txq_max(0);
		CHECK(0, "pthread_create");
	}
	while (!__atomic_load_n(&w.tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	if (!thread_sleeps(w.tid)) {
		txq_max(0);
		pollout_join(th, &w);
		CHECK(0, "the POLLOUT waiter never slept (ret %d revents %#x)", w.ret, w.revents);
	}
	/* The peer reads: the queue drains. */
	for (i = 0; i < 3000 && (st->tx_slots || st->tx_unacked); i++) {
		while (recv(cli, sink, 1 << 16, MSG_DONTWAIT) > 0)
			;
		if (kport_sync(&p, NULL, NULL)) {
			txq_max(0);
			pollout_join(th, &w);
			CHECK(0, "sync");
		}
		usleep(1000);
	}
	out = pollout_join(th, &w);
	txq_max(0);
	CHECK(out, "the thread polling for POLLOUT alone was not woken when the queue drained");
	CHECK(w.ret == 1 && (w.revents & POLLOUT), "POLLOUT waiter: poll %d, revents %#x", w.ret,
	      w.revents);
	CHECK(!st->tx_slots, "%u ranges still queued", st->tx_slots);
	CHECK(poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT),
	      "no POLLOUT once the queue drained (revents %#x)", pfd.revents);
	CHECK(kport_detach(&p, conn, DAXNET_DETACH_DISCARD) == 0, "detach");
	close(cli);
	close(srv);
	kport_close(&p);
	free(sink);
	return 0;
}

/*
 * daxnet/ports read whole with read() calls of chunk bytes (so the
 * seq_file iterator stops and resumes between records); a malloc'ed,
 * NUL-terminated string or NULL.
 */
static char *ports_read(size_t chunk)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap + 1);
	ssize_t n;
	int fd;

	if (access(DXT_DEBUGFS "/daxnet/ports", F_OK))
		mount("debugfs", DXT_DEBUGFS, "debugfs", 0, NULL);
	fd = open(DXT_DEBUGFS "/daxnet/ports", O_RDONLY);
	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (;;) {
		if (cap - len < chunk) {
			char *nb = realloc(buf, 2 * cap + 1);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, chunk);
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = 0;
	return buf;
}

/* The line of text starting with prefix (up to its newline), or NULL. */
static const char *line_with(const char *text, const char *prefix, char *out, size_t outsz)
{
	size_t pl = strlen(prefix), k;
	const char *l;

	for (l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, prefix, pl))
			continue;
		for (k = 0; l[k] && l[k] != '\n' && k + 1 < outsz; k++)
			out[k] = l[k];
		out[k] = 0;
		return l;
	}
	return NULL;
}

struct uffd_hold {
	int fd;		/* the port */
	void *arg;	/* a missing page registered with userfaultfd */
	int ret;
};

static void *uffd_counters(void *arg)
{
	struct uffd_hold *u = arg;

	u->ret = ioctl(u->fd, DAXNET_IOC_COUNTERS, u->arg) ? -errno : 0;
	return NULL;
}

/*
 * daxnet/ports is a seq_file iterator that never waits for a port's mutex:
 * - busy: an ioctl of port A stops in copy_from_user() on a page missing
 *   under userfaultfd, holding A's mutex. The view, read meanwhile,
 *   returns at once and shows A as "port=N busy=1" (and nothing else of
 *   A); with the fault resolved, A is shown whole again;
 * - many: with 300 more ports open and a connection attached to A, the
 *   view read in 100-byte read() calls (the iterator stopped and resumed
 *   some 300 times) lists every port exactly once, in open order, and A's
 *   connection once, with its addresses and state.
 */
static int t_ports_busy(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_zeropage zp = { 0 };
	struct uffd_hold u = { 0 };
	struct pollfd pfd;
	struct uffd_msg msg;
	struct sockaddr_in la;
	socklen_t al = sizeof(la);
	struct kport p;
	char pre[64], line[4096], want[128];
	unsigned long long id = 0, prev = 0, pid;
	int uffd, cli, srv, fds[300], i, nports = 0, nconn = 0, missing;
	uint32_t conn = 0;
	pthread_t th;
	char *v, *l;
	void *page;

	CHECK(kport_open(&p, true) == 0, "register");
	v = ports_read(4096);
	CHECK(v, "read %s/daxnet/ports", DXT_DEBUGFS);
	/* Ours is the newest of this process's ports (ids grow). */
	snprintf(want, sizeof(want), " registered=1 pid=%d ", getpid());
	for (l = v; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (sscanf(l, "port=%llu", &prev) == 1 && strstr(l, want) &&
		    strstr(l, want) < strchr(l, '\n'))
			id = prev;
	prev = 0;
	free(v);
	CHECK(id, "no port line with pid %d", getpid());
	snprintf(pre, sizeof(pre), "port=%llu ", id);

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		printf("  ports_busy: no userfaultfd (errno %d): busy part skipped\n", errno);
	} else {
		page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(page != MAP_FAILED, "mmap");
		CHECK(ioctl(uffd, UFFDIO_API, &api) == 0, "UFFDIO_API");
		reg.range.start = (uintptr_t)page;
		reg.range.len = 4096;
		CHECK(ioctl(uffd, UFFDIO_REGISTER, &reg) == 0, "UFFDIO_REGISTER");
		u.fd = p.fd;
		u.arg = page;
		CHECK(pthread_create(&th, NULL, uffd_counters, &u) == 0, "thread");
		/* The fault is reported once the ioctl holds the port mutex. */
		pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
		CHECK(poll(&pfd, 1, 30000) == 1 && read(uffd, &msg, sizeof(msg)) == sizeof(msg) &&
		      msg.event == UFFD_EVENT_PAGEFAULT, "the COUNTERS ioctl never faulted");
		v = ports_read(4096);
		CHECK(v, "read ports while busy");
		snprintf(want, sizeof(want), "port=%llu busy=1", id);
		l = (char *)line_with(v, pre, line, sizeof(line));
		printf("  ports_busy: while the owner faults: %s\n", l ? line : "(no line)");
		CHECK(l && !strcmp(line, want), "port %llu while its mutex is held: \"%.200s\", want \"%s\"",
		      id, l ? line : "", want);
		snprintf(want, sizeof(want), "pair=0 port=%llu ", id);
		CHECK(!line_with(v, want, line, sizeof(line)), "a pair line of the busy port");
		free(v);
		zp.range.start = (uintptr_t)page;
		zp.range.len = 4096;
		CHECK(ioctl(uffd, UFFDIO_ZEROPAGE, &zp) == 0, "UFFDIO_ZEROPAGE");
		pthread_join(th, NULL);
		CHECK(u.ret == 0, "COUNTERS after the fault: %d", u.ret);
		close(uffd);
		munmap(page, 4096);
		v = ports_read(4096);
		CHECK(v && line_with(v, pre, line, sizeof(line)) && strstr(line, " registered=1 "),
		      "port %llu not shown whole once its mutex is free", id);
		free(v);
	}

	/* Many ports, small reads. */
	CHECK(tcp_pair(&cli, &srv) == 0, "tcp pair");
	CHECK(kport_attach(&p, srv, 7, &conn) == 0, "attach");
	for (i = 0; i < 300; i++)
		fds[i] = open(DAXNET_DEVICE, O_RDWR | O_CLOEXEC);
	v = ports_read(100);
	CHECK(v, "read ports in 100-byte reads");
	missing = 0;
	for (l = v; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned long long cid;

		if (sscanf(l, "port=%llu", &id) == 1) {
			CHECK(id > prev, "port %llu listed after port %llu", id, prev);
			prev = id;
			nports++;
		}
		if (sscanf(l, "conn=%llu port=%llu", &cid, &pid) == 2 && cid == conn)
			nconn++;
	}
	for (i = 0; i < 300; i++)
		missing += fds[i] < 0;
	CHECK(!missing, "%d opens of %s failed", missing, DAXNET_DEVICE);
	CHECK(nports >= 301, "%d port lines with 301 ports open", nports);
	CHECK(nconn == 1, "connection %u listed %d times", conn, nconn);
	snprintf(want, sizeof(want), "conn=%u ", conn);
	CHECK(line_with(v, want, line, sizeof(line)), "no line for connection %u", conn);
	printf("  ports_busy: %d port lines; %s\n", nports, line);
	getsockname(srv, (struct sockaddr *)&la, &al);
	snprintf(want, sizeof(want), " local=127.0.0.1:%u ", ntohs(la.sin_port));
	CHECK(strstr(line, want) && strstr(line, " remote=127.0.0.1:") &&
	      strstr(line, " state=ESTABLISHED ") && strstr(line, " rx_limit=0"),
	      "connection line: %.400s", line);
	free(v);
	for (i = 0; i < 300; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	CHECK(kport_detach(&p, conn, 0) == 0, "detach");
	close(cli);
	close(srv);
	kport_close(&p);
	return 0;
}

/*
 * daxnet/ports shows a port's owner only while it lives: a child
 * REGISTERs on a /dev/daxnet fd it inherited and exits; the parent keeps
 * the fd, so the port lives on, and the view must show pid=0 for it from
 * then on, never the dead child's number (which the kernel may give to
 * another process).
 */
static int t_ports_dead_owner(void)
{
	struct dxt_geom g = { .buf_size = 4096, .buf_count = 16, .rx = 16, .tx = 16,
			      .spare = 16, .max_conns = 16, .flags = kport_reg_flags };
	char path[256], pre[64], line[4096], want[64];
	unsigned long long id = 0, cand;
	int fd, pool_fd, pp[2], st;
	size_t len = 16 * 4096;
	pid_t child;
	void *pool;
	char *v, *l;

	snprintf(path, sizeof(path), "%s/ktest-owner-%d", shm_dir, getpid());
	pool_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(pool_fd >= 0, "open pool %s", path);
	unlink(path);
	CHECK(ftruncate(pool_fd, len) == 0, "ftruncate pool");
	pool = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, pool_fd, 0);
	CHECK(pool != MAP_FAILED, "mmap pool");
	fd = open("/dev/daxnet", O_RDWR);
	CHECK(fd >= 0, "open /dev/daxnet");
	CHECK(pipe(pp) == 0, "pipe");
	child = fork();
	CHECK(child >= 0, "fork");
	if (!child) {
		/* The REGISTER caller: finds its port's id, then exits. */
		close(pp[0]);
		if (dxt_register(fd, pool, len, &g, NULL))
			_exit(2);
		v = ports_read(4096);
		if (!v)
			_exit(3);
		snprintf(want, sizeof(want), " registered=1 pid=%d ", getpid());
		for (l = v; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
			if (sscanf(l, "port=%llu", &cand) == 1 && strstr(l, want) &&
			    strstr(l, want) < strchr(l, '\n'))
				id = cand;
		if (!id || write(pp[1], &id, sizeof(id)) != sizeof(id))
			_exit(4);
		_exit(0);
	}
	close(pp[1]);
	if (read(pp[0], &id, sizeof(id)) != sizeof(id))
		id = 0;
	close(pp[0]);
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st), "waitpid");
	CHECK(WEXITSTATUS(st) == 0 && id, "child: register or find its port (status %d)",
	      WEXITSTATUS(st));
	v = ports_read(4096);
	CHECK(v, "read %s/daxnet/ports", DXT_DEBUGFS);
	snprintf(pre, sizeof(pre), "port=%llu ", id);
	l = (char *)line_with(v, pre, line, sizeof(line));
	printf("  ports_dead_owner: owner %d exited: %.120s\n", (int)child, l ? line : "(no line)");
	CHECK(l && strstr(line, " registered=1 pid=0 "),
	      "port %llu of the exited owner %d: \"%.200s\", want pid=0", id, (int)child,
	      l ? line : "");
	free(v);
	close(fd);
	munmap(pool, len);
	close(pool_fd);
	return 0;
}

static int t_fuzz(void) { return run_fuzz(4); }
/* The same for 120 s (CTest kernel_fuzz_long, label slow). */
static int t_fuzz_long(void) { return run_fuzz(120); }

static int t_basic_dax(void) { return t_basic(false); }
static int t_basic_shm(void) { return t_basic(true); }
static int t_stream_dax(void) { return t_stream(false); }
static int t_stream_shm(void) { return t_stream(true); }

static const struct {
	const char *name;
	int (*fn)(void);
} tests[] = {
	{ "basic_dax", t_basic_dax },
	{ "basic_shm", t_basic_shm },
	{ "stream_dax", t_stream_dax },
	{ "stream_shm", t_stream_shm },
	{ "close_fd", t_close_fd },
	{ "peer_reset", t_peer_reset },
	{ "detach_inflight", t_detach_inflight },
	{ "release_attached", t_release_attached },
	{ "rmmod_busy", t_rmmod_busy },
	{ "garbage", t_garbage },
	{ "two_procs", t_two_procs },
	{ "conn1000", t_conn1000 },
	{ "privileges", t_privileges },
	{ "fd_passed", t_fd_passed },
	{ "register_mmap_race", t_register_mmap_race },
	{ "dup_index", t_dup_index },
	{ "zc_dup_spares", t_zc_dup_spares },
	{ "pool_kinds", t_pool_kinds },
	{ "pool_swap_race", t_pool_swap_race },
	{ "zc_fsdax", t_zc_fsdax },
	{ "rel_nomem", t_rel_nomem },
	{ "nomem_poll", t_nomem_poll },
	{ "nomem_poll_tx", t_nomem_poll_tx },
	{ "cs_refresh_bound", t_cs_refresh_bound },
	{ "pause_wake", t_pause_wake },
	{ "txq_enobufs", t_txq_enobufs },
	{ "attach_efault", t_attach_efault },
	{ "attach_refused", t_attach_refused },
	{ "poll_release", t_poll_release },
	{ "geometry_caps", t_geometry_caps },
	{ "truncate_pool", t_truncate_pool },
	{ "ktls", t_ktls },
	{ "conn_state", t_conn_state },
	{ "ports_busy", t_ports_busy },
	{ "ports_dead_owner", t_ports_dead_owner },
	{ "fuzz", t_fuzz },
	{ "fuzz_long", t_fuzz_long },
};

int main(int argc, char **argv)
{
	const char *only[32];
	int nonly = 0, i, j;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pool-dir") && i + 1 < argc)
			pool_dir = argv[++i];
		else if (!strcmp(argv[i], "--shm-dir") && i + 1 < argc)
			shm_dir = argv[++i];
		else if (!strcmp(argv[i], "--rmmod-name") && i + 1 < argc)
			rmmod_name = argv[++i];
		else if (nonly < 32)
			only[nonly++] = argv[i];
	}
	for (i = 0; i < (int)(sizeof(tests) / sizeof(tests[0])); i++) {
		double t0;
		int ret;

		for (j = 0; j < nonly; j++)
			if (!strcmp(only[j], tests[i].name))
				break;
		if (nonly && j == nonly)
			continue;
		/* The long variants run only when named (CTest label slow). */
		if (!nonly && strstr(tests[i].name, "_long"))
			continue;
		t0 = now_s();
		fail_msg[0] = 0;
		ret = tests[i].fn();
		if (ret) {
			printf("DAXNET-FAIL ktest.%s: %s (%.1fs)\n", tests[i].name, fail_msg,
			       now_s() - t0);
			failures++;
		} else {
			printf("DAXNET-PASS ktest.%s (%.1fs)\n", tests[i].name, now_s() - t0);
		}
	}
	return failures;
}
