/* log.h - leveled logging to stderr (journald picks it up under systemd).
 * Lines carry a priority prefix "<N>" when stderr is not a terminal and
 * JOURNAL_STREAM is set, otherwise a short level word.
 */
#ifndef VIRTMGR_LOG_H
#define VIRTMGR_LOG_H

enum log_level { LOG_LVL_ERROR = 3, LOG_LVL_WARN = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

/** log_init() - set program name and threshold (messages above are dropped). */
void log_init(const char *prog, enum log_level threshold);
void log_set_level(enum log_level threshold);
enum log_level log_get_level(void);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
