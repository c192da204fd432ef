# SPDX-License-Identifier: BSD-2-Clause
"""Helpers for bench/run.py."""
