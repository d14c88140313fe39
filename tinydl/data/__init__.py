"""Data loading: datasets, the DataLoader, batch transforms and the standard image datasets."""
from . import transforms
from .cifar import CIFAR10
from .dataset import Dataset, Subset, TensorDataset, default_collate, gather, random_split
from .loader import DataLoader
from .mnist import MNIST, FashionMNIST

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "default_collate", "gather", "DataLoader",
           "transforms", "CIFAR10", "MNIST", "FashionMNIST"]

from . import text, tokenizers
from .text import CharVocab, LanguageModelBatches, PadCollate, TextClassificationDataset, WordVocab

__all__ += ["text", "tokenizers", "CharVocab", "LanguageModelBatches", "WordVocab", "TextClassificationDataset", "PadCollate"]
