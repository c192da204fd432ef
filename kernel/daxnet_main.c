// SPDX-License-Identifier: GPL-2.0
/*
 * daxnet - attach connected TCP sockets to shared rings over a DAX pool.
 *
 * /dev/daxnet is a misc device; each open file is a port (struct
 * dxn_port). REGISTER pins the caller's pool and allocates the ring
 * region, which user space maps with mmap(); ATTACH/DETACH hook TCP
 * sockets; SYNC moves TX and RX for every connection of a ring pair;
 * poll() reports readiness; COUNTERS reads the statistics. The ABI is
 * kernel/include/uapi/linux/daxnet.h; docs/kernel.md describes the
 * lifecycle and locking.
 */
#include <linux/module.h>
#include <linux/debugfs.h>
#include <linux/miscdevice.h>
#include <linux/sched/mm.h>
#include <linux/nsproxy.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/seq_file.h>
#include <linux/cred.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <net/tcp.h>

#include "daxnet_priv.h"
#include "daxnet_compat.h"
#include "daxnet_vnic.h"
#include "daxnet_zc.h"

/* Byte sizes of the three rings of a pair, each cache-line aligned. */
static u64 dxn_ring_bytes(u32 slots, u32 slot_size)
{
	return sizeof(struct daxnet_ring) +
	       ALIGN((u64)slots * slot_size, SMP_CACHE_BYTES);
}

/* Set up one ring's header and the kernel's private state. */
static void dxn_ring_init(struct dxn_port *port, struct dxn_ringstate *rs,
			  u64 ofs, u32 slots, u32 slot_size, u32 kind,
			  u32 pair)
{
	struct daxnet_ring *ring = port->region + ofs;

	ring->num_slots = slots;
	ring->kind = kind;
	ring->pair = pair;
	ring->slot_size = slot_size;
	ring->slots_ofs = ofs + sizeof(*ring);
	rs->ring = ring;
	rs->slots = port->region + ring->slots_ofs;
	rs->n = slots;
	rs->head = 0;
	rs->hwcur = 0;
	rs->tail = kind == DAXNET_RING_RX ? 0 : slots - 1;
	ring->tail = rs->tail;
}

/* Check a REGISTER argument. */
static int dxn_check_register(const struct daxnet_register *r)
{
	int i;

	if (r->api_version != DAXNET_API)
		return -EPROTO;
	if (r->flags & ~(DAXNET_REG_ZEROCOPY | DAXNET_REG_CONNSTATE) ||
	    r->reserved0)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(r->reserved); i++)
		if (r->reserved[i])
			return -EINVAL;
	if (!is_power_of_2(r->buf_size) || r->buf_size < DAXNET_MIN_BUF_SIZE ||
	    r->buf_size > DAXNET_MAX_BUF_SIZE || !r->buf_count)
		return -EINVAL;
	if (!r->num_pairs || r->num_pairs > DAXNET_MAX_PAIRS)
		return -EINVAL;
	if (r->rx_slots < DAXNET_MIN_SLOTS || r->rx_slots > DAXNET_MAX_SLOTS ||
	    r->tx_slots < DAXNET_MIN_SLOTS || r->tx_slots > DAXNET_MAX_SLOTS ||
	    r->spare_slots < DAXNET_MIN_SLOTS ||
	    r->spare_slots > DAXNET_MAX_SLOTS)
		return -EINVAL;
	if (r->max_conns > DAXNET_MAX_CONNS)
		return -EINVAL;
	if (!PAGE_ALIGNED(r->pool_addr) ||
	    r->pool_len != (u64)r->buf_size * r->buf_count)
		return -EINVAL;
	if (r->buf_count > DXN_MAX_BUFS)
		return -EINVAL;
	return 0;
}

/*
 * Bytes REGISTER would allocate for rings and the per-pair and
 * per-connection arrays (not the per-buffer ones, bounded by
 * DXN_MAX_BUFS): capped by DXN_MAX_PORT_BYTES.
 */
static u64 dxn_port_bytes(const struct daxnet_register *r, u64 region)
{
	u64 stock = min_t(u64, (u64)r->spare_slots + r->rx_slots, r->buf_count);
	u64 pair = stock * sizeof(u32) +
		   ((u64)r->spare_slots + r->rx_slots) * sizeof(u32) +
		   ((u64)r->tx_slots + r->rx_slots) * sizeof(u32) +
		   (u64)r->tx_slots * (sizeof(struct daxnet_slot) + sizeof(u32));

	return region + r->num_pairs * (sizeof(struct dxn_pair) + pair) +
	       (u64)r->max_conns * (sizeof(struct dxn_conn *) + sizeof(u16));
}

/*
 * The ring region: zeroed pages charged to the caller's memory cgroup
 * (vmalloc_user() cannot be charged), mapped contiguously for the kernel
 * with vmap() and into the owner with vm_map_pages(). Process context.
 */
static int dxn_region_alloc(struct dxn_port *port, size_t size)
{
	unsigned long i, n = size >> PAGE_SHIFT;
	struct page **pages;

	pages = kvcalloc(n, sizeof(*pages), GFP_KERNEL_ACCOUNT);
	if (!pages)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		pages[i] = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
		if (!pages[i])
			goto err;
	}
	port->region = vmap(pages, n, VM_MAP, PAGE_KERNEL);
	if (!port->region)
		goto err;
	port->region_pages = pages;
	port->region_npages = n;
	return 0;
err:
	while (i--)
		__free_page(pages[i]);
	kvfree(pages);
	return -ENOMEM;
}

/* Free the ring region (no mapping is left: each held the file). */
static void dxn_region_free(struct dxn_port *port)
{
	unsigned long i;

	if (!port->region_pages)
		return;
	vunmap(port->region);
	for (i = 0; i < port->region_npages; i++)
		__free_page(port->region_pages[i]);
	kvfree(port->region_pages);
	port->region_pages = NULL;
	port->cstate = NULL;
	port->region_npages = 0;
	port->region = NULL;
}

/* Free what REGISTER allocated. Process context, port->lock held. */
static void dxn_port_free(struct dxn_port *port)
{
	u32 i;

	lockdep_assert_held(&port->lock);
	if (port->pairs) {
		for (i = 0; i < port->num_pairs; i++) {
			struct dxn_pair *pair = &port->pairs[i];

			kvfree(pair->stock);
			kvfree(pair->intake);
			kvfree(pair->releases);
			kvfree(pair->txcopy);
			kvfree(pair->txnext);
		}
		kfree(port->pairs);
		port->pairs = NULL;
	}
	kvfree(port->conns);
	port->conns = NULL;
	kvfree(port->gens);
	port->gens = NULL;
	dxn_region_free(port);
	dxn_zc_destroy(port);
	dxn_pool_unpin(&port->pool);
	if (port->mm) {
		mmdrop(port->mm);
		port->mm = NULL;
	}
	put_pid(port->owner_pid);
	port->owner_pid = NULL;
	kvfree(port->pool.own);
	port->pool.own = NULL;
}

/*
 * The most RELEASE slots a pair may owe (docs/kernel.md, "Accounting and
 * caps"): what waits unpublished while the RX ring is full - the ranges
 * the TX queue gave back (with the queue itself at most DXN_MAX_TXQ, see
 * dxn_txq_add()), a buffer per connection, a swapped-in buffer per RX
 * slot, a vnic or stock buffer per pool buffer - plus what one sync may
 * reserve on top (dxn_sync_pair()). At most 2^23 entries: max_conns <=
 * 2^20, rings <= 2^15 slots, buf_count <= 2^22.
 */
static u32 dxn_rel_max(const struct daxnet_register *r)
{
	u32 n = 2 * DXN_MAX_TXQ + 2 * r->max_conns + 2 * r->rx_slots +
		r->tx_slots + r->buf_count;

	return roundup_pow_of_two(n);
}

/* Allocate the per-pair private arrays. */
static int dxn_pair_alloc(struct dxn_pair *pair, const struct daxnet_register *r)
{
	/* The stock never holds a buffer twice (pool->own). */
	pair->stock_cap = min(r->spare_slots + r->rx_slots, r->buf_count);
	pair->stock = kvmalloc_array(pair->stock_cap, sizeof(u32),
				     GFP_KERNEL_ACCOUNT);
	pair->intake = kvmalloc_array(r->spare_slots + r->rx_slots, sizeof(u32),
				      GFP_KERNEL_ACCOUNT);
	pair->rel_cap = r->tx_slots + r->rx_slots;
	pair->rel_max = dxn_rel_max(r);
	pair->releases = kvmalloc_array(pair->rel_cap, sizeof(u32),
					GFP_KERNEL_ACCOUNT);
	pair->txcopy = kvmalloc_array(r->tx_slots, sizeof(*pair->txcopy),
				      GFP_KERNEL_ACCOUNT);
	pair->txnext = kvmalloc_array(r->tx_slots, sizeof(u32),
				      GFP_KERNEL_ACCOUNT);
	if (!pair->stock || !pair->intake || !pair->releases || !pair->txcopy ||
	    !pair->txnext)
		return -ENOMEM;
	INIT_LIST_HEAD(&pair->rx_ready);
	INIT_LIST_HEAD(&pair->tx_ready);
	INIT_LIST_HEAD(&pair->cs_tx);
	INIT_LIST_HEAD(&pair->cs_watch);
	INIT_LIST_HEAD(&pair->rx_paused);
	return 0;
}

/*
 * DAXNET_IOC_REGISTER: pin the pool, allocate and lay out the ring region.
 * Process context, port->lock held.
 */
static int dxn_register(struct dxn_port *port, void __user *uarg)
{
	struct daxnet_register r;
	struct daxnet_region *reg;
	struct daxnet_pair_desc *pd;
	u64 size, ofs, cs_ofs = 0;
	u32 i;
	int ret;

	lockdep_assert_held(&port->lock);
	if (copy_from_user(&r, uarg, sizeof(r)))
		return -EFAULT;
	if (port->registered)
		return -EBUSY;
	ret = dxn_check_register(&r);
	if (ret)
		return ret;
	/* Zero-copy binds the pool to a network device: admin only. */
	if ((r.flags & DAXNET_REG_ZEROCOPY) && !dxn_may_admin(port->net))
		return -EPERM;
	if (!r.max_conns)
		r.max_conns = 1024;

	size = ALIGN(sizeof(*reg) + r.num_pairs * sizeof(*pd), SMP_CACHE_BYTES);
	size += r.num_pairs *
		(dxn_ring_bytes(r.rx_slots, sizeof(struct daxnet_slot)) +
		 dxn_ring_bytes(r.tx_slots, sizeof(struct daxnet_slot)) +
		 dxn_ring_bytes(r.spare_slots, sizeof(u32)));
	if (r.flags & DAXNET_REG_CONNSTATE) {
		/* The connection state table, after the rings. */
		cs_ofs = ALIGN(size, SMP_CACHE_BYTES);
		size = cs_ofs +
		       (u64)r.max_conns * sizeof(struct daxnet_conn_state);
	}
	size = PAGE_ALIGN(size);
	if (dxn_port_bytes(&r, size) > DXN_MAX_PORT_BYTES)
		return -E2BIG;

	port->pool.buf_size = r.buf_size;
	port->pool.buf_count = r.buf_count;
	port->num_pairs = r.num_pairs;
	port->max_conns = r.max_conns;
	port->region_size = size;
	/* Everything per port is charged to the caller's memory cgroup. */
	ret = dxn_region_alloc(port, size);
	if (ret)
		goto out_free;
	port->pairs = kcalloc(r.num_pairs, sizeof(*port->pairs),
			      GFP_KERNEL_ACCOUNT);
	port->conns = kvcalloc(r.max_conns, sizeof(*port->conns),
			       GFP_KERNEL_ACCOUNT);
	port->gens = kvcalloc(r.max_conns, sizeof(*port->gens),
			      GFP_KERNEL_ACCOUNT);
	if (!port->pairs || !port->conns || !port->gens) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < r.num_pairs; i++) {
		ret = dxn_pair_alloc(&port->pairs[i], &r);
		if (ret)
			goto out_free;
	}
	ret = dxn_pool_check(&port->pool, r.pool_addr, r.pool_len);
	if (ret)
		goto out_free;
	/* Every buffer starts with user space (DXN_OWN_USER = 0). */
	port->pool.own = kvzalloc(r.buf_count, GFP_KERNEL_ACCOUNT);
	if (!port->pool.own) {
		ret = -ENOMEM;
		goto out_free;
	}
	if (r.flags & DAXNET_REG_ZEROCOPY) {
		ret = dxn_pool_pin(&port->pool);
		if (ret)
			goto out_free;
		ret = dxn_zc_create(port);
		if (ret)
			goto out_free;
	}

	reg = port->region;
	reg->magic = DAXNET_REGION_MAGIC;
	reg->api_version = DAXNET_API;
	reg->region_size = size;
	reg->num_pairs = r.num_pairs;
	reg->rx_slots = r.rx_slots;
	reg->tx_slots = r.tx_slots;
	reg->spare_slots = r.spare_slots;
	reg->buf_size = r.buf_size;
	reg->buf_count = r.buf_count;
	reg->max_conns = r.max_conns;
	reg->flags = port->zc ? DAXNET_REG_ZEROCOPY : 0;
	reg->pairs_ofs = sizeof(*reg);
	if (cs_ofs) {
		port->cstate = port->region + cs_ofs;
		for (i = 0; i < r.max_conns; i++)
			port->cstate[i].conn = DAXNET_NO_CONN;
		reg->conn_state_ofs = cs_ofs;
		reg->flags |= DAXNET_REG_CONNSTATE;
	}
	pd = port->region + reg->pairs_ofs;
	ofs = ALIGN(sizeof(*reg) + r.num_pairs * sizeof(*pd), SMP_CACHE_BYTES);
	for (i = 0; i < r.num_pairs; i++) {
		struct dxn_pair *pair = &port->pairs[i];

		pair->port = port;
		pair->idx = i;
		pd[i].rx_ofs = ofs;
		dxn_ring_init(port, &pair->rx, ofs, r.rx_slots,
			      sizeof(struct daxnet_slot), DAXNET_RING_RX, i);
		ofs += dxn_ring_bytes(r.rx_slots, sizeof(struct daxnet_slot));
		pd[i].tx_ofs = ofs;
		dxn_ring_init(port, &pair->tx, ofs, r.tx_slots,
			      sizeof(struct daxnet_slot), DAXNET_RING_TX, i);
		ofs += dxn_ring_bytes(r.tx_slots, sizeof(struct daxnet_slot));
		pd[i].spare_ofs = ofs;
		dxn_ring_init(port, &pair->spare, ofs, r.spare_slots,
			      sizeof(u32), DAXNET_RING_SPARE, i);
		ofs += dxn_ring_bytes(r.spare_slots, sizeof(u32));
	}

	r.region_size = size;
	if (copy_to_user(uarg, &r, sizeof(r))) {
		ret = -EFAULT;
		goto out_free;
	}
	mmgrab(current->mm);
	port->mm = current->mm;
	port->owner_pid = get_pid(task_tgid(current));
	port->owner_uid = current_euid();
	/*
	 * Publish: ->mmap reads region and region_size without port->lock
	 * (acquire in dxn_port_registered()). Nothing above changes until
	 * the port is released.
	 */
	smp_store_release(&port->registered, true);
	return 0;

out_free:
	dxn_port_free(port);
	return ret;
}

/*
 * DAXNET_IOC_SYNC. With DAXNET_RING_ALL every pair is synced even when one
 * fails; the first failure's errno (-EINVAL, -ENOMEM) is returned.
 * Process context, port->lock held.
 */
static int dxn_sync(struct dxn_port *port, void __user *uarg)
{
	struct daxnet_sync s;
	int err, ret = 0;
	u32 i;

	lockdep_assert_held(&port->lock);
	if (copy_from_user(&s, uarg, sizeof(s)))
		return -EFAULT;
	if (!port->registered || s.reserved[0] || s.reserved[1] ||
	    s.flags & ~(DAXNET_SYNC_TX | DAXNET_SYNC_RX))
		return -EINVAL;
	if (s.pair != DAXNET_RING_ALL) {
		if (s.pair >= port->num_pairs)
			return -EINVAL;
		return dxn_sync_pair(&port->pairs[s.pair], s.flags);
	}
	for (i = 0; i < port->num_pairs; i++) {
		err = dxn_sync_pair(&port->pairs[i], s.flags);
		if (err && !ret)
			ret = err;
	}
	return ret;
}

/* DAXNET_IOC_COUNTERS. Process context, port->lock held. */
static int dxn_counters(struct dxn_port *port, void __user *uarg)
{
	struct daxnet_counters_arg a;
	u64 *sum, *c;
	u32 i, j, first, last;

	lockdep_assert_held(&port->lock);
	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (!port->registered || (a.flags & ~DAXNET_COUNTERS_CONN))
		return -EINVAL;
	if (a.flags & DAXNET_COUNTERS_CONN) {
		struct dxn_conn *conn = dxn_conn_lookup(port, a.pair);

		if (!conn)
			return -ENOENT;
		a.c = conn->cnt;
		return copy_to_user(uarg, &a, sizeof(a)) ? -EFAULT : 0;
	}
	if (a.pair == DAXNET_RING_ALL) {
		first = 0;
		last = port->num_pairs;
	} else if (a.pair < port->num_pairs) {
		first = a.pair;
		last = a.pair + 1;
	} else {
		return -EINVAL;
	}
	memset(&a.c, 0, sizeof(a.c));
	sum = (u64 *)&a.c;
	for (i = first; i < last; i++) {
		c = (u64 *)&port->pairs[i].cnt;
		for (j = 0; j < sizeof(a.c) / sizeof(u64); j++)
			sum[j] += c[j];
	}
	return copy_to_user(uarg, &a, sizeof(a)) ? -EFAULT : 0;
}

/* Process context (ioctl). Takes port->lock. */
static long dxn_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct dxn_port *port = file->private_data;
	void __user *uarg = (void __user *)arg;
	struct daxnet_attach at;
	struct daxnet_detach dt;
	long ret;

	mutex_lock(&port->lock);
	/* After REGISTER, only the registering process may use the port. */
	if (cmd != DAXNET_IOC_REGISTER && port->registered &&
	    !dxn_port_owner(port)) {
		ret = -EPERM;
		goto out;
	}
	switch (cmd) {
	case DAXNET_IOC_REGISTER:
		ret = dxn_register(port, uarg);
		break;
	case DAXNET_IOC_ATTACH:
		ret = -EFAULT;
		if (copy_from_user(&at, uarg, sizeof(at)))
			break;
		ret = -EINVAL;
		if (!port->registered)
			break;
		/* Writes the result out only once nothing can refuse it. */
		ret = dxn_attach(port, &at, uarg);
		break;
	case DAXNET_IOC_DETACH:
		ret = -EFAULT;
		if (copy_from_user(&dt, uarg, sizeof(dt)))
			break;
		ret = -EINVAL;
		if (!port->registered || dt.reserved[0] || dt.reserved[1])
			break;
		ret = dxn_detach(port, dt.conn, dt.flags);
		break;
	case DAXNET_IOC_SYNC:
		ret = dxn_sync(port, uarg);
		break;
	case DAXNET_IOC_COUNTERS:
		ret = dxn_counters(port, uarg);
		break;
	default:
		ret = -ENOTTY;
	}
out:
	mutex_unlock(&port->lock);
	return ret;
}

/* poll(): readiness of every ring pair. Process context; takes port->lock. */
static __poll_t dxn_poll(struct file *file, poll_table *pt)
{
	struct dxn_port *port = file->private_data;
	__poll_t mask = 0;
	u32 i;

	poll_wait(file, &port->wq, pt);
	mutex_lock(&port->lock);
	if (port->registered)
		for (i = 0; i < port->num_pairs; i++)
			mask |= dxn_pair_poll(&port->pairs[i]);
	mutex_unlock(&port->lock);
	return mask;
}

/*
 * mmap of the ring region: MAP_SHARED, offset 0, exactly region_size, by
 * the process that registered the port.
 *
 * Process context, mmap_lock held for write. Takes no daxnet lock: REGISTER
 * holds port->lock while it touches user memory (which takes mmap_lock),
 * so taking port->lock here would be an ABBA deadlock between two threads
 * of one process. The region is published once (dxn_port_registered()
 * acquires it) and does not change until the last reference to the file,
 * which this mapping holds, is gone.
 */
static int dxn_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct dxn_port *port = file->private_data;

	if (!dxn_port_registered(port))
		return -EINVAL;
	if (vma->vm_mm != port->mm)
		return -EPERM;
	if (vma->vm_pgoff || vma->vm_end - vma->vm_start != port->region_size ||
	    !(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	/* The rings belong to the process that registered them. */
	dxn_vma_set_flags(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP);
	return vm_map_pages(vma, port->region_pages, port->region_npages);
}

/* port->retry: a backoff after an allocation failure ended. Softirq. */
static void dxn_retry_timer(struct timer_list *t)
{
	struct dxn_port *port = from_timer(port, t, retry);

	wake_up_interruptible_poll(&port->wq, EPOLLIN | EPOLLRDNORM);
}

/*
 * Every open port, for the debugfs view: added at open, removed first
 * thing at release, both under dxn_ports_lock; the view takes each
 * port->lock under it, so a port it reaches is not being freed.
 */
static LIST_HEAD(dxn_ports);
static DEFINE_MUTEX(dxn_ports_lock);
static u64 dxn_ports_seq;	/* never wraps: 2^64 opens */

/* Process context. */
static int dxn_open(struct inode *inode, struct file *file)
{
	struct dxn_port *port;

	port = kzalloc(sizeof(*port), GFP_KERNEL_ACCOUNT);
	if (!port)
		return -ENOMEM;
	port->net = get_net(current->nsproxy->net_ns);
	mutex_init(&port->lock);
	spin_lock_init(&port->ready_lock);
	init_waitqueue_head(&port->wq);
	timer_setup(&port->retry, dxn_retry_timer, 0);
	ida_init(&port->ida);
	mutex_lock(&dxn_ports_lock);
	port->id = ++dxn_ports_seq;
	list_add_tail(&port->all_node, &dxn_ports);
	mutex_unlock(&dxn_ports_lock);
	file->private_data = port;
	return stream_open(inode, file);
}

/*
 * Last close of the port (the mapping holds a file reference, so the rings
 * are unmapped by now). Detaches every socket, unpins the pool. Process
 * context; takes port->lock.
 */
static int dxn_release(struct inode *inode, struct file *file)
{
	struct dxn_port *port = file->private_data;

	/* Out of the debugfs view's reach before anything is torn down. */
	mutex_lock(&dxn_ports_lock);
	list_del(&port->all_node);
	mutex_unlock(&dxn_ports_lock);
	mutex_lock(&port->lock);
	port->closing = true;
	dxn_detach_all(port);
	dxn_port_free(port);
	mutex_unlock(&port->lock);
	/* Only poll() arms it, and no poll() runs on a released file. */
	del_timer_sync(&port->retry);
	ida_destroy(&port->ida);
	mutex_destroy(&port->lock);
	put_net(port->net);
	kfree(port);
	return 0;
}

static const struct file_operations dxn_fops = {
	.owner = THIS_MODULE,
	.open = dxn_open,
	.release = dxn_release,
	.unlocked_ioctl = dxn_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = dxn_mmap,
	.poll = dxn_poll,
};

static struct miscdevice dxn_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "daxnet",
	.fops = &dxn_fops,
	/*
	 * root:root 0660; kernel/udev/60-daxnet.rules gives the node to the
	 * `daxnet` group (docs/kernel.md, "Threat model").
	 */
	.mode = 0660,
};

/*
 * Fault injection for the tests, compiled in only with
 * CONFIG_DAXNET_FAULT_INJECT=y (kernel/Kbuild: the CMake test build, never
 * the DKMS build users install), in debugfs (root only, mode 0600; gone
 * without CONFIG_DEBUG_FS; under lockdown debugfs refuses to open them,
 * EPERM, being writable): daxnet/fail_release_grow makes
 * every growth of a RELEASE queue fail (dxn_fault_release_grow()), and
 * daxnet/cs_refresh_max shows the most connection-state entries one sync
 * wrote (dxn_stat_cs_refresh(), the bound ktest.cs_refresh_bound checks),
 * and daxnet/txq_max lowers DXN_MAX_TXQ (dxn_txq_max(), 0: the default)
 * so the tests reach the ENOBUFS rule with a few slots. Not
 * the fault-injection framework (should_fail(), fault_attr): Debian's
 * 6.1 is built without CONFIG_FAULT_INJECTION, and the guest tests run
 * on that kernel. Not a module parameter: those are writable.
 */
#if IS_ENABLED(CONFIG_DAXNET_FAULT_INJECT) && IS_ENABLED(CONFIG_DEBUG_FS)
bool dxn_fail_release_grow;
u32 dxn_stat_cs_refresh_max;
u32 dxn_test_txq_max;

static void dxn_debugfs_init(struct dentry *dir)
{
	debugfs_create_bool("fail_release_grow", 0600, dir,
			    &dxn_fail_release_grow);
	debugfs_create_u32("cs_refresh_max", 0600, dir,
			   &dxn_stat_cs_refresh_max);
	debugfs_create_u32("txq_max", 0600, dir, &dxn_test_txq_max);
}
#else
static void dxn_debugfs_init(struct dentry *dir)
{
}
#endif

/*
 * daxnet/ports in debugfs (root only, mode 0400; not an ABI: docs/kernel.md,
 * "Inspecting ports"; read-only with no ioctl or mmap, so debugfs keeps it
 * readable under lockdown): one "port" line per open port, then one "pair"
 * line per ring pair and one "conn" line per attached connection, as
 * key=value words. Ring indices are the kernel's own
 * copies (what the last sync validated), never the user-written ones; no
 * kernel address is shown.
 */
static const char * const dxn_counter_names[] = {
	"syncs", "rx_slots", "rx_bytes", "rx_copied", "tx_slots", "tx_bytes",
	"tx_copied", "rx_ring_full", "spare_empty", "bad_ring", "bad_slot",
	"tx_discarded", "conns", "tx_held", "releases", "rx_zc_bytes",
	"rx_copy_head", "rx_copy_other", "tx_zc_bytes", "tx_zc_batches",
	"tx_zc_copied", "tx_zc_early", "bad_buf", "rel_nomem", "rel_deferred",
	"rx_paused", "tx_zc_limited",
};

/* One name per counter before reserved[]: a counter added without one fails. */
static_assert(ARRAY_SIZE(dxn_counter_names) ==
	      offsetof(struct daxnet_counters, reserved) / sizeof(u64));

static const char * const dxn_mem_names[] = {
	[DXN_MEM_SHMEM] = "shmem",
	[DXN_MEM_HUGETLB] = "hugetlb",
	[DXN_MEM_DEVDAX] = "devdax",
	[DXN_MEM_FSDAX] = "fsdax",
	[DXN_MEM_FILE] = "file",
	[DXN_MEM_PRIVATE] = "private",
	[DXN_MEM_MIXED] = "mixed",
};

static const char *dxn_mem_name(enum dxn_mem mem)
{
	return (unsigned int)mem < ARRAY_SIZE(dxn_mem_names) &&
	       dxn_mem_names[mem] ? dxn_mem_names[mem] : "unknown";
}

/* @cur: the ring has a kernel cursor (TX and spare; RX has none). */
static void dxn_ring_show(struct seq_file *m, const char *name,
			  const struct dxn_ringstate *rs, bool cur)
{
	seq_printf(m, " %s_slots=%u %s_head=%u", name, rs->n, name, rs->head);
	if (cur)
		seq_printf(m, " %s_cur=%u", name, rs->hwcur);
	seq_printf(m, " %s_tail=%u", name, rs->tail);
}

/* One port. Process context, dxn_ports_lock and port->lock held. */
static void dxn_port_show(struct seq_file *m, struct dxn_port *port)
{
	u64 sum[ARRAY_SIZE(dxn_counter_names)] = { 0 };
	const u64 *c;
	u32 i, j;

	lockdep_assert_held(&dxn_ports_lock);
	lockdep_assert_held(&port->lock);
	seq_printf(m, "port=%llu registered=%d", port->id, port->registered);
	if (!port->registered) {
		seq_puts(m, "\n");
		return;
	}
	for (i = 0; i < port->num_pairs; i++) {
		c = (const u64 *)&port->pairs[i].cnt;
		for (j = 0; j < ARRAY_SIZE(sum); j++)
			sum[j] += c[j];
	}
	/*
	 * The counters follow; their conns is the connections attached. The
	 * pid is the owner's in the reader's pid namespace (0: not visible
	 * there, or the owner exited: its number may name another process
	 * by now, although the port still holds the struct pid).
	 */
	seq_printf(m, " pid=%d uid=%u mode=%s mem=%s buf_size=%u buf_count=%u pairs=%u max_conns=%u connstate=%d",
		   pid_has_task(port->owner_pid, PIDTYPE_TGID) ?
		   pid_vnr(port->owner_pid) : 0,
		   from_kuid_munged(&init_user_ns, port->owner_uid),
		   port->zc ? "zerocopy" : "copy", dxn_mem_name(port->pool.mem),
		   port->pool.buf_size, port->pool.buf_count, port->num_pairs,
		   port->max_conns, !!port->cstate);
	for (j = 0; j < ARRAY_SIZE(sum); j++)
		seq_printf(m, " %s=%llu", dxn_counter_names[j], sum[j]);
	seq_puts(m, "\n");
	for (i = 0; i < port->num_pairs; i++) {
		const struct dxn_pair *pair = &port->pairs[i];

		seq_printf(m, "pair=%u port=%llu conns=%u", i, port->id,
			   pair->nconns);
		dxn_ring_show(m, "rx", &pair->rx, false);
		dxn_ring_show(m, "tx", &pair->tx, true);
		dxn_ring_show(m, "spare", &pair->spare, true);
		seq_printf(m, " tx_queued=%u releases_queued=%u\n", pair->ntxq,
			   pair->rel_count);
	}
}

static const char * const dxn_tcp_states[] = {
	[TCP_ESTABLISHED] = "ESTABLISHED",
	[TCP_SYN_SENT] = "SYN_SENT",
	[TCP_SYN_RECV] = "SYN_RECV",
	[TCP_FIN_WAIT1] = "FIN_WAIT1",
	[TCP_FIN_WAIT2] = "FIN_WAIT2",
	[TCP_TIME_WAIT] = "TIME_WAIT",
	[TCP_CLOSE] = "CLOSE",
	[TCP_CLOSE_WAIT] = "CLOSE_WAIT",
	[TCP_LAST_ACK] = "LAST_ACK",
	[TCP_LISTEN] = "LISTEN",
	[TCP_CLOSING] = "CLOSING",
	[TCP_NEW_SYN_RECV] = "NEW_SYN_RECV",
};

/* A socket's address (local or remote) with its port, as "%pISpc" prints. */
static void dxn_sk_addr(const struct sock *sk, bool local,
			struct sockaddr_storage *ss)
{
	const struct inet_sock *inet = inet_sk(sk);

	memset(ss, 0, sizeof(*ss));
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = local ? sk->sk_v6_rcv_saddr : sk->sk_v6_daddr;
		a->sin6_port = local ? inet->inet_sport : inet->inet_dport;
		return;
	}
#endif
	((struct sockaddr_in *)ss)->sin_family = AF_INET;
	((struct sockaddr_in *)ss)->sin_addr.s_addr =
		local ? inet->inet_rcv_saddr : inet->inet_daddr;
	((struct sockaddr_in *)ss)->sin_port =
		local ? inet->inet_sport : inet->inet_dport;
}

/*
 * One attached connection. Its socket is read without the socket lock,
 * as /proc/net/tcp does: the addresses are fixed once connected, the
 * state and segment counts are single loads (a snapshot). Process
 * context, dxn_ports_lock and port->lock held.
 */
static void dxn_conn_show(struct seq_file *m, struct dxn_port *port,
			  struct dxn_conn *conn)
{
	const struct tcp_sock *tp = tcp_sk(conn->sk);
	struct sockaddr_storage la, ra;
	u64 limit = 0;
	u8 st;

	lockdep_assert_held(&dxn_ports_lock);
	lockdep_assert_held(&port->lock);
	dxn_sk_addr(conn->sk, true, &la);
	dxn_sk_addr(conn->sk, false, &ra);
	st = READ_ONCE(conn->sk->sk_state);
	if (port->cstate)
		limit = READ_ONCE(port->cstate[DAXNET_CONN_INDEX(conn->id)].rx_limit);
	seq_printf(m, "conn=%u port=%llu index=%u pair=%u local=%pISpc remote=%pISpc state=%s err=%d",
		   conn->id, port->id, DAXNET_CONN_INDEX(conn->id),
		   conn->pair->idx, &la, &ra,
		   st < ARRAY_SIZE(dxn_tcp_states) && dxn_tcp_states[st] ?
		   dxn_tcp_states[st] : "unknown", conn->err);
	seq_printf(m, " rx_bytes=%llu tx_bytes=%llu rx_zc_bytes=%llu tx_zc_bytes=%llu segs_in=%u segs_out=%u tx_queued=%llu rx_limit=%llu\n",
		   conn->cnt.rx_bytes, conn->cnt.tx_bytes,
		   conn->cnt.rx_zc_bytes, conn->cnt.tx_zc_bytes,
		   READ_ONCE(tp->segs_in), READ_ONCE(tp->segs_out),
		   conn->txq_bytes, limit);
}

/*
 * The iterator of daxnet/ports (seq_operations, so the view never needs
 * one buffer for every port): one record per port (its line and its pair
 * lines), then one per attached connection. It holds dxn_ports_lock from
 * start to stop, and the mutex of the port it is in, taken with a trylock
 * when it enters the port: a port whose mutex is held (a long REGISTER, a
 * sync waiting for RTNL, a fault in copy_*_user) is one "busy" record
 * rather than waited for, since the reader must never hold
 * dxn_ports_lock, which every open and release of /dev/daxnet takes,
 * behind one user's port.
 *
 * Between two read() calls the locks are dropped; the next one resumes
 * at the saved key (port id, record in the port), not at a list position,
 * so ports opened or released in between are neither repeated nor
 * skipped (ids grow along the list).
 */
struct dxn_ports_iter {
	struct dxn_port *port;	/* current port, NULL past the end */
	bool locked;		/* port->lock held (else: busy record) */
	u64 id;			/* key: port id ... */
	u32 rec;		/* ... and 0 (the port) or conns index + 1 */
	loff_t pos;		/* seq_file position of the key */
};

/* Leave the current port. dxn_ports_lock held. */
static void dxn_iter_leave(struct dxn_ports_iter *it)
{
	lockdep_assert_held(&dxn_ports_lock);
	if (it->port && it->locked)
		mutex_unlock(&it->port->lock);
	it->port = NULL;
	it->locked = false;
}

/*
 * First connection record of it->port at index >= from: true with it->rec
 * set, or false. dxn_ports_lock and (if it->locked) port->lock held.
 */
static bool dxn_iter_conn(struct dxn_ports_iter *it, u32 from)
{
	struct dxn_port *port = it->port;
	u32 i;

	if (!it->locked || !port->registered)
		return false;
	lockdep_assert_held(&port->lock);
	for (i = from; i < port->max_conns; i++) {
		if (port->conns[i]) {
			it->rec = i + 1;
			return true;
		}
	}
	return false;
}

/* Enter port at its own record. dxn_ports_lock held. */
static void dxn_iter_enter(struct dxn_ports_iter *it, struct dxn_port *port)
{
	lockdep_assert_held(&dxn_ports_lock);
	it->port = port;
	it->locked = mutex_trylock(&port->lock);
	it->id = port->id;
	it->rec = 0;
}

/*
 * Go to the first record at or after key (id, rec). dxn_ports_lock held.
 * Return: true, or false past the end.
 */
static bool dxn_iter_seek(struct dxn_ports_iter *it, u64 id, u32 rec)
{
	struct dxn_port *port;

	lockdep_assert_held(&dxn_ports_lock);
	list_for_each_entry(port, &dxn_ports, all_node) {
		if (port->id < id)
			continue;
		dxn_iter_enter(it, port);
		if (port->id > id || !rec || !it->locked ||
		    dxn_iter_conn(it, rec - 1))
			return true;
		/* No connection left at or after rec: the next port. */
		dxn_iter_leave(it);
		rec = 0;
	}
	it->id = U64_MAX;	/* past the end: ids never get there */
	it->rec = 0;
	return false;
}

/* The record after the current one. dxn_ports_lock held. */
static bool dxn_iter_next(struct dxn_ports_iter *it)
{
	struct dxn_port *port = it->port;

	lockdep_assert_held(&dxn_ports_lock);
	if (!port)
		return false;
	/* rec is 0 or index + 1: the next index to look at. */
	if (dxn_iter_conn(it, it->rec))
		return true;
	dxn_iter_leave(it);
	if (list_is_last(&port->all_node, &dxn_ports)) {
		it->id = U64_MAX;	/* a later read resumes past the end */
		it->rec = 0;
		return false;
	}
	dxn_iter_enter(it, list_next_entry(port, all_node));
	return true;
}

/* seq_operations.start: takes dxn_ports_lock (killable). */
static void *dxn_ports_start(struct seq_file *m, loff_t *pos)
{
	struct dxn_ports_iter *it = m->private;
	bool more;
	loff_t i;
	int err;

	err = mutex_lock_killable(&dxn_ports_lock);
	if (err)
		return ERR_PTR(err);
	if (*pos && *pos == it->pos) {
		more = dxn_iter_seek(it, it->id, it->rec);
	} else {
		/* From the start (a first read, or an lseek elsewhere). */
		more = dxn_iter_seek(it, 0, 0);
		for (i = 0; more && i < *pos; i++)
			more = dxn_iter_next(it);
	}
	it->pos = *pos;
	return more ? it : NULL;
}

static void *dxn_ports_next(struct seq_file *m, void *v, loff_t *pos)
{
	struct dxn_ports_iter *it = m->private;
	bool more = dxn_iter_next(it);

	it->pos = ++*pos;
	return more ? it : NULL;
}

/* seq_operations.stop: drops what start and next took (not the key). */
static void dxn_ports_stop(struct seq_file *m, void *v)
{
	struct dxn_ports_iter *it = m->private;

	if (IS_ERR(v))
		return;		/* start failed: no lock held */
	dxn_iter_leave(it);
	mutex_unlock(&dxn_ports_lock);
}

/* Process context; dxn_ports_lock held by start. */
static int dxn_ports_show(struct seq_file *m, void *v)
{
	struct dxn_ports_iter *it = v;

	if (!it->locked)
		seq_printf(m, "port=%llu busy=1\n", it->port->id);
	else if (!it->rec)
		dxn_port_show(m, it->port);
	else
		dxn_conn_show(m, it->port, it->port->conns[it->rec - 1]);
	return 0;
}

static const struct seq_operations dxn_ports_sops = {
	.start = dxn_ports_start,
	.next = dxn_ports_next,
	.stop = dxn_ports_stop,
	.show = dxn_ports_show,
};

static int dxn_ports_open(struct inode *inode, struct file *file)
{
	return seq_open_private(file, &dxn_ports_sops,
				sizeof(struct dxn_ports_iter));
}

static const struct file_operations dxn_ports_fops = {
	.owner = THIS_MODULE,
	.open = dxn_ports_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = seq_release_private,
};

#if IS_ENABLED(CONFIG_DEBUG_FS)
static struct dentry *dxn_dbg_dir;

static void dxn_dbg_init(void)
{
	dxn_dbg_dir = debugfs_create_dir("daxnet", NULL);
	debugfs_create_file("ports", 0400, dxn_dbg_dir, NULL,
			    &dxn_ports_fops);
	dxn_debugfs_init(dxn_dbg_dir);
}

static void dxn_dbg_exit(void)
{
	debugfs_remove_recursive(dxn_dbg_dir);
}
#else
static void dxn_dbg_init(void)
{
}

static void dxn_dbg_exit(void)
{
}
#endif

static int __init dxn_init(void)
{
	int err = dxn_vnic_init();

	if (err)
		return err;
	err = dxn_zc_init();
	if (err)
		goto err_vnic;
	dxn_dbg_init();
	err = misc_register(&dxn_misc);
	if (err)
		goto err_debugfs;
	return 0;
err_debugfs:
	dxn_dbg_exit();
	dxn_zc_exit();
err_vnic:
	dxn_vnic_exit();
	return err;
}

static void __exit dxn_exit(void)
{
	misc_deregister(&dxn_misc);
	dxn_dbg_exit();
	dxn_zc_exit();
	dxn_vnic_exit();
}

module_init(dxn_init);
module_exit(dxn_exit);
MODULE_DESCRIPTION("daxnet: TCP sockets on shared rings over a DAX buffer pool");
MODULE_LICENSE("GPL");
