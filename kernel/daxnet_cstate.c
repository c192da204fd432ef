// SPDX-License-Identifier: GPL-2.0
/*
 * The per-connection state table (DAXNET_REG_CONNSTATE; docs/abi.md,
 * "Per-connection state"): what the kernel holds for each connection
 * (TX queued because the socket could not take it, bytes TCP has not had
 * acknowledged, received bytes not yet published), written into the
 * region inside ATTACH, DETACH and the syncs of the connection's pair, and
 * the user-written RX limit, read once per RX phase of the connection.
 *
 * Everything here runs in process context with port->lock held.
 */
#include <linux/list.h>
#include <linux/limits.h>
#include <net/tcp.h>

#include "daxnet_priv.h"

/* conn's entry of the table, or NULL when the port has none. */
static struct daxnet_conn_state *dxn_cs(struct dxn_conn *conn)
{
	struct dxn_port *port = conn->port;

	if (!port->cstate)
		return NULL;
	return &port->cstate[DAXNET_CONN_INDEX(conn->id)];
}

/*
 * Write conn's TX fields. Returns true while something is still queued or
 * unacknowledged (the entry must be refreshed at later syncs).
 */
static bool dxn_cs_tx_write(struct dxn_conn *conn,
			    struct daxnet_conn_state *st)
{
	const struct tcp_sock *tp = tcp_sk(conn->sk);
	u32 unacked = 0, seq, una;

	/* conn->ntxq and conn->txq_bytes: port->lock. */
	lockdep_assert_held(&conn->port->lock);
	/*
	 * A racy snapshot, on purpose: we hold the port mutex, not the
	 * socket lock. TCP moves snd_una from softirq context (under the
	 * socket spinlock; tcp_poll() and tcp_get_info() read it locklessly
	 * too). write_seq moves in sends under the socket lock: our own
	 * syncs, and the owner's send() on the attached socket's fd, which
	 * ATTACH does not forbid (the bytes then interleave with the ring's
	 * at the owner's choice), so it can move while we read it too.
	 * Both are aligned u32s, each read once (READ_ONCE: one load, no
	 * tearing, marked for KCSAN). The value is only reported to user
	 * space, never used by the kernel; a stale or mixed pair gives a
	 * figure a little off, so it is clamped at 0.
	 */
	if (!conn->err && READ_ONCE(conn->sk->sk_state) != TCP_CLOSE) {
		seq = READ_ONCE(tp->write_seq);
		una = READ_ONCE(tp->snd_una);
		if ((s32)(seq - una) > 0)
			unacked = seq - una;
	}
	WRITE_ONCE(st->tx_slots, conn->ntxq);
	WRITE_ONCE(st->tx_bytes, conn->txq_bytes);
	WRITE_ONCE(st->tx_unacked, unacked);
	return conn->ntxq || unacked;
}

/**
 * dxn_cs_attach - a connection was attached: set up its table entry
 * @conn: the new connection, already in port->conns
 *
 * Process context (ATTACH), port->lock held.
 */
void dxn_cs_attach(struct dxn_conn *conn)
{
	struct daxnet_conn_state *st = dxn_cs(conn);

	lockdep_assert_held(&conn->port->lock);
	INIT_LIST_HEAD(&conn->cs_node);
	INIT_LIST_HEAD(&conn->pause_node);
	if (!st)
		return;
	WRITE_ONCE(st->tx_slots, 0);
	WRITE_ONCE(st->tx_bytes, 0);
	WRITE_ONCE(st->tx_unacked, 0);
	WRITE_ONCE(st->rx_bytes, 0);
	WRITE_ONCE(st->rx_pending, 0);
	WRITE_ONCE(st->rx_paused, 0);
	WRITE_ONCE(st->rx_limit, 0);
	WRITE_ONCE(st->conn, conn->id);
}

/**
 * dxn_cs_detach - a connection is being detached: free its table entry
 * @conn: the connection, its TX queue already dropped
 *
 * Process context (DETACH, release), port->lock held.
 */
void dxn_cs_detach(struct dxn_conn *conn)
{
	struct daxnet_conn_state *st = dxn_cs(conn);

	lockdep_assert_held(&conn->port->lock);
	list_del_init(&conn->cs_node);
	list_del_init(&conn->pause_node);
	if (!st)
		return;
	WRITE_ONCE(st->conn, DAXNET_NO_CONN);
	WRITE_ONCE(st->tx_slots, 0);
	WRITE_ONCE(st->tx_bytes, 0);
	WRITE_ONCE(st->tx_unacked, 0);
	WRITE_ONCE(st->rx_pending, 0);
}

/**
 * dxn_cs_tx_touch - conn's TX state changed in this sync
 * @conn: the connection
 *
 * Its entry is written by dxn_cs_refresh() at the end of the sync; while
 * it then has TX queued or unacknowledged it stays on the pair's watch
 * list. Process context, port->lock held.
 */
void dxn_cs_tx_touch(struct dxn_conn *conn)
{
	lockdep_assert_held(&conn->port->lock);
	if (conn->port->cstate)
		list_move_tail(&conn->cs_node, &conn->pair->cs_tx);
}

/* Entries of the watch list refreshed per sync (besides the touched). */
#define DXN_CS_WATCH_BATCH	16

/**
 * dxn_cs_refresh - write the TX fields of the pair's busy connections
 * @pair: the ring pair at the end of a sync
 *
 * Bounded work per sync: every connection whose TX state this sync
 * changed (pair->cs_tx: it sent, queued, failed; the sync did work for
 * it anyway), then at most DXN_CS_WATCH_BATCH of the others that still
 * have TX queued or unacknowledged (pair->cs_watch, round robin), whose
 * only field that can move without a sync is tx_unacked (ACKs). So a sync
 * never walks every busy connection (up to max_conns, 2^20), and
 * tx_unacked of a connection the sync did not touch is at most
 * ceil(watched / 16) syncs old.
 *
 * Process context, port->lock held.
 */
void dxn_cs_refresh(struct dxn_pair *pair)
{
	struct dxn_conn *conn, *tmp;
	u32 n = 0, k = 0;

	lockdep_assert_held(&pair->port->lock);
	/* The touched ones; those still busy stay listed. */
	list_for_each_entry_safe(conn, tmp, &pair->cs_tx, cs_node) {
		n++;
		if (!dxn_cs_tx_write(conn, dxn_cs(conn)))
			list_del_init(&conn->cs_node);
	}
	/* The longest unrefreshed watched ones, behind them. */
	while (k < DXN_CS_WATCH_BATCH && !list_empty(&pair->cs_watch)) {
		conn = list_first_entry(&pair->cs_watch, struct dxn_conn,
					cs_node);
		k++;
		if (dxn_cs_tx_write(conn, dxn_cs(conn)))
			list_move_tail(&conn->cs_node, &pair->cs_tx);
		else
			list_del_init(&conn->cs_node);
	}
	list_splice_tail_init(&pair->cs_tx, &pair->cs_watch);
	dxn_stat_cs_refresh(n + k);
}

/**
 * dxn_cs_rx_budget - bytes conn may publish in this RX phase
 * @conn: the connection
 *
 * Reads the user-written rx_limit once and checks it against the bytes
 * published so far (kernel state): a limit at or below them, also one
 * lowered below them, allows nothing. Process context, port->lock held.
 *
 * Return: the budget, U64_MAX when unlimited.
 */
u64 dxn_cs_rx_budget(struct dxn_conn *conn)
{
	struct daxnet_conn_state *st = dxn_cs(conn);
	u64 limit;

	lockdep_assert_held(&conn->port->lock);
	if (!st)
		return U64_MAX;
	limit = READ_ONCE(st->rx_limit);
	if (!limit)
		return U64_MAX;
	return limit > conn->cnt.rx_bytes ? limit - conn->cnt.rx_bytes : 0;
}

/**
 * dxn_cs_rx_done - the RX phase of conn ended
 * @conn: the connection
 * @paused: it stopped at its rx_limit with bytes left in the socket
 * @pending: bytes TCP holds for it, not yet published
 *
 * A paused connection is looked at again by dxn_cs_rx_resume() at every
 * sync of its pair. Process context, port->lock held.
 */
void dxn_cs_rx_done(struct dxn_conn *conn, bool paused, u32 pending)
{
	struct daxnet_conn_state *st = dxn_cs(conn);

	lockdep_assert_held(&conn->port->lock);
	if (paused) {
		conn->cnt.rx_paused++;
		conn->pair->cnt.rx_paused++;
		if (list_empty(&conn->pause_node))
			list_add_tail(&conn->pause_node,
				      &conn->pair->rx_paused);
		/*
		 * From now on arriving segments do not wake the poller:
		 * nothing can be published before the limit is raised.
		 */
		set_bit(DXN_RX_PAUSED, &conn->flags);
	} else if (!list_empty(&conn->pause_node)) {
		/*
		 * It read with a limit raised after dxn_cs_rx_resume() looked
		 * and did not stop: arriving segments must wake the poller
		 * again.
		 */
		list_del_init(&conn->pause_node);
		clear_bit(DXN_RX_PAUSED, &conn->flags);
	}
	if (!st)
		return;
	WRITE_ONCE(st->rx_bytes, conn->cnt.rx_bytes);
	WRITE_ONCE(st->rx_pending, pending);
	WRITE_ONCE(st->rx_paused, conn->cnt.rx_paused);
}

/**
 * dxn_cs_rx_resume - mark paused connections whose limit was raised
 * @pair: the ring pair, before its RX phase
 *
 * Process context, port->lock held.
 */
void dxn_cs_rx_resume(struct dxn_pair *pair)
{
	struct dxn_conn *conn, *tmp;

	lockdep_assert_held(&pair->port->lock);
	list_for_each_entry_safe(conn, tmp, &pair->rx_paused, pause_node) {
		if (!dxn_cs_rx_budget(conn))
			continue;
		list_del_init(&conn->pause_node);
		clear_bit(DXN_RX_PAUSED, &conn->flags);
		dxn_mark_rx(conn);
	}
}
