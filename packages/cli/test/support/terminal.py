"""Runs a command in a pseudo-terminal, as a person at a terminal would: waits for each expected text,
then for the terminal's echo to be off when asked (a hidden prompt), types the answer, and reports what the
terminal showed, the exit code, and whether echo was off at each answer.

    python3 terminal.py '{"argv": [...], "env": {...}, "steps": [{"expect": "PIN", "send": "1234\\r", "hidden": true}],
                     "signal": {"expect": "generating", "name": "SIGINT"}, "timeout": 60}'
"""
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])

fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
deadline = time.time() + spec.get("timeout", 60)
output = b""
position = 0
echo_off = []
steps = list(spec.get("steps", []))
interrupt = spec.get("signal")
open_fd = True


def read(wait):
    global output, open_fd
    ready, _, _ = select.select([fd], [], [], wait)
    if ready:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            open_fd = False
        output += data


while open_fd and time.time() < deadline:
    if steps and steps[0]["expect"].encode() in output[position:]:
        step = steps.pop(0)
        if step.get("hidden"):
            # The prompt is drawn before the terminal leaves cooked mode: wait until it echoes nothing.
            while bool(termios.tcgetattr(fd)[3] & termios.ECHO) and time.time() < deadline:
                time.sleep(0.02)
        echo_off.append(not bool(termios.tcgetattr(fd)[3] & termios.ECHO))
        time.sleep(0.1)
        position = len(output)
        os.write(fd, step["send"].encode())
        continue
    if interrupt is not None and interrupt["expect"].encode() in output[position:]:
        time.sleep(interrupt.get("delay", 0.2))
        os.kill(pid, getattr(signal, interrupt["name"]))
        interrupt = None
    read(0.05)

if open_fd:
    os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"output": output.decode("utf-8", "replace"), "code": code, "echoOff": echo_off,
                  "unanswered": [step["expect"] for step in steps]}))
