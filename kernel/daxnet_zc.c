// SPDX-License-Identifier: GPL-2.0
/*
 * Zero-copy mode of a port (DAXNET_REG_ZEROCOPY).
 *
 * RX. The port's pool becomes the receive memory of the daxnet vnic end
 * its connections arrive on (dxn_vnic_set_provider): the vnic's xmit on
 * the other end copies each segment's payload straight into pool buffers
 * (the emulated DMA). Buffers reach the vnic from the ring pairs' spare
 * stock at each sync; the read actor then recognises payload sitting in
 * those buffers and publishes it in place (DATA | BUF_HELD, no copy).
 * Bytes TCP moved into a linear head (condense, collapse) or that sit in
 * any other page are copied by the copy-mode actor, and counted.
 *
 * Buffer lifetime. A buffer the vnic filled is returned to user space with
 * a RELEASE slot (to the ring pair whose spare it was) once the vnic is
 * done with it and no skb references its pages any more: every page's
 * count is back to the base recorded when the buffer was handed to the
 * vnic. Consumed skbs are freed lazily per CPU (skb_attempt_defer_free),
 * so the check is repeated at later syncs; a port keeps slack for it.
 * Closing the port waits (bounded) for the same before the pool is
 * unpinned.
 *
 * Locks: port->lock (mutex) for everything but the vnic-facing free list,
 * packing state and closed FIFO, which take zc->lock (BH). zc->dev is
 * changed only under RTNL. The global list of zero-copy ports (for the
 * netdevice notifier) is under dxn_zc_mutex, taken inside RTNL.
 */
#include <linux/anon_inodes.h>
#include <linux/delay.h>
#include <linux/bvec.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>
#include <linux/xarray.h>
#include <linux/capability.h>
#include <net/dst.h>
#include <net/inet_hashtables.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "daxnet_priv.h"
#include "daxnet_compat.h"
#include "daxnet_vnic.h"
#include "daxnet_zc.h"

/* Spares left in a pair's stock for the copy fallback. */
#define DXN_ZC_KEEP		8
/* Closed buffers checked per sync. */
#define DXN_ZC_SCAN		64
/* How long closing a port waits for skbs to drop pool pages. */
#define DXN_ZC_DRAIN_MS		3000

/*
 * Completed TX batches on their way to the next sync. A batch whose port is
 * gone still completes (TCP frees skbs when it likes), so the queue lives
 * as long as its anchor: an anonymous file (fops owned by this module)
 * referenced by the port and by every live batch. The last fput() runs
 * __fput() later, from core code: dxn_zc_anchor_release() frees the queue
 * and returns, then the VFS drops the module reference (fops_put). No
 * daxnet code runs after the module reference is gone, and rmmod sees the
 * module busy while any batch is in flight.
 */
struct dxn_zc_txq {
	struct file *anchor;		/* private_data = this queue */
	atomic_t live;			/* batches not completed yet */
	spinlock_t lock;		/* IRQ-safe; done, wq, dead */
	struct list_head done;
	wait_queue_head_t *wq;		/* port->wq, NULL once dead */
	bool dead;
};

/* One (connection, sync) batch of zero-copy sends. */
struct dxn_zc_batch {
	struct ubuf_info ubuf;		/* msg_ubuf of every send */
	struct dxn_zc_txq *txq;
	struct list_head node;		/* txq->done */
	struct sock *sk;		/* held */
	u32 pair;
	u32 end_seq;			/* write_seq after the last send */
	bool copied;			/* some callback reported !success */
	bool early;			/* completed before end_seq was ACKed */
	u32 n, cap;
	u32 *bufs;			/* one entry per send */
};

struct dxn_zc {
	struct dxn_vnic_provider prov;
	struct dxn_port *port;
	struct list_head node;		/* dxn_zc_all, under dxn_zc_mutex */

	/* RTNL */
	struct net_device *dev;		/* bound vnic end (holds a ref) */
	struct net_device *want;	/* end to bind at the next sync (ref) */
	bool bind_failed;		/* do not try again */

	/* port->lock */
	struct xarray pfns;		/* pfn -> pool page index */
	u32 ppb;			/* pages per buffer */
	u16 *owner;			/* buffer -> ring pair that gave it */
	int *base;			/* page -> page_count when handed over */
	u32 nnic;			/* buffers in state DXN_OWN_NIC */
	u32 pack_seen;			/* pack position at the last sync */
	int pack_seen_buf;

	/* TX, port->lock */
	struct dxn_zc_txq *txq;
	struct list_head ackwait;	/* completed batches waiting for ACK */
	u32 *txref;			/* buffer -> batches still sending it */
	u32 *txowed;			/* buffer -> RELEASEs owed at txref 0 */
	u32 nowed;			/* sum of txowed (dxn_zc_send()) */

	/*
	 * zc->lock (BH). A buffer is on at most one of free, pack and closed,
	 * and only while its state is DXN_OWN_NIC (set once, at refill): each
	 * list holds at most buf_count entries by construction.
	 */
	spinlock_t lock;
	u32 *free;			/* buffers the vnic may fill */
	u32 nfree;
	u32 *closed;			/* FIFO: filled, waiting for skbs */
	u32 closed_head;
	u32 nclosed;
	int pack;			/* buffer being packed, or -1 */
	u32 pack_off;

	struct timer_list recheck;	/* wakes pollers, dxn_zc_rx_pending() */
	/*
	 * The last housekeeping (port-wide: any pair's sync runs it for
	 * every pair) deferred a RELEASE at rel_stuck_at (jiffies) because
	 * a RELEASE queue could not grow (port->lock). poll() then reports
	 * the housekeeping only DXN_NOMEM_MS later (dxn_nomem_backoff(),
	 * port->retry), not when some other timer fires.
	 */
	bool rel_stuck;
	unsigned long rel_stuck_at;
};

/* TX slices shorter than this take the copy path (docs/kernel.md). */
static unsigned int zc_tx_min = 2048;
module_param(zc_tx_min, uint, 0644);
MODULE_PARM_DESC(zc_tx_min,
		 "zero-copy ports send TX slices shorter than this many bytes by copy");

static LIST_HEAD(dxn_zc_all);
static DEFINE_MUTEX(dxn_zc_mutex);

/*
 * Consumed skbs wait on the per-CPU defer lists of skb_attempt_defer_free()
 * until that CPU runs net_rx_action() again, which can take forever on an
 * idle CPU. Scheduling a do-nothing NAPI instance on every CPU runs it.
 */
static struct net_device dxn_flush_dev;
static DEFINE_PER_CPU(struct napi_struct, dxn_flush_napi);

/* NAPI poll of the flush instances: softirq; nothing to do. */
static int dxn_flush_poll(struct napi_struct *napi, int budget)
{
	napi_complete_done(napi, 0);
	return 0;
}

/* IPI handler (hard IRQ): schedule this CPU's flush instance. */
static void dxn_flush_kick_one(void *unused)
{
	napi_schedule(this_cpu_ptr(&dxn_flush_napi));
}

/* Disable and delete the flush instances. Process context. */
static void dxn_flush_teardown(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		struct napi_struct *napi = per_cpu_ptr(&dxn_flush_napi, cpu);

		napi_disable(napi);
		netif_napi_del(napi);
	}
}

/* Make every CPU free its deferred skbs soon. Process context. */
static void dxn_flush_kick(void)
{
	on_each_cpu(dxn_flush_kick_one, NULL, 0);
}

static struct page *dxn_zc_page(struct dxn_zc *zc, u32 buf, u32 i)
{
	return zc->port->pool.pages[(unsigned long)buf * zc->ppb + i];
}

/* Append buf to the closed FIFO. zc->lock held. */
static void dxn_zc_close(struct dxn_zc *zc, u32 buf)
{
	u32 n = zc->port->pool.buf_count;

	lockdep_assert_held(&zc->lock);
	/* Cannot happen: every NIC buffer is on one list only. */
	if (WARN_ON_ONCE(zc->nclosed >= n))
		return;
	zc->closed[(zc->closed_head + zc->nclosed++) % n] = buf;
}

/*
 * dxn_vnic_provider_ops.get_chunk: the peer's xmit, BH, any CPU. A large
 * piece gets the first page of a fresh buffer; a small one is packed.
 */
static bool dxn_zc_get_chunk(struct dxn_vnic_provider *prov, unsigned int want,
			     struct dxn_rxchunk *c)
{
	struct dxn_zc *zc = container_of(prov, struct dxn_zc, prov);
	u32 bs = zc->port->pool.buf_size;
	u32 sz = ALIGN(want, DXN_VNIC_PACK_ALIGN);
	bool ok = false;
	u32 buf, po;

	spin_lock(&zc->lock);
	if (want >= DXN_VNIC_PACK_MAX) {
		if (!zc->nfree)
			goto out;
		buf = zc->free[--zc->nfree];
		c->page = dxn_zc_page(zc, buf, 0);
		/* The frag's reference, before the buffer can be reaped. */
		get_page(c->page);
		dxn_zc_close(zc, buf);
		c->off = 0;
		c->len = min_t(unsigned int, want, PAGE_SIZE);
		c->truesize = PAGE_SIZE;
		ok = true;
		goto out;
	}
	po = zc->pack_off;
	if (zc->pack >= 0 && offset_in_page(po) + sz > PAGE_SIZE)
		po = ALIGN(po, PAGE_SIZE);
	if (zc->pack < 0 || po + sz > bs) {
		if (zc->pack >= 0)
			dxn_zc_close(zc, zc->pack);
		zc->pack = -1;
		if (!zc->nfree)
			goto out;
		zc->pack = zc->free[--zc->nfree];
		po = 0;
	}
	c->page = dxn_zc_page(zc, zc->pack, po >> PAGE_SHIFT);
	get_page(c->page);
	c->off = offset_in_page(po);
	c->len = want;
	c->truesize = sz;
	zc->pack_off = po + sz;
	ok = true;
out:
	spin_unlock(&zc->lock);
	return ok;
}

/*
 * dxn_vnic_provider_ops.flow_ok: the peer's xmit, BH, any CPU. Payload may
 * land in the pool only for a TCP flow whose socket (in the receiving
 * end's netns) is attached to this port; any other user's traffic gets
 * ordinary pages.
 */
static bool dxn_zc_flow_ok(struct dxn_vnic_provider *prov,
			   struct net_device *dev, const struct iphdr *iph,
			   const struct tcphdr *th)
{
	struct dxn_zc *zc = container_of(prov, struct dxn_zc, prov);
	struct net *net = dev_net(dev);
	struct sock *sk;
	bool ok;

	sk = __inet_lookup_established(net, net->ipv4.tcp_death_row.hashinfo,
				       iph->saddr, th->source, iph->daddr,
				       ntohs(th->dest), dev->ifindex, 0);
	if (!sk)
		return false;
	ok = sk_fullsock(sk) && dxn_sk_attached(sk, zc->port);
	sock_gen_put(sk);
	return ok;
}

static const struct dxn_vnic_provider_ops dxn_zc_prov_ops = {
	.get_chunk = dxn_zc_get_chunk,
	.flow_ok = dxn_zc_flow_ok,
};

/* Are all pages of buf back at their base count? Any context. */
static bool dxn_zc_idle(struct dxn_zc *zc, u32 buf)
{
	u32 i;

	for (i = 0; i < zc->ppb; i++) {
		unsigned long p = (unsigned long)buf * zc->ppb + i;

		if (page_count(zc->port->pool.pages[p]) != zc->base[p])
			return false;
	}
	return true;
}

/* ------------------------------------------------------------ binding */

/* Bind the pool to the vnic end learned by the actor. port->lock held. */
static void dxn_zc_bind(struct dxn_zc *zc)
{
	struct net_device *dev;

	lockdep_assert_held(&zc->port->lock);
	rtnl_lock();
	dev = zc->want;
	zc->want = NULL;
	if (dev && !zc->dev && !zc->bind_failed) {
		if (dev->reg_state == NETREG_REGISTERED &&
		    !dxn_vnic_set_provider(dev, &zc->prov)) {
			zc->dev = dev;
			dev = NULL;	/* the reference moves to zc->dev */
		} else {
			zc->bind_failed = true;
		}
	}
	rtnl_unlock();
	if (dev)
		dev_put(dev);
}

/* Drop the binding and a pending one. RTNL held. */
static void dxn_zc_unbind(struct dxn_zc *zc)
{
	if (zc->dev) {
		dxn_vnic_clear_provider(zc->dev, &zc->prov);
		dev_put(zc->dev);
		zc->dev = NULL;
	}
	if (zc->want) {
		dev_put(zc->want);
		zc->want = NULL;
	}
	zc->bind_failed = true;
}

/* netdevice notifier: RTNL held. A bound vnic end is going away. */
static int dxn_zc_netdev_event(struct notifier_block *nb, unsigned long event,
			       void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct dxn_zc *zc;

	if (event != NETDEV_UNREGISTER || !dxn_is_vnic(dev))
		return NOTIFY_DONE;
	mutex_lock(&dxn_zc_mutex);
	list_for_each_entry(zc, &dxn_zc_all, node)
		if (zc->dev == dev || zc->want == dev)
			dxn_zc_unbind(zc);
	mutex_unlock(&dxn_zc_mutex);
	return NOTIFY_DONE;
}

static struct notifier_block dxn_zc_notifier = {
	.notifier_call = dxn_zc_netdev_event,
};

/* --------------------------------------------------------------- sync */

/*
 * Hand buffers of pair's spare stock to the vnic, up to spare_slots free
 * ones (more would only starve the application). port->lock held.
 */
static void dxn_zc_refill(struct dxn_zc *zc, struct dxn_pair *pair)
{
	u32 keep = min_t(u32, DXN_ZC_KEEP, pair->stock_cap / 4);
	u32 max = min(pair->spare.n, zc->port->pool.buf_count);
	u8 *own = zc->port->pool.own;
	u32 buf, i, nfree;

	lockdep_assert_held(&zc->port->lock);
	spin_lock_bh(&zc->lock);
	nfree = zc->nfree;
	spin_unlock_bh(&zc->lock);
	/*
	 * The vnic holds at most a spare ring's worth of free buffers. Stock
	 * entries are distinct DXN_OWN_STOCK buffers (dxn_intake_check()), so
	 * free never exceeds buf_count; the check below keeps it so anyway.
	 */
	while (pair->nstock > keep && nfree < max) {
		buf = pair->stock[--pair->nstock];
		if (WARN_ON_ONCE(own[buf] != DXN_OWN_STOCK))
			continue;
		nfree++;
		zc->owner[buf] = pair->idx;
		own[buf] = DXN_OWN_NIC;
		zc->nnic++;
		for (i = 0; i < zc->ppb; i++) {
			unsigned long p = (unsigned long)buf * zc->ppb + i;

			zc->base[p] = page_count(zc->port->pool.pages[p]);
		}
		spin_lock_bh(&zc->lock);
		zc->free[zc->nfree++] = buf;
		spin_unlock_bh(&zc->lock);
	}
}

/*
 * Give back (RELEASE) closed buffers no skb references any more; close a
 * packing buffer that made no progress since the last sync. port->lock
 * held.
 */
static void dxn_zc_reap(struct dxn_zc *zc)
{
	u32 n = zc->port->pool.buf_count;
	u32 batch[DXN_ZC_SCAN];
	u32 i, cnt = 0;
	bool kick;

	lockdep_assert_held(&zc->port->lock);
	spin_lock_bh(&zc->lock);
	kick = zc->nfree < DXN_ZC_SCAN && zc->nclosed > DXN_ZC_SCAN;
	if (zc->pack >= 0 && zc->pack == zc->pack_seen_buf &&
	    zc->pack_off == zc->pack_seen) {
		dxn_zc_close(zc, zc->pack);
		zc->pack = -1;
	}
	zc->pack_seen_buf = zc->pack;
	zc->pack_seen = zc->pack_off;
	while (cnt < DXN_ZC_SCAN && zc->nclosed) {
		batch[cnt++] = zc->closed[zc->closed_head];
		zc->closed_head = (zc->closed_head + 1) % n;
		zc->nclosed--;
	}
	spin_unlock_bh(&zc->lock);
	/* The vnic runs dry while skbs sit on defer lists: free them. */
	if (kick)
		dxn_flush_kick();

	for (i = 0; i < cnt; i++) {
		u32 buf = batch[i];

		if (!dxn_zc_idle(zc, buf))
			continue;
		/* No room for the RELEASE: keep it closed, retry later. */
		if (!dxn_release_try(&zc->port->pairs[zc->owner[buf]], buf)) {
			zc->rel_stuck = true;
			continue;
		}
		zc->port->pool.own[buf] = DXN_OWN_USER;
		zc->nnic--;
		batch[i] = DAXNET_NO_BUF;
	}
	spin_lock_bh(&zc->lock);
	for (i = 0; i < cnt; i++)
		if (batch[i] != DAXNET_NO_BUF)
			dxn_zc_close(zc, batch[i]);
	spin_unlock_bh(&zc->lock);
}

/* ------------------------------------------------------------------ RX */

/* The pool buffer and offset of a frag's bytes, if the vnic put them there. */
static bool dxn_zc_lookup(struct dxn_zc *zc, const skb_frag_t *f, u32 *buf,
			  u32 *off)
{
	struct page *page = skb_frag_page(f);
	void *ent;
	u32 idx;

	if (!page || skb_frag_off(f) + skb_frag_size(f) > PAGE_SIZE)
		return false;
	ent = xa_load(&zc->pfns, page_to_pfn(page));
	if (!ent)
		return false;
	idx = xa_to_value(ent);
	*buf = idx / zc->ppb;
	if (zc->port->pool.own[*buf] != DXN_OWN_NIC)
		return false;
	*off = (idx % zc->ppb) * PAGE_SIZE + skb_frag_off(f);
	return true;
}

/* Walk state of one actor call; offsets are in the top skb. */
struct dxn_zc_walk {
	read_descriptor_t *rd;
	struct sk_buff *top;
	unsigned int from;	/* next byte to deliver */
	unsigned int end;
	bool stop;
};

/* Deliver top-skb bytes [w->from, w->from + n) by copying. */
static void dxn_zc_copy(struct dxn_zc_walk *w, unsigned int n, bool head)
{
	struct dxn_rxctx *ctx = w->rd->arg.data;
	struct dxn_pair *pair = ctx->pair;
	int got;

	got = dxn_rx_actor(w->rd, w->top, w->from, n);
	if (got > 0) {
		w->from += got;
		if (head) {
			pair->cnt.rx_copy_head += got;
			ctx->conn->cnt.rx_copy_head += got;
		} else {
			pair->cnt.rx_copy_other += got;
			ctx->conn->cnt.rx_copy_other += got;
		}
	}
	if (got < (int)n)
		w->stop = true;
}

/* Publish n bytes at (buf, off) in place: one DATA | BUF_HELD slot. */
static void dxn_zc_publish(struct dxn_zc_walk *w, u32 buf, u32 off,
			   unsigned int n)
{
	struct dxn_rxctx *ctx = w->rd->arg.data;
	struct dxn_pair *pair = ctx->pair;
	struct dxn_conn *conn = ctx->conn;

	/* Keep stream order: finish the copy slot this conn has open. */
	if (ctx->slot_open)
		dxn_rx_close_slot(ctx, true);
	if (!ctx->room) {
		ctx->stop = DXN_STOP_RING;
		pair->cnt.rx_ring_full++;
		w->stop = true;
		return;
	}
	ctx->room--;
	dxn_rx_write(pair, conn->id, buf, off, n,
		     DAXNET_SLOT_DATA | DAXNET_SLOT_BUF_HELD, 0, conn->cookie);
	pair->cnt.rx_bytes += n;
	pair->cnt.rx_zc_bytes += n;
	conn->cnt.rx_bytes += n;
	conn->cnt.rx_zc_bytes += n;
	w->from += n;
}

/* Deliver the part of skb (at top-skb offset pos) inside [from, end). */
static void dxn_zc_walk_skb(struct dxn_zc *zc, struct dxn_zc_walk *w,
			    struct sk_buff *skb, unsigned int pos)
{
	struct sk_buff *iter;
	unsigned int hl = skb_headlen(skb);
	int i;

	/* Linear head: bytes TCP or GRO left (or pulled) there. */
	if (w->from < pos + hl && w->from < w->end)
		dxn_zc_copy(w, min(pos + hl, w->end) - w->from, true);
	pos += hl;
	for (i = 0; !w->stop && i < skb_shinfo(skb)->nr_frags; i++) {
		const skb_frag_t *f = &skb_shinfo(skb)->frags[i];
		unsigned int fs = skb_frag_size(f), skip, n;
		u32 buf, off;

		if (w->from >= w->end)
			return;
		if (w->from < pos + fs) {
			skip = w->from - pos;
			n = min(pos + fs, w->end) - w->from;
			if (dxn_zc_lookup(zc, f, &buf, &off))
				dxn_zc_publish(w, buf, off + skip, n);
			else
				dxn_zc_copy(w, n, false);
		}
		pos += fs;
	}
	skb_walk_frags(skb, iter) {
		if (w->stop || w->from >= w->end)
			return;
		if (w->from < pos + iter->len)
			dxn_zc_walk_skb(zc, w, iter, pos);
		pos += iter->len;
	}
}

/* Remember the vnic end a connection's packets arrive on. port->lock. */
static void dxn_zc_learn(struct dxn_zc *zc, struct sock *sk)
{
	struct dst_entry *dst;

	if (zc->dev || zc->want || zc->bind_failed)
		return;
	rcu_read_lock();
	dst = __sk_dst_get(sk);
	/* Binding a vnic end needs CAP_NET_ADMIN over its netns. */
	if (dst && dst->dev && dxn_is_vnic(dst->dev) &&
	    dxn_may_admin(dev_net(dst->dev))) {
		dev_hold(dst->dev);
		WRITE_ONCE(zc->want, dst->dev);
	}
	rcu_read_unlock();
}

/**
 * dxn_zc_rx_actor - tcp_read_sock() actor of a zero-copy port
 * @rd: descriptor; rd->arg.data is the sync's struct dxn_rxctx
 * @skb: the skb holding the bytes
 * @offset: first byte in @skb
 * @len: bytes offered
 *
 * Process context, lock_sock(sk) and port->lock held. Publishes bytes the
 * vnic put in pool buffers in place and copies the rest with the copy
 * actor, in stream order. Returns the bytes consumed (fewer than @len when
 * the RX ring or the spares ran out).
 */
int dxn_zc_rx_actor(read_descriptor_t *rd, struct sk_buff *skb,
		    unsigned int offset, size_t len)
{
	struct dxn_rxctx *ctx = rd->arg.data;
	struct dxn_zc *zc = ctx->pair->port->zc;
	struct dxn_zc_walk w = {
		.rd = rd, .top = skb, .from = offset, .end = offset + len,
	};

	lockdep_assert_held(&ctx->pair->port->lock);
	sock_owned_by_me(ctx->conn->sk);
	dxn_zc_learn(zc, ctx->conn->sk);
	dxn_zc_walk_skb(zc, &w, skb, 0);
	return w.from - offset;
}

/* ------------------------------------------------------------------ TX */

/* Are some of the batch's bytes still not ACKed on a live connection? */
static bool dxn_zc_unacked(const struct dxn_zc_batch *b)
{
	const struct sock *sk = b->sk;

	return !READ_ONCE(sk->sk_err) && READ_ONCE(sk->sk_state) != TCP_CLOSE &&
	       before(READ_ONCE(tcp_sk(sk)->snd_una), b->end_seq);
}

/*
 * Ask for sk_write_space() at the next ACK that frees send queue space
 * (tcp_check_space() needs SOCK_NOSPACE): an attached connection's
 * callback then wakes the port. Process context.
 */
static void dxn_zc_want_ack(struct sock *sk)
{
	read_lock_bh(&sk->sk_callback_lock);
	if (sk->sk_socket)
		set_bit(SOCK_NOSPACE, &sk->sk_socket->flags);
	read_unlock_bh(&sk->sk_callback_lock);
}

/* Free a batch; any context (sock_put and kfree only). */
static void dxn_zc_batch_free(struct dxn_zc_batch *b)
{
	sock_put(b->sk);
	kfree(b->bufs);
	kfree(b);
}

/* ->release of the anchor file: process context (__fput), last reference. */
static int dxn_zc_anchor_release(struct inode *inode, struct file *file)
{
	kfree(file->private_data);
	return 0;
}

static const struct file_operations dxn_zc_anchor_fops = {
	.owner = THIS_MODULE,
	.release = dxn_zc_anchor_release,
	.llseek = noop_llseek,
};

/*
 * ubuf_info callback: every skb release of the batch and every
 * tcp_sendmsg_locked() exit (skb NULL). Softirq, process or the send path;
 * never sleeps. Success is ANDed over all calls; the last reference queues
 * the batch for the next sync and wakes the port's pollers.
 */
static void dxn_zc_tx_callback(struct sk_buff *skb, struct ubuf_info *uarg,
			       bool success)
{
	struct dxn_zc_batch *b = container_of(uarg, struct dxn_zc_batch, ubuf);
	struct dxn_zc_txq *txq = b->txq;
	unsigned long flags;
	bool dead;

	if (!success)
		WRITE_ONCE(b->copied, true);
	if (!refcount_dec_and_test(&uarg->refcnt))
		return;
	spin_lock_irqsave(&txq->lock, flags);
	dead = txq->dead;
	if (!dead) {
		list_add_tail(&b->node, &txq->done);
		wake_up_interruptible(txq->wq);
	}
	spin_unlock_irqrestore(&txq->lock, flags);
	if (dead)
		dxn_zc_batch_free(b);
	atomic_dec(&txq->live);
	/* Never frees here: __fput() runs later (task work or workqueue). */
	fput(txq->anchor);
}

DXN_UBUF_OPS(dxn_zc_ubuf_ops, dxn_zc_tx_callback);

/* The batch of conn's current TX phase, created on first use. lock_sock. */
static struct dxn_zc_batch *dxn_zc_batch(struct dxn_zc *zc,
					 struct dxn_conn *conn)
{
	struct dxn_zc_batch *b = conn->zc_batch;

	if (b)
		return b;
	/* No memory: the caller sends by copy instead, no warning. */
	b = kzalloc(sizeof(*b), GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!b)
		return NULL;
	b->cap = 16;
	b->bufs = kmalloc_array(b->cap, sizeof(*b->bufs),
				GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!b->bufs) {
		kfree(b);
		return NULL;
	}
	dxn_ubuf_set(&b->ubuf, dxn_zc_ubuf_ops, dxn_zc_tx_callback);
	refcount_set(&b->ubuf.refcnt, 1);	/* ours, until tx_end */
	b->ubuf.flags = SKBFL_ZEROCOPY_FRAG | SKBFL_DONT_ORPHAN;
	b->txq = zc->txq;
	atomic_inc(&zc->txq->live);
	get_file(zc->txq->anchor);
	sock_hold(conn->sk);
	b->sk = conn->sk;
	b->pair = conn->pair->idx;
	conn->zc_batch = b;
	return b;
}

/**
 * dxn_zc_send - send pool bytes on conn by reference (MSG_ZEROCOPY)
 * @conn: the connection of a zero-copy port
 * @buf: pool buffer
 * @off: first byte in @buf
 * @len: bytes
 * @more: more bytes follow in this sync (MSG_MORE)
 *
 * Process context, port->lock and lock_sock(sk) held. The pages go to TCP
 * as frags tied to the connection's batch; the buffer is held (txref) until
 * the batch completes, i.e. every byte of it was ACKed and TCP dropped its
 * page references.
 *
 * Return: bytes taken, -EAGAIN when the send buffer is full, other
 * -errno, or -EOPNOTSUPP: not eligible (shorter than zc_tx_min, no SG
 * route, no memory for the batch), use the copy path.
 */
int dxn_zc_send(struct dxn_conn *conn, u32 buf, u32 off, u32 len, bool more)
{
	struct dxn_pair *pair = conn->pair;
	struct dxn_zc *zc = pair->port->zc;
	struct dxn_pool *pool = &pair->port->pool;
	struct bio_vec bv[DXN_MAX_SLICE_PAGES];
	struct msghdr msg = {
		.msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL | MSG_ZEROCOPY |
			     (more ? MSG_MORE : 0),
	};
	struct dxn_zc_batch *b;
	int nr, ret;
	u32 *nb;

	lockdep_assert_held(&pair->port->lock);
	sock_owned_by_me(conn->sk);
	if (!zc || len < READ_ONCE(zc_tx_min) ||
	    !(conn->sk->sk_route_caps & NETIF_F_SG))
		return -EOPNOTSUPP;
	/*
	 * Every zero-copy send owes a RELEASE when its batch completes, and
	 * completed batches wait on ackwait until then. The DXN_MAX_TXQ
	 * rule of the copy path (queued ranges plus unpublished RELEASEs,
	 * dxn_txq_add()) covers this debt too: at the limit the bytes go by
	 * copy, which owes nothing once TCP took them (and whatever it must
	 * queue meets the ENOBUFS rule). So the RELEASEs owed, hence the
	 * non-empty batches on ackwait, stay below DXN_MAX_TXQ per port.
	 */
	if (zc->nowed + pair->ntxq + pair->rel_count >= dxn_txq_max()) {
		pair->cnt.tx_zc_limited++;
		return -EOPNOTSUPP;
	}
	b = dxn_zc_batch(zc, conn);
	if (!b)
		return -EOPNOTSUPP;
	if (b->n == b->cap) {
		nb = krealloc_array(b->bufs, b->cap * 2, sizeof(*nb),
				    GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
		if (!nb)
			return -EOPNOTSUPP;
		b->bufs = nb;
		b->cap *= 2;
	}
	nr = dxn_pool_bvec(pool, (u64)buf * pool->buf_size + off, len, bv,
			   ARRAY_SIZE(bv));
	if (nr < 0)
		return nr;
	iov_iter_bvec(&msg.msg_iter, ITER_SOURCE, bv, nr, len);
	msg.msg_ubuf = &b->ubuf;
	ret = tcp_sendmsg_locked(conn->sk, &msg, len);
	if (ret > 0) {
		b->bufs[b->n++] = buf;
		zc->txref[buf]++;
		pair->cnt.tx_bytes += ret;
		pair->cnt.tx_zc_bytes += ret;
		conn->cnt.tx_bytes += ret;
		conn->cnt.tx_zc_bytes += ret;
		b->end_seq = tcp_sk(conn->sk)->write_seq;
	} else if (ret == 0) {
		ret = -EAGAIN;
	}
	return ret;
}

/**
 * dxn_zc_tx_owe - the TX path is done with buf: may it be given back now?
 * @pair: the connection's ring pair
 * @buf: the buffer whose slot or queued range was fully handed to TCP (or
 *	dropped)
 *
 * Process context, port->lock held. Returns true when zero-copy batches
 * still send bytes of @buf: then the caller keeps it (BUF_HELD) and a
 * RELEASE slot follows when the last of those batches completes. Returns
 * false (copy-mode behaviour) otherwise, and in copy mode.
 */
bool dxn_zc_tx_owe(struct dxn_pair *pair, u32 buf)
{
	struct dxn_zc *zc = pair->port->zc;

	lockdep_assert_held(&pair->port->lock);
	if (!zc || !zc->txref[buf])
		return false;
	zc->txowed[buf]++;
	zc->nowed++;
	return true;
}

/**
 * dxn_zc_tx_full - would sending buf now owe a RELEASE beyond the limit?
 * @pair: the connection's ring pair
 * @buf: the buffer a new TX slot names
 *
 * A slot naming a buffer that zero-copy batches still send owes a RELEASE
 * however it is sent (the buffer comes back only when they complete). The
 * ENOBUFS rule (dxn_txq_add()) bounds that debt with the rest: queued
 * ranges, unpublished RELEASEs and owed zero-copy RELEASEs of the port
 * together stay below DXN_MAX_TXQ; at the limit such a slot fails with
 * ENOBUFS. Process context, port->lock held.
 *
 * Return: true if the slot must be refused.
 */
bool dxn_zc_tx_full(struct dxn_pair *pair, u32 buf)
{
	struct dxn_zc *zc = pair->port->zc;

	lockdep_assert_held(&pair->port->lock);
	return zc && zc->txref[buf] &&
	       zc->nowed + pair->ntxq + pair->rel_count >= dxn_txq_max();
}

/**
 * dxn_zc_tx_end - close conn's batch of this sync
 * @conn: the connection
 *
 * Process context, port->lock and lock_sock(sk) held. Drops the batch's
 * own reference; the batch completes when TCP lets go of its last skb.
 */
void dxn_zc_tx_end(struct dxn_conn *conn)
{
	struct dxn_zc_batch *b = conn->zc_batch;

	lockdep_assert_held(&conn->port->lock);
	sock_owned_by_me(conn->sk);
	if (!b)
		return;
	conn->zc_batch = NULL;
	dxn_zc_tx_callback(NULL, &b->ubuf, true);
}

/* Timer: buffers wait in the closed FIFO; make pollers look again. Softirq. */
static void dxn_zc_recheck(struct timer_list *t)
{
	struct dxn_zc *zc = from_timer(zc, t, recheck);

	wake_up_interruptible(&zc->port->wq);
}

/*
 * Would a sync give back a closed vnic buffer? Checks the oldest few; when
 * some wait but none is idle yet (skbs still hold them, maybe on a defer
 * list), arms the recheck timer: nothing else wakes a poller when the last
 * skb of a buffer is freed. port->lock held.
 */
static bool dxn_zc_rx_pending(struct dxn_zc *zc)
{
	u32 n = zc->port->pool.buf_count, i, k, buf;
	bool idle = false;

	lockdep_assert_held(&zc->port->lock);
	spin_lock_bh(&zc->lock);
	k = min_t(u32, zc->nclosed, 8);
	for (i = 0; i < k && !idle; i++) {
		buf = zc->closed[(zc->closed_head + i) % n];
		idle = dxn_zc_idle(zc, buf);
	}
	spin_unlock_bh(&zc->lock);
	if (k && !idle && !timer_pending(&zc->recheck)) {
		dxn_flush_kick();
		mod_timer(&zc->recheck, jiffies + msecs_to_jiffies(20));
	}
	return idle;
}

/**
 * dxn_zc_tx_pending - completed batches or idle vnic buffers wait for a sync?
 * @port: the port
 *
 * Process context, port->lock held. For poll(): a sync would publish
 * RELEASE slots. Not while the last housekeeping could not queue its
 * RELEASEs for lack of memory: then only DXN_NOMEM_MS later
 * (dxn_nomem_backoff()), so a poller does not spin on work that cannot
 * move.
 */
bool dxn_zc_tx_pending(struct dxn_port *port)
{
	struct dxn_zc *zc = port->zc;
	struct dxn_zc_batch *b;

	lockdep_assert_held(&port->lock);
	if (!zc)
		return false;
	if (dxn_nomem_backoff(port, zc->rel_stuck, zc->rel_stuck_at))
		return false;
	if (!list_empty_careful(&zc->txq->done))
		return true;
	list_for_each_entry(b, &zc->ackwait, node)
		if (!b->n || !dxn_zc_unacked(b))
			return true;
	return dxn_zc_rx_pending(zc);
}

/*
 * The RELEASE slots completing batch b gives back: txowed of each buffer
 * whose last TX reference the batch holds. The batch's references are
 * dropped for the count and taken back, so a buffer listed k times counts
 * once. Saturates at U32_MAX. port->lock held.
 */
static u32 dxn_zc_batch_owe(struct dxn_zc *zc, struct dxn_zc_batch *b)
{
	u32 i, owe = 0;

	lockdep_assert_held(&zc->port->lock);
	for (i = 0; i < b->n; i++)
		if (!--zc->txref[b->bufs[i]] &&
		    check_add_overflow(owe, zc->txowed[b->bufs[i]], &owe))
			owe = U32_MAX;
	for (i = 0; i < b->n; i++)
		zc->txref[b->bufs[i]]++;
	return owe;
}

/* Turn completed batches into RELEASE slots. port->lock held. */
static void dxn_zc_tx_reap(struct dxn_zc *zc)
{
	struct dxn_zc_batch *b, *tmp;
	unsigned long flags;
	LIST_HEAD(done);
	u32 i, buf, owe;

	lockdep_assert_held(&zc->port->lock);
	spin_lock_irqsave(&zc->txq->lock, flags);
	list_splice_init(&zc->txq->done, &done);
	spin_unlock_irqrestore(&zc->txq->lock, flags);

	list_splice_tail_init(&done, &zc->ackwait);
	list_for_each_entry_safe(b, tmp, &zc->ackwait, node) {
		struct dxn_pair *pair = &zc->port->pairs[b->pair];

		/*
		 * Retransmit collapsing can free a batch's skbs before the
		 * ACK (their bytes were copied into a neighbour skb), which
		 * completes the batch early. Retransmissions then still carry
		 * the batch's bytes: give its buffers back only once they are
		 * ACKed or the connection is gone. A batch whose every send
		 * was refused (EAGAIN) holds nothing and has no end_seq: it
		 * goes at once.
		 */
		if (b->n && dxn_zc_unacked(b)) {
			if (!b->early)
				pair->cnt.tx_zc_early++;
			b->early = true;
			dxn_zc_want_ack(b->sk);
			continue;
		}
		/*
		 * Room for every RELEASE the batch completes first: else it
		 * stays on ackwait, buffers held, and is retried. A buffer
		 * the batch sent several times is counted once, when its
		 * last reference goes (txref reaches 0), and the sum is
		 * saturated: then the room check simply fails.
		 */
		owe = dxn_zc_batch_owe(zc, b);
		if (owe && !dxn_release_room(pair, owe)) {
			zc->rel_stuck = true;
			continue;
		}
		pair->cnt.tx_zc_batches++;
		if (b->copied)
			pair->cnt.tx_zc_copied++;
		for (i = 0; i < b->n; i++) {
			buf = b->bufs[i];
			if (--zc->txref[buf])
				continue;
			/* Cannot fail: the room was made above. */
			while (zc->txowed[buf] && dxn_release_try(pair, buf)) {
				zc->txowed[buf]--;
				zc->nowed--;
			}
		}
		list_del(&b->node);
		dxn_zc_batch_free(b);
	}
}

/* --------------------------------------------------------------- sync */

/**
 * dxn_zc_sync - zero-copy housekeeping at the start of a pair's RX phase
 * @pair: the ring pair being synced (its port is in zero-copy mode)
 *
 * Process context, port->lock held; may take RTNL. Binds the pool to the
 * vnic end learned by the actor, returns idle vnic buffers to their pairs
 * as RELEASE slots and hands this pair's spares to the vnic.
 */
void dxn_zc_sync(struct dxn_pair *pair)
{
	struct dxn_zc *zc = pair->port->zc;

	lockdep_assert_held(&pair->port->lock);
	if (READ_ONCE(zc->want))
		dxn_zc_bind(zc);
	/* This housekeeping retries what was deferred: start afresh. */
	zc->rel_stuck = false;
	dxn_zc_tx_reap(zc);
	dxn_zc_reap(zc);
	if (zc->rel_stuck)
		zc->rel_stuck_at = jiffies;
	if (READ_ONCE(zc->dev))
		dxn_zc_refill(zc, pair);
}

/**
 * dxn_zc_attach - bind the pool to the vnic end a new connection uses
 * @pair: the ring pair of the new connection (of a zero-copy port)
 * @sk: the socket just attached
 *
 * Process context, port->lock held, lock_sock(sk) not held; takes RTNL.
 * The first connection of the port that routes over a daxnet vnic binds
 * the pool to that end; bytes it received before stay in ordinary pages.
 */
void dxn_zc_attach(struct dxn_pair *pair, struct sock *sk)
{
	struct dxn_zc *zc = pair->port->zc;

	lockdep_assert_held(&pair->port->lock);
	dxn_zc_learn(zc, sk);
	if (READ_ONCE(zc->want))
		dxn_zc_bind(zc);
	if (READ_ONCE(zc->dev))
		dxn_zc_refill(zc, pair);
}

/* ----------------------------------------------------- create, destroy */

/**
 * dxn_zc_free - free a zero-copy state's tables and the state itself
 * @zc: the state; its TX queue has already been released by the caller
 *
 * Process context. Shared by dxn_zc_create()'s error path and port release.
 */
static void dxn_zc_free(struct dxn_zc *zc)
{
	xa_destroy(&zc->pfns);
	kvfree(zc->txref);
	kvfree(zc->txowed);
	kvfree(zc->owner);
	kvfree(zc->free);
	kvfree(zc->closed);
	kvfree(zc->base);
	kfree(zc);
}

/**
 * dxn_zc_create - put a freshly registered port in zero-copy mode
 * @port: the port; its pool is pinned
 *
 * Process context, port->lock held. Leaves port->zc NULL (copy mode) when
 * the pool's buffers are not whole pages.
 *
 * Return: 0 or -ENOMEM. (REGISTER checked CAP_NET_ADMIN: dxn_may_admin.)
 */
int dxn_zc_create(struct dxn_port *port)
{
	struct dxn_pool *pool = &port->pool;
	struct dxn_zc *zc;
	unsigned long i;
	int err = -ENOMEM;

	if (pool->buf_size % PAGE_SIZE)
		return 0;
	zc = kzalloc(sizeof(*zc), GFP_KERNEL_ACCOUNT);
	if (!zc)
		return -ENOMEM;
	zc->port = port;
	zc->prov.ops = &dxn_zc_prov_ops;
	zc->prov.pmem = pool->dax;
	zc->ppb = pool->buf_size / PAGE_SIZE;
	zc->pack = -1;
	zc->pack_seen_buf = -1;
	spin_lock_init(&zc->lock);
	timer_setup(&zc->recheck, dxn_zc_recheck, 0);
	xa_init(&zc->pfns);
	zc->owner = kvcalloc(pool->buf_count, sizeof(*zc->owner), GFP_KERNEL_ACCOUNT);
	zc->free = kvcalloc(pool->buf_count, sizeof(*zc->free), GFP_KERNEL_ACCOUNT);
	zc->closed = kvcalloc(pool->buf_count, sizeof(*zc->closed), GFP_KERNEL_ACCOUNT);
	zc->base = kvcalloc(pool->npages, sizeof(*zc->base), GFP_KERNEL_ACCOUNT);
	zc->txref = kvcalloc(pool->buf_count, sizeof(*zc->txref), GFP_KERNEL_ACCOUNT);
	zc->txowed = kvcalloc(pool->buf_count, sizeof(*zc->txowed), GFP_KERNEL_ACCOUNT);
	zc->txq = kzalloc(sizeof(*zc->txq), GFP_KERNEL_ACCOUNT);
	if (!zc->owner || !zc->free || !zc->closed || !zc->base ||
	    !zc->txref || !zc->txowed || !zc->txq)
		goto err;
	INIT_LIST_HEAD(&zc->ackwait);
	atomic_set(&zc->txq->live, 0);
	spin_lock_init(&zc->txq->lock);
	INIT_LIST_HEAD(&zc->txq->done);
	zc->txq->wq = &port->wq;
	for (i = 0; i < pool->npages; i++) {
		err = xa_err(xa_store(&zc->pfns, page_to_pfn(pool->pages[i]),
				      xa_mk_value(i), GFP_KERNEL_ACCOUNT));
		if (err)
			goto err;
	}
	/* Takes a module reference (fops_get) until the last fput. */
	zc->txq->anchor = anon_inode_getfile("[daxnet-zc]", &dxn_zc_anchor_fops,
					     zc->txq, O_RDONLY);
	if (IS_ERR(zc->txq->anchor)) {
		err = PTR_ERR(zc->txq->anchor);
		goto err;
	}
	mutex_lock(&dxn_zc_mutex);
	list_add(&zc->node, &dxn_zc_all);
	mutex_unlock(&dxn_zc_mutex);
	port->zc = zc;
	return 0;
err:
	kfree(zc->txq);
	dxn_zc_free(zc);
	return err;
}

/* Count vnic buffers some skb still references. port->lock held. */
static u32 dxn_zc_busy(struct dxn_zc *zc)
{
	u32 b, busy = 0;

	lockdep_assert_held(&zc->port->lock);
	for (b = 0; b < zc->port->pool.buf_count; b++)
		if (zc->port->pool.own[b] == DXN_OWN_NIC && !dxn_zc_idle(zc, b))
			busy++;
	return busy;
}

/**
 * dxn_zc_destroy - leave zero-copy mode before the pool is unpinned
 * @port: the port (port->zc may be NULL)
 *
 * Process context, port->lock held, the ring pairs already freed; sleeps.
 * Unbinds the vnic, detaches the TX batches still in flight, then waits
 * up to DXN_ZC_DRAIN_MS for lazily freed skbs to drop the pool pages.
 * Pages still referenced after that stay alive through the skbs' own page
 * references after the unpin (the file cannot be truncated meanwhile).
 */
void dxn_zc_destroy(struct dxn_port *port)
{
	struct dxn_zc *zc = port->zc;
	struct dxn_zc_batch *b, *tmp;
	u32 busy, inflight, waited = 0;
	LIST_HEAD(done);

	lockdep_assert_held(&port->lock);
	if (!zc)
		return;
	rtnl_lock();
	mutex_lock(&dxn_zc_mutex);
	list_del(&zc->node);
	mutex_unlock(&dxn_zc_mutex);
	dxn_zc_unbind(zc);
	rtnl_unlock();

	/* Batches completing from now on free themselves. */
	spin_lock_irq(&zc->txq->lock);
	zc->txq->dead = true;
	zc->txq->wq = NULL;
	list_splice_init(&zc->txq->done, &done);
	spin_unlock_irq(&zc->txq->lock);
	list_splice_init(&zc->ackwait, &done);
	/* The pairs are gone: completed batches owe nobody a RELEASE. */
	list_for_each_entry_safe(b, tmp, &done, node) {
		list_del(&b->node);
		dxn_zc_batch_free(b);
	}

	/* RX buffers in skbs, TX batches TCP has not let go of yet. */
	for (;;) {
		busy = dxn_zc_busy(zc);
		inflight = atomic_read(&zc->txq->live);
		if ((!busy && !inflight) || waited >= DXN_ZC_DRAIN_MS)
			break;
		dxn_flush_kick();
		msleep(20);
		waited += 20;
	}
	if (busy || inflight)
		pr_info("daxnet: after %u ms, %u pool buffers still in RX skbs, %u TX batches in flight; unpinning\n",
			waited, busy, inflight);
	del_timer_sync(&zc->recheck);
	fput(zc->txq->anchor);
	dxn_zc_free(zc);
	port->zc = NULL;
}

/**
 * dxn_zc_init - register the netdevice notifier
 *
 * Process context (module init). Also sets up the per-CPU NAPI
 * instances that flush deferred skbs.
 *
 * Return: 0 or -errno.
 */
int dxn_zc_init(void)
{
	int cpu, err;

	init_dummy_netdev(&dxn_flush_dev);
	for_each_possible_cpu(cpu) {
		struct napi_struct *napi = per_cpu_ptr(&dxn_flush_napi, cpu);

		netif_napi_add(&dxn_flush_dev, napi, dxn_flush_poll);
		napi_enable(napi);
	}
	err = register_netdevice_notifier(&dxn_zc_notifier);
	if (err)
		dxn_flush_teardown();
	return err;
}

/**
 * dxn_zc_exit - unregister the netdevice notifier
 *
 * Process context (module exit); every port is closed.
 */
void dxn_zc_exit(void)
{
	unregister_netdevice_notifier(&dxn_zc_notifier);
	dxn_flush_teardown();
}
