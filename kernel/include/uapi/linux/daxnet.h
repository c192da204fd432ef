/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * daxnet.h - the ring ABI shared by daxnet.ko and user space.
 *
 * daxnet attaches already connected TCP sockets to netmap-style shared rings.
 * One ioctl (DAXNET_IOC_SYNC) moves TX and RX for every connection attached
 * to a ring pair. Payload lives in buffers of a pool the application owns
 * (a file on a DAX file system in production); rings and slots name buffers
 * by index, never by address. docs/abi.md explains this header with
 * pictures; where the two disagree, this header wins.
 *
 * This file compiles as C (kernel and user) and as C++, and uses only the
 * fixed-width types of <linux/types.h>.
 *
 * =====================================================================
 * OBJECTS
 *
 *   port        one open file of /dev/daxnet. Holds one registered pool,
 *               N ring pairs and the connections attached to them. A port
 *               is meant to be used by one thread per ring pair; most
 *               applications open one port per thread with one ring pair.
 *   pool        the buffer area: buf_count buffers of buf_size bytes,
 *               contiguous in the caller's address space at pool_addr.
 *               Buffer i is at pool_addr + i * buf_size. Registered once
 *               per port (DAXNET_IOC_REGISTER); the kernel reaches it
 *               through the registering process's own mapping and pins
 *               it only in zero-copy mode.
 *   ring pair   one RX ring, one TX ring and one spare ring (below).
 *   connection  an attached TCP socket, named by a connection id (conn id)
 *               returned by DAXNET_IOC_ATTACH. A connection belongs to
 *               exactly one ring pair for its whole life.
 *   slot        one entry of an RX or TX ring: (conn, buffer, offset,
 *               length, flags). Several slots may name the same buffer
 *               (slices); a slice never crosses the end of its buffer.
 *
 * =====================================================================
 * REGION LAYOUT (mmap of the port fd, offset 0, length region_size)
 *
 *   base + 0                 struct daxnet_region            (k)
 *   base + pairs_ofs         struct daxnet_pair_desc[num_pairs] (k)
 *   base + pair.rx_ofs       struct daxnet_ring  (RX ring header)
 *   base + ring.slots_ofs    struct daxnet_slot[num_slots]
 *   base + pair.tx_ofs       struct daxnet_ring  (TX ring header)
 *   base + ring.slots_ofs    struct daxnet_slot[num_slots]
 *   base + pair.spare_ofs    struct daxnet_ring  (spare ring header)
 *   base + ring.slots_ofs    __u32 buf_idx[num_slots]
 *   base + conn_state_ofs    struct daxnet_conn_state[max_conns]
 *                            (only with DAXNET_REG_CONNSTATE)
 *
 * Every offset is in bytes from the start of the mapping. The region holds
 * no pointers. The pool is not part of the region: user space already maps
 * it (the pool file); the kernel learns its address at REGISTER time.
 * mmap must be MAP_SHARED, offset 0, length region_size (from REGISTER),
 * PROT_READ|PROT_WRITE; anything else fails with EINVAL.
 *
 * =====================================================================
 * WHO WRITES WHAT
 *
 * Each field is tagged (u) when only user space writes it, (k) when only
 * the kernel writes it, (u/k) when ownership moves with the ring indices.
 * Fields tagged (k) are declared const for user space (DAXNET_KCONST).
 * The kernel writes shared ring state only inside DAXNET_IOC_SYNC for that
 * ring pair (and REGISTER, which initialises it): no kernel write races
 * with the application between syncs. The kernel reads every user-written
 * index and slot field exactly once per sync and validates it against its
 * private copy; a corrupt ring index fails the sync with EINVAL (ring left
 * unchanged, counter bad_ring), a corrupt TX slot is returned with
 * DAXNET_SLOT_ERROR and err = EINVAL (counter bad_slot). A buffer index
 * handed over (spare entry, RX slot with BUF_CHANGED) that the kernel
 * already holds, or that appears twice in one sync, fails the sync with
 * EINVAL (nothing changed, counter bad_buf). Never an oops.
 *
 * =====================================================================
 * RING INDICES (exactly netmap's rules)
 *
 * A ring has num_slots slots and three indices in [0, num_slots):
 *   head (u)  first slot user space still owns;
 *   cur  (u)  wake-up point: poll() reports readiness for this ring only
 *             when there is something beyond cur (cur may run ahead of
 *             head, up to tail, to wait for more while holding slots);
 *   tail (k)  first slot the kernel owns.
 * User space owns the slots [head, tail) (mod num_slots); the kernel owns
 * [tail, head). One slot is always left empty, so the ring never holds
 * more than num_slots - 1 user slots. Helpers: daxnet_ring_next(),
 * daxnet_ring_space(). User space may only move head and cur forward,
 * within [old head, tail]; cur must lie in [head, tail].
 *
 * RX ring. [head, tail) are received slots ready to be processed. A sync
 * appends new slots at tail and moves tail forward. User space releases
 * slots by moving head (and cur) past them. Empty: head == tail. After
 * REGISTER: head = cur = tail = 0.
 *
 * TX ring. [head, tail) are free slots user space may fill. User space
 * fills the slot at head, then moves head (and cur) forward: that hands
 * the slots to the kernel. A sync consumes every handed-over slot and
 * returns it by moving tail forward, having written flags/err in it (see
 * TX slot results below). After REGISTER: head = cur = 0,
 * tail = num_slots - 1.
 *
 * Spare ring. Same rules as a TX ring, but each entry is a bare __u32
 * buffer index. User space writes indices of free pool buffers at head and
 * moves head forward: it gives the kernel those buffers to fill on RX.
 * The kernel may move entries into a private stock at any sync (moving
 * tail); it never holds more than (spare ring num_slots + RX ring
 * num_slots) spares per ring pair. After REGISTER: head = cur = 0,
 * tail = num_slots - 1.
 *
 * =====================================================================
 * RX SLOTS (written by the kernel before tail passes them)
 *
 * conn, buf_idx, offset, len, flags, err, user_data as below. Slots of one
 * connection appear in stream order and never interleave out of order with
 * each other; slots of different connections may interleave. Per
 * connection, in this order:
 *   NEW_CONN   once, first, right after DAXNET_IOC_ATTACH (no buffer);
 *   DATA       zero or more, bytes [offset, offset + len) of buf_idx are the
 *              next len bytes of the stream (len >= 1). A message larger
 *              than a buffer spans several slots; the kernel does not
 *              know message boundaries;
 *   EOF        once, when the peer closed its side (FIN) and every byte
 *              before it has been delivered (no buffer);
 *   ERROR      once, err = positive errno (ECONNRESET, ETIMEDOUT, ...):
 *              the connection failed; no DATA follows. EOF and ERROR are
 *              each reported at most once, and after ERROR nothing else
 *              is reported for the connection.
 * RELEASE slots (below) may appear anywhere; their conn is the connection
 * concerned or DAXNET_NO_CONN (user space must not rely on it) and their
 * offset and len are 0. Any other flag bit is zero.
 * A slot that names no buffer has buf_idx = DAXNET_NO_BUF, offset = len = 0.
 *
 * Backpressure. The kernel reads from a socket only into a spare buffer
 * and only while the RX ring has room; when either runs out it stops
 * reading that socket (the TCP receive window closes) and resumes at a
 * later sync. Bytes are never dropped. Counters rx_ring_full and
 * spare_empty count the stops.
 *
 * =====================================================================
 * TX SLOTS (written by user space before head passes them)
 *
 * conn   (u) the connection to send on;
 * buf_idx, offset, len (u) the bytes to send: [offset, offset + len) of
 *        buffer buf_idx, offset + len <= buf_size. Any pool buffer: a
 *        fresh one, a kept RX buffer, a slice of either;
 * flags  (u) DAXNET_SLOT_DATA to send the bytes (len >= 1), and/or
 *        DAXNET_SLOT_EOF to shut down the sending side (shutdown(SHUT_WR))
 *        after everything before it; a slot with EOF alone names no
 *        buffer. DAXNET_SLOT_BUF_CHANGED is accepted and ignored on TX
 *        (netmap habit: the kernel re-reads buf_idx every time anyway);
 * err    (u) must be zero;
 * user_data (u) opaque, preserved by the kernel in the returned slot.
 *
 * Slots of one connection are sent in ring order. A sync consumes every
 * handed-over TX slot, even when a socket's send buffer is full: bytes the
 * socket cannot take yet are queued inside the kernel per connection (and
 * hold their buffer, see BUF_HELD) and sent by later syncs in order. So a
 * slow peer never blocks other connections of the ring. User space bounds
 * the queue: it sees how many of its buffers the kernel holds.
 *
 * When results can be read: exactly netmap's rule, a TX slot is back in
 * user hands once tail has passed it. After a sync consumed everything,
 * tail = head - 1, so the last consumed slot stays kernel-owned (the one
 * empty slot) and its results are read after a later sync moves tail on.
 * User space therefore remembers which slots it handed over with a buffer
 * reference and settles them as tail passes them.
 *
 * TX slot results (k), written into the slot before tail passes it:
 *   flags keeps the user's bits and may gain DAXNET_SLOT_BUF_HELD and/or
 *   DAXNET_SLOT_ERROR; with ERROR, err = positive errno (EPIPE,
 *   ECONNRESET, ENOTCONN for an unknown or detached conn, EINVAL for a
 *   bad buffer range, EFAULT when the pool is no longer mapped, ENOBUFS
 *   when the slot would raise the RELEASE debt - the pair's queued TX
 *   ranges and unpublished RELEASEs plus the RELEASEs the port's
 *   zero-copy batches owe - to 65536, ...) and the bytes were not (all) sent. After a slot refused
 *   with ENOBUFS (the connection is not failed), every later DATA or EOF
 *   slot of the same connection in that sync is refused with ENOBUFS
 *   too: no byte after the refused one reaches the peer; resend from the
 *   first refused slot, in order.
 *
 * =====================================================================
 * BUFFER OWNERSHIP AND RELEASE RULE (per-buffer reference counts)
 *
 * The application owns every buffer of the pool. A buffer is free (may go
 * back to the application's allocator, be reused for anything) exactly
 * when BOTH counts below are zero:
 *
 *   U(b)  user references: the number of RX slots naming b that user space
 *         has not released yet, plus every reference the application keeps
 *         itself (kept slices, WAL/index references, TX slots it is still
 *         filling). Maintained by user space only.
 *   K(b)  kernel references, mirrored by user space from the ring events:
 *         +1  for every entry b user space puts on the spare ring;
 *         +1  for every TX slot naming b that user space hands over;
 *         +1  for every released RX slot with DAXNET_SLOT_BUF_CHANGED
 *             (its buf_idx, a buffer swapped in by user space, becomes a
 *             spare);
 *         -1  for every slot the kernel gives back naming b (an RX slot it
 *             publishes, a TX slot tail passes) WITHOUT
 *             DAXNET_SLOT_BUF_HELD;
 *          0  for such a slot WITH DAXNET_SLOT_BUF_HELD: the kernel keeps
 *             its reference (it will write more bytes of the same
 *             connection into the buffer and publish further slices of it,
 *             or TCP still needs the bytes, e.g. zero-copy TX until ACK);
 *         -1  for every RELEASE slot naming b.
 * So an RX buffer the kernel packs k slices into is published as k slots:
 * the first k-1 carry BUF_HELD, the last does not (or a RELEASE follows
 * later). The kernel never writes into a buffer it holds no reference to,
 * and never writes into bytes it has published. The kernel never sets
 * BUF_HELD on an RX slot that is not DATA, and never holds a reference
 * across DETACH of the connection that took it (except TX bytes still in
 * flight in TCP, released by RELEASE slots later). Closing the port fd
 * (after TCP is done with zero-copy pages) drops every kernel reference.
 *
 * Keeping an RX buffer: simply do not count the slot's reference as
 * dropped (U stays > 0), or, netmap style, swap: write a spare buffer's
 * index into the RX slot, set DAXNET_SLOT_BUF_CHANGED, then release the
 * slot; the kernel takes the swapped-in buffer as a spare (K + 1).
 *
 * =====================================================================
 * VERSIONING
 *
 * DAXNET_API is bumped for every incompatible change; additions keep the
 * number and are marked "Added in DAXNET_API n". REGISTER fails with
 * EPROTO when api_version is not one the kernel speaks; the kernel's
 * number is in daxnet_region.api_version. Every field named reserved* or
 * documented as "must be zero" must be zero when user space writes it
 * (else EINVAL), and reads as zero from the kernel, so it can gain a
 * meaning later. Flag bits not defined here are must-be-zero.
 */
#ifndef _UAPI_LINUX_DAXNET_H
#define _UAPI_LINUX_DAXNET_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define DAXNET_API		1
#define DAXNET_DEVICE		"/dev/daxnet"

#if defined(__KERNEL__)
#define DAXNET_KCONST
#else
#define DAXNET_KCONST const
#endif

#define DAXNET_NO_BUF		0xffffffffu	/* slot names no buffer */
#define DAXNET_NO_CONN		0xffffffffu	/* RELEASE slot of no connection */
#define DAXNET_RING_ALL		0xffffffffu	/* sync: every ring pair */

/*
 * Connection ids. Opaque to user space except: the low 20 bits are a dense
 * index (< max_conns) usable for tables; the high 12 bits are a generation
 * that changes each time the index is reused, so stale slots of a detached
 * connection never match a new one.
 */
#define DAXNET_CONN_INDEX_BITS	20
#define DAXNET_CONN_INDEX(id)	((id) & ((1u << DAXNET_CONN_INDEX_BITS) - 1))

/* Limits. */
#define DAXNET_MAX_PAIRS	64
#define DAXNET_MIN_SLOTS	4
#define DAXNET_MAX_SLOTS	32768
#define DAXNET_MIN_BUF_SIZE	512
#define DAXNET_MAX_BUF_SIZE	65536
#define DAXNET_MAX_CONNS	(1u << DAXNET_CONN_INDEX_BITS)

/* ----------------------------------------------------------------- slots */

/* Slot flags. (k) on RX slots, (u) on TX slots unless noted. */
#define DAXNET_SLOT_DATA	0x0001	/* [offset, offset+len) of buf_idx is stream data */
#define DAXNET_SLOT_EOF		0x0002	/* RX: peer closed; TX: shutdown(SHUT_WR) after data */
#define DAXNET_SLOT_ERROR	0x0004	/* (k) failed; err = positive errno */
#define DAXNET_SLOT_NEW_CONN	0x0008	/* (k) RX: first slot of a newly attached conn */
#define DAXNET_SLOT_BUF_HELD	0x0010	/* (k) kernel keeps its reference to buf_idx */
#define DAXNET_SLOT_RELEASE	0x0020	/* (k) RX: drops one kernel reference to buf_idx */
#define DAXNET_SLOT_BUF_CHANGED	0x0100	/* (u) user swapped buf_idx (see release rule) */

struct daxnet_slot {
	__u32 conn;		/* (u/k) connection id */
	__u32 buf_idx;		/* (u/k) pool buffer index or DAXNET_NO_BUF */
	__u32 offset;		/* (u/k) first byte within the buffer */
	__u32 len;		/* (u/k) bytes; offset + len <= buf_size */
	__u16 flags;		/* (u/k) DAXNET_SLOT_* */
	__u16 err;		/* (k) positive errno with DAXNET_SLOT_ERROR, else 0 */
	__u32 reserved;		/* must be zero */
	__u64 user_data;	/* RX (k): the attach cookie of conn;
				 * TX (u): opaque, preserved by the kernel */
};

/* ----------------------------------------------------------------- rings */

#define DAXNET_RING_RX		1
#define DAXNET_RING_TX		2
#define DAXNET_RING_SPARE	3

struct daxnet_ring {
	__u32 head;			/* (u) first slot user space owns */
	__u32 cur;			/* (u) wake-up point, head <= cur <= tail */
	DAXNET_KCONST __u32 tail;	/* (k) first slot the kernel owns */
	DAXNET_KCONST __u32 num_slots;	/* (k) ring size */
	DAXNET_KCONST __u32 kind;	/* (k) DAXNET_RING_RX/TX/SPARE */
	DAXNET_KCONST __u32 pair;	/* (k) index of the ring pair */
	DAXNET_KCONST __u32 slot_size;	/* (k) sizeof(struct daxnet_slot), 4 for spare */
	__u32 flags;			/* (u) must be zero in API 1 */
	DAXNET_KCONST __u64 slots_ofs;	/* (k) slot array, from the mapping base */
	__u64 reserved[3];		/* must be zero */
};

/* One ring pair's rings, offsets from the mapping base. */
struct daxnet_pair_desc {
	__u64 rx_ofs;		/* (k) struct daxnet_ring of the RX ring */
	__u64 tx_ofs;		/* (k) struct daxnet_ring of the TX ring */
	__u64 spare_ofs;	/* (k) struct daxnet_ring of the spare ring */
	__u64 reserved;		/* zero */
};

/* At offset 0 of the mapping; all fields (k), read-only for user space. */
#define DAXNET_REGION_MAGIC	0x4e584144u	/* "DAXN" little-endian */

struct daxnet_region {
	__u32 magic;		/* DAXNET_REGION_MAGIC */
	__u32 api_version;	/* DAXNET_API of the kernel */
	__u64 region_size;	/* bytes of the mapping */
	__u32 num_pairs;
	__u32 rx_slots;		/* slots per RX ring */
	__u32 tx_slots;		/* slots per TX ring */
	__u32 spare_slots;	/* entries per spare ring */
	__u32 buf_size;		/* pool buffer size in bytes */
	__u32 buf_count;	/* pool buffers */
	__u32 max_conns;	/* connections per port */
	__u32 flags;		/* DAXNET_REG_* in effect */
	__u64 pairs_ofs;	/* struct daxnet_pair_desc[num_pairs] */
	__u64 conn_state_ofs;	/* struct daxnet_conn_state[max_conns] with
				 * DAXNET_REG_CONNSTATE, else 0 (Added in
				 * DAXNET_API 1, from reserved[0]) */
	__u64 reserved[8];	/* zero */
};

/*
 * Per-connection state table (DAXNET_REG_CONNSTATE, added in DAXNET_API 1).
 * One entry per connection index: entry DAXNET_CONN_INDEX(id) belongs to
 * connection id while it is attached. The kernel writes the (k) fields
 * only inside ATTACH, DETACH and SYNC of the connection's ring pair (like
 * the rings): between syncs they do not change, and they describe the
 * connection as of the end of the last sync of its pair.
 *
 * conn        (k) the attached connection's id; DAXNET_NO_CONN when the
 *             index is free. An entry whose conn is not the id user space
 *             asks about says nothing about that connection.
 * tx_slots    (k) TX slots of conn the kernel has consumed but whose bytes
 *             the socket has not taken yet (queued, BUF_HELD), plus a
 *             queued shutdown (EOF slot); tx_bytes their payload bytes.
 *             These hold pool buffers on behalf of a peer that does not
 *             read.
 * tx_unacked  (k) bytes TCP has taken and the peer has not acknowledged
 *             (write_seq - snd_una, a FIN counts one). In zero-copy mode
 *             these pin pool buffers until the ACK; in copy mode they are
 *             in socket memory.
 * rx_bytes    (k) stream bytes published (DATA slots) since ATTACH.
 * rx_pending  (k) bytes TCP has received for conn and not yet published.
 * rx_paused   (k) RX phases that stopped at rx_limit (counts up).
 * rx_limit    (u) the stream position (in rx_bytes) up to which the kernel
 *             may publish; 0 = no limit (ATTACH sets 0). Read once per RX
 *             phase of the connection; a value at or below rx_bytes (also
 *             one lowered below it) pauses RX: the bytes stay in the
 *             socket (its window closes) and are published once user
 *             space raises the limit and syncs (raising it wakes nobody:
 *             sync after writing it). EOF and ERROR follow the last byte
 *             as usual, so a paused connection reports them only once its
 *             bytes are published.
 */
struct daxnet_conn_state {
	DAXNET_KCONST __u32 conn;	/* (k) */
	DAXNET_KCONST __u32 tx_slots;	/* (k) */
	DAXNET_KCONST __u64 tx_bytes;	/* (k) */
	DAXNET_KCONST __u64 tx_unacked;	/* (k) */
	DAXNET_KCONST __u64 rx_bytes;	/* (k) */
	DAXNET_KCONST __u64 rx_pending;	/* (k) */
	DAXNET_KCONST __u64 rx_paused;	/* (k) */
	__u64 rx_limit;			/* (u) */
	DAXNET_KCONST __u64 reserved;	/* (k) zero */
};

/* ---------------------------------------------------------------- ioctls */

#define DAXNET_IOC_MAGIC	0xDA

/*
 * DAXNET_IOC_REGISTER: register the pool and create the rings. Once per
 * port (EBUSY after). In: everything but region_size. Out: region_size.
 * EPROTO: api_version unknown. EINVAL: geometry out of range, pool_addr
 * not page aligned, pool_len != buf_size * buf_count, a reserved field or
 * flag non-zero, buf_count above 4 Mi, the pool mapped VM_IO/VM_PFNMAP/
 * VM_MIXEDMAP (device memory, driver-inserted pages), or, with DAXNET_REG_ZEROCOPY, mapped MAP_PRIVATE or spanning more than
 * one file (copy mode accepts any writable memory). EFAULT: part of the
 * pool range is not mapped. EACCES: the pool mapping is not writable.
 * E2BIG: the rings and per-pair/per-connection arrays would take more
 * than 64 MiB of kernel memory. EPERM: DAXNET_REG_ZEROCOPY without
 * CAP_NET_ADMIN. EOPNOTSUPP: DAXNET_REG_ZEROCOPY over a file, page cache
 * or a DAX file system (zero-copy pins long term: device DAX, shared
 * memory, hugetlbfs only).
 * ENOMEM: out of memory, or the zero-copy pin exceeds RLIMIT_MEMLOCK.
 * EINTR: killed while waiting for the mmap lock.
 * After it, mmap(NULL, region_size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0).
 *
 * Owner. The process that registered a port owns it: every other ioctl
 * and mmap of the port fail with EPERM in any other process (an fd passed
 * or inherited); poll() and close() work anywhere.
 */
#define DAXNET_REG_ZEROCOPY	0x0001	/* prefer zero-copy RX/TX when possible */
/*
 * DAXNET_REG_CONNSTATE (added in DAXNET_API 1): the region also holds a
 * struct daxnet_conn_state per connection index at conn_state_ofs, and the
 * flag is set in daxnet_region.flags. A kernel without it refuses the flag
 * with EINVAL (it was must-be-zero): user space may retry without it.
 */
#define DAXNET_REG_CONNSTATE	0x0002

struct daxnet_register {
	__u32 api_version;	/* in: DAXNET_API */
	__u32 flags;		/* in: DAXNET_REG_* */
	__u64 pool_addr;	/* in: user address of buffer 0, page aligned */
	__u64 pool_len;		/* in: buf_size * buf_count */
	__u32 buf_size;		/* in: power of two, 512..65536 */
	__u32 buf_count;	/* in: >= 1 */
	__u32 num_pairs;	/* in: 1..DAXNET_MAX_PAIRS */
	__u32 rx_slots;		/* in: DAXNET_MIN_SLOTS..DAXNET_MAX_SLOTS */
	__u32 tx_slots;		/* in: same range */
	__u32 spare_slots;	/* in: same range */
	__u32 max_conns;	/* in: 1..DAXNET_MAX_CONNS, 0 = 1024 */
	__u32 reserved0;	/* must be zero */
	__u64 region_size;	/* out: length to mmap */
	__u64 reserved[4];	/* must be zero */
};

/*
 * DAXNET_IOC_ATTACH: attach a connected TCP socket (by fd in the caller's
 * fd table) to ring pair `pair`. The kernel holds its own reference to the
 * socket's file until DETACH or port close, so closing fd meanwhile is
 * harmless. Out: conn. A NEW_CONN slot for it appears at the next sync.
 * EBADF: fd invalid. ENOTSOCK: not a socket. EPROTONOSUPPORT: not TCP.
 * ENOTCONN: not connected (listening, closed, connecting). EBUSY: socket
 * already attached (to this or any port) or owned by another user of
 * sk_user_data / a ULP. ENOSPC: max_conns reached. EINVAL: pair out of
 * range, flags/reserved non-zero, not registered. EFAULT: the argument
 * cannot be read or written back (nothing is attached). conn is written
 * only when the ATTACH succeeds: a refused ATTACH leaves the argument as
 * it was.
 */
struct daxnet_attach {
	__s32 fd;		/* in */
	__u32 pair;		/* in: ring pair index */
	__u64 cookie;		/* in: echoed in user_data of this conn's RX slots */
	__u32 flags;		/* in: must be zero */
	__u32 conn;		/* out: connection id */
	__u64 reserved[2];	/* must be zero */
};

/*
 * DAXNET_IOC_DETACH: give the socket back to its normal state. No slot of
 * conn appears after it (slots already published stay valid). Received
 * bytes not yet published stay in the socket. ENOENT: conn not attached.
 * EBUSY: TX bytes of conn are still queued in the kernel (sync and retry),
 * unless DAXNET_DETACH_DISCARD, which drops them (counter tx_discarded).
 * ENOMEM: no room for the RELEASE slots it would owe (nothing changed;
 * counter rel_nomem).
 */
#define DAXNET_DETACH_DISCARD	0x0001

struct daxnet_detach {
	__u32 conn;		/* in */
	__u32 flags;		/* in: DAXNET_DETACH_* */
	__u64 reserved[2];	/* must be zero */
};

/*
 * DAXNET_IOC_SYNC: for ring pair `pair` (or all with DAXNET_RING_ALL): TX
 * (consume [hwcur, head) of the TX ring, send, return slots), spare ring
 * intake, RX (release [old head, head), publish new slots at tail) - for
 * every connection of the pair, in one call. Never waits for the network
 * (it may sleep on the port mutex, a socket lock, a page fault on the
 * pool or an allocation, as any syscall); wait with
 * poll()/epoll on the port fd. flags 0 = TX then RX.
 * EINVAL: corrupt ring index (the pair is left unchanged) or bad argument.
 * ENOMEM: no room for the RELEASE slots the sync could owe (the pair is
 * left unchanged; counter rel_nomem). EPERM: not the registering process.
 * With DAXNET_RING_ALL every pair is synced even if one fails; the errno
 * is that of the first pair that failed.
 *
 * poll(): EPOLLIN when a sync would publish RX slots beyond cur of some
 * RX ring (data, events, releases pending) or consume TX slots handed
 * over (head moved) that no sync took yet, EPOLLOUT when a TX ring has
 * free slots beyond cur and its pair is below the ENOBUFS limit (a slot
 * the socket cannot take yet is queued, not refused); a socket's own
 * write space is not part of EPOLLOUT: when it comes back for queued
 * bytes, EPOLLIN says a sync moves them on. poll() itself moves nothing:
 * only a sync takes a pair below the ENOBUFS limit (and wakes EPOLLOUT
 * waiters), so wait for EPOLLIN | EPOLLOUT, not EPOLLOUT alone.
 * Releases owed while the RX ring is full count once user space
 * released RX slots. After a
 * sync of a pair failed with ENOMEM, poll() reports no EPOLLIN for that
 * pair for 100 ms, then wakes the poller to retry (no busy loop while
 * memory is short).
 */
#define DAXNET_SYNC_TX		0x0001	/* only TX (and spare intake) */
#define DAXNET_SYNC_RX		0x0002	/* only RX (and spare intake) */

struct daxnet_sync {
	__u32 pair;		/* in: ring pair or DAXNET_RING_ALL */
	__u32 flags;		/* in: DAXNET_SYNC_*, 0 = both */
	__u64 reserved[2];	/* must be zero */
};

/*
 * DAXNET_IOC_COUNTERS: snapshot of the kernel counters of ring pair `pair`
 * (or the sum over all with DAXNET_RING_ALL). All counters count up from
 * REGISTER and never reset.
 */
struct daxnet_counters {
	__u64 syncs;		/* DAXNET_IOC_SYNC calls that touched the pair */
	__u64 rx_slots;		/* RX slots published (all kinds) */
	__u64 rx_bytes;		/* payload bytes published */
	__u64 rx_copied;	/* of those, bytes the CPU copied */
	__u64 tx_slots;		/* TX slots consumed */
	__u64 tx_bytes;		/* payload bytes handed to TCP */
	__u64 tx_copied;	/* of those, bytes the CPU copied */
	__u64 rx_ring_full;	/* reads stopped: RX ring full */
	__u64 spare_empty;	/* reads stopped: no spare buffer */
	__u64 bad_ring;		/* syncs failed on a corrupt ring index */
	__u64 bad_slot;		/* TX slots rejected with EINVAL */
	__u64 tx_discarded;	/* queued TX bytes dropped by DETACH_DISCARD */
	__u64 conns;		/* connections attached now */
	__u64 tx_held;		/* TX slots returned with BUF_HELD (Added in DAXNET_API 1) */
	__u64 releases;		/* RELEASE slots published (Added in DAXNET_API 1) */
	/* Zero-copy mode (DAXNET_REG_ZEROCOPY), added in DAXNET_API 1: */
	__u64 rx_zc_bytes;	/* RX bytes published in place (not copied) */
	__u64 rx_copy_head;	/* RX bytes copied: TCP left them in a linear head */
	__u64 rx_copy_other;	/* RX bytes copied: not in a pool buffer */
	__u64 tx_zc_bytes;	/* TX bytes handed to TCP by reference */
	__u64 tx_zc_batches;	/* zero-copy TX batches completed */
	__u64 tx_zc_copied;	/* of those, batches the stack copied anyway */
	__u64 tx_zc_early;	/* batches completed before their last byte was
				 * ACKed (must stay 0) */
	__u64 bad_buf;		/* syncs failed: a spare or swapped-in index was
				 * held by the kernel or given twice (Added in
				 * DAXNET_API 1, from reserved[0]) */
	__u64 rel_nomem;	/* syncs/detaches failed with ENOMEM (nothing
				 * changed): the RELEASE queue could not grow
				 * (Added in DAXNET_API 1, from reserved[0]) */
	__u64 rel_deferred;	/* zero-copy RELEASEs kept for a later sync
				 * (the buffer stays held, nothing fails): the
				 * RELEASE queue could not grow (Added in
				 * DAXNET_API 1, from reserved[0]) */
	__u64 rx_paused;	/* RX phases of a connection that stopped at
				 * its rx_limit (DAXNET_REG_CONNSTATE; Added
				 * in DAXNET_API 1, from reserved[0]) */
	__u64 tx_zc_limited;	/* zero-copy-eligible TX send attempts made
				 * by copy because the RELEASE debt (the
				 * pair's queued TX ranges and unpublished
				 * RELEASEs plus the RELEASEs the port's
				 * zero-copy batches owe) reached 65536
				 * (Added in DAXNET_API 1, from reserved[0]) */
	__u64 reserved[5];	/* zero */
};

/*
 * DAXNET_COUNTERS_CONN (added in DAXNET_API 1): `pair` holds a connection
 * id instead; the answer is that connection's byte counters since attach
 * (rx_bytes, rx_copied, rx_zc_bytes, rx_copy_head, rx_copy_other, tx_bytes,
 * tx_copied, tx_zc_bytes, rx_paused; every other field zero). ENOENT: not attached.
 */
#define DAXNET_COUNTERS_CONN	0x0001

struct daxnet_counters_arg {
	__u32 pair;		/* in: ring pair or DAXNET_RING_ALL (or conn) */
	__u32 flags;		/* in: 0 or DAXNET_COUNTERS_CONN */
	struct daxnet_counters c;	/* out */
};

#define DAXNET_IOC_REGISTER	_IOWR(DAXNET_IOC_MAGIC, 0x01, struct daxnet_register)
#define DAXNET_IOC_ATTACH	_IOWR(DAXNET_IOC_MAGIC, 0x02, struct daxnet_attach)
#define DAXNET_IOC_DETACH	_IOW(DAXNET_IOC_MAGIC, 0x03, struct daxnet_detach)
#define DAXNET_IOC_SYNC		_IOW(DAXNET_IOC_MAGIC, 0x04, struct daxnet_sync)
#define DAXNET_IOC_COUNTERS	_IOWR(DAXNET_IOC_MAGIC, 0x05, struct daxnet_counters_arg)

/* ------------------------------------------------ helpers (both sides) */

/* Next index after i in a ring of n slots. */
static inline __u32 daxnet_ring_next(__u32 i, __u32 n)
{
	return i + 1 == n ? 0 : i + 1;
}

/* Slots in [head, tail): RX: received slots; TX/spare: free slots. */
static inline __u32 daxnet_ring_space(__u32 head, __u32 tail, __u32 n)
{
	return tail >= head ? tail - head : tail + n - head;
}

/* ----------------------------------------------------- layout checks */

#ifdef __cplusplus
#define DAXNET_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define DAXNET_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

DAXNET_STATIC_ASSERT(sizeof(struct daxnet_slot) == 32, "daxnet_slot is 32 bytes");
DAXNET_STATIC_ASSERT(__builtin_offsetof(struct daxnet_slot, flags) == 16, "slot.flags at 16");
DAXNET_STATIC_ASSERT(__builtin_offsetof(struct daxnet_slot, user_data) == 24, "slot.user_data at 24");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_ring) == 64, "daxnet_ring is one cache line");
DAXNET_STATIC_ASSERT(__builtin_offsetof(struct daxnet_ring, slots_ofs) == 32, "ring.slots_ofs at 32");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_pair_desc) == 32, "daxnet_pair_desc is 32 bytes");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_region) == 128, "daxnet_region is 128 bytes");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_conn_state) == 64, "daxnet_conn_state is one cache line");
DAXNET_STATIC_ASSERT(__builtin_offsetof(struct daxnet_conn_state, rx_limit) == 48,
		     "conn_state.rx_limit at 48");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_register) == 96, "daxnet_register is 96 bytes");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_attach) == 40, "daxnet_attach is 40 bytes");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_detach) == 24, "daxnet_detach is 24 bytes");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_sync) == 24, "daxnet_sync is 24 bytes");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_counters) == 256, "daxnet_counters is 256 bytes");
DAXNET_STATIC_ASSERT(sizeof(struct daxnet_counters_arg) == 264, "daxnet_counters_arg is 264 bytes");

#endif /* _UAPI_LINUX_DAXNET_H */
