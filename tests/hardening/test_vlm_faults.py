"""VLM reward head against faulty and hostile endpoints: keys go only where they were named, no
local file is read, and every failure raises or is loud (warning, counter, ``vlm_error``)."""

from __future__ import annotations

import json
import logging
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from world_gym.reward_models import RewardContext, VLMError, VLMReward

Reply = tuple[int, dict[str, str], bytes]
KEY_VARS = ("WORLD_GYM_VLM_BASE_URL", "WORLD_GYM_VLM_MODEL", "WORLD_GYM_VLM_API_KEY", "OPENAI_BASE_URL",
            "OPENAI_MODEL", "OPENAI_API_KEY", "MY_VLM_KEY")


def answer(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


class Endpoint:
    """A local chat-completions server that records the Authorization header of every request."""

    def __init__(self, reply: Callable[[int], Reply] | None = None) -> None:
        self.reply = reply or (lambda n: (200, {}, answer('{"success": true}')))
        self.auth: list[str | None] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.auth.append(self.headers.get("Authorization"))
                status, headers, body = endpoint.reply(len(endpoint.auth) - 1)
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)


def frames(b: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (b, 1, 8, 8, 3), dtype=np.uint8)


def ask(head: VLMReward) -> None:
    head(frames(), RewardContext(task=["push the T"]))


# --- keys go only where they were named ------------------------------------------------------------

@pytest.mark.parametrize("env, kwargs, sent", [
    ({}, {"api_key": "sk-arg"}, "Bearer sk-arg"),
    ({"MY_VLM_KEY": "sk-named"}, {"api_key_env": "MY_VLM_KEY"}, "Bearer sk-named"),
    ({"OPENAI_API_KEY": "sk-openai"}, {}, None),
    ({"WORLD_GYM_VLM_API_KEY": "sk-wg"}, {}, None),  # a base_url argument is not the env's endpoint
    ({}, {}, None),
], ids=["api_key", "api_key_env", "OPENAI_API_KEY-elsewhere", "WORLD_GYM_VLM_API_KEY-other-url", "no-key"])
def test_key_sent_only_where_named(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch, env: dict, kwargs: dict,
                                   sent: str | None) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ask(VLMReward(base_url=endpoint.url, model="m", **kwargs))
    assert endpoint.auth == [sent]


def test_environment_endpoints_get_only_their_own_key(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("OPENAI_BASE_URL", endpoint.url)  # a proxy the key was not named for
    ask(VLMReward(model="m"))
    monkeypatch.setenv("WORLD_GYM_VLM_BASE_URL", endpoint.url)
    monkeypatch.setenv("WORLD_GYM_VLM_API_KEY", "sk-wg")
    ask(VLMReward(model="m"))
    assert endpoint.auth == [None, "Bearer sk-wg"]


def test_openai_key_goes_to_the_openai_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    head = VLMReward(model="gpt-4o-mini")
    assert head.url == "https://api.openai.com/v1/chat/completions" and head.api_key == "sk-openai"
    assert VLMReward(base_url="https://api.openai.com/v1/", model="m").api_key == "sk-openai"
    assert VLMReward(base_url="https://api.openai.com.evil.example/v1", model="m").api_key is None
    assert VLMReward(base_url="http://api.openai.com/v1", model="m").api_key is None  # not over plain http


def test_key_arguments_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="MY_VLM_KEY.*not set"):
        VLMReward(base_url="http://127.0.0.1:1/v1", model="m", api_key_env="MY_VLM_KEY")
    with pytest.raises(ValueError, match="not both"):
        VLMReward(base_url="http://127.0.0.1:1/v1", model="m", api_key="a", api_key_env="MY_VLM_KEY")
    with pytest.raises(ValueError, match="endpoint"):
        VLMReward(model="m")


def test_redirects_are_not_followed(endpoint: Endpoint) -> None:
    elsewhere = endpoint.url + "/chat/completions"
    with_redirect = Endpoint(lambda n: (307, {"Location": elsewhere}, b""))
    try:
        head = VLMReward(base_url=with_redirect.url, model="m", api_key="sk-arg", max_retries=0, on_error="raise")
        with pytest.raises(VLMError, match="307.*not followed"):
            ask(head)
    finally:
        with_redirect.close()
    assert endpoint.auth == []  # the key never reached the other server


# --- only http(s), never a local file ----------------------------------------------------------------

@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/v1", "127.0.0.1:8000/v1", "data:,{}",
                                 "http:///v1", "gopher://x"])
def test_only_http_and_https_urls(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        VLMReward(base_url=url, model="m")


def test_a_local_file_url_is_refused_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = tmp_path / "verdict.json"
    verdict.write_bytes(answer('{"success": true}'))
    monkeypatch.setenv("WORLD_GYM_VLM_BASE_URL", verdict.parent.as_uri())
    with pytest.raises(ValueError, match="http:// or https://"):
        VLMReward(model="m")


# --- settings ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": -1}, {"timeout": float("nan")},
                                    {"max_retries": -1}, {"n_samples": 0}, {"max_workers": 0},
                                    {"backoff": -0.5}, {"error_reward": float("nan")}, {"frames": "first"},
                                    {"on_error": "ignore"}, {"context_frames": -1}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        VLMReward(base_url="http://127.0.0.1:1/v1", model="m", **kwargs)


# --- faults are loud or raise --------------------------------------------------------------------------

def test_non_utf8_body_is_a_recorded_error_not_a_crash() -> None:
    bad = Endpoint(lambda n: (200, {}, b'{"choices": "\xff\xfe\x80"}'))
    try:
        with pytest.warns(RuntimeWarning, match="not UTF-8"):
            out = VLMReward(base_url=bad.url, model="m", max_retries=1, backoff=0.0)(
                frames(), RewardContext(task=["t"]))
        assert not out.info["vlm_ok"][0, 0] and "not UTF-8" in out.info["vlm_error"][0, 0]
        with pytest.raises(VLMError, match="not UTF-8"):
            ask(VLMReward(base_url=bad.url, model="m", max_retries=0, on_error="raise"))
    finally:
        bad.close()


def test_record_mode_warns_once_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    down = Endpoint(lambda n: (503, {}, b"down"))
    try:
        head = VLMReward(base_url=down.url, model="m", max_retries=0, error_reward=-1.0)
        with pytest.warns(RuntimeWarning, match="failed queries score reward -1.0"):
            out = head(frames(2), RewardContext(task=["t", "t"]))
        assert out.info["vlm_errors"].tolist() == [1, 1] and out.reward.tolist() == [[-1.0], [-1.0]]
        assert not out.success.any() and "HTTP 503" in out.info["vlm_error"][0, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a second failure does not warn again ...
            with caplog.at_level(logging.WARNING, logger="world_gym.reward_models.vlm"):
                head(frames(1, seed=3), RewardContext(task=["t"]))
        assert head.stats["errors"] == 3 and "HTTP 503" in caplog.text  # ... but is counted and logged
    finally:
        down.close()


def test_failed_query_in_an_env_is_loud_and_finite(micro_model, micro_frames) -> None:
    from world_gym.env import WorldModelEnv

    refused = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    env = WorldModelEnv(model=micro_model, initial_states=micro_frames, device="cpu", reward_model="vlm",
                        reward_model_kwargs={"base_url": refused, "model": "m", "max_retries": 0, "timeout": 2.0},
                        task="push the T")
    env.reset(seed=0)
    with pytest.warns(RuntimeWarning, match="vlm reward head"):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
    assert np.isfinite(reward) and not terminated
    assert info["vlm_errors"] == 1 and not info["vlm_ok"].all() and "connection error" in info["vlm_error"][-1]
