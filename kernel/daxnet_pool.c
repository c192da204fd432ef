// SPDX-License-Identifier: GPL-2.0
/*
 * The user's buffer pool, pinned for kernel access.
 *
 * The pool is the caller's own mapping of the pool file (or any memory):
 * buffer i is at pool_addr + i * buf_size. It is pinned page by page with
 * pin_user_pages_fast() and reached through the pages' kernel mappings.
 *
 * fsdax: 6.1 refuses FOLL_LONGTERM on a file-system DAX mapping
 * (check_vma_flags() returns -EOPNOTSUPP), so such a pool is pinned
 * without it. The consequence, documented in docs/kernel.md: while the
 * port is open, truncate, hole punching and reflink of the pool file wait
 * for the pins (the file system's layout break waits for the page counts
 * to drop), so the file must not be shrunk while registered. Anonymous,
 * shmem (/dev/shm) and device-DAX mappings take FOLL_LONGTERM.
 */
#include <linux/mm.h>
#include <linux/highmem.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/bvec.h>

#include "daxnet_priv.h"
#include "daxnet_compat.h"

/* Pin nr pages from addr into pages[]; returns pages pinned or -errno. */
static long dxn_pin_range(u64 addr, unsigned long nr, unsigned int flags,
			  struct page **pages)
{
	unsigned long done = 0;
	long ret;

	while (done < nr) {
		ret = pin_user_pages_fast(addr + (done << PAGE_SHIFT),
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

/* Is the mapping at addr a DAX mapping? Process context, takes mmap_lock. */
static bool dxn_range_is_dax(u64 addr)
{
	struct vm_area_struct *vma;
	bool dax = false;

	mmap_read_lock(current->mm);
	vma = vma_lookup(current->mm, addr);
	if (vma)
		dax = vma_is_dax(vma);
	mmap_read_unlock(current->mm);
	return dax;
}

/**
 * dxn_pool_pin - pin the user range [addr, addr + len) as the pool
 * @pool: pool with buf_size and buf_count set
 * @addr: page-aligned user address of buffer 0
 * @len: pool length in bytes
 *
 * Process context (REGISTER ioctl), port->lock held. Charges the pages to
 * the caller's locked_vm (RLIMIT_MEMLOCK unless CAP_IPC_LOCK).
 *
 * Return: 0, or -EINVAL (size), -ENOMEM, -EFAULT, -EPERM/-ENOMEM from the
 * locked_vm charge, or the pin's error.
 */
int dxn_pool_pin(struct dxn_pool *pool, u64 addr, u64 len)
{
	unsigned long nr = DIV_ROUND_UP_ULL(len, PAGE_SIZE);
	struct page **pages;
	long ret;

	if (!nr || nr > DXN_MAX_POOL_PAGES)
		return -EINVAL;
	pages = kvcalloc(nr, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;

	ret = account_locked_vm(current->mm, nr, true);
	if (ret)
		goto out_free;

	pool->dax = dxn_range_is_dax(addr);
	pool->longterm = true;
	ret = dxn_pin_range(addr, nr, FOLL_WRITE | FOLL_LONGTERM, pages);
	if (ret == -EOPNOTSUPP) {
		/* fsdax: 6.1 allows only short-term pins (see above). */
		pool->longterm = false;
		ret = dxn_pin_range(addr, nr, FOLL_WRITE, pages);
	}
	if (ret < 0)
		goto out_unaccount;

	mmgrab(current->mm);
	pool->mm = current->mm;
	pool->pages = pages;
	pool->npages = nr;
	pool->len = len;
	return 0;

out_unaccount:
	account_locked_vm(current->mm, nr, false);
out_free:
	kvfree(pages);
	return ret;
}

/**
 * dxn_pool_unpin - release the pool's pins and the locked_vm charge
 * @pool: a pinned pool (or an empty one)
 *
 * Process context (port release). The pages are marked dirty: the kernel
 * wrote into them through their kernel mappings.
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
 * dxn_pool_write - copy bytes into the pool at byte position pos
 * @pool: the pool
 * @pos: byte position from the start of buffer 0 (caller checked range)
 * @src: kernel source
 * @len: bytes
 *
 * Any context that may not sleep is fine (no locks taken). A DAX pool is
 * written with non-temporal stores (memcpy_flushcache); the caller issues
 * the store fence before it publishes the slot.
 */
void dxn_pool_write(struct dxn_pool *pool, u64 pos, const void *src,
		    size_t len)
{
	while (len) {
		struct page *page = pool->pages[pos >> PAGE_SHIFT];
		size_t po = offset_in_page(pos);
		size_t n = min_t(size_t, len, PAGE_SIZE - po);
		void *kaddr = kmap_local_page(page);

		if (pool->dax)
			memcpy_flushcache(kaddr + po, src, n);
		else
			memcpy(kaddr + po, src, n);
		kunmap_local(kaddr);
		pos += n;
		src += n;
		len -= n;
	}
}

/**
 * dxn_pool_bvec - describe pool bytes [pos, pos + len) as bio_vecs
 * @pool: the pool
 * @pos: byte position (caller checked range)
 * @len: bytes
 * @bv: output array
 * @max: entries in @bv
 *
 * Any context.
 *
 * Return: the number of entries used, or -E2BIG.
 */
int dxn_pool_bvec(struct dxn_pool *pool, u64 pos, u32 len,
		  struct bio_vec *bv, int max)
{
	int n = 0;

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
