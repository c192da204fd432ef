// SPDX-License-Identifier: BSD-2-Clause
//
// A service's counters as ONE list, rendered three ways:
//   - INFO (Redis protocol, daxnet-kv): Redis's sections ("# Server",
//     "# Clients", ...) carry the metrics the service placed in them under
//     their Redis names (used_memory, keyspace_hits, ...), and the
//     "# Daxnet" section every other metric and every label as
//     daxnet_<name>:<value> (a field shows once: clients such as the
//     Valkey tests read INFO all and count);
//   - GET /stats (JSON):                 {"<name>":<value>,...}
//   - GET /metrics (Prometheus text exposition format 0.0.4):
//       # HELP daxnet_<name> ...
//       # TYPE daxnet_<name> counter|gauge
//       daxnet_<name>[_total] <value>
//     and the string labels (service, version, transport, granularity, pool)
//     as daxnet_info{...} 1.
// So every metric shows in all three. A service fills a Metrics on request
// (no hot-path cost) from its counters; add_server_metrics() and
// add_store_metrics() add what every store service shares, so the names
// agree between services and renderers. What INFO shows besides counters
// (Redis's fixed fields such as role:master, and tables such as db0:keys=...)
// is added with info_field() to its section and shows in INFO only.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace daxnet::proto {
class OutBuf;
}  // namespace daxnet::proto

namespace daxnet::pmem {
class KvStore;
struct PersistCounters;
}  // namespace daxnet::pmem

namespace daxnet::svc {

class Server;

enum class MetricType : std::uint8_t { counter, gauge };

struct Metric {
	std::string_view name;  ///< snake_case, without the daxnet_ prefix
	std::string_view help;
	std::string_view section;  ///< the INFO section showing it under `name`; "": "Daxnet" (daxnet_<name>)
	MetricType type = MetricType::counter;
	std::uint8_t decimals = 0;  ///< 0: an integer, `u`; else a real, `d`, printed with this many decimals
	std::uint64_t u = 0;
	double d = 0.0;
};

/// A line of one of INFO's Redis sections: a metric under a Redis name, or
/// a fixed text (INFO only).
struct InfoField {
	std::string_view section;  ///< "Server", "Clients", ... (kInfoSections)
	std::string name;
	int metric = -1;  ///< index into Metrics::metrics(), or -1: `text`
	std::string text;
};

/// INFO's sections in Redis's order: the title, and whether a bare INFO
/// (or INFO default) shows it.
struct InfoSection {
	std::string_view title;
	bool by_default;
};
inline constexpr InfoSection kInfoSections[] = {
	{"Server", true},  {"Clients", true},	    {"Memory", true},	  {"Persistence", true},
	{"Stats", true},   {"Replication", true},   {"CPU", true},	  {"Commandstats", false},
	{"Errorstats", false}, {"Keyspace", true}, {"Daxnet", true},
};

/// The sections an INFO command asked for (Redis's rules): none or
/// "default": the default ones; "all" and "everything": every one; else the
/// named ones (case-insensitive).
class InfoSelection {
public:
	explicit InfoSelection(std::span<const std::string_view> args);
	/// Section `title` ("Keyspace") is wanted: a service computes a table
	/// only for a wanted section.
	bool on(std::string_view title) const noexcept;

private:
	bool all_ = false, defaults_ = false;
	std::vector<std::string> named_;  ///< lower case
};

struct MetricLabel {
	std::string_view name;
	std::string value;
};

class Metrics {
public:
	/// A string-valued fact (service, version, transport, ...): a JSON
	/// string, an INFO line daxnet_<name> in section "Daxnet", a label of
	/// daxnet_info.
	Metrics& label(std::string_view name, std::string value);
	/// Counts up from start (Prometheus `counter`, name suffixed _total).
	Metrics& counter(std::string_view name, std::uint64_t v, std::string_view help);
	/// A current value (Prometheus `gauge`).
	Metrics& gauge(std::string_view name, std::uint64_t v, std::string_view help);
	/// A derived ratio (gauge, printed with 4 decimals).
	Metrics& ratio(std::string_view name, double v, std::string_view help);
	/// A real-valued counter or gauge printed with `decimals` (1..9) decimals
	/// (CPU seconds, kbps).
	Metrics& real(std::string_view name, double v, std::string_view help, MetricType type, std::uint8_t decimals);

	/// INFO's Redis sections. From here on (until the next info_section())
	/// each metric added shows in INFO section `title` (one of
	/// kInfoSections) under its own name, as Redis names it, instead of as
	/// daxnet_<name> in section "Daxnet" ("", the start).
	Metrics& info_section(std::string_view title);
	/// In the current INFO section, `redis_name` shows the value of the
	/// metric `metric` added before (connected_clients: open_connections).
	Metrics& info_alias(std::string_view redis_name, std::string_view metric);
	/// In the current INFO section, a line "<name>:<text>" that is no
	/// counter (Redis's fixed fields, tables): INFO only.
	Metrics& info_field(std::string name, std::string text);

	const std::vector<Metric>& metrics() const noexcept { return m_; }
	const std::vector<MetricLabel>& labels() const noexcept { return labels_; }
	const std::vector<InfoField>& info_fields() const noexcept { return info_; }
	/// The value of `name` (0 when absent; reals truncated). Tests.
	std::uint64_t value(std::string_view name) const noexcept;

	/// One JSON object (nlohmann-json), labels first, then every metric;
	/// ends with "\n".
	std::string json() const;
	/// Prometheus text exposition format 0.0.4.
	std::string prometheus() const;
	/// The INFO reply's text: each selected section of kInfoSections, in
	/// that order, as "# <title>\r\n" and its lines, sections separated
	/// by an empty line; section "Daxnet" holds every label and every
	/// metric of no Redis section as daxnet_<name>:<value>.
	std::string info(const InfoSelection& sel) const;
	/// Section "Daxnet"'s lines alone.
	std::string info_daxnet() const;

private:
	Metrics& add(Metric m);
	std::vector<MetricLabel> labels_;
	std::vector<Metric> m_;
	std::vector<InfoField> info_;
	std::string_view section_;
};

/// What every service on the shared event loop has: the loop's counters,
/// the port's (transport, rings) and the pool's persistence domain and
/// buffer allocator.
void add_server_metrics(Metrics& m, Server& srv, const pmem::PersistCounters& pc, std::uint64_t pool_buffers,
			std::uint64_t pool_buffers_free);
/// What every KvStore-backed service has: the WAL and checkpoints.
void add_store_metrics(Metrics& m, const pmem::KvStore& kv);

/// Content type of GET /metrics.
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

/// The whole response to GET /stats (JSON) or, `prometheus`, GET /metrics.
void http_metrics(proto::OutBuf& o, const Metrics& m, bool prometheus, bool keep_alive);

}  // namespace daxnet::svc
