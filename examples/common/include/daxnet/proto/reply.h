// SPDX-License-Identifier: BSD-2-Clause
//
// Reply builders: RESP2 replies and HTTP/1.1 response heads, written into an
// OutBuf (a growable byte buffer that keeps its capacity across replies, so
// the steady state allocates nothing). Large payloads (stored values) are
// not written here: the caller writes the head with bulk_header() /
// http_head() and sends the payload from the buffers that hold it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace daxnet::proto {

class OutBuf {
public:
	OutBuf() { buf_.reserve(256); }

	std::size_t size() const noexcept { return len_; }
	bool empty() const noexcept { return len_ == 0; }
	const std::byte* data() const noexcept { return buf_.data(); }
	std::span<const std::byte> bytes() const noexcept { return {buf_.data(), len_}; }
	std::string_view view() const noexcept { return {reinterpret_cast<const char*>(buf_.data()), len_}; }
	void clear() noexcept { len_ = 0; }
	/// Drops what was appended after size() was `n` (a reply taken back).
	void truncate(std::size_t n) noexcept
	{
		if (n < len_)
			len_ = n;
	}
	/// When empty and holding more than `keep` bytes of capacity, gives
	/// the memory back (a large reply must not keep it for ever).
	void shrink(std::size_t keep) noexcept
	{
		if (len_ == 0 && buf_.size() > keep)
			std::vector<std::byte>().swap(buf_);
	}
	/// Drops the first n bytes (sent).
	void consume(std::size_t n) noexcept
	{
		if (n >= len_) {
			len_ = 0;
			return;
		}
		std::memmove(buf_.data(), buf_.data() + n, len_ - n);
		len_ -= n;
	}

	void append(const void* p, std::size_t n)
	{
		std::byte* d = grow(n);
		if (n)
			std::memcpy(d, p, n);
	}
	void append(std::string_view s) { append(s.data(), s.size()); }
	void append(std::span<const std::byte> s) { append(s.data(), s.size()); }
	void put(char c) { *grow(1) = static_cast<std::byte>(c); }
	void put_u64(std::uint64_t v);
	void put_i64(std::int64_t v);

	/// Reserves n bytes at the end and returns them (for in-place writes).
	std::byte* grow(std::size_t n)
	{
		if (len_ + n > buf_.size())
			buf_.resize(std::max(buf_.size() * 2, len_ + n));
		std::byte* d = buf_.data() + len_;
		len_ += n;
		return d;
	}

private:
	std::vector<std::byte> buf_;
	std::size_t len_ = 0;
};

// --- RESP2 -------------------------------------------------------------

namespace resp {

void simple(OutBuf& o, std::string_view s);        ///< +s\r\n
void error(OutBuf& o, std::string_view msg);       ///< -msg\r\n (msg starts with ERR, WRONGTYPE, ...)
void integer(OutBuf& o, std::int64_t v);           ///< :v\r\n
void bulk(OutBuf& o, std::string_view s);          ///< $len\r\ns\r\n
void bulk_header(OutBuf& o, std::uint64_t len);    ///< $len\r\n (payload and \r\n follow)
void crlf(OutBuf& o);                              ///< \r\n
void nil(OutBuf& o);                               ///< $-1\r\n
void array(OutBuf& o, std::uint64_t n);            ///< *n\r\n
void ok(OutBuf& o);                                ///< +OK\r\n

// RESP3 forms where Redis sends them (`resp3` false: the RESP2 equivalent).
void null(OutBuf& o, bool resp3);                  ///< _ or $-1
void null_array(OutBuf& o, bool resp3);            ///< _ or *-1
void map(OutBuf& o, std::uint64_t n, bool resp3);  ///< %n or *2n (n key/value pairs follow)
void set(OutBuf& o, std::uint64_t n, bool resp3);  ///< ~n or *n
void verbatim(OutBuf& o, std::string_view s, bool resp3);  ///< =len+4 txt:s or a bulk string
void boolean(OutBuf& o, bool v, bool resp3);       ///< #t/#f or :1/:0
void dbl(OutBuf& o, double v, bool resp3);         ///< ,v or a bulk string

/// -ERR unknown command 'cmd', with args beginning with: 'a' 'b' \r\n
/// (Redis 7's wording; `cmd` and args are cut to 128 bytes each as Redis does).
void unknown_command(OutBuf& o, std::string_view cmd, std::span<const std::string_view> args);
/// -ERR wrong number of arguments for 'cmd' command\r\n (cmd lower-cased)
void wrong_arity(OutBuf& o, std::string_view cmd);

}  // namespace resp

// --- HTTP/1.1 ----------------------------------------------------------

std::string_view http_reason(int status) noexcept;

/// Writes "HTTP/1.1 <status> <reason>\r\n" + Content-Type (when not empty)
/// + Content-Length + Connection + blank line. The body follows.
void http_head(OutBuf& o, int status, std::string_view content_type, std::uint64_t content_length,
	       bool keep_alive, std::string_view extra_headers = {});
/// A whole response with a small body.
void http_response(OutBuf& o, int status, std::string_view content_type, std::string_view body, bool keep_alive,
		   std::string_view extra_headers = {});

}  // namespace daxnet::proto
