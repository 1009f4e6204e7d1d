"""The teleop window: a person drives a world-model env live; every episode can be recorded.

Each display tick (at the model's fps when it keeps up) reads the input, asks the controller
(:mod:`world_gym.teleop.controls`) for one action and shows one imagined frame. A chunked env
(``chunk_size = k``) collects ``k`` actions, then steps once for the whole chunk and plays its ``k``
frames back over the next ``k`` ticks while the next chunk is collected: the display never waits on
input, and an action shows on screen ``k`` ticks plus one model call after it was given.

Session keys (:data:`SESSION_KEYS`): Esc quits, Tab or Backspace resets, P pauses, Y / N mark the
episode a success / failure (which ends it). An episode also ends when the env terminates
(the reward head's success) or truncates; the next one starts from the next seed.

Recording (``record=DIR``): every episode with at least one step goes to a local LeRobotDataset
through :class:`~world_gym.data.lerobot_io.EpisodeWriter`, with the columns
:func:`~world_gym.data.lerobot_io.world_model_features` (the format ``world-gym generate`` writes):
imagined frames, the actions stepped, the reward head's reward and success, and the operator's
mark in ``episode_label`` (1 / 0, or -1 when unmarked). Quitting (Esc, closing the window, the frame
limit) saves the episode in progress; Ctrl-C drops it; either way the dataset is checkpointed after
every episode and stays loadable.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pygame

from world_gym.teleop.controls import Controller, MouseTarget, make_controller

logger = logging.getLogger(__name__)

SESSION_KEYS: dict[str, str] = {
    "Esc / close window": "quit (the episode in progress is saved)",
    "Tab / Backspace": "reset: save the episode, start the next one",
    "P": "pause / resume",
    "Y": "mark success: label 1, save, start the next episode",
    "N": "mark failure: label 0, save, start the next episode",
}
HUD_HEIGHT = 118
_MARKS = {pygame.K_y: 1, pygame.K_n: 0}


@dataclass
class TeleopStats:
    """What a session did.

    Attributes:
        frames: imagined frames.
        episodes_saved: episodes written to the dataset.
        wall_s: seconds the loop ran.
        model_s: seconds inside ``env.step``.
        fps: imagined frames shown per second of wall time.
        step_latency_ms: mean milliseconds of one ``env.step`` (one chunk).
        interrupted: ended by Ctrl-C.
    """

    frames: int = 0
    episodes_saved: int = 0
    wall_s: float = 0.0
    model_s: float = 0.0
    steps: int = 0
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def step_latency_ms(self) -> float:
        return 1000 * self.model_s / self.steps if self.steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "episodes_saved": self.episodes_saved, "wall_s": round(self.wall_s, 2),
                "fps": round(self.fps, 2), "step_latency_ms": round(self.step_latency_ms, 1),
                "interrupted": self.interrupted}


class TeleopSession:
    """A pygame window over one world-model env.

    Args:
        env: a world-model env (``gym.make(ENV_ID, ...)``); its ``chunk_size`` sets how many ticks
            of input one step takes.
        env_id: its id, for the title and the dataset's metadata.
        record: dataset root to record every episode to, or None.
        max_frames: end the session after this many imagined frames (None: until quit).
        scale: window pixels per frame pixel (default: about 480 pixels on the long side).
        mirror: a ground-truth env (gym-pusht) stepped with the same actions and shown beside the
            imagined frames, reset with the same seed; None for none.
        seed: seed of the first episode; episode ``i`` of a recording starts from ``seed + i``.
        realtime: hold the display rate at the model's fps (False: as fast as the model runs).
        source: extra JSON-ready metadata for the dataset (what drives it, the model).
    """

    def __init__(self, env: gym.Env, env_id: str, record: str | Path | None = None, max_frames: int | None = None,
                 scale: int | None = None, mirror: gym.Env | None = None, seed: int = 0, realtime: bool = True,
                 source: dict[str, Any] | None = None) -> None:
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
        self.env, self.env_id, self.mirror, self.realtime = env, env_id, mirror, realtime
        core = env.unwrapped
        self.chunk_size = int(core.chunk_size)
        self.fps = float(core.model.config.fps)
        self.spec = core.model.action_spec
        height, width = core.model.config.frame_size
        self.scale = int(scale or max(1, round(480 / max(height, width))))
        self.frame_rect = (0, 0, width * self.scale, height * self.scale)
        panels = 2 if mirror is not None else 1
        self.window_size = (width * self.scale * panels + 8 * (panels - 1), height * self.scale + HUD_HEIGHT)
        self.controller: Controller = make_controller(self.spec, self.frame_rect)
        self.max_frames = max_frames
        self.seed = int(seed)
        self.stats = TeleopStats()
        self.writer = None
        if record is not None:
            self.writer = _open_writer(Path(record), env_id, core, source or {})
            self.seed += self.writer.num_episodes
        self.episode_seed = self.seed
        self.paused = False
        self.status = ""
        self._episode: dict[str, list] = {}
        self._queue: deque[np.ndarray] = deque()
        self._mirror_queue: deque[np.ndarray] = deque()
        self._pending: list[np.ndarray] = []
        self._shown: np.ndarray | None = None
        self._mirror_shown: np.ndarray | None = None
        self._mirror_done = False
        self._last: dict[str, Any] = {}
        self._latency_ms = 0.0
        self._screen: pygame.Surface | None = None

    # ----------------------------------------------------------------- episodes
    def _start_episode(self) -> None:
        options = {"episode": self.episode_seed} if self.env.unwrapped.initial_states is not None else None
        obs, _ = self.env.reset(seed=self.episode_seed, options=options)
        self.controller.reset(obs)
        self._episode = {"frames": [obs], "actions": [], "rewards": [], "success": False, "label": -1}
        self._queue.clear()
        self._pending.clear()
        self._shown = obs
        self._last = {}
        if self.mirror is not None:
            mirror_obs, _ = self.mirror.reset(seed=self.episode_seed)
            self._mirror_shown = _pixels(mirror_obs)
            self._mirror_queue.clear()
            self._mirror_done = False

    def _end_episode(self, save: bool = True) -> None:
        """Save the episode in progress (when recording and it has a step), then forget it."""
        episode, self._episode = self._episode, {}
        if save and self.writer is not None and episode.get("actions"):
            from world_gym.data.lerobot_io import build_episode

            self.writer.add_episode(build_episode(np.stack(episode["frames"]), np.stack(episode["actions"]),
                                                  np.asarray(episode["rewards"]), episode["success"],
                                                  self.episode_seed, label=episode["label"]))
            self.stats.episodes_saved += 1
            self.status = f"saved episode {self.writer.num_episodes - 1}"
        self.episode_seed += 1

    def _step(self) -> bool:
        """Step the env with the collected chunk; True when the episode ended."""
        chunk = np.stack(self._pending)
        self._pending.clear()
        start = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(chunk if self.chunk_size > 1 else chunk[0])
        elapsed = time.perf_counter() - start
        self.stats.model_s += elapsed
        self.stats.steps += 1
        self._latency_ms = 1000 * elapsed
        frames = np.asarray(info["frames"])
        n = len(frames)
        self._queue.extend(frames)
        self._episode["frames"].extend(frames)
        self._episode["actions"].extend(chunk[:n])
        self._episode["rewards"].extend(np.asarray(info["rewards"], np.float32).reshape(-1)[:n])
        self._episode["success"] = bool(terminated and info.get("is_success", True))
        self.stats.frames += n
        self._last = {"reward": float(np.asarray(info["rewards"]).reshape(-1)[-1]),
                      "success": self._episode["success"]}
        if "coverage" in info:
            self._last["coverage"] = float(np.asarray(info["coverage"]).reshape(-1)[-1])
        if self.mirror is not None and not self._mirror_done:
            for action in chunk[:n]:
                mirror_obs, _, m_term, m_trunc, _ = self.mirror.step(action)
                self._mirror_queue.append(_pixels(mirror_obs))
                if m_term or m_trunc:
                    self._mirror_done = True
                    break
        return bool(terminated or truncated)

    # ----------------------------------------------------------------- loop
    def run(self, on_tick: Callable[[TeleopSession, int], None] | None = None) -> TeleopStats:
        """Open the window and run until quit, Ctrl-C or ``max_frames``.

        Args:
            on_tick: called at the start of every tick with the session and the tick index (scripted
                input: post pygame events from it).

        Returns:
            The session's :class:`TeleopStats`.
        """
        pygame.display.init()  # display and fonts only: no audio device is opened
        pygame.font.init()
        pygame.display.set_caption(f"world-gym teleop: {self.env_id}")
        self._screen = pygame.display.set_mode(self.window_size)
        self._font = pygame.font.Font(None, 20)
        clock = pygame.time.Clock()
        start = time.perf_counter()
        tick = 0
        save_last = True
        try:
            self._start_episode()
            running = True
            while running:
                if on_tick is not None:
                    on_tick(self, tick)
                running = self._handle_events()
                if running and not self.paused:
                    self._pending.append(self.controller.action())
                    if len(self._pending) == self.chunk_size and self._step():
                        self._end_episode()
                        self._start_episode()
                    if self._queue:
                        self._shown = self._queue.popleft()
                    if self._mirror_queue:
                        self._mirror_shown = self._mirror_queue.popleft()
                self._draw(clock)
                clock.tick(self.fps if self.realtime else 0)
                tick += 1
                if self.max_frames is not None and self.stats.frames >= self.max_frames:
                    running = False
        except KeyboardInterrupt:
            self.stats.interrupted = True
            save_last = False
            logger.warning("interrupted: the episode in progress is dropped; saved episodes stay")
        finally:
            self.stats.wall_s = time.perf_counter() - start
            try:
                if self._episode:
                    self._end_episode(save=save_last)
            finally:
                if self.writer is not None:
                    self.writer.close()
                pygame.quit()
        return self.stats

    def _handle_events(self) -> bool:
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                return False
            if event.type == pygame.KEYDOWN:
                if event.key == pygame.K_ESCAPE:
                    return False
                if event.key in (pygame.K_TAB, pygame.K_BACKSPACE, *_MARKS):
                    if event.key in _MARKS:
                        self._episode["label"] = _MARKS[event.key]
                    self._end_episode()
                    self._start_episode()
                    continue
                if event.key == pygame.K_p:
                    self.paused = not self.paused
                    continue
            self.controller.handle(event)
        return True

    # ----------------------------------------------------------------- drawing
    def _draw(self, clock: pygame.time.Clock) -> None:
        screen = self._screen
        screen.fill((28, 28, 32))
        _, _, width, height = self.frame_rect
        screen.blit(pygame.transform.scale(_surface(self._shown), (width, height)), (0, 0))
        if isinstance(self.controller, MouseTarget):
            pygame.draw.circle(screen, (230, 60, 60), self.controller.to_window(self.controller.target), 6, 2)
        if self.mirror is not None and self._mirror_shown is not None:
            screen.blit(pygame.transform.scale(_surface(self._mirror_shown), (width, height)), (width + 8, 0))
            self._text("ground truth (gym-pusht)", (width + 14, 6), (40, 40, 40))
            self._text("world model", (6, 6), (40, 40, 40))
        last = self._last
        label = {1: "success", 0: "failure"}.get(self._episode.get("label", -1), "-")
        lines = [
            f"frame {self.stats.frames}  episode seed {self.episode_seed}  chunk {self.chunk_size}"
            + ("  PAUSED" if self.paused else ""),
            f"reward {last.get('reward', 0.0):.3f}  success {last.get('success', False)}"
            + (f"  coverage {last['coverage']:.3f}" if "coverage" in last else "") + f"  mark {label}",
            f"FPS {clock.get_fps():.1f} (target {self.fps:g})  model {self._latency_ms:.0f} ms/step"
            + (f"  rec {self.writer.num_episodes} ep" if self.writer is not None else "") + f"  {self.status}",
            "  ".join(self.controller.help_lines),
            "Esc quit  Tab reset  P pause  Y success  N failure",
        ]
        for row, line in enumerate(lines):
            self._text(line, (8, height + 6 + 22 * row), (225, 225, 225))
        pygame.display.flip()

    def _text(self, text: str, pos: tuple[int, int], color: tuple[int, int, int]) -> None:
        self._screen.blit(self._font.render(text, True, color), pos)

    def screenshot(self) -> np.ndarray:
        """The window's current pixels, ``(H, W, 3)`` uint8."""
        return np.ascontiguousarray(pygame.surfarray.array3d(self._screen).swapaxes(0, 1))


def _surface(frame: np.ndarray) -> pygame.Surface:
    return pygame.surfarray.make_surface(np.ascontiguousarray(np.asarray(frame).swapaxes(0, 1)))


def _pixels(obs: Any) -> np.ndarray:
    return obs["pixels"] if isinstance(obs, dict) else np.asarray(obs)


def _open_writer(root: Path, env_id: str, core: Any, source: dict[str, Any]) -> Any:
    import json

    from world_gym import __version__
    from world_gym.commands.generate import describe_env
    from world_gym.data.lerobot_io import SOURCE, EpisodeWriter, world_model_features

    if root.exists() and (root / SOURCE).is_file():
        stored = json.loads((root / SOURCE).read_text())
        if stored.get("env_id") != env_id:
            raise ValueError(f"{root} holds episodes of {stored.get('env_id')!r}, not {env_id!r}; "
                             "choose another --record")
    model = core.model
    meta = {"generator": "world-gym teleop", "world_gym_version": __version__,
            **describe_env(env_id, core.parts, source.pop("model", None)), **source}
    return EpisodeWriter(root, checkpoint_every=1, repo_id=f"world-gym/{env_id}",
                         features=world_model_features((*model.config.frame_size, 3), model.action_spec.dim,
                                                       model.action_spec.names or None),
                         fps=int(round(model.config.fps)), robot_type=env_id, task=core.parts.task or env_id,
                         source=meta)
