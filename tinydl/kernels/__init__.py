"""Raw array kernels: the fast paths behind the differentiable ops.

Each kernel is one function that takes and returns raw arrays and works on both backends: it asks its inputs for
their array module (``xp = get_array_module(x)``) and uses only what NumPy and CuPy share (strided views, ``matmul``
with ``out=``, ufuncs). Where the best strategy differs between a CPU and a GPU (how many images to process at
once), the kernel asks :mod:`tinydl.kernels.chunking`, never the caller.

* :mod:`.geometry`: output sizes and the argument bundles of convolution and pooling.
* :mod:`.im2col`: image to columns and back (the layout trick that turns convolution into one matrix product).
* :mod:`.conv`: convolution forward, input gradient and weight gradient.
* :mod:`.pooling`: max and average pooling over windows, forward and backward.
* :mod:`.activation`, :mod:`.softmax`, :mod:`.recurrent`: GELU, softmax/log-softmax and the GRU gate maths on raw
  arrays.
* :mod:`.attention`, :mod:`.causal_attention`: scaled dot-product attention's masked softmax and plain backward,
  and its causal form in query tiles that skips the masked blocks.
* :mod:`.cuda`: the fused CUDA kernels, each the fast twin of a plain path above (or in the op that calls it),
  used for CuPy arrays while the fusion switch (:func:`tinydl.backend.fused_kernels_enabled`) is on.
"""
