// SPDX-License-Identifier: BSD-2-Clause
//
// A service's counters as ONE list, rendered three ways:
//   - INFO (Redis protocol, daxnet-kv):  daxnet_<name>:<value>\r\n, by section
//   - GET /stats (JSON):                 {"<name>":<value>,...}
//   - GET /metrics (Prometheus text exposition format 0.0.4):
//       # HELP daxnet_<name> ...
//       # TYPE daxnet_<name> counter|gauge
//       daxnet_<name>[_total] <value>
//     and the string labels (service, version, transport, granularity, pool)
//     as daxnet_info{...} 1.
// A service fills a Metrics on request (no hot-path cost) from its counters;
// add_server_metrics() and add_store_metrics() add what every store service
// shares, so the names agree between services and renderers.
#pragma once

#include <cstdint>
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
	std::string_view name;     ///< snake_case, without the daxnet_ prefix
	std::string_view help;
	std::string_view section;  ///< INFO section ("Stats", "Persistence", ...)
	MetricType type = MetricType::counter;
	bool is_ratio = false;     ///< a derived gauge: `d` holds it
	std::uint64_t u = 0;
	double d = 0.0;
};

struct MetricLabel {
	std::string_view name;
	std::string value;
};

class Metrics {
public:
	/// A string-valued fact (service, version, transport, ...): a JSON
	/// string, an INFO line in section "Server", a label of daxnet_info.
	Metrics& label(std::string_view name, std::string value);
	/// Counts up from start (Prometheus `counter`, name suffixed _total).
	Metrics& counter(std::string_view name, std::uint64_t v, std::string_view help,
			 std::string_view section = "Stats");
	/// A current value (Prometheus `gauge`).
	Metrics& gauge(std::string_view name, std::uint64_t v, std::string_view help,
		       std::string_view section = "Stats");
	/// A derived ratio (gauge, printed with 4 decimals).
	Metrics& ratio(std::string_view name, double v, std::string_view help, std::string_view section = "Stats");

	const std::vector<Metric>& metrics() const noexcept { return m_; }
	const std::vector<MetricLabel>& labels() const noexcept { return labels_; }
	/// The value of `name` (0 when absent; ratios truncated). Tests.
	std::uint64_t value(std::string_view name) const noexcept;

	/// One JSON object (nlohmann-json), labels first, then every metric;
	/// ends with "\n".
	std::string json() const;
	/// Prometheus text exposition format 0.0.4.
	std::string prometheus() const;
	/// INFO lines "daxnet_<name>:<value>\r\n" of one section (labels are in
	/// section "Server").
	std::string info(std::string_view section) const;
	/// INFO lines of every label and metric (one "daxnet" section).
	std::string info() const;

private:
	std::vector<MetricLabel> labels_;
	std::vector<Metric> m_;
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
