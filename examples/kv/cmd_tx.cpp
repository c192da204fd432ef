// SPDX-License-Identifier: BSD-2-Clause
//
// Transactions: MULTI / EXEC / DISCARD / WATCH / UNWATCH.
//
// Durability: every write of an EXEC is staged into the commit batch of the
// event-loop pass that runs the EXEC and made durable by that pass's one
// commit (docs/wal-format.md: a batch is recovered whole or not at all), so
// after a crash either all of an EXEC's writes are there or none. EXEC is
// admitted whole first (KvStore::admit: log room made) and runs in the
// store's batch mode (KvStore::batch_begin: no checkpoint between its
// entries makes part of it durable on its own); a write refused for space
// while it runs (a queued script's, which no admission can count) takes
// the whole transaction back: -EXECABORT ... OOM, nothing applied -- no
// write, no PUBLISH delivered, no SELECT, no CONFIG SET, no WATCHer of
// another client dirtied (end_atomic(); SCRIPT LOAD's cache entry stays). A
// BGSAVE or DEBUG RELOAD queued in the transaction checkpoints after its
// last write was staged (see checkpoint_now()), never in between.
#include <cerrno>
#include <cstdio>

#include <cstring>

#include "kv.h"

namespace daxnet::kv {

namespace resp = daxnet::proto::resp;

void KvService::cmd_multi(Ctx& x)
{
	if (x.cl.in_multi) {
		x.cl.multi_error = true;
		resp::error(x.o, "ERR MULTI calls can not be nested");
		return;
	}
	x.cl.in_multi = true;
	x.cl.multi_error = false;
	x.cl.queue.clear();
	resp::ok(x.o);
}

void KvService::cmd_discard(Ctx& x)
{
	if (!x.cl.in_multi) {
		resp::error(x.o, "ERR DISCARD without MULTI");
		return;
	}
	x.cl.in_multi = false;
	x.cl.multi_error = false;
	x.cl.queue.clear();
	x.cl.dirty_cas = false;
	unwatch_all(x.cl);
	resp::ok(x.o);
}

void KvService::cmd_exec(Ctx& x)
{
	Client& cl = x.cl;
	if (!cl.in_multi) {
		resp::error(x.o, "ERR EXEC without MULTI");
		return;
	}
	auto queue = std::move(cl.queue);
	cl.queue.clear();
	cl.in_multi = false;
	// A queued script (EVAL, EVALSHA; not the _RO forms) may write: it
	// counts as a write and as using memory, like the commands it calls.
	auto may_write = [](const Cmd* c) {
		return c && ((c->flags & kWrite) || c->fn == &KvService::cmd_eval || c->fn == &KvService::cmd_evalsha);
	};
	// Redis refuses EXEC at maxmemory only for commands that may use
	// memory (denyoom, and scripts): a transaction of DELs frees it.
	auto adds = [](const Cmd* c) {
		return c && ((c->flags & kDenyOom) || c->fn == &KvService::cmd_eval || c->fn == &KvService::cmd_evalsha);
	};
	auto frees_only = [](const Cmd* c) {
		return c->fn == &KvService::cmd_del || c->fn == &KvService::cmd_getdel ||
		       c->fn == &KvService::cmd_flushall || c->fn == &KvService::cmd_flushdb;
	};
	bool uses_memory = false;
	for (const auto& q : queue)
		if (adds(find_command(q[0])))
			uses_memory = true;
	bool has_write = false;
	for (const auto& q : queue)
		if (may_write(find_command(q[0])))
			has_write = true;
	if (has_write && min_replicas_ > replicas_.size() && !cl.multi_error) {
		cl.dirty_cas = false;
		unwatch_all(cl);
		resp::error(x.o, "EXECABORT Transaction discarded because of: NOREPLICAS Not enough good replicas to write.");
		return;
	}
	if (uses_memory && over_maxmemory() && !cl.multi_error) {
		cl.dirty_cas = false;
		unwatch_all(cl);
		resp::error(x.o, "EXECABORT Transaction discarded because of: OOM command not allowed when used memory > "
				 "'maxmemory'.");
		return;
	}
	if (cl.multi_error) {
		cl.multi_error = false;
		cl.dirty_cas = false;
		unwatch_all(cl);
		resp::error(x.o, "EXECABORT Transaction discarded because of previous errors.");
		return;
	}
	// a watched key that was alive at WATCH and has expired since changed
	for (const Client::Watch& w : cl.watched)
		if (w.alive && w.expiry != 0 && !kv_.exists(w.key))
			cl.dirty_cas = true;
	const bool aborted = cl.dirty_cas;
	cl.dirty_cas = false;
	unwatch_all(cl);
	if (aborted) {
		reply_null_array(x);
		return;
	}
	// Admission of the whole transaction as one batch (docs/wal-format.md
	// §Capacity): room in the log made now, so no checkpoint runs between
	// its entries; refused whole when the store cannot take it. Every
	// argument of a command that may add data (denyoom, or a script) is
	// counted as a possible new entry (what a script writes is known only
	// when it runs: see below); one that rewrites or deletes (EXPIRE,
	// LPOP, MOVE) needs log room only; DEL, UNLINK, GETDEL and the flushes
	// need neither: they are logged in the room kept for freeing entries,
	// so a full pool still takes MULTI; DEL k; EXEC.
	std::uint64_t recs = 0, logrecs = 0, freerecs = 0;
	const std::uint32_t bsize = pool_.buffer_size();
	for (const auto& q : queue) {
		const Cmd* c = find_command(q[0]);
		if (!may_write(c))
			continue;
		if (frees_only(c)) {
			// Their records too: inside the batch no checkpoint can make
			// room, so a transaction of more DELs than the ring had left
			// was refused (EXECABORT OOM) on a pool that was not full.
			// Counted as the store logs them: one KV_DEL per existing key,
			// one KV_FLUSHALL, or FLUSHDB's KV_DEL per key of its database.
			std::string buf;
			if (c->fn == &KvService::cmd_flushall)
				freerecs += 1;
			else if (c->fn == &KvService::cmd_flushdb)
				freerecs += multi_db_ ? dbsize_of(x.cl.db) + 1 : 1;
			else
				for (std::size_t i = 1; i < q.size(); ++i)
					freerecs += kv_.exists(skey(x, q[i], buf)) ? 1 : 0;
			continue;
		}
		std::uint64_t n = 0;
		for (std::size_t i = 1; i < q.size(); ++i)
			n += daxnet::pmem::wal_records_for(q[i].size() / bsize + 2);
		// a list or set write rewrites its keys' values whole (coll.h)
		if (c->first_key > 0 && (std::strcmp(c->group, "list") == 0 || std::strcmp(c->group, "set") == 0)) {
			const std::size_t last = c->last_key < 0 ? q.size() - 1 : static_cast<std::size_t>(c->last_key);
			std::string buf;
			for (std::size_t i = static_cast<std::size_t>(c->first_key); i <= last && i < q.size(); i += static_cast<std::size_t>(c->step)) {
				ValueRef v{};
				if (kv_.get(skey(x, q[i], buf), v) == 1)
					n += daxnet::pmem::wal_records_for(v.size / bsize + 2);
			}
		}
		// a key moved or copied (RENAME, MOVE, COPY) is its value's
		// records again, however its size and slices add up
		if (c->fn == &KvService::cmd_rename || c->fn == &KvService::cmd_renamenx ||
		    c->fn == &KvService::cmd_move || c->fn == &KvService::cmd_copy) {
			std::string buf;
			ValueRef v{};
			if (q.size() > 1 && kv_.get(skey(x, q[1], buf), v) == 1)
				n += daxnet::pmem::wal_records_for(v.slices.size()) + 1;
		}
		logrecs += n;
		if (adds(c))
			recs += n;
	}
	// A transaction that only frees may use the log room kept for freeing
	// entries; with anything else in it, its freeing entries are counted
	// with the rest below the reserve (they may come first).
	if (logrecs || freerecs) {
		const int rc = logrecs ? kv_.admit(recs, logrecs + freerecs) : kv_.admit_frees(freerecs);
		if (rc < 0) {
			++refused_;
			resp::error(x.o, "EXECABORT Transaction discarded because of: " +
						 (rc == -EMSGSIZE ? batch_too_large("the transaction", logrecs + freerecs, logrecs == 0).resp()
								  : capacity_refusal().resp()));
			return;
		}
	}
	if (logrecs)
		core_.reclaim_if_short();  // start reclaiming now rather than in the middle
	// The transaction runs as one atomic group (the store's batch mode: no
	// checkpoint between its entries, each can be taken back): a write
	// refused for space on the way -- what the admission above could not
	// foresee, such as a script's writes -- refuses the whole transaction
	// with every write taken back, as Redis refuses it before it runs. Its
	// replies are held (values copied) until it is known to stand.
	in_exec_ = true;
	const int db0 = cl.db;  // a SELECT of a refused transaction is taken back too
	AtomicGroup grp(*this);
	daxnet::proto::OutBuf& out = exec_out_;
	out.clear();
	resp::array(out, queue.size());
	std::vector<std::string_view> argv;
	bool over = false;  // the replies passed the client's output limit
	for (const auto& q : queue) {
		argv.assign(q.begin(), q.end());
		Ctx y{x.srv, x.c, cl, out, argv, nullptr};
		dispatch(y);
		// The replies held count against --client-output-buffer-limit as
		// they are built, like any other (N GETs of a 16 MiB value must
		// not build N x 16 MiB first): over it the client is closed, its
		// replies dropped, and the transaction still runs whole.
		if (!over && x.srv.check_output_limit(x.c, out.size()))
			over = true;
		if (over) {
			out.clear();
			continue;
		}
		if (x.c.closing)
			break;
	}
	in_exec_ = false;
	const bool refused = grp.refused();
	grp.end(refused);
	if (refused) {
		out.clear();
		out.shrink(64 * 1024);
		checkpoint_after_exec_ = false;
		cl.db = db0;
		++refused_;
		resp::error(x.o, "EXECABORT Transaction discarded because of: OOM command not allowed when used memory > "
				 "'maxmemory'. (daxnet: a write of the transaction found the pool full; none of it was "
				 "applied)");
		return;
	}
	if (!over)
		x.o.append(out.bytes());
	out.clear();
	out.shrink(64 * 1024);
	if (checkpoint_after_exec_) {
		// BGSAVE / DEBUG RELOAD inside the transaction: the checkpoint
		// now covers all of it (its batch is staged whole), never half.
		checkpoint_after_exec_ = false;
		if (const auto why = checkpoint_now())
			std::fprintf(stderr, "daxnet-kv: checkpoint scheduled by EXEC failed: %s\n", why->message.c_str());
		else {
			last_save_ns_ = daxnet::pmem::realtime_ns();
			writes_at_save_ = writes_;
		}
	}
}

void KvService::cmd_watch(Ctx& x)
{
	Client& cl = x.cl;
	if (cl.in_multi) {
		resp::error(x.o, "ERR WATCH inside MULTI is not allowed");
		return;
	}
	const std::uint64_t now = daxnet::pmem::realtime_ns();
	for (std::size_t i = 1; i < x.argc(); ++i) {
		std::string buf;
		const std::string key(skey(x, x.arg(i), buf));
		bool dup = false;
		for (const Client::Watch& w : cl.watched)
			if (w.key == key)
				dup = true;
		if (dup)
			continue;
		Client::Watch w;
		w.key = key;
		ValueRef v{};
		if (kv_.get(key, v) == 1 && (v.expiry_ns == 0 || v.expiry_ns > now)) {
			w.alive = true;
			w.expiry = v.expiry_ns;
		}
		cl.watched.push_back(std::move(w));
		watched_[key].push_back(cl.id);
	}
	resp::ok(x.o);
}

void KvService::cmd_unwatch(Ctx& x)
{
	unwatch_all(x.cl);
	x.cl.dirty_cas = false;
	resp::ok(x.o);
}

}  // namespace daxnet::kv
