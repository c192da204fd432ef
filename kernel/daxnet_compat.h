/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The only place where kernel version differences live.
 *
 * The module targets Debian 12's Linux 6.1; these wrappers keep it building
 * on later kernels. Each entry names the release that changed the API.
 * Differences are detected by feature: Kbuild compiles a line using the
 * API against the target's headers and defines DXN_HAVE_* when it builds
 * (dxn_have in kernel/Kbuild), not by LINUX_VERSION_CODE, because vendor
 * kernels backport.
 */
#ifndef _DAXNET_COMPAT_H
#define _DAXNET_COMPAT_H

#include <linux/mm.h>

/* 6.3 made vma->vm_flags read-only and added vm_flags_set(). */
static inline void dxn_vma_set_flags(struct vm_area_struct *vma,
				     unsigned long flags)
{
#ifdef DXN_HAVE_VM_FLAGS_SET
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

/*
 * 6.5 dropped the vmas argument of pin_user_pages() (the caller holds
 * mmap_lock; the pin never drops it).
 */
static inline long dxn_pin_user_pages(unsigned long start,
				      unsigned long nr_pages,
				      unsigned int gup_flags,
				      struct page **pages)
{
#ifdef DXN_HAVE_PIN_USER_PAGES_VMAS
	return pin_user_pages(start, nr_pages, gup_flags, pages, NULL);
#else
	return pin_user_pages(start, nr_pages, gup_flags, pages);
#endif
}

/*
 * 6.10 moved the ubuf_info completion callback into ubuf_info->ops
 * (ubuf_info_ops.complete, same arguments).
 */
#include <linux/skbuff.h>
#ifdef DXN_HAVE_UBUF_OPS
#define DXN_UBUF_OPS(name, fn) \
	static const struct ubuf_info_ops name = { .complete = fn }
#define dxn_ubuf_set(u, name, fn)	((u)->ops = &(name))
#else
#define DXN_UBUF_OPS(name, fn) \
	static void (*const name)(struct sk_buff *, struct ubuf_info *, bool) = fn
#define dxn_ubuf_set(u, name, fn)	((u)->callback = (name))
#endif

#endif /* _DAXNET_COMPAT_H */
