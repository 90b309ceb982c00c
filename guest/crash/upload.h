/* upload.h - the guest side of a crash report upload: frames on host vsock
 * port CRASH_UPLOAD_PORT (docs/crash-reports.md). Each frame is a 4-byte
 * big-endian length and one packed virtmgr.v1.CrashUpload; the host answers
 * with one CrashUploadReply frame. Shared by vmagent's collector and the
 * test tool that sends forged reports.
 */
#ifndef VIRTMGR_CRASH_UPLOAD_H
#define VIRTMGR_CRASH_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "protos/virtmgr.pb-c.h"

#define CRASH_UPLOAD_PORT 7779u
#define CRASH_UPLOAD_CHUNK (64u << 10)			    /* core bytes per frame at most */
#define CRASH_UPLOAD_MAX_FRAME (CRASH_UPLOAD_CHUNK + 4096u) /* a header's strings fit too */

/**
 * crash_upload_connect() - blocking AF_VSOCK connection to the host's crash
 * port, with send and receive timeouts of @timeout_s.
 * Return: the fd, or -1 with errno.
 */
int crash_upload_connect(unsigned timeout_s);

/** crash_upload_send() - one frame. Return: 0, or -1 with errno. */
int crash_upload_send(int fd, const Virtmgr__V1__CrashUpload *msg);

/**
 * crash_upload_reply() - read the host's answer into @id / @why (NUL-terminated).
 * Return: 0 when the host stored the report, 1 when it refused it (@why),
 *         -1 with errno when no answer came.
 */
int crash_upload_reply(int fd, char *id, size_t id_size, char *why, size_t why_size);

#endif
