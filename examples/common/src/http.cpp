// SPDX-License-Identifier: BSD-2-Clause
#include "daxnet/proto/http.h"

#include <cstring>

namespace daxnet::proto {

namespace {

inline char lower(char c) noexcept
{
	return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// RFC 9110 tchar
inline bool is_tchar(char c) noexcept
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

inline bool is_vchar_or_obs(unsigned char c) noexcept
{
	return c >= 0x21 && c != 0x7f;
}

}  // namespace

std::string_view to_string(HttpMethod m) noexcept
{
	switch (m) {
	case HttpMethod::get: return "GET";
	case HttpMethod::head: return "HEAD";
	case HttpMethod::post: return "POST";
	case HttpMethod::put: return "PUT";
	case HttpMethod::del: return "DELETE";
	case HttpMethod::other: break;
	}
	return "OTHER";
}

void HttpParser::next() noexcept
{
	state_ = State::start;
	req_ = HttpRequest{};
	hdr_ = Hdr::other;
	tok_len_ = 0;
	tok_over_ = false;
	num_ = 0;
	digits_ = 0;
	num_bad_ = false;
	conn_close_ = false;
	conn_keep_ = false;
	body_left_ = 0;
	chunked_total_ = 0;
	trailer_bytes_ = 0;
	chunks_.clear();
	if (chunks_.capacity() > 1024)
		std::vector<StreamRange>().swap(chunks_);  // a many-chunk body's ranges go back
}

FeedResult HttpParser::fail(std::size_t used, int status, const char* msg) noexcept
{
	state_ = State::failed;
	err_status_ = status;
	err_ = msg;
	return {used, ParseStatus::error};
}

bool HttpParser::end_header() noexcept
{
	// trim trailing OWS kept in tok_
	while (tok_len_ > 0 && (tok_[tok_len_ - 1] == ' ' || tok_[tok_len_ - 1] == '\t'))
		--tok_len_;
	const std::string_view v(tok_, tok_len_);
	switch (hdr_) {
	case Hdr::content_length:
		if (num_bad_ || digits_ == 0) {
			err_status_ = 400;
			err_ = "invalid Content-Length";
			return false;
		}
		if (req_.has_content_length && req_.content_length != num_) {
			err_status_ = 400;
			err_ = "conflicting Content-Length headers";
			return false;
		}
		req_.has_content_length = true;
		req_.content_length = num_;
		break;
	case Hdr::connection:
		if (!tok_over_) {
			if (v.find("close") != std::string_view::npos)
				conn_close_ = true;
			if (v.find("keep-alive") != std::string_view::npos)
				conn_keep_ = true;
		}
		break;
	case Hdr::expect:
		if (!tok_over_ && v == "100-continue")
			req_.expect_continue = true;
		break;
	case Hdr::transfer_encoding:
		if (!lim_.allow_chunked) {
			err_status_ = 501;
			err_ = "Transfer-Encoding is not supported; send Content-Length";
			return false;
		}
		if (tok_over_ || v != "chunked" || req_.chunked) {
			err_status_ = 501;
			err_ = "only Transfer-Encoding: chunked is supported";
			return false;
		}
		req_.chunked = true;
		break;
	case Hdr::other:
		break;
	}
	hdr_ = Hdr::other;
	tok_len_ = 0;
	tok_over_ = false;
	return true;
}

FeedResult HttpParser::finish_head(std::size_t used, std::uint64_t pos) noexcept
{
	req_.head.len = pos - req_.head.off;
	if (req_.version_minor == 0)
		req_.keep_alive = conn_keep_ && !conn_close_;
	else
		req_.keep_alive = !conn_close_;
	if (req_.chunked) {
		// RFC 9112 §6.1: a sender must not send both; refuse (smuggling).
		if (req_.has_content_length)
			return fail(used, 400, "both Content-Length and Transfer-Encoding");
		req_.body = {pos, 0};
		num_ = 0;
		digits_ = 0;
		state_ = State::chunk_size;
		return {used, ParseStatus::need_more};
	}
	if (req_.content_length > lim_.max_body)
		return fail(used, 413, "request body exceeds the size limit");
	req_.body = {pos, req_.content_length};
	body_left_ = req_.content_length;
	if (body_left_ == 0) {
		state_ = State::done;
		return {used, ParseStatus::done};
	}
	state_ = State::body;
	return {used, ParseStatus::need_more};
}

FeedResult HttpParser::chunked_done(std::size_t used, std::uint64_t pos) noexcept
{
	req_.body.len = pos - req_.body.off;
	req_.content_length = chunked_total_;
	state_ = State::done;
	return {used, ParseStatus::done};
}

FeedResult HttpParser::feed(const std::byte* p, std::size_t n, std::uint64_t off) noexcept
{
	std::size_t i = 0;
	while (i < n) {
		const char c = static_cast<char>(p[i]);
		const std::uint64_t pos = off + i;
		if (state_ < State::body && state_ != State::start && pos - req_.head.off >= lim_.max_header_bytes)
			return state_ <= State::reqline_lf ? fail(i, 414, "request line too long")
							   : fail(i, 431, "request headers too large");
		switch (state_) {
		case State::start:
			if (c == '\r' || c == '\n') {
				// RFC 9112 §2.2: ignore empty lines before a request line
				++i;
				break;
			}
			next();
			req_.head.off = pos;
			req_.method_range.off = pos;
			state_ = State::method;
			break;

		case State::method:
			if (c == ' ') {
				req_.method_range.len = pos - req_.method_range.off;
				const std::string_view m(tok_, tok_over_ ? 0 : tok_len_);
				if (m.empty())
					return fail(i, 400, "empty method");
				req_.method = m == "GET"      ? HttpMethod::get
					      : m == "HEAD"   ? HttpMethod::head
					      : m == "POST"   ? HttpMethod::post
					      : m == "PUT"    ? HttpMethod::put
					      : m == "DELETE" ? HttpMethod::del
							      : HttpMethod::other;
				tok_len_ = 0;
				tok_over_ = false;
				req_.target.off = pos + 1;
				state_ = State::target;
			} else if (is_tchar(c)) {
				if (tok_len_ < sizeof tok_)
					tok_[tok_len_++] = c;
				else
					tok_over_ = true;
			} else {
				return fail(i, 400, "malformed request line");
			}
			++i;
			break;

		case State::target:
			if (c == ' ') {
				req_.target.len = pos - req_.target.off;
				if (req_.target.len == 0)
					return fail(i, 400, "empty request target");
				state_ = State::version;
			} else if (!is_vchar_or_obs(static_cast<unsigned char>(c))) {
				return fail(i, 400, "malformed request target");
			}
			++i;
			break;

		case State::version:
			if (c == '\r' || c == '\n') {
				const std::string_view v(tok_, tok_over_ ? 0 : tok_len_);
				if (v.size() != 8 || v.substr(0, 5) != "HTTP/")
					return fail(i, 400, "malformed HTTP version");
				if (v[5] != '1' || v[6] != '.' || (v[7] != '0' && v[7] != '1'))
					return fail(i, 505, "HTTP version not supported");
				req_.version_minor = static_cast<std::uint8_t>(v[7] - '0');
				tok_len_ = 0;
				tok_over_ = false;
				state_ = c == '\r' ? State::reqline_lf : State::hdr_start;
			} else {
				if (tok_len_ < sizeof tok_)
					tok_[tok_len_++] = c;
				else
					tok_over_ = true;
			}
			++i;
			break;

		case State::reqline_lf:
		case State::hdr_lf:
			if (c != '\n')
				return fail(i, 400, "CR not followed by LF");
			++i;
			state_ = State::hdr_start;
			break;

		case State::hdr_start:
			if (c == '\r') {
				state_ = State::end_lf;
				++i;
				break;
			}
			if (c == '\n')
				return finish_head(i + 1, pos + 1);
			if (c == ' ' || c == '\t')
				return fail(i, 400, "obsolete header line folding");
			hdr_ = Hdr::other;
			tok_len_ = 0;
			tok_over_ = false;
			state_ = State::hdr_name;
			break;

		case State::hdr_name:
			if (c == ':') {
				if (tok_len_ == 0)
					return fail(i, 400, "empty header name");
				const std::string_view name(tok_, tok_over_ ? 0 : tok_len_);
				hdr_ = name == "content-length"	     ? Hdr::content_length
				       : name == "connection"	     ? Hdr::connection
				       : name == "expect"	     ? Hdr::expect
				       : name == "transfer-encoding" ? Hdr::transfer_encoding
								     : Hdr::other;
				tok_len_ = 0;
				tok_over_ = false;
				num_ = 0;
				digits_ = 0;
				num_bad_ = false;
				state_ = State::hdr_ows;
			} else if (is_tchar(c)) {
				if (tok_len_ < sizeof tok_)
					tok_[tok_len_++] = lower(c);
				else
					tok_over_ = true;
			} else {
				return fail(i, 400, "malformed header name");
			}
			++i;
			break;

		case State::hdr_ows:
			if (c == ' ' || c == '\t') {
				++i;
				break;
			}
			state_ = State::hdr_value;
			break;

		case State::hdr_value:
			if (c == '\r' || c == '\n') {
				if (!end_header())
					return fail(i, err_status_, err_);
				state_ = c == '\r' ? State::hdr_lf : State::hdr_start;
				++i;
				break;
			}
			if (c == '\0')
				return fail(i, 400, "NUL in header value");
			if (hdr_ == Hdr::content_length) {
				if (c >= '0' && c <= '9' && tok_len_ == 0) {
					num_ = num_ * 10 + static_cast<std::uint64_t>(c - '0');
					if (++digits_ > 18)
						num_bad_ = true;
				} else if (c == ' ' || c == '\t') {
					tok_[0] = ' ';
					tok_len_ = 1;  // trailing OWS: no digits may follow
				} else {
					num_bad_ = true;
				}
			} else if (hdr_ != Hdr::other) {
				if (tok_len_ < sizeof tok_)
					tok_[tok_len_++] = lower(c);
				else
					tok_over_ = true;
			}
			++i;
			break;

		case State::end_lf:
			if (c != '\n')
				return fail(i, 400, "CR not followed by LF");
			return finish_head(i + 1, pos + 1);

		case State::body: {
			std::uint64_t take = n - i;
			if (take > body_left_)
				take = body_left_;
			i += static_cast<std::size_t>(take);
			body_left_ -= take;
			if (body_left_ == 0) {
				state_ = State::done;
				return {i, ParseStatus::done};
			}
			break;
		}

		case State::chunk_size: {
			int h = (c >= '0' && c <= '9')	 ? c - '0'
				: (c >= 'a' && c <= 'f') ? c - 'a' + 10
				: (c >= 'A' && c <= 'F') ? c - 'A' + 10
							 : -1;
			if (h >= 0) {
				if (++digits_ > 15)
					return fail(i, 413, "chunk size too large");
				num_ = num_ * 16 + static_cast<std::uint64_t>(h);
				++i;
				break;
			}
			if (digits_ == 0)
				return fail(i, 400, "malformed chunk size");
			if (c == ';' || c == ' ' || c == '\t') {
				state_ = State::chunk_ext;
				++i;
				break;
			}
			if (c == '\r') {
				state_ = State::chunk_size_lf;
				++i;
				break;
			}
			if (c != '\n')
				return fail(i, 400, "malformed chunk size");
			[[fallthrough]];
		}
		case State::chunk_size_lf:
			if (c != '\n')
				return fail(i, 400, "CR not followed by LF");
			++i;
			if (num_ == 0) {
				state_ = State::trailer_start;
				break;
			}
			if (chunked_total_ + num_ > lim_.max_body)
				return fail(i, 413, "request body exceeds the size limit");
			if (chunks_.size() >= lim_.max_chunks)
				return fail(i, 413, "too many chunks in one request");
			chunks_.push_back(StreamRange{pos + 1, num_});
			chunked_total_ += num_;
			body_left_ = num_;
			num_ = 0;
			digits_ = 0;
			state_ = State::chunk_data;
			break;

		case State::chunk_ext:
			if (c == '\r') {
				state_ = State::chunk_size_lf;
			} else if (c == '\n') {
				state_ = State::chunk_size_lf;
				break;  // handled as the line end above
			} else if (c == '\0') {
				return fail(i, 400, "NUL in chunk extension");
			}
			++i;
			break;

		case State::chunk_data: {
			std::uint64_t take = n - i;
			if (take > body_left_)
				take = body_left_;
			i += static_cast<std::size_t>(take);
			body_left_ -= take;
			if (body_left_ == 0)
				state_ = State::chunk_data_end;
			break;
		}

		case State::chunk_data_end:
			if (c == '\r') {
				state_ = State::chunk_data_lf;
				++i;
				break;
			}
			if (c != '\n')
				return fail(i, 400, "chunk data longer than its size");
			[[fallthrough]];
		case State::chunk_data_lf:
			if (c != '\n')
				return fail(i, 400, "CR not followed by LF");
			++i;
			state_ = State::chunk_size;
			break;

		case State::trailer_start:
			if (c == '\r') {
				state_ = State::trailer_end_lf;
				++i;
				break;
			}
			if (c == '\n')
				return chunked_done(i + 1, pos + 1);
			state_ = State::trailer_line;
			break;

		case State::trailer_line:
			if (++trailer_bytes_ > lim_.max_header_bytes)
				return fail(i, 431, "request trailers too large");
			if (c == '\0')
				return fail(i, 400, "NUL in trailer");
			if (c == '\n')
				state_ = State::trailer_start;
			++i;
			break;

		case State::trailer_end_lf:
			if (c != '\n')
				return fail(i, 400, "CR not followed by LF");
			return chunked_done(i + 1, pos + 1);

		case State::done:
			// the caller must call next() first
			return {i, ParseStatus::done};

		case State::failed:
			return {i, ParseStatus::error};
		}
	}
	return {i, state_ == State::failed ? ParseStatus::error
					   : state_ == State::done ? ParseStatus::done : ParseStatus::need_more};
}

}  // namespace daxnet::proto
