"""VLM labeler: ask a vision-language model whether the task is achieved in the frame.

Speaks the OpenAI chat-completions protocol over HTTP(S) with ``httpx``, so any compatible
server works: vLLM, Ollama, llama.cpp server, OpenAI. Each judged frame (with ``context_frames``
earlier frames of the chunk before it) goes as base64 PNG beside the task text; the model is asked
for JSON ``{"success": true|false, "reason": "..."}``.

Faults are never successes, and never silent: timeouts, connection errors, HTTP 429/5xx and
unreadable response bodies (invalid JSON, not UTF-8) are retried with exponential backoff. What
still fails, and answers that are garbled or refuse, either raise :class:`VLMError`
(``on_error="raise"``) or (``on_error="record"``, the default) give success False, reward
``error_reward`` (0 by default, so that env rewards stay finite), ``info["vlm_ok"] = False``, the
error text in ``info["vlm_error"]`` (``""`` where the query worked) and the count of failed
queries in ``info["vlm_errors"]``; the first failure of a head is reported with
``warnings.warn`` and every one is logged at WARNING level (``head.stats["errors"]`` counts them).

Endpoint, model and key come from the arguments or the environment. Endpoint:
``base_url=``, else ``WORLD_GYM_VLM_BASE_URL``, else ``OPENAI_BASE_URL``, else OpenAI's
``https://api.openai.com/v1`` when a key for it is given. Model: ``model=``, else
``WORLD_GYM_VLM_MODEL``, else ``OPENAI_MODEL``. Only ``http`` and ``https`` endpoints are
accepted, redirects are not followed, and no local file is ever read.

A key is sent only to the endpoint it was named for: ``api_key=`` or ``api_key_env=`` (the name
of an environment variable) go to the chosen endpoint; ``WORLD_GYM_VLM_API_KEY`` only to the
endpoint of ``WORLD_GYM_VLM_BASE_URL``; ``OPENAI_API_KEY`` only to ``https://api.openai.com``.
Any other endpoint gets no ``Authorization`` header unless a key is named for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import random
import re
import struct
import threading
import time
import warnings
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import numpy as np

from world_gym.reward_models.base import RewardContext, RewardHead, RewardOutput
from world_gym.validation import check_count

DEFAULT_PROMPT = (
    "You are a strict judge of robot task completion. The task is: {task}\n"
    "Look at the image(s); the last image is the current state. Is the task fully achieved in the last image? "
    'Answer with JSON only, no other text: {{"success": true or false, "reason": "<one short sentence>"}}'
)


logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"


class VLMError(RuntimeError):
    """A query that failed after its retries, or an answer that could not be read as a verdict."""


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 image, with the standard library alone.

    Args:
        image: RGB image.

    Returns:
        The PNG file's bytes.
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))  # filter type 0 on every row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def parse_verdict(text: str) -> bool:
    """Read ``{"success": bool}`` out of a model's answer (code fences and prose around it allowed).

    Args:
        text: the assistant message content.

    Returns:
        The verdict.

    Raises:
        VLMError: no JSON object with a boolean ``success`` (a refusal, prose, garbage).
    """
    for match in re.finditer(r"\{.*?\}", text or "", flags=re.DOTALL):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        value = obj.get("success") if isinstance(obj, dict) else None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    raise VLMError(f"unparseable answer (no JSON with boolean 'success'): {str(text)[:120]!r}")


def _is_openai(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.hostname == "api.openai.com" and parts.port in (None, 443)


def resolve_endpoint(base_url: str | None, api_key: str | None,
                     api_key_env: str | None) -> tuple[str, str | None, str]:
    """The endpoint, the key to send there (or None) and where the key came from.

    Args:
        base_url: the endpoint the caller named, or None (then the environment's, see the module).
        api_key: a key named for the endpoint.
        api_key_env: the name of an environment variable holding a key named for the endpoint.

    Returns:
        ``(base_url, api_key or None, key source)``.

    Raises:
        ValueError: no endpoint, both key arguments, an unset ``api_key_env``, or a URL that is not
            ``http(s)://host...``.
    """
    if api_key is not None and api_key_env is not None:
        raise ValueError("give api_key= or api_key_env=, not both")
    url_source = "base_url="
    if not base_url:
        for var in ("WORLD_GYM_VLM_BASE_URL", "OPENAI_BASE_URL"):
            if os.environ.get(var):
                base_url, url_source = os.environ[var], var
                break
    key, key_source = None, "none"
    if api_key_env is not None:
        key, key_source = os.environ.get(api_key_env), f"${api_key_env}"
        if not key:
            raise ValueError(f"api_key_env={api_key_env!r} names an environment variable that is not set")
    elif api_key:
        key, key_source = api_key, "api_key="
    elif url_source == "WORLD_GYM_VLM_BASE_URL" and os.environ.get("WORLD_GYM_VLM_API_KEY"):
        key, key_source = os.environ["WORLD_GYM_VLM_API_KEY"], "$WORLD_GYM_VLM_API_KEY"
    elif os.environ.get("OPENAI_API_KEY") and (not base_url or _is_openai(base_url)):
        key, key_source = os.environ["OPENAI_API_KEY"], "$OPENAI_API_KEY"
    if not base_url:
        if key is None:
            raise ValueError("vlm reward head needs an endpoint: base_url=... or WORLD_GYM_VLM_BASE_URL / "
                             "OPENAI_BASE_URL (or a key for OpenAI: api_key=, api_key_env= or OPENAI_API_KEY)")
        base_url = OPENAI_BASE_URL
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"vlm base_url must be an http:// or https:// URL with a host, got {base_url!r}")
    return base_url, key, key_source


def _first_line(text: str, limit: int = 200) -> str:
    return text.strip().splitlines()[0][:limit] if text.strip() else ""


class VLMReward(RewardHead):
    """Reward 1 where a VLM says the task is achieved, else 0 (``vlm``).

    Args:
        base_url: chat-completions base URL, e.g. ``http://127.0.0.1:8000/v1`` (http or https).
        model: model name the server knows.
        api_key: bearer token for ``base_url``, if the server wants one.
        api_key_env: or the name of the environment variable that holds it.
        task: instruction for envs whose ``context.task`` is None or empty.
        n_samples: answers per frame; the verdict is their majority (ties are not success) and
            the reward the share of "yes" among the valid answers.
        frames: ``"last"`` judges the last frame of each chunk (others get reward 0 and
            ``vlm_queried`` False); ``"all"`` judges every frame.
        context_frames: earlier frames of the chunk sent before the judged one.
        temperature: sampling temperature (``n_samples > 1`` needs it above 0).
        max_tokens: answer length limit.
        timeout: seconds per HTTP request (> 0).
        max_retries: retries after the first attempt, for transport faults, 429 and 5xx.
        backoff: first retry delay in seconds, doubled each retry (with up to 10% jitter).
        max_workers: concurrent requests.
        cache_size: answers kept, keyed by the hash of the images, task, model and sample index.
        json_mode: also send ``response_format={"type": "json_object"}`` (servers that support it).
        prompt: template with ``{task}``.
        on_error: ``"record"`` (error into info, a warning, reward ``error_reward``, success False)
            or ``"raise"``.
        error_reward: the (finite) reward of a frame whose query failed in ``"record"`` mode.
    """

    name = "vlm"

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, task: str | None = None, n_samples: int = 1,
                 frames: Literal["last", "all"] = "last",
                 context_frames: int = 0, temperature: float = 0.0, max_tokens: int = 128,
                 timeout: float = 60.0, max_retries: int = 3, backoff: float = 1.0, max_workers: int = 8,
                 cache_size: int = 10_000, json_mode: bool = False, prompt: str = DEFAULT_PROMPT,
                 on_error: Literal["record", "raise"] = "record", error_reward: float = 0.0) -> None:
        base_url, api_key, self.key_source = resolve_endpoint(base_url, api_key, api_key_env)
        model = model or next((os.environ[n] for n in ("WORLD_GYM_VLM_MODEL", "OPENAI_MODEL") if os.environ.get(n)),
                              None)
        if not model:
            raise ValueError("vlm reward head needs a model name: model=... or WORLD_GYM_VLM_MODEL / OPENAI_MODEL")
        if frames not in ("last", "all"):
            raise ValueError(f"frames must be 'last' or 'all', got {frames!r}")
        if on_error not in ("record", "raise"):
            raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
        for name, value, low in (("n_samples", n_samples, 1), ("max_tokens", max_tokens, 1),
                                 ("max_workers", max_workers, 1), ("context_frames", context_frames, 0),
                                 ("max_retries", max_retries, 0), ("cache_size", cache_size, 0)):
            check_count(name, value, low, optional=False)
        for name, value, positive in (("timeout", timeout, True), ("backoff", backoff, False),
                                      ("temperature", temperature, False)):
            bad = isinstance(value, bool) or not isinstance(value, (int, float, np.number))
            if bad or not math.isfinite(value) or value < 0 or (positive and value == 0):
                raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
        if not isinstance(error_reward, (int, float, np.number)) or not math.isfinite(error_reward):
            raise ValueError(f"error_reward must be a finite number (env rewards must stay finite), "
                             f"got {error_reward!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.task = model, api_key, task
        self.error_reward = float(error_reward)
        self.n_samples, self.frames, self.context_frames = n_samples, frames, context_frames
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout
        self.max_retries, self.backoff, self.max_workers = max_retries, backoff, max_workers
        self.json_mode, self.prompt, self.on_error = json_mode, prompt, on_error
        self.cache_size = cache_size
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._warned = False
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0, "errors": 0}

    def _http(self) -> httpx.Client:
        # trust_env=False: no proxy or .netrc credentials picked up from the environment
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False)
            return self._client

    def close(self) -> None:
        """Close the HTTP connections (a later query opens new ones)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- one request -------------------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> Any:
        """POST with retries; returns the decoded response JSON or raises :class:`VLMError`."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        client = self._http()
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + 0.1 * random.random()))
            with self._lock:
                self.stats["requests"] += 1
            try:
                resp = client.post(self.url, content=data, headers=headers)
            except httpx.TimeoutException:
                last = f"timeout after {self.timeout}s"
                continue
            except httpx.HTTPError as e:  # connection refused or dropped, protocol errors
                last = f"connection error: {type(e).__name__}: {_first_line(str(e))}"
                continue
            if not resp.is_success:
                detail = resp.content[:200].decode("utf-8", errors="replace")
                last = f"HTTP {resp.status_code}: {detail}"
                if resp.is_redirect:
                    last += f" (redirect to {resp.headers.get('location')!r} not followed)"
                if resp.status_code == 429 or resp.status_code >= 500:
                    continue
                raise VLMError(last)
            try:
                return json.loads(resp.content.decode("utf-8"))
            except UnicodeDecodeError:
                last = f"response body is not UTF-8: {resp.content[:120]!r}"
            except json.JSONDecodeError:
                last = f"garbled response body: {resp.content[:120]!r}"
        raise VLMError(f"{last} (after {self.max_retries + 1} attempts)")

    def _ask(self, images: list[np.ndarray], task: str, sample: int) -> bool:
        content: list[dict[str, Any]] = [{"type": "text", "text": self.prompt.format(task=task)}]
        for img in images:
            url = "data:image/png;base64," + base64.b64encode(encode_png(img)).decode()
            content.append({"type": "image_url", "image_url": {"url": url}})
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": content}],
                                "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.n_samples > 1:
            body["seed"] = sample  # distinct samples where servers honour seeds
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        reply = self._post(body)
        try:
            message = reply["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            message = None
        if not isinstance(message, dict):
            raise VLMError(f"response without choices[0].message: {json.dumps(reply)[:120]}")
        if message.get("refusal"):
            raise VLMError(f"model refused: {str(message['refusal'])[:120]}")
        content = message.get("content") or ""
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise VLMError(f"message content is a {type(content).__name__}, not text: {str(content)[:120]}")
        return parse_verdict(content)

    def _key(self, images: list[np.ndarray], task: str, sample: int) -> str:
        h = hashlib.sha256()
        for img in images:
            h.update(str(img.shape).encode() + np.ascontiguousarray(img).tobytes())
        h.update(f"\0{task}\0{self.model}\0{self.prompt}\0{sample}".encode())
        return h.hexdigest()

    def _vote(self, key: str, images: list[np.ndarray], task: str, sample: int) -> bool | str:
        """A verdict (cached) or the error message."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats["cache_hits"] += 1
                return self._cache[key]
        try:
            verdict = self._ask(images, task, sample)
        except VLMError as e:
            with self._lock:
                self.stats["errors"] += 1
            logger.warning("vlm reward head: query to %s failed: %s", self.url, e)
            return str(e)
        with self._lock:
            self._cache[key] = verdict
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return verdict

    # --- the head ----------------------------------------------------------------------------

    def __call__(self, frames: np.ndarray, context: RewardContext) -> RewardOutput:
        """Judge ``(B, T, H, W, 3)`` uint8 frames against each env's task.

        Args:
            frames: the frames to judge.
            context: ``task`` (one per env) overrides the head's ``task`` where it is not empty.

        Returns:
            reward (share of yes votes; ``error_reward`` where the query failed), success (majority
            yes) and ``info`` with ``vlm_yes_votes``, ``vlm_valid_votes``, ``vlm_queried``,
            ``vlm_ok`` and ``vlm_error`` (all ``(B, T)``) and ``vlm_errors`` (``(B,)``: failed
            queries of each env in this call).

        Raises:
            ValueError: bad frames, or no task.
            VLMError: a query failed and ``on_error="raise"``.
        """
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"vlm scores uint8 frames of shape (B, T, H, W, 3), got {frames.dtype} {frames.shape}")
        b, t = frames.shape[:2]
        tasks = [t_ or self.task for t_ in context.task] if context.task is not None else [self.task] * b
        if len(tasks) != b or any(not s for s in tasks):
            raise ValueError(f"vlm needs a task text per env (context.task or task=...), got {tasks!r} for B={b}")
        steps = range(t) if self.frames == "all" else [t - 1]
        jobs = []  # (b, t, sample, key, images, task)
        for i in range(b):
            for j in steps:
                images = list(frames[i, max(0, j - self.context_frames):j + 1])
                for s in range(self.n_samples):
                    jobs.append((i, j, s, self._key(images, tasks[i], s), images, tasks[i]))
        unique = {job[3]: job for job in jobs}  # identical frames in a batch cost one request
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_workers, len(unique)))) as pool:
            futures = {k: pool.submit(self._vote, k, job[4], job[5], job[2]) for k, job in unique.items()}
            results = {k: f.result() for k, f in futures.items()}

        yes, valid = np.zeros((b, t), np.int32), np.zeros((b, t), np.int32)
        errors = np.full((b, t), "", dtype=object)
        queried = np.zeros((b, t), bool)
        for i, j, _, key, _, _ in jobs:
            queried[i, j] = True
            r = results[key]
            if isinstance(r, bool):
                valid[i, j] += 1
                yes[i, j] += r
            elif not errors[i, j]:
                errors[i, j] = r
        ok = queried & (valid > 0)
        if (queried & ~ok).any():
            i, j = np.argwhere(queried & ~ok)[0]
            if self.on_error == "raise":
                raise VLMError(f"env {i}, frame {j}: {errors[i, j]}")
            if not self._warned:
                self._warned = True
                warnings.warn(f"vlm reward head: a query to {self.url} failed (env {i}, frame {j}: {errors[i, j]}); "
                              f"failed queries score reward {self.error_reward} and success False, see "
                              "info['vlm_ok'], info['vlm_error'] and info['vlm_errors'] (this warning is shown "
                              "once per head; every failure is logged)", RuntimeWarning, stacklevel=2)
        failed = queried & ~ok
        reward = np.where(ok, yes / np.maximum(valid, 1), np.where(failed, self.error_reward, 0.0)).astype(np.float32)
        success = ok & (2 * yes > valid)
        return RewardOutput(reward=reward, success=success,
                            info={"vlm_yes_votes": yes, "vlm_valid_votes": valid, "vlm_queried": queried,
                                  "vlm_ok": ok | ~queried, "vlm_error": errors,
                                  "vlm_errors": failed.sum(axis=1).astype(np.int32)})
