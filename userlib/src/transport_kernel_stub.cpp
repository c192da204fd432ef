// SPDX-License-Identifier: BSD-2-Clause
//
// Placeholder for the kernel transport until userlib/src/transport_kernel.cpp
// exists (CMake builds that file instead of this one when it is present).
#include <cerrno>

#include "transport.h"

namespace daxnet::detail {

Result<std::unique_ptr<Transport>> make_kernel_transport(const TransportConfig&)
{
	return make_error(ENODEV, "kernel transport: not built (userlib/src/transport_kernel.cpp missing)");
}

}  // namespace daxnet::detail
