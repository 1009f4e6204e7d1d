"""The VLM labeler against a real HTTP server on 127.0.0.1 that plays a chat-completions endpoint."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import numpy as np
import pytest

from world_gym.reward_models import RewardContext, VLMError, VLMReward, make_reward_head
from world_gym.reward_models.vlm import encode_png, parse_verdict

# failed queries warn once per head (tests/hardening/test_vlm_faults.py checks the warning)
pytestmark = pytest.mark.filterwarnings("ignore:vlm reward head:RuntimeWarning")

Behaviour = Callable[[dict, int], tuple[int, bytes, float]]  # (request body, call index) -> (status, body, delay)


def answer(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


class FakeVLM:
    """A chat-completions server whose reply is chosen per test; records what it was sent."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = lambda body, n: (200, answer('{"success": true, "reason": "ok"}'), 0.0)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    n = len(fake.requests)
                    fake.requests.append(body)
                    fake.headers.append({"path": self.path, "auth": self.headers.get("Authorization")})
                status, payload, delay = fake.behaviour(body, n)
                time.sleep(delay)
                if status == 0:  # hang up without an answer
                    self.close_connection = True
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[FakeVLM]:
    s = FakeVLM()
    yield s
    s.close()


def frames(b: int = 2, t: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (b, t, 8, 8, 3), dtype=np.uint8)


def head(server: FakeVLM, **kw: object) -> VLMReward:
    kw.setdefault("backoff", 0.01)
    return VLMReward(base_url=server.url, model="fake-vl", task="push the T into the goal", **kw)


def test_png_roundtrip() -> None:
    from PIL import Image

    img = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(img)))), img)


@pytest.mark.parametrize("text, verdict", [
    ('{"success": true}', True),
    ('```json\n{"success": false, "reason": "block far"}\n```', False),
    ('Sure. {"success": "true", "reason": "x"}', True),
])
def test_parse_verdict(text: str, verdict: bool) -> None:
    assert parse_verdict(text) is verdict


@pytest.mark.parametrize("text", ["I'm sorry, I can't help with that.", '{"success": "maybe"}', "", "{not json}"])
def test_parse_verdict_rejects(text: str) -> None:
    with pytest.raises(VLMError):
        parse_verdict(text)


def test_request_and_verdicts(server: FakeVLM) -> None:
    server.behaviour = lambda body, n: (200, answer('{"success": %s}' % ("true" if "open" in json.dumps(body) else "false")), 0.0)
    h = head(server, api_key="sk-test")
    out = h(frames(), RewardContext(task=["open the drawer", "push the T"]))
    assert out.reward.shape == (2, 3) and out.reward.dtype == np.float32 and out.success.dtype == bool
    assert out.success.tolist() == [[False, False, True], [False, False, False]]  # only the last frame is judged
    assert out.info["vlm_queried"][:, -1].all() and not out.info["vlm_queried"][:, :-1].any()
    assert out.info["vlm_ok"].all() and (out.info["vlm_error"] == "").all()
    assert len(server.requests) == 2
    assert server.headers[0] == {"path": "/v1/chat/completions", "auth": "Bearer sk-test"}
    content = server.requests[0]["messages"][0]["content"]
    assert server.requests[0]["model"] == "fake-vl"
    png = base64.b64decode(content[1]["image_url"]["url"].removeprefix("data:image/png;base64,"))
    assert png.startswith(b"\x89PNG")


def test_cache_by_frame_hash(server: FakeVLM) -> None:
    h = head(server, frames="all")
    f = frames(1, 3)
    f[0, 1] = f[0, 0]  # identical frames in one batch: one request
    h(f, RewardContext())
    assert len(server.requests) == 2
    h(f, RewardContext())
    assert len(server.requests) == 2 and h.stats["cache_hits"] == 2


def test_retry_after_500(server: FakeVLM) -> None:
    server.behaviour = lambda body, n: (500, b"overloaded", 0.0) if n < 2 else (200, answer('{"success": true}'), 0.0)
    h = head(server)
    out = h(frames(1, 1), RewardContext())
    assert out.success.tolist() == [[True]] and len(server.requests) == 3 and h.stats["retries"] == 2


def test_retry_after_dropped_connection(server: FakeVLM) -> None:
    server.behaviour = lambda body, n: (0, b"", 0.0) if n == 0 else (200, answer('{"success": true}'), 0.0)
    out = head(server)(frames(1, 1), RewardContext())
    assert out.success.tolist() == [[True]] and len(server.requests) == 2


def test_persistent_500_is_an_error_not_a_success(server: FakeVLM) -> None:
    server.behaviour = lambda body, n: (503, b"down", 0.0)
    out = head(server, max_retries=1)(frames(1, 2), RewardContext())
    assert not out.success.any() and (out.reward == 0).all()
    assert not out.info["vlm_ok"][0, 1] and "HTTP 503" in out.info["vlm_error"][0, 1]
    assert len(server.requests) == 2
    with pytest.raises(VLMError, match="HTTP 503"):
        head(server, max_retries=0, on_error="raise")(frames(1, 2), RewardContext())


def test_client_error_is_not_retried(server: FakeVLM) -> None:
    server.behaviour = lambda body, n: (401, b'{"error": "bad key"}', 0.0)
    out = head(server)(frames(1, 1), RewardContext())
    assert "HTTP 401" in out.info["vlm_error"][0, 0] and len(server.requests) == 1


def test_timeout(server: FakeVLM) -> None:
    server.behaviour = lambda body, n: (200, answer('{"success": true}'), 1.0)
    out = head(server, timeout=0.2, max_retries=1)(frames(1, 1), RewardContext())
    assert not out.success.any() and "timeout" in out.info["vlm_error"][0, 0]


@pytest.mark.parametrize("payload", [b"<html>502 proxy</html>", json.dumps({"choices": []}).encode(),
                                     answer("I cannot assist with evaluating this image."),
                                     answer('{"success": "unclear"}')])
def test_garbled_or_refusing_replies(server: FakeVLM, payload: bytes) -> None:
    server.behaviour = lambda body, n: (200, payload, 0.0)
    out = head(server, max_retries=1)(frames(1, 1), RewardContext())
    assert not out.success.any() and not out.info["vlm_ok"].any() and out.info["vlm_error"][0, 0]


def test_refusal_field(server: FakeVLM) -> None:
    refusal = json.dumps({"choices": [{"message": {"content": None, "refusal": "I can't do that"}}]}).encode()
    server.behaviour = lambda body, n: (200, refusal, 0.0)
    out = head(server)(frames(1, 1), RewardContext())
    assert "refused" in out.info["vlm_error"][0, 0] and not out.success.any()


def test_majority_vote(server: FakeVLM) -> None:
    votes = {0: "true", 1: "false", 2: "true"}
    server.behaviour = lambda body, n: (200, answer('{"success": %s}' % votes[body["seed"]]), 0.0)
    out = head(server, n_samples=3, temperature=0.7)(frames(1, 1), RewardContext())
    assert out.success.tolist() == [[True]] and out.reward[0, 0] == pytest.approx(2 / 3)
    assert out.info["vlm_yes_votes"][0, 0] == 2 and out.info["vlm_valid_votes"][0, 0] == 3


def test_concurrent_requests(server: FakeVLM) -> None:
    server.behaviour = lambda body, n: (200, answer('{"success": false}'), 0.3)
    t0 = time.perf_counter()
    head(server, frames="all", max_workers=8)(frames(2, 4), RewardContext())
    assert len(server.requests) == 8 and time.perf_counter() - t0 < 1.5  # sequential would take 2.4 s


def test_configuration_from_environment(server: FakeVLM, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WORLD_GYM_VLM_BASE_URL", "WORLD_GYM_VLM_MODEL", "WORLD_GYM_VLM_API_KEY", "OPENAI_BASE_URL",
                "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="endpoint"):
        VLMReward(model="m")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://unused.invalid/v1")
    monkeypatch.setenv("WORLD_GYM_VLM_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_MODEL", "fake-vl")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    h = make_reward_head("vlm", task="stack the blocks")
    assert h.url == server.url + "/chat/completions" and h.model == "fake-vl"
    h(frames(1, 1), RewardContext())
    assert server.headers[0]["auth"] is None  # OPENAI_API_KEY goes to api.openai.com only
    monkeypatch.setenv("WORLD_GYM_VLM_API_KEY", "sk-wg")  # the key paired with WORLD_GYM_VLM_BASE_URL
    make_reward_head("vlm", task="stack the blocks")(frames(1, 1, seed=1), RewardContext())
    assert server.headers[1]["auth"] == "Bearer sk-wg"


def test_needs_a_task(server: FakeVLM) -> None:
    h = VLMReward(base_url=server.url, model="m")
    with pytest.raises(ValueError, match="task"):
        h(frames(1, 1), RewardContext())
    with pytest.raises(ValueError, match="task"):
        h(frames(2, 1), RewardContext(task=["push", None]))
    h.task = "default task"  # envs without a task of their own fall back to the head's
    assert h(frames(2, 1), RewardContext(task=["push", None])).info["vlm_ok"].all()
    assert any("default task" in json.dumps(r) for r in server.requests)
