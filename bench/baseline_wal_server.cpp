// SPDX-License-Identifier: BSD-2-Clause
//
// baseline-wal: the conventional two-copy WAL server that daxnet-httpd's
// `wal` workload is measured against (docs/benchmarks.md).
//
// One thread, level-triggered epoll, non-blocking sockets. Each ready
// connection gets one recv() into a DRAM buffer (copy 1: kernel -> DRAM);
// every complete POST body is then memcpy'd into a log file mapped with
// libpmem2 behind a 16-byte record header {len, crc32c, seq} (copy 2:
// DRAM -> log). After all ready connections of one epoll_wait batch are
// handled, the batch's log range is made durable with the same primitive
// daxnet's PersistDomain uses: at CACHE_LINE/BYTE granularity one
// pmem2 flush per record plus one drain per batch; at PAGE granularity
// (ordinary files) one msync (pmem2 flush) of the merged batch range. Only
// then are the replies sent (group commit), one send() per connection.
//
// Counters count what the CPU copies the same way daxnet's services do:
// bytes received (kernel -> DRAM), bytes logged (DRAM -> log) and bytes sent
// (DRAM -> kernel) make up cpu_copied_bytes.
//
// GET /stats answers this server's own counters as JSON; any other GET
// answers the rpc reply (151 bytes with a 64-byte body). The log wraps
// around when full: it is a benchmark sink, never read back.
//
// Usage: baseline_wal_server --log FILE [--log-size 1G] [--port 0]
//                            [--bind 127.0.0.1] [--no-crc]

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpmem2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

struct Counters {
	std::uint64_t requests = 0;       // replies sent (POST + GET)
	std::uint64_t persisted = 0;      // POST bodies made durable
	std::uint64_t epoll_waits = 0;
	std::uint64_t recv_calls = 0;
	std::uint64_t send_calls = 0;
	std::uint64_t accept_calls = 0;
	std::uint64_t other_syscalls = 0; // epoll_ctl, close, setsockopt, fcntl
	std::uint64_t bytes_received = 0; // copied by the kernel into DRAM
	std::uint64_t bytes_logged = 0;   // payload copied by us into the log
	std::uint64_t bytes_sent = 0;     // replies, copied by the kernel out of DRAM
	std::uint64_t flushes = 0;        // pmem2 flush calls
	std::uint64_t msyncs = 0;         // of which msync syscalls (PAGE granularity)
	std::uint64_t drains = 0;         // fences, one per batch with appends
	std::uint64_t batches = 0;
};

Counters g_ctr;

constexpr std::size_t kRecvBuf = 64 * 1024;
constexpr std::string_view kBody = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static_assert(kBody.size() == 64);

// The PASTE rpc/wal reply: 151 bytes, 64 of them body.
std::string make_reply()
{
	std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\nServer: baseline-wal";
	const std::size_t want = 151 - kBody.size() - 4;  // 4 = "\r\n\r\n"
	while (head.size() < want)
		head += ' ';
	return head + "\r\n\r\n" + std::string(kBody);
}

std::uint32_t crc32c_sw(const unsigned char* p, std::size_t n, std::uint32_t crc)
{
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(const unsigned char* p, std::size_t n, std::uint32_t crc)
{
	while (n >= 8) {
		std::uint64_t v;
		std::memcpy(&v, p, 8);
		crc = static_cast<std::uint32_t>(_mm_crc32_u64(crc, v));
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = _mm_crc32_u8(crc, *p++);
	return crc;
}
#endif

// CRC32C like daxnet's WAL records: SSE4.2 when the CPU has it.
std::uint32_t crc32c(const void* data, std::size_t n)
{
	const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
	static const bool hw = __builtin_cpu_supports("sse4.2");
	if (hw)
		return ~crc32c_hw(p, n, ~0u);
#endif
	return ~crc32c_sw(p, n, ~0u);
}

struct RecordHeader {
	std::uint32_t len;
	std::uint32_t crc;
	std::uint64_t seq;
};
static_assert(sizeof(RecordHeader) == 16);

class Log {
public:
	bool open(const char* path, std::uint64_t size)
	{
		fd_ = ::open(path, O_RDWR | O_CREAT, 0644);
		if (fd_ < 0)
			return fail("open");
		struct stat st {};
		if (fstat(fd_, &st) != 0)
			return fail("fstat");
		if (static_cast<std::uint64_t>(st.st_size) < size && ftruncate(fd_, static_cast<off_t>(size)) != 0)
			return fail("ftruncate");
		pmem2_config* cfg = nullptr;
		pmem2_source* src = nullptr;
		if (pmem2_config_new(&cfg) || pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE) ||
		    pmem2_source_from_fd(&src, fd_) || pmem2_map_new(&map_, cfg, src)) {
			std::fprintf(stderr, "baseline-wal: pmem2: %s\n", pmem2_errormsg());
			return false;
		}
		pmem2_source_delete(&src);
		pmem2_config_delete(&cfg);
		base_ = static_cast<char*>(pmem2_map_get_address(map_));
		size_ = pmem2_map_get_size(map_);
		gran_ = pmem2_map_get_store_granularity(map_);
		flush_ = pmem2_get_flush_fn(map_);
		drain_ = pmem2_get_drain_fn(map_);
		return true;
	}

	const char* granularity() const
	{
		switch (gran_) {
		case PMEM2_GRANULARITY_BYTE: return "byte";
		case PMEM2_GRANULARITY_CACHE_LINE: return "cache_line";
		default: return "page";
		}
	}

	// Copy 2: header + body into the log at the tail (wrapping when full).
	void append(const char* body, std::uint32_t len, bool with_crc)
	{
		const std::size_t need = sizeof(RecordHeader) + ((len + 15u) & ~15u);
		if (tail_ + need > size_) {
			flush_range();  // the part before the wrap belongs to this batch too
			tail_ = 0;
			batch_start_ = 0;
		}
		RecordHeader h{len, with_crc ? crc32c(body, len) : 0u, ++seq_};
		std::memcpy(base_ + tail_, &h, sizeof h);
		std::memcpy(base_ + tail_ + sizeof h, body, len);
		if (gran_ != PMEM2_GRANULARITY_PAGE) {
			flush_(base_ + tail_, sizeof h + len);
			g_ctr.flushes++;
		}
		tail_ += need;
		g_ctr.bytes_logged += len;
		dirty_ = true;
	}

	// End of an event-loop batch: everything appended is durable on return.
	void commit()
	{
		if (!dirty_)
			return;
		flush_range();
		drain_();
		g_ctr.drains++;
		dirty_ = false;
		batch_start_ = tail_;
	}

private:
	void flush_range()
	{
		if (gran_ == PMEM2_GRANULARITY_PAGE && tail_ > batch_start_) {
			flush_(base_ + batch_start_, tail_ - batch_start_);  // one msync
			g_ctr.flushes++;
			g_ctr.msyncs++;
		}
	}

	bool fail(const char* what)
	{
		std::fprintf(stderr, "baseline-wal: %s: %s\n", what, std::strerror(errno));
		return false;
	}

	int fd_ = -1;
	pmem2_map* map_ = nullptr;
	char* base_ = nullptr;
	std::size_t size_ = 0;
	pmem2_granularity gran_ = PMEM2_GRANULARITY_PAGE;
	pmem2_flush_fn flush_ = nullptr;
	pmem2_drain_fn drain_ = nullptr;
	std::size_t tail_ = 0;
	std::size_t batch_start_ = 0;
	std::uint64_t seq_ = 0;
	bool dirty_ = false;
};

struct Conn {
	int fd = -1;
	std::vector<char> in;      // DRAM receive buffer (copy 1 lands here)
	std::size_t have = 0;
	std::string out;           // replies waiting for the batch's commit / EPOLLOUT
	bool want_out = false;
	bool dead = false;
};

bool ieq_prefix(std::string_view s, std::string_view p)
{
	if (s.size() < p.size())
		return false;
	for (std::size_t i = 0; i < p.size(); i++)
		if ((s[i] | 0x20) != (p[i] | 0x20))
			return false;
	return true;
}

std::string stats_json()
{
	const Counters& c = g_ctr;
	const std::uint64_t syscalls =
	    c.epoll_waits + c.recv_calls + c.send_calls + c.accept_calls + c.other_syscalls + c.msyncs;
	const std::pair<const char*, std::uint64_t> fields[] = {
	    {"requests", c.requests},         {"persisted", c.persisted},
	    {"epoll_waits", c.epoll_waits},   {"recv_calls", c.recv_calls},
	    {"send_calls", c.send_calls},     {"accept_calls", c.accept_calls},
	    {"other_syscalls", c.other_syscalls}, {"syscalls", syscalls},
	    {"bytes_received", c.bytes_received}, {"bytes_logged", c.bytes_logged},
	    {"bytes_sent", c.bytes_sent},
	    {"cpu_copied_bytes", c.bytes_received + c.bytes_logged + c.bytes_sent},
	    {"flushes", c.flushes},           {"msyncs", c.msyncs},
	    {"fences", c.drains},             {"batches", c.batches},
	};
	std::string s = "{";
	for (const auto& [name, value] : fields) {
		if (s.size() > 1)
			s += ',';
		s += '"';
		s += name;
		s += "\":";
		s += std::to_string(value);
	}
	return s + "}";
}

class Server {
public:
	Server(Log& log, bool crc) : log_(log), crc_(crc), reply_(make_reply()) {}

	bool listen_on(const char* bind_addr, int port)
	{
		lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;
		setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		sockaddr_in a{};
		a.sin_family = AF_INET;
		a.sin_port = htons(static_cast<std::uint16_t>(port));
		if (inet_pton(AF_INET, bind_addr, &a.sin_addr) != 1) {
			std::fprintf(stderr, "baseline-wal: bad --bind %s\n", bind_addr);
			return false;
		}
		if (bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd_, 4096) != 0) {
			std::fprintf(stderr, "baseline-wal: bind/listen %s:%d: %s\n", bind_addr, port, std::strerror(errno));
			return false;
		}
		socklen_t al = sizeof a;
		getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &al);
		port_ = ntohs(a.sin_port);
		ep_ = epoll_create1(EPOLL_CLOEXEC);
		epoll_event ev{};
		ev.events = EPOLLIN;
		ev.data.ptr = nullptr;
		epoll_ctl(ep_, EPOLL_CTL_ADD, lfd_, &ev);
		return true;
	}

	int port() const { return port_; }

	void run()
	{
		std::vector<epoll_event> evs(1024);
		std::vector<Conn*> touched;
		while (!g_stop) {
			int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 500);
			g_ctr.epoll_waits++;
			if (n < 0) {
				if (errno == EINTR)
					continue;
				std::perror("epoll_wait");
				return;
			}
			touched.clear();
			for (int i = 0; i < n; i++) {
				auto* c = static_cast<Conn*>(evs[i].data.ptr);
				if (c == nullptr) {
					accept_all();
					continue;
				}
				if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
					on_readable(c);
				if (!c->dead && (evs[i].events & EPOLLOUT))
					flush_out(c);
				touched.push_back(c);
			}
			// Group commit: one drain for the whole batch, then the replies.
			log_.commit();
			g_ctr.batches++;
			for (Conn* c : touched) {
				if (!c->dead && !c->out.empty() && !c->want_out)
					flush_out(c);
			}
			for (Conn* c : touched) {
				if (c->dead && c->fd >= 0) {
					::close(c->fd);
					g_ctr.other_syscalls++;
					c->fd = -1;
					graveyard_.push_back(c);
				}
			}
			if (graveyard_.size() > 256) {
				for (Conn* c : graveyard_)
					delete c;
				graveyard_.clear();
			}
		}
	}

private:
	void accept_all()
	{
		for (;;) {
			int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
			g_ctr.accept_calls++;
			if (fd < 0)
				return;
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			auto* c = new Conn;
			c->fd = fd;
			c->in.resize(kRecvBuf);
			epoll_event ev{};
			ev.events = EPOLLIN;
			ev.data.ptr = c;
			epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
			g_ctr.other_syscalls += 2;
		}
	}

	void on_readable(Conn* c)
	{
		if (c->have == c->in.size())
			c->in.resize(c->in.size() * 2);  // a request larger than the buffer
		ssize_t r = recv(c->fd, c->in.data() + c->have, c->in.size() - c->have, 0);
		g_ctr.recv_calls++;
		if (r <= 0) {
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			c->dead = true;
			return;
		}
		g_ctr.bytes_received += static_cast<std::uint64_t>(r);
		c->have += static_cast<std::size_t>(r);
		parse(c);
	}

	// Handles every complete request in c->in; keeps a partial one.
	void parse(Conn* c)
	{
		std::size_t pos = 0;
		for (;;) {
			std::string_view buf(c->in.data() + pos, c->have - pos);
			std::size_t hend = buf.find("\r\n\r\n");
			if (hend == std::string_view::npos)
				break;
			std::string_view head = buf.substr(0, hend + 2);
			std::size_t clen = 0;
			for (std::size_t l = head.find("\r\n"); l != std::string_view::npos && l + 2 < head.size();) {
				std::size_t e = head.find("\r\n", l + 2);
				std::string_view line = head.substr(l + 2, e - l - 2);
				if (ieq_prefix(line, "content-length:"))
					clen = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
				l = e;
			}
			const std::size_t total = hend + 4 + clen;
			if (buf.size() < total)
				break;  // body still arriving
			if (head.starts_with("POST")) {
				log_.append(buf.data() + hend + 4, static_cast<std::uint32_t>(clen), crc_);
				g_ctr.persisted++;
				c->out += reply_;
			} else if (head.starts_with("GET /stats")) {
				std::string js = stats_json();
				c->out += "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
				          std::to_string(js.size()) + "\r\n\r\n" + js;
			} else {
				c->out += reply_;
			}
			g_ctr.requests++;
			pos += total;
		}
		if (pos > 0) {
			std::memmove(c->in.data(), c->in.data() + pos, c->have - pos);
			c->have -= pos;
		}
	}

	void flush_out(Conn* c)
	{
		while (!c->out.empty()) {
			ssize_t w = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
			g_ctr.send_calls++;
			if (w < 0) {
				if (errno == EAGAIN) {
					set_out(c, true);
					return;
				}
				c->dead = true;
				return;
			}
			g_ctr.bytes_sent += static_cast<std::uint64_t>(w);
			c->out.erase(0, static_cast<std::size_t>(w));
		}
		set_out(c, false);
	}

	void set_out(Conn* c, bool on)
	{
		if (c->want_out == on)
			return;
		c->want_out = on;
		epoll_event ev{};
		ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
		ev.data.ptr = c;
		epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
		g_ctr.other_syscalls++;
	}

	Log& log_;
	bool crc_;
	std::string reply_;
	int lfd_ = -1;
	int ep_ = -1;
	int port_ = 0;
	std::vector<Conn*> graveyard_;
};

std::uint64_t parse_size(const char* s)
{
	char* end = nullptr;
	std::uint64_t v = std::strtoull(s, &end, 10);
	switch (end && *end ? (*end | 0x20) : 0) {
	case 'k': return v << 10;
	case 'm': return v << 20;
	case 'g': return v << 30;
	default: return v;
	}
}

}  // namespace

int main(int argc, char** argv)
{
	const char* log_path = nullptr;
	const char* bind_addr = "127.0.0.1";
	std::uint64_t log_size = 1ull << 30;
	int port = 0;
	bool crc = true;
	for (int i = 1; i < argc; i++) {
		std::string_view a = argv[i];
		auto next = [&]() -> const char* {
			if (i + 1 >= argc) {
				std::fprintf(stderr, "baseline-wal: %s needs a value\n", argv[i]);
				std::exit(2);
			}
			return argv[++i];
		};
		if (a == "--log")
			log_path = next();
		else if (a == "--log-size")
			log_size = parse_size(next());
		else if (a == "--port")
			port = std::atoi(next());
		else if (a == "--bind")
			bind_addr = next();
		else if (a == "--no-crc")
			crc = false;
		else {
			std::fprintf(stderr,
			             "usage: %s --log FILE [--log-size 1G] [--port 0] [--bind 127.0.0.1] [--no-crc]\n",
			             argv[0]);
			return 2;
		}
	}
	if (log_path == nullptr) {
		std::fprintf(stderr, "baseline-wal: --log FILE is required\n");
		return 2;
	}
	rlimit rl{};
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct sigaction sa {};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, nullptr);
	sigaction(SIGTERM, &sa, nullptr);
	signal(SIGPIPE, SIG_IGN);

	Log log;
	if (!log.open(log_path, log_size))
		return 1;
	Server srv(log, crc);
	if (!srv.listen_on(bind_addr, port))
		return 1;
	std::printf("baseline-wal 0.1.0: transport=epoll log=%s granularity=%s crc=%s http=%s:%d\n", log_path,
	            log.granularity(), crc ? "yes" : "no", bind_addr, srv.port());
	std::fflush(stdout);
	srv.run();
	std::printf("baseline-wal: stopped: %s\n", stats_json().c_str());
	return 0;
}
