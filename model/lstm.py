"""Character-level recurrent language model.

`CharLSTM` maps a batch of character ids `(B, T)` and a recurrent state to next-character
logits `(B, T, V)` and the new state. The recurrent cell (LSTM, GRU or plain RNN) runs over the
whole sequence in one cuDNN/oneDNN call; there is no Python loop over time steps.

    ids (B,T) -> Embedding -> {LSTM|GRU|RNN}(num_layers) -> Dropout -> Linear -> logits (B,T,V)

Dropout acts on every recurrent layer's output: between layers (inside the cell's module) and
before the output layer, so a one-layer network can be regularised too. It never touches the
recurrent connections, so the state carried across batches is the same in training and
evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.errors import ConfigError

CELLS = ("lstm", "gru", "rnn")

# A recurrent state is always a tuple of (num_layers, B, hidden) tensors: (h, c) for an LSTM,
# (h,) for a GRU or RNN, so callers never special-case the cell.
State = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 0  # distinct characters; filled from the corpus with dataclasses.replace
    cell: str = "lstm"  # recurrent cell: lstm | gru | rnn (tanh)
    embed_dim: int = 64  # character embedding width (a learned one-hot projection)
    hidden_size: int = 256  # units per recurrent layer
    num_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.0  # on each recurrent layer's output (between layers, before the head)

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        for name in ("embed_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.vocab_size < 0:
            raise ConfigError(f"vocab_size must be non-negative, got {self.vocab_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


class CharLSTM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size < 1:
            raise ConfigError("vocab_size must be set from the corpus before building the model")
        self.config = config
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[config.cell]
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.rnn = rnn_class(
            config.embed_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)  # no weights: checkpoints are unchanged
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def init_state(self, batch_size: int) -> State:
        """Zero state on the weights' device and dtype."""
        weight = self.head.weight
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        n = 2 if self.config.cell == "lstm" else 1
        return tuple(weight.new_zeros(shape) for _ in range(n))

    def forward(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        out, new_state = self.rnn(self.embed(ids), state if len(state) == 2 else state[0])
        if not isinstance(new_state, tuple):
            new_state = (new_state,)
        return self.head(self.drop(out)), new_state


def detach_state(state: State) -> State:
    # Keep the values, cut the graph: backprop stops at the batch boundary (truncated BPTT),
    # otherwise every step would backpropagate through the whole history of the stream.
    return tuple(s.detach() for s in state)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
