// SPDX-License-Identifier: BSD-2-Clause
//
// The pool file: one file (on a DAX file system over NVDIMM in production,
// any file elsewhere) that holds every packet buffer, the WAL area and the
// checkpoint area. The on-media format is specified in docs/pool-format.md;
// this header follows it field for field.
//
// Layers:
//   Geometry    where everything sits (pure arithmetic, no I/O).
//   PoolView    addressing + the persistence domain over some mapping; what
//               the WAL, the KV index and the transports use. Tests build one
//               over a DRAM image with a shadow domain.
//   Pool        a pool file mapped through libpmem2 (pmem2_map_new), locked
//               against a second process, owning its mapping (RAII).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "daxnet/pmem/persist.h"
#include "daxnet/result.h"

namespace daxnet::pmem {

inline constexpr std::array<char, 8> kPoolMagic = {'D', 'A', 'X', 'N', 'E', 'T', 'P', 'L'};
inline constexpr std::uint32_t kPoolFormatVersion = 1;
inline constexpr std::uint64_t kSuperblockSize = 4096;   ///< bytes reserved at offset 0
inline constexpr std::uint64_t kAreaAlign = 4096;        ///< every area is page aligned
inline constexpr std::uint32_t kDefaultBufferSize = 4096;
inline constexpr std::uint64_t kMinPoolSize = 1u << 20;  ///< 1 MiB

using Uuid = std::array<std::uint8_t, 16>;

/// On-media superblock, little-endian, at offset 0 of the pool file
/// (docs/pool-format.md §Superblock). Written once by create(); never
/// rewritten. `checksum` is CRC32C over bytes [0, offsetof(checksum)).
struct Superblock {
	char magic[8];                 ///< "DAXNETPL"
	std::uint32_t version;         ///< kPoolFormatVersion
	std::uint32_t header_size;     ///< sizeof(Superblock) = 128
	std::uint8_t uuid[16];         ///< random, identifies this pool
	std::uint64_t pool_size;       ///< file size at create time
	std::uint32_t buffer_size;     ///< 2048 or 4096
	std::uint32_t buffer_count;
	std::uint64_t buffer_offset;   ///< page aligned
	std::uint64_t wal_offset;      ///< page aligned
	std::uint64_t wal_size;
	std::uint64_t ckpt_offset;     ///< page aligned
	std::uint64_t ckpt_size;
	std::uint64_t create_time_ns;  ///< CLOCK_REALTIME at create
	std::uint32_t flags;           ///< must be zero in version 1
	std::uint8_t reserved[24];     ///< must be zero in version 1
	std::uint32_t checksum;        ///< CRC32C of everything above
};
static_assert(sizeof(Superblock) == 128);
static_assert(offsetof(Superblock, checksum) == 124, "docs/pool-format.md: checksum at 124");

struct Geometry {
	std::uint64_t pool_size = 0;
	std::uint32_t buffer_size = kDefaultBufferSize;
	std::uint32_t buffer_count = 0;
	std::uint64_t buffer_offset = 0;
	std::uint64_t wal_offset = 0;
	std::uint64_t wal_size = 0;
	std::uint64_t ckpt_offset = 0;
	std::uint64_t ckpt_size = 0;
};

/// Plans the layout of a pool of `pool_size` bytes. wal_size / ckpt_size of 0
/// pick the defaults of docs/pool-format.md. Fails (EINVAL) on a buffer size
/// other than 2048/4096, a pool too small to hold one buffer, or areas that
/// do not fit.
Result<Geometry> plan_geometry(std::uint64_t pool_size, std::uint32_t buffer_size = kDefaultBufferSize,
			       std::uint64_t wal_size = 0, std::uint64_t ckpt_size = 0);

/// Fills `sb` for `g` with a fresh checksum.
void format_superblock(Superblock& sb, const Geometry& g, const Uuid& uuid,
		       std::uint64_t create_time_ns) noexcept;

/// Validates a superblock read from a file of `file_size` bytes; the error
/// message names what is wrong (magic, version, checksum, geometry).
Result<Geometry> parse_superblock(const Superblock& sb, std::uint64_t file_size);

/// Addressing over one mapping of a pool plus its persistence domain.
/// Cheap to copy; does not own the mapping.
class PoolView {
public:
	PoolView() = default;
	PoolView(std::byte* base, const Geometry& g, PersistDomain* domain) noexcept
	    : base_(base), geo_(g), domain_(domain)
	{
	}

	std::byte* base() const noexcept { return base_; }
	const Geometry& geometry() const noexcept { return geo_; }
	std::uint32_t buffer_size() const noexcept { return geo_.buffer_size; }
	std::uint32_t buffer_count() const noexcept { return geo_.buffer_count; }
	bool valid_buffer(std::uint32_t idx) const noexcept { return idx < geo_.buffer_count; }

	/// Buffer `idx` (caller checks valid_buffer on untrusted input).
	std::byte* buffer(std::uint32_t idx) const noexcept
	{
		return base_ + geo_.buffer_offset + std::uint64_t{idx} * geo_.buffer_size;
	}
	/// The whole buffer area (buffer 0 .. buffer_count-1, contiguous).
	std::span<std::byte> buffer_area() const noexcept
	{
		return {base_ + geo_.buffer_offset, std::uint64_t{geo_.buffer_count} * geo_.buffer_size};
	}
	std::span<std::byte> wal_area() const noexcept { return {base_ + geo_.wal_offset, geo_.wal_size}; }
	std::span<std::byte> ckpt_area() const noexcept { return {base_ + geo_.ckpt_offset, geo_.ckpt_size}; }
	const Superblock& superblock() const noexcept { return *reinterpret_cast<const Superblock*>(base_); }

	PersistDomain& domain() const noexcept { return *domain_; }

private:
	std::byte* base_ = nullptr;
	Geometry geo_{};
	PersistDomain* domain_ = nullptr;
};

/// Facts about a pool file gathered without mapping it for writing.
struct PoolInfo {
	Geometry geometry;
	Uuid uuid{};
	std::uint32_t version = 0;
	std::uint64_t file_size = 0;
	std::uint64_t create_time_ns = 0;
	bool in_use = false;    ///< another process holds the pool lock
	long holder_pid = -1;   ///< that process, when /proc/locks tells
	bool dax = false;       ///< device DAX, or MAP_SYNC mapping succeeds on this file
};

/// Reads and validates the superblock of `path`; never writes to the file.
Result<PoolInfo> inspect_pool(const std::string& path);

/// A byte count as an operator reads it: "512 B", "64 MiB", "1.5 GiB"
/// (binary units; one decimal unless whole). For banners and tools, not
/// the hot path.
std::string human_bytes(std::uint64_t n);

class Pool {
public:
	struct CreateOptions {
		std::uint64_t size = 0;                       ///< file size in bytes
		std::uint32_t buffer_size = kDefaultBufferSize;
		std::uint64_t wal_size = 0;                   ///< 0: default
		std::uint64_t ckpt_size = 0;                  ///< 0: default
		bool require_dax = false;                     ///< fail unless MAP_SYNC works
		bool overwrite = false;  ///< device DAX: replace a pool the device holds
	};
	struct OpenOptions {
		bool require_dax = false;  ///< fail unless MAP_SYNC works
	};

	/// Creates a new pool file (fails with EEXIST if `path` exists),
	/// formats it, persists the superblock and returns it mapped and locked.
	/// A device-DAX path (/dev/daxX.Y) is formatted in place: the pool
	/// takes the whole device unless `size` is given (EINVAL if larger),
	/// and a device that holds a pool gives EEXIST unless `overwrite`.
	static Result<Pool> create(const std::string& path, const CreateOptions& opt);
	/// Opens an existing pool: locks it (EBUSY when another process has it),
	/// validates the superblock before mapping, maps through libpmem2.
	/// Never writes to the file on failure.
	static Result<Pool> open(const std::string& path, const OpenOptions& opt);
	static Result<Pool> open(const std::string& path) { return open(path, OpenOptions{}); }

	Pool(Pool&&) noexcept;
	Pool& operator=(Pool&&) noexcept;
	~Pool();

	const PoolView& view() const noexcept;
	const Geometry& geometry() const noexcept { return view().geometry(); }
	PersistDomain& domain() const noexcept { return view().domain(); }
	Granularity granularity() const noexcept;
	/// PAGE granularity only: starts the flusher thread that runs the
	/// domain's pipelined drains (PersistDomain::drain_begin(), completion_fd();
	/// docs/pool-format.md §Persistence, pipelined drain). `hook`, when set,
	/// runs on the flusher thread with the ticket before each msync (tests
	/// hold a drain in flight with it). Returns 0, -EOPNOTSUPP (not PAGE),
	/// -EALREADY, or -errno. The pool's destructor completes the drain in
	/// flight and joins the thread.
	int start_flusher(std::function<void(std::uint64_t)> hook = {});
	bool is_dax() const noexcept;  ///< mapped with MAP_SYNC, or device DAX
	const std::string& path() const noexcept;
	Uuid uuid() const noexcept;
	int fd() const noexcept;       ///< the locked file descriptor

private:
	struct Impl;
	explicit Pool(std::unique_ptr<Impl> impl) noexcept;
	std::unique_ptr<Impl> impl_;
};

}  // namespace daxnet::pmem
