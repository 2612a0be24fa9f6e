#ifndef WEIGHTSMITH_CFILEIO_H
#define WEIGHTSMITH_CFILEIO_H

#include <stdint.h>

/* Starts writeback of the dirty pages of bytes [offset, offset + length) of `fd` without waiting
 * for it (Linux sync_file_range with SYNC_FILE_RANGE_WRITE), so that a later fsync has less
 * left to do. Returns 0, or -1 with errno set; a no-op returning 0 where the call is missing. */
int ws_start_writeback(int fd, int64_t offset, int64_t length);

/* Makes stdout line-buffered (stdout is a C global Swift 6 does not let a program touch). */
void ws_stdout_line_buffered(void);

#endif
