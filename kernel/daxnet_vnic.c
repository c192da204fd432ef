// SPDX-License-Identifier: GPL-2.0
/*
 * A veth-like virtual NIC pair whose receive side lands payload in daxnet
 * pool pages.
 *
 * On a stock 6.1 kernel no NIC driver places received payload in memory a
 * user supplied, so daxnet brings its own pair of devices. Transmitting on
 * one end emulates the other end's DMA:
 *
 *   - IPv4/TCP frames (TSO skbs included, segmented here at gso_size) are
 *     rebuilt as one new skb per segment: the Ethernet, IP and TCP headers
 *     are copied into a small head allocated with zero tailroom (so that
 *     skb_condense() on TCP's backlog path cannot pull payload into it),
 *     and the payload is copied into chunks the receiving end's page
 *     provider hands out (pool buffers: one MSS per buffer at offset 0,
 *     small payloads packed into sub-page slots with a truthful truesize)
 *     and attached as page frags (get_page + skb_add_rx_frag). Without a
 *     provider, or when it runs dry, ordinary pages are used instead, so
 *     the device also works as a plain veth.
 *   - Any other frame is copied whole into a linear skb.
 *   - Received skbs are queued to the peer and delivered by its NAPI
 *     poll through GRO.
 *
 * No skb is ever built over pool memory (build_skb): pool pages only
 * appear as frags holding their own page reference, so the pool's base
 * reference (or pin) keeps them alive and put_page() releases them
 * correctly, ZONE_DEVICE pages included.
 */
#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/highmem.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/libnvdimm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/netdevice.h>
#include <linux/percpu.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/tcp.h>
#include <linux/u64_stats_sync.h>
#include <linux/uaccess.h>
#include <net/checksum.h>
#include <net/ip.h>
#include <net/rtnetlink.h>

#include "daxnet_vnic.h"

/* Largest MTU: a segment's payload must fit MAX_SKB_FRAGS page chunks. */
#define DXN_VNIC_MAX_MTU	16000
/* Ethernet + the longest IPv4 and TCP headers. */
#define DXN_VNIC_MAX_HDR	(ETH_HLEN + 60 + 60)
/* Received skbs queued to one end before it drops. */
#define DXN_VNIC_RXQ_MAX	4096

/*
 * The test hook (guest-zc.sh vnic.pool), a writable module parameter:
 * only in the test build, like the debugfs fault knobs
 * (CONFIG_DAXNET_FAULT_INJECT, kernel/Kbuild); the DKMS build users
 * install has neither the parameter nor, after dead-code elimination,
 * the test pool.
 */
#if IS_ENABLED(CONFIG_DAXNET_FAULT_INJECT)
static unsigned int vnic_test_pool;
module_param(vnic_test_pool, uint, 0644);
MODULE_PARM_DESC(vnic_test_pool,
		 "test hook: give each new daxnet vnic a private pool of this many module pages (0 = off)");
#define dxn_vnic_test_pool_pages()	READ_ONCE(vnic_test_pool)
#else
#define dxn_vnic_test_pool_pages()	0U
#endif

/*
 * Per-CPU counters of one end. The standard ones (ndo_get_stats64, what
 * `ip -s link` shows) come first; from rx_segs on they are the driver's
 * own (`ethtool -S`).
 */
struct dxn_vnic_stats {
	u64 rx_packets;
	u64 rx_bytes;
	u64 rx_drops;
	u64 tx_packets;
	u64 tx_bytes;
	u64 rx_segs;		/* TCP segments rebuilt with split headers */
	u64 rx_pool_bytes;	/* payload bytes written into provider chunks */
	u64 rx_pool_chunks;
	u64 rx_page_bytes;	/* payload bytes written into ordinary pages */
	u64 rx_pool_miss;	/* chunks the provider could not supply */
	u64 rx_foreign;		/* TCP frames the provider refused (flow_ok) */
	u64 rx_csum_bad;	/* unverified TCP frames with a bad checksum */
	u64 rx_linear;		/* non-TCP frames copied whole */
	u64 tx_tso;		/* TSO skbs segmented in xmit */
	struct u64_stats_sync syncp;
};

struct dxn_testpool;

struct dxn_vnic {
	struct net_device __rcu *peer;
	struct dxn_vnic_provider __rcu *prov;
	struct napi_struct napi;
	struct sk_buff_head rxq;
	struct dxn_vnic_stats __percpu *stats;
	struct dxn_testpool *testpool;
};

/* ------------------------------------------------------------ test pool */

/*
 * The test hook's provider: vnic_test_pool module pages per device, with
 * the same rules a real pool follows. A page is handed out only when no
 * skb references it (page_count back to the base count recorded when the
 * pool got it); skbs are freed lazily (per-CPU defer lists), so handed-out
 * pages are checked again later, oldest first.
 */
struct dxn_testpool {
	struct dxn_vnic_provider prov;
	spinlock_t lock;	/* everything below; BH context */
	unsigned int npages;
	struct page **pages;
	u32 *free;		/* stack of page indices */
	unsigned int nfree;
	u32 *busy;		/* FIFO of handed-out page indices */
	unsigned int busy_head;
	unsigned int nbusy;
	int pack;		/* page being packed, or -1 */
	unsigned int pack_off;
};

/* Move up to @budget busy pages whose skbs are gone back to the free stack. */
static void dxn_testpool_recycle(struct dxn_testpool *tp, unsigned int budget)
{
	while (budget-- && tp->nbusy) {
		u32 idx = tp->busy[tp->busy_head];

		tp->busy_head = (tp->busy_head + 1) % tp->npages;
		tp->nbusy--;
		/* The page being packed is not free while it is packed. */
		if (idx != tp->pack && page_count(tp->pages[idx]) == 1)
			tp->free[tp->nfree++] = idx;
		else
			tp->busy[(tp->busy_head + tp->nbusy++) % tp->npages] = idx;
	}
}

/* Take a free page index, or -1. Caller holds tp->lock. */
static int dxn_testpool_take(struct dxn_testpool *tp)
{
	u32 idx;

	if (tp->nfree < tp->npages / 4)
		dxn_testpool_recycle(tp, 32);
	if (!tp->nfree)
		return -1;
	idx = tp->free[--tp->nfree];
	tp->busy[(tp->busy_head + tp->nbusy++) % tp->npages] = idx;
	return idx;
}

/* dxn_vnic_provider_ops.get_chunk of the test pool; BH, any CPU. */
static bool dxn_testpool_get_chunk(struct dxn_vnic_provider *prov,
				   unsigned int want, struct dxn_rxchunk *c)
{
	struct dxn_testpool *tp = container_of(prov, struct dxn_testpool, prov);
	unsigned int sz = ALIGN(want, DXN_VNIC_PACK_ALIGN);
	bool ok = false;
	int idx;

	spin_lock(&tp->lock);
	if (want >= DXN_VNIC_PACK_MAX) {
		idx = dxn_testpool_take(tp);
		if (idx >= 0) {
			c->page = tp->pages[idx];
			c->off = 0;
			c->len = min_t(unsigned int, want, PAGE_SIZE);
			c->truesize = PAGE_SIZE;
			get_page(c->page);
			ok = true;
		}
		goto out;
	}
	/* A packing page stays on the busy FIFO; it is reused only once
	 * it is closed and every skb referencing it has been freed.
	 */
	if (tp->pack < 0 || tp->pack_off + sz > PAGE_SIZE) {
		tp->pack = dxn_testpool_take(tp);
		tp->pack_off = 0;
		if (tp->pack < 0)
			goto out;
	}
	c->page = tp->pages[tp->pack];
	c->off = tp->pack_off;
	c->len = want;
	c->truesize = sz;
	get_page(c->page);
	tp->pack_off += sz;
	ok = true;
out:
	spin_unlock(&tp->lock);
	return ok;
}

static const struct dxn_vnic_provider_ops dxn_testpool_ops = {
	.get_chunk = dxn_testpool_get_chunk,
};

/* Drop the pool's references; skbs still holding pages free them later. */
static void dxn_testpool_free(struct dxn_testpool *tp)
{
	unsigned int i;

	if (!tp)
		return;
	for (i = 0; i < tp->npages; i++)
		if (tp->pages[i])
			put_page(tp->pages[i]);
	kvfree(tp->pages);
	kvfree(tp->free);
	kvfree(tp->busy);
	kfree(tp);
}

/* Process context (newlink, RTNL held). */
static struct dxn_testpool *dxn_testpool_alloc(unsigned int npages)
{
	struct dxn_testpool *tp;
	unsigned int i;

	tp = kzalloc(sizeof(*tp), GFP_KERNEL);
	if (!tp)
		return NULL;
	tp->prov.ops = &dxn_testpool_ops;
	spin_lock_init(&tp->lock);
	tp->pack = -1;
	tp->npages = npages;
	tp->pages = kvcalloc(npages, sizeof(*tp->pages), GFP_KERNEL);
	tp->free = kvcalloc(npages, sizeof(*tp->free), GFP_KERNEL);
	tp->busy = kvcalloc(npages, sizeof(*tp->busy), GFP_KERNEL);
	if (!tp->pages || !tp->free || !tp->busy)
		goto err;
	for (i = 0; i < npages; i++) {
		tp->pages[i] = alloc_page(GFP_KERNEL);
		if (!tp->pages[i])
			goto err;
		tp->free[tp->nfree++] = i;
	}
	return tp;
err:
	dxn_testpool_free(tp);
	return NULL;
}

/* --------------------------------------------------------- receive side */

/* A chunk from the provider, or an ordinary page or page fragment. */
static bool dxn_vnic_get_chunk(struct dxn_vnic_provider *prov,
			       unsigned int want, struct dxn_rxchunk *c,
			       bool *pool, struct dxn_vnic_stats *st)
{
	unsigned int sz;
	void *data;

	*pool = false;
	if (prov) {
		if (prov->ops->get_chunk(prov, want, c)) {
			*pool = true;
			return true;
		}
		st->rx_pool_miss++;
	}
	if (want >= DXN_VNIC_PACK_MAX) {
		c->page = dev_alloc_page();
		if (!c->page)
			return false;
		c->off = 0;
		c->len = min_t(unsigned int, want, PAGE_SIZE);
		c->truesize = PAGE_SIZE;
		return true;
	}
	/* A page fragment carries the one reference the frag takes over. */
	sz = ALIGN(want, DXN_VNIC_PACK_ALIGN);
	data = netdev_alloc_frag(sz);
	if (!data)
		return false;
	c->page = virt_to_head_page(data);
	c->off = data - page_address(c->page);
	c->len = want;
	c->truesize = sz;
	return true;
}

/*
 * Copy len bytes of the sequential reader into dst, adding their checksum
 * to *csum at payload offset *coff; false if the reader ran out or a source
 * line is poisoned. The source may be persistent memory (a zero-copy TX
 * pool's pages in the sender's skb): copy_mc_to_kernel() turns a poisoned
 * line into an error (the frame is dropped) instead of a machine check. A
 * pmem destination is written back (clwb) before the caller's fence.
 */
static bool dxn_vnic_copy(struct skb_seq_state *sq, unsigned int *pos,
			  u8 *dst, unsigned int len, bool pmem, __wsum *csum,
			  unsigned int *coff)
{
	while (len) {
		const u8 *src;
		unsigned int n = skb_seq_read(*pos, &src, sq);

		if (!n)
			return false;
		n = min(n, len);
		if (copy_mc_to_kernel(dst, src, n))
			return false;
		*csum = csum_block_add(*csum, csum_partial(dst, n, 0), *coff);
		if (pmem)
			arch_wb_cache_pmem(dst, n);
		dst += n;
		len -= n;
		*pos += n;
		*coff += n;
	}
	return true;
}

/*
 * Allocate a head holding exactly the hlen header bytes of hdr with zero
 * tailroom: skb_condense() then has nowhere to pull payload to.
 */
static struct sk_buff *dxn_vnic_head(struct net_device *peer, const u8 *hdr,
				     unsigned int hlen)
{
	struct sk_buff *skb = netdev_alloc_skb(peer, hlen);

	if (!skb)
		return NULL;
	skb_reserve(skb, skb_tailroom(skb) - hlen);
	skb_put_data(skb, hdr, hlen);
	return skb;
}

/*
 * Finish a received skb: protocol, checksum state (CHECKSUM_UNNECESSARY
 * only when this device computed or verified the checksum), queue it.
 */
static void dxn_vnic_finish(struct sk_buff *skb, struct net_device *peer,
			    struct sk_buff_head *out, u8 summed)
{
	skb->protocol = eth_type_trans(skb, peer);
	skb->ip_summed = summed;
	__skb_queue_tail(out, skb);
}

/* Non-TCP frames (ARP, ICMP, ...): copy the whole frame into a linear skb. */
static int dxn_vnic_rx_linear(struct sk_buff *skb, struct net_device *peer,
			      struct sk_buff_head *out, struct dxn_vnic_stats *st)
{
	struct sk_buff *nskb;
	u8 summed = CHECKSUM_NONE;

	/* Local senders leave the checksum to us: compute it. */
	if (skb->ip_summed == CHECKSUM_PARTIAL) {
		if (skb_checksum_help(skb))
			return -EINVAL;
		summed = CHECKSUM_UNNECESSARY;
	} else if (skb->ip_summed == CHECKSUM_UNNECESSARY) {
		summed = CHECKSUM_UNNECESSARY;
	}
	nskb = netdev_alloc_skb(peer, skb->len);
	if (!nskb)
		return -ENOMEM;
	if (skb_copy_bits(skb, 0, skb_put(nskb, skb->len), skb->len)) {
		kfree_skb(nskb);
		return -EINVAL;
	}
	st->rx_linear++;
	dxn_vnic_finish(nskb, peer, out, summed);
	return 0;
}

/*
 * Rebuild the IPv4/TCP frame skb (headers hdr[0..hlen), payload from skb
 * offset hlen) as one skb per segment of at most mss payload bytes.
 */
static int dxn_vnic_rx_tcp(struct sk_buff *skb, struct net_device *peer,
			   struct dxn_vnic_provider *prov, u8 *hdr,
			   unsigned int hlen, unsigned int iphl,
			   unsigned int payload, unsigned int mss,
			   struct sk_buff_head *out, struct dxn_vnic_stats *st)
{
	struct iphdr *iph0 = (struct iphdr *)(hdr + ETH_HLEN);
	struct tcphdr *th0 = (struct tcphdr *)(hdr + ETH_HLEN + iphl);
	unsigned int thl = hlen - ETH_HLEN - iphl;
	bool pmem = prov && prov->pmem;
	struct skb_seq_state sq;
	unsigned int pos = 0;
	unsigned int seg = 0;
	int err = 0;

	skb_prepare_seq_read(skb, hlen, hlen + payload, &sq);
	do {
		unsigned int n = min(payload - pos, mss);
		unsigned int left = n, coff = 0;
		__wsum csum = 0;
		struct sk_buff *nskb;
		struct iphdr *iph;
		struct tcphdr *th;

		nskb = dxn_vnic_head(peer, hdr, hlen);
		if (!nskb) {
			err = -ENOMEM;
			break;
		}
		iph = (struct iphdr *)(nskb->data + ETH_HLEN);
		th = (struct tcphdr *)(nskb->data + ETH_HLEN + iphl);
		iph->tot_len = htons(iphl + thl + n);
		iph->id = htons(ntohs(iph0->id) + seg);
		ip_send_check(iph);
		th->seq = htonl(ntohl(th0->seq) + pos);
		if (pos + n < payload) {
			th->fin = 0;
			th->psh = 0;
		}
		if (seg)
			th->cwr = 0;

		while (left) {
			struct dxn_rxchunk c;
			unsigned int k;
			bool pool, ok;
			u8 *va;

			if (skb_shinfo(nskb)->nr_frags == MAX_SKB_FRAGS ||
			    !dxn_vnic_get_chunk(prov, left, &c, &pool, st)) {
				err = -ENOMEM;
				break;
			}
			k = min(c.len, left);
			va = kmap_local_page(c.page);
			ok = dxn_vnic_copy(&sq, &pos, va + c.off, k,
					   pmem && pool, &csum, &coff);
			kunmap_local(va);
			skb_add_rx_frag(nskb, skb_shinfo(nskb)->nr_frags,
					c.page, c.off, k, c.truesize);
			if (!ok) {
				err = -EINVAL;
				break;
			}
			if (pool) {
				st->rx_pool_bytes += k;
				st->rx_pool_chunks++;
			} else {
				st->rx_page_bytes += k;
			}
			left -= k;
		}
		if (err) {
			kfree_skb(nskb);
			break;
		}
		/* The segment's real TCP checksum, over what was written. */
		th->check = 0;
		csum = csum_add(csum_partial(th, thl, 0), csum);
		th->check = csum_tcpudp_magic(iph->saddr, iph->daddr, thl + n,
					      IPPROTO_TCP, csum);
		st->rx_segs++;
		dxn_vnic_finish(nskb, peer, out, CHECKSUM_UNNECESSARY);
		seg++;
	} while (pos < payload);
	/* Drops the reader's frag mapping, which it keeps between calls. */
	skb_abort_seq_read(&sq);
	return err;
}

/*
 * Turn one transmitted skb into the skbs the peer receives. BH disabled,
 * rcu_read_lock held (the peer's provider is read under it).
 */
static int dxn_vnic_rx_build(struct sk_buff *skb, struct net_device *peer,
			     struct dxn_vnic_provider *prov,
			     struct sk_buff_head *out, struct dxn_vnic_stats *st)
{
	u8 hdr[DXN_VNIC_MAX_HDR];
	unsigned int iphl, hlen, payload, mss;
	const struct iphdr *iph;
	const struct tcphdr *th;
	int err;

	if (skb->protocol != htons(ETH_P_IP) ||
	    skb->len < ETH_HLEN + sizeof(*iph))
		goto linear;
	if (skb_copy_bits(skb, ETH_HLEN, hdr + ETH_HLEN, sizeof(*iph)))
		goto linear;
	iph = (const struct iphdr *)(hdr + ETH_HLEN);
	iphl = iph->ihl * 4;
	if (iph->version != 4 || iphl < sizeof(*iph) ||
	    iph->protocol != IPPROTO_TCP || ip_is_fragment(iph) ||
	    skb->len < ETH_HLEN + iphl + sizeof(*th))
		goto linear;
	if (skb_copy_bits(skb, ETH_HLEN + iphl,
			  hdr + ETH_HLEN + iphl, sizeof(*th)))
		goto linear;
	th = (const struct tcphdr *)(hdr + ETH_HLEN + iphl);
	hlen = ETH_HLEN + iphl + th->doff * 4;
	if (th->doff < 5 || skb->len < hlen ||
	    skb_copy_bits(skb, 0, hdr, hlen))
		goto linear;

	payload = skb->len - hlen;
	if (skb_is_gso(skb)) {
		if (!(skb_shinfo(skb)->gso_type & SKB_GSO_TCPV4) ||
		    !skb_shinfo(skb)->gso_size)
			return -EINVAL;
		mss = skb_shinfo(skb)->gso_size;
		st->tx_tso++;
	} else {
		/* Trust the IP length over trailing padding. */
		payload = min_t(unsigned int, payload,
				ntohs(iph->tot_len) - (hlen - ETH_HLEN));
		mss = max(payload, 1U);
	}
	/*
	 * A frame that did not come from the local stack (bridged, forwarded)
	 * carries a checksum nobody verified: verify it before rebuilding
	 * segments with fresh checksums, which would hide corruption.
	 */
	if (skb->ip_summed != CHECKSUM_PARTIAL &&
	    skb->ip_summed != CHECKSUM_UNNECESSARY && !skb_is_gso(skb)) {
		unsigned int tl = hlen - ETH_HLEN - iphl + payload;

		if (csum_tcpudp_magic(iph->saddr, iph->daddr, tl, IPPROTO_TCP,
				      skb_checksum(skb, ETH_HLEN + iphl, tl, 0))) {
			st->rx_csum_bad++;
			return -EINVAL;
		}
	}
	/* Only flows the provider's owner may see land in its memory. */
	if (prov && prov->ops->flow_ok &&
	    !prov->ops->flow_ok(prov, peer, iph, th)) {
		st->rx_foreign++;
		prov = NULL;
	}
	return dxn_vnic_rx_tcp(skb, peer, prov, hdr, hlen, iphl, payload, mss,
			       out, st);
linear:
	err = dxn_vnic_rx_linear(skb, peer, out, st);
	return err;
}

/* ndo_start_xmit: BH disabled, under rcu_read_lock_bh; LLTX, any CPU. */
static netdev_tx_t dxn_vnic_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct dxn_vnic *vn = netdev_priv(dev);
	struct dxn_vnic_stats *st, *pst;
	struct dxn_vnic_provider *prov;
	struct sk_buff_head built;
	struct net_device *peer;
	struct dxn_vnic *pv;
	unsigned int len = skb->len;
	struct sk_buff *nskb;
	unsigned long flags;
	int err;

	__skb_queue_head_init(&built);
	rcu_read_lock();
	peer = rcu_dereference(vn->peer);
	if (unlikely(!peer || !netif_running(peer))) {
		rcu_read_unlock();
		goto drop;
	}
	pv = netdev_priv(peer);
	prov = rcu_dereference(pv->prov);
	pst = this_cpu_ptr(pv->stats);

	u64_stats_update_begin(&pst->syncp);
	err = dxn_vnic_rx_build(skb, peer, prov, &built, pst);
	if (!err) {
		pst->rx_packets += skb_queue_len(&built);
		pst->rx_bytes += len;
	} else {
		pst->rx_drops++;
	}
	u64_stats_update_end(&pst->syncp);
	if (prov && prov->pmem)
		wmb();	/* the written-back payload before the frame */
	if (prov && prov->ops->commit)
		prov->ops->commit(prov);
	rcu_read_unlock();

	if (err) {
		__skb_queue_purge(&built);
		goto drop;
	}
	spin_lock_irqsave(&pv->rxq.lock, flags);
	if (skb_queue_len(&pv->rxq) + skb_queue_len(&built) > DXN_VNIC_RXQ_MAX) {
		spin_unlock_irqrestore(&pv->rxq.lock, flags);
		__skb_queue_purge(&built);
		goto drop;
	}
	while ((nskb = __skb_dequeue(&built)))
		__skb_queue_tail(&pv->rxq, nskb);
	spin_unlock_irqrestore(&pv->rxq.lock, flags);
	napi_schedule(&pv->napi);

	st = this_cpu_ptr(vn->stats);
	u64_stats_update_begin(&st->syncp);
	st->tx_packets++;
	st->tx_bytes += len;
	u64_stats_update_end(&st->syncp);
	consume_skb(skb);
	return NETDEV_TX_OK;

drop:
	dev_core_stats_tx_dropped_inc(dev);
	kfree_skb(skb);
	return NETDEV_TX_OK;
}

/* NAPI poll of the receiving end: softirq. Hands queued skbs to GRO. */
static int dxn_vnic_poll(struct napi_struct *napi, int budget)
{
	struct dxn_vnic *vn = container_of(napi, struct dxn_vnic, napi);
	struct sk_buff *skb;
	int done = 0;

	while (done < budget && (skb = skb_dequeue(&vn->rxq))) {
		napi_gro_receive(napi, skb);
		done++;
	}
	if (done < budget && napi_complete_done(napi, done) &&
	    !skb_queue_empty_lockless(&vn->rxq))
		napi_schedule(napi);
	return done;
}

/* ------------------------------------------------------- device plumbing */

/* ndo_open: RTNL held. */
static int dxn_vnic_open(struct net_device *dev)
{
	struct dxn_vnic *vn = netdev_priv(dev);
	struct net_device *peer = rtnl_dereference(vn->peer);

	if (!peer)
		return -ENOTCONN;
	napi_enable(&vn->napi);
	if (peer->flags & IFF_UP) {
		netif_carrier_on(dev);
		netif_carrier_on(peer);
	}
	return 0;
}

/* ndo_stop: RTNL held. Queued skbs are dropped. */
static int dxn_vnic_close(struct net_device *dev)
{
	struct dxn_vnic *vn = netdev_priv(dev);
	struct net_device *peer = rtnl_dereference(vn->peer);

	netif_carrier_off(dev);
	if (peer)
		netif_carrier_off(peer);
	napi_disable(&vn->napi);
	skb_queue_purge(&vn->rxq);
	return 0;
}

/* ndo_init: RTNL held (register_netdevice). */
static int dxn_vnic_dev_init(struct net_device *dev)
{
	struct dxn_vnic *vn = netdev_priv(dev);
	int cpu;

	vn->stats = alloc_percpu(struct dxn_vnic_stats);
	if (!vn->stats)
		return -ENOMEM;
	for_each_possible_cpu(cpu)
		u64_stats_init(&per_cpu_ptr(vn->stats, cpu)->syncp);
	skb_queue_head_init(&vn->rxq);
	netif_napi_add(dev, &vn->napi, dxn_vnic_poll);
	return 0;
}

/*
 * ndo_uninit: RTNL held (unregister). The provider binding dies with the
 * device; its owner learns of the unregistration from the netdevice
 * notifier and calls dxn_vnic_clear_provider(), which is then a no-op.
 */
static void dxn_vnic_dev_uninit(struct net_device *dev)
{
	struct dxn_vnic *vn = netdev_priv(dev);

	RCU_INIT_POINTER(vn->prov, NULL);
	netif_napi_del(&vn->napi);
	skb_queue_purge(&vn->rxq);
}

/*
 * priv_destructor, and the newlink error paths: frees what ndo_init and
 * newlink allocated. Process context; no locks needed (device unused).
 */
static void dxn_vnic_dev_free(struct net_device *dev)
{
	struct dxn_vnic *vn = netdev_priv(dev);

	free_percpu(vn->stats);
	vn->stats = NULL;
	dxn_testpool_free(vn->testpool);
	vn->testpool = NULL;
}

/* Sum the per-CPU counters; any context. */
static void dxn_vnic_sum(struct net_device *dev, struct dxn_vnic_stats *sum)
{
	struct dxn_vnic *vn = netdev_priv(dev);
	int cpu;

	memset(sum, 0, sizeof(*sum));
	for_each_possible_cpu(cpu) {
		const struct dxn_vnic_stats *s = per_cpu_ptr(vn->stats, cpu);
		struct dxn_vnic_stats t;
		unsigned int start;

		do {
			start = u64_stats_fetch_begin(&s->syncp);
			memcpy(&t, s, offsetof(struct dxn_vnic_stats, syncp));
		} while (u64_stats_fetch_retry(&s->syncp, start));
		sum->rx_packets += t.rx_packets;
		sum->rx_bytes += t.rx_bytes;
		sum->rx_drops += t.rx_drops;
		sum->rx_segs += t.rx_segs;
		sum->rx_pool_bytes += t.rx_pool_bytes;
		sum->rx_pool_chunks += t.rx_pool_chunks;
		sum->rx_page_bytes += t.rx_page_bytes;
		sum->rx_pool_miss += t.rx_pool_miss;
		sum->rx_foreign += t.rx_foreign;
		sum->rx_csum_bad += t.rx_csum_bad;
		sum->rx_linear += t.rx_linear;
		sum->tx_packets += t.tx_packets;
		sum->tx_bytes += t.tx_bytes;
		sum->tx_tso += t.tx_tso;
	}
}

/* ndo_get_stats64: any context. */
static void dxn_vnic_get_stats64(struct net_device *dev,
				 struct rtnl_link_stats64 *tot)
{
	struct dxn_vnic_stats s;

	dxn_vnic_sum(dev, &s);
	tot->rx_packets = s.rx_packets;
	tot->rx_bytes = s.rx_bytes;
	tot->rx_dropped = s.rx_drops;
	tot->tx_packets = s.tx_packets;
	tot->tx_bytes = s.tx_bytes;
}

/* ndo_get_iflink: RCU or RTNL. */
static int dxn_vnic_get_iflink(const struct net_device *dev)
{
	struct dxn_vnic *vn = netdev_priv(dev);
	struct net_device *peer;
	int iflink;

	rcu_read_lock();
	peer = rcu_dereference(vn->peer);
	iflink = peer ? peer->ifindex : 0;
	rcu_read_unlock();
	return iflink;
}

static const struct net_device_ops dxn_vnic_netdev_ops = {
	.ndo_init		= dxn_vnic_dev_init,
	.ndo_uninit		= dxn_vnic_dev_uninit,
	.ndo_open		= dxn_vnic_open,
	.ndo_stop		= dxn_vnic_close,
	.ndo_start_xmit		= dxn_vnic_xmit,
	.ndo_get_stats64	= dxn_vnic_get_stats64,
	.ndo_set_mac_address	= eth_mac_addr,
	.ndo_get_iflink		= dxn_vnic_get_iflink,
};

/* ------------------------------------------------------------- sysfs */

/* A read-only counter file under /sys/class/net/DEV/daxnet/. */
struct dxn_vnic_attr {
	struct device_attribute attr;
	size_t off;	/* of the u64 in struct dxn_vnic_stats */
};

/* sysfs show of a counter: process context. */
static ssize_t dxn_vnic_counter_show(struct device *d,
				     struct device_attribute *attr, char *buf)
{
	const struct dxn_vnic_attr *a = container_of(attr, struct dxn_vnic_attr,
						     attr);
	struct dxn_vnic_stats s;

	dxn_vnic_sum(to_net_dev(d), &s);
	return sysfs_emit(buf, "%llu\n", *(u64 *)((char *)&s + a->off));
}

#define DXN_VNIC_COUNTER(_attr, _field) {				\
	.attr = __ATTR(_attr, 0444, dxn_vnic_counter_show, NULL),	\
	.off = offsetof(struct dxn_vnic_stats, _field),			\
}

static struct dxn_vnic_attr dxn_vnic_counters[] = {
	DXN_VNIC_COUNTER(rx_segs, rx_segs),
	DXN_VNIC_COUNTER(rx_pool_bytes, rx_pool_bytes),
	DXN_VNIC_COUNTER(rx_pool_chunks, rx_pool_chunks),
	DXN_VNIC_COUNTER(rx_page_bytes, rx_page_bytes),
	DXN_VNIC_COUNTER(rx_pool_miss, rx_pool_miss),
	DXN_VNIC_COUNTER(rx_linear, rx_linear),
	DXN_VNIC_COUNTER(rx_drops, rx_drops),
	DXN_VNIC_COUNTER(tx_tso, tx_tso),
	DXN_VNIC_COUNTER(rx_foreign, rx_foreign),
	DXN_VNIC_COUNTER(rx_csum_bad, rx_csum_bad),
};

/* Pages of the test pool still referenced by skbs (after a recycle pass). */
static ssize_t test_pool_busy_show(struct device *d,
				   struct device_attribute *attr, char *buf)
{
	struct dxn_vnic *vn = netdev_priv(to_net_dev(d));
	struct dxn_testpool *tp = vn->testpool;
	unsigned int busy = 0;

	if (tp) {
		spin_lock_bh(&tp->lock);
		dxn_testpool_recycle(tp, tp->nbusy);
		busy = tp->nbusy;
		spin_unlock_bh(&tp->lock);
	}
	return sysfs_emit(buf, "%u\n", busy);
}
static DEVICE_ATTR_RO(test_pool_busy);

static ssize_t test_pool_pages_show(struct device *d,
				    struct device_attribute *attr, char *buf)
{
	struct dxn_vnic *vn = netdev_priv(to_net_dev(d));

	return sysfs_emit(buf, "%u\n", vn->testpool ? vn->testpool->npages : 0);
}
static DEVICE_ATTR_RO(test_pool_pages);

static struct attribute *dxn_vnic_attrs[] = {
	&dxn_vnic_counters[0].attr.attr,
	&dxn_vnic_counters[1].attr.attr,
	&dxn_vnic_counters[2].attr.attr,
	&dxn_vnic_counters[3].attr.attr,
	&dxn_vnic_counters[4].attr.attr,
	&dxn_vnic_counters[5].attr.attr,
	&dxn_vnic_counters[6].attr.attr,
	&dxn_vnic_counters[7].attr.attr,
	&dxn_vnic_counters[8].attr.attr,
	&dxn_vnic_counters[9].attr.attr,
	&dev_attr_test_pool_busy.attr,
	&dev_attr_test_pool_pages.attr,
	NULL
};

static const struct attribute_group dxn_vnic_group = {
	.name = "daxnet",
	.attrs = dxn_vnic_attrs,
};

/* ------------------------------------------------------------- ethtool */

/*
 * `ethtool -S DEV`: the driver's own counters of struct dxn_vnic_stats
 * (rx_segs on), in its order, summed over the CPUs (the sysfs files under
 * daxnet/ show the same). The standard ones are left to ndo_get_stats64
 * (`ip -s link`), as drivers do.
 */
struct dxn_vnic_gstat {
	char name[ETH_GSTRING_LEN];
	size_t off;	/* of the u64 in struct dxn_vnic_stats */
};

#define DXN_VNIC_GSTAT(_f) { #_f, offsetof(struct dxn_vnic_stats, _f) }

static const struct dxn_vnic_gstat dxn_vnic_gstats[] = {
	DXN_VNIC_GSTAT(rx_segs),
	DXN_VNIC_GSTAT(rx_pool_bytes),
	DXN_VNIC_GSTAT(rx_pool_chunks),
	DXN_VNIC_GSTAT(rx_page_bytes),
	DXN_VNIC_GSTAT(rx_pool_miss),
	DXN_VNIC_GSTAT(rx_foreign),
	DXN_VNIC_GSTAT(rx_csum_bad),
	DXN_VNIC_GSTAT(rx_linear),
	DXN_VNIC_GSTAT(tx_tso),
};

/* Every driver-specific u64 of struct dxn_vnic_stats has a name, in order. */
static_assert(ARRAY_SIZE(dxn_vnic_gstats) ==
	      (offsetof(struct dxn_vnic_stats, syncp) -
	       offsetof(struct dxn_vnic_stats, rx_segs)) / sizeof(u64));

/* ethtool_ops: process context, RTNL held (ethtool ioctl/netlink). */
static void dxn_vnic_get_drvinfo(struct net_device *dev,
				 struct ethtool_drvinfo *info)
{
	strscpy(info->driver, "daxnet", sizeof(info->driver));
	strscpy(info->bus_info, "virtual", sizeof(info->bus_info));
}

static int dxn_vnic_get_sset_count(struct net_device *dev, int sset)
{
	return sset == ETH_SS_STATS ? (int)ARRAY_SIZE(dxn_vnic_gstats) :
				      -EOPNOTSUPP;
}

static void dxn_vnic_get_strings(struct net_device *dev, u32 sset, u8 *data)
{
	size_t i;

	if (sset != ETH_SS_STATS)
		return;
	for (i = 0; i < ARRAY_SIZE(dxn_vnic_gstats); i++)
		memcpy(data + i * ETH_GSTRING_LEN, dxn_vnic_gstats[i].name,
		       ETH_GSTRING_LEN);
}

static void dxn_vnic_get_ethtool_stats(struct net_device *dev,
				       struct ethtool_stats *stats, u64 *data)
{
	struct dxn_vnic_stats s;
	size_t i;

	dxn_vnic_sum(dev, &s);
	for (i = 0; i < ARRAY_SIZE(dxn_vnic_gstats); i++)
		data[i] = *(u64 *)((char *)&s + dxn_vnic_gstats[i].off);
}

static const struct ethtool_ops dxn_vnic_ethtool_ops = {
	.get_drvinfo		= dxn_vnic_get_drvinfo,
	.get_link		= ethtool_op_get_link,
	.get_sset_count		= dxn_vnic_get_sset_count,
	.get_strings		= dxn_vnic_get_strings,
	.get_ethtool_stats	= dxn_vnic_get_ethtool_stats,
};

/* rtnl_link_ops.setup: RTNL held. */
static void dxn_vnic_setup(struct net_device *dev)
{
	ether_setup(dev);
	dev->priv_flags &= ~IFF_TX_SKB_SHARING;
	dev->priv_flags |= IFF_LIVE_ADDR_CHANGE | IFF_NO_QUEUE;
	dev->netdev_ops = &dxn_vnic_netdev_ops;
	dev->ethtool_ops = &dxn_vnic_ethtool_ops;
	dev->needs_free_netdev = true;
	dev->priv_destructor = dxn_vnic_dev_free;
	dev->hw_features = NETIF_F_SG | NETIF_F_HW_CSUM | NETIF_F_RXCSUM |
			   NETIF_F_HIGHDMA | NETIF_F_TSO;
	dev->features = dev->hw_features | NETIF_F_LLTX;
	dev->mtu = DXN_VNIC_MTU;
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = DXN_VNIC_MAX_MTU;
	dev->sysfs_groups[0] = &dxn_vnic_group;
	eth_hw_addr_random(dev);
}

/* ------------------------------------------------------------- rtnetlink */

static const struct nla_policy dxn_vnic_policy[DXN_VNIC_INFO_MAX + 1] = {
	[DXN_VNIC_INFO_PEER] = { .len = sizeof(struct ifinfomsg) },
};

/* rtnl_link_ops.validate: RTNL held. */
static int dxn_vnic_validate(struct nlattr *tb[], struct nlattr *data[],
			     struct netlink_ext_ack *extack)
{
	if (tb[IFLA_ADDRESS]) {
		if (nla_len(tb[IFLA_ADDRESS]) != ETH_ALEN)
			return -EINVAL;
		if (!is_valid_ether_addr(nla_data(tb[IFLA_ADDRESS])))
			return -EADDRNOTAVAIL;
	}
	return 0;
}

static struct rtnl_link_ops dxn_vnic_link_ops;

/* Give a new end its test pool if the test hook asks for one. RTNL held. */
static int dxn_vnic_attach_testpool(struct net_device *dev)
{
	struct dxn_vnic *vn = netdev_priv(dev);
	unsigned int n = dxn_vnic_test_pool_pages();

	if (!n)
		return 0;
	vn->testpool = dxn_testpool_alloc(n);
	if (!vn->testpool)
		return -ENOMEM;
	rcu_assign_pointer(vn->prov, &vn->testpool->prov);
	return 0;
}

/* The peer's name: from the peer attributes, else NAME + "p". */
static void dxn_vnic_peer_name(char *ifname, struct nlattr *tbp[],
			       const struct net_device *dev, bool have_peer)
{
	size_t n = strnlen(dev->name, IFNAMSIZ);

	if (have_peer && tbp[IFLA_IFNAME]) {
		nla_strscpy(ifname, tbp[IFLA_IFNAME], IFNAMSIZ);
		return;
	}
	if (n + 1 < IFNAMSIZ && !strchr(dev->name, '%'))
		snprintf(ifname, IFNAMSIZ, "%sp", dev->name);
	else
		strscpy(ifname, "dxnp%d", IFNAMSIZ);
}

/* rtnl_link_ops.newlink: RTNL held. Creates the peer, then dev. */
static int dxn_vnic_newlink(struct net *src_net, struct net_device *dev,
			    struct nlattr *tb[], struct nlattr *data[],
			    struct netlink_ext_ack *extack)
{
	struct nlattr *peer_tb[IFLA_MAX + 1], **tbp = tb;
	unsigned char name_assign_type = NET_NAME_ENUM;
	struct ifinfomsg *ifmp = NULL;
	struct dxn_vnic *vn, *pv;
	char ifname[IFNAMSIZ];
	struct net_device *peer;
	struct net *net;
	int err;

	if (data && data[DXN_VNIC_INFO_PEER]) {
		ifmp = nla_data(data[DXN_VNIC_INFO_PEER]);
		err = rtnl_nla_parse_ifinfomsg(peer_tb, data[DXN_VNIC_INFO_PEER],
					       extack);
		if (err < 0)
			return err;
		err = dxn_vnic_validate(peer_tb, NULL, extack);
		if (err < 0)
			return err;
		tbp = peer_tb;
		if (tbp[IFLA_IFNAME])
			name_assign_type = NET_NAME_USER;
	}
	dxn_vnic_peer_name(ifname, tbp, dev, ifmp);

	net = rtnl_link_get_net(src_net, tbp);
	if (IS_ERR(net))
		return PTR_ERR(net);
	peer = rtnl_create_link(net, ifname, name_assign_type,
				&dxn_vnic_link_ops, tbp, extack);
	if (IS_ERR(peer)) {
		put_net(net);
		return PTR_ERR(peer);
	}
	if (!ifmp || !tbp[IFLA_ADDRESS])
		eth_hw_addr_random(peer);
	if (ifmp && dev->ifindex)
		peer->ifindex = ifmp->ifi_index;

	err = dxn_vnic_attach_testpool(peer);
	if (err)
		goto err_free_peer;
	err = register_netdevice(peer);
	put_net(net);
	net = NULL;
	if (err < 0)
		goto err_free_peer;
	netif_carrier_off(peer);
	err = rtnl_configure_link(peer, ifmp, 0, NULL);
	if (err < 0)
		goto err_unregister_peer;

	if (!tb[IFLA_ADDRESS])
		eth_hw_addr_random(dev);
	err = dxn_vnic_attach_testpool(dev);
	if (err)
		goto err_unregister_peer;
	err = register_netdevice(dev);
	if (err < 0)
		goto err_unregister_peer;
	netif_carrier_off(dev);

	vn = netdev_priv(dev);
	pv = netdev_priv(peer);
	rcu_assign_pointer(vn->peer, peer);
	rcu_assign_pointer(pv->peer, dev);
	return 0;

err_unregister_peer:
	/* rtnl_newlink frees dev with free_netdev(): no priv_destructor. */
	dxn_vnic_dev_free(dev);
	unregister_netdevice(peer);
	return err;
err_free_peer:
	if (net)
		put_net(net);
	dxn_vnic_dev_free(peer);
	free_netdev(peer);
	return err;
}

/* rtnl_link_ops.dellink: RTNL held. Deleting either end deletes both. */
static void dxn_vnic_dellink(struct net_device *dev, struct list_head *head)
{
	struct dxn_vnic *vn = netdev_priv(dev);
	struct net_device *peer = rtnl_dereference(vn->peer);

	RCU_INIT_POINTER(vn->peer, NULL);
	unregister_netdevice_queue(dev, head);
	if (peer) {
		struct dxn_vnic *pv = netdev_priv(peer);

		RCU_INIT_POINTER(pv->peer, NULL);
		unregister_netdevice_queue(peer, head);
	}
}

/* rtnl_link_ops.get_link_net: RTNL held. The peer's namespace. */
static struct net *dxn_vnic_get_link_net(const struct net_device *dev)
{
	struct dxn_vnic *vn = netdev_priv(dev);
	struct net_device *peer = rtnl_dereference(vn->peer);

	return peer ? dev_net(peer) : dev_net(dev);
}

static struct rtnl_link_ops dxn_vnic_link_ops = {
	.kind		= DXN_VNIC_KIND,
	.priv_size	= sizeof(struct dxn_vnic),
	.setup		= dxn_vnic_setup,
	.validate	= dxn_vnic_validate,
	.newlink	= dxn_vnic_newlink,
	.dellink	= dxn_vnic_dellink,
	.policy		= dxn_vnic_policy,
	.maxtype	= DXN_VNIC_INFO_MAX,
	.get_link_net	= dxn_vnic_get_link_net,
};

/* ------------------------------------------------------ provider binding */

/**
 * dxn_is_vnic - is @dev one end of a daxnet pair?
 * @dev: any net device
 *
 * Any context.
 */
bool dxn_is_vnic(const struct net_device *dev)
{
	return dev->netdev_ops == &dxn_vnic_netdev_ops;
}

/**
 * dxn_vnic_set_provider - land @dev's received payload in @prov's chunks
 * @dev: the receiving end (dxn_is_vnic() must be true)
 * @prov: the provider; must stay valid until dxn_vnic_clear_provider()
 *
 * Process context, RTNL held. Returns -EBUSY if @dev already has one (the
 * test hook's pool counts).
 */
int dxn_vnic_set_provider(struct net_device *dev,
			  struct dxn_vnic_provider *prov)
{
	struct dxn_vnic *vn = netdev_priv(dev);

	ASSERT_RTNL();
	if (!dxn_is_vnic(dev))
		return -EINVAL;
	if (rtnl_dereference(vn->prov))
		return -EBUSY;
	rcu_assign_pointer(vn->prov, prov);
	return 0;
}

/**
 * dxn_vnic_clear_provider - stop using @prov for @dev
 * @dev: the receiving end
 * @prov: the provider set before
 *
 * Process context, RTNL held; may sleep. On return no xmit uses @prov any
 * more. skbs built before still hold references to its pages: the owner
 * waits for the page counts to fall back before it reuses or unpins them.
 */
void dxn_vnic_clear_provider(struct net_device *dev,
			     struct dxn_vnic_provider *prov)
{
	struct dxn_vnic *vn = netdev_priv(dev);

	ASSERT_RTNL();
	if (rtnl_dereference(vn->prov) != prov)
		return;
	RCU_INIT_POINTER(vn->prov, NULL);
	synchronize_net();
}

/**
 * dxn_vnic_init - register the "daxnet" link type
 *
 * Process context (module init).
 */
int dxn_vnic_init(void)
{
	return rtnl_link_register(&dxn_vnic_link_ops);
}

/**
 * dxn_vnic_exit - delete every daxnet pair and unregister the link type
 *
 * Process context (module exit).
 */
void dxn_vnic_exit(void)
{
	rtnl_link_unregister(&dxn_vnic_link_ops);
}

MODULE_ALIAS_RTNL_LINK(DXN_VNIC_KIND);
