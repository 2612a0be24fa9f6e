// System calls that Swift's Glibc module does not export (see include/CFileIO.h).
#define _GNU_SOURCE
#include "CFileIO.h"
#include <fcntl.h>
#include <stdio.h>

void ws_stdout_line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

int ws_start_writeback(int fd, int64_t offset, int64_t length) {
#if defined(__linux__)
    return sync_file_range(fd, (off_t)offset, (off_t)length, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)length;
    return 0;
#endif
}
