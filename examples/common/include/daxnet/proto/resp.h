// SPDX-License-Identifier: BSD-2-Clause
//
// Incremental RESP2 request parser (the Redis client-to-server protocol).
//
// Accepts the two request forms Redis accepts:
//   multibulk  *<n>\r\n then n times $<len>\r\n<len bytes>\r\n
//   inline     words separated by spaces or tabs, ended by \n or \r\n;
//              a line with a quote character is flagged (inline_quoted()):
//              split it with split_inline(), Redis' quoting rules
// An empty inline line and a multibulk count <= 0 are skipped, as Redis does.
//
// The parser is a byte-level state machine fed with slices in stream order;
// it never needs bytes again once it has seen them and it never copies
// them. Arguments come out as StreamRanges (see chain.h): a bulk payload is
// skipped slice-wise, so a 1 MiB value costs one step per slice, not one per
// byte. Feeding one byte at a time works and gives the same result.
//
// Errors use Redis' own wording ("Protocol error: invalid bulk length"); the
// connection must be closed after one (Redis does the same), since the
// stream position is lost.
//
// Pure: no I/O, no allocation beyond the argument vector (which keeps its
// capacity across requests, up to 1024 arguments; a larger one is given
// back after its request).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daxnet/proto/chain.h"

namespace daxnet::proto {

struct RespLimits {
	std::uint32_t max_args = 1u << 20;         ///< multibulk count (Redis: 1024*1024)
	std::uint64_t max_bulk = 64ull << 20;      ///< one argument's bytes
	std::uint32_t max_inline = 64u << 10;      ///< inline request line (Redis: 64 KiB)
	std::uint64_t max_request = 256ull << 20;  ///< all bytes of one request
};

enum class ParseStatus : std::uint8_t {
	need_more,  ///< every byte given was consumed; feed more
	done,       ///< a request is complete: read args(), then next()
	error,      ///< protocol error: error_message(), then close
};

struct FeedResult {
	std::size_t used = 0;  ///< bytes consumed from the slice given
	ParseStatus status = ParseStatus::need_more;
};

class RespParser {
public:
	explicit RespParser(const RespLimits& lim = {}) : lim_(lim) { args_.reserve(8); }

	/// Consumes bytes from [p, p+n), which sit at stream offset `off`,
	/// until a request completes, an error is found, or the bytes run out.
	/// After `done`, the rest of the slice (p + used) is the next request.
	FeedResult feed(const std::byte* p, std::size_t n, std::uint64_t off) noexcept;
	FeedResult feed(const RxSlice& s, std::size_t from = 0) noexcept
	{
		return feed(s.data + from, s.len - from, s.stream_off + from);
	}

	/// The completed request's arguments (valid after `done` until next()).
	std::span<const StreamRange> args() const noexcept { return args_; }
	/// Stream offset of the current request's first byte.
	std::uint64_t request_begin() const noexcept { return req_begin_; }
	/// True while part of a request has been consumed (bytes are pending).
	bool mid_request() const noexcept { return state_ != State::start; }
	/// The completed request was an inline line holding a quote character:
	/// its args() are the raw words; split inline_line() instead.
	bool inline_quoted() const noexcept { return quoted_; }
	/// The completed inline request's line, without the line end.
	StreamRange inline_line() const noexcept { return line_; }
	/// Redis-style message without the leading "-ERR " (valid after `error`).
	std::string_view error_message() const noexcept { return err_; }
	/// The error was a limit, refused at the header before the bytes it
	/// announced arrived: kProtoLimit (argument count, bulk length, inline
	/// size) or kQueryLimit (the request's bytes, max_request); else 0.
	static constexpr int kProtoLimit = 1, kQueryLimit = 2;
	int limit_error() const noexcept { return limit_; }

	/// Forget the completed request; ready for the next one.
	void next() noexcept;

private:
	enum class State : std::uint8_t {
		start,       // first byte of a request decides the form
		mb_count,    // digits after '*'
		mb_count_lf,
		bulk_dollar, // expect '$'
		bulk_len,    // digits after '$'
		bulk_len_lf,
		bulk_data,
		bulk_cr,
		bulk_lf,
		inl_space,   // inline: between words
		inl_word,    // inline: inside a word
		inl_lf,      // inline: after '\r'
		failed,
	};

	FeedResult fail(std::size_t used, std::string msg, int limit = 0) noexcept;
	void push_arg(StreamRange r) noexcept;

	RespLimits lim_;
	State state_ = State::start;
	std::vector<StreamRange> args_;
	std::uint64_t req_begin_ = 0;
	std::uint64_t num_ = 0;       // number being parsed
	bool neg_ = false;            // number had a leading '-'
	std::uint32_t digits_ = 0;
	std::uint64_t expected_ = 0;  // multibulk count
	std::uint64_t bulk_left_ = 0;
	StreamRange cur_{};           // argument being read
	StreamRange line_{};          // inline: the line
	bool quoted_ = false;         // inline: the line holds a quote
	int limit_ = 0;               // the error was a limit (kProtoLimit, kQueryLimit)
	std::string err_;
};

/// Splits an inline request line the way Redis does (sdssplitargs rules):
/// words separated by white space; "double quotes" with \n \r \t \b \a
/// \xHH and \<char> escapes; 'single quotes' with \' ; a closing quote
/// must be followed by white space or the end. Returns false on unbalanced
/// quotes (Redis: "Protocol error: unbalanced quotes in request").
bool split_inline(std::string_view line, std::vector<std::string>& out);

}  // namespace daxnet::proto
