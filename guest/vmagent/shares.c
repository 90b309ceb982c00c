/* shares.c - vmagent's mounts of the host folders of VmConfig.shares.
 *
 * Each share is a vhost-user-fs device whose tag the host chose (server/
 * virtiofs.h serves it with virtiofsd as the VM's owner); the agent mounts it
 * with fstype virtiofs at its guest path before the payload starts, creating
 * the mount point, read-only when the share is (the host enforces that too).
 * A share that cannot be mounted is a configuration error: the payload never
 * runs against a folder that is not there. At power-off the mounts are
 * synced and detached; virtiofsd writes through to the host, so nothing the
 * guest wrote is held back in the guest after sync().
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/vmagent/agent.h"
#include "guest/vmagent/root.h"
#include "guest/vmagent/shares.h"

int agent_shares_mount(struct agent *a, const struct agent_config *cfg, struct vm_error *err)
{
	for (size_t i = 0; i < cfg->n_shares; i++) {
		const char *tag = cfg->shares[3 * i], *path = cfg->shares[3 * i + 1];
		bool ro = !strcmp(cfg->shares[3 * i + 2], "ro");
		int r;

		if (agent_root_is_share(cfg, tag))
			continue; /* mounted as the root (root.c) */
		r = mkdir_p(path, 0755);
		if (r < 0)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "share %s: cannot create %s: %s", tag, path,
					    strerror(-r));
		if (mount(tag, path, "virtiofs", MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0), NULL) < 0)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "share %s: mount virtiofs on %s: %s", tag, path,
					    strerror(errno));
		agent_log(a, "share %s mounted on %s%s", tag, path, ro ? " (read-only)" : "");
	}
	return 0;
}

void agent_shares_unmount(struct agent *a, const struct agent_config *cfg)
{
	sync();
	/* in reverse: a share may be mounted inside another one */
	for (size_t i = cfg->n_shares; i-- > 0;) {
		const char *path = cfg->shares[3 * i + 1];

		if (agent_root_is_share(cfg, cfg->shares[3 * i]))
			continue;
		if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
			agent_log(a, "share %s: unmount %s: %s", cfg->shares[3 * i], path, strerror(errno));
	}
}
