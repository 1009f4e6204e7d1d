"""The import graph of world_gym: no cycles, and the core never imports a task package.

The graph is grimp's: every ``import`` statement of every module, at module level or inside a
function (a lazy import counts: it is still a dependency). A third test plugs a backbone in from
outside the package, through an entry point, and loads a model of it by name in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")

#: The core: the engine and its plug-in mechanisms. Nothing here may import a task package.
CORE = (
    "world_gym",  # the package __init__ only (its subpackages are listed one by one)
    "world_gym.action_spec",
    "world_gym.env",
    "world_gym.env_catalog",
    "world_gym.initial_states",
    "world_gym.model_files",
    "world_gym.registration",
    "world_gym.registry",
    "world_gym.simulator",
    "world_gym.start_encodings",
    "world_gym.vector_env",
    "world_gym.video",
    "world_gym.world_model",
    "world_gym.wrappers",
    "world_gym.backbones",
    "world_gym.codecs",
    "world_gym.samplers",
    "world_gym.reward_models",  # the package __init__
    "world_gym.reward_models.base",
    "world_gym.reward_models.goal_image",
    "world_gym.reward_models.vlm",
    "world_gym.policies.base",
    "world_gym.data.lerobot_io",  # the dataset IO: a task passes its schema in
)
#: Packages (with everything under them) and modules that carry the core's subpackages whole.
CORE_TREES = ("world_gym.backbones", "world_gym.codecs", "world_gym.samplers")

#: Task-level modules: one task or robot (Push-T; the official IRASim checkpoints). The core finds
#: them by name (entry points, the env catalog), never by import.
TASK = (
    "world_gym.envs",  # the package: it only documents its families
    "world_gym.envs.pusht",  # the Push-T task package, with everything under it
    "world_gym.envs.irasim_official",
    "world_gym.envs.languagetable",
    "world_gym.envs.rt1",
    "world_gym.envs.bridge",
    "world_gym.reward_models.pusht_coverage",
    "world_gym.reward_models.pusht_latent_coverage",
    "world_gym.reward_models.resnet_iou",
    "world_gym.reward_models.render_fit",
    "world_gym.reward_models.train_resnet_iou",
    "world_gym.policies.pusht_expert",
    "world_gym.policies.pusht_expert_proposal",
    "world_gym.policies.pusht_pixel_expert",
    "world_gym.policies.zoo",
    "world_gym.policies.train_zoo",
    "world_gym.policies.cnn_bc",
    "world_gym.policies.pusht_state_bc",
)

#: The pipelines and front ends on top: trainers, the evaluation harness, the CLI, teleop.
UPPER = ("world_gym.training", "world_gym.evaluation", "world_gym.commands", "world_gym.cli", "world_gym.teleop",
         "world_gym.learning")
#: Parts they build on, which must not import them back (a part's own trainer, ``train_*``, may).
LOWER = ("world_gym.data", "world_gym.reward_models", "world_gym.policies", "world_gym.backbones",
         "world_gym.codecs", "world_gym.samplers")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("world_gym", include_external_packages=False, cache_dir=None)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    adjacency = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in adjacency:
        if root in index:
            continue
        work = [(root, iter(adjacency[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(adjacency[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _cycle_path(graph, component: list[str]) -> str:
    """One import chain through a cycle, for the failure message."""
    first = component[0]
    for nxt in sorted(graph.find_modules_directly_imported_by(first) & set(component)):
        back = graph.find_shortest_chain(importer=nxt, imported=first)
        if back:
            return " -> ".join([first, *back])
    return ", ".join(component)


def test_the_graph_holds_the_whole_package(graph):
    # the subpackages that live in their own folders are part of the graph this test checks
    for name in ("world_gym.world_model", "world_gym.backbones.irasim", "world_gym.samplers.diffusion",
                 "world_gym.codecs.vae", "world_gym.registry"):
        assert name in graph.modules, name


def test_no_import_cycles(graph):
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_cycle_path(graph, c) for c in cycles)


def test_the_core_imports_no_task_package(graph):
    core = [m for m in sorted(graph.modules) if m in CORE or _under(m, CORE_TREES)]
    assert "world_gym.world_model" in core and "world_gym.backbones.irasim" in core
    bad = []
    for module in core:
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if _under(imported, TASK):
                details = graph.get_import_details(importer=module, imported=imported)
                lines = ", ".join(str(d["line_number"]) for d in details)
                bad.append(f"{module} imports {imported} (line {lines})")
    assert not bad, "core modules import task packages:\n" + "\n".join(bad)


def test_lower_layers_import_no_pipeline_or_front_end(graph):
    lower = [m for m in sorted(graph.modules)
             if (m in CORE or _under(m, LOWER)) and not m.rsplit(".", 1)[-1].startswith("train_")]
    assert "world_gym.data.episodes" in lower and "world_gym.reward_models.pusht_coverage" in lower
    bad = [f"{m} imports {i}" for m in lower for i in sorted(graph.find_modules_directly_imported_by(m))
           if _under(i, UPPER)]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_task_list_names_real_modules(graph):
    # a renamed task module must not slip out of the contract unnoticed
    missing = [t for t in TASK if not any(_under(m, (t,)) for m in graph.modules)]
    assert not missing, missing


TOY_BACKBONE = '''
"""A toy backbone from outside world_gym: it predicts zero noise."""
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ToyConfig:
    num_frames: int
    latent_size: tuple
    channels: int


class ToyBackbone(nn.Module):
    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, t, actions, action_mask):
        return x * 0 * self.scale


def make(cfg: dict) -> ToyBackbone:
    return ToyBackbone(ToyConfig(cfg["num_frames"], tuple(cfg["latent_size"]), cfg["channels"]))
'''

SAVE = '''
import sys
import numpy as np
import torch
torch.set_num_threads(1)
from world_gym.action_spec import ActionSpec
from world_gym.codecs import tiny_vae_config
from world_gym.samplers import SamplerConfig
from world_gym.world_model import WorldModel, WorldModelConfig

config = WorldModelConfig(
    backbone="Toy", backbone_config={"num_frames": 3, "latent_size": [4, 4], "channels": 4},
    codec={"vae": tiny_vae_config(block_out_channels=(8, 8, 8)), "scaling_factor": 1.0},
    action=ActionSpec(dim=2, low=[-1.0, -1.0], high=[1.0, 1.0]), frame_size=(16, 16),
    sampler=SamplerConfig(name="ddim", num_inference_steps=2))
torch.manual_seed(0)
model = WorldModel(config)
assert "toy_backbone" in type(model.backbone).__module__
model.save_pretrained(sys.argv[1])
out = model.rollout(np.zeros((1, 16, 16, 3), np.uint8), np.zeros((1, 2, 2)), torch.Generator().manual_seed(0))
np.save(sys.argv[1] + "/frames.npy", out.frames)
'''

LOAD = '''
import sys
import numpy as np
import torch
torch.set_num_threads(1)
from world_gym.world_model import WorldModel

assert "toy_backbone" not in sys.modules
model = WorldModel.from_pretrained(sys.argv[1])
assert type(model.backbone).__name__ == "ToyBackbone"
out = model.rollout(np.zeros((1, 16, 16, 3), np.uint8), np.zeros((1, 2, 2)), torch.Generator().manual_seed(0))
assert np.array_equal(out.frames, np.load(sys.argv[1] + "/frames.npy"))
print("loaded", type(model.backbone).__module__)
'''


def test_a_backbone_from_outside_loads_by_name_through_its_entry_point(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "toy_backbone.py").write_text(textwrap.dedent(TOY_BACKBONE))
    dist = site / "toy_backbone-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backbone\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[world_gym.backbones]\nToy = toy_backbone:make\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    model_dir = tmp_path / "toy-model"
    for script in (SAVE, LOAD):  # each in a fresh process: nothing registered by hand
        result = subprocess.run([sys.executable, "-c", script, str(model_dir)], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((model_dir / "config.json").read_text())["backbone"] == "Toy"
    assert "loaded toy_backbone" in result.stdout


def test_an_unknown_backbone_names_the_entry_point_group(tmp_path):
    from world_gym.backbones import BACKBONES

    with pytest.raises(ValueError, match="world_gym.backbones") as err:
        BACKBONES.get("NoSuchBackbone")
    assert "IRASim" in str(err.value)
