"""Reading Server-Sent Events (the WHATWG event-stream format), line by line."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    id: str | None
    event: str
    data: str


@dataclass
class EventParser:
    _id: str | None = None
    _event: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> Event | None:
        """One line, without its line break; the event a blank line completes."""
        if not line:
            if not self._data:
                self._event = "message"
                return None
            done = Event(self._id, self._event, "\n".join(self._data))
            self._event, self._data = "message", []
            return done
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None
