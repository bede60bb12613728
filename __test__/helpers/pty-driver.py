#!/usr/bin/env python3
"""Runs a command on a real pseudo-terminal and drives it like a person at a keyboard (the one
pty driver of the tests; helpers/pty.ts wraps it).

    pty-driver.py SCRIPT_JSON -- CMD [ARG...]

SCRIPT_JSON: {"rows": R, "cols": C, "timeout": S, "steps": [...]}, each step one of
    {"expect": REGEX}            wait (bounded by the step's or the script's timeout) until the
                                 output seen so far (since the last expect) matches
    {"send": TEXT}               write TEXT to the terminal (the keyboard: "\\u0003" is Ctrl-C)
    {"resize": [ROWS, COLS]}     set the window size (the kernel sends SIGWINCH to the
                                 terminal's foreground process group)
    {"sleep": SECONDS}
    {"signal": NAME}             send the signal (`TERM`, `INT`, ...) to the command's process
Prints one JSON line: {"output", "exitCode", "signal", "timedOut", "failedStep", "termiosBefore",
"termiosAfter"} — the terminal's modes ([iflag, oflag, cflag, lflag]) before the command started
and after it ended, to see that it put them back. The command is the session leader of the
terminal (its controlling tty), as a shell would start it.
"""
import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))


def main():
    script = json.loads(sys.argv[1])
    cmd = sys.argv[sys.argv.index('--') + 1:]
    deadline = time.monotonic() + script.get('timeout', 30)
    master, slave = os.openpty()
    set_size(master, script.get('rows', 24), script.get('cols', 80))

    def child_setup():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = dict(os.environ, TERM=os.environ.get('TERM', 'xterm'))
    def modes():
        return termios.tcgetattr(master)[:4]

    before = modes()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, preexec_fn=child_setup, env=env, close_fds=True)
    os.close(slave)
    out = bytearray()
    mark = 0
    result = {'timedOut': False, 'failedStep': None}

    def pump(wait):
        """Reads what is there (waiting up to `wait` s); False once the terminal is closed."""
        r, _, _ = select.select([master], [], [], max(0.0, wait))
        if not r:
            return True
        try:
            data = os.read(master, 65536)
        except OSError:
            return False
        if not data:
            return False
        out.extend(data)
        return True

    open_ = True
    for i, step in enumerate(script.get('steps', [])):
        if 'expect' in step:
            rx = re.compile(step['expect'].encode(), re.S)
            step_deadline = min(deadline, time.monotonic() + step.get('timeout', 1e9))
            while not rx.search(out, mark):
                if not open_ or time.monotonic() > step_deadline:
                    result['failedStep'] = i
                    break
                open_ = pump(min(0.05, step_deadline - time.monotonic()))
            if result['failedStep'] is not None:
                break
            mark = rx.search(out, mark).end()
        elif 'send' in step:
            os.write(master, step['send'].encode())
        elif 'resize' in step:
            set_size(master, *step['resize'])
        elif 'signal' in step:
            proc.send_signal(getattr(signal, 'SIG' + step['signal']))
        elif 'sleep' in step:
            end = time.monotonic() + step['sleep']
            while open_ and time.monotonic() < end:
                open_ = pump(end - time.monotonic())
    # Drain until the command exits and the terminal closes (bounded).
    while time.monotonic() < deadline:
        if open_:
            open_ = pump(0.05)
        if proc.poll() is not None and not open_:
            break
        if proc.poll() is not None:
            # Exited, but something (a grandchild) may still hold the terminal: read what is left.
            open_ = pump(0.05) and open_
            if not select.select([master], [], [], 0.2)[0]:
                break
    if proc.poll() is None:
        result['timedOut'] = True
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rc = proc.returncode
    result['termiosBefore'] = before
    try:
        result['termiosAfter'] = modes()
    except OSError:
        result['termiosAfter'] = None
    result['output'] = out.decode('utf-8', 'replace')
    result['exitCode'] = rc if rc >= 0 else None
    result['signal'] = -rc if rc < 0 else None
    os.close(master)
    print(json.dumps(result))


main()
