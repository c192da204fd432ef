// SPDX-License-Identifier: BSD-2-Clause
//
// Replays the fuzz targets' seed corpora and saved failure inputs through
// the same target code libFuzzer runs (built with DAXNET_FUZZ_REPLAY: a
// failed FUZZ_CHECK throws instead of aborting, so every failing file is
// named). See tests/fuzz/fuzz.h.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz.h"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> inputs(const std::string& name)
{
	std::vector<fs::path> files;
	const fs::path root = fs::path(DAXNET_SOURCE_DIR) / "tests" / "fuzz";
	for (const fs::path& dir : {root / "corpus" / name, root / "regressions" / name}) {
		if (!fs::is_directory(dir))
			continue;
		for (const auto& e : fs::directory_iterator(dir))
			if (e.is_regular_file())
				files.push_back(e.path());
	}
	std::sort(files.begin(), files.end());
	return files;
}

std::vector<std::uint8_t> slurp(const fs::path& p)
{
	std::ifstream f(p, std::ios::binary);
	return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// Runs every input of target `name`; returns how many were run.
std::size_t replay(const std::string& name)
{
	const auto& reg = daxnet::fuzz::registry();
	const auto it = reg.find(name);
	REQUIRE(it != reg.end());
	const auto files = inputs(name);
	for (const auto& f : files) {
		const auto bytes = slurp(f);
		INFO("input " << f.string() << " (" << bytes.size() << " bytes)");
		try {
			it->second(bytes.data(), bytes.size());
		} catch (const daxnet::fuzz::CheckFailed& e) {
			FAIL_CHECK(e.what());
		}
	}
	return files.size();
}

}  // namespace

// One run per target linked in (the registry holds the targets whose
// sources CMake found buildable here).
std::vector<std::string> targets()
{
	std::vector<std::string> names;
	for (const auto& [name, fn] : daxnet::fuzz::registry())
		names.push_back(name);
	return names;
}

TEST_CASE("each fuzz target passes its invariants on the seed corpus and every saved failure", "[unit][fuzz]")
{
	const std::string target = GENERATE(from_range(targets()));
	CAPTURE(target);
	CHECK(replay(target) > 0);
}
