import pytest
import torch

from world_gym.backbones.embeddings import sincos_2d
from world_gym.backbones.irasim import SIZES, IRASim, IRASimConfig


def _model(**kw) -> IRASim:
    cfg = IRASimConfig(latent_size=(8, 12), patch_size=2, hidden_size=32, depth=2, num_heads=2, num_frames=6, **kw)
    torch.manual_seed(0)
    model = IRASim(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _inputs(b=2, t=5):
    torch.manual_seed(1)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[:, 0] = False
    return torch.randn(b, t, 4, 8, 12), torch.tensor([3, 700])[:b], torch.randn(b, t, 2), mask


@pytest.mark.parametrize("conditioning", ["frame_ada", "video_ada"])
@pytest.mark.parametrize("embedder", ["linear2", "mlp"])
def test_output_shape_and_action_dependence(conditioning, embedder):
    model = _model(conditioning=conditioning, action_embedder=embedder)
    x, t, a, mask = _inputs()
    out = model(x, t, a, mask)
    assert out.shape == x.shape
    a2 = a.clone()
    a2[:, 2] += 1.0
    assert not torch.allclose(model(x, t, a2, mask), out), "actions must change the prediction"


@pytest.mark.parametrize("conditioning", ["frame_ada", "video_ada"])
def test_masked_actions_are_ignored(conditioning):
    model = _model(conditioning=conditioning)
    x, t, a, mask = _inputs()
    a2 = a.clone()
    a2[:, 0] = 100.0  # frame 0 is the conditioning frame: no action
    torch.testing.assert_close(model(x, t, a2, mask), model(x, t, a, mask))


def test_frame_ada_spatial_conditioning_is_per_frame():
    """Released Frame-Ada: the conditioning vector of frame i depends on frame i's action only."""
    model = _model(conditioning="frame_ada")
    _, t, a, mask = _inputs()
    emb = model.frame_action_embedding(a, mask)
    a2 = a.clone()
    a2[:, 3] += 1.0
    emb2 = model.frame_action_embedding(a2, mask)
    changed = (emb2 - emb).abs().sum(-1) > 0
    assert changed[:, 3].all() and not changed[:, [0, 1, 2, 4]].any()


def test_temporal_and_final_flags_change_output():
    base = _model(conditioning="frame_ada")
    flagged = _model(conditioning="frame_ada", temporal_action_conditioning=True, final_layer_action_conditioning=True)
    flagged.load_state_dict(base.state_dict())
    x, t, a, mask = _inputs()
    assert not torch.allclose(base(x, t, a, mask), flagged(x, t, a, mask))


def test_official_parameter_names():
    keys = set(_model(conditioning="frame_ada").state_dict())
    for k in ["x_embedder.proj.weight", "t_embedder.mlp.0.weight", "t_embedder.mlp.2.bias", "embed_arm_state.weight",
              "embed_state.weight", "mask_emb_fn.weight", "pos_embed", "temp_embed", "blocks.0.attn.qkv.weight",
              "blocks.1.attn.proj.bias", "blocks.0.mlp.fc1.weight", "blocks.1.mlp.fc2.weight",
              "blocks.0.adaLN_modulation.1.weight", "final_layer.linear.weight", "final_layer.adaLN_modulation.1.bias"]:
        assert k in keys, k
    mlp_keys = set(_model(conditioning="frame_ada", action_embedder="mlp").state_dict())
    assert {"embed_state.fc1.weight", "embed_state.fc2.weight"} <= mlp_keys
    video_keys = set(_model(conditioning="video_ada").state_dict())
    assert {"mlp.fc1.weight", "mlp.fc2.weight"} <= video_keys


def test_sincos_2d_is_width_first():
    emb = sincos_2d(8, (2, 3))  # 2 rows, 3 columns
    assert emb.shape == (6, 8)
    # token 1 is row 0, column 1: the first half (column) changes, the second half (row) does not
    assert not (emb[0, :4] == emb[1, :4]).all() and (emb[0, 4:] == emb[1, 4:]).all()


def test_paper_sizes_and_validation():
    assert SIZES["XL"] == (28, 1152, 16) and SIZES["S"] == (12, 384, 6)
    assert IRASimConfig.preset("B").hidden_size == 768
    with pytest.raises(ValueError, match="even"):
        IRASimConfig(depth=3)
    with pytest.raises(ValueError, match="conditioning"):
        IRASimConfig(conditioning="nope")
    model = _model()
    x, t, a, mask = _inputs(t=5)
    with pytest.raises(ValueError, match="num_frames"):
        model(torch.randn(2, 7, 4, 8, 12), t, torch.randn(2, 7, 2), torch.ones(2, 7, dtype=torch.bool))


def test_action_map_draws_each_action_where_it_points():
    model = _model(action_map={"axes": [0, 1], "sigma": 0.5})
    assert model.x_embedder.proj.in_channels == 5
    _, _, _, mask = _inputs()
    a = torch.zeros(2, 5, 2)
    a[:, 1] = torch.tensor([-0.9, -0.9])  # left, top
    a[:, 2] = torch.tensor([0.9, -0.9])  # right, top
    a[:, 3] = torch.tensor([-0.9, 0.9])  # left, bottom
    maps = model.action_maps(a, mask)
    assert maps.shape == (2, 5, 1, 8, 12)
    assert maps[:, 0].abs().sum() == 0, "the conditioning frame has no action"
    peaks = [divmod(int(maps[0, i, 0].argmax()), 12) for i in (1, 2, 3, 4)]
    assert peaks[:3] == [(0, 0), (0, 11), (7, 0)]
    assert peaks[3] in [(3, 5), (3, 6), (4, 5), (4, 6)], "action (0, 0) is the centre of the frame"


def test_action_map_output_follows_the_mapped_action_and_ignores_masked_ones():
    model = _model(action_map={"axes": [1, 0]})
    x, t, a, mask = _inputs()
    out = model(x, t, a, mask)
    moved = a.clone()
    moved[:, 2, 1] += 0.5  # axis 1 is the column now
    assert not torch.allclose(model(x, t, moved, mask), out)
    masked = a.clone()
    masked[:, 0] = 5.0
    torch.testing.assert_close(model(x, t, masked, mask), out)
    with pytest.raises(ValueError, match="action_map axes"):
        IRASimConfig(action_map={"axes": [0, 2]})
    cfg = IRASimConfig.from_dict(model.config.to_dict())
    assert cfg.action_map == {"axes": [1, 0], "sigma": 1.0}


def test_residual_reference_frame_starts_as_a_copy_of_it():
    """adaLN-Zero leaves the output layer at zero, so an untrained residual model returns the
    reference frame for every frame; the reference latents are extra input channels."""
    cfg = IRASimConfig(latent_size=(8, 12), patch_size=2, hidden_size=32, depth=2, num_heads=2, num_frames=6,
                       reference_frame=1, residual=True)
    model = IRASim(cfg).eval()
    assert model.x_embedder.proj.in_channels == 8
    x, t, a, mask = _inputs()
    out = model(x, t, a, mask)
    torch.testing.assert_close(out, x[:, 1:2].expand_as(out))
    with pytest.raises(ValueError, match="needs a reference_frame"):
        IRASimConfig(residual=True)
    with pytest.raises(ValueError, match="reference_frame"):
        IRASimConfig(num_frames=4, reference_frame=3)
    trained = _model(reference_frame=1, residual=True)
    x2 = x.clone()
    x2[:, 1] += 1.0
    changed = (trained(x2, t, a, mask) - trained(x, t, a, mask)).abs().amax(dim=(2, 3, 4))
    assert (changed[:, 2:] > 0.5).all(), "every generated frame follows the reference frame"
