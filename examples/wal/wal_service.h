// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-wal: an ingestion service (wal_service.h: the service; http_api.cpp:
// the HTTP API; dump.cpp: the offline dump; wal_main.cpp: options, main).
// Clients append records to named streams over HTTP; a record's body stays in the pool buffers it was received in,
// is flushed in place and referenced from the WAL — never copied.
//
//   POST /log/<stream>            append the body; "201 Created" with the
//                                 record's sequence number (its position in
//                                 the stream, from 0) once durable
//   POST /log/<stream>?batch=lines  every line of the body (NDJSON, log
//                                 lines; LF or CRLF) is a record, all made
//                                 durable before the one reply "<first> <count>"
//   Transfer-Encoding: chunked bodies are accepted (curl -T -, shippers);
//                                 the chunks' data stays in the received
//                                 buffers (no reassembly copy)
//   GET  /log/<stream>?from=N&limit=M[&max_bytes=B][&format=raw]
//                                 records N..N+M-1 (from the stream's first
//                                 retained record when N is below it), at
//                                 most B body bytes (at least one record);
//                                 &wait=ms (at most 60000): when nothing is
//                                 at N yet, the reply waits for the first
//                                 durable append or the time (long poll);
//                                 default format: for each record a line
//                                 "<seq> <length>\n", the body, "\n";
//                                 format=raw: the bodies only
//   DELETE /log/<stream>?before=N trims the stream: drops records below N
//                                 (a consumer is done with them); sequence
//                                 numbers are kept. "200" with the new first
//                                 sequence number once durable. The space
//                                 returns at the next checkpoint, which runs
//                                 at once when the pool runs short
//   GET  /log                     one line per stream: "<name> <length>
//                                 <first>" (length = next sequence number)
//   GET  /stats                   counters (JSON)
//   GET  /metrics                 the same counters, Prometheus text format
//
//   daxnet-wal dump --pool FILE [--stream S] [--from N] [--limit M] [--raw]
//                                 prints a stream (or the list of streams)
//                                 from a pool, offline (read-only recovery)
//
// Every append of one event-loop pass is made durable with one commit (one
// fence) before any reply of the pass is sent.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daxnet/pmem/kv.h"
#include "daxnet/svc/metrics.h"
#include "daxnet/svc/server.h"
#include "daxnet/svc/store_core.h"

namespace daxnet::wal {

using daxnet::pmem::KvStore;
using daxnet::pmem::ScratchArena;
using daxnet::pmem::StreamEntryRef;
using daxnet::proto::StreamRange;
using daxnet::svc::Conn;
using daxnet::svc::Server;
using daxnet::svc::http_refusal;
using daxnet::svc::Refusal;
using Slice = daxnet::pmem::Slice;

inline constexpr std::uint64_t kDefaultLimit = 100;
inline constexpr std::uint64_t kMaxLimit = 10000;
inline constexpr std::uint64_t kMaxWaitMs = 60000;  ///< longest long poll (GET ...&wait=ms)
inline constexpr std::size_t kMaxStreamName = 200;
inline constexpr std::chrono::milliseconds kReclaimGap{50};
inline constexpr std::chrono::seconds kReclaimBackoff{1};

class WalService final : public daxnet::svc::Service {
public:
	WalService(KvStore& kv, const daxnet::pmem::PoolView& pool, daxnet::pmem::BufferAllocator& alloc,
		   std::string transport, std::uint64_t max_body, std::uint32_t pack_small, std::string pool_path)
	    : kv_(kv), pool_(pool), alloc_(alloc), arena_(pool, alloc), transport_(std::move(transport)),
	      pool_path_(std::move(pool_path)), max_body_(max_body), pack_small_(pack_small),
	      core_("daxnet-wal", kv, alloc, daxnet::pmem::service_reserve(pool.buffer_count()),
		    reclaim_policy(pool.buffer_count()))
	{
		entries_.resize(kMaxLimit);
	}

	void on_http(Server& srv, Conn& c) override;
	bool busy() const override { return core_.busy(); }
	void end_of_pass(Server& srv) override
	{
		core_.end_of_pass();  // one fence for every append of the pass; reclaim when short
		answer_waiters(srv, nullptr);  // long polls see only durable records
	}
	void on_close(Server& srv, Conn& c) override;
	std::uint64_t appends() const noexcept { return appends_; }

private:
	void append(Server& srv, Conn& c, std::string_view name, StreamRange name_range, std::string_view query);
	/// Stages one record of `len` bytes held in `segs` (chain ranges):
	/// packed (copied once) when small, else referenced in place.
	int stage_record(Conn& c, const Slice& n, std::span<const StreamRange> segs, std::uint64_t len,
			 std::uint64_t stamp, std::uint64_t* seq);
	/// Ends a batch=lines append's batch mode; `undo`: takes back every
	/// record it staged (refused whole).
	void end_batch(bool undo) noexcept;
	void read(Server& srv, Conn& c, std::string_view name, std::string_view query);
	struct ReadArgs {
		std::uint64_t from = 0, limit = 0, max_bytes = 0;
		bool raw = false, head = false, keep_alive = true;
	};
	/// Queues the response to a read of `name` as the stream is now.
	void respond_read(Server& srv, Conn& c, std::string_view name, const ReadArgs& a);
	/// Answers the long polls whose stream has records at `from` now, whose
	/// time ran out, or that are on connection `only` (a new request came).
	void answer_waiters(Server& srv, Conn* only);
	void trim(Server& srv, Conn& c, std::string_view name, StreamRange name_range, std::string_view query);
	Slice name_slice(Conn& c, std::string_view name, StreamRange name_range) noexcept;
	/// Checkpoints when trimmed records hold buffers (their space comes back
	/// only through a checkpoint) and the pool runs short: below a quarter
	/// of the pool, or near the append reserve (which is above a quarter in
	/// pools of fewer than 128 buffers). At most one such checkpoint per
	/// kReclaimGap (a consumer trimming after every read would otherwise
	/// rewrite the whole state every pass), and none for kReclaimBackoff
	/// after one failed.
	static daxnet::svc::ReclaimPolicy reclaim_policy(std::uint32_t buffers) noexcept
	{
		const std::uint64_t reserve = daxnet::pmem::service_reserve(buffers);
		return {.low_buffers = std::max<std::uint64_t>(buffers / 4, reserve * 2),
			.min_new_entries = 0,
			.only_trimmed = true,
			.gap = kReclaimGap,
			.backoff = kReclaimBackoff};
	}
	/// Every counter, once: /stats renders it as JSON, /metrics as Prometheus text.
	daxnet::svc::Metrics metrics(Server& srv) const;

	KvStore& kv_;
	daxnet::pmem::PoolView pool_;
	daxnet::pmem::BufferAllocator& alloc_;
	ScratchArena arena_;
	std::string transport_;
	std::string pool_path_;
	std::uint64_t max_body_;
	std::uint32_t pack_small_;  ///< bodies up to this size are copied once into packed buffers
	std::uint64_t packed_ = 0;  ///< bytes copied by packing (name + body)
	daxnet::svc::StoreCore core_;  ///< commit per pass, reclaim policy
	std::vector<Slice> body_;
	std::vector<char> gather_;
	std::vector<StreamRange> segs_;
	KvStore::BatchMark batch_mark_{};  ///< where a batch=lines append began
	bool in_batch_ = false;
	std::vector<StreamEntryRef> entries_;
	struct Waiter {
		Conn* conn = nullptr;
		std::string stream;
		ReadArgs args;
		std::chrono::steady_clock::time_point deadline;
	};
	std::vector<Waiter> waiters_;  ///< long polls (GET ...&wait=ms), in arrival order
	std::uint64_t long_polls_ = 0;
	std::uint64_t appends_ = 0;
	std::uint64_t append_bytes_ = 0;
	std::uint64_t batches_ = 0;
	std::uint64_t refused_ = 0;
	std::uint64_t reads_ = 0;
	std::uint64_t trims_ = 0;
	std::uint64_t trimmed_records_ = 0;
};

/// `daxnet-wal dump ...` (argv[0] is "dump"): prints a stream, or the list of
/// streams, from a pool recovered read-only. Returns the exit status.
int dump(int argc, char** argv);

}  // namespace daxnet::wal
