"""A small llama-shaped causal language model and the short training runs that give it a lineage.

The layout and the state-dict names are those of Hugging Face's `LlamaForCausalLM` (no biases, RMSNorm,
rotate-half RoPE, SwiGLU MLP, untied `lm_head`), so every converter that knows llama names knows ours. It is
trained for real (Adam, next-token loss) on seeded synthetic text, so its weights carry a history and a
fine-tune moves them the way a fine-tune does: a little, and not where the layers were frozen.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

INITIALIZER_RANGE = 0.02  # Hugging Face's llama `initializer_range`
RMS_EPS = 1e-5
ROPE_THETA = 10000.0
HEAD_DIM = 64
SEQUENCE = 32  # tokens a training row holds
BATCH = 2


@dataclass(frozen=True)
class LlamaShape:
    """What `LlamaConfig` would say; `seed` chooses the initial weights."""

    seed: int = 0
    hidden: int = 256
    layers: int = 4
    ffn: int = 704  # a multiple of 32 and not of 256, as in Qwen2.5's 4864: llama.cpp's K-quant fallback is exercised
    vocab: int = 2000
    context: int = 128

    @property
    def heads(self) -> int:
        return self.hidden // HEAD_DIM


class RMSNorm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS)
        return self.weight * (x * scale)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class Attention(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.heads = shape.heads
        self.q_proj = nn.Linear(shape.hidden, shape.hidden, bias=False)
        self.k_proj = nn.Linear(shape.hidden, shape.hidden, bias=False)
        self.v_proj = nn.Linear(shape.hidden, shape.hidden, bias=False)
        self.o_proj = nn.Linear(shape.hidden, shape.hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, HEAD_DIM).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        projected: torch.Tensor = self.o_proj(out.transpose(1, 2).reshape(batch, length, hidden))
        return projected


class MLP(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(shape.hidden, shape.ffn, bias=False)
        self.up_proj = nn.Linear(shape.hidden, shape.ffn, bias=False)
        self.down_proj = nn.Linear(shape.ffn, shape.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        down: torch.Tensor = self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return down


class DecoderLayer(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.self_attn = Attention(shape)
        self.mlp = MLP(shape)
        self.input_layernorm = RMSNorm(shape.hidden)
        self.post_attention_layernorm = RMSNorm(shape.hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        out: torch.Tensor = x + self.mlp(self.post_attention_layernorm(x))
        return out


class Backbone(nn.Module):
    rope_cos: torch.Tensor
    rope_sin: torch.Tensor

    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(shape.vocab, shape.hidden)
        self.layers = nn.ModuleList(DecoderLayer(shape) for _ in range(shape.layers))
        self.norm = RMSNorm(shape.hidden)
        inv_freq = 1.0 / ROPE_THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM)
        angles = torch.outer(torch.arange(shape.context, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        # Not in the state dict, as in transformers (its `inv_freq` is a non-persistent buffer).
        self.register_buffer("rope_cos", angles.cos(), persistent=False)
        self.register_buffer("rope_sin", angles.sin(), persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[-1]
        cos, sin = self.rope_cos[:length], self.rope_sin[:length]
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        normed: torch.Tensor = self.norm(x)
        return normed


class TinyLlama(nn.Module):
    """`LlamaForCausalLM` in miniature: `forward(input_ids) -> logits`."""

    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.shape = shape
        self.model = Backbone(shape)
        self.lm_head = nn.Linear(shape.hidden, shape.vocab, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.lm_head(self.model(input_ids))
        return logits


def initialised(shape: LlamaShape) -> TinyLlama:
    """Hugging Face's `_init_weights` for llama: normal(0, 0.02) matrices, unit norm scales; from `shape.seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(shape.seed)
        model = TinyLlama(shape)
        for name, parameter in model.named_parameters():
            if parameter.ndim == 2:
                with torch.no_grad():
                    parameter.normal_(0.0, INITIALIZER_RANGE)
            assert parameter.ndim == 2 or name.endswith("norm.weight"), name
    return model


def synthetic_text(seed: int, vocab: int) -> Iterator[torch.Tensor]:
    """Endless batches of token ids from a seeded Markov chain: each token has four likely successors, so
    there is something to learn, and another seed is another 'corpus'."""
    generator = torch.Generator().manual_seed(10_007 * seed + 1)
    successors = torch.randint(0, vocab, (vocab, 4), generator=generator)
    while True:
        tokens = torch.empty(BATCH, SEQUENCE + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, vocab, (BATCH,), generator=generator)
        picks = torch.randint(0, 4, (BATCH, SEQUENCE), generator=generator)
        noise = torch.rand(BATCH, SEQUENCE, generator=generator) < 0.1
        random_tokens = torch.randint(0, vocab, (BATCH, SEQUENCE), generator=generator)
        for step in range(SEQUENCE):
            following = successors[tokens[:, step], picks[:, step]]
            tokens[:, step + 1] = torch.where(noise[:, step], random_tokens[:, step], following)
        yield tokens


def matches(name: str, patterns: Sequence[str]) -> bool:
    """fnmatch patterns over state-dict names: `model.embed_tokens.*`, `model.layers.0.*`, `*.q_proj.weight`."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def train(model: TinyLlama, *, seed: int, steps: int, lr: float, frozen: Sequence[str] = ()) -> list[float]:
    """Adam on the next-token loss over `synthetic_text(seed)`; parameters matching `frozen` get no gradient
    and stay bit-for-bit as they were. Returns the losses."""
    trainable = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not matches(name, frozen))
        if parameter.requires_grad:
            trainable.append(parameter)
    optimizer = torch.optim.Adam(trainable, lr=lr)
    batches = synthetic_text(seed, model.shape.vocab)
    losses = []
    model.train()
    for _ in range(steps):
        tokens = next(batches)
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss.detach()))
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    model.eval()
    return losses


PRETRAIN_STEPS = 40
PRETRAIN_LR = 2e-3


@functools.cache
def _pretrained_state(shape: LlamaShape) -> dict[str, torch.Tensor]:
    model = initialised(shape)
    train(model, seed=shape.seed, steps=PRETRAIN_STEPS, lr=PRETRAIN_LR)
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def from_state(shape: LlamaShape, state: dict[str, torch.Tensor]) -> TinyLlama:
    model = TinyLlama(shape)
    model.load_state_dict(state)
    model.eval()
    return model


def pretrained(shape: LlamaShape) -> TinyLlama:
    """Initialised from `shape.seed` and pretrained briefly; memoised, every call returns a fresh copy."""
    return from_state(shape, _pretrained_state(shape))


def fine_tuned(model: TinyLlama, *, seed: int, steps: int, lr: float, frozen: Sequence[str] = ()) -> TinyLlama:
    """A further training run on another seeded corpus; `model` itself is left as it was."""
    tuned = copy.deepcopy(model)
    train(tuned, seed=seed, steps=steps, lr=lr, frozen=frozen)
    return tuned


def resized(shape: LlamaShape, *, hidden: int, layers: int, ffn: int) -> LlamaShape:
    return replace(shape, hidden=hidden, layers=layers, ffn=ffn)
