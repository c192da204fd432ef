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
//                  Transfer-Encoding: chunked (only when
//                  HttpLimits::allow_chunked; otherwise, and for any other
//                  coding, 501), every other header is skipped
//   body           exactly Content-Length bytes, or chunked: the chunks'
//                  data as StreamRanges in place (body_ranges(); sizes in
//                  hex, extensions and trailers skipped), never reassembled
// Line ends are CRLF; a bare LF is accepted as a line end, a CR followed by
// anything else is an error. Obsolete line folding is refused (400).
//
// Limits: the request line plus headers (max_header_bytes, 431 when
// exceeded, 414 when the request line alone does), the body (max_body, 413).
// After an error the connection is answered with error_status() and closed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "daxnet/proto/chain.h"
#include "daxnet/proto/resp.h"  // ParseStatus, FeedResult

namespace daxnet::proto {

struct HttpLimits {
	std::uint32_t max_header_bytes = 8192;  ///< request line + headers + blank line (and trailers)
	std::uint64_t max_body = 64ull << 20;   ///< chunked: the sum of the chunks
	bool allow_chunked = false;             ///< accept Transfer-Encoding: chunked
	std::uint32_t max_chunks = 4096;        ///< chunks in one request (413 beyond)
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
	std::uint64_t content_length = 0;  ///< chunked: the decoded length, once done
	bool chunked = false;        ///< Transfer-Encoding: chunked
	StreamRange head{};          ///< request line + headers + blank line
	StreamRange body{};          ///< content_length bytes after head; chunked:
				     ///< from the first chunk-size line to the end
				     ///< of the trailers (encoded: use body_ranges())
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
	FeedResult feed(const RxSlice& s, std::size_t from = 0) noexcept
	{
		return feed(s.data + from, s.len - from, s.stream_off + from);
	}

	const HttpRequest& request() const noexcept { return req_; }
	/// The body's bytes as stream ranges, in order: one range (the body)
	/// with Content-Length, one per chunk when chunked; empty when none.
	std::span<const StreamRange> body_ranges() const noexcept
	{
		if (req_.chunked)
			return {chunks_.data(), chunks_.size()};
		return req_.body.len ? std::span<const StreamRange>(&req_.body, 1) : std::span<const StreamRange>();
	}
	/// True once the blank line ending the headers has been consumed (the
	/// body may still be arriving: time to send "100 Continue").
	bool headers_complete() const noexcept { return state_ >= State::body && state_ != State::failed; }
	bool mid_request() const noexcept { return state_ != State::start; }

	/// After `error`: the status to answer (400, 413, 414, 431, 501, 505)
	/// and a one-line reason for the body.
	int error_status() const noexcept { return err_status_; }
	/// The error was a size limit (413, 414, 431), not malformed input.
	bool limit_error() const noexcept { return err_status_ == 413 || err_status_ == 414 || err_status_ == 431; }
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
		chunk_size,   // hex digits of a chunk-size line
		chunk_ext,    // ;extensions up to the line end
		chunk_size_lf,
		chunk_data,
		chunk_data_end,  // CRLF after a chunk's data
		chunk_data_lf,
		trailer_start,   // beginning of a trailer line (or the final blank line)
		trailer_line,
		trailer_end_lf,
		done,
		failed,
	};
	enum class Hdr : std::uint8_t { other, content_length, connection, expect, transfer_encoding };

	FeedResult fail(std::size_t used, int status, const char* msg) noexcept;
	bool end_header() noexcept;  // false: error already set
	FeedResult finish_head(std::size_t used, std::uint64_t pos) noexcept;
	FeedResult chunked_done(std::size_t used, std::uint64_t pos) noexcept;

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
	std::uint64_t body_left_ = 0;   // also: data left in the current chunk
	std::uint64_t chunked_total_ = 0;
	std::uint64_t trailer_bytes_ = 0;
	std::vector<StreamRange> chunks_;
	int err_status_ = 0;
	const char* err_ = "";
};

}  // namespace daxnet::proto
