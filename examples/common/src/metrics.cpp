// SPDX-License-Identifier: BSD-2-Clause
#include "daxnet/svc/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>

#include "daxnet/pmem/kv.h"
#include "daxnet/pmem/persist.h"
#include "daxnet/proto/reply.h"
#include "daxnet/svc/server.h"

namespace daxnet::svc {

namespace {

/// Prometheus label values escape backslash, double quote and newline.
void prom_label_value(std::string& out, std::string_view s)
{
	for (char c : s) {
		if (c == '\\' || c == '"')
			(out += '\\') += c;
		else if (c == '\n')
			out += "\\n";
		else
			out += c;
	}
}

void value_text(std::string& out, const Metric& m)
{
	if (m.decimals)
		out += fmt::format("{:.{}f}", m.d, m.decimals);
	else
		out += fmt::format("{}", m.u);
}

bool ieq(std::string_view a, std::string_view b) noexcept
{
	if (a.size() != b.size())
		return false;
	for (std::size_t i = 0; i < a.size(); ++i)
		if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
			return false;
	return true;
}

}  // namespace

InfoSelection::InfoSelection(std::span<const std::string_view> args) : defaults_(args.empty())
{
	for (std::string_view a : args) {
		if (ieq(a, "all") || ieq(a, "everything"))
			all_ = true;
		else if (ieq(a, "default"))
			defaults_ = true;
		else
			named_.emplace_back(a);
	}
}

bool InfoSelection::on(std::string_view title) const noexcept
{
	if (all_)
		return true;
	for (const auto& s : kInfoSections)
		if (s.title == title && s.by_default && defaults_)
			return true;
	for (const auto& n : named_)
		if (ieq(n, title))
			return true;
	return false;
}

Metrics& Metrics::label(std::string_view name, std::string value)
{
	labels_.push_back({name, std::move(value)});
	return *this;
}

Metrics& Metrics::add(Metric m)
{
	m.section = section_;
	if (!section_.empty())
		info_.push_back({section_, std::string(m.name), static_cast<int>(m_.size()), {}});
	m_.push_back(m);
	return *this;
}

Metrics& Metrics::counter(std::string_view name, std::uint64_t v, std::string_view help)
{
	return add({name, help, {}, MetricType::counter, 0, v, 0.0});
}

Metrics& Metrics::gauge(std::string_view name, std::uint64_t v, std::string_view help)
{
	return add({name, help, {}, MetricType::gauge, 0, v, 0.0});
}

Metrics& Metrics::ratio(std::string_view name, double v, std::string_view help)
{
	return add({name, help, {}, MetricType::gauge, 4, 0, v});
}

Metrics& Metrics::real(std::string_view name, double v, std::string_view help, MetricType type, std::uint8_t decimals)
{
	return add({name, help, {}, type, static_cast<std::uint8_t>(std::clamp<int>(decimals, 1, 9)), 0, v});
}

Metrics& Metrics::info_section(std::string_view title)
{
	section_ = title;
	return *this;
}

Metrics& Metrics::info_alias(std::string_view redis_name, std::string_view metric)
{
	for (std::size_t i = 0; i < m_.size(); ++i)
		if (m_[i].name == metric) {
			info_.push_back({section_, std::string(redis_name), static_cast<int>(i), {}});
			return *this;
		}
	// a name not in the list is a programming error; shown, never hidden
	info_.push_back({section_, std::string(redis_name), -1, "(no metric " + std::string(metric) + ")"});
	return *this;
}

Metrics& Metrics::info_field(std::string name, std::string text)
{
	info_.push_back({section_, std::move(name), -1, std::move(text)});
	return *this;
}

std::uint64_t Metrics::value(std::string_view name) const noexcept
{
	for (const auto& m : m_)
		if (m.name == name)
			return m.decimals ? static_cast<std::uint64_t>(m.d) : m.u;
	return 0;
}

std::string Metrics::json() const
{
	// ordered: labels first, then the metrics in the list's order
	nlohmann::ordered_json j = nlohmann::ordered_json::object();
	for (const auto& l : labels_)
		j[std::string(l.name)] = l.value;
	for (const auto& m : m_) {
		if (m.decimals) {
			const double scale = std::pow(10.0, m.decimals);  // as many decimals as the text renderings
			j[std::string(m.name)] = std::round(m.d * scale) / scale;
		} else {
			j[std::string(m.name)] = m.u;
		}
	}
	// a label (the pool's path) need not be UTF-8: replaced, never thrown
	return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string Metrics::prometheus() const
{
	std::string out;
	out.reserve(64 * (m_.size() + 2));
	out += "# HELP daxnet_info The service, its version, transport, persistence granularity and pool.\n"
	       "# TYPE daxnet_info gauge\ndaxnet_info{";
	bool first = true;
	for (const auto& l : labels_) {
		if (!first)
			out += ',';
		first = false;
		out += l.name;
		out += "=\"";
		prom_label_value(out, l.value);
		out += '"';
	}
	out += "} 1\n";
	for (const auto& m : m_) {
		const bool ctr = m.type == MetricType::counter;
		out += fmt::format("# HELP daxnet_{} {}\n# TYPE daxnet_{} {}\ndaxnet_{}{} ", m.name, m.help, m.name,
				   ctr ? "counter" : "gauge", m.name, ctr ? "_total" : "");
		value_text(out, m);
		out += '\n';
	}
	return out;
}

std::string Metrics::info_daxnet() const
{
	std::string out;
	for (const auto& l : labels_)
		out += fmt::format("daxnet_{}:{}\r\n", l.name, l.value);
	for (const auto& m : m_) {
		if (!m.section.empty())
			continue;  // in its Redis section
		out += fmt::format("daxnet_{}:", m.name);
		value_text(out, m);
		out += "\r\n";
	}
	return out;
}

std::string Metrics::info(const InfoSelection& sel) const
{
	std::string out;
	out.reserve(4096);
	for (const auto& sec : kInfoSections) {
		if (!sel.on(sec.title))
			continue;
		if (!out.empty())
			out += "\r\n";
		out += fmt::format("# {}\r\n", sec.title);
		if (sec.title == "Daxnet") {
			out += info_daxnet();
			continue;
		}
		for (const auto& f : info_) {
			if (f.section != sec.title)
				continue;
			out += f.name;
			out += ':';
			if (f.metric >= 0)
				value_text(out, m_[static_cast<std::size_t>(f.metric)]);
			else
				out += f.text;
			out += "\r\n";
		}
	}
	return out;
}

void add_server_metrics(Metrics& m, Server& srv, const pmem::PersistCounters& pc, std::uint64_t pool_buffers,
			std::uint64_t pool_buffers_free)
{
	const auto& sc = srv.counters();
	auto& port = srv.port();
	const auto rc = port.counters();
	const std::uint64_t syscalls = rc.syscalls + sc.waits;
	const double req = sc.requests ? static_cast<double>(sc.requests) : 1.0;
	m.counter("requests", sc.requests, "Requests handled (commands, HTTP requests).")
		.counter("connections", sc.connections, "Connections accepted.")
		.gauge("open_connections", sc.open_connections, "Connections open now.")
		.counter("protocol_errors", sc.protocol_errors, "Requests refused as malformed.")
		.counter("idle_timeouts", sc.idle_timeouts, "Connections closed after --timeout seconds idle.")
		.counter("client_output_limit_closes", sc.output_limit_closes,
			 "Connections closed over --client-output-buffer-limit (unsent replies).")
		.counter("query_limit_closes", sc.query_limit_closes,
			 "Connections closed: an incomplete request over --client-query-buffer-limit.")
		.counter("proto_limit_closes", sc.proto_limit_closes,
			 "Requests refused at their header (bulk length, argument count, body size), connection closed.")
		.counter("evicted_clients", sc.evicted_clients,
			 "Connections closed for pinning the most pool bytes (--maxmemory-clients, buffer reserve).")
		.counter("tx_share_waits", sc.tx_share_waits,
			 "Times a connection's replies waited: its fair share of the port's TX queue was full.")
		.gauge("clients_rx_pinned_bytes", sc.rx_pinned_bytes, "Pool bytes incomplete requests pin now.")
		.gauge("clients_tx_queued_bytes", sc.tx_inport_bytes, "Reply bytes queued in the port now (unsent).")
		.counter("passes", sc.passes, "Event-loop passes.")
		.counter("waits", sc.waits, "Event-loop waits (poll) for work.")
		.counter("fences", pc.drains, "Persistence fences (drains): one per commit of a pass.")
		.counter("flushes", pc.flush_calls, "Cache-line or page flush calls.")
		.counter("flushed_bytes", pc.flushed_bytes, "Bytes passed to flush calls.")
		.counter("msyncs", pc.msyncs, "msync ranges issued (page granularity pools).")
		.counter("syscalls", syscalls, "System calls made by the port and the loop's waits.")
		.ratio("syscalls_per_request", static_cast<double>(syscalls) / req, "System calls per request.")
		.counter("syncs", rc.syncs, "Port syncs (one moves TX and RX for every connection).")
		.counter("rx_bytes", rc.rx_bytes, "Payload bytes received.")
		.counter("tx_bytes", rc.tx_bytes, "Payload bytes sent.")
		.counter("cpu_copied_bytes", rc.cpu_copied, "Bytes the CPU copied in the transport, RX and TX.")
		.counter("rx_kept", sc.kept, "Received buffers kept past their ring slot (requests spanning slots).")
		.counter("tx_zerocopy_bytes", sc.tx_zerocopy, "Reply bytes sent straight from the buffers holding them.")
		.counter("compacted_bytes", sc.bytes_compacted, "Trickled bytes copied to compact a connection's chain.")
		.counter("rx_ring_full", rc.rx_ring_full, "Receives stopped because the RX ring was full.")
		.counter("spare_empty", rc.spare_empty, "Receives stopped for want of a spare buffer.")
		.gauge("pool_buffers", pool_buffers, "Packet buffers in the pool.")
		.gauge("pool_buffers_free", pool_buffers_free, "Packet buffers free now.")
		.gauge("zerocopy", port.zerocopy() ? 1 : 0, "1 when the kernel transport runs in zero-copy mode.")
		.counter("rx_zc_bytes", rc.rx_zc_bytes, "Bytes received in place (zero-copy mode).")
		.counter("tx_zc_bytes", rc.tx_zc_bytes, "Bytes sent by reference (zero-copy mode).");
}

void add_store_metrics(Metrics& m, const pmem::KvStore& kv)
{
	const auto& ck = kv.checkpoint_stats();
	m.gauge("wal_used_records", kv.wal().used(), "WAL records not yet covered by a checkpoint.")
		.gauge("wal_slots", kv.wal().nslots(), "WAL record slots in the pool.")
		.counter("checkpoints", kv.wal().stats().checkpoints, "Checkpoints completed.")
		.gauge("checkpoint_pending", kv.checkpoint_pending() ? 1 : 0, "1 while a stepped checkpoint runs.")
		.counter("checkpoints_stepped", ck.stepped, "Checkpoints written a step per pass.")
		.counter("checkpoints_finished_early", ck.finished, "Stepped checkpoints finished at once.")
		.counter("checkpoints_restarted", ck.restarted, "Stepped checkpoints restarted.")
		.counter("checkpoint_fallbacks", ck.fallbacks, "Stepped checkpoints that fell back to a whole one.")
		// docs/wal-format.md §Capacity
		.gauge("live_records", kv.live_records(), "Checkpoint records the live state needs.")
		.gauge("record_limit", kv.record_limit(), "What live_records may reach (writes refused beyond).")
		.counter("refused_capacity", kv.capacity_stats().refused_capacity,
			 "Writes refused: the live state would not fit a checkpoint.")
		.counter("refused_log", kv.capacity_stats().refused_log,
			 "Writes refused: no log room outside the reserve kept for deletes.")
		.counter("checkpoint_failures", kv.capacity_stats().ckpt_failures,
			 "Checkpoints that failed (the live state did not fit a half).")
		// docs/wal-format.md §The cleaner
		.gauge("live_payload_bytes", kv.live_payload_bytes(), "Value and stream-body bytes the live state holds.")
		.counter("cleaner_moved_bytes", kv.cleaner_stats().moved_bytes,
			 "Key and value bytes the cleaner copied into dense buffers.")
		.counter("cleaner_moved_entries", kv.cleaner_stats().moved_entries, "Keys the cleaner relocated.")
		.counter("cleaner_freed_buffers", kv.cleaner_stats().freed_buffers,
			 "Sparse buffers the cleaner emptied that came free.")
		.counter("cleaner_cycles", kv.cleaner_stats().cycles, "Cleaning cycles completed.")
		.counter("cleaner_victims", kv.cleaner_stats().victims, "Buffers chosen for cleaning.")
		.counter("cleaner_skipped_corrupt", kv.cleaner_stats().skipped_corrupt,
			 "Slices the cleaner left in place: payload CRC mismatch.")
		.counter("cleaner_stalls", kv.cleaner_stats().stalls,
			 "Cleaner calls stopped early: no log room or free buffer.")
		.counter("cleaner_futile_cycles", kv.cleaner_stats().futile_cycles,
			 "Cleaning cycles that emptied no buffer (no checkpoint asked).")
		.counter("cleaner_scans", kv.cleaner_stats().scans, "Victim scans the cleaner completed.")
		.counter("cleaner_work", kv.cleaner_stats().work,
			 "Units of cleaner work (buffers scanned, victims and their keys visited).")
		.counter("cleaner_reserve_buffers", kv.cleaner_stats().reserve_buffers,
			 "Destination buffers the cleaner took from the service reserve (a cycle that frees more).")
		.counter("cleaner_cut_cycles", kv.cleaner_stats().cut_cycles,
			 "Cleaning cycles ended early: no destination buffer left to take.");
}

void http_metrics(proto::OutBuf& o, const Metrics& m, bool prometheus, bool keep_alive)
{
	if (prometheus)
		proto::http_response(o, 200, kPrometheusContentType, m.prometheus(), keep_alive);
	else
		proto::http_response(o, 200, "application/json", m.json(), keep_alive);
}

}  // namespace daxnet::svc
