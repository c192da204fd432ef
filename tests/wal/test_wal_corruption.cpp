// SPDX-License-Identifier: BSD-2-Clause
//
// Recovery from damaged media (docs/wal-format.md §Recovery).
#include <catch2/catch.hpp>

#include "wal_test_util.h"
