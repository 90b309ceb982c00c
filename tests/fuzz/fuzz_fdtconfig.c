/* fuzz_fdtconfig.c - libFuzzer target for vmagent's configuration parser
 * (guest/vmagent/config.c): any byte string must either parse into a
 * configuration whose every string is NUL-terminated and within bounds, or
 * fail with a message naming a property; never crash, never leak.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "guest/vmagent/agent_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_config cfg;
	struct vm_error err = { 0 };

	if (agent_config_parse(data, size, &cfg, &err) == 0) {
		size_t total = strlen(cfg.vm_id) + strlen(cfg.name);

		for (size_t i = 0; i < cfg.n_payload_args; i++)
			total += strlen(cfg.payload_args[i]);
		for (size_t i = 0; i < cfg.n_payload_env; i++)
			total += strlen(cfg.payload_env[i]);
		if (total > size || cfg.cid < 3)
			__builtin_trap();
		agent_config_clear(&cfg);
	} else if (!err.message[0] || !strchr(err.message, ':')) {
		__builtin_trap();
	}
	return 0;
}
