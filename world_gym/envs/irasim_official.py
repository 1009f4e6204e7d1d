"""The official IRASim world models (Language-Table, RT-1, Bridge) as world-gym env families.

The authors release IRASim-XL/2 checkpoints as torch pickles; world-gym never reads them at run
time. Convert one once (``world-gym convert-irasim``, see ``docs/irasim_checkpoints.md``) and the
env finds the converted directory. Lookup order of :func:`resolve_checkpoint`:

1. the ``checkpoint=`` argument of ``gym.make``: a converted directory or a Hub repo id;
2. ``$WORLD_GYM_MODELS/irasim-{dataset}-{variant}`` (``WORLD_GYM_MODELS`` names a models folder);
3. ``~/.cache/world_gym/models/irasim-{dataset}-{variant}`` (``$XDG_CACHE_HOME`` respected).

No converted weights are published on a model hub, so there is no hub fallback; when nothing is
found the error says what to download and the exact command that puts it where it is looked for.

Start frames come from a user image (:class:`ImageFrames`, resized to the model's frame size) or
from the IRASim benchmark data (:class:`IRASimEpisodes`, found through ``$WORLD_GYM_IRASIM_DATA``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from world_gym.convert_irasim import CHECKPOINT_URL, RELEASES, SDXL_VAE_HUB_ID, load_vae
from world_gym.initial_states import InitialState, InitialStateSource
from world_gym.codecs.vae import LatentCodec
from world_gym.registration import EnvFamily
from world_gym.world_model import CONFIG_NAME, WorldModel

MODELS_ENV_VAR = "WORLD_GYM_MODELS"
DATA_ENV_VAR = "WORLD_GYM_IRASIM_DATA"
VARIANTS = ("frame_ada", "video_ada")
# One IRASim pass: 1 conditioning frame + 15 generated frames.
CHUNK_SIZE = 15
# Eight passes; the release's long-video evaluation covers whole episodes of this order.
MAX_EPISODE_FRAMES = 120


def default_models_dir() -> Path:
    """``$XDG_CACHE_HOME/world_gym/models`` (``~/.cache/world_gym/models``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "world_gym" / "models"


def model_dir_name(dataset: str, variant: str) -> str:
    """Folder name a converted model is looked up under: ``irasim-languagetable-frame_ada``."""
    return f"irasim-{dataset}-{variant}"


def convert_command(dataset: str, variant: str, checkpoint: Path, out: Path) -> str:
    """The ``world-gym convert-irasim`` command line that writes ``out`` from an official ``checkpoint``."""
    return (
        f"world-gym convert-irasim {checkpoint} --dataset {dataset} --variant {variant} "
        f"--vae {SDXL_VAE_HUB_ID} --out {out}"
    )


def resolve_checkpoint(dataset: str, checkpoint: str | os.PathLike | None = None, variant: str = "frame_ada") -> str:
    """Where the converted world model of ``dataset``/``variant`` is (lookup order in the module doc).

    Returns:
        A local directory, or the Hub repo id given as ``checkpoint``.

    Raises:
        FileNotFoundError: nothing found; the message says what to download and how to convert it.
        ValueError: ``checkpoint`` is an official ``.pt`` pickle (convert it first).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    name = model_dir_name(dataset, variant)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if path.is_file():
            raise ValueError(
                f"{path} is a file; the env loads converted directories only (it never unpickles). Convert it once:\n"
                f"  {convert_command(dataset, variant, path, default_models_dir() / name)}"
            )
        if path.is_dir():
            if not (path / CONFIG_NAME).is_file():
                raise FileNotFoundError(f"{path} is not a converted world-model directory: no {CONFIG_NAME}")
            return str(path)
        if str(checkpoint).count("/") == 1:
            return str(checkpoint)  # a Hub repo id; WorldModel.from_pretrained downloads it
        raise FileNotFoundError(f"checkpoint={str(checkpoint)!r} is neither a directory nor a Hub repo id")
    candidates = []
    if os.environ.get(MODELS_ENV_VAR):
        candidates.append(Path(os.environ[MODELS_ENV_VAR]).expanduser() / name)
    candidates.append(default_models_dir() / name)
    for candidate in candidates:
        if (candidate / CONFIG_NAME).is_file():
            return str(candidate)
    searched = "\n".join(f"  - {c}" for c in candidates)
    raise FileNotFoundError(
        f"no converted IRASim {dataset} {variant} model found. Looked in:\n{searched}\n"
        "To get it:\n"
        f"  1. download and unpack the authors' checkpoints: {CHECKPOINT_URL.format(dataset=dataset)}\n"
        f"  2. convert (needs the SDXL VAE: a diffusers folder or the Hub id, once):\n"
        f"     {convert_command(dataset, variant, Path(dataset, 'checkpoints', variant, '0300000.pt'), candidates[0])}"
        "\n"
        f"  or pass gym.make(..., checkpoint='path/to/converted_dir'), or set ${MODELS_ENV_VAR} to the folder "
        f"that holds {name}/. See docs/irasim_checkpoints.md."
    )


def swap_codec(model: WorldModel, vae: str | os.PathLike) -> WorldModel:
    """Replace ``model``'s codec by another VAE (e.g. an fp16-safe SDXL VAE) with the same latent layout."""
    codec = LatentCodec(load_vae(vae).float().eval())
    if codec.latent_channels != model.codec.latent_channels or codec.downsample != model.codec.downsample:
        raise ValueError(
            f"VAE {vae!r} has {codec.latent_channels} latent channels and downsampling {codec.downsample}; "
            f"the model needs {model.codec.latent_channels} and {model.codec.downsample}"
        )
    model.codec = codec.to(model.device)
    model.config.codec = codec.config_dict()
    return model


def model_builder(dataset: str) -> Callable[..., WorldModel]:
    """The ``make_model`` of one family: ``(device, dtype, checkpoint, variant, vae) -> WorldModel``."""

    def make_model(
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        checkpoint: str | os.PathLike | None = None,
        variant: str = "frame_ada",
        vae: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> WorldModel:
        """Load the converted official IRASim model.

        Args:
            device, dtype: where the backbone runs (the codec stays float32).
            checkpoint: converted directory or Hub id; default: looked up (see module doc).
            variant: ``frame_ada`` (the paper's best) or ``video_ada``.
            vae: another VAE to decode with (directory or Hub id); default: the one converted in.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments for the IRASim {dataset} env: {sorted(kwargs)}")
        where = resolve_checkpoint(dataset, checkpoint, variant)
        model = WorldModel.from_pretrained(where, device=device, dtype=dtype)
        expected = RELEASES[dataset]
        if tuple(model.config.frame_size) != expected.frame_size or model.action_spec.dim != len(expected.action_names):
            raise ValueError(
                f"the model at {where} has frames {tuple(model.config.frame_size)} and {model.action_spec.dim}-D "
                f"actions; the {dataset} env needs {expected.frame_size} and {len(expected.action_names)}-D"
            )
        return swap_codec(model, vae) if vae is not None else model

    return make_model


def load_image(image: str | os.PathLike | np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """An RGB image (file or ``(H, W, 3)`` uint8 array) resized to ``frame_size`` as the release does.

    The release resizes with ``torchvision`` bilinear interpolation and antialiasing, without
    cropping, so the aspect ratio follows the frame size.
    """
    if isinstance(image, np.ndarray):
        arr = image
    else:
        from PIL import Image

        with Image.open(image) as img:
            arr = np.asarray(img.convert("RGB"))
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"an initial image must be uint8 (H, W, 3), got {arr.dtype} {arr.shape}")
    if arr.shape[:2] == tuple(frame_size):
        return arr.copy()
    from torchvision.transforms.functional import resize

    x = torch.from_numpy(arr).permute(2, 0, 1).float()
    x = resize(x, list(frame_size), antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


class ImageFrames(InitialStateSource):
    """Start frames from image files or arrays, resized to the model's frame size.

    >>> src = ImageFrames([np.zeros((360, 640, 3), np.uint8)], frame_size=(288, 512))
    >>> src.get(0).frame.shape
    (288, 512, 3)
    """

    def __init__(self, images: Sequence[str | os.PathLike | np.ndarray], frame_size: tuple[int, int]) -> None:
        if len(images) == 0:
            raise ValueError("ImageFrames needs at least one image")
        self.images = list(images)
        self.frame_size = tuple(frame_size)

    def __len__(self) -> int:
        return len(self.images)

    def get(self, episode: int) -> InitialState:
        if not 0 <= episode < len(self):
            raise IndexError(f"episode {episode} out of range: {len(self)} images")
        image = self.images[episode]
        source = str(image) if not isinstance(image, np.ndarray) else "array"
        return InitialState(load_image(image, self.frame_size), {"image": source})  # type: ignore[arg-type]


def _euler_to_rotm(rpy: np.ndarray) -> np.ndarray:
    """Rotation matrix ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (the release's convention)."""
    (cr, cp, cy), (sr, sp, sy) = np.cos(rpy), np.sin(rpy)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _rotm_to_euler(r: np.ndarray) -> np.ndarray:
    sy = np.hypot(r[0, 0], r[1, 0])
    if sy < 1e-6:  # gimbal lock: yaw is not observable, put it to zero as the release does
        return np.array([np.arctan2(-r[1, 2], r[1, 1]), np.arctan2(-r[2, 0], sy), 0.0])
    return np.array([np.arctan2(r[2, 1], r[2, 2]), np.arctan2(-r[2, 0], sy), np.arctan2(r[1, 0], r[0, 0])])


def arm_actions(states: np.ndarray, gripper: np.ndarray) -> np.ndarray:
    """RT-1/Bridge actions from end-effector states, as the release computes them.

    Action ``k`` moves from state ``k`` to ``k+1``: translation and rotation relative to the pose
    of state ``k`` (in its frame), and the continuous gripper state reached.

    Args:
        states: ``(T, >=6)`` xyz + roll/pitch/yaw per frame.
        gripper: ``(T,)`` continuous gripper state per frame.

    Returns:
        ``(T-1, 7)`` float64 actions in env units (unscaled).
    """
    states, gripper = np.asarray(states, np.float64), np.asarray(gripper, np.float64).reshape(-1)
    actions = np.zeros((len(states) - 1, 7))
    for k in range(1, len(states)):
        prev_r, curr_r = _euler_to_rotm(states[k - 1, 3:6]), _euler_to_rotm(states[k, 3:6])
        actions[k - 1, 0:3] = prev_r.T @ (states[k, 0:3] - states[k - 1, 0:3])
        actions[k - 1, 3:6] = _rotm_to_euler(prev_r.T @ curr_r)
        actions[k - 1, 6] = gripper[k]
    return actions


def load_latent_video(path: str | os.PathLike) -> torch.Tensor:
    """The pre-encoded latent video of a benchmark episode, ``(T, 4, h, w)`` (SDXL-VAE scaled).

    The release stores these with ``torch.save`` (Language-Table: ``{"obs": tensor}``, RT-1 and
    Bridge: the tensor). Read with ``weights_only=True``, so only tensors and plain containers load.
    """
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    latents = data["obs"] if isinstance(data, dict) else data
    if not isinstance(latents, torch.Tensor) or latents.dim() != 4:
        raise ValueError(f"{path} does not hold a (T, C, h, w) latent video")
    return latents.float()


class IRASimEpisodes(InitialStateSource):
    """Episodes of the IRASim benchmark data (``opensource_robotdata/{dataset}/annotation/{split}/*.json``).

    ``get(i)`` returns the first frame of episode ``i`` (read from its video and resized to the
    model's frame size) and, in ``info``, its ``episode_id``, the recorded ``actions`` in env
    units (replay them to compare the imagined with the real video) and the file paths.

    Args:
        root: the unpacked ``opensource_robotdata`` folder (holding ``languagetable/``, ``rt1/``, ...).
        dataset: ``languagetable``, ``rt1`` or ``bridge``.
        split: ``test``, ``val`` or ``train``.
        camera: camera index for RT-1/Bridge annotations with several views.
    """

    def __init__(self, root: str | os.PathLike, dataset: str, split: str = "test", camera: int = 0) -> None:
        self.dataset_dir = Path(root).expanduser() / dataset
        self.release = RELEASES[dataset]
        self.camera = camera
        ann_dir = self.dataset_dir / "annotation" / split
        self.annotations = sorted(ann_dir.glob("*.json"))
        if not self.annotations:
            raise FileNotFoundError(f"no annotation files in {ann_dir}: is {root} the unpacked opensource_robotdata?")

    def __len__(self) -> int:
        return len(self.annotations)

    def annotation(self, episode: int) -> dict[str, Any]:
        if not 0 <= episode < len(self):
            raise IndexError(f"episode {episode} out of range: {len(self)} annotation files")
        return json.loads(self.annotations[episode].read_text())

    def _path(self, ann: dict[str, Any], key: str) -> Path:
        if key in ann:  # Language-Table layout
            return self.dataset_dir / ann[key]
        views = ann[{"video_path": "videos", "latent_video_path": "latent_videos"}[key]]
        return self.dataset_dir / views[self.camera][key]

    def actions(self, episode: int) -> np.ndarray:
        """Recorded actions ``(T-1, action_dim)`` of ``episode`` in env units."""
        ann = self.annotation(episode)
        if "actions" in ann:
            return np.asarray(ann["actions"], np.float64)
        return arm_actions(np.asarray(ann["state"])[:, :6], np.asarray(ann["continuous_gripper_state"]))

    def latent_video(self, episode: int) -> torch.Tensor:
        """The episode's pre-encoded latents (see :func:`load_latent_video`)."""
        return load_latent_video(self._path(self.annotation(episode), "latent_video_path"))

    def frames(self, episode: int, max_frames: int | None = None) -> np.ndarray:
        """The episode's real frames ``(T, H, W, 3)`` uint8 at the model's frame size."""
        import imageio.v3 as iio

        video = self._path(self.annotation(episode), "video_path")
        out = []
        for i, frame in enumerate(iio.imiter(video)):
            if max_frames is not None and i >= max_frames:
                break
            out.append(load_image(np.asarray(frame)[..., :3], self.release.frame_size))
        if not out:
            raise ValueError(f"{video} has no frames")
        return np.stack(out)

    def get(self, episode: int) -> InitialState:
        ann = self.annotation(episode)
        info = {
            "episode_id": str(ann.get("episode_id", self.annotations[episode].stem)),
            "actions": self.actions(episode),
            "annotation": str(self.annotations[episode]),
        }
        return InitialState(self.frames(episode, max_frames=1)[0], info)


class MissingEpisodes(InitialStateSource):
    """Stands in when no benchmark data is configured; explains how to start an episode."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return 0

    def get(self, episode: int) -> InitialState:
        raise ValueError(
            f"no start frames for the IRASim {self.dataset} env: pass reset(options={{'initial_frame': frame}}) "
            f"(a uint8 frame of the model's size; envs.irasim_official.load_image resizes any image), or set "
            f"${DATA_ENV_VAR} to the unpacked opensource_robotdata folder of the IRASim benchmark data, or pass "
            f"gym.make(..., initial_states=IRASimEpisodes(root, {self.dataset!r}))"
        )

    def sample(self, rng: np.random.Generator) -> tuple[int, InitialState]:
        return -1, self.get(-1)


def default_initial_states(dataset: str) -> Callable[[], InitialStateSource]:
    """Benchmark episodes from ``$WORLD_GYM_IRASIM_DATA`` (test split) if set, else :class:`MissingEpisodes`."""

    def build() -> InitialStateSource:
        root = os.environ.get(DATA_ENV_VAR)
        return IRASimEpisodes(root, dataset) if root else MissingEpisodes(dataset)

    return build


def make_family(name: str, env_id: str, dataset: str, description: str) -> EnvFamily:
    """The :class:`EnvFamily` of one official IRASim dataset."""
    return EnvFamily(
        name=name,
        env_id=env_id,
        make_model=model_builder(dataset),
        reward_model="zero",
        initial_states=default_initial_states(dataset),
        max_episode_frames=MAX_EPISODE_FRAMES,
        chunk_size=CHUNK_SIZE,
        description=description,
        extra={"dataset": dataset, "frame_size": RELEASES[dataset].frame_size},
    )
