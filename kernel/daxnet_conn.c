// SPDX-License-Identifier: GPL-2.0
/*
 * Attaching TCP sockets, their callbacks, detaching.
 *
 * The hook follows net/kcm and net/strparser: the socket's callbacks are
 * swapped under write_lock_bh(&sk->sk_callback_lock), sk_user_data marks
 * the socket as ours (and refuses sockets somebody else owns), and the
 * callbacks only mark the connection ready and wake the poller. All socket
 * work happens in DAXNET_IOC_SYNC under lock_sock(). The socket's file
 * reference taken by sockfd_lookup() is kept until detach, so close(fd)
 * while attached only drops the caller's descriptor.
 *
 * While attached, the socket also carries a placeholder ULP (dxn_ulp_ops):
 * a socket has at most one ULP, so setsockopt(TCP_ULP) - kTLS, say - fails
 * with EEXIST instead of wrapping our callbacks (kTLS would save ours and
 * call them after detach, when the module may be gone). Detach removes the
 * placeholder and restores each callback only if it is still ours.
 */
#include <linux/file.h>
#include <linux/slab.h>
#include <linux/poll.h>
#include <net/tcp.h>
#include <net/inet_connection_sock.h>
#include <linux/rcupdate.h>

#include "daxnet_priv.h"
#include "daxnet_zc.h"

/* Wake pollers of the port. Any context. */
static void dxn_wake(struct dxn_port *port)
{
	if (wq_has_sleeper(&port->wq))
		wake_up_interruptible_poll(&port->wq, EPOLLIN | EPOLLRDNORM);
}

/**
 * dxn_mark_rx - queue a connection for the RX phase of the next sync
 * @conn: the connection
 *
 * Any context; takes port->ready_lock (BH-safe).
 */
void dxn_mark_rx(struct dxn_conn *conn)
{
	struct dxn_port *port = conn->port;

	if (test_and_set_bit(DXN_RX_READY, &conn->flags))
		return;
	spin_lock_bh(&port->ready_lock);
	list_add_tail(&conn->rx_node, &conn->pair->rx_ready);
	spin_unlock_bh(&port->ready_lock);
	dxn_wake(port);
}

/* Queue a connection for TX resumption. Any context; takes ready_lock. */
static void dxn_mark_tx(struct dxn_conn *conn)
{
	struct dxn_port *port = conn->port;

	if (test_and_set_bit(DXN_TX_READY, &conn->flags))
		return;
	spin_lock_bh(&port->ready_lock);
	list_add_tail(&conn->tx_node, &conn->pair->tx_ready);
	if (conn->txq_busy)
		conn->pair->ntx_resume++;
	spin_unlock_bh(&port->ready_lock);
	dxn_wake(port);
}

/*
 * The placeholder ULP of an attached socket: no operations, no module
 * reference (it never outlives the attachment; tcp_cleanup_ulp() would
 * only clear it).
 */
static const struct tcp_ulp_ops dxn_ulp_ops = {
	.name = "daxnet",
};

/* Our connection of sk; caller holds sk->sk_callback_lock (either side). */
static struct dxn_conn *dxn_sk_conn(struct sock *sk)
{
	return rcu_dereference_check(__sk_user_data(sk),
				     lockdep_is_held(&sk->sk_callback_lock));
}

/*
 * Socket callbacks. Called by TCP in softirq with the socket spinlock held,
 * or in process context from release_sock() (possibly our own sync's).
 * They take read_lock_bh(&sk->sk_callback_lock), tolerate a NULL
 * sk_user_data (detach may have just restored the callbacks), never sleep,
 * never lock the socket.
 */
static void dxn_data_ready(struct sock *sk)
{
	struct dxn_conn *conn;

	read_lock_bh(&sk->sk_callback_lock);
	conn = dxn_sk_conn(sk);
	/*
	 * A connection paused at its rx_limit cannot publish the bytes: no
	 * wakeup per segment. The pause transition itself was one RX phase;
	 * raising the limit marks it ready (dxn_cs_rx_resume()). State
	 * changes and errors still mark it (dxn_state_change()).
	 */
	if (likely(conn) && !test_bit(DXN_RX_PAUSED, &conn->flags))
		dxn_mark_rx(conn);
	read_unlock_bh(&sk->sk_callback_lock);
}

static void dxn_write_space(struct sock *sk)
{
	struct dxn_conn *conn;

	read_lock_bh(&sk->sk_callback_lock);
	conn = dxn_sk_conn(sk);
	if (likely(conn))
		dxn_mark_tx(conn);
	read_unlock_bh(&sk->sk_callback_lock);
}

static void dxn_state_change(struct sock *sk)
{
	struct dxn_conn *conn;

	read_lock_bh(&sk->sk_callback_lock);
	conn = dxn_sk_conn(sk);
	if (likely(conn)) {
		dxn_mark_rx(conn);
		dxn_mark_tx(conn);
		conn->save_state_change(sk);
	}
	read_unlock_bh(&sk->sk_callback_lock);
}

/* A socket error (RST, ICMP, timeout): the next sync reports it. */
static void dxn_error_report(struct sock *sk)
{
	struct dxn_conn *conn;

	read_lock_bh(&sk->sk_callback_lock);
	conn = dxn_sk_conn(sk);
	if (likely(conn)) {
		dxn_mark_rx(conn);
		dxn_mark_tx(conn);
		conn->save_error_report(sk);
	}
	read_unlock_bh(&sk->sk_callback_lock);
}

/**
 * dxn_sk_attached - is @sk attached to @port?
 * @sk: a full socket, kept alive by the caller (reference or RCU)
 * @port: the port
 *
 * Any context, BH included: takes read_lock_bh(&sk->sk_callback_lock),
 * under which an attached connection cannot be detached and freed.
 */
bool dxn_sk_attached(struct sock *sk, const struct dxn_port *port)
{
	struct dxn_conn *conn = NULL;
	bool ret;

	read_lock_bh(&sk->sk_callback_lock);
	/* sk_user_data is ours only while our callback is installed. */
	if (READ_ONCE(sk->sk_data_ready) == dxn_data_ready)
		conn = dxn_sk_conn(sk);
	ret = conn && conn->port == port;
	read_unlock_bh(&sk->sk_callback_lock);
	return ret;
}

/**
 * dxn_conn_lookup - find an attached connection by id
 * @port: the port
 * @id: connection id from user space (any value)
 *
 * Process context, port->lock held.
 *
 * Return: the connection, or NULL for an unknown id.
 */
struct dxn_conn *dxn_conn_lookup(struct dxn_port *port, u32 id)
{
	u32 idx = DAXNET_CONN_INDEX(id);
	struct dxn_conn *conn;

	lockdep_assert_held(&port->lock);
	if (idx >= port->max_conns)
		return NULL;
	conn = port->conns[idx];
	if (!conn || conn->id != id)
		return NULL;
	return conn;
}

/* Check that sock is a connected TCP socket. Caller holds lock_sock. */
static int dxn_check_sock(struct socket *sock)
{
	struct sock *sk = sock->sk;

	if (sock->type != SOCK_STREAM || !sk ||
	    (sk->sk_family != AF_INET && sk->sk_family != AF_INET6) ||
	    sk->sk_protocol != IPPROTO_TCP)
		return -EPROTONOSUPPORT;
	/* CLOSE_WAIT: the peer sent FIN, data may still be queued. */
	if (!((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)))
		return -ENOTCONN;
	if (sock_flag(sk, SOCK_DEAD))
		return -ENOTCONN;
	if (inet_csk_has_ulp(sk))
		return -EBUSY;
	return 0;
}

/**
 * dxn_attach - attach a connected TCP socket to a ring pair
 * @port: a registered port
 * @arg: the ioctl argument (fd, pair, cookie in; conn out)
 * @uarg: where user space wants @arg back
 *
 * Everything that can refuse the socket is checked, and the socket is
 * claimed (sk_user_data, under its callback lock), before the result
 * (@arg with the connection id) is copied to @uarg; the callbacks are
 * swapped only after that copy succeeded. So a failed ATTACH leaves
 * nothing visible: @uarg is not written by a refusal, and a fault on the
 * copy only drops the claim, which nobody else could observe (the socket
 * stays locked throughout). Nothing is undone with a detach (which could
 * itself fail).
 *
 * Process context (ATTACH ioctl), port->lock held. Takes lock_sock(sk),
 * then write_lock_bh(&sk->sk_callback_lock).
 *
 * Return: 0 (arg->conn set), -EBADF, -ENOTSOCK, -EPROTONOSUPPORT,
 * -ENOTCONN, -EBUSY (owned or has a ULP), -ENOSPC, -EINVAL, -EFAULT or
 * -ENOMEM.
 */
int dxn_attach(struct dxn_port *port, struct daxnet_attach *arg,
	       struct daxnet_attach __user *uarg)
{
	struct dxn_conn *conn;
	struct socket *sock;
	struct dxn_pair *pair;
	struct sock *sk;
	int idx, err;

	lockdep_assert_held(&port->lock);
	if (arg->flags || arg->reserved[0] || arg->reserved[1] ||
	    arg->pair >= port->num_pairs)
		return -EINVAL;
	pair = &port->pairs[arg->pair];

	sock = sockfd_lookup(arg->fd, &err);
	if (!sock)
		return err;

	conn = kzalloc(sizeof(*conn), GFP_KERNEL_ACCOUNT);
	if (!conn) {
		err = -ENOMEM;
		goto out_put;
	}
	idx = ida_alloc_max(&port->ida, port->max_conns - 1,
			    GFP_KERNEL_ACCOUNT);
	if (idx < 0) {
		err = idx == -ENOSPC ? -ENOSPC : idx;
		goto out_free;
	}

	conn->port = port;
	conn->pair = pair;
	conn->sock = sock;
	conn->sk = sock->sk;
	conn->cookie = arg->cookie;
	conn->rx_buf = DAXNET_NO_BUF;
	conn->new_conn_due = true;
	INIT_LIST_HEAD(&conn->rx_node);
	INIT_LIST_HEAD(&conn->tx_node);
	INIT_LIST_HEAD(&conn->work_node);
	INIT_LIST_HEAD(&conn->txq);
	port->gens[idx] = (port->gens[idx] + 1) &
			  ((1u << (32 - DAXNET_CONN_INDEX_BITS)) - 1);
	if (!port->gens[idx])
		port->gens[idx] = 1;
	conn->id = ((u32)port->gens[idx] << DAXNET_CONN_INDEX_BITS) | idx;

	sk = sock->sk;
	if (!sk) {
		err = -ENOTCONN;
		goto out_ida;
	}
	lock_sock(sk);
	err = dxn_check_sock(sock);
	if (err)
		goto out_release;

	/*
	 * Claim sk_user_data unless we or someone else use it. Must be done
	 * under the callback lock to race with neither kcm, sockmap, sunrpc
	 * nor a concurrent attach of the same socket to another port. Our
	 * callbacks are not installed yet, so nothing reads the claim.
	 */
	write_lock_bh(&sk->sk_callback_lock);
	if (sk->sk_user_data) {
		write_unlock_bh(&sk->sk_callback_lock);
		err = -EBUSY;
		goto out_release;
	}
	rcu_assign_sk_user_data(sk, conn);
	write_unlock_bh(&sk->sk_callback_lock);

	/*
	 * Nothing can refuse the socket any more: write the result (a user
	 * fault with lock_sock held, as in tcp_recvmsg()). A fault drops the
	 * claim.
	 */
	arg->conn = conn->id;
	if (copy_to_user(uarg, arg, sizeof(*arg))) {
		write_lock_bh(&sk->sk_callback_lock);
		rcu_assign_sk_user_data(sk, NULL);
		write_unlock_bh(&sk->sk_callback_lock);
		err = -EFAULT;
		goto out_release;
	}

	write_lock_bh(&sk->sk_callback_lock);
	conn->save_data_ready = sk->sk_data_ready;
	conn->save_write_space = sk->sk_write_space;
	conn->save_state_change = sk->sk_state_change;
	conn->save_error_report = sk->sk_error_report;
	WRITE_ONCE(sk->sk_data_ready, dxn_data_ready);
	WRITE_ONCE(sk->sk_write_space, dxn_write_space);
	WRITE_ONCE(sk->sk_state_change, dxn_state_change);
	WRITE_ONCE(sk->sk_error_report, dxn_error_report);
	write_unlock_bh(&sk->sk_callback_lock);
	/* No ULP may wrap our callbacks while attached (lock_sock held). */
	inet_csk(sk)->icsk_ulp_ops = &dxn_ulp_ops;
	release_sock(sk);

	port->conns[idx] = conn;
	dxn_cs_attach(conn);
	pair->nconns++;
	pair->cnt.conns = pair->nconns;
	/* The NEW_CONN slot, and any bytes that arrived before attach. */
	dxn_mark_rx(conn);
	if (port->zc)
		dxn_zc_attach(pair, sk);
	return 0;

out_release:
	release_sock(sk);
out_ida:
	ida_free(&port->ida, idx);
out_free:
	kfree(conn);
out_put:
	sockfd_put(sock);
	return err;
}

/* Restore one callback of a socket if it is still ours. */
static void dxn_restore(void (**cb)(struct sock *sk),
			void (*ours)(struct sock *sk),
			void (*saved)(struct sock *sk))
{
	if (*cb == ours)
		WRITE_ONCE(*cb, saved);
	else
		pr_warn_once("daxnet: a socket callback was replaced while attached; not restored\n");
}

/*
 * Give the socket its callbacks back, each only if still ours, and remove
 * the placeholder ULP. Process context; takes lock_sock.
 */
static void dxn_unhook(struct dxn_conn *conn)
{
	struct sock *sk = conn->sk;
	struct inet_connection_sock *icsk = inet_csk(sk);

	lock_sock(sk);
	/* Stop getting callbacks from the TCP socket. */
	write_lock_bh(&sk->sk_callback_lock);
	rcu_assign_sk_user_data(sk, NULL);
	dxn_restore(&sk->sk_data_ready, dxn_data_ready, conn->save_data_ready);
	dxn_restore(&sk->sk_write_space, dxn_write_space,
		    conn->save_write_space);
	dxn_restore(&sk->sk_state_change, dxn_state_change,
		    conn->save_state_change);
	dxn_restore(&sk->sk_error_report, dxn_error_report,
		    conn->save_error_report);
	write_unlock_bh(&sk->sk_callback_lock);
	if (icsk->icsk_ulp_ops == &dxn_ulp_ops)
		icsk->icsk_ulp_ops = NULL;
	/* Bytes we did not publish stay readable: tell the socket's owner. */
	if (!skb_queue_empty(&sk->sk_receive_queue))
		sk->sk_data_ready(sk);
	release_sock(sk);
}

/* Detach and free conn. Process context, port->lock held. */
static void dxn_conn_destroy(struct dxn_conn *conn)
{
	struct dxn_port *port = conn->port;
	struct dxn_pair *pair = conn->pair;
	u32 idx = DAXNET_CONN_INDEX(conn->id);

	lockdep_assert_held(&port->lock);
	dxn_unhook(conn);

	/* Before it leaves tx_ready: keeps pair->ntx_resume exact. */
	dxn_txq_drop(conn, true);
	/* No callback can find conn now; take it off the ready lists. */
	spin_lock_bh(&port->ready_lock);
	list_del_init(&conn->rx_node);
	list_del_init(&conn->tx_node);
	spin_unlock_bh(&port->ready_lock);
	list_del_init(&conn->work_node);

	dxn_cs_detach(conn);
	if (conn->rx_buf != DAXNET_NO_BUF) {
		port->pool.own[conn->rx_buf] = DXN_OWN_USER;
		dxn_release_buf(pair, conn->rx_buf);
	}

	port->conns[idx] = NULL;
	ida_free(&port->ida, idx);
	pair->nconns--;
	pair->cnt.conns = pair->nconns;
	/* Last reference: tcp_close() runs (deferred to task work). */
	sockfd_put(conn->sock);
	kfree(conn);
}

/**
 * dxn_detach - detach one connection
 * @port: the port
 * @id: connection id
 * @flags: DAXNET_DETACH_*
 *
 * Process context (DETACH ioctl), port->lock held.
 *
 * Return: 0, -ENOENT (not attached), -EBUSY (TX queued, no DISCARD),
 * -ENOMEM (no room to owe its RELEASEs; nothing changed) or -EINVAL.
 */
int dxn_detach(struct dxn_port *port, u32 id, u32 flags)
{
	struct dxn_pair *pair;
	struct dxn_conn *conn;
	u32 owe;

	lockdep_assert_held(&port->lock);
	if (flags & ~DAXNET_DETACH_DISCARD)
		return -EINVAL;
	conn = dxn_conn_lookup(port, id);
	if (!conn)
		return -ENOENT;
	if (!list_empty(&conn->txq) && !(flags & DAXNET_DETACH_DISCARD))
		return -EBUSY;
	/*
	 * Its own queued TX ranges and its RX buffer may each owe a RELEASE:
	 * reserve those, not the whole pair's queue. A connection that holds
	 * neither needs no room and cannot fail here.
	 */
	pair = conn->pair;
	owe = conn->ntxq;
	if (conn->rx_buf != DAXNET_NO_BUF)
		owe++;
	if (dxn_release_promise(pair, owe))
		return -ENOMEM;
	dxn_conn_destroy(conn);
	dxn_release_unpromise(pair);
	return 0;
}

/**
 * dxn_detach_all - detach every connection of the port
 * @port: the port
 *
 * Process context (release of the port file), port->lock held. Queued TX
 * bytes are discarded.
 */
void dxn_detach_all(struct dxn_port *port)
{
	u32 i;

	lockdep_assert_held(&port->lock);
	if (!port->conns)
		return;
	for (i = 0; i < port->max_conns; i++) {
		if (port->conns[i])
			dxn_conn_destroy(port->conns[i]);
		cond_resched();
	}
}
