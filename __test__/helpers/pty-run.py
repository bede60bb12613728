#!/usr/bin/env python3
"""Runs a command on a new pseudo-terminal of a given size; copies what it draws to stdout.

    pty-run.py COLS ROWS TIMEOUT_SECS -- ARGV...

The command sees a terminal on stdin, stdout and stderr, COLS x ROWS wide (set before it starts).
Exit status: the command's (128+N for signal N); 124 when it ran past TIMEOUT_SECS (it is then
killed, so a test never hangs on it).
"""
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

cols, rows, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
argv = sys.argv[5:] if sys.argv[4] == '--' else sys.argv[4:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
    os.execvp(argv[0], argv)
deadline = time.monotonic() + timeout
out = sys.stdout.buffer
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sys.exit(124)
    ready, _, _ = select.select([fd], [], [], left)
    if not ready:
        continue
    try:
        data = os.read(fd, 65536)
    except OSError:  # EIO: every writer closed the terminal
        break
    if not data:
        break
    out.write(data)
    out.flush()
_, status = os.waitpid(pid, 0)
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
