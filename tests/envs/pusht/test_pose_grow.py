"""The pose step's contact features, its substeps, its growth (:mod:`world_gym.envs.pusht.step_growth`) and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from world_gym.envs.pusht.contact import (
    _HI,
    _LO,
    AGENT_RADIUS,
    CONTACT_FEATURES,
    WALL_FEATURES,
    _pose_pixels,
    block_features,
    contact_features,
    segment_box_distance,
    swept_clearance,
    wall_features,
    wall_penetration,
)
from world_gym.envs.pusht.pixels import world_to_block
from world_gym.envs.pusht.pose_state import PoseStateConfig, PoseStateDynamics
from world_gym.envs.pusht.step_growth import grow_weights, grown_config

TOKENS = {"latent_channels": 6, "latent_size": (1, 1), "token_scale": 4.0, "dynamics_hidden": 32}


def _local(agent_px: np.ndarray, block_px: np.ndarray) -> torch.Tensor:
    """An agent position in pixels -> the block frame in pose units, as PoseStep computes it."""
    return torch.from_numpy(world_to_block(agent_px[None], block_px)[0] / 256.0).float()


def test_contact_features_agree_with_the_gates_geometry():
    rng = np.random.default_rng(0)
    for _ in range(50):
        block = np.array([*rng.uniform(60, 450, 2), rng.uniform(-np.pi, np.pi)])
        a, b = rng.uniform(0, 512, (2, 2))
        state = torch.tensor([*(block[:2] - 256) / 256, block[2]], dtype=torch.float32)
        f = contact_features(_local(a, block), _local(b, block), state)
        assert f.shape == (CONTACT_FEATURES,)
        clearance = float(swept_clearance(torch.tensor(a), torch.tensor(b), torch.tensor(block)))
        assert float(f[8]) == pytest.approx(np.clip(clearance / 16, -2, 4), abs=1e-3)
        assert float(f[9]) == pytest.approx(np.clip(float(wall_penetration(torch.tensor(block))) / 16, -4, 1), abs=1e-3)
    # inside the bar: no offset from it; 100 px beyond the stem's end: 100 px from the stem
    block = np.array([256.0, 256.0, 0.0])
    f = contact_features(_local(np.array([256.0, 270.0]), block), _local(np.array([256.0, 476.0]), block),
                         torch.zeros(3))
    assert torch.equal(f[0:2], torch.zeros(2))
    assert f[6:8].tolist() == pytest.approx([0.0, 100.0 / 64])  # the stem ends at y = 376 of 512
    assert float(f[8]) == pytest.approx(-15.0 / 16)  # the swept disc crosses the T


def test_the_steps_features_from_one_placement_of_the_t_equal_each_function_alone():
    """``block_features`` (what a step reads) shares the T's corners and the endpoints' distances
    between its parts; each part equals the public function that computes it alone, bit for bit."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 2, generator=g) * 0.4, torch.randn(512, 2, generator=g) * 0.4
    state = torch.rand(512, 3, generator=g) * 2.2 - 1.1
    state[:, 2] = torch.rand(512, generator=g) * 12 - 6
    both = block_features(a, b, state)
    assert torch.equal(both, torch.cat([contact_features(a, b, state), wall_features(state)], -1))
    assert torch.equal(block_features(a, b, state, walls=False), both[:, :CONTACT_FEATURES])
    assert torch.equal(block_features(a, b, state, contact=False), both[:, CONTACT_FEATURES:])
    swept = segment_box_distance(a * 256, b * 256, _LO, _HI).amin(-1) - AGENT_RADIUS
    assert torch.equal(both[:, 8], (swept / 16).clamp(-2, 4))
    assert torch.equal(both[:, 9], (wall_penetration(_pose_pixels(state)) / 16).clamp(-4, 1))
    assert (both[:, 9] > -4).any() and (swept < 0).any() and (swept > 0).any()  # walls and contacts both met


def test_a_grown_step_computes_what_the_old_one_did_and_then_learns():
    old = PoseStateDynamics(PoseStateConfig(**TOKENS))
    for p in old.step_net.parameters():  # the zero-initialised last layers would make the test vacuous
        torch.nn.init.normal_(p, std=0.2)
    config = grown_config(old.config, {"contact_features": True, "dynamics_hidden": 48})
    assert config.contact_features and config.dynamics_hidden == 48
    new = PoseStateDynamics(config)
    new.step_net.load_state_dict(grow_weights(old.step_net.state_dict(), new.step_net.state_dict()))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, 5, generator=g) * 0.4
    args = (x[0], x[1], x[2, :, :2], x[3, :, :2])
    torch.testing.assert_close(new.step(*args), old.step(*args))
    # the new units are live: one gradient step changes the output
    opt = torch.optim.SGD(new.step_net.parameters(), lr=0.1)
    new.step(*args).pow(2).sum().backward()
    grads = [p.grad.abs().sum() for p in new.step_net.parameters()]
    assert all(g is not None for g in grads) and new.step_net.block_net[0].weight.grad[:, -CONTACT_FEATURES:].abs().sum() > 0
    opt.step()
    assert not torch.allclose(new.step(*args), old.step(*args))


def test_a_step_grown_to_read_the_walls_computes_what_it_did_and_learns_from_them():
    old = PoseStateDynamics(PoseStateConfig(**TOKENS, contact_features=True, substeps=2))
    for p in old.step_net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    new = PoseStateDynamics(grown_config(old.config, {"wall_features": True}))
    new.step_net.load_state_dict(grow_weights(old.step_net.state_dict(), new.step_net.state_dict()))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 16, 5, generator=g) * 0.6  # some blocks near or in a wall
    args = (x[0], x[1], x[2, :, :2], x[3, :, :2])
    torch.testing.assert_close(new.step(*args), old.step(*args))
    new.step(*args)[:, 2:].pow(2).sum().backward()
    assert new.step_net.block_net[0].weight.grad[:, -WALL_FEATURES:].abs().sum() > 0
    with pytest.raises(ValueError, match="already reads wall features"):
        grown_config(new.config, {"wall_features": False})


def test_a_step_in_substeps_integrates_the_block_network_along_the_agents_path():
    old = PoseStateDynamics(PoseStateConfig(**TOKENS, contact_features=True))
    for p in old.step_net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    config = grown_config(old.config, {"substeps": 3})
    new = PoseStateDynamics(config)
    new.step_net.load_state_dict(grow_weights(old.step_net.state_dict(), new.step_net.state_dict()))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 16, 5, generator=g) * 0.4
    args = (x[0], x[1], x[2, :, :2], x[3, :, :2])
    a, b = old.step(*args), new.step(*args)
    torch.testing.assert_close(b[:, :2], a[:, :2])  # the agent's step is the same
    assert not torch.allclose(b[:, 2:], a[:, 2:])  # the block's is composed of three
    # a constant motion without a turn, split into three thirds, adds up to the same
    for net in (old, new):
        torch.nn.init.zeros_(net.step_net.block_net[-1].weight)
        with torch.no_grad():
            net.step_net.block_net[-1].bias.copy_(torch.tensor([0.3, -0.2, 0.0]))
    torch.testing.assert_close(new.step(*args), old.step(*args))
    # the path's bend learns through the block's steps in between
    for p in new.step_net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    new.step(*args)[:, 2:].pow(2).sum().backward()
    assert new.step_net.agent_path.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="fewer"):
        grown_config(config, {"substeps": 2})
    with pytest.raises(ValueError, match="positive integer"):
        PoseStateConfig(**TOKENS, substeps=0)


def test_growth_is_checked():
    config = PoseStateConfig(**TOKENS)
    with pytest.raises(ValueError, match="takes"):
        grown_config(config, {"dynamics_depth": 5})
    with pytest.raises(ValueError, match="narrower"):
        grown_config(config, {"dynamics_hidden": 16})
    with pytest.raises(ValueError, match="already reads"):
        grown_config(grown_config(config, {"contact_features": True}), {"contact_features": False})
    assert grown_config(config, None) == config
    small, big = PoseStateDynamics(config), PoseStateDynamics(grown_config(config, {"dynamics_hidden": 64}))
    with pytest.raises(ValueError, match="cannot grow"):
        grow_weights(big.step_net.state_dict(), small.step_net.state_dict())
    with pytest.raises(ValueError, match="lacks layers"):
        grow_weights({"x": torch.zeros(1)}, small.step_net.state_dict())


def test_a_shipped_step_grown_trained_and_exported(tmp_path: Path):
    pytest.importorskip("gym_pusht")
    from world_gym.data import collect as col
    from world_gym.envs.pusht.train_pose import export_world_model, train_dynamics
    from world_gym.training.common import compose
    from world_gym.world_model import WorldModel

    root = tmp_path / "states"
    col.collect(root, 2, "train", "broad", progress=False, max_steps=20, images=False)
    out = tmp_path / "run"
    cfg = compose("train_pose", [f"out_dir={out}", f"dynamics.roots=[{root}]", "dynamics.init_from=pusht-pose-state",
                                 "dynamics.grow={contact_features:true,dynamics_hidden:576}", "dynamics.steps=1",
                                 "dynamics.batch_size=4", "dynamics.unroll=3", "trainer.log_every=1"])
    train_dynamics(cfg)
    path = export_world_model(compose("train_pose", [f"out_dir={out}", "base_model=pusht-pose-state",
                                                     "block_gate_deadband=2.0"]), tmp_path / "wm")
    model = WorldModel.from_pretrained(path)
    base = WorldModel.from_pretrained("pusht-pose-state")
    assert model.codec.block_gate_deadband == 2.0 and base.codec.block_gate_deadband == 1.0
    assert model.config.codec["pose"]["block_gate_deadband"] == 2.0
    # the gate acts on rollouts only: the base's start encodings carry over, keyed to the new config
    assert model.start_encodings is not None and model.start_encodings.mismatch(model) is None
    torch.testing.assert_close(model.start_encodings.latents, base.start_encodings.latents)
    step = model.backbone.config
    assert step.contact_features and step.dynamics_hidden == 576 and step.token_scale == 4.0
    assert model.config.backbone_config["contact_features"] is True
    assert model.config.metadata["dynamics_config"]["grow"] == {"contact_features": True, "dynamics_hidden": 576}
    trained = torch.load(out / "dynamics.pt", weights_only=True)["model"]
    for k, v in model.backbone.step_net.state_dict().items():
        torch.testing.assert_close(v.float(), trained[k], msg=k)
    from world_gym.envs.pusht.ground_truth import initial_frame

    out = model.rollout(initial_frame(0)[None], np.full((1, 4, 2), 256.0, np.float32))
    assert out.frames.shape == (1, 4, 96, 96, 3)
    # render-refined reading changes what the codec reads: the start encodings go with it
    path = export_world_model(compose("train_pose", [f"out_dir={tmp_path / 'run'}", "base_model=pusht-pose-state",
                                                     "render_refine_steps=3"]), tmp_path / "wm_refined")
    refined = WorldModel.from_pretrained(path)
    assert refined.codec.render_refine_steps == 3 and refined.config.codec["pose"]["render_refine_steps"] == 3
    assert refined.start_encodings is None and not (path / "start_encodings.safetensors").exists()
    frame = initial_frame(0)[None]
    assert not torch.equal(refined.encode(frame), base.encode(frame))
    # so does where the reading starts
    path = export_world_model(compose("train_pose", [f"out_dir={tmp_path / 'run'}", "base_model=pusht-pose-state",
                                                     "render_refine_steps=3", "block_reader=rigid_fit"]),
                              tmp_path / "wm_rigid")
    rigid = WorldModel.from_pretrained(path)
    assert rigid.codec.block_reader == "rigid_fit" and rigid.config.codec["pose"]["block_reader"] == "rigid_fit"
    assert rigid.start_encodings is None
    # and how it fits: a pattern-searched rigid T, then Levenberg-Marquardt through the renderer
    path = export_world_model(compose("train_pose", [f"out_dir={tmp_path / 'run'}", "base_model=pusht-pose-state",
                                                     "render_refine_steps=0", "block_reader=rigid_search"]),
                              tmp_path / "wm_search0")
    assert WorldModel.from_pretrained(path).codec.render_refine_steps == 0
    path = export_world_model(compose("train_pose", [f"out_dir={tmp_path / 'run'}", "base_model=pusht-pose-state",
                                                     "render_refine_steps=4", "render_refine_method=gauss_newton",
                                                     "block_reader=rigid_search"]), tmp_path / "wm_search")
    search = WorldModel.from_pretrained(path)
    assert (search.codec.block_reader, search.codec.render_refine_method, search.codec.render_refine_steps) == (
        "rigid_search", "gauss_newton", 4)
    assert search.config.codec["pose"]["render_refine_method"] == "gauss_newton" and search.start_encodings is None
    with pytest.raises(ValueError, match="block_reader must be one of"):
        export_world_model(compose("train_pose", [f"out_dir={tmp_path / 'run'}", "base_model=pusht-pose-state",
                                                  "block_reader=template"]), tmp_path / "wm_bad")
