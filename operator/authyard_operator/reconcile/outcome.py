from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass
class Outcome:
    """What a reconcile decided: the status to write, the events to post, and whether to retry."""

    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None  # seconds; None: done until the next change or resync
    permanent_failure: bool = False  # retrying cannot help until the spec (or a referenced object) changes

    @property
    def failed(self) -> bool:
        return self.permanent_failure or any(event.type == "Warning" for event in self.events)
