// SPDX-License-Identifier: BSD-2-Clause
//
// Incremental HTTP/1.1 request parser (RFC 9112 subset for the services).
//
// Same model as resp.h: a byte-level state machine fed with slices in stream
// order, results as StreamRanges, the body skipped slice-wise and never
// copied. What it understands:
//   request line   METHOD SP request-target SP HTTP/1.x CRLF
//   headers        Content-Length (digits, duplicates must agree),
//                  Connection (close / keep-alive), Expect (100-continue),
//                  Transfer-Encoding (refused: 501, there is no chunked
//                  decoding), every other header is skipped
//   body           exactly Content-Length bytes
// Line ends are CRLF; a bare LF is accepted as a line end, a CR followed by
// anything else is an error. Obsolete line folding is refused (400).
//
// Limits: the request line plus headers (max_header_bytes, 431 when
// exceeded, 414 when the request line alone does), the body (max_body, 413).
// After an error the connection is answered with error_status() and closed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "daxnet/proto/chain.h"
#include "daxnet/proto/resp.h"  // ParseStatus, FeedResult

namespace daxnet::proto {

struct HttpLimits {
	std::uint32_t max_header_bytes = 8192;  ///< request line + headers + blank line
	std::uint64_t max_body = 64ull << 20;
};

enum class HttpMethod : std::uint8_t { other, get, head, post, put, del };

std::string_view to_string(HttpMethod m) noexcept;

struct HttpRequest {
	HttpMethod method = HttpMethod::other;
	StreamRange method_range{};
	StreamRange target{};        ///< request-target as sent (path?query)
	std::uint8_t version_minor = 1;  ///< HTTP/1.<minor>
	bool keep_alive = true;      ///< after Connection and version defaults
	bool expect_continue = false;
	bool has_content_length = false;
	std::uint64_t content_length = 0;
	StreamRange head{};          ///< request line + headers + blank line
	StreamRange body{};          ///< content_length bytes after head
};

class HttpParser {
public:
	explicit HttpParser(const HttpLimits& lim = {}) : lim_(lim) {}

	/// Consumes bytes from [p, p+n) at stream offset `off` until the
	/// request is complete, an error is found, or the bytes run out. It
	/// also stops with need_more right after the blank line that ends the
	/// headers, even when body bytes follow, so the caller can answer
	/// `Expect: 100-continue` (headers_complete()); feed the rest again.
	FeedResult feed(const std::byte* p, std::size_t n, std::uint64_t off) noexcept;
	FeedResult feed(const Slice& s, std::size_t from = 0) noexcept
	{
		return feed(s.data + from, s.len - from, s.stream_off + from);
	}

	const HttpRequest& request() const noexcept { return req_; }
	/// True once the blank line ending the headers has been consumed (the
	/// body may still be arriving: time to send "100 Continue").
	bool headers_complete() const noexcept { return state_ == State::body || state_ == State::done; }
	bool mid_request() const noexcept { return state_ != State::start; }

	/// After `error`: the status to answer (400, 413, 414, 431, 501, 505)
	/// and a one-line reason for the body.
	int error_status() const noexcept { return err_status_; }
	std::string_view error_message() const noexcept { return err_; }

	/// Forget the completed request; ready for the next one.
	void next() noexcept;

private:
	enum class State : std::uint8_t {
		start,
		method,
		target,
		version,
		reqline_lf,
		hdr_start,   // beginning of a header line (or the blank line)
		hdr_name,
		hdr_ows,     // after ':' before the value
		hdr_value,
		hdr_lf,      // after CR of a header line
		end_lf,      // after CR of the blank line
		body,
		done,
		failed,
	};
	enum class Hdr : std::uint8_t { other, content_length, connection, expect, transfer_encoding };

	FeedResult fail(std::size_t used, int status, const char* msg) noexcept;
	bool end_header() noexcept;  // false: error already set
	FeedResult finish_head(std::size_t used, std::uint64_t pos) noexcept;

	HttpLimits lim_;
	State state_ = State::start;
	HttpRequest req_{};
	Hdr hdr_ = Hdr::other;
	std::uint8_t tok_len_ = 0;   // bytes in tok_
	bool tok_over_ = false;      // token longer than tok_
	char tok_[32] = {};          // lower-cased short token (method, header name/value)
	std::uint64_t num_ = 0;      // Content-Length being parsed
	std::uint32_t digits_ = 0;
	bool num_bad_ = false;
	bool conn_close_ = false;
	bool conn_keep_ = false;
	std::uint64_t body_left_ = 0;
	int err_status_ = 0;
	const char* err_ = "";
};

}  // namespace daxnet::proto
