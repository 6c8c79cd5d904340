"""The HTTP side of ``mpr-gateway chat``: chat completions with the refinement details
(``x-mpr-details: 1``), streamed or not, and the gateway's ``/ready`` and ``/admin/status``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

DETAILS_HEADER = "x-mpr-details"


class ChatError(Exception):
    """A request the gateway refused or could not serve; ``str()`` is a sentence for the user."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(slots=True)
class Answer:
    """One turn's answer: the text, the refinement (details and header) and when things arrived."""

    text: str = ""
    details: dict[str, Any] | None = None
    refinement: str | None = None
    refine_ms: float | None = None
    ttft_ms: float | None = None
    total_ms: float = 0.0
    finish_reason: str | None = None


def base_url(url: str) -> str:
    """The gateway's root URL: ``http://h:8000/v1/`` and ``http://h:8000`` both give ``http://h:8000``."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _error(response: httpx.Response) -> ChatError:
    """The OpenAI-shaped error of ``response`` as a :class:`ChatError` with a plain message."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    message = error.get("message") if isinstance(error, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    text = message or response.text.strip()[:200] or response.reason_phrase
    if response.status_code == 401:
        return ChatError(f"the gateway refused the API key (401 {code or 'unauthorized'}): {text}", 401, code)
    return ChatError(f"{response.status_code} {code or response.reason_phrase}: {text}", response.status_code, code)


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of an SSE line stream, up to ``[DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield data


class ChatClient:
    """Talks to one gateway with one client key (``None``: no ``Authorization``)."""

    def __init__(self, url: str, key: str | None, timeout_s: float = 300.0) -> None:
        self.url = base_url(url)
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0))

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            return self.http.get(path, headers=headers)
        except httpx.HTTPError as exc:
            raise ChatError(f"cannot reach the gateway at {self.url}: {exc or type(exc).__name__}") from exc

    def models(self) -> list[str]:
        """The model names the gateway serves (``GET /v1/models``; also checks the key)."""
        response = self._get("/v1/models")
        if response.status_code != 200:
            raise _error(response)
        return [str(m.get("id")) for m in response.json().get("data", []) if isinstance(m, dict)]

    def ready(self) -> dict[str, Any]:
        """``GET /ready`` (its body also when it answers 503: unready)."""
        response = self._get("/ready")
        if response.status_code not in (200, 503):
            raise _error(response)
        return dict(response.json())

    def admin_status(self, admin_key: str) -> dict[str, Any] | None:
        """``GET /admin/status`` with the admin key; None when the gateway has no such route."""
        response = self._get("/admin/status", headers={"authorization": f"Bearer {admin_key}"})
        if response.status_code in (404, 405):
            return None
        if response.status_code in (401, 403):
            refused = _error(response)
            raise ChatError(str(refused).replace("the API key", "the admin key", 1), response.status_code, refused.code)
        if response.status_code != 200:
            raise _error(response)
        return dict(response.json())

    def chat(
        self, model: str, messages: list[dict[str, Any]], stream: bool, on_details: Callable[[Answer], None], on_text: Callable[[str], None]
    ) -> Answer:
        """Send ``messages``; ``on_details`` is called once the refinement is known (before the
        answer's first token when streaming), ``on_text`` with each piece of the answer."""
        body = {"model": model, "messages": messages, "stream": stream}
        started = time.perf_counter()
        answer = Answer()
        try:
            with self.http.stream("POST", "/v1/chat/completions", json=body, headers={DETAILS_HEADER: "1"}) as response:
                if response.status_code != 200:
                    response.read()
                    raise _error(response)
                answer.refinement = response.headers.get("x-mpr-refinement")
                refine_ms = response.headers.get("x-mpr-refine-ms")
                answer.refine_ms = float(refine_ms) if refine_ms else None
                if stream:
                    self._read_stream(response, answer, started, on_details, on_text)
                else:
                    self._read_body(response, answer, on_details, on_text)
        except httpx.HTTPError as exc:
            raise ChatError(f"the request to {self.url} failed: {exc or type(exc).__name__}") from exc
        answer.total_ms = (time.perf_counter() - started) * 1000
        return answer

    @staticmethod
    def _read_body(response: httpx.Response, answer: Answer, on_details: Callable[[Answer], None], on_text: Callable[[str], None]) -> None:
        data = json.loads(response.read())
        answer.details = data.get("mpr")
        on_details(answer)
        choice = (data.get("choices") or [{}])[0]
        answer.text = (choice.get("message") or {}).get("content") or ""
        answer.finish_reason = choice.get("finish_reason")
        on_text(answer.text)

    @staticmethod
    def _read_stream(
        response: httpx.Response, answer: Answer, started: float, on_details: Callable[[Answer], None], on_text: Callable[[str], None]
    ) -> None:
        told = False
        parts: list[str] = []
        for data in _sse_data(response.iter_lines()):
            chunk = json.loads(data)
            if isinstance(chunk.get("error"), dict):
                raise ChatError(f"the stream failed: {chunk['error'].get('message')}", code=chunk["error"].get("code"))
            if "mpr" in chunk and not told:
                answer.details = chunk["mpr"]
            if not told and (answer.details is not None or chunk.get("choices")):
                told = True
                on_details(answer)
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if answer.ttft_ms is None:
                        answer.ttft_ms = (time.perf_counter() - started) * 1000
                    parts.append(piece)
                    on_text(piece)
                if choice.get("finish_reason"):
                    answer.finish_reason = choice["finish_reason"]
        if not told:
            on_details(answer)
        answer.text = "".join(parts)
