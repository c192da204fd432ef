// SPDX-License-Identifier: BSD-2-Clause
//
// svc::Metrics: one list of counters rendered as INFO, JSON (/stats) and
// Prometheus (/metrics).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "daxnet/svc/metrics.h"

using daxnet::svc::InfoSelection;
using daxnet::svc::Metrics;
using daxnet::svc::MetricType;

namespace {

bool has(const std::string& text, std::string_view what)
{
	return text.find(what) != std::string::npos;
}

Metrics sample()
{
	Metrics m;
	m.label("service", "daxnet-test").label("transport", "epoll");
	m.counter("requests", 7, "Requests.")
		.gauge("open_connections", 3, "Connections open now.")
		.ratio("fences_per_request", 0.5, "Fences per request.");
	m.info_section("Clients")
		.info_alias("connected_clients", "open_connections")
		.info_field("blocked_clients", "0")
		.gauge("maxclients", 10000, "Connections accepted at most.");
	m.info_section("CPU").real("used_cpu_sys", 1.25, "CPU seconds in the kernel.", MetricType::counter, 6);
	m.info_section("Keyspace").info_field("db0", "keys=1,expires=0,avg_ttl=0");
	return m;
}

std::string info(const Metrics& m, std::vector<std::string_view> args)
{
	return m.info(InfoSelection(args));
}

}  // namespace

TEST_CASE("every metric shows in INFO (once), JSON and Prometheus", "[unit][metrics]")
{
	const Metrics m = sample();
	const std::string all = info(m, {"all"});
	const auto json = nlohmann::json::parse(m.json());
	const std::string prom = m.prometheus();
	REQUIRE(m.metrics().size() == 5);
	for (const auto& x : m.metrics()) {
		const std::string name(x.name);
		CAPTURE(name);
		// once in INFO: under its Redis name in its section, else in "Daxnet"
		if (x.section.empty()) {
			CHECK(has(all, "\r\ndaxnet_" + name + ":"));
		} else {
			CHECK(has(info(m, {std::string_view(x.section)}), "\r\n" + name + ":"));
			CHECK(!has(all, "daxnet_" + name + ":"));
		}
		CHECK(json.contains(name));
		const bool ctr = x.type == MetricType::counter;
		CHECK(has(prom, "\ndaxnet_" + name + (ctr ? "_total " : " ")));
		CHECK(has(prom, "# TYPE daxnet_" + name + (ctr ? " counter\n" : " gauge\n")));
	}
	for (const auto& l : m.labels()) {
		const std::string name(l.name);
		CHECK(has(all, "daxnet_" + name + ":" + l.value + "\r\n"));
		CHECK(json[name] == l.value);
		CHECK(has(prom, name + "=\"" + l.value + "\""));
	}
	CHECK(json["requests"] == 7);
	CHECK(json["fences_per_request"] == 0.5);
	CHECK(json["used_cpu_sys"] == 1.25);
	CHECK(has(prom, "daxnet_used_cpu_sys_total 1.250000\n"));
	CHECK(has(all, "daxnet_fences_per_request:0.5000\r\n"));
	// fixed INFO fields and tables are INFO only
	CHECK(!json.contains("blocked_clients"));
	CHECK(!json.contains("db0"));
	CHECK(!has(prom, "blocked_clients"));
}

TEST_CASE("INFO's Redis sections carry the list's entries under Redis names", "[unit][metrics]")
{
	const Metrics m = sample();
	const std::string all = info(m, {"all"});
	CHECK(all == "# Server\r\n"
		     "\r\n# Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\nmaxclients:10000\r\n"
		     "\r\n# Memory\r\n"
		     "\r\n# Persistence\r\n"
		     "\r\n# Stats\r\n"
		     "\r\n# Replication\r\n"
		     "\r\n# CPU\r\nused_cpu_sys:1.250000\r\n"
		     "\r\n# Commandstats\r\n"
		     "\r\n# Errorstats\r\n"
		     "\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n"
		     "\r\n# Daxnet\r\n"
		     "daxnet_service:daxnet-test\r\ndaxnet_transport:epoll\r\ndaxnet_requests:7\r\n"
		     "daxnet_open_connections:3\r\ndaxnet_fences_per_request:0.5000\r\n");
	CHECK(info(m, {"CLIENTS"}) == "# Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\nmaxclients:10000\r\n");
	CHECK(info(m, {"nosuchsection"}).empty());
	// Redis's default set: no commandstats or errorstats
	for (const auto& args : {std::vector<std::string_view>{}, std::vector<std::string_view>{"default"}}) {
		const std::string d = info(m, args);
		CHECK(has(d, "# Keyspace\r\n"));
		CHECK(has(d, "# Daxnet\r\n"));
		CHECK(!has(d, "# Commandstats"));
		CHECK(!has(d, "# Errorstats"));
	}
	CHECK(has(info(m, {"default", "commandstats"}), "# Commandstats\r\n"));
	CHECK(has(info(m, {"everything"}), "# Errorstats\r\n"));
	CHECK(InfoSelection(std::vector<std::string_view>{"keyspace"}).on("Keyspace"));
	CHECK(!InfoSelection(std::vector<std::string_view>{"stats"}).on("Keyspace"));
}
