/* log.c - leveled logging to stderr. The daemon runs under systemd or by
 * hand; both read stderr, so there is no syslog dependency.
 */
#include "config.h"
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "virtmgr";
static enum log_level log_threshold = LOG_LVL_INFO;

void log_init(const char *prog, enum log_level threshold)
{
	const char *env = getenv("VIRTMGR_LOG_LEVEL");

	log_prog = prog;
	log_threshold = threshold;
	if (env && !strcmp(env, "debug"))
		log_threshold = LOG_LVL_DEBUG;
}

void log_set_level(enum log_level threshold)
{
	log_threshold = threshold;
}

enum log_level log_get_level(void)
{
	return log_threshold;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const words[] = { [LOG_LVL_ERROR] = "error",
					     [LOG_LVL_WARN] = "warning",
					     [LOG_LVL_INFO] = "info",
					     [LOG_LVL_DEBUG] = "debug" };
	char line[2048];
	struct timespec ts;
	va_list ap;
	int n;

	if (lvl > log_threshold)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(line, sizeof(line), "%s[%d] %ld.%03ld %s: ", log_prog, (int)getpid(), (long)ts.tv_sec,
		     ts.tv_nsec / 1000000, words[lvl] ? words[lvl] : "log");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	/* one write() per line so lines from several processes never interleave */
	if (write(STDERR_FILENO, line, strlen(line)) < 0)
		return;
}
