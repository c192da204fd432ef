// SPDX-License-Identifier: BSD-2-Clause
//
// The services' error model: a request that cannot be served gets a
// Refusal (what went wrong, as a code, and a message for the client), and
// the protocol layer renders it -- as a RESP error with Redis's prefix
// ("-ERR ...", "-OOM ...") or as an HTTP status with the message as the
// body. The connection and the store stay usable. (Libraries below the
// services return daxnet::Result / -errno; see HACKING.md.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "daxnet/proto/reply.h"

namespace daxnet::svc {

struct Refusal {
	enum class Code : std::uint8_t {
		error,         ///< anything else: RESP "ERR", HTTP 500
		full,          ///< pool or log full (ENOSPC): RESP "OOM", HTTP 507
		too_large,     ///< larger than the store takes (EMSGSIZE): RESP "ERR", HTTP 413
		failed,        ///< the store refused the write otherwise: RESP "ERR", HTTP 507
		bad_request,   ///< malformed arguments: RESP "ERR", HTTP 400
		not_found,     ///< no such key, stream or path: RESP "ERR", HTTP 404
		not_allowed,   ///< a method the resource does not take: RESP "ERR", HTTP 405
		too_long,      ///< a key or name over its limit: RESP "ERR", HTTP 414
		out_of_range,  ///< a position beyond the end: RESP "ERR", HTTP 416
	};
	Code code = Code::error;
	std::string message;  ///< without a protocol prefix ("daxnet: ...", Redis's wording)

	/// The RESP prefix of this code: "OOM" or "ERR".
	std::string_view resp_prefix() const noexcept { return code == Code::full ? "OOM" : "ERR"; }
	/// The RESP error text (without the leading '-'): "<prefix> <message>".
	std::string resp() const;
	int http_status() const noexcept;

	/// The refusal of a store write that returned `rc` (-errno):
	/// -ENOSPC: `full` with `full_message`; -EMSGSIZE: "daxnet: <what> too
	/// large for the log of this pool"; else "daxnet: <verb> failed (<errno
	/// text>)".
	static Refusal from_store(int rc, std::string full_message, std::string_view what, std::string_view verb);
};

/// nullopt: served.
using MaybeRefusal = std::optional<Refusal>;

/// Queues `r` as a RESP error.
void resp_refusal(proto::OutBuf& o, const Refusal& r);
/// Queues `r` as an HTTP response (status, text/plain, the message and a
/// newline); `extra_headers` end with CRLF each.
void http_refusal(proto::OutBuf& o, const Refusal& r, bool keep_alive, std::string_view extra_headers = {});

}  // namespace daxnet::svc
