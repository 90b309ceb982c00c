/* vmctl-main.c - vmctl's entry point; everything else is in the
 * convenience library the unit tests link too (client/vmctl.c, cmd_*.c).
 */
#include "config.h"
#include "client/vmctl.h"

int main(int argc, char **argv)
{
	return vmctl_main(argc, argv);
}
