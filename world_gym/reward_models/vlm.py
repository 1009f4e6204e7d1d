"""VLM labeler: ask a vision-language model whether the task is achieved in the frame.

Speaks the OpenAI chat-completions protocol over plain HTTP (standard library only), so any
compatible server works: vLLM, Ollama, llama.cpp server, OpenAI. Each judged frame (with
``context_frames`` earlier frames of the chunk before it) goes as base64 PNG beside the task text;
the model is asked for JSON ``{"success": true|false, "reason": "..."}``.

Faults are never successes: timeouts, connection errors, HTTP 429/5xx and unreadable response
bodies are retried with exponential backoff; what still fails, and answers that are garbled or
refuse, give reward 0, success False and an error string in ``info["vlm_error"]`` (``""`` where
the query worked) and ``info["vlm_ok"] = False``. With ``on_error="raise"`` they raise instead.

Endpoint, model and key come from the arguments or the environment:
``WORLD_GYM_VLM_BASE_URL`` / ``WORLD_GYM_VLM_MODEL`` / ``WORLD_GYM_VLM_API_KEY``, falling back
to ``OPENAI_BASE_URL`` / ``OPENAI_MODEL`` / ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import random
import re
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from world_gym.reward_models.base import RewardContext, RewardHead, RewardOutput

DEFAULT_PROMPT = (
    "You are a strict judge of robot task completion. The task is: {task}\n"
    "Look at the image(s); the last image is the current state. Is the task fully achieved in the last image? "
    'Answer with JSON only, no other text: {{"success": true or false, "reason": "<one short sentence>"}}'
)


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


def _env_first(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


class VLMReward(RewardHead):
    """Reward 1 where a VLM says the task is achieved, else 0 (``vlm``).

    Args:
        base_url: chat-completions base URL, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name the server knows.
        api_key: bearer token, if the server wants one.
        task: instruction for envs whose ``context.task`` is None or empty.
        n_samples: answers per frame; the verdict is their majority (ties are not success) and
            the reward the share of "yes" among the valid answers.
        frames: ``"last"`` judges the last frame of each chunk (others get reward 0 and
            ``vlm_queried`` False); ``"all"`` judges every frame.
        context_frames: earlier frames of the chunk sent before the judged one.
        temperature: sampling temperature (``n_samples > 1`` needs it above 0).
        max_tokens: answer length limit.
        timeout: seconds per HTTP request.
        max_retries: retries after the first attempt, for transport faults, 429 and 5xx.
        backoff: first retry delay in seconds, doubled each retry (with up to 10% jitter).
        max_workers: concurrent requests.
        cache_size: answers kept, keyed by the hash of the images, task, model and sample index.
        json_mode: also send ``response_format={"type": "json_object"}`` (servers that support it).
        prompt: template with ``{task}``.
        on_error: ``"record"`` (error into info, reward 0, success False) or ``"raise"``.
    """

    name = "vlm"

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 task: str | None = None, n_samples: int = 1, frames: Literal["last", "all"] = "last",
                 context_frames: int = 0, temperature: float = 0.0, max_tokens: int = 128,
                 timeout: float = 60.0, max_retries: int = 3, backoff: float = 1.0, max_workers: int = 8,
                 cache_size: int = 10_000, json_mode: bool = False, prompt: str = DEFAULT_PROMPT,
                 on_error: Literal["record", "raise"] = "record") -> None:
        api_key = api_key or _env_first("WORLD_GYM_VLM_API_KEY", "OPENAI_API_KEY")
        base_url = base_url or _env_first("WORLD_GYM_VLM_BASE_URL", "OPENAI_BASE_URL")
        if base_url is None and api_key:
            base_url = "https://api.openai.com/v1"
        model = model or _env_first("WORLD_GYM_VLM_MODEL", "OPENAI_MODEL")
        if not base_url:
            raise ValueError("vlm reward head needs an endpoint: base_url=... or WORLD_GYM_VLM_BASE_URL / OPENAI_BASE_URL")
        if not model:
            raise ValueError("vlm reward head needs a model name: model=... or WORLD_GYM_VLM_MODEL / OPENAI_MODEL")
        if frames not in ("last", "all") or on_error not in ("record", "raise") or n_samples < 1:
            raise ValueError(f"bad arguments: frames={frames!r}, on_error={on_error!r}, n_samples={n_samples}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.task = model, api_key, task
        self.n_samples, self.frames, self.context_frames = n_samples, frames, context_frames
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout
        self.max_retries, self.backoff, self.max_workers = max_retries, backoff, max_workers
        self.json_mode, self.prompt, self.on_error = json_mode, prompt, on_error
        self.cache_size = cache_size
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0, "errors": 0}

    # --- one request -------------------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries; returns the decoded response JSON or raises :class:`VLMError`."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + 0.1 * random.random()))
            with self._lock:
                self.stats["requests"] += 1
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read()[:200].decode(errors="replace")
                last = f"HTTP {e.code}: {detail}"
                if e.code == 429 or e.code >= 500:
                    continue
                raise VLMError(last) from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                reason = getattr(e, "reason", e)
                last = f"timeout after {self.timeout}s" if isinstance(reason, TimeoutError) \
                    else f"connection error: {reason}"
                continue
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                last = f"garbled response body: {raw[:120]!r}"
                continue
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
            raise VLMError(f"response without choices[0].message: {json.dumps(reply)[:120]}") from None
        if message.get("refusal"):
            raise VLMError(f"model refused: {str(message['refusal'])[:120]}")
        return parse_verdict(message.get("content") or "")

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
            reward (share of yes votes), success (majority yes) and ``info`` with ``vlm_yes_votes``,
            ``vlm_valid_votes``, ``vlm_queried``, ``vlm_ok`` and ``vlm_error`` (all ``(B, T)``).

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
        if self.on_error == "raise" and (queried & ~ok).any():
            i, j = np.argwhere(queried & ~ok)[0]
            raise VLMError(f"env {i}, frame {j}: {errors[i, j]}")
        reward = np.where(ok, yes / np.maximum(valid, 1), 0.0).astype(np.float32)
        success = ok & (2 * yes > valid)
        return RewardOutput(reward=reward, success=success,
                            info={"vlm_yes_votes": yes, "vlm_valid_votes": valid, "vlm_queried": queried,
                                  "vlm_ok": ok | ~queried, "vlm_error": errors})
