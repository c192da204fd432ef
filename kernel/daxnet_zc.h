/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Zero-copy mode of a port: the pool bound to a daxnet vnic as its receive
 * memory, RX slots published in place, TX by MSG_ZEROCOPY with completion.
 * docs/kernel.md, "Zero-copy mode", has the rules.
 */
#ifndef _DAXNET_ZC_H
#define _DAXNET_ZC_H

#include <linux/net.h>
#include <linux/skbuff.h>

struct dxn_port;
struct dxn_pair;
struct dxn_conn;

int dxn_zc_init(void);
void dxn_zc_exit(void);

int dxn_zc_create(struct dxn_port *port);
void dxn_zc_destroy(struct dxn_port *port);
void dxn_zc_sync(struct dxn_pair *pair);
int dxn_zc_rx_actor(read_descriptor_t *rd, struct sk_buff *skb,
		    unsigned int offset, size_t len);

#endif /* _DAXNET_ZC_H */
