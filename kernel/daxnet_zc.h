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
void dxn_zc_attach(struct dxn_pair *pair, struct sock *sk);
int dxn_zc_rx_actor(read_descriptor_t *rd, struct sk_buff *skb,
		    unsigned int offset, size_t len);
int dxn_zc_send(struct dxn_conn *conn, u32 buf, u32 off, u32 len, bool more);
bool dxn_zc_tx_owe(struct dxn_pair *pair, u32 buf);
bool dxn_zc_tx_full(struct dxn_pair *pair, u32 buf);
void dxn_zc_tx_end(struct dxn_conn *conn);
bool dxn_zc_tx_pending(struct dxn_port *port);

#endif /* _DAXNET_ZC_H */
