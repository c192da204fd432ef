// SPDX-License-Identifier: BSD-2-Clause
//
// Connection commands: PING, ECHO, QUIT, HELLO, AUTH, CLIENT, RESET.
#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

void KvService::cmd_ping(Ctx& x)
{
	if (x.argc() == 1)
		resp::simple(x.o, "PONG");
	else if (x.argc() == 2)
		resp::bulk(x.o, x.arg(1));
	else
		resp::wrong_arity(x.o, "ping");
}

void KvService::cmd_echo(Ctx& x)
{
	resp::bulk(x.o, x.arg(1));
}

void KvService::cmd_quit(Ctx& x)
{
	resp::ok(x.o);
	x.c.closing = true;
}

}  // namespace daxnet::kv
