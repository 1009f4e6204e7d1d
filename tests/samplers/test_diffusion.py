import pytest
import torch
from diffusers import DDPMScheduler

from world_gym.samplers.diffusion import SCHEDULERS, NoiseSchedule, SamplerConfig, diffusion_loss, make_scheduler, sample_clip


class Recorder(torch.nn.Module):
    """A denoiser that records what it sees and predicts a fixed fraction of its input."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, t, actions, mask):
        self.seen.append((x.clone(), t.clone(), mask.clone()))
        return 0.1 * x + actions.mean() * 0


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_sampler_keeps_context_clean(name):
    denoiser = Recorder()
    context = torch.randn(2, 1, 4, 3, 3)
    actions, mask = torch.zeros(2, 4, 2), torch.tensor([[False, True, True, True]] * 2)
    out = sample_clip(denoiser, context, actions, mask, make_scheduler(NoiseSchedule(), name), 3,
                      torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 4, 3, 3) and torch.isfinite(out).all()
    for x, t, _ in denoiser.seen:
        torch.testing.assert_close(x[:, :1], context)
        assert t.shape == (2,)


def test_same_generator_same_clip_and_per_element_generators():
    context = torch.randn(2, 1, 4, 3, 3)
    actions, mask = torch.zeros(2, 3, 2), torch.tensor([[False, True, True]] * 2)

    def run(gen):
        return sample_clip(Recorder(), context, actions, mask, make_scheduler(NoiseSchedule(), "ddpm"), 4, gen)

    torch.testing.assert_close(run(torch.Generator().manual_seed(5)), run(torch.Generator().manual_seed(5)))
    a = run([torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    b = sample_clip(Recorder(), context[1:], actions[1:], mask[1:], make_scheduler(NoiseSchedule(), "ddpm"), 4,
                    [torch.Generator().manual_seed(2)])
    torch.testing.assert_close(a[1:], b)


def test_loss_ignores_history_frames():
    torch.manual_seed(0)
    latents = torch.randn(3, 4, 2, 3, 3)
    actions, mask = torch.zeros(3, 4, 2), torch.ones(3, 4, dtype=torch.bool)
    seen = {}

    def denoiser(x, t, a, m):
        seen["x"], seen["mask"] = x, m
        return torch.zeros_like(x)

    sched = DDPMScheduler(**NoiseSchedule().to_dict())
    loss = diffusion_loss(denoiser, sched, latents, actions, mask, history=2, action_dropout=1.0)
    torch.testing.assert_close(seen["x"][:, :2], latents[:, :2])
    assert not seen["mask"].any(), "action dropout 1.0 drops every action"
    assert 0.5 < loss.item() < 1.5  # MSE of unit Gaussian noise against zero


def test_history_noise_corrupts_only_the_conditioning_frames():
    torch.manual_seed(0)
    latents = torch.randn(64, 4, 2, 3, 3)
    actions, mask = torch.zeros(64, 4, 2), torch.ones(64, 4, dtype=torch.bool)
    sched = DDPMScheduler(**NoiseSchedule(prediction_type="sample").to_dict())
    seen = {}

    def denoiser(x, t, a, m):
        seen["x"] = x
        return latents.clone()  # the clean clip: the loss must stay 0, the targets are clean

    torch.manual_seed(1)
    loss = diffusion_loss(denoiser, sched, latents, actions, mask, history=2, history_noise=0.5)
    assert loss.item() == 0.0
    noisy_history = seen["x"][:, :2]
    sigma = (noisy_history - latents[:, :2]).flatten(1).std(dim=1)
    assert (sigma > 0).all() and sigma.max() < 0.5 * 1.3  # one level per sample, at most 0.5
    assert sigma.std() > 0.05  # levels differ between samples
    torch.manual_seed(1)
    diffusion_loss(denoiser, sched, latents, actions, mask, history=2, history_noise=0.0)
    torch.testing.assert_close(seen["x"][:, :2], latents[:, :2])


def test_sampler_config_validation():
    with pytest.raises(ValueError, match="unknown sampler"):
        SamplerConfig(name="euler")
    with pytest.raises(ValueError, match="num_inference_steps"):
        SamplerConfig(num_inference_steps=0)


@pytest.mark.parametrize("name", ["ddim", "dpm_solver", "unipc", "pndm", "ddpm"])
def test_oracle_denoiser_recovers_the_clean_clip(name):
    """With the exact noise of a known clean clip, every sampler must land on that clip."""
    schedule = NoiseSchedule()
    alphas = DDPMScheduler(**schedule.to_dict()).alphas_cumprod
    torch.manual_seed(0)
    target = torch.randn(2, 4, 4, 3, 3)

    def oracle(x, t, actions, mask):
        ab = alphas[t.long()].view(-1, 1, 1, 1, 1)
        return (x - ab.sqrt() * target) / (1 - ab).sqrt()

    actions, mask = torch.zeros(2, 4, 2), torch.tensor([[False, True, True, True]] * 2)
    out = sample_clip(oracle, target[:, :1], actions, mask, make_scheduler(schedule, name), 20,
                      torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, target[:, 1:], atol=0.05, rtol=0.05)


def test_weighted_loss_is_a_weighted_mean():
    latents = torch.zeros(1, 3, 1, 1, 2)
    actions, mask = torch.zeros(1, 3, 2), torch.ones(1, 3, dtype=torch.bool)
    sched = DDPMScheduler(**NoiseSchedule().to_dict())
    torch.manual_seed(0)

    def denoiser(x, t, a, m):
        return torch.zeros_like(x)

    torch.manual_seed(3)
    plain = diffusion_loss(denoiser, sched, latents, actions, mask, history=1)
    torch.manual_seed(3)
    uniform = diffusion_loss(denoiser, sched, latents, actions, mask, history=1, weight=torch.full((1, 2, 1, 1, 2), 7.0))
    torch.testing.assert_close(plain, uniform)
    torch.manual_seed(3)
    only_first = diffusion_loss(denoiser, sched, latents, actions, mask, history=1,
                                weight=torch.tensor([1.0, 0.0]).view(1, 2, 1, 1, 1))
    torch.manual_seed(3)
    torch.randint(0, 1000, (1,))  # the timestep draw that precedes the noise
    noise = torch.randn_like(latents)
    torch.testing.assert_close(only_first, noise[:, 1].pow(2).mean())


@pytest.mark.parametrize("kind", ["v_prediction", "sample"])
def test_other_prediction_types_train_and_sample_consistently(kind):
    """The loss's target and the sampler's reading of the output agree: an oracle that returns the
    loss target of a known clip makes that loss zero and samples that clip."""
    schedule = NoiseSchedule(prediction_type=kind)
    sched = DDPMScheduler(**schedule.to_dict())
    alphas = sched.alphas_cumprod
    torch.manual_seed(0)
    target = torch.randn(2, 4, 4, 3, 3)

    def oracle(x, t, actions, mask):
        ab = alphas[t.long()].view(-1, 1, 1, 1, 1)
        eps = (x - ab.sqrt() * target) / (1 - ab).sqrt()
        return ab.sqrt() * eps - (1 - ab).sqrt() * target if kind == "v_prediction" else target.clone()

    actions, mask = torch.zeros(2, 4, 2), torch.tensor([[False, True, True, True]] * 2)
    out = sample_clip(oracle, target[:, :1], actions, mask, make_scheduler(schedule, "ddim"), 10,
                      torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, target[:, 1:], atol=0.05, rtol=0.05)
    loss = diffusion_loss(oracle, sched, target, actions, mask, history=1)
    assert loss.item() < 1e-6
    with pytest.raises(ValueError, match="prediction_type"):
        unknown = DDPMScheduler(**{**schedule.to_dict(), "prediction_type": "x"})
        diffusion_loss(oracle, unknown, target, actions, mask, history=1)
