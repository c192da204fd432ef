// SPDX-License-Identifier: BSD-2-Clause
//
// Human-readable sizes on command lines: "4096", "64K", "64M", "1G",
// "1GiB" (binary multiples). Shared by daxnet-pool and the services.
#pragma once

#include <cctype>
#include <cstdint>
#include <string>

#include "daxnet/result.h"

namespace daxnet {

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

}  // namespace daxnet
