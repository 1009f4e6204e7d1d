"""What every next-frame state-space backbone shares: stepping a state per action, and keeping the
states of the frames it drew so an env's next step starts from them instead of re-encoding them.

A subclass defines :meth:`encode_states` (context latents -> states), :meth:`decode_states`
(states -> latents) and :meth:`step` (two states and two actions -> the next state).
:class:`~world_gym.world_model.WorldModel` rolls it out with the ``"deterministic"`` sampler
(:mod:`world_gym.samplers.deterministic`), which calls :meth:`StateSpaceBackbone.rollout`, because
its ``sampler`` attribute names that sampler.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn


#: ``(previous, new) -> new``: a codec's rule on imagined latents ``new`` ``(B, L, ...)`` after ``previous``
#: ``(B, h, ...)`` (:attr:`~world_gym.envs.pusht.pose_codec.PoseCodec.rollout_constraint`).
Constraint = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class StateSpaceBackbone(nn.Module):
    """Base class of the deterministic next-frame backbones (compact state, pose state)."""

    #: the sampler that rolls this backbone out, whatever the model's config names
    sampler = "deterministic"
    deterministic = True  # the older spelling of ``sampler = "deterministic"``
    #: :meth:`rollout` takes a codec's ``constraint`` and applies it frame by frame
    constrained_rollout = True

    def __init__(self) -> None:
        super().__init__()
        # the last two latent frames rollout() drew and the states it drew them from (not saved)
        self._drawn: tuple[torch.Tensor, torch.Tensor] | None = None

    def encode_states(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(..., C, h, w)`` -> states ``(..., D)``."""
        raise NotImplementedError

    def decode_states(self, states: torch.Tensor) -> torch.Tensor:
        """States ``(..., D)`` -> latents ``(..., C, h, w)``."""
        raise NotImplementedError

    def step(self, prev: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor,
             action: torch.Tensor) -> torch.Tensor:
        """The next state from the last two and the actions that led to the last one
        (``prev_action``) and away from it (``action``)."""
        raise NotImplementedError

    def unknown_prev_action(self, state: torch.Tensor, last_action: torch.Tensor) -> torch.Tensor:
        """The ``prev_action`` a rollout uses when the context's last action is unknown (after a
        reset): zeros unless a subclass knows better."""
        return torch.zeros_like(last_action)

    def stepper(self, prev: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor,
                action: torch.Tensor) -> Callable[..., torch.Tensor]:
        """A callable equal to :meth:`step` for inputs like these (dtype, device, shape), made once
        for a rollout's steps (a subclass returns one that skips per-call work: finding its trace)."""
        return self.step

    def rollout_states(self, prev: torch.Tensor, state: torch.Tensor, prev_action: torch.Tensor,
                       actions: torch.Tensor) -> torch.Tensor:
        """States ``(B, L, D)`` of ``L`` actions ``(B, L, A)``, one step each."""
        step = self.stepper(prev, state, prev_action, actions[:, 0])
        out = []
        for k in range(actions.shape[1]):
            nxt = step(prev, state, prev_action, actions[:, k])
            out.append(nxt)
            prev, state, prev_action = state, nxt, actions[:, k]
        return torch.stack(out, dim=1)

    def context_states(self, context: torch.Tensor) -> torch.Tensor:
        """States ``(B, 2, D)`` of context latents ``(B, 2, C, h, w)``.

        Rows equal to the last two frames :meth:`rollout` drew (an env passing its own output back
        as the next step's context) get the states they were drawn from: the encoder is not an
        exact inverse of the decoder, and encoding every chunk's last frames again would add that
        error once per env step. Every other row is encoded.
        """
        drawn = self._drawn
        if drawn is None or drawn[0].shape != context.shape or drawn[0].device != context.device:
            return self.encode_states(context)
        same = (drawn[0] == context).flatten(1).all(1)
        if not same.any():
            return self.encode_states(context)
        states = drawn[1].clone()
        if not same.all():  # encode only the rows that are new (a pose-state encoder refines each one)
            fresh = self.encode_states(context[~same])
            states = states.to(fresh.dtype)
            states[~same] = fresh
        return states

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, context_actions: torch.Tensor, context_mask: torch.Tensor,
                actions: torch.Tensor, constraint: Constraint | None = None) -> torch.Tensor:
        """Latents ``(B, L, C, h, w)`` of the frames ``actions`` ``(B, L, A)`` produce after ``context``
        ``(B, 2, C, h, w)`` (its actions ``(B, 2, A)``, ``context_mask`` True where known).

        ``constraint`` (a codec's ``rollout_constraint``, ``(previous, new) -> new`` on latents) is
        applied to each frame before the next is stepped from it: rows it leaves unchanged keep the
        state they were drawn from, rows it changes are encoded again (both frames of the last two),
        as :meth:`context_states` would do if each frame were a rollout of its own.
        """
        states = self.context_states(context)
        last = context_actions[:, -1].to(states.dtype)
        prev_action = torch.where(context_mask[:, -1:], last, self.unknown_prev_action(states[:, -1], last))
        actions = actions.to(states.dtype)
        if constraint is None:
            new = self.rollout_states(states[:, -2], states[:, -1], prev_action, actions)
            latents = self.decode_states(new).to(context.dtype)
            self._drawn = (torch.cat([context, latents], 1)[:, -2:].clone(),
                           torch.cat([states, new], 1)[:, -2:].clone())
            return latents
        step = self.stepper(states[:, -2], states[:, -1], prev_action, actions[:, 0])
        window, out = context[:, -2:], []
        for k in range(actions.shape[1]):
            nxt = step(states[:, -2], states[:, -1], prev_action, actions[:, k])
            drawn = self.decode_states(nxt[:, None]).to(context.dtype)
            held = constraint(window, drawn)
            window = torch.cat([window[:, 1:], held], 1)
            states = torch.stack([states[:, -1], nxt], 1)
            changed = (held != drawn).flatten(1).any(1)
            if changed.any():
                fresh = self.encode_states(window[changed])
                states = states.to(fresh.dtype)
                states[changed] = fresh
            out.append(held)
            prev_action = actions[:, k]
        self._drawn = (window.clone(), states.clone())
        return torch.cat(out, 1)

    def compile_modules(self) -> list[nn.Module]:
        """The modules :meth:`WorldModel.compile <world_gym.world_model.WorldModel.compile>` compiles:
        the ones :meth:`step` calls once a frame (none unless a subclass names them)."""
        return []

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} is not a denoiser: WorldModel calls its rollout()")
