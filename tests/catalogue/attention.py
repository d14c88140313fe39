"""Catalogue entry for scaled dot-product attention.

The reference loops over every (batch..., query) row in plain NumPy: it lists the keys the row may attend to,
takes the softmax over those keys only, and gives a zero row when there are none.
"""
import itertools
import math

import numpy as np
from hypothesis import strategies as st

import tinydl.functional as F
from tinydl.testing import Case, OpSpec, arrays


def reference_attention(query, key, value, attn_mask=None, is_causal=False, scale=None, need_weights=False):
    length, source = query.shape[-2], key.shape[-2]
    batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    query, key, value = (np.broadcast_to(a, batch + a.shape[-2:]) for a in (query, key, value))
    mask = None if attn_mask is None else np.broadcast_to(attn_mask, batch + (length, source))
    output = np.zeros(batch + (length, value.shape[-1]))
    weights = np.zeros(batch + (length, source))
    for b in itertools.product(*(range(n) for n in batch)):
        for i in range(length):
            scores, allowed = {}, []
            for j in range(source):
                if is_causal and j > i:
                    continue
                score = scale * float(np.dot(query[b + (i,)], key[b + (j,)]))
                if mask is not None:
                    if mask.dtype == bool:
                        if not mask[b + (i, j)]:
                            continue
                    else:
                        score += mask[b + (i, j)]
                if score == -math.inf:
                    continue
                scores[j] = score
                allowed.append(j)
            if not allowed:
                continue  # every key masked: a zero row
            peak = max(scores.values())
            exps = {j: math.exp(scores[j] - peak) for j in allowed}
            total = sum(exps.values())
            for j in allowed:
                weights[b + (i, j)] = exps[j] / total
                output[b + (i,)] += weights[b + (i, j)] * value[b + (j,)]
    return (output, weights) if need_weights else output


@st.composite
def attention_cases(draw):
    """Batch dimensions (none, batch, or batch x heads, some broadcast), lengths, feature sizes, and a mask:
    none, causal, boolean (with rows fully masked now and then) or additive (with -inf entries now and then),
    of a shape that broadcasts to the scores."""
    batch = draw(st.sampled_from([(), (2,), (2, 3), (1, 2)]))
    length, source = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    features, value_features = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    key_batch = batch if not batch or draw(st.booleans()) else (1,) * len(batch)  # keys shared across a batch
    query = draw(arrays(batch + (length, features), low=-2.0, high=2.0))
    key = draw(arrays(key_batch + (source, features), low=-2.0, high=2.0))
    value = draw(arrays(key_batch + (source, value_features), low=-2.0, high=2.0))
    kwargs = {"need_weights": draw(st.booleans())}
    if draw(st.booleans()):
        kwargs["scale"] = draw(st.floats(0.1, 2.0))
    kind = draw(st.sampled_from(["none", "causal", "boolean", "additive"]))
    arrays_ = [query, key, value]
    if kind == "causal":
        kwargs["is_causal"] = True
    elif kind != "none":
        mask_batch = batch[len(batch) - draw(st.integers(0, len(batch))):]
        mask_shape = tuple(draw(st.sampled_from([n, 1])) for n in mask_batch + (length,)) + (source,)
        if kind == "boolean":
            kwargs["attn_mask"] = draw(arrays(mask_shape, low=0.0, high=1.0)) > 0.3
        else:
            mask = draw(arrays(mask_shape, low=-2.0, high=2.0))
            arrays_.append(np.where(mask < -1.7, -math.inf, mask))
    return Case(tuple(arrays_), kwargs)


@st.composite
def grouped_query_cases(draw):
    """Grouped-query attention: query (batch, Hq, L, E), key/value (batch, Hkv, S, E) with Hkv dividing Hq, and
    no mask, the causal mask or a boolean mask per query head or shared by the heads."""
    batch = draw(st.sampled_from([(), (2,)]))
    kv_heads, groups = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    length, source, features = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    query = draw(arrays(batch + (kv_heads * groups, length, features), low=-2.0, high=2.0))
    key = draw(arrays(batch + (kv_heads, source, features), low=-2.0, high=2.0))
    value = draw(arrays(batch + (kv_heads, source, 2), low=-2.0, high=2.0))
    kwargs = {"enable_gqa": True, "need_weights": draw(st.booleans())}
    kind = draw(st.sampled_from(["none", "causal", "per_head", "shared"]))
    if kind == "causal":
        kwargs["is_causal"] = True
    elif kind != "none":
        heads = kv_heads * groups if kind == "per_head" else 1
        kwargs["attn_mask"] = draw(arrays((heads, length, source), low=0.0, high=1.0)) > 0.3
    return Case((query, key, value), kwargs)


def reference_grouped_query(query, key, value, enable_gqa, **kwargs):
    """Each query head h against key/value head h // G, by repeating every key/value head G times."""
    groups = query.shape[-3] // key.shape[-3]
    key, value = np.repeat(key, groups, axis=-3), np.repeat(value, groups, axis=-3)
    return reference_attention(query, key, value, **kwargs)


def _attention(query, key, value, attn_mask=None, **kwargs):
    return F.scaled_dot_product_attention(query, key, value, attn_mask, **kwargs)


SPECS = [
    OpSpec("scaled_dot_product_attention", _attention, attention_cases(), reference_attention, max_examples=12),
    OpSpec("scaled_dot_product_attention", _attention, grouped_query_cases(), reference_grouped_query,
           max_examples=8),
]
