import numpy as np
import pytest
import torch

from world_gym.models.codec import SDXL_VAE_CONFIG, LatentCodec, tiny_vae_config


def test_encode_decode_shapes_and_scaling():
    torch.manual_seed(0)
    codec = LatentCodec.from_config(tiny_vae_config(block_out_channels=(16, 16, 32)), scaling_factor=0.5)
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    latents = codec.encode(frames)
    assert latents.shape == (3, 4, 8, 12) and codec.latent_size((32, 48)) == (8, 12)
    unscaled = codec.vae.encode(codec.frames_to_tensor(frames)).latent_dist.mode()
    torch.testing.assert_close(latents, unscaled * 0.5)
    out = codec.decode(latents)
    assert out.shape == frames.shape and out.dtype == np.uint8


def test_micro_batches_match_one_batch():
    torch.manual_seed(0)
    codec = LatentCodec.from_config(tiny_vae_config(block_out_channels=(16, 16)))
    frames = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    whole = codec.encode(frames)
    codec.micro_batch = 2
    torch.testing.assert_close(codec.encode(frames), whole, atol=1e-5, rtol=1e-5)


def test_rejects_non_uint8_frames():
    codec = LatentCodec.from_config(tiny_vae_config(block_out_channels=(16, 16)))
    with pytest.raises(ValueError, match="uint8"):
        codec.encode(np.zeros((1, 16, 16, 3), np.float32))


def test_sdxl_layout_builds_on_meta_device():
    with torch.device("meta"):
        codec = LatentCodec.from_config(SDXL_VAE_CONFIG)
    assert codec.downsample == 8 and codec.scaling_factor == pytest.approx(0.13025)
    assert codec.latent_size((288, 512)) == (36, 64) and codec.latent_size((256, 320)) == (32, 40)
