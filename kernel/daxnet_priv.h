/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Private declarations of daxnet.ko.
 *
 * Objects (docs/kernel.md has the pictures):
 *   dxn_port  one open file of /dev/daxnet: pool, ring pairs, connections.
 *   dxn_pair  one RX/TX/spare ring triple and the kernel's private copy of
 *             its indices, its spare stock, ready lists and counters.
 *   dxn_conn  one attached TCP socket.
 *
 * Locks, outermost first:
 *   dxn_ports_lock    mutex; the list of open ports, for the debugfs view
 *                     (daxnet_main.c), which takes each port->lock under
 *                     it. Never taken under port->lock.
 *   port->lock        mutex; every ioctl and release. Owns the connection
 *                     table, the rings' private state and the pool.
 *   mmap_lock         taken under port->lock only around user-memory
 *                     access (copy_*_user, GUP at REGISTER); ->mmap runs
 *                     under it and takes no daxnet lock: it reads the
 *                     registration published by REGISTER.
 *   lock_sock(sk)     taken by sync/attach/detach for one socket at a time.
 *   sk_callback_lock  rwlock; write side to swap the socket callbacks,
 *                     read side in the callbacks (BH context).
 *   port->ready_lock  spinlock (BH); the ready lists and conn->flags bits.
 */
#ifndef _DAXNET_PRIV_H
#define _DAXNET_PRIV_H

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/idr.h>
#include <linux/net.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/pid.h>
#include <net/sock.h>
#include <net/net_namespace.h>
#include <linux/daxnet.h>

/* Largest pool: 16 GiB (the page array is 32 MiB). */
#define DXN_MAX_POOL_PAGES	(16UL << (30 - PAGE_SHIFT))
/* Most buffers per pool (bounds the per-buffer arrays). */
#define DXN_MAX_BUFS		BIT(22)
/*
 * Most bytes of ring region plus per-pair and per-connection arrays one
 * port may allocate (docs/kernel.md, "Accounting and caps").
 */
#define DXN_MAX_PORT_BYTES	(64ULL << 20)
/* Most bio_vecs one slice of the largest buffer can span. */
#define DXN_MAX_SLICE_PAGES	(DAXNET_MAX_BUF_SIZE / PAGE_SIZE + 1)
/* Most TX byte ranges queued in the kernel per ring pair. */
#define DXN_MAX_TXQ		65536
/*
 * Most RELEASE slots one ring pair may owe: pair->rel_max, set at REGISTER
 * from the geometry (dxn_rel_max(), docs/kernel.md "Accounting and caps"),
 * a power of two of at most 2^23 entries (32 MiB at the largest geometry;
 * 512 KiB for 1024-slot rings, 1024 connections and 4096 buffers).
 */

/*
 * After an allocation failure (a sync refused with -ENOMEM, zero-copy
 * RELEASEs deferred), poll() holds back EPOLLIN for the work that failed
 * this long, then reports it again (port->retry wakes the pollers): a
 * retry every DXN_NOMEM_MS instead of a poller spinning on a sync that
 * cannot make progress.
 */
#define DXN_NOMEM_MS		100

/* conn->flags bits, under port->ready_lock or atomic bitops. */
enum {
	DXN_RX_READY,		/* on pair->rx_ready: socket has news */
	DXN_TX_READY,		/* on pair->tx_ready: write space came back */
	/*
	 * At its rx_limit (on pair->rx_paused): new data does not mark it
	 * ready, dxn_cs_rx_resume() does once the limit is raised. Set and
	 * cleared under port->lock, read by dxn_data_ready().
	 */
	DXN_RX_PAUSED,
};

/*
 * Who holds a pool buffer exclusively: pool->own[buf], under port->lock.
 * Every index user space hands over (spare entries, RX slots released with
 * BUF_CHANGED) must be DXN_OWN_USER and appear once per sync, else the sync
 * fails with -EINVAL (counter bad_buf). TX slots do not take a buffer: a TX
 * reference (BUF_HELD, RELEASE at completion) leaves the state unchanged.
 */
enum {
	DXN_OWN_USER,		/* user space */
	DXN_OWN_STOCK,		/* a ring pair's spare stock */
	DXN_OWN_RX,		/* a connection's copy-mode RX buffer */
	DXN_OWN_NIC,		/* zero-copy: handed to the vnic */
};

/* A TX byte range the socket could not take yet (holds its buffer). */
struct dxn_txent {
	struct list_head node;
	u32 buf;		/* DAXNET_NO_BUF for a queued shutdown */
	u32 off;
	u32 len;
};

struct dxn_conn {
	struct dxn_port *port;
	struct dxn_pair *pair;
	struct socket *sock;	/* holds a reference to sock->file */
	struct sock *sk;
	u32 id;
	u64 cookie;
	unsigned long flags;		/* DXN_RX_READY, DXN_TX_READY */
	struct list_head rx_node;	/* pair->rx_ready, under ready_lock */
	struct list_head tx_node;	/* pair->tx_ready, under ready_lock */
	struct list_head work_node;	/* sync-local lists, under port->lock */

	/* saved socket callbacks, restored at detach */
	void (*save_data_ready)(struct sock *sk);
	void (*save_write_space)(struct sock *sk);
	void (*save_state_change)(struct sock *sk);
	void (*save_error_report)(struct sock *sk);

	/* Everything below: port->lock. */
	bool new_conn_due;	/* NEW_CONN slot not published yet */
	bool eof_done;		/* EOF slot published */
	bool err_done;		/* ERROR slot published: connection is dead */
	bool rx_fault;		/* the pool mapping faulted: RX stopped */
	int err;		/* positive errno once the connection failed */

	u32 rx_buf;		/* buffer being filled, DAXNET_NO_BUF if none */
	u32 rx_fill;		/* bytes of rx_buf already written */

	struct list_head txq;	/* struct dxn_txent, in stream order */
	u32 ntxq;		/* entries on txq */
	u64 txq_bytes;		/* payload bytes on txq */
	/* Connection state table (daxnet_cstate.c), port->lock: */
	struct list_head cs_node;	/* pair->cs_tx or cs_watch */
	struct list_head pause_node;	/* pair->rx_paused: at rx_limit */
	/*
	 * !list_empty(&txq), written under port->lock *and* ready_lock
	 * (dxn_txq_busy_update()), read under either: counts the connection
	 * in pair->ntx_resume while it is on pair->tx_ready.
	 */
	bool txq_busy;
	struct dxn_zc_batch *zc_batch;	/* zero-copy TX batch of this sync */
	struct daxnet_counters cnt;	/* byte counters of this conn; port->lock */
	bool tx_shut;		/* EOF slot seen: no DATA may follow */
	u32 batch_first;	/* this sync's TX slots (scratch positions) */
	u32 batch_last;
};

struct dxn_ringstate {
	struct daxnet_ring *ring;	/* shared header */
	void *slots;			/* shared slot array */
	u32 n;				/* num_slots */
	u32 head;			/* last user head seen (validated) */
	u32 hwcur;			/* TX/spare: next entry to consume */
	u32 tail;			/* kernel's tail */
};

struct dxn_pair {
	struct dxn_port *port;
	u32 idx;
	struct dxn_ringstate rx, tx, spare;

	u32 *stock;		/* spare buffers the kernel holds */
	u32 *intake;		/* indices handed over in one sync */
	u32 nstock;
	u32 stock_cap;		/* min(spare_slots + rx_slots, buf_count) */

	u32 *releases;		/* buffers owed a RELEASE slot, FIFO */
	u32 rel_head;
	u32 rel_count;
	u32 rel_cap;
	u32 rel_max;		/* cap of rel_cap (power of two) */
	u32 rel_resv;		/* entries a sync/detach reserved, still free */

	struct daxnet_slot *txcopy;	/* private copy of handed-over slots */
	u32 *txnext;			/* per-connection chains in txcopy */

	struct list_head rx_ready;	/* under port->ready_lock */
	struct list_head tx_ready;	/* under port->ready_lock */
	/*
	 * Connections on tx_ready with TX queued (txq_busy), under
	 * ready_lock: poll()'s "write space back for queued TX", without a
	 * walk of tx_ready.
	 */
	u32 ntx_resume;
	struct list_head rx_blocked;	/* ring full / no spare; port->lock */
	u32 nconns;
	u32 ntxq;		/* struct dxn_txent queued over all conns */
	struct list_head cs_tx;		/* conns whose TX changed this sync */
	struct list_head cs_watch;	/* conns with TX queued or unACKed */
	struct list_head rx_paused;	/* conns stopped at their rx_limit */
	bool stalled;		/* last RX phase ran out of room or spares */
	/*
	 * The last sync failed with -ENOMEM at nomem_at (jiffies): poll()
	 * reports no EPOLLIN for the pair until DXN_NOMEM_MS later
	 * (dxn_nomem_backoff()). Cleared by a sync that gets through.
	 */
	bool nomem;
	unsigned long nomem_at;

	struct daxnet_counters cnt;	/* under port->lock */
};

/* What the pool's memory is (daxnet_pool.c, from every VMA of the pool). */
enum dxn_mem {
	DXN_MEM_SHMEM,		/* tmpfs, memfd, MAP_SHARED|MAP_ANONYMOUS */
	DXN_MEM_HUGETLB,	/* hugetlbfs */
	DXN_MEM_DEVDAX,		/* /dev/daxX.Y */
	DXN_MEM_FSDAX,		/* a file on a DAX file system */
	DXN_MEM_FILE,		/* any other file: page cache */
	DXN_MEM_PRIVATE,	/* some VMA is MAP_PRIVATE (heap, private file) */
	DXN_MEM_MIXED,		/* shared, but VMAs of more than one file */
};

/*
 * The pool: the owner's mapping at addr. Copy mode reaches it only through
 * that mapping, in the owner's process context (dxn_pool_uptr()). Zero-copy
 * mode also pins it (pages != NULL).
 */
struct dxn_pool {
	u64 addr;		/* owner's user address of buffer 0 */
	u64 len;
	u32 buf_size;
	u32 buf_count;
	u8 *own;		/* buffer -> DXN_OWN_*, port->lock */
	enum dxn_mem mem;	/* from every VMA of the pool */
	bool dax;		/* DXN_MEM_FSDAX or DXN_MEM_DEVDAX */
	/* Zero-copy mode only (dxn_pool_pin()): */
	struct page **pages;
	unsigned long npages;
	struct mm_struct *mm;	/* charged locked_vm */
};

struct dxn_port {
	struct mutex lock;		/* see the lock order above */
	spinlock_t ready_lock;		/* ready lists, conn->flags */
	wait_queue_head_t wq;		/* poll() waiters */
	struct timer_list retry;	/* wakes wq when a backoff ends */
	/*
	 * Set once by REGISTER with smp_store_release() after everything
	 * below is in place; immutable afterwards until release. Readers
	 * outside port->lock (->mmap) use dxn_port_registered().
	 */
	bool registered;
	/* The file is being released: no RELEASE slot will be read. */
	bool closing;
	struct net *net;		/* netns of the opener (held) */
	struct mm_struct *mm;		/* owner: the REGISTER caller (mmgrab) */
	/* The debugfs view (daxnet/ports): list under dxn_ports_lock. */
	struct list_head all_node;
	u64 id;				/* open order, from 1 */
	struct pid *owner_pid;		/* REGISTER caller's tgid (held) */
	kuid_t owner_uid;		/* its euid */

	struct dxn_pool pool;
	struct dxn_zc *zc;	/* zero-copy state, NULL in copy mode */
	void *region;		/* vmap of region_pages, mmap'd */
	struct page **region_pages;	/* charged to the memory cgroup */
	unsigned long region_npages;
	size_t region_size;
	/* DAXNET_REG_CONNSTATE: the table in the region, else NULL. */
	struct daxnet_conn_state *cstate;
	u32 num_pairs;
	struct dxn_pair *pairs;

	u32 max_conns;
	struct dxn_conn **conns;	/* by DAXNET_CONN_INDEX(id) */
	u16 *gens;			/* generation per index */
	struct ida ida;
};

/* RX ring state of one sync (daxnet_sync.c; daxnet_zc.c publishes too). */
struct dxn_rxctx {
	struct dxn_pair *pair;
	struct dxn_conn *conn;
	u32 room;		/* free RX slots not yet reserved */
	bool slot_open;		/* a DATA slot of conn is being filled */
	u32 slot_off;
	u32 slot_len;
	int stop;		/* why the actor stopped */
	u64 budget;		/* bytes conn may still publish (rx_limit) */
};

enum {
	DXN_GO, DXN_STOP_RING, DXN_STOP_SPARE, DXN_STOP_FAULT,
	DXN_STOP_LIMIT,		/* the connection's rx_limit is reached */
};

/* Registered (acquire: the registration is fully visible)? Any context. */
static inline bool dxn_port_registered(struct dxn_port *port)
{
	/* Pairs with the smp_store_release() at the end of REGISTER. */
	return smp_load_acquire(&port->registered);
}

/*
 * May the caller administer networking for @net (zero-copy mode, vnic
 * links, binding a vnic end)? CAP_NET_ADMIN in the user namespace owning
 * @net (the port's netns for port-wide operations, sock_net(sk) for a
 * socket). Process context. docs/kernel.md, "Threat model".
 */
static inline bool dxn_may_admin(struct net *net)
{
	return ns_capable(net->user_ns, CAP_NET_ADMIN);
}

/*
 * Is the caller the process that registered the port (same mm)? Every
 * ioctl but REGISTER, and mmap, refuse other callers with -EPERM: an fd
 * passed to (or inherited by) another process must not move bytes
 * through, or map the rings of, the owner's pool. Process context.
 */
static inline bool dxn_port_owner(const struct dxn_port *port)
{
	return port->mm && port->mm == current->mm;
}

/*
 * Fault injection for the tests (daxnet_main.c), only in a module built
 * with CONFIG_DAXNET_FAULT_INJECT=y (kernel/Kbuild; the CMake test build):
 * every growth of a RELEASE queue fails as if out of memory while root
 * sets /sys/kernel/debug/daxnet/fail_release_grow (ktest.rel_nomem).
 */
#if IS_ENABLED(CONFIG_DAXNET_FAULT_INJECT) && IS_ENABLED(CONFIG_DEBUG_FS)
extern bool dxn_fail_release_grow;
extern u32 dxn_stat_cs_refresh_max;
extern u32 dxn_test_txq_max;

/* DXN_MAX_TXQ, or the test's lower value (daxnet/txq_max, 0: default). */
static inline u32 dxn_txq_max(void)
{
	u32 v = READ_ONCE(dxn_test_txq_max);

	return v && v < DXN_MAX_TXQ ? v : DXN_MAX_TXQ;
}

static inline bool dxn_fault_release_grow(void)
{
	return READ_ONCE(dxn_fail_release_grow);
}

/*
 * The most entries one dxn_cs_refresh() wrote since root last reset
 * daxnet/cs_refresh_max (ktest.cs_refresh_bound).
 */
static inline void dxn_stat_cs_refresh(u32 n)
{
	if (n > READ_ONCE(dxn_stat_cs_refresh_max))
		WRITE_ONCE(dxn_stat_cs_refresh_max, n);
}
#else
static inline bool dxn_fault_release_grow(void)
{
	return false;
}

static inline void dxn_stat_cs_refresh(u32 n)
{
}

static inline u32 dxn_txq_max(void)
{
	return DXN_MAX_TXQ;
}
#endif

/* daxnet_pool.c */
int dxn_pool_check(struct dxn_pool *pool, u64 addr, u64 len);
int dxn_pool_pin(struct dxn_pool *pool);
void dxn_pool_unpin(struct dxn_pool *pool);
void __user *dxn_pool_uptr(struct dxn_pool *pool, u64 pos);
int dxn_pool_bvec(struct dxn_pool *pool, u64 pos, u32 len,
		  struct bio_vec *bv, int max);

/* daxnet_conn.c */
int dxn_attach(struct dxn_port *port, struct daxnet_attach *arg,
	       struct daxnet_attach __user *uarg);
int dxn_detach(struct dxn_port *port, u32 id, u32 flags);
void dxn_detach_all(struct dxn_port *port);
struct dxn_conn *dxn_conn_lookup(struct dxn_port *port, u32 id);
bool dxn_sk_attached(struct sock *sk, const struct dxn_port *port);
void dxn_mark_rx(struct dxn_conn *conn);

/* daxnet_cstate.c */
void dxn_cs_attach(struct dxn_conn *conn);
void dxn_cs_detach(struct dxn_conn *conn);
void dxn_cs_tx_touch(struct dxn_conn *conn);
void dxn_cs_refresh(struct dxn_pair *pair);
u64 dxn_cs_rx_budget(struct dxn_conn *conn);
void dxn_cs_rx_done(struct dxn_conn *conn, bool paused, u32 pending);
void dxn_cs_rx_resume(struct dxn_pair *pair);

/* daxnet_sync.c */
bool dxn_nomem_backoff(struct dxn_port *port, bool failed,
		       unsigned long since);
int dxn_sync_pair(struct dxn_pair *pair, u32 flags);
int dxn_release_promise(struct dxn_pair *pair, u32 n);
void dxn_release_unpromise(struct dxn_pair *pair);
bool dxn_release_room(struct dxn_pair *pair, u32 n);
bool dxn_release_try(struct dxn_pair *pair, u32 buf);
void dxn_release_buf(struct dxn_pair *pair, u32 buf);
void dxn_txq_drop(struct dxn_conn *conn, bool count);
void dxn_txq_busy_update(struct dxn_conn *conn);
__poll_t dxn_pair_poll(struct dxn_pair *pair);
void dxn_rx_write(struct dxn_pair *pair, u32 conn, u32 buf, u32 off,
		  u32 len, u16 flags, u16 err, u64 user_data);
void dxn_rx_close_slot(struct dxn_rxctx *ctx, bool held);
int dxn_rx_actor(read_descriptor_t *rd, struct sk_buff *skb,
		 unsigned int offset, size_t len);

#endif /* _DAXNET_PRIV_H */
