// SPDX-License-Identifier: GPL-2.0
/*
 * The user's buffer pool.
 *
 * The pool is the owner's own mapping of the pool file (or shared memory):
 * buffer i is at pool_addr + i * buf_size in the address space of the
 * process that registered the port.
 *
 * Copy mode pins nothing and keeps no kernel mapping: the sync (process
 * context, the owner's mm, see dxn_port_owner()) moves bytes through that
 * mapping exactly as recvmsg()/sendmsg() do (ITER_UBUF), faulting pages in
 * as needed. So the file system keeps full control of its pages: truncate,
 * hole punching and reflink of the pool file behave as with any mapping,
 * no page-cache page is written behind the file system's back, and a
 * poisoned pmem line hit by the copy is a recoverable uaccess machine check
 * (-EFAULT, SIGBUS to the owner), never a kernel one.
 *
 * Zero-copy mode (daxnet_zc.c) hands pool pages to the network stack and
 * needs them pinned for the life of the port: dxn_pool_pin() takes
 * FOLL_LONGTERM pins, charged to locked_vm, of memory mm allows to be
 * pinned long term - shared memory, hugetlbfs, device DAX - and refuses
 * file pools, DAX file systems included (docs/kernel.md, "The pool").
 *
 * dxn_pool_check() decides what the pool is from every VMA covering it;
 * dxn_pool_pin() decides again under the mmap_lock it pins with.
 */
#include <linux/mm.h>
#include <linux/fs.h>
#include <linux/hugetlb_inline.h>
#include <linux/shmem_fs.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/bvec.h>

#include "daxnet_priv.h"
#include "daxnet_compat.h"

/* The port mutex that protects @pool (pools are embedded in ports). */
static struct mutex *dxn_pool_lock(struct dxn_pool *pool)
{
	return &container_of(pool, struct dxn_port, pool)->lock;
}

/*
 * What one MAP_SHARED file VMA of the pool is. Shared memory is a file
 * whose mapping is shmem's (tmpfs, memfd, shared anonymous memory): not
 * the file system's magic, which devtmpfs shares, so a character device
 * node in /dev is not taken for shared memory.
 */
static enum dxn_mem dxn_vma_mem(struct vm_area_struct *vma)
{
	if (vma_is_dax(vma))
		return vma_is_fsdax(vma) ? DXN_MEM_FSDAX : DXN_MEM_DEVDAX;
	if (shmem_file(vma->vm_file))
		return DXN_MEM_SHMEM;
	if (is_vm_hugetlb_page(vma))
		return DXN_MEM_HUGETLB;
	return DXN_MEM_FILE;
}

/*
 * Walk every VMA of [addr, end) of mm and say what the pool is (*mem).
 * Driver mappings (VM_IO, VM_PFNMAP, VM_MIXEDMAP: device memory, or pages
 * a driver inserted) are no pool. mmap_lock held (read).
 * Return: 0, -EFAULT (a hole), -EINVAL (a driver mapping), -EACCES.
 */
static int dxn_pool_walk(struct mm_struct *mm, u64 addr, u64 end,
			 enum dxn_mem *mem)
{
	struct vm_area_struct *vma;
	bool private = false, mixed = false;
	struct file *file = NULL;
	u64 pos = addr;

	mmap_assert_locked(mm);
	while (pos < end) {
		vma = find_vma(mm, pos);
		if (!vma || vma->vm_start > pos)
			return -EFAULT;
		if (vma->vm_flags & (VM_IO | VM_PFNMAP | VM_MIXEDMAP))
			return -EINVAL;
		if (!(vma->vm_flags & VM_WRITE))
			return -EACCES;
		if (!(vma->vm_flags & VM_SHARED) || !vma->vm_file)
			private = true;
		else if (file && vma->vm_file != file)
			mixed = true;
		file = vma->vm_file;
		pos = vma->vm_end;
	}
	if (private)
		*mem = DXN_MEM_PRIVATE;
	else if (mixed)
		*mem = DXN_MEM_MIXED;
	else
		*mem = dxn_vma_mem(find_vma(mm, addr));
	return 0;
}

/* Record what the pool is. */
static void dxn_pool_set_mem(struct dxn_pool *pool, enum dxn_mem mem)
{
	pool->mem = mem;
	pool->dax = mem == DXN_MEM_FSDAX || mem == DXN_MEM_DEVDAX;
}

/**
 * dxn_pool_check - check and record the user range that is the pool
 * @pool: pool with buf_size and buf_count set
 * @addr: page-aligned user address of buffer 0
 * @len: pool length in bytes
 *
 * Every VMA covering [addr, addr + len) of the caller's mm must exist and
 * be writable, and none may be a driver mapping (VM_IO, VM_PFNMAP,
 * VM_MIXEDMAP): copy mode moves bytes through this mapping as recvmsg()
 * would, so any other memory will do (heap, MAP_PRIVATE, several files).
 * What the memory is (pool->mem) is decided from every VMA: one kind only
 * when every VMA is a MAP_SHARED mapping of one and the same file (shared
 * anonymous memory is a shmem file); zero-copy (dxn_pool_pin()) accepts
 * nothing else, and decides again under the lock it pins with.
 *
 * Process context (REGISTER), port->lock held; takes mmap_read_lock.
 *
 * Return: 0, -EINVAL (too large, a driver mapping), -EFAULT (part of the
 * range is not mapped), -EACCES (not writable), -EINTR (killed while
 * waiting for mmap_lock).
 */
int dxn_pool_check(struct dxn_pool *pool, u64 addr, u64 len)
{
	struct mm_struct *mm = current->mm;
	enum dxn_mem mem;
	u64 end;
	int ret;

	lockdep_assert_held(dxn_pool_lock(pool));
	if (!len || len > ((u64)DXN_MAX_POOL_PAGES << PAGE_SHIFT) ||
	    check_add_overflow(addr, len, &end) ||
	    !access_ok(u64_to_user_ptr(addr), len))
		return -EINVAL;
	/* A writer (another thread's mmap) can make this wait: killable. */
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	ret = dxn_pool_walk(mm, addr, end, &mem);
	mmap_read_unlock(mm);
	if (ret)
		return ret;
	dxn_pool_set_mem(pool, mem);
	pool->addr = addr;
	pool->len = len;
	return 0;
}

/*
 * May zero-copy pin pool memory of this kind long term? 0, or -EINVAL /
 * -EOPNOTSUPP with a message naming what is accepted.
 */
static int dxn_pool_pinnable(enum dxn_mem mem)
{
	switch (mem) {
	case DXN_MEM_SHMEM:
	case DXN_MEM_HUGETLB:
	case DXN_MEM_DEVDAX:
		return 0;
	case DXN_MEM_PRIVATE:
	case DXN_MEM_MIXED:
		pr_info_ratelimited("daxnet: zero-copy needs the pool MAP_SHARED from one file or shared memory object\n");
		return -EINVAL;
	case DXN_MEM_FSDAX:
		pr_info_ratelimited("daxnet: zero-copy needs a pool in device DAX (/dev/daxX.Y), shared memory or hugetlbfs, not a file on a DAX file system\n");
		return -EOPNOTSUPP;
	default:
		pr_info_ratelimited("daxnet: zero-copy needs a pool in device DAX (/dev/daxX.Y), shared memory or hugetlbfs, not a page-cache file\n");
		return -EOPNOTSUPP;
	}
}

/*
 * Pin nr pages from addr into pages[]; returns pages pinned or -errno.
 * mmap_lock held (read) throughout, so the VMAs the caller checked are
 * the ones pinned: pin_user_pages() never drops it.
 */
static long dxn_pin_range(struct mm_struct *mm, u64 addr, unsigned long nr,
			  unsigned int flags, struct page **pages)
{
	unsigned long done = 0;
	long ret;

	mmap_assert_locked(mm);
	while (done < nr) {
		ret = dxn_pin_user_pages(addr + (done << PAGE_SHIFT),
					 min_t(unsigned long, nr - done, 512),
					 flags, pages + done);
		if (ret <= 0) {
			if (done)
				unpin_user_pages(pages, done);
			return ret ? ret : -EFAULT;
		}
		done += ret;
		cond_resched();
	}
	return done;
}

/**
 * dxn_pool_pin - pin a checked pool for zero-copy mode
 * @pool: a pool dxn_pool_check() accepted
 *
 * Process context (REGISTER ioctl), port->lock held. Charges the pages to
 * the caller's locked_vm (RLIMIT_MEMLOCK unless CAP_IPC_LOCK).
 *
 * The pins are FOLL_LONGTERM and held for the life of the port, so only
 * memory mm allows to be pinned long term and that no file system writes
 * back or reallocates behind us is accepted: shared memory, hugetlbfs and
 * device DAX, mapped MAP_SHARED from one file. A page-cache file and a
 * file on a DAX file system are refused: the file system owns their
 * blocks (truncate, hole punching, reflink would wait on the pins or
 * write to blocks it freed), and 6.1 refuses FOLL_LONGTERM on fsdax.
 *
 * The kind is decided again, under the same mmap_read_lock as the pin:
 * between dxn_pool_check() and here another thread may have mapped
 * something else at the pool's address, and what is pinned must be what
 * was judged.
 *
 * Return: 0, -EINVAL (MAP_PRIVATE or mixed mappings, a driver mapping),
 * -EOPNOTSUPP (memory that may not be pinned long term), -ENOMEM,
 * -EFAULT, -EACCES, -EPERM/-ENOMEM from the locked_vm charge, -EINTR
 * (killed while waiting for mmap_lock), or the pin's error.
 */
int dxn_pool_pin(struct dxn_pool *pool)
{
	unsigned long nr = DIV_ROUND_UP_ULL(pool->len, PAGE_SIZE);
	struct mm_struct *mm = current->mm;
	struct page **pages;
	enum dxn_mem mem;
	long ret;

	lockdep_assert_held(dxn_pool_lock(pool));
	ret = dxn_pool_pinnable(pool->mem);
	if (ret)
		return ret;
	pages = kvcalloc(nr, sizeof(*pages), GFP_KERNEL_ACCOUNT);
	if (!pages)
		return -ENOMEM;

	/* account_locked_vm(), with a wait a kill can end. */
	if (mmap_write_lock_killable(mm)) {
		ret = -EINTR;
		goto out_free;
	}
	ret = __account_locked_vm(mm, nr, true, current,
				  capable(CAP_IPC_LOCK));
	mmap_write_unlock(mm);
	if (ret)
		goto out_free;

	if (mmap_read_lock_killable(mm)) {
		ret = -EINTR;
		goto out_unaccount;
	}
	ret = dxn_pool_walk(mm, pool->addr, pool->addr + pool->len, &mem);
	if (!ret)
		ret = dxn_pool_pinnable(mem);
	if (!ret)
		ret = dxn_pin_range(mm, pool->addr, nr,
				    FOLL_WRITE | FOLL_LONGTERM, pages);
	mmap_read_unlock(mm);
	if (ret < 0)
		goto out_unaccount;

	dxn_pool_set_mem(pool, mem);
	mmgrab(mm);
	pool->mm = mm;
	pool->pages = pages;
	pool->npages = nr;
	return 0;

out_unaccount:
	account_locked_vm(mm, nr, false);
out_free:
	kvfree(pages);
	return ret;
}

/**
 * dxn_pool_unpin - release the pool's pins and the locked_vm charge
 * @pool: a pinned pool (or an unpinned one: copy mode)
 *
 * Process context (port release). The pages are marked dirty: the network
 * stack may have written into them.
 */
void dxn_pool_unpin(struct dxn_pool *pool)
{
	if (!pool->pages)
		return;
	unpin_user_pages_dirty_lock(pool->pages, pool->npages, true);
	account_locked_vm(pool->mm, pool->npages, false);
	mmdrop(pool->mm);
	kvfree(pool->pages);
	pool->pages = NULL;
	pool->npages = 0;
}

/**
 * dxn_pool_uptr - the owner's user address of pool byte @pos
 * @pool: the pool
 * @pos: byte position from the start of buffer 0 (caller checked range)
 *
 * Valid only in the owner's process context (dxn_port_owner()).
 */
void __user *dxn_pool_uptr(struct dxn_pool *pool, u64 pos)
{
	return u64_to_user_ptr(pool->addr + pos);
}

/**
 * dxn_pool_bvec - describe pinned pool bytes [pos, pos + len) as bio_vecs
 * @pool: a pinned pool (zero-copy mode)
 * @pos: byte position (caller checked range)
 * @len: bytes
 * @bv: output array
 * @max: entries in @bv
 *
 * Any context.
 *
 * Return: the number of entries used, -E2BIG, or -EINVAL when the pool is
 * not pinned.
 */
int dxn_pool_bvec(struct dxn_pool *pool, u64 pos, u32 len,
		  struct bio_vec *bv, int max)
{
	int n = 0;

	if (!pool->pages)
		return -EINVAL;
	while (len) {
		u32 po = offset_in_page(pos);
		u32 chunk = min_t(u32, len, PAGE_SIZE - po);

		if (n == max)
			return -E2BIG;
		bv[n].bv_page = pool->pages[pos >> PAGE_SHIFT];
		bv[n].bv_offset = po;
		bv[n].bv_len = chunk;
		n++;
		pos += chunk;
		len -= chunk;
	}
	return n;
}
