"""Tiny BLIP, GIT, Florence-2 and CLIP models built from configs and saved like downloaded weights.

Each builder writes a folder that the production loaders read exactly as they read a hub snapshot, so tests
and benchmarks exercise the real loading path without any download. Weights are random: outputs are
arbitrary strings from the tiny vocabulary, never meaningful captions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

WORDS = (
    "a an the of and with in on at woman man person dog cat bird car tree park street beach room "
    "standing sitting walking smiling red blue green black white hat dress shirt photo close up light"
).split()
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]


def _bert_tokenizer(*, with_decoder_token: bool) -> object:
    from transformers import BertTokenizer

    specials = BERT_SPECIALS if with_decoder_token else BERT_SPECIALS[:-1]
    vocab = {token: index for index, token in enumerate([*specials, *WORDS])}
    # transformers 5: `vocab=` takes the dict; `vocab_file=` is silently ignored (every word -> [UNK]).
    if with_decoder_token:
        return BertTokenizer(vocab=vocab, bos_token="[DEC]")
    return BertTokenizer(vocab=vocab)


@dataclass(frozen=True)
class BlipSize:
    """Width and depth of a BLIP built from config; the defaults make a model of a few hundred kB."""

    hidden: int = 32
    layers: int = 1
    heads: int = 2
    image_size: int = 32
    patch_size: int = 8


def build_tiny_blip(folder: Path, size: BlipSize = BlipSize()) -> Path:
    """A BLIP captioning model plus processor saved to `folder`."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    tokenizer = _bert_tokenizer(with_decoder_token=True)
    vocab_size = len(BERT_SPECIALS) + len(WORDS)
    block = dict(
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        intermediate_size=size.hidden * 4,
    )
    config = BlipConfig(
        text_config=dict(
            block,
            vocab_size=vocab_size,
            max_position_embeddings=128,
            pad_token_id=0,
            bos_token_id=5,
            sep_token_id=3,
            eos_token_id=3,
        ),
        vision_config=dict(block, image_size=size.image_size, patch_size=size.patch_size),
        projection_dim=size.hidden,
    )
    image_processor = BlipImageProcessor(size={"height": size.image_size, "width": size.image_size})
    _save(folder, BlipForConditionalGeneration(config), BlipProcessor(image_processor, tokenizer))
    return folder


def build_tiny_git(folder: Path) -> Path:
    """A GIT captioning model plus processor saved to `folder`."""
    from transformers import AutoModelForCausalLM, CLIPImageProcessor, GitConfig, GitProcessor

    tokenizer = _bert_tokenizer(with_decoder_token=False)
    block = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    config = GitConfig(
        vision_config=dict(block, image_size=32, patch_size=8),
        vocab_size=len(BERT_SPECIALS) - 1 + len(WORDS),
        max_position_embeddings=128,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
        **block,
    )
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    _save(folder, AutoModelForCausalLM.from_config(config), GitProcessor(image_processor, tokenizer))
    return folder


def build_tiny_florence2(folder: Path) -> Path:
    """A Florence-2 model plus processor (byte-level BPE without merges) saved to `folder`."""
    from tokenizers import pre_tokenizers
    from transformers import (
        BartTokenizer,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    tokens = ["<s>", "<pad>", "</s>", "<unk>", *sorted(pre_tokenizers.ByteLevel.alphabet()), "<mask>"]
    tokenizer = BartTokenizer(
        vocab={token: index for index, token in enumerate(tokens)},
        merges=[],
        extra_special_tokens={"image_token": "<image>"},
    )
    # A 32 px image becomes 4x4 vision tokens after strides 4 and 2, plus one pooled token.
    image_processor = CLIPImageProcessor(
        size={"height": 32, "width": 32}, do_center_crop=False, image_seq_length=17
    )
    processor = Florence2Processor(
        image_processor=image_processor, tokenizer=tokenizer, post_processor_config={"pure_text": {}}
    )
    config = Florence2Config(
        vision_config=dict(
            depths=[1, 1],
            embed_dim=[16, 32],
            num_heads=[2, 2],
            num_groups=[2, 2],
            patch_size=[7, 3],
            patch_stride=[4, 2],
            patch_padding=[3, 1],
            patch_prenorm=[False, True],
            window_size=2,
            projection_dim=32,
            max_position_embeddings=8,
            max_temporal_embeddings=2,
        ),
        text_config=dict(
            vocab_size=len(tokenizer),
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=128,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
            forced_eos_token_id=2,
        ),
        image_token_id=tokenizer.image_token_id,
    )
    _save(folder, Florence2ForConditionalGeneration(config), processor)
    return folder


TINY_CLIP_NAME = "loraforge-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_tiny_clip(folder: Path) -> str:
    """Register the tiny open_clip config (idempotent) and return its model name."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{TINY_CLIP_NAME}.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(path)
    return TINY_CLIP_NAME


def build_tiny_clip(folder: Path, *, seed: int = 0) -> tuple[str, Path]:
    """The tiny CLIP's model name and a saved state dict that `pretrained=PATH` reloads."""
    import open_clip
    import torch

    name = register_tiny_clip(folder)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    checkpoint = folder / f"{name}.pt"
    torch.save(model.state_dict(), checkpoint)
    return name, checkpoint


def _save(folder: Path, model: object, processor: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()  # type: ignore[attr-defined]
    model.save_pretrained(folder)  # type: ignore[attr-defined]
    processor.save_pretrained(folder)  # type: ignore[attr-defined]
