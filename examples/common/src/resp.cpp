// SPDX-License-Identifier: BSD-2-Clause
#include "daxnet/proto/resp.h"

#include <cstdio>

namespace daxnet::proto {

namespace {

constexpr std::uint64_t kMaxNumber = (1ull << 62);

inline bool is_digit(std::byte b) noexcept
{
	return b >= std::byte{'0'} && b <= std::byte{'9'};
}

inline char printable(std::byte b) noexcept
{
	auto c = static_cast<unsigned char>(b);
	return (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
}

}  // namespace

void RespParser::next() noexcept
{
	state_ = State::start;
	args_.clear();
	if (args_.capacity() > 1024)
		std::vector<StreamRange>().swap(args_);  // a huge multibulk's vector goes back
	num_ = 0;
	neg_ = false;
	digits_ = 0;
	expected_ = 0;
	bulk_left_ = 0;
	quoted_ = false;
	line_ = {};
}

FeedResult RespParser::fail(std::size_t used, std::string msg, int limit) noexcept
{
	state_ = State::failed;
	limit_ = limit;
	try {
		err_ = std::move(msg);
	} catch (...) {
		err_.clear();
	}
	return {used, ParseStatus::error};
}

void RespParser::push_arg(StreamRange r) noexcept
{
	// Growth can only fail on exhausted memory; terminate then, as
	// everywhere else in the hot path.
	args_.push_back(r);
}

FeedResult RespParser::feed(const std::byte* p, std::size_t n, std::uint64_t off) noexcept
{
	std::size_t i = 0;
	while (i < n) {
		const std::byte b = p[i];
		const std::uint64_t pos = off + i;
		switch (state_) {
		case State::start:
			next();
			req_begin_ = pos;
			if (b == std::byte{'*'}) {
				state_ = State::mb_count;
			} else if (b == std::byte{'\n'} || b == std::byte{'\r'}) {
				// empty inline line (or the \r of one): ignored, as Redis does
			} else if (b == std::byte{' '} || b == std::byte{'\t'}) {
				state_ = State::inl_space;
			} else {
				cur_ = {pos, 0};
				state_ = State::inl_word;
				quoted_ = b == std::byte{'"'} || b == std::byte{'\''};
			}
			++i;
			break;

		case State::mb_count:
		case State::bulk_len:
			if (b == std::byte{'-'} && digits_ == 0 && !neg_) {
				neg_ = true;
			} else if (is_digit(b)) {
				num_ = num_ * 10 + static_cast<std::uint64_t>(b) - '0';
				if (++digits_ > 19 || num_ > kMaxNumber)
					return fail(i, state_ == State::mb_count ? "Protocol error: invalid multibulk length"
										 : "Protocol error: invalid bulk length");
			} else if (b == std::byte{'\r'} && digits_ > 0) {
				state_ = state_ == State::mb_count ? State::mb_count_lf : State::bulk_len_lf;
			} else {
				return fail(i, state_ == State::mb_count ? "Protocol error: invalid multibulk length"
									 : "Protocol error: invalid bulk length");
			}
			++i;
			break;

		case State::mb_count_lf:
			if (b != std::byte{'\n'})
				return fail(i, "Protocol error: invalid multibulk length");
			++i;
			if (neg_ || num_ == 0) {
				// *0 or *-1: an empty request, skipped
				state_ = State::start;
				break;
			}
			if (num_ > lim_.max_args)
				return fail(i, "Protocol error: invalid multibulk length", kProtoLimit);
			expected_ = num_;
			num_ = 0;
			digits_ = 0;
			state_ = State::bulk_dollar;
			break;

		case State::bulk_dollar:
			if (b != std::byte{'$'}) {
				char msg[64];
				std::snprintf(msg, sizeof msg, "Protocol error: expected '$', got '%c'", printable(b));
				return fail(i, msg);
			}
			num_ = 0;
			neg_ = false;
			digits_ = 0;
			state_ = State::bulk_len;
			++i;
			break;

		case State::bulk_len_lf: {
			if (b != std::byte{'\n'} || neg_)
				return fail(i, "Protocol error: invalid bulk length");
			++i;
			if (num_ > lim_.max_bulk)
				// Redis's wording (proto-max-bulk-len), refused at the
				// header: nothing of the value is received or pinned.
				return fail(i, "Protocol error: invalid bulk length", kProtoLimit);
			const std::uint64_t data_at = off + i;
			if (data_at + num_ + 2 - req_begin_ > lim_.max_request) {
				char msg[128];
				std::snprintf(msg, sizeof msg, "Protocol error: request exceeds the limit of %llu bytes",
					      static_cast<unsigned long long>(lim_.max_request));
				return fail(i, msg, kQueryLimit);
			}
			cur_ = {data_at, num_};
			bulk_left_ = num_;
			state_ = State::bulk_data;
			break;
		}

		case State::bulk_data: {
			// Skip the payload slice-wise: never look at value bytes.
			std::uint64_t take = n - i;
			if (take > bulk_left_)
				take = bulk_left_;
			i += static_cast<std::size_t>(take);
			bulk_left_ -= take;
			if (bulk_left_ == 0)
				state_ = State::bulk_cr;
			break;
		}

		case State::bulk_cr:
			if (b != std::byte{'\r'})
				return fail(i, "Protocol error: expected CRLF after bulk data");
			state_ = State::bulk_lf;
			++i;
			break;

		case State::bulk_lf:
			if (b != std::byte{'\n'})
				return fail(i, "Protocol error: expected CRLF after bulk data");
			++i;
			push_arg(cur_);
			if (args_.size() == expected_) {
				state_ = State::start;
				return {i, ParseStatus::done};
			}
			state_ = State::bulk_dollar;
			break;

		case State::inl_space:
		case State::inl_word: {
			if (pos - req_begin_ >= lim_.max_inline)
				return fail(i, "Protocol error: too big inline request", kProtoLimit);
			const bool sep = b == std::byte{' '} || b == std::byte{'\t'};
			const bool eol = b == std::byte{'\n'} || b == std::byte{'\r'};
			if (b == std::byte{'"'} || b == std::byte{'\''})
				quoted_ = true;
			if (eol)
				line_ = {req_begin_, pos - req_begin_};
			if (state_ == State::inl_word && (sep || eol)) {
				cur_.len = pos - cur_.off;
				if (args_.size() >= lim_.max_args)
					return fail(i, "Protocol error: too many arguments in inline request", kProtoLimit);
				push_arg(cur_);
			}
			++i;
			if (b == std::byte{'\r'}) {
				state_ = State::inl_lf;
			} else if (b == std::byte{'\n'}) {
				state_ = State::start;
				if (!args_.empty())
					return {i, ParseStatus::done};
			} else if (sep) {
				state_ = State::inl_space;
			} else if (state_ == State::inl_space) {
				cur_ = {pos, 0};
				state_ = State::inl_word;
			}
			break;
		}

		case State::inl_lf:
			if (b != std::byte{'\n'})
				return fail(i, "Protocol error: expected \\n after \\r in inline request");
			++i;
			state_ = State::start;
			if (!args_.empty())
				return {i, ParseStatus::done};
			break;

		case State::failed:
			return {i, ParseStatus::error};
		}
	}
	return {i, state_ == State::failed ? ParseStatus::error : ParseStatus::need_more};
}

namespace {

int hex_digit(char c) noexcept
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/// What the escape \e stands for in double quotes (Redis's sdssplitargs).
char unescape(char e) noexcept
{
	return e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
}

bool is_space(char c) noexcept
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

}  // namespace

bool split_inline(std::string_view line, std::vector<std::string>& out)
{
	out.clear();
	std::size_t i = 0;
	const std::size_t n = line.size();
	for (;;) {
		while (i < n && is_space(line[i]))
			++i;
		if (i == n)
			return true;
		std::string cur;
		bool dq = false, sq = false, done = false;
		while (!done) {
			if (dq || sq) {
				// Inside quotes: "..." knows \xHH and C escapes, '...' only \'.
				if (i == n)
					return false;
				const char c = line[i];
				if (dq && c == '\\' && i + 3 < n && line[i + 1] == 'x' && hex_digit(line[i + 2]) >= 0 &&
				    hex_digit(line[i + 3]) >= 0) {
					cur.push_back(static_cast<char>(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3])));
					i += 4;
				} else if (c == '\\' && i + 1 < n && (dq || line[i + 1] == '\'')) {
					const char e = line[i + 1];
					cur.push_back(dq ? unescape(e) : e);
					i += 2;
				} else if (c == (dq ? '"' : '\'')) {
					if (i + 1 < n && !is_space(line[i + 1]))
						return false;
					done = true;
					++i;
				} else {
					cur.push_back(c);
					++i;
				}
			} else {
				if (i == n || is_space(line[i])) {
					done = true;
				} else if (line[i] == '"') {
					dq = true;
					++i;
				} else if (line[i] == '\'') {
					sq = true;
					++i;
				} else {
					cur.push_back(line[i]);
					++i;
				}
			}
		}
		out.push_back(std::move(cur));
	}
}

}  // namespace daxnet::proto
