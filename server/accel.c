/* accel.c - accelerator detection; see accel.h for the rule and why. */
#include "config.h"
#include "server/accel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool cpu_has_virt(const char *cpuinfo)
{
	FILE *f = fopen(cpuinfo, "re");
	char line[8192];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *tok, *save = NULL;

		if (strncmp(line, "flags", 5) != 0)
			continue;
		for (tok = strtok_r(line, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save))
			if (!strcmp(tok, "vmx") || !strcmp(tok, "svm"))
				found = true;
		break; /* the first CPU's flags speak for all */
	}
	fclose(f);
	return found;
}

const char *accel_detect(const char *cpuinfo, const char *kvm_dev, char *reason, size_t reason_len)
{
	int fd;

	cpuinfo = cpuinfo ? cpuinfo : "/proc/cpuinfo";
	kvm_dev = kvm_dev ? kvm_dev : "/dev/kvm";
	if (!cpu_has_virt(cpuinfo)) {
		snprintf(reason, reason_len, "the CPU flags in %s show neither vmx nor svm%s", cpuinfo,
			 access(kvm_dev, F_OK) == 0 ? " (the existing " : "");
		if (access(kvm_dev, F_OK) == 0) {
			size_t n = strlen(reason);

			snprintf(reason + n, reason_len - n,
				 "%s is nested or paravirtual KVM that cannot boot stock kernels)", kvm_dev);
		}
		return "tcg";
	}
	fd = open(kvm_dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(reason, reason_len, "the CPU has hardware virtualization but %s cannot be opened: %s", kvm_dev,
			 strerror(errno));
		return "tcg";
	}
	close(fd);
	snprintf(reason, reason_len, "the CPU has hardware virtualization and %s opens", kvm_dev);
	return "kvm";
}
