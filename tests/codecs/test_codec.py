import numpy as np
import pytest
import torch

from world_gym.codecs.vae import SDXL_VAE_CONFIG, LatentCodec, tiny_vae_config


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


def test_fast_decoder_shapes_selection_and_config():
    from world_gym.codecs.vae import FastDecoder

    torch.manual_seed(0)
    codec = LatentCodec.from_config(tiny_vae_config(block_out_channels=(8, 8, 16)))
    assert codec.decoder == "vae" and "fast_decoder" not in codec.config_dict()
    with pytest.raises(ValueError, match="no fast decoder"):
        codec.decoder = "fast"
    with pytest.raises(ValueError, match="does not fit"):
        codec.attach_fast_decoder(FastDecoder(latent_channels=4, downsample=8))
    fast = FastDecoder(latent_channels=4, downsample=4, channels=(8, 4))
    codec.attach_fast_decoder(fast)
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 24, 3), dtype=np.uint8)
    latents = codec.encode(frames)
    assert codec.decoder == "fast" and codec.config_dict()["fast_decoder"] == {"channels": [8, 4]}
    with torch.no_grad():
        expected = LatentCodec.tensor_to_frames(fast(latents))
    np.testing.assert_array_equal(codec.decode(latents), expected)
    codec.decoder = "vae"
    np.testing.assert_array_equal(codec.decode(latents), LatentCodec.tensor_to_frames(
        codec.vae.decode(latents / codec.scaling_factor).sample))
    with pytest.raises(ValueError, match="decoder must be one of"):
        codec.decoder = "taesd"
    # an f8 codec gets three upsampling stages, the last width repeated
    deep = FastDecoder(latent_channels=4, downsample=8, channels=(8, 4))
    assert deep(torch.zeros(1, 4, 2, 3)).shape == (1, 3, 16, 24)
    rebuilt = LatentCodec.from_config(tiny_vae_config(block_out_channels=(8, 8, 16)),
                                      fast_decoder={"channels": [8, 4]})
    assert rebuilt.decoder == "fast" and rebuilt.fast_decoder.downsample == 4
