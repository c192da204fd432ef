// SPDX-License-Identifier: BSD-2-Clause
// Small helpers shared by the daxnet-pool subcommands.
#pragma once

#include <CLI/CLI.hpp>

#include <string>


/// Lets the WAL/KV layers add subcommands (e.g. `dump`) and checks to
/// daxnet-pool; weak defaults live in daxnet_pool.cpp. `rc` receives the
/// exit status of the subcommand that ran.
void daxnet_pool_register_commands(CLI::App& app, int& rc);
/// Checks everything above the superblock; returns the exit status (0 when
/// consistent) after printing one line per problem.
int daxnet_pool_check_layers(const std::string& path, bool verbose);
