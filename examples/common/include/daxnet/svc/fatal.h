// SPDX-License-Identifier: BSD-2-Clause
//
// The one way a store service stops on its own: a write group it refused
// could not be taken back (docs/wal-format.md §Capacity, batch mode).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace daxnet::svc {

/// KvStore::batch_undo() failed with `rc`: the refused group stays staged
/// and the store commits nothing more (KvStore::failed()), so the service
/// cannot go on. Says so on stderr and exits with status 1 at once, before
/// the pass replies to anyone: no write of the pass is acknowledged or
/// durable, and a restart (systemd: Restart=on-failure) recovers the last
/// commit. `prog`: the service's name; `what`: the group refused.
[[noreturn]] inline void stop_on_failed_undo(const char* prog, const char* what, int rc) noexcept
{
	std::fprintf(stderr,
		     "%s: FATAL: %s could not be taken back (%s); stopping before this pass commits so that "
		     "none of it becomes durable (a restart recovers every acknowledged write)\n",
		     prog, what, std::strerror(-rc));
	std::fflush(stderr);
	std::_Exit(EXIT_FAILURE);
}

}  // namespace daxnet::svc
