// SPDX-License-Identifier: BSD-2-Clause
#include <catch2/catch.hpp>
