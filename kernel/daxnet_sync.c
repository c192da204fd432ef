// SPDX-License-Identifier: GPL-2.0
/*
 * DAXNET_IOC_SYNC: TX, spare intake, RX for one ring pair.
 *
 * Everything here runs in process context with port->lock held, from the
 * SYNC ioctl (and poll, which only reads). Sockets are locked one at a
 * time with lock_sock(), once per connection per phase.
 *
 * Order of a sync: read and validate the three user head indices (a bad
 * one fails the sync before anything changes); release RX slots and take
 * swapped-in buffers; take spare buffers; TX; RX; publish tails.
 */
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/uio.h>
#include <linux/bvec.h>
#include <linux/skbuff.h>
#include <linux/poll.h>
#include <net/tcp.h>

#include "daxnet_priv.h"
#include "daxnet_zc.h"

#define DXN_NONE	U32_MAX

static struct daxnet_slot *dxn_slot(struct dxn_ringstate *rs, u32 i)
{
	return (struct daxnet_slot *)rs->slots + i;
}

static u32 dxn_prev(u32 i, u32 n)
{
	return i ? i - 1 : n - 1;
}

/*
 * Read user head and cur of a ring once and check them against the
 * kernel's copy: head may only move forward within [old head, tail] and
 * cur must lie in [head, tail]. port->lock held.
 */
static int dxn_read_ring(struct dxn_ringstate *rs, u32 *headp, u32 *curp)
{
	/* Acquire: pairs with user space's release store of head. */
	u32 head = smp_load_acquire(&rs->ring->head);
	u32 cur = READ_ONCE(rs->ring->cur);
	u32 n = rs->n;

	if (head >= n || cur >= n)
		return -EINVAL;
	if (daxnet_ring_space(rs->head, head, n) >
	    daxnet_ring_space(rs->head, rs->tail, n))
		return -EINVAL;
	if (daxnet_ring_space(head, cur, n) >
	    daxnet_ring_space(head, rs->tail, n))
		return -EINVAL;
	*headp = head;
	*curp = cur;
	return 0;
}

/* dxn_read_ring() for the head. port->lock held. */
static int dxn_read_head(struct dxn_ringstate *rs, u32 *headp)
{
	u32 cur;

	return dxn_read_ring(rs, headp, &cur);
}

/* dxn_read_ring() for cur. port->lock held. */
static int dxn_read_cur(struct dxn_ringstate *rs, u32 *curp)
{
	u32 head;

	return dxn_read_ring(rs, &head, curp);
}

/*
 * Make room for n more RELEASE entries behind the rel_count queued ones.
 * The queue never exceeds rel_max entries (a power of two, at most 2^23),
 * so neither the sum nor the doubling below can wrap. A failed growth is
 * reported to the caller, which handles it: no allocation warning.
 * port->lock held. 0 or -ENOMEM.
 */
static int dxn_rel_room(struct dxn_pair *pair, u32 n)
{
	u32 need, cap, *q;

	lockdep_assert_held(&pair->port->lock);
	if (check_add_overflow(pair->rel_count, n, &need) ||
	    need > pair->rel_max)
		return -ENOMEM;
	if (need <= pair->rel_cap - pair->rel_head)
		return 0;
	if (pair->rel_head) {
		memmove(pair->releases, pair->releases + pair->rel_head,
			pair->rel_count * sizeof(u32));
		pair->rel_head = 0;
	}
	if (need <= pair->rel_cap)
		return 0;
	if (dxn_fault_release_grow())
		return -ENOMEM;
	/* rel_cap <= rel_max <= 2^23: doubling it fits in a u32. */
	cap = min_t(u32, max_t(u32, pair->rel_cap * 2, roundup_pow_of_two(need)),
		    pair->rel_max);
	q = kvmalloc_array(cap, sizeof(u32), GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!q)
		return -ENOMEM;
	memcpy(q, pair->releases, pair->rel_count * sizeof(u32));
	kvfree(pair->releases);
	pair->releases = q;
	pair->rel_cap = cap;
	return 0;
}

/**
 * dxn_release_promise - reserve the RELEASE entries an operation may owe
 * @pair: the ring pair
 * @n: the most RELEASE slots the operation can owe on @pair
 *
 * A sync and a detach reserve their worst case before they change
 * anything, so they can still fail cleanly (-ENOMEM, nothing changed) and
 * dxn_release_buf() never needs memory afterwards: no buffer is lost to
 * an allocation failure. dxn_release_unpromise() ends the reservation.
 *
 * Process context, port->lock held.
 *
 * Return: 0, or -ENOMEM (nothing changed, counter rel_nomem).
 */
int dxn_release_promise(struct dxn_pair *pair, u32 n)
{
	lockdep_assert_held(&pair->port->lock);
	if (dxn_rel_room(pair, n)) {
		pair->cnt.rel_nomem++;
		return -ENOMEM;
	}
	pair->rel_resv = n;
	return 0;
}

/* End the reservation of dxn_release_promise(). port->lock held. */
void dxn_release_unpromise(struct dxn_pair *pair)
{
	lockdep_assert_held(&pair->port->lock);
	pair->rel_resv = 0;
}

/* Queue a RELEASE for buf; room was checked. */
static void dxn_rel_push(struct dxn_pair *pair, u32 buf)
{
	pair->releases[pair->rel_head + pair->rel_count++] = buf;
}

/**
 * dxn_release_buf - owe user space a RELEASE slot for buf
 * @pair: the ring pair
 * @buf: buffer index the kernel no longer references
 *
 * Cannot fail: inside a sync or detach it takes an entry their promise
 * reserved (dxn_release_promise() counted every call), and once the port
 * is closing nobody reads the RX ring, so nothing is queued at all (the
 * buffer goes with the pool). A call outside both is a bug: it warns
 * once, and the buffer stays with the kernel if the queue cannot grow.
 *
 * Process context, port->lock held.
 */
void dxn_release_buf(struct dxn_pair *pair, u32 buf)
{
	lockdep_assert_held(&pair->port->lock);
	if (pair->port->closing)
		return;
	if (pair->rel_resv) {
		pair->rel_resv--;
	} else {
		WARN_ON_ONCE(1);	/* a caller outside any promise */
		if (dxn_rel_room(pair, 1)) {
			pr_err_ratelimited("daxnet: RELEASE of buffer %u lost\n",
					   buf);
			return;
		}
	}
	dxn_rel_push(pair, buf);
}

/**
 * dxn_release_room - room for n RELEASE entries beyond those promised
 * @pair: the ring pair
 * @n: entries
 *
 * For callers that can keep their references and retry at a later sync
 * (the zero-copy housekeeping); they then queue with dxn_release_try().
 *
 * Process context, port->lock held.
 *
 * Return: true, or false (counter rel_deferred: the caller keeps the
 * buffer and retries, nothing fails) if the queue could not grow.
 */
bool dxn_release_room(struct dxn_pair *pair, u32 n)
{
	u32 need;

	lockdep_assert_held(&pair->port->lock);
	if (check_add_overflow(pair->rel_resv, n, &need) ||
	    dxn_rel_room(pair, need)) {
		pair->cnt.rel_deferred++;
		return false;
	}
	return true;
}

/**
 * dxn_release_try - owe a RELEASE slot for buf if the queue has room
 * @pair: the ring pair
 * @buf: buffer index the kernel no longer references
 *
 * Takes no promised entry (see dxn_release_room()).
 *
 * Process context, port->lock held.
 *
 * Return: true if queued; false if the queue could not grow: the caller
 * still holds the buffer.
 */
bool dxn_release_try(struct dxn_pair *pair, u32 buf)
{
	lockdep_assert_held(&pair->port->lock);
	if (!dxn_release_room(pair, 1))
		return false;
	dxn_rel_push(pair, buf);
	return true;
}

/* Give a buffer to the spare stock, or back to user space if it is full. */
static void dxn_stock_put(struct dxn_pair *pair, u32 buf)
{
	if (pair->nstock < pair->stock_cap) {
		pair->port->pool.own[buf] = DXN_OWN_STOCK;
		pair->stock[pair->nstock++] = buf;
	} else {
		pair->port->pool.own[buf] = DXN_OWN_USER;
		dxn_release_buf(pair, buf);
	}
}

/**
 * dxn_txq_busy_update - note whether a connection has TX queued
 * @conn: the connection, after its txq changed
 *
 * Keeps conn->txq_busy and pair->ntx_resume (what poll() reads instead of
 * walking tx_ready) in step with conn->txq. Takes ready_lock only when the
 * answer changes.
 *
 * Process context, port->lock held.
 */
void dxn_txq_busy_update(struct dxn_conn *conn)
{
	struct dxn_pair *pair = conn->pair;
	bool busy = !list_empty(&conn->txq);

	lockdep_assert_held(&pair->port->lock);
	if (busy == conn->txq_busy)
		return;
	spin_lock_bh(&pair->port->ready_lock);
	conn->txq_busy = busy;
	if (!list_empty(&conn->tx_node)) {
		if (busy)
			pair->ntx_resume++;
		else
			pair->ntx_resume--;
	}
	spin_unlock_bh(&pair->port->ready_lock);
}

/**
 * dxn_txq_drop - drop the TX bytes queued on a connection
 * @conn: the connection
 * @count: account the bytes as tx_discarded
 *
 * Process context, port->lock held.
 */
void dxn_txq_drop(struct dxn_conn *conn, bool count)
{
	struct dxn_pair *pair = conn->pair;
	struct dxn_txent *e, *tmp;

	lockdep_assert_held(&pair->port->lock);

	list_for_each_entry_safe(e, tmp, &conn->txq, node) {
		if (e->buf != DAXNET_NO_BUF) {
			if (!dxn_zc_tx_owe(pair, e->buf))
				dxn_release_buf(pair, e->buf);
			if (count)
				pair->cnt.tx_discarded += e->len;
		}
		conn->txq_bytes -= e->len;
		list_del(&e->node);
		kfree(e);
		pair->ntxq--;
		conn->ntxq--;
	}
	dxn_cs_tx_touch(conn);
	dxn_txq_busy_update(conn);
}

/* Remember that conn failed with errno err. port->lock held. */
static void dxn_conn_fail(struct dxn_conn *conn, int err)
{
	lockdep_assert_held(&conn->port->lock);
	if (!conn->err)
		conn->err = err;
	dxn_mark_rx(conn);
}

/* ----------------------------------------------------------------- RX */

/* Write the next RX slot at tail (already reserved). port->lock held. */
void dxn_rx_write(struct dxn_pair *pair, u32 conn, u32 buf, u32 off,
		  u32 len, u16 flags, u16 err, u64 user_data)
{
	struct dxn_ringstate *rs = &pair->rx;
	struct daxnet_slot *s = dxn_slot(rs, rs->tail);

	lockdep_assert_held(&pair->port->lock);
	s->conn = conn;
	s->buf_idx = buf;
	s->offset = off;
	s->len = len;
	s->flags = flags;
	s->err = err;
	s->reserved = 0;
	s->user_data = user_data;
	rs->tail = daxnet_ring_next(rs->tail, rs->n);
	pair->cnt.rx_slots++;
}

/* Publish an event slot (no buffer) for conn if there is room. */
static bool dxn_rx_event(struct dxn_rxctx *ctx, struct dxn_conn *conn,
			 u16 flags, u16 err)
{
	if (!ctx->room) {
		ctx->pair->cnt.rx_ring_full++;
		return false;
	}
	ctx->room--;
	dxn_rx_write(ctx->pair, conn->id, DAXNET_NO_BUF, 0, 0, flags, err,
		     conn->cookie);
	return true;
}

/* Publish the RELEASE slots owed, as far as the ring has room. */
static void dxn_rx_releases(struct dxn_rxctx *ctx)
{
	struct dxn_pair *pair = ctx->pair;

	while (pair->rel_count && ctx->room) {
		ctx->room--;
		dxn_rx_write(pair, DAXNET_NO_CONN,
			     pair->releases[pair->rel_head], 0, 0,
			     DAXNET_SLOT_RELEASE, 0, 0);
		pair->cnt.releases++;
		pair->rel_head++;
		pair->rel_count--;
	}
	if (!pair->rel_count)
		pair->rel_head = 0;
}

/* Close the open DATA slot of ctx->conn; held: the kernel keeps the buffer. */
void dxn_rx_close_slot(struct dxn_rxctx *ctx, bool held)
{
	struct dxn_conn *conn = ctx->conn;

	dxn_rx_write(ctx->pair, conn->id, conn->rx_buf, ctx->slot_off,
		     ctx->slot_len,
		     DAXNET_SLOT_DATA | (held ? DAXNET_SLOT_BUF_HELD : 0), 0,
		     conn->cookie);
	ctx->slot_open = false;
	if (!held) {
		ctx->pair->port->pool.own[conn->rx_buf] = DXN_OWN_USER;
		conn->rx_buf = DAXNET_NO_BUF;
	}
}

/*
 * Copy skb bytes [from, from + len) into the pool at byte position pos,
 * through the owner's mapping (as recvmsg() does: it may fault). Returns
 * 0 or -EFAULT. Process context of the port's owner, lock_sock held.
 */
static int dxn_rx_copy(struct dxn_pool *pool, struct sk_buff *skb,
		       unsigned int from, u64 pos, u32 len)
{
	struct iov_iter iter;

	iov_iter_ubuf(&iter, ITER_DEST, dxn_pool_uptr(pool, pos), len);
	return skb_copy_datagram_iter(skb, from, &iter, len);
}

/*
 * tcp_read_sock() actor: copy received bytes into the connection's pool
 * buffer, packing them behind earlier bytes, taking a spare when the
 * buffer is full. Returns bytes consumed; 0 stops the read (ring full or no
 * spare: TCP keeps the rest and its window closes; a fault on the pool
 * mapping fails the connection with EFAULT). Process context of the
 * port's owner, lock_sock(sk) and port->lock held.
 */
int dxn_rx_actor(read_descriptor_t *rd, struct sk_buff *skb,
		 unsigned int offset, size_t len)
{
	struct dxn_rxctx *ctx = rd->arg.data;
	struct dxn_pair *pair = ctx->pair;
	struct dxn_conn *conn = ctx->conn;
	struct dxn_pool *pool = &pair->port->pool;
	u32 bs = pool->buf_size;
	size_t done = 0;
	u32 n;

	lockdep_assert_held(&pair->port->lock);
	sock_owned_by_me(conn->sk);
	while (done < len) {
		if (!ctx->slot_open) {
			if (!ctx->room) {
				ctx->stop = DXN_STOP_RING;
				pair->cnt.rx_ring_full++;
				break;
			}
			if (conn->rx_buf == DAXNET_NO_BUF) {
				if (!pair->nstock) {
					ctx->stop = DXN_STOP_SPARE;
					pair->cnt.spare_empty++;
					break;
				}
				conn->rx_buf = pair->stock[--pair->nstock];
				pool->own[conn->rx_buf] = DXN_OWN_RX;
				conn->rx_fill = 0;
			}
			ctx->room--;
			ctx->slot_open = true;
			ctx->slot_off = conn->rx_fill;
			ctx->slot_len = 0;
		}
		n = min_t(size_t, len - done, bs - conn->rx_fill);
		if (dxn_rx_copy(pool, skb, offset + done,
				(u64)conn->rx_buf * bs + conn->rx_fill, n)) {
			ctx->stop = DXN_STOP_FAULT;
			if (!conn->err)
				conn->err = EFAULT;
			break;
		}
		conn->rx_fill += n;
		ctx->slot_len += n;
		done += n;
		pair->cnt.rx_bytes += n;
		pair->cnt.rx_copied += n;
		conn->cnt.rx_bytes += n;
		conn->cnt.rx_copied += n;
		if (conn->rx_fill == bs)
			dxn_rx_close_slot(ctx, false);
	}
	return done;
}

/*
 * The actor tcp_read_sock() calls: the copy or zero-copy actor, offered at
 * most the connection's RX budget (rx_limit, daxnet_cstate.c). Same
 * context as they.
 */
static int dxn_rx_limited(read_descriptor_t *rd, struct sk_buff *skb,
			  unsigned int offset, size_t len)
{
	struct dxn_rxctx *ctx = rd->arg.data;
	int n;

	if (!ctx->budget) {
		ctx->stop = DXN_STOP_LIMIT;
		return 0;
	}
	if (len > ctx->budget)
		len = ctx->budget;
	if (ctx->pair->port->zc)
		n = dxn_zc_rx_actor(rd, skb, offset, len);
	else
		n = dxn_rx_actor(rd, skb, offset, len);
	if (n > 0)
		ctx->budget -= n;
	return n;
}

/*
 * RX for one connection: NEW_CONN, the bytes TCP has queued, then EOF or
 * ERROR once the queue is empty. Returns DXN_GO or why it stopped.
 * Process context, port->lock held; takes lock_sock(sk).
 */
static int dxn_rx_conn(struct dxn_rxctx *ctx, struct dxn_conn *conn)
{
	struct dxn_pair *pair = ctx->pair;
	struct sock *sk = conn->sk;
	read_descriptor_t rd = {};
	bool qempty, eof, final, paused = false;
	u32 pending;
	int err;

	lockdep_assert_held(&pair->port->lock);

	if (conn->err_done)
		return DXN_GO;
	if (conn->new_conn_due) {
		if (!dxn_rx_event(ctx, conn, DAXNET_SLOT_NEW_CONN, 0))
			return DXN_STOP_RING;
		conn->new_conn_due = false;
	}

	ctx->conn = conn;
	ctx->slot_open = false;
	ctx->stop = DXN_GO;
	ctx->budget = dxn_cs_rx_budget(conn);
	rd.count = 1;		/* never decremented: read until the actor stops */
	rd.arg.data = ctx;

	lock_sock(sk);
	if (!conn->rx_fault)
		tcp_read_sock(sk, &rd, dxn_rx_limited);
	if (ctx->stop == DXN_STOP_LIMIT) {
		/* At rx_limit: the rest waits in the socket, window closing. */
		paused = true;
		ctx->stop = DXN_GO;
	}
	if (ctx->stop == DXN_STOP_FAULT) {
		/* The pool is gone from under us: report ERROR, read no more. */
		conn->rx_fault = true;
		ctx->stop = DXN_GO;
	}
	qempty = conn->rx_fault || skb_queue_empty(&sk->sk_receive_queue);
	if (qempty && !conn->err) {
		err = sock_error(sk);
		if (err)
			conn->err = -err;
	}
	eof = qempty && (sk->sk_shutdown & RCV_SHUTDOWN);
	pending = qempty ? 0 : tcp_inq(sk);
	release_sock(sk);
	dxn_cs_rx_done(conn, paused, pending);

	/* Nothing more will arrive: the last slice gives the buffer back. */
	final = qempty && (conn->err || eof);
	if (ctx->slot_open && !ctx->slot_len) {
		/* Reserved, but the copy faulted before any byte. */
		ctx->slot_open = false;
		ctx->room++;
	}
	if (ctx->slot_open)
		dxn_rx_close_slot(ctx, !final);
	if (final && conn->rx_buf != DAXNET_NO_BUF) {
		pair->port->pool.own[conn->rx_buf] = DXN_OWN_USER;
		dxn_release_buf(pair, conn->rx_buf);
		conn->rx_buf = DAXNET_NO_BUF;
	}
	if (ctx->stop != DXN_GO)
		return ctx->stop;

	if (conn->err && qempty) {
		if (!dxn_rx_event(ctx, conn, DAXNET_SLOT_ERROR, conn->err))
			return DXN_STOP_RING;
		conn->err_done = true;
		dxn_txq_drop(conn, true);
	} else if (eof && !conn->eof_done) {
		if (!dxn_rx_event(ctx, conn, DAXNET_SLOT_EOF, 0))
			return DXN_STOP_RING;
		conn->eof_done = true;
	}
	return DXN_GO;
}

/*
 * Read the buffer indices user space hands over in this sync once, into
 * pair->intake: those of the RX slots it releases with BUF_CHANGED (when rx),
 * then the spare entries the stock will take. Each index inside the pool
 * must be owned by user space and appear once; it is marked DXN_OWN_STOCK
 * here. Out-of-range indices are kept (counted bad_slot when applied).
 * Returns 0 with the entry counts in *nrx and *nsp, or -EINVAL (counter
 * bad_buf) with every mark undone: nothing changed. port->lock held.
 */
static int dxn_intake_check(struct dxn_pair *pair, bool rx, u32 rx_head,
			    u32 sp_head, u32 *nrx, u32 *nsp)
{
	struct dxn_pool *pool = &pair->port->pool;
	struct dxn_ringstate *rs = &pair->rx;
	u32 count = pool->buf_count;
	u32 *ent = pair->spare.slots;
	u32 i, k, buf, n = 0, stock;

	lockdep_assert_held(&pair->port->lock);
	for (i = rs->head; rx && i != rx_head; i = daxnet_ring_next(i, rs->n)) {
		struct daxnet_slot *s = dxn_slot(rs, i);

		if (READ_ONCE(s->flags) & DAXNET_SLOT_BUF_CHANGED)
			pair->intake[n++] = READ_ONCE(s->buf_idx);
	}
	*nrx = n;
	/* The spare entries dxn_spare_intake() will consume. */
	stock = pair->nstock;
	for (k = 0; k < n; k++)
		if (pair->intake[k] < count)
			stock++;
	stock = min(stock, pair->stock_cap);
	for (i = pair->spare.hwcur; i != sp_head && stock < pair->spare.n;
	     i = daxnet_ring_next(i, pair->spare.n)) {
		buf = READ_ONCE(ent[i]);
		pair->intake[n++] = buf;
		if (buf < count)
			stock++;
	}
	*nsp = n - *nrx;

	for (k = 0; k < n; k++) {
		buf = pair->intake[k];
		if (buf >= count)
			continue;
		if (pool->own[buf] != DXN_OWN_USER)
			goto bad;
		pool->own[buf] = DXN_OWN_STOCK;
	}
	return 0;
bad:
	while (k--)
		if (pair->intake[k] < count)
			pool->own[pair->intake[k]] = DXN_OWN_USER;
	pair->cnt.bad_buf++;
	return -EINVAL;
}

/* Release RX slots user space gave back; take buffers swapped into them. */
static void dxn_rx_release(struct dxn_pair *pair, u32 head, u32 nrx)
{
	u32 count = pair->port->pool.buf_count;
	u32 k, buf;

	for (k = 0; k < nrx; k++) {
		buf = pair->intake[k];
		if (buf >= count) {
			pair->cnt.bad_slot++;
			continue;
		}
		dxn_stock_put(pair, buf);
	}
	pair->rx.head = head;
}

/* Move the checked spare entries (intake[nrx, nrx + nsp)) into the stock. */
static void dxn_spare_intake(struct dxn_pair *pair, u32 head, u32 nrx,
			     u32 nsp)
{
	struct dxn_ringstate *rs = &pair->spare;
	u32 count = pair->port->pool.buf_count;
	u32 k, buf;

	rs->head = head;
	for (k = nrx; k < nrx + nsp; k++) {
		buf = pair->intake[k];
		/* dxn_intake_check() sized nsp to the stock's room. */
		if (buf >= count)
			pair->cnt.bad_slot++;
		else if (WARN_ON_ONCE(pair->nstock >= pair->stock_cap))
			pair->port->pool.own[buf] = DXN_OWN_USER;
		else
			pair->stock[pair->nstock++] = buf;
		rs->hwcur = daxnet_ring_next(rs->hwcur, rs->n);
	}
	rs->tail = dxn_prev(rs->hwcur, rs->n);
	/* Pairs with user space's acquire load of tail. */
	smp_store_release(&rs->ring->tail, rs->tail);
}

/* The RX phase of a sync. port->lock held. */
static void dxn_rx(struct dxn_pair *pair)
{
	struct dxn_port *port = pair->port;
	struct dxn_ringstate *rs = &pair->rx;
	struct dxn_rxctx ctx = { .pair = pair };
	struct dxn_conn *conn;
	LIST_HEAD(todo);
	int stop;

	lockdep_assert_held(&port->lock);

	ctx.room = rs->n - 1 - daxnet_ring_space(rs->head, rs->tail, rs->n);
	dxn_rx_releases(&ctx);
	/* Paused connections whose rx_limit was raised read again. */
	dxn_cs_rx_resume(pair);

	spin_lock_bh(&port->ready_lock);
	list_splice_init(&pair->rx_ready, &todo);
	spin_unlock_bh(&port->ready_lock);

	pair->stalled = false;
	while (!list_empty(&todo)) {
		spin_lock_bh(&port->ready_lock);
		conn = list_first_entry(&todo, struct dxn_conn, rx_node);
		list_del_init(&conn->rx_node);
		clear_bit(DXN_RX_READY, &conn->flags);
		spin_unlock_bh(&port->ready_lock);

		stop = dxn_rx_conn(&ctx, conn);
		if (stop == DXN_GO)
			continue;
		/* Retry at the next sync that brings room or spares. */
		pair->stalled = true;
		dxn_mark_rx(conn);
		if (stop == DXN_STOP_RING) {
			spin_lock_bh(&port->ready_lock);
			list_splice(&todo, &pair->rx_ready);
			spin_unlock_bh(&port->ready_lock);
			break;
		}
	}
	dxn_rx_releases(&ctx);

	/*
	 * Payload stores (non-temporal on DAX) must be durable and visible
	 * before the slots that name them: sfence, then publish the tail
	 * (release, pairs with user space's acquire load of tail).
	 */
	wmb();
	/* Slots before tail, see above. */
	smp_store_release(&rs->ring->tail, rs->tail);
}

/* ----------------------------------------------------------------- TX */

/*
 * Result of a TX slot, kept in its private copy until the slot is returned:
 * the flags to add in the copy's reserved field, the errno in its err.
 */
static void dxn_tx_result(struct daxnet_slot *c, u16 flags, int err)
{
	c->reserved |= flags;
	if (err)
		c->err = err;
}

/*
 * Send pool bytes on conn through the copy path: TCP copies them from the
 * owner's mapping, as sendmsg() does (it may fault). Returns bytes taken
 * by TCP, or -errno (-EAGAIN: the send buffer is full; the write_space
 * callback will mark conn; -EFAULT: the pool is not mapped any more).
 * Process context of the port's owner, lock_sock(sk) held.
 */
static int dxn_send(struct dxn_conn *conn, u32 buf, u32 off, u32 len,
		    bool more)
{
	struct dxn_pair *pair = conn->pair;
	struct dxn_pool *pool = &pair->port->pool;
	struct msghdr msg = {
		.msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL | (more ? MSG_MORE : 0),
	};
	int ret;

	sock_owned_by_me(conn->sk);
	if (pair->port->zc) {
		ret = dxn_zc_send(conn, buf, off, len, more);
		if (ret != -EOPNOTSUPP)
			return ret;
	}
	iov_iter_ubuf(&msg.msg_iter, ITER_SOURCE,
		      dxn_pool_uptr(pool, (u64)buf * pool->buf_size + off), len);
	ret = tcp_sendmsg_locked(conn->sk, &msg, len);
	if (ret > 0) {
		pair->cnt.tx_bytes += ret;
		pair->cnt.tx_copied += ret;
		conn->cnt.tx_bytes += ret;
		conn->cnt.tx_copied += ret;
	} else if (ret == 0) {
		ret = -EAGAIN;
	}
	return ret;
}

/*
 * The ENOBUFS rule: may the pair queue no more TX? A queued range owes a
 * RELEASE once sent, and RELEASEs wait in the queue while the RX ring is
 * full: both count against DXN_MAX_TXQ, which keeps the RELEASE debt
 * within rel_max (dxn_rel_max()). port->lock held.
 */
static bool dxn_txq_full(struct dxn_pair *pair)
{
	lockdep_assert_held(&pair->port->lock);
	return pair->ntxq + pair->rel_count >= dxn_txq_max();
}

/* Queue bytes (or a shutdown, buf = DAXNET_NO_BUF) behind conn's queue. */
static int dxn_txq_add(struct dxn_conn *conn, u32 buf, u32 off, u32 len)
{
	struct dxn_pair *pair = conn->pair;
	struct dxn_txent *e;

	if (dxn_txq_full(pair))
		return -ENOBUFS;
	e = kmalloc(sizeof(*e), GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!e)
		return -ENOBUFS;
	e->buf = buf;
	e->off = off;
	e->len = len;
	list_add_tail(&e->node, &conn->txq);
	pair->ntxq++;
	conn->ntxq++;
	conn->txq_bytes += len;
	return 0;
}

/*
 * Send len bytes with dxn_send(); *corked tells whether the last bytes
 * TCP took went with MSG_MORE and were all it was offered (a partial
 * send is pushed by TCP itself before it gives up). Same context as
 * dxn_send().
 */
static int dxn_send_more(struct dxn_conn *conn, u32 buf, u32 off, u32 len,
			 bool more, bool *corked)
{
	int ret = dxn_send(conn, buf, off, len, more);

	if (ret > 0)
		*corked = more && ret == len;
	return ret;
}

/*
 * Send what conn has queued, then this sync's slots of conn, in order,
 * under one lock_sock(). Bytes the socket cannot take are queued and their
 * slot returned with BUF_HELD. Process context, port->lock held.
 */
static void dxn_tx_conn(struct dxn_pair *pair, struct dxn_conn *conn)
{
	struct sock *sk = conn->sk;
	struct dxn_txent *e;
	struct daxnet_slot *c;
	bool blocked = false, shut = false, refused = false;
	bool corked = false, push;
	int ret;
	u32 i, sent;

	lockdep_assert_held(&pair->port->lock);

	lock_sock(sk);
	while (!list_empty(&conn->txq) && !conn->err) {
		e = list_first_entry(&conn->txq, struct dxn_txent, node);
		if (e->buf != DAXNET_NO_BUF) {
			ret = dxn_send_more(conn, e->buf, e->off, e->len,
					    !list_is_last(&e->node, &conn->txq) ||
					    conn->batch_first != DXN_NONE,
					    &corked);
			if (ret < 0) {
				if (ret != -EAGAIN)
					dxn_conn_fail(conn, -ret);
				blocked = true;
				break;
			}
			e->off += ret;
			e->len -= ret;
			conn->txq_bytes -= ret;
			if (e->len) {
				blocked = true;
				break;
			}
			if (!dxn_zc_tx_owe(pair, e->buf))
				dxn_release_buf(pair, e->buf);
		} else {
			shut = true;
		}
		list_del(&e->node);
		kfree(e);
		pair->ntxq--;
		conn->ntxq--;
	}

	for (i = conn->batch_first; i != DXN_NONE; i = pair->txnext[i]) {
		c = &pair->txcopy[i];
		if (conn->err) {
			dxn_tx_result(c, DAXNET_SLOT_ERROR, conn->err);
			continue;
		}
		if ((c->flags & DAXNET_SLOT_DATA) && conn->tx_shut) {
			dxn_tx_result(c, DAXNET_SLOT_ERROR, EPIPE);
			continue;
		}
		/*
		 * A slot of conn was refused without failing it: every later
		 * DATA or EOF slot of conn in this sync is refused too, so
		 * that no byte after the gap reaches the peer (the stream
		 * stays whole; the application resends from the first one).
		 */
		if (refused && (c->flags & (DAXNET_SLOT_DATA | DAXNET_SLOT_EOF))) {
			dxn_tx_result(c, DAXNET_SLOT_ERROR, ENOBUFS);
			continue;
		}
		if (c->flags & DAXNET_SLOT_DATA) {
			sent = 0;
			/* Would owe a RELEASE beyond DXN_MAX_TXQ: ENOBUFS. */
			if (dxn_zc_tx_full(pair, c->buf_idx)) {
				dxn_tx_result(c, DAXNET_SLOT_ERROR, ENOBUFS);
				refused = true;
				continue;
			}
			if (!blocked) {
				ret = dxn_send_more(conn, c->buf_idx,
						    c->offset, c->len,
						    pair->txnext[i] != DXN_NONE,
						    &corked);
				if (ret < 0 && ret != -EAGAIN) {
					dxn_conn_fail(conn, -ret);
					dxn_tx_result(c, DAXNET_SLOT_ERROR,
						      -ret);
					continue;
				}
				sent = ret < 0 ? 0 : ret;
			}
			if (sent < c->len) {
				ret = dxn_txq_add(conn, c->buf_idx,
						  c->offset + sent,
						  c->len - sent);
				if (ret) {
					/* Part of the slot went out: broken. */
					if (sent)
						dxn_conn_fail(conn, -ret);
					dxn_tx_result(c, DAXNET_SLOT_ERROR,
						      -ret);
					refused = true;
					continue;
				}
				dxn_tx_result(c, DAXNET_SLOT_BUF_HELD, 0);
				pair->cnt.tx_held++;
				blocked = true;
			} else if (dxn_zc_tx_owe(pair, c->buf_idx)) {
				/* Sent by reference: RELEASE at completion. */
				dxn_tx_result(c, DAXNET_SLOT_BUF_HELD, 0);
				pair->cnt.tx_held++;
			}
		}
		if (c->flags & DAXNET_SLOT_EOF) {
			conn->tx_shut = true;
			if (!blocked)
				shut = true;
			else if (dxn_txq_add(conn, DAXNET_NO_BUF, 0, 0))
				dxn_conn_fail(conn, ENOBUFS);
		}
	}
	/*
	 * The last bytes TCP took went with MSG_MORE, for a slot or queued
	 * range that did not follow (refused, say, or no send space): no
	 * send of this sync clears that cork, and a partial segment would
	 * wait for an ACK or the probe timer (200 ms or more). Push it as
	 * the last send of a batch does, unless the application corked the
	 * socket itself (TCP_CORK, read here under the socket lock; its
	 * uncork pushes) or the FIN below does.
	 */
	push = corked && !conn->err && !shut &&
	       !(tcp_sk(sk)->nonagle & TCP_NAGLE_CORK);
	dxn_zc_tx_end(conn);
	release_sock(sk);
	dxn_cs_tx_touch(conn);

	if (conn->err)
		dxn_txq_drop(conn, true);
	else if (shut)
		kernel_sock_shutdown(conn->sock, SHUT_WR);
	else if (push)
		tcp_sock_set_cork(sk, false);	/* pushes pending frames */
}

/* Check one private TX slot copy; returns its connection or NULL. */
static struct dxn_conn *dxn_tx_check(struct dxn_pair *pair,
				     struct daxnet_slot *c)
{
	struct dxn_pool *pool = &pair->port->pool;
	u16 fl = c->flags & ~DAXNET_SLOT_BUF_CHANGED;
	bool nonzero = c->err || c->reserved;
	struct dxn_conn *conn;

	c->reserved = 0;
	c->err = 0;
	if (nonzero || (fl & ~(DAXNET_SLOT_DATA | DAXNET_SLOT_EOF)) ||
	    !(fl & (DAXNET_SLOT_DATA | DAXNET_SLOT_EOF)))
		goto bad;
	if ((fl & DAXNET_SLOT_DATA) &&
	    (!c->len || c->buf_idx >= pool->buf_count ||
	     c->offset >= pool->buf_size ||
	     c->len > pool->buf_size - c->offset))
		goto bad;
	conn = dxn_conn_lookup(pair->port, c->conn);
	if (!conn || conn->pair != pair) {
		dxn_tx_result(c, DAXNET_SLOT_ERROR, ENOTCONN);
		return NULL;
	}
	return conn;
bad:
	pair->cnt.bad_slot++;
	dxn_tx_result(c, DAXNET_SLOT_ERROR, EINVAL);
	return NULL;
}

/* The TX phase of a sync: consume [hwcur, head) of the TX ring. */
static void dxn_tx(struct dxn_pair *pair, u32 head)
{
	struct dxn_port *port = pair->port;
	struct dxn_ringstate *rs = &pair->tx;
	struct dxn_conn *conn, *tmp;
	struct daxnet_slot *c, *s;
	LIST_HEAD(todo);
	u32 i;

	lockdep_assert_held(&port->lock);

	/* Connections whose send buffer has room again. */
	spin_lock_bh(&port->ready_lock);
	list_for_each_entry_safe(conn, tmp, &pair->tx_ready, tx_node) {
		list_del_init(&conn->tx_node);
		clear_bit(DXN_TX_READY, &conn->flags);
		if (conn->txq_busy)
			pair->ntx_resume--;
		if (!list_empty(&conn->txq)) {
			conn->batch_first = DXN_NONE;
			list_add_tail(&conn->work_node, &todo);
		}
	}
	spin_unlock_bh(&port->ready_lock);

	/* Read each handed-over slot once; chain them per connection. */
	for (i = rs->hwcur; i != head; i = daxnet_ring_next(i, rs->n)) {
		c = &pair->txcopy[i];
		memcpy(c, dxn_slot(rs, i), sizeof(*c));
		/* One read of the user's bytes; everything below uses c. */
		barrier();
		pair->txnext[i] = DXN_NONE;
		conn = dxn_tx_check(pair, c);
		if (!conn)
			continue;
		if (list_empty(&conn->work_node)) {
			conn->batch_first = DXN_NONE;
			list_add_tail(&conn->work_node, &todo);
		}
		if (conn->batch_first == DXN_NONE)
			conn->batch_first = i;
		else
			pair->txnext[conn->batch_last] = i;
		conn->batch_last = i;
	}

	list_for_each_entry_safe(conn, tmp, &todo, work_node) {
		dxn_tx_conn(pair, conn);
		dxn_txq_busy_update(conn);
		list_del_init(&conn->work_node);
		conn->batch_first = DXN_NONE;
	}

	/* Return every slot with its result. */
	for (i = rs->hwcur; i != head; i = daxnet_ring_next(i, rs->n)) {
		c = &pair->txcopy[i];
		s = dxn_slot(rs, i);
		WRITE_ONCE(s->flags, c->flags | c->reserved);
		WRITE_ONCE(s->err, c->err);
		pair->cnt.tx_slots++;
	}
	rs->hwcur = head;
	rs->head = head;
	rs->tail = dxn_prev(head, rs->n);
	/* Slot results before tail; pairs with user space's acquire load. */
	smp_store_release(&rs->ring->tail, rs->tail);
}

/**
 * dxn_nomem_backoff - hold back work that failed for lack of memory?
 * @port: the port
 * @failed: the work failed for lack of memory at @since
 * @since: jiffies of that failure
 *
 * For poll(): true while @failed and less than DXN_NOMEM_MS have passed
 * since @since; port->retry then wakes the pollers when the period ends,
 * so the work is retried every DXN_NOMEM_MS rather than in a busy loop.
 *
 * Process context, port->lock held.
 *
 * Return: true if poll() must not report that work yet.
 */
bool dxn_nomem_backoff(struct dxn_port *port, bool failed,
		       unsigned long since)
{
	unsigned long until = since + msecs_to_jiffies(DXN_NOMEM_MS);

	lockdep_assert_held(&port->lock);
	if (!failed || time_after_eq(jiffies, until))
		return false;
	timer_reduce(&port->retry, until);
	return true;
}

/**
 * dxn_sync_pair - one sync of a ring pair
 * @pair: the ring pair
 * @flags: DAXNET_SYNC_* (0: TX and RX)
 *
 * Process context (SYNC ioctl), port->lock held.
 *
 * Return: 0, or -EINVAL, with nothing changed, when a user ring index is
 * corrupt (bad_ring) or a buffer index handed over is held by the kernel
 * or given twice (bad_buf), or -ENOMEM, with nothing changed, when the
 * RELEASE queue cannot hold what the sync may owe (rel_nomem).
 */
int dxn_sync_pair(struct dxn_pair *pair, u32 flags)
{
	bool tx = !flags || (flags & DAXNET_SYNC_TX);
	bool rx = !flags || (flags & DAXNET_SYNC_RX);
	u32 rx_head, tx_head, sp_head, nrx, nsp, owe;
	bool txq_was_full;

	lockdep_assert_held(&pair->port->lock);

	if (dxn_read_head(&pair->rx, &rx_head) ||
	    dxn_read_head(&pair->tx, &tx_head) ||
	    dxn_read_head(&pair->spare, &sp_head)) {
		pair->cnt.bad_ring++;
		return -EINVAL;
	}
	/*
	 * The RELEASEs this sync can owe at most: one per RX slot released
	 * (its swapped-in buffer when the stock is full), per queued or new
	 * TX range (a connection failing drops them), per connection (its
	 * partly filled RX buffer at EOF/error). Reserved first, so a sync
	 * either fails here with nothing changed or never loses a buffer
	 * (the zero-copy housekeeping reserves on its own, dxn_release_try).
	 */
	owe = pair->ntxq + pair->nconns;
	if (rx)
		owe += daxnet_ring_space(pair->rx.head, rx_head, pair->rx.n);
	if (tx)
		owe += daxnet_ring_space(pair->tx.hwcur, tx_head, pair->tx.n);
	if (dxn_release_promise(pair, owe)) {
		/* poll() backs off (dxn_nomem_backoff()) instead of spinning. */
		pair->nomem = true;
		pair->nomem_at = jiffies;
		return -ENOMEM;
	}
	if (dxn_intake_check(pair, rx, rx_head, sp_head, &nrx, &nsp)) {
		dxn_release_unpromise(pair);
		return -EINVAL;
	}
	pair->nomem = false;
	pair->cnt.syncs++;
	txq_was_full = dxn_txq_full(pair);
	if (rx)
		dxn_rx_release(pair, rx_head, nrx);
	dxn_spare_intake(pair, sp_head, nrx, nsp);
	if (pair->port->zc)
		dxn_zc_sync(pair);
	if (tx)
		dxn_tx(pair, tx_head);
	if (rx)
		dxn_rx(pair);
	dxn_cs_refresh(pair);
	dxn_release_unpromise(pair);
	/*
	 * Only a sync takes the pair below the ENOBUFS limit (queued ranges
	 * sent, RELEASEs published): wake whoever waits for EPOLLOUT alone,
	 * in another thread; every other wakeup of port->wq is EPOLLIN.
	 */
	if (txq_was_full && !dxn_txq_full(pair))
		wake_up_interruptible_poll(&pair->port->wq,
					   EPOLLOUT | EPOLLWRNORM);
	return 0;
}

/**
 * dxn_pair_poll - readiness of a ring pair for poll()
 * @pair: the ring pair
 *
 * Process context, port->lock held. Moves nothing.
 *
 * Return: the EPOLL* mask of the pair.
 */
__poll_t dxn_pair_poll(struct dxn_pair *pair)
{
	struct dxn_port *port = pair->port;
	struct dxn_ringstate *rx = &pair->rx;
	bool rx_moved, tx_moved, progress, room, news, rel, tx_pending;
	__poll_t mask = 0;
	u32 head, tx_cur;

	lockdep_assert_held(&port->lock);

	/*
	 * EPOLLOUT: the kernel can take more TX. A free TX slot beyond cur
	 * (cur read once and checked as a sync checks it; a corrupt index
	 * gives no EPOLLOUT, and EPOLLIN below), and the pair below the
	 * ENOBUFS rule's limit, so that a slot the socket cannot take yet
	 * is queued, not refused. A socket's own write space is not part of
	 * it (one ring serves every connection of the pair): bytes it cannot
	 * take are queued, and when its space comes back EPOLLIN says a sync
	 * moves them on (tx_pending).
	 */
	if (!dxn_read_cur(&pair->tx, &tx_cur) &&
	    daxnet_ring_space(tx_cur, pair->tx.tail, pair->tx.n) &&
	    !dxn_txq_full(pair))
		mask |= EPOLLOUT | EPOLLWRNORM;
	/*
	 * The last sync failed for lack of memory: whatever it would do now
	 * needs the same reservation. Report it again only after the
	 * backoff, or a poller spins on syncs that fail.
	 */
	if (dxn_nomem_backoff(port, pair->nomem, pair->nomem_at))
		return mask;

	/*
	 * Each user-written head is read once and checked as a sync checks
	 * it (dxn_read_head()). A corrupt one says a sync is due: that
	 * sync fails with EINVAL and counts bad_ring, which the owner must
	 * see; the index itself is never used.
	 */
	rx_moved = dxn_read_head(rx, &head) || head != rx->head;
	/*
	 * TX slots handed over (head moved) that no sync has consumed: the
	 * next sync sends them and returns the slots. This is what reports
	 * TX work a sync refused with ENOMEM once the backoff is over:
	 * nothing else says a sync is due then, and with the TX ring full
	 * there is no EPOLLOUT either.
	 */
	tx_moved = dxn_read_head(&pair->tx, &head) || head != pair->tx.hwcur;
	progress = rx_moved || dxn_read_head(&pair->spare, &head) ||
		   head != pair->spare.head;
	/* A free RX slot now, or one the next sync frees (user released). */
	room = rx_moved || daxnet_ring_space(rx->head, rx->tail, rx->n) < rx->n - 1;
	spin_lock_bh(&port->ready_lock);
	news = !list_empty(&pair->rx_ready);
	/* Write space came back for a connection with TX queued. */
	tx_pending = pair->ntx_resume;
	spin_unlock_bh(&port->ready_lock);
	/* RELEASE slots owed now or by the zero-copy housekeeping. */
	rel = room && (pair->rel_count || dxn_zc_tx_pending(port));

	/*
	 * EPOLLIN only when a sync would publish something new or move TX
	 * on: connections with news, RELEASE slots owed while the RX ring
	 * has room for them, TX slots handed over and not yet consumed,
	 * queued TX whose socket has room again. After a
	 * stop for lack of RX room or spares, news count only once user
	 * space gave some back; that same step (moving head) is what makes
	 * owed RELEASEs publishable, so nothing else needs to wake for it.
	 */
	if ((news && (!pair->stalled || progress)) || rel || tx_moved ||
	    tx_pending)
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}
