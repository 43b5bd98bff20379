"""The technician's console: one engine over a byte transport (serial port, Unix socket, standard input/output).

A door like the web ones: it calls only the service layer (`Box`). A session shows the banner (box
name, version, state, addresses, the setup code while no admin exists, the HTTPS fingerprint), asks
for the technician PIN (the door's `PinGate` locks a transport out after repeated failures), then
reads commands with line editing (backspace, Ctrl-U, arrows for history and the cursor, Tab to
complete) until `logout`, Ctrl-D or the idle time-out. Bytes that are not text (a wrong baud rate,
line noise) and over-long lines are refused with a message. Every message is an English `N_()`
text translated into the box language when it is written. The commands, and the session's whole
flow (`serve`), live in `edge.doors.console.commands`.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge import __version__
from edge.box import Box
from edge.core.errors import NotAllowed, TooManyAttempts
from edge.core.texts import N_
from edge.doors.web.i18n import RTL_LANGUAGES, translate
from edge.system.accounts import PinGate
from edge.system.network import addresses

log = logging.getLogger(__name__)

# A serial terminal (screen, minicom, PuTTY) draws one character per cell, left to right, unshaped:
# right-to-left and shaped scripts come out reversed or broken there, so the console speaks English.
TERMINAL_UNFIT_LANGUAGES = RTL_LANGUAGES | {"km", "my", "lo", "si"}

WIDTH = 80
MAX_LINE = 256  # characters; a longer line is refused whole
MAX_GARBAGE = 32  # unreadable bytes in a row before the console says so without waiting for Enter
HISTORY_KEPT = 50
PROMPT = "classbox> "
CTRL_C, CTRL_D, CTRL_U, BACKSPACE, DELETE, TAB, ESC, BELL = 0x03, 0x04, 0x15, 0x08, 0x7F, 0x09, 0x1B, b"\x07"
TOO_LONG = N_("Line too long (at most %(max)s characters): refused.")
GARBAGE = N_("Unreadable bytes refused: check the terminal's speed (%(baud)s baud, 8N1).")


class Disconnected(Exception):
    """The other end went away (cable pulled, socket closed)."""


class Transport(Protocol):
    """A byte stream to the technician's terminal."""

    async def read(self) -> bytes:
        """The next bytes typed; b"" when the other end went away."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes to the terminal (raise OSError when it went away)."""
        ...


class QueueTransport:
    """A transport fed by its owner (a reader thread, task or callback) through `feed`; `feed(b"")` is the end."""

    def __init__(self, send: Callable[[bytes], Any], name: str) -> None:
        self.name = name
        self._send = send
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()

    def feed(self, data: bytes) -> None:
        """Bytes arrived (b"": the other end went away)."""
        self._queue.put_nowait(data)

    async def read(self) -> bytes:
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        result = self._send(data)
        if asyncio.iscoroutine(result):
            await result


# -- line editing ---------------------------------------------------------------------------------------


@dataclass
class Event:
    """What the editor made of the bytes: a finished `line`, `interrupt` (Ctrl-C), `eof` (Ctrl-D), `tab`, `refused`."""

    kind: str
    text: str = ""


@dataclass
class LineEditor:
    """Turns typed bytes into lines: echo, backspace, Ctrl-U, cursor and history arrows, Tab, refusals.

    `feed` returns the events and `output` holds the bytes to echo; the caller writes them. A secret
    line (the PIN) echoes `*` and stays out of the history.
    """

    prompt: str = PROMPT
    secret: bool = False
    buffer: list[str] = field(default_factory=list)
    cursor: int = 0
    history: list[str] = field(default_factory=list)
    output: bytearray = field(default_factory=bytearray)
    _browse: int = 0
    _escape: bytes = b""
    _too_long: bool = False
    _garbage: int = 0
    _after_cr: bool = False

    def __post_init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    @property
    def text(self) -> str:
        """The line as typed so far."""
        return "".join(self.buffer)

    def start(self, prompt: str, secret: bool = False) -> None:
        """A new line: show `prompt`."""
        self.prompt, self.secret = prompt, secret
        self.buffer, self.cursor, self._browse = [], 0, len(self.history)
        self._too_long, self._garbage = False, 0
        self.output += prompt.encode()

    def set_text(self, text: str) -> None:
        """Replace the line (Tab completion) and redraw it."""
        self.buffer, self.cursor = list(text), len(text)
        self._redraw()

    def feed(self, data: bytes) -> list[Event]:
        """Take typed bytes; the events they complete, in order."""
        events: list[Event] = []
        for byte in data:
            event = self._byte(byte)
            if event is not None:
                events.append(event)
        return events

    def _byte(self, byte: int) -> Event | None:
        cr, self._after_cr = self._after_cr, byte == 0x0D
        if self._escape:
            return self._escape_byte(byte)
        if byte in (0x0D, 0x0A):
            return None if byte == 0x0A and cr else self._enter()
        if byte < 0x20 or byte == DELETE:
            return self._control(byte)
        return self._text_byte(byte)

    def _control(self, byte: int) -> Event | None:
        if byte in (BACKSPACE, DELETE):
            if self.cursor:
                del self.buffer[self.cursor - 1]
                self.cursor -= 1
                self._redraw()
        elif byte == CTRL_U:
            self.buffer, self.cursor = [], 0
            self._redraw()
        elif byte == CTRL_C:
            self.output += b"^C\r\n"
            return Event("interrupt")
        elif byte == CTRL_D and not self.buffer:
            return Event("eof")
        elif byte == TAB and not self.secret:
            return Event("tab", self.text[: self.cursor])
        elif byte == ESC:
            self._escape = b"\x1b"
        else:
            return self._garbage_byte()
        return None

    def _escape_byte(self, byte: int) -> Event | None:
        self._escape += bytes([byte])
        if len(self._escape) == 2 and byte not in (ord("["), ord("O")):
            self._escape = b""  # a lone ESC (or Alt-key): ignored
            return None
        if len(self._escape) > 2 and 0x40 <= byte <= 0x7E or len(self._escape) > 8:
            sequence, self._escape = self._escape, b""
            self._arrow(sequence[-1:])
        return None

    def _arrow(self, final: bytes) -> None:
        if final == b"A" and self._browse > 0 and not self.secret:
            self._browse -= 1
            self.set_text(self.history[self._browse])
        elif final == b"B" and self._browse < len(self.history) and not self.secret:
            self._browse += 1
            self.set_text(self.history[self._browse] if self._browse < len(self.history) else "")
        elif final == b"C" and self.cursor < len(self.buffer):
            self.cursor += 1
            self._redraw()
        elif final == b"D" and self.cursor > 0:
            self.cursor -= 1
            self._redraw()

    def _text_byte(self, byte: int) -> Event | None:
        try:
            chars = self._decoder.decode(bytes([byte]))
        except UnicodeDecodeError:
            self._decoder.reset()
            return self._garbage_byte()
        for char in chars:
            if not char.isprintable():
                return self._garbage_byte()
            if len(self.buffer) >= MAX_LINE:
                if not self._too_long:
                    self.output += BELL
                self._too_long = True
                continue
            self.buffer.insert(self.cursor, char)
            self.cursor += 1
            self._echo_insert()
        self._garbage = 0 if chars else self._garbage
        return None

    def _garbage_byte(self) -> Event | None:
        self._garbage += 1
        if self._garbage >= MAX_GARBAGE:
            self._garbage = 0
            self.buffer, self.cursor = [], 0
            self.output += b"\r\n"
            return Event("refused", GARBAGE)
        self.buffer.append("\ufffd")  # marks the line as unreadable; it is refused at Enter
        self.cursor = len(self.buffer)
        self._echo_insert()
        return None

    def _enter(self) -> Event:
        self.output += b"\r\n"
        text, too_long = self.text, self._too_long
        self.buffer, self.cursor, self._too_long, self._garbage = [], 0, False, 0
        if too_long:
            return Event("refused", TOO_LONG)
        if "\ufffd" in text:
            return Event("refused", GARBAGE)
        if text.strip() and not self.secret and (not self.history or self.history[-1] != text):
            self.history = [*self.history, text][-HISTORY_KEPT:]
        return Event("line", text)

    def _shown(self, chars: list[str]) -> str:
        return "*" * len(chars) if self.secret else "".join(chars).replace("\ufffd", "?")

    def _echo_insert(self) -> None:
        if self.cursor == len(self.buffer):
            self.output += self._shown(self.buffer[-1:]).encode()
        else:
            self._redraw()

    def _redraw(self) -> None:
        tail = len(self.buffer) - self.cursor
        line = self.prompt + self._shown(self.buffer)
        self.output += b"\r" + line.encode() + b"\x1b[K" + (f"\x1b[{tail}D".encode() if tail else b"")


# -- the session ------------------------------------------------------------------------------------------


class Session:
    """One technician at one terminal: banner, PIN login, commands, logout; ends when the terminal goes away."""

    wrong_pin_delay_s = 0.5  # after each wrong PIN: guessing stays slow even below the lock-out
    locked_delay_s = 1.0

    def __init__(
        self, box: Box, transport: Transport, gate: PinGate, *, where: str, idle_s: float | None = None
    ) -> None:
        self.box = box
        self.transport = transport
        self.gate = gate
        self.where = where  # `serial`, `socket` or `terminal`: the lock-out counts per place
        self._idle_s = idle_s
        self.editor = LineEditor()
        self.pending: bytes = b""

    @property
    def language(self) -> str:
        """The box language if a terminal can show it, else English (read per message: `config set` applies at once)."""
        language = self.box.config.box.language
        return "en" if language.split("-")[0] in TERMINAL_UNFIT_LANGUAGES else language

    @property
    def idle_s(self) -> float:
        """How long the console waits for a key before it logs the technician out."""
        return self._idle_s if self._idle_s is not None else self.box.config.console.idle_logout_s

    # -- output ---------------------------------------------------------------------------------------

    def words(self, message: str, **values: Any) -> str:
        """`message` (an N_() text) in the box language, filled in (English when a translation lost a value)."""
        translated = translate(message, self.language)
        try:
            return translated % values if values else translated
        except (KeyError, TypeError, ValueError):
            return message % values if values else message

    async def raw(self, text: str) -> None:
        """Write text as it is (line ends become CR LF)."""
        await self.transport.write(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())

    async def line(self, text: str = "") -> None:
        """Write one line, wrapped at 80 columns (continuation lines indented)."""
        wrapped = textwrap.wrap(text, WIDTH - 1, subsequent_indent="  ", break_on_hyphens=False) or [""]
        await self.raw("\n".join(wrapped) + "\n")

    async def say(self, message: str, **values: Any) -> None:
        """Write an N_() message translated into the box language."""
        await self.line(self.words(message, **values))

    async def flush(self) -> None:
        """Write what the editor echoes."""
        if self.editor.output:
            data, self.editor.output = bytes(self.editor.output), bytearray()
            await self.transport.write(data)

    # -- input ------------------------------------------------------------------------------------------

    async def read(self, wait_s: float | None = None) -> bytes:
        """The next bytes (raise Disconnected when the terminal went away, TimeoutError after `wait_s`)."""
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        async with asyncio.timeout(wait_s):
            data = await self.transport.read()
        if not data:
            raise Disconnected(self.where)
        return data

    async def ask(
        self, prompt: str, *, secret: bool = False, complete: Callable[[str], list[str]] | None = None
    ) -> Event:
        """One line typed after `prompt` (or an interrupt/eof/refused event); TimeoutError when idle too long."""
        self.editor.start(prompt, secret)
        await self.flush()
        while True:
            events = self.editor.feed(await self.read(self.idle_s))
            for event in events:
                if event.kind == "tab" and complete is not None:
                    await self._complete(event.text, complete)
                    continue
                await self.flush()
                return event
            await self.flush()

    async def _complete(self, typed: str, complete: Callable[[str], list[str]]) -> None:
        options = complete(typed)
        head = typed.rsplit(" ", 1)[0] + " " if " " in typed else ""
        if len(options) == 1:
            self.editor.set_text(head + options[0] + " ")
        elif options:
            common = _common_prefix(options)
            if len(head + common) > len(typed):
                self.editor.set_text(head + common)
            else:
                self.editor.output += b"\r\n" + "  ".join(options).encode() + b"\r\n"
                self.editor.set_text(typed)
        else:
            self.editor.output += BELL
        await self.flush()

    async def confirm(self, message: str, word: str, **values: Any) -> bool:
        """Ask the technician to type `word` to go on (anything else, Ctrl-C or silence: no)."""
        await self.say(message, word=word, **values)
        try:
            event = await self.ask(self.words(N_("Type %(word)s to confirm: "), word=word))
        except TimeoutError:
            return False
        return event.kind == "line" and event.text.strip() == word

    # -- the flow ---------------------------------------------------------------------------------------

    async def banner(self) -> None:
        """Who this box is, how it is, where to reach it; the setup code while no admin exists."""
        box, health = self.box, self.box.health()
        await self.line()
        name = box.config.box.name + (f" ({box.config.box.room})" if box.config.box.room else "")
        await self.line(f"classbox {__version__} · {name}")
        state = health.status if box.running() else self.words(N_("box software not running (offline console)"))
        await self.say(N_("State: %(state)s"), state=state)
        shown = ", ".join(f"{iface} {address}" for iface, address in addresses()) or self.words(N_("none"))
        await self.say(N_("Addresses: %(addresses)s"), addresses=shown)
        code = box.setup_code() if box.needs_setup() else None
        if code:
            await self.say(N_("Setup code for the first admin account: %(code)s"), code=code)
        fingerprint = box.https_fingerprint()
        if fingerprint:
            await self.say(N_("HTTPS fingerprint (SHA-256): %(fingerprint)s"), fingerprint=fingerprint)

    async def login(self) -> bool:
        """Ask for the technician PIN until it is right; False after a lock-out message or Ctrl-C/eof."""
        if not self.box.config.console.tech_pin_hash:
            await self.say(N_("No technician PIN is set: set one with `classbox config set-pin --tech`."))
        while True:
            try:
                event = await self.ask(self.words(N_("Technician PIN: ")), secret=True)
            except TimeoutError:
                return False
            if event.kind == "refused":
                await self.say(event.text, max=MAX_LINE, baud=self.box.config.console.baudrate)
                continue
            if event.kind != "line":
                return False
            if await self._check(event.text.strip()):
                log.warning("console: technician logged in on %s", self.where)
                return True

    async def _check(self, pin: str) -> bool:
        try:
            await self.gate.check(self.box.config.console.tech_pin_hash, pin, self.where)
        except TooManyAttempts as err:
            log.warning("console: %s locked out after wrong PINs", self.where)
            await self.say(str(err))
            await asyncio.sleep(self.locked_delay_s)  # a locked terminal cannot spin through attempts
            return False
        except NotAllowed as err:
            log.warning("console: wrong technician PIN on %s", self.where)
            await asyncio.sleep(self.wrong_pin_delay_s)
            await self.say(str(err))
            return False
        return True


def _common_prefix(words: list[str]) -> str:
    first, last = min(words), max(words)
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last)))
    return first[:size]
