"""The shapes model's components: ordinary diffusers and transformers classes, sized for a
2-core CPU, so that the trained model is a normal StableDiffusionPipeline directory that
the diffusers backend loads with no special case.

Native size 64x64; the VAE compresses 4x to 16x16x4 latents (three blocks), the UNet works
at 16 -> 8 -> 4 (attending to the caption at 8 and 4), and the text encoder reads captions
of at most ``MAX_TOKENS`` tokens.
"""

# diffusers' constructors are untyped (``@register_to_config``).
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from imagegate.training.tokenizer import BOS, EOS, clip_tokenizer

IMAGE_SIZE = 64
LATENT_CHANNELS = 4
MAX_TOKENS = 24  # the longest caption of the grammar, with room; CLIP's 77 would be waste
TEXT_DIM = 128


@dataclass(frozen=True)
class Widths:
    """Channel widths: the defaults are what ships; tests use smaller ones."""

    vae: tuple[int, ...] = (16, 32, 64)  # narrow at 64x64, where a step spends its time
    unet: tuple[int, ...] = (64, 128, 128)
    text_layers: int = 3


DEFAULT_WIDTHS = Widths()


def tokenizer(words: Iterable[str]) -> CLIPTokenizer:
    return clip_tokenizer(words, MAX_TOKENS)


def text_encoder(tok: CLIPTokenizer, widths: Widths = DEFAULT_WIDTHS) -> CLIPTextModel:
    eos = tok.convert_tokens_to_ids(EOS)
    bos = tok.convert_tokens_to_ids(BOS)
    assert isinstance(eos, int) and isinstance(bos, int)
    config = CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=TEXT_DIM,
        intermediate_size=TEXT_DIM * 2,
        projection_dim=TEXT_DIM,
        num_hidden_layers=widths.text_layers,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        layer_norm_eps=1e-5,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    return CLIPTextModel(config)


def vae(widths: Widths = DEFAULT_WIDTHS) -> AutoencoderKL:
    blocks = len(widths.vae)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=widths.vae,
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=min(16, widths.vae[0]),
        sample_size=IMAGE_SIZE,
    )


def unet(widths: Widths = DEFAULT_WIDTHS) -> UNet2DConditionModel:
    # Attention only at 8x8 and 4x4: the grammar's positions are five coarse places, and
    # attention over the 256 positions of the 16x16 level doubled a training step's time.
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=widths.unet,
        layers_per_block=1,
        norm_num_groups=min(32, widths.unet[0]),
        # diffusers reads this as the number of heads (its long-standing misnomer).
        attention_head_dim=4,
        cross_attention_dim=TEXT_DIM,
    )


# The cosine schedule suits small images better than SD's scaled-linear one, whose last
# steps barely move a 16x16 latent.
_SCHEDULE = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"}
# What the denoiser predicts. The shipped weights predict epsilon. "v_prediction" was tried
# because at the first sampling step only 0.6 % of the signal is left, and an epsilon
# model's clean-image estimate there multiplies its error by 13, in the steps that settle
# the image's overall colour; a short run fixed the backgrounds but lost the objects (see
# docs/demo-model.md).
PREDICTION = "epsilon"


def training_scheduler(prediction: str = PREDICTION) -> DDPMScheduler:
    return DDPMScheduler(**_SCHEDULE, prediction_type=prediction, clip_sample=False)


def sampling_scheduler(prediction: str = PREDICTION) -> DDIMScheduler:
    # DDIM rather than Euler: Euler's set_timesteps warns on every call with numpy 2.4.
    return DDIMScheduler(
        **_SCHEDULE,
        prediction_type=prediction,
        clip_sample=False,
        set_alpha_to_one=True,
        # Not "trailing": the cosine schedule's last timestep keeps 2e-9 of the signal, so
        # a first step there divides the noise estimate's error by 5e-5 and the image
        # saturates. "leading" starts at 951 of 1000 (0.6 % of the signal is left).
        timestep_spacing="leading",
        steps_offset=1,
    )
