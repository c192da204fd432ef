// SPDX-License-Identifier: GPL-2.0
/*
 * daxnet - attach connected TCP sockets to shared rings over a DAX pool.
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>

#include "daxnet_compat.h"

static int dxn_open(struct inode *inode, struct file *file)
{
	return 0;
}

static int dxn_release(struct inode *inode, struct file *file)
{
	return 0;
}

static const struct file_operations dxn_fops = {
	.owner = THIS_MODULE,
	.open = dxn_open,
	.release = dxn_release,
	.llseek = noop_llseek,
};

static struct miscdevice dxn_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "daxnet",
	.fops = &dxn_fops,
	.mode = 0666,
};

static int __init dxn_init(void)
{
	return misc_register(&dxn_misc);
}

static void __exit dxn_exit(void)
{
	misc_deregister(&dxn_misc);
}

module_init(dxn_init);
module_exit(dxn_exit);
MODULE_DESCRIPTION("daxnet: TCP sockets on shared rings over a DAX buffer pool");
MODULE_LICENSE("GPL");
