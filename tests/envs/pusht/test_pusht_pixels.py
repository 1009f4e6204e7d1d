import numpy as np

from world_gym.envs.pusht.family import load_initial_states
from world_gym.envs.pusht.pixels import AGENT_RGB, estimate_agent_pos


def test_agent_position_from_a_drawn_disc_and_fallbacks():
    frames = np.full((3, 96, 96, 3), 255, np.uint8)
    frames[0, 10:14, 20:24] = AGENT_RGB  # centre (22, 12) in frame pixels
    frames[1, 90:96, 0:6] = AGENT_RGB  # corner (3, 93)
    out = estimate_agent_pos(frames, fallback=np.array([[0, 0], [0, 0], [7, 9]], np.float32))
    assert out.dtype == np.float32 and out.shape == (3, 2)
    np.testing.assert_allclose(out[0], np.array([22, 12]) * 512 / 96, atol=1e-4)
    np.testing.assert_allclose(out[1], np.array([3, 93]) * 512 / 96, atol=1e-4)
    np.testing.assert_array_equal(out[2], [7, 9])  # no agent pixel: the fallback
    np.testing.assert_array_equal(estimate_agent_pos(frames[2]), [256, 256])


def test_agent_is_found_in_real_start_frames():
    pos = estimate_agent_pos(load_initial_states().frames[:8])
    assert ((pos > 0) & (pos < 512)).all() and len(np.unique(pos.round(), axis=0)) > 1
