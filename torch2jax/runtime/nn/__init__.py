"""Torch-compatible Equinox layers: batch-first, NCHW, torch's parameter names and shapes, torch's default init."""
from torch2jax.runtime.nn import functional
from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn.activation import (
    CELU, ELU, GELU, GLU, LeakyReLU, LogSigmoid, LogSoftmax, Mish, PReLU, ReLU, ReLU6, SELU, Hardshrink,
    Hardsigmoid, Hardswish, Hardtanh, Sigmoid, SiLU, Softmax, Softmax2d, Softmin, Softplus, Softshrink, Softsign,
    Tanh, Tanhshrink, Threshold,
)
from torch2jax.runtime.nn.containers import Sequential, call_with_state, is_stateful, with_state
from torch2jax.runtime.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from torch2jax.runtime.nn.dropout import Dropout, Dropout1d, Dropout2d, Dropout3d
from torch2jax.runtime.nn.embedding import Embedding, EmbeddingBag
from torch2jax.runtime.nn.linear import Bilinear, Flatten, Identity, Linear, Unflatten
from torch2jax.runtime.nn.normalization import (
    BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm,
    RMSNorm,
)
from torch2jax.runtime.nn.padding import (
    CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d, ConstantPad3d, ReflectionPad1d,
    ReflectionPad2d, ReflectionPad3d, ReplicationPad1d, ReplicationPad2d, ReplicationPad3d, ZeroPad1d, ZeroPad2d,
    ZeroPad3d,
)
from torch2jax.runtime.nn.pooling import (
    AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, AvgPool1d,
    AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d, MaxPool3d,
)
from torch2jax.runtime.nn.upsampling import (
    PixelShuffle, PixelUnshuffle, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d,
)
from torch2jax.runtime.nn.attention import MultiheadAttention
from torch2jax.runtime.nn import rnn_utils
from torch2jax.runtime.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from torch2jax.runtime.nn.transformer import (
    Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
)
