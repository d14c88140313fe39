"""Neural-network building blocks: ``Module`` and ``Parameter``, layers, containers, losses, ``init`` and
``utils``. Names, parameter shapes and state-dict keys are PyTorch's."""
from .parameter import Parameter
from .module import Module
from .containers import ModuleDict, ModuleList, Sequential
from .linear import Identity, Linear
from .flatten import Flatten
from .conv import Conv2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm, RMSNorm
from .dropout import Dropout
from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from . import init, utils
from .embedding import Embedding
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .attention import MultiheadAttention
from .transformer import (LearnedPositionalEncoding, SinusoidalPositionalEncoding, TransformerDecoderLayer,
                          TransformerEncoder, TransformerEncoderLayer)
from .feedforward import SwiGLU
from .rotary import rotary_cos_sin
from .kv_cache import KVCache
