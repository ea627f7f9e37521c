"""The five parts of a Qwen-Image-2.x model, as the library classes themselves."""

from dataclasses import dataclass

from diffusers import AutoencoderKLQwenImage21, FlowMatchEulerDiscreteScheduler, QwenImage21Transformer2DModel
from transformers import Qwen3VLForConditionalGeneration, Qwen3VLProcessor

from qwen_image2.errors import UserError


@dataclass
class Components:
    """Everything generation, editing and training read. `sample_sigmas` is a distilled model's fixed grid;
    `training_resolution` the side (pixels) a model was trained at, the default of sampling it."""

    transformer: QwenImage21Transformer2DModel
    vae: AutoencoderKLQwenImage21
    text_encoder: Qwen3VLForConditionalGeneration
    processor: Qwen3VLProcessor
    scheduler: FlowMatchEulerDiscreteScheduler
    sample_sigmas: list[float] | None = None
    training_resolution: int | None = None

    def pipeline_parts(self) -> dict:
        """The five library parts by the names `diffusers.QwenImage21Pipeline(...)` takes them."""
        names = ("transformer", "vae", "text_encoder", "processor", "scheduler")
        return {name: getattr(self, name) for name in names}

    def __post_init__(self) -> None:
        check_compatible(self)


def check_compatible(components: Components) -> None:
    """Fail early, naming both sides, when the parts were not made for each other."""
    transformer, vae = components.transformer.config, components.vae.config
    encoder_dim = components.text_encoder.config.text_config.hidden_size
    if transformer.context_in_dim != encoder_dim:
        raise UserError(
            f"transformer context_in_dim is {transformer.context_in_dim} but the text encoder's hidden size is "
            f"{encoder_dim}; use a transformer trained with this encoder"
        )
    if transformer.in_channels != vae.z_dim or transformer.out_channels != vae.z_dim:
        raise UserError(
            f"transformer latent channels are {transformer.in_channels} in / {transformer.out_channels} out but "
            f"the VAE's z_dim is {vae.z_dim}; use a VAE with {transformer.in_channels} latent channels"
        )
    merge = components.processor.image_processor.merge_size * components.processor.image_processor.patch_size
    if merge != 2 * vae.scale_factor_spatial:
        raise UserError(
            f"one merged vision token covers {merge} px but two VAE latent cells cover "
            f"{2 * vae.scale_factor_spatial} px; the processor's patch_size x merge_size must be 32"
        )
