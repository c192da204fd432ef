// SPDX-License-Identifier: BSD-2-Clause
//
// Common pieces of the libFuzzer targets (tests/fuzz/fuzz_*.cpp).
//
// Every target is written once and built two ways:
//   * as a libFuzzer binary (DAXNET_FUZZ=ON, clang, -fsanitize=fuzzer):
//     DAXNET_FUZZ_TARGET(name) defines LLVMFuzzerTestOneInput and a failed
//     FUZZ_CHECK prints the condition and aborts, which libFuzzer reports as
//     a crash and saves as an artifact;
//   * into the replay test (tests/fuzz/regressions, g++, any preset, built
//     with DAXNET_FUZZ_REPLAY): DAXNET_FUZZ_TARGET(name) registers a named
//     function and a failed FUZZ_CHECK throws, so a Catch2 test can replay
//     the seed corpus and every saved crash input and report which failed.
//
// FuzzInput consumes the input bytes front to back: the targets take a few
// control bytes (limits, slicing schedule) and treat the rest as the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#ifdef DAXNET_FUZZ_REPLAY
#include <map>
#include <stdexcept>
#endif

namespace daxnet::fuzz {

using TargetFn = int (*)(const std::uint8_t* data, std::size_t size);

#ifdef DAXNET_FUZZ_REPLAY
/// Targets linked into the replay test, by name (fuzz_resp.cpp -> "resp").
inline std::map<std::string, TargetFn>& registry()
{
	static std::map<std::string, TargetFn> r;
	return r;
}

struct Register {
	Register(const char* name, TargetFn fn) { registry()[name] = fn; }
};

/// Thrown by a failed FUZZ_CHECK in the replay build.
struct CheckFailed : std::runtime_error {
	using std::runtime_error::runtime_error;
};

[[noreturn]] inline void check_failed(const char* cond, const char* file, int line, const std::string& what)
{
	throw CheckFailed(std::string(file) + ":" + std::to_string(line) + ": FUZZ_CHECK(" + cond + ") failed" +
			  (what.empty() ? "" : ": " + what));
}

#define DAXNET_FUZZ_TARGET(name)                                                                   \
	static int daxnet_fuzz_one_##name(const std::uint8_t* data, std::size_t size);             \
	static const ::daxnet::fuzz::Register daxnet_fuzz_reg_##name(#name, daxnet_fuzz_one_##name); \
	static int daxnet_fuzz_one_##name(const std::uint8_t* data, std::size_t size)
#else
[[noreturn]] inline void check_failed(const char* cond, const char* file, int line, const std::string& what)
{
	std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed%s%s\n", file, line, cond, what.empty() ? "" : ": ",
		     what.c_str());
	std::fflush(stderr);
	std::abort();
}

#define DAXNET_FUZZ_TARGET(name) extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
#endif

/// DAXNET_FUZZ_KNOWN set in the environment: the targets skip inputs of
/// bug classes already reported and kept as failing regression tests, so
/// a fuzzing session spends its time finding new ones (scripts/fuzz.sh sets
/// it for a target whose saved regressions still fail).
inline bool skip_known_bugs()
{
	static const bool skip = std::getenv("DAXNET_FUZZ_KNOWN") != nullptr;
	return skip;
}

/// Checks an invariant of the code under test; `what` (a std::string
/// expression) is evaluated only on failure.
#define FUZZ_CHECK_MSG(cond, what)                                                   \
	do {                                                                         \
		if (!(cond))                                                         \
			::daxnet::fuzz::check_failed(#cond, __FILE__, __LINE__, (what)); \
	} while (0)
#define FUZZ_CHECK(cond) FUZZ_CHECK_MSG(cond, std::string())

/// Reads control values from the front of the input; past the end it
/// yields zeros, so every input is meaningful.
class FuzzInput {
public:
	FuzzInput(const std::uint8_t* data, std::size_t size) noexcept : p_(data), n_(size) {}

	std::size_t remaining() const noexcept { return n_ - at_; }
	bool empty() const noexcept { return at_ == n_; }

	std::uint8_t u8() noexcept { return at_ < n_ ? p_[at_++] : 0; }
	std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
	std::uint32_t u32() noexcept { return u16() | (std::uint32_t{u16()} << 16); }
	std::uint64_t u64() noexcept { return u32() | (std::uint64_t{u32()} << 32); }
	bool flag() noexcept { return (u8() & 1) != 0; }

	/// Up to `n` bytes (fewer at the end of the input).
	std::span<const std::uint8_t> bytes(std::size_t n) noexcept
	{
		if (n > remaining())
			n = remaining();
		std::span<const std::uint8_t> s(p_ + at_, n);
		at_ += n;
		return s;
	}
	/// Everything left.
	std::span<const std::uint8_t> rest() noexcept { return bytes(remaining()); }

private:
	const std::uint8_t* p_;
	std::size_t n_;
	std::size_t at_ = 0;
};

/// A deterministic slicing schedule: slice lengths in [1, max_len] drawn
/// from a seed (xorshift), so one control byte describes many cut points.
class Slicer {
public:
	Slicer(std::uint32_t seed, std::uint32_t max_len) noexcept : s_(seed * 2654435761u + 1u), max_(max_len) {}
	std::size_t next() noexcept
	{
		s_ ^= s_ << 13;
		s_ ^= s_ >> 17;
		s_ ^= s_ << 5;
		return 1 + s_ % max_;
	}

private:
	std::uint32_t s_;
	std::uint32_t max_;
};

}  // namespace daxnet::fuzz
