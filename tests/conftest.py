"""Shared fixtures: micro random-weight world models that run in milliseconds on CPU."""

from __future__ import annotations

import hermetic  # noqa: F401  (first: sets the cache folders before any library reads them)

import importlib.util
import os
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
# One thread: the models are tiny, and on a shared 2-core machine two threads per process thrash.
torch.set_num_threads(1)

from world_gym.action_spec import ActionSpec  # noqa: E402
from world_gym.samplers.diffusion import NoiseSchedule, SamplerConfig  # noqa: E402
from world_gym.initial_states import FrameBank  # noqa: E402
from world_gym.codecs.vae import tiny_vae_config  # noqa: E402
from world_gym.backbones.irasim import IRASimConfig  # noqa: E402
from world_gym.world_model import WorldModel, WorldModelConfig  # noqa: E402

FRAME = (32, 32)
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (a script folder, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def micro_config(history: int = 1, num_frames: int = 5, conditioning: str = "frame_ada", **backbone: object) -> WorldModelConfig:
    """32x32 frames, 16x16x4 latents, a 2-block DiT of width 32 with 4x4 patches."""
    vae = tiny_vae_config(latent_channels=4, block_out_channels=(16, 16))
    bb = IRASimConfig(
        latent_size=(16, 16), patch_size=4, hidden_size=32, depth=2, num_heads=2, num_frames=num_frames,
        action_dim=2, conditioning=conditioning, **backbone,
    )
    return WorldModelConfig(
        backbone_config=bb.to_dict(),
        codec={"vae": vae, "scaling_factor": 1.0},
        action=ActionSpec(dim=2, low=[0, 0], high=[512, 512], scale=1 / 256, offset=256.0),
        frame_size=FRAME,
        chunk_size=4,
        history=history,
        sampler=SamplerConfig(name="ddim", num_inference_steps=2),
    )


def tiny_pose_irasim(pose: dict, num_inference_steps: int = 2, **backbone: object) -> WorldModel:
    """A random-weight tiny IRASim on Push-T pose tokens (5-frame clips, its reference frame added to its
    output, sample prediction) with a tiny :class:`~world_gym.envs.pusht.pose_codec.PoseCodec` of ``pose``."""
    from world_gym.envs.pusht.pose_codec import PoseCodec

    torch.manual_seed(0)
    bb = IRASimConfig.preset("tiny", latent_channels=6, latent_size=(1, 1), patch_size=1, num_frames=5,
                             action_channels=True, reference_frame=1, residual=True, **backbone)
    codec = PoseCodec.from_config(tiny_vae_config(), pose=pose)
    config = WorldModelConfig(
        backbone_config=bb.to_dict(), codec=codec.config_dict(), frame_size=FRAME, history=2,
        action=ActionSpec(dim=2, low=[0, 0], high=[512, 512], scale=1 / 256, offset=256.0),
        schedule=NoiseSchedule(prediction_type="sample"),
        sampler=SamplerConfig(name="ddim", num_inference_steps=num_inference_steps))
    return randomize(WorldModel(config))


def randomize(model: WorldModel, seed: int = 0) -> WorldModel:
    """Give the zero-initialised adaLN/output layers random weights so outputs depend on inputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.backbone.named_parameters():
            if "adaLN_modulation" in name or "final_layer" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


@pytest.fixture(autouse=True)
def stays_inside_the_clone(request: pytest.FixtureRequest):
    """Fail a test that read or wrote files outside what the clone ships and the temporary folder."""
    start = len(hermetic.violations)
    yield
    new = hermetic.violations[start:]
    if new:
        pytest.fail(f"{request.node.nodeid} touched files outside the clone's tracked files and the "
                    f"temporary folder:\n  " + "\n  ".join(sorted(set(new))[:20]), pytrace=False)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset, codec and latents the training tests start from (one per test module)."""
    from training_data import make_pipeline

    return make_pipeline(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture
def micro_model() -> WorldModel:
    torch.manual_seed(0)
    return randomize(WorldModel(micro_config()))


@pytest.fixture
def micro_frames() -> FrameBank:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(6, *FRAME, 3), dtype=np.uint8)
    return FrameBank(frames, {"seed": np.arange(6)})
