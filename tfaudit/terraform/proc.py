"""The only module that starts subprocesses (terraform, git).

argv lists only, never a shell. Callers get a typed result; signal forwarding for
long-running children lives here too so SIGINT/SIGTERM reach terraform and it can
stop gracefully.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def stderr_text(self, limit: int = 2000) -> str:
        return self.stderr.decode("utf-8", "replace").strip()[:limit]


def run(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    capture: bool = True,
) -> Result:
    """Run to completion; capture stdout/stderr (or pass them through when capture=False)."""
    pipe = subprocess.PIPE if capture else None
    proc = subprocess.run(  # noqa: S603 - argv list, no shell
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        input=input,
        stdout=pipe,
        stderr=pipe,
        stdin=None if input is not None else subprocess.DEVNULL if capture else None,
        timeout=timeout,
        check=False,
    )
    return Result(tuple(argv), proc.returncode, proc.stdout or b"", proc.stderr or b"")


@dataclass
class SignalForwarder:
    """Records which signal arrived while a child ran; forwards it to the child."""

    received: int | None = None
    # When the child shares our terminal's process group it already got the Ctrl-C;
    # sending a second SIGINT would make terraform exit without cleaning up.
    child_shares_terminal: bool = False
    _child: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def handler(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self.received = signum
        if self._child is not None and self._child.poll() is None:
            if signum == signal.SIGINT and self.child_shares_terminal:
                return
            try:
                # terraform handles the first SIGINT by stopping gracefully.
                self._child.send_signal(signal.SIGINT if signum == signal.SIGTERM else signum)
            except ProcessLookupError:
                pass


@contextmanager
def forwarding_signals() -> Iterator[SignalForwarder]:
    """While active, SIGINT/SIGTERM do not kill tfaudit; they are forwarded to the child."""
    fwd = SignalForwarder()
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, fwd.handler)
    try:
        yield fwd
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_streaming(
    argv: Sequence[str],
    *,
    on_line: Callable[[bytes], None] | None = None,
    on_chunk: Callable[[bytes], None] | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    forwarder: SignalForwarder | None = None,
) -> int:
    """Run with stdin/stderr inherited; stdout inherited, or fed line by line (on_line), or fed
    as it arrives (on_chunk: prompts without a newline still show; when tfaudit's stdout is a
    terminal the child gets a pseudo-terminal of the same size, so it wraps and colours as usual)."""
    own_session = forwarder is not None and os.name == "posix" and not _stdin_is_tty()
    if forwarder is not None:
        forwarder.child_shares_terminal = not own_session
    master = slave = None
    stdout: Any = None
    if on_line is not None:
        stdout = subprocess.PIPE
    elif on_chunk is not None:
        if os.name == "posix" and _fd_is_tty(1):
            master, slave = _pty_like_stdout()
            stdout = slave
        else:
            stdout = subprocess.PIPE
    child = subprocess.Popen(  # noqa: S603 - argv list, no shell
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=stdout,
        # Without a terminal, put the child in its own session so that a signal sent to
        # tfaudit alone is forwarded exactly once; with one, terraform may need to prompt.
        start_new_session=own_session,
    )
    if slave is not None:
        os.close(slave)
    if forwarder is not None:
        forwarder._child = child
    try:
        if on_line is not None and child.stdout is not None:
            for line in child.stdout:
                on_line(line)
        elif on_chunk is not None:
            fd = master if master is not None else child.stdout.fileno()  # type: ignore[union-attr]
            while True:
                try:
                    data = os.read(fd, 65536)
                except InterruptedError:
                    continue
                except OSError:  # EIO: the pseudo-terminal's other side closed
                    break
                if not data:
                    break
                on_chunk(data)
        rc = child.wait()
        # killed by a signal: report it the way a shell does (128 + signal number)
        return 128 - rc if rc < 0 else rc
    finally:
        if master is not None:
            os.close(master)
        if forwarder is not None:
            forwarder._child = None


def run_journaled(
    argv: Sequence[str],
    journal: Path,
    on_line: Callable[[bytes], None],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    forwarder: SignalForwarder | None = None,
    on_start: Callable[[int], None] | None = None,
    poll_seconds: float = 0.05,
) -> int:
    """Run a child that outlives tfaudit: its stdout goes to `journal` (created, 0600), it runs in
    its own session (a kill -9 of tfaudit, or its terminal closing, does not stop it), and
    tfaudit follows the file, feeding on_line each complete line. on_start gets the child's pid.
    Signals still reach it through the forwarder (SIGTERM as terraform's graceful SIGINT)."""
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    try:
        child = subprocess.Popen(  # noqa: S603 - argv list, no shell
            list(argv), cwd=cwd, env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL, stdout=fd, start_new_session=True)
    finally:
        os.close(fd)
    if forwarder is not None:
        forwarder.child_shares_terminal = False
        forwarder._child = child
    try:
        if on_start is not None:
            on_start(child.pid)
        _follow(journal, child, on_line, poll_seconds)
        rc = child.wait()
        return 128 - rc if rc < 0 else rc
    finally:
        if forwarder is not None:
            forwarder._child = None


def _follow(journal: Path, child: subprocess.Popen[bytes], on_line: Callable[[bytes], None], poll: float) -> None:
    """Feed on_line every line written to journal until the child has exited and all is read."""
    import time

    rest = b""
    with journal.open("rb") as f:
        while True:
            exited = child.poll() is not None  # checked before reading: after exit, EOF is final
            chunk = f.read(65536)
            if chunk:
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    on_line(line + b"\n")
            elif exited:
                break
            else:
                time.sleep(poll)
    if rest:
        on_line(rest)


def process_alive(pid: int, name_part: str | None = None) -> bool:
    """Whether pid is a live process (whose command line contains name_part, when given and knowable)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if name_part is None:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: the pid is all we can go by
    if stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]:
        return False  # a zombie has finished
    return name_part.encode() in cmdline


def _fd_is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _pty_like_stdout() -> tuple[int, int]:
    """A pseudo-terminal pair sized like our stdout, raw so bytes pass unchanged (no \\r\\n)."""
    import fcntl
    import pty
    import termios
    import tty

    master, slave = pty.openpty()
    try:
        size = fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    except OSError:
        pass
    tty.setraw(slave)
    return master, slave


def _stdin_is_tty() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


def hand_over(argv: Sequence[str], env: Mapping[str, str], *, replace: bool) -> int:
    """Run argv as if the user had typed it: with replace, tfaudit becomes it (exec: stdin, stdout,
    stderr, signals and the exit code are the program's own); otherwise (tfaudit runs inside another
    command, `tfaudit ci run`) as a child on the same terminal, returning its exit code."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    if replace and os.name == "posix":
        os.execve(argv[0], list(argv), dict(env))
    with forwarding_signals() as fwd:
        return run_streaming(argv, env=env, forwarder=fwd)
