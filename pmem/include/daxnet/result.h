// SPDX-License-Identifier: BSD-2-Clause
//
// daxnet's setup-path error model: every fallible setup call (create, open,
// register, attach, ...) returns a Result<T> carrying either a value or an
// Error {code, message}. `code` is a positive errno value (EINVAL, ENOSPC,
// ...); `message` is one line meant for a human, already naming the file or
// object concerned. Hot paths never use Result: they are noexcept and return
// counts or negative errno values.
#pragma once

#include <cerrno>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace daxnet {

struct Error {
	int code = 0;         ///< positive errno value
	std::string message;  ///< one line, no trailing newline
};

template <class T>
class [[nodiscard]] Result {
public:
	Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(implicit)
	Result(Error err) : v_(std::in_place_index<1>, std::move(err)) {}  // NOLINT(implicit)

	bool ok() const noexcept { return v_.index() == 0; }
	explicit operator bool() const noexcept { return ok(); }

	T& value() & { return std::get<0>(v_); }
	const T& value() const& { return std::get<0>(v_); }
	T&& value() && { return std::get<0>(std::move(v_)); }
	T* operator->() { return &value(); }
	const T* operator->() const { return &value(); }
	T& operator*() & { return value(); }
	T&& operator*() && { return std::move(*this).value(); }

	const Error& error() const& { return std::get<1>(v_); }

private:
	std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
	Result() = default;
	Result(Error err) : err_(std::move(err)), ok_(false) {}  // NOLINT(implicit)

	bool ok() const noexcept { return ok_; }
	explicit operator bool() const noexcept { return ok_; }
	const Error& error() const& { return err_; }

private:
	Error err_;
	bool ok_ = true;
};

using Status = Result<void>;

/// Builds an Error; `code` is a positive errno value.
inline Error make_error(int code, std::string message)
{
	return Error{code, std::move(message)};
}

}  // namespace daxnet
