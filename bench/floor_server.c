// SPDX-License-Identifier: BSD-2-Clause
//
// The floor of the rpc workload: what kernel TCP alone costs per request.
// A single-threaded responder that does nothing but answer each complete
// HTTP request head ("\r\n\r\n") with a fixed 200 response carrying the
// same 64-byte body as nginx and daxnet-httpd (bench/run.py, rpc). No
// parsing beyond the terminator, no headers checked, no logging, no
// bodies: a server cannot do less per request with one recv and one send.
//
//   floor_server --port P [--bind 127.0.0.1] --mode epoll|uring
//
// epoll: level-triggered epoll_wait, recv, one send of all replies.
// uring: one io_uring (COOP_TASKRUN | TASKRUN_FLAG when the kernel has
// them), multishot accept, one recv per connection re-armed after each
// completion, one send per batch of replies; one io_uring_enter per loop.
// Prints "floor_server: mode=M port=P" when listening; SIGTERM stops it.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536
#define RBUF 16384
#define MAX_REPLIES 64

static const char kBody[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static char reply[MAX_REPLIES * 256];
static size_t reply_len;
static volatile sig_atomic_t stop;

struct conn {
	unsigned match; /* bytes of "\r\n\r\n" matched at the end of what came */
	char *buf;
	const char *out; /* uring: unsent part of the replies */
	size_t out_len;
};
static struct conn conns[MAX_FDS];

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* Complete request heads in [p, p+n), carrying the terminator state. */
static unsigned count_requests(struct conn *c, const char *p, size_t n)
{
	static const char term[] = "\r\n\r\n";
	unsigned reqs = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == term[c->match]) {
			if (++c->match == 4) {
				reqs++;
				c->match = 0;
			}
		} else {
			c->match = p[i] == '\r' ? 1 : 0;
		}
	}
	return reqs;
}

static int listen_on(const char *bind_addr, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	if (fd < 0 || inet_pton(AF_INET, bind_addr, &a.sin_addr) != 1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096))
		return -1;
	return fd;
}

static void new_conn(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conns[fd].match = 0;
	if (!conns[fd].buf)
		conns[fd].buf = malloc(RBUF);
}

static size_t replies_for(unsigned reqs)
{
	return (reqs > MAX_REPLIES ? MAX_REPLIES : reqs) * reply_len;
}

static int run_epoll(int lfd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[256];
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	while (!stop) {
		int n = epoll_wait(ep, evs, 256, 200);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				int c;
				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if (c >= MAX_FDS) {
						close(c);
						continue;
					}
					new_conn(c);
					ev.events = EPOLLIN;
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			ssize_t r = recv(fd, conns[fd].buf, RBUF, 0);
			if (r <= 0) {
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				close(fd); /* also leaves the epoll set */
				continue;
			}
			unsigned reqs = count_requests(&conns[fd], conns[fd].buf, (size_t)r);
			while (reqs > 0) {
				unsigned k = reqs > MAX_REPLIES ? MAX_REPLIES : reqs;
				/* blocking-free: tiny replies to a client that reads */
				if (send(fd, reply, replies_for(k), MSG_NOSIGNAL) < 0)
					break;
				reqs -= k;
			}
		}
	}
	return 0;
}

enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

static struct io_uring_sqe *sqe_get(struct io_uring *ring)
{
	struct io_uring_sqe *s = io_uring_get_sqe(ring);
	while (!s) {
		io_uring_submit(ring);
		s = io_uring_get_sqe(ring);
	}
	return s;
}

static void arm_recv(struct io_uring *ring, int fd)
{
	struct io_uring_sqe *s = sqe_get(ring);
	io_uring_prep_recv(s, fd, conns[fd].buf, RBUF, 0);
	io_uring_sqe_set_data64(s, ((uint64_t)fd << 8) | OP_RECV);
}

static void arm_send(struct io_uring *ring, int fd)
{
	struct io_uring_sqe *s = sqe_get(ring);
	io_uring_prep_send(s, fd, conns[fd].out, conns[fd].out_len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(s, ((uint64_t)fd << 8) | OP_SEND);
}

static void arm_accept(struct io_uring *ring, int lfd)
{
	struct io_uring_sqe *s = sqe_get(ring);
	io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(s, OP_ACCEPT);
}

static int run_uring(int lfd)
{
	struct io_uring ring;
	struct io_uring_params p;
	unsigned flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	int r;
	for (;;) {
		memset(&p, 0, sizeof(p));
		p.flags = flags | IORING_SETUP_CQSIZE;
		p.cq_entries = 65536;
		r = io_uring_queue_init_params(4096, &ring, &p);
		if (r != -EINVAL || !flags)
			break;
		flags = 0;
	}
	if (r < 0) {
		fprintf(stderr, "floor_server: io_uring_queue_init: %s\n", strerror(-r));
		return 1;
	}
	fprintf(stderr, "floor_server: io_uring flags 0x%x\n", flags);
	arm_accept(&ring, lfd);
	struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 200000000};
	while (!stop) {
		struct io_uring_cqe *cqe;
		r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		if (r < 0 && r != -ETIME && r != -EINTR)
			break;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			n++;
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			int fd = (int)(ud >> 8), res = cqe->res;
			switch (ud & 0xff) {
			case OP_ACCEPT:
				if (res >= 0 && res < MAX_FDS) {
					new_conn(res);
					arm_recv(&ring, res);
				} else if (res >= 0) {
					close(res);
				}
				if (!(cqe->flags & IORING_CQE_F_MORE))
					arm_accept(&ring, lfd);
				break;
			case OP_RECV: {
				if (res <= 0) {
					close(fd);
					break;
				}
				unsigned reqs = count_requests(&conns[fd], conns[fd].buf, (size_t)res);
				if (reqs) {
					/* ping-pong clients: at most MAX_REPLIES per batch */
					conns[fd].out = reply;
					conns[fd].out_len = replies_for(reqs);
					arm_send(&ring, fd);
				} else {
					arm_recv(&ring, fd);
				}
				break;
			}
			case OP_SEND:
				if (res < 0) {
					close(fd);
					break;
				}
				if ((size_t)res < conns[fd].out_len) {
					conns[fd].out += res;
					conns[fd].out_len -= (size_t)res;
					arm_send(&ring, fd);
				} else {
					arm_recv(&ring, fd);
				}
				break;
			}
		}
		io_uring_cq_advance(&ring, n);
	}
	io_uring_queue_exit(&ring);
	return 0;
}

int main(int argc, char **argv)
{
	const char *bind_addr = "127.0.0.1", *mode = "epoll";
	int port = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--bind"))
			bind_addr = argv[i + 1];
		else if (!strcmp(argv[i], "--mode"))
			mode = argv[i + 1];
	}
	int hl = snprintf(reply, sizeof(reply),
			  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
			  sizeof(kBody) - 1, kBody);
	reply_len = (size_t)hl;
	for (int i = 1; i < MAX_REPLIES; i++)
		memcpy(reply + (size_t)i * reply_len, reply, reply_len);
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	int lfd = listen_on(bind_addr, port);
	if (lfd < 0) {
		perror("floor_server: listen");
		return 1;
	}
	printf("floor_server: mode=%s port=%d\n", mode, port);
	fflush(stdout);
	if (!strcmp(mode, "uring"))
		return run_uring(lfd);
	return run_epoll(lfd);
}
