"""Tiny random-weight diffusers pipelines, built in code and saved to disk.

Tests and benchmarks need *real* pipelines — loaded through ``from_pretrained`` from a
directory, run through the real ``__call__`` — but CI has no Hugging Face hub and no room
for real checkpoints. These helpers build pipelines the way diffusers' own fast tests do
(``get_dummy_components()``: every component seeded with ``torch.manual_seed``, one or two
blocks, at most 32 channels) and ``save_pretrained`` them, tokenizers included, so a test
can point a backend at the directory with ``HF_HUB_OFFLINE=1`` set.

The weights are random, so images are structured noise; what is real is the plumbing:
configs, tokenizers, schedulers, batching, generators, sizes and the image-to-image path.

Unlike diffusers' fast tests, both VAEs have four blocks so ``vae_scale_factor`` is 8, as
in the real models: SD needs sizes that are multiples of 8 and FLUX multiples of 16, so
size handling in tests fails where it would fail in production.
"""

# diffusers' models, schedulers and pipelines are untyped (``@register_to_config``).
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from pathlib import Path

import torch

# Imported from their modules, not from ``diffusers``: for the top-level names mypy picks
# diffusers' dummy placeholder objects.
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
    FlowMatchEulerDiscreteScheduler,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

from imagegate.training.tokenizer import BOS, EOS, clip_tokenizer

__all__ = ["save_tiny_flux", "save_tiny_sd"]

# Words that get whole-word tokens; anything else falls back to characters (CLIP: bytes).
# fmt: off
_COMMON_WORDS = (
    "a", "an", "the", "of", "and", "in", "on", "at", "with", "by", "for", "to", "is", "photo",
    "picture", "painting", "drawing", "portrait", "landscape", "city", "night", "day", "sky",
    "sea", "mountain", "forest", "tree", "flower", "cat", "dog", "horse", "bird", "fish",
    "squirrel", "eating", "burger", "astronaut", "riding", "red", "green", "blue", "yellow",
    "black", "white", "big", "small", "old", "new", "cute", "beautiful", "detailed", "high",
    "quality",
)
# fmt: on

_CLIP_MAX_LENGTH = 77  # as in every Stable Diffusion / FLUX CLIP tokenizer
_T5_MAX_LENGTH = 512  # FluxPipeline's default max_sequence_length
_TEXT_DIM = 32  # hidden size of both text encoders = cross-attention / joint-attention dim


def _clip_tokenizer() -> CLIPTokenizer:
    return clip_tokenizer(_COMMON_WORDS, _CLIP_MAX_LENGTH)


def clip_text_encoder(
    tokenizer: CLIPTokenizer,
    *,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    act: str = "quick_gelu",
) -> CLIPTextModel:
    """A CLIP text encoder with random weights for ``tokenizer``, at any size (the tiny
    pipelines' and the real SD / FLUX ones in benchmarks/backend_overhead.py)."""
    eos = tokenizer.convert_tokens_to_ids(EOS)
    bos = tokenizer.convert_tokens_to_ids(BOS)
    assert isinstance(eos, int) and isinstance(bos, int)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        projection_dim=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=_CLIP_MAX_LENGTH,
        hidden_act=act,
        layer_norm_eps=1e-5,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    return CLIPTextModel(config)


def _clip_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    return clip_text_encoder(tokenizer, hidden=_TEXT_DIM, layers=2, heads=4, intermediate=37)


def sd_turbo_scheduler() -> DDIMScheduler:
    """SD's noise schedule with "trailing" spacing (as in stabilityai/sd-turbo), so one or
    two steps start from pure noise.

    DDIM rather than sd-turbo's EulerDiscreteScheduler: Euler's set_timesteps calls
    np.array() on a torch tensor, which with numpy 2.4 / torch 2.13 emits "DeprecationWarning:
    __array__ implementation doesn't accept a copy keyword" on every call, and pytest's
    filterwarnings=error turns that into a failure."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        timestep_spacing="trailing",
        steps_offset=1,
        clip_sample=False,
        set_alpha_to_one=False,
    )


def _t5_tokenizer() -> T5Tokenizer:
    """A Unigram tokenizer laid out like T5's (``<pad>``=0, ``</s>``=1, ``<unk>``=2):
    whole-word pieces for common words, single characters for everything else."""
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces.append(("▁", -4.0))
    pieces += [("▁" + word, -3.0) for word in _COMMON_WORDS]
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()/&+"
    pieces += [(c, -8.0) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=_T5_MAX_LENGTH)


def t5_text_encoder(
    tokenizer: T5Tokenizer,
    *,
    d_model: int,
    d_kv: int,
    d_ff: int,
    layers: int,
    heads: int,
    buckets: int,
) -> T5EncoderModel:
    """A T5 encoder with random weights for ``tokenizer``, at any size (the tiny FLUX
    pipeline's and FLUX's real T5-XXL in benchmarks/backend_overhead.py)."""
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=d_kv,
        d_ff=d_ff,
        num_layers=layers,
        num_heads=heads,
        relative_attention_num_buckets=buckets,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5EncoderModel(config)


def _t5_text_encoder(tokenizer: T5Tokenizer) -> T5EncoderModel:
    return t5_text_encoder(
        tokenizer, d_model=_TEXT_DIM, d_kv=8, d_ff=37, layers=2, heads=4, buckets=8
    )


def four_block_vae(
    widths: tuple[int, int, int, int],
    *,
    latent_channels: int,
    layers_per_block: int,
    norm_num_groups: int,
    sample_size: int,
    scaling_factor: float,
    shift_factor: float | None = None,
) -> AutoencoderKL:
    """An SD / FLUX-layout VAE with random weights: four blocks, so ``vae_scale_factor``
    is 8 as in the real ones. A ``shift_factor`` makes it FLUX's: shifted latents and no
    quant convs."""
    flux = shift_factor is not None
    vae: AutoencoderKL = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=widths,
        layers_per_block=layers_per_block,
        latent_channels=latent_channels,
        norm_num_groups=norm_num_groups,
        sample_size=sample_size,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=not flux,
        use_post_quant_conv=not flux,
    )
    return vae


def _vae(*, latent_channels: int, flux: bool) -> AutoencoderKL:
    """Tiny widths; ``flux``: the scale and shift of diffusers' FLUX fast tests."""
    return four_block_vae(
        (8, 8, 16, 16),
        latent_channels=latent_channels,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=1.5035 if flux else 0.18215,
        shift_factor=0.0609 if flux else None,
    )


def save_tiny_sd(directory: Path, *, seed: int = 0) -> Path:
    """Build a tiny random ``StableDiffusionPipeline`` (SD-Turbo-like scheduler) and save it.

    Loads back offline with ``AutoPipelineForText2Image.from_pretrained(directory)``.
    Default size is 64x64; height and width must be multiples of 8. Returns ``directory``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,  # latent size -> 64x64 default images
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(16, 32),
            layers_per_block=1,
            norm_num_groups=8,
            attention_head_dim=8,
            cross_attention_dim=_TEXT_DIM,
        )
        torch.manual_seed(seed)
        vae = _vae(latent_channels=4, flux=False)
        tokenizer = _clip_tokenizer()
        torch.manual_seed(seed)
        text_encoder = _clip_text_encoder(tokenizer)
    scheduler = sd_turbo_scheduler()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,  # type: ignore[arg-type]  # hinted as an enum of classes
        # diffusers hints these as non-optional, but None is how SD runs without them.
        safety_checker=None,  # type: ignore[arg-type]
        feature_extractor=None,  # type: ignore[arg-type]
        requires_safety_checker=False,
    )
    directory.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(directory)
    return directory


def save_tiny_flux(directory: Path, *, seed: int = 0) -> Path:
    """Build a tiny random ``FluxPipeline`` (schnell-like: no guidance embedding) and save it.

    Loads back offline with ``AutoPipelineForText2Image.from_pretrained(directory)``.
    Always pass ``height``/``width`` (FLUX's default is 1024x1024); they should be multiples
    of 16, otherwise FLUX rounds them down. Returns ``directory``.
    """
    latent_channels = 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=latent_channels * 4,  # latents are packed in 2x2 patches
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=_TEXT_DIM,
            pooled_projection_dim=_TEXT_DIM,
            guidance_embeds=False,
            axes_dims_rope=(4, 4, 8),
        )
        tokenizer = _clip_tokenizer()
        torch.manual_seed(seed)
        text_encoder = _clip_text_encoder(tokenizer)
        tokenizer_2 = _t5_tokenizer()
        torch.manual_seed(seed)
        text_encoder_2 = _t5_text_encoder(tokenizer_2)
        torch.manual_seed(seed)
        vae = _vae(latent_channels=latent_channels, flux=True)
    # black-forest-labs/FLUX.1-schnell's scheduler (static shift, no dynamic shifting).
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False
    )
    pipe = FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    directory.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(directory)
    return directory
