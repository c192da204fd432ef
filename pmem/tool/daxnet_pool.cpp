// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-pool: create, inspect and check pool files (docs/pool-format.md).
//
//   daxnet-pool create FILE --size 1G [--buffer-size 4096] [--require-dax]
//   daxnet-pool create /dev/daxX.Y [--size S] [--force]   (device DAX: the
//                  whole device unless --size; --force replaces a pool on it)
//   daxnet-pool info FILE [--json]
//   daxnet-pool check FILE        exit 0 only when the pool is consistent
//
// Every failure prints one line "daxnet-pool: FILE: reason" to stderr and
// exits non-zero; a file that fails validation is never written to.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <string>

#include "daxnet/pmem/pool.h"
#include "daxnet/size.h"
#include "pool_tool.h"

using namespace daxnet;
using namespace daxnet::pmem;

// Hooks for the layers above the pool (WAL, KV index). The default (weak)
// versions do nothing; pmem/tool/wal_commands.cpp provides the real ones.
__attribute__((weak)) void daxnet_pool_register_commands(CLI::App&, int&) {}
__attribute__((weak)) int daxnet_pool_check_layers(const std::string&, bool)
{
	return 0;
}

namespace {

int fail(const std::string& msg)
{
	std::fprintf(stderr, "daxnet-pool: %s\n", msg.c_str());
	return 1;
}

std::string uuid_text(const Uuid& u)
{
	std::string s;
	for (std::size_t i = 0; i < u.size(); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			s += '-';
		s += fmt::format("{:02x}", u[i]);
	}
	return s;
}

int cmd_create(const std::string& path, const std::string& size_text, std::uint32_t buffer_size,
	       const std::string& wal_text, const std::string& ckpt_text, bool require_dax, bool force)
{
	Pool::CreateOptions opt;
	struct stat st {};
	const bool device = ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
	if (!size_text.empty()) {
		auto size = daxnet::parse_size(size_text);
		if (!size)
			return fail(path + ": " + size.error().message);
		opt.size = *size;
	} else if (!device) {
		return fail(path + ": --size is required (only a device-DAX device has a size of its own)");
	}
	if (force && !device)
		return fail(path + ": --force only replaces a pool on a device-DAX device; files are never overwritten");
	opt.overwrite = force;
	opt.buffer_size = buffer_size;
	opt.require_dax = require_dax;
	if (!wal_text.empty()) {
		auto w = daxnet::parse_size(wal_text);
		if (!w)
			return fail(path + ": " + w.error().message);
		opt.wal_size = *w;
	}
	if (!ckpt_text.empty()) {
		auto c = daxnet::parse_size(ckpt_text);
		if (!c)
			return fail(path + ": " + c.error().message);
		opt.ckpt_size = *c;
	}
	auto pool = Pool::create(path, opt);
	if (!pool)
		return fail(pool.error().message);
	const auto& g = pool->geometry();
	fmt::print("created {}: {} buffers of {} bytes ({}), granularity {}{}\n", path, g.buffer_count,
		   g.buffer_size, human_bytes(std::uint64_t{g.buffer_count} * g.buffer_size),
		   to_string(pool->granularity()),
		   device ? ", device DAX" : pool->is_dax() ? ", DAX (MAP_SYNC)" : ", not DAX");
	return 0;
}

int cmd_info(const std::string& path, bool json)
{
	auto info = inspect_pool(path);
	if (!info)
		return fail(info.error().message);
	const auto& g = info->geometry;
	std::time_t secs = static_cast<std::time_t>(info->create_time_ns / 1000000000ull);
	char when[64] = "?";
	if (std::tm tmv{}; gmtime_r(&secs, &tmv))
		std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tmv);
	std::string use = info->in_use ? (info->holder_pid > 0 ? fmt::format("yes (pid {})", info->holder_pid)
							      : std::string("yes"))
				       : std::string("no");
	if (json) {
		fmt::print("{{\"path\":\"{}\",\"version\":{},\"uuid\":\"{}\",\"created\":\"{}\",\"pool_size\":{},"
			   "\"file_size\":{},\"buffer_size\":{},\"buffer_count\":{},\"buffer_offset\":{},"
			   "\"wal_offset\":{},\"wal_size\":{},\"ckpt_offset\":{},\"ckpt_size\":{},\"dax\":{},"
			   "\"granularity\":\"{}\",\"in_use\":{},\"holder_pid\":{}}}\n",
			   path, info->version, uuid_text(info->uuid), when, g.pool_size, info->file_size,
			   g.buffer_size, g.buffer_count, g.buffer_offset, g.wal_offset, g.wal_size, g.ckpt_offset,
			   g.ckpt_size, info->dax ? "true" : "false", info->dax ? "CACHE_LINE" : "PAGE",
			   info->in_use ? "true" : "false", info->holder_pid);
		return 0;
	}
	fmt::print("pool           {}\n", path);
	fmt::print("format         version {}, uuid {}\n", info->version, uuid_text(info->uuid));
	fmt::print("created        {}\n", when);
	fmt::print("size           {} ({} bytes; file {} bytes)\n", human_bytes(g.pool_size), g.pool_size,
		   info->file_size);
	fmt::print("buffers        {} x {} bytes at offset {} ({})\n", g.buffer_count, g.buffer_size,
		   g.buffer_offset, human_bytes(std::uint64_t{g.buffer_count} * g.buffer_size));
	fmt::print("wal area       offset {}, {}\n", g.wal_offset, human_bytes(g.wal_size));
	fmt::print("checkpoint     offset {}, {}\n", g.ckpt_offset, human_bytes(g.ckpt_size));
	struct stat st {};
	const bool device = ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
	fmt::print("dax            {}\n", device      ? "yes (device DAX)"
				       : info->dax ? "yes (MAP_SYNC)"
						   : "no (MAP_SYNC unsupported here)");
	fmt::print("granularity    {} (expected when mapped; PMEM2_FORCE_GRANULARITY overrides)\n",
		   info->dax ? "CACHE_LINE or BYTE" : "PAGE");
	fmt::print("in use         {}\n", use);
	return 0;
}

int cmd_check(const std::string& path, bool verbose)
{
	auto info = inspect_pool(path);
	if (!info)
		return fail(info.error().message);
	if (info->in_use)
		return fail(path + ": pool is in use by another process" +
			    (info->holder_pid > 0 ? fmt::format(" (pid {})", info->holder_pid) : std::string()) +
			    "; stop it before checking");
	fmt::print("{}: superblock ok ({} buffers of {} bytes)\n", path, info->geometry.buffer_count,
		   info->geometry.buffer_size);
	int rc = daxnet_pool_check_layers(path, verbose);
	if (rc != 0)
		return rc;
	fmt::print("{}: consistent\n", path);
	return 0;
}

}  // namespace

int main(int argc, char** argv)
{
	CLI::App app{"daxnet-pool: create, inspect and check daxnet pool files"};
	app.require_subcommand(1);
	app.set_version_flag("--version", std::string("daxnet-pool ") + DAXNET_VERSION);
	int rc = 0;

	std::string path, size_text, wal_text, ckpt_text;
	std::uint32_t buffer_size = kDefaultBufferSize;
	bool require_dax = false, json = false, verbose = false, force = false;

	auto* create = app.add_subcommand("create", "create a new pool file (never overwrites) or format a device-DAX device");
	create->add_option("FILE", path, "pool file to create, or a device-DAX device /dev/daxX.Y")->required();
	create->add_option("--size", size_text, "file size, e.g. 64M, 1G (device DAX: default the whole device)");
	create->add_option("--buffer-size", buffer_size, "packet buffer size")->check(CLI::IsMember({2048, 4096}));
	create->add_option("--wal-size", wal_text, "WAL area size (default size/16)");
	create->add_option("--ckpt-size", ckpt_text, "checkpoint area size (default size/8)");
	create->add_flag("--require-dax", require_dax, "fail unless the file supports MAP_SYNC (DAX)");
	create->add_flag("--force", force, "device DAX: replace the pool the device holds");
	create->callback([&] { rc = cmd_create(path, size_text, buffer_size, wal_text, ckpt_text, require_dax, force); });

	auto* info = app.add_subcommand("info", "print geometry, granularity, DAX and lock state");
	info->add_option("FILE", path, "pool file")->required();
	info->add_flag("--json", json, "print one JSON object");
	info->callback([&] { rc = cmd_info(path, json); });

	auto* check = app.add_subcommand("check", "verify the pool; exit 0 only when consistent");
	check->add_option("FILE", path, "pool file")->required();
	check->add_flag("-v,--verbose", verbose, "report every problem found");
	check->callback([&] { rc = cmd_check(path, verbose); });

	daxnet_pool_register_commands(app, rc);

	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError& e) {
		return app.exit(e);
	}
	return rc;
}
