// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet-pool CLI: exit status and one-line errors, run as a real process.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>

struct Run {
	int status = -1;
	std::string out;  // stdout + stderr
};

static Run run(const std::string& args)
{
	std::string cmd = std::string(DAXNET_BIN_DIR) + "/daxnet-pool " + args + " 2>&1";
	Run r;
	FILE* p = ::popen(cmd.c_str(), "r");
	REQUIRE(p != nullptr);
	std::array<char, 4096> buf{};
	std::size_t n;
	while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
		r.out.append(buf.data(), n);
	int st = ::pclose(p);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return r;
}

TEST_CASE("daxnet-pool create, info and check succeed on a fresh pool", "[pmem]")
{
	std::string path = "/dev/shm/daxnet-cli-" + std::to_string(::getpid());
	::unlink(path.c_str());
	auto c = run("create " + path + " --size 8M --buffer-size 2048");
	CHECK(c.status == 0);
	CHECK_THAT(c.out, Catch::Contains("buffers of 2048 bytes"));
	CHECK_THAT(c.out, Catch::Contains("granularity PAGE"));
	auto i = run("info " + path);
	CHECK(i.status == 0);
	CHECK_THAT(i.out, Catch::Contains("in use         no"));
	CHECK_THAT(i.out, Catch::Contains("dax            no"));
	auto j = run("info --json " + path);
	CHECK(j.status == 0);
	CHECK_THAT(j.out, Catch::Contains("\"buffer_size\":2048"));
	auto k = run("check " + path);
	CHECK(k.status == 0);
	CHECK_THAT(k.out, Catch::Contains("consistent"));
	::unlink(path.c_str());
}

TEST_CASE("daxnet-pool check exits non-zero with one line on a corrupt pool", "[pmem]")
{
	std::string path = "/dev/shm/daxnet-cli-bad-" + std::to_string(::getpid());
	::unlink(path.c_str());
	REQUIRE(run("create " + path + " --size 8M").status == 0);
	int fd = ::open(path.c_str(), O_WRONLY);
	REQUIRE(fd >= 0);
	REQUIRE(::pwrite(fd, "\xff", 1, 44) == 1);  // a bit flip in buffer_count
	::close(fd);
	auto k = run("check " + path);
	CHECK(k.status != 0);
	CHECK(k.out == "daxnet-pool: " + path + ": superblock checksum mismatch (corrupt superblock)\n");
	::unlink(path.c_str());
}

TEST_CASE("daxnet-pool create rejects bad sizes and existing files", "[pmem]")
{
	std::string path = "/dev/shm/daxnet-cli-sz-" + std::to_string(::getpid());
	::unlink(path.c_str());
	auto bad = run("create " + path + " --size 12Q");
	CHECK(bad.status != 0);
	CHECK_THAT(bad.out, Catch::Contains("unknown unit"));
	CHECK(::access(path.c_str(), F_OK) != 0);
	auto small = run("create " + path + " --size 100K");
	CHECK(small.status != 0);
	CHECK_THAT(small.out, Catch::Contains("minimum of 1 MiB"));
	REQUIRE(run("create " + path + " --size 4M").status == 0);
	auto again = run("create " + path + " --size 4M");
	CHECK(again.status != 0);
	CHECK_THAT(again.out, Catch::Contains("File exists"));
	auto dax = run("create " + path + "-dax --size 4M --require-dax");
	CHECK(dax.status != 0);
	CHECK_THAT(dax.out, Catch::Contains("not DAX"));
	::unlink(path.c_str());
}

TEST_CASE("daxnet-pool create takes a size for files and device DAX only as a device", "[pmem]")
{
	std::string path = "/dev/shm/daxnet-cli-dev-" + std::to_string(::getpid());
	::unlink(path.c_str());
	auto nosize = run("create " + path);
	CHECK(nosize.status != 0);
	CHECK_THAT(nosize.out, Catch::Contains("--size is required"));
	auto force = run("create " + path + " --size 4M --force");
	CHECK(force.status != 0);
	CHECK_THAT(force.out, Catch::Contains("files are never overwritten"));
	CHECK(::access(path.c_str(), F_OK) != 0);
	// A character device that is not device DAX is refused, untouched.
	auto chr = run("create /dev/null");
	CHECK(chr.status != 0);
	CHECK_THAT(chr.out, Catch::Contains("not device DAX"));
	auto info = run("info /dev/null");
	CHECK(info.status != 0);
	CHECK_THAT(info.out, Catch::Contains("not device DAX"));
}
