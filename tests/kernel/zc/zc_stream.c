// SPDX-License-Identifier: BSD-2-Clause
/*
 * zc_stream - checksummed TCP streams for the daxnet zero-copy guest tests.
 *
 *   zc_stream server PORT [--rcvbuf N] [--lag-ms N] [--count K]
 *   zc_stream client ADDR PORT BYTES WRITE_SIZE
 *
 * Byte i of every stream is dxt_pattern(i); the server checks each byte it
 * receives and prints one line per stream:
 *   zc_stream: server bytes=N bad=M sum=HEX
 * and the client prints "zc_stream: client bytes=N sum=HEX" (sum is FNV-1a
 * 64 over the stream). The guest script compares the two sums and bad=0.
 */
#include "../ktest_util.h"

#include <netinet/tcp.h>

static void die(const char *what)
{
	fprintf(stderr, "zc_stream: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int server(int argc, char **argv)
{
	int port = atoi(argv[2]), rcvbuf = 0, lag = 0, count = 1, one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET };
	static uint8_t buf[1 << 18];
	int ls, i;

	for (i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rcvbuf"))
			rcvbuf = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--lag-ms"))
			lag = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--count"))
			count = atoi(argv[i + 1]);
	}
	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (rcvbuf)
		setsockopt(ls, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	a.sin_port = htons(port);
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 8))
		die("bind/listen");
	printf("zc_stream: listening on %d\n", port);
	fflush(stdout);
	while (count--) {
		uint64_t pos = 0, bad = 0, h = DXT_FNV_SEED;
		int s = accept(ls, NULL, NULL);
		ssize_t n;

		if (s < 0)
			die("accept");
		for (;;) {
			n = read(s, buf, lag ? 65536 : sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				die("read");
			if (n == 0)
				break;
			for (i = 0; i < n; i++)
				bad += buf[i] != dxt_pattern(pos + i);
			h = dxt_fnv1a(h, buf, n);
			pos += n;
			if (lag)
				msleep(lag);
		}
		printf("zc_stream: server bytes=%llu bad=%llu sum=%016llx\n",
		       (unsigned long long)pos, (unsigned long long)bad,
		       (unsigned long long)h);
		fflush(stdout);
		close(s);
	}
	close(ls);
	return 0;
}

static int client(char **argv)
{
	uint64_t total = strtoull(argv[4], NULL, 0), pos = 0;
	size_t wsize = strtoul(argv[5], NULL, 0);
	uint64_t h = DXT_FNV_SEED;
	uint8_t *buf = malloc(wsize);
	int s, one = 1;

	if (!buf)
		die("malloc");
	s = dxt_connect(argv[2], argv[3]);
	if (s < 0)
		die("connect");
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (pos < total) {
		size_t n = total - pos < wsize ? total - pos : wsize, i, off = 0;

		for (i = 0; i < n; i++)
			buf[i] = dxt_pattern(pos + i);
		h = dxt_fnv1a(h, buf, n);
		while (off < n) {
			ssize_t w = write(s, buf + off, n - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				die("write");
			off += w;
		}
		pos += n;
	}
	shutdown(s, SHUT_WR);
	while (read(s, buf, wsize) > 0)
		;
	close(s);
	printf("zc_stream: client bytes=%llu sum=%016llx\n",
	       (unsigned long long)pos, (unsigned long long)h);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "server"))
		return server(argc, argv);
	if (argc == 6 && !strcmp(argv[1], "client"))
		return client(argv);
	fprintf(stderr, "usage: zc_stream server PORT [--rcvbuf N] [--lag-ms N] [--count K]\n"
		"       zc_stream client ADDR PORT BYTES WRITE_SIZE\n");
	return 2;
}
