"""CLIP tokenizers built in code: byte-level BPE laid out like CLIP's, with whole-word
tokens for a given vocabulary.

Models trained here (and the tiny test pipelines) cannot download CLIP's 49k-token
vocabulary, and do not need it: a caption grammar of a hundred words gets one token per
word, and anything else still tokenizes, byte by byte.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import CLIPTokenizer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible byte -> printable character table (ByteLevel alphabet)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def clip_tokenizer(words: Iterable[str], max_length: int) -> CLIPTokenizer:
    """Bytes, bytes + ``</w>``, the merges that make each of ``words`` one token, then the
    two special tokens (so they get the highest ids, as in the real vocabulary)."""
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet]
    merges: list[tuple[str, str]] = []
    known = set(tokens)
    # Longest words first: BPE applies merges by rank, so this keeps e.g. "to</w>" from
    # splitting "photo" into "pho" + "to</w>".
    for word in sorted(set(words), key=lambda w: (-len(w), w)):
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merged = parts[0] + parts[1]
            if merged not in known:
                merges.append((parts[0], parts[1]))
                tokens.append(merged)
                known.add(merged)
            parts = [merged, *parts[2:]]
    tokens += [BOS, EOS]
    vocab = {token: i for i, token in enumerate(tokens)}
    # transformers hints merges as list[str], but the tokenizers BPE model wants pairs.
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]
        model_max_length=max_length,
    )
