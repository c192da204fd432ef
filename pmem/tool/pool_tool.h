// SPDX-License-Identifier: BSD-2-Clause
// Small helpers shared by the daxnet-pool subcommands.
#pragma once

#include <CLI/CLI.hpp>

#include <cctype>
#include <cstdint>
#include <string>

#include "daxnet/result.h"

/// Lets the WAL/KV layers add subcommands (e.g. `dump`) and checks to
/// daxnet-pool; weak defaults live in daxnet_pool.cpp. `rc` receives the
/// exit status of the subcommand that ran.
void daxnet_pool_register_commands(CLI::App& app, int& rc);
/// Checks everything above the superblock; returns the exit status (0 when
/// consistent) after printing one line per problem.
int daxnet_pool_check_layers(const std::string& path, bool verbose);

namespace daxnet::tool {

/// Parses "4096", "64K", "64M", "1G", "1GiB" (binary multiples).
inline Result<std::uint64_t> parse_size(const std::string& s)
{
	std::size_t i = 0;
	std::uint64_t v = 0;
	while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
		if (v > (UINT64_MAX - 9) / 10)
			return make_error(EINVAL, "size '" + s + "' is too large");
		v = v * 10 + static_cast<std::uint64_t>(s[i++] - '0');
	}
	if (i == 0)
		return make_error(EINVAL, "size '" + s + "' is not a number (use e.g. 64M or 1G)");
	std::string unit = s.substr(i);
	for (auto& c : unit)
		c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
	unsigned shift = 0;
	if (unit.empty() || unit == "B")
		shift = 0;
	else if (unit == "K" || unit == "KB" || unit == "KIB")
		shift = 10;
	else if (unit == "M" || unit == "MB" || unit == "MIB")
		shift = 20;
	else if (unit == "G" || unit == "GB" || unit == "GIB")
		shift = 30;
	else if (unit == "T" || unit == "TB" || unit == "TIB")
		shift = 40;
	else
		return make_error(EINVAL, "size '" + s + "' has an unknown unit (use K, M, G or T)");
	if (shift && v > (UINT64_MAX >> shift))
		return make_error(EINVAL, "size '" + s + "' is too large");
	return v << shift;
}

}  // namespace daxnet::tool
