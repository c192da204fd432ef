/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The daxnet virtual NIC pair: interface to the rest of daxnet.ko.
 *
 * `ip link add NAME type daxnet` creates two Ethernet devices joined like
 * veth: NAME and its peer NAME + "p" (or the name given in a nested
 * DXN_VNIC_INFO_PEER attribute laid out like veth's VETH_INFO_PEER). A
 * frame sent on one end is received on the other after an emulated DMA:
 * the headers are copied into a small skb head with zero tailroom, the
 * payload into page chunks supplied by the receiving end's page provider
 * (a daxnet pool) or, without one, into ordinary pages. docs/kernel.md,
 * "Zero-copy mode", describes the device.
 *
 * The provider is the only coupling to the rest of daxnet.ko: the core
 * binds a port's pool to the receiving end with dxn_vnic_set_provider().
 */
#ifndef _DAXNET_VNIC_H
#define _DAXNET_VNIC_H

#include <linux/types.h>
#include <linux/netdevice.h>
#include <linux/ip.h>
#include <linux/tcp.h>

#define DXN_VNIC_KIND		"daxnet"
/* Default MTU: 4148 - 20 (IP) - 32 (TCP with timestamps) = MSS 4096. */
#define DXN_VNIC_MTU		4148
/* Payload pieces shorter than this are packed into sub-page slots. */
#define DXN_VNIC_PACK_MAX	2048
/* Alignment and truesize granule of a packed slot. */
#define DXN_VNIC_PACK_ALIGN	64

/* Nested attribute of IFLA_INFO_DATA: struct ifinfomsg + IFLA_* of the peer. */
enum {
	DXN_VNIC_INFO_UNSPEC,
	DXN_VNIC_INFO_PEER,
	__DXN_VNIC_INFO_MAX
};

#define DXN_VNIC_INFO_MAX	(__DXN_VNIC_INFO_MAX - 1)

/**
 * struct dxn_rxchunk - a piece of memory the device may write payload into
 * @page: the page, with one reference taken for the skb frag
 * @off: byte offset in @page
 * @len: bytes usable at @off, never past the end of @page
 * @truesize: memory charged to the receiving socket for this piece
 */
struct dxn_rxchunk {
	struct page *page;
	unsigned int off;
	unsigned int len;
	unsigned int truesize;
};

struct dxn_vnic_provider;

/**
 * struct dxn_vnic_provider_ops - a receiving end's source of payload memory
 * @get_chunk: reserve a chunk for up to @want bytes of one segment's
 *	payload. A request of DXN_VNIC_PACK_MAX bytes or more gets a chunk at
 *	offset 0 of a fresh buffer (one MSS per buffer); a smaller one may be
 *	packed at a DXN_VNIC_PACK_ALIGN-aligned offset of a shared page with
 *	truesize ALIGN(len, DXN_VNIC_PACK_ALIGN). The provider takes the
 *	page reference the frag will own (get_page) before it makes the
 *	chunk visible to anyone who checks page counts. Returns false when the
 *	provider has no free memory: the device then uses an ordinary page
 *	(counted as rx_pool_miss). Called from the peer's ndo_start_xmit: BH
 *	disabled, rcu_read_lock held, any CPU, concurrently; must not sleep.
 * @commit: the device finished writing every chunk it reserved in this
 *	xmit call (after the store fence). Same context as @get_chunk.
 *	Optional.
 * @flow_ok: may the payload of this IPv4/TCP frame, which @dev (the
 *	receiving end) is about to receive, land in the provider's chunks?
 *	Asked once per transmitted skb, before any @get_chunk for it; on
 *	false the frame gets ordinary pages (counted as rx_foreign). Same
 *	context as @get_chunk. Optional: without it every flow may.
 */
struct dxn_vnic_provider_ops {
	bool (*get_chunk)(struct dxn_vnic_provider *prov, unsigned int want,
			  struct dxn_rxchunk *chunk);
	void (*commit)(struct dxn_vnic_provider *prov);
	bool (*flow_ok)(struct dxn_vnic_provider *prov, struct net_device *dev,
			const struct iphdr *iph, const struct tcphdr *th);
};

/**
 * struct dxn_vnic_provider - embedded in the provider's own object
 * @ops: the callbacks
 * @pmem: chunks are persistent memory: payload is written with
 *	memcpy_flushcache() and fenced before the frame is delivered
 */
struct dxn_vnic_provider {
	const struct dxn_vnic_provider_ops *ops;
	bool pmem;
};

int dxn_vnic_init(void);
void dxn_vnic_exit(void);

bool dxn_is_vnic(const struct net_device *dev);
int dxn_vnic_set_provider(struct net_device *dev,
			  struct dxn_vnic_provider *prov);
void dxn_vnic_clear_provider(struct net_device *dev,
			     struct dxn_vnic_provider *prov);

#endif /* _DAXNET_VNIC_H */
