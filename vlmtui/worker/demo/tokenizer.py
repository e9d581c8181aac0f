"""A small byte-level BPE tokenizer trained offline, for the tiny demo models.

Trained with ``tokenizers`` on a few KB of text bundled here; wrapped in ``PreTrainedTokenizerFast``
with the special tokens a family needs and a chat template, so processors and ``apply_chat_template``
work exactly as they do with a real checkpoint.
"""

from __future__ import annotations

from typing import Any

_CORPUS = """
A photograph of a cat sitting on a wooden table next to a cup of coffee. The light is warm.
A red bicycle leans against a brick wall on a quiet street in the morning.
Describe this image in one sentence. What is in the picture? How many objects are there?
The quick brown fox jumps over the lazy dog. What is the capital of France? Paris is the capital.
A mountain lake reflects the sky; pine trees line the shore and clouds drift above the peaks.
Two people walk along a sandy beach at sunset while waves roll onto the shore.
A bowl of fruit with apples, oranges and bananas sits on a kitchen counter.
The city skyline at night, with lights in the windows of tall buildings and cars on the road.
A dog runs across a green field chasing a ball. Children play in the park under a blue sky.
Explain why the sky is blue in one short paragraph. Count from one to ten.
Memory, speed, tokens, images and prompts: a model reads the picture and writes an answer.
""" * 8

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "<pad>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""ChatML with the image placeholder where the image part is; families override as they need."""


def build_tokenizer(
    extra_special_tokens: list[str] | None = None,
    chat_template: str = CHATML_TEMPLATE,
    vocab_size: int = 512,
    **init_kwargs: Any,
) -> Any:
    """A trained ``PreTrainedTokenizerFast`` with ``extra_special_tokens`` added as special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    extra = list(extra_special_tokens or [])
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL + extra,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=raw,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        pad_token="<pad>",
        **init_kwargs,
    )
    if extra:
        tokenizer.add_special_tokens({"additional_special_tokens": extra})
    tokenizer.chat_template = chat_template
    return tokenizer
