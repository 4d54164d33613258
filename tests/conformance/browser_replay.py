"""The conformance suite's ``browser`` steps replayed with httpx against a real server's pages.

The suite's BrowserControl (HtmlUnit) takes each flow whose ``match`` fits the URL it is sent to, and runs
its tasks in order: a task whose ``match`` does not fit the current URL is skipped when ``optional``, a
failure otherwise; ``text`` types into an element, ``click`` presses one, ``wait`` waits for an element (and
its text) or a URL. Matching is Spring's ``PatternMatchUtils.simpleMatch``: ``*`` is the only wildcard.

Here a ``click`` on a submit button posts its form as a browser would (the form's fields, the button's own
name and value), and redirects are followed while they stay on the server; a redirect anywhere else (the
suite's callback) ends the replay at that URL. Only the selector kinds and commands our configuration uses
are understood: anything else fails the test rather than passing unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx


def simple_match(pattern: str, text: str) -> bool:
    """Spring's simpleMatch: ``*`` matches any run of characters; all else, ``?`` included, is literal."""
    return (
        re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), text, re.DOTALL) is not None
    )


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    form: int | None
    text: str = ""


@dataclass
class Page:
    url: str
    status: int
    elements: list[Element] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)

    def find(self, kind: str, target: str) -> list[Element]:
        if kind == "id":
            return [e for e in self.elements if e.attrs.get("id") == target]
        if kind == "name":
            return [e for e in self.elements if e.attrs.get("name") == target]
        if kind == "xpath" and re.fullmatch(r"//[a-z0-9]+", target):
            return [e for e in self.elements if e.tag == target[2:]]
        raise AssertionError(f"selector kind {kind!r} {target!r} is not understood by this replay")


class _Parser(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__()
        self.page = page
        self.form: int | None = None
        self.open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.page.forms.append(values)
            self.form = len(self.page.forms) - 1
        element = Element(tag, values, self.form)
        self.page.elements.append(element)
        if tag not in ("input", "meta", "link", "br", "img"):
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.form = None
        while self.open:
            if self.open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text += data


def parse(response: httpx.Response) -> Page:
    page = Page(str(response.url), response.status_code)
    if response.headers.get("content-type", "").startswith("text/html"):
        _Parser(page).feed(response.text)
    return page


class Browser:
    """One browser: a cookie jar on the server's origin, the current page, and the URL it ended at."""

    def __init__(self, client: httpx.Client, origin: str) -> None:
        self.client = client
        self.origin = origin
        self.page: Page | None = None
        self.url = ""
        self.typed: dict[int, str] = {}

    def _follow(self, response: httpx.Response) -> None:
        while response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if not location.startswith(self.origin + "/"):
                self.page, self.url = None, location  # left the server: the suite's callback
                return
            response = self.client.get(location)
        self.page, self.url = parse(response), str(response.url)
        self.typed = {}

    def go(self, url: str) -> None:
        self._follow(self.client.get(url))

    def _one(self, kind: str, target: str) -> Element:
        assert self.page is not None, f"no page of the server at {self.url} to find {kind}={target} in"
        found = self.page.find(kind, target)
        assert len(found) == 1, f"{kind}={target}: {len(found)} elements on {self.url}"
        return found[0]

    def text(self, kind: str, target: str, value: str) -> None:
        element = self._one(kind, target)
        assert element.tag in ("input", "textarea"), f"{kind}={target} is a <{element.tag}>, not a field"
        assert element.attrs.get("name"), f"{kind}={target} has no name: a browser would not send it"
        self.typed[id(element)] = value

    def click(self, kind: str, target: str) -> None:
        button = self._one(kind, target)
        assert button.tag == "button" or button.attrs.get("type") == "submit", (
            f"{kind}={target} submits nothing"
        )
        assert self.page is not None and button.form is not None, f"{kind}={target} is outside any form"
        fields = [
            (e.attrs["name"], self.typed.get(id(e), e.attrs.get("value", "")))
            for e in self.page.elements
            if e.form == button.form and e.tag in ("input", "textarea") and e.attrs.get("name")
        ]
        if button.attrs.get("name"):
            fields.append((button.attrs["name"], button.attrs.get("value", "")))
        form = self.page.forms[button.form]
        action = urljoin(self.url, form.get("action") or self.url)
        assert form.get("method", "get").lower() == "post", "our forms post"
        self._follow(self.client.post(action, data=dict(fields)))

    def wait_element(self, kind: str, target: str, text: str | None) -> Element:
        element = self._one(kind, target)
        if text is not None:
            assert re.search(text, element.text), f"{kind}={target} says {element.text!r}, not /{text}/"
        return element


def replay(browser: Browser, flows: list[dict[str, Any]], url: str, suite_done: str) -> list[tuple[str, str]]:
    """Run the flow matching ``url`` as the suite would; returns the (task, outcome) of each task. A ``wait``
    for ``suite_done`` (an element of the suite's own callback page) is checked as: the browser is at the
    suite's callback."""
    (flow,) = [flow for flow in flows if simple_match(flow["match"], url)]
    browser.go(url)
    outcomes = []
    for task in flow["tasks"]:
        if not simple_match(task.get("match", "*"), browser.url):
            assert task.get("optional"), f"task {task['task']!r}: unexpected URL {browser.url}"
            outcomes.append((task["task"], "skipped"))
            continue
        for command in task.get("commands", []):
            name, kind, target, *rest = command
            if name == "text":
                browser.text(kind, target, rest[0])
            elif name == "click":
                browser.click(kind, target)
            elif name == "wait" and kind == "id" and target == suite_done:
                assert browser.page is None, f"still on the server at {browser.url}"
            elif name == "wait" and kind in ("id", "name", "xpath"):
                browser.wait_element(kind, target, rest[1] if len(rest) > 1 else None)
            else:
                raise AssertionError(f"command {command!r} is not understood by this replay")
        outcomes.append((task["task"], "done"))
    return outcomes


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
