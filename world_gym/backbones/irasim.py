"""IRASim: a spatial-temporal diffusion transformer over latent video, conditioned on actions.

Zhu et al., "IRASim: Learning Interactive Real-Robot Action Simulators" (2024/2025). A clip of
``T`` latent frames is cut into patch tokens; blocks alternate between *spatial* attention (the
tokens of one frame) and *temporal* attention (one token position across frames). Actions enter
through adaLN modulation:

- ``frame_ada``: every frame gets its own action embedding (the action that produced it), added to
  the timestep embedding, which drives the spatial block of that frame. Frames without an action
  (the conditioning frame) get a learned "no action" embedding. As in the released weights,
  temporal blocks and the final layer see the timestep alone unless the config says otherwise.
- ``video_ada``: one embedding of the whole trajectory conditions every block and the final layer.

Optionally (``action_map``, not in the paper) actions that are absolute positions in the image
plane, like Push-T's agent targets, are also drawn as a Gaussian blob in an extra input channel of
the frame they produced. adaLN modulates every token of a frame alike, so through it alone a model
must learn to turn two numbers into a place on the board; the blob puts the target on the tokens
where the agent will go, which a small model trained briefly on a CPU learns to use. Likewise
optional (``reference_frame``, ``residual``): every frame's input also carries the latents of one
clean context frame, and the output is added to them, so that an untrained model already copies
the last frame it was given and training only has to learn what changes (meant for
``prediction_type: sample``, where the output is the clean latent).

Parameter names follow the released IRASim code (``x_embedder.proj``, ``t_embedder.mlp.0``,
``embed_arm_state``, ``embed_state``, ``mask_emb_fn``, ``blocks.N.attn.qkv``, ...), so official
state dicts load without renaming.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from world_gym.backbones.pose_frame import block_frame, from_block_frame
from world_gym.backbones.embeddings import Mlp, PatchEmbed, TimestepEmbedder, sincos_1d, sincos_2d

# depth, hidden size, heads: the paper's S/B/L/XL plus small ones for tests and CPU training.
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 64, 4),
    "mini": (4, 128, 4),
    "small-cpu": (8, 192, 6),
    "S": (12, 384, 6),
    "B": (12, 768, 12),
    "L": (24, 1024, 16),
    "XL": (28, 1152, 16),
}
CONDITIONING_MODES = ("frame_ada", "video_ada")
BOARD_POSE_DIM = 4  # the reference block's x, y (over pose_frame), cos, sin (IRASimConfig.board_pose)
ACTION_EMBEDDERS = ("linear2", "mlp")


@dataclass
class IRASimConfig:
    """Hyper-parameters of :class:`IRASim`.

    Attributes:
        latent_channels: channels of the codec latent.
        latent_size: ``(height, width)`` of one latent frame.
        patch_size: side of the square patch cut from a latent frame.
        hidden_size, depth, num_heads, mlp_ratio: transformer width, number of blocks (even:
            spatial and temporal alternate), attention heads, MLP expansion.
        num_frames: longest clip (conditioning frames included) the temporal embedding covers.
        action_dim: width of one (normalised) action.
        conditioning: ``"frame_ada"`` or ``"video_ada"``.
        action_embedder: ``"linear2"`` (two Linears, no activation; Language-Table release) or
            ``"mlp"`` (tanh-GELU MLP; RT-1 / Bridge release).
        action_hidden_mult: hidden width of the action embedder in multiples of ``hidden_size``.
        temporal_action_conditioning: frame-ada only; also modulate the temporal blocks with the
            per-frame action embedding (the paper's description rather than the released code).
        final_layer_action_conditioning: frame-ada only; also modulate the final layer with it.
        video_mlp_hidden: video-ada with ``linear2``; hidden width of the trajectory MLP
            (``None``: its input width, as released).
        learn_sigma: output twice the channels (released DiT option); only epsilon is used.
        action_map: ``None`` (released IRASim) or ``{"axes": [col_dim, row_dim], "sigma": s}``:
            draw each frame's action as a Gaussian of ``s`` latent cells at the point whose
            normalised action dimensions ``col_dim``/``row_dim`` (``-1`` left/top .. ``1``
            right/bottom) it names, in an extra input channel (zero for frames without action).
        action_channels: append each frame's normalised action to its input channels (zero for
            frames without one): the ``action_map`` of latents without a spatial grid, such as a
            pose codec's one token per frame (not in the paper).
        reference_frame: ``None`` (released IRASim) or the index of a clean context frame of the
            clip (the last history frame) whose latents are appended to every frame's input channels.
        residual: add the reference frame's latents to the output (needs ``reference_frame``);
            with ``prediction_type: sample`` the network then predicts the change from that frame.
        pose_frame: ``None``, or the ``token_scale`` of pose-codec tokens (6 channels, one token a
            frame, 2-d agent-target actions): each clip is then denoised in the block's frame of its
            reference frame (:meth:`IRASim.to_clip_frame`, not in the paper).
        fourier_features: ``F > 0`` appends sines and cosines at ``F`` frequencies ``pi * 2**(k - 2)``
            of the clean inputs, the reference frame's channels and (with ``action_channels``) the
            action (times ``pose_frame``, in token units), so that a narrow network can tell nearby
            poses apart where contact changes abruptly (NeRF's positional encoding; not in the paper).
        board_pose: with ``pose_frame``, also give the network the reference frame's block pose on
            the board (x, y over ``pose_frame``, cos, sin), which the block frame hides: four more
            input channels on every frame, so that it can tell where the walls are.
            :meth:`IRASim.to_clip_frame` appends them to each action vector and :meth:`IRASim.forward`
            takes them from there (not in the paper).
    """

    latent_channels: int = 4
    latent_size: tuple[int, int] = (32, 32)
    patch_size: int = 2
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_frames: int = 16
    action_dim: int = 2
    conditioning: str = "frame_ada"
    action_embedder: str = "linear2"
    action_hidden_mult: int = 4
    temporal_action_conditioning: bool = False
    final_layer_action_conditioning: bool = False
    video_mlp_hidden: int | None = None
    learn_sigma: bool = False
    action_map: dict[str, Any] | None = None
    action_channels: bool = False
    reference_frame: int | None = None
    residual: bool = False
    pose_frame: float | None = None
    fourier_features: int = 0
    board_pose: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.latent_size = tuple(self.latent_size)  # type: ignore[assignment]
        if self.conditioning not in CONDITIONING_MODES:
            raise ValueError(f"conditioning must be one of {CONDITIONING_MODES}, got {self.conditioning!r}")
        if self.action_embedder not in ACTION_EMBEDDERS:
            raise ValueError(f"action_embedder must be one of {ACTION_EMBEDDERS}, got {self.action_embedder!r}")
        if self.depth % 2:
            raise ValueError(f"depth must be even (spatial and temporal blocks alternate), got {self.depth}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.action_map is not None:
            self.action_map = {"axes": [int(a) for a in self.action_map.get("axes", (0, 1))],
                               "sigma": float(self.action_map.get("sigma", 1.0))}
            axes = self.action_map["axes"]
            if len(axes) != 2 or not all(0 <= a < self.action_dim for a in axes):
                raise ValueError(f"action_map axes must name two of {self.action_dim} action dims, got {axes}")
        if self.residual and self.reference_frame is None:
            raise ValueError("residual=True needs a reference_frame")
        if self.reference_frame is not None and not 0 <= self.reference_frame < self.num_frames - 1:
            raise ValueError(
                f"reference_frame must index a context frame of the clip, got {self.reference_frame}")
        if self.pose_frame is not None and (
                self.reference_frame is None or self.latent_channels != 6 or self.latent_size != (1, 1)
                or self.action_dim != 2):
            raise ValueError("pose_frame needs pose tokens (6 channels, latent_size (1, 1)), 2-d actions and a "
                             "reference_frame")
        if self.board_pose and self.pose_frame is None:
            raise ValueError("board_pose gives back the board pose that pose_frame takes away: set pose_frame")
        if self.fourier_features and self.reference_frame is None and not self.action_channels:
            raise ValueError("fourier_features encodes the reference frame and the action channels: set either")
        h, w = self.latent_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"latent_size {self.latent_size} is not divisible by patch_size {self.patch_size}")

    @classmethod
    def preset(cls, size: str, **overrides: Any) -> "IRASimConfig":
        """Config of a named size (``tiny``, ``mini``, ``small-cpu``, ``S``, ``B``, ``L``, ``XL``).

        >>> IRASimConfig.preset("S", latent_size=(12, 12)).hidden_size
        384
        """
        if size not in SIZES:
            raise ValueError(f"unknown IRASim size {size!r}; known: {sorted(SIZES)}")
        depth, hidden, heads = SIZES[size]
        return cls(**{"depth": depth, "hidden_size": hidden, "num_heads": heads, **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latent_size"] = list(self.latent_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "IRASimConfig":
        return cls(**d)

    def replace(self, **changes: Any) -> "IRASimConfig":
        return replace(self, **changes)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation; ``shift``/``scale`` are per sequence ``(N, D)`` or per token ``(N, L, D)``."""
    if shift.dim() == 2:
        shift, scale = shift.unsqueeze(1), scale.unsqueeze(1)
    return x * (1 + scale) + shift


def _per_token(gate: torch.Tensor) -> torch.Tensor:
    return gate.unsqueeze(1) if gate.dim() == 2 else gate


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero conditioning (DiT)."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + _per_token(gate_msa) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        return x + _per_token(gate_mlp) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    """adaLN-modulated projection from tokens back to latent patches."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class IRASim(nn.Module):
    """The IRASim video diffusion transformer; predicts the noise of every latent frame.

    >>> cfg = IRASimConfig.preset("tiny", latent_size=(8, 8), num_frames=4)
    >>> model = IRASim(cfg)
    >>> x = torch.randn(2, 4, 4, 8, 8)
    >>> actions, mask = torch.zeros(2, 4, 2), torch.tensor([[0, 1, 1, 1]] * 2).bool()
    >>> model(x, torch.tensor([10, 10]), actions, mask).shape
    torch.Size([2, 4, 4, 8, 8])
    """

    def __init__(self, config: IRASimConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden_size
        self.out_channels = config.latent_channels * (2 if config.learn_sigma else 1)
        grid = (config.latent_size[0] // config.patch_size, config.latent_size[1] // config.patch_size)
        self.grid_size = grid

        in_channels = config.latent_channels + (1 if config.action_map is not None else 0)
        in_channels += config.action_dim if config.action_channels else 0
        in_channels += config.latent_channels if config.reference_frame is not None else 0
        in_channels += BOARD_POSE_DIM if config.board_pose else 0
        if config.fourier_features:
            encoded = (config.latent_channels if config.reference_frame is not None else 0) + (
                config.action_dim if config.action_channels else 0)
            in_channels += 2 * config.fourier_features * encoded
            self.register_buffer("fourier_freqs", torch.pi * 2.0 ** (
                torch.arange(config.fourier_features, dtype=torch.float32) - 2), persistent=False)
        self.x_embedder = PatchEmbed(config.patch_size, in_channels, hidden)
        self.t_embedder = TimestepEmbedder(hidden)
        self._build_action_embedding()
        self.register_buffer("pos_embed", torch.from_numpy(sincos_2d(hidden, grid)).float().unsqueeze(0))
        self.register_buffer(
            "temp_embed", torch.from_numpy(sincos_1d(hidden, torch.arange(config.num_frames, device="cpu").numpy())).float().unsqueeze(0)
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(hidden, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.final_layer = FinalLayer(hidden, config.patch_size, self.out_channels)
        self.initialize_weights()

    def _build_action_embedding(self) -> None:
        cfg, hidden = self.config, self.config.hidden_size
        inner = cfg.action_hidden_mult * hidden
        n_actions = cfg.num_frames - 1
        if cfg.action_embedder == "linear2":
            self.embed_arm_state = nn.Linear(cfg.action_dim, inner)
            self.embed_state = nn.Linear(inner, hidden)
            if cfg.conditioning == "video_ada":
                self.mlp = Mlp(n_actions * hidden, cfg.video_mlp_hidden, hidden)
        elif cfg.conditioning == "frame_ada":
            self.embed_state = Mlp(cfg.action_dim, inner, hidden)
        else:
            self.embed_state = Mlp(n_actions * cfg.action_dim, inner, hidden)
        self.mask_emb_fn = nn.Embedding(1, hidden)

    def initialize_weights(self) -> None:
        """DiT initialisation: Xavier linears, zeroed adaLN and output layers (adaLN-Zero)."""

        def basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(basic_init)
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def embed_single_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Per-action embedding ``(..., action_dim) -> (..., hidden)`` (frame-ada, and video-ada ``linear2``)."""
        if self.config.action_embedder == "linear2":
            return self.embed_state(self.embed_arm_state(actions))
        return self.embed_state(actions)

    def frame_action_embedding(self, actions: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, hidden)``: each frame's action embedding, "no action" where the mask is False."""
        emb = self.embed_single_actions(actions)
        none = self.mask_emb_fn.weight[0].to(emb.dtype)
        return torch.where(action_mask[..., None], emb, none)

    def trajectory_embedding(self, actions: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """``(B, hidden)``: one embedding of the whole action sequence (video-ada).

        Actions of frames ``1..T-1`` are used; a clip shorter than ``num_frames`` is padded with
        zero (normalised) actions, and a sample with no action at all gets the "no action" embedding.
        """
        n_actions = self.config.num_frames - 1
        traj = torch.where(action_mask[:, 1:, None], actions[:, 1:], torch.zeros_like(actions[:, 1:]))
        traj = F.pad(traj, (0, 0, 0, n_actions - traj.shape[1]))
        if self.config.action_embedder == "linear2":
            emb = self.mlp(self.embed_single_actions(traj).flatten(1))
        else:
            emb = self.embed_state(traj.flatten(1))
        none = self.mask_emb_fn.weight[0].to(emb.dtype)
        return torch.where(action_mask.any(dim=1, keepdim=True), emb, none)

    def action_maps(self, actions: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, 1, h, w)``: each frame's action drawn as a Gaussian (see ``action_map``), zero
        where the frame has no action.

        >>> cfg = IRASimConfig.preset("tiny", latent_size=(8, 8), num_frames=2, action_map={"axes": [0, 1]})
        >>> actions, mask = torch.tensor([[[0.0, 0.0], [-0.875, 0.875]]]), torch.tensor([[False, True]])
        >>> maps = IRASim(cfg).action_maps(actions, mask)
        >>> maps[0, 0].sum().item(), divmod(maps[0, 1, 0].argmax().item(), 8)
        (0.0, (7, 0))
        """
        cfg = self.config
        assert cfg.action_map is not None
        h, w = cfg.latent_size
        col_dim, row_dim = cfg.action_map["axes"]
        sigma = cfg.action_map["sigma"]
        # pixel centres at (i + 0.5) / size in [0, 1]; normalised -1..1 maps onto 0..size
        col = (actions[..., col_dim] + 1) * (w / 2) - 0.5
        row = (actions[..., row_dim] + 1) * (h / 2) - 0.5
        cols = torch.arange(w, device=actions.device, dtype=actions.dtype)
        rows = torch.arange(h, device=actions.device, dtype=actions.dtype)
        gx = torch.exp(-0.5 * ((cols - col[..., None]) / sigma) ** 2)
        gy = torch.exp(-0.5 * ((rows - row[..., None]) / sigma) ** 2)
        maps = gy[..., :, None] * gx[..., None, :] * action_mask[..., None, None].to(actions.dtype)
        return maps[:, :, None]

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, actions: torch.Tensor, action_mask: torch.Tensor
    ) -> torch.Tensor:
        """Predict the noise (or, per the schedule's ``prediction_type``, the velocity or the clean
        latents) in every frame of a noisy latent clip.

        Args:
            x: ``(B, T, C, h, w)`` noisy latents, ``T <= num_frames``.
            t: ``(B,)`` diffusion timesteps.
            actions: ``(B, T, action_dim)`` normalised actions; ``actions[:, i]`` produced frame ``i``.
                With ``board_pose``, ``(B, T, action_dim + 4)``: each followed by the board pose
                (:meth:`to_clip_frame`).
            action_mask: ``(B, T)`` bool, False where a frame has no action (the conditioning frame).

        Returns:
            ``(B, T, C, h, w)`` the prediction (epsilon for the released models).
        """
        cfg = self.config
        b, n_frames, c, h, w = x.shape
        if n_frames > cfg.num_frames:
            raise ValueError(f"clip of {n_frames} frames exceeds num_frames={cfg.num_frames}")
        if (c, h, w) != (cfg.latent_channels, *cfg.latent_size):
            raise ValueError(f"latent frames must be {(cfg.latent_channels, *cfg.latent_size)}, got {(c, h, w)}")
        inputs, reference = x, None
        if cfg.board_pose:
            board = actions[..., cfg.action_dim :].to(x.dtype)
            if board.shape[-1] != BOARD_POSE_DIM:
                raise ValueError(f"board_pose needs actions of width {cfg.action_dim + BOARD_POSE_DIM} "
                                 f"(to_clip_frame appends the board pose), got {actions.shape[-1]}")
            actions = actions[..., : cfg.action_dim]
            inputs = torch.cat([inputs, board[..., None, None].expand(-1, -1, -1, h, w)], dim=2)
        if cfg.action_map is not None:
            inputs = torch.cat([inputs, self.action_maps(actions.to(x.dtype), action_mask)], dim=2)
        clean = []
        if cfg.action_channels:
            known = torch.where(action_mask[..., None], actions.to(x.dtype), torch.zeros_like(actions, dtype=x.dtype))
            inputs = torch.cat([inputs, known[..., None, None].expand(-1, -1, -1, h, w)], dim=2)
            clean.append((known * (cfg.pose_frame or 1.0))[..., None, None].expand(-1, -1, -1, h, w))
        if cfg.reference_frame is not None:
            if n_frames <= cfg.reference_frame:
                raise ValueError(f"a clip of {n_frames} frames has no reference frame {cfg.reference_frame}")
            reference = x[:, cfg.reference_frame : cfg.reference_frame + 1]
            inputs = torch.cat([inputs, reference.expand(b, n_frames, c, h, w)], dim=2)
            clean.append(reference.expand(b, n_frames, c, h, w))
        if cfg.fourier_features:
            angles = torch.cat(clean, dim=2)[:, :, :, None] * self.fourier_freqs.to(x.dtype)[:, None, None]
            angles = angles.flatten(2, 3)
            inputs = torch.cat([inputs, torch.sin(angles), torch.cos(angles)], dim=2)
        tokens = self.x_embedder(inputs.reshape(b * n_frames, inputs.shape[2], h, w)) + self.pos_embed
        n_tokens = tokens.shape[1]
        t_emb = self.t_embedder(t).to(tokens.dtype)
        t_frames = t_emb[:, None].expand(b, n_frames, -1)

        if cfg.conditioning == "frame_ada":
            a_emb = self.frame_action_embedding(actions.to(tokens.dtype), action_mask)
            c_spatial = (t_frames + a_emb).reshape(b * n_frames, -1)
            if cfg.temporal_action_conditioning:
                c_temporal = (t_frames + a_emb)[:, None].expand(b, n_tokens, n_frames, -1)
                c_temporal = c_temporal.reshape(b * n_tokens, n_frames, -1)
            else:
                c_temporal = t_emb.repeat_interleave(n_tokens, dim=0)
            final_cond = t_frames + a_emb if cfg.final_layer_action_conditioning else t_frames
            c_final = final_cond.reshape(b * n_frames, -1)
        else:
            cond = t_emb + self.trajectory_embedding(actions.to(tokens.dtype), action_mask)
            c_spatial = c_final = cond.repeat_interleave(n_frames, dim=0)
            c_temporal = cond.repeat_interleave(n_tokens, dim=0)

        for i in range(0, len(self.blocks), 2):
            tokens = self.blocks[i](tokens, c_spatial)
            tokens = tokens.reshape(b, n_frames, n_tokens, -1).transpose(1, 2).reshape(b * n_tokens, n_frames, -1)
            if i == 0:
                tokens = tokens + self.temp_embed[:, :n_frames]
            tokens = self.blocks[i + 1](tokens, c_temporal)
            tokens = tokens.reshape(b, n_tokens, n_frames, -1).transpose(1, 2).reshape(b * n_frames, n_tokens, -1)

        out = self.unpatchify(self.final_layer(tokens, c_final))
        out = out.reshape(b, n_frames, self.out_channels, h, w)[:, :, :c]
        return out + reference if cfg.residual else out

    def to_clip_frame(self, latents: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """A clip's latents ``(B, T, C, h, w)`` (its first ``reference_frame + 1`` frames at least) and
        normalised actions ``(B, L, A)`` in the coordinates the network works in, and what
        :meth:`from_clip_frame` needs to undo it: with ``pose_frame`` the reference frame's block
        frame (:func:`~world_gym.backbones.pose_frame.block_frame`), else the identity (``None``).
        With ``board_pose`` the actions come back ``(B, L, A + 4)``: each followed by that block's
        pose on the board (x, y over ``pose_frame``, cos, sin), which :meth:`forward` reads.
        Training transforms clean clips before noising them, a rollout each clip's context and actions
        before sampling, so the diffusion itself runs in that frame."""
        cfg = self.config
        if cfg.pose_frame is None:
            return latents, actions, None
        assert cfg.reference_frame is not None
        latents, actions, frame = block_frame(latents, actions, cfg.reference_frame, cfg.pose_frame)
        if cfg.board_pose:
            origin, rot = frame
            board = torch.cat([origin / cfg.pose_frame, rot], dim=-1).to(actions.dtype)
            actions = torch.cat([actions, board[:, None].expand(-1, actions.shape[1], -1)], dim=-1)
        return latents, actions, frame

    def from_clip_frame(self, latents: torch.Tensor, frame: Any) -> torch.Tensor:
        """Generated latents ``(B, T, C, h, w)`` back from the clip's frame (:meth:`to_clip_frame`)."""
        if frame is None:
            return latents
        return from_block_frame(latents, frame)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, tokens, p*p*C) -> (N, C, h, w)``, in the released patch order."""
        p, (gh, gw) = self.config.patch_size, self.grid_size
        x = x.reshape(x.shape[0], gh, gw, p, p, self.out_channels)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], self.out_channels, gh * p, gw * p)


def make_irasim(config: dict[str, Any]) -> IRASim:
    """The backbone registry's factory of ``"IRASim"``: an :class:`IRASim` of a ``backbone_config`` entry."""
    return IRASim(IRASimConfig.from_dict(config))
