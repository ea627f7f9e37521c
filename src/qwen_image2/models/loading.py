"""Load and save Qwen-Image-2.x models as diffusers folders (the `Qwen/Qwen-Image-2.1` layout).

A folder holds `model_index.json` and one subfolder per component. What we save loads in stock
`diffusers.QwenImage21Pipeline.from_pretrained`, and what stock diffusers saves loads here.
"""

import json
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKLQwenImage21, FlowMatchEulerDiscreteScheduler, QwenImage21Transformer2DModel
from transformers import Qwen3VLForConditionalGeneration, Qwen3VLProcessor

from qwen_image2.errors import UserError
from qwen_image2.models.components import Components
from qwen_image2.models.presets import build_components, build_vae, load_preset, preset_names

PIPELINE_CLASS = "QwenImage21Pipeline"
# model_index.json keys starting with "_" are private: stock diffusers drops them without a warning.
TRAINING_RESOLUTION = "_training_resolution"
COMPONENT_CLASSES = {
    "scheduler": ("diffusers", FlowMatchEulerDiscreteScheduler),
    "vae": ("diffusers", AutoencoderKLQwenImage21),
    "text_encoder": ("transformers", Qwen3VLForConditionalGeneration),
    "processor": ("transformers", Qwen3VLProcessor),
    "transformer": ("diffusers", QwenImage21Transformer2DModel),
}


def load_components(
    model: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", seed: int = 0
) -> Components:
    """A diffusers folder, or a preset name built with random weights from `seed`."""
    path = Path(model)
    if path.is_dir():
        components = load_folder(path, dtype)
    elif str(model) in preset_names():
        components = build_components(str(model), seed=seed)
        if dtype != torch.float32:
            for module in (components.transformer, components.vae, components.text_encoder):
                module.to(dtype)
    else:
        raise UserError(
            f"model {str(model)!r} is neither a folder nor a preset ({', '.join(preset_names())}); "
            "give the path of a diffusers folder such as a local copy of Qwen/Qwen-Image-2.1"
        )
    for module in (components.transformer, components.vae, components.text_encoder):
        module.to(device)
    return components


def read_model_index(index_file: Path) -> dict:
    """A folder's `model_index.json` as a mapping; a UserError naming the file when it is not one."""
    try:
        index = json.loads(Path(index_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {index_file} ({err.__class__.__name__})") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{index_file} is not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(index, dict):
        raise UserError(f"{index_file} must be a JSON object mapping component names to classes")
    return index


def training_resolution_of(model: str | Path, default: int = 1024) -> int:
    """The side a model folder says it was trained at (its exported `_training_resolution`), read without
    loading any weights; `default` (stock diffusers' 1024) for presets and folders that do not say."""
    index_file = Path(model) / "model_index.json"
    if not index_file.is_file():
        return default
    return int(read_model_index(index_file).get(TRAINING_RESOLUTION) or default)


def load_folder(folder: Path, dtype: torch.dtype = torch.float32) -> Components:
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise UserError(f"{folder} has no model_index.json; is it a diffusers model folder?")
    index = read_model_index(index_file)
    missing = [name for name in COMPONENT_CLASSES if not (folder / name).is_dir()]
    if missing:
        raise UserError(f"{folder} lacks the component folder(s) {', '.join(missing)}")
    for name, (_, cls) in COMPONENT_CLASSES.items():
        declared = index.get(name, [None, None])[1]
        if declared != cls.__name__:
            raise UserError(f"{index_file}: component {name} is {declared!r}, expected {cls.__name__!r}")
    return Components(
        transformer=QwenImage21Transformer2DModel.from_pretrained(folder / "transformer", torch_dtype=dtype),
        vae=AutoencoderKLQwenImage21.from_pretrained(folder / "vae", torch_dtype=dtype).eval(),
        text_encoder=Qwen3VLForConditionalGeneration.from_pretrained(
            folder / "text_encoder", dtype=dtype
        ).eval(),
        processor=Qwen3VLProcessor.from_pretrained(folder / "processor"),
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler"),
        sample_sigmas=index.get("sample_sigmas"),
        training_resolution=index.get(TRAINING_RESOLUTION),
    )


def save_components(components: Components, folder: str | Path) -> Path:
    """Write `components` as a diffusers folder with a stock `model_index.json`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": PIPELINE_CLASS, "_diffusers_version": diffusers.__version__}
    for name, (library, cls) in COMPONENT_CLASSES.items():
        getattr(components, name).save_pretrained(folder / name)
        index[name] = [library, cls.__name__]
    index["sample_sigmas"] = components.sample_sigmas
    if components.training_resolution is not None:
        index[TRAINING_RESOLUTION] = components.training_resolution
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def load_vae(
    model: str | Path, dtype: torch.dtype = torch.float32, seed: int = 0
) -> AutoencoderKLQwenImage21:
    """A model folder (its vae/), a vae folder (config.json), or a preset built with random weights."""
    path = Path(model)
    if (path / "model_index.json").is_file():
        read_model_index(path / "model_index.json")
    if (path / "model_index.json").is_file() or (path / "vae" / "config.json").is_file():
        path = path / "vae"  # a full model folder, or our export without a base model
    if (path / "config.json").is_file():
        return AutoencoderKLQwenImage21.from_pretrained(path, torch_dtype=dtype).eval()
    if str(model) in preset_names():
        torch.manual_seed(seed)
        return build_vae(load_preset(str(model))["vae"]).to(dtype)
    raise UserError(
        f"model {str(model)!r} is not a model folder, a vae folder (config.json) or a preset "
        f"({', '.join(preset_names())})"
    )
