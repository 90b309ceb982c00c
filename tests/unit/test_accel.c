/* test_accel.c - the accelerator rule: KVM only with vmx/svm AND a usable
 * /dev/kvm. Uses real files in a temp dir standing in for /proc/cpuinfo and
 * /dev/kvm (a FIFO opened O_RDWR works; a missing path does not).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/accel.h"

static char dir[] = "/tmp/test_accel.XXXXXX";
static char cpuinfo[128], kvm[128];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cpuinfo, sizeof(cpuinfo), "%s/cpuinfo", dir);
	snprintf(kvm, sizeof(kvm), "%s/kvm", dir);
}

static void teardown(void)
{
	unlink(cpuinfo);
	unlink(kvm);
	rmdir(dir);
}

static void write_cpuinfo(const char *flags)
{
	FILE *f = fopen(cpuinfo, "w");

	cr_assert_not_null(f);
	fprintf(f, "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: %s\n\nprocessor\t: 1\n", flags);
	fclose(f);
}

TestSuite(accel, .init = setup, .fini = teardown);

Test(accel, tcg_without_virt_flags_even_with_kvm_device)
{
	char reason[256];

	write_cpuinfo("fpu vme de pse tsc msr pae hypervisor");
	cr_assert_eq(mkfifo(kvm, 0600), 0);
	cr_assert_str_eq(accel_detect(cpuinfo, kvm, reason, sizeof(reason)), "tcg");
	cr_assert(strstr(reason, "neither vmx nor svm"), "reason: %s", reason);
	cr_assert(strstr(reason, "nested or paravirtual"), "reason: %s", reason);
}

Test(accel, kvm_with_vmx_and_device)
{
	char reason[256];

	write_cpuinfo("fpu vme vmx ept");
	cr_assert_eq(mkfifo(kvm, 0600), 0);
	cr_assert_str_eq(accel_detect(cpuinfo, kvm, reason, sizeof(reason)), "kvm");
}

Test(accel, kvm_with_svm_and_device)
{
	char reason[256];

	write_cpuinfo("fpu svm npt");
	cr_assert_eq(mkfifo(kvm, 0600), 0);
	cr_assert_str_eq(accel_detect(cpuinfo, kvm, reason, sizeof(reason)), "kvm");
}

Test(accel, tcg_with_vmx_but_no_device)
{
	char reason[256];

	write_cpuinfo("fpu vmx");
	cr_assert_str_eq(accel_detect(cpuinfo, kvm, reason, sizeof(reason)), "tcg");
	cr_assert(strstr(reason, "cannot be opened"), "reason: %s", reason);
}

Test(accel, vmx_as_substring_does_not_count)
{
	char reason[256];

	write_cpuinfo("fpu vmxe svmx");
	cr_assert_eq(mkfifo(kvm, 0600), 0);
	cr_assert_str_eq(accel_detect(cpuinfo, kvm, reason, sizeof(reason)), "tcg");
}
