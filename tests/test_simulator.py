"""The start-frame encoding cache of the imagined episodes (world_gym.simulator)."""

import numpy as np
import pytest
import torch

from world_gym.env import WorldModelEnv
from world_gym.simulator import EncodingCache


def _env(micro_model, micro_frames, **kw) -> WorldModelEnv:
    return WorldModelEnv(model=micro_model, initial_states=micro_frames, device="cpu", chunk_size=2, **kw)


def test_cache_encodes_only_frames_it_has_not_seen_and_keeps_at_most_its_size():
    calls: list[int] = []

    def encode(frames: np.ndarray) -> torch.Tensor:
        calls.append(len(frames))
        return torch.as_tensor(frames.reshape(len(frames), -1)[:, :4], dtype=torch.float32) + len(calls)

    frames = np.arange(5, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    cache = EncodingCache(encode, max_size=3)
    first = cache(frames[[0, 1, 0]])  # a frame twice in one batch is encoded once
    assert calls == [2] and len(cache) == 2
    torch.testing.assert_close(first[0], first[2], rtol=0, atol=0)
    again = cache(frames[[1, 2]])  # frame 1 from the cache, as it was; frame 2 encoded now
    assert calls == [2, 1]
    torch.testing.assert_close(again[0], first[1], rtol=0, atol=0)
    cache(frames[[3, 4]])  # evicts the least recently used (frame 0)
    assert len(cache) == 3 and calls == [2, 1, 2]
    cache(frames[[0]])
    assert calls == [2, 1, 2, 1]
    with pytest.raises(ValueError, match="max_size must be >= 0"):
        EncodingCache(encode, max_size=-1)


def test_pinned_encodings_are_used_and_never_evicted():
    calls: list[int] = []
    cache = EncodingCache(lambda f: calls.append(len(f)) or torch.zeros(len(f), 1), max_size=1)
    frames = np.arange(3, dtype=np.uint8)[:, None, None, None].repeat(3, -1)
    cache.pin({cache.key(frames[0]): torch.ones(1)})
    cache(frames[[1]]), cache(frames[[2]])  # the LRU part holds one frame: 1 is evicted, 0 stays pinned
    assert cache(frames[[0, 2]]).flatten().tolist() == [1.0, 0.0] and calls == [1, 1] and len(cache) == 2
    cache.clear()
    cache(frames[[0]])
    assert calls == [1, 1, 1]


def test_cache_of_size_zero_encodes_every_time():
    calls: list[int] = []
    cache = EncodingCache(lambda f: calls.append(len(f)) or torch.zeros(len(f), 1), max_size=0)
    frame = np.zeros((1, 2, 2, 3), np.uint8)
    cache(frame), cache(frame)
    assert calls == [1, 1] and len(cache) == 0


def test_reset_from_a_cached_start_matches_a_cold_env(micro_model, micro_frames):
    warm = _env(micro_model, micro_frames)
    encoded: list[int] = []
    encode = warm.model.encode
    warm.unwrapped._episodes.start_encodings.encode = lambda f: encoded.append(len(f)) or encode(f)
    actions = np.full((2, 2), 256.0, np.float32)
    warm.reset(seed=0, options={"episode": 3})
    warm.step(actions)
    obs, _ = warm.reset(seed=5, options={"episode": 3})  # the same start frame: no encoding
    assert encoded == [1]
    warm_step = warm.step(actions)

    cold = _env(micro_model, micro_frames)
    cold_obs, _ = cold.reset(seed=5, options={"episode": 3})
    cold_step = cold.step(actions)
    np.testing.assert_array_equal(obs, cold_obs)
    np.testing.assert_array_equal(warm_step[0], cold_step[0])
    np.testing.assert_array_equal(warm_step[4]["frames"], cold_step[4]["frames"])
    torch.testing.assert_close(warm.unwrapped._episodes.context, cold.unwrapped._episodes.context, rtol=0, atol=0)


def test_vector_reset_encodes_each_new_start_frame_once(micro_model, micro_frames):
    from world_gym.vector_env import WorldModelVectorEnv

    venv = WorldModelVectorEnv(num_envs=3, model=micro_model, initial_states=micro_frames, device="cpu", chunk_size=2)
    cache = venv._episodes.start_encodings
    encoded: list[int] = []
    encode = cache.encode
    cache.encode = lambda f: encoded.append(len(f)) or encode(f)
    venv.reset(seed=0, options={"episode": [1, 1, 2]})
    venv.reset(seed=1, options={"episode": [2, 4, 1]})
    assert encoded == [2, 1] and len(cache) == 3
    expected = micro_model.encode(micro_frames.frames[[2, 4, 1]])
    torch.testing.assert_close(venv._episodes.context[:, -1], expected, rtol=1e-5, atol=1e-5)
