// SPDX-License-Identifier: BSD-2-Clause
#include "daxnet/svc/store_core.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>

namespace daxnet::svc {

// ---- Refusal ------------------------------------------------------------

std::string Refusal::resp() const
{
	std::string s(resp_prefix());
	s += ' ';
	s += message;
	return s;
}

int Refusal::http_status() const noexcept
{
	switch (code) {
	case Code::full:
	case Code::failed:
		return 507;
	case Code::too_large:
		return 413;
	case Code::bad_request:
		return 400;
	case Code::not_found:
		return 404;
	case Code::not_allowed:
		return 405;
	case Code::too_long:
		return 414;
	case Code::out_of_range:
		return 416;
	case Code::error:
		break;
	}
	return 500;
}

Refusal Refusal::from_store(int rc, std::string full_message, std::string_view what, std::string_view verb)
{
	if (rc == -ENOSPC)
		return {Code::full, std::move(full_message)};
	if (rc == -EMSGSIZE)
		return {Code::too_large, fmt::format("daxnet: {} too large for the log of this pool", what)};
	return {Code::failed, fmt::format("daxnet: {} failed ({})", verb, std::strerror(-rc))};
}

void resp_refusal(proto::OutBuf& o, const Refusal& r)
{
	proto::resp::error(o, r.resp());
}

void http_refusal(proto::OutBuf& o, const Refusal& r, bool keep_alive, std::string_view extra_headers)
{
	std::string body = r.message;
	body += '\n';
	proto::http_response(o, r.http_status(), "text/plain", body, keep_alive, extra_headers);
}

// ---- replies ----------------------------------------------------------------

void send_value(Server& srv, Conn& c, proto::OutBuf& o, const pmem::PoolView& pool,
		std::span<const pmem::Slice> slices, std::uint64_t size)
{
	if (size <= kInlineValueMax || &o != &c.tx.bytes()) {
		for (const pmem::Slice& s : slices)
			o.append(pmem::slice_bytes(pool, s));
		return;
	}
	for (const pmem::Slice& s : slices)
		c.tx.append_ref(srv.source(), s.buf, s.off, s.len);
}

// ---- StoreCore ----------------------------------------------------------

bool StoreCore::end_of_pass() noexcept
{
	staged_ |= kv_.clean() > 0;  // docs/wal-format.md §The cleaner: a bounded step, same fence
	bool committed = false;
	pass_ticket_ = 0;
	if (staged_ || kv_.checkpoint_pending()) {
		// (a pending checkpoint advances a step per pass, also when
		// nothing was written)
		staged_ = false;
		++commits_;
		// one fence for every write of the pass (pipelined: begun)
		const int rc = pipelined_ ? kv_.commit_begin(pass_ticket_) : kv_.commit();
		if (rc < 0)
			std::fprintf(stderr, "%s: checkpoint after commit failed: %s (the batch is durable)\n", prog_,
				     std::strerror(-rc));
		committed = true;
	}
	reclaim_if_short();  // before the transport runs dry
	return committed;
}

void StoreCore::reclaim_if_short() noexcept
{
	if (alloc_.free_count() >= (policy_.low_buffers ? policy_.low_buffers : reserve_))
		return;
	if (policy_.only_trimmed && kv_.reclaimable() == 0)
		return;
	const std::uint64_t seq = kv_.wal().next_seq();
	if (policy_.min_new_entries && seq < last_reclaim_seq_ + policy_.min_new_entries)
		return;
	const auto now = std::chrono::steady_clock::now();
	if (now < next_reclaim_)
		return;
	last_reclaim_seq_ = seq;
	const int rc = kv_.reclaim();
	if (rc == 0) {
		++reclaims_;
		next_reclaim_ = now + policy_.gap;
		return;
	}
	if (reclaim_failures_++ == 0 || reclaim_failures_ % 100 == 0)
		std::fprintf(stderr, "%s: checkpoint to reclaim pool buffers failed: %s (%llu times); retrying in %lld ms\n",
			     prog_, std::strerror(-rc), static_cast<unsigned long long>(reclaim_failures_),
			     static_cast<long long>(policy_.backoff.count()));
	next_reclaim_ = now + policy_.backoff;
}

void StoreCore::add_metrics(Metrics& m) const
{
	m.counter("commits", commits_, "Group commits (one per pass with writes or a checkpoint step).")
		.counter("reclaim_checkpoints", reclaims_,
			 "Checkpoints started to reclaim pool buffers (superseded values, trimmed records).")
		.counter("reclaim_failures", reclaim_failures_, "Reclaim checkpoints that failed.")
		.counter("checkpoint_retries", retries_, "Writes retried after a checkpoint made log room.");
}

}  // namespace daxnet::svc
